/* lib/store/deliver.c: delivery into a Maildir with group commit.
 *
 * Design notes
 * - One delivery: compute the metadata cache (CPU, no lock); write
 *   tmp/<unique> (O_EXCL), fsync it, close; rename into new/ (cur/ when
 *   flags or keywords are given); then wait for the group commit. Only
 *   when the commit covering this rename is done does the call return
 *   TRUE. A crash before that leaves either nothing in new/ (the rename
 *   is atomic and the data was fsynced before it) or a complete file
 *   whose delivery was never acknowledged (the sender retries: a
 *   duplicate, never a loss). tmp/ leftovers are harmless.
 * - Group commit: renamed deliveries queue up with increasing tickets.
 *   Whoever finds no commit in progress becomes the leader, takes every
 *   queued delivery (at most MH_LIMIT_STORE_BATCH_MAX) and, for that
 *   batch, fsyncs each distinct target directory and, at the same time on
 *   a pool thread, writes the index (UIDs, cache, dovecot-uidlist lines)
 *   in one LMDB commit. Then it publishes done_ticket = the batch's last
 *   ticket and wakes everybody. Waiters whose ticket is above it loop
 *   and one becomes the next leader.
 *   Why it is correct: a delivery's ticket is taken after its rename
 *   returned; the leader takes the batch (under the lock) before it
 *   starts the fsync, so the fsync STARTED after every rename in the
 *   batch, and fsync of a directory makes all its completed entries
 *   durable. done_ticket only grows, batches are committed in ticket
 *   order, and a delivery returns only when done_ticket >= its ticket,
 *   i.e. when a batch containing it finished both the fsync and the
 *   index commit without error (errors are per delivery).
 *   Why it is fast: N concurrent deliveries share one directory fsync
 *   and one LMDB commit, and the commit itself does not wait for the disk
 *   (MDB_NOSYNC, see index.c: the index is durable lazily, the Maildir is
 *   the truth), so a delivery costs the file fsync and its share of one
 *   directory fsync: the raw Maildir minimum. A batch of several runs the
 *   index txn on store->gc_thread beside the fsync; a batch of one (one
 *   delivery at a time) runs it inline after the fsync: the txn is ~0.1
 *   ms of CPU, less than two thread wake-ups cost on a loaded machine.
 * - The index commit may race a reconciliation that already saw the
 *   renamed file: the commit then finds the base name in the index and
 *   keeps that UID (no duplicate).
 */
#include "store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
pending_free (MhStorePending *p)
{
  g_free (p->folder);
  g_free (p->filename);
  g_strfreev (p->keywords);
  g_clear_pointer (&p->cache, g_variant_unref);
  g_clear_pointer (&p->data, g_bytes_unref);
  g_clear_error (&p->error);
  g_free (p);
}

typedef struct
{
  MhStore *store;
  GPtrArray *batch;
  GMutex lock;
  GCond cond;
  gboolean done;
  GError *error;
} IndexJob;

/* The cache of a pending delivery, computed by whoever needs it first:
 * its own thread while it waits for a commit already running, or the
 * commit thread. */
static GVariant *
pending_cache (MhStorePending *p)
{
  GVariant *c = g_atomic_pointer_get (&p->cache);
  if (c != NULL)
    return c;
  gsize len;
  const char *d = g_bytes_get_data (p->data, &len);
  c = mh_store__meta_compute (d, len);
  if (!g_atomic_pointer_compare_and_exchange (&p->cache, NULL, c))
    g_variant_unref (c);
  return g_atomic_pointer_get (&p->cache);
}

/* Writes a batch into the index: one write txn, one commit. */
static gboolean
index_batch (MhStore *store, GPtrArray *batch, GError **error)
{
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  if (mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    {
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  g_autoptr (GHashTable) folders = g_hash_table_new_full (
    g_str_hash, g_str_equal, NULL, (GDestroyNotify) mh_store__folder_free);
  gboolean ok = TRUE;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  for (guint i = 0; ok && i < batch->len; i++)
    {
      MhStorePending *p = batch->pdata[i];
      MhStoreFolder *f = g_hash_table_lookup (folders, p->folder);
      if (f == NULL)
        {
          GError *e = NULL;
          f = mh_store__folder_load (store, txn, p->folder, FALSE, &e);
          if (f == NULL && g_error_matches (e, MH_STORE_ERROR,
                                            MH_STORE_ERROR_NOT_FOUND))
            {
              /* First delivery into a folder the index does not know:
               * reconcile it first (reads an existing dovecot-uidlist). */
              g_clear_error (&e);
              mdb_txn_abort (txn);
              g_mutex_unlock (&store->write_lock);
              if (!mh_store__sync_folder (store, p->folder, TRUE, error))
                return FALSE;
              g_hash_table_remove_all (folders);
              return index_batch (store, batch, error);
            }
          if (f == NULL)
            {
              g_propagate_error (error, e);
              ok = FALSE;
              break;
            }
          g_hash_table_insert (folders, f->name, f);
        }
      /* Already indexed by a concurrent reconciliation? */
      gsize bl = mh_store__base_len (p->filename);
      g_autofree guint8 *nk = g_malloc (4 + bl);
      nk[0] = f->rec.id >> 24;
      nk[1] = f->rec.id >> 16;
      nk[2] = f->rec.id >> 8;
      nk[3] = f->rec.id;
      memcpy (nk + 4, p->filename, bl);
      MDB_val k = { 4 + bl, nk }, v;
      if (mdb_get (txn, store->db.names, &k, &v) == 0 && v.mv_size == 4)
        {
          /* ...then it is in dovecot-uidlist already, too. */
          memcpy (&p->uid, v.mv_data, 4);
          p->indexed = TRUE;
          continue;
        }
      guint32 fl, kw;
      mh_store__parse_info (p->filename, &fl, &kw);
      p->uid = 0;
      ok = mh_store__msg_add (store, txn, f, p->filename, p->in_new, p->size,
                              p->vsize, p->internal_date, now, fl, kw,
                              pending_cache (p), &p->uid, error);
    }
  /* dovecot-uidlist lines, one append per folder. */
  GHashTableIter it;
  gpointer key, val;
  g_hash_table_iter_init (&it, folders);
  while (ok && g_hash_table_iter_next (&it, &key, &val))
    {
      MhStoreFolder *f = val;
      GArray *uids = g_array_new (FALSE, FALSE, sizeof (guint32));
      GPtrArray *bases = g_ptr_array_new_with_free_func (g_free);
      for (guint i = 0; i < batch->len; i++)
        {
          MhStorePending *p = batch->pdata[i];
          if (strcmp (p->folder, f->name) != 0 || p->indexed)
            continue;
          g_array_append_val (uids, p->uid);
          g_ptr_array_add (bases, g_strndup (p->filename,
                                             mh_store__base_len (p->filename)));
        }
      g_autofree char *dir = mh_store__folder_path (store, f->name, error);
      ok = dir != NULL
           && mh_store__uidlist_append (store, dir, f, (guint32 *) uids->data,
                                        (char **) bases->pdata, uids->len,
                                        error)
           && mh_store__folder_save (store, txn, f, error);
      g_array_unref (uids);
      g_ptr_array_unref (bases);
    }
  if (ok)
    {
      mh_store__notify (store, txn);
      ok = mh_store__txn_commit (store, txn, error);
    }
  else
    mdb_txn_abort (txn);
  g_mutex_unlock (&store->write_lock);
  return ok;
}

static void
index_job (gpointer data)
{
  IndexJob *j = data;
  GError *e = NULL;
  index_batch (j->store, j->batch, &e);
  g_mutex_lock (&j->lock);
  j->error = e;
  j->done = TRUE;
  g_cond_signal (&j->cond);
  g_mutex_unlock (&j->lock);
}

gpointer
mh_store__index_thread (gpointer data)
{
  MhStore *store = data;
  for (;;)
    {
      gpointer job = g_async_queue_pop (store->gc_queue);
      if (job == store)
        return NULL;
      index_job (job);
    }
}

/* A batch of one (one delivery at a time): no thread hand-off. */
static void
commit_one (MhStore *store, MhStorePending *p)
{
  GError *err = NULL;
  g_autofree char *fd = mh_store__folder_path (store, p->folder, &err);
  g_autofree char *d = fd ? g_build_filename (fd, p->in_new ? "new" : "cur",
                                              NULL)
                          : NULL;
  if (d != NULL && mh_store__fsync_dir (d, &err))
    {
      GPtrArray one = { .pdata = (gpointer *) &p, .len = 1 };
      index_batch (store, &one, &err);
    }
  p->error = err;
}

static void
commit_batch (MhStore *store, GPtrArray *batch)
{
  if (batch->len == 1)
    {
      commit_one (store, batch->pdata[0]);
      return;
    }
  IndexJob job;
  memset (&job, 0, sizeof job);
  job.store = store;
  job.batch = batch;
  g_mutex_init (&job.lock);
  g_cond_init (&job.cond);
  g_async_queue_push (store->gc_queue, &job);

  /* Meanwhile: fsync each distinct directory renamed into. */
  g_autoptr (GHashTable) dirs = g_hash_table_new_full (g_str_hash,
                                                       g_str_equal, g_free,
                                                       NULL);
  GError *ferr = NULL;
  for (guint i = 0; i < batch->len; i++)
    {
      MhStorePending *p = batch->pdata[i];
      g_autofree char *fd = mh_store__folder_path (store, p->folder, NULL);
      char *d = g_build_filename (fd, p->in_new ? "new" : "cur", NULL);
      if (!g_hash_table_add (dirs, d))
        continue;
      if (ferr == NULL)
        mh_store__fsync_dir (d, &ferr);
    }

  g_mutex_lock (&job.lock);
  while (!job.done)
    g_cond_wait (&job.cond, &job.lock);
  g_mutex_unlock (&job.lock);
  g_mutex_clear (&job.lock);
  g_cond_clear (&job.cond);
  GError *err = ferr ? ferr : job.error;
  for (guint i = 0; err && i < batch->len; i++)
    {
      MhStorePending *p = batch->pdata[i];
      p->error = g_error_copy (err);
    }
  g_clear_error (&ferr);
  g_clear_error (&job.error);
}

static gboolean
group_commit (MhStore *store, MhStorePending *p, GError **error)
{
  g_mutex_lock (&store->gc_lock);
  p->ticket = ++store->gc_next_ticket;
  g_ptr_array_add (store->gc_pending, p);
  while (store->gc_done_ticket < p->ticket)
    {
      if (store->gc_leader)
        {
          /* A commit is running and we will wait for it anyway: compute
           * our cache now rather than in the next commit. */
          if (g_atomic_pointer_get (&p->cache) == NULL)
            {
              g_mutex_unlock (&store->gc_lock);
              pending_cache (p);
              g_mutex_lock (&store->gc_lock);
              continue;
            }
          g_cond_wait (&store->gc_cond, &store->gc_lock);
          continue;
        }
      store->gc_leader = TRUE;
      guint n = MIN (store->gc_pending->len, MH_LIMIT_STORE_BATCH_MAX);
      GPtrArray *batch = g_ptr_array_new ();
      for (guint i = 0; i < n; i++)
        g_ptr_array_add (batch, store->gc_pending->pdata[i]);
      g_ptr_array_remove_range (store->gc_pending, 0, n);
      g_mutex_unlock (&store->gc_lock);

      commit_batch (store, batch);

      g_mutex_lock (&store->gc_lock);
      MhStorePending *last = batch->pdata[batch->len - 1];
      store->gc_done_ticket = last->ticket;
      store->gc_leader = FALSE;
      g_ptr_array_unref (batch);
      g_cond_broadcast (&store->gc_cond);
    }
  g_mutex_unlock (&store->gc_lock);
  if (p->error)
    {
      g_propagate_error (error, g_steal_pointer (&p->error));
      return FALSE;
    }
  return TRUE;
}

static gboolean
write_all (int fd, const char *data, gsize len)
{
  while (len > 0)
    {
      gssize w = write (fd, data, len);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          return FALSE;
        }
      data += w;
      len -= (gsize) w;
    }
  return TRUE;
}

gboolean
mh_store_deliver (MhStore *store, const char *folder, GBytes *message,
                  MhStoreFlags flags, const char *const *keywords,
                  gint64 internal_date, guint32 *uid_out, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (message != NULL, FALSE);
  folder = mh_store__canon (folder);
  g_autofree char *dir = mh_store__folder_path (store, folder, error);
  if (dir == NULL)
    return FALSE;
  gsize len;
  const char *data = g_bytes_get_data (message, &len);
  if (len == 0)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "empty message");
      return FALSE;
    }
  for (int i = 0; keywords && keywords[i]; i++)
    if (!mh_store__keyword_valid (keywords[i], error))
      return FALSE;
  if (flags & ~0x3f)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "unknown flag bits 0x%x", flags & ~0x3f);
      return FALSE;
    }
  if (!mh_store__role_autocreate (store, folder, error))
    return FALSE;
  if (store->check)
    {
      GError *e = NULL;
      if (!store->check (store, folder, (gint64) len, 1, store->check_data,
                         &e))
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED, "%s",
                       e ? e->message : "refused");
          g_clear_error (&e);
          return FALSE;
        }
    }

  guint32 kwbits = 0;
  if (keywords && keywords[0])
    {
      /* Keyword letters need the folder's dovecot-keywords indexes. */
      if (!mh_store__sync_folder (store, folder, FALSE, error))
        return FALSE;
      g_mutex_lock (&store->write_lock);
      MDB_txn *txn;
      gboolean ok = FALSE;
      if (mh_store__txn_begin (store, TRUE, &txn, error) == 0)
        {
          g_autoptr (MhStoreFolder) f = mh_store__folder_load (store, txn,
                                                               folder, TRUE,
                                                               error);
          ok = f && mh_store__keywords_bits (store, f, keywords, TRUE,
                                             &kwbits, error)
               && mh_store__folder_save (store, txn, f, error);
          if (ok)
            ok = mh_store__txn_commit (store, txn, error);
          else
            mdb_txn_abort (txn);
        }
      g_mutex_unlock (&store->write_lock);
      if (!ok)
        return FALSE;
    }

  MhStorePending *p = g_new0 (MhStorePending, 1);
  p->folder = g_strdup (folder);
  p->size = len;
  p->vsize = mh_store__rfc822_size (data, len);
  p->internal_date = internal_date > 0 ? internal_date
                                       : g_get_real_time () / G_USEC_PER_SEC;
  /* The metadata cache is computed off the critical path: see
   * pending_cache(). */
  p->data = g_bytes_ref (message);
  guint64 n = (guint64) g_atomic_int_add (&store->name_counter, 1);
  g_autofree char *base = mh_store__unique_name (store->host, n, len, p->vsize);
  p->in_new = flags == 0 && kwbits == 0;
  p->filename = p->in_new ? g_strdup (base)
                          : mh_store__make_name (base, strlen (base), flags,
                                                 kwbits);
  g_autofree char *tmp = g_build_filename (dir, "tmp", base, NULL);
  g_autofree char *dst = g_build_filename (dir, p->in_new ? "new" : "cur",
                                           p->filename, NULL);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      mh_store__io_error (errno, "create", tmp, error);
      pending_free (p);
      return FALSE;
    }
  if (!write_all (fd, data, len) || fsync (fd) != 0)
    {
      int e = errno;
      close (fd);
      g_unlink (tmp);
      mh_store__io_error (e, "write", tmp, error);
      pending_free (p);
      return FALSE;
    }
  if (internal_date > 0)
    {
      /* Dovecot reads INTERNALDATE from the file's mtime. */
      struct timespec ts[2] = { { internal_date, 0 }, { internal_date, 0 } };
      futimens (fd, ts);
    }
  if (close (fd) != 0)
    {
      int e = errno;
      g_unlink (tmp);
      mh_store__io_error (e, "close", tmp, error);
      pending_free (p);
      return FALSE;
    }
  if (rename (tmp, dst) != 0)
    {
      int e = errno;
      g_unlink (tmp);
      mh_store__io_error (e, "rename", dst, error);
      pending_free (p);
      return FALSE;
    }
  gboolean ok = group_commit (store, p, error);
  if (ok && uid_out)
    *uid_out = p->uid;
  pending_free (p);
  if (ok)
    mh_store__changed (store, folder);
  return ok;
}
