/* Unit tests of lib/server: a server runs in a thread of its own (its own
 * main context), the test thread is the client. */
#include "mh-test.h"
#include "server/server-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- a server in a thread ------------------------------------------------ */

typedef struct
{
  MhServer *server;
  GMainContext *ctx;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean ready;
  gboolean start_ok;
  gboolean run_ok;
  GError *error;
  guint port;
} Running;

static gpointer
server_thread (gpointer p)
{
  Running *r = p;
  g_main_context_push_thread_default (r->ctx);
  gboolean ok = mh_server_start (r->server, &r->error);
  if (ok)
    {
      g_auto (GStrv) l = mh_server_get_listeners (r->server);
      const char *colon = l[0] ? strrchr (l[0], ':') : NULL;
      r->port = colon ? (guint) atoi (colon + 1) : 0;
    }
  g_mutex_lock (&r->lock);
  r->start_ok = ok;
  r->ready = TRUE;
  g_cond_signal (&r->cond);
  g_mutex_unlock (&r->lock);
  if (ok)
    r->run_ok = mh_server_run (r->server);
  g_main_context_pop_thread_default (r->ctx);
  return NULL;
}

static Running *
run_server (MhServer *server)
{
  Running *r = g_new0 (Running, 1);
  r->server = server;
  r->ctx = g_main_context_new ();
  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->thread = g_thread_new ("mh-test-server", server_thread, r);
  g_mutex_lock (&r->lock);
  while (!r->ready)
    g_cond_wait (&r->cond, &r->lock);
  g_mutex_unlock (&r->lock);
  if (!r->start_ok)
    fail_msg ("server start: %s", r->error->message);
  return r;
}

static gboolean
shutdown_cb (gpointer p)
{
  mh_server_shutdown (p);
  return G_SOURCE_REMOVE;
}

/* Shuts down from the server's own thread and waits for run() to end. */
static gboolean
stop_server (Running *r)
{
  g_main_context_invoke (r->ctx, shutdown_cb, r->server);
  g_thread_join (r->thread);
  gboolean ok = r->run_ok;
  g_main_context_unref (r->ctx);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
  g_free (r);
  return ok;
}

static MhConfig *
config_for (const char *text)
{
  g_autoptr (GError) error = NULL;
  MhConfig *c = mh_config_load_data (text, -1, "test.conf", &error);
  if (c == NULL)
    fail_msg ("config: %s", error->message);
  return c;
}

/* ---- a blocking line client ----------------------------------------------- */

typedef struct
{
  int fd;
  GString *buf;
} Client;

static Client *
client_connect (guint port)
{
  Client *c = g_new0 (Client, 1);
  c->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_port = htons ((guint16) port) };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  struct timeval tv = { .tv_sec = 5 };
  setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect (c->fd, (struct sockaddr *) &sa, sizeof sa) != 0)
    fail_msg ("connect: %s", g_strerror (errno));
  c->buf = g_string_new (NULL);
  return c;
}

static void
client_send (Client *c, const char *line)
{
  g_autofree char *l = g_strconcat (line, "\r\n", NULL);
  assert_int_equal (send (c->fd, l, strlen (l), MSG_NOSIGNAL),
                    (ssize_t) strlen (l));
}

/* Returns the next line without CRLF, or NULL at EOF. */
static char *
client_line (Client *c)
{
  for (;;)
    {
      char *nl = memchr (c->buf->str, '\n', c->buf->len);
      if (nl)
        {
          gsize n = (gsize) (nl - c->buf->str);
          char *line = g_strndup (c->buf->str,
                                  n > 0 && nl[-1] == '\r' ? n - 1 : n);
          g_string_erase (c->buf, 0, (gssize) n + 1);
          return line;
        }
      char tmp[4096];
      ssize_t r = recv (c->fd, tmp, sizeof tmp, 0);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        fail_msg ("recv: %s", g_strerror (errno));
      if (r == 0)
        return NULL;
      g_string_append_len (c->buf, tmp, r);
    }
}

static void
client_expect (Client *c, const char *want)
{
  g_autofree char *l = client_line (c);
  if (l == NULL)
    fail_msg ("expected '%s', got EOF", want);
  if (!g_str_has_prefix (l, want))
    fail_msg ("expected '%s', got '%s'", want, l);
}

/* Closes with a reset, so the server sees the client gone at once. */
static void
client_abort (Client *c)
{
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  setsockopt (c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static void
client_free (Client *c)
{
  close (c->fd);
  g_string_free (c->buf, TRUE);
  g_free (c);
}

#define ECHO_CONF(extra)                                                     \
  "[general]\nworker_threads = 2\nshutdown_grace = 5s\n" extra              \
  "[echo]\nenabled = true\nlisten = 127.0.0.1:0\ntls = none\n"

/* ---- tests ----------------------------------------------------------------- */

/* One session's blocking job sleeps 2 s; another session is answered
 * meanwhile (the worker pool keeps the main loop free). */
static void
test_slow_job_does_not_stall_others (void **state)
{
  g_autoptr (MhConfig) c = config_for (ECHO_CONF (""));
  MhServer *server = mh_server_new (c, NULL);
  assert_true (mh_server_register_echo_service (server, NULL));
  Running *r = run_server (server);

  Client *slow = client_connect (r->port);
  Client *fast = client_connect (r->port);
  client_expect (slow, "220 ");
  client_expect (fast, "220 ");
  gint64 t0 = g_get_monotonic_time ();
  client_send (slow, "SLOW 2000");
  for (int i = 0; i < 20; i++)
    {
      g_autofree char *msg = g_strdup_printf ("ECHO %d", i);
      g_autofree char *want = g_strdup_printf ("250 %d", i);
      client_send (fast, msg);
      client_expect (fast, want);
    }
  gint64 fast_done = g_get_monotonic_time () - t0;
  /* well under the 2 s job, with room for a loaded CI machine */
  assert_true (fast_done < 3 * G_USEC_PER_SEC / 2);
  client_expect (slow, "250 slept 2000 ms");
  assert_true (g_get_monotonic_time () - t0 >= 2 * G_USEC_PER_SEC);

  client_free (slow);
  client_free (fast);
  assert_true (stop_server (r));
  mh_server_unref (server);
}

/* Shutdown with a job in flight: the job's answer, then the goodbye. */
static void
test_shutdown_finishes_job_first (void **state)
{
  g_autoptr (MhConfig) c = config_for (ECHO_CONF (""));
  MhServer *server = mh_server_new (c, NULL);
  assert_true (mh_server_register_echo_service (server, NULL));
  Running *r = run_server (server);

  Client *cl = client_connect (r->port);
  client_expect (cl, "220 ");
  client_send (cl, "SLOW 400");
  g_usleep (100 * 1000);
  g_main_context_invoke (r->ctx, shutdown_cb, server);
  client_expect (cl, "250 slept 400 ms");
  client_expect (cl, "421 4.3.2 ");
  assert_null (client_line (cl));
  client_free (cl);
  assert_true (stop_server (r));
  mh_server_unref (server);
}

/* ---- a service written in the test: the interface, not echo ---------------- */

typedef struct
{
  gint ticks;
  gint engines_freed;
  gint done_calls;
  gint done_while_disconnected;
} Counters;

typedef struct
{
  Counters *counters;
  GString *out;
  gboolean waiting;
  gboolean want_job;
} Tiny;

static gpointer
tiny_new (MhServerSession *s, gpointer user_data)
{
  Tiny *t = g_new0 (Tiny, 1);
  t->counters = user_data;
  t->out = g_string_new ("hello\r\n");
  return t;
}

static void
tiny_free (gpointer e)
{
  Tiny *t = e;
  g_atomic_int_inc (&t->counters->engines_freed);
  g_string_free (t->out, TRUE);
  g_free (t);
}

/* Takes one whole line at a time and nothing while a job runs. */
static gsize
tiny_feed (gpointer e, const guint8 *data, gsize len)
{
  Tiny *t = e;
  if (t->waiting)
    return 0;
  const guint8 *nl = memchr (data, '\n', len);
  if (nl == NULL)
    return len; /* a partial line: swallow (a test engine) */
  t->waiting = TRUE;
  t->want_job = TRUE;
  return (gsize) (nl - data) + 1;
}

static gsize
tiny_peek (gpointer e, const guint8 **p)
{
  Tiny *t = e;
  *p = (const guint8 *) t->out->str;
  return t->out->len;
}

static void
tiny_consume (gpointer e, gsize n)
{
  g_string_erase (((Tiny *) e)->out, 0, (gssize) n);
}

static void
tiny_tick (gpointer e, gint64 now_us)
{
  g_atomic_int_inc (&((Tiny *) e)->counters->ticks);
}

static gboolean
tiny_false (gpointer e)
{
  return FALSE;
}

static void
tiny_job (gpointer data)
{
  g_usleep (200 * 1000);
}

static void
tiny_done (MhServerSession *s, gpointer data, gpointer user_data)
{
  Tiny *t = user_data;
  g_atomic_int_inc (&t->counters->done_calls);
  if (!mh_server_session_is_connected (s))
    g_atomic_int_inc (&t->counters->done_while_disconnected);
  t->waiting = FALSE;
  g_string_append (t->out, "done\r\n");
}

static void
tiny_events (gpointer e, MhServerSession *s, gpointer user_data)
{
  Tiny *t = e;
  if (t->want_job)
    {
      t->want_job = FALSE;
      mh_server_session_run_blocking (s, tiny_job, NULL, NULL, tiny_done, t);
    }
}

static void
tiny_goodbye (gpointer e, MhServerSession *s, MhServerGoodbye reason,
              gpointer user_data)
{
  Tiny *t = e;
  g_string_append (t->out, reason == MH_SERVER_GOODBYE_SHUTDOWN
                               ? "bye from engine: shutdown\r\n"
                               : "bye from engine\r\n");
}

static gboolean
tiny_want_read (gpointer e)
{
  return !((Tiny *) e)->waiting;
}

static const MhService tiny_service = {
  .version = MH_SERVICE_VERSION,
  .engine_new = tiny_new,
  .engine_free = tiny_free,
  .feed = tiny_feed,
  .peek_output = tiny_peek,
  .consume_output = tiny_consume,
  .is_closing = tiny_false,
  .is_closed = tiny_false,
  .tick = tiny_tick,
  .handle_events = tiny_events,
  .engine_goodbye = tiny_goodbye,
  .want_read = tiny_want_read,
};

/* Pipelined lines wait in the server while the engine is busy, and a
 * job whose client left still completes, then the engine is freed. */
static void
test_service_interface_held_input_and_orphan_job (void **state)
{
  g_autoptr (MhConfig) c = config_for (
      "[lmtp]\nenabled = true\nlisten = 127.0.0.1:0\n");
  Counters counters = { 0 };
  MhServer *server = mh_server_new (c, NULL);
  assert_true (mh_server_register_service (server, "lmtp", &tiny_service,
                                           &counters, NULL, NULL));
  Running *r = run_server (server);

  Client *cl = client_connect (r->port);
  client_expect (cl, "hello");
  client_send (cl, "a\r\nb\r\nc"); /* three commands in one packet */
  client_expect (cl, "done");
  client_expect (cl, "done");
  assert_int_equal (g_atomic_int_get (&counters.done_calls), 2);
  /* the engine gets the time before each feed and from the 500 ms tick */
  assert_true (g_atomic_int_get (&counters.ticks) >= 2);

  client_send (cl, ""); /* completes "c": a third job */
  g_usleep (50 * 1000);
  client_abort (cl);     /* ... and the client resets the connection */
  client_free (cl);
  for (int i = 0; i < 100 && g_atomic_int_get (&counters.engines_freed) < 1;
       i++)
    g_usleep (20 * 1000);
  assert_int_equal (g_atomic_int_get (&counters.done_calls), 3);
  assert_int_equal (g_atomic_int_get (&counters.done_while_disconnected), 1);
  assert_int_equal (g_atomic_int_get (&counters.engines_freed), 1);

  assert_true (stop_server (r));
  mh_server_unref (server);
}

/* With engine_goodbye the engine writes its own closing line. */
static void
test_engine_goodbye_on_shutdown (void **state)
{
  g_autoptr (MhConfig) c = config_for (
      "[lmtp]\nenabled = true\nlisten = 127.0.0.1:0\n");
  Counters counters = { 0 };
  MhServer *server = mh_server_new (c, NULL);
  assert_true (mh_server_register_service (server, "lmtp", &tiny_service,
                                           &counters, NULL, NULL));
  Running *r = run_server (server);
  Client *cl = client_connect (r->port);
  client_expect (cl, "hello");
  assert_true (stop_server (r));
  client_expect (cl, "bye from engine: shutdown");
  assert_null (client_line (cl));
  client_free (cl);
  assert_int_equal (g_atomic_int_get (&counters.engines_freed), 1);
  mh_server_unref (server);
}

static void
test_register_errors (void **state)
{
  g_autoptr (MhConfig) c = mh_config_new ();
  g_autoptr (MhServer) server = mh_server_new (c, NULL);
  g_autoptr (GError) error = NULL;

  assert_false (mh_server_register_service (server, "gopher", &tiny_service,
                                            NULL, NULL, &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_SERVICE,
                        "gopher", NULL);
  g_clear_error (&error);
  assert_true (mh_server_register_echo_service (server, NULL));
  assert_false (mh_server_register_echo_service (server, &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_SERVICE,
                        "echo: service registered twice", NULL);
  assert_true (mh_server_has_service (server, "echo"));
  assert_false (mh_server_has_service (server, "imap"));

  const char *name = NULL, *tls = NULL;
  guint port = 0;
  gboolean seen_imaps = FALSE;
  for (guint i = 0; mh_server_get_service_info (i, &name, &port, &tls); i++)
    if (strcmp (name, "imaps") == 0)
      {
        seen_imaps = TRUE;
        assert_int_equal (port, 993);
        assert_string_equal (tls, "implicit");
      }
  assert_true (seen_imaps);
  assert_false (mh_server_get_service_info (1000, NULL, NULL, NULL));
}

static void
start_fails (const char *text, int code, const char *needle)
{
  g_autoptr (MhConfig) c = config_for (text);
  g_autoptr (MhServer) server = mh_server_new (c, NULL);
  g_autoptr (GError) error = NULL;
  assert_true (mh_server_register_echo_service (server, NULL));
  assert_false (mh_server_start (server, &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, code, needle, NULL);
}

static void
test_bad_listen_entries (void **state)
{
  start_fails ("[echo]\nenabled = true\nlisten = example.org:25\n"
               "tls = none\n",
               MH_SERVER_ERROR_CONFIG,
               "test.conf: [echo] listen: 'example.org:25': expected");
  start_fails ("[echo]\nenabled = true\nlisten = 127.0.0.1:70000\n"
               "tls = none\n",
               MH_SERVER_ERROR_CONFIG, "'127.0.0.1:70000'");
  start_fails ("[echo]\nenabled = true\nlisten = [::1:25\ntls = none\n",
               MH_SERVER_ERROR_CONFIG, "'[::1:25'");
  start_fails ("[echo]\nenabled = true\nlisten = unix:relative\n"
               "tls = none\n",
               MH_SERVER_ERROR_CONFIG, "unix:/absolute/path");
  start_fails ("[echo]\nenabled = true\nlisten = 127.0.0.1:0\ntls = none\n"
               "socket_mode = 999\n",
               MH_SERVER_ERROR_CONFIG, "[echo] socket_mode: expected an octal");
  start_fails ("[echo]\nenabled = true\nlisten =\ntls = none\n",
               MH_SERVER_ERROR_CONFIG, "has no address");
}

static void
test_port_in_use (void **state)
{
  int busy = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (busy, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (busy, 1), 0);
  socklen_t len = sizeof sa;
  getsockname (busy, (struct sockaddr *) &sa, &len);
  guint port = ntohs (sa.sin_port);

  g_autofree char *text = g_strdup_printf (
      "[echo]\nenabled = true\nlisten = 127.0.0.1:0, 127.0.0.1:%u\n"
      "tls = none\n", port);
  g_autofree char *want = g_strdup_printf (
      "echo: cannot listen on 127.0.0.1:%u: Address already in use", port);
  start_fails (text, MH_SERVER_ERROR_LISTEN, want);
  close (busy);
}

static void
test_unregistered_service_is_skipped (void **state)
{
  g_autoptr (MhConfig) c = config_for (
      "[imap]\nenabled = true\nlisten = 127.0.0.1:0\ntls = none\n");
  g_autoptr (MhServer) server = mh_server_new (c, NULL);
  g_autoptr (GError) error = NULL;
  assert_true (mh_server_start (server, &error));
  g_auto (GStrv) l = mh_server_get_listeners (server);
  assert_null (l[0]);
  mh_server_shutdown (server);
  assert_true (mh_server_run (server));
}

static void
test_missing_tls_files (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *text = g_strdup_printf (
      "[general]\ndata_dir = %s\n[echo]\nenabled = true\n"
      "listen = 127.0.0.1:0\ntls = starttls\n", dir);
  g_autofree char *want = g_strdup_printf (
      "tls: cannot read certificate %s/tls/cert.pem", dir);
  start_fails (text, MH_SERVER_ERROR_TLS, want);
  mh_test_rmtree (dir);
}

static void
test_drop_privileges_checks (void **state)
{
  g_autoptr (GError) error = NULL;
  assert_true (mh_server_drop_privileges (NULL, NULL, &error));
  assert_false (mh_server_drop_privileges ("no-such-user-mh", NULL, &error));
  mh_test_assert_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_PRIVILEGES,
                        "no-such-user-mh", NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_slow_job_does_not_stall_others),
    cmocka_unit_test (test_shutdown_finishes_job_first),
    cmocka_unit_test (test_service_interface_held_input_and_orphan_job),
    cmocka_unit_test (test_engine_goodbye_on_shutdown),
    cmocka_unit_test (test_register_errors),
    cmocka_unit_test (test_bad_listen_entries),
    cmocka_unit_test (test_port_in_use),
    cmocka_unit_test (test_unregistered_service_is_skipped),
    cmocka_unit_test (test_missing_tls_files),
    cmocka_unit_test (test_drop_privileges_checks),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
