/* mh-deliver: local delivery agent. The message on stdin, recipients as
 * arguments, an exit code from sysexits.h for the program that ran us
 * (Postfix's local(8) mailbox_command or pipe(8), fetchmail's --mda,
 * procmail, a cron job).
 *
 * Design notes
 * - A thin skin over lib/delivery: stdin is copied into a spool file (so
 *   the message is never held whole in memory, and a mbox "From " line
 *   is dropped), then mh_delivery_deliver_spool() runs the pipeline for
 *   every recipient and returns when each copy is durable.
 * - One exit code for several recipients: if any recipient failed
 *   temporarily, 75 (EX_TEMPFAIL) so the caller retries (recipients that
 *   succeeded may then get a duplicate, never a loss); else the first
 *   permanent failure decides: 67 (EX_NOUSER) for an unknown address
 *   (5.1.x), 73 (EX_CANTCREAT) when the mailbox cannot take it (5.2.x
 *   full, 5.3.x too big), 77 (EX_NOPERM) for a refusal by policy
 *   (5.7.x, e.g. a group address), 65 (EX_DATAERR) for other permanent
 *   failures and for a message or sender the pipeline cannot take.
 *   Each failed recipient gets one line on stderr, which Postfix puts
 *   into its bounce or defer notice.
 * - The configuration is the servers' (same file, same --data-dir), so
 *   mh-deliver and mailhostd deliver into the same stores. Running while
 *   mailhostd runs is fine: LMDB serialises the two processes' writers.
 */
#include "mh-config.h"
#include <mailhost/mailhost.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EX_OK 0
#define EX_USAGE 64
#define EX_DATAERR 65
#define EX_NOUSER 67
#define EX_CANTCREAT 73
#define EX_TEMPFAIL 75
#define EX_NOPERM 77
#define EX_CONFIG 78

static int
fail (int code, const char *what, const GError *error)
{
  fprintf (stderr, "mh-deliver: %s%s%s\n", what ? what : "",
           what && error ? ": " : "", error ? error->message : "");
  return code;
}

static int
exit_code_for (MhDeliveryResult *r)
{
  const char *enh = mh_delivery_result_get_enhanced (r);
  if (mh_delivery_result_is_temporary (r))
    return EX_TEMPFAIL;
  if (g_str_has_prefix (enh, "5.1."))
    return EX_NOUSER;
  if (g_str_has_prefix (enh, "5.2.") || g_str_has_prefix (enh, "5.3."))
    return EX_CANTCREAT;
  if (g_str_has_prefix (enh, "5.7."))
    return EX_NOPERM;
  return EX_DATAERR;
}

int
main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *data_dir = NULL;
  g_autofree char *sender = NULL;
  g_auto (GStrv) rcpts = NULL;
  gboolean version = FALSE, verbose = FALSE;
  g_autoptr (GError) error = NULL;

  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
      "Configuration file (default " MH_SYSCONFDIR "/mailhost/mailhost.conf "
      "if it exists)", "FILE" },
    { "data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &data_dir,
      "Data directory (overrides [general] data_dir)", "DIR" },
    { "from", 'f', 0, G_OPTION_ARG_STRING, &sender,
      "Envelope sender (Return-Path); empty for <>", "SENDER" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
      "Log each delivery on stderr", NULL },
    { "version", 'V', 0, G_OPTION_ARG_NONE, &version,
      "Print the version and exit", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rcpts, NULL,
      "RECIPIENT..." },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("RECIPIENT...");
  g_option_context_set_summary (
      ctx, "Delivers the message on standard input to local mailboxes.");
  g_option_context_set_description (
      ctx,
      "Postfix:   mailbox_command = /usr/bin/mh-deliver -f \"$SENDER\" -- "
      "\"$RECIPIENT\"\n"
      "fetchmail: mda \"/usr/bin/mh-deliver -f %F -- %T\"\n\n"
      "Exit status (sysexits.h): 0 delivered, 64 usage, 65 bad data or "
      "other permanent failure,\n67 unknown user, 73 mailbox cannot take "
      "it (full, too big), 75 temporary failure\n(try again), 77 refused "
      "by policy, 78 configuration error.\n");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fprintf (stderr, "mh-deliver: %s (try --help)\n", error->message);
      return EX_USAGE;
    }
  if (version)
    {
      printf ("mh-deliver %s\n", mh_version ());
      return EX_OK;
    }
  if (rcpts == NULL || rcpts[0] == NULL)
    {
      fprintf (stderr, "mh-deliver: no recipient given (try --help)\n");
      return EX_USAGE;
    }

  g_autoptr (MhConfig) config = NULL;
  if (config_path == NULL)
    {
      g_autofree char *def = g_build_filename (MH_SYSCONFDIR, "mailhost",
                                               "mailhost.conf", NULL);
      config = g_file_test (def, G_FILE_TEST_EXISTS)
                   ? mh_config_load (def, &error)
                   : mh_config_new ();
    }
  else
    config = mh_config_load (config_path, &error);
  if (config == NULL)
    return fail (EX_CONFIG, NULL, error);
  if (data_dir)
    {
      g_autofree char *abs = g_canonicalize_filename (data_dir, NULL);
      if (!mh_config_set (config, "general", "data_dir", abs, &error))
        return fail (EX_CONFIG, NULL, error);
    }
  mh_log_install (MH_LOG_TARGET_STDERR,
                  verbose ? MH_LOG_INFO : MH_LOG_WARNING);

  /* Anything that stops us before delivery is temporary: the MTA keeps
   * the message and tries again once the data directory is back. */
  g_autoptr (MhDelivery) d = mh_delivery_new (config, &error);
  if (d == NULL)
    return fail (EX_TEMPFAIL, NULL, error);

  g_autoptr (MhDeliverySpool) spool = mh_delivery_spool_new (d, &error);
  if (spool == NULL)
    return fail (EX_TEMPFAIL, NULL, error);
  if (!mh_delivery_spool_write_fd (spool, STDIN_FILENO, &error)
      || !mh_delivery_spool_finish (spool, &error))
    return fail (g_error_matches (error, MH_DELIVERY_ERROR,
                                  MH_DELIVERY_ERROR_TOO_BIG)
                     ? EX_DATAERR
                     : EX_TEMPFAIL,
                 NULL, error);

  g_autoptr (MhDeliveryEnvelope) env = mh_delivery_envelope_new (sender);
  for (guint i = 0; rcpts[i]; i++)
    mh_delivery_envelope_add_recipient (env, rcpts[i], 0, NULL);

  g_autoptr (GPtrArray) results
      = mh_delivery_deliver_spool (d, env, spool, &error);
  if (results == NULL)
    return fail (g_error_matches (error, MH_DELIVERY_ERROR,
                                  MH_DELIVERY_ERROR_SPOOL)
                     ? EX_TEMPFAIL
                     : EX_DATAERR,
                 NULL, error);

  int rc = EX_OK;
  for (guint i = 0; i < results->len; i++)
    {
      MhDeliveryResult *r = g_ptr_array_index (results, i);
      if (mh_delivery_result_is_success (r))
        continue;
      fprintf (stderr, "mh-deliver: <%s>: %u %s %s\n",
               mh_delivery_result_get_address (r),
               mh_delivery_result_get_code (r),
               mh_delivery_result_get_enhanced (r),
               mh_delivery_result_get_text (r));
      int code = exit_code_for (r);
      if (code == EX_TEMPFAIL)
        rc = EX_TEMPFAIL;
      else if (rc == EX_OK)
        rc = code;
    }
  return rc;
}
