/* Directory benchmark: account look-ups per second at 100,000 accounts
 * (in-process, warm, median of runs) and authenticate calls per second.
 * Prints figures; never fails on speed.
 *
 *   meson test -C build --suite bench bench-directory --verbose
 *   build/tests/bench/bench-directory [N_ACCOUNTS]
 */
#include <mailhost/mailhost.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <glib/gstdio.h>

#define RUNS 5
#define LOOKUPS_PER_RUN 200000
#define AUTH_PER_RUN 10

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

/* Process CPU time in µs: on a shared, loaded machine rates per CPU
 * second say more about our code than wall-clock ones. */
static gint64
cpu_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (gint64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
die (const char *what, GError *error)
{
  fprintf (stderr, "bench-directory: %s: %s\n", what,
           error ? error->message : "failed");
  exit (1);
}

/* Authenticate calls per second against accounts whose hash is @scheme. */
static double
auth_rate (MhDirectory *dir, const char *user, const char *password,
           int per_run)
{
  double rates[RUNS];
  for (int r = 0; r < RUNS; r++)
    {
      gint64 t0 = g_get_monotonic_time ();
      for (int i = 0; i < per_run; i++)
        {
          GError *error = NULL;
          if (!mh_directory_authenticate (dir, user, password, "imap",
                                          &error))
            die ("authenticate", error);
        }
      gint64 dt = g_get_monotonic_time () - t0;
      rates[r] = per_run / (dt / 1e6);
    }
  return median (rates, RUNS);
}

int
main (int argc, char **argv)
{
  guint n_accounts = argc > 1 ? (guint) atoi (argv[1]) : 100000;
  GError *error = NULL;
  char *tmp = g_dir_make_tmp ("mh-bench-dir-XXXXXX", &error);
  if (tmp == NULL)
    die ("mkdtemp", error);
  MhDirectory *dir = mh_directory_open (tmp, &error);
  if (dir == NULL || !mh_directory_domain_add (dir, "example.org", &error))
    die ("open", error);

  /* Fill: one import transaction, one precomputed hash ("correct horse",
   * {SSHA256}) shared by every account; one yescrypt account below. */
  const char *ssha = "{SSHA256}gl6Q6kWYQ8Ct2KbZWkgcN1OGVcajug6hLLfy7ttm3Xxb4Obk";
  gint64 t0 = g_get_monotonic_time ();
  MhDirectoryImport *imp = mh_directory_import_new (dir);
  for (guint i = 0; i < n_accounts; i++)
    {
      char addr[64];
      g_snprintf (addr, sizeof addr, "user%06u@example.org", i);
      if (!mh_directory_import_add_account (imp, i + 1, addr, ssha, -1,
                                            &error))
        die ("import add", error);
    }
  guint added = 0;
  if (!mh_directory_import_commit (imp, MH_DIRECTORY_IMPORT_NONE, &added,
                                   &error))
    die ("import commit", error);
  mh_directory_import_unref (imp);
  double fill_s = (g_get_monotonic_time () - t0) / 1e6;
  if (!mh_directory_account_add (dir, "yes@example.org", "correct horse",
                                 &error))
    die ("account add", error);

  /* Look-ups: random accounts, fixed seed; one warm-up run first. */
  GRand *rand = g_rand_new_with_seed (42);
  double rates[RUNS], cpu_rates[RUNS];
  for (int r = -1; r < RUNS; r++)
    {
      gint64 s = g_get_monotonic_time ();
      gint64 c = cpu_us ();
      for (int i = 0; i < LOOKUPS_PER_RUN; i++)
        {
          char addr[64];
          g_snprintf (addr, sizeof addr, "user%06u@example.org",
                      g_rand_int_range (rand, 0, (gint32) n_accounts));
          MhAccountInfo *info = mh_directory_account_lookup (dir, addr,
                                                             &error);
          if (info == NULL)
            die ("lookup", error);
          mh_account_info_unref (info);
        }
      gint64 dt = g_get_monotonic_time () - s;
      gint64 dc = cpu_us () - c;
      if (r >= 0)
        {
          rates[r] = LOOKUPS_PER_RUN / (dt / 1e6);
          cpu_rates[r] = LOOKUPS_PER_RUN / (dc / 1e6);
        }
    }
  double lookup_rate = median (rates, RUNS);
  double lookup_cpu_rate = median (cpu_rates, RUNS);

  /* Misses cost the same path up to the final get. */
  gint64 s = g_get_monotonic_time ();
  for (int i = 0; i < LOOKUPS_PER_RUN; i++)
    {
      MhAccountInfo *info = mh_directory_account_lookup (
          dir, "nobody@example.org", NULL);
      if (info != NULL)
        die ("miss", NULL);
    }
  double miss_rate = LOOKUPS_PER_RUN / ((g_get_monotonic_time () - s) / 1e6);

  double auth_yes = auth_rate (dir, "yes@example.org", "correct horse",
                               AUTH_PER_RUN);
  double auth_ssha = auth_rate (dir, "user000001@example.org",
                                "correct horse", 20000);

  printf ("directory benchmark (%u accounts, median of %d runs)\n",
          n_accounts, RUNS);
  printf ("  fill by import (one txn):     %.2f s (%u accounts)\n", fill_s,
          added);
  printf ("  account look-ups, hits:       %.0f /s (%.0f per CPU second)\n",
          lookup_rate, lookup_cpu_rate);
  printf ("  account look-ups, misses:     %.0f /s\n", miss_rate);
  printf ("  authenticate, yescrypt:       %.1f /s\n", auth_yes);
  printf ("  authenticate, {SSHA256}:      %.0f /s (directory overhead)\n",
          auth_ssha);

  g_rand_free (rand);
  mh_directory_unref (dir);
  char *mdb = g_build_filename (tmp, "directory.mdb", NULL);
  char *lock = g_strconcat (mdb, "-lock", NULL);
  g_remove (mdb);
  g_remove (lock);
  g_rmdir (tmp);
  g_free (mdb);
  g_free (lock);
  g_free (tmp);
  return 0;
}
