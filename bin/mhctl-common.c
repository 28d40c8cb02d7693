/* Shared by mhctl's verb files (mhctl.c, mhctl-resolve.c, mhctl-quota.c,
 * mhctl-store.c): one mapping from errors to exit codes, so every verb
 * answers "not found" and "bad data" the same way. */
#include "mhctl-common.h"

#include <mailhost/mailhost.h>

int
mhctl_exit_code (const GError *error)
{
  if (error->domain == MH_QUOTA_ERROR)
    return error->code == MH_QUOTA_ERROR_NOT_FOUND
                   || error->code == MH_QUOTA_ERROR_OVER_DOMAIN
               ? EXIT_CONFLICT
               : EXIT_DATA;
  if (error->domain == MH_DIRECTORY_ERROR)
    switch (error->code)
      {
      case MH_DIRECTORY_ERROR_NOT_FOUND:
      case MH_DIRECTORY_ERROR_EXISTS:
      case MH_DIRECTORY_ERROR_NOT_EMPTY:
      case MH_DIRECTORY_ERROR_LIMIT:
        return EXIT_CONFLICT;
      default:
        return EXIT_DATA;
      }
  return EXIT_DATA;
}
