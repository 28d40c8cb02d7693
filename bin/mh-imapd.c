/* mh-imapd: only the IMAP services ([imap] on 143 with STARTTLS, [imaps]
 * on 993 with implicit TLS) of the configuration. See docs/imap.md.
 *
 * Design notes
 * - Same flags, config file, start-up order and exit codes as mailhostd
 *   (mh-server-main.c); only the service list differs. [imap] and/or
 *   [imaps] enabled must be true in the file (or use --demo).
 * - It opens the delivery pipeline only for its stores (a store can be
 *   opened once per process, and the pipeline owns them); mail still
 *   arrives through mh-lmtpd or mh-deliver in other processes, and IDLE
 *   sees it through the store's change notification.
 */
#include "mh-server-main.h"

static gboolean
register_services (MhServer *server, MhConfig *config, GError **error)
{
  g_autoptr (MhDelivery) delivery = mh_delivery_new (config, error);
  if (delivery == NULL)
    return FALSE;
  g_autoptr (MhAuthenticator) auth = mh_authenticator_new (
      mh_delivery_get_directory (delivery), config);
  return mh_server_register_imap_service (server, delivery, auth, error);
}

int
main (int argc, char **argv)
{
  static const MhServerMain info = {
    .prog = "mh-imapd",
    .summary = "Runs the IMAP services ([imap], [imaps]) of the "
               "configuration.",
    .register_services = register_services,
  };
  return mh_server_main (&info, argc, argv);
}
