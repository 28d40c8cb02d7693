/* lib/store/deliver.c: delivery into a Maildir with group commit.
 *
 * Design notes
 * - One delivery: write tmp/<unique> (O_EXCL), fsync it, close; rename
 *   into new/ (cur/ when flags or keywords are given); fsync that
 *   directory; compute the metadata cache (GMime, once, on the caller's
 *   thread); then wait for the index group commit. A crash before the
 *   directory fsync returned leaves either nothing in new/ (the rename is
 *   atomic and the data was fsynced before it) or a complete file whose
 *   delivery was never acknowledged (the sender retries: a duplicate,
 *   never a loss). tmp/ leftovers are harmless.
 * - Durability is the file fsync and the directory fsync, exactly the
 *   raw Maildir loop's two journal commits. Each delivery fsyncs its own
 *   directory: the file system already merges concurrent fsyncs into one
 *   journal commit (ext4's jbd2 does), so a leader doing it for a batch
 *   only added thread wake-ups. The index commit adds no third one: the
 *   env is MDB_NOSYNC (index.c: the index is durable lazily, the Maildir
 *   is the truth, markers and UID reservations cover a power loss).
 * - Index group commit: deliveries queue up with increasing tickets.
 *   Whoever finds no commit in progress becomes the leader, takes every
 *   queued delivery (at most MH_LIMIT_STORE_BATCH_MAX) and writes their
 *   index records (UIDs, cache, dovecot-uidlist lines) in one LMDB txn,
 *   then publishes done_ticket = the batch's last ticket and wakes
 *   everybody; waiters whose ticket is above it loop and one becomes the
 *   next leader. A delivery returns when done_ticket >= its ticket: its
 *   UID is assigned and visible to readers. Errors are per delivery.
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

/* The cache of a pending delivery: computed by its own thread before it
 * queues for the commit (the CAS keeps it safe should anyone else ask
 * first). */
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

/* The leader writes a batch into the index: one txn, one commit that
 * does not wait for the disk (MDB_NOSYNC). */
static void
commit_batch (MhStore *store, GPtrArray *batch)
{
  GError *err = NULL;
  index_batch (store, batch, &err);
  for (guint i = 0; err && i < batch->len; i++)
    {
      MhStorePending *p = batch->pdata[i];
      p->error = g_error_copy (err);
    }
  g_clear_error (&err);
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
  p->data = g_bytes_ref (message); /* for the cache, see pending_cache() */
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
  /* Our own directory fsync, as the raw loop does: concurrent ones share
   * the file system's journal commit. */
  g_autofree char *dstdir = g_build_filename (dir, p->in_new ? "new" : "cur",
                                              NULL);
  if (!mh_store__fsync_dir (dstdir, error))
    {
      pending_free (p);
      return FALSE;
    }
  pending_cache (p); /* CPU on our own thread, outside the commit */
  gboolean ok = group_commit (store, p, error);
  if (ok && uid_out)
    *uid_out = p->uid;
  pending_free (p);
  if (ok)
    mh_store__changed (store, folder);
  return ok;
}
