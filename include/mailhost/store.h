/* libmailhost store: our own Maildir (Maildir++ folders, flags and
 * keywords Dovecot-compatible) with a per-account LMDB index (UIDs,
 * MODSEQ, metadata cache). The Maildir files are the truth; the index
 * makes them fast and can always be rebuilt from them. See docs/store.md.
 */
#pragma once

#include <mailhost/core.h>
#include <gio/gio.h>

G_BEGIN_DECLS

/**
 * MH_STORE_ERROR:
 *
 * Error domain of the store. Codes are in #MhStoreError.
 */
#define MH_STORE_ERROR (mh_store_error_quark ())
MH_API GQuark mh_store_error_quark (void);

/**
 * MhStoreError:
 * @MH_STORE_ERROR_FAILED: any other failure
 * @MH_STORE_ERROR_INVALID: a malformed argument (folder name, keyword,
 *   section, UID list)
 * @MH_STORE_ERROR_NOT_FOUND: no such folder or message
 * @MH_STORE_ERROR_EXISTS: the folder already exists
 * @MH_STORE_ERROR_CORRUPT: the index or a Maildir control file cannot be
 *   read; mh_store_rebuild() repairs the index
 * @MH_STORE_ERROR_BUSY: the index is already open in this process
 * @MH_STORE_ERROR_LIMIT: a limit from limits.h was reached
 * @MH_STORE_ERROR_IO: a file system call failed (the message names the
 *   path and the reason)
 * @MH_STORE_ERROR_REFUSED: the quota check refused the operation; the
 *   message is the check's own
 * @MH_STORE_ERROR_MODIFIED: a conditional store (UNCHANGEDSINCE) found
 *   the message changed
 *
 * Codes in %MH_STORE_ERROR.
 */
typedef enum
{
  MH_STORE_ERROR_FAILED,
  MH_STORE_ERROR_INVALID,
  MH_STORE_ERROR_NOT_FOUND,
  MH_STORE_ERROR_EXISTS,
  MH_STORE_ERROR_CORRUPT,
  MH_STORE_ERROR_BUSY,
  MH_STORE_ERROR_LIMIT,
  MH_STORE_ERROR_IO,
  MH_STORE_ERROR_REFUSED,
  MH_STORE_ERROR_MODIFIED,
} MhStoreError;

/**
 * MhStoreFlags:
 * @MH_STORE_FLAG_NONE: no flag
 * @MH_STORE_FLAG_SEEN: \Seen (Maildir 'S')
 * @MH_STORE_FLAG_ANSWERED: \Answered ('R')
 * @MH_STORE_FLAG_FLAGGED: \Flagged ('F')
 * @MH_STORE_FLAG_DELETED: \Deleted ('T')
 * @MH_STORE_FLAG_DRAFT: \Draft ('D')
 * @MH_STORE_FLAG_FORWARDED: $Forwarded ('P', "passed")
 *
 * System flags kept in the `:2,` info suffix of the file name. \Recent is
 * not a stored flag: see #MhStoreStatus.recent.
 */
typedef enum /*< flags >*/
{
  MH_STORE_FLAG_NONE = 0,
  MH_STORE_FLAG_SEEN = 1 << 0,
  MH_STORE_FLAG_ANSWERED = 1 << 1,
  MH_STORE_FLAG_FLAGGED = 1 << 2,
  MH_STORE_FLAG_DELETED = 1 << 3,
  MH_STORE_FLAG_DRAFT = 1 << 4,
  MH_STORE_FLAG_FORWARDED = 1 << 5,
} MhStoreFlags;

/**
 * MhStoreFlagOp:
 * @MH_STORE_FLAGS_ADD: add the given flags and keywords (+FLAGS)
 * @MH_STORE_FLAGS_REMOVE: remove them (-FLAGS)
 * @MH_STORE_FLAGS_REPLACE: set exactly them (FLAGS)
 *
 * How mh_store_set_flags() combines flags.
 */
typedef enum
{
  MH_STORE_FLAGS_ADD,
  MH_STORE_FLAGS_REMOVE,
  MH_STORE_FLAGS_REPLACE,
} MhStoreFlagOp;

/**
 * MhStoreRole:
 * @MH_STORE_ROLE_NONE: an ordinary folder
 * @MH_STORE_ROLE_INBOX: INBOX (the Maildir root)
 * @MH_STORE_ROLE_SENT: "Sent" (\Sent, RFC 6154)
 * @MH_STORE_ROLE_DRAFTS: "Drafts" (\Drafts)
 * @MH_STORE_ROLE_TRASH: "Trash" (\Trash)
 * @MH_STORE_ROLE_JUNK: "Junk" (\Junk)
 * @MH_STORE_ROLE_ARCHIVE: "Archive" (\Archive)
 *
 * Special-use roles. Each role's folder has a fixed name and is created
 * on first use (mh_store_folder_for_role()).
 */
typedef enum
{
  MH_STORE_ROLE_NONE,
  MH_STORE_ROLE_INBOX,
  MH_STORE_ROLE_SENT,
  MH_STORE_ROLE_DRAFTS,
  MH_STORE_ROLE_TRASH,
  MH_STORE_ROLE_JUNK,
  MH_STORE_ROLE_ARCHIVE,
} MhStoreRole;

/**
 * MhStoreOpenFlags:
 * @MH_STORE_OPEN_DEFAULT: open an existing Maildir; the index is created
 *   if missing (first build, reading dovecot-uidlist files)
 * @MH_STORE_OPEN_CREATE: also create the Maildir if it does not exist
 *
 * Flags of mh_store_open().
 */
typedef enum /*< flags >*/
{
  MH_STORE_OPEN_DEFAULT = 0,
  MH_STORE_OPEN_CREATE = 1 << 0,
} MhStoreOpenFlags;

/**
 * MhStore:
 *
 * One account's mail: a Maildir++ tree and its LMDB index. Reference
 * counted (mh_store_ref(), mh_store_unref()).
 *
 * Thread safety: a store may be shared by any number of threads; every
 * call is safe concurrently. Several processes may open the same account
 * at once (LMDB serialises writers across processes). Never use a store
 * after fork().
 */
typedef struct _MhStore MhStore;

/**
 * MhStoreStatus:
 * @version: set to 1
 * @messages: number of messages
 * @recent: messages not yet claimed by a read-write select (\Recent)
 * @unseen: messages without \Seen
 * @uidnext: the UID the next message will get
 * @uidvalidity: the folder's UIDVALIDITY
 * @highestmodseq: the folder's HIGHESTMODSEQ
 * @size: bytes of all messages as stored on disk
 * @deleted: messages with \Deleted
 *
 * Counters of one folder (mh_store_folder_status()).
 */
typedef struct
{
  guint version;
  guint32 messages;
  guint32 recent;
  guint32 unseen;
  guint32 uidnext;
  guint32 uidvalidity;
  guint64 highestmodseq;
  guint64 size;
  guint32 deleted;
} MhStoreStatus;

MH_API GType mh_store_status_get_type (void) G_GNUC_CONST;
#define MH_TYPE_STORE_STATUS (mh_store_status_get_type ())
/**
 * mh_store_status_copy: (skip)
 */
MH_API MhStoreStatus *mh_store_status_copy (const MhStoreStatus *status);
/**
 * mh_store_status_free: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_store_status_free (MhStoreStatus *status);

MH_API GType mh_store_get_type (void) G_GNUC_CONST;
#define MH_TYPE_STORE (mh_store_get_type ())

/**
 * mh_store_open:
 * @maildir: (type filename): the Maildir root (INBOX)
 * @index_dir: (type filename): directory of the account's LMDB index;
 *   created if missing
 * @flags: #MhStoreOpenFlags
 * @error: return location for a #GError, or %NULL
 *
 * Opens an account. On the first open the index is built from the
 * Maildir, reading `dovecot-uidlist` files so UIDs and UIDVALIDITY of a
 * Dovecot Maildir survive. Opening the same @index_dir twice in one
 * process gives %MH_STORE_ERROR_BUSY (a second LMDB environment in one
 * process would break its locks): share the first #MhStore.
 *
 * Returns: (transfer full) (nullable): the store, or %NULL with @error in
 *   %MH_STORE_ERROR (NOT_FOUND: no Maildir, CORRUPT, BUSY, IO).
 */
MH_API MhStore *mh_store_open (const char *maildir, const char *index_dir,
                               MhStoreOpenFlags flags, GError **error);

/**
 * mh_store_open_account:
 * @data_dir: (type filename): the data directory (DATA)
 * @domain: the domain, e.g. "example.org"
 * @user: the local part, e.g. "alice"
 * @flags: #MhStoreOpenFlags
 * @error: return location for a #GError, or %NULL
 *
 * mh_store_open() on DATA/mail/@domain/@user with its index in
 * DATA/index/@domain/@user. @domain and @user may not contain '/', be
 * empty, "." or "..".
 *
 * Returns: (transfer full) (nullable): the store, or %NULL with @error as
 *   mh_store_open(), or INVALID for a bad @domain or @user.
 */
MH_API MhStore *mh_store_open_account (const char *data_dir,
                                       const char *domain, const char *user,
                                       MhStoreOpenFlags flags,
                                       GError **error);

/**
 * mh_store_ref: (skip)
 */
MH_API MhStore *mh_store_ref (MhStore *store);
/**
 * mh_store_unref: (skip)
 *
 * NULL-safe; the last reference syncs and closes the index.
 */
MH_API void mh_store_unref (MhStore *store);

/**
 * mh_store_get_maildir:
 * @store: a store
 *
 * Returns: (transfer none) (type filename): the Maildir root.
 */
MH_API const char *mh_store_get_maildir (MhStore *store);

/**
 * MhStoreCheckFunc:
 * @store: the store
 * @folder: the target folder (UTF-8)
 * @add_bytes: bytes the operation adds (0 or more)
 * @add_messages: messages it adds
 * @user_data: data given to mh_store_set_check()
 * @error: set it with a message for the sender when refusing
 *
 * Called before a delivery, append or copy writes anything: the quota
 * layer's hook. Refusing makes the operation fail with
 * %MH_STORE_ERROR_REFUSED carrying @error's message (the domain and code
 * of @error are kept in the message prefix-free, so the caller maps it to
 * an SMTP/IMAP reply).
 *
 * Returns: %TRUE to allow.
 */
typedef gboolean (*MhStoreCheckFunc) (MhStore *store, const char *folder,
                                      gint64 add_bytes, gint64 add_messages,
                                      gpointer user_data, GError **error);

/**
 * mh_store_set_check:
 * @store: a store
 * @func: (nullable) (scope notified) (closure user_data): the check
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Installs (or, with %NULL, removes) the check run before anything is
 * added. The quota layer reads usage with mh_store_get_usage().
 *
 * Thread safety: install before sharing the store; @func runs on the
 * calling thread of each operation, possibly concurrently.
 */
MH_API void mh_store_set_check (MhStore *store, MhStoreCheckFunc func,
                                gpointer user_data, GDestroyNotify destroy);

/**
 * MhStoreChangeFunc:
 * @store: the store
 * @folder: the folder whose messages changed (UTF-8, canonical)
 * @user_data: data given to mh_store_set_change_hook()
 *
 * Called after an operation added or removed messages: a delivery or
 * append, a copy or move (once for the target, and for the source of a
 * move), an expunge (retention included), a folder deletion, and a
 * reconciliation that found files added or removed by another program.
 * The change is committed when it runs; no store lock is held, so the
 * hook may read the store (mh_store_get_usage()) and even deliver into
 * it (the hook then runs again, nested: guard against recursion). Flag
 * changes do not call it. The quota layer's maildirsize upkeep.
 */
typedef void (*MhStoreChangeFunc) (MhStore *store, const char *folder,
                                   gpointer user_data);

/**
 * mh_store_set_change_hook:
 * @store: a store
 * @func: (nullable) (scope notified) (closure user_data): the hook
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Installs (or, with %NULL, removes) the hook run after each change of
 * the message set (#MhStoreChangeFunc), so that usage kept elsewhere
 * (lib/quota's counters and maildirsize) never depends on the callers
 * remembering to update it.
 *
 * Thread safety: install before sharing the store; @func runs on the
 * thread of each operation, possibly concurrently.
 */
MH_API void mh_store_set_change_hook (MhStore *store, MhStoreChangeFunc func,
                                      gpointer user_data,
                                      GDestroyNotify destroy);

/**
 * mh_store_get_usage:
 * @store: a store
 * @bytes_out: (out): bytes of all messages in all folders
 * @messages_out: (out): number of messages in all folders
 * @error: return location for a #GError, or %NULL
 *
 * Sums the counters the index keeps per folder (no file is read).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR.
 */
MH_API gboolean mh_store_get_usage (MhStore *store, guint64 *bytes_out,
                                    guint64 *messages_out, GError **error);

/* ---- Delivery and append ---------------------------------------------- */

/**
 * mh_store_deliver:
 * @store: a store
 * @folder: (nullable): UTF-8 folder name, %NULL for INBOX; a role folder
 *   ("Junk", "Sent", ...) is created on first use
 * @message: the RFC 5322 message, LF or CRLF line ends
 * @flags: flags to set (a message with flags goes to cur/, else new/)
 * @keywords: (nullable) (array zero-terminated=1): keywords to set
 * @internal_date: seconds since the epoch, or 0 for now
 * @uid_out: (out) (optional): the message's UID
 * @error: return location for a #GError, or %NULL
 *
 * Writes the message into the folder's tmp/, fsyncs it, renames it into
 * new/ (or cur/), fsyncs that directory and records it in the index; only
 * then returns %TRUE: the message survives a crash. Concurrent calls
 * share directory fsyncs and index commits (group commit), so many
 * threads deliver faster than one. The metadata cache (envelope,
 * bodystructure, common headers) is computed here, once.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR (INVALID
 *   folder or keyword, LIMIT, REFUSED by the check, IO).
 */
MH_API gboolean mh_store_deliver (MhStore *store, const char *folder,
                                  GBytes *message, MhStoreFlags flags,
                                  const char *const *keywords,
                                  gint64 internal_date, guint32 *uid_out,
                                  GError **error);

/* ---- Folders ---------------------------------------------------------- */

/**
 * mh_store_folder_create:
 * @store: a store
 * @name: UTF-8 folder name, '.' separates levels ("Archive.2024")
 * @error: return location for a #GError, or %NULL
 *
 * Creates a folder (and missing parents). On disk it is the Maildir++
 * directory "." + the name in modified UTF-7, as Dovecot writes it.
 * Names may not be empty, start or end with '.', contain "..", '/',
 * control characters, or be longer than %MH_LIMIT_STORE_FOLDER_NAME_MAX
 * once encoded.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR (INVALID,
 *   LIMIT, EXISTS, IO).
 */
MH_API gboolean mh_store_folder_create (MhStore *store, const char *name,
                                        GError **error);

/**
 * mh_store_folder_delete:
 * @store: a store
 * @name: UTF-8 folder name; not INBOX, not one with children
 * @error: return location for a #GError, or %NULL
 *
 * Deletes a folder with its messages (IMAP DELETE, RFC 3501 6.3.4).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR (INVALID,
 *   NOT_FOUND, EXISTS when it has children, IO).
 */
MH_API gboolean mh_store_folder_delete (MhStore *store, const char *name,
                                        GError **error);

/**
 * mh_store_folder_rename:
 * @store: a store
 * @from: UTF-8 folder name (INBOX is refused: RFC 3501's INBOX rename
 *   semantics are left to the IMAP layer)
 * @to: the new name; its parents are created
 * @error: return location for a #GError, or %NULL
 *
 * Renames a folder and all its children; UIDs and UIDVALIDITY stay.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR (INVALID,
 *   NOT_FOUND, EXISTS, IO).
 */
MH_API gboolean mh_store_folder_rename (MhStore *store, const char *from,
                                        const char *to, GError **error);

/**
 * mh_store_folder_list:
 * @store: a store
 * @error: return location for a #GError, or %NULL
 *
 * Lists folders found on disk (INBOX first, then sorted), so folders made
 * by other tools appear too.
 *
 * Returns: (transfer full) (array zero-terminated=1) (nullable): UTF-8
 *   names; %NULL with @error in %MH_STORE_ERROR (IO).
 */
MH_API char **mh_store_folder_list (MhStore *store, GError **error);

/**
 * mh_store_folder_exists:
 * @store: a store
 * @name: UTF-8 folder name
 *
 * Returns: %TRUE if the folder exists on disk.
 */
MH_API gboolean mh_store_folder_exists (MhStore *store, const char *name);

/**
 * mh_store_folder_role:
 * @name: UTF-8 folder name
 *
 * Returns: the special-use role of @name (by its fixed name).
 */
MH_API MhStoreRole mh_store_folder_role (const char *name);

/**
 * mh_store_folder_for_role:
 * @store: a store
 * @role: a role other than %MH_STORE_ROLE_NONE
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer none) (nullable): the role's folder name (static),
 *   created if missing; %NULL with @error in %MH_STORE_ERROR (IO).
 */
MH_API const char *mh_store_folder_for_role (MhStore *store,
                                             MhStoreRole role,
                                             GError **error);

/**
 * mh_store_role_special_use:
 * @role: a role
 *
 * Returns: (transfer none) (nullable): the RFC 6154 attribute, e.g.
 *   "\\Junk", or %NULL for none and INBOX.
 */
MH_API const char *mh_store_role_special_use (MhStoreRole role);

/**
 * mh_store_subscribe:
 * @store: a store
 * @name: UTF-8 folder name (need not exist, RFC 3501 6.3.6)
 * @subscribed: %TRUE to subscribe, %FALSE to unsubscribe
 * @error: return location for a #GError, or %NULL
 *
 * Updates the Maildir's `subscriptions` file (Dovecot's format).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR.
 */
MH_API gboolean mh_store_subscribe (MhStore *store, const char *name,
                                    gboolean subscribed, GError **error);

/**
 * mh_store_subscriptions:
 * @store: a store
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (array zero-terminated=1) (nullable): the
 *   subscribed names; %NULL with @error.
 */
MH_API char **mh_store_subscriptions (MhStore *store, GError **error);

/**
 * mh_store_folder_status:
 * @store: a store
 * @folder: (nullable): UTF-8 folder name, %NULL for INBOX
 * @status_out: (out caller-allocates): the counters
 * @error: return location for a #GError, or %NULL
 *
 * Reconciles the folder with its Maildir if other tools changed it, then
 * fills @status_out.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR (NOT_FOUND).
 */
MH_API gboolean mh_store_folder_status (MhStore *store, const char *folder,
                                        MhStoreStatus *status_out,
                                        GError **error);

/* ---- Views of a folder ------------------------------------------------ */

/**
 * MhStoreView:
 *
 * An immutable snapshot of a folder's messages in UID order: UID, flags,
 * keywords, MODSEQ. Made by mh_store_select() or
 * mh_store_changes_since(); reference counted.
 *
 * Thread safety: immutable, may be shared.
 */
typedef struct _MhStoreView MhStoreView;
MH_API GType mh_store_view_get_type (void) G_GNUC_CONST;
#define MH_TYPE_STORE_VIEW (mh_store_view_get_type ())
/**
 * mh_store_view_ref: (skip)
 */
MH_API MhStoreView *mh_store_view_ref (MhStoreView *view);
/**
 * mh_store_view_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_store_view_unref (MhStoreView *view);

/**
 * mh_store_select:
 * @store: a store
 * @folder: (nullable): UTF-8 folder name, %NULL for INBOX
 * @read_write: %TRUE for IMAP SELECT: messages in new/ move to cur/ and
 *   this view claims \Recent; %FALSE for EXAMINE
 * @error: return location for a #GError, or %NULL
 *
 * Reconciles the folder with its Maildir (a file renamed by another tool
 * keeps its UID, a new file gets the next UID, a vanished file is
 * expunged) and returns its messages.
 *
 * Returns: (transfer full) (nullable): the view, or %NULL with @error in
 *   %MH_STORE_ERROR (NOT_FOUND, INVALID, CORRUPT, IO).
 */
MH_API MhStoreView *mh_store_select (MhStore *store, const char *folder,
                                     gboolean read_write, GError **error);

/**
 * mh_store_view_get_count:
 * @view: a view
 *
 * Returns: the number of messages in @view.
 */
MH_API guint mh_store_view_get_count (MhStoreView *view);
/**
 * mh_store_view_get_uid:
 * @view: a view
 * @index: 0 .. count-1 (index + 1 is the IMAP sequence number of a full
 *   select view)
 *
 * Returns: the UID at @index.
 */
MH_API guint32 mh_store_view_get_uid (MhStoreView *view, guint index);
/**
 * mh_store_view_get_flags:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Returns: the system flags at @index.
 */
MH_API MhStoreFlags mh_store_view_get_flags (MhStoreView *view, guint index);
/**
 * mh_store_view_get_modseq:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Returns: the MODSEQ at @index.
 */
MH_API guint64 mh_store_view_get_modseq (MhStoreView *view, guint index);
/**
 * mh_store_view_is_recent:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Returns: %TRUE if the message is \Recent in this view.
 */
MH_API gboolean mh_store_view_is_recent (MhStoreView *view, guint index);
/**
 * mh_store_view_get_keywords:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Returns: (transfer full) (array zero-terminated=1): keywords of the
 *   message at @index.
 */
MH_API char **mh_store_view_get_keywords (MhStoreView *view, guint index);
/**
 * mh_store_view_get_folder_keywords:
 * @view: a view
 *
 * Returns: (transfer full) (array zero-terminated=1): every keyword the
 *   folder knows (for the IMAP FLAGS response).
 */
MH_API char **mh_store_view_get_folder_keywords (MhStoreView *view);
/**
 * mh_store_view_get_status:
 * @view: a view
 * @status_out: (out caller-allocates): the folder counters when the view
 *   was made
 */
MH_API void mh_store_view_get_status (MhStoreView *view,
                                      MhStoreStatus *status_out);
/**
 * mh_store_view_get_vanished:
 * @view: a view from mh_store_changes_since()
 * @n_out: (out): number of UIDs
 *
 * Returns: (transfer none) (array length=n_out): UIDs expunged since the
 *   MODSEQ asked for (QRESYNC VANISHED), ascending; valid as long as
 *   @view.
 */
MH_API const guint32 *mh_store_view_get_vanished (MhStoreView *view,
                                                  guint *n_out);
/**
 * mh_store_view_find:
 * @view: a view
 * @uid: a UID
 *
 * Returns: the index of @uid in @view, or -1.
 */
MH_API gint mh_store_view_find (MhStoreView *view, guint32 uid);
/**
 * mh_store_view_get_rfc822_size:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Read from the index record when the view was made (no file access).
 *
 * Returns: the message's size with CRLF line ends (IMAP RFC822.SIZE).
 */
MH_API guint64 mh_store_view_get_rfc822_size (MhStoreView *view, guint index);
/**
 * mh_store_view_get_internal_date:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Returns: the message's internal date, seconds since the epoch, as
 *   recorded when the view was made.
 */
MH_API gint64 mh_store_view_get_internal_date (MhStoreView *view,
                                               guint index);
/**
 * mh_store_view_get_save_date:
 * @view: a view
 * @index: 0 .. count-1
 *
 * Returns: when the message was saved into this folder (delivery, APPEND
 *   or COPY), seconds since the epoch (IMAP SAVEDBEFORE/SAVEDSINCE).
 */
MH_API gint64 mh_store_view_get_save_date (MhStoreView *view, guint index);

/**
 * MhStoreReader:
 *
 * A batch reader of message metadata in one folder: one index read
 * transaction and one freshness check for a run of lookups, instead of
 * one each per mh_store_message_get(). It sees the index as it was when
 * made (a snapshot); message files are not touched, so a file that
 * vanished since is reported when its body is read (mh_store_read()).
 * Keep it short-lived (one command): it pins that index snapshot.
 *
 * Thread safety: one thread at a time per reader; readers of one store
 * may be used from several threads at once.
 */
typedef struct _MhStoreReader MhStoreReader;
/* Also declared with the message API below (C11 allows both). */
typedef struct _MhStoreMessage MhStoreMessage;
MH_API GType mh_store_reader_get_type (void) G_GNUC_CONST;
#define MH_TYPE_STORE_READER (mh_store_reader_get_type ())
/**
 * mh_store_reader_new:
 * @store: a store
 * @folder: (nullable): the folder name, %NULL for INBOX
 * @error: return location for a #GError
 *
 * Brings the folder's index up to date with the Maildir once and opens a
 * read snapshot.
 *
 * Returns: (transfer full) (nullable): a reader, or %NULL with
 *   MH_STORE_ERROR_NOT_FOUND if the folder does not exist.
 */
MH_API MhStoreReader *mh_store_reader_new (MhStore *store, const char *folder,
                                           GError **error);
/**
 * mh_store_reader_get:
 * @reader: a reader
 * @uid: a UID
 * @error: return location for a #GError
 *
 * Like mh_store_message_get() from the reader's snapshot, without a
 * freshness check.
 *
 * Returns: (transfer full) (nullable): the message, or %NULL with
 *   MH_STORE_ERROR_NOT_FOUND if the snapshot has no such UID.
 */
MH_API MhStoreMessage *mh_store_reader_get (MhStoreReader *reader, guint32 uid,
                                            GError **error);
/**
 * mh_store_reader_ref:
 * @reader: a reader
 *
 * Returns: (transfer full): @reader
 */
MH_API MhStoreReader *mh_store_reader_ref (MhStoreReader *reader);
/**
 * mh_store_reader_unref:
 * @reader: (nullable) (transfer full): a reader
 *
 * Drops a reference; the last one ends the read snapshot.
 */
MH_API void mh_store_reader_unref (MhStoreReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStoreReader, mh_store_reader_unref)

/**
 * mh_store_changes_since:
 * @store: a store
 * @folder: (nullable): UTF-8 folder name, %NULL for INBOX
 * @modseq: a MODSEQ the client knows
 * @error: return location for a #GError, or %NULL
 *
 * The messages whose MODSEQ is greater than @modseq and the UIDs expunged
 * after it (kept as tombstones, for QRESYNC; see
 * mh_store_view_get_vanished()).
 *
 * Returns: (transfer full) (nullable): the view, or %NULL with @error.
 */
MH_API MhStoreView *mh_store_changes_since (MhStore *store,
                                            const char *folder,
                                            guint64 modseq, GError **error);

/* ---- Changing messages ------------------------------------------------ */

/**
 * mh_store_set_flags:
 * @store: a store
 * @folder: (nullable): UTF-8 folder name, %NULL for INBOX
 * @uids: (array length=n_uids): UIDs; unknown ones are skipped
 * @n_uids: number of @uids
 * @op: add, remove or replace
 * @flags: system flags
 * @keywords: (nullable) (array zero-terminated=1): keywords (atoms, at
 *   most %MH_LIMIT_STORE_KEYWORDS_MAX per folder)
 * @unchanged_since: 0, or the CONDSTORE UNCHANGEDSINCE value: messages
 *   with a greater MODSEQ are left alone and listed in @failed_out
 * @failed_out: (out) (optional) (transfer full) (element-type guint32):
 *   a #GArray of UIDs that failed the UNCHANGEDSINCE test, or %NULL
 * @error: return location for a #GError, or %NULL
 *
 * Changes flags (renaming the files' `:2,` suffix) and gives each changed
 * message a new MODSEQ.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR (INVALID
 *   keyword, LIMIT, NOT_FOUND folder, IO).
 */
MH_API gboolean mh_store_set_flags (MhStore *store, const char *folder,
                                    const guint32 *uids, gsize n_uids,
                                    MhStoreFlagOp op, MhStoreFlags flags,
                                    const char *const *keywords,
                                    guint64 unchanged_since,
                                    GArray **failed_out, GError **error);

/**
 * mh_store_expunge:
 * @store: a store
 * @folder: (nullable): UTF-8 folder name, %NULL for INBOX
 * @uids: (array length=n_uids) (nullable): only these (UID EXPUNGE), or
 *   %NULL for every message
 * @n_uids: number of @uids
 * @only_deleted: %TRUE to expunge only messages with \Deleted
 * @expunged_out: (out) (optional) (transfer full) (element-type guint32):
 *   a #GArray of UIDs expunged, ascending
 * @error: return location for a #GError, or %NULL
 *
 * Removes the files and records tombstones for QRESYNC.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR.
 */
MH_API gboolean mh_store_expunge (MhStore *store, const char *folder,
                                  const guint32 *uids, gsize n_uids,
                                  gboolean only_deleted,
                                  GArray **expunged_out, GError **error);

/**
 * mh_store_copy:
 * @store: a store
 * @from: (nullable): source folder, %NULL for INBOX
 * @uids: (array length=n_uids): UIDs to copy; unknown ones are skipped
 * @n_uids: number of @uids
 * @to: (nullable): destination folder, %NULL for INBOX
 * @move: %TRUE to remove the sources afterwards (IMAP MOVE)
 * @src_uids_out: (out) (optional) (transfer full) (element-type guint32):
 *   the UIDs copied
 * @dst_uids_out: (out) (optional) (transfer full) (element-type guint32):
 *   their new UIDs (COPYUID, RFC 4315), in the same order
 * @dst_uidvalidity_out: (out) (optional): UIDVALIDITY of @to
 * @error: return location for a #GError, or %NULL
 *
 * Copies by hard link when possible (no data copied), with flags and
 * keywords.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR.
 */
MH_API gboolean mh_store_copy (MhStore *store, const char *from,
                               const guint32 *uids, gsize n_uids,
                               const char *to, gboolean move,
                               GArray **src_uids_out, GArray **dst_uids_out,
                               guint32 *dst_uidvalidity_out, GError **error);

/* ---- Reading messages ------------------------------------------------- */

/**
 * MhStoreMessage:
 *
 * The cached metadata of one message, computed at delivery. Reference
 * counted, immutable.
 *
 * Thread safety: immutable, may be shared.
 */
typedef struct _MhStoreMessage MhStoreMessage;
MH_API GType mh_store_message_get_type (void) G_GNUC_CONST;
#define MH_TYPE_STORE_MESSAGE (mh_store_message_get_type ())
/**
 * mh_store_message_ref: (skip)
 */
MH_API MhStoreMessage *mh_store_message_ref (MhStoreMessage *msg);
/**
 * mh_store_message_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_store_message_unref (MhStoreMessage *msg);

/**
 * mh_store_message_get:
 * @store: a store
 * @folder: (nullable): folder, %NULL for INBOX
 * @uid: the message's UID
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the metadata (no message file is
 *   read), or %NULL with @error in %MH_STORE_ERROR (NOT_FOUND).
 */
MH_API MhStoreMessage *mh_store_message_get (MhStore *store,
                                             const char *folder, guint32 uid,
                                             GError **error);
/**
 * mh_store_message_get_uid:
 * @msg: a message
 *
 * Returns: its UID.
 */
MH_API guint32 mh_store_message_get_uid (MhStoreMessage *msg);
/**
 * mh_store_message_get_size:
 * @msg: a message
 *
 * Returns: bytes on disk.
 */
MH_API guint64 mh_store_message_get_size (MhStoreMessage *msg);
/**
 * mh_store_message_get_rfc822_size:
 * @msg: a message
 *
 * Returns: the size with CRLF line ends (IMAP RFC822.SIZE).
 */
MH_API guint64 mh_store_message_get_rfc822_size (MhStoreMessage *msg);
/**
 * mh_store_message_get_internal_date:
 * @msg: a message
 *
 * Returns: seconds since the epoch (IMAP INTERNALDATE).
 */
MH_API gint64 mh_store_message_get_internal_date (MhStoreMessage *msg);
/**
 * mh_store_message_get_flags:
 * @msg: a message
 *
 * Returns: its flags.
 */
MH_API MhStoreFlags mh_store_message_get_flags (MhStoreMessage *msg);
/**
 * mh_store_message_get_modseq:
 * @msg: a message
 *
 * Returns: its MODSEQ.
 */
MH_API guint64 mh_store_message_get_modseq (MhStoreMessage *msg);
/**
 * mh_store_message_get_envelope:
 * @msg: a message
 *
 * Returns: (transfer none): the ENVELOPE in IMAP syntax (RFC 3501 7.4.2),
 *   valid as long as @msg.
 */
MH_API const char *mh_store_message_get_envelope (MhStoreMessage *msg);
/**
 * mh_store_message_get_bodystructure:
 * @msg: a message
 * @extended: %TRUE for BODYSTRUCTURE, %FALSE for BODY
 *
 * Returns: (transfer none): the structure in IMAP syntax.
 */
MH_API const char *mh_store_message_get_bodystructure (MhStoreMessage *msg,
                                                       gboolean extended);
/**
 * mh_store_message_get_header:
 * @msg: a message
 * @name: a header name, any case
 * @cached_out: (out) (optional): %TRUE if @name is one of the cached
 *   headers (so a %NULL return means "absent", not "not cached")
 *
 * Returns: (transfer none) (nullable): the raw header lines (name, colon,
 *   value, folding and CRLF kept; several if repeated), or %NULL.
 */
MH_API const char *mh_store_message_get_header (MhStoreMessage *msg,
                                                const char *name,
                                                gboolean *cached_out);
/**
 * mh_store_message_get_header_size:
 * @msg: a message
 *
 * Returns: bytes of the header block including the blank line.
 */
MH_API guint64 mh_store_message_get_header_size (MhStoreMessage *msg);

/**
 * mh_store_read:
 * @store: a store
 * @folder: (nullable): folder, %NULL for INBOX
 * @uid: the message's UID
 * @section: (nullable): %NULL or "" for the whole message, "HEADER" for
 *   the header block, "TEXT" for the body, or a part number "1.2" (its
 *   body, as IMAP BODY[1.2]), "1.2.MIME" for that part's headers
 * @offset: first byte of the section to return
 * @length: bytes to return at most, or -1 for all
 * @error: return location for a #GError, or %NULL
 *
 * Reads only the bytes asked for (positions come from the cache); the
 * bytes are as stored (the IMAP layer converts LF to CRLF).
 *
 * Returns: (transfer full) (nullable): the bytes, or %NULL with @error in
 *   %MH_STORE_ERROR (NOT_FOUND message or part, INVALID section, IO).
 */
MH_API GBytes *mh_store_read (MhStore *store, const char *folder,
                              guint32 uid, const char *section,
                              gint64 offset, gint64 length, GError **error);

/* ---- Change notification ---------------------------------------------- */

/**
 * MhStoreWatch:
 *
 * Wakes up when any process changes the account's index or when another
 * tool changes a watched folder's Maildir (for IMAP IDLE). Built on
 * inotify: a pollable file descriptor, no polling timers.
 *
 * Thread safety: one thread at a time.
 */
typedef struct _MhStoreWatch MhStoreWatch;
MH_API GType mh_store_watch_get_type (void) G_GNUC_CONST;
#define MH_TYPE_STORE_WATCH (mh_store_watch_get_type ())

/**
 * mh_store_watch_new:
 * @store: a store
 * @folder: (nullable): also watch this folder's new/ and cur/ for other
 *   tools, or %NULL for index changes only
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): a watch, or %NULL with @error.
 */
MH_API MhStoreWatch *mh_store_watch_new (MhStore *store, const char *folder,
                                         GError **error);
/**
 * mh_store_watch_free: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_store_watch_free (MhStoreWatch *watch);
/**
 * mh_store_watch_get_fd:
 * @watch: a watch
 *
 * Returns: a descriptor that becomes readable on a change; poll it from a
 *   main loop (g_unix_fd_add()) and call mh_store_watch_wait() with 0.
 */
MH_API int mh_store_watch_get_fd (MhStoreWatch *watch);
/**
 * mh_store_watch_wait:
 * @watch: a watch
 * @timeout_ms: milliseconds to wait, 0 to only check, -1 forever
 *
 * Returns: %TRUE if something changed since the last call (the events
 *   are consumed), %FALSE on timeout.
 */
MH_API gboolean mh_store_watch_wait (MhStoreWatch *watch, int timeout_ms);

/* ---- Index maintenance and retention ---------------------------------- */

/**
 * mh_store_rebuild:
 * @store: a store
 * @error: return location for a #GError, or %NULL
 *
 * Throws the index away and rebuilds it from the Maildir alone: UIDs and
 * UIDVALIDITY from the `dovecot-uidlist` files we keep current, flags from
 * the file names, keywords from `dovecot-keywords`, metadata by parsing
 * every message. MODSEQs restart above any earlier value.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR.
 */
MH_API gboolean mh_store_rebuild (MhStore *store, GError **error);

/**
 * MhStoreRetention:
 * @version: set to 1
 * @folder: UTF-8 folder name the rule applies to
 * @seen_max_age: seconds a \Seen message is kept, 0 for no limit
 * @unseen_max_age: seconds an unseen message is kept, 0 for no limit
 * @any_max_age: seconds any message is kept, 0 for no limit
 *
 * A retention rule; ages count from when the message arrived in the
 * folder.
 */
typedef struct
{
  guint version;
  const char *folder;
  gint64 seen_max_age;
  gint64 unseen_max_age;
  gint64 any_max_age;
} MhStoreRetention;

/**
 * mh_store_retention_parse:
 * @text: rules, e.g. "Junk:seen=7d,unseen=30d,any=60d;Trash:any=14d"
 * @n_out: (out): number of rules
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (array length=n_out) (nullable): the rules
 *   (free with g_free(); the folder strings live in the same block), or
 *   %NULL with @error in %MH_STORE_ERROR (INVALID, naming the bad part).
 */
MH_API MhStoreRetention *mh_store_retention_parse (const char *text,
                                                   guint *n_out,
                                                   GError **error);

/**
 * mh_store_apply_retention:
 * @store: a store
 * @rules: (array length=n_rules): rules
 * @n_rules: number of rules
 * @now: the current time in seconds (a parameter so tests control it)
 * @expunged_out: (out) (optional): number of messages expunged
 * @error: return location for a #GError, or %NULL
 *
 * Expunges messages older than the rules allow; folders that do not
 * exist are skipped. Called by the server on a timer and by
 * `mhctl expunge`.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_STORE_ERROR.
 */
MH_API gboolean mh_store_apply_retention (MhStore *store,
                                          const MhStoreRetention *rules,
                                          guint n_rules, gint64 now,
                                          guint *expunged_out,
                                          GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStore, mh_store_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStoreView, mh_store_view_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStoreMessage, mh_store_message_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStoreWatch, mh_store_watch_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStoreStatus, mh_store_status_free)

G_END_DECLS
