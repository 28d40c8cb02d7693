/* lib/server/retention.c: `[store] retention` applied on a timer.
 *
 * Design notes
 * - States (main loop only): WAITING (a one-shot timer is armed: 10 s
 *   after registration, then retention_interval after each pass ends),
 *   RUNNING (a pass thread works; no timer), STOPPED (the server shut
 *   down or was freed: no timer, no new pass). Re-arming after the pass
 *   ends, instead of a periodic timer, means passes never overlap however
 *   long one takes.
 * - The disk work (directory listing, store opens, reconciliation,
 *   expunges and their fsyncs) runs on a thread of its own, never on the
 *   main loop. A dedicated thread rather than the sessions' worker pool:
 *   a pass is long (every account), runs once an interval, and must not
 *   take a pool slot from IMAP/LMTP jobs for that long.
 * - Stores come from mh_delivery_get_store(): in one process a store can
 *   be opened once (BUSY otherwise), and the services share that table.
 *   Accounts without a Maildir on disk are skipped, so the pass does not
 *   create Maildirs or open stores for accounts that never got mail.
 * - Shutdown: a running pass holds the server (counted as a job in
 *   flight) and a reference to it; the stop hook sets `stop`, which the
 *   pass checks between accounts, so shutdown waits at most for one
 *   account's expunge. The hook also runs when a server that never shut
 *   down is freed.
 * - Limits: one pass at a time; the interval is `[store]
 *   retention_interval` (the schema bounds it to 60 s .. 7 days). Tests
 *   set MH_TEST_RETENTION_SECONDS (>= 1) for both delay and interval.
 */
#include "server-private.h"

#include "mailhost/directory.h"
#include "mailhost/retention.h"
#include "mailhost/store.h"

#include <errno.h>
#include <string.h>

#define LOG_SVC "retention"
#define FIRST_DELAY_S 10

typedef struct
{
  gint ref;
  MhServer *server;      /* borrowed; a reference is held while RUNNING */
  MhDelivery *delivery;
  char *data_dir;
  MhStoreRetention *rules;
  guint n_rules;
  guint interval_s;
  GMainContext *context;
  GSource *timer;        /* WAITING */
  GThread *thread;       /* RUNNING */
  gboolean stopped;      /* STOPPED */
  gint stop;             /* atomic: the pass stops between accounts */
  /* Results of the pass, read on the main loop after the join. */
  guint accounts, expunged, failed;
  gint64 started_us;
} Retention;

static Retention *
retention_ref (Retention *r)
{
  g_atomic_int_inc (&r->ref);
  return r;
}

static void
retention_unref (Retention *r)
{
  if (r == NULL || !g_atomic_int_dec_and_test (&r->ref))
    return;
  if (r->timer)
    {
      g_source_destroy (r->timer);
      g_source_unref (r->timer);
    }
  mh_delivery_unref (r->delivery);
  g_main_context_unref (r->context);
  g_free (r->rules);
  g_free (r->data_dir);
  g_free (r);
}

/* One account: skipped when it has no Maildir yet. */
static void
pass_account (Retention *r, MhAccountInfo *info, gint64 now)
{
  /* The path mh_delivery_get_store() uses: DATA/mail/DOMAIN/LOCAL of the
   * ASCII address. */
  const char *address = mh_account_info_get_ascii_address (info);
  const char *at = strrchr (address, '@');
  if (at == NULL)
    return;
  g_autofree char *local = g_strndup (address, (gsize) (at - address));
  g_autofree char *md = g_build_filename (r->data_dir, "mail", at + 1, local,
                                          NULL);
  if (!g_file_test (md, G_FILE_TEST_IS_DIR))
    return;
  r->accounts++;
  g_autoptr (GError) e = NULL;
  g_autoptr (MhStore) store = mh_delivery_get_store (r->delivery, address,
                                                     &e);
  guint gone = 0;
  if (store == NULL
      || !mh_store_apply_retention (store, r->rules, r->n_rules, now, &gone,
                                    &e))
    {
      r->failed++;
      mh_log_warning (LOG_SVC, NULL, NULL, "%s: %s", address, e->message);
      return;
    }
  r->expunged += gone;
  if (gone > 0)
    mh_log_info (LOG_SVC, NULL, NULL, "%s: %u messages expunged", address,
                 gone);
}

static gboolean pass_done (gpointer data);

static gpointer
pass_thread (gpointer data)
{
  Retention *r = data;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr (GError) e = NULL;
  GPtrArray *list = mh_directory_account_list (
      mh_delivery_get_directory (r->delivery), NULL, &e);
  if (list == NULL)
    {
      r->failed++;
      mh_log_error (LOG_SVC, NULL, NULL, "cannot list the accounts: %s",
                    e->message);
    }
  for (guint i = 0; list && i < list->len; i++)
    {
      if (g_atomic_int_get (&r->stop))
        break;
      pass_account (r, list->pdata[i], now);
    }
  if (list)
    mh_account_info_list_free (list);
  g_main_context_invoke_full (r->context, G_PRIORITY_DEFAULT, pass_done, r,
                              NULL);
  return NULL;
}

static void arm (Retention *r, guint seconds);

static gboolean
pass_start (gpointer data)
{
  Retention *r = data;
  g_clear_pointer (&r->timer, g_source_unref);
  if (r->stopped)
    return G_SOURCE_REMOVE;
  r->accounts = r->expunged = r->failed = 0;
  r->started_us = g_get_monotonic_time ();
  g_autoptr (GError) e = NULL;
  retention_ref (r);
  r->thread = g_thread_try_new ("mh-retention", pass_thread, r, &e);
  if (r->thread == NULL)
    {
      retention_unref (r);
      mh_log_error (LOG_SVC, NULL, NULL, "cannot start a pass: %s; next "
                    "try in %u s", e->message, r->interval_s);
      arm (r, r->interval_s);
      return G_SOURCE_REMOVE;
    }
  mh_server_ref (r->server);
  mh_server__hold (r->server);
  return G_SOURCE_REMOVE;
}

/* Main loop: the pass thread ended. */
static gboolean
pass_done (gpointer data)
{
  Retention *r = data;
  g_thread_join (g_steal_pointer (&r->thread));
  double ms = (g_get_monotonic_time () - r->started_us) / 1000.0;
  gboolean cut = g_atomic_int_get (&r->stop);
  mh_log_info (LOG_SVC, NULL, NULL,
               "pass %s: %u accounts checked, %u messages expunged, %u "
               "failures, %.0f ms", cut ? "stopped by shutdown" : "done",
               r->accounts, r->expunged, r->failed, ms);
  if (!r->stopped)
    arm (r, r->interval_s);
  MhServer *server = r->server;
  mh_server__job_finished (server); /* may end mh_server_run() */
  mh_server_unref (server);
  retention_unref (r);
  return G_SOURCE_REMOVE;
}

static void
arm (Retention *r, guint seconds)
{
  r->timer = g_timeout_source_new_seconds (seconds);
  g_source_set_callback (r->timer, pass_start, r, NULL);
  g_source_set_static_name (r->timer, "mh-retention");
  g_source_attach (r->timer, r->context);
}

/* Server stop hook: no new pass; a running one stops between accounts. */
static void
stop_hook (gpointer data)
{
  Retention *r = data;
  r->stopped = TRUE;
  g_atomic_int_set (&r->stop, 1);
  if (r->timer)
    {
      g_source_destroy (r->timer);
      g_clear_pointer (&r->timer, g_source_unref);
    }
  retention_unref (r);
}

gboolean
mh_server_register_retention (MhServer *server, MhDelivery *delivery,
                              GError **error)
{
  g_return_val_if_fail (server != NULL && delivery != NULL, FALSE);
  MhConfig *c = mh_server__config (server);
  const char *text = mh_config_get_string (c, "store", "retention");
  if (text == NULL || *text == '\0')
    {
      mh_log_info (LOG_SVC, NULL, NULL, "[store] retention is empty: no "
                   "timer");
      return TRUE;
    }
  guint n = 0;
  g_autofree MhStoreRetention *rules = mh_store_retention_parse (text, &n,
                                                                 error);
  if (rules == NULL)
    return FALSE;
  if (n == 0)
    return TRUE;
  Retention *r = g_new0 (Retention, 1);
  r->ref = 1;
  r->server = server;
  r->delivery = mh_delivery_ref (delivery);
  r->data_dir = g_strdup (mh_config_get_string (c, "general", "data_dir"));
  r->rules = g_steal_pointer (&rules);
  r->n_rules = n;
  r->interval_s = (guint) mh_config_get_int (c, "store",
                                             "retention_interval");
  guint first = FIRST_DELAY_S;
  const char *t = g_getenv ("MH_TEST_RETENTION_SECONDS");
  guint64 v;
  if (t && g_ascii_string_to_unsigned (t, 10, 1, 86400, &v, NULL))
    first = r->interval_s = (guint) v;
  r->context = g_main_context_ref_thread_default ();
  arm (r, first);
  mh_server__add_stop_hook (server, stop_hook, r);
  mh_log_info (LOG_SVC, NULL, NULL, "%u rules, first pass in %u s, then "
               "every %u s", n, first, r->interval_s);
  return TRUE;
}
