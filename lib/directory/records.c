/* lib/directory records: the byte format of LMDB values, the settings
 * table, and the info objects handed to callers.
 *
 * Design notes
 * - Every value is a GVariant "(uv)": a record format version and a tuple
 *   whose type belongs to that version. A new field means a new version
 *   (and a migration that rewrites old records, or a reader that accepts
 *   both): an old reader meets a newer record as a clear CORRUPT error
 *   naming it, never as misread fields.
 * - Values from LMDB are untrusted bytes (another program, a disk error):
 *   they are copied into aligned memory and checked with
 *   g_variant_is_normal_form() before any field is read.
 * - Settings are an a{sv} dictionary validated against the table below,
 *   so new settings need one row here and nothing else in the format.
 *   Later layers (catch-all, ...) add rows.
 * - Info objects are immutable snapshots: reference counted, copied out of
 *   the transaction, safe to pass between threads.
 */
#include "directory-private.h"

#include <string.h>

#define DOM (1u << MH_DIRECTORY_SETTING_DOMAIN)
#define ACC (1u << MH_DIRECTORY_SETTING_ACCOUNT)

static const MhSettingSpec settings_table[] = {
  { "max_accounts", DOM, MH_SETTING_COUNT,
    "number of accounts the domain may have (count; 0 = no limit)", NULL },
  { "max_aliases", DOM, MH_SETTING_COUNT,
    "number of aliases the domain may have (count; 0 = no limit)", NULL },
  { "quota_bytes", DOM | ACC, MH_SETTING_SIZE,
    "storage quota, e.g. 1G (size; for a domain the total of its accounts; "
    "0 = no limit)", NULL },
  { "quota_messages", DOM | ACC, MH_SETTING_COUNT,
    "message count quota (count; for a domain the total; 0 = no limit)",
    NULL },
  { "account_quota_bytes", DOM, MH_SETTING_SIZE,
    "default quota_bytes of the domain's accounts (size)", NULL },
  { "account_quota_messages", DOM, MH_SETTING_COUNT,
    "default quota_messages of the domain's accounts (count)", NULL },
  { "quota_tempfail", DOM, MH_SETTING_BOOL,
    "over quota: true = 452 4.2.2 (retry later), false = 552 5.2.2 "
    "(bounce); unset = [quota] tempfail (boolean)", NULL },
  { "case_sensitive_local_part", DOM, MH_SETTING_BOOL,
    "keep the case of local parts (boolean; default false: lower-cased)",
    NULL },
  /* Address resolution (lib/resolve, docs/resolve.md). */
  { "catch_all", DOM, MH_SETTING_STRING,
    "address that gets mail for unknown local parts (address; used only "
    "when nothing else matches)", mh_directory__check_catch_all },
  { "routing", DOM, MH_SETTING_STRING,
    "'default', or 'off': only addresses listed as accounts, aliases, "
    "temporary aliases or groups are accepted (no sub-addresses, no "
    "catch-all)", mh_directory__check_routing },
  { "subaddress_separator", DOM, MH_SETTING_STRING,
    "characters that start a sub-address tag, e.g. '+' (the default) or "
    "'+-'; 'none' turns sub-addressing off", mh_directory__check_separator },
  { "group_addresses", DOM, MH_SETTING_STRING,
    "comma-separated local parts (e.g. 'all') that reach every enabled "
    "account of the domain, from its own authenticated senders only",
    mh_directory__check_group_addresses },
  { "forward_to", ACC, MH_SETTING_STRING,
    "comma-separated addresses the account's mail is forwarded to",
    mh_directory__check_forward_to },
  { "forward_keep_copy", ACC, MH_SETTING_BOOL,
    "with forward_to: also keep a copy in the account (boolean; default "
    "false)", NULL },
  { "subaddress_folders", ACC, MH_SETTING_BOOL,
    "file user+tag into the folder 'tag' when it exists (boolean; default "
    "false)", NULL },
};

const MhSettingSpec *
mh_directory__setting_find (MhDirectorySettingScope scope, const char *name)
{
  if (name == NULL)
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (settings_table); i++)
    if ((settings_table[i].scopes & (1u << scope))
        && strcmp (settings_table[i].name, name) == 0)
      return &settings_table[i];
  return NULL;
}

char **
mh_directory_setting_names (MhDirectorySettingScope scope)
{
  GStrvBuilder *b = g_strv_builder_new ();
  for (gsize i = 0; i < G_N_ELEMENTS (settings_table); i++)
    if (settings_table[i].scopes & (1u << scope))
      g_strv_builder_add (b, settings_table[i].name);
  char **r = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return r;
}

const char *
mh_directory_setting_describe (MhDirectorySettingScope scope,
                               const char *name)
{
  const MhSettingSpec *s = mh_directory__setting_find (scope, name);
  return s ? s->description : NULL;
}

GVariant *
mh_directory__setting_parse (const MhSettingSpec *spec, const char *value,
                             GError **error)
{
  switch (spec->type)
    {
    case MH_SETTING_COUNT:
      {
        guint64 n = 0;
        if (value == NULL
            || !g_ascii_string_to_unsigned (value, 10, 0, G_MAXUINT64, &n,
                                            NULL))
          {
            g_set_error (error, MH_DIRECTORY_ERROR,
                         MH_DIRECTORY_ERROR_INVALID,
                         "setting %s: expected a whole number, got '%s'",
                         spec->name, value ? value : "");
            return NULL;
          }
        return g_variant_new_uint64 (n);
      }
    case MH_SETTING_SIZE:
      {
        gint64 n = 0;
        if (!mh_core__parse_size (value, &n))
          {
            g_set_error (error, MH_DIRECTORY_ERROR,
                         MH_DIRECTORY_ERROR_INVALID,
                         "setting %s: expected a size such as 500M or 2G, "
                         "got '%s'", spec->name, value ? value : "");
            return NULL;
          }
        return g_variant_new_uint64 ((guint64) n);
      }
    case MH_SETTING_BOOL:
      {
        static const char *const yes[] = { "true", "yes", "on", "1", NULL };
        static const char *const no[] = { "false", "no", "off", "0", NULL };
        for (gsize i = 0; value && yes[i]; i++)
          if (g_ascii_strcasecmp (value, yes[i]) == 0)
            return g_variant_new_boolean (TRUE);
        for (gsize i = 0; value && no[i]; i++)
          if (g_ascii_strcasecmp (value, no[i]) == 0)
            return g_variant_new_boolean (FALSE);
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                     "setting %s: expected true or false, got '%s'",
                     spec->name, value ? value : "");
        return NULL;
      }
    case MH_SETTING_STRING:
      if (value == NULL || !g_utf8_validate (value, -1, NULL)
          || strlen (value) > 1024)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "setting %s: expected UTF-8 text up to 1024 bytes",
                       spec->name);
          return NULL;
        }
      if (spec->check != NULL && !spec->check (value, error))
        return NULL;
      return g_variant_new_string (value);
    }
  g_assert_not_reached ();
}

GVariant *
mh_directory__settings_replace (GVariant *settings, const char *name,
                                GVariant *value)
{
  GVariantDict d;
  g_variant_dict_init (&d, settings);
  if (value != NULL)
    g_variant_dict_insert_value (&d, name, value);
  else
    g_variant_dict_remove (&d, name);
  return g_variant_ref_sink (g_variant_dict_end (&d));
}

static GVariant *
empty_settings (void)
{
  return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"),
                                                  NULL, 0));
}

/* ---- Records ---------------------------------------------------------- */

#define DOMAIN_V1 "(xa{sv})"
#define ACCOUNT_V1 "(msmsbuxa{sv})"
#define ALIAS_V1 "(asx)"
#define DOMAIN_ALIAS_V1 "(sx)"

void
mh_domain_record_clear (MhDomainRecord *r)
{
  g_clear_pointer (&r->settings, g_variant_unref);
}

void
mh_account_record_clear (MhAccountRecord *r)
{
  g_clear_pointer (&r->display_name, g_free);
  if (r->hash != NULL)
    mh_core__wipe (r->hash, strlen (r->hash));
  g_clear_pointer (&r->hash, g_free);
  g_clear_pointer (&r->settings, g_variant_unref);
}

void
mh_alias_record_clear (MhAliasRecord *r)
{
  g_clear_pointer (&r->targets, g_ptr_array_unref);
}

void
mh_domain_alias_record_clear (MhDomainAliasRecord *r)
{
  g_clear_pointer (&r->target, g_free);
}

GBytes *
mh_directory__record_wrap (GVariant *inner)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (
      g_variant_new ("(uv)", (guint32) MH_DIRECTORY_RECORD_VERSION, inner));
  return g_variant_get_data_as_bytes (v);
}

GBytes *
mh_domain_record_encode (const MhDomainRecord *r)
{
  return mh_directory__record_wrap (
      g_variant_new ("(x@a{sv})", r->created, r->settings));
}

GBytes *
mh_account_record_encode (const MhAccountRecord *r)
{
  return mh_directory__record_wrap (
      g_variant_new ("(msmsbux@a{sv})", r->display_name, r->hash, r->enabled,
                     r->protocols, r->created, r->settings));
}

GBytes *
mh_alias_record_encode (const MhAliasRecord *r)
{
  return mh_directory__record_wrap (
      g_variant_new ("(@asx)",
                     g_variant_new_strv ((const char *const *)r->targets->pdata,
                                         (gssize)r->targets->len),
                     r->created));
}

GBytes *
mh_domain_alias_record_encode (const MhDomainAliasRecord *r)
{
  return mh_directory__record_wrap (
      g_variant_new (DOMAIN_ALIAS_V1, r->target, r->created));
}

/* "KIND 'KEY[@DOMAIN]'" for an error message. */
static char *
what_text (const MhRecordWhat *w)
{
  if (w->key == NULL)
    return g_strdup (w->kind);
  return g_strdup_printf ("%s '%s%s%s'", w->kind, w->key, w->domain ? "@" : "",
                          w->domain ? w->domain : "");
}

/* Copies @data, checks the "(uv)" envelope and returns the inner tuple
 * if it has @type for a version we know. @w is formatted only here, on
 * an error. */
GVariant *
mh_directory__record_unwrap (const void *data, gsize len, const MhRecordWhat *w,
                             const char *type, GError **error)
{
  g_autoptr (GBytes) bytes = g_bytes_new (data, len);
  g_autoptr (GVariant) v = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE ("(uv)"), bytes, FALSE));
  if (!g_variant_is_normal_form (v))
    {
      g_autofree char *what = what_text (w);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                   "record of %s is corrupt (not a valid record)", what);
      return NULL;
    }
  guint32 version = 0;
  g_autoptr (GVariant) inner = NULL;
  g_variant_get (v, "(uv)", &version, &inner);
  if (version != MH_DIRECTORY_RECORD_VERSION)
    {
      g_autofree char *what = what_text (w);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                   "record of %s has format version %u; this libmailhost "
                   "reads version %d", what, version,
                   MH_DIRECTORY_RECORD_VERSION);
      return NULL;
    }
  if (!g_variant_is_of_type (inner, G_VARIANT_TYPE (type)))
    {
      g_autofree char *what = what_text (w);
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                   "record of %s is corrupt (type %s, expected %s)", what,
                   g_variant_get_type_string (inner), type);
      return NULL;
    }
  return g_steal_pointer (&inner);
}

gboolean
mh_domain_record_decode_named (const void *data, gsize len,
                               const MhRecordWhat *what, MhDomainRecord *out,
                               GError **error)
{
  memset (out, 0, sizeof *out);
  g_autoptr (GVariant) t
      = mh_directory__record_unwrap (data, len, what, DOMAIN_V1, error);
  if (t == NULL)
    return FALSE;
  g_variant_get (t, DOMAIN_V1, &out->created, NULL);
  out->settings = g_variant_get_child_value (t, 1);
  return TRUE;
}

gboolean
mh_account_record_decode_named (const void *data, gsize len,
                                const MhRecordWhat *what, MhAccountRecord *out,
                                GError **error)
{
  memset (out, 0, sizeof *out);
  g_autoptr (GVariant) t
      = mh_directory__record_unwrap (data, len, what, ACCOUNT_V1, error);
  if (t == NULL)
    return FALSE;
  g_variant_get (t, "(msmsbuxa{sv})", &out->display_name, &out->hash,
                 &out->enabled, &out->protocols, &out->created, NULL);
  out->settings = g_variant_get_child_value (t, 5);
  return TRUE;
}

gboolean
mh_alias_record_decode_named (const void *data, gsize len,
                              const MhRecordWhat *what, MhAliasRecord *out,
                              GError **error)
{
  memset (out, 0, sizeof *out);
  g_autoptr (GVariant) t
      = mh_directory__record_unwrap (data, len, what, ALIAS_V1, error);
  if (t == NULL)
    return FALSE;
  g_autoptr (GVariant) arr = g_variant_get_child_value (t, 0);
  out->targets = g_ptr_array_new_with_free_func (g_free);
  gsize n = g_variant_n_children (arr);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) s = g_variant_get_child_value (arr, i);
      g_ptr_array_add (out->targets, g_variant_dup_string (s, NULL));
    }
  g_variant_get_child (t, 1, "x", &out->created);
  return TRUE;
}

gboolean
mh_domain_alias_record_decode_named (const void *data, gsize len,
                                     const MhRecordWhat *what,
                                     MhDomainAliasRecord *out, GError **error)
{
  memset (out, 0, sizeof *out);
  g_autoptr (GVariant) t
      = mh_directory__record_unwrap (data, len, what, DOMAIN_ALIAS_V1, error);
  if (t == NULL)
    return FALSE;
  g_variant_get (t, DOMAIN_ALIAS_V1, &out->target, &out->created);
  return TRUE;
}

gboolean
mh_domain_record_decode (const void *data, gsize len, const char *what,
                         MhDomainRecord *out, GError **error)
{
  return mh_domain_record_decode_named (
      data, len, MH_RECORD_WHAT (what, NULL, NULL), out, error);
}

gboolean
mh_account_record_decode (const void *data, gsize len, const char *what,
                          MhAccountRecord *out, GError **error)
{
  return mh_account_record_decode_named (
      data, len, MH_RECORD_WHAT (what, NULL, NULL), out, error);
}

gboolean
mh_alias_record_decode (const void *data, gsize len, const char *what,
                        MhAliasRecord *out, GError **error)
{
  return mh_alias_record_decode_named (
      data, len, MH_RECORD_WHAT (what, NULL, NULL), out, error);
}

gboolean
mh_domain_alias_record_decode (const void *data, gsize len, const char *what,
                               MhDomainAliasRecord *out, GError **error)
{
  return mh_domain_alias_record_decode_named (
      data, len, MH_RECORD_WHAT (what, NULL, NULL), out, error);
}

/* ---- Info objects ----------------------------------------------------- */

struct _MhDomainInfo
{
  gint refcount;
  char *name;
  char *ascii;
  gint64 created;
  GVariant *settings;
  guint n_accounts;
  guint n_aliases;
};

struct _MhAccountInfo
{
  gint refcount;
  char *address;
  char *ascii_address;
  char *local;
  char *domain;
  char *ascii_domain;
  char *display_name;
  char *hash;
  gboolean enabled;
  MhDirectoryProtocols protocols;
  gint64 created;
  GVariant *settings;
};

struct _MhAliasInfo
{
  gint refcount;
  char *address;
  char *ascii_address;
  char **targets;
  gint64 created;
};

struct _MhDomainAliasInfo
{
  gint refcount;
  char *name;
  char *ascii;
  char *target;
  char *ascii_target;
  gint64 created;
};

MhDomainInfo *
mh_directory__domain_info_new (const char *alabel, MhDomainRecord *rec,
                               guint n_accounts, guint n_aliases)
{
  MhDomainInfo *i = g_new0 (MhDomainInfo, 1);
  i->refcount = 1;
  i->ascii = g_strdup (alabel);
  i->name = mh_directory_domain_to_unicode (alabel);
  i->created = rec->created;
  i->settings = g_steal_pointer (&rec->settings);
  if (i->settings == NULL)
    i->settings = empty_settings ();
  i->n_accounts = n_accounts;
  i->n_aliases = n_aliases;
  mh_domain_record_clear (rec);
  return i;
}

MhDomainInfo *
mh_domain_info_ref (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  g_atomic_int_inc (&info->refcount);
  return info;
}

void
mh_domain_info_unref (MhDomainInfo *info)
{
  if (info == NULL || !g_atomic_int_dec_and_test (&info->refcount))
    return;
  g_free (info->name);
  g_free (info->ascii);
  g_variant_unref (info->settings);
  g_free (info);
}

void
mh_domain_info_list_free (GPtrArray *list)
{
  if (list == NULL)
    return;
  g_ptr_array_set_free_func (list, (GDestroyNotify) mh_domain_info_unref);
  g_ptr_array_unref (list);
}

G_DEFINE_BOXED_TYPE (MhDomainInfo, mh_domain_info, mh_domain_info_ref,
                     mh_domain_info_unref)

const char *
mh_domain_info_get_name (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->name;
}

const char *
mh_domain_info_get_ascii_name (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii;
}

gint64
mh_domain_info_get_created (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->created;
}

guint
mh_domain_info_get_account_count (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->n_accounts;
}

guint
mh_domain_info_get_alias_count (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->n_aliases;
}

GVariant *
mh_domain_info_get_settings (MhDomainInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->settings;
}

static guint64
settings_uint64 (GVariant *settings, const char *name, guint64 def)
{
  guint64 v = def;
  if (!g_variant_lookup (settings, name, "t", &v))
    return def;
  return v;
}

guint64
mh_domain_info_get_setting_uint64 (MhDomainInfo *info, const char *name,
                                   guint64 default_value)
{
  g_return_val_if_fail (info != NULL && name != NULL, default_value);
  return settings_uint64 (info->settings, name, default_value);
}

gboolean
mh_domain_info_get_setting_boolean (MhDomainInfo *info, const char *name,
                                    gboolean default_value)
{
  g_return_val_if_fail (info != NULL && name != NULL, default_value);
  gboolean v = default_value;
  if (!g_variant_lookup (info->settings, name, "b", &v))
    return default_value;
  return v;
}

MhAccountInfo *
mh_directory__account_info_new (const char *local, const char *alabel,
                                MhAccountRecord *rec)
{
  MhAccountInfo *i = g_new0 (MhAccountInfo, 1);
  i->refcount = 1;
  i->local = g_strdup (local);
  i->ascii_domain = g_strdup (alabel);
  i->domain = mh_directory_domain_to_unicode (alabel);
  i->address = g_strconcat (local, "@", i->domain, NULL);
  i->ascii_address = g_strconcat (local, "@", alabel, NULL);
  i->display_name = g_steal_pointer (&rec->display_name);
  i->hash = g_steal_pointer (&rec->hash);
  i->enabled = rec->enabled;
  i->protocols = (MhDirectoryProtocols) rec->protocols;
  i->created = rec->created;
  i->settings = g_steal_pointer (&rec->settings);
  if (i->settings == NULL)
    i->settings = empty_settings ();
  mh_account_record_clear (rec);
  return i;
}

MhAccountInfo *
mh_account_info_ref (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  g_atomic_int_inc (&info->refcount);
  return info;
}

void
mh_account_info_unref (MhAccountInfo *info)
{
  if (info == NULL || !g_atomic_int_dec_and_test (&info->refcount))
    return;
  g_free (info->address);
  g_free (info->ascii_address);
  g_free (info->local);
  g_free (info->domain);
  g_free (info->ascii_domain);
  g_free (info->display_name);
  if (info->hash != NULL)
    mh_core__wipe (info->hash, strlen (info->hash));
  g_free (info->hash);
  g_variant_unref (info->settings);
  g_free (info);
}

void
mh_account_info_list_free (GPtrArray *list)
{
  if (list == NULL)
    return;
  g_ptr_array_set_free_func (list, (GDestroyNotify) mh_account_info_unref);
  g_ptr_array_unref (list);
}

G_DEFINE_BOXED_TYPE (MhAccountInfo, mh_account_info, mh_account_info_ref,
                     mh_account_info_unref)

const char *
mh_account_info_get_address (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->address;
}

const char *
mh_account_info_get_ascii_address (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii_address;
}

const char *
mh_account_info_get_local_part (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->local;
}

const char *
mh_account_info_get_domain (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->domain;
}

const char *
mh_account_info_get_ascii_domain (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii_domain;
}

const char *
mh_account_info_get_display_name (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->display_name;
}

gboolean
mh_account_info_get_enabled (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, FALSE);
  return info->enabled;
}

MhDirectoryProtocols
mh_account_info_get_protocols (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->protocols;
}

gboolean
mh_account_info_get_has_password (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, FALSE);
  return info->hash != NULL;
}

const char *
mh_account_info_get_password_scheme (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return mh_directory__hash_scheme (info->hash);
}

gint64
mh_account_info_get_created (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->created;
}

GVariant *
mh_account_info_get_settings (MhAccountInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->settings;
}

guint64
mh_account_info_get_setting_uint64 (MhAccountInfo *info, const char *name,
                                    guint64 default_value)
{
  g_return_val_if_fail (info != NULL && name != NULL, default_value);
  return settings_uint64 (info->settings, name, default_value);
}

const char *
mh_directory__account_info_get_hash (MhAccountInfo *info)
{
  return info->hash;
}

MhAliasInfo *
mh_directory__alias_info_new (const char *local, const char *alabel,
                              MhAliasRecord *rec)
{
  MhAliasInfo *i = g_new0 (MhAliasInfo, 1);
  i->refcount = 1;
  g_autofree char *u = mh_directory_domain_to_unicode (alabel);
  i->address = g_strconcat (local, "@", u, NULL);
  i->ascii_address = g_strconcat (local, "@", alabel, NULL);
  i->targets = g_new0 (char *, rec->targets->len + 1);
  for (guint k = 0; k < rec->targets->len; k++)
    i->targets[k] = g_strdup (g_ptr_array_index (rec->targets, k));
  i->created = rec->created;
  mh_alias_record_clear (rec);
  return i;
}

MhAliasInfo *
mh_alias_info_ref (MhAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  g_atomic_int_inc (&info->refcount);
  return info;
}

void
mh_alias_info_unref (MhAliasInfo *info)
{
  if (info == NULL || !g_atomic_int_dec_and_test (&info->refcount))
    return;
  g_free (info->address);
  g_free (info->ascii_address);
  g_strfreev (info->targets);
  g_free (info);
}

void
mh_alias_info_list_free (GPtrArray *list)
{
  if (list == NULL)
    return;
  g_ptr_array_set_free_func (list, (GDestroyNotify) mh_alias_info_unref);
  g_ptr_array_unref (list);
}

G_DEFINE_BOXED_TYPE (MhAliasInfo, mh_alias_info, mh_alias_info_ref,
                     mh_alias_info_unref)

const char *
mh_alias_info_get_address (MhAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->address;
}

const char *
mh_alias_info_get_ascii_address (MhAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii_address;
}

const char *const *
mh_alias_info_get_targets (MhAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return (const char *const *) info->targets;
}

gint64
mh_alias_info_get_created (MhAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->created;
}

MhDomainAliasInfo *
mh_directory__domain_alias_info_new (const char *alabel,
                                     MhDomainAliasRecord *rec)
{
  MhDomainAliasInfo *i = g_new0 (MhDomainAliasInfo, 1);
  i->refcount = 1;
  i->ascii = g_strdup (alabel);
  i->name = mh_directory_domain_to_unicode (alabel);
  i->ascii_target = g_strdup (rec->target);
  i->target = mh_directory_domain_to_unicode (rec->target);
  i->created = rec->created;
  mh_domain_alias_record_clear (rec);
  return i;
}

MhDomainAliasInfo *
mh_domain_alias_info_ref (MhDomainAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  g_atomic_int_inc (&info->refcount);
  return info;
}

void
mh_domain_alias_info_unref (MhDomainAliasInfo *info)
{
  if (info == NULL || !g_atomic_int_dec_and_test (&info->refcount))
    return;
  g_free (info->name);
  g_free (info->ascii);
  g_free (info->target);
  g_free (info->ascii_target);
  g_free (info);
}

void
mh_domain_alias_info_list_free (GPtrArray *list)
{
  if (list == NULL)
    return;
  g_ptr_array_set_free_func (list, (GDestroyNotify) mh_domain_alias_info_unref);
  g_ptr_array_unref (list);
}

G_DEFINE_BOXED_TYPE (MhDomainAliasInfo, mh_domain_alias_info,
                     mh_domain_alias_info_ref, mh_domain_alias_info_unref)

const char *
mh_domain_alias_info_get_name (MhDomainAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->name;
}

const char *
mh_domain_alias_info_get_ascii_name (MhDomainAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii;
}

const char *
mh_domain_alias_info_get_target (MhDomainAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->target;
}

const char *
mh_domain_alias_info_get_ascii_target (MhDomainAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, NULL);
  return info->ascii_target;
}

gint64
mh_domain_alias_info_get_created (MhDomainAliasInfo *info)
{
  g_return_val_if_fail (info != NULL, 0);
  return info->created;
}
