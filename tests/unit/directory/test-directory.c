/* The directory over LMDB: domains, accounts, aliases, domain aliases,
 * settings, authentication, import, broken files, schema versions, and a
 * change made by another process seen at the next look-up. */
#include "mh-test.h"
#include "directory/directory-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct
{
  char *tmp;
  MhDirectory *dir;
} Fixture;

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  f->tmp = mh_test_mkdtemp ();
  g_autoptr (GError) error = NULL;
  f->dir = mh_directory_open (f->tmp, &error);
  if (f->dir == NULL)
    fail_msg ("open: %s", error->message);
  /* Cheapest yescrypt: these tests check logic, not the KDF's cost
   * (test-password.c covers the default). */
  f->dir->hash_cost = 1;
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  mh_directory_unref (f->dir);
  mh_test_rmtree (f->tmp);
  g_free (f->tmp);
  g_free (f);
  return 0;
}

#define OK(call)                                                           \
  do                                                                       \
    {                                                                      \
      g_autoptr (GError) ok_err_ = NULL;                                   \
      GError **error_ = &ok_err_;                                          \
      if (!(call))                                                         \
        fail_msg ("%s: %s", #call, ok_err_ ? ok_err_->message : "?");      \
    }                                                                      \
  while (0)

/* Runs @call (which uses `error_`) expecting @code and message parts. */
#define FAILS(call, code, ...)                                             \
  do                                                                       \
    {                                                                      \
      g_autoptr (GError) ok_err_ = NULL;                                   \
      GError **error_ = &ok_err_;                                          \
      if (call)                                                            \
        fail_msg ("%s succeeded", #call);                                  \
      mh_test_assert_error (ok_err_, MH_DIRECTORY_ERROR, code,             \
                            __VA_ARGS__, NULL);                            \
    }                                                                      \
  while (0)

static void
test_domains (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "Example.ORG", error_));
  OK (mh_directory_domain_add (d, "bücher.example", error_));
  FAILS (mh_directory_domain_add (d, "example.org.", error_),
         MH_DIRECTORY_ERROR_EXISTS, "'example.org' already exists");
  /* The A-label of an existing U-label domain is the same domain. */
  FAILS (mh_directory_domain_add (d, "xn--bcher-kva.example", error_),
         MH_DIRECTORY_ERROR_EXISTS, "'bücher.example' already exists");
  FAILS (mh_directory_domain_add (d, "bad_domain.org", error_),
         MH_DIRECTORY_ERROR_INVALID, "'_'");

  g_autoptr (MhDomainInfo) i1 = mh_directory_domain_lookup (
      d, "XN--BCHER-KVA.example", NULL);
  assert_non_null (i1);
  assert_string_equal (mh_domain_info_get_name (i1), "bücher.example");
  assert_string_equal (mh_domain_info_get_ascii_name (i1),
                       "xn--bcher-kva.example");
  assert_true (mh_domain_info_get_created (i1) > 1700000000);

  FAILS (mh_directory_domain_lookup (d, "exmaple.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "domain 'exmaple.org' does not exist");

  g_autoptr (MhDomainInfoList) all = mh_directory_domain_list (d, NULL);
  assert_non_null (all);
  assert_int_equal (all->len, 2);
  assert_string_equal (
      mh_domain_info_get_ascii_name (g_ptr_array_index (all, 0)),
      "example.org");
  assert_true (mh_directory_domain_is_local (d, "EXAMPLE.org"));
  assert_false (mh_directory_domain_is_local (d, "example.net"));

  OK (mh_directory_domain_delete (d, "example.org", FALSE, error_));
  FAILS (mh_directory_domain_delete (d, "example.org", FALSE, error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'example.org' does not exist");
}

static void
test_accounts (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  FAILS (mh_directory_account_add (d, "bob@exmaple.org", NULL, error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "domain 'exmaple.org' does not exist");
  FAILS (mh_directory_account_add (d, "bob..x@example.org", NULL, error_),
         MH_DIRECTORY_ERROR_INVALID, "bob..x@example.org");
  FAILS (mh_directory_account_add (d, "bob", NULL, error_),
         MH_DIRECTORY_ERROR_INVALID, "no '@domain'");

  OK (mh_directory_account_add (d, "Bob@Example.org", NULL, error_));
  FAILS (mh_directory_account_add (d, "bob@example.org", NULL, error_),
         MH_DIRECTORY_ERROR_EXISTS, "account 'bob@example.org' already exists");
  FAILS (mh_directory_account_add (d, "\"BOB\"@example.org", NULL, error_),
         MH_DIRECTORY_ERROR_EXISTS, "already exists");

  g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (
      d, "BOB@EXAMPLE.ORG", NULL);
  assert_non_null (a);
  assert_string_equal (mh_account_info_get_address (a), "bob@example.org");
  assert_string_equal (mh_account_info_get_local_part (a), "bob");
  assert_false (mh_account_info_get_has_password (a));
  assert_null (mh_account_info_get_password_scheme (a));
  assert_true (mh_account_info_get_enabled (a));
  assert_int_equal (mh_account_info_get_protocols (a),
                    MH_DIRECTORY_PROTOCOL_ALL);
  assert_null (mh_account_info_get_display_name (a));

  OK (mh_directory_account_set_display_name (d, "bob@example.org",
                                             "Bob Example", error_));
  OK (mh_directory_account_set_protocols (
      d, "bob@example.org", MH_DIRECTORY_PROTOCOL_IMAP, error_));
  OK (mh_directory_account_set_setting (d, "bob@example.org", "quota_bytes",
                                        "2G", error_));
  FAILS (mh_directory_account_set_setting (d, "bob@example.org", "colour",
                                           "red", error_),
         MH_DIRECTORY_ERROR_INVALID, "unknown account setting 'colour'",
         "quota_bytes");
  FAILS (mh_directory_account_set_setting (d, "bob@example.org",
                                           "quota_bytes", "lots", error_),
         MH_DIRECTORY_ERROR_INVALID, "quota_bytes", "'lots'");
  FAILS (mh_directory_account_set_display_name (d, "bob@example.org",
                                                "a\nb", error_),
         MH_DIRECTORY_ERROR_INVALID, "control");
  FAILS (mh_directory_account_set_display_name (d, "nobody@example.org",
                                                "X", error_),
         MH_DIRECTORY_ERROR_NOT_FOUND,
         "account 'nobody@example.org' does not exist");
  g_autoptr (MhAccountInfo) b = mh_directory_account_lookup (
      d, "bob@example.org", NULL);
  assert_string_equal (mh_account_info_get_display_name (b), "Bob Example");
  assert_int_equal (mh_account_info_get_protocols (b),
                    MH_DIRECTORY_PROTOCOL_IMAP);
  assert_int_equal (mh_account_info_get_setting_uint64 (b, "quota_bytes", 0),
                    (guint64) 2 << 30);
  /* The earlier snapshot did not change. */
  assert_null (mh_account_info_get_display_name (a));

  OK (mh_directory_account_add (d, "alice@example.org", NULL, error_));
  g_autoptr (MhAccountInfoList) list = mh_directory_account_list (d, "example.org",
                                                          NULL);
  assert_int_equal (list->len, 2);
  assert_string_equal (mh_account_info_get_address (list->pdata[0]),
                       "alice@example.org");
  FAILS (mh_directory_account_list (d, "exmaple.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "'exmaple.org' does not exist");

  OK (mh_directory_account_delete (d, "alice@example.org", error_));
  FAILS (mh_directory_account_delete (d, "alice@example.org", error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'alice@example.org' does not exist");

  /* A domain with accounts is kept unless forced. */
  FAILS (mh_directory_domain_delete (d, "example.org", FALSE, error_),
         MH_DIRECTORY_ERROR_NOT_EMPTY, "1 account(s)");
  OK (mh_directory_domain_delete (d, "example.org", TRUE, error_));
  OK (mh_directory_domain_add (d, "example.org", error_));
  g_autoptr (MhAccountInfoList) none = mh_directory_account_list (d, NULL, NULL);
  assert_int_equal (none->len, 0);
}

static void
test_case_sensitive_domain (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  OK (mh_directory_domain_set_setting (d, "example.org",
                                       "case_sensitive_local_part", "true",
                                       error_));
  OK (mh_directory_account_add (d, "Bob@example.org", NULL, error_));
  OK (mh_directory_account_add (d, "bob@example.org", NULL, error_));
  FAILS (mh_directory_account_lookup (d, "BOB@example.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "BOB@example.org");
  FAILS (mh_directory_domain_set_setting (d, "example.org",
                                          "case_sensitive_local_part",
                                          "false", error_),
         MH_DIRECTORY_ERROR_NOT_EMPTY, "case_sensitive_local_part");
  FAILS (mh_directory_domain_set_setting (d, "example.org",
                                          "case_sensitive_local_part",
                                          "maybe", error_),
         MH_DIRECTORY_ERROR_INVALID, "'maybe'");
}

static void
test_domain_settings_and_limits (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  OK (mh_directory_domain_set_setting (d, "example.org", "max_accounts", "2",
                                       error_));
  OK (mh_directory_domain_set_setting (d, "example.org", "quota_bytes", "10G",
                                       error_));
  FAILS (mh_directory_domain_set_setting (d, "example.org", "max_accounts",
                                          "-1", error_),
         MH_DIRECTORY_ERROR_INVALID, "max_accounts", "'-1'");
  FAILS (mh_directory_domain_set_setting (d, "example.org", "catchall", "x",
                                          error_),
         MH_DIRECTORY_ERROR_INVALID, "unknown domain setting 'catchall'");
  FAILS (mh_directory_domain_set_setting (d, "exmaple.org", "max_accounts",
                                          "1", error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'exmaple.org' does not exist");
  OK (mh_directory_account_add (d, "a@example.org", NULL, error_));
  OK (mh_directory_account_add (d, "b@example.org", NULL, error_));
  FAILS (mh_directory_account_add (d, "c@example.org", NULL, error_),
         MH_DIRECTORY_ERROR_LIMIT, "max_accounts 2");
  g_autoptr (MhDomainInfo) i = mh_directory_domain_lookup (d, "example.org",
                                                           NULL);
  assert_int_equal (mh_domain_info_get_setting_uint64 (i, "quota_bytes", 0),
                    (guint64) 10 << 30);
  assert_int_equal (mh_domain_info_get_account_count (i), 2);
  assert_false (mh_domain_info_get_setting_boolean (
      i, "case_sensitive_local_part", FALSE));
  /* Unset: back to no limit. */
  OK (mh_directory_domain_set_setting (d, "example.org", "max_accounts", NULL,
                                       error_));
  OK (mh_directory_account_add (d, "c@example.org", NULL, error_));
  g_auto (GStrv) names = mh_directory_setting_names (
      MH_DIRECTORY_SETTING_DOMAIN);
  assert_true (g_strv_contains ((const char *const *) names, "max_accounts"));
  assert_non_null (mh_directory_setting_describe (
      MH_DIRECTORY_SETTING_ACCOUNT, "quota_bytes"));
  assert_null (mh_directory_setting_describe (MH_DIRECTORY_SETTING_ACCOUNT,
                                              "max_accounts"));
}

static void
test_passwords_and_auth (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  FAILS (mh_directory_account_add (d, "a@example.org", "", error_),
         MH_DIRECTORY_ERROR_INVALID, "password is empty");
  g_autofree char *big = g_strnfill (MH_LIMIT_PASSWORD_MAX + 1, 'x');
  FAILS (mh_directory_account_add (d, "a@example.org", big, error_),
         MH_DIRECTORY_ERROR_INVALID, "password is too long");
  /* Nothing was added by the failures. */
  FAILS (mh_directory_account_lookup (d, "a@example.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "a@example.org");

  OK (mh_directory_account_add (d, "a@example.org", "s3cret pass", error_));
  OK (mh_directory_authenticate (d, "A@Example.ORG", "s3cret pass", "imap",
                                 error_));
  OK (mh_directory_authenticate (d, "a@example.org", "s3cret pass", NULL,
                                 error_));
  g_autoptr (MhAccountInfo) who = mh_directory_authenticate_account (
      d, "A@example.org", "s3cret pass", "pop3", NULL);
  assert_string_equal (mh_account_info_get_address (who), "a@example.org");
  assert_string_equal (mh_account_info_get_password_scheme (who), "yescrypt");

  /* Wrong password and unknown user: the same error and message. */
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  g_autoptr (GError) e3 = NULL;
  assert_false (mh_directory_authenticate (d, "a@example.org", "nope", NULL,
                                           &e1));
  assert_false (mh_directory_authenticate (d, "zz@example.org", "nope", NULL,
                                           &e2));
  assert_false (mh_directory_authenticate (d, "zz@nowhere.example", "nope",
                                           NULL, &e3));
  mh_test_assert_error (e1, MH_DIRECTORY_ERROR,
                        MH_DIRECTORY_ERROR_AUTH_FAILED, "", NULL);
  mh_test_assert_error (e2, MH_DIRECTORY_ERROR,
                        MH_DIRECTORY_ERROR_AUTH_FAILED, "", NULL);
  mh_test_assert_error (e3, MH_DIRECTORY_ERROR,
                        MH_DIRECTORY_ERROR_AUTH_FAILED, "", NULL);
  assert_string_equal (e1->message, e2->message);
  assert_string_equal (e1->message, e3->message);
  FAILS (mh_directory_authenticate (d, "not an address", "x", NULL, error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "authentication failed");
  FAILS (mh_directory_authenticate (d, "a@example.org", "", NULL, error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "authentication failed");
  FAILS (mh_directory_authenticate (d, "a@example.org", big, NULL, error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "authentication failed");
  FAILS (mh_directory_authenticate (d, "a@example.org", "s3cret pass", "smtp",
                                    error_),
         MH_DIRECTORY_ERROR_INVALID, "'smtp'");

  /* Disabled: told only with the right password. */
  OK (mh_directory_account_set_enabled (d, "a@example.org", FALSE, error_));
  FAILS (mh_directory_authenticate (d, "a@example.org", "s3cret pass", NULL,
                                    error_),
         MH_DIRECTORY_ERROR_DISABLED, "'a@example.org' is disabled");
  FAILS (mh_directory_authenticate (d, "a@example.org", "wrong", NULL,
                                    error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "authentication failed");
  OK (mh_directory_account_set_enabled (d, "a@example.org", TRUE, error_));
  OK (mh_directory_account_set_protocols (
      d, "a@example.org",
      MH_DIRECTORY_PROTOCOL_IMAP | MH_DIRECTORY_PROTOCOL_SUBMISSION, error_));
  FAILS (mh_directory_authenticate (d, "a@example.org", "s3cret pass", "pop3",
                                    error_),
         MH_DIRECTORY_ERROR_DISABLED, "may not use pop3");
  OK (mh_directory_authenticate (d, "a@example.org", "s3cret pass",
                                 "submission", error_));

  /* Password change; empty and over-long refused, old one stays. */
  FAILS (mh_directory_account_set_password (d, "a@example.org", "", error_),
         MH_DIRECTORY_ERROR_INVALID, "empty");
  FAILS (mh_directory_account_set_password (d, "a@example.org", big, error_),
         MH_DIRECTORY_ERROR_INVALID, "too long");
  OK (mh_directory_authenticate (d, "a@example.org", "s3cret pass", NULL,
                                 error_));
  OK (mh_directory_account_set_password (d, "a@example.org", "new one",
                                         error_));
  OK (mh_directory_authenticate (d, "a@example.org", "new one", NULL,
                                 error_));
  FAILS (mh_directory_authenticate (d, "a@example.org", "s3cret pass", NULL,
                                    error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "failed");

  /* Imported hashes, Dovecot style. */
  OK (mh_directory_account_set_password_hash (
      d, "a@example.org", "{SSHA256}gl6Q6kWYQ8Ct2KbZWkgcN1OGVcajug6hLLfy7ttm3Xxb4Obk",
      error_));
  OK (mh_directory_authenticate (d, "a@example.org", "correct horse", NULL,
                                 error_));
  FAILS (mh_directory_account_set_password_hash (d, "a@example.org",
                                                 "{MD4}abc", error_),
         MH_DIRECTORY_ERROR_INVALID, "unknown password scheme '{MD4}'");
  /* No password: no login, whatever is offered. */
  OK (mh_directory_account_add (d, "nopw@example.org", NULL, error_));
  FAILS (mh_directory_authenticate (d, "nopw@example.org", "anything", NULL,
                                    error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "failed");
}

static void
test_aliases (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  OK (mh_directory_domain_add (d, "example.net", error_));
  OK (mh_directory_account_add (d, "bob@example.org", NULL, error_));

  const char *t_missing[] = { "ghost@example.org", NULL };
  FAILS (mh_directory_alias_add (d, "info@example.org", t_missing, error_),
         MH_DIRECTORY_ERROR_NOT_FOUND,
         "alias target 'ghost@example.org' does not exist");
  const char *t_ok[] = { "Bob@example.org", "someone@Elsewhere.COM", NULL };
  OK (mh_directory_alias_add (d, "Info@example.org", t_ok, error_));
  g_autoptr (MhAliasInfo) ai = mh_directory_alias_lookup (
      d, "info@example.org", NULL);
  assert_non_null (ai);
  const char *const *targets = mh_alias_info_get_targets (ai);
  assert_string_equal (targets[0], "bob@example.org");
  assert_string_equal (targets[1], "someone@elsewhere.com");
  assert_null (targets[2]);

  const char *t_dup[] = { "bob@example.org", NULL };
  FAILS (mh_directory_alias_add (d, "info@example.org", t_dup, error_),
         MH_DIRECTORY_ERROR_EXISTS, "already has target 'bob@example.org'");
  /* An alias may not shadow an account, nor an account an alias. */
  const char *t_ext[] = { "x@elsewhere.com", NULL };
  FAILS (mh_directory_alias_add (d, "bob@example.org", t_ext, error_),
         MH_DIRECTORY_ERROR_EXISTS, "'bob@example.org' is an account");
  FAILS (mh_directory_account_add (d, "info@example.org", NULL, error_),
         MH_DIRECTORY_ERROR_EXISTS, "'info@example.org' is already an alias");
  const char *t_self[] = { "info@example.org", NULL };
  FAILS (mh_directory_alias_add (d, "info@example.org", t_self, error_),
         MH_DIRECTORY_ERROR_INVALID, "point to itself");
  const char *t_bad[] = { "not-an-address", NULL };
  FAILS (mh_directory_alias_add (d, "x@example.org", t_bad, error_),
         MH_DIRECTORY_ERROR_INVALID, "alias target", "not-an-address");
  const char *t_none[] = { NULL };
  FAILS (mh_directory_alias_add (d, "x@example.org", t_none, error_),
         MH_DIRECTORY_ERROR_INVALID, "at least one target");
  FAILS (mh_directory_alias_add (d, "x@exmaple.org", t_ext, error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'exmaple.org' does not exist");

  /* Too many targets: MH_LIMIT_ALIAS_TARGETS_MAX + 1. */
  g_autoptr (GPtrArray) many = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; i <= MH_LIMIT_ALIAS_TARGETS_MAX; i++)
    g_ptr_array_add (many, g_strdup_printf ("u%d@elsewhere.com", i));
  g_ptr_array_add (many, NULL);
  FAILS (mh_directory_alias_add (d, "big@example.org",
                                 (const char *const *) many->pdata, error_),
         MH_DIRECTORY_ERROR_INVALID, "too many targets", "1001");

  /* An alias can target an alias. */
  const char *t_alias[] = { "info@example.org", NULL };
  OK (mh_directory_alias_add (d, "all@example.net", t_alias, error_));

  g_autoptr (MhAliasInfoList) l = mh_directory_alias_list (d, "example.org", NULL);
  assert_int_equal (l->len, 1);
  g_autoptr (MhAliasInfoList) la = mh_directory_alias_list (d, NULL, NULL);
  assert_int_equal (la->len, 2);

  FAILS (mh_directory_alias_delete (d, "info@example.org", "nobody@x.org",
                                    error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "has no target 'nobody@x.org'");
  OK (mh_directory_alias_delete (d, "info@example.org", "BOB@example.org",
                                 error_));
  g_autoptr (MhAliasInfo) ai2 = mh_directory_alias_lookup (
      d, "info@example.org", NULL);
  assert_int_equal (g_strv_length ((char **) mh_alias_info_get_targets (ai2)),
                    1);
  OK (mh_directory_alias_delete (d, "info@example.org",
                                 "someone@elsewhere.com", error_));
  FAILS (mh_directory_alias_lookup (d, "info@example.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "alias 'info@example.org' does not exist");
  OK (mh_directory_alias_delete (d, "all@example.net", NULL, error_));
  FAILS (mh_directory_alias_delete (d, "all@example.net", NULL, error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "does not exist");
}

static void
test_domain_aliases (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  OK (mh_directory_account_add (d, "bob@example.org", NULL, error_));
  OK (mh_directory_domain_alias_add (d, "Example.NET", "example.org", error_));
  FAILS (mh_directory_domain_alias_add (d, "example.net", "example.org",
                                        error_),
         MH_DIRECTORY_ERROR_EXISTS, "domain alias 'example.net' already exists");
  FAILS (mh_directory_domain_alias_add (d, "example.com", "example.net",
                                        error_),
         MH_DIRECTORY_ERROR_INVALID, "itself a domain alias");
  FAILS (mh_directory_domain_alias_add (d, "example.com", "exmaple.org",
                                        error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'exmaple.org' does not exist");
  FAILS (mh_directory_domain_alias_add (d, "example.org", "example.org",
                                        error_),
         MH_DIRECTORY_ERROR_INVALID, "itself");
  OK (mh_directory_domain_add (d, "example.com", error_));
  FAILS (mh_directory_domain_alias_add (d, "example.com", "example.org",
                                        error_),
         MH_DIRECTORY_ERROR_EXISTS, "is a hosted domain");
  FAILS (mh_directory_domain_add (d, "example.net", error_),
         MH_DIRECTORY_ERROR_EXISTS, "already a domain alias of 'example.org'");
  assert_true (mh_directory_domain_is_local (d, "example.net"));

  /* Alias targets through the domain alias must exist too. */
  const char *t_ok[] = { "BOB@example.net", NULL };
  OK (mh_directory_alias_add (d, "info@example.com", t_ok, error_));
  const char *t_missing[] = { "ghost@example.net", NULL };
  FAILS (mh_directory_alias_add (d, "x@example.com", t_missing, error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'ghost@example.net' does not exist");
  const char *t_ext[] = { "x@elsewhere.com", NULL };
  FAILS (mh_directory_alias_add (d, "x@example.net", t_ext, error_),
         MH_DIRECTORY_ERROR_INVALID, "is a domain alias of 'example.org'");

  g_autoptr (MhDomainAliasInfo) da = mh_directory_domain_alias_lookup (
      d, "example.net", NULL);
  assert_string_equal (mh_domain_alias_info_get_target (da), "example.org");
  g_autoptr (MhDomainAliasInfoList) l = mh_directory_domain_alias_list (d, NULL);
  assert_int_equal (l->len, 1);

  FAILS (mh_directory_domain_delete (d, "example.org", FALSE, error_),
         MH_DIRECTORY_ERROR_NOT_EMPTY, "1 domain alias");
  OK (mh_directory_domain_alias_delete (d, "example.net", error_));
  FAILS (mh_directory_domain_alias_delete (d, "example.net", error_),
         MH_DIRECTORY_ERROR_NOT_FOUND, "'example.net' does not exist");
  /* Forced delete cascades to aliases and domain aliases. */
  OK (mh_directory_domain_alias_add (d, "example.net", "example.org", error_));
  OK (mh_directory_domain_delete (d, "example.org", TRUE, error_));
  g_autoptr (MhDomainAliasInfoList) l2 = mh_directory_domain_alias_list (d, NULL);
  assert_int_equal (l2->len, 0);
}

static void
test_temporary_aliases_are_names_too (void **state)
{
  /* Accounts, aliases and temporary aliases share one address space, and
   * a forced domain delete takes the temporary ones along. */
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  OK (mh_directory_account_add (d, "bob@example.org", NULL, error_));
  g_autoptr (MhTempAliasInfo) t = mh_directory_temp_alias_add (
      d, "bob@example.org", 0, NULL);
  assert_non_null (t);
  const char *addr = mh_temp_alias_info_get_address (t);
  FAILS (mh_directory_account_add (d, addr, NULL, error_),
         MH_DIRECTORY_ERROR_EXISTS, "is a temporary alias");
  const char *targets[] = { "bob@example.org", NULL };
  FAILS (mh_directory_alias_add (d, addr, targets, error_),
         MH_DIRECTORY_ERROR_EXISTS, "is a temporary alias");
  OK (mh_directory_domain_set_setting (d, "example.org", "max_aliases", "1",
                                       error_));
  FAILS (mh_directory_alias_add (d, "info@example.org", targets, error_),
         MH_DIRECTORY_ERROR_LIMIT, "max_aliases 1");
  OK (mh_directory_account_delete (d, "bob@example.org", error_));
  FAILS (mh_directory_domain_delete (d, "example.org", FALSE, error_),
         MH_DIRECTORY_ERROR_NOT_EMPTY, "1 alias(es)");
  OK (mh_directory_domain_delete (d, "example.org", TRUE, error_));
  OK (mh_directory_domain_add (d, "example.org", error_));
  FAILS (mh_directory_temp_alias_lookup (d, addr, error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "");
}

static void
test_import (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  OK (mh_directory_account_add (d, "taken@example.org", NULL, error_));

  g_autoptr (MhDirectoryImport) imp = mh_directory_import_new (d);
  const char *h = "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=";
  OK (mh_directory_import_add_account (imp, 1, "a@example.org", h, -1,
                                       error_));
  OK (mh_directory_import_add_account (imp, 2, "b@example.org", NULL,
                                       1 << 20, error_));
  FAILS (mh_directory_import_add_account (imp, 3, "bad..x@example.org", NULL,
                                          -1, error_),
         MH_DIRECTORY_ERROR_INVALID, "bad..x");
  FAILS (mh_directory_import_add_account (imp, 4, "c@example.org", "$9$x",
                                          -1, error_),
         MH_DIRECTORY_ERROR_INVALID, "crypt method");
  FAILS (mh_directory_import_add_account (imp, 5, "a@example.org", NULL, -1,
                                          error_),
         MH_DIRECTORY_ERROR_EXISTS, "duplicate of entry 1");
  OK (mh_directory_import_add_account (imp, 6, "taken@example.org", NULL, -1,
                                       error_));
  OK (mh_directory_import_add_account (imp, 7, "x@exmaple.org", NULL, -1,
                                       error_));
  OK (mh_directory_import_add_account (imp, 8, "A@example.org", NULL, -1,
                                       error_));

  /* All or nothing: three failures, nothing added. */
  FAILS (mh_directory_import_commit (imp, MH_DIRECTORY_IMPORT_NONE, NULL,
                                     error_),
         MH_DIRECTORY_ERROR_INVALID, "3 of 5 entries failed");
  assert_int_equal (mh_directory_import_get_n_failures (imp), 3);
  guint tag = 0;
  int code = 0;
  const char *msg = mh_directory_import_get_failure (imp, 0, &tag, &code);
  assert_int_equal (tag, 6);
  assert_int_equal (code, MH_DIRECTORY_ERROR_EXISTS);
  assert_non_null (strstr (msg, "taken@example.org"));
  msg = mh_directory_import_get_failure (imp, 1, &tag, &code);
  assert_int_equal (tag, 7);
  assert_non_null (strstr (msg, "'exmaple.org' does not exist"));
  msg = mh_directory_import_get_failure (imp, 2, &tag, NULL);
  assert_int_equal (tag, 8);
  assert_non_null (strstr (msg, "duplicate of entry 1"));
  FAILS (mh_directory_account_lookup (d, "a@example.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "a@example.org");

  /* Partial: the good ones go in. */
  guint added = 0;
  OK (mh_directory_import_commit (imp, MH_DIRECTORY_IMPORT_PARTIAL, &added,
                                  error_));
  assert_int_equal (added, 2);
  OK (mh_directory_authenticate (d, "a@example.org", "correct horse", NULL,
                                 error_));
  g_autoptr (MhAccountInfo) b = mh_directory_account_lookup (
      d, "b@example.org", NULL);
  assert_int_equal (mh_account_info_get_setting_uint64 (b, "quota_bytes", 0),
                    1 << 20);
  FAILS (mh_directory_import_commit (imp, MH_DIRECTORY_IMPORT_PARTIAL, NULL,
                                     error_),
         MH_DIRECTORY_ERROR_FAILED, "already committed");
}

static void
test_open_twice_same_process (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;
  MhDirectory *again = mh_directory_open (f->tmp, &error);
  assert_non_null (again);
  assert_ptr_equal (again, f->dir);
  mh_directory_unref (again);
  assert_int_equal (mh_directory_get_schema_version (f->dir),
                    MH_DIRECTORY_SCHEMA_VERSION);
  assert_true (g_str_has_suffix (mh_directory_get_path (f->dir),
                                 "/directory.mdb"));
}

/* ---- Another process ---------------------------------------------------- */

static void
child_run (const char *tmp, int step)
{
  /* A fresh env in the child: LMDB forbids using the parent's after
   * fork(). _exit() so no atexit or cmocka state runs twice. */
  GError *error = NULL;
  MhDirectory *d = mh_directory_open (tmp, &error);
  gboolean ok = d != NULL;
  if (ok)
    d->hash_cost = 1;
  if (ok && step == 1)
    ok = mh_directory_account_add (d, "carol@example.org", "first pw", &error)
         && mh_directory_account_set_display_name (d, "carol@example.org",
                                                   "Carol", &error);
  else if (ok && step == 2)
    ok = mh_directory_account_set_password (d, "carol@example.org",
                                            "second pw", &error)
         && mh_directory_account_set_enabled (d, "carol@example.org", FALSE,
                                              &error);
  if (!ok)
    g_printerr ("child: %s\n", error ? error->message : "?");
  _exit (ok ? 0 : 1);
}

static void
run_child (const char *tmp, int step)
{
  fflush (NULL);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    child_run (tmp, step);
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_other_process_change_is_seen (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  OK (mh_directory_domain_add (d, "example.org", error_));
  FAILS (mh_directory_account_lookup (d, "carol@example.org", error_) != NULL,
         MH_DIRECTORY_ERROR_NOT_FOUND, "carol");

  run_child (f->tmp, 1);
  /* Same MhDirectory, no reopen: the next look-up sees the change. */
  g_autoptr (MhAccountInfo) c = mh_directory_account_lookup (
      d, "carol@example.org", NULL);
  assert_non_null (c);
  assert_string_equal (mh_account_info_get_display_name (c), "Carol");
  OK (mh_directory_authenticate (d, "carol@example.org", "first pw", NULL,
                                 error_));

  run_child (f->tmp, 2);
  FAILS (mh_directory_authenticate (d, "carol@example.org", "first pw", NULL,
                                    error_),
         MH_DIRECTORY_ERROR_AUTH_FAILED, "failed");
  FAILS (mh_directory_authenticate (d, "carol@example.org", "second pw", NULL,
                                    error_),
         MH_DIRECTORY_ERROR_DISABLED, "disabled");
}

/* ---- Broken files ------------------------------------------------------- */

static void
test_garbage_file (void **state)
{
  g_autofree char *tmp = mh_test_mkdtemp ();
  g_autofree char *path = g_build_filename (tmp, "directory.mdb", NULL);
  GString *junk = g_string_new (NULL);
  for (int i = 0; i < 8192; i++)
    g_string_append_c (junk, (char) (i * 7 + 3));
  assert_true (g_file_set_contents (path, junk->str, (gssize) junk->len,
                                    NULL));
  g_string_free (junk, TRUE);
  g_autoptr (GError) error = NULL;
  assert_null (mh_directory_open (tmp, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                        path, "not an LMDB database", NULL);

  /* A directory where the file should be. */
  g_clear_error (&error);
  g_unlink (path);
  g_mkdir (path, 0700);
  assert_null (mh_directory_open (tmp, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                        path, "is a directory", NULL);
  g_rmdir (path);

  /* A lock file that cannot be opened. */
  g_clear_error (&error);
  g_autofree char *lock = g_strconcat (path, "-lock", NULL);
  g_unlink (lock);  /* the earlier attempts made a plain one */
  assert_int_equal (g_mkdir (lock, 0700), 0);
  assert_null (mh_directory_open (tmp, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                        "lock file", lock, NULL);
  g_rmdir (lock);
  mh_test_rmtree (tmp);
}

static void
test_unreadable_file (void **state)
{
  /* Root reads anything, so drop to "nobody" in a child for this. */
  g_autofree char *tmp = mh_test_mkdtemp ();
  {
    g_autoptr (MhDirectory) d = mh_directory_open (tmp, NULL);
    assert_non_null (d);
  }
  g_autofree char *path = g_build_filename (tmp, "directory.mdb", NULL);
  assert_int_equal (chmod (path, 0000), 0);
  assert_int_equal (chmod (tmp, 0755), 0);
  fflush (NULL);
  pid_t pid = fork ();
  if (pid == 0)
    {
      if (getuid () == 0 && (setgid (65534) != 0 || setuid (65534) != 0))
        _exit (10);
      GError *error = NULL;
      MhDirectory *d = mh_directory_open (tmp, &error);
      if (d != NULL)
        _exit (11);
      if (error->code != MH_DIRECTORY_ERROR_IO
          || strstr (error->message, path) == NULL
          || strstr (error->message, "ermission denied") == NULL)
        {
          g_printerr ("unexpected: %s\n", error->message);
          _exit (12);
        }
      _exit (0);
    }
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
  mh_test_rmtree (tmp);
}

/* Runs @fn in a child that, as root, first becomes "nobody"; returns its
 * exit status (0 = the checks in @fn passed). */
static int
run_as_nobody (int (*fn) (const char *tmp), const char *tmp)
{
  fflush (NULL);
  pid_t pid = fork ();
  if (pid == 0)
    {
      if (getuid () == 0 && (setgid (65534) != 0 || setuid (65534) != 0))
        _exit (10);
      _exit (fn (tmp));
    }
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

static int
read_only_child (const char *tmp)
{
  GError *error = NULL;
  MhDirectory *d = mh_directory_open (tmp, &error);
  if (d == NULL)
    {
      g_printerr ("open: %s\n", error->message);
      return 1;
    }
  MhAccountInfo *a = mh_directory_account_lookup (d, "bob@example.org",
                                                  &error);
  if (a == NULL)
    {
      g_printerr ("lookup: %s\n", error->message);
      return 2;
    }
  mh_account_info_unref (a);
  if (mh_directory_domain_add (d, "example.net", &error))
    return 3;
  if (error->code != MH_DIRECTORY_ERROR_IO
      || strstr (error->message, "read-only") == NULL)
    {
      g_printerr ("unexpected: %s\n", error->message);
      return 4;
    }
  g_error_free (error);
  mh_directory_unref (d);
  return 0;
}

static void
test_read_only_file (void **state)
{
  /* A server user that may read but not write directory.mdb still looks
   * accounts up; changes get a clear error. */
  g_autofree char *tmp = mh_test_mkdtemp ();
  {
    g_autoptr (MhDirectory) d = mh_directory_open (tmp, NULL);
    assert_true (mh_directory_domain_add (d, "example.org", NULL));
    assert_true (mh_directory_account_add (d, "bob@example.org", NULL,
                                           NULL));
  }
  g_autofree char *path = g_build_filename (tmp, "directory.mdb", NULL);
  g_autofree char *lock = g_strconcat (path, "-lock", NULL);
  assert_int_equal (chmod (path, 0444), 0);
  assert_int_equal (chmod (lock, 0666), 0);  /* readers write the lock */
  assert_int_equal (chmod (tmp, 0755), 0);
  assert_int_equal (run_as_nobody (read_only_child, tmp), 0);
  mh_test_rmtree (tmp);
}

static void
test_writer_waits_for_writer (void **state)
{
  /* Another process holds the write lock for a while: our change waits
   * for it (LMDB's writer mutex) and then succeeds. */
  Fixture *f = *state;
  int ready[2];
  assert_int_equal (pipe (ready), 0);
  fflush (NULL);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      MhDirectory *d = mh_directory_open (f->tmp, NULL);
      MDB_txn *txn = d ? mh_directory__txn_begin (d, TRUE, NULL) : NULL;
      char c = txn ? 'y' : 'n';
      if (write (ready[1], &c, 1) != 1)
        _exit (2);
      g_usleep (400 * 1000);
      if (txn)
        mdb_txn_abort (txn);
      _exit (txn ? 0 : 1);
    }
  char c = 0;
  assert_int_equal (read (ready[0], &c, 1), 1);
  assert_int_equal (c, 'y');
  gint64 t0 = g_get_monotonic_time ();
  OK (mh_directory_domain_add (f->dir, "example.org", error_));
  gint64 waited = g_get_monotonic_time () - t0;
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_int_equal (WEXITSTATUS (status), 0);
  close (ready[0]);
  close (ready[1]);
  assert_true (waited >= 200 * 1000);
  g_autoptr (MhDomainInfo) i = mh_directory_domain_lookup (
      f->dir, "example.org", NULL);
  assert_non_null (i);
}

static void
test_unknown_user_costs_a_hash (void **state)
{
  /* Timing must not tell unknown users from known ones: an unknown user
   * still verifies against a dummy yescrypt hash. A look-up alone takes
   * microseconds, yescrypt milliseconds, so the bound is loose. */
  Fixture *f = *state;
  OK (mh_directory_domain_add (f->dir, "example.org", error_));
  /* The dummy hash is made on the first call; do not count that one. */
  assert_false (mh_directory_authenticate (f->dir, "x@example.org", "pw",
                                           NULL, NULL));
  gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < 3; i++)
    assert_false (mh_directory_authenticate (f->dir, "nobody@example.org",
                                             "pw", NULL, NULL));
  gint64 per_call = (g_get_monotonic_time () - t0) / 3;
  assert_true (per_call >= 1000);
}

typedef struct
{
  MhDirectory *dir;
  int id;
  int failures;
} ThreadArg;

static gpointer
thread_work (gpointer p)
{
  ThreadArg *a = p;
  /* Few writes: each is a durable commit (an fsync). */
  for (int i = 0; i < 25; i++)
    {
      char addr[64];
      g_snprintf (addr, sizeof addr, "t%d-%d@example.org", a->id, i);
      if (!mh_directory_account_add (a->dir, addr, NULL, NULL))
        a->failures++;
      MhAccountInfo *info = mh_directory_account_lookup (a->dir, addr, NULL);
      if (info == NULL)
        a->failures++;
      mh_account_info_unref (info);
      MhAccountInfoList *l = mh_directory_account_list (a->dir, NULL, NULL);
      if (l == NULL)
        a->failures++;
      mh_account_info_list_free (l);
    }
  return NULL;
}

static void
test_threads_share_a_directory (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_domain_add (f->dir, "example.org", error_));
  ThreadArg args[4];
  GThread *threads[4];
  for (int i = 0; i < 4; i++)
    {
      args[i] = (ThreadArg) { f->dir, i, 0 };
      threads[i] = g_thread_new ("dir", thread_work, &args[i]);
    }
  for (int i = 0; i < 4; i++)
    {
      g_thread_join (threads[i]);
      assert_int_equal (args[i].failures, 0);
    }
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (f->dir,
                                                           "example.org",
                                                           NULL);
  assert_int_equal (mh_domain_info_get_account_count (d), 100);
}

static void
put_raw (const char *path, const char *dbname, const void *key, gsize klen,
         const void *val, gsize vlen)
{
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  assert_int_equal (mdb_env_create (&env), 0);
  mdb_env_set_maxdbs (env, 8);
  assert_int_equal (mdb_env_open (env, path, MDB_NOSUBDIR, 0640), 0);
  assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
  assert_int_equal (mdb_dbi_open (txn, dbname, 0, &dbi), 0);
  MDB_val k = { klen, (void *) key }, v = { vlen, (void *) val };
  assert_int_equal (mdb_put (txn, dbi, &k, &v, 0), 0);
  assert_int_equal (mdb_txn_commit (txn), 0);
  mdb_env_close (env);
}

static void
test_newer_schema_refused (void **state)
{
  g_autofree char *tmp = mh_test_mkdtemp ();
  {
    g_autoptr (MhDirectory) d = mh_directory_open (tmp, NULL);
    assert_non_null (d);
    assert_true (mh_directory_domain_add (d, "example.org", NULL));
  }
  g_autofree char *path = g_build_filename (tmp, "directory.mdb", NULL);
  guint32 v = GUINT32_TO_LE (999);
  put_raw (path, "meta", "schema_version", 14, &v, 4);
  g_autoptr (GError) error = NULL;
  assert_null (mh_directory_open (tmp, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_VERSION,
                        path, "schema version 999", "newer", NULL);
  mh_test_rmtree (tmp);
}

static void
test_corrupt_record (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_domain_add (f->dir, "example.org", error_));
  mh_directory_unref (f->dir);
  g_autofree char *path = g_build_filename (f->tmp, "directory.mdb", NULL);
  put_raw (path, "accounts", "example.org@bob", 15, "\x01\x02garbage", 9);
  f->dir = mh_directory_open (f->tmp, NULL);
  assert_non_null (f->dir);
  FAILS (mh_directory_account_lookup (f->dir, "bob@example.org", error_)
             != NULL,
         MH_DIRECTORY_ERROR_CORRUPT, "account 'example.org@bob'");
  /* the name is formatted only on error, in both shapes (issue 5) */
  FAILS (mh_directory_account_list (f->dir, NULL, error_) != NULL,
         MH_DIRECTORY_ERROR_CORRUPT,
         "record of account 'bob@example.org' is corrupt");
}

static MhTempAliasInfo *
temp_alias (MhDirectory *d, const char *account, gint64 expires)
{
  g_autoptr (GError) error = NULL;
  MhTempAliasInfo *t
      = mh_directory_temp_alias_add (d, account, expires, &error);
  if (t == NULL)
    fail_msg ("temp alias of %s: %s", account, error->message);
  return t;
}

/* The cursor walks all calls share (kv.c): a forced domain delete takes
 * exactly that domain's records out of the middle of each table, lists
 * stop at their prefix, and a purge deletes a run of records that ends
 * the table; a corrupt record stops a walk and is named. */
static void
test_cursor_walks (void **state)
{
  Fixture *f = *state;
  MhDirectory *d = f->dir;
  static const char *const domains[]
      = { "a.example", "b.example", "c.example" };
  for (gsize i = 0; i < G_N_ELEMENTS (domains); i++)
    {
      OK (mh_directory_domain_add (d, domains[i], error_));
      for (int u = 0; u < 3; u++)
        {
          g_autofree char *acc = g_strdup_printf ("user%d@%s", u, domains[i]);
          g_autofree char *ali = g_strdup_printf ("alias%d@%s", u, domains[i]);
          const char *const targets[] = { acc, NULL };
          OK (mh_directory_account_add (d, acc, NULL, error_));
          OK (mh_directory_alias_add (d, ali, targets, error_));
        }
    }
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  mh_temp_alias_info_unref (temp_alias (d, "user0@a.example", 0));
  for (int i = 0; i < 2; i++)
    {
      mh_temp_alias_info_unref (temp_alias (d, "user1@b.example", now + 60));
      mh_temp_alias_info_unref (temp_alias (d, "user2@c.example", now + 60));
    }

  OK (mh_directory_domain_delete (d, "b.example", TRUE, error_));
  g_autoptr (MhAccountInfoList) accs
      = mh_directory_account_list (d, NULL, NULL);
  assert_int_equal (accs->len, 6);
  for (guint i = 0; i < accs->len; i++)
    assert_null (
        strstr (mh_account_info_get_address (accs->pdata[i]), "@b.example"));
  g_autoptr (MhAccountInfoList) cs
      = mh_directory_account_list (d, "c.example", NULL);
  assert_int_equal (cs->len, 3);
  assert_string_equal (mh_account_info_get_address (cs->pdata[0]),
                       "user0@c.example");
  g_autoptr (MhAliasInfoList) alis = mh_directory_alias_list (d, NULL, NULL);
  assert_int_equal (alis->len, 6);
  g_autoptr (MhDomainInfoList) doms = mh_directory_domain_list (d, NULL);
  assert_int_equal (doms->len, 2);
  assert_string_equal (mh_domain_info_get_name (doms->pdata[1]), "c.example");
  assert_int_equal (mh_domain_info_get_account_count (doms->pdata[1]), 3);
  assert_int_equal (mh_domain_info_get_alias_count (doms->pdata[1]), 3);
  g_autoptr (MhTempAliasInfoList) temps = NULL;
  OK ((temps = mh_directory_temp_alias_list (d, NULL, error_)) != NULL);
  assert_int_equal (temps->len, 3);

  /* c's two are the last records of the table */
  guint removed = 0;
  OK (mh_directory_temp_alias_purge (d, now + 120, &removed, error_));
  assert_int_equal (removed, 2);
  g_autoptr (MhTempAliasInfoList) left = NULL;
  OK ((left = mh_directory_temp_alias_list (d, NULL, error_)) != NULL);
  assert_int_equal (left->len, 1);
  assert_string_equal (mh_temp_alias_info_get_target (left->pdata[0]),
                       "user0@a.example");

  mh_directory_unref (f->dir);
  g_autofree char *path = g_build_filename (f->tmp, "directory.mdb", NULL);
  put_raw (path, "temp_aliases", "c.example@zz", 12, "\x01\x02garbage", 9);
  f->dir = mh_directory_open (f->tmp, NULL);
  assert_non_null (f->dir);
  FAILS (mh_directory_temp_alias_list (f->dir, "c.example", error_) != NULL,
         MH_DIRECTORY_ERROR_CORRUPT,
         "record of temporary alias 'c.example@zz' is corrupt");
  FAILS (mh_directory_temp_alias_purge (f->dir, 0, NULL, error_),
         MH_DIRECTORY_ERROR_CORRUPT, "temporary alias 'c.example@zz'");
}

/* Migration steps for a made-up schema V -> V+1 -> V+2, V the current
 * one (issue 5 moved V from 1 to 2). */
static gboolean
step_mark (MDB_txn *txn, const MhDirectoryDbs *dbs, GError **error)
{
  MDB_val k = { 6, "marker" }, v = { 1, "x" };
  return mdb_put (txn, dbs->meta, &k, &v, 0) == 0;
}

static gboolean
step_fail (MDB_txn *txn, const MhDirectoryDbs *dbs, GError **error)
{
  g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
               "step refused");
  return FALSE;
}

static gboolean
has_marker (MhDirectory *d)
{
  MDB_txn *txn = mh_directory__txn_begin (d, FALSE, NULL);
  MDB_val k = { 6, "marker" }, v;
  gboolean r = mdb_get (txn, d->dbs.meta, &k, &v) == 0;
  mdb_txn_abort (txn);
  return r;
}

static void
test_migrations (void **state)
{
  Fixture *f = *state;
  const guint V = MH_DIRECTORY_SCHEMA_VERSION;
  const MhDirectoryMigration bad[] = {
    { V, "mark", step_mark },
    { V + 1, "fail", step_fail },
  };
  g_autofree char *failed = g_strdup_printf ("migration %u -> %u (fail)",
                                             V + 1, V + 2);
  g_autofree char *no_step = g_strdup_printf ("no migration from schema "
                                              "version %u", V + 1);
  g_autofree char *newer = g_strdup_printf ("schema version %u", V + 2);
  /* A failing step rolls the whole run back: still version V, no mark. */
  FAILS (mh_directory__migrate (f->dir, bad, 2, V + 2, error_),
         MH_DIRECTORY_ERROR_CORRUPT, failed, "step refused");
  assert_int_equal (mh_directory_get_schema_version (f->dir), V);
  assert_false (has_marker (f->dir));
  FAILS (mh_directory__migrate (f->dir, bad, 1, V + 2, error_),
         MH_DIRECTORY_ERROR_VERSION, no_step);

  const MhDirectoryMigration good[] = {
    { V + 1, "mark again", step_mark },
    { V, "mark", step_mark },
  };
  OK (mh_directory__migrate (f->dir, good, 2, V + 2, error_));
  assert_int_equal (mh_directory_get_schema_version (f->dir), V + 2);
  assert_true (has_marker (f->dir));
  /* This library knows versions up to V only: reopening is refused. */
  mh_directory_unref (f->dir);
  f->dir = NULL;
  FAILS ((f->dir = mh_directory_open (f->tmp, error_)) != NULL,
         MH_DIRECTORY_ERROR_VERSION, newer);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_domains, setup, teardown),
    cmocka_unit_test_setup_teardown (test_accounts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_case_sensitive_domain, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_domain_settings_and_limits, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_passwords_and_auth, setup, teardown),
    cmocka_unit_test_setup_teardown (test_aliases, setup, teardown),
    cmocka_unit_test_setup_teardown (test_domain_aliases, setup, teardown),
    cmocka_unit_test_setup_teardown (test_temporary_aliases_are_names_too,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_import, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_twice_same_process, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_other_process_change_is_seen, setup,
                                     teardown),
    cmocka_unit_test (test_garbage_file),
    cmocka_unit_test (test_unreadable_file),
    cmocka_unit_test (test_read_only_file),
    cmocka_unit_test_setup_teardown (test_writer_waits_for_writer, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_unknown_user_costs_a_hash, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_threads_share_a_directory, setup,
                                     teardown),
    cmocka_unit_test (test_newer_schema_refused),
    cmocka_unit_test_setup_teardown (test_corrupt_record, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cursor_walks, setup, teardown),
    cmocka_unit_test_setup_teardown (test_migrations, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
