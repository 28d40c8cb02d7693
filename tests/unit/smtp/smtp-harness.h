/* A scripted host for the SMTP engine tests: it feeds a client script
 * (whole, byte by byte, or in pieces), answers every event the way a
 * plausible server would, and records a transcript of events and the
 * output. smtp_run_both() checks that every way of cutting the input
 * gives the same transcript and output (STYLE.md: feed whole and byte by
 * byte). */
#pragma once

#include "mh-test.h"
#include "mailhost/smtp.h"

/* How the scripted host answers:
 * - MAIL: 550 5.7.1 if the local part is "reject", else accept
 * - RCPT: 550 5.1.1 if the local part starts with "unknown", else accept
 * - DATA: 451 4.3.0 if the transaction's sender is "nodata@...", else accept
 * - DATA_END: accept; LMTP: per recipient, 452 4.2.2 for local part
 *   "full", else 250 2.0.0 "<addr> delivered"
 * - STARTTLS: accept; the handshake happens when the input offset
 *   reaches tls_at (bytes fed before that, after STARTTLS, are the
 *   plaintext injection the engine must drop)
 * - AUTH PLAIN/LOGIN: user "user", password "pass" → 235; else
 *   535 5.7.8 */
typedef struct
{
  MhSmtpRole role;
  MhSmtpLimits limits;
  MhSmtpExtensions ext;            /* 0: engine default */
  gboolean starttls;               /* add MH_SMTP_EXT_STARTTLS */
  const char *const *mechs;
  gboolean set_policy;
  MhSmtpPolicy policy;
  gboolean tls_active;
  gssize tls_at;                   /* 0: no handshake */
  guint greet_code;                /* 0: 220 */
} SmtpSetup;

typedef struct
{
  MhSmtpEngine *e;
  GString *log;     /* one line per event; chunks merged */
  GString *out;     /* everything the engine sent */
  GString *body;    /* the chunks of the current/last message */
  GPtrArray *bodies; /* each message that reached DATA_END */
  guint64 discarded;
  /* host state */
  char *mail_from;
  GPtrArray *rcpts;
  int auth_step;
  char *auth_user;
  gsize max_out_seen;
  gsize out_bound;
  gboolean in_chunk;
} SmtpRun;

/* step 0 = all at once. */
SmtpRun *smtp_run (const SmtpSetup *setup, const char *input, gsize len,
                   gsize step);
/* Runs whole, byte by byte and in 7-byte pieces; asserts identical
 * transcripts and output; returns the whole run. */
SmtpRun *smtp_run_both (const SmtpSetup *setup, const char *input,
                        gssize len);
void smtp_run_free (SmtpRun *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmtpRun, smtp_run_free)

/* Feeds more input into an existing run (same host). */
void smtp_run_feed (SmtpRun *r, const char *input, gsize len, gsize step);

/* Asserts that @hay contains @needle, printing both if not. */
void smtp_assert_has (const GString *hay, const char *needle);
void smtp_assert_lacks (const GString *hay, const char *needle);
/* Number of times @needle occurs in @hay. */
guint smtp_count (const GString *hay, const char *needle);
/* The reply codes of every final reply line ("250 ", not "250-"), space
 * separated: "220 250 250 354 250 221". */
char *smtp_codes (const GString *out);

#define SMTP_SETUP_DEFAULT { .role = MH_SMTP_ROLE_SMTP, .limits = { 1 } }
