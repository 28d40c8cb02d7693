/* lib/server internals shared by server.c, session.c, tls.c and echo.c
 * (not installed). */
#pragma once

#include "mailhost/server.h"
#include "core/core-private.h"

#include <gnutls/gnutls.h>

G_BEGIN_DECLS

/* ---- TLS credentials (tls.c) ------------------------------------------ */

/* Loaded certificate + key + priority cache. Reference counted so a
 * SIGHUP swap never frees what a running session still uses (GnuTLS
 * keeps a bare pointer to the credentials in each session). */
typedef struct
{
  gint refcount;
  gnutls_certificate_credentials_t cred;
  gnutls_priority_t prio;
  char *cert_path;
  char *key_path;
} MhTlsCreds;

MhTlsCreds *mh_server__tls_creds_load (MhConfig *config, GError **error);
MhTlsCreds *mh_server__tls_creds_ref (MhTlsCreds *creds);
void mh_server__tls_creds_unref (MhTlsCreds *creds);
/* The cert and key paths the config names (DATA/tls/... by default). */
void mh_server__tls_paths (MhConfig *config, char **cert_out,
                           char **key_out);
/* The GnuTLS priority string for [tls] min_version and priority. */
char *mh_server__tls_priority_string (MhConfig *config);

/* ---- services and listeners (server.c) -------------------------------- */

typedef enum
{
  MH_TLS_MODE_NONE,
  MH_TLS_MODE_STARTTLS,
  MH_TLS_MODE_IMPLICIT,
} MhTlsMode;

typedef struct
{
  char *name;
  MhService funcs;
  gpointer user_data;
  GDestroyNotify destroy;

  /* From the config at start. 0 means "no limit of its own". */
  MhTlsMode tls;
  guint max_total;
  guint max_per_ip;
  gint64 idle_timeout_us;
  gint64 command_timeout_us;

  guint n_sessions;
  GHashTable *per_ip; /* peer IP -> GUINT count */
} MhServerService;

/* ---- sessions (session.c) --------------------------------------------- */

typedef enum
{
  SESSION_HANDSHAKE,  /* TLS handshake running (implicit or STARTTLS) */
  SESSION_OPEN,       /* engine driven */
  SESSION_CLOSED,     /* socket gone; object may live on for jobs */
} MhSessionState;

struct _MhServerSession
{
  gint refcount;
  MhServer *server;          /* strong: a session keeps its server */
  MhServerService *service;  /* owned by the server */
  char id[24];
  char *peer;
  char *peer_ip;             /* NULL on unix sockets */
  char *local;
  gboolean implicit_tls;

  int fd;
  GSource *io_source;
  gpointer io_tag;
  GIOCondition io_events;    /* what we poll for now */

  MhSessionState state;
  gnutls_session_t tls;
  MhTlsCreds *creds;         /* the credentials this session started with */
  gboolean tls_active;
  char *tls_version;
  char *tls_cipher;
  gboolean want_starttls;
  gint64 handshake_deadline_us;

  gpointer engine;
  GByteArray *inbuf;         /* read but not yet taken by the engine */
  GByteArray *outbuf;        /* to send; bytes before out_off are sent */
  gsize out_off;
  gsize tls_send_len;        /* a GnuTLS send to repeat after EAGAIN */
  gboolean eof;              /* the client closed its side */

  gboolean server_closing;   /* we decided to close: no more input */
  gboolean goodbye_pending;  /* send goodbye once pending work is done */
  MhServerGoodbye goodbye_reason;
  gint64 close_deadline_us;
  gint64 last_activity_us;

  guint pending;             /* jobs + delayed calls not yet completed */
  guint running_jobs;        /* of which blocking jobs */
  GList *delayed;            /* DelayedCall*, to run early on shutdown */
  GSource *kick_source;
  gboolean in_pump;
  gboolean repump;
  gboolean counted;          /* counted against the limits */
};

MhServerSession *mh_server__session_new (MhServer *server,
                                         MhServerService *service, int fd,
                                         const char *peer,
                                         const char *peer_ip,
                                         const char *local,
                                         gboolean implicit_tls,
                                         guint64 serial);
/* Starts the session: the TLS handshake or the engine. */
void mh_server__session_begin (MhServerSession *session);
/* The periodic check: timeouts, engine tick. */
void mh_server__session_tick (MhServerSession *session, gint64 now_us);
/* Graceful close for @reason (service's goodbye line). */
void mh_server__session_goodbye (MhServerSession *session,
                                 MhServerGoodbye reason);
/* Closes the socket now. */
void mh_server__session_close (MhServerSession *session, const char *why);

/* ---- server callbacks the sessions use (server.c) --------------------- */

MhConfig *mh_server__config (MhServer *server);
MhTlsCreds *mh_server__current_creds (MhServer *server);
gint64 mh_server__handshake_timeout_us (MhServer *server);
void mh_server__session_closed (MhServer *server, MhServerSession *session);
void mh_server__push_job (MhServer *server, gpointer job);
/* session.c: a job's work (worker thread) and completion (main loop). */
void mh_server__job_run (gpointer job);
void mh_server__job_done (gpointer job);
void mh_server__job_finished (MhServer *server);
gboolean mh_server__shutting_down (MhServer *server);
/* Background work outside sessions (retention.c): @func runs once, at
 * shutdown or when the server is freed; a hold counts as a job in flight
 * (shutdown waits for it) until mh_server__job_finished(). */
void mh_server__add_stop_hook (MhServer *server, GDestroyNotify func,
                               gpointer data);
void mh_server__hold (MhServer *server);

/* The echo test service (echo.c). */
const MhService *mh_server__echo_service (void);

G_END_DECLS
