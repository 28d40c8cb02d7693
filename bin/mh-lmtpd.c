/* mh-lmtpd: only the LMTP service ([lmtp] in the configuration), so a
 * front MTA such as Postfix can hand us mail (virtual_transport =
 * lmtp:unix:/path or lmtp:inet:host:port). See docs/delivery.md.
 *
 * Design notes
 * - Same flags, config file, start-up order and exit codes as mailhostd
 *   (mh-server-main.c); only the service list differs. [lmtp] enabled
 *   must be true in the file (or use --demo), as for mailhostd.
 */
#include "mh-server-main.h"

static gboolean
register_services (MhServer *server, MhConfig *config, GError **error)
{
  g_autoptr (MhDelivery) delivery = mh_delivery_new (config, error);
  if (delivery == NULL)
    return FALSE;
  return mh_server_register_lmtp_service (server, delivery, error);
}

int
main (int argc, char **argv)
{
  static const MhServerMain info = {
    .prog = "mh-lmtpd",
    .summary = "Runs the LMTP service ([lmtp]) of the configuration.",
    .register_services = register_services,
  };
  return mh_server_main (&info, argc, argv);
}
