/* The IMAP engine's framing, limits, state, IDLE, AUTHENTICATE, STARTTLS,
 * COMPRESS and memory. Most sessions go through imap_run_all(): fed
 * whole, byte by byte and in 7-byte pieces they must give the same
 * commands and the same output. */
#include "imap-harness.h"

#include <gio/gio.h>
#include <string.h>

#define AUTH_SETUP                                                             \
  {                                                                            \
    .state = MH_IMAP_STATE_AUTHENTICATED                                       \
  }

static void
assert_out (const ImapRun *r, const char *want)
{
  if (strcmp (r->out->str, want) != 0)
    fail_msg ("output\n  got:\n%s\n  want:\n%s", r->out->str, want);
}

static void
assert_log (const ImapRun *r, const char *want)
{
  if (strcmp (r->log->str, want) != 0)
    fail_msg ("commands\n  got:\n%s\n  want:\n%s", r->log->str, want);
}

/* ---- Literals ------------------------------------------------------------ */

static const char literal_script[]
    = "a LOGIN {4}\r\nuser {4+}\r\npass\r\n"
      "b APPEND INBOX (\\Seen) {12}\r\nhello\r\nworld\r\n"
      "c APPEND INBOX ~{3+}\r\nx\0y \"1-Jan-2000 00:00:00 +0000\" {0}\r\n\r\n"
      "d NOOP\r\n";

/* Every cut of the input into two feeds gives the same session. */
static void
test_literal_split_every_boundary (void **state)
{
  (void)state;
  ImapSetup s = { 0 };
  gsize n = sizeof literal_script - 1;
  g_autoptr (ImapRun) whole = imap_run_all (&s, literal_script, (gssize)n);
  assert_log (whole, "a LOGIN user=user pass=pass\n"
                     "b APPEND mailbox=INBOX msg0: flags=[\\Seen] "
                     "data=hello\\x0d\\x0aworld\n"
                     "c APPEND mailbox=INBOX msg0: binary data=x msg1: "
                     "date=946684800 data=\n"
                     "d NOOP\n");
  /* fed whole, every "+ OK" goes out before the host runs anything */
  assert_out (whole, "+ OK\r\n+ OK\r\n+ OK\r\na OK Logged in\r\n"
                     "b OK APPEND completed.\r\nc OK APPEND completed.\r\n"
                     "d OK NOOP completed.\r\n");
  MhImapCommand *c = whole->cmds->pdata[2];
  MhImapAppendMessage *m = c->messages->pdata[0];
  gsize len;
  const char *d = g_bytes_get_data (m->data, &len);
  assert_int_equal (len, 3);
  assert_memory_equal (d, "x\0y", 3);

  for (gsize cut = 1; cut < n; cut++)
    {
      g_autoptr (ImapRun) r = imap_run_cut (&s, literal_script, (gssize)n, cut);
      if (strcmp (r->log->str, whole->log->str) != 0)
        fail_msg ("cut at %" G_GSIZE_FORMAT ":\n%s", cut, r->log->str);
      assert_int_equal (r->cmds->len, 4);
    }
}

static void
test_literal_too_big (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  s.limits.max_literal = 100;
  s.limits.max_append = 1000;
  /* synchronising: refused before the client sends it */
  g_autoptr (ImapRun) r = imap_run_all (
      &s, "a LOGIN {101}\r\nb APPEND INBOX {1001}\r\nc NOOP\r\n", -1);
  assert_out (r, "a BAD [TOOBIG] Literal too large: 101 bytes, the maximum "
                 "is 100\r\n"
                 "b NO [TOOBIG] Message too large: 1001 bytes, APPENDLIMIT "
                 "is 1000\r\n"
                 "c OK NOOP completed.\r\n");
  assert_log (r, "c NOOP\n");

  /* non-synchronising: its bytes are skipped, commands inside them are
   * not run */
  GString *sc = g_string_new ("a LOGIN {120+}\r\n");
  g_string_append (sc, "x LOGOUT\r\n");
  while (sc->len < 16 + 120)
    g_string_append_c (sc, 'y');
  g_string_append (sc, " {5+}\r\nz BYE rest\r\nb NOOP\r\n");
  g_autoptr (ImapRun) r2 = imap_run_all (&s, sc->str, (gssize)sc->len);
  assert_out (r2, "a BAD [TOOBIG] Literal too large: 120 bytes, the maximum "
                  "is 100\r\nb OK NOOP completed.\r\n");
  assert_log (r2, "b NOOP\n");
  g_string_free (sc, TRUE);
}

static void
test_literal_minus (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  s.literal_minus = TRUE;
  g_autoptr (ImapRun) ok = imap_run_all (
      &s, "a LOGIN {4+}\r\nuser pass\r\nb APPEND INBOX {4097+}\r\n", -1);
  assert_out (ok, "a BAD LOGIN: Already authenticated\r\n"
                  "b BAD [TOOBIG] Non-synchronizing literal of 4097 bytes "
                  "exceeds LITERAL- maximum of 4096 bytes\r\n"
                  "* BYE Literal too large.\r\n");
  assert_true (ok->closing);
}

static void
test_command_total_limit (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  s.limits.max_command = 300;
  s.limits.max_literal = 200;
  GString *sc = g_string_new ("a SETMETADATA INBOX (/private/a {150}\r\n");
  for (int i = 0; i < 150; i++)
    g_string_append_c (sc, 'v');
  g_string_append (sc, " /private/b {150}\r\nb NOOP\r\n");
  g_autoptr (ImapRun) r = imap_run_all (&s, sc->str, (gssize)sc->len);
  assert_out (r, "+ OK\r\na BAD [TOOBIG] Command too large: the maximum is "
                 "300 bytes\r\nb OK NOOP completed.\r\n");
  g_string_free (sc, TRUE);
}

/* ---- Lines --------------------------------------------------------------- */

static void
test_line_limits_and_bytes (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  s.limits.max_line = 100;
  GString *sc = g_string_new ("a NOOP ");
  for (int i = 0; i < 200; i++)
    g_string_append_c (sc, 'x');
  /* the over-long line announces a literal: it is skipped too */
  g_string_append (sc, " {10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n");
  g_string_append_len (sc, "d NO\0OP\r\n", 9);
  g_string_append (sc, "e NOOP\n\r\n\nf CAPABILITY\r\n");
  g_autoptr (ImapRun) r = imap_run_all (&s, sc->str, (gssize)sc->len);
  assert_out (r, "a BAD Command line too long: the maximum is 100 bytes\r\n"
                 "b OK NOOP completed.\r\n"
                 "d BAD NUL byte in command line\r\n"
                 "e OK NOOP completed.\r\n"
                 "f OK CAPABILITY completed.\r\n");
  g_string_free (sc, TRUE);

  /* NUL in a literal; a literal8 may carry it */
  g_autoptr (ImapRun) r2
      = imap_run_all (&s, "a LOGIN {3}\r\na\0b\r\nb NOOP\r\n", 26);
  assert_out (r2, "+ OK\r\na BAD NUL byte in literal (only a literal8 ~{n} "
                  "may carry NUL)\r\nb OK NOOP completed.\r\n");
}

/* ---- Pipelining, state, limits ------------------------------------------- */

static void
test_pipelining_order (void **state)
{
  (void)state;
  ImapSetup s = { 0 };
  /* the state is checked when a command's turn comes, so a pipelined
   * SELECT after LOGIN works; errors keep their place in line */
  g_autoptr (ImapRun) r = imap_run_all (
      &s,
      "a FETCH 1 FLAGS\r\nb LOGIN user pass\r\nc FETCH 1 FLAGS\r\n"
      "d BOGUS\r\ne SELECT INBOX\r\nf UID FETCH 1:* (FLAGS)\r\n"
      "g CLOSE\r\nh EXPUNGE\r\ni LOGOUT\r\nj NOOP\r\n",
      -1);
  assert_out (r, "a BAD FETCH: Not authenticated: log in first\r\n"
                 "b OK Logged in\r\n"
                 "c BAD FETCH: No mailbox selected\r\n"
                 "d BAD Unknown command BOGUS\r\n"
                 "e OK [READ-WRITE] SELECT completed.\r\n"
                 "f OK UID FETCH completed.\r\n"
                 "g OK CLOSE completed.\r\n"
                 "h BAD EXPUNGE: No mailbox selected\r\n"
                 "* BYE Logging out\r\n"
                 "i OK LOGOUT completed.\r\n");
  assert_true (r->closing);
}

static void
test_pending_limit (void **state)
{
  (void)state;
  MhImapLimits lim = { .version = 1, .max_pending = 2 };
  g_autoptr (MhImapEngine) e = mh_imap_engine_new (&lim);
  const char *sc = "a NOOP\r\nb NOOP\r\nc NOOP\r\nd NOOP\r\n";
  assert_true (mh_imap_engine_want_read (e));
  /* the bytes are taken, but only two commands are framed */
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)sc, strlen (sc)),
                    strlen (sc));
  assert_false (mh_imap_engine_want_read (e));
  for (int i = 0; i < 4; i++)
    {
      g_autoptr (MhImapCommand) c = mh_imap_engine_next_command (e);
      assert_non_null (c);
      assert_int_equal (c->tag[0], 'a' + i);
      mh_imap_engine_tagged (e, c, "OK", NULL, "ok");
    }
  assert_null (mh_imap_engine_next_command (e));
  assert_true (mh_imap_engine_want_read (e));
}

static void
test_bad_count_bye (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  s.limits.max_bad_commands = 3;
  g_autoptr (ImapRun) r
      = imap_run_all (&s, "a X\r\nb NOOP\r\nc Y\r\nd FETCH\r\ne NOOP\r\n", -1);
  assert_out (r, "a BAD Unknown command X\r\nb OK NOOP completed.\r\n"
                 "c BAD Unknown command Y\r\n"
                 "d BAD Error in IMAP command FETCH: missing message set\r\n"
                 "* BYE Too many invalid IMAP commands.\r\n");
  assert_true (r->closing);
  assert_false (mh_imap_engine_want_read (r->e));
  /* input after closing is swallowed */
  assert_int_equal (mh_imap_engine_feed (r->e, (const guint8 *)"x\r\n", 3), 3);
  assert_null (mh_imap_engine_next_command (r->e));
}

/* ---- IDLE, AUTHENTICATE, STARTTLS ---------------------------------------- */

static void
test_idle_done (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  /* DONE pipelined right behind IDLE is read only after "+ idling" */
  g_autoptr (ImapRun) r = imap_run_all (
      &s, "a IDLE\r\nDONE\r\nb IDLE\r\ndone\r\nc IDLE\r\nNOOP\r\nd NOOP\r\n",
      -1);
  assert_log (r, "a IDLE\na IDLE\nb IDLE\nb IDLE\nc IDLE\nc IDLE line=NOOP\n"
                 "d NOOP\n");
  assert_out (r, "+ idling\r\na OK IDLE terminated\r\n"
                 "+ idling\r\nb OK IDLE terminated\r\n"
                 "+ idling\r\nc BAD Expected DONE\r\n"
                 "d OK NOOP completed.\r\n");
  MhImapCommand *done = r->cmds->pdata[1];
  assert_int_equal (done->kind, MH_IMAP_CMD_DONE);

  /* IDLE before login: BAD, and the next line is a command again */
  ImapSetup s0 = { 0 };
  g_autoptr (ImapRun) r0 = imap_run_all (&s0, "a IDLE\r\nDONE\r\n", -1);
  assert_out (r0, "a BAD IDLE: Not authenticated: log in first\r\n"
                  "DONE BAD Missing command name after the tag\r\n");
}

static void
test_authenticate (void **state)
{
  (void)state;
  ImapSetup s = { 0 };
  g_autoptr (ImapRun) r
      = imap_run_all (&s,
                      "a AUTHENTICATE PLAIN\r\n*\r\n"
                      "b AUTHENTICATE PLAIN\r\nbm9wZQ==\r\n"
                      "c AUTHENTICATE PLAIN\r\nAHVzZXIAcGFzcw==\r\nd NOOP\r\n",
                      -1);
  assert_log (r, "a AUTHENTICATE mech=PLAIN\na AUTHENTICATE line=*\n"
                 "b AUTHENTICATE mech=PLAIN\nb AUTHENTICATE line=bm9wZQ==\n"
                 "c AUTHENTICATE mech=PLAIN\n"
                 "c AUTHENTICATE line=AHVzZXIAcGFzcw==\nd NOOP\n");
  assert_out (r, "+ \r\na BAD Authentication cancelled\r\n"
                 "+ \r\nb NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
                 "+ \r\nc OK Logged in\r\nd OK NOOP completed.\r\n");
  assert_int_equal (mh_imap_engine_get_state (r->e),
                    MH_IMAP_STATE_AUTHENTICATED);

  /* SASL-IR, and an empty response line */
  g_autoptr (ImapRun) r2 = imap_run_all (
      &s, "a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\nb NOOP\r\n", -1);
  assert_out (r2, "a OK Logged in\r\nb OK NOOP completed.\r\n");
  g_autoptr (ImapRun) r3
      = imap_run_all (&s, "a AUTHENTICATE PLAIN\r\n\r\nb NOOP\r\n", -1);
  assert_log (r3, "a AUTHENTICATE mech=PLAIN\na AUTHENTICATE line=\n"
                  "b NOOP\n");
}

static void
test_starttls_drops_pipelined_input (void **state)
{
  (void)state;
  g_autoptr (MhImapEngine) e = mh_imap_engine_new (NULL);
  const char *a = "a STARTTLS\r\nb LOGIN user pass\r\n";
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)a, strlen (a)),
                    strlen (a));
  g_autoptr (MhImapCommand) c = mh_imap_engine_next_command (e);
  assert_int_equal (c->kind, MH_IMAP_CMD_STARTTLS);
  assert_null (mh_imap_engine_next_command (e));
  mh_imap_engine_tagged (e, c, "OK", NULL, "Begin TLS negotiation now");
  /* CVE-2011-0411: the LOGIN, and more plaintext read before the
   * handshake, must not run as if it came over TLS */
  assert_false (mh_imap_engine_want_read (e));
  const char *b = "c LOGIN user pass\r\n";
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)b, strlen (b)),
                    strlen (b));
  assert_null (mh_imap_engine_next_command (e));
  mh_imap_engine_starttls_done (e);
  assert_true (mh_imap_engine_want_read (e));
  assert_null (mh_imap_engine_next_command (e));
  const char *d = "d NOOP\r\n";
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)d, strlen (d)),
                    strlen (d));
  g_autoptr (MhImapCommand) dc = mh_imap_engine_next_command (e);
  assert_string_equal (dc->tag, "d");

  /* refused: the pipelined line is an ordinary command */
  ImapSetup s = { .refuse_starttls = TRUE };
  g_autoptr (ImapRun) r2
      = imap_run_all (&s, "a STARTTLS\r\nb LOGIN user pass\r\n", -1);
  assert_log (r2, "a STARTTLS\nb LOGIN user=user pass=pass\n");
}

/* ---- COMPRESS ------------------------------------------------------------ */

static GBytes *
deflate_bytes (GConverter *c, const char *s, gsize n)
{
  GByteArray *out = g_byte_array_new ();
  guint8 buf[4096];
  const guint8 *in = (const guint8 *)s;
  for (;;)
    {
      gsize rd = 0, wr = 0;
      GConverterResult res = g_converter_convert (
          c, in, n, buf, sizeof buf, G_CONVERTER_FLUSH, &rd, &wr, NULL);
      assert_int_not_equal (res, G_CONVERTER_ERROR);
      g_byte_array_append (out, buf, (guint)wr);
      in += rd;
      n -= rd;
      if (n == 0 && res == G_CONVERTER_FLUSHED)
        break;
    }
  return g_byte_array_free_to_bytes (out);
}

static char *
inflate_all (GConverter *c, const guint8 *p, gsize n)
{
  GString *out = g_string_new (NULL);
  char buf[4096];
  while (n > 0)
    {
      gsize rd = 0, wr = 0;
      GConverterResult res = g_converter_convert (
          c, p, n, buf, sizeof buf, G_CONVERTER_NO_FLAGS, &rd, &wr, NULL);
      assert_int_not_equal (res, G_CONVERTER_ERROR);
      g_string_append_len (out, buf, (gssize)wr);
      p += rd;
      n -= rd;
    }
  return g_string_free (out, FALSE);
}

static void
test_compress_round_trip (void **state)
{
  (void)state;
  g_autoptr (MhImapEngine) e = mh_imap_engine_new (NULL);
  mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
  g_autoptr (GConverter) cz
      = G_CONVERTER (g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW, -1));
  g_autoptr (GConverter) cu
      = G_CONVERTER (g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW));

  /* the client pipelines compressed bytes right behind COMPRESS (it
   * should not, but the bytes must still be read as compressed) */
  GString *wire = g_string_new ("a COMPRESS DEFLATE\r\n");
  g_autoptr (GBytes) z1 = deflate_bytes (cz, "b NOOP\r\n", 8);
  g_string_append_len (wire, g_bytes_get_data (z1, NULL),
                       (gssize)g_bytes_get_size (z1));
  gsize used = mh_imap_engine_feed (e, (const guint8 *)wire->str, wire->len);
  assert_int_equal (used, wire->len);
  g_string_free (wire, TRUE);
  assert_false (mh_imap_engine_want_read (e));

  g_autoptr (MhImapCommand) c = mh_imap_engine_next_command (e);
  assert_int_equal (c->kind, MH_IMAP_CMD_COMPRESS);
  assert_string_equal (c->compress, "DEFLATE");
  assert_null (mh_imap_engine_next_command (e));
  mh_imap_engine_tagged (e, c, "OK", NULL, "DEFLATE active");
  const guint8 *p;
  gsize n = mh_imap_engine_peek_output (e, &p);
  assert_int_equal (n, strlen ("a OK DEFLATE active\r\n"));
  assert_memory_equal (p, "a OK DEFLATE active\r\n", n);
  mh_imap_engine_consume_output (e, n);
  mh_imap_engine_start_compress (e);

  GString *plain = g_string_new (NULL);
  const char *more = "c RENAME {4}\r\nuser {4+}\r\npass\r\nd NOOP\r\n";
  g_autoptr (GBytes) z2 = deflate_bytes (cz, more, strlen (more));
  const guint8 *zp = g_bytes_get_data (z2, NULL);
  gsize zn = g_bytes_get_size (z2);
  for (int round = 0; round < 100; round++)
    {
      MhImapCommand *cmd;
      while ((cmd = mh_imap_engine_next_command (e)) != NULL)
        {
          mh_imap_engine_tagged (e, cmd, "OK", NULL, NULL);
          mh_imap_command_free (cmd);
        }
      n = mh_imap_engine_peek_output (e, &p);
      g_autofree char *s = inflate_all (cu, p, n);
      g_string_append (plain, s);
      mh_imap_engine_consume_output (e, n);
      if (zn == 0)
        break;
      /* compressed input two bytes at a time */
      gsize k = mh_imap_engine_feed (e, zp, MIN (zn, 2));
      zp += k;
      zn -= k;
    }
  assert_string_equal (plain->str, "b OK NOOP completed.\r\n+ OK\r\n"
                                   "c OK RENAME completed.\r\n"
                                   "d OK NOOP completed.\r\n");
  g_string_free (plain, TRUE);

  /* garbage instead of deflate data ends the session */
  const guint8 junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  mh_imap_engine_feed (e, junk, sizeof junk);
  assert_true (mh_imap_engine_is_closing (e));
}

static void
test_compress_refused (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  /* the default host answers OK without starting compression, so use
   * an unauthenticated engine: COMPRESS is refused, input goes on */
  s.state = MH_IMAP_STATE_NOT_AUTHENTICATED;
  g_autoptr (ImapRun) r
      = imap_run_all (&s, "a COMPRESS DEFLATE\r\nb NOOP\r\n", -1);
  assert_out (r, "a BAD COMPRESS: Not authenticated: log in first\r\n"
                 "b OK NOOP completed.\r\n");
}

/* ---- Output and memory --------------------------------------------------- */

static void
test_output_helpers (void **state)
{
  (void)state;
  g_autoptr (MhImapEngine) e = mh_imap_engine_new (NULL);
  mh_imap_engine_greet (e, "[CAPABILITY IMAP4rev1] ready\r\n* OK fake");
  MhImapCommand cmd = { .tag = (char *)"t1", .name = (char *)"SELECT" };
  mh_imap_engine_tagged (e, &cmd, "NO", "TRYCREATE", "No such mailbox");
  mh_imap_engine_tagged (e, &cmd, "OK", NULL, NULL);
  mh_imap_engine_write (e, (const guint8 *)"* 3 EXISTS\r\n", 12);
  mh_imap_engine_continuation (e, NULL);
  const char *want = "* OK [CAPABILITY IMAP4rev1] ready  * OK fake\r\n"
                     "t1 NO [TRYCREATE] No such mailbox\r\n"
                     "t1 OK SELECT completed.\r\n"
                     "* 3 EXISTS\r\n"
                     "+ \r\n";
  assert_int_equal (mh_imap_engine_output_size (e), strlen (want));
  mh_imap_engine_bye (e, "Server shutting down");
  assert_true (mh_imap_engine_is_closing (e));
  assert_int_equal (mh_imap_engine_get_state (e), MH_IMAP_STATE_LOGOUT);
  const guint8 *p;
  gsize n = mh_imap_engine_peek_output (e, &p);
  g_autofree char *s = g_strndup ((const char *)p, n);
  assert_string_equal (s, "* OK [CAPABILITY IMAP4rev1] ready  * OK fake\r\n"
                          "t1 NO [TRYCREATE] No such mailbox\r\n"
                          "t1 OK SELECT completed.\r\n"
                          "* 3 EXISTS\r\n"
                          "+ \r\n"
                          "* BYE Server shutting down\r\n");
  mh_imap_engine_consume_output (e, 10);
  assert_int_equal (mh_imap_engine_output_size (e), n - 10);
}

static void
test_memory_shrinks_after_big_append (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  g_autoptr (MhImapEngine) e = mh_imap_engine_new (NULL);
  mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
  (void)s;
  gsize idle = mh_imap_engine_memory (e);
  assert_true (idle <= 1024);

  gsize big = 1 << 20;
  char *msg = g_malloc (big);
  memset (msg, 'm', big);
  const char *head = "a APPEND INBOX {1048576+}\r\n";
  assert_int_equal (
      mh_imap_engine_feed (e, (const guint8 *)head, strlen (head)),
      strlen (head));
  gsize off = 0;
  while (off < big)
    off += mh_imap_engine_feed (e, (const guint8 *)msg + off,
                                MIN (big - off, 65536));
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)"\r\n", 2), 2);
  assert_true (mh_imap_engine_memory (e) >= big);
  MhImapCommand *c = mh_imap_engine_next_command (e);
  assert_non_null (c);
  MhImapAppendMessage *m = c->messages->pdata[0];
  assert_int_equal (g_bytes_get_size (m->data), big);
  assert_memory_equal (g_bytes_get_data (m->data, NULL), msg, big);
  mh_imap_engine_tagged (e, c, "OK", "APPENDUID 1 1", NULL);
  mh_imap_command_free (c);
  const guint8 *p;
  mh_imap_engine_consume_output (e, mh_imap_engine_peek_output (e, &p));
  /* idle again: the engine gave the big buffers back */
  assert_true (mh_imap_engine_memory (e) <= idle + 512);
  g_free (msg);
}

static void
test_utf8_quoted (void **state)
{
  (void)state;
  ImapSetup s = AUTH_SETUP;
  g_autoptr (ImapRun) r = imap_run_all (
      &s, "a CREATE \"caf\xc3\xa9\"\r\nb CREATE {5}\r\ncaf\xc3\xa9\r\n", -1);
  assert_out (r, "+ OK\r\n"
                 "a BAD Error in IMAP command CREATE: 8-bit characters in "
                 "quoted mailbox name need UTF8=ACCEPT (or a literal)\r\n"
                 "b OK CREATE completed.\r\n");
  s.utf8 = TRUE;
  g_autoptr (ImapRun) r2 = imap_run_all (
      &s, "a CREATE \"caf\xc3\xa9\"\r\nb CREATE \"\xc3\"\r\n", -1);
  assert_out (r2, "a OK CREATE completed.\r\n"
                  "b BAD Error in IMAP command CREATE: mailbox name is not "
                  "valid UTF-8\r\n");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_literal_split_every_boundary),
    cmocka_unit_test (test_literal_too_big),
    cmocka_unit_test (test_literal_minus),
    cmocka_unit_test (test_command_total_limit),
    cmocka_unit_test (test_line_limits_and_bytes),
    cmocka_unit_test (test_pipelining_order),
    cmocka_unit_test (test_pending_limit),
    cmocka_unit_test (test_bad_count_bye),
    cmocka_unit_test (test_idle_done),
    cmocka_unit_test (test_authenticate),
    cmocka_unit_test (test_starttls_drops_pipelined_input),
    cmocka_unit_test (test_compress_round_trip),
    cmocka_unit_test (test_compress_refused),
    cmocka_unit_test (test_output_helpers),
    cmocka_unit_test (test_memory_shrinks_after_big_append),
    cmocka_unit_test (test_utf8_quoted),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
