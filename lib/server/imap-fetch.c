/* lib/server/imap-fetch.c: one message's untagged FETCH response.
 *
 * Design notes
 * - In: a parsed attribute list (MhImapFetchAtt) and a view index. Out:
 *   "* SEQ FETCH (...)\r\n" appended to the caller's GString. On failure
 *   the GString is cut back to its length at entry, so the caller can
 *   skip the message or answer NO (error codes: imap-private.h).
 * - Cost per message: FLAGS, UID, MODSEQ, INTERNALDATE, RFC822.SIZE and
 *   SAVEDATE come from the view (no store call). Anything else costs one
 *   metadata lookup (mh_store_reader_get() when the caller has a reader,
 *   else mh_store_message_get()): ENVELOPE and BODY[STRUCTURE] are ready
 *   strings of the index's metadata cache, nothing is parsed. Body sections add one
 *   mh_store_read() of the range wanted: the header block for HEADER and
 *   HEADER.FIELDS, at most offset+length bytes for a partial <o.l>. This
 *   file keeps no state between calls and caches nothing.
 * - Line ends: Maildir files usually have LF line ends, IMAP sees CRLF
 *   (RFC822.SIZE and the sizes in BODYSTRUCTURE count CRLF). Sections are
 *   converted on the way out and partial offsets count in the CRLF form.
 *   A NUL in a (non-BINARY) literal goes out as 0x80: literals are CHAR8
 *   (RFC 9051 4.3), and Dovecot does the same.
 * - Sections are located with the cached BODYSTRUCTURE string, scanned in
 *   place (nothing allocated): it says which parts exist, which are
 *   message/rfc822 (the only parts with n.HEADER/n.TEXT) and each leaf's
 *   encoding (for BINARY). The part numbers are those of the store's part
 *   table (lib/store/meta.c numbers parts as RFC 9051 6.4.5 does). A part
 *   that does not exist gives an empty literal, as Dovecot answers; RFC
 *   9051 does not make it an error.
 * - HEADER.FIELDS of the message's own header comes from the header cache
 *   when every field asked for is cached and at most one of them is
 *   present: the cache keeps each name's lines but not the order across
 *   names, and the response must keep the message's order. Otherwise the
 *   header block is read (one pread of header-size bytes) and filtered.
 * - BINARY (RFC 3516, RFC 9051 6.4.5) decodes base64 and quoted-printable
 *   leaves; identity encodings (7bit, 8bit, binary) pass unchanged and
 *   BINARY.SIZE of them is the BODYSTRUCTURE size, with no read. Another
 *   encoding, or data that does not decode, fails the message with
 *   G_IO_ERROR_INVALID_DATA ("NO [UNKNOWN-CTE]"). Multiparts,
 *   message/rfc822 parts and the whole message have identity encodings
 *   themselves and are sent as stored. BINARY data with 8-bit or NUL bytes
 *   goes out as a literal8 "~{n}".
 * - Limits: the BODYSTRUCTURE scanner is bounded by the string's NUL and
 *   a nesting cap; section paths longer than any MIME nesting the store
 *   keeps (MH_LIMIT_STORE_MIME_DEPTH) simply name no part.
 */
#include "imap-private.h"

#include <string.h>
#include <time.h>

/* Room for a store section name: 40 part numbers and a suffix; deeper
 * paths name no part (meta.c caps nesting at MH_LIMIT_STORE_MIME_DEPTH). */
#define SECTION_MAX 512
/* Nesting cap of the BODYSTRUCTURE scanner (lists in lists). */
#define SCAN_DEPTH_MAX 256

gboolean
mh_imap__fetch_sets_seen (const GPtrArray *atts)
{
  for (guint i = 0; atts && i < atts->len; i++)
    {
      const MhImapFetchAtt *att = atts->pdata[i];
      switch (att->item)
        {
        case MH_IMAP_FETCH_BODY_SECTION:
        case MH_IMAP_FETCH_BINARY:
          if (!att->peek)
            return TRUE;
          break;
        case MH_IMAP_FETCH_RFC822:
        case MH_IMAP_FETCH_RFC822_TEXT:
          return TRUE;
        default:
          break;
        }
    }
  return FALSE;
}

/* ---- Small writers ---------------------------------------------------- */

static void
append_u64 (GString *out, guint64 v)
{
  char buf[24];
  gsize i = sizeof buf;
  do
    {
      buf[--i] = (char) ('0' + v % 10);
      v /= 10;
    }
  while (v);
  g_string_append_len (out, buf + i, (gssize) (sizeof buf - i));
}

static void
append_internaldate (GString *out, gint64 when)
{
  static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
                                      "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec" };
  time_t t = (time_t) when;
  struct tm tm;
  /* The server's zone, as Dovecot does; "dd-Mon-yyyy hh:mm:ss +zzzz"
   * with a two-digit day (RFC 9051 date-time allows it). */
  if (localtime_r (&t, &tm) == NULL)
    {
      memset (&tm, 0, sizeof tm);
      tm.tm_mday = 1;
      tm.tm_year = 70;
    }
  long off = tm.tm_gmtoff / 60;
  char sign = off < 0 ? '-' : '+';
  if (off < 0)
    off = -off;
  int year = tm.tm_year + 1900;
  if (year < 0 || year > 9999 || off / 60 > 99)
    {
      /* Out of the fixed-width form's range: the general path. */
      g_string_append_printf (out,
                              "\"%02d-%s-%04d %02d:%02d:%02d %c%02ld%02ld\"",
                              tm.tm_mday, months[tm.tm_mon % 12], year,
                              tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                              off / 60, off % 60);
      return;
    }
  /* "dd-Mon-yyyy hh:mm:ss +zzzz" by hand: printf was a third of a
   * cheap FETCH line's cost. */
  char b[28];
  const char *mon = months[tm.tm_mon % 12];
  b[0] = '"';
  b[1] = (char) ('0' + tm.tm_mday / 10);
  b[2] = (char) ('0' + tm.tm_mday % 10);
  b[3] = '-';
  b[4] = mon[0];
  b[5] = mon[1];
  b[6] = mon[2];
  b[7] = '-';
  b[8] = (char) ('0' + year / 1000);
  b[9] = (char) ('0' + year / 100 % 10);
  b[10] = (char) ('0' + year / 10 % 10);
  b[11] = (char) ('0' + year % 10);
  b[12] = ' ';
  b[13] = (char) ('0' + tm.tm_hour / 10);
  b[14] = (char) ('0' + tm.tm_hour % 10);
  b[15] = ':';
  b[16] = (char) ('0' + tm.tm_min / 10);
  b[17] = (char) ('0' + tm.tm_min % 10);
  b[18] = ':';
  b[19] = (char) ('0' + tm.tm_sec / 10 % 10);
  b[20] = (char) ('0' + tm.tm_sec % 10);
  b[21] = ' ';
  b[22] = sign;
  b[23] = (char) ('0' + off / 600);
  b[24] = (char) ('0' + off / 60 % 10);
  b[25] = (char) ('0' + off % 60 / 10);
  b[26] = (char) ('0' + off % 10);
  b[27] = '"';
  g_string_append_len (out, b, sizeof b);
}

static void
append_flags (const MhImapFetchArgs *a, guint index, GString *out)
{
  /* Dovecot's order: system flags, \Recent, then keywords. */
  static const struct
  {
    MhStoreFlags flag;
    const char *name;
  } sys[] = {
    { MH_STORE_FLAG_ANSWERED, "\\Answered" },
    { MH_STORE_FLAG_FLAGGED, "\\Flagged" },
    { MH_STORE_FLAG_DELETED, "\\Deleted" },
    { MH_STORE_FLAG_SEEN, "\\Seen" },
    { MH_STORE_FLAG_DRAFT, "\\Draft" },
  };
  MhStoreFlags f = mh_store_view_get_flags (a->view, index);
  g_string_append (out, "FLAGS (");
  gsize start = out->len;
  for (gsize i = 0; i < G_N_ELEMENTS (sys); i++)
    if (f & sys[i].flag)
      {
        if (out->len > start)
          g_string_append_c (out, ' ');
        g_string_append (out, sys[i].name);
      }
  /* RFC 9051 removed \Recent; an IMAP4rev1 session still gets it. */
  if (!a->rev2 && mh_store_view_is_recent (a->view, index))
    {
      if (out->len > start)
        g_string_append_c (out, ' ');
      g_string_append (out, "\\Recent");
    }
  g_auto (GStrv) kws = mh_store_view_get_keywords (a->view, index);
  gboolean fwd_kw = FALSE;
  for (char **k = kws; k && *k; k++)
    if (g_ascii_strcasecmp (*k, "$Forwarded") == 0)
      fwd_kw = TRUE;
  /* Maildir's 'P' (passed) is the $Forwarded keyword on the wire. */
  if ((f & MH_STORE_FLAG_FORWARDED) && !fwd_kw)
    {
      if (out->len > start)
        g_string_append_c (out, ' ');
      g_string_append (out, "$Forwarded");
    }
  for (char **k = kws; k && *k; k++)
    {
      if (out->len > start)
        g_string_append_c (out, ' ');
      g_string_append (out, *k);
    }
  g_string_append_c (out, ')');
}

/* ---- CRLF form -------------------------------------------------------- */

/* Length of @p once bare LFs become CRLF (as mh_store__rfc822_size). */
static guint64
crlf_len (const char *p, gsize n)
{
  guint64 len = n;
  for (gsize i = 0; i < n; i++)
    if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
      len++;
  return len;
}

/* Writes bytes [@skip, @skip + @take) of @p's CRLF form to @dst. */
static void
crlf_copy (char *dst, const char *p, gsize n, guint64 skip, guint64 take,
           gboolean nul_to_80)
{
  guint64 pos = 0, w = 0;
  for (gsize i = 0; i < n && w < take; i++)
    {
      char c = p[i];
      if (c == '\n' && (i == 0 || p[i - 1] != '\r'))
        {
          if (pos++ >= skip)
            {
              dst[w++] = '\r';
              if (w == take)
                break;
            }
        }
      if (c == '\0' && nul_to_80)
        c = (char) 0x80;
      if (pos++ >= skip)
        dst[w++] = c;
    }
}

static void
literal_head (GString *out, gboolean literal8, guint64 n)
{
  if (literal8)
    g_string_append_c (out, '~');
  g_string_append_c (out, '{');
  append_u64 (out, n);
  g_string_append (out, "}\r\n");
}

/* Appends bytes [@skip, @skip + @max) of @p's CRLF form as a literal (a
 * NUL is sent as 0x80). @max is G_MAXUINT64 for "to the end". */
static void
append_crlf_literal (GString *out, const char *p, gsize n, guint64 skip,
                     guint64 max)
{
  guint64 total = crlf_len (p, n);
  guint64 take = skip >= total ? 0 : MIN (total - skip, max);
  literal_head (out, FALSE, take);
  gsize at = out->len;
  g_string_set_size (out, at + take);
  crlf_copy (out->str + at, p, n, skip, take, TRUE);
}

/* Appends [@skip, @skip + @max) of @p (already in final form) as a
 * literal8 if it has 8-bit or NUL bytes, else as a literal. */
static void
append_binary_literal (GString *out, const char *p, gsize n, guint64 skip,
                       guint64 max)
{
  gsize from = skip >= n ? n : (gsize) skip;
  gsize take = MIN ((guint64) (n - from), max);
  gboolean eight = FALSE;
  for (gsize i = 0; i < take && !eight; i++)
    eight = p[from + i] == '\0' || (guchar) p[from + i] >= 0x80;
  literal_head (out, eight, take);
  g_string_append_len (out, p + from, (gssize) take);
}

/* ---- BODYSTRUCTURE scanner -------------------------------------------- */

static const char *
skip_sp (const char *p)
{
  while (*p == ' ')
    p++;
  return p;
}

/* Skips one value (NIL, atom, number, quoted string, literal, list);
 * NULL if malformed. */
static const char *
skip_value (const char *p, int depth)
{
  p = skip_sp (p);
  if (*p == '"')
    {
      for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
          p++;
      return *p ? p + 1 : NULL;
    }
  if (*p == '{')
    {
      char *e;
      guint64 n = g_ascii_strtoull (p + 1, &e, 10);
      if (*e != '}' || e[1] != '\r' || e[2] != '\n')
        return NULL;
      p = e + 3;
      if (strnlen (p, (gsize) n) < n)
        return NULL;
      return p + n;
    }
  if (*p == '(')
    {
      if (depth >= SCAN_DEPTH_MAX)
        return NULL;
      for (p++;;)
        {
          p = skip_sp (p);
          if (*p == ')')
            return p + 1;
          if (*p == '\0')
            return NULL;
          p = skip_value (p, depth + 1);
          if (p == NULL)
            return NULL;
        }
    }
  const char *s = p;
  while (*p && *p != ' ' && *p != '(' && *p != ')' && *p != '"')
    p++;
  return p > s ? p : NULL;
}

/* Reads a quoted string, lower-cased and cut to @size - 1 bytes, into
 * @buf; other values (NIL, literals) read as "". */
static const char *
read_lower (const char *p, char *buf, gsize size)
{
  gsize n = 0;
  p = skip_sp (p);
  buf[0] = '\0';
  if (*p != '"')
    return skip_value (p, 0);
  for (p++; *p && *p != '"'; p++)
    {
      if (*p == '\\' && p[1])
        p++;
      if (n + 1 < size)
        buf[n++] = g_ascii_tolower (*p);
    }
  buf[n] = '\0';
  return *p ? p + 1 : NULL;
}

typedef struct
{
  gboolean multipart;
  gboolean rfc822;
  const char *children; /* multipart: the first child's '(' */
  const char *embedded; /* message/rfc822: the embedded message's body */
  char enc[24];         /* leaf: Content-Transfer-Encoding, lower-case */
  guint64 size;         /* leaf: body octets (CRLF form) */
} Part;

static gboolean
parse_part (const char *p, Part *part)
{
  memset (part, 0, sizeof *part);
  p = skip_sp (p);
  if (*p != '(')
    return FALSE;
  p++;
  if (*p == '(')
    {
      part->multipart = TRUE;
      part->children = p;
      return TRUE;
    }
  char type[16], sub[16];
  p = read_lower (p, type, sizeof type);
  p = p ? read_lower (p, sub, sizeof sub) : NULL;
  for (int i = 0; i < 3 && p; i++) /* params, id, description */
    p = skip_value (p, 0);
  p = p ? read_lower (p, part->enc, sizeof part->enc) : NULL;
  if (p == NULL)
    return FALSE;
  part->size = g_ascii_strtoull (skip_sp (p), (char **) &p, 10);
  if (strcmp (type, "message") == 0 && strcmp (sub, "rfc822") == 0)
    {
      p = skip_value (p, 0); /* the envelope */
      if (p == NULL)
        return FALSE;
      part->rfc822 = TRUE;
      part->embedded = skip_sp (p);
    }
  return TRUE;
}

/* Finds part @path in @bs. Numbering (RFC 9051 6.4.5): a multipart's
 * children are 1..n; a message whose body is not multipart has that body
 * as part 1; after a message/rfc822 part, numbers go on inside the
 * embedded message. Like Dovecot, "n.1" of a leaf child of a
 * multipart is the leaf itself (once: "n.1.1" is nothing); @canon_out (room for @n numbers, or NULL) gets the path the
 * store knows the part by, without such redundant ones, and
 * @n_canon_out its length. */
static gboolean
resolve (const char *bs, const guint32 *path, guint n, Part *part,
         guint32 *canon_out, guint *n_canon_out)
{
  guint nc = 0;
  if (!parse_part (bs, part))
    return FALSE;
  gboolean msg_body = TRUE, child = FALSE;
  for (guint i = 0; i < n; i++)
    {
      gboolean was_child = child;
      child = FALSE;
      if (part->multipart)
        {
          const char *c = part->children;
          for (guint32 k = 1;; k++)
            {
              c = skip_sp (c);
              if (*c != '(')
                return FALSE; /* the subtype: fewer children */
              if (k == path[i])
                break;
              c = skip_value (c, 0);
              if (c == NULL)
                return FALSE;
            }
          if (!parse_part (c, part))
            return FALSE;
          if (canon_out)
            canon_out[nc] = path[i];
          nc++;
          child = TRUE;
        }
      else if (path[i] != 1 || (!msg_body && !was_child))
        return FALSE;
      else if (msg_body)
        {
          if (canon_out)
            canon_out[nc] = 1;
          nc++;
        }
      msg_body = FALSE;
      if (i + 1 < n && part->rfc822)
        {
          if (!parse_part (part->embedded, part))
            return FALSE;
          msg_body = TRUE;
        }
    }
  if (n_canon_out)
    *n_canon_out = nc;
  return TRUE;
}

/* "1.2.3" + @suffix into @buf; FALSE if it does not fit. */
static gboolean
section_name (char *buf, const guint32 *path, guint n, const char *suffix)
{
  gsize len = 0;
  for (guint i = 0; i < n; i++)
    {
      int w = g_snprintf (buf + len, SECTION_MAX - len, i ? ".%u" : "%u",
                          path[i]);
      if (w < 0 || (gsize) w >= SECTION_MAX - len)
        return FALSE;
      len += (gsize) w;
    }
  if (suffix)
    {
      int w = g_snprintf (buf + len, SECTION_MAX - len, "%s%s",
                          n ? "." : "", suffix);
      if (w < 0 || (gsize) w >= SECTION_MAX - len)
        return FALSE;
    }
  else if (n == 0)
    buf[0] = '\0';
  return TRUE;
}

/* ---- Reading ---------------------------------------------------------- */

/* Reads @sec (bytes as stored) from 0 for @length bytes (-1: all). A
 * missing part gives %NULL with no error; a vanished message gives
 * G_IO_ERROR_NOT_FOUND. */
static GBytes *
read_section (const MhImapFetchArgs *a, guint32 uid, const char *sec,
              gint64 length, GError **error)
{
  GError *e = NULL;
  GBytes *b = mh_store_read (a->store, a->folder, uid, sec, 0, length, &e);
  if (b != NULL)
    return b;
  if (g_error_matches (e, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND))
    {
      /* NOT_FOUND is both "no such part" and "no such message": only a
       * message that is still there tells them apart. */
      g_autoptr (MhStoreMessage) m = mh_store_message_get (a->store,
                                                           a->folder, uid,
                                                           NULL);
      if (m != NULL && *sec != '\0')
        {
          g_error_free (e);
          return NULL;
        }
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "message UID %u is gone: %s", uid, e->message);
      g_error_free (e);
      return NULL;
    }
  g_propagate_error (error, e);
  return NULL;
}

/* Bytes to read for a partial <@offset.@length> of the CRLF form: the
 * CRLF form is never shorter, so offset+length raw bytes suffice. */
static gint64
read_length (const MhImapFetchAtt *att)
{
  if (!att->partial || att->offset > (guint64) G_MAXINT64
      || att->length > (guint64) G_MAXINT64 - att->offset)
    return -1;
  return (gint64) (att->offset + att->length);
}

static gboolean
field_listed (const char *name, gsize len, char *const *fields)
{
  for (char *const *f = fields; f && *f; f++)
    if (strlen (*f) == len && g_ascii_strncasecmp (*f, name, len) == 0)
      return TRUE;
  return FALSE;
}

/* Appends to @dst the fields of header block @h (raw line ends kept)
 * that are (@not: are not) in @fields, then the blank line if @h has one
 * (a message without a body may not: Dovecot adds none then). */
static void
filter_fields (GString *dst, const char *h, gsize len, char *const *fields,
               gboolean not)
{
  gsize i = 0;
  gboolean blank = FALSE;
  while (i < len)
    {
      gsize start = i;
      if (h[i] == '\n' || (h[i] == '\r' && i + 1 < len && h[i + 1] == '\n'))
        {
          blank = TRUE; /* the blank line that ends the header */
          break;
        }
      do
        {
          while (i < len && h[i] != '\n')
            i++;
          if (i < len)
            i++;
        }
      while (i < len && (h[i] == ' ' || h[i] == '\t'));
      const char *colon = memchr (h + start, ':', i - start);
      gboolean keep = not;
      if (colon != NULL)
        {
          gsize nlen = (gsize) (colon - (h + start));
          while (nlen > 0 && (h[start + nlen - 1] == ' '
                              || h[start + nlen - 1] == '\t'))
            nlen--;
          keep = field_listed (h + start, nlen, fields) != not;
        }
      if (keep)
        {
          g_string_append_len (dst, h + start, (gssize) (i - start));
          if (h[i - 1] != '\n')
            g_string_append_c (dst, '\n'); /* header without a body */
        }
    }
  if (blank)
    g_string_append_c (dst, '\n');
}

/* HEADER.FIELDS from the header cache, when that gives exactly the
 * message's answer (design notes). */
static gboolean
fields_from_cache (MhStoreMessage *msg, char *const *fields, GString *dst)
{
  const char *found = NULL;
  /* A header that runs to the end of the file may lack the blank line;
   * only the file tells. */
  if (mh_store_message_get_header_size (msg) >= mh_store_message_get_size (msg))
    return FALSE;
  for (char *const *f = fields; f && *f; f++)
    {
      gboolean cached = FALSE;
      const char *lines = mh_store_message_get_header (msg, *f, &cached);
      if (!cached)
        return FALSE;
      if (lines == NULL || lines == found)
        continue;
      for (char *const *g = fields; g < f; g++)
        if (g_ascii_strcasecmp (*g, *f) == 0)
          lines = NULL; /* the same name asked twice */
      if (lines == NULL)
        continue;
      /* Two present fields: their order is unknown. U+FFFD: the cache
       * replaced bytes that were not UTF-8. */
      if (found != NULL || strstr (lines, "\xEF\xBF\xBD") != NULL)
        return FALSE;
      found = lines;
    }
  if (found != NULL)
    {
      g_string_append (dst, found);
      if (dst->len > 0 && dst->str[dst->len - 1] != '\n')
        g_string_append_c (dst, '\n');
    }
  g_string_append_c (dst, '\n');
  return TRUE;
}

/* ---- Items ------------------------------------------------------------ */

/* An astring of a field name for the echo: an atom when it can be. */
static void
append_field_name (GString *out, const char *f)
{
  gboolean atom = *f != '\0';
  for (const char *c = f; *c && atom; c++)
    atom = (guchar) *c > ' ' && (guchar) *c < 0x7f
           && strchr ("(){%*\"\\]", *c) == NULL;
  if (atom)
    {
      /* Upper-cased, as Dovecot echoes them. */
      for (const char *c = f; *c; c++)
        g_string_append_c (out, g_ascii_toupper (*c));
      return;
    }
  g_string_append_c (out, '{');
  append_u64 (out, strlen (f));
  g_string_append (out, "}\r\n");
  g_string_append (out, f);
}

/* "BODY[1.2.HEADER.FIELDS (FROM TO)]<0> ": spelt from the parsed
 * section (not echoed as written) so keywords and field names come out
 * upper-case whatever the client sent. */
static void
append_section_echo (GString *out, const char *item,
                     const MhImapFetchAtt *att)
{
  static const char *const texts[] = { "", "HEADER", "HEADER.FIELDS",
                                       "HEADER.FIELDS.NOT", "TEXT", "MIME" };
  g_string_append (out, item);
  g_string_append_c (out, '[');
  for (guint i = 0; i < att->n_part; i++)
    {
      if (i)
        g_string_append_c (out, '.');
      append_u64 (out, att->part[i]);
    }
  if (att->text != MH_IMAP_SECTION_ALL && att->text <= MH_IMAP_SECTION_MIME)
    {
      if (att->n_part)
        g_string_append_c (out, '.');
      g_string_append (out, texts[att->text]);
    }
  if (att->text == MH_IMAP_SECTION_HEADER_FIELDS
      || att->text == MH_IMAP_SECTION_HEADER_FIELDS_NOT)
    {
      g_string_append (out, " (");
      for (char **f = att->fields; f && *f; f++)
        {
          if (f != att->fields)
            g_string_append_c (out, ' ');
          append_field_name (out, *f);
        }
      g_string_append_c (out, ')');
    }
  g_string_append_c (out, ']');
  if (att->partial)
    {
      g_string_append_c (out, '<');
      append_u64 (out, att->offset);
      g_string_append_c (out, '>');
    }
  g_string_append_c (out, ' ');
}

/* The store section of BODY[...] (or BINARY[...] with a text part);
 * FALSE if the section names no part. */
static gboolean
store_section (MhStoreMessage *msg, const MhImapFetchAtt *att,
               char buf[SECTION_MAX])
{
  static const char *const suffix[] = { NULL, "HEADER", "HEADER", "HEADER",
                                        "TEXT", "MIME" };
  MhImapSectionText text = att->text <= MH_IMAP_SECTION_MIME
                             ? att->text : MH_IMAP_SECTION_ALL;
  if (att->n_part == 0)
    {
      if (text == MH_IMAP_SECTION_MIME)
        return FALSE; /* MIME needs a part number */
      return section_name (buf, NULL, 0, suffix[text]);
    }
  Part part;
  guint32 canon[SECTION_MAX / 2];
  guint nc = 0;
  if (att->n_part > G_N_ELEMENTS (canon)
      || !resolve (mh_store_message_get_bodystructure (msg, TRUE), att->part,
                   att->n_part, &part, canon, &nc))
    return FALSE;
  /* HEADER and TEXT after a part number: only of message/rfc822. */
  if (text != MH_IMAP_SECTION_ALL && text != MH_IMAP_SECTION_MIME
      && !part.rfc822)
    return FALSE;
  return section_name (buf, canon, nc, suffix[text]);
}

/* The section's text in its raw form (filtered for HEADER.FIELDS) into
 * @raw; an empty @raw for a part that does not exist. */
static gboolean
section_text (const MhImapFetchArgs *a, MhStoreMessage *msg, guint32 uid,
              const MhImapFetchAtt *att, gint64 length, GString *raw,
              GError **error)
{
  char sec[SECTION_MAX];
  if (!store_section (msg, att, sec))
    return TRUE;
  gboolean fields = att->text == MH_IMAP_SECTION_HEADER_FIELDS
                    || att->text == MH_IMAP_SECTION_HEADER_FIELDS_NOT;
  if (fields && att->n_part == 0 && att->text == MH_IMAP_SECTION_HEADER_FIELDS
      && fields_from_cache (msg, att->fields, raw))
    return TRUE;
  GError *e = NULL;
  g_autoptr (GBytes) b = read_section (a, uid, sec, fields ? -1 : length,
                                       &e);
  if (e != NULL)
    {
      g_propagate_error (error, e);
      return FALSE;
    }
  gsize n = 0;
  const char *d = b ? g_bytes_get_data (b, &n) : NULL;
  if (fields)
    filter_fields (raw, d ? d : "", n, att->fields,
                   att->text == MH_IMAP_SECTION_HEADER_FIELDS_NOT);
  else if (n > 0)
    g_string_append_len (raw, d, (gssize) n);
  return TRUE;
}

static gboolean
append_body_section (const MhImapFetchArgs *a, MhStoreMessage *msg,
                     guint32 uid, const char *item,
                     const MhImapFetchAtt *att, GString *out,
                     GError **error)
{
  g_autoptr (GString) raw = g_string_new (NULL);
  if (!section_text (a, msg, uid, att, read_length (att), raw, error))
    return FALSE;
  if (item != NULL)
    append_section_echo (out, item, att);
  append_crlf_literal (out, raw->str, raw->len,
                       att->partial ? att->offset : 0,
                       att->partial ? att->length : G_MAXUINT64);
  return TRUE;
}

/* RFC822, RFC822.HEADER, RFC822.TEXT: BODY[], BODY[HEADER], BODY[TEXT]
 * under their own names. */
static gboolean
append_rfc822 (const MhImapFetchArgs *a, MhStoreMessage *msg, guint32 uid,
               const char *name, MhImapSectionText text, GString *out,
               GError **error)
{
  MhImapFetchAtt att = { .item = MH_IMAP_FETCH_BODY_SECTION, .text = text };
  g_string_append (out, name);
  g_string_append_c (out, ' ');
  return append_body_section (a, msg, uid, NULL, &att, out, error);
}

static gboolean
b64_decode (const char *in, gsize n, GString *dst)
{
  guint32 acc = 0;
  int bits = 0;
  for (gsize i = 0; i < n; i++)
    {
      guchar c = (guchar) in[i];
      int v;
      if (c >= 'A' && c <= 'Z')
        v = c - 'A';
      else if (c >= 'a' && c <= 'z')
        v = c - 'a' + 26;
      else if (c >= '0' && c <= '9')
        v = c - '0' + 52;
      else if (c == '+')
        v = 62;
      else if (c == '/')
        v = 63;
      else if (c == '=')
        {
          /* Padding ends a quantum; concatenated encodings go on. */
          acc = 0;
          bits = 0;
          continue;
        }
      else if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
        continue;
      else
        return FALSE;
      acc = (acc << 6) | (guint32) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          g_string_append_c (dst, (char) ((acc >> bits) & 0xff));
        }
    }
  return TRUE;
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* RFC 2045 6.7, on CRLF text: "=XX" octets, "=" at a line end is a soft
 * break, trailing blanks are transport padding. A stray "=" is kept (the
 * RFC's robustness advice). */
static void
qp_decode (const char *in, gsize n, GString *dst)
{
  gsize i = 0;
  while (i < n)
    {
      gsize eol = i;
      while (eol < n && in[eol] != '\n')
        eol++;
      gboolean has_nl = eol < n;
      gsize end = eol;
      if (end > i && in[end - 1] == '\r')
        end--;
      while (end > i && (in[end - 1] == ' ' || in[end - 1] == '\t'))
        end--;
      gboolean soft = end > i && in[end - 1] == '=';
      if (soft)
        end--;
      for (gsize j = i; j < end; j++)
        {
          int hi, lo;
          if (in[j] == '=' && j + 2 < end && (hi = hexval (in[j + 1])) >= 0
              && (lo = hexval (in[j + 2])) >= 0)
            {
              g_string_append_c (dst, (char) (hi * 16 + lo));
              j += 2;
            }
          else
            g_string_append_c (dst, in[j]);
        }
      if (has_nl && !soft)
        g_string_append (dst, "\r\n");
      i = has_nl ? eol + 1 : n;
    }
}

static gboolean
identity_encoding (const char *enc)
{
  return *enc == '\0' || strcmp (enc, "7bit") == 0
         || strcmp (enc, "8bit") == 0 || strcmp (enc, "binary") == 0;
}

/* BINARY[...] and BINARY.SIZE[...]: the section's content after its
 * Content-Transfer-Encoding is undone. */
static gboolean
append_binary (const MhImapFetchArgs *a, MhStoreMessage *msg, guint32 uid,
               const MhImapFetchAtt *att, gboolean size_only, GString *out,
               GError **error)
{
  Part part;
  gboolean leaf = att->n_part > 0 && att->text == MH_IMAP_SECTION_ALL
                  && resolve (mh_store_message_get_bodystructure (msg, TRUE),
                              att->part, att->n_part, &part, NULL, NULL)
                  && !part.multipart && !part.rfc822;
  if (leaf && !identity_encoding (part.enc) && strcmp (part.enc, "base64") != 0
      && strcmp (part.enc, "quoted-printable") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "unknown Content-Transfer-Encoding \"%s\" in part of "
                   "message UID %u", part.enc, uid);
      return FALSE;
    }
  if (size_only && leaf && identity_encoding (part.enc))
    {
      /* The cached size is already that of the CRLF form. */
      append_section_echo (out, "BINARY.SIZE", att);
      append_u64 (out, part.size);
      return TRUE;
    }
  /* Decoding needs the whole part; identity data only the prefix. */
  gint64 length = !leaf || identity_encoding (part.enc)
                    ? (size_only ? -1 : read_length (att))
                    : -1;
  g_autoptr (GString) raw = g_string_new (NULL);
  if (!section_text (a, msg, uid, att, length, raw, error))
    return FALSE;
  g_autoptr (GString) data = g_string_sized_new (raw->len + raw->len / 16);
  g_string_set_size (data, crlf_len (raw->str, raw->len));
  crlf_copy (data->str, raw->str, raw->len, 0, data->len, FALSE);
  if (leaf && strcmp (part.enc, "base64") == 0)
    {
      g_autoptr (GString) dec = g_string_sized_new (data->len * 3 / 4);
      if (!b64_decode (data->str, data->len, dec))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "part of message UID %u is not valid base64", uid);
          return FALSE;
        }
      g_string_free (data, TRUE);
      data = g_steal_pointer (&dec);
    }
  else if (leaf && strcmp (part.enc, "quoted-printable") == 0)
    {
      g_autoptr (GString) dec = g_string_sized_new (data->len);
      qp_decode (data->str, data->len, dec);
      g_string_free (data, TRUE);
      data = g_steal_pointer (&dec);
    }
  if (size_only)
    {
      append_section_echo (out, "BINARY.SIZE", att);
      append_u64 (out, data->len);
      return TRUE;
    }
  append_section_echo (out, "BINARY", att);
  append_binary_literal (out, data->str, data->len,
                         att->partial ? att->offset : 0,
                         att->partial ? att->length : G_MAXUINT64);
  return TRUE;
}

static gboolean
needs_message (const GPtrArray *atts)
{
  for (guint i = 0; atts && i < atts->len; i++)
    {
      MhImapFetchItem it = ((const MhImapFetchAtt *) atts->pdata[i])->item;
      if (it != MH_IMAP_FETCH_FLAGS && it != MH_IMAP_FETCH_UID
          && it != MH_IMAP_FETCH_MODSEQ && it != MH_IMAP_FETCH_SAVEDATE
          && it != MH_IMAP_FETCH_INTERNALDATE
          && it != MH_IMAP_FETCH_RFC822_SIZE)
        return TRUE;
    }
  return FALSE;
}

static gboolean
has_item (const GPtrArray *atts, MhImapFetchItem item)
{
  for (guint i = 0; atts && i < atts->len; i++)
    if (((const MhImapFetchAtt *) atts->pdata[i])->item == item)
      return TRUE;
  return FALSE;
}

static void
append_modseq (const MhImapFetchArgs *a, guint index, GString *out)
{
  g_string_append (out, "MODSEQ (");
  append_u64 (out, mh_store_view_get_modseq (a->view, index));
  g_string_append_c (out, ')');
}

static gboolean
append_item (const MhImapFetchArgs *a, guint index, guint32 uid,
             MhStoreMessage *msg, const MhImapFetchAtt *att, GString *out,
             GError **error)
{
  switch (att->item)
    {
    case MH_IMAP_FETCH_FLAGS:
      append_flags (a, index, out);
      return TRUE;
    case MH_IMAP_FETCH_UID:
      g_string_append (out, "UID ");
      append_u64 (out, uid);
      return TRUE;
    case MH_IMAP_FETCH_INTERNALDATE:
      g_string_append (out, "INTERNALDATE ");
      append_internaldate (out,
                           mh_store_view_get_internal_date (a->view, index));
      return TRUE;
    case MH_IMAP_FETCH_RFC822_SIZE:
      g_string_append (out, "RFC822.SIZE ");
      append_u64 (out, mh_store_view_get_rfc822_size (a->view, index));
      return TRUE;
    case MH_IMAP_FETCH_ENVELOPE:
      g_string_append (out, "ENVELOPE ");
      g_string_append (out, mh_store_message_get_envelope (msg));
      return TRUE;
    case MH_IMAP_FETCH_BODY:
      g_string_append (out, "BODY ");
      g_string_append (out, mh_store_message_get_bodystructure (msg, FALSE));
      return TRUE;
    case MH_IMAP_FETCH_BODYSTRUCTURE:
      g_string_append (out, "BODYSTRUCTURE ");
      g_string_append (out, mh_store_message_get_bodystructure (msg, TRUE));
      return TRUE;
    case MH_IMAP_FETCH_MODSEQ:
      append_modseq (a, index, out);
      return TRUE;
    case MH_IMAP_FETCH_SAVEDATE:
      {
        /* RFC 8514: NIL when the save date is not known. */
        gint64 saved = mh_store_view_get_save_date (a->view, index);
        g_string_append (out, "SAVEDATE ");
        if (saved > 0)
          append_internaldate (out, saved);
        else
          g_string_append (out, "NIL");
        return TRUE;
      }
    case MH_IMAP_FETCH_RFC822:
      return append_rfc822 (a, msg, uid, "RFC822", MH_IMAP_SECTION_ALL, out,
                            error);
    case MH_IMAP_FETCH_RFC822_HEADER:
      return append_rfc822 (a, msg, uid, "RFC822.HEADER",
                            MH_IMAP_SECTION_HEADER, out, error);
    case MH_IMAP_FETCH_RFC822_TEXT:
      return append_rfc822 (a, msg, uid, "RFC822.TEXT", MH_IMAP_SECTION_TEXT,
                            out, error);
    case MH_IMAP_FETCH_BODY_SECTION:
      return append_body_section (a, msg, uid, "BODY", att, out, error);
    case MH_IMAP_FETCH_BINARY:
      return append_binary (a, msg, uid, att, FALSE, out, error);
    case MH_IMAP_FETCH_BINARY_SIZE:
      return append_binary (a, msg, uid, att, TRUE, out, error);
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "unknown FETCH item %d", (int) att->item);
  return FALSE;
}

gboolean
mh_imap__fetch_one (const MhImapFetchArgs *a, guint index, GString *out,
                    GError **error)
{
  g_return_val_if_fail (a != NULL && a->view != NULL && out != NULL, FALSE);
  g_return_val_if_fail (index < mh_store_view_get_count (a->view), FALSE);
  gsize at_entry = out->len;
  guint32 uid = mh_store_view_get_uid (a->view, index);
  g_autoptr (MhStoreMessage) msg = NULL;
  if (needs_message (a->atts))
    {
      GError *e = NULL;
      msg = a->reader ? mh_store_reader_get (a->reader, uid, &e)
                      : mh_store_message_get (a->store, a->folder, uid, &e);
      if (msg == NULL)
        {
          if (g_error_matches (e, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                           "message UID %u is gone: %s", uid, e->message);
              g_error_free (e);
            }
          else
            g_propagate_error (error, e);
          return FALSE;
        }
    }
  g_string_append (out, "* ");
  append_u64 (out, (guint64) index + 1);
  g_string_append (out, " FETCH (");
  gsize items = out->len;
  if (a->add_uid && !has_item (a->atts, MH_IMAP_FETCH_UID))
    {
      g_string_append (out, "UID ");
      append_u64 (out, uid);
    }
  for (guint i = 0; a->atts && i < a->atts->len; i++)
    {
      const MhImapFetchAtt *att = a->atts->pdata[i];
      if (out->len > items)
        g_string_append_c (out, ' ');
      if (!append_item (a, index, uid, msg, att, out, error))
        {
          g_string_truncate (out, at_entry);
          return FALSE;
        }
    }
  if (a->add_flags && !has_item (a->atts, MH_IMAP_FETCH_FLAGS))
    {
      if (out->len > items)
        g_string_append_c (out, ' ');
      append_flags (a, index, out);
    }
  if (a->add_modseq && !has_item (a->atts, MH_IMAP_FETCH_MODSEQ))
    {
      if (out->len > items)
        g_string_append_c (out, ' ');
      append_modseq (a, index, out);
    }
  g_string_append (out, ")\r\n");
  return TRUE;
}
