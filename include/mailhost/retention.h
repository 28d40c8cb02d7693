/* libmailhost retention timer: the server applies `[store] retention` to
 * every account on a timer (`[store] retention_interval`). Part of the
 * server layer; the rules themselves are lib/store's
 * (mh_store_retention_parse(), mh_store_apply_retention()).
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/delivery.h>
#include <mailhost/server.h>

G_BEGIN_DECLS

/**
 * mh_server_register_retention:
 * @server: a server (usually not yet started)
 * @delivery: the delivery pipeline whose stores it uses (a reference is
 *   held while a pass runs); the same one the services share, because a
 *   store can be opened only once per process
 * @error: return location for a #GError, or %NULL
 *
 * Applies `[store] retention` to every account of the directory whose
 * Maildir exists: once shortly after start (10 s), then every
 * `[store] retention_interval`. Each pass runs on a thread of its own,
 * never on the main loop, and logs one line with the accounts checked,
 * the messages expunged and the failures. Passes never overlap; shutdown
 * waits for a running pass, which stops between two accounts. With no
 * rules (an empty `retention`) nothing is scheduled.
 *
 * For tests only, the environment variable `MH_TEST_RETENTION_SECONDS`
 * replaces both the first delay and the interval (whole seconds, 1 or
 * more; docs/config.md).
 *
 * Returns: %TRUE, or %FALSE with %MH_STORE_ERROR_INVALID naming the bad
 *   rule.
 *
 * Thread safety: call before mh_server_start(), from the thread that
 * starts and runs the server (the timer goes on its main context).
 */
MH_API gboolean mh_server_register_retention (MhServer *server,
                                              MhDelivery *delivery,
                                              GError **error);

G_END_DECLS
