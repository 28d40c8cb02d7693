/* lib/directory names: domain and address syntax and normalisation.
 *
 * Design notes
 * - One stored form per name, so a look-up never depends on how the user
 *   typed it: domains become lower-case A-labels through libidn2 (UTS#46
 *   nontransitional mapping, NFC input: "Bücher.Example" and
 *   "xn--bcher-kva.example" are the same key); local parts are NFC and,
 *   unless the domain says otherwise, lower case.
 * - libidn2 does the IDNA work; we add the hostname rules it leaves to
 *   the caller (RFC 1035 2.3.4 lengths, RFC 952/1123 LDH labels, RFC 5891
 *   4.2.3.1 "--" in positions 3-4 only for "xn--") and round-trip every
 *   A-label, so Punycode garbage ("xn--zz-") never becomes a key.
 * - We require two labels and a non-numeric top label: a hosted mail
 *   domain is never "localhost" or an IP address.
 * - Local parts follow RFC 5321 4.1.2 (dot-string or quoted-string), with
 *   UTF-8 allowed in atext as RFC 6531 3.3 does. A quoted local part whose
 *   content is a valid dot-string is stored unquoted (RFC 5321 4.1.2 says
 *   they are the same mailbox). Limits: 64 octets local part (RFC 5321
 *   4.5.3.1.1), 254 for the address.
 * - Messages quote what the user gave and say which rule it breaks.
 */
#include "directory-private.h"

#include <idn2.h>
#include <string.h>

static gboolean
is_ldh (char c)
{
  return g_ascii_isalnum (c) || c == '-';
}

static gboolean
check_ascii_domain (const char *orig, const char *d, GError **error)
{
  gsize total = strlen (d);
  if (total > MH_LIMIT_DOMAIN_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' is too long: %zu octets, at most %d", orig,
                   total, MH_LIMIT_DOMAIN_MAX);
      return FALSE;
    }
  g_auto (GStrv) labels = g_strsplit (d, ".", -1);
  guint n = g_strv_length (labels);
  if (n < 2)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' needs at least two labels (like "
                   "example.org)", orig);
      return FALSE;
    }
  for (guint i = 0; i < n; i++)
    {
      const char *l = labels[i];
      gsize len = strlen (l);
      if (len == 0)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "domain '%s' has an empty label", orig);
          return FALSE;
        }
      if (len > MH_LIMIT_DOMAIN_LABEL_MAX)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "domain '%s': label '%.20s...' is too long: %zu "
                       "octets, at most %d", orig, l, len,
                       MH_LIMIT_DOMAIN_LABEL_MAX);
          return FALSE;
        }
      for (gsize j = 0; j < len; j++)
        if (!is_ldh (l[j]))
          {
            g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                         "domain '%s': label '%s' contains '%c' (only "
                         "letters, digits and '-' are allowed)", orig, l,
                         l[j]);
            return FALSE;
          }
      if (l[0] == '-' || l[len - 1] == '-')
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "domain '%s': label '%s' starts or ends with a hyphen",
                       orig, l);
          return FALSE;
        }
      /* RFC 5891 4.2.3.1: "--" in positions 3 and 4 is reserved for
       * A-labels. */
      if (len >= 4 && l[2] == '-' && l[3] == '-'
          && g_ascii_strncasecmp (l, "xn", 2) != 0)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "domain '%s': label '%s' has hyphens in positions 3 "
                       "and 4, reserved for IDNA 'xn--' labels", orig, l);
          return FALSE;
        }
    }
  /* RFC 3696 2: a top-level label is never all-numeric; this also keeps
   * IPv4 addresses out. */
  const char *tld = labels[n - 1];
  gboolean digits = TRUE;
  for (const char *p = tld; *p; p++)
    if (!g_ascii_isdigit (*p))
      digits = FALSE;
  if (digits)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s': top-level label '%s' is all digits (an IP "
                   "address is not a domain)", orig, tld);
      return FALSE;
    }
  return TRUE;
}

char *
mh_directory_domain_to_ascii (const char *domain, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (domain == NULL || *domain == '\0')
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain name is empty");
      return NULL;
    }
  gsize len = strlen (domain);
  /* Cheap bound before libidn2 sees it: even the longest U-label form of
   * a 253-octet domain is far shorter. */
  if (len > 4 * MH_LIMIT_DOMAIN_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%.40s...' is too long: %zu octets, at most %d",
                   domain, len, MH_LIMIT_DOMAIN_MAX);
      return NULL;
    }
  if (!g_utf8_validate (domain, (gssize) len, NULL))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain name is not valid UTF-8");
      return NULL;
    }
  g_autofree char *d = g_strdup (domain);
  /* One trailing dot (the root) is allowed: "example.org." */
  if (len > 1 && d[len - 1] == '.')
    d[--len] = '\0';
  if (d[0] == '.' || d[len - 1] == '.' || strstr (d, "..") != NULL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' has an empty label", domain);
      return NULL;
    }
  for (const char *p = d; *p; p++)
    if ((guchar) *p < 0x21 || *p == 0x7f)
      {
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                     "domain '%s' contains a space or control character",
                     domain);
        return NULL;
      }

  /* Fast path (every look-up of an ASCII name takes it): for letters,
   * digits, '-' and '.', UTS#46 mapping is just lower-casing, and the
   * LDH rules below are the rest of what IDNA checks. Anything else,
   * including any other ASCII, goes through libidn2. */
  gboolean ldh = TRUE;
  for (const char *p = d; *p && ldh; p++)
    ldh = g_ascii_isalnum (*p) || *p == '-' || *p == '.';
  if (ldh)
    {
      g_autofree char *lower = g_ascii_strdown (d, -1);
      if (!check_ascii_domain (domain, lower, error))
        return NULL;
      if (strstr (lower, "xn--") == NULL)
        return g_steal_pointer (&lower);
    }

  uint8_t *out = NULL;
  int rc = idn2_lookup_u8 ((const uint8_t *) d, &out,
                           IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc == IDN2_TOO_BIG_DOMAIN)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' is too long: at most %d octets", domain,
                   MH_LIMIT_DOMAIN_MAX);
      return NULL;
    }
  if (rc == IDN2_TOO_BIG_LABEL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' has a label longer than %d octets", domain,
                   MH_LIMIT_DOMAIN_LABEL_MAX);
      return NULL;
    }
  if (rc != IDN2_OK)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "domain '%s' is not a valid IDNA name: %s", domain,
                   idn2_strerror (rc));
      return NULL;
    }
  g_autofree char *ascii = g_ascii_strdown ((const char *) out, -1);
  idn2_free (out);

  if (!check_ascii_domain (domain, ascii, error))
    return NULL;

  /* Round-trip every A-label: decode and encode again must give the same
   * label, or it is Punycode that does not normalise. */
  g_auto (GStrv) labels = g_strsplit (ascii, ".", -1);
  for (guint i = 0; labels[i]; i++)
    {
      if (strncmp (labels[i], "xn--", 4) != 0)
        continue;
      char *u = NULL;
      rc = idn2_to_unicode_8z8z (labels[i], &u, 0);
      if (rc != IDN2_OK)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "domain '%s': label '%s' is not valid Punycode: %s",
                       domain, labels[i], idn2_strerror (rc));
          return NULL;
        }
      uint8_t *back = NULL;
      rc = idn2_lookup_u8 ((const uint8_t *) u, &back,
                           IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
      gboolean same = rc == IDN2_OK
                      && g_ascii_strcasecmp ((const char *) back,
                                             labels[i]) == 0;
      g_autofree char *shown = g_strdup (u);
      idn2_free (u);
      idn2_free (back);
      if (!same)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "domain '%s': A-label '%s' does not normalise "
                       "(it decodes to '%s', which IDNA2008 does not map "
                       "back to it)", domain, labels[i], shown);
          return NULL;
        }
    }
  return g_steal_pointer (&ascii);
}

char *
mh_directory_domain_to_unicode (const char *domain)
{
  g_return_val_if_fail (domain != NULL, NULL);
  if (strstr (domain, "xn--") == NULL)
    return g_strdup (domain);
  char *u = NULL;
  if (idn2_to_unicode_8z8z (domain, &u, 0) != IDN2_OK || u == NULL)
    return g_strdup (domain);
  char *r = g_strdup (u);
  idn2_free (u);
  return r;
}

/* ---- Local parts ------------------------------------------------------ */

static gboolean
is_atext (const char *p)
{
  guchar c = (guchar) *p;
  if (c >= 0x80)
    return TRUE;  /* RFC 6531 3.3: UTF8-non-ascii (validated as a whole) */
  return g_ascii_isalnum (c) || strchr ("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static gboolean
is_dot_string (const char *s)
{
  if (*s == '\0' || *s == '.')
    return FALSE;
  const char *p = s;
  for (; *p; p++)
    {
      if (*p == '.')
        {
          if (p[1] == '.' || p[1] == '\0')
            return FALSE;
        }
      else if (!is_atext (p))
        return FALSE;
    }
  return TRUE;
}

/* Returns the canonical local part or NULL with an error. */
static char *
local_canonical (const char *address, const char *local, GError **error)
{
  if (*local == '\0')
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%s' has an empty local part", address);
      return NULL;
    }
  gboolean ascii = TRUE;
  for (const char *p = local; *p && ascii; p++)
    ascii = (guchar) *p < 0x80;
  /* NFC leaves ASCII alone: skip the work on the common path. */
  g_autofree char *nfc = ascii ? g_strdup (local)
                               : g_utf8_normalize (local, -1, G_NORMALIZE_NFC);
  if (nfc == NULL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%s': local part is not valid UTF-8", address);
      return NULL;
    }
  char *canon = NULL;
  if (nfc[0] == '"')
    {
      /* RFC 5321 4.1.2 Quoted-string: qtextSMTP = %d32-33 / %d35-91 /
       * %d93-126 (and UTF-8), quoted-pairSMTP = "\" %d32-126. */
      GString *content = g_string_new (NULL);
      const char *p = nfc + 1;
      gboolean closed = FALSE;
      for (; *p; p++)
        {
          guchar c = (guchar) *p;
          if (c == '"')
            {
              closed = TRUE;
              p++;
              break;
            }
          if (c == '\\')
            {
              guchar n = (guchar) p[1];
              if (n < 32 || n > 126)
                {
                  g_string_free (content, TRUE);
                  g_set_error (error, MH_DIRECTORY_ERROR,
                               MH_DIRECTORY_ERROR_INVALID,
                               "address '%s': bad '\\' escape in the quoted "
                               "local part", address);
                  return NULL;
                }
              g_string_append_c (content, (char) n);
              p++;
              continue;
            }
          if (c < 32 || c == 127)
            {
              g_string_free (content, TRUE);
              g_set_error (error, MH_DIRECTORY_ERROR,
                           MH_DIRECTORY_ERROR_INVALID,
                           "address '%s': control character in the quoted "
                           "local part", address);
              return NULL;
            }
          g_string_append_c (content, (char) c);
        }
      if (!closed || *p != '\0')
        {
          g_string_free (content, TRUE);
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "address '%s': the quoted local part is not closed "
                       "properly", address);
          return NULL;
        }
      if (content->len > 0 && is_dot_string (content->str))
        canon = g_string_free (content, FALSE);
      else
        {
          GString *q = g_string_new ("\"");
          for (gsize i = 0; i < content->len; i++)
            {
              if (content->str[i] == '"' || content->str[i] == '\\')
                g_string_append_c (q, '\\');
              g_string_append_c (q, content->str[i]);
            }
          g_string_append_c (q, '"');
          g_string_free (content, TRUE);
          canon = g_string_free (q, FALSE);
        }
    }
  else
    {
      if (!is_dot_string (nfc))
        {
          const char *bad = NULL;
          for (const char *p = nfc; *p && bad == NULL; p++)
            if (*p != '.' && !is_atext (p))
              bad = p;
          if (bad != NULL)
            g_set_error (error, MH_DIRECTORY_ERROR,
                         MH_DIRECTORY_ERROR_INVALID,
                         "address '%s': local part contains '%c' (quote it "
                         "or leave it out)", address, *bad);
          else
            g_set_error (error, MH_DIRECTORY_ERROR,
                         MH_DIRECTORY_ERROR_INVALID,
                         "address '%s': local part has a leading, trailing "
                         "or double '.'", address);
          return NULL;
        }
      canon = g_strdup (nfc);
    }
  if (strlen (canon) > MH_LIMIT_LOCAL_PART_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%s': local part is too long: %zu octets, at "
                   "most %d", address, strlen (canon),
                   MH_LIMIT_LOCAL_PART_MAX);
      g_free (canon);
      return NULL;
    }
  return canon;
}

void
mh_directory__address_clear (MhDirectoryAddress *a)
{
  g_clear_pointer (&a->local, g_free);
  g_clear_pointer (&a->domain, g_free);
}

gboolean
mh_directory__address_parse (const char *address, MhDirectoryAddress *out,
                             GError **error)
{
  out->local = out->domain = NULL;
  if (address == NULL || *address == '\0')
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address is empty");
      return FALSE;
    }
  gsize len = strlen (address);
  if (len > 4 * MH_LIMIT_ADDRESS_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%.40s...' is too long: %zu octets, at most %d",
                   address, len, MH_LIMIT_ADDRESS_MAX);
      return FALSE;
    }
  if (!g_utf8_validate (address, (gssize) len, NULL))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address is not valid UTF-8");
      return FALSE;
    }
  const char *at = strrchr (address, '@');
  if (at == NULL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%s' has no '@domain'", address);
      return FALSE;
    }
  g_autofree char *local = g_strndup (address, (gsize) (at - address));
  g_autoptr (GError) derr = NULL;
  g_autofree char *domain = mh_directory_domain_to_ascii (at + 1, &derr);
  if (domain == NULL)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%s': %s", address, derr->message);
      return FALSE;
    }
  char *canon = local_canonical (address, local, error);
  if (canon == NULL)
    return FALSE;
  if (strlen (canon) + 1 + strlen (domain) > MH_LIMIT_ADDRESS_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "address '%s' is too long: at most %d octets", address,
                   MH_LIMIT_ADDRESS_MAX);
      g_free (canon);
      return FALSE;
    }
  out->local = canon;
  out->domain = g_steal_pointer (&domain);
  return TRUE;
}

char *
mh_directory__local_fold (const char *local, gboolean case_sensitive)
{
  if (case_sensitive)
    return g_strdup (local);
  gboolean ascii = TRUE;
  for (const char *p = local; *p; p++)
    if ((guchar) *p >= 0x80)
      ascii = FALSE;
  if (ascii)
    return g_ascii_strdown (local, -1);
  g_autofree char *down = g_utf8_strdown (local, -1);
  return g_utf8_normalize (down, -1, G_NORMALIZE_NFC);
}

char *
mh_directory__address_key (const char *local, const char *domain)
{
  /* Domain first: one domain's entries are one key range. A domain never
   * holds '@', so the first '@' splits the key. */
  return g_strconcat (domain, "@", local, NULL);
}

gboolean
mh_directory__key_split (const void *key, gsize len, char **local_out,
                         char **domain_out)
{
  const char *k = key;
  const char *at = memchr (k, '@', len);
  if (at == NULL)
    return FALSE;
  *domain_out = g_strndup (k, (gsize) (at - k));
  *local_out = g_strndup (at + 1, len - (gsize) (at - k) - 1);
  return TRUE;
}
