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

/* take_while () of at least one char, or an error naming @what */
static char *
word (P *p, gboolean (*pred) (int), const char *what)
{
  char *a = take_while (p, pred);
  if (a == NULL && peek (p) >= 0x80)
    fail_8bit (p);
  else if (a == NULL)
    fail (p, at_end (p) ? "missing %s" : "expected %s", what);
  return a;
}

static char *
atom (P *p, const char *what)
{
  return word (p, is_atom_char, what);
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

/* ---- Keyword tables and lists -------------------------------------------- */

/* A keyword and what it stands for: a flag bit or an enum value. */
typedef struct
{
  const char *name; /* upper case, as keyword () returns it */
  guint value;
} NameValue;

/* The keywords one slot of the grammar accepts, and how to say that
 * one is missing ("missing return option") or unknown ("unknown return
 * option BOGUS (expected MIN, MAX, ALL, COUNT or SAVE)"). */
typedef struct
{
  const char *what;     /* for keyword (): "missing WHAT" */
  const char *label;    /* "unknown LABEL KW" */
  const char *expected; /* appended to that: "" or " (expected ...)" */
  const NameValue *names;
  gsize n_names;
} Vocabulary;

#define NAMES(table) (table), G_N_ELEMENTS (table)

static gboolean
name_lookup (const NameValue *names, gsize n, const char *kw, guint *out)
{
  for (gsize i = 0; i < n; i++)
    if (g_str_equal (kw, names[i].name))
      {
        *out = names[i].value;
        return TRUE;
      }
  return FALSE;
}

/* Reads a keyword of @v and sets *out to its value. @what overrides
 * v->what for the "missing" text (NULL: v->what). */
static gboolean
vocab_keyword (P *p, const Vocabulary *v, const char *what, guint *out)
{
  g_autofree char *kw = keyword (p, what != NULL ? what : v->what);
  if (kw == NULL)
    return FALSE;
  if (!name_lookup (v->names, v->n_names, kw, out))
    return fail (p, "unknown %s %s%s", v->label, kw, v->expected);
  return TRUE;
}

/* One item of a parenthesised list; @index counts from 0. */
typedef gboolean (*ListItemFn) (P *p, guint index, gpointer data);

/* The rest of "(" item *(SP item) ")", the "(" already read: the shape
 * of every option, attribute and field list (RFC 9051 9, RFC 4466 2.1).
 * "()" is allowed when @empty_ok (else the first item reports what is
 * missing); @next names the item after a separator ("the next status
 * item") for a missing or wrong space. */
static gboolean
paren_list (P *p, gboolean empty_ok, const char *next, ListItemFn item,
            gpointer data)
{
  if (empty_ok && eat (p, ')'))
    return TRUE;
  for (guint i = 0;; i++)
    {
      if (!item (p, i, data))
        return FALSE;
      if (eat (p, ')'))
        return TRUE;
      if (!expect_sp (p, next))
        return FALSE;
    }
}

typedef struct
{
  const Vocabulary *v;
  guint *bits;
} BitsList;

static gboolean
bits_item (P *p, guint index, gpointer data)
{
  BitsList *b = data;
  guint bit;
  if (!vocab_keyword (p, b->v, NULL, &bit))
    return FALSE;
  *b->bits |= bit;
  return TRUE;
}

/* A list of keywords of @v, OR-ing their bits into *bits. */
static gboolean
bits_list (P *p, gboolean empty_ok, const char *next, const Vocabulary *v,
           guint *bits)
{
  BitsList b = { v, bits };
  return paren_list (p, empty_ok, next, bits_item, &b);
}

/* 1*(SP item) up to the end of the command (ENABLE's capabilities,
 * a search program's keys). @what names the item after each space. */
static gboolean
sp_items (P *p, const char *what, ListItemFn item, gpointer data)
{
  guint i = 0;
  do
    {
      if (!expect_sp (p, what) || !item (p, i++, data))
        return FALSE;
    }
  while (!at_end (p));
  return TRUE;
}

/* Ends @a (of char *) with NULL and returns its strings. */
static char **
strv_finish (GPtrArray *a)
{
  g_ptr_array_add (a, NULL);
  g_ptr_array_set_free_func (a, NULL);
  return (char **)g_ptr_array_free (a, FALSE);
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
  return word (p, is_astring_char, what);
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

static gboolean
flag_item (P *p, guint index, gpointer data)
{
  char *f = flag (p, TRUE);
  if (f == NULL)
    return FALSE;
  g_ptr_array_add (data, f);
  return TRUE;
}

/* "(" [flag *(SP flag)] ")" */
static char **
flag_list (P *p, gboolean in_store)
{
  (void)in_store;
  if (!expect_c (p, '(', "to open the flag list"))
    return NULL;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  if (!paren_list (p, TRUE, "the next flag", flag_item, a))
    {
      g_ptr_array_unref (a);
      return NULL;
    }
  return strv_finish (a);
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

/* What follows a search key's name (RFC 9051 6.4.4). */
typedef enum
{
  SEARCH_ARG_NONE,
  SEARCH_ARG_STRING,  /* astring, UTF-8 */
  SEARCH_ARG_DATE,    /* date */
  SEARCH_ARG_ATOM,    /* flag-keyword */
  SEARCH_ARG_NUMBER,  /* number64 (LARGER, SMALLER) */
  SEARCH_ARG_SECONDS, /* nz-number (RFC 5032 OLDER, YOUNGER) */
  SEARCH_ARG_SPECIAL, /* parsed by its own code below */
} SearchArg;

static const struct
{
  const char *name;
  MhImapSearchKeyType type;
  SearchArg arg;
} search_keys[] = {
  { "ALL", MH_IMAP_SEARCH_ALL, SEARCH_ARG_NONE },
  { "ANSWERED", MH_IMAP_SEARCH_ANSWERED, SEARCH_ARG_NONE },
  { "DELETED", MH_IMAP_SEARCH_DELETED, SEARCH_ARG_NONE },
  { "DRAFT", MH_IMAP_SEARCH_DRAFT, SEARCH_ARG_NONE },
  { "FLAGGED", MH_IMAP_SEARCH_FLAGGED, SEARCH_ARG_NONE },
  { "SEEN", MH_IMAP_SEARCH_SEEN, SEARCH_ARG_NONE },
  { "RECENT", MH_IMAP_SEARCH_RECENT, SEARCH_ARG_NONE },
  { "NEW", MH_IMAP_SEARCH_NEW, SEARCH_ARG_NONE },
  { "OLD", MH_IMAP_SEARCH_OLD, SEARCH_ARG_NONE },
  { "UNANSWERED", MH_IMAP_SEARCH_UNANSWERED, SEARCH_ARG_NONE },
  { "UNDELETED", MH_IMAP_SEARCH_UNDELETED, SEARCH_ARG_NONE },
  { "UNDRAFT", MH_IMAP_SEARCH_UNDRAFT, SEARCH_ARG_NONE },
  { "UNFLAGGED", MH_IMAP_SEARCH_UNFLAGGED, SEARCH_ARG_NONE },
  { "UNSEEN", MH_IMAP_SEARCH_UNSEEN, SEARCH_ARG_NONE },
  { "SAVEDATESUPPORTED", MH_IMAP_SEARCH_SAVEDATESUPPORTED, SEARCH_ARG_NONE },
  { "BCC", MH_IMAP_SEARCH_BCC, SEARCH_ARG_STRING },
  { "CC", MH_IMAP_SEARCH_CC, SEARCH_ARG_STRING },
  { "FROM", MH_IMAP_SEARCH_FROM, SEARCH_ARG_STRING },
  { "SUBJECT", MH_IMAP_SEARCH_SUBJECT, SEARCH_ARG_STRING },
  { "TO", MH_IMAP_SEARCH_TO, SEARCH_ARG_STRING },
  { "BODY", MH_IMAP_SEARCH_BODY, SEARCH_ARG_STRING },
  { "TEXT", MH_IMAP_SEARCH_TEXT, SEARCH_ARG_STRING },
  { "BEFORE", MH_IMAP_SEARCH_BEFORE, SEARCH_ARG_DATE },
  { "ON", MH_IMAP_SEARCH_ON, SEARCH_ARG_DATE },
  { "SINCE", MH_IMAP_SEARCH_SINCE, SEARCH_ARG_DATE },
  { "SENTBEFORE", MH_IMAP_SEARCH_SENTBEFORE, SEARCH_ARG_DATE },
  { "SENTON", MH_IMAP_SEARCH_SENTON, SEARCH_ARG_DATE },
  { "SENTSINCE", MH_IMAP_SEARCH_SENTSINCE, SEARCH_ARG_DATE },
  { "SAVEDBEFORE", MH_IMAP_SEARCH_SAVEDBEFORE, SEARCH_ARG_DATE },
  { "SAVEDON", MH_IMAP_SEARCH_SAVEDON, SEARCH_ARG_DATE },
  { "SAVEDSINCE", MH_IMAP_SEARCH_SAVEDSINCE, SEARCH_ARG_DATE },
  { "KEYWORD", MH_IMAP_SEARCH_KEYWORD, SEARCH_ARG_ATOM },
  { "UNKEYWORD", MH_IMAP_SEARCH_UNKEYWORD, SEARCH_ARG_ATOM },
  { "LARGER", MH_IMAP_SEARCH_LARGER, SEARCH_ARG_NUMBER },
  { "SMALLER", MH_IMAP_SEARCH_SMALLER, SEARCH_ARG_NUMBER },
  { "OLDER", MH_IMAP_SEARCH_OLDER, SEARCH_ARG_SECONDS },
  { "YOUNGER", MH_IMAP_SEARCH_YOUNGER, SEARCH_ARG_SECONDS },
  { "HEADER", MH_IMAP_SEARCH_HEADER, SEARCH_ARG_SPECIAL },
  { "UID", MH_IMAP_SEARCH_UID, SEARCH_ARG_SPECIAL },
  { "NOT", MH_IMAP_SEARCH_NOT, SEARCH_ARG_SPECIAL },
  { "OR", MH_IMAP_SEARCH_OR, SEARCH_ARG_SPECIAL },
  { "MODSEQ", MH_IMAP_SEARCH_MODSEQ, SEARCH_ARG_SPECIAL },
};

static MhImapSearchKey *
search_key_with_children (MhImapSearchKeyType type)
{
  MhImapSearchKey *k = mh_imap__search_key_new (type);
  k->children = g_ptr_array_new_with_free_func (
      (GDestroyNotify)mh_imap__search_key_free);
  return k;
}

typedef struct
{
  MhImapSearchKey *parent;
  guint depth;
} SearchChildren;

static gboolean
search_child_item (P *p, guint index, gpointer data)
{
  SearchChildren *c = data;
  MhImapSearchKey *ch = search_key (p, c->depth);
  if (ch == NULL)
    return FALSE;
  g_ptr_array_add (c->parent->children, ch);
  return TRUE;
}

/* RFC 7162 3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP
 * mod-sequence-valzer */
static MhImapSearchKey *
search_modseq (P *p)
{
  static const char *const entry_types[] = { "PRIV", "SHARED", "ALL", NULL };
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
      if (type != NULL
          && !g_strv_contains ((const char *const *)entry_types, type))
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
  MhImapSearchKey *k = mh_imap__search_key_new (MH_IMAP_SEARCH_MODSEQ);
  k->header = entry;
  k->string = type != NULL ? g_ascii_strdown (type, -1) : NULL;
  g_free (type);
  k->number = n;
  if (p->cmd != NULL && p->cmd->changedsince == 0)
    p->cmd->changedsince = n;
  return k;
}

/* The keys with a grammar of their own: HEADER, UID, NOT, OR, MODSEQ. */
static MhImapSearchKey *
search_special (P *p, MhImapSearchKeyType type, guint depth)
{
  MhImapSearchKey *k;
  switch (type)
    {
    case MH_IMAP_SEARCH_HEADER:
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
    case MH_IMAP_SEARCH_UID:
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
    case MH_IMAP_SEARCH_NOT:
      {
        if (!expect_sp (p, "search key after NOT"))
          return NULL;
        MhImapSearchKey *ch = search_key (p, depth + 1);
        if (ch == NULL)
          return NULL;
        k = search_key_with_children (MH_IMAP_SEARCH_NOT);
        g_ptr_array_add (k->children, ch);
        return k;
      }
    case MH_IMAP_SEARCH_OR:
      k = search_key_with_children (MH_IMAP_SEARCH_OR);
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
    case MH_IMAP_SEARCH_MODSEQ:
      return search_modseq (p);
    default:
      g_assert_not_reached ();
    }
  return NULL;
}

static MhImapSearchKey *
search_key_body (P *p, guint depth)
{
  int c = peek (p);
  if (c == '(')
    {
      p->pos++;
      SearchChildren ch
          = { search_key_with_children (MH_IMAP_SEARCH_AND), depth + 1 };
      if (!paren_list (p, FALSE, "the next search key or ')'",
                       search_child_item, &ch))
        {
          mh_imap__search_key_free (ch.parent);
          return NULL;
        }
      return ch.parent;
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
  gsize i;
  for (i = 0; i < G_N_ELEMENTS (search_keys); i++)
    if (g_str_equal (kw, search_keys[i].name))
      break;
  if (i == G_N_ELEMENTS (search_keys))
    {
      fail (p, "unknown search key \"%s\"", kw);
      return NULL;
    }
  MhImapSearchKeyType t = search_keys[i].type;
  SearchArg arg = search_keys[i].arg;
  if (arg == SEARCH_ARG_NONE)
    return mh_imap__search_key_new (t);
  if (arg == SEARCH_ARG_SPECIAL)
    return search_special (p, t, depth);
  g_autofree char *what = g_strdup_printf ("argument of %s", kw);
  if (!expect_sp (p, what))
    return NULL;
  char *s = NULL;
  gint64 d = 0;
  guint64 n = 0;
  guint32 n32 = 0;
  switch (arg)
    {
    case SEARCH_ARG_STRING:
      if (!search_string (p, &s, what))
        return NULL;
      break;
    case SEARCH_ARG_DATE:
      if (!date (p, &d))
        return NULL;
      break;
    case SEARCH_ARG_ATOM:
      if ((s = atom (p, "a keyword")) == NULL)
        return NULL;
      break;
    case SEARCH_ARG_NUMBER:
      if (!number64 (p, &n, what))
        return NULL;
      break;
    case SEARCH_ARG_SECONDS:
      if (!number32 (p, &n32, TRUE, what))
        return NULL;
      n = n32;
      break;
    default:
      g_assert_not_reached ();
    }
  MhImapSearchKey *k = mh_imap__search_key_new (t);
  k->string = s;
  k->date = d;
  k->number = n;
  return k;
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
  SearchChildren root = { search_key_with_children (MH_IMAP_SEARCH_AND), 1 };
  cmd->search = root.parent;
  return sp_items (p, "search key", search_child_item, &root);
}

/* RFC 4731 3.1, RFC 5182 2.4 */
static const NameValue return_names[] = {
  { "MIN", MH_IMAP_RETURN_MIN },   { "MAX", MH_IMAP_RETURN_MAX },
  { "ALL", MH_IMAP_RETURN_ALL },   { "COUNT", MH_IMAP_RETURN_COUNT },
  { "SAVE", MH_IMAP_RETURN_SAVE },
};
static const Vocabulary return_vocab
    = { "return option", "return option",
        " (expected MIN, MAX, ALL, COUNT or SAVE)", NAMES (return_names) };

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
  /* RFC 5182 2.4: RETURN (SAVE) alone returns nothing */
  guint bits = 0;
  if (!bits_list (p, FALSE, "the next return option", &return_vocab, &bits))
    return FALSE;
  cmd->search_return |= bits;
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

static const NameValue section_texts[] = {
  { "HEADER", MH_IMAP_SECTION_HEADER },
  { "HEADER.FIELDS", MH_IMAP_SECTION_HEADER_FIELDS },
  { "HEADER.FIELDS.NOT", MH_IMAP_SECTION_HEADER_FIELDS_NOT },
  { "TEXT", MH_IMAP_SECTION_TEXT },
  { "MIME", MH_IMAP_SECTION_MIME },
};

/* HEADER.FIELDS (...): the names, and their canonical text in the
 * section spec the host echoes back. */
typedef struct
{
  GPtrArray *fields;
  GString *spec;
} FieldList;

static gboolean
header_field_item (P *p, guint index, gpointer data)
{
  FieldList *l = data;
  char *h = astring (p, "header field name");
  if (h == NULL)
    return FALSE;
  if (index > 0)
    g_string_append_c (l->spec, ' ');
  mh_imap_append_astring (l->spec, h, -1, FALSE);
  g_ptr_array_add (l->fields, h);
  return TRUE;
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
      guint text;
      /* RFC 9051 6.4.5: MIME only after a part number */
      if (name_lookup (NAMES (section_texts), t, &text)
          && (text != MH_IMAP_SECTION_MIME || parts->len > 0))
        a->text = (MhImapSectionText)text;
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
          FieldList l = { g_ptr_array_new_with_free_func (g_free), spec };
          g_string_append (spec, " (");
          if (!paren_list (p, FALSE, "the next header field name",
                           header_field_item, &l))
            {
              g_ptr_array_unref (l.fields);
              goto out;
            }
          g_string_append_c (spec, ')');
          a->fields = strv_finish (l.fields);
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
  static const NameValue plain[] = {
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
  /* The items that take a "[section]" (BODY alone is BODYSTRUCTURE's
   * non-extensible form, RFC 9051 6.4.5). */
  static const NameValue sectioned[] = {
    { "BODY", MH_IMAP_FETCH_BODY_SECTION },
    { "BODY.PEEK", MH_IMAP_FETCH_BODY_SECTION },
    { "BINARY", MH_IMAP_FETCH_BINARY },
    { "BINARY.PEEK", MH_IMAP_FETCH_BINARY },
    { "BINARY.SIZE", MH_IMAP_FETCH_BINARY_SIZE },
  };
  guint item;
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
  if (name_lookup (NAMES (plain), n, &item))
    {
      add_att (p, (MhImapFetchItem)item);
      return TRUE;
    }
  if (g_str_equal (n, "BODY") && peek (p) != '[')
    {
      add_att (p, MH_IMAP_FETCH_BODY);
      return TRUE;
    }
  if (!name_lookup (NAMES (sectioned), n, &item))
    return fail (p, "unknown FETCH item \"%s\"", n);
  if (!eat (p, '['))
    return fail (p, "expected '[' after %s", n);
  MhImapFetchAtt *a = att_new ((MhImapFetchItem)item);
  a->peek = g_str_has_suffix (n, ".PEEK");
  if (!section (p, a, item != MH_IMAP_FETCH_BODY_SECTION)
      || (item != MH_IMAP_FETCH_BINARY_SIZE && !partial (p, a)))
    {
      mh_imap__fetch_att_free (a);
      return FALSE;
    }
  g_ptr_array_add (p->cmd->fetch_atts, a);
  return TRUE;
}

static gboolean
fetch_att_item (P *p, guint index, gpointer data)
{
  return fetch_att (p, FALSE);
}

enum
{
  FETCH_MOD_CHANGEDSINCE,
  FETCH_MOD_VANISHED,
};
static const NameValue fetch_modifier_names[] = {
  { "CHANGEDSINCE", FETCH_MOD_CHANGEDSINCE },
  { "VANISHED", FETCH_MOD_VANISHED },
};
static const Vocabulary fetch_modifier_vocab
    = { "FETCH modifier", "FETCH modifier",
        " (expected CHANGEDSINCE or VANISHED)", NAMES (fetch_modifier_names) };

static gboolean
fetch_modifier_item (P *p, guint index, gpointer data)
{
  MhImapCommand *cmd = p->cmd;
  gboolean *changedsince = data;
  guint m;
  if (!vocab_keyword (p, &fetch_modifier_vocab, NULL, &m))
    return FALSE;
  if (m == FETCH_MOD_VANISHED)
    {
      cmd->vanished = TRUE;
      return TRUE;
    }
  if (!expect_sp (p, "CHANGEDSINCE value")
      || !number64 (p, &cmd->changedsince, "CHANGEDSINCE value"))
    return FALSE;
  if (cmd->changedsince == 0)
    return fail (p, "CHANGEDSINCE value must not be 0");
  *changedsince = TRUE;
  return TRUE;
}

static gboolean
fetch_modifiers (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (at_end (p))
    return TRUE;
  gboolean changedsince = FALSE;
  if (!expect_sp (p, "FETCH modifiers")
      || !expect_c (p, '(', "to open the FETCH modifiers")
      || !paren_list (p, FALSE, "the next FETCH modifier", fetch_modifier_item,
                      &changedsince))
    return FALSE;
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
      if (!paren_list (p, FALSE, "the next FETCH item or ')'", fetch_att_item,
                       NULL))
        return FALSE;
    }
  else if (!fetch_att (p, TRUE))
    return FALSE;
  /* RFC 9051 6.4.8: UID FETCH always returns UID; the host adds it */
  return fetch_modifiers (p) && expect_end (p);
}

/* ---- STORE, COPY, MOVE, UID EXPUNGE ---------------------------------- */

/* RFC 7162 3.1.3: store-modifier */
static const NameValue store_modifier_names[] = {
  { "UNCHANGEDSINCE", 0 },
};
static const Vocabulary store_modifier_vocab
    = { "STORE modifier", "STORE modifier", " (expected UNCHANGEDSINCE)",
        NAMES (store_modifier_names) };

/* The value is store_silent. */
static const NameValue store_item_names[] = {
  { "FLAGS", FALSE },
  { "FLAGS.SILENT", TRUE },
};
static const Vocabulary store_item_vocab
    = { "FLAGS, +FLAGS or -FLAGS", "STORE item",
        " (expected FLAGS, +FLAGS or -FLAGS, optionally .SILENT)",
        NAMES (store_item_names) };

static gboolean
parse_store (P *p)
{
  MhImapCommand *cmd = p->cmd;
  guint v;
  if (!expect_sp (p, "message set")
      || (cmd->set = seqset (p, "message set")) == NULL
      || !expect_sp (p, "STORE item"))
    return FALSE;
  if (eat (p, '('))
    {
      if (!vocab_keyword (p, &store_modifier_vocab, NULL, &v)
          || !expect_sp (p, "UNCHANGEDSINCE value")
          || !number64 (p, &cmd->unchangedsince, "UNCHANGEDSINCE value")
          || !expect_c (p, ')', "to close the STORE modifiers")
          || !expect_sp (p, "STORE item"))
        return FALSE;
    }
  cmd->store_mode = eat (p, '+')   ? MH_IMAP_STORE_ADD
                    : eat (p, '-') ? MH_IMAP_STORE_REMOVE
                                   : MH_IMAP_STORE_REPLACE;
  if (!vocab_keyword (p, &store_item_vocab, NULL, &v))
    return FALSE;
  cmd->store_silent = v;
  if (!expect_sp (p, "flags"))
    return FALSE;
  if (peek (p) == '(')
    {
      cmd->store_flags = flag_list (p, TRUE);
      return cmd->store_flags != NULL && expect_end (p);
    }
  /* RFC 9051 9: store-att-flags also takes flags without parentheses */
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  if (!flag_item (p, 0, a)
      || (!at_end (p) && !sp_items (p, "the next flag", flag_item, a)))
    {
      g_ptr_array_unref (a);
      return FALSE;
    }
  cmd->store_flags = strv_finish (a);
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

/* RFC 5256 3, RFC 5957 3 */
static const NameValue sort_key_names[] = {
  { "ARRIVAL", MH_IMAP_SORT_ARRIVAL },
  { "CC", MH_IMAP_SORT_CC },
  { "DATE", MH_IMAP_SORT_DATE },
  { "FROM", MH_IMAP_SORT_FROM },
  { "SIZE", MH_IMAP_SORT_SIZE },
  { "SUBJECT", MH_IMAP_SORT_SUBJECT },
  { "TO", MH_IMAP_SORT_TO },
  { "DISPLAYFROM", MH_IMAP_SORT_DISPLAYFROM },
  { "DISPLAYTO", MH_IMAP_SORT_DISPLAYTO },
};
static const Vocabulary sort_key_vocab
    = { "sort key", "sort key", "", NAMES (sort_key_names) };

/* sort-criterion = ["REVERSE" SP] sort-key */
static gboolean
sort_item (P *p, guint index, gpointer data)
{
  MhImapSortCriterion c = { 0 };
  guint key;
  if (eat_keyword (p, "REVERSE"))
    {
      c.reverse = TRUE;
      if (!expect_sp (p, "sort key after REVERSE")
          || !vocab_keyword (p, &sort_key_vocab, "sort key after REVERSE",
                             &key))
        return FALSE;
    }
  else if (!vocab_keyword (p, &sort_key_vocab, NULL, &key))
    return FALSE;
  c.key = (MhImapSortKey)key;
  g_array_append_val (p->cmd->sort, c);
  return TRUE;
}

static gboolean
parse_sort (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!search_return (p) || !expect_sp (p, "sort criteria")
      || !expect_c (p, '(', "to open the sort criteria"))
    return FALSE;
  cmd->sort = g_array_new (FALSE, FALSE, sizeof (MhImapSortCriterion));
  return paren_list (p, FALSE, "the next sort key", sort_item, NULL)
         && search_program (p, TRUE);
}

static const NameValue thread_names[] = {
  { "ORDEREDSUBJECT", MH_IMAP_THREAD_ORDEREDSUBJECT },
  { "REFERENCES", MH_IMAP_THREAD_REFERENCES },
};
static const Vocabulary thread_vocab
    = { "threading algorithm", "threading algorithm",
        " (expected ORDEREDSUBJECT or REFERENCES)", NAMES (thread_names) };

static gboolean
parse_thread (P *p)
{
  guint a;
  if (!expect_sp (p, "threading algorithm")
      || !vocab_keyword (p, &thread_vocab, NULL, &a))
    return FALSE;
  p->cmd->thread = (MhImapThreadAlgorithm)a;
  return search_program (p, TRUE);
}

/* ---- Mailbox commands ---------------------------------------------------- */

/* SP mailbox, the first argument of most mailbox commands */
static gboolean
mailbox_arg (P *p)
{
  return expect_sp (p, "mailbox name")
         && (p->cmd->mailbox = mailbox (p, "mailbox name")) != NULL;
}

static gboolean
parse_mailbox_only (P *p)
{
  return mailbox_arg (p) && expect_end (p);
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

/* RFC 7162 3.2.5.1: "QRESYNC" SP "(" uidvalidity SP mod-sequence-value
 * [SP known-uids] [SP seq-match-data] ")", the "QRESYNC" already read */
static gboolean
qresync_params (P *p)
{
  MhImapCommand *cmd = p->cmd;
  guint64 ms;
  if (cmd->qresync)
    return fail (p, "QRESYNC given twice");
  cmd->qresync = TRUE;
  if (!expect_sp (p, "QRESYNC parameters")
      || !expect_c (p, '(', "to open the QRESYNC parameters")
      || !number32 (p, &cmd->qresync_uidvalidity, TRUE, "QRESYNC UIDVALIDITY")
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
      if ((cmd->qresync_seq_match = seqset (p, "QRESYNC sequence match set"))
              == NULL
          || !expect_sp (p, "QRESYNC UID match set")
          || (cmd->qresync_uid_match = seqset (p, "QRESYNC UID match set"))
                 == NULL
          || !expect_c (p, ')', "to close the sequence match data"))
        return FALSE;
      if (cmd->qresync_seq_match->saved || cmd->qresync_uid_match->saved)
        return fail (p, "\"$\" is not allowed in QRESYNC");
    }
  return expect_c (p, ')', "to close the QRESYNC parameters");
}

enum
{
  SELECT_CONDSTORE,
  SELECT_QRESYNC,
};
static const NameValue select_param_names[] = {
  { "CONDSTORE", SELECT_CONDSTORE },
  { "QRESYNC", SELECT_QRESYNC },
};
static const Vocabulary select_param_vocab
    = { "SELECT parameter", "SELECT parameter",
        " (expected CONDSTORE or QRESYNC)", NAMES (select_param_names) };

static gboolean
select_param_item (P *p, guint index, gpointer data)
{
  guint k;
  if (!vocab_keyword (p, &select_param_vocab, NULL, &k))
    return FALSE;
  if (k == SELECT_QRESYNC)
    return qresync_params (p);
  p->cmd->condstore = TRUE;
  return TRUE;
}

static gboolean
parse_select (P *p)
{
  if (!mailbox_arg (p))
    return FALSE;
  if (at_end (p))
    return TRUE;
  return expect_sp (p, "SELECT parameters")
         && expect_c (p, '(', "to open the SELECT parameters")
         && paren_list (p, FALSE, "the next SELECT parameter",
                        select_param_item, NULL)
         && expect_end (p);
}

/* RFC 6154 3: use-attr, "\" and a name */
static gboolean
use_attr_item (P *p, guint index, gpointer data)
{
  GPtrArray *use = data;
  /* A second USE list continues the first one's: its first attribute
   * needs a space before it too. Kept as the parser always did it. */
  if (index == 0 && use->len > 0
      && !expect_sp (p, "the next special-use attribute"))
    return FALSE;
  if (!expect_c (p, '\\', "to start a special-use attribute"))
    return FALSE;
  char *a = atom (p, "special-use attribute name");
  if (a == NULL)
    return FALSE;
  g_ptr_array_add (use, g_strconcat ("\\", a, NULL));
  g_free (a);
  return TRUE;
}

static const NameValue create_param_names[] = {
  { "USE", 0 },
};
static const Vocabulary create_param_vocab
    = { "CREATE parameter", "CREATE parameter", " (expected USE)",
        NAMES (create_param_names) };

/* RFC 6154 3: "USE" SP "(" [use-attr *(SP use-attr)] ")" */
static gboolean
create_param_item (P *p, guint index, gpointer data)
{
  guint k;
  return vocab_keyword (p, &create_param_vocab, NULL, &k)
         && expect_sp (p, "special-use attributes")
         && expect_c (p, '(', "to open the special-use attributes")
         && paren_list (p, TRUE, "the next special-use attribute",
                        use_attr_item, data);
}

static gboolean
parse_create (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!mailbox_arg (p))
    return FALSE;
  if (at_end (p))
    return TRUE;
  if (!expect_sp (p, "CREATE parameters")
      || !expect_c (p, '(', "to open the CREATE parameters"))
    return FALSE;
  GPtrArray *use = g_ptr_array_new_with_free_func (g_free);
  if (!paren_list (p, FALSE, "the next CREATE parameter", create_param_item,
                   use))
    {
      g_ptr_array_unref (use);
      return FALSE;
    }
  cmd->strings = strv_finish (use);
  return expect_end (p);
}

/* RFC 9051 6.3.11, RFC 7162 (HIGHESTMODSEQ), RFC 8438 (SIZE), RFC 7889
 * (APPENDLIMIT) */
static const NameValue status_item_names[] = {
  { "MESSAGES", MH_IMAP_STATUS_MESSAGES },
  { "RECENT", MH_IMAP_STATUS_RECENT },
  { "UIDNEXT", MH_IMAP_STATUS_UIDNEXT },
  { "UIDVALIDITY", MH_IMAP_STATUS_UIDVALIDITY },
  { "UNSEEN", MH_IMAP_STATUS_UNSEEN },
  { "DELETED", MH_IMAP_STATUS_DELETED },
  { "SIZE", MH_IMAP_STATUS_SIZE },
  { "HIGHESTMODSEQ", MH_IMAP_STATUS_HIGHESTMODSEQ },
  { "APPENDLIMIT", MH_IMAP_STATUS_APPENDLIMIT },
};
static const Vocabulary status_item_vocab
    = { "status item", "status item", "", NAMES (status_item_names) };

static gboolean
status_items (P *p, MhImapStatusItem *out)
{
  guint bits = 0;
  if (!expect_c (p, '(', "to open the status items")
      || !bits_list (p, FALSE, "the next status item", &status_item_vocab,
                     &bits))
    return FALSE;
  *out |= bits;
  return TRUE;
}

static gboolean
parse_status (P *p)
{
  MhImapCommand *cmd = p->cmd;
  return mailbox_arg (p) && expect_sp (p, "status items")
         && status_items (p, &cmd->status_items) && expect_end (p);
}

/* RFC 5258 6: list-select-opts */
static const NameValue list_select_names[] = {
  { "SUBSCRIBED", MH_IMAP_LIST_SELECT_SUBSCRIBED },
  { "REMOTE", MH_IMAP_LIST_SELECT_REMOTE },
  { "RECURSIVEMATCH", MH_IMAP_LIST_SELECT_RECURSIVEMATCH },
  { "SPECIAL-USE", MH_IMAP_LIST_SELECT_SPECIAL_USE },
};
static const Vocabulary list_select_vocab
    = { "selection option", "LIST selection option", "",
        NAMES (list_select_names) };

/* RFC 5258 6: list-return-opts, RFC 5819 (STATUS), RFC 6154 */
static const NameValue list_return_names[] = {
  { "SUBSCRIBED", MH_IMAP_LIST_RETURN_SUBSCRIBED },
  { "CHILDREN", MH_IMAP_LIST_RETURN_CHILDREN },
  { "SPECIAL-USE", MH_IMAP_LIST_RETURN_SPECIAL_USE },
  { "STATUS", MH_IMAP_LIST_RETURN_STATUS },
};
static const Vocabulary list_return_vocab
    = { "return option", "LIST return option", "", NAMES (list_return_names) };

static gboolean
list_return_item (P *p, guint index, gpointer data)
{
  MhImapCommand *cmd = p->cmd;
  guint bit;
  if (!vocab_keyword (p, &list_return_vocab, NULL, &bit))
    return FALSE;
  cmd->list_return |= bit;
  /* RFC 5819 2: "STATUS" SP "(" status-att *(SP status-att) ")" */
  return bit != MH_IMAP_LIST_RETURN_STATUS
         || (expect_sp (p, "status items")
             && status_items (p, &cmd->status_items));
}

static gboolean
pattern_item (P *p, guint index, gpointer data)
{
  char *m = list_mailbox (p);
  if (m == NULL)
    return FALSE;
  g_ptr_array_add (data, m);
  return TRUE;
}

static gboolean
parse_list (P *p, gboolean lsub)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "reference name"))
    return FALSE;
  if (!lsub && eat (p, '('))
    {
      guint bits = 0;
      if (!bits_list (p, TRUE, "the next selection option", &list_select_vocab,
                      &bits))
        return FALSE;
      cmd->list_select |= bits;
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
  gboolean ok = !lsub && eat (p, '(') ? paren_list (
                    p, FALSE, "the next mailbox pattern", pattern_item, pats)
                                      : pattern_item (p, 0, pats);
  cmd->patterns = strv_finish (pats);
  if (!ok)
    return FALSE;
  if (lsub || at_end (p))
    return expect_end (p);
  /* RFC 5258 6: list-return-opts */
  if (!expect_sp (p, "RETURN") || !eat_keyword (p, "RETURN"))
    return fail (p, "expected RETURN after the mailbox patterns");
  return expect_sp (p, "return options")
         && expect_c (p, '(', "to open the return options")
         && paren_list (p, TRUE, "the next return option", list_return_item,
                        NULL)
         && expect_end (p);
}

/* ---- APPEND -------------------------------------------------------------- */

static gboolean
parse_append (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!mailbox_arg (p))
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
capability_item (P *p, guint index, gpointer data)
{
  char *k = keyword (p, "capability name");
  if (k == NULL)
    return FALSE;
  g_ptr_array_add (data, k);
  return TRUE;
}

/* RFC 5161 3.1: "ENABLE" 1*(SP capability) */
static gboolean
parse_enable (P *p)
{
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  if (!sp_items (p, "capability name", capability_item, a))
    {
      g_ptr_array_unref (a);
      return FALSE;
    }
  p->cmd->strings = strv_finish (a);
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

/* RFC 9208 4.2: "(" [setquota-resource *(SP setquota-resource)] ")",
 * kept as name, limit pairs of strings */
static gboolean
quota_resource_item (P *p, guint index, gpointer data)
{
  GPtrArray *a = data;
  guint64 n;
  char *k = keyword (p, "resource name");
  if (k == NULL)
    return FALSE;
  g_ptr_array_add (a, k);
  if (!expect_sp (p, "resource limit") || !number64 (p, &n, "resource limit"))
    return FALSE;
  g_ptr_array_add (a, g_strdup_printf ("%" G_GUINT64_FORMAT, n));
  return TRUE;
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
  if (!paren_list (p, TRUE, "the next resource", quota_resource_item, a)
      || !expect_end (p))
    {
      g_ptr_array_unref (a);
      return FALSE;
    }
  cmd->strings = strv_finish (a);
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

enum
{
  GETMETADATA_MAXSIZE,
  GETMETADATA_DEPTH,
};
static const NameValue getmetadata_option_names[] = {
  { "MAXSIZE", GETMETADATA_MAXSIZE },
  { "DEPTH", GETMETADATA_DEPTH },
};
static const Vocabulary getmetadata_option_vocab
    = { "GETMETADATA option", "GETMETADATA option",
        " (expected MAXSIZE or DEPTH)", NAMES (getmetadata_option_names) };

/* RFC 5464 4.2.2/4.2.3: "MAXSIZE" SP number / "DEPTH" SP ("0" / "1" /
 * "infinity") */
static gboolean
getmetadata_option_item (P *p, guint index, gpointer data)
{
  static const struct
  {
    const char *name;
    int depth;
  } depths[] = { { "0", 0 }, { "1", 1 }, { "infinity", -1 } };
  MhImapCommand *cmd = p->cmd;
  guint o;
  if (!vocab_keyword (p, &getmetadata_option_vocab, NULL, &o))
    return FALSE;
  if (o == GETMETADATA_MAXSIZE)
    return expect_sp (p, "MAXSIZE value")
           && number64 (p, &cmd->metadata_maxsize, "MAXSIZE value");
  if (!expect_sp (p, "DEPTH value"))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (depths); i++)
    if (eat_keyword (p, depths[i].name))
      {
        cmd->metadata_depth = depths[i].depth;
        return TRUE;
      }
  return fail (p, "DEPTH must be 0, 1 or infinity");
}

static gboolean
metadata_entry_item (P *p, guint index, gpointer data)
{
  char *en = astring (p, "entry name");
  if (en == NULL)
    return FALSE;
  g_ptr_array_add (data, en);
  return metadata_entry_ok (p, en);
}

static gboolean
parse_getmetadata (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!expect_sp (p, "mailbox name"))
    return FALSE;
  if (eat (p, '('))
    {
      if (!paren_list (p, TRUE, "the next GETMETADATA option",
                       getmetadata_option_item, NULL)
          || !expect_sp (p, "mailbox name"))
        return FALSE;
    }
  if ((cmd->mailbox = mailbox (p, "mailbox name")) == NULL
      || !expect_sp (p, "entry names"))
    return FALSE;
  GPtrArray *a = g_ptr_array_new_with_free_func (g_free);
  gboolean ok = eat (p, '(') ? paren_list (p, FALSE, "the next entry name",
                                           metadata_entry_item, a)
                             : metadata_entry_item (p, 0, a);
  if (!ok || !expect_end (p))
    {
      g_ptr_array_unref (a);
      return FALSE;
    }
  cmd->strings = strv_finish (a);
  return TRUE;
}

/* entry SP value, value = nstring / literal8; pairs whose value may be
 * NULL, so @data has no free function (see parse_setmetadata) */
static gboolean
metadata_pair_item (P *p, guint index, gpointer data)
{
  GPtrArray *a = data;
  gboolean nil = FALSE;
  char *v;
  char *en = astring (p, "entry name");
  if (en == NULL)
    return FALSE;
  g_ptr_array_add (a, en);
  if (!metadata_entry_ok (p, en) || !expect_sp (p, "entry value"))
    return FALSE;
  if (peek (p) == '~')
    v = literal_string (p, NULL, TRUE, "entry value");
  else
    v = nstring (p, &nil, "entry value");
  g_ptr_array_add (a, v);
  return v != NULL || nil;
}

static gboolean
parse_setmetadata (P *p)
{
  MhImapCommand *cmd = p->cmd;
  if (!mailbox_arg (p) || !expect_sp (p, "entry list")
      || !expect_c (p, '(', "to open the entry list"))
    return FALSE;
  GPtrArray *a = g_ptr_array_new ();
  gboolean ok = paren_list (p, TRUE, "the next entry", metadata_pair_item, a);
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
