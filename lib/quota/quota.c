/* lib/quota: usage counters, enforcement through the store's hook,
 * maildirsize upkeep, warnings and recalculation.
 *
 * Design notes
 * - Account usage is what the store's index says (mh_store_get_usage():
 *   a few folder records, no file read). Domain usage is a counter in
 *   DATA/quota.mdb (LMDB, one small DB), because summing every account's
 *   index at each delivery would not scale.
 * - Counters move by snapshots, not by operations: quota.mdb keeps, per
 *   account, the usage last seen; a sync adds (usage now - usage last
 *   seen) to the domain and stores the new value, in one write
 *   transaction. So the domain counter is always the sum of the account
 *   records, whatever order processes sync in, and changes made through
 *   the store's other operations (expunge) or noticed by its reconciling
 *   (files removed by other tools) flow in at the account's next sync.
 *   Two store hooks: the check before an operation (mh_quota_check(),
 *   which syncs too) and the change hook after one, which calls
 *   mh_quota_update(): so no caller has to remember to, and changes made
 *   by expunge, retention, copy/move or other programs (seen by the
 *   store's reconciliation) reach the counters and maildirsize at once.
 * - A domain whose counter was never computed (a new quota.mdb, or one
 *   thrown away) is counted once from its Maildirs (file names' ",S=",
 *   as Dovecot does), outside the write transaction so deliveries to
 *   other domains never wait on the scan. mh_quota_recalc() counts again
 *   from the reconciled indexes, the slow and exact way.
 * - quota.mdb is opened MDB_NOSYNC: counters are derived data; a crash
 *   may lose their last changes, which the next sync or recalc restores.
 *   An unreadable file is replaced by an empty one.
 * - Records: "a:DOMAIN/LOCAL" -> AccountRec, "d:DOMAIN" -> DomainRec, as
 *   fixed little structs with a version; an unknown version or size is
 *   treated as missing (counted again), never misread.
 * - Warnings: AccountRec keeps the highest level (percent) already
 *   warned about, per resource. The decision is taken inside the write
 *   transaction, so one crossing gives one warning even with concurrent
 *   deliveries in several processes; going back under a level re-arms
 *   it. The warning is delivered through the store (into INBOX) by the
 *   thread that decided, with the hook told to let it pass: a full
 *   mailbox must still get the message saying it is full.
 * - The hook may run with the store's write lock held (mh_store_copy()),
 *   so it never calls back into a store operation that writes.
 */
#include "quota-private.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (mh-quota-error-quark, mh_quota_error)

G_DEFINE_BOXED_TYPE (MhQuota, mh_quota, mh_quota_ref, mh_quota_unref)
G_DEFINE_BOXED_TYPE (MhQuotaUsage, mh_quota_usage, mh_quota_usage_copy,
                     mh_quota_usage_free)

#define REC_VERSION 1
#define DOMAIN_COUNTED 1u

typedef struct
{
  guint32 version;
  guint32 warned_bytes;       /* percent level last warned about, 0 none */
  guint32 warned_messages;
  guint32 pad;
  guint64 bytes;              /* usage last seen */
  guint64 messages;
} AccountRec;

typedef struct
{
  guint32 version;
  guint32 flags;              /* DOMAIN_COUNTED */
  guint64 bytes;
  guint64 messages;
} DomainRec;

typedef struct
{
  MhQuota *quota;             /* strong */
  MhStore *store;             /* weak: the store owns us */
  char *address;              /* ascii */
  char *local;
  char *domain;               /* ascii */
  GThread *bypass;            /* under quota->lock: delivering a warning */
} Attach;

MhQuotaUsage *
mh_quota_usage_copy (const MhQuotaUsage *usage)
{
  return usage ? g_memdup2 (usage, sizeof *usage) : NULL;
}

void
mh_quota_usage_free (MhQuotaUsage *usage)
{
  g_free (usage);
}

/* ---- quota.mdb ---------------------------------------------------------- */

static gboolean
mdb_fail (GError **error, int rc, const char *what, const char *path)
{
  g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO, "%s %s: %s", what,
               path, mdb_strerror (rc));
  return FALSE;
}

gboolean
mh_quota__txn_begin (MhQuota *quota, gboolean write, MDB_txn **txn,
                     GError **error)
{
  int rc = mdb_txn_begin (quota->env, NULL, write ? 0 : MDB_RDONLY, txn);
  if (rc == MDB_MAP_RESIZED)
    {
      /* Another process grew the map: adopt its size and retry. */
      mdb_env_set_mapsize (quota->env, 0);
      rc = mdb_txn_begin (quota->env, NULL, write ? 0 : MDB_RDONLY, txn);
    }
  if (rc != 0)
    {
      g_autofree char *p = g_build_filename (quota->data_dir, "quota.mdb",
                                             NULL);
      return mdb_fail (error, rc, "cannot begin a transaction on", p);
    }
  return TRUE;
}

static int
env_open (MhQuota *q, const char *path)
{
  int rc = mdb_env_create (&q->env);
  if (rc != 0)
    return rc;
  mdb_env_set_mapsize (q->env, (gsize) 256 << 20);
  rc = mdb_env_open (q->env, path, MDB_NOSUBDIR | MDB_NOTLS | MDB_NOSYNC,
                     0640);
  if (rc == 0)
    {
      MDB_txn *txn;
      rc = mdb_txn_begin (q->env, NULL, 0, &txn);
      if (rc == 0)
        {
          rc = mdb_dbi_open (txn, NULL, 0, &q->dbi);
          rc = rc == 0 ? mdb_txn_commit (txn) : (mdb_txn_abort (txn), rc);
        }
    }
  if (rc != 0)
    {
      mdb_env_close (q->env);
      q->env = NULL;
    }
  return rc;
}

MhQuota *
mh_quota_open (MhDirectory *dir, const char *data_dir, MhConfig *config,
               GError **error)
{
  g_return_val_if_fail (dir != NULL && data_dir != NULL, NULL);
  g_autoptr (MhQuota) q = g_new0 (MhQuota, 1);
  q->refcount = 1;
  q->dir = mh_directory_ref (dir);
  q->data_dir = g_strdup (data_dir);
  g_mutex_init (&q->lock);
  q->attached = g_hash_table_new (NULL, NULL);
  q->levels = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr (MhConfig) defaults = config ? NULL : mh_config_new ();
  MhConfig *c = config ? config : defaults;
  q->tempfail = mh_config_get_bool (c, "quota", "tempfail");
  q->maildirsize = mh_config_get_bool (c, "quota", "maildirsize");
  q->warn_from = g_strdup (mh_config_get_string (c, "quota", "warn_from"));
  g_auto (GStrv) levels = mh_config_get_list (c, "quota", "warn_levels");
  for (guint i = 0; levels[i]; i++)
    {
      guint64 v;
      const char *t = levels[i];
      gsize n = strlen (t);
      g_autofree char *num = g_strndup (t, n && t[n - 1] == '%' ? n - 1 : n);
      if (!g_ascii_string_to_unsigned (num, 10, 1, 100, &v, NULL))
        {
          g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                       "[quota] warn_levels: '%s' is not a percentage from "
                       "1 to 100", t);
          return NULL;
        }
      guint lv = (guint) v;
      guint j = 0;
      while (j < q->levels->len && g_array_index (q->levels, guint, j) < lv)
        j++;
      if (j == q->levels->len || g_array_index (q->levels, guint, j) != lv)
        g_array_insert_val (q->levels, j, lv);
    }

  if (g_mkdir_with_parents (data_dir, 0750) != 0)
    {
      int e = errno;
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_IO,
                   "cannot create %s: %s", data_dir, g_strerror (e));
      return NULL;
    }
  g_autofree char *path = g_build_filename (data_dir, "quota.mdb", NULL);
  int rc = env_open (q, path);
  if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH)
    {
      /* Only counters live here: start again, they are counted anew. */
      mh_log_warning ("quota", NULL, NULL, "%s is unreadable (%s): "
                      "replacing it; usage will be counted again", path,
                      mdb_strerror (rc));
      g_autofree char *lock = g_strconcat (path, "-lock", NULL);
      unlink (path);
      unlink (lock);
      rc = env_open (q, path);
    }
  if (rc != 0)
    {
      mdb_fail (error, rc, "cannot open", path);
      return NULL;
    }
  return g_steal_pointer (&q);
}

MhQuota *
mh_quota_ref (MhQuota *quota)
{
  g_return_val_if_fail (quota != NULL, NULL);
  g_atomic_int_inc (&quota->refcount);
  return quota;
}

void
mh_quota_unref (MhQuota *quota)
{
  if (quota == NULL || !g_atomic_int_dec_and_test (&quota->refcount))
    return;
  if (quota->env)
    {
      mdb_env_sync (quota->env, 1);
      mdb_env_close (quota->env);
    }
  mh_directory_unref (quota->dir);
  g_free (quota->data_dir);
  g_free (quota->warn_from);
  g_array_unref (quota->levels);
  g_hash_table_unref (quota->attached);
  g_mutex_clear (&quota->lock);
  g_free (quota);
}

static char *
account_key (const char *domain, const char *local)
{
  return g_strconcat ("a:", domain, "/", local, NULL);
}

static char *
domain_key (const char *domain)
{
  return g_strconcat ("d:", domain, NULL);
}

static gboolean
get_rec (MDB_txn *txn, MDB_dbi dbi, const char *key, void *rec, gsize size)
{
  MDB_val k = { strlen (key), (void *) key }, v;
  memset (rec, 0, size);
  if (mdb_get (txn, dbi, &k, &v) != 0 || v.mv_size != size)
    return FALSE;
  memcpy (rec, v.mv_data, size);
  /* Both records start with the version. */
  if (*(guint32 *) rec != REC_VERSION)
    {
      memset (rec, 0, size);
      return FALSE;
    }
  return TRUE;
}

static int
put_rec (MDB_txn *txn, MDB_dbi dbi, const char *key, void *rec, gsize size)
{
  *(guint32 *) rec = REC_VERSION;
  MDB_val k = { strlen (key), (void *) key }, v = { size, rec };
  return mdb_put (txn, dbi, &k, &v, 0);
}

static gboolean
commit (MhQuota *q, MDB_txn *txn, GError **error)
{
  int rc = mdb_txn_commit (txn);
  if (rc != 0)
    return mdb_fail (error, rc, "cannot write", "quota.mdb");
  return TRUE;
}

/* ---- Counting an account -------------------------------------------- */

static char *
maildir_path (MhQuota *q, const char *domain, const char *local)
{
  return g_build_filename (q->data_dir, "mail", domain, local, NULL);
}

static Attach *
find_attached (MhQuota *q, const char *domain, const char *local)
{
  Attach *found = NULL;
  GHashTableIter it;
  gpointer k, v;
  g_mutex_lock (&q->lock);
  g_hash_table_iter_init (&it, q->attached);
  while (found == NULL && g_hash_table_iter_next (&it, &k, &v))
    {
      Attach *a = v;
      if (strcmp (a->domain, domain) == 0 && strcmp (a->local, local) == 0)
        found = a;
    }
  if (found)
    mh_store_ref (found->store);
  g_mutex_unlock (&q->lock);
  return found;
}

/* Makes the index agree with the files (other tools' changes), folder by
 * folder, then reads its usage. */
static gboolean
reconcile_usage (MhStore *store, guint64 *b, guint64 *m, GError **error)
{
  g_auto (GStrv) folders = mh_store_folder_list (store, error);
  if (folders == NULL)
    return FALSE;
  for (guint i = 0; folders[i]; i++)
    {
      MhStoreStatus st = { .version = 1 };
      if (!mh_store_folder_status (store, folders[i], &st, error))
        return FALSE;
    }
  return mh_store_get_usage (store, b, m, error);
}

/* The usage of an account: its attached store, else one opened for the
 * call, else (index busy in this process) its files. With @reconcile the
 * index is first made to agree with the files. */
static gboolean
count_account (MhQuota *q, const char *domain, const char *local,
               gboolean reconcile, guint64 *b, guint64 *m, GError **error)
{
  *b = *m = 0;
  Attach *a = find_attached (q, domain, local);
  if (a != NULL)
    {
      MhStore *s = a->store;
      gboolean ok = reconcile ? reconcile_usage (s, b, m, error)
                              : mh_store_get_usage (s, b, m, error);
      mh_store_unref (s);
      return ok;
    }
  GError *e = NULL;
  g_autoptr (MhStore) s = mh_store_open_account (q->data_dir, domain, local,
                                                 MH_STORE_OPEN_DEFAULT, &e);
  if (s != NULL)
    return reconcile ? reconcile_usage (s, b, m, error)
                     : mh_store_get_usage (s, b, m, error);
  if (e->domain == MH_STORE_ERROR && e->code == MH_STORE_ERROR_NOT_FOUND)
    {
      g_error_free (e);   /* no Maildir yet: nothing stored */
      return TRUE;
    }
  if (e->domain == MH_STORE_ERROR && e->code == MH_STORE_ERROR_BUSY)
    {
      g_error_free (e);
      g_autofree char *md = maildir_path (q, domain, local);
      return mh_quota__maildir_scan (md, b, m, error);
    }
  g_propagate_error (error, e);
  return FALSE;
}

/* ---- Domain counters ------------------------------------------------ */

/* Counts a domain never counted: each account from its record if it has
 * one, else from its files; @self_* is the usage of the account being
 * synced (its index knows better). */
static gboolean
ensure_domain (MhQuota *q, const char *domain, GError **error)
{
  MDB_txn *txn;
  if (!mh_quota__txn_begin (q, FALSE, &txn, error))
    return FALSE;
  g_autofree char *dk = domain_key (domain);
  DomainRec dr;
  gboolean counted = get_rec (txn, q->dbi, dk, &dr, sizeof dr)
                     && (dr.flags & DOMAIN_COUNTED);
  mdb_txn_abort (txn);
  if (counted)
    return TRUE;

  GError *e = NULL;
  g_autoptr (MhAccountInfoList) list = mh_directory_account_list (q->dir,
                                                                  domain, &e);
  if (list == NULL)
    {
      g_set_error_literal (error, MH_QUOTA_ERROR,
                           e->code == MH_DIRECTORY_ERROR_NOT_FOUND
                               ? MH_QUOTA_ERROR_NOT_FOUND
                               : MH_QUOTA_ERROR_FAILED, e->message);
      g_error_free (e);
      return FALSE;
    }
  g_autoptr (GArray) usage = g_array_sized_new (FALSE, TRUE, sizeof (guint64),
                                                list->len * 2);
  g_array_set_size (usage, list->len * 2);
  for (guint i = 0; i < list->len; i++)
    {
      const char *local = mh_account_info_get_local_part (list->pdata[i]);
      g_autofree char *md = maildir_path (q, domain, local);
      if (!mh_quota__maildir_scan (md, &g_array_index (usage, guint64, 2 * i),
                                   &g_array_index (usage, guint64, 2 * i + 1),
                                   error))
        return FALSE;
    }
  if (!mh_quota__txn_begin (q, TRUE, &txn, error))
    return FALSE;
  if (get_rec (txn, q->dbi, dk, &dr, sizeof dr) && (dr.flags & DOMAIN_COUNTED))
    {
      mdb_txn_abort (txn);   /* another process was quicker */
      return TRUE;
    }
  memset (&dr, 0, sizeof dr);
  int rc = 0;
  for (guint i = 0; i < list->len && rc == 0; i++)
    {
      const char *local = mh_account_info_get_local_part (list->pdata[i]);
      g_autofree char *ak = account_key (domain, local);
      AccountRec ar;
      if (!get_rec (txn, q->dbi, ak, &ar, sizeof ar))
        {
          ar.bytes = g_array_index (usage, guint64, 2 * i);
          ar.messages = g_array_index (usage, guint64, 2 * i + 1);
          rc = put_rec (txn, q->dbi, ak, &ar, sizeof ar);
        }
      dr.bytes += ar.bytes;
      dr.messages += ar.messages;
    }
  dr.flags = DOMAIN_COUNTED;
  if (rc == 0)
    rc = put_rec (txn, q->dbi, dk, &dr, sizeof dr);
  if (rc != 0)
    {
      mdb_txn_abort (txn);
      return mdb_fail (error, rc, "cannot write", "quota.mdb");
    }
  return commit (q, txn, error);
}

typedef struct
{
  guint64 domain_bytes;      /* the domain counter after the sync */
  guint64 domain_messages;
  guint warn_bytes;          /* a level to warn about now, 0 none */
  guint warn_messages;
} SyncResult;

/* The highest warning level @used has reached of @limit, 0 for none. */
static guint
level_of (MhQuota *q, guint64 used, guint64 limit)
{
  if (limit == 0)
    return 0;
  guint reached = 0;
  for (guint i = 0; i < q->levels->len; i++)
    {
      guint lv = g_array_index (q->levels, guint, i);
      /* used/limit >= lv/100, without overflow for huge values */
      if ((double) used * 100.0 >= (double) limit * (double) lv)
        reached = lv;
    }
  return reached;
}

/* Moves the domain counter by the account's change since last seen and
 * records the new usage; with @warn, also decides the warnings. */
static gboolean
sync_account (MhQuota *q, const MhQuotaLimits *lim, guint64 bytes,
              guint64 messages, gboolean warn, SyncResult *res,
              GError **error)
{
  memset (res, 0, sizeof *res);
  if (!ensure_domain (q, lim->domain, error))
    return FALSE;
  MDB_txn *txn;
  g_autofree char *ak = account_key (lim->domain, lim->local);
  g_autofree char *dk = domain_key (lim->domain);
  AccountRec ar;
  DomainRec dr;
  /* The common case at a delivery: nothing changed since the last sync.
   * Tell it under a read transaction, which never waits for writers. */
  if (!warn)
    {
      if (!mh_quota__txn_begin (q, FALSE, &txn, error))
        return FALSE;
      get_rec (txn, q->dbi, ak, &ar, sizeof ar);
      get_rec (txn, q->dbi, dk, &dr, sizeof dr);
      mdb_txn_abort (txn);
      if (ar.bytes == bytes && ar.messages == messages)
        {
          res->domain_bytes = dr.bytes;
          res->domain_messages = dr.messages;
          return TRUE;
        }
    }
  if (!mh_quota__txn_begin (q, TRUE, &txn, error))
    return FALSE;
  get_rec (txn, q->dbi, ak, &ar, sizeof ar);
  get_rec (txn, q->dbi, dk, &dr, sizeof dr);
  gboolean changed = ar.bytes != bytes || ar.messages != messages;
  /* The sum of the records moves by this record's change; clamp so a
   * record lost in a crash cannot wrap the counter below zero. */
  dr.bytes = dr.bytes + bytes >= ar.bytes ? dr.bytes + bytes - ar.bytes : 0;
  dr.messages = dr.messages + messages >= ar.messages
                    ? dr.messages + messages - ar.messages : 0;
  ar.bytes = bytes;
  ar.messages = messages;
  if (warn)
    {
      guint lb = level_of (q, bytes, lim->bytes);
      guint lm = level_of (q, messages, lim->messages);
      if (lb > ar.warned_bytes)
        res->warn_bytes = lb;
      if (lm > ar.warned_messages)
        res->warn_messages = lm;
      changed |= lb != ar.warned_bytes || lm != ar.warned_messages;
      /* Going under a level re-arms it. */
      ar.warned_bytes = lb;
      ar.warned_messages = lm;
    }
  res->domain_bytes = dr.bytes;
  res->domain_messages = dr.messages;
  if (!changed)
    {
      mdb_txn_abort (txn);
      return TRUE;
    }
  int rc = put_rec (txn, q->dbi, ak, &ar, sizeof ar);
  if (rc == 0)
    rc = put_rec (txn, q->dbi, dk, &dr, sizeof dr);
  if (rc != 0)
    {
      mdb_txn_abort (txn);
      return mdb_fail (error, rc, "cannot write", "quota.mdb");
    }
  return commit (q, txn, error);
}

/* ---- Enforcement ---------------------------------------------------- */

static void
attach_free (gpointer p)
{
  Attach *a = p;
  MhQuota *q = a->quota;
  g_mutex_lock (&q->lock);
  if (g_hash_table_lookup (q->attached, a->store) == a)
    g_hash_table_remove (q->attached, a->store);
  g_mutex_unlock (&q->lock);
  g_free (a->address);
  g_free (a->local);
  g_free (a->domain);
  g_free (a);
  mh_quota_unref (q);
}

static gboolean
hook (MhStore *store, const char *folder, gint64 add_bytes,
      gint64 add_messages, gpointer user_data, GError **error)
{
  Attach *a = user_data;
  MhQuota *q = a->quota;
  g_mutex_lock (&q->lock);
  gboolean pass = a->bypass == g_thread_self ();
  g_mutex_unlock (&q->lock);
  if (pass)
    return TRUE;
  return mh_quota_check (q, store, add_bytes, add_messages, error);
}

/* The store's post-change hook: every delivery, append, copy, move,
 * expunge (retention too), folder deletion and reconciled outside change
 * updates the counters and maildirsize, whoever made it. */
static void
change_hook (MhStore *store, const char *folder, gpointer user_data)
{
  MhQuota *q = user_data;
  g_mutex_lock (&q->lock);
  Attach *a = g_hash_table_lookup (q->attached, store);
  /* The warning delivered from inside mh_quota_update() changes the
   * store too; that update counts it in itself. */
  gboolean skip = a == NULL || a->bypass == g_thread_self ();
  g_mutex_unlock (&q->lock);
  if (skip)
    return;
  g_autoptr (GError) e = NULL;
  if (!mh_quota_update (q, store, &e))
    mh_log_warning ("quota", NULL, NULL, "%s: usage after a change in %s: "
                    "%s", mh_store_get_maildir (store), folder, e->message);
}

gboolean
mh_quota_attach (MhQuota *quota, MhStore *store, const char *address,
                 GError **error)
{
  g_return_val_if_fail (quota != NULL && store != NULL && address != NULL,
                        FALSE);
  g_auto (MhQuotaLimits) lim = { 0 };
  if (!mh_quota__account_limits (quota, address, &lim, error))
    return FALSE;
  Attach *a = g_new0 (Attach, 1);
  a->quota = mh_quota_ref (quota);
  a->store = store;
  a->address = g_strdup (lim.address);
  a->local = g_strdup (lim.local);
  a->domain = g_strdup (lim.domain);
  g_mutex_lock (&quota->lock);
  g_hash_table_insert (quota->attached, store, a);
  g_mutex_unlock (&quota->lock);
  mh_store_set_check (store, hook, a, attach_free);
  mh_store_set_change_hook (store, change_hook, mh_quota_ref (quota),
                            (GDestroyNotify) mh_quota_unref);
  return TRUE;
}

static Attach *
lookup_attach (MhQuota *q, MhStore *store, GError **error)
{
  g_mutex_lock (&q->lock);
  Attach *a = g_hash_table_lookup (q->attached, store);
  g_mutex_unlock (&q->lock);
  if (a == NULL)
    g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                 "the store %s was not attached to the quota layer",
                 mh_store_get_maildir (store));
  return a;
}

static void
set_exceeded (GError **error, gboolean temporary, const char *address,
              const char *what)
{
  g_set_error (error, MH_QUOTA_ERROR,
               temporary ? MH_QUOTA_ERROR_EXCEEDED
                         : MH_QUOTA_ERROR_EXCEEDED_PERMANENT,
               "%s Mailbox full: %s %s", temporary ? "4.2.2" : "5.2.2",
               address, what);
}

gboolean
mh_quota_check (MhQuota *quota, MhStore *store, gint64 add_bytes,
                gint64 add_messages, GError **error)
{
  g_return_val_if_fail (quota != NULL && store != NULL, FALSE);
  Attach *a = lookup_attach (quota, store, error);
  if (a == NULL)
    return FALSE;
  g_auto (MhQuotaLimits) lim = { 0 };
  if (!mh_quota__account_limits_fast (quota, a->domain, a->local, &lim)
      && !mh_quota__account_limits (quota, a->address, &lim, error))
    return FALSE;
  guint64 ab = add_bytes > 0 ? (guint64) add_bytes : 0;
  guint64 am = add_messages > 0 ? (guint64) add_messages : 0;
  /* Nothing to enforce: skip the counters on the hot path. */
  if (!lim.bytes && !lim.messages && !lim.domain_bytes
      && !lim.domain_messages)
    return TRUE;
  guint64 b, m;
  if (!mh_store_get_usage (store, &b, &m, error))
    return FALSE;
  SyncResult sr;
  gboolean need_domain = lim.domain_bytes || lim.domain_messages;
  if (need_domain && !sync_account (quota, &lim, b, m, FALSE, &sr, error))
    return FALSE;
  /* A message bigger than the whole limit never fits: retrying is no
   * use, so that refusal is permanent whatever the setting. */
  gboolean never = (lim.bytes && ab > lim.bytes)
                   || (lim.domain_bytes && ab > lim.domain_bytes)
                   || (lim.messages && am > lim.messages);
  gboolean temp = lim.tempfail && !never;
  if (lim.bytes && b + ab > lim.bytes)
    {
      g_autofree char *u = mh_quota_format_size (b);
      g_autofree char *l = mh_quota_format_size (lim.bytes);
      g_autofree char *w = g_strdup_printf (
          "is over its storage quota (%s of %s used)", u, l);
      set_exceeded (error, temp, lim.address, w);
      return FALSE;
    }
  if (lim.messages && m + am > lim.messages)
    {
      g_autofree char *w = g_strdup_printf (
          "is over its message quota (%" G_GUINT64_FORMAT " of %"
          G_GUINT64_FORMAT " messages)", m, lim.messages);
      set_exceeded (error, temp, lim.address, w);
      return FALSE;
    }
  if (need_domain && lim.domain_bytes
      && sr.domain_bytes + ab > lim.domain_bytes)
    {
      g_autofree char *l = mh_quota_format_size (lim.domain_bytes);
      g_autofree char *w = g_strdup_printf (
          "cannot take it: the domain %s is over its storage quota (%s)",
          lim.domain_name, l);
      set_exceeded (error, temp, lim.address, w);
      return FALSE;
    }
  if (need_domain && lim.domain_messages
      && sr.domain_messages + am > lim.domain_messages)
    {
      g_autofree char *w = g_strdup_printf (
          "cannot take it: the domain %s is over its message quota (%"
          G_GUINT64_FORMAT " messages)", lim.domain_name,
          lim.domain_messages);
      set_exceeded (error, temp, lim.address, w);
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_quota_error_get_reply (const GError *error, guint *code_out,
                          char **enhanced_out, char **text_out)
{
  if (error == NULL)
    return FALSE;
  gboolean ours = error->domain == MH_QUOTA_ERROR
                  && (error->code == MH_QUOTA_ERROR_EXCEEDED
                      || error->code == MH_QUOTA_ERROR_EXCEEDED_PERMANENT);
  gboolean wrapped = error->domain == MH_STORE_ERROR
                     && error->code == MH_STORE_ERROR_REFUSED;
  const char *msg = error->message;
  if (!(ours || wrapped) || msg == NULL)
    return FALSE;
  /* "4.2.2 text" or "5.2.2 text": the prefix set_exceeded() writes. */
  if (!((msg[0] == '4' || msg[0] == '5') && strncmp (msg + 1, ".2.2 ", 5) == 0))
    return FALSE;
  if (code_out)
    *code_out = msg[0] == '4' ? 452 : 552;
  if (enhanced_out)
    *enhanced_out = g_strndup (msg, 5);
  if (text_out)
    *text_out = g_strdup (msg + 6);
  return TRUE;
}

/* ---- Warnings ------------------------------------------------------- */

/* RFC 5322 3.3 date, independent of the locale. */
static char *
rfc5322_date (GDateTime *dt)
{
  static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri",
                                      "Sat", "Sun" };
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May",
                                        "Jun", "Jul", "Aug", "Sep", "Oct",
                                        "Nov", "Dec" };
  gint64 off = g_date_time_get_utc_offset (dt) / G_USEC_PER_SEC / 60;
  return g_strdup_printf ("%s, %d %s %d %02d:%02d:%02d %c%02d%02d",
                          days[g_date_time_get_day_of_week (dt) - 1],
                          g_date_time_get_day_of_month (dt),
                          months[g_date_time_get_month (dt) - 1],
                          g_date_time_get_year (dt),
                          g_date_time_get_hour (dt),
                          g_date_time_get_minute (dt),
                          g_date_time_get_second (dt), off < 0 ? '-' : '+',
                          (int) (ABS (off) / 60), (int) (ABS (off) % 60));
}

static GBytes *
warning_message (MhQuota *q, const MhQuotaLimits *lim, guint64 bytes,
                 guint64 messages, guint level, gboolean storage)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *date = rfc5322_date (now);
  g_autofree char *from = q->warn_from
                              ? g_strdup (q->warn_from)
                              : g_strconcat ("postmaster@", lim->domain,
                                             NULL);
  guint32 r1 = g_random_int (), r2 = g_random_int ();
  GString *s = g_string_new (NULL);
  g_string_append_printf (s,
                          "From: Mail System <%s>\r\n"
                          "To: <%s>\r\n"
                          "Subject: Your mailbox is %u%% full\r\n"
                          "Date: %s\r\n"
                          "Message-ID: <quota.%" G_GINT64_FORMAT
                          ".%08x%08x@%s>\r\n"
                          "Auto-Submitted: auto-generated\r\n"
                          "MIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: 8bit\r\n"
                          "\r\n",
                          from, lim->address, level, date,
                          g_get_real_time () / G_USEC_PER_SEC, r1, r2,
                          lim->domain);
  g_string_append_printf (s, "Your mailbox %s has reached %u%% of its %s "
                          "quota.\r\n\r\n", lim->address, level,
                          storage ? "storage" : "message");
  if (lim->bytes)
    {
      g_autofree char *u = mh_quota_format_size (bytes);
      g_autofree char *l = mh_quota_format_size (lim->bytes);
      g_string_append_printf (s, "  Storage:  %s of %s\r\n", u, l);
    }
  if (lim->messages)
    g_string_append_printf (s, "  Messages: %" G_GUINT64_FORMAT " of %"
                            G_GUINT64_FORMAT "\r\n", messages,
                            lim->messages);
  g_string_append (s, "\r\nWhen the mailbox is full, new mail cannot be "
                   "delivered. Please delete\r\nmessages you no longer need "
                   "(and empty the Trash folder).\r\n");
  gsize len = s->len;
  return g_bytes_new_take (g_string_free (s, FALSE), len);
}

static void
deliver_warning (MhQuota *q, Attach *a, MhStore *store,
                 const MhQuotaLimits *lim, guint64 bytes, guint64 messages,
                 guint level, gboolean storage)
{
  g_autoptr (GBytes) msg = warning_message (q, lim, bytes, messages, level,
                                            storage);
  g_mutex_lock (&q->lock);
  a->bypass = g_thread_self ();
  g_mutex_unlock (&q->lock);
  GError *e = NULL;
  gboolean ok = mh_store_deliver (store, NULL, msg, MH_STORE_FLAG_NONE, NULL,
                                  0, NULL, &e);
  g_mutex_lock (&q->lock);
  a->bypass = NULL;
  g_mutex_unlock (&q->lock);
  if (ok)
    mh_log_info ("quota", NULL, NULL, "%s: %s at %u%%: warning delivered",
                 lim->address, storage ? "storage" : "messages", level);
  else
    {
      mh_log_warning ("quota", NULL, NULL, "%s: cannot deliver the %u%% "
                      "quota warning: %s", lim->address, level, e->message);
      g_error_free (e);
    }
}

/* ---- Update, usage, recalc ------------------------------------------ */

/* The Maildir of an account: its attached store's, else the standard
 * DATA/mail/DOMAIN/LOCAL. */
static char *
account_maildir (MhQuota *q, const char *domain, const char *local)
{
  Attach *a = find_attached (q, domain, local);
  if (a == NULL)
    return maildir_path (q, domain, local);
  char *md = g_strdup (mh_store_get_maildir (a->store));
  mh_store_unref (a->store);
  return md;
}

gboolean
mh_quota_update (MhQuota *quota, MhStore *store, GError **error)
{
  g_return_val_if_fail (quota != NULL && store != NULL, FALSE);
  Attach *a = lookup_attach (quota, store, error);
  if (a == NULL)
    return FALSE;
  g_auto (MhQuotaLimits) lim = { 0 };
  if (!mh_quota__account_limits_fast (quota, a->domain, a->local, &lim)
      && !mh_quota__account_limits (quota, a->address, &lim, error))
    return FALSE;
  guint64 b, m;
  SyncResult sr;
  if (!mh_store_get_usage (store, &b, &m, error)
      || !sync_account (quota, &lim, b, m, TRUE, &sr, error))
    return FALSE;
  if (sr.warn_bytes)
    deliver_warning (quota, a, store, &lim, b, m, sr.warn_bytes, TRUE);
  if (sr.warn_messages)
    deliver_warning (quota, a, store, &lim, b, m, sr.warn_messages, FALSE);
  if (sr.warn_bytes || sr.warn_messages)
    {
      /* The warnings themselves take room: count them in too. */
      if (!mh_store_get_usage (store, &b, &m, error)
          || !sync_account (quota, &lim, b, m, FALSE, &sr, error))
        return FALSE;
    }
  if (quota->maildirsize
      && !mh_quota__maildirsize_sync (mh_store_get_maildir (store), lim.bytes,
                                      lim.messages, b, m,
                                      g_get_real_time () / G_USEC_PER_SEC,
                                      error))
    return FALSE;
  return TRUE;
}

gboolean
mh_quota_get_account (MhQuota *quota, const char *address,
                      MhQuotaUsage *usage_out, GError **error)
{
  g_return_val_if_fail (quota != NULL && address != NULL && usage_out, FALSE);
  g_auto (MhQuotaLimits) lim = { 0 };
  if (!mh_quota__account_limits (quota, address, &lim, error))
    return FALSE;
  guint64 b, m;
  SyncResult sr;
  if (!count_account (quota, lim.domain, lim.local, TRUE, &b, &m, error)
      || !sync_account (quota, &lim, b, m, FALSE, &sr, error))
    return FALSE;
  g_autofree char *md = account_maildir (quota, lim.domain, lim.local);
  if (quota->maildirsize
      && !mh_quota__maildirsize_sync (md, lim.bytes, lim.messages, b, m,
                                      g_get_real_time () / G_USEC_PER_SEC,
                                      error))
    return FALSE;
  *usage_out = (MhQuotaUsage) { .version = 1, .bytes = b, .messages = m,
                                .bytes_limit = lim.bytes,
                                .messages_limit = lim.messages };
  return TRUE;
}

gboolean
mh_quota_get_domain (MhQuota *quota, const char *domain,
                     MhQuotaUsage *usage_out, GError **error)
{
  g_return_val_if_fail (quota != NULL && domain != NULL && usage_out, FALSE);
  GError *e = NULL;
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (quota->dir, domain,
                                                           &e);
  if (d == NULL)
    {
      g_set_error_literal (error, MH_QUOTA_ERROR,
                           e->code == MH_DIRECTORY_ERROR_NOT_FOUND
                               ? MH_QUOTA_ERROR_NOT_FOUND
                               : MH_QUOTA_ERROR_INVALID, e->message);
      g_error_free (e);
      return FALSE;
    }
  const char *ascii = mh_domain_info_get_ascii_name (d);
  if (!ensure_domain (quota, ascii, error))
    return FALSE;
  MDB_txn *txn;
  if (!mh_quota__txn_begin (quota, FALSE, &txn, error))
    return FALSE;
  g_autofree char *dk = domain_key (ascii);
  DomainRec dr;
  get_rec (txn, quota->dbi, dk, &dr, sizeof dr);
  mdb_txn_abort (txn);
  *usage_out = (MhQuotaUsage) {
    .version = 1, .bytes = dr.bytes, .messages = dr.messages,
    .bytes_limit = mh_domain_info_get_setting_uint64 (d, "quota_bytes", 0),
    .messages_limit = mh_domain_info_get_setting_uint64 (d, "quota_messages",
                                                         0),
  };
  return TRUE;
}

/* Counts one account from scratch and writes its record (domain counter
 * moved by the difference) and its maildirsize. */
static gboolean
recalc_account (MhQuota *q, const char *address, GError **error)
{
  g_auto (MhQuotaLimits) lim = { 0 };
  if (!mh_quota__account_limits (q, address, &lim, error))
    return FALSE;
  guint64 b, m;
  SyncResult sr;
  if (!count_account (q, lim.domain, lim.local, TRUE, &b, &m, error)
      || !sync_account (q, &lim, b, m, FALSE, &sr, error))
    return FALSE;
  g_autofree char *md = account_maildir (q, lim.domain, lim.local);
  if (q->maildirsize && g_file_test (md, G_FILE_TEST_IS_DIR)
      && !mh_quota__maildirsize_write (md, lim.bytes, lim.messages, b, m,
                                       error))
    return FALSE;
  return TRUE;
}

static gboolean
recalc_domain (MhQuota *q, const char *domain, guint *n, GError **error)
{
  GError *e = NULL;
  g_autoptr (MhAccountInfoList) list = mh_directory_account_list (q->dir,
                                                                  domain, &e);
  if (list == NULL)
    {
      g_set_error_literal (error, MH_QUOTA_ERROR,
                           e->code == MH_DIRECTORY_ERROR_NOT_FOUND
                               ? MH_QUOTA_ERROR_NOT_FOUND
                               : MH_QUOTA_ERROR_FAILED, e->message);
      g_error_free (e);
      return FALSE;
    }
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (q->dir, domain,
                                                           error);
  if (d == NULL)
    return FALSE;
  const char *ascii = mh_domain_info_get_ascii_name (d);
  /* Start the domain from nothing: drop its records, so accounts deleted
   * from the directory stop counting, then count each account. */
  MDB_txn *txn;
  if (!mh_quota__txn_begin (q, TRUE, &txn, error))
    return FALSE;
  g_autofree char *prefix = g_strconcat ("a:", ascii, "/", NULL);
  gsize plen = strlen (prefix);
  g_autoptr (GPtrArray) stale = g_ptr_array_new_with_free_func (g_free);
  MDB_cursor *c;
  int rc = mdb_cursor_open (txn, q->dbi, &c);
  if (rc == 0)
    {
      MDB_val k = { plen, prefix }, v;
      int r = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
      while (r == 0 && k.mv_size >= plen
             && memcmp (k.mv_data, prefix, plen) == 0)
        {
          g_ptr_array_add (stale, g_strndup (k.mv_data, k.mv_size));
          r = mdb_cursor_get (c, &k, &v, MDB_NEXT);
        }
      mdb_cursor_close (c);
    }
  for (guint i = 0; rc == 0 && i < stale->len; i++)
    {
      const char *key = stale->pdata[i];
      MDB_val k = { strlen (key), (void *) key };
      rc = mdb_del (txn, q->dbi, &k, NULL);
    }
  DomainRec dr = { .flags = DOMAIN_COUNTED };
  g_autofree char *dk = domain_key (ascii);
  if (rc == 0)
    rc = put_rec (txn, q->dbi, dk, &dr, sizeof dr);
  if (rc != 0)
    {
      mdb_txn_abort (txn);
      return mdb_fail (error, rc, "cannot write", "quota.mdb");
    }
  if (!commit (q, txn, error))
    return FALSE;
  for (guint i = 0; i < list->len; i++)
    {
      MhAccountInfo *a = list->pdata[i];
      if (!recalc_account (q, mh_account_info_get_ascii_address (a), error))
        return FALSE;
      (*n)++;
    }
  return TRUE;
}

gboolean
mh_quota_recalc (MhQuota *quota, const char *target, guint *accounts_out,
                 GError **error)
{
  g_return_val_if_fail (quota != NULL, FALSE);
  guint n = 0;
  gboolean ok;
  if (target != NULL && strchr (target, '@') != NULL)
    {
      ok = recalc_account (quota, target, error);
      n = ok ? 1 : 0;
    }
  else if (target != NULL)
    ok = recalc_domain (quota, target, &n, error);
  else
    {
      GError *e = NULL;
      g_autoptr (MhDomainInfoList) list = mh_directory_domain_list (quota->dir,
                                                                    &e);
      ok = list != NULL;
      if (!ok)
        g_propagate_error (error, e);
      for (guint i = 0; ok && i < list->len; i++)
        ok = recalc_domain (quota,
                            mh_domain_info_get_ascii_name (list->pdata[i]),
                            &n, error);
    }
  if (accounts_out)
    *accounts_out = n;
  return ok;
}
