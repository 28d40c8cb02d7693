/* lib/auth internals shared across its files and with the unit tests (not
 * installed). */
#pragma once

#include "mailhost/auth.h"
#include "mailhost/limits.h"
#include "core/core-private.h"

G_BEGIN_DECLS

/* Strict RFC 4648 section 4 base64: alphabet only, length a multiple of
 * 4, '=' only as final padding, padding bits zero. No whitespace. On
 * success *out_r is a NUL-terminated (for convenience; the data may hold
 * NULs) buffer of *out_len_r bytes; wipe it with mh_auth__free_secret. */
gboolean mh_auth__base64_decode (const char *in, gsize len, guint8 **out_r,
                                 gsize *out_len_r, GError **error);

/* Wipes @len bytes at @p and frees it. NULL-safe. */
void mh_auth__free_secret (void *p, gsize len);

/* Field checks shared by SASL mechanisms and mh_sasl_credentials_new.
 * @what names the field in messages ("authcid", "user name"). Neither
 * ever quotes the field's content: users type passwords into user name
 * boxes, and errors end up in logs. */
gboolean mh_auth__check_identity (const guint8 *p, gsize len,
                                  const char *what, guint max,
                                  GError **error);
gboolean mh_auth__check_password (const guint8 *p, gsize len, guint max,
                                  GError **error);

/* Takes ownership of the three strings (authzid may be NULL). */
MhSaslCredentials *mh_auth__credentials_take (char *authzid, char *authcid,
                                              char *password);

/* The network a peer address is throttled as: IPv4 addresses whole
 * (IPv4-mapped IPv6 too), IPv6 by /64. Written as 16 bytes to @net_out.
 * Returns FALSE for NULL or a string that is not an IP address (the
 * caller then uses one shared bucket). */
gboolean mh_auth__peer_network (const char *peer_ip, guint8 net_out[16]);

G_END_DECLS
