/* lib/proto/smtp: the sans-I/O SMTP / submission / LMTP server engine.
 *
 * Design notes
 *
 * States (State below):
 *   PREGREET  nothing said yet; input is stored, not parsed
 *   CMD       reading command lines
 *   DATA      reading a DATA body up to CRLF "." CRLF (DState sub-states)
 *   BDAT      reading (or discarding) the octets of one BDAT chunk
 *   AUTH      reading SASL response lines after a 334
 *   TLS_WAIT  STARTTLS accepted; every input byte is discarded until
 *             starttls_done() (CVE-2011-0411)
 *   CLOSING   421/221 queued; input discarded; only notices drain
 *
 * Invariants
 * - Input is parsed lazily, in next_event(), one unit (a line, a run of
 *   DATA bytes, a piece of a BDAT chunk) per step. While an event waits
 *   for its reply (`awaiting`) nothing is parsed, so replies leave in
 *   command order whatever the client pipelined (RFC 2920).
 * - DATA is dot-unstuffed in place inside the input buffer (the writer
 *   never passes the reader), and chunk events point there: no copy, and
 *   the message is never held whole. A CR at the very end of the input
 *   is left unparsed until the next byte shows whether LF follows, so no
 *   output is ever pending across calls.
 * - The input buffer holds at most in_cap bytes (longest line + 64 KiB);
 *   feed() takes no more (back-pressure). Output is not parsed into past
 *   OUT_SOFT_MAX, so it is bounded by that plus one event's replies.
 * - The end of DATA is CRLF "." CRLF only. A bare LF or CR voids the
 *   message but the engine keeps scanning for the real end, so "\n.\n"
 *   or "\r.\r" cannot end a message and smuggle a second one (RFC 5321
 *   2.3.8, 4.1.1.4).
 * - Each accepted DATA (or first BDAT) ends in exactly one DATA_END or
 *   DATA_ABORTED event (msg_open tracks it).
 * - Strings of an event are owned by its QEvent; the current event is
 *   freed at the next next_event() unless it still awaits its reply (a
 *   host may look things up in another thread meanwhile). AUTH data is
 *   wiped when freed.
 *
 * Limits: see MhSmtpLimits in smtp.h; all default from limits.h.
 */
#include "smtp-private.h"

#include <string.h>

#define IN_SLACK (64 * 1024)      /* pipelined input beyond one line */
#define OUT_SOFT_MAX (16 * 1024)  /* stop parsing while more is unsent */
#define REPLY_LINE_MAX 512        /* RFC 5321 4.5.3.1.5, with CRLF */
#define RCPT_OVERSHOOT_MAX 1000   /* 452s before they count as errors */

typedef enum
{
  ST_PREGREET,
  ST_CMD,
  ST_DATA,
  ST_BDAT,
  ST_AUTH,
  ST_TLS_WAIT,
  ST_CLOSING,
} State;

typedef enum
{
  D_BOL,     /* at the start of a line */
  D_DOT,     /* after a "." at the start of a line (dropped) */
  D_DOT_CR,  /* after ".\r" at the start of a line */
  D_TEXT,    /* inside a line */
} DState;

typedef struct
{
  MhSmtpEvent ev;
  MhSmtpPath path;
  char *str[3];
  guint8 *secret;
  gsize secret_len;
} QEvent;

struct _MhSmtpEngine
{
  gint ref;
  MhSmtpRole role;
  MhSmtpLimits lim;
  MhSmtpExtensions ext;
  MhSmtpPolicy policy;
  char **mechs;
  char *hostname;

  State state;
  gboolean refused;       /* greeted with 554: only QUIT is served */
  gboolean tls;
  gboolean authed;
  gboolean esmtp;         /* EHLO/LHLO accepted */
  char *helo;

  /* The transaction */
  gboolean in_mail;
  gboolean smtputf8;
  MhSmtpBody body;
  guint n_rcpt;
  guint rcpt_overshoot;
  gboolean bdat_mode;     /* the first BDAT was accepted */
  gboolean msg_open;      /* DATA_END/DATA_ABORTED still owed */
  guint64 msg_size;

  /* Values of the event awaiting its reply, applied on a yes. */
  MhSmtpHeloKind pend_helo_kind;
  gboolean pend_smtputf8;
  MhSmtpBody pend_body;

  /* DATA parsing */
  DState dstate;
  guint line_len;
  gboolean dfailed;
  MhSmtpDataError derr;

  /* BDAT chunk being read */
  guint64 bdat_left;
  guint64 bdat_size;
  gboolean bdat_last;
  gboolean bdat_discard;
  char *bdat_reply;       /* reply to send after a discarded chunk */
  gboolean bdat_reply_counts;

  char *auth_mech;

  GByteArray *in;
  gsize in_pos;
  gsize scan;             /* bytes of the current line already searched */
  gsize in_cap;
  gboolean skipping;      /* dropping the rest of an over-long line */

  GByteArray *out;
  gsize out_pos;

  guint errors;
  guint bad_cmds;
  guint junk;

  gboolean clock_started;
  gboolean activity;
  gint64 last_active;
  guint64 tls_discarded;

  GQueue events;
  QEvent *cur;
  QEvent *held;           /* an unanswered event when closing began */
  MhSmtpEventType awaiting;
  guint replies_left;
};

/* ---- Limits ------------------------------------------------------------ */

MhSmtpLimits *
mh_smtp_limits_copy (const MhSmtpLimits *limits)
{
  g_return_val_if_fail (limits != NULL, NULL);
  return g_memdup2 (limits, sizeof *limits);
}

void
mh_smtp_limits_free (MhSmtpLimits *limits)
{
  g_free (limits);
}

G_DEFINE_BOXED_TYPE (MhSmtpLimits, mh_smtp_limits, mh_smtp_limits_copy,
                     mh_smtp_limits_free)

static void
limits_fill (MhSmtpLimits *l, const MhSmtpLimits *in)
{
  memset (l, 0, sizeof *l);
  if (in != NULL)
    *l = *in;
  l->version = 1;
#define DEF(f, v) if (l->f == 0) l->f = (v)
  DEF (max_line, MH_LIMIT_SMTP_LINE_MAX);
  DEF (max_data_line, MH_LIMIT_SMTP_DATA_LINE_MAX);
  DEF (max_recipients, MH_LIMIT_SMTP_RCPTS_MAX);
  DEF (max_message_size, MH_LIMIT_MESSAGE_SIZE_MAX);
  DEF (max_errors, MH_LIMIT_SMTP_ERRORS_MAX);
  DEF (max_bad_commands, MH_LIMIT_SMTP_BAD_COMMANDS_MAX);
  DEF (max_junk_commands, MH_LIMIT_SMTP_JUNK_COMMANDS_MAX);
  DEF (max_auth_line, MH_LIMIT_SASL_LINE_MAX);
  DEF (command_timeout_s, MH_LIMIT_COMMAND_TIMEOUT_S);
  DEF (data_timeout_s, MH_LIMIT_COMMAND_TIMEOUT_S);
#undef DEF
  /* A line must at least hold "QUIT\r\n"; a data line ".\r\n". */
  l->max_line = MAX (l->max_line, 16);
  l->max_data_line = MAX (l->max_data_line, 3);
  l->max_auth_line = MAX (l->max_auth_line, 16);
}

/* ---- Events -------------------------------------------------------------- */

static void
qevent_free (QEvent *q)
{
  if (q == NULL)
    return;
  mh_smtp__path_clear (&q->path);
  for (guint i = 0; i < G_N_ELEMENTS (q->str); i++)
    {
      if (q->str[i] != NULL && q->secret != NULL)
        mh_core__wipe (q->str[i], strlen (q->str[i]));
      g_free (q->str[i]);
    }
  if (q->secret != NULL)
    {
      mh_core__wipe (q->secret, q->secret_len);
      g_free (q->secret);
    }
  g_free (q);
}

static QEvent *
push_event (MhSmtpEngine *e, MhSmtpEventType type, gboolean needs_reply)
{
  QEvent *q = g_new0 (QEvent, 1);
  q->ev.any.type = type;
  q->ev.any.needs_reply = needs_reply;
  g_queue_push_tail (&e->events, q);
  return q;
}

/* ---- Output -------------------------------------------------------------- */

static gsize
out_pending (MhSmtpEngine *e)
{
  return e->out->len - e->out_pos;
}

static gboolean
enh_enabled (MhSmtpEngine *e)
{
  return (e->ext & MH_SMTP_EXT_ENHANCEDSTATUSCODES) != 0;
}

/* Appends one reply, possibly multi-line ('\n' separates lines).
 * @enh may be NULL (no enhanced code on this reply). Text from the host
 * is sanitized: no control characters reach the wire, lines fit 512. */
static void
out_reply_raw (MhSmtpEngine *e, guint code, const char *enh,
               const char *text)
{
  const char *t = text != NULL ? text : "";
  gboolean show_enh = enh != NULL && enh_enabled (e);

  for (;;)
    {
      const char *nl = strchr (t, '\n');
      gsize n = nl != NULL ? (gsize) (nl - t) : strlen (t);
      char head[32];
      int hl = g_snprintf (head, sizeof head, "%03u%c%s%s", code,
                           nl != NULL ? '-' : ' ', show_enh ? enh : "",
                           show_enh && n > 0 ? " " : "");
      gsize room = REPLY_LINE_MAX - 2 - (gsize) hl;
      if (n > room)
        {
          n = room;
          /* do not cut a UTF-8 sequence */
          while (n > 0 && ((guchar) t[n] & 0xc0) == 0x80)
            n--;
        }
      g_byte_array_append (e->out, (const guint8 *) head, (guint) hl);
      for (gsize i = 0; i < n; i++)
        {
          guint8 c = (guint8) t[i];
          if (c < 32 || c == 127)
            c = '?';
          g_byte_array_append (e->out, &c, 1);
        }
      g_byte_array_append (e->out, (const guint8 *) "\r\n", 2);
      if (nl == NULL)
        break;
      t = nl + 1;
    }
}

static void close_abuse (MhSmtpEngine *e, MhSmtpAbuse why, const char *text);

/* A reply that may be an error: 4xx/5xx count towards max_errors. */
static void
reply_counted (MhSmtpEngine *e, guint code, const char *enh,
               const char *text)
{
  out_reply_raw (e, code, enh, text);
  if (code >= 400 && e->state != ST_CLOSING)
    {
      e->errors++;
      if (e->errors >= e->lim.max_errors)
        close_abuse (e, MH_SMTP_ABUSE_TOO_MANY_ERRORS, "Error: too many errors");
    }
}

static void reply (MhSmtpEngine *e, guint code, const char *enh,
                   const char *fmt, ...) G_GNUC_PRINTF (4, 5);

static void
reply (MhSmtpEngine *e, guint code, const char *enh, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  reply_counted (e, code, enh, text);
}

/* A syntax error or unknown command: also counts as a bad command. */
static void
reply_bad (MhSmtpEngine *e, guint code, const char *enh, const char *text)
{
  e->bad_cmds++;
  reply_counted (e, code, enh, text);
  if (e->state != ST_CLOSING && e->bad_cmds >= e->lim.max_bad_commands)
    close_abuse (e, MH_SMTP_ABUSE_TOO_MANY_BAD_COMMANDS,
                 "Error: too many invalid commands");
}

/* ---- Session state ------------------------------------------------------- */

static QEvent *push_event (MhSmtpEngine *e, MhSmtpEventType type,
                           gboolean needs_reply);

static void
reset_transaction (MhSmtpEngine *e)
{
  if (e->msg_open)
    {
      /* RSET or EHLO between BDAT chunks: the host still owes nothing,
       * but must drop what it spooled. */
      QEvent *q = push_event (e, MH_SMTP_EVENT_DATA_ABORTED, FALSE);
      q->ev.aborted.reason = MH_SMTP_DATA_RESET;
    }
  e->in_mail = FALSE;
  e->smtputf8 = FALSE;
  e->body = MH_SMTP_BODY_NONE;
  e->n_rcpt = 0;
  e->rcpt_overshoot = 0;
  e->bdat_mode = FALSE;
  e->msg_open = FALSE;
  e->msg_size = 0;
  e->dfailed = FALSE;
}

static void
begin_closing (MhSmtpEngine *e)
{
  if (e->msg_open && e->awaiting != MH_SMTP_EVENT_DATA_END)
    {
      QEvent *q = push_event (e, MH_SMTP_EVENT_DATA_ABORTED, FALSE);
      q->ev.aborted.reason = MH_SMTP_DATA_CLOSED;
    }
  e->msg_open = FALSE;
  e->state = ST_CLOSING;
  if (e->awaiting != MH_SMTP_EVENT_NONE && e->cur != NULL)
    {
      /* A host may still be working on it (a lookup in a thread) and read
       * its strings when done: keep them until the engine is freed. */
      e->held = g_steal_pointer (&e->cur);
    }
  e->awaiting = MH_SMTP_EVENT_NONE;
  e->replies_left = 0;
  g_byte_array_set_size (e->in, 0);
  e->in_pos = 0;
  e->scan = 0;
  /* blocking events still queued can no longer be answered */
  for (GList *l = e->events.head; l != NULL; l = l->next)
    ((QEvent *) l->data)->ev.any.needs_reply = FALSE;
}

static void
close_421 (MhSmtpEngine *e, const char *enh, const char *text)
{
  g_autofree char *t = g_strdup_printf ("%s %s", e->hostname, text);
  out_reply_raw (e, 421, enh, t);
  begin_closing (e);
}

static void
close_abuse (MhSmtpEngine *e, MhSmtpAbuse why, const char *text)
{
  if (e->state == ST_CLOSING)
    return;
  close_421 (e, "4.7.0", text);
  QEvent *q = push_event (e, MH_SMTP_EVENT_ABUSE, FALSE);
  q->ev.abuse.reason = why;
}

/* ---- Public: lifecycle and settings -------------------------------------- */

MhSmtpEngine *
mh_smtp_engine_new (MhSmtpRole role, const MhSmtpLimits *limits)
{
  g_return_val_if_fail (role <= MH_SMTP_ROLE_LMTP, NULL);
  MhSmtpEngine *e = g_new0 (MhSmtpEngine, 1);
  e->ref = 1;
  e->role = role;
  limits_fill (&e->lim, limits);
  e->ext = MH_SMTP_EXT_DEFAULT;
  e->policy = role == MH_SMTP_ROLE_SUBMISSION ? MH_SMTP_POLICY_REQUIRE_AUTH
                                              : MH_SMTP_POLICY_NONE;
  e->hostname = g_strdup ("localhost");
  e->state = ST_PREGREET;
  e->in = g_byte_array_new ();
  e->out = g_byte_array_new ();
  e->in_cap = MAX (e->lim.max_line, e->lim.max_auth_line) + IN_SLACK;
  g_queue_init (&e->events);
  return e;
}

MhSmtpEngine *
mh_smtp_engine_ref (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  g_atomic_int_inc (&e->ref);
  return e;
}

void
mh_smtp_engine_unref (MhSmtpEngine *e)
{
  if (e == NULL || !g_atomic_int_dec_and_test (&e->ref))
    return;
  qevent_free (e->cur);
  qevent_free (e->held);
  g_queue_clear_full (&e->events, (GDestroyNotify) qevent_free);
  /* the input may hold an AUTH line */
  if (e->in->len > 0)
    mh_core__wipe (e->in->data, e->in->len);
  g_byte_array_unref (e->in);
  g_byte_array_unref (e->out);
  g_strfreev (e->mechs);
  g_free (e->hostname);
  g_free (e->helo);
  g_free (e->auth_mech);
  g_free (e->bdat_reply);
  g_free (e);
}

G_DEFINE_BOXED_TYPE (MhSmtpEngine, mh_smtp_engine, mh_smtp_engine_ref,
                     mh_smtp_engine_unref)

void
mh_smtp_engine_set_extensions (MhSmtpEngine *e, MhSmtpExtensions extensions)
{
  g_return_if_fail (e != NULL);
  e->ext = extensions;
}

void
mh_smtp_engine_set_auth_mechanisms (MhSmtpEngine *e,
                                    const char *const *mechanisms)
{
  g_return_if_fail (e != NULL);
  g_strfreev (e->mechs);
  e->mechs = NULL;
  if (mechanisms == NULL || mechanisms[0] == NULL)
    return;
  e->mechs = g_strdupv ((char **) mechanisms);
  for (char **m = e->mechs; *m != NULL; m++)
    {
      char *up = g_ascii_strup (*m, -1);
      g_free (*m);
      *m = up;
    }
}

void
mh_smtp_engine_set_policy (MhSmtpEngine *e, MhSmtpPolicy policy)
{
  g_return_if_fail (e != NULL);
  e->policy = policy;
}

void
mh_smtp_engine_set_tls_active (MhSmtpEngine *e, gboolean active)
{
  g_return_if_fail (e != NULL);
  e->tls = active;
}

void
mh_smtp_engine_greet (MhSmtpEngine *e, const char *hostname, guint code,
                      const char *text)
{
  g_return_if_fail (e != NULL);
  g_return_if_fail (hostname != NULL && *hostname != '\0');
  g_return_if_fail (code == 220 || code == 421 || code == 554);
  g_return_if_fail (e->state == ST_PREGREET);

  g_free (e->hostname);
  e->hostname = g_strdup (hostname);
  if (text == NULL)
    text = e->role == MH_SMTP_ROLE_LMTP ? "LMTP" : "ESMTP";
  g_autofree char *t = g_strdup_printf ("%s %s", hostname, text);
  /* RFC 2034: no enhanced code on the greeting */
  out_reply_raw (e, code, NULL, t);
  e->state = ST_CMD;
  if (code == 421)
    begin_closing (e);
  else if (code == 554)
    e->refused = TRUE;
}

MhSmtpRole
mh_smtp_engine_get_role (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, MH_SMTP_ROLE_SMTP);
  return e->role;
}

const char *
mh_smtp_engine_get_helo (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  return e->helo;
}

gboolean
mh_smtp_engine_is_tls_active (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, FALSE);
  return e->tls;
}

gboolean
mh_smtp_engine_is_authenticated (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, FALSE);
  return e->authed;
}

gboolean
mh_smtp_engine_is_closing (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, TRUE);
  return e->state == ST_CLOSING;
}

gboolean
mh_smtp_engine_is_closed (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, TRUE);
  return e->state == ST_CLOSING && out_pending (e) == 0;
}

/* ---- Input ---------------------------------------------------------------- */

static void
compact_input (MhSmtpEngine *e)
{
  if (e->in_pos == 0)
    return;
  gsize rest = e->in->len - e->in_pos;
  if (rest > 0)
    memmove (e->in->data, e->in->data + e->in_pos, rest);
  g_byte_array_set_size (e->in, (guint) rest);
  e->in_pos = 0;
}

gsize
mh_smtp_engine_feed (MhSmtpEngine *e, const guint8 *buf, gsize len)
{
  g_return_val_if_fail (e != NULL, 0);
  g_return_val_if_fail (buf != NULL || len == 0, 0);

  if (len == 0)
    return 0;
  if (e->state == ST_CLOSING)
    return len;
  e->activity = TRUE;
  if (e->state == ST_TLS_WAIT)
    {
      /* Plaintext after an accepted STARTTLS: CVE-2011-0411. */
      e->tls_discarded += len;
      return len;
    }
  compact_input (e);
  gsize have = e->in->len;
  gsize room = have < e->in_cap ? e->in_cap - have : 0;
  gsize n = MIN (len, room);
  if (n > 0)
    g_byte_array_append (e->in, buf, (guint) n);
  return n;
}

gboolean
mh_smtp_engine_want_read (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, FALSE);
  if (e->state == ST_CLOSING || e->state == ST_TLS_WAIT)
    return FALSE;
  return e->in->len - e->in_pos < e->in_cap;
}

/* ---- Commands -------------------------------------------------------------- */

typedef struct
{
  const char *s;  /* the argument text (not NUL-terminated) */
  gsize len;
} Arg;

static gboolean
verb_is (const char *verb, gsize vlen, const char *name)
{
  return strlen (name) == vlen && g_ascii_strncasecmp (verb, name, vlen) == 0;
}

/* The argument must be empty (trailing spaces tolerated). */
static gboolean
arg_empty (Arg a)
{
  for (gsize i = 0; i < a.len; i++)
    if (a.s[i] != ' ')
      return FALSE;
  return TRUE;
}

static void
do_helo (MhSmtpEngine *e, MhSmtpHeloKind kind, Arg a)
{
  static const char *names[] = { "HELO", "EHLO", "LHLO" };
  gsize i = 0;
  while (i < a.len && a.s[i] == ' ')
    i++;
  gsize start = i;
  while (i < a.len && a.s[i] != ' ')
    {
      guchar c = (guchar) a.s[i];
      if (c < 33 || c == 127)
        break;
      i++;
    }
  gsize n = i - start;
  gsize j = i;
  while (j < a.len && a.s[j] == ' ')
    j++;
  if (n == 0 || j != a.len || n > 255
      || !g_utf8_validate_len (a.s + start, n, NULL))
    {
      g_autofree char *t = g_strdup_printf ("Syntax: %s hostname",
                                            names[kind]);
      reply_bad (e, 501, "5.5.4", t);
      return;
    }
  /* RFC 5321 4.1.4: HELO/EHLO in a transaction resets it. */
  reset_transaction (e);
  e->pend_helo_kind = kind;
  QEvent *q = push_event (e, MH_SMTP_EVENT_HELO, TRUE);
  q->str[0] = g_strndup (a.s + start, n);
  q->ev.helo.kind = kind;
  q->ev.helo.domain = q->str[0];
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2) */
typedef struct
{
  char key[24];
  const char *val;  /* NULL when there is no "=" */
  gsize vlen;
} Param;

/* Splits @a at spaces into params; returns FALSE with a reply sent. */
static gboolean
split_params (MhSmtpEngine *e, Arg a, Param *ps, guint max, guint *n_out)
{
  guint n = 0;
  gsize i = 0;
  for (;;)
    {
      while (i < a.len && a.s[i] == ' ')
        i++;
      if (i >= a.len)
        break;
      gsize start = i;
      while (i < a.len && a.s[i] != ' ')
        i++;
      const char *tok = a.s + start;
      gsize tl = i - start;
      const char *eq = memchr (tok, '=', tl);
      gsize kl = eq != NULL ? (gsize) (eq - tok) : tl;
      gboolean ok = kl > 0 && kl < sizeof ps[0].key
                    && g_ascii_isalnum (tok[0]);
      for (gsize k = 0; ok && k < kl; k++)
        ok = g_ascii_isalnum (tok[k]) || tok[k] == '-';
      if (ok && eq != NULL)
        {
          /* esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 (RFC 6531) */
          ok = eq + 1 < tok + tl;
          for (const char *v = eq + 1; ok && v < tok + tl; v++)
            {
              guchar c = (guchar) *v;
              ok = (c >= 33 && c <= 126 && c != '=') || c >= 0x80;
            }
        }
      if (!ok)
        {
          reply_bad (e, 501, "5.5.4", "Syntax error in parameters");
          return FALSE;
        }
      if (n == max)
        {
          reply_bad (e, 501, "5.5.4", "Too many parameters");
          return FALSE;
        }
      for (guint k = 0; k < n; k++)
        if (strlen (ps[k].key) == kl
            && g_ascii_strncasecmp (ps[k].key, tok, kl) == 0)
          {
            g_autofree char *t = g_strdup_printf ("Duplicate parameter %.*s",
                                                  (int) kl, tok);
            reply_bad (e, 501, "5.5.4", t);
            return FALSE;
          }
      memcpy (ps[n].key, tok, kl);
      ps[n].key[kl] = '\0';
      ps[n].val = eq != NULL ? eq + 1 : NULL;
      ps[n].vlen = eq != NULL ? (gsize) (tok + tl - eq - 1) : 0;
      n++;
    }
  *n_out = n;
  return TRUE;
}

static gboolean
val_is (const Param *p, const char *s)
{
  return p->val != NULL && strlen (s) == p->vlen
         && g_ascii_strncasecmp (p->val, s, p->vlen) == 0;
}

static gboolean
has_ext (MhSmtpEngine *e, MhSmtpExtensions x)
{
  return e->esmtp && (e->ext & x) != 0;
}

static gboolean
val_ascii (const Param *p)
{
  for (gsize i = 0; i < p->vlen; i++)
    if ((guchar) p->val[i] >= 0x80)
      return FALSE;
  return TRUE;
}

static void
unsupported_param (MhSmtpEngine *e, const Param *p)
{
  g_autofree char *t = g_strdup_printf ("Unsupported parameter %s", p->key);
  /* RFC 5321 4.1.1.11: 555 parameters not recognized */
  reply_bad (e, 555, "5.5.4", t);
}

static void
bad_param_value (MhSmtpEngine *e, const Param *p, const char *why)
{
  g_autofree char *t = g_strdup_printf ("Bad %s parameter: %s", p->key, why);
  reply_bad (e, 501, "5.5.4", t);
}

/* "FROM:" / "TO:" then optional spaces (common, though RFC 5321 has
 * none), then the path. Returns the path's offset or -1 (reply sent). */
static gssize
path_start (MhSmtpEngine *e, Arg a, const char *kw, const char *syntax)
{
  gsize kl = strlen (kw);
  if (a.len < kl || g_ascii_strncasecmp (a.s, kw, kl) != 0)
    {
      reply_bad (e, 501, "5.5.4", syntax);
      return -1;
    }
  gsize i = kl;
  while (i < a.len && a.s[i] == ' ')
    i++;
  return (gssize) i;
}

static void
bad_path (MhSmtpEngine *e, gboolean sender, MhSmtpError code,
          const char *msg)
{
  g_autofree char *t = g_strdup_printf ("Bad %s address syntax: %s",
                                        sender ? "sender" : "recipient", msg);
  /* RFC 3463: X.1.7 bad sender, X.1.3 bad destination address syntax */
  if (code == MH_SMTP_ERROR_UTF8)
    reply_bad (e, 553, "5.6.7", t);
  else
    reply_bad (e, 501, sender ? "5.1.7" : "5.1.3", t);
}

static gboolean
need_helo (MhSmtpEngine *e)
{
  if (e->helo != NULL)
    return TRUE;
  reply (e, 503, "5.5.1", "Error: send %s first",
         e->role == MH_SMTP_ROLE_LMTP ? "LHLO" : "HELO/EHLO");
  return FALSE;
}

static void
do_mail (MhSmtpEngine *e, Arg a)
{
  if (!need_helo (e))
    return;
  if (e->in_mail)
    {
      reply (e, 503, "5.5.1", "Error: nested MAIL command");
      return;
    }
  if ((e->policy & MH_SMTP_POLICY_REQUIRE_AUTH) && !e->authed)
    {
      reply (e, 530, "5.7.0", "Authentication required");
      return;
    }
  gssize ps = path_start (e, a, "FROM:",
                          "Syntax: MAIL FROM:<address> [parameters]");
  if (ps < 0)
    return;

  QEvent *q = g_new0 (QEvent, 1);
  MhSmtpError code;
  g_autofree char *msg = NULL;
  gsize end = 0;
  if (!mh_smtp__path_parse (a.s + ps, a.len - (gsize) ps, TRUE, &end,
                            &q->path, &code, &msg))
    {
      bad_path (e, TRUE, code, msg);
      qevent_free (q);
      return;
    }
  if (q->path.is_postmaster)
    {
      bad_path (e, TRUE, MH_SMTP_ERROR_SYNTAX, "the sender needs a domain");
      qevent_free (q);
      return;
    }
  Arg rest = { a.s + ps + end, a.len - (gsize) ps - end };
  if (rest.len > 0 && rest.s[0] != ' ')
    {
      reply_bad (e, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
      qevent_free (q);
      return;
    }

  Param p[16];
  guint np = 0;
  if (!split_params (e, rest, p, G_N_ELEMENTS (p), &np))
    {
      qevent_free (q);
      return;
    }
  MhSmtpEventMail *m = &q->ev.mail;
  gboolean ascii_params = TRUE;
  for (guint k = 0; k < np; k++)
    {
      const Param *pp = &p[k];
      if (!val_ascii (pp))
        ascii_params = FALSE;
      if (!e->esmtp)
        {
          reply_bad (e, 555, "5.5.4", "Parameters need EHLO");
          goto fail;
        }
      if (g_ascii_strcasecmp (pp->key, "SIZE") == 0
          && has_ext (e, MH_SMTP_EXT_SIZE))
        {
          guint64 v = 0;
          g_autofree char *num = g_strndup (pp->val ? pp->val : "", pp->vlen);
          if (pp->val == NULL || pp->vlen > 20
              || !g_ascii_string_to_unsigned (num, 10, 0, G_MAXUINT64, &v,
                                              NULL))
            {
              bad_param_value (e, pp, "expected a number of octets");
              goto fail;
            }
          if (v > e->lim.max_message_size)
            {
              reply (e, 552, "5.3.4",
                     "Message size exceeds fixed maximum message size "
                     "(%" G_GUINT64_FORMAT " octets)",
                     e->lim.max_message_size);
              goto fail;
            }
          m->size = v;
        }
      else if (g_ascii_strcasecmp (pp->key, "BODY") == 0)
        {
          if (val_is (pp, "7BIT"))
            m->body = MH_SMTP_BODY_7BIT;
          else if (val_is (pp, "8BITMIME") && has_ext (e, MH_SMTP_EXT_8BITMIME))
            m->body = MH_SMTP_BODY_8BITMIME;
          else if (val_is (pp, "BINARYMIME")
                   && has_ext (e, MH_SMTP_EXT_BINARYMIME)
                   && has_ext (e, MH_SMTP_EXT_CHUNKING))
            m->body = MH_SMTP_BODY_BINARYMIME;
          else
            {
              reply_bad (e, 555, "5.5.4", "Unsupported BODY type");
              goto fail;
            }
        }
      else if (g_ascii_strcasecmp (pp->key, "SMTPUTF8") == 0
               && has_ext (e, MH_SMTP_EXT_SMTPUTF8))
        {
          if (pp->val != NULL)
            {
              bad_param_value (e, pp, "takes no value");
              goto fail;
            }
          m->smtputf8 = TRUE;
        }
      else if (g_ascii_strcasecmp (pp->key, "RET") == 0
               && has_ext (e, MH_SMTP_EXT_DSN))
        {
          if (val_is (pp, "FULL"))
            m->ret = MH_SMTP_DSN_RET_FULL;
          else if (val_is (pp, "HDRS"))
            m->ret = MH_SMTP_DSN_RET_HDRS;
          else
            {
              bad_param_value (e, pp, "expected FULL or HDRS");
              goto fail;
            }
        }
      else if (g_ascii_strcasecmp (pp->key, "ENVID") == 0
               && has_ext (e, MH_SMTP_EXT_DSN))
        {
          /* RFC 3461 4.4: xtext, at most 100 characters */
          if (pp->val == NULL || pp->vlen > 100
              || !mh_smtp__xtext_valid (pp->val, pp->vlen))
            {
              bad_param_value (e, pp, "expected xtext of at most 100 "
                               "characters (RFC 3461 4.4)");
              goto fail;
            }
          q->str[0] = g_strndup (pp->val, pp->vlen);
          m->envid = q->str[0];
        }
      else if (g_ascii_strcasecmp (pp->key, "AUTH") == 0 && e->mechs != NULL
               && e->esmtp)
        {
          /* RFC 4954 5: AUTH=xtext or AUTH=<> */
          if (pp->val == NULL
              || !(val_is (pp, "<>")
                   || mh_smtp__xtext_valid (pp->val, pp->vlen)))
            {
              bad_param_value (e, pp, "expected xtext or <>");
              goto fail;
            }
          q->str[1] = g_strndup (pp->val, pp->vlen);
          m->auth = q->str[1];
        }
      else
        {
          unsupported_param (e, pp);
          goto fail;
        }
    }
  if ((q->path.is_utf8 || !ascii_params) && !m->smtputf8)
    {
      /* RFC 6531 3.5 */
      reply_bad (e, 553, "5.6.7",
                 "Non-ASCII address or parameter requires SMTPUTF8");
      goto fail;
    }
  q->ev.any.type = MH_SMTP_EVENT_MAIL;
  q->ev.any.needs_reply = TRUE;
  m->reverse_path = &q->path;
  e->pend_smtputf8 = m->smtputf8;
  e->pend_body = m->body;
  g_queue_push_tail (&e->events, q);
  return;

fail:
  qevent_free (q);
}

static gboolean
parse_notify (const Param *p, guint *out)
{
  guint v = 0;
  const char *s = p->val;
  if (s == NULL || p->vlen == 0)
    return FALSE;
  const char *end = s + p->vlen;
  while (s < end)
    {
      const char *c = memchr (s, ',', (gsize) (end - s));
      gsize n = c != NULL ? (gsize) (c - s) : (gsize) (end - s);
      guint f;
      if (n == 5 && g_ascii_strncasecmp (s, "NEVER", 5) == 0)
        f = MH_SMTP_DSN_NOTIFY_NEVER;
      else if (n == 7 && g_ascii_strncasecmp (s, "SUCCESS", 7) == 0)
        f = MH_SMTP_DSN_NOTIFY_SUCCESS;
      else if (n == 7 && g_ascii_strncasecmp (s, "FAILURE", 7) == 0)
        f = MH_SMTP_DSN_NOTIFY_FAILURE;
      else if (n == 5 && g_ascii_strncasecmp (s, "DELAY", 5) == 0)
        f = MH_SMTP_DSN_NOTIFY_DELAY;
      else
        return FALSE;
      if (v & f)
        return FALSE;
      v |= f;
      if (c == NULL)
        break;
      s = c + 1;
      if (s == end)
        return FALSE; /* trailing comma */
    }
  /* RFC 3461 4.1: NEVER must appear alone */
  if ((v & MH_SMTP_DSN_NOTIFY_NEVER) && v != MH_SMTP_DSN_NOTIFY_NEVER)
    return FALSE;
  *out = v;
  return TRUE;
}

static void
do_rcpt (MhSmtpEngine *e, Arg a)
{
  if (!e->in_mail)
    {
      reply (e, 503, "5.5.1", "Error: need MAIL command");
      return;
    }
  gssize ps = path_start (e, a, "TO:", "Syntax: RCPT TO:<address> "
                                       "[parameters]");
  if (ps < 0)
    return;
  if (e->n_rcpt >= e->lim.max_recipients)
    {
      /* RFC 5321 4.5.3.1.10: 452, the client sends the rest later. Not
       * an error until the client insists far beyond (Postfix's
       * smtpd_recipient_overshoot_limit). */
      if (++e->rcpt_overshoot > RCPT_OVERSHOOT_MAX)
        reply (e, 452, "4.5.3", "Error: too many recipients");
      else
        out_reply_raw (e, 452, "4.5.3", "Error: too many recipients");
      return;
    }

  QEvent *q = g_new0 (QEvent, 1);
  MhSmtpError code;
  g_autofree char *msg = NULL;
  gsize end = 0;
  if (!mh_smtp__path_parse (a.s + ps, a.len - (gsize) ps, FALSE, &end,
                            &q->path, &code, &msg))
    {
      bad_path (e, FALSE, code, msg);
      qevent_free (q);
      return;
    }
  Arg rest = { a.s + ps + end, a.len - (gsize) ps - end };
  if (rest.len > 0 && rest.s[0] != ' ')
    {
      reply_bad (e, 501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]");
      qevent_free (q);
      return;
    }
  Param p[8];
  guint np = 0;
  if (!split_params (e, rest, p, G_N_ELEMENTS (p), &np))
    {
      qevent_free (q);
      return;
    }
  MhSmtpEventRcpt *r = &q->ev.rcpt;
  for (guint k = 0; k < np; k++)
    {
      const Param *pp = &p[k];
      if (!val_ascii (pp) && !e->smtputf8)
        {
          reply_bad (e, 553, "5.6.7", "Non-ASCII parameter requires SMTPUTF8");
          goto fail;
        }
      if (g_ascii_strcasecmp (pp->key, "NOTIFY") == 0
          && has_ext (e, MH_SMTP_EXT_DSN))
        {
          if (!parse_notify (pp, &r->notify))
            {
              bad_param_value (e, pp, "expected NEVER or a list of SUCCESS, "
                               "FAILURE, DELAY (RFC 3461 4.1)");
              goto fail;
            }
        }
      else if (g_ascii_strcasecmp (pp->key, "ORCPT") == 0
               && has_ext (e, MH_SMTP_EXT_DSN))
        {
          /* RFC 3461 4.2: addr-type ";" xtext, at most 500 characters */
          const char *semi = pp->val ? memchr (pp->val, ';', pp->vlen) : NULL;
          gboolean ok = semi != NULL && semi > pp->val && pp->vlen <= 500;
          for (const char *t = pp->val; ok && t < semi; t++)
            ok = g_ascii_isalnum (*t) || *t == '-';
          gsize xl = ok ? pp->vlen - (gsize) (semi + 1 - pp->val) : 0;
          /* utf-8-addr-xtext (RFC 6533) may carry UTF-8 */
          if (ok)
            ok = xl > 0
                 && (mh_smtp__xtext_valid (semi + 1, xl)
                     || (e->smtputf8
                         && g_utf8_validate_len (semi + 1, xl, NULL)));
          if (!ok)
            {
              bad_param_value (e, pp, "expected addr-type;xtext "
                               "(RFC 3461 4.2)");
              goto fail;
            }
          q->str[0] = g_strndup (pp->val, (gsize) (semi - pp->val));
          q->str[1] = g_strndup (semi + 1, xl);
          r->orcpt_type = q->str[0];
          r->orcpt = q->str[1];
        }
      else
        {
          unsupported_param (e, pp);
          goto fail;
        }
    }
  if (q->path.is_utf8 && !e->smtputf8)
    {
      reply_bad (e, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8 in "
                 "MAIL FROM");
      goto fail;
    }
  q->ev.any.type = MH_SMTP_EVENT_RCPT;
  q->ev.any.needs_reply = TRUE;
  r->forward_path = &q->path;
  r->n_accepted = e->n_rcpt;
  g_queue_push_tail (&e->events, q);
  return;

fail:
  qevent_free (q);
}

/* MAIL and RCPT done, no other message form in progress? Returns a
 * reason text for 503/554 or NULL. */
static const char *
data_refusal (MhSmtpEngine *e, gboolean bdat, guint *code)
{
  *code = 503;
  if (!e->in_mail)
    return "Error: need MAIL command";
  if (e->n_rcpt == 0)
    {
      /* RFC 5321 3.3 allows 554 or 503; RFC 2033 4.2 (LMTP) wants 503 */
      *code = e->role == MH_SMTP_ROLE_LMTP ? 503 : 554;
      return "Error: no valid recipients";
    }
  if (!bdat && e->body == MH_SMTP_BODY_BINARYMIME)
    return "Error: BODY=BINARYMIME needs BDAT (RFC 3030)";
  return NULL;
}

static void
do_data (MhSmtpEngine *e, Arg a)
{
  if (!arg_empty (a))
    {
      reply_bad (e, 501, "5.5.4", "Syntax: DATA");
      return;
    }
  guint code;
  const char *why = e->bdat_mode ? "Error: DATA after BDAT (RFC 3030)"
                                 : data_refusal (e, FALSE, &code);
  code = e->bdat_mode ? 503 : code;
  if (why != NULL)
    {
      reply (e, code, "5.5.1", "%s", why);
      return;
    }
  QEvent *q = push_event (e, MH_SMTP_EVENT_DATA, TRUE);
  q->ev.data.bdat = FALSE;
  q->ev.data.n_recipients = e->n_rcpt;
}

static void bdat_chunk_done (MhSmtpEngine *e);
static void data_fail (MhSmtpEngine *e, MhSmtpDataError why);
static void bdat_begin (MhSmtpEngine *e);

/* Starts reading a chunk whose bytes are dropped, then @reply is sent. */
static void
bdat_discard (MhSmtpEngine *e, guint code, const char *enh, const char *text,
              gboolean counts)
{
  g_free (e->bdat_reply);
  e->bdat_reply = g_strdup_printf ("%u %s %s", code, enh, text);
  e->bdat_reply_counts = counts;
  e->bdat_discard = TRUE;
  e->state = ST_BDAT;
  if (e->bdat_left == 0)
    bdat_chunk_done (e);
}

static void
do_bdat (MhSmtpEngine *e, Arg a)
{
  /* BDAT size [LAST] (RFC 3030 2). The size must be read whatever else
   * is wrong: its octets follow at once and must not be taken for
   * commands. */
  gsize i = 0;
  while (i < a.len && g_ascii_isdigit (a.s[i]))
    i++;
  guint64 size = 0;
  gboolean ok = i > 0 && i <= 20;
  if (ok)
    {
      g_autofree char *num = g_strndup (a.s, i);
      ok = g_ascii_string_to_unsigned (num, 10, 0, G_MAXUINT64, &size, NULL);
    }
  gboolean last = FALSE;
  if (ok)
    {
      Arg rest = { a.s + i, a.len - i };
      while (rest.len > 0 && rest.s[0] == ' ')
        rest.s++, rest.len--;
      if (rest.len >= 4 && g_ascii_strncasecmp (rest.s, "LAST", 4) == 0)
        {
          last = TRUE;
          rest.s += 4;
          rest.len -= 4;
        }
      ok = (rest.len == 0 || rest.s[0] == ' ') && arg_empty (rest)
           && (a.len == i || a.s[i] == ' ');
    }
  if (!ok)
    {
      out_reply_raw (e, 501, "5.5.4", "Syntax: BDAT size [LAST]");
      close_abuse (e, MH_SMTP_ABUSE_DESYNC,
                   "Error: cannot follow the BDAT stream");
      return;
    }
  e->bdat_left = size;
  e->bdat_size = size;
  e->bdat_last = last;
  e->bdat_discard = FALSE;

  if (e->refused)
    {
      bdat_discard (e, 503, "5.5.1", "Error: no SMTP service here", TRUE);
      return;
    }
  if (!has_ext (e, MH_SMTP_EXT_CHUNKING))
    {
      bdat_discard (e, 502, "5.5.1", "Error: BDAT needs CHUNKING after EHLO",
                    TRUE);
      return;
    }
  if ((e->policy & MH_SMTP_POLICY_REQUIRE_TLS) && !e->tls)
    {
      bdat_discard (e, 530, "5.7.0", "Must issue a STARTTLS command first",
                    TRUE);
      return;
    }
  guint code;
  const char *why = data_refusal (e, TRUE, &code);
  if (why != NULL)
    {
      bdat_discard (e, code, "5.5.1", why, TRUE);
      return;
    }
  if (!e->bdat_mode)
    {
      QEvent *q = push_event (e, MH_SMTP_EVENT_DATA, TRUE);
      q->ev.data.bdat = TRUE;
      q->ev.data.n_recipients = e->n_rcpt;
      return;
    }
  bdat_begin (e);
}

/* A chunk that would take the message past the limit is refused whole,
 * up front, so the outcome does not depend on how its bytes arrive. */
static void
bdat_begin (MhSmtpEngine *e)
{
  e->state = ST_BDAT;
  if (!e->dfailed && e->bdat_size > e->lim.max_message_size - e->msg_size)
    data_fail (e, MH_SMTP_DATA_TOO_BIG);
  if (e->bdat_left == 0)
    bdat_chunk_done (e);
}

static void
queue_data_end (MhSmtpEngine *e)
{
  QEvent *q = push_event (e, MH_SMTP_EVENT_DATA_END, TRUE);
  e->msg_open = FALSE;
  q->ev.end.size = e->msg_size;
  q->ev.end.n_replies = e->role == MH_SMTP_ROLE_LMTP ? e->n_rcpt : 1;
}

static void
data_failed_reply (MhSmtpEngine *e)
{
  QEvent *q = push_event (e, MH_SMTP_EVENT_DATA_ABORTED, FALSE);
  q->ev.aborted.reason = e->derr;
  e->msg_open = FALSE;
  MhSmtpDataError why = e->derr;
  guint64 max = e->lim.max_message_size;
  guint maxl = e->lim.max_data_line;
  /* RFC 2033 4.2: after the data an LMTP server answers once per
   * accepted recipient, also when the message is refused as a whole;
   * a single reply would put the client out of step. */
  guint n = e->role == MH_SMTP_ROLE_LMTP ? MAX (e->n_rcpt, 1) : 1;
  reset_transaction (e);
  for (guint i = 0; i < n; i++)
    switch (why)
      {
      case MH_SMTP_DATA_TOO_BIG:
        reply (e, 552, "5.3.4", "Error: message exceeds fixed maximum "
               "message size (%" G_GUINT64_FORMAT " octets)", max);
        break;
      case MH_SMTP_DATA_LINE_TOO_LONG:
        reply (e, 554, "5.6.0", "Error: message has a line longer than %u "
               "octets (RFC 5321 4.5.3.1.6)", maxl);
        break;
      case MH_SMTP_DATA_BARE_LF:
        reply (e, 550, "5.5.2", "Error: bare <LF> in message: lines must "
               "end in <CR><LF> (RFC 5321 2.3.8)");
        break;
      case MH_SMTP_DATA_BARE_CR:
      default:
        reply (e, 550, "5.5.2", "Error: bare <CR> in message: lines must "
               "end in <CR><LF> (RFC 5321 2.3.8)");
        break;
      }
}

static void
bdat_chunk_done (MhSmtpEngine *e)
{
  e->state = ST_CMD;
  if (e->bdat_reply != NULL)
    {
      g_autofree char *r = g_steal_pointer (&e->bdat_reply);
      /* "code enh text" */
      guint code = (guint) g_ascii_strtoull (r, NULL, 10);
      char *enh = r + 4;
      char *sp = strchr (enh, ' ');
      *sp = '\0';
      if (e->bdat_reply_counts)
        reply_counted (e, code, enh, sp + 1);
      else
        out_reply_raw (e, code, enh, sp + 1);
      e->bdat_discard = FALSE;
      return;
    }
  if (e->dfailed)
    {
      data_failed_reply (e);
      return;
    }
  if (e->bdat_last)
    {
      queue_data_end (e);
      return;
    }
  reply (e, 250, "2.0.0", "%" G_GUINT64_FORMAT " octets received",
         e->bdat_size);
}

static void
do_auth (MhSmtpEngine *e, Arg a)
{
  if (e->mechs == NULL)
    {
      reply (e, 502, "5.5.1", "Error: authentication not enabled");
      return;
    }
  if ((e->policy & MH_SMTP_POLICY_AUTH_REQUIRES_TLS) && !e->tls)
    {
      reply (e, 530, "5.7.0", "Must issue a STARTTLS command first");
      return;
    }
  if (!e->esmtp)
    {
      reply (e, 503, "5.5.1", "Error: send EHLO first");
      return;
    }
  if (e->authed)
    {
      reply (e, 503, "5.5.1", "Error: already authenticated");
      return;
    }
  if (e->in_mail)
    {
      reply (e, 503, "5.5.1", "Error: AUTH not allowed in a mail transaction");
      return;
    }
  gsize i = 0;
  while (i < a.len && a.s[i] != ' ')
    i++;
  gsize ml = i;
  gsize j = i;
  while (j < a.len && a.s[j] == ' ')
    j++;
  gsize k = j;
  while (k < a.len && a.s[k] != ' ')
    k++;
  Arg ir = { a.s + j, k - j };
  if (ml == 0 || ml > 20 || !arg_empty ((Arg) { a.s + k, a.len - k }))
    {
      reply_bad (e, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
      return;
    }
  char mech[21];
  for (gsize m = 0; m < ml; m++)
    mech[m] = g_ascii_toupper (a.s[m]);
  mech[ml] = '\0';
  if (!g_strv_contains ((const char *const *) e->mechs, mech))
    {
      reply (e, 504, "5.5.4", "Unrecognized authentication type");
      return;
    }
  QEvent *q = g_new0 (QEvent, 1);
  if (ir.len > 0)
    {
      gboolean empty = ir.len == 1 && ir.s[0] == '=';
      if (!empty && !mh_smtp__base64_valid (ir.s, ir.len))
        {
          reply (e, 501, "5.5.2", "Error: invalid base64 in initial response");
          qevent_free (q);
          return;
        }
      q->secret = (guint8 *) g_malloc (1); /* marks the event secret */
      q->secret_len = 1;
      q->str[1] = empty ? g_strdup ("") : g_strndup (ir.s, ir.len);
      if (!empty)
        {
          g_free (q->secret);
          q->secret = g_base64_decode (q->str[1], &q->secret_len);
        }
      q->ev.auth.response = q->str[1];
      q->ev.auth.decoded = empty ? NULL : q->secret;
      q->ev.auth.decoded_len = empty ? 0 : q->secret_len;
    }
  q->str[0] = g_strdup (mech);
  q->ev.auth.mechanism = q->str[0];
  q->ev.any.type = MH_SMTP_EVENT_AUTH;
  q->ev.any.needs_reply = TRUE;
  g_free (e->auth_mech);
  e->auth_mech = g_strdup (mech);
  g_queue_push_tail (&e->events, q);
}

static void
auth_abort (MhSmtpEngine *e, MhSmtpAuthAbort why)
{
  QEvent *q = push_event (e, MH_SMTP_EVENT_AUTH_ABORTED, FALSE);
  q->ev.auth_aborted.reason = why;
  e->state = ST_CMD;
}

static void
do_auth_line (MhSmtpEngine *e, const char *s, gsize n)
{
  if (n == 1 && s[0] == '*')
    {
      auth_abort (e, MH_SMTP_AUTH_CANCELLED);
      reply (e, 501, "5.0.0", "Authentication cancelled");
      return;
    }
  if (!mh_smtp__base64_valid (s, n))
    {
      auth_abort (e, MH_SMTP_AUTH_BAD_BASE64);
      reply (e, 501, "5.5.2", "Error: invalid base64 in response");
      return;
    }
  QEvent *q = push_event (e, MH_SMTP_EVENT_AUTH_RESPONSE, TRUE);
  q->str[0] = g_strdup (e->auth_mech);
  q->str[1] = g_strndup (s, n);
  q->secret = g_base64_decode (q->str[1], &q->secret_len);
  if (q->secret == NULL)
    q->secret = g_malloc0 (1);
  q->ev.auth.mechanism = q->str[0];
  q->ev.auth.response = q->str[1];
  q->ev.auth.decoded = q->secret;
  q->ev.auth.decoded_len = q->secret_len;
  e->state = ST_CMD;
}

static gboolean
count_junk (MhSmtpEngine *e)
{
  if (++e->junk > e->lim.max_junk_commands)
    {
      close_abuse (e, MH_SMTP_ABUSE_TOO_MANY_JUNK_COMMANDS,
                   "Error: too many commands without mail");
      return FALSE;
    }
  return TRUE;
}

static void
do_command (MhSmtpEngine *e, const char *s, gsize n)
{
  gsize vl = 0;
  while (vl < n && s[vl] != ' ')
    vl++;
  const char *verb = s;
  Arg a = { s + MIN (vl + 1, n), n - MIN (vl + 1, n) };
  gboolean lmtp = e->role == MH_SMTP_ROLE_LMTP;

  /* Cross-protocol attacks (an HTTP request sent to port 25 by a
   * browser or a proxy abuser) end the session at once, as Postfix's
   * smtpd_forbidden_commands. */
  static const char *const http[] = { "GET", "POST", "HEAD", "PUT",
                                      "CONNECT", "OPTIONS" };
  for (guint i = 0; i < G_N_ELEMENTS (http); i++)
    if (verb_is (verb, vl, http[i]))
      {
        close_abuse (e, MH_SMTP_ABUSE_FORBIDDEN_COMMAND,
                     "Error: this is an SMTP server");
        return;
      }

  if (verb_is (verb, vl, "QUIT"))
    {
      if (!arg_empty (a))
        {
          reply_bad (e, 501, "5.5.4", "Syntax: QUIT");
          return;
        }
      g_autofree char *t = g_strdup_printf ("%s closing connection",
                                            e->hostname);
      out_reply_raw (e, 221, "2.0.0", t);
      begin_closing (e);
      push_event (e, MH_SMTP_EVENT_QUIT, FALSE);
      return;
    }
  if (verb_is (verb, vl, "BDAT"))
    {
      do_bdat (e, a);
      return;
    }
  if (e->refused)
    {
      /* RFC 5321 3.1: after a 554 greeting, 503 to all but QUIT */
      reply (e, 503, "5.5.1", "Error: no SMTP service here");
      return;
    }

  gboolean is_helo = verb_is (verb, vl, "HELO") || verb_is (verb, vl, "EHLO")
                     || verb_is (verb, vl, "LHLO");
  if ((e->policy & MH_SMTP_POLICY_REQUIRE_TLS) && !e->tls && !is_helo
      && !verb_is (verb, vl, "STARTTLS") && !verb_is (verb, vl, "NOOP")
      && !verb_is (verb, vl, "RSET"))
    {
      reply (e, 530, "5.7.0", "Must issue a STARTTLS command first");
      return;
    }

  if (verb_is (verb, vl, "EHLO") || verb_is (verb, vl, "HELO"))
    {
      if (lmtp)
        reply_bad (e, 500, "5.5.1", "Error: this is LMTP, use LHLO "
                   "(RFC 2033)");
      else
        do_helo (e, verb_is (verb, vl, "EHLO") ? MH_SMTP_HELO_EHLO
                                                : MH_SMTP_HELO_HELO, a);
    }
  else if (verb_is (verb, vl, "LHLO") && lmtp)
    do_helo (e, MH_SMTP_HELO_LHLO, a);
  else if (verb_is (verb, vl, "MAIL"))
    do_mail (e, a);
  else if (verb_is (verb, vl, "RCPT"))
    do_rcpt (e, a);
  else if (verb_is (verb, vl, "DATA"))
    do_data (e, a);
  else if (verb_is (verb, vl, "RSET"))
    {
      if (!arg_empty (a))
        reply_bad (e, 501, "5.5.4", "Syntax: RSET");
      else if (count_junk (e))
        {
          reset_transaction (e);
          push_event (e, MH_SMTP_EVENT_RSET, FALSE);
          reply (e, 250, "2.0.0", "OK");
        }
    }
  else if (verb_is (verb, vl, "NOOP"))
    {
      if (count_junk (e))
        reply (e, 250, "2.0.0", "OK");
    }
  else if (verb_is (verb, vl, "VRFY"))
    {
      if (arg_empty (a))
        reply_bad (e, 501, "5.5.4", "Syntax: VRFY address");
      else if (count_junk (e))
        /* RFC 5321 3.5.3: 252 without disclosing anything */
        reply (e, 252, "2.5.0", "Cannot VRFY user, but will accept message "
               "and attempt delivery");
    }
  else if (verb_is (verb, vl, "EXPN"))
    {
      if (count_junk (e))
        reply (e, 502, "5.5.1", "Error: EXPN not available");
    }
  else if (verb_is (verb, vl, "HELP"))
    {
      if (count_junk (e))
        reply (e, 214, "2.0.0", "Commands: %s MAIL RCPT DATA BDAT RSET NOOP "
               "QUIT VRFY HELP STARTTLS AUTH\nSee RFC 5321",
               lmtp ? "LHLO" : "HELO EHLO");
    }
  else if (verb_is (verb, vl, "STARTTLS"))
    {
      if (!arg_empty (a))
        reply_bad (e, 501, "5.5.4", "Syntax: STARTTLS");
      else if (e->tls)
        reply (e, 503, "5.5.1", "Error: TLS already active");
      else if (!has_ext (e, MH_SMTP_EXT_STARTTLS))
        reply (e, 502, "5.5.1", "Error: STARTTLS not available");
      else if (e->in_mail)
        reply (e, 503, "5.5.1", "Error: STARTTLS in a mail transaction");
      else
        push_event (e, MH_SMTP_EVENT_STARTTLS, TRUE);
    }
  else if (verb_is (verb, vl, "AUTH"))
    do_auth (e, a);
  else
    {
      g_autofree char *t = g_strdup_printf ("Error: command not recognized: "
                                            "%.*s", (int) MIN (vl, 16), verb);
      reply_bad (e, 500, "5.5.1", t);
    }
}

/* ---- Line and data steps ---------------------------------------------------- */

static gboolean
starts_with_auth (const guint8 *p, gsize n)
{
  return n >= 5 && g_ascii_strncasecmp ((const char *) p, "AUTH ", 5) == 0;
}

static void
line_too_long (MhSmtpEngine *e)
{
  if (e->state == ST_AUTH)
    {
      auth_abort (e, MH_SMTP_AUTH_LINE_TOO_LONG);
      /* RFC 4954 4 */
      reply (e, 500, "5.5.6", "Authentication exchange line is too long");
    }
  else
    {
      g_autofree char *t = g_strdup_printf ("Error: line too long (at most %u "
                                            "octets with CRLF)",
                                            e->lim.max_line);
      reply_bad (e, 500, "5.5.6", t);
    }
}

static gboolean
step_line (MhSmtpEngine *e)
{
  gsize avail = e->in->len - e->in_pos;
  if (avail == 0)
    return FALSE;
  guint8 *p = e->in->data + e->in_pos;
  guint8 *lf = e->scan < avail ? memchr (p + e->scan, '\n', avail - e->scan)
                               : NULL;

  if (e->skipping)
    {
      /* the tail of an over-long line: drop it up to its LF */
      if (lf == NULL)
        {
          e->in_pos += avail;
          e->scan = 0;
          return FALSE;
        }
      e->in_pos += (gsize) (lf - p) + 1;
      e->scan = 0;
      e->skipping = FALSE;
      return TRUE;
    }

  gsize limit = e->state == ST_AUTH || starts_with_auth (p, avail)
                  ? e->lim.max_auth_line
                  : e->lim.max_line;
  if (lf == NULL)
    {
      if (avail > limit)
        {
          e->in_pos += avail;
          e->scan = 0;
          e->skipping = TRUE;
          line_too_long (e);
          return TRUE;
        }
      e->scan = avail;
      return FALSE;
    }

  gsize linelen = (gsize) (lf - p) + 1;
  e->in_pos += linelen;
  e->scan = 0;
  if (linelen > limit)
    {
      line_too_long (e);
      return TRUE;
    }

  /* RFC 5321 2.3.8: lines end in CRLF; a bare LF or CR is not a line
   * end and is refused, never guessed at (SMTP smuggling). */
  gboolean bare = linelen < 2 || p[linelen - 2] != '\r';
  gsize n = bare ? linelen - 1 : linelen - 2;
  gboolean nul = FALSE;
  for (gsize i = 0; i < n; i++)
    {
      if (p[i] == '\r')
        bare = TRUE;
      else if (p[i] == '\0')
        nul = TRUE;
    }
  if (bare || nul)
    {
      if (e->state == ST_AUTH)
        {
          auth_abort (e, MH_SMTP_AUTH_BAD_LINE);
          reply (e, 500, "5.5.2", bare ? "Error: bare <CR> or <LF> received"
                                       : "Error: NUL character received");
        }
      else
        reply_bad (e, 500, "5.5.2",
                   bare ? "Error: bare <CR> or <LF> received: lines must end "
                          "in <CR><LF> (RFC 5321 2.3.8)"
                        : "Error: NUL character in command");
      /* The line may hold an AUTH secret. */
      mh_core__wipe (p, linelen);
      return TRUE;
    }
  gboolean secret = e->state == ST_AUTH || starts_with_auth (p, n);
  if (e->state == ST_AUTH)
    do_auth_line (e, (const char *) p, n);
  else
    do_command (e, (const char *) p, n);
  if (secret)
    mh_core__wipe (p, linelen);
  return TRUE;
}

static void
data_fail (MhSmtpEngine *e, MhSmtpDataError why)
{
  if (!e->dfailed)
    {
      e->dfailed = TRUE;
      e->derr = why;
    }
}

/* Runs the DATA state machine over the buffered input, unstuffing in
 * place; queues at most one chunk, then DATA_END or DATA_ABORTED at the
 * end marker. */
static gboolean
step_data (MhSmtpEngine *e)
{
  guint8 *b = e->in->data;
  gsize r = e->in_pos, w = e->in_pos, end = e->in->len;
  gsize start = e->in_pos;
  gboolean done = FALSE;
  guint maxl = e->lim.max_data_line;
  guint64 maxs = e->lim.max_message_size;

#define EMIT(c)                                                             \
  G_STMT_START                                                              \
  {                                                                         \
    if (!e->dfailed)                                                        \
      {                                                                     \
        if (e->msg_size >= maxs)                                            \
          data_fail (e, MH_SMTP_DATA_TOO_BIG);                              \
        else                                                                \
          {                                                                 \
            b[w++] = (c);                                                   \
            e->msg_size++;                                                  \
          }                                                                 \
      }                                                                     \
  }                                                                         \
  G_STMT_END

  while (r < end && !done)
    {
      guint8 c = b[r];
      switch (e->dstate)
        {
        case D_BOL:
          e->line_len = 0;
          if (c == '.')
            {
              /* RFC 5321 4.5.2: drop the first dot of a line */
              e->dstate = D_DOT;
              e->line_len = 1;
              r++;
              break;
            }
          e->dstate = D_TEXT;
          break;
        case D_DOT:
          if (c == '\r')
            {
              e->dstate = D_DOT_CR;
              r++;
              break;
            }
          e->dstate = D_TEXT;
          break;
        case D_DOT_CR:
          if (c == '\n')
            {
              r++;
              done = TRUE;
              break;
            }
          /* ".\r" then not LF: the CR was bare */
          data_fail (e, MH_SMTP_DATA_BARE_CR);
          e->dstate = D_TEXT;
          break;
        case D_TEXT:
          if (c == '\r')
            {
              if (r + 1 == end)
                goto out; /* wait to see whether LF follows */
              if (b[r + 1] == '\n')
                {
                  /* CRLF goes out whole or not at all */
                  if (e->msg_size + 2 > maxs)
                    data_fail (e, MH_SMTP_DATA_TOO_BIG);
                  EMIT ('\r');
                  EMIT ('\n');
                  r += 2;
                  e->dstate = D_BOL;
                  break;
                }
              data_fail (e, MH_SMTP_DATA_BARE_CR);
              r++;
              break;
            }
          if (c == '\n')
            {
              /* not a line end: "\n.\n" must not end the message */
              data_fail (e, MH_SMTP_DATA_BARE_LF);
              r++;
              break;
            }
          {
            /* A run of ordinary octets up to the next CR or LF, moved in
             * one go (memchr is vectorised; this is the hot path). */
            const guint8 *cr = memchr (b + r, '\r', end - r);
            gsize stop = cr != NULL ? (gsize) (cr - b) : end;
            const guint8 *lf = memchr (b + r, '\n', stop - r);
            if (lf != NULL)
              stop = (gsize) (lf - b);
            gsize run = stop - r;
            /* Emit exactly the octets a byte-at-a-time loop would, so
             * the outcome never depends on how the input was cut. */
            guint64 room_line = (guint64) maxl - 2 > e->line_len
                                  ? (guint64) maxl - 2 - e->line_len
                                  : 0;
            guint64 room_size = maxs - e->msg_size;
            guint64 room = MIN (room_line, room_size);
            gsize ok = (gsize) MIN ((guint64) run, room);
            if (!e->dfailed)
              {
                if (w != r)
                  memmove (b + w, b + r, ok);
                w += ok;
                e->msg_size += ok;
                if (ok < run)
                  data_fail (e, room_line <= room_size
                                  ? MH_SMTP_DATA_LINE_TOO_LONG
                                  : MH_SMTP_DATA_TOO_BIG);
              }
            e->line_len = (guint) MIN ((guint64) e->line_len + run,
                                       G_MAXUINT - 2);
            r = stop;
            break;
          }
        }
    }
out:
#undef EMIT
  e->in_pos = r;
  gboolean progress = r > start;
  if (w > start)
    {
      QEvent *q = push_event (e, MH_SMTP_EVENT_DATA_CHUNK, FALSE);
      q->ev.chunk.data = b + start;
      q->ev.chunk.len = w - start;
    }
  if (done)
    {
      e->state = ST_CMD;
      if (e->dfailed)
        data_failed_reply (e);
      else
        queue_data_end (e);
    }
  return progress;
}

static gboolean
step_bdat (MhSmtpEngine *e)
{
  gsize avail = e->in->len - e->in_pos;
  if (e->bdat_left == 0)
    {
      bdat_chunk_done (e);
      return TRUE;
    }
  if (avail == 0)
    return FALSE;
  gsize n = (gsize) MIN ((guint64) avail, e->bdat_left);
  if (!e->bdat_discard && !e->dfailed)
    {
      if (e->msg_size + n > e->lim.max_message_size)
        data_fail (e, MH_SMTP_DATA_TOO_BIG);
      else
        {
          QEvent *q = push_event (e, MH_SMTP_EVENT_DATA_CHUNK, FALSE);
          q->ev.chunk.data = e->in->data + e->in_pos;
          q->ev.chunk.len = n;
          e->msg_size += n;
        }
    }
  e->in_pos += n;
  e->bdat_left -= n;
  if (e->bdat_left == 0)
    bdat_chunk_done (e);
  return TRUE;
}

static gboolean
step (MhSmtpEngine *e)
{
  switch (e->state)
    {
    case ST_CMD:
    case ST_AUTH:
      return step_line (e);
    case ST_DATA:
      return step_data (e);
    case ST_BDAT:
      return step_bdat (e);
    default:
      return FALSE;
    }
}

/* ---- Events out, replies in ------------------------------------------------ */

gboolean
mh_smtp_engine_next_event (MhSmtpEngine *e, MhSmtpEvent *event_out)
{
  g_return_val_if_fail (e != NULL, FALSE);
  g_return_val_if_fail (event_out != NULL, FALSE);

  if (e->awaiting == MH_SMTP_EVENT_NONE)
    g_clear_pointer (&e->cur, qevent_free);
  for (;;)
    {
      if (e->awaiting != MH_SMTP_EVENT_NONE)
        return FALSE;
      if (!g_queue_is_empty (&e->events))
        {
          g_clear_pointer (&e->cur, qevent_free);
          e->cur = g_queue_pop_head (&e->events);
          if (e->state == ST_CLOSING)
            e->cur->ev.any.needs_reply = FALSE;
          if (e->cur->ev.any.needs_reply)
            {
              e->awaiting = e->cur->ev.type;
              e->replies_left = e->cur->ev.type == MH_SMTP_EVENT_DATA_END
                                  ? e->cur->ev.end.n_replies
                                  : 1;
              if (e->replies_left == 0)
                e->replies_left = 1;
            }
          *event_out = e->cur->ev;
          return TRUE;
        }
      if (out_pending (e) >= OUT_SOFT_MAX)
        return FALSE;
      if (!step (e))
        return FALSE;
    }
}

static void
send_ehlo (MhSmtpEngine *e, const char *text)
{
  GString *s = g_string_new (e->hostname);
  if (text != NULL && *text != '\0')
    g_string_append_printf (s, " %s", text);
  if (e->pend_helo_kind != MH_SMTP_HELO_HELO)
    {
      MhSmtpExtensions x = e->ext;
      if (x & MH_SMTP_EXT_PIPELINING)
        g_string_append (s, "\nPIPELINING");
      if (x & MH_SMTP_EXT_SIZE)
        g_string_append_printf (s, "\nSIZE %" G_GUINT64_FORMAT,
                                e->lim.max_message_size);
      if (x & MH_SMTP_EXT_8BITMIME)
        g_string_append (s, "\n8BITMIME");
      if (x & MH_SMTP_EXT_SMTPUTF8)
        g_string_append (s, "\nSMTPUTF8");
      if (x & MH_SMTP_EXT_ENHANCEDSTATUSCODES)
        g_string_append (s, "\nENHANCEDSTATUSCODES");
      if (x & MH_SMTP_EXT_DSN)
        g_string_append (s, "\nDSN");
      if (x & MH_SMTP_EXT_CHUNKING)
        g_string_append (s, "\nCHUNKING");
      if ((x & MH_SMTP_EXT_BINARYMIME) && (x & MH_SMTP_EXT_CHUNKING))
        g_string_append (s, "\nBINARYMIME");
      if ((x & MH_SMTP_EXT_STARTTLS) && !e->tls)
        g_string_append (s, "\nSTARTTLS");
      if (e->mechs != NULL
          && (e->tls || !(e->policy & MH_SMTP_POLICY_AUTH_REQUIRES_TLS)))
        {
          g_autofree char *m = g_strjoinv (" ", e->mechs);
          g_string_append_printf (s, "\nAUTH %s", m);
        }
    }
  /* RFC 2034: no enhanced code on the EHLO reply */
  out_reply_raw (e, 250, NULL, s->str);
  g_string_free (s, TRUE);
}

static const char *
default_text (const char *text, gboolean yes, const char *yes_text,
              guint code)
{
  if (text != NULL)
    return text;
  if (yes)
    return yes_text;
  return code >= 500 ? "Requested action not taken" : "Try again later";
}

static const char *
default_enh (MhSmtpEventType t, guint code)
{
  if (code >= 500)
    return "5.0.0";
  if (code >= 400)
    return "4.0.0";
  switch (t)
    {
    case MH_SMTP_EVENT_MAIL: return "2.1.0";
    case MH_SMTP_EVENT_RCPT: return "2.1.5";
    case MH_SMTP_EVENT_AUTH:
    case MH_SMTP_EVENT_AUTH_RESPONSE: return "2.7.0";
    default: return "2.0.0";
    }
}

static gboolean
enh_valid (const char *enh, guint code)
{
  /* class "." subject "." detail, 1-3 digits each, class = code class */
  if (enh[0] != (char) ('0' + code / 100) || enh[1] != '.')
    return FALSE;
  const char *p = enh + 2;
  for (int part = 0; part < 2; part++)
    {
      int d = 0;
      while (g_ascii_isdigit (*p) && d < 3)
        p++, d++;
      if (d == 0 || (part == 0 && *p != '.') || (part == 1 && *p != '\0'))
        return FALSE;
      if (part == 0)
        p++;
    }
  return TRUE;
}

void
mh_smtp_engine_reply (MhSmtpEngine *e, guint code, const char *enhanced,
                      const char *text)
{
  g_return_if_fail (e != NULL);
  g_return_if_fail (code >= 200 && code <= 599);
  g_return_if_fail (enhanced == NULL || enh_valid (enhanced, code));
  if (e->state == ST_CLOSING)
    return; /* e.g. a host's late answer after a timeout */
  g_return_if_fail (e->awaiting != MH_SMTP_EVENT_NONE);

  MhSmtpEventType t = e->awaiting;
  gboolean yes = code < 400;
  const char *enh = enhanced != NULL ? enhanced : default_enh (t, code);

  switch (t)
    {
    case MH_SMTP_EVENT_HELO:
      g_return_if_fail (!yes || code / 100 == 2);
      e->awaiting = MH_SMTP_EVENT_NONE;
      if (!yes)
        {
          reply_counted (e, code, enh, default_text (text, FALSE, NULL, code));
          return;
        }
      g_free (e->helo);
      e->helo = g_strdup (e->cur->ev.helo.domain);
      e->esmtp = e->pend_helo_kind != MH_SMTP_HELO_HELO;
      send_ehlo (e, text);
      return;

    case MH_SMTP_EVENT_MAIL:
      g_return_if_fail (!yes || code / 100 == 2);
      e->awaiting = MH_SMTP_EVENT_NONE;
      if (yes)
        {
          reset_transaction (e);
          e->in_mail = TRUE;
          e->smtputf8 = e->pend_smtputf8;
          e->body = e->pend_body;
        }
      reply_counted (e, code, enh, default_text (text, yes, "Sender OK",
                                                 code));
      return;

    case MH_SMTP_EVENT_RCPT:
      g_return_if_fail (!yes || code / 100 == 2);
      e->awaiting = MH_SMTP_EVENT_NONE;
      if (yes)
        e->n_rcpt++;
      reply_counted (e, code, enh, default_text (text, yes, "Recipient OK",
                                                 code));
      return;

    case MH_SMTP_EVENT_DATA:
      {
        gboolean bdat = e->cur->ev.data.bdat;
        g_return_if_fail (!yes || bdat || code == 354);
        e->awaiting = MH_SMTP_EVENT_NONE;
        if (bdat)
          {
            if (yes)
              {
                e->bdat_mode = TRUE;
                e->msg_open = TRUE;
                e->msg_size = 0;
                e->dfailed = FALSE;
                bdat_begin (e);
              }
            else
              {
                /* RFC 3030 2: the refused chunk is still read */
                reset_transaction (e);
                g_autofree char *tx = g_strdup (text != NULL ? text
                                                             : "Refused");
                for (char *c = tx; *c; c++)
                  if (*c == '\n')
                    *c = ' ';
                bdat_discard (e, code, enh, tx, TRUE);
              }
            return;
          }
        if (!yes)
          {
            reply_counted (e, code, enh, default_text (text, FALSE, NULL, code));
            return;
          }
        out_reply_raw (e, 354, NULL,
                       text != NULL ? text
                                    : "End data with <CR><LF>.<CR><LF>");
        e->state = ST_DATA;
        e->dstate = D_BOL;
        e->line_len = 0;
        e->msg_open = TRUE;
        e->msg_size = 0;
        e->dfailed = FALSE;
        return;
      }

    case MH_SMTP_EVENT_DATA_END:
      g_return_if_fail (!yes || code / 100 == 2);
      /* A refused message is not a protocol error: not counted. */
      out_reply_raw (e, code, enh,
                     default_text (text, yes, "Message accepted for delivery",
                                   code));
      if (--e->replies_left == 0)
        {
          e->awaiting = MH_SMTP_EVENT_NONE;
          reset_transaction (e);
        }
      return;

    case MH_SMTP_EVENT_STARTTLS:
      g_return_if_fail (!yes || code == 220);
      e->awaiting = MH_SMTP_EVENT_NONE;
      if (!yes)
        {
          reply_counted (e, code, enh, default_text (text, FALSE, NULL, code));
          return;
        }
      out_reply_raw (e, 220, enh, text != NULL ? text
                                               : "Ready to start TLS");
      /* CVE-2011-0411: whatever was pipelined after STARTTLS is
       * plaintext the attacker injected; it must not be read as if it
       * came through TLS. */
      e->tls_discarded += e->in->len - e->in_pos;
      g_byte_array_set_size (e->in, 0);
      e->in_pos = 0;
      e->scan = 0;
      e->skipping = FALSE;
      e->state = ST_TLS_WAIT;
      return;

    case MH_SMTP_EVENT_AUTH:
    case MH_SMTP_EVENT_AUTH_RESPONSE:
      g_return_if_fail (!yes || code == 235 || code == 334);
      e->awaiting = MH_SMTP_EVENT_NONE;
      if (code == 334)
        {
          out_reply_raw (e, 334, NULL, text != NULL ? text : "");
          e->state = ST_AUTH;
          return;
        }
      if (code == 235)
        {
          e->authed = TRUE;
          out_reply_raw (e, 235, enh, text != NULL
                                        ? text
                                        : "Authentication successful");
          return;
        }
      reply_counted (e, code, enh, default_text (text, FALSE, NULL, code));
      return;

    default:
      g_return_if_reached ();
    }
}

void
mh_smtp_engine_accept (MhSmtpEngine *e)
{
  g_return_if_fail (e != NULL);
  if (e->state == ST_CLOSING)
    return;
  g_return_if_fail (e->awaiting != MH_SMTP_EVENT_NONE);
  switch (e->awaiting)
    {
    case MH_SMTP_EVENT_DATA:
      if (e->cur->ev.data.bdat)
        mh_smtp_engine_reply (e, 250, NULL, NULL);
      else
        mh_smtp_engine_reply (e, 354, NULL, NULL);
      break;
    case MH_SMTP_EVENT_STARTTLS:
      mh_smtp_engine_reply (e, 220, NULL, NULL);
      break;
    case MH_SMTP_EVENT_AUTH:
    case MH_SMTP_EVENT_AUTH_RESPONSE:
      mh_smtp_engine_reply (e, 235, NULL, NULL);
      break;
    default:
      mh_smtp_engine_reply (e, 250, NULL, NULL);
      break;
    }
}

guint64
mh_smtp_engine_starttls_done (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, 0);
  g_return_val_if_fail (e->state == ST_TLS_WAIT, 0);
  /* RFC 3207 4.2: forget everything learnt before TLS. */
  reset_transaction (e);
  g_clear_pointer (&e->helo, g_free);
  e->esmtp = FALSE;
  e->authed = FALSE;
  e->tls = TRUE;
  e->state = ST_CMD;
  guint64 n = e->tls_discarded;
  e->tls_discarded = 0;
  return n;
}

/* ---- Output and time ---------------------------------------------------- */

gsize
mh_smtp_engine_peek_output (MhSmtpEngine *e, const guint8 **out)
{
  g_return_val_if_fail (e != NULL, 0);
  g_return_val_if_fail (out != NULL, 0);
  gsize n = out_pending (e);
  *out = n > 0 ? e->out->data + e->out_pos : NULL;
  return n;
}

void
mh_smtp_engine_consume_output (MhSmtpEngine *e, gsize n)
{
  g_return_if_fail (e != NULL);
  g_return_if_fail (n <= out_pending (e));
  e->out_pos += n;
  if (e->out_pos == e->out->len)
    {
      g_byte_array_set_size (e->out, 0);
      e->out_pos = 0;
    }
  else if (e->out_pos > OUT_SOFT_MAX)
    {
      gsize rest = out_pending (e);
      memmove (e->out->data, e->out->data + e->out_pos, rest);
      g_byte_array_set_size (e->out, (guint) rest);
      e->out_pos = 0;
    }
}

GBytes *
mh_smtp_engine_take_output (MhSmtpEngine *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  const guint8 *p;
  gsize n = mh_smtp_engine_peek_output (e, &p);
  GBytes *b = g_bytes_new (p, n);
  mh_smtp_engine_consume_output (e, n);
  return b;
}

gint64
mh_smtp_engine_tick (MhSmtpEngine *e, gint64 now_us)
{
  g_return_val_if_fail (e != NULL, -1);
  if (e->state == ST_CLOSING)
    return -1;
  if (e->state == ST_PREGREET || e->state == ST_TLS_WAIT
      || e->awaiting != MH_SMTP_EVENT_NONE
      || !g_queue_is_empty (&e->events))
    {
      /* the host's time, not the client's */
      e->last_active = now_us;
      e->clock_started = TRUE;
      e->activity = FALSE;
      return -1;
    }
  if (!e->clock_started || e->activity)
    {
      e->last_active = now_us;
      e->clock_started = TRUE;
      e->activity = FALSE;
    }
  gboolean in_data = e->state == ST_DATA || e->state == ST_BDAT;
  gint64 limit = (gint64) (in_data ? e->lim.data_timeout_s
                                   : e->lim.command_timeout_s) * G_USEC_PER_SEC;
  if (now_us - e->last_active >= limit)
    {
      close_421 (e, "4.4.2", "Error: timeout exceeded");
      QEvent *q = push_event (e, MH_SMTP_EVENT_TIMEOUT, FALSE);
      q->ev.timeout.in_data = in_data;
      return -1;
    }
  return e->last_active + limit;
}

void
mh_smtp_engine_shutdown (MhSmtpEngine *e, const char *text)
{
  g_return_if_fail (e != NULL);
  if (e->state == ST_CLOSING)
    return;
  close_421 (e, "4.3.2", text != NULL ? text : "Service shutting down");
}
