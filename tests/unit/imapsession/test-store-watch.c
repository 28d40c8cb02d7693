/* Unit tests of lib/store/watch.c, the watches IMAP IDLE and NOTIFY run
 * on: many watches share one process-wide inotify instance, and each is
 * woken by its own account and folder only. Real stores in a temp dir,
 * real inotify. */
#include "mh-test.h"

#include <string.h>
#include <unistd.h>

#define ACCOUNTS 5
#define FOLDERS 60 /* INBOX and 59 more: 300 watches */

typedef struct
{
  char *dir;
  MhStore *stores[ACCOUNTS];
  char *maildirs[ACCOUNTS];
  MhStoreWatch *w[ACCOUNTS][FOLDERS];
} Fx;

static const char msg[] = "From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n";

static char *
folder_name (int f)
{
  return f == 0 ? g_strdup ("INBOX") : g_strdup_printf ("F%d", f);
}

static int
setup (void **state)
{
  Fx *fx = g_new0 (Fx, 1);
  fx->dir = mh_test_mkdtemp ();
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fx *fx = *state;
  for (int a = 0; a < ACCOUNTS; a++)
    {
      for (int f = 0; f < FOLDERS; f++)
        mh_store_watch_free (fx->w[a][f]);
      mh_store_unref (fx->stores[a]);
      g_free (fx->maildirs[a]);
    }
  mh_test_rmtree (fx->dir);
  g_free (fx->dir);
  g_free (fx);
  return 0;
}

static MhStore *
open_store (Fx *fx, int a)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("u%d", a);
  fx->maildirs[a] = g_build_filename (fx->dir, "mail", name, NULL);
  g_autofree char *index = g_build_filename (fx->dir, "index", name, NULL);
  MhStore *s = mh_store_open (fx->maildirs[a], index, MH_STORE_OPEN_CREATE,
                              &error);
  assert_non_null (s);
  return s;
}

/* Inotify instances open in this process (each shows as a link to
 * "anon_inode:inotify" in /proc/self/fd). */
static int
inotify_instances (void)
{
  int n = 0;
  g_autoptr (GDir) d = g_dir_open ("/proc/self/fd", 0, NULL);
  assert_non_null (d);
  const char *e;
  while ((e = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *p = g_build_filename ("/proc/self/fd", e, NULL);
      g_autofree char *t = g_file_read_link (p, NULL);
      if (t != NULL && strcmp (t, "anon_inode:inotify") == 0)
        n++;
    }
  return n;
}

/* Another tool drops a message into a folder's new/ (no index commit). */
static void
outside_write (Fx *fx, int a, int f, const char *name)
{
  g_autofree char *sub = f == 0 ? g_strdup ("new")
                                : g_strdup_printf (".F%d/new", f);
  g_autofree char *d = g_build_filename (fx->maildirs[a], sub, NULL);
  g_free (mh_test_write_file (d, name, msg));
}

/* Every watch not in @expect (an ACCOUNTS x FOLDERS mask) is quiet,
 * every one in it was woken (within a second). */
static void
assert_woken (Fx *fx, gboolean expect[ACCOUNTS][FOLDERS])
{
  for (int a = 0; a < ACCOUNTS; a++)
    for (int f = 0; f < FOLDERS; f++)
      if (expect[a][f])
        {
          if (!mh_store_watch_wait (fx->w[a][f], 2000))
            fail_msg ("watch of account %d folder %d not woken", a, f);
        }
  /* The dispatcher handles events in order; everything the changes
   * above caused was dispatched once the expected ones arrived. A
   * change made after them, on a watch of its own, is the barrier. */
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreWatch) bar = mh_store_watch_new (fx->stores[0], "F59",
                                                     &error);
  assert_non_null (bar);
  outside_write (fx, 0, FOLDERS - 1, "barrier.x");
  assert_true (mh_store_watch_wait (bar, 2000));
  for (int a = 0; a < ACCOUNTS; a++)
    for (int f = 0; f < FOLDERS; f++)
      {
        /* drains later events of the same change too */
        gboolean woke = mh_store_watch_wait (fx->w[a][f], 0);
        if (woke && !expect[a][f] && !(a == 0 && f == FOLDERS - 1))
          fail_msg ("watch of account %d folder %d woken by a change "
                    "elsewhere", a, f);
      }
}

static void
test_many_watches (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  int before = inotify_instances ();

  for (int a = 0; a < ACCOUNTS; a++)
    {
      fx->stores[a] = open_store (fx, a);
      /* Folders made as another tool would (no index commit each:
       * keeps the test fast on a busy disk). */
      for (int f = 1; f < FOLDERS; f++)
        for (int k = 0; k < 3; k++)
          {
            static const char *subs[] = { "new", "cur", "tmp" };
            g_autofree char *d = g_strdup_printf ("%s/.F%d/%s",
                                                  fx->maildirs[a], f,
                                                  subs[k]);
            assert_int_equal (g_mkdir_with_parents (d, 0700), 0);
          }
    }
  for (int a = 0; a < ACCOUNTS; a++)
    for (int f = 0; f < FOLDERS; f++)
      {
        g_autofree char *name = folder_name (f);
        fx->w[a][f] = mh_store_watch_new (fx->stores[a], name, &error);
        if (fx->w[a][f] == NULL)
          fail_msg ("watch %d/%d: %s", a, f, error->message);
        assert_true (mh_store_watch_get_fd (fx->w[a][f]) >= 0);
      }
  /* 300 watches, more than the kernel's default 128 instances: one. */
  assert_int_equal (inotify_instances (), before + 1);
  for (int a = 0; a < ACCOUNTS; a++)
    for (int f = 0; f < FOLDERS; f++)
      assert_false (mh_store_watch_wait (fx->w[a][f], 0));

  /* An index commit of account 3 wakes its watches, and no others. */
  gboolean expect[ACCOUNTS][FOLDERS] = { { 0 } };
  g_autoptr (GBytes) b = g_bytes_new_static (msg, strlen (msg));
  assert_true (mh_store_deliver (fx->stores[3], "INBOX", b, 0, NULL, 0, NULL,
                                 &error));
  for (int f = 0; f < FOLDERS; f++)
    expect[3][f] = TRUE;
  assert_woken (fx, expect);

  /* Outside tools in folder 44 of account 1 and INBOX of account 4:
   * only those two watches. */
  memset (expect, 0, sizeof expect);
  outside_write (fx, 1, 44, "1.a.host");
  outside_write (fx, 4, 0, "1.b.host");
  expect[1][44] = TRUE;
  expect[4][0] = TRUE;
  assert_woken (fx, expect);

  /* Freeing most watches keeps the shared wds of the rest working. */
  for (int a = 0; a < ACCOUNTS; a++)
    for (int f = 0; f < FOLDERS; f++)
      if (!(a == 1 && f == 44))
        g_clear_pointer (&fx->w[a][f], mh_store_watch_free);
  outside_write (fx, 1, 44, "2.a.host");
  assert_true (mh_store_watch_wait (fx->w[1][44], 2000));
  assert_true (mh_store_deliver (fx->stores[1], "INBOX", b, 0, NULL, 0,
                                 NULL, &error));
  assert_true (mh_store_watch_wait (fx->w[1][44], 2000));
  g_clear_pointer (&fx->w[1][44], mh_store_watch_free);
  /* The last watch gone, the instance goes too. */
  assert_int_equal (inotify_instances (), before);
}

static void
test_shared_path (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  fx->stores[0] = open_store (fx, 0);
  assert_true (mh_store_folder_create (fx->stores[0], "F1", &error));
  /* Two watches of one folder share its wds: dropping one must not
   * stop the other. */
  MhStoreWatch *a = mh_store_watch_new (fx->stores[0], "F1", &error);
  MhStoreWatch *b = mh_store_watch_new (fx->stores[0], "F1", &error);
  assert_non_null (a);
  assert_non_null (b);
  assert_int_not_equal (mh_store_watch_get_fd (a),
                        mh_store_watch_get_fd (b));
  outside_write (fx, 0, 1, "1.x.host");
  assert_true (mh_store_watch_wait (a, 2000));
  assert_true (mh_store_watch_wait (b, 2000));
  mh_store_watch_free (a);
  outside_write (fx, 0, 1, "2.x.host");
  assert_true (mh_store_watch_wait (b, 2000));
  assert_false (mh_store_watch_wait (b, 0));
  /* A ref taken through the boxed type keeps it alive. */
  MhStoreWatch *c = g_boxed_copy (MH_TYPE_STORE_WATCH, b);
  mh_store_watch_free (b);
  outside_write (fx, 0, 1, "3.x.host");
  assert_true (mh_store_watch_wait (c, 2000));

  /* The folder deleted: the kernel drops its wds; the watch is woken,
   * a new watch of a new folder of that name works, and freeing both
   * is clean. */
  assert_true (mh_store_folder_delete (fx->stores[0], "F1", &error));
  assert_true (mh_store_watch_wait (c, 2000));
  assert_true (mh_store_folder_create (fx->stores[0], "F1", &error));
  MhStoreWatch *d = mh_store_watch_new (fx->stores[0], "F1", &error);
  assert_non_null (d);
  mh_store_watch_wait (c, 0);
  outside_write (fx, 0, 1, "4.x.host");
  assert_true (mh_store_watch_wait (d, 2000));
  mh_store_watch_free (c);
  mh_store_watch_free (d);

  /* Errors: a bad folder name, a missing folder; no watch left behind
   * (the instance is gone again). */
  int before = inotify_instances ();
  assert_null (mh_store_watch_new (fx->stores[0], "a..b", &error));
  assert_non_null (error);
  g_clear_error (&error);
  assert_null (mh_store_watch_new (fx->stores[0], "Nope", &error));
  assert_non_null (error);
  g_clear_error (&error);
  assert_int_equal (inotify_instances (), before);
}

/* A watch on the account alone: index commits, folders made or renamed
 * in the Maildir, files renamed into the index directory. */
static void
test_account_watch (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  fx->stores[0] = open_store (fx, 0);
  fx->stores[1] = open_store (fx, 1);
  g_autoptr (MhStoreWatch) w = mh_store_watch_new (fx->stores[0], NULL,
                                                   &error);
  g_autoptr (MhStoreWatch) other = mh_store_watch_new (fx->stores[1], NULL,
                                                       &error);
  assert_non_null (w);
  assert_non_null (other);
  assert_true (mh_store_folder_create (fx->stores[0], "New", &error));
  assert_true (mh_store_watch_wait (w, 2000));
  g_autofree char *index = g_build_filename (fx->dir, "index", "u0",
                                             "state-file", NULL);
  assert_true (g_file_set_contents (index, "x", 1, &error));
  assert_true (mh_store_watch_wait (w, 2000));
  /* a wait that times out reports nothing */
  assert_false (mh_store_watch_wait (w, 50));
  assert_false (mh_store_watch_wait (other, 0));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_many_watches, setup, teardown),
    cmocka_unit_test_setup_teardown (test_shared_path, setup, teardown),
    cmocka_unit_test_setup_teardown (test_account_watch, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
