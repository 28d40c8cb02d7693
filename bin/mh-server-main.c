/* mh-server-main: the main() shared by the server programs (mailhostd,
 * mh-lmtpd, and the other one-service programs): the same flags, the same
 * config file, the same start-up order; each program only says which
 * services it registers (MhServerMain.register_services).
 *
 * Design notes
 * - A thin skin over lib/server (DESIGN.md, Programs): parse the command
 *   line, load and validate the config, register the services built in,
 *   bind, drop privileges, run until SIGTERM/SIGINT. SIGHUP reloads the
 *   TLS certificate.
 * - Order matters (STYLE.md, bin/ privileges): config, bind, then drop
 *   root, then accept. Nothing reads client input as root.
 * - --demo makes a self-contained setup in a fresh data directory: a
 *   self-signed certificate, every registered service on 127.0.0.1 at
 *   its standard port + 10000, and the directory part
 *   (demo_provision_directory()). It says plainly which services this
 *   program does not serve.
 * - Exit codes (docs/server.md): 0 after a clean shutdown, 64 (EX_USAGE)
 *   for a bad command line, 78 (EX_CONFIG) for a configuration that does
 *   not load or that the server cannot use, 1 for runtime failures at
 *   start (a port in use, a certificate that does not match its key,
 *   privileges, a data directory that cannot be opened), 2 when the
 *   shutdown grace period cut work off.
 */
#include "mh-config.h"
#include <mailhost/mailhost.h>
#include "mh-server-main.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>

#define EX_OK 0
#define EX_FAIL 1
#define EX_CUT 2
#define EX_USAGE 64
#define EX_CONFIG 78

#define DEMO_DIR "demo-data"
#define DEMO_PORT_OFFSET 10000

typedef struct
{
  const MhServerMain *info;
  char *config_path;
  char *data_dir;
  char *user;
  gboolean demo;
  gboolean foreground;
  gboolean version;
  gboolean print_config;
} Options;

static const char *prog_name = "mailhostd";

static int
fail (int code, const char *what, const GError *error)
{
  fprintf (stderr, "%s: %s%s%s\n", prog_name, what ? what : "",
           what && error ? ": " : "", error ? error->message : "");
  return code;
}

/* ---- demo -------------------------------------------------------------- */

#define DEMO_DOMAIN "demo.example"
#define DEMO_USER "demo@" DEMO_DOMAIN
#define DEMO_SECRET_FILE "demo-password"

/* A password a person can type from the terminal: 16 characters from an
 * alphabet without look-alikes, from GnuTLS's CSPRNG (~92 bits). */
static char *
demo_random_password (GError **error)
{
  static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz"
                                 "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  guint8 raw[16];
  if (gnutls_rnd (GNUTLS_RND_KEY, raw, sizeof raw) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "no random bytes for the demo password");
      return NULL;
    }
  char *pw = g_malloc (sizeof raw + 1);
  for (gsize i = 0; i < sizeof raw; i++)
    pw[i] = alphabet[raw[i] % (sizeof alphabet - 1)];
  pw[sizeof raw] = '\0';
  return pw;
}

/* Creates domain demo.example and user demo@demo.example in @data_dir's
 * directory. The password is made once and kept (mode 0600) in
 * DATA/demo-password, so a second `--demo` on the same data prints the
 * same credentials; if that file is gone, the password is reset. */
static gboolean
demo_provision_directory (MhConfig *config, const char *data_dir,
                          char **user_out, char **password_out,
                          GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (MhDirectory) dir = mh_directory_open (data_dir, error);
  if (dir == NULL)
    return FALSE;

  if (!mh_directory_domain_add (dir, DEMO_DOMAIN, &local))
    {
      if (!g_error_matches (local, MH_DIRECTORY_ERROR,
                            MH_DIRECTORY_ERROR_EXISTS))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      g_clear_error (&local);
    }

  g_autofree char *secret_path
      = g_build_filename (data_dir, DEMO_SECRET_FILE, NULL);
  g_autofree char *password = NULL;
  if (g_file_get_contents (secret_path, &password, NULL, NULL))
    g_strstrip (password);
  gboolean fresh = password == NULL || *password == '\0';
  if (fresh)
    {
      g_free (password);
      password = demo_random_password (error);
      if (password == NULL)
        return FALSE;
    }

  if (!mh_directory_account_add (dir, DEMO_USER, password, &local))
    {
      if (!g_error_matches (local, MH_DIRECTORY_ERROR,
                            MH_DIRECTORY_ERROR_EXISTS))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      g_clear_error (&local);
      /* existing user: make sure the kept password is the one that works */
      if (!mh_directory_authenticate (dir, DEMO_USER, password, NULL, NULL)
          && !mh_directory_account_set_password (dir, DEMO_USER, password,
                                                 error))
        return FALSE;
    }
  if (fresh)
    {
      int fd = g_open (secret_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd < 0 || write (fd, password, strlen (password)) < 0
          || fsync (fd) != 0)
        {
          int e = errno;
          if (fd >= 0)
            close (fd);
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                       "cannot write %s: %s", secret_path, g_strerror (e));
          return FALSE;
        }
      close (fd);
    }
  *user_out = g_strdup (DEMO_USER);
  *password_out = g_steal_pointer (&password);
  return TRUE;
}

static gboolean
demo_certificate (const char *data_dir, char **cert_out, char **key_out,
                  gboolean *generated_out, GError **error)
{
  g_autofree char *tls_dir = g_build_filename (data_dir, "tls", NULL);
  g_autofree char *cert = g_build_filename (tls_dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (tls_dir, "key.pem", NULL);

  *generated_out = FALSE;
  if (g_mkdir_with_parents (tls_dir, 0700) != 0)
    {
      int e = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                   "cannot create %s: %s", tls_dir, g_strerror (e));
      return FALSE;
    }
  if (g_file_test (cert, G_FILE_TEST_EXISTS)
      || g_file_test (key, G_FILE_TEST_EXISTS))
    {
      /* An earlier demo's pair: reuse it if it is sound. */
      if (!mh_server_tls_check_files (cert, key, error))
        return FALSE;
    }
  else
    {
      const char *names[] = { "localhost", "127.0.0.1", "::1", NULL };
      if (!mh_server_tls_generate_self_signed (cert, key, names,
                                               MH_TLS_KEY_ECDSA_P256, error))
        return FALSE;
      *generated_out = TRUE;
    }
  *cert_out = g_steal_pointer (&cert);
  *key_out = g_steal_pointer (&key);
  return TRUE;
}

/* Enables every registered service on 127.0.0.1:port+10000. */
static gboolean
demo_configure (MhConfig *config, MhServer *server, const char *data_dir,
                const char *cert, const char *key, GError **error)
{
  if (!mh_config_set (config, "general", "data_dir", data_dir, error)
      || !mh_config_set (config, "tls", "cert", cert, error)
      || !mh_config_set (config, "tls", "key", key, error))
    return FALSE;
  const char *name, *tls;
  guint std_port;
  for (guint i = 0; mh_server_get_service_info (i, &name, &std_port, &tls);
       i++)
    {
      gboolean built = mh_server_has_service (server, name);
      if (!mh_config_set (config, name, "enabled", built ? "true" : "false",
                          error))
        return FALSE;
      if (!built)
        continue;
      g_autofree char *listen
          = g_strdup_printf ("127.0.0.1:%u", std_port + DEMO_PORT_OFFSET);
      if (!mh_config_set (config, name, "listen", listen, error)
          || !mh_config_set (config, name, "tls", tls, error))
        return FALSE;
    }
  return TRUE;
}

static const char *
tls_label (const char *tls)
{
  if (g_strcmp0 (tls, "implicit") == 0)
    return "SSL/TLS";
  if (g_strcmp0 (tls, "starttls") == 0)
    return "STARTTLS";
  return "none (plain)";
}

static void
demo_print (const char *prog, MhConfig *config, MhServer *server,
            const char *data_dir,
            const char *cert, gboolean generated, const char *user,
            const char *password)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *fp = mh_server_tls_get_fingerprint (cert, &error);
  GString *out = g_string_new (NULL);
  GString *missing = g_string_new (NULL);

  g_string_append_printf (out, "\n%s %s demo\n", prog, mh_version ());
  g_string_append_printf (out, "  data directory: %s\n", data_dir);
  g_string_append_printf (out, "  certificate:    %s (self-signed%s)\n", cert,
                          generated ? ", new" : ", reused");
  if (fp)
    g_string_append_printf (out, "  SHA-256:        %s\n", fp);
  g_string_append (out, "\nMail client settings\n");
  g_string_append (out, "  server:   127.0.0.1 (accept the self-signed "
                        "certificate; compare the SHA-256 above)\n");
  if (user)
    g_string_append_printf (out, "  user:     %s\n  password: %s\n", user,
                            password ? password : "");
  else
    g_string_append (out, "  user:     none yet (the account directory "
                          "is not built in yet)\n");
  g_string_append (out, "\nServices\n");
  const char *name, *tls;
  guint std_port;
  for (guint i = 0; mh_server_get_service_info (i, &name, &std_port, &tls);
       i++)
    {
      guint port = std_port + DEMO_PORT_OFFSET;
      if (mh_server_has_service (server, name))
        g_string_append_printf (out, "  %-12s 127.0.0.1 port %u, %s%s\n",
                                name, port, tls_label (tls),
                                strcmp (name, "echo") == 0
                                    ? " (diagnostic line service; try: "
                                      "gnutls-cli --insecure "
                                      "--starttls-proto=smtp -p 10007 "
                                      "127.0.0.1)"
                                : strcmp (name, "lmtp") == 0
                                    ? " (try: swaks --protocol LMTP "
                                      "--server 127.0.0.1:10024 --to "
                                      "demo@demo.example)"
                                : strcmp (name, "submission") == 0
                                    ? " (try: swaks --server "
                                      "127.0.0.1:10587 -tls --auth PLAIN "
                                      "--auth-user demo@demo.example "
                                      "--auth-password PASSWORD --to "
                                      "demo@demo.example)"
                                : strcmp (name, "imaps") == 0
                                    ? " (try: curl -k --user "
                                      "demo@demo.example:PASSWORD "
                                      "imaps://127.0.0.1:10993/INBOX)"
                                    : "");
      else
        g_string_append_printf (missing, "%s%s (%u)",
                                missing->len ? ", " : "", name, port);
    }
  if (missing->len)
    {
      /* mailhostd contains every service there is: what it lacks is not
       * built yet; a one-service program simply does not serve the rest */
      if (strcmp (prog, "mailhostd") == 0)
        g_string_append_printf (out, "  not built yet: %s\n", missing->str);
      else
        g_string_append_printf (out, "  not served by %s: %s\n", prog,
                                missing->str);
    }
  g_string_append (out, "\nStop with Ctrl-C (SIGTERM); SIGHUP reloads the "
                        "certificate.\n\n");
  fputs (out->str, stdout);
  fflush (stdout);
  g_string_free (out, TRUE);
  g_string_free (missing, TRUE);
}

/* ---- main -------------------------------------------------------------- */

static int
run (Options *opt)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) config = NULL;

  const char *path = opt->config_path;
  if (path == NULL)
    {
      g_autofree char *def = g_build_filename (MH_SYSCONFDIR, "mailhost",
                                               "mailhost.conf", NULL);
      if (!opt->demo && g_file_test (def, G_FILE_TEST_EXISTS))
        config = mh_config_load (def, &error);
      else
        config = mh_config_new ();
    }
  else
    config = mh_config_load (path, &error);
  if (config == NULL)
    return fail (EX_CONFIG, NULL, error);

  g_autofree char *data_dir = NULL;
  if (opt->data_dir)
    data_dir = g_canonicalize_filename (opt->data_dir, NULL);
  else if (opt->demo)
    data_dir = g_canonicalize_filename (DEMO_DIR, NULL);
  if (data_dir
      && !mh_config_set (config, "general", "data_dir", data_dir, &error))
    return fail (EX_CONFIG, NULL, error);
  if (opt->user && !mh_config_set (config, "general", "user", opt->user,
                                   &error))
    return fail (EX_CONFIG, NULL, error);

  MhLogLevel level = MH_LOG_INFO;
  mh_log_level_from_string (
      mh_config_get_string (config, "general", "log_level"), &level);
  const char *target = mh_config_get_string (config, "general", "log_target");
  if (!opt->print_config)
    mh_log_install (g_strcmp0 (target, "journal") == 0 ? MH_LOG_TARGET_JOURNAL
                    : g_strcmp0 (target, "stderr") == 0 ? MH_LOG_TARGET_STDERR
                                                        : MH_LOG_TARGET_AUTO,
                    level);

  g_autoptr (MhServer) server = mh_server_new (config, &error);
  if (server == NULL
      || !opt->info->register_services (server, config, &error))
    return fail (EX_FAIL, NULL, error);

  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *demo_user = NULL;
  g_autofree char *demo_password = NULL;
  gboolean generated = FALSE;
  if (opt->demo)
    {
      if (g_mkdir_with_parents (data_dir, 0750) != 0)
        {
          g_autofree char *msg = g_strdup_printf (
              "demo: cannot create %s: %s", data_dir, g_strerror (errno));
          return fail (EX_FAIL, msg, NULL);
        }
      if (!demo_certificate (data_dir, &cert, &key, &generated, &error))
        return fail (EX_FAIL, "demo", error);
      if (!demo_configure (config, server, data_dir, cert, key, &error))
        return fail (EX_CONFIG, "demo", error);
      if (!demo_provision_directory (config, data_dir, &demo_user,
                                     &demo_password, &error))
        return fail (EX_FAIL, "demo", error);
    }

  if (opt->print_config)
    {
      g_autofree char *text = mh_config_to_data (config);
      fputs (text, stdout);
      return EX_OK;
    }

  if (!mh_server_start (server, &error))
    return fail (g_error_matches (error, MH_SERVER_ERROR,
                                  MH_SERVER_ERROR_CONFIG)
                     ? EX_CONFIG
                     : EX_FAIL,
                 NULL, error);
  if (!mh_server_drop_privileges (
          mh_config_get_string (config, "general", "user"),
          mh_config_get_string (config, "general", "group"), &error))
    return fail (EX_FAIL, NULL, error);

  mh_server_handle_signals (server);
  g_auto (GStrv) listeners = mh_server_get_listeners (server);
  if (listeners[0] == NULL)
    mh_log_message (MH_LOG_WARNING, NULL, NULL, NULL,
                    "no service is listening: enable one in the "
                    "configuration ([SERVICE] enabled = true)");
  if (opt->demo)
    demo_print (opt->info->prog, config, server, data_dir, cert, generated,
                demo_user, demo_password);
  g_autofree char *started = g_strdup_printf ("%s started", opt->info->prog);
  mh_log_message (MH_LOG_NOTICE, NULL, NULL, NULL, started);
  return mh_server_run (server) ? EX_OK : EX_CUT;
}

int
mh_server_main (const MhServerMain *info, int argc, char **argv)
{
  Options opt = { .info = info };
  prog_name = info->prog;
  g_autoptr (GError) error = NULL;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt.config_path,
      "Configuration file (default " MH_SYSCONFDIR "/mailhost/mailhost.conf "
      "if it exists)", "FILE" },
    { "data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt.data_dir,
      "Data directory (overrides [general] data_dir)", "DIR" },
    { "user", 'u', 0, G_OPTION_ARG_STRING, &opt.user,
      "Drop root to this user after binding (overrides [general] user)",
      "NAME" },
    { "demo", 0, 0, G_OPTION_ARG_NONE, &opt.demo,
      "Self-contained demo on 127.0.0.1, ports + 10000, in ./" DEMO_DIR
      " or --data-dir", NULL },
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &opt.foreground,
      "Stay in the foreground (always the case; for service managers)",
      NULL },
    { "print-config", 0, 0, G_OPTION_ARG_NONE, &opt.print_config,
      "Print the effective configuration and exit", NULL },
    { "version", 'V', 0, G_OPTION_ARG_NONE, &opt.version,
      "Print the version and exit", NULL },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
  g_option_context_set_summary (ctx, info->summary);
  g_option_context_set_description (
      ctx, "Exit status: 0 clean shutdown, 1 start-up failure (port in "
           "use, TLS, privileges),\n2 shutdown grace period exceeded, 64 "
           "usage error, 78 configuration error.\n");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fprintf (stderr, "%s: %s (try --help)\n", info->prog, error->message);
      return EX_USAGE;
    }
  if (argc > 1)
    {
      fprintf (stderr, "%s: unexpected argument '%s' (try --help)\n",
               info->prog, argv[1]);
      return EX_USAGE;
    }
  if (opt.version)
    {
      printf ("%s %s\n", info->prog, mh_version ());
      return EX_OK;
    }
  int rc = run (&opt);
  g_free (opt.config_path);
  g_free (opt.data_dir);
  g_free (opt.user);
  return rc;
}
