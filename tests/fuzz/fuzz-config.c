/* libFuzzer target: the config loader (GKeyFile + schema validation).
 * Config files are written by admins, but panels generate them from user
 * input, so the loader must never crash or loop on any bytes. */
#include "mailhost/mailhost.h"

#include <stdint.h>
#include <stddef.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  MhConfig *c = mh_config_load_data ((const char *) data, (gssize) size,
                                     "fuzz.conf", &error);
  if (c != NULL)
    {
      /* exercise the getters on whatever loaded */
      char *text = mh_config_to_data (c);
      MhConfig *again = mh_config_load_data (text, -1, "again", NULL);
      if (again == NULL)
        __builtin_trap (); /* our own output must always load */
      mh_config_unref (again);
      g_free (text);
      mh_config_unref (c);
    }
  g_clear_error (&error);
  return 0;
}
