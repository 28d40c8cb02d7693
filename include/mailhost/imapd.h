/* libmailhost IMAP service: the IMAP engine (mailhost/imap.h) driven over
 * lib/server on the store of each account, for mh-imapd and mailhostd.
 * Part of the server layer; see README.md, IMAP and docs/config.md ([imap]).
 */
#pragma once

#include <mailhost/auth.h>
#include <mailhost/core.h>
#include <mailhost/delivery.h>
#include <mailhost/server.h>

G_BEGIN_DECLS

/**
 * mh_server_register_imap_service:
 * @server: a server not yet started
 * @delivery: the delivery pipeline (a reference is taken): its stores are
 *   the ones IMAP sessions use, since a store can be opened only once per
 *   process; share one pipeline between every service of a process
 * @auth: the authenticator for LOGIN and AUTHENTICATE (a reference is
 *   taken), shared with the other services so one failure throttle
 *   covers them all
 * @error: return location for a #GError, or %NULL
 *
 * Registers "imap" (config section `[imap]`, port 143, STARTTLS) and
 * "imaps" (`[imaps]`, port 993, implicit TLS): IMAP4rev1 (RFC 3501) and
 * IMAP4rev2 (RFC 9051). Passwords are accepted in clear text only over
 * TLS, from a loopback address when `[imap] plaintext_auth_loopback` is
 * true (the default, as Dovecot treats local connections as secure), or
 * everywhere when `[auth] allow_plaintext` is true; otherwise the
 * greeting says LOGINDISABLED and LOGIN gets NO [PRIVACYREQUIRED].
 * Commands run on the worker pool one at a time per session; every
 * command's reply carries the changes other sessions and processes made
 * to the selected mailbox, and IDLE reports them within a second.
 *
 * Returns: %TRUE, or %FALSE with @error as mh_server_register_service().
 *
 * Thread safety: call before mh_server_start(), from the main thread.
 */
MH_API gboolean mh_server_register_imap_service (MhServer *server,
                                                 MhDelivery *delivery,
                                                 MhAuthenticator *auth,
                                                 GError **error);

G_END_DECLS
