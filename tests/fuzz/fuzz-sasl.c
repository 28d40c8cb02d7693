/* libFuzzer target: the SASL server exchanges (PLAIN and LOGIN).
 *
 * Input: one flag byte, then lines separated by '\n'. Every input runs
 * through both mechanisms.
 *   flag bit 0: the first line is the initial response (SASL-IR)
 *   flag bit 1: base64-encode each line before feeding it, so the fuzzer
 *               also reaches the field checks behind the decoder
 *   flag bit 2: small limits (line 64, ids 16, password 16, 2 steps)
 * Beyond "no crash, no leak, no UB", it checks what the protocol layers
 * rely on: a finished exchange has valid credentials, a failed one an
 * MH_AUTH_ERROR, and a challenge is plain base64 text.
 */
#include "mailhost/mailhost.h"

#include <stdint.h>
#include <stddef.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean
valid_field (const char *s, gboolean may_be_null)
{
  if (s == NULL)
    return may_be_null;
  return *s != '\0' && g_utf8_validate (s, -1, NULL);
}

static void
run (const char *mech, guint8 flags, const char *text, gsize len)
{
  MhSaslLimits small = { .version = 1, .max_line = 64, .max_id = 16,
                         .max_password = 16, .max_steps = 2 };
  GError *error = NULL;
  MhSaslServer *s = mh_sasl_server_new (mech, (flags & 4) ? &small : NULL,
                                        &error);
  if (s == NULL)
    __builtin_trap ();

  const char *p = text, *end = text + len;
  MhSaslStatus st;
  gboolean started = FALSE;

  if (!(flags & 1))
    {
      st = mh_sasl_server_start (s, NULL, 0, &error);
      started = TRUE;
    }
  else
    st = MH_SASL_STATUS_CHALLENGE;

  while (st == MH_SASL_STATUS_CHALLENGE)
    {
      const char *c = mh_sasl_server_get_challenge (s);
      for (; *c; c++)
        if (!g_ascii_isalnum (*c) && *c != '+' && *c != '/' && *c != '=')
          __builtin_trap ();
      if (p > end)
        break; /* input exhausted: the client went away */

      const char *nl = memchr (p, '\n', (gsize) (end - p));
      gsize n = nl ? (gsize) (nl - p) : (gsize) (end - p);
      char *line;
      gsize line_len;
      if (flags & 2)
        {
          line = g_base64_encode ((const guchar *) p, n);
          line_len = strlen (line);
        }
      else
        {
          /* an exact-size copy, so ASan sees any read past the line */
          line = g_malloc (n ? n : 1);
          memcpy (line, p, n);
          line_len = n;
        }
      p += n + 1;

      if (!started)
        {
          st = mh_sasl_server_start (s, line, line_len, &error);
          started = TRUE;
        }
      else
        st = mh_sasl_server_feed (s, line, line_len, &error);
      g_free (line);
    }

  if (st == MH_SASL_STATUS_DONE)
    {
      const MhSaslCredentials *c = mh_sasl_server_get_credentials (s);
      if (c == NULL || error != NULL
          || !valid_field (mh_sasl_credentials_get_authzid (c), TRUE)
          || !valid_field (mh_sasl_credentials_get_authcid (c), FALSE)
          || !valid_field (mh_sasl_credentials_get_password (c), FALSE))
        __builtin_trap ();
      /* One more line is always refused. */
      GError *e2 = NULL;
      if (mh_sasl_server_feed (s, "", 0, &e2) != MH_SASL_STATUS_FAILED
          || e2 == NULL)
        __builtin_trap ();
      g_error_free (e2);
    }
  else if (st == MH_SASL_STATUS_FAILED)
    {
      if (error == NULL || error->domain != MH_AUTH_ERROR
          || mh_sasl_server_get_credentials (s) != NULL)
        __builtin_trap ();
    }
  else if (error != NULL)
    __builtin_trap ();

  g_clear_error (&error);
  mh_sasl_server_unref (s);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  guint8 flags = data[0];
  run ("PLAIN", flags, (const char *) data + 1, size - 1);
  run ("LOGIN", flags, (const char *) data + 1, size - 1);
  return 0;
}
