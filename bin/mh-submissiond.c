/* mh-submissiond: only message submission, [submission] (port 587,
 * STARTTLS required before AUTH) and [submissions] (port 465, implicit
 * TLS), RFC 6409 / RFC 8314: where the users' own mail clients send.
 *
 * Design notes
 * - Same flags, config file, start-up order and exit codes as mailhostd
 *   (mh-server-main.c); only the service list differs.
 * - Local recipients are delivered at once; remote ones get an honest
 *   451 4.7.1 until the outbound queue exists (README, docs/smtp.md).
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
  return mh_server_register_submission_service (server, delivery, auth, error);
}

int
main (int argc, char **argv)
{
  static const MhServerMain info = {
    .prog = "mh-submissiond",
    .summary = "Runs message submission ([submission] port 587, "
               "[submissions] port 465) of the configuration.",
    .register_services = register_services,
  };
  return mh_server_main (&info, argc, argv);
}
