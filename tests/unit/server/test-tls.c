/* Unit tests of lib/server TLS helpers: self-signed generation, the
 * cert/key check, fingerprints, priority strings, and a handshake with a
 * GnuTLS client against the running server (STARTTLS on the echo
 * service). */
#include "mh-test.h"
#include "server/server-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <gnutls/x509.h>

static void
generate (const char *dir, const char *name, MhTlsKeyType type,
          char **cert_out, char **key_out)
{
  g_autofree char *c = g_strdup_printf ("%s/%s.pem", dir, name);
  g_autofree char *k = g_strdup_printf ("%s/%s.key", dir, name);
  const char *names[] = { "mail.example.org", "127.0.0.1", "::1", NULL };
  g_autoptr (GError) error = NULL;
  if (!mh_server_tls_generate_self_signed (c, k, names, type, &error))
    fail_msg ("generate: %s", error->message);
  *cert_out = g_steal_pointer (&c);
  *key_out = g_steal_pointer (&k);
}

static void
test_generate_and_check (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *cert = NULL, *key = NULL;
  g_autoptr (GError) error = NULL;

  generate (dir, "ec", MH_TLS_KEY_ECDSA_P256, &cert, &key);
  struct stat st;
  assert_int_equal (stat (key, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0600);
  assert_true (mh_server_tls_check_files (cert, key, &error));

  /* The certificate carries the names, a year of validity, the key. */
  g_autofree char *pem = NULL;
  gsize len = 0;
  assert_true (g_file_get_contents (cert, &pem, &len, NULL));
  gnutls_x509_crt_t crt;
  gnutls_datum_t d = { (unsigned char *) pem, (unsigned) len };
  assert_int_equal (gnutls_x509_crt_init (&crt), 0);
  assert_int_equal (gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_PEM), 0);
  assert_int_not_equal (gnutls_x509_crt_check_hostname (crt,
                                                        "mail.example.org"),
                        0);
  assert_int_not_equal (gnutls_x509_crt_check_ip (
                            crt, (const unsigned char *) "\x7f\0\0\x01", 4, 0),
                        0);
  assert_int_equal (gnutls_x509_crt_check_hostname (crt, "other.example"),
                    0);
  time_t exp = gnutls_x509_crt_get_expiration_time (crt);
  time_t act = gnutls_x509_crt_get_activation_time (crt);
  assert_true (exp - act >= 364 * 86400 && exp - act <= 366 * 86400);
  unsigned bits = 0;
  assert_int_equal (gnutls_x509_crt_get_pk_algorithm (crt, &bits),
                    GNUTLS_PK_ECDSA);
  gnutls_x509_crt_deinit (crt);

  g_autofree char *fp = mh_server_tls_get_fingerprint (cert, &error);
  assert_non_null (fp);
  assert_int_equal (strlen (fp), 32 * 3 - 1);
  assert_true (g_regex_match_simple ("^([0-9A-F]{2}:){31}[0-9A-F]{2}$", fp,
                                     0, 0));
  mh_test_rmtree (dir);
}

static void
test_rsa_key (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *cert = NULL, *key = NULL;
  generate (dir, "rsa", MH_TLS_KEY_RSA_2048, &cert, &key);
  assert_true (mh_server_tls_check_files (cert, key, NULL));
  mh_test_rmtree (dir);
}

static void
test_mismatch_and_missing (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;
  g_autoptr (GError) error = NULL;
  generate (dir, "one", MH_TLS_KEY_ECDSA_P256, &c1, &k1);
  generate (dir, "two", MH_TLS_KEY_ECDSA_P256, &c2, &k2);

  assert_false (mh_server_tls_check_files (c1, k2, &error));
  g_autofree char *want = g_strdup_printf (
      "tls: certificate %s does not match key %s", c1, k2);
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_TLS, want,
                        NULL);
  g_clear_error (&error);

  g_autofree char *nope = g_build_filename (dir, "nope.pem", NULL);
  assert_false (mh_server_tls_check_files (nope, k1, &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_TLS,
                        "tls: cannot read certificate", "nope.pem", NULL);
  g_clear_error (&error);

  g_autofree char *junk = mh_test_write_file (dir, "junk.pem", "hello\n");
  assert_false (mh_server_tls_check_files (junk, k1, &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_TLS,
                        "junk.pem", NULL);
  g_clear_error (&error);

  const char *bad_names[] = { "", NULL };
  assert_false (mh_server_tls_generate_self_signed (c1, k1, bad_names,
                                                    MH_TLS_KEY_ECDSA_P256,
                                                    &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_TLS,
                        "not a usable certificate name", NULL);
  mh_test_rmtree (dir);
}

static void
test_priority_strings (void **state)
{
  g_autoptr (MhConfig) def = mh_config_new ();
  g_autofree char *p1 = mh_server__tls_priority_string (def);
  assert_string_equal (p1, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");

  g_autoptr (MhConfig) c = mh_config_load_data (
      "[tls]\nmin_version = 1.3\npriority = SECURE256:+VERS-TLS1.0\n", -1,
      "t.conf", NULL);
  g_autofree char *p2 = mh_server__tls_priority_string (c);
  /* the floor is appended last, so it wins over the configured string */
  assert_string_equal (p2, "SECURE256:+VERS-TLS1.0:-VERS-ALL:+VERS-TLS1.3");
}

static void
test_bad_priority_is_reported (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *tls = g_build_filename (dir, "tls", NULL);
  g_mkdir_with_parents (tls, 0700);
  g_autofree char *cert = NULL, *key = NULL;
  generate (tls, "cert", MH_TLS_KEY_ECDSA_P256, &cert, &key);
  g_autofree char *text = g_strdup_printf (
      "[general]\ndata_dir = %s\n[tls]\ncert = %s\nkey = %s\n"
      "priority = NONSENSE-STRING\n", dir, cert, key);
  g_autoptr (MhConfig) c = mh_config_load_data (text, -1, "t.conf", NULL);
  g_autoptr (GError) error = NULL;
  MhTlsCreds *creds = mh_server__tls_creds_load (c, &error);
  assert_null (creds);
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_TLS,
                        "t.conf: [tls] priority", "NONSENSE-STRING", NULL);
  mh_test_rmtree (dir);
}

/* ---- STARTTLS end to end with a GnuTLS client --------------------------- */

typedef struct
{
  MhServer *server;
  GMainContext *ctx;
  guint port;
  GMutex lock;
  GCond cond;
  gboolean ready;
} Bg;

static gpointer
bg_thread (gpointer p)
{
  Bg *bg = p;
  g_main_context_push_thread_default (bg->ctx);
  g_autoptr (GError) error = NULL;
  if (!mh_server_start (bg->server, &error))
    g_error ("start: %s", error->message);
  g_auto (GStrv) l = mh_server_get_listeners (bg->server);
  g_mutex_lock (&bg->lock);
  bg->port = (guint) atoi (strrchr (l[0], ':') + 1);
  bg->ready = TRUE;
  g_cond_signal (&bg->cond);
  g_mutex_unlock (&bg->lock);
  mh_server_run (bg->server);
  g_main_context_pop_thread_default (bg->ctx);
  return NULL;
}

static gboolean
bg_stop (gpointer p)
{
  mh_server_shutdown (p);
  return G_SOURCE_REMOVE;
}

static char *
read_line (int fd)
{
  GString *s = g_string_new (NULL);
  char ch;
  while (recv (fd, &ch, 1, 0) == 1 && ch != '\n')
    g_string_append_c (s, ch);
  return g_string_free (s, FALSE);
}

static char *
tls_line (gnutls_session_t t)
{
  GString *s = g_string_new (NULL);
  char ch;
  while (gnutls_record_recv (t, &ch, 1) == 1 && ch != '\n')
    g_string_append_c (s, ch);
  return g_string_free (s, FALSE);
}

static void
test_starttls_negotiates_and_reports (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *tlsdir = g_build_filename (dir, "tls", NULL);
  g_mkdir_with_parents (tlsdir, 0700);
  g_autofree char *cert = g_build_filename (tlsdir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (tlsdir, "key.pem", NULL);
  const char *names[] = { "localhost", NULL };
  assert_true (mh_server_tls_generate_self_signed (
      cert, key, names, MH_TLS_KEY_ECDSA_P256, NULL));
  g_autofree char *text = g_strdup_printf (
      "[general]\ndata_dir = %s\n[echo]\nenabled = true\n"
      "listen = 127.0.0.1:0\n", dir);
  g_autoptr (MhConfig) c = mh_config_load_data (text, -1, "t.conf", NULL);
  Bg bg = { 0 };
  bg.server = mh_server_new (c, NULL);
  bg.ctx = g_main_context_new ();
  assert_true (mh_server_register_echo_service (bg.server, NULL));
  GThread *th = g_thread_new ("bg", bg_thread, &bg);
  g_mutex_lock (&bg.lock);
  while (!bg.ready)
    g_cond_wait (&bg.cond, &bg.lock);
  g_mutex_unlock (&bg.lock);

  int fd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_port = htons ((guint16) bg.port) };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  struct timeval tv = { .tv_sec = 5 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  g_free (read_line (fd));
  const char *cmd = "EHLO t\r\nSTARTTLS\r\n";
  send (fd, cmd, strlen (cmd), 0);
  g_free (read_line (fd)); /* 250-mailhost echo */
  g_autofree char *l2 = read_line (fd);
  g_autofree char *l3 = read_line (fd);
  assert_true (g_str_has_prefix (l2, "250 STARTTLS"));
  assert_true (g_str_has_prefix (l3, "220 2.0.0"));

  gnutls_certificate_credentials_t cred;
  gnutls_session_t t;
  gnutls_certificate_allocate_credentials (&cred);
  assert_true (gnutls_certificate_set_x509_trust_file (cred, cert,
                                                       GNUTLS_X509_FMT_PEM)
               > 0);
  gnutls_init (&t, GNUTLS_CLIENT);
  gnutls_set_default_priority (t);
  gnutls_credentials_set (t, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_server_name_set (t, GNUTLS_NAME_DNS, "localhost", 9);
  gnutls_session_set_verify_cert (t, "localhost", 0);
  gnutls_transport_set_int (t, fd);
  int rc;
  do
    rc = gnutls_handshake (t);
  while (rc < 0 && !gnutls_error_is_fatal (rc));
  assert_int_equal (rc, 0);

  const char *q = "TLS\r\nEHLO t\r\n";
  gnutls_record_send (t, q, strlen (q));
  g_autofree char *info = tls_line (t);
  g_autofree char *ehlo = tls_line (t);
  g_autofree char *want = g_strdup_printf (
      "250 %s %s", gnutls_protocol_get_name (gnutls_protocol_get_version (t)),
      gnutls_ciphersuite_get (t));
  assert_true (g_str_has_prefix (info, want));
  /* no second STARTTLS offered inside TLS */
  assert_true (g_str_has_prefix (ehlo, "250 mailhost echo"));

  gnutls_bye (t, GNUTLS_SHUT_WR);
  gnutls_deinit (t);
  gnutls_certificate_free_credentials (cred);
  close (fd);

  g_main_context_invoke (bg.ctx, bg_stop, bg.server);
  g_thread_join (th);
  mh_server_unref (bg.server);
  g_main_context_unref (bg.ctx);
  mh_test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_generate_and_check),
    cmocka_unit_test (test_rsa_key),
    cmocka_unit_test (test_mismatch_and_missing),
    cmocka_unit_test (test_priority_strings),
    cmocka_unit_test (test_bad_priority_is_reported),
    cmocka_unit_test (test_starttls_negotiates_and_reports),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
