/* Benchmark of the SMTP/LMTP engine alone (no sockets, no disk): how fast
 * it parses DATA and whole transactions, to know what the engine costs
 * inside mh-lmtpd/mh-smtpd. Prints figures; never fails on speed. Fixed
 * input, no randomness. */
#include "mailhost/mailhost.h"

#include <stdio.h>
#include <string.h>

static guint64 sink;

static void
drive (MhSmtpEngine *e, const char *in, gsize len, gsize read_size)
{
  gsize off = 0;
  MhSmtpEvent ev;
  while (off < len)
    {
      gsize n = MIN (read_size, len - off);
      off += mh_smtp_engine_feed (e, (const guint8 *) in + off, n);
      for (;;)
        {
          while (mh_smtp_engine_next_event (e, &ev))
            {
              if (ev.type == MH_SMTP_EVENT_DATA_CHUNK)
                sink += ev.chunk.data[0] + ev.chunk.len;
              else if (ev.type == MH_SMTP_EVENT_DATA_END)
                for (guint i = 0; i < ev.end.n_replies; i++)
                  mh_smtp_engine_accept (e);
              else if (ev.any.needs_reply)
                mh_smtp_engine_accept (e);
            }
          const guint8 *o;
          gsize on = mh_smtp_engine_peek_output (e, &o);
          if (on == 0)
            break;
          sink += o[0];
          mh_smtp_engine_consume_output (e, on);
        }
    }
}

static GString *
message (gsize size)
{
  /* 78-character lines, one in ten starting with a dot to be unstuffed */
  GString *m = g_string_new ("Subject: bench\r\nFrom: a@b.example\r\n\r\n");
  for (guint i = 0; m->len < size; i++)
    g_string_append (m, i % 10 == 0
                          ? "..234567890123456789012345678901234567890123456"
                            "789012345678901234567890123456789\r\n"
                          : "0123456789012345678901234567890123456789012345"
                            "6789012345678901234567890123456789\r\n");
  g_string_append (m, ".\r\n");
  return m;
}

int
main (void)
{
  /* 1. DATA throughput: one 64 MiB message, 64 KiB reads */
  {
    MhSmtpLimits lim = { .version = 1, .max_message_size = 128u << 20 };
    g_autoptr (GString) body = message (64u << 20);
    g_autoptr (GString) in = g_string_new ("EHLO c\r\nMAIL FROM:<a@b.example>"
                                           "\r\nRCPT TO:<c@d.example>\r\n"
                                           "DATA\r\n");
    g_string_append_len (in, body->str, (gssize) body->len);
    g_autoptr (MhSmtpEngine) e = mh_smtp_engine_new (MH_SMTP_ROLE_SMTP, &lim);
    mh_smtp_engine_greet (e, "mx.bench", 220, NULL);
    gint64 t0 = g_get_monotonic_time ();
    drive (e, in->str, in->len, 65536);
    double s = (double) (g_get_monotonic_time () - t0) / 1e6;
    printf ("DATA parsing (dot-unstuffing, 64 KiB reads): %.0f MB/s\n",
            (double) in->len / 1e6 / s);
  }

  /* 2. LMTP transactions, 10 KiB messages, 3 recipients, pipelined */
  {
    g_autoptr (GString) body = message (10 * 1024);
    g_autoptr (GString) one = g_string_new ("MAIL FROM:<a@b.example>\r\n"
                                            "RCPT TO:<u1@d.example>\r\n"
                                            "RCPT TO:<u2@d.example>\r\n"
                                            "RCPT TO:<u3@d.example>\r\n"
                                            "DATA\r\n");
    g_string_append_len (one, body->str, (gssize) body->len);
    const guint sessions = 20000;
    gint64 t0 = g_get_monotonic_time ();
    for (guint i = 0; i < sessions; i++)
      {
        MhSmtpEngine *e = mh_smtp_engine_new (MH_SMTP_ROLE_LMTP, NULL);
        mh_smtp_engine_greet (e, "mx.bench", 220, NULL);
        drive (e, "LHLO c\r\n", 8, 4096);
        drive (e, one->str, one->len, 4096);
        drive (e, "QUIT\r\n", 6, 4096);
        mh_smtp_engine_unref (e);
      }
    double s = (double) (g_get_monotonic_time () - t0) / 1e6;
    printf ("LMTP sessions (LHLO, 1 message of 10 KiB, 3 RCPT, QUIT; 4 KiB "
            "reads): %.0f sessions/s, %.1f us each\n",
            sessions / s, s * 1e6 / sessions);
  }

  /* 3. Byte-by-byte worst case: a 1 MiB message fed one octet at a time */
  {
    g_autoptr (GString) body = message (1u << 20);
    g_autoptr (GString) in = g_string_new ("EHLO c\r\nMAIL FROM:<a@b.example>"
                                           "\r\nRCPT TO:<c@d.example>\r\n"
                                           "DATA\r\n");
    g_string_append_len (in, body->str, (gssize) body->len);
    g_autoptr (MhSmtpEngine) e = mh_smtp_engine_new (MH_SMTP_ROLE_SMTP, NULL);
    mh_smtp_engine_greet (e, "mx.bench", 220, NULL);
    gint64 t0 = g_get_monotonic_time ();
    drive (e, in->str, in->len, 1);
    double s = (double) (g_get_monotonic_time () - t0) / 1e6;
    printf ("DATA fed one byte per call: %.1f MB/s\n",
            (double) in->len / 1e6 / s);
  }
  printf ("(checksum %" G_GUINT64_FORMAT ")\n", sink);
  return 0;
}
