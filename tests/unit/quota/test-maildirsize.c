/* Unit tests of lib/quota's maildirsize: the Maildir++ quota file read
 * the way Courier and Dovecot write it, and written the way they read
 * it; appends, rewrites and the file scan. */
#include "mh-test.h"
#include "quota/quota-private.h"

#include <glib/gstdio.h>
#include <string.h>

static char *
read_file (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "maildirsize", NULL);
  char *text = NULL;
  g_autoptr (GError) error = NULL;
  if (!g_file_get_contents (path, &text, NULL, &error))
    fail_msg ("%s: %s", path, error->message);
  return text;
}

static void
test_header (void **state)
{
  g_autofree char *a = mh_quota__maildirsize_header (10485760, 1000);
  g_autofree char *b = mh_quota__maildirsize_header (0, 0);
  g_autofree char *c = mh_quota__maildirsize_header (0, 50);
  g_autofree char *d = mh_quota__maildirsize_header (2048, 0);
  assert_string_equal (a, "10485760S,1000C");
  assert_string_equal (b, "0S");        /* Dovecot: never an empty line */
  assert_string_equal (c, "50C");
  assert_string_equal (d, "2048S");
}

/* A file as Courier's maildirquota and Dovecot's maildir backend leave
 * it: a header, a recalculated total, then appended deltas (Courier
 * pads with blanks; Dovecot writes "-123 -1" for removals). */
static void
test_read_foreign (void **state)
{
  static const char courier[] = "1000000S,100C\n"
                                "     5000     3\n"
                                "1200 1\n"
                                "-1200 -1\n"
                                "+300 +1\n";
  MhMaildirsize m;
  mh_quota__maildirsize_parse (courier, strlen (courier), &m);
  assert_true (m.valid);
  assert_int_equal (m.bytes_limit, 1000000);
  assert_int_equal (m.messages_limit, 100);
  assert_int_equal (m.bytes, 5300);
  assert_int_equal (m.messages, 4);
  assert_int_equal (m.lines, 4);

  /* Count-only quota; a partial last line (a writer died mid-append) is
   * ignored, as Dovecot does. */
  static const char partial[] = "50C\n10 1\n20 ";
  mh_quota__maildirsize_parse (partial, strlen (partial), &m);
  assert_true (m.valid);
  assert_int_equal (m.bytes_limit, 0);
  assert_int_equal (m.messages_limit, 50);
  assert_int_equal (m.bytes, 10);

  /* Broken files are invalid (rewritten), never misread. */
  static const char *const bad[] = {
    "",                      /* empty */
    "100S",                  /* no newline: no header */
    "100X\n1 1\n",           /* unknown quota kind */
    "100S\n1 one\n",         /* not a number */
    "100S\n10 1\n-20 -1\n",  /* negative total */
    "100S\n1 1 1\n",         /* three fields */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      mh_quota__maildirsize_parse (bad[i], strlen (bad[i]), &m);
      assert_false (m.valid);
    }
  static const char nul[] = "100S\n1\0 1\n";
  mh_quota__maildirsize_parse (nul, sizeof nul - 1, &m);
  assert_false (m.valid);
}

/* Our file, read back with Dovecot's own rules: header, then lines of
 * "%lld %d". */
static void
test_write_append_sync (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota__maildirsize_write (dir, 1048576, 100, 4096, 2,
                                            &error));
  g_autofree char *t1 = read_file (dir);
  assert_string_equal (t1, "1048576S,100C\n4096 2\n");

  /* Usage grows and shrinks: one line with the difference each time. */
  assert_true (mh_quota__maildirsize_sync (dir, 1048576, 100, 5096, 3,
                                           g_get_real_time () / 1000000,
                                           &error));
  assert_true (mh_quota__maildirsize_sync (dir, 1048576, 100, 4596, 2,
                                           g_get_real_time () / 1000000,
                                           &error));
  /* No change: nothing appended. */
  assert_true (mh_quota__maildirsize_sync (dir, 1048576, 100, 4596, 2,
                                           g_get_real_time () / 1000000,
                                           &error));
  g_autofree char *t2 = read_file (dir);
  assert_string_equal (t2, "1048576S,100C\n4096 2\n1000 1\n-500 -1\n");

  /* New limits: the header must say so, the file is written again. */
  assert_true (mh_quota__maildirsize_sync (dir, 2097152, 0, 4596, 2,
                                           g_get_real_time () / 1000000,
                                           &error));
  g_autofree char *t3 = read_file (dir);
  assert_string_equal (t3, "2097152S\n4596 2\n");

  /* Over 5120 bytes: recalculated into one line. */
  for (int i = 0; i < 1500; i++)  /* 6000 bytes of "1 0" lines */
    assert_true (mh_quota__maildirsize_append (dir, 1, 0, &error));
  assert_true (mh_quota__maildirsize_sync (dir, 2097152, 0, 5000, 3,
                                           g_get_real_time () / 1000000,
                                           &error));
  g_autofree char *t4 = read_file (dir);
  assert_string_equal (t4, "2097152S\n5000 3\n");

  /* Over quota with several lines: not trusted, written again. */
  assert_true (mh_quota__maildirsize_append (dir, 3000000, 1, &error));
  assert_true (mh_quota__maildirsize_sync (dir, 2097152, 0, 2100000, 4,
                                           g_get_real_time () / 1000000,
                                           &error));
  g_autofree char *t5 = read_file (dir);
  assert_string_equal (t5, "2097152S\n2100000 4\n");

  /* A file another tool broke is replaced. */
  g_autofree char *p = mh_test_write_file (dir, "maildirsize", "junk\n");
  assert_true (mh_quota__maildirsize_sync (dir, 0, 0, 7, 1,
                                           g_get_real_time () / 1000000,
                                           &error));
  g_autofree char *t6 = read_file (dir);
  assert_string_equal (t6, "0S\n7 1\n");
  mh_test_rmtree (dir);
}

/* The scan counts new/ and cur/ of INBOX and of every .folder, using
 * ",S=" when the name has it and stat() otherwise. */
static void
test_scan (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  const char *const dirs[] = { "new", "cur", "tmp", ".Sent/cur",
                               ".Sent/new", ".Junk/cur" };
  for (gsize i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *d = g_build_filename (dir, dirs[i], NULL);
      g_mkdir_with_parents (d, 0700);
    }
  g_free (mh_test_write_file (dir, "new/1.M1P1.host,S=1000", "x"));
  g_free (mh_test_write_file (dir, "cur/2.M2P2.host,S=500:2,S", "x"));
  g_free (mh_test_write_file (dir, "cur/3.M3P3.host:2,", "12345"));
  g_free (mh_test_write_file (dir, "tmp/4.M4P4.host,S=999", "x"));
  g_free (mh_test_write_file (dir, ".Sent/cur/5.M5P5.host,S=70:2,S", "x"));
  g_free (mh_test_write_file (dir, ".Junk/cur/6.host,S=abc:2,", "123"));
  guint64 b = 0, m = 0;
  g_autoptr (GError) error = NULL;
  assert_true (mh_quota__maildir_scan (dir, &b, &m, &error));
  assert_int_equal (m, 5);                  /* tmp/ does not count */
  assert_int_equal (b, 1000 + 500 + 5 + 70 + 3);
  mh_test_rmtree (dir);

  /* No Maildir: nothing stored, not an error. */
  assert_true (mh_quota__maildir_scan ("/nonexistent/quota-test", &b, &m,
                                       &error));
  assert_int_equal (b, 0);
  assert_int_equal (m, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_header),
    cmocka_unit_test (test_read_foreign),
    cmocka_unit_test (test_write_append_sync),
    cmocka_unit_test (test_scan),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
