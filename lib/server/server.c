/* lib/server: listeners, limits, worker pool, signals, shutdown.
 *
 * Design notes
 * - One MhServer per process, bound to the thread-default main context
 *   of the thread that calls mh_server_start(); every service callback
 *   runs there. Blocking work goes to a GThreadPool of `[general]
 *   worker_threads`; each completion is posted back to that context with
 *   g_main_context_invoke_full(), so a job that sleeps never delays other
 *   sessions (tests/unit/server/test-server.c proves it).
 * - Ownership: the server's `sessions` table holds one reference to each
 *   connected session; a session holds a reference to its server. So the
 *   server outlives every session, and a session outlives its jobs (jobs
 *   hold session references). A closed session leaves the table at once
 *   and is freed when its last job completes.
 * - Listeners come from each enabled, registered service's `listen`
 *   entries: "*:PORT" binds 0.0.0.0 and [::] (IPV6_V6ONLY, so each family
 *   has its own socket and an IPv6-less host still serves IPv4),
 *   "IP:PORT", "[IPv6]:PORT", "unix:/path". A unix path holding a socket
 *   nobody answers on is stale and replaced; one that answers is "in use".
 *   Everything is bound before anything is accepted, and a failure
 *   unbinds what was bound (no half-started server).
 * - Limits are checked at accept, before any engine exists: total for
 *   the server ([limits] max_connections), total and per IP for the
 *   service (its own value, or [limits] when 0). The refusal line comes
 *   from the service's goodbye function; on implicit-TLS listeners we
 *   close silently (a clear-text line would be garbage to a TLS client,
 *   and a handshake per refused connection is what a flood wants).
 * - Shutdown: listeners close, sessions get their goodbye (after any
 *   job in flight answers), a grace timer ([general] shutdown_grace) cuts
 *   what is left. mh_server_run() returns when the last session and job
 *   are gone.
 * - Timers: one 500 ms tick for all sessions instead of a timer each;
 *   timeouts are seconds, so half a second of slack is fine, and a
 *   thousand sessions cost one wakeup.
 */
#include "server-private.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <gio/gio.h>
#include <glib-unix.h>

#define TICK_MS 500
#define ACCEPT_BATCH 64

G_DEFINE_QUARK (mh-server-error-quark, mh_server_error)

typedef struct
{
  MhServer *server;          /* borrowed: the server owns listeners */
  MhServerService *service;
  int fd;
  GSource *source;
  GSource *pause_source;     /* re-arms accept after EMFILE */
  char *address;             /* for logs: "127.0.0.1:10143", "unix:/x" */
  char *unix_path;           /* unlinked when the listener closes */
  gboolean implicit_tls;
} Listener;

struct _MhServer
{
  gint refcount;
  MhConfig *config;
  GMainContext *context;
  GHashTable *services;      /* name -> MhServerService* */
  GPtrArray *listeners;      /* Listener* */
  GHashTable *sessions;      /* connected MhServerSession* (owned ref) */
  guint max_total;
  guint64 serial;
  MhTlsCreds *creds;         /* NULL when no enabled service uses TLS */
  gboolean tls_needed;
  GThreadPool *pool;
  guint pending_jobs;
  GSource *tick_source;
  GSource *grace_source;
  GSource *signal_sources[3];
  GMainLoop *loop;
  gboolean started;
  gboolean shutting_down;
  gboolean finished;
  gboolean cut_off;
  GArray *stop_hooks;        /* StopHook: retention.c's timer */
};

typedef struct
{
  GDestroyNotify func;
  gpointer data;
} StopHook;

/* Runs each stop hook once: at shutdown, or when a server that never
 * shut down is freed. */
static void
run_stop_hooks (MhServer *server)
{
  if (server->stop_hooks == NULL)
    return;
  GArray *hooks = g_steal_pointer (&server->stop_hooks);
  for (guint i = 0; i < hooks->len; i++)
    g_array_index (hooks, StopHook, i).func (
        g_array_index (hooks, StopHook, i).data);
  g_array_unref (hooks);
}

void
mh_server__add_stop_hook (MhServer *server, GDestroyNotify func,
                          gpointer data)
{
  if (server->stop_hooks == NULL)
    server->stop_hooks = g_array_new (FALSE, FALSE, sizeof (StopHook));
  StopHook h = { func, data };
  g_array_append_val (server->stop_hooks, h);
}

void
mh_server__hold (MhServer *server)
{
  server->pending_jobs++;
}

G_DEFINE_BOXED_TYPE (MhServer, mh_server, mh_server_ref, mh_server_unref)

static void
service_free (gpointer p)
{
  MhServerService *svc = p;
  if (svc->destroy)
    svc->destroy (svc->user_data);
  g_hash_table_unref (svc->per_ip);
  g_free (svc->name);
  g_free (svc);
}

MhServer *
mh_server_new (MhConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);
  MhServer *server = g_new0 (MhServer, 1);
  server->refcount = 1;
  server->config = mh_config_ref (config);
  server->services = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                            service_free);
  server->listeners = g_ptr_array_new ();
  server->sessions = g_hash_table_new_full (
      g_direct_hash, g_direct_equal, (GDestroyNotify) mh_server_session_unref,
      NULL);
  return server;
}

MhServer *
mh_server_ref (MhServer *server)
{
  g_return_val_if_fail (server != NULL, NULL);
  g_atomic_int_inc (&server->refcount);
  return server;
}

static void
listener_close (Listener *l)
{
  if (l->source)
    {
      g_source_destroy (l->source);
      g_source_unref (l->source);
      l->source = NULL;
    }
  if (l->pause_source)
    {
      g_source_destroy (l->pause_source);
      g_source_unref (l->pause_source);
      l->pause_source = NULL;
    }
  if (l->fd >= 0)
    close (l->fd);
  l->fd = -1;
  if (l->unix_path)
    unlink (l->unix_path);
  g_clear_pointer (&l->unix_path, g_free);
}

static void
listener_free (Listener *l)
{
  listener_close (l);
  g_free (l->address);
  g_free (l);
}

static void
close_listeners (MhServer *server)
{
  for (guint i = 0; i < server->listeners->len; i++)
    listener_free (server->listeners->pdata[i]);
  g_ptr_array_set_size (server->listeners, 0);
}

static void
destroy_source (GSource **src)
{
  if (*src)
    {
      g_source_destroy (*src);
      g_source_unref (*src);
      *src = NULL;
    }
}

void
mh_server_unref (MhServer *server)
{
  if (server == NULL || !g_atomic_int_dec_and_test (&server->refcount))
    return;
  /* Every session holds a reference: none is left here. */
  run_stop_hooks (server);
  close_listeners (server);
  g_ptr_array_unref (server->listeners);
  destroy_source (&server->tick_source);
  destroy_source (&server->grace_source);
  for (guint i = 0; i < G_N_ELEMENTS (server->signal_sources); i++)
    destroy_source (&server->signal_sources[i]);
  if (server->pool)
    g_thread_pool_free (server->pool, FALSE, TRUE);
  g_hash_table_unref (server->sessions);
  g_hash_table_unref (server->services);
  mh_server__tls_creds_unref (server->creds);
  if (server->loop)
    g_main_loop_unref (server->loop);
  if (server->context)
    g_main_context_unref (server->context);
  mh_config_unref (server->config);
  g_free (server);
}

/* ---- services ---------------------------------------------------------- */

static gboolean
known_section (const char *name)
{
  for (const MhCoreService *s = mh_core__services (); s->name; s++)
    if (strcmp (s->name, name) == 0)
      return TRUE;
  return FALSE;
}

gboolean
mh_server_register_service (MhServer *server, const char *name,
                            const MhService *service, gpointer user_data,
                            GDestroyNotify destroy, GError **error)
{
  g_return_val_if_fail (server != NULL && name != NULL, FALSE);
  g_return_val_if_fail (service != NULL, FALSE);
  g_return_val_if_fail (service->version == MH_SERVICE_VERSION, FALSE);
  g_return_val_if_fail (service->engine_new && service->engine_free
                            && service->feed && service->peek_output
                            && service->consume_output
                            && service->is_closing && service->is_closed
                            && service->handle_events,
                        FALSE);

  if (server->started)
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_STATE,
                   "%s: cannot register a service on a started server",
                   name);
      return FALSE;
    }
  if (!known_section (name))
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_SERVICE,
                   "%s: not a service the configuration knows", name);
      return FALSE;
    }
  if (g_hash_table_contains (server->services, name))
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_SERVICE,
                   "%s: service registered twice", name);
      return FALSE;
    }
  MhServerService *svc = g_new0 (MhServerService, 1);
  svc->name = g_strdup (name);
  svc->funcs = *service;
  svc->user_data = user_data;
  svc->destroy = destroy;
  svc->per_ip = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_insert (server->services, svc->name, svc);
  return TRUE;
}

gboolean
mh_server_register_echo_service (MhServer *server, GError **error)
{
  return mh_server_register_service (server, "echo",
                                     mh_server__echo_service (), NULL, NULL,
                                     error);
}

gboolean
mh_server_get_service_info (guint index, const char **name_out,
                            guint *port_out, const char **tls_out)
{
  const MhCoreService *s = mh_core__services ();
  for (guint i = 0; i < index; i++, s++)
    if (s->name == NULL)
      return FALSE;
  if (s->name == NULL)
    return FALSE;
  if (name_out)
    *name_out = s->name;
  if (port_out)
    *port_out = s->port;
  if (tls_out)
    *tls_out = s->tls;
  return TRUE;
}

gboolean
mh_server_has_service (MhServer *server, const char *name)
{
  g_return_val_if_fail (server != NULL && name != NULL, FALSE);
  return g_hash_table_contains (server->services, name);
}

/* ---- addresses --------------------------------------------------------- */

static char *
format_sockaddr (const struct sockaddr *sa, char **ip_out)
{
  char ip[INET6_ADDRSTRLEN] = "";
  if (ip_out)
    *ip_out = NULL;
  if (sa->sa_family == AF_INET)
    {
      const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
      inet_ntop (AF_INET, &in->sin_addr, ip, sizeof ip);
      if (ip_out)
        *ip_out = g_strdup (ip);
      return g_strdup_printf ("%s:%u", ip, ntohs (in->sin_port));
    }
  if (sa->sa_family == AF_INET6)
    {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
      inet_ntop (AF_INET6, &in6->sin6_addr, ip, sizeof ip);
      /* An IPv4-mapped peer counts as its IPv4 address for limits. */
      const char *shown = ip;
      if (IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr)
          && g_str_has_prefix (ip, "::ffff:"))
        shown = ip + 7;
      if (ip_out)
        *ip_out = g_strdup (shown);
      return shown == ip ? g_strdup_printf ("[%s]:%u", ip,
                                            ntohs (in6->sin6_port))
                         : g_strdup_printf ("%s:%u", shown,
                                            ntohs (in6->sin6_port));
    }
  return g_strdup ("unknown");
}

typedef struct
{
  struct sockaddr_storage ss;
  socklen_t len;
  char *unix_path;
} BindAddr;

static void
bind_addr_clear (BindAddr *a)
{
  g_free (a->unix_path);
}

/* Parses "*:PORT", "IP:PORT", "[IPv6]:PORT" or "unix:/path" into 1 or 2
 * addresses. */
static gboolean
parse_listen (MhServer *server, const char *service, const char *entry,
              GArray *out, GError **error)
{
  const char *src = mh_config_get_source (server->config);
  if (src == NULL)
    src = "config";

  if (g_str_has_prefix (entry, "unix:"))
    {
      const char *path = entry + 5;
      BindAddr a = { 0 };
      struct sockaddr_un *un = (struct sockaddr_un *) &a.ss;
      if (*path != '/' || strlen (path) >= sizeof un->sun_path)
        {
          g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_CONFIG,
                       "%s: [%s] listen: '%s': expected unix:/absolute/path "
                       "shorter than %zu bytes",
                       src, service, entry, sizeof un->sun_path);
          return FALSE;
        }
      un->sun_family = AF_UNIX;
      strcpy (un->sun_path, path);
      a.len = sizeof *un;
      a.unix_path = g_strdup (path);
      g_array_append_val (out, a);
      return TRUE;
    }

  const char *colon = strrchr (entry, ':');
  guint64 port = 0;
  g_autofree char *host = NULL;
  if (colon != NULL)
    host = g_strndup (entry, (gsize) (colon - entry));
  if (colon == NULL
      || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL)
      || *host == '\0')
    goto bad;

  if (strcmp (host, "*") == 0)
    {
      BindAddr a4 = { 0 }, a6 = { 0 };
      struct sockaddr_in *in = (struct sockaddr_in *) &a4.ss;
      in->sin_family = AF_INET;
      in->sin_port = htons ((guint16) port);
      in->sin_addr.s_addr = htonl (INADDR_ANY);
      a4.len = sizeof *in;
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &a6.ss;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons ((guint16) port);
      in6->sin6_addr = in6addr_any;
      a6.len = sizeof *in6;
      g_array_append_val (out, a4);
      g_array_append_val (out, a6);
      return TRUE;
    }

  gsize hl = strlen (host);
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
    {
      BindAddr a = { 0 };
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &a.ss;
      host[hl - 1] = '\0';
      if (inet_pton (AF_INET6, host + 1, &in6->sin6_addr) != 1)
        goto bad;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons ((guint16) port);
      a.len = sizeof *in6;
      g_array_append_val (out, a);
      return TRUE;
    }
  {
    BindAddr a = { 0 };
    struct sockaddr_in *in = (struct sockaddr_in *) &a.ss;
    if (inet_pton (AF_INET, host, &in->sin_addr) != 1)
      goto bad;
    in->sin_family = AF_INET;
    in->sin_port = htons ((guint16) port);
    a.len = sizeof *in;
    g_array_append_val (out, a);
    return TRUE;
  }

bad:
  g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_CONFIG,
               "%s: [%s] listen: '%s': expected *:PORT, IPv4:PORT, "
               "[IPv6]:PORT or unix:/path (PORT 0 to 65535)",
               src, service, entry);
  return FALSE;
}

static gboolean
parse_mode (MhServer *server, const char *service, guint *mode_out,
            GError **error)
{
  const char *text = mh_config_get_string (server->config, service,
                                           "socket_mode");
  guint64 mode = 0;
  if (text == NULL
      || !g_ascii_string_to_unsigned (text, 8, 0, 0777, &mode, NULL))
    {
      const char *src = mh_config_get_source (server->config);
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_CONFIG,
                   "%s: [%s] socket_mode: expected an octal mode such as "
                   "0660, got '%s'",
                   src ? src : "config", service, text ? text : "");
      return FALSE;
    }
  *mode_out = (guint) mode;
  return TRUE;
}

static gboolean
listen_fail (GError **error, const char *service, const char *addr, int e)
{
  g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_LISTEN,
               "%s: cannot listen on %s: %s", service, addr, g_strerror (e));
  return FALSE;
}

/* Replaces a stale unix socket; refuses a live one or a non-socket. */
static gboolean
unix_prepare (const char *service, const BindAddr *a, GError **error)
{
  struct stat st;
  if (lstat (a->unix_path, &st) != 0)
    return TRUE;
  g_autofree char *shown = g_strconcat ("unix:", a->unix_path, NULL);
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_LISTEN,
                   "%s: cannot listen on %s: the path exists and is not a "
                   "socket",
                   service, shown);
      return FALSE;
    }
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return listen_fail (error, service, shown, errno);
  int rc = connect (fd, (const struct sockaddr *) &a->ss, a->len);
  close (fd);
  if (rc == 0)
    return listen_fail (error, service, shown, EADDRINUSE);
  if (unlink (a->unix_path) != 0 && errno != ENOENT)
    return listen_fail (error, service, shown, errno);
  return TRUE;
}

static gboolean accept_ready (int fd, GIOCondition cond, gpointer user_data);

static void
listener_arm (Listener *l)
{
  l->source = g_unix_fd_source_new (l->fd, G_IO_IN);
  g_source_set_callback (l->source, G_SOURCE_FUNC (accept_ready), l, NULL);
  g_source_set_static_name (l->source, "mh-listener");
  g_source_attach (l->source, l->server->context);
}

static gboolean
bind_one (MhServer *server, MhServerService *svc, BindAddr *a, guint mode,
          GError **error)
{
  int family = a->ss.ss_family;
  g_autofree char *shown
      = family == AF_UNIX ? g_strconcat ("unix:", a->unix_path, NULL)
                          : format_sockaddr ((struct sockaddr *) &a->ss, NULL);

  if (family == AF_UNIX && !unix_prepare (svc->name, a, error))
    return FALSE;

  int fd = socket (family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return listen_fail (error, svc->name, shown, errno);
  int one = 1;
  if (family != AF_UNIX)
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6)
    setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);

  /* A unix socket is created with the umask; tighten it until chmod so
   * it is never more open than configured. */
  mode_t old_mask = 0;
  if (family == AF_UNIX)
    old_mask = umask (0177);
  int rc = bind (fd, (const struct sockaddr *) &a->ss, a->len);
  int e = errno;
  if (family == AF_UNIX)
    umask (old_mask);
  if (rc != 0)
    {
      close (fd);
      return listen_fail (error, svc->name, shown, e);
    }
  if (family == AF_UNIX && chmod (a->unix_path, (mode_t) mode) != 0)
    {
      e = errno;
      close (fd);
      unlink (a->unix_path);
      return listen_fail (error, svc->name, shown, e);
    }
  if (listen (fd, 511) != 0)
    {
      e = errno;
      close (fd);
      if (family == AF_UNIX)
        unlink (a->unix_path);
      return listen_fail (error, svc->name, shown, e);
    }

  Listener *l = g_new0 (Listener, 1);
  l->server = server;
  l->service = svc;
  l->fd = fd;
  l->unix_path = g_strdup (a->unix_path);
  l->implicit_tls = svc->tls == MH_TLS_MODE_IMPLICIT;
  if (family == AF_UNIX)
    l->address = g_steal_pointer (&shown);
  else
    {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      getsockname (fd, (struct sockaddr *) &ss, &len);
      l->address = format_sockaddr ((struct sockaddr *) &ss, NULL);
    }
  g_ptr_array_add (server->listeners, l);
  return TRUE;
}

static gboolean
bind_service (MhServer *server, MhServerService *svc, GError **error)
{
  g_auto (GStrv) entries = mh_config_get_list (server->config, svc->name,
                                               "listen");
  guint mode = 0660;
  if (!parse_mode (server, svc->name, &mode, error))
    return FALSE;
  if (entries[0] == NULL)
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_CONFIG,
                   "%s: [%s] listen: the service is enabled but has no "
                   "address",
                   mh_config_get_source (server->config)
                       ? mh_config_get_source (server->config)
                       : "config",
                   svc->name);
      return FALSE;
    }
  for (char **e = entries; *e; e++)
    {
      g_autoptr (GArray) addrs = g_array_new (FALSE, TRUE, sizeof (BindAddr));
      g_array_set_clear_func (addrs, (GDestroyNotify) bind_addr_clear);
      if (!parse_listen (server, svc->name, *e, addrs, error))
        return FALSE;
      gboolean wildcard = g_str_has_prefix (*e, "*:");
      for (guint i = 0; i < addrs->len; i++)
        {
          BindAddr *a = &g_array_index (addrs, BindAddr, i);
          g_autoptr (GError) local = NULL;
          if (bind_one (server, svc, a, mode, &local))
            continue;
          /* "*:PORT" on a host without IPv6 still serves IPv4. */
          if (wildcard && a->ss.ss_family == AF_INET6
              && g_str_has_suffix (local->message,
                                   g_strerror (EAFNOSUPPORT)))
            {
              mh_log_warning (svc->name, NULL, NULL, "%s", local->message);
              continue;
            }
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- accepting ---------------------------------------------------------- */

static guint
ip_count (MhServerService *svc, const char *ip)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (svc->per_ip, ip));
}

static void
refuse (Listener *l, int fd, const char *peer, MhServerGoodbye reason)
{
  MhServerService *svc = l->service;
  mh_log_notice (svc->name, NULL, peer, "refused: %s",
                 reason == MH_SERVER_GOODBYE_TOO_MANY_FROM_IP
                     ? "too many connections from this address"
                     : "too many connections");
  if (!l->implicit_tls && svc->funcs.goodbye)
    {
      const char *line = svc->funcs.goodbye (reason, svc->user_data);
      /* Best effort: the socket buffer is empty, one line fits. */
      if (line && send (fd, line, strlen (line), MSG_NOSIGNAL | MSG_DONTWAIT)
                      < 0)
        (void) 0;
    }
  close (fd);
}

static gboolean
resume_accept (gpointer user_data)
{
  Listener *l = user_data;
  g_source_unref (l->pause_source);
  l->pause_source = NULL;
  if (l->fd >= 0 && l->source == NULL)
    listener_arm (l);
  return G_SOURCE_REMOVE;
}

static void
accept_one (Listener *l, int fd, const struct sockaddr *sa)
{
  MhServer *server = l->server;
  MhServerService *svc = l->service;
  g_autofree char *peer_ip = NULL;
  g_autofree char *peer = NULL;
  g_autofree char *local = NULL;

  if (sa->sa_family == AF_UNIX)
    peer = g_strdup (l->address);
  else
    {
      peer = format_sockaddr (sa, &peer_ip);
      int one = 1;
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  struct sockaddr_storage ls;
  socklen_t ll = sizeof ls;
  if (sa->sa_family != AF_UNIX
      && getsockname (fd, (struct sockaddr *) &ls, &ll) == 0)
    local = format_sockaddr ((struct sockaddr *) &ls, NULL);
  else
    local = g_strdup (l->address);

  guint total = g_hash_table_size (server->sessions);
  guint svc_max = svc->max_total ? svc->max_total : server->max_total;
  if (total >= server->max_total || svc->n_sessions >= svc_max)
    {
      refuse (l, fd, peer, MH_SERVER_GOODBYE_TOO_MANY_CONNECTIONS);
      return;
    }
  if (peer_ip && svc->max_per_ip && ip_count (svc, peer_ip) >= svc->max_per_ip)
    {
      refuse (l, fd, peer, MH_SERVER_GOODBYE_TOO_MANY_FROM_IP);
      return;
    }

  MhServerSession *s = mh_server__session_new (
      server, svc, fd, peer, peer_ip, local, l->implicit_tls, ++server->serial);
  s->counted = TRUE;
  svc->n_sessions++;
  if (peer_ip)
    g_hash_table_replace (svc->per_ip, g_strdup (peer_ip),
                          GUINT_TO_POINTER (ip_count (svc, peer_ip) + 1));
  g_hash_table_add (server->sessions, s);
  mh_server__session_begin (s);
}

static gboolean
accept_ready (int listen_fd, GIOCondition cond, gpointer user_data)
{
  Listener *l = user_data;
  for (int i = 0; i < ACCEPT_BATCH && !l->server->shutting_down; i++)
    {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      int fd = accept4 (l->fd, (struct sockaddr *) &ss, &len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        {
          if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
              || errno == ENOMEM)
            {
              /* Out of descriptors: pause this listener for a second
               * rather than spin on a readable socket we cannot take. */
              mh_log_error (l->service->name, NULL, NULL,
                            "accept on %s: %s; pausing for 1 s", l->address,
                            g_strerror (errno));
              l->pause_source = g_timeout_source_new (1000);
              g_source_set_callback (l->pause_source, resume_accept, l, NULL);
              g_source_attach (l->pause_source, l->server->context);
              g_source_unref (l->source);
              l->source = NULL;
              return G_SOURCE_REMOVE;
            }
          break; /* EAGAIN */
        }
      if (l->unix_path)
        ss.ss_family = AF_UNIX; /* unnamed peer: the address is empty */
      accept_one (l, fd, (struct sockaddr *) &ss);
    }
  return G_SOURCE_CONTINUE;
}

/* ---- sessions call back -------------------------------------------------- */

MhConfig *
mh_server__config (MhServer *server)
{
  return server->config;
}

MhTlsCreds *
mh_server__current_creds (MhServer *server)
{
  return server->creds;
}

gint64
mh_server__handshake_timeout_us (MhServer *server)
{
  return mh_config_get_int (server->config, "limits",
                            "tls_handshake_timeout")
         * G_USEC_PER_SEC;
}

gboolean
mh_server__shutting_down (MhServer *server)
{
  return server->shutting_down;
}

static void
check_finished (MhServer *server)
{
  if (!server->shutting_down || server->finished)
    return;
  if (g_hash_table_size (server->sessions) > 0 || server->pending_jobs > 0)
    return;
  server->finished = TRUE;
  destroy_source (&server->grace_source);
  mh_log_notice (NULL, NULL, NULL, "shutdown complete");
  if (server->loop)
    g_main_loop_quit (server->loop);
}

void
mh_server__session_closed (MhServer *server, MhServerSession *s)
{
  if (s->counted)
    {
      MhServerService *svc = s->service;
      s->counted = FALSE;
      svc->n_sessions--;
      if (s->peer_ip)
        {
          guint n = ip_count (svc, s->peer_ip);
          if (n <= 1)
            g_hash_table_remove (svc->per_ip, s->peer_ip);
          else
            g_hash_table_replace (svc->per_ip, g_strdup (s->peer_ip),
                                  GUINT_TO_POINTER (n - 1));
        }
    }
  mh_server_ref (server);
  g_hash_table_remove (server->sessions, s); /* may free s */
  check_finished (server);
  mh_server_unref (server);
}

static gboolean
job_done_idle (gpointer job)
{
  mh_server__job_done (job);
  return G_SOURCE_REMOVE;
}

static void
pool_func (gpointer job, gpointer user_data)
{
  MhServer *server = user_data;
  mh_server__job_run (job);
  g_main_context_invoke_full (server->context, G_PRIORITY_DEFAULT,
                              job_done_idle, job, NULL);
}

void
mh_server__push_job (MhServer *server, gpointer job)
{
  g_autoptr (GError) error = NULL;
  server->pending_jobs++;
  if (!g_thread_pool_push (server->pool, job, &error))
    g_error ("lib/server: cannot start a worker thread: %s", error->message);
}

void
mh_server__job_finished (MhServer *server)
{
  server->pending_jobs--;
  check_finished (server);
}

/* ---- start, tick, signals, shutdown -------------------------------------- */

static GList *
session_snapshot (MhServer *server)
{
  GList *list = g_hash_table_get_keys (server->sessions);
  for (GList *l = list; l; l = l->next)
    mh_server_session_ref (l->data);
  return list;
}

static gboolean
tick (gpointer user_data)
{
  MhServer *server = user_data;
  gint64 now = g_get_monotonic_time ();
  GList *list = session_snapshot (server);
  for (GList *l = list; l; l = l->next)
    mh_server__session_tick (l->data, now);
  g_list_free_full (list, (GDestroyNotify) mh_server_session_unref);
  return G_SOURCE_CONTINUE;
}

static MhTlsMode
tls_mode (const char *text)
{
  if (g_strcmp0 (text, "implicit") == 0)
    return MH_TLS_MODE_IMPLICIT;
  if (g_strcmp0 (text, "starttls") == 0)
    return MH_TLS_MODE_STARTTLS;
  return MH_TLS_MODE_NONE;
}

static const char *
tls_mode_name (MhTlsMode m)
{
  return m == MH_TLS_MODE_IMPLICIT   ? "implicit"
         : m == MH_TLS_MODE_STARTTLS ? "starttls"
                                     : "none";
}

gboolean
mh_server_start (MhServer *server, GError **error)
{
  g_return_val_if_fail (server != NULL, FALSE);
  MhConfig *c = server->config;

  if (server->started)
    {
      g_set_error (error, MH_SERVER_ERROR, MH_SERVER_ERROR_STATE,
                   "the server is already started");
      return FALSE;
    }
  server->context = g_main_context_ref_thread_default ();
  server->max_total = (guint) mh_config_get_int (c, "limits",
                                                 "max_connections");
  guint limit_ip = (guint) mh_config_get_int (c, "limits",
                                              "max_connections_per_ip");
  gint64 idle = mh_config_get_int (c, "limits", "idle_timeout");
  gint64 command = mh_config_get_int (c, "limits", "command_timeout");

  /* Which services run: enabled in the config and built in. */
  g_autoptr (GPtrArray) run = g_ptr_array_new ();
  for (const MhCoreService *cs = mh_core__services (); cs->name; cs++)
    {
      if (!mh_config_get_bool (c, cs->name, "enabled"))
        continue;
      MhServerService *svc = g_hash_table_lookup (server->services, cs->name);
      if (svc == NULL)
        {
          mh_log_notice (cs->name, NULL, NULL,
                         "enabled in the configuration but not built into "
                         "this program yet; skipped");
          continue;
        }
      svc->tls = tls_mode (mh_config_get_string (c, cs->name, "tls"));
      svc->max_total = (guint) mh_config_get_int (c, cs->name,
                                                  "max_connections");
      svc->max_per_ip = (guint) mh_config_get_int (c, cs->name,
                                                   "max_connections_per_ip");
      if (svc->max_per_ip == 0)
        svc->max_per_ip = limit_ip;
      gint64 v = mh_config_get_int (c, cs->name, "idle_timeout");
      svc->idle_timeout_us = (v ? v : idle) * G_USEC_PER_SEC;
      v = mh_config_get_int (c, cs->name, "command_timeout");
      svc->command_timeout_us = (v ? v : command) * G_USEC_PER_SEC;
      if (svc->tls != MH_TLS_MODE_NONE)
        server->tls_needed = TRUE;
      g_ptr_array_add (run, svc);
    }

  if (server->tls_needed)
    {
      server->creds = mh_server__tls_creds_load (c, error);
      if (server->creds == NULL)
        return FALSE;
    }

  for (guint i = 0; i < run->len; i++)
    if (!bind_service (server, run->pdata[i], error))
      {
        close_listeners (server);
        g_clear_pointer (&server->creds, mh_server__tls_creds_unref);
        return FALSE;
      }

  /* Exclusive: the workers start now and stay. A shared pool keeps only
   * two unused threads (GLib's process-wide default), so the others
   * exited and were created again between the 64 KiB parts of one long
   * FETCH. */
  server->pool = g_thread_pool_new (
      pool_func, server,
      (gint) mh_config_get_int (c, "general", "worker_threads"), TRUE,
      error);
  if (server->pool == NULL)
    {
      close_listeners (server);
      return FALSE;
    }

  for (guint i = 0; i < server->listeners->len; i++)
    {
      Listener *l = server->listeners->pdata[i];
      listener_arm (l);
      mh_log_notice (l->service->name, NULL, NULL, "listening on %s (tls: %s)",
                     l->address, tls_mode_name (l->service->tls));
    }
  server->tick_source = g_timeout_source_new (TICK_MS);
  g_source_set_callback (server->tick_source, tick, server, NULL);
  g_source_set_static_name (server->tick_source, "mh-server-tick");
  g_source_attach (server->tick_source, server->context);
  server->started = TRUE;
  return TRUE;
}

char **
mh_server_get_listeners (MhServer *server)
{
  g_return_val_if_fail (server != NULL, NULL);
  GStrvBuilder *b = g_strv_builder_new ();
  for (guint i = 0; i < server->listeners->len; i++)
    {
      Listener *l = server->listeners->pdata[i];
      g_autofree char *line = g_strdup_printf (
          "%s %s %s", l->service->name, l->address,
          tls_mode_name (l->service->tls));
      g_strv_builder_add (b, line);
    }
  char **out = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return out;
}

guint
mh_server_get_session_count (MhServer *server)
{
  g_return_val_if_fail (server != NULL, 0);
  return g_hash_table_size (server->sessions);
}

gboolean
mh_server_reload_tls (MhServer *server, GError **error)
{
  g_return_val_if_fail (server != NULL, FALSE);
  if (!server->tls_needed)
    return TRUE;
  MhTlsCreds *fresh = mh_server__tls_creds_load (server->config, error);
  if (fresh == NULL)
    return FALSE;
  mh_server__tls_creds_unref (server->creds);
  server->creds = fresh;
  mh_log_notice ("tls", NULL, NULL, "reloaded certificate %s",
                 fresh->cert_path);
  return TRUE;
}

static gboolean
grace_expired (gpointer user_data)
{
  MhServer *server = user_data;
  g_source_unref (server->grace_source);
  server->grace_source = NULL;
  mh_log_warning (NULL, NULL, NULL,
                  "shutdown grace period over: cutting %u connections, %u "
                  "jobs still running",
                  g_hash_table_size (server->sessions), server->pending_jobs);
  GList *list = session_snapshot (server);
  for (GList *l = list; l; l = l->next)
    mh_server__session_close (l->data, "shutdown grace period over");
  g_list_free_full (list, (GDestroyNotify) mh_server_session_unref);
  if (!server->finished)
    {
      server->finished = TRUE;
      server->cut_off = server->pending_jobs > 0;
      if (server->loop)
        g_main_loop_quit (server->loop);
    }
  return G_SOURCE_REMOVE;
}

void
mh_server_shutdown (MhServer *server)
{
  g_return_if_fail (server != NULL);
  if (server->shutting_down)
    return;
  server->shutting_down = TRUE;
  mh_log_notice (NULL, NULL, NULL,
                 "shutting down: %u connections, %u jobs in flight",
                 g_hash_table_size (server->sessions), server->pending_jobs);
  close_listeners (server);
  gint64 grace = mh_config_get_int (server->config, "general",
                                    "shutdown_grace");
  if (server->context)
    {
      server->grace_source = g_timeout_source_new_seconds ((guint) grace);
      g_source_set_callback (server->grace_source, grace_expired, server,
                             NULL);
      g_source_attach (server->grace_source, server->context);
    }
  GList *list = session_snapshot (server);
  for (GList *l = list; l; l = l->next)
    mh_server__session_goodbye (l->data, MH_SERVER_GOODBYE_SHUTDOWN);
  g_list_free_full (list, (GDestroyNotify) mh_server_session_unref);
  run_stop_hooks (server);
  check_finished (server);
}

gboolean
mh_server_run (MhServer *server)
{
  g_return_val_if_fail (server != NULL && server->started, FALSE);
  if (!server->finished)
    {
      if (server->loop == NULL)
        server->loop = g_main_loop_new (server->context, FALSE);
      g_main_loop_run (server->loop);
    }
  return !server->cut_off;
}

static gboolean
on_term (gpointer user_data)
{
  mh_log_notice (NULL, NULL, NULL, "signal: shutting down");
  mh_server_shutdown (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_hup (gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  if (!mh_server_reload_tls (user_data, &error))
    mh_log_error ("tls", NULL, NULL, "reload failed, keeping the old "
                  "certificate: %s", error->message);
  return G_SOURCE_CONTINUE;
}

void
mh_server_handle_signals (MhServer *server)
{
  g_return_if_fail (server != NULL && server->context != NULL);
  const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
  for (guint i = 0; i < 3; i++)
    {
      if (server->signal_sources[i])
        continue;
      GSource *src = g_unix_signal_source_new (sigs[i]);
      g_source_set_callback (src, sigs[i] == SIGHUP ? on_hup : on_term,
                             server, NULL);
      g_source_attach (src, server->context);
      server->signal_sources[i] = src;
    }
}

/* ---- privileges ---------------------------------------------------------- */

static gboolean
priv_fail (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
priv_fail (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, MH_SERVER_ERROR, MH_SERVER_ERROR_PRIVILEGES,
                       msg);
  return FALSE;
}

gboolean
mh_server_drop_privileges (const char *user, const char *group,
                           GError **error)
{
  if (user != NULL && *user == '\0')
    user = NULL;
  if (geteuid () != 0)
    {
      if (user == NULL)
        return TRUE;
      struct passwd *pw = getpwnam (user);
      if (pw != NULL && pw->pw_uid == geteuid ())
        return TRUE;
      return priv_fail (error,
                        "cannot switch to user '%s': not running as root",
                        user);
    }
  if (user == NULL)
    {
      mh_log_warning (NULL, NULL, NULL,
                      "running as root: set [general] user or --user so "
                      "the server drops privileges after binding");
      return TRUE;
    }

  errno = 0;
  struct passwd *pw = getpwnam (user);
  if (pw == NULL)
    return priv_fail (error, "cannot switch to user '%s': no such user",
                      user);
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  g_autofree char *name = g_strdup (pw->pw_name);
  if (group != NULL && *group != '\0')
    {
      struct group *gr = getgrnam (group);
      if (gr == NULL)
        return priv_fail (error, "cannot switch to group '%s': no such group",
                          group);
      gid = gr->gr_gid;
    }
  if (uid == 0)
    return priv_fail (error, "user '%s' is root; choose an unprivileged "
                      "account", user);

  if (initgroups (name, gid) != 0)
    return priv_fail (error, "initgroups(%s): %s", name, g_strerror (errno));
  if (setresgid (gid, gid, gid) != 0)
    return priv_fail (error, "setresgid(%u): %s", (guint) gid,
                      g_strerror (errno));
  if (setresuid (uid, uid, uid) != 0)
    return priv_fail (error, "setresuid(%u): %s", (guint) uid,
                      g_strerror (errno));

  /* Verify it stuck: no way back to root, ids as asked. */
  if (setuid (0) == 0 || seteuid (0) == 0)
    return priv_fail (error, "dropped to '%s' but could regain root", name);
  if (getuid () != uid || geteuid () != uid || getgid () != gid
      || getegid () != gid)
    return priv_fail (error, "dropping to '%s' did not take effect", name);
  mh_log_notice (NULL, NULL, NULL, "running as user %s (uid %u, gid %u)",
                 name, (guint) uid, (guint) gid);
  return TRUE;
}
