/* libmailhost: IMAP service internals shared by lib/server/imap*.c.
 *
 * Who does what:
 *   imap.c          the MhService: sessions, engine, auth, STARTTLS,
 *                   COMPRESS, the dispatch table, running handlers on the
 *                   worker pool, untagged updates (EXISTS, EXPUNGE or
 *                   VANISHED, FETCH FLAGS) and IDLE.
 *   imap-mailbox.c  SELECT/EXAMINE, LIST/LSUB, NAMESPACE, STATUS, CREATE,
 *                   DELETE, RENAME, (UN)SUBSCRIBE, ENABLE, ID.
 *   imap-message.c  FETCH, STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT,
 *                   APPEND.
 *   imap-account.c  QUOTA, METADATA, NOTIFY.
 *   imap-fetch.c    renders one message's FETCH response.
 *   imap-search.c   the SEARCH, SORT and THREAD command: evaluates
 *                   search programs, sorts and threads.
 *
 * Threading: a handler runs on a worker thread (store calls block on
 * disk), one command of a session at a time; the main loop does not
 * touch the session while a handler runs. A handler never touches the
 * engine: it appends response bytes (untagged lines, then the tagged
 * line with mh_imap__tagged()) to @out, and records state changes in the
 * session; imap.c hands @out to the engine on the main loop.
 *
 * Back-pressure: a handler whose response is long (FETCH 1:* of a large
 * mailbox) returns MH_IMAP_RUN_MORE once @out holds MH_IMAP_CHUNK bytes,
 * keeping its progress in session->cursor; imap.c calls it again, with
 * the same command, once the client has read the output. SEARCH, SORT
 * and THREAD return MH_IMAP_RUN_MORE every 5 ms of work, so one long
 * search does not hold a worker while other sessions wait. The tagged
 * line is written only in the last call.
 */
#pragma once

#include "mailhost/imap.h"
#include "mailhost/store.h"
#include "mailhost/quota.h"
#include "mailhost/directory.h"

G_BEGIN_DECLS

#define MH_IMAP_CHUNK (64 * 1024)

typedef enum
{
  MH_IMAP_RUN_DONE,
  MH_IMAP_RUN_MORE,
} MhImapRun;

/* Extensions the client turned on with ENABLE (or implied). */
typedef enum
{
  MH_IMAP_ENABLED_CONDSTORE = 1 << 0,
  MH_IMAP_ENABLED_QRESYNC = 1 << 1,
  MH_IMAP_ENABLED_UTF8 = 1 << 2,
  MH_IMAP_ENABLED_REV2 = 1 << 3,
  MH_IMAP_ENABLED_METADATA = 1 << 4,
} MhImapEnabled;

/* NOTIFY (RFC 5465), parsed by imap-message.c (mh_imap__cmd_notify) into
 * s->notify; imap.c's update loop acts on it:
 * - s->notify == NULL: no NOTIFY in force (the default, and after NOTIFY
 *   NONE): classic behaviour, updates only at command ends and in IDLE.
 * - a group with filter SELECTED or SELECTED-DELAYED: for the selected
 *   mailbox send, also between commands (not only in IDLE), EXISTS
 *   (+ FETCH of message_new_atts, simple item names such as "UID",
 *   "FLAGS", "ENVELOPE", for each new message) on MESSAGE_NEW, EXPUNGE/
 *   VANISHED on MESSAGE_EXPUNGE (SELECTED-DELAYED: only at command ends
 *   and IDLE, RFC 5465 5.2), FETCH FLAGS on FLAG_CHANGE. events == 0
 *   ("NONE") means: nothing about the selected mailbox.
 * - other groups (INBOXES = INBOX, PERSONAL = every folder, SUBSCRIBED,
 *   SUBTREE/MAILBOXES with store names in @mailboxes): for a change in a
 *   matching mailbox other than the selected one, send
 *   "* STATUS mbox (MESSAGES n UIDNEXT n UIDVALIDITY n UNSEEN n
 *   [HIGHESTMODSEQ n])" (RFC 5465 5.4), "* LIST" on MAILBOX_NAME,
 *   "* LIST ... (\Subscribed)" on SUBSCRIPTION_CHANGE, "* METADATA mbox
 *   entry" (names only, RFC 5464 4.4.2) on the METADATA ones.
 * - If it cannot keep up, imap.c sends "* OK [NOTIFICATIONOVERFLOW] ..."
 *   and sets s->notify to NULL (RFC 5465 5.8).
 * imap.c frees it with mh_imap__notify_free() when the session ends. */
typedef enum
{
  MH_IMAP_NOTIFY_MESSAGE_NEW = 1 << 0,
  MH_IMAP_NOTIFY_MESSAGE_EXPUNGE = 1 << 1,
  MH_IMAP_NOTIFY_FLAG_CHANGE = 1 << 2,
  MH_IMAP_NOTIFY_MAILBOX_NAME = 1 << 3,
  MH_IMAP_NOTIFY_SUBSCRIPTION_CHANGE = 1 << 4,
  MH_IMAP_NOTIFY_MAILBOX_METADATA_CHANGE = 1 << 5,
  MH_IMAP_NOTIFY_SERVER_METADATA_CHANGE = 1 << 6,
} MhImapNotifyEvents;

typedef enum
{
  MH_IMAP_NOTIFY_SELECTED,
  MH_IMAP_NOTIFY_SELECTED_DELAYED,
  MH_IMAP_NOTIFY_INBOXES,
  MH_IMAP_NOTIFY_PERSONAL,
  MH_IMAP_NOTIFY_SUBSCRIBED,
  MH_IMAP_NOTIFY_SUBTREE,
  MH_IMAP_NOTIFY_MAILBOXES,
} MhImapNotifyFilter;

typedef struct
{
  MhImapNotifyFilter filter;
  char **mailboxes;          /* SUBTREE/MAILBOXES: store names */
  MhImapNotifyEvents events; /* 0 = NONE */
  char **message_new_atts;   /* (nullable) MessageNew (fetch-att ...) */
} MhImapNotifyGroup;

typedef struct
{
  gboolean status;   /* NOTIFY SET STATUS was given */
  GPtrArray *groups; /* MhImapNotifyGroup */
} MhImapNotify;

void mh_imap__notify_free (MhImapNotify *n);

typedef struct _MhImapSession MhImapSession;

struct _MhImapSession
{
  /* Set by imap.c at login. */
  char *account;              /* "user@domain" */
  MhStore *store;             /* from mh_delivery_get_store() */
  MhDirectory *directory;
  MhQuota *quota;             /* (nullable) */
  char *data_dir;
  MhImapEnabled enabled;
  gboolean tls_active;
  guint64 append_limit;

  /* The selected mailbox (imap-mailbox.c sets, imap.c keeps current). */
  char *folder;               /* UTF-8 store name, NULL = none selected */
  gboolean read_only;         /* EXAMINE */
  MhStoreView *view;          /* what the client knows: sequence numbers
                               * are view index + 1 */
  guint64 known_modseq;       /* highest modseq the client was told */
  GArray *saved_uids;         /* guint32, SEARCHRES "$" */

  /* A resumable handler's progress (imap-message.c). */
  gpointer cursor;
  GDestroyNotify cursor_free;

  /* State change requested by a handler, applied by imap.c. */
  gboolean set_state;
  MhImapState new_state;
  gboolean logout;

  /* NOTIFY in force (imap-message.c sets, imap.c acts on and frees). */
  MhImapNotify *notify;

  /* Room for imap.c's own per-session data. */
  gpointer priv;
};

typedef MhImapRun (*MhImapHandler) (MhImapSession *s,
                                    const MhImapCommand *cmd, GString *out);

/* imap.c */
void mh_imap__tagged (GString *out, const MhImapCommand *cmd,
                      const char *status, const char *code,
                      const char *text);
gboolean mh_imap__utf8 (MhImapSession *s);
/* Folder names: wire (modified UTF-7, or UTF-8 once enabled) to store
 * UTF-8 and back; NULL with a message for the NO text on a bad name. */
char *mh_imap__folder_from_wire (MhImapSession *s, const char *wire,
                                 char **why_out);
void mh_imap__append_folder (MhImapSession *s, GString *out,
                             const char *folder);
/* Brings s->view up to date, writing EXISTS, EXPUNGE/VANISHED and FETCH
 * FLAGS lines for what changed (not during FETCH/STORE/SEARCH as RFC
 * 9051 7.5.1 forbids EXPUNGE there: @allow_expunge FALSE). */
gboolean mh_imap__sync_view (MhImapSession *s, GString *out,
                             gboolean allow_expunge, GError **error);
/* TRUE if the message at view index @index is \Recent for this session
 * (imap.c keeps that across resyncs; FETCH/STORE responses written by
 * imap-message.c ask here). */
gboolean mh_imap__is_recent (MhImapSession *s, guint index);
/* Frees what imap.c keeps in s->priv (the session's \Recent UIDs, which
 * outlive each store view); for hosts that build sessions by hand. */
void mh_imap__session_free_priv (MhImapSession *s);

/* imap-mailbox.c */
MhImapRun mh_imap__cmd_select (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
MhImapRun mh_imap__cmd_list (MhImapSession *s, const MhImapCommand *cmd,
                             GString *out);
MhImapRun mh_imap__cmd_namespace (MhImapSession *s,
                                  const MhImapCommand *cmd, GString *out);
MhImapRun mh_imap__cmd_status (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
MhImapRun mh_imap__cmd_create (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
MhImapRun mh_imap__cmd_delete (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
MhImapRun mh_imap__cmd_rename (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
MhImapRun mh_imap__cmd_subscribe (MhImapSession *s,
                                  const MhImapCommand *cmd, GString *out);
MhImapRun mh_imap__cmd_enable (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
MhImapRun mh_imap__cmd_id (MhImapSession *s, const MhImapCommand *cmd,
                           GString *out);

/* imap-message.c */
MhImapRun mh_imap__cmd_fetch (MhImapSession *s, const MhImapCommand *cmd,
                              GString *out);
MhImapRun mh_imap__cmd_store (MhImapSession *s, const MhImapCommand *cmd,
                              GString *out);
MhImapRun mh_imap__cmd_copy (MhImapSession *s, const MhImapCommand *cmd,
                             GString *out);  /* COPY and MOVE */
MhImapRun mh_imap__cmd_expunge (MhImapSession *s, const MhImapCommand *cmd,
                                GString *out);
MhImapRun mh_imap__cmd_close (MhImapSession *s, const MhImapCommand *cmd,
                              GString *out);  /* CLOSE and UNSELECT */
/* CLOSE/UNSELECT clear s->view, s->folder, s->saved_uids and
 * s->known_modseq themselves and set s->set_state (AUTHENTICATED); imap.c
 * drops its own per-mailbox state (watch) when it applies the state.
 * FETCH/STORE/EXPUNGE/MOVE/APPEND call mh_imap__sync_view() after they
 * changed the mailbox (FETCH and STORE drop sync's FETCH lines for the
 * messages their own response covers). FETCH lines written from the view
 * (FLAGS/UID/MODSEQ-only FETCH, STORE) put UID first, then the items in
 * the client's order, MODSEQ last when CONDSTORE added it. */
MhImapRun mh_imap__cmd_append (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
/* BAD "No mailbox selected" and FALSE unless a mailbox is selected. */
gboolean mh_imap__require_selected (MhImapSession *s,
                                    const MhImapCommand *cmd, GString *out);
/* The tagged line with a formatted text; NO for a store or quota error
 * with the RFC 5530 response code it maps to. */
void mh_imap__tagged_printf (GString *out, const MhImapCommand *cmd,
                             const char *status, const char *code,
                             const char *fmt, ...) G_GNUC_PRINTF (5, 6);
void mh_imap__tagged_store_error (GString *out, const MhImapCommand *cmd,
                                  const GError *error);

/* imap-account.c */
MhImapRun mh_imap__cmd_quota (MhImapSession *s, const MhImapCommand *cmd,
                              GString *out);  /* GET/SETQUOTA(ROOT) */
MhImapRun mh_imap__cmd_metadata (MhImapSession *s,
                                 const MhImapCommand *cmd, GString *out);
MhImapRun mh_imap__cmd_notify (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);
/* RENAME: METADATA of @from and its children moves to @to; DELETE (@to NULL): @from's is dropped. FALSE (logged) on I/O trouble. */
gboolean mh_imap__metadata_move (MhImapSession *s, const char *from, const char *to);
/* NOTIFY: entries ("MBOX\tentry", sorted) changed since *@snapshot (kept opaque; NULL first: only learns, returns NULL). */
GPtrArray *mh_imap__metadata_changes (MhImapSession *s, gpointer *snapshot);
void mh_imap__metadata_snapshot_free (gpointer snapshot);
/* CREATE (USE (...)): canonical "/private/specialuse" value, or NULL and *@why (RFC 6154 [USEATTR]). */
char *mh_imap__specialuse_parse (const char *const *uses, char **why);
gboolean mh_imap__specialuse_save (MhImapSession *s, const char *folder, const char *value, GError **error);
/* LIST: folder -> its stored "/private/specialuse" value (role folders: see mh_store_role_special_use()). */
GHashTable *mh_imap__specialuse_map (MhImapSession *s);

/* imap-search.c: the SEARCH, SORT and THREAD command. */
MhImapRun mh_imap__cmd_search (MhImapSession *s, const MhImapCommand *cmd,
                               GString *out);

/* imap-search.c's resumable runs (see "Resumable runs" there): the
 * command's job, also driven by the unit tests, which compare sliced
 * and unsliced answers. */
typedef struct _MhImapSearchJob MhImapSearchJob;
MhImapSearchJob *mh_imap__search_job_new (MhStore *store, const char *folder,
                                          MhStoreView *view,
                                          const MhImapSearchKey *key,
                                          const GArray *saved_uids,
                                          GError **error);
gboolean mh_imap__search_job_sort (MhImapSearchJob *j, const GArray *criteria,
                                   GError **error);
gboolean mh_imap__search_job_thread (MhImapSearchJob *j,
                                     MhImapThreadAlgorithm algo, gboolean uid,
                                     GError **error);
int mh_imap__search_job_step (MhImapSearchJob *j, guint max_msgs,
                              gint64 max_us, GError **error);
GArray *mh_imap__search_job_get_result (MhImapSearchJob *j);
const char *mh_imap__search_job_get_threads (MhImapSearchJob *j);
void mh_imap__search_job_free (MhImapSearchJob *j);
void mh_imap__search_set_slice (guint max_msgs, gint64 max_us);

/* imap-fetch.c: one message's "* SEQ FETCH (...)\r\n". */
typedef struct
{
  MhStore *store;
  const char *folder;
  MhStoreView *view;          /* flags, keywords, modseq come from here */
  const GPtrArray *atts;      /* MhImapFetchAtt */
  gboolean add_uid;           /* UID FETCH / QRESYNC: UID always sent */
  gboolean add_flags;         /* \Seen was just set: FLAGS always sent */
  gboolean add_modseq;        /* CONDSTORE on: MODSEQ always sent */
  gboolean utf8;
  gboolean rev2;              /* IMAP4rev2 session: no \Recent in FLAGS */
  MhStoreReader *reader;      /* (nullable) one index snapshot for a run
                               * of messages (one output chunk: never
                               * across a network wait); NULL: one
                               * mh_store_message_get() per message */
} MhImapFetchArgs;

/* TRUE if any attribute sets \Seen (BODY[..], BINARY[..], RFC822,
 * RFC822.TEXT without PEEK). */
gboolean mh_imap__fetch_sets_seen (const GPtrArray *atts);
/* Appends the view message @index's "* SEQ FETCH (...)\r\n" to @out.
 * On failure nothing is appended (@out is cut back) and @error is:
 *   G_IO_ERROR_NOT_FOUND     the message is gone (expunged or its file
 *                            removed by another process): skip it, or
 *                            answer NO if nothing else could be sent
 *                            (RFC 9051 7.5.1 allows either);
 *   G_IO_ERROR_INVALID_DATA  BINARY/BINARY.SIZE of a part whose
 *                            Content-Transfer-Encoding is unknown or
 *                            whose data does not decode: answer
 *                            "NO [UNKNOWN-CTE]" (RFC 3516 4.3);
 *   other (MH_STORE_ERROR)   I/O failure reading the message: NO. */
gboolean mh_imap__fetch_one (const MhImapFetchArgs *args, guint index,
                             GString *out, GError **error);

/* imap-search.c: matching view indices, ascending. */
GArray *mh_imap__search (MhStore *store, const char *folder,
                         MhStoreView *view, const MhImapSearchKey *key,
                         const GArray *saved_uids, GError **error);
/* Sorts @indices (view indices) in place by @criteria (RFC 5256). */
gboolean mh_imap__sort (MhStore *store, const char *folder,
                        MhStoreView *view, const GArray *criteria,
                        GArray *indices, GError **error);
/* Appends the THREAD response's thread list ("(1 2)(3 (4)(5))"), as
 * sequence numbers or UIDs. */
gboolean mh_imap__thread (MhStore *store, const char *folder,
                          MhStoreView *view, MhImapThreadAlgorithm algo,
                          const GArray *indices, gboolean uid,
                          GString *out, GError **error);
/* Appends "* SEARCH ..." / "* SORT ..." or "* ESEARCH (TAG ..) UID ..."
 * for @indices, with "(MODSEQ n)" when the program used MODSEQ. */
void mh_imap__search_format (GString *out, const MhImapCommand *cmd,
                             MhStoreView *view, const GArray *indices,
                             gboolean rev2);
/* RETURN (SAVE) of SEARCHRES (RFC 5182): replaces *@saved_uids (guint32,
 * ascending; s->saved_uids) with the UIDs of @indices, or only the MIN
 * and/or MAX one when @ret asks for no ALL or COUNT (RFC 5182 2.4). The
 * caller sets an empty array when the SEARCH fails. */
void mh_imap__search_save (GArray **saved_uids, MhStoreView *view,
                           const GArray *indices, MhImapSearchReturn ret);
/* TRUE if the program contains a MODSEQ key (CONDSTORE answers). */
gboolean mh_imap__search_uses_modseq (const MhImapSearchKey *key);
/* Internals of imap-search.c, exposed for the unit tests. Base subject
 * of RFC 5256 2.1 (decoded, case kept; *refwd_out: a reply or forward). */
char *mh_imap__base_subject (const char *raw, gboolean *refwd_out);
/* Unfolds and decodes RFC 2047 encoded words to UTF-8. */
char *mh_imap__decode_header (const char *raw);
/* i;unicode-casemap-like key: casefold + NFKD, UTF-8 made valid. */
char *mh_imap__fold (const char *s, gssize len);
/* An RFC 5322 Date: value: seconds UTC and the day it names in its own
 * zone (days since 1970-01-01); FALSE if it does not parse. */
gboolean mh_imap__parse_date (const char *value, gint64 *utc_out,
                              gint64 *day_out);
/* Day (days since 1970-01-01) of @t in the server's time zone. */
gint64 mh_imap__local_day (gint64 t);
/* SORT key of an address header: addr-mailbox, or with @display the
 * RFC 5957 display name (else addr-spec). */
char *mh_imap__address_sort_key (const char *raw, gboolean display);

G_END_DECLS
