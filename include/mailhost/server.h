/* libmailhost server runtime: drives sans-I/O protocol engines over
 * sockets with the GLib main loop, GnuTLS, limits, timeouts and a worker
 * pool for blocking disk work (docs/server.md).
 */
#pragma once

#include <mailhost/core.h>

G_BEGIN_DECLS

/**
 * MH_SERVER_ERROR:
 *
 * Error domain of lib/server. Codes are in #MhServerError.
 */
#define MH_SERVER_ERROR (mh_server_error_quark ())
MH_API GQuark mh_server_error_quark (void);

/**
 * MhServerError:
 * @MH_SERVER_ERROR_FAILED: any other failure
 * @MH_SERVER_ERROR_CONFIG: a configuration value the server cannot use
 *   (a bad `listen` entry, `socket_mode`, TLS priority string); the
 *   message names the section and key
 * @MH_SERVER_ERROR_LISTEN: a listening socket could not be created; the
 *   message names the service and address, e.g. `imap: cannot listen on
 *   127.0.0.1:10143: Address already in use`
 * @MH_SERVER_ERROR_TLS: the certificate or key could not be loaded, do
 *   not match, or could not be generated
 * @MH_SERVER_ERROR_PRIVILEGES: dropping root failed
 * @MH_SERVER_ERROR_SERVICE: a service name is unknown or registered twice
 * @MH_SERVER_ERROR_STATE: the call does not fit the server's state
 *   (started twice, STARTTLS on a TLS session)
 *
 * Codes in %MH_SERVER_ERROR.
 */
typedef enum
{
  MH_SERVER_ERROR_FAILED,
  MH_SERVER_ERROR_CONFIG,
  MH_SERVER_ERROR_LISTEN,
  MH_SERVER_ERROR_TLS,
  MH_SERVER_ERROR_PRIVILEGES,
  MH_SERVER_ERROR_SERVICE,
  MH_SERVER_ERROR_STATE,
} MhServerError;

/**
 * MhServer:
 *
 * The runtime of one process: listeners, sessions, TLS credentials,
 * worker pool. Reference counted. Lives on the thread-default main
 * context of the thread that called mh_server_start().
 */
typedef struct _MhServer MhServer;

/**
 * MhServerSession:
 *
 * One client connection as the server sees it: socket, TLS state,
 * timeouts, the engine the service created for it. Reference counted;
 * services receive borrowed pointers and may take a reference to keep it
 * across a delayed answer. After the connection is gone, calls that send
 * or start work are ignored and mh_server_session_is_connected() returns
 * %FALSE.
 */
typedef struct _MhServerSession MhServerSession;

MH_API GType mh_server_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SERVER (mh_server_get_type ())
MH_API GType mh_server_session_get_type (void) G_GNUC_CONST;
#define MH_TYPE_SERVER_SESSION (mh_server_session_get_type ())

/**
 * MhServerTimeout:
 * @MH_SERVER_TIMEOUT_NONE: no client timeout applies (the server itself
 *   is busy, e.g. a blocking job runs)
 * @MH_SERVER_TIMEOUT_IDLE: waiting for the client's next command
 *   (`idle_timeout`)
 * @MH_SERVER_TIMEOUT_COMMAND: inside a command: a partial line, a
 *   message body, a literal (`command_timeout`)
 *
 * Which timer runs, as the service's @timeout function tells.
 */
typedef enum
{
  MH_SERVER_TIMEOUT_NONE,
  MH_SERVER_TIMEOUT_IDLE,
  MH_SERVER_TIMEOUT_COMMAND,
} MhServerTimeout;

/**
 * MhServerGoodbye:
 * @MH_SERVER_GOODBYE_TOO_MANY_CONNECTIONS: the service or server is full
 * @MH_SERVER_GOODBYE_TOO_MANY_FROM_IP: the per-IP limit is reached
 * @MH_SERVER_GOODBYE_IDLE_TIMEOUT: the idle timeout expired
 * @MH_SERVER_GOODBYE_COMMAND_TIMEOUT: the command timeout expired
 * @MH_SERVER_GOODBYE_SHUTDOWN: the server is shutting down
 *
 * Why the server closes a connection on its own; the service's @goodbye
 * function turns it into a protocol line.
 */
typedef enum
{
  MH_SERVER_GOODBYE_TOO_MANY_CONNECTIONS,
  MH_SERVER_GOODBYE_TOO_MANY_FROM_IP,
  MH_SERVER_GOODBYE_IDLE_TIMEOUT,
  MH_SERVER_GOODBYE_COMMAND_TIMEOUT,
  MH_SERVER_GOODBYE_SHUTDOWN,
} MhServerGoodbye;

/**
 * MH_SERVICE_VERSION:
 *
 * The value of #MhService.version this header describes.
 */
#define MH_SERVICE_VERSION 1

/**
 * MhService: (skip)
 * @version: %MH_SERVICE_VERSION
 * @engine_new: creates the engine for a new session. Called on the main
 *   loop once the connection is accepted and, for implicit TLS, once the
 *   handshake is done (so the engine can ask mh_server_session_is_tls()).
 *   The engine usually queues its greeting here. Returns the engine,
 *   owned by the session until @engine_free.
 * @engine_free: frees the engine; called when the session is freed,
 *   after every blocking job and delayed call of the session finished.
 * @feed: hands the engine @len bytes read from the client; returns how
 *   many it took. An engine takes everything unless it waits for the host
 *   (an event not yet answered): then it may take less, and the server
 *   keeps the rest, stops reading, and feeds it again after the next
 *   answer. The engine bounds its own buffers (line length, literals).
 * @peek_output: lends the engine's next output bytes (valid until the
 *   next call on the engine); returns their number, 0 when none.
 * @consume_output: tells the engine @len bytes of its output were taken.
 * @is_closing: %TRUE when the engine wants the connection closed once
 *   its output is sent (after QUIT, BYE, a broken limit).
 * @is_closed: %TRUE when the engine is done: close at once.
 * @tick: (nullable): gives the engine the monotonic time, for timers of
 *   its own (called about twice a second and before each @feed).
 * @handle_events: pulls the engine's events and acts on them: answer at
 *   once (the engine's reply call), ask for STARTTLS with
 *   mh_server_session_start_tls(), or post blocking work with
 *   mh_server_session_run_blocking() and answer in its completion. The
 *   server calls it after @feed, after it took output (an engine that
 *   paused parsing until its output drained goes on), after @tick, a
 *   completed job or delayed call, and a finished STARTTLS handshake,
 *   then flushes output. It must be cheap when there is nothing to do.
 * @timeout: which client timeout applies now; %NULL means always
 *   %MH_SERVER_TIMEOUT_IDLE. The server picks %MH_SERVER_TIMEOUT_NONE by
 *   itself while a blocking job of the session runs.
 * @tls_started: (nullable): the STARTTLS handshake completed; the engine
 *   resets its state as its RFC says (RFC 3207 4.2: forget EHLO).
 * @goodbye: (nullable): the line (with CRLF) to send when the server
 *   closes a connection for @reason, e.g. `421 4.7.0 Too many
 *   connections\r\n`; %NULL or a %NULL result closes silently. Called
 *   without an engine for the connection limits. Never sent in clear text
 *   on an implicit-TLS listener before the handshake.
 * @engine_goodbye: (nullable): when set and an engine exists, the server
 *   calls this instead of sending @goodbye's line for a timeout or a
 *   shutdown: the engine queues its own closing reply (e.g.
 *   mh_smtp_engine_shutdown(): "421 4.3.2 host ...", ending an open
 *   transaction) and turns closing; the server flushes it and closes.
 * @want_read: (nullable): %FALSE while the engine would take no input
 *   (its buffer is full, a handshake runs): the server stops reading the
 *   socket until it turns %TRUE (asked again after every event). %NULL
 *   relies on @feed's return value alone.
 *
 * The contract a protocol layer implements once so the server can run
 * its engine: a table of functions over an opaque engine pointer. Every
 * function is called on the main loop, never from a worker thread.
 * Function pointers given %NULL where not (nullable) are programmer
 * errors caught by mh_server_register_service().
 */
typedef struct
{
  guint version;
  gpointer (*engine_new) (MhServerSession *session, gpointer user_data);
  void (*engine_free) (gpointer engine);
  gsize (*feed) (gpointer engine, const guint8 *data, gsize len);
  gsize (*peek_output) (gpointer engine, const guint8 **data_out);
  void (*consume_output) (gpointer engine, gsize len);
  gboolean (*is_closing) (gpointer engine);
  gboolean (*is_closed) (gpointer engine);
  void (*tick) (gpointer engine, gint64 now_us);
  void (*handle_events) (gpointer engine, MhServerSession *session,
                         gpointer user_data);
  MhServerTimeout (*timeout) (gpointer engine);
  void (*tls_started) (gpointer engine, MhServerSession *session,
                       gpointer user_data);
  const char *(*goodbye) (MhServerGoodbye reason, gpointer user_data);
  void (*engine_goodbye) (gpointer engine, MhServerSession *session,
                          MhServerGoodbye reason, gpointer user_data);
  gboolean (*want_read) (gpointer engine);
} MhService;

/**
 * MhServerJobFunc:
 * @data: the job's data
 *
 * Blocking work (disk, fsync, LMDB writes) run on a worker thread. It
 * must not touch the session, the engine or anything else of the main
 * loop; it leaves its result in @data.
 */
typedef void (*MhServerJobFunc) (gpointer data);

/**
 * MhServerSessionFunc:
 * @session: the session (borrowed)
 * @data: the data given with the job or delayed call
 * @user_data: the user data given with it
 *
 * Called on the main loop when a blocking job or delayed call completes.
 * Answer the engine here; the server then flushes its output.
 */
typedef void (*MhServerSessionFunc) (MhServerSession *session,
                                     gpointer data, gpointer user_data);

/* ---- the server -------------------------------------------------------- */

/**
 * mh_server_new:
 * @config: the configuration (the server keeps a reference)
 * @error: return location for a #GError, or %NULL
 *
 * Creates a server with no services yet. Nothing is bound until
 * mh_server_start().
 *
 * Thread safety: the server belongs to the thread that starts it.
 *
 * Returns: (transfer full) (nullable): the server, or %NULL with @error in
 *   %MH_SERVER_ERROR.
 */
MH_API MhServer *mh_server_new (MhConfig *config, GError **error);

/**
 * mh_server_ref: (skip)
 * @server: a #MhServer
 *
 * Returns: (transfer full): @server, with one more reference
 */
MH_API MhServer *mh_server_ref (MhServer *server);

/**
 * mh_server_unref: (skip)
 * @server: (nullable): a #MhServer
 *
 * Drops a reference; %NULL is allowed.
 */
MH_API void mh_server_unref (MhServer *server);

/**
 * mh_server_register_service: (skip)
 * @server: a server not yet started
 * @name: the service name, a config section ("smtp", "imap", "echo", ...)
 * @service: the functions (copied)
 * @user_data: passed to @engine_new, @handle_events, @tls_started and
 *   @goodbye
 * @destroy: (nullable): frees @user_data with the server
 * @error: return location for a #GError, or %NULL
 *
 * Makes @name runnable: mh_server_start() opens its listeners if its
 * config section has `enabled = true`.
 *
 * Returns: %TRUE, or %FALSE with %MH_SERVER_ERROR_SERVICE (unknown
 *   section, registered twice) or %MH_SERVER_ERROR_STATE (started).
 */
MH_API gboolean mh_server_register_service (MhServer *server,
                                            const char *name,
                                            const MhService *service,
                                            gpointer user_data,
                                            GDestroyNotify destroy,
                                            GError **error);

/**
 * mh_server_register_echo_service:
 * @server: a server not yet started
 * @error: return location for a #GError, or %NULL
 *
 * Registers "echo", a diagnostic line protocol used by the tests and the
 * demo to prove the runtime (docs/server.md): SMTP-like replies, EHLO,
 * STARTTLS, ECHO text, TLS (reports version and cipher), SLOW ms (a
 * blocking job), WAIT ms (a delayed answer), BIG n, BEGIN/END (command
 * timeout), QUIT. It touches no data and is off unless `[echo] enabled`.
 *
 * Returns: %TRUE, or %FALSE with @error as mh_server_register_service().
 */
MH_API gboolean mh_server_register_echo_service (MhServer *server,
                                                 GError **error);

/**
 * mh_server_get_service_info:
 * @index: 0, 1, 2, ...
 * @name_out: (out) (transfer none) (optional): the service (config
 *   section) name, e.g. "imaps"
 * @port_out: (out) (optional): its standard port, e.g. 993
 * @tls_out: (out) (transfer none) (optional): its default TLS mode:
 *   "none", "starttls" or "implicit"
 *
 * Enumerates the services the configuration knows, whether or not a
 * program registered them (the demo uses it to say what is not built).
 *
 * Thread safety: safe.
 *
 * Returns: %FALSE when @index is past the last service.
 */
MH_API gboolean mh_server_get_service_info (guint index,
                                            const char **name_out,
                                            guint *port_out,
                                            const char **tls_out);

/**
 * mh_server_has_service:
 * @server: a server
 * @name: a service name
 *
 * Returns: %TRUE if @name is registered.
 */
MH_API gboolean mh_server_has_service (MhServer *server, const char *name);

/**
 * mh_server_start:
 * @server: a server
 * @error: return location for a #GError, or %NULL
 *
 * Loads the TLS credentials (if an enabled service uses TLS), binds every
 * `listen` entry of every enabled, registered service, starts the worker
 * pool and the accept watches on the thread-default main context. An
 * enabled service that is not registered is logged and skipped. Nothing
 * is left bound on failure.
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_SERVER_ERROR (CONFIG,
 *   LISTEN, TLS, STATE).
 */
MH_API gboolean mh_server_start (MhServer *server, GError **error);

/**
 * mh_server_get_listeners:
 * @server: a started server
 *
 * Returns: (transfer full) (array zero-terminated=1): one line per bound
 *   socket, "SERVICE ADDRESS TLS", e.g. "echo 127.0.0.1:40213 starttls"
 *   (a port 0 in the config shows the port the kernel chose).
 */
MH_API char **mh_server_get_listeners (MhServer *server);

/**
 * mh_server_get_session_count:
 * @server: a server
 *
 * Returns: the number of open connections.
 */
MH_API guint mh_server_get_session_count (MhServer *server);

/**
 * mh_server_reload_tls:
 * @server: a started server
 * @error: return location for a #GError, or %NULL
 *
 * Loads the certificate and key again (what SIGHUP does). New connections
 * use the new credentials; running ones keep theirs. On failure the old
 * credentials stay in use.
 *
 * Returns: %TRUE, or %FALSE with %MH_SERVER_ERROR_TLS.
 */
MH_API gboolean mh_server_reload_tls (MhServer *server, GError **error);

/**
 * mh_server_handle_signals:
 * @server: a started server
 *
 * For programs: SIGTERM and SIGINT start mh_server_shutdown(), SIGHUP
 * calls mh_server_reload_tls() (errors are logged). Uses
 * g_unix_signal_add() on the server's main context.
 */
MH_API void mh_server_handle_signals (MhServer *server);

/**
 * mh_server_shutdown:
 * @server: a started server
 *
 * Begins a graceful shutdown: listeners close; sessions with a blocking
 * job in flight get its answer, then the service's goodbye; the others
 * get the goodbye at once. After `[general] shutdown_grace` the rest are
 * cut. mh_server_run() returns when every session is gone.
 */
MH_API void mh_server_shutdown (MhServer *server);

/**
 * mh_server_run:
 * @server: a started server
 *
 * Runs the main context until a shutdown has completed.
 *
 * Returns: %TRUE when every job finished within the grace period,
 *   %FALSE when some were cut off.
 */
MH_API gboolean mh_server_run (MhServer *server);

/**
 * mh_server_drop_privileges:
 * @user: (nullable): the account to become; %NULL keeps the current one
 * @group: (nullable): the group; %NULL means @user's primary group
 * @error: return location for a #GError, or %NULL
 *
 * For programs, after binding: when running as root with @user set,
 * calls initgroups(), setgid() and setuid() and checks that root cannot
 * be regained. Running as root with no @user only logs a warning; not
 * running as root with @user set is an error unless @user is already
 * the current user.
 *
 * Thread safety: call before starting threads.
 *
 * Returns: %TRUE, or %FALSE with %MH_SERVER_ERROR_PRIVILEGES.
 */
MH_API gboolean mh_server_drop_privileges (const char *user,
                                           const char *group,
                                           GError **error);

/* ---- TLS helpers ------------------------------------------------------ */

/**
 * MhTlsKeyType:
 * @MH_TLS_KEY_ECDSA_P256: ECDSA on the P-256 curve (fast, small)
 * @MH_TLS_KEY_RSA_2048: RSA, 2048 bits (for very old clients)
 *
 * Key kinds mh_server_tls_generate_self_signed() can make.
 */
typedef enum
{
  MH_TLS_KEY_ECDSA_P256,
  MH_TLS_KEY_RSA_2048,
} MhTlsKeyType;

/**
 * mh_server_tls_generate_self_signed:
 * @cert_path: (type filename): where the PEM certificate goes
 * @key_path: (type filename): where the PEM key goes (mode 0600)
 * @names: (array zero-terminated=1): subject alternative names: DNS
 *   names or IP addresses; the first is also the common name
 * @key_type: the key kind
 * @error: return location for a #GError, or %NULL
 *
 * Makes a self-signed server certificate valid for one year. Both files
 * are written to temporary names and renamed, so a reader never sees
 * half a file.
 *
 * Thread safety: safe.
 *
 * Returns: %TRUE, or %FALSE with %MH_SERVER_ERROR_TLS or %G_FILE_ERROR.
 */
MH_API gboolean mh_server_tls_generate_self_signed (const char *cert_path,
                                                    const char *key_path,
                                                    const char *const *names,
                                                    MhTlsKeyType key_type,
                                                    GError **error);

/**
 * mh_server_tls_check_files:
 * @cert_path: (type filename): a PEM certificate (chain)
 * @key_path: (type filename): its PEM key
 * @error: return location for a #GError, or %NULL
 *
 * Loads the pair as the server would and checks that the key matches.
 *
 * Returns: %TRUE, or %FALSE with %MH_SERVER_ERROR_TLS, e.g. `tls:
 *   certificate DATA/tls/cert.pem does not match key DATA/tls/key.pem`.
 */
MH_API gboolean mh_server_tls_check_files (const char *cert_path,
                                           const char *key_path,
                                           GError **error);

/**
 * mh_server_tls_get_fingerprint:
 * @cert_path: (type filename): a PEM certificate
 * @error: return location for a #GError, or %NULL
 *
 * Returns: (transfer full) (nullable): the SHA-256 fingerprint of the
 *   first certificate in @cert_path as colon-separated upper-case hex
 *   ("AB:CD:..."), what clients show when asked to trust it; %NULL with
 *   %MH_SERVER_ERROR_TLS.
 */
MH_API char *mh_server_tls_get_fingerprint (const char *cert_path,
                                            GError **error);

/* ---- sessions (for services) ------------------------------------------ */

/**
 * mh_server_session_ref: (skip)
 * @session: a #MhServerSession
 *
 * Returns: (transfer full): @session, with one more reference
 */
MH_API MhServerSession *mh_server_session_ref (MhServerSession *session);

/**
 * mh_server_session_unref: (skip)
 * @session: (nullable): a #MhServerSession
 *
 * Drops a reference; %NULL is allowed.
 */
MH_API void mh_server_session_unref (MhServerSession *session);

/**
 * mh_server_session_get_id:
 * @session: a session
 *
 * Returns: (transfer none): the id used in logs, e.g. "s12".
 */
MH_API const char *mh_server_session_get_id (MhServerSession *session);

/**
 * mh_server_session_get_service:
 * @session: a session
 *
 * Returns: (transfer none): the service name, e.g. "imap".
 */
MH_API const char *mh_server_session_get_service (MhServerSession *session);

/**
 * mh_server_session_get_peer:
 * @session: a session
 *
 * Returns: (transfer none): the peer, "192.0.2.1:4242", "[2001:db8::1]:4242"
 *   or "unix:/run/mailhost/lmtp".
 */
MH_API const char *mh_server_session_get_peer (MhServerSession *session);

/**
 * mh_server_session_get_peer_ip:
 * @session: a session
 *
 * Returns: (transfer none) (nullable): the peer's IP address without
 *   port ("192.0.2.1", "2001:db8::1"), %NULL on a unix socket.
 */
MH_API const char *mh_server_session_get_peer_ip (MhServerSession *session);

/**
 * mh_server_session_get_local:
 * @session: a session
 *
 * Returns: (transfer none): the local address the client connected to.
 */
MH_API const char *mh_server_session_get_local (MhServerSession *session);

/**
 * mh_server_session_get_config:
 * @session: a session
 *
 * Returns: (transfer none): the server's configuration.
 */
MH_API MhConfig *mh_server_session_get_config (MhServerSession *session);

/**
 * mh_server_session_is_connected:
 * @session: a session
 *
 * Returns: %FALSE once the connection is closed (the session may live on
 *   while a job of it finishes).
 */
MH_API gboolean mh_server_session_is_connected (MhServerSession *session);

/**
 * mh_server_session_can_start_tls:
 * @session: a session
 *
 * Returns: %TRUE if the listener is `tls = starttls`, the session is not
 *   yet encrypted and credentials are loaded: advertise STARTTLS only
 *   then.
 */
MH_API gboolean mh_server_session_can_start_tls (MhServerSession *session);

/**
 * mh_server_session_start_tls:
 * @session: a session
 * @error: return location for a #GError, or %NULL
 *
 * Call from @handle_events after the engine queued its "go ahead" reply;
 * the engine must take no input after the STARTTLS command (its @feed
 * returns at the end of that line) until @tls_started.
 * The server sends the pending output in clear text, drops any input the
 * client pipelined after the command (RFC 3207 6: such bytes could be an
 * injection), then runs the handshake; when it is done the service's
 * @tls_started runs. A failed handshake closes the connection.
 *
 * Returns: %TRUE, or %FALSE with %MH_SERVER_ERROR_STATE when
 *   mh_server_session_can_start_tls() is %FALSE.
 */
MH_API gboolean mh_server_session_start_tls (MhServerSession *session,
                                             GError **error);

/**
 * mh_server_session_is_tls:
 * @session: a session
 *
 * Returns: %TRUE if the connection is encrypted (handshake done).
 */
MH_API gboolean mh_server_session_is_tls (MhServerSession *session);

/**
 * mh_server_session_get_tls_version:
 * @session: a session
 *
 * Returns: (transfer none) (nullable): "TLS1.2" or "TLS1.3"; %NULL in
 *   clear text.
 */
MH_API const char *mh_server_session_get_tls_version (MhServerSession *session);

/**
 * mh_server_session_get_tls_cipher:
 * @session: a session
 *
 * Returns: (transfer none) (nullable): the IANA cipher suite name, e.g.
 *   "TLS_AES_256_GCM_SHA384" (for a Received header: `using TLS1.3 with
 *   cipher TLS_AES_256_GCM_SHA384`); %NULL in clear text.
 */
MH_API const char *mh_server_session_get_tls_cipher (MhServerSession *session);

/**
 * mh_server_session_run_blocking: (skip)
 * @session: a session
 * @func: the blocking work, run on a worker thread
 * @data: (nullable): the job's data, given to @func and @done
 * @data_free: (nullable): frees @data after @done
 * @done: (nullable): called on the main loop when @func returned
 * @user_data: passed to @done
 *
 * Runs @func on the worker pool (`[general] worker_threads`), so a slow
 * disk never stalls other sessions. While a job runs no client timeout
 * applies to the session and a shutdown waits for it. @done runs even if
 * the client went away meanwhile (check mh_server_session_is_connected()
 * if it matters); its output is then dropped.
 */
MH_API void mh_server_session_run_blocking (MhServerSession *session,
                                            MhServerJobFunc func,
                                            gpointer data,
                                            GDestroyNotify data_free,
                                            MhServerSessionFunc done,
                                            gpointer user_data);

/**
 * mh_server_session_call_later: (skip)
 * @session: a session
 * @delay_ms: the delay in milliseconds
 * @func: called on the main loop after @delay_ms
 * @data: (nullable): passed to @func
 * @data_free: (nullable): frees @data after @func
 * @user_data: passed to @func
 *
 * A delayed answer without a thread, e.g. the growing delay after a
 * failed login. Counts as pending work as mh_server_session_run_blocking()
 * does, except that a shutdown runs it at once rather than waiting.
 */
MH_API void mh_server_session_call_later (MhServerSession *session,
                                          guint delay_ms,
                                          MhServerSessionFunc func,
                                          gpointer data,
                                          GDestroyNotify data_free,
                                          gpointer user_data);

/**
 * mh_server_session_kick:
 * @session: a session
 *
 * Tells the server the engine has new output or state outside the usual
 * callbacks (for services that answer from their own sources); the
 * server flushes and re-feeds held input on the next main-loop turn.
 */
MH_API void mh_server_session_kick (MhServerSession *session);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhServer, mh_server_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhServerSession, mh_server_session_unref)

G_END_DECLS
