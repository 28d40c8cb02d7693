/* mhctl verbs of quotas, in bin/mhctl-quota.c (issue 4, docs/quota.md). */
#pragma once

#include <mailhost/mailhost.h>
#include <stdio.h>

/* Runs the command if it is `quota ...`, setting *code_out to the exit
 * code, and returns TRUE; FALSE (nothing done) for any other command. */
gboolean mhctl_quota_main (int argc, char **argv, int *code_out);

/* The usage lines of those verbs, for `mhctl --help`. */
void mhctl_quota_usage (FILE *out);


/* `user add` with the domain's quota checked: @storage and @messages are
 * the --storage/--messages values or NULL for the domain's default. */
gboolean mhctl_quota_account_add (MhDirectory *dir, const char *address,
                                  const char *password, const char *storage,
                                  const char *messages, GError **error);

/* `user set`/`domain set` of a quota setting (quota_bytes,
 * quota_messages, account_quota_bytes, account_quota_messages), checked
 * against the domain's quota. Returns FALSE without touching @error if
 * @name is not such a setting (*handled_out FALSE). */
gboolean mhctl_quota_set_setting (MhDirectory *dir, gboolean domain,
                                  const char *target, const char *name,
                                  const char *value, gboolean *handled_out,
                                  GError **error);
