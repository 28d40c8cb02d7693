/* Password hashing and every accepted scheme. Vectors: Drepper's
 * SHA-crypt specification ("Hello world!" / "saltstring"), the
 * crypt_blowfish test vector ("U*U"), and Dovecot `doveadm pw -s SCHEME
 * -p 'correct horse'` output; the rest are made with libcrypt here. */
#include "mh-test.h"
#include "directory/directory-private.h"

#include <crypt.h>
#include <string.h>

#define PW "correct horse"

static const char *const dovecot_vectors[] = {
  "{SHA512-CRYPT}$6$UQ.p8uDrOwQKRWLP$cAP58FWAVrmjfPcKYyCXvdA.Z1oFkeT6S5TkXJ6Y."
  "NUf7UDT.rxH/qMhVEfKH53URWdXfqhyp6EGFL9s6TIl70",
  "{SHA256-CRYPT}$5$cYb/lYxm8kicU9y/$mZgwJjd1ldDxUp6ZiSQ7fYRwZ6BEeAQO70WaVoDx"
  "3C4",
  "{BLF-CRYPT}$2y$05$lxeJe39MmlTjoG505IkPzunRItV8E19MLZCvrU1xDOnRuxVqGQcXO",
  "{MD5-CRYPT}$1$8qPL4PqZ$ES0L/mGODQRFFa/9UyaOr0",
  "{CRYPT}$2y$05$E87lbrtjcWecDcAj2TzOuOoaWefq6iIpJ1OlNKza4NYpGHkMWTBSC",
  "{PLAIN}correct horse",
  "{CLEARTEXT}correct horse",
  "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=",
  "{SHA256}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE=",
  "{SHA512}VraY3v7bWkNbY0r+MyC7rz/c2SC2xQOkRvx7endrKY1HnRumqLYXgI6wv1ec6aldZo"
  "NHvKtxSQhayTyyeZUZew==",
  "{SSHA}iTK6hB6rfxKNAkHsSOwUub/8PQklFxoV",
  "{SSHA256}gl6Q6kWYQ8Ct2KbZWkgcN1OGVcajug6hLLfy7ttm3Xxb4Obk",
  "{SSHA512}6ghTxu36IA7Tq9Mtc0in0YXaTvwNu/4dNwMRNQaWdpW6odyGQzrGNB6Zry3rELN6"
  "EzGcFTAtPino4gfMRv6YrYAaQ4E=",
  /* Lower-case scheme names work too (Dovecot is case-insensitive). */
  "{ssha}iTK6hB6rfxKNAkHsSOwUub/8PQklFxoV",
  /* Hex encoding of {SHA} (sha1 of "correct horse"). */
  "{SHA}2f9e53523b62abc141a2b4d6019d23cba835dbd0",
};

static void
test_dovecot_vectors (void **state)
{
  for (gsize i = 0; i < G_N_ELEMENTS (dovecot_vectors); i++)
    {
      const char *h = dovecot_vectors[i];
      g_autoptr (GError) error = NULL;
      if (!mh_directory_password_check_hash (h, &error))
        fail_msg ("%s: check refused: %s", h, error->message);
      if (!mh_directory_password_verify (PW, h))
        fail_msg ("%s: right password refused", h);
      if (mh_directory_password_verify ("correct horsE", h))
        fail_msg ("%s: wrong password accepted", h);
      if (mh_directory_password_verify ("correct hors", h))
        fail_msg ("%s: prefix of password accepted", h);
      assert_non_null (mh_directory__hash_scheme (h));
    }
}

static void
test_published_vectors (void **state)
{
  /* Drepper, "Unix crypt using SHA-256 and SHA-512", test vector 1. */
  const char *sha512 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
                       "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
  const char *sha256 = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/"
                       "GNooZaBBGWEc5";
  /* crypt_blowfish's published test vector. */
  const char *bf = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
  assert_true (mh_directory_password_verify ("Hello world!", sha512));
  assert_false (mh_directory_password_verify ("Hello world", sha512));
  assert_true (mh_directory_password_verify ("Hello world!", sha256));
  assert_true (mh_directory_password_verify ("U*U", bf));
  assert_false (mh_directory_password_verify ("U*V", bf));
  assert_string_equal (mh_directory__hash_scheme (sha512), "sha512-crypt");
  assert_string_equal (mh_directory__hash_scheme (bf), "bcrypt");
  /* SHA1("password"), the classic. */
  assert_true (mh_directory_password_verify (
      "password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
}

static void
test_libcrypt_schemes (void **state)
{
  /* Each crypt(3) method we claim, made by libcrypt itself. */
  const char *prefixes[] = { "$y$", "$6$", "$5$", "$2b$", "$2y$", "$1$" };
  for (gsize i = 0; i < G_N_ELEMENTS (prefixes); i++)
    {
      /* Cheapest cost for bcrypt so the test stays fast. */
      unsigned long count = g_str_has_prefix (prefixes[i], "$2") ? 4 : 0;
      char *setting = crypt_gensalt_ra (prefixes[i], count, NULL, 0);
      assert_non_null (setting);
      struct crypt_data cd;
      memset (&cd, 0, sizeof cd);
      const char *h = crypt_rn (PW, setting, &cd, sizeof cd);
      assert_non_null (h);
      g_autofree char *hash = g_strdup (h);
      free (setting);
      g_autoptr (GError) error = NULL;
      if (!mh_directory_password_check_hash (hash, &error))
        fail_msg ("%s: %s", hash, error->message);
      assert_true (mh_directory_password_verify (PW, hash));
      assert_false (mh_directory_password_verify (PW "x", hash));
      g_autofree char *braced = g_strconcat ("{CRYPT}", hash, NULL);
      assert_true (mh_directory_password_verify (PW, braced));
    }
}

static void
test_hash_new_is_yescrypt (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *h = mh_directory_password_hash (PW, &error);
  assert_non_null (h);
  assert_true (g_str_has_prefix (h, "$y$"));
  assert_true (mh_directory_password_verify (PW, h));
  assert_false (mh_directory_password_verify ("", h));
  /* Salted: two hashes of one password differ. */
  g_autofree char *h2 = mh_directory_password_hash (PW, NULL);
  assert_string_not_equal (h, h2);

  assert_null (mh_directory_password_hash ("", &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        "empty", NULL);
  g_clear_error (&error);
  assert_null (mh_directory_password_hash (NULL, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        "empty", NULL);
  g_clear_error (&error);
  g_autofree char *big = g_strnfill (MH_LIMIT_PASSWORD_MAX + 1, 'p');
  assert_null (mh_directory_password_hash (big, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        "too long", "1025", NULL);
  /* An over-long offered password never matches, even {PLAIN}. */
  g_autofree char *plain_big = g_strconcat ("{PLAIN}", big, NULL);
  assert_false (mh_directory_password_verify (big, plain_big));
}

static void
assert_bad_hash (const char *hash, const char *needle)
{
  g_autoptr (GError) error = NULL;
  if (mh_directory_password_check_hash (hash, &error))
    fail_msg ("'%s' accepted", hash);
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        needle, NULL);
  assert_false (mh_directory_password_verify (PW, hash));
}

static void
test_bad_hashes (void **state)
{
  assert_bad_hash ("", "empty");
  assert_bad_hash ("correct horse", "not a password hash");
  assert_bad_hash ("{FOO}bar", "unknown password scheme '{FOO}'");
  assert_bad_hash ("$9$abc$def", "unknown crypt method");
  assert_bad_hash ("$6$saltstring$svn8Uo", "truncated");
  assert_bad_hash ("$2b$05$short", "characters");
  assert_bad_hash ("{SHA}abc", "base64");
  assert_bad_hash ("{SHA256}L55TUjtiq8FBorTWAZ0jy6g129A=", "32-byte");
  assert_bad_hash ("{SSHA}L55TUjtiq8FBorTWAZ0jy6g129A=", "salt");
  assert_bad_hash ("{SHA512-CRYPT}$5$cYb/lYxm8kicU9y/$mZgwJjd1ldDxUp6ZiSQ7fY"
                   "RwZ6BEeAQO70WaVoDx3C4", "does not start with '$6$'");
  assert_bad_hash ("{PLAIN}", "empty");
  assert_bad_hash ("$y$j9T$a b$c", "alphabet");
  assert_bad_hash ("$6$x\n$y", "control character");
  assert_false (mh_directory_password_verify (PW, NULL));
  assert_false (mh_directory_password_verify (NULL, "{PLAIN}x"));
  assert_false (mh_directory_password_verify ("", "{PLAIN}"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dovecot_vectors),
    cmocka_unit_test (test_published_vectors),
    cmocka_unit_test (test_libcrypt_schemes),
    cmocka_unit_test (test_hash_new_is_yescrypt),
    cmocka_unit_test (test_bad_hashes),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
