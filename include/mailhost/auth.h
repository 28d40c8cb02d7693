/* libmailhost auth: SASL server mechanisms (PLAIN, LOGIN) as sans-I/O
 * state machines, a failure throttle, and an authenticator that checks
 * credentials against the directory.
 *
 * How a protocol layer uses it (SMTP AUTH, IMAP AUTHENTICATE, POP3 AUTH):
 *
 * 1. Advertise mh_authenticator_list_mechanisms (auth, tls). Plaintext
 *    mechanisms (all of them, so far) are offered only over TLS unless
 *    [auth] allow_plaintext is true.
 * 2. On "AUTH <mech> [initial-response]": mh_authenticator_sasl_new () (or
 *    mh_sasl_server_new () after mh_sasl_mechanism_allowed ()), then
 *    mh_sasl_server_start () with the initial response if the client sent
 *    one ("=" means an empty one, RFC 4954 4 / RFC 4959 3).
 * 3. While the status is %MH_SASL_STATUS_CHALLENGE, send
 *    mh_sasl_server_get_challenge () ("334 <b64>" / "+ <b64>") and feed
 *    the client's next line (without CRLF) to mh_sasl_server_feed ().
 * 4. On %MH_SASL_STATUS_DONE, pass mh_sasl_server_get_credentials () to
 *    mh_authenticator_check (); wait the returned delay, then reply.
 * 5. On %MH_SASL_STATUS_FAILED, reply with the error mapped as below.
 *
 * Mapping of #MhAuthError codes to replies:
 *
 * | code                | SMTP (RFC 4954)     | IMAP (RFC 5530)         |
 * |---------------------|---------------------|-------------------------|
 * | FAILED, AUTHZID     | 535 5.7.8           | NO [AUTHENTICATIONFAILED] / [AUTHORIZATIONFAILED] |
 * | DISABLED            | 535 5.7.8           | NO [AUTHORIZATIONFAILED]|
 * | ENCRYPTION_REQUIRED | 538 5.7.11          | NO [PRIVACYREQUIRED]    |
 * | MECHANISM           | 504 5.5.4           | NO [CANNOT]             |
 * | MALFORMED, TOO_LONG, TOO_MANY_STEPS, STATE | 501 5.5.2 | BAD      |
 * | CANCELLED           | 501 5.7.0           | BAD                     |
 * | UNAVAILABLE         | 454 4.7.0           | NO [UNAVAILABLE]        |
 *
 * POP3 (RFC 5034) answers -ERR to all of them ([AUTH] / [SYS/TEMP] for
 * UNAVAILABLE, RFC 3206).
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/directory.h>

G_BEGIN_DECLS

/**
 * MH_AUTH_ERROR:
 *
 * Error domain of lib/auth. Codes are in #MhAuthError.
 */
#define MH_AUTH_ERROR (mh_auth_error_quark ())
MH_API GQuark mh_auth_error_quark (void);

/**
 * MhAuthError:
 * @MH_AUTH_ERROR_FAILED: wrong user name or password (the two are never
 *   told apart, so a stranger cannot probe which accounts exist)
 * @MH_AUTH_ERROR_MECHANISM: the SASL mechanism is not known
 * @MH_AUTH_ERROR_ENCRYPTION_REQUIRED: a plaintext mechanism was asked for
 *   on a connection without TLS while [auth] allow_plaintext is false
 * @MH_AUTH_ERROR_MALFORMED: a client message is not what the mechanism
 *   expects: bad base64, missing NUL separators, empty user name or
 *   password, invalid UTF-8, a NUL or control character inside a field
 * @MH_AUTH_ERROR_TOO_LONG: a line or a decoded field exceeds its limit
 * @MH_AUTH_ERROR_TOO_MANY_STEPS: the exchange needed more challenges than
 *   #MhSaslLimits.max_steps allows
 * @MH_AUTH_ERROR_CANCELLED: the client sent "*" (RFC 4954 4, RFC 3501
 *   6.2.2)
 * @MH_AUTH_ERROR_STATE: a line was fed to an exchange that has already
 *   finished (done or failed)
 * @MH_AUTH_ERROR_AUTHZID: the client asked to act as another identity
 *   (an authorization identity different from the authentication one);
 *   proxy authorization is not supported
 * @MH_AUTH_ERROR_DISABLED: the account, or the protocol for it, is
 *   disabled
 * @MH_AUTH_ERROR_UNAVAILABLE: the directory could not be read; the
 *   client may retry later
 *
 * Codes in %MH_AUTH_ERROR.
 */
typedef enum
{
  MH_AUTH_ERROR_FAILED,
  MH_AUTH_ERROR_MECHANISM,
  MH_AUTH_ERROR_ENCRYPTION_REQUIRED,
  MH_AUTH_ERROR_MALFORMED,
  MH_AUTH_ERROR_TOO_LONG,
  MH_AUTH_ERROR_TOO_MANY_STEPS,
  MH_AUTH_ERROR_CANCELLED,
  MH_AUTH_ERROR_STATE,
  MH_AUTH_ERROR_AUTHZID,
  MH_AUTH_ERROR_DISABLED,
  MH_AUTH_ERROR_UNAVAILABLE,
} MhAuthError;

MH_API GType mh_auth_error_get_type (void) G_GNUC_CONST;
#define MH_TYPE_AUTH_ERROR (mh_auth_error_get_type ())

/* ---- Mechanisms ------------------------------------------------------- */

/**
 * mh_sasl_mechanism_is_known:
 * @name: a mechanism name such as "PLAIN" (case-insensitive)
 *
 * Returns: %TRUE if this library implements @name.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_sasl_mechanism_is_known (const char *name);

/**
 * mh_sasl_mechanism_is_plaintext:
 * @name: a mechanism name (case-insensitive)
 *
 * Returns: %TRUE if @name sends the password itself over the wire (PLAIN,
 *   LOGIN), so it must be offered only over TLS unless configured
 *   otherwise. %FALSE for unknown names.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_sasl_mechanism_is_plaintext (const char *name);

/**
 * mh_sasl_mechanism_allowed:
 * @name: a mechanism name (case-insensitive)
 * @tls: whether the connection is protected by TLS (implicit or after
 *   STARTTLS)
 * @allow_plaintext: the value of [auth] allow_plaintext
 *
 * The rule every protocol layer applies before advertising or starting a
 * mechanism. IMAP LOGIN and POP3 USER/PASS are plaintext too: ask with
 * "PLAIN" for them (RFC 3501 LOGINDISABLED).
 *
 * Returns: %TRUE if @name is known and may be used on this connection.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_sasl_mechanism_allowed (const char *name, gboolean tls,
                                           gboolean allow_plaintext);

/**
 * mh_sasl_mechanisms_list:
 * @tls: whether the connection is protected by TLS
 * @allow_plaintext: the value of [auth] allow_plaintext
 *
 * The mechanisms to advertise (EHLO AUTH, IMAP CAPABILITY AUTH=, POP3
 * CAPA SASL), strongest first, upper case.
 *
 * Returns: (transfer full) (array zero-terminated=1): the names, possibly
 *   none; free with g_strfreev().
 *
 * Thread safety: safe.
 */
MH_API char **mh_sasl_mechanisms_list (gboolean tls,
                                       gboolean allow_plaintext);

/* ---- Credentials ------------------------------------------------------ */

/**
 * MhSaslCredentials:
 *
 * What a finished SASL exchange (or an IMAP LOGIN / POP3 USER+PASS
 * command) yields: an optional authorization identity, the
 * authentication identity and the password, each valid UTF-8 without NUL
 * or control characters (the password may hold controls other than
 * NUL), within the limits. The password is wiped from memory when the
 * credentials are freed.
 *
 * Thread safety: immutable; may be read from any thread.
 */
typedef struct _MhSaslCredentials MhSaslCredentials;

MH_API GType mh_sasl_credentials_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SASL_CREDENTIALS (mh_sasl_credentials_get_type ())

/**
 * mh_sasl_credentials_new:
 * @authzid: (nullable): authorization identity; %NULL or "" for none
 * @authcid: authentication identity (the user name)
 * @password: the password
 * @error: return location for a #GError, or %NULL
 *
 * Builds credentials from separate strings, validated as a SASL
 * exchange validates them (used for IMAP LOGIN and POP3 USER+PASS).
 * Identities may be up to %MH_LIMIT_SASL_ID_MAX bytes and the password
 * up to %MH_LIMIT_PASSWORD_MAX.
 *
 * Returns: (transfer full) (nullable): the credentials, or %NULL with
 *   @error in %MH_AUTH_ERROR (MALFORMED, TOO_LONG).
 *
 * Thread safety: safe.
 */
MH_API MhSaslCredentials *mh_sasl_credentials_new (const char *authzid,
                                                   const char *authcid,
                                                   const char *password,
                                                   GError **error);

/**
 * mh_sasl_credentials_copy:
 * @creds: credentials
 *
 * Returns: (transfer full): a deep copy.
 *
 * Thread safety: safe.
 */
MH_API MhSaslCredentials *mh_sasl_credentials_copy (
    const MhSaslCredentials *creds);

/**
 * mh_sasl_credentials_free: (skip)
 * @creds: (nullable) (transfer full): credentials
 *
 * Wipes every field (mh_core__wipe semantics) and frees. NULL-safe.
 */
MH_API void mh_sasl_credentials_free (MhSaslCredentials *creds);

/**
 * mh_sasl_credentials_get_authzid:
 * @creds: credentials
 *
 * Returns: (transfer none) (nullable): the authorization identity, or
 *   %NULL when the client did not ask for one (an empty PLAIN authzid
 *   is %NULL too). Valid as long as @creds.
 *
 * Thread safety: safe.
 */
MH_API const char *mh_sasl_credentials_get_authzid (
    const MhSaslCredentials *creds);

/**
 * mh_sasl_credentials_get_authcid:
 * @creds: credentials
 *
 * Returns: (transfer none): the authentication identity (never empty).
 *   Valid as long as @creds.
 *
 * Thread safety: safe.
 */
MH_API const char *mh_sasl_credentials_get_authcid (
    const MhSaslCredentials *creds);

/**
 * mh_sasl_credentials_get_password:
 * @creds: credentials
 *
 * Returns: (transfer none): the password (never empty). Valid as long as
 *   @creds; never log it.
 *
 * Thread safety: safe.
 */
MH_API const char *mh_sasl_credentials_get_password (
    const MhSaslCredentials *creds);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhSaslCredentials, mh_sasl_credentials_free)

/* ---- SASL server exchange --------------------------------------------- */

/**
 * MhSaslLimits:
 * @version: 1
 * @max_line: longest base64 line accepted, CRLF excluded (0:
 *   %MH_LIMIT_SASL_LINE_MAX)
 * @max_id: longest decoded authcid or authzid in bytes (0:
 *   %MH_LIMIT_SASL_ID_MAX)
 * @max_password: longest decoded password in bytes (0:
 *   %MH_LIMIT_PASSWORD_MAX)
 * @max_steps: most challenges the server sends in one exchange (0:
 *   %MH_LIMIT_SASL_STEPS_MAX)
 *
 * Limits of one exchange; 0 means the default.
 */
typedef struct
{
  guint version;
  guint max_line;
  guint max_id;
  guint max_password;
  guint max_steps;
} MhSaslLimits;

MH_API GType mh_sasl_limits_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SASL_LIMITS (mh_sasl_limits_get_type ())

/**
 * mh_sasl_limits_copy:
 * @limits: limits
 *
 * Returns: (transfer full): a copy; free with mh_sasl_limits_free().
 *
 * Thread safety: safe.
 */
MH_API MhSaslLimits *mh_sasl_limits_copy (const MhSaslLimits *limits);
/**
 * mh_sasl_limits_free: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_sasl_limits_free (MhSaslLimits *limits);

/**
 * MhSaslStatus:
 * @MH_SASL_STATUS_CHALLENGE: send mh_sasl_server_get_challenge() and feed
 *   the client's answer
 * @MH_SASL_STATUS_DONE: the exchange finished; the credentials are ready
 * @MH_SASL_STATUS_FAILED: the exchange failed (error set); only
 *   mh_sasl_server_unref() is useful now
 *
 * Where an exchange stands after mh_sasl_server_start() or
 * mh_sasl_server_feed().
 */
typedef enum
{
  MH_SASL_STATUS_CHALLENGE,
  MH_SASL_STATUS_DONE,
  MH_SASL_STATUS_FAILED,
} MhSaslStatus;

MH_API GType mh_sasl_status_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SASL_STATUS (mh_sasl_status_get_type ())

/**
 * MhSaslServer:
 *
 * The server side of one SASL exchange, sans-I/O: lines in, challenges
 * and credentials out. It only decodes and validates; checking the
 * password is mh_authenticator_check()'s job.
 *
 * Thread safety: one exchange belongs to one thread at a time.
 */
typedef struct _MhSaslServer MhSaslServer;

MH_API GType mh_sasl_server_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SASL_SERVER (mh_sasl_server_get_type ())

/**
 * mh_sasl_server_new:
 * @mechanism: "PLAIN" or "LOGIN" (case-insensitive)
 * @limits: (nullable): limits, or %NULL for the defaults
 * @error: return location for a #GError, or %NULL
 *
 * Whether the mechanism may be used on this connection (TLS) is the
 * caller's question: see mh_sasl_mechanism_allowed() or
 * mh_authenticator_sasl_new().
 *
 * Returns: (transfer full) (nullable): a new exchange, or %NULL with
 *   @error in %MH_AUTH_ERROR (MECHANISM).
 *
 * Thread safety: safe.
 */
MH_API MhSaslServer *mh_sasl_server_new (const char *mechanism,
                                         const MhSaslLimits *limits,
                                         GError **error);

/**
 * mh_sasl_server_ref: (skip)
 */
MH_API MhSaslServer *mh_sasl_server_ref (MhSaslServer *sasl);
/**
 * mh_sasl_server_unref: (skip)
 * @sasl: (nullable) (transfer full): an exchange
 *
 * Drops a reference; the last one wipes the decoded secrets. NULL-safe.
 */
MH_API void mh_sasl_server_unref (MhSaslServer *sasl);

/**
 * mh_sasl_server_get_mechanism:
 * @sasl: an exchange
 *
 * Returns: (transfer none): the mechanism's canonical (upper-case) name.
 *
 * Thread safety: one exchange is used by one thread at a time.
 */
MH_API const char *mh_sasl_server_get_mechanism (MhSaslServer *sasl);

/**
 * mh_sasl_server_start:
 * @sasl: a new exchange
 * @initial_response: (nullable) (array length=len) (element-type guint8):
 *   the SASL-IR initial response as received (base64 text, or "=" for
 *   an empty response), or %NULL if the client sent none
 * @len: length of @initial_response in bytes
 * @error: return location for a #GError, or %NULL
 *
 * Begins the exchange. Without an initial response PLAIN asks with an
 * empty challenge and LOGIN with "Username:" (base64 "VXNlcm5hbWU6").
 * Calling it twice is a programmer error.
 *
 * Returns: the status; on %MH_SASL_STATUS_FAILED @error is set in
 *   %MH_AUTH_ERROR (MALFORMED, TOO_LONG, TOO_MANY_STEPS, CANCELLED).
 *
 * Thread safety: one exchange is used by one thread at a time.
 */
MH_API MhSaslStatus mh_sasl_server_start (MhSaslServer *sasl,
                                          const char *initial_response,
                                          gsize len, GError **error);

/**
 * mh_sasl_server_feed:
 * @sasl: an exchange waiting for an answer
 * @line: (array length=len) (element-type guint8): the client's line as
 *   received, base64 text without the CRLF; an empty line is an empty
 *   response, "*" cancels
 * @len: length of @line in bytes
 * @error: return location for a #GError, or %NULL
 *
 * Feeds one client response. @line is not kept; the caller should wipe
 * its own copy (it holds the encoded password).
 *
 * Returns: the status; on %MH_SASL_STATUS_FAILED @error is set in
 *   %MH_AUTH_ERROR (MALFORMED, TOO_LONG, TOO_MANY_STEPS, CANCELLED, or
 *   STATE when the exchange had already finished).
 *
 * Thread safety: one exchange is used by one thread at a time.
 */
MH_API MhSaslStatus mh_sasl_server_feed (MhSaslServer *sasl,
                                         const char *line, gsize len,
                                         GError **error);

/**
 * mh_sasl_server_get_challenge:
 * @sasl: an exchange
 *
 * Returns: (transfer none): the challenge to send, base64 text ("" for an
 *   empty challenge: send "334 " / "+ "), when the last status was
 *   %MH_SASL_STATUS_CHALLENGE; "" otherwise. Valid until the next
 *   _start or _feed.
 *
 * Thread safety: one exchange is used by one thread at a time.
 */
MH_API const char *mh_sasl_server_get_challenge (MhSaslServer *sasl);

/**
 * mh_sasl_server_get_credentials:
 * @sasl: an exchange
 *
 * Returns: (transfer none) (nullable): the credentials once the status
 *   is %MH_SASL_STATUS_DONE, else %NULL. Valid as long as @sasl.
 *
 * Thread safety: one exchange is used by one thread at a time.
 */
MH_API const MhSaslCredentials *mh_sasl_server_get_credentials (
    MhSaslServer *sasl);

/**
 * mh_sasl_server_get_status:
 * @sasl: an exchange
 *
 * Returns: the status the last _start or _feed returned
 *   (%MH_SASL_STATUS_CHALLENGE before _start).
 *
 * Thread safety: one exchange is used by one thread at a time.
 */
MH_API MhSaslStatus mh_sasl_server_get_status (MhSaslServer *sasl);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhSaslServer, mh_sasl_server_unref)

/* ---- Failure throttle ------------------------------------------------- */

/**
 * MhAuthThrottleSettings:
 * @version: 1
 * @fails_before_delay: failures allowed with no delay ([auth]
 *   fails_before_delay); 0 and 1 both delay the attempt after the
 *   first failure
 * @base_delay_ms: the first delay; it doubles with each further failure
 *   (0: no delay at all)
 * @max_delay_ms: cap of the delay ([auth] max_delay); 0 turns delays off
 * @forget_after_s: failures are forgotten this long after the last one
 *   ([auth] forget_after; 0: %MH_LIMIT_AUTH_FORGET_S)
 * @max_tracked: most IPs and accounts remembered; the least recently
 *   touched is evicted past it (0: %MH_LIMIT_AUTH_TRACKED)
 *
 * Settings of a throttle. Unlike limits structs, 0 is taken literally
 * where it has a meaning; mh_auth_throttle_settings_init() fills in the
 * defaults.
 */
typedef struct
{
  guint version;
  guint fails_before_delay;
  guint base_delay_ms;
  guint max_delay_ms;
  guint forget_after_s;
  guint max_tracked;
} MhAuthThrottleSettings;

MH_API GType mh_auth_throttle_settings_get_type (void) G_GNUC_CONST;
#define MH_TYPE_AUTH_THROTTLE_SETTINGS (mh_auth_throttle_settings_get_type ())

/**
 * mh_auth_throttle_settings_init:
 * @settings: (out caller-allocates): settings to fill
 *
 * Fills @settings with the defaults from limits.h.
 *
 * Thread safety: safe.
 */
MH_API void mh_auth_throttle_settings_init (MhAuthThrottleSettings *settings);
/**
 * mh_auth_throttle_settings_copy:
 * @settings: settings
 *
 * Returns: (transfer full): a copy; free with
 *   mh_auth_throttle_settings_free().
 *
 * Thread safety: safe.
 */
MH_API MhAuthThrottleSettings *mh_auth_throttle_settings_copy (
    const MhAuthThrottleSettings *settings);
/**
 * mh_auth_throttle_settings_free: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_auth_throttle_settings_free (MhAuthThrottleSettings *settings);

/**
 * MhAuthThrottle:
 *
 * Remembers recent authentication failures per client network (IPv4
 * address, IPv6 /64) and per account, and says how long to wait before
 * answering the next attempt: nothing for the first
 * @fails_before_delay failures, then @base_delay_ms doubling up to
 * @max_delay_ms. A stranger's failures never slow the real user down
 * from a network where that user has recently logged in (see
 * lib/auth/throttle.c). No clock inside: callers pass a monotonic time
 * in microseconds (g_get_monotonic_time()).
 *
 * Thread safety: safe; one throttle is shared by every worker thread.
 */
typedef struct _MhAuthThrottle MhAuthThrottle;

MH_API GType mh_auth_throttle_get_type (void) G_GNUC_CONST;
#define MH_TYPE_AUTH_THROTTLE (mh_auth_throttle_get_type ())

/**
 * mh_auth_throttle_new:
 * @settings: (nullable): settings, or %NULL for the defaults
 *
 * Returns: (transfer full): a new, empty throttle.
 */
MH_API MhAuthThrottle *mh_auth_throttle_new (
    const MhAuthThrottleSettings *settings);

/**
 * mh_auth_throttle_ref: (skip)
 */
MH_API MhAuthThrottle *mh_auth_throttle_ref (MhAuthThrottle *throttle);
/**
 * mh_auth_throttle_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_auth_throttle_unref (MhAuthThrottle *throttle);

/**
 * mh_auth_throttle_delay_ms:
 * @throttle: a throttle
 * @peer_ip: (nullable): the client's IP address ("192.0.2.1",
 *   "2001:db8::1"; no port); %NULL or a non-IP (unix socket) shares one
 *   bucket
 * @account: (nullable): the user name the client tries
 * @now_us: monotonic time in microseconds
 *
 * How long to wait before answering this attempt, whatever its outcome
 * (answering failures sooner than successes would tell the attacker
 * early). Changes nothing.
 *
 * Returns: the delay in milliseconds, at most @max_delay_ms.
 *
 * Thread safety: safe.
 */
MH_API guint mh_auth_throttle_delay_ms (MhAuthThrottle *throttle,
                                        const char *peer_ip,
                                        const char *account, gint64 now_us);

/**
 * mh_auth_throttle_record:
 * @throttle: a throttle
 * @peer_ip: (nullable): as for mh_auth_throttle_delay_ms()
 * @account: (nullable): the user name tried
 * @success: whether the credentials were right
 * @now_us: monotonic time in microseconds
 *
 * Records the outcome of an attempt.
 *
 * Thread safety: safe.
 */
MH_API void mh_auth_throttle_record (MhAuthThrottle *throttle,
                                     const char *peer_ip,
                                     const char *account, gboolean success,
                                     gint64 now_us);

/**
 * mh_auth_throttle_get_tracked:
 * @throttle: a throttle
 *
 * Returns: how many IPs and accounts are remembered (never more than
 *   @max_tracked).
 *
 * Thread safety: safe.
 */
MH_API guint mh_auth_throttle_get_tracked (MhAuthThrottle *throttle);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhAuthThrottle, mh_auth_throttle_unref)

/* ---- Authenticator ---------------------------------------------------- */

/**
 * MhAuthenticator:
 *
 * What protocol layers and servers call: the directory, the failure
 * throttle and the [auth] settings in one object.
 *
 * Thread safety: safe; one authenticator is shared by every session and
 * worker thread (the directory and the throttle are thread-safe, the
 * rest is immutable).
 */
typedef struct _MhAuthenticator MhAuthenticator;

MH_API GType mh_authenticator_get_type (void) G_GNUC_CONST;
#define MH_TYPE_AUTHENTICATOR (mh_authenticator_get_type ())

/**
 * mh_authenticator_new:
 * @directory: the directory to check passwords against (a reference is
 *   taken)
 * @config: (nullable): the configuration ([auth] fails_before_delay,
 *   max_delay, forget_after, allow_plaintext), or %NULL for defaults
 *
 * The throttle starts empty; a server that reloads its configuration
 * builds a new authenticator, and forgets recent failures with it.
 *
 * Returns: (transfer full): a new authenticator.
 */
MH_API MhAuthenticator *mh_authenticator_new (MhDirectory *directory,
                                              MhConfig *config);

/**
 * mh_authenticator_ref: (skip)
 */
MH_API MhAuthenticator *mh_authenticator_ref (MhAuthenticator *auth);
/**
 * mh_authenticator_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_authenticator_unref (MhAuthenticator *auth);

/**
 * mh_authenticator_get_throttle:
 * @auth: an authenticator
 *
 * Returns: (transfer none): its throttle, valid as long as @auth.
 *
 * Thread safety: safe.
 */
MH_API MhAuthThrottle *mh_authenticator_get_throttle (MhAuthenticator *auth);

/**
 * mh_authenticator_plaintext_allowed:
 * @auth: an authenticator
 * @tls: whether the connection is protected by TLS
 *
 * Whether a password may be sent in the clear on this connection: PLAIN,
 * LOGIN, IMAP LOGIN (else advertise LOGINDISABLED, RFC 3501 6.2.3),
 * POP3 USER/PASS (else omit USER from CAPA, RFC 2449).
 *
 * Returns: %TRUE if @tls or [auth] allow_plaintext.
 *
 * Thread safety: safe.
 */
MH_API gboolean mh_authenticator_plaintext_allowed (MhAuthenticator *auth,
                                                    gboolean tls);

/**
 * mh_authenticator_list_mechanisms:
 * @auth: an authenticator
 * @tls: whether the connection is protected by TLS
 *
 * Returns: (transfer full) (array zero-terminated=1): the SASL mechanisms
 *   to advertise on this connection (maybe none); free with g_strfreev().
 *
 * Thread safety: safe.
 */
MH_API char **mh_authenticator_list_mechanisms (MhAuthenticator *auth,
                                                gboolean tls);

/**
 * mh_authenticator_sasl_new:
 * @auth: an authenticator
 * @mechanism: the mechanism the client asked for
 * @tls: whether the connection is protected by TLS
 * @error: return location for a #GError, or %NULL
 *
 * mh_sasl_server_new() with default limits, after checking that
 * @mechanism may be used on this connection.
 *
 * Returns: (transfer full) (nullable): a new exchange, or %NULL with
 *   @error in %MH_AUTH_ERROR: MECHANISM (unknown) or ENCRYPTION_REQUIRED
 *   (plaintext without TLS).
 *
 * Thread safety: safe.
 */
MH_API MhSaslServer *mh_authenticator_sasl_new (MhAuthenticator *auth,
                                                const char *mechanism,
                                                gboolean tls,
                                                GError **error);

/**
 * mh_authenticator_check:
 * @auth: an authenticator
 * @creds: credentials from a finished exchange
 *   (mh_sasl_server_get_credentials()) or mh_sasl_credentials_new()
 * @service: the service asking: "imap", "imaps", "pop3", "pop3s",
 *   "submission", "submissions", "smtp" or "managesieve" (mapped to the
 *   directory's protocols), used in logs too
 * @peer_ip: (nullable): the client's IP address, without port
 * @now_us: monotonic time in microseconds (g_get_monotonic_time())
 * @delay_ms_out: (out) (optional): how long to wait before replying
 * @error: return location for a #GError, or %NULL
 *
 * Checks @creds against the directory and records the outcome in the
 * throttle. This blocks for a password hash (tens of milliseconds by
 * design): call it from a worker thread, not the main loop.
 *
 * The caller must wait *@delay_ms_out milliseconds before sending the
 * reply, success or failure alike (a failure answered sooner than a
 * success would tell an attacker early), without blocking other
 * sessions (lib/server arms a timer). *@delay_ms_out is set on every
 * return.
 *
 * An authorization identity naming another account than the one
 * authenticated is refused (no proxy authorization); one naming the
 * same account in another spelling (case, U-label domain) is accepted.
 * Failures are logged at notice level with the service, peer and user
 * name, never the password; successes at info level.
 *
 * Returns: (transfer full) (nullable): the account logged into (use its
 *   ascii address as the session's user), or %NULL with @error in
 *   %MH_AUTH_ERROR: FAILED (unknown user or wrong password, never told
 *   apart), DISABLED (account or protocol disabled), AUTHZID,
 *   UNAVAILABLE (directory error; retry later).
 *
 * Thread safety: safe.
 */
MH_API MhAccountInfo *mh_authenticator_check (MhAuthenticator *auth,
                                              const MhSaslCredentials *creds,
                                              const char *service,
                                              const char *peer_ip,
                                              gint64 now_us,
                                              guint *delay_ms_out,
                                              GError **error);

/**
 * mh_authenticator_check_password:
 * @auth: an authenticator
 * @user: the user name as the client sent it (IMAP LOGIN, POP3 USER)
 * @password: the password (IMAP LOGIN, POP3 PASS); wipe your copy after
 * @service: as for mh_authenticator_check()
 * @peer_ip: (nullable): the client's IP address, without port
 * @now_us: monotonic time in microseconds
 * @delay_ms_out: (out) (optional): how long to wait before replying
 * @error: return location for a #GError, or %NULL
 *
 * As mh_authenticator_check() for protocols that send the user name and
 * password as plain strings. Whether plaintext is allowed on the
 * connection is the caller's check (mh_authenticator_plaintext_allowed()).
 * Both are C strings: an engine must refuse a NUL inside an IMAP literal
 * before calling, or the string would be silently cut there.
 *
 * Returns: (transfer full) (nullable): the account, or %NULL with @error
 *   in %MH_AUTH_ERROR: as for mh_authenticator_check(), plus MALFORMED or
 *   TOO_LONG for a user name or password that fails validation.
 *
 * Thread safety: safe.
 */
MH_API MhAccountInfo *mh_authenticator_check_password (MhAuthenticator *auth,
                                                       const char *user,
                                                       const char *password,
                                                       const char *service,
                                                       const char *peer_ip,
                                                       gint64 now_us,
                                                       guint *delay_ms_out,
                                                       GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhAuthenticator, mh_authenticator_unref)

G_END_DECLS
