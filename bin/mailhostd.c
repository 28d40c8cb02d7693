/* mailhostd: every service enabled in the configuration, in one process.
 *
 * Design notes
 * - The flags, start-up order, --demo and exit codes are shared with the
 *   one-service programs (mh-lmtpd, ...) in mh-server-main.c; this file
 *   only says which services mailhostd contains.
 * - Services that deliver mail share ONE MhDelivery: it holds the open
 *   stores, and a store can be opened only once per process.
 */
#include "mh-server-main.h"

/* Registers every service built into this program. Later issues add
 * their services here (pop3, managesieve). */
static gboolean
register_services (MhServer *server, MhConfig *config, GError **error)
{
  if (!mh_server_register_echo_service (server, error))
    return FALSE;
  g_autoptr (MhDelivery) delivery = mh_delivery_new (config, error);
  if (delivery == NULL)
    return FALSE;
  /* one authenticator: one failure throttle for every service */
  g_autoptr (MhAuthenticator) auth = mh_authenticator_new (
      mh_delivery_get_directory (delivery), config);
  return mh_server_register_lmtp_service (server, delivery, error)
         && mh_server_register_smtp_service (server, delivery, auth, error)
         && mh_server_register_submission_service (server, delivery, auth,
                                                   error)
         && mh_server_register_imap_service (server, delivery, auth, error)
         && mh_server_register_retention (server, delivery, error);
}

int
main (int argc, char **argv)
{
  static const MhServerMain info = {
    .prog = "mailhostd",
    .summary = "Runs every mail service enabled in the configuration.",
    .register_services = register_services,
  };
  return mh_server_main (&info, argc, argv);
}
