/* The main() shared by the server programs (bin/mh-server-main.c). */
#pragma once

#include <mailhost/mailhost.h>

typedef struct
{
  const char *prog;     /* "mailhostd", "mh-lmtpd": messages and --version */
  const char *summary;  /* one line for --help */
  /* Registers the program's services on @server (config loaded, data
   * directory set, before the demo setup and before binding). */
  gboolean (*register_services) (MhServer *server, MhConfig *config,
                                 GError **error);
} MhServerMain;

/* Parses the common flags (--config, --data-dir, --user, --demo,
 * --foreground, --print-config, --version) and runs the server; returns
 * the exit status (docs/server.md). */
int mh_server_main (const MhServerMain *info, int argc, char **argv);
