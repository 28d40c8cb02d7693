/* lib/auth authenticator: SASL credentials or a user/password pair in,
 * an account (or a typed refusal) and a reply delay out.
 *
 * Design notes
 * - Order of one check: ask the throttle for the delay (before anything
 *   can fail, so every outcome carries it), verify with the directory,
 *   record the outcome, then compare the authorization identity. The
 *   password is checked before the authzid so that a refused authzid
 *   also proves the password right; it never tells a guesser anything he
 *   could not learn by leaving the authzid out.
 * - The delay is returned, not slept: the caller is a worker thread of a
 *   server whose main loop must stay responsive, and lib/server answers
 *   after a timer. Sleeping here would also hold a worker per attacker.
 * - Unknown user, wrong password and a malformed login name (directory
 *   INVALID) are one error, FAILED, and all count as failures, so the
 *   answer never says which accounts exist. DISABLED is reported only
 *   after the password was right (directory contract) and counts as a
 *   failure too: it is never a reason to stop throttling. Other directory
 *   errors (I/O, corruption) are UNAVAILABLE and are not counted: the
 *   client did nothing wrong.
 * - Throttle keys for accounts are the user name with its domain
 *   IDNA-normalised, so "bob@bücher.example" and
 *   "bob@xn--bcher-kva.example" share one counter (the throttle folds
 *   ASCII case itself).
 * - Services map onto the directory's protocols: imaps -> imap, pop3s ->
 *   pop3, smtp/submissions -> submission.
 * - Logs: failures at notice (for fail2ban and admins) with service, peer
 *   and user name; successes at info. User names reaching the log were
 *   validated (UTF-8, no control characters) so they cannot forge lines;
 *   passwords never reach a log or an error message.
 * - Immutable after _new except the throttle, which locks itself: one
 *   authenticator serves every thread.
 */
#include "auth-private.h"

#include <string.h>

struct _MhAuthenticator
{
  gatomicrefcount ref;
  MhDirectory *dir;
  MhAuthThrottle *throttle;
  gboolean allow_plaintext;
};

G_DEFINE_BOXED_TYPE (MhAuthenticator, mh_authenticator, mh_authenticator_ref,
                     mh_authenticator_unref)

MhAuthenticator *
mh_authenticator_new (MhDirectory *directory, MhConfig *config)
{
  g_return_val_if_fail (directory != NULL, NULL);

  MhAuthThrottleSettings set;
  mh_auth_throttle_settings_init (&set);
  gboolean allow_plaintext = FALSE;
  if (config != NULL)
    {
      /* The schema bounds these (lib/core/config.c), so they fit. */
      set.fails_before_delay
          = (guint) mh_config_get_int (config, "auth", "fails_before_delay");
      set.max_delay_ms
          = (guint) mh_config_get_int (config, "auth", "max_delay") * 1000;
      set.forget_after_s
          = (guint) mh_config_get_int (config, "auth", "forget_after");
      allow_plaintext = mh_config_get_bool (config, "auth",
                                            "allow_plaintext");
    }

  MhAuthenticator *a = g_new0 (MhAuthenticator, 1);
  g_atomic_ref_count_init (&a->ref);
  a->dir = mh_directory_ref (directory);
  a->throttle = mh_auth_throttle_new (&set);
  a->allow_plaintext = allow_plaintext;
  return a;
}

MhAuthenticator *
mh_authenticator_ref (MhAuthenticator *auth)
{
  g_return_val_if_fail (auth != NULL, NULL);
  g_atomic_ref_count_inc (&auth->ref);
  return auth;
}

void
mh_authenticator_unref (MhAuthenticator *auth)
{
  if (auth == NULL || !g_atomic_ref_count_dec (&auth->ref))
    return;
  mh_auth_throttle_unref (auth->throttle);
  mh_directory_unref (auth->dir);
  g_free (auth);
}

MhAuthThrottle *
mh_authenticator_get_throttle (MhAuthenticator *auth)
{
  g_return_val_if_fail (auth != NULL, NULL);
  return auth->throttle;
}

gboolean
mh_authenticator_plaintext_allowed (MhAuthenticator *auth, gboolean tls)
{
  g_return_val_if_fail (auth != NULL, FALSE);
  return tls || auth->allow_plaintext;
}

char **
mh_authenticator_list_mechanisms (MhAuthenticator *auth, gboolean tls)
{
  g_return_val_if_fail (auth != NULL, NULL);
  return mh_sasl_mechanisms_list (tls, auth->allow_plaintext);
}

MhSaslServer *
mh_authenticator_sasl_new (MhAuthenticator *auth, const char *mechanism,
                           gboolean tls, GError **error)
{
  g_return_val_if_fail (auth != NULL, NULL);
  g_return_val_if_fail (mechanism != NULL, NULL);

  if (mh_sasl_mechanism_is_known (mechanism)
      && !mh_sasl_mechanism_allowed (mechanism, tls, auth->allow_plaintext))
    {
      g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_ENCRYPTION_REQUIRED,
                   "SASL mechanism %s sends the password in the clear and "
                   "needs TLS on this connection (STARTTLS first)",
                   mechanism);
      return NULL;
    }
  return mh_sasl_server_new (mechanism, NULL, error);
}

/* The directory's protocol name for a service name. */
static const char *
service_protocol (const char *service)
{
  static const struct
  {
    const char *service, *protocol;
  } map[] = {
    { "imap", "imap" },
    { "imaps", "imap" },
    { "pop3", "pop3" },
    { "pop3s", "pop3" },
    { "submission", "submission" },
    { "submissions", "submission" },
    { "smtp", "submission" },
    { "managesieve", "managesieve" },
  };
  if (service == NULL)
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if (g_ascii_strcasecmp (service, map[i].service) == 0)
      return map[i].protocol;
  return service; /* the directory says INVALID, naming it */
}

static char *
throttle_account (const char *user)
{
  const char *at = strrchr (user, '@');
  if (at == NULL)
    return g_strdup (user);
  g_autofree char *domain = mh_directory_domain_to_ascii (at + 1, NULL);
  if (domain == NULL)
    return g_strdup (user);
  return g_strdup_printf ("%.*s@%s", (int) (at - user), user, domain);
}

static MhAccountInfo *
check (MhAuthenticator *auth, const char *authzid, const char *authcid,
       const char *password, const char *service, const char *peer_ip,
       gint64 now_us, guint *delay_ms_out, GError **error)
{
  g_autofree char *key = throttle_account (authcid);
  guint delay = mh_auth_throttle_delay_ms (auth->throttle, peer_ip, key,
                                           now_us);
  if (delay_ms_out != NULL)
    *delay_ms_out = delay;

  g_autoptr (GError) derr = NULL;
  MhAccountInfo *info = mh_directory_authenticate_account (
      auth->dir, authcid, password, service_protocol (service), &derr);
  if (info == NULL)
    {
      g_assert (derr != NULL);
      if (derr->domain == MH_DIRECTORY_ERROR
          && (derr->code == MH_DIRECTORY_ERROR_AUTH_FAILED
              || derr->code == MH_DIRECTORY_ERROR_INVALID
              || derr->code == MH_DIRECTORY_ERROR_NOT_FOUND))
        {
          mh_auth_throttle_record (auth->throttle, peer_ip, key, FALSE,
                                   now_us);
          mh_log_notice (service, NULL, peer_ip,
                         "authentication failed: user=<%s> delay=%ums: %s",
                         authcid, delay, derr->message);
          g_set_error_literal (error, MH_AUTH_ERROR, MH_AUTH_ERROR_FAILED,
                               "authentication failed");
        }
      else if (derr->domain == MH_DIRECTORY_ERROR
               && derr->code == MH_DIRECTORY_ERROR_DISABLED)
        {
          mh_auth_throttle_record (auth->throttle, peer_ip, key, FALSE,
                                   now_us);
          mh_log_notice (service, NULL, peer_ip,
                         "login refused: user=<%s>: %s", authcid,
                         derr->message);
          g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_DISABLED,
                       "login refused: %s", derr->message);
        }
      else
        {
          mh_log_warning (service, NULL, peer_ip,
                          "cannot check user=<%s>: %s", authcid,
                          derr->message);
          g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_UNAVAILABLE,
                       "the account directory is unavailable, try again "
                       "later");
        }
      return NULL;
    }

  mh_auth_throttle_record (auth->throttle, peer_ip, key, TRUE, now_us);

  const char *address = mh_account_info_get_ascii_address (info);
  if (authzid != NULL && strcmp (authzid, authcid) != 0)
    {
      /* Another spelling of the same account is fine; anything else
       * would be proxy authorization, which we do not offer. */
      g_autoptr (MhAccountInfo) z
          = mh_directory_account_lookup (auth->dir, authzid, NULL);
      if (z == NULL
          || strcmp (mh_account_info_get_ascii_address (z), address) != 0)
        {
          mh_log_notice (service, NULL, peer_ip,
                         "authorization refused: user=<%s> asked to act "
                         "as <%s>",
                         address, authzid);
          g_set_error (error, MH_AUTH_ERROR, MH_AUTH_ERROR_AUTHZID,
                       "authenticated as '%s' but asked to act as '%s': "
                       "proxy authorization is not supported",
                       address, authzid);
          mh_account_info_unref (info);
          return NULL;
        }
    }

  mh_log_info (service, NULL, peer_ip, "authenticated user=<%s>", address);
  return info;
}

MhAccountInfo *
mh_authenticator_check (MhAuthenticator *auth,
                        const MhSaslCredentials *creds, const char *service,
                        const char *peer_ip, gint64 now_us,
                        guint *delay_ms_out, GError **error)
{
  if (delay_ms_out != NULL)
    *delay_ms_out = 0;
  g_return_val_if_fail (auth != NULL, NULL);
  g_return_val_if_fail (creds != NULL, NULL);

  return check (auth, mh_sasl_credentials_get_authzid (creds),
                mh_sasl_credentials_get_authcid (creds),
                mh_sasl_credentials_get_password (creds), service, peer_ip,
                now_us, delay_ms_out, error);
}

MhAccountInfo *
mh_authenticator_check_password (MhAuthenticator *auth, const char *user,
                                 const char *password, const char *service,
                                 const char *peer_ip, gint64 now_us,
                                 guint *delay_ms_out, GError **error)
{
  if (delay_ms_out != NULL)
    *delay_ms_out = 0;
  g_return_val_if_fail (auth != NULL, NULL);
  g_return_val_if_fail (user != NULL, NULL);
  g_return_val_if_fail (password != NULL, NULL);

  g_autoptr (GError) verr = NULL;
  g_autoptr (MhSaslCredentials) creds
      = mh_sasl_credentials_new (NULL, user, password, &verr);
  if (creds == NULL)
    {
      /* Junk still costs the sender: it counts against his network. */
      guint delay = mh_auth_throttle_delay_ms (auth->throttle, peer_ip, NULL,
                                               now_us);
      if (delay_ms_out != NULL)
        *delay_ms_out = delay;
      mh_auth_throttle_record (auth->throttle, peer_ip, NULL, FALSE, now_us);
      mh_log_notice (service, NULL, peer_ip,
                     "authentication failed: malformed login: %s",
                     verr->message);
      g_propagate_error (error, g_steal_pointer (&verr));
      return NULL;
    }
  return mh_authenticator_check (auth, creds, service, peer_ip, now_us,
                                 delay_ms_out, error);
}
