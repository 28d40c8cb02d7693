/* libmailhost SMTP-engine services: LMTP (RFC 2033), SMTP (RFC 5321) and
 * submission (RFC 6409) over lib/server, the SMTP engine in each role
 * feeding the delivery pipeline. Part of the server layer; see
 * docs/delivery.md and docs/smtp.md.
 */
#pragma once

#include <mailhost/auth.h>
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

/**
 * mh_server_register_smtp_service:
 * @server: a server not yet started
 * @delivery: the delivery pipeline (a reference is taken), shared with
 *   the other services of the process
 * @auth: (nullable): the authenticator for SMTP AUTH (a reference is
 *   taken), or %NULL to offer no AUTH
 * @error: return location for a #GError, or %NULL
 *
 * Registers "smtp" (config section `[smtp]`, port 25), the MX service:
 * mail is accepted only for local domains; any other recipient gets
 * 554 5.7.1 (relaying denied) or, after AUTH, 451 4.7.1 (no outbound
 * relay yet). Recipients are resolved and quota-checked at RCPT time on
 * a worker thread (550 5.1.1 unknown, 452 4.2.2 / 552 5.2.2 over quota).
 * Each message gets a Received header (with the TLS version and cipher)
 * in its spool file, and Return-Path and Delivered-To from the pipeline;
 * the one reply after the data is given when every copy is durable.
 * AUTH (over TLS unless [auth] allow_plaintext) checks passwords on a
 * worker thread and waits the throttle's delay on a timer; an
 * authenticated client may use only its own addresses in MAIL FROM
 * (553 5.7.1). Timeouts are RFC 5321's, from `[smtp] command_timeout` or
 * `[limits] command_timeout`.
 *
 * Returns: %TRUE, or %FALSE with @error as mh_server_register_service().
 *
 * Thread safety: call before mh_server_start(), from the main thread.
 */
MH_API gboolean mh_server_register_smtp_service (MhServer *server,
                                                 MhDelivery *delivery,
                                                 MhAuthenticator *auth,
                                                 GError **error);

/**
 * mh_server_register_submission_service:
 * @server: a server not yet started
 * @delivery: the delivery pipeline (a reference is taken)
 * @auth: the authenticator (a reference is taken)
 * @error: return location for a #GError, or %NULL
 *
 * Registers "submission" (port 587; STARTTLS is required before AUTH:
 * earlier AUTH gets 530 5.7.0) and "submissions" (port 465, implicit
 * TLS), RFC 6409 message submission: MAIL needs AUTH (530 5.7.0), the
 * sender must be one of the account's own addresses or aliases (553
 * 5.7.1), local recipients are delivered at once, and remote ones get
 * 451 4.7.1 "outbound relay is not enabled" until the outbound queue
 * exists. Otherwise as mh_server_register_smtp_service().
 *
 * Returns: %TRUE, or %FALSE with @error as mh_server_register_service().
 *
 * Thread safety: call before mh_server_start(), from the main thread.
 */
MH_API gboolean mh_server_register_submission_service (MhServer *server,
                                                       MhDelivery *delivery,
                                                       MhAuthenticator *auth,
                                                       GError **error);

G_END_DECLS
