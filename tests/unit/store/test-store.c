/* Unit tests of lib/store: delivery, folders, flags and keywords, the
 * index and its reconciliation, operations, retention, bad input. */
#include "mh-test.h"
#include "store/store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
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

typedef struct
{
  char *dir;
  char *maildir;
  char *index;
  MhStore *store;
} Fx;

static int
setup (void **state)
{
  Fx *fx = g_new0 (Fx, 1);
  fx->dir = mh_test_mkdtemp ();
  fx->maildir = g_build_filename (fx->dir, "mail", NULL);
  fx->index = g_build_filename (fx->dir, "index", NULL);
  g_autoptr (GError) error = NULL;
  fx->store = mh_store_open (fx->maildir, fx->index, MH_STORE_OPEN_CREATE,
                             &error);
  assert_null (error);
  assert_non_null (fx->store);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fx *fx = *state;
  mh_store_unref (fx->store);
  mh_test_rmtree (fx->dir);
  g_free (fx->dir);
  g_free (fx->maildir);
  g_free (fx->index);
  g_free (fx);
  return 0;
}

static guint32
deliver (MhStore *s, const char *folder, const char *text,
         MhStoreFlags flags)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = g_bytes_new_static (text, strlen (text));
  guint32 uid = 0;
  gboolean ok = mh_store_deliver (s, folder, b, flags, NULL, 0, &uid, &error);
  if (!ok)
    fail_msg ("deliver: %s", error->message);
  return uid;
}

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
  assert_true (g_str_has_suffix (g_strndup (g_bytes_get_data (h, NULL),
                                            g_bytes_get_size (h)),
                                 "boundary=\"XX\"\r\n\r\n"));
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

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_deliver_basic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_metadata_cache, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
