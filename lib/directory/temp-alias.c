/* lib/directory: temporary (disposable) aliases.
 *
 * Design notes
 * - A temporary alias is a random address in an account's domain that
 *   delivers to that account until it expires (mailcow's "temporary
 *   aliases"). It lives in its own table, temp_aliases (schema 2), keyed
 *   like aliases ("alabel@local"), with the record "(uv)" -> "(sxx)":
 *   target account "local@alabel", created, expires.
 * - Expiry is judged by the reader (lib/resolve) against its own clock,
 *   so nothing has to run at the expiry instant; an expired alias is
 *   rejected like an unknown address, and _purge() removes the dead
 *   records at leisure (mhctl alias temp purge).
 * - The local part is 12 characters of [a-z0-9] from getrandom(2): 62
 *   bits, so one temporary address tells nothing about the others. It
 *   is checked against accounts, aliases and temporary aliases in the
 *   same write transaction (a clash is retried; after 8 clashes we give
 *   up with FAILED, which means a broken random source).
 * - They count against the domain's max_aliases together with plain
 *   aliases, so disposable addresses cannot be minted without bound.
 * - Accounts and aliases added later are not checked against this table
 *   (that would change lib/directory's write paths); the resolver looks
 *   at accounts and aliases first, so such a clash shadows the temporary
 *   alias rather than stealing mail for it.
 */
#include "directory-private.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define TEMP_V1 "(sxx)"
#define LOCAL_LEN 12
#define ADD_TRIES 8

struct _MhTempAliasInfo
{
  gint refcount;
  char *address;
  char *ascii_address;
  char *target;
  gint64 created;
  gint64 expires;
};

/* ---- Records ---------------------------------------------------------- */

gboolean
mh_directory__migrate_temp_aliases (MDB_txn *txn, const MhDirectoryDbs *dbs,
                                    GError **error)
{
  /* open_dbs() already created the table in this transaction; an old
   * directory simply has no temporary aliases yet. Check it is there so
   * a broken open cannot record schema 2 without it. */
  MDB_stat st;
  int rc = mdb_stat (txn, dbs->temp_aliases, &st);
  if (rc != 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "table temp_aliases is missing: %s", mdb_strerror (rc));
      return FALSE;
    }
  return TRUE;
}

void
mh_temp_alias_record_clear (MhTempAliasRecord *r)
{
  g_clear_pointer (&r->target, g_free);
}

GBytes *
mh_temp_alias_record_encode (const MhTempAliasRecord *r)
{
  return mh_directory__record_wrap (
      g_variant_new (TEMP_V1, r->target, r->created, r->expires));
}

gboolean
mh_temp_alias_record_decode (const void *data, gsize len, const char *what,
                             MhTempAliasRecord *out, GError **error)
{
  memset (out, 0, sizeof *out);
  g_autoptr (GVariant) t = mh_directory__record_unwrap (
      data, len, MH_RECORD_WHAT (what, NULL, NULL), TEMP_V1, error);
  if (t == NULL)
    return FALSE;
  g_variant_get (t, TEMP_V1, &out->target, &out->created, &out->expires);
  return TRUE;
}

/* ---- Info objects ----------------------------------------------------- */

static MhTempAliasInfo *
info_new (const char *local, const char *alabel, MhTempAliasRecord *rec)
{
  MhTempAliasInfo *i = g_new0 (MhTempAliasInfo, 1);
  i->refcount = 1;
  g_autofree char *u = mh_directory_domain_to_unicode (alabel);
  i->address = g_strconcat (local, "@", u, NULL);
  i->ascii_address = g_strconcat (local, "@", alabel, NULL);
  i->target = g_steal_pointer (&rec->target);
  i->created = rec->created;
  i->expires = rec->expires;
  mh_temp_alias_record_clear (rec);
  return i;
}

MhTempAliasInfo *
mh_temp_alias_info_ref (MhTempAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  g_atomic_int_inc (&info->refcount);
  return info;
}

void
mh_temp_alias_info_unref (MhTempAliasInfo *info)
{
  if (info == NULL || !g_atomic_int_dec_and_test (&info->refcount))
    return;
  g_free (info->address);
  g_free (info->ascii_address);
  g_free (info->target);
  g_free (info);
}

G_DEFINE_BOXED_TYPE (MhTempAliasInfo, mh_temp_alias_info,
                     mh_temp_alias_info_ref, mh_temp_alias_info_unref)

void
mh_temp_alias_info_list_free (GPtrArray *list)
{
  if (list == NULL)
    return;
  g_ptr_array_foreach (list, (GFunc) (void (*) (void)) mh_temp_alias_info_unref,
                       NULL);
  g_ptr_array_unref (list);
}

const char *
mh_temp_alias_info_get_address (MhTempAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->address;
}

const char *
mh_temp_alias_info_get_ascii_address (MhTempAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii_address;
}

const char *
mh_temp_alias_info_get_target (MhTempAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->target;
}

gint64
mh_temp_alias_info_get_created (MhTempAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->created;
}

gint64
mh_temp_alias_info_get_expires (MhTempAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->expires;
}

gboolean
mh_temp_alias_info_is_expired (MhTempAliasInfo *info, gint64 now)
{
  g_return_val_if_fail (info != NULL, TRUE);
  return now >= info->expires;
}

/* ---- Helpers ---------------------------------------------------------- */

static gboolean
random_local (char out[LOCAL_LEN + 1], GError **error)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  guint8 buf[LOCAL_LEN * 2];
  gsize got = 0;
  while (got < sizeof buf)
    {
      ssize_t n = getrandom (buf + got, sizeof buf - got, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = errno;
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
                       "no random bytes for a temporary alias: %s",
                       g_strerror (e));
          return FALSE;
        }
      got += (gsize) n;
    }
  /* 16-bit draws modulo 36: bias below 0.06%, irrelevant for a name. */
  for (int i = 0; i < LOCAL_LEN; i++)
    out[i] = alphabet[((guint) buf[2 * i] << 8 | buf[2 * i + 1]) % 36];
  out[0] = alphabet[buf[0] % 26];  /* start with a letter */
  out[LOCAL_LEN] = '\0';
  return TRUE;
}

/* ---- Public API ------------------------------------------------------- */

MhTempAliasInfo *
mh_directory_temp_alias_add (MhDirectory *dir, const char *account,
                             gint64 expires, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  gint64 now = mh_directory__now ();
  if (expires == 0)
    expires = now + (gint64) MH_LIMIT_TEMP_ALIAS_DAYS * 86400;
  if (expires <= now)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "temporary alias for '%s': the expiry time is not in the "
                   "future", account ? account : "");
      return NULL;
    }
  if (expires > now + (gint64) MH_LIMIT_TEMP_ALIAS_DAYS_MAX * 86400)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "temporary alias for '%s': expiry more than %d days "
                   "ahead", account ? account : "",
                   MH_LIMIT_TEMP_ALIAS_DAYS_MAX);
      return NULL;
    }
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return NULL;
  MhDirectoryResolved r;
  MhTempAliasInfo *info = NULL;
  if (!mh_directory__resolve (dir, txn, account, &r, error))
    {
      mdb_txn_abort (txn);
      return NULL;
    }
  int found = 0;
  if (!mh_directory__has_key (dir, txn, dir->dbs.accounts, r.key, &found,
                              error))
    goto out;
  if (!found)
    {
      g_autofree char *u = mh_directory_domain_to_unicode (r.domain);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "account '%s@%s' does not exist", r.local, u);
      goto out;
    }
  guint64 max_aliases = 0;
  g_variant_lookup (r.dom.settings, "max_aliases", "t", &max_aliases);
  if (max_aliases > 0)
    {
      guint n_ali = 0, n_temp = 0;
      if (!mh_directory__count_prefix (dir, txn, dir->dbs.aliases, r.domain,
                                       &n_ali, error)
          || !mh_directory__count_prefix (dir, txn, dir->dbs.temp_aliases,
                                          r.domain, &n_temp, error))
        goto out;
      if (n_ali + n_temp >= max_aliases)
        {
          g_autofree char *u = mh_directory_domain_to_unicode (r.domain);
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_LIMIT,
                       "domain '%s' is full (max_aliases %" G_GUINT64_FORMAT
                       ", temporary aliases included)", u, max_aliases);
          goto out;
        }
    }
  for (int attempt = 0; attempt < ADD_TRIES; attempt++)
    {
      char name[LOCAL_LEN + 1];
      if (!random_local (name, error))
        goto out;
      g_autofree char *key = mh_directory__address_key (name, r.domain);
      int used = 0;
      MDB_dbi dbis[] = { dir->dbs.accounts, dir->dbs.aliases,
                         dir->dbs.temp_aliases };
      for (gsize i = 0; i < G_N_ELEMENTS (dbis) && !used; i++)
        if (!mh_directory__has_key (dir, txn, dbis[i], key, &used, error))
          goto out;
      if (used)
        continue;
      MhTempAliasRecord rec = { NULL, now, expires };
      rec.target = g_strconcat (r.local, "@", r.domain, NULL);
      if (!mh_directory__put (dir, txn, dir->dbs.temp_aliases, key,
                              mh_temp_alias_record_encode (&rec), error))
        {
          mh_temp_alias_record_clear (&rec);
          goto out;
        }
      gboolean ok = mh_directory__txn_commit (dir, txn, error);
      txn = NULL;
      if (ok)
        info = info_new (name, r.domain, &rec);
      else
        mh_temp_alias_record_clear (&rec);
      goto out;
    }
  g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
               "no free random name after %d tries (is the random source "
               "broken?)", ADD_TRIES);
out:
  if (txn != NULL)
    mdb_txn_abort (txn);
  mh_directory__resolved_clear (&r);
  return info;
}

gboolean
mh_directory_temp_alias_delete (MhDirectory *dir, const char *address,
                                GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDirectoryResolved r;
  gboolean found = FALSE;
  if (!mh_directory__resolve (dir, txn, address, &r, error))
    {
      mdb_txn_abort (txn);
      return FALSE;
    }
  gboolean ok = mh_directory__del (dir, txn, dir->dbs.temp_aliases, r.key,
                                   &found, error);
  mh_directory__resolved_clear (&r);
  if (ok && !found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "temporary alias '%s' does not exist", address);
      ok = FALSE;
    }
  if (!ok)
    {
      mdb_txn_abort (txn);
      return FALSE;
    }
  return mh_directory__txn_commit (dir, txn, error);
}

static gpointer
lookup_in_txn (MhDirectory *dir, MDB_txn *txn, const MhDirectoryResolved *r,
               const char *address, GError **error)
{
  MDB_val v;
  int found
      = mh_directory__get (dir, txn, dir->dbs.temp_aliases, r->key, &v, error);
  if (found == 0)
    g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                 "temporary alias '%s' does not exist", address);
  if (found <= 0)
    return NULL;
  g_autofree char *what = g_strdup_printf ("temporary alias '%s'", r->key);
  MhTempAliasRecord rec;
  if (!mh_temp_alias_record_decode (v.mv_data, v.mv_size, what, &rec, error))
    return NULL;
  return info_new (r->local, r->domain, &rec);
}

MhTempAliasInfo *
mh_directory_temp_alias_lookup (MhDirectory *dir, const char *address,
                                GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return mh_directory__lookup (dir, address, lookup_in_txn, error);
}

static char *
what_of_key (const MDB_val *k)
{
  return g_strdup_printf ("temporary alias '%.*s'", (int)k->mv_size,
                          (const char *)k->mv_data);
}

typedef struct
{
  const char *owner; /* "local@alabel" target filter, or NULL */
  GPtrArray *found;
} ListScan;

static MhDirectoryEach
list_one (const MDB_val *k, const MDB_val *v, gpointer data, GError **error)
{
  ListScan *scan = data;
  g_autofree char *local = NULL, *domain = NULL;
  g_autofree char *what = what_of_key (k);
  MhTempAliasRecord rec;
  if (!mh_directory__key_split (k->mv_data, k->mv_size, &local, &domain))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                   "key of %s is corrupt", what);
      return MH_DIRECTORY_EACH_STOP;
    }
  if (!mh_temp_alias_record_decode (v->mv_data, v->mv_size, what, &rec, error))
    return MH_DIRECTORY_EACH_STOP;
  if (scan->owner == NULL || strcmp (rec.target, scan->owner) == 0)
    g_ptr_array_add (scan->found, info_new (local, domain, &rec));
  else
    mh_temp_alias_record_clear (&rec);
  return MH_DIRECTORY_EACH_NEXT;
}

GPtrArray *
mh_directory_temp_alias_list (MhDirectory *dir, const char *scope,
                              GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  g_autofree char *prefix = NULL; /* key prefix; NULL: all */
  g_autofree char *owner = NULL;
  GPtrArray *list = NULL;
  g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func (
      (GDestroyNotify) mh_temp_alias_info_unref);
  if (scope != NULL && strchr (scope, '@') != NULL)
    {
      MhDirectoryResolved r;
      if (!mh_directory__resolve (dir, txn, scope, &r, error))
        goto out;
      owner = g_strconcat (r.local, "@", r.domain, NULL);
      prefix = g_strconcat (r.domain, "@", NULL);
      mh_directory__resolved_clear (&r);
    }
  else if (scope != NULL)
    {
      g_autofree char *domain = mh_directory_domain_to_ascii (scope, error);
      int r = 0;
      if (domain == NULL
          || !mh_directory__has_key (dir, txn, dir->dbs.domains, domain, &r,
                                     error))
        goto out;
      if (r == 0)
        {
          mh_directory__not_found_domain (domain, error);
          goto out;
        }
      prefix = g_strconcat (domain, "@", NULL);
    }
  ListScan scan = { owner, found };
  if (!mh_directory__each (dir, txn, dir->dbs.temp_aliases, prefix, list_one,
                           &scan, "cursor failed", error))
    goto out;
  /* Plain GI list: the caller owns the elements (see the header). */
  g_ptr_array_set_free_func (found, NULL);
  list = g_steal_pointer (&found);
out:
  mdb_txn_abort (txn);
  return list;
}

typedef struct
{
  gint64 now;
  guint removed;
} PurgeScan;

static MhDirectoryEach
purge_one (const MDB_val *k, const MDB_val *v, gpointer data, GError **error)
{
  PurgeScan *scan = data;
  g_autofree char *what = what_of_key (k);
  MhTempAliasRecord rec;
  if (!mh_temp_alias_record_decode (v->mv_data, v->mv_size, what, &rec, error))
    return MH_DIRECTORY_EACH_STOP;
  gboolean dead = scan->now >= rec.expires;
  mh_temp_alias_record_clear (&rec);
  if (!dead)
    return MH_DIRECTORY_EACH_NEXT;
  scan->removed++;
  return MH_DIRECTORY_EACH_DELETE;
}

gboolean
mh_directory_temp_alias_purge (MhDirectory *dir, gint64 now,
                               guint *removed_out, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (removed_out)
    *removed_out = 0;
  PurgeScan scan = { now != 0 ? now : mh_directory__now (), 0 };
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  if (!mh_directory__each (dir, txn, dir->dbs.temp_aliases, NULL, purge_one,
                           &scan, "purge failed", error))
    {
      mdb_txn_abort (txn);
      return FALSE;
    }
  if (!mh_directory__txn_commit (dir, txn, error))
    return FALSE;
  if (removed_out)
    *removed_out = scan.removed;
  return TRUE;
}
