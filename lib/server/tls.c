/* lib/server TLS: credentials, priorities, self-signed certificates.
 *
 * Design notes
 * - GnuTLS directly (not glib-networking): we need non-blocking
 *   handshakes on our own sockets, the negotiated version and cipher for
 *   Received headers, and a reload that never disturbs running sessions.
 * - Credentials are reference counted (MhTlsCreds). A SIGHUP builds a new
 *   set and swaps the server's pointer; sessions keep the set they began
 *   with until they end. A set that fails to load is never swapped in.
 * - Files are read with GLib first so an unreadable file gives the path
 *   and the errno text, not a bare GnuTLS code; GnuTLS then checks that
 *   the key matches the certificate (GNUTLS_E_CERTIFICATE_KEY_MISMATCH).
 * - TLS 1.2 is the floor whatever the configured priority string says:
 *   the version part is always appended last, so it wins (RFC 8996
 *   deprecates 1.0 and 1.1).
 * - Self-signed certificates (for --demo): ECDSA P-256 by default, SAN
 *   from the given names (IP literals become iPAddress entries), one year,
 *   serverAuth. Written to temporary files and renamed; the key is 0600
 *   from the moment it exists.
 */
#include "server-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <stdio.h>

void
mh_server__tls_paths (MhConfig *config, char **cert_out, char **key_out)
{
  const char *data = mh_config_get_string (config, "general", "data_dir");
  const char *cert = mh_config_get_string (config, "tls", "cert");
  const char *key = mh_config_get_string (config, "tls", "key");

  *cert_out = cert ? g_strdup (cert)
                   : g_build_filename (data, "tls", "cert.pem", NULL);
  *key_out = key ? g_strdup (key)
                 : g_build_filename (data, "tls", "key.pem", NULL);
}

char *
mh_server__tls_priority_string (MhConfig *config)
{
  const char *base = mh_config_get_string (config, "tls", "priority");
  const char *min = mh_config_get_string (config, "tls", "min_version");
  const char *vers = g_strcmp0 (min, "1.3") == 0
                         ? "-VERS-ALL:+VERS-TLS1.3"
                         : "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

  if (base == NULL || *base == '\0')
    base = "NORMAL";
  return g_strdup_printf ("%s:%s", base, vers);
}

MhTlsCreds *
mh_server__tls_creds_ref (MhTlsCreds *creds)
{
  g_atomic_int_inc (&creds->refcount);
  return creds;
}

void
mh_server__tls_creds_unref (MhTlsCreds *creds)
{
  if (creds == NULL || !g_atomic_int_dec_and_test (&creds->refcount))
    return;
  if (creds->cred)
    gnutls_certificate_free_credentials (creds->cred);
  if (creds->prio)
    gnutls_priority_deinit (creds->prio);
  g_free (creds->cert_path);
  g_free (creds->key_path);
  g_free (creds);
}

static gboolean
tls_fail (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
tls_fail (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, MH_SERVER_ERROR, MH_SERVER_ERROR_TLS, msg);
  return FALSE;
}

static gboolean
read_pem (const char *what, const char *path, char **data_out,
          gsize *len_out, GError **error)
{
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, data_out, len_out, &local))
    return tls_fail (error, "tls: cannot read %s %s: %s", what, path,
                     local->message);
  if (*len_out == 0)
    return tls_fail (error, "tls: %s %s is empty", what, path);
  return TRUE;
}

/* Loads @cert_path and @key_path into @cred, with clear messages. */
static gboolean
load_pair (gnutls_certificate_credentials_t cred, const char *cert_path,
           const char *key_path, GError **error)
{
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  gsize cert_len = 0, key_len = 0;

  if (!read_pem ("certificate", cert_path, &cert, &cert_len, error)
      || !read_pem ("key", key_path, &key, &key_len, error))
    return FALSE;

  gnutls_datum_t c = { (unsigned char *) cert, (unsigned int) cert_len };
  gnutls_datum_t k = { (unsigned char *) key, (unsigned int) key_len };
  int rc = gnutls_certificate_set_x509_key_mem2 (cred, &c, &k,
                                                 GNUTLS_X509_FMT_PEM, NULL,
                                                 0);
  mh_core__wipe (key, key_len);
  if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
    return tls_fail (error, "tls: certificate %s does not match key %s",
                     cert_path, key_path);
  if (rc < 0)
    return tls_fail (error, "tls: cannot load certificate %s with key %s: %s",
                     cert_path, key_path, gnutls_strerror (rc));

  /* An expired certificate still loads (clients decide), but say so. */
  gnutls_x509_crt_t crt = NULL;
  if (gnutls_x509_crt_init (&crt) == 0)
    {
      if (gnutls_x509_crt_import (crt, &c, GNUTLS_X509_FMT_PEM) == 0)
        {
          time_t exp = gnutls_x509_crt_get_expiration_time (crt);
          if (exp != (time_t) -1 && exp < time (NULL))
            mh_log_warning ("tls", NULL, NULL,
                            "certificate %s expired; clients will refuse it",
                            cert_path);
        }
      gnutls_x509_crt_deinit (crt);
    }
  return TRUE;
}

MhTlsCreds *
mh_server__tls_creds_load (MhConfig *config, GError **error)
{
  MhTlsCreds *creds = g_new0 (MhTlsCreds, 1);
  creds->refcount = 1;
  mh_server__tls_paths (config, &creds->cert_path, &creds->key_path);

  g_autofree char *prio = mh_server__tls_priority_string (config);
  const char *errpos = NULL;
  int rc = gnutls_priority_init (&creds->prio, prio, &errpos);
  if (rc < 0)
    {
      creds->prio = NULL;
      tls_fail (error, "%s: [tls] priority: GnuTLS rejects '%s' at '%s': %s",
                mh_config_get_source (config)
                    ? mh_config_get_source (config)
                    : "config",
                prio, errpos ? errpos : "?", gnutls_strerror (rc));
      mh_server__tls_creds_unref (creds);
      return NULL;
    }
  rc = gnutls_certificate_allocate_credentials (&creds->cred);
  if (rc < 0)
    {
      creds->cred = NULL;
      tls_fail (error, "tls: %s", gnutls_strerror (rc));
      mh_server__tls_creds_unref (creds);
      return NULL;
    }
  if (!load_pair (creds->cred, creds->cert_path, creds->key_path, error))
    {
      mh_server__tls_creds_unref (creds);
      return NULL;
    }
  return creds;
}

gboolean
mh_server_tls_check_files (const char *cert_path, const char *key_path,
                           GError **error)
{
  g_return_val_if_fail (cert_path != NULL && key_path != NULL, FALSE);
  gnutls_certificate_credentials_t cred = NULL;
  int rc = gnutls_certificate_allocate_credentials (&cred);
  if (rc < 0)
    return tls_fail (error, "tls: %s", gnutls_strerror (rc));
  gboolean ok = load_pair (cred, cert_path, key_path, error);
  gnutls_certificate_free_credentials (cred);
  return ok;
}

/* ---- self-signed certificates ----------------------------------------- */

/* Writes @data to @path via a temporary file created with @mode. */
static gboolean
write_atomic (const char *path, const void *data, gsize len, mode_t mode,
              GError **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s.tmp-XXXXXX", path);
  int fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, (int) mode);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                   "tls: cannot create %s: %s", tmp, g_strerror (e));
      return FALSE;
    }
  fchmod (fd, mode);
  const guint8 *p = data;
  gsize left = len;
  while (left > 0)
    {
      ssize_t n = write (fd, p, left);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = errno;
          close (fd);
          unlink (tmp);
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                       "tls: cannot write %s: %s", tmp, g_strerror (e));
          return FALSE;
        }
      p += n;
      left -= (gsize) n;
    }
  if (fsync (fd) != 0 || close (fd) != 0)
    {
      int e = errno;
      unlink (tmp);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                   "tls: cannot write %s: %s", tmp, g_strerror (e));
      return FALSE;
    }
  if (rename (tmp, path) != 0)
    {
      int e = errno;
      unlink (tmp);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
                   "tls: cannot rename %s to %s: %s", tmp, path,
                   g_strerror (e));
      return FALSE;
    }
  return TRUE;
}

#define GT(call)                                                           \
  do                                                                       \
    {                                                                      \
      int rc_ = (call);                                                    \
      if (rc_ < 0)                                                         \
        {                                                                  \
          tls_fail (error, "tls: generating a certificate: %s: %s", #call, \
                    gnutls_strerror (rc_));                                \
          goto out;                                                        \
        }                                                                  \
    }                                                                      \
  while (0)

gboolean
mh_server_tls_generate_self_signed (const char *cert_path,
                                    const char *key_path,
                                    const char *const *names,
                                    MhTlsKeyType key_type, GError **error)
{
  g_return_val_if_fail (cert_path != NULL && key_path != NULL, FALSE);
  g_return_val_if_fail (names != NULL && names[0] != NULL, FALSE);

  gboolean ok = FALSE;
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t key_pem = { NULL, 0 };
  gnutls_datum_t crt_pem = { NULL, 0 };

  for (const char *const *n = names; *n; n++)
    if (**n == '\0' || strlen (*n) > MH_LIMIT_DOMAIN_MAX)
      return tls_fail (error, "tls: '%s' is not a usable certificate name",
                       *n);

  GT (gnutls_x509_privkey_init (&key));
  if (key_type == MH_TLS_KEY_RSA_2048)
    GT (gnutls_x509_privkey_generate (key, GNUTLS_PK_RSA, 2048, 0));
  else
    GT (gnutls_x509_privkey_generate (
        key, GNUTLS_PK_ECDSA,
        GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1), 0));

  GT (gnutls_x509_crt_init (&crt));
  GT (gnutls_x509_crt_set_version (crt, 3));
  guint8 serial[16];
  GT (gnutls_rnd (GNUTLS_RND_NONCE, serial, sizeof serial));
  serial[0] &= 0x7f; /* a positive INTEGER (RFC 5280 4.1.2.2) */
  GT (gnutls_x509_crt_set_serial (crt, serial, sizeof serial));
  time_t now = time (NULL);
  GT (gnutls_x509_crt_set_activation_time (crt, now - 60));
  GT (gnutls_x509_crt_set_expiration_time (crt, now + 365 * 86400));
  GT (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                     names[0], (unsigned) strlen (names[0])));
  for (const char *const *n = names; *n; n++)
    {
      g_autoptr (GInetAddress) ip = g_inet_address_new_from_string (*n);
      if (ip != NULL)
        GT (gnutls_x509_crt_set_subject_alt_name (
            crt, GNUTLS_SAN_IPADDRESS, g_inet_address_to_bytes (ip),
            (unsigned) g_inet_address_get_native_size (ip),
            GNUTLS_FSAN_APPEND));
      else
        GT (gnutls_x509_crt_set_subject_alt_name (
            crt, GNUTLS_SAN_DNSNAME, *n, (unsigned) strlen (*n),
            GNUTLS_FSAN_APPEND));
    }
  GT (gnutls_x509_crt_set_basic_constraints (crt, 0, -1));
  GT (gnutls_x509_crt_set_key_usage (
      crt, GNUTLS_KEY_DIGITAL_SIGNATURE
               | (key_type == MH_TLS_KEY_RSA_2048 ? GNUTLS_KEY_KEY_ENCIPHERMENT
                                                  : 0)));
  GT (gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
  GT (gnutls_x509_crt_set_key (crt, key));
  guint8 keyid[64];
  size_t keyid_len = sizeof keyid;
  GT (gnutls_x509_crt_get_key_id (crt, GNUTLS_KEYID_USE_SHA1, keyid,
                                  &keyid_len));
  GT (gnutls_x509_crt_set_subject_key_id (crt, keyid, keyid_len));
  GT (gnutls_x509_crt_sign2 (crt, crt, key, GNUTLS_DIG_SHA256, 0));

  GT (gnutls_x509_privkey_export2 (key, GNUTLS_X509_FMT_PEM, &key_pem));
  GT (gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, &crt_pem));

  /* Key first: a certificate without its key is the worse half-state. */
  if (!write_atomic (key_path, key_pem.data, key_pem.size, 0600, error))
    goto out;
  if (!write_atomic (cert_path, crt_pem.data, crt_pem.size, 0644, error))
    goto out;
  ok = TRUE;

out:
  if (key_pem.data)
    {
      mh_core__wipe (key_pem.data, key_pem.size);
      gnutls_free (key_pem.data);
    }
  if (crt_pem.data)
    gnutls_free (crt_pem.data);
  if (crt)
    gnutls_x509_crt_deinit (crt);
  if (key)
    gnutls_x509_privkey_deinit (key);
  return ok;
}

char *
mh_server_tls_get_fingerprint (const char *cert_path, GError **error)
{
  g_return_val_if_fail (cert_path != NULL, NULL);
  g_autofree char *pem = NULL;
  gsize len = 0;
  if (!read_pem ("certificate", cert_path, &pem, &len, error))
    return NULL;

  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t d = { (unsigned char *) pem, (unsigned int) len };
  guint8 fp[32];
  size_t fp_len = sizeof fp;
  int rc = gnutls_x509_crt_init (&crt);
  if (rc == 0)
    rc = gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_PEM);
  if (rc == 0)
    rc = gnutls_x509_crt_get_fingerprint (crt, GNUTLS_DIG_SHA256, fp,
                                          &fp_len);
  if (crt)
    gnutls_x509_crt_deinit (crt);
  if (rc < 0)
    {
      tls_fail (error, "tls: certificate %s: %s", cert_path,
                gnutls_strerror (rc));
      return NULL;
    }
  GString *out = g_string_sized_new (fp_len * 3);
  for (size_t i = 0; i < fp_len; i++)
    g_string_append_printf (out, "%s%02X", i ? ":" : "", fp[i]);
  return g_string_free (out, FALSE);
}
