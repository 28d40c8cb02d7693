/* libFuzzer target: the IMAP engine (framing and command parser).
 *
 * The first bytes pick small limits (so they are reached), the starting
 * state, UTF-8 and LITERAL- mode; the rest is the client's byte stream,
 * fed in pieces whose sizes also come from the input. A host answers
 * every command plausibly (LOGIN, SELECT and CLOSE move the state, IDLE
 * and AUTHENTICATE get continuations, STARTTLS and COMPRESS are accepted
 * or refused; after COMPRESS the host deflates the rest of the input and
 * inflates the output, as a real peer would) and checks after each call:
 * - every output line ends in CRLF, has no NUL, bare CR or LF, and is an
 *   untagged "* ", a continuation "+ " or "<tag> OK|NO|BAD ";
 * - unsent output and the engine's memory stay under fixed bounds;
 * - each command is well formed: a valid tag, the fields its kind
 *   needs, sequence numbers >= 1, APPEND messages within max_append;
 *   mh_imap_command_copy() gives an equal command;
 * - the engine never stalls: after the host drained it, it takes input
 *   or is closing.
 * In differential mode the input is fed whole and byte by byte: the
 * commands and the output (save where "+ OK" lands) must be equal. */
#include "mailhost/mailhost.h"

#include <gio/gio.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
  do                                                                           \
    {                                                                          \
      if (!(x))                                                                \
        __builtin_trap ();                                                     \
    }                                                                          \
  while (0)

typedef struct
{
  MhImapEngine *e;
  MhImapLimits lim;
  guint32 rng;
  gboolean fixed; /* differential mode: answers depend only on commands */
  GString *line;  /* partial output line */
  guint64 cmd_digest;
  guint64 out_digest;
  guint plus_ok;
  GConverter *cz; /* client side, once COMPRESS is on */
  GConverter *cu;
  gboolean debug; /* FUZZ_IMAP_DEBUG=1: print the session to stderr */
} Host;

static void
mix (guint64 *d, const void *p, gsize n)
{
  const guint8 *b = p;
  for (gsize i = 0; i < n; i++)
    *d = (*d ^ b[i]) * 1099511628211ull;
}

static void
mix_str (guint64 *d, const char *s)
{
  if (s == NULL)
    {
      mix (d, "\1", 1);
      return;
    }
  mix (d, s, strlen (s) + 1);
}

static guint32
next_rand (Host *h)
{
  h->rng = h->rng * 1103515245u + 12345u;
  return h->rng >> 16;
}

static gboolean
tag_ok (const char *t)
{
  if (t == NULL || *t == '\0')
    return FALSE;
  if (g_str_equal (t, "*"))
    return TRUE;
  for (const char *p = t; *p; p++)
    {
      guchar c = (guchar)*p;
      if (c <= 0x20 || c >= 0x7f || strchr ("(){%*\"\\+", c) != NULL)
        return FALSE;
    }
  return TRUE;
}

static void
check_line (Host *h)
{
  const char *l = h->line->str;
  gsize len = h->line->len;
  CHECK (len >= 4 && l[len - 2] == '\r' && l[len - 1] == '\n');
  for (gsize k = 0; k + 2 < len; k++)
    CHECK (l[k] != '\0' && l[k] != '\r' && l[k] != '\n');
  if (h->debug)
    fprintf (stderr, "S: %.*s", (int)len, l);
  if (len == 6 && memcmp (l, "+ OK\r\n", 6) == 0)
    {
      h->plus_ok++;
      return;
    }
  mix (&h->out_digest, l, len);
  if (l[0] == '*' || l[0] == '+')
    {
      CHECK (l[1] == ' ');
      return;
    }
  const char *sp = memchr (l, ' ', len);
  CHECK (sp != NULL);
  g_autofree char *tag = g_strndup (l, (gsize)(sp - l));
  CHECK (tag_ok (tag));
  CHECK (g_str_has_prefix (sp, " OK ") || g_str_has_prefix (sp, " NO ")
         || g_str_has_prefix (sp, " BAD "));
}

static void
take_output (Host *h)
{
  const guint8 *p;
  gsize n = mh_imap_engine_peek_output (h->e, &p);
  /* replies of one framing round, plus what the host wrote */
  CHECK (n <= 256 * 1024 + 64 * 1024);
  CHECK (mh_imap_engine_output_size (h->e) == n);
  GString *plain = g_string_new (NULL);
  if (h->cu != NULL && n > 0)
    {
      char buf[4096];
      const guint8 *ip = p;
      gsize left = n;
      while (left > 0)
        {
          gsize rd = 0, wr = 0;
          GConverterResult r
              = g_converter_convert (h->cu, ip, left, buf, sizeof buf,
                                     G_CONVERTER_NO_FLAGS, &rd, &wr, NULL);
          CHECK (r != G_CONVERTER_ERROR);
          g_string_append_len (plain, buf, (gssize)wr);
          ip += rd;
          left -= rd;
        }
    }
  else
    g_string_append_len (plain, (const char *)p, (gssize)n);
  for (gsize i = 0; i < plain->len; i++)
    {
      g_string_append_c (h->line, plain->str[i]);
      if (plain->str[i] == '\n')
        {
          check_line (h);
          g_string_truncate (h->line, 0);
        }
    }
  CHECK (h->line->len <= 4096);
  g_string_free (plain, TRUE);
  mh_imap_engine_consume_output (h->e, n);
}

static void
check_set (const MhImapSeqSet *s)
{
  CHECK (s != NULL);
  CHECK (s->ranges != NULL);
  CHECK (s->saved == (s->ranges->len == 0));
  for (guint i = 0; i < s->ranges->len; i++)
    {
      MhImapRange *r = &g_array_index (s->ranges, MhImapRange, i);
      CHECK (r->first >= 1 && r->last >= 1);
    }
}

static void
check_key (const MhImapSearchKey *k, guint depth)
{
  CHECK (depth < 100);
  switch (k->type)
    {
    case MH_IMAP_SEARCH_AND:
      CHECK (k->children != NULL && k->children->len >= 1);
      break;
    case MH_IMAP_SEARCH_OR:
      CHECK (k->children != NULL && k->children->len == 2);
      break;
    case MH_IMAP_SEARCH_NOT:
      CHECK (k->children != NULL && k->children->len == 1);
      break;
    case MH_IMAP_SEARCH_SEQSET:
    case MH_IMAP_SEARCH_UID:
      check_set (k->set);
      break;
    case MH_IMAP_SEARCH_HEADER:
      CHECK (k->header != NULL && k->string != NULL);
      break;
    case MH_IMAP_SEARCH_FROM:
    case MH_IMAP_SEARCH_TO:
    case MH_IMAP_SEARCH_CC:
    case MH_IMAP_SEARCH_BCC:
    case MH_IMAP_SEARCH_SUBJECT:
    case MH_IMAP_SEARCH_BODY:
    case MH_IMAP_SEARCH_TEXT:
      CHECK (k->string != NULL && g_utf8_validate (k->string, -1, NULL));
      break;
    default:
      break;
    }
  if (k->children != NULL)
    for (guint i = 0; i < k->children->len; i++)
      check_key (k->children->pdata[i], depth + 1);
}

static void
digest_cmd (Host *h, const MhImapCommand *c)
{
  guint64 *d = &h->cmd_digest;
  mix_str (d, c->tag);
  mix (d, &c->kind, sizeof c->kind);
  mix (d, &c->uid, sizeof c->uid);
  mix_str (d, c->mailbox);
  mix_str (d, c->mailbox2);
  mix_str (d, c->user);
  mix_str (d, c->password);
  mix_str (d, c->line);
  if (c->messages != NULL)
    for (guint i = 0; i < c->messages->len; i++)
      {
        MhImapAppendMessage *m = c->messages->pdata[i];
        gsize n;
        const void *p = g_bytes_get_data (m->data, &n);
        mix (d, &n, sizeof n);
        if (n > 0)
          mix (d, p, n);
      }
  if (c->fetch_atts != NULL)
    for (guint i = 0; i < c->fetch_atts->len; i++)
      {
        MhImapFetchAtt *a = c->fetch_atts->pdata[i];
        mix (d, &a->item, sizeof a->item);
        mix_str (d, a->section_spec);
      }
}

static void
check_cmd (Host *h, const MhImapCommand *c)
{
  CHECK (tag_ok (c->tag) && !g_str_equal (c->tag, "*"));
  CHECK (c->name != NULL);
  switch (c->kind)
    {
    case MH_IMAP_CMD_FETCH:
      check_set (c->set);
      CHECK (c->fetch_atts != NULL && c->fetch_atts->len > 0);
      for (guint i = 0; i < c->fetch_atts->len; i++)
        {
          MhImapFetchAtt *a = c->fetch_atts->pdata[i];
          CHECK ((a->n_part > 0) == (a->part != NULL));
          if (a->item == MH_IMAP_FETCH_BODY_SECTION
              || a->item == MH_IMAP_FETCH_BINARY
              || a->item == MH_IMAP_FETCH_BINARY_SIZE)
            CHECK (a->section_spec != NULL);
          if (a->partial)
            CHECK (a->length > 0);
        }
      break;
    case MH_IMAP_CMD_STORE:
      check_set (c->set);
      CHECK (c->store_flags != NULL);
      break;
    case MH_IMAP_CMD_COPY:
    case MH_IMAP_CMD_MOVE:
      check_set (c->set);
      CHECK (c->mailbox != NULL);
      break;
    case MH_IMAP_CMD_SEARCH:
    case MH_IMAP_CMD_SORT:
    case MH_IMAP_CMD_THREAD:
      CHECK (c->search != NULL && c->search->type == MH_IMAP_SEARCH_AND);
      check_key (c->search, 0);
      if (c->kind == MH_IMAP_CMD_SORT)
        CHECK (c->sort != NULL && c->sort->len > 0);
      break;
    case MH_IMAP_CMD_APPEND:
      {
        CHECK (c->mailbox != NULL);
        CHECK (c->messages != NULL && c->messages->len > 0);
        guint64 total = 0;
        for (guint i = 0; i < c->messages->len; i++)
          {
            MhImapAppendMessage *m = c->messages->pdata[i];
            CHECK (m->data != NULL);
            total += g_bytes_get_size (m->data);
          }
        CHECK (total <= h->lim.max_append);
        break;
      }
    case MH_IMAP_CMD_LOGIN:
      CHECK (c->user != NULL && c->password != NULL);
      break;
    case MH_IMAP_CMD_LIST:
    case MH_IMAP_CMD_LSUB:
      CHECK (c->reference != NULL && c->patterns != NULL
             && c->patterns[0] != NULL);
      break;
    case MH_IMAP_CMD_AUTHENTICATE:
      CHECK (c->mechanism != NULL);
      break;
    case MH_IMAP_CMD_AUTH_RESPONSE:
      CHECK (c->line != NULL);
      break;
    default:
      break;
    }
  /* the copy (for bindings) must be deep and equal */
  MhImapCommand *copy = mh_imap_command_copy (c);
  guint64 a = 14695981039346656037ull, b = a;
  Host tmp = *h;
  tmp.cmd_digest = a;
  digest_cmd (&tmp, c);
  a = tmp.cmd_digest;
  tmp.cmd_digest = b;
  digest_cmd (&tmp, copy);
  CHECK (a == tmp.cmd_digest);
  mh_imap_command_free (copy);
}

static void
answer (Host *h, MhImapCommand *c)
{
  MhImapEngine *e = h->e;
  guint32 r = h->fixed ? (guint32)c->kind * 7 + (guint32)strlen (c->tag)
                       : next_rand (h);
  switch (c->kind)
    {
    case MH_IMAP_CMD_LOGIN:
    case MH_IMAP_CMD_AUTH_RESPONSE:
    case MH_IMAP_CMD_AUTHENTICATE:
      if (c->kind != MH_IMAP_CMD_LOGIN && r % 3 == 0)
        {
          mh_imap_engine_continuation (e, "VXNlcm5hbWU6");
          break;
        }
      if (r % 2 == 0)
        {
          mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
          mh_imap_engine_tagged (e, c, "OK", NULL, "Logged in");
        }
      else
        mh_imap_engine_tagged (e, c, "NO", "AUTHENTICATIONFAILED", "no");
      mh_imap_engine_auth_done (e);
      break;
    case MH_IMAP_CMD_SELECT:
    case MH_IMAP_CMD_EXAMINE:
      mh_imap_engine_set_state (e, MH_IMAP_STATE_SELECTED);
      mh_imap_engine_write (e, (const guint8 *)"* 3 EXISTS\r\n", 12);
      mh_imap_engine_tagged (e, c, "OK", "READ-WRITE", NULL);
      break;
    case MH_IMAP_CMD_CLOSE:
    case MH_IMAP_CMD_UNSELECT:
      mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
      mh_imap_engine_tagged (e, c, "OK", NULL, NULL);
      break;
    case MH_IMAP_CMD_IDLE:
      if (r % 4 == 0)
        mh_imap_engine_tagged (e, c, "NO", NULL, "no idling");
      else
        mh_imap_engine_continuation (e, "idling");
      break;
    case MH_IMAP_CMD_DONE:
      mh_imap_engine_tagged (e, c, c->line == NULL ? "OK" : "BAD", NULL,
                             c->line == NULL ? "IDLE terminated"
                                             : "Expected DONE");
      break;
    case MH_IMAP_CMD_STARTTLS:
      /* accepted, it drops input taken before the handshake: how much
       * that is depends on the cuts, so not in differential mode */
      if (h->fixed || r % 2 == 0)
        mh_imap_engine_tagged (e, c, "BAD", NULL, "no TLS");
      else
        {
          mh_imap_engine_tagged (e, c, "OK", NULL, "go");
          CHECK (!mh_imap_engine_want_read (e));
          mh_imap_engine_starttls_done (e);
        }
      break;
    case MH_IMAP_CMD_COMPRESS:
      if (h->fixed || h->cz != NULL || r % 2 == 0)
        mh_imap_engine_tagged (e, c, "NO", "COMPRESSIONACTIVE", "no");
      else
        {
          mh_imap_engine_tagged (e, c, "OK", NULL, "DEFLATE active");
          take_output (h);
          mh_imap_engine_start_compress (e);
          h->cz = G_CONVERTER (
              g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW, -1));
          h->cu = G_CONVERTER (
              g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW));
        }
      break;
    case MH_IMAP_CMD_LOGOUT:
      mh_imap_engine_bye (e, "bye");
      mh_imap_engine_tagged (e, c, "OK", NULL, NULL);
      break;
    default:
      mh_imap_engine_tagged (e, c, r % 5 == 0 ? "NO" : "OK", NULL, NULL);
      break;
    }
}

static void
drain (Host *h)
{
  MhImapCommand *c;
  while ((c = mh_imap_engine_next_command (h->e)) != NULL)
    {
      if (h->debug)
        fprintf (stderr, "C: %s %s\n", c->tag, c->name);
      check_cmd (h, c);
      digest_cmd (h, c);
      answer (h, c);
      mh_imap_command_free (c);
      take_output (h);
    }
  take_output (h);
  /* bounded memory: limits are small in the fuzzer */
  CHECK (mh_imap_engine_memory (h->e)
         <= 400 * 1024 + 2 * h->lim.max_append + 4 * h->lim.max_command
                + (gsize)h->lim.max_pending * 4096);
}

static gsize
feed_piece (Host *h, const guint8 *p, gsize n)
{
  if (h->cz == NULL)
    return mh_imap_engine_feed (h->e, p, n);
  /* the client deflates; the engine must take all of it eventually */
  GByteArray *z = g_byte_array_new ();
  guint8 buf[4096];
  const guint8 *ip = p;
  gsize left = n;
  for (int guard = 0; guard < 10000; guard++)
    {
      gsize rd = 0, wr = 0;
      GConverterResult r = g_converter_convert (
          h->cz, ip, left, buf, sizeof buf, G_CONVERTER_FLUSH, &rd, &wr, NULL);
      CHECK (r != G_CONVERTER_ERROR);
      g_byte_array_append (z, buf, (guint)wr);
      ip += rd;
      left -= rd;
      if (left == 0 && r == G_CONVERTER_FLUSHED)
        break;
    }
  gsize off = 0;
  for (int guard = 0; off < z->len && guard < 100000; guard++)
    {
      gsize used = mh_imap_engine_feed (h->e, z->data + off, z->len - off);
      off += used;
      drain (h);
      if (used == 0 && mh_imap_engine_is_closing (h->e))
        break;
    }
  CHECK (off == z->len || mh_imap_engine_is_closing (h->e));
  g_byte_array_unref (z);
  return n;
}

static guint64
run_once (const uint8_t *data, size_t size, guint8 cfg, guint32 seed,
          gsize piece)
{
  Host h = { 0 };
  h.rng = seed;
  h.fixed = piece != 0;
  h.debug = g_getenv ("FUZZ_IMAP_DEBUG") != NULL;
  if (h.debug)
    fprintf (stderr, "---- piece %zu\n", piece);
  h.cmd_digest = 14695981039346656037ull;
  h.out_digest = 14695981039346656037ull;
  h.lim.version = 1;
  if (cfg & 0x01)
    {
      h.lim.max_line = 80;
      h.lim.max_literal = 40;
      h.lim.max_append = 300;
      h.lim.max_command = 200;
      h.lim.max_pending = 3;
      h.lim.max_bad_commands = 6;
    }
  h.e = mh_imap_engine_new (&h.lim);
  MhImapLimits *def = mh_imap_limits_new ();
#define DEF(f)                                                                 \
  if (h.lim.f == 0)                                                            \
  h.lim.f = def->f
  DEF (max_line);
  DEF (max_literal);
  DEF (max_append);
  DEF (max_command);
  DEF (max_pending);
  DEF (max_bad_commands);
#undef DEF
  mh_imap_limits_free (def);
  h.line = g_string_new (NULL);
  mh_imap_engine_set_state (h.e, (MhImapState)((cfg >> 1) % 3));
  mh_imap_engine_set_utf8 (h.e, (cfg & 0x08) != 0);
  mh_imap_engine_set_literal_minus (h.e, (cfg & 0x10) != 0);
  mh_imap_engine_greet (h.e, "[CAPABILITY IMAP4rev1] ready");
  drain (&h);

  guint32 piece_rng = seed ^ 0x9e3779b9u;
  gsize off = 0;
  while (off < size && !mh_imap_engine_is_closing (h.e))
    {
      piece_rng = piece_rng * 1103515245u + 12345u;
      guint32 r = piece_rng >> 8;
      gsize n = (r & 0x300) == 0x300 ? size - off : 1 + (r % 64);
      if (piece != 0)
        n = piece;
      n = MIN (n, size - off);
      gsize used = feed_piece (&h, data + off, n);
      CHECK (used <= n);
      off += used;
      drain (&h);
      if (used == 0)
        {
          /* the engine must not stall with input it cannot take */
          gsize again = feed_piece (&h, data + off, n);
          CHECK (again > 0 || mh_imap_engine_is_closing (h.e));
          off += again;
          drain (&h);
        }
    }
  if (mh_imap_engine_is_closing (h.e))
    {
      CHECK (!mh_imap_engine_want_read (h.e));
      CHECK (mh_imap_engine_next_command (h.e) == NULL);
    }
  /* an idle engine gives its buffers back */
  if (!mh_imap_engine_is_closing (h.e) && off == size)
    {
      MhImapCommand *c = mh_imap_engine_next_command (h.e);
      CHECK (c == NULL);
    }
  /* how many "+ OK" went out depends on how far framing ran ahead of
   * the host before a BYE, so they are not compared */
  guint64 dg = h.cmd_digest ^ (h.out_digest * 31);
  mh_imap_engine_unref (h.e);
  g_clear_object (&h.cz);
  g_clear_object (&h.cu);
  g_string_free (h.line, TRUE);
  return dg;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 4)
    return 0;
  /* a g_return_if_fail() in the engine is a bug the fuzzer must see */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  guint8 cfg = data[0];
  guint32 seed = data[1] | (guint32)data[2] << 8;
  if (data[3] & 0x80)
    {
      /* differential: whole input vs one byte at a time */
      guint64 a = run_once (data + 4, size - 4, cfg, seed, size);
      guint64 b = run_once (data + 4, size - 4, cfg, seed, 1);
      CHECK (a == b);
    }
  else
    run_once (data + 4, size - 4, cfg, seed, 0);
  return 0;
}
