/* mhctl: administration of a mailhost data directory.
 *
 * Design notes
 * - A thin skin over the public API (lib/directory for now): parse the
 *   command line, find the data directory, make one call, print the
 *   result as text or --json. Later issues add verbs (resolve, quota,
 *   sieve, dns, ...): each is one row in the verb table below.
 * - Data directory: --data-dir, else [general] data_dir of --config FILE
 *   (default SYSCONFDIR/mailhost/mailhost.conf when it exists), else the
 *   built-in default of the config schema.
 * - Passwords never come from argv (visible in ps and shell history):
 *   only --password-stdin, read once, wiped after use.
 * - Exit codes (docs/mhctl.md): 0 ok, 1 usage, 2 not found or conflict,
 *   3 data error (bad input, unreadable directory, bad config). Every
 *   message is "mhctl: VERB: what is wrong".
 * - import reads the whole file, checks every line, reports each bad
 *   line by number, and adds the good ones in one write transaction, or
 *   nothing at all when a line is bad (unless --partial).
 */
#include "mh-config.h"
#include "mhctl-resolve.h"
#include "mhctl-quota.h"
#include "mhctl-store.h"
#include <mailhost/mailhost.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mhctl-common.h"

enum
{
  OPT_PASSWORD_STDIN = 1 << 0,
  OPT_FORCE = 1 << 1,
  OPT_PARTIAL = 1 << 2,
  OPT_DRY_RUN = 1 << 3,
  OPT_QUOTA = 1 << 4,     /* --storage, --messages (bin/mhctl-quota.c) */
};

typedef struct
{
  char *data_dir;
  char *config_path;
  gboolean json;
  gboolean help;
  guint flags;            /* OPT_* given */
  const char *name;       /* "user add", for messages */
  MhDirectory *dir;
  const char *storage;    /* user add --storage */
  const char *messages;   /* user add --messages */
} Ctx;

typedef int (*VerbFunc) (Ctx *ctx, char **args, int n);

typedef struct
{
  const char *noun;
  const char *verb;
  const char *args;       /* usage of the arguments */
  int min_args;
  int max_args;           /* -1: no limit */
  guint options;          /* OPT_* allowed */
  VerbFunc run;
  const char *help;
} Verb;

/* ---- Output helpers ----------------------------------------------------- */

/* Overwrites a password buffer before freeing it; volatile so the stores
 * are not optimised away. */
static void
wipe_free (char *p, gsize len)
{
  volatile char *v = p;
  for (gsize i = 0; i < len; i++)
    v[i] = 0;
  g_free (p);
}

static int
fail (Ctx *ctx, int code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static int
fail (Ctx *ctx, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "mhctl: %s%s%s\n", ctx->name ? ctx->name : "",
           ctx->name ? ": " : "", msg);
  return code;
}

static int
fail_error (Ctx *ctx, const GError *error)
{
  return fail (ctx, mhctl_exit_code (error), "%s", error->message);
}

static void
json_string (GString *out, const char *s)
{
  if (s == NULL)
    {
      g_string_append (out, "null");
      return;
    }
  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *) s; *p; p++)
    {
      switch (*p)
        {
        case '"': g_string_append (out, "\\\""); break;
        case '\\': g_string_append (out, "\\\\"); break;
        case '\n': g_string_append (out, "\\n"); break;
        case '\r': g_string_append (out, "\\r"); break;
        case '\t': g_string_append (out, "\\t"); break;
        default:
          if (*p < 0x20)
            g_string_append_printf (out, "\\u%04x", *p);
          else
            g_string_append_c (out, (char) *p);
        }
    }
  g_string_append_c (out, '"');
}

static void
json_key (GString *out, gboolean *first, const char *key)
{
  if (!*first)
    g_string_append (out, ", ");
  *first = FALSE;
  json_string (out, key);
  g_string_append (out, ": ");
}

static void
json_settings (GString *out, GVariant *settings)
{
  g_string_append_c (out, '{');
  GVariantIter iter;
  const char *key;
  GVariant *value;
  gboolean first = TRUE;
  g_variant_iter_init (&iter, settings);
  while (g_variant_iter_loop (&iter, "{&sv}", &key, &value))
    {
      json_key (out, &first, key);
      if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
        g_string_append_printf (out, "%" G_GUINT64_FORMAT,
                                g_variant_get_uint64 (value));
      else if (g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
        g_string_append (out, g_variant_get_boolean (value) ? "true"
                                                            : "false");
      else if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        json_string (out, g_variant_get_string (value, NULL));
      else
        {
          g_autofree char *t = g_variant_print (value, FALSE);
          json_string (out, t);
        }
    }
  g_string_append_c (out, '}');
}

static char *
settings_text (GVariant *settings)
{
  GString *s = g_string_new (NULL);
  GVariantIter iter;
  const char *key;
  GVariant *value;
  g_variant_iter_init (&iter, settings);
  while (g_variant_iter_loop (&iter, "{&sv}", &key, &value))
    {
      if (s->len)
        g_string_append (s, ", ");
      g_autofree char *t = NULL;
      if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        t = g_variant_dup_string (value, NULL);
      else if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
        t = g_strdup_printf ("%" G_GUINT64_FORMAT,
                             g_variant_get_uint64 (value));
      else
        t = g_variant_print (value, FALSE);
      g_string_append_printf (s, "%s=%s", key, t);
    }
  if (s->len == 0)
    g_string_append (s, "(none)");
  return g_string_free (s, FALSE);
}

static char *
time_text (gint64 t)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (t);
  return dt ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup ("?");
}

static void
print_out (GString *s)
{
  fputs (s->str, stdout);
  if (s->len == 0 || s->str[s->len - 1] != '\n')
    fputc ('\n', stdout);
  fflush (stdout);
}

/* Prints a listing built in @s: text lines as they are, or the JSON
 * array the caller opened with "[" and closes here. */
static int
list_print (Ctx *ctx, GString *s)
{
  if (ctx->json)
    {
      g_string_append_c (s, ']');
      print_out (s);
    }
  else
    fputs (s->str, stdout);
  return 0;
}

/* Confirmation of a change: a line of text, or {"ok": true, ...}. */
static int
done (Ctx *ctx, const char *what)
{
  if (ctx->json)
    {
      g_autoptr (GString) s = g_string_new ("{\"ok\": true, \"message\": ");
      json_string (s, what);
      g_string_append_c (s, '}');
      print_out (s);
    }
  else
    printf ("%s\n", what);
  return 0;
}

/* ---- Domains ------------------------------------------------------------ */

static void
domain_json (GString *s, MhDomainInfo *d)
{
  gboolean first = TRUE;
  g_string_append_c (s, '{');
  json_key (s, &first, "name");
  json_string (s, mh_domain_info_get_name (d));
  json_key (s, &first, "ascii_name");
  json_string (s, mh_domain_info_get_ascii_name (d));
  json_key (s, &first, "created");
  g_string_append_printf (s, "%" G_GINT64_FORMAT,
                          mh_domain_info_get_created (d));
  json_key (s, &first, "accounts");
  g_string_append_printf (s, "%u", mh_domain_info_get_account_count (d));
  json_key (s, &first, "aliases");
  g_string_append_printf (s, "%u", mh_domain_info_get_alias_count (d));
  json_key (s, &first, "settings");
  json_settings (s, mh_domain_info_get_settings (d));
  g_string_append_c (s, '}');
}

static int
domain_add (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  if (!mh_directory_domain_add (ctx->dir, args[0], &error))
    return fail_error (ctx, error);
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (ctx->dir, args[0],
                                                           NULL);
  g_autofree char *msg = g_strdup_printf (
      "domain '%s' added", d ? mh_domain_info_get_name (d) : args[0]);
  return done (ctx, msg);
}

static int
domain_list (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhDomainInfoList) list = mh_directory_domain_list (ctx->dir, &error);
  if (list == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (ctx->json ? "[" : "");
  for (guint i = 0; i < list->len; i++)
    {
      MhDomainInfo *d = list->pdata[i];
      if (ctx->json)
        {
          if (i)
            g_string_append (s, ", ");
          domain_json (s, d);
          continue;
        }
      g_string_append_printf (s, "%-40s accounts=%u aliases=%u\n",
                              mh_domain_info_get_name (d),
                              mh_domain_info_get_account_count (d),
                              mh_domain_info_get_alias_count (d));
    }
  return list_print (ctx, s);
}

static int
domain_show (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (ctx->dir, args[0],
                                                           &error);
  if (d == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (NULL);
  if (ctx->json)
    domain_json (s, d);
  else
    {
      g_autofree char *settings = settings_text (mh_domain_info_get_settings (d));
      g_autofree char *created = time_text (mh_domain_info_get_created (d));
      g_string_append_printf (s,
                              "domain:     %s\n"
                              "ascii name: %s\n"
                              "created:    %s\n"
                              "accounts:   %u\n"
                              "aliases:    %u\n"
                              "settings:   %s\n",
                              mh_domain_info_get_name (d),
                              mh_domain_info_get_ascii_name (d), created,
                              mh_domain_info_get_account_count (d),
                              mh_domain_info_get_alias_count (d), settings);
    }
  print_out (s);
  return 0;
}

static int
domain_del (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  if (!mh_directory_domain_delete (ctx->dir, args[0],
                                   (ctx->flags & OPT_FORCE) != 0, &error))
    return fail_error (ctx, error);
  g_autofree char *msg = g_strdup_printf ("domain '%s' deleted", args[0]);
  return done (ctx, msg);
}

static int
domain_set (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  gboolean quota_key;
  gboolean ok = mhctl_quota_set_setting (ctx->dir, TRUE, args[0], args[1],
                                         n > 2 ? args[2] : NULL, &quota_key,
                                         &error);
  if (!quota_key)
    ok = mh_directory_domain_set_setting (ctx->dir, args[0], args[1],
                                          n > 2 ? args[2] : NULL, &error);
  if (!ok)
    return fail_error (ctx, error);
  g_autofree char *msg = n > 2 ? g_strdup_printf ("%s: %s set to %s",
                                                  args[0], args[1], args[2])
                               : g_strdup_printf ("%s: %s unset", args[0],
                                                  args[1]);
  return done (ctx, msg);
}

/* ---- Domain aliases ----------------------------------------------------- */

static int
domain_alias_add (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  if (!mh_directory_domain_alias_add (ctx->dir, args[0], args[1], &error))
    return fail_error (ctx, error);
  g_autofree char *msg = g_strdup_printf ("domain alias '%s' -> '%s' added",
                                          args[0], args[1]);
  return done (ctx, msg);
}

static int
domain_alias_list (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhDomainAliasInfoList) list = mh_directory_domain_alias_list (ctx->dir,
                                                               &error);
  if (list == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (ctx->json ? "[" : "");
  for (guint i = 0; i < list->len; i++)
    {
      MhDomainAliasInfo *a = list->pdata[i];
      if (ctx->json)
        {
          gboolean first = TRUE;
          g_string_append (s, i ? ", {" : "{");
          json_key (s, &first, "name");
          json_string (s, mh_domain_alias_info_get_name (a));
          json_key (s, &first, "ascii_name");
          json_string (s, mh_domain_alias_info_get_ascii_name (a));
          json_key (s, &first, "target");
          json_string (s, mh_domain_alias_info_get_target (a));
          json_key (s, &first, "ascii_target");
          json_string (s, mh_domain_alias_info_get_ascii_target (a));
          json_key (s, &first, "created");
          g_string_append_printf (s, "%" G_GINT64_FORMAT,
                                  mh_domain_alias_info_get_created (a));
          g_string_append_c (s, '}');
        }
      else
        g_string_append_printf (s, "%s -> %s\n",
                                mh_domain_alias_info_get_name (a),
                                mh_domain_alias_info_get_target (a));
    }
  return list_print (ctx, s);
}

static int
domain_alias_del (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  if (!mh_directory_domain_alias_delete (ctx->dir, args[0], &error))
    return fail_error (ctx, error);
  g_autofree char *msg = g_strdup_printf ("domain alias '%s' deleted",
                                          args[0]);
  return done (ctx, msg);
}

/* ---- Users -------------------------------------------------------------- */

/* Reads the password from stdin: everything up to EOF, minus one trailing
 * newline. Returns NULL with a message on a read error. */
static char *
read_password (Ctx *ctx, int *code)
{
  gsize cap = MH_LIMIT_PASSWORD_MAX + 3;
  char *buf = g_malloc0 (cap);
  gsize len = 0;
  while (len < cap - 1)
    {
      size_t r = fread (buf + len, 1, cap - 1 - len, stdin);
      if (r == 0)
        break;
      len += r;
    }
  if (ferror (stdin))
    {
      wipe_free (buf, cap);
      *code = fail (ctx, EXIT_DATA, "cannot read the password from stdin: %s",
                    g_strerror (errno));
      return NULL;
    }
  /* More than the limit: make sure the library sees an over-long one. */
  if (len == cap - 1 && fgetc (stdin) != EOF)
    buf[len - 1] = 'x';
  if (len > 0 && buf[len - 1] == '\n')
    buf[--len] = '\0';
  if (len > 0 && buf[len - 1] == '\r')
    buf[--len] = '\0';
  if (memchr (buf, '\0', len) != NULL)
    {
      wipe_free (buf, cap);
      *code = fail (ctx, EXIT_DATA, "the password contains a NUL byte");
      return NULL;
    }
  return buf;
}

static void
user_json (GString *s, MhAccountInfo *a)
{
  gboolean first = TRUE;
  g_string_append_c (s, '{');
  json_key (s, &first, "address");
  json_string (s, mh_account_info_get_address (a));
  json_key (s, &first, "ascii_address");
  json_string (s, mh_account_info_get_ascii_address (a));
  json_key (s, &first, "local_part");
  json_string (s, mh_account_info_get_local_part (a));
  json_key (s, &first, "domain");
  json_string (s, mh_account_info_get_domain (a));
  json_key (s, &first, "display_name");
  json_string (s, mh_account_info_get_display_name (a));
  json_key (s, &first, "enabled");
  g_string_append (s, mh_account_info_get_enabled (a) ? "true" : "false");
  json_key (s, &first, "protocols");
  g_string_append_c (s, '[');
  g_autofree char *p = mh_directory_protocols_to_string (
      mh_account_info_get_protocols (a));
  if (strcmp (p, "none") != 0)
    {
      g_auto (GStrv) parts = g_strsplit (p, ",", -1);
      for (guint i = 0; parts[i]; i++)
        {
          if (i)
            g_string_append (s, ", ");
          json_string (s, parts[i]);
        }
    }
  g_string_append_c (s, ']');
  json_key (s, &first, "has_password");
  g_string_append (s, mh_account_info_get_has_password (a) ? "true"
                                                           : "false");
  json_key (s, &first, "password_scheme");
  json_string (s, mh_account_info_get_password_scheme (a));
  json_key (s, &first, "created");
  g_string_append_printf (s, "%" G_GINT64_FORMAT,
                          mh_account_info_get_created (a));
  json_key (s, &first, "settings");
  json_settings (s, mh_account_info_get_settings (a));
  g_string_append_c (s, '}');
}

static int
user_add (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  char *pw = NULL;
  int code = 0;
  if (ctx->flags & OPT_PASSWORD_STDIN)
    {
      pw = read_password (ctx, &code);
      if (pw == NULL)
        return code;
    }
  gboolean had_pw = pw != NULL;
  /* Through lib/quota: refused if the account's quota (given, or the
   * domain's default) would take the domain over its quota. */
  gboolean ok = mhctl_quota_account_add (ctx->dir, args[0], pw, ctx->storage,
                                         ctx->messages, &error);
  if (pw != NULL)
    wipe_free (pw, MH_LIMIT_PASSWORD_MAX + 3);
  if (!ok)
    return fail_error (ctx, error);
  g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (ctx->dir,
                                                             args[0], NULL);
  g_autofree char *msg = g_strdup_printf (
      "user '%s' added%s", a ? mh_account_info_get_address (a) : args[0],
      had_pw ? "" : " (no password: cannot log in until one is set)");
  return done (ctx, msg);
}

static int
user_passwd (Ctx *ctx, char **args, int n)
{
  if (!(ctx->flags & OPT_PASSWORD_STDIN))
    return fail (ctx, EXIT_USAGE, "the new password is read from stdin: "
                 "use --password-stdin (never a command-line argument)");
  int code = 0;
  char *pw = read_password (ctx, &code);
  if (pw == NULL)
    return code;
  g_autoptr (GError) error = NULL;
  gboolean ok = mh_directory_account_set_password (ctx->dir, args[0], pw,
                                                   &error);
  wipe_free (pw, MH_LIMIT_PASSWORD_MAX + 3);
  if (!ok)
    return fail_error (ctx, error);
  g_autofree char *msg = g_strdup_printf ("password of '%s' changed",
                                          args[0]);
  return done (ctx, msg);
}

static int
user_list (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhAccountInfoList) list = mh_directory_account_list (
      ctx->dir, n > 0 ? args[0] : NULL, &error);
  if (list == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (ctx->json ? "[" : "");
  for (guint i = 0; i < list->len; i++)
    {
      MhAccountInfo *a = list->pdata[i];
      if (ctx->json)
        {
          if (i)
            g_string_append (s, ", ");
          user_json (s, a);
          continue;
        }
      g_autofree char *p = mh_directory_protocols_to_string (
          mh_account_info_get_protocols (a));
      g_string_append_printf (s, "%-40s %-8s %s%s\n",
                              mh_account_info_get_address (a),
                              mh_account_info_get_enabled (a) ? "enabled"
                                                              : "disabled",
                              p,
                              mh_account_info_get_has_password (a)
                                  ? "" : " (no password)");
    }
  return list_print (ctx, s);
}

static int
user_show (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (ctx->dir,
                                                             args[0], &error);
  if (a == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (NULL);
  if (ctx->json)
    user_json (s, a);
  else
    {
      g_autofree char *p = mh_directory_protocols_to_string (
          mh_account_info_get_protocols (a));
      g_autofree char *settings = settings_text (
          mh_account_info_get_settings (a));
      g_autofree char *created = time_text (mh_account_info_get_created (a));
      const char *dn = mh_account_info_get_display_name (a);
      const char *scheme = mh_account_info_get_password_scheme (a);
      g_string_append_printf (s,
                              "address:      %s\n"
                              "ascii:        %s\n"
                              "display name: %s\n"
                              "enabled:      %s\n"
                              "protocols:    %s\n"
                              "password:     %s\n"
                              "created:      %s\n"
                              "settings:     %s\n",
                              mh_account_info_get_address (a),
                              mh_account_info_get_ascii_address (a),
                              dn ? dn : "(none)",
                              mh_account_info_get_enabled (a) ? "yes" : "no",
                              p, scheme ? scheme : "(none: no login)",
                              created, settings);
    }
  print_out (s);
  return 0;
}

static int
user_del (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  if (!mh_directory_account_delete (ctx->dir, args[0], &error))
    return fail_error (ctx, error);
  g_autofree char *msg = g_strdup_printf ("user '%s' deleted", args[0]);
  return done (ctx, msg);
}

static int
user_set (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  const char *key = args[1];
  const char *value = n > 2 ? args[2] : NULL;
  gboolean ok;
  if (strcmp (key, "display_name") == 0)
    ok = mh_directory_account_set_display_name (ctx->dir, args[0], value,
                                                &error);
  else if (strcmp (key, "enabled") == 0)
    {
      if (value == NULL)
        return fail (ctx, EXIT_USAGE, "enabled needs a value: true or false");
      gboolean on;
      if (g_ascii_strcasecmp (value, "true") == 0
          || g_ascii_strcasecmp (value, "yes") == 0 || strcmp (value, "1") == 0)
        on = TRUE;
      else if (g_ascii_strcasecmp (value, "false") == 0
               || g_ascii_strcasecmp (value, "no") == 0
               || strcmp (value, "0") == 0)
        on = FALSE;
      else
        return fail (ctx, EXIT_DATA, "enabled: expected true or false, got "
                     "'%s'", value);
      ok = mh_directory_account_set_enabled (ctx->dir, args[0], on, &error);
    }
  else if (strcmp (key, "protocols") == 0)
    {
      MhDirectoryProtocols p;
      ok = mh_directory_protocols_from_string (value, &p, &error)
           && mh_directory_account_set_protocols (ctx->dir, args[0], p,
                                                  &error);
    }
  else if (strcmp (key, "password_hash") == 0)
    ok = mh_directory_account_set_password_hash (ctx->dir, args[0], value,
                                                 &error);
  else
    {
      gboolean quota_key;
      ok = mhctl_quota_set_setting (ctx->dir, FALSE, args[0], key, value,
                                    &quota_key, &error);
      if (!quota_key)
        ok = mh_directory_account_set_setting (ctx->dir, args[0], key, value,
                                               &error);
    }
  if (!ok)
    return fail_error (ctx, error);
  g_autofree char *msg = value ? g_strdup_printf ("%s: %s set", args[0], key)
                               : g_strdup_printf ("%s: %s unset", args[0],
                                                  key);
  return done (ctx, msg);
}

/* ---- Aliases ------------------------------------------------------------ */

static void
alias_json (GString *s, MhAliasInfo *a)
{
  gboolean first = TRUE;
  g_string_append_c (s, '{');
  json_key (s, &first, "address");
  json_string (s, mh_alias_info_get_address (a));
  json_key (s, &first, "ascii_address");
  json_string (s, mh_alias_info_get_ascii_address (a));
  json_key (s, &first, "targets");
  g_string_append_c (s, '[');
  const char *const *t = mh_alias_info_get_targets (a);
  for (guint i = 0; t[i]; i++)
    {
      if (i)
        g_string_append (s, ", ");
      json_string (s, t[i]);
    }
  g_string_append_c (s, ']');
  json_key (s, &first, "created");
  g_string_append_printf (s, "%" G_GINT64_FORMAT,
                          mh_alias_info_get_created (a));
  g_string_append_c (s, '}');
}

static int
alias_add (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) targets = g_ptr_array_new ();
  for (int i = 1; i < n; i++)
    g_ptr_array_add (targets, args[i]);
  g_ptr_array_add (targets, NULL);
  if (!mh_directory_alias_add (ctx->dir, args[0],
                               (const char *const *) targets->pdata, &error))
    return fail_error (ctx, error);
  g_autofree char *msg = g_strdup_printf ("alias '%s' -> %d target(s) added",
                                          args[0], n - 1);
  return done (ctx, msg);
}

static int
alias_list (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhAliasInfoList) list = mh_directory_alias_list (
      ctx->dir, n > 0 ? args[0] : NULL, &error);
  if (list == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (ctx->json ? "[" : "");
  for (guint i = 0; i < list->len; i++)
    {
      MhAliasInfo *a = list->pdata[i];
      if (ctx->json)
        {
          if (i)
            g_string_append (s, ", ");
          alias_json (s, a);
          continue;
        }
      g_autofree char *t = g_strjoinv (
          ", ", (char **) mh_alias_info_get_targets (a));
      g_string_append_printf (s, "%s -> %s\n", mh_alias_info_get_address (a),
                              t);
    }
  return list_print (ctx, s);
}

static int
alias_show (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhAliasInfo) a = mh_directory_alias_lookup (ctx->dir, args[0],
                                                         &error);
  if (a == NULL)
    return fail_error (ctx, error);
  g_autoptr (GString) s = g_string_new (NULL);
  if (ctx->json)
    alias_json (s, a);
  else
    {
      g_autofree char *t = g_strjoinv (
          "\n         ", (char **) mh_alias_info_get_targets (a));
      g_string_append_printf (s, "alias:   %s\ntargets: %s\n",
                              mh_alias_info_get_address (a), t);
    }
  print_out (s);
  return 0;
}

static int
alias_del (Ctx *ctx, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  if (!mh_directory_alias_delete (ctx->dir, args[0], n > 1 ? args[1] : NULL,
                                  &error))
    return fail_error (ctx, error);
  g_autofree char *msg = n > 1
      ? g_strdup_printf ("target '%s' removed from alias '%s'", args[1],
                         args[0])
      : g_strdup_printf ("alias '%s' deleted", args[0]);
  return done (ctx, msg);
}

/* ---- Import ------------------------------------------------------------- */

typedef struct
{
  guint line;
  char *message;
} LineError;

static void
line_error_clear (gpointer p)
{
  g_free (((LineError *) p)->message);
}

static gint
line_error_cmp (gconstpointer a, gconstpointer b)
{
  guint la = ((const LineError *) a)->line, lb = ((const LineError *) b)->line;
  return la < lb ? -1 : la > lb;
}

/* "500M", "2G", "1048576": powers of 1024, as in the config file. */
static gboolean
parse_quota (const char *text, gint64 *out)
{
  gsize len = strlen (text);
  guint64 mult = 1;
  g_autofree char *num = g_strdup (text);
  switch (g_ascii_toupper (text[len - 1]))
    {
    case 'K': mult = 1ull << 10; break;
    case 'M': mult = 1ull << 20; break;
    case 'G': mult = 1ull << 30; break;
    case 'T': mult = 1ull << 40; break;
    default: mult = 0; break;
    }
  if (mult != 0)
    num[len - 1] = '\0';
  else
    mult = 1;
  guint64 n = 0;
  if (!g_ascii_string_to_unsigned (num, 10, 0, G_MAXINT64 / mult, &n, NULL))
    return FALSE;
  *out = (gint64) (n * mult);
  return TRUE;
}

static int
import_file (Ctx *ctx, char **args, int n)
{
  const char *path = args[0];
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  gsize len = 0;
  if (strcmp (path, "-") == 0)
    {
      g_autoptr (GIOChannel) ch = g_io_channel_unix_new (STDIN_FILENO);
      if (g_io_channel_set_encoding (ch, NULL, &error) != G_IO_STATUS_NORMAL
          || g_io_channel_read_to_end (ch, &text, &len, &error)
                 != G_IO_STATUS_NORMAL)
        return fail (ctx, EXIT_DATA, "cannot read stdin: %s", error->message);
      path = "stdin";
    }
  else if (!g_file_get_contents (path, &text, &len, &error))
    return fail (ctx, EXIT_DATA, "%s", error->message);
  if (memchr (text, '\0', len) != NULL)
    return fail (ctx, EXIT_DATA, "%s: contains a NUL byte (not a text file)",
                 path);

  g_autoptr (MhDirectoryImport) imp = mh_directory_import_new (ctx->dir);
  g_autoptr (GArray) errors = g_array_new (FALSE, TRUE, sizeof (LineError));
  g_array_set_clear_func (errors, line_error_clear);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  guint entries = 0;
  for (guint i = 0; lines[i]; i++)
    {
      guint lineno = i + 1;
      char *line = g_strstrip (lines[i]);
      if (*line == '\0' || *line == '#')
        continue;
      g_autofree char *problem = NULL;
      if (!g_utf8_validate (line, -1, NULL))
        problem = g_strdup ("not valid UTF-8");
      g_auto (GStrv) fields = NULL;
      if (problem == NULL)
        {
          /* Fields are separated by runs of spaces or tabs. */
          for (char *p = line; *p; p++)
            if (*p == '\t')
              *p = ' ';
          fields = g_strsplit (line, " ", -1);
          guint k = 0;
          for (guint j = 0; fields[j]; j++)
            if (fields[j][0] != '\0')
              fields[k++] = fields[j];
            else
              g_free (fields[j]);
          fields[k] = NULL;
          if (k > 3)
            problem = g_strdup_printf ("%u fields, expected 'address [hash|-] "
                                       "[quota]'", k);
        }
      const char *hash = NULL;
      gint64 quota = -1;
      if (problem == NULL && fields[1] != NULL && strcmp (fields[1], "-") != 0)
        hash = fields[1];
      if (problem == NULL && fields[1] != NULL && fields[2] != NULL
          && strcmp (fields[2], "-") != 0 && !parse_quota (fields[2], &quota))
        problem = g_strdup_printf ("quota '%s' is not a size such as 500M or "
                                   "2G", fields[2]);
      if (problem == NULL)
        {
          entries++;
          g_autoptr (GError) lerr = NULL;
          if (!mh_directory_import_add_account (imp, lineno, fields[0], hash,
                                                quota, &lerr))
            {
              problem = g_strdup (lerr->message);
              /* The library numbers duplicates by entry tag: a line. */
              char *dup = strstr (problem, "duplicate of entry ");
              if (dup != NULL)
                {
                  g_autofree char *old = problem;
                  problem = g_strdup_printf ("%.*sduplicate of line %s",
                                             (int) (dup - old), old,
                                             dup + strlen ("duplicate of "
                                                           "entry "));
                }
            }
        }
      else
        entries++;
      if (problem != NULL)
        {
          LineError le = { lineno, g_steal_pointer (&problem) };
          g_array_append_val (errors, le);
        }
    }

  gboolean partial = (ctx->flags & OPT_PARTIAL) != 0;
  gboolean dry = (ctx->flags & OPT_DRY_RUN) != 0;
  MhDirectoryImportFlags flags = MH_DIRECTORY_IMPORT_NONE;
  if (dry || (errors->len > 0 && !partial))
    flags = MH_DIRECTORY_IMPORT_DRY_RUN;   /* check the rest, add nothing */
  else if (partial)
    flags = MH_DIRECTORY_IMPORT_PARTIAL;
  guint added = 0;
  g_autoptr (GError) cerr = NULL;
  gboolean committed = mh_directory_import_commit (imp, flags, &added, &cerr);
  if (!committed && mh_directory_import_get_n_failures (imp) == 0)
    return fail_error (ctx, cerr);   /* the directory itself failed */
  for (guint i = 0; i < mh_directory_import_get_n_failures (imp); i++)
    {
      guint tag = 0;
      const char *msg = mh_directory_import_get_failure (imp, i, &tag, NULL);
      g_autofree char *fixed = NULL;
      const char *dup = strstr (msg, "duplicate of entry ");
      if (dup != NULL)
        msg = fixed = g_strdup_printf ("%.*sduplicate of line %s",
                                       (int) (dup - msg), msg,
                                       dup + strlen ("duplicate of entry "));
      LineError le = { tag, g_strdup (msg) };
      g_array_append_val (errors, le);
    }
  g_array_sort (errors, line_error_cmp);
  if (flags == MH_DIRECTORY_IMPORT_DRY_RUN)
    added = 0;

  for (guint i = 0; i < errors->len; i++)
    {
      LineError *le = &g_array_index (errors, LineError, i);
      fprintf (stderr, "mhctl: import: %s:%u: %s\n", path, le->line,
               le->message);
    }
  g_autofree char *summary = NULL;
  if (dry && errors->len == 0)
    summary = g_strdup_printf ("%s: %u line(s) checked, all good (dry run: "
                               "nothing added)", path, entries);
  else if (errors->len > 0 && !partial)
    summary = g_strdup_printf ("%s: %u bad line(s) of %u; nothing added "
                               "(use --partial to add the good ones)", path,
                               errors->len, entries);
  else
    summary = g_strdup_printf ("%s: %u account(s) added, %u bad line(s)",
                               path, added, errors->len);
  if (ctx->json)
    {
      g_autoptr (GString) s = g_string_new ("{");
      gboolean first = TRUE;
      json_key (s, &first, "ok");
      g_string_append (s, errors->len == 0 ? "true" : "false");
      json_key (s, &first, "added");
      g_string_append_printf (s, "%u", added);
      json_key (s, &first, "lines");
      g_string_append_printf (s, "%u", entries);
      json_key (s, &first, "errors");
      g_string_append_c (s, '[');
      for (guint i = 0; i < errors->len; i++)
        {
          LineError *le = &g_array_index (errors, LineError, i);
          gboolean f2 = TRUE;
          g_string_append (s, i ? ", {" : "{");
          json_key (s, &f2, "line");
          g_string_append_printf (s, "%u", le->line);
          json_key (s, &f2, "error");
          json_string (s, le->message);
          g_string_append_c (s, '}');
        }
      g_string_append (s, "], ");
      first = TRUE;
      json_key (s, &first, "message");
      json_string (s, summary);
      g_string_append_c (s, '}');
      print_out (s);
    }
  else if (errors->len > 0)
    fprintf (stderr, "mhctl: import: %s\n", summary);
  else
    printf ("%s\n", summary);
  return errors->len > 0 ? EXIT_DATA : 0;
}

/* ---- The verb table ----------------------------------------------------- */

static const Verb verbs[] = {
  { "domain", "add", "DOMAIN", 1, 1, 0, domain_add,
    "Adds a hosted domain. U-label (bücher.example) and A-label "
    "(xn--bcher-kva.example) forms are the same domain." },
  { "domain", "list", "", 0, 0, 0, domain_list,
    "Lists the hosted domains with their account and alias counts." },
  { "domain", "show", "DOMAIN", 1, 1, 0, domain_show,
    "Shows one domain: names, creation time, counts and settings." },
  { "domain", "del", "DOMAIN [--force]", 1, 1, OPT_FORCE, domain_del,
    "Deletes a domain. Refused while it has accounts, aliases or domain "
    "aliases, unless --force (which deletes those too; mail on disk is "
    "kept)." },
  { "domain", "set", "DOMAIN SETTING [VALUE]", 2, 3, 0, domain_set,
    "Sets a domain setting, or unsets it without VALUE. Settings: "
    "max_accounts, max_aliases, quota_bytes, quota_messages, "
    "account_quota_bytes, account_quota_messages, case_sensitive_local_part."
  },
  { "domain-alias", "add", "ALIAS-DOMAIN TARGET-DOMAIN", 2, 2, 0,
    domain_alias_add,
    "Makes every address at ALIAS-DOMAIN mean the same local part at "
    "TARGET-DOMAIN (a hosted domain)." },
  { "domain-alias", "list", "", 0, 0, 0, domain_alias_list,
    "Lists the domain aliases." },
  { "domain-alias", "del", "ALIAS-DOMAIN", 1, 1, 0, domain_alias_del,
    "Deletes a domain alias." },
  { "user", "add", "ADDRESS [--password-stdin] [--storage SIZE] "
    "[--messages N]", 1, 1, OPT_PASSWORD_STDIN | OPT_QUOTA,
    user_add,
    "Adds an account. The password is read from stdin with "
    "--password-stdin (one line; never from the command line). Without "
    "it the account cannot log in until `user passwd` sets one. "
    "--storage and --messages set its quota (default: the domain's "
    "account quota); refused when the domain's accounts would then have "
    "more than the domain's quota." },
  { "user", "passwd", "ADDRESS --password-stdin", 1, 1, OPT_PASSWORD_STDIN,
    user_passwd,
    "Sets an account's password, read from stdin (hashed with yescrypt)." },
  { "user", "list", "[DOMAIN]", 0, 1, 0, user_list,
    "Lists accounts, of one domain or all." },
  { "user", "show", "ADDRESS", 1, 1, 0, user_show,
    "Shows one account." },
  { "user", "del", "ADDRESS", 1, 1, 0, user_del,
    "Deletes an account (its mail on disk is kept)." },
  { "user", "set", "ADDRESS KEY [VALUE]", 2, 3, 0, user_set,
    "Sets display_name, enabled (true|false), protocols (imap,pop3,"
    "submission,managesieve|all|none), password_hash (an imported hash), "
    "or a setting (quota_bytes, quota_messages). Without VALUE the key is "
    "unset." },
  { "alias", "add", "SOURCE TARGET...", 2, -1, 0, alias_add,
    "Adds an alias, or targets to an existing one. A target in a domain "
    "hosted here must be an existing account or alias." },
  { "alias", "list", "[DOMAIN]", 0, 1, 0, alias_list,
    "Lists aliases, of one domain or all." },
  { "alias", "show", "SOURCE", 1, 1, 0, alias_show,
    "Shows one alias and its targets." },
  { "alias", "del", "SOURCE [TARGET]", 1, 2, 0, alias_del,
    "Deletes an alias, or one target of it." },
  { "import", NULL, "FILE [--partial] [--dry-run]", 1, 1,
    OPT_PARTIAL | OPT_DRY_RUN, import_file,
    "Adds many accounts from FILE ('-' for stdin), one a line:\n"
    "    ADDRESS [HASH|-] [QUOTA]\n"
    "  HASH is a password hash ($y$, $6$, $2b$, {SSHA256}..., '-' for "
    "none),\n  QUOTA a size such as 500M or 2G. Blank lines and lines "
    "starting with '#'\n  are skipped. Every line is checked first and each "
    "bad one reported by\n  number; a file with a bad line adds nothing "
    "unless --partial. All\n  accounts are added in one transaction." },
};

static void
usage_all (FILE *out)
{
  fprintf (out,
           "Usage: mhctl [--data-dir DIR] [--config FILE] [--json] VERB ...\n"
           "\n"
           "Administers the mailhost data directory.\n\n"
           "Verbs:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    fprintf (out, "  %s%s%s %s\n", verbs[i].noun, verbs[i].verb ? " " : "",
             verbs[i].verb ? verbs[i].verb : "", verbs[i].args);
  mhctl_resolve_usage (out);
  mhctl_quota_usage (out);
  mhctl_store_usage (out);
  fprintf (out,
           "\nOptions:\n"
           "  --data-dir DIR   the data directory (overrides the config)\n"
           "  --config FILE    configuration file (default %s/mailhost/"
           "mailhost.conf\n"
           "                   when it exists)\n"
           "  --json           machine-readable output\n"
           "  --help           this text; `mhctl VERB --help` for a verb\n"
           "  --version        the version\n"
           "\nExit codes: 0 ok, 1 usage, 2 not found or conflict, 3 data "
           "error.\n", MH_SYSCONFDIR);
}

static void
usage_noun (FILE *out, const char *noun)
{
  fprintf (out, "Usage:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (strcmp (verbs[i].noun, noun) == 0)
      fprintf (out, "  mhctl %s %s %s\n", noun, verbs[i].verb ? verbs[i].verb
                                                               : "",
               verbs[i].args);
}

static void
usage_verb (FILE *out, const Verb *v)
{
  fprintf (out, "Usage: mhctl [--data-dir DIR] [--json] %s%s%s %s\n\n",
           v->noun, v->verb ? " " : "", v->verb ? v->verb : "", v->args);
  /* Word-wrap the help at 76 columns; explicit newlines are kept. */
  g_auto (GStrv) paras = g_strsplit (v->help, "\n", -1);
  for (guint p = 0; paras[p]; p++)
    {
      g_auto (GStrv) words = g_strsplit (paras[p], " ", -1);
      gsize col = 0;
      for (guint w = 0; words[w]; w++)
        {
          if (words[w][0] == '\0' && col > 0)
            continue;
          gsize wl = strlen (words[w]);
          if (col > 0 && col + 1 + wl > 76)
            {
              fputc ('\n', out);
              col = 0;
            }
          if (col == 0)
            {
              fputs (p == 0 || paras[p][0] != ' ' ? "  " : "", out);
              col = 2;
            }
          else
            {
              fputc (' ', out);
              col++;
            }
          fputs (words[w], out);
          col += wl;
        }
      fputc ('\n', out);
    }
}

static gboolean
noun_known (const char *noun)
{
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (strcmp (verbs[i].noun, noun) == 0)
      return TRUE;
  return FALSE;
}

static const Verb *
find_verb (const char *noun, const char *verb)
{
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (strcmp (verbs[i].noun, noun) == 0
        && (verbs[i].verb == NULL
            || (verb != NULL && strcmp (verbs[i].verb, verb) == 0)))
      return &verbs[i];
  return NULL;
}

/* ---- main --------------------------------------------------------------- */

static char *
resolve_data_dir (Ctx *ctx, int *code)
{
  if (ctx->data_dir != NULL)
    return g_strdup (ctx->data_dir);
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) config = NULL;
  if (ctx->config_path != NULL)
    config = mh_config_load (ctx->config_path, &error);
  else
    {
      g_autofree char *def = g_build_filename (MH_SYSCONFDIR, "mailhost",
                                               "mailhost.conf", NULL);
      if (g_file_test (def, G_FILE_TEST_EXISTS))
        config = mh_config_load (def, &error);
      else
        config = mh_config_new ();
    }
  if (config == NULL)
    {
      *code = fail (ctx, EXIT_DATA, "%s", error->message);
      return NULL;
    }
  return g_strdup (mh_config_get_string (config, "general", "data_dir"));
}

int
main (int argc, char **argv)
{
  Ctx ctx = { 0 };
  g_autoptr (GPtrArray) pos = g_ptr_array_new ();
  gboolean version = FALSE;
  gboolean options_done = FALSE;
  int code = 0;

  /* resolve and alias temp (bin/mhctl-resolve.c) parse their own
   * options (--from, --days, --at, ...). */
  if (mhctl_resolve_main (argc, argv, &code))
    return code;
  /* quota (bin/mhctl-quota.c) likewise. */
  if (mhctl_quota_main (argc, argv, &code))
    return code;
  if (mhctl_store_main (argc, argv, &code))
    return code;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (options_done || a[0] != '-' || strcmp (a, "-") == 0)
        {
          g_ptr_array_add (pos, argv[i]);
          continue;
        }
      if (strcmp (a, "--") == 0)
        options_done = TRUE;
      else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        ctx.help = TRUE;
      else if (strcmp (a, "--version") == 0)
        version = TRUE;
      else if (strcmp (a, "--json") == 0)
        ctx.json = TRUE;
      else if (strcmp (a, "--password-stdin") == 0)
        ctx.flags |= OPT_PASSWORD_STDIN;
      else if (strcmp (a, "--force") == 0)
        ctx.flags |= OPT_FORCE;
      else if (strcmp (a, "--partial") == 0)
        ctx.flags |= OPT_PARTIAL;
      else if (strcmp (a, "--dry-run") == 0)
        ctx.flags |= OPT_DRY_RUN;
      else if (strcmp (a, "--storage") == 0 || strcmp (a, "--messages") == 0)
        {
          if (i + 1 >= argc)
            return fail (&ctx, EXIT_USAGE, "%s needs a value", a);
          *(a[2] == 's' ? &ctx.storage : &ctx.messages) = argv[++i];
          ctx.flags |= OPT_QUOTA;
        }
      else if (strcmp (a, "--data-dir") == 0 || strcmp (a, "--config") == 0)
        {
          if (i + 1 >= argc)
            return fail (&ctx, EXIT_USAGE, "%s needs a value", a);
          if (a[2] == 'd')
            ctx.data_dir = argv[++i];
          else
            ctx.config_path = argv[++i];
        }
      else if (g_str_has_prefix (a, "--data-dir="))
        ctx.data_dir = (char *) a + strlen ("--data-dir=");
      else if (g_str_has_prefix (a, "--config="))
        ctx.config_path = (char *) a + strlen ("--config=");
      else if (strcmp (a, "--password") == 0
               || g_str_has_prefix (a, "--password="))
        return fail (&ctx, EXIT_USAGE, "passwords are never taken from the "
                     "command line: use --password-stdin");
      else
        {
          fprintf (stderr, "mhctl: unknown option '%s' (see mhctl --help)\n",
                   a);
          return EXIT_USAGE;
        }
    }

  if (version)
    {
      printf ("mhctl (libmailhost) %s\n", mh_version ());
      return 0;
    }
  if (pos->len == 0)
    {
      if (ctx.help)
        {
          usage_all (stdout);
          return 0;
        }
      usage_all (stderr);
      return EXIT_USAGE;
    }
  const char *noun = pos->pdata[0];
  if (!noun_known (noun))
    {
      fprintf (stderr, "mhctl: unknown verb '%s' (see mhctl --help)\n", noun);
      return EXIT_USAGE;
    }
  const char *verb_name = pos->len > 1 ? pos->pdata[1] : NULL;
  const Verb *v = find_verb (noun, verb_name);
  if (v == NULL)
    {
      if (ctx.help && verb_name == NULL)
        {
          usage_noun (stdout, noun);
          return 0;
        }
      if (verb_name == NULL)
        fprintf (stderr, "mhctl: %s: which one?\n", noun);
      else
        fprintf (stderr, "mhctl: %s: unknown verb '%s'\n", noun, verb_name);
      usage_noun (stderr, noun);
      return EXIT_USAGE;
    }
  g_autofree char *name = v->verb ? g_strdup_printf ("%s %s", v->noun,
                                                     v->verb)
                                  : g_strdup (v->noun);
  ctx.name = name;
  if (ctx.help)
    {
      usage_verb (stdout, v);
      return 0;
    }
  guint skip = v->verb ? 2 : 1;
  int n = (int) pos->len - (int) skip;
  char **args = (char **) pos->pdata + skip;
  if (n < v->min_args || (v->max_args >= 0 && n > v->max_args))
    {
      fail (&ctx, EXIT_USAGE, "expected %s", *v->args ? v->args
                                                      : "no arguments");
      usage_verb (stderr, v);
      return EXIT_USAGE;
    }
  guint bad = ctx.flags & ~v->options;
  if (bad)
    {
      const char *opt = bad & OPT_PASSWORD_STDIN ? "--password-stdin"
                        : bad & OPT_FORCE        ? "--force"
                        : bad & OPT_PARTIAL      ? "--partial"
                        : bad & OPT_QUOTA        ? "--storage/--messages"
                                                 : "--dry-run";
      return fail (&ctx, EXIT_USAGE, "%s does not apply here", opt);
    }

  g_autofree char *data_dir = resolve_data_dir (&ctx, &code);
  if (data_dir == NULL)
    return code;
  g_autoptr (GError) error = NULL;
  ctx.dir = mh_directory_open (data_dir, &error);
  if (ctx.dir == NULL)
    return fail_error (&ctx, error);
  code = v->run (&ctx, args, n);
  mh_directory_unref (ctx.dir);
  return code;
}
