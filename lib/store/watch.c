/* lib/store/watch.c: waking a reader when a mailbox changes.
 *
 * Design notes
 * - A watch is an inotify descriptor on the account's index "notify"
 *   file (every index commit of any process writes it, index.c) and,
 *   for a folder, on its new/ and cur/ (a tool such as mutt changing the
 *   Maildir behind the index's back).
 * - The caller polls mh_store_watch_get_fd() or blocks in
 *   mh_store_watch_wait(), which also drains the pending events.
 */
#include "store-private.h"

#include <errno.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

static MhStoreWatch *
watch_ref (MhStoreWatch *w)
{
  g_atomic_int_inc (&w->ref);
  return w;
}

void
mh_store_watch_free (MhStoreWatch *w)
{
  if (w == NULL || !g_atomic_int_dec_and_test (&w->ref))
    return;
  close (w->fd);
  g_free (w);
}

G_DEFINE_BOXED_TYPE (MhStoreWatch, mh_store_watch, watch_ref,
                     mh_store_watch_free)

/* ---- Watch ------------------------------------------------------------ */

MhStoreWatch *
mh_store_watch_new (MhStore *store, const char *folder, GError **error)
{
  int fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0)
    {
      mh_store__io_error (errno, "inotify", store->index_dir, error);
      return NULL;
    }
  g_autofree char *np = g_build_filename (store->index_dir, "notify", NULL);
  if (inotify_add_watch (fd, np, IN_MODIFY | IN_CLOSE_WRITE) < 0)
    {
      int e = errno;
      close (fd);
      mh_store__io_error (e, "watch", np, error);
      return NULL;
    }
  if (folder)
    {
      g_autofree char *dir = mh_store__folder_path (store, folder, error);
      if (dir == NULL)
        {
          close (fd);
          return NULL;
        }
      const char *subs[] = { "new", "cur" };
      for (int i = 0; i < 2; i++)
        {
          g_autofree char *d = g_build_filename (dir, subs[i], NULL);
          if (inotify_add_watch (fd, d, IN_CREATE | IN_DELETE | IN_MOVED_FROM
                                          | IN_MOVED_TO) < 0)
            {
              int e = errno;
              close (fd);
              mh_store__io_error (e, "watch", d, error);
              return NULL;
            }
        }
    }
  MhStoreWatch *w = g_new0 (MhStoreWatch, 1);
  w->ref = 1;
  w->fd = fd;
  return w;
}

int
mh_store_watch_get_fd (MhStoreWatch *watch)
{
  return watch->fd;
}

gboolean
mh_store_watch_wait (MhStoreWatch *watch, int timeout_ms)
{
  int fd = watch->fd;
  struct pollfd pfd = { fd, POLLIN, 0 };
  int r;
  do
    r = poll (&pfd, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    return FALSE;
  char buf[4096] __attribute__ ((aligned (__alignof__ (struct inotify_event))));
  gboolean any = FALSE;
  while (read (fd, buf, sizeof buf) > 0)
    any = TRUE;
  return any;
}
