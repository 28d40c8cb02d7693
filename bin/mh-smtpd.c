/* mh-smtpd: only the SMTP service ([smtp] in the configuration, port 25):
 * the MX that takes mail from the Internet for the local domains.
 *
 * Design notes
 * - Same flags, config file, start-up order and exit codes as mailhostd
 *   (mh-server-main.c); only the service list differs. [smtp] enabled
 *   must be true in the file (or use --demo), as for mailhostd.
 * - AUTH is offered (over TLS unless [auth] allow_plaintext), so a user
 *   can authenticate on port 25; relaying stays refused either way until
 *   the outbound queue exists (lib/server/lmtp.c).
 */
#include "mh-server-main.h"

static gboolean
register_services (MhServer *server, MhConfig *config, GError **error)
{
  g_autoptr (MhDelivery) delivery = mh_delivery_new (config, error);
  if (delivery == NULL)
    return FALSE;
  g_autoptr (MhAuthenticator) auth
      = mh_authenticator_new (mh_delivery_get_directory (delivery), config);
  return mh_server_register_smtp_service (server, delivery, auth, error);
}

int
main (int argc, char **argv)
{
  static const MhServerMain info = {
    .prog = "mh-smtpd",
    .summary = "Runs the SMTP service ([smtp], port 25) of the "
               "configuration.",
    .register_services = register_services,
  };
  return mh_server_main (&info, argc, argv);
}
