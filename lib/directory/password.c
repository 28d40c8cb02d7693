/* lib/directory passwords: hashing with libcrypt, verifying many schemes.
 *
 * Design notes
 * - New hashes are yescrypt ("$y$", libxcrypt's default cost), made by
 *   crypt_gensalt_ra() + crypt_rn(): the reentrant forms, since a server
 *   verifies from several threads. We never write a KDF of our own.
 * - Verification accepts what people import from Dovecot and Postfix
 *   setups: crypt(3) strings ("$y$", "$gy$", "$7$", "$6$", "$5$",
 *   "$2b$"/"$2y$"/"$2a$", "$1$") and Dovecot "{SCHEME}" prefixes. The
 *   salted/unsalted SHA schemes are base64 (Dovecot's default) or hex
 *   when the length says so; digests come from GChecksum.
 * - Every comparison of secret-derived bytes is mh_core__memeq_ct(); the
 *   crypt_data scratch area and any copy of the password (SSHA's
 *   password+salt buffer) are wiped before they are freed.
 * - check_hash() validates shape only (scheme known, lengths and alphabet
 *   right) and never runs the KDF: an import of 10,000 bcrypt hashes
 *   must not cost 10,000 bcrypt computations.
 * - A password is 1 to MH_LIMIT_PASSWORD_MAX bytes; longer input is
 *   refused before any hashing, so a client cannot make us hash megabytes.
 */
#include "directory-private.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum
{
  SCHEME_CRYPT,       /* any crypt(3) string */
  SCHEME_PLAIN,
  SCHEME_DIGEST,      /* H(pw) */
  SCHEME_SALTED,      /* H(pw + salt) + salt */
} SchemeKind;

typedef struct
{
  const char *name;          /* Dovecot name, upper case */
  SchemeKind kind;
  const char *crypt_prefix;  /* for typed crypt schemes: "$6$" ... */
  GChecksumType checksum;
  gsize digest_len;
} Scheme;

static const Scheme schemes[] = {
  { "CRYPT", SCHEME_CRYPT, NULL, 0, 0 },
  { "SHA512-CRYPT", SCHEME_CRYPT, "$6$", 0, 0 },
  { "SHA256-CRYPT", SCHEME_CRYPT, "$5$", 0, 0 },
  { "BLF-CRYPT", SCHEME_CRYPT, "$2", 0, 0 },
  { "MD5-CRYPT", SCHEME_CRYPT, "$1$", 0, 0 },
  { "PLAIN", SCHEME_PLAIN, NULL, 0, 0 },
  { "CLEARTEXT", SCHEME_PLAIN, NULL, 0, 0 },
  { "SHA", SCHEME_DIGEST, NULL, G_CHECKSUM_SHA1, 20 },
  { "SHA1", SCHEME_DIGEST, NULL, G_CHECKSUM_SHA1, 20 },
  { "SHA256", SCHEME_DIGEST, NULL, G_CHECKSUM_SHA256, 32 },
  { "SHA512", SCHEME_DIGEST, NULL, G_CHECKSUM_SHA512, 64 },
  { "SSHA", SCHEME_SALTED, NULL, G_CHECKSUM_SHA1, 20 },
  { "SSHA256", SCHEME_SALTED, NULL, G_CHECKSUM_SHA256, 32 },
  { "SSHA512", SCHEME_SALTED, NULL, G_CHECKSUM_SHA512, 64 },
};

/* crypt(3) prefixes we accept, with the length of their final
 * ('$'-separated) checksum segment, or the total length for bcrypt. */
typedef struct
{
  const char *prefix;
  const char *name;
  gsize hash_len;      /* of the last segment; 0 = total_len */
  gsize total_len;
} CryptMethod;

static const CryptMethod crypt_methods[] = {
  { "$y$", "yescrypt", 43, 0 },
  { "$gy$", "gost-yescrypt", 43, 0 },
  { "$7$", "scrypt", 43, 0 },
  { "$6$", "sha512-crypt", 86, 0 },
  { "$5$", "sha256-crypt", 43, 0 },
  { "$2b$", "bcrypt", 0, 60 },
  { "$2y$", "bcrypt", 0, 60 },
  { "$2a$", "bcrypt", 0, 60 },
  { "$1$", "md5-crypt", 22, 0 },
};

static const CryptMethod *
crypt_method (const char *hash)
{
  for (gsize i = 0; i < G_N_ELEMENTS (crypt_methods); i++)
    if (g_str_has_prefix (hash, crypt_methods[i].prefix))
      return &crypt_methods[i];
  return NULL;
}

/* Splits "{SCHEME}rest": returns the scheme (NULL if unknown) and sets
 * *rest. Scheme names are case-insensitive, as in Dovecot. */
static const Scheme *
dovecot_scheme (const char *hash, const char **rest, gboolean *braced)
{
  *braced = FALSE;
  *rest = hash;
  if (hash[0] != '{')
    return NULL;
  const char *close = strchr (hash, '}');
  if (close == NULL || close - hash > 32)
    return NULL;
  *braced = TRUE;
  gsize n = (gsize) (close - hash - 1);
  *rest = close + 1;
  for (gsize i = 0; i < G_N_ELEMENTS (schemes); i++)
    if (strlen (schemes[i].name) == n
        && g_ascii_strncasecmp (schemes[i].name, hash + 1, n) == 0)
      return &schemes[i];
  return NULL;
}

const char *
mh_directory__hash_scheme (const char *hash)
{
  if (hash == NULL)
    return NULL;
  const char *rest;
  gboolean braced;
  const Scheme *s = dovecot_scheme (hash, &rest, &braced);
  if (braced)
    {
      if (s == NULL)
        return NULL;
      if (s->kind == SCHEME_CRYPT)
        {
          const CryptMethod *m = crypt_method (rest);
          return m ? m->name : s->name;
        }
      return s->name;
    }
  const CryptMethod *m = crypt_method (hash);
  return m ? m->name : NULL;
}

static gboolean
crypt_shape_ok (const char *hash, GError **error)
{
  const CryptMethod *m = crypt_method (hash);
  if (m == NULL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "unknown crypt method in '%.8s...' (accepted: $y$, $gy$, "
                   "$7$, $6$, $5$, $2b$, $2y$, $2a$, $1$)", hash);
      return FALSE;
    }
  for (const char *p = hash; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("./$=,", *p) == NULL)
      {
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                     "%s hash contains '%c', not in its alphabet", m->name,
                     *p);
        return FALSE;
      }
  int cs = crypt_checksalt (hash);
  if (cs != CRYPT_SALT_OK && cs != CRYPT_SALT_METHOD_LEGACY
      && cs != CRYPT_SALT_TOO_CHEAP)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "%s hash has a malformed setting or a method this "
                   "libcrypt does not support", m->name);
      return FALSE;
    }
  gsize len = strlen (hash);
  if (m->total_len != 0 && len != m->total_len)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "%s hash has %zu characters, expected %zu", m->name, len,
                   m->total_len);
      return FALSE;
    }
  if (m->hash_len != 0)
    {
      const char *last = strrchr (hash, '$');
      gsize seg = strlen (last + 1);
      if (seg != m->hash_len || last < hash + strlen (m->prefix))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "%s hash is truncated or malformed (checksum of %zu "
                       "characters, expected %zu)", m->name, seg,
                       m->hash_len);
          return FALSE;
        }
    }
  return TRUE;
}

/* Decodes Dovecot's digest encodings: hex when the length is exactly
 * that of the hex digest, else base64. */
static guint8 *
decode_digest (const char *text, gsize digest_len, gboolean salted,
               gsize *len_out)
{
  gsize tl = strlen (text);
  if (!salted && tl == 2 * digest_len)
    {
      guint8 *out = g_malloc (digest_len);
      for (gsize i = 0; i < digest_len; i++)
        {
          int hi = g_ascii_xdigit_value (text[2 * i]);
          int lo = g_ascii_xdigit_value (text[2 * i + 1]);
          if (hi < 0 || lo < 0)
            {
              g_free (out);
              goto b64;
            }
          out[i] = (guint8) (hi << 4 | lo);
        }
      *len_out = digest_len;
      return out;
    }
b64:
  if (tl == 0 || tl % 4 != 0)
    return NULL;
  for (gsize i = 0; i < tl; i++)
    if (!g_ascii_isalnum (text[i]) && text[i] != '+' && text[i] != '/'
        && !(text[i] == '=' && i >= tl - 2))
      return NULL;
  return g_base64_decode (text, len_out);
}

gboolean
mh_directory_password_check_hash (const char *hash, GError **error)
{
  if (hash == NULL || *hash == '\0')
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "password hash is empty");
      return FALSE;
    }
  gsize len = strlen (hash);
  if (len > MH_LIMIT_PASSWORD_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "password hash is too long: %zu bytes, at most %d", len,
                   MH_LIMIT_PASSWORD_MAX);
      return FALSE;
    }
  for (const char *p = hash; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      {
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                     "password hash contains a control character");
        return FALSE;
      }
  const char *rest;
  gboolean braced;
  const Scheme *s = dovecot_scheme (hash, &rest, &braced);
  if (braced && s == NULL)
    {
      const char *close = strchr (hash, '}');
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "unknown password scheme '%.*s' (accepted: {CRYPT}, "
                   "{SHA512-CRYPT}, {SHA256-CRYPT}, {BLF-CRYPT}, {MD5-CRYPT}, "
                   "{PLAIN}, {SHA}, {SHA256}, {SHA512}, {SSHA}, {SSHA256}, "
                   "{SSHA512})", (int) (close - hash + 1), hash);
      return FALSE;
    }
  if (!braced)
    {
      if (hash[0] != '$')
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "'%.12s...' is not a password hash: expected a "
                       "crypt(3) string ($y$, $6$, ...) or a {SCHEME} "
                       "prefix", hash);
          return FALSE;
        }
      return crypt_shape_ok (hash, error);
    }
  switch (s->kind)
    {
    case SCHEME_CRYPT:
      if (s->crypt_prefix != NULL && !g_str_has_prefix (rest, s->crypt_prefix))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "{%s} hash does not start with '%s'", s->name,
                       s->crypt_prefix);
          return FALSE;
        }
      return crypt_shape_ok (rest, error);
    case SCHEME_PLAIN:
      if (*rest == '\0')
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "{%s} password is empty", s->name);
          return FALSE;
        }
      return TRUE;
    case SCHEME_DIGEST:
    case SCHEME_SALTED:
      {
        gsize dl = 0;
        g_autofree guint8 *d = decode_digest (rest, s->digest_len,
                                              s->kind == SCHEME_SALTED, &dl);
        gboolean ok = d != NULL
                      && (s->kind == SCHEME_DIGEST ? dl == s->digest_len
                                                   : dl > s->digest_len);
        if (!ok)
          {
            g_set_error (error, MH_DIRECTORY_ERROR,
                         MH_DIRECTORY_ERROR_INVALID,
                         "{%s} hash is not base64 of a %s%zu-byte digest",
                         s->name, s->kind == SCHEME_SALTED ? "salt and " : "",
                         s->digest_len);
            return FALSE;
          }
        return TRUE;
      }
    }
  return FALSE;
}

static gboolean
crypt_verify (const char *password, const char *setting)
{
  struct crypt_data *cd = g_new0 (struct crypt_data, 1);
  const char *r = crypt_rn (password, setting, cd, sizeof *cd);
  gboolean ok = FALSE;
  /* Failure is NULL or a string starting with '*' (never a valid hash). */
  if (r != NULL && r[0] != '*')
    ok = mh_core__memeq_ct (r, strlen (r), setting, strlen (setting));
  mh_core__wipe (cd, sizeof *cd);
  g_free (cd);
  return ok;
}

static gboolean
digest_verify (const Scheme *s, const char *password, const char *encoded)
{
  gsize dl = 0;
  guint8 *d = decode_digest (encoded, s->digest_len, s->kind == SCHEME_SALTED,
                             &dl);
  if (d == NULL)
    return FALSE;
  gboolean ok = FALSE;
  if (s->kind == SCHEME_DIGEST ? dl == s->digest_len : dl > s->digest_len)
    {
      gsize pl = strlen (password);
      gsize sl = s->kind == SCHEME_SALTED ? dl - s->digest_len : 0;
      guint8 *buf = g_malloc (pl + sl + 1);
      memcpy (buf, password, pl);
      memcpy (buf + pl, d + s->digest_len, sl);
      GChecksum *ck = g_checksum_new (s->checksum);
      g_checksum_update (ck, buf, (gssize) (pl + sl));
      guint8 out[64];
      gsize ol = sizeof out;
      g_checksum_get_digest (ck, out, &ol);
      g_checksum_free (ck);
      ok = mh_core__memeq_ct (out, ol, d, s->digest_len);
      mh_core__wipe (buf, pl + sl);
      mh_core__wipe (out, sizeof out);
      g_free (buf);
    }
  g_free (d);
  return ok;
}

gboolean
mh_directory_password_verify (const char *password, const char *hash)
{
  if (password == NULL || hash == NULL || *hash == '\0')
    return FALSE;
  if (*password == '\0' || strlen (password) > MH_LIMIT_PASSWORD_MAX)
    return FALSE;
  const char *rest;
  gboolean braced;
  const Scheme *s = dovecot_scheme (hash, &rest, &braced);
  if (!braced)
    return hash[0] == '$' && crypt_method (hash) != NULL
           && crypt_verify (password, hash);
  if (s == NULL)
    return FALSE;
  switch (s->kind)
    {
    case SCHEME_CRYPT:
      if (s->crypt_prefix != NULL && !g_str_has_prefix (rest, s->crypt_prefix))
        return FALSE;
      return crypt_method (rest) != NULL && crypt_verify (password, rest);
    case SCHEME_PLAIN:
      return *rest != '\0'
             && mh_core__memeq_ct (password, strlen (password), rest,
                                   strlen (rest));
    case SCHEME_DIGEST:
    case SCHEME_SALTED:
      return digest_verify (s, password, rest);
    }
  return FALSE;
}

static gboolean
password_ok (const char *password, GError **error)
{
  if (password == NULL || *password == '\0')
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "password is empty");
      return FALSE;
    }
  gsize len = strlen (password);
  if (len > MH_LIMIT_PASSWORD_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "password is too long: %zu bytes, at most %d", len,
                   MH_LIMIT_PASSWORD_MAX);
      return FALSE;
    }
  return TRUE;
}

char *
mh_directory_password_hash (const char *password, GError **error)
{
  return mh_directory__password_hash_cost (password, 0, error);
}

char *
mh_directory__password_hash_cost (const char *password, guint cost,
                                  GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!password_ok (password, error))
    return NULL;
  /* cost 0: libxcrypt's default cost for yescrypt. */
  char *setting = crypt_gensalt_ra ("$y$", cost, NULL, 0);
  if (setting == NULL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
                   "cannot make a yescrypt salt: %s", g_strerror (errno));
      return NULL;
    }
  struct crypt_data *cd = g_new0 (struct crypt_data, 1);
  const char *r = crypt_rn (password, setting, cd, sizeof *cd);
  char *out = NULL;
  if (r != NULL && r[0] != '*')
    out = g_strdup (r);
  else
    g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_FAILED,
                 "yescrypt hashing failed");
  mh_core__wipe (cd, sizeof *cd);
  g_free (cd);
  free (setting);
  return out;
}

char *
mh_directory__dummy_hash (guint cost, GError **error)
{
  /* A random password nobody knows, hashed the way real ones are, so an
   * unknown user costs what a known one does. */
  char pw[33];
  for (gsize i = 0; i < 32; i++)
    pw[i] = "0123456789abcdef"[g_random_int_range (0, 16)];
  pw[32] = '\0';
  char *h = mh_directory__password_hash_cost (pw, cost, error);
  mh_core__wipe (pw, sizeof pw);
  return h;
}
