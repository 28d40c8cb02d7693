/* lib/server lmtp.c: the SMTP-engine services of lib/server: LMTP (RFC
 * 2033), SMTP (RFC 5321, port 25) and submission (RFC 6409, ports 587 and
 * 465). One adapter drives the SMTP engine in each role as an MhService
 * and delivers through lib/delivery; the roles differ only in the policy
 * noted below (see docs/smtp.md and docs/delivery.md).
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
 * - LMTP: no AUTH, it serves a trusted MTA on a protected socket.
 *   STARTTLS is offered only where the listener allows it and a
 *   certificate is loaded.
 *
 * SMTP and submission roles (issue 6)
 * - Only local domains are accepted: a recipient in another domain gets
 *   554 5.7.1 (relaying denied) without AUTH, and with AUTH an honest
 *   451 4.7.1 "outbound relay is not enabled" until lib/queue exists.
 *   The check runs in the RCPT job (mh_directory_domain_is_local() reads
 *   LMDB).
 * - AUTH (PLAIN, LOGIN) goes through lib/auth: the SASL exchange on the
 *   main loop (decoding only), the password check on a worker thread
 *   (a deliberately slow hash), and the throttle's delay as a
 *   mh_server_session_call_later() timer, so a guessing client waits
 *   without stalling anyone. AUTH is offered only over TLS (submission
 *   always; port 25 unless [auth] allow_plaintext).
 * - An authenticated session may send only as its own addresses: the
 *   account, its aliases and sub-addresses (553 5.7.1 otherwise). The
 *   MAIL address is resolved on a worker thread and must lead to the
 *   login's mailbox without a catch-all or group step (a catch-all would
 *   let its owner claim every address of the domain).
 * - A Received header (RFC 5321 4.4, with-protocol of RFC 3848 / 6531,
 *   TLS version and cipher) is the first thing written to the spool, so
 *   the stored message is the spool file plus the pipeline's
 *   Return-Path and Delivered-To: the message never sits in memory.
 * - SMTP gives one reply after the data for every recipient (RFC 5321
 *   4.2.5). With no bounce queue yet, a message that some recipients got
 *   and others did not is answered 451: the client retries, the
 *   recipients that failed for good are then refused at RCPT, and the
 *   others may get a duplicate. A duplicate is better than a silent loss.
 */
#include "server-private.h"
#include "mailhost/auth.h"
#include "mailhost/lmtp.h"
#include "mailhost/resolve.h"
#include "mailhost/smtp.h"

#include <string.h>

#define SVC (l->svc->name)

typedef struct
{
  MhDelivery *delivery;
  MhAuthenticator *auth;      /* NULL: no AUTH (LMTP, or not configured) */
  MhSmtpRole role;
  char *name;                 /* service name: logs, lib/auth's protocol */
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
  gboolean smtputf8;          /* MAIL FROM ... SMTPUTF8 */
  MhDeliverySpool *spool;     /* during DATA */
  GError *spool_error;        /* first spool failure of this message */
  MhSmtpHeloKind helo_kind;   /* for the Received with-protocol */
  MhSaslServer *sasl;         /* an AUTH exchange in progress */
  char *login;                /* the account after AUTH (ASCII address) */
} Lmtp;

static void
lmtp_service_free (gpointer data)
{
  LmtpService *svc = data;
  mh_delivery_unref (svc->delivery);
  mh_authenticator_unref (svc->auth);
  g_free (svc->name);
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
  l->smtputf8 = FALSE;
}

static gpointer
lmtp_new (MhServerSession *session, gpointer user_data)
{
  LmtpService *svc = user_data;
  Lmtp *l = g_new0 (Lmtp, 1);
  l->svc = svc;
  l->session = session;
  l->e = mh_smtp_engine_new (svc->role, &svc->limits);
  MhSmtpExtensions ext = MH_SMTP_EXT_DEFAULT;
  if (mh_server_session_can_start_tls (session))
    ext |= MH_SMTP_EXT_STARTTLS;
  mh_smtp_engine_set_extensions (l->e, ext);
  if (svc->auth != NULL)
    {
      /* The list for a TLS connection: the policy below hides AUTH until
       * TLS is up, so PLAIN and LOGIN never cross in clear. */
      g_auto (GStrv) mechs = mh_authenticator_list_mechanisms (svc->auth,
                                                               TRUE);
      mh_smtp_engine_set_auth_mechanisms (l->e, (const char *const *) mechs);
      MhSmtpPolicy policy = MH_SMTP_POLICY_NONE;
      if (svc->role == MH_SMTP_ROLE_SUBMISSION)
        policy |= MH_SMTP_POLICY_REQUIRE_AUTH
                  | MH_SMTP_POLICY_AUTH_REQUIRES_TLS;
      else if (!mh_authenticator_plaintext_allowed (svc->auth, FALSE))
        policy |= MH_SMTP_POLICY_AUTH_REQUIRES_TLS;
      mh_smtp_engine_set_policy (l->e, policy);
    }
  mh_smtp_engine_set_tls_active (l->e, mh_server_session_is_tls (session));
  mh_smtp_engine_greet (l->e, svc->hostname, 220, NULL);
  return l;
}

static void
lmtp_free (gpointer engine)
{
  Lmtp *l = engine;
  forget_transaction (l);
  g_clear_pointer (&l->sasl, mh_sasl_server_unref);
  g_free (l->login);
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

/* ---- MAIL: who an authenticated client may send as ---------------------- */

typedef struct
{
  MhDelivery *delivery;
  char *login;   /* ASCII address of the account */
  char *sender;
  /* out */
  gboolean ok;
  char *text;
} SenderJob;

static void
sender_job_free (gpointer data)
{
  SenderJob *j = data;
  mh_delivery_unref (j->delivery);
  g_free (j->login);
  g_free (j->sender);
  g_free (j->text);
  g_free (j);
}

/* TRUE when resolving @sender leads to @login's mailbox through the
 * account itself, an alias, a temporary alias or a sub-address; not
 * through a catch-all or a group (those would hand whole domains or
 * shared addresses to one member). */
static gboolean
sender_is_own (MhDirectory *dir, const char *login, const char *sender,
               GError **error)
{
  g_autoptr (MhResolver) r = mh_resolver_new (dir, NULL);
  g_autoptr (MhResolveResult) res = NULL;
  if (!mh_resolver_resolve (r, sender, -1, login, TRUE,
                            MH_RESOLVE_FLAGS_TRACE, &res, error))
    return FALSE;
  if (!mh_resolve_result_get_accepted (res))
    return FALSE;
  GPtrArray *trace = mh_resolve_result_get_trace (res);
  for (guint i = 0; trace && i < trace->len; i++)
    {
      MhResolveRule rule
          = mh_resolve_step_get_rule (g_ptr_array_index (trace, i));
      if (rule == MH_RESOLVE_RULE_CATCH_ALL || rule == MH_RESOLVE_RULE_GROUP)
        return FALSE;
    }
  GPtrArray *targets = mh_resolve_result_get_targets (res);
  for (guint i = 0; targets && i < targets->len; i++)
    {
      MhResolveTarget *t = g_ptr_array_index (targets, i);
      if (mh_resolve_target_get_kind (t) == MH_RESOLVE_TARGET_MAILBOX
          && g_ascii_strcasecmp (mh_resolve_target_get_address (t), login)
                 == 0)
        return TRUE;
    }
  return FALSE;
}

static void
sender_job (gpointer data)
{
  SenderJob *j = data;
  g_autoptr (GError) error = NULL;
  const char *at = strrchr (j->sender, '@');
  /* The null sender (a bounce or a read receipt) names nobody. */
  if (*j->sender == '\0' || g_ascii_strcasecmp (j->sender, j->login) == 0)
    j->ok = TRUE;
  else if (at == NULL
           || !mh_directory_domain_is_local (
               mh_delivery_get_directory (j->delivery), at + 1))
    j->ok = FALSE;
  else
    j->ok = sender_is_own (mh_delivery_get_directory (j->delivery), j->login,
                           j->sender, &error);
  if (!j->ok)
    j->text = g_strdup_printf (
        "<%s> is not one of the addresses of %s%s%s", j->sender, j->login,
        error ? ": " : "", error ? error->message : "");
}

static void
sender_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  Lmtp *l = user_data;
  SenderJob *j = data;
  if (j->ok)
    {
      mh_smtp_engine_accept (l->e);
      return;
    }
  forget_transaction (l);
  mh_log_notice (SVC, mh_server_session_get_id (session),
                 mh_server_session_get_peer (session), "MAIL refused: %s",
                 j->text);
  mh_smtp_engine_reply (l->e, 553, "5.7.1", j->text);
}

/* ---- RCPT --------------------------------------------------------------- */

typedef struct
{
  MhDelivery *delivery;
  MhSmtpRole role;
  char *rcpt;
  char *domain;       /* NULL: <postmaster> */
  const char *hostname; /* the service's, for <postmaster> */
  char *sender;
  char *login;        /* NULL: not authenticated */
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
  g_free (j->domain);
  g_free (j->sender);
  g_free (j->login);
  g_free (j->orcpt);
  g_free (j->enhanced);
  g_free (j->text);
  g_free (j);
}

/* RFC 5321 4.1.1.3: RCPT TO:<postmaster> without a domain must work.
 * It means the postmaster of this host: postmaster@hostname, or of the
 * domain above it (mx.example.org -> example.org), whichever is local. */
static char *
postmaster_address (MhDirectory *dir, const char *hostname)
{
  const char *dot = strchr (hostname, '.');
  if (mh_directory_domain_is_local (dir, hostname))
    return g_strconcat ("postmaster@", hostname, NULL);
  if (dot != NULL && strchr (dot + 1, '.') != NULL
      && mh_directory_domain_is_local (dir, dot + 1))
    return g_strconcat ("postmaster@", dot + 1, NULL);
  return NULL;
}

static void
rcpt_job (gpointer data)
{
  RcptJob *j = data;
  if (j->role != MH_SMTP_ROLE_LMTP && j->domain == NULL)
    {
      char *pm = postmaster_address (mh_delivery_get_directory (j->delivery),
                                     j->hostname);
      if (pm == NULL)
        {
          j->code = 550;
          j->enhanced = g_strdup ("5.1.1");
          j->text = g_strdup_printf (
              "<postmaster>: this host's name %s is not a local domain; "
              "write to postmaster@ one of its domains",
              j->hostname);
          return;
        }
      g_free (j->rcpt);
      j->rcpt = pm;
    }
  /* SMTP and submission: only our own domains (LMTP trusts its MTA). */
  if (j->role != MH_SMTP_ROLE_LMTP && j->domain != NULL
      && !mh_directory_domain_is_local (
          mh_delivery_get_directory (j->delivery), j->domain))
    {
      j->ok = FALSE;
      if (j->login != NULL)
        {
          j->code = 451;
          j->enhanced = g_strdup ("4.7.1");
          j->text = g_strdup_printf (
              "<%s>: outbound relay is not enabled on this server yet; "
              "only local recipients are accepted",
              j->rcpt);
        }
      else
        {
          j->code = 554;
          j->enhanced = g_strdup ("5.7.1");
          j->text = g_strdup_printf (
              "<%s>: relaying denied: %s is not a domain of this server",
              j->rcpt, j->domain);
        }
      return;
    }
  j->ok = mh_delivery_check_rcpt (j->delivery, j->rcpt,
                                  j->login ? j->login : j->sender,
                                  j->login != NULL, j->size, &j->code,
                                  &j->enhanced, &j->text);
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

/* ---- AUTH --------------------------------------------------------------- */

typedef struct
{
  MhAuthenticator *auth;
  MhSaslCredentials *creds;
  char *service;
  char *peer_ip;
  /* out */
  MhAccountInfo *account;
  guint delay_ms;
  GError *error;
} AuthJob;

static void
auth_job_free (gpointer data)
{
  AuthJob *j = data;
  mh_authenticator_unref (j->auth);
  mh_sasl_credentials_free (j->creds); /* wipes the password */
  g_free (j->service);
  g_free (j->peer_ip);
  g_clear_pointer (&j->account, mh_account_info_unref);
  g_clear_error (&j->error);
  g_free (j);
}

static void
auth_job (gpointer data)
{
  AuthJob *j = data;
  j->account = mh_authenticator_check (j->auth, j->creds, j->service,
                                       j->peer_ip, g_get_monotonic_time (),
                                       &j->delay_ms, &j->error);
}

/* The reply for a failed exchange or check (the table of auth.h). */
static void
auth_reply_error (Lmtp *l, const GError *error)
{
  guint code = 535;
  const char *enh = "5.7.8", *text = "authentication credentials invalid";
  if (error->domain == MH_AUTH_ERROR)
    switch ((MhAuthError) error->code)
      {
      case MH_AUTH_ERROR_ENCRYPTION_REQUIRED:
        code = 538, enh = "5.7.11", text = error->message;
        break;
      case MH_AUTH_ERROR_MECHANISM:
        code = 504, enh = "5.5.4", text = error->message;
        break;
      case MH_AUTH_ERROR_MALFORMED:
      case MH_AUTH_ERROR_TOO_LONG:
      case MH_AUTH_ERROR_TOO_MANY_STEPS:
      case MH_AUTH_ERROR_STATE:
        code = 501, enh = "5.5.2", text = error->message;
        break;
      case MH_AUTH_ERROR_CANCELLED:
        code = 501, enh = "5.0.0", text = "authentication cancelled";
        break;
      case MH_AUTH_ERROR_UNAVAILABLE:
        code = 454, enh = "4.7.0",
        text = "temporary authentication failure, try again later";
        break;
      default: /* FAILED, AUTHZID, DISABLED: never say which */
        break;
      }
  mh_smtp_engine_reply (l->e, code, enh, text);
}

/* Answers the check, after the throttle's delay if there was one. */
static void
auth_finish (MhServerSession *session, gpointer data, gpointer user_data)
{
  Lmtp *l = user_data;
  AuthJob *j = data;
  if (j->account != NULL)
    {
      g_free (l->login);
      l->login = g_strdup (mh_account_info_get_ascii_address (j->account));
      mh_smtp_engine_reply (l->e, 235, "2.7.0", "authentication successful");
    }
  else
    auth_reply_error (l, j->error);
}

static void
auth_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  AuthJob *j = data;
  if (j->delay_ms == 0)
    {
      auth_finish (session, j, user_data);
      return;
    }
  /* The job's data is freed after this returns: hand the outcome to the
   * timer in a job of its own. */
  AuthJob *later = g_new0 (AuthJob, 1);
  later->account = g_steal_pointer (&j->account);
  later->error = g_steal_pointer (&j->error);
  mh_server_session_call_later (session, j->delay_ms, auth_finish, later,
                                auth_job_free, user_data);
}

/* AUTH and each AUTH_RESPONSE: one step of the exchange (decoding only,
 * on the main loop); a finished exchange goes to a worker for the hash. */
static void
auth_step (Lmtp *l, const MhSmtpEventAuth *ev, gboolean first)
{
  g_autoptr (GError) error = NULL;
  MhSaslStatus status;
  const char *resp = ev->response;
  gsize len = resp ? strlen (resp) : 0;

  if (first)
    {
      g_clear_pointer (&l->sasl, mh_sasl_server_unref);
      if (l->svc->auth == NULL)
        {
          /* not advertised, so the engine should not get here */
          mh_smtp_engine_reply (l->e, 502, "5.5.1",
                                "authentication is not offered here");
          return;
        }
      l->sasl = mh_authenticator_sasl_new (
          l->svc->auth, ev->mechanism, mh_smtp_engine_is_tls_active (l->e),
          &error);
      if (l->sasl == NULL)
        {
          auth_reply_error (l, error);
          return;
        }
      /* The engine gives "" for the "=" of an empty initial response
       * (RFC 4954 4); lib/auth wants it as sent. */
      if (resp != NULL && len == 0)
        resp = "=", len = 1;
      status = mh_sasl_server_start (l->sasl, resp, len, &error);
    }
  else
    {
      if (l->sasl == NULL)
        {
          mh_smtp_engine_reply (l->e, 503, "5.5.1", "no exchange in progress");
          return;
        }
      status = mh_sasl_server_feed (l->sasl, resp ? resp : "", len, &error);
    }

  switch (status)
    {
    case MH_SASL_STATUS_CHALLENGE:
      mh_smtp_engine_reply (l->e, 334, NULL,
                            mh_sasl_server_get_challenge (l->sasl));
      return;
    case MH_SASL_STATUS_FAILED:
      g_clear_pointer (&l->sasl, mh_sasl_server_unref);
      auth_reply_error (l, error);
      return;
    case MH_SASL_STATUS_DONE:
      break;
    }
  AuthJob *j = g_new0 (AuthJob, 1);
  j->auth = mh_authenticator_ref (l->svc->auth);
  j->creds = mh_sasl_credentials_copy (mh_sasl_server_get_credentials (
      l->sasl));
  j->service = g_strdup (mh_server_session_get_service (l->session));
  j->peer_ip = g_strdup (mh_server_session_get_peer_ip (l->session));
  g_clear_pointer (&l->sasl, mh_sasl_server_unref); /* wipes its copy */
  mh_server_session_run_blocking (l->session, auth_job, j, auth_job_free,
                                  auth_done, l);
}

/* ---- DATA: the Received header ------------------------------------------ */

/* A HELO name or other peer-given text made safe for a header: it is
 * printable ASCII (or UTF-8 under SMTPUTF8) already per the engine, but
 * a header must never get a line break or a parenthesis that would end
 * the comment early. */
static void
append_sanitized (GString *s, const char *text, gsize max)
{
  for (gsize i = 0; text[i] && i < max; i++)
    {
      guchar c = (guchar) text[i];
      s = g_string_append_c (s, c <= ' ' || c == '(' || c == ')'
                                        || c == '\\' || c == 0x7f
                                    ? '_'
                                    : (char) c);
    }
}

/* RFC 5322 3.3 date, in English whatever the locale. */
static void
append_date (GString *s)
{
  static const char *const days[]
      = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[]
      = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  gint64 off = g_date_time_get_utc_offset (now) / G_TIME_SPAN_MINUTE;
  g_string_append_printf (
      s, "%s, %d %s %d %02d:%02d:%02d %c%02d%02d",
      days[g_date_time_get_day_of_week (now) - 1],
      g_date_time_get_day_of_month (now),
      months[g_date_time_get_month (now) - 1], g_date_time_get_year (now),
      g_date_time_get_hour (now), g_date_time_get_minute (now),
      g_date_time_get_second (now), off < 0 ? '-' : '+',
      (int) (ABS (off) / 60), (int) (ABS (off) % 60));
}

/* "Received:" for the top of the message (RFC 5321 4.4): who handed it
 * over, which protocol (RFC 3848 ESMTP[S][A], RFC 6531 UTF8SMTP...),
 * the TLS version and cipher, the one recipient if there is one. */
static char *
received_header (Lmtp *l)
{
  MhServerSession *ss = l->session;
  gboolean tls = mh_server_session_is_tls (ss);
  const char *helo = mh_smtp_engine_get_helo (l->e);
  const char *ip = mh_server_session_get_peer_ip (ss);
  GString *s = g_string_new ("Received: from ");
  append_sanitized (s, helo && *helo ? helo : "unknown", 255);
  g_string_append_printf (s, " (%s)\r\n\tby ",
                          ip ? ip : mh_server_session_get_peer (ss));
  append_sanitized (s, l->svc->hostname, 255);
  g_string_append (s, " (libmailhost) with ");
  if (l->smtputf8)
    g_string_append (s, "UTF8SMTP");
  else if (l->helo_kind == MH_SMTP_HELO_HELO)
    g_string_append (s, "SMTP");
  else
    g_string_append (s, "ESMTP");
  if (l->helo_kind != MH_SMTP_HELO_HELO || l->smtputf8)
    {
      if (tls)
        g_string_append_c (s, 'S');
      if (l->login)
        g_string_append_c (s, 'A');
    }
  g_string_append_printf (s, " id %s", mh_server_session_get_id (ss));
  if (tls)
    g_string_append_printf (s, "\r\n\t(using %s with cipher %s)",
                            mh_server_session_get_tls_version (ss),
                            mh_server_session_get_tls_cipher (ss));
  if (l->env && mh_delivery_envelope_get_n_recipients (l->env) == 1)
    {
      g_string_append (s, "\r\n\tfor <");
      append_sanitized (s, mh_delivery_envelope_get_recipient (l->env, 0),
                        512);
      g_string_append_c (s, '>');
    }
  g_string_append (s, ";\r\n\t");
  append_date (s);
  g_string_append (s, "\r\n");
  return g_string_free (s, FALSE);
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

/* One reply per recipient (LMTP), or one for all (SMTP), for a failure
 * of the whole message. */
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
  if (l->svc->role != MH_SMTP_ROLE_LMTP)
    n = 1;
  for (guint i = 0; i < n; i++)
    mh_smtp_engine_reply (l->e, code, enh, error->message);
}

/* SMTP's single reply for every recipient (see the design notes). */
static void
reply_smtp (Lmtp *l, GPtrArray *results)
{
  guint ok = 0;
  MhDeliveryResult *failed = NULL;
  for (guint i = 0; i < results->len; i++)
    {
      MhDeliveryResult *r = g_ptr_array_index (results, i);
      if (mh_delivery_result_is_success (r))
        ok++;
      else
        {
          mh_log_warning (SVC, mh_server_session_get_id (l->session),
                          mh_server_session_get_peer (l->session),
                          "<%s>: %u %s %s", mh_delivery_result_get_address (r),
                          mh_delivery_result_get_code (r),
                          mh_delivery_result_get_enhanced (r),
                          mh_delivery_result_get_text (r));
          if (failed == NULL)
            failed = r;
        }
    }
  if (failed == NULL)
    mh_smtp_engine_reply (l->e, 250, "2.0.0",
                          results->len == 1
                              ? mh_delivery_result_get_text (
                                  g_ptr_array_index (results, 0))
                              : "message delivered");
  else if (ok == 0)
    mh_smtp_engine_reply (l->e, mh_delivery_result_get_code (failed),
                          mh_delivery_result_get_enhanced (failed),
                          mh_delivery_result_get_text (failed));
  else
    mh_smtp_engine_reply (l->e, 451, "4.3.0",
                          "delivered to some recipients only; please "
                          "retry the others later");
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
  if (l->svc->role != MH_SMTP_ROLE_LMTP)
    {
      reply_smtp (l, j->results);
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
  guint want = l->svc->role == MH_SMTP_ROLE_LMTP ? n : 1;
  if (n == 0 || want != ev->n_replies)
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
          forget_transaction (l);
          l->helo_kind = ev.helo.kind;
          mh_smtp_engine_accept (l->e);
          break;
        case MH_SMTP_EVENT_MAIL:
          forget_transaction (l);
          l->env = mh_delivery_envelope_new (
              ev.mail.reverse_path->is_null ? ""
                                            : ev.mail.reverse_path->address);
          mh_delivery_envelope_set_dsn (l->env, ev.mail.envid, ev.mail.ret);
          mh_delivery_envelope_set_authenticated (l->env, l->login);
          l->size_hint = ev.mail.size;
          l->smtputf8 = ev.mail.smtputf8;
          if (l->login != NULL)
            {
              SenderJob *j = g_new0 (SenderJob, 1);
              j->delivery = mh_delivery_ref (l->svc->delivery);
              j->login = g_strdup (l->login);
              j->sender = g_strdup (mh_delivery_envelope_get_sender (l->env));
              mh_server_session_run_blocking (session, sender_job, j,
                                              sender_job_free, sender_done,
                                              l);
              return;
            }
          mh_smtp_engine_accept (l->e);
          break;
        case MH_SMTP_EVENT_RCPT:
          {
            RcptJob *j = g_new0 (RcptJob, 1);
            j->delivery = mh_delivery_ref (l->svc->delivery);
            j->role = l->svc->role;
            j->rcpt = g_strdup (ev.rcpt.forward_path->address);
            if (!ev.rcpt.forward_path->is_postmaster)
              j->domain = g_strdup (ev.rcpt.forward_path->domain);
            j->hostname = l->svc->hostname; /* lives as long as the server */
            j->sender = g_strdup (
                l->env ? mh_delivery_envelope_get_sender (l->env) : "");
            j->login = g_strdup (l->login);
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
          if (l->spool != NULL && l->svc->role != MH_SMTP_ROLE_LMTP)
            {
              g_autofree char *received = received_header (l);
              mh_delivery_spool_write (l->spool, (const guint8 *) received,
                                       strlen (received), &l->spool_error);
            }
          if (l->spool == NULL || l->spool_error != NULL)
            {
              mh_log_error (SVC, id, peer, "%s", l->spool_error->message);
              mh_smtp_engine_reply (l->e, 451, "4.3.0",
                                    "cannot spool the message, try again "
                                    "later");
              forget_message (l);
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
          if (l->svc->role == MH_SMTP_ROLE_LMTP)
            {
              mh_smtp_engine_reply (l->e, 502, "5.5.1",
                                    "no authentication over LMTP");
              break;
            }
          /* answers at once, or from the password check's completion
           * (next_event() then returns FALSE until it does) */
          auth_step (l, &ev.auth, ev.type == MH_SMTP_EVENT_AUTH);
          break;
        case MH_SMTP_EVENT_AUTH_ABORTED:
          g_clear_pointer (&l->sasl, mh_sasl_server_unref);
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
  /* RFC 3207 4.2: everything learnt before TLS is forgotten */
  forget_transaction (l);
  g_clear_pointer (&l->sasl, mh_sasl_server_unref);
  g_clear_pointer (&l->login, g_free);
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

/* Registers @name: the engine in @role over @delivery, AUTH through
 * @auth when not NULL. */
static gboolean
register_role (MhServer *server, const char *name, MhSmtpRole role,
               MhDelivery *delivery, MhAuthenticator *auth, GError **error)
{
  LmtpService *svc = g_new0 (LmtpService, 1);
  svc->delivery = mh_delivery_ref (delivery);
  svc->auth = auth ? mh_authenticator_ref (auth) : NULL;
  svc->role = role;
  svc->name = g_strdup (name);
  MhConfig *config = mh_delivery_get_config (delivery);
  /* the limits the engine enforces while reading: [limits] */
  svc->limits.version = 1;
  gint64 max = mh_config_get_int (config, "limits", "max_message_size");
  svc->limits.max_message_size = max > 0 ? (guint64) max : 0;
  /* the schema range-checks these, so they fit a guint */
  svc->limits.max_recipients
      = (guint) mh_config_get_int (config, "limits", "smtp_max_recipients");
  svc->limits.max_line
      = (guint) mh_config_get_int (config, "limits", "smtp_max_line");
  svc->limits.max_data_line
      = (guint) mh_config_get_int (config, "limits", "smtp_max_data_line");
  svc->limits.max_errors
      = (guint) mh_config_get_int (config, "limits", "smtp_max_errors");
  svc->limits.max_bad_commands
      = (guint) mh_config_get_int (config, "limits", "smtp_max_bad_commands");
  /* RFC 5321 4.5.3.2: the engine's own timers; the service's
   * command_timeout wins over [limits] command_timeout (5 min) */
  gint64 t = mh_config_get_int (config, name, "command_timeout");
  if (t <= 0)
    t = mh_config_get_int (config, "limits", "command_timeout");
  svc->limits.command_timeout_s = (guint) CLAMP (t, 0, G_MAXUINT);
  svc->limits.data_timeout_s = svc->limits.command_timeout_s;
  const char *host = mh_config_get_string (config, "general", "hostname");
  svc->hostname = g_strdup (host && *host ? host : g_get_host_name ());
  if (!mh_server_register_service (server, name, &lmtp_service, svc,
                                   lmtp_service_free, error))
    {
      lmtp_service_free (svc); /* not taken on failure */
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_server_register_lmtp_service (MhServer *server, MhDelivery *delivery,
                                 GError **error)
{
  g_return_val_if_fail (server != NULL && delivery != NULL, FALSE);
  return register_role (server, "lmtp", MH_SMTP_ROLE_LMTP, delivery, NULL,
                        error);
}

gboolean
mh_server_register_smtp_service (MhServer *server, MhDelivery *delivery,
                                 MhAuthenticator *auth, GError **error)
{
  g_return_val_if_fail (server != NULL && delivery != NULL, FALSE);
  return register_role (server, "smtp", MH_SMTP_ROLE_SMTP, delivery, auth,
                        error);
}

gboolean
mh_server_register_submission_service (MhServer *server,
                                       MhDelivery *delivery,
                                       MhAuthenticator *auth, GError **error)
{
  g_return_val_if_fail (server != NULL && delivery != NULL && auth != NULL,
                        FALSE);
  return register_role (server, "submission", MH_SMTP_ROLE_SUBMISSION,
                        delivery, auth, error)
         && register_role (server, "submissions", MH_SMTP_ROLE_SUBMISSION,
                           delivery, auth, error);
}
