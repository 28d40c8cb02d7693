/* Benchmark: SASL PLAIN decoding and the failure throttle at its memory
 * bound. Prints figures; never fails on speed. Fixed inputs, no
 * randomness. */
#include "mailhost/mailhost.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static gsize
rss_kib (void)
{
  g_autofree char *statm = NULL;
  if (!g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    return 0;
  unsigned long size = 0, rss = 0;
  if (sscanf (statm, "%lu %lu", &size, &rss) != 2)
    return 0;
  return rss * (gsize) sysconf (_SC_PAGESIZE) / 1024;
}

static void
bench_sasl (void)
{
  const char *ir = "AGJvYkBleGFtcGxlLm9yZwBjb3JyZWN0IGhvcnNlIGJhdHRlcnk=";
  const guint n = 200000;
  gint64 t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      MhSaslServer *s = mh_sasl_server_new ("PLAIN", NULL, NULL);
      if (mh_sasl_server_start (s, ir, strlen (ir), NULL)
          != MH_SASL_STATUS_DONE)
        g_error ("PLAIN exchange failed");
      mh_sasl_server_unref (s);
    }
  double secs = (g_get_monotonic_time () - t0) / 1e6;
  printf ("sasl: %u PLAIN exchanges in %.3f s = %.0f/s\n", n, secs,
          n / secs);
}

typedef struct
{
  MhAuthThrottle *t;
  guint id;
  guint ops;
} Worker;

static gpointer
worker (gpointer p)
{
  Worker *w = p;
  char ip[64], acct[64];
  for (guint i = 0; i < w->ops; i++)
    {
      g_snprintf (ip, sizeof ip, "10.%u.%u.%u", w->id, (i >> 8) & 0xff,
                  i & 0xff);
      g_snprintf (acct, sizeof acct, "user%u@example.org", i % 5000);
      (void) mh_auth_throttle_delay_ms (w->t, ip, acct, 1);
      mh_auth_throttle_record (w->t, ip, acct, (i % 7) == 0, 1);
    }
  return NULL;
}

static void
bench_throttle (void)
{
  MhAuthThrottle *t = mh_auth_throttle_new (NULL);
  gsize before = rss_kib ();

  /* Fill to the bound (MH_LIMIT_AUTH_TRACKED) with worst-case entries:
   * accounts with long names and a full known-good set. */
  char ip[64], acct[300];
  memset (acct, 'a', 240);
  gint64 t0 = g_get_monotonic_time ();
  for (guint i = 0; i < MH_LIMIT_AUTH_TRACKED; i++)
    {
      g_snprintf (acct + 240, 40, "%u@example.org", i);
      for (guint k = 0; k < MH_LIMIT_AUTH_GOOD_NETS; k++)
        {
          g_snprintf (ip, sizeof ip, "2001:db8:%x:%x::1", i, k);
          mh_auth_throttle_record (t, ip, acct, TRUE, 1);
        }
    }
  double fill = (g_get_monotonic_time () - t0) / 1e6;
  gsize after = rss_kib ();
  printf ("throttle: %u tracked entries, %.3f s to fill, ~%zu KiB "
          "(%.0f bytes/entry worst case)\n",
          mh_auth_throttle_get_tracked (t), fill, after - before,
          (after - before) * 1024.0 / MH_LIMIT_AUTH_TRACKED);

  /* 4 threads of delay + record pairs on a full table. */
  const guint per = 250000;
  Worker w[4];
  GThread *th[4];
  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < 4; i++)
    {
      w[i] = (Worker){ t, i, per };
      th[i] = g_thread_new ("bench", worker, &w[i]);
    }
  for (guint i = 0; i < 4; i++)
    g_thread_join (th[i]);
  double secs = (g_get_monotonic_time () - t0) / 1e6;
  printf ("throttle: %u delay+record pairs on 4 threads in %.3f s = "
          "%.0f/s (table stays at %u)\n",
          4 * per, secs, 4 * per / secs, mh_auth_throttle_get_tracked (t));
  mh_auth_throttle_unref (t);
}

int
main (void)
{
  bench_sasl ();
  bench_throttle ();
  return 0;
}
