/* The authenticator against a real directory in a temporary data dir
 * (issue 3): SASL and plain logins, refusals, throttle delays, logs. */
#include "mh-test.h"
#include "auth/auth-private.h"

#include <crypt.h>
#include <string.h>

#define SEC ((gint64) G_USEC_PER_SEC)
#define T0 (1000 * SEC)
#define PASSWORD "correct horse battery"

typedef struct
{
  char *tmp;
  MhDirectory *dir;
  MhAuthenticator *auth;
} Fixture;

/* Every log record, "PRIORITY|service|peer|message\n". */
static GString *logged;
static GMutex log_lock;

static GLogWriterOutput
capture (GLogLevelFlags level, const GLogField *fields, gsize n,
         gpointer user_data)
{
  const char *prio = "", *svc = "", *peer = "", *msg = "";
  for (gsize i = 0; i < n; i++)
    {
      const char *v = fields[i].value;
      if (fields[i].length >= 0)
        continue; /* only string fields are ours */
      if (strcmp (fields[i].key, "PRIORITY") == 0)
        prio = v;
      else if (strcmp (fields[i].key, "MH_SERVICE") == 0)
        svc = v;
      else if (strcmp (fields[i].key, "MH_PEER") == 0)
        peer = v;
      else if (strcmp (fields[i].key, "MESSAGE") == 0)
        msg = v;
    }
  g_mutex_lock (&log_lock);
  g_string_append_printf (logged, "%s|%s|%s|%s\n", prio, svc, peer, msg);
  g_mutex_unlock (&log_lock);
  return G_LOG_WRITER_HANDLED;
}

/* The default hash (yescrypt) costs ~0.1 s a check by design; these
 * tests make dozens, so most accounts get a cheap sha256-crypt hash, a
 * scheme the directory verifies like any imported one. */
static gboolean
add_cheap_account (MhDirectory *dir, const char *address,
                   const char *password, GError **error)
{
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  struct crypt_data cd = { 0 };
  if (crypt_gensalt_rn ("$5$", 1000, NULL, 0, salt, sizeof salt) == NULL)
    fail_msg ("crypt_gensalt failed");
  const char *hash = crypt_r (password, salt, &cd);
  if (hash == NULL || hash[0] == '*')
    fail_msg ("crypt failed");
  return mh_directory_account_add (dir, address, NULL, error)
         && mh_directory_account_set_password_hash (dir, address, hash,
                                                    error);
}

static int
setup (void **state)
{
  g_autoptr (GError) error = NULL;
  Fixture *f = g_new0 (Fixture, 1);
  f->tmp = mh_test_mkdtemp ();
  f->dir = mh_directory_open (f->tmp, &error);
  if (f->dir == NULL
      || !mh_directory_domain_add (f->dir, "example.org", &error)
      || !add_cheap_account (f->dir, "bob@example.org", PASSWORD, &error)
      || !add_cheap_account (f->dir, "eve@example.org", "eve's password",
                             &error))
    fail_msg ("directory set-up: %s", error->message);
  f->auth = mh_authenticator_new (f->dir, NULL);
  g_string_truncate (logged, 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  mh_authenticator_unref (f->auth);
  mh_directory_unref (f->dir);
  mh_test_rmtree (f->tmp);
  g_free (f->tmp);
  g_free (f);
  return 0;
}

static MhSaslCredentials *
plain_creds (const char *authzid, const char *authcid, const char *pw)
{
  GString *raw = g_string_new (authzid ? authzid : "");
  g_string_append_c (raw, '\0');
  g_string_append (raw, authcid);
  g_string_append_c (raw, '\0');
  g_string_append (raw, pw);
  g_autofree char *ir = g_base64_encode ((const guchar *) raw->str,
                                         raw->len);
  g_string_free (raw, TRUE);

  g_autoptr (MhSaslServer) s = mh_sasl_server_new ("PLAIN", NULL, NULL);
  assert_int_equal (mh_sasl_server_start (s, ir, strlen (ir), NULL),
                    MH_SASL_STATUS_DONE);
  return mh_sasl_credentials_copy (mh_sasl_server_get_credentials (s));
}

static void
test_sasl_login_ok (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (MhSaslCredentials) c = plain_creds (NULL, "bob@example.org",
                                                 PASSWORD);
  guint delay = 99;
  g_autoptr (MhAccountInfo) a = mh_authenticator_check (
      f->auth, c, "imap", "192.0.2.1", T0, &delay, &error);
  assert_null (error);
  assert_non_null (a);
  assert_string_equal (mh_account_info_get_ascii_address (a),
                       "bob@example.org");
  assert_int_equal (delay, 0);
  assert_non_null (strstr (logged->str,
                           "|imap|192.0.2.1|authenticated "
                           "user=<bob@example.org>"));

  /* An account with the directory's default hash works the same. */
  assert_true (mh_directory_account_add (f->dir, "carol@example.org",
                                         "carol's pw", &error));
  g_autoptr (MhAccountInfo) ac = mh_authenticator_check_password (
      f->auth, "carol@example.org", "carol's pw", "imap", "192.0.2.1", T0,
      &delay, &error);
  assert_null (error);
  assert_non_null (ac);

  /* The same account spelled differently as authzid is fine... */
  g_autoptr (MhSaslCredentials) c2 = plain_creds ("BOB@Example.ORG",
                                                  "bob@example.org",
                                                  PASSWORD);
  g_autoptr (MhAccountInfo) a2 = mh_authenticator_check (
      f->auth, c2, "submission", "192.0.2.1", T0, NULL, &error);
  assert_null (error);
  assert_non_null (a2);
}

static void
test_authzid_refused (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;
  /* ...another account is proxy authorization, which we refuse... */
  g_autoptr (MhSaslCredentials) c = plain_creds ("eve@example.org",
                                                 "bob@example.org",
                                                 PASSWORD);
  assert_null (mh_authenticator_check (f->auth, c, "imap", "192.0.2.1", T0,
                                       NULL, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_AUTHZID,
                        "authenticated as 'bob@example.org'",
                        "act as 'eve@example.org'",
                        "proxy authorization is not supported", NULL);
  g_clear_error (&error);
  /* ...as is one that does not exist. */
  g_autoptr (MhSaslCredentials) c2 = plain_creds ("nobody@example.org",
                                                  "bob@example.org",
                                                  PASSWORD);
  assert_null (mh_authenticator_check (f->auth, c2, "imap", "192.0.2.1", T0,
                                       NULL, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_AUTHZID,
                        "nobody@example.org", NULL);
  g_clear_error (&error);
  /* With a wrong password the answer is the plain failure. */
  g_autoptr (MhSaslCredentials) c3 = plain_creds ("eve@example.org",
                                                  "bob@example.org", "x");
  assert_null (mh_authenticator_check (f->auth, c3, "imap", "192.0.2.1", T0,
                                       NULL, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_FAILED, "",
                        NULL);
}

static void
test_failures_are_alike_and_delayed (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  guint delay = 0;

  assert_null (mh_authenticator_check_password (
      f->auth, "bob@example.org", "wrong", "pop3", "203.0.113.9", T0,
      &delay, &e1));
  assert_null (mh_authenticator_check_password (
      f->auth, "nobody@example.org", "wrong", "pop3", "203.0.113.9", T0,
      &delay, &e2));
  /* Unknown user and wrong password: same code, same message. */
  mh_test_assert_error (e1, MH_AUTH_ERROR, MH_AUTH_ERROR_FAILED,
                        "authentication failed", NULL);
  mh_test_assert_error (e2, MH_AUTH_ERROR, MH_AUTH_ERROR_FAILED, "", NULL);
  assert_string_equal (e1->message, e2->message);

  /* Logged at notice (syslog 5) with service, peer and user; never the
   * password. */
  assert_non_null (strstr (logged->str,
                           "5|pop3|203.0.113.9|authentication failed: "
                           "user=<bob@example.org>"));
  assert_non_null (strstr (logged->str, "user=<nobody@example.org>"));
  assert_null (strstr (logged->str, "wrong"));
  assert_null (strstr (logged->str, PASSWORD));

  /* A third failure from that network, then the delay starts. */
  g_autoptr (GError) e3 = NULL;
  mh_authenticator_check_password (f->auth, "bob@example.org", "wrong",
                                   "pop3", "203.0.113.9", T0, &delay, &e3);
  assert_int_equal (delay, 0);
  g_autoptr (GError) e4 = NULL;
  g_autoptr (MhAccountInfo) a = mh_authenticator_check_password (
      f->auth, "bob@example.org", PASSWORD, "pop3", "203.0.113.9", T0,
      &delay, &e4);
  /* The right password from a throttled network works, after the wait. */
  assert_non_null (a);
  assert_int_equal (delay, 500);

  /* Bob at home is not slowed by the attack on his name. */
  g_autoptr (MhAccountInfo) b = mh_authenticator_check_password (
      f->auth, "bob@example.org", PASSWORD, "imap", "198.51.100.1", T0,
      &delay, NULL);
  assert_non_null (b);
  guint d2 = 1;
  for (int i = 0; i < 5; i++)
    mh_authenticator_check_password (f->auth, "bob@example.org", "guess",
                                     "imap", "2001:db8::1", T0, &d2, NULL);
  /* (the 5th guess: 6 failures on his name from unknown networks) */
  assert_int_equal (d2, 4000);
  g_autoptr (MhAccountInfo) b2 = mh_authenticator_check_password (
      f->auth, "bob@example.org", PASSWORD, "imap", "198.51.100.1", T0,
      &delay, NULL);
  assert_non_null (b2);
  assert_int_equal (delay, 0);
}

static void
test_idna_spellings_share_a_counter (void **state)
{
  Fixture *f = *state;
  guint delay = 0;
  const char *names[] = { ("bob@b\xc3\xbc" "cher.example"),
                          "bob@xn--bcher-kva.example",
                          "BOB@XN--BCHER-KVA.EXAMPLE" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *ip = g_strdup_printf ("192.0.2.%u", (guint) i + 1);
      mh_authenticator_check_password (f->auth, names[i], "x", "imap", ip,
                                       T0, &delay, NULL);
    }
  assert_int_equal (mh_auth_throttle_delay_ms (
                        mh_authenticator_get_throttle (f->auth),
                        "192.0.2.99", "bob@xn--bcher-kva.example", T0),
                    500);
}

static void
test_disabled (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;

  assert_true (mh_directory_account_set_protocols (
      f->dir, "bob@example.org", MH_DIRECTORY_PROTOCOL_IMAP, &error));
  /* imaps is imap */
  g_autoptr (MhAccountInfo) a = mh_authenticator_check_password (
      f->auth, "bob@example.org", PASSWORD, "imaps", "192.0.2.1", T0, NULL,
      &error);
  assert_non_null (a);
  /* pop3 is not allowed for him */
  assert_null (mh_authenticator_check_password (
      f->auth, "bob@example.org", PASSWORD, "pop3", "192.0.2.1", T0, NULL,
      &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_DISABLED,
                        "login refused", NULL);
  g_clear_error (&error);
  assert_non_null (strstr (logged->str, "5|pop3|192.0.2.1|login refused: "
                                        "user=<bob@example.org>"));

  assert_true (mh_directory_account_set_enabled (f->dir, "bob@example.org",
                                                 FALSE, &error));
  assert_null (mh_authenticator_check_password (
      f->auth, "bob@example.org", PASSWORD, "imap", "192.0.2.1", T0, NULL,
      &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_DISABLED, "",
                        NULL);
  g_clear_error (&error);
  /* A disabled account with a wrong password is a plain failure. */
  assert_null (mh_authenticator_check_password (
      f->auth, "bob@example.org", "nope", "imap", "192.0.2.1", T0, NULL,
      &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_FAILED, "",
                        NULL);
}

static void
test_malformed_plain_login (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;
  guint delay = 7;

  assert_null (mh_authenticator_check_password (
      f->auth, "", "pw", "imap", "192.0.2.7", T0, &delay, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                        "empty user name", NULL);
  assert_int_equal (delay, 0);
  g_clear_error (&error);
  assert_null (mh_authenticator_check_password (
      f->auth, "bob@example.org", "p\xffw", "imap", "192.0.2.7", T0, &delay,
      &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                        "password is not valid UTF-8", NULL);
  g_clear_error (&error);
  g_autofree char *long_pw = g_strnfill (MH_LIMIT_PASSWORD_MAX + 1, 'p');
  assert_null (mh_authenticator_check_password (
      f->auth, "bob@example.org", long_pw, "imap", "192.0.2.7", T0, &delay,
      &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                        "password is 1025 bytes", NULL);
  /* Junk counts against the sender's network. */
  assert_int_equal (mh_auth_throttle_delay_ms (
                        mh_authenticator_get_throttle (f->auth),
                        "192.0.2.7", NULL, T0),
                    500);
}

static void
test_mechanisms_and_tls (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;

  assert_false (mh_authenticator_plaintext_allowed (f->auth, FALSE));
  assert_true (mh_authenticator_plaintext_allowed (f->auth, TRUE));
  g_auto (GStrv) clear = mh_authenticator_list_mechanisms (f->auth, FALSE);
  assert_int_equal (g_strv_length (clear), 0);
  g_auto (GStrv) tls = mh_authenticator_list_mechanisms (f->auth, TRUE);
  assert_int_equal (g_strv_length (tls), 2);

  assert_null (mh_authenticator_sasl_new (f->auth, "plain", FALSE, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR,
                        MH_AUTH_ERROR_ENCRYPTION_REQUIRED, "needs TLS",
                        NULL);
  g_clear_error (&error);
  assert_null (mh_authenticator_sasl_new (f->auth, "GSSAPI", TRUE, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MECHANISM,
                        "GSSAPI", NULL);
  g_clear_error (&error);
  g_autoptr (MhSaslServer) s = mh_authenticator_sasl_new (f->auth, "login",
                                                          TRUE, &error);
  assert_non_null (s);

  /* [auth] allow_plaintext = true, and the throttle settings. */
  g_autoptr (MhConfig) cfg = mh_config_load_data (
      "[auth]\nallow_plaintext = true\nfails_before_delay = 1\n"
      "max_delay = 2s\nforget_after = 1m\n",
      -1, "test.conf", &error);
  assert_non_null (cfg);
  g_autoptr (MhAuthenticator) open = mh_authenticator_new (f->dir, cfg);
  assert_true (mh_authenticator_plaintext_allowed (open, FALSE));
  g_autoptr (MhSaslServer) s2 = mh_authenticator_sasl_new (open, "PLAIN",
                                                           FALSE, &error);
  assert_non_null (s2);
  guint delay = 0;
  for (int i = 0; i < 10; i++)
    mh_authenticator_check_password (open, "bob@example.org", "x", "imap",
                                     "192.0.2.1", T0, &delay, NULL);
  assert_int_equal (delay, 2000); /* capped at max_delay */
  MhAuthThrottle *t = mh_authenticator_get_throttle (open);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", NULL,
                                               T0 + 60 * SEC + 1),
                    0); /* forget_after */
}

int
main (void)
{
  logged = g_string_new (NULL);
  g_log_set_writer_func (capture, NULL, NULL);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_sasl_login_ok, setup, teardown),
    cmocka_unit_test_setup_teardown (test_authzid_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_failures_are_alike_and_delayed,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_idna_spellings_share_a_counter,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_disabled, setup, teardown),
    cmocka_unit_test_setup_teardown (test_malformed_plain_login, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_mechanisms_and_tls, setup,
                                     teardown),
  };
  int rc = cmocka_run_group_tests (tests, NULL, NULL);
  g_string_free (logged, TRUE);
  return rc;
}
