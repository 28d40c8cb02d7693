/* lib/server sessions: one connection, its TLS state and its engine.
 *
 * Design notes
 * - States: HANDSHAKE (TLS handshake in progress: implicit TLS at
 *   connect, or after a STARTTLS request) -> OPEN (engine driven) ->
 *   CLOSED (socket gone). A CLOSED session lives on while a blocking job
 *   or delayed call holds a reference, so completions always find it.
 * - One function, pump(), moves every byte: it finishes handshakes, reads
 *   when reading is allowed, feeds the engine, lets the service handle
 *   events, drains engine output into outbuf, writes, starts STARTTLS,
 *   and decides to close. Every callback (socket ready, job done, delayed
 *   call, tick) ends in pump(), so no path forgets to flush. pump() never
 *   re-enters itself: a nested request sets `repump`.
 * - Reading is allowed only when: OPEN, no STARTTLS pending, the server
 *   is not closing the session, the engine took all earlier input (an
 *   engine waiting on the host keeps the rest in inbuf, and we stop
 *   reading: back-pressure to the client), and unsent output is below
 *   MH_LIMIT_OUTPUT_BUFFER (a client that never reads cannot make us
 *   buffer unboundedly; we also stop pulling from the engine then).
 * - STARTTLS (RFC 3207 6, CVE-2011-0411): after the engine's go-ahead is
 *   written, input the client pipelined after the command is discarded
 *   before the handshake, so nothing typed in clear text is processed as
 *   if it came over TLS.
 * - Timeouts are checked from the server's tick (every 500 ms): the
 *   handshake deadline, the idle or command timeout (the service says
 *   which), and a close deadline so a client that never reads our
 *   goodbye cannot keep a closing session forever.
 * - GnuTLS runs non-blocking on the raw socket; after EAGAIN the same
 *   send must be repeated with the same length (tls_send_len). Records
 *   GnuTLS already decrypted (gnutls_record_check_pending) are read
 *   without waiting for poll, since poll cannot see them.
 */
#include "server-private.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define READ_CHUNK (32 * 1024)
#define CLOSE_GRACE_US (10 * G_USEC_PER_SEC)
#define PUMP_ROUNDS 64

typedef struct
{
  GSource source;
  MhServerSession *session; /* borrowed: the source dies first */
} IoSource;

typedef struct
{
  MhServerSession *session; /* strong */
  MhServerJobFunc func;
  gpointer data;
  GDestroyNotify data_free;
  MhServerSessionFunc done;
  gpointer user_data;
} Job;

typedef struct
{
  MhServerSession *session; /* strong */
  GSource *source;
  MhServerSessionFunc func;
  gpointer data;
  GDestroyNotify data_free;
  gpointer user_data;
} DelayedCall;

static void pump (MhServerSession *s, gboolean readable);
static gboolean drain_engine (MhServerSession *s);

G_DEFINE_BOXED_TYPE (MhServerSession, mh_server_session,
                     mh_server_session_ref, mh_server_session_unref)

#define SVC_NAME(s) ((s)->service->name)

/* ---- lifetime --------------------------------------------------------- */

MhServerSession *
mh_server__session_new (MhServer *server, MhServerService *service, int fd,
                        const char *peer, const char *peer_ip,
                        const char *local, gboolean implicit_tls,
                        guint64 serial)
{
  MhServerSession *s = g_new0 (MhServerSession, 1);
  s->refcount = 1;
  s->server = mh_server_ref (server);
  s->service = service;
  g_snprintf (s->id, sizeof s->id, "s%" G_GUINT64_FORMAT, serial);
  s->peer = g_strdup (peer);
  s->peer_ip = g_strdup (peer_ip);
  s->local = g_strdup (local);
  s->implicit_tls = implicit_tls;
  s->fd = fd;
  s->inbuf = g_byte_array_new ();
  s->outbuf = g_byte_array_new ();
  s->state = SESSION_OPEN;
  s->last_activity_us = g_get_monotonic_time ();
  return s;
}

MhServerSession *
mh_server_session_ref (MhServerSession *session)
{
  g_return_val_if_fail (session != NULL, NULL);
  g_atomic_int_inc (&session->refcount);
  return session;
}

void
mh_server_session_unref (MhServerSession *s)
{
  if (s == NULL || !g_atomic_int_dec_and_test (&s->refcount))
    return;
  /* Jobs and delayed calls hold references, so none is pending here and
   * the socket was closed by whoever dropped the server's reference. */
  g_warn_if_fail (s->state == SESSION_CLOSED);
  if (s->engine)
    s->service->funcs.engine_free (s->engine);
  if (s->kick_source)
    {
      g_source_destroy (s->kick_source);
      g_source_unref (s->kick_source);
    }
  if (s->tls)
    gnutls_deinit (s->tls);
  mh_server__tls_creds_unref (s->creds);
  g_byte_array_unref (s->inbuf);
  g_byte_array_unref (s->outbuf);
  g_free (s->peer);
  g_free (s->peer_ip);
  g_free (s->local);
  g_free (s->tls_version);
  g_free (s->tls_cipher);
  MhServer *server = s->server;
  g_free (s);
  mh_server_unref (server);
}

/* ---- socket watch ----------------------------------------------------- */

static gboolean
io_dispatch (GSource *source, GSourceFunc cb, gpointer user_data)
{
  IoSource *io = (IoSource *) source;
  MhServerSession *s = io->session;
  GIOCondition rev = g_source_query_unix_fd (source, s->io_tag);

  mh_server_session_ref (s);
  if ((rev & (G_IO_ERR | G_IO_HUP | G_IO_NVAL))
      && !(s->io_events & G_IO_IN))
    /* The peer is gone and we are not reading: nothing more can be
     * delivered, and poll would report this again at once. */
    mh_server__session_close (s, "connection lost");
  else
    pump (s, (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR)) != 0);
  mh_server_session_unref (s);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs io_funcs = { NULL, NULL, io_dispatch, NULL, NULL, NULL };

static void
set_events (MhServerSession *s, GIOCondition ev)
{
  if (s->io_source == NULL || ev == s->io_events)
    return;
  s->io_events = ev;
  g_source_modify_unix_fd (s->io_source, s->io_tag, ev);
}

/* ---- closing ---------------------------------------------------------- */

void
mh_server__session_close (MhServerSession *s, const char *why)
{
  if (s->state == SESSION_CLOSED)
    return;
  s->state = SESSION_CLOSED;
  mh_log_info (SVC_NAME (s), s->id, s->peer, "disconnect: %s", why);
  if (s->tls && s->tls_active)
    gnutls_bye (s->tls, GNUTLS_SHUT_WR); /* best effort, non-blocking */
  if (s->io_source)
    {
      g_source_destroy (s->io_source);
      g_source_unref (s->io_source);
      s->io_source = NULL;
    }
  if (s->fd >= 0)
    {
      /* Closing with unread input makes the kernel send a reset, and a
       * reset can make the client drop our last reply unread (a
       * goodbye after a too-long line). Take what is already there,
       * send FIN, then close. */
      char sink[4096];
      for (int i = 0; i < 16; i++)
        if (recv (s->fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
          break;
      shutdown (s->fd, SHUT_WR);
      close (s->fd);
    }
  s->fd = -1;
  g_byte_array_set_size (s->inbuf, 0);
  g_byte_array_set_size (s->outbuf, 0);
  s->out_off = 0;
  /* Drops the server's reference: do it last. */
  mh_server__session_closed (s->server, s);
}

static void
append_out (MhServerSession *s, const void *data, gsize len)
{
  /* Compact the sent prefix once it is the larger part. */
  if (s->out_off > 0 && s->out_off >= s->outbuf->len / 2)
    {
      g_byte_array_remove_range (s->outbuf, 0, (guint) s->out_off);
      s->out_off = 0;
    }
  g_byte_array_append (s->outbuf, data, (guint) len);
}

static gsize
out_pending (MhServerSession *s)
{
  return s->outbuf->len - s->out_off;
}

static void
queue_goodbye (MhServerSession *s, MhServerGoodbye reason, gboolean say)
{
  const char *line = NULL;
  if (say && s->service->funcs.goodbye)
    line = s->service->funcs.goodbye (reason, s->service->user_data);
  s->server_closing = TRUE;
  s->goodbye_pending = FALSE;
  s->close_deadline_us = g_get_monotonic_time () + CLOSE_GRACE_US;
  /* Never clear text into a TLS stream or a handshake. */
  if (line && s->state == SESSION_OPEN && s->engine != NULL)
    append_out (s, line, strlen (line));
}

void
mh_server__session_goodbye (MhServerSession *s, MhServerGoodbye reason)
{
  if (s->state == SESSION_CLOSED || s->server_closing)
    return;
  if (s->state == SESSION_HANDSHAKE)
    {
      mh_server__session_close (s, "closed during TLS handshake");
      return;
    }
  /* Delayed calls (auth-failure delays) are answered now on shutdown:
   * nothing gains from waiting them out. */
  if (reason == MH_SERVER_GOODBYE_SHUTDOWN)
    for (GList *l = s->delayed; l; l = l->next)
      g_source_set_ready_time (((DelayedCall *) l->data)->source, 0);
  if (s->pending > 0)
    {
      /* In-flight work finishes and its answer goes out first; the
       * completion sends the goodbye. */
      s->goodbye_pending = TRUE;
      s->goodbye_reason = reason;
      return;
    }
  /* What the engine already queued goes out before the goodbye, up to
   * the output limit; an engine still streaming more (a large FETCH)
   * gets no goodbye line in the middle of its data. */
  gboolean say_goodbye = TRUE;
  if (s->engine && s->service->funcs.engine_goodbye)
    {
      /* The engine says goodbye itself (with its host name, an IMAP
       * BYE, aborting an open transaction) and closes. */
      s->service->funcs.engine_goodbye (s->engine, s, reason,
                                        s->service->user_data);
      say_goodbye = FALSE;
      drain_engine (s);
    }
  else if (s->engine)
    {
      const guint8 *unused = NULL;
      drain_engine (s);
      say_goodbye = s->service->funcs.peek_output (s->engine, &unused) == 0;
    }
  mh_log_info (SVC_NAME (s), s->id, s->peer, "closing: %s",
               reason == MH_SERVER_GOODBYE_IDLE_TIMEOUT      ? "idle timeout"
               : reason == MH_SERVER_GOODBYE_COMMAND_TIMEOUT ? "command timeout"
               : reason == MH_SERVER_GOODBYE_SHUTDOWN        ? "shutdown"
                                                             : "limit");
  queue_goodbye (s, reason, say_goodbye);
  pump (s, FALSE);
}

/* ---- TLS -------------------------------------------------------------- */

static gboolean
tls_setup (MhServerSession *s)
{
  MhTlsCreds *creds = mh_server__current_creds (s->server);
  if (creds == NULL)
    return FALSE;
  int rc = gnutls_init (&s->tls,
                        GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
  if (rc < 0)
    {
      s->tls = NULL;
      mh_log_error (SVC_NAME (s), s->id, s->peer, "tls: %s",
                    gnutls_strerror (rc));
      return FALSE;
    }
  s->creds = mh_server__tls_creds_ref (creds);
  if ((rc = gnutls_priority_set (s->tls, creds->prio)) < 0
      || (rc = gnutls_credentials_set (s->tls, GNUTLS_CRD_CERTIFICATE,
                                       creds->cred))
             < 0)
    {
      mh_log_error (SVC_NAME (s), s->id, s->peer, "tls: %s",
                    gnutls_strerror (rc));
      return FALSE;
    }
  gnutls_certificate_server_set_request (s->tls, GNUTLS_CERT_IGNORE);
  gnutls_transport_set_int (s->tls, s->fd);
  s->state = SESSION_HANDSHAKE;
  s->handshake_deadline_us = g_get_monotonic_time ()
                             + mh_server__handshake_timeout_us (s->server);
  return TRUE;
}

/* Returns 1 done, 0 again later, -1 failed (session closed). */
static int
tls_handshake (MhServerSession *s)
{
  int rc;
  do
    rc = gnutls_handshake (s->tls);
  while (rc == GNUTLS_E_INTERRUPTED);
  if (rc == GNUTLS_E_AGAIN)
    return 0;
  if (rc < 0 && gnutls_error_is_fatal (rc))
    {
      g_autofree char *why
          = g_strdup_printf ("TLS handshake failed: %s", gnutls_strerror (rc));
      mh_server__session_close (s, why);
      return -1;
    }
  if (rc < 0)
    return 0; /* a warning alert: go on */

  s->tls_active = TRUE;
  s->state = SESSION_OPEN;
  g_free (s->tls_version);
  g_free (s->tls_cipher);
  s->tls_version = g_strdup (
      gnutls_protocol_get_name (gnutls_protocol_get_version (s->tls)));
  const char *suite = gnutls_ciphersuite_get (s->tls);
  s->tls_cipher = g_strdup (suite ? suite : "unknown");
  mh_log_info (SVC_NAME (s), s->id, s->peer, "tls: %s %s", s->tls_version,
               s->tls_cipher);
  s->last_activity_us = g_get_monotonic_time ();
  return 1;
}

/* ---- raw I/O ---------------------------------------------------------- */

/* Reads once into inbuf. Returns >0 bytes, 0 EOF, -1 would block,
 * -2 error (session closed). */
static gssize
do_read (MhServerSession *s)
{
  guint old = s->inbuf->len;
  g_byte_array_set_size (s->inbuf, old + READ_CHUNK);
  guint8 *dst = s->inbuf->data + old;
  gssize n;

  if (s->tls_active)
    {
      do
        n = gnutls_record_recv (s->tls, dst, READ_CHUNK);
      while (n == GNUTLS_E_INTERRUPTED);
      if (n == GNUTLS_E_AGAIN)
        n = -1;
      else if (n == GNUTLS_E_REHANDSHAKE || n == GNUTLS_E_WARNING_ALERT_RECEIVED)
        n = -1; /* TLS 1.2 renegotiation is refused by ignoring it */
      else if (n == GNUTLS_E_PREMATURE_TERMINATION)
        n = 0; /* the client closed without close_notify: plain EOF */
      else if (n < 0)
        {
          g_byte_array_set_size (s->inbuf, old);
          g_autofree char *why
              = g_strdup_printf ("tls read: %s", gnutls_strerror ((int) n));
          mh_server__session_close (s, why);
          return -2;
        }
    }
  else
    {
      do
        n = recv (s->fd, dst, READ_CHUNK, 0);
      while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        n = -1;
      else if (n < 0)
        {
          int e = errno;
          g_byte_array_set_size (s->inbuf, old);
          g_autofree char *why = g_strdup_printf ("read: %s", g_strerror (e));
          mh_server__session_close (s, why);
          return -2;
        }
    }
  g_byte_array_set_size (s->inbuf, old + (guint) MAX (n, 0));
  if (n > 0)
    s->last_activity_us = g_get_monotonic_time ();
  return n;
}

/* Writes what it can. Returns FALSE if the session closed. */
static gboolean
do_write (MhServerSession *s)
{
  while (out_pending (s) > 0)
    {
      const guint8 *p = s->outbuf->data + s->out_off;
      gssize n;
      if (s->tls_active)
        {
          gsize len = s->tls_send_len ? s->tls_send_len
                                      : MIN (out_pending (s), 16384);
          do
            n = gnutls_record_send (s->tls, p, len);
          while (n == GNUTLS_E_INTERRUPTED);
          if (n == GNUTLS_E_AGAIN)
            {
              s->tls_send_len = len;
              return TRUE;
            }
          s->tls_send_len = 0;
          if (n < 0)
            {
              g_autofree char *why = g_strdup_printf (
                  "tls write: %s", gnutls_strerror ((int) n));
              mh_server__session_close (s, why);
              return FALSE;
            }
        }
      else
        {
          do
            n = send (s->fd, p, out_pending (s), MSG_NOSIGNAL);
          while (n < 0 && errno == EINTR);
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return TRUE;
          if (n < 0)
            {
              int e = errno;
              g_autofree char *why
                  = g_strdup_printf ("write: %s", g_strerror (e));
              mh_server__session_close (s, why);
              return FALSE;
            }
        }
      s->out_off += (gsize) n;
      s->last_activity_us = g_get_monotonic_time ();
    }
  g_byte_array_set_size (s->outbuf, 0);
  s->out_off = 0;
  return TRUE;
}

/* ---- the engine ------------------------------------------------------- */

static void
handle_events (MhServerSession *s)
{
  if (s->engine && s->state != SESSION_CLOSED)
    s->service->funcs.handle_events (s->engine, s, s->service->user_data);
}

static void
create_engine (MhServerSession *s)
{
  s->engine = s->service->funcs.engine_new (s, s->service->user_data);
  if (s->engine == NULL)
    {
      mh_server__session_close (s, "service refused the session");
      return;
    }
  handle_events (s);
}

static gboolean
drain_engine (MhServerSession *s)
{
  gboolean got = FALSE;
  const guint8 *p;
  gsize n;
  while (s->engine && out_pending (s) < MH_LIMIT_OUTPUT_BUFFER
         && (n = s->service->funcs.peek_output (s->engine, &p)) > 0)
    {
      append_out (s, p, n);
      s->service->funcs.consume_output (s->engine, n);
      got = TRUE;
    }
  return got;
}

static gboolean
can_read (MhServerSession *s)
{
  return s->state == SESSION_OPEN && s->engine != NULL && !s->eof
         && !s->want_starttls && !s->server_closing && !s->goodbye_pending
         && s->inbuf->len == 0 && out_pending (s) < MH_LIMIT_OUTPUT_BUFFER
         && !s->service->funcs.is_closing (s->engine)
         && (s->service->funcs.want_read == NULL
             || s->service->funcs.want_read (s->engine));
}

static void
pump (MhServerSession *s, gboolean readable)
{
  if (s->in_pump)
    {
      s->repump = TRUE;
      return;
    }
  s->in_pump = TRUE;
  mh_server_session_ref (s);

  int round;
  for (round = 0; round < PUMP_ROUNDS && s->state != SESSION_CLOSED;
       round++)
    {
      gboolean progress = FALSE;
      s->repump = FALSE;

      if (s->state == SESSION_HANDSHAKE)
        {
          int r = tls_handshake (s);
          if (r < 0)
            break;
          if (r == 0)
            {
              set_events (s, gnutls_record_get_direction (s->tls) ? G_IO_OUT
                                                                 : G_IO_IN);
              break;
            }
          if (s->engine == NULL)
            create_engine (s); /* implicit TLS: the engine starts now */
          else if (s->service->funcs.tls_started)
            {
              s->service->funcs.tls_started (s->engine, s,
                                             s->service->user_data);
              handle_events (s);
            }
          if (s->state == SESSION_CLOSED)
            break;
          progress = TRUE;
        }

      /* Read: from the socket when poll said so, or from what GnuTLS
       * already decrypted. */
      if (can_read (s)
          && (readable
              || (s->tls_active && gnutls_record_check_pending (s->tls) > 0)))
        {
          gssize n = do_read (s);
          if (n == -2)
            break;
          if (n == 0)
            {
              s->eof = TRUE;
              progress = TRUE;
            }
          else if (n > 0)
            progress = TRUE;
          else
            readable = FALSE;
        }

      /* Feed held input (STARTTLS drops it instead, below). */
      if (s->engine && s->inbuf->len > 0 && !s->want_starttls
          && !s->server_closing && !s->goodbye_pending)
        {
          if (s->service->funcs.tick)
            s->service->funcs.tick (s->engine, g_get_monotonic_time ());
          gsize took = s->service->funcs.feed (s->engine, s->inbuf->data,
                                               s->inbuf->len);
          took = MIN (took, (gsize) s->inbuf->len);
          if (took > 0)
            {
              g_byte_array_remove_range (s->inbuf, 0, (guint) took);
              progress = TRUE;
            }
        }

      /* Events: after input, and after output was taken (an engine that
       * stopped parsing until its output drained goes on now). Rounds
       * only repeat on progress, so this is bounded. */
      if (s->engine && s->state == SESSION_OPEN && !s->server_closing)
        {
          handle_events (s);
          if (s->state == SESSION_CLOSED)
            break;
        }

      if (drain_engine (s))
        progress = TRUE;
      gsize before = out_pending (s);
      if (!do_write (s))
        break;
      if (out_pending (s) != before)
        progress = TRUE;

      /* STARTTLS once the go-ahead is on the wire. */
      if (s->want_starttls && out_pending (s) == 0 && s->state == SESSION_OPEN)
        {
          s->want_starttls = FALSE;
          if (s->inbuf->len > 0)
            mh_log_notice (SVC_NAME (s), s->id, s->peer,
                           "discarding %u bytes sent after STARTTLS",
                           s->inbuf->len);
          g_byte_array_set_size (s->inbuf, 0);
          if (!tls_setup (s))
            {
              mh_server__session_close (s, "cannot start TLS");
              break;
            }
          progress = TRUE;
          continue;
        }

      /* Close when everything is said. */
      if (s->engine && s->state == SESSION_OPEN)
        {
          gboolean engine_done = s->service->funcs.is_closed (s->engine);
          const guint8 *unused = NULL;
          gboolean flushed
              = out_pending (s) == 0
                && s->service->funcs.peek_output (s->engine, &unused) == 0;
          /* is_closed: the engine is finished and will never wait on
           * pending work; is_closing: finish that work first. */
          gboolean closing = engine_done || s->server_closing
                             || s->service->funcs.is_closing (s->engine);
          if (flushed && closing && (s->pending == 0 || engine_done))
            {
              mh_server__session_close (s, s->server_closing
                                               ? "closed by server"
                                               : "closed by protocol");
              break;
            }
          if (s->eof && s->inbuf->len == 0 && s->pending == 0 && flushed)
            {
              mh_server__session_close (s, "client closed the connection");
              break;
            }
        }
      if (!progress && !s->repump)
        break;
    }

  /* A busy client used up this turn; come back on the next one rather
   * than starve others (and poll cannot see records GnuTLS holds). */
  if (round == PUMP_ROUNDS && s->state != SESSION_CLOSED)
    mh_server_session_kick (s);
  if (s->state != SESSION_CLOSED && s->state != SESSION_HANDSHAKE)
    {
      GIOCondition ev = 0;
      if (can_read (s))
        ev |= G_IO_IN;
      if (out_pending (s) > 0)
        ev |= G_IO_OUT;
      set_events (s, ev);
    }
  s->in_pump = FALSE;
  mh_server_session_unref (s);
}

void
mh_server__session_begin (MhServerSession *s)
{
  IoSource *io = (IoSource *) g_source_new (&io_funcs, sizeof (IoSource));
  io->session = s;
  s->io_source = (GSource *) io;
  g_source_set_static_name (s->io_source, "mh-session");
  s->io_events = G_IO_IN;
  s->io_tag = g_source_add_unix_fd (s->io_source, s->fd, G_IO_IN);
  g_source_attach (s->io_source, g_main_context_get_thread_default ());

  mh_log_info (SVC_NAME (s), s->id, s->peer, "connect to %s%s", s->local,
               s->implicit_tls ? " (TLS)" : "");
  /* Closing drops the server's reference: keep ours until we return. */
  mh_server_session_ref (s);
  if (s->implicit_tls)
    {
      if (tls_setup (s))
        pump (s, FALSE);
      else
        mh_server__session_close (s, "TLS is not available");
    }
  else
    {
      create_engine (s);
      if (s->state != SESSION_CLOSED)
        pump (s, FALSE);
    }
  mh_server_session_unref (s);
}

void
mh_server__session_tick (MhServerSession *s, gint64 now)
{
  if (s->state == SESSION_CLOSED)
    return;
  if (s->state == SESSION_HANDSHAKE)
    {
      if (now > s->handshake_deadline_us)
        mh_server__session_close (s, "TLS handshake timeout");
      return;
    }
  if (s->server_closing)
    {
      if (now > s->close_deadline_us)
        mh_server__session_close (s, "client did not read the goodbye");
      return;
    }
  if (s->engine == NULL)
    return;
  if (s->pending == 0 && !s->goodbye_pending)
    {
      MhServerTimeout kind = s->service->funcs.timeout
                                 ? s->service->funcs.timeout (s->engine)
                                 : MH_SERVER_TIMEOUT_IDLE;
      gint64 limit = kind == MH_SERVER_TIMEOUT_IDLE
                         ? s->service->idle_timeout_us
                     : kind == MH_SERVER_TIMEOUT_COMMAND
                         ? s->service->command_timeout_us
                         : 0;
      if (limit > 0 && now - s->last_activity_us > limit)
        {
          mh_server__session_goodbye (
              s, kind == MH_SERVER_TIMEOUT_IDLE
                     ? MH_SERVER_GOODBYE_IDLE_TIMEOUT
                     : MH_SERVER_GOODBYE_COMMAND_TIMEOUT);
          return;
        }
    }
  if (s->service->funcs.tick)
    {
      s->service->funcs.tick (s->engine, now);
      handle_events (s);
      pump (s, FALSE);
    }
}

/* ---- pending work ----------------------------------------------------- */

/* A job or delayed call of @s completed: account, then finish a pending
 * goodbye or go on pumping. */
static void
work_completed (MhServerSession *s)
{
  g_assert (s->pending > 0);
  s->pending--;
  s->last_activity_us = g_get_monotonic_time ();
  if (s->state == SESSION_CLOSED)
    return;
  handle_events (s);
  if (s->pending == 0 && s->goodbye_pending)
    mh_server__session_goodbye (s, s->goodbye_reason);
  else
    pump (s, FALSE);
}

void
mh_server__job_run (gpointer job_ptr)
{
  Job *job = job_ptr;
  job->func (job->data);
}

/* Called by the server on the main loop when a job's func returned. */
void
mh_server__job_done (gpointer job_ptr)
{
  Job *job = job_ptr;
  MhServerSession *s = job->session;

  s->running_jobs--;
  if (job->done)
    job->done (s, job->data, job->user_data);
  if (job->data_free)
    job->data_free (job->data);
  work_completed (s);
  mh_server__job_finished (s->server);
  g_free (job);
  mh_server_session_unref (s);
}

void
mh_server_session_run_blocking (MhServerSession *s, MhServerJobFunc func,
                                gpointer data, GDestroyNotify data_free,
                                MhServerSessionFunc done, gpointer user_data)
{
  g_return_if_fail (s != NULL && func != NULL);
  Job *job = g_new0 (Job, 1);
  job->session = mh_server_session_ref (s);
  job->func = func;
  job->data = data;
  job->data_free = data_free;
  job->done = done;
  job->user_data = user_data;
  s->pending++;
  s->running_jobs++;
  mh_server__push_job (s->server, job);
}

static gboolean
delayed_fire (gpointer dc_ptr)
{
  DelayedCall *dc = dc_ptr;
  MhServerSession *s = dc->session;

  s->delayed = g_list_remove (s->delayed, dc);
  if (dc->func)
    dc->func (s, dc->data, dc->user_data);
  if (dc->data_free)
    dc->data_free (dc->data);
  work_completed (s);
  g_source_unref (dc->source);
  g_free (dc);
  mh_server_session_unref (s);
  return G_SOURCE_REMOVE;
}

void
mh_server_session_call_later (MhServerSession *s, guint delay_ms,
                              MhServerSessionFunc func, gpointer data,
                              GDestroyNotify data_free, gpointer user_data)
{
  g_return_if_fail (s != NULL);
  DelayedCall *dc = g_new0 (DelayedCall, 1);
  dc->session = mh_server_session_ref (s);
  dc->func = func;
  dc->data = data;
  dc->data_free = data_free;
  dc->user_data = user_data;
  dc->source = g_timeout_source_new (mh_server__shutting_down (s->server)
                                         ? 0
                                         : delay_ms);
  g_source_set_callback (dc->source, delayed_fire, dc, NULL);
  g_source_set_static_name (dc->source, "mh-session-delay");
  s->pending++;
  s->delayed = g_list_prepend (s->delayed, dc);
  g_source_attach (dc->source, g_main_context_get_thread_default ());
}

static gboolean
kick_fire (gpointer ptr)
{
  MhServerSession *s = ptr;
  g_source_unref (s->kick_source);
  s->kick_source = NULL;
  if (s->state != SESSION_CLOSED)
    {
      handle_events (s);
      pump (s, FALSE);
    }
  return G_SOURCE_REMOVE;
}

void
mh_server_session_kick (MhServerSession *s)
{
  g_return_if_fail (s != NULL);
  if (s->kick_source || s->state == SESSION_CLOSED)
    return;
  s->kick_source = g_idle_source_new ();
  g_source_set_callback (s->kick_source, kick_fire,
                         mh_server_session_ref (s),
                         (GDestroyNotify) mh_server_session_unref);
  g_source_attach (s->kick_source, g_main_context_get_thread_default ());
}

/* ---- accessors -------------------------------------------------------- */

const char *
mh_server_session_get_id (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->id;
}

const char *
mh_server_session_get_service (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->service->name;
}

const char *
mh_server_session_get_peer (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->peer;
}

const char *
mh_server_session_get_peer_ip (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->peer_ip;
}

const char *
mh_server_session_get_local (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->local;
}

MhConfig *
mh_server_session_get_config (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return mh_server__config (s->server);
}

gboolean
mh_server_session_is_connected (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return s->state != SESSION_CLOSED;
}

gboolean
mh_server_session_can_start_tls (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return s->state == SESSION_OPEN && !s->tls_active && s->tls == NULL
         && s->service->tls == MH_TLS_MODE_STARTTLS
         && mh_server__current_creds (s->server) != NULL;
}

gboolean
mh_server_session_start_tls (MhServerSession *s, GError **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  if (!mh_server_session_can_start_tls (s) || s->want_starttls)
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_STATE,
                   "%s: STARTTLS is not available on this connection",
                   s->service->name);
      return FALSE;
    }
  s->want_starttls = TRUE;
  if (!s->in_pump)
    mh_server_session_kick (s);
  return TRUE;
}

gboolean
mh_server_session_is_tls (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return s->tls_active;
}

const char *
mh_server_session_get_tls_version (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->tls_version;
}

const char *
mh_server_session_get_tls_cipher (MhServerSession *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->tls_cipher;
}
