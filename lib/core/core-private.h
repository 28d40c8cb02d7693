/* lib/core internals shared across layers (not installed). */
#pragma once

#include "mailhost/core.h"
#include "mailhost/limits.h"

G_BEGIN_DECLS

/* printf-style logging for library code. Public callers use
 * mh_log_message(); varargs stay out of the public API (bindings). */
void mh_core__logf (MhLogLevel level, const char *service,
                    const char *session, const char *peer,
                    const char *fmt, ...) G_GNUC_PRINTF (5, 6);

#define mh_log_error(svc, sess, peer, ...) \
  mh_core__logf (MH_LOG_ERROR, svc, sess, peer, __VA_ARGS__)
#define mh_log_warning(svc, sess, peer, ...) \
  mh_core__logf (MH_LOG_WARNING, svc, sess, peer, __VA_ARGS__)
#define mh_log_notice(svc, sess, peer, ...) \
  mh_core__logf (MH_LOG_NOTICE, svc, sess, peer, __VA_ARGS__)
#define mh_log_info(svc, sess, peer, ...) \
  mh_core__logf (MH_LOG_INFO, svc, sess, peer, __VA_ARGS__)
#define mh_log_debug(svc, sess, peer, ...) \
  mh_core__logf (MH_LOG_DEBUG, svc, sess, peer, __VA_ARGS__)

/* Parses "30", "30s", "5m", "2h", "1d", "1w" into seconds. */
gboolean mh_core__parse_duration (const char *text, gint64 *seconds_out);
/* Parses "512", "64k", "20M", "2G" (powers of 1024) into bytes. */
gboolean mh_core__parse_size (const char *text, gint64 *bytes_out);

/* Constant-time comparison of two byte strings; the time depends only on
 * the length of @b (the expected value), never on where they differ. */
gboolean mh_core__memeq_ct (const void *a, gsize alen, const void *b,
                            gsize blen);

/* Overwrites @len bytes at @p in a way the compiler cannot elide. */
void mh_core__wipe (void *p, gsize len);

/* The configured services and their standard ports/TLS modes, from the
 * schema: "smtp", "submission", ... NULL-terminated, static. */
typedef struct
{
  const char *name;
  guint port;            /* standard port; demo adds 10000 */
  const char *tls;       /* "none", "starttls" or "implicit" */
} MhCoreService;
const MhCoreService *mh_core__services (void);

G_END_DECLS
