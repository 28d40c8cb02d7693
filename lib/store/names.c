/* lib/store/names.c: folder names and Maildir file names.
 *
 * Design notes
 * - Folder names are UTF-8 in the API, '.' separates levels (Dovecot's
 *   Maildir++ separator), and each level is stored on disk in modified
 *   UTF-7 (RFC 3501 5.1.3) exactly as Dovecot does, so both programs see
 *   the same folders: "Entwürfe.Alt" <-> ".Entw&APw-rfe.Alt".
 * - Refused: empty names or levels ("..", leading/trailing '.'), '/'
 *   (a path separator on disk), control characters, invalid UTF-8, more
 *   than MH_LIMIT_STORE_FOLDER_DEPTH_MAX levels, and names whose encoded
 *   form is longer than MH_LIMIT_STORE_FOLDER_NAME_MAX (a directory entry
 *   is at most 255 bytes). "INBOX" in any case is the Maildir root.
 * - File names: "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>[,W=<size>]"
 *   plus ":2,<flags>". The counter is per store and atomic, so threads
 *   never collide; pid separates processes; tmp/ files are also opened
 *   O_EXCL, so a collision is an error, never an overwrite. ':' and '/'
 *   in the host name are escaped as the Maildir spec asks.
 * - Info suffix: system flags in ASCII order (D F P R S T) followed by
 *   keyword letters a-z (index into dovecot-keywords), as Dovecot writes.
 */
#include "store-private.h"

#include <string.h>
#include <unistd.h>

static const char b64[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

char *
mh_store__mutf7_encode (const char *utf8)
{
  GString *out = g_string_new (NULL);
  const char *p = utf8;
  while (*p)
    {
      gunichar c = g_utf8_get_char (p);
      if (c >= 0x20 && c <= 0x7e)
        {
          if (c == '&')
            g_string_append (out, "&-");
          else
            g_string_append_c (out, (char) c);
          p = g_utf8_next_char (p);
          continue;
        }
      /* A run of non-printable characters, as UTF-16BE in base64. */
      g_string_append_c (out, '&');
      guint32 bits = 0;
      int nbits = 0;
      while (*p)
        {
          c = g_utf8_get_char (p);
          if (c >= 0x20 && c <= 0x7e)
            break;
          gunichar2 units[2];
          int nu = 1;
          if (c >= 0x10000)
            {
              units[0] = 0xd800 + ((c - 0x10000) >> 10);
              units[1] = 0xdc00 + ((c - 0x10000) & 0x3ff);
              nu = 2;
            }
          else
            units[0] = (gunichar2) c;
          for (int i = 0; i < nu; i++)
            {
              bits = (bits << 16) | units[i];
              nbits += 16;
              while (nbits >= 6)
                {
                  nbits -= 6;
                  g_string_append_c (out, b64[(bits >> nbits) & 0x3f]);
                }
            }
          p = g_utf8_next_char (p);
        }
      if (nbits > 0)
        g_string_append_c (out, b64[(bits << (6 - nbits)) & 0x3f]);
      g_string_append_c (out, '-');
    }
  return g_string_free (out, FALSE);
}

char *
mh_store__mutf7_decode (const char *s)
{
  g_autoptr (GString) out = g_string_new (NULL);
  while (*s)
    {
      if ((guchar) *s < 0x20 || (guchar) *s > 0x7e)
        return NULL;
      if (*s != '&')
        {
          g_string_append_c (out, *s++);
          continue;
        }
      s++;
      if (*s == '-')
        {
          g_string_append_c (out, '&');
          s++;
          continue;
        }
      guint32 bits = 0;
      int nbits = 0;
      gunichar2 hi = 0;
      gboolean any = FALSE;
      while (*s && *s != '-')
        {
          const char *q = strchr (b64, *s);
          if (q == NULL)
            return NULL;
          bits = (bits << 6) | (guint32) (q - b64);
          nbits += 6;
          s++;
          if (nbits >= 16)
            {
              nbits -= 16;
              gunichar2 u = (bits >> nbits) & 0xffff;
              any = TRUE;
              if (u >= 0xd800 && u < 0xdc00)
                {
                  if (hi)
                    return NULL;
                  hi = u;
                  continue;
                }
              gunichar c = u;
              if (u >= 0xdc00 && u < 0xe000)
                {
                  if (!hi)
                    return NULL;
                  c = 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00);
                  hi = 0;
                }
              else if (hi)
                return NULL;
              /* RFC 3501: printable ASCII must not be encoded. */
              if (c >= 0x20 && c <= 0x7e)
                return NULL;
              g_string_append_unichar (out, c);
            }
        }
      if (*s != '-' || !any || hi || (bits & ((1u << nbits) - 1)) != 0)
        return NULL;
      s++;
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

const char *
mh_store__canon (const char *name)
{
  if (name == NULL || g_ascii_strcasecmp (name, "INBOX") == 0)
    return "INBOX";
  return name;
}

char *
mh_store__folder_dirname (const char *name, GError **error)
{
  name = mh_store__canon (name);
  if (strcmp (name, "INBOX") == 0)
    return g_strdup ("");
  gsize len = strlen (name);
  if (!g_utf8_validate (name, (gssize) len, NULL))
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "folder name is not valid UTF-8");
      return NULL;
    }
  if (len == 0 || name[0] == '.' || name[len - 1] == '.'
      || strstr (name, "..") != NULL)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "folder name '%s' has an empty level ('.' separates "
                   "levels)", name);
      return NULL;
    }
  guint depth = 1;
  for (const char *p = name; *p; p++)
    {
      if (*p == '/' || *p == '\\')
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                       "folder name '%s' contains '%c'", name, *p);
          return NULL;
        }
      if ((guchar) *p < 0x20 || *p == 0x7f)
        {
          g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                       "folder name contains a control character");
          return NULL;
        }
      if (*p == '.')
        depth++;
    }
  if (depth > MH_LIMIT_STORE_FOLDER_DEPTH_MAX)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_LIMIT,
                   "folder name has %u levels, more than %d", depth,
                   MH_LIMIT_STORE_FOLDER_DEPTH_MAX);
      return NULL;
    }
  g_autofree char *enc = mh_store__mutf7_encode (name);
  if (strlen (enc) + 1 > MH_LIMIT_STORE_FOLDER_NAME_MAX)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_LIMIT,
                   "folder name is %zu bytes on disk, more than %d",
                   strlen (enc) + 1, MH_LIMIT_STORE_FOLDER_NAME_MAX);
      return NULL;
    }
  return g_strconcat (".", enc, NULL);
}

char *
mh_store__folder_from_dirname (const char *d)
{
  if (d[0] != '.' || d[1] == '\0' || strcmp (d, "..") == 0)
    return NULL;
  g_autofree char *dec = mh_store__mutf7_decode (d + 1);
  if (dec == NULL)
    return NULL;
  /* Round-trip check: only canonical encodings name a folder. */
  g_autofree char *again = mh_store__folder_dirname (dec, NULL);
  if (again == NULL || strcmp (again, d) != 0)
    return NULL;
  return g_steal_pointer (&dec);
}

char *
mh_store__host_name (void)
{
  char host[256];
  if (gethostname (host, sizeof host) != 0)
    g_strlcpy (host, "localhost", sizeof host);
  host[sizeof host - 1] = '\0';
  GString *h = g_string_new (NULL);
  for (const char *p = host; *p; p++)
    {
      if (*p == '/')
        g_string_append (h, "\\057");
      else if (*p == ':')
        g_string_append (h, "\\072");
      else if (*p == ',')
        g_string_append (h, "\\054");
      else
        g_string_append_c (h, *p);
    }
  return g_string_free (h, FALSE);
}

char *
mh_store__unique_name (const char *host, guint64 counter, gsize size,
                       gsize vsize)
{
  gint64 now = g_get_real_time ();
  GString *n = g_string_new (NULL);
  g_string_printf (n, "%" G_GINT64_FORMAT ".M%06dP%dQ%" G_GUINT64_FORMAT
                   ".%s,S=%zu", now / G_USEC_PER_SEC,
                   (int) (now % G_USEC_PER_SEC), (int) getpid (), counter,
                   host, size);
  if (vsize != size)
    g_string_append_printf (n, ",W=%zu", vsize);
  return g_string_free (n, FALSE);
}

gsize
mh_store__base_len_n (const char *filename, gsize len)
{
  const char *c = memmem (filename, len, ":2,", 3);
  return c ? (gsize) (c - filename) : len;
}

gsize
mh_store__base_len (const char *filename)
{
  const char *c = strstr (filename, ":2,");
  return c ? (gsize) (c - filename) : strlen (filename);
}

static const struct
{
  char letter;
  guint32 flag;
} flag_letters[] = {
  /* ASCII order, as the Maildir spec requires in the info part. */
  { 'D', MH_STORE_FLAG_DRAFT },
  { 'F', MH_STORE_FLAG_FLAGGED },
  { 'P', MH_STORE_FLAG_FORWARDED },
  { 'R', MH_STORE_FLAG_ANSWERED },
  { 'S', MH_STORE_FLAG_SEEN },
  { 'T', MH_STORE_FLAG_DELETED },
};

void
mh_store__parse_info (const char *filename, guint32 *flags_out,
                      guint32 *kwbits_out)
{
  guint32 fl = 0, kw = 0;
  const char *c = strstr (filename, ":2,");
  if (c != NULL)
    for (c += 3; *c && *c != ','; c++)
      {
        if (*c >= 'a' && *c <= 'z')
          kw |= 1u << (*c - 'a');
        else
          for (gsize i = 0; i < G_N_ELEMENTS (flag_letters); i++)
            if (flag_letters[i].letter == *c)
              fl |= flag_letters[i].flag;
      }
  *flags_out = fl;
  *kwbits_out = kw;
}

char *
mh_store__make_name (const char *base, gsize base_len, guint32 flags,
                     guint32 kwbits)
{
  GString *s = g_string_new_len (base, (gssize) base_len);
  g_string_append (s, ":2,");
  for (gsize i = 0; i < G_N_ELEMENTS (flag_letters); i++)
    if (flags & flag_letters[i].flag)
      g_string_append_c (s, flag_letters[i].letter);
  for (int i = 0; i < 26; i++)
    if (kwbits & (1u << i))
      g_string_append_c (s, (char) ('a' + i));
  return g_string_free (s, FALSE);
}

gboolean
mh_store__name_size (const char *filename, guint64 *size_out)
{
  gsize bl = mh_store__base_len (filename);
  g_autofree char *base = g_strndup (filename, bl);
  const char *p = strstr (base, ",S=");
  if (p == NULL)
    return FALSE;
  p += 3;
  char *end = NULL;
  guint64 v = g_ascii_strtoull (p, &end, 10);
  if (end == p || (*end != '\0' && *end != ','))
    return FALSE;
  *size_out = v;
  return TRUE;
}

gboolean
mh_store__keyword_valid (const char *kw, GError **error)
{
  gsize len = kw ? strlen (kw) : 0;
  if (len == 0 || len > MH_LIMIT_STORE_KEYWORD_MAX)
    {
      g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                   "keyword must be 1 to %d bytes",
                   MH_LIMIT_STORE_KEYWORD_MAX);
      return FALSE;
    }
  /* RFC 3501 atom: no atom-specials, and '\\' only for system flags. */
  for (const char *p = kw; *p; p++)
    if ((guchar) *p <= 0x20 || (guchar) *p >= 0x7f
        || strchr ("(){%*\"\\]", *p) != NULL)
      {
        g_set_error (error, MH_STORE_ERROR, MH_STORE_ERROR_INVALID,
                     "keyword '%s' is not an IMAP atom (bad character "
                     "0x%02x)", kw, (guchar) *p);
        return FALSE;
      }
  return TRUE;
}

gboolean
mh_store__path_component_valid (const char *s)
{
  return s != NULL && *s != '\0' && strcmp (s, ".") != 0
         && strcmp (s, "..") != 0 && strchr (s, '/') == NULL
         && strlen (s) <= 255;
}
