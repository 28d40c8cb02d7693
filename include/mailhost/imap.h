/* libmailhost: the IMAP engine (sans-I/O).
 *
 * IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051). The engine turns bytes
 * from a client into typed commands (MhImapCommand) and collects the
 * bytes the host wants to send. It owns framing (lines, literals,
 * LITERAL+/LITERAL-, literal8), argument syntax of every command, the
 * protocol state (which commands are allowed when), IDLE and
 * AUTHENTICATE continuation lines, COMPRESS=DEFLATE, and limits (line,
 * literal and pending-command bounds). It does no I/O and never touches
 * the store: executing a command is the host's job (lib/server/imap*.c
 * for mh-imapd and mailhostd; a Python asyncio server could do the same).
 *
 * Strings handed out are raw protocol strings (astring contents with
 * quoting and literals removed). Mailbox names are passed as the client
 * sent them: modified UTF-7 unless UTF8=ACCEPT is enabled; the host
 * converts.
 */
#pragma once

#include <glib-object.h>
#include <mailhost/core.h>

G_BEGIN_DECLS

/**
 * MH_IMAP_ERROR:
 *
 * Error domain of the IMAP engine.
 */
#define MH_IMAP_ERROR (mh_imap_error_quark ())
MH_API GQuark mh_imap_error_quark (void);

/**
 * MhImapError:
 * @MH_IMAP_ERROR_SYNTAX: the command's arguments do not parse
 * @MH_IMAP_ERROR_LIMIT: a line, literal or count limit was exceeded
 * @MH_IMAP_ERROR_STATE: the command is not allowed in this state
 *
 * Error codes in %MH_IMAP_ERROR.
 */
typedef enum
{
  MH_IMAP_ERROR_SYNTAX,
  MH_IMAP_ERROR_LIMIT,
  MH_IMAP_ERROR_STATE,
} MhImapError;

/**
 * MhImapState:
 * @MH_IMAP_STATE_NOT_AUTHENTICATED: before LOGIN/AUTHENTICATE
 * @MH_IMAP_STATE_AUTHENTICATED: logged in, no mailbox selected
 * @MH_IMAP_STATE_SELECTED: a mailbox is selected (or examined)
 * @MH_IMAP_STATE_LOGOUT: LOGOUT seen or the engine is shutting down
 *
 * RFC 3501 section 3. The host moves the engine between states with
 * mh_imap_engine_set_state() once a command succeeded.
 */
typedef enum
{
  MH_IMAP_STATE_NOT_AUTHENTICATED,
  MH_IMAP_STATE_AUTHENTICATED,
  MH_IMAP_STATE_SELECTED,
  MH_IMAP_STATE_LOGOUT,
} MhImapState;

/**
 * MhImapCommandKind:
 *
 * The command a #MhImapCommand carries. UID FETCH/STORE/COPY/MOVE/
 * SEARCH/SORT/THREAD/EXPUNGE are the plain kinds with @uid set.
 * %MH_IMAP_CMD_DONE ends an IDLE; %MH_IMAP_CMD_AUTH_RESPONSE is a
 * client line inside an AUTHENTICATE exchange. Both carry the tag of the
 * command they belong to, and its name ("IDLE", "AUTHENTICATE").
 */
typedef enum
{
  MH_IMAP_CMD_CAPABILITY,
  MH_IMAP_CMD_NOOP,
  MH_IMAP_CMD_LOGOUT,
  MH_IMAP_CMD_STARTTLS,
  MH_IMAP_CMD_AUTHENTICATE,
  MH_IMAP_CMD_AUTH_RESPONSE,
  MH_IMAP_CMD_LOGIN,
  MH_IMAP_CMD_ENABLE,
  MH_IMAP_CMD_ID,
  MH_IMAP_CMD_SELECT,
  MH_IMAP_CMD_EXAMINE,
  MH_IMAP_CMD_CREATE,
  MH_IMAP_CMD_DELETE,
  MH_IMAP_CMD_RENAME,
  MH_IMAP_CMD_SUBSCRIBE,
  MH_IMAP_CMD_UNSUBSCRIBE,
  MH_IMAP_CMD_LIST,
  MH_IMAP_CMD_LSUB,
  MH_IMAP_CMD_NAMESPACE,
  MH_IMAP_CMD_STATUS,
  MH_IMAP_CMD_APPEND,
  MH_IMAP_CMD_IDLE,
  MH_IMAP_CMD_DONE,
  MH_IMAP_CMD_CHECK,
  MH_IMAP_CMD_CLOSE,
  MH_IMAP_CMD_UNSELECT,
  MH_IMAP_CMD_EXPUNGE,
  MH_IMAP_CMD_SEARCH,
  MH_IMAP_CMD_FETCH,
  MH_IMAP_CMD_STORE,
  MH_IMAP_CMD_COPY,
  MH_IMAP_CMD_MOVE,
  MH_IMAP_CMD_SORT,
  MH_IMAP_CMD_THREAD,
  MH_IMAP_CMD_GETQUOTA,
  MH_IMAP_CMD_GETQUOTAROOT,
  MH_IMAP_CMD_SETQUOTA,
  MH_IMAP_CMD_GETMETADATA,
  MH_IMAP_CMD_SETMETADATA,
  MH_IMAP_CMD_NOTIFY,
  MH_IMAP_CMD_COMPRESS,
} MhImapCommandKind;

/* ---- Sequence sets ----------------------------------------------------- */

/**
 * MH_IMAP_STAR:
 *
 * The value of "*" in a sequence set: the largest number in use. Hosts
 * substitute the mailbox's highest sequence number or UID.
 */
#define MH_IMAP_STAR G_MAXUINT32

/**
 * MhImapRange:
 * @first: first number, 1 or more, or %MH_IMAP_STAR
 * @last: last number; @first and @last are as the client wrote them
 *   (RFC 9051 allows "4:2", which means 2:4: hosts order them)
 *
 * One element of a sequence set.
 */
typedef struct
{
  guint32 first;
  guint32 last;
} MhImapRange;

/**
 * MhImapSeqSet:
 * @ranges: (element-type MhImapRange): the ranges as written
 * @saved: %TRUE for "$" (SEARCHRES: the saved search result); then
 *   @ranges is empty
 *
 * A sequence set (sequence numbers or UIDs, by the command's @uid).
 */
typedef struct
{
  GArray *ranges;
  gboolean saved;
} MhImapSeqSet;

/* ---- FETCH ------------------------------------------------------------- */

/**
 * MhImapFetchItem:
 *
 * One FETCH data item. ALL, FAST and FULL are expanded by the parser.
 * %MH_IMAP_FETCH_BODY is the non-extensible BODY (no section);
 * %MH_IMAP_FETCH_BODY_SECTION is BODY[...] and BODY.PEEK[...];
 * RFC822, RFC822.HEADER and RFC822.TEXT keep their own kinds because
 * their response names differ.
 */
typedef enum
{
  MH_IMAP_FETCH_FLAGS,
  MH_IMAP_FETCH_UID,
  MH_IMAP_FETCH_INTERNALDATE,
  MH_IMAP_FETCH_RFC822_SIZE,
  MH_IMAP_FETCH_ENVELOPE,
  MH_IMAP_FETCH_BODY,
  MH_IMAP_FETCH_BODYSTRUCTURE,
  MH_IMAP_FETCH_RFC822,
  MH_IMAP_FETCH_RFC822_HEADER,
  MH_IMAP_FETCH_RFC822_TEXT,
  MH_IMAP_FETCH_BODY_SECTION,
  MH_IMAP_FETCH_BINARY,
  MH_IMAP_FETCH_BINARY_SIZE,
  MH_IMAP_FETCH_MODSEQ,
  MH_IMAP_FETCH_SAVEDATE,
} MhImapFetchItem;

/**
 * MhImapSectionText:
 * @MH_IMAP_SECTION_ALL: no text part: the whole message or part ("[]",
 *   "[1.2]")
 * @MH_IMAP_SECTION_HEADER: HEADER
 * @MH_IMAP_SECTION_HEADER_FIELDS: HEADER.FIELDS (list)
 * @MH_IMAP_SECTION_HEADER_FIELDS_NOT: HEADER.FIELDS.NOT (list)
 * @MH_IMAP_SECTION_TEXT: TEXT
 * @MH_IMAP_SECTION_MIME: MIME (only after a part number)
 *
 * The section-text of a BODY[...] item.
 */
typedef enum
{
  MH_IMAP_SECTION_ALL,
  MH_IMAP_SECTION_HEADER,
  MH_IMAP_SECTION_HEADER_FIELDS,
  MH_IMAP_SECTION_HEADER_FIELDS_NOT,
  MH_IMAP_SECTION_TEXT,
  MH_IMAP_SECTION_MIME,
} MhImapSectionText;

/**
 * MhImapFetchAtt:
 * @item: what is asked for
 * @peek: BODY.PEEK / BINARY.PEEK: do not set \Seen
 * @part: (array length=n_part): part numbers ("1.2" is {1, 2}), for
 *   BODY_SECTION, BINARY and BINARY_SIZE
 * @n_part: number of part numbers, 0 for the whole message
 * @text: the section-text (BODY_SECTION only)
 * @fields: (array zero-terminated=1) (nullable): header field names, as
 *   written, for HEADER.FIELDS and HEADER.FIELDS.NOT
 * @partial: a "<offset.length>" was given
 * @offset: start of the partial range
 * @length: length of the partial range
 * @section_spec: the text between "[" and "]" as the client wrote it
 *   (upper-cased keywords), for echoing in the response ("1.HEADER")
 *
 * One parsed FETCH attribute.
 */
typedef struct
{
  MhImapFetchItem item;
  gboolean peek;
  guint32 *part;
  guint n_part;
  MhImapSectionText text;
  char **fields;
  gboolean partial;
  guint64 offset;
  guint64 length;
  char *section_spec;
} MhImapFetchAtt;

/* ---- SEARCH ------------------------------------------------------------ */

/**
 * MhImapSearchKeyType:
 *
 * One search key of RFC 9051 section 6.4.4 (plus MODSEQ of RFC 7162,
 * OLDER/YOUNGER of RFC 5032, SAVEDBEFORE/SAVEDON/SAVEDSINCE/
 * SAVEDATESUPPORTED of RFC 8514). NEW, OLD, RECENT and their kin keep
 * their own kinds. %MH_IMAP_SEARCH_AND is a parenthesised list (and the
 * root); %MH_IMAP_SEARCH_SEQSET is a bare sequence set; %MH_IMAP_SEARCH_UID
 * a UID set.
 */
typedef enum
{
  MH_IMAP_SEARCH_AND,
  MH_IMAP_SEARCH_OR,
  MH_IMAP_SEARCH_NOT,
  MH_IMAP_SEARCH_ALL,
  MH_IMAP_SEARCH_SEQSET,
  MH_IMAP_SEARCH_UID,
  MH_IMAP_SEARCH_ANSWERED,
  MH_IMAP_SEARCH_DELETED,
  MH_IMAP_SEARCH_DRAFT,
  MH_IMAP_SEARCH_FLAGGED,
  MH_IMAP_SEARCH_SEEN,
  MH_IMAP_SEARCH_RECENT,
  MH_IMAP_SEARCH_NEW,
  MH_IMAP_SEARCH_OLD,
  MH_IMAP_SEARCH_UNANSWERED,
  MH_IMAP_SEARCH_UNDELETED,
  MH_IMAP_SEARCH_UNDRAFT,
  MH_IMAP_SEARCH_UNFLAGGED,
  MH_IMAP_SEARCH_UNSEEN,
  MH_IMAP_SEARCH_KEYWORD,
  MH_IMAP_SEARCH_UNKEYWORD,
  MH_IMAP_SEARCH_BCC,
  MH_IMAP_SEARCH_CC,
  MH_IMAP_SEARCH_FROM,
  MH_IMAP_SEARCH_TO,
  MH_IMAP_SEARCH_SUBJECT,
  MH_IMAP_SEARCH_HEADER,
  MH_IMAP_SEARCH_BODY,
  MH_IMAP_SEARCH_TEXT,
  MH_IMAP_SEARCH_BEFORE,
  MH_IMAP_SEARCH_ON,
  MH_IMAP_SEARCH_SINCE,
  MH_IMAP_SEARCH_SENTBEFORE,
  MH_IMAP_SEARCH_SENTON,
  MH_IMAP_SEARCH_SENTSINCE,
  MH_IMAP_SEARCH_LARGER,
  MH_IMAP_SEARCH_SMALLER,
  MH_IMAP_SEARCH_MODSEQ,
  MH_IMAP_SEARCH_OLDER,
  MH_IMAP_SEARCH_YOUNGER,
  MH_IMAP_SEARCH_SAVEDBEFORE,
  MH_IMAP_SEARCH_SAVEDON,
  MH_IMAP_SEARCH_SAVEDSINCE,
  MH_IMAP_SEARCH_SAVEDATESUPPORTED,
} MhImapSearchKeyType;

typedef struct _MhImapSearchKey MhImapSearchKey;

/**
 * MhImapSearchKey:
 * @type: the key
 * @children: (element-type MhImapSearchKey): operands of AND (any
 *   number), OR (two) and NOT (one); %NULL otherwise
 * @header: field name for HEADER; for MODSEQ the entry name
 *   ("/flags/\\seen") when one was given, else %NULL
 * @string: the string of FROM/TO/CC/BCC/SUBJECT/HEADER/BODY/TEXT, in
 *   UTF-8 (the parser converts from the given charset; US-ASCII and
 *   UTF-8 are accepted, others give BADCHARSET), and the keyword of
 *   KEYWORD/UNKEYWORD; for MODSEQ the entry type ("priv", "shared" or
 *   "all", lower-cased) when an entry name was given
 * @date: for date keys: the day as days since 1970-01-01 (the parser
 *   checks "d-Mon-yyyy"); hosts compare dates in the message's or the
 *   server's time zone as RFC 9051 6.4.4 says
 * @number: size for LARGER/SMALLER, modseq for MODSEQ, seconds for
 *   OLDER/YOUNGER
 * @set: (nullable): the set of SEQSET and UID
 *
 * A node of a search program.
 */
struct _MhImapSearchKey
{
  MhImapSearchKeyType type;
  GPtrArray *children;
  char *header;
  char *string;
  gint64 date;
  guint64 number;
  MhImapSeqSet *set;
};

/**
 * MhImapSearchReturn:
 * @MH_IMAP_RETURN_MIN: RETURN (MIN)
 * @MH_IMAP_RETURN_MAX: RETURN (MAX)
 * @MH_IMAP_RETURN_ALL: RETURN (ALL) or RETURN ()
 * @MH_IMAP_RETURN_COUNT: RETURN (COUNT)
 * @MH_IMAP_RETURN_SAVE: RETURN (SAVE), SEARCHRES
 *
 * ESEARCH return options (RFC 4731, RFC 5182). A search with any of
 * them (or in IMAP4rev2) answers with ESEARCH instead of SEARCH.
 */
typedef enum /*< flags >*/
{
  MH_IMAP_RETURN_MIN = 1 << 0,
  MH_IMAP_RETURN_MAX = 1 << 1,
  MH_IMAP_RETURN_ALL = 1 << 2,
  MH_IMAP_RETURN_COUNT = 1 << 3,
  MH_IMAP_RETURN_SAVE = 1 << 4,
} MhImapSearchReturn;

/**
 * MhImapSortKey:
 *
 * SORT criteria (RFC 5256, DISPLAYFROM/DISPLAYTO of RFC 5957).
 */
typedef enum
{
  MH_IMAP_SORT_ARRIVAL,
  MH_IMAP_SORT_CC,
  MH_IMAP_SORT_DATE,
  MH_IMAP_SORT_FROM,
  MH_IMAP_SORT_SIZE,
  MH_IMAP_SORT_SUBJECT,
  MH_IMAP_SORT_TO,
  MH_IMAP_SORT_DISPLAYFROM,
  MH_IMAP_SORT_DISPLAYTO,
} MhImapSortKey;

/**
 * MhImapSortCriterion:
 * @key: what to sort by
 * @reverse: REVERSE was given
 *
 * One SORT criterion.
 */
typedef struct
{
  MhImapSortKey key;
  gboolean reverse;
} MhImapSortCriterion;

/**
 * MhImapThreadAlgorithm:
 * @MH_IMAP_THREAD_ORDEREDSUBJECT: ORDEREDSUBJECT
 * @MH_IMAP_THREAD_REFERENCES: REFERENCES
 *
 * THREAD algorithms (RFC 5256).
 */
typedef enum
{
  MH_IMAP_THREAD_ORDEREDSUBJECT,
  MH_IMAP_THREAD_REFERENCES,
} MhImapThreadAlgorithm;

/* ---- STORE, LIST, STATUS, APPEND --------------------------------------- */

/**
 * MhImapStoreMode:
 * @MH_IMAP_STORE_REPLACE: FLAGS
 * @MH_IMAP_STORE_ADD: +FLAGS
 * @MH_IMAP_STORE_REMOVE: -FLAGS
 *
 * How STORE changes flags.
 */
typedef enum
{
  MH_IMAP_STORE_REPLACE,
  MH_IMAP_STORE_ADD,
  MH_IMAP_STORE_REMOVE,
} MhImapStoreMode;

/**
 * MhImapListSelect:
 *
 * LIST-EXTENDED selection options (RFC 5258) and SPECIAL-USE (RFC 6154).
 */
typedef enum /*< flags >*/
{
  MH_IMAP_LIST_SELECT_SUBSCRIBED = 1 << 0,
  MH_IMAP_LIST_SELECT_REMOTE = 1 << 1,
  MH_IMAP_LIST_SELECT_RECURSIVEMATCH = 1 << 2,
  MH_IMAP_LIST_SELECT_SPECIAL_USE = 1 << 3,
} MhImapListSelect;

/**
 * MhImapListReturn:
 *
 * LIST return options: SUBSCRIBED, CHILDREN (RFC 5258), SPECIAL-USE
 * (RFC 6154), STATUS (RFC 5819, with @status_items in the command).
 */
typedef enum /*< flags >*/
{
  MH_IMAP_LIST_RETURN_SUBSCRIBED = 1 << 0,
  MH_IMAP_LIST_RETURN_CHILDREN = 1 << 1,
  MH_IMAP_LIST_RETURN_SPECIAL_USE = 1 << 2,
  MH_IMAP_LIST_RETURN_STATUS = 1 << 3,
} MhImapListReturn;

/**
 * MhImapStatusItem:
 *
 * STATUS data items (RFC 9051, CONDSTORE's HIGHESTMODSEQ, STATUS=SIZE's
 * SIZE of RFC 8438, APPENDLIMIT of RFC 7889, DELETED of RFC 9051).
 */
typedef enum /*< flags >*/
{
  MH_IMAP_STATUS_MESSAGES = 1 << 0,
  MH_IMAP_STATUS_RECENT = 1 << 1,
  MH_IMAP_STATUS_UIDNEXT = 1 << 2,
  MH_IMAP_STATUS_UIDVALIDITY = 1 << 3,
  MH_IMAP_STATUS_UNSEEN = 1 << 4,
  MH_IMAP_STATUS_DELETED = 1 << 5,
  MH_IMAP_STATUS_SIZE = 1 << 6,
  MH_IMAP_STATUS_HIGHESTMODSEQ = 1 << 7,
  MH_IMAP_STATUS_APPENDLIMIT = 1 << 8,
} MhImapStatusItem;

/**
 * MhImapAppendMessage:
 * @flags: (array zero-terminated=1) (nullable): flags as written
 *   ("\\Seen", "$Junk"); %NULL when none were given
 * @date: INTERNALDATE as seconds since the epoch, or 0 when not given
 * @data: the message (the literal's bytes)
 * @binary: the literal was a literal8 ("~{n}", BINARY)
 *
 * One message of an APPEND (MULTIAPPEND gives several).
 */
typedef struct
{
  char **flags;
  gint64 date;
  GBytes *data;
  gboolean binary;
} MhImapAppendMessage;

/* ---- The command ------------------------------------------------------- */

/**
 * MhImapCommand:
 * @tag: the client's tag
 * @kind: the command
 * @uid: UID prefix (FETCH, STORE, COPY, MOVE, SEARCH, SORT, THREAD,
 *   EXPUNGE)
 * @name: the command name as the client wrote it, upper-cased
 * @mailbox: mailbox of SELECT, EXAMINE, CREATE, DELETE, RENAME (source),
 *   SUBSCRIBE, UNSUBSCRIBE, STATUS, APPEND, COPY, MOVE (target),
 *   GETQUOTAROOT, GETMETADATA/SETMETADATA ("" for server entries)
 * @mailbox2: RENAME's new name
 * @reference: LIST/LSUB reference name
 * @patterns: (array zero-terminated=1): LIST/LSUB patterns (one, or
 *   several with LIST-EXTENDED)
 * @list_select: LIST selection options
 * @list_return: LIST return options
 * @status_items: STATUS items (and LIST RETURN (STATUS ...))
 * @set: sequence set of FETCH, STORE, COPY, MOVE, UID EXPUNGE
 * @fetch_atts: (element-type MhImapFetchAtt): FETCH attributes
 * @changedsince: FETCH (CHANGEDSINCE n) / SEARCH MODSEQ, 0 if absent
 * @vanished: FETCH (VANISHED) modifier (QRESYNC)
 * @store_mode: STORE mode
 * @store_silent: STORE .SILENT
 * @store_flags: (array zero-terminated=1): STORE flags and keywords
 * @unchangedsince: STORE (UNCHANGEDSINCE n), %G_MAXUINT64 if absent
 * @search: (nullable): the search program (SEARCH, SORT, THREAD)
 * @search_charset: (nullable): CHARSET as given, upper-cased
 * @search_return: ESEARCH return options
 * @esearch: the client asked for ESEARCH (RETURN given)
 * @sort: (element-type MhImapSortCriterion): SORT criteria
 * @thread: THREAD algorithm
 * @messages: (element-type MhImapAppendMessage): APPEND messages
 * @condstore: SELECT/EXAMINE (CONDSTORE)
 * @qresync: SELECT/EXAMINE (QRESYNC (uidvalidity modseq [known-uids
 *   [seq-match]])) was given; the fields below hold it
 * @qresync_uidvalidity: QRESYNC's last known UIDVALIDITY
 * @qresync_modseq: QRESYNC's last known modseq
 * @qresync_known_uids: (nullable): QRESYNC's known UIDs
 * @qresync_seq_match: (nullable): QRESYNC's sequence numbers ...
 * @qresync_uid_match: (nullable): ... and their UIDs
 * @strings: (array zero-terminated=1): ENABLE capability names
 *   (upper-cased); ID parameters as name, value pairs (value may be
 *   %NULL for NIL; %NULL @strings for "ID NIL"); GETMETADATA entry
 *   names; SETMETADATA entry names and values as pairs (value %NULL for
 *   NIL); SETQUOTA resource names and limits as pairs; NOTIFY's raw
 *   argument text as one string; CREATE's special-use attributes from
 *   "(USE (\\Sent ...))" (RFC 6154 3), %NULL when none were given
 * @metadata_maxsize: GETMETADATA (MAXSIZE n), 0 if absent
 * @metadata_depth: GETMETADATA (DEPTH 0|1|infinity): 0, 1 or -1
 * @mechanism: AUTHENTICATE mechanism (upper-cased)
 * @initial_response: (nullable): AUTHENTICATE initial response (SASL-IR),
 *   still base64 ("=" for an empty one)
 * @user: LOGIN user name
 * @password: LOGIN password (wiped when the command is freed)
 * @line: AUTH_RESPONSE: the client's line ("*" cancels); DONE: %NULL
 *   when the client sent "DONE", else what it sent instead (the IDLE
 *   still ends; the host answers the IDLE with BAD "Expected DONE")
 * @compress: COMPRESS mechanism (upper-cased)
 *
 * A parsed command. Fields not listed for a kind are zero/%NULL.
 * Owned by the caller of mh_imap_engine_next_command().
 */
typedef struct
{
  char *tag;
  MhImapCommandKind kind;
  gboolean uid;
  char *name;

  char *mailbox;
  char *mailbox2;
  char *reference;
  char **patterns;
  MhImapListSelect list_select;
  MhImapListReturn list_return;
  MhImapStatusItem status_items;

  MhImapSeqSet *set;
  GPtrArray *fetch_atts;
  guint64 changedsince;
  gboolean vanished;

  MhImapStoreMode store_mode;
  gboolean store_silent;
  char **store_flags;
  guint64 unchangedsince;

  MhImapSearchKey *search;
  char *search_charset;
  MhImapSearchReturn search_return;
  gboolean esearch;
  GArray *sort;
  MhImapThreadAlgorithm thread;

  GPtrArray *messages;

  gboolean condstore;
  gboolean qresync;
  guint32 qresync_uidvalidity;
  guint64 qresync_modseq;
  MhImapSeqSet *qresync_known_uids;
  MhImapSeqSet *qresync_seq_match;
  MhImapSeqSet *qresync_uid_match;

  char **strings;
  guint64 metadata_maxsize;
  gint metadata_depth;

  char *mechanism;
  char *initial_response;
  char *user;
  char *password;
  char *line;
  char *compress;
} MhImapCommand;

MH_API GType mh_imap_command_get_type (void) G_GNUC_CONST;
#define MH_TYPE_IMAP_COMMAND (mh_imap_command_get_type ())

/**
 * mh_imap_command_free:
 * @cmd: (nullable) (transfer full): a command
 *
 * Frees a command and everything in it; the password is wiped first.
 */
MH_API void mh_imap_command_free (MhImapCommand *cmd);

/**
 * mh_imap_command_copy:
 * @cmd: a command
 *
 * Returns: (transfer full): a deep copy (for bindings)
 */
MH_API MhImapCommand *mh_imap_command_copy (const MhImapCommand *cmd);

/* ---- Limits ------------------------------------------------------------ */

/**
 * MhImapLimits:
 * @version: 1
 * @max_line: longest command line, in bytes, literals excluded (all
 *   lines of one command together)
 * @max_literal: longest literal other than an APPEND message (default
 *   %MH_LIMIT_IMAP_NONAPPEND_LITERAL_MAX)
 * @max_append: longest APPEND message (APPENDLIMIT); also bounds all
 *   messages of one MULTIAPPEND together, since they are held whole
 * @max_command: total bytes of one command, its literals included
 *   (APPEND messages excluded)
 * @max_pending: parsed commands waiting for the host before the engine
 *   stops reading
 * @max_bad_commands: BAD replies before the engine says BYE
 *
 * Engine limits; defaults come from limits.h.
 */
typedef struct
{
  guint version;
  guint max_line;
  guint64 max_literal;
  guint64 max_append;
  guint64 max_command;
  guint max_pending;
  guint max_bad_commands;
} MhImapLimits;

MH_API GType mh_imap_limits_get_type (void) G_GNUC_CONST;

/**
 * mh_imap_limits_new:
 *
 * Returns: (transfer full): limits with the defaults of limits.h
 */
MH_API MhImapLimits *mh_imap_limits_new (void);

/**
 * mh_imap_limits_copy:
 * @limits: limits
 *
 * Returns: (transfer full): a copy
 */
MH_API MhImapLimits *mh_imap_limits_copy (const MhImapLimits *limits);

/**
 * mh_imap_limits_free:
 * @limits: (nullable) (transfer full): limits
 *
 * Frees @limits.
 */
MH_API void mh_imap_limits_free (MhImapLimits *limits);

/* ---- The engine -------------------------------------------------------- */

/**
 * MhImapEngine:
 *
 * One IMAP session's protocol state. Not thread-safe: one thread drives
 * it at a time.
 */
typedef struct _MhImapEngine MhImapEngine;

MH_API GType mh_imap_engine_get_type (void) G_GNUC_CONST;
#define MH_TYPE_IMAP_ENGINE (mh_imap_engine_get_type ())

/**
 * mh_imap_engine_new:
 * @limits: (nullable): limits, %NULL for the defaults
 *
 * Creates an engine in the NOT_AUTHENTICATED state. Nothing is written
 * until the host calls mh_imap_engine_greet().
 *
 * Returns: (transfer full): a new engine
 */
MH_API MhImapEngine *mh_imap_engine_new (const MhImapLimits *limits);

/**
 * mh_imap_engine_ref:
 * @e: an engine
 *
 * Returns: (transfer full): @e
 */
MH_API MhImapEngine *mh_imap_engine_ref (MhImapEngine *e);

/**
 * mh_imap_engine_unref:
 * @e: (nullable) (transfer full): an engine
 *
 * Drops a reference.
 */
MH_API void mh_imap_engine_unref (MhImapEngine *e);

/**
 * mh_imap_engine_greet:
 * @e: an engine
 * @text: greeting text, e.g. "[CAPABILITY IMAP4rev1 ...] ready"
 *
 * Writes "* OK @text".
 */
MH_API void mh_imap_engine_greet (MhImapEngine *e, const char *text);

/**
 * mh_imap_engine_feed:
 * @e: an engine
 * @buf: (array length=len): bytes from the client
 * @len: number of bytes
 *
 * Consumes client bytes: frames and parses commands, answers framing and
 * syntax errors itself (BAD with a precise text, continuation requests
 * for synchronising literals, refusal of over-long literals). May stop
 * early when mh_imap_engine_want_read() turns %FALSE (too many pending
 * commands, STARTTLS or COMPRESS awaiting the host).
 *
 * The engine keeps up to 16 KiB of input it could not frame yet (it
 * frames more as mh_imap_engine_next_command() drains the queue), so a
 * short count only means that buffer is full: feed the rest after
 * taking commands. Errors of commands that did not parse are queued
 * with the commands and written when their turn comes in
 * mh_imap_engine_next_command(), so replies keep the client's order.
 * While closing, and between an accepted STARTTLS and
 * mh_imap_engine_starttls_done(), input is taken and dropped.
 *
 * Returns: bytes consumed
 */
MH_API gsize mh_imap_engine_feed (MhImapEngine *e, const guint8 *buf,
                                  gsize len);

/**
 * mh_imap_engine_want_read:
 * @e: an engine
 *
 * Returns: %TRUE if the engine accepts more input now
 */
MH_API gboolean mh_imap_engine_want_read (MhImapEngine *e);

/**
 * mh_imap_engine_next_command:
 * @e: an engine
 *
 * Takes the next parsed command, in the client's order. Commands not
 * valid in the current state were already answered with BAD and are not
 * returned.
 *
 * Returns: (transfer full) (nullable): a command, or %NULL if none is
 *   complete
 */
MH_API MhImapCommand *mh_imap_engine_next_command (MhImapEngine *e);

/**
 * mh_imap_engine_set_state:
 * @e: an engine
 * @state: the new state
 *
 * Tells the engine a command changed the state (login, select, close).
 */
MH_API void mh_imap_engine_set_state (MhImapEngine *e, MhImapState state);

/**
 * mh_imap_engine_get_state:
 * @e: an engine
 *
 * Returns: the current state
 */
MH_API MhImapState mh_imap_engine_get_state (MhImapEngine *e);

/**
 * mh_imap_engine_set_utf8:
 * @e: an engine
 * @enabled: %TRUE once UTF8=ACCEPT or IMAP4rev2 is enabled
 *
 * Lets quoted strings carry UTF-8 (RFC 6855).
 */
MH_API void mh_imap_engine_set_utf8 (MhImapEngine *e, gboolean enabled);

/**
 * mh_imap_engine_set_literal_minus:
 * @e: an engine
 * @enabled: %TRUE when the host advertises LITERAL- rather than LITERAL+
 *
 * With LITERAL- (RFC 7888), a non-synchronising literal over 4096 bytes
 * gets a tagged BAD and the session ends (its bytes follow anyway).
 * Otherwise non-synchronising literals have the same limits as others.
 */
MH_API void mh_imap_engine_set_literal_minus (MhImapEngine *e,
                                              gboolean enabled);

/**
 * mh_imap_engine_write:
 * @e: an engine
 * @data: (array length=len): response bytes, complete CRLF-ended lines
 *   (literals included)
 * @len: number of bytes
 *
 * Queues response bytes for the client (compressed if COMPRESS is on).
 */
MH_API void mh_imap_engine_write (MhImapEngine *e, const guint8 *data,
                                  gsize len);

/**
 * mh_imap_engine_tagged:
 * @e: an engine
 * @cmd: the command answered (its tag and name are used)
 * @status: "OK", "NO" or "BAD"
 * @code: (nullable): response code without brackets ("TRYCREATE")
 * @text: human-readable text
 *
 * Writes the tagged completion. After a BAD the engine counts towards
 * @max_bad_commands.
 */
MH_API void mh_imap_engine_tagged (MhImapEngine *e, const MhImapCommand *cmd,
                                   const char *status, const char *code,
                                   const char *text);

/**
 * mh_imap_engine_continuation:
 * @e: an engine
 * @text: (nullable): text after "+ " (base64 challenge for AUTHENTICATE)
 *
 * Writes a continuation request. After an AUTHENTICATE or IDLE command
 * the engine then reads the next line as AUTH_RESPONSE or DONE.
 */
MH_API void mh_imap_engine_continuation (MhImapEngine *e, const char *text);

/**
 * mh_imap_engine_auth_done:
 * @e: an engine
 *
 * Ends an AUTHENTICATE exchange (after its tagged reply): lines are
 * commands again.
 */
MH_API void mh_imap_engine_auth_done (MhImapEngine *e);

/**
 * mh_imap_engine_starttls_done:
 * @e: an engine
 *
 * Call after the tagged OK to STARTTLS was sent and TLS is up. Input the
 * client pipelined after STARTTLS was discarded (RFC 9051 6.2.1).
 */
MH_API void mh_imap_engine_starttls_done (MhImapEngine *e);

/**
 * mh_imap_engine_start_compress:
 * @e: an engine
 *
 * Call right after writing the tagged OK to COMPRESS DEFLATE: later
 * output is deflated and later input inflated (RFC 4978).
 */
MH_API void mh_imap_engine_start_compress (MhImapEngine *e);

/**
 * mh_imap_engine_peek_output:
 * @e: an engine
 * @out: (out) (transfer none): bytes to send
 *
 * Returns: number of bytes waiting to be sent
 */
MH_API gsize mh_imap_engine_peek_output (MhImapEngine *e, const guint8 **out);

/**
 * mh_imap_engine_consume_output:
 * @e: an engine
 * @n: bytes sent
 *
 * Drops @n sent bytes from the output.
 */
MH_API void mh_imap_engine_consume_output (MhImapEngine *e, gsize n);

/**
 * mh_imap_engine_output_size:
 * @e: an engine
 *
 * Returns: bytes waiting to be sent (hosts pause long responses when it
 *   is high: the client must read before the server writes more)
 */
MH_API gsize mh_imap_engine_output_size (MhImapEngine *e);

/**
 * mh_imap_engine_bye:
 * @e: an engine
 * @text: text of the untagged BYE
 *
 * Writes "* BYE @text" and moves to LOGOUT; the host closes once the
 * output is sent.
 */
MH_API void mh_imap_engine_bye (MhImapEngine *e, const char *text);

/**
 * mh_imap_engine_is_closing:
 * @e: an engine
 *
 * Returns: %TRUE once BYE was written or the client broke a hard limit
 */
MH_API gboolean mh_imap_engine_is_closing (MhImapEngine *e);

/**
 * mh_imap_engine_memory:
 * @e: an engine
 *
 * Returns: bytes the engine holds (buffers, pending commands), for the
 *   host's per-session memory bound
 */
MH_API gsize mh_imap_engine_memory (MhImapEngine *e);

/* ---- Response helpers -------------------------------------------------- */

/**
 * mh_imap_append_astring:
 * @out: string to append to
 * @s: (array length=len): the value
 * @len: its length, or -1 if NUL-terminated
 * @utf8: UTF-8 may be sent in quoted strings
 *
 * Appends @s as an atom when it can be one, else as a quoted string,
 * else (CR, LF, NUL, 8-bit without @utf8, or long) as a literal.
 */
MH_API void mh_imap_append_astring (GString *out, const char *s, gssize len,
                                    gboolean utf8);

/**
 * mh_imap_append_nstring:
 * @out: string to append to
 * @s: (nullable) (array length=len): the value, %NULL for NIL
 * @len: its length, or -1 if NUL-terminated
 * @utf8: UTF-8 may be sent in quoted strings
 *
 * Like mh_imap_append_astring() but never an atom, and NIL for %NULL.
 */
MH_API void mh_imap_append_nstring (GString *out, const char *s, gssize len,
                                    gboolean utf8);

/**
 * mh_imap_seqset_contains:
 * @set: a set (not "$")
 * @n: a number
 * @star: what "*" stands for (highest sequence number or UID)
 *
 * Returns: %TRUE if @n is in @set
 */
MH_API gboolean mh_imap_seqset_contains (const MhImapSeqSet *set, guint32 n,
                                         guint32 star);

/**
 * mh_imap_seqset_format:
 * @values: (array length=n): sorted numbers
 * @n: how many
 *
 * Returns: (transfer full): the shortest set ("1:3,7,9:10"), "" for none
 */
MH_API char *mh_imap_seqset_format (const guint32 *values, gsize n);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhImapEngine, mh_imap_engine_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhImapCommand, mh_imap_command_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhImapLimits, mh_imap_limits_free)

G_END_DECLS
