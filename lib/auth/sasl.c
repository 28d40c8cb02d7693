/* lib/auth SASL server mechanisms: PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login-00), sans-I/O.
 *
 * Design notes
 * - An exchange is a small state machine:
 *
 *     NEW --start(IR)--> WAIT_PLAIN  --feed--> DONE
 *                     \-> WAIT_USER --feed--> WAIT_PASS --feed--> DONE
 *     any state --error--> FAILED;   DONE/FAILED --feed--> FAILED(STATE)
 *
 *   PLAIN with an initial response goes straight to DONE; LOGIN with one
 *   (clients send "AUTH LOGIN <b64 user>") skips to WAIT_PASS.
 * - Every error is final. RFC 4954 4 and RFC 3501 6.2.2 have the server
 *   reject the whole AUTH command on a bad response, and giving the
 *   client a second try inside one exchange would only dodge the
 *   throttle, which counts exchanges.
 * - Wire data is (ptr, len). We decode base64 ourselves, strictly:
 *   g_base64_decode() skips invalid characters, so "AG=Fs*ZQ" and worse
 *   would decode to something, and a lenient decoder is a parser
 *   differential waiting to happen (a proxy in front of us may read the
 *   same bytes differently).
 * - Limits: the base64 line (before decoding, so decoding allocates at
 *   most 3/4 of max_line), each identity (RFC 4616 2 asks servers to take
 *   at least 255 octets), the password, and the number of challenges.
 * - Secrets: the decoded message holds the password; it is wiped as soon
 *   as the fields are copied out, and the LOGIN user name and the final
 *   credentials are wiped on free. Error messages name the field that is
 *   wrong and never quote it (people type passwords into user name
 *   boxes, and messages reach logs).
 * - Identities must be UTF-8 without control characters (RFC 4616 uses
 *   SASLprep, which prohibits them, RFC 4013 2.3); passwords must be
 *   UTF-8 without NUL. Passwords are compared as bytes: no SASLprep
 *   mapping, as Dovecot does by default, so a password set with mhctl
 *   is the one that works.
 */
#include "auth-private.h"

#include <string.h>

G_DEFINE_QUARK (mh-auth-error-quark, mh_auth_error)

G_DEFINE_ENUM_TYPE (MhAuthError, mh_auth_error,
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_FAILED, "failed"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_MECHANISM, "mechanism"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_ENCRYPTION_REQUIRED,
                       "encryption-required"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_MALFORMED, "malformed"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_TOO_LONG, "too-long"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_TOO_MANY_STEPS, "too-many-steps"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_CANCELLED, "cancelled"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_STATE, "state"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_AUTHZID, "authzid"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_DISABLED, "disabled"),
  G_DEFINE_ENUM_VALUE (MH_AUTH_ERROR_UNAVAILABLE, "unavailable"))

G_DEFINE_ENUM_TYPE (MhSaslStatus, mh_sasl_status,
  G_DEFINE_ENUM_VALUE (MH_SASL_STATUS_CHALLENGE, "challenge"),
  G_DEFINE_ENUM_VALUE (MH_SASL_STATUS_DONE, "done"),
  G_DEFINE_ENUM_VALUE (MH_SASL_STATUS_FAILED, "failed"))

/* ---- Mechanism table -------------------------------------------------- */

typedef enum
{
  MECH_PLAIN,
  MECH_LOGIN,
} MechId;

typedef struct
{
  const char *name;
  MechId id;
  gboolean plaintext; /* the password crosses the wire as is */
} Mech;

/* Strongest first: this is the order we advertise. */
static const Mech mechs[] = {
  { "PLAIN", MECH_PLAIN, TRUE },
  { "LOGIN", MECH_LOGIN, TRUE },
};

static const Mech *
mech_find (const char *name)
{
  if (name == NULL)
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (mechs); i++)
    if (g_ascii_strcasecmp (name, mechs[i].name) == 0)
      return &mechs[i];
  return NULL;
}

gboolean
mh_sasl_mechanism_is_known (const char *name)
{
  return mech_find (name) != NULL;
}

gboolean
mh_sasl_mechanism_is_plaintext (const char *name)
{
  const Mech *m = mech_find (name);
  return m != NULL && m->plaintext;
}

gboolean
mh_sasl_mechanism_allowed (const char *name, gboolean tls,
                           gboolean allow_plaintext)
{
  const Mech *m = mech_find (name);
  if (m == NULL)
    return FALSE;
  return !m->plaintext || tls || allow_plaintext;
}

char **
mh_sasl_mechanisms_list (gboolean tls, gboolean allow_plaintext)
{
  GStrvBuilder *b = g_strv_builder_new ();
  for (gsize i = 0; i < G_N_ELEMENTS (mechs); i++)
    if (!mechs[i].plaintext || tls || allow_plaintext)
      g_strv_builder_add (b, mechs[i].name);
  char **list = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return list;
}

/* ---- Secrets and base64 ----------------------------------------------- */

void
mh_auth__free_secret (void *p, gsize len)
{
  if (p == NULL)
    return;
  mh_core__wipe (p, len);
  g_free (p);
}

static void
free_secret_str (char *s)
{
  if (s != NULL)
    mh_auth__free_secret (s, strlen (s));
}

static int
b64_value (guint8 c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

gboolean
mh_auth__base64_decode (const char *in, gsize len, guint8 **out_r,
                        gsize *out_len_r, GError **error)
{
  *out_r = NULL;
  *out_len_r = 0;

  if (len % 4 != 0)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                   "malformed base64: length %" G_GSIZE_FORMAT
                   " is not a multiple of 4",
                   len);
      return FALSE;
    }

  gsize pad = 0;
  if (len >= 4 && in[len - 1] == '=')
    pad = (in[len - 2] == '=') ? 2 : 1;

  guint8 *out = g_malloc (len / 4 * 3 + 1);
  gsize o = 0;
  for (gsize i = 0; i < len; i += 4)
    {
      guint32 acc = 0;
      for (gsize j = 0; j < 4; j++)
        {
          guint8 c = (guint8) in[i + j];
          int v = b64_value (c);
          /* '=' may only be the last one or two characters. */
          if (v < 0 && !(c == '=' && i + j >= len - pad))
            {
              mh_auth__free_secret (out, len / 4 * 3 + 1);
              if (c == '=')
                g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                             "malformed base64: padding '=' at offset %"
                             G_GSIZE_FORMAT " before the end",
                             i + j);
              else if (c >= 0x21 && c < 0x7f)
                g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                             "malformed base64: invalid character '%c' at "
                             "offset %" G_GSIZE_FORMAT,
                             c, i + j);
              else
                g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                             "malformed base64: invalid byte 0x%02x at "
                             "offset %" G_GSIZE_FORMAT,
                             c, i + j);
              return FALSE;
            }
          acc = (acc << 6) | (guint32) (v < 0 ? 0 : v);
        }
      out[o++] = (guint8) (acc >> 16);
      out[o++] = (guint8) (acc >> 8);
      out[o++] = (guint8) acc;
    }

  /* RFC 4648 3.5: the bits padding leaves over must be zero; encoders
   * never set them, so a set bit means the data is not what it seems. */
  guint8 last = len ? (guint8) b64_value ((guint8) in[len - 1 - pad]) : 0;
  if ((pad == 1 && (last & 0x03)) || (pad == 2 && (last & 0x0f)))
    {
      mh_auth__free_secret (out, len / 4 * 3 + 1);
      g_set_error_literal (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                           "malformed base64: non-zero padding bits "
                           "(not canonical encoding)");
      return FALSE;
    }

  o -= pad;
  out[o] = '\0';
  *out_r = out;
  *out_len_r = o;
  return TRUE;
}

/* ---- Field validation ------------------------------------------------- */

gboolean
mh_auth__check_identity (const guint8 *p, gsize len, const char *what,
                         guint max, GError **error)
{
  if (len == 0)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                   "empty %s", what);
      return FALSE;
    }
  if (len > max)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                   "%s is %" G_GSIZE_FORMAT " bytes, over the limit of %u",
                   what, len, max);
      return FALSE;
    }
  const guint8 *nul = memchr (p, '\0', len);
  if (nul != NULL)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                   "%s contains a NUL byte at offset %" G_GSIZE_FORMAT,
                   what, (gsize) (nul - p));
      return FALSE;
    }
  const char *end = NULL;
  if (!g_utf8_validate_len ((const char *) p, len, &end))
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                   "%s is not valid UTF-8 (at offset %" G_GSIZE_FORMAT ")",
                   what, (gsize) ((const guint8 *) end - p));
      return FALSE;
    }
  /* RFC 4013 2.3 (C.2.1, C.2.2): no ASCII or Unicode control characters
   * in identities; they would also let a user name forge log lines. */
  for (const char *s = (const char *) p; s < (const char *) p + len;
       s = g_utf8_next_char (s))
    if (g_unichar_iscntrl (g_utf8_get_char (s)))
      {
        g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                     "%s contains a control character at offset %"
                     G_GSIZE_FORMAT,
                     what, (gsize) ((const guint8 *) s - p));
        return FALSE;
      }
  return TRUE;
}

gboolean
mh_auth__check_password (const guint8 *p, gsize len, guint max,
                         GError **error)
{
  if (len == 0)
    {
      g_set_error_literal (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                           "empty password");
      return FALSE;
    }
  if (len > max)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                   "password is %" G_GSIZE_FORMAT
                   " bytes, over the limit of %u",
                   len, max);
      return FALSE;
    }
  /* RFC 4616 2: passwd = 1*SAFE, and SAFE excludes NUL; a third NUL in a
   * PLAIN message lands here. */
  if (memchr (p, '\0', len) != NULL)
    {
      g_set_error_literal (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                           "password contains a NUL byte");
      return FALSE;
    }
  if (!g_utf8_validate_len ((const char *) p, len, NULL))
    {
      g_set_error_literal (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                           "password is not valid UTF-8");
      return FALSE;
    }
  return TRUE;
}

/* ---- Credentials ------------------------------------------------------ */

struct _MhSaslCredentials
{
  char *authzid; /* NULL when none */
  char *authcid;
  char *password;
};

G_DEFINE_BOXED_TYPE (MhSaslCredentials, mh_sasl_credentials,
                     mh_sasl_credentials_copy, mh_sasl_credentials_free)

MhSaslCredentials *
mh_auth__credentials_take (char *authzid, char *authcid, char *password)
{
  MhSaslCredentials *c = g_new0 (MhSaslCredentials, 1);
  c->authzid = authzid;
  c->authcid = authcid;
  c->password = password;
  return c;
}

MhSaslCredentials *
mh_sasl_credentials_new (const char *authzid, const char *authcid,
                         const char *password, GError **error)
{
  g_return_val_if_fail (authcid != NULL, NULL);
  g_return_val_if_fail (password != NULL, NULL);

  if (authzid != NULL && *authzid != '\0'
      && !mh_auth__check_identity ((const guint8 *) authzid,
                                   strlen (authzid), "authorization identity",
                                   MH_LIMIT_SASL_ID_MAX, error))
    return NULL;
  if (!mh_auth__check_identity ((const guint8 *) authcid, strlen (authcid),
                                "user name", MH_LIMIT_SASL_ID_MAX, error))
    return NULL;
  if (!mh_auth__check_password ((const guint8 *) password, strlen (password),
                                MH_LIMIT_PASSWORD_MAX, error))
    return NULL;
  return mh_auth__credentials_take (
      (authzid != NULL && *authzid != '\0') ? g_strdup (authzid) : NULL,
      g_strdup (authcid), g_strdup (password));
}

MhSaslCredentials *
mh_sasl_credentials_copy (const MhSaslCredentials *creds)
{
  g_return_val_if_fail (creds != NULL, NULL);
  return mh_auth__credentials_take (g_strdup (creds->authzid),
                                    g_strdup (creds->authcid),
                                    g_strdup (creds->password));
}

void
mh_sasl_credentials_free (MhSaslCredentials *creds)
{
  if (creds == NULL)
    return;
  free_secret_str (creds->authzid);
  free_secret_str (creds->authcid);
  free_secret_str (creds->password);
  mh_core__wipe (creds, sizeof *creds);
  g_free (creds);
}

const char *
mh_sasl_credentials_get_authzid (const MhSaslCredentials *creds)
{
  g_return_val_if_fail (creds != NULL, NULL);
  return creds->authzid;
}

const char *
mh_sasl_credentials_get_authcid (const MhSaslCredentials *creds)
{
  g_return_val_if_fail (creds != NULL, NULL);
  return creds->authcid;
}

const char *
mh_sasl_credentials_get_password (const MhSaslCredentials *creds)
{
  g_return_val_if_fail (creds != NULL, NULL);
  return creds->password;
}

/* ---- Limits ----------------------------------------------------------- */

MhSaslLimits *
mh_sasl_limits_copy (const MhSaslLimits *limits)
{
  g_return_val_if_fail (limits != NULL, NULL);
  return g_memdup2 (limits, sizeof *limits);
}

void
mh_sasl_limits_free (MhSaslLimits *limits)
{
  g_free (limits);
}

G_DEFINE_BOXED_TYPE (MhSaslLimits, mh_sasl_limits, mh_sasl_limits_copy,
                     mh_sasl_limits_free)

/* ---- The exchange ----------------------------------------------------- */

typedef enum
{
  ST_NEW,
  ST_WAIT_PLAIN, /* PLAIN: empty challenge sent, waiting for the message */
  ST_WAIT_USER,  /* LOGIN: "Username:" sent */
  ST_WAIT_PASS,  /* LOGIN: "Password:" sent */
  ST_DONE,
  ST_FAILED,
} State;

/* draft-murchison-sasl-login-00 2: the server's two prompts, which some
 * clients check for. */
#define LOGIN_USERNAME_B64 "VXNlcm5hbWU6" /* "Username:" */
#define LOGIN_PASSWORD_B64 "UGFzc3dvcmQ6" /* "Password:" */

struct _MhSaslServer
{
  gatomicrefcount ref;
  const Mech *mech;
  MhSaslLimits limits;
  State state;
  guint steps;           /* challenges sent so far */
  const char *challenge; /* static string; "" when none */
  char *login_user;      /* LOGIN: user name between the two steps */
  MhSaslCredentials *creds;
};

G_DEFINE_BOXED_TYPE (MhSaslServer, mh_sasl_server, mh_sasl_server_ref,
                     mh_sasl_server_unref)

MhSaslServer *
mh_sasl_server_new (const char *mechanism, const MhSaslLimits *limits,
                    GError **error)
{
  g_return_val_if_fail (mechanism != NULL, NULL);

  const Mech *m = mech_find (mechanism);
  if (m == NULL)
    {
      /* The name comes from the client: bound what we echo and keep it
       * printable. */
      g_autofree char *shown = g_strndup (mechanism, 40);
      for (char *c = shown; *c; c++)
        if (!g_ascii_isprint (*c))
          *c = '?';
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MECHANISM,
                   "unknown SASL mechanism '%s' (supported: PLAIN, LOGIN)",
                   shown);
      return NULL;
    }

  MhSaslServer *s = g_new0 (MhSaslServer, 1);
  g_atomic_ref_count_init (&s->ref);
  s->mech = m;
  if (limits != NULL)
    s->limits = *limits;
  s->limits.version = 1;
  if (s->limits.max_line == 0)
    s->limits.max_line = MH_LIMIT_SASL_LINE_MAX;
  if (s->limits.max_id == 0)
    s->limits.max_id = MH_LIMIT_SASL_ID_MAX;
  if (s->limits.max_password == 0)
    s->limits.max_password = MH_LIMIT_PASSWORD_MAX;
  if (s->limits.max_steps == 0)
    s->limits.max_steps = MH_LIMIT_SASL_STEPS_MAX;
  s->state = ST_NEW;
  s->challenge = "";
  return s;
}

MhSaslServer *
mh_sasl_server_ref (MhSaslServer *sasl)
{
  g_return_val_if_fail (sasl != NULL, NULL);
  g_atomic_ref_count_inc (&sasl->ref);
  return sasl;
}

void
mh_sasl_server_unref (MhSaslServer *sasl)
{
  if (sasl == NULL || !g_atomic_ref_count_dec (&sasl->ref))
    return;
  free_secret_str (sasl->login_user);
  mh_sasl_credentials_free (sasl->creds);
  g_free (sasl);
}

const char *
mh_sasl_server_get_mechanism (MhSaslServer *sasl)
{
  g_return_val_if_fail (sasl != NULL, NULL);
  return sasl->mech->name;
}

const char *
mh_sasl_server_get_challenge (MhSaslServer *sasl)
{
  g_return_val_if_fail (sasl != NULL, "");
  return sasl->challenge;
}

const MhSaslCredentials *
mh_sasl_server_get_credentials (MhSaslServer *sasl)
{
  g_return_val_if_fail (sasl != NULL, NULL);
  return sasl->state == ST_DONE ? sasl->creds : NULL;
}

MhSaslStatus
mh_sasl_server_get_status (MhSaslServer *sasl)
{
  g_return_val_if_fail (sasl != NULL, MH_SASL_STATUS_FAILED);
  switch (sasl->state)
    {
    case ST_DONE:
      return MH_SASL_STATUS_DONE;
    case ST_FAILED:
      return MH_SASL_STATUS_FAILED;
    default:
      return MH_SASL_STATUS_CHALLENGE;
    }
}

static MhSaslStatus
fail (MhSaslServer *s)
{
  s->state = ST_FAILED;
  s->challenge = "";
  free_secret_str (g_steal_pointer (&s->login_user));
  return MH_SASL_STATUS_FAILED;
}

static MhSaslStatus
challenge (MhSaslServer *s, State next, const char *b64, GError **error)
{
  if (s->steps >= s->limits.max_steps)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_MANY_STEPS,
                   "%s exchange needs more than %u challenges",
                   s->mech->name, s->limits.max_steps);
      return fail (s);
    }
  s->steps++;
  s->state = next;
  s->challenge = b64;
  return MH_SASL_STATUS_CHALLENGE;
}

static MhSaslStatus
done (MhSaslServer *s, char *authzid, char *authcid, char *password)
{
  s->creds = mh_auth__credentials_take (authzid, authcid, password);
  s->state = ST_DONE;
  s->challenge = "";
  return MH_SASL_STATUS_DONE;
}

/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static MhSaslStatus
plain_message (MhSaslServer *s, const guint8 *msg, gsize len, GError **error)
{
  const guint8 *nul1 = memchr (msg, '\0', len);
  const guint8 *nul2 = nul1 ? memchr (nul1 + 1, '\0', len - (gsize) (nul1 + 1 - msg))
                            : NULL;
  if (nul2 == NULL)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_MALFORMED,
                   "PLAIN message has %d NUL separator%s, needs 2 "
                   "(authzid NUL authcid NUL password)",
                   nul1 ? 1 : 0, nul1 ? "" : "s");
      return fail (s);
    }

  const guint8 *zid = msg, *cid = nul1 + 1, *pw = nul2 + 1;
  gsize zid_len = (gsize) (nul1 - msg);
  gsize cid_len = (gsize) (nul2 - cid);
  gsize pw_len = len - (gsize) (pw - msg);

  if ((zid_len > 0
       && !mh_auth__check_identity (zid, zid_len, "authorization identity",
                                    s->limits.max_id, error))
      || !mh_auth__check_identity (cid, cid_len, "authentication identity",
                                   s->limits.max_id, error)
      || !mh_auth__check_password (pw, pw_len, s->limits.max_password,
                                   error))
    return fail (s);

  return done (s, zid_len ? g_strndup ((const char *) zid, zid_len) : NULL,
               g_strndup ((const char *) cid, cid_len),
               g_strndup ((const char *) pw, pw_len));
}

static MhSaslStatus
login_message (MhSaslServer *s, const guint8 *msg, gsize len, GError **error)
{
  if (s->state == ST_WAIT_USER)
    {
      if (!mh_auth__check_identity (msg, len, "user name", s->limits.max_id,
                                    error))
        return fail (s);
      s->login_user = g_strndup ((const char *) msg, len);
      return challenge (s, ST_WAIT_PASS, LOGIN_PASSWORD_B64, error);
    }

  g_assert (s->state == ST_WAIT_PASS);
  if (!mh_auth__check_password (msg, len, s->limits.max_password, error))
    return fail (s);
  return done (s, NULL, g_steal_pointer (&s->login_user),
               g_strndup ((const char *) msg, len));
}

/* Decodes one client response and hands it to the mechanism. */
static MhSaslStatus
take_response (MhSaslServer *s, const char *b64, gsize len, GError **error)
{
  if (len > s->limits.max_line)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_TOO_LONG,
                   "SASL response is %" G_GSIZE_FORMAT
                   " bytes, over the limit of %u",
                   len, s->limits.max_line);
      return fail (s);
    }

  guint8 *msg = NULL;
  gsize msg_len = 0;
  if (!mh_auth__base64_decode (b64, len, &msg, &msg_len, error))
    return fail (s);

  MhSaslStatus st;
  if (s->mech->id == MECH_PLAIN)
    st = plain_message (s, msg, msg_len, error);
  else
    st = login_message (s, msg, msg_len, error);
  mh_auth__free_secret (msg, msg_len + 1);
  return st;
}

MhSaslStatus
mh_sasl_server_start (MhSaslServer *sasl, const char *initial_response,
                      gsize len, GError **error)
{
  g_return_val_if_fail (sasl != NULL, MH_SASL_STATUS_FAILED);
  g_return_val_if_fail (initial_response != NULL || len == 0,
                        MH_SASL_STATUS_FAILED);

  if (sasl->state != ST_NEW)
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE,
                   "%s exchange already started", sasl->mech->name);
      return fail (sasl);
    }

  State first = sasl->mech->id == MECH_PLAIN ? ST_WAIT_PLAIN : ST_WAIT_USER;
  if (initial_response == NULL)
    return challenge (sasl, first,
                      first == ST_WAIT_PLAIN ? "" : LOGIN_USERNAME_B64,
                      error);

  sasl->state = first;
  /* RFC 4954 4, RFC 4959 3: "=" stands for an empty initial response. */
  if (len == 1 && initial_response[0] == '=')
    return take_response (sasl, "", 0, error);
  return take_response (sasl, initial_response, len, error);
}

MhSaslStatus
mh_sasl_server_feed (MhSaslServer *sasl, const char *line, gsize len,
                     GError **error)
{
  g_return_val_if_fail (sasl != NULL, MH_SASL_STATUS_FAILED);
  g_return_val_if_fail (line != NULL || len == 0, MH_SASL_STATUS_FAILED);

  switch (sasl->state)
    {
    case ST_NEW:
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE,
                   "%s exchange not started", sasl->mech->name);
      return fail (sasl);
    case ST_DONE:
    case ST_FAILED:
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_STATE,
                   "%s exchange already finished; response not expected",
                   sasl->mech->name);
      return fail (sasl);
    default:
      break;
    }

  sasl->challenge = "";
  /* RFC 4954 4, RFC 3501 6.2.2: a lone "*" cancels. */
  if (len == 1 && line[0] == '*')
    {
      g_set_error_literal (error, MH_AUTH_ERROR, MH_AUTH_ERROR_CANCELLED,
                           "authentication cancelled by the client");
      return fail (sasl);
    }
  return take_response (sasl, line ? line : "", len, error);
}
