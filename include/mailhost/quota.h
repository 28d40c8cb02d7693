/* libmailhost quota: storage and message-count limits per account and per
 * domain, enforced at delivery and append through the store's check
 * hook, with Maildir++ `maildirsize` kept current for other tools
 * (Dovecot, Courier, maildrop). See docs/quota.md.
 *
 * Caveats (read first):
 * - Limits live in the directory (account quota_bytes/quota_messages,
 *   domain quota_bytes/quota_messages as totals and account_quota_* as
 *   defaults); 0 or unset means no limit.
 * - Usage of an account comes from its store index (cheap, no file read).
 *   Usage of a domain comes from counters in DATA/quota.mdb, moved by the
 *   difference of an account's usage since it was last seen. They are
 *   derived data: mh_quota_recalc() rebuilds them from the Maildirs, and
 *   a domain never counted is counted once, from its Maildirs, when first
 *   needed.
 * - Two store hooks: the check before an operation refuses what would go
 *   over; the change hook after one (mh_store_set_change_hook()) runs
 *   mh_quota_update(): it moves the counters, appends to maildirsize and
 *   sends the warning messages. Callers need not call it themselves.
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/directory.h>
#include <mailhost/store.h>

G_BEGIN_DECLS

/**
 * MH_QUOTA_ERROR:
 *
 * Error domain of the quota layer. Codes are in #MhQuotaError.
 */
#define MH_QUOTA_ERROR (mh_quota_error_quark ())
MH_API GQuark mh_quota_error_quark (void);

/**
 * MhQuotaError:
 * @MH_QUOTA_ERROR_FAILED: any other failure
 * @MH_QUOTA_ERROR_INVALID: a malformed argument (size, address, level)
 * @MH_QUOTA_ERROR_NOT_FOUND: no such account or domain
 * @MH_QUOTA_ERROR_OVER_DOMAIN: the account quotas of a domain would add
 *   up to more than the domain's quota
 * @MH_QUOTA_ERROR_EXCEEDED: over quota, a temporary failure (SMTP 452
 *   4.2.2, RFC 3463: the user can make room)
 * @MH_QUOTA_ERROR_EXCEEDED_PERMANENT: over quota, a permanent failure
 *   (SMTP 552 5.2.2)
 * @MH_QUOTA_ERROR_IO: quota.mdb or a maildirsize file cannot be read or
 *   written (the message names the path)
 *
 * Codes in %MH_QUOTA_ERROR. The messages of EXCEEDED and
 * EXCEEDED_PERMANENT start with the enhanced status code ("4.2.2 ..."),
 * so they survive being copied into %MH_STORE_ERROR_REFUSED: see
 * mh_quota_error_get_reply().
 */
typedef enum
{
  MH_QUOTA_ERROR_FAILED,
  MH_QUOTA_ERROR_INVALID,
  MH_QUOTA_ERROR_NOT_FOUND,
  MH_QUOTA_ERROR_OVER_DOMAIN,
  MH_QUOTA_ERROR_EXCEEDED,
  MH_QUOTA_ERROR_EXCEEDED_PERMANENT,
  MH_QUOTA_ERROR_IO,
} MhQuotaError;

/**
 * MH_QUOTA_KEEP:
 *
 * For the limits of mh_quota_set_account() and mh_quota_set_domain():
 * leave this limit as it is.
 */
#define MH_QUOTA_KEEP (-1)

/**
 * MH_QUOTA_UNSET:
 *
 * For the limits of mh_quota_set_account() and mh_quota_set_domain():
 * remove the setting (an account then gets its domain's default).
 */
#define MH_QUOTA_UNSET (-2)

/**
 * MhQuotaUsage:
 * @version: set to 1
 * @bytes: bytes stored
 * @messages: messages stored
 * @bytes_limit: storage limit, 0 for none
 * @messages_limit: message count limit, 0 for none
 *
 * Usage and limits of an account or a domain.
 */
typedef struct
{
  guint version;
  guint64 bytes;
  guint64 messages;
  guint64 bytes_limit;
  guint64 messages_limit;
} MhQuotaUsage;

MH_API GType mh_quota_usage_get_type (void) G_GNUC_CONST;
#define MH_TYPE_QUOTA_USAGE (mh_quota_usage_get_type ())
/**
 * mh_quota_usage_copy: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhQuotaUsage *mh_quota_usage_copy (const MhQuotaUsage *usage);
/**
 * mh_quota_usage_free: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_quota_usage_free (MhQuotaUsage *usage);

/**
 * MhQuota:
 *
 * The quota layer of one data directory: DATA/quota.mdb and the limits
 * in the directory. Reference counted.
 *
 * Thread safety: may be shared by every thread; several processes may
 * open the same data directory (LMDB serialises the counters' writers).
 * Never use one after fork().
 */
typedef struct _MhQuota MhQuota;

MH_API GType mh_quota_get_type (void) G_GNUC_CONST;
#define MH_TYPE_QUOTA (mh_quota_get_type ())

/**
 * mh_quota_open:
 * @dir: the directory holding the limits
 * @data_dir: (type filename): the data directory (DATA): quota.mdb is
 *   made there, Maildirs are DATA/mail/DOMAIN/USER
 * @config: (nullable): the [quota] settings (tempfail, warn_levels,
 *   warn_from, maildirsize); %NULL for the defaults
 * @error: return location for a #GError, or %NULL
 *
 * Opens (creating if missing) DATA/quota.mdb. A quota.mdb that is not an
 * LMDB file is replaced by an empty one (it only holds counters, which
 * are counted again when needed), with a warning in the log.
 *
 * Returns: (transfer full) (nullable): the quota layer, or %NULL with
 *   @error in %MH_QUOTA_ERROR (IO; INVALID for a bad warn_levels).
 *
 * Thread safety: safe.
 */
MH_API MhQuota *mh_quota_open (MhDirectory *dir, const char *data_dir,
                               MhConfig *config, GError **error);

/**
 * mh_quota_ref: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhQuota *mh_quota_ref (MhQuota *quota);
/**
 * mh_quota_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_quota_unref (MhQuota *quota);

/* ---- Enforcement ------------------------------------------------------ */

/**
 * mh_quota_attach:
 * @quota: the quota layer
 * @store: an account's store
 * @address: the account, local@domain (either domain form)
 * @error: return location for a #GError, or %NULL
 *
 * Installs the quota check on @store (mh_store_set_check()): from now on
 * a delivery, append or copy that would go over the account's or the
 * domain's limit fails with %MH_STORE_ERROR_REFUSED, its message being
 * that of mh_quota_check(). The check holds a reference on @quota until
 * the store goes or another check replaces it. It also installs the
 * store's change hook (mh_store_set_change_hook()), which runs
 * mh_quota_update() after every delivery, append, copy, move, expunge,
 * folder deletion and reconciled outside change (failures are logged).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR (NOT_FOUND:
 *   no such account; INVALID).
 *
 * Thread safety: attach before sharing @store between threads.
 */
MH_API gboolean mh_quota_attach (MhQuota *quota, MhStore *store,
                                 const char *address, GError **error);

/**
 * mh_quota_check:
 * @quota: the quota layer
 * @store: a store given to mh_quota_attach()
 * @add_bytes: bytes about to be added
 * @add_messages: messages about to be added
 * @error: return location for a #GError, or %NULL
 *
 * What the store's hook runs, public so that the SMTP layer can refuse
 * at RCPT TO with the SIZE parameter (RFC 1870) before any data comes.
 * It also moves the domain counter by the account's change since it was
 * last seen.
 *
 * The failure is permanent when the domain says so (setting
 * quota_tempfail false) or [quota] tempfail is false, and always when the
 * message alone is larger than the limit (waiting cannot help).
 *
 * Returns: %TRUE if it fits, else %FALSE with @error in %MH_QUOTA_ERROR:
 *   EXCEEDED ("4.2.2 Mailbox full: ...") or EXCEEDED_PERMANENT
 *   ("5.2.2 Mailbox full: ..."); INVALID for a store never attached; IO.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_check (MhQuota *quota, MhStore *store,
                                gint64 add_bytes, gint64 add_messages,
                                GError **error);

/**
 * mh_quota_update:
 * @quota: the quota layer
 * @store: a store given to mh_quota_attach()
 * @error: return location for a #GError, or %NULL
 *
 * Run by the change hook mh_quota_attach() installs after a delivery,
 * append, copy or expunge; callable directly too. Brings the domain
 * counter and the Maildir's `maildirsize` up to the account's usage, and
 * delivers a warning into INBOX when the usage has crossed one of the
 * warning levels (once per crossing: again only after the usage went
 * below that level and back up).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR or
 *   %MH_STORE_ERROR.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_update (MhQuota *quota, MhStore *store,
                                 GError **error);

/**
 * mh_quota_error_get_reply:
 * @error: an %MH_QUOTA_ERROR EXCEEDED or EXCEEDED_PERMANENT error, or the
 *   %MH_STORE_ERROR_REFUSED error a store made of one
 * @code_out: (out) (optional): the SMTP reply code, 452 or 552
 * @enhanced_out: (out) (optional) (transfer full): the enhanced status
 *   code (RFC 3463), "4.2.2" or "5.2.2"
 * @text_out: (out) (optional) (transfer full): the text after it
 *
 * For the protocol layers: SMTP/LMTP reply with `CODE ENHANCED TEXT`;
 * IMAP APPEND with `NO [OVERQUOTA] TEXT` (RFC 9208).
 *
 * Returns: %TRUE if @error is an over-quota error.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_error_get_reply (const GError *error,
                                          guint *code_out,
                                          char **enhanced_out,
                                          char **text_out);

/* ---- Usage ------------------------------------------------------------ */

/**
 * mh_quota_get_account:
 * @quota: the quota layer
 * @address: the account
 * @usage_out: (out caller-allocates): usage and limits
 * @error: return location for a #GError, or %NULL
 *
 * The account's usage from its index (the store attached in this
 * process, or one opened for the call), first reconciled with the
 * Maildir's files, and its effective limits (its own, else its domain's
 * defaults). Also brings the counters and `maildirsize` up to date. Not
 * for every delivery: mh_quota_check() is the cheap path.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR (NOT_FOUND,
 *   INVALID, IO) or %MH_STORE_ERROR.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_get_account (MhQuota *quota, const char *address,
                                      MhQuotaUsage *usage_out,
                                      GError **error);

/**
 * mh_quota_get_domain:
 * @quota: the quota layer
 * @domain: the domain, either form
 * @usage_out: (out caller-allocates): usage (from the counters) and the
 *   domain's total limits
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR (NOT_FOUND,
 *   INVALID, IO).
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_get_domain (MhQuota *quota, const char *domain,
                                     MhQuotaUsage *usage_out,
                                     GError **error);

/**
 * mh_quota_recalc:
 * @quota: the quota layer
 * @target: (nullable): an account, a domain, or %NULL for every domain
 * @accounts_out: (out) (optional): number of accounts counted
 * @error: return location for a #GError, or %NULL
 *
 * Counts again from the Maildirs: each account's index is reconciled
 * with its files (files removed or added behind our back), its
 * `maildirsize` rewritten, and the counters set. Accounts whose index is
 * busy elsewhere in this process are counted from their files.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR (NOT_FOUND,
 *   INVALID, IO) or %MH_STORE_ERROR.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_recalc (MhQuota *quota, const char *target,
                                 guint *accounts_out, GError **error);

/* ---- Limits ----------------------------------------------------------- */

/**
 * mh_quota_set_account:
 * @quota: the quota layer
 * @address: the account
 * @bytes: storage limit in bytes (0: none), %MH_QUOTA_KEEP or
 *   %MH_QUOTA_UNSET
 * @messages: message limit (0: none), %MH_QUOTA_KEEP or %MH_QUOTA_UNSET
 * @error: return location for a #GError, or %NULL
 *
 * Sets the account's quota_bytes and quota_messages settings, refusing
 * when the account quotas of its domain would add up to more than the
 * domain's quota (accounts without a limit are not counted: the domain's
 * total still holds them).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR
 *   (OVER_DOMAIN: "accounts of example.org would total 12 GiB, over the
 *   domain's 10 GiB"; INVALID; NOT_FOUND) or %MH_DIRECTORY_ERROR.
 *
 * Thread safety: safe; checks and changes made through #MhQuota are
 *   serialised across processes.
 */
MH_API gboolean mh_quota_set_account (MhQuota *quota, const char *address,
                                      gint64 bytes, gint64 messages,
                                      GError **error);

/**
 * mh_quota_set_domain:
 * @quota: the quota layer
 * @domain: the domain
 * @bytes: total storage of the domain (0: none), or KEEP / UNSET
 * @messages: total messages of the domain, or KEEP / UNSET
 * @account_bytes: default storage of its accounts, or KEEP / UNSET
 * @account_messages: default messages of its accounts, or KEEP / UNSET
 * @error: return location for a #GError, or %NULL
 *
 * As mh_quota_set_account() for a domain: refused when its account
 * quotas (with the new defaults) would add up to more than its new total.
 *
 * Returns: %TRUE, or %FALSE with @error as mh_quota_set_account().
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_set_domain (MhQuota *quota, const char *domain,
                                     gint64 bytes, gint64 messages,
                                     gint64 account_bytes,
                                     gint64 account_messages,
                                     GError **error);

/**
 * mh_quota_account_add:
 * @quota: the quota layer
 * @address: the new account
 * @password: (nullable): its password, as for mh_directory_account_add()
 * @bytes: its storage limit, or %MH_QUOTA_KEEP for the domain's default
 * @messages: its message limit, or %MH_QUOTA_KEEP for the default
 * @error: return location for a #GError, or %NULL
 *
 * mh_directory_account_add() that first checks the domain's quota: a new
 * account whose limit (given, or the domain's account default) would
 * take the sum of account quotas over the domain's quota is refused.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_QUOTA_ERROR (OVER_DOMAIN,
 *   INVALID) or %MH_DIRECTORY_ERROR.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_account_add (MhQuota *quota, const char *address,
                                      const char *password, gint64 bytes,
                                      gint64 messages, GError **error);

/* ---- Sizes ------------------------------------------------------------ */

/**
 * mh_quota_parse_size:
 * @text: "1048576", "500M", "1G", "1.5G", "2T" (powers of 1024), or
 *   "0", "none", "unlimited"
 * @bytes_out: (out): the size, 0 for no limit
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE, or %FALSE with %MH_QUOTA_ERROR_INVALID quoting @text.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_quota_parse_size (const char *text, guint64 *bytes_out,
                                     GError **error);

/**
 * mh_quota_format_size:
 * @bytes: a size
 *
 * Returns: (transfer full): "10 GiB", "1.5 MiB", "512 bytes".
 *
 * Thread safety: safe.
 */
MH_API char *mh_quota_format_size (guint64 bytes);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhQuota, mh_quota_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhQuotaUsage, mh_quota_usage_free)

G_END_DECLS
