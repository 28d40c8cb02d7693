/* lib/store/own.c: our own changes to a folder's new/ and cur/ keep the
 * index fresh, so the next access does not read the whole directory.
 *
 * Design notes
 * - Why: reconciliation (index.c) rescans a directory when its mtime
 *   differs from the one recorded at the last scan. Every rename we make
 *   for STORE, every unlink of EXPUNGE, every link of COPY changes that
 *   mtime, so the next access read all of cur/ (getdents plus hashing
 *   every name: 34 ms of CPU at 10k messages) only to find what the
 *   write txn already wrote into the index.
 * - How: a write op that changes a folder's files, inside its LMDB write
 *   txn (which excludes every other mailhost writer of the account):
 *   1. mh_store__own_begin: an inotify watch on new/ and cur/, then a
 *      stat of both. A directory is "clean" when its mtime equals the
 *      recorded one: the index describes it exactly.
 *   2. The op makes its changes and declares each one (own_renamed,
 *      own_unlinked, own_linked): the events it expects.
 *   3. mh_store__own_end, before the folder record is saved: for each
 *      clean directory we changed, its mtime is set to V = (mtime after
 *      our changes) - 1 ns and read back; then every queued event must
 *      be one we declared. If so the record gets V, else 0 (the next
 *      access rescans, as before).
 * - Why V and not the mtime after our changes: a change by someone else
 *   later in the same clock tick would leave that mtime unchanged and go
 *   unseen (index.c only records an mtime once its tick is over, which
 *   would make every op after a STORE rescan). Any later change stamps
 *   the directory with the kernel's clock, which is at or past the mtime
 *   our own changes got, so strictly above V: the next stat sees it.
 * - Why inotify: other programs (mutt, Dovecot, our own deliveries from
 *   other threads or processes, which rename into new/ outside any txn)
 *   take no lock we know of. A change of theirs between our first stat
 *   and our utimensat would be hidden by the new stamp; the watch sees
 *   it, and then the record gets 0. The watch is made per op (about 15
 *   us of CPU) and dropped at the end, so no inotify instance is held
 *   between ops (the kernel allows 128 per user).
 * - Anything unexpected (no inotify, a file system whose stamps have no
 *   nanoseconds so V cannot be stored, queue overflow, a directory moved
 *   or deleted, a failed utimensat) falls back to recording 0: one full
 *   scan at the next access, never a missed change.
 */
#include "store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define OWN_MASK                                                             \
  (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF     \
   | IN_MOVE_SELF)

enum
{
  D_NEW = 0,
  D_CUR = 1
};

struct _MhStoreOwn
{
  int ifd;
  int wd[2];
  char *path[2];
  gboolean clean[2];   /* mtime matched the record when we began */
  gboolean changed[2]; /* we changed it */
  /* "<kind><dir><name>" -> count of events we expect (kind: f moved
   * from, t moved to, d deleted, c created; dir: n or c). */
  GHashTable *expect;
};

static gint64
mtime_ns (const struct stat *st)
{
  return (gint64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

MhStoreOwn *
mh_store__own_begin (MhStore *store, MhStoreFolder *f)
{
  MhStoreOwn *o = g_new0 (MhStoreOwn, 1);
  o->ifd = -1;
  g_autofree char *dir = mh_store__folder_path (store, f->name, NULL);
  if (dir == NULL || (f->rec.new_mtime == 0 && f->rec.cur_mtime == 0))
    return o; /* nothing to keep: the next access scans anyway */
  o->path[D_NEW] = g_build_filename (dir, "new", NULL);
  o->path[D_CUR] = g_build_filename (dir, "cur", NULL);
  o->ifd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (o->ifd < 0)
    {
      mh_log_debug ("store", NULL, NULL, "inotify: %s; %s will be rescanned",
                    g_strerror (errno), dir);
      return o;
    }
  /* Watch first, stat second: a change after the stat is an event. */
  for (int d = 0; d < 2; d++)
    if ((o->wd[d] = inotify_add_watch (o->ifd, o->path[d], OWN_MASK)) < 0)
      {
        close (o->ifd);
        o->ifd = -1;
        return o;
      }
  struct stat st;
  o->clean[D_NEW] = f->rec.new_mtime != 0 && stat (o->path[D_NEW], &st) == 0
                    && mtime_ns (&st) == f->rec.new_mtime;
  o->clean[D_CUR] = f->rec.cur_mtime != 0 && stat (o->path[D_CUR], &st) == 0
                    && mtime_ns (&st) == f->rec.cur_mtime;
  o->expect = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return o;
}

static void
expect (MhStoreOwn *o, char kind, int d, const char *name)
{
  o->changed[d] = TRUE;
  if (o->expect == NULL)
    return;
  char *key = g_strdup_printf ("%c%c%s", kind, d == D_NEW ? 'n' : 'c', name);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (o->expect, key));
  g_hash_table_replace (o->expect, key, GUINT_TO_POINTER (n + 1));
}

void
mh_store__own_renamed (MhStoreOwn *o, gboolean from_new, const char *from,
                       gboolean to_new, const char *to)
{
  if (from_new == to_new && strcmp (from, to) == 0)
    return; /* rename(2) onto itself does nothing */
  expect (o, 'f', from_new ? D_NEW : D_CUR, from);
  expect (o, 't', to_new ? D_NEW : D_CUR, to);
}

void
mh_store__own_unlinked (MhStoreOwn *o, gboolean in_new, const char *name)
{
  expect (o, 'd', in_new ? D_NEW : D_CUR, name);
}

void
mh_store__own_linked (MhStoreOwn *o, const char *name)
{
  expect (o, 'c', D_CUR, name);
}

/* Sets @path's mtime to (its mtime - 1 ns) and returns that value, or 0
 * when it could not be set and read back exactly. Never @before (the
 * stamp recorded when we began): should the txn then fail to commit, the
 * record keeps @before, and the stamp must still differ from it. */
static gint64
stamp (const char *path, gint64 before)
{
  struct stat st;
  if (stat (path, &st) != 0)
    return 0;
  gint64 v = mtime_ns (&st) - 1;
  if (v == before)
    v--;
  if (v <= 0)
    return 0;
  struct timespec ts[2] = {
    { 0, UTIME_OMIT },
    { (time_t) (v / 1000000000), (long) (v % 1000000000) },
  };
  if (utimensat (AT_FDCWD, path, ts, 0) != 0 || stat (path, &st) != 0
      || mtime_ns (&st) != v)
    return 0; /* e.g. whole-second stamps: V cannot be stored */
  return v;
}

/* Reads every queued event; TRUE for each directory where one was not
 * ours (or the queue cannot be trusted). */
static void
drain (MhStoreOwn *o, gboolean foreign[2])
{
  char buf[8192] __attribute__ ((aligned (__alignof__ (struct inotify_event))));
  for (;;)
    {
      gssize len = read (o->ifd, buf, sizeof buf);
      if (len < 0 && errno == EINTR)
        continue;
      if (len <= 0)
        return; /* EAGAIN: all read */
      for (gssize i = 0; i + (gssize) sizeof (struct inotify_event) <= len;)
        {
          const struct inotify_event *e = (const void *) (buf + i);
          i += (gssize) sizeof *e + e->len;
          int d = e->wd == o->wd[D_NEW] ? D_NEW
                  : e->wd == o->wd[D_CUR] ? D_CUR
                                          : -1;
          char kind = e->mask & IN_MOVED_FROM ? 'f'
                      : e->mask & IN_MOVED_TO ? 't'
                      : e->mask & IN_DELETE   ? 'd'
                      : e->mask & IN_CREATE   ? 'c'
                                              : 0;
          if (d < 0 || kind == 0 || e->len == 0)
            {
              /* Overflow, the directory itself moved or deleted. */
              foreign[D_NEW] = foreign[D_CUR] = TRUE;
              continue;
            }
          g_autofree char *key = g_strdup_printf (
            "%c%c%s", kind, d == D_NEW ? 'n' : 'c', e->name);
          guint n = GPOINTER_TO_UINT (g_hash_table_lookup (o->expect, key));
          if (n == 0)
            foreign[d] = TRUE;
          else
            g_hash_table_replace (o->expect, g_steal_pointer (&key),
                                  GUINT_TO_POINTER (n - 1));
        }
    }
}

void
mh_store__own_end (MhStoreOwn *o, MhStoreFolder *f)
{
  if (o == NULL)
    return;
  gint64 *rec[2] = { &f->rec.new_mtime, &f->rec.cur_mtime };
  if (o->ifd < 0)
    {
      /* Not watched: whatever we changed is rescanned next time. */
      for (int d = 0; d < 2; d++)
        if (o->changed[d])
          *rec[d] = 0;
    }
  else
    {
      gint64 v[2] = { 0, 0 };
      for (int d = 0; d < 2; d++)
        if (o->changed[d] && o->clean[d])
          v[d] = stamp (o->path[d], *rec[d]);
      gboolean foreign[2] = { FALSE, FALSE };
      drain (o, foreign);
      for (int d = 0; d < 2; d++)
        {
          if (foreign[d])
            *rec[d] = 0; /* someone else was here too: rescan */
          else if (o->changed[d])
            *rec[d] = v[d]; /* 0 unless clean and stamped */
        }
      close (o->ifd);
    }
  g_clear_pointer (&o->expect, g_hash_table_unref);
  g_free (o->path[D_NEW]);
  g_free (o->path[D_CUR]);
  g_free (o);
}

void
mh_store__own_abort (MhStoreOwn *o)
{
  if (o == NULL)
    return;
  if (o->ifd >= 0)
    close (o->ifd);
  g_clear_pointer (&o->expect, g_hash_table_unref);
  g_free (o->path[D_NEW]);
  g_free (o->path[D_CUR]);
  g_free (o);
}
