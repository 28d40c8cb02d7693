/* Micro-benchmark of the FETCH renderer (lib/server/imap-fetch.c, issue 7
 * benchmark 2). Prints figures, never fails on speed.
 *
 * A folder of N messages (N = $MH_BENCH_N, default 100000; ~1.5 KiB each,
 * realistic headers) is written straight into a Maildir and indexed once.
 * Then, warm (index built, page cache hot), median of $MH_BENCH_RUNS
 * (default 5) runs over every message, in process, no socket:
 *   1. the store's per-message metadata lookup alone
 *      (mh_store_message_get + unref): the floor of every item that is
 *      not FLAGS/UID/MODSEQ;
 *   2. mh_imap__fetch_one for UID FETCH 1:* (FLAGS INTERNALDATE
 *      RFC822.SIZE ENVELOPE), the output cut every MH_IMAP_CHUNK bytes as
 *      the service does, with an MhStoreReader per chunk and without;
 *   3. the same with only (FLAGS UID): the view alone;
 *   4. BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID X-LIST)]
 *      (read from the file: X-LIST is not cached) per message.
 * When Dovecot (/usr/lib/dovecot/imap) is installed and we are root, the
 * same command runs against a copy of the Maildir through Dovecot's imap
 * binary in PREAUTH mode over a pipe, warm (second run), and its own
 * command timing is printed beside ours (its figure includes writing the
 * response to the pipe; ours only builds it in memory).
 * The data goes to $MH_BENCH_DIR (default: the current directory).
 */
#include "mailhost/mailhost.h"
#include "server/imap-private.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOVECOT_IMAP "/usr/lib/dovecot/imap"
#define NOBODY 65534

static int n_msgs = 100000;
static int runs = 5;

static void
rmtree (const char *path)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", path);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", path);
}

static void
write_maildir (const char *md)
{
  static const char *const subdirs[] = { "cur", "new", "tmp" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *d = g_build_filename (md, subdirs[i], NULL);
      g_mkdir_with_parents (d, 0755);
    }
  GRand *r = g_rand_new_with_seed (7);
  GString *body = g_string_new (NULL);
  for (int l = 0; l < 16; l++)
    {
      for (int i = 0; i < 70; i++)
        g_string_append_c (body, (char) ('a' + g_rand_int_range (r, 0, 26)));
      g_string_append_c (body, '\n');
    }
  for (int i = 0; i < n_msgs; i++)
    {
      g_autofree char *text = g_strdup_printf (
        "Return-Path: <sender%d@example.org>\n"
        "Received: from mx.example.org by mail.example.net; "
        "Wed, 25 Nov 2026 10:%02d:%02d +0000\n"
        "From: Sender Number %d <sender%d@example.org>\n"
        "To: user@example.net, \"Other Person\" <other@example.net>\n"
        "Cc: list@lists.example.org\n"
        "Subject: benchmark message %d about something\n"
        "Date: Wed, 25 Nov 2026 10:%02d:%02d +0000\n"
        "Message-ID: <%d.bench@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n\n%s",
        i % 50, (i / 60) % 60, i % 60, i, i % 50, i, (i / 60) % 60, i % 60,
        i, body->str);
      char p[4096];
      g_snprintf (p, sizeof p, "%s/cur/%d.M%dP1.bench,S=%zu:2,%s", md,
                  1700000000 + i, i, strlen (text), i % 3 ? "S" : "");
      g_file_set_contents (p, text, -1, NULL);
    }
  g_string_free (body, TRUE);
  g_rand_free (r);
}

/* CPU seconds (user + system) of this process or of waited children:
 * the machine may be loaded, CPU time is what the work costs. */
static double
cpu_seconds (int who)
{
  struct rusage ru;
  getrusage (who, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static MhImapFetchAtt *
att_new (MhImapFetchItem item)
{
  MhImapFetchAtt *a = g_new0 (MhImapFetchAtt, 1);
  a->item = item;
  return a;
}

static void
att_free (gpointer p)
{
  MhImapFetchAtt *a = p;
  g_strfreev (a->fields);
  g_free (a);
}

/* Runs fetch_one over the whole view; returns seconds, bytes in @bytes. */
static double
run_fetch (MhStore *s, MhStoreView *v, GPtrArray *atts, guint64 *bytes,
           double *cpu, gboolean reader)
{
  MhImapFetchArgs a = { .store = s, .view = v, .atts = atts,
                        .add_uid = TRUE };
  GString *out = g_string_sized_new (MH_IMAP_CHUNK * 2);
  guint n = mh_store_view_get_count (v);
  *bytes = 0;
  double c0 = cpu_seconds (RUSAGE_SELF);
  gint64 t0 = g_get_monotonic_time ();
  /* With a reader: one per output chunk, as the service does (a read
   * snapshot is never held across a network wait). */
  if (reader)
    a.reader = mh_store_reader_new (s, NULL, NULL);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (GError) error = NULL;
      if (!mh_imap__fetch_one (&a, i, out, &error))
        {
          fprintf (stderr, "fetch %u: %s\n", i + 1, error->message);
          exit (1);
        }
      if (out->len >= MH_IMAP_CHUNK)
        {
          *bytes += out->len;
          g_string_truncate (out, 0);
          if (reader)
            {
              mh_store_reader_unref (a.reader);
              a.reader = mh_store_reader_new (s, NULL, NULL);
            }
        }
    }
  mh_store_reader_unref (a.reader);
  double t = (g_get_monotonic_time () - t0) / 1e6;
  if (cpu)
    *cpu = cpu_seconds (RUSAGE_SELF) - c0;
  *bytes += out->len;
  g_string_free (out, TRUE);
  return t;
}

static void
bench_ours (MhStore *s, MhStoreView *v)
{
  guint n = mh_store_view_get_count (v);
  double t[16], c[16];
  for (int r = 0; r < runs; r++)
    {
      double c0 = cpu_seconds (RUSAGE_SELF);
      gint64 t0 = g_get_monotonic_time ();
      for (guint i = 0; i < n; i++)
        {
          MhStoreMessage *m = mh_store_message_get (
            s, NULL, mh_store_view_get_uid (v, i), NULL);
          if (m == NULL)
            exit (1);
          mh_store_message_unref (m);
        }
      t[r] = (g_get_monotonic_time () - t0) / 1e6;
      c[r] = cpu_seconds (RUSAGE_SELF) - c0;
    }
  double lookup = median (t, runs);
  printf ("  metadata lookup (mh_store_message_get): %.3f s wall, %.3f s "
          "CPU, %.2f us/msg CPU\n", lookup, median (c, runs),
          median (c, runs) * 1e6 / n);

  struct
  {
    const char *name;
    MhImapFetchItem items[4];
    int n_items;
    gboolean fields;
    gboolean reader;
  } cases[] = {
    { "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE) with a reader",
      { MH_IMAP_FETCH_FLAGS, MH_IMAP_FETCH_INTERNALDATE,
        MH_IMAP_FETCH_RFC822_SIZE, MH_IMAP_FETCH_ENVELOPE }, 4, FALSE,
      TRUE },
    { "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
      { MH_IMAP_FETCH_FLAGS, MH_IMAP_FETCH_INTERNALDATE,
        MH_IMAP_FETCH_RFC822_SIZE, MH_IMAP_FETCH_ENVELOPE }, 4, FALSE },
    { "(FLAGS UID)", { MH_IMAP_FETCH_FLAGS, MH_IMAP_FETCH_UID }, 2, FALSE },
    { "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID X-LIST)]",
      { MH_IMAP_FETCH_BODY_SECTION }, 1, TRUE },
  };
  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      g_autoptr (GPtrArray) atts = g_ptr_array_new_with_free_func (att_free);
      for (int j = 0; j < cases[k].n_items; j++)
        g_ptr_array_add (atts, att_new (cases[k].items[j]));
      if (cases[k].fields)
        {
          MhImapFetchAtt *a = atts->pdata[0];
          a->peek = TRUE;
          a->text = MH_IMAP_SECTION_HEADER_FIELDS;
          a->fields = g_strsplit ("FROM TO SUBJECT DATE MESSAGE-ID X-LIST",
                                  " ", -1);
        }
      guint64 bytes = 0;
      for (int r = 0; r < runs; r++)
        t[r] = run_fetch (s, v, atts, &bytes, &c[r], cases[k].reader);
      double med = median (t, runs), cmed = median (c, runs);
      printf ("  UID FETCH 1:* %s: median %.3f s wall (min %.3f), %.3f s "
              "CPU, %.2f us/msg CPU, %.1f MB out\n", cases[k].name, med, t[0],
              cmed, cmed * 1e6 / n, bytes / 1e6);
    }
}

/* Dovecot's own timing of the command: "(a + b + c secs)" of its OK. */
static double
dovecot_run (const char *tmp, const char *conf, double *cpu)
{
  double c0 = cpu_seconds (RUSAGE_CHILDREN);
  g_autofree char *home = g_build_filename (tmp, "home", NULL);
  g_autofree char *home_env = g_strconcat ("HOME=", home, NULL);
  const char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534",
                         "--clear-groups", "env", "-i", home_env,
                         "USER=nobody", DOVECOT_IMAP, "-c", conf, NULL };
  const char *input = "x EXAMINE INBOX\r\n"
                      "f UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE "
                      "ENVELOPE)\r\nz LOGOUT\r\n";
  g_autoptr (GSubprocess) p = g_subprocess_newv (
    argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
            | G_SUBPROCESS_FLAGS_STDERR_SILENCE, NULL);
  if (p == NULL)
    return -1;
  /* Dovecot stops at end of input even with output pending: keep its
   * stdin open until the LOGOUT is answered. */
  GOutputStream *to = g_subprocess_get_stdin_pipe (p);
  GInputStream *from = g_subprocess_get_stdout_pipe (p);
  gint64 t0 = g_get_monotonic_time ();
  if (!g_output_stream_write_all (to, input, strlen (input), NULL, NULL,
                                  NULL))
    return -1;
  GString *all = g_string_new (NULL);
  char buf[65536];
  gssize r;
  while (strstr (all->len > 400 ? all->str + all->len - 400 : all->str,
                 "\r\nz OK") == NULL
         && (r = g_input_stream_read (from, buf, sizeof buf, NULL, NULL)) > 0)
    g_string_append_len (all, buf, r);
  double wall = (g_get_monotonic_time () - t0) / 1e6;
  g_output_stream_close (to, NULL, NULL);
  g_subprocess_wait (p, NULL, NULL);
  *cpu = cpu_seconds (RUSAGE_CHILDREN) - c0;
  g_autofree char *text = g_string_free (all, FALSE);
  const char *ok = strstr (text, "\r\nf OK");
  double a = 0, b = 0, c = 0;
  if (ok == NULL)
    {
      fprintf (stderr, "dovecot: no OK to the FETCH: ...%s\n",
               text + (strlen (text) > 300 ? strlen (text) - 300 : 0));
      return -1;
    }
  const char *paren = strchr (ok, '(');
  if (paren == NULL || sscanf (paren, "(%lf + %lf + %lf", &a, &b, &c) < 2)
    return wall;
  return a + b + c;
}

static void
bench_dovecot (const char *base)
{
  if (!g_file_test (DOVECOT_IMAP, G_FILE_TEST_IS_EXECUTABLE) || getuid () != 0
      || !g_find_program_in_path ("setpriv"))
    {
      printf ("dovecot: skipped (needs %s, root and setpriv)\n",
              DOVECOT_IMAP);
      return;
    }
  g_autofree char *tmp = g_build_filename (base, "dovecot", NULL);
  g_autofree char *md = g_build_filename (tmp, "home", "Maildir", NULL);
  g_mkdir_with_parents (md, 0755);
  write_maildir (md);
  g_autofree char *conf = g_build_filename (tmp, "dovecot.conf", NULL);
  g_autofree char *text = g_strdup_printf (
    "base_dir = %s/run\nstate_dir = %s/state\nlog_path = /dev/null\n"
    "ssl = no\nprotocols = imap\nfirst_valid_uid = 1\n"
    "mail_location = maildir:~/Maildir\n"
    "namespace inbox {\n  inbox = yes\n  separator = .\n}\n", tmp, tmp);
  g_file_set_contents (conf, text, -1, NULL);
  g_autofree char *cmd = g_strdup_printf (
    "mkdir -p '%s/run' '%s/state' && chown -R %d:%d '%s'", tmp, tmp, NOBODY,
    NOBODY, tmp);
  if (system (cmd) != 0)
    {
      printf ("dovecot: skipped (chown failed)\n");
      return;
    }
  chmod (base, 0755);
  double c1, c[16], t[16];
  double first = dovecot_run (tmp, conf, &c1); /* builds its index */
  for (int r = 0; r < runs; r++)
    t[r] = dovecot_run (tmp, conf, &c[r]);
  printf ("  dovecot UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE "
          "ENVELOPE): cold (index build) %.3f s, warm median %.3f s (its "
          "own command timing), %.3f s CPU for the whole session (process "
          "start, EXAMINE, FETCH, LOGOUT)\n", first, median (t, runs),
          median (c, runs));
}

int
main (void)
{
  const char *env;
  setvbuf (stdout, NULL, _IOLBF, 0); /* figures show as they come */
  if ((env = g_getenv ("MH_BENCH_N")))
    n_msgs = MAX (10, atoi (env));
  if ((env = g_getenv ("MH_BENCH_RUNS")))
    runs = CLAMP (atoi (env), 1, 16);
  g_setenv ("TZ", "UTC", TRUE);
  g_autofree char *base = g_build_filename (
    g_getenv ("MH_BENCH_DIR") ? g_getenv ("MH_BENCH_DIR")
                              : g_get_current_dir (),
    "bench-imap-fetch-XXXXXX", NULL);
  if (g_mkdtemp (base) == NULL)
    {
      perror (base);
      return 1;
    }
  printf ("bench-imap-fetch: %d messages, %d runs, in %s\n", n_msgs, runs,
          base);
  g_autofree char *md = g_build_filename (base, "ours", "mail", NULL);
  g_autofree char *ix = g_build_filename (base, "ours", "index", NULL);
  gint64 t0 = g_get_monotonic_time ();
  write_maildir (md);
  gint64 t1 = g_get_monotonic_time ();
  g_autoptr (GError) error = NULL;
  MhStore *s = mh_store_open (md, ix, 0, &error);
  if (s == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      return 1;
    }
  g_usleep (100000); /* the mtime's clock tick (see lib/store/index.c) */
  MhStoreView *v = mh_store_select (s, NULL, FALSE, &error);
  gint64 t2 = g_get_monotonic_time ();
  if (v == NULL || mh_store_view_get_count (v) != (guint) n_msgs)
    {
      fprintf (stderr, "select: %s\n", error ? error->message : "count");
      return 1;
    }
  printf ("  files written in %.1f s, index built in %.1f s\n",
          (t1 - t0) / 1e6, (t2 - t1) / 1e6);
  guint64 dummy;
  g_autoptr (GPtrArray) warm = g_ptr_array_new_with_free_func (att_free);
  g_ptr_array_add (warm, att_new (MH_IMAP_FETCH_ENVELOPE));
  run_fetch (s, v, warm, &dummy, NULL, FALSE); /* warm caches */
  bench_ours (s, v);
  mh_store_view_unref (v);
  mh_store_unref (s);
  bench_dovecot (base);
  rmtree (base);
  return 0;
}
