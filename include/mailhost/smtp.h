/* libmailhost: the sans-I/O SMTP / submission / LMTP server engine.
 *
 * The engine owns parsing and protocol state, nothing else: no sockets,
 * no TLS, no clock, no DNS, no disk. The host (lib/server, a Python
 * asyncio server, a fuzzer) feeds it the bytes it reads, pulls typed
 * events, answers each event that asks for an answer, and writes out the
 * bytes the engine queues. One engine serves one connection.
 *
 * ## The drive loop
 *
 * |[<!-- language="C" -->
 * MhSmtpEngine *e = mh_smtp_engine_new (MH_SMTP_ROLE_SMTP, NULL);
 * mh_smtp_engine_set_extensions (e, MH_SMTP_EXT_DEFAULT | MH_SMTP_EXT_STARTTLS);
 * mh_smtp_engine_greet (e, "mx.example.org", 220, NULL);
 * for (;;)
 *   {
 *     while ((n = mh_smtp_engine_peek_output (e, &out)) > 0)
 *       { write_all (fd, out, n); mh_smtp_engine_consume_output (e, n); }
 *     if (mh_smtp_engine_is_closing (e))
 *       break;                               // output flushed: close
 *     if (mh_smtp_engine_want_read (e))
 *       { len = read (...); used = mh_smtp_engine_feed (e, buf, len); ... }
 *     while (mh_smtp_engine_next_event (e, &ev))
 *       handle (e, &ev);      // calls mh_smtp_engine_reply() etc.
 *     deadline = mh_smtp_engine_tick (e, g_get_monotonic_time ());
 *   }
 * ]|
 *
 * ## Events and replies
 *
 * mh_smtp_engine_next_event() returns one #MhSmtpEvent at a time. When
 * its `needs_reply` is %TRUE (HELO, MAIL, RCPT, DATA, DATA_END, STARTTLS,
 * AUTH, AUTH_RESPONSE) the engine stops: it parses nothing more, and
 * next_event() returns %FALSE, until the host answers with
 * mh_smtp_engine_accept() or mh_smtp_engine_reply(). The host may answer
 * later (after a lookup in a worker thread); meanwhile it may keep
 * feeding, and the engine buffers up to a bound and then refuses more
 * (feed() returns less than it was given; want_read() is %FALSE). This is
 * how PIPELINING (RFC 2920) works: commands are handled strictly in
 * order and their replies leave in order.
 *
 * The other events are notices (DATA_CHUNK, DATA_ABORTED, RSET,
 * AUTH_ABORTED, TIMEOUT, ABUSE, QUIT): the engine has already answered the
 * client, and the host just acts on them (write the chunk to the spool
 * file, drop the transaction, log).
 *
 * Replies the engine makes itself: NOOP, RSET, VRFY (252), EXPN (502),
 * HELP, QUIT (221), every syntax error (501 / 500 / 555), every
 * out-of-sequence command (503 5.5.1), limits (452 4.5.3, 552 5.3.4,
 * 500 5.5.6), bare CR / LF (RFC 5321 2.3.8), and the 250 after each
 * non-LAST BDAT chunk. Each 4xx/5xx reply, the host's included, counts
 * as an error; at #MhSmtpLimits.max_errors the engine queues 421, emits
 * %MH_SMTP_EVENT_ABUSE and closes.
 *
 * ## A message
 *
 * MAIL → RCPT (one event per recipient) → DATA (or the first BDAT) →
 * DATA_CHUNK ... → DATA_END, or DATA_ABORTED when the engine refused the
 * message (too big, bare LF, over-long line, engine closing). Every DATA
 * event the host accepted ends in exactly one DATA_END or DATA_ABORTED.
 * The engine never holds the message: chunks point into its input
 * buffer, already dot-unstuffed, and the host spools them. After DATA_END
 * the SMTP host replies once; the LMTP host (RFC 2033) replies
 * `n_replies` times, once per accepted recipient, in RCPT order.
 *
 * ## STARTTLS (RFC 3207)
 *
 * On %MH_SMTP_EVENT_STARTTLS the host accepts (the engine queues
 * "220 2.0.0 Ready to start TLS" and discards every byte the client
 * pipelined after the STARTTLS line: the command injection attack of
 * CVE-2011-0411), flushes the output, runs the handshake, and calls
 * mh_smtp_engine_starttls_done(): the engine forgets HELO, the
 * transaction and any authentication, and from then on reports TLS as
 * active. Bytes fed between the accept and starttls_done() are discarded
 * too. A failed handshake means the host closes the connection.
 *
 * ## AUTH (RFC 4954)
 *
 * The engine parses `AUTH mechanism [initial-response]`, checks the
 * mechanism against mh_smtp_engine_set_auth_mechanisms(), validates and
 * decodes the base64, and relays: %MH_SMTP_EVENT_AUTH carries the
 * mechanism and the initial response; the host (through lib/auth) answers
 * with a challenge (mh_smtp_engine_reply() with code 334 and the base64
 * challenge as text, which brings %MH_SMTP_EVENT_AUTH_RESPONSE next), with
 * success (code 235) or with failure (535 5.7.8, 454 4.7.0, ...). A client
 * "*" line, broken base64 or an over-long line is answered by the engine
 * (501 / 500 5.5.6) and reported as %MH_SMTP_EVENT_AUTH_ABORTED, so the
 * host drops its SASL state. Decoded responses are wiped from memory when
 * the engine moves past the event.
 *
 * ## Timeouts (RFC 5321 4.5.3.2)
 *
 * The engine has no clock: the host calls mh_smtp_engine_tick() with a
 * monotonic time, at least at the deadline it returned. When the client
 * has sent nothing for #MhSmtpLimits.command_timeout_s (data_timeout_s
 * inside DATA/BDAT) the engine queues "421 4.4.2 ... timeout", emits
 * %MH_SMTP_EVENT_TIMEOUT and closes. Time spent waiting for the host's
 * reply or for a TLS handshake does not count.
 *
 * ## Security
 *
 * - Lines end in CRLF only. A bare LF or bare CR in a command is refused
 *   with 500 5.5.2; inside DATA it voids the message (550 5.5.2 after the
 *   end marker), and the end of data is only CRLF "." CRLF, so SMTP
 *   smuggling ("\n.\n", "\r.\r") cannot end a message early (RFC 5321
 *   2.3.8 and 4.1.1.4, as Postfix's smtpd_forbid_bare_newline).
 * - NUL in a command is refused; command lines are bounded (500 5.5.6 and
 *   the rest of the line is skipped); input and output buffers are
 *   bounded; nothing grows with the peer's input except the spool the
 *   host writes.
 * - HTTP verbs (GET, POST, CONNECT, ...) close the session at once: they
 *   are cross-protocol attacks, never a confused mail client.
 *
 * Thread safety: an engine belongs to one thread at a time and has no
 * locks; different engines are independent. mh_smtp_path_parse() is safe
 * from any thread.
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/limits.h>

G_BEGIN_DECLS

/**
 * MH_SMTP_ERROR:
 *
 * Error domain of mh_smtp_path_parse(). Codes are in #MhSmtpError. The
 * engine itself never returns a #GError: what the peer does wrong becomes
 * an SMTP reply on the wire.
 */
#define MH_SMTP_ERROR (mh_smtp_error_quark ())
MH_API GQuark mh_smtp_error_quark (void);

/**
 * MhSmtpError:
 * @MH_SMTP_ERROR_SYNTAX: the text is not an RFC 5321 path
 * @MH_SMTP_ERROR_TOO_LONG: a local part, domain or path exceeds RFC 5321
 *   4.5.3.1
 * @MH_SMTP_ERROR_UTF8: non-ASCII octets where SMTPUTF8 is not allowed, or
 *   invalid UTF-8
 *
 * Codes in %MH_SMTP_ERROR.
 */
typedef enum
{
  MH_SMTP_ERROR_SYNTAX,
  MH_SMTP_ERROR_TOO_LONG,
  MH_SMTP_ERROR_UTF8,
} MhSmtpError;

/**
 * MhSmtpRole:
 * @MH_SMTP_ROLE_SMTP: RFC 5321 relay/MX service (port 25)
 * @MH_SMTP_ROLE_SUBMISSION: RFC 6409 message submission (587, 465); as
 *   SMTP, but MAIL needs a successful AUTH first (policy
 *   %MH_SMTP_POLICY_REQUIRE_AUTH is on by default)
 * @MH_SMTP_ROLE_LMTP: RFC 2033: LHLO instead of HELO/EHLO, and one reply
 *   per accepted recipient after the data
 *
 * Which protocol the engine speaks.
 */
typedef enum
{
  MH_SMTP_ROLE_SMTP,
  MH_SMTP_ROLE_SUBMISSION,
  MH_SMTP_ROLE_LMTP,
} MhSmtpRole;

/**
 * MhSmtpLimits:
 * @version: 1; set it so later fields can be added
 * @max_line: longest command line in octets, CRLF included; 0 means
 *   %MH_LIMIT_SMTP_LINE_MAX (1000, RFC 5321 4.5.3.1.4). Longer lines get
 *   500 5.5.6.
 * @max_data_line: longest text line inside DATA, CRLF (and any stuffing
 *   dot) included; 0 means %MH_LIMIT_SMTP_DATA_LINE_MAX (1000, RFC 5321
 *   4.5.3.1.6). A longer line voids the message (554 5.6.0 after the end
 *   marker). BDAT chunks are not split into lines.
 * @max_recipients: accepted RCPTs per transaction; 0 means
 *   %MH_LIMIT_SMTP_RCPTS_MAX. The next one gets 452 4.5.3 (RFC 5321
 *   4.5.3.1.10).
 * @max_message_size: octets of message after dot-unstuffing; 0 means
 *   %MH_LIMIT_MESSAGE_SIZE_MAX. Advertised as SIZE (RFC 1870); MAIL with
 *   a larger SIZE= gets 552 5.3.4, and a message that grows past it is
 *   read to its end marker, not handed on, and answered 552 5.3.4.
 * @max_errors: 4xx/5xx replies per session before "421" and close;
 *   0 means %MH_LIMIT_SMTP_ERRORS_MAX
 * @max_bad_commands: unknown or syntactically invalid commands per
 *   session before close; 0 means %MH_LIMIT_SMTP_BAD_COMMANDS_MAX
 * @max_junk_commands: NOOP, RSET, VRFY, EXPN and HELP per session before
 *   close (they keep a session alive without mail); 0 means
 *   %MH_LIMIT_SMTP_JUNK_COMMANDS_MAX
 * @max_auth_line: longest AUTH command or SASL response line, CRLF
 *   included; 0 means %MH_LIMIT_SASL_LINE_MAX
 * @command_timeout_s: seconds the client may stay silent between
 *   commands; 0 means %MH_LIMIT_COMMAND_TIMEOUT_S (RFC 5321 4.5.3.2.7)
 * @data_timeout_s: seconds the client may stay silent inside DATA or a
 *   BDAT chunk; 0 means %MH_LIMIT_COMMAND_TIMEOUT_S
 *
 * Limits of one engine. Zero fields take their default, so `{ .version
 * = 1 }` or %NULL gives the defaults of limits.h.
 */
typedef struct
{
  guint version;
  guint max_line;
  guint max_data_line;
  guint max_recipients;
  guint64 max_message_size;
  guint max_errors;
  guint max_bad_commands;
  guint max_junk_commands;
  guint max_auth_line;
  guint command_timeout_s;
  guint data_timeout_s;
} MhSmtpLimits;

MH_API GType mh_smtp_limits_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SMTP_LIMITS (mh_smtp_limits_get_type ())

/**
 * mh_smtp_limits_copy:
 * @limits: limits
 *
 * Returns: (transfer full): a copy; free with mh_smtp_limits_free().
 */
MH_API MhSmtpLimits *mh_smtp_limits_copy (const MhSmtpLimits *limits);

/**
 * mh_smtp_limits_free:
 * @limits: (nullable): limits from mh_smtp_limits_copy()
 *
 * NULL-safe.
 */
MH_API void mh_smtp_limits_free (MhSmtpLimits *limits);

/**
 * MhSmtpExtensions:
 * @MH_SMTP_EXT_PIPELINING: RFC 2920
 * @MH_SMTP_EXT_8BITMIME: RFC 6152 (BODY=8BITMIME)
 * @MH_SMTP_EXT_SMTPUTF8: RFC 6531 (UTF-8 addresses with the SMTPUTF8
 *   parameter)
 * @MH_SMTP_EXT_SIZE: RFC 1870
 * @MH_SMTP_EXT_ENHANCEDSTATUSCODES: RFC 2034/3463: every reply but the
 *   greeting, EHLO and intermediate 334/354 carries an enhanced code
 * @MH_SMTP_EXT_DSN: RFC 3461 (NOTIFY, ORCPT, RET, ENVID)
 * @MH_SMTP_EXT_CHUNKING: RFC 3030 BDAT
 * @MH_SMTP_EXT_BINARYMIME: RFC 3030 BODY=BINARYMIME (only with
 *   CHUNKING; such a message must come by BDAT)
 * @MH_SMTP_EXT_STARTTLS: RFC 3207; advertised only while TLS is not active
 * @MH_SMTP_EXT_DEFAULT: everything but STARTTLS, which needs a
 *   certificate the host must have
 *
 * What EHLO/LHLO advertises and the engine accepts. AUTH is advertised
 * when mh_smtp_engine_set_auth_mechanisms() gave mechanisms.
 */
typedef enum
{
  MH_SMTP_EXT_PIPELINING = 1 << 0,
  MH_SMTP_EXT_8BITMIME = 1 << 1,
  MH_SMTP_EXT_SMTPUTF8 = 1 << 2,
  MH_SMTP_EXT_SIZE = 1 << 3,
  MH_SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 4,
  MH_SMTP_EXT_DSN = 1 << 5,
  MH_SMTP_EXT_CHUNKING = 1 << 6,
  MH_SMTP_EXT_BINARYMIME = 1 << 7,
  MH_SMTP_EXT_STARTTLS = 1 << 8,
  MH_SMTP_EXT_DEFAULT = 0xff,
} MhSmtpExtensions;

/**
 * MhSmtpPolicy:
 * @MH_SMTP_POLICY_NONE: no restriction
 * @MH_SMTP_POLICY_REQUIRE_TLS: before TLS, only EHLO/HELO/LHLO, STARTTLS,
 *   NOOP, RSET and QUIT; the rest gets "530 5.7.0 Must issue a STARTTLS
 *   command first" (RFC 3207 4)
 * @MH_SMTP_POLICY_REQUIRE_AUTH: MAIL before a successful AUTH gets
 *   "530 5.7.0 Authentication required" (RFC 4954 6); the default of
 *   %MH_SMTP_ROLE_SUBMISSION
 * @MH_SMTP_POLICY_AUTH_REQUIRES_TLS: AUTH is neither advertised nor
 *   accepted before TLS ("530 5.7.0 Must issue a STARTTLS command
 *   first"), so passwords never cross in clear
 *
 * Session rules the host chooses (mh_smtp_engine_set_policy()).
 */
typedef enum
{
  MH_SMTP_POLICY_NONE = 0,
  MH_SMTP_POLICY_REQUIRE_TLS = 1 << 0,
  MH_SMTP_POLICY_REQUIRE_AUTH = 1 << 1,
  MH_SMTP_POLICY_AUTH_REQUIRES_TLS = 1 << 2,
} MhSmtpPolicy;

/**
 * MhSmtpPath:
 * @address: the mailbox as sent, source route removed: `local@domain`
 *   with any quoting of the local part kept; "" for the null path
 * @local_part: the local part with quoting undone (`"a b"` → `a b`)
 * @domain: (nullable): the domain as sent (U-labels possible with
 *   SMTPUTF8), or an address literal with brackets (`[192.0.2.1]`,
 *   `[IPv6:2001:db8::1]`); %NULL for the null path and `<postmaster>`
 * @is_null: the null reverse-path `<>` (bounces)
 * @is_postmaster: the bare `<postmaster>` that RFC 5321 4.1.1.3 makes
 *   every server accept
 * @domain_is_literal: @domain is an address literal
 * @is_utf8: the address has non-ASCII (UTF-8) octets
 * @had_source_route: a source route `@a,@b:` was given and dropped, as
 *   RFC 5321 appendix C and 4.1.1.3 allow
 *
 * A parsed RFC 5321 Path (4.1.2). In events it is borrowed from the
 * engine; mh_smtp_path_parse() and mh_smtp_path_copy() give owned ones.
 */
typedef struct
{
  char *address;
  char *local_part;
  char *domain;
  gboolean is_null;
  gboolean is_postmaster;
  gboolean domain_is_literal;
  gboolean is_utf8;
  gboolean had_source_route;
} MhSmtpPath;

MH_API GType mh_smtp_path_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SMTP_PATH (mh_smtp_path_get_type ())

/**
 * mh_smtp_path_parse:
 * @text: (array length=len) (element-type guint8): the path, brackets
 *   included: `<user@example.org>`, `<>`
 * @len: length of @text, or -1 if NUL-terminated
 * @allow_null: accept `<>` (a reverse path)
 * @allow_utf8: accept UTF-8 local parts and domains (RFC 6531)
 * @error: return location for a #GError, or %NULL
 *
 * Parses a whole RFC 5321 Path, as the engine does for MAIL and RCPT
 * (mh-deliver uses it for its arguments). Nothing may follow the '>'.
 *
 * Returns: (transfer full) (nullable): the path, or %NULL with @error in
 *   %MH_SMTP_ERROR (SYNTAX, TOO_LONG, UTF8) naming what is wrong.
 */
MH_API MhSmtpPath *mh_smtp_path_parse (const char *text, gssize len,
                                       gboolean allow_null,
                                       gboolean allow_utf8, GError **error);

/**
 * mh_smtp_path_copy:
 * @path: a path
 *
 * Returns: (transfer full): a deep copy; free with mh_smtp_path_free().
 */
MH_API MhSmtpPath *mh_smtp_path_copy (const MhSmtpPath *path);

/**
 * mh_smtp_path_free:
 * @path: (nullable): an owned path
 *
 * NULL-safe.
 */
MH_API void mh_smtp_path_free (MhSmtpPath *path);

/**
 * MhSmtpEventType:
 * @MH_SMTP_EVENT_NONE: no event (never returned)
 * @MH_SMTP_EVENT_HELO: HELO, EHLO or LHLO; reply. Accepting makes the
 *   engine send the 250 with the capability list; any open transaction
 *   is dropped either way (RFC 5321 4.1.4).
 * @MH_SMTP_EVENT_MAIL: MAIL FROM; reply (2xx opens the transaction)
 * @MH_SMTP_EVENT_RCPT: RCPT TO; reply (2xx adds the recipient)
 * @MH_SMTP_EVENT_DATA: DATA, or the first BDAT of a transaction; reply
 *   (accept: open the spool file). For DATA the engine sends 354; for
 *   BDAT it reads the chunk and answers after it. A refused BDAT's chunk
 *   is read and dropped, and the transaction ends.
 * @MH_SMTP_EVENT_DATA_CHUNK: message bytes (notice)
 * @MH_SMTP_EVENT_DATA_END: the end of the message; reply once (SMTP) or
 *   `n_replies` times (LMTP)
 * @MH_SMTP_EVENT_DATA_ABORTED: the engine refused or abandoned the
 *   message; drop the spool file (notice)
 * @MH_SMTP_EVENT_RSET: the client sent RSET; drop the transaction (notice)
 * @MH_SMTP_EVENT_STARTTLS: STARTTLS; reply (accept, or 454 4.7.0)
 * @MH_SMTP_EVENT_AUTH: AUTH; reply with 334 + challenge, 235, or a failure
 * @MH_SMTP_EVENT_AUTH_RESPONSE: a SASL response line; reply as for AUTH
 * @MH_SMTP_EVENT_AUTH_ABORTED: the exchange ended without the host
 *   (client "*", bad base64, over-long line) (notice)
 * @MH_SMTP_EVENT_TIMEOUT: the client was silent too long; the engine
 *   queued 421 and is closing (notice)
 * @MH_SMTP_EVENT_ABUSE: a limit was broken (see #MhSmtpAbuse); the engine
 *   queued 421 and is closing (notice)
 * @MH_SMTP_EVENT_QUIT: the client said QUIT; 221 is queued and the engine
 *   is closing (notice)
 *
 * What an #MhSmtpEvent reports.
 */
typedef enum
{
  MH_SMTP_EVENT_NONE,
  MH_SMTP_EVENT_HELO,
  MH_SMTP_EVENT_MAIL,
  MH_SMTP_EVENT_RCPT,
  MH_SMTP_EVENT_DATA,
  MH_SMTP_EVENT_DATA_CHUNK,
  MH_SMTP_EVENT_DATA_END,
  MH_SMTP_EVENT_DATA_ABORTED,
  MH_SMTP_EVENT_RSET,
  MH_SMTP_EVENT_STARTTLS,
  MH_SMTP_EVENT_AUTH,
  MH_SMTP_EVENT_AUTH_RESPONSE,
  MH_SMTP_EVENT_AUTH_ABORTED,
  MH_SMTP_EVENT_TIMEOUT,
  MH_SMTP_EVENT_ABUSE,
  MH_SMTP_EVENT_QUIT,
} MhSmtpEventType;

/**
 * MhSmtpHeloKind:
 * @MH_SMTP_HELO_HELO: HELO (no extensions)
 * @MH_SMTP_HELO_EHLO: EHLO
 * @MH_SMTP_HELO_LHLO: LHLO (LMTP)
 *
 * Which greeting command the client used.
 */
typedef enum
{
  MH_SMTP_HELO_HELO,
  MH_SMTP_HELO_EHLO,
  MH_SMTP_HELO_LHLO,
} MhSmtpHeloKind;

/**
 * MhSmtpBody:
 * @MH_SMTP_BODY_NONE: no BODY= parameter
 * @MH_SMTP_BODY_7BIT: BODY=7BIT
 * @MH_SMTP_BODY_8BITMIME: BODY=8BITMIME (RFC 6152)
 * @MH_SMTP_BODY_BINARYMIME: BODY=BINARYMIME (RFC 3030)
 *
 * The MAIL BODY= parameter.
 */
typedef enum
{
  MH_SMTP_BODY_NONE,
  MH_SMTP_BODY_7BIT,
  MH_SMTP_BODY_8BITMIME,
  MH_SMTP_BODY_BINARYMIME,
} MhSmtpBody;

/**
 * MhSmtpDsnRet:
 * @MH_SMTP_DSN_RET_NONE: no RET= parameter
 * @MH_SMTP_DSN_RET_FULL: RET=FULL
 * @MH_SMTP_DSN_RET_HDRS: RET=HDRS
 *
 * The MAIL RET= parameter (RFC 3461 4.3).
 */
typedef enum
{
  MH_SMTP_DSN_RET_NONE,
  MH_SMTP_DSN_RET_FULL,
  MH_SMTP_DSN_RET_HDRS,
} MhSmtpDsnRet;

/**
 * MhSmtpDsnNotify:
 * @MH_SMTP_DSN_NOTIFY_NONE: no NOTIFY= parameter
 * @MH_SMTP_DSN_NOTIFY_NEVER: NOTIFY=NEVER
 * @MH_SMTP_DSN_NOTIFY_SUCCESS: SUCCESS
 * @MH_SMTP_DSN_NOTIFY_FAILURE: FAILURE
 * @MH_SMTP_DSN_NOTIFY_DELAY: DELAY
 *
 * The RCPT NOTIFY= parameter (RFC 3461 4.1); NEVER comes alone.
 */
typedef enum
{
  MH_SMTP_DSN_NOTIFY_NONE = 0,
  MH_SMTP_DSN_NOTIFY_NEVER = 1 << 0,
  MH_SMTP_DSN_NOTIFY_SUCCESS = 1 << 1,
  MH_SMTP_DSN_NOTIFY_FAILURE = 1 << 2,
  MH_SMTP_DSN_NOTIFY_DELAY = 1 << 3,
} MhSmtpDsnNotify;

/**
 * MhSmtpDataError:
 * @MH_SMTP_DATA_TOO_BIG: over #MhSmtpLimits.max_message_size (552 5.3.4)
 * @MH_SMTP_DATA_LINE_TOO_LONG: a text line over max_data_line (554 5.6.0)
 * @MH_SMTP_DATA_BARE_LF: a LF without CR before it (550 5.5.2)
 * @MH_SMTP_DATA_BARE_CR: a CR without LF after it (550 5.5.2)
 * @MH_SMTP_DATA_CLOSED: the engine is closing (timeout, abuse, shutdown,
 *   QUIT) in the middle of the message
 * @MH_SMTP_DATA_RESET: RSET or EHLO between BDAT chunks
 *
 * Why a message was aborted (%MH_SMTP_EVENT_DATA_ABORTED).
 */
typedef enum
{
  MH_SMTP_DATA_TOO_BIG,
  MH_SMTP_DATA_LINE_TOO_LONG,
  MH_SMTP_DATA_BARE_LF,
  MH_SMTP_DATA_BARE_CR,
  MH_SMTP_DATA_CLOSED,
  MH_SMTP_DATA_RESET,
} MhSmtpDataError;

/**
 * MhSmtpAuthAbort:
 * @MH_SMTP_AUTH_CANCELLED: the client sent "*" (501 5.0.0)
 * @MH_SMTP_AUTH_BAD_BASE64: a response that is not base64 (501 5.5.2)
 * @MH_SMTP_AUTH_LINE_TOO_LONG: over max_auth_line (500 5.5.6)
 * @MH_SMTP_AUTH_BAD_LINE: a bare CR/LF or NUL in the line (500 5.5.2)
 *
 * Why an AUTH exchange ended without the host (%MH_SMTP_EVENT_AUTH_ABORTED).
 */
typedef enum
{
  MH_SMTP_AUTH_CANCELLED,
  MH_SMTP_AUTH_BAD_BASE64,
  MH_SMTP_AUTH_LINE_TOO_LONG,
  MH_SMTP_AUTH_BAD_LINE,
} MhSmtpAuthAbort;

/**
 * MhSmtpAbuse:
 * @MH_SMTP_ABUSE_TOO_MANY_ERRORS: max_errors 4xx/5xx replies
 * @MH_SMTP_ABUSE_TOO_MANY_BAD_COMMANDS: max_bad_commands unknown or
 *   invalid commands
 * @MH_SMTP_ABUSE_TOO_MANY_JUNK_COMMANDS: max_junk_commands NOOP/RSET/...
 * @MH_SMTP_ABUSE_FORBIDDEN_COMMAND: an HTTP verb (cross-protocol attack)
 * @MH_SMTP_ABUSE_DESYNC: a BDAT whose size cannot be read: the stream
 *   cannot be followed any more
 *
 * Why the engine closed the session on its own (%MH_SMTP_EVENT_ABUSE).
 */
typedef enum
{
  MH_SMTP_ABUSE_TOO_MANY_ERRORS,
  MH_SMTP_ABUSE_TOO_MANY_BAD_COMMANDS,
  MH_SMTP_ABUSE_TOO_MANY_JUNK_COMMANDS,
  MH_SMTP_ABUSE_FORBIDDEN_COMMAND,
  MH_SMTP_ABUSE_DESYNC,
} MhSmtpAbuse;

/* Every event struct starts with these two fields, so `ev.type` and
 * `ev.any.needs_reply` can be read whatever the event is. */

/**
 * MhSmtpEventAny:
 * @type: the event type
 * @needs_reply: the engine waits for mh_smtp_engine_accept() or
 *   mh_smtp_engine_reply()
 *
 * The fields every event starts with.
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
} MhSmtpEventAny;

/**
 * MhSmtpEventHelo:
 * @type: %MH_SMTP_EVENT_HELO
 * @needs_reply: %TRUE
 * @kind: HELO, EHLO or LHLO
 * @domain: the client's name as given (not verified: RFC 5321 4.1.4
 *   forbids refusing mail because it does not match)
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  MhSmtpHeloKind kind;
  const char *domain;
} MhSmtpEventHelo;

/**
 * MhSmtpEventMail:
 * @type: %MH_SMTP_EVENT_MAIL
 * @needs_reply: %TRUE
 * @reverse_path: the sender; is_null for `<>`
 * @size: SIZE= (already checked against max_message_size), 0 if absent
 * @body: BODY=
 * @smtputf8: the SMTPUTF8 parameter was given
 * @ret: RET=
 * @envid: (nullable): ENVID= as sent (xtext, RFC 3461 4.4)
 * @auth: (nullable): AUTH= as sent (xtext or "<>", RFC 4954 5)
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  const MhSmtpPath *reverse_path;
  guint64 size;
  MhSmtpBody body;
  gboolean smtputf8;
  MhSmtpDsnRet ret;
  const char *envid;
  const char *auth;
} MhSmtpEventMail;

/**
 * MhSmtpEventRcpt:
 * @type: %MH_SMTP_EVENT_RCPT
 * @needs_reply: %TRUE
 * @forward_path: the recipient
 * @notify: NOTIFY= flags (#MhSmtpDsnNotify)
 * @orcpt_type: (nullable): ORCPT= address type ("rfc822", "utf-8")
 * @orcpt: (nullable): ORCPT= address as sent (xtext)
 * @n_accepted: recipients accepted so far in this transaction
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  const MhSmtpPath *forward_path;
  guint notify;
  const char *orcpt_type;
  const char *orcpt;
  guint n_accepted;
} MhSmtpEventRcpt;

/**
 * MhSmtpEventData:
 * @type: %MH_SMTP_EVENT_DATA
 * @needs_reply: %TRUE
 * @bdat: the data comes by BDAT chunks (RFC 3030) rather than DATA
 * @n_recipients: accepted recipients of the transaction
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  gboolean bdat;
  guint n_recipients;
} MhSmtpEventData;

/**
 * MhSmtpEventDataChunk:
 * @type: %MH_SMTP_EVENT_DATA_CHUNK
 * @needs_reply: %FALSE
 * @data: (array length=len): message octets, dot-unstuffed, CRLF line
 *   ends; borrowed until the next call of next_event() or feed()
 * @len: their number (never 0)
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  const guint8 *data;
  gsize len;
} MhSmtpEventDataChunk;

/**
 * MhSmtpEventDataEnd:
 * @type: %MH_SMTP_EVENT_DATA_END
 * @needs_reply: %TRUE
 * @size: octets of message handed over in chunks
 * @n_replies: replies the engine expects: 1 for SMTP, the number of
 *   accepted recipients for LMTP (in RCPT order)
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  guint64 size;
  guint n_replies;
} MhSmtpEventDataEnd;

/**
 * MhSmtpEventDataAborted:
 * @type: %MH_SMTP_EVENT_DATA_ABORTED
 * @needs_reply: %FALSE
 * @reason: why; the engine has answered the client
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  MhSmtpDataError reason;
} MhSmtpEventDataAborted;

/**
 * MhSmtpEventAuth:
 * @type: %MH_SMTP_EVENT_AUTH or %MH_SMTP_EVENT_AUTH_RESPONSE
 * @needs_reply: %TRUE
 * @mechanism: the mechanism, upper case, one of those offered (for
 *   AUTH_RESPONSE, the one of the exchange)
 * @response: (nullable): the base64 text as sent; for AUTH, %NULL when
 *   there was no initial response and "" for "=" (an empty one)
 * @decoded: (array length=decoded_len) (nullable): @response decoded;
 *   wiped when the engine moves on
 * @decoded_len: its length
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  const char *mechanism;
  const char *response;
  const guint8 *decoded;
  gsize decoded_len;
} MhSmtpEventAuth;

/**
 * MhSmtpEventAuthAborted:
 * @type: %MH_SMTP_EVENT_AUTH_ABORTED
 * @needs_reply: %FALSE
 * @reason: why
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  MhSmtpAuthAbort reason;
} MhSmtpEventAuthAborted;

/**
 * MhSmtpEventTimeout:
 * @type: %MH_SMTP_EVENT_TIMEOUT
 * @needs_reply: %FALSE
 * @in_data: the client stalled inside a message
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  gboolean in_data;
} MhSmtpEventTimeout;

/**
 * MhSmtpEventAbuse:
 * @type: %MH_SMTP_EVENT_ABUSE
 * @needs_reply: %FALSE
 * @reason: the limit broken
 */
typedef struct
{
  MhSmtpEventType type;
  gboolean needs_reply;
  MhSmtpAbuse reason;
} MhSmtpEventAbuse;

/**
 * MhSmtpEvent:
 * @type: what happened; selects the member to read
 * @any: the common fields
 * @helo: %MH_SMTP_EVENT_HELO
 * @mail: %MH_SMTP_EVENT_MAIL
 * @rcpt: %MH_SMTP_EVENT_RCPT
 * @data: %MH_SMTP_EVENT_DATA
 * @chunk: %MH_SMTP_EVENT_DATA_CHUNK
 * @end: %MH_SMTP_EVENT_DATA_END
 * @aborted: %MH_SMTP_EVENT_DATA_ABORTED
 * @auth: %MH_SMTP_EVENT_AUTH and %MH_SMTP_EVENT_AUTH_RESPONSE
 * @auth_aborted: %MH_SMTP_EVENT_AUTH_ABORTED
 * @timeout: %MH_SMTP_EVENT_TIMEOUT
 * @abuse: %MH_SMTP_EVENT_ABUSE
 *
 * One event, a tagged union (the SDL_Event / nghttp2_frame pattern):
 * read @type, then the member it names. RSET, STARTTLS and QUIT carry
 * only the common fields. Every pointer is borrowed from the engine:
 * valid until the next call of mh_smtp_engine_next_event() (and, for
 * @chunk data, of mh_smtp_engine_feed()); copy what you keep.
 */
typedef union
{
  MhSmtpEventType type;
  MhSmtpEventAny any;
  MhSmtpEventHelo helo;
  MhSmtpEventMail mail;
  MhSmtpEventRcpt rcpt;
  MhSmtpEventData data;
  MhSmtpEventDataChunk chunk;
  MhSmtpEventDataEnd end;
  MhSmtpEventDataAborted aborted;
  MhSmtpEventAuth auth;
  MhSmtpEventAuthAborted auth_aborted;
  MhSmtpEventTimeout timeout;
  MhSmtpEventAbuse abuse;
} MhSmtpEvent;

/**
 * MhSmtpEngine:
 *
 * One SMTP/LMTP server session. Reference counted; see the top of
 * smtp.h for the drive loop.
 */
typedef struct _MhSmtpEngine MhSmtpEngine;

MH_API GType mh_smtp_engine_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SMTP_ENGINE (mh_smtp_engine_get_type ())

/**
 * mh_smtp_engine_new:
 * @role: SMTP, submission or LMTP
 * @limits: (nullable): limits; %NULL or zero fields mean the defaults
 *
 * Creates an engine that has said nothing yet: set extensions, AUTH
 * mechanisms and policy, then call mh_smtp_engine_greet(). Input fed
 * before the greeting is kept and handled after it.
 *
 * Returns: (transfer full): the engine; release with
 *   mh_smtp_engine_unref().
 */
MH_API MhSmtpEngine *mh_smtp_engine_new (MhSmtpRole role,
                                         const MhSmtpLimits *limits);

/**
 * mh_smtp_engine_ref: (skip)
 * @e: an engine
 *
 * Returns: (transfer full): @e
 */
MH_API MhSmtpEngine *mh_smtp_engine_ref (MhSmtpEngine *e);

/**
 * mh_smtp_engine_unref: (skip)
 * @e: (nullable): an engine
 *
 * Drops a reference; the last one frees the engine and wipes any AUTH
 * data it held. NULL-safe.
 */
MH_API void mh_smtp_engine_unref (MhSmtpEngine *e);

/**
 * mh_smtp_engine_set_extensions:
 * @e: an engine
 * @extensions: what to advertise and accept
 *
 * The default is %MH_SMTP_EXT_DEFAULT. Takes effect at the next EHLO;
 * call it before the greeting.
 */
MH_API void mh_smtp_engine_set_extensions (MhSmtpEngine *e,
                                           MhSmtpExtensions extensions);

/**
 * mh_smtp_engine_set_auth_mechanisms:
 * @e: an engine
 * @mechanisms: (array zero-terminated=1) (nullable): SASL mechanism names
 *   ("PLAIN", "LOGIN", ...), copied; %NULL or empty: no AUTH
 *
 * Which mechanisms EHLO advertises and AUTH accepts (the host's lib/auth
 * must implement them).
 */
MH_API void mh_smtp_engine_set_auth_mechanisms (MhSmtpEngine *e,
                                                const char *const *mechanisms);

/**
 * mh_smtp_engine_set_policy:
 * @e: an engine
 * @policy: #MhSmtpPolicy flags
 *
 * Replaces the policy. The default is %MH_SMTP_POLICY_NONE, or
 * %MH_SMTP_POLICY_REQUIRE_AUTH for %MH_SMTP_ROLE_SUBMISSION.
 */
MH_API void mh_smtp_engine_set_policy (MhSmtpEngine *e, MhSmtpPolicy policy);

/**
 * mh_smtp_engine_set_tls_active:
 * @e: an engine
 * @active: the connection is already encrypted (implicit TLS, port 465)
 *
 * Call before the greeting. After STARTTLS use
 * mh_smtp_engine_starttls_done() instead.
 */
MH_API void mh_smtp_engine_set_tls_active (MhSmtpEngine *e,
                                           gboolean active);

/**
 * mh_smtp_engine_greet:
 * @e: an engine
 * @hostname: this server's name, used in the greeting, the EHLO reply,
 *   221 and 421 (copied)
 * @code: 220 to serve; 554 to refuse service but stay polite (RFC 5321
 *   3.1: every command but QUIT then gets 503); 421 to close at once
 * @text: (nullable): text after the hostname; %NULL for "ESMTP" (or
 *   "LMTP")
 *
 * Queues the greeting. Call exactly once, first.
 */
MH_API void mh_smtp_engine_greet (MhSmtpEngine *e, const char *hostname,
                                  guint code, const char *text);

/**
 * mh_smtp_engine_feed:
 * @e: an engine
 * @buf: (array length=len) (element-type guint8): bytes from the client
 * @len: their number
 *
 * Hands the engine bytes read from the client. It only stores them;
 * mh_smtp_engine_next_event() parses. The engine keeps at most a bounded
 * amount of unparsed input (a few command lines and 64 KiB): keep the
 * bytes it did not take and offer them again after draining events.
 * Once closing, input is discarded (and counted as taken).
 *
 * Returns: how many bytes of @buf were taken (0 to @len).
 */
MH_API gsize mh_smtp_engine_feed (MhSmtpEngine *e, const guint8 *buf,
                                  gsize len);

/**
 * mh_smtp_engine_want_read:
 * @e: an engine
 *
 * Returns: %TRUE when feed() would take bytes now; %FALSE while the input
 *   buffer is full, during a TLS handshake, or when closing. Stop reading
 *   the socket meanwhile (back-pressure, as nghttp2's want_read).
 */
MH_API gboolean mh_smtp_engine_want_read (MhSmtpEngine *e);

/**
 * mh_smtp_engine_next_event:
 * @e: an engine
 * @event_out: (out caller-allocates): the event
 *
 * Parses buffered input until there is an event, answering on its own
 * whatever needs no host (NOOP, syntax errors, ...). Call it until it
 * returns %FALSE after each feed() and after each reply. It returns
 * %FALSE while an event waits for its reply, when more input is needed,
 * while the unsent output exceeds a bound (flush it), and once closing
 * notices are drained.
 *
 * Returns: %TRUE if @event_out was filled.
 */
MH_API gboolean mh_smtp_engine_next_event (MhSmtpEngine *e,
                                           MhSmtpEvent *event_out);

/**
 * mh_smtp_engine_accept:
 * @e: an engine with an event that needs a reply
 *
 * The usual positive answer: 250 with the capability list (HELO), 250
 * 2.1.0 (MAIL), 250 2.1.5 (RCPT), 354 or a silent go-ahead for BDAT
 * (DATA), 250 2.0.0 (DATA_END; for LMTP, one reply), 220 2.0.0 (STARTTLS),
 * 235 2.7.0 (AUTH, AUTH_RESPONSE). Calling it with no event waiting is a
 * programmer error.
 */
MH_API void mh_smtp_engine_accept (MhSmtpEngine *e);

/**
 * mh_smtp_engine_reply:
 * @e: an engine with an event that needs a reply
 * @code: the reply code, 200-599
 * @enhanced: (nullable): an RFC 3463 code ("5.1.1") whose class matches
 *   @code; %NULL picks one (x.0.0, or the event's usual positive code).
 *   Sent only when ENHANCEDSTATUSCODES is enabled.
 * @text: (nullable): human-readable text; '\n' separates the lines of a
 *   multi-line reply. Control characters become '?', and lines are cut
 *   to fit RFC 5321's 512-octet reply line. For 334 it is the base64
 *   challenge ("" for none).
 *
 * Answers the waiting event. A code below 400 means yes: 2xx (HELO,
 * MAIL, RCPT, DATA_END, AUTH 235), 354 or 2xx (DATA), 220 (STARTTLS), 334
 * (AUTH, AUTH_RESPONSE: a challenge). 4xx and 5xx refuse and count as
 * errors. For LMTP DATA_END call it once per recipient. A positive code
 * the event cannot take (354 to RCPT) is a programmer error. Once the
 * engine is closing (timeout, shutdown), replies are ignored.
 */
MH_API void mh_smtp_engine_reply (MhSmtpEngine *e, guint code,
                                  const char *enhanced, const char *text);

/**
 * mh_smtp_engine_starttls_done:
 * @e: an engine whose STARTTLS the host accepted
 *
 * The TLS handshake succeeded: the engine resets to the state after the
 * greeting (RFC 3207 4.2: HELO, transaction and AUTH forgotten), marks
 * TLS active, stops advertising STARTTLS and reads input again (now the
 * decrypted stream).
 *
 * Returns: how many plaintext bytes the client had sent after STARTTLS
 *   and the engine discarded; more than 0 is a command-injection attempt
 *   (CVE-2011-0411) worth logging.
 */
MH_API guint64 mh_smtp_engine_starttls_done (MhSmtpEngine *e);

/**
 * mh_smtp_engine_peek_output:
 * @e: an engine
 * @out: (out) (transfer none): the bytes to send, valid until the next
 *   call on @e other than peek_output()
 *
 * Returns: how many bytes are at *@out (0: nothing to send).
 */
MH_API gsize mh_smtp_engine_peek_output (MhSmtpEngine *e,
                                         const guint8 **out);

/**
 * mh_smtp_engine_consume_output:
 * @e: an engine
 * @n: bytes sent, at most what peek_output() returned
 *
 * Marks @n bytes of output as written.
 */
MH_API void mh_smtp_engine_consume_output (MhSmtpEngine *e, gsize n);

/**
 * mh_smtp_engine_take_output:
 * @e: an engine
 *
 * peek_output() and consume_output() of all of it in one call, for
 * bindings.
 *
 * Returns: (transfer full): all pending output (maybe empty).
 */
MH_API GBytes *mh_smtp_engine_take_output (MhSmtpEngine *e);

/**
 * mh_smtp_engine_tick:
 * @e: an engine
 * @now_us: a monotonic time in microseconds (g_get_monotonic_time())
 *
 * Checks the timeouts. The first call starts the clock; time is measured
 * from the last tick that saw client input, so tick at least at the
 * deadline returned, and it is wise to tick after each feed.
 *
 * Returns: the time (same clock) to tick again at, or -1 when no timeout
 *   runs (closing, waiting for the host, TLS handshake).
 */
MH_API gint64 mh_smtp_engine_tick (MhSmtpEngine *e, gint64 now_us);

/**
 * mh_smtp_engine_shutdown:
 * @e: an engine
 * @text: (nullable): why, e.g. "Server shutting down"
 *
 * Queues "421 4.3.2 hostname text" and closes (a graceful stop, or the
 * host's own reason). An open message ends in DATA_ABORTED. An event the
 * host has not answered yet keeps its data until the engine is freed;
 * the late answer is ignored.
 */
MH_API void mh_smtp_engine_shutdown (MhSmtpEngine *e, const char *text);

/**
 * mh_smtp_engine_is_closing:
 * @e: an engine
 *
 * Returns: %TRUE when no more input will be read: send what
 *   peek_output() has, then close the connection.
 */
MH_API gboolean mh_smtp_engine_is_closing (MhSmtpEngine *e);

/**
 * mh_smtp_engine_is_closed:
 * @e: an engine
 *
 * Returns: %TRUE when closing and all output was consumed.
 */
MH_API gboolean mh_smtp_engine_is_closed (MhSmtpEngine *e);

/**
 * mh_smtp_engine_get_role:
 * @e: an engine
 *
 * Returns: the role given to mh_smtp_engine_new().
 */
MH_API MhSmtpRole mh_smtp_engine_get_role (MhSmtpEngine *e);

/**
 * mh_smtp_engine_get_helo:
 * @e: an engine
 *
 * Returns: (transfer none) (nullable): the accepted HELO/EHLO/LHLO name,
 *   valid until the next call of next_event().
 */
MH_API const char *mh_smtp_engine_get_helo (MhSmtpEngine *e);

/**
 * mh_smtp_engine_is_tls_active:
 * @e: an engine
 *
 * Returns: %TRUE after set_tls_active() or starttls_done().
 */
MH_API gboolean mh_smtp_engine_is_tls_active (MhSmtpEngine *e);

/**
 * mh_smtp_engine_is_authenticated:
 * @e: an engine
 *
 * Returns: %TRUE after the host answered AUTH with 235 (and until
 *   STARTTLS resets the session).
 */
MH_API gboolean mh_smtp_engine_is_authenticated (MhSmtpEngine *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhSmtpEngine, mh_smtp_engine_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhSmtpPath, mh_smtp_path_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhSmtpLimits, mh_smtp_limits_free)

G_END_DECLS
