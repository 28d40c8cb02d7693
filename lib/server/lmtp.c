/* lib/server lmtp.c: the LMTP service (RFC 2033), the SMTP engine in its
 * LMTP role as an MhService, delivering through lib/delivery.
 *
 * Design notes
 * - The engine (lib/proto/smtp) owns the protocol; this file is only the
 *   host glue of docs/smtp.md: it pulls events and answers them. While an
 *   event waits for its answer the engine parses nothing more, so
 *   pipelined commands wait their turn without extra state here.
 * - RCPT is resolved and quota-checked on a worker thread
 *   (mh_delivery_check_rcpt() may open an account's store, which is disk
 *   work); the answer is given from the job's completion.
 * - DATA/BDAT chunks go into an MhDeliverySpool on the main loop: a write
 *   into the page cache through a 64 KiB buffer, cheap next to the
 *   parsing. A spool failure (disk full) or an oversized message does not
 *   break the session: the rest of the data is read and dropped and every
 *   recipient gets the same failure at the end.
 * - DATA_END runs mh_delivery_deliver_spool() on a worker thread and
 *   answers once per accepted recipient, in RCPT order (RFC 2033 4.2),
 *   from its completion, i.e. only when each copy is durable. A client
 *   that went away meanwhile still has its mail stored; the replies are
 *   dropped (the front MTA will retry and may deliver a duplicate, never
 *   lose one).
 * - The transaction (envelope, spool) lives in the session and is
 *   forgotten at RSET, after DATA_END and DATA_ABORTED, and at the next
 *   MAIL. The spool has no name on disk, so an aborted message leaves
 *   nothing behind.
 * - No AUTH: LMTP serves a trusted MTA on a protected socket. STARTTLS
 *   is offered only where the listener allows it and a certificate is
 *   loaded.
 */
#include "server-private.h"
#include "mailhost/lmtp.h"
#include "mailhost/smtp.h"

#include <string.h>

#define SVC "lmtp"

typedef struct
{
  MhDelivery *delivery;
  char *hostname;
  MhSmtpLimits limits;
} LmtpService;

typedef struct
{
  LmtpService *svc;
  MhServerSession *session;   /* borrowed: the session owns us */
  MhSmtpEngine *e;
  MhDeliveryEnvelope *env;    /* current transaction, or NULL */
  guint64 size_hint;          /* MAIL FROM SIZE= */
  MhDeliverySpool *spool;     /* during DATA */
  GError *spool_error;        /* first spool failure of this message */
} Lmtp;

static void
lmtp_service_free (gpointer data)
{
  LmtpService *svc = data;
  mh_delivery_unref (svc->delivery);
  g_free (svc->hostname);
  g_free (svc);
}

static void
forget_message (Lmtp *l)
{
  g_clear_pointer (&l->spool, mh_delivery_spool_unref);
  g_clear_error (&l->spool_error);
}

static void
forget_transaction (Lmtp *l)
{
  forget_message (l);
  g_clear_pointer (&l->env, mh_delivery_envelope_unref);
  l->size_hint = 0;
}

static gpointer
lmtp_new (MhServerSession *session, gpointer user_data)
{
  LmtpService *svc = user_data;
  Lmtp *l = g_new0 (Lmtp, 1);
  l->svc = svc;
  l->session = session;
  l->e = mh_smtp_engine_new (MH_SMTP_ROLE_LMTP, &svc->limits);
  MhSmtpExtensions ext = MH_SMTP_EXT_DEFAULT;
  if (mh_server_session_can_start_tls (session))
    ext |= MH_SMTP_EXT_STARTTLS;
  mh_smtp_engine_set_extensions (l->e, ext);
  mh_smtp_engine_set_tls_active (l->e, mh_server_session_is_tls (session));
  mh_smtp_engine_greet (l->e, svc->hostname, 220, NULL);
  return l;
}

static void
lmtp_free (gpointer engine)
{
  Lmtp *l = engine;
  forget_transaction (l);
  mh_smtp_engine_unref (l->e);
  g_free (l);
}

static gsize
lmtp_feed (gpointer engine, const guint8 *data, gsize len)
{
  return mh_smtp_engine_feed (((Lmtp *) engine)->e, data, len);
}

static gsize
lmtp_peek (gpointer engine, const guint8 **data_out)
{
  return mh_smtp_engine_peek_output (((Lmtp *) engine)->e, data_out);
}

static void
lmtp_consume (gpointer engine, gsize len)
{
  mh_smtp_engine_consume_output (((Lmtp *) engine)->e, len);
}

static gboolean
lmtp_is_closing (gpointer engine)
{
  return mh_smtp_engine_is_closing (((Lmtp *) engine)->e);
}

static gboolean
lmtp_is_closed (gpointer engine)
{
  return mh_smtp_engine_is_closed (((Lmtp *) engine)->e);
}

static void
lmtp_tick (gpointer engine, gint64 now_us)
{
  mh_smtp_engine_tick (((Lmtp *) engine)->e, now_us);
}

static gboolean
lmtp_want_read (gpointer engine)
{
  return mh_smtp_engine_want_read (((Lmtp *) engine)->e);
}

static MhServerTimeout
lmtp_timeout (gpointer engine)
{
  /* the engine runs RFC 5321 4.5.3.2's timers itself (tick) */
  return MH_SERVER_TIMEOUT_NONE;
}

/* ---- RCPT --------------------------------------------------------------- */

typedef struct
{
  MhDelivery *delivery;
  char *rcpt;
  char *sender;
  guint64 size;
  guint notify;
  char *orcpt;
  /* out */
  gboolean ok;
  guint code;
  char *enhanced;
  char *text;
} RcptJob;

static void
rcpt_job_free (gpointer data)
{
  RcptJob *j = data;
  mh_delivery_unref (j->delivery);
  g_free (j->rcpt);
  g_free (j->sender);
  g_free (j->orcpt);
  g_free (j->enhanced);
  g_free (j->text);
  g_free (j);
}

static void
rcpt_job (gpointer data)
{
  RcptJob *j = data;
  j->ok = mh_delivery_check_rcpt (j->delivery, j->rcpt, j->sender, FALSE,
                                  j->size, &j->code, &j->enhanced, &j->text);
}

static void
rcpt_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  Lmtp *l = user_data;
  RcptJob *j = data;
  if (j->ok && l->env != NULL)
    mh_delivery_envelope_add_recipient (l->env, j->rcpt, j->notify,
                                        j->orcpt);
  if (!j->ok)
    mh_log_info (SVC, mh_server_session_get_id (session),
                 mh_server_session_get_peer (session), "RCPT <%s>: %u %s %s",
                 j->rcpt, j->code, j->enhanced, j->text);
  mh_smtp_engine_reply (l->e, j->code, j->enhanced, j->text);
}

/* ---- DATA_END ----------------------------------------------------------- */

typedef struct
{
  MhDelivery *delivery;
  MhDeliveryEnvelope *env;
  MhDeliverySpool *spool;
  GPtrArray *results;
  GError *error;
} DeliverJob;

static void
deliver_job_free (gpointer data)
{
  DeliverJob *j = data;
  mh_delivery_unref (j->delivery);
  mh_delivery_envelope_unref (j->env);
  mh_delivery_spool_unref (j->spool);
  if (j->results)
    g_ptr_array_unref (j->results);
  g_clear_error (&j->error);
  g_free (j);
}

static void
deliver_job (gpointer data)
{
  DeliverJob *j = data;
  j->results = mh_delivery_deliver_spool (j->delivery, j->env, j->spool,
                                          &j->error);
}

/* One reply per recipient for a failure of the whole message. */
static void
reply_all (Lmtp *l, guint n, const GError *error)
{
  guint code = 451;
  const char *enh = "4.3.0";
  if (g_error_matches (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_TOO_BIG))
    code = 552, enh = "5.3.4";
  else if (g_error_matches (error, MH_DELIVERY_ERROR,
                            MH_DELIVERY_ERROR_INVALID))
    code = 554, enh = "5.6.0";
  mh_log_warning (SVC, mh_server_session_get_id (l->session),
                  mh_server_session_get_peer (l->session),
                  "message not delivered: %s", error->message);
  for (guint i = 0; i < n; i++)
    mh_smtp_engine_reply (l->e, code, enh, error->message);
}

static void
deliver_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  Lmtp *l = user_data;
  DeliverJob *j = data;
  guint n = mh_delivery_envelope_get_n_recipients (j->env);
  if (j->results == NULL)
    {
      reply_all (l, n, j->error);
      return;
    }
  for (guint i = 0; i < j->results->len; i++)
    {
      MhDeliveryResult *r = g_ptr_array_index (j->results, i);
      mh_smtp_engine_reply (l->e, mh_delivery_result_get_code (r),
                            mh_delivery_result_get_enhanced (r),
                            mh_delivery_result_get_text (r));
    }
}

/* Returns TRUE when a delivery job was started (it will answer). */
static gboolean
data_end (Lmtp *l, const MhSmtpEventDataEnd *ev)
{
  g_autoptr (GError) error = NULL;
  guint n = l->env ? mh_delivery_envelope_get_n_recipients (l->env) : 0;
  if (n != ev->n_replies)
    {
      /* cannot happen: the engine counts the RCPTs we accepted */
      g_set_error (&error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_FAILED,
                   "internal error: %u recipients, %u replies expected", n,
                   ev->n_replies);
      reply_all (l, ev->n_replies, error);
      forget_transaction (l);
      return FALSE;
    }
  if (l->spool_error == NULL && l->spool != NULL)
    mh_delivery_spool_finish (l->spool, &l->spool_error);
  if (l->spool_error != NULL || l->spool == NULL)
    {
      if (l->spool_error == NULL)
        g_set_error_literal (&l->spool_error, MH_DELIVERY_ERROR,
                             MH_DELIVERY_ERROR_SPOOL, "no spool file");
      reply_all (l, n, l->spool_error);
      forget_transaction (l);
      return FALSE;
    }
  DeliverJob *j = g_new0 (DeliverJob, 1);
  j->delivery = mh_delivery_ref (l->svc->delivery);
  j->env = g_steal_pointer (&l->env);
  j->spool = g_steal_pointer (&l->spool);
  forget_transaction (l);
  mh_server_session_run_blocking (l->session, deliver_job, j,
                                  deliver_job_free, deliver_done, l);
  return TRUE;
}

/* ---- events ------------------------------------------------------------- */

static void
lmtp_handle_events (gpointer engine, MhServerSession *session,
                    gpointer user_data)
{
  Lmtp *l = engine;
  const char *id = mh_server_session_get_id (session);
  const char *peer = mh_server_session_get_peer (session);
  MhSmtpEvent ev;

  while (mh_smtp_engine_next_event (l->e, &ev))
    {
      switch (ev.type)
        {
        case MH_SMTP_EVENT_HELO:
          mh_smtp_engine_accept (l->e);
          break;
        case MH_SMTP_EVENT_MAIL:
          forget_transaction (l);
          l->env = mh_delivery_envelope_new (
              ev.mail.reverse_path->is_null ? ""
                                            : ev.mail.reverse_path->address);
          mh_delivery_envelope_set_dsn (l->env, ev.mail.envid, ev.mail.ret);
          l->size_hint = ev.mail.size;
          mh_smtp_engine_accept (l->e);
          break;
        case MH_SMTP_EVENT_RCPT:
          {
            RcptJob *j = g_new0 (RcptJob, 1);
            j->delivery = mh_delivery_ref (l->svc->delivery);
            j->rcpt = g_strdup (ev.rcpt.forward_path->address);
            j->sender = g_strdup (
                l->env ? mh_delivery_envelope_get_sender (l->env) : "");
            j->size = l->size_hint;
            j->notify = ev.rcpt.notify;
            if (ev.rcpt.orcpt)
              j->orcpt = g_strdup_printf (
                  "%s;%s", ev.rcpt.orcpt_type ? ev.rcpt.orcpt_type : "rfc822",
                  ev.rcpt.orcpt);
            mh_server_session_run_blocking (session, rcpt_job, j,
                                            rcpt_job_free, rcpt_done, l);
            /* the engine holds further input until rcpt_done answers */
            return;
          }
        case MH_SMTP_EVENT_DATA:
          forget_message (l);
          l->spool = mh_delivery_spool_new (l->svc->delivery,
                                            &l->spool_error);
          if (l->spool == NULL)
            {
              mh_log_error (SVC, id, peer, "%s", l->spool_error->message);
              mh_smtp_engine_reply (l->e, 451, "4.3.0",
                                    "cannot spool the message, try again "
                                    "later");
              g_clear_error (&l->spool_error);
            }
          else
            mh_smtp_engine_accept (l->e);
          break;
        case MH_SMTP_EVENT_DATA_CHUNK:
          if (l->spool != NULL && l->spool_error == NULL)
            mh_delivery_spool_write (l->spool, ev.chunk.data, ev.chunk.len,
                                     &l->spool_error);
          break;
        case MH_SMTP_EVENT_DATA_END:
          if (data_end (l, &ev.end))
            return; /* the deliver job answers; the engine waits */
          break;
        case MH_SMTP_EVENT_DATA_ABORTED:
          forget_transaction (l);
          break;
        case MH_SMTP_EVENT_RSET:
          forget_transaction (l);
          if (ev.any.needs_reply)
            mh_smtp_engine_accept (l->e);
          break;
        case MH_SMTP_EVENT_STARTTLS:
          if (mh_server_session_can_start_tls (session))
            {
              mh_smtp_engine_accept (l->e);
              if (!mh_server_session_start_tls (session, NULL))
                mh_log_warning (SVC, id, peer, "STARTTLS failed to start");
            }
          else
            mh_smtp_engine_reply (l->e, 454, "4.7.0", "TLS not available");
          break;
        case MH_SMTP_EVENT_AUTH:
        case MH_SMTP_EVENT_AUTH_RESPONSE:
          mh_smtp_engine_reply (l->e, 502, "5.5.1",
                                "no authentication over LMTP");
          break;
        case MH_SMTP_EVENT_TIMEOUT:
          mh_log_info (SVC, id, peer, "timeout%s",
                       ev.timeout.in_data ? " in DATA" : "");
          break;
        case MH_SMTP_EVENT_ABUSE:
          mh_log_notice (SVC, id, peer, "closing: limit broken (%d)",
                         (int) ev.abuse.reason);
          break;
        default:
          if (ev.any.needs_reply)
            mh_smtp_engine_accept (l->e);
          break;
        }
    }
}

static void
lmtp_tls_started (gpointer engine, MhServerSession *session,
                  gpointer user_data)
{
  Lmtp *l = engine;
  forget_transaction (l);
  guint64 dropped = mh_smtp_engine_starttls_done (l->e);
  if (dropped > 0)
    mh_log_notice (SVC, mh_server_session_get_id (session),
                   mh_server_session_get_peer (session),
                   "dropped %" G_GUINT64_FORMAT
                   " bytes sent after STARTTLS (injection attempt?)",
                   dropped);
}

static const char *
lmtp_goodbye (MhServerGoodbye reason, gpointer user_data)
{
  switch (reason)
    {
    case MH_SERVER_GOODBYE_TOO_MANY_CONNECTIONS:
      return "421 4.7.0 Too many connections\r\n";
    case MH_SERVER_GOODBYE_TOO_MANY_FROM_IP:
      return "421 4.7.0 Too many connections from your address\r\n";
    case MH_SERVER_GOODBYE_IDLE_TIMEOUT:
      return "421 4.4.2 Idle timeout\r\n";
    case MH_SERVER_GOODBYE_COMMAND_TIMEOUT:
      return "421 4.4.2 Command timeout\r\n";
    case MH_SERVER_GOODBYE_SHUTDOWN:
      return "421 4.3.2 Service shutting down\r\n";
    }
  return NULL;
}

static void
lmtp_engine_goodbye (gpointer engine, MhServerSession *session,
                     MhServerGoodbye reason, gpointer user_data)
{
  mh_smtp_engine_shutdown (((Lmtp *) engine)->e,
                           reason == MH_SERVER_GOODBYE_SHUTDOWN
                               ? "Service shutting down"
                               : "Closing connection");
}

static const MhService lmtp_service = {
  .version = MH_SERVICE_VERSION,
  .engine_new = lmtp_new,
  .engine_free = lmtp_free,
  .feed = lmtp_feed,
  .peek_output = lmtp_peek,
  .consume_output = lmtp_consume,
  .is_closing = lmtp_is_closing,
  .is_closed = lmtp_is_closed,
  .tick = lmtp_tick,
  .handle_events = lmtp_handle_events,
  .timeout = lmtp_timeout,
  .tls_started = lmtp_tls_started,
  .goodbye = lmtp_goodbye,
  .engine_goodbye = lmtp_engine_goodbye,
  .want_read = lmtp_want_read,
};

gboolean
mh_server_register_lmtp_service (MhServer *server, MhDelivery *delivery,
                                 GError **error)
{
  g_return_val_if_fail (server != NULL && delivery != NULL, FALSE);
  LmtpService *svc = g_new0 (LmtpService, 1);
  svc->delivery = mh_delivery_ref (delivery);
  MhConfig *config = mh_delivery_get_config (delivery);
  /* the limits the engine enforces while reading: [limits] */
  svc->limits.version = 1;
  gint64 max = mh_config_get_int (config, "limits", "max_message_size");
  svc->limits.max_message_size = max > 0 ? (guint64) max : 0;
  const char *host = mh_config_get_string (config, "general", "hostname");
  svc->hostname = g_strdup (host && *host ? host : g_get_host_name ());
  if (!mh_server_register_service (server, "lmtp", &lmtp_service, svc,
                                   lmtp_service_free, error))
    {
      lmtp_service_free (svc); /* not taken on failure */
      return FALSE;
    }
  return TRUE;
}
