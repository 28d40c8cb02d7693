/* lib/store/watch.c: waking a reader when a mailbox changes.
 *
 * Design notes
 * - What a watch covers: the account's index "notify" file (every index
 *   commit of any process writes it, index.c), files renamed into the
 *   index directory (per-account state written atomically there, such
 *   as the IMAP METADATA file), the Maildir's top directory (folders
 *   created, renamed or deleted, the subscriptions file replaced), and,
 *   for a folder, its new/ and cur/ (a tool such as mutt changing the
 *   Maildir behind the index's back). A wake-up is a hint: the reader
 *   compares what it knows with the store, so a spurious one costs a
 *   cheap check and nothing more.
 * - One inotify instance per process (the "hub"), not one per watch:
 *   the kernel allows fs.inotify.max_user_instances (128 by default)
 *   instances per user, so a server with more idle accounts than that
 *   could not watch them all. Inotify watches (max_user_watches, in the
 *   hundred thousands) are the cheap resource.
 * - Each MhStoreWatch has its own eventfd: that is the descriptor
 *   mh_store_watch_get_fd() gives out, so the public API is unchanged.
 *   A small dispatcher thread reads the shared inotify descriptor and
 *   adds 1 to the eventfd of every watch that wanted the event's watch
 *   descriptor (wd). mh_store_watch_wait() reads the eventfd, which
 *   consumes every wake-up at once.
 * - The kernel returns the same wd when the same inode is added twice,
 *   so watches of one account (or one folder) share wds: a Target per
 *   wd lists its users, and inotify_rm_watch() runs only when the last
 *   user goes. Masks are added with IN_MASK_ADD, so a later watch never
 *   narrows what an earlier one asked for (a wider mask only gives
 *   spurious wake-ups, which are harmless).
 * - A watched directory that disappears (folder deleted or renamed)
 *   makes the kernel drop its wd (IN_IGNORED): its users are woken and
 *   the Target leaves the wd map (its wd may be reused by the kernel for
 *   another inode), but stays alive until its last user lets go.
 *   IN_Q_OVERFLOW (events lost) wakes every watch.
 * - Invariants, all under hub_lock: every Target in hub->wds has wd >= 0
 *   and at least one user; a Watch is in the users of each of its
 *   Targets exactly once; hub->watches counts live Watches. The hub (and
 *   its thread) starts with the first watch and ends with the last, so
 *   a process that no longer watches anything holds no thread and no
 *   inotify instance.
 * - Limits: one eventfd per watch; inotify watches per watch: 3 for the
 *   account alone, 5 with a folder, shared between watches of one
 *   account. Watches do not survive fork() (the dispatcher thread does
 *   not exist in the child).
 */
#include "store-private.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

typedef struct _Watch Watch;

/* One inotify wd and the watches that want it. */
typedef struct
{
  int wd;           /* -1 once the kernel dropped it (IN_IGNORED) */
  GPtrArray *users; /* Watch*, borrowed */
} Target;

struct _Watch
{
  struct _MhStoreWatch pub; /* first: MhStoreWatch* == Watch*; pub.fd is
                             * the eventfd */
  GPtrArray *targets;       /* Target*, borrowed (the hub owns them) */
};

typedef struct
{
  int ifd;          /* the process's inotify instance */
  int stop;         /* eventfd: readable when the thread must end */
  GThread *thread;
  GHashTable *wds;  /* wd -> Target* (owned) */
  guint watches;
} Hub;

static GMutex hub_lock;
static Hub *hub; /* NULL while nothing is watched */

static void
target_free (Target *t)
{
  g_ptr_array_unref (t->users);
  g_free (t);
}

static void
wake (Watch *w)
{
  guint64 one = 1;
  /* EAGAIN: the counter is full, i.e. woken already. */
  while (write (w->pub.fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

static void
wake_target (Target *t)
{
  for (guint i = 0; i < t->users->len; i++)
    wake (g_ptr_array_index (t->users, i));
}

/* Runs the events of one read() (hub_lock held). */
static void
dispatch (Hub *h, const char *buf, gssize n)
{
  for (const char *p = buf; p < buf + n;)
    {
      const struct inotify_event *ev = (const struct inotify_event *) p;
      p += sizeof *ev + ev->len;
      if (ev->mask & IN_Q_OVERFLOW)
        {
          GHashTableIter it;
          gpointer v;
          g_hash_table_iter_init (&it, h->wds);
          while (g_hash_table_iter_next (&it, NULL, &v))
            wake_target (v);
          continue;
        }
      Target *t = g_hash_table_lookup (h->wds, GINT_TO_POINTER (ev->wd));
      if (t == NULL)
        continue; /* removed meanwhile */
      wake_target (t);
      if (ev->mask & IN_IGNORED)
        {
          g_hash_table_steal (h->wds, GINT_TO_POINTER (ev->wd));
          t->wd = -1;
        }
    }
}

static gpointer
hub_thread (gpointer data)
{
  Hub *h = data;
  char buf[16384]
      __attribute__ ((aligned (__alignof__ (struct inotify_event))));
  for (;;)
    {
      struct pollfd pfd[2] = { { h->ifd, POLLIN, 0 }, { h->stop, POLLIN, 0 } };
      int r = poll (pfd, 2, -1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 || (pfd[1].revents & POLLIN))
        break;
      gssize n;
      while ((n = read (h->ifd, buf, sizeof buf)) > 0)
        {
          g_mutex_lock (&hub_lock);
          dispatch (h, buf, n);
          g_mutex_unlock (&hub_lock);
        }
    }
  return NULL;
}

/* hub_lock held. */
static Hub *
hub_get (GError **error)
{
  if (hub != NULL)
    return hub;
  int ifd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (ifd < 0)
    {
      int e = errno;
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_IO,
                   "cannot create an inotify instance: %s%s", g_strerror (e),
                   e == EMFILE ? " (fs.inotify.max_user_instances)" : "");
      return NULL;
    }
  int stop = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop < 0)
    {
      int e = errno;
      close (ifd);
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_IO,
                   "cannot create an eventfd: %s", g_strerror (e));
      return NULL;
    }
  Hub *h = g_new0 (Hub, 1);
  h->ifd = ifd;
  h->stop = stop;
  h->wds = g_hash_table_new_full (NULL, NULL, NULL,
                                  (GDestroyNotify) target_free);
  h->thread = g_thread_try_new ("mh-store-watch", hub_thread, h, error);
  if (h->thread == NULL)
    {
      close (ifd);
      close (stop);
      g_hash_table_unref (h->wds);
      g_free (h);
      return NULL;
    }
  hub = h;
  return h;
}

/* hub_lock held: takes @w out of its targets, dropping the wds no one
 * uses any more. */
static void
watch_detach (Hub *h, Watch *w)
{
  for (guint i = 0; i < w->targets->len; i++)
    {
      Target *t = g_ptr_array_index (w->targets, i);
      g_ptr_array_remove_fast (t->users, w);
      if (t->users->len > 0)
        continue;
      if (t->wd >= 0)
        {
          inotify_rm_watch (h->ifd, t->wd);
          g_hash_table_remove (h->wds, GINT_TO_POINTER (t->wd));
        }
      else
        target_free (t); /* dropped by the kernel: not in the map */
    }
  g_ptr_array_set_size (w->targets, 0);
}

/* Called with hub_lock held when the last watch went; unlocks. The
 * thread is joined outside the lock (it takes the lock per batch). */
static void
hub_release_unlock (void)
{
  Hub *h = hub;
  hub = NULL;
  g_mutex_unlock (&hub_lock);
  guint64 one = 1;
  while (write (h->stop, &one, sizeof one) < 0 && errno == EINTR)
    ;
  g_thread_join (h->thread);
  close (h->ifd);
  close (h->stop);
  g_hash_table_unref (h->wds);
  g_free (h);
}

static MhStoreWatch *
watch_ref (MhStoreWatch *w)
{
  g_atomic_int_inc (&w->ref);
  return w;
}

void
mh_store_watch_free (MhStoreWatch *watch)
{
  if (watch == NULL || !g_atomic_int_dec_and_test (&watch->ref))
    return;
  Watch *w = (Watch *) watch;
  g_mutex_lock (&hub_lock);
  watch_detach (hub, w); /* a live watch keeps the hub */
  if (--hub->watches == 0)
    hub_release_unlock ();
  else
    g_mutex_unlock (&hub_lock);
  close (w->pub.fd);
  g_ptr_array_unref (w->targets);
  g_free (w);
}

G_DEFINE_BOXED_TYPE (MhStoreWatch, mh_store_watch, watch_ref,
                     mh_store_watch_free)

/* ---- Watch ------------------------------------------------------------ */

typedef struct
{
  char *path;
  guint32 mask;
} Want;

/* hub_lock held: adds one path to @w. */
static gboolean
watch_add (Hub *h, Watch *w, const Want *want, GError **error)
{
  int wd = inotify_add_watch (h->ifd, want->path, want->mask | IN_MASK_ADD);
  if (wd < 0)
    {
      int e = errno;
      if (e == ENOSPC)
        g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_IO,
                     "cannot watch %s: too many inotify watches "
                     "(fs.inotify.max_user_watches)",
                     want->path);
      else
        mh_store__io_error (e, "watch", want->path, error);
      return FALSE;
    }
  Target *t = g_hash_table_lookup (h->wds, GINT_TO_POINTER (wd));
  if (t == NULL)
    {
      t = g_new0 (Target, 1);
      t->wd = wd;
      t->users = g_ptr_array_new ();
      g_hash_table_insert (h->wds, GINT_TO_POINTER (wd), t);
    }
  else
    for (guint i = 0; i < t->users->len; i++)
      if (t->users->pdata[i] == w)
        return TRUE; /* two of our paths are one inode */
  g_ptr_array_add (t->users, w);
  g_ptr_array_add (w->targets, t);
  return TRUE;
}

MhStoreWatch *
mh_store_watch_new (MhStore *store, const char *folder, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  const guint32 dir_mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM
                           | IN_MOVED_TO;
  Want wants[5];
  guint n = 0;
  wants[n++] = (Want) { g_build_filename (store->index_dir, "notify", NULL),
                        IN_MODIFY | IN_CLOSE_WRITE };
  wants[n++] = (Want) { g_strdup (store->index_dir), IN_MOVED_TO };
  wants[n++] = (Want) { g_strdup (store->maildir), dir_mask };
  MhStoreWatch *ret = NULL;
  if (folder)
    {
      g_autofree char *dir = mh_store__folder_path (store, folder, error);
      if (dir == NULL)
        goto out;
      wants[n++] = (Want) { g_build_filename (dir, "new", NULL), dir_mask };
      wants[n++] = (Want) { g_build_filename (dir, "cur", NULL), dir_mask };
    }

  int efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0)
    {
      int e = errno;
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_IO,
                   "cannot create an eventfd: %s", g_strerror (e));
      goto out;
    }
  Watch *w = g_new0 (Watch, 1);
  w->pub.ref = 1;
  w->pub.fd = efd;
  w->targets = g_ptr_array_new ();

  g_mutex_lock (&hub_lock);
  Hub *h = hub_get (error);
  gboolean ok = h != NULL;
  for (guint i = 0; ok && i < n; i++)
    ok = watch_add (h, w, &wants[i], error);
  if (!ok)
    {
      if (h != NULL)
        {
          watch_detach (h, w);
          if (h->watches == 0)
            hub_release_unlock ();
          else
            g_mutex_unlock (&hub_lock);
        }
      else
        g_mutex_unlock (&hub_lock);
      close (efd);
      g_ptr_array_unref (w->targets);
      g_free (w);
      goto out;
    }
  h->watches++;
  g_mutex_unlock (&hub_lock);
  ret = &w->pub;

out:
  for (guint i = 0; i < n; i++)
    g_free (wants[i].path);
  return ret;
}

int
mh_store_watch_get_fd (MhStoreWatch *watch)
{
  g_return_val_if_fail (watch != NULL, -1);
  return watch->fd;
}

gboolean
mh_store_watch_wait (MhStoreWatch *watch, int timeout_ms)
{
  g_return_val_if_fail (watch != NULL, FALSE);
  struct pollfd pfd = { watch->fd, POLLIN, 0 };
  gint64 end = timeout_ms > 0
                   ? g_get_monotonic_time () + (gint64) timeout_ms * 1000
                   : 0;
  for (;;)
    {
      int r = poll (&pfd, 1, timeout_ms);
      if (r > 0)
        break;
      if (r == 0 || errno != EINTR)
        return FALSE;
      if (timeout_ms > 0)
        {
          gint64 left = end - g_get_monotonic_time ();
          if (left <= 0)
            return FALSE;
          timeout_ms = (int) ((left + 999) / 1000);
        }
    }
  guint64 count = 0;
  gssize r;
  do
    r = read (watch->fd, &count, sizeof count);
  while (r < 0 && errno == EINTR);
  return r == (gssize) sizeof count && count > 0;
}
