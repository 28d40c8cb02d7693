/* Crash safety of delivery (issue 4): a child delivers in a loop and
 * reports each delivery it was told is done; the parent SIGKILLs it at a
 * random moment, at least 200 times, then checks that
 * - no partial message is ever in new/ or cur/ (each file is exactly the
 *   message its marker names),
 * - every delivery reported done is there, with the UID reported,
 * - the index reconciles: a select lists every file exactly once.
 * Runs on tmpfs when /dev/shm exists, to stay fast. Fixed seed. */
#include "mh-test.h"
#include "store/store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILLS 220

static char *
make_message (guint marker)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "X-Marker: %u\nSubject: crash %u\n\n", marker,
                          marker);
  guint lines = 1 + marker % 40;
  for (guint i = 0; i < lines; i++)
    g_string_append_printf (s, "line %u of message %u ........\n", i, marker);
  g_string_append_printf (s, "END %u\n", marker);
  return g_string_free (s, FALSE);
}

static void
child (const char *md, const char *ix, int wfd, guint first)
{
  MhStore *s = mh_store_open (md, ix, MH_STORE_OPEN_CREATE, NULL);
  if (s == NULL)
    _exit (3);
  if (write (wfd, "ready\n", 6) != 6)
    _exit (5);
  for (guint m = first;; m++)
    {
      g_autofree char *text = make_message (m);
      g_autoptr (GBytes) b = g_bytes_new (text, strlen (text));
      guint32 uid = 0;
      if (!mh_store_deliver (s, NULL, b, m % 3 == 0 ? MH_STORE_FLAG_SEEN : 0,
                             NULL, 0, &uid, NULL))
        _exit (4);
      char line[64];
      int n = g_snprintf (line, sizeof line, "%u %u\n", m, uid);
      if (write (wfd, line, (size_t) n) != n)
        _exit (5);
    }
}

/* Checks every file of @sub: complete, and records its marker. Files
 * already verified (@verified: name → marker) are not read again. */
static void
check_dir (const char *md, const char *sub, GHashTable *markers,
           GHashTable *verified)
{
  g_autofree char *d = g_build_filename (md, sub, NULL);
  /* A child killed before it created the Maildir leaves none: nothing is
   * there, and the caller's check of reported deliveries still runs. */
  if (!g_file_test (d, G_FILE_TEST_EXISTS))
    return;
  GDir *dir = g_dir_open (d, 0, NULL);
  assert_non_null (dir);
  const char *n;
  while ((n = g_dir_read_name (dir)) != NULL)
    {
      gpointer known;
      if (g_hash_table_lookup_extended (verified, n, NULL, &known))
        {
          g_hash_table_insert (markers, known, known);
          continue;
        }
      g_autofree char *p = g_build_filename (d, n, NULL);
      g_autofree char *data = NULL;
      gsize len;
      assert_true (g_file_get_contents (p, &data, &len, NULL));
      guint marker = 0;
      if (sscanf (data, "X-Marker: %u", &marker) != 1)
        fail_msg ("%s/%s has no marker: partial file", sub, n);
      g_autofree char *want = make_message (marker);
      if (len != strlen (want) || memcmp (data, want, len) != 0)
        fail_msg ("%s/%s is not complete (%zu of %zu bytes)", sub, n, len,
                  strlen (want));
      /* ,S= in the name matches the content. */
      guint64 sz = 0;
      assert_true (mh_store__name_size (n, &sz));
      assert_int_equal (sz, len);
      if (!g_hash_table_insert (markers, GUINT_TO_POINTER (marker),
                                GUINT_TO_POINTER (marker)))
        fail_msg ("marker %u delivered twice", marker);
      g_hash_table_insert (verified, g_strdup (n), GUINT_TO_POINTER (marker));
    }
  g_dir_close (dir);
}

static void
test_sigkill_during_delivery (void **state)
{
  const char *base = g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR)
                       ? "/dev/shm" : g_get_tmp_dir ();
  g_autofree char *tmpl = g_build_filename (base, "mhcrash-XXXXXX", NULL);
  g_autofree char *dir = g_mkdtemp (g_strdup (tmpl));
  assert_non_null (dir);
  g_autofree char *md = g_build_filename (dir, "mail", NULL);
  g_autofree char *ix = g_build_filename (dir, "index", NULL);
  GRand *rand = g_rand_new_with_seed (4);
  /* Children inherit GMime's one-time init instead of each paying it. */
  g_variant_unref (mh_store__meta_compute ("Subject: x\n\nx\n", 13));
  gint64 t_ready = 0, n_ready = 0;
  /* marker → reported UID */
  g_autoptr (GHashTable) done = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) verified = g_hash_table_new_full (g_str_hash,
                                                           g_str_equal,
                                                           g_free, NULL);
  guint next_marker = 1;
  guint reported = 0;

  for (int round = 0; round < KILLS; round++)
    {
      int fds[2];
      assert_int_equal (pipe (fds), 0);
      pid_t pid = fork ();
      assert_true (pid >= 0);
      if (pid == 0)
        {
          close (fds[0]);
          child (md, ix, fds[1], next_marker);
        }
      close (fds[1]);
      /* One kill in ten lands anywhere from the start (opening the index
       * included); the others after the child is ready, among deliveries
       * in flight. */
      GString *out = g_string_new (NULL);
      char buf[4096];
      gssize r;
      gint64 t0 = g_get_monotonic_time ();
      if (g_rand_int_range (rand, 0, 10) != 0)
        {
          /* Wait for "ready" and 0-3 more deliveries, so the kill lands
           * among deliveries in flight whatever the machine's speed. */
          guint want = (guint) g_rand_int_range (rand, 0, 4);
          guint lines_seen = 0;
          while (lines_seen < want + 1
                 && (r = read (fds[0], buf, sizeof buf)) > 0)
            {
              g_string_append_len (out, buf, r);
              lines_seen = 0;
              for (const char *q = out->str; (q = strchr (q, '\n')); q++)
                lines_seen++;
            }
          t_ready += g_get_monotonic_time () - t0;
          n_ready++;
          g_usleep (g_rand_int_range (rand, 0, 1500));
        }
      else
        g_usleep (g_rand_int_range (rand, 0, 30000));
      kill (pid, SIGKILL);
      int status;
      waitpid (pid, &status, 0);
      assert_true (WIFSIGNALED (status) || WEXITSTATUS (status) == 0);
      if (WIFEXITED (status))
        fail_msg ("child failed with exit code %d", WEXITSTATUS (status));
      /* Read what the child reported as done. */
      while ((r = read (fds[0], buf, sizeof buf)) > 0)
        g_string_append_len (out, buf, r);
      close (fds[0]);
      g_auto (GStrv) lines = g_strsplit (out->str, "\n", -1);
      g_string_free (out, TRUE);
      guint maxm = next_marker;
      for (int i = 0; lines[i]; i++)
        {
          guint m, u;
          if (sscanf (lines[i], "%u %u", &m, &u) != 2)
            continue;
          g_hash_table_insert (done, GUINT_TO_POINTER (m),
                               GUINT_TO_POINTER (u));
          reported++;
          maxm = MAX (maxm, m + 1);
        }
      /* A marker the child may have started but not reported is skipped
       * for good (its file may or may not exist). */
      next_marker = maxm + 1;

      g_autoptr (GHashTable) present = g_hash_table_new (NULL, NULL);
      check_dir (md, "new", present, verified);
      check_dir (md, "cur", present, verified);
      GHashTableIter it;
      gpointer k, v;
      g_hash_table_iter_init (&it, done);
      while (g_hash_table_iter_next (&it, &k, &v))
        if (!g_hash_table_contains (present, k))
          fail_msg ("delivery %u was reported done but is missing",
                    GPOINTER_TO_UINT (k));

      if (round % 20 == 19 || round == KILLS - 1)
        {
          /* The index reconciles: every file once, reported UIDs kept. */
          g_autoptr (GError) error = NULL;
          g_autoptr (MhStore) s = mh_store_open (md, ix, 0, &error);
          if (s == NULL)
            fail_msg ("reopen after kill %d: %s", round, error->message);
          g_autoptr (MhStoreView) view = mh_store_select (s, NULL, FALSE,
                                                          &error);
          assert_non_null (view);
          assert_int_equal (mh_store_view_get_count (view),
                            g_hash_table_size (present));
          for (guint i = 0; i < mh_store_view_get_count (view); i++)
            {
              guint32 uid = mh_store_view_get_uid (view, i);
              g_autoptr (GBytes) h = mh_store_read (s, NULL, uid, "HEADER", 0,
                                                    -1, &error);
              assert_non_null (h);
              g_autofree char *hs = g_strndup (g_bytes_get_data (h, NULL),
                                               g_bytes_get_size (h));
              guint m = 0;
              assert_int_equal (sscanf (hs, "X-Marker: %u", &m), 1);
              gpointer ru;
              if (g_hash_table_lookup_extended (done, GUINT_TO_POINTER (m),
                                                NULL, &ru))
                assert_int_equal (GPOINTER_TO_UINT (ru), uid);
            }
        }
    }
  g_rand_free (rand);
  print_message ("%d kills, %u deliveries reported done, %u files; "
                 "%.1f ms from fork to the kill point on average\n", KILLS, reported,
                 g_hash_table_size (done),
                 n_ready ? t_ready / 1000.0 / n_ready : 0.0);
  assert_true (reported > KILLS / 2);
  mh_test_rmtree (dir);
}

/* Several processes delivering into one account at once: every UID is
 * given once, and dovecot-uidlist agrees with the index. */
static void
test_processes_deliver_concurrently (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *md = g_build_filename (dir, "mail", NULL);
  g_autofree char *ix = g_build_filename (dir, "index", NULL);
  /* The account exists before the children start. */
  g_autoptr (GError) error = NULL;
  MhStore *s0 = mh_store_open (md, ix, MH_STORE_OPEN_CREATE, &error);
  assert_non_null (s0);
  mh_store_unref (s0);
  const int procs = 4, each = 30;
  pid_t pids[4];
  for (int p = 0; p < procs; p++)
    {
      pids[p] = fork ();
      assert_true (pids[p] >= 0);
      if (pids[p] == 0)
        {
          MhStore *s = mh_store_open (md, ix, 0, NULL);
          if (s == NULL)
            _exit (3);
          for (int i = 0; i < each; i++)
            {
              g_autofree char *text = make_message ((guint) (p * 1000 + i));
              g_autoptr (GBytes) b = g_bytes_new (text, strlen (text));
              if (!mh_store_deliver (s, NULL, b, 0, NULL, 0, NULL, NULL))
                _exit (4);
            }
          mh_store_unref (s);
          _exit (0);
        }
    }
  for (int p = 0; p < procs; p++)
    {
      int status;
      waitpid (pids[p], &status, 0);
      assert_true (WIFEXITED (status));
      assert_int_equal (WEXITSTATUS (status), 0);
    }
  g_autoptr (MhStore) s = mh_store_open (md, ix, 0, &error);
  g_autoptr (MhStoreView) v = mh_store_select (s, NULL, FALSE, &error);
  assert_int_equal (mh_store_view_get_count (v), procs * each);
  assert_int_equal (mh_store_view_get_uid (v, procs * each - 1),
                    procs * each);
  /* The uidlist lists each UID once. */
  g_autofree char *ulp = g_build_filename (md, "dovecot-uidlist", NULL);
  g_autofree char *ul = NULL;
  assert_true (g_file_get_contents (ulp, &ul, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (ul), "\n", -1);
  assert_int_equal (g_strv_length (lines), 1 + procs * each);
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  for (int i = 1; lines[i]; i++)
    assert_true (g_hash_table_add (seen, GUINT_TO_POINTER (
                                           (guint) atoi (lines[i]))));
  g_clear_pointer (&v, mh_store_view_unref);
  g_clear_pointer (&s, mh_store_unref);
  mh_test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_processes_deliver_concurrently),
    cmocka_unit_test (test_sigkill_during_delivery),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
