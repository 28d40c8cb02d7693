/* Resolution benchmark (issue 5). With 100,000 accounts and 1,000,000
 * aliases (10 domains, filled through the one-transaction bulk paths):
 *
 * 1. in-process resolutions per second, warm, median of RUNS runs, for
 *    plain accounts (the RCPT fast path, target >= 1,000,000/s), aliases,
 *    sub-addresses, unknown addresses and with the trace on;
 * 2. whole processes over the same input list of alias addresses:
 *    Postfix `postmap -q - lmdb:FILE` (the map built from the same alias
 *    list with `postmap lmdb:FILE`) against `mhctl resolve --batch`, wall
 *    time, median of RUNS runs, and the ratio. Skipped with a note when
 *    postmap (Debian: postfix) or its lmdb map type is not installed.
 *
 * Fixed seed; prints figures and never fails on speed.
 *
 *   meson test -C build --suite bench bench-resolve --verbose
 *   MH_MHCTL=build/bin/mhctl build/tests/bench/bench-resolve [ACCOUNTS ALIASES]
 */
#include <mailhost/mailhost.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>
#include <time.h>

#define RUNS 5
#define PER_RUN 1000000
#define DOMAINS 10
#define QUERIES 100000

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
  return v[n / 2];
}

static void
die (const char *what, GError *error)
{
  fprintf (stderr, "bench-resolve: %s: %s\n", what,
           error ? error->message : "failed");
  exit (1);
}

/* Resolutions per second of addresses made by @make (i -> address). */
typedef void (*MakeAddr) (char *buf, gsize len, guint i, guint n);

static void
make_account (char *buf, gsize len, guint i, guint n)
{
  g_snprintf (buf, len, "user%06u@example%u.org", i % n, i % DOMAINS);
}

static void
make_alias (char *buf, gsize len, guint i, guint n)
{
  g_snprintf (buf, len, "alias%07u@example%u.org", i % n, i % DOMAINS);
}

static void
make_sub (char *buf, gsize len, guint i, guint n)
{
  g_snprintf (buf, len, "user%06u+news@example%u.org", i % n, i % DOMAINS);
}

static void
make_unknown (char *buf, gsize len, guint i, guint n)
{
  g_snprintf (buf, len, "nobody%06u@example%u.org", i % n, i % DOMAINS);
}

/* CPU time of this thread: on a shared, loaded machine the wall-clock
 * rate says more about the neighbours than about us, so both are shown. */
static double
cpu_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct
{
  double wall;   /* resolutions per wall-clock second */
  double cpu;    /* resolutions per CPU second */
} Rate;

static Rate
rate (MhResolver *res, MakeAddr make, guint n, MhResolveFlags flags,
      gboolean expect_accept)
{
  /* Addresses prepared outside the timed loop, random order (seed 42). */
  GRand *rand = g_rand_new_with_seed (42);
  guint pool = 65536;
  char (*addrs)[64] = g_malloc (pool * sizeof *addrs);
  gsize *lens = g_malloc (pool * sizeof *lens);
  for (guint i = 0; i < pool; i++)
    {
      guint k = (guint) g_rand_int_range (rand, 0, (gint32) n);
      /* Keep the account's domain: user i lives in example(i % 10). */
      make (addrs[i], sizeof addrs[i], k, n);
      lens[i] = strlen (addrs[i]);
    }
  g_rand_free (rand);
  double rates[RUNS], cpu_rates[RUNS];
  for (int r = -1; r < RUNS; r++)
    {
      gint64 t0 = g_get_monotonic_time ();
      double c0 = cpu_now ();
      for (guint i = 0; i < PER_RUN; i++)
        {
          MhResolveResult *out = NULL;
          GError *error = NULL;
          guint k = i & (pool - 1);
          if (!mh_resolver_resolve (res, addrs[k], (gssize) lens[k], NULL,
                                    FALSE, flags, &out, &error))
            die (addrs[k], error);
          if (mh_resolve_result_get_accepted (out) != expect_accept)
            die (addrs[k], NULL);
          mh_resolve_result_unref (out);
        }
      gint64 dt = g_get_monotonic_time () - t0;
      double dc = cpu_now () - c0;
      if (r >= 0)
        {
          rates[r] = PER_RUN / (dt / 1e6);
          cpu_rates[r] = PER_RUN / dc;
        }
    }
  g_free (addrs);
  g_free (lens);
  Rate out = { median (rates, RUNS), median (cpu_rates, RUNS) };
  return out;
}

/* Wall time of `argv < input > /dev/null`, median of RUNS. */
static double
wall (char **argv, const char *input)
{
  double t[RUNS];
  for (int r = 0; r < RUNS; r++)
    {
      g_autofree char *cmd = NULL;
      g_autofree char *joined = g_strjoinv ("' '", argv);
      cmd = g_strdup_printf ("'%s' < '%s' > /dev/null", joined, input);
      gint64 t0 = g_get_monotonic_time ();
      int status = system (cmd);
      t[r] = (g_get_monotonic_time () - t0) / 1e6;
      if (status != 0)
        {
          fprintf (stderr, "bench-resolve: '%s' failed (%d)\n", cmd, status);
          return -1;
        }
    }
  return median (t, RUNS);
}

static void
rmtree (const char *path)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", path);
  if (system (cmd) != 0)
    fprintf (stderr, "bench-resolve: could not remove %s\n", path);
}

int
main (int argc, char **argv)
{
  guint n_accounts = argc > 1 ? (guint) atoi (argv[1]) : 100000;
  guint n_aliases = argc > 2 ? (guint) atoi (argv[2]) : 1000000;
  const char *mhctl = g_getenv ("MH_MHCTL");
  GError *error = NULL;
  char *tmp = g_dir_make_tmp ("mh-bench-resolve-XXXXXX", &error);
  if (tmp == NULL)
    die ("mkdtemp", error);
  g_autofree char *data = g_build_filename (tmp, "data", NULL);
  MhDirectory *dir = mh_directory_open (data, &error);
  if (dir == NULL)
    die ("open", error);
  for (guint d = 0; d < DOMAINS; d++)
    {
      char name[32];
      g_snprintf (name, sizeof name, "example%u.org", d);
      if (!mh_directory_domain_add (dir, name, &error))
        die ("domain add", error);
    }

  /* Accounts: one import transaction. */
  gint64 t0 = g_get_monotonic_time ();
  MhDirectoryImport *imp = mh_directory_import_new (dir);
  for (guint i = 0; i < n_accounts; i++)
    {
      char addr[64];
      make_account (addr, sizeof addr, i, n_accounts);
      if (!mh_directory_import_add_account (imp, i + 1, addr, NULL, -1,
                                            &error))
        die ("import add", error);
    }
  if (!mh_directory_import_commit (imp, MH_DIRECTORY_IMPORT_NONE, NULL,
                                   &error))
    die ("import commit", error);
  mh_directory_import_unref (imp);
  double fill_accounts = (g_get_monotonic_time () - t0) / 1e6;

  /* Aliases: alias i -> account (i * 7919) % n, one transaction; the
   * same list as a Postfix map source. */
  g_autofree char *map = g_build_filename (tmp, "aliases", NULL);
  FILE *mf = fopen (map, "w");
  if (mf == NULL)
    die ("aliases file", NULL);
  char **src = g_new0 (char *, n_aliases + 1);
  char **dst = g_new0 (char *, n_aliases + 1);
  for (guint i = 0; i < n_aliases; i++)
    {
      guint acc = (guint) (((guint64) i * 7919) % n_accounts);
      src[i] = g_strdup_printf ("alias%07u@example%u.org", i, i % DOMAINS);
      dst[i] = g_strdup_printf ("user%06u@example%u.org", acc,
                                acc % DOMAINS);
      fprintf (mf, "%s %s\n", src[i], dst[i]);
    }
  fclose (mf);
  t0 = g_get_monotonic_time ();
  guint added = 0;
  if (!mh_directory_alias_import (dir, (const char *const *) src,
                                  (const char *const *) dst, &added, &error))
    die ("alias import", error);
  double fill_aliases = (g_get_monotonic_time () - t0) / 1e6;
  g_strfreev (src);
  g_strfreev (dst);

  MhResolver *res = mh_resolver_new (dir, NULL);
  Rate r_acc = rate (res, make_account, n_accounts, 0, TRUE);
  Rate r_alias = rate (res, make_alias, n_aliases, 0, TRUE);
  Rate r_sub = rate (res, make_sub, n_accounts, 0, TRUE);
  Rate r_unknown = rate (res, make_unknown, n_accounts, 0, FALSE);
  Rate r_trace = rate (res, make_account, n_accounts,
                         MH_RESOLVE_FLAGS_TRACE, TRUE);
  mh_resolver_unref (res);

  printf ("resolve benchmark: %u accounts, %u aliases in %d domains; "
          "in-process, warm, median of %d runs of %d\n", n_accounts, added,
          DOMAINS, RUNS, PER_RUN);
  printf ("  fill: accounts %.2f s, aliases %.2f s (one transaction each)\n",
          fill_accounts, fill_aliases);
  printf ("                            wall-clock /s      per CPU second\n");
  printf ("  plain accounts:           %10.0f /s   %10.0f /s\n", r_acc.wall,
          r_acc.cpu);
  printf ("  aliases (1 target):       %10.0f /s   %10.0f /s\n",
          r_alias.wall, r_alias.cpu);
  printf ("  sub-addresses (user+tag): %10.0f /s   %10.0f /s\n", r_sub.wall,
          r_sub.cpu);
  printf ("  unknown (550 5.1.1):      %10.0f /s   %10.0f /s\n",
          r_unknown.wall, r_unknown.cpu);
  printf ("  plain accounts, traced:   %10.0f /s   %10.0f /s\n",
          r_trace.wall, r_trace.cpu);

  /* Whole processes over one list of alias addresses. */
  g_autofree char *input = g_build_filename (tmp, "queries", NULL);
  FILE *qf = fopen (input, "w");
  GRand *rand = g_rand_new_with_seed (7);
  for (guint i = 0; i < QUERIES; i++)
    {
      guint k = (guint) g_rand_int_range (rand, 0, (gint32) n_aliases);
      fprintf (qf, "alias%07u@example%u.org\n", k, k % DOMAINS);
    }
  g_rand_free (rand);
  fclose (qf);
  mh_directory_unref (dir);

  const char *postmap = g_file_test ("/usr/sbin/postmap", G_FILE_TEST_IS_EXECUTABLE)
                        ? "/usr/sbin/postmap" : NULL;
  double t_mhctl = -1, t_postmap = -1, t_build = -1;
  if (mhctl != NULL)
    {
      g_autofree char *dd = g_strdup_printf ("--data-dir=%s", data);
      char *a[] = { (char *) mhctl, dd, "resolve", "--batch", NULL };
      t_mhctl = wall (a, input);
    }
  if (postmap != NULL)
    {
      g_autofree char *lmdb = g_strdup_printf ("lmdb:%s", map);
      g_autofree char *cmd = g_strdup_printf ("'%s' '%s' 2>&1", postmap,
                                              lmdb);
      t0 = g_get_monotonic_time ();
      if (system (cmd) == 0)
        {
          t_build = (g_get_monotonic_time () - t0) / 1e6;
          char *a[] = { (char *) postmap, "-q", "-", lmdb, NULL };
          t_postmap = wall (a, input);
        }
      else
        printf ("  (postmap lmdb: failed: is postfix-lmdb installed?)\n");
    }
  printf ("whole process, %d alias look-ups from one input file, wall time, "
          "median of %d runs:\n", QUERIES, RUNS);
  if (t_postmap >= 0)
    printf ("  postmap -q - lmdb:FILE:    %8.3f s  (%.0f /s; map built in "
            "%.1f s)\n", t_postmap, QUERIES / t_postmap, t_build);
  else
    printf ("  postmap -q - lmdb:FILE:    skipped (apt-get install postfix "
            "postfix-lmdb)\n");
  if (t_mhctl >= 0)
    printf ("  mhctl resolve --batch:     %8.3f s  (%.0f /s; full "
            "resolution: alias, then its account)\n", t_mhctl,
            QUERIES / t_mhctl);
  else
    printf ("  mhctl resolve --batch:     skipped (set MH_MHCTL)\n");
  if (t_postmap > 0 && t_mhctl > 0)
    printf ("  ratio mhctl / postmap:     %8.2f\n", t_mhctl / t_postmap);

  rmtree (tmp);
  g_free (tmp);
  return 0;
}
