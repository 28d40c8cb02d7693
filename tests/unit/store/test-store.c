/* Unit tests of lib/store: delivery, folders, flags and keywords, the
 * index and its reconciliation, operations, retention, bad input. */
#include "mh-test.h"
#include "store/store-private.h"
#include "store-fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char msg1[] =
  "From: Alice Example <alice@example.org>\n"
  "To: bob@example.net, \"Carol\" <carol@example.net>\n"
  "Subject: Hello there\n"
  "Date: Tue, 24 Nov 2026 10:00:00 +0000\n"
  "Message-ID: <m1@example.org>\n"
  "\n"
  "Body line one\n"
  "Body line two\n";

static const char mime1[] =
  "From: a@example.org\r\n"
  "Subject: multipart\r\n"
  "MIME-Version: 1.0\r\n"
  "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
  "\r\n"
  "preamble\r\n"
  "--XX\r\n"
  "Content-Type: text/plain; charset=utf-8\r\n"
  "\r\n"
  "first part\r\n"
  "--XX\r\n"
  "Content-Type: application/octet-stream\r\n"
  "Content-Transfer-Encoding: base64\r\n"
  "Content-Disposition: attachment; filename=\"a.bin\"\r\n"
  "\r\n"
  "AAECAw==\r\n"
  "--XX--\r\n";

static guint
count_files (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  guint n = 0;
  if (d == NULL)
    return 0;
  while (g_dir_read_name (d))
    n++;
  g_dir_close (d);
  return n;
}

static void
test_deliver_basic (void **state)
{
  Fx *fx = *state;
  guint32 u1 = deliver (fx->store, NULL, msg1, 0);
  guint32 u2 = deliver (fx->store, "INBOX", msg1, 0);
  assert_int_equal (u1, 1);
  assert_int_equal (u2, 2);
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  g_autofree char *tmpd = g_build_filename (fx->maildir, "tmp", NULL);
  assert_int_equal (count_files (newd), 2);
  assert_int_equal (count_files (tmpd), 0);
  /* Name: time.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<crlf size> */
  GDir *d = g_dir_open (newd, 0, NULL);
  const char *n = g_dir_read_name (d);
  g_autofree char *want_s = g_strdup_printf (",S=%zu,W=%zu", strlen (msg1),
                                             strlen (msg1) + 8);
  assert_non_null (strstr (n, want_s));
  assert_non_null (strstr (n, ".M"));
  assert_non_null (strstr (n, "Q"));
  g_dir_close (d);
  MhStoreStatus st;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, 2);
  assert_int_equal (st.unseen, 2);
  assert_int_equal (st.recent, 2);
  assert_int_equal (st.uidnext, 3);
  assert_int_equal (st.size, 2 * strlen (msg1));
  assert_true (st.uidvalidity > 0);
  /* dovecot-uidlist carries the UIDs. */
  g_autofree char *ul = NULL;
  g_autofree char *ulp = g_build_filename (fx->maildir, "dovecot-uidlist",
                                           NULL);
  assert_true (g_file_get_contents (ulp, &ul, NULL, NULL));
  assert_true (g_str_has_prefix (ul, "3 V"));
  assert_non_null (strstr (ul, "\n1 :"));
  assert_non_null (strstr (ul, "\n2 :"));
}

static void
test_metadata_cache (void **state)
{
  Fx *fx = *state;
  guint32 u = deliver (fx->store, NULL, msg1, 0);
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, NULL, u,
                                                       &error);
  assert_non_null (m);
  const char *env = mh_store_message_get_envelope (m);
  assert_non_null (strstr (env, "\"Hello there\""));
  assert_non_null (strstr (env, "((\"Alice Example\" NIL \"alice\" "
                                "\"example.org\"))"));
  assert_non_null (strstr (env, "\"<m1@example.org>\""));
  const char *bs = mh_store_message_get_bodystructure (m, FALSE);
  assert_string_equal (bs, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
                           "NIL NIL \"7bit\" 30 2)");
  assert_int_equal (mh_store_message_get_rfc822_size (m),
                    strlen (msg1) + 8);
  gboolean cached = FALSE;
  const char *subj = mh_store_message_get_header (m, "SUBJECT", &cached);
  assert_true (cached);
  assert_string_equal (subj, "Subject: Hello there\n");
  assert_null (mh_store_message_get_header (m, "X-Nope", &cached));
  assert_false (cached);

  guint32 u2 = deliver (fx->store, NULL, mime1, 0);
  g_autoptr (MhStoreMessage) m2 = mh_store_message_get (fx->store, NULL, u2,
                                                        &error);
  bs = mh_store_message_get_bodystructure (m2, TRUE);
  assert_non_null (strstr (bs, "\"mixed\" (\"boundary\" \"XX\")"));
  assert_non_null (strstr (bs, "(\"attachment\" (\"filename\" \"a.bin\"))"));
  /* Parts are read by range, not by parsing. */
  g_autoptr (GBytes) p1 = mh_store_read (fx->store, NULL, u2, "1", 0, -1,
                                         &error);
  assert_non_null (p1);
  assert_int_equal (g_bytes_get_size (p1), strlen ("first part"));
  assert_memory_equal (g_bytes_get_data (p1, NULL), "first part", 10);
  g_autoptr (GBytes) p2 = mh_store_read (fx->store, NULL, u2, "2", 0, -1,
                                         &error);
  assert_memory_equal (g_bytes_get_data (p2, NULL), "AAECAw==", 8);
  g_autoptr (GBytes) p2m = mh_store_read (fx->store, NULL, u2, "2.MIME", 0,
                                          -1, &error);
  assert_true (g_str_has_prefix (g_bytes_get_data (p2m, NULL),
                                 "Content-Type: application/octet-stream"));
  g_autoptr (GBytes) h = mh_store_read (fx->store, NULL, u2, "HEADER", 0, -1,
                                        &error);
  g_autofree char *hs = g_strndup (g_bytes_get_data (h, NULL),
                                   g_bytes_get_size (h));
  assert_true (g_str_has_suffix (hs, "boundary=\"XX\"\r\n\r\n"));
  g_autoptr (GBytes) part = mh_store_read (fx->store, NULL, u, NULL, 6, 5,
                                           &error);
  assert_memory_equal (g_bytes_get_data (part, NULL), "Alice", 5);
  /* Bad sections and parts. */
  assert_null (mh_store_read (fx->store, NULL, u2, "1.x", 0, -1, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "bad section", NULL);
  g_clear_error (&error);
  assert_null (mh_store_read (fx->store, NULL, u2, "7", 0, -1, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "no part 7", NULL);
  g_clear_error (&error);
  assert_null (mh_store_read (fx->store, NULL, 999, NULL, 0, -1, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "UID 999", NULL);
}

static void
test_folder_names (void **state)
{
  g_autofree char *e = mh_store__mutf7_encode ("Entwürfe");
  assert_string_equal (e, "Entw&APw-rfe");
  g_autofree char *e2 = mh_store__mutf7_encode ("A&B");
  assert_string_equal (e2, "A&-B");
  g_autofree char *e3 = mh_store__mutf7_encode ("日本語");
  assert_string_equal (e3, "&ZeVnLIqe-");
  g_autofree char *d3 = mh_store__mutf7_decode ("&ZeVnLIqe-");
  assert_string_equal (d3, "日本語");
  g_autofree char *d4 = mh_store__mutf7_decode ("A&-B");
  assert_string_equal (d4, "A&B");
  /* Invalid encodings: unterminated, encoded printable ASCII, bad b64. */
  assert_null (mh_store__mutf7_decode ("&ZeVn"));
  assert_null (mh_store__mutf7_decode ("&AGE-"));
  assert_null (mh_store__mutf7_decode ("&*-"));
  g_autofree char *dn = mh_store__folder_dirname ("Entwürfe.Alt", NULL);
  assert_string_equal (dn, ".Entw&APw-rfe.Alt");
  g_autofree char *back = mh_store__folder_from_dirname (".Entw&APw-rfe.Alt");
  assert_string_equal (back, "Entwürfe.Alt");
  assert_null (mh_store__folder_from_dirname ("..deleted-1"));
  assert_null (mh_store__folder_from_dirname ("."));
  g_autofree char *inbox = mh_store__folder_dirname ("inbox", NULL);
  assert_string_equal (inbox, "");

  struct
  {
    const char *name;
    int code;
    const char *needle;
  } bad[] = {
    { "", MH_STORE_ERROR_INVALID, "empty level" },
    { ".", MH_STORE_ERROR_INVALID, "empty level" },
    { "..", MH_STORE_ERROR_INVALID, "empty level" },
    { "a..b", MH_STORE_ERROR_INVALID, "empty level" },
    { ".hidden", MH_STORE_ERROR_INVALID, "empty level" },
    { "trailing.", MH_STORE_ERROR_INVALID, "empty level" },
    { "a/b", MH_STORE_ERROR_INVALID, "contains '/'" },
    { "../../etc", MH_STORE_ERROR_INVALID, "empty level" },
    { "a\\b", MH_STORE_ERROR_INVALID, "contains '\\'" },
    { "tab\there", MH_STORE_ERROR_INVALID, "control character" },
    { "bad\xff", MH_STORE_ERROR_INVALID, "UTF-8" },
    { "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", MH_STORE_ERROR_LIMIT, "levels" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      assert_null (mh_store__folder_dirname (bad[i].name, &error));
      mh_test_assert_error (error, MH_STORE_ERROR, bad[i].code, bad[i].needle,
                            NULL);
    }
  g_autofree char *longname = g_strnfill (300, 'x');
  g_autoptr (GError) error = NULL;
  assert_null (mh_store__folder_dirname (longname, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_LIMIT,
                        "bytes on disk", NULL);
  /* Non-ASCII grows when encoded: the limit applies to the disk form. */
  GString *u = g_string_new (NULL);
  for (int i = 0; i < 100; i++)
    g_string_append (u, "ü");
  g_clear_error (&error);
  assert_null (mh_store__folder_dirname (u->str, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_LIMIT, "", NULL);
  g_string_free (u, TRUE);
}

static void
test_folders (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Projekte.Entwürfe",
                                       &error));
  assert_true (mh_store_folder_exists (fx->store, "Projekte"));
  g_autofree char *disk = g_build_filename (fx->maildir,
                                            ".Projekte.Entw&APw-rfe", "cur",
                                            NULL);
  assert_true (g_file_test (disk, G_FILE_TEST_IS_DIR));
  g_autofree char *mf = g_build_filename (fx->maildir,
                                          ".Projekte.Entw&APw-rfe",
                                          "maildirfolder", NULL);
  assert_true (g_file_test (mf, G_FILE_TEST_EXISTS));
  assert_false (mh_store_folder_create (fx->store, "Projekte", &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS,
                        "already exists", NULL);
  g_clear_error (&error);
  assert_false (mh_store_folder_create (fx->store, "a/../../x", &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID, "", NULL);
  g_clear_error (&error);

  /* Delivery into a missing ordinary folder fails; a role folder is
   * created on first use. */
  g_autoptr (GBytes) b = g_bytes_new_static (msg1, strlen (msg1));
  assert_false (mh_store_deliver (fx->store, "Nope", b, 0, NULL, 0, NULL,
                                  &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "Nope", NULL);
  g_clear_error (&error);
  guint32 ju = deliver (fx->store, "Junk", msg1, 0);
  assert_int_equal (ju, 1);
  assert_int_equal (mh_store_folder_role ("Junk"), MH_STORE_ROLE_JUNK);
  assert_string_equal (mh_store_role_special_use (MH_STORE_ROLE_JUNK),
                       "\\Junk");
  assert_string_equal (mh_store_folder_for_role (fx->store,
                                                 MH_STORE_ROLE_ARCHIVE,
                                                 &error), "Archive");
  assert_true (mh_store_folder_exists (fx->store, "Archive"));

  deliver (fx->store, "Projekte.Entwürfe", msg1, 0);
  MhStoreStatus before;
  assert_true (mh_store_folder_status (fx->store, "Projekte.Entwürfe",
                                       &before, &error));
  /* Rename with children keeps UIDs and UIDVALIDITY. */
  assert_true (mh_store_folder_rename (fx->store, "Projekte", "Alt.Projekte",
                                       &error));
  assert_false (mh_store_folder_exists (fx->store, "Projekte"));
  assert_true (mh_store_folder_exists (fx->store, "Alt.Projekte.Entwürfe"));
  MhStoreStatus after;
  assert_true (mh_store_folder_status (fx->store, "Alt.Projekte.Entwürfe",
                                       &after, &error));
  assert_int_equal (after.uidvalidity, before.uidvalidity);
  assert_int_equal (after.messages, 1);
  assert_false (mh_store_folder_rename (fx->store, "Alt", "Alt.X", &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "into itself", NULL);
  g_clear_error (&error);

  g_auto (GStrv) list = mh_store_folder_list (fx->store, &error);
  g_autofree char *joined = g_strjoinv (",", list);
  assert_string_equal (joined, "INBOX,Alt,Alt.Projekte,"
                               "Alt.Projekte.Entwürfe,Archive,Junk");

  assert_false (mh_store_folder_delete (fx->store, "Alt.Projekte", &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS,
                        "children", NULL);
  g_clear_error (&error);
  assert_false (mh_store_folder_delete (fx->store, "INBOX", &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "INBOX", NULL);
  g_clear_error (&error);
  assert_true (mh_store_folder_delete (fx->store, "Alt.Projekte.Entwürfe",
                                       &error));
  assert_false (mh_store_folder_exists (fx->store, "Alt.Projekte.Entwürfe"));
  assert_false (mh_store_folder_delete (fx->store, "Alt.Projekte.Entwürfe",
                                        &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "", NULL);
  g_clear_error (&error);

  /* Subscriptions (Dovecot's v2 file). */
  assert_true (mh_store_subscribe (fx->store, "Junk", TRUE, &error));
  assert_true (mh_store_subscribe (fx->store, "Alt.Projekte", TRUE, &error));
  assert_true (mh_store_subscribe (fx->store, "Junk", FALSE, &error));
  assert_true (mh_store_subscribe (fx->store, "Entwürfe", TRUE, &error));
  assert_false (mh_store_subscribe (fx->store, "a..b", TRUE, &error));
  g_clear_error (&error);
  g_auto (GStrv) subs = mh_store_subscriptions (fx->store, &error);
  assert_int_equal (g_strv_length (subs), 2);
  assert_string_equal (subs[0], "Alt.Projekte");
  assert_string_equal (subs[1], "Entwürfe");
  g_autofree char *sf = NULL;
  g_autofree char *sp = g_build_filename (fx->maildir, "subscriptions", NULL);
  assert_true (g_file_get_contents (sp, &sf, NULL, NULL));
  /* Levels TAB-separated, each in modified UTF-7, as Dovecot 2.3. */
  assert_string_equal (sf, "V\t2\n\nAlt\tProjekte\nEntw&APw-rfe\n");
}

static void
test_flags_keywords (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 u = deliver (fx->store, NULL, msg1, 0);
  guint32 u2 = deliver (fx->store, NULL, msg1, 0);
  MhStoreStatus st;
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  guint64 ms0 = st.highestmodseq;
  const char *kws[] = { "$Label1", "Work", NULL };
  assert_true (mh_store_set_flags (fx->store, NULL, &u, 1, MH_STORE_FLAGS_ADD,
                                   MH_STORE_FLAG_SEEN | MH_STORE_FLAG_FLAGGED,
                                   kws, 0, NULL, &error));
  g_autofree char *curd = g_build_filename (fx->maildir, "cur", NULL);
  GDir *d = g_dir_open (curd, 0, NULL);
  const char *n = g_dir_read_name (d);
  assert_non_null (n);
  assert_true (g_str_has_suffix (n, ":2,FSab"));
  g_dir_close (d);
  g_autofree char *kwf = NULL;
  g_autofree char *kwp = g_build_filename (fx->maildir, "dovecot-keywords",
                                           NULL);
  assert_true (g_file_get_contents (kwp, &kwf, NULL, NULL));
  assert_string_equal (kwf, "0 $Label1\n1 Work\n");

  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, FALSE,
                                               &error);
  assert_int_equal (mh_store_view_get_count (v), 2);
  assert_int_equal (mh_store_view_get_flags (v, 0),
                    MH_STORE_FLAG_SEEN | MH_STORE_FLAG_FLAGGED);
  g_auto (GStrv) got = mh_store_view_get_keywords (v, 0);
  assert_int_equal (g_strv_length (got), 2);
  assert_string_equal (got[1], "Work");
  assert_true (mh_store_view_get_modseq (v, 0) > ms0);

  /* Changes since a MODSEQ: only u. */
  g_autoptr (MhStoreView) ch = mh_store_changes_since (fx->store, NULL, ms0,
                                                       &error);
  assert_int_equal (mh_store_view_get_count (ch), 1);
  assert_int_equal (mh_store_view_get_uid (ch, 0), u);

  /* UNCHANGEDSINCE: u changed after ms0, u2 did not. */
  guint32 both[] = { u, u2 };
  g_autoptr (GArray) failed = NULL;
  assert_true (mh_store_set_flags (fx->store, NULL, both, 2,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_DELETED,
                                   NULL, ms0, &failed, &error));
  assert_int_equal (failed->len, 1);
  assert_int_equal (g_array_index (failed, guint32, 0), u);

  const char *one[] = { "Work", NULL };
  assert_true (mh_store_set_flags (fx->store, NULL, &u, 1,
                                   MH_STORE_FLAGS_REMOVE, MH_STORE_FLAG_SEEN,
                                   one, 0, NULL, &error));
  assert_true (mh_store_set_flags (fx->store, NULL, &u2, 1,
                                   MH_STORE_FLAGS_REPLACE,
                                   MH_STORE_FLAG_ANSWERED, NULL, 0, NULL,
                                   &error));
  g_autoptr (MhStoreView) v2 = mh_store_select (fx->store, NULL, FALSE,
                                                &error);
  assert_int_equal (mh_store_view_get_flags (v2, 0), MH_STORE_FLAG_FLAGGED);
  assert_int_equal (mh_store_view_get_flags (v2, 1), MH_STORE_FLAG_ANSWERED);
  g_auto (GStrv) got2 = mh_store_view_get_keywords (v2, 0);
  assert_int_equal (g_strv_length (got2), 1);
  assert_string_equal (got2[0], "$Label1");

  /* Bad keywords, too many keywords, bad flags. */
  const char *badkw[] = { "has space", NULL };
  assert_false (mh_store_set_flags (fx->store, NULL, &u, 1,
                                    MH_STORE_FLAGS_ADD, 0, badkw, 0, NULL,
                                    &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "has space", "atom", NULL);
  g_clear_error (&error);
  const char *sys[] = { "\\Seen", NULL };
  assert_false (mh_store_set_flags (fx->store, NULL, &u, 1,
                                    MH_STORE_FLAGS_ADD, 0, sys, 0, NULL,
                                    &error));
  g_clear_error (&error);
  for (int i = 2; i < MH_LIMIT_STORE_KEYWORDS_MAX; i++)
    {
      g_autofree char *k = g_strdup_printf ("k%d", i);
      const char *kk[] = { k, NULL };
      assert_true (mh_store_set_flags (fx->store, NULL, &u, 1,
                                       MH_STORE_FLAGS_ADD, 0, kk, 0, NULL,
                                       &error));
    }
  const char *over[] = { "oneTooMany", NULL };
  assert_false (mh_store_set_flags (fx->store, NULL, &u, 1,
                                    MH_STORE_FLAGS_ADD, 0, over, 0, NULL,
                                    &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_LIMIT,
                        "oneTooMany", NULL);
  g_clear_error (&error);
  assert_false (mh_store_set_flags (fx->store, NULL, &u, 1,
                                    MH_STORE_FLAGS_ADD, 1 << 9, NULL, 0, NULL,
                                    &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "flag bits", NULL);
  g_clear_error (&error);
}

static void
test_select_recent_and_new_to_cur (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  deliver (fx->store, NULL, msg1, 0);
  deliver (fx->store, NULL, msg1, 0);
  g_autoptr (MhStoreView) ex = mh_store_select (fx->store, NULL, FALSE,
                                                &error);
  assert_true (mh_store_view_is_recent (ex, 0));
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_non_null (v);
  MhStoreStatus st;
  mh_store_view_get_status (v, &st);
  assert_int_equal (st.recent, 2);
  assert_true (mh_store_view_is_recent (v, 1));
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  g_autofree char *curd = g_build_filename (fx->maildir, "cur", NULL);
  assert_int_equal (count_files (newd), 0);
  assert_int_equal (count_files (curd), 2);
  /* A second session does not see them as recent. */
  g_autoptr (MhStoreView) v2 = mh_store_select (fx->store, NULL, TRUE,
                                                &error);
  assert_false (mh_store_view_is_recent (v2, 0));
  assert_int_equal (mh_store_view_find (v2, 2), 1);
  assert_int_equal (mh_store_view_find (v2, 3), -1);
}

static char *
only_file (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *n = g_dir_read_name (d);
  char *r = n ? g_strdup (n) : NULL;
  g_dir_close (d);
  return r;
}

static void
test_reconcile_other_tools (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 u1 = deliver (fx->store, NULL, msg1, MH_STORE_FLAG_SEEN);
  g_autofree char *curd = g_build_filename (fx->maildir, "cur", NULL);
  g_autofree char *name = only_file (curd);
  /* mutt marks it answered: same base name, new info. */
  g_autofree char *base = g_strndup (name, mh_store__base_len (name));
  g_autofree char *op = g_build_filename (curd, name, NULL);
  g_autofree char *nn = g_strconcat (base, ":2,RS", NULL);
  g_autofree char *np = g_build_filename (curd, nn, NULL);
  assert_int_equal (rename (op, np), 0);
  /* Another MDA drops a new file into new/. */
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  g_autofree char *ext = mh_test_write_file (newd, "1700000000.ext1.host",
                                             msg1);
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, FALSE,
                                               &error);
  assert_non_null (v);
  assert_int_equal (mh_store_view_get_count (v), 2);
  assert_int_equal (mh_store_view_get_uid (v, 0), u1);
  assert_int_equal (mh_store_view_get_flags (v, 0),
                    MH_STORE_FLAG_SEEN | MH_STORE_FLAG_ANSWERED);
  assert_int_equal (mh_store_view_get_uid (v, 1), u1 + 1);
  MhStoreStatus st;
  mh_store_view_get_status (v, &st);
  guint64 ms = st.highestmodseq;
  /* The external file got its metadata too. */
  g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, NULL,
                                                       u1 + 1, &error);
  assert_non_null (strstr (mh_store_message_get_envelope (m), "Hello"));
  /* Someone deletes the first file: expunged, with a tombstone. */
  assert_int_equal (g_unlink (np), 0);
  g_autoptr (MhStoreView) ch = mh_store_changes_since (fx->store, NULL, ms,
                                                       &error);
  guint nv = 0;
  const guint32 *van = mh_store_view_get_vanished (ch, &nv);
  assert_int_equal (nv, 1);
  assert_int_equal (van[0], u1);
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, 1);
  /* The uidlist on disk got the external file's UID. */
  g_autofree char *ul = NULL;
  g_autofree char *ulp = g_build_filename (fx->maildir, "dovecot-uidlist",
                                           NULL);
  assert_true (g_file_get_contents (ulp, &ul, NULL, NULL));
  g_autofree char *line = g_strdup_printf ("\n%u :1700000000.ext1.host\n",
                                           u1 + 1);
  assert_non_null (strstr (ul, line));
}

static void
test_dovecot_uidlist_migration (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *md = g_build_filename (dir, "mail", NULL);
  g_autofree char *ix = g_build_filename (dir, "index", NULL);
  const char *subs[] = { "cur", "new", "tmp" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_build_filename (md, subs[i], NULL);
      g_mkdir_with_parents (p, 0700);
    }
  g_autofree char *curd = g_build_filename (md, "cur", NULL);
  g_free (mh_test_write_file (curd, "1600000000.M1P1.old,S=123:2,S", msg1));
  g_free (mh_test_write_file (curd, "1600000001.M2P1.old:2,FRa", msg1));
  g_free (mh_test_write_file (curd, "1600000002.M3P1.old:2,", msg1));
  g_free (mh_test_write_file (md, "dovecot-uidlist",
                              "3 V1234567 N42 Gdeadbeef\n"
                              "17 :1600000000.M1P1.old,S=123\n"
                              "23 W999 :1600000001.M2P1.old\n"));
  g_free (mh_test_write_file (md, "dovecot-keywords", "0 $Important\n"));
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStore) s = mh_store_open (md, ix, 0, &error);
  assert_non_null (s);
  g_autoptr (MhStoreView) v = mh_store_select (s, NULL, FALSE, &error);
  MhStoreStatus st;
  mh_store_view_get_status (v, &st);
  assert_int_equal (st.uidvalidity, 1234567);
  assert_int_equal (mh_store_view_get_count (v), 3);
  assert_int_equal (mh_store_view_get_uid (v, 0), 17);
  assert_int_equal (mh_store_view_get_uid (v, 1), 23);
  assert_int_equal (mh_store_view_get_uid (v, 2), 42); /* unlisted file */
  assert_int_equal (st.uidnext, 43);
  assert_int_equal (mh_store_view_get_flags (v, 1),
                    MH_STORE_FLAG_FLAGGED | MH_STORE_FLAG_ANSWERED);
  g_auto (GStrv) kw = mh_store_view_get_keywords (v, 1);
  assert_int_equal (g_strv_length (kw), 1);
  assert_string_equal (kw[0], "$Important");
  g_clear_pointer (&s, mh_store_unref);
  mh_test_rmtree (dir);
}

typedef struct
{
  guint n;
  guint32 *uids;
  guint32 *flags;
  char **kws;
} Snap;

static Snap
snap (MhStore *s, const char *folder)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreView) v = mh_store_select (s, folder, FALSE, &error);
  assert_non_null (v);
  Snap r = { .n = mh_store_view_get_count (v) };
  r.uids = g_new (guint32, r.n + 1);
  r.flags = g_new (guint32, r.n + 1);
  r.kws = g_new0 (char *, r.n + 1);
  for (guint i = 0; i < r.n; i++)
    {
      r.uids[i] = mh_store_view_get_uid (v, i);
      r.flags[i] = mh_store_view_get_flags (v, i);
      g_auto (GStrv) k = mh_store_view_get_keywords (v, i);
      r.kws[i] = g_strjoinv (" ", k);
    }
  return r;
}

static void
snap_assert_equal (Snap a, Snap b)
{
  assert_int_equal (a.n, b.n);
  for (guint i = 0; i < a.n; i++)
    {
      assert_int_equal (a.uids[i], b.uids[i]);
      assert_int_equal (a.flags[i], b.flags[i]);
      assert_string_equal (a.kws[i], b.kws[i]);
    }
  g_free (a.uids);
  g_free (a.flags);
  g_strfreev (a.kws);
  g_free (b.uids);
  g_free (b.flags);
  g_strfreev (b.kws);
}

static void
test_rebuild_equals_incremental (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 uids[10];
  for (int i = 0; i < 10; i++)
    uids[i] = deliver (fx->store, i % 2 ? "Archive" : NULL, msg1,
                       i % 3 ? 0 : MH_STORE_FLAG_SEEN);
  const char *kw[] = { "Todo", NULL };
  guint32 few[] = { uids[0], uids[4] };
  assert_true (mh_store_set_flags (fx->store, NULL, few, 2,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_FLAGGED,
                                   kw, 0, NULL, &error));
  guint32 gone = uids[2];
  assert_true (mh_store_expunge (fx->store, NULL, &gone, 1, FALSE, NULL,
                                 &error));
  assert_true (mh_store_copy (fx->store, NULL, few, 2, "Archive", FALSE,
                              NULL, NULL, NULL, &error));
  g_autoptr (MhStoreView) sel = mh_store_select (fx->store, NULL, TRUE,
                                                 &error);
  Snap a1 = snap (fx->store, NULL), b1 = snap (fx->store, "Archive");
  MhStoreStatus before, after;
  assert_true (mh_store_folder_status (fx->store, "Archive", &before,
                                       &error));
  assert_true (mh_store_rebuild (fx->store, &error));
  assert_true (mh_store_folder_status (fx->store, "Archive", &after, &error));
  assert_int_equal (before.uidvalidity, after.uidvalidity);
  assert_int_equal (before.uidnext, after.uidnext);
  assert_true (after.highestmodseq > before.highestmodseq);
  snap_assert_equal (a1, snap (fx->store, NULL));
  snap_assert_equal (b1, snap (fx->store, "Archive"));

  /* And from a deleted index directory (the Maildir alone). */
  Snap a2 = snap (fx->store, NULL), b2 = snap (fx->store, "Archive");
  mh_store_unref (fx->store);
  mh_test_rmtree (fx->index);
  fx->store = mh_store_open (fx->maildir, fx->index, 0, &error);
  assert_non_null (fx->store);
  snap_assert_equal (a2, snap (fx->store, NULL));
  snap_assert_equal (b2, snap (fx->store, "Archive"));
}

static void
test_corrupt_index_is_rebuilt (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  deliver (fx->store, NULL, msg1, 0);
  guint32 u = deliver (fx->store, NULL, msg1, MH_STORE_FLAG_FLAGGED);
  Snap a = snap (fx->store, NULL);
  mh_store_unref (fx->store);
  g_autofree char *data = g_build_filename (fx->index, "data.mdb", NULL);
  g_autofree char *junk = g_strnfill (20000, 'Z');
  assert_true (g_file_set_contents (data, junk, -1, NULL));
  fx->store = mh_store_open (fx->maildir, fx->index, 0, &error);
  assert_null (error);
  assert_non_null (fx->store);
  snap_assert_equal (a, snap (fx->store, NULL));
  g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, NULL, u,
                                                       &error);
  assert_non_null (m);
}

static void
test_bad_maildir (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *md = g_build_filename (dir, "mail", NULL);
  g_autofree char *ix = g_build_filename (dir, "index", NULL);
  g_autoptr (GError) error = NULL;
  assert_null (mh_store_open (md, ix, 0, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "no Maildir", NULL);
  g_clear_error (&error);
  /* A Maildir whose cur/ is not a directory cannot be used. */
  g_mkdir_with_parents (md, 0700);
  g_free (mh_test_write_file (md, "cur", "not a dir"));
  assert_null (mh_store_open (md, ix, 0, &error));
  assert_non_null (error);
  assert_non_null (strstr (error->message, "cur"));
  g_clear_error (&error);
  assert_null (mh_store_open_account (dir, "..", "u", MH_STORE_OPEN_CREATE,
                                      &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "invalid account", NULL);
  g_clear_error (&error);
  assert_null (mh_store_open_account (dir, "example.org", "a/b",
                                      MH_STORE_OPEN_CREATE, &error));
  g_clear_error (&error);
  g_autoptr (MhStore) s = mh_store_open_account (dir, "example.org", "alice",
                                                 MH_STORE_OPEN_CREATE, &error);
  assert_non_null (s);
  /* The same index twice in one process is refused. */
  g_autofree char *amd = g_build_filename (dir, "mail", "example.org",
                                           "alice", NULL);
  g_autofree char *aix = g_build_filename (dir, "index", "example.org",
                                           "alice", NULL);
  assert_null (mh_store_open (amd, aix, 0, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_BUSY, "", NULL);
  g_clear_error (&error);
  /* Empty message, bad flags. */
  g_autoptr (GBytes) empty = g_bytes_new_static ("", 0);
  assert_false (mh_store_deliver (s, NULL, empty, 0, NULL, 0, NULL, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "empty", NULL);
  g_clear_error (&error);
  g_autoptr (GBytes) b = g_bytes_new_static (msg1, strlen (msg1));
  assert_false (mh_store_deliver (s, "..", b, 0, NULL, 0, NULL, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID, "", NULL);
  g_clear_error (&error);
  g_clear_pointer (&s, mh_store_unref);
  mh_test_rmtree (dir);
}

static void
test_copy_move_expunge (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 a = deliver (fx->store, NULL, msg1, MH_STORE_FLAG_SEEN);
  guint32 b = deliver (fx->store, NULL, mime1, 0);
  const char *kw[] = { "X1", "X2", NULL };
  assert_true (mh_store_set_flags (fx->store, NULL, &b, 1, MH_STORE_FLAGS_ADD,
                                   0, kw + 1, 0, NULL, &error));
  assert_true (mh_store_folder_create (fx->store, "Box", &error));
  /* Give Box a different keyword order so the letters must be remapped. */
  guint32 pre = deliver (fx->store, "Box", msg1, 0);
  assert_true (mh_store_set_flags (fx->store, "Box", &pre, 1,
                                   MH_STORE_FLAGS_ADD, 0, kw, 0, NULL,
                                   &error));
  guint32 both[] = { a, b };
  g_autoptr (GArray) src = NULL, dst = NULL;
  guint32 uv = 0;
  assert_true (mh_store_copy (fx->store, NULL, both, 2, "Box", FALSE, &src,
                              &dst, &uv, &error));
  assert_int_equal (dst->len, 2);
  assert_int_equal (g_array_index (dst, guint32, 0), pre + 1);
  MhStoreStatus st;
  assert_true (mh_store_folder_status (fx->store, "Box", &st, &error));
  assert_int_equal (uv, st.uidvalidity);
  assert_int_equal (st.messages, 3);
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, "Box", FALSE,
                                               &error);
  g_auto (GStrv) k = mh_store_view_get_keywords (v, 2);
  assert_int_equal (g_strv_length (k), 1);
  assert_string_equal (k[0], "X2");
  assert_int_equal (mh_store_view_get_flags (v, 1), MH_STORE_FLAG_SEEN);
  /* The cache travelled. */
  g_autoptr (MhStoreMessage) m = mh_store_message_get (
    fx->store, "Box", g_array_index (dst, guint32, 1), &error);
  assert_non_null (strstr (mh_store_message_get_bodystructure (m, FALSE),
                           "mixed"));
  /* Move: gone from the source with a tombstone. */
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  guint64 ms = st.highestmodseq;
  assert_true (mh_store_copy (fx->store, NULL, &a, 1, "Trash", TRUE, NULL,
                              NULL, NULL, &error));
  g_autoptr (MhStoreView) ch = mh_store_changes_since (fx->store, NULL, ms,
                                                       &error);
  guint nv;
  assert_int_equal (mh_store_view_get_vanished (ch, &nv)[0], a);
  assert_true (mh_store_folder_status (fx->store, "Trash", &st, &error));
  assert_int_equal (st.messages, 1);
  assert_false (mh_store_copy (fx->store, NULL, &b, 1, NULL, TRUE, NULL,
                               NULL, NULL, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "into itself", NULL);
  g_clear_error (&error);
  /* Expunge only \Deleted. */
  guint32 c = deliver (fx->store, NULL, msg1, MH_STORE_FLAG_DELETED);
  g_autoptr (GArray) gone = NULL;
  assert_true (mh_store_expunge (fx->store, NULL, NULL, 0, TRUE, &gone,
                                 &error));
  assert_int_equal (gone->len, 1);
  assert_int_equal (g_array_index (gone, guint32, 0), c);
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, 1);
  /* dovecot-uidlist no longer lists the expunged ones. */
  g_autofree char *ul = NULL;
  g_autofree char *ulp = g_build_filename (fx->maildir, "dovecot-uidlist",
                                           NULL);
  assert_true (g_file_get_contents (ulp, &ul, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (ul), "\n", -1);
  assert_int_equal (g_strv_length (lines), 2);
  guint64 bytes, msgs;
  assert_true (mh_store_get_usage (fx->store, &bytes, &msgs, &error));
  assert_int_equal (msgs, 5);
}

static void
test_retention (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint n = 0;
  assert_null (mh_store_retention_parse ("Junk", &n, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "FOLDER:KEY=AGE", NULL);
  g_clear_error (&error);
  assert_null (mh_store_retention_parse ("Junk:seen=soon", &n, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "soon", NULL);
  g_clear_error (&error);
  assert_null (mh_store_retention_parse ("Junk:old=7d", &n, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                        "old", NULL);
  g_clear_error (&error);
  assert_null (mh_store_retention_parse ("a..b:any=1d", &n, &error));
  g_clear_error (&error);
  g_autofree MhStoreRetention *r = mh_store_retention_parse (
    "Junk:seen=7d,unseen=30d; Trash:any=14d", &n, &error);
  assert_non_null (r);
  assert_int_equal (n, 2);
  assert_string_equal (r[0].folder, "Junk");
  assert_int_equal (r[0].seen_max_age, 7 * 86400);
  assert_int_equal (r[1].any_max_age, 14 * 86400);
  deliver (fx->store, "Junk", msg1, MH_STORE_FLAG_SEEN);
  deliver (fx->store, "Junk", msg1, 0);
  deliver (fx->store, NULL, msg1, MH_STORE_FLAG_SEEN);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  guint gone = 99;
  assert_true (mh_store_apply_retention (fx->store, r, n, now, &gone,
                                         &error));
  assert_int_equal (gone, 0);
  assert_true (mh_store_apply_retention (fx->store, r, n, now + 8 * 86400,
                                         &gone, &error));
  assert_int_equal (gone, 1);
  MhStoreStatus st;
  assert_true (mh_store_folder_status (fx->store, "Junk", &st, &error));
  assert_int_equal (st.messages, 1);
  assert_int_equal (st.unseen, 1);
  assert_true (mh_store_apply_retention (fx->store, r, n, now + 31 * 86400,
                                         &gone, &error));
  assert_int_equal (gone, 1);
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, 1); /* INBOX has no rule */
}

static void
test_watch (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreWatch) w = mh_store_watch_new (fx->store, "INBOX",
                                                   &error);
  assert_non_null (w);
  assert_true (mh_store_watch_get_fd (w) >= 0);
  assert_false (mh_store_watch_wait (w, 0));
  deliver (fx->store, NULL, msg1, 0);
  assert_true (mh_store_watch_wait (w, 1000));
  assert_false (mh_store_watch_wait (w, 0));
  /* Another tool writing into new/ wakes it too. */
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  g_free (mh_test_write_file (newd, "1.ext.host", msg1));
  assert_true (mh_store_watch_wait (w, 1000));
  assert_null (mh_store_watch_new (fx->store, "a..b", &error));
  g_clear_error (&error);
}

typedef struct
{
  MhStore *store;
  int n;
  GArray *uids;
  GMutex *lock;
} Worker;

static gpointer
worker (gpointer data)
{
  Worker *w = data;
  for (int i = 0; i < w->n; i++)
    {
      g_autofree char *text = g_strdup_printf ("Subject: t%d\n\nbody\n", i);
      g_autoptr (GBytes) b = g_bytes_new (text, strlen (text));
      guint32 uid = 0;
      if (!mh_store_deliver (w->store, NULL, b, 0, NULL, 0, &uid, NULL))
        return GINT_TO_POINTER (1);
      g_mutex_lock (w->lock);
      g_array_append_val (w->uids, uid);
      g_mutex_unlock (w->lock);
    }
  return NULL;
}

static void
test_concurrent_delivery (void **state)
{
  Fx *fx = *state;
  GMutex lock;
  g_mutex_init (&lock);
  GArray *uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  Worker w = { fx->store, 40, uids, &lock };
  GThread *t[8];
  for (int i = 0; i < 8; i++)
    t[i] = g_thread_new ("deliver", worker, &w);
  for (int i = 0; i < 8; i++)
    assert_null (g_thread_join (t[i]));
  assert_int_equal (uids->len, 320);
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  for (guint i = 0; i < uids->len; i++)
    {
      guint32 u = g_array_index (uids, guint32, i);
      assert_true (u >= 1 && u <= 320);
      assert_true (g_hash_table_add (seen, GUINT_TO_POINTER (u)));
    }
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  assert_int_equal (count_files (newd), 320);
  g_autoptr (GError) error = NULL;
  MhStoreStatus st;
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, 320);
  g_array_unref (uids);
  g_mutex_clear (&lock);
}

static gboolean
refuse_big (MhStore *s, const char *folder, gint64 bytes, gint64 msgs,
            gpointer data, GError **error)
{
  if (bytes > 50)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "over quota (%" G_GINT64_FORMAT " bytes into %s)", bytes,
                   folder);
      return FALSE;
    }
  return TRUE;
}

static void
test_check_hook (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  mh_store_set_check (fx->store, refuse_big, NULL, NULL);
  g_autoptr (GBytes) b = g_bytes_new_static (msg1, strlen (msg1));
  assert_false (mh_store_deliver (fx->store, NULL, b, 0, NULL, 0, NULL,
                                  &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED,
                        "over quota", "INBOX", NULL);
  g_clear_error (&error);
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  g_autofree char *tmpd = g_build_filename (fx->maildir, "tmp", NULL);
  assert_int_equal (count_files (newd) + count_files (tmpd), 0);
  deliver (fx->store, NULL, "Subject: s\n\nx\n", 0);
  mh_store_set_check (fx->store, NULL, NULL, NULL);
}

static const char fwd[] =
  "From: a@example.org\n"
  "Subject: fwd\n"
  "MIME-Version: 1.0\n"
  "Content-Type: multipart/mixed; boundary=b1\n"
  "\n"
  "--b1\n"
  "Content-Type: text/plain\n"
  "\n"
  "see below\n"
  "--b1\n"
  "Content-Type: message/rfc822\n"
  "\n"
  "From: inner@example.org\n"
  "Subject: inner message\n"
  "\n"
  "inner body\n"
  "--b1--\n";

static void
test_append_date_and_embedded_message (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = g_bytes_new_static (fwd, strlen (fwd));
  guint32 uid = 0;
  const char *kw[] = { "$Forwarded", NULL };
  assert_true (mh_store_deliver (fx->store, "Drafts", b,
                                 MH_STORE_FLAG_DRAFT | MH_STORE_FLAG_SEEN, kw,
                                 1600000000, &uid, &error));
  g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, "Drafts",
                                                       uid, &error);
  assert_int_equal (mh_store_message_get_internal_date (m), 1600000000);
  assert_int_equal (mh_store_message_get_flags (m),
                    MH_STORE_FLAG_DRAFT | MH_STORE_FLAG_SEEN);
  /* Dovecot reads INTERNALDATE from the file's mtime. */
  g_autofree char *curd = g_build_filename (fx->maildir, ".Drafts", "cur",
                                            NULL);
  g_autofree char *name = only_file (curd);
  g_autofree char *path = g_build_filename (curd, name, NULL);
  GStatBuf st;
  assert_int_equal (g_stat (path, &st), 0);
  assert_int_equal (st.st_mtime, 1600000000);
  const char *bs = mh_store_message_get_bodystructure (m, FALSE);
  assert_non_null (strstr (bs, "\"message\" \"rfc822\""));
  assert_non_null (strstr (bs, "\"inner message\""));
  g_autoptr (GBytes) h = mh_store_read (fx->store, "Drafts", uid, "2.HEADER",
                                        0, -1, &error);
  assert_non_null (h);
  g_autofree char *hs = g_strndup (g_bytes_get_data (h, NULL),
                                   g_bytes_get_size (h));
  assert_string_equal (hs, "From: inner@example.org\n"
                           "Subject: inner message\n\n");
  g_autoptr (GBytes) t = mh_store_read (fx->store, "Drafts", uid, "2.TEXT", 0,
                                        -1, &error);
  assert_int_equal (g_bytes_get_size (t), strlen ("inner body"));
  g_autoptr (GBytes) p1 = mh_store_read (fx->store, "Drafts", uid, "1", 0, -1,
                                         &error);
  assert_memory_equal (g_bytes_get_data (p1, NULL), "see below", 9);
}

static gboolean
has_marker (const char *index)
{
  g_autoptr (GDir) d = g_dir_open (index, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name (d)))
    if (g_str_has_prefix (n, "dirty."))
      return TRUE;
  return FALSE;
}

/* Issue 4: the index is committed without fsync (MDB_NOSYNC). A power
 * loss can lose its last commits and the dovecot-uidlist lines written
 * with them; the files (fsynced) survive. The reopened store must rebuild
 * and never hand out a UID or MODSEQ twice. Simulated here by putting an
 * older data.mdb back, cutting the uidlist and leaving a marker of
 * another boot. */
static void
test_power_loss_never_reuses_uids (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  for (int i = 0; i < 3; i++)
    assert_int_equal (deliver (fx->store, NULL, msg1, 0), i + 1);
  g_autofree char *data = g_build_filename (fx->index, "data.mdb", NULL);
  g_autofree char *old = NULL;
  gsize old_len;
  assert_true (g_file_get_contents (data, &old, &old_len, &error));
  g_autofree char *ulp = g_build_filename (fx->maildir, "dovecot-uidlist",
                                           NULL);
  g_autofree char *ul_old = NULL;
  assert_true (g_file_get_contents (ulp, &ul_old, NULL, &error));
  for (int i = 3; i < 6; i++)
    assert_int_equal (deliver (fx->store, NULL, msg1, 0), i + 1);
  guint32 six = 6;
  assert_true (mh_store_expunge (fx->store, NULL, &six, 1, FALSE, NULL,
                                 &error));
  MhStoreStatus st0;
  assert_true (mh_store_folder_status (fx->store, NULL, &st0, &error));
  assert_true (has_marker (fx->index));
  mh_store_unref (fx->store);
  fx->store = NULL;
  assert_false (has_marker (fx->index)); /* clean close: synced, removed */

  /* The crash: old index and uidlist, a marker from another boot. */
  assert_true (g_file_set_contents (data, old, (gssize) old_len, &error));
  assert_true (g_file_set_contents (ulp, ul_old, -1, &error));
  g_free (mh_test_write_file (fx->index, "dirty.424242", "another-boot\n"));

  fx->store = mh_store_open (fx->maildir, fx->index, 0, &error);
  assert_null (error);
  g_autofree char *aside = g_strconcat (data, ".unsynced", NULL);
  assert_true (g_file_test (aside, G_FILE_TEST_EXISTS));
  g_autofree char *stale = g_build_filename (fx->index, "dirty.424242", NULL);
  assert_false (g_file_test (stale, G_FILE_TEST_EXISTS));
  MhStoreStatus st;
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.uidvalidity, st0.uidvalidity); /* clients keep caches */
  assert_int_equal (st.messages, 5);
  assert_true (st.highestmodseq > st0.highestmodseq);
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, FALSE,
                                               &error);
  assert_int_equal (mh_store_view_get_count (v), 5);
  for (guint i = 0; i < 5; i++)
    {
      guint32 u = mh_store_view_get_uid (v, i);
      /* 1-3 were in the surviving uidlist; 4 and 5 lost their lines and
       * get new UIDs; 6 was expunged and must never come back. */
      if (i < 3)
        assert_int_equal (u, i + 1);
      else
        assert_true (u > 6);
      assert_true (mh_store_view_get_modseq (v, i) > st0.highestmodseq);
    }
  guint32 next = deliver (fx->store, NULL, msg1, 0);
  assert_true (next > mh_store_view_get_uid (v, 4));
}

/* A marker left by a process of this boot that was killed: its commits
 * are in the page cache, so the index is kept (no rebuild). */
static void
test_killed_process_marker_keeps_index (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  deliver (fx->store, NULL, msg1, 0);
  mh_store_unref (fx->store);
  fx->store = NULL;
  pid_t pid = fork ();
  if (pid == 0)
    _exit (0);
  assert_true (pid > 0);
  waitpid (pid, NULL, 0);
  g_autofree char *boot = NULL;
  assert_true (g_file_get_contents ("/proc/sys/kernel/random/boot_id", &boot,
                                    NULL, NULL));
  g_autofree char *name = g_strdup_printf ("dirty.%d", (int) pid);
  g_autofree char *mk = mh_test_write_file (fx->index, name, boot);
  fx->store = mh_store_open (fx->maildir, fx->index, 0, &error);
  assert_null (error);
  assert_false (g_file_test (mk, G_FILE_TEST_EXISTS));
  g_autofree char *aside = g_build_filename (fx->index, "data.mdb.unsynced",
                                             NULL);
  assert_false (g_file_test (aside, G_FILE_TEST_EXISTS));
  assert_int_equal (deliver (fx->store, NULL, msg1, 0), 2);
  /* The reservation covers what was handed out. */
  g_autofree char *res = NULL;
  g_autofree char *rp = g_build_filename (fx->maildir, "mailhost-reserve",
                                          NULL);
  assert_true (g_file_get_contents (rp, &res, NULL, NULL));
  assert_non_null (strstr (res, "\nu "));
}

static void
count_change (MhStore *store, const char *folder, gpointer user_data)
{
  GString *log = user_data;
  g_string_append_printf (log, "%s;", folder);
}

/* Issue 4: the post-change hook runs after every change of the message
 * set (and not for flag changes), once the change is committed. */
static void
test_change_hook (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  GString *log = g_string_new (NULL);
  mh_store_set_change_hook (fx->store, count_change, log, NULL);
  guint32 u1 = deliver (fx->store, NULL, msg1, 0);
  guint32 u2 = deliver (fx->store, "Junk", msg1, 0); /* role: autocreated */
  assert_string_equal (log->str, "INBOX;Junk;");
  g_string_truncate (log, 0);
  assert_true (mh_store_set_flags (fx->store, NULL, &u1, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_SEEN,
                                   NULL, 0, NULL, &error));
  assert_string_equal (log->str, "");
  assert_true (mh_store_copy (fx->store, NULL, &u1, 1, "Junk", FALSE, NULL,
                              NULL, NULL, &error));
  assert_string_equal (log->str, "Junk;");
  g_string_truncate (log, 0);
  assert_true (mh_store_copy (fx->store, "Junk", &u2, 1, "INBOX", TRUE, NULL,
                              NULL, NULL, &error));
  assert_string_equal (log->str, "INBOX;Junk;");
  g_string_truncate (log, 0);
  assert_true (mh_store_expunge (fx->store, NULL, &u1, 1, FALSE, NULL,
                                 &error));
  assert_string_equal (log->str, "INBOX;");
  g_string_truncate (log, 0);
  /* Nothing to expunge: no change, no call. */
  assert_true (mh_store_expunge (fx->store, NULL, &u1, 1, FALSE, NULL,
                                 &error));
  assert_string_equal (log->str, "");
  /* A file removed behind our back, seen by a reconciliation. */
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  g_autofree char *f = g_strdup_printf ("%s/1700000000.M9P9.x,S=9", newd);
  assert_true (g_file_set_contents (f, "Subject:\n", -1, NULL));
  g_usleep (30000);
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, FALSE,
                                               &error);
  assert_non_null (v);
  assert_string_equal (log->str, "INBOX;");
  g_string_truncate (log, 0);
  assert_true (mh_store_folder_delete (fx->store, "Junk", &error));
  assert_string_equal (log->str, "Junk;");
  mh_store_set_change_hook (fx->store, NULL, NULL, NULL);
  deliver (fx->store, NULL, msg1, 0);
  assert_string_equal (log->str, "Junk;");
  g_string_free (log, TRUE);
}

/* The name of @uid's file (relative to the Maildir, "cur/..."). */
static char *
file_of (MhStore *s, const char *folder, guint32 uid)
{
  MDB_txn *txn;
  assert_int_equal (mh_store__txn_begin (s, FALSE, &txn, NULL), 0);
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (s, txn, folder,
                                                       FALSE, NULL);
  assert_non_null (f);
  MsgRec r;
  char *fn = NULL;
  assert_true (mh_store__msg_get (s, txn, f->rec.id, uid, &r, &fn));
  mdb_txn_abort (txn);
  char *rel = g_build_filename (r.in_new ? "new" : "cur", fn, NULL);
  g_free (fn);
  return rel;
}

/* Reconciles @folder until its directory mtimes are trusted (index.c
 * records an mtime only once the clock has left its tick). */
static void
settle (MhStore *s, const char *folder)
{
  for (int i = 0; i < 50; i++)
    {
      g_usleep (30000);
      assert_true (mh_store__sync_folder (s, folder, FALSE, NULL));
      gint before = g_atomic_int_get (&s->n_scans);
      assert_true (mh_store__sync_folder (s, folder, FALSE, NULL));
      if (g_atomic_int_get (&s->n_scans) == before)
        return;
    }
  fail_msg ("folder %s never settled", folder ? folder : "INBOX");
}

/* Our own renames, unlinks and links keep the index fresh: no directory
 * scan after STORE, EXPUNGE, COPY, MOVE or SELECT's claim of new/ on a
 * 2,000-message folder. What another program does after them is still
 * seen at once. */
static void
test_own_changes_no_rescan (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  g_autofree char *curd = g_build_filename (fx->maildir, "cur", NULL);
  enum { N = 2000 };
  for (int i = 0; i < N; i++)
    {
      g_autofree char *n = g_strdup_printf ("%d.M%dP1.test,S=%zu:2,%s",
                                            1700000000 + i, i, strlen (msg1),
                                            i % 2 ? "S" : "");
      g_free (mh_test_write_file (curd, n, msg1));
    }
  assert_true (mh_store_folder_create (fx->store, "Trash", &error));
  settle (fx->store, NULL);
  settle (fx->store, "Trash");
  MhStoreStatus st;
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, N);
  guint64 ms = st.highestmodseq;

  gint scans = g_atomic_int_get (&fx->store->n_scans);
  for (guint32 uid = 1; uid <= 20; uid++)
    {
      assert_true (mh_store_set_flags (fx->store, NULL, &uid, 1,
                                       MH_STORE_FLAGS_ADD,
                                       MH_STORE_FLAG_FLAGGED, NULL, 0, NULL,
                                       &error));
      g_autoptr (MhStoreView) ch = mh_store_changes_since (fx->store, NULL,
                                                           ms, &error);
      assert_non_null (ch);
      assert_int_equal (mh_store_view_get_count (ch), uid);
    }
  const char *kw[] = { "$Label1", NULL };
  guint32 five = 5;
  assert_true (mh_store_set_flags (fx->store, NULL, &five, 1,
                                   MH_STORE_FLAGS_ADD, 0, kw, 0, NULL,
                                   &error));
  guint32 gone[] = { 30, 31 };
  g_autoptr (GArray) ex = NULL;
  assert_true (mh_store_expunge (fx->store, NULL, gone, 2, FALSE, &ex,
                                 &error));
  assert_int_equal (ex->len, 2);
  guint32 cp[] = { 40, 41 }, mv[] = { 42 };
  assert_true (mh_store_copy (fx->store, NULL, cp, 2, "Trash", FALSE, NULL,
                              NULL, NULL, &error));
  assert_true (mh_store_copy (fx->store, NULL, mv, 1, "Trash", TRUE, NULL,
                              NULL, NULL, &error));
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, TRUE,
                                               &error);
  assert_int_equal (mh_store_view_get_count (v), N - 3);
  g_autoptr (MhStoreView) t = mh_store_select (fx->store, "Trash", TRUE,
                                               &error);
  assert_int_equal (mh_store_view_get_count (t), 3);
  assert_int_equal (g_atomic_int_get (&fx->store->n_scans), scans);
  /* The index still equals what a full scan finds. */
  assert_true (mh_store__sync_folder (fx->store, NULL, TRUE, &error));
  g_autoptr (MhStoreView) full = mh_store_select (fx->store, NULL, FALSE,
                                                  &error);
  assert_int_equal (mh_store_view_get_count (full), N - 3);
  for (guint i = 0; i < mh_store_view_get_count (v); i++)
    {
      assert_int_equal (mh_store_view_get_uid (full, i),
                        mh_store_view_get_uid (v, i));
      assert_int_equal (mh_store_view_get_flags (full, i),
                        mh_store_view_get_flags (v, i));
      assert_int_equal (mh_store_view_get_modseq (full, i),
                        mh_store_view_get_modseq (v, i));
    }
  settle (fx->store, NULL);

  /* mutt renames a file right after our STORE, in the same clock tick. */
  guint32 seven = 7;
  assert_true (mh_store_set_flags (fx->store, NULL, &seven, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_SEEN,
                                   NULL, 0, NULL, &error));
  g_autofree char *rel = file_of (fx->store, NULL, seven);
  g_autofree char *op = g_build_filename (fx->maildir, rel, NULL);
  g_autofree char *np = g_strconcat (curd, "/",
                                     strrchr (rel, '/') + 1, NULL);
  *strstr (np, ":2,") = '\0';
  g_autofree char *np2 = g_strconcat (np, ":2,RS", NULL);
  assert_int_equal (rename (op, np2), 0);
  g_autoptr (MhStoreView) after = mh_store_select (fx->store, NULL, FALSE,
                                                   &error);
  gint i7 = mh_store_view_find (after, seven);
  assert_true (i7 >= 0);
  assert_int_equal (mh_store_view_get_flags (after, (guint) i7),
                    MH_STORE_FLAG_SEEN | MH_STORE_FLAG_ANSWERED);
  assert_true (g_atomic_int_get (&fx->store->n_scans) > scans);

  /* Another program drops a file into cur/ right after our STORE. */
  guint32 eight = 8;
  assert_true (mh_store_set_flags (fx->store, NULL, &eight, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_SEEN,
                                   NULL, 0, NULL, &error));
  g_free (mh_test_write_file (curd, "1800000000.ext.host:2,S", msg1));
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, N - 2);

  /* SELECT moving our own deliveries out of new/: one scan of new/ for
   * the deliveries, none for the moves. */
  deliver (fx->store, NULL, msg1, 0);
  deliver (fx->store, NULL, msg1, 0);
  settle (fx->store, NULL);
  scans = g_atomic_int_get (&fx->store->n_scans);
  g_autoptr (MhStoreView) sel = mh_store_select (fx->store, NULL, TRUE,
                                                 &error);
  mh_store_view_get_status (sel, &st);
  assert_int_equal (st.recent, 3); /* the cur/ file and two deliveries */
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  assert_int_equal (count_files (newd), 0);
  g_autoptr (MhStoreView) sel2 = mh_store_select (fx->store, NULL, TRUE,
                                                  &error);
  assert_int_equal (g_atomic_int_get (&fx->store->n_scans), scans);
}

/* An index of version 1 (folder records without in_new) is upgraded in
 * place at open, and SELECT still moves files out of new/. */
static void
test_index_v1_upgrade (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  deliver (fx->store, NULL, msg1, 0);
  deliver (fx->store, NULL, msg1, MH_STORE_FLAG_SEEN);
  deliver (fx->store, NULL, msg1, 0);
  mh_store_unref (fx->store);
  fx->store = NULL;
  /* Rewrite as version 1: shorter folder records. */
  MDB_env *env;
  assert_int_equal (mdb_env_create (&env), 0);
  mdb_env_set_maxdbs (env, 8);
  assert_int_equal (mdb_env_open (env, fx->index, MDB_NOTLS, 0600), 0);
  MDB_txn *txn;
  assert_int_equal (mdb_txn_begin (env, NULL, 0, &txn), 0);
  MDB_dbi meta, folders;
  assert_int_equal (mdb_dbi_open (txn, "meta", 0, &meta), 0);
  assert_int_equal (mdb_dbi_open (txn, "folders", 0, &folders), 0);
  MDB_val k = { 5, "INBOX" }, v;
  assert_int_equal (mdb_get (txn, folders, &k, &v), 0);
  assert_true (v.mv_size >= sizeof (FolderRec));
  GByteArray *b = g_byte_array_new ();
  g_byte_array_append (b, v.mv_data, MH_STORE_FOLDER_REC_V1_SIZE);
  g_byte_array_append (b, (guint8 *) v.mv_data + sizeof (FolderRec),
                       v.mv_size - sizeof (FolderRec));
  MDB_val nv = { b->len, b->data };
  assert_int_equal (mdb_put (txn, folders, &k, &nv, 0), 0);
  guint64 one = 1;
  MDB_val vk = { 7, "version" }, vv = { 8, &one };
  assert_int_equal (mdb_put (txn, meta, &vk, &vv, 0), 0);
  assert_int_equal (mdb_txn_commit (txn), 0);
  g_byte_array_unref (b);
  mdb_env_close (env);

  fx->store = mh_store_open (fx->maildir, fx->index, 0, &error);
  assert_non_null (fx->store);
  assert_int_equal (mh_store__txn_begin (fx->store, FALSE, &txn, NULL), 0);
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (fx->store, txn, NULL,
                                                       FALSE, &error);
  mdb_txn_abort (txn);
  assert_non_null (f);
  assert_int_equal (f->rec.in_new, 2); /* the third went to cur/ (\Seen) */
  assert_int_equal (f->rec.messages, 3);
  assert_int_equal (f->rec.unseen, 2);
  g_autoptr (MhStoreView) sel = mh_store_select (fx->store, NULL, TRUE,
                                                 &error);
  MhStoreStatus st;
  mh_store_view_get_status (sel, &st);
  assert_int_equal (st.messages, 3);
  assert_int_equal (st.recent, 3);
  g_autofree char *newd = g_build_filename (fx->maildir, "new", NULL);
  assert_int_equal (count_files (newd), 0);
}

/* Puts @text's cache as a record of before versions (a bare GVariant). */
static void
put_old_cache (MhStore *s, guint32 uid, const char *text)
{
  MDB_txn *txn;
  g_mutex_lock (&s->write_lock);
  assert_int_equal (mh_store__txn_begin (s, TRUE, &txn, NULL), 0);
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (s, txn, NULL, FALSE,
                                                       NULL);
  g_autoptr (GVariant) c = mh_store__meta_compute (text, strlen (text));
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, uid);
  MDB_val k = { 8, key };
  MDB_val v = { g_variant_get_size (c), (void *) g_variant_get_data (c) };
  assert_int_equal (mdb_put (txn, s->db.cache, &k, &v, 0), 0);
  assert_int_equal (mdb_txn_commit (txn), 0);
  g_mutex_unlock (&s->write_lock);
}

static gboolean
cache_is_current (MhStore *s, const char *folder, guint32 uid)
{
  MDB_txn *txn;
  assert_int_equal (mh_store__txn_begin (s, FALSE, &txn, NULL), 0);
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (s, txn, folder,
                                                       FALSE, NULL);
  gboolean current = FALSE;
  g_autoptr (GVariant) c = mh_store__cache_get (s, txn, f->rec.id, uid,
                                                &current);
  mdb_txn_abort (txn);
  assert_non_null (c);
  return current;
}

/* Cache records computed by an older meta.c (no version) are recomputed
 * when read and written back, through every read path. */
static void
test_old_cache_recomputed (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 u1 = deliver (fx->store, NULL, msg1, 0);
  guint32 u2 = deliver (fx->store, NULL, msg1, 0);
  guint32 u3 = deliver (fx->store, NULL, msg1, 0);
  assert_true (cache_is_current (fx->store, NULL, u1));
  /* Old records that say something else than the file. */
  put_old_cache (fx->store, u1, mime1);
  put_old_cache (fx->store, u2, mime1);
  put_old_cache (fx->store, u3, mime1);
  assert_false (cache_is_current (fx->store, NULL, u1));

  g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, NULL, u1,
                                                       &error);
  assert_non_null (m);
  assert_non_null (strstr (mh_store_message_get_envelope (m), "Hello"));
  assert_true (cache_is_current (fx->store, NULL, u1));

  MhStoreReader *r = mh_store_reader_new (fx->store, NULL, &error);
  g_autoptr (MhStoreMessage) m2 = mh_store_reader_get (r, u2, &error);
  assert_non_null (strstr (mh_store_message_get_envelope (m2), "Hello"));
  mh_store_reader_unref (r);
  assert_true (cache_is_current (fx->store, NULL, u2));

  /* A copy does not label an old record current: recomputed there. */
  assert_true (mh_store_folder_create (fx->store, "Archive", &error));
  g_autoptr (GArray) dst = NULL;
  assert_true (mh_store_copy (fx->store, NULL, &u3, 1, "Archive", FALSE,
                              NULL, &dst, NULL, &error));
  guint32 d = g_array_index (dst, guint32, 0);
  g_autoptr (MhStoreMessage) m3 = mh_store_message_get (fx->store,
                                                        "Archive", d,
                                                        &error);
  assert_non_null (m3);
  assert_non_null (strstr (mh_store_message_get_envelope (m3), "Hello"));
  assert_true (cache_is_current (fx->store, "Archive", d));
}

/* A large folder selected twice in the same state shares one view; any
 * change (flags, a new message, \Recent claimed) gives a new, right one. */
static void
test_select_shares_unchanged_view (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  g_autofree char *curd = g_build_filename (fx->maildir, "cur", NULL);
  enum { N = 2100 };
  for (int i = 0; i < N; i++)
    {
      g_autofree char *n = g_strdup_printf ("%d.M%dP1.test,S=%zu:2,",
                                            1700000000 + i, i, strlen (msg1));
      g_free (mh_test_write_file (curd, n, msg1));
    }
  settle (fx->store, NULL);
  /* The first read-write SELECT claims \Recent: its view is its own. */
  g_autoptr (MhStoreView) first = mh_store_select (fx->store, NULL, TRUE,
                                                   &error);
  assert_true (mh_store_view_is_recent (first, 0));
  g_autoptr (MhStoreView) a = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_ptr_not_equal (a, first);
  assert_false (mh_store_view_is_recent (a, 0));
  g_autoptr (MhStoreView) b = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_ptr_equal (a, b);
  /* read-only views are kept apart from read-write ones */
  g_autoptr (MhStoreView) ro = mh_store_select (fx->store, NULL, FALSE,
                                                &error);
  assert_ptr_not_equal (ro, a);
  assert_int_equal (mh_store_view_get_count (ro), N);

  guint32 uid = 7;
  assert_true (mh_store_set_flags (fx->store, NULL, &uid, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_SEEN,
                                   NULL, 0, NULL, &error));
  g_autoptr (MhStoreView) c = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_ptr_not_equal (c, a);
  assert_true (mh_store_view_get_flags (c, 6) & MH_STORE_FLAG_SEEN);
  assert_false (mh_store_view_get_flags (a, 6) & MH_STORE_FLAG_SEEN);

  assert_int_equal (deliver (fx->store, NULL, msg1, 0), N + 1);
  g_autoptr (MhStoreView) d = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_ptr_not_equal (d, c);
  assert_int_equal (mh_store_view_get_count (d), N + 1);
  assert_true (mh_store_view_is_recent (d, N));
  /* the next read-write SELECT no longer owns that \Recent */
  g_autoptr (MhStoreView) e = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_false (mh_store_view_is_recent (e, N));
  g_autoptr (MhStoreView) f = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_ptr_equal (e, f);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_deliver_basic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_metadata_cache, setup, teardown),
    cmocka_unit_test (test_folder_names),
    cmocka_unit_test_setup_teardown (test_folders, setup, teardown),
    cmocka_unit_test_setup_teardown (test_flags_keywords, setup, teardown),
    cmocka_unit_test_setup_teardown (test_select_recent_and_new_to_cur, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_reconcile_other_tools, setup,
                                     teardown),
    cmocka_unit_test (test_dovecot_uidlist_migration),
    cmocka_unit_test_setup_teardown (test_rebuild_equals_incremental, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_corrupt_index_is_rebuilt, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_power_loss_never_reuses_uids, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_killed_process_marker_keeps_index,
                                     setup, teardown),
    cmocka_unit_test (test_bad_maildir),
    cmocka_unit_test_setup_teardown (test_copy_move_expunge, setup, teardown),
    cmocka_unit_test_setup_teardown (test_retention, setup, teardown),
    cmocka_unit_test_setup_teardown (test_watch, setup, teardown),
    cmocka_unit_test_setup_teardown (test_concurrent_delivery, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_check_hook, setup, teardown),
    cmocka_unit_test_setup_teardown (test_change_hook, setup, teardown),
    cmocka_unit_test_setup_teardown (test_append_date_and_embedded_message,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_own_changes_no_rescan, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_index_v1_upgrade, setup, teardown),
    cmocka_unit_test_setup_teardown (test_old_cache_recomputed, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_select_shares_unchanged_view, setup,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
