/* Unit tests of lib/quota: limits and the domain-sum rule, enforcement at
 * delivery through the store's hook (temporary and permanent), domain
 * counters, warnings once per crossing, recalc after files were removed
 * behind our back, sizes. Real directory, real stores, temp dirs. */
#include "mh-test.h"
#include "quota/quota-private.h"

#include <glib/gstdio.h>
#include <gmime/gmime.h>
#include <string.h>

typedef struct
{
  char *data;
  MhDirectory *dir;
  MhQuota *quota;
} Fx;

static int
setup (void **state)
{
  Fx *fx = g_new0 (Fx, 1);
  fx->data = mh_test_mkdtemp ();
  g_autoptr (GError) error = NULL;
  fx->dir = mh_directory_open (fx->data, &error);
  assert_non_null (fx->dir);
  assert_true (mh_directory_domain_add (fx->dir, "example.org", &error));
  assert_true (mh_directory_domain_add (fx->dir, "other.example", &error));
  fx->quota = mh_quota_open (fx->dir, fx->data, NULL, &error);
  assert_null (error);
  assert_non_null (fx->quota);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fx *fx = *state;
  mh_quota_unref (fx->quota);
  mh_directory_unref (fx->dir);
  mh_test_rmtree (fx->data);
  g_free (fx->data);
  g_free (fx);
  return 0;
}

#define GiB ((gint64) 1 << 30)

static void
add_user (Fx *fx, const char *address)
{
  g_autoptr (GError) error = NULL;
  if (!mh_quota_account_add (fx->quota, address, NULL, MH_QUOTA_KEEP,
                             MH_QUOTA_KEEP, &error))
    fail_msg ("add %s: %s", address, error->message);
}

static MhStore *
open_store (Fx *fx, const char *local, const char *domain)
{
  g_autoptr (GError) error = NULL;
  MhStore *s = mh_store_open_account (fx->data, domain, local,
                                      MH_STORE_OPEN_CREATE, &error);
  if (s == NULL)
    fail_msg ("open store: %s", error->message);
  g_autofree char *addr = g_strconcat (local, "@", domain, NULL);
  if (!mh_quota_attach (fx->quota, s, addr, &error))
    fail_msg ("attach: %s", error->message);
  return s;
}

/* A message of exactly @size bytes. */
static GBytes *
message (gsize size, guint n)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "From: a@example.net\nSubject: test %u\n\n", n);
  while (s->len < size - 1)
    g_string_append_c (s, 'x');
  g_string_append_c (s, '\n');
  g_string_truncate (s, size);
  gsize len = s->len;
  return g_bytes_new_take (g_string_free (s, FALSE), len);
}

static gboolean
deliver (MhStore *s, gsize size, guint n, GError **error)
{
  g_autoptr (GBytes) m = message (size, n);
  return mh_store_deliver (s, NULL, m, MH_STORE_FLAG_NONE, NULL, 0, NULL,
                           error);
}

/* ---- Sizes and limits ------------------------------------------------ */

static void
test_sizes (void **state)
{
  guint64 v;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_parse_size ("1G", &v, NULL));
  assert_int_equal (v, (guint64) 1 << 30);
  assert_true (mh_quota_parse_size ("500M", &v, NULL));
  assert_int_equal (v, (guint64) 500 << 20);
  assert_true (mh_quota_parse_size ("1.5GiB", &v, NULL));
  assert_int_equal (v, (guint64) 3 << 29);
  assert_true (mh_quota_parse_size ("1048576", &v, NULL));
  assert_int_equal (v, 1048576);
  assert_true (mh_quota_parse_size ("unlimited", &v, NULL));
  assert_int_equal (v, 0);
  const char *const bad[] = { "", "lots", "1X", "-5", "1.5", "G",
                              "99999999999999999999T" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_clear_error (&error);
      assert_false (mh_quota_parse_size (bad[i], &v, &error));
      mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                            "expected a size", NULL);
    }
  const struct
  {
    guint64 v;
    const char *text;
  } fmt[] = { { 512, "512 bytes" },
              { 10ull << 30, "10 GiB" },
              { 3ull << 19, "1.5 MiB" },
              { 1024, "1 KiB" } };
  for (gsize i = 0; i < G_N_ELEMENTS (fmt); i++)
    {
      g_autofree char *t = mh_quota_format_size (fmt[i].v);
      assert_string_equal (t, fmt[i].text);
    }
}

/* Own limit, else the domain default; 0 = none. */
static void
test_limits (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_set_domain (fx->quota, "example.org", 0, 0,
                                    2 * GiB, 500, &error));
  add_user (fx, "alice@example.org");
  assert_true (mh_quota_account_add (fx->quota, "bob@example.org", NULL,
                                     GiB, 0, &error));
  MhQuotaUsage u;
  assert_true (mh_quota_get_account (fx->quota, "alice@example.org", &u,
                                     &error));
  assert_int_equal (u.bytes_limit, 2 * GiB);
  assert_int_equal (u.messages_limit, 500);
  assert_int_equal (u.bytes, 0);
  assert_true (mh_quota_get_account (fx->quota, "bob@example.org", &u,
                                     &error));
  assert_int_equal (u.bytes_limit, GiB);
  assert_int_equal (u.messages_limit, 0);   /* explicit 0: no limit */
  /* UNSET falls back to the default; KEEP keeps. */
  assert_true (mh_quota_set_account (fx->quota, "bob@example.org",
                                     MH_QUOTA_UNSET, MH_QUOTA_KEEP, &error));
  assert_true (mh_quota_get_account (fx->quota, "bob@example.org", &u,
                                     &error));
  assert_int_equal (u.bytes_limit, 2 * GiB);
  assert_int_equal (u.messages_limit, 0);

  assert_false (mh_quota_get_account (fx->quota, "nobody@example.org", &u,
                                      &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_NOT_FOUND,
                        "nobody", NULL);
  g_clear_error (&error);
  assert_false (mh_quota_set_account (fx->quota, "alice@example.org", -7,
                                      MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                        "-7", NULL);
}

/* Issue 4: the account quotas of a domain may not add up to more than
 * the domain's quota, at user add and at quota set. */
static void
test_domain_sum (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_set_domain (fx->quota, "example.org", 10 * GiB,
                                    1000, MH_QUOTA_KEEP, MH_QUOTA_KEEP,
                                    &error));
  assert_true (mh_quota_account_add (fx->quota, "alice@example.org", NULL,
                                     6 * GiB, MH_QUOTA_KEEP, &error));
  add_user (fx, "carol@example.org");   /* no limit: not counted */
  assert_false (mh_quota_account_add (fx->quota, "bob@example.org", NULL,
                                      6 * GiB, MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                        "accounts of example.org would total 12 GiB, over "
                        "the domain's 10 GiB", NULL);
  g_clear_error (&error);
  /* Refused means not added. */
  g_autoptr (MhAccountInfo) none = mh_directory_account_lookup (
      fx->dir, "bob@example.org", NULL);
  assert_null (none);

  assert_true (mh_quota_account_add (fx->quota, "bob@example.org", NULL,
                                     4 * GiB, MH_QUOTA_KEEP, &error));
  assert_false (mh_quota_set_account (fx->quota, "bob@example.org",
                                      6 * GiB, MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                        "would total 12 GiB, over the domain's 10 GiB",
                        NULL);
  g_clear_error (&error);
  /* Lowering one account's quota makes room for the other. */
  assert_true (mh_quota_set_account (fx->quota, "alice@example.org",
                                     4 * GiB, MH_QUOTA_KEEP, &error));
  assert_true (mh_quota_set_account (fx->quota, "bob@example.org", 6 * GiB,
                                     MH_QUOTA_KEEP, &error));

  /* The domain cannot shrink under its accounts. */
  assert_false (mh_quota_set_domain (fx->quota, "example.org", 8 * GiB,
                                     MH_QUOTA_KEEP, MH_QUOTA_KEEP,
                                     MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                        "would total 10 GiB, over the domain's 8 GiB", NULL);
  g_clear_error (&error);

  /* A default per-account quota counts for every account without its
   * own: carol would get 1 GiB, 11 GiB in all. */
  assert_false (mh_quota_set_domain (fx->quota, "example.org",
                                     MH_QUOTA_KEEP, MH_QUOTA_KEEP, GiB,
                                     MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                        "would total 11 GiB", NULL);
  g_clear_error (&error);
  /* And at user add: a new account takes the default. */
  assert_true (mh_quota_set_account (fx->quota, "bob@example.org", 5 * GiB,
                                     MH_QUOTA_KEEP, &error));
  assert_true (mh_quota_set_account (fx->quota, "carol@example.org", 0,
                                     MH_QUOTA_KEEP, &error));
  assert_true (mh_quota_set_domain (fx->quota, "example.org", MH_QUOTA_KEEP,
                                    MH_QUOTA_KEEP, GiB, MH_QUOTA_KEEP,
                                    &error));
  add_user (fx, "dave@example.org");        /* 4 + 5 + 1 = 10 */
  assert_false (mh_quota_account_add (fx->quota, "erin@example.org", NULL,
                                      MH_QUOTA_KEEP, MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                        "would total 11 GiB, over the domain's 10 GiB", NULL);
  g_clear_error (&error);

  /* Message counts follow the same rule. */
  assert_true (mh_quota_set_account (fx->quota, "alice@example.org",
                                     MH_QUOTA_KEEP, 800, &error));
  assert_false (mh_quota_set_account (fx->quota, "bob@example.org",
                                      MH_QUOTA_KEEP, 300, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                        "would total 1100 messages, over the domain's 1000",
                        NULL);
  g_clear_error (&error);

  /* Another domain is not affected. */
  assert_true (mh_quota_account_add (fx->quota, "zed@other.example", NULL,
                                     100 * GiB, MH_QUOTA_KEEP, &error));
  assert_false (mh_quota_set_domain (fx->quota, "nowhere.example", GiB,
                                     MH_QUOTA_KEEP, MH_QUOTA_KEEP,
                                     MH_QUOTA_KEEP, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_NOT_FOUND,
                        "nowhere.example", NULL);
}

/* ---- Enforcement ---------------------------------------------------- */

static void
test_enforce_delivery (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_account_add (fx->quota, "alice@example.org", NULL,
                                     4096, 5, &error));
  /* Enforcement alone: the change hook now updates after each delivery,
   * and warning messages would take room here (tested below). */
  g_array_set_size (fx->quota->levels, 0);
  g_autoptr (MhStore) s = open_store (fx, "alice", "example.org");
  assert_true (deliver (s, 1500, 1, &error));
  assert_true (deliver (s, 1500, 2, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  /* 3000 + 1500 > 4096: refused, temporarily by default. */
  assert_false (deliver (s, 1500, 3, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED,
                        "4.2.2", "alice@example.org",
                        "over its storage quota", NULL);
  guint code = 0;
  g_autofree char *enh = NULL, *text = NULL;
  assert_true (mh_quota_error_get_reply (error, &code, &enh, &text));
  assert_int_equal (code, 452);
  assert_string_equal (enh, "4.2.2");
  assert_true (g_str_has_prefix (text, "Mailbox full: alice@example.org"));
  g_clear_error (&error);
  /* Nothing was written. */
  guint64 b, m;
  assert_true (mh_store_get_usage (s, &b, &m, &error));
  assert_int_equal (m, 2);

  /* The domain says bounce: 552 5.2.2. */
  assert_true (mh_directory_domain_set_setting (fx->dir, "example.org",
                                                "quota_tempfail", "false",
                                                &error));
  assert_false (deliver (s, 1500, 4, &error));
  g_free (enh);
  enh = NULL;
  assert_true (mh_quota_error_get_reply (error, &code, &enh, NULL));
  assert_int_equal (code, 552);
  assert_string_equal (enh, "5.2.2");
  g_clear_error (&error);

  /* Back to temporary, but a message bigger than the whole quota can
   * never fit: permanent anyway. */
  assert_true (mh_directory_domain_set_setting (fx->dir, "example.org",
                                                "quota_tempfail", "true",
                                                &error));
  assert_false (mh_quota_check (fx->quota, s, 5000, 1, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR,
                        MH_QUOTA_ERROR_EXCEEDED_PERMANENT, "5.2.2", NULL);
  g_clear_error (&error);
  /* Small ones still fit, up to the message count. */
  assert_true (deliver (s, 300, 5, &error));
  assert_true (deliver (s, 300, 6, &error));
  assert_true (deliver (s, 300, 7, &error));
  assert_false (deliver (s, 100, 8, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED,
                        "4.2.2", "message quota (5 of 5 messages)", NULL);
  g_clear_error (&error);

  /* Copies are checked too (the hook runs under the store's write lock). */
  assert_true (mh_quota_set_account (fx->quota, "alice@example.org",
                                     MH_QUOTA_KEEP, 0, &error));
  assert_true (mh_store_folder_create (s, "Archive", &error));
  g_autoptr (MhStoreView) v = mh_store_select (s, NULL, FALSE, &error);
  assert_non_null (v);
  guint32 uids[2] = { mh_store_view_get_uid (v, 0),
                      mh_store_view_get_uid (v, 1) };
  assert_false (mh_store_copy (s, NULL, uids, 2, "Archive", FALSE, NULL,
                               NULL, NULL, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED,
                        "over its storage quota", NULL);
  g_clear_error (&error);

  /* Not an over-quota error: no reply data. */
  g_autoptr (GError) other = g_error_new (MH_STORE_ERROR, MH_STORE_ERROR_IO,
                                          "disk on fire");
  assert_false (mh_quota_error_get_reply (other, &code, NULL, NULL));
  /* A store never attached is a programmer's mistake, said clearly. */
  g_autoptr (MhStore) lone = mh_store_open_account (
      fx->data, "example.org", "lone", MH_STORE_OPEN_CREATE, &error);
  assert_false (mh_quota_check (fx->quota, lone, 1, 1, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                        "not attached", NULL);
}

/* The domain total holds accounts that have no limit of their own. */
static void
test_enforce_domain (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_set_domain (fx->quota, "example.org", 10000,
                                    MH_QUOTA_KEEP, MH_QUOTA_KEEP,
                                    MH_QUOTA_KEEP, &error));
  add_user (fx, "alice@example.org");
  add_user (fx, "bob@example.org");
  g_autoptr (MhStore) a = open_store (fx, "alice", "example.org");
  g_autoptr (MhStore) b = open_store (fx, "bob", "example.org");
  for (guint i = 0; i < 3; i++)
    {
      assert_true (deliver (a, 2000, i, &error));
      assert_true (mh_quota_update (fx->quota, a, &error));
    }
  assert_true (deliver (b, 2000, 10, &error));
  assert_true (mh_quota_update (fx->quota, b, &error));
  MhQuotaUsage u;
  assert_true (mh_quota_get_domain (fx->quota, "example.org", &u, &error));
  assert_int_equal (u.bytes, 8000);
  assert_int_equal (u.messages, 4);
  assert_int_equal (u.bytes_limit, 10000);
  /* 8000 + 2500 > 10000: bob is refused though he has no limit. */
  assert_false (deliver (b, 2500, 11, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED,
                        "4.2.2", "domain example.org is over its storage "
                        "quota", NULL);
  g_clear_error (&error);
  /* alice expunges: once synced, bob fits again. */
  assert_true (mh_store_expunge (a, NULL, NULL, 0, FALSE, NULL, &error));
  assert_true (mh_quota_update (fx->quota, a, &error));
  assert_true (deliver (b, 2500, 12, &error));
  assert_true (mh_quota_update (fx->quota, b, &error));
  assert_true (mh_quota_get_domain (fx->quota, "example.org", &u, &error));
  assert_int_equal (u.bytes, 4500);
  assert_int_equal (u.messages, 2);

  /* quota.mdb lost: the counters are counted again from the Maildirs. */
  mh_quota_unref (fx->quota);
  g_autofree char *p = g_build_filename (fx->data, "quota.mdb", NULL);
  g_autofree char *l = g_build_filename (fx->data, "quota.mdb-lock", NULL);
  assert_int_equal (g_unlink (p), 0);
  g_unlink (l);
  fx->quota = mh_quota_open (fx->dir, fx->data, NULL, &error);
  assert_non_null (fx->quota);
  assert_true (mh_quota_get_domain (fx->quota, "example.org", &u, &error));
  assert_int_equal (u.bytes, 4500);
  assert_int_equal (u.messages, 2);
}

/* ---- Warnings --------------------------------------------------------- */

/* Counts the warnings with @subject in INBOX, reading the Maildir's files
 * (what any mail client would see) and checking each is a proper RFC 5322
 * message from the postmaster, parsed with GMime. */
static guint
count_warnings (MhStore *s, const char *subject)
{
  guint n = 0;
  const char *const subdirs[] = { "new", "cur" };
  for (gsize k = 0; k < G_N_ELEMENTS (subdirs); k++)
    {
      g_autofree char *dir = g_build_filename (mh_store_get_maildir (s),
                                               subdirs[k], NULL);
      GDir *d = g_dir_open (dir, 0, NULL);
      assert_non_null (d);
      const char *name;
      while ((name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *path = g_build_filename (dir, name, NULL);
          g_autofree char *text = NULL;
          gsize len;
          assert_true (g_file_get_contents (path, &text, &len, NULL));
          if (!g_str_has_prefix (text, "From: Mail System"))
            continue;
          GMimeStream *st = g_mime_stream_mem_new_with_buffer (text, len);
          GMimeParser *p = g_mime_parser_new_with_stream (st);
          g_autoptr (GObject) obj = G_OBJECT (
              g_mime_parser_construct_message (p, NULL));
          g_object_unref (p);
          g_object_unref (st);
          GMimeMessage *m = GMIME_MESSAGE (obj);
          assert_non_null (m);
          const char *subj = g_mime_message_get_subject (m);
          if (subj == NULL || strstr (subj, subject) == NULL)
            continue;
          n++;
          GDateTime *date = g_mime_message_get_date (m);   /* borrowed */
          assert_non_null (date);   /* a valid RFC 5322 Date */
          g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
          assert_true (ABS (g_date_time_difference (now, date))
                       < 600 * G_TIME_SPAN_SECOND);
          assert_non_null (g_mime_message_get_message_id (m));
          InternetAddressList *from = g_mime_message_get_from (m);
          g_autofree char *f = internet_address_list_to_string (from, NULL,
                                                                FALSE);
          assert_non_null (strstr (f, "postmaster@example.org"));
          assert_string_equal (g_mime_object_get_header (
                                   GMIME_OBJECT (m), "Auto-Submitted"),
                               "auto-generated");
        }
      g_dir_close (d);
    }
  return n;
}

static void
test_warnings_once (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_account_add (fx->quota, "alice@example.org", NULL,
                                     100000, MH_QUOTA_KEEP, &error));
  g_autoptr (MhStore) s = open_store (fx, "alice", "example.org");
  /* 7 x 10000 = 70%: no warning. */
  for (guint i = 0; i < 7; i++)
    {
      assert_true (deliver (s, 10000, i, &error));
      assert_true (mh_quota_update (fx->quota, s, &error));
    }
  assert_int_equal (count_warnings (s, "% full"), 0);
  /* 80%: one warning, not one per delivery. */
  assert_true (deliver (s, 10000, 7, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_int_equal (count_warnings (s, "80% full"), 1);
  assert_true (deliver (s, 5000, 8, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_int_equal (count_warnings (s, "80% full"), 1);
  /* 95% crossed: its own warning, once. */
  assert_true (deliver (s, 10000, 9, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_int_equal (count_warnings (s, "95% full"), 1);
  assert_int_equal (count_warnings (s, "80% full"), 1);

  /* Clean up under 80%, cross again: warned again. */
  g_autoptr (MhStoreView) v = mh_store_select (s, NULL, FALSE, &error);
  guint32 uids[4];
  for (guint i = 0; i < 4; i++)
    uids[i] = mh_store_view_get_uid (v, i);
  assert_true (mh_store_expunge (s, NULL, uids, 4, FALSE, NULL, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_true (deliver (s, 10000, 20, &error));
  assert_true (deliver (s, 10000, 21, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_int_equal (count_warnings (s, "80% full"), 1);
  assert_true (deliver (s, 10000, 22, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  assert_int_equal (count_warnings (s, "80% full"), 2);
}

typedef struct
{
  MhQuota *quota;
  MhStore *store;
  GError *error;
} UpdateJob;

static gpointer
update_thread (gpointer p)
{
  UpdateJob *j = p;
  for (int i = 0; i < 20 && j->error == NULL; i++)
    mh_quota_update (j->quota, j->store, &j->error);
  return NULL;
}

/* Eight threads update at once after the crossing: still one warning
 * (the decision is taken inside quota.mdb's write transaction). */
static void
test_warnings_once_concurrent (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_account_add (fx->quota, "alice@example.org", NULL,
                                     MH_QUOTA_KEEP, 10, &error));
  g_autoptr (MhStore) s = open_store (fx, "alice", "example.org");
  for (guint i = 0; i < 8; i++)
    assert_true (deliver (s, 200, i, &error));
  UpdateJob jobs[8];
  GThread *threads[8];
  for (guint i = 0; i < 8; i++)
    {
      jobs[i] = (UpdateJob) { fx->quota, s, NULL };
      threads[i] = g_thread_new ("update", update_thread, &jobs[i]);
    }
  for (guint i = 0; i < 8; i++)
    {
      g_thread_join (threads[i]);
      assert_null (jobs[i].error);
    }
  assert_int_equal (count_warnings (s, "80% full"), 1);
  /* The warning itself made 9 of 10: no 95% warning yet. */
  assert_int_equal (count_warnings (s, "95% full"), 0);
}

/* An account deleted while its store is attached: deliveries are refused
 * with a clear error, not waved through. */
static void
test_deleted_account (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  add_user (fx, "alice@example.org");
  assert_true (mh_quota_set_account (fx->quota, "alice@example.org", 1000,
                                     MH_QUOTA_KEEP, &error));
  g_autoptr (MhStore) s = open_store (fx, "alice", "example.org");
  assert_true (mh_directory_account_delete (fx->dir, "alice@example.org",
                                            &error));
  assert_false (deliver (s, 100, 1, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED,
                        "alice@example.org", NULL);
  g_clear_error (&error);
  assert_false (mh_quota_update (fx->quota, s, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_NOT_FOUND,
                        "alice@example.org", NULL);
}

/* ---- Recalc, maildirsize ----------------------------------------------- */

static void
test_recalc_behind_our_back (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota_account_add (fx->quota, "alice@example.org", NULL,
                                     GiB, 100, &error));
  g_autoptr (MhStore) s = open_store (fx, "alice", "example.org");
  for (guint i = 0; i < 3; i++)
    assert_true (deliver (s, 1000, i, &error));
  assert_true (mh_quota_update (fx->quota, s, &error));
  g_autofree char *md = g_strdup (mh_store_get_maildir (s));
  g_autofree char *path = g_build_filename (md, "maildirsize", NULL);
  g_autofree char *t1 = NULL;
  assert_true (g_file_get_contents (path, &t1, NULL, NULL));
  MhMaildirsize ms;
  mh_quota__maildirsize_parse (t1, strlen (t1), &ms);
  assert_true (ms.valid);
  assert_int_equal (ms.bytes, 3000);
  assert_int_equal (ms.messages, 3);
  assert_int_equal (ms.bytes_limit, GiB);
  assert_int_equal (ms.messages_limit, 100);

  /* Another tool removes a message file. */
  g_autofree char *newdir = g_build_filename (md, "new", NULL);
  GDir *d = g_dir_open (newdir, 0, NULL);
  const char *name = g_dir_read_name (d);
  assert_non_null (name);
  g_autofree char *victim = g_build_filename (newdir, name, NULL);
  g_dir_close (d);
  assert_int_equal (g_unlink (victim), 0);

  guint n = 0;
  assert_true (mh_quota_recalc (fx->quota, "alice@example.org", &n, &error));
  assert_int_equal (n, 1);
  MhQuotaUsage u;
  assert_true (mh_quota_get_account (fx->quota, "alice@example.org", &u,
                                     &error));
  assert_int_equal (u.bytes, 2000);
  assert_int_equal (u.messages, 2);
  assert_true (mh_quota_get_domain (fx->quota, "example.org", &u, &error));
  assert_int_equal (u.bytes, 2000);
  assert_int_equal (u.messages, 2);
  g_autofree char *t2 = NULL;
  assert_true (g_file_get_contents (path, &t2, NULL, NULL));
  assert_string_equal (t2, "1073741824S,100C\n2000 2\n");

  /* Whole-domain and all-domain recalcs agree. */
  assert_true (mh_quota_recalc (fx->quota, "example.org", &n, &error));
  assert_int_equal (n, 1);
  assert_true (mh_quota_recalc (fx->quota, NULL, &n, &error));
  assert_int_equal (n, 1);
  assert_true (mh_quota_get_domain (fx->quota, "example.org", &u, &error));
  assert_int_equal (u.bytes, 2000);
  assert_false (mh_quota_recalc (fx->quota, "nowhere.example", &n, &error));
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_NOT_FOUND,
                        "nowhere.example", NULL);
}

/* [quota] settings from the config file, and bad ones. */
static void
test_config (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) c = mh_config_load_data (
      "[quota]\ntempfail = false\nwarn_levels = 50, 90%\n", -1, "t.conf",
      &error);
  assert_non_null (c);
  /* A data dir of its own: one LMDB environment per file and process. */
  g_autofree char *other = g_build_filename (fx->data, "other", NULL);
  g_autoptr (MhQuota) q = mh_quota_open (fx->dir, other, c, &error);
  assert_non_null (q);
  assert_false (q->tempfail);
  assert_int_equal (q->levels->len, 2);
  assert_int_equal (g_array_index (q->levels, guint, 1), 90);
  g_autoptr (MhConfig) bad = mh_config_load_data (
      "[quota]\nwarn_levels = 80, 120\n", -1, "t.conf", &error);
  assert_non_null (bad);
  g_autoptr (MhQuota) none = mh_quota_open (fx->dir, other, bad, &error);
  assert_null (none);
  mh_test_assert_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                        "warn_levels", "'120'", NULL);
}

/* maildirsize's running sum (what Dovecot and other tools read). */
static void
maildirsize_sum (MhStore *s, gint64 *bytes, gint64 *messages)
{
  g_autoptr (GError) error = NULL;
  MhMaildirsize m;
  if (!mh_quota__maildirsize_read (mh_store_get_maildir (s), &m, &error))
    fail_msg ("maildirsize: %s", error->message);
  *bytes = m.valid ? m.bytes : -1;
  *messages = m.valid ? m.messages : -1;
}

static void
assert_usage_follows (MhQuota *q, MhStore *s, const char *what)
{
  g_autoptr (GError) error = NULL;
  guint64 b, m;
  gint64 fb, fm;
  MhQuotaUsage d;
  if (!mh_store_get_usage (s, &b, &m, &error))
    fail_msg ("usage: %s", error->message);
  maildirsize_sum (s, &fb, &fm);
  if (fb != (gint64) b || fm != (gint64) m)
    fail_msg ("after %s: maildirsize says %" G_GINT64_FORMAT " bytes, %"
              G_GINT64_FORMAT " messages; the index %" G_GUINT64_FORMAT
              ", %" G_GUINT64_FORMAT, what, fb, fm, b, m);
  /* The domain counter moved too (alice is its only account). */
  if (!mh_quota_get_domain (q, "example.org", &d, &error))
    fail_msg ("domain: %s", error->message);
  if (d.bytes != b || d.messages != m)
    fail_msg ("after %s: domain counter %" G_GUINT64_FORMAT "/%"
              G_GUINT64_FORMAT ", index %" G_GUINT64_FORMAT "/%"
              G_GUINT64_FORMAT, what, d.bytes, d.messages, b, m);
}

/* Issue 4: usage must not depend on callers calling mh_quota_update().
 * The store's change hook (installed by mh_quota_attach) updates the
 * counters and maildirsize after every kind of change; no call to
 * mh_quota_update() here. */
static void
test_change_hook_keeps_usage (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  add_user (fx, "alice@example.org");
  g_autoptr (MhStore) s = open_store (fx, "alice", "example.org");
  for (guint i = 0; i < 3; i++)
    assert_true (deliver (s, 1000 + i, i, &error));
  assert_usage_follows (fx->quota, s, "delivery");
  /* Append (a delivery with flags and a date) into a folder. */
  assert_true (mh_store_folder_create (s, "Archive", &error));
  g_autoptr (GBytes) m = message (700, 9);
  guint32 au = 0;
  assert_true (mh_store_deliver (s, "Archive", m, MH_STORE_FLAG_SEEN, NULL,
                                 1600000000, &au, &error));
  assert_usage_follows (fx->quota, s, "append");
  g_autoptr (MhStoreView) v = mh_store_select (s, NULL, FALSE, &error);
  guint32 uids[3] = { mh_store_view_get_uid (v, 0),
                      mh_store_view_get_uid (v, 1),
                      mh_store_view_get_uid (v, 2) };
  assert_true (mh_store_copy (s, NULL, uids, 2, "Archive", FALSE, NULL, NULL,
                              NULL, &error));
  assert_usage_follows (fx->quota, s, "copy");
  assert_true (mh_store_folder_create (s, "Trash", &error));
  assert_true (mh_store_copy (s, NULL, uids + 2, 1, "Trash", TRUE, NULL,
                              NULL, NULL, &error));
  assert_usage_follows (fx->quota, s, "move");
  assert_true (mh_store_expunge (s, NULL, uids, 1, FALSE, NULL, &error));
  assert_usage_follows (fx->quota, s, "expunge");
  /* Retention expunges through the same path. */
  guint n_rules = 0, gone = 0;
  g_autofree MhStoreRetention *rules = mh_store_retention_parse (
      "Trash:any=1d", &n_rules, &error);
  assert_true (mh_store_apply_retention (s, rules, n_rules,
                                         g_get_real_time () / G_USEC_PER_SEC
                                           + 2 * 86400,
                                         &gone, &error));
  assert_int_equal (gone, 1);
  assert_usage_follows (fx->quota, s, "retention");
  /* A file another program put in, noticed by reconciliation. */
  g_autofree char *newd = g_build_filename (mh_store_get_maildir (s), "new",
                                            NULL);
  g_free (mh_test_write_file (newd, "1700000000.M1P1.other,S=40",
                              "From: x@example.net\nSubject: o\n\nbody\n"));
  g_usleep (30000);
  g_autoptr (MhStoreView) v2 = mh_store_select (s, NULL, FALSE, &error);
  assert_non_null (v2);
  assert_usage_follows (fx->quota, s, "reconciliation");
  assert_true (mh_store_folder_delete (s, "Archive", &error));
  assert_usage_follows (fx->quota, s, "folder deletion");
}

int
main (void)
{
  g_mime_init ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_sizes),
    cmocka_unit_test_setup_teardown (test_limits, setup, teardown),
    cmocka_unit_test_setup_teardown (test_domain_sum, setup, teardown),
    cmocka_unit_test_setup_teardown (test_enforce_delivery, setup, teardown),
    cmocka_unit_test_setup_teardown (test_enforce_domain, setup, teardown),
    cmocka_unit_test_setup_teardown (test_warnings_once, setup, teardown),
    cmocka_unit_test_setup_teardown (test_warnings_once_concurrent, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_deleted_account, setup, teardown),
    cmocka_unit_test_setup_teardown (test_recalc_behind_our_back, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_config, setup, teardown),
    cmocka_unit_test_setup_teardown (test_change_hook_keeps_usage, setup,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
