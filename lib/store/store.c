/* lib/store/store.c: the MhStore object, folders, views and operations.
 *
 * Design notes
 * - One MhStore per account per process (a process-wide table of open
 *   index directories refuses a second open with BUSY: two LMDB envs on
 *   one file in one process break LMDB's fcntl locks). The table is the
 *   only global state besides the error quark and GMime's one-time init.
 * - Writers take store->write_lock, then an LMDB write txn (which also
 *   serialises against other processes). Readers use read txns only, so
 *   listing a folder never waits for a delivery.
 * - File renames for flags happen before the txn commits: if the commit
 *   fails the next reconciliation matches the renamed file by base name,
 *   so nothing is lost.
 * - Notification (MhStoreWatch): every write txn bumps a counter in the
 *   index and writes it to DATA/index/.../notify; watchers use inotify on
 *   that file, plus on a folder's new/ and cur/ for changes made by other
 *   tools (mutt, Dovecot). Why inotify rather than an eventfd: an eventfd
 *   does not cross unrelated processes (mh-lmtpd delivers, mh-imapd
 *   IDLEs), and Maildir changes by other programs are only visible
 *   through the directories. inotify gives one pollable fd for both and
 *   costs writers one pwrite.
 * - Views are immutable once built, so sessions can share one. The store
 *   keeps the last full view of each folder of at least VIEW_CACHE_MIN
 *   messages; a SELECT that finds the folder in the same state (same
 *   folder id, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, message count,
 *   \Recent start and keyword count: any change to a message raises
 *   HIGHESTMODSEQ) gets that view instead of a new one. Building a view
 *   of 100,000 messages writes 4.4 MB of fresh arrays, and their first
 *   touch (page faults) was most of a warm SELECT's 25 ms.
 */
#include "store-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (mh-store-error-quark, mh_store_error)

G_LOCK_DEFINE_STATIC (open_stores);
static GHashTable *open_stores; /* index dir (canonical) → MhStore* */

/* ---- Types ------------------------------------------------------------ */

MhStoreStatus *
mh_store_status_copy (const MhStoreStatus *s)
{
  return s ? g_memdup2 (s, sizeof *s) : NULL;
}

void
mh_store_status_free (MhStoreStatus *s)
{
  g_free (s);
}

G_DEFINE_BOXED_TYPE (MhStoreStatus, mh_store_status, mh_store_status_copy,
                     mh_store_status_free)
G_DEFINE_BOXED_TYPE (MhStore, mh_store, mh_store_ref, mh_store_unref)

struct _MhStoreView
{
  gint ref;
  guint n;
  guint32 *uids;
  guint32 *flags;
  guint32 *kwbits;
  guint64 *modseqs;
  guint64 *sizes;      /* RFC822.SIZE (CRLF), from MsgRec.vsize */
  gint64 *idates;      /* internal dates */
  gint64 *sdates;      /* saved dates */
  guint32 recent_from; /* UIDs >= this are \Recent in this view; 0: none */
  MhStoreStatus status;
  char **keywords; /* folder keywords by index (NULL holes as "") */
  guint n_keywords;
  guint32 *vanished;
  guint n_vanished;
};

/* ---- Shared views (see the design notes) ------------------------------ */

#define VIEW_CACHE_MIN 2048

typedef struct
{
  MhStoreView *view;
  guint32 fid;
  gboolean read_write;
} MhStoreViewCache;

static void
view_cache_free (gpointer p)
{
  MhStoreViewCache *c = p;
  mh_store_view_unref (c->view);
  g_free (c);
}


MhStoreView *
mh_store_view_ref (MhStoreView *v)
{
  g_atomic_int_inc (&v->ref);
  return v;
}

void
mh_store_view_unref (MhStoreView *v)
{
  if (v == NULL || !g_atomic_int_dec_and_test (&v->ref))
    return;
  g_free (v->uids);
  g_free (v->flags);
  g_free (v->kwbits);
  g_free (v->modseqs);
  g_free (v->sizes);
  g_free (v->idates);
  g_free (v->sdates);
  g_strfreev (v->keywords);
  g_free (v->vanished);
  g_free (v);
}

G_DEFINE_BOXED_TYPE (MhStoreView, mh_store_view, mh_store_view_ref,
                     mh_store_view_unref)

MhStoreMessage *
mh_store_message_ref (MhStoreMessage *m)
{
  g_atomic_int_inc (&m->ref);
  return m;
}

void
mh_store_message_unref (MhStoreMessage *m)
{
  if (m == NULL || !g_atomic_int_dec_and_test (&m->ref))
    return;
  g_clear_pointer (&m->cache, g_variant_unref);
  g_free (m->envelope);
  g_free (m->body);
  g_free (m->bodystructure);
  g_clear_pointer (&m->joined, g_hash_table_unref);
  g_free (m);
}

G_DEFINE_BOXED_TYPE (MhStoreMessage, mh_store_message, mh_store_message_ref,
                     mh_store_message_unref)

/* ---- Open and close --------------------------------------------------- */

static gboolean sync_all (MhStore *store, gboolean force, GError **error);

MhStore *
mh_store_open (const char *maildir, const char *index_dir,
               MhStoreOpenFlags flags, GError **error)
{
  g_return_val_if_fail (maildir != NULL && index_dir != NULL, NULL);
  if (!g_file_test (maildir, G_FILE_TEST_IS_DIR))
    {
      if (!(flags & MH_STORE_OPEN_CREATE))
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                       "no Maildir at %s", maildir);
          return NULL;
        }
    }
  g_autoptr (MhStore) store = g_new0 (MhStore, 1);
  store->ref = 1;
  store->maildir = g_canonicalize_filename (maildir, NULL);
  store->index_dir = g_canonicalize_filename (index_dir, NULL);
  g_mutex_init (&store->write_lock);
  g_mutex_init (&store->stale_lock);
  g_mutex_init (&store->gc_lock);
  g_mutex_init (&store->view_lock);
  store->views = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        view_cache_free);
  g_cond_init (&store->gc_cond);
  store->gc_pending = g_ptr_array_new ();
  store->notify_fd = -1;
  if ((flags & MH_STORE_OPEN_CREATE)
      && !mh_store__folder_mkdirs (store, "INBOX", error))
    return NULL;
  g_autofree char *cur = g_build_filename (store->maildir, "cur", NULL);
  if (access (cur, R_OK | W_OK | X_OK) != 0)
    {
      mh_store__io_error (errno, "cannot use Maildir", cur, error);
      return NULL;
    }

  G_LOCK (open_stores);
  if (open_stores == NULL)
    open_stores = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         NULL);
  if (g_hash_table_contains (open_stores, store->index_dir))
    {
      G_UNLOCK (open_stores);
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_BUSY,
                   "index %s is already open in this process; share that "
                   "MhStore", store->index_dir);
      g_clear_pointer (&store->index_dir, g_free);
      return NULL;
    }
  g_hash_table_add (open_stores, g_strdup (store->index_dir));
  G_UNLOCK (open_stores);

  if (!mh_store__db_open (store, error))
    return NULL;
  g_autofree char *np = g_build_filename (store->index_dir, "notify", NULL);
  store->notify_fd = open (np, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (store->notify_fd < 0)
    {
      mh_store__io_error (errno, "open", np, error);
      return NULL;
    }
  store->host = mh_store__host_name ();
  if (!sync_all (store, FALSE, error))
    return NULL;
  return g_steal_pointer (&store);
}

MhStore *
mh_store_open_account (const char *data_dir, const char *domain,
                       const char *user, MhStoreOpenFlags flags,
                       GError **error)
{
  g_return_val_if_fail (data_dir != NULL, NULL);
  if (!mh_store__path_component_valid (domain)
      || !mh_store__path_component_valid (user))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "invalid account '%s@%s' for a path (empty, '.', '..' "
                   "or '/')", user ? user : "", domain ? domain : "");
      return NULL;
    }
  g_autofree char *md = g_build_filename (data_dir, "mail", domain, user,
                                          NULL);
  g_autofree char *ix = g_build_filename (data_dir, "index", domain, user,
                                          NULL);
  return mh_store_open (md, ix, flags, error);
}

MhStore *
mh_store_ref (MhStore *store)
{
  g_atomic_int_inc (&store->ref);
  return store;
}

void
mh_store_unref (MhStore *store)
{
  if (store == NULL || !g_atomic_int_dec_and_test (&store->ref))
    return;
  if (store->db.env)
    mh_store__cache_flush (store);
  mh_store__db_close (store);
  if (store->index_dir)
    {
      G_LOCK (open_stores);
      if (open_stores)
        g_hash_table_remove (open_stores, store->index_dir);
      G_UNLOCK (open_stores);
    }
  if (store->check_destroy)
    store->check_destroy (store->check_data);
  if (store->change_destroy)
    store->change_destroy (store->change_data);
  g_ptr_array_unref (store->gc_pending);
  if (store->notify_fd >= 0)
    close (store->notify_fd);
  if (store->lock_tmp)
    g_unlink (store->lock_tmp);
  g_free (store->lock_tmp);
  g_free (store->host);
  g_mutex_clear (&store->write_lock);
  g_clear_pointer (&store->stale, g_ptr_array_unref);
  g_mutex_clear (&store->stale_lock);
  g_mutex_clear (&store->gc_lock);
  g_clear_pointer (&store->views, g_hash_table_unref);
  g_mutex_clear (&store->view_lock);
  g_cond_clear (&store->gc_cond);
  g_free (store->maildir);
  g_free (store->index_dir);
  g_free (store);
}

const char *
mh_store_get_maildir (MhStore *store)
{
  return store->maildir;
}

void
mh_store_set_check (MhStore *store, MhStoreCheckFunc func,
                    gpointer user_data, GDestroyNotify destroy)
{
  if (store->check_destroy)
    store->check_destroy (store->check_data);
  store->check = func;
  store->check_data = user_data;
  store->check_destroy = destroy;
}

void
mh_store_set_change_hook (MhStore *store, MhStoreChangeFunc func,
                          gpointer user_data, GDestroyNotify destroy)
{
  g_return_if_fail (store != NULL);
  if (store->change_destroy)
    store->change_destroy (store->change_data);
  store->change = func;
  store->change_data = user_data;
  store->change_destroy = destroy;
}

void
mh_store__changed (MhStore *store, const char *folder)
{
  if (store->change)
    store->change (store, mh_store__canon (folder), store->change_data);
}

static gboolean
begin_read (MhStore *store, MDB_txn **txn, GError **error)
{
  return mh_store__txn_begin (store, FALSE, txn, error) == 0;
}

MhStoreFolder *
mh_store__read_folder (MhStore *store, const char *folder, MDB_txn **txn_out,
                       GError **error)
{
  if (!mh_store__sync_folder (store, folder, FALSE, error))
    return NULL;
  MDB_txn *txn;
  if (!begin_read (store, &txn, error))
    return NULL;
  MhStoreFolder *f = mh_store__folder_load (store, txn, folder, FALSE,
                                            error);
  if (f == NULL)
    {
      mdb_txn_abort (txn);
      return NULL;
    }
  *txn_out = txn;
  return f;
}

gboolean
mh_store_get_usage (MhStore *store, guint64 *bytes_out,
                    guint64 *messages_out, GError **error)
{
  MDB_txn *txn;
  if (!begin_read (store, &txn, error))
    return FALSE;
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.folders, &c);
  MDB_val k, v;
  guint64 b = 0, m = 0;
  int rc = mdb_cursor_get (c, &k, &v, MDB_FIRST);
  while (rc == 0)
    {
      if (v.mv_size >= sizeof (FolderRec))
        {
          FolderRec fr;
          memcpy (&fr, v.mv_data, sizeof fr);
          b += fr.size;
          m += fr.messages;
        }
      rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (c);
  mdb_txn_abort (txn);
  *bytes_out = b;
  *messages_out = m;
  return TRUE;
}

/* ---- Folders ---------------------------------------------------------- */

static const struct
{
  MhStoreRole role;
  const char *name;
  const char *special_use;
} roles[] = {
  { MH_STORE_ROLE_INBOX, "INBOX", NULL },
  { MH_STORE_ROLE_SENT, "Sent", "\\Sent" },
  { MH_STORE_ROLE_DRAFTS, "Drafts", "\\Drafts" },
  { MH_STORE_ROLE_TRASH, "Trash", "\\Trash" },
  { MH_STORE_ROLE_JUNK, "Junk", "\\Junk" },
  { MH_STORE_ROLE_ARCHIVE, "Archive", "\\Archive" },
};

MhStoreRole
mh_store_folder_role (const char *name)
{
  name = mh_store__canon (name);
  for (gsize i = 0; i < G_N_ELEMENTS (roles); i++)
    if (strcmp (roles[i].name, name) == 0)
      return roles[i].role;
  return MH_STORE_ROLE_NONE;
}

const char *
mh_store_role_special_use (MhStoreRole role)
{
  for (gsize i = 0; i < G_N_ELEMENTS (roles); i++)
    if (roles[i].role == role)
      return roles[i].special_use;
  return NULL;
}

gboolean
mh_store_folder_exists (MhStore *store, const char *name)
{
  g_autofree char *dir = mh_store__folder_path (store, name, NULL);
  if (dir == NULL)
    return FALSE;
  g_autofree char *cur = g_build_filename (dir, "cur", NULL);
  return g_file_test (cur, G_FILE_TEST_IS_DIR);
}

gboolean
mh_store__role_autocreate (MhStore *store, const char *folder,
                           GError **error)
{
  if (mh_store_folder_exists (store, folder))
    return TRUE;
  if (mh_store_folder_role (folder) == MH_STORE_ROLE_NONE)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                   "no folder '%s'", folder);
      return FALSE;
    }
  GError *e = NULL;
  if (!mh_store_folder_create (store, folder, &e)
      && !g_error_matches (e, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS))
    {
      g_propagate_error (error, e);
      return FALSE;
    }
  g_clear_error (&e);
  return TRUE;
}

const char *
mh_store_folder_for_role (MhStore *store, MhStoreRole role, GError **error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (roles); i++)
    if (roles[i].role == role)
      return mh_store__role_autocreate (store, roles[i].name, error)
               ? roles[i].name
               : NULL;
  g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
               "role %d has no folder", role);
  return NULL;
}

gboolean
mh_store_folder_create (MhStore *store, const char *name, GError **error)
{
  g_autofree char *dir = mh_store__folder_path (store, name, error);
  if (dir == NULL)
    return FALSE;
  if (mh_store_folder_exists (store, name))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS,
                   "folder '%s' already exists", name);
      return FALSE;
    }
  /* Parents first, so the hierarchy is complete for every client. */
  g_auto (GStrv) parts = g_strsplit (name, ".", -1);
  GString *acc = g_string_new (NULL);
  for (int i = 0; parts[i]; i++)
    {
      if (i)
        g_string_append_c (acc, '.');
      g_string_append (acc, parts[i]);
      if (!mh_store_folder_exists (store, acc->str)
          && (!mh_store__folder_mkdirs (store, acc->str, error)
              || !mh_store__sync_folder (store, acc->str, TRUE, error)))
        {
          g_string_free (acc, TRUE);
          return FALSE;
        }
    }
  g_string_free (acc, TRUE);
  return mh_store__fsync_dir (store->maildir, error);
}

static gboolean
rmtree (const char *path)
{
  DIR *d = opendir (path);
  if (d == NULL)
    return g_unlink (path) == 0;
  struct dirent *e;
  gboolean ok = TRUE;
  while ((e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      g_autofree char *c = g_build_filename (path, e->d_name, NULL);
      struct stat st;
      if (lstat (c, &st) == 0 && S_ISDIR (st.st_mode))
        ok &= rmtree (c);
      else
        ok &= g_unlink (c) == 0;
    }
  closedir (d);
  return ok && g_rmdir (path) == 0;
}

/* Drops a folder's records (messages, names, cache, tombstones). */
static void
drop_folder_records (MhStore *store, MDB_txn *txn, MhStoreFolder *f)
{
  MDB_dbi dbis[] = { store->db.msgs, store->db.names, store->db.cache,
                     store->db.tombs };
  guint8 pre[4] = { f->rec.id >> 24, f->rec.id >> 16, f->rec.id >> 8,
                    f->rec.id };
  for (gsize i = 0; i < G_N_ELEMENTS (dbis); i++)
    {
      MDB_cursor *c;
      mdb_cursor_open (txn, dbis[i], &c);
      MDB_val k = { 4, pre }, v;
      int rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
      while (rc == 0 && k.mv_size >= 4 && memcmp (k.mv_data, pre, 4) == 0)
        {
          mdb_cursor_del (c, 0);
          rc = mdb_cursor_get (c, &k, &v, MDB_GET_CURRENT);
          if (rc != 0)
            break;
        }
      mdb_cursor_close (c);
    }
  MDB_val nk = { strlen (f->name), f->name };
  mdb_del (txn, store->db.folders, &nk, NULL);
}

gboolean
mh_store_folder_delete (MhStore *store, const char *name, GError **error)
{
  g_autofree char *dir = mh_store__folder_path (store, name, error);
  if (dir == NULL)
    return FALSE;
  name = mh_store__canon (name);
  if (strcmp (name, "INBOX") == 0)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "INBOX cannot be deleted");
      return FALSE;
    }
  if (!mh_store_folder_exists (store, name))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                   "no folder '%s'", name);
      return FALSE;
    }
  g_auto (GStrv) all = mh_store_folder_list (store, error);
  if (all == NULL)
    return FALSE;
  g_autofree char *prefix = g_strconcat (name, ".", NULL);
  for (int i = 0; all[i]; i++)
    if (g_str_has_prefix (all[i], prefix))
      {
        g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS,
                     "folder '%s' has children (e.g. '%s'); delete them "
                     "first", name, all[i]);
        return FALSE;
      }
  /* Rename out of sight first (atomic for other readers), then remove;
   * "..name" is never a valid folder name. */
  g_autofree char *gone = g_strdup_printf ("%s/..deleted-%u-%" G_GINT64_FORMAT,
                                           store->maildir, (guint) getpid (),
                                           g_get_real_time ());
  if (g_rename (dir, gone) != 0)
    return mh_store__io_error (errno, "rename", dir, error);
  rmtree (gone);
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  gboolean ok = FALSE;
  if (mh_store__txn_begin (store, TRUE, &txn, error) == 0)
    {
      g_autoptr (MhStoreFolder) f = mh_store__folder_load (store, txn, name,
                                                           FALSE, NULL);
      if (f)
        drop_folder_records (store, txn, f);
      mh_store__notify (store, txn);
      ok = mh_store__txn_commit (store, txn, error);
    }
  g_mutex_unlock (&store->write_lock);
  if (ok)
    mh_store__changed (store, name);
  return ok;
}

gboolean
mh_store_folder_rename (MhStore *store, const char *from, const char *to,
                        GError **error)
{
  g_autofree char *fdir = mh_store__folder_path (store, from, error);
  if (fdir == NULL)
    return FALSE;
  g_autofree char *tdir = mh_store__folder_path (store, to, error);
  if (tdir == NULL)
    return FALSE;
  from = mh_store__canon (from);
  to = mh_store__canon (to);
  if (strcmp (from, "INBOX") == 0 || strcmp (to, "INBOX") == 0)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "renaming to or from INBOX is not done by the store");
      return FALSE;
    }
  if (!mh_store_folder_exists (store, from))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                   "no folder '%s'", from);
      return FALSE;
    }
  if (mh_store_folder_exists (store, to))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS,
                   "folder '%s' already exists", to);
      return FALSE;
    }
  g_autofree char *fprefix = g_strconcat (from, ".", NULL);
  if (g_str_has_prefix (to, fprefix))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "cannot move folder '%s' into itself", from);
      return FALSE;
    }
  g_auto (GStrv) all = mh_store_folder_list (store, error);
  if (all == NULL)
    return FALSE;
  /* Maildir++ is flat: the folder and each child are renamed alone. */
  GPtrArray *olds = g_ptr_array_new_with_free_func (g_free);
  GPtrArray *news = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (olds, g_strdup (from));
  g_ptr_array_add (news, g_strdup (to));
  for (int i = 0; all[i]; i++)
    if (g_str_has_prefix (all[i], fprefix))
      {
        g_ptr_array_add (olds, g_strdup (all[i]));
        g_ptr_array_add (news, g_strconcat (to, all[i] + strlen (from),
                                            NULL));
      }
  gboolean ok = TRUE;
  /* Validate every new name before touching anything. */
  for (guint i = 0; ok && i < news->len; i++)
    {
      g_autofree char *d = mh_store__folder_path (store, news->pdata[i],
                                                  error);
      ok = d != NULL;
    }
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn = NULL;
  if (ok && mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    ok = FALSE;
  for (guint i = 0; ok && i < olds->len; i++)
    {
      g_autofree char *od = mh_store__folder_path (store, olds->pdata[i],
                                                   NULL);
      g_autofree char *nd = mh_store__folder_path (store, news->pdata[i],
                                                   NULL);
      if (g_rename (od, nd) != 0)
        {
          ok = mh_store__io_error (errno, "rename", od, error);
          break;
        }
      g_autoptr (MhStoreFolder) f = mh_store__folder_load (
        store, txn, olds->pdata[i], FALSE, NULL);
      if (f)
        {
          MDB_val ok_key = { strlen (f->name), f->name };
          mdb_del (txn, store->db.folders, &ok_key, NULL);
          g_free (f->name);
          f->name = g_strdup (news->pdata[i]);
          ok = mh_store__folder_save (store, txn, f, error);
        }
    }
  if (txn)
    {
      if (ok)
        {
          mh_store__notify (store, txn);
          ok = mh_store__txn_commit (store, txn, error);
        }
      else
        mdb_txn_abort (txn);
    }
  g_mutex_unlock (&store->write_lock);
  g_ptr_array_unref (olds);
  g_ptr_array_unref (news);
  if (ok)
    {
      /* Missing parents of the new name. */
      g_autofree char *parent = g_strdup (to);
      char *dot = strrchr (parent, '.');
      if (dot)
        {
          *dot = '\0';
          if (!mh_store_folder_exists (store, parent))
            ok = mh_store_folder_create (store, parent, error);
        }
    }
  return ok && mh_store__fsync_dir (store->maildir, error);
}

static gint
cmp_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
mh_store_folder_list (MhStore *store, GError **error)
{
  DIR *d = opendir (store->maildir);
  if (d == NULL)
    {
      mh_store__io_error (errno, "open", store->maildir, error);
      return NULL;
    }
  GPtrArray *names = g_ptr_array_new ();
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    {
      char *n = mh_store__folder_from_dirname (e->d_name);
      if (n == NULL)
        continue;
      if (!mh_store_folder_exists (store, n))
        {
          g_free (n);
          continue;
        }
      g_ptr_array_add (names, n);
    }
  closedir (d);
  g_ptr_array_sort (names, cmp_str);
  g_ptr_array_insert (names, 0, g_strdup ("INBOX"));
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

static gboolean
sync_all (MhStore *store, gboolean force, GError **error)
{
  g_auto (GStrv) names = mh_store_folder_list (store, error);
  if (names == NULL)
    return FALSE;
  for (int i = 0; names[i]; i++)
    if (!mh_store__sync_folder (store, names[i], force, error))
      return FALSE;
  return TRUE;
}

/* Subscriptions: Dovecot 2.3's file: "V\t2\n\n" then one name per line,
 * hierarchy levels separated by TAB, each level in modified UTF-7 (as
 * Dovecot 2.3.19 writes it). Version 1 files (one name per line, '.'
 * separated) are read too. */
static GPtrArray *
subs_read (MhStore *store)
{
  g_autofree char *p = g_build_filename (store->maildir, "subscriptions",
                                         NULL);
  g_autofree char *text = NULL;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  if (!g_file_get_contents (p, &text, NULL, NULL))
    return a;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  int start = 0;
  if (lines[0] && g_str_has_prefix (lines[0], "V\t"))
    start = 1;
  for (int i = start; lines[i]; i++)
    {
      if (*lines[i] == '\0')
        continue;
      g_strdelimit (lines[i], "\t", '.');
      char *dec = mh_store__mutf7_decode (lines[i]);
      if (dec == NULL && g_utf8_validate (lines[i], -1, NULL))
        dec = g_strdup (lines[i]); /* written as UTF-8 by another tool */
      if (dec != NULL)
        g_ptr_array_add (a, dec);
    }
  return a;
}

gboolean
mh_store_subscribe (MhStore *store, const char *name, gboolean subscribed,
                    GError **error)
{
  g_autofree char *d = mh_store__folder_dirname (name, error);
  if (d == NULL)
    return FALSE;
  name = mh_store__canon (name);
  g_mutex_lock (&store->write_lock);
  g_autoptr (GPtrArray) a = subs_read (store);
  gboolean found = FALSE;
  for (guint i = 0; i < a->len; i++)
    if (strcmp (a->pdata[i], name) == 0)
      {
        found = TRUE;
        if (!subscribed)
          g_ptr_array_remove_index (a, i);
        break;
      }
  if (subscribed && !found)
    g_ptr_array_add (a, g_strdup (name));
  GString *s = g_string_new ("V\t2\n\n");
  for (guint i = 0; i < a->len; i++)
    {
      g_autofree char *l = mh_store__mutf7_encode (a->pdata[i]);
      g_strdelimit (l, ".", '\t');
      g_string_append_printf (s, "%s\n", l);
    }
  g_autofree char *p = g_build_filename (store->maildir, "subscriptions",
                                         NULL);
  gboolean ok = g_file_set_contents (p, s->str, (gssize) s->len, NULL);
  g_string_free (s, TRUE);
  g_mutex_unlock (&store->write_lock);
  if (!ok)
    return mh_store__io_error (errno, "write", p, error);
  return TRUE;
}

char **
mh_store_subscriptions (MhStore *store, GError **error)
{
  g_autoptr (GPtrArray) a = subs_read (store);
  g_ptr_array_add (a, NULL);
  char **r = g_new0 (char *, a->len);
  for (guint i = 0; i + 1 < a->len; i++)
    r[i] = g_strdup (a->pdata[i]);
  return r;
}

/* ---- Status and views ------------------------------------------------- */

static guint32
count_recent (MhStore *store, MDB_txn *txn, MhStoreFolder *f)
{
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, f->rec.first_recent_uid);
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.msgs, &c);
  MDB_val k = { 8, key }, v;
  guint32 n = 0;
  int rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && memcmp (k.mv_data, key, 4) == 0)
    {
      n++;
      rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (c);
  return n;
}

static void
fill_status (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
             MhStoreStatus *s)
{
  memset (s, 0, sizeof *s);
  s->version = 1;
  s->messages = f->rec.messages;
  s->recent = count_recent (store, txn, f);
  s->unseen = f->rec.unseen;
  s->uidnext = f->rec.uidnext;
  s->uidvalidity = f->rec.uidvalidity;
  s->highestmodseq = f->rec.highestmodseq;
  s->size = f->rec.size;
  s->deleted = f->rec.deleted;
}

gboolean
mh_store_folder_status (MhStore *store, const char *folder,
                        MhStoreStatus *status_out, GError **error)
{
  MDB_txn *txn;
  g_autoptr (MhStoreFolder) f = mh_store__read_folder (store, folder, &txn,
                                                       error);
  if (f == NULL)
    return FALSE;
  fill_status (store, txn, f, status_out);
  mdb_txn_abort (txn);
  return TRUE;
}

static MhStoreView *
view_new (MhStoreFolder *f)
{
  MhStoreView *v = g_new0 (MhStoreView, 1);
  v->ref = 1;
  v->n_keywords = f->keywords->len;
  v->keywords = g_new0 (char *, f->keywords->len + 1);
  for (guint i = 0; i < f->keywords->len; i++)
    v->keywords[i] = g_strdup (f->keywords->pdata[i] ? f->keywords->pdata[i]
                                                      : "");
  return v;
}

/* Collects messages of @f with modseq > @since into @v. */
static void
view_fill (MhStore *store, MDB_txn *txn, MhStoreFolder *f, guint64 since,
           MhStoreView *v)
{
  guint cap = since ? 64 : MAX (f->rec.messages, 1);
  v->uids = g_new (guint32, cap);
  v->flags = g_new (guint32, cap);
  v->kwbits = g_new (guint32, cap);
  v->modseqs = g_new (guint64, cap);
  v->sizes = g_new (guint64, cap);
  v->idates = g_new (gint64, cap);
  v->sdates = g_new (gint64, cap);
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, 0);
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.msgs, &c);
  MDB_val k = { 8, key }, d;
  int rc = mdb_cursor_get (c, &k, &d, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == 8 && memcmp (k.mv_data, key, 4) == 0)
    {
      /* LMDB values are only 2-byte aligned: copy, never dereference. */
      guint64 ms;
      memcpy (&ms, (const char *) d.mv_data + G_STRUCT_OFFSET (MsgRec, modseq),
              sizeof ms);
      if (ms > since && d.mv_size >= sizeof (MsgRec))
        {
          if (v->n == cap)
            {
              cap *= 2;
              v->uids = g_renew (guint32, v->uids, cap);
              v->flags = g_renew (guint32, v->flags, cap);
              v->kwbits = g_renew (guint32, v->kwbits, cap);
              v->modseqs = g_renew (guint64, v->modseqs, cap);
              v->sizes = g_renew (guint64, v->sizes, cap);
              v->idates = g_renew (gint64, v->idates, cap);
              v->sdates = g_renew (gint64, v->sdates, cap);
            }
          MsgRec rr;
          memcpy (&rr, d.mv_data, sizeof rr);
          v->uids[v->n] = mh_store__be32 ((guint8 *) k.mv_data + 4);
          v->flags[v->n] = rr.flags;
          v->kwbits[v->n] = rr.kwbits;
          v->modseqs[v->n] = rr.modseq;
          v->sizes[v->n] = rr.vsize;
          v->idates[v->n] = rr.internal_date;
          v->sdates[v->n] = rr.saved_date;
          v->n++;
        }
      rc = mdb_cursor_get (c, &k, &d, MDB_NEXT);
    }
  mdb_cursor_close (c);
  fill_status (store, txn, f, &v->status);
}

/* UIDs of @f's records still in new/, newest first. f->rec.in_new says
 * how many there are; they are nearly always the newest messages, so the
 * walk goes backwards from the last UID and stops once all are found. */
static GArray *
in_new_uids (MhStore *store, MDB_txn *txn, MhStoreFolder *f)
{
  GArray *uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  if (f->rec.in_new == 0)
    return uids;
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id + 1, 0);
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.msgs, &c);
  MDB_val k = { 8, key }, d;
  int rc = mdb_cursor_get (c, &k, &d, MDB_SET_RANGE);
  rc = rc == 0 ? mdb_cursor_get (c, &k, &d, MDB_PREV)
               : mdb_cursor_get (c, &k, &d, MDB_LAST);
  mh_store__key_fid_uid (key, f->rec.id, 0);
  while (rc == 0 && uids->len < f->rec.in_new && k.mv_size == 8
         && memcmp (k.mv_data, key, 4) == 0)
    {
      guint32 in_new;
      memcpy (&in_new, (const char *) d.mv_data
                         + G_STRUCT_OFFSET (MsgRec, in_new), sizeof in_new);
      if (d.mv_size >= sizeof (MsgRec) && in_new)
        {
          guint32 uid = mh_store__be32 ((guint8 *) k.mv_data + 4);
          g_array_append_val (uids, uid);
        }
      rc = mdb_cursor_get (c, &k, &d, MDB_PREV);
    }
  mdb_cursor_close (c);
  return uids;
}

/* Whether a read-write SELECT has anything to write: files to move out
 * of new/, or \Recent to claim. */
static gboolean
claim_needed (MhStoreFolder *f)
{
  return f->rec.in_new > 0 || f->rec.first_recent_uid != f->rec.uidnext;
}

/* Moves new/ files to cur/ (a session has seen them) and claims
 * \Recent. Returns the first recent UID of this view. */
static gboolean
claim (MhStore *store, const char *folder, guint32 *recent_from,
       GError **error)
{
  g_mutex_lock (&store->write_lock);
  MDB_txn *txn;
  if (mh_store__txn_begin (store, TRUE, &txn, error) != 0)
    {
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (store, txn, folder,
                                                       FALSE, error);
  if (f == NULL)
    {
      mdb_txn_abort (txn);
      g_mutex_unlock (&store->write_lock);
      return FALSE;
    }
  g_autofree char *dir = mh_store__folder_path (store, folder, NULL);
  gboolean ok = TRUE, changed = FALSE;
  GArray *moves = in_new_uids (store, txn, f);
  /* Our renames keep the recorded mtimes exact (own.c). */
  MhStoreOwn *own = moves->len ? mh_store__own_begin (store, f) : NULL;
  for (guint i = moves->len; ok && i-- > 0;)
    {
      guint32 uid = g_array_index (moves, guint32, i);
      MsgRec r;
      g_autofree char *fn = NULL;
      if (!mh_store__msg_get (store, txn, f->rec.id, uid, &r, &fn))
        continue;
      g_autofree char *nn = mh_store__make_name (fn, mh_store__base_len (fn),
                                                 r.flags, r.kwbits);
      g_autofree char *op = g_build_filename (dir, "new", fn, NULL);
      g_autofree char *np = g_build_filename (dir, "cur", nn, NULL);
      if (rename (op, np) != 0)
        continue; /* moved by someone else: the next scan sees it */
      mh_store__own_renamed (own, TRUE, fn, FALSE, nn);
      MsgRec nr = r;
      nr.in_new = 0;
      ok = mh_store__msg_put (store, txn, f, uid, &r, &nr, nn, error);
      changed = TRUE;
    }
  g_array_unref (moves);
  *recent_from = f->rec.first_recent_uid;
  if (f->rec.first_recent_uid != f->rec.uidnext)
    {
      f->rec.first_recent_uid = f->rec.uidnext;
      changed = TRUE;
    }
  if (ok && changed)
    {
      mh_store__own_end (own, f);
      ok = mh_store__folder_save (store, txn, f, error);
      if (ok)
        ok = mh_store__txn_commit (store, txn, error);
      else
        mdb_txn_abort (txn);
    }
  else
    {
      mh_store__own_abort (own);
      mdb_txn_abort (txn);
    }
  g_mutex_unlock (&store->write_lock);
  return ok;
}

/* Index of the first UID >= @uid in a view (v->n if none). */
static guint
view_lower_bound (MhStoreView *v, guint32 uid)
{
  guint lo = 0, hi = v->n;
  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;
      if (v->uids[mid] < uid)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

/* The shared view of @folder if it shows exactly the state in @f with
 * \Recent from @recent_from (a new reference), else NULL. */
static MhStoreView *
view_cache_lookup (MhStore *store, const char *folder, MhStoreFolder *f,
                   guint32 recent_from, gboolean read_write)
{
  MhStoreView *hit = NULL;
  g_mutex_lock (&store->view_lock);
  MhStoreViewCache *c = g_hash_table_lookup (store->views, folder);
  if (c != NULL && c->fid == f->rec.id && c->read_write == read_write
      && c->view->status.uidvalidity == f->rec.uidvalidity
      && c->view->status.uidnext == f->rec.uidnext
      && c->view->status.highestmodseq == f->rec.highestmodseq
      && c->view->status.messages == f->rec.messages
      && c->view->n == f->rec.messages
      && c->view->recent_from == recent_from
      && c->view->n_keywords == f->keywords->len)
    hit = mh_store_view_ref (c->view);
  g_mutex_unlock (&store->view_lock);
  return hit;
}

MhStoreView *
mh_store_select (MhStore *store, const char *folder, gboolean read_write,
                 GError **error)
{
  folder = mh_store__canon (folder);
  /* The common case is one read txn and one pass over the records: a
   * write txn only when there are files in new/ or \Recent to claim. */
  MDB_txn *txn;
  g_autoptr (MhStoreFolder) f = mh_store__read_folder (store, folder, &txn,
                                                       error);
  if (f == NULL)
    return NULL;
  guint32 recent_from = f->rec.first_recent_uid;
  if (read_write && claim_needed (f))
    {
      mdb_txn_abort (txn);
      g_clear_pointer (&f, mh_store__folder_free);
      if (!claim (store, folder, &recent_from, error)
          || !begin_read (store, &txn, error))
        return NULL;
      f = mh_store__folder_load (store, txn, folder, FALSE, error);
      if (f == NULL)
        {
          mdb_txn_abort (txn);
          return NULL;
        }
    }
  MhStoreView *v = view_cache_lookup (store, folder, f, recent_from,
                                      read_write);
  if (v != NULL)
    {
      mdb_txn_abort (txn);
      return v;
    }
  v = view_new (f);
  v->recent_from = recent_from;
  view_fill (store, txn, f, 0, v);
  if (read_write)
    {
      /* fill_status counted from the new claim point; this view owns
       * the recent ones. */
      v->status.recent = v->n - view_lower_bound (v, recent_from);
    }
  mdb_txn_abort (txn);
  if (v->n >= VIEW_CACHE_MIN)
    {
      MhStoreViewCache *c = g_new0 (MhStoreViewCache, 1);
      c->view = mh_store_view_ref (v);
      c->fid = f->rec.id;
      c->read_write = read_write;
      g_mutex_lock (&store->view_lock);
      g_hash_table_replace (store->views, g_strdup (folder), c);
      g_mutex_unlock (&store->view_lock);
    }
  return v;
}

static gint
cmp_u32 (gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return x < y ? -1 : x > y;
}

MhStoreView *
mh_store_changes_since (MhStore *store, const char *folder, guint64 modseq,
                        GError **error)
{
  folder = mh_store__canon (folder);
  MDB_txn *txn;
  g_autoptr (MhStoreFolder) f = mh_store__read_folder (store, folder, &txn,
                                                       error);
  if (f == NULL)
    return NULL;
  MhStoreView *v = view_new (f);
  v->recent_from = f->rec.first_recent_uid;
  view_fill (store, txn, f, modseq, v);
  guint8 tk[12];
  mh_store__key_fid_uid (tk, f->rec.id, 0);
  guint64 from = modseq + 1;
  for (int i = 0; i < 8; i++)
    tk[4 + i] = (guint8) (from >> (56 - 8 * i));
  MDB_cursor *c;
  mdb_cursor_open (txn, store->db.tombs, &c);
  MDB_val k = { 12, tk }, d;
  GArray *van = g_array_new (FALSE, FALSE, sizeof (guint32));
  int rc = mdb_cursor_get (c, &k, &d, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == 12 && memcmp (k.mv_data, tk, 4) == 0)
    {
      guint32 u;
      memcpy (&u, d.mv_data, 4);
      g_array_append_val (van, u);
      rc = mdb_cursor_get (c, &k, &d, MDB_NEXT);
    }
  mdb_cursor_close (c);
  mdb_txn_abort (txn);
  g_array_sort (van, cmp_u32);
  v->n_vanished = van->len;
  v->vanished = (guint32 *) g_array_free (van, FALSE);
  return v;
}

guint
mh_store_view_get_count (MhStoreView *v)
{
  return v->n;
}

guint32
mh_store_view_get_uid (MhStoreView *v, guint i)
{
  g_return_val_if_fail (i < v->n, 0);
  return v->uids[i];
}

MhStoreFlags
mh_store_view_get_flags (MhStoreView *v, guint i)
{
  g_return_val_if_fail (i < v->n, 0);
  return (MhStoreFlags) v->flags[i];
}

guint64
mh_store_view_get_modseq (MhStoreView *v, guint i)
{
  g_return_val_if_fail (i < v->n, 0);
  return v->modseqs[i];
}

gboolean
mh_store_view_is_recent (MhStoreView *v, guint i)
{
  g_return_val_if_fail (i < v->n, FALSE);
  return v->recent_from != 0 && v->uids[i] >= v->recent_from;
}

char **
mh_store_view_get_keywords (MhStoreView *v, guint i)
{
  g_return_val_if_fail (i < v->n, NULL);
  GPtrArray *a = g_ptr_array_new ();
  for (guint b = 0; b < v->n_keywords && b < 26; b++)
    if ((v->kwbits[i] & (1u << b)) && *v->keywords[b])
      g_ptr_array_add (a, g_strdup (v->keywords[b]));
  g_ptr_array_add (a, NULL);
  return (char **) g_ptr_array_free (a, FALSE);
}

char **
mh_store_view_get_folder_keywords (MhStoreView *v)
{
  GPtrArray *a = g_ptr_array_new ();
  for (guint b = 0; b < v->n_keywords; b++)
    if (*v->keywords[b])
      g_ptr_array_add (a, g_strdup (v->keywords[b]));
  g_ptr_array_add (a, NULL);
  return (char **) g_ptr_array_free (a, FALSE);
}

void
mh_store_view_get_status (MhStoreView *v, MhStoreStatus *s)
{
  *s = v->status;
}

const guint32 *
mh_store_view_get_vanished (MhStoreView *v, guint *n_out)
{
  *n_out = v->n_vanished;
  return v->vanished;
}

guint64
mh_store_view_get_rfc822_size (MhStoreView *v, guint i)
{
  g_return_val_if_fail (v != NULL && i < v->n, 0);
  return v->sizes[i];
}

gint64
mh_store_view_get_internal_date (MhStoreView *v, guint i)
{
  g_return_val_if_fail (v != NULL && i < v->n, 0);
  return v->idates[i];
}

gint64
mh_store_view_get_save_date (MhStoreView *v, guint i)
{
  g_return_val_if_fail (v != NULL && i < v->n, 0);
  return v->sdates[i];
}

gint
mh_store_view_find (MhStoreView *v, guint32 uid)
{
  guint lo = view_lower_bound (v, uid);
  return lo < v->n && v->uids[lo] == uid ? (gint) lo : -1;
}
