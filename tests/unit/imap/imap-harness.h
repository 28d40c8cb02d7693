/* A scripted host for the IMAP engine tests: it feeds a client script
 * (whole, byte by byte, or in pieces), answers every command the way a
 * plausible server would, and records a transcript of the commands (one
 * line each, from imap_describe()) and of the output. imap_run_all()
 * checks that every way of cutting the input gives the same transcript
 * and output (STYLE.md: feed whole and byte by byte).
 *
 * The host: LOGIN user/pass → OK (else NO); AUTHENTICATE PLAIN with or
 * without an initial response, "*" cancels; SELECT/EXAMINE → SELECTED;
 * CLOSE/UNSELECT → AUTHENTICATED; IDLE → "+ idling", DONE → OK (BAD
 * "Expected DONE" for another line); STARTTLS → OK then starttls_done();
 * LOGOUT → BYE + OK; everything else → OK. */
#pragma once

#include "mh-test.h"
#include "mailhost/imap.h"

typedef struct
{
  MhImapLimits limits;
  MhImapState state; /* state before the script */
  gboolean utf8;
  gboolean literal_minus;
  gboolean refuse_starttls;
} ImapSetup;

typedef struct
{
  MhImapEngine *e;
  GString *log;
  GString *out;
  GPtrArray *cmds; /* MhImapCommand, in order */
  gboolean closing;
} ImapRun;

void imap_run_free (ImapRun *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ImapRun, imap_run_free)

/* One line describing @cmd: tag, name and every field that is set. */
char *imap_describe (const MhImapCommand *cmd);

/* @piece 0: whole. */
ImapRun *imap_run (const ImapSetup *s, const char *script, gssize len,
                   gsize piece);
/* Two feeds: [0, cut) then the rest; the host runs after each. */
ImapRun *imap_run_cut (const ImapSetup *s, const char *script, gssize len,
                       gsize cut);
/* Whole, byte by byte and 7-byte pieces must agree; returns the whole
 * run. */
ImapRun *imap_run_all (const ImapSetup *s, const char *script, gssize len);

/* Parses @wire (one command, CRLF added) in @state; asserts exactly one
 * command came out and no output was written. */
MhImapCommand *imap_parse_ok (const char *wire, MhImapState state);
/* Asserts @wire gets exactly the tagged reply @reply (CRLF added). */
void imap_parse_bad (const char *wire, MhImapState state, const char *reply);
