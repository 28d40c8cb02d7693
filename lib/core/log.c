/* lib/core logging: structured records through GLib.
 *
 * The library only emits records (g_log_structured_array with our own
 * fields); it never picks a destination. Programs call mh_log_install()
 * to choose stderr lines or the journal. Records from GLib and GMime
 * pass through the same writer, so one process has one log format.
 */
#include "core-private.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const level_names[] = {
  "error", "warning", "notice", "info", "debug",
};

static GLogLevelFlags
to_glib (MhLogLevel level)
{
  switch (level)
    {
    case MH_LOG_ERROR: return G_LOG_LEVEL_CRITICAL;
    case MH_LOG_WARNING: return G_LOG_LEVEL_WARNING;
    case MH_LOG_NOTICE: return G_LOG_LEVEL_MESSAGE;
    case MH_LOG_INFO: return G_LOG_LEVEL_INFO;
    case MH_LOG_DEBUG: default: return G_LOG_LEVEL_DEBUG;
    }
}

static MhLogLevel
from_glib (GLogLevelFlags flags)
{
  if (flags & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    return MH_LOG_ERROR;
  if (flags & G_LOG_LEVEL_WARNING)
    return MH_LOG_WARNING;
  if (flags & G_LOG_LEVEL_MESSAGE)
    return MH_LOG_NOTICE;
  if (flags & G_LOG_LEVEL_INFO)
    return MH_LOG_INFO;
  return MH_LOG_DEBUG;
}

gboolean
mh_log_level_from_string (const char *name, MhLogLevel *level_out)
{
  for (guint i = 0; i < G_N_ELEMENTS (level_names); i++)
    if (name != NULL && g_ascii_strcasecmp (name, level_names[i]) == 0)
      {
        *level_out = (MhLogLevel) i;
        return TRUE;
      }
  return FALSE;
}

void
mh_log_message (MhLogLevel level, const char *service, const char *session,
                const char *peer, const char *message)
{
  GLogField fields[6];
  gsize n = 0;

  fields[n++] = (GLogField){ "MESSAGE", message ? message : "", -1 };
  fields[n++] = (GLogField){ "GLIB_DOMAIN", "mailhost", -1 };
  fields[n++] = (GLogField){ "PRIORITY", /* syslog numbers */
    (const char *[]){ "3", "4", "5", "6", "7" }[CLAMP ((int) level, 0, 4)],
    -1 };
  if (service)
    fields[n++] = (GLogField){ "MH_SERVICE", service, -1 };
  if (session)
    fields[n++] = (GLogField){ "MH_SESSION", session, -1 };
  if (peer)
    fields[n++] = (GLogField){ "MH_PEER", peer, -1 };
  g_log_structured_array (to_glib (level), fields, n);
}

void
mh_core__logf (MhLogLevel level, const char *service, const char *session,
               const char *peer, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  mh_log_message (level, service, session, peer, msg);
}

/* ---- the writer programs install -------------------------------------- */

typedef struct
{
  MhLogTarget target;
  MhLogLevel max_level;
} Writer;

static const char *
field (const GLogField *fields, gsize n, const char *key)
{
  for (gsize i = 0; i < n; i++)
    if (strcmp (fields[i].key, key) == 0)
      return fields[i].length < 0 ? fields[i].value : NULL;
  return NULL;
}

static GLogWriterOutput
writer_func (GLogLevelFlags flags, const GLogField *fields, gsize n,
             gpointer user_data)
{
  const Writer *w = user_data;
  MhLogLevel level = from_glib (flags);

  if (level > w->max_level)
    return G_LOG_WRITER_HANDLED;
  if (w->target == MH_LOG_TARGET_JOURNAL)
    {
      if (g_log_writer_journald (flags, fields, n, NULL)
          == G_LOG_WRITER_HANDLED)
        return G_LOG_WRITER_HANDLED;
      /* no journal: fall through to stderr rather than lose the record */
    }

  const char *svc = field (fields, n, "MH_SERVICE");
  const char *sess = field (fields, n, "MH_SESSION");
  const char *peer = field (fields, n, "MH_PEER");
  const char *msg = field (fields, n, "MESSAGE");
  const char *dom = field (fields, n, "GLIB_DOMAIN");

  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *ts = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S");
  GString *line = g_string_sized_new (128);

  g_string_append_printf (line, "%s.%03dZ %s ", ts,
                          g_date_time_get_microsecond (now) / 1000,
                          level_names[level]);
  if (svc)
    g_string_append (line, svc);
  else
    g_string_append (line, dom ? dom : "glib");
  if (sess)
    g_string_append_printf (line, "[%s]", sess);
  if (peer)
    g_string_append_printf (line, " %s", peer);
  g_string_append (line, ": ");
  /* one record, one line: a peer must not forge log lines */
  for (const char *p = msg ? msg : ""; *p; p++)
    {
      if (*p == '\n' || *p == '\r')
        g_string_append (line, "\\n");
      else if ((guchar) *p < 0x20 && *p != '\t')
        g_string_append_printf (line, "\\x%02x", (guchar) *p);
      else
        g_string_append_c (line, *p);
    }
  g_string_append_c (line, '\n');
  fwrite (line->str, 1, line->len, stderr);
  fflush (stderr);
  g_string_free (line, TRUE);
  return G_LOG_WRITER_HANDLED;
}

void
mh_log_install (MhLogTarget target, MhLogLevel max_level)
{
  /* Lives as long as the process: the GLib writer is process-wide. */
  Writer *w = g_new0 (Writer, 1);

  if (target == MH_LOG_TARGET_AUTO)
    target = g_log_writer_is_journald (STDERR_FILENO) ? MH_LOG_TARGET_JOURNAL
                                                      : MH_LOG_TARGET_STDERR;
  w->target = target;
  w->max_level = max_level;
  g_log_set_writer_func (writer_func, w, NULL);
}
