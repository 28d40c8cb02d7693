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

static gint64
now_s (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

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
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new (
      "(uv)", (guint32) MH_DIRECTORY_RECORD_VERSION,
      g_variant_new (TEMP_V1, r->target, r->created, r->expires)));
  return g_variant_get_data_as_bytes (v);
}

gboolean
mh_temp_alias_record_decode (const void *data, gsize len, const char *what,
                             MhTempAliasRecord *out, GError **error)
{
  memset (out, 0, sizeof *out);
  g_autoptr (GBytes) bytes = g_bytes_new (data, len);
  g_autoptr (GVariant) v = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE ("(uv)"), bytes, FALSE));
  guint32 version = 0;
  g_autoptr (GVariant) inner = NULL;
  if (g_variant_is_normal_form (v))
    g_variant_get (v, "(uv)", &version, &inner);
  if (inner == NULL || version != MH_DIRECTORY_RECORD_VERSION
      || !g_variant_is_of_type (inner, G_VARIANT_TYPE (TEMP_V1)))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                   "record of %s is corrupt (not a version %d temporary "
                   "alias)", what, MH_DIRECTORY_RECORD_VERSION);
      return FALSE;
    }
  g_variant_get (inner, TEMP_V1, &out->target, &out->created, &out->expires);
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

/* 1 found, 0 not, -1 error. */
static int
get_key (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi, const char *key,
         MDB_val *out, GError **error)
{
  MDB_val k = { strlen (key), (void *) key };
  int rc = mdb_get (txn, dbi, &k, out);
  if (rc == 0)
    return 1;
  if (rc == MDB_NOTFOUND)
    return 0;
  mh_directory__set_mdb_error (dir, rc, "read failed", error);
  return -1;
}

/* Parses @address, reads its (hosted) domain and folds the local part
 * per the domain's case setting. */
static gboolean
parse_hosted (MhDirectory *dir, MDB_txn *txn, const char *address,
              char **local_out, char **domain_out, MhDomainRecord *dom_out,
              GError **error)
{
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (address, &a, error))
    return FALSE;
  MDB_val v;
  int r = get_key (dir, txn, dir->dbs.domains, a.domain, &v, error);
  if (r <= 0)
    {
      if (r == 0)
        {
          g_autofree char *u = mh_directory_domain_to_unicode (a.domain);
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                       "domain '%s' does not exist", u);
        }
      mh_directory__address_clear (&a);
      return FALSE;
    }
  if (!mh_domain_record_decode_named (v.mv_data, v.mv_size,
                                      MH_RECORD_WHAT ("domain", a.domain, NULL),
                                      dom_out, error))
    {
      mh_directory__address_clear (&a);
      return FALSE;
    }
  gboolean cs = FALSE;
  g_variant_lookup (dom_out->settings, "case_sensitive_local_part", "b", &cs);
  *local_out = mh_directory__local_fold (a.local, cs);
  *domain_out = g_steal_pointer (&a.domain);
  mh_directory__address_clear (&a);
  return TRUE;
}

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

static guint
count_prefix (MDB_txn *txn, MDB_dbi dbi, const char *prefix)
{
  gsize plen = strlen (prefix);
  MDB_cursor *cur = NULL;
  if (mdb_cursor_open (txn, dbi, &cur) != 0)
    return 0;
  guint n = 0;
  MDB_val k = { plen, (void *) prefix }, v;
  int rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size >= plen && memcmp (k.mv_data, prefix, plen) == 0)
    {
      n++;
      rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (cur);
  return n;
}

/* ---- Public API ------------------------------------------------------- */

MhTempAliasInfo *
mh_directory_temp_alias_add (MhDirectory *dir, const char *account,
                             gint64 expires, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  gint64 now = now_s ();
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
  g_autofree char *local = NULL, *domain = NULL, *acc_key = NULL;
  MhDomainRecord dom = { 0 };
  MhTempAliasInfo *info = NULL;
  if (!parse_hosted (dir, txn, account, &local, &domain, &dom, error))
    goto out;
  acc_key = mh_directory__address_key (local, domain);
  MDB_val v;
  int r = get_key (dir, txn, dir->dbs.accounts, acc_key, &v, error);
  if (r < 0)
    goto out;
  if (r == 0)
    {
      g_autofree char *u = mh_directory_domain_to_unicode (domain);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "account '%s@%s' does not exist", local, u);
      goto out;
    }
  guint64 max_aliases = 0;
  g_variant_lookup (dom.settings, "max_aliases", "t", &max_aliases);
  if (max_aliases > 0)
    {
      g_autofree char *prefix = g_strconcat (domain, "@", NULL);
      guint n = count_prefix (txn, dir->dbs.aliases, prefix)
                + count_prefix (txn, dir->dbs.temp_aliases, prefix);
      if (n >= max_aliases)
        {
          g_autofree char *u = mh_directory_domain_to_unicode (domain);
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
      g_autofree char *key = mh_directory__address_key (name, domain);
      int used = 0;
      MDB_dbi dbis[] = { dir->dbs.accounts, dir->dbs.aliases,
                         dir->dbs.temp_aliases };
      for (gsize i = 0; i < G_N_ELEMENTS (dbis) && !used; i++)
        {
          r = get_key (dir, txn, dbis[i], key, &v, error);
          if (r < 0)
            goto out;
          used = r;
        }
      if (used)
        continue;
      MhTempAliasRecord rec = { NULL, now, expires };
      rec.target = g_strconcat (local, "@", domain, NULL);
      g_autoptr (GBytes) b = mh_temp_alias_record_encode (&rec);
      gsize len = 0;
      MDB_val k = { strlen (key), key };
      MDB_val val = { 0, (void *) g_bytes_get_data (b, &len) };
      val.mv_size = len;
      int rc = mdb_put (txn, dir->dbs.temp_aliases, &k, &val, 0);
      if (rc != 0)
        {
          mh_temp_alias_record_clear (&rec);
          mh_directory__set_mdb_error (dir, rc, "write failed", error);
          goto out;
        }
      if (!mh_directory__txn_commit (dir, txn, error))
        {
          txn = NULL;
          mh_temp_alias_record_clear (&rec);
          goto out;
        }
      txn = NULL;
      info = info_new (name, domain, &rec);
      goto out;
    }
  g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
               "no free random name after %d tries (is the random source "
               "broken?)", ADD_TRIES);
out:
  if (txn != NULL)
    mdb_txn_abort (txn);
  mh_domain_record_clear (&dom);
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
  g_autofree char *local = NULL, *domain = NULL;
  MhDomainRecord dom = { 0 };
  if (!parse_hosted (dir, txn, address, &local, &domain, &dom, error))
    {
      mdb_txn_abort (txn);
      return FALSE;
    }
  mh_domain_record_clear (&dom);
  g_autofree char *key = mh_directory__address_key (local, domain);
  MDB_val k = { strlen (key), key };
  int rc = mdb_del (txn, dir->dbs.temp_aliases, &k, NULL);
  if (rc == MDB_NOTFOUND)
    {
      mdb_txn_abort (txn);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "temporary alias '%s' does not exist", address);
      return FALSE;
    }
  if (rc != 0)
    {
      mdb_txn_abort (txn);
      mh_directory__set_mdb_error (dir, rc, "delete failed", error);
      return FALSE;
    }
  return mh_directory__txn_commit (dir, txn, error);
}

MhTempAliasInfo *
mh_directory_temp_alias_lookup (MhDirectory *dir, const char *address,
                                GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  g_autofree char *local = NULL, *domain = NULL, *key = NULL, *what = NULL;
  MhDomainRecord dom = { 0 };
  MhTempAliasInfo *info = NULL;
  if (!parse_hosted (dir, txn, address, &local, &domain, &dom, error))
    goto out;
  key = mh_directory__address_key (local, domain);
  MDB_val v;
  int r = get_key (dir, txn, dir->dbs.temp_aliases, key, &v, error);
  if (r == 0)
    g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                 "temporary alias '%s' does not exist", address);
  if (r <= 0)
    goto out;
  what = g_strdup_printf ("temporary alias '%s'", key);
  MhTempAliasRecord rec;
  if (mh_temp_alias_record_decode (v.mv_data, v.mv_size, what, &rec, error))
    info = info_new (local, domain, &rec);
out:
  mdb_txn_abort (txn);
  mh_domain_record_clear (&dom);
  return info;
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
  g_autofree char *prefix = NULL;   /* key prefix */
  g_autofree char *owner = NULL;    /* "local@alabel" target filter */
  MhDomainRecord dom = { 0 };
  GPtrArray *list = NULL;
  g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func (
      (GDestroyNotify) mh_temp_alias_info_unref);
  if (scope != NULL && strchr (scope, '@') != NULL)
    {
      g_autofree char *local = NULL, *domain = NULL;
      if (!parse_hosted (dir, txn, scope, &local, &domain, &dom, error))
        goto out;
      owner = g_strconcat (local, "@", domain, NULL);
      prefix = g_strconcat (domain, "@", NULL);
    }
  else if (scope != NULL)
    {
      g_autofree char *domain = mh_directory_domain_to_ascii (scope, error);
      if (domain == NULL)
        goto out;
      MDB_val v;
      int r = get_key (dir, txn, dir->dbs.domains, domain, &v, error);
      if (r == 0)
        {
          g_autofree char *u = mh_directory_domain_to_unicode (domain);
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                       "domain '%s' does not exist", u);
        }
      if (r <= 0)
        goto out;
      prefix = g_strconcat (domain, "@", NULL);
    }
  else
    prefix = g_strdup ("");
  MDB_cursor *cur = NULL;
  int rc = mdb_cursor_open (txn, dir->dbs.temp_aliases, &cur);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, "cursor failed", error);
      goto out;
    }
  gsize plen = strlen (prefix);
  MDB_val k = { plen, prefix }, v;
  rc = mdb_cursor_get (cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
  while (rc == 0 && k.mv_size >= plen && memcmp (k.mv_data, prefix, plen) == 0)
    {
      char *local = NULL, *domain = NULL;
      MhTempAliasRecord rec;
      g_autofree char *what = g_strdup_printf ("temporary alias '%.*s'",
                                               (int) k.mv_size,
                                               (const char *) k.mv_data);
      if (!mh_directory__key_split (k.mv_data, k.mv_size, &local, &domain))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                       "key of %s is corrupt", what);
          mdb_cursor_close (cur);
          goto out;
        }
      if (!mh_temp_alias_record_decode (v.mv_data, v.mv_size, what, &rec,
                                        error))
        {
          g_free (local);
          g_free (domain);
          mdb_cursor_close (cur);
          goto out;
        }
      if (owner == NULL || strcmp (rec.target, owner) == 0)
        g_ptr_array_add (found, info_new (local, domain, &rec));
      else
        mh_temp_alias_record_clear (&rec);
      g_free (local);
      g_free (domain);
      rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (cur);
  if (rc != 0 && rc != MDB_NOTFOUND)
    {
      mh_directory__set_mdb_error (dir, rc, "cursor failed", error);
      goto out;
    }
  /* Plain GI list: the caller owns the elements (see the header). */
  g_ptr_array_set_free_func (found, NULL);
  list = g_steal_pointer (&found);
out:
  mdb_txn_abort (txn);
  mh_domain_record_clear (&dom);
  return list;
}

gboolean
mh_directory_temp_alias_purge (MhDirectory *dir, gint64 now,
                               guint *removed_out, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (removed_out)
    *removed_out = 0;
  if (now == 0)
    now = now_s ();
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MDB_cursor *cur = NULL;
  int rc = mdb_cursor_open (txn, dir->dbs.temp_aliases, &cur);
  guint removed = 0;
  MDB_val k, v;
  if (rc == 0)
    rc = mdb_cursor_get (cur, &k, &v, MDB_FIRST);
  while (rc == 0)
    {
      MhTempAliasRecord rec;
      g_autofree char *what = g_strdup_printf ("temporary alias '%.*s'",
                                               (int) k.mv_size,
                                               (const char *) k.mv_data);
      if (!mh_temp_alias_record_decode (v.mv_data, v.mv_size, what, &rec,
                                        error))
        {
          mdb_cursor_close (cur);
          mdb_txn_abort (txn);
          return FALSE;
        }
      gboolean dead = now >= rec.expires;
      mh_temp_alias_record_clear (&rec);
      if (dead)
        {
          rc = mdb_cursor_del (cur, 0);
          if (rc != 0)
            break;
          removed++;
          /* LMDB: MDB_NEXT after a delete yields the item that followed
           * the deleted one (the cursor remembers the delete). */
        }
      rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
    }
  if (cur != NULL)
    mdb_cursor_close (cur);
  if (rc != MDB_NOTFOUND)
    {
      mh_directory__set_mdb_error (dir, rc, "purge failed", error);
      mdb_txn_abort (txn);
      return FALSE;
    }
  if (!mh_directory__txn_commit (dir, txn, error))
    return FALSE;
  if (removed_out)
    *removed_out = removed;
  return TRUE;
}
