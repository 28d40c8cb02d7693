/* libFuzzer target: the directory's name and hash parsers. Login names
 * and alias targets come from the network (SASL, RCPT TO), so domain
 * normalisation, address parsing and hash checks must never crash, and
 * their output must be stable: normalising a normalised name gives it
 * back, and the U-label form normalises to the same A-label.
 *
 * Input: first byte picks the parser, the rest is its argument. */
#include "mailhost/mailhost.h"
#include "directory/directory-private.h"

#include <stdint.h>
#include <stddef.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fuzz_domain (const char *s)
{
  char *a = mh_directory_domain_to_ascii (s, NULL);
  if (a == NULL)
    return;
  char *again = mh_directory_domain_to_ascii (a, NULL);
  if (again == NULL || strcmp (again, a) != 0)
    __builtin_trap ();  /* the stored form must be a fixed point */
  char *u = mh_directory_domain_to_unicode (a);
  char *back = mh_directory_domain_to_ascii (u, NULL);
  if (back == NULL || strcmp (back, a) != 0)
    __builtin_trap ();  /* what we show must name the same domain */
  g_free (back);
  g_free (u);
  g_free (again);
  g_free (a);
}

static void
fuzz_address (const char *s)
{
  MhDirectoryAddress a;
  if (!mh_directory__address_parse (s, &a, NULL))
    return;
  char *joined = g_strconcat (a.local, "@", a.domain, NULL);
  MhDirectoryAddress b;
  if (!mh_directory__address_parse (joined, &b, NULL)
      || strcmp (a.local, b.local) != 0 || strcmp (a.domain, b.domain) != 0)
    __builtin_trap ();
  char *folded = mh_directory__local_fold (a.local, FALSE);
  g_free (folded);
  mh_directory__address_clear (&b);
  g_free (joined);
  mh_directory__address_clear (&a);
}

static void
fuzz_hash (const char *s)
{
  gboolean ok = mh_directory_password_check_hash (s, NULL);
  /* Only cheap schemes are verified: crypt(3) KDFs would make the run
   * crawl and are libcrypt's to fuzz. */
  if (ok && s[0] == '{' && strstr (s, "CRYPT}") == NULL)
    (void) mh_directory_password_verify ("correct horse", s);
  (void) mh_directory__hash_scheme (s);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1 || size > 4096)
    return 0;
  char *s = g_strndup ((const char *) data + 1, size - 1);
  switch (data[0] % 4)
    {
    case 0: fuzz_domain (s); break;
    case 1: fuzz_address (s); break;
    case 2: fuzz_hash (s); break;
    default:
      {
        MhDirectoryProtocols p;
        (void) mh_directory_protocols_from_string (s, &p, NULL);
      }
      break;
    }
  g_free (s);
  return 0;
}
