/* The authentication failure throttle (issue 3): growth, cap, forgetting,
 * bounded memory, networks, threads, and that a stranger cannot slow the
 * real user down. */
#include "mh-test.h"
#include "auth/auth-private.h"

#include <string.h>

#define SEC ((gint64) G_USEC_PER_SEC)
#define T0 (1000 * SEC) /* an arbitrary monotonic start */

static MhAuthThrottle *
new_default (void)
{
  MhAuthThrottleSettings s;
  mh_auth_throttle_settings_init (&s);
  return mh_auth_throttle_new (&s);
}

static void
fail_n (MhAuthThrottle *t, const char *ip, const char *acct, guint n,
        gint64 now)
{
  for (guint i = 0; i < n; i++)
    mh_auth_throttle_record (t, ip, acct, FALSE, now);
}

static void
test_defaults (void **state)
{
  MhAuthThrottleSettings s;
  mh_auth_throttle_settings_init (&s);
  assert_int_equal (s.version, 1);
  assert_int_equal (s.fails_before_delay, MH_LIMIT_AUTH_FAILS_FREE);
  assert_int_equal (s.base_delay_ms, MH_LIMIT_AUTH_DELAY_BASE_MS);
  assert_int_equal (s.max_delay_ms, MH_LIMIT_AUTH_DELAY_MAX_MS);
  assert_int_equal (s.forget_after_s, MH_LIMIT_AUTH_FORGET_S);
  assert_int_equal (s.max_tracked, MH_LIMIT_AUTH_TRACKED);
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_AUTH_THROTTLE));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_AUTH_THROTTLE_SETTINGS));
  g_autoptr (MhAuthThrottle) t = mh_auth_throttle_new (NULL);
  assert_int_equal (mh_auth_throttle_get_tracked (t), 0);
  mh_auth_throttle_unref (NULL);
}

static void
test_growth_and_cap (void **state)
{
  g_autoptr (MhAuthThrottle) t = new_default ();
  const guint expect[] = { 0, 0, 0, 500, 1000, 2000, 4000, 8000, 15000,
                           15000, 15000 };
  for (guint i = 0; i < G_N_ELEMENTS (expect); i++)
    {
      assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1",
                                                   "bob@example.org", T0),
                        expect[i]);
      mh_auth_throttle_record (t, "192.0.2.1", "bob@example.org", FALSE, T0);
    }
  /* Far past any shift width: still the cap, no overflow. */
  fail_n (t, "192.0.2.1", "bob@example.org", 100, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", NULL, T0),
                    15000);
  /* Queries change nothing and create nothing. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "198.51.100.7",
                                               "x@example.org", T0),
                    0);
  assert_int_equal (mh_auth_throttle_get_tracked (t), 2);
}

static void
test_settings_taken_literally (void **state)
{
  MhAuthThrottleSettings s;
  mh_auth_throttle_settings_init (&s);
  s.fails_before_delay = 0;
  s.base_delay_ms = 100;
  s.max_delay_ms = 250;
  g_autoptr (MhAuthThrottle) t = mh_auth_throttle_new (&s);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", NULL, T0), 0);
  mh_auth_throttle_record (t, "192.0.2.1", NULL, FALSE, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", NULL, T0),
                    100);
  mh_auth_throttle_record (t, "192.0.2.1", NULL, FALSE, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", NULL, T0),
                    200);
  mh_auth_throttle_record (t, "192.0.2.1", NULL, FALSE, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", NULL, T0),
                    250);

  /* max_delay 0 turns delays off. */
  s.max_delay_ms = 0;
  g_autoptr (MhAuthThrottle) off = mh_auth_throttle_new (&s);
  fail_n (off, "192.0.2.1", "bob", 50, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (off, "192.0.2.1", "bob", T0),
                    0);
}

static void
test_forgetting (void **state)
{
  MhAuthThrottleSettings s;
  mh_auth_throttle_settings_init (&s);
  s.forget_after_s = 60;
  g_autoptr (MhAuthThrottle) t = mh_auth_throttle_new (&s);

  fail_n (t, "192.0.2.1", "bob", 5, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "bob", T0),
                    2000);
  /* Still remembered at exactly forget_after... */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "bob",
                                               T0 + 60 * SEC),
                    2000);
  /* ...and gone one microsecond later. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "bob",
                                               T0 + 60 * SEC + 1),
                    0);
  /* A failure after that starts from one again, not from six. */
  mh_auth_throttle_record (t, "192.0.2.1", "bob", FALSE, T0 + 61 * SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "bob",
                                               T0 + 61 * SEC),
                    0);
  fail_n (t, "192.0.2.1", "bob", 2, T0 + 61 * SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "bob",
                                               T0 + 61 * SEC),
                    500);

  /* The window counts from the last failure: slow guessing is still
   * counted as long as the gaps stay under forget_after. */
  g_autoptr (MhAuthThrottle) slow = mh_auth_throttle_new (&s);
  for (int i = 0; i < 5; i++)
    mh_auth_throttle_record (slow, "192.0.2.9", NULL, FALSE,
                             T0 + i * 50 * SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (slow, "192.0.2.9", NULL,
                                               T0 + 250 * SEC),
                    2000);

  /* Expired entries are dropped from memory as records come in. */
  assert_int_equal (mh_auth_throttle_get_tracked (slow), 1);
  mh_auth_throttle_record (slow, "192.0.2.10", NULL, FALSE, T0 + 1000 * SEC);
  assert_int_equal (mh_auth_throttle_get_tracked (slow), 1);
}

static void
test_eviction_bound (void **state)
{
  MhAuthThrottleSettings s;
  mh_auth_throttle_settings_init (&s);
  s.max_tracked = 100;
  g_autoptr (MhAuthThrottle) t = mh_auth_throttle_new (&s);

  /* The first address is a known offender. */
  fail_n (t, "203.0.113.1", NULL, 10, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.1", NULL, T0),
                    15000);

  for (guint i = 0; i < 5000; i++)
    {
      g_autofree char *ip = g_strdup_printf ("10.%u.%u.%u", i >> 16,
                                             (i >> 8) & 0xff, i & 0xff);
      g_autofree char *acct = g_strdup_printf ("user%u@example.org", i);
      mh_auth_throttle_record (t, ip, acct, FALSE, T0 + i);
      assert_true (mh_auth_throttle_get_tracked (t) <= 100);
    }
  assert_int_equal (mh_auth_throttle_get_tracked (t), 100);
  /* The oldest went first; the newest are still there. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.1", NULL,
                                               T0 + 5000),
                    0);
  fail_n (t, "10.0.19.135", NULL, 2, T0 + 5000); /* i = 4999 */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "10.0.19.135", NULL,
                                               T0 + 5000),
                    500);

  /* Even a table of one entry works (each touch evicts the other). */
  s.max_tracked = 1;
  g_autoptr (MhAuthThrottle) one = mh_auth_throttle_new (&s);
  fail_n (one, "192.0.2.1", "bob", 10, T0);
  assert_int_equal (mh_auth_throttle_get_tracked (one), 1);
  /* the account entry, touched last, evicted the address entry */
  assert_int_equal (mh_auth_throttle_delay_ms (one, "192.0.2.1", NULL, T0),
                    0);
}

/* The property the design is built for: strangers' failures never slow
 * the real user down on a network where she recently logged in. */
static void
test_stranger_cannot_lock_out_user (void **state)
{
  g_autoptr (MhAuthThrottle) t = new_default ();
  const char *home = "198.51.100.20";
  const char *victim = "alice@example.org";

  mh_auth_throttle_record (t, home, victim, TRUE, T0);

  /* 1. One attacker hammering her account from his own address. */
  fail_n (t, "203.0.113.66", victim, 200, T0 + SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.66", victim,
                                               T0 + SEC),
                    15000);
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, victim, T0 + SEC), 0);

  /* 2. A botnet: 500 addresses, one guess each. Each stays under the
   * per-IP threshold, yet the account counter catches the pattern for
   * every unknown network... */
  for (guint i = 0; i < 500; i++)
    {
      g_autofree char *ip = g_strdup_printf ("2001:db8:%x::1", i);
      mh_auth_throttle_record (t, ip, victim, FALSE, T0 + 2 * SEC);
    }
  assert_int_equal (mh_auth_throttle_delay_ms (t, "2001:db8:ffff::1", victim,
                                               T0 + 2 * SEC),
                    15000);
  /* ...while Alice at home still gets in at once. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, victim,
                                               T0 + 2 * SEC),
                    0);

  /* 3. A stranger behind Alice's NAT failing on other accounts makes her
   * network a bad IP, but not for her. */
  for (guint i = 0; i < 50; i++)
    {
      g_autofree char *other = g_strdup_printf ("u%u@example.org", i);
      mh_auth_throttle_record (t, home, other, FALSE, T0 + 3 * SEC);
    }
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, "carol@example.org",
                                               T0 + 3 * SEC),
                    15000);
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, victim,
                                               T0 + 3 * SEC),
                    0);

  /* 4. From a new network during the attack she waits at most the cap,
   * once: her success makes that network known good. */
  const char *phone = "192.0.2.200";
  assert_int_equal (mh_auth_throttle_delay_ms (t, phone, victim,
                                               T0 + 4 * SEC),
                    15000);
  mh_auth_throttle_record (t, phone, victim, TRUE, T0 + 4 * SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (t, phone, victim,
                                               T0 + 5 * SEC),
                    0);
  /* The attack's counters did not reset for anyone else. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.99", victim,
                                               T0 + 5 * SEC),
                    15000);
}

static void
test_success_resets_no_attack_counter (void **state)
{
  g_autoptr (MhAuthThrottle) t = new_default ();
  /* Mallory guesses at Bob, then logs into her own account from the same
   * address, hoping to wipe her record. */
  fail_n (t, "203.0.113.5", "bob@example.org", 6, T0);
  mh_auth_throttle_record (t, "203.0.113.5", "mallory@example.org", TRUE,
                           T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.5",
                                               "bob@example.org", T0),
                    4000);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.5", NULL, T0),
                    4000);
  /* Her own account from her own network is not slowed. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "203.0.113.5",
                                               "mallory@example.org", T0),
                    0);
}

static void
test_known_good_network_failures (void **state)
{
  g_autoptr (MhAuthThrottle) t = new_default ();
  const char *home = "198.51.100.20";

  mh_auth_throttle_record (t, home, "alice", TRUE, T0);
  /* Guessing from her own network (a NAT neighbour) is throttled too. */
  fail_n (t, home, "alice", 4, T0 + SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, "alice", T0 + SEC),
                    1000);
  /* Those failures did not count against her other networks. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "alice",
                                               T0 + SEC),
                    0);
  /* Her success there clears that pair. */
  mh_auth_throttle_record (t, home, "alice", TRUE, T0 + 2 * SEC);
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, "alice",
                                               T0 + 2 * SEC),
                    0);

  /* Known-good networks are remembered for a limited time: up to the
   * last microsecond she is exempt from an attack on her account... */
  gint64 later = T0 + 2 * SEC + (gint64) MH_LIMIT_AUTH_GOOD_REMEMBER_S * SEC;
  fail_n (t, "203.0.113.1", "alice", 6, later);
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, "alice", later), 0);
  /* ...and then her network is just another one. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, home, "alice", later + 1),
                    4000);
}

static void
test_known_good_set_is_bounded (void **state)
{
  g_autoptr (MhAuthThrottle) t = new_default ();
  /* Successes from MH_LIMIT_AUTH_GOOD_NETS + 1 networks: the least
   * recently successful is dropped. */
  for (guint i = 0; i <= MH_LIMIT_AUTH_GOOD_NETS; i++)
    {
      g_autofree char *ip = g_strdup_printf ("192.0.2.%u", i + 1);
      mh_auth_throttle_record (t, ip, "alice", TRUE, T0 + i * SEC);
    }
  fail_n (t, "203.0.113.1", "alice", 6, T0 + 10 * SEC);
  gint64 now = T0 + 10 * SEC;
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.1", "alice", now),
                    4000);
  for (guint i = 1; i <= MH_LIMIT_AUTH_GOOD_NETS; i++)
    {
      g_autofree char *ip = g_strdup_printf ("192.0.2.%u", i + 1);
      assert_int_equal (mh_auth_throttle_delay_ms (t, ip, "alice", now), 0);
    }
}

static void
test_networks (void **state)
{
  g_autoptr (MhAuthThrottle) t = new_default ();

  /* IPv6: one /64 is one client. */
  fail_n (t, "2001:db8:1:2::1", NULL, 2, T0);
  fail_n (t, "2001:db8:1:2:ffff:ffff:ffff:ffff", NULL, 2, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "2001:db8:1:2::99", NULL,
                                               T0),
                    1000);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "2001:db8:1:3::1", NULL,
                                               T0),
                    0);

  /* IPv4: per address; the mapped form is the same client. */
  fail_n (t, "192.0.2.1", NULL, 3, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "::ffff:192.0.2.1", NULL,
                                               T0),
                    500);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.2", NULL, T0), 0);

  /* Non-IP peers (unix sockets, NULL) share one bucket. */
  fail_n (t, NULL, NULL, 2, T0);
  fail_n (t, "unix:/run/mailhost.sock", NULL, 1, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "", NULL, T0), 500);

  /* Account names are compared without ASCII case. */
  fail_n (t, "192.0.2.50", "Bob@Example.ORG", 1, T0);
  fail_n (t, "192.0.2.51", "bob@example.org", 1, T0);
  fail_n (t, "192.0.2.52", "BOB@EXAMPLE.ORG", 1, T0);
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.53",
                                               "bob@EXAMPLE.org", T0),
                    500);

  guint8 net[16];
  assert_true (mh_auth__peer_network ("2001:db8::1", net));
  static const guint8 v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
  assert_memory_equal (net, v6, 16);
  assert_true (mh_auth__peer_network ("192.0.2.1", net));
  static const guint8 v4[16] = { [10] = 0xff, [11] = 0xff, [12] = 192,
                                 [14] = 2, [15] = 1 };
  assert_memory_equal (net, v4, 16);
  assert_false (mh_auth__peer_network ("192.0.2.1:25", net));
  assert_false (mh_auth__peer_network ("example.org", net));
  assert_false (mh_auth__peer_network (NULL, net));
}

typedef struct
{
  MhAuthThrottle *t;
  guint id;
} Worker;

static gpointer
worker (gpointer p)
{
  Worker *w = p;
  for (guint i = 0; i < 1000; i++)
    {
      mh_auth_throttle_record (w->t, "192.0.2.1", "shared", FALSE, T0);
      g_autofree char *ip = g_strdup_printf ("10.%u.%u.%u", w->id, i >> 8,
                                             i & 0xff);
      mh_auth_throttle_record (w->t, ip, NULL, i % 2, T0);
      (void) mh_auth_throttle_delay_ms (w->t, ip, "shared", T0);
    }
  return NULL;
}

static void
test_threads (void **state)
{
  MhAuthThrottleSettings s;
  mh_auth_throttle_settings_init (&s);
  s.fails_before_delay = 4000; /* exactly 4 x 1000 shared failures */
  s.max_tracked = 1000;
  g_autoptr (MhAuthThrottle) t = mh_auth_throttle_new (&s);

  Worker w[4];
  GThread *th[4];
  for (guint i = 0; i < 4; i++)
    {
      w[i] = (Worker){ t, i };
      th[i] = g_thread_new ("throttle", worker, &w[i]);
    }
  for (guint i = 0; i < 4; i++)
    g_thread_join (th[i]);

  /* No failure was lost between threads. */
  assert_int_equal (mh_auth_throttle_delay_ms (t, "192.0.2.200", "shared",
                                               T0),
                    500);
  assert_true (mh_auth_throttle_get_tracked (t) <= 1000);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),
    cmocka_unit_test (test_growth_and_cap),
    cmocka_unit_test (test_settings_taken_literally),
    cmocka_unit_test (test_forgetting),
    cmocka_unit_test (test_eviction_bound),
    cmocka_unit_test (test_stranger_cannot_lock_out_user),
    cmocka_unit_test (test_success_resets_no_attack_counter),
    cmocka_unit_test (test_known_good_network_failures),
    cmocka_unit_test (test_known_good_set_is_bounded),
    cmocka_unit_test (test_networks),
    cmocka_unit_test (test_threads),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
