/* lib/directory operations: domains, domain aliases, accounts, aliases,
 * authentication and bulk import.
 *
 * Design notes
 * - Every public call is one LMDB transaction: reads in a read txn,
 *   changes in one write txn that checks and writes (so two mhctl runs
 *   cannot both add the same user), and results copied out before the
 *   txn ends. Nothing is cached across calls (multi-process rule).
 * - Expensive work (yescrypt hashing) happens before the write txn
 *   begins: the single LMDB writer lock is never held across a KDF.
 * - Name rules live in names.c. The key of accounts and aliases is
 *   "alabel@local" with the local part folded per the domain's
 *   case_sensitive_local_part setting, read in the same txn.
 * - Invariants kept by the write paths: an account, an alias and a
 *   temporary alias never share an address; a domain and a domain alias never share a name; a
 *   domain alias points at a hosted domain (no chains); an alias target in
 *   a domain we host names an existing account or alias at the time it is
 *   added. Deleting an account does not rewrite aliases that point at it
 *   (delivery bounces those until the account exists again).
 * - Authentication does not reveal which accounts exist: an unknown
 *   account costs one verification against a dummy yescrypt hash, gives
 *   the same error as a wrong password, and DISABLED is told only after
 *   the password was right.
 * - The LMDB get/put/delete, the cursor walks, the look-up by address
 *   and their error texts are kv.c's, shared with temp-alias.c.
 */
#include "directory-private.h"

#include <string.h>

/* Shows a key "alabel@local" as local@U-label for messages. */
static char *
show_key (const char *local, const char *alabel)
{
  g_autofree char *u = mh_directory_domain_to_unicode (alabel);
  return g_strconcat (local, "@", u, NULL);
}

/* ---- Domains ---------------------------------------------------------- */

gboolean
mh_directory_domain_add (MhDirectory *dir, const char *domain, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *alabel = mh_directory_domain_to_ascii (domain, error);
  if (alabel == NULL)
    return FALSE;
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  g_autofree char *u = mh_directory_domain_to_unicode (alabel);
  int found = 0;
  MhDomainAliasRecord da = { 0 };
  if (!mh_directory__has_key (dir, txn, dir->dbs.domains, alabel, &found,
                              error))
    goto fail;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "domain '%s' already exists", u);
      goto fail;
    }
  found = mh_directory__read_domain_alias (dir, txn, alabel, &da, error);
  if (found < 0)
    goto fail;
  if (found)
    {
      g_autofree char *t = mh_directory_domain_to_unicode (da.target);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is already a domain alias of '%s'", u, t);
      mh_domain_alias_record_clear (&da);
      goto fail;
    }
  MhDomainRecord rec = { mh_directory__now (), NULL };
  rec.settings = g_variant_ref_sink (
      g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
  GBytes *b = mh_domain_record_encode (&rec);
  mh_domain_record_clear (&rec);
  if (!mh_directory__put (dir, txn, dir->dbs.domains, alabel, b, error))
    goto fail;
  return mh_directory__txn_commit (dir, txn, error);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

static MhDirectoryEach
delete_one (const MDB_val *k, const MDB_val *v, gpointer data, GError **error)
{
  return MH_DIRECTORY_EACH_DELETE;
}

/* Deletes every key of @dbi starting with "alabel@". */
static gboolean
delete_prefix (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
               const char *alabel, GError **error)
{
  g_autofree char *prefix = g_strconcat (alabel, "@", NULL);
  return mh_directory__each (dir, txn, dbi, prefix, delete_one, NULL,
                             "delete failed", error);
}

typedef struct
{
  const char *target;
  GPtrArray *out;
} AliasesOf;

static MhDirectoryEach
alias_of_one (const MDB_val *k, const MDB_val *v, gpointer data, GError **error)
{
  AliasesOf *a = data;
  g_autofree char *name = g_strndup (k->mv_data, k->mv_size);
  MhDomainAliasRecord r;
  if (!mh_domain_alias_record_decode_named (
          v->mv_data, v->mv_size, MH_RECORD_WHAT ("domain alias", name, NULL),
          &r, error))
    return MH_DIRECTORY_EACH_STOP;
  if (g_strcmp0 (r.target, a->target) == 0)
    g_ptr_array_add (a->out, g_steal_pointer (&name));
  mh_domain_alias_record_clear (&r);
  return MH_DIRECTORY_EACH_NEXT;
}

/* Domain aliases whose target is @alabel (A-labels, newly allocated). */
static GPtrArray *
aliases_of_domain (MhDirectory *dir, MDB_txn *txn, const char *alabel,
                   GError **error)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  AliasesOf a = { alabel, out };
  if (!mh_directory__each (dir, txn, dir->dbs.domain_aliases, NULL,
                           alias_of_one, &a, "cursor failed", error))
    return NULL;
  return g_steal_pointer (&out);
}

gboolean
mh_directory_domain_delete (MhDirectory *dir, const char *domain,
                            gboolean force, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *alabel = mh_directory_domain_to_ascii (domain, error);
  if (alabel == NULL)
    return FALSE;
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  g_autofree char *u = mh_directory_domain_to_unicode (alabel);
  g_autoptr (GPtrArray) das = NULL;
  int found = 0;
  guint n_acc = 0, n_ali = 0, n_temp = 0;
  if (!mh_directory__has_key (dir, txn, dir->dbs.domains, alabel, &found,
                              error))
    goto fail;
  if (!found)
    {
      mh_directory__not_found_domain (alabel, error);
      goto fail;
    }
  if (!mh_directory__count_prefix (dir, txn, dir->dbs.accounts, alabel, &n_acc,
                                   error)
      || !mh_directory__count_prefix (dir, txn, dir->dbs.aliases, alabel,
                                      &n_ali, error)
      || !mh_directory__count_prefix (dir, txn, dir->dbs.temp_aliases, alabel,
                                      &n_temp, error))
    goto fail;
  n_ali += n_temp;
  das = aliases_of_domain (dir, txn, alabel, error);
  if (das == NULL)
    goto fail;
  if (!force && (n_acc > 0 || n_ali > 0 || das->len > 0))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_EMPTY,
                   "domain '%s' still has %u account(s), %u alias(es) and "
                   "%u domain alias(es); delete them first or force", u,
                   n_acc, n_ali, das->len);
      goto fail;
    }
  if (!delete_prefix (dir, txn, dir->dbs.accounts, alabel, error)
      || !delete_prefix (dir, txn, dir->dbs.aliases, alabel, error)
      || !delete_prefix (dir, txn, dir->dbs.temp_aliases, alabel, error))
    goto fail;
  for (guint i = 0; i < das->len; i++)
    if (!mh_directory__del (dir, txn, dir->dbs.domain_aliases,
                            g_ptr_array_index (das, i), NULL, error))
      goto fail;
  if (!mh_directory__del (dir, txn, dir->dbs.domains, alabel, NULL, error))
    goto fail;
  return mh_directory__txn_commit (dir, txn, error);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

static MhDomainInfo *
domain_info_in_txn (MhDirectory *dir, MDB_txn *txn, const char *alabel,
                    const void *data, gsize len, GError **error)
{
  MhDomainRecord rec;
  if (!mh_domain_record_decode_named (
          data, len, MH_RECORD_WHAT ("domain", alabel, NULL), &rec, error))
    return NULL;
  guint n_acc = 0, n_ali = 0;
  if (!mh_directory__count_prefix (dir, txn, dir->dbs.accounts, alabel, &n_acc,
                                   error)
      || !mh_directory__count_prefix (dir, txn, dir->dbs.aliases, alabel,
                                      &n_ali, error))
    {
      mh_domain_record_clear (&rec);
      return NULL;
    }
  return mh_directory__domain_info_new (alabel, &rec, n_acc, n_ali);
}

MhDomainInfo *
mh_directory_domain_lookup (MhDirectory *dir, const char *domain,
                            GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *alabel = mh_directory_domain_to_ascii (domain, error);
  if (alabel == NULL)
    return NULL;
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  MDB_val v;
  MhDomainInfo *info = NULL;
  int r = mh_directory__get (dir, txn, dir->dbs.domains, alabel, &v, error);
  if (r == 0)
    mh_directory__not_found_domain (alabel, error);
  else if (r > 0)
    info = domain_info_in_txn (dir, txn, alabel, v.mv_data, v.mv_size, error);
  mdb_txn_abort (txn);
  return info;
}

typedef struct
{
  MhDirectory *dir;
  MDB_txn *txn;
  GPtrArray *out;
} ListScan;

static MhDirectoryEach
domain_list_one (const MDB_val *k, const MDB_val *v, gpointer data,
                 GError **error)
{
  ListScan *l = data;
  g_autofree char *alabel = g_strndup (k->mv_data, k->mv_size);
  MhDomainInfo *i = domain_info_in_txn (l->dir, l->txn, alabel, v->mv_data,
                                        v->mv_size, error);
  if (i == NULL)
    return MH_DIRECTORY_EACH_STOP;
  g_ptr_array_add (l->out, i);
  return MH_DIRECTORY_EACH_NEXT;
}

/* A whole table's records as info objects (see directory.h on lists: the
 * caller owns the elements). */
static GPtrArray *
list_all (MhDirectory *dir, MDB_dbi dbi, MhDirectoryEachFn fn,
          GDestroyNotify unref, GError **error)
{
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (unref);
  ListScan l = { dir, txn, out };
  gboolean ok = mh_directory__each (dir, txn, dbi, NULL, fn, &l,
                                    "cursor failed", error);
  mdb_txn_abort (txn);
  if (!ok)
    return NULL;
  g_ptr_array_set_free_func (out, NULL);
  return g_steal_pointer (&out);
}

GPtrArray *
mh_directory_domain_list (MhDirectory *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return list_all (dir, dir->dbs.domains, domain_list_one,
                   (GDestroyNotify)mh_domain_info_unref, error);
}

/* The spec of setting @name in @scope, and @value parsed for it into
 * *val_out (NULL when @value is: the setting is removed); NULL with
 * INVALID naming the known settings of the @kind ("domain"). */
static const MhSettingSpec *
parse_setting (MhDirectorySettingScope scope, const char *kind,
               const char *name, const char *value, GVariant **val_out,
               GError **error)
{
  *val_out = NULL;
  const MhSettingSpec *spec = mh_directory__setting_find (scope, name);
  if (spec == NULL)
    {
      g_auto (GStrv) names = mh_directory_setting_names (scope);
      g_autofree char *known = g_strjoinv (", ", names);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "unknown %s setting '%s' (known: %s)", kind,
                   name ? name : "", known);
      return NULL;
    }
  if (value != NULL)
    {
      GVariant *val = mh_directory__setting_parse (spec, value, error);
      if (val == NULL)
        return NULL;
      *val_out = g_variant_ref_sink (val);
    }
  return spec;
}

gboolean
mh_directory_domain_set_setting (MhDirectory *dir, const char *domain,
                                 const char *name, const char *value,
                                 GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GVariant) val = NULL;
  const MhSettingSpec *spec = parse_setting (
      MH_DIRECTORY_SETTING_DOMAIN, "domain", name, value, &val, error);
  if (spec == NULL)
    return FALSE;
  g_autofree char *alabel = mh_directory_domain_to_ascii (domain, error);
  if (alabel == NULL)
    return FALSE;
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDomainRecord rec = { 0 };
  int r = mh_directory__read_domain (dir, txn, alabel, &rec, error);
  if (r <= 0)
    {
      if (r == 0)
        mh_directory__not_found_domain (alabel, error);
      mdb_txn_abort (txn);
      return FALSE;
    }
  if (strcmp (spec->name, "case_sensitive_local_part") == 0)
    {
      gboolean before = mh_directory__domain_case_sensitive (&rec);
      gboolean after = val != NULL && g_variant_get_boolean (val);
      guint n_acc = 0, n_ali = 0;
      if (before != after
          && (!mh_directory__count_prefix (dir, txn, dir->dbs.accounts, alabel,
                                           &n_acc, error)
              || !mh_directory__count_prefix (dir, txn, dir->dbs.aliases,
                                              alabel, &n_ali, error)))
        goto fail;
      if (n_acc > 0 || n_ali > 0)
        {
          g_autofree char *u = mh_directory_domain_to_unicode (alabel);
          g_set_error (error, MH_DIRECTORY_ERROR,
                       MH_DIRECTORY_ERROR_NOT_EMPTY,
                       "case_sensitive_local_part of domain '%s' can only "
                       "change while it has no accounts or aliases", u);
          goto fail;
        }
    }
  GVariant *old = rec.settings;
  rec.settings = mh_directory__settings_replace (old, spec->name, val);
  g_variant_unref (old);
  GBytes *b = mh_domain_record_encode (&rec);
  mh_domain_record_clear (&rec);
  if (!mh_directory__put (dir, txn, dir->dbs.domains, alabel, b, error))
    {
      mdb_txn_abort (txn);
      return FALSE;
    }
  return mh_directory__txn_commit (dir, txn, error);
fail:
  mh_domain_record_clear (&rec);
  mdb_txn_abort (txn);
  return FALSE;
}

gboolean
mh_directory_domain_is_local (MhDirectory *dir, const char *domain)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_autofree char *alabel = mh_directory_domain_to_ascii (domain, NULL);
  if (alabel == NULL)
    return FALSE;
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, NULL);
  if (txn == NULL)
    return FALSE;
  int a = 0, b = 0;
  gboolean ok
      = mh_directory__has_key (dir, txn, dir->dbs.domains, alabel, &a, NULL)
        && mh_directory__has_key (dir, txn, dir->dbs.domain_aliases, alabel, &b,
                                  NULL);
  mdb_txn_abort (txn);
  return ok && (a > 0 || b > 0);
}

/* ---- Domain aliases --------------------------------------------------- */

gboolean
mh_directory_domain_alias_add (MhDirectory *dir, const char *alias_domain,
                               const char *target_domain, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *alias = mh_directory_domain_to_ascii (alias_domain, error);
  if (alias == NULL)
    return FALSE;
  g_autofree char *target = mh_directory_domain_to_ascii (target_domain,
                                                         error);
  if (target == NULL)
    return FALSE;
  g_autofree char *ua = mh_directory_domain_to_unicode (alias);
  g_autofree char *ut = mh_directory_domain_to_unicode (target);
  if (strcmp (alias, target) == 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' cannot be an alias of itself", ua);
      return FALSE;
    }
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  int found = 0;
  if (!mh_directory__has_key (dir, txn, dir->dbs.domains, target, &found,
                              error))
    goto fail;
  if (!found)
    {
      int is_alias = 0;
      if (!mh_directory__has_key (dir, txn, dir->dbs.domain_aliases, target,
                                  &is_alias, error))
        goto fail;
      if (is_alias)
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                     "target '%s' is itself a domain alias; point at the "
                     "hosted domain", ut);
      else
        mh_directory__not_found_domain (target, error);
      goto fail;
    }
  if (!mh_directory__has_key (dir, txn, dir->dbs.domains, alias, &found, error))
    goto fail;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is a hosted domain, so it cannot be an alias", ua);
      goto fail;
    }
  if (!mh_directory__has_key (dir, txn, dir->dbs.domain_aliases, alias, &found,
                              error))
    goto fail;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "domain alias '%s' already exists", ua);
      goto fail;
    }
  MhDomainAliasRecord rec = { target, mh_directory__now () };
  GBytes *b = mh_domain_alias_record_encode (&rec);
  if (!mh_directory__put (dir, txn, dir->dbs.domain_aliases, alias, b, error))
    goto fail;
  return mh_directory__txn_commit (dir, txn, error);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

gboolean
mh_directory_domain_alias_delete (MhDirectory *dir, const char *alias_domain,
                                  GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *alias = mh_directory_domain_to_ascii (alias_domain, error);
  if (alias == NULL)
    return FALSE;
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  int found = 0;
  if (!mh_directory__has_key (dir, txn, dir->dbs.domain_aliases, alias, &found,
                              error))
    goto fail;
  if (!found)
    {
      g_autofree char *u = mh_directory_domain_to_unicode (alias);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "domain alias '%s' does not exist", u);
      goto fail;
    }
  if (!mh_directory__del (dir, txn, dir->dbs.domain_aliases, alias, NULL,
                          error))
    goto fail;
  return mh_directory__txn_commit (dir, txn, error);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

MhDomainAliasInfo *
mh_directory_domain_alias_lookup (MhDirectory *dir, const char *alias_domain,
                                  GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  g_autofree char *alias = mh_directory_domain_to_ascii (alias_domain, error);
  if (alias == NULL)
    return NULL;
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  MhDomainAliasRecord rec;
  int r = mh_directory__read_domain_alias (dir, txn, alias, &rec, error);
  mdb_txn_abort (txn);
  if (r == 0)
    {
      g_autofree char *u = mh_directory_domain_to_unicode (alias);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "domain alias '%s' does not exist", u);
    }
  if (r <= 0)
    return NULL;
  return mh_directory__domain_alias_info_new (alias, &rec);
}

static MhDirectoryEach
domain_alias_list_one (const MDB_val *k, const MDB_val *v, gpointer data,
                       GError **error)
{
  ListScan *l = data;
  g_autofree char *alias = g_strndup (k->mv_data, k->mv_size);
  MhDomainAliasRecord rec;
  if (!mh_domain_alias_record_decode_named (
          v->mv_data, v->mv_size, MH_RECORD_WHAT ("domain alias", alias, NULL),
          &rec, error))
    return MH_DIRECTORY_EACH_STOP;
  g_ptr_array_add (l->out, mh_directory__domain_alias_info_new (alias, &rec));
  return MH_DIRECTORY_EACH_NEXT;
}

GPtrArray *
mh_directory_domain_alias_list (MhDirectory *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return list_all (dir, dir->dbs.domain_aliases, domain_alias_list_one,
                   (GDestroyNotify)mh_domain_alias_info_unref, error);
}

/* ---- Accounts --------------------------------------------------------- */

static gboolean
check_free_address (MhDirectory *dir, MDB_txn *txn,
                    const MhDirectoryResolved *r, GError **error)
{
  int found = 0;
  g_autofree char *shown = show_key (r->local, r->domain);
  if (!mh_directory__has_key (dir, txn, dir->dbs.accounts, r->key, &found,
                              error))
    return FALSE;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "account '%s' already exists", shown);
      return FALSE;
    }
  if (!mh_directory__has_key (dir, txn, dir->dbs.aliases, r->key, &found,
                              error))
    return FALSE;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is already an alias", shown);
      return FALSE;
    }
  if (!mh_directory__has_key (dir, txn, dir->dbs.temp_aliases, r->key, &found,
                              error))
    return FALSE;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is a temporary alias (delete it first)", shown);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_limit (MhDirectory *dir, MDB_txn *txn, const MhDirectoryResolved *r,
             const char *setting, MDB_dbi dbi, const char *what, GError **error)
{
  guint64 max = 0;
  g_variant_lookup (r->dom.settings, setting, "t", &max);
  if (max == 0)
    return TRUE;
  guint n = 0;
  if (!mh_directory__count_prefix (dir, txn, dbi, r->domain, &n, error))
    return FALSE;
  if (dbi == dir->dbs.aliases)
    {
      /* Temporary aliases count against max_aliases too (temp-alias.c). */
      guint n_temp = 0;
      if (!mh_directory__count_prefix (dir, txn, dir->dbs.temp_aliases,
                                       r->domain, &n_temp, error))
        return FALSE;
      n += n_temp;
    }
  if (n >= max)
    {
      g_autofree char *u = mh_directory_domain_to_unicode (r->domain);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_LIMIT,
                   "domain '%s' already has %u %s (%s %" G_GUINT64_FORMAT
                   ")", u, n, what, setting, max);
      return FALSE;
    }
  return TRUE;
}

static GVariant *
new_settings (void)
{
  return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"),
                                                  NULL, 0));
}

gboolean
mh_directory_account_add (MhDirectory *dir, const char *address,
                          const char *password, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  /* Syntax first (cheap, and the most useful message), then the hash,
   * outside the write txn. */
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (address, &a, error))
    return FALSE;
  mh_directory__address_clear (&a);
  g_autofree char *hash = NULL;
  if (password != NULL)
    {
      hash = mh_directory__password_hash_cost (password, dir->hash_cost,
                                               error);
      if (hash == NULL)
        return FALSE;
    }
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDirectoryResolved r;
  if (!mh_directory__resolve (dir, txn, address, &r, error))
    goto fail;
  if (!check_free_address (dir, txn, &r, error)
      || !check_limit (dir, txn, &r, "max_accounts", dir->dbs.accounts,
                       "accounts", error))
    goto fail_r;
  MhAccountRecord rec = { NULL,
                          g_steal_pointer (&hash),
                          TRUE,
                          MH_DIRECTORY_PROTOCOL_ALL,
                          mh_directory__now (),
                          new_settings () };
  GBytes *b = mh_account_record_encode (&rec);
  mh_account_record_clear (&rec);
  if (!mh_directory__put (dir, txn, dir->dbs.accounts, r.key, b, error))
    goto fail_r;
  mh_directory__resolved_clear (&r);
  return mh_directory__txn_commit (dir, txn, error);
fail_r:
  mh_directory__resolved_clear (&r);
fail:
  mdb_txn_abort (txn);
  if (hash != NULL)
    mh_core__wipe (hash, strlen (hash));
  return FALSE;
}

static void
not_found_account (const MhDirectoryResolved *r, GError **error)
{
  g_autofree char *shown = show_key (r->local, r->domain);
  g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
               "account '%s' does not exist", shown);
}

gboolean
mh_directory_account_delete (MhDirectory *dir, const char *address,
                             GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDirectoryResolved r;
  int found = 0;
  if (!mh_directory__resolve (dir, txn, address, &r, error))
    goto fail;
  if (!mh_directory__has_key (dir, txn, dir->dbs.accounts, r.key, &found,
                              error))
    goto fail_r;
  if (!found)
    {
      not_found_account (&r, error);
      goto fail_r;
    }
  if (!mh_directory__del (dir, txn, dir->dbs.accounts, r.key, NULL, error))
    goto fail_r;
  mh_directory__resolved_clear (&r);
  return mh_directory__txn_commit (dir, txn, error);
fail_r:
  mh_directory__resolved_clear (&r);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

static gpointer
account_in_txn (MhDirectory *dir, MDB_txn *txn, const MhDirectoryResolved *r,
                const char *address, GError **error)
{
  MhAccountRecord rec;
  int found = mh_directory__read_account (dir, txn, r->key, &rec, error);
  if (found == 0)
    not_found_account (r, error);
  if (found <= 0)
    return NULL;
  return mh_directory__account_info_new (r->local, r->domain, &rec);
}

MhAccountInfo *
mh_directory_account_lookup (MhDirectory *dir, const char *address,
                             GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return mh_directory__lookup (dir, address, account_in_txn, error);
}

typedef gboolean (*ListDecode) (MhDirectory *dir, const char *local,
                                const char *alabel, const MDB_val *v,
                                GPtrArray *out, GError **error);

typedef struct
{
  MhDirectory *dir;
  ListDecode decode;
  GPtrArray *out;
} RangeScan;

static MhDirectoryEach
range_one (const MDB_val *k, const MDB_val *v, gpointer data, GError **error)
{
  RangeScan *r = data;
  g_autofree char *local = NULL;
  g_autofree char *alabel = NULL;
  if (!mh_directory__key_split (k->mv_data, k->mv_size, &local, &alabel))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                   "%s: malformed key '%.*s'", r->dir->path, (int)k->mv_size,
                   (const char *)k->mv_data);
      return MH_DIRECTORY_EACH_STOP;
    }
  return r->decode (r->dir, local, alabel, v, r->out, error)
             ? MH_DIRECTORY_EACH_NEXT
             : MH_DIRECTORY_EACH_STOP;
}

/* The "alabel@local" records of @dbi, of @domain or (NULL) all, as info
 * objects (the caller owns the elements, see directory.h on lists). */
static GPtrArray *
list_range (MhDirectory *dir, MDB_dbi dbi, const char *domain,
            ListDecode decode, GDestroyNotify unref, GError **error)
{
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, error);
  if (txn == NULL)
    return NULL;
  g_autofree char *prefix = NULL;
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (unref);
  if (domain != NULL)
    {
      g_autofree char *alabel = mh_directory_domain_to_ascii (domain, error);
      int found = 0;
      if (alabel == NULL
          || !mh_directory__has_key (dir, txn, dir->dbs.domains, alabel, &found,
                                     error))
        goto fail;
      if (!found)
        {
          mh_directory__not_found_domain (alabel, error);
          goto fail;
        }
      prefix = g_strconcat (alabel, "@", NULL);
    }
  RangeScan r = { dir, decode, out };
  if (!mh_directory__each (dir, txn, dbi, prefix, range_one, &r,
                           "cursor failed", error))
    goto fail;
  mdb_txn_abort (txn);
  g_ptr_array_set_free_func (out, NULL);
  return g_steal_pointer (&out);
fail:
  mdb_txn_abort (txn);
  return NULL;
}

static gboolean
decode_account (MhDirectory *dir, const char *local, const char *alabel,
                const MDB_val *v, GPtrArray *out, GError **error)
{
  MhAccountRecord rec;
  if (!mh_account_record_decode_named (
          v->mv_data, v->mv_size, MH_RECORD_WHAT ("account", local, alabel),
          &rec, error))
    return FALSE;
  g_ptr_array_add (out, mh_directory__account_info_new (local, alabel, &rec));
  return TRUE;
}

GPtrArray *
mh_directory_account_list (MhDirectory *dir, const char *domain,
                           GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return list_range (dir, dir->dbs.accounts, domain, decode_account,
                     (GDestroyNotify)mh_account_info_unref, error);
}

/* Read-modify-write of one account record in one write txn. */
typedef gboolean (*AccountEdit) (MhAccountRecord *rec, gpointer data,
                                 GError **error);

static gboolean
edit_account (MhDirectory *dir, const char *address, AccountEdit edit,
              gpointer data, GError **error)
{
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDirectoryResolved r;
  MhAccountRecord rec;
  if (!mh_directory__resolve (dir, txn, address, &r, error))
    goto fail;
  int found = mh_directory__read_account (dir, txn, r.key, &rec, error);
  if (found == 0)
    not_found_account (&r, error);
  if (found <= 0)
    goto fail_r;
  if (!edit (&rec, data, error))
    {
      mh_account_record_clear (&rec);
      goto fail_r;
    }
  GBytes *b = mh_account_record_encode (&rec);
  mh_account_record_clear (&rec);
  if (!mh_directory__put (dir, txn, dir->dbs.accounts, r.key, b, error))
    goto fail_r;
  mh_directory__resolved_clear (&r);
  return mh_directory__txn_commit (dir, txn, error);
fail_r:
  mh_directory__resolved_clear (&r);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

static gboolean
edit_hash (MhAccountRecord *rec, gpointer data, GError **error)
{
  if (rec->hash != NULL)
    mh_core__wipe (rec->hash, strlen (rec->hash));
  g_free (rec->hash);
  rec->hash = g_strdup (data);
  return TRUE;
}

gboolean
mh_directory_account_set_password (MhDirectory *dir, const char *address,
                                   const char *password, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (address, &a, error))
    return FALSE;
  mh_directory__address_clear (&a);
  g_autofree char *hash = mh_directory__password_hash_cost (
      password, dir->hash_cost, error);
  if (hash == NULL)
    return FALSE;
  gboolean ok = edit_account (dir, address, edit_hash, hash, error);
  mh_core__wipe (hash, strlen (hash));
  return ok;
}

gboolean
mh_directory_account_set_password_hash (MhDirectory *dir,
                                        const char *address, const char *hash,
                                        GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (hash != NULL && !mh_directory_password_check_hash (hash, error))
    return FALSE;
  return edit_account (dir, address, edit_hash, (gpointer) hash, error);
}

static gboolean
edit_display_name (MhAccountRecord *rec, gpointer data, GError **error)
{
  g_free (rec->display_name);
  rec->display_name = g_strdup (data);
  return TRUE;
}

gboolean
mh_directory_account_set_display_name (MhDirectory *dir, const char *address,
                                       const char *display_name,
                                       GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (display_name != NULL && *display_name == '\0')
    display_name = NULL;
  if (display_name != NULL)
    {
      if (!g_utf8_validate (display_name, -1, NULL))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "display name is not valid UTF-8");
          return FALSE;
        }
      gsize len = strlen (display_name);
      if (len > MH_LIMIT_DISPLAY_NAME_MAX)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "display name is too long: %zu bytes, at most %d",
                       len, MH_LIMIT_DISPLAY_NAME_MAX);
          return FALSE;
        }
      for (const char *p = display_name; *p; p++)
        if ((guchar) *p < 0x20 || *p == 0x7f)
          {
            g_set_error (error, MH_DIRECTORY_ERROR,
                         MH_DIRECTORY_ERROR_INVALID,
                         "display name contains a control character");
            return FALSE;
          }
    }
  return edit_account (dir, address, edit_display_name,
                       (gpointer) display_name, error);
}

static gboolean
edit_enabled (MhAccountRecord *rec, gpointer data, GError **error)
{
  rec->enabled = GPOINTER_TO_INT (data);
  return TRUE;
}

gboolean
mh_directory_account_set_enabled (MhDirectory *dir, const char *address,
                                  gboolean enabled, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  return edit_account (dir, address, edit_enabled,
                       GINT_TO_POINTER (enabled ? 1 : 0), error);
}

static gboolean
edit_protocols (MhAccountRecord *rec, gpointer data, GError **error)
{
  rec->protocols = GPOINTER_TO_UINT (data);
  return TRUE;
}

gboolean
mh_directory_account_set_protocols (MhDirectory *dir, const char *address,
                                    MhDirectoryProtocols protocols,
                                    GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if ((guint) protocols & ~(guint) MH_DIRECTORY_PROTOCOL_ALL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "unknown protocol flags 0x%x",
                   (guint) protocols & ~(guint) MH_DIRECTORY_PROTOCOL_ALL);
      return FALSE;
    }
  return edit_account (dir, address, edit_protocols,
                       GUINT_TO_POINTER ((guint) protocols), error);
}

typedef struct
{
  const char *name;
  GVariant *value;
} SettingEdit;

static gboolean
edit_setting (MhAccountRecord *rec, gpointer data, GError **error)
{
  SettingEdit *e = data;
  GVariant *old = rec->settings;
  rec->settings = mh_directory__settings_replace (old, e->name, e->value);
  g_variant_unref (old);
  return TRUE;
}

gboolean
mh_directory_account_set_setting (MhDirectory *dir, const char *address,
                                  const char *name, const char *value,
                                  GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GVariant) val = NULL;
  const MhSettingSpec *spec = parse_setting (
      MH_DIRECTORY_SETTING_ACCOUNT, "account", name, value, &val, error);
  if (spec == NULL)
    return FALSE;
  SettingEdit e = { spec->name, val };
  return edit_account (dir, address, edit_setting, &e, error);
}

/* ---- Authentication --------------------------------------------------- */

static const char *
dummy_hash (MhDirectory *dir, GError **error)
{
  g_mutex_lock (&dir->dummy_lock);
  if (dir->dummy_hash == NULL)
    dir->dummy_hash = mh_directory__dummy_hash (dir->hash_cost, error);
  const char *h = dir->dummy_hash;
  g_mutex_unlock (&dir->dummy_lock);
  return h;
}

static gboolean
protocol_flag (const char *protocol, MhDirectoryProtocols *flag,
               GError **error)
{
  *flag = MH_DIRECTORY_PROTOCOL_NONE;
  if (protocol == NULL)
    return TRUE;
  if (strchr (protocol, ',') != NULL
      || g_ascii_strcasecmp (protocol, "all") == 0
      || g_ascii_strcasecmp (protocol, "none") == 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "unknown protocol '%s' (expected imap, pop3, submission "
                   "or managesieve)", protocol);
      return FALSE;
    }
  return mh_directory_protocols_from_string (protocol, flag, error);
}

MhAccountInfo *
mh_directory_authenticate_account (MhDirectory *dir, const char *address,
                                   const char *password, const char *protocol,
                                   GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  MhDirectoryProtocols flag;
  if (!protocol_flag (protocol, &flag, error))
    return NULL;
  /* Made before the look-up, so the first unknown user does not pay for
   * it and stand out. */
  const char *dummy = dummy_hash (dir, error);
  if (dummy == NULL)
    return NULL;

  g_autoptr (GError) lerr = NULL;
  g_autoptr (MhAccountInfo) info = mh_directory_account_lookup (dir, address,
                                                                &lerr);
  if (info == NULL && lerr->code != MH_DIRECTORY_ERROR_NOT_FOUND
      && lerr->code != MH_DIRECTORY_ERROR_INVALID)
    {
      g_propagate_error (error, g_steal_pointer (&lerr));
      return NULL;
    }
  const char *hash = info ? mh_directory__account_info_get_hash (info) : NULL;
  gboolean ok = FALSE;
  if (password != NULL && strlen (password) <= MH_LIMIT_PASSWORD_MAX)
    {
      ok = mh_directory_password_verify (password, hash ? hash : dummy);
      ok = ok && hash != NULL;
    }
  if (!ok)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_AUTH_FAILED,
                   "authentication failed");
      return NULL;
    }
  if (!mh_account_info_get_enabled (info))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_DISABLED,
                   "account '%s' is disabled",
                   mh_account_info_get_address (info));
      return NULL;
    }
  if (flag != MH_DIRECTORY_PROTOCOL_NONE
      && !(mh_account_info_get_protocols (info) & flag))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_DISABLED,
                   "account '%s' may not use %s",
                   mh_account_info_get_address (info), protocol);
      return NULL;
    }
  return g_steal_pointer (&info);
}

gboolean
mh_directory_authenticate (MhDirectory *dir, const char *address,
                           const char *password, const char *protocol,
                           GError **error)
{
  g_autoptr (MhAccountInfo) info =
      mh_directory_authenticate_account (dir, address, password, protocol,
                                         error);
  return info != NULL;
}

/* ---- Aliases ---------------------------------------------------------- */

/* Normalises one alias target inside @txn. Local targets (in a hosted
 * domain or a domain alias) are folded per their domain and must exist
 * when @must_exist. */
static char *
alias_target (MhDirectory *dir, MDB_txn *txn, const char *target,
              gboolean must_exist, GError **error)
{
  MhDirectoryAddress a;
  g_autoptr (GError) perr = NULL;
  if (!mh_directory__address_parse (target, &a, &perr))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias target: %s", perr->message);
      return NULL;
    }
  MhDomainRecord dom = { 0 };
  MhDomainAliasRecord da = { 0 };
  const char *hosted = NULL;
  int r = mh_directory__read_domain (dir, txn, a.domain, &dom, error);
  if (r < 0)
    goto fail;
  if (r > 0)
    hosted = a.domain;
  else
    {
      r = mh_directory__read_domain_alias (dir, txn, a.domain, &da, error);
      if (r < 0)
        goto fail;
      if (r > 0)
        {
          hosted = da.target;
          if (mh_directory__read_domain (dir, txn, hosted, &dom, error) < 0)
            goto fail;
        }
    }
  char *out;
  if (hosted == NULL)
    out = g_strconcat (a.local, "@", a.domain, NULL);  /* external */
  else
    {
      g_autofree char *local = mh_directory__local_fold (
          a.local, mh_directory__domain_case_sensitive (&dom));
      out = g_strconcat (local, "@", a.domain, NULL);
      if (must_exist)
        {
          g_autofree char *key = mh_directory__address_key (local, hosted);
          int acc = 0, ali = 0;
          if (!mh_directory__has_key (dir, txn, dir->dbs.accounts, key, &acc,
                                      error)
              || !mh_directory__has_key (dir, txn, dir->dbs.aliases, key, &ali,
                                         error))
            {
              g_free (out);
              goto fail;
            }
          if (!acc && !ali)
            {
              g_autofree char *shown = show_key (local, a.domain);
              g_autofree char *ud = mh_directory_domain_to_unicode (a.domain);
              g_set_error (error, MH_DIRECTORY_ERROR,
                           MH_DIRECTORY_ERROR_NOT_FOUND,
                           "alias target '%s' does not exist (domain '%s' "
                           "is hosted here, so the target must be an "
                           "account or alias)", shown, ud);
              g_free (out);
              goto fail;
            }
        }
    }
  mh_domain_record_clear (&dom);
  mh_domain_alias_record_clear (&da);
  mh_directory__address_clear (&a);
  return out;
fail:
  mh_domain_record_clear (&dom);
  mh_domain_alias_record_clear (&da);
  mh_directory__address_clear (&a);
  return NULL;
}

static gboolean
resolve_alias_source (MhDirectory *dir, MDB_txn *txn, const char *address,
                      MhDirectoryResolved *r, GError **error)
{
  g_autoptr (GError) rerr = NULL;
  if (mh_directory__resolve (dir, txn, address, r, &rerr))
    return TRUE;
  if (rerr->code == MH_DIRECTORY_ERROR_NOT_FOUND)
    {
      /* Say so when the domain is an alias domain: the alias belongs in
       * its target. */
      MhDirectoryAddress a;
      if (mh_directory__address_parse (address, &a, NULL))
        {
          MhDomainAliasRecord da;
          if (mh_directory__read_domain_alias (dir, txn, a.domain, &da, NULL)
              > 0)
            {
              g_autofree char *u = mh_directory_domain_to_unicode (a.domain);
              g_autofree char *t = mh_directory_domain_to_unicode (da.target);
              g_set_error (error, MH_DIRECTORY_ERROR,
                           MH_DIRECTORY_ERROR_INVALID,
                           "domain '%s' is a domain alias of '%s': add the "
                           "alias in '%s'", u, t, t);
              mh_domain_alias_record_clear (&da);
              mh_directory__address_clear (&a);
              return FALSE;
            }
          mh_directory__address_clear (&a);
        }
    }
  g_propagate_error (error, g_steal_pointer (&rerr));
  return FALSE;
}

gboolean
mh_directory_alias_add (MhDirectory *dir, const char *address,
                        const char *const *targets, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  guint n_new = targets ? g_strv_length ((char **) targets) : 0;
  if (n_new == 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias '%s' needs at least one target",
                   address ? address : "");
      return FALSE;
    }
  if (n_new > MH_LIMIT_ALIAS_TARGETS_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias '%s' has too many targets: %u, at most %d",
                   address ? address : "", n_new, MH_LIMIT_ALIAS_TARGETS_MAX);
      return FALSE;
    }
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDirectoryResolved r;
  MhAliasRecord rec = { 0 };
  g_autofree char *shown = NULL;
  if (!resolve_alias_source (dir, txn, address, &r, error))
    goto fail;
  shown = show_key (r.local, r.domain);
  int found = 0;
  if (!mh_directory__has_key (dir, txn, dir->dbs.accounts, r.key, &found,
                              error))
    goto fail_r;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is an account; an alias cannot shadow it", shown);
      goto fail_r;
    }
  if (!mh_directory__has_key (dir, txn, dir->dbs.temp_aliases, r.key, &found,
                              error))
    goto fail_r;
  if (found)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is a temporary alias (delete it first)", shown);
      goto fail_r;
    }
  found = mh_directory__read_alias (dir, txn, r.key, &rec, error);
  if (found < 0)
    goto fail_r;
  if (found == 0)
    {
      if (!check_limit (dir, txn, &r, "max_aliases", dir->dbs.aliases,
                        "aliases", error))
        goto fail_r;
      rec.targets = g_ptr_array_new_with_free_func (g_free);
      rec.created = mh_directory__now ();
    }
  for (guint i = 0; i < n_new; i++)
    {
      g_autofree char *t = alias_target (dir, txn, targets[i], FALSE, error);
      if (t == NULL)
        goto fail_r;
      g_autofree char *self = g_strconcat (r.local, "@", r.domain, NULL);
      if (strcmp (t, self) == 0)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "alias '%s' cannot point to itself", shown);
          goto fail_r;
        }
      /* Now that it is not a loop: a local target must exist. */
      g_autofree char *checked = alias_target (dir, txn, targets[i], TRUE,
                                               error);
      if (checked == NULL)
        goto fail_r;
      for (guint k = 0; k < rec.targets->len; k++)
        if (strcmp (g_ptr_array_index (rec.targets, k), t) == 0)
          {
            g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                         "alias '%s' already has target '%s'", shown, t);
            goto fail_r;
          }
      g_ptr_array_add (rec.targets, g_steal_pointer (&t));
    }
  if (rec.targets->len > MH_LIMIT_ALIAS_TARGETS_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "alias '%s' would have %u targets, at most %d", shown,
                   rec.targets->len, MH_LIMIT_ALIAS_TARGETS_MAX);
      goto fail_r;
    }
  GBytes *b = mh_alias_record_encode (&rec);
  if (!mh_directory__put (dir, txn, dir->dbs.aliases, r.key, b, error))
    goto fail_r;
  mh_alias_record_clear (&rec);
  mh_directory__resolved_clear (&r);
  return mh_directory__txn_commit (dir, txn, error);
fail_r:
  mh_alias_record_clear (&rec);
  mh_directory__resolved_clear (&r);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

gboolean
mh_directory_alias_delete (MhDirectory *dir, const char *address,
                           const char *target, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  MhDirectoryResolved r;
  MhAliasRecord rec = { 0 };
  g_autofree char *shown = NULL;
  if (!mh_directory__resolve (dir, txn, address, &r, error))
    goto fail;
  shown = show_key (r.local, r.domain);
  int found = mh_directory__read_alias (dir, txn, r.key, &rec, error);
  if (found == 0)
    g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                 "alias '%s' does not exist", shown);
  if (found <= 0)
    goto fail_r;
  if (target == NULL)
    {
      if (!mh_directory__del (dir, txn, dir->dbs.aliases, r.key, NULL, error))
        goto fail_r;
    }
  else
    {
      g_autofree char *t = alias_target (dir, txn, target, FALSE, error);
      if (t == NULL)
        goto fail_r;
      guint idx = G_MAXUINT;
      for (guint k = 0; k < rec.targets->len; k++)
        if (strcmp (g_ptr_array_index (rec.targets, k), t) == 0)
          idx = k;
      if (idx == G_MAXUINT)
        {
          g_set_error (error, MH_DIRECTORY_ERROR,
                       MH_DIRECTORY_ERROR_NOT_FOUND,
                       "alias '%s' has no target '%s'", shown, t);
          goto fail_r;
        }
      g_ptr_array_remove_index (rec.targets, idx);
      if (rec.targets->len == 0)
        {
          if (!mh_directory__del (dir, txn, dir->dbs.aliases, r.key, NULL,
                                  error))
            goto fail_r;
        }
      else
        {
          GBytes *b = mh_alias_record_encode (&rec);
          if (!mh_directory__put (dir, txn, dir->dbs.aliases, r.key, b, error))
            goto fail_r;
        }
    }
  mh_alias_record_clear (&rec);
  mh_directory__resolved_clear (&r);
  return mh_directory__txn_commit (dir, txn, error);
fail_r:
  mh_alias_record_clear (&rec);
  mh_directory__resolved_clear (&r);
fail:
  mdb_txn_abort (txn);
  return FALSE;
}

static gpointer
alias_in_txn (MhDirectory *dir, MDB_txn *txn, const MhDirectoryResolved *r,
              const char *address, GError **error)
{
  MhAliasRecord rec;
  int found = mh_directory__read_alias (dir, txn, r->key, &rec, error);
  if (found == 0)
    {
      g_autofree char *shown = show_key (r->local, r->domain);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND,
                   "alias '%s' does not exist", shown);
    }
  if (found <= 0)
    return NULL;
  return mh_directory__alias_info_new (r->local, r->domain, &rec);
}

MhAliasInfo *
mh_directory_alias_lookup (MhDirectory *dir, const char *address,
                           GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return mh_directory__lookup (dir, address, alias_in_txn, error);
}

static gboolean
decode_alias (MhDirectory *dir, const char *local, const char *alabel,
              const MDB_val *v, GPtrArray *out, GError **error)
{
  MhAliasRecord rec;
  if (!mh_alias_record_decode_named (v->mv_data, v->mv_size,
                                     MH_RECORD_WHAT ("alias", local, alabel),
                                     &rec, error))
    return FALSE;
  g_ptr_array_add (out, mh_directory__alias_info_new (local, alabel, &rec));
  return TRUE;
}

GPtrArray *
mh_directory_alias_list (MhDirectory *dir, const char *domain, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return list_range (dir, dir->dbs.aliases, domain, decode_alias,
                     (GDestroyNotify)mh_alias_info_unref, error);
}

/* ---- Bulk import ------------------------------------------------------ */

typedef struct
{
  guint tag;
  char *address;
  char *hash;
  gint64 quota;
} ImportEntry;

typedef struct
{
  guint tag;
  int code;
  char *message;
} ImportFailure;

struct _MhDirectoryImport
{
  gint refcount;
  MhDirectory *dir;
  GArray *entries;       /* ImportEntry */
  GHashTable *seen;      /* "alabel@local" as given -> tag */
  GArray *failures;      /* ImportFailure */
  gboolean committed;
};

static void
import_entry_clear (gpointer p)
{
  ImportEntry *e = p;
  g_free (e->address);
  if (e->hash != NULL)
    mh_core__wipe (e->hash, strlen (e->hash));
  g_free (e->hash);
}

static void
import_failure_clear (gpointer p)
{
  ImportFailure *f = p;
  g_free (f->message);
}

MhDirectoryImport *
mh_directory_import_new (MhDirectory *dir)
{
  g_return_val_if_fail (dir != NULL, NULL);
  MhDirectoryImport *imp = g_new0 (MhDirectoryImport, 1);
  imp->refcount = 1;
  imp->dir = mh_directory_ref (dir);
  imp->entries = g_array_new (FALSE, TRUE, sizeof (ImportEntry));
  g_array_set_clear_func (imp->entries, import_entry_clear);
  imp->failures = g_array_new (FALSE, TRUE, sizeof (ImportFailure));
  g_array_set_clear_func (imp->failures, import_failure_clear);
  imp->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return imp;
}

MhDirectoryImport *
mh_directory_import_ref (MhDirectoryImport *imp)
{
  g_return_val_if_fail (imp != NULL, NULL);
  g_atomic_int_inc (&imp->refcount);
  return imp;
}

void
mh_directory_import_unref (MhDirectoryImport *imp)
{
  if (imp == NULL || !g_atomic_int_dec_and_test (&imp->refcount))
    return;
  g_array_unref (imp->entries);
  g_array_unref (imp->failures);
  g_hash_table_unref (imp->seen);
  mh_directory_unref (imp->dir);
  g_free (imp);
}

G_DEFINE_BOXED_TYPE (MhDirectoryImport, mh_directory_import,
                     mh_directory_import_ref, mh_directory_import_unref)

gboolean
mh_directory_import_add_account (MhDirectoryImport *imp, guint tag,
                                 const char *address,
                                 const char *password_hash,
                                 gint64 quota_bytes, GError **error)
{
  g_return_val_if_fail (imp != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (imp->committed)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
                   "this import was already committed");
      return FALSE;
    }
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (address, &a, error))
    return FALSE;
  g_autofree char *key = mh_directory__address_key (a.local, a.domain);
  mh_directory__address_clear (&a);
  if (password_hash != NULL
      && !mh_directory_password_check_hash (password_hash, error))
    return FALSE;
  if (quota_bytes < -1)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "quota %" G_GINT64_FORMAT " is negative", quota_bytes);
      return FALSE;
    }
  gpointer prev;
  if (g_hash_table_lookup_extended (imp->seen, key, NULL, &prev))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                   "'%s' is a duplicate of entry %u", address,
                   GPOINTER_TO_UINT (prev));
      return FALSE;
    }
  g_hash_table_insert (imp->seen, g_steal_pointer (&key),
                       GUINT_TO_POINTER (tag));
  ImportEntry e = { tag, g_strdup (address), g_strdup (password_hash),
                    quota_bytes };
  g_array_append_val (imp->entries, e);
  return TRUE;
}

static void
import_fail (MhDirectoryImport *imp, guint tag, GError *err)
{
  ImportFailure f = { tag, err->code, g_strdup (err->message) };
  g_array_append_val (imp->failures, f);
}

typedef struct
{
  guint64 max_accounts;
  guint count;
} DomainQuota;

gboolean
mh_directory_import_commit (MhDirectoryImport *imp,
                            MhDirectoryImportFlags flags, guint *added_out,
                            GError **error)
{
  g_return_val_if_fail (imp != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  MhDirectory *dir = imp->dir;
  gboolean dry = (flags & MH_DIRECTORY_IMPORT_DRY_RUN) != 0;
  gboolean partial = (flags & MH_DIRECTORY_IMPORT_PARTIAL) != 0;
  if (added_out)
    *added_out = 0;
  if (imp->committed)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
                   "this import was already committed");
      return FALSE;
    }
  g_array_set_size (imp->failures, 0);
  MDB_txn *txn = mh_directory__txn_begin (dir, !dry, error);
  if (txn == NULL)
    return FALSE;
  g_autoptr (GHashTable) domains = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GHashTable) keys = g_hash_table_new_full (g_str_hash,
                                                       g_str_equal, g_free,
                                                       NULL);
  gint64 now = mh_directory__now ();
  guint added = 0;
  for (guint i = 0; i < imp->entries->len; i++)
    {
      ImportEntry *e = &g_array_index (imp->entries, ImportEntry, i);
      g_autoptr (GError) eerr = NULL;
      MhDirectoryResolved r;
      if (!mh_directory__resolve (dir, txn, e->address, &r, &eerr))
        {
          if (eerr->code != MH_DIRECTORY_ERROR_NOT_FOUND
              && eerr->code != MH_DIRECTORY_ERROR_INVALID)
            {
              g_propagate_error (error, g_steal_pointer (&eerr));
              mdb_txn_abort (txn);
              return FALSE;
            }
          import_fail (imp, e->tag, eerr);
          continue;
        }
      gpointer prev;
      DomainQuota *dq = g_hash_table_lookup (domains, r.domain);
      if (dq == NULL)
        {
          dq = g_new0 (DomainQuota, 1);
          g_variant_lookup (r.dom.settings, "max_accounts", "t",
                            &dq->max_accounts);
          if (dq->max_accounts > 0
              && !mh_directory__count_prefix (dir, txn, dir->dbs.accounts,
                                              r.domain, &dq->count, error))
            {
              g_free (dq);
              mh_directory__resolved_clear (&r);
              mdb_txn_abort (txn);
              return FALSE;
            }
          g_hash_table_insert (domains, g_strdup (r.domain), dq);
        }
      if (g_hash_table_lookup_extended (keys, r.key, NULL, &prev))
        {
          g_autofree char *shown = show_key (r.local, r.domain);
          eerr = g_error_new (MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS,
                              "'%s' is a duplicate of entry %u", shown,
                              GPOINTER_TO_UINT (prev));
        }
      else if (!check_free_address (dir, txn, &r, &eerr))
        {
          if (eerr->code != MH_DIRECTORY_ERROR_EXISTS)
            {
              g_propagate_error (error, g_steal_pointer (&eerr));
              mh_directory__resolved_clear (&r);
              mdb_txn_abort (txn);
              return FALSE;
            }
        }
      else if (dq->max_accounts > 0 && dq->count >= dq->max_accounts)
        {
          g_autofree char *u = mh_directory_domain_to_unicode (r.domain);
          eerr = g_error_new (MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_LIMIT,
                              "domain '%s' is full (max_accounts %"
                              G_GUINT64_FORMAT ")", u, dq->max_accounts);
        }
      if (eerr != NULL)
        {
          import_fail (imp, e->tag, eerr);
          mh_directory__resolved_clear (&r);
          continue;
        }
      g_hash_table_insert (keys, g_strdup (r.key), GUINT_TO_POINTER (e->tag));
      dq->count++;
      if (!dry)
        {
          GVariant *settings = new_settings ();
          if (e->quota >= 0)
            {
              GVariant *s2 = mh_directory__settings_replace (
                  settings, "quota_bytes",
                  g_variant_new_uint64 ((guint64) e->quota));
              g_variant_unref (settings);
              settings = s2;
            }
          MhAccountRecord rec = { NULL, e->hash, TRUE,
                                  MH_DIRECTORY_PROTOCOL_ALL, now, settings };
          GBytes *b = mh_account_record_encode (&rec);
          g_variant_unref (settings);
          if (!mh_directory__put (dir, txn, dir->dbs.accounts, r.key, b, error))
            {
              mh_directory__resolved_clear (&r);
              mdb_txn_abort (txn);
              return FALSE;
            }
        }
      added++;
      mh_directory__resolved_clear (&r);
    }
  guint n_fail = imp->failures->len;
  if (dry || (n_fail > 0 && !partial))
    {
      mdb_txn_abort (txn);
      if (n_fail > 0)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "%u of %u entries failed; nothing was added", n_fail,
                       imp->entries->len);
          return FALSE;
        }
      return TRUE;
    }
  if (!mh_directory__txn_commit (dir, txn, error))
    return FALSE;
  imp->committed = TRUE;
  if (added_out)
    *added_out = added;
  return TRUE;
}

guint
mh_directory_import_get_n_failures (MhDirectoryImport *imp)
{
  g_return_val_if_fail (imp != NULL, 0);
  return imp->failures->len;
}

const char *
mh_directory_import_get_failure (MhDirectoryImport *imp, guint index,
                                 guint *tag_out, int *code_out)
{
  g_return_val_if_fail (imp != NULL, NULL);
  g_return_val_if_fail (index < imp->failures->len, NULL);
  ImportFailure *f = &g_array_index (imp->failures, ImportFailure, index);
  if (tag_out)
    *tag_out = f->tag;
  if (code_out)
    *code_out = f->code;
  return f->message;
}
