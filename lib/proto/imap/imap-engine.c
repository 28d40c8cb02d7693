/* lib/proto/imap: the sans-I/O IMAP engine (framing, state, output).
 *
 * Design notes
 *
 * Input path: feed() copies client bytes into `in` (or, once COMPRESS is
 * on, into `zin`, which is inflated into `in` as room allows); pump()
 * frames `in` into `cbuf`, one command at a time, and hands each
 * complete command to the parser (imap-parse.c). Parsed commands, and
 * the errors of commands that did not parse, wait in `queue` in the
 * client's order; next_command() answers the errors and the state
 * violations as it reaches them, so tagged replies leave in command
 * order even when a client pipelines (RFC 9051 5.5).
 *
 * Framing (Frame below):
 *   F_LINE         bytes up to LF; bare LF ends a line like CRLF (as
 *                  Dovecot does); NUL is refused (RFC 9051 4.3: CHAR8
 *                  excludes it). A line ending in "{n}", "{n+}", "~{n}"
 *                  or "~{n+}" announces a literal: size checks, then
 *                  "+ OK" for a synchronising one.
 *   F_LITERAL      n raw bytes into cbuf (any byte but NUL; literal8
 *                  may carry NUL too), then F_LINE again.
 *   F_SKIP_LINE    the rest of a refused command's line is dropped; its
 *                  last bytes are kept so a non-synchronising literal
 *                  announced at its end is skipped too (otherwise the
 *                  literal's content would be read as commands: an
 *                  APPEND could smuggle commands).
 *   F_SKIP_LITERAL the bytes of a refused non-synchronising literal.
 * A refused synchronising literal needs no skipping: the client waits
 * for "+" and gets the tagged BAD/NO instead (RFC 9051 7.5, RFC 7889).
 *
 * Line modes: after the host answers IDLE or AUTHENTICATE with a
 * continuation request, the next line is DONE or an AUTH_RESPONSE, not
 * a command. Until the host has answered such a command (and STARTTLS,
 * COMPRESS), framing stops (`block`), so a line pipelined behind it is
 * read with the right meaning. After STARTTLS, input is discarded until
 * starttls_done() (CVE-2011-0411; RFC 9051 6.2.1); after COMPRESS, bytes
 * already taken are inflated once start_compress() is called.
 *
 * Limits (MhImapLimits, 0 = limits.h default): max_line bounds the
 * non-literal bytes of one command; max_literal each literal except
 * APPEND's; max_append each APPEND literal and the APPEND command's
 * total (MULTIAPPEND included: messages are held whole); max_command the
 * total of other commands; max_pending the queue (framing stops at it:
 * want_read() is FALSE); max_bad_commands the BAD replies before BYE.
 * The engine also stops framing while more than OUT_SOFT_MAX bytes of
 * output are unsent, so a client that does not read cannot make it
 * queue BAD replies without bound.
 *
 * Memory: every buffer is allocated on demand and released when empty
 * (allocation is cheap next to a command's work), so an idle session,
 * IDLE included, holds the struct only
 * (a few hundred bytes; zlib's state when COMPRESS is on).
 */
#include "imap-proto-private.h"

#include <gio/gio.h>
#include <string.h>

#define IN_CAP (16 * 1024)        /* unframed plaintext taken from feed() */
#define ZIN_CAP (16 * 1024)       /* compressed bytes not yet inflated */
#define OUT_SOFT_MAX (256 * 1024) /* stop framing while this much is unsent */
#define SLICE_MIN 2048 /* APPENDs above this are sliced, not copied */
#define TAIL_MAX 24    /* enough for "~{18446744073709551615+}" */

typedef enum
{
  F_LINE,
  F_LITERAL,
  F_SKIP_LINE,
  F_SKIP_LITERAL,
} Frame;

typedef enum
{
  M_CMD,
  M_IDLE,
  M_AUTH,
} LineMode;

typedef enum
{
  B_NONE,
  B_IDLE,     /* IDLE framed; waiting for continuation() or tagged() */
  B_AUTH,     /* AUTHENTICATE or a response framed; same */
  B_STARTTLS, /* STARTTLS framed: input held until the host answers */
  B_TLS,      /* STARTTLS accepted: input discarded until starttls_done() */
  B_COMPRESS, /* waiting for start_compress() or a refusal */
} Block;

typedef struct
{
  MhImapCommand *cmd; /* NULL: an error to answer */
  char *tag;
  char *status;
  char *code;
  char *text;
  char *bye;        /* fatal error: BYE after the reply */
  gboolean blocker; /* framing waits for the host's answer to it */
  gsize size;       /* for mh_imap_engine_memory() */
} Entry;

typedef struct
{
  guint8 *data;
  gsize len;
  gsize pos; /* bytes before pos are used up */
  gsize cap;
} Buf;

struct _MhImapEngine
{
  gint ref;
  MhImapLimits lim;
  MhImapState state;
  gboolean utf8;
  gboolean literal_minus;
  gboolean closing;
  gboolean dying; /* a fatal error is queued: input is dropped */

  Buf in;   /* plaintext not yet framed */
  Buf zin;  /* compressed input not yet inflated */
  Buf cbuf; /* the command being framed */
  Buf out;

  Frame frame;
  LineMode mode;
  Block block;
  gboolean block_active; /* the blocking command was handed out */
  gsize line_start;      /* offset of the current line in cbuf */
  guint64 line_bytes;    /* non-literal bytes of this command */
  guint64 lit_total;     /* literal bytes of this command */
  gboolean peeked;       /* is_append is known */
  gboolean is_append;
  guint64 lit_left;
  gboolean lit_binary;
  char tail[TAIL_MAX];
  gsize tail_len;

  GQueue queue;
  gsize queue_bytes;

  char *cur_tag; /* the command last handed out */
  MhImapCommandKind cur_kind;
  char *mode_tag; /* the IDLE/AUTHENTICATE a DONE/response belongs to */

  guint bad;

  GConverter *deflate;
  GConverter *inflate;
};

/* ---- Buffers ------------------------------------------------------------- */

static void
buf_reserve (Buf *b, gsize extra)
{
  if (b->pos > 0 && b->pos == b->len)
    b->pos = b->len = 0;
  if (b->len + extra <= b->cap)
    return;
  if (b->pos > 0)
    {
      memmove (b->data, b->data + b->pos, b->len - b->pos);
      b->len -= b->pos;
      b->pos = 0;
      if (b->len + extra <= b->cap)
        return;
    }
  gsize cap = MAX (b->cap, 256);
  while (cap < b->len + extra)
    cap = cap > G_MAXSIZE / 2 ? b->len + extra : cap * 2;
  b->data = g_realloc (b->data, cap);
  b->cap = cap;
}

static void
buf_append (Buf *b, const void *p, gsize n)
{
  if (n == 0)
    return;
  buf_reserve (b, n);
  memcpy (b->data + b->len, p, n);
  b->len += n;
}

/* Empties @b and gives its memory back: an idle session holds no
 * buffers (the per-connection memory target is a few KiB). */
static void
buf_reset (Buf *b, gboolean wipe)
{
  if (wipe && b->data != NULL)
    mh_core__wipe (b->data, b->len);
  b->len = b->pos = 0;
  if (b->cap > 0)
    {
      g_free (b->data);
      b->data = NULL;
      b->cap = 0;
    }
}

static void
buf_clear (Buf *b)
{
  g_free (b->data);
  memset (b, 0, sizeof *b);
}

static gsize
buf_avail (const Buf *b)
{
  return b->len - b->pos;
}

/* ---- Output -------------------------------------------------------------- */

static void
out_raw (MhImapEngine *e, const void *p, gsize n)
{
  if (e->deflate == NULL)
    {
      buf_append (&e->out, p, n);
      return;
    }
  /* RFC 4978 4: every batch ends in a sync flush so the client can
   * inflate all of it without waiting for more. */
  const guint8 *ip = p;
  gsize left = n;
  for (int guard = 0; guard < 1000000; guard++)
    {
      buf_reserve (&e->out, left + left / 8 + 64);
      gsize rd = 0, wr = 0;
      g_autoptr (GError) err = NULL;
      GConverterResult r = g_converter_convert (
          e->deflate, ip, left, e->out.data + e->out.len,
          e->out.cap - e->out.len, G_CONVERTER_FLUSH, &rd, &wr, &err);
      if (r == G_CONVERTER_ERROR)
        {
          if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
            {
              buf_reserve (&e->out, e->out.cap - e->out.len + 4096);
              continue;
            }
          /* zlib cannot fail on valid state; stop talking if it does */
          e->closing = TRUE;
          return;
        }
      e->out.len += wr;
      ip += rd;
      left -= rd;
      if (left == 0 && r == G_CONVERTER_FLUSHED)
        return;
    }
}

static void
out_str (MhImapEngine *e, const char *s)
{
  out_raw (e, s, strlen (s));
}

/* Response text from the host or the peer: never a CR, LF or NUL, so a
 * text cannot end the line early and inject a response. */
static void
append_text (GString *s, const char *text)
{
  for (const char *p = text; p != NULL && *p; p++)
    g_string_append_c (s, (*p == '\r' || *p == '\n') ? ' ' : *p);
}

static void
count_bad (MhImapEngine *e)
{
  if (e->closing)
    return;
  if (++e->bad >= e->lim.max_bad_commands)
    mh_imap_engine_bye (e, "Too many invalid IMAP commands.");
}

static void
write_tagged (MhImapEngine *e, const char *tag, const char *status,
              const char *code, const char *text)
{
  GString *s = g_string_sized_new (64);
  g_string_append (s, tag != NULL && *tag ? tag : "*");
  g_string_append_c (s, ' ');
  g_string_append (s, status);
  if (code != NULL && *code)
    {
      g_string_append (s, " [");
      append_text (s, code);
      g_string_append_c (s, ']');
    }
  g_string_append_c (s, ' ');
  append_text (s, text != NULL && *text ? text : "Done.");
  g_string_append (s, "\r\n");
  out_raw (e, s->str, s->len);
  g_string_free (s, TRUE);
  if (g_strcmp0 (status, "BAD") == 0)
    count_bad (e);
}

/* ---- Queue --------------------------------------------------------------- */

static void
entry_free (Entry *en)
{
  if (en == NULL)
    return;
  mh_imap_command_free (en->cmd);
  g_free (en->tag);
  g_free (en->status);
  g_free (en->code);
  g_free (en->text);
  g_free (en->bye);
  g_free (en);
}

static void
push_entry (MhImapEngine *e, Entry *en)
{
  g_queue_push_tail (&e->queue, en);
  e->queue_bytes += en->size + sizeof *en;
}

static void
push_error (MhImapEngine *e, const char *tag, const char *status,
            const char *code, const char *text)
{
  Entry *en = g_new0 (Entry, 1);
  en->tag = g_strdup (tag != NULL ? tag : "*");
  en->status = g_strdup (status);
  en->code = g_strdup (code);
  en->text = g_strdup (text);
  en->size = strlen (text) + 32;
  push_entry (e, en);
}

/* The tag of the command in cbuf, for errors found while framing. */
static char *
cbuf_tag (MhImapEngine *e)
{
  char *tag = mh_imap__peek_tag (e->cbuf.data, e->cbuf.len, NULL);
  return tag != NULL ? tag : g_strdup ("*");
}

/* ---- Framing ------------------------------------------------------------- */

static void
command_reset (MhImapEngine *e)
{
  /* LOGIN passwords and SASL responses pass through here */
  buf_reset (&e->cbuf, TRUE);
  e->line_start = 0;
  e->line_bytes = 0;
  e->lit_total = 0;
  e->peeked = FALSE;
  e->is_append = FALSE;
  e->lit_left = 0;
  e->lit_binary = FALSE;
}

/* Drops the command being framed after an error: queue the reply, skip
 * the rest of its line (and what that line announces). */
static void
refuse_and_skip (MhImapEngine *e, const char *status, const char *code,
                 const char *text, gboolean rest_of_line)
{
  g_autofree char *tag = cbuf_tag (e);
  push_error (e, tag, status, code, text);
  command_reset (e);
  e->tail_len = 0;
  e->frame = rest_of_line ? F_SKIP_LINE : F_LINE;
}

static gboolean
can_frame (MhImapEngine *e)
{
  return !e->closing && !e->dying && e->block == B_NONE
         && g_queue_get_length (&e->queue) < e->lim.max_pending
         && buf_avail (&e->out) < OUT_SOFT_MAX;
}

/* Finds a literal announcement at the end of @line: "{n}", "{n+}",
 * "~{n}", "~{n+}". */
static gboolean
find_literal (const guint8 *line, gsize len, guint64 *n_out, gboolean *sync_out,
              gboolean *binary_out, gsize *start_out)
{
  if (len < 3 || line[len - 1] != '}')
    return FALSE;
  gsize i = len - 1;
  gboolean sync = TRUE;
  if (line[i - 1] == '+')
    {
      sync = FALSE;
      i--;
    }
  gsize digits_end = i;
  while (i > 0 && g_ascii_isdigit (line[i - 1]))
    i--;
  if (i == digits_end || i == 0 || line[i - 1] != '{')
    return FALSE;
  guint64 n = 0;
  for (gsize k = i; k < digits_end; k++)
    {
      guint d = line[k] - '0';
      if (n > (G_MAXUINT64 - d) / 10)
        n = G_MAXUINT64; /* saturate: refused as too large below */
      else
        n = n * 10 + d;
    }
  i--; /* at '{' */
  *binary_out = i > 0 && line[i - 1] == '~';
  *start_out = *binary_out ? i - 1 : i;
  *n_out = n;
  *sync_out = sync;
  return TRUE;
}

static void
queue_command (MhImapEngine *e, MhImapCommand *cmd, gsize size)
{
  Entry *en = g_new0 (Entry, 1);
  en->cmd = cmd;
  en->size = size;
  push_entry (e, en);
}

static void
idle_or_auth_line (MhImapEngine *e, const char *line, gsize len)
{
  MhImapCommand *cmd = mh_imap__command_new ();
  cmd->tag = g_strdup (e->mode_tag != NULL ? e->mode_tag : "*");
  if (e->mode == M_IDLE)
    {
      cmd->kind = MH_IMAP_CMD_DONE;
      cmd->name = g_strdup ("IDLE");
      if (!(len == 4 && g_ascii_strncasecmp (line, "DONE", 4) == 0))
        cmd->line = g_strndup (line, len);
      e->mode = M_CMD;
    }
  else
    {
      cmd->kind = MH_IMAP_CMD_AUTH_RESPONSE;
      cmd->name = g_strdup ("AUTHENTICATE");
      cmd->line = g_strndup (line, len);
      /* the host answers with another challenge or the tagged reply */
      e->mode = M_CMD;
      e->block = B_AUTH;
    }
  queue_command (e, cmd, len + 64);
  if (cmd->kind == MH_IMAP_CMD_AUTH_RESPONSE)
    ((Entry *)g_queue_peek_tail (&e->queue))->blocker = TRUE;
  e->block_active = FALSE;
}

static void
complete_command (MhImapEngine *e)
{
  MhImapCommand *cmd = NULL;
  g_autofree char *tag = NULL, *code = NULL, *text = NULL;
  g_autoptr (GBytes) whole = NULL;
  gsize size = e->cbuf.len;

  if (e->is_append && e->cbuf.len > SLICE_MIN)
    {
      /* APPEND messages become slices of the framed bytes: no copy */
      whole = g_bytes_new_take (e->cbuf.data, e->cbuf.len);
      e->cbuf.data = NULL;
      e->cbuf.len = e->cbuf.cap = 0;
    }
  const guint8 *p
      = whole != NULL ? g_bytes_get_data (whole, NULL) : e->cbuf.data;
  MhImapParseResult r
      = mh_imap__parse (p, size, whole, e->utf8, &cmd, &tag, &code, &text);
  command_reset (e);
  if (r != MH_IMAP_PARSE_OK)
    {
      push_error (e, tag, r == MH_IMAP_PARSE_NO ? "NO" : "BAD", code, text);
      return;
    }
  switch (cmd->kind)
    {
    case MH_IMAP_CMD_IDLE:
      e->block = B_IDLE;
      break;
    case MH_IMAP_CMD_AUTHENTICATE:
      e->block = B_AUTH;
      break;
    case MH_IMAP_CMD_STARTTLS:
      /* what follows was sent in the clear: held until the host says
       * OK (then dropped) or refuses (then read as commands) */
      e->block = B_STARTTLS;
      break;
    case MH_IMAP_CMD_COMPRESS:
      e->block = B_COMPRESS;
      break;
    default:
      break;
    }
  queue_command (e, cmd, size);
  if (e->block != B_NONE)
    ((Entry *)g_queue_peek_tail (&e->queue))->blocker = TRUE;
}

/* A full line is in cbuf from line_start (LF dropped). */
static void
end_line (MhImapEngine *e)
{
  Buf *c = &e->cbuf;
  if (c->len > e->line_start && c->data[c->len - 1] == '\r')
    c->len--;
  /* an empty first line has no buffer yet */
  const guint8 *line
      = c->data != NULL ? c->data + e->line_start : (const guint8 *)"";
  gsize len = c->len - e->line_start;

  if (e->mode != M_CMD)
    {
      idle_or_auth_line (e, (const char *)line, len);
      command_reset (e);
      return;
    }
  if (c->len == 0)
    return; /* an empty line between commands: ignored, as Dovecot does */

  guint64 n;
  gboolean sync, binary;
  gsize start;
  if (!find_literal (line, len, &n, &sync, &binary, &start))
    {
      complete_command (e);
      return;
    }
  if (!e->peeked)
    {
      g_free (mh_imap__peek_tag (c->data, c->len, &e->is_append));
      e->peeked = TRUE;
    }
  guint64 max = e->is_append ? e->lim.max_append : e->lim.max_literal;
  guint64 total_max = e->is_append ? e->lim.max_append : e->lim.max_command;
  guint64 total = e->lit_total + (e->is_append ? 0 : e->line_bytes);
  gboolean too_big
      = n > max || n > total_max - MIN (total, total_max) || total >= total_max;
  if (!sync && e->literal_minus && n > MH_LIMIT_IMAP_LITERAL_MINUS)
    {
      /* RFC 7888 4: the bytes follow anyway; there is no telling
       * where the next command starts, so the session ends */
      g_autofree char *tag = cbuf_tag (e);
      g_autofree char *t
          = g_strdup_printf ("Non-synchronizing literal of %" G_GUINT64_FORMAT
                             " bytes exceeds LITERAL- maximum of %u bytes",
                             n, MH_LIMIT_IMAP_LITERAL_MINUS);
      push_error (e, tag, "BAD", "TOOBIG", t);
      Entry *last = g_queue_peek_tail (&e->queue);
      last->bye = g_strdup ("Literal too large.");
      e->dying = TRUE;
      command_reset (e);
      return;
    }
  if (too_big)
    {
      g_autofree char *t = NULL;
      if (e->is_append)
        t = g_strdup_printf ("Message too large: %" G_GUINT64_FORMAT
                             " bytes, APPENDLIMIT is %" G_GUINT64_FORMAT,
                             n, e->lim.max_append);
      else if (n > max)
        t = g_strdup_printf ("Literal too large: %" G_GUINT64_FORMAT
                             " bytes, the maximum is %" G_GUINT64_FORMAT,
                             n, max);
      else
        t = g_strdup_printf (
            "Command too large: the maximum is %" G_GUINT64_FORMAT " bytes",
            total_max);
      /* RFC 7889 4: NO [TOOBIG] for a message over APPENDLIMIT */
      refuse_and_skip (e, e->is_append ? "NO" : "BAD", "TOOBIG", t, FALSE);
      if (!sync)
        {
          e->frame = F_SKIP_LITERAL;
          e->lit_left = n;
        }
      return;
    }
  if (sync)
    out_str (e, "+ OK\r\n");
  buf_append (c, "\r\n", 2);
  /* reserve up to 1 MiB at once rather than copy the literal again at
   * every doubling; a client that announces more and sends nothing
   * should not make us map all of it */
  buf_reserve (c, (gsize)MIN (n, (guint64)1 << 20));
  e->lit_total += n;
  e->lit_left = n;
  e->lit_binary = binary;
  e->frame = n > 0 ? F_LITERAL : F_LINE;
  e->line_start = c->len;
}

/* A line that cannot be taken (NUL, too long). Inside IDLE or an
 * AUTHENTICATE exchange it still ends what the host waits for: a DONE
 * that is not "DONE" (the host answers BAD), or "*", which cancels the
 * exchange (RFC 9051 6.2.2). */
static void
line_error (MhImapEngine *e, const char *text)
{
  if (e->mode == M_CMD)
    {
      refuse_and_skip (e, "BAD", NULL, text, TRUE);
      return;
    }
  if (e->mode == M_IDLE)
    idle_or_auth_line (e, text, strlen (text));
  else
    idle_or_auth_line (e, "*", 1);
  command_reset (e);
  e->tail_len = 0;
  e->frame = F_SKIP_LINE;
}

/* Remembers the last bytes of a skipped line. */
static void
tail_add (MhImapEngine *e, const guint8 *p, gsize n)
{
  if (n >= TAIL_MAX)
    {
      memcpy (e->tail, p + n - TAIL_MAX, TAIL_MAX);
      e->tail_len = TAIL_MAX;
      return;
    }
  if (e->tail_len + n > TAIL_MAX)
    {
      gsize drop = e->tail_len + n - TAIL_MAX;
      memmove (e->tail, e->tail + drop, e->tail_len - drop);
      e->tail_len -= drop;
    }
  memcpy (e->tail + e->tail_len, p, n);
  e->tail_len += n;
}

/* Frames bytes of @p; returns how many were used. Stops when framing
 * must wait for the host. */
static gsize
frame (MhImapEngine *e, const guint8 *p, gsize n)
{
  gsize i = 0;
  while (i < n)
    {
      if (!can_frame (e))
        break;
      switch (e->frame)
        {
        case F_LINE:
          {
            const guint8 *lf = memchr (p + i, '\n', n - i);
            gsize take = lf != NULL ? (gsize)(lf - (p + i)) : n - i;
            guint64 limit = e->lim.max_line;
            const guint8 *nul = memchr (p + i, '\0', take);
            if (nul != NULL && e->line_bytes + (nul - (p + i)) <= limit)
              {
                /* keep what precedes the NUL: it holds the tag */
                buf_append (&e->cbuf, p + i, nul - (p + i));
                i += nul - (p + i);
                line_error (e, "NUL byte in command line");
                continue;
              }
            /* +1: a CR before the LF does not count */
            if (e->line_bytes + take > limit + 1)
              {
                g_autofree char *t = g_strdup_printf (
                    "Command line too long: the maximum is %u bytes",
                    e->lim.max_line);
                /* up to the limit, as if the line had come in pieces:
                 * the tag is read from there */
                gsize keep
                    = (gsize)(limit + 1 - MIN (e->line_bytes, limit + 1));
                buf_append (&e->cbuf, p + i, keep);
                i += keep;
                line_error (e, t);
                continue;
              }
            buf_append (&e->cbuf, p + i, take);
            e->line_bytes += take;
            i += take;
            if (lf == NULL)
              break;
            i++;
            end_line (e);
            break;
          }
        case F_LITERAL:
          {
            gsize take = (gsize)MIN (e->lit_left, (guint64)(n - i));
            if (!e->lit_binary && memchr (p + i, '\0', take) != NULL)
              {
                /* RFC 9051 9: literal = ... *CHAR8, CHAR8 excludes NUL */
                guint64 left = e->lit_left;
                refuse_and_skip (e, "BAD", NULL,
                                 "NUL byte in literal (only a literal8 "
                                 "~{n} may carry NUL)",
                                 FALSE);
                e->frame = F_SKIP_LITERAL;
                e->lit_left = left;
                continue;
              }
            buf_append (&e->cbuf, p + i, take);
            i += take;
            e->lit_left -= take;
            if (e->lit_left == 0)
              {
                e->frame = F_LINE;
                e->line_start = e->cbuf.len;
              }
            break;
          }
        case F_SKIP_LINE:
          {
            const guint8 *lf = memchr (p + i, '\n', n - i);
            gsize take = lf != NULL ? (gsize)(lf - (p + i)) : n - i;
            tail_add (e, p + i, take);
            i += take;
            if (lf == NULL)
              break;
            i++;
            gsize tl = e->tail_len;
            if (tl > 0 && e->tail[tl - 1] == '\r')
              tl--;
            guint64 ln;
            gboolean sync, binary;
            gsize start;
            e->tail_len = 0;
            if (find_literal ((const guint8 *)e->tail, tl, &ln, &sync, &binary,
                              &start)
                && !sync)
              {
                e->frame = F_SKIP_LITERAL;
                e->lit_left = ln;
              }
            else
              e->frame = F_LINE;
            break;
          }
        case F_SKIP_LITERAL:
          {
            gsize take = (gsize)MIN (e->lit_left, (guint64)(n - i));
            i += take;
            e->lit_left -= take;
            if (e->lit_left == 0)
              {
                e->frame = F_SKIP_LINE;
                e->tail_len = 0;
              }
            break;
          }
        }
    }
  return i;
}

/* Inflates some of zin into in. FALSE when nothing could be done. */
static gboolean
inflate_some (MhImapEngine *e)
{
  if (buf_avail (&e->zin) == 0 || buf_avail (&e->in) >= IN_CAP)
    return FALSE;
  buf_reserve (&e->in, IN_CAP - buf_avail (&e->in));
  gsize rd = 0, wr = 0;
  g_autoptr (GError) err = NULL;
  GConverterResult r = g_converter_convert (
      e->inflate, e->zin.data + e->zin.pos, buf_avail (&e->zin),
      e->in.data + e->in.len, IN_CAP - buf_avail (&e->in), G_CONVERTER_NO_FLAGS,
      &rd, &wr, &err);
  if (r == G_CONVERTER_ERROR)
    {
      if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT))
        return FALSE;
      mh_imap_engine_bye (e, "Invalid compressed data.");
      return FALSE;
    }
  e->zin.pos += rd;
  e->in.len += wr;
  if (r == G_CONVERTER_FINISHED)
    {
      /* the client ended its deflate stream: nothing valid can follow */
      mh_imap_engine_bye (e, "Compressed stream ended.");
      return FALSE;
    }
  if (buf_avail (&e->zin) == 0)
    buf_reset (&e->zin, FALSE);
  return rd > 0 || wr > 0;
}

static void
pump (MhImapEngine *e)
{
  for (int guard = 0; guard < 1000000; guard++)
    {
      if (e->closing || e->block == B_TLS)
        {
          buf_reset (&e->in, TRUE);
          buf_reset (&e->zin, FALSE);
          return;
        }
      if (!can_frame (e))
        break;
      if (buf_avail (&e->in) > 0)
        {
          gsize used = frame (e, e->in.data + e->in.pos, buf_avail (&e->in));
          e->in.pos += used;
          if (used == 0)
            break;
          continue;
        }
      if (e->inflate != NULL && inflate_some (e))
        continue;
      break;
    }
  if (buf_avail (&e->in) == 0)
    buf_reset (&e->in, TRUE);
}

/* ---- Public: lifecycle --------------------------------------------------- */

MhImapEngine *
mh_imap_engine_new (const MhImapLimits *limits)
{
  MhImapEngine *e = g_new0 (MhImapEngine, 1);
  e->ref = 1;
  MhImapLimits *def = mh_imap_limits_new ();
  e->lim = *def;
  mh_imap_limits_free (def);
  if (limits != NULL)
    {
#define TAKE(f)                                                                \
  if (limits->f != 0)                                                          \
  e->lim.f = limits->f
      TAKE (max_line);
      TAKE (max_literal);
      TAKE (max_append);
      TAKE (max_command);
      TAKE (max_pending);
      TAKE (max_bad_commands);
#undef TAKE
    }
  /* a line must at least hold "a LOGOUT"; a command its line */
  e->lim.max_line = MAX (e->lim.max_line, 64);
  e->lim.max_command = MAX (e->lim.max_command, 64);
  e->lim.max_line = (guint)MIN ((guint64)e->lim.max_line, e->lim.max_command);
  e->state = MH_IMAP_STATE_NOT_AUTHENTICATED;
  g_queue_init (&e->queue);
  return e;
}

MhImapEngine *
mh_imap_engine_ref (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  g_atomic_int_inc (&e->ref);
  return e;
}

void
mh_imap_engine_unref (MhImapEngine *e)
{
  if (e == NULL || !g_atomic_int_dec_and_test (&e->ref))
    return;
  g_queue_clear_full (&e->queue, (GDestroyNotify)entry_free);
  /* input may hold a LOGIN or AUTHENTICATE secret */
  if (e->cbuf.data != NULL)
    mh_core__wipe (e->cbuf.data, e->cbuf.len);
  if (e->in.data != NULL)
    mh_core__wipe (e->in.data, e->in.len);
  buf_clear (&e->in);
  buf_clear (&e->zin);
  buf_clear (&e->cbuf);
  buf_clear (&e->out);
  g_free (e->cur_tag);
  g_free (e->mode_tag);
  g_clear_object (&e->deflate);
  g_clear_object (&e->inflate);
  g_free (e);
}

G_DEFINE_BOXED_TYPE (MhImapEngine, mh_imap_engine, mh_imap_engine_ref,
                     mh_imap_engine_unref)

void
mh_imap_engine_greet (MhImapEngine *e, const char *text)
{
  g_return_if_fail (e != NULL);
  GString *s = g_string_new ("* OK ");
  append_text (s, text != NULL && *text ? text : "ready");
  g_string_append (s, "\r\n");
  out_raw (e, s->str, s->len);
  g_string_free (s, TRUE);
}

/* ---- Public: input ------------------------------------------------------- */

gsize
mh_imap_engine_feed (MhImapEngine *e, const guint8 *buf, gsize len)
{
  g_return_val_if_fail (e != NULL, 0);
  g_return_val_if_fail (buf != NULL || len == 0, 0);
  gsize used = 0;
  while (used < len)
    {
      if (e->closing || e->dying || e->block == B_TLS)
        return len; /* discarded */
      if (e->inflate == NULL && buf_avail (&e->in) == 0 && can_frame (e))
        {
          /* nothing held back: frame straight from the caller's bytes
           * and keep only what cannot be framed yet */
          gsize k = frame (e, buf + used, len - used);
          used += k;
          if (k > 0)
            continue;
        }
      Buf *b = e->inflate != NULL ? &e->zin : &e->in;
      gsize cap = e->inflate != NULL ? ZIN_CAP : IN_CAP;
      gsize room = cap - MIN (cap, buf_avail (b));
      if (room == 0 && e->block == B_STARTTLS)
        return len; /* more than IN_CAP pipelined after STARTTLS: dropped */
      if (room == 0)
        break;
      gsize take = MIN (room, len - used);
      buf_append (b, buf + used, take);
      used += take;
      pump (e);
    }
  return used;
}

gboolean
mh_imap_engine_want_read (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, FALSE);
  if (!can_frame (e))
    return FALSE;
  if (e->inflate != NULL)
    return buf_avail (&e->zin) < ZIN_CAP;
  return buf_avail (&e->in) < IN_CAP;
}

static const char *
state_error (const MhImapEngine *e, const MhImapCommand *cmd)
{
  MhImapState st = e->state;
  if (st == MH_IMAP_STATE_LOGOUT)
    return "The session is ending";
  switch (cmd->kind)
    {
    case MH_IMAP_CMD_CAPABILITY:
    case MH_IMAP_CMD_NOOP:
    case MH_IMAP_CMD_LOGOUT:
    case MH_IMAP_CMD_ID:
    case MH_IMAP_CMD_DONE:
    case MH_IMAP_CMD_AUTH_RESPONSE:
      return NULL;
    case MH_IMAP_CMD_STARTTLS:
    case MH_IMAP_CMD_AUTHENTICATE:
    case MH_IMAP_CMD_LOGIN:
      return st == MH_IMAP_STATE_NOT_AUTHENTICATED ? NULL
                                                   : "Already authenticated";
    case MH_IMAP_CMD_CHECK:
    case MH_IMAP_CMD_CLOSE:
    case MH_IMAP_CMD_UNSELECT:
    case MH_IMAP_CMD_EXPUNGE:
    case MH_IMAP_CMD_SEARCH:
    case MH_IMAP_CMD_FETCH:
    case MH_IMAP_CMD_STORE:
    case MH_IMAP_CMD_COPY:
    case MH_IMAP_CMD_MOVE:
    case MH_IMAP_CMD_SORT:
    case MH_IMAP_CMD_THREAD:
      if (st == MH_IMAP_STATE_SELECTED)
        return NULL;
      return st == MH_IMAP_STATE_NOT_AUTHENTICATED
                 ? "Not authenticated: log in first"
                 : "No mailbox selected";
    default:
      return st == MH_IMAP_STATE_NOT_AUTHENTICATED
                 ? "Not authenticated: log in first"
                 : NULL;
    }
}

/* The host answered the command that stopped framing. Framing runs
 * ahead of the host, so an answer to an earlier command of the same kind
 * (the DONE of a first IDLE while a second IDLE is framed) must not
 * count: only once the blocking command was handed out does it. */
static void
unblock_for (MhImapEngine *e, MhImapCommandKind kind, gboolean ok)
{
  if (!e->block_active)
    return;
  gboolean end = FALSE;
  switch (kind)
    {
    case MH_IMAP_CMD_IDLE:
      end = e->block == B_IDLE || e->mode == M_IDLE;
      break;
    case MH_IMAP_CMD_AUTHENTICATE:
    case MH_IMAP_CMD_AUTH_RESPONSE:
      end = e->block == B_AUTH || e->mode == M_AUTH;
      break;
    case MH_IMAP_CMD_STARTTLS:
      if (e->block == B_STARTTLS && ok)
        {
          /* CVE-2011-0411: nothing sent before the handshake may be
           * read after it */
          e->block = B_TLS;
          e->block_active = FALSE;
          buf_reset (&e->in, TRUE);
          command_reset (e);
          e->frame = F_LINE;
          return;
        }
      end = e->block == B_STARTTLS;
      break;
    case MH_IMAP_CMD_COMPRESS:
      end = !ok && e->block == B_COMPRESS;
      break;
    default:
      break;
    }
  if (end)
    {
      e->block = B_NONE;
      e->mode = M_CMD;
      e->block_active = FALSE;
    }
}

MhImapCommand *
mh_imap_engine_next_command (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  for (int guard = 0; guard < 1000000; guard++)
    {
      if (e->closing)
        return NULL;
      Entry *en = g_queue_pop_head (&e->queue);
      if (en == NULL)
        {
          pump (e);
          en = g_queue_pop_head (&e->queue);
          if (en == NULL)
            return NULL;
        }
      e->queue_bytes -= MIN (e->queue_bytes, en->size + sizeof *en);
      if (en->cmd == NULL)
        {
          write_tagged (e, en->tag, en->status, en->code, en->text);
          if (en->bye != NULL)
            mh_imap_engine_bye (e, en->bye);
          entry_free (en);
          continue;
        }
      MhImapCommand *cmd = g_steal_pointer (&en->cmd);
      if (en->blocker)
        e->block_active = TRUE;
      entry_free (en);
      const char *why = state_error (e, cmd);
      if (why != NULL)
        {
          g_autofree char *t = g_strdup_printf ("%s: %s", cmd->name, why);
          unblock_for (e, cmd->kind, FALSE);
          write_tagged (e, cmd->tag, "BAD", NULL, t);
          mh_imap_command_free (cmd);
          continue;
        }
      g_free (e->cur_tag);
      e->cur_tag = g_strdup (cmd->tag);
      e->cur_kind = cmd->kind;
      if (cmd->kind == MH_IMAP_CMD_IDLE
          || cmd->kind == MH_IMAP_CMD_AUTHENTICATE)
        {
          g_free (e->mode_tag);
          e->mode_tag = g_strdup (cmd->tag);
        }
      return cmd;
    }
  return NULL;
}

/* ---- Public: state and settings ----------------------------------------- */

void
mh_imap_engine_set_state (MhImapEngine *e, MhImapState state)
{
  g_return_if_fail (e != NULL);
  g_return_if_fail (state <= MH_IMAP_STATE_LOGOUT);
  e->state = state;
}

MhImapState
mh_imap_engine_get_state (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, MH_IMAP_STATE_LOGOUT);
  return e->state;
}

void
mh_imap_engine_set_utf8 (MhImapEngine *e, gboolean enabled)
{
  g_return_if_fail (e != NULL);
  e->utf8 = enabled;
}

void
mh_imap_engine_set_literal_minus (MhImapEngine *e, gboolean enabled)
{
  g_return_if_fail (e != NULL);
  e->literal_minus = enabled;
}

/* ---- Public: output ------------------------------------------------------ */

void
mh_imap_engine_write (MhImapEngine *e, const guint8 *data, gsize len)
{
  g_return_if_fail (e != NULL);
  g_return_if_fail (data != NULL || len == 0);
  if (len > 0)
    out_raw (e, data, len);
}

void
mh_imap_engine_tagged (MhImapEngine *e, const MhImapCommand *cmd,
                       const char *status, const char *code, const char *text)
{
  g_return_if_fail (e != NULL);
  g_return_if_fail (cmd != NULL);
  g_return_if_fail (status != NULL);
  g_autofree char *t = NULL;
  if (text == NULL || !*text)
    t = g_strdup_printf ("%s %s.", cmd->name != NULL ? cmd->name : "Command",
                         g_str_equal (status, "OK") ? "completed" : "failed");
  unblock_for (e, cmd->kind, g_str_equal (status, "OK"));
  write_tagged (e, cmd->tag, status, code, t != NULL ? t : text);
}

void
mh_imap_engine_continuation (MhImapEngine *e, const char *text)
{
  g_return_if_fail (e != NULL);
  GString *s = g_string_new ("+ ");
  append_text (s, text);
  g_string_append (s, "\r\n");
  out_raw (e, s->str, s->len);
  g_string_free (s, TRUE);
  if (!e->block_active)
    return;
  if (e->block == B_IDLE)
    {
      e->block = B_NONE;
      e->mode = M_IDLE;
    }
  else if (e->block == B_AUTH)
    {
      e->block = B_NONE;
      e->mode = M_AUTH;
    }
}

void
mh_imap_engine_auth_done (MhImapEngine *e)
{
  g_return_if_fail (e != NULL);
  unblock_for (e, MH_IMAP_CMD_AUTHENTICATE, TRUE);
}

void
mh_imap_engine_starttls_done (MhImapEngine *e)
{
  g_return_if_fail (e != NULL);
  buf_reset (&e->in, TRUE);
  command_reset (e);
  e->frame = F_LINE;
  if (e->block == B_TLS || (e->block == B_STARTTLS && e->block_active))
    {
      e->block = B_NONE;
      e->block_active = FALSE;
    }
}

void
mh_imap_engine_start_compress (MhImapEngine *e)
{
  g_return_if_fail (e != NULL);
  if (e->deflate != NULL)
    return;
  e->deflate
      = G_CONVERTER (g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW, -1));
  e->inflate
      = G_CONVERTER (g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW));
  /* bytes taken after COMPRESS were already compressed by the client */
  if (buf_avail (&e->in) > 0)
    {
      Buf old = e->zin;
      memset (&e->zin, 0, sizeof e->zin);
      buf_append (&e->zin, e->in.data + e->in.pos, buf_avail (&e->in));
      if (old.data != NULL)
        buf_append (&e->zin, old.data + old.pos, buf_avail (&old));
      buf_clear (&old);
      buf_reset (&e->in, TRUE);
    }
  if (e->block == B_COMPRESS)
    {
      e->block = B_NONE;
      e->block_active = FALSE;
    }
  pump (e);
}

gsize
mh_imap_engine_peek_output (MhImapEngine *e, const guint8 **out)
{
  g_return_val_if_fail (e != NULL, 0);
  g_return_val_if_fail (out != NULL, 0);
  *out = e->out.data != NULL ? e->out.data + e->out.pos : NULL;
  return buf_avail (&e->out);
}

void
mh_imap_engine_consume_output (MhImapEngine *e, gsize n)
{
  g_return_if_fail (e != NULL);
  e->out.pos += MIN (n, buf_avail (&e->out));
  if (buf_avail (&e->out) == 0)
    buf_reset (&e->out, FALSE);
}

gsize
mh_imap_engine_output_size (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, 0);
  return buf_avail (&e->out);
}

void
mh_imap_engine_bye (MhImapEngine *e, const char *text)
{
  g_return_if_fail (e != NULL);
  if (e->closing)
    return;
  GString *s = g_string_new ("* BYE ");
  append_text (s, text != NULL && *text ? text : "Logging out.");
  g_string_append (s, "\r\n");
  out_raw (e, s->str, s->len);
  g_string_free (s, TRUE);
  e->closing = TRUE;
  e->state = MH_IMAP_STATE_LOGOUT;
  g_queue_clear_full (&e->queue, (GDestroyNotify)entry_free);
  e->queue_bytes = 0;
}

gboolean
mh_imap_engine_is_closing (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, TRUE);
  return e->closing;
}

gsize
mh_imap_engine_memory (MhImapEngine *e)
{
  g_return_val_if_fail (e != NULL, 0);
  return sizeof *e + e->in.cap + e->zin.cap + e->cbuf.cap + e->out.cap
         + e->queue_bytes
         /* zlib: deflate ~256 KiB, inflate ~44 KiB at default settings */
         + (e->deflate != NULL ? 300 * 1024 : 0);
}
