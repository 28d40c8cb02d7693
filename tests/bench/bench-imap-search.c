/* Benchmark of lib/server/imap-search.c (issue 7). Prints figures, never
 * fails on speed.
 *
 * A folder of N messages (N = $MH_BENCH_N, default 100,000) is written
 * straight into cur/ (no fsync: this measures searching, not delivery),
 * indexed once by mh_store_open(), then selected. Each search runs
 * $MH_BENCH_RUNS times (default 5), warm; the median is printed:
 * - flag keys (UNSEEN FLAGGED; NOT DELETED with a UID set): a scan of
 *   the view, no store read;
 * - LARGER and SINCE: one index record per message;
 * - FROM and SUBJECT: the header cache of the same record;
 * - HEADER X-Bench (not cached: the header block is read) and BODY (the
 *   message is read and decoded) over the first 10,000 UIDs;
 * - FROM again as the SEARCH handler runs it, in 5 ms slices (the
 *   slices' count and what slicing costs);
 * - SORT (SUBJECT), SORT (DATE) and THREAD REFERENCES over everything.
 * Each row prints the median wall time and the median CPU time of the
 * process (the machine is shared: compare CPU time). Every 50th message
 * has a non-ASCII, RFC 2047 encoded From and Subject, so the rows also
 * pay the decode path where real mail does.
 * $MH_BENCH_ONLY (e.g. "FROM,SORT") runs only the rows whose label
 * contains one of the comma-separated words (for perf record).
 * Data goes to $MH_BENCH_DIR (default: the current directory). Seeded:
 * the same folder every run. $MH_BENCH_KEEP=DIR uses DIR instead and
 * keeps it: a later run with the same N reuses the folder and index
 * (while iterating; 100,000 messages take minutes to write).
 */
#include <mailhost/mailhost.h>
#include "server/imap-private.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int n_msgs = 100000;
static int runs = 5;
static char **only;

static gboolean
wanted (const char *kind, const char *what)
{
  if (only == NULL)
    return TRUE;
  g_autofree char *label = g_strconcat (kind, " ", what, NULL);
  for (int i = 0; only[i]; i++)
    if (*only[i] && strstr (label, only[i]))
      return TRUE;
  return FALSE;
}

static void
rmtree (const char *p)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", p);
  if (system (cmd) != 0)
    fprintf (stderr, "rm -rf %s failed\n", p);
}

static MhImapSearchKey *
key (MhImapSearchKeyType type)
{
  MhImapSearchKey *k = g_new0 (MhImapSearchKey, 1);
  k->type = type;
  return k;
}

static void
key_free (gpointer p)
{
  MhImapSearchKey *k = p;
  if (k->children)
    g_ptr_array_unref (k->children);
  g_free (k->header);
  g_free (k->string);
  if (k->set)
    {
      g_array_unref (k->set->ranges);
      g_free (k->set);
    }
  g_free (k);
}

static MhImapSearchKey *
key_and (MhImapSearchKey *a, MhImapSearchKey *b)
{
  MhImapSearchKey *k = key (MH_IMAP_SEARCH_AND);
  k->children = g_ptr_array_new_with_free_func (key_free);
  g_ptr_array_add (k->children, a);
  if (b)
    g_ptr_array_add (k->children, b);
  return k;
}

static MhImapSearchKey *
key_not (MhImapSearchKey *a)
{
  MhImapSearchKey *k = key_and (a, NULL);
  k->type = MH_IMAP_SEARCH_NOT;
  return k;
}

static MhImapSearchKey *
key_str (MhImapSearchKeyType type, const char *hdr, const char *s)
{
  MhImapSearchKey *k = key (type);
  k->header = g_strdup (hdr);
  k->string = g_strdup (s);
  return k;
}

static MhImapSearchKey *
key_uids (guint32 a, guint32 b)
{
  MhImapSearchKey *k = key (MH_IMAP_SEARCH_UID);
  k->set = g_new0 (MhImapSeqSet, 1);
  k->set->ranges = g_array_new (FALSE, FALSE, sizeof (MhImapRange));
  MhImapRange r = { a, b };
  g_array_append_val (k->set->ranges, r);
  return k;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
cpu_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
bench_search (MhStore *s, MhStoreView *v, const char *what,
              MhImapSearchKey *k)
{
  double t[32], c[32];
  guint hits = 0;
  if (!wanted ("SEARCH", what))
    {
      key_free (k);
      return;
    }
  for (int r = 0; r < runs; r++)
    {
      g_autoptr (GError) error = NULL;
      gint64 a = g_get_monotonic_time ();
      double ca = cpu_ms ();
      GArray *res = mh_imap__search (s, NULL, v, k, NULL, &error);
      c[r] = cpu_ms () - ca;
      t[r] = (g_get_monotonic_time () - a) / 1000.0;
      if (res == NULL)
        {
          fprintf (stderr, "%s: %s\n", what, error->message);
          exit (1);
        }
      hits = res->len;
      g_array_unref (res);
    }
  printf ("  SEARCH %-40s %8.1f ms  cpu %8.1f ms  (%u hits)\n", what,
          median (t, runs), median (c, runs), hits);
  fflush (stdout);
  key_free (k);
}

/* imap-search.c's resumable runs (declared there). */
typedef struct _MhImapSearchJob MhImapSearchJob;
MhImapSearchJob *mh_imap__search_job_new (MhStore *store, const char *folder,
                                          MhStoreView *view,
                                          const MhImapSearchKey *key,
                                          const GArray *saved_uids,
                                          GError **error);
int mh_imap__search_job_step (MhImapSearchJob *j, guint max_msgs,
                              gint64 max_us, GError **error);
GArray *mh_imap__search_job_get_result (MhImapSearchJob *j);
void mh_imap__search_job_free (MhImapSearchJob *j);

/* The same search in the handler's 5 ms slices: what slicing costs. */
static void
bench_sliced (MhStore *s, MhStoreView *v, const char *what,
              MhImapSearchKey *k)
{
  double t[32], c[32];
  guint hits = 0, slices = 0;
  if (!wanted ("SLICED", what))
    {
      key_free (k);
      return;
    }
  for (int r = 0; r < runs; r++)
    {
      g_autoptr (GError) error = NULL;
      gint64 a = g_get_monotonic_time ();
      double ca = cpu_ms ();
      MhImapSearchJob *j = mh_imap__search_job_new (s, NULL, v, k, NULL,
                                                    &error);
      int rc;
      slices = 0;
      while (j && (rc = mh_imap__search_job_step (j, 0, 5000, &error)) == 0)
        slices++;
      if (j == NULL || rc < 0)
        {
          fprintf (stderr, "%s: %s\n", what, error->message);
          exit (1);
        }
      hits = mh_imap__search_job_get_result (j)->len;
      mh_imap__search_job_free (j);
      c[r] = cpu_ms () - ca;
      t[r] = (g_get_monotonic_time () - a) / 1000.0;
    }
  printf ("  SLICED %-40s %8.1f ms  cpu %8.1f ms  (%u hits, %u slices)\n",
          what, median (t, runs), median (c, runs), hits, slices + 1);
  fflush (stdout);
  key_free (k);
}

static void
bench_sort (MhStore *s, MhStoreView *v, const char *what, MhImapSortKey sk)
{
  double t[32], cp[32];
  if (!wanted ("SORT", what))
    return;
  for (int r = 0; r < runs; r++)
    {
      g_autoptr (GError) error = NULL;
      MhImapSearchKey *all = key (MH_IMAP_SEARCH_ALL);
      g_autoptr (GArray) idx = mh_imap__search (s, NULL, v, all, NULL, NULL);
      key_free (all);
      g_autoptr (GArray) crit = g_array_new (FALSE, FALSE,
                                             sizeof (MhImapSortCriterion));
      MhImapSortCriterion c = { sk, FALSE };
      g_array_append_val (crit, c);
      gint64 a = g_get_monotonic_time ();
      double ca = cpu_ms ();
      if (!mh_imap__sort (s, NULL, v, crit, idx, &error))
        {
          fprintf (stderr, "%s: %s\n", what, error->message);
          exit (1);
        }
      cp[r] = cpu_ms () - ca;
      t[r] = (g_get_monotonic_time () - a) / 1000.0;
    }
  printf ("  SORT   %-40s %8.1f ms  cpu %8.1f ms\n", what, median (t, runs),
          median (cp, runs));
  fflush (stdout);
}

static void
bench_thread (MhStore *s, MhStoreView *v)
{
  double t[32], c[32];
  gsize len = 0;
  if (!wanted ("THREAD", "REFERENCES ALL"))
    return;
  for (int r = 0; r < runs; r++)
    {
      g_autoptr (GError) error = NULL;
      MhImapSearchKey *all = key (MH_IMAP_SEARCH_ALL);
      g_autoptr (GArray) idx = mh_imap__search (s, NULL, v, all, NULL, NULL);
      key_free (all);
      GString *out = g_string_new (NULL);
      gint64 a = g_get_monotonic_time ();
      double ca = cpu_ms ();
      if (!mh_imap__thread (s, NULL, v, MH_IMAP_THREAD_REFERENCES, idx,
                            FALSE, out, &error))
        {
          fprintf (stderr, "thread: %s\n", error->message);
          exit (1);
        }
      c[r] = cpu_ms () - ca;
      t[r] = (g_get_monotonic_time () - a) / 1000.0;
      len = out->len;
      g_string_free (out, TRUE);
    }
  printf ("  THREAD %-40s %8.1f ms  cpu %8.1f ms  (%zu bytes)\n",
          "REFERENCES ALL", median (t, runs), median (c, runs), len);
  fflush (stdout);
}

int
main (void)
{
  const char *env;
  if ((env = g_getenv ("MH_BENCH_N")))
    n_msgs = MAX (100, atoi (env));
  if ((env = g_getenv ("MH_BENCH_RUNS")))
    runs = CLAMP (atoi (env), 1, 32);
  if ((env = g_getenv ("MH_BENCH_ONLY")) && *env)
    only = g_strsplit (env, ",", -1);
  g_autofree char *cwd = g_get_current_dir ();
  const char *keep = g_getenv ("MH_BENCH_KEEP");
  g_autofree char *base = NULL;
  if (keep && *keep)
    {
      base = g_strdup_printf ("%s/n%d", keep, n_msgs);
      g_mkdir_with_parents (base, 0700);
    }
  else
    {
      base = g_build_filename ((env = g_getenv ("MH_BENCH_DIR")) ? env : cwd,
                               "bench-imap-search-XXXXXX", NULL);
      if (g_mkdtemp (base) == NULL)
        {
          perror (base);
          return 1;
        }
    }
  g_autofree char *done = g_build_filename (base, "written", NULL);
  gboolean reuse = keep && *keep && g_file_test (done, G_FILE_TEST_EXISTS);
  g_autofree char *md = g_build_filename (base, "mail", NULL);
  g_autofree char *ix = g_build_filename (base, "index", NULL);
  const char *subs[] = { "tmp", "new", "cur" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_build_filename (md, subs[i], NULL);
      g_mkdir_with_parents (p, 0700);
    }
  /* Threads of 1..8 messages: replies reference their parent. */
  GRand *rnd = g_rand_new_with_seed (7);
  gint64 t0 = g_get_monotonic_time ();
  int thread_start = 0;
  for (int i = 0; !reuse && i < n_msgs; i++)
    {
      if (g_rand_int_range (rnd, 0, 4) == 0)
        thread_start = i;
      gboolean reply = thread_start != i;
      const char *fl = i % 3 ? "S" : (i % 7 ? "" : "F");
      char p[4096];
      g_snprintf (p, sizeof p, "%s/cur/%d.M%dP1.bench:2,%s", md,
                  1700000000 + i, i, fl);
      GString *m = g_string_new (NULL);
      if (i % 50 == 25)
        /* "Jürgen" and "Grüße" as RFC 2047 encoded words. */
        g_string_append_printf (m,
                                "From: =?UTF-8?Q?J=C3=BCrgen_%d?= "
                                "<user%d@example.org>\n"
                                "To: list@example.org\n"
                                "Subject: %s=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= "
                                "message %d\n",
                                i % 500, i % 500, reply ? "Re: " : "",
                                thread_start);
      else
        g_string_append_printf (m,
                                "From: User %d <user%d@example.org>\n"
                                "To: list@example.org\n"
                                "Subject: %smessage %d\n",
                                i % 500, i % 500, reply ? "Re: " : "",
                                thread_start);
      g_string_append_printf (m,
                              "Date: Wed, %d Nov 2026 %02d:%02d:00 +0000\n"
                              "Message-ID: <%d@bench>\n",
                              1 + i % 28, (i / 60) % 24, i % 60, i);
      if (reply)
        g_string_append_printf (m, "References: <%d@bench>\n", i - 1);
      g_string_append_printf (m, "X-Bench: %d\n\n", i % 100);
      int lines = 1 + g_rand_int_range (rnd, 0, 20);
      for (int l = 0; l < lines; l++)
        g_string_append_printf (m, "line %d of body %d, some text\n", l, i);
      if (i % 1000 == 0)
        g_string_append (m, "the needle\n");
      g_file_set_contents (p, m->str, (gssize) m->len, NULL);
      g_string_free (m, TRUE);
    }
  g_rand_free (rnd);
  if (keep && *keep)
    g_file_set_contents (done, "", 0, NULL);
  gint64 t1 = g_get_monotonic_time ();
  g_autoptr (GError) error = NULL;
  MhStore *s = mh_store_open (md, ix, 0, &error);
  if (s == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      return 1;
    }
  g_usleep (100000); /* leave the mtime's clock tick (see index.c) */
  MhStoreView *v = mh_store_select (s, NULL, FALSE, &error);
  gint64 t2 = g_get_monotonic_time ();
  if (v == NULL || mh_store_view_get_count (v) != (guint) n_msgs)
    {
      fprintf (stderr, "select: %s\n", v ? "wrong count" : error->message);
      return 1;
    }
  printf ("bench-imap-search: %d messages (written in %.1f s, indexed in "
          "%.1f s), median of %d warm runs\n",
          n_msgs, (t1 - t0) / 1e6, (t2 - t1) / 1e6, runs);
  /* Warm the page cache of the index once. */
  MhImapSearchKey *warm = key (MH_IMAP_SEARCH_LARGER);
  g_array_unref (mh_imap__search (s, NULL, v, warm, NULL, NULL));
  key_free (warm);

  guint32 last = mh_store_view_get_uid (v, (guint) n_msgs - 1);
  guint32 tenk = mh_store_view_get_uid (v, MIN (9999u, (guint) n_msgs - 1));
  bench_search (s, v, "UNSEEN FLAGGED",
                key_and (key (MH_IMAP_SEARCH_UNSEEN),
                         key (MH_IMAP_SEARCH_FLAGGED)));
  bench_search (s, v, "UID 1:<half> NOT DELETED",
                key_and (key_uids (1, last / 2),
                         key_not (key (MH_IMAP_SEARCH_DELETED))));
  bench_search (s, v, "ALL", key (MH_IMAP_SEARCH_ALL));
  MhImapSearchKey *larger = key (MH_IMAP_SEARCH_LARGER);
  larger->number = 600;
  bench_search (s, v, "LARGER 600", larger);
  MhImapSearchKey *since = key (MH_IMAP_SEARCH_SINCE);
  since->date = 19000;
  bench_search (s, v, "SINCE 8-Jan-2022", since);
  bench_search (s, v, "FROM user42@", key_str (MH_IMAP_SEARCH_FROM, NULL,
                                               "user42@"));
  bench_search (s, v, "SUBJECT \"message 424\"",
                key_str (MH_IMAP_SEARCH_SUBJECT, NULL, "message 424"));
  bench_search (s, v, "SUBJECT \"grüße\"",
                key_str (MH_IMAP_SEARCH_SUBJECT, NULL, "grüße"));
  bench_search (s, v, "TO LIST@EXAMPLE", key_str (MH_IMAP_SEARCH_TO, NULL,
                                                  "LIST@EXAMPLE"));
  bench_search (s, v, "CC nobody (no Cc fields)",
                key_str (MH_IMAP_SEARCH_CC, NULL, "nobody"));
  bench_search (s, v, "HEADER Message-ID <424@ (cached)",
                key_str (MH_IMAP_SEARCH_HEADER, "Message-ID", "<424@"));
  bench_search (s, v, "FLAGGED SUBJECT \"message 424\"",
                key_and (key (MH_IMAP_SEARCH_FLAGGED),
                         key_str (MH_IMAP_SEARCH_SUBJECT, NULL,
                                  "message 424")));
  bench_search (s, v, "UID 1:<10k> HEADER X-Bench 42",
                key_and (key_uids (1, tenk),
                         key_str (MH_IMAP_SEARCH_HEADER, "X-Bench", "42")));
  bench_search (s, v, "UID 1:<10k> BODY needle",
                key_and (key_uids (1, tenk),
                         key_str (MH_IMAP_SEARCH_BODY, NULL, "needle")));
  bench_sliced (s, v, "FROM user42@ (5 ms slices)",
                key_str (MH_IMAP_SEARCH_FROM, NULL, "user42@"));
  bench_sort (s, v, "(ARRIVAL)", MH_IMAP_SORT_ARRIVAL);
  bench_sort (s, v, "(DATE)", MH_IMAP_SORT_DATE);
  bench_sort (s, v, "(SUBJECT)", MH_IMAP_SORT_SUBJECT);
  bench_sort (s, v, "(FROM)", MH_IMAP_SORT_FROM);
  bench_thread (s, v);
  mh_store_view_unref (v);
  mh_store_unref (s);
  if (!(keep && *keep))
    rmtree (base);
  g_strfreev (only);
  return 0;
}
