/* mhctl verbs of address resolution, in bin/mhctl-resolve.c. */
#pragma once

#include <glib.h>
#include <stdio.h>

/* Runs the command if it is `resolve ...` or `alias temp ...`, setting
 * *code_out to the exit code, and returns TRUE; FALSE (nothing done) for
 * any other command. */
gboolean mhctl_resolve_main (int argc, char **argv, int *code_out);

/* The usage lines of those verbs, for `mhctl --help`. */
void mhctl_resolve_usage (FILE *out);
