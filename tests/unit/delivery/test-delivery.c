/* The delivery pipeline (issue 6) against a real directory, quota layer
 * and Maildir store in a temporary data directory: per-recipient
 * results, one copy per mailbox through aliases, unknown users, quota,
 * groups, forwards, store failures, durability, and the spool file. */
#include "mh-test.h"
#include "delivery/delivery-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

/* What the pipeline logged (a test writer: a store failure is logged at
 * error level, which G_DEBUG=fatal-criticals would otherwise abort on). */
static GString *logged;
/* Deliveries log from worker threads too: one writer at a time. */
static GMutex logged_lock;

static GLogWriterOutput
capture (GLogLevelFlags level, const GLogField *fields, gsize n,
         gpointer user_data)
{
  g_mutex_lock (&logged_lock);
  for (gsize i = 0; i < n; i++)
    if (fields[i].length < 0 && strcmp (fields[i].key, "MESSAGE") == 0)
      g_string_append_printf (logged, "%s\n",
                              (const char *) fields[i].value);
  g_mutex_unlock (&logged_lock);
  return G_LOG_WRITER_HANDLED;
}

typedef struct
{
  char *tmp;
  MhConfig *config;
  MhDelivery *d;
  MhDirectory *dir;
} Fixture;

#define OK(call)                                                           \
  do                                                                       \
    {                                                                      \
      g_autoptr (GError) ok_err_ = NULL;                                   \
      GError **error_ = &ok_err_;                                          \
      if (!(call))                                                         \
        fail_msg ("%s: %s", #call, ok_err_ ? ok_err_->message : "?");      \
    }                                                                      \
  while (0)

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  f->tmp = mh_test_mkdtemp ();
  f->config = mh_config_new ();
  g_autofree char *data = g_build_filename (f->tmp, "data", NULL);
  OK (mh_config_set (f->config, "general", "data_dir", data, error_));
  OK (mh_config_set (f->config, "limits", "max_message_size", "1M",
                     error_));
  g_autoptr (GError) error = NULL;
  f->d = mh_delivery_new (f->config, &error);
  if (f->d == NULL)
    fail_msg ("mh_delivery_new: %s", error->message);
  f->dir = mh_directory_ref (mh_delivery_get_directory (f->d));
  OK (mh_directory_domain_add (f->dir, "example.org", error_));
  OK (mh_directory_account_add (f->dir, "alice@example.org", NULL, error_));
  OK (mh_directory_account_add (f->dir, "bob@example.org", NULL, error_));
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  mh_directory_unref (f->dir);
  mh_delivery_unref (f->d);
  mh_config_unref (f->config);
  mh_test_rmtree (f->tmp);
  g_free (f->tmp);
  g_free (f);
  return 0;
}

/* Spools @text (written in pieces of @step bytes, 0 = whole). */
static MhDeliverySpool *
spool_of (Fixture *f, const char *text, gsize step)
{
  g_autoptr (GError) error = NULL;
  MhDeliverySpool *s = mh_delivery_spool_new (f->d, &error);
  if (s == NULL)
    fail_msg ("spool: %s", error->message);
  gsize len = strlen (text);
  if (step == 0)
    step = len ? len : 1;
  for (gsize off = 0; off < len; off += step)
    OK (mh_delivery_spool_write (s, (const guint8 *) text + off,
                                 MIN (step, len - off), error_));
  OK (mh_delivery_spool_finish (s, error_));
  return s;
}

static char *
spool_text (MhDeliverySpool *s)
{
  int fd = mh_delivery_spool_get_fd (s);
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  char *buf = g_malloc0 ((gsize) st.st_size + 1);
  assert_int_equal (pread (fd, buf, (gsize) st.st_size, 0), st.st_size);
  return buf;
}

/* Delivers @text from @sender to the NULL-terminated @rcpts; returns the
 * results as "CODE ENH" joined by spaces. */
static char *
deliver (Fixture *f, const char *sender, const char *const *rcpts,
         const char *text, GPtrArray **results_out)
{
  g_autoptr (MhDeliverySpool) s = spool_of (f, text, 0);
  g_autoptr (MhDeliveryEnvelope) env = mh_delivery_envelope_new (sender);
  for (guint i = 0; rcpts[i]; i++)
    mh_delivery_envelope_add_recipient (env, rcpts[i], 0, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) res = mh_delivery_deliver_spool (f->d, env, s,
                                                         &error);
  if (res == NULL)
    fail_msg ("deliver: %s", error->message);
  assert_int_equal (res->len, mh_delivery_envelope_get_n_recipients (env));
  GString *out = g_string_new (NULL);
  for (guint i = 0; i < res->len; i++)
    {
      MhDeliveryResult *r = g_ptr_array_index (res, i);
      assert_string_equal (mh_delivery_result_get_address (r), rcpts[i]);
      g_string_append_printf (out, "%s%u %s", i ? " " : "",
                              mh_delivery_result_get_code (r),
                              mh_delivery_result_get_enhanced (r));
    }
  if (results_out)
    *results_out = g_steal_pointer (&res);
  return g_string_free (out, FALSE);
}

/* The files of @user's folder dir ("new", or ".Lists/new"). */
static GPtrArray *
files_in (Fixture *f, const char *user, const char *sub)
{
  g_autofree char *path = g_build_filename (f->tmp, "data", "mail",
                                            "example.org", user, sub, NULL);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *n;
  while (dir && (n = g_dir_read_name (dir)))
    g_ptr_array_add (names, g_build_filename (path, n, NULL));
  return names;
}

static char *
only_file_text (Fixture *f, const char *user, const char *sub)
{
  g_autoptr (GPtrArray) files = files_in (f, user, sub);
  assert_int_equal (files->len, 1);
  char *text = NULL;
  assert_true (g_file_get_contents (g_ptr_array_index (files, 0), &text,
                                    NULL, NULL));
  return text;
}

static const char MSG[] = "Subject: test\r\nFrom: b@x.example\r\n\r\n"
                          "line one\r\nline two\r\n";

static void
test_per_recipient_results (void **state)
{
  Fixture *f = *state;
  const char *rcpts[] = { "alice@example.org", "nobody@example.org",
                          "bob@example.org", "x@not-here.example", NULL };
  g_autofree char *r = deliver (f, "b@x.example", rcpts, MSG, NULL);
  assert_string_equal (r, "250 2.0.0 550 5.1.1 250 2.0.0 550 5.1.2");
  g_autofree char *a = only_file_text (f, "alice", "new");
  /* Return-Path and Delivered-To in front, CRLF stored as LF */
  assert_string_equal (a, "Return-Path: <b@x.example>\n"
                          "Delivered-To: alice@example.org\n"
                          "Subject: test\nFrom: b@x.example\n\n"
                          "line one\nline two\n");
  g_autofree char *b = only_file_text (f, "bob", "new");
  assert_non_null (strstr (b, "Delivered-To: bob@example.org\n"));
}

static void
test_aliases_to_same_mailbox_stored_once (void **state)
{
  Fixture *f = *state;
  const char *t[] = { "alice@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "info@example.org", t, error_));
  OK (mh_directory_alias_add (f->dir, "sales@example.org", t, error_));
  const char *both[] = { "alice@example.org", "bob@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "team@example.org", both, error_));
  const char *rcpts[] = { "info@example.org", "sales@example.org",
                          "alice@example.org", "team@example.org", NULL };
  g_autoptr (GPtrArray) res = NULL;
  g_autofree char *r = deliver (f, "", rcpts, MSG, &res);
  assert_string_equal (r, "250 2.0.0 250 2.0.0 250 2.0.0 250 2.0.0");
  g_autoptr (GPtrArray) af = files_in (f, "alice", "new");
  assert_int_equal (af->len, 1);
  g_autoptr (GPtrArray) bf = files_in (f, "bob", "new");
  assert_int_equal (bf->len, 1);
  /* every recipient reports the one UID alice's copy got */
  guint n;
  const guint32 *u0 = mh_delivery_result_get_uids (
      g_ptr_array_index (res, 0), &n);
  assert_int_equal (n, 1);
  for (guint i = 1; i < 3; i++)
    {
      const guint32 *u = mh_delivery_result_get_uids (
          g_ptr_array_index (res, i), &n);
      assert_int_equal (n, 1);
      assert_int_equal (u[0], u0[0]);
    }
  const char *const *mb = mh_delivery_result_get_mailboxes (
      g_ptr_array_index (res, 3));
  assert_string_equal (mb[0], "alice@example.org");
  assert_string_equal (mb[1], "bob@example.org");
  assert_null (mb[2]);
  /* the null sender is kept as <> */
  g_autofree char *a = only_file_text (f, "alice", "new");
  assert_true (g_str_has_prefix (a, "Return-Path: <>\n"));
}

static void
test_durable_before_result (void **state)
{
  Fixture *f = *state;
  const char *rcpts[] = { "alice@example.org", NULL };
  g_autoptr (GPtrArray) res = NULL;
  g_autofree char *r = deliver (f, "b@x.example", rcpts, MSG, &res);
  assert_string_equal (r, "250 2.0.0");
  guint n;
  const guint32 *uids
      = mh_delivery_result_get_uids (g_ptr_array_index (res, 0), &n);
  assert_int_equal (n, 1);
  /* When the result exists, the rename into new/ is done and the index
   * commit that follows the directory fsync has the UID. */
  g_autoptr (GPtrArray) files = files_in (f, "alice", "new");
  assert_int_equal (files->len, 1);
  g_autoptr (MhStore) store = mh_delivery_get_store (f->d,
                                                     "alice@example.org",
                                                     NULL);
  assert_non_null (store);
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreMessage) m = mh_store_message_get (store, NULL, uids[0],
                                                       &error);
  assert_non_null (m);
  assert_int_equal (mh_store_message_get_size (m),
                    strlen ("Return-Path: <b@x.example>\n"
                            "Delivered-To: alice@example.org\n")
                        + strlen (MSG) - 5 /* CRLF -> LF */);
  /* a new store on the same files (what another process sees after a
   * crash) finds it too: reopening is refused in-process, so compare
   * with the uidlist file the commit wrote */
  g_autofree char *uidlist = g_build_filename (
      f->tmp, "data", "mail", "example.org", "alice", "dovecot-uidlist",
      NULL);
  g_autofree char *ul = NULL;
  assert_true (g_file_get_contents (uidlist, &ul, NULL, NULL));
  g_autofree char *base = g_path_get_basename (g_ptr_array_index (files, 0));
  char *colon = strchr (base, ':');
  if (colon)
    *colon = '\0';
  assert_non_null (strstr (ul, base));
}

static void
test_unknown_and_bad_addresses (void **state)
{
  Fixture *f = *state;
  guint code;
  g_autofree char *enh = NULL, *text = NULL;
  assert_false (mh_delivery_check_rcpt (f->d, "nobody@example.org", "a@b.c",
                                        FALSE, 0, &code, &enh, &text));
  assert_int_equal (code, 550);
  assert_string_equal (enh, "5.1.1");
  g_clear_pointer (&enh, g_free);
  g_clear_pointer (&text, g_free);
  assert_true (mh_delivery_check_rcpt (f->d, "ALICE@example.org", NULL,
                                       FALSE, 100, &code, &enh, &text));
  assert_int_equal (code, 250);
  g_clear_pointer (&enh, g_free);
  g_clear_pointer (&text, g_free);
  assert_false (mh_delivery_check_rcpt (f->d, "a\r\nb@example.org", NULL,
                                        FALSE, 0, &code, &enh, &text));
  assert_int_equal (code, 501);
  assert_non_null (strstr (text, "control character"));

  /* a sender with a line break would inject a header: refused whole */
  g_autoptr (MhDeliverySpool) s = spool_of (f, MSG, 0);
  g_autoptr (MhDeliveryEnvelope) env
      = mh_delivery_envelope_new ("a@b.c>\nX-Evil: 1");
  mh_delivery_envelope_add_recipient (env, "alice@example.org", 0, NULL);
  g_autoptr (GError) error = NULL;
  assert_null (mh_delivery_deliver_spool (f->d, env, s, &error));
  mh_test_assert_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                        "sender", "control character", NULL);
  /* no recipients */
  g_autoptr (MhDeliveryEnvelope) none = mh_delivery_envelope_new ("a@b.c");
  g_clear_error (&error);
  assert_null (mh_delivery_deliver_spool (f->d, none, s, &error));
  mh_test_assert_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                        "no recipients", NULL);
  g_autoptr (GPtrArray) files = files_in (f, "alice", "new");
  assert_int_equal (files->len, 0);
}

static void
test_quota_refusal (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_account_set_setting (f->dir, "alice@example.org",
                                        "quota_bytes", "150", error_));
  guint code;
  g_autofree char *enh = NULL, *text = NULL;
  /* announced size larger than the whole quota: permanent */
  assert_false (mh_delivery_check_rcpt (f->d, "alice@example.org", NULL,
                                        FALSE, 1000, &code, &enh, &text));
  assert_int_equal (code, 552);
  assert_string_equal (enh, "5.2.2");
  g_clear_pointer (&enh, g_free);
  g_clear_pointer (&text, g_free);

  const char *rcpts[] = { "alice@example.org", "bob@example.org", NULL };
  g_autofree char *r1 = deliver (f, "b@x.example", rcpts, MSG, NULL);
  assert_string_equal (r1, "250 2.0.0 250 2.0.0");
  /* alice now holds ~110 of 150 bytes: the next copy does not fit, but
   * might after she deletes mail: temporary ([quota] tempfail) */
  g_autofree char *r2 = deliver (f, "b@x.example", rcpts, MSG, NULL);
  assert_string_equal (r2, "452 4.2.2 250 2.0.0");
  assert_true (mh_delivery_check_rcpt (f->d, "alice@example.org", NULL,
                                       FALSE, 0, &code, &enh, &text));
  g_clear_pointer (&enh, g_free);
  g_clear_pointer (&text, g_free);
  assert_false (mh_delivery_check_rcpt (f->d, "alice@example.org", NULL,
                                        FALSE, 100, &code, &enh, &text));
  assert_int_equal (code, 452);
  g_autoptr (GPtrArray) af = files_in (f, "alice", "new");
  assert_int_equal (af->len, 1);
  g_autoptr (GPtrArray) bf = files_in (f, "bob", "new");
  assert_int_equal (bf->len, 2);
}

static void
test_group_and_forward (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_domain_set_setting (f->dir, "example.org",
                                       "group_addresses", "all", error_));
  guint code;
  g_autofree char *enh = NULL, *text = NULL;
  assert_false (mh_delivery_check_rcpt (f->d, "all@example.org",
                                        "x@outside.example", FALSE, 0, &code,
                                        &enh, &text));
  assert_int_equal (code, 550);
  assert_string_equal (enh, "5.7.1");
  g_clear_pointer (&enh, g_free);
  g_clear_pointer (&text, g_free);

  /* from a logged-in member: one copy each */
  g_autoptr (MhDeliverySpool) s = spool_of (f, MSG, 0);
  g_autoptr (MhDeliveryEnvelope) env
      = mh_delivery_envelope_new ("bob@example.org");
  mh_delivery_envelope_set_authenticated (env, "bob@example.org");
  mh_delivery_envelope_add_recipient (env, "all@example.org", 0, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) res = mh_delivery_deliver_spool (f->d, env, s,
                                                         &error);
  assert_non_null (res);
  assert_int_equal (
      mh_delivery_result_get_code (g_ptr_array_index (res, 0)), 250);
  g_autoptr (GPtrArray) af = files_in (f, "alice", "new");
  assert_int_equal (af->len, 1);

  /* a forward needs the outbound queue: temporary, nothing stored */
  const char *t[] = { "alice@example.org", "someone@far.example", NULL };
  OK (mh_directory_alias_add (f->dir, "fwd@example.org", t, error_));
  assert_false (mh_delivery_check_rcpt (f->d, "fwd@example.org", NULL, FALSE,
                                        0, &code, &enh, &text));
  assert_int_equal (code, 451);
  assert_string_equal (enh, "4.3.5");
  assert_non_null (strstr (text, "outbound queue"));
  const char *rcpts[] = { "fwd@example.org", NULL };
  g_autofree char *r = deliver (f, "b@x.example", rcpts, MSG, NULL);
  assert_string_equal (r, "451 4.3.5");
  g_autoptr (GPtrArray) af2 = files_in (f, "alice", "new");
  assert_int_equal (af2->len, 1);
}

static void
test_store_failure_is_per_recipient (void **state)
{
  Fixture *f = *state;
  /* bob's Maildir is broken: new/ is a file */
  g_autofree char *bob = g_build_filename (f->tmp, "data", "mail",
                                           "example.org", "bob", NULL);
  for (const char *const *sub = (const char *[]){ "cur", "tmp", NULL }; *sub;
       sub++)
    {
      g_autofree char *p = g_build_filename (bob, *sub, NULL);
      assert_int_equal (g_mkdir_with_parents (p, 0700), 0);
    }
  g_autofree char *np = mh_test_write_file (bob, "new", "not a directory");
  const char *rcpts[] = { "bob@example.org", "alice@example.org", NULL };
  g_autoptr (GPtrArray) res = NULL;
  g_autofree char *r = deliver (f, "b@x.example", rcpts, MSG, &res);
  assert_string_equal (r, "451 4.3.0 250 2.0.0");
  /* the client sees no path; the log names it */
  assert_null (strstr (mh_delivery_result_get_text (
                           g_ptr_array_index (res, 0)),
                       "/"));
  assert_non_null (strstr (logged->str, "bob@example.org: cannot open the "
                                        "mailbox"));
  assert_non_null (strstr (logged->str, "/bob/new"));
  assert_true (mh_delivery_result_is_temporary (g_ptr_array_index (res, 0)));
  g_autoptr (GPtrArray) af = files_in (f, "alice", "new");
  assert_int_equal (af->len, 1);
}

static void
test_subaddress_folder (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_account_set_setting (f->dir, "alice@example.org",
                                        "subaddress_folders", "true",
                                        error_));
  g_autoptr (MhStore) store = mh_delivery_get_store (f->d,
                                                     "alice@example.org",
                                                     NULL);
  assert_non_null (store);
  OK (mh_store_folder_create (store, "Lists", error_));
  const char *rcpts[] = { "alice+Lists@example.org", "alice+nofolder@"
                                                     "example.org", NULL };
  g_autoptr (GPtrArray) res = NULL;
  g_autofree char *r = deliver (f, "b@x.example", rcpts, MSG, &res);
  /* the two addresses reach one mailbox: stored once, in the first
   * recipient's folder */
  assert_string_equal (r, "250 2.0.0 250 2.0.0");
  const char *const *folders
      = mh_delivery_result_get_folders (g_ptr_array_index (res, 0));
  assert_string_equal (folders[0], "Lists");
  g_autoptr (GPtrArray) lf = files_in (f, "alice", ".Lists/new");
  assert_int_equal (lf->len, 1);
  g_autoptr (GPtrArray) inbox = files_in (f, "alice", "new");
  assert_int_equal (inbox->len, 0);
}

static void
test_spool_conversion (void **state)
{
  Fixture *f = *state;
  static const char *in = "From someone@x Mon Jan  1 00:00:00 2026\r\n"
                          "Subject: a\r\n\r\nbare\rcr\r\nend\r\n";
  static const char *want = "Subject: a\n\nbare\rcr\nend\n";
  /* whole, byte by byte and in odd pieces: the same file */
  gsize steps[] = { 0, 1, 2, 3, 7 };
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      g_autoptr (MhDeliverySpool) s = spool_of (f, in, steps[i]);
      g_autofree char *got = spool_text (s);
      assert_string_equal (got, want);
      assert_int_equal (mh_delivery_spool_get_size (s), strlen (want));
    }
  /* a "From " later in the message is body text, kept */
  g_autoptr (MhDeliverySpool) s2 = spool_of (f, "X: y\r\n\r\nFrom here\r\n",
                                             1);
  g_autofree char *got2 = spool_text (s2);
  assert_string_equal (got2, "X: y\n\nFrom here\n");
  /* shorter than five bytes, ends in CR */
  g_autoptr (MhDeliverySpool) s3 = spool_of (f, "ab\r", 0);
  g_autofree char *got3 = spool_text (s3);
  assert_string_equal (got3, "ab\r");
}

/* Issue 6 (perf): spool files are pooled and reused. A reused file holds
 * exactly the new message (cut when the old one was longer), and two
 * spools in use at once never share a file. */
static void
test_spool_reused (void **state)
{
  Fixture *f = *state;
  g_autofree char *longer = g_strnfill (70000, 'a'); /* > the 64 KiB buffer */
  MhDeliverySpool *a = spool_of (f, longer, 0);
  int fd = mh_delivery_spool_get_fd (a);
  mh_delivery_spool_unref (a);
  g_autoptr (MhDeliverySpool) b = spool_of (f, "Subject: b\r\n\r\nshort\r\n",
                                            3);
  assert_int_equal (mh_delivery_spool_get_fd (b), fd);
  g_autofree char *got = spool_text (b);
  assert_string_equal (got, "Subject: b\n\nshort\n");
  assert_int_equal (mh_delivery_spool_get_size (b), strlen (got));
  g_autoptr (MhDeliverySpool) c = spool_of (f, "X: c\r\n\r\nc\r\n", 0);
  assert_int_not_equal (mh_delivery_spool_get_fd (c), fd);
  g_autofree char *got_b = spool_text (b);
  assert_string_equal (got_b, "Subject: b\n\nshort\n");
  /* a delivery from a reused (longer) file stores only the new message */
  mh_delivery_spool_unref (spool_of (f, longer, 0));
  const char *rcpts[] = { "alice@example.org", NULL };
  g_autofree char *r = deliver (f, "bob@far.example", rcpts,
                                "Subject: reused\r\n\r\nbody\r\n", NULL);
  assert_string_equal (r, "250 2.0.0");
  g_autofree char *stored = only_file_text (f, "alice", "new");
  assert_true (g_str_has_suffix (stored, "Subject: reused\n\nbody\n"));
  assert_null (strstr (stored, "aaa"));
}

static void
test_spool_too_big (void **state)
{
  Fixture *f = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (MhDeliverySpool) s = mh_delivery_spool_new (f->d, &error);
  assert_non_null (s);
  g_autofree char *chunk = g_strnfill (1000, 'x');
  gboolean ok = TRUE;
  for (int i = 0; ok && i < 1100; i++) /* 1.1 MB > 1M */
    ok = mh_delivery_spool_write (s, (const guint8 *) chunk, 1000, &error);
  assert_false (ok);
  mh_test_assert_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_TOO_BIG,
                        "1048576", NULL);
  g_clear_error (&error);
  assert_false (mh_delivery_spool_finish (s, &error));

  /* a file bigger than the limit given directly is refused whole */
  g_autofree char *big = g_strnfill (1100 * 1024, 'y');
  g_autofree char *path = mh_test_write_file (f->tmp, "big.eml", big);
  g_autoptr (MhDeliveryEnvelope) env = mh_delivery_envelope_new ("a@b.c");
  mh_delivery_envelope_add_recipient (env, "alice@example.org", 0, NULL);
  g_clear_error (&error);
  assert_null (mh_delivery_deliver_file (f->d, env, path, &error));
  mh_test_assert_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_TOO_BIG,
                        "limit", NULL);
  g_clear_error (&error);
  assert_null (mh_delivery_deliver_file (f->d, env, "/nonexistent/x",
                                         &error));
  mh_test_assert_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                        "/nonexistent/x", NULL);
}

/* A message above the read threshold is mapped, not read: the stored
 * copy must be the same bytes either way. */
static void
test_large_message_mapped (void **state)
{
  Fixture *f = *state;
  GString *m = g_string_new ("Subject: large\r\n\r\n");
  for (int i = 0; m->len < 300 * 1024; i++)
    g_string_append_printf (m, "line %d of a large message\r\n", i);
  const char *rcpts[] = { "alice@example.org", "bob@example.org", NULL };
  g_autofree char *r = deliver (f, "b@x.example", rcpts, m->str, NULL);
  assert_string_equal (r, "250 2.0.0 250 2.0.0");
  g_autofree char *a = only_file_text (f, "alice", "new");
  g_autoptr (GString) want = g_string_new (
      "Return-Path: <b@x.example>\nDelivered-To: alice@example.org\n");
  for (const char *p = m->str; *p; p++)
    if (!(p[0] == '\r' && p[1] == '\n'))
      g_string_append_c (want, *p);
  assert_int_equal (strlen (a), want->len);
  assert_string_equal (a, want->str);
  g_string_free (m, TRUE);
}

/* Several threads deliver at once (the LMTP service's worker pool):
 * every copy lands, each with its own UID. */
typedef struct
{
  Fixture *f;
  int n;
} ThreadArg;

static gpointer
deliver_thread (gpointer data)
{
  ThreadArg *a = data;
  for (int i = 0; i < a->n; i++)
    {
      const char *rcpts[] = { "alice@example.org", "bob@example.org", NULL };
      g_autofree char *r = deliver (a->f, "b@x.example", rcpts, MSG, NULL);
      if (strcmp (r, "250 2.0.0 250 2.0.0") != 0)
        return g_strdup (r);
    }
  return NULL;
}

static void
test_concurrent_deliveries (void **state)
{
  Fixture *f = *state;
  ThreadArg a = { f, 10 };
  GThread *t[4];
  for (int i = 0; i < 4; i++)
    t[i] = g_thread_new ("deliver", deliver_thread, &a);
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *bad = g_thread_join (t[i]);
      if (bad)
        fail_msg ("thread got %s", bad);
    }
  g_autoptr (GPtrArray) af = files_in (f, "alice", "new");
  assert_int_equal (af->len, 40);
  g_autoptr (GPtrArray) bf = files_in (f, "bob", "new");
  assert_int_equal (bf->len, 40);
}

int
main (void)
{
  logged = g_string_new (NULL);
  g_log_set_writer_func (capture, NULL, NULL);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_per_recipient_results, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_aliases_to_same_mailbox_stored_once,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_durable_before_result, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_unknown_and_bad_addresses, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_quota_refusal, setup, teardown),
    cmocka_unit_test_setup_teardown (test_group_and_forward, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_store_failure_is_per_recipient,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_subaddress_folder, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_spool_conversion, setup, teardown),
    cmocka_unit_test_setup_teardown (test_spool_reused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_spool_too_big, setup, teardown),
    cmocka_unit_test_setup_teardown (test_large_message_mapped, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_concurrent_deliveries, setup,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
