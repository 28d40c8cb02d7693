/* lib/store/view-meta.c: fast metadata reads for many messages of one
 * folder (SEARCH, SORT, THREAD, FETCH 1:*).
 *
 * Design notes
 * - mh_store_message_get() pays a freshness check of the Maildir (three
 *   stats) and a read txn per call: 60-90 us, half of it the check. A
 *   command that walks 100,000 messages needs the check once, not per
 *   message. MhStoreReader does the check once at creation and keeps one
 *   LMDB read txn (the env is MDB_NOTLS, so the txn may move between
 *   threads and coexist with other txns of the same thread).
 * - Snapshot: the reader sees the index as of its creation. A message
 *   expunged meanwhile is still returned; reading its body
 *   (mh_store_read()) goes through the normal path, which reports a
 *   vanished file as gone. Metadata (envelope, sizes) of a message that
 *   existed at the snapshot is still correct for it.
 * - Lifetime: a long-held read txn stops LMDB reusing pages freed after
 *   it, so a reader lives for one command, never a session.
 * - Size, internal date and saved date are also kept in the view itself
 *   (store.c, filled from the same records when the view is built), so
 *   LARGER/SINCE/SORT SIZE need no lookup at all.
 */
#include "store-private.h"

struct _MhStoreReader
{
  gint ref;
  MhStore *store;
  char *folder;
  guint32 fid;
  MDB_txn *txn;
  GMutex lock; /* mh_store_reader_get() from several threads is safe */
};

MhStoreReader *
mh_store_reader_new (MhStore *store, const char *folder, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  folder = mh_store__canon (folder);
  MDB_txn *txn;
  g_autoptr (MhStoreFolder) f = mh_store__read_folder (store, folder, &txn,
                                                       error);
  if (f == NULL)
    return NULL;
  MhStoreReader *r = g_new0 (MhStoreReader, 1);
  r->ref = 1;
  r->store = mh_store_ref (store);
  r->folder = g_strdup (folder);
  r->fid = f->rec.id;
  r->txn = txn;
  g_mutex_init (&r->lock);
  return r;
}

MhStoreMessage *
mh_store_reader_get (MhStoreReader *r, guint32 uid, GError **error)
{
  g_return_val_if_fail (r != NULL, NULL);
  /* One LMDB txn must not be used by two threads at once. */
  g_mutex_lock (&r->lock);
  MhStoreMessage *m = mh_store__message_from_txn (r->store, r->txn, r->fid,
                                                  r->folder, uid, NULL,
                                                  error);
  g_mutex_unlock (&r->lock);
  return m;
}

MhStoreReader *
mh_store_reader_ref (MhStoreReader *r)
{
  g_return_val_if_fail (r != NULL, NULL);
  g_atomic_int_inc (&r->ref);
  return r;
}

void
mh_store_reader_unref (MhStoreReader *r)
{
  if (r == NULL || !g_atomic_int_dec_and_test (&r->ref))
    return;
  mdb_txn_abort (r->txn);
  /* Records recomputed for an older meta.c go back to the index now. */
  mh_store__cache_flush (r->store);
  g_mutex_clear (&r->lock);
  g_free (r->folder);
  mh_store_unref (r->store);
  g_free (r);
}

G_DEFINE_BOXED_TYPE (MhStoreReader, mh_store_reader, mh_store_reader_ref,
                     mh_store_reader_unref)
