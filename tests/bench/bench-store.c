/* Benchmark of lib/store (issue 4). Prints figures, never fails on speed.
 *
 * 1. Delivery of N messages of 10 KiB (N = $MH_BENCH_N, default 10000),
 *    concurrency 1 and 8, on the same disk, runs interleaved
 *    ($MH_BENCH_RUNS, default 3), medians and ratios:
 *    - ours: mh_store_deliver() from C threads into one account;
 *    - raw: the physical limit, a loop of open/write/fsync/close/rename/
 *      fsync(new/) per message;
 *    - dovecot-lda: `/usr/lib/dovecot/dovecot-lda -c CONF -d bench` per
 *      message into its own Maildir (mail_fsync = optimized, Dovecot's
 *      default: the message is fsynced), 8 parallel workers for
 *      concurrency 8. Skipped when dovecot-lda is not installed.
 * 2. Opening a folder of 100,000 messages and listing UIDs and flags,
 *    warm (index built and page cache hot): median of 20.
 * The data goes to $MH_BENCH_DIR (default: under the build directory, on
 * the same disk as the checkout); 100k messages use ~25 MB.
 * 3. With MH_BENCH_SELECT=1 (parts 1 and 2 are then skipped): a folder of
 *    $MH_BENCH_SELECT_N messages (default 100,000), CPU time (user+sys of
 *    the process) and wall time, medians:
 *    - warm SELECT (read-write, the IMAP SELECT path) of an open store;
 *    - open + SELECT + close of a fresh MhStore (page cache warm): what a
 *      new server process pays before its first SELECT answer;
 *    - STORE +FLAGS/-FLAGS \Flagged on one message followed by the
 *      changes since the last MODSEQ (what an IMAP session does next),
 *      (the unit tests check it causes no directory scan).
 * MH_BENCH_OPEN=0 skips part 2. On a shared, loaded disk the rate of one
 * run drifts a lot; each run's ours/raw ratio is taken from adjacent
 * measurements, so the median of those ratios is printed beside the
 * ratio of the medians.
 */
#include <mailhost/mailhost.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LDA "/usr/lib/dovecot/dovecot-lda"

static char *message;
static gsize message_len;
static int n_total = 10000;
static int n_lda = 1000;

static void
make_message (void)
{
  GString *s = g_string_new ("From: Bench <bench@example.org>\n"
                             "To: user@example.org\n"
                             "Subject: benchmark message\n"
                             "Date: Wed, 25 Nov 2026 10:00:00 +0000\n"
                             "Message-ID: <bench@example.org>\n\n");
  GRand *r = g_rand_new_with_seed (1);
  while (s->len < 10 * 1024 - 80)
    {
      for (int i = 0; i < 72; i++)
        g_string_append_c (s, (char) ('a' + g_rand_int_range (r, 0, 26)));
      g_string_append_c (s, '\n');
    }
  while (s->len < 10 * 1024 - 1)
    g_string_append_c (s, 'x');
  g_string_append_c (s, '\n');
  g_rand_free (r);
  message_len = s->len;
  message = g_string_free (s, FALSE);
}

static void
rmtree (const char *p)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", p);
  if (system (cmd) != 0)
    fprintf (stderr, "rm -rf %s failed\n", p);
}

typedef struct
{
  int n;
  int id;
  const char *dir;
  MhStore *store;
  const char *conf;
} Job;

static gpointer
ours_worker (gpointer data)
{
  Job *j = data;
  g_autoptr (GBytes) b = g_bytes_new_static (message, message_len);
  for (int i = 0; i < j->n; i++)
    {
      g_autoptr (GError) error = NULL;
      if (!mh_store_deliver (j->store, NULL, b, 0, NULL, 0, NULL, &error))
        {
          fprintf (stderr, "deliver: %s\n", error->message);
          exit (1);
        }
    }
  return NULL;
}

static gpointer
raw_worker (gpointer data)
{
  Job *j = data;
  g_autofree char *newd = g_build_filename (j->dir, "new", NULL);
  int dfd = open (newd, O_RDONLY | O_DIRECTORY);
  for (int i = 0; i < j->n; i++)
    {
      char tmp[4096], dst[4096];
      g_snprintf (tmp, sizeof tmp, "%s/tmp/%d.%d", j->dir, j->id, i);
      g_snprintf (dst, sizeof dst, "%s/new/%d.%d", j->dir, j->id, i);
      int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
      if (fd < 0 || write (fd, message, message_len) != (gssize) message_len
          || fsync (fd) != 0 || close (fd) != 0 || rename (tmp, dst) != 0
          || fsync (dfd) != 0)
        {
          perror ("raw");
          exit (1);
        }
    }
  close (dfd);
  return NULL;
}

/* dovecot-lda without a running Dovecot: run it as the mail user
 * (nobody; it refuses root) with HOME set, the way an MTA's local
 * delivery runs it. */
static void
as_nobody (gpointer data)
{
  if (setgroups (0, NULL) != 0 || setgid (65534) != 0 || setuid (65534) != 0)
    _exit (99);
}

static gpointer
lda_worker (gpointer data)
{
  Job *j = data;
  g_autofree char *home = g_path_get_dirname (j->conf);
  g_autofree char *henv = g_strdup_printf ("HOME=%s/dovecot", home);
  const char *envp[] = { henv, "USER=bench", "PATH=/usr/bin:/bin", NULL };
  for (int i = 0; i < j->n; i++)
    {
      const char *argv[] = { LDA, "-c", j->conf, NULL };
      GError *error = NULL;
      GPid pid;
      gint in_fd;
      if (!g_spawn_async_with_pipes (NULL, (char **) argv, (char **) envp,
                                     G_SPAWN_DO_NOT_REAP_CHILD, as_nobody,
                                     NULL, &pid, &in_fd, NULL, NULL, &error))
        {
          fprintf (stderr, "spawn: %s\n", error->message);
          exit (1);
        }
      if (write (in_fd, message, message_len) != (gssize) message_len)
        perror ("lda stdin");
      close (in_fd);
      int status;
      waitpid (pid, &status, 0);
      if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        {
          fprintf (stderr, "dovecot-lda failed (status %d); see "
                   "%s/dovecot/lda.log\n", status, home);
          exit (1);
        }
    }
  return NULL;
}

static double
run_threads (GThreadFunc fn, int conc, const char *dir, MhStore *store,
             const char *conf)
{
  Job jobs[8];
  GThread *t[8];
  int total = conf ? n_lda : n_total;
  gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < conc; i++)
    {
      jobs[i] = (Job){ total / conc, i, dir, store, conf };
      t[i] = g_thread_new ("bench", fn, &jobs[i]);
    }
  for (int i = 0; i < conc; i++)
    g_thread_join (t[i]);
  return (double) (total / conc * conc)
         / ((g_get_monotonic_time () - t0) / 1e6);
}

static void
mkmaildir (const char *d)
{
  const char *subs[] = { "tmp", "new", "cur" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_build_filename (d, subs[i], NULL);
      g_mkdir_with_parents (p, 0700);
    }
}

static double
bench_ours (const char *base, int conc)
{
  g_autofree char *md = g_build_filename (base, "ours", "mail", NULL);
  g_autofree char *ix = g_build_filename (base, "ours", "index", NULL);
  g_autoptr (GError) error = NULL;
  MhStore *s = mh_store_open (md, ix, MH_STORE_OPEN_CREATE, &error);
  if (s == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      exit (1);
    }
  sync ();
  double r = run_threads (ours_worker, conc, md, s, NULL);
  mh_store_unref (s);
  g_autofree char *top = g_build_filename (base, "ours", NULL);
  rmtree (top);
  return r;
}

static double
bench_raw (const char *base, int conc)
{
  g_autofree char *md = g_build_filename (base, "raw", NULL);
  mkmaildir (md);
  sync ();
  double r = run_threads (raw_worker, conc, md, NULL, NULL);
  rmtree (md);
  return r;
}

static char *
lda_setup (const char *base)
{
  if (!g_file_test (LDA, G_FILE_TEST_IS_EXECUTABLE))
    return NULL;
  g_autofree char *home = g_build_filename (base, "dovecot", NULL);
  g_autofree char *md = g_build_filename (home, "Maildir", NULL);
  g_autofree char *run = g_build_filename (base, "dovecot-run", NULL);
  mkmaildir (md);
  g_mkdir_with_parents (run, 0755);
  /* The mail user: nobody (dovecot-lda refuses uid 0 and drops to the
   * userdb uid); the Maildir must be theirs. */
  g_autofree char *chown = g_strdup_printf ("chown -R 65534:65534 '%s'",
                                            home);
  if (system (chown) != 0)
    return NULL;
  g_autofree char *users = g_build_filename (base, "dovecot-users", NULL);
  g_autofree char *u = g_strdup_printf ("bench:{PLAIN}x:65534:65534::%s::\n",
                                        home);
  g_file_set_contents (users, u, -1, NULL);
  char *conf = g_build_filename (base, "dovecot-bench.conf", NULL);
  g_autofree char *c = g_strdup_printf (
    "base_dir = %s\n"
    "log_path = %s/dovecot/lda.log\n"
    "ssl = no\n"
    "mail_location = maildir:%s\n"
    "mail_fsync = optimized\n"
    "first_valid_uid = 1\n"
    "passdb {\n  driver = passwd-file\n  args = %s\n}\n"
    "userdb {\n  driver = passwd-file\n  args = %s\n}\n"
    "protocols =\n",
    run, base, md, users, users);
  g_file_set_contents (conf, c, -1, NULL);
  return conf;
}

static double
bench_lda (const char *base, const char *conf, int conc)
{
  g_autofree char *md = g_build_filename (base, "dovecot", "Maildir", NULL);
  sync ();
  double r = run_threads (lda_worker, conc, NULL, NULL, conf);
  /* Empty it for the next run (keep the directories and their owner). */
  g_autofree char *cmd = g_strdup_printf (
    "rm -rf '%s'/new/* '%s'/cur/* '%s'/dovecot* ", md, md, md);
  if (system (cmd) != 0)
    fprintf (stderr, "cleanup failed\n");
  return r;
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

static void
bench_open_100k (const char *base)
{
  const int n = 100000;
  g_autofree char *md = g_build_filename (base, "big", "mail", NULL);
  g_autofree char *ix = g_build_filename (base, "big", "index", NULL);
  mkmaildir (md);
  /* Messages written directly (no fsync: this measures the index). */
  gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < n; i++)
    {
      char p[4096];
      g_snprintf (p, sizeof p, "%s/cur/%d.M%dP1.bench,S=120:2,%s", md,
                  1700000000 + i, i, i % 3 ? "S" : (i % 7 ? "" : "FS"));
      g_autofree char *text = g_strdup_printf (
        "From: a@example.org\nSubject: message %d\nMessage-ID: <%d@x>\n\n"
        "short body\n", i, i);
      g_file_set_contents (p, text, -1, NULL);
    }
  gint64 t1 = g_get_monotonic_time ();
  g_autoptr (GError) error = NULL;
  MhStore *s = mh_store_open (md, ix, 0, &error);
  if (s == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      exit (1);
    }
  gint64 t2 = g_get_monotonic_time ();
  g_usleep (100000); /* leave the mtime's clock tick (see index.c) */
  mh_store_view_unref (mh_store_select (s, NULL, FALSE, NULL));
  double times[20];
  guint64 sum = 0;
  for (int r = 0; r < 20; r++)
    {
      gint64 a = g_get_monotonic_time ();
      MhStoreView *v = mh_store_select (s, NULL, FALSE, &error);
      guint cnt = mh_store_view_get_count (v);
      for (guint i = 0; i < cnt; i++)
        sum += mh_store_view_get_uid (v, i) + mh_store_view_get_flags (v, i);
      mh_store_view_unref (v);
      times[r] = (g_get_monotonic_time () - a) / 1000.0;
      if (cnt != (guint) n)
        {
          fprintf (stderr, "expected %d messages, got %u\n", n, cnt);
          exit (1);
        }
    }
  double med = median (times, 20); /* sorts: times[0] is the minimum */
  printf ("open 100k folder: files written in %.1f s, first index build "
          "%.1f s; warm select + list UIDs and flags: median %.1f ms, "
          "min %.1f ms (target < 50 ms) [checksum %" G_GUINT64_FORMAT "]\n",
          (t1 - t0) / 1e6, (t2 - t1) / 1e6, med, times[0], sum);
  mh_store_unref (s);
  g_autofree char *top = g_build_filename (base, "big", NULL);
  rmtree (top);
}

/* CPU time of the whole process (user + system), in ms. */
static double
cpu_ms (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static MhStore *
open_or_die (const char *md, const char *ix)
{
  g_autoptr (GError) error = NULL;
  MhStore *s = mh_store_open (md, ix, 0, &error);
  if (s == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      exit (1);
    }
  return s;
}

static void
bench_select (const char *base)
{
  int n = 100000;
  const char *env = g_getenv ("MH_BENCH_SELECT_N");
  if (env)
    n = MAX (10, atoi (env));
  g_autofree char *md = g_build_filename (base, "sel", "mail", NULL);
  g_autofree char *ix = g_build_filename (base, "sel", "index", NULL);
  mkmaildir (md);
  gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < n; i++)
    {
      char p[4096];
      g_snprintf (p, sizeof p, "%s/cur/%d.M%dP1.bench,S=120:2,%s", md,
                  1700000000 + i, i, i % 3 ? "S" : "");
      g_autofree char *text = g_strdup_printf (
        "From: a@example.org\nSubject: message %d\nMessage-ID: <%d@x>\n\n"
        "short body\n", i, i);
      g_file_set_contents (p, text, -1, NULL);
    }
  gint64 t1 = g_get_monotonic_time ();
  MhStore *s = open_or_die (md, ix);
  gint64 t2 = g_get_monotonic_time ();
  printf ("select: %d messages written in %.1f s, index built in %.1f s\n",
          n, (t1 - t0) / 1e6, (t2 - t1) / 1e6);
  g_usleep (100000); /* leave the mtime's clock tick (see index.c) */
  g_autoptr (GError) error = NULL;
  mh_store_view_unref (mh_store_select (s, NULL, TRUE, NULL));

  enum { R = 20 };
  double wall[R], cpu[R];
  for (int r = 0; r < R; r++)
    {
      gint64 a = g_get_monotonic_time ();
      double c = cpu_ms ();
      MhStoreView *v = mh_store_select (s, NULL, TRUE, &error);
      cpu[r] = cpu_ms () - c;
      wall[r] = (g_get_monotonic_time () - a) / 1000.0;
      if (v == NULL || mh_store_view_get_count (v) != (guint) n)
        {
          fprintf (stderr, "select: %s\n", error ? error->message : "count");
          exit (1);
        }
      mh_store_view_unref (v);
    }
  printf ("select %d, warm (read-write): median %.2f ms wall, %.2f ms CPU\n",
          n, median (wall, R), median (cpu, R));

  /* STORE on one message, then what a session asks next. */
  MhStoreStatus st;
  mh_store_folder_status (s, NULL, &st, NULL);
  guint64 since = st.highestmodseq;
  for (int r = 0; r < R; r++)
    {
      guint32 uid = (guint32) (1 + (r * 997) % n);
      gint64 a = g_get_monotonic_time ();
      double c = cpu_ms ();
      if (!mh_store_set_flags (s, NULL, &uid, 1,
                               r % 2 ? MH_STORE_FLAGS_REMOVE
                                     : MH_STORE_FLAGS_ADD,
                               MH_STORE_FLAG_FLAGGED, NULL, 0, NULL, &error))
        {
          fprintf (stderr, "store: %s\n", error->message);
          exit (1);
        }
      MhStoreView *v = mh_store_changes_since (s, NULL, since, &error);
      cpu[r] = cpu_ms () - c;
      wall[r] = (g_get_monotonic_time () - a) / 1000.0;
      mh_store_view_get_status (v, &st);
      since = st.highestmodseq;
      mh_store_view_unref (v);
    }
  printf ("store %d: one message's flags + changes since: median %.3f ms "
          "wall, %.3f ms CPU\n", n, median (wall, R), median (cpu, R));
  mh_store_unref (s);

  /* A fresh MhStore each time: open + SELECT + close. */
  for (int r = 0; r < 10; r++)
    {
      gint64 a = g_get_monotonic_time ();
      double c = cpu_ms ();
      MhStore *o = open_or_die (md, ix);
      MhStoreView *v = mh_store_select (o, NULL, TRUE, &error);
      mh_store_view_unref (v);
      mh_store_unref (o);
      cpu[r] = cpu_ms () - c;
      wall[r] = (g_get_monotonic_time () - a) / 1000.0;
    }
  printf ("select %d, fresh store (open + select + close): median %.2f ms "
          "wall, %.2f ms CPU\n", n, median (wall, 10), median (cpu, 10));
  g_autofree char *top = g_build_filename (base, "sel", NULL);
  rmtree (top);
}

int
main (int argc, char **argv)
{
  const char *env;
  if ((env = g_getenv ("MH_BENCH_N")))
    n_total = MAX (8, atoi (env));
  if ((env = g_getenv ("MH_BENCH_LDA_N")))
    n_lda = MAX (8, atoi (env));
  int runs = 3;
  if ((env = g_getenv ("MH_BENCH_RUNS")))
    runs = CLAMP (atoi (env), 1, 16);
  g_autofree char *base = NULL;
  if ((env = g_getenv ("MH_BENCH_DIR")))
    base = g_build_filename (env, "bench-store-XXXXXX", NULL);
  else
    base = g_build_filename (g_get_current_dir (), "bench-store-XXXXXX",
                             NULL);
  if (g_mkdtemp (base) == NULL)
    {
      perror (base);
      return 1;
    }
  chmod (base, 0755);
  if (g_strcmp0 (g_getenv ("MH_BENCH_SELECT"), "1") == 0)
    {
      bench_select (base);
      rmtree (base);
      return 0;
    }
  make_message ();
  printf ("bench-store: %d messages of %zu bytes (%d for dovecot-lda), "
          "%d runs, in %s\n", n_total, message_len, n_lda, runs, base);
  g_autofree char *conf = lda_setup (base);
  if (conf == NULL)
    printf ("dovecot-lda not found: skipped (apt-get install "
            "dovecot-core)\n");
  int concs[] = { 1, 8 };
  for (int c = 0; c < 2; c++)
    {
      int conc = concs[c];
      double ours[16], raw[16], lda[16], ratio[16], lratio[16];
      for (int r = 0; r < runs && r < 16; r++)
        {
          /* Interleaved, so drift of a shared disk hits all alike. */
          ours[r] = bench_ours (base, conc);
          raw[r] = bench_raw (base, conc);
          lda[r] = conf ? bench_lda (base, conf, conc) : 0;
          ratio[r] = ours[r] / raw[r];
          lratio[r] = lda[r] > 0 ? ours[r] / lda[r] : 0;
          printf ("  concurrency %d run %d: ours %.0f/s, raw %.0f/s, "
                  "dovecot-lda %.0f/s; ours/raw %.2f\n", conc, r + 1,
                  ours[r], raw[r], lda[r], ratio[r]);
          fflush (stdout);
        }
      double mo = median (ours, runs), mr = median (raw, runs),
             ml = median (lda, runs);
      printf ("concurrency %d: median ours %.0f msg/s, raw loop %.0f msg/s, "
              "dovecot-lda %.0f msg/s; ours/raw %.2f (target >= 0.8), "
              "ours/dovecot-lda %.1f (target >= 2)\n",
              conc, mo, mr, ml, mo / mr, ml > 0 ? mo / ml : 0.0);
      printf ("concurrency %d: median of per-run ratios: ours/raw %.2f, "
              "ours/dovecot-lda %.1f\n", conc, median (ratio, runs),
              median (lratio, runs));
      fflush (stdout);
    }
  if (g_strcmp0 (g_getenv ("MH_BENCH_OPEN"), "0") != 0)
    bench_open_100k (base);
  rmtree (base);
  return 0;
}
