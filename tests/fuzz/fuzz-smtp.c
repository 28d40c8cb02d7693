/* libFuzzer target: the SMTP/LMTP server engine.
 *
 * The first bytes pick the role, small limits (so limits are reached),
 * extensions and AUTH policy; the rest is the client's byte stream, fed
 * in pieces whose sizes also come from the input. A host answers every
 * event plausibly (accept, or refuse with varying codes), runs STARTTLS
 * handshakes, ticks the clock, and checks invariants after each call:
 * - unsent output stays under a fixed bound, and every output line is a
 *   well-formed reply ("ddd" then ' ' or '-', CRLF, at most 512 octets);
 * - an event that needs a reply is answered before the next one comes;
 * - each accepted DATA ends in exactly one DATA_END or DATA_ABORTED, and
 *   chunks come only in between; no message exceeds max_message_size;
 * - DATA (not BDAT) chunks never contain a bare CR or LF;
 * - after closing, no event needs a reply and input is refused. */
#include "mailhost/mailhost.h"

#include <stdint.h>
#include <stddef.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(x)                                                          \
  do                                                                      \
    {                                                                     \
      if (!(x))                                                           \
        __builtin_trap ();                                                \
    }                                                                     \
  while (0)

typedef struct
{
  MhSmtpEngine *e;
  guint32 rng;
  MhSmtpLimits lim;
  gboolean msg_open;
  gboolean msg_bdat;
  guint64 msg_size;
  gboolean lmtp;
  guint accepted_rcpts;
  gboolean tls_pending; /* STARTTLS accepted, handshake not done */
  GString *line; /* partial output line, to check reply syntax */
  /* FNV-1a of the events (chunks as their bytes), and of the output:
   * apart, since how they interleave depends on the input's cuts */
  guint64 ev_digest;
  guint64 out_digest;
} Host;

static void
mix (guint64 *d, const guint8 *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    *d = (*d ^ p[i]) * 1099511628211ull;
}

static guint32
next_rand (Host *h)
{
  h->rng = h->rng * 1103515245u + 12345u;
  return h->rng >> 16;
}

static void
check_output (Host *h)
{
  const guint8 *p;
  gsize n = mh_smtp_engine_peek_output (h->e, &p);
  /* soft bound + one event's worth of replies (LMTP: one per rcpt) */
  CHECK (n <= 16 * 1024 + 4096 + 520 * (gsize) h->lim.max_recipients);
  mix (&h->out_digest, p, n);
  for (gsize i = 0; i < n; i++)
    {
      g_string_append_c (h->line, (char) p[i]);
      if (p[i] == '\n')
        {
          const char *l = h->line->str;
          gsize len = h->line->len;
          CHECK (len >= 5 && len <= 512);
          CHECK (l[len - 2] == '\r');
          CHECK (g_ascii_isdigit (l[0]) && g_ascii_isdigit (l[1])
                 && g_ascii_isdigit (l[2]));
          CHECK (l[3] == ' ' || l[3] == '-' || (len == 5 && l[3] == '\r'));
          for (gsize k = 0; k + 2 < len; k++)
            CHECK ((guchar) l[k] >= 32 && l[k] != 127);
          g_string_truncate (h->line, 0);
        }
    }
  CHECK (h->line->len <= 512);
  mh_smtp_engine_consume_output (h->e, n);
}

static void
answer (Host *h, const MhSmtpEvent *ev)
{
  MhSmtpEngine *e = h->e;
  /* only answers draw from the PRNG: chunk counts depend on the cuts */
  guint32 r = ev->any.needs_reply ? next_rand (h) % 8 : 0;
  if (ev->type == MH_SMTP_EVENT_DATA_CHUNK)
    mix (&h->ev_digest, ev->chunk.data, ev->chunk.len);
  else
    {
      guint8 t = (guint8) ev->type;
      mix (&h->ev_digest, &t, 1);
    }
  switch (ev->type)
    {
    case MH_SMTP_EVENT_HELO:
      CHECK (ev->helo.domain != NULL && *ev->helo.domain);
      if (r == 0)
        mh_smtp_engine_reply (e, 550, "5.7.1", "Go away");
      else
        mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_MAIL:
      CHECK (ev->mail.reverse_path != NULL);
      CHECK (ev->mail.size <= h->lim.max_message_size);
      if (r == 0)
        mh_smtp_engine_reply (e, 451, NULL, "later\nreally");
      else
        {
          h->accepted_rcpts = 0;
          mh_smtp_engine_accept (e);
        }
      break;
    case MH_SMTP_EVENT_RCPT:
      CHECK (ev->rcpt.forward_path != NULL);
      CHECK (ev->rcpt.forward_path->address != NULL);
      CHECK (ev->rcpt.n_accepted < h->lim.max_recipients);
      if (r == 0)
        mh_smtp_engine_reply (e, 550, "5.1.1", "No such user");
      else
        {
          h->accepted_rcpts++;
          mh_smtp_engine_accept (e);
        }
      break;
    case MH_SMTP_EVENT_DATA:
      CHECK (!h->msg_open);
      CHECK (ev->data.n_recipients > 0);
      if (r == 0)
        mh_smtp_engine_reply (e, 452, "4.3.1", "Disk full");
      else
        {
          h->msg_open = TRUE;
          h->msg_bdat = ev->data.bdat;
          h->msg_size = 0;
          mh_smtp_engine_accept (e);
        }
      break;
    case MH_SMTP_EVENT_DATA_CHUNK:
      CHECK (h->msg_open);
      CHECK (!ev->any.needs_reply);
      CHECK (ev->chunk.len > 0);
      h->msg_size += ev->chunk.len;
      CHECK (h->msg_size <= h->lim.max_message_size);
      if (!h->msg_bdat)
        for (gsize i = 0; i < ev->chunk.len; i++)
          {
            guint8 c = ev->chunk.data[i];
            if (c == '\r')
              CHECK (i + 1 < ev->chunk.len && ev->chunk.data[i + 1] == '\n');
            if (c == '\n')
              CHECK (i > 0 && ev->chunk.data[i - 1] == '\r');
          }
      break;
    case MH_SMTP_EVENT_DATA_END:
      CHECK (h->msg_open);
      CHECK (ev->end.size == h->msg_size);
      h->msg_open = FALSE;
      if (h->lmtp)
        {
          CHECK (ev->end.n_replies >= 1);
          for (guint i = 0; i < ev->end.n_replies; i++)
            {
              if (next_rand (h) % 3 == 0)
                mh_smtp_engine_reply (e, 452, "4.2.2", "Mailbox full");
              else
                mh_smtp_engine_accept (e);
            }
        }
      else
        {
          CHECK (ev->end.n_replies == 1);
          if (r == 0)
            mh_smtp_engine_reply (e, 554, "5.7.1", "Spam\nreally");
          else
            mh_smtp_engine_accept (e);
        }
      break;
    case MH_SMTP_EVENT_DATA_ABORTED:
      CHECK (h->msg_open);
      h->msg_open = FALSE;
      break;
    case MH_SMTP_EVENT_STARTTLS:
      if (r == 0)
        mh_smtp_engine_reply (e, 454, "4.7.0", "TLS not available");
      else
        {
          mh_smtp_engine_accept (e);
          h->tls_pending = TRUE;
          CHECK (!mh_smtp_engine_want_read (e));
        }
      break;
    case MH_SMTP_EVENT_AUTH:
    case MH_SMTP_EVENT_AUTH_RESPONSE:
      CHECK (ev->auth.mechanism != NULL);
      if (ev->auth.response != NULL && *ev->auth.response)
        CHECK (ev->auth.decoded != NULL);
      if (r < 3)
        mh_smtp_engine_reply (e, 334, NULL, "VXNlcm5hbWU6");
      else if (r < 5)
        mh_smtp_engine_reply (e, 235, NULL, NULL);
      else
        mh_smtp_engine_reply (e, 535, "5.7.8", "Bad credentials");
      break;
    case MH_SMTP_EVENT_RSET:
    case MH_SMTP_EVENT_AUTH_ABORTED:
    case MH_SMTP_EVENT_QUIT:
      break;
    case MH_SMTP_EVENT_TIMEOUT:
    case MH_SMTP_EVENT_ABUSE:
      CHECK (mh_smtp_engine_is_closing (e));
      break;
    default:
      CHECK (0);
    }
}

static void
drain (Host *h)
{
  MhSmtpEvent ev;
  for (int guard = 0; guard < 100000; guard++)
    {
      gboolean any = FALSE;
      while (mh_smtp_engine_next_event (h->e, &ev))
        {
          any = TRUE;
          if (mh_smtp_engine_is_closing (h->e))
            CHECK (!ev.any.needs_reply);
          answer (h, &ev);
        }
      const guint8 *p;
      gboolean out = mh_smtp_engine_peek_output (h->e, &p) > 0;
      check_output (h);
      if (!any && !out)
        return;
    }
  CHECK (0); /* the engine must settle */
}

/* One session. @piece: 0 = sizes from the PRNG (with ticks and TLS
 * handshakes), else fixed pieces of that size and nothing that depends
 * on where the input is cut (differential mode). Returns the digest. */
static guint64
run_once (const uint8_t *data, size_t size, guint8 cfg, guint8 cfg2,
          guint32 seed, gsize piece)
{
  Host h = { 0 };
  guint32 piece_rng = seed ^ 0x9e3779b9u;
  h.rng = seed;
  h.ev_digest = 14695981039346656037ull;
  h.out_digest = 14695981039346656037ull;

  MhSmtpRole role = (MhSmtpRole) (cfg % 3);
  h.lmtp = role == MH_SMTP_ROLE_LMTP;
  h.lim.version = 1;
  if (cfg & 0x04)
    {
      /* small limits so that fuzzing reaches them */
      h.lim.max_line = 64;
      h.lim.max_data_line = 40;
      h.lim.max_recipients = 3;
      h.lim.max_message_size = 200;
      h.lim.max_errors = 6;
      h.lim.max_bad_commands = 4;
      h.lim.max_junk_commands = 8;
      h.lim.max_auth_line = 48;
      h.lim.command_timeout_s = 2;
      h.lim.data_timeout_s = 1;
    }
  h.e = mh_smtp_engine_new (role, &h.lim);
  /* read back the defaults for the checks */
  if (h.lim.max_recipients == 0)
    h.lim.max_recipients = MH_LIMIT_SMTP_RCPTS_MAX;
  if (h.lim.max_message_size == 0)
    h.lim.max_message_size = MH_LIMIT_MESSAGE_SIZE_MAX;
  h.line = g_string_new (NULL);

  MhSmtpExtensions ext = MH_SMTP_EXT_DEFAULT;
  if (cfg & 0x08)
    ext |= MH_SMTP_EXT_STARTTLS;
  if (cfg & 0x10)
    ext &= ~(MH_SMTP_EXT_ENHANCEDSTATUSCODES | MH_SMTP_EXT_CHUNKING);
  mh_smtp_engine_set_extensions (h.e, ext);
  if (cfg & 0x20)
    {
      static const char *const mechs[] = { "PLAIN", "LOGIN", NULL };
      mh_smtp_engine_set_auth_mechanisms (h.e, mechs);
    }
  mh_smtp_engine_set_policy (h.e, (MhSmtpPolicy) (cfg2 & 7));
  mh_smtp_engine_set_tls_active (h.e, (cfg2 & 8) != 0);
  static const guint codes[] = { 220, 220, 220, 554 };
  mh_smtp_engine_greet (h.e, "fuzz.example", codes[(cfg2 >> 4) & 3],
                        (cfg & 0x40) ? "hello\nthere" : NULL);
  drain (&h);

  gint64 now = 0;
  mh_smtp_engine_tick (h.e, now);
  gsize off = 0;
  while (off < size && !mh_smtp_engine_is_closing (h.e))
    {
      /* piece sizes from their own PRNG: 1..64 bytes, sometimes all */
      piece_rng = piece_rng * 1103515245u + 12345u;
      guint32 r = piece_rng >> 8;
      gsize n = (r & 0x300) == 0x300 ? size - off : 1 + (r % 64);
      if (piece != 0)
        n = piece;
      n = MIN (n, size - off);
      gsize used = mh_smtp_engine_feed (h.e, data + off, n);
      CHECK (used <= n);
      off += used;
      drain (&h);
      if (used == 0)
        {
          /* the engine must not stall with input it cannot take */
          gsize again = mh_smtp_engine_feed (h.e, data + off, n);
          CHECK (again > 0 || mh_smtp_engine_is_closing (h.e));
          off += again;
          drain (&h);
        }
      if (piece != 0)
        continue;
      if (h.tls_pending && (r & 0x7000) != 0x7000)
        {
          /* the handshake, after some plaintext was maybe injected */
          h.tls_pending = FALSE;
          mh_smtp_engine_starttls_done (h.e);
          CHECK (mh_smtp_engine_is_tls_active (h.e));
          drain (&h);
        }
      now += (r & 0x8000) ? G_USEC_PER_SEC : 1000;
      mh_smtp_engine_tick (h.e, now);
      drain (&h);
    }
  /* a stalled client eventually times out, and that closes the message */
  for (int i = 0; i < 400 && !mh_smtp_engine_is_closing (h.e); i++)
    {
      now += 10 * G_USEC_PER_SEC;
      mh_smtp_engine_tick (h.e, now);
      drain (&h);
      if (h.tls_pending)
        {
          h.tls_pending = FALSE;
          mh_smtp_engine_starttls_done (h.e);
          drain (&h);
        }
    }
  if (mh_smtp_engine_is_closing (h.e))
    {
      CHECK (!h.msg_open);
      CHECK (!mh_smtp_engine_want_read (h.e));
      mh_smtp_engine_shutdown (h.e, NULL);
      drain (&h);
      CHECK (mh_smtp_engine_is_closed (h.e));
    }
  mh_smtp_engine_unref (h.e);
  g_string_free (h.line, TRUE);
  return h.ev_digest ^ (h.out_digest * 31);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 4)
    return 0;
  /* a g_return_if_fail() in the engine is a bug the fuzzer must see */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  guint8 cfg = data[0], cfg2 = data[1];
  guint32 seed = data[2] | (guint32) data[3] << 8;
  if (cfg2 & 0x80)
    {
      /* differential: whole input vs one byte at a time must give the
       * same events and output (STYLE.md) */
      guint64 a = run_once (data + 4, size - 4, cfg, cfg2, seed, size);
      guint64 b = run_once (data + 4, size - 4, cfg, cfg2, seed, 1);
      CHECK (a == b);
    }
  else
    run_once (data + 4, size - 4, cfg, cfg2, seed, 0);
  return 0;
}
