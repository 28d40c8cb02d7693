/* lib/proto/imap: command argument parser.
 *
 * Design notes
 *
 * Input: one framed command (imap-engine.c): its lines joined by CRLF,
 * each literal in place after its "{n}\r\n" (the framer already checked
 * sizes and that n bytes follow), no final CRLF. The parser is a plain
 * recursive-descent reader over (ptr, len) following the formal syntax
 * of RFC 9051 section 9 and RFC 3501 section 9, plus the extension
 * grammars: RFC 4466 (LIST/SEARCH/SELECT extensions), RFC 4731/5182
 * (ESEARCH, SEARCHRES), RFC 5256/5957 (SORT, THREAD, DISPLAY), RFC 5258/
 * 5819/6154 (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CREATE-SPECIAL-
 * USE), RFC 7162 (CONDSTORE/QRESYNC), RFC 3516 (BINARY), RFC 2971 (ID),
 * RFC 5161 (ENABLE), RFC 9208 (QUOTA), RFC 5464 (METADATA), RFC 5465
 * (NOTIFY, kept raw), RFC 4978 (COMPRESS), RFC 4959 (SASL-IR), RFC 5032
 * (OLDER/YOUNGER), RFC 8514 (SAVEDATE), RFC 6855 (UTF8=ACCEPT).
 *
 * Every failure names the command and says what was expected where
 * ("Error in IMAP command FETCH: unknown FETCH item "BODYX""). The first
 * error wins; parsing stops there.
 *
 * Bounds: loops are bounded by the input length; the search program's
 * nesting (parentheses, NOT, OR) by MAX_DEPTH; part numbers by MAX_PARTS.
 * Strings may come from literals, so nothing assumes NUL-termination.
 */
#include "imap-proto-private.h"

#include <string.h>

#define MAX_DEPTH 64
#define MAX_PARTS 32

typedef struct
{
  const guint8 *s;
  gsize len;
  gsize pos;
  GBytes *whole;
  gboolean utf8;
  const char *name; /* command name for error texts */
  char *err;
  char *code;
  gboolean no;
  MhImapCommand *cmd;
} P;

/* ---- Basics -------------------------------------------------------------- */

static gboolean G_GNUC_PRINTF (2, 3) fail (P *p, const char *fmt, ...)
{
  if (p->err != NULL)
    return FALSE;
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *m = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (p->name != NULL)
    p->err = g_strdup_printf ("Error in IMAP command %s: %s", p->name, m);
  else
    p->err = g_steal_pointer (&m);
  return FALSE;
}

static int
peek (const P *p)
{
  return p->pos < p->len ? p->s[p->pos] : -1;
}

static gboolean
at_end (const P *p)
{
  return p->pos >= p->len;
}

static gboolean
eat (P *p, char c)
{
  if (peek (p) == (guchar)c)
    {
      p->pos++;
      return TRUE;
    }
  return FALSE;
}

/* RFC 9051 9 / RFC 6855 3: atoms are 7-bit; say so rather than
 * "expected a space" when a client sends a raw UTF-8 name. */
static gboolean
fail_8bit (P *p)
{
  return fail (p, "8-bit characters are only allowed in quoted strings "
                  "(after ENABLE UTF8=ACCEPT) and literals");
}

static gboolean
expect_sp (P *p, const char *what)
{
  if (eat (p, ' '))
    return TRUE;
  if (peek (p) >= 0x80)
    return fail_8bit (p);
  if (at_end (p))
    return fail (p, "missing %s", what);
  return fail (p, "expected a space before %s", what);
}

static gboolean
expect_c (P *p, char c, const char *what)
{
  if (eat (p, c))
    return TRUE;
  return fail (p, "expected '%c' %s", c, what);
}

static gboolean
expect_end (P *p)
{
  if (at_end (p))
    return TRUE;
  if (peek (p) >= 0x80)
    return fail_8bit (p);
  return fail (p, "unexpected characters at the end of the command");
}

static gboolean
is_atom_char (int c)
{
  /* RFC 9051 9: ATOM-CHAR = <any CHAR except atom-specials> */
  if (c <= 0x20 || c >= 0x7f)
    return FALSE;
  return strchr ("(){%*\"\\]", c) == NULL;
}

gboolean
mh_imap__is_tag_char (guchar c)
{
  /* tag = 1*<any ASTRING-CHAR except "+"> */
  return (is_atom_char (c) || c == ']') && c != '+';
}

static gboolean
is_astring_char (int c)
{
  return is_atom_char (c) || c == ']';
}

static gboolean
is_list_char (int c)
{
  return is_atom_char (c) || c == '%' || c == '*' || c == ']';
}

/* 1*chars matching @pred, as a new string (NULL if none). */
static char *
take_while (P *p, gboolean (*pred) (int))
{
  gsize start = p->pos;
  while (p->pos < p->len && pred (p->s[p->pos]))
    p->pos++;
  if (p->pos == start)
    return NULL;
  return g_strndup ((const char *)p->s + start, p->pos - start);
}

static char *
atom (P *p, const char *what)
{
  char *a = take_while (p, is_atom_char);
  if (a == NULL && peek (p) >= 0x80)
    fail_8bit (p);
  else if (a == NULL)
    fail (p, at_end (p) ? "missing %s" : "expected %s", what);
  return a;
}

/* An atom, upper-cased: command names, keywords, options. */
static char *
keyword (P *p, const char *what)
{
  char *a = atom (p, what);
  if (a != NULL)
    {
      char *u = g_ascii_strup (a, -1);
      g_free (a);
      return u;
    }
  return NULL;
}

/* A keyword without consuming it, for look-ahead. */
static gboolean
peek_keyword (const P *p, const char *kw)
{
  gsize n = strlen (kw);
  if (p->len - p->pos < n
      || g_ascii_strncasecmp ((const char *)p->s + p->pos, kw, n) != 0)
    return FALSE;
  return p->pos + n == p->len || !is_atom_char (p->s[p->pos + n]);
}

static gboolean
eat_keyword (P *p, const char *kw)
{
  if (!peek_keyword (p, kw))
    return FALSE;
  p->pos += strlen (kw);
  return TRUE;
}

static gboolean
number64 (P *p, guint64 *out, const char *what)
{
  gsize start = p->pos;
  guint64 n = 0;
  while (p->pos < p->len && g_ascii_isdigit (p->s[p->pos]))
    {
      guint d = p->s[p->pos] - '0';
      /* RFC 9051 9: number64 is at most 2^63-1 */
      if (n > ((guint64)G_MAXINT64 - d) / 10)
        return fail (p, "%s is too large", what);
      n = n * 10 + d;
      p->pos++;
    }
  if (p->pos == start)
    return fail (p, at_end (p) ? "missing %s" : "expected %s (a number)", what);
  *out = n;
  return TRUE;
}

static gboolean
number32 (P *p, guint32 *out, gboolean nonzero, const char *what)
{
  guint64 n;
  if (!number64 (p, &n, what))
    return FALSE;
  if (n > G_MAXUINT32)
    return fail (p, "%s is too large", what);
  if (nonzero && n == 0)
    return fail (p, "%s must not be 0", what);
  *out = (guint32)n;
  return TRUE;
}

/* ---- Strings ------------------------------------------------------------- */

/* Checks 8-bit text of a quoted string or an atom-like value. */
static gboolean
check_text (P *p, const char *s, gsize len, const char *what)
{
  gboolean eight = FALSE;
  for (gsize i = 0; i < len; i++)
    if ((guchar)s[i] >= 0x80)
      eight = TRUE;
  if (!eight)
    return TRUE;
  if (!p->utf8)
    return fail (p,
                 "8-bit characters in quoted %s need UTF8=ACCEPT "
                 "(or a literal)",
                 what);
  if (!g_utf8_validate (s, (gssize)len, NULL))
    return fail (p, "%s is not valid UTF-8", what);
  return TRUE;
}

static char *
quoted (P *p, gsize *len_out, const char *what)
{
  if (!eat (p, '"'))
    {
      fail (p, "expected a quoted string for %s", what);
      return NULL;
    }
  GString *s = g_string_new (NULL);
  for (;;)
    {
      int c = peek (p);
      if (c < 0)
        {
          g_string_free (s, TRUE);
          fail (p, "unterminated quoted string in %s", what);
          return NULL;
        }
      p->pos++;
      if (c == '"')
        break;
      if (c == '\\')
        {
          int d = peek (p);
          if (d != '"' && d != '\\')
            {
              g_string_free (s, TRUE);
              fail (p,
                    "invalid escape in quoted string of %s (only \\\" "
                    "and \\\\ are allowed)",
                    what);
              return NULL;
            }
          p->pos++;
          c = d;
        }
      else if (c == '\r' || c == '\n' || c == 0)
        {
          g_string_free (s, TRUE);
          fail (p, "CR or LF in quoted string of %s", what);
          return NULL;
        }
      g_string_append_c (s, (char)c);
    }
  if (!check_text (p, s->str, s->len, what))
    {
      g_string_free (s, TRUE);
      return NULL;
    }
  if (len_out != NULL)
    *len_out = s->len;
  return g_string_free (s, FALSE);
}

/* "{n}" CRLF n bytes, "{n+}" (LITERAL+), and "~{n}" when @binary_ok.
 * Sets the offset and length of the bytes inside p->s. */
static gboolean
literal_at (P *p, gsize *off_out, gsize *len_out, gboolean *binary_out,
            gboolean binary_ok, const char *what)
{
  gboolean binary = FALSE;
  if (peek (p) == '~')
    {
      if (!binary_ok)
        return fail (p, "literal8 (~{n}) not allowed for %s", what);
      binary = TRUE;
      p->pos++;
    }
  if (!eat (p, '{'))
    return fail (p, "expected a literal for %s", what);
  guint64 n;
  if (!number64 (p, &n, "literal size"))
    return FALSE;
  eat (p, '+');
  if (!eat (p, '}') || !eat (p, '\r') || !eat (p, '\n'))
    return fail (p, "malformed literal for %s", what);
  if (n > p->len - p->pos)
    return fail (p, "literal for %s is truncated", what);
  *off_out = p->pos;
  *len_out = (gsize)n;
  p->pos += (gsize)n;
  if (binary_out != NULL)
    *binary_out = binary;
  return TRUE;
}

static char *
literal_string (P *p, gsize *len_out, gboolean binary_ok, const char *what)
{
  gsize off, len;
  if (!literal_at (p, &off, &len, NULL, binary_ok, what))
    return NULL;
  if (len_out != NULL)
    *len_out = len;
  return g_strndup ((const char *)p->s + off, len);
}

/* string = quoted / literal */
static char *
string (P *p, gsize *len_out, const char *what)
{
  int c = peek (p);
  if (c == '"')
    return quoted (p, len_out, what);
  if (c == '{')
    return literal_string (p, len_out, FALSE, what);
  fail (p, at_end (p) ? "missing %s" : "expected a string for %s", what);
  return NULL;
}

/* astring = 1*ASTRING-CHAR / string */
static char *
astring (P *p, const char *what)
{
  int c = peek (p);
  if (c == '"' || c == '{')
    return string (p, NULL, what);
  char *a = take_while (p, is_astring_char);
  if (a == NULL && peek (p) >= 0x80)
    fail_8bit (p);
  else if (a == NULL)
    fail (p, at_end (p) ? "missing %s" : "expected %s", what);
  return a;
}

/* nstring = string / NIL; *nil_out tells NIL apart */
static char *
nstring (P *p, gboolean *nil_out, const char *what)
{
  *nil_out = FALSE;
  if (eat_keyword (p, "NIL"))
    {
      *nil_out = TRUE;
      return NULL;
    }
  return string (p, NULL, what);
}

static char *
mailbox (P *p, const char *what)
{
  char *m = astring (p, what);
  /* RFC 9051 9: INBOX is case-insensitive */
  if (m != NULL && g_ascii_strcasecmp (m, "INBOX") == 0)
    {
      g_free (m);
      m = g_strdup ("INBOX");
    }
  return m;
}

/* list-mailbox = 1*list-char / string */
static char *
list_mailbox (P *p)
{
  int c = peek (p);
  if (c == '"' || c == '{')
    return string (p, NULL, "mailbox pattern");
  char *a = take_while (p, is_list_char);
  if (a == NULL)
    fail (p, at_end (p) ? "missing %s" : "expected %s", "mailbox pattern");
  return a;
}

/* ---- Sequence sets ------------------------------------------------------- */

static gboolean
seq_number (P *p, guint32 *out, const char *what)
{
  if (eat (p, '*'))
    {
      *out = MH_IMAP_STAR;
      return TRUE;
    }
  if (!g_ascii_isdigit (peek (p)))
    return fail (p, at_end (p) ? "missing %s" : "invalid %s", what);
  return number32 (p, out, TRUE, "message number");
}

static MhImapSeqSet *
seqset (P *p, const char *what)
{
  MhImapSeqSet *set = mh_imap__seqset_new ();
  if (eat (p, '$'))
    {
      /* RFC 5182 2.1: "$" stands alone */
      set->saved = TRUE;
      return set;
    }
  for (;;)
    {
      MhImapRange r;
      if (!seq_number (p, &r.first, what))
        break;
      r.last = r.first;
      if (eat (p, ':') && !seq_number (p, &r.last, what))
        break;
      g_array_append_val (set->ranges, r);
      if (!eat (p, ','))
        return set;
    }
  mh_imap__seqset_free (set);
  return NULL;
}

/* ---- Flags --------------------------------------------------------------- */

static char *
flag (P *p, gboolean in_store)
{
  (void)in_store;
  if (eat (p, '\\'))
    {
      static const char *const sys[]
          = { "Answered", "Flagged", "Deleted", "Seen", "Draft" };
      g_autofree char *a = atom (p, "a system flag name after '\\'");
      if (a == NULL)
        return NULL;
      for (gsize i = 0; i < G_N_ELEMENTS (sys); i++)
        if (g_ascii_strcasecmp (a, sys[i]) == 0)
          return g_strconcat ("\\", sys[i], NULL);
      if (g_ascii_strcasecmp (a, "Recent") == 0)
        fail (p, "\\Recent cannot be set by clients");
      else
        fail (p, "unknown system flag \\%s", a);
      return NULL;
    }
  return atom (p, "a flag");
}

/* "(" [flag *(SP flag)] ")" */
static char **
flag_list (P *p, gboolean in_store)
{
  if (!expect_c (p, '(', "to open the flag list"))
    return NULL;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  if (!eat (p, ')'))
    {
      for (;;)
        {
          char *f = flag (p, in_store);
          if (f == NULL)
            {
              g_ptr_array_unref (a);
              return NULL;
            }
          g_ptr_array_add (a, f);
          if (eat (p, ')'))
            break;
          if (!expect_sp (p, "the next flag"))
            {
              g_ptr_array_unref (a);
              return NULL;
            }
        }
    }
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  return (char **)g_ptr_array_free (a, FALSE);
}

/* ---- Dates --------------------------------------------------------------- */

static int
month (P *p)
{
  static const char *const names[]
      = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  if (p->len - p->pos < 3)
    return 0;
  for (int i = 0; i < 12; i++)
    if (g_ascii_strncasecmp ((const char *)p->s + p->pos, names[i], 3) == 0)
      {
        p->pos += 3;
        return i + 1;
      }
  return 0;
}

static gboolean
digits (P *p, guint n_min, guint n_max, guint *out)
{
  guint v = 0, n = 0;
  while (n < n_max && g_ascii_isdigit (peek (p)))
    {
      v = v * 10 + (p->s[p->pos++] - '0');
      n++;
    }
  *out = v;
  return n >= n_min;
}

static gint64
days_since_epoch (guint d, guint m, guint y)
{
  GDate date;
  g_date_clear (&date, 1);
  g_date_set_dmy (&date, (GDateDay)d, (GDateMonth)m, (GDateYear)y);
  /* 1970-01-01 is Julian day 719163 in GDate's count */
  return (gint64)g_date_get_julian (&date) - 719163;
}

/* date = date-text / DQUOTE date-text DQUOTE; date-text =
 * date-day "-" date-month "-" date-year */
static gboolean
date (P *p, gint64 *out)
{
  gboolean q = eat (p, '"');
  guint d, y;
  int m;
  if (!digits (p, 1, 2, &d) || !eat (p, '-') || (m = month (p)) == 0
      || !eat (p, '-') || !digits (p, 4, 4, &y) || (q && !eat (p, '"')))
    return fail (p, "invalid date (expected d-Mon-yyyy, e.g. 1-Feb-2024)");
  if (!g_date_valid_dmy ((GDateDay)d, (GDateMonth)m, (GDateYear)y))
    return fail (p, "invalid date: day %u of month %d of %u", d, m, y);
  *out = days_since_epoch (d, (guint)m, y);
  return TRUE;
}

/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time
 * SP zone DQUOTE */
static gboolean
date_time (P *p, gint64 *out)
{
  guint d, y, hh, mm, ss, zh;
  int m;
  if (!eat (p, '"'))
    return fail (p, "expected a quoted date-time");
  eat (p, ' '); /* date-day-fixed = (SP DIGIT) / 2DIGIT */
  if (!digits (p, 1, 2, &d) || !eat (p, '-') || (m = month (p)) == 0
      || !eat (p, '-') || !digits (p, 4, 4, &y) || !eat (p, ' ')
      || !digits (p, 2, 2, &hh) || !eat (p, ':') || !digits (p, 2, 2, &mm)
      || !eat (p, ':') || !digits (p, 2, 2, &ss) || !eat (p, ' '))
    return fail (p, "invalid date-time (expected \"dd-Mon-yyyy hh:mm:ss "
                    "+zzzz\")");
  int sign = peek (p) == '-' ? -1 : 1;
  if (!eat (p, '+') && !eat (p, '-'))
    return fail (p, "invalid time zone in date-time (expected +hhmm)");
  if (!digits (p, 4, 4, &zh) || !eat (p, '"'))
    return fail (p, "invalid time zone in date-time (expected +hhmm)");
  if (!g_date_valid_dmy ((GDateDay)d, (GDateMonth)m, (GDateYear)y) || hh > 23
      || mm > 59 || ss > 60 || zh % 100 > 59 || zh / 100 > 23)
    return fail (p, "date-time out of range");
  gint64 t
      = days_since_epoch (d, (guint)m, y) * 86400 + hh * 3600 + mm * 60 + ss;
  t -= sign * (gint64)((zh / 100) * 3600 + (zh % 100) * 60);
  *out = t;
  return TRUE;
}

/* ---- Search programs ----------------------------------------------------- */

static gboolean
search_string (P *p, char **out, const char *what)
{
  g_autofree char *s = astring (p, what);
  if (s == NULL)
    return FALSE;
  /* strings reach hosts as UTF-8; literals may carry any bytes, so
   * check them here (quoted 8-bit was checked already) */
  if (!g_utf8_validate (s, -1, NULL))
    return fail (p, "%s is not valid UTF-8", what);
  *out = g_steal_pointer (&s);
  return TRUE;
}

static MhImapSearchKey *search_key (P *p, guint depth);

static MhImapSearchKey *
search_simple (const char *kw)
{
  static const struct
  {
    const char *name;
    MhImapSearchKeyType type;
  } simple[] = {
    { "ALL", MH_IMAP_SEARCH_ALL },
    { "ANSWERED", MH_IMAP_SEARCH_ANSWERED },
    { "DELETED", MH_IMAP_SEARCH_DELETED },
    { "DRAFT", MH_IMAP_SEARCH_DRAFT },
    { "FLAGGED", MH_IMAP_SEARCH_FLAGGED },
    { "SEEN", MH_IMAP_SEARCH_SEEN },
    { "RECENT", MH_IMAP_SEARCH_RECENT },
    { "NEW", MH_IMAP_SEARCH_NEW },
    { "OLD", MH_IMAP_SEARCH_OLD },
    { "UNANSWERED", MH_IMAP_SEARCH_UNANSWERED },
    { "UNDELETED", MH_IMAP_SEARCH_UNDELETED },
    { "UNDRAFT", MH_IMAP_SEARCH_UNDRAFT },
    { "UNFLAGGED", MH_IMAP_SEARCH_UNFLAGGED },
    { "UNSEEN", MH_IMAP_SEARCH_UNSEEN },
    { "SAVEDATESUPPORTED", MH_IMAP_SEARCH_SAVEDATESUPPORTED },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (simple); i++)
    if (g_str_equal (kw, simple[i].name))
      return mh_imap__search_key_new (simple[i].type);
  return NULL;
}

static int
search_lookup (const char *kw, const char *const *names,
               const MhImapSearchKeyType *types, gsize n,
               MhImapSearchKeyType *out)
{
  for (gsize i = 0; i < n; i++)
    if (g_str_equal (kw, names[i]))
      {
        *out = types[i];
        return 1;
      }
  return 0;
}

static MhImapSearchKey *
search_key_body (P *p, guint depth)
{
  int c = peek (p);
  if (c == '(')
    {
      p->pos++;
      MhImapSearchKey *k = mh_imap__search_key_new (MH_IMAP_SEARCH_AND);
      k->children = g_ptr_array_new_with_free_func (
          (GDestroyNotify)mh_imap__search_key_free);
      for (;;)
        {
          MhImapSearchKey *ch = search_key (p, depth + 1);
          if (ch == NULL)
            {
              mh_imap__search_key_free (k);
              return NULL;
            }
          g_ptr_array_add (k->children, ch);
          if (eat (p, ')'))
            return k;
          if (!expect_sp (p, "the next search key or ')'"))
            {
              mh_imap__search_key_free (k);
              return NULL;
            }
        }
    }
  if (c == '*' || c == '$' || g_ascii_isdigit (c))
    {
      MhImapSeqSet *set = seqset (p, "message set in search");
      if (set == NULL)
        return NULL;
      MhImapSearchKey *k = mh_imap__search_key_new (MH_IMAP_SEARCH_SEQSET);
      k->set = set;
      return k;
    }
  g_autofree char *kw = keyword (p, "a search key");
  if (kw == NULL)
    return NULL;
  MhImapSearchKey *k = search_simple (kw);
  if (k != NULL)
    return k;

  static const char *const str_names[]
      = { "BCC", "CC", "FROM", "SUBJECT", "TO", "BODY", "TEXT" };
  static const MhImapSearchKeyType str_types[] = {
    MH_IMAP_SEARCH_BCC,     MH_IMAP_SEARCH_CC, MH_IMAP_SEARCH_FROM,
    MH_IMAP_SEARCH_SUBJECT, MH_IMAP_SEARCH_TO, MH_IMAP_SEARCH_BODY,
    MH_IMAP_SEARCH_TEXT,
  };
  static const char *const date_names[] = {
    "BEFORE",    "ON",          "SINCE",   "SENTBEFORE", "SENTON",
    "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE",
  };
  static const MhImapSearchKeyType date_types[] = {
    MH_IMAP_SEARCH_BEFORE,      MH_IMAP_SEARCH_ON,
    MH_IMAP_SEARCH_SINCE,       MH_IMAP_SEARCH_SENTBEFORE,
    MH_IMAP_SEARCH_SENTON,      MH_IMAP_SEARCH_SENTSINCE,
    MH_IMAP_SEARCH_SAVEDBEFORE, MH_IMAP_SEARCH_SAVEDON,
    MH_IMAP_SEARCH_SAVEDSINCE,
  };
  MhImapSearchKeyType t;
  g_autofree char *what = g_strdup_printf ("argument of %s", kw);

  if (search_lookup (kw, str_names, str_types, G_N_ELEMENTS (str_names), &t))
    {
      char *s = NULL;
      if (!expect_sp (p, what) || !search_string (p, &s, what))
        return NULL;
      k = mh_imap__search_key_new (t);
      k->string = s;
      return k;
    }
  if (search_lookup (kw, date_names, date_types, G_N_ELEMENTS (date_names), &t))
    {
      gint64 d = 0;
      if (!expect_sp (p, what) || !date (p, &d))
        return NULL;
      k = mh_imap__search_key_new (t);
      k->date = d;
      return k;
    }
  if (g_str_equal (kw, "KEYWORD") || g_str_equal (kw, "UNKEYWORD"))
    {
      if (!expect_sp (p, what))
        return NULL;
      char *a = atom (p, "a keyword");
      if (a == NULL)
        return NULL;
      k = mh_imap__search_key_new (kw[0] == 'K' ? MH_IMAP_SEARCH_KEYWORD
                                                : MH_IMAP_SEARCH_UNKEYWORD);
      k->string = a;
      return k;
    }
  if (g_str_equal (kw, "HEADER"))
    {
      char *h = NULL, *s = NULL;
      if (!expect_sp (p, "header field name of HEADER")
          || (h = astring (p, "header field name of HEADER")) == NULL)
        return NULL;
      if (!expect_sp (p, "string of HEADER")
          || !search_string (p, &s, "string of HEADER"))
        {
          g_free (h);
          return NULL;
        }
      k = mh_imap__search_key_new (MH_IMAP_SEARCH_HEADER);
      k->header = h;
      k->string = s;
      return k;
    }
  if (g_str_equal (kw, "LARGER") || g_str_equal (kw, "SMALLER"))
    {
      guint64 n;
      if (!expect_sp (p, what) || !number64 (p, &n, what))
        return NULL;
      k = mh_imap__search_key_new (kw[0] == 'L' ? MH_IMAP_SEARCH_LARGER
                                                : MH_IMAP_SEARCH_SMALLER);
      k->number = n;
      return k;
    }
  if (g_str_equal (kw, "OLDER") || g_str_equal (kw, "YOUNGER"))
    {
      guint32 n;
      if (!expect_sp (p, what) || !number32 (p, &n, TRUE, what))
        return NULL;
      k = mh_imap__search_key_new (kw[0] == 'O' ? MH_IMAP_SEARCH_OLDER
                                                : MH_IMAP_SEARCH_YOUNGER);
      k->number = n;
      return k;
    }
  if (g_str_equal (kw, "UID"))
    {
      if (!expect_sp (p, "UID set"))
        return NULL;
      MhImapSeqSet *set = seqset (p, "UID set");
      if (set == NULL)
        return NULL;
      k = mh_imap__search_key_new (MH_IMAP_SEARCH_UID);
      k->set = set;
      return k;
    }
  if (g_str_equal (kw, "NOT"))
    {
      if (!expect_sp (p, "search key after NOT"))
        return NULL;
      MhImapSearchKey *ch = search_key (p, depth + 1);
      if (ch == NULL)
        return NULL;
      k = mh_imap__search_key_new (MH_IMAP_SEARCH_NOT);
      k->children = g_ptr_array_new_with_free_func (
          (GDestroyNotify)mh_imap__search_key_free);
      g_ptr_array_add (k->children, ch);
      return k;
    }
  if (g_str_equal (kw, "OR"))
    {
      k = mh_imap__search_key_new (MH_IMAP_SEARCH_OR);
      k->children = g_ptr_array_new_with_free_func (
          (GDestroyNotify)mh_imap__search_key_free);
      for (int i = 0; i < 2; i++)
        {
          MhImapSearchKey *ch = NULL;
          if (!expect_sp (p, i == 0 ? "first search key of OR"
                                    : "second search key of OR")
              || (ch = search_key (p, depth + 1)) == NULL)
            {
              mh_imap__search_key_free (k);
              return NULL;
            }
          g_ptr_array_add (k->children, ch);
        }
      return k;
    }
  if (g_str_equal (kw, "MODSEQ"))
    {
      /* RFC 7162 3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP
       * mod-sequence-valzer */
      char *entry = NULL, *type = NULL;
      guint64 n;
      if (!expect_sp (p, "modseq of MODSEQ"))
        return NULL;
      if (peek (p) == '"')
        {
          entry = quoted (p, NULL, "entry name of MODSEQ");
          if (entry == NULL)
            return NULL;
          if (!g_str_has_prefix (entry, "/flags/"))
            {
              g_free (entry);
              fail (p, "MODSEQ entry name must start with \"/flags/\"");
              return NULL;
            }
          type = expect_sp (p, "entry type of MODSEQ")
                     ? keyword (p, "entry type of MODSEQ (priv, shared or "
                                   "all)")
                     : NULL;
          if (type != NULL && !g_str_equal (type, "PRIV")
              && !g_str_equal (type, "SHARED") && !g_str_equal (type, "ALL"))
            {
              fail (p, "MODSEQ entry type must be priv, shared or all");
              g_clear_pointer (&type, g_free);
            }
          if (type == NULL || !expect_sp (p, "modseq of MODSEQ"))
            {
              g_free (entry);
              g_free (type);
              return NULL;
            }
        }
      if (!number64 (p, &n, "modseq of MODSEQ"))
        {
          g_free (entry);
          g_free (type);
          return NULL;
        }
      k = mh_imap__search_key_new (MH_IMAP_SEARCH_MODSEQ);
      k->header = entry;
      k->string = type != NULL ? g_ascii_strdown (type, -1) : NULL;
      g_free (type);
      k->number = n;
      if (p->cmd != NULL && p->cmd->changedsince == 0)
        p->cmd->changedsince = n;
      return k;
    }
  fail (p, "unknown search key \"%s\"", kw);
  return NULL;
}

static MhImapSearchKey *
search_key (P *p, guint depth)
{
  if (depth > MAX_DEPTH)
    {
      fail (p, "search program nested too deeply (more than %d levels)",
            MAX_DEPTH);
      return NULL;
    }
  return search_key_body (p, depth);
}

/* [SP "CHARSET" SP charset] 1*(SP search-key); @need_charset for SORT and
 * THREAD, whose charset is not optional. */
static gboolean
search_program (P *p, gboolean need_charset)
{
  MhImapCommand *cmd = p->cmd;
  g_autofree char *cs = NULL;
  if (need_charset)
    {
      if (!expect_sp (p, "charset") || (cs = astring (p, "charset")) == NULL)
        return FALSE;
    }
  else if (peek (p) == ' ')
    {
      p->pos++;
      if (eat_keyword (p, "CHARSET"))
        {
          if (!expect_sp (p, "charset name after CHARSET")
              || (cs = astring (p, "charset name after CHARSET")) == NULL)
            return FALSE;
        }
      else
        p->pos--;
    }
  if (cs != NULL)
    {
      cmd->search_charset = g_ascii_strup (cs, -1);
      if (!g_str_equal (cmd->search_charset, "US-ASCII")
          && !g_str_equal (cmd->search_charset, "UTF-8"))
        {
          /* RFC 9051 6.4.4: NO [BADCHARSET] lists what is supported */
          p->no = TRUE;
          p->code = g_strdup ("BADCHARSET (US-ASCII UTF-8)");
          return fail (p, "unsupported charset %s", cmd->search_charset);
        }
    }
  MhImapSearchKey *root = mh_imap__search_key_new (MH_IMAP_SEARCH_AND);
  root->children = g_ptr_array_new_with_free_func (
      (GDestroyNotify)mh_imap__search_key_free);
  cmd->search = root;
  do
    {
      if (!expect_sp (p, "search key"))
        return FALSE;
      MhImapSearchKey *k = search_key (p, 1);
      if (k == NULL)
        return FALSE;
      g_ptr_array_add (root->children, k);
    }
  while (!at_end (p));
  return TRUE;
}

/* SP "RETURN" SP "(" [opt *(SP opt)] ")" (RFC 4731, 5182, 5267) */
static gboolean
search_return (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!(peek (p) == ' ' && p->pos + 1 < p->len))
    return TRUE;
  p->pos++;
  if (!eat_keyword (p, "RETURN"))
    {
      p->pos--;
      return TRUE;
    }
  cmd->esearch = TRUE;
  if (!expect_sp (p, "return options") || !expect_c (p, '(', "after RETURN"))
    return FALSE;
  if (eat (p, ')'))
    {
      cmd->search_return = MH_IMAP_RETURN_ALL;
      return TRUE;
    }
  for (;;)
    {
      g_autofree char *o = keyword (p, "return option");
      if (o == NULL)
        return FALSE;
      if (g_str_equal (o, "MIN"))
        cmd->search_return |= MH_IMAP_RETURN_MIN;
      else if (g_str_equal (o, "MAX"))
        cmd->search_return |= MH_IMAP_RETURN_MAX;
      else if (g_str_equal (o, "ALL"))
        cmd->search_return |= MH_IMAP_RETURN_ALL;
      else if (g_str_equal (o, "COUNT"))
        cmd->search_return |= MH_IMAP_RETURN_COUNT;
      else if (g_str_equal (o, "SAVE"))
        cmd->search_return |= MH_IMAP_RETURN_SAVE;
      else
        return fail (p,
                     "unknown return option %s (expected MIN, MAX, ALL, "
                     "COUNT or SAVE)",
                     o);
      if (eat (p, ')'))
        break;
      if (!expect_sp (p, "the next return option"))
        return FALSE;
    }
  /* RFC 5182 2.4: RETURN (SAVE) alone returns nothing */
  return TRUE;
}

/* ---- FETCH --------------------------------------------------------------- */

static MhImapFetchAtt *
att_new (MhImapFetchItem item)
{
  MhImapFetchAtt *a = g_new0 (MhImapFetchAtt, 1);
  a->item = item;
  return a;
}

static void
add_att (P *p, MhImapFetchItem item)
{
  g_ptr_array_add (p->cmd->fetch_atts, att_new (item));
}

static gboolean
is_section_char (int c)
{
  return g_ascii_isalpha (c) || c == '.';
}

/* "[" section "]" after BODY/BINARY; the "[" is already read. */
static gboolean
section (P *p, MhImapFetchAtt *a, gboolean binary)
{
  GArray *parts = g_array_new (FALSE, FALSE, sizeof (guint32));
  GString *spec = g_string_new (NULL);
  gboolean ok = FALSE;
  a->text = MH_IMAP_SECTION_ALL;
  while (g_ascii_isdigit (peek (p)))
    {
      guint32 n;
      if (!number32 (p, &n, TRUE, "section part number"))
        goto out;
      if (parts->len >= MAX_PARTS)
        {
          fail (p, "section has more than %d part numbers", MAX_PARTS);
          goto out;
        }
      g_array_append_val (parts, n);
      g_string_append_printf (spec, "%s%u", parts->len > 1 ? "." : "", n);
      if (!eat (p, '.'))
        break;
      if (!g_ascii_isdigit (peek (p)))
        {
          if (binary)
            {
              fail (p, "BINARY sections take part numbers only");
              goto out;
            }
          if (!is_section_char (peek (p)))
            {
              fail (p, "expected a part number or section text after '.'");
              goto out;
            }
          break;
        }
    }
  if (peek (p) != ']')
    {
      if (binary)
        {
          fail (p, "BINARY sections take part numbers only");
          goto out;
        }
      gsize start = p->pos;
      while (is_section_char (peek (p)))
        p->pos++;
      g_autofree char *t = g_ascii_strup ((const char *)p->s + start,
                                          (gssize)(p->pos - start));
      if (g_str_equal (t, "HEADER"))
        a->text = MH_IMAP_SECTION_HEADER;
      else if (g_str_equal (t, "HEADER.FIELDS"))
        a->text = MH_IMAP_SECTION_HEADER_FIELDS;
      else if (g_str_equal (t, "HEADER.FIELDS.NOT"))
        a->text = MH_IMAP_SECTION_HEADER_FIELDS_NOT;
      else if (g_str_equal (t, "TEXT"))
        a->text = MH_IMAP_SECTION_TEXT;
      else if (g_str_equal (t, "MIME") && parts->len > 0)
        a->text = MH_IMAP_SECTION_MIME;
      else
        {
          fail (p,
                "invalid section text \"%s\" (expected HEADER, "
                "HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT%s)",
                t, parts->len > 0 ? " or MIME" : "");
          goto out;
        }
      if (spec->len > 0)
        g_string_append_c (spec, '.');
      g_string_append (spec, t);
      if (a->text == MH_IMAP_SECTION_HEADER_FIELDS
          || a->text == MH_IMAP_SECTION_HEADER_FIELDS_NOT)
        {
          if (!expect_sp (p, "header field list")
              || !expect_c (p, '(', "to open the header field list"))
            goto out;
          GPtrArray *f = g_ptr_array_new_with_free_func (g_free);
          g_string_append (spec, " (");
          for (;;)
            {
              char *h = astring (p, "header field name");
              if (h == NULL)
                {
                  g_ptr_array_unref (f);
                  goto out;
                }
              if (f->len > 0)
                g_string_append_c (spec, ' ');
              mh_imap_append_astring (spec, h, -1, FALSE);
              g_ptr_array_add (f, h);
              if (eat (p, ')'))
                break;
              if (!expect_sp (p, "the next header field name"))
                {
                  g_ptr_array_unref (f);
                  goto out;
                }
            }
          g_string_append_c (spec, ')');
          g_ptr_array_add (f, NULL);
          g_ptr_array_set_free_func (f, NULL);
          a->fields = (char **)g_ptr_array_free (f, FALSE);
        }
    }
  if (!expect_c (p, ']', "to close the section"))
    goto out;
  a->n_part = parts->len;
  a->part = parts->len > 0 ? g_memdup2 (parts->data, parts->len * 4) : NULL;
  a->section_spec = g_strdup (spec->str);
  ok = TRUE;
out:
  g_array_unref (parts);
  g_string_free (spec, TRUE);
  return ok;
}

static gboolean
partial (P *p, MhImapFetchAtt *a)
{
  if (!eat (p, '<'))
    return TRUE;
  if (!number64 (p, &a->offset, "partial offset")
      || !expect_c (p, '.', "between partial offset and length")
      || !number64 (p, &a->length, "partial length")
      || !expect_c (p, '>', "to close the partial range"))
    return FALSE;
  if (a->length == 0)
    return fail (p, "partial length must not be 0");
  a->partial = TRUE;
  return TRUE;
}

static gboolean
fetch_att (P *p, gboolean alone)
{
  gsize start = p->pos;
  while (p->pos < p->len
         && (g_ascii_isalnum (p->s[p->pos]) || p->s[p->pos] == '.'
             || p->s[p->pos] == '-'))
    p->pos++;
  if (p->pos == start)
    return fail (p,
                 at_end (p) ? "missing FETCH item" : "expected a FETCH item");
  g_autofree char *n
      = g_ascii_strup ((const char *)p->s + start, (gssize)(p->pos - start));
  static const struct
  {
    const char *name;
    MhImapFetchItem item;
  } plain[] = {
    { "FLAGS", MH_IMAP_FETCH_FLAGS },
    { "UID", MH_IMAP_FETCH_UID },
    { "INTERNALDATE", MH_IMAP_FETCH_INTERNALDATE },
    { "RFC822.SIZE", MH_IMAP_FETCH_RFC822_SIZE },
    { "ENVELOPE", MH_IMAP_FETCH_ENVELOPE },
    { "BODYSTRUCTURE", MH_IMAP_FETCH_BODYSTRUCTURE },
    { "RFC822", MH_IMAP_FETCH_RFC822 },
    { "RFC822.HEADER", MH_IMAP_FETCH_RFC822_HEADER },
    { "RFC822.TEXT", MH_IMAP_FETCH_RFC822_TEXT },
    { "MODSEQ", MH_IMAP_FETCH_MODSEQ },
    { "SAVEDATE", MH_IMAP_FETCH_SAVEDATE },
  };
  if (g_str_equal (n, "ALL") || g_str_equal (n, "FAST")
      || g_str_equal (n, "FULL"))
    {
      if (!alone)
        return fail (p, "the macro %s cannot be used inside a list", n);
      add_att (p, MH_IMAP_FETCH_FLAGS);
      add_att (p, MH_IMAP_FETCH_INTERNALDATE);
      add_att (p, MH_IMAP_FETCH_RFC822_SIZE);
      if (n[1] != 'A') /* ALL, FULL */
        add_att (p, MH_IMAP_FETCH_ENVELOPE);
      if (n[1] == 'U')
        add_att (p, MH_IMAP_FETCH_BODY);
      return TRUE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (plain); i++)
    if (g_str_equal (n, plain[i].name))
      {
        add_att (p, plain[i].item);
        return TRUE;
      }
  gboolean body = g_str_equal (n, "BODY") || g_str_equal (n, "BODY.PEEK");
  gboolean bin = g_str_equal (n, "BINARY") || g_str_equal (n, "BINARY.PEEK");
  gboolean binsize = g_str_equal (n, "BINARY.SIZE");
  if (g_str_equal (n, "BODY") && peek (p) != '[')
    {
      add_att (p, MH_IMAP_FETCH_BODY);
      return TRUE;
    }
  if (!body && !bin && !binsize)
    return fail (p, "unknown FETCH item \"%s\"", n);
  if (!eat (p, '['))
    return fail (p, "expected '[' after %s", n);
  MhImapFetchAtt *a = att_new (body  ? MH_IMAP_FETCH_BODY_SECTION
                               : bin ? MH_IMAP_FETCH_BINARY
                                     : MH_IMAP_FETCH_BINARY_SIZE);
  a->peek = g_str_has_suffix (n, ".PEEK");
  if (!section (p, a, !body) || (!binsize && !partial (p, a)))
    {
      mh_imap__fetch_att_free (a);
      return FALSE;
    }
  g_ptr_array_add (p->cmd->fetch_atts, a);
  return TRUE;
}

static gboolean
fetch_modifiers (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (at_end (p))
    return TRUE;
  if (!expect_sp (p, "FETCH modifiers")
      || !expect_c (p, '(', "to open the FETCH modifiers"))
    return FALSE;
  gboolean changedsince = FALSE;
  for (;;)
    {
      g_autofree char *m = keyword (p, "FETCH modifier");
      if (m == NULL)
        return FALSE;
      if (g_str_equal (m, "CHANGEDSINCE"))
        {
          if (!expect_sp (p, "CHANGEDSINCE value")
              || !number64 (p, &cmd->changedsince, "CHANGEDSINCE value"))
            return FALSE;
          if (cmd->changedsince == 0)
            return fail (p, "CHANGEDSINCE value must not be 0");
          changedsince = TRUE;
        }
      else if (g_str_equal (m, "VANISHED"))
        cmd->vanished = TRUE;
      else
        return fail (p,
                     "unknown FETCH modifier %s (expected CHANGEDSINCE "
                     "or VANISHED)",
                     m);
      if (eat (p, ')'))
        break;
      if (!expect_sp (p, "the next FETCH modifier"))
        return FALSE;
    }
  /* RFC 7162 3.2.6 */
  if (cmd->vanished && !cmd->uid)
    return fail (p, "VANISHED is only allowed in UID FETCH");
  if (cmd->vanished && !changedsince)
    return fail (p, "VANISHED requires CHANGEDSINCE");
  return TRUE;
}

static gboolean
parse_fetch (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "message set")
      || (cmd->set = seqset (p, "message set")) == NULL
      || !expect_sp (p, "FETCH items"))
    return FALSE;
  cmd->fetch_atts = g_ptr_array_new_with_free_func (
      (GDestroyNotify)mh_imap__fetch_att_free);
  if (eat (p, '('))
    {
      for (;;)
        {
          if (!fetch_att (p, FALSE))
            return FALSE;
          if (eat (p, ')'))
            break;
          if (!expect_sp (p, "the next FETCH item or ')'"))
            return FALSE;
        }
    }
  else if (!fetch_att (p, TRUE))
    return FALSE;
  /* RFC 9051 6.4.8: UID FETCH always returns UID; the host adds it */
  return fetch_modifiers (p) && expect_end (p);
}

/* ---- STORE, COPY, MOVE, UID EXPUNGE ---------------------------------- */

static gboolean
parse_store (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "message set")
      || (cmd->set = seqset (p, "message set")) == NULL
      || !expect_sp (p, "STORE item"))
    return FALSE;
  if (eat (p, '('))
    {
      /* RFC 7162 3.1.3: store-modifiers */
      g_autofree char *m = keyword (p, "STORE modifier");
      if (m == NULL)
        return FALSE;
      if (!g_str_equal (m, "UNCHANGEDSINCE"))
        return fail (p, "unknown STORE modifier %s (expected UNCHANGEDSINCE)",
                     m);
      if (!expect_sp (p, "UNCHANGEDSINCE value")
          || !number64 (p, &cmd->unchangedsince, "UNCHANGEDSINCE value")
          || !expect_c (p, ')', "to close the STORE modifiers")
          || !expect_sp (p, "STORE item"))
        return FALSE;
    }
  cmd->store_mode = eat (p, '+')   ? MH_IMAP_STORE_ADD
                    : eat (p, '-') ? MH_IMAP_STORE_REMOVE
                                   : MH_IMAP_STORE_REPLACE;
  g_autofree char *item = keyword (p, "FLAGS, +FLAGS or -FLAGS");
  if (item == NULL)
    return FALSE;
  if (g_str_equal (item, "FLAGS.SILENT"))
    cmd->store_silent = TRUE;
  else if (!g_str_equal (item, "FLAGS"))
    return fail (p,
                 "unknown STORE item %s (expected FLAGS, +FLAGS or "
                 "-FLAGS, optionally .SILENT)",
                 item);
  if (!expect_sp (p, "flags"))
    return FALSE;
  if (peek (p) == '(')
    {
      cmd->store_flags = flag_list (p, TRUE);
      return cmd->store_flags != NULL && expect_end (p);
    }
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  for (;;)
    {
      char *f = flag (p, TRUE);
      if (f == NULL)
        {
          g_ptr_array_unref (a);
          return FALSE;
        }
      g_ptr_array_add (a, f);
      if (at_end (p))
        break;
      if (!expect_sp (p, "the next flag"))
        {
          g_ptr_array_unref (a);
          return FALSE;
        }
    }
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  cmd->store_flags = (char **)g_ptr_array_free (a, FALSE);
  return TRUE;
}

static gboolean
parse_copy (P *p)
{
  MhImapCommand *cmd = p->cmd;
  return expect_sp (p, "message set")
         && (cmd->set = seqset (p, "message set")) != NULL
         && expect_sp (p, "destination mailbox")
         && (cmd->mailbox = mailbox (p, "destination mailbox")) != NULL
         && expect_end (p);
}

static gboolean
parse_set_only (P *p)
{
  return expect_sp (p, "UID set")
         && (p->cmd->set = seqset (p, "UID set")) != NULL && expect_end (p);
}

/* ---- SEARCH, SORT, THREAD ------------------------------------------------ */

static gboolean
parse_search (P *p)
{
  return search_return (p) && search_program (p, FALSE);
}

static gboolean
parse_sort (P *p)
{
  MhImapCommand *cmd = p->cmd;
  static const char *const names[]
      = { "ARRIVAL", "CC", "DATE",        "FROM",     "SIZE",
          "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO" };
  if (!search_return (p) || !expect_sp (p, "sort criteria")
      || !expect_c (p, '(', "to open the sort criteria"))
    return FALSE;
  cmd->sort = g_array_new (FALSE, FALSE, sizeof (MhImapSortCriterion));
  for (;;)
    {
      MhImapSortCriterion c = { 0 };
      g_autofree char *k = keyword (p, "sort key");
      if (k == NULL)
        return FALSE;
      if (g_str_equal (k, "REVERSE"))
        {
          c.reverse = TRUE;
          g_clear_pointer (&k, g_free);
          if (!expect_sp (p, "sort key after REVERSE")
              || (k = keyword (p, "sort key after REVERSE")) == NULL)
            return FALSE;
        }
      gsize i;
      for (i = 0; i < G_N_ELEMENTS (names); i++)
        if (g_str_equal (k, names[i]))
          break;
      if (i == G_N_ELEMENTS (names))
        return fail (p, "unknown sort key %s", k);
      c.key = (MhImapSortKey)i;
      g_array_append_val (cmd->sort, c);
      if (eat (p, ')'))
        break;
      if (!expect_sp (p, "the next sort key"))
        return FALSE;
    }
  return search_program (p, TRUE);
}

static gboolean
parse_thread (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "threading algorithm"))
    return FALSE;
  g_autofree char *a = keyword (p, "threading algorithm");
  if (a == NULL)
    return FALSE;
  if (g_str_equal (a, "ORDEREDSUBJECT"))
    cmd->thread = MH_IMAP_THREAD_ORDEREDSUBJECT;
  else if (g_str_equal (a, "REFERENCES"))
    cmd->thread = MH_IMAP_THREAD_REFERENCES;
  else
    return fail (p,
                 "unknown threading algorithm %s (expected "
                 "ORDEREDSUBJECT or REFERENCES)",
                 a);
  return search_program (p, TRUE);
}

/* ---- Mailbox commands ---------------------------------------------------- */

static gboolean
parse_mailbox_only (P *p)
{
  return expect_sp (p, "mailbox name")
         && (p->cmd->mailbox = mailbox (p, "mailbox name")) != NULL
         && expect_end (p);
}

static gboolean
parse_rename (P *p)
{
  MhImapCommand *cmd = p->cmd;
  return expect_sp (p, "existing mailbox name")
         && (cmd->mailbox = mailbox (p, "existing mailbox name")) != NULL
         && expect_sp (p, "new mailbox name")
         && (cmd->mailbox2 = mailbox (p, "new mailbox name")) != NULL
         && expect_end (p);
}

static gboolean
parse_select (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "mailbox name")
      || (cmd->mailbox = mailbox (p, "mailbox name")) == NULL)
    return FALSE;
  if (at_end (p))
    return TRUE;
  if (!expect_sp (p, "SELECT parameters")
      || !expect_c (p, '(', "to open the SELECT parameters"))
    return FALSE;
  for (;;)
    {
      g_autofree char *k = keyword (p, "SELECT parameter");
      if (k == NULL)
        return FALSE;
      if (g_str_equal (k, "CONDSTORE"))
        cmd->condstore = TRUE;
      else if (g_str_equal (k, "QRESYNC"))
        {
          /* RFC 7162 3.2.5.1 */
          guint64 ms;
          if (cmd->qresync)
            return fail (p, "QRESYNC given twice");
          cmd->qresync = TRUE;
          if (!expect_sp (p, "QRESYNC parameters")
              || !expect_c (p, '(', "to open the QRESYNC parameters")
              || !number32 (p, &cmd->qresync_uidvalidity, TRUE,
                            "QRESYNC UIDVALIDITY")
              || !expect_sp (p, "QRESYNC modseq")
              || !number64 (p, &ms, "QRESYNC modseq"))
            return FALSE;
          if (ms == 0)
            return fail (p, "QRESYNC modseq must not be 0");
          cmd->qresync_modseq = ms;
          if (eat (p, ' ') && peek (p) != '(')
            {
              cmd->qresync_known_uids = seqset (p, "QRESYNC known UIDs");
              if (cmd->qresync_known_uids == NULL)
                return FALSE;
              if (cmd->qresync_known_uids->saved)
                return fail (p, "\"$\" is not allowed in QRESYNC");
              eat (p, ' ');
            }
          if (eat (p, '('))
            {
              if ((cmd->qresync_seq_match
                   = seqset (p, "QRESYNC sequence match set"))
                      == NULL
                  || !expect_sp (p, "QRESYNC UID match set")
                  || (cmd->qresync_uid_match
                      = seqset (p, "QRESYNC UID match set"))
                         == NULL
                  || !expect_c (p, ')', "to close the sequence match data"))
                return FALSE;
              if (cmd->qresync_seq_match->saved
                  || cmd->qresync_uid_match->saved)
                return fail (p, "\"$\" is not allowed in QRESYNC");
            }
          if (!expect_c (p, ')', "to close the QRESYNC parameters"))
            return FALSE;
        }
      else
        return fail (p,
                     "unknown SELECT parameter %s (expected CONDSTORE "
                     "or QRESYNC)",
                     k);
      if (eat (p, ')'))
        break;
      if (!expect_sp (p, "the next SELECT parameter"))
        return FALSE;
    }
  return expect_end (p);
}

static gboolean
parse_create (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "mailbox name")
      || (cmd->mailbox = mailbox (p, "mailbox name")) == NULL)
    return FALSE;
  if (at_end (p))
    return TRUE;
  if (!expect_sp (p, "CREATE parameters")
      || !expect_c (p, '(', "to open the CREATE parameters"))
    return FALSE;
  GPtrArray *use = g_ptr_array_new_with_free_func (g_free);
  for (;;)
    {
      g_autofree char *k = keyword (p, "CREATE parameter");
      if (k == NULL)
        break;
      if (!g_str_equal (k, "USE"))
        {
          fail (p, "unknown CREATE parameter %s (expected USE)", k);
          break;
        }
      /* RFC 6154 3: "USE" SP "(" [use-attr *(SP use-attr)] ")" */
      if (!expect_sp (p, "special-use attributes")
          || !expect_c (p, '(', "to open the special-use attributes"))
        break;
      gboolean ok = TRUE;
      while (!eat (p, ')'))
        {
          if (use->len > 0 && !expect_sp (p, "the next special-use attribute"))
            {
              ok = FALSE;
              break;
            }
          if (!expect_c (p, '\\', "to start a special-use attribute"))
            {
              ok = FALSE;
              break;
            }
          char *a = atom (p, "special-use attribute name");
          if (a == NULL)
            {
              ok = FALSE;
              break;
            }
          g_ptr_array_add (use, g_strconcat ("\\", a, NULL));
          g_free (a);
        }
      if (!ok)
        break;
      if (eat (p, ')'))
        {
          g_ptr_array_add (use, NULL);
          g_ptr_array_set_free_func (use, NULL);
          cmd->strings = (char **)g_ptr_array_free (use, FALSE);
          return expect_end (p);
        }
      if (!expect_sp (p, "the next CREATE parameter"))
        break;
    }
  g_ptr_array_unref (use);
  return FALSE;
}

static gboolean
status_items (P *p, MhImapStatusItem *out)
{
  static const char *const names[]
      = { "MESSAGES", "RECENT", "UIDNEXT",       "UIDVALIDITY", "UNSEEN",
          "DELETED",  "SIZE",   "HIGHESTMODSEQ", "APPENDLIMIT" };
  if (!expect_c (p, '(', "to open the status items"))
    return FALSE;
  for (;;)
    {
      g_autofree char *k = keyword (p, "status item");
      if (k == NULL)
        return FALSE;
      gsize i;
      for (i = 0; i < G_N_ELEMENTS (names); i++)
        if (g_str_equal (k, names[i]))
          break;
      if (i == G_N_ELEMENTS (names))
        return fail (p, "unknown status item %s", k);
      *out |= (MhImapStatusItem)(1u << i);
      if (eat (p, ')'))
        return TRUE;
      if (!expect_sp (p, "the next status item"))
        return FALSE;
    }
}

static gboolean
parse_status (P *p)
{
  MhImapCommand *cmd = p->cmd;
  return expect_sp (p, "mailbox name")
         && (cmd->mailbox = mailbox (p, "mailbox name")) != NULL
         && expect_sp (p, "status items")
         && status_items (p, &cmd->status_items) && expect_end (p);
}

static gboolean
parse_list (P *p, gboolean lsub)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "reference name"))
    return FALSE;
  if (!lsub && eat (p, '('))
    {
      /* RFC 5258 6: list-select-opts */
      while (!eat (p, ')'))
        {
          if (cmd->list_select != 0
              && !expect_sp (p, "the next selection option"))
            return FALSE;
          g_autofree char *o = keyword (p, "selection option");
          if (o == NULL)
            return FALSE;
          if (g_str_equal (o, "SUBSCRIBED"))
            cmd->list_select |= MH_IMAP_LIST_SELECT_SUBSCRIBED;
          else if (g_str_equal (o, "REMOTE"))
            cmd->list_select |= MH_IMAP_LIST_SELECT_REMOTE;
          else if (g_str_equal (o, "RECURSIVEMATCH"))
            cmd->list_select |= MH_IMAP_LIST_SELECT_RECURSIVEMATCH;
          else if (g_str_equal (o, "SPECIAL-USE"))
            cmd->list_select |= MH_IMAP_LIST_SELECT_SPECIAL_USE;
          else
            return fail (p, "unknown LIST selection option %s", o);
        }
      /* RFC 5258 3.1: RECURSIVEMATCH needs another option */
      if (cmd->list_select == MH_IMAP_LIST_SELECT_RECURSIVEMATCH
          || cmd->list_select
                 == (MH_IMAP_LIST_SELECT_RECURSIVEMATCH
                     | MH_IMAP_LIST_SELECT_REMOTE))
        return fail (p, "RECURSIVEMATCH needs another selection option "
                        "such as SUBSCRIBED");
      if (!expect_sp (p, "reference name"))
        return FALSE;
    }
  if ((cmd->reference = astring (p, "reference name")) == NULL
      || !expect_sp (p, "mailbox pattern"))
    return FALSE;
  GPtrArray *pats = g_ptr_array_new_with_free_func (g_free);
  if (!lsub && eat (p, '('))
    {
      for (;;)
        {
          char *m = list_mailbox (p);
          if (m == NULL)
            break;
          g_ptr_array_add (pats, m);
          if (eat (p, ')'))
            break;
          if (!expect_sp (p, "the next mailbox pattern"))
            break;
        }
    }
  else
    {
      char *m = list_mailbox (p);
      if (m != NULL)
        g_ptr_array_add (pats, m);
    }
  g_ptr_array_add (pats, NULL);
  g_ptr_array_set_free_func (pats, NULL);
  cmd->patterns = (char **)g_ptr_array_free (pats, FALSE);
  if (p->err != NULL)
    return FALSE;
  if (lsub || at_end (p))
    return expect_end (p);
  /* RFC 5258 6: list-return-opts */
  if (!expect_sp (p, "RETURN") || !eat_keyword (p, "RETURN"))
    return fail (p, "expected RETURN after the mailbox patterns");
  if (!expect_sp (p, "return options")
      || !expect_c (p, '(', "to open the return options"))
    return FALSE;
  gboolean first = TRUE;
  while (!eat (p, ')'))
    {
      if (!first && !expect_sp (p, "the next return option"))
        return FALSE;
      first = FALSE;
      g_autofree char *o = keyword (p, "return option");
      if (o == NULL)
        return FALSE;
      if (g_str_equal (o, "SUBSCRIBED"))
        cmd->list_return |= MH_IMAP_LIST_RETURN_SUBSCRIBED;
      else if (g_str_equal (o, "CHILDREN"))
        cmd->list_return |= MH_IMAP_LIST_RETURN_CHILDREN;
      else if (g_str_equal (o, "SPECIAL-USE"))
        cmd->list_return |= MH_IMAP_LIST_RETURN_SPECIAL_USE;
      else if (g_str_equal (o, "STATUS"))
        {
          cmd->list_return |= MH_IMAP_LIST_RETURN_STATUS;
          if (!expect_sp (p, "status items")
              || !status_items (p, &cmd->status_items))
            return FALSE;
        }
      else
        return fail (p, "unknown LIST return option %s", o);
    }
  return expect_end (p);
}

/* ---- APPEND -------------------------------------------------------------- */

static gboolean
parse_append (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "mailbox name")
      || (cmd->mailbox = mailbox (p, "mailbox name")) == NULL)
    return FALSE;
  cmd->messages = g_ptr_array_new_with_free_func (
      (GDestroyNotify)mh_imap__append_message_free);
  do
    {
      MhImapAppendMessage *m = g_new0 (MhImapAppendMessage, 1);
      g_ptr_array_add (cmd->messages, m);
      if (!expect_sp (p, "message literal"))
        return FALSE;
      if (peek (p) == '(')
        {
          if ((m->flags = flag_list (p, TRUE)) == NULL
              || !expect_sp (p, "message literal"))
            return FALSE;
        }
      if (peek (p) == '"')
        {
          if (!date_time (p, &m->date) || !expect_sp (p, "message literal"))
            return FALSE;
        }
      gboolean utf8_ext = FALSE;
      if (eat_keyword (p, "UTF8"))
        {
          /* RFC 6855 4: "UTF8" SP "(" literal8 ")" */
          if (!expect_sp (p, "literal8 of UTF8")
              || !expect_c (p, '(', "after UTF8"))
            return FALSE;
          if (peek (p) != '~')
            return fail (p, "UTF8 needs a literal8 (~{n})");
          utf8_ext = TRUE;
        }
      if (peek (p) != '{' && peek (p) != '~')
        return fail (p, at_end (p) ? "missing message literal"
                                   : "expected the message as a literal");
      gsize off, len;
      if (!literal_at (p, &off, &len, &m->binary, TRUE, "the message"))
        return FALSE;
      if (utf8_ext && !expect_c (p, ')', "to close UTF8 (...)"))
        return FALSE;
      m->data = p->whole != NULL ? g_bytes_new_from_bytes (p->whole, off, len)
                                 : g_bytes_new (p->s + off, len);
    }
  while (!at_end (p));
  return TRUE;
}

/* ---- Session commands ---------------------------------------------------- */

static gboolean
parse_authenticate (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "SASL mechanism")
      || (cmd->mechanism = keyword (p, "SASL mechanism")) == NULL)
    return FALSE;
  if (at_end (p))
    return TRUE;
  if (!expect_sp (p, "initial response"))
    return FALSE;
  /* RFC 4959: initial-response = base64 / "=" */
  gsize start = p->pos, pad = 0;
  gboolean ok = TRUE;
  for (; p->pos < p->len; p->pos++)
    {
      int c = p->s[p->pos];
      if (c == '=')
        pad++;
      else if ((g_ascii_isalnum (c) || c == '+' || c == '/') && pad == 0)
        continue;
      else
        {
          ok = FALSE;
          break;
        }
    }
  gsize n = p->pos - start;
  if (!(n == 1 && pad == 1) && (n == 0 || n % 4 != 0 || pad > 2))
    ok = FALSE;
  if (!ok)
    return fail (p, "initial response is not base64 (or \"=\" for empty)");
  cmd->initial_response = g_strndup ((const char *)p->s + start, n);
  return TRUE;
}

static gboolean
parse_login (P *p)
{
  MhImapCommand *cmd = p->cmd;
  return expect_sp (p, "user name")
         && (cmd->user = astring (p, "user name")) != NULL
         && expect_sp (p, "password")
         && (cmd->password = astring (p, "password")) != NULL && expect_end (p);
}

static gboolean
parse_enable (P *p)
{
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  do
    {
      char *k;
      if (!expect_sp (p, "capability name")
          || (k = keyword (p, "capability name")) == NULL)
        {
          g_ptr_array_unref (a);
          return FALSE;
        }
      g_ptr_array_add (a, k);
    }
  while (!at_end (p));
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  p->cmd->strings = (char **)g_ptr_array_free (a, FALSE);
  return TRUE;
}

/* Name/value pairs whose values may be NULL: the array ends at the first
 * NULL name (see mh_imap__strv_pairs_free). */
static char **
pairs_finish (GPtrArray *a)
{
  g_ptr_array_add (a, NULL);
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  return (char **)g_ptr_array_free (a, FALSE);
}

static gboolean
parse_id (P *p)
{
  if (!expect_sp (p, "ID parameter list"))
    return FALSE;
  if (eat_keyword (p, "NIL"))
    return expect_end (p);
  if (!expect_c (p, '(', "or NIL for the ID parameters"))
    return FALSE;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  gboolean ok = FALSE;
  for (guint n = 0; !eat (p, ')'); n++)
    {
      /* RFC 2971 3.3: at most 30 pairs, names up to 30 octets */
      if (n >= 30)
        {
          fail (p, "more than 30 ID parameters");
          goto out;
        }
      if (n > 0 && !expect_sp (p, "the next ID field"))
        goto out;
      gboolean nil;
      char *k = string (p, NULL, "ID field name");
      if (k == NULL)
        goto out;
      g_ptr_array_add (a, k);
      if (!expect_sp (p, "ID field value"))
        goto out;
      char *v = nstring (p, &nil, "ID field value");
      if (v == NULL && !nil)
        goto out;
      g_ptr_array_add (a, v);
    }
  ok = expect_end (p);
out:
  if (!ok)
    {
      for (guint i = 0; i < a->len; i++)
        g_free (a->pdata[i]);
      g_ptr_array_set_free_func (a, NULL);
      g_ptr_array_unref (a);
      return FALSE;
    }
  p->cmd->strings = pairs_finish (a);
  return TRUE;
}

static gboolean
parse_getquota (P *p, gboolean root)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, root ? "mailbox name" : "quota root"))
    return FALSE;
  cmd->mailbox = root ? mailbox (p, "mailbox name") : astring (p, "quota root");
  return cmd->mailbox != NULL && expect_end (p);
}

static gboolean
parse_setquota (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "quota root")
      || (cmd->mailbox = astring (p, "quota root")) == NULL
      || !expect_sp (p, "resource limits")
      || !expect_c (p, '(', "to open the resource limits"))
    return FALSE;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  gboolean ok = TRUE;
  while (ok && !eat (p, ')'))
    {
      guint64 n;
      char *k;
      if ((a->len > 0 && !expect_sp (p, "the next resource"))
          || (k = keyword (p, "resource name")) == NULL)
        {
          ok = FALSE;
          break;
        }
      g_ptr_array_add (a, k);
      ok = expect_sp (p, "resource limit")
           && number64 (p, &n, "resource limit");
      if (ok)
        g_ptr_array_add (a, g_strdup_printf ("%" G_GUINT64_FORMAT, n));
    }
  if (!ok || !expect_end (p))
    {
      g_ptr_array_unref (a);
      return FALSE;
    }
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  cmd->strings = (char **)g_ptr_array_free (a, FALSE);
  return TRUE;
}

/* RFC 5464 3.2: entry names are slash-separated, start with /private or
 * /shared, and contain no "*", "%", "//" or a trailing "/". */
static gboolean
metadata_entry_ok (P *p, const char *e)
{
  if (g_ascii_strncasecmp (e, "/private", 8) != 0
      && g_ascii_strncasecmp (e, "/shared", 7) != 0)
    return fail (p,
                 "metadata entry \"%s\" must start with /private or "
                 "/shared",
                 e);
  gsize n = strlen (e);
  if (strpbrk (e, "*%") != NULL || strstr (e, "//") != NULL || e[n - 1] == '/')
    return fail (p, "invalid metadata entry name \"%s\"", e);
  for (const char *c = e; *c; c++)
    if ((guchar)*c < 0x20 || *c == 0x7f)
      return fail (p, "control character in metadata entry name");
  return TRUE;
}

static gboolean
parse_getmetadata (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "mailbox name"))
    return FALSE;
  if (eat (p, '('))
    {
      for (gboolean first = TRUE; !eat (p, ')'); first = FALSE)
        {
          if (!first && !expect_sp (p, "the next GETMETADATA option"))
            return FALSE;
          g_autofree char *o = keyword (p, "GETMETADATA option");
          if (o == NULL)
            return FALSE;
          if (g_str_equal (o, "MAXSIZE"))
            {
              if (!expect_sp (p, "MAXSIZE value")
                  || !number64 (p, &cmd->metadata_maxsize, "MAXSIZE value"))
                return FALSE;
            }
          else if (g_str_equal (o, "DEPTH"))
            {
              if (!expect_sp (p, "DEPTH value"))
                return FALSE;
              if (eat_keyword (p, "0"))
                cmd->metadata_depth = 0;
              else if (eat_keyword (p, "1"))
                cmd->metadata_depth = 1;
              else if (eat_keyword (p, "infinity"))
                cmd->metadata_depth = -1;
              else
                return fail (p, "DEPTH must be 0, 1 or infinity");
            }
          else
            return fail (p,
                         "unknown GETMETADATA option %s (expected "
                         "MAXSIZE or DEPTH)",
                         o);
        }
      if (!expect_sp (p, "mailbox name"))
        return FALSE;
    }
  if ((cmd->mailbox = mailbox (p, "mailbox name")) == NULL
      || !expect_sp (p, "entry names"))
    return FALSE;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  gboolean list = eat (p, '('), ok = TRUE;
  do
    {
      if (a->len > 0 && !expect_sp (p, "the next entry name"))
        {
          ok = FALSE;
          break;
        }
      char *en = astring (p, "entry name");
      if (en == NULL)
        {
          ok = FALSE;
          break;
        }
      g_ptr_array_add (a, en);
      if (!metadata_entry_ok (p, en))
        {
          ok = FALSE;
          break;
        }
    }
  while (list && !eat (p, ')'));
  if (!ok || !expect_end (p))
    {
      g_ptr_array_unref (a);
      return FALSE;
    }
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  cmd->strings = (char **)g_ptr_array_free (a, FALSE);
  return TRUE;
}

static gboolean
parse_setmetadata (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "mailbox name")
      || (cmd->mailbox = mailbox (p, "mailbox name")) == NULL
      || !expect_sp (p, "entry list")
      || !expect_c (p, '(', "to open the entry list"))
    return FALSE;
  GPtrArray *a = g_ptr_array_new ();
  gboolean ok = TRUE;
  for (guint n = 0; ok && !eat (p, ')'); n++)
    {
      char *en, *v = NULL;
      gboolean nil = FALSE;
      if ((n > 0 && !expect_sp (p, "the next entry"))
          || (en = astring (p, "entry name")) == NULL)
        {
          ok = FALSE;
          break;
        }
      g_ptr_array_add (a, en);
      if (!metadata_entry_ok (p, en) || !expect_sp (p, "entry value"))
        {
          ok = FALSE;
          break;
        }
      /* value = nstring / literal8 */
      if (peek (p) == '~')
        v = literal_string (p, NULL, TRUE, "entry value");
      else
        v = nstring (p, &nil, "entry value");
      if (v == NULL && !nil)
        ok = FALSE;
      g_ptr_array_add (a, v);
    }
  if (ok && a->len == 0)
    ok = fail (p, "SETMETADATA needs at least one entry");
  if (!ok || !expect_end (p))
    {
      for (guint i = 0; i < a->len; i++)
        g_free (a->pdata[i]);
      g_ptr_array_unref (a);
      return FALSE;
    }
  cmd->strings = pairs_finish (a);
  return TRUE;
}

static gboolean
parse_notify (P *p)
{
  if (!expect_sp (p, "NOTIFY arguments"))
    return FALSE;
  if (at_end (p))
    return fail (p, "missing NOTIFY arguments");
  /* RFC 5465: kept raw for the host, which knows the mailbox names */
  p->cmd->strings = g_new0 (char *, 2);
  p->cmd->strings[0] = g_strndup ((const char *)p->s + p->pos, p->len - p->pos);
  p->pos = p->len;
  return TRUE;
}

static gboolean
parse_compress (P *p)
{
  return expect_sp (p, "compression mechanism")
         && (p->cmd->compress = keyword (p, "compression mechanism")) != NULL
         && expect_end (p);
}

/* ---- Dispatch ------------------------------------------------------------ */

typedef gboolean (*ParseFn) (P *p);

static gboolean
parse_none (P *p)
{
  return expect_end (p);
}

static gboolean
parse_list_cmd (P *p)
{
  return parse_list (p, FALSE);
}

static gboolean
parse_lsub_cmd (P *p)
{
  return parse_list (p, TRUE);
}

static gboolean
parse_getquota_cmd (P *p)
{
  return parse_getquota (p, FALSE);
}

static gboolean
parse_getquotaroot_cmd (P *p)
{
  return parse_getquota (p, TRUE);
}

static gboolean
parse_expunge (P *p)
{
  return p->cmd->uid ? parse_set_only (p) : expect_end (p);
}

static const struct
{
  const char *name;
  MhImapCommandKind kind;
  ParseFn fn;
  gboolean uid_ok;
} commands[] = {
  { "CAPABILITY", MH_IMAP_CMD_CAPABILITY, parse_none, FALSE },
  { "NOOP", MH_IMAP_CMD_NOOP, parse_none, FALSE },
  { "LOGOUT", MH_IMAP_CMD_LOGOUT, parse_none, FALSE },
  { "STARTTLS", MH_IMAP_CMD_STARTTLS, parse_none, FALSE },
  { "AUTHENTICATE", MH_IMAP_CMD_AUTHENTICATE, parse_authenticate, FALSE },
  { "LOGIN", MH_IMAP_CMD_LOGIN, parse_login, FALSE },
  { "ENABLE", MH_IMAP_CMD_ENABLE, parse_enable, FALSE },
  { "ID", MH_IMAP_CMD_ID, parse_id, FALSE },
  { "SELECT", MH_IMAP_CMD_SELECT, parse_select, FALSE },
  { "EXAMINE", MH_IMAP_CMD_EXAMINE, parse_select, FALSE },
  { "CREATE", MH_IMAP_CMD_CREATE, parse_create, FALSE },
  { "DELETE", MH_IMAP_CMD_DELETE, parse_mailbox_only, FALSE },
  { "RENAME", MH_IMAP_CMD_RENAME, parse_rename, FALSE },
  { "SUBSCRIBE", MH_IMAP_CMD_SUBSCRIBE, parse_mailbox_only, FALSE },
  { "UNSUBSCRIBE", MH_IMAP_CMD_UNSUBSCRIBE, parse_mailbox_only, FALSE },
  { "LIST", MH_IMAP_CMD_LIST, parse_list_cmd, FALSE },
  { "LSUB", MH_IMAP_CMD_LSUB, parse_lsub_cmd, FALSE },
  { "NAMESPACE", MH_IMAP_CMD_NAMESPACE, parse_none, FALSE },
  { "STATUS", MH_IMAP_CMD_STATUS, parse_status, FALSE },
  { "APPEND", MH_IMAP_CMD_APPEND, parse_append, FALSE },
  { "IDLE", MH_IMAP_CMD_IDLE, parse_none, FALSE },
  { "CHECK", MH_IMAP_CMD_CHECK, parse_none, FALSE },
  { "CLOSE", MH_IMAP_CMD_CLOSE, parse_none, FALSE },
  { "UNSELECT", MH_IMAP_CMD_UNSELECT, parse_none, FALSE },
  { "EXPUNGE", MH_IMAP_CMD_EXPUNGE, parse_expunge, TRUE },
  { "SEARCH", MH_IMAP_CMD_SEARCH, parse_search, TRUE },
  { "FETCH", MH_IMAP_CMD_FETCH, parse_fetch, TRUE },
  { "STORE", MH_IMAP_CMD_STORE, parse_store, TRUE },
  { "COPY", MH_IMAP_CMD_COPY, parse_copy, TRUE },
  { "MOVE", MH_IMAP_CMD_MOVE, parse_copy, TRUE },
  { "SORT", MH_IMAP_CMD_SORT, parse_sort, TRUE },
  { "THREAD", MH_IMAP_CMD_THREAD, parse_thread, TRUE },
  { "GETQUOTA", MH_IMAP_CMD_GETQUOTA, parse_getquota_cmd, FALSE },
  { "GETQUOTAROOT", MH_IMAP_CMD_GETQUOTAROOT, parse_getquotaroot_cmd, FALSE },
  { "SETQUOTA", MH_IMAP_CMD_SETQUOTA, parse_setquota, FALSE },
  { "GETMETADATA", MH_IMAP_CMD_GETMETADATA, parse_getmetadata, FALSE },
  { "SETMETADATA", MH_IMAP_CMD_SETMETADATA, parse_setmetadata, FALSE },
  { "NOTIFY", MH_IMAP_CMD_NOTIFY, parse_notify, FALSE },
  { "COMPRESS", MH_IMAP_CMD_COMPRESS, parse_compress, FALSE },
};

static char *
read_tag (P *p)
{
  gsize start = p->pos;
  while (p->pos < p->len && mh_imap__is_tag_char (p->s[p->pos]))
    p->pos++;
  if (p->pos == start)
    return NULL;
  return g_strndup ((const char *)p->s + start, p->pos - start);
}

char *
mh_imap__peek_tag (const guint8 *buf, gsize len, gboolean *is_append_out)
{
  P p = { .s = buf, .len = len };
  char *tag = read_tag (&p);
  /* "a+b ..." is no tag at all: such errors are answered untagged */
  if (tag != NULL && !at_end (&p) && peek (&p) != ' ')
    g_clear_pointer (&tag, g_free);
  if (is_append_out != NULL)
    *is_append_out
        = tag != NULL && eat (&p, ' ') && peek_keyword (&p, "APPEND");
  return tag;
}

MhImapParseResult
mh_imap__parse (const guint8 *buf, gsize len, GBytes *whole, gboolean utf8,
                MhImapCommand **cmd_out, char **tag_out, char **code_out,
                char **text_out)
{
  P p = { .s = buf, .len = len, .whole = whole, .utf8 = utf8 };
  MhImapCommand *cmd = mh_imap__command_new ();
  p.cmd = cmd;
  *cmd_out = NULL;
  *tag_out = *code_out = *text_out = NULL;

  cmd->tag = read_tag (&p);
  if (cmd->tag == NULL || (!at_end (&p) && peek (&p) != ' '))
    {
      *tag_out = g_strdup ("*");
      *text_out = g_strdup (cmd->tag == NULL && at_end (&p)
                                ? "Empty command"
                                : "Invalid tag (letters, digits and most "
                                  "punctuation but not + ( ) { * % \" \\)");
      mh_imap_command_free (cmd);
      return MH_IMAP_PARSE_BAD;
    }
  g_autofree char *name = NULL;
  if (!eat (&p, ' ') || (name = take_while (&p, is_atom_char)) == NULL)
    {
      *tag_out = g_strdup (cmd->tag);
      *text_out = g_strdup ("Missing command name after the tag");
      mh_imap_command_free (cmd);
      return MH_IMAP_PARSE_BAD;
    }
  char *up = g_ascii_strup (name, -1);
  g_free (name);
  name = up;
  if (g_str_equal (name, "UID"))
    {
      g_autofree char *sub = NULL;
      cmd->uid = TRUE;
      if (!eat (&p, ' ') || (sub = take_while (&p, is_atom_char)) == NULL)
        {
          *tag_out = g_strdup (cmd->tag);
          *text_out = g_strdup ("Error in IMAP command UID: missing command "
                                "(COPY, MOVE, FETCH, SEARCH, STORE, EXPUNGE, "
                                "SORT or THREAD)");
          mh_imap_command_free (cmd);
          return MH_IMAP_PARSE_BAD;
        }
      up = g_ascii_strup (sub, -1);
      g_free (name);
      name = up;
    }
  gsize i;
  for (i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (name, commands[i].name))
      break;
  if (i == G_N_ELEMENTS (commands) || (cmd->uid && !commands[i].uid_ok))
    {
      *tag_out = g_strdup (cmd->tag);
      if (cmd->uid)
        *text_out = g_strdup_printf ("Error in IMAP command UID: %s cannot "
                                     "follow UID",
                                     name);
      else
        *text_out = g_strdup_printf ("Unknown command %s", name);
      mh_imap_command_free (cmd);
      return MH_IMAP_PARSE_BAD;
    }
  cmd->kind = commands[i].kind;
  cmd->name = cmd->uid ? g_strconcat ("UID ", name, NULL) : g_strdup (name);
  p.name = cmd->name;
  if (!commands[i].fn (&p) || p.err != NULL)
    {
      *tag_out = g_strdup (cmd->tag);
      *text_out = p.err != NULL
                      ? p.err
                      : g_strdup_printf ("Error in IMAP command %s", cmd->name);
      *code_out = p.code;
      mh_imap_command_free (cmd);
      return p.no ? MH_IMAP_PARSE_NO : MH_IMAP_PARSE_BAD;
    }
  *cmd_out = cmd;
  return MH_IMAP_PARSE_OK;
}
