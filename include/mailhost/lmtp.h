/* libmailhost LMTP service: RFC 2033 over lib/server, the SMTP engine in
 * its LMTP role feeding the delivery pipeline. Part of the server layer;
 * see docs/delivery.md.
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/delivery.h>
#include <mailhost/server.h>

G_BEGIN_DECLS

/**
 * mh_server_register_lmtp_service:
 * @server: a server not yet started
 * @delivery: the delivery pipeline (a reference is taken); share one
 *   pipeline between every service of a process (a store can be opened
 *   only once per process)
 * @error: return location for a #GError, or %NULL
 *
 * Registers "lmtp" (config section `[lmtp]`: `listen` takes TCP
 * addresses and `unix:/path`). Each session answers LHLO, MAIL, RCPT
 * (resolved and quota-checked at once, on a worker thread), DATA or BDAT,
 * and after the data one reply per accepted recipient (RFC 2033 4.2),
 * each given only when that recipient's copy is durable. No AUTH:
 * LMTP is for a trusted front MTA (protect the socket with its mode or
 * the listen address); STARTTLS when `tls = starttls` and a certificate
 * is loaded.
 *
 * Returns: %TRUE, or %FALSE with @error as mh_server_register_service().
 *
 * Thread safety: call before mh_server_start(), from the main thread.
 */
MH_API gboolean mh_server_register_lmtp_service (MhServer *server,
                                                 MhDelivery *delivery,
                                                 GError **error);

G_END_DECLS
