/* mhctl verbs of the store, in bin/mhctl-store.c. */
#pragma once

#include <glib.h>
#include <stdio.h>

/* Runs the command if it is `index rebuild ...` or `expunge ...`, setting
 * *code_out to the exit code, and returns TRUE; FALSE (nothing done) for
 * any other command. */
gboolean mhctl_store_main (int argc, char **argv, int *code_out);

/* The usage lines of those verbs, for `mhctl --help`. */
void mhctl_store_usage (FILE *out);
