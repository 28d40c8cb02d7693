/* lib/core: version, error quarks, small helpers shared by every layer.
 *
 * Nothing here holds mutable global state: the library has no init call,
 * and two embedders in one process never see each other (STYLE.md).
 */
#include "mh-config.h"
#include "core-private.h"

#include <errno.h>
#include <string.h>

const char *
mh_version (void)
{
  return MH_VERSION;
}

G_DEFINE_QUARK (mh-core-error-quark, mh_core_error)

gboolean
mh_core__parse_duration (const char *text, gint64 *seconds_out)
{
  g_return_val_if_fail (seconds_out != NULL, FALSE);
  if (text == NULL || *text == '\0')
    return FALSE;

  char *end = NULL;
  guint64 n = 0;
  gsize len = strlen (text);
  gint64 mult = 1;
  g_autofree char *num = g_strdup (text);

  switch (text[len - 1])
    {
    case 's': mult = 1; num[len - 1] = '\0'; break;
    case 'm': mult = 60; num[len - 1] = '\0'; break;
    case 'h': mult = 3600; num[len - 1] = '\0'; break;
    case 'd': mult = 86400; num[len - 1] = '\0'; break;
    case 'w': mult = 7 * 86400; num[len - 1] = '\0'; break;
    default: break;
    }
  if (num[0] < '0' || num[0] > '9')
    return FALSE;
  errno = 0;
  n = g_ascii_strtoull (num, &end, 10);
  if (errno != 0 || end == num || *end != '\0')
    return FALSE;
  if (n > (guint64) G_MAXINT64 / (guint64) mult)
    return FALSE;
  *seconds_out = (gint64) n * mult;
  return TRUE;
}

gboolean
mh_core__parse_size (const char *text, gint64 *bytes_out)
{
  g_return_val_if_fail (bytes_out != NULL, FALSE);
  if (text == NULL || *text == '\0')
    return FALSE;

  gsize len = strlen (text);
  gint64 mult = 1;
  g_autofree char *num = g_strdup (text);

  switch (g_ascii_toupper (text[len - 1]))
    {
    case 'K': mult = 1024; num[len - 1] = '\0'; break;
    case 'M': mult = 1024 * 1024; num[len - 1] = '\0'; break;
    case 'G': mult = 1024 * 1024 * 1024; num[len - 1] = '\0'; break;
    case 'T': mult = (gint64) 1024 * 1024 * 1024 * 1024; num[len - 1] = '\0';
      break;
    default: break;
    }
  if (num[0] < '0' || num[0] > '9')
    return FALSE;
  char *end = NULL;
  errno = 0;
  guint64 n = g_ascii_strtoull (num, &end, 10);
  if (errno != 0 || end == num || *end != '\0')
    return FALSE;
  if (n > (guint64) G_MAXINT64 / (guint64) mult)
    return FALSE;
  *bytes_out = (gint64) n * mult;
  return TRUE;
}

gboolean
mh_core__memeq_ct (const void *a, gsize alen, const void *b, gsize blen)
{
  /* Walk the whole of b whatever a holds, so timing tells an attacker at
   * most the length of the secret, which hashes fix anyway. */
  const volatile guint8 *pa = a;
  const volatile guint8 *pb = b;
  guint8 diff = (alen != blen);

  for (gsize i = 0; i < blen; i++)
    diff |= (guint8) ((i < alen ? pa[i] : 0) ^ pb[i]);
  return diff == 0;
}

void
mh_core__wipe (void *p, gsize len)
{
  if (p == NULL)
    return;
  volatile guint8 *v = p;
  while (len--)
    *v++ = 0;
}
