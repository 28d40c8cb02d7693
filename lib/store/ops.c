/* lib/store/ops.c: operations on messages for the protocol layers.
 *
 * Design notes
 * - Flags: the file is renamed to its new ":2," suffix (moved new/ ->
 *   cur/ if needed) and the record gets a new MODSEQ, in one write txn.
 *   A file that vanished under us (renamed by another tool) is skipped;
 *   the next reconciliation picks up its real name.
 * - Expunge: unlink, tombstone (fid, modseq) -> uid for QRESYNC's
 *   VANISHED, then dovecot-uidlist is rewritten without the dead lines.
 * - Copy: a hard link into the target's cur/ under a new unique name
 *   (Dovecot does the same), falling back to a data copy across file
 *   systems; the cache record is copied, never recomputed. The target
 *   directory is fsynced before the index commit.
 * - Read: every range comes from the cache (header size, part offsets),
 *   so only the bytes asked for are read with pread; a message is never
 *   read whole to answer BODY[HEADER] or BODY[2].
 * - Retention: the age is counted from the saved date (when the message
 *   arrived in that folder), so a message moved to Trash starts a new
 *   clock there.
 */
#include "store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct
{
  MDB_txn *txn;
  MhStoreFolder *f;
  MhStoreOwn *own; /* our file changes, see own.c */
} WriteCtx;

static gboolean
write_begin (MhStore *store, const char *folder, WriteCtx *w, GError **error)
{
  memset (w, 0, sizeof *w);
  if (!mh_store__sync_folder (store, folder, FALSE, error))
    return FALSE;
  g_mutex_lock (&store->write_lock);
  if (mh_store__txn_begin (store, TRUE, &w->txn, error) != 0)
    {
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  w->f = mh_store__folder_load (store, w->txn, folder, FALSE, error);
  if (w->f == NULL)
    {
      mdb_txn_abort (w->txn);
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  w->own = mh_store__own_begin (store, w->f);
  return TRUE;
}

static gboolean
write_end (MhStore *store, WriteCtx *w, gboolean ok, gboolean changed,
           GError **error)
{
  if (ok && changed)
    {
      /* Our renames are in the record: no rescan for them (own.c). */
      mh_store__own_end (w->own, w->f);
      ok = mh_store__folder_save (store, w->txn, w->f, error);
      if (ok)
        {
          mh_store__notify (store, w->txn);
          ok = mh_store__txn_commit (store, w->txn, error);
        }
      else
        mdb_txn_abort (w->txn);
    }
  else
    {
      mh_store__own_abort (w->own);
      mdb_txn_abort (w->txn);
    }
  w->own = NULL;
  g_mutex_unlock (&store->write_lock);
  mh_store__folder_free (w->f);
  return ok;
}

gboolean
mh_store_set_flags (MhStore *store, const char *folder, const guint32 *uids,
                    gsize n_uids, MhStoreFlagOp op, MhStoreFlags flags,
                    const char *const *keywords, guint64 unchanged_since,
                    GArray **failed_out, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (failed_out)
    *failed_out = NULL;
  if (flags & ~0x3f)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "unknown flag bits 0x%x", flags & ~0x3f);
      return FALSE;
    }
  if (op > MH_STORE_FLAGS_REPLACE)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "unknown flag operation %d", op);
      return FALSE;
    }
  for (int i = 0; keywords && keywords[i]; i++)
    if (!mh_store__keyword_valid (keywords[i], error))
      return FALSE;
  folder = mh_store__canon (folder);
  WriteCtx w;
  if (!write_begin (store, folder, &w, error))
    return FALSE;
  guint32 kwbits = 0;
  if (!mh_store__keywords_bits (store, w.f, keywords,
                                op != MH_STORE_FLAGS_REMOVE, &kwbits, error))
    return write_end (store, &w, FALSE, FALSE, NULL);
  g_autofree char *dir = mh_store__folder_path (store, folder, NULL);
  GArray *failed = g_array_new (FALSE, FALSE, sizeof (guint32));
  gboolean ok = TRUE, changed = TRUE; /* keywords may have been added */
  for (gsize i = 0; ok && i < n_uids; i++)
    {
      MsgRec r;
      g_autofree char *fn = NULL;
      if (!mh_store__msg_get (store, w.txn, w.f->rec.id, uids[i], &r, &fn))
        continue;
      if (unchanged_since && r.modseq > unchanged_since)
        {
          g_array_append_val (failed, uids[i]);
          continue;
        }
      MsgRec nr = r;
      switch (op)
        {
        case MH_STORE_FLAGS_ADD:
          nr.flags |= flags;
          nr.kwbits |= kwbits;
          break;
        case MH_STORE_FLAGS_REMOVE:
          nr.flags &= ~(guint32) flags;
          nr.kwbits &= ~kwbits;
          break;
        default:
          nr.flags = flags;
          nr.kwbits = kwbits;
          break;
        }
      if (nr.flags == r.flags && nr.kwbits == r.kwbits)
        continue;
      g_autofree char *nn = mh_store__make_name (fn, mh_store__base_len (fn),
                                                 nr.flags, nr.kwbits);
      g_autofree char *op_ = g_build_filename (dir, r.in_new ? "new" : "cur",
                                               fn, NULL);
      g_autofree char *np = g_build_filename (dir, "cur", nn, NULL);
      if (rename (op_, np) != 0)
        {
          if (errno == ENOENT)
            continue; /* renamed by another tool; reconciled later */
          ok = mh_store__io_error (errno, "rename", op_, error);
          break;
        }
      mh_store__own_renamed (w.own, r.in_new, fn, FALSE, nn);
      nr.in_new = 0;
      nr.modseq = ++w.f->rec.highestmodseq;
      ok = mh_store__msg_put (store, w.txn, w.f, uids[i], &r, &nr, nn,
                              error);
    }
  ok = write_end (store, &w, ok, changed, error);
  if (ok && failed_out)
    *failed_out = failed;
  else
    g_array_unref (failed);
  return ok;
}

static gint
cmp_u32 (gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return x < y ? -1 : x > y;
}

gboolean
mh_store_expunge (MhStore *store, const char *folder, const guint32 *uids,
                  gsize n_uids, gboolean only_deleted, GArray **expunged_out,
                  GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  if (expunged_out)
    *expunged_out = NULL;
  folder = mh_store__canon (folder);
  WriteCtx w;
  if (!write_begin (store, folder, &w, error))
    return FALSE;
  g_autofree char *dir = mh_store__folder_path (store, folder, NULL);
  GArray *targets = g_array_new (FALSE, FALSE, sizeof (guint32));
  if (uids)
    g_array_append_vals (targets, uids, (guint) n_uids);
  else
    {
      guint8 key[8];
      mh_store__key_fid_uid (key, w.f->rec.id, 0);
      MDB_cursor *c;
      mdb_cursor_open (w.txn, store->db.msgs, &c);
      MDB_val k = { 8, key }, d;
      int rc = mdb_cursor_get (c, &k, &d, MDB_SET_RANGE);
      while (rc == 0 && k.mv_size == 8 && memcmp (k.mv_data, key, 4) == 0)
        {
          guint32 u = mh_store__be32 ((guint8 *) k.mv_data + 4);
          g_array_append_val (targets, u);
          rc = mdb_cursor_get (c, &k, &d, MDB_NEXT);
        }
      mdb_cursor_close (c);
    }
  GArray *done = g_array_new (FALSE, FALSE, sizeof (guint32));
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < targets->len; i++)
    {
      guint32 uid = g_array_index (targets, guint32, i);
      MsgRec r;
      g_autofree char *fn = NULL;
      if (!mh_store__msg_get (store, w.txn, w.f->rec.id, uid, &r, &fn))
        continue;
      if (only_deleted && !(r.flags & MH_STORE_FLAG_DELETED))
        continue;
      g_autofree char *p = g_build_filename (dir, r.in_new ? "new" : "cur",
                                             fn, NULL);
      if (g_unlink (p) == 0)
        mh_store__own_unlinked (w.own, r.in_new, fn);
      else if (errno != ENOENT)
        {
          ok = mh_store__io_error (errno, "unlink", p, error);
          break;
        }
      ok = mh_store__msg_remove (store, w.txn, w.f, uid, &r, error);
      if (ok)
        g_array_append_val (done, uid);
    }
  g_array_unref (targets);
  if (ok && done->len > 0)
    ok = mh_store__uidlist_rewrite (store, w.txn, w.f, error);
  ok = write_end (store, &w, ok, done->len > 0, error);
  if (ok && done->len > 0)
    mh_store__changed (store, folder);
  if (ok && expunged_out)
    {
      g_array_sort (done, cmp_u32);
      *expunged_out = done;
    }
  else
    g_array_unref (done);
  return ok;
}

static gboolean
copy_file (const char *src, const char *dst, GError **error)
{
  if (link (src, dst) == 0)
    return TRUE;
  if (errno != EXDEV && errno != EPERM && errno != EMLINK)
    return mh_store__io_error (errno, "link", dst, error);
  g_autofree char *data = NULL;
  gsize len;
  if (!g_file_get_contents (src, &data, &len, NULL))
    return mh_store__io_error (errno, "read", src, error);
  int fd = open (dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return mh_store__io_error (errno, "create", dst, error);
  gboolean ok = write (fd, data, len) == (gssize) len && fsync (fd) == 0;
  int e = errno;
  close (fd);
  if (!ok)
    {
      g_unlink (dst);
      return mh_store__io_error (e, "write", dst, error);
    }
  return TRUE;
}

gboolean
mh_store_copy (MhStore *store, const char *from, const guint32 *uids,
               gsize n_uids, const char *to, gboolean move,
               GArray **src_uids_out, GArray **dst_uids_out,
               guint32 *dst_uidvalidity_out, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  from = mh_store__canon (from);
  to = mh_store__canon (to);
  if (src_uids_out)
    *src_uids_out = NULL;
  if (dst_uids_out)
    *dst_uids_out = NULL;
  if (strcmp (from, to) == 0 && move)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "cannot move messages of '%s' into itself", from);
      return FALSE;
    }
  g_autofree char *sdir = mh_store__folder_path (store, from, error);
  if (sdir == NULL)
    return FALSE;
  g_autofree char *ddir = mh_store__folder_path (store, to, error);
  if (ddir == NULL || !mh_store__role_autocreate (store, to, error)
      || !mh_store__sync_folder (store, from, FALSE, error)
      || !mh_store__sync_folder (store, to, FALSE, error))
    return FALSE;

  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  if (mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    {
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  g_autoptr (MhStoreFolder) sf = mh_store__folder_load (store, txn, from,
                                                        FALSE, error);
  g_autoptr (MhStoreFolder) df = sf ? mh_store__folder_load (store, txn, to,
                                                             FALSE, error)
                                    : NULL;
  gboolean ok = df != NULL;
  /* Our links into the target, our unlinks in the source (own.c). */
  MhStoreOwn *down = ok ? mh_store__own_begin (store, df) : NULL;
  MhStoreOwn *sown = ok && move ? mh_store__own_begin (store, sf) : NULL;
  GArray *srcs = g_array_new (FALSE, FALSE, sizeof (guint32));
  GArray *dsts = g_array_new (FALSE, FALSE, sizeof (guint32));
  GPtrArray *bases = g_ptr_array_new_with_free_func (g_free);
  GPtrArray *made = g_ptr_array_new_with_free_func (g_free);
  /* The quota check sees the whole copy at once. */
  guint64 total = 0, count = 0;
  for (gsize i = 0; ok && i < n_uids; i++)
    {
      MsgRec r;
      if (mh_store__msg_get (store, txn, sf->rec.id, uids[i], &r, NULL))
        {
          total += r.size;
          count++;
        }
    }
  if (ok && store->check && !move && count > 0)
    {
      GError *e = NULL;
      if (!store->check (store, to, (gint64) total, (gint64) count,
                         store->check_data, &e))
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED, "%s",
                       e ? e->message : "refused");
          g_clear_error (&e);
          ok = FALSE;
        }
    }
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  for (gsize i = 0; ok && i < n_uids; i++)
    {
      MsgRec r;
      g_autofree char *fn = NULL;
      if (!mh_store__msg_get (store, txn, sf->rec.id, uids[i], &r, &fn))
        continue;
      /* Keywords: map the source's letters to the target's. */
      guint32 kw = 0;
      for (guint b = 0; ok && b < sf->keywords->len && b < 26; b++)
        if ((r.kwbits & (1u << b)) && sf->keywords->pdata[b])
          {
            int idx = mh_store__keyword_index (store, df,
                                               sf->keywords->pdata[b], TRUE,
                                               error);
            if (idx < 0)
              ok = FALSE;
            else
              kw |= 1u << idx;
          }
      if (!ok)
        break;
      guint64 n = (guint64) g_atomic_int_add (&store->name_counter, 1);
      g_autofree char *base = mh_store__unique_name (store->host, n, r.size, r.vsize);
      g_autofree char *nn = mh_store__make_name (base, strlen (base),
                                                 r.flags, kw);
      g_autofree char *sp = g_build_filename (sdir, r.in_new ? "new" : "cur",
                                              fn, NULL);
      char *dp = g_build_filename (ddir, "cur", nn, NULL);
      if (!copy_file (sp, dp, error))
        {
          g_free (dp);
          ok = FALSE;
          break;
        }
      g_ptr_array_add (made, dp);
      mh_store__own_linked (down, nn);
      /* The cache record travels with the message; one of an older
       * meta.c does not (put would label it current): the target
       * recomputes it when first read. */
      gboolean current;
      g_autoptr (GVariant) cache = mh_store__cache_get (store, txn,
                                                        sf->rec.id, uids[i],
                                                        &current);
      if (!current)
        g_clear_pointer (&cache, g_variant_unref);
      guint32 nu = 0;
      ok = mh_store__msg_add (store, txn, df, nn, FALSE, r.size, r.vsize,
                              r.internal_date, now, r.flags, kw, cache, &nu,
                              error);
      if (ok)
        {
          g_array_append_val (srcs, uids[i]);
          g_array_append_val (dsts, nu);
          g_ptr_array_add (bases, g_steal_pointer (&base));
        }
    }
  if (ok && dsts->len > 0)
    {
      g_autofree char *dc = g_build_filename (ddir, "cur", NULL);
      ok = mh_store__fsync_dir (dc, error)
           && mh_store__uidlist_append (store, ddir, df,
                                        (guint32 *) dsts->data,
                                        (char **) bases->pdata, dsts->len,
                                        error);
      if (ok)
        {
          mh_store__own_end (down, df);
          down = NULL;
          ok = mh_store__folder_save (store, txn, df, error);
        }
    }
  if (ok && move && srcs->len > 0)
    {
      for (guint i = 0; ok && i < srcs->len; i++)
        {
          guint32 uid = g_array_index (srcs, guint32, i);
          MsgRec r;
          g_autofree char *fn = NULL;
          if (!mh_store__msg_get (store, txn, sf->rec.id, uid, &r, &fn))
            continue;
          g_autofree char *sp = g_build_filename (sdir,
                                                  r.in_new ? "new" : "cur",
                                                  fn, NULL);
          if (g_unlink (sp) == 0)
            mh_store__own_unlinked (sown, r.in_new, fn);
          ok = mh_store__msg_remove (store, txn, sf, uid, &r, error);
        }
      ok = ok && mh_store__uidlist_rewrite (store, txn, sf, error);
      if (ok)
        {
          mh_store__own_end (sown, sf);
          sown = NULL;
          ok = mh_store__folder_save (store, txn, sf, error);
        }
    }
  /* Trackers not ended: their txn is dropped (or had nothing to do). */
  mh_store__own_abort (down);
  mh_store__own_abort (sown);
  if (ok && dsts->len > 0)
    {
      mh_store__notify (store, txn);
      ok = mh_store__txn_commit (store, txn, error);
    }
  else
    mdb_txn_abort (txn);
  g_mutex_unlock (&store->write_lock);
  if (!ok)
    for (guint i = 0; i < made->len; i++)
      g_unlink (made->pdata[i]);
  if (ok && dsts->len > 0)
    {
      mh_store__changed (store, df->name);
      if (move)
        mh_store__changed (store, sf->name);
    }
  if (ok && dst_uidvalidity_out)
    *dst_uidvalidity_out = df->rec.uidvalidity;
  if (ok && src_uids_out)
    *src_uids_out = g_array_ref (srcs);
  if (ok && dst_uids_out)
    *dst_uids_out = g_array_ref (dsts);
  g_array_unref (srcs);
  g_array_unref (dsts);
  g_ptr_array_unref (bases);
  g_ptr_array_unref (made);
  return ok;
}

/* ---- Messages and reading --------------------------------------------- */

/* One message from an open read txn: its record and cache (recomputed
 * from the file when the cache record is missing or damaged). Shared by
 * message_load() and the batch reader (view-meta.c). */
MhStoreMessage *
mh_store__message_from_txn (MhStore *store, MDB_txn *txn, guint32 fid,
                            const char *folder, guint32 uid,
                            char **filename_out, GError **error)
{
  MsgRec r;
  g_autofree char *fn = NULL;
  if (!mh_store__msg_get (store, txn, fid, uid, &r, &fn))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                   "no message with UID %u in '%s'", uid, folder);
      return NULL;
    }
  gboolean current;
  GVariant *cache = mh_store__cache_get (store, txn, fid, uid, &current);
  if (cache != NULL && !g_variant_is_normal_form (cache))
    {
      g_clear_pointer (&cache, g_variant_unref); /* damaged */
      current = FALSE;
    }
  if (!current)
    {
      /* Missing, damaged, or computed by an older meta.c: recomputed
       * from the file, and written back later (cache_stale). */
      g_autofree char *dir = mh_store__folder_path (store, folder, NULL);
      g_autofree char *p = g_build_filename (dir, r.in_new ? "new" : "cur",
                                             fn, NULL);
      g_autofree char *data = NULL;
      gsize len;
      if (g_file_get_contents (p, &data, &len, NULL))
        {
          g_clear_pointer (&cache, g_variant_unref);
          cache = mh_store__meta_compute (data, len);
          mh_store__cache_stale (store, fid, uid, cache);
        }
      else if (cache == NULL)
        {
          mh_store__io_error (errno, "read", p, error);
          return NULL;
        }
      /* else: renamed away meanwhile; the older record still answers. */
    }
  MhStoreMessage *m = g_new0 (MhStoreMessage, 1);
  m->ref = 1;
  m->uid = uid;
  m->rec = r;
  m->cache = cache;
  {
    GVariant *c0 = g_variant_get_child_value (cache, 0);
    m->header_size = g_variant_get_uint64 (c0);
    g_variant_unref (c0);
    char **dst[3] = { &m->envelope, &m->body, &m->bodystructure };
    for (int i = 0; i < 3; i++)
      {
        GVariant *ci = g_variant_get_child_value (cache, (gsize) i + 1);
        *dst[i] = g_variant_dup_string (ci, NULL);
        g_variant_unref (ci);
      }
  }
  if (filename_out)
    *filename_out = g_steal_pointer (&fn);
  return m;
}

static MhStoreMessage *
message_load (MhStore *store, const char *folder, guint32 uid,
              char **filename_out, gboolean *in_new_out, GError **error)
{
  folder = mh_store__canon (folder);
  MDB_txn *txn;
  g_autoptr (MhStoreFolder) f = mh_store__read_folder (store, folder, &txn,
                                                       error);
  if (f == NULL)
    return NULL;
  MhStoreMessage *m = mh_store__message_from_txn (store, txn, f->rec.id,
                                                  folder, uid, filename_out,
                                                  error);
  mdb_txn_abort (txn);
  mh_store__cache_flush (store);
  if (m && in_new_out)
    *in_new_out = m->rec.in_new;
  return m;
}

MhStoreMessage *
mh_store_message_get (MhStore *store, const char *folder, guint32 uid,
                      GError **error)
{
  return message_load (store, folder, uid, NULL, NULL, error);
}

guint32
mh_store_message_get_uid (MhStoreMessage *m)
{
  return m->uid;
}

guint64
mh_store_message_get_size (MhStoreMessage *m)
{
  return m->rec.size;
}

guint64
mh_store_message_get_rfc822_size (MhStoreMessage *m)
{
  return m->rec.vsize;
}

gint64
mh_store_message_get_internal_date (MhStoreMessage *m)
{
  return m->rec.internal_date;
}

MhStoreFlags
mh_store_message_get_flags (MhStoreMessage *m)
{
  return (MhStoreFlags) m->rec.flags;
}

guint64
mh_store_message_get_modseq (MhStoreMessage *m)
{
  return m->rec.modseq;
}

const char *
mh_store_message_get_envelope (MhStoreMessage *m)
{
  return m->envelope;
}

const char *
mh_store_message_get_bodystructure (MhStoreMessage *m, gboolean extended)
{
  return extended ? m->bodystructure : m->body;
}

guint64
mh_store_message_get_header_size (MhStoreMessage *m)
{
  return m->header_size;
}

const char *
mh_store_message_get_header (MhStoreMessage *m, const char *name,
                             gboolean *cached_out)
{
  if (cached_out)
    *cached_out = mh_store__header_is_cached (name);
  g_autoptr (GVariant) hdrs = g_variant_get_child_value (m->cache, 4);
  /* meta.c stores one entry per name with every copy's lines joined in
   * file order, so the first match holds them all. */
  gsize n = g_variant_n_children (hdrs);
  const char *first = NULL;
  GString *all = NULL;
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) e = g_variant_get_child_value (hdrs, i);
      g_autoptr (GVariant) kv = g_variant_get_child_value (e, 0);
      const char *k = g_variant_get_string (kv, NULL);
      if (g_ascii_strcasecmp (k, name) != 0)
        continue;
      g_autoptr (GVariant) vv = g_variant_get_child_value (e, 1);
      const char *v = g_variant_get_string (vv, NULL);
      if (first == NULL)
        first = v; /* points into m->cache's data */
      else
        {
          /* A record from an older index: one entry per copy. */
          if (all == NULL)
            all = g_string_new (first);
          g_string_append (all, v);
        }
    }
  if (all == NULL)
    return first;
  if (m->joined == NULL)
    m->joined = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       g_free);
  char *lc = g_ascii_strdown (name, -1);
  const char *had = g_hash_table_lookup (m->joined, lc);
  if (had)
    {
      /* Asked before: the string returned then stays valid. */
      g_free (lc);
      g_string_free (all, TRUE);
      return had;
    }
  char *joined = g_string_free (all, FALSE);
  g_hash_table_insert (m->joined, lc, joined);
  return joined;
}

static gboolean
find_part (MhStoreMessage *m, const char *sec, guint64 *h, guint64 *b,
           guint64 *e)
{
  g_autoptr (GVariant) parts = g_variant_get_child_value (m->cache, 5);
  gsize n = g_variant_n_children (parts);
  for (gsize i = 0; i < n; i++)
    {
      const char *s;
      guint64 x, y, z;
      g_variant_get_child (parts, i, "(&sttt)", &s, &x, &y, &z);
      if (strcmp (s, sec) == 0)
        {
          *h = x;
          *b = y;
          *e = z;
          return TRUE;
        }
    }
  return FALSE;
}

/* End of the header block starting at @start (reads in small chunks). */
static guint64
header_end (int fd, guint64 start, guint64 end)
{
  char buf[4096];
  guint64 pos = start;
  int state = 0; /* count of consecutive newlines, CR ignored */
  if (start < end)
    {
      char c;
      if (pread (fd, &c, 1, (off_t) start) == 1 && (c == '\n' || c == '\r'))
        state = 1;
    }
  while (pos < end)
    {
      gssize r = pread (fd, buf, MIN (sizeof buf, end - pos), (off_t) pos);
      if (r <= 0)
        break;
      for (gssize i = 0; i < r; i++)
        {
          if (buf[i] == '\n')
            {
              if (++state == 2 || (pos + (guint64) i == start))
                return pos + (guint64) i + 1;
            }
          else if (buf[i] != '\r')
            state = 0;
        }
      pos += (guint64) r;
    }
  return end;
}

GBytes *
mh_store_read (MhStore *store, const char *folder, guint32 uid,
               const char *section, gint64 offset, gint64 length,
               GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  if (offset < 0)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "negative offset %" G_GINT64_FORMAT, offset);
      return NULL;
    }
  for (int attempt = 0; attempt < 2; attempt++)
    {
      g_autofree char *fn = NULL;
      gboolean in_new = FALSE;
      g_autoptr (MhStoreMessage) m = message_load (store, folder, uid, &fn,
                                                   &in_new, error);
      if (m == NULL)
        return NULL;
      g_autofree char *dir = mh_store__folder_path (store, folder, NULL);
      g_autofree char *p = g_build_filename (dir, in_new ? "new" : "cur", fn,
                                             NULL);
      int fd = open (p, O_RDONLY | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && attempt == 0)
        {
          /* Renamed by another tool: reconcile and look again. */
          if (!mh_store__sync_folder (store, folder, TRUE, error))
            return NULL;
          continue;
        }
      if (fd < 0)
        {
          mh_store__io_error (errno, "open", p, error);
          return NULL;
        }
      struct stat st;
      fstat (fd, &st);
      guint64 size = (guint64) st.st_size;
      guint64 start = 0, end = size;
      const char *sec = section ? section : "";
      if (*sec == '\0')
        ;
      else if (strcmp (sec, "HEADER") == 0)
        end = MIN (m->header_size, size);
      else if (strcmp (sec, "TEXT") == 0)
        start = MIN (m->header_size, size);
      else
        {
          /* "1.2", "1.2.MIME", "1.2.HEADER", "1.2.TEXT" */
          g_autofree char *num = g_strdup (sec);
          const char *suffix = NULL;
          char *dot = strrchr (num, '.');
          if (dot && !g_ascii_isdigit (dot[1]))
            {
              *dot = '\0';
              suffix = dot + 1;
            }
          gboolean valid = *num != '\0';
          for (const char *q = num; *q; q++)
            if (!g_ascii_isdigit (*q) && *q != '.')
              valid = FALSE;
          if (suffix && strcmp (suffix, "MIME") != 0
              && strcmp (suffix, "HEADER") != 0
              && strcmp (suffix, "TEXT") != 0)
            valid = FALSE;
          if (!valid)
            {
              close (fd);
              g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                           "bad section '%s'", sec);
              return NULL;
            }
          guint64 h, b, e;
          if (!find_part (m, num, &h, &b, &e))
            {
              close (fd);
              g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                           "message %u has no part %s", uid, num);
              return NULL;
            }
          if (suffix == NULL)
            start = b, end = e;
          else if (strcmp (suffix, "MIME") == 0)
            start = h, end = b;
          else
            {
              /* HEADER/TEXT of an embedded message/rfc822 part. */
              guint64 he = header_end (fd, b, MIN (e, size));
              if (strcmp (suffix, "HEADER") == 0)
                start = b, end = he;
              else
                start = he, end = e;
            }
          end = MIN (end, size);
          start = MIN (start, end);
        }
      guint64 from = MIN (start + (guint64) offset, end);
      guint64 n = end - from;
      if (length >= 0 && (guint64) length < n)
        n = (guint64) length;
      char *buf = g_malloc (n + 1);
      gsize got = 0;
      while (got < n)
        {
          gssize r = pread (fd, buf + got, n - got, (off_t) (from + got));
          if (r < 0 && errno == EINTR)
            continue;
          if (r <= 0)
            break;
          got += (gsize) r;
        }
      close (fd);
      return g_bytes_new_take (buf, got);
    }
  g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
               "message %u vanished", uid);
  return NULL;
}

/* ---- Rebuild and retention -------------------------------------------- */

gboolean
mh_store_rebuild (MhStore *store, GError **error)
{
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  if (mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    {
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  /* MODSEQs restart above any earlier one: the clock in milliseconds is
   * far above what increments from 1 reach. */
  guint64 base = (guint64) (g_get_real_time () / 1000);
  MDB_val mk = { strlen ("modseq_base"), "modseq_base" };
  MDB_val old;
  guint64 prev = 0;
  if (mdb_get (txn, store->db.meta, &mk, &old) == 0 && old.mv_size == 8)
    memcpy (&prev, old.mv_data, 8);
  base = MAX (base, prev + 1);
  MDB_val mv = { 8, &base };
  int rc = mdb_put (txn, store->db.meta, &mk, &mv, 0);
  MDB_dbi dbis[] = { store->db.folders, store->db.msgs, store->db.names,
                     store->db.cache, store->db.tombs };
  for (gsize i = 0; rc == 0 && i < G_N_ELEMENTS (dbis); i++)
    rc = mdb_drop (txn, dbis[i], 0);
  if (rc != 0)
    {
      mdb_txn_abort (txn);
      g_mutex_unlock (&store->write_lock);
      return mh_store__lmdb_error (rc, "rebuild", error);
    }
  gboolean ok = mh_store__txn_commit (store, txn, error);
  g_mutex_unlock (&store->write_lock);
  if (!ok)
    return FALSE;
  g_auto (GStrv) names = mh_store_folder_list (store, error);
  if (names == NULL)
    return FALSE;
  for (int i = 0; names[i]; i++)
    if (!mh_store__sync_folder (store, names[i], TRUE, error))
      return FALSE;
  return TRUE;
}

static gboolean
parse_age (const char *rule, const char *text, gint64 *out, GError **error)
{
  if (!mh_core__parse_duration (text, out))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "retention rule '%s': '%s' is not a duration such as "
                   "7d or 12h", rule, text);
      return FALSE;
    }
  return TRUE;
}

MhStoreRetention *
mh_store_retention_parse (const char *text, guint *n_out, GError **error)
{
  g_return_val_if_fail (text != NULL && n_out != NULL, NULL);
  *n_out = 0;
  g_auto (GStrv) rules = g_strsplit (text, ";", -1);
  GArray *out = g_array_new (FALSE, TRUE, sizeof (MhStoreRetention));
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; rules[i]; i++)
    {
      g_strstrip (rules[i]);
      if (*rules[i] == '\0')
        continue;
      char *colon = strrchr (rules[i], ':');
      if (colon == NULL)
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                       "retention rule '%s': expected FOLDER:KEY=AGE,...",
                       rules[i]);
          goto fail;
        }
      *colon = '\0';
      g_autofree char *fname = g_strstrip (g_strdup (rules[i]));
      g_autofree char *d = mh_store__folder_dirname (fname, error);
      if (d == NULL)
        goto fail;
      MhStoreRetention r = { 1, NULL, 0, 0, 0 };
      g_auto (GStrv) kv = g_strsplit (colon + 1, ",", -1);
      for (int j = 0; kv[j]; j++)
        {
          g_strstrip (kv[j]);
          char *eq = strchr (kv[j], '=');
          gint64 *slot = NULL;
          if (eq)
            {
              *eq = '\0';
              if (strcmp (kv[j], "seen") == 0)
                slot = &r.seen_max_age;
              else if (strcmp (kv[j], "unseen") == 0)
                slot = &r.unseen_max_age;
              else if (strcmp (kv[j], "any") == 0)
                slot = &r.any_max_age;
            }
          if (slot == NULL)
            {
              g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                           "retention rule for '%s': '%s' is not "
                           "seen=, unseen= or any=", fname, kv[j]);
              goto fail;
            }
          if (!parse_age (fname, eq + 1, slot, error))
            goto fail;
        }
      g_ptr_array_add (names, g_strdup (mh_store__canon (fname)));
      g_array_append_val (out, r);
    }
  {
    /* One block: the structs, then the names. */
    gsize sz = out->len * sizeof (MhStoreRetention);
    gsize total = sz;
    for (guint i = 0; i < names->len; i++)
      total += strlen (names->pdata[i]) + 1;
    char *block = g_malloc0 (MAX (total, 1));
    memcpy (block, out->data, sz);
    char *p = block + sz;
    MhStoreRetention *rs = (MhStoreRetention *) block;
    for (guint i = 0; i < names->len; i++)
      {
        strcpy (p, names->pdata[i]);
        rs[i].folder = p;
        p += strlen (p) + 1;
      }
    *n_out = out->len;
    g_array_unref (out);
    g_ptr_array_unref (names);
    return rs;
  }
fail:
  g_array_unref (out);
  g_ptr_array_unref (names);
  return NULL;
}

gboolean
mh_store_apply_retention (MhStore *store, const MhStoreRetention *rules,
                          guint n_rules, gint64 now, guint *expunged_out,
                          GError **error)
{
  guint total = 0;
  for (guint i = 0; i < n_rules; i++)
    {
      const MhStoreRetention *r = &rules[i];
      if (r->folder == NULL || !mh_store_folder_exists (store, r->folder))
        continue;
      if (!mh_store__sync_folder (store, r->folder, FALSE, error))
        return FALSE;
      MDB_txn *txn;
      if (mh_store__txn_begin (store, FALSE, &txn, error) != 0)
        return FALSE;
      g_autoptr (MhStoreFolder) f = mh_store__folder_load (
        store, txn, r->folder, FALSE, error);
      if (f == NULL)
        {
          mdb_txn_abort (txn);
          return FALSE;
        }
      GArray *old = g_array_new (FALSE, FALSE, sizeof (guint32));
      guint8 key[8];
      mh_store__key_fid_uid (key, f->rec.id, 0);
      MDB_cursor *c;
      mdb_cursor_open (txn, store->db.msgs, &c);
      MDB_val k = { 8, key }, d;
      int rc = mdb_cursor_get (c, &k, &d, MDB_SET_RANGE);
      while (rc == 0 && k.mv_size == 8 && memcmp (k.mv_data, key, 4) == 0)
        {
          MsgRec m;
          memcpy (&m, d.mv_data, sizeof m);
          gint64 age = now - m.saved_date;
          gboolean seen = (m.flags & MH_STORE_FLAG_SEEN) != 0;
          if ((r->any_max_age > 0 && age > r->any_max_age)
              || (seen && r->seen_max_age > 0 && age > r->seen_max_age)
              || (!seen && r->unseen_max_age > 0
                  && age > r->unseen_max_age))
            {
              guint32 u = mh_store__be32 ((guint8 *) k.mv_data + 4);
              g_array_append_val (old, u);
            }
          rc = mdb_cursor_get (c, &k, &d, MDB_NEXT);
        }
      mdb_cursor_close (c);
      mdb_txn_abort (txn);
      if (old->len > 0)
        {
          g_autoptr (GArray) gone = NULL;
          if (!mh_store_expunge (store, r->folder, (guint32 *) old->data,
                                 old->len, FALSE, &gone, error))
            {
              g_array_unref (old);
              return FALSE;
            }
          total += gone ? gone->len : 0;
          mh_log_info ("store", NULL, NULL, "retention: expunged %u from %s",
                       gone ? gone->len : 0, r->folder);
        }
      g_array_unref (old);
    }
  if (expunged_out)
    *expunged_out = total;
  return TRUE;
}
