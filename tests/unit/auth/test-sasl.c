/* SASL PLAIN and LOGIN server exchanges: happy paths and every kind of
 * malformed input (issue 3). */
#include "mh-test.h"
#include "auth/auth-private.h"

#include <string.h>

/* base64 of @len raw bytes (which may hold NULs). */
static char *
b64 (const char *raw, gsize len)
{
  return g_base64_encode ((const guchar *) raw, len);
}

/* Runs a whole exchange: @ir (NULL = none) then @lines; returns the final
 * status and sets *error_out. Asserts each intermediate status is
 * CHALLENGE. */
static MhSaslStatus
run (MhSaslServer *s, const char *ir, const char *const *lines,
     GError **error_out)
{
  MhSaslStatus st = mh_sasl_server_start (s, ir, ir ? strlen (ir) : 0,
                                          error_out);
  for (gsize i = 0; lines && lines[i]; i++)
    {
      if (st != MH_SASL_STATUS_CHALLENGE)
        return st;
      st = mh_sasl_server_feed (s, lines[i], strlen (lines[i]), error_out);
    }
  return st;
}

static MhSaslServer *
new_mech (const char *name)
{
  g_autoptr (GError) error = NULL;
  MhSaslServer *s = mh_sasl_server_new (name, NULL, &error);
  assert_null (error);
  assert_non_null (s);
  return s;
}

/* Expects the exchange to fail with @code and a message containing
 * @needle. */
static void
expect_fail (const char *mech, const char *ir, const char *const *lines,
             int code, const char *needle)
{
  g_autoptr (MhSaslServer) s = new_mech (mech);
  g_autoptr (GError) error = NULL;
  MhSaslStatus st = run (s, ir, lines, &error);
  assert_int_equal (st, MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, code, needle, NULL);
  assert_int_equal (mh_sasl_server_get_status (s), MH_SASL_STATUS_FAILED);
  assert_null (mh_sasl_server_get_credentials (s));
  assert_string_equal (mh_sasl_server_get_challenge (s), "");
}

/* ---- Mechanism list ---------------------------------------------------- */

static void
test_mechanism_list (void **state)
{
  g_auto (GStrv) none = mh_sasl_mechanisms_list (FALSE, FALSE);
  assert_int_equal (g_strv_length (none), 0);
  g_auto (GStrv) tls = mh_sasl_mechanisms_list (TRUE, FALSE);
  assert_int_equal (g_strv_length (tls), 2);
  assert_string_equal (tls[0], "PLAIN");
  assert_string_equal (tls[1], "LOGIN");
  g_auto (GStrv) allowed = mh_sasl_mechanisms_list (FALSE, TRUE);
  assert_int_equal (g_strv_length (allowed), 2);

  assert_true (mh_sasl_mechanism_allowed ("plain", TRUE, FALSE));
  assert_false (mh_sasl_mechanism_allowed ("PLAIN", FALSE, FALSE));
  assert_true (mh_sasl_mechanism_allowed ("Login", FALSE, TRUE));
  assert_false (mh_sasl_mechanism_allowed ("CRAM-MD5", TRUE, TRUE));
  assert_false (mh_sasl_mechanism_allowed (NULL, TRUE, TRUE));
  assert_true (mh_sasl_mechanism_is_plaintext ("LOGIN"));
  assert_false (mh_sasl_mechanism_is_plaintext ("XOAUTH2"));
  assert_true (mh_sasl_mechanism_is_known ("plain"));
  assert_false (mh_sasl_mechanism_is_known ("PLAINX"));
}

static void
test_unknown_mechanism (void **state)
{
  g_autoptr (GError) error = NULL;
  assert_null (mh_sasl_server_new ("CRAM-MD5", NULL, &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MECHANISM,
                        "CRAM-MD5", "PLAIN, LOGIN", NULL);
  g_clear_error (&error);

  /* Client-chosen names are shown bounded and printable. */
  g_autofree char *junk = g_strnfill (500, 'X');
  junk[3] = '\x1b';
  assert_null (mh_sasl_server_new (junk, NULL, &error));
  assert_null (strchr (error->message, '\x1b'));
  assert_true (strlen (error->message) < 120);
}

/* ---- PLAIN ------------------------------------------------------------- */

static void
check_creds (MhSaslServer *s, const char *zid, const char *cid,
             const char *pw)
{
  const MhSaslCredentials *c = mh_sasl_server_get_credentials (s);
  assert_non_null (c);
  if (zid)
    assert_string_equal (mh_sasl_credentials_get_authzid (c), zid);
  else
    assert_null (mh_sasl_credentials_get_authzid (c));
  assert_string_equal (mh_sasl_credentials_get_authcid (c), cid);
  assert_string_equal (mh_sasl_credentials_get_password (c), pw);
}

static void
test_plain_initial_response (void **state)
{
  g_autoptr (MhSaslServer) s = new_mech ("plain");
  g_autoptr (GError) error = NULL;
  g_autofree char *ir = b64 ("\0bob@example.org\0hunter2", 24);

  assert_string_equal (mh_sasl_server_get_mechanism (s), "PLAIN");
  assert_int_equal (mh_sasl_server_start (s, ir, strlen (ir), &error),
                    MH_SASL_STATUS_DONE);
  assert_null (error);
  check_creds (s, NULL, "bob@example.org", "hunter2");
  assert_string_equal (mh_sasl_server_get_challenge (s), "");
}

static void
test_plain_rfc4616_example (void **state)
{
  /* RFC 4616 4: "Kurt" acting as "Ursel" with password "xipj3plmq". */
  g_autoptr (MhSaslServer) s = new_mech ("PLAIN");
  g_autoptr (GError) error = NULL;
  const char *lines[] = { "VXJzZWwAS3VydAB4aXBqM3BsbXE=", NULL };

  assert_int_equal (mh_sasl_server_start (s, NULL, 0, &error),
                    MH_SASL_STATUS_CHALLENGE);
  /* No initial response: an empty challenge ("334 " / "+ "). */
  assert_string_equal (mh_sasl_server_get_challenge (s), "");
  assert_int_equal (mh_sasl_server_feed (s, lines[0], strlen (lines[0]),
                                         &error),
                    MH_SASL_STATUS_DONE);
  assert_null (error);
  check_creds (s, "Ursel", "Kurt", "xipj3plmq");
}

static void
test_plain_utf8 (void **state)
{
  g_autoptr (MhSaslServer) s = new_mech ("PLAIN");
  g_autoptr (GError) error = NULL;
  const char raw[] = "\0j\xc3\xbcrgen@b\xc3\xbc" "cher.example\0p\xc3\xa4ss w\xc3\xb6rd";
  g_autofree char *ir = b64 (raw, sizeof raw - 1);
  assert_int_equal (run (s, ir, NULL, &error), MH_SASL_STATUS_DONE);
  check_creds (s, NULL, "j\xc3\xbcrgen@b\xc3\xbc" "cher.example",
               "p\xc3\xa4ss w\xc3\xb6rd");
}

static void
test_plain_empty_ir_then_nothing (void **state)
{
  /* "=" is an empty initial response: PLAIN can do nothing with it. */
  expect_fail ("PLAIN", "=", NULL, MH_AUTH_ERROR_MALFORMED,
               "0 NUL separators");
  /* An empty line after the empty challenge is an empty response. */
  const char *empty[] = { "", NULL };
  expect_fail ("PLAIN", NULL, empty, MH_AUTH_ERROR_MALFORMED,
               "0 NUL separators");
}

static void
test_plain_malformed (void **state)
{
  struct
  {
    const char *raw;
    gsize len;
    int code;
    const char *needle;
  } cases[] = {
    { "bob@example.org hunter2", 23, MH_AUTH_ERROR_MALFORMED,
      "0 NUL separators" },
    { "\0bob@example.orghunter2", 23, MH_AUTH_ERROR_MALFORMED,
      "1 NUL separator," },
    { "\0\0hunter2", 9, MH_AUTH_ERROR_MALFORMED,
      "empty authentication identity" },
    { "\0bob\0", 5, MH_AUTH_ERROR_MALFORMED, "empty password" },
    { "\0bob\0hun\0ter2", 13, MH_AUTH_ERROR_MALFORMED,
      "password contains a NUL" },
    { "\0b\xffob\0pw", 8, MH_AUTH_ERROR_MALFORMED,
      "authentication identity is not valid UTF-8" },
    { "\xc3\0bob\0pw", 8, MH_AUTH_ERROR_MALFORMED,
      "authorization identity is not valid UTF-8" },
    { "\0bob\0pw\xc3", 8, MH_AUTH_ERROR_MALFORMED,
      "password is not valid UTF-8" },
    { "\0bo\nb\0pw", 8, MH_AUTH_ERROR_MALFORMED,
      "authentication identity contains a control character at offset 2" },
    { "\0bo\xc2\x85" "b\0pw", 9, MH_AUTH_ERROR_MALFORMED,
      "control character" }, /* U+0085 NEL, a C1 control */
    { "a\tb\0bob\0pw", 10, MH_AUTH_ERROR_MALFORMED,
      "authorization identity contains a control" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *ir = b64 (cases[i].raw, cases[i].len);
      /* both as initial response and as a response to the challenge */
      expect_fail ("PLAIN", ir, NULL, cases[i].code, cases[i].needle);
      const char *lines[] = { ir, NULL };
      expect_fail ("PLAIN", NULL, lines, cases[i].code, cases[i].needle);
    }
}

static void
test_plain_error_never_quotes_fields (void **state)
{
  /* A password typed in the user box must not end up in a log line. */
  g_autoptr (MhSaslServer) s = new_mech ("PLAIN");
  g_autoptr (GError) error = NULL;
  const char raw[] = "\0Secr3t\x01Pw\0x";
  g_autofree char *ir = b64 (raw, sizeof raw - 1);
  assert_int_equal (run (s, ir, NULL, &error), MH_SASL_STATUS_FAILED);
  assert_null (strstr (error->message, "Secr3t"));
}

static void
test_field_limits (void **state)
{
  MhSaslLimits lim = { .version = 1, .max_id = 8, .max_password = 6 };
  struct
  {
    const char *raw;
    gsize len;
    int status;
    const char *needle;
  } cases[] = {
    { "\0abcdefgh\0" "123456", 16, MH_SASL_STATUS_DONE, NULL },
    { "\0abcdefghi\0" "123456", 17, MH_SASL_STATUS_FAILED,
      "authentication identity is 9 bytes, over the limit of 8" },
    { "abcdefghi\0abc\0" "123456", 20, MH_SASL_STATUS_FAILED,
      "authorization identity is 9 bytes" },
    { "\0abc\0" "1234567", 12, MH_SASL_STATUS_FAILED,
      "password is 7 bytes, over the limit of 6" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (MhSaslServer) s = mh_sasl_server_new ("PLAIN", &lim, NULL);
      g_autofree char *ir = b64 (cases[i].raw, cases[i].len);
      assert_int_equal (run (s, ir, NULL, &error), cases[i].status);
      if (cases[i].needle)
        mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                              cases[i].needle, NULL);
    }

  /* Defaults: RFC 4616 2 asks for at least 255-octet fields. */
  g_autofree char *id255 = g_strnfill (255, 'u');
  g_autofree char *pw1024 = g_strnfill (1024, 'p');
  GString *raw = g_string_new (NULL);
  g_string_append_c (raw, '\0');
  g_string_append (raw, id255);
  g_string_append_c (raw, '\0');
  g_string_append (raw, pw1024);
  g_autofree char *ir = b64 (raw->str, raw->len);
  g_autoptr (MhSaslServer) s = new_mech ("PLAIN");
  assert_int_equal (run (s, ir, NULL, NULL), MH_SASL_STATUS_DONE);

  g_string_append_c (raw, 'p'); /* 1025 bytes of password */
  g_autofree char *ir2 = b64 (raw->str, raw->len);
  expect_fail ("PLAIN", ir2, NULL, MH_AUTH_ERROR_TOO_LONG,
               "password is 1025 bytes, over the limit of 1024");
  g_string_free (raw, TRUE);
}

/* ---- Base64 ------------------------------------------------------------ */

static void
test_bad_base64 (void **state)
{
  struct
  {
    const char *line;
    const char *needle;
  } cases[] = {
    { "AGJvYgBwdw", "length 10 is not a multiple of 4" },
    { "AGJvYgBwdw=", "length 11" },
    { "AGJv YgB", "invalid byte 0x20 at offset 4" },
    { "AGJv*gBw", "invalid character '*' at offset 4" },
    { "AGJvYgBwdw==\r", "length 13" },
    { "AGJvYg==AHB3", "padding '=' at offset 6 before the end" },
    { "====", "padding '=' at offset 0" },
    { "A===", "padding '=' at offset 1" },
    { "AGJvYgBwdx==", "non-zero padding bits" },
    { "AGJvYgBwd3g=", NULL }, /* valid: "\0bob\0pwx" */
    { "AGJvYgBwd3h=", "non-zero padding bits" },
    { "AGJv\x80gBw", "invalid byte 0x80 at offset 4" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *lines[] = { cases[i].line, NULL };
      if (cases[i].needle == NULL)
        {
          g_autoptr (MhSaslServer) s = new_mech ("PLAIN");
          assert_int_equal (run (s, NULL, lines, NULL), MH_SASL_STATUS_DONE);
          check_creds (s, NULL, "bob", "pwx");
          continue;
        }
      expect_fail ("PLAIN", NULL, lines, MH_AUTH_ERROR_MALFORMED,
                   cases[i].needle);
      expect_fail ("LOGIN", NULL, lines, MH_AUTH_ERROR_MALFORMED,
                   cases[i].needle);
      expect_fail ("PLAIN", cases[i].line, NULL, MH_AUTH_ERROR_MALFORMED,
                   cases[i].needle);
    }

  /* The data may hold NULs; the decoder reports the exact length. */
  guint8 *out = NULL;
  gsize n = 0;
  assert_true (mh_auth__base64_decode ("AAAA", 4, &out, &n, NULL));
  assert_int_equal (n, 3);
  assert_memory_equal (out, "\0\0\0", 3);
  mh_auth__free_secret (out, n);
  assert_true (mh_auth__base64_decode ("", 0, &out, &n, NULL));
  assert_int_equal (n, 0);
  mh_auth__free_secret (out, 1);

  /* Every byte value round-trips. */
  guint8 all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (guint8) i;
  for (gsize len = 0; len <= 256; len += 37)
    {
      g_autofree char *enc = g_base64_encode (all, len);
      assert_true (mh_auth__base64_decode (enc, strlen (enc), &out, &n,
                                           NULL));
      assert_int_equal (n, len);
      assert_memory_equal (out, all, len);
      mh_auth__free_secret (out, n);
    }
}

static void
test_overlong_line (void **state)
{
  MhSaslLimits lim = { .version = 1, .max_line = 16 };
  g_autoptr (GError) error = NULL;
  g_autoptr (MhSaslServer) s = mh_sasl_server_new ("LOGIN", &lim, NULL);
  g_autofree char *user = b64 ("bob@example.org", 15); /* 20 chars */

  assert_int_equal (mh_sasl_server_start (s, NULL, 0, NULL),
                    MH_SASL_STATUS_CHALLENGE);
  assert_int_equal (mh_sasl_server_feed (s, user, strlen (user), &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                        "20 bytes, over the limit of 16", NULL);

  /* The default limit, checked before any decoding. */
  g_autofree char *huge = g_strnfill (MH_LIMIT_SASL_LINE_MAX + 4, 'A');
  expect_fail ("PLAIN", huge, NULL, MH_AUTH_ERROR_TOO_LONG,
               "over the limit of 8192");
  const char *lines[] = { huge, NULL };
  expect_fail ("LOGIN", NULL, lines, MH_AUTH_ERROR_TOO_LONG, "8196 bytes");
}

/* ---- LOGIN ------------------------------------------------------------- */

static void
test_login_happy (void **state)
{
  g_autoptr (MhSaslServer) s = new_mech ("LOGIN");
  g_autoptr (GError) error = NULL;

  assert_int_equal (mh_sasl_server_start (s, NULL, 0, &error),
                    MH_SASL_STATUS_CHALLENGE);
  assert_string_equal (mh_sasl_server_get_challenge (s), "VXNlcm5hbWU6");
  assert_null (mh_sasl_server_get_credentials (s));
  assert_int_equal (mh_sasl_server_feed (s, "Ym9iQGV4YW1wbGUub3Jn", 20,
                                         &error),
                    MH_SASL_STATUS_CHALLENGE);
  assert_string_equal (mh_sasl_server_get_challenge (s), "UGFzc3dvcmQ6");
  assert_int_equal (mh_sasl_server_feed (s, "aHVudGVyMg==", 12, &error),
                    MH_SASL_STATUS_DONE);
  assert_null (error);
  check_creds (s, NULL, "bob@example.org", "hunter2");
}

static void
test_login_initial_response (void **state)
{
  /* "AUTH LOGIN <b64 user>": the first prompt is skipped. */
  g_autoptr (MhSaslServer) s = new_mech ("LOGIN");
  assert_int_equal (mh_sasl_server_start (s, "Ym9i", 4, NULL),
                    MH_SASL_STATUS_CHALLENGE);
  assert_string_equal (mh_sasl_server_get_challenge (s), "UGFzc3dvcmQ6");
  assert_int_equal (mh_sasl_server_feed (s, "cHc=", 4, NULL),
                    MH_SASL_STATUS_DONE);
  check_creds (s, NULL, "bob", "pw");
}

static void
test_login_malformed (void **state)
{
  const char *empty_user[] = { "", NULL };
  expect_fail ("LOGIN", NULL, empty_user, MH_AUTH_ERROR_MALFORMED,
               "empty user name");
  expect_fail ("LOGIN", "=", NULL, MH_AUTH_ERROR_MALFORMED,
               "empty user name");
  const char *empty_pw[] = { "Ym9i", "", NULL };
  expect_fail ("LOGIN", NULL, empty_pw, MH_AUTH_ERROR_MALFORMED,
               "empty password");
  const char *nul_user[] = { "Ym9iAGV2ZQ==", NULL }; /* "bob\0eve" */
  expect_fail ("LOGIN", NULL, nul_user, MH_AUTH_ERROR_MALFORMED,
               "user name contains a NUL byte at offset 3");
  const char *nul_pw[] = { "Ym9i", "cHcAeA==", NULL }; /* "pw\0x" */
  expect_fail ("LOGIN", NULL, nul_pw, MH_AUTH_ERROR_MALFORMED,
               "password contains a NUL");
  const char *bad_utf8[] = { "/w==", NULL }; /* "\xff" */
  expect_fail ("LOGIN", NULL, bad_utf8, MH_AUTH_ERROR_MALFORMED,
               "user name is not valid UTF-8");
  const char *bad_pw[] = { "Ym9i", "wyg=", NULL }; /* "\xc3\x28" */
  expect_fail ("LOGIN", NULL, bad_pw, MH_AUTH_ERROR_MALFORMED,
               "password is not valid UTF-8");
}

/* ---- Cancel, steps, state ---------------------------------------------- */

static void
test_cancel (void **state)
{
  const char *at_once[] = { "*", NULL };
  expect_fail ("PLAIN", NULL, at_once, MH_AUTH_ERROR_CANCELLED,
               "cancelled by the client");
  expect_fail ("LOGIN", NULL, at_once, MH_AUTH_ERROR_CANCELLED, "cancelled");
  const char *at_password[] = { "Ym9i", "*", NULL };
  expect_fail ("LOGIN", NULL, at_password, MH_AUTH_ERROR_CANCELLED,
               "cancelled");
  /* "*" is no initial response; "**" is just bad base64. */
  expect_fail ("PLAIN", "*", NULL, MH_AUTH_ERROR_MALFORMED, "length 1");
  const char *two[] = { "**", NULL };
  expect_fail ("PLAIN", NULL, two, MH_AUTH_ERROR_MALFORMED, "length 2");
}

static void
test_too_many_steps (void **state)
{
  MhSaslLimits lim = { .version = 1, .max_steps = 1 };
  g_autoptr (GError) error = NULL;
  g_autoptr (MhSaslServer) s = mh_sasl_server_new ("LOGIN", &lim, NULL);
  assert_int_equal (mh_sasl_server_start (s, NULL, 0, NULL),
                    MH_SASL_STATUS_CHALLENGE);
  assert_int_equal (mh_sasl_server_feed (s, "Ym9i", 4, &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_MANY_STEPS,
                        "LOGIN exchange needs more than 1 challenges", NULL);

  /* With the initial response LOGIN needs one challenge only. */
  g_autoptr (MhSaslServer) s2 = mh_sasl_server_new ("LOGIN", &lim, NULL);
  assert_int_equal (mh_sasl_server_start (s2, "Ym9i", 4, NULL),
                    MH_SASL_STATUS_CHALLENGE);
  assert_int_equal (mh_sasl_server_feed (s2, "cHc=", 4, NULL),
                    MH_SASL_STATUS_DONE);
}

static void
test_extra_steps (void **state)
{
  /* A line after DONE is refused, and the exchange is then dead. */
  g_autoptr (MhSaslServer) s = new_mech ("PLAIN");
  g_autoptr (GError) error = NULL;
  assert_int_equal (mh_sasl_server_start (s, "AGJvYgBwdw==", 12, NULL),
                    MH_SASL_STATUS_DONE);
  assert_int_equal (mh_sasl_server_feed (s, "AGJvYgBwdw==", 12, &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE,
                        "already finished", NULL);
  assert_null (mh_sasl_server_get_credentials (s));
  g_clear_error (&error);
  assert_int_equal (mh_sasl_server_feed (s, "", 0, &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE, "",
                        NULL);
  g_clear_error (&error);

  /* A failed exchange stays failed, even for a good line. */
  const char *after_fail[] = { "!!!!", "cHc=", NULL };
  expect_fail ("LOGIN", NULL, after_fail, MH_AUTH_ERROR_MALFORMED,
               "invalid character '!'");
  g_autoptr (MhSaslServer) l = new_mech ("LOGIN");
  run (l, NULL, after_fail, NULL);
  assert_int_equal (mh_sasl_server_feed (l, "cHc=", 4, &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE, "",
                        NULL);
  g_clear_error (&error);

  /* Starting twice, or feeding before start. */
  g_autoptr (MhSaslServer) t = new_mech ("LOGIN");
  assert_int_equal (mh_sasl_server_start (t, NULL, 0, NULL),
                    MH_SASL_STATUS_CHALLENGE);
  assert_int_equal (mh_sasl_server_start (t, NULL, 0, &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE,
                        "already started", NULL);
  g_clear_error (&error);
  g_autoptr (MhSaslServer) u = new_mech ("PLAIN");
  assert_int_equal (mh_sasl_server_feed (u, "AGJvYgBwdw==", 12, &error),
                    MH_SASL_STATUS_FAILED);
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE,
                        "not started", NULL);
}

/* ---- Credentials ------------------------------------------------------- */

static void
test_credentials_new (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhSaslCredentials) c
      = mh_sasl_credentials_new ("", "bob@example.org", "pw", &error);
  assert_non_null (c);
  assert_null (mh_sasl_credentials_get_authzid (c));
  g_autoptr (MhSaslCredentials) d = mh_sasl_credentials_copy (c);
  assert_string_equal (mh_sasl_credentials_get_authcid (d),
                       "bob@example.org");
  assert_string_equal (mh_sasl_credentials_get_password (d), "pw");

  assert_null (mh_sasl_credentials_new (NULL, "", "pw", &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                        "empty user name", NULL);
  g_clear_error (&error);
  assert_null (mh_sasl_credentials_new (NULL, "bob", "", &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                        "empty password", NULL);
  g_clear_error (&error);
  assert_null (mh_sasl_credentials_new (NULL, "b\xff", "pw", &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                        "not valid UTF-8", NULL);
  g_clear_error (&error);
  g_autofree char *long_user = g_strnfill (256, 'a');
  assert_null (mh_sasl_credentials_new (NULL, long_user, "pw", &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                        "256 bytes", NULL);
  g_clear_error (&error);
  assert_null (mh_sasl_credentials_new ("x\ry", "bob", "pw", &error));
  mh_test_assert_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                        "authorization identity contains a control", NULL);
}

static void
test_boxed_types (void **state)
{
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_SASL_SERVER));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_SASL_CREDENTIALS));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_SASL_LIMITS));
  assert_true (G_TYPE_IS_ENUM (MH_TYPE_SASL_STATUS));
  assert_true (G_TYPE_IS_ENUM (MH_TYPE_AUTH_ERROR));
  MhSaslLimits lim = { .version = 1, .max_line = 7 };
  MhSaslLimits *copy = g_boxed_copy (MH_TYPE_SASL_LIMITS, &lim);
  assert_int_equal (copy->max_line, 7);
  g_boxed_free (MH_TYPE_SASL_LIMITS, copy);
  MhSaslServer *s = new_mech ("PLAIN");
  MhSaslServer *r = g_boxed_copy (MH_TYPE_SASL_SERVER, s);
  assert_ptr_equal (r, s);
  g_boxed_free (MH_TYPE_SASL_SERVER, r);
  mh_sasl_server_unref (s);
  mh_sasl_server_unref (NULL);
  mh_sasl_credentials_free (NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_mechanism_list),
    cmocka_unit_test (test_unknown_mechanism),
    cmocka_unit_test (test_plain_initial_response),
    cmocka_unit_test (test_plain_rfc4616_example),
    cmocka_unit_test (test_plain_utf8),
    cmocka_unit_test (test_plain_empty_ir_then_nothing),
    cmocka_unit_test (test_plain_malformed),
    cmocka_unit_test (test_plain_error_never_quotes_fields),
    cmocka_unit_test (test_field_limits),
    cmocka_unit_test (test_bad_base64),
    cmocka_unit_test (test_overlong_line),
    cmocka_unit_test (test_login_happy),
    cmocka_unit_test (test_login_initial_response),
    cmocka_unit_test (test_login_malformed),
    cmocka_unit_test (test_cancel),
    cmocka_unit_test (test_too_many_steps),
    cmocka_unit_test (test_extra_steps),
    cmocka_unit_test (test_credentials_new),
    cmocka_unit_test (test_boxed_types),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
