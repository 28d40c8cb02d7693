/* libmailhost directory: domains, accounts, passwords, aliases and domain
 * aliases, kept in DATA/directory.mdb (LMDB).
 *
 * Caveats (read first):
 * - Several processes may open the same directory: mhctl writes while the
 *   servers read. Every call runs in its own LMDB transaction and nothing
 *   is cached between calls, so a running server sees a change at its
 *   next look-up.
 * - Opening the same directory twice in one process returns the same
 *   #MhDirectory (a new reference): LMDB forbids two environments on one
 *   file in a process.
 * - Never use an #MhDirectory after fork(): open a new one in the child.
 * - Info objects (#MhDomainInfo, #MhAccountInfo, ...) are snapshots taken
 *   in one transaction; they do not change when the directory does.
 * - Lists are GPtrArrays (transfer full) WITHOUT a free function: the
 *   caller owns the array and one reference to each element, the plain
 *   GObject-introspection meaning (an element free function would make
 *   PyGObject and LGI release the elements twice). In C, release them
 *   with the mh_*_info_list_free() helpers, or declare the result
 *   `g_autoptr (MhAccountInfoList)` (and the like, at the end of this
 *   header).
 *
 * Names: domains are given in either form (U-label "bücher.example" or
 * A-label "xn--bcher-kva.example"), stored as A-labels (IDNA2008/UTS#46,
 * nontransitional, lower-case) and shown as U-labels. Local parts are
 * lower-cased unless the domain's "case_sensitive_local_part" setting is
 * true.
 */
#pragma once

#include <mailhost/core.h>

G_BEGIN_DECLS

/**
 * MH_DIRECTORY_ERROR:
 *
 * Error domain of the directory. Codes are in #MhDirectoryError. Messages
 * name the object and what is wrong: `domain 'exmaple.org' does not
 * exist`.
 */
#define MH_DIRECTORY_ERROR (mh_directory_error_quark ())
MH_API GQuark mh_directory_error_quark (void);

/**
 * MhDirectoryError:
 * @MH_DIRECTORY_ERROR_FAILED: any other failure
 * @MH_DIRECTORY_ERROR_NOT_FOUND: the domain, account or alias does not
 *   exist
 * @MH_DIRECTORY_ERROR_EXISTS: the name is taken (an account, an alias or a
 *   domain of that name exists)
 * @MH_DIRECTORY_ERROR_INVALID: a malformed name, password, hash or value
 * @MH_DIRECTORY_ERROR_AUTH_FAILED: unknown user or wrong password (the
 *   two are deliberately not told apart)
 * @MH_DIRECTORY_ERROR_DISABLED: the account, or the protocol for it, is
 *   disabled
 * @MH_DIRECTORY_ERROR_CORRUPT: directory.mdb or a record in it is not
 *   what this library wrote
 * @MH_DIRECTORY_ERROR_IO: directory.mdb or its lock file cannot be
 *   opened, read or written
 * @MH_DIRECTORY_ERROR_VERSION: directory.mdb has a newer schema than this
 *   library knows
 * @MH_DIRECTORY_ERROR_NOT_EMPTY: a domain still has accounts or aliases
 *   (delete with force)
 * @MH_DIRECTORY_ERROR_LIMIT: a domain limit (max_accounts, max_aliases)
 *   would be exceeded
 *
 * Codes in %MH_DIRECTORY_ERROR.
 */
typedef enum
{
  MH_DIRECTORY_ERROR_FAILED,
  MH_DIRECTORY_ERROR_NOT_FOUND,
  MH_DIRECTORY_ERROR_EXISTS,
  MH_DIRECTORY_ERROR_INVALID,
  MH_DIRECTORY_ERROR_AUTH_FAILED,
  MH_DIRECTORY_ERROR_DISABLED,
  MH_DIRECTORY_ERROR_CORRUPT,
  MH_DIRECTORY_ERROR_IO,
  MH_DIRECTORY_ERROR_VERSION,
  MH_DIRECTORY_ERROR_NOT_EMPTY,
  MH_DIRECTORY_ERROR_LIMIT,
} MhDirectoryError;

MH_API GType mh_directory_error_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DIRECTORY_ERROR (mh_directory_error_get_type ())

/**
 * MhDirectoryProtocols:
 * @MH_DIRECTORY_PROTOCOL_NONE: no protocol
 * @MH_DIRECTORY_PROTOCOL_IMAP: IMAP
 * @MH_DIRECTORY_PROTOCOL_POP3: POP3
 * @MH_DIRECTORY_PROTOCOL_SUBMISSION: SMTP submission (ports 587/465)
 * @MH_DIRECTORY_PROTOCOL_MANAGESIEVE: ManageSieve
 * @MH_DIRECTORY_PROTOCOL_ALL: every protocol (the default of a new
 *   account)
 *
 * The protocols an account may log in with.
 */
typedef enum /*< flags >*/
{
  MH_DIRECTORY_PROTOCOL_NONE = 0,
  MH_DIRECTORY_PROTOCOL_IMAP = 1 << 0,
  MH_DIRECTORY_PROTOCOL_POP3 = 1 << 1,
  MH_DIRECTORY_PROTOCOL_SUBMISSION = 1 << 2,
  MH_DIRECTORY_PROTOCOL_MANAGESIEVE = 1 << 3,
  MH_DIRECTORY_PROTOCOL_ALL = 0xf,
} MhDirectoryProtocols;

MH_API GType mh_directory_protocols_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DIRECTORY_PROTOCOLS (mh_directory_protocols_get_type ())

/**
 * mh_directory_protocols_from_string:
 * @text: comma-separated protocol names ("imap,pop3"), "all" or "none"
 * @protocols_out: (out): the flags
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with %MH_DIRECTORY_ERROR_INVALID naming the
 *   unknown protocol.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_protocols_from_string (
    const char *text, MhDirectoryProtocols *protocols_out, GError **error);

/**
 * mh_directory_protocols_to_string:
 * @protocols: flags
 *
 * Returns: (transfer full): "imap,pop3,..." in a fixed order, or "none".
 *
 * Thread safety: safe.
 */
MH_API char *mh_directory_protocols_to_string (MhDirectoryProtocols protocols);

/* ---- Names ------------------------------------------------------------ */

/**
 * mh_directory_domain_to_ascii:
 * @domain: a domain name in U-label or A-label form (one trailing dot is
 *   allowed)
 * @error: return location for a #GError, or %NULL
 *
 * Validates and normalises @domain: IDNA2008 with UTS#46 mapping
 * (nontransitional, NFC), lower case, at most 253 octets, labels of 1 to
 * 63 letters, digits and hyphens not starting or ending with a hyphen, at
 * least two labels, a top-level label that is not all digits, and
 * A-labels ("xn--") that decode and encode back to themselves.
 *
 * Returns: (transfer full) (nullable): the A-label form, or %NULL with
 *   %MH_DIRECTORY_ERROR_INVALID saying which label is wrong and why.
 *
 * Thread safety: safe.
 */
MH_API char *mh_directory_domain_to_ascii (const char *domain,
                                           GError **error);

/**
 * mh_directory_domain_to_unicode:
 * @domain: a domain already normalised by mh_directory_domain_to_ascii()
 *
 * Returns: (transfer full): the U-label form for display (@domain itself
 *   if it cannot be decoded).
 *
 * Thread safety: safe.
 */
MH_API char *mh_directory_domain_to_unicode (const char *domain);

/* ---- The directory ---------------------------------------------------- */

/**
 * MhDirectory:
 *
 * An open directory. Reference counted.
 *
 * Thread safety: safe; one may be shared by every thread of a server
 * (each call is its own LMDB transaction).
 */
typedef struct _MhDirectory MhDirectory;

MH_API GType mh_directory_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DIRECTORY (mh_directory_get_type ())

/**
 * mh_directory_open: (constructor)
 * @data_dir: (type filename): the data directory; created (mode 0750) if
 *   missing
 * @error: return location for a #GError, or %NULL
 *
 * Opens (creating if missing) @data_dir/directory.mdb, clears stale
 * reader slots left by dead processes (mdb_reader_check) and runs schema
 * migrations when the file is older than this library. A file that is
 * readable but not writable is opened read-only: look-ups work, changes
 * fail with %MH_DIRECTORY_ERROR_IO.
 *
 * Returns: (transfer full) (nullable): the directory, or %NULL with
 *   the error set: %MH_DIRECTORY_ERROR_IO (cannot create, open or lock;
 *   the message names the path), %MH_DIRECTORY_ERROR_CORRUPT (not an
 *   LMDB file, or a directory in its place), %MH_DIRECTORY_ERROR_VERSION
 *   (written by a newer libmailhost).
 *
 * Thread safety: safe.
 */
MH_API MhDirectory *mh_directory_open (const char *data_dir, GError **error);

/**
 * mh_directory_ref:
 * @dir: a directory
 *
 * Returns: (transfer full): @dir
 */
MH_API MhDirectory *mh_directory_ref (MhDirectory *dir);

/**
 * mh_directory_unref:
 * @dir: (nullable) (transfer full): a directory
 *
 * Drops a reference; the last one closes the LMDB environment. NULL-safe.
 */
MH_API void mh_directory_unref (MhDirectory *dir);

/**
 * mh_directory_get_path:
 * @dir: a directory
 *
 * Returns: (transfer none) (type filename): the path of directory.mdb,
 *   valid as long as @dir.
 */
MH_API const char *mh_directory_get_path (MhDirectory *dir);

/**
 * mh_directory_get_schema_version:
 * @dir: a directory
 *
 * Returns: the schema version of the open file (after migrations).
 */
MH_API guint mh_directory_get_schema_version (MhDirectory *dir);

/* ---- Settings --------------------------------------------------------- */

/**
 * MhDirectorySettingScope:
 * @MH_DIRECTORY_SETTING_DOMAIN: settings of a domain
 * @MH_DIRECTORY_SETTING_ACCOUNT: settings of an account
 *
 * Where a setting applies.
 */
typedef enum
{
  MH_DIRECTORY_SETTING_DOMAIN,
  MH_DIRECTORY_SETTING_ACCOUNT,
} MhDirectorySettingScope;

MH_API GType mh_directory_setting_scope_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DIRECTORY_SETTING_SCOPE \
  (mh_directory_setting_scope_get_type ())

/**
 * mh_directory_setting_names:
 * @scope: domain or account
 *
 * The settings known in @scope. Domains: max_accounts, max_aliases,
 * quota_bytes and quota_messages (totals for the domain),
 * account_quota_bytes and account_quota_messages (defaults for its
 * accounts), case_sensitive_local_part. Accounts: quota_bytes,
 * quota_messages. Address resolution adds its own (catch_all,
 * forward_to, ...): docs/directory.md has the full table. Sizes are
 * stored in bytes ("1G" is accepted on input), counts as numbers; 0
 * means no limit.
 *
 * Returns: (transfer full) (array zero-terminated=1): the names; free
 *   with g_strfreev().
 *
 * Thread safety: safe.
 */
MH_API char **mh_directory_setting_names (MhDirectorySettingScope scope);

/**
 * mh_directory_setting_describe:
 * @scope: domain or account
 * @name: a setting name
 *
 * Returns: (transfer none) (nullable): a one-line description with the
 *   expected type, or %NULL if @name is not a setting in @scope.
 */
MH_API const char *mh_directory_setting_describe (MhDirectorySettingScope scope,
                                                  const char *name);

/* ---- Domains ---------------------------------------------------------- */

/**
 * MhDomainInfo:
 *
 * A snapshot of one hosted domain. Reference counted, immutable.
 *
 * Thread safety: immutable; share it between threads freely.
 */
typedef struct _MhDomainInfo MhDomainInfo;

MH_API GType mh_domain_info_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DOMAIN_INFO (mh_domain_info_get_type ())

/**
 * mh_domain_info_ref:
 * @info: an info
 *
 * Returns: (transfer full): @info, with one more reference
 */
MH_API MhDomainInfo *mh_domain_info_ref (MhDomainInfo *info);
/**
 * mh_domain_info_unref:
 * @info: (nullable) (transfer full): the object to release; %NULL is
 *   ignored
 *
 * Drops one reference; the last one frees it.
 */
MH_API void mh_domain_info_unref (MhDomainInfo *info);
/**
 * mh_domain_info_list_free: (skip)
 * @list: (nullable) (transfer full): a list returned by the directory
 *
 * Releases every element and the array. NULL-safe.
 */
MH_API void mh_domain_info_list_free (GPtrArray *list);

/**
 * mh_domain_info_get_name:
 * @info: an info
 *
 * Returns: (transfer none): the domain in U-label (display) form.
 */
MH_API const char *mh_domain_info_get_name (MhDomainInfo *info);
/**
 * mh_domain_info_get_ascii_name:
 * @info: an info
 *
 * Returns: (transfer none): the domain in A-label (stored) form.
 */
MH_API const char *mh_domain_info_get_ascii_name (MhDomainInfo *info);
/**
 * mh_domain_info_get_created:
 * @info: an info
 *
 * Returns: creation time, seconds since the Unix epoch.
 */
MH_API gint64 mh_domain_info_get_created (MhDomainInfo *info);
/**
 * mh_domain_info_get_account_count:
 * @info: an info
 *
 * Returns: accounts in the domain when the snapshot was taken.
 */
MH_API guint mh_domain_info_get_account_count (MhDomainInfo *info);
/**
 * mh_domain_info_get_alias_count:
 * @info: an info
 *
 * Returns: aliases in the domain when the snapshot was taken.
 */
MH_API guint mh_domain_info_get_alias_count (MhDomainInfo *info);
/**
 * mh_domain_info_get_settings:
 * @info: an info
 *
 * Returns: (transfer none): the settings that are set, as an a{sv}
 *   dictionary (sizes and counts "t", flags "b", text "s").
 */
MH_API GVariant *mh_domain_info_get_settings (MhDomainInfo *info);
/**
 * mh_domain_info_get_setting_uint64:
 * @info: an info
 * @name: a size or count setting
 * @default_value: returned when the setting is not set
 *
 * Returns: the value.
 */
MH_API guint64 mh_domain_info_get_setting_uint64 (MhDomainInfo *info,
                                                  const char *name,
                                                  guint64 default_value);
/**
 * mh_domain_info_get_setting_boolean:
 * @info: an info
 * @name: a flag setting
 * @default_value: returned when the setting is not set
 *
 * Returns: the value.
 */
MH_API gboolean mh_domain_info_get_setting_boolean (MhDomainInfo *info,
                                                    const char *name,
                                                    gboolean default_value);

/**
 * mh_directory_domain_add:
 * @dir: a directory
 * @domain: the domain, U-label or A-label form
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with %MH_DIRECTORY_ERROR_INVALID (bad name),
 *   %MH_DIRECTORY_ERROR_EXISTS (a domain or domain alias of that name),
 *   or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_domain_add (MhDirectory *dir, const char *domain,
                                         GError **error);

/**
 * mh_directory_domain_delete:
 * @dir: a directory
 * @domain: the domain
 * @force: also delete its accounts, aliases and domain aliases pointing
 *   at it
 * @error: return location for a #GError, or %NULL
 *
 * Without @force, a domain with accounts, aliases or domain aliases
 * pointing at it is not deleted. Mail on disk is not touched.
 *
 * Returns: %TRUE, or %FALSE with NOT_FOUND, NOT_EMPTY, INVALID or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_domain_delete (MhDirectory *dir,
                                            const char *domain,
                                            gboolean force, GError **error);

/**
 * mh_directory_domain_lookup:
 * @dir: a directory
 * @domain: the domain (not a domain alias)
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the domain, or %NULL with
 *   NOT_FOUND, INVALID, CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API MhDomainInfo *mh_directory_domain_lookup (MhDirectory *dir,
                                                 const char *domain,
                                                 GError **error);

/**
 * mh_directory_domain_list:
 * @dir: a directory
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (element-type MhDomainInfo) (nullable): every
 *   domain, sorted by A-label, or %NULL with CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_directory_domain_list (MhDirectory *dir, GError **error);

/**
 * mh_directory_domain_set_setting:
 * @dir: a directory
 * @domain: the domain
 * @name: a domain setting (mh_directory_setting_names())
 * @value: (nullable): the value as text ("1G", "500", "true"), or %NULL
 *   to unset
 * @error: return location for a #GError, or %NULL
 *
 * case_sensitive_local_part can only change while the domain has no
 * accounts or aliases, since it changes their keys.
 *
 * Returns: %TRUE, or %FALSE with NOT_FOUND, INVALID (unknown setting or a
 *   bad value, named), NOT_EMPTY or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_domain_set_setting (MhDirectory *dir,
                                                 const char *domain,
                                                 const char *name,
                                                 const char *value,
                                                 GError **error);

/**
 * mh_directory_domain_is_local:
 * @dir: a directory
 * @domain: a domain name, either form
 *
 * Returns: %TRUE if @domain is hosted here or is a domain alias of a
 *   hosted domain; %FALSE otherwise and on any error.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_domain_is_local (MhDirectory *dir,
                                              const char *domain);

/* ---- Domain aliases --------------------------------------------------- */

/**
 * MhDomainAliasInfo:
 *
 * A snapshot of one domain alias: mail for any address at the alias
 * domain is for the same local part at the target domain.
 *
 * Thread safety: immutable; share it between threads freely.
 */
typedef struct _MhDomainAliasInfo MhDomainAliasInfo;

MH_API GType mh_domain_alias_info_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DOMAIN_ALIAS_INFO (mh_domain_alias_info_get_type ())

/**
 * mh_domain_alias_info_ref:
 * @info: an info
 *
 * Returns: (transfer full): @info, with one more reference
 */
MH_API MhDomainAliasInfo *mh_domain_alias_info_ref (MhDomainAliasInfo *info);
/**
 * mh_domain_alias_info_unref:
 * @info: (nullable) (transfer full): the object to release; %NULL is
 *   ignored
 *
 * Drops one reference; the last one frees it.
 */
MH_API void mh_domain_alias_info_unref (MhDomainAliasInfo *info);
/**
 * mh_domain_alias_info_list_free: (skip)
 * @list: (nullable) (transfer full): a list returned by the directory
 *
 * Releases every element and the array. NULL-safe.
 */
MH_API void mh_domain_alias_info_list_free (GPtrArray *list);
/**
 * mh_domain_alias_info_get_name:
 * @info: an info
 *
 * Returns: (transfer none): the alias domain, U-label form.
 */
MH_API const char *mh_domain_alias_info_get_name (MhDomainAliasInfo *info);
/**
 * mh_domain_alias_info_get_ascii_name:
 * @info: an info
 *
 * Returns: (transfer none): the alias domain, A-label form.
 */
MH_API const char *mh_domain_alias_info_get_ascii_name (MhDomainAliasInfo *info);
/**
 * mh_domain_alias_info_get_target:
 * @info: an info
 *
 * Returns: (transfer none): the target domain, U-label form.
 */
MH_API const char *mh_domain_alias_info_get_target (MhDomainAliasInfo *info);
/**
 * mh_domain_alias_info_get_ascii_target:
 * @info: an info
 *
 * Returns: (transfer none): the target domain, A-label form.
 */
MH_API const char *mh_domain_alias_info_get_ascii_target (MhDomainAliasInfo *info);
/**
 * mh_domain_alias_info_get_created:
 * @info: an info
 *
 * Returns: creation time, seconds since the Unix epoch.
 */
MH_API gint64 mh_domain_alias_info_get_created (MhDomainAliasInfo *info);

/**
 * mh_directory_domain_alias_add:
 * @dir: a directory
 * @alias_domain: the new alias domain (must not be hosted)
 * @target_domain: a hosted domain (not itself an alias)
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND (target), EXISTS or
 *   IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_domain_alias_add (MhDirectory *dir,
                                               const char *alias_domain,
                                               const char *target_domain,
                                               GError **error);
/**
 * mh_directory_domain_alias_delete:
 * @dir: a directory
 * @alias_domain: the alias domain
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_domain_alias_delete (MhDirectory *dir,
                                                  const char *alias_domain,
                                                  GError **error);
/**
 * mh_directory_domain_alias_lookup:
 * @dir: a directory
 * @alias_domain: the alias domain
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the alias, or %NULL with NOT_FOUND,
 *   INVALID, CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API MhDomainAliasInfo *mh_directory_domain_alias_lookup (
    MhDirectory *dir, const char *alias_domain, GError **error);
/**
 * mh_directory_domain_alias_list:
 * @dir: a directory
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (element-type MhDomainAliasInfo) (nullable):
 *   every domain alias, or %NULL with CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_directory_domain_alias_list (MhDirectory *dir,
                                                  GError **error);

/* ---- Accounts --------------------------------------------------------- */

/**
 * MhAccountInfo:
 *
 * A snapshot of one account. Reference counted, immutable. The password
 * hash is not exposed.
 *
 * Thread safety: immutable; share it between threads freely.
 */
typedef struct _MhAccountInfo MhAccountInfo;

MH_API GType mh_account_info_get_type (void) G_GNUC_CONST;
#define MH_TYPE_ACCOUNT_INFO (mh_account_info_get_type ())

/**
 * mh_account_info_ref:
 * @info: an info
 *
 * Returns: (transfer full): @info, with one more reference
 */
MH_API MhAccountInfo *mh_account_info_ref (MhAccountInfo *info);
/**
 * mh_account_info_unref:
 * @info: (nullable) (transfer full): the object to release; %NULL is
 *   ignored
 *
 * Drops one reference; the last one frees it.
 */
MH_API void mh_account_info_unref (MhAccountInfo *info);
/**
 * mh_account_info_list_free: (skip)
 * @list: (nullable) (transfer full): a list returned by the directory
 *
 * Releases every element and the array. NULL-safe.
 */
MH_API void mh_account_info_list_free (GPtrArray *list);
/**
 * mh_account_info_get_address:
 * @info: an info
 *
 * Returns: (transfer none): local@domain with the domain in U-label form.
 */
MH_API const char *mh_account_info_get_address (MhAccountInfo *info);
/**
 * mh_account_info_get_ascii_address:
 * @info: an info
 *
 * Returns: (transfer none): local@domain with the domain in A-label form
 *   (the key: use it for paths and logs).
 */
MH_API const char *mh_account_info_get_ascii_address (MhAccountInfo *info);
/**
 * mh_account_info_get_local_part:
 * @info: an info
 *
 * Returns: (transfer none): the normalised local part.
 */
MH_API const char *mh_account_info_get_local_part (MhAccountInfo *info);
/**
 * mh_account_info_get_domain:
 * @info: an info
 *
 * Returns: (transfer none): the domain, U-label form.
 */
MH_API const char *mh_account_info_get_domain (MhAccountInfo *info);
/**
 * mh_account_info_get_ascii_domain:
 * @info: an info
 *
 * Returns: (transfer none): the domain, A-label form.
 */
MH_API const char *mh_account_info_get_ascii_domain (MhAccountInfo *info);
/**
 * mh_account_info_get_display_name:
 * @info: an info
 *
 * Returns: (transfer none) (nullable): the display name, if set.
 */
MH_API const char *mh_account_info_get_display_name (MhAccountInfo *info);
/**
 * mh_account_info_get_enabled:
 * @info: an info
 *
 * Returns: whether the account may log in and receive mail.
 */
MH_API gboolean mh_account_info_get_enabled (MhAccountInfo *info);
/**
 * mh_account_info_get_protocols:
 * @info: an info
 *
 * Returns: the protocols the account may log in with.
 */
MH_API MhDirectoryProtocols mh_account_info_get_protocols (MhAccountInfo *info);
/**
 * mh_account_info_get_has_password:
 * @info: an info
 *
 * Returns: %FALSE for an account created without a password (no login).
 */
MH_API gboolean mh_account_info_get_has_password (MhAccountInfo *info);
/**
 * mh_account_info_get_password_scheme:
 * @info: an info
 *
 * Returns: (transfer none) (nullable): the scheme of the stored hash
 *   ("yescrypt", "sha512-crypt", "SSHA256", ...), %NULL without password.
 */
MH_API const char *mh_account_info_get_password_scheme (MhAccountInfo *info);
/**
 * mh_account_info_get_created:
 * @info: an info
 *
 * Returns: creation time, seconds since the Unix epoch.
 */
MH_API gint64 mh_account_info_get_created (MhAccountInfo *info);
/**
 * mh_account_info_get_settings:
 * @info: an info
 *
 * Returns: (transfer none): the settings that are set, as a{sv}.
 */
MH_API GVariant *mh_account_info_get_settings (MhAccountInfo *info);
/**
 * mh_account_info_get_setting_uint64:
 * @info: an info
 * @name: a size or count setting
 * @default_value: returned when the setting is not set
 *
 * Returns: the value.
 */
MH_API guint64 mh_account_info_get_setting_uint64 (MhAccountInfo *info,
                                                   const char *name,
                                                   guint64 default_value);

/**
 * mh_directory_account_add:
 * @dir: a directory
 * @address: local@domain; the domain must be hosted here
 * @password: (nullable): the password; %NULL creates an account that
 *   cannot log in until one is set
 * @error: return location for a #GError, or %NULL
 *
 * Hashes @password with yescrypt. The account is enabled for every
 * protocol.
 *
 * Returns: %TRUE, or %FALSE with INVALID (address or password),
 *   NOT_FOUND (domain), EXISTS (account or alias), LIMIT (max_accounts)
 *   or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_add (MhDirectory *dir,
                                          const char *address,
                                          const char *password,
                                          GError **error);

/**
 * mh_directory_account_delete:
 * @dir: a directory
 * @address: the account
 * @error: return location for a #GError, or %NULL
 *
 * Mail on disk is not touched; aliases that name the account as target
 * keep it (they bounce until it exists again).
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_delete (MhDirectory *dir,
                                             const char *address,
                                             GError **error);

/**
 * mh_directory_account_lookup:
 * @dir: a directory
 * @address: the account (domain aliases are not followed)
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the account, or %NULL with
 *   INVALID, NOT_FOUND, CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API MhAccountInfo *mh_directory_account_lookup (MhDirectory *dir,
                                                   const char *address,
                                                   GError **error);

/**
 * mh_directory_account_list:
 * @dir: a directory
 * @domain: (nullable): only accounts of this domain; %NULL for all
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (element-type MhAccountInfo) (nullable): the
 *   accounts sorted by domain then local part, or %NULL with INVALID,
 *   NOT_FOUND (domain), CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_directory_account_list (MhDirectory *dir,
                                             const char *domain,
                                             GError **error);

/**
 * mh_directory_account_set_password:
 * @dir: a directory
 * @address: the account
 * @password: the new password (1 to %MH_LIMIT_PASSWORD_MAX bytes)
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_set_password (MhDirectory *dir,
                                                   const char *address,
                                                   const char *password,
                                                   GError **error);

/**
 * mh_directory_account_set_password_hash:
 * @dir: a directory
 * @address: the account
 * @hash: (nullable): a hash in a scheme mh_directory_password_verify()
 *   accepts, or %NULL to remove the password (no login)
 * @error: return location for a #GError, or %NULL
 *
 * For importing users from other systems.
 *
 * Returns: %TRUE, or %FALSE with INVALID (unknown scheme or malformed
 *   hash), NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_set_password_hash (MhDirectory *dir,
                                                        const char *address,
                                                        const char *hash,
                                                        GError **error);

/**
 * mh_directory_account_set_display_name:
 * @dir: a directory
 * @address: the account
 * @display_name: (nullable): UTF-8, at most %MH_LIMIT_DISPLAY_NAME_MAX
 *   bytes, no control characters; %NULL or "" to unset
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_set_display_name (MhDirectory *dir,
                                                       const char *address,
                                                       const char *display_name,
                                                       GError **error);

/**
 * mh_directory_account_set_enabled:
 * @dir: a directory
 * @address: the account
 * @enabled: whether the account may log in
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_set_enabled (MhDirectory *dir,
                                                  const char *address,
                                                  gboolean enabled,
                                                  GError **error);

/**
 * mh_directory_account_set_protocols:
 * @dir: a directory
 * @address: the account
 * @protocols: the protocols it may log in with
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_set_protocols (MhDirectory *dir,
                                                    const char *address,
                                                    MhDirectoryProtocols protocols,
                                                    GError **error);

/**
 * mh_directory_account_set_setting:
 * @dir: a directory
 * @address: the account
 * @name: an account setting (mh_directory_setting_names())
 * @value: (nullable): the value as text, or %NULL to unset
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_account_set_setting (MhDirectory *dir,
                                                  const char *address,
                                                  const char *name,
                                                  const char *value,
                                                  GError **error);

/**
 * mh_directory_authenticate:
 * @dir: a directory
 * @address: the login name (an account address)
 * @password: the password offered
 * @protocol: (nullable): "imap", "pop3", "submission", "managesieve", or
 *   %NULL for any
 * @error: return location for a #GError, or %NULL
 *
 * An unknown user and a wrong password give the same error, and an
 * unknown user still costs one hash verification against a dummy hash,
 * so timing does not tell which accounts exist. DISABLED is only
 * reported after the password was right.
 *
 * Returns: %TRUE if the password is right and the account may use
 *   @protocol; else %FALSE with %MH_DIRECTORY_ERROR_AUTH_FAILED,
 *   %MH_DIRECTORY_ERROR_DISABLED, INVALID (unknown @protocol), CORRUPT
 *   or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_authenticate (MhDirectory *dir,
                                           const char *address,
                                           const char *password,
                                           const char *protocol,
                                           GError **error);

/**
 * mh_directory_authenticate_account:
 * @dir: a directory
 * @address: the login name
 * @password: the password offered
 * @protocol: (nullable): as for mh_directory_authenticate()
 * @error: return location for a #GError, or %NULL
 *
 * As mh_directory_authenticate(), returning the account (for its
 * canonical address).
 *
 * Returns: (transfer full) (nullable): the account, or %NULL with @error
 *   as for mh_directory_authenticate().
 *
 * Thread safety: safe.
 */
MH_API MhAccountInfo *mh_directory_authenticate_account (MhDirectory *dir,
                                                         const char *address,
                                                         const char *password,
                                                         const char *protocol,
                                                         GError **error);

/* ---- Passwords -------------------------------------------------------- */

/**
 * mh_directory_password_hash:
 * @password: 1 to %MH_LIMIT_PASSWORD_MAX bytes
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): a yescrypt ("$y$") hash, or %NULL
 *   with %MH_DIRECTORY_ERROR_INVALID (empty or too long) or FAILED.
 *
 * Thread safety: safe.
 */
MH_API char *mh_directory_password_hash (const char *password,
                                         GError **error);

/**
 * mh_directory_password_verify:
 * @password: the password offered
 * @hash: a stored hash: crypt(3) "$y$", "$7$", "$6$", "$5$", "$2b$",
 *   "$2y$", "$2a$", "$1$", or Dovecot style {CRYPT}, {SHA512-CRYPT},
 *   {SHA256-CRYPT}, {BLF-CRYPT}, {MD5-CRYPT}, {PLAIN}, {CLEARTEXT},
 *   {SHA}, {SHA256}, {SHA512}, {SSHA}, {SSHA256}, {SSHA512} (base64)
 *
 * All comparisons are constant-time.
 *
 * Returns: %TRUE if @password matches @hash; %FALSE otherwise, also for
 *   a malformed hash or an unknown scheme.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_password_verify (const char *password,
                                              const char *hash);

/**
 * mh_directory_password_check_hash:
 * @hash: a hash to store
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE if @hash is in a scheme mh_directory_password_verify()
 *   accepts and well formed, else %FALSE with INVALID saying why.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_password_check_hash (const char *hash,
                                                  GError **error);

/* ---- Aliases ---------------------------------------------------------- */

/**
 * MhAliasInfo:
 *
 * A snapshot of one alias: mail to its address goes to every target.
 *
 * Thread safety: immutable; share it between threads freely.
 */
typedef struct _MhAliasInfo MhAliasInfo;

MH_API GType mh_alias_info_get_type (void) G_GNUC_CONST;
#define MH_TYPE_ALIAS_INFO (mh_alias_info_get_type ())

/**
 * mh_alias_info_ref:
 * @info: an info
 *
 * Returns: (transfer full): @info, with one more reference
 */
MH_API MhAliasInfo *mh_alias_info_ref (MhAliasInfo *info);
/**
 * mh_alias_info_unref:
 * @info: (nullable) (transfer full): the object to release; %NULL is
 *   ignored
 *
 * Drops one reference; the last one frees it.
 */
MH_API void mh_alias_info_unref (MhAliasInfo *info);
/**
 * mh_alias_info_list_free: (skip)
 * @list: (nullable) (transfer full): a list returned by the directory
 *
 * Releases every element and the array. NULL-safe.
 */
MH_API void mh_alias_info_list_free (GPtrArray *list);
/**
 * mh_alias_info_get_address:
 * @info: an info
 *
 * Returns: (transfer none): the alias address, domain in U-label form.
 */
MH_API const char *mh_alias_info_get_address (MhAliasInfo *info);
/**
 * mh_alias_info_get_ascii_address:
 * @info: an info
 *
 * Returns: (transfer none): the alias address, domain in A-label form.
 */
MH_API const char *mh_alias_info_get_ascii_address (MhAliasInfo *info);
/**
 * mh_alias_info_get_targets:
 * @info: an info
 *
 * Returns: (transfer none) (array zero-terminated=1): the targets,
 *   domains in A-label form, in the order they were added.
 */
MH_API const char *const *mh_alias_info_get_targets (MhAliasInfo *info);
/**
 * mh_alias_info_get_created:
 * @info: an info
 *
 * Returns: creation time, seconds since the Unix epoch.
 */
MH_API gint64 mh_alias_info_get_created (MhAliasInfo *info);

/**
 * mh_directory_alias_add:
 * @dir: a directory
 * @address: the alias address, in a hosted domain
 * @targets: (array zero-terminated=1): one or more target addresses
 * @error: return location for a #GError, or %NULL
 *
 * Creates the alias, or adds @targets to an existing one. A target in a
 * domain hosted here (or a domain alias) must be an existing account or
 * alias; external targets are taken as given. At most
 * %MH_LIMIT_ALIAS_TARGETS_MAX targets. All or nothing.
 *
 * Returns: %TRUE, or %FALSE with INVALID (bad address, no targets, too
 *   many, a target equal to the alias), NOT_FOUND (source domain or a
 *   local target), EXISTS (an account of that address, or a target
 *   already in the alias), LIMIT (max_aliases) or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_alias_add (MhDirectory *dir, const char *address,
                                        const char *const *targets,
                                        GError **error);

/**
 * mh_directory_alias_delete:
 * @dir: a directory
 * @address: the alias
 * @target: (nullable): remove only this target (the alias goes when its
 *   last target does); %NULL removes the whole alias
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_alias_delete (MhDirectory *dir,
                                           const char *address,
                                           const char *target,
                                           GError **error);

/**
 * mh_directory_alias_lookup:
 * @dir: a directory
 * @address: the alias
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the alias, or %NULL with INVALID,
 *   NOT_FOUND, CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API MhAliasInfo *mh_directory_alias_lookup (MhDirectory *dir,
                                               const char *address,
                                               GError **error);

/**
 * mh_directory_alias_list:
 * @dir: a directory
 * @domain: (nullable): only aliases in this domain; %NULL for all
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (element-type MhAliasInfo) (nullable): the
 *   aliases, or %NULL with INVALID, NOT_FOUND, CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_directory_alias_list (MhDirectory *dir,
                                           const char *domain,
                                           GError **error);

/* ---- Bulk import ------------------------------------------------------ */

/**
 * MhDirectoryImportFlags:
 * @MH_DIRECTORY_IMPORT_NONE: all or nothing
 * @MH_DIRECTORY_IMPORT_PARTIAL: add the good entries even if some fail
 * @MH_DIRECTORY_IMPORT_DRY_RUN: check every entry, change nothing
 *
 * How mh_directory_import_commit() treats failures.
 */
typedef enum /*< flags >*/
{
  MH_DIRECTORY_IMPORT_NONE = 0,
  MH_DIRECTORY_IMPORT_PARTIAL = 1 << 0,
  MH_DIRECTORY_IMPORT_DRY_RUN = 1 << 1,
} MhDirectoryImportFlags;

MH_API GType mh_directory_import_flags_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DIRECTORY_IMPORT_FLAGS (mh_directory_import_flags_get_type ())

/**
 * MhDirectoryImport:
 *
 * A batch of accounts added in one write transaction (so 10,000 accounts
 * take one fsync). Entries are checked as they are added (syntax, hash
 * scheme, duplicates in the batch) and again against the directory at
 * commit (domain exists, address free, max_accounts). Not thread-safe:
 * one thread fills and commits it.
 */
typedef struct _MhDirectoryImport MhDirectoryImport;

MH_API GType mh_directory_import_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DIRECTORY_IMPORT (mh_directory_import_get_type ())

/**
 * mh_directory_import_new: (constructor)
 * @dir: the directory to import into
 *
 * Returns: (transfer full): an empty batch.
 */
MH_API MhDirectoryImport *mh_directory_import_new (MhDirectory *dir);
/**
 * mh_directory_import_ref:
 * @imp: a batch
 *
 * Returns: (transfer full): @imp, with one more reference
 */
MH_API MhDirectoryImport *mh_directory_import_ref (MhDirectoryImport *imp);
/**
 * mh_directory_import_unref:
 * @imp: (nullable) (transfer full): the object to release; %NULL is
 *   ignored
 *
 * Drops one reference; the last one frees it.
 */
MH_API void mh_directory_import_unref (MhDirectoryImport *imp);

/**
 * mh_directory_import_add_account:
 * @imp: a batch
 * @tag: the caller's number for this entry (a line number), echoed in
 *   failures
 * @address: the account address
 * @password_hash: (nullable): a hash (see mh_directory_password_verify()),
 *   or %NULL for no login
 * @quota_bytes: the account's quota_bytes setting, or -1 to leave unset
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE if the entry was queued, or %FALSE (nothing queued) with
 *   INVALID (address, hash, quota) or EXISTS (already in this batch).
 */
MH_API gboolean mh_directory_import_add_account (MhDirectoryImport *imp,
                                                 guint tag,
                                                 const char *address,
                                                 const char *password_hash,
                                                 gint64 quota_bytes,
                                                 GError **error);

/**
 * mh_directory_import_commit:
 * @imp: a batch
 * @flags: partial or dry run
 * @added_out: (out) (optional): how many accounts were added
 * @error: return location for a #GError, or %NULL
 *
 * Checks every queued entry in one write transaction, recording each
 * failing entry (mh_directory_import_get_failure()). Without
 * %MH_DIRECTORY_IMPORT_PARTIAL any failure aborts the transaction:
 * nothing is added. Can be called once.
 *
 * Returns: %TRUE if the transaction committed (with PARTIAL, maybe with
 *   failures) or the dry run found no failure; %FALSE with INVALID ("N of
 *   M entries failed"), or IO/CORRUPT for the directory itself.
 */
MH_API gboolean mh_directory_import_commit (MhDirectoryImport *imp,
                                            MhDirectoryImportFlags flags,
                                            guint *added_out,
                                            GError **error);

/**
 * mh_directory_import_get_n_failures:
 * @imp: a batch
 *
 * Returns: entries that failed at commit.
 */
MH_API guint mh_directory_import_get_n_failures (MhDirectoryImport *imp);

/**
 * mh_directory_import_get_failure:
 * @imp: a batch
 * @index: 0 to mh_directory_import_get_n_failures() - 1
 * @tag_out: (out) (optional): the entry's tag
 * @code_out: (out) (optional): its #MhDirectoryError code
 *
 * Returns: (transfer none): what was wrong with it, valid as long as @imp.
 */
MH_API const char *mh_directory_import_get_failure (MhDirectoryImport *imp,
                                                    guint index,
                                                    guint *tag_out,
                                                    int *code_out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDirectory, mh_directory_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDomainInfo, mh_domain_info_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDomainAliasInfo, mh_domain_alias_info_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhAccountInfo, mh_account_info_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhAliasInfo, mh_alias_info_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDirectoryImport, mh_directory_import_unref)

/* C convenience for the lists: `g_autoptr (MhAccountInfoList) l =
 * mh_directory_account_list (...)` frees the elements too. Hidden from
 * the introspection scanner: bindings see plain GPtrArrays. */
#ifndef __GI_SCANNER__
typedef GPtrArray MhDomainInfoList;
typedef GPtrArray MhDomainAliasInfoList;
typedef GPtrArray MhAccountInfoList;
typedef GPtrArray MhAliasInfoList;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDomainInfoList, mh_domain_info_list_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDomainAliasInfoList,
                               mh_domain_alias_info_list_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhAccountInfoList, mh_account_info_list_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhAliasInfoList, mh_alias_info_list_free)
#endif

/* ---- Temporary aliases (lib/directory/temp-alias.c) ------------------- */

/**
 * MhTempAliasInfo:
 *
 * A snapshot of one temporary (disposable) alias: a random address that
 * delivers to one account until it expires. Expired ones are rejected
 * like unknown addresses by lib/resolve.
 */
typedef struct _MhTempAliasInfo MhTempAliasInfo;

MH_API GType mh_temp_alias_info_get_type (void) G_GNUC_CONST;
#define MH_TYPE_TEMP_ALIAS_INFO (mh_temp_alias_info_get_type ())

/**
 * mh_temp_alias_info_ref:
 * @info: an info
 *
 * Returns: (transfer full): @info, with one more reference
 */
MH_API MhTempAliasInfo *mh_temp_alias_info_ref (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_unref:
 * @info: (nullable) (transfer full): the object to release; %NULL is
 *   ignored
 *
 * Drops one reference; the last one frees it.
 */
MH_API void mh_temp_alias_info_unref (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_list_free: (skip)
 * @list: (nullable) (transfer full): a list returned by the directory
 *
 * Releases every element and the array. NULL-safe.
 */
MH_API void mh_temp_alias_info_list_free (GPtrArray *list);
/**
 * mh_temp_alias_info_get_address:
 * @info: an info
 *
 * Returns: (transfer none): the temporary address, domain in U-label form.
 */
MH_API const char *mh_temp_alias_info_get_address (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_get_ascii_address:
 * @info: an info
 *
 * Returns: (transfer none): the temporary address, domain in A-label form.
 */
MH_API const char *mh_temp_alias_info_get_ascii_address (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_get_target:
 * @info: an info
 *
 * Returns: (transfer none): the account it delivers to (A-label form).
 */
MH_API const char *mh_temp_alias_info_get_target (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_get_created:
 * @info: an info
 *
 * Returns: creation time, seconds since the Unix epoch.
 */
MH_API gint64 mh_temp_alias_info_get_created (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_get_expires:
 * @info: an info
 *
 * Returns: expiry time, seconds since the Unix epoch; from then on the
 *   address is rejected.
 */
MH_API gint64 mh_temp_alias_info_get_expires (MhTempAliasInfo *info);
/**
 * mh_temp_alias_info_is_expired:
 * @info: an info
 * @now: the time to judge at, seconds since the epoch
 *
 * Returns: %TRUE if @now is at or after the expiry time.
 */
MH_API gboolean mh_temp_alias_info_is_expired (MhTempAliasInfo *info,
                                               gint64 now);

/**
 * mh_directory_temp_alias_add:
 * @dir: a directory
 * @account: the account that receives the mail (an existing account)
 * @expires: expiry time in seconds since the epoch, later than now and
 *   at most %MH_LIMIT_TEMP_ALIAS_DAYS_MAX days ahead; 0 for the default,
 *   %MH_LIMIT_TEMP_ALIAS_DAYS days from now
 * @error: return location for a #GError, or %NULL
 *
 * Creates a temporary alias with a random local part (12 characters
 * from getrandom(2), not guessable from other temporary aliases) in the
 * account's domain.
 *
 * Returns: (transfer full) (nullable): the new alias, or %NULL with
 *   INVALID (address, or @expires in the past or too far ahead),
 *   NOT_FOUND (domain or account), LIMIT (max_aliases), IO or CORRUPT.
 *
 * Thread safety: safe.
 */
MH_API MhTempAliasInfo *mh_directory_temp_alias_add (MhDirectory *dir,
                                                     const char *account,
                                                     gint64 expires,
                                                     GError **error);

/**
 * mh_directory_temp_alias_delete:
 * @dir: a directory
 * @address: the temporary alias
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_temp_alias_delete (MhDirectory *dir,
                                                const char *address,
                                                GError **error);

/**
 * mh_directory_temp_alias_lookup:
 * @dir: a directory
 * @address: the temporary alias (expired ones are found too)
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the alias, or %NULL with INVALID,
 *   NOT_FOUND, CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API MhTempAliasInfo *mh_directory_temp_alias_lookup (MhDirectory *dir,
                                                        const char *address,
                                                        GError **error);

/**
 * mh_directory_temp_alias_list:
 * @dir: a directory
 * @scope: (nullable): a domain (its temporary aliases) or an account
 *   address (the ones delivering to it); %NULL for all
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (element-type MhTempAliasInfo) (nullable):
 *   the aliases, expired ones included, or %NULL with INVALID, NOT_FOUND,
 *   CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_directory_temp_alias_list (MhDirectory *dir,
                                                const char *scope,
                                                GError **error);

/**
 * mh_directory_temp_alias_purge:
 * @dir: a directory
 * @now: the time to judge at (seconds since the epoch); 0 for now
 * @removed_out: (out) (optional): how many were deleted
 * @error: return location for a #GError, or %NULL
 *
 * Deletes every temporary alias expired at @now, in one transaction.
 *
 * Returns: %TRUE, or %FALSE with CORRUPT or IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_temp_alias_purge (MhDirectory *dir, gint64 now,
                                               guint *removed_out,
                                               GError **error);

/* ---- Bulk aliases (lib/directory/alias-import.c) ---------------------- */

/**
 * mh_directory_alias_import:
 * @dir: a directory
 * @sources: (array zero-terminated=1): alias addresses
 * @targets: (array zero-terminated=1): for each source, its targets,
 *   comma-separated; as many entries as @sources
 * @added_out: (out) (optional): aliases created or extended
 * @error: return location for a #GError, or %NULL
 *
 * Adds many aliases in ONE write transaction (a million take seconds,
 * not a million fsyncs), with the checks of mh_directory_alias_add():
 * hosted source domain, no account of that address, no self target,
 * local targets existing (earlier entries of the batch count), at most
 * %MH_LIMIT_ALIAS_TARGETS_MAX targets, max_aliases. All or nothing: the
 * first bad entry aborts and its error names the entry by number (from
 * 1).
 *
 * Returns: %TRUE, or %FALSE with INVALID, NOT_FOUND, EXISTS, LIMIT, IO
 *   or CORRUPT.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_directory_alias_import (MhDirectory *dir,
                                           const char *const *sources,
                                           const char *const *targets,
                                           guint *added_out, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhTempAliasInfo, mh_temp_alias_info_unref)
#ifndef __GI_SCANNER__
typedef GPtrArray MhTempAliasInfoList;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhTempAliasInfoList,
                               mh_temp_alias_info_list_free)
#endif

G_END_DECLS
