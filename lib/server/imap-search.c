/* lib/server imap-search.c: SEARCH, SORT and THREAD over a store view.
 *
 * Design notes
 * - A search program (MhImapSearchKey, parsed by the engine) is first
 *   compiled into a private tree of Node: strings are case-folded once
 *   (i;unicode-casemap of RFC 5051: simple titlecase, then NFKD),
 *   sequence and UID sets become a bitmap over view indices, and
 *   the children of AND and OR are ordered by cost so the cheap tests
 *   run first and short-circuit the rest:
 *     0 view     flags, keywords, \Recent, MODSEQ, sets: the view holds
 *                them, no store call at all (a flag SEARCH of 100,000
 *                messages is a scan of an array)
 *     0 view     RFC822.SIZE, internal date, save date: also columns
 *                of the view (mh_store_view_get_rfc822_size() etc.)
 *     1 meta     one index read from the command's MhStoreReader (one
 *                read snapshot and one freshness check per command)
 *     2 header   FROM/TO/CC/BCC/SUBJECT/SENT*: the header cache of the
 *                same record
 *     3 any hdr  HEADER name: the cache when the store caches that name,
 *                else one read of the header block
 *     4 body     BODY/TEXT: one read of the whole message, parsed once
 *                by GMime for every BODY/TEXT key of the program
 *   Per message, what was loaded is kept in a Msg and freed after it.
 * - Matching (RFC 9051 6.4.4): header strings are unfolded, RFC 2047
 *   encoded words decoded to UTF-8 (8-bit junk through GMime's fallback
 *   charsets), then case-folded; a key matches if its folded string is a
 *   substring. BODY searches the decoded text of text/ parts (base64
 *   and quoted-printable undone, charset converted to UTF-8), including
 *   messages attached as message/rfc822 (their headers too); TEXT also
 *   the top-level header fields. Other parts (attachments) are skipped.
 * - Dates: BEFORE/ON/SINCE compare the day of the internal date in the
 *   server's local time zone (the store keeps seconds, not the zone the
 *   message arrived in; RFC 9051 lets the server choose). SENT* compare
 *   the day of the Date: header as written, in its own zone; a message
 *   without a parseable Date: uses its internal date (as SORT does, RFC
 *   5256 2.2). OLDER/YOUNGER (RFC 5032): OLDER n is internal date <=
 *   now - n, YOUNGER n is >= now - n (Dovecot's reading).
 * - Save date (RFC 8514): the store's save date (when the message came
 *   into this folder), the value FETCH SAVEDATE answers; a message whose
 *   record predates save dates (0) is compared by its internal date.
 *   SAVEDATESUPPORTED matches every message.
 * - A message expunged by another session after the view was taken (its
 *   record or file is gone) matches nothing, whatever the program says;
 *   any other store error fails the whole command.
 * - SORT (RFC 5256 + RFC 5957) computes each message's keys once, then
 *   sorts with the sequence number as the last tie-breaker. THREAD
 *   builds the RFC 5256 section 3 structures with explicit stacks (no
 *   recursion over the message tree: a reply chain can be 100,000
 *   deep).
 * - Long commands are resumable: SEARCH, SORT and THREAD run as an
 *   MhImapSearchJob in slices of about 5 ms (matching, then SORT keys or
 *   THREAD containers, then the CPU-only sort or threading at the end);
 *   between slices the handler returns MH_IMAP_RUN_MORE with the job in
 *   s->cursor, so imap.c queues it again behind other sessions' work
 *   instead of holding a worker for seconds. Nothing is written before
 *   the last slice, so SEARCHRES, ESEARCH, SORT and THREAD answers are
 *   those of an unsliced run (the unit tests compare them).
 * - Nothing here is global: GMime's one-time init is the only shared
 *   state, done once (the store does the same); the handler's slice
 *   bounds are a static that only the unit tests change.
 * - Header keys walk the raw lines in place: the store's cached lines
 *   (borrowed, no copy) or the header block. A value that is pure ASCII
 *   and holds no "=?" is compared without decoding or allocating (its
 *   i;unicode-casemap folding is its ASCII upper case); anything else
 *   takes the full decode and fold. match_header() says why both agree.
 * - Cost (tests/bench/bench-imap-search.c, valgrind instruction counts
 *   at 10,000 messages): flag, set, size and date keys are scans of the
 *   view (about 1-30 ms for 100,000 messages). Header keys and SORT pay
 *   about 100,000 instructions per message, over 95% of it in lib/store:
 *   mh_store_reader_get() (GVariant normal-form check and string copies
 *   of the record) and mh_store_message_get_header() (a format-string
 *   parse per cached field); this file's own matching is about 2%.
 */
#include "imap-private.h"
#include "mailhost/limits.h"

#include <gmime/gmime.h>
#include <string.h>

/* The engine bounds the nesting of a search program; this is a second,
 * defensive bound so a program built by other means cannot overflow the
 * stack of a worker thread. */
#define SEARCH_DEPTH_MAX 256

/* lib/store's guard: two guards would let two threads run g_mime_init()
 * at once. */
void mh_store__gmime_init (void);

static void
gmime_once (void)
{
  mh_store__gmime_init ();
}

/* ---- Text helpers (exposed for the unit tests) ------------------------- */

/* i;unicode-casemap (RFC 5051 2): each character to its simple
 * titlecase mapping, then NFKD. Not g_utf8_casefold(): its full folding
 * makes "ß" equal "ss", which RFC 5051 (and Dovecot) do not. */
static gboolean
is_ascii (const char *s, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if ((guchar) s[i] >= 0x80 || s[i] == '\0')
      return FALSE;
  return TRUE;
}

char *
mh_imap__fold (const char *s, gssize len)
{
  gsize sl = s == NULL ? 0 : len < 0 ? strlen (s) : (gsize) len;
  /* ASCII, the common case: titlecase is uppercase and NFKD changes
   * nothing. */
  if (sl == 0 || is_ascii (s, sl))
    return sl ? g_ascii_strup (s, (gssize) sl) : g_strdup ("");
  g_autofree char *valid = g_utf8_make_valid (s ? s : "", s ? len : 0);
  GString *t = g_string_sized_new (strlen (valid));
  for (const char *p = valid; *p; p = g_utf8_next_char (p))
    g_string_append_unichar (t, g_unichar_totitle (g_utf8_get_char (p)));
  char *n = g_utf8_normalize (t->str, (gssize) t->len, G_NORMALIZE_ALL);
  g_string_free (t, TRUE);
  return n ? n : g_strdup ("");
}

char *
mh_imap__decode_header (const char *raw)
{
  gmime_once ();
  if (raw == NULL)
    return g_strdup ("");
  /* Unfold: RFC 5322 2.2.3, CRLF (or bare LF) followed by WSP. */
  GString *u = g_string_sized_new (strlen (raw));
  for (const char *p = raw; *p; p++)
    if (*p != '\r' && *p != '\n')
      g_string_append_c (u, *p);
  /* No encoded word and valid UTF-8: nothing for GMime to do. */
  if (strstr (u->str, "=?") == NULL && g_utf8_validate (u->str, -1, NULL))
    return g_string_free (u, FALSE);
  char *d = g_mime_utils_header_decode_text (NULL, u->str);
  g_string_free (u, TRUE);
  if (d == NULL)
    return g_strdup ("");
  if (!g_utf8_validate (d, -1, NULL))
    {
      char *v = g_utf8_make_valid (d, -1);
      g_free (d);
      d = v;
    }
  return d;
}

/* Howard Hinnant's days_from_civil: days since 1970-01-01. */
static gint64
days_from_civil (gint64 y, guint m, guint d)
{
  y -= m <= 2;
  const gint64 era = (y >= 0 ? y : y - 399) / 400;
  const gint64 yoe = y - era * 400;
  const gint64 doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const gint64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static gint64
local_day (gint64 t)
{
  GDateTime *dt = g_date_time_new_from_unix_local (t);
  if (dt == NULL)
    return t / 86400;
  gint y, m, d;
  g_date_time_get_ymd (dt, &y, &m, &d);
  g_date_time_unref (dt);
  return days_from_civil (y, (guint) m, (guint) d);
}

/* Seconds at local midnight starting @day (days since 1970-01-01). */
static gint64
day_start (gint64 day)
{
  /* civil_from_days (Howard Hinnant), the inverse of days_from_civil. */
  gint64 z = day + 719468;
  const gint64 era = (z >= 0 ? z : z - 146096) / 146097;
  const gint64 doe = z - era * 146097;
  const gint64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const gint64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const gint64 mp = (5 * doy + 2) / 153;
  const gint64 d = doy - (153 * mp + 2) / 5 + 1;
  const gint64 m = mp < 10 ? mp + 3 : mp - 9;
  const gint64 y = yoe + era * 400 + (m <= 2);
  if (y < 1 || y > 9999)
    return y < 1 ? G_MININT64 : G_MAXINT64;
  GDateTime *dt = g_date_time_new_local ((gint) y, (gint) m, (gint) d, 0, 0,
                                         0);
  if (dt == NULL)
    return day * 86400;
  gint64 r = g_date_time_to_unix (dt);
  g_date_time_unref (dt);
  return r;
}

gint64
mh_imap__local_day (gint64 t)
{
  return local_day (t);
}

gboolean
mh_imap__parse_date (const char *value, gint64 *utc_out, gint64 *day_out)
{
  gmime_once ();
  if (value == NULL)
    return FALSE;
  g_autofree char *v = mh_imap__decode_header (value);
  g_strstrip (v);
  if (*v == '\0')
    return FALSE;
  GDateTime *dt = g_mime_utils_header_decode_date (v);
  if (dt == NULL)
    return FALSE;
  gint y, m, d;
  /* The GDateTime carries the zone written in the header: its day is
   * the day "disregarding time and timezone" of RFC 9051 SENTON. */
  g_date_time_get_ymd (dt, &y, &m, &d);
  if (utc_out)
    *utc_out = g_date_time_to_unix (dt);
  if (day_out)
    *day_out = days_from_civil (y, (guint) m, (guint) d);
  g_date_time_unref (dt);
  return TRUE;
}

/* RFC 5256 2.1 base subject. The ABNF literals are case-insensitive. */

static gboolean
is_wsp (char c)
{
  return c == ' ' || c == '\t';
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP; returns its length or 0. */
static gsize
match_blob (const char *s)
{
  if (*s != '[')
    return 0;
  const char *p = s + 1;
  while (*p && *p != '[' && *p != ']')
    p++;
  if (*p != ']')
    return 0;
  p++;
  while (is_wsp (*p))
    p++;
  return (gsize) (p - s);
}

/* subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" */
static gsize
match_refwd (const char *s)
{
  const char *p = s;
  if (g_ascii_strncasecmp (p, "re", 2) == 0)
    p += 2;
  else if (g_ascii_strncasecmp (p, "fwd", 3) == 0)
    p += 3;
  else if (g_ascii_strncasecmp (p, "fw", 2) == 0)
    p += 2;
  else
    return 0;
  while (is_wsp (*p))
    p++;
  p += match_blob (p);
  if (*p != ':')
    return 0;
  return (gsize) (p + 1 - s);
}

char *
mh_imap__base_subject (const char *raw, gboolean *refwd_out)
{
  gboolean refwd = FALSE;
  /* (1) decode encoded words, tabs and continuations to space, runs of
   * spaces to one. */
  g_autofree char *dec = mh_imap__decode_header (raw);
  GString *s = g_string_sized_new (strlen (dec));
  for (const char *p = dec; *p; p++)
    {
      char c = is_wsp (*p) ? ' ' : *p;
      if (c == ' ' && s->len > 0 && s->str[s->len - 1] == ' ')
        continue;
      g_string_append_c (s, c);
    }
  for (;;)
    {
      /* (2) trailing subj-trailer = "(fwd)" / WSP, repeatedly. */
      for (;;)
        {
          if (s->len > 0 && s->str[s->len - 1] == ' ')
            g_string_truncate (s, s->len - 1);
          else if (s->len >= 5
                   && g_ascii_strcasecmp (s->str + s->len - 5, "(fwd)") == 0)
            {
              g_string_truncate (s, s->len - 5);
              refwd = TRUE;
            }
          else
            break;
        }
      /* (3)-(5) leaders and blobs. */
      gboolean again = TRUE;
      while (again)
        {
          again = FALSE;
          /* (3) subj-leader = (*subj-blob subj-refwd) / WSP */
          for (;;)
            {
              if (s->len > 0 && s->str[0] == ' ')
                {
                  g_string_erase (s, 0, 1);
                  again = TRUE;
                  continue;
                }
              gsize off = 0, b;
              while ((b = match_blob (s->str + off)) > 0)
                off += b;
              gsize r = match_refwd (s->str + off);
              if (r == 0)
                break;
              g_string_erase (s, 0, (gssize) (off + r));
              refwd = TRUE;
              again = TRUE;
            }
          /* (4) a leading subj-blob, if something non-empty remains. */
          gsize b = match_blob (s->str);
          if (b > 0 && b < s->len)
            {
              const char *rest = s->str + b;
              while (*rest == ' ')
                rest++;
              if (*rest != '\0')
                {
                  g_string_erase (s, 0, (gssize) b);
                  again = TRUE;
                }
            }
        }
      /* (6) "[fwd:" ... "]" around the whole: unwrap and go to (2). */
      if (s->len >= 6 && g_ascii_strncasecmp (s->str, "[fwd:", 5) == 0
          && s->str[s->len - 1] == ']')
        {
          g_string_truncate (s, s->len - 1);
          g_string_erase (s, 0, 5);
          refwd = TRUE;
          continue;
        }
      break;
    }
  if (refwd_out)
    *refwd_out = refwd;
  return g_string_free (s, FALSE);
}

/* ---- Raw header blocks ------------------------------------------------ */

/* The next field of a raw header block (one or more "Name: value" fields
 * with folding) from *@pos that is called @name (any case; every field
 * when @name is NULL): the raw bytes of its value (after the colon,
 * folding and line ends kept) in [*@vs, *@ve). FALSE at the blank line
 * or the end. No copy, no allocation. */
static gboolean
next_field (const char *d, gsize len, gsize *pos, const char *name,
            gsize nlen, const char **vs, const char **ve)
{
  gsize i = *pos;
  while (i < len)
    {
      if (d[i] == '\n' || (d[i] == '\r' && i + 1 < len && d[i + 1] == '\n'))
        break; /* the blank line ends the header */
      gsize start = i;
      do
        {
          const char *nl = memchr (d + i, '\n', len - i);
          i = nl ? (gsize) (nl - d) + 1 : len;
        }
      while (i < len && is_wsp (d[i]));
      const char *colon = memchr (d + start, ':', i - start);
      if (colon == NULL)
        continue;
      gsize fl = (gsize) (colon - (d + start));
      while (fl > 0 && is_wsp (d[start + fl - 1]))
        fl--;
      if (name && (fl != nlen || g_ascii_strncasecmp (d + start, name, nlen)))
        continue;
      *pos = i;
      *vs = colon + 1;
      *ve = d + i;
      return TRUE;
    }
  *pos = len;
  return FALSE;
}

/* What unfold_value() saw in a value. */
enum
{
  VALUE_ASCII = 1, /* every byte below 0x80 */
  VALUE_EW = 2,    /* holds "=?": maybe an RFC 2047 encoded word */
};

/* A field value as IMAP compares it, into @out (reset first): CR and LF
 * removed (RFC 5322 unfolding), leading WSP skipped, cut at a NUL byte
 * (a C string ends there). Returns VALUE_* bits. The one definition of
 * a value, for the copying and the copy-free paths alike. */
static guint
unfold_value (const char *vs, const char *ve, GString *out)
{
  guint bits = VALUE_ASCII;
  g_string_truncate (out, 0);
  for (const char *p = vs; p < ve && *p; p++)
    {
      char c = *p;
      if (c == '\r' || c == '\n')
        continue;
      if (out->len == 0 && is_wsp (c))
        continue;
      if ((guchar) c >= 0x80)
        bits &= ~(guint) VALUE_ASCII;
      else if (c == '?' && out->len > 0 && out->str[out->len - 1] == '=')
        bits |= VALUE_EW;
      g_string_append_c (out, c);
    }
  return bits;
}

/* Appends the unfolded values of the fields called @name (any case) in
 * a raw header block to @out. */
static void
header_values (const char *d, gsize len, const char *name, GPtrArray *out)
{
  gsize pos = 0, nlen = strlen (name);
  const char *vs, *ve;
  GString *v = g_string_new (NULL);
  while (next_field (d, len, &pos, name, nlen, &vs, &ve))
    {
      unfold_value (vs, ve, v);
      g_ptr_array_add (out, g_strndup (v->str, v->len));
    }
  g_string_free (v, TRUE);
}

/* An ASCII-only header value as i;unicode-casemap folds it is its ASCII
 * upper case (mh_imap__fold()'s own ASCII path). So a folded needle is
 * in the folded value iff, for some offset, each value byte upper-cased
 * equals the needle byte. A needle byte that no upper-cased ASCII byte
 * can equal (8-bit, or a lower-case letter left by NFKD, as "fi" from
 * U+FB01) means no ASCII value can match: Node.ascii says so. */
static gboolean
ascii_contains (const char *h, gsize hl, const char *n, gsize nl)
{
  if (nl == 0)
    return TRUE;
  if (nl > hl)
    return FALSE;
  for (gsize i = 0, last = hl - nl; i <= last; i++)
    {
      if (g_ascii_toupper (h[i]) != n[0])
        continue;
      gsize j = 1;
      while (j < nl && g_ascii_toupper (h[i + j]) == n[j])
        j++;
      if (j == nl)
        return TRUE;
    }
  return FALSE;
}

/* ---- Compiled search program ------------------------------------------ */

enum
{
  COST_VIEW,
  COST_META,
  COST_HEADER,
  COST_ANYHDR,
  COST_BODY,
};

typedef struct _Node Node;
struct _Node
{
  MhImapSearchKeyType type;
  int cost;
  Node **kids;
  guint n_kids;
  char *needle;   /* folded search string */
  gsize needle_len;
  gboolean ascii; /* an ASCII value can hold the needle (ascii_contains) */
  char *name;     /* header field name */
  gsize name_len;
  char *keyword;  /* KEYWORD/UNKEYWORD */
  gboolean fwd;   /* the keyword is $Forwarded: also the 'P' flag */
  guint8 *bits;   /* SEQSET/UID: one bit per view index */
  gint64 num;     /* day, seconds or size */
  gint64 lo, hi;  /* internal-date keys: the day's [start, end) */
};

static void
node_free (Node *n)
{
  if (n == NULL)
    return;
  for (guint i = 0; i < n->n_kids; i++)
    node_free (n->kids[i]);
  g_free (n->kids);
  g_free (n->needle);
  g_free (n->name);
  g_free (n->keyword);
  g_free (n->bits);
  g_free (n);
}

typedef struct
{
  MhStore *store;
  const char *folder;
  MhStoreView *view;
  guint count;
  gint64 now;
  const GArray *saved_uids;
  /* One read snapshot for the whole command (made at the first message
   * lookup): one freshness check instead of one per message. */
  MhStoreReader *reader;
  gboolean reader_done;
  GString *scratch; /* one header value at a time (match_header) */
} Search;

static void
bit_set (guint8 *b, guint i)
{
  b[i >> 3] |= (guint8) (1u << (i & 7));
}

static gboolean
bit_get (const guint8 *b, guint i)
{
  return (b[i >> 3] >> (i & 7)) & 1;
}

/* First view index whose UID is >= @uid (count if none). */
static guint
uid_lower_bound (MhStoreView *v, guint count, guint32 uid)
{
  guint lo = 0, hi = count;
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      if (mh_store_view_get_uid (v, mid) < uid)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

static guint8 *
set_bits (Search *s, const MhImapSeqSet *set, gboolean uid)
{
  guint8 *b = g_malloc0 (s->count / 8 + 1);
  if (set == NULL || s->count == 0)
    return b;
  if (set->saved)
    {
      /* "$" (RFC 5182): the saved messages, by UID, whatever the
       * command's numbering. */
      for (guint i = 0; s->saved_uids && i < s->saved_uids->len; i++)
        {
          gint ix = mh_store_view_find (
            s->view, g_array_index (s->saved_uids, guint32, i));
          if (ix >= 0)
            bit_set (b, (guint) ix);
        }
      return b;
    }
  guint32 star = uid ? mh_store_view_get_uid (s->view, s->count - 1)
                     : s->count;
  for (guint r = 0; set->ranges && r < set->ranges->len; r++)
    {
      MhImapRange rg = g_array_index (set->ranges, MhImapRange, r);
      /* UIDs: "n:*" holds the last UID even when n is above it (RFC 9051
       * 9, seq-range). Sequence numbers above the count do not exist,
       * so there "*" in a range reaches up, not down: "7:*" of five
       * messages is empty, as Dovecot answers; a lone "*" is the last
       * message. */
      gboolean lone = rg.first == MH_IMAP_STAR && rg.last == MH_IMAP_STAR;
      guint32 up = uid || lone ? star : G_MAXUINT32;
      guint32 a = rg.first == MH_IMAP_STAR ? up : rg.first;
      guint32 z = rg.last == MH_IMAP_STAR ? up : rg.last;
      if (a > z)
        {
          guint32 t = a;
          a = z;
          z = t;
        }
      if (uid)
        {
          guint i = uid_lower_bound (s->view, s->count, a);
          for (; i < s->count && mh_store_view_get_uid (s->view, i) <= z; i++)
            bit_set (b, i);
        }
      else
        {
          if (a < 1)
            a = 1;
          for (guint32 n = a; n <= z && n <= s->count; n++)
            bit_set (b, n - 1);
        }
    }
  return b;
}

static int
cmp_cost (gconstpointer a, gconstpointer b)
{
  const Node *x = *(Node *const *) a, *y = *(Node *const *) b;
  return x->cost - y->cost;
}

/* The folded needle of a header key, and whether an ASCII value (which
 * folds to ASCII upper case) can contain it at all. */
static void
set_needle (Node *n, const char *string)
{
  n->needle = mh_imap__fold (string, -1);
  n->needle_len = strlen (n->needle);
  n->name_len = strlen (n->name);
  n->ascii = TRUE;
  for (const char *p = n->needle; *p; p++)
    if ((guchar) *p >= 0x80 || g_ascii_islower (*p))
      n->ascii = FALSE;
}

static Node *
compile (Search *s, const MhImapSearchKey *k, int depth, GError **error)
{
  if (depth > SEARCH_DEPTH_MAX)
    {
      g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_LIMIT,
                   "search program nested deeper than %d levels",
                   SEARCH_DEPTH_MAX);
      return NULL;
    }
  Node *n = g_new0 (Node, 1);
  n->type = k->type;
  switch (k->type)
    {
    case MH_IMAP_SEARCH_AND:
    case MH_IMAP_SEARCH_OR:
    case MH_IMAP_SEARCH_NOT:
      {
        guint nk = k->children ? k->children->len : 0;
        if ((k->type == MH_IMAP_SEARCH_OR && nk != 2)
            || (k->type == MH_IMAP_SEARCH_NOT && nk != 1))
          {
            g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX,
                         "%s takes %d search keys, got %u",
                         k->type == MH_IMAP_SEARCH_OR ? "OR" : "NOT",
                         k->type == MH_IMAP_SEARCH_OR ? 2 : 1, nk);
            node_free (n);
            return NULL;
          }
        n->kids = g_new0 (Node *, nk + 1);
        for (guint i = 0; i < nk; i++)
          {
            n->kids[i] = compile (s, g_ptr_array_index (k->children, i),
                                  depth + 1, error);
            if (n->kids[i] == NULL)
              {
                n->n_kids = i;
                node_free (n);
                return NULL;
              }
            n->n_kids = i + 1;
            n->cost = MAX (n->cost, n->kids[i]->cost);
          }
        /* Cheap tests first: they short-circuit the costly ones. */
        if (nk > 1)
          qsort (n->kids, nk, sizeof *n->kids, cmp_cost);
        return n;
      }
    case MH_IMAP_SEARCH_SEQSET:
    case MH_IMAP_SEARCH_UID:
      n->bits = set_bits (s, k->set, k->type == MH_IMAP_SEARCH_UID);
      n->cost = COST_VIEW;
      return n;
    case MH_IMAP_SEARCH_KEYWORD:
    case MH_IMAP_SEARCH_UNKEYWORD:
      n->keyword = g_strdup (k->string ? k->string : "");
      n->fwd = g_ascii_strcasecmp (n->keyword, "$Forwarded") == 0;
      n->cost = COST_VIEW;
      return n;
    case MH_IMAP_SEARCH_ALL:
    case MH_IMAP_SEARCH_ANSWERED:
    case MH_IMAP_SEARCH_DELETED:
    case MH_IMAP_SEARCH_DRAFT:
    case MH_IMAP_SEARCH_FLAGGED:
    case MH_IMAP_SEARCH_SEEN:
    case MH_IMAP_SEARCH_RECENT:
    case MH_IMAP_SEARCH_NEW:
    case MH_IMAP_SEARCH_OLD:
    case MH_IMAP_SEARCH_UNANSWERED:
    case MH_IMAP_SEARCH_UNDELETED:
    case MH_IMAP_SEARCH_UNDRAFT:
    case MH_IMAP_SEARCH_UNFLAGGED:
    case MH_IMAP_SEARCH_UNSEEN:
    case MH_IMAP_SEARCH_SAVEDATESUPPORTED:
      n->cost = COST_VIEW;
      return n;
    case MH_IMAP_SEARCH_MODSEQ:
      n->num = (gint64) MIN (k->number, (guint64) G_MAXINT64);
      n->cost = COST_VIEW;
      return n;
    case MH_IMAP_SEARCH_LARGER:
    case MH_IMAP_SEARCH_SMALLER:
    case MH_IMAP_SEARCH_OLDER:
    case MH_IMAP_SEARCH_YOUNGER:
      n->num = (gint64) MIN (k->number, (guint64) G_MAXINT64);
      n->cost = COST_VIEW;
      return n;
    case MH_IMAP_SEARCH_BEFORE:
    case MH_IMAP_SEARCH_ON:
    case MH_IMAP_SEARCH_SINCE:
    case MH_IMAP_SEARCH_SAVEDBEFORE:
    case MH_IMAP_SEARCH_SAVEDON:
    case MH_IMAP_SEARCH_SAVEDSINCE:
      n->num = k->date;
      /* The local day's bounds in seconds, once: comparing seconds is
       * cheaper than finding each message's day in the zone. */
      n->lo = day_start (k->date);
      n->hi = day_start (k->date + 1);
      n->cost = COST_VIEW;
      return n;
    case MH_IMAP_SEARCH_SENTBEFORE:
    case MH_IMAP_SEARCH_SENTON:
    case MH_IMAP_SEARCH_SENTSINCE:
      n->num = k->date;
      n->cost = COST_HEADER;
      return n;
    case MH_IMAP_SEARCH_BCC:
    case MH_IMAP_SEARCH_CC:
    case MH_IMAP_SEARCH_FROM:
    case MH_IMAP_SEARCH_TO:
    case MH_IMAP_SEARCH_SUBJECT:
      {
        static const char *const names[] = { "Bcc", "Cc", "From", "To",
                                             "Subject" };
        n->name = g_strdup (names[k->type - MH_IMAP_SEARCH_BCC]);
        set_needle (n, k->string);
        n->cost = COST_HEADER;
        return n;
      }
    case MH_IMAP_SEARCH_HEADER:
      if (k->header == NULL || *k->header == '\0')
        {
          g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX,
                       "HEADER needs a field name");
          node_free (n);
          return NULL;
        }
      n->name = g_strdup (k->header);
      set_needle (n, k->string);
      n->cost = COST_ANYHDR;
      return n;
    case MH_IMAP_SEARCH_BODY:
    case MH_IMAP_SEARCH_TEXT:
      n->needle = mh_imap__fold (k->string, -1);
      n->cost = COST_BODY;
      return n;
    }
  g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX,
               "unknown search key %d", (int) k->type);
  node_free (n);
  return NULL;
}

/* ---- Evaluation -------------------------------------------------------- */

/* What was loaded of one message; freed after it. */
typedef struct
{
  Search *s;
  guint index;
  guint32 uid;
  MhStoreMessage *msg;
  gboolean msg_done;
  GBytes *hdr; /* the header block, for names the cache lacks */
  gboolean hdr_done;
  char *text_hdr; /* folded decoded header fields (TEXT) */
  char *text_body; /* folded decoded text parts (BODY, TEXT) */
  gboolean body_done;
  char **kw;
  gboolean gone; /* expunged since the view was taken */
  GError *error;
} Msg;

static void
msg_clear (Msg *m)
{
  g_clear_pointer (&m->msg, mh_store_message_unref);
  g_clear_pointer (&m->hdr, g_bytes_unref);
  g_clear_pointer (&m->text_hdr, g_free);
  g_clear_pointer (&m->text_body, g_free);
  g_clear_pointer (&m->kw, g_strfreev);
  m->msg_done = m->hdr_done = m->body_done = m->gone = FALSE;
}

/* NOT_FOUND means another session expunged it: not an error. */
static void
store_failed (Msg *m, GError *e)
{
  if (g_error_matches (e, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND))
    {
      m->gone = TRUE;
      g_error_free (e);
    }
  else
    g_propagate_error (&m->error, e);
}

static MhStoreMessage *
msg_meta (Msg *m)
{
  if (!m->msg_done)
    {
      GError *e = NULL;
      m->msg_done = TRUE;
      Search *s = m->s;
      if (!s->reader_done)
        {
          s->reader_done = TRUE;
          s->reader = mh_store_reader_new (s->store, s->folder, &e);
          if (s->reader == NULL)
            {
              /* The folder went away: every message is gone. */
              store_failed (m, e);
              return NULL;
            }
        }
      if (s->reader == NULL)
        {
          m->gone = TRUE;
          return NULL;
        }
      m->msg = mh_store_reader_get (s->reader, m->uid, &e);
      if (m->msg == NULL)
        store_failed (m, e);
    }
  return m->msg;
}

/* The raw header lines that hold field @name: the store's cached lines
 * when it caches that name (borrowed from the message: no copy), else
 * the message's header block (read once per message). FALSE on failure
 * (m->gone or m->error set). */
static gboolean
msg_header_lines (Msg *m, const char *name, const char **d, gsize *len)
{
  MhStoreMessage *msg = msg_meta (m);
  if (msg == NULL)
    return FALSE;
  gboolean cached = FALSE;
  const char *lines = mh_store_message_get_header (msg, name, &cached);
  if (cached)
    {
      *d = lines ? lines : "";
      *len = lines ? strlen (lines) : 0;
      return TRUE;
    }
  if (!m->hdr_done)
    {
      GError *e = NULL;
      m->hdr_done = TRUE;
      m->hdr = mh_store_read (m->s->store, m->s->folder, m->uid, "HEADER", 0,
                              -1, &e);
      if (m->hdr == NULL)
        store_failed (m, e);
    }
  if (m->hdr == NULL)
    return FALSE;
  *d = g_bytes_get_data (m->hdr, len);
  if (*d == NULL)
    *d = "";
  return TRUE;
}

/* The values of field @name, unfolded but not decoded; NULL on failure
 * (m->gone or m->error set). */
static GPtrArray *
msg_header (Msg *m, const char *name)
{
  const char *d;
  gsize len;
  if (!msg_header_lines (m, name, &d, &len))
    return NULL;
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  header_values (d, len, name, out);
  return out;
}

static void
append_header_list (GString *t, GMimeObject *obj)
{
  GMimeHeaderList *hl = g_mime_object_get_header_list (obj);
  int n = hl ? g_mime_header_list_get_count (hl) : 0;
  for (int i = 0; i < n; i++)
    {
      GMimeHeader *h = g_mime_header_list_get_header_at (hl, i);
      const char *v = g_mime_header_get_value (h);
      g_string_append (t, g_mime_header_get_name (h));
      g_string_append (t, ": ");
      if (v)
        g_string_append (t, v);
      g_string_append_c (t, '\n');
    }
}

static void
append_text (GString *t, const char *s)
{
  if (s == NULL)
    return;
  if (g_utf8_validate (s, -1, NULL))
    g_string_append (t, s);
  else
    {
      /* No or a wrong charset label: Latin-1 is the usual truth. */
      g_autofree char *c = g_convert (s, -1, "UTF-8", "ISO-8859-1", NULL,
                                      NULL, NULL);
      g_autofree char *v = c ? NULL : g_utf8_make_valid (s, -1);
      g_string_append (t, c ? c : v);
    }
  g_string_append_c (t, '\n');
}

/* The decoded text of every text part under @obj; bounded depth, and
 * iterative over siblings. */
static void
collect_text (GMimeObject *obj, GString *t, int depth)
{
  if (obj == NULL || depth > MH_LIMIT_STORE_MIME_DEPTH)
    return;
  if (GMIME_IS_MULTIPART (obj))
    {
      GMimeMultipart *mp = GMIME_MULTIPART (obj);
      int n = g_mime_multipart_get_count (mp);
      for (int i = 0; i < n; i++)
        collect_text (g_mime_multipart_get_part (mp, i), t, depth + 1);
    }
  else if (GMIME_IS_MESSAGE_PART (obj))
    {
      GMimeMessage *em = g_mime_message_part_get_message (
        GMIME_MESSAGE_PART (obj));
      if (em)
        {
          append_header_list (t, GMIME_OBJECT (em));
          collect_text (g_mime_message_get_mime_part (em), t, depth + 1);
        }
    }
  else if (GMIME_IS_TEXT_PART (obj))
    {
      g_autofree char *s = g_mime_text_part_get_text (GMIME_TEXT_PART (obj));
      append_text (t, s);
    }
}

static gboolean
msg_body (Msg *m)
{
  if (m->body_done)
    return m->text_body != NULL;
  m->body_done = TRUE;
  GError *e = NULL;
  g_autoptr (GBytes) b = mh_store_read (m->s->store, m->s->folder, m->uid,
                                        NULL, 0, -1, &e);
  if (b == NULL)
    {
      store_failed (m, e);
      return FALSE;
    }
  gmime_once ();
  gsize len;
  const char *d = g_bytes_get_data (b, &len);
  GMimeStream *st = g_mime_stream_mem_new_with_buffer (d, len);
  GMimeParser *p = g_mime_parser_new_with_stream (st);
  GMimeMessage *msg = g_mime_parser_construct_message (p, NULL);
  g_object_unref (p);
  g_object_unref (st);
  GString *h = g_string_new (NULL), *t = g_string_new (NULL);
  if (msg)
    {
      append_header_list (h, GMIME_OBJECT (msg));
      collect_text (g_mime_message_get_mime_part (msg), t, 0);
      g_object_unref (msg);
    }
  else
    {
      /* Not even a header GMime accepts: search the bytes as they are. */
      g_autofree char *v = g_utf8_make_valid (d, (gssize) len);
      g_string_append (t, v);
    }
  m->text_hdr = mh_imap__fold (h->str, (gssize) h->len);
  m->text_body = mh_imap__fold (t->str, (gssize) t->len);
  g_string_free (h, TRUE);
  g_string_free (t, TRUE);
  return TRUE;
}

/* Any value of @n's field contains its folded needle ("" = the field is
 * present). 1, 0, or -1 when the message could not be read.
 * Values are walked in place (the store's cached lines, no copy of the
 * list); each is unfolded into the command's one scratch buffer. A pure
 * ASCII value without "=?" has nothing to decode and folds to its ASCII
 * upper case, so it is compared byte by byte (ascii_contains()), with
 * no allocation; anything else (8-bit, or maybe an encoded word) takes
 * the full path: RFC 2047 decoding, then i;unicode-casemap. Both give
 * the same answer for an ASCII value (the unit tests hold them to it). */
static int
match_header (Msg *m, const Node *n)
{
  const char *d;
  gsize len;
  if (!msg_header_lines (m, n->name, &d, &len))
    return -1;
  GString *v = m->s->scratch;
  gsize pos = 0;
  const char *vs, *ve;
  while (next_field (d, len, &pos, n->name, n->name_len, &vs, &ve))
    {
      if (n->needle_len == 0)
        return 1;
      guint bits = unfold_value (vs, ve, v);
      if ((bits & (VALUE_ASCII | VALUE_EW)) == VALUE_ASCII)
        {
          if (n->ascii && ascii_contains (v->str, v->len, n->needle,
                                          n->needle_len))
            return 1;
          continue;
        }
      g_autofree char *dec = mh_imap__decode_header (v->str);
      g_autofree char *f = mh_imap__fold (dec, -1);
      if (strstr (f, n->needle))
        return 1;
    }
  return 0;
}

/* The sent date (RFC 5256 2.2): Date:, else the internal date. */
static gboolean
msg_sent (Msg *m, gint64 *utc_out, gint64 *day_out)
{
  g_autoptr (GPtrArray) v = msg_header (m, "Date");
  if (v == NULL)
    return FALSE;
  if (v->len > 0 && mh_imap__parse_date (v->pdata[0], utc_out, day_out))
    return TRUE;
  gint64 t = mh_store_view_get_internal_date (m->s->view, m->index);
  *utc_out = t;
  *day_out = local_day (t);
  return TRUE;
}

static int
cmp_day (MhImapSearchKeyType t, gint64 day, gint64 key)
{
  switch (t)
    {
    case MH_IMAP_SEARCH_BEFORE:
    case MH_IMAP_SEARCH_SENTBEFORE:
    case MH_IMAP_SEARCH_SAVEDBEFORE:
      return day < key;
    case MH_IMAP_SEARCH_ON:
    case MH_IMAP_SEARCH_SENTON:
    case MH_IMAP_SEARCH_SAVEDON:
      return day == key;
    default:
      return day >= key;
    }
}

static gboolean
has_keyword (Msg *m, const char *kw)
{
  if (m->kw == NULL)
    m->kw = mh_store_view_get_keywords (m->s->view, m->index);
  for (int i = 0; m->kw && m->kw[i]; i++)
    if (g_ascii_strcasecmp (m->kw[i], kw) == 0)
      return TRUE;
  return FALSE;
}

static int
eval (const Node *n, Msg *m)
{
  MhStoreView *v = m->s->view;
  guint i = m->index;
  switch (n->type)
    {
    case MH_IMAP_SEARCH_AND:
      for (guint k = 0; k < n->n_kids; k++)
        {
          int r = eval (n->kids[k], m);
          if (r <= 0)
            return r;
        }
      return 1;
    case MH_IMAP_SEARCH_OR:
      for (guint k = 0; k < n->n_kids; k++)
        {
          int r = eval (n->kids[k], m);
          if (r != 0)
            return r;
        }
      return 0;
    case MH_IMAP_SEARCH_NOT:
      {
        int r = eval (n->kids[0], m);
        return r < 0 ? r : !r;
      }
    case MH_IMAP_SEARCH_ALL:
    case MH_IMAP_SEARCH_SAVEDATESUPPORTED:
      return 1;
    case MH_IMAP_SEARCH_SEQSET:
    case MH_IMAP_SEARCH_UID:
      return bit_get (n->bits, i);
    case MH_IMAP_SEARCH_ANSWERED:
      return !!(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_ANSWERED);
    case MH_IMAP_SEARCH_DELETED:
      return !!(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_DELETED);
    case MH_IMAP_SEARCH_DRAFT:
      return !!(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_DRAFT);
    case MH_IMAP_SEARCH_FLAGGED:
      return !!(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_FLAGGED);
    case MH_IMAP_SEARCH_SEEN:
      return !!(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_SEEN);
    case MH_IMAP_SEARCH_UNANSWERED:
      return !(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_ANSWERED);
    case MH_IMAP_SEARCH_UNDELETED:
      return !(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_DELETED);
    case MH_IMAP_SEARCH_UNDRAFT:
      return !(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_DRAFT);
    case MH_IMAP_SEARCH_UNFLAGGED:
      return !(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_FLAGGED);
    case MH_IMAP_SEARCH_UNSEEN:
      return !(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_SEEN);
    case MH_IMAP_SEARCH_RECENT:
      return mh_store_view_is_recent (v, i);
    case MH_IMAP_SEARCH_NEW: /* RECENT UNSEEN */
      return mh_store_view_is_recent (v, i)
             && !(mh_store_view_get_flags (v, i) & MH_STORE_FLAG_SEEN);
    case MH_IMAP_SEARCH_OLD: /* NOT RECENT */
      return !mh_store_view_is_recent (v, i);
    case MH_IMAP_SEARCH_KEYWORD:
    case MH_IMAP_SEARCH_UNKEYWORD:
      {
        gboolean has = has_keyword (m, n->keyword)
                       || (n->fwd && (mh_store_view_get_flags (v, i)
                                      & MH_STORE_FLAG_FORWARDED));
        return n->type == MH_IMAP_SEARCH_KEYWORD ? has : !has;
      }
    case MH_IMAP_SEARCH_MODSEQ:
      return mh_store_view_get_modseq (v, i) >= (guint64) n->num;
    case MH_IMAP_SEARCH_LARGER:
    case MH_IMAP_SEARCH_SMALLER:
      {
        /* From the view: no lookup (the record it was built from). */
        guint64 sz = mh_store_view_get_rfc822_size (m->s->view, m->index);
        return n->type == MH_IMAP_SEARCH_LARGER ? sz > (guint64) n->num
                                                 : sz < (guint64) n->num;
      }
    case MH_IMAP_SEARCH_OLDER:
    case MH_IMAP_SEARCH_YOUNGER:
      {
        gint64 t = mh_store_view_get_internal_date (m->s->view, m->index);
        return n->type == MH_IMAP_SEARCH_OLDER ? t <= m->s->now - n->num
                                                : t >= m->s->now - n->num;
      }
    case MH_IMAP_SEARCH_BEFORE:
    case MH_IMAP_SEARCH_ON:
    case MH_IMAP_SEARCH_SINCE:
    case MH_IMAP_SEARCH_SAVEDBEFORE:
    case MH_IMAP_SEARCH_SAVEDON:
    case MH_IMAP_SEARCH_SAVEDSINCE:
      {
        /* From the view (see "Save date" above). */
        gint64 t = mh_store_view_get_internal_date (m->s->view, m->index);
        if (n->type == MH_IMAP_SEARCH_SAVEDBEFORE
            || n->type == MH_IMAP_SEARCH_SAVEDON
            || n->type == MH_IMAP_SEARCH_SAVEDSINCE)
          {
            gint64 saved = mh_store_view_get_save_date (m->s->view, m->index);
            if (saved > 0)
              t = saved;
          }
        switch (n->type)
          {
          case MH_IMAP_SEARCH_BEFORE:
          case MH_IMAP_SEARCH_SAVEDBEFORE:
            return t < n->lo;
          case MH_IMAP_SEARCH_ON:
          case MH_IMAP_SEARCH_SAVEDON:
            return t >= n->lo && t < n->hi;
          default:
            return t >= n->lo;
          }
      }
    case MH_IMAP_SEARCH_SENTBEFORE:
    case MH_IMAP_SEARCH_SENTON:
    case MH_IMAP_SEARCH_SENTSINCE:
      {
        gint64 utc, day;
        if (!msg_sent (m, &utc, &day))
          return -1;
        return cmp_day (n->type, day, n->num);
      }
    case MH_IMAP_SEARCH_BCC:
    case MH_IMAP_SEARCH_CC:
    case MH_IMAP_SEARCH_FROM:
    case MH_IMAP_SEARCH_TO:
    case MH_IMAP_SEARCH_SUBJECT:
    case MH_IMAP_SEARCH_HEADER:
      return match_header (m, n);
    case MH_IMAP_SEARCH_BODY:
      if (!msg_body (m))
        return -1;
      return strstr (m->text_body, n->needle) != NULL;
    case MH_IMAP_SEARCH_TEXT:
      if (!msg_body (m))
        return -1;
      return strstr (m->text_hdr, n->needle) != NULL
             || strstr (m->text_body, n->needle) != NULL;
    }
  return 0;
}

/* ---- SORT -------------------------------------------------------------- */

/* The first mailbox of an address header: its local part (RFC 5256
 * addr-mailbox) or, for DISPLAYFROM/DISPLAYTO (RFC 5957), its display
 * name, else its addr-spec. "" when there is none. */
char *
mh_imap__address_sort_key (const char *raw, gboolean display)
{
  gmime_once ();
  if (raw == NULL)
    return g_strdup ("");
  GString *u = g_string_new (NULL);
  for (const char *p = raw; *p; p++)
    if (*p != '\r' && *p != '\n')
      g_string_append_c (u, *p);
  InternetAddressList *l = internet_address_list_parse (NULL, u->str);
  g_string_free (u, TRUE);
  char *out = NULL;
  for (int i = 0; l && out == NULL && i < internet_address_list_length (l);
       i++)
    {
      InternetAddress *ia = internet_address_list_get_address (l, i);
      if (INTERNET_ADDRESS_IS_GROUP (ia))
        {
          InternetAddressList *ml = internet_address_group_get_members (
            INTERNET_ADDRESS_GROUP (ia));
          if (ml == NULL || internet_address_list_length (ml) == 0)
            continue;
          ia = internet_address_list_get_address (ml, 0);
          if (!INTERNET_ADDRESS_IS_MAILBOX (ia))
            continue;
        }
      const char *addr = internet_address_mailbox_get_addr (
        INTERNET_ADDRESS_MAILBOX (ia));
      const char *name = internet_address_get_name (ia);
      if (display && name && *name)
        out = g_strdup (name);
      else if (display)
        out = g_strdup (addr ? addr : "");
      else
        {
          const char *at = addr ? strrchr (addr, '@') : NULL;
          out = addr ? g_strndup (addr, at ? (gsize) (at - addr)
                                           : strlen (addr))
                     : g_strdup ("");
        }
    }
  g_clear_object (&l);
  return out ? out : g_strdup ("");
}

typedef struct
{
  guint index;
  gint64 arrival;
  gint64 date;
  guint64 size;
  char *str[MH_IMAP_SORT_DISPLAYTO + 1]; /* folded string keys */
} SortRow;

static int
sort_cmp (gconstpointer a, gconstpointer b, gpointer data)
{
  const SortRow *x = a, *y = b;
  const GArray *crit = data;
  for (guint c = 0; c < crit->len; c++)
    {
      const MhImapSortCriterion *k = &g_array_index (crit,
                                                     MhImapSortCriterion, c);
      int r = 0;
      switch (k->key)
        {
        case MH_IMAP_SORT_ARRIVAL:
          r = x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
          break;
        case MH_IMAP_SORT_DATE:
          r = x->date < y->date ? -1 : x->date > y->date;
          break;
        case MH_IMAP_SORT_SIZE:
          r = x->size < y->size ? -1 : x->size > y->size;
          break;
        default:
          r = strcmp (x->str[k->key], y->str[k->key]);
          break;
        }
      if (r != 0)
        return k->reverse ? -r : r;
    }
  /* RFC 5256: ties are broken by sequence number, never reversed. */
  return x->index < y->index ? -1 : x->index > y->index;
}

/* First value of a header of a loaded message, "" when absent. */
static char *
first_value (Msg *m, const char *name, gboolean *failed)
{
  g_autoptr (GPtrArray) v = msg_header (m, name);
  if (v == NULL)
    {
      *failed = TRUE;
      return g_strdup ("");
    }
  return g_strdup (v->len ? v->pdata[0] : "");
}

/* Which SORT keys a criteria list needs; FALSE on an unknown key. */
static gboolean
sort_needs (const GArray *criteria, gboolean need[MH_IMAP_SORT_DISPLAYTO + 1],
            GError **error)
{
  for (int k = 0; k <= MH_IMAP_SORT_DISPLAYTO; k++)
    need[k] = FALSE;
  for (guint c = 0; c < criteria->len; c++)
    {
      MhImapSortKey k = g_array_index (criteria, MhImapSortCriterion, c).key;
      if ((guint) k > MH_IMAP_SORT_DISPLAYTO)
        {
          g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX,
                       "unknown sort key %d", (int) k);
          return FALSE;
        }
      need[k] = TRUE;
    }
  return TRUE;
}

/* One message's SORT keys into @row (row->index set by the caller).
 * FALSE when m->error is set. */
static gboolean
sort_row (Msg *m, const gboolean *need, SortRow *row)
{
  MhStoreView *view = m->s->view;
  row->arrival = mh_store_view_get_internal_date (view, row->index);
  row->size = mh_store_view_get_rfc822_size (view, row->index);
  /* An expunged message sorts with empty keys: it is in the input, so
   * it must stay in the answer. Only header keys need a lookup. */
  gboolean need_msg = FALSE;
  for (int k = 0; k <= MH_IMAP_SORT_DISPLAYTO; k++)
    if (need[k] && k != MH_IMAP_SORT_ARRIVAL && k != MH_IMAP_SORT_SIZE)
      need_msg = TRUE;
  MhStoreMessage *msg = need_msg ? msg_meta (m) : NULL;
  gboolean failed = msg == NULL;
  if (msg && need[MH_IMAP_SORT_DATE])
    {
      gint64 day;
      if (!msg_sent (m, &row->date, &day))
        failed = TRUE;
    }
  for (int k = 0; k <= MH_IMAP_SORT_DISPLAYTO; k++)
    {
      if (!need[k] || k == MH_IMAP_SORT_ARRIVAL || k == MH_IMAP_SORT_DATE
          || k == MH_IMAP_SORT_SIZE)
        continue;
      g_autofree char *raw = NULL, *key = NULL;
      if (msg == NULL)
        key = g_strdup ("");
      else if (k == MH_IMAP_SORT_SUBJECT)
        {
          raw = first_value (m, "Subject", &failed);
          key = mh_imap__base_subject (raw, NULL);
        }
      else
        {
          const char *h = (k == MH_IMAP_SORT_CC)   ? "Cc"
                          : (k == MH_IMAP_SORT_TO
                             || k == MH_IMAP_SORT_DISPLAYTO)
                            ? "To"
                            : "From";
          raw = first_value (m, h, &failed);
          key = mh_imap__address_sort_key (
            raw, k == MH_IMAP_SORT_DISPLAYFROM || k == MH_IMAP_SORT_DISPLAYTO);
        }
      row->str[k] = mh_imap__fold (key, -1);
    }
  return m->error == NULL;
}

static void
sort_rows_free (GArray *rows)
{
  if (rows == NULL)
    return;
  for (guint r = 0; r < rows->len; r++)
    for (int k = 0; k <= MH_IMAP_SORT_DISPLAYTO; k++)
      g_free (g_array_index (rows, SortRow, r).str[k]);
  g_array_unref (rows);
}

/* ---- THREAD ------------------------------------------------------------ */

static gint
cmp_guint (gconstpointer a, gconstpointer b)
{
  guint x = *(const guint *) a, y = *(const guint *) b;
  return x < y ? -1 : x > y;
}

static gint
cmp_guint32 (gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return x < y ? -1 : x > y;
}

typedef struct _Cont Cont;
struct _Cont
{
  /* Doubly linked siblings with a last-child pointer: every link and
   * unlink is O(1), so thousands of same-subject roots merging into one
   * thread stay linear. */
  Cont *parent, *child, *last, *next, *prev;
  gboolean dummy;
  guint index;   /* view index (messages only) */
  gint64 date;   /* sent date, UTC */
  char *base;    /* folded base subject */
  gboolean refwd;
};

typedef struct
{
  GPtrArray *all; /* every Cont, owned */
  Cont root;
} Tree;

static Cont *
cont_new (Tree *t)
{
  Cont *c = g_new0 (Cont, 1);
  c->dummy = TRUE;
  g_ptr_array_add (t->all, c);
  return c;
}

static void
cont_free (gpointer p)
{
  Cont *c = p;
  g_free (c->base);
  g_free (c);
}

static void
unlink_cont (Cont *c)
{
  Cont *p = c->parent;
  if (p == NULL)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    p->child = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    p->last = c->prev;
  c->parent = c->next = c->prev = NULL;
}

static void
append_child (Cont *p, Cont *c)
{
  c->parent = p;
  c->next = NULL;
  c->prev = p->last;
  if (p->last)
    p->last->next = c;
  else
    p->child = c;
  p->last = c;
}

/* Puts @c (unlinked) just before @pos among @pos's siblings. */
static void
insert_before (Cont *pos, Cont *c)
{
  Cont *p = pos->parent;
  c->parent = p;
  c->next = pos;
  c->prev = pos->prev;
  if (pos->prev)
    pos->prev->next = c;
  else
    p->child = c;
  pos->prev = c;
}

/* TRUE if @a is @b or one of its descendants. */
static gboolean
is_descendant (Cont *a, Cont *b)
{
  for (Cont *x = a; x; x = x->parent)
    if (x == b)
      return TRUE;
  return FALSE;
}

/* The first message of a (possibly dummy) node, for its date/subject. */
static Cont *
first_msg (Cont *c)
{
  while (c && c->dummy)
    c = c->child;
  return c;
}

static int
cont_cmp (const void *a, const void *b)
{
  Cont *x = first_msg (*(Cont *const *) a), *y = first_msg (*(Cont *const *) b);
  if (x == NULL || y == NULL)
    return (x != NULL) - (y != NULL);
  if (x->date != y->date)
    return x->date < y->date ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static void
sort_children (Cont *p)
{
  guint n = 0;
  for (Cont *c = p->child; c; c = c->next)
    n++;
  if (n < 2)
    return;
  Cont **v = g_new (Cont *, n);
  n = 0;
  for (Cont *c = p->child; c; c = c->next)
    v[n++] = c;
  qsort (v, n, sizeof *v, cont_cmp);
  p->child = v[0];
  p->last = v[n - 1];
  for (guint i = 0; i < n; i++)
    {
      v[i]->prev = i > 0 ? v[i - 1] : NULL;
      v[i]->next = i + 1 < n ? v[i + 1] : NULL;
    }
  g_free (v);
}

/* Nodes under @root in post-order (children before parents). */
static GPtrArray *
post_order (Cont *root)
{
  GPtrArray *out = g_ptr_array_new ();
  GPtrArray *st = g_ptr_array_new ();
  /* Reverse of a pre-order that visits the last child first. */
  for (Cont *c = root->child; c; c = c->next)
    g_ptr_array_add (st, c);
  while (st->len)
    {
      Cont *c = g_ptr_array_steal_index (st, st->len - 1);
      g_ptr_array_add (out, c);
      for (Cont *k = c->child; k; k = k->next)
        g_ptr_array_add (st, k);
    }
  g_ptr_array_unref (st);
  /* out is parent-before-children; reversing gives children first. */
  for (guint i = 0, j = out->len ? out->len - 1 : 0; i < j; i++, j--)
    {
      gpointer t = out->pdata[i];
      out->pdata[i] = out->pdata[j];
      out->pdata[j] = t;
    }
  return out;
}

/* RFC 5256 3 step (3). */
static void
prune (Cont *root)
{
  g_autoptr (GPtrArray) order = post_order (root);
  for (guint i = 0; i < order->len; i++)
    {
      Cont *c = order->pdata[i];
      if (!c->dummy)
        continue;
      Cont *p = c->parent;
      if (c->child == NULL)
        {
          unlink_cont (c);
          continue;
        }
      /* Children of the root only if there is just one. */
      if (p == root && c->child->next != NULL)
        continue;
      /* Splice the children in where the dummy was, in order. */
      while (c->child)
        {
          Cont *k = c->child;
          unlink_cont (k);
          insert_before (c, k);
        }
      unlink_cont (c);
    }
}

/* RFC 5256 3 step (5): group the threads by base subject. */
static void
gather_subjects (Tree *t)
{
  Cont *root = &t->root;
  g_autoptr (GHashTable) subj = g_hash_table_new (g_str_hash, g_str_equal);
  for (Cont *c = root->child; c; c = c->next)
    {
      Cont *f = c->dummy ? c->child : c;
      if (f == NULL || f->base == NULL || *f->base == '\0')
        continue;
      Cont *old = g_hash_table_lookup (subj, f->base);
      if (old == NULL
          || (!old->dummy && (c->dummy || (old->refwd && !c->refwd))))
        g_hash_table_insert (subj, f->base, c);
    }
  /* (C) on a snapshot: merging moves nodes out of the root list. */
  g_autoptr (GPtrArray) snap = g_ptr_array_new ();
  for (Cont *c = root->child; c; c = c->next)
    g_ptr_array_add (snap, c);
  for (guint i = 0; i < snap->len; i++)
    {
      Cont *c = snap->pdata[i];
      if (c->parent != root)
        continue;
      Cont *f = c->dummy ? c->child : c;
      if (f == NULL || f->base == NULL || *f->base == '\0')
        continue;
      Cont *old = g_hash_table_lookup (subj, f->base);
      if (old == NULL || old == c)
        continue;
      if (old->dummy && c->dummy)
        {
          while (c->child)
            {
              Cont *k = c->child;
              unlink_cont (k);
              append_child (old, k);
            }
          unlink_cont (c);
        }
      else if (old->dummy)
        {
          unlink_cont (c);
          append_child (old, c);
        }
      else if (!c->dummy && c->refwd && !old->refwd)
        {
          unlink_cont (c);
          append_child (old, c);
        }
      else
        {
          /* A new dummy in the table message's place holds both. */
          Cont *d = cont_new (t);
          insert_before (old, d);
          unlink_cont (old);
          append_child (d, old);
          unlink_cont (c);
          append_child (d, c);
          g_hash_table_insert (subj, f->base, d);
        }
    }
}

static void
format_threads (GString *out, Cont *root, MhStoreView *view, gboolean uid)
{
  GPtrArray *st = g_ptr_array_new ();
  for (Cont *top = root->child; top; top = top->next)
    {
      g_string_append_c (out, '(');
      Cont *n = top;
      for (;;)
        {
          gboolean first = TRUE;
          while (n)
            {
              if (!n->dummy)
                {
                  if (!first)
                    g_string_append_c (out, ' ');
                  g_string_append_printf (
                    out, "%u",
                    uid ? mh_store_view_get_uid (view, n->index)
                        : n->index + 1);
                  first = FALSE;
                }
              if (n->child == NULL)
                break;
              if (n->child->next == NULL && !n->dummy)
                {
                  n = n->child;
                  continue;
                }
              /* Several children (or a dummy's): each in parentheses. */
              if (!first)
                g_string_append_c (out, ' ');
              g_ptr_array_add (st, n->child->next);
              g_string_append_c (out, '(');
              n = n->child;
              first = TRUE;
            }
          g_string_append_c (out, ')');
          n = NULL;
          while (st->len)
            {
              Cont *sib = st->pdata[st->len - 1];
              if (sib)
                {
                  st->pdata[st->len - 1] = sib->next;
                  g_string_append_c (out, '(');
                  n = sib;
                  break;
                }
              g_ptr_array_set_size (st, st->len - 1);
              g_string_append_c (out, ')');
            }
          if (n == NULL)
            break;
        }
    }
  g_ptr_array_unref (st);
}

/* THREAD's state while messages are added one by one (resumable). */
typedef struct
{
  MhImapThreadAlgorithm algo;
  Tree t;
  GHashTable *ids; /* Message-ID -> Cont (REFERENCES) */
} Threader;

static Threader *
threader_new (MhImapThreadAlgorithm algo)
{
  Threader *th = g_new0 (Threader, 1);
  th->algo = algo;
  th->t.all = g_ptr_array_new_with_free_func (cont_free);
  th->ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return th;
}

static void
threader_free (Threader *th)
{
  if (th == NULL)
    return;
  g_hash_table_unref (th->ids);
  g_ptr_array_unref (th->t.all);
  g_free (th);
}

/* RFC 5256 3 step (1) for one message (view index m->index; messages
 * come in ascending order, so the first of duplicate Message-IDs keeps
 * it). FALSE when m->error is set. */
static gboolean
thread_add (Threader *th, Msg *m)
{
  Tree *t = &th->t;
  gboolean failed = FALSE;
  g_autofree char *subj = NULL, *mid = NULL, *refs = NULL, *irt = NULL;
  Cont *c = NULL;
  gint64 date = 0, day;
  if (msg_meta (m) && msg_sent (m, &date, &day))
    {
      subj = first_value (m, "Subject", &failed);
      if (th->algo == MH_IMAP_THREAD_REFERENCES)
        {
          mid = first_value (m, "Message-ID", &failed);
          refs = first_value (m, "References", &failed);
          irt = first_value (m, "In-Reply-To", &failed);
        }
    }
  if (m->error)
    return FALSE;
  /* (1) Containers by Message-ID (REFERENCES only). */
  g_autofree char *id = mid ? g_mime_utils_decode_message_id (mid) : NULL;
  if (id && *id)
    {
      c = g_hash_table_lookup (th->ids, id);
      if (c && !c->dummy)
        c = NULL; /* a duplicate: treated as having a unique ID */
    }
  if (c == NULL)
    {
      c = cont_new (t);
      if (id && *id && !g_hash_table_contains (th->ids, id))
        g_hash_table_insert (th->ids, g_strdup (id), c);
    }
  c->dummy = FALSE;
  c->index = m->index;
  c->date = date;
  g_autofree char *base = mh_imap__base_subject (subj ? subj : "",
                                                 &c->refwd);
  c->base = mh_imap__fold (base, -1);
  if (th->algo != MH_IMAP_THREAD_REFERENCES)
    return TRUE;
  /* (1)(A) link the references as parent/child in order. */
  GMimeReferences *rl = refs ? g_mime_references_parse (NULL, refs) : NULL;
  if (rl == NULL || g_mime_references_length (rl) == 0)
    {
      /* No valid References: the first ID of In-Reply-To. */
      if (rl)
        g_mime_references_free (rl);
      rl = irt ? g_mime_references_parse (NULL, irt) : NULL;
      if (rl && g_mime_references_length (rl) > 1)
        {
          GMimeReferences *one = g_mime_references_new ();
          g_mime_references_append (one,
                                    g_mime_references_get_message_id (rl, 0));
          g_mime_references_free (rl);
          rl = one;
        }
    }
  Cont *prev = NULL;
  int nrefs = rl ? g_mime_references_length (rl) : 0;
  for (int i = 0; i < nrefs; i++)
    {
      const char *rid = g_mime_references_get_message_id (rl, i);
      if (rid == NULL || *rid == '\0')
        continue;
      Cont *rc = g_hash_table_lookup (th->ids, rid);
      if (rc == NULL)
        {
          rc = cont_new (t);
          g_hash_table_insert (th->ids, g_strdup (rid), rc);
        }
      /* An existing link stays; no loops (only a node with children can
       * be an ancestor of @prev: the test skips the walk up a long reply
       * chain, which made it quadratic). */
      if (prev && rc->parent == NULL && rc != c && prev != rc
          && (rc->child == NULL || !is_descendant (prev, rc)))
        append_child (prev, rc);
      prev = rc;
    }
  if (rl)
    g_mime_references_free (rl);
  /* (1)(B) the last reference becomes the parent (or none). */
  unlink_cont (c);
  if (prev && prev != c && (c->child == NULL || !is_descendant (prev, c)))
    append_child (prev, c);
  return TRUE;
}

/* Steps (2)-(6) once every message was added, then the thread list. */
static void
thread_finish (Threader *th, MhStoreView *view, gboolean uid, GString *out)
{
  Tree *t = &th->t;
  /* (2) the root set. */
  for (guint i = 0; i < t->all->len; i++)
    {
      Cont *c = t->all->pdata[i];
      if (c->parent == NULL)
        append_child (&t->root, c);
    }
  if (th->algo == MH_IMAP_THREAD_ORDEREDSUBJECT)
    {
      /* RFC 5256 ORDEREDSUBJECT: by base subject, then sent date; the
       * first of each subject is the parent of the others; threads in
       * the order of their first message's date. */
      g_autoptr (GPtrArray) v = g_ptr_array_new ();
      for (Cont *c = t->root.child; c; c = c->next)
        g_ptr_array_add (v, c);
      t->root.child = t->root.last = NULL;
      g_autoptr (GHashTable) first = g_hash_table_new (g_str_hash,
                                                       g_str_equal);
      qsort (v->pdata, v->len, sizeof (gpointer), cont_cmp);
      for (guint i = 0; i < v->len; i++)
        {
          Cont *c = v->pdata[i];
          c->parent = c->next = c->prev = NULL;
          Cont *p = g_hash_table_lookup (first, c->base);
          if (p)
            append_child (p, c);
          else
            {
              g_hash_table_insert (first, c->base, c);
              append_child (&t->root, c);
            }
        }
    }
  else
    {
      prune (&t->root); /* (3) */
      /* (4) by sent date; a dummy by its earliest child. */
      for (Cont *c = t->root.child; c; c = c->next)
        if (c->dummy)
          sort_children (c);
      sort_children (&t->root);
      gather_subjects (t); /* (5) */
      /* (6) every sibling list by sent date, deepest first so a dummy
       * sorts by its (already sorted) first child. */
      g_autoptr (GPtrArray) order = post_order (&t->root);
      for (guint i = 0; i < order->len; i++)
        sort_children (order->pdata[i]);
      sort_children (&t->root);
    }
  format_threads (out, &t->root, view, uid);
}

/* ---- Resumable runs ----------------------------------------------------- */

/* A SEARCH, SORT or THREAD as a job that runs in slices
 * (mh_imap__search_job_step()), so a long one gives its worker thread
 * back between slices: first the matching set (a scan of view indices),
 * then, for SORT, each match's sort keys, for THREAD each match's
 * threading fields; the sort itself and the threading steps (2)-(6)
 * run at the end of the last slice (CPU only, no store lookups: about
 * 0.1 s for 100,000 messages). Everything the job needs is its own:
 * a reference to the view, copies of the folder name and sort criteria,
 * the compiled program (the "$" set resolved when it was made), and one
 * MhStoreReader snapshot kept across slices (one LMDB read txn; the
 * index env is MDB_NOTLS, so a txn may move between worker threads). */
typedef enum
{
  JOB_MATCH,
  JOB_SORT,
  JOB_THREAD,
  JOB_DONE,
} JobPhase;

struct _MhImapSearchJob
{
  Search s;
  char *folder;
  Node *prog; /* NULL: every message matches */
  JobPhase phase;
  guint next; /* MATCH: next view index; SORT, THREAD: next of res */
  GArray *res; /* guint view indices: the matches, then sorted */
  gboolean sort, thread;
  GArray *criteria; /* SORT */
  gboolean need[MH_IMAP_SORT_DISPLAYTO + 1];
  GArray *rows; /* SortRow, SORT */
  Threader *th; /* THREAD */
  gboolean uid;
  GString *thread_text; /* THREAD: the thread list once done */
};

static MhImapSearchJob *
job_alloc (MhStore *store, const char *folder, MhStoreView *view)
{
  MhImapSearchJob *j = g_new0 (MhImapSearchJob, 1);
  j->folder = g_strdup (folder);
  j->s.store = mh_store_ref (store);
  j->s.folder = j->folder;
  j->s.view = mh_store_view_ref (view);
  j->s.count = mh_store_view_get_count (view);
  j->s.now = g_get_real_time () / G_USEC_PER_SEC;
  j->s.scratch = g_string_sized_new (256);
  j->res = g_array_new (FALSE, FALSE, sizeof (guint));
  return j;
}

void
mh_imap__search_job_free (MhImapSearchJob *j)
{
  if (j == NULL)
    return;
  g_clear_pointer (&j->s.reader, mh_store_reader_unref);
  g_string_free (j->s.scratch, TRUE);
  mh_store_view_unref (j->s.view);
  mh_store_unref (j->s.store);
  node_free (j->prog);
  g_array_unref (j->res);
  if (j->criteria)
    g_array_unref (j->criteria);
  sort_rows_free (j->rows);
  threader_free (j->th);
  if (j->thread_text)
    g_string_free (j->thread_text, TRUE);
  g_free (j->folder);
  g_free (j);
}

MhImapSearchJob *
mh_imap__search_job_new (MhStore *store, const char *folder,
                         MhStoreView *view, const MhImapSearchKey *key,
                         const GArray *saved_uids, GError **error)
{
  g_return_val_if_fail (store != NULL && view != NULL, NULL);
  MhImapSearchJob *j = job_alloc (store, folder, view);
  if (key != NULL)
    {
      /* "$" is resolved here, once: a later SEARCHRES save in the same
       * session cannot change what this program means. */
      j->s.saved_uids = saved_uids;
      j->prog = compile (&j->s, key, 0, error);
      j->s.saved_uids = NULL;
      if (j->prog == NULL)
        {
          mh_imap__search_job_free (j);
          return NULL;
        }
    }
  j->phase = JOB_MATCH;
  return j;
}

gboolean
mh_imap__search_job_sort (MhImapSearchJob *j, const GArray *criteria,
                          GError **error)
{
  g_return_val_if_fail (j != NULL && criteria != NULL, FALSE);
  g_return_val_if_fail (!j->sort && !j->thread, FALSE);
  if (!sort_needs (criteria, j->need, error))
    return FALSE;
  j->sort = TRUE;
  j->criteria = g_array_copy ((GArray *) criteria);
  return TRUE;
}

gboolean
mh_imap__search_job_thread (MhImapSearchJob *j, MhImapThreadAlgorithm algo,
                            gboolean uid, GError **error)
{
  g_return_val_if_fail (j != NULL, FALSE);
  g_return_val_if_fail (!j->sort && !j->thread, FALSE);
  if (algo != MH_IMAP_THREAD_ORDEREDSUBJECT
      && algo != MH_IMAP_THREAD_REFERENCES)
    {
      g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX,
                   "unknown THREAD algorithm %d", (int) algo);
      return FALSE;
    }
  gmime_once ();
  j->thread = TRUE;
  j->uid = uid;
  j->th = threader_new (algo);
  return TRUE;
}

/* The phase after matching (or after the input indices were given). */
static void
job_after_match (MhImapSearchJob *j)
{
  j->next = 0;
  if (j->sort)
    {
      j->phase = JOB_SORT;
      j->rows = g_array_sized_new (FALSE, TRUE, sizeof (SortRow),
                                   j->res->len);
    }
  else if (j->thread)
    j->phase = JOB_THREAD;
  else
    j->phase = JOB_DONE;
}

/* The last slice's CPU-only ending: sort, or thread and format. */
static void
job_finish (MhImapSearchJob *j)
{
  g_clear_pointer (&j->s.reader, mh_store_reader_unref);
  if (j->phase == JOB_SORT)
    {
      g_array_sort_with_data (j->rows, sort_cmp, j->criteria);
      for (guint r = 0; r < j->rows->len; r++)
        g_array_index (j->res, guint, r) = g_array_index (j->rows, SortRow,
                                                          r).index;
      g_clear_pointer (&j->rows, sort_rows_free);
    }
  else if (j->phase == JOB_THREAD)
    {
      j->thread_text = g_string_new (NULL);
      thread_finish (j->th, j->s.view, j->uid, j->thread_text);
      g_clear_pointer (&j->th, threader_free);
    }
  j->phase = JOB_DONE;
}

int
mh_imap__search_job_step (MhImapSearchJob *j, guint max_msgs, gint64 max_us,
                          GError **error)
{
  g_return_val_if_fail (j != NULL, -1);
  gint64 start = max_us > 0 ? g_get_monotonic_time () : 0;
  Msg m = { .s = &j->s };
  guint done = 0;
  while (j->phase != JOB_DONE)
    {
      gboolean last = j->phase == JOB_MATCH ? j->next >= j->s.count
                                            : j->next >= j->res->len;
      if (last)
        {
          if (j->phase == JOB_MATCH)
            job_after_match (j);
          else
            job_finish (j);
          continue;
        }
      /* The slice's bounds; the clock is read every 16 messages. */
      if ((max_msgs > 0 && done >= max_msgs)
          || (max_us > 0 && done > 0 && done % 16 == 0
              && g_get_monotonic_time () - start >= max_us))
        return 0;
      done++;
      gboolean ok = TRUE;
      if (j->phase == JOB_MATCH)
        {
          m.index = j->next++;
          m.uid = mh_store_view_get_uid (j->s.view, m.index);
          if (j->prog == NULL || eval (j->prog, &m) > 0)
            g_array_append_val (j->res, m.index);
          ok = m.error == NULL;
        }
      else
        {
          guint ix = g_array_index (j->res, guint, j->next);
          j->next++;
          if (ix >= j->s.count)
            {
              g_set_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX,
                           "message index %u is not in the view", ix);
              return -1;
            }
          m.index = ix;
          m.uid = mh_store_view_get_uid (j->s.view, ix);
          if (j->phase == JOB_SORT)
            {
              SortRow row = { .index = ix };
              ok = sort_row (&m, j->need, &row);
              g_array_append_val (j->rows, row);
            }
          else
            ok = thread_add (j->th, &m);
        }
      msg_clear (&m);
      if (!ok)
        {
          g_propagate_error (error, m.error);
          j->phase = JOB_DONE;
          g_clear_pointer (&j->s.reader, mh_store_reader_unref);
          return -1;
        }
    }
  return 1;
}

GArray *
mh_imap__search_job_get_result (MhImapSearchJob *j)
{
  g_return_val_if_fail (j != NULL && j->phase == JOB_DONE, NULL);
  return j->res;
}

const char *
mh_imap__search_job_get_threads (MhImapSearchJob *j)
{
  g_return_val_if_fail (j != NULL && j->phase == JOB_DONE, NULL);
  return j->thread_text ? j->thread_text->str : "";
}

/* A job over given view indices instead of a search (SORT and THREAD of
 * a result computed elsewhere). */
static MhImapSearchJob *
job_over (MhStore *store, const char *folder, MhStoreView *view,
          const GArray *indices)
{
  MhImapSearchJob *j = job_alloc (store, folder, view);
  g_array_append_vals (j->res, indices->data, indices->len);
  return j;
}

GArray *
mh_imap__search (MhStore *store, const char *folder, MhStoreView *view,
                 const MhImapSearchKey *key, const GArray *saved_uids,
                 GError **error)
{
  g_return_val_if_fail (store != NULL && view != NULL, NULL);
  MhImapSearchJob *j = mh_imap__search_job_new (store, folder, view, key,
                                                saved_uids, error);
  if (j == NULL)
    return NULL;
  GArray *res = NULL;
  if (mh_imap__search_job_step (j, 0, 0, error) > 0)
    res = g_array_ref (j->res);
  mh_imap__search_job_free (j);
  return res;
}

gboolean
mh_imap__sort (MhStore *store, const char *folder, MhStoreView *view,
               const GArray *criteria, GArray *indices, GError **error)
{
  g_return_val_if_fail (criteria != NULL && indices != NULL, FALSE);
  MhImapSearchJob *j = job_over (store, folder, view, indices);
  gboolean ok = mh_imap__search_job_sort (j, criteria, error);
  if (ok)
    {
      job_after_match (j);
      ok = mh_imap__search_job_step (j, 0, 0, error) > 0;
    }
  if (ok)
    memcpy (indices->data, j->res->data, indices->len * sizeof (guint));
  mh_imap__search_job_free (j);
  return ok;
}

gboolean
mh_imap__thread (MhStore *store, const char *folder, MhStoreView *view,
                 MhImapThreadAlgorithm algo, const GArray *indices,
                 gboolean uid, GString *out, GError **error)
{
  g_return_val_if_fail (indices != NULL && out != NULL, FALSE);
  MhImapSearchJob *j = job_over (store, folder, view, indices);
  /* Sequence order: the first of duplicate Message-IDs keeps it. */
  g_array_sort (j->res, cmp_guint);
  gboolean ok = mh_imap__search_job_thread (j, algo, uid, error);
  if (ok)
    {
      job_after_match (j);
      ok = mh_imap__search_job_step (j, 0, 0, error) > 0;
    }
  if (ok)
    g_string_append (out, mh_imap__search_job_get_threads (j));
  mh_imap__search_job_free (j);
  return ok;
}

/* ---- Responses ---------------------------------------------------------- */

gboolean
mh_imap__search_uses_modseq (const MhImapSearchKey *key)
{
  if (key == NULL)
    return FALSE;
  /* Bounded by the parser's nesting limit. */
  if (key->type == MH_IMAP_SEARCH_MODSEQ)
    return TRUE;
  for (guint i = 0; key->children && i < key->children->len; i++)
    if (mh_imap__search_uses_modseq (g_ptr_array_index (key->children, i)))
      return TRUE;
  return FALSE;
}

static guint32
number_of (MhStoreView *view, guint index, gboolean uid)
{
  return uid ? mh_store_view_get_uid (view, index) : index + 1;
}

/* "1:3,7" from numbers in the given order: a run is only merged when it
 * climbs by one, so an ordered result (SORT) keeps its order. */
static void
append_set (GString *out, const guint32 *v, guint n)
{
  for (guint i = 0; i < n;)
    {
      guint j = i;
      while (j + 1 < n && v[j + 1] == v[j] + 1)
        j++;
      if (i > 0)
        g_string_append_c (out, ',');
      if (j > i)
        g_string_append_printf (out, "%u:%u", v[i], v[j]);
      else
        g_string_append_printf (out, "%u", v[i]);
      i = j + 1;
    }
}

void
mh_imap__search_format (GString *out, const MhImapCommand *cmd,
                        MhStoreView *view, const GArray *indices,
                        gboolean rev2)
{
  gboolean sort = cmd->kind == MH_IMAP_CMD_SORT;
  gboolean modseq = mh_imap__search_uses_modseq (cmd->search);
  guint n = indices ? indices->len : 0;
  g_autofree guint32 *nums = g_new (guint32, n + 1);
  guint64 hi = 0;
  for (guint i = 0; i < n; i++)
    {
      guint ix = g_array_index (indices, guint, i);
      nums[i] = number_of (view, ix, cmd->uid);
      hi = MAX (hi, mh_store_view_get_modseq (view, ix));
    }
  /* IMAP4rev2 has only ESEARCH (RFC 9051 7.3.4); SORT keeps "* SORT"
   * unless the client asked for ESORT-style RETURN. */
  gboolean es = cmd->esearch || (rev2 && !sort);
  if (!es)
    {
      g_string_append (out, sort ? "* SORT" : "* SEARCH");
      for (guint i = 0; i < n; i++)
        g_string_append_printf (out, " %u", nums[i]);
      /* RFC 7162 3.1.5: the highest MODSEQ of what was found. */
      if (modseq && n > 0)
        g_string_append_printf (out, " (MODSEQ %" G_GUINT64_FORMAT ")", hi);
      g_string_append (out, "\r\n");
      return;
    }
  MhImapSearchReturn ret = cmd->search_return;
  if ((ret & ~MH_IMAP_RETURN_SAVE) == 0)
    {
      /* RETURN (SAVE) alone answers nothing (RFC 5182 2.4); no RETURN
       * at all (IMAP4rev2) or RETURN () means ALL. */
      if (ret == MH_IMAP_RETURN_SAVE)
        return;
      ret = MH_IMAP_RETURN_ALL;
    }
  g_string_append_printf (out, "* ESEARCH (TAG \"%s\")", cmd->tag);
  if (cmd->uid)
    g_string_append (out, " UID");
  if (n > 0)
    {
      guint32 mn = nums[0], mx = nums[0];
      guint imn = 0, imx = 0;
      for (guint i = 1; i < n; i++)
        {
          if (sort)
            break; /* SORT: MIN/MAX are first and last in sort order */
          if (nums[i] < mn)
            mn = nums[i], imn = i;
          if (nums[i] > mx)
            mx = nums[i], imx = i;
        }
      if (sort)
        {
          imx = n - 1;
          mx = nums[imx];
        }
      if (ret & MH_IMAP_RETURN_MIN)
        g_string_append_printf (out, " MIN %u", mn);
      if (ret & MH_IMAP_RETURN_MAX)
        g_string_append_printf (out, " MAX %u", mx);
      if (ret & MH_IMAP_RETURN_COUNT)
        g_string_append_printf (out, " COUNT %u", n);
      if (ret & MH_IMAP_RETURN_ALL)
        {
          g_string_append (out, " ALL ");
          append_set (out, nums, n);
        }
      if (modseq)
        {
          /* With only MIN/MAX, the MODSEQ of the messages returned
           * (RFC 7162 3.1.5). */
          if (!(ret & (MH_IMAP_RETURN_ALL | MH_IMAP_RETURN_COUNT)))
            {
              guint64 a = 0;
              if (ret & MH_IMAP_RETURN_MIN)
                a = mh_store_view_get_modseq (
                  view, g_array_index (indices, guint, imn));
              if (ret & MH_IMAP_RETURN_MAX)
                a = MAX (a, mh_store_view_get_modseq (
                              view, g_array_index (indices, guint, imx)));
              hi = a;
            }
          g_string_append_printf (out, " MODSEQ %" G_GUINT64_FORMAT, hi);
        }
    }
  else if (ret & MH_IMAP_RETURN_COUNT)
    g_string_append (out, " COUNT 0"); /* RFC 4731 3.1 */
  g_string_append (out, "\r\n");
}

void
mh_imap__search_save (GArray **saved_uids, MhStoreView *view,
                      const GArray *indices, MhImapSearchReturn ret)
{
  g_return_if_fail (saved_uids != NULL);
  GArray *a = g_array_new (FALSE, FALSE, sizeof (guint32));
  guint n = indices ? indices->len : 0;
  gboolean all = (ret & (MH_IMAP_RETURN_ALL | MH_IMAP_RETURN_COUNT))
                 || !(ret & (MH_IMAP_RETURN_MIN | MH_IMAP_RETURN_MAX));
  if (n > 0)
    {
      g_autofree guint32 *u = g_new (guint32, n);
      for (guint i = 0; i < n; i++)
        u[i] = mh_store_view_get_uid (view, g_array_index (indices, guint, i));
      /* SORT results come in sort order; "$" is a set. */
      guint32 mn = u[0], mx = u[0];
      for (guint i = 1; i < n; i++)
        {
          mn = MIN (mn, u[i]);
          mx = MAX (mx, u[i]);
        }
      if (all)
        {
          g_array_append_vals (a, u, n);
          g_array_sort (a, cmp_guint32);
        }
      else
        {
          /* RFC 5182 2.4: with only MIN and/or MAX, "$" holds those. */
          if (ret & MH_IMAP_RETURN_MIN)
            g_array_append_val (a, mn);
          if ((ret & MH_IMAP_RETURN_MAX) && !(mn == mx
                                              && (ret & MH_IMAP_RETURN_MIN)))
            g_array_append_val (a, mx);
        }
    }
  if (*saved_uids)
    g_array_unref (*saved_uids);
  *saved_uids = a;
}

/* ---- The SEARCH, SORT and THREAD command ---------------------------- */

/* The handler's slice: it returns MH_IMAP_RUN_MORE after this much work
 * and imap.c queues it again behind the other sessions' jobs. Tests
 * shrink it with mh_imap__search_set_slice() (the only mutable static
 * here; the unit tests alone call it). */
#define SEARCH_SLICE_US 5000
static guint slice_msgs = 0;
static gint64 slice_us = SEARCH_SLICE_US;

void
mh_imap__search_set_slice (guint max_msgs, gint64 max_us)
{
  slice_msgs = max_msgs;
  slice_us = max_us;
}

/* A command's progress in s->cursor, tied to the command pointer so a
 * stale cursor is never resumed by another command. */
typedef struct
{
  const MhImapCommand *cmd;
  MhImapSearchJob *job;
} SearchCursor;

static void
search_cursor_free (gpointer p)
{
  SearchCursor *c = p;
  if (c == NULL)
    return;
  mh_imap__search_job_free (c->job);
  g_free (c);
}

static void
search_cursor_clear (MhImapSession *s)
{
  if (s->cursor != NULL && s->cursor_free != NULL)
    s->cursor_free (s->cursor);
  s->cursor = NULL;
  s->cursor_free = NULL;
}

/* A SEARCH/SORT/THREAD that failed: "$" is emptied when the command
 * asked to save (RFC 5182 2.1), then BAD for a bad program, NO for a
 * store failure. */
static MhImapRun
search_failed (MhImapSession *s, const MhImapCommand *cmd, GString *out,
               const GError *error)
{
  search_cursor_clear (s);
  if ((cmd->search_return & MH_IMAP_RETURN_SAVE) != 0)
    {
      g_clear_pointer (&s->saved_uids, g_array_unref);
      s->saved_uids = g_array_new (FALSE, FALSE, sizeof (guint32));
    }
  if (error != NULL && error->domain == MH_IMAP_ERROR)
    mh_imap__tagged (out, cmd, "BAD", NULL, error->message);
  else
    mh_imap__tagged_store_error (out, cmd, error);
  return MH_IMAP_RUN_DONE;
}

/* The first call: checks, then a job in s->cursor. NULL when the
 * command was answered already. */
static SearchCursor *
search_start (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  if (!mh_imap__require_selected (s, cmd, out))
    return NULL;
  if (cmd->search_charset != NULL
      && g_ascii_strcasecmp (cmd->search_charset, "UTF-8") != 0
      && g_ascii_strcasecmp (cmd->search_charset, "US-ASCII") != 0)
    {
      /* RFC 9051 6.4.4: an unknown charset gets NO [BADCHARSET (list)]. */
      mh_imap__tagged (out, cmd, "NO", "BADCHARSET (US-ASCII UTF-8)",
                       "Unsupported charset");
      return NULL;
    }
  if (cmd->search == NULL)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "Missing search criteria");
      return NULL;
    }
  if (mh_imap__search_uses_modseq (cmd->search))
    s->enabled |= MH_IMAP_ENABLED_CONDSTORE; /* RFC 7162 3.1 */
  MhImapSearchJob *job = mh_imap__search_job_new (
    s->store, s->folder, s->view, cmd->search, s->saved_uids, &error);
  if (job != NULL
      && ((cmd->kind == MH_IMAP_CMD_SORT
           && !mh_imap__search_job_sort (job, cmd->sort, &error))
          || (cmd->kind == MH_IMAP_CMD_THREAD
              && !mh_imap__search_job_thread (job, cmd->thread, cmd->uid,
                                              &error))))
    g_clear_pointer (&job, mh_imap__search_job_free);
  if (job == NULL)
    {
      search_failed (s, cmd, out, error);
      return NULL;
    }
  SearchCursor *c = g_new0 (SearchCursor, 1);
  c->cmd = cmd;
  c->job = job;
  s->cursor = c;
  s->cursor_free = search_cursor_free;
  return c;
}

MhImapRun
mh_imap__cmd_search (MhImapSession *s, const MhImapCommand *cmd,
                     GString *out)
{
  g_autoptr (GError) error = NULL;
  const char *what = cmd->kind == MH_IMAP_CMD_SORT     ? "Sort"
                     : cmd->kind == MH_IMAP_CMD_THREAD ? "Thread"
                                                       : "Search";
  SearchCursor *c = s->cursor;
  if (c == NULL || s->cursor_free != search_cursor_free || c->cmd != cmd)
    {
      search_cursor_clear (s);
      c = search_start (s, cmd, out);
      if (c == NULL)
        return MH_IMAP_RUN_DONE;
    }
  /* One slice; the view, the "$" set and the reader snapshot stay those
   * of the first call (the job holds them). */
  int r = mh_imap__search_job_step (c->job, slice_msgs, slice_us, &error);
  if (r == 0)
    return MH_IMAP_RUN_MORE;
  if (r < 0)
    return search_failed (s, cmd, out, error);

  /* The job's view: the one its indices were taken from. */
  MhStoreView *view = c->job->s.view;
  GArray *idx = mh_imap__search_job_get_result (c->job);
  if ((cmd->search_return & MH_IMAP_RETURN_SAVE) != 0)
    mh_imap__search_save (&s->saved_uids, view, idx, cmd->search_return);
  if (cmd->kind == MH_IMAP_CMD_THREAD)
    {
      const char *t = mh_imap__search_job_get_threads (c->job);
      /* "* THREAD" with no threads has no trailing space (RFC 5256). */
      g_string_append_printf (out, "* THREAD%s%s\r\n", *t ? " " : "", t);
    }
  else
    /* (RETURN (SAVE) alone answers nothing but the tagged OK: RFC 5182
     * 2.1; search_format knows.) */
    mh_imap__search_format (out, cmd, view, idx,
                            (s->enabled & MH_IMAP_ENABLED_REV2) != 0);
  search_cursor_clear (s);
  mh_imap__tagged_printf (out, cmd, "OK", NULL, "%s completed", what);
  return MH_IMAP_RUN_DONE;
}
