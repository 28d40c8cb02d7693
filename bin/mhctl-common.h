/* What every mhctl verb file shares: the exit codes of docs/mhctl.md
 * and how a library error maps onto them. */
#pragma once

#include <glib.h>

#define EXIT_USAGE 1    /* bad command line */
#define EXIT_CONFLICT 2 /* not found, already exists, over a limit */
#define EXIT_DATA 3     /* bad input, unreadable data */

/* The exit code for @error from lib/directory or lib/quota (and
 * EXIT_DATA for anything else). */
int mhctl_exit_code (const GError *error);
