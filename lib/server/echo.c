/* lib/server echo: a diagnostic line service that proves the runtime.
 *
 * Design notes
 * - Not a mail protocol: it exists so the tests (and `mailhostd --demo`)
 *   can exercise every path of lib/server before SMTP or IMAP exist:
 *   STARTTLS, blocking jobs, delayed answers, back-pressure, timeouts,
 *   shutdown. It touches no data. Off unless `[echo] enabled = true`.
 * - Replies look like SMTP (three digits, space, text) so that
 *   `gnutls-cli --starttls-proto=smtp` can negotiate STARTTLS with it:
 *   greeting "220 ", EHLO answered with "250-"/"250 " lines, STARTTLS
 *   with "220 ".
 * - It is written as a sans-I/O engine plus its host glue, the shape
 *   every real service takes: the engine parses and queues replies and
 *   events (SLOW = blocking work, WAIT = delayed answer, STARTTLS); the
 *   glue (echo_handle_events) pulls events and answers them. While an
 *   event is unanswered the engine stops taking input (feed returns
 *   less), which is how pipelined commands wait their turn.
 * - Commands: EHLO/HELO, STARTTLS, ECHO text, TLS, SLOW ms, WAIT ms,
 *   BIG bytes, BEGIN ... END, NOOP, QUIT. Lines end in LF or CRLF and are
 *   at most 1000 bytes (a longer one is refused and the connection
 *   closes, as an engine must on a broken limit).
 * - BIG produces its output lazily, 64 KiB per peek, so a client that
 *   does not read shows the server's back-pressure instead of a 1 GB
 *   buffer.
 */
#include "server-private.h"

#include <string.h>

#define LINE_MAX_ECHO 1000
#define BIG_CHUNK (64 * 1024)
#define SLOW_MAX_MS 60000
#define BIG_MAX ((guint64) 1 << 32)

typedef enum
{
  EV_NONE,
  EV_STARTTLS,
  EV_SLOW,
  EV_WAIT,
} EchoEventKind;

typedef struct
{
  MhServerSession *session; /* borrowed: the session owns the engine */
  GByteArray *line;
  GByteArray *out;
  gsize out_off;
  guint64 big_left;
  gboolean big_active;
  gboolean in_block;
  guint block_lines;
  gboolean waiting;         /* an event is unanswered */
  EchoEventKind event;      /* the event to hand out, if any */
  guint event_arg;
  gboolean closing;
} Echo;

static void
say (Echo *e, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
say (Echo *e, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_byte_array_append (e->out, (const guint8 *) text, (guint) strlen (text));
  g_byte_array_append (e->out, (const guint8 *) "\r\n", 2);
}

static gpointer
echo_new (MhServerSession *session, gpointer user_data)
{
  Echo *e = g_new0 (Echo, 1);
  e->session = session;
  e->line = g_byte_array_new ();
  e->out = g_byte_array_new ();
  say (e, "220 mailhost echo service ready%s",
       mh_server_session_is_tls (session) ? " (TLS)" : "");
  return e;
}

static void
echo_free (gpointer engine)
{
  Echo *e = engine;
  g_byte_array_unref (e->line);
  g_byte_array_unref (e->out);
  g_free (e);
}

static gboolean
arg_uint (const char *arg, guint64 max, guint64 *out)
{
  return arg != NULL
         && g_ascii_string_to_unsigned (arg, 10, 0, max, out, NULL);
}

static void
command (Echo *e, char *line)
{
  if (e->in_block)
    {
      if (g_ascii_strcasecmp (line, "END") == 0)
        {
          e->in_block = FALSE;
          say (e, "250 block of %u lines", e->block_lines);
        }
      else
        e->block_lines++;
      return;
    }

  char *arg = strchr (line, ' ');
  if (arg)
    *arg++ = '\0';
  guint64 n = 0;

  if (g_ascii_strcasecmp (line, "EHLO") == 0
      || g_ascii_strcasecmp (line, "HELO") == 0)
    {
      if (mh_server_session_can_start_tls (e->session))
        {
          say (e, "250-mailhost echo");
          say (e, "250 STARTTLS");
        }
      else
        say (e, "250 mailhost echo");
    }
  else if (g_ascii_strcasecmp (line, "STARTTLS") == 0)
    {
      if (!mh_server_session_can_start_tls (e->session))
        say (e, "454 4.7.0 TLS not available");
      else
        {
          say (e, "220 2.0.0 Ready to start TLS");
          e->event = EV_STARTTLS;
          e->waiting = TRUE;
        }
    }
  else if (g_ascii_strcasecmp (line, "ECHO") == 0)
    say (e, "250 %s", arg ? arg : "");
  else if (g_ascii_strcasecmp (line, "TLS") == 0)
    {
      if (mh_server_session_is_tls (e->session))
        say (e, "250 %s %s", mh_server_session_get_tls_version (e->session),
             mh_server_session_get_tls_cipher (e->session));
      else
        say (e, "250 none");
    }
  else if (g_ascii_strcasecmp (line, "SLOW") == 0
           || g_ascii_strcasecmp (line, "WAIT") == 0)
    {
      if (!arg_uint (arg, SLOW_MAX_MS, &n))
        say (e, "501 5.5.4 expected milliseconds, 0 to %u", SLOW_MAX_MS);
      else
        {
          e->event = g_ascii_strcasecmp (line, "SLOW") == 0 ? EV_SLOW
                                                            : EV_WAIT;
          e->event_arg = (guint) n;
          e->waiting = TRUE;
        }
    }
  else if (g_ascii_strcasecmp (line, "BIG") == 0)
    {
      if (!arg_uint (arg, BIG_MAX, &n))
        say (e, "501 5.5.4 expected a byte count");
      else
        {
          e->big_left = n;
          e->big_active = TRUE;
        }
    }
  else if (g_ascii_strcasecmp (line, "BEGIN") == 0)
    {
      e->in_block = TRUE;
      e->block_lines = 0;
      say (e, "354 send lines, END to finish");
    }
  else if (g_ascii_strcasecmp (line, "NOOP") == 0)
    say (e, "250 2.0.0 OK");
  else if (g_ascii_strcasecmp (line, "QUIT") == 0)
    {
      say (e, "221 2.0.0 bye");
      e->closing = TRUE;
    }
  else
    say (e, "500 5.5.2 unknown command");
}

static gsize
echo_feed (gpointer engine, const guint8 *data, gsize len)
{
  Echo *e = engine;
  gsize i = 0;

  /* Waiting for the host, producing BIG output, or closing: take
   * nothing more; the server holds the rest and stops reading. */
  while (i < len && !e->waiting && !e->closing && !e->big_active)
    {
      const guint8 *nl = memchr (data + i, '\n', len - i);
      gsize chunk = nl ? (gsize) (nl - (data + i)) + 1 : len - i;
      if (e->line->len + chunk > LINE_MAX_ECHO + 2)
        {
          say (e, "500 5.5.2 line too long");
          e->closing = TRUE;
          return len;
        }
      g_byte_array_append (e->line, data + i, (guint) chunk);
      i += chunk;
      if (nl == NULL)
        break;
      /* strip LF and an optional CR */
      guint l = e->line->len - 1;
      if (l > 0 && e->line->data[l - 1] == '\r')
        l--;
      g_autofree char *text = g_strndup ((const char *) e->line->data, l);
      g_byte_array_set_size (e->line, 0);
      if (strlen (text) != l)
        {
          say (e, "500 5.5.2 NUL in command");
          continue;
        }
      command (e, text);
    }
  return i;
}

static gsize
echo_peek (gpointer engine, const guint8 **data_out)
{
  Echo *e = engine;
  if (e->out_off == e->out->len && e->big_active)
    {
      g_byte_array_set_size (e->out, 0);
      e->out_off = 0;
      while (e->out->len < BIG_CHUNK && e->big_left > 0)
        {
          static const char row[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
          gsize n = MIN (e->big_left, sizeof row - 1);
          g_byte_array_append (e->out, (const guint8 *) row, (guint) n);
          e->big_left -= n;
        }
      if (e->big_left == 0)
        {
          e->big_active = FALSE;
          say (e, "\r\n250 big done");
        }
    }
  *data_out = e->out->data + e->out_off;
  return e->out->len - e->out_off;
}

static void
echo_consume (gpointer engine, gsize len)
{
  Echo *e = engine;
  e->out_off += MIN (len, e->out->len - e->out_off);
  if (e->out_off == e->out->len)
    {
      g_byte_array_set_size (e->out, 0);
      e->out_off = 0;
    }
}

static gboolean
echo_is_closing (gpointer engine)
{
  return ((Echo *) engine)->closing;
}

static gboolean
echo_is_closed (gpointer engine)
{
  Echo *e = engine;
  return e->closing && e->out_off == e->out->len;
}

static MhServerTimeout
echo_timeout (gpointer engine)
{
  Echo *e = engine;
  return e->in_block || e->line->len > 0 ? MH_SERVER_TIMEOUT_COMMAND
                                         : MH_SERVER_TIMEOUT_IDLE;
}

/* ---- the host side ------------------------------------------------------ */

static void
slow_job (gpointer data)
{
  g_usleep ((gulong) GPOINTER_TO_UINT (data) * 1000);
}

static void
slow_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  Echo *e = user_data;
  e->waiting = FALSE;
  say (e, "250 slept %u ms", GPOINTER_TO_UINT (data));
}

static void
wait_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  Echo *e = user_data;
  e->waiting = FALSE;
  say (e, "250 waited %u ms", GPOINTER_TO_UINT (data));
}

static void
echo_handle_events (gpointer engine, MhServerSession *session,
                    gpointer user_data)
{
  Echo *e = engine;
  EchoEventKind ev = e->event;
  e->event = EV_NONE;

  switch (ev)
    {
    case EV_NONE:
      break;
    case EV_STARTTLS:
      if (!mh_server_session_start_tls (session, NULL))
        {
          e->waiting = FALSE;
          say (e, "454 4.7.0 TLS not available");
        }
      break;
    case EV_SLOW:
      mh_server_session_run_blocking (session, slow_job,
                                      GUINT_TO_POINTER (e->event_arg), NULL,
                                      slow_done, e);
      break;
    case EV_WAIT:
      mh_server_session_call_later (session, e->event_arg, wait_done,
                                    GUINT_TO_POINTER (e->event_arg), NULL, e);
      break;
    }
}

static void
echo_tls_started (gpointer engine, MhServerSession *session,
                  gpointer user_data)
{
  Echo *e = engine;
  /* RFC 3207 4.2: the client starts over (EHLO again); nothing of the
   * clear-text part carries on. */
  e->waiting = FALSE;
  e->in_block = FALSE;
  g_byte_array_set_size (e->line, 0);
}

static const char *
echo_goodbye (MhServerGoodbye reason, gpointer user_data)
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

static const MhService echo_service = {
  .version = MH_SERVICE_VERSION,
  .engine_new = echo_new,
  .engine_free = echo_free,
  .feed = echo_feed,
  .peek_output = echo_peek,
  .consume_output = echo_consume,
  .is_closing = echo_is_closing,
  .is_closed = echo_is_closed,
  .tick = NULL,
  .handle_events = echo_handle_events,
  .timeout = echo_timeout,
  .tls_started = echo_tls_started,
  .goodbye = echo_goodbye,
};

const MhService *
mh_server__echo_service (void)
{
  return &echo_service;
}
