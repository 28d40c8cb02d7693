/* lib/directory: LMDB key/value helpers shared by ops.c and temp-alias.c.
 *
 * Design notes
 * - Keys are C strings without their NUL (names.c makes them); values
 *   are "(uv)" records (records.c). Every helper runs inside a caller's
 *   transaction and never begins or ends one.
 * - Errors are shaped in one place: an LMDB failure becomes
 *   mh_directory__set_mdb_error () with what was being done ("read
 *   failed", "cursor failed", ...), so every call reports the path and
 *   LMDB's message the same way. A missing key is not an error here: the
 *   caller knows which NOT_FOUND text fits.
 * - mh_directory__each () is the one cursor walk: in key order, over one
 *   prefix (LMDB's MDB_SET_RANGE, then while the prefix matches) or the
 *   whole table. A callback may ask to delete the current record; LMDB
 *   then yields the record after it on MDB_NEXT.
 * - mh_directory__resolve () is the one place an address meets its
 *   domain: parse, read the (hosted) domain record, fold the local part
 *   per case_sensitive_local_part, build the key.
 */
#include "directory-private.h"

#include <string.h>

gint64
mh_directory__now (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

static MDB_val
key_val (const char *key)
{
  MDB_val k = { strlen (key), (void *)key };
  return k;
}

int
mh_directory__get (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi, const char *key,
                   MDB_val *out, GError **error)
{
  MDB_val k = key_val (key);
  int rc = mdb_get (txn, dbi, &k, out);
  if (rc == 0)
    return 1;
  if (rc == MDB_NOTFOUND)
    return 0;
  mh_directory__set_mdb_error (dir, rc, "read failed", error);
  return -1;
}

gboolean
mh_directory__has_key (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                       const char *key, int *found, GError **error)
{
  MDB_val v;
  *found = mh_directory__get (dir, txn, dbi, key, &v, error);
  return *found >= 0;
}

gboolean
mh_directory__put (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi, const char *key,
                   GBytes *bytes, GError **error)
{
  MDB_val k = key_val (key);
  gsize len = 0;
  MDB_val v;
  v.mv_data = (void *)g_bytes_get_data (bytes, &len);
  v.mv_size = len;
  int rc = mdb_put (txn, dbi, &k, &v, 0);
  g_bytes_unref (bytes);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, "write failed", error);
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_directory__del (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi, const char *key,
                   gboolean *found_out, GError **error)
{
  MDB_val k = key_val (key);
  int rc = mdb_del (txn, dbi, &k, NULL);
  if (found_out != NULL)
    *found_out = rc == 0;
  if (rc != 0 && rc != MDB_NOTFOUND)
    {
      mh_directory__set_mdb_error (dir, rc, "delete failed", error);
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_directory__each (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                    const char *prefix, MhDirectoryEachFn fn, gpointer data,
                    const char *what, GError **error)
{
  gsize plen = prefix != NULL ? strlen (prefix) : 0;
  MDB_cursor *cur = NULL;
  int rc = mdb_cursor_open (txn, dbi, &cur);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, what, error);
      return FALSE;
    }
  MDB_val k = { plen, (void *)prefix }, v;
  for (rc = mdb_cursor_get (cur, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
       rc == 0; rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT))
    {
      /* memcmp with a NULL prefix is undefined even for 0 bytes */
      if (plen > 0
          && (k.mv_size < plen || memcmp (k.mv_data, prefix, plen) != 0))
        {
          rc = MDB_NOTFOUND;
          break;
        }
      MhDirectoryEach next = fn (&k, &v, data, error);
      if (next == MH_DIRECTORY_EACH_STOP)
        {
          mdb_cursor_close (cur);
          return FALSE;
        }
      /* LMDB: MDB_NEXT after a delete yields the item that followed the
       * deleted one (the cursor remembers the delete). */
      if (next == MH_DIRECTORY_EACH_DELETE
          && (rc = mdb_cursor_del (cur, 0)) != 0)
        break;
    }
  mdb_cursor_close (cur);
  if (rc != MDB_NOTFOUND)
    {
      mh_directory__set_mdb_error (dir, rc, what, error);
      return FALSE;
    }
  return TRUE;
}

static MhDirectoryEach
count_one (const MDB_val *k, const MDB_val *v, gpointer data, GError **error)
{
  (*(guint *)data)++;
  return MH_DIRECTORY_EACH_NEXT;
}

gboolean
mh_directory__count_prefix (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                            const char *alabel, guint *count_out,
                            GError **error)
{
  g_autofree char *prefix = g_strconcat (alabel, "@", NULL);
  guint n = 0;
  if (!mh_directory__each (dir, txn, dbi, prefix, count_one, &n,
                           "cursor failed", error))
    return FALSE;
  *count_out = n;
  return TRUE;
}

void
mh_directory__not_found_domain (const char *alabel, GError **error)
{
  g_autofree char *u = mh_directory_domain_to_unicode (alabel);
  g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
               "domain '%s' does not exist", u);
}

/* The four mh_directory__read_X (): the record of @key in @table decoded
 * by @decode, naming it "KIND 'key'" in a CORRUPT error. */
#define DEFINE_READ(fn, Record, table, kind, decode)                           \
  int fn (MhDirectory *dir, MDB_txn *txn, const char *key, Record *out,        \
          GError **error)                                                      \
  {                                                                            \
    MDB_val v;                                                                 \
    int r = mh_directory__get (dir, txn, dir->dbs.table, key, &v, error);      \
    if (r <= 0)                                                                \
      return r;                                                                \
    return decode (v.mv_data, v.mv_size, MH_RECORD_WHAT (kind, key, NULL),     \
                   out, error)                                                 \
               ? 1                                                             \
               : -1;                                                           \
  }

DEFINE_READ (mh_directory__read_domain, MhDomainRecord, domains, "domain",
             mh_domain_record_decode_named)
DEFINE_READ (mh_directory__read_account, MhAccountRecord, accounts, "account",
             mh_account_record_decode_named)
DEFINE_READ (mh_directory__read_alias, MhAliasRecord, aliases, "alias",
             mh_alias_record_decode_named)
DEFINE_READ (mh_directory__read_domain_alias, MhDomainAliasRecord,
             domain_aliases, "domain alias",
             mh_domain_alias_record_decode_named)

gboolean
mh_directory__domain_case_sensitive (const MhDomainRecord *dom)
{
  gboolean cs = FALSE;
  if (dom->settings != NULL)
    g_variant_lookup (dom->settings, "case_sensitive_local_part", "b", &cs);
  return cs;
}

void
mh_directory__resolved_clear (MhDirectoryResolved *r)
{
  g_clear_pointer (&r->local, g_free);
  g_clear_pointer (&r->domain, g_free);
  g_clear_pointer (&r->key, g_free);
  mh_domain_record_clear (&r->dom);
}

gboolean
mh_directory__resolve (MhDirectory *dir, MDB_txn *txn, const char *address,
                       MhDirectoryResolved *out, GError **error)
{
  memset (out, 0, sizeof *out);
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (address, &a, error))
    return FALSE;
  int r = mh_directory__read_domain (dir, txn, a.domain, &out->dom, error);
  if (r <= 0)
    {
      if (r == 0)
        mh_directory__not_found_domain (a.domain, error);
      mh_directory__address_clear (&a);
      return FALSE;
    }
  out->local = mh_directory__local_fold (
      a.local, mh_directory__domain_case_sensitive (&out->dom));
  out->domain = g_steal_pointer (&a.domain);
  out->key = mh_directory__address_key (out->local, out->domain);
  mh_directory__address_clear (&a);
  return TRUE;
}

gpointer
mh_directory__lookup (MhDirectory *dir, const char *address,
                      MhDirectoryLookupFn fn, GError **error)
{
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  MhDirectoryResolved r;
  gpointer out = NULL;
  if (mh_directory__resolve (dir, txn, address, &r, error))
    {
      out = fn (dir, txn, &r, address, error);
      mh_directory__resolved_clear (&r);
    }
  mdb_txn_abort (txn);
  return out;
}
