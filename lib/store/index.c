/* lib/store/index.c: the per-account LMDB index and its reconciliation
 * with the Maildir.
 *
 * Design notes
 * - Truth and cache: the Maildir files (names, ":2," flags), each
 *   folder's dovecot-uidlist (UIDs, UIDVALIDITY) and dovecot-keywords are
 *   the truth, in formats Dovecot reads and writes; the LMDB index is a
 *   cache of them plus what files cannot hold (MODSEQ, tombstones, the
 *   metadata cache). We append every UID we assign to dovecot-uidlist
 *   (under its dotlock, as Dovecot does), so a rebuild from the Maildir
 *   alone gives the same UIDs, and Dovecot sees our UIDs.
 * - Databases (see MhStoreDb): records are native-endian structs, keys
 *   big-endian so a cursor walks a folder in UID order.
 * - Durability (lazy index): the env is opened MDB_NOSYNC, so an index
 *   commit is a memory copy into the page cache and never waits for the
 *   disk. A delivery is acknowledged after the file fsync and the fsync
 *   of its directory only (the raw Maildir minimum); the index rides on
 *   them. Why that is safe: the Maildir files are the truth and the index
 *   is a cache that reconciles from them.
 *   - A killed process (SIGKILL) loses nothing: its commits are in the
 *     page cache, and LMDB's meta-page switch keeps the file consistent.
 *   - An OS crash or power loss can leave data.mdb with the newest meta
 *     page but not all of its pages (MDB_NOSYNC gives no ordering), i.e.
 *     silently wrong. So every process that opens the index first writes
 *     a durable marker "dirty.<pid>" holding the boot id, and removes it
 *     after the final mdb_env_sync() at close. An open that finds a
 *     marker from another boot moves data.mdb aside (data.mdb.unsynced)
 *     and rebuilds from the Maildir, under an flock so only one process
 *     does it. Markers of dead processes of this boot are just removed.
 *   - UIDs and MODSEQs must never be handed out twice, yet the lines we
 *     append to dovecot-uidlist are not fsynced either (one more journal
 *     commit per delivery). So "mailhost-reserve" in the Maildir
 *     (written durably: tmp, fsync, rename, fsync of the dir; in the
 *     Maildir so that it survives losing the index directory) holds for
 *     each UIDVALIDITY a bound above
 *     every UID handed out, and one bound above every MODSEQ. A write txn
 *     that would pass a bound first raises it by
 *     MH_LIMIT_STORE_RESERVE (one durable write per that many UIDs, not
 *     per delivery). After a recovery (meta "recovered"; also when the
 *     index is missing but the reserve exists: it was deleted), a folder
 *     record made from a dovecot-uidlist whose UIDVALIDITY has a bound
 *     starts
 *     at that bound: files whose uidlist line was lost get new UIDs, and
 *     every MODSEQ is above any a client saw. UIDVALIDITY is kept, so
 *     clients keep their caches; UID gaps are legal, reuse is not.
 *   - Why not bump UIDVALIDITY instead: every client would download every
 *     folder again after each power cut; the reservation costs a few
 *     fsyncs per thousand deliveries.
 * - Reconciliation: a folder records the mtimes of new/ and cur/ (and of
 *   dovecot-uidlist) at its last scan; when one changed, that directory
 *   is scanned again. A scan that finds an index entry missing scans once
 *   more before expunging it (a rename by another tool can hide a file
 *   from one readdir). An mtime is recorded only if the scan started
 *   after the clock left that mtime's tick (a change later in the same
 *   tick would be invisible); otherwise the next call scans again. Files
 *   are matched by their base name (before ":2,"), so a file renamed by
 *   mutt keeps its UID.
 *   Our own renames, unlinks and links (STORE, EXPUNGE, COPY, SELECT's
 *   move out of new/) do not count as changes: own.c keeps the recorded
 *   mtimes exact in the same write txn, so only another program's change
 *   costs a scan.
 * - Folder records count their messages still in new/ (in_new, index
 *   version 2; a version-1 index is upgraded in place at open), so a
 *   SELECT with none is a read txn only.
 * - Cache records carry the meta.c version that computed them
 *   (MH_STORE_META_VERSION): one of another version is recomputed when
 *   read and written back in batches, so a meta.c fix needs no rebuild.
 * - A corrupt environment (MDB_INVALID, MDB_CORRUPTED) is moved aside and
 *   rebuilt from the Maildir when the store opens.
 */
#include "store-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2: FolderRec.in_new (upgraded in place from 1 at open). */
#define INDEX_VERSION 2
#define MTIME_TRUST_NS ((gint64) 2 * 1000000000)

static gint64
mtime_ns (const struct stat *st)
{
  return (gint64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}


gboolean
mh_store__lmdb_error (int rc, const char *what, GError **error)
{
  int code = MH_STORE_ERROR_FAILED;
  if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH
      || rc == MDB_PAGE_NOTFOUND)
    code = MH_STORE_ERROR_CORRUPT;
  else if (rc == MDB_MAP_FULL)
    code = MH_STORE_ERROR_LIMIT;
  g_set_error (error, MH_STORE_ERROR, code, "index: %s: %s", what,
               mdb_strerror (rc));
  return FALSE;
}

gboolean
mh_store__io_error (int errsv, const char *what, const char *path,
                    GError **error)
{
  g_set_error (error, MH_STORE_ERROR,
               errsv == ENOENT ? MH_STORE_ERROR_NOT_FOUND
               : errsv == ENOSPC || errsv == EDQUOT ? MH_STORE_ERROR_LIMIT
                                                    : MH_STORE_ERROR_IO,
               "%s %s: %s", what, path, g_strerror (errsv));
  return FALSE;
}

gint64
mh_store__now_ns (void)
{
  return g_get_real_time () * 1000;
}

gboolean
mh_store__fsync_dir (const char *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return mh_store__io_error (errno, "open", path, error);
  if (fsync (fd) != 0)
    {
      int e = errno;
      close (fd);
      return mh_store__io_error (e, "fsync", path, error);
    }
  close (fd);
  return TRUE;
}

int
mh_store__txn_begin (MhStore *store, gboolean write, MDB_txn **txn,
                     GError **error)
{
  int rc = mdb_txn_begin (store->db.env, NULL, write ? 0 : MDB_RDONLY, txn);
  if (rc != 0)
    mh_store__lmdb_error (rc, "begin", error);
  return rc;
}

gboolean
mh_store__txn_commit (MhStore *store, MDB_txn *txn, GError **error)
{
  int rc = mdb_txn_commit (txn);
  if (rc != 0)
    return mh_store__lmdb_error (rc, "commit", error);
  return TRUE;
}

static gboolean
meta_get (MhStore *store, MDB_txn *txn, const char *key, MDB_val *v)
{
  MDB_val k = { strlen (key), (void *) key };
  return mdb_get (txn, store->db.meta, &k, v) == 0;
}

static int
meta_put (MhStore *store, MDB_txn *txn, const char *key, const void *data,
          gsize len)
{
  MDB_val k = { strlen (key), (void *) key };
  MDB_val v = { len, (void *) data };
  return mdb_put (txn, store->db.meta, &k, &v, 0);
}

static guint64
meta_u64 (MhStore *store, MDB_txn *txn, const char *key)
{
  MDB_val v;
  guint64 x = 0;
  if (meta_get (store, txn, key, &v) && v.mv_size == sizeof x)
    memcpy (&x, v.mv_data, sizeof x);
  return x;
}

static char *
read_boot_id (void)
{
  char *s = NULL;
  if (!g_file_get_contents ("/proc/sys/kernel/random/boot_id", &s, NULL,
                            NULL))
    return g_strdup ("unknown");
  return g_strstrip (s);
}

void
mh_store__notify (MhStore *store, MDB_txn *txn)
{
  guint64 c = meta_u64 (store, txn, "counter") + 1;
  meta_put (store, txn, "counter", &c, sizeof c);
  /* Other processes watch this file with inotify (see store.c); a write
   * without fsync is enough: only the event matters. */
  if (store->notify_fd >= 0 && pwrite (store->notify_fd, &c, sizeof c, 0) < 0)
    mh_log_debug ("store", NULL, NULL, "notify %s: %s", store->index_dir,
                  g_strerror (errno));
}

/* Version 1 folder records end before in_new: rewrite each with the
 * count of its records in new/ (one walk per folder, once). */
static int
upgrade_v1 (MhStore *store, MDB_txn *txn)
{
  g_autoptr (GPtrArray) keys = g_ptr_array_new_with_free_func (
    (GDestroyNotify) g_bytes_unref);
  g_autoptr (GPtrArray) vals = g_ptr_array_new_with_free_func (
    (GDestroyNotify) g_byte_array_unref);
  MDB_cursor *c;
  int rc = mdb_cursor_open (txn, store->db.folders, &c);
  if (rc != 0)
    return rc;
  MDB_val k, v;
  rc = mdb_cursor_get (c, &k, &v, MDB_FIRST);
  while (rc == 0)
    {
      if (v.mv_size >= MH_STORE_FOLDER_REC_V1_SIZE)
        {
          FolderRec fr = { 0 };
          memcpy (&fr, v.mv_data, MH_STORE_FOLDER_REC_V1_SIZE);
          guint8 key[8];
          mh_store__key_fid_uid (key, fr.id, 0);
          MDB_cursor *mc;
          mdb_cursor_open (txn, store->db.msgs, &mc);
          MDB_val mk = { 8, key }, md;
          int mrc = mdb_cursor_get (mc, &mk, &md, MDB_SET_RANGE);
          while (mrc == 0 && mk.mv_size == 8
                 && memcmp (mk.mv_data, key, 4) == 0)
            {
              MsgRec r;
              if (md.mv_size >= sizeof r)
                {
                  memcpy (&r, md.mv_data, sizeof r);
                  fr.in_new += r.in_new != 0;
                }
              mrc = mdb_cursor_get (mc, &mk, &md, MDB_NEXT);
            }
          mdb_cursor_close (mc);
          GByteArray *b = g_byte_array_new ();
          g_byte_array_append (b, (const guint8 *) &fr, sizeof fr);
          g_byte_array_append (b, (const guint8 *) v.mv_data
                                    + MH_STORE_FOLDER_REC_V1_SIZE,
                               v.mv_size - MH_STORE_FOLDER_REC_V1_SIZE);
          g_ptr_array_add (keys, g_bytes_new (k.mv_data, k.mv_size));
          g_ptr_array_add (vals, b);
        }
      rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (c);
  if (rc != MDB_NOTFOUND)
    return rc;
  for (guint i = 0; i < keys->len; i++)
    {
      gsize kl;
      const void *kd = g_bytes_get_data (keys->pdata[i], &kl);
      GByteArray *b = vals->pdata[i];
      MDB_val nk = { kl, (void *) kd }, nv = { b->len, b->data };
      if ((rc = mdb_put (txn, store->db.folders, &nk, &nv, 0)) != 0)
        return rc;
    }
  return 0;
}

static gboolean
open_env (MhStore *store, GError **error)
{
  int rc = mdb_env_create (&store->db.env);
  if (rc != 0)
    return mh_store__lmdb_error (rc, "create", error);
  mdb_env_set_maxdbs (store->db.env, 8);
  mdb_env_set_mapsize (store->db.env, MH_LIMIT_STORE_INDEX_MAP);
  /* NOTLS: read txns may be used from pool threads; NOSYNC: see the
   * design notes (durability comes from the Maildir, the marker and the
   * reservations). */
  rc = mdb_env_open (store->db.env, store->index_dir,
                     MDB_NOTLS | MDB_NOSYNC, 0600);
  if (rc != 0)
    {
      mdb_env_close (store->db.env);
      store->db.env = NULL;
      return mh_store__lmdb_error (rc, store->index_dir, error);
    }
  MDB_txn *txn;
  if (mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    return FALSE;
  struct
  {
    const char *name;
    MDB_dbi *dbi;
  } dbs[] = {
    { "meta", &store->db.meta }, { "folders", &store->db.folders },
    { "msgs", &store->db.msgs }, { "names", &store->db.names },
    { "cache", &store->db.cache }, { "tombs", &store->db.tombs },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (dbs); i++)
    if ((rc = mdb_dbi_open (txn, dbs[i].name, MDB_CREATE, dbs[i].dbi)) != 0)
      {
        mdb_txn_abort (txn);
        return mh_store__lmdb_error (rc, dbs[i].name, error);
      }
  guint64 ver = meta_u64 (store, txn, "version");
  if (ver == 1)
    {
      if ((rc = upgrade_v1 (store, txn)) != 0)
        {
          mdb_txn_abort (txn);
          return mh_store__lmdb_error (rc, "upgrade from version 1", error);
        }
      ver = INDEX_VERSION;
      meta_put (store, txn, "version", &ver, sizeof ver);
    }
  if (ver != 0 && ver != INDEX_VERSION)
    {
      mdb_txn_abort (txn);
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_CORRUPT,
                   "index %s has version %" G_GUINT64_FORMAT ", expected %d",
                   store->index_dir, ver, INDEX_VERSION);
      return FALSE;
    }
  if (ver == 0)
    {
      ver = INDEX_VERSION;
      meta_put (store, txn, "version", &ver, sizeof ver);
    }
  if (store->recovered)
    {
      guint64 one = 1;
      meta_put (store, txn, "recovered", &one, sizeof one);
    }
  store->recovered = meta_u64 (store, txn, "recovered") != 0;
  return mh_store__txn_commit (store, txn, error);
}

/* ---- Lazy durability: markers and reservations ----------------------- */

/* Writes @dir/@name so that it survives a power loss before returning:
 * temporary file, fsync, rename, fsync of the directory. */
static gboolean
write_durable (const char *dir, const char *name, const char *data,
               gsize len, GError **error)
{
  g_autofree char *p = g_build_filename (dir, name, NULL);
  g_autofree char *tmp = g_strdup_printf ("%s.tmp-%d", p, (int) getpid ());
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return mh_store__io_error (errno, "create", tmp, error);
  gsize done = 0;
  while (done < len)
    {
      gssize w = write (fd, data + done, len - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        break;
      done += (gsize) w;
    }
  if (done < len || fsync (fd) != 0)
    {
      int e = errno;
      close (fd);
      g_unlink (tmp);
      return mh_store__io_error (e, "write", tmp, error);
    }
  close (fd);
  if (rename (tmp, p) != 0)
    {
      int e = errno;
      g_unlink (tmp);
      return mh_store__io_error (e, "rename", p, error);
    }
  return mh_store__fsync_dir (dir, error);
}

/* The reserve lives in the Maildir, beside dovecot-uidlist, not in the
 * index directory: the index may be lost or deleted as a whole (it is a
 * cache of the Maildir), and the bounds must outlive it, or a rebuilt
 * index would hand out MODSEQs a CONDSTORE client has already seen. */
#define RESERVE_NAME "mailhost-reserve"

static void reserve_read_file (MhStore *store, const char *dir,
                               const char *name);

/* Reads the reserve into the store, keeping the larger of two bounds (the
 * file only grows; another process may have raised it). The copy an
 * older version kept in the index directory still counts. */
static void
reserve_read (MhStore *store)
{
  if (store->uid_bound == NULL)
    store->uid_bound = g_hash_table_new (g_direct_hash, g_direct_equal);
  reserve_read_file (store, store->maildir, RESERVE_NAME);
  reserve_read_file (store, store->index_dir, "reserve");
}

static void
reserve_read_file (MhStore *store, const char *dir, const char *name)
{
  g_autofree char *p = g_build_filename (dir, name, NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (p, &text, NULL, NULL))
    return;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (int i = 0; lines[i]; i++)
    {
      g_auto (GStrv) w = g_strsplit (lines[i], " ", -1);
      guint64 a, b;
      if (g_strcmp0 (w[0], "m") == 0 && w[1]
          && g_ascii_string_to_unsigned (w[1], 10, 0, G_MAXINT64, &a, NULL))
        store->modseq_bound = MAX (store->modseq_bound, a);
      else if (g_strcmp0 (w[0], "u") == 0 && w[1] && w[2]
               && g_ascii_string_to_unsigned (w[1], 10, 1, G_MAXUINT32, &a,
                                              NULL)
               && g_ascii_string_to_unsigned (w[2], 10, 0, G_MAXUINT32, &b,
                                              NULL))
        {
          gpointer k = GUINT_TO_POINTER ((guint) a);
          guint old = GPOINTER_TO_UINT (
            g_hash_table_lookup (store->uid_bound, k));
          g_hash_table_insert (store->uid_bound, k,
                               GUINT_TO_POINTER (MAX (old, (guint) b)));
        }
    }
}

/* The UID bound of @uidvalidity, 0 if none. */
static guint32
reserve_uid (MhStore *store, guint32 uidvalidity)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (
    store->uid_bound, GUINT_TO_POINTER (uidvalidity)));
}

/* Makes sure @f's UIDNEXT and HIGHESTMODSEQ are covered by durable bounds
 * before the txn that carries them commits. Runs inside a write txn, so
 * no other process writes "reserve" meanwhile. */
static gboolean
reserve_cover (MhStore *store, MhStoreFolder *f, GError **error)
{
  if (f->rec.uidnext <= reserve_uid (store, f->rec.uidvalidity)
      && f->rec.highestmodseq < store->modseq_bound)
    return TRUE;
  reserve_read (store); /* another process may have raised them */
  if (f->rec.uidnext <= reserve_uid (store, f->rec.uidvalidity)
      && f->rec.highestmodseq < store->modseq_bound)
    return TRUE;
  guint64 ub = (guint64) f->rec.uidnext + MH_LIMIT_STORE_RESERVE;
  guint32 old = reserve_uid (store, f->rec.uidvalidity);
  guint32 nub = (guint32) MIN (ub, (guint64) G_MAXUINT32);
  guint64 nmb = MAX (store->modseq_bound,
                     f->rec.highestmodseq + 1 + MH_LIMIT_STORE_RESERVE);
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "m %" G_GUINT64_FORMAT "\n", nmb);
  g_string_append_printf (s, "u %u %u\n", f->rec.uidvalidity,
                          MAX (old, nub));
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, store->uid_bound);
  while (g_hash_table_iter_next (&it, &k, &v))
    if (GPOINTER_TO_UINT (k) != f->rec.uidvalidity)
      g_string_append_printf (s, "u %u %u\n", GPOINTER_TO_UINT (k),
                              GPOINTER_TO_UINT (v));
  gboolean ok = write_durable (store->maildir, RESERVE_NAME, s->str, s->len,
                               error);
  g_string_free (s, TRUE);
  if (!ok)
    return FALSE;
  g_hash_table_insert (store->uid_bound,
                       GUINT_TO_POINTER (f->rec.uidvalidity),
                       GUINT_TO_POINTER (MAX (old, nub)));
  store->modseq_bound = nmb;
  return TRUE;
}

/* Looks at the markers of earlier openers. Sets *lost when one was left
 * by another boot (its unsynced commits may be half on disk); collects
 * the markers to remove once ours is durable. */
static void
markers_scan (MhStore *store, const char *boot, gboolean *lost,
              GPtrArray *stale)
{
  GDir *d = g_dir_open (store->index_dir, 0, NULL);
  if (d == NULL)
    return;
  const char *n;
  while ((n = g_dir_read_name (d)) != NULL)
    {
      guint64 pid;
      if (!g_str_has_prefix (n, "dirty.")
          || !g_ascii_string_to_unsigned (n + 6, 10, 1, G_MAXINT, &pid,
                                          NULL))
        continue;
      char *p = g_build_filename (store->index_dir, n, NULL);
      g_autofree char *text = NULL;
      g_autoptr (GError) e = NULL;
      if (!g_file_get_contents (p, &text, NULL, &e)
          && g_error_matches (e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          /* Its process closed the store meanwhile (close takes no
           * lock): synced, nothing to recover. */
          g_free (p);
          continue;
        }
      if (text == NULL || strcmp (g_strstrip (text), boot) != 0)
        {
          /* Another boot (or unreadable: be safe). */
          *lost = TRUE;
          g_ptr_array_add (stale, p);
        }
      else if ((pid_t) pid == getpid ()
               || (kill ((pid_t) pid, 0) != 0 && errno == ESRCH))
        g_ptr_array_add (stale, p); /* killed in this boot: nothing lost */
      else
        g_free (p);
    }
  g_dir_close (d);
}

/* Under the recover.lock flock: recovery decision, our marker, env. */
static gboolean
db_open_locked (MhStore *store, GError **error)
{
  g_autofree char *boot = read_boot_id ();
  g_autoptr (GPtrArray) stale = g_ptr_array_new_with_free_func (g_free);
  gboolean lost = FALSE;
  markers_scan (store, boot, &lost, stale);
  g_autofree char *data = g_build_filename (store->index_dir, "data.mdb",
                                            NULL);
  g_autofree char *lock = g_build_filename (store->index_dir, "lock.mdb",
                                            NULL);
  if (lost && g_file_test (data, G_FILE_TEST_EXISTS))
    {
      g_autofree char *aside = g_strconcat (data, ".unsynced", NULL);
      mh_log_warning ("store", NULL, NULL, "%s: the system stopped before "
                      "the index was synced; moving it to %s and rebuilding "
                      "from the Maildir", store->index_dir, aside);
      if (g_rename (data, aside) != 0)
        return mh_store__io_error (errno, "rename", data, error);
      g_unlink (lock);
      store->recovered = TRUE;
    }
  g_autofree char *mark = g_strdup_printf ("%s\n", boot);
  g_autofree char *mname = g_strdup_printf ("dirty.%d", (int) getpid ());
  if (!write_durable (store->index_dir, mname, mark, strlen (mark), error))
    return FALSE;
  store->marker = g_build_filename (store->index_dir, mname, NULL);
  /* Only now that ours is durable may the old markers go: a second crash
   * during the rebuild still finds one. */
  for (guint i = 0; i < stale->len; i++)
    if (strcmp (stale->pdata[i], store->marker) != 0)
      g_unlink (stale->pdata[i]);
  reserve_read (store);
  if (!store->recovered && !g_file_test (data, G_FILE_TEST_EXISTS)
      && (store->modseq_bound > 0 || g_hash_table_size (store->uid_bound) > 0))
    {
      /* No index, but the Maildir's reserve says one handed out UIDs and
       * MODSEQs before: it was deleted or lost. Rebuild as after a crash,
       * above those bounds. */
      mh_log_warning ("store", NULL, NULL, "%s: no index for a Maildir that "
                      "had one; rebuilding it above the UIDs and MODSEQs "
                      "handed out before", store->index_dir);
      store->recovered = TRUE;
    }

  g_autoptr (GError) local = NULL;
  if (open_env (store, &local))
    return TRUE;
  if (!g_error_matches (local, MH_STORE_ERROR, MH_STORE_ERROR_CORRUPT))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  /* The Maildir is the truth: move the broken index aside, rebuild. */
  mh_log_warning ("store", NULL, NULL, "%s; moving it aside and rebuilding "
                  "from the Maildir", local->message);
  g_autofree char *aside = g_strdup_printf ("%s.corrupt-%" G_GINT64_FORMAT,
                                            data, g_get_real_time ());
  if (g_rename (data, aside) != 0)
    return mh_store__io_error (errno, "rename", data, error);
  g_unlink (lock);
  store->recovered = TRUE;
  return open_env (store, error);
}

gboolean
mh_store__db_open (MhStore *store, GError **error)
{
  if (g_mkdir_with_parents (store->index_dir, 0700) != 0)
    return mh_store__io_error (errno, "mkdir", store->index_dir, error);
  /* One opener at a time decides about recovery. */
  g_autofree char *lp = g_build_filename (store->index_dir, "recover.lock",
                                          NULL);
  int lfd = open (lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lfd < 0)
    return mh_store__io_error (errno, "open", lp, error);
  while (flock (lfd, LOCK_EX) != 0)
    if (errno != EINTR)
      {
        int e = errno;
        close (lfd);
        return mh_store__io_error (e, "lock", lp, error);
      }
  gboolean ok = db_open_locked (store, error);
  close (lfd); /* releases the flock */
  return ok;
}

void
mh_store__db_close (MhStore *store)
{
  int rc = 0;
  if (store->db.env)
    {
      /* The one point where this process's commits become durable; only
       * then may the marker go. */
      rc = mdb_env_sync (store->db.env, 1);
      mdb_env_close (store->db.env);
      store->db.env = NULL;
    }
  if (rc != 0)
    mh_log_warning ("store", NULL, NULL, "%s: sync: %s; keeping %s",
                    store->index_dir, mdb_strerror (rc), store->marker);
  else if (store->marker)
    g_unlink (store->marker);
  g_clear_pointer (&store->marker, g_free);
  g_clear_pointer (&store->uid_bound, g_hash_table_unref);
}

/* ---- Folders ---------------------------------------------------------- */

void
mh_store__folder_free (MhStoreFolder *f)
{
  if (f == NULL)
    return;
  g_free (f->name);
  g_ptr_array_unref (f->keywords);
  g_free (f);
}

char *
mh_store__folder_path (MhStore *store, const char *name, GError **error)
{
  g_autofree char *d = mh_store__folder_dirname (name, error);
  if (d == NULL)
    return NULL;
  return *d ? g_build_filename (store->maildir, d, NULL)
            : g_strdup (store->maildir);
}

gboolean
mh_store__folder_mkdirs (MhStore *store, const char *name, GError **error)
{
  g_autofree char *path = mh_store__folder_path (store, name, error);
  if (path == NULL)
    return FALSE;
  const char *subs[] = { "tmp", "new", "cur" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *s = g_build_filename (path, subs[i], NULL);
      if (g_mkdir_with_parents (s, 0700) != 0)
        return mh_store__io_error (errno, "mkdir", s, error);
    }
  if (strcmp (mh_store__canon (name), "INBOX") != 0)
    {
      /* Maildir++: marks a folder for MDAs such as maildrop. */
      g_autofree char *mf = g_build_filename (path, "maildirfolder", NULL);
      int fd = open (mf, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      if (fd >= 0)
        close (fd);
    }
  return TRUE;
}

/* Reads dovecot-keywords ("<idx> <name>" lines) into @kws. */
static void
keywords_read (const char *dir, GPtrArray *kws)
{
  g_autofree char *p = g_build_filename (dir, "dovecot-keywords", NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (p, &text, NULL, NULL))
    return;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (int i = 0; lines[i]; i++)
    {
      char *sp = strchr (lines[i], ' ');
      if (sp == NULL)
        continue;
      *sp = '\0';
      guint64 idx;
      if (!g_ascii_string_to_unsigned (lines[i], 10, 0,
                                       MH_LIMIT_STORE_KEYWORDS_MAX - 1, &idx,
                                       NULL)
          || !mh_store__keyword_valid (sp + 1, NULL))
        continue;
      while (kws->len <= idx)
        g_ptr_array_add (kws, NULL);
      g_free (kws->pdata[idx]);
      kws->pdata[idx] = g_strdup (sp + 1);
    }
}

static gboolean
keywords_write (const char *dir, GPtrArray *kws, GError **error)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < kws->len; i++)
    if (kws->pdata[i])
      g_string_append_printf (s, "%u %s\n", i, (char *) kws->pdata[i]);
  g_autofree char *p = g_build_filename (dir, "dovecot-keywords", NULL);
  gboolean ok = g_file_set_contents (p, s->str, (gssize) s->len, NULL);
  g_string_free (s, TRUE);
  if (!ok)
    return mh_store__io_error (errno, "write", p, error);
  return TRUE;
}

MhStoreFolder *
mh_store__folder_load (MhStore *store, MDB_txn *txn, const char *name,
                       gboolean create, GError **error)
{
  name = mh_store__canon (name);
  MDB_val k = { strlen (name), (void *) name }, v;
  g_autoptr (MhStoreFolder) f = g_new0 (MhStoreFolder, 1);
  f->name = g_strdup (name);
  f->keywords = g_ptr_array_new_with_free_func (g_free);
  int rc = mdb_get (txn, store->db.folders, &k, &v);
  if (rc == 0)
    {
      if (v.mv_size < sizeof (FolderRec))
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_CORRUPT,
                       "index: folder record of '%s' is truncated", name);
          return NULL;
        }
      memcpy (&f->rec, v.mv_data, sizeof (FolderRec));
      const char *p = (const char *) v.mv_data + sizeof (FolderRec);
      const char *end = (const char *) v.mv_data + v.mv_size;
      for (guint i = 0; i < f->rec.n_keywords && p < end; i++)
        {
          gsize l = strnlen (p, (gsize) (end - p));
          g_ptr_array_add (f->keywords, l ? g_strndup (p, l) : NULL);
          p += l + 1;
        }
      return g_steal_pointer (&f);
    }
  if (rc != MDB_NOTFOUND)
    {
      mh_store__lmdb_error (rc, name, error);
      return NULL;
    }
  if (!create)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                   "no folder '%s' in the index", name);
      return NULL;
    }
  guint64 fid = meta_u64 (store, txn, "next_fid") + 1;
  meta_put (store, txn, "next_fid", &fid, sizeof fid);
  guint64 last_uv = meta_u64 (store, txn, "uidvalidity_last");
  guint64 uv = MAX ((guint64) (g_get_real_time () / G_USEC_PER_SEC),
                    last_uv + 1);
  meta_put (store, txn, "uidvalidity_last", &uv, sizeof uv);
  f->rec.id = (guint32) fid;
  f->rec.uidvalidity = (guint32) uv;
  f->rec.uidnext = 1;
  f->rec.first_recent_uid = 1;
  /* After a rebuild MODSEQs restart above any earlier value. */
  f->rec.highestmodseq = MAX (1, meta_u64 (store, txn, "modseq_base"));
  return g_steal_pointer (&f);
}

gboolean
mh_store__folder_save (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                       GError **error)
{
  if (!reserve_cover (store, f, error))
    return FALSE;
  GByteArray *b = g_byte_array_new ();
  f->rec.n_keywords = f->keywords->len;
  g_byte_array_append (b, (const guint8 *) &f->rec, sizeof f->rec);
  for (guint i = 0; i < f->keywords->len; i++)
    {
      const char *kw = f->keywords->pdata[i] ? f->keywords->pdata[i] : "";
      g_byte_array_append (b, (const guint8 *) kw, strlen (kw) + 1);
    }
  MDB_val k = { strlen (f->name), f->name }, v = { b->len, b->data };
  int rc = mdb_put (txn, store->db.folders, &k, &v, 0);
  g_byte_array_unref (b);
  if (rc != 0)
    return mh_store__lmdb_error (rc, "folder", error);
  return TRUE;
}

int
mh_store__keyword_index (MhStore *store, MhStoreFolder *f, const char *kw,
                         gboolean add, GError **error)
{
  for (guint i = 0; i < f->keywords->len; i++)
    if (f->keywords->pdata[i]
        && g_ascii_strcasecmp (f->keywords->pdata[i], kw) == 0)
      return (int) i;
  if (!add)
    return -1;
  if (!mh_store__keyword_valid (kw, error))
    return -1;
  guint slot = f->keywords->len;
  for (guint i = 0; i < f->keywords->len; i++)
    if (f->keywords->pdata[i] == NULL)
      {
        slot = i;
        break;
      }
  if (slot >= MH_LIMIT_STORE_KEYWORDS_MAX)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_LIMIT,
                   "folder '%s' already has %d keywords (Maildir letters "
                   "a-z); '%s' cannot be added", f->name,
                   MH_LIMIT_STORE_KEYWORDS_MAX, kw);
      return -1;
    }
  if (slot == f->keywords->len)
    g_ptr_array_add (f->keywords, g_strdup (kw));
  else
    f->keywords->pdata[slot] = g_strdup (kw);
  g_autofree char *dir = mh_store__folder_path (store, f->name, error);
  if (dir == NULL || !keywords_write (dir, f->keywords, error))
    return -1;
  return (int) slot;
}

gboolean
mh_store__keywords_bits (MhStore *store, MhStoreFolder *f,
                         const char *const *kws, gboolean add,
                         guint32 *bits_out, GError **error)
{
  guint32 bits = 0;
  for (int i = 0; kws && kws[i]; i++)
    {
      if (!mh_store__keyword_valid (kws[i], error))
        return FALSE;
      GError *e = NULL;
      int idx = mh_store__keyword_index (store, f, kws[i], add, &e);
      if (e != NULL)
        {
          g_propagate_error (error, e);
          return FALSE;
        }
      if (idx >= 0)
        bits |= 1u << idx;
    }
  *bits_out = bits;
  return TRUE;
}

/* ---- Metadata cache records ------------------------------------------- */

/* A record is CACHE_MAGIC, the meta.c version that computed it (32 bits,
 * little-endian), then the GVariant. Records written before versions
 * existed are the bare GVariant, whose first 8 bytes are the header size:
 * read as that, "MHCV" plus a version is a header of gigabytes, which no
 * message has, so the two never mix up. */
#define CACHE_MAGIC "MHCV"
#define CACHE_HDR 8

int
mh_store__cache_put (MhStore *store, MDB_txn *txn, guint32 fid,
                     guint32 uid, GVariant *cache)
{
  guint8 key[8];
  mh_store__key_fid_uid (key, fid, uid);
  gsize n = g_variant_get_size (cache);
  g_autofree guint8 *buf = g_malloc (CACHE_HDR + n);
  guint32 ver = GUINT32_TO_LE (MH_STORE_META_VERSION);
  memcpy (buf, CACHE_MAGIC, 4);
  memcpy (buf + 4, &ver, 4);
  memcpy (buf + CACHE_HDR, g_variant_get_data (cache), n);
  MDB_val ck = { 8, key }, cv = { CACHE_HDR + n, buf };
  return mdb_put (txn, store->db.cache, &ck, &cv, 0);
}

GVariant *
mh_store__cache_get (MhStore *store, MDB_txn *txn, guint32 fid, guint32 uid,
                     gboolean *current_out)
{
  guint8 key[8];
  mh_store__key_fid_uid (key, fid, uid);
  MDB_val ck = { 8, key }, cv;
  *current_out = FALSE;
  if (mdb_get (txn, store->db.cache, &ck, &cv) != 0)
    return NULL;
  const guint8 *p = cv.mv_data;
  gsize n = cv.mv_size;
  if (n >= CACHE_HDR && memcmp (p, CACHE_MAGIC, 4) == 0)
    {
      guint32 ver;
      memcpy (&ver, p + 4, 4);
      *current_out = GUINT32_FROM_LE (ver) == MH_STORE_META_VERSION;
      p += CACHE_HDR;
      n -= CACHE_HDR;
    }
  /* Copied: LMDB memory lives only as long as the txn (and is only
   * 2-byte aligned). */
  g_autoptr (GBytes) b = g_bytes_new (p, n);
  return g_variant_ref_sink (g_variant_new_from_bytes (
    G_VARIANT_TYPE ("(tsssa(ss)a(sttt))"), b, FALSE));
}

typedef struct
{
  guint32 fid, uid;
  GVariant *cache;
} Stale;

static void
stale_free (gpointer p)
{
  Stale *s = p;
  g_variant_unref (s->cache);
  g_free (s);
}

void
mh_store__cache_flush (MhStore *store)
{
  g_mutex_lock (&store->stale_lock);
  GPtrArray *a = g_steal_pointer (&store->stale);
  g_mutex_unlock (&store->stale_lock);
  if (a == NULL)
    return;
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  g_autoptr (GError) e = NULL;
  gboolean ok = mh_store__txn_begin (store, TRUE, &txn, &e) == 0;
  for (guint i = 0; ok && i < a->len; i++)
    {
      Stale *s = a->pdata[i];
      guint8 key[8];
      mh_store__key_fid_uid (key, s->fid, s->uid);
      MDB_val k = { 8, key }, v;
      /* Expunged meanwhile: no record to revive. */
      if (mdb_get (txn, store->db.msgs, &k, &v) != 0)
        continue;
      int rc = mh_store__cache_put (store, txn, s->fid, s->uid, s->cache);
      if (rc != 0)
        {
          ok = mh_store__lmdb_error (rc, "update cache", &e);
          mdb_txn_abort (txn);
        }
    }
  if (ok)
    ok = mh_store__txn_commit (store, txn, &e);
  g_mutex_unlock (&store->write_lock);
  if (!ok)
    mh_log_warning ("store", NULL, NULL, "%s: cannot keep %u recomputed "
                    "cache records: %s (they are recomputed again when "
                    "read)", store->index_dir, a->len, e->message);
  g_ptr_array_unref (a);
}

void
mh_store__cache_stale (MhStore *store, guint32 fid, guint32 uid,
                       GVariant *cache)
{
  Stale *s = g_new (Stale, 1);
  s->fid = fid;
  s->uid = uid;
  s->cache = g_variant_ref (cache);
  g_mutex_lock (&store->stale_lock);
  if (store->stale == NULL)
    store->stale = g_ptr_array_new_with_free_func (stale_free);
  g_ptr_array_add (store->stale, s);
  gboolean full = store->stale->len >= MH_STORE_STALE_BATCH;
  g_mutex_unlock (&store->stale_lock);
  if (full)
    mh_store__cache_flush (store);
}

/* ---- Messages --------------------------------------------------------- */

gboolean
mh_store__msg_get (MhStore *store, MDB_txn *txn, guint32 fid, guint32 uid,
                   MsgRec *rec_out, char **name_out)
{
  guint8 key[8];
  mh_store__key_fid_uid (key, fid, uid);
  MDB_val k = { 8, key }, v;
  if (mdb_get (txn, store->db.msgs, &k, &v) != 0
      || v.mv_size < sizeof (MsgRec))
    return FALSE;
  memcpy (rec_out, v.mv_data, sizeof (MsgRec));
  if (sizeof (MsgRec) + rec_out->name_len > v.mv_size)
    return FALSE;
  if (name_out)
    *name_out = g_strndup ((const char *) v.mv_data + sizeof (MsgRec),
                           rec_out->name_len);
  return TRUE;
}

static void
counters (MhStoreFolder *f, const MsgRec *r, int sign)
{
  f->rec.messages += sign;
  f->rec.size += sign * (gint64) r->size;
  if (!(r->flags & MH_STORE_FLAG_SEEN))
    f->rec.unseen += sign;
  if (r->flags & MH_STORE_FLAG_DELETED)
    f->rec.deleted += sign;
  if (r->in_new)
    f->rec.in_new += sign;
}

static int
put_rec (MhStore *store, MDB_txn *txn, guint32 fid, guint32 uid,
         const MsgRec *rec, const char *filename)
{
  guint8 key[8];
  mh_store__key_fid_uid (key, fid, uid);
  gsize nl = strlen (filename);
  g_autofree guint8 *buf = g_malloc (sizeof (MsgRec) + nl);
  MsgRec r = *rec;
  r.name_len = (guint32) nl;
  memcpy (buf, &r, sizeof r);
  memcpy (buf + sizeof r, filename, nl);
  MDB_val k = { 8, key }, v = { sizeof r + nl, buf };
  return mdb_put (txn, store->db.msgs, &k, &v, 0);
}

static int
name_key (guint8 **out, guint32 fid, const char *filename)
{
  gsize bl = mh_store__base_len (filename);
  *out = g_malloc (4 + bl);
  (*out)[0] = fid >> 24;
  (*out)[1] = fid >> 16;
  (*out)[2] = fid >> 8;
  (*out)[3] = fid;
  memcpy (*out + 4, filename, bl);
  return (int) (4 + bl);
}

gboolean
mh_store__msg_add (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                   const char *filename, gboolean in_new, guint64 size,
                   guint64 vsize, gint64 idate, gint64 saved, guint32 flags,
                   guint32 kwbits, GVariant *cache, guint32 *uid_inout,
                   GError **error)
{
  guint32 uid = *uid_inout;
  if (uid == 0)
    uid = f->rec.uidnext;
  if (uid >= f->rec.uidnext)
    f->rec.uidnext = uid + 1;
  MsgRec r = { 0 };
  r.modseq = ++f->rec.highestmodseq;
  r.size = size;
  r.vsize = vsize;
  r.internal_date = idate;
  r.saved_date = saved;
  r.flags = flags;
  r.kwbits = kwbits;
  r.in_new = in_new;
  int rc = put_rec (store, txn, f->rec.id, uid, &r, filename);
  if (rc != 0)
    return mh_store__lmdb_error (rc, "add message", error);
  g_autofree guint8 *nk = NULL;
  int nkl = name_key (&nk, f->rec.id, filename);
  MDB_val k = { (gsize) nkl, nk }, v = { 4, &uid };
  if ((rc = mdb_put (txn, store->db.names, &k, &v, 0)) != 0)
    return mh_store__lmdb_error (rc, "add name", error);
  if (cache && (rc = mh_store__cache_put (store, txn, f->rec.id, uid,
                                          cache)) != 0)
    return mh_store__lmdb_error (rc, "add cache", error);
  counters (f, &r, 1);
  *uid_inout = uid;
  return TRUE;
}

gboolean
mh_store__msg_put (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                   guint32 uid, const MsgRec *old, const MsgRec *rec,
                   const char *filename, GError **error)
{
  int rc = put_rec (store, txn, f->rec.id, uid, rec, filename);
  if (rc != 0)
    return mh_store__lmdb_error (rc, "update message", error);
  counters (f, old, -1);
  counters (f, rec, 1);
  return TRUE;
}

gboolean
mh_store__msg_remove (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                      guint32 uid, const MsgRec *rec, GError **error)
{
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, uid);
  MDB_val k = { 8, key }, v;
  if (mdb_get (txn, store->db.msgs, &k, &v) == 0
      && v.mv_size >= sizeof (MsgRec))
    {
      g_autofree char *fn = g_strndup ((const char *) v.mv_data
                                         + sizeof (MsgRec),
                                       v.mv_size - sizeof (MsgRec));
      g_autofree guint8 *nk = NULL;
      int nkl = name_key (&nk, f->rec.id, fn);
      MDB_val n = { (gsize) nkl, nk };
      mdb_del (txn, store->db.names, &n, NULL);
    }
  mdb_del (txn, store->db.msgs, &k, NULL);
  mdb_del (txn, store->db.cache, &k, NULL);
  guint64 ms = ++f->rec.highestmodseq;
  guint8 tk[12];
  memcpy (tk, key, 4);
  for (int i = 0; i < 8; i++)
    tk[4 + i] = (guint8) (ms >> (56 - 8 * i));
  MDB_val tkv = { 12, tk }, tv = { 4, &uid };
  int rc = mdb_put (txn, store->db.tombs, &tkv, &tv, 0);
  if (rc != 0)
    return mh_store__lmdb_error (rc, "tombstone", error);
  counters (f, rec, -1);
  return TRUE;
}

/* ---- dovecot-uidlist -------------------------------------------------- */

typedef struct
{
  guint32 uidvalidity;
  guint32 next_uid;
  GHashTable *uids; /* base name → GUINT_TO_POINTER (uid) */
} Uidlist;

static void
uidlist_clear (Uidlist *u)
{
  g_clear_pointer (&u->uids, g_hash_table_unref);
}

/* Parses version 1 and 3 files. FALSE if absent or unreadable. */
static gboolean
uidlist_read (const char *dir, Uidlist *u, struct stat *st_out)
{
  g_autofree char *p = g_build_filename (dir, "dovecot-uidlist", NULL);
  g_autofree char *text = NULL;
  gsize len;
  memset (u, 0, sizeof *u);
  if (stat (p, st_out) != 0 || !g_file_get_contents (p, &text, &len, NULL))
    return FALSE;
  u->uids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  char *save = NULL;
  char *line = strtok_r (text, "\n", &save);
  if (line == NULL)
    return TRUE;
  g_auto (GStrv) hdr = g_strsplit (line, " ", -1);
  gboolean v3 = g_strcmp0 (hdr[0], "3") == 0;
  if (v3)
    for (int i = 1; hdr[i]; i++)
      {
        guint64 x;
        if (hdr[i][0] == 'V'
            && g_ascii_string_to_unsigned (hdr[i] + 1, 10, 1, G_MAXUINT32,
                                           &x, NULL))
          u->uidvalidity = (guint32) x;
        else if (hdr[i][0] == 'N'
                 && g_ascii_string_to_unsigned (hdr[i] + 1, 10, 1,
                                                G_MAXUINT32, &x, NULL))
          u->next_uid = (guint32) x;
      }
  else if (g_strcmp0 (hdr[0], "1") == 0 && hdr[1] && hdr[2])
    {
      u->uidvalidity = (guint32) g_ascii_strtoull (hdr[1], NULL, 10);
      u->next_uid = (guint32) g_ascii_strtoull (hdr[2], NULL, 10);
    }
  else
    return TRUE; /* unknown version: ignored, UIDs are reassigned */
  while ((line = strtok_r (NULL, "\n", &save)) != NULL)
    {
      char *end = NULL;
      guint64 uid = g_ascii_strtoull (line, &end, 10);
      if (end == line || uid == 0 || uid >= G_MAXUINT32)
        continue;
      const char *name = NULL;
      if (v3)
        {
          name = strstr (end, " :");
          if (name)
            name += 2;
        }
      else if (*end == ' ')
        name = end + 1;
      if (name == NULL || *name == '\0')
        continue;
      g_hash_table_replace (u->uids,
                            g_strndup (name, mh_store__base_len (name)),
                            GUINT_TO_POINTER ((guint) uid));
      if (uid >= u->next_uid)
        u->next_uid = (guint32) uid + 1;
    }
  return TRUE;
}

/* Dovecot's dotlock: dovecot-uidlist.lock, stale after 2 minutes.
 * We only take it inside an LMDB write txn, which already excludes every
 * other mailhost process on this account: a lock file of ours (content
 * "mailhost <pid>") found then was left by a crashed process and is
 * removed at once; Dovecot's locks are waited for. */
static int
uidlist_lock (MhStore *store, const char *dir, char **lock_path_out,
              GError **error)
{
  char *lp = g_build_filename (dir, "dovecot-uidlist.lock", NULL);
  /* The lock is a hard link to a file made once per store with its
   * content (as Dovecot's dotlock links a temporary file): ours is never
   * seen empty, even after a crash, and taking it costs one link(). */
  if (store->lock_tmp == NULL)
    {
      char *tp = g_strdup_printf ("%s/mailhost-lock-%d-%p", store->maildir,
                                  (int) getpid (), (void *) store);
      g_autofree char *mark = g_strdup_printf ("mailhost %d\n",
                                               (int) getpid ());
      int tfd = open (tp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (tfd < 0
          || write (tfd, mark, strlen (mark)) != (gssize) strlen (mark))
        {
          mh_store__io_error (errno, "create", tp, error);
          if (tfd >= 0)
            close (tfd);
          g_free (tp);
          g_free (lp);
          return -1;
        }
      close (tfd);
      store->lock_tmp = tp;
    }
  for (int tries = 0; tries < 2000; tries++)
    {
      if (link (store->lock_tmp, lp) == 0)
        {
          *lock_path_out = lp;
          return 0;
        }
      if (errno != EEXIST)
        {
          mh_store__io_error (errno, "link", lp, error);
          g_free (lp);
          return -1;
        }
      g_autofree char *content = NULL;
      struct stat st;
      if (g_file_get_contents (lp, &content, NULL, NULL)
          && g_str_has_prefix (content, "mailhost "))
        g_unlink (lp);
      else if (stat (lp, &st) == 0 && time (NULL) - st.st_mtime > 120)
        g_unlink (lp);
      else
        g_usleep (5000);
    }
  g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_BUSY,
               "%s is held by another process for too long", lp);
  g_free (lp);
  return -1;
}

gboolean
mh_store__uidlist_append (MhStore *store, const char *dir, MhStoreFolder *f,
                          const guint32 *uids, char *const *bases, guint n,
                          GError **error)
{
  g_autofree char *lp = NULL;
  if (uidlist_lock (store, dir, &lp, error) < 0)
    return FALSE;
  g_autofree char *p = g_build_filename (dir, "dovecot-uidlist", NULL);
  GString *s = g_string_new (NULL);
  struct stat st;
  int fd = open (p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      g_unlink (lp);
      g_string_free (s, TRUE);
      return mh_store__io_error (errno, "open", p, error);
    }
  if (fstat (fd, &st) != 0 || st.st_size == 0)
    {
      guint8 guid[16];
      for (int i = 0; i < 16; i++)
        guid[i] = (guint8) g_random_int ();
      g_string_append_printf (s, "3 V%u N%u G", f->rec.uidvalidity,
                              uids && n ? uids[0] : f->rec.uidnext);
      for (int i = 0; i < 16; i++)
        g_string_append_printf (s, "%02x", guid[i]);
      g_string_append_c (s, '\n');
    }
  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, "%u :%s\n", uids[i], bases[i]);
  gboolean ok = TRUE;
  if (write (fd, s->str, s->len) != (gssize) s->len)
    ok = mh_store__io_error (errno, "append", p, error);
  fstat (fd, &st);
  close (fd);
  if (ok)
    {
      f->rec.uidlist_size = st.st_size;
      f->rec.uidlist_mtime = mtime_ns (&st);
    }
  g_unlink (lp);
  g_string_free (s, TRUE);
  return ok;
}

gboolean
mh_store__uidlist_rewrite (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                           GError **error)
{
  g_autofree char *dir = mh_store__folder_path (store, f->name, error);
  if (dir == NULL)
    return FALSE;
  g_autofree char *lp = NULL;
  /* The lock says it is ours (see uidlist_lock); the new content goes
   * to a temporary file renamed over the old one. */
  if (uidlist_lock (store, dir, &lp, error) < 0)
    return FALSE;
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "3 V%u N%u G", f->rec.uidvalidity,
                          f->rec.uidnext);
  for (int i = 0; i < 16; i++)
    g_string_append_printf (s, "%02x", (guint) g_random_int_range (0, 256));
  g_string_append_c (s, '\n');
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, 0);
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.msgs, &c);
  MDB_val k = { 8, key }, v;
  int rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == 8 && memcmp (k.mv_data, key, 4) == 0)
    {
      if (v.mv_size >= sizeof (MsgRec))
        {
          MsgRec r;
          memcpy (&r, v.mv_data, sizeof r);
          const char *fn = (const char *) v.mv_data + sizeof (MsgRec);
          gsize bl = mh_store__base_len_n (fn, MIN (r.name_len,
                                                    v.mv_size
                                                      - sizeof (MsgRec)));
          g_string_append_printf (s, "%u :%.*s\n",
                                  mh_store__be32 ((guint8 *) k.mv_data + 4),
                                  (int) bl, fn);
        }
      rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (c);
  g_autofree char *p = g_build_filename (dir, "dovecot-uidlist", NULL);
  g_autofree char *tmp = g_strdup_printf ("%s.tmp-%d", p, (int) getpid ());
  gboolean ok = g_file_set_contents (tmp, s->str, (gssize) s->len, NULL);
  if (!ok)
    mh_store__io_error (errno, "write", tmp, error);
  if (ok && g_rename (tmp, p) != 0)
    ok = mh_store__io_error (errno, "rename", tmp, error);
  if (!ok)
    g_unlink (tmp);
  g_unlink (lp);
  struct stat st;
  if (ok && stat (p, &st) == 0)
    {
      f->rec.uidlist_size = st.st_size;
      f->rec.uidlist_mtime = mtime_ns (&st);
    }
  g_string_free (s, TRUE);
  return ok;
}

/* ---- Reconciliation --------------------------------------------------- */

typedef struct
{
  char *filename;
  gboolean in_new;
} Found;

static void
found_free (gpointer p)
{
  Found *f = p;
  g_free (f->filename);
  g_free (f);
}

static gboolean
scan_dir (MhStore *store, const char *dir, gboolean in_new,
          GHashTable *found, GError **error)
{
  g_atomic_int_inc (&store->n_scans);
  DIR *d = opendir (dir);
  if (d == NULL)
    return mh_store__io_error (errno, "open", dir, error);
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    {
      if (e->d_name[0] == '.')
        continue;
      Found *f = g_new (Found, 1);
      f->filename = g_strdup (e->d_name);
      f->in_new = in_new;
      g_hash_table_replace (found, g_strndup (e->d_name,
                                              mh_store__base_len (e->d_name)),
                            f);
    }
  closedir (d);
  return TRUE;
}

/* An mtime is trusted (recorded) only once the clock has left its tick:
 * a change made later in the same tick would leave it unchanged. File
 * systems with whole-second stamps (nanoseconds 0) get 2 s; ns stamps
 * come from the kernel's coarse clock (a jiffy, at most 10 ms): 20 ms. */
static gint64
trusted (gint64 m, gint64 scan_start)
{
  gint64 window = m % 1000000000 == 0 ? MTIME_TRUST_NS : 20000000;
  return scan_start - m > window ? m : 0;
}

static gint
cmp_names (gconstpointer a, gconstpointer b)
{
  const Found *x = *(Found *const *) a, *y = *(Found *const *) b;
  /* Maildir names start with the delivery time: numeric order first. */
  guint64 tx = g_ascii_strtoull (x->filename, NULL, 10);
  guint64 ty = g_ascii_strtoull (y->filename, NULL, 10);
  if (tx != ty)
    return tx < ty ? -1 : 1;
  return strcmp (x->filename, y->filename);
}

static gboolean
add_found (MhStore *store, MDB_txn *txn, MhStoreFolder *f, const char *dir,
           Found *fd, guint32 uid, GError **error)
{
  g_autofree char *path = g_build_filename (dir, fd->in_new ? "new" : "cur",
                                            fd->filename, NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  struct stat st;
  if (stat (path, &st) != 0 || !g_file_get_contents (path, &data, &len, NULL))
    return TRUE; /* vanished meanwhile: nothing to add */
  guint32 fl, kw;
  mh_store__parse_info (fd->filename, &fl, &kw);
  /* Keyword letters with no name in dovecot-keywords are dropped. */
  guint32 known = 0;
  for (guint i = 0; i < f->keywords->len && i < 26; i++)
    if (f->keywords->pdata[i])
      known |= 1u << i;
  g_autoptr (GVariant) cache = mh_store__meta_compute (data, len);
  return mh_store__msg_add (store, txn, f, fd->filename, fd->in_new, len,
                            mh_store__rfc822_size (data, len), st.st_mtime,
                            st.st_mtime, fl, kw & known, cache, &uid, error);
}

/* The heart of reconciliation; runs inside a write txn. */
static gboolean
sync_locked (MhStore *store, MDB_txn *txn, const char *name,
             gboolean force, gboolean *changed, gboolean *usage_changed,
             GError **error)
{
  g_autofree char *dir = mh_store__folder_path (store, name, error);
  if (dir == NULL)
    return FALSE;
  g_autofree char *newd = g_build_filename (dir, "new", NULL);
  g_autofree char *curd = g_build_filename (dir, "cur", NULL);
  struct stat sn, sc, su;
  gint64 scan_start = mh_store__now_ns ();
  if (stat (newd, &sn) != 0 || stat (curd, &sc) != 0)
    {
      int e = errno;
      if (e == ENOENT)
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                       "no folder '%s' (%s has no new/ and cur/)", name,
                       dir);
          return FALSE;
        }
      return mh_store__io_error (e, "stat", dir, error);
    }
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (store, txn, name,
                                                       TRUE, error);
  if (f == NULL)
    return FALSE;
  Uidlist ul;
  gboolean have_ul = uidlist_read (dir, &ul, &su);
  gboolean fresh = f->rec.messages == 0 && f->rec.uidnext == 1;
  guint32 messages0 = f->rec.messages;
  guint64 size0 = f->rec.size;
  gboolean ul_changed = have_ul && (f->rec.uidlist_mtime == 0
                                    || f->rec.uidlist_mtime != mtime_ns (&su)
                                    || f->rec.uidlist_size != su.st_size);
  gboolean scan_new = force || f->rec.new_mtime != mtime_ns (&sn);
  gboolean scan_cur = force || f->rec.cur_mtime != mtime_ns (&sc);
  if (!scan_new && !scan_cur && !ul_changed)
    {
      uidlist_clear (&ul);
      return TRUE;
    }
  *changed = TRUE;
  if (have_ul && ul.uidvalidity != 0 && ul.uidvalidity != f->rec.uidvalidity)
    {
      if (!fresh)
        {
          /* Another program reset UIDVALIDITY: its UIDs win, ours go. */
          mh_log_notice ("store", NULL, NULL, "%s: UIDVALIDITY changed "
                         "on disk (%u -> %u), reloading", dir,
                         f->rec.uidvalidity, ul.uidvalidity);
          guint8 key[8];
          mh_store__key_fid_uid (key, f->rec.id, 0);
          MDB_cursor *c;
          mdb_cursor_open (txn, store->db.msgs, &c);
          MDB_val k = { 8, key }, v;
          GArray *dead = g_array_new (FALSE, FALSE, sizeof (guint32));
          int rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
          while (rc == 0 && memcmp (k.mv_data, key, 4) == 0)
            {
              guint32 u = mh_store__be32 ((guint8 *) k.mv_data + 4);
              g_array_append_val (dead, u);
              rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
            }
          mdb_cursor_close (c);
          for (guint i = 0; i < dead->len; i++)
            {
              MsgRec r;
              guint32 u = g_array_index (dead, guint32, i);
              if (mh_store__msg_get (store, txn, f->rec.id, u, &r, NULL))
                mh_store__msg_remove (store, txn, f, u, &r, NULL);
            }
          g_array_unref (dead);
          f->rec.uidnext = 1;
        }
      f->rec.uidvalidity = ul.uidvalidity;
      scan_new = scan_cur = TRUE;
    }
  if (have_ul && ul.next_uid > f->rec.uidnext)
    f->rec.uidnext = ul.next_uid;
  if (fresh && store->recovered && reserve_uid (store, f->rec.uidvalidity))
    {
      /* Rebuilt after a crash that lost unsynced index commits and
       * uidlist lines, or after the index directory was deleted: start
       * above everything handed out before (UID gaps are legal, reuse
       * and a HIGHESTMODSEQ going back are not: RFC 9051 2.3.1.1, RFC
       * 7162 3.1). */
      f->rec.uidnext = MAX (f->rec.uidnext,
                            reserve_uid (store, f->rec.uidvalidity));
      if (store->modseq_bound > 0)
        f->rec.highestmodseq = MAX (f->rec.highestmodseq,
                                    store->modseq_bound - 1);
    }
  /* Keywords: the file is the truth for the names it has. */
  g_autoptr (GPtrArray) kws = g_ptr_array_new_with_free_func (g_free);
  keywords_read (dir, kws);
  for (guint i = 0; i < kws->len; i++)
    if (kws->pdata[i])
      {
        while (f->keywords->len <= i)
          g_ptr_array_add (f->keywords, NULL);
        if (g_strcmp0 (f->keywords->pdata[i], kws->pdata[i]) != 0)
          {
            g_free (f->keywords->pdata[i]);
            f->keywords->pdata[i] = g_strdup (kws->pdata[i]);
          }
      }

  g_autoptr (GHashTable) found = g_hash_table_new_full (g_str_hash,
                                                        g_str_equal, g_free,
                                                        found_free);
  /* new/ before cur/: a file moving new -> cur meanwhile is seen once. */
  if ((scan_new && !scan_dir (store, newd, TRUE, found, error))
      || (scan_cur && !scan_dir (store, curd, FALSE, found, error)))
    {
      uidlist_clear (&ul);
      return FALSE;
    }
  gint64 new_m = mtime_ns (&sn), cur_m = mtime_ns (&sc);

  /* Walk the index: matched, renamed, or missing. */
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, 0);
  GArray *missing = g_array_new (FALSE, FALSE, sizeof (guint32));
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.msgs, &c);
  MDB_val k = { 8, key }, v;
  int rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
  GPtrArray *updates = g_ptr_array_new_with_free_func (g_free);
  while (rc == 0 && k.mv_size == 8 && memcmp (k.mv_data, key, 4) == 0)
    {
      guint32 uid = mh_store__be32 ((guint8 *) k.mv_data + 4);
      MsgRec r;
      if (v.mv_size < sizeof r)
        {
          rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
          continue;
        }
      memcpy (&r, v.mv_data, sizeof r);
      /* Records are not NUL-terminated: every length is bounded. */
      r.name_len = (guint32) MIN (r.name_len, v.mv_size - sizeof r);
      const char *fn = (const char *) v.mv_data + sizeof r;
      g_autofree char *base = g_strndup (fn, mh_store__base_len_n (
                                               fn, r.name_len));
      gboolean judged = r.in_new ? scan_new : scan_cur;
      Found *fd = g_hash_table_lookup (found, base);
      if (fd != NULL)
        {
          if (fd->in_new != (gboolean) r.in_new
              || strlen (fd->filename) != r.name_len
              || memcmp (fd->filename, fn, r.name_len) != 0)
            {
              /* Renamed by us or by another tool: same UID. */
              guint32 u[1] = { uid };
              gpointer upd = g_malloc (sizeof u + sizeof (MsgRec));
              memcpy (upd, u, sizeof u);
              memcpy ((char *) upd + sizeof u, &r, sizeof r);
              g_ptr_array_add (updates, upd);
              g_ptr_array_add (updates, g_strdup (fd->filename));
              g_ptr_array_add (updates, GINT_TO_POINTER (fd->in_new));
            }
          g_hash_table_remove (found, base);
        }
      else if (judged)
        g_array_append_val (missing, uid);
      rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (c);
  for (guint i = 0; i + 3 <= updates->len; i += 3)
    {
      guint32 uid;
      MsgRec old, r;
      memcpy (&uid, updates->pdata[i], sizeof uid);
      memcpy (&old, (char *) updates->pdata[i] + sizeof uid, sizeof old);
      const char *fn = updates->pdata[i + 1];
      r = old;
      guint32 fl, kw;
      mh_store__parse_info (fn, &fl, &kw);
      r.in_new = GPOINTER_TO_INT (updates->pdata[i + 2]);
      if (fl != old.flags || kw != old.kwbits)
        {
          r.flags = fl;
          r.kwbits = kw;
          r.modseq = ++f->rec.highestmodseq;
        }
      if (!mh_store__msg_put (store, txn, f, uid, &old, &r, fn, error))
        goto fail;
      g_autofree guint8 *nk = NULL;
      int nkl = name_key (&nk, f->rec.id, fn);
      MDB_val nkv = { (gsize) nkl, nk }, nv = { 4, &uid };
      mdb_put (txn, store->db.names, &nkv, &nv, 0);
    }
  /* updates holds raw ints in every third slot: free only the others. */
  for (guint i = 2; i < updates->len; i += 3)
    updates->pdata[i] = NULL;
  g_ptr_array_unref (updates);
  updates = NULL;

  if (missing->len > 0)
    {
      /* Second look before expunging (see the design notes). */
      g_autoptr (GHashTable) again = g_hash_table_new_full (
        g_str_hash, g_str_equal, g_free, found_free);
      if (!scan_dir (store, newd, TRUE, again, error)
          || !scan_dir (store, curd, FALSE, again, error))
        goto fail;
      for (guint i = 0; i < missing->len; i++)
        {
          guint32 uid = g_array_index (missing, guint32, i);
          MsgRec r;
          g_autofree char *fn = NULL;
          if (!mh_store__msg_get (store, txn, f->rec.id, uid, &r, &fn))
            continue;
          g_autofree char *base = g_strndup (fn, mh_store__base_len (fn));
          Found *fd = g_hash_table_lookup (again, base);
          if (fd != NULL)
            {
              MsgRec nr = r;
              mh_store__parse_info (fd->filename, &nr.flags, &nr.kwbits);
              nr.in_new = fd->in_new;
              nr.modseq = ++f->rec.highestmodseq;
              if (!mh_store__msg_put (store, txn, f, uid, &r, &nr,
                                      fd->filename, error))
                goto fail;
              g_hash_table_remove (found, base);
              continue;
            }
          if (!mh_store__msg_remove (store, txn, f, uid, &r, error))
            goto fail;
        }
    }

  /* What is left is new to the index. */
  if (g_hash_table_size (found) > 0)
    {
      g_autoptr (GPtrArray) nf = g_ptr_array_new ();
      GHashTableIter hi;
      gpointer hk, hv;
      g_hash_table_iter_init (&hi, found);
      while (g_hash_table_iter_next (&hi, &hk, &hv))
        g_ptr_array_add (nf, hv);
      g_ptr_array_sort (nf, cmp_names);
      GArray *auids = g_array_new (FALSE, FALSE, sizeof (guint32));
      GPtrArray *abases = g_ptr_array_new_with_free_func (g_free);
      for (guint i = 0; i < nf->len; i++)
        {
          Found *fd = nf->pdata[i];
          g_autofree char *base = g_strndup (fd->filename,
                                             mh_store__base_len (fd->filename));
          guint32 uid = 0;
          if (have_ul)
            uid = GPOINTER_TO_UINT (g_hash_table_lookup (ul.uids, base));
          if (uid != 0)
            {
              MsgRec dummy;
              /* A UID already taken (a copy of a file?) is not reused. */
              if (mh_store__msg_get (store, txn, f->rec.id, uid, &dummy,
                                     NULL))
                uid = 0;
            }
          gboolean listed = uid != 0;
          if (uid == 0)
            uid = f->rec.uidnext;
          if (!add_found (store, txn, f, dir, fd, uid, error))
            {
              g_array_unref (auids);
              g_ptr_array_unref (abases);
              goto fail;
            }
          if (!listed)
            {
              g_array_append_val (auids, uid);
              g_ptr_array_add (abases, g_steal_pointer (&base));
            }
        }
      if (auids->len > 0
          && !mh_store__uidlist_append (store, dir, f,
                                        (guint32 *) auids->data,
                                        (char **) abases->pdata, auids->len,
                                        error))
        {
          g_array_unref (auids);
          g_ptr_array_unref (abases);
          goto fail;
        }
      g_array_unref (auids);
      g_ptr_array_unref (abases);
    }
  if (!have_ul && f->rec.messages == 0)
    {
      /* Keep UIDVALIDITY on disk even for an empty folder. */
      if (!mh_store__uidlist_append (store, dir, f, NULL, NULL, 0, error))
        goto fail;
    }
  /* An mtime equal to the recorded one stays: it was trusted already
   * (or is a stamp of own.c, which any later change moves). */
  if (scan_new && new_m != f->rec.new_mtime)
    f->rec.new_mtime = trusted (new_m, scan_start);
  if (scan_cur && cur_m != f->rec.cur_mtime)
    f->rec.cur_mtime = trusted (cur_m, scan_start);
  if (have_ul || f->rec.uidlist_mtime == 0)
    {
      g_autofree char *up = g_build_filename (dir, "dovecot-uidlist", NULL);
      if (stat (up, &su) == 0)
        {
          /* Size and ns mtime together: an append always grows it. */
          f->rec.uidlist_mtime = mtime_ns (&su);
          f->rec.uidlist_size = su.st_size;
        }
    }
  g_array_unref (missing);
  uidlist_clear (&ul);
  *usage_changed = f->rec.messages != messages0 || f->rec.size != size0;
  return mh_store__folder_save (store, txn, f, error);

fail:
  if (updates)
    {
      for (guint i = 2; i < updates->len; i += 3)
        updates->pdata[i] = NULL;
      g_ptr_array_unref (updates);
    }
  g_array_unref (missing);
  uidlist_clear (&ul);
  return FALSE;
}

static gboolean
needs_sync (MhStore *store, const char *name)
{
  g_autofree char *dir = mh_store__folder_path (store, name, NULL);
  if (dir == NULL)
    return TRUE;
  g_autofree char *newd = g_build_filename (dir, "new", NULL);
  g_autofree char *curd = g_build_filename (dir, "cur", NULL);
  g_autofree char *up = g_build_filename (dir, "dovecot-uidlist", NULL);
  struct stat sn, sc, su;
  if (stat (newd, &sn) != 0 || stat (curd, &sc) != 0)
    return TRUE;
  MDB_txn *txn;
  if (mdb_txn_begin (store->db.env, NULL, MDB_RDONLY, &txn) != 0)
    return TRUE;
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (store, txn, name,
                                                       FALSE, NULL);
  mdb_txn_abort (txn);
  if (f == NULL)
    return TRUE;
  gboolean ul_same = stat (up, &su) == 0 && f->rec.uidlist_mtime != 0
                     && f->rec.uidlist_mtime == mtime_ns (&su)
                     && f->rec.uidlist_size == su.st_size;
  return f->rec.new_mtime != mtime_ns (&sn)
         || f->rec.cur_mtime != mtime_ns (&sc) || !ul_same;
}

gboolean
mh_store__sync_folder (MhStore *store, const char *name, gboolean force,
                       GError **error)
{
  name = mh_store__canon (name);
  /* Fast path: a read txn and three stats, no lock. */
  if (!force && !needs_sync (store, name))
    return TRUE;
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  if (mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    {
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  gboolean changed = FALSE, usage_changed = FALSE;
  gboolean ok = sync_locked (store, txn, name, force, &changed,
                             &usage_changed, error);
  if (ok && changed)
    {
      mh_store__notify (store, txn);
      ok = mh_store__txn_commit (store, txn, error);
    }
  else
    mdb_txn_abort (txn);
  g_mutex_unlock (&store->write_lock);
  if (ok && usage_changed)
    mh_store__changed (store, name); /* files another program added or removed */
  return ok;
}
