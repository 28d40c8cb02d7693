/* lib/auth failure throttle: a growing delay per client network and per
 * account, which never locks the real user out.
 *
 * Design notes
 * - What we count. Three kinds of counters, all "failures since the last
 *   one more than forget_after ago" (a step reset, not a decay: simple to
 *   explain to an admin reading the config):
 *     1. per network: IPv4 address, or IPv6 /64 (one customer usually
 *        gets a whole /64, so per-address counting would be a no-op);
 *        every failure from it counts, whatever account it tried;
 *     2. per account, from networks NOT known good for that account: this
 *        catches a botnet spreading guesses at one account over many IPs;
 *     3. per (account, known-good network): failures from a network where
 *        this account logged in recently (a typo, or someone sharing the
 *        user's NAT).
 *   delay = base_delay * 2^(failures - fails_before_delay), capped at
 *   max_delay; 0 while failures < fails_before_delay.
 * - Which counter applies. An attempt from a network that is known good
 *   for the account is delayed by counter 3 only; any other attempt by
 *   max(counter 1, counter 2). So a stranger, however many failures he
 *   piles up on the victim's name or from a shared IP, never delays the
 *   victim at home or on the phone network where she last logged in:
 *   those attempts look only at counter 3, which only failures from that
 *   very network raise. From a brand-new network the real user waits at
 *   most max_delay (15 s by default) once, while an attack is running;
 *   that is a delay, not a lock-out, and her success makes the network
 *   known good.
 *   We chose a known-good set over keying the account counter by
 *   (account, network) alone: the pair key would let a botnet of N
 *   addresses make N * fails_before_delay free guesses per account.
 * - A success only marks the network known good for the account (and
 *   zeroes counter 3 there). It never resets counters 1 or 2: otherwise
 *   an attacker holding any account would log into it between guesses at
 *   others from the same IP, and the real user's own logins would keep
 *   the distributed attacker's delay at zero.
 * - Known-good networks: up to MH_LIMIT_AUTH_GOOD_NETS per account, each
 *   kept MH_LIMIT_AUTH_GOOD_REMEMBER_S after its last success; a new one
 *   replaces the least recently successful.
 * - Memory: one hash table of entries ("i:<net hex>" or "a:<account>"),
 *   plus an LRU list (head = most recently recorded). Inserting past
 *   max_tracked evicts the tail, the entry least recently recorded; tails
 *   whose counters and good networks have all expired are dropped on
 *   every record, so the table tracks only live state in steady use.
 *   Evicting an attacker's own IP entry resets his delay, but filling
 *   65536 slots costs him 65536 failures made under his growing delay.
 *   Worst case (255-byte account names, full good sets) about 600 bytes
 *   an entry: ~37 MB at 65536 (tests/bench/bench-auth.c measures it).
 * - Account names are keyed ASCII-lower-cased and cut at 255 bytes, so
 *   "Bob@X" and "bob@x" share a counter (the directory folds case too).
 *   Peers that are not IP addresses (unix sockets) share one bucket.
 * - Lookups (delay_ms) never create entries; only record does. A
 *   GMutex guards everything: each call is a few hash look-ups, far
 *   cheaper than the password hash the caller is about to compute.
 * - No clock: callers pass monotonic microseconds.
 */
#include "auth-private.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

typedef struct
{
  guint8 net[16];
  gint64 last_success;
  gint64 last_fail;
  guint fails;
} GoodNet;

typedef struct
{
  char *key;
  GList link; /* in throttle->lru; link.data = this entry */
  guint fails;
  gint64 last_fail;
  GoodNet *good; /* accounts only; MH_LIMIT_AUTH_GOOD_NETS slots */
  guint n_good;
} Entry;

struct _MhAuthThrottle
{
  gatomicrefcount ref;
  GMutex lock;
  MhAuthThrottleSettings set;
  gint64 forget_us;
  GHashTable *entries; /* key -> Entry*, owned */
  GQueue lru;
};

#define GOOD_REMEMBER_US ((gint64) MH_LIMIT_AUTH_GOOD_REMEMBER_S * G_USEC_PER_SEC)
#define ACCOUNT_KEY_MAX 255

/* ---- Settings --------------------------------------------------------- */

void
mh_auth_throttle_settings_init (MhAuthThrottleSettings *settings)
{
  g_return_if_fail (settings != NULL);
  *settings = (MhAuthThrottleSettings){
    .version = 1,
    .fails_before_delay = MH_LIMIT_AUTH_FAILS_FREE,
    .base_delay_ms = MH_LIMIT_AUTH_DELAY_BASE_MS,
    .max_delay_ms = MH_LIMIT_AUTH_DELAY_MAX_MS,
    .forget_after_s = MH_LIMIT_AUTH_FORGET_S,
    .max_tracked = MH_LIMIT_AUTH_TRACKED,
  };
}

MhAuthThrottleSettings *
mh_auth_throttle_settings_copy (const MhAuthThrottleSettings *settings)
{
  g_return_val_if_fail (settings != NULL, NULL);
  return g_memdup2 (settings, sizeof *settings);
}

void
mh_auth_throttle_settings_free (MhAuthThrottleSettings *settings)
{
  g_free (settings);
}

G_DEFINE_BOXED_TYPE (MhAuthThrottleSettings, mh_auth_throttle_settings,
                     mh_auth_throttle_settings_copy,
                     mh_auth_throttle_settings_free)

/* ---- Networks --------------------------------------------------------- */

gboolean
mh_auth__peer_network (const char *peer_ip, guint8 net_out[16])
{
  memset (net_out, 0, 16);
  if (peer_ip == NULL || *peer_ip == '\0')
    return FALSE;

  /* inet_pton, not GInetAddress: this runs on every attempt and need
   * not allocate a GObject. */
  guint8 b[16];
  if (inet_pton (AF_INET, peer_ip, b) == 1)
    {
      /* Stored as ::ffff:a.b.c.d so a v4 peer seen through a dual-stack
       * socket (mapped) and a plain v4 one share their counter. */
      net_out[10] = net_out[11] = 0xff;
      memcpy (net_out + 12, b, 4);
      return TRUE;
    }
  if (inet_pton (AF_INET6, peer_ip, b) != 1)
    return FALSE;

  static const guint8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
                                     0xff };
  if (memcmp (b, mapped, sizeof mapped) == 0)
    memcpy (net_out, b, 16); /* IPv4-mapped: the whole v4 address */
  else
    memcpy (net_out, b, 8);  /* IPv6: the /64 */
  return TRUE;
}

static char *
net_key (const guint8 net[16], gboolean is_ip)
{
  if (!is_ip)
    return g_strdup ("i:other");
  char *k = g_malloc (2 + 32 + 1);
  k[0] = 'i';
  k[1] = ':';
  for (int i = 0; i < 16; i++)
    g_snprintf (k + 2 + 2 * i, 3, "%02x", net[i]);
  return k;
}

static char *
account_key (const char *account)
{
  gsize len = strnlen (account, ACCOUNT_KEY_MAX);
  g_autofree char *lower = g_ascii_strdown (account, (gssize) len);
  return g_strconcat ("a:", lower, NULL);
}

/* ---- Entries ---------------------------------------------------------- */

static void
entry_free (gpointer p)
{
  Entry *e = p;
  g_free (e->key);
  g_free (e->good);
  g_free (e);
}

static guint
live_fails (MhAuthThrottle *t, guint fails, gint64 last_fail, gint64 now)
{
  return (fails == 0 || now - last_fail > t->forget_us) ? 0 : fails;
}

/* One more failure on top of the live count; saturates rather than wrap
 * (a wrap would hand a patient attacker a fresh budget). */
static guint
bump (MhAuthThrottle *t, guint fails, gint64 last_fail, gint64 now)
{
  guint live = live_fails (t, fails, last_fail, now);
  return live == G_MAXUINT ? live : live + 1;
}

static gboolean
good_live (const GoodNet *g, gint64 now)
{
  return now - g->last_success <= GOOD_REMEMBER_US;
}

static gboolean
entry_expired (MhAuthThrottle *t, Entry *e, gint64 now)
{
  if (live_fails (t, e->fails, e->last_fail, now) > 0)
    return FALSE;
  for (guint i = 0; i < e->n_good; i++)
    if (good_live (&e->good[i], now))
      return FALSE;
  return TRUE;
}

static void
entry_remove (MhAuthThrottle *t, Entry *e)
{
  g_queue_unlink (&t->lru, &e->link);
  g_hash_table_remove (t->entries, e->key); /* frees e */
}

/* Drops expired entries from the cold end. Amortised O(1): each entry is
 * dropped once. */
static void
prune (MhAuthThrottle *t, gint64 now)
{
  GList *l;
  while ((l = g_queue_peek_tail_link (&t->lru)) != NULL
         && entry_expired (t, l->data, now))
    entry_remove (t, l->data);
}

/* Finds or creates the entry for @key (taking ownership of it) and moves
 * it to the hot end. May evict the coldest entry, so pointers to other
 * entries obtained before this call are invalid after it. */
static Entry *
entry_touch (MhAuthThrottle *t, char *key)
{
  Entry *e = g_hash_table_lookup (t->entries, key);
  if (e != NULL)
    {
      g_free (key);
      g_queue_unlink (&t->lru, &e->link);
      g_queue_push_head_link (&t->lru, &e->link);
      return e;
    }

  while (g_hash_table_size (t->entries) >= t->set.max_tracked)
    entry_remove (t, g_queue_peek_tail (&t->lru));

  e = g_new0 (Entry, 1);
  e->key = key;
  e->link.data = e;
  g_hash_table_insert (t->entries, e->key, e);
  g_queue_push_head_link (&t->lru, &e->link);
  return e;
}

static GoodNet *
good_find (Entry *acct, const guint8 net[16], gint64 now)
{
  if (acct == NULL)
    return NULL;
  for (guint i = 0; i < acct->n_good; i++)
    if (memcmp (acct->good[i].net, net, 16) == 0
        && good_live (&acct->good[i], now))
      return &acct->good[i];
  return NULL;
}

static guint
delay_for (MhAuthThrottle *t, guint fails)
{
  /* No failure, no delay: fails_before_delay 0 thus acts as 1. */
  guint free_fails = MAX (t->set.fails_before_delay, 1);
  if (t->set.max_delay_ms == 0 || t->set.base_delay_ms == 0
      || fails < free_fails)
    return 0;
  guint k = fails - free_fails;
  if (k >= 32)
    return t->set.max_delay_ms;
  guint64 d = (guint64) t->set.base_delay_ms << k;
  return (guint) MIN (d, (guint64) t->set.max_delay_ms);
}

/* ---- Public API ------------------------------------------------------- */

G_DEFINE_BOXED_TYPE (MhAuthThrottle, mh_auth_throttle, mh_auth_throttle_ref,
                     mh_auth_throttle_unref)

MhAuthThrottle *
mh_auth_throttle_new (const MhAuthThrottleSettings *settings)
{
  MhAuthThrottle *t = g_new0 (MhAuthThrottle, 1);
  g_atomic_ref_count_init (&t->ref);
  g_mutex_init (&t->lock);
  if (settings != NULL)
    t->set = *settings;
  else
    mh_auth_throttle_settings_init (&t->set);
  t->set.version = 1;
  if (t->set.forget_after_s == 0)
    t->set.forget_after_s = MH_LIMIT_AUTH_FORGET_S;
  if (t->set.max_tracked == 0)
    t->set.max_tracked = MH_LIMIT_AUTH_TRACKED;
  t->forget_us = (gint64) t->set.forget_after_s * G_USEC_PER_SEC;
  t->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                      entry_free);
  g_queue_init (&t->lru);
  return t;
}

MhAuthThrottle *
mh_auth_throttle_ref (MhAuthThrottle *throttle)
{
  g_return_val_if_fail (throttle != NULL, NULL);
  g_atomic_ref_count_inc (&throttle->ref);
  return throttle;
}

void
mh_auth_throttle_unref (MhAuthThrottle *throttle)
{
  if (throttle == NULL || !g_atomic_ref_count_dec (&throttle->ref))
    return;
  /* Entries' links live inside the entries: the queue owns nothing. */
  g_queue_init (&throttle->lru);
  g_hash_table_destroy (throttle->entries);
  g_mutex_clear (&throttle->lock);
  g_free (throttle);
}

guint
mh_auth_throttle_delay_ms (MhAuthThrottle *throttle, const char *peer_ip,
                           const char *account, gint64 now_us)
{
  g_return_val_if_fail (throttle != NULL, 0);
  MhAuthThrottle *t = throttle;

  guint8 net[16];
  gboolean is_ip = mh_auth__peer_network (peer_ip, net);
  g_autofree char *nkey = net_key (net, is_ip);
  g_autofree char *akey = account ? account_key (account) : NULL;
  guint d;

  g_mutex_lock (&t->lock);
  Entry *ip_e = g_hash_table_lookup (t->entries, nkey);
  Entry *acct = akey ? g_hash_table_lookup (t->entries, akey) : NULL;
  GoodNet *g = is_ip ? good_find (acct, net, now_us) : NULL;
  if (g != NULL)
    d = delay_for (t, live_fails (t, g->fails, g->last_fail, now_us));
  else
    {
      guint di = ip_e ? delay_for (t, live_fails (t, ip_e->fails,
                                                  ip_e->last_fail, now_us))
                      : 0;
      guint da = acct ? delay_for (t, live_fails (t, acct->fails,
                                                  acct->last_fail, now_us))
                      : 0;
      d = MAX (di, da);
    }
  g_mutex_unlock (&t->lock);
  return d;
}

void
mh_auth_throttle_record (MhAuthThrottle *throttle, const char *peer_ip,
                         const char *account, gboolean success,
                         gint64 now_us)
{
  g_return_if_fail (throttle != NULL);
  MhAuthThrottle *t = throttle;

  guint8 net[16];
  gboolean is_ip = mh_auth__peer_network (peer_ip, net);
  char *nkey = net_key (net, is_ip);
  char *akey = account ? account_key (account) : NULL;

  g_mutex_lock (&t->lock);
  prune (t, now_us);

  if (success)
    {
      g_free (nkey);
      /* Only real networks become known good: the shared non-IP bucket
       * would make every local client "good" for everyone. */
      if (akey != NULL && is_ip)
        {
          Entry *acct = entry_touch (t, g_steal_pointer (&akey));
          GoodNet *g = good_find (acct, net, now_us);
          if (g == NULL)
            {
              if (acct->good == NULL)
                acct->good = g_new0 (GoodNet, MH_LIMIT_AUTH_GOOD_NETS);
              if (acct->n_good < MH_LIMIT_AUTH_GOOD_NETS)
                g = &acct->good[acct->n_good++];
              else
                {
                  /* Replace the least recently successful (an expired
                   * one is older than any live one). */
                  g = &acct->good[0];
                  for (guint i = 1; i < acct->n_good; i++)
                    if (acct->good[i].last_success < g->last_success)
                      g = &acct->good[i];
                }
              memcpy (g->net, net, 16);
            }
          g->last_success = now_us;
          g->fails = 0;
          g->last_fail = 0;
        }
      g_free (akey);
      g_mutex_unlock (&t->lock);
      return;
    }

  /* Finish with one entry before touching the next: a touch may evict. */
  Entry *ip_e = entry_touch (t, nkey);
  ip_e->fails = bump (t, ip_e->fails, ip_e->last_fail, now_us);
  ip_e->last_fail = now_us;

  if (akey != NULL)
    {
      Entry *acct = entry_touch (t, akey);
      GoodNet *g = is_ip ? good_find (acct, net, now_us) : NULL;
      if (g != NULL)
        {
          g->fails = bump (t, g->fails, g->last_fail, now_us);
          g->last_fail = now_us;
        }
      else
        {
          acct->fails = bump (t, acct->fails, acct->last_fail, now_us);
          acct->last_fail = now_us;
        }
    }
  g_mutex_unlock (&t->lock);
}

guint
mh_auth_throttle_get_tracked (MhAuthThrottle *throttle)
{
  g_return_val_if_fail (throttle != NULL, 0);
  g_mutex_lock (&throttle->lock);
  guint n = g_hash_table_size (throttle->entries);
  g_mutex_unlock (&throttle->lock);
  return n;
}
