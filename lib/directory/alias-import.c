/* lib/directory: many aliases in one write transaction.
 *
 * Design notes
 * - mh_directory_alias_add() is one write transaction (one fsync) per
 *   call; a hosting panel moving a million aliases (or the resolve
 *   benchmark) needs one transaction for all of them, as the account
 *   import has. The checks are those of mh_directory_alias_add(): hosted
 *   source domain (not a domain alias), no account at the address, no
 *   self target, local targets existing, target count and max_aliases.
 * - All or nothing: the first bad entry aborts the transaction and the
 *   error names the entry by its number (from 1).
 * - Domains are looked up once per batch (a small table of domain ->
 *   case flag, max_aliases, alias count), so the cost per entry is its
 *   own reads and one put.
 * - Entries are written as they are checked, so a later entry may name
 *   an earlier one as a target (the write txn sees its own puts).
 */
#include "directory-private.h"

#include <string.h>

typedef struct
{
  gboolean hosted;       /* FALSE: domain alias or unknown */
  char *hosted_as;       /* for a domain alias: its target; else NULL */
  gboolean cs;           /* case_sensitive_local_part of the hosted one */
  guint64 max_aliases;
  guint count;           /* aliases now, when max_aliases > 0 */
  gboolean counted;
} DomainFacts;

static void
facts_free (gpointer p)
{
  DomainFacts *f = p;
  g_free (f->hosted_as);
  g_free (f);
}

static guint
count_prefix (MDB_txn *txn, MDB_dbi dbi, const char *alabel)
{
  g_autofree char *prefix = g_strconcat (alabel, "@", NULL);
  gsize plen = strlen (prefix);
  MDB_cursor *cur = NULL;
  if (mdb_cursor_open (txn, dbi, &cur) != 0)
    return 0;
  guint n = 0;
  MDB_val k = { plen, prefix }, v;
  int rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size >= plen && memcmp (k.mv_data, prefix, plen) == 0)
    {
      n++;
      rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (cur);
  return n;
}

/* The facts about @alabel, read once per batch; NULL on a read error. */
static DomainFacts *
facts (MhDirectory *dir, MDB_txn *txn, GHashTable *cache, const char *alabel,
       GError **error)
{
  DomainFacts *f = g_hash_table_lookup (cache, alabel);
  if (f != NULL)
    return f;
  f = g_new0 (DomainFacts, 1);
  const char *hosted = alabel;
  MDB_val k = { strlen (alabel), (void *) alabel }, v;
  int rc = mdb_get (txn, dir->dbs.domains, &k, &v);
  if (rc == MDB_NOTFOUND)
    {
      rc = mdb_get (txn, dir->dbs.domain_aliases, &k, &v);
      if (rc == 0)
        {
          MhDomainAliasRecord da;
          if (!mh_domain_alias_record_decode_named (
                  v.mv_data, v.mv_size,
                  MH_RECORD_WHAT ("domain alias", alabel, NULL), &da, error))
            {
              facts_free (f);
              return NULL;
            }
          f->hosted_as = g_steal_pointer (&da.target);
          mh_domain_alias_record_clear (&da);
          hosted = f->hosted_as;
          k.mv_size = strlen (hosted);
          k.mv_data = (void *) hosted;
          rc = mdb_get (txn, dir->dbs.domains, &k, &v);
        }
    }
  if (rc == 0)
    {
      MhDomainRecord dom;
      if (!mh_domain_record_decode_named (
              v.mv_data, v.mv_size, MH_RECORD_WHAT ("domain", hosted, NULL),
              &dom, error))
        {
          facts_free (f);
          return NULL;
        }
      f->hosted = f->hosted_as == NULL;
      g_variant_lookup (dom.settings, "case_sensitive_local_part", "b",
                        &f->cs);
      g_variant_lookup (dom.settings, "max_aliases", "t", &f->max_aliases);
      mh_domain_record_clear (&dom);
    }
  else if (rc != MDB_NOTFOUND)
    {
      mh_directory__set_mdb_error (dir, rc, "read failed", error);
      facts_free (f);
      return NULL;
    }
  else
    g_clear_pointer (&f->hosted_as, g_free);  /* dangling domain alias */
  g_hash_table_insert (cache, g_strdup (alabel), f);
  return f;
}

static gboolean
key_exists (MDB_txn *txn, MDB_dbi dbi, const char *key)
{
  MDB_val k = { strlen (key), (void *) key }, v;
  return mdb_get (txn, dbi, &k, &v) == 0;
}

/* Adds one entry inside @txn; FALSE with @error (not yet numbered). */
static gboolean
import_one (MhDirectory *dir, MDB_txn *txn, GHashTable *cache,
            const char *source, const char *targets, gint64 now,
            GError **error)
{
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (source, &a, error))
    return FALSE;
  g_autofree char *src_local = g_steal_pointer (&a.local);
  g_autofree char *src_domain = g_steal_pointer (&a.domain);
  DomainFacts *sf = facts (dir, txn, cache, src_domain, error);
  if (sf == NULL)
    return FALSE;
  if (!sf->hosted)
    {
      g_autofree char *u = mh_directory_domain_to_unicode (src_domain);
      if (sf->hosted_as != NULL)
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                     "domain '%s' is a domain alias: add the alias in its "
                     "target domain", u);
      else
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                     "domain '%s' does not exist", u);
      return FALSE;
    }
  g_autofree char *local = mh_directory__local_fold (src_local, sf->cs);
  g_autofree char *key = mh_directory__address_key (local, src_domain);
  g_autofree char *self = g_strconcat (local, "@", src_domain, NULL);
  if (key_exists (txn, dir->dbs.accounts, key))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is an account; an alias cannot shadow it", source);
      return FALSE;
    }
  MhAliasRecord rec = { 0 };
  MDB_val k = { strlen (key), key }, v;
  int rc = mdb_get (txn, dir->dbs.aliases, &k, &v);
  if (rc == 0)
    {
      if (!mh_alias_record_decode_named (v.mv_data, v.mv_size,
                                         MH_RECORD_WHAT ("alias", key, NULL),
                                         &rec, error))
        return FALSE;
    }
  else if (rc == MDB_NOTFOUND)
    {
      if (sf->max_aliases > 0)
        {
          if (!sf->counted)
            {
              sf->count = count_prefix (txn, dir->dbs.aliases, src_domain);
              sf->counted = TRUE;
            }
          if (sf->count >= sf->max_aliases)
            {
              g_autofree char *u = mh_directory_domain_to_unicode (src_domain);
              g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_LIMIT,
                           "domain '%s' is full (max_aliases %"
                           G_GUINT64_FORMAT ")", u, sf->max_aliases);
              return FALSE;
            }
          sf->count++;
        }
      rec.targets = g_ptr_array_new_with_free_func (g_free);
      rec.created = now;
    }
  else
    {
      mh_directory__set_mdb_error (dir, rc, "read failed", error);
      return FALSE;
    }

  g_auto (GStrv) parts = g_strsplit (targets ? targets : "", ",", -1);
  gboolean ok = TRUE;
  guint n_given = 0;
  for (guint i = 0; ok && parts[i]; i++)
    {
      g_strstrip (parts[i]);
      if (parts[i][0] == '\0')
        continue;
      n_given++;
      MhDirectoryAddress t;
      g_autoptr (GError) terr = NULL;
      if (!mh_directory__address_parse (parts[i], &t, &terr))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "alias target: %s", terr->message);
          ok = FALSE;
          break;
        }
      DomainFacts *tf = facts (dir, txn, cache, t.domain, error);
      if (tf == NULL)
        {
          mh_directory__address_clear (&t);
          ok = FALSE;
          break;
        }
      gboolean local_target = tf->hosted || tf->hosted_as != NULL;
      char *norm = local_target
                   ? mh_directory__local_fold (t.local, tf->cs)
                   : g_strdup (t.local);
      char *full = g_strconcat (norm, "@", t.domain, NULL);
      if (strcmp (full, self) == 0)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "alias '%s' cannot point to itself", source);
          ok = FALSE;
        }
      else if (local_target)
        {
          const char *hd = tf->hosted_as ? tf->hosted_as : t.domain;
          g_autofree char *tkey = mh_directory__address_key (norm, hd);
          if (!key_exists (txn, dir->dbs.accounts, tkey)
              && !key_exists (txn, dir->dbs.aliases, tkey))
            {
              g_set_error (error, MH_DIRECTORY_ERROR,
                           MH_DIRECTORY_ERROR_NOT_FOUND,
                           "alias target '%s' does not exist (its domain is "
                           "hosted here, so it must be an account or alias)",
                           parts[i]);
              ok = FALSE;
            }
        }
      if (ok)
        {
          gboolean dup = FALSE;
          for (guint j = 0; j < rec.targets->len && !dup; j++)
            dup = strcmp (g_ptr_array_index (rec.targets, j), full) == 0;
          if (!dup)
            g_ptr_array_add (rec.targets, g_steal_pointer (&full));
        }
      g_free (full);
      g_free (norm);
      mh_directory__address_clear (&t);
    }
  if (ok && n_given == 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias '%s' needs at least one target", source);
      ok = FALSE;
    }
  if (ok && rec.targets->len > MH_LIMIT_ALIAS_TARGETS_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias '%s' would have %u targets, at most %d", source,
                   rec.targets->len, MH_LIMIT_ALIAS_TARGETS_MAX);
      ok = FALSE;
    }
  if (ok)
    {
      g_autoptr (GBytes) b = mh_alias_record_encode (&rec);
      gsize len = 0;
      MDB_val val = { 0, (void *) g_bytes_get_data (b, &len) };
      val.mv_size = len;
      rc = mdb_put (txn, dir->dbs.aliases, &k, &val, 0);
      if (rc != 0)
        {
          mh_directory__set_mdb_error (dir, rc, "write failed", error);
          ok = FALSE;
        }
    }
  mh_alias_record_clear (&rec);
  return ok;
}

gboolean
mh_directory_alias_import (MhDirectory *dir, const char *const *sources,
                           const char *const *targets, guint *added_out,
                           GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (sources != NULL && targets != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (added_out)
    *added_out = 0;
  guint n = g_strv_length ((char **) sources);
  if (g_strv_length ((char **) targets) != n)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias import: %u sources but %u target lists", n,
                   g_strv_length ((char **) targets));
      return FALSE;
    }
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  g_autoptr (GHashTable) cache = g_hash_table_new_full (g_str_hash,
                                                        g_str_equal, g_free,
                                                        facts_free);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (GError) eerr = NULL;
      if (!import_one (dir, txn, cache, sources[i], targets[i], now, &eerr))
        {
          mdb_txn_abort (txn);
          g_set_error (error, MH_DIRECTORY_ERROR, eerr->code,
                       "alias import: entry %u: %s; nothing was added",
                       i + 1, eerr->message);
          return FALSE;
        }
    }
  if (!mh_directory__txn_commit (dir, txn, error))
    return FALSE;
  if (added_out)
    *added_out = n;
  return TRUE;
}
