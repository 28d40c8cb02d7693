/* libmailhost delivery: the pipeline every inbound message goes through,
 * one recipient at a time: resolve -> spam verdict -> Sieve -> quota ->
 * store, with a result (SMTP code, enhanced code, text) for each
 * recipient. SMTP, submission, LMTP and mh-deliver all end here. See
 * docs/delivery.md.
 *
 * Caveats (read first):
 * - The message is never held whole in memory: the protocol layer writes
 *   it into a spool file (#MhDeliverySpool, or any readable file) and the
 *   pipeline maps that file read-only, adding the per-recipient headers
 *   (Return-Path, Delivered-To) in front without copying the body.
 * - A recipient is acknowledged (2xx) only once its message is durable:
 *   the store returns after fsync of the file and of its directory, and
 *   after the index commit.
 * - The same message reaching the same mailbox through two addresses
 *   (two aliases, an alias and the account) is stored once; both
 *   recipients get the same result.
 * - The spam and Sieve stages exist and are called for every recipient,
 *   but today they always keep the message in the folder resolution
 *   chose (the spam and Sieve layers fill them in later issues).
 * - Forwarding to another server needs the outbound queue, which does not
 *   exist yet: a recipient whose resolution includes a forward gets a
 *   temporary failure (451 4.3.5) that says so, and nothing is stored
 *   for it.
 * - #MhDelivery is shared by every thread of a process: it keeps one open
 *   #MhStore per account (a store may be opened only once per process),
 *   and a pool of resolvers.
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/directory.h>
#include <mailhost/store.h>
#include <mailhost/quota.h>

G_BEGIN_DECLS

/**
 * MH_DELIVERY_ERROR:
 *
 * Error domain of the delivery pipeline. Codes are in #MhDeliveryError.
 */
#define MH_DELIVERY_ERROR (mh_delivery_error_quark ())
MH_API GQuark mh_delivery_error_quark (void);

/**
 * MhDeliveryError:
 * @MH_DELIVERY_ERROR_FAILED: any other failure
 * @MH_DELIVERY_ERROR_INVALID: a malformed argument: no recipients, a
 *   sender or recipient with control characters or too long
 * @MH_DELIVERY_ERROR_SPOOL: the spool file cannot be created, written or
 *   read (the message names the path and the reason)
 * @MH_DELIVERY_ERROR_TOO_BIG: the message is larger than the configured
 *   `[limits] max_message_size`
 * @MH_DELIVERY_ERROR_OPEN: the data directory, the directory database or
 *   the quota database cannot be opened
 *
 * Codes in %MH_DELIVERY_ERROR. Errors are for the message as a whole;
 * what happens to each recipient is an #MhDeliveryResult.
 */
typedef enum
{
  MH_DELIVERY_ERROR_FAILED,
  MH_DELIVERY_ERROR_INVALID,
  MH_DELIVERY_ERROR_SPOOL,
  MH_DELIVERY_ERROR_TOO_BIG,
  MH_DELIVERY_ERROR_OPEN,
} MhDeliveryError;

/* ---- The envelope ----------------------------------------------------- */

/**
 * MhDeliveryEnvelope:
 *
 * The SMTP envelope of one message: sender, recipients in order, DSN
 * parameters (RFC 3461: ENVID, RET, and NOTIFY/ORCPT per recipient, kept
 * for the outbound queue's future bounces) and who logged in. Reference
 * counted; build it on one thread, then it may be handed to another.
 */
typedef struct _MhDeliveryEnvelope MhDeliveryEnvelope;

MH_API GType mh_delivery_envelope_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DELIVERY_ENVELOPE (mh_delivery_envelope_get_type ())

/**
 * mh_delivery_envelope_new: (constructor)
 * @sender: (nullable): the envelope sender (MAIL FROM) without angle
 *   brackets; %NULL or "" for the null sender `<>`
 *
 * Returns: (transfer full): an envelope with no recipients.
 *
 * Thread safety: safe.
 */
MH_API MhDeliveryEnvelope *mh_delivery_envelope_new (const char *sender);

/**
 * mh_delivery_envelope_ref: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhDeliveryEnvelope *mh_delivery_envelope_ref (MhDeliveryEnvelope *env);
/**
 * mh_delivery_envelope_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_delivery_envelope_unref (MhDeliveryEnvelope *env);

/**
 * mh_delivery_envelope_add_recipient:
 * @env: an envelope
 * @address: the recipient (RCPT TO) without angle brackets
 * @notify: DSN NOTIFY flags as #MhSmtpDsnNotify values (0 when absent)
 * @orcpt: (nullable): ORCPT as sent ("rfc822;a@b.example"), or %NULL
 *
 * Appends a recipient; results come back in the same order.
 *
 * Thread safety: one thread at a time per envelope.
 */
MH_API void mh_delivery_envelope_add_recipient (MhDeliveryEnvelope *env,
                                                const char *address,
                                                guint notify,
                                                const char *orcpt);

/**
 * mh_delivery_envelope_set_dsn:
 * @env: an envelope
 * @envid: (nullable): ENVID as sent, or %NULL
 * @ret: RET as a #MhSmtpDsnRet value (0 when absent)
 *
 * Keeps the message-wide DSN parameters.
 *
 * Thread safety: one thread at a time per envelope.
 */
MH_API void mh_delivery_envelope_set_dsn (MhDeliveryEnvelope *env,
                                          const char *envid, guint ret);

/**
 * mh_delivery_envelope_set_authenticated:
 * @env: an envelope
 * @login: (nullable): the account that logged in (SMTP AUTH), or %NULL
 *
 * Group addresses accept mail from their members only: resolution uses
 * @login instead of the envelope sender when it is set.
 *
 * Thread safety: one thread at a time per envelope.
 */
MH_API void mh_delivery_envelope_set_authenticated (MhDeliveryEnvelope *env,
                                                    const char *login);

/**
 * mh_delivery_envelope_get_sender:
 * @env: an envelope
 *
 * Returns: (transfer none): the sender, "" for `<>`.
 */
MH_API const char *mh_delivery_envelope_get_sender (MhDeliveryEnvelope *env);

/**
 * mh_delivery_envelope_get_n_recipients:
 * @env: an envelope
 *
 * Returns: the number of recipients.
 */
MH_API guint mh_delivery_envelope_get_n_recipients (MhDeliveryEnvelope *env);

/**
 * mh_delivery_envelope_get_recipient:
 * @env: an envelope
 * @index: 0 .. n_recipients-1
 *
 * Returns: (transfer none): the recipient address at @index.
 */
MH_API const char *mh_delivery_envelope_get_recipient (MhDeliveryEnvelope *env,
                                                       guint index);

/* ---- Results ---------------------------------------------------------- */

/**
 * MhDeliveryResult:
 *
 * What happened to one recipient: an SMTP reply (code, RFC 3463 enhanced
 * code, text) to give the client as is. Immutable, reference counted.
 */
typedef struct _MhDeliveryResult MhDeliveryResult;

MH_API GType mh_delivery_result_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DELIVERY_RESULT (mh_delivery_result_get_type ())

/**
 * mh_delivery_result_ref: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhDeliveryResult *mh_delivery_result_ref (MhDeliveryResult *result);
/**
 * mh_delivery_result_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_delivery_result_unref (MhDeliveryResult *result);

/**
 * mh_delivery_result_get_address:
 * @result: a result
 *
 * Returns: (transfer none): the recipient as given in the envelope.
 */
MH_API const char *mh_delivery_result_get_address (MhDeliveryResult *result);
/**
 * mh_delivery_result_get_code:
 * @result: a result
 *
 * Returns: the SMTP reply code: 250 delivered; 4xx try again later
 *   (451 local trouble, 452 mailbox full); 5xx never (550 unknown user,
 *   552 mailbox full for good, 554 ...).
 */
MH_API guint mh_delivery_result_get_code (MhDeliveryResult *result);
/**
 * mh_delivery_result_get_enhanced:
 * @result: a result
 *
 * Returns: (transfer none): the enhanced status code, e.g. "2.0.0",
 *   "5.1.1", "4.2.2".
 */
MH_API const char *mh_delivery_result_get_enhanced (MhDeliveryResult *result);
/**
 * mh_delivery_result_get_text:
 * @result: a result
 *
 * Returns: (transfer none): the reply text, safe to send to the client.
 */
MH_API const char *mh_delivery_result_get_text (MhDeliveryResult *result);
/**
 * mh_delivery_result_is_success:
 * @result: a result
 *
 * Returns: %TRUE for a 2xx code: the message is durable in every mailbox
 *   of this recipient.
 */
MH_API gboolean mh_delivery_result_is_success (MhDeliveryResult *result);
/**
 * mh_delivery_result_is_temporary:
 * @result: a result
 *
 * Returns: %TRUE for a 4xx code (the sender should retry).
 */
MH_API gboolean mh_delivery_result_is_temporary (MhDeliveryResult *result);
/**
 * mh_delivery_result_get_mailboxes:
 * @result: a result
 *
 * Returns: (transfer none) (array zero-terminated=1): the accounts
 *   ("local@domain", A-label form) the message was stored for (empty
 *   unless successful).
 */
MH_API const char *const *mh_delivery_result_get_mailboxes (
    MhDeliveryResult *result);
/**
 * mh_delivery_result_get_uids:
 * @result: a result
 * @n_out: (out): number of UIDs (as many as mailboxes)
 *
 * Returns: (transfer none) (array length=n_out): the UID the message got
 *   in each mailbox of mh_delivery_result_get_mailboxes(), same order.
 */
MH_API const guint32 *mh_delivery_result_get_uids (MhDeliveryResult *result,
                                                   guint *n_out);
/**
 * mh_delivery_result_get_folders:
 * @result: a result
 *
 * Returns: (transfer none) (array zero-terminated=1): the folder the
 *   message went to in each mailbox ("INBOX", or e.g. "Lists"), same
 *   order as the mailboxes.
 */
MH_API const char *const *mh_delivery_result_get_folders (
    MhDeliveryResult *result);

/* ---- The spool -------------------------------------------------------- */

/**
 * MhDeliverySpool:
 *
 * A message on its way in, written to an anonymous file in DATA/spool
 * (O_TMPFILE: nothing is left behind after a crash). Writes are
 * buffered; CRLF line ends become LF (the Maildir convention, as Dovecot
 * and Postfix store); a first line "From sender date" (an mbox envelope,
 * as fetchmail or procmail may pass) is dropped. The spool is not
 * fsynced: it only needs to live until the store has its own durable
 * copy.
 *
 * Reference counted (so a worker thread can hold it while it delivers).
 *
 * Thread safety: one thread at a time.
 */
typedef struct _MhDeliverySpool MhDeliverySpool;

MH_API GType mh_delivery_spool_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DELIVERY_SPOOL (mh_delivery_spool_get_type ())

/* ---- The pipeline ----------------------------------------------------- */

/**
 * MhDelivery:
 *
 * The delivery pipeline over one data directory. Reference counted.
 *
 * Thread safety: every function may be called from any thread, at the
 * same time; deliveries to different accounts run in parallel, and
 * deliveries to one account share its store's group commit.
 */
typedef struct _MhDelivery MhDelivery;

MH_API GType mh_delivery_get_type (void) G_GNUC_CONST;
#define MH_TYPE_DELIVERY (mh_delivery_get_type ())

/**
 * mh_delivery_new: (constructor)
 * @config: the configuration: `[general] data_dir`, `[general] hostname`,
 *   `[limits] max_message_size`, `[quota]` (a reference is taken)
 * @error: return location for a #GError, or %NULL
 *
 * Opens DATA (created if missing), its directory, DATA/spool and the
 * quota layer. Accounts' stores are opened on first delivery and kept
 * open.
 *
 * Returns: (transfer full) (nullable): the pipeline, or %NULL with
 *   @error in %MH_DELIVERY_ERROR (OPEN, naming the path and the cause).
 *
 * Thread safety: safe.
 */
MH_API MhDelivery *mh_delivery_new (MhConfig *config, GError **error);

/**
 * mh_delivery_ref: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhDelivery *mh_delivery_ref (MhDelivery *d);
/**
 * mh_delivery_unref: (skip)
 *
 * NULL-safe; the last reference closes the stores it opened.
 */
MH_API void mh_delivery_unref (MhDelivery *d);

/**
 * mh_delivery_get_config:
 * @d: a pipeline
 *
 * Returns: (transfer none): the configuration it was made with.
 */
MH_API MhConfig *mh_delivery_get_config (MhDelivery *d);

/**
 * mh_delivery_get_directory:
 * @d: a pipeline
 *
 * Returns: (transfer none): the directory it resolves against.
 */
MH_API MhDirectory *mh_delivery_get_directory (MhDelivery *d);

/**
 * mh_delivery_get_quota:
 * @d: a pipeline
 *
 * The quota layer the pipeline attached to the stores it opened
 * (mh_delivery_get_store()); IMAP reads usage and limits through it.
 *
 * Returns: (transfer none): the quota layer.
 */
MH_API MhQuota *mh_delivery_get_quota (MhDelivery *d);

/**
 * mh_delivery_get_store:
 * @d: a pipeline
 * @account: an account, "local@domain" (either domain form)
 * @error: return location for a #GError, or %NULL
 *
 * The store the pipeline delivers into for @account, opened (and its
 * Maildir created) if needed. Other layers of the same process (IMAP,
 * POP3) must use this one: a store can be opened once per process.
 *
 * Returns: (transfer full) (nullable): the store, or %NULL with @error
 *   in %MH_STORE_ERROR or %MH_DELIVERY_ERROR (INVALID address).
 *
 * Thread safety: safe.
 */
MH_API MhStore *mh_delivery_get_store (MhDelivery *d, const char *account,
                                       GError **error);

/**
 * mh_delivery_check_rcpt:
 * @d: a pipeline
 * @rcpt: the recipient (RCPT TO) without angle brackets
 * @sender: (nullable): the envelope sender, or the login when
 *   @authenticated (group addresses look at it)
 * @authenticated: @sender logged in (SMTP AUTH)
 * @size: the announced message size (MAIL FROM SIZE=), 0 if unknown
 * @code_out: (out): the reply code: 250, or 550 (5.1.1 unknown user),
 *   550 5.7.1 (group address from an outsider), 452 4.2.2 / 552 5.2.2
 *   (mailbox full), 451 4.3.5 (forward without an outbound queue),
 *   451 4.3.0 (local trouble), 501 5.1.3 (bad address), ...
 * @enhanced_out: (out) (transfer full): the enhanced status code
 * @text_out: (out) (transfer full): the reply text
 *
 * The RCPT-time half of the pipeline: resolves @rcpt and checks each
 * mailbox's quota (with @size, or one byte if unknown), without storing
 * anything. May open an account's store on first use (disk work: call it
 * from a worker thread in a server).
 *
 * Returns: %TRUE when the recipient is accepted (@code_out is 2xx).
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_delivery_check_rcpt (MhDelivery *d, const char *rcpt,
                                        const char *sender,
                                        gboolean authenticated, guint64 size,
                                        guint *code_out, char **enhanced_out,
                                        char **text_out);

/**
 * mh_delivery_deliver_fd:
 * @d: a pipeline
 * @env: the envelope (at least one recipient)
 * @fd: a readable, seekable file holding the message (LF or CRLF line
 *   ends); it is mapped, not read into memory, and must not change while
 *   the call runs; it stays open (the caller owns it)
 * @error: return location for a #GError, or %NULL
 *
 * Runs every recipient through resolve, spam verdict, Sieve, quota and
 * store, adding "Return-Path: <sender>" and "Delivered-To: account" in
 * front of the message, and returns only when each successful copy is
 * durable. Blocks on disk: call it from a worker thread.
 *
 * Returns: (transfer full) (element-type MhDeliveryResult) (nullable):
 *   one result per recipient, in envelope order; or %NULL with @error in
 *   %MH_DELIVERY_ERROR when the message as a whole cannot be handled
 *   (INVALID: no recipients; SPOOL: @fd cannot be read or mapped;
 *   TOO_BIG): then nothing was stored and every recipient should get a
 *   temporary failure (SPOOL) or a permanent one (INVALID, TOO_BIG).
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_delivery_deliver_fd (MhDelivery *d,
                                          MhDeliveryEnvelope *env, int fd,
                                          GError **error);

/**
 * mh_delivery_deliver_file:
 * @d: a pipeline
 * @env: the envelope
 * @path: (type filename): a file holding the message
 * @error: return location for a #GError, or %NULL
 *
 * mh_delivery_deliver_fd() on @path (opened read-only).
 *
 * Returns: (transfer full) (element-type MhDeliveryResult) (nullable): as
 *   mh_delivery_deliver_fd().
 *
 * Thread safety: safe.
 */
MH_API GPtrArray *mh_delivery_deliver_file (MhDelivery *d,
                                            MhDeliveryEnvelope *env,
                                            const char *path,
                                            GError **error);

/**
 * mh_delivery_deliver_spool:
 * @d: a pipeline
 * @env: the envelope
 * @spool: a finished spool (mh_delivery_spool_finish())
 * @error: return location for a #GError, or %NULL
 *
 * mh_delivery_deliver_fd() on the spool's file.
 *
 * Returns: (transfer full) (element-type MhDeliveryResult) (nullable): as
 *   mh_delivery_deliver_fd().
 *
 * Thread safety: safe for different spools.
 */
MH_API GPtrArray *mh_delivery_deliver_spool (MhDelivery *d,
                                             MhDeliveryEnvelope *env,
                                             MhDeliverySpool *spool,
                                             GError **error);

/* ---- Spool functions -------------------------------------------------- */

/**
 * mh_delivery_spool_new:
 * @d: a pipeline
 * @error: return location for a #GError, or %NULL
 *
 * Starts a spool file in DATA/spool.
 *
 * Returns: (transfer full) (nullable): the spool, or %NULL with @error in
 *   %MH_DELIVERY_ERROR (SPOOL).
 *
 * Thread safety: safe.
 */
MH_API MhDeliverySpool *mh_delivery_spool_new (MhDelivery *d,
                                               GError **error);

/**
 * mh_delivery_spool_write:
 * @spool: a spool not yet finished
 * @data: (array length=len) (element-type guint8): message bytes
 * @len: their number
 * @error: return location for a #GError, or %NULL
 *
 * Appends bytes (CRLF becomes LF, also across calls). Fails once the
 * message passes `[limits] max_message_size`.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_DELIVERY_ERROR (SPOOL:
 *   disk full or I/O error; TOO_BIG). After a failure the spool only
 *   takes mh_delivery_spool_unref().
 */
MH_API gboolean mh_delivery_spool_write (MhDeliverySpool *spool,
                                         const guint8 *data, gsize len,
                                         GError **error);

/**
 * mh_delivery_spool_write_fd:
 * @spool: a spool not yet finished
 * @fd: a file descriptor to read to its end (a pipe: mh-deliver's stdin)
 * @error: return location for a #GError, or %NULL
 *
 * mh_delivery_spool_write() of everything @fd gives, in 64 KiB reads.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_DELIVERY_ERROR (SPOOL,
 *   naming the read or write failure; TOO_BIG).
 */
MH_API gboolean mh_delivery_spool_write_fd (MhDeliverySpool *spool, int fd,
                                            GError **error);

/**
 * mh_delivery_spool_finish:
 * @spool: a spool
 * @error: return location for a #GError, or %NULL
 *
 * Flushes the buffer; after it the spool can be delivered.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_DELIVERY_ERROR (SPOOL).
 */
MH_API gboolean mh_delivery_spool_finish (MhDeliverySpool *spool,
                                          GError **error);

/**
 * mh_delivery_spool_get_size:
 * @spool: a spool
 *
 * Returns: bytes written to the file so far (after CRLF -> LF).
 */
MH_API guint64 mh_delivery_spool_get_size (MhDeliverySpool *spool);

/**
 * mh_delivery_spool_get_fd:
 * @spool: a spool
 *
 * Returns: the spool's file descriptor (owned by the spool).
 */
MH_API int mh_delivery_spool_get_fd (MhDeliverySpool *spool);

/**
 * mh_delivery_spool_ref: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhDeliverySpool *mh_delivery_spool_ref (MhDeliverySpool *spool);

/**
 * mh_delivery_spool_unref: (skip)
 * @spool: (nullable): a spool
 *
 * Drops a reference; the last one closes the file, which disappears (it
 * never had a name, or had it removed at once). NULL-safe.
 */
MH_API void mh_delivery_spool_unref (MhDeliverySpool *spool);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDelivery, mh_delivery_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDeliveryEnvelope, mh_delivery_envelope_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDeliveryResult, mh_delivery_result_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhDeliverySpool, mh_delivery_spool_unref)

G_END_DECLS
