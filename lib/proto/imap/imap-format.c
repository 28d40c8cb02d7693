/* lib/proto/imap: response helpers (strings, sequence sets).
 *
 * Design notes
 *
 * mh_imap_append_astring()/_nstring() pick the cheapest safe form: an
 * atom when every byte is an ATOM-CHAR (astring only), a quoted string
 * when every byte is a TEXT-CHAR (7-bit, or valid UTF-8 once the client
 * enabled UTF8=ACCEPT or IMAP4rev2; RFC 9051 9 / RFC 6855 3), else a
 * literal. Long values go out as literals too: some clients cap quoted
 * strings, and a literal needs no escaping scan on their side.
 *
 * Sequence sets: "*" is MH_IMAP_STAR; ranges may be written backwards
 * ("4:2"), which means the same as "2:4" (RFC 9051 9, seq-range).
 */
#include "imap-proto-private.h"

#include <string.h>

#define QUOTED_MAX 1024 /* longer values are sent as literals */

static gboolean
is_atom_char (guchar c)
{
  /* RFC 9051 9: ATOM-CHAR = <any CHAR except atom-specials> */
  if (c <= 0x20 || c >= 0x7f)
    return FALSE;
  return strchr ("(){%*\"\\]", c) == NULL;
}

/* How @s may be sent: 0 atom, 1 quoted, 2 literal. */
static int
string_form (const char *s, gsize len, gboolean utf8)
{
  gboolean atom = len > 0, eight = FALSE;
  if (len > QUOTED_MAX)
    return 2;
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar)s[i];
      if (c == 0 || c == '\r' || c == '\n')
        return 2;
      if (c >= 0x80)
        eight = TRUE;
      if (!is_atom_char (c))
        atom = FALSE;
    }
  if (eight && !(utf8 && g_utf8_validate (s, (gssize)len, NULL)))
    return 2;
  return atom ? 0 : 1;
}

static void
append_quoted_or_literal (GString *out, const char *s, gsize len, int form)
{
  if (form == 2)
    {
      g_string_append_printf (out, "{%" G_GSIZE_FORMAT "}\r\n", len);
      g_string_append_len (out, s, (gssize)len);
      return;
    }
  g_string_append_c (out, '"');
  for (gsize i = 0; i < len; i++)
    {
      if (s[i] == '"' || s[i] == '\\')
        g_string_append_c (out, '\\');
      g_string_append_c (out, s[i]);
    }
  g_string_append_c (out, '"');
}

void
mh_imap_append_astring (GString *out, const char *s, gssize len, gboolean utf8)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (s != NULL || len == 0);
  if (s == NULL)
    s = "";
  gsize n = len < 0 ? strlen (s) : (gsize)len;
  int form = string_form (s, n, utf8);
  /* "NIL" as an atom would read as NIL where an nstring may also appear */
  if (form == 0 && !(n == 3 && g_ascii_strncasecmp (s, "NIL", 3) == 0))
    {
      g_string_append_len (out, s, (gssize)n);
      return;
    }
  append_quoted_or_literal (out, s, n, form == 0 ? 1 : form);
}

void
mh_imap_append_nstring (GString *out, const char *s, gssize len, gboolean utf8)
{
  g_return_if_fail (out != NULL);
  if (s == NULL)
    {
      g_string_append (out, "NIL");
      return;
    }
  gsize n = len < 0 ? strlen (s) : (gsize)len;
  int form = string_form (s, n, utf8);
  append_quoted_or_literal (out, s, n, form == 0 ? 1 : form);
}

gboolean
mh_imap_seqset_contains (const MhImapSeqSet *set, guint32 n, guint32 star)
{
  g_return_val_if_fail (set != NULL, FALSE);
  if (set->ranges == NULL)
    return FALSE;
  for (guint i = 0; i < set->ranges->len; i++)
    {
      const MhImapRange *r = &g_array_index (set->ranges, MhImapRange, i);
      guint32 a = r->first == MH_IMAP_STAR ? star : r->first;
      guint32 b = r->last == MH_IMAP_STAR ? star : r->last;
      if (a > b)
        {
          guint32 t = a;
          a = b;
          b = t;
        }
      if (n >= a && n <= b)
        return TRUE;
    }
  return FALSE;
}

char *
mh_imap_seqset_format (const guint32 *values, gsize n)
{
  g_return_val_if_fail (values != NULL || n == 0, NULL);
  GString *s = g_string_sized_new (n * 4 + 1);
  gsize i = 0;
  while (i < n)
    {
      guint32 a = values[i], b = a;
      gsize j = i + 1;
      /* runs of consecutive numbers (duplicates folded in) */
      while (j < n
             && (values[j] == b || (b < G_MAXUINT32 && values[j] == b + 1)))
        b = values[j++];
      if (s->len > 0)
        g_string_append_c (s, ',');
      if (a == b)
        g_string_append_printf (s, "%u", a);
      else
        g_string_append_printf (s, "%u:%u", a, b);
      i = j;
    }
  return g_string_free (s, FALSE);
}
