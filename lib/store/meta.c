/* lib/store/meta.c: the metadata cache, computed once at delivery.
 *
 * Design notes
 * - GMime parses the message (content types, parameters, encodings,
 *   addresses); byte positions of every part come from our own scan of
 *   the raw bytes along MIME boundaries, so BODY[1.2] later is one pread
 *   of a known range, never a parse of the whole file.
 * - The cache is a GVariant "(tsssa(ss)a(sttt))":
 *   header size, ENVELOPE, BODY, BODYSTRUCTURE (IMAP syntax, RFC 3501
 *   7.4.2), the raw lines of the headers clients ask for most (lowercase
 *   name -> lines), and parts (section, header start, body start, body
 *   end) in file offsets.
 * - Sizes and line counts in BODY are those of the CRLF form, as IMAP
 *   clients see it, whatever line ends the file has.
 * - Nesting is capped at MH_LIMIT_STORE_MIME_DEPTH; deeper parts are
 *   described as application/octet-stream leaves. Broken MIME never fails
 *   a delivery: the cache describes what could be parsed.
 */
#include "store-private.h"

#include <gmime/gmime.h>
#include <string.h>

static const char *const cached_headers[] = {
  "from", "to", "cc", "bcc", "subject", "date", "message-id",
  "in-reply-to", "references", "reply-to", "sender", "content-type",
  "list-id", "list-post", "list-unsubscribe", "x-priority", "priority",
  "importance", "x-spam-flag", "x-spam-status", "auto-submitted",
  "delivered-to", "return-path", "x-mailer", NULL
};

gboolean
mh_store__header_is_cached (const char *name)
{
  for (int i = 0; cached_headers[i]; i++)
    if (g_ascii_strcasecmp (cached_headers[i], name) == 0)
      return TRUE;
  return FALSE;
}

gsize
mh_store__rfc822_size (const char *data, gsize len)
{
  gsize n = len;
  for (gsize i = 0; i < len; i++)
    if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
      n++;
  return n;
}

/* Lines of a body as Dovecot counts them: its line ends. The newline
 * before a boundary belongs to the boundary, so the last line of a part
 * is not counted (Dovecot gives "a\r\nb" one line, as do we). */
static guint
count_lines (const char *data, gsize len)
{
  guint n = 0;
  for (gsize i = 0; i < len; i++)
    if (data[i] == '\n')
      n++;
  return n;
}

/* Returns the offset of the body (after the blank line) in [start, end). */
static gsize
find_body (const char *d, gsize start, gsize end)
{
  gsize i = start;
  /* A region that begins with a blank line has no headers. */
  if (i < end && d[i] == '\n')
    return i + 1;
  if (i + 1 < end && d[i] == '\r' && d[i + 1] == '\n')
    return i + 2;
  for (; i < end; i++)
    if (d[i] == '\n')
      {
        if (i + 1 < end && d[i + 1] == '\n')
          return i + 2;
        if (i + 2 < end && d[i + 1] == '\r' && d[i + 2] == '\n')
          return i + 3;
      }
  return end;
}

/* Splits a multipart body [start, end) into its children's regions. */
static GArray *
split_multipart (const char *d, gsize start, gsize end, const char *bnd)
{
  GArray *r = g_array_new (FALSE, FALSE, sizeof (gsize) * 2);
  gsize blen = strlen (bnd);
  gssize cur = -1;
  gsize i = start;
  while (i < end)
    {
      gsize eol = i;
      while (eol < end && d[eol] != '\n')
        eol++;
      if (eol - i >= blen + 2 && d[i] == '-' && d[i + 1] == '-'
          && memcmp (d + i + 2, bnd, blen) == 0)
        {
          gboolean last = eol - i >= blen + 4 && d[i + blen + 2] == '-'
                          && d[i + blen + 3] == '-';
          if (cur >= 0)
            {
              /* The newline before the delimiter belongs to it. */
              gsize e = i;
              if (e > (gsize) cur && d[e - 1] == '\n')
                e--;
              if (e > (gsize) cur && d[e - 1] == '\r')
                e--;
              gsize pair[2] = { (gsize) cur, e };
              g_array_append_vals (r, pair, 1);
            }
          if (last)
            return r;
          cur = (gssize) (eol < end ? eol + 1 : end);
        }
      i = eol + 1;
    }
  if (cur >= 0)
    {
      gsize pair[2] = { (gsize) cur, end };
      g_array_append_vals (r, pair, 1);
    }
  return r;
}

static void
nstring (GString *o, const char *s)
{
  if (s == NULL)
    {
      g_string_append (o, "NIL");
      return;
    }
  gboolean literal = strlen (s) > 1000;
  for (const char *p = s; *p && !literal; p++)
    if (*p == '\r' || *p == '\n' || (guchar) *p >= 0x80)
      literal = TRUE;
  if (literal)
    {
      g_string_append_printf (o, "{%zu}\r\n%s", strlen (s), s);
      return;
    }
  g_string_append_c (o, '"');
  for (const char *p = s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_c (o, '\\');
      g_string_append_c (o, *p);
    }
  g_string_append_c (o, '"');
}

/* A raw header value, unfolded, leading space trimmed. */
static char *
header_value (GMimeObject *obj, const char *name)
{
  GMimeHeaderList *hl = g_mime_object_get_header_list (obj);
  GMimeHeader *h = hl ? g_mime_header_list_get_header (hl, name) : NULL;
  if (h == NULL)
    return NULL;
  const char *raw = g_mime_header_get_raw_value (h);
  if (raw == NULL)
    return NULL;
  GString *s = g_string_new (NULL);
  for (const char *p = raw; *p; p++)
    if (*p != '\r' && *p != '\n')
      g_string_append_c (s, *p);
  g_strstrip (s->str);
  char *v = g_utf8_validate (s->str, -1, NULL)
              ? g_strdup (s->str) : g_utf8_make_valid (s->str, -1);
  g_string_free (s, TRUE);
  return v;
}

/* A "phrase <addr>" of a raw address list, as written. */
typedef struct
{
  char *phrase; /* unquoted, encoded words kept; NULL if none */
  char *addr;   /* the angle-addr's content, route removed */
  gboolean used;
} RawAddr;

static void
raw_addr_free (gpointer p)
{
  RawAddr *r = p;
  g_free (r->phrase);
  g_free (r->addr);
  g_free (r);
}

/* Unquotes a phrase: quoted strings lose their quotes and escapes,
 * comments go, runs of blanks become one space (as Dovecot does). */
static char *
unquote_phrase (const char *s, gsize len)
{
  GString *o = g_string_new (NULL);
  gboolean space = FALSE;
  for (gsize i = 0; i < len; i++)
    {
      char c = s[i];
      if (c == '"')
        {
          if (space && o->len)
            g_string_append_c (o, ' ');
          space = FALSE;
          for (i++; i < len && s[i] != '"'; i++)
            {
              if (s[i] == '\\' && i + 1 < len)
                i++;
              g_string_append_c (o, s[i]);
            }
          continue;
        }
      if (c == '(')
        {
          int depth = 1;
          for (i++; i < len && depth > 0; i++)
            if (s[i] == '\\' && i + 1 < len)
              i++;
            else if (s[i] == '(')
              depth++;
            else if (s[i] == ')')
              depth--;
          i--;
          space = TRUE;
          continue;
        }
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
        {
          space = TRUE;
          continue;
        }
      if (space && o->len)
        g_string_append_c (o, ' ');
      space = FALSE;
      g_string_append_c (o, c);
    }
  return g_string_free (o, FALSE);
}

/* The "phrase <addr>" items of a raw address header, in order: split at
 * ',', ':' and ';' outside quotes, comments and angle brackets. GMime
 * decodes encoded words in display names; ENVELOPE sends them as
 * written (RFC 3501 7.4.2, and what Dovecot sends). */
static GPtrArray *
raw_addrs (const char *v)
{
  GPtrArray *a = g_ptr_array_new_with_free_func (raw_addr_free);
  gsize start = 0, lt = 0, gt = 0, n = strlen (v);
  gboolean in_angle = FALSE;
  for (gsize i = 0; i <= n; i++)
    {
      char c = i < n ? v[i] : ',';
      if (c == '"')
        {
          for (i++; i < n && v[i] != '"'; i++)
            if (v[i] == '\\' && i + 1 < n)
              i++;
          continue;
        }
      if (c == '(' && !in_angle)
        {
          int depth = 1;
          for (i++; i < n && depth > 0; i++)
            if (v[i] == '\\' && i + 1 < n)
              i++;
            else if (v[i] == '(')
              depth++;
            else if (v[i] == ')')
              depth--;
          i--;
          continue;
        }
      if (c == '<')
        {
          in_angle = TRUE;
          lt = i;
        }
      else if (c == '>' && in_angle)
        {
          in_angle = FALSE;
          gt = i;
        }
      else if (!in_angle && (c == ',' || c == ':' || c == ';'))
        {
          if (gt > lt && lt >= start)
            {
              RawAddr *r = g_new0 (RawAddr, 1);
              char *ph = unquote_phrase (v + start, lt - start);
              r->phrase = *ph ? ph : (g_free (ph), NULL);
              const char *as = v + lt + 1, *ae = v + gt;
              const char *colon = memchr (as, ':', ae - as);
              if (colon)
                as = colon + 1; /* obsolete route "@a,@b:" */
              r->addr = g_strstrip (g_strndup (as, ae - as));
              g_ptr_array_add (a, r);
            }
          start = i + 1;
          lt = gt = 0;
        }
    }
  return a;
}

/* The display name as ENVELOPE carries it (RFC 3501 7.4.2 addr-name):
 * the phrase as written but unquoted, encoded words left encoded (as
 * Dovecot sends it); NULL for none. Without the raw text, GMime's
 * decoded name, re-encoded if not ASCII. */
static char *
address_name (InternetAddressMailbox *mb, GPtrArray *raws)
{
  const char *addr = internet_address_mailbox_get_addr (mb);
  for (guint i = 0; raws && addr && i < raws->len; i++)
    {
      RawAddr *r = raws->pdata[i];
      if (!r->used && g_ascii_strcasecmp (r->addr, addr) == 0)
        {
          r->used = TRUE;
          if (r->phrase && strstr (r->phrase, "=?") != NULL)
            return g_strdup (r->phrase);
          break;
        }
    }
  const char *name = internet_address_get_name (INTERNET_ADDRESS (mb));
  if (name == NULL || *name == '\0')
    return NULL;
  if (raws == NULL)
    for (const char *p = name; *p; p++)
      if ((guchar) *p >= 0x80)
        return g_mime_utils_header_encode_text (NULL, name, "utf-8");
  return g_strdup (name);
}

/* (name adl mailbox host). A missing domain must not be NIL, which means
 * group syntax: "MISSING_DOMAIN" as Dovecot writes. */
static void
mailbox (GString *o, InternetAddressMailbox *mb, GPtrArray *raws)
{
  g_autofree char *name = address_name (mb, raws);
  const char *addr = internet_address_mailbox_get_addr (mb);
  const char *at = addr ? strrchr (addr, '@') : NULL;
  g_autofree char *local = at ? g_strndup (addr, at - addr) : g_strdup (addr);
  g_string_append_c (o, '(');
  nstring (o, name);
  g_string_append (o, " NIL ");
  nstring (o, local);
  g_string_append_c (o, ' ');
  nstring (o, at && at[1] ? at + 1 : "MISSING_DOMAIN");
  g_string_append_c (o, ')');
}

static void
address_list (GString *o, const char *raw)
{
  InternetAddressList *l = raw ? internet_address_list_parse (NULL, raw)
                               : NULL;
  if (l == NULL || internet_address_list_length (l) == 0)
    {
      g_string_append (o, "NIL");
      g_clear_object (&l);
      return;
    }
  g_autoptr (GPtrArray) raws = raw_addrs (raw);
  g_string_append_c (o, '(');
  for (int i = 0; i < internet_address_list_length (l); i++)
    {
      InternetAddress *a = internet_address_list_get_address (l, i);
      const char *name = internet_address_get_name (a);
      if (INTERNET_ADDRESS_IS_GROUP (a))
        {
          g_string_append (o, "(NIL NIL ");
          nstring (o, name ? name : "");
          g_string_append (o, " NIL)");
          InternetAddressList *m = internet_address_group_get_members (
            INTERNET_ADDRESS_GROUP (a));
          for (int j = 0; m && j < internet_address_list_length (m); j++)
            {
              InternetAddress *ma = internet_address_list_get_address (m, j);
              if (!INTERNET_ADDRESS_IS_MAILBOX (ma))
                continue;
              mailbox (o, INTERNET_ADDRESS_MAILBOX (ma), raws);
            }
          g_string_append (o, "(NIL NIL NIL NIL)");
          continue;
        }
      mailbox (o, INTERNET_ADDRESS_MAILBOX (a), raws);
    }
  g_string_append_c (o, ')');
  g_object_unref (l);
}

static void
envelope (GString *o, GMimeObject *msg)
{
  g_autofree char *date = header_value (msg, "Date");
  g_autofree char *subject = header_value (msg, "Subject");
  g_autofree char *from = header_value (msg, "From");
  g_autofree char *sender = header_value (msg, "Sender");
  g_autofree char *reply = header_value (msg, "Reply-To");
  g_autofree char *to = header_value (msg, "To");
  g_autofree char *cc = header_value (msg, "Cc");
  g_autofree char *bcc = header_value (msg, "Bcc");
  g_autofree char *irt = header_value (msg, "In-Reply-To");
  g_autofree char *mid = header_value (msg, "Message-ID");
  g_string_append_c (o, '(');
  nstring (o, date);
  g_string_append_c (o, ' ');
  nstring (o, subject);
  g_string_append_c (o, ' ');
  address_list (o, from);
  g_string_append_c (o, ' ');
  /* RFC 3501 7.4.2: sender and reply-to default to from. */
  address_list (o, sender ? sender : from);
  g_string_append_c (o, ' ');
  address_list (o, reply ? reply : from);
  g_string_append_c (o, ' ');
  address_list (o, to);
  g_string_append_c (o, ' ');
  address_list (o, cc);
  g_string_append_c (o, ' ');
  address_list (o, bcc);
  g_string_append_c (o, ' ');
  nstring (o, irt);
  g_string_append_c (o, ' ');
  nstring (o, mid);
  g_string_append_c (o, ')');
}

/* Skips a quoted string starting at @p ('"'); returns the byte after. */
static const char *
skip_quoted (const char *p)
{
  for (p++; *p && *p != '"'; p++)
    if (*p == '\\' && p[1])
      p++;
  return *p ? p + 1 : p;
}

/* The parameters of a raw Content-Type or Content-Disposition value,
 * as written: names keep their case and RFC 2231 forms ("name*",
 * "name*0") stay undecoded, as Dovecot sends them; clients decode them.
 * Appends "(...)" and returns TRUE, or appends nothing if there are
 * none. With @charset_default, a list without "charset" gets
 * "charset" "us-ascii" at its end (RFC 2045 5.2's default, as Dovecot
 * writes it for text parts). */
static gboolean
raw_params (GString *o, const char *v, gboolean charset_default)
{
  gboolean charset = FALSE;
  gboolean any = FALSE;
  const char *p = v;
  if (p == NULL)
    return FALSE;
  while (*p && *p != ';')
    p = *p == '"' ? skip_quoted (p) : p + 1;
  while (*p == ';')
    {
      p++;
      while (*p == ' ' || *p == '\t')
        p++;
      const char *ns = p;
      while (*p && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
        p++;
      const char *ne = p;
      while (*p == ' ' || *p == '\t')
        p++;
      if (*p != '=' || ne == ns)
        {
          while (*p && *p != ';')
            p = *p == '"' ? skip_quoted (p) : p + 1;
          continue;
        }
      p++;
      while (*p == ' ' || *p == '\t')
        p++;
      GString *val = g_string_new (NULL);
      if (*p == '"')
        {
          for (p++; *p && *p != '"'; p++)
            {
              if (*p == '\\' && p[1])
                p++;
              g_string_append_c (val, *p);
            }
          if (*p)
            p++;
        }
      else
        {
          const char *vs = p;
          while (*p && *p != ';' && *p != ' ' && *p != '\t')
            p++;
          g_string_append_len (val, vs, p - vs);
        }
      while (*p && *p != ';')
        p = *p == '"' ? skip_quoted (p) : p + 1;
      g_autofree char *name = g_strndup (ns, ne - ns);
      if (g_ascii_strcasecmp (name, "charset") == 0)
        charset = TRUE;
      g_string_append_c (o, any ? ' ' : '(');
      nstring (o, name);
      g_string_append_c (o, ' ');
      nstring (o, val->str);
      g_string_free (val, TRUE);
      any = TRUE;
    }
  if (any && charset_default && !charset)
    g_string_append (o, " \"charset\" \"us-ascii\"");
  if (any)
    g_string_append_c (o, ')');
  return any;
}

static void
ext_disposition (GString *o, GMimeObject *obj)
{
  g_autofree char *cd = header_value (obj, "Content-Disposition");
  gsize tlen = 0;
  while (cd && cd[tlen] && cd[tlen] != ';' && cd[tlen] != ' '
         && cd[tlen] != '\t')
    tlen++;
  if (tlen == 0)
    g_string_append (o, " NIL");
  else
    {
      g_autofree char *type = g_strndup (cd, tlen);
      g_string_append (o, " (");
      nstring (o, type);
      g_string_append_c (o, ' ');
      if (!raw_params (o, cd, FALSE))
        g_string_append (o, "NIL");
      g_string_append_c (o, ')');
    }
  /* body-fld-lang: a list of the comma-separated tags (as Dovecot). */
  g_autofree char *lang = header_value (obj, "Content-Language");
  g_auto (GStrv) tags = lang ? g_strsplit (lang, ",", -1) : NULL;
  guint n = 0;
  g_string_append (o, " ");
  for (char **t = tags; t && *t; t++)
    if (*g_strstrip (*t))
      {
        g_string_append_c (o, n++ ? ' ' : '(');
        nstring (o, *t);
      }
  g_string_append (o, n ? ")" : "NIL");
  g_autofree char *loc = header_value (obj, "Content-Location");
  g_string_append_c (o, ' ');
  nstring (o, loc);
}

typedef struct
{
  const char *d;
  GString *body, *bs;
  GVariantBuilder *parts;
} Walk;

static void walk (Walk *w, GMimeObject *obj, gsize hstart, gsize end,
                  const char *section, int depth);

static void
add_part (Walk *w, const char *section, gsize h, gsize b, gsize e)
{
  g_variant_builder_add (w->parts, "(sttt)", section, (guint64) h,
                         (guint64) b, (guint64) e);
}

static void
leaf (Walk *w, GMimeObject *obj, gsize hstart, gsize bstart, gsize end,
      const char *section, int depth)
{
  GMimeContentType *ct = obj ? g_mime_object_get_content_type (obj) : NULL;
  const char *type = ct ? g_mime_content_type_get_media_type (ct) : NULL;
  const char *sub = ct ? g_mime_content_type_get_media_subtype (ct) : NULL;
  if (type == NULL || depth >= MH_LIMIT_STORE_MIME_DEPTH)
    {
      type = depth >= MH_LIMIT_STORE_MIME_DEPTH ? "application" : "text";
      sub = depth >= MH_LIMIT_STORE_MIME_DEPTH ? "octet-stream" : "plain";
    }
  GString *o[2] = { w->body, w->bs };
  const char *cte = NULL, *cid = NULL;
  /* Raw values, for message/rfc822 parts too (not only GMimePart). */
  g_autofree char *desc = obj ? header_value (obj, "Content-Description")
                              : NULL;
  g_autofree char *md5 = obj ? header_value (obj, "Content-MD5") : NULL;
  g_autofree char *ctype = obj ? header_value (obj, "Content-Type") : NULL;
  g_autofree char *cte_raw = obj ? header_value (obj,
                                                 "Content-Transfer-Encoding")
                                 : NULL;
  cte = cte_raw ? cte_raw : "7bit";
  cid = obj ? g_mime_object_get_content_id (obj) : NULL;
  g_autofree char *cid_br = cid ? g_strdup_printf ("<%s>", cid) : NULL;
  gsize size = mh_store__rfc822_size (w->d + bstart, end - bstart);
  guint lines = count_lines (w->d + bstart, end - bstart);
  for (int k = 0; k < 2; k++)
    {
      g_string_append_c (o[k], '(');
      nstring (o[k], type);
      g_string_append_c (o[k], ' ');
      nstring (o[k], sub);
      g_string_append_c (o[k], ' ');
      if (raw_params (o[k], ctype, g_ascii_strcasecmp (type, "text") == 0))
        ;
      else if (g_ascii_strcasecmp (type, "text") == 0)
        g_string_append (o[k], "(\"charset\" \"us-ascii\")");
      else
        g_string_append (o[k], "NIL");
      g_string_append_c (o[k], ' ');
      nstring (o[k], cid_br);
      g_string_append_c (o[k], ' ');
      nstring (o[k], desc);
      g_string_append_c (o[k], ' ');
      nstring (o[k], cte);
      g_string_append_printf (o[k], " %zu", size);
    }
  add_part (w, section, hstart, bstart, end);
  if (g_ascii_strcasecmp (type, "message") == 0
      && g_ascii_strcasecmp (sub, "rfc822") == 0 && obj
      && GMIME_IS_MESSAGE_PART (obj)
      && g_mime_message_part_get_message (GMIME_MESSAGE_PART (obj)))
    {
      GMimeMessage *m = g_mime_message_part_get_message (
        GMIME_MESSAGE_PART (obj));
      for (int k = 0; k < 2; k++)
        {
          g_string_append_c (o[k], ' ');
          envelope (o[k], GMIME_OBJECT (m));
          g_string_append_c (o[k], ' ');
        }
      /* The embedded message's parts are numbered under this section. */
      GMimeObject *mp = g_mime_message_get_mime_part (m);
      gsize mb = find_body (w->d, bstart, end);
      g_autofree char *sec = g_strdup (section);
      if (mp && GMIME_IS_MULTIPART (mp))
        walk (w, mp, bstart, end, sec, depth + 1);
      else
        {
          /* A single-part embedded message: its body is section.1 and
           * its structure is that of the whole embedded message. */
          GString *sb = w->body, *ss = w->bs;
          GString *tb = g_string_new (NULL), *ts = g_string_new (NULL);
          w->body = tb;
          w->bs = ts;
          g_autofree char *s1 = g_strconcat (section, ".1", NULL);
          leaf (w, mp ? mp : GMIME_OBJECT (m), bstart, mb, end, s1,
                depth + 1);
          w->body = sb;
          w->bs = ss;
          g_string_append (sb, tb->str);
          g_string_append (ss, ts->str);
          g_string_free (tb, TRUE);
          g_string_free (ts, TRUE);
        }
      for (int k = 0; k < 2; k++)
        g_string_append_printf (o[k], " %u", lines);
    }
  else if (g_ascii_strcasecmp (type, "text") == 0)
    for (int k = 0; k < 2; k++)
      g_string_append_printf (o[k], " %u", lines);
  g_string_append_c (w->bs, ' ');
  nstring (w->bs, md5);
  if (obj)
    ext_disposition (w->bs, obj);
  else
    g_string_append (w->bs, " NIL NIL NIL");
  g_string_append_c (w->body, ')');
  g_string_append_c (w->bs, ')');
}

static void
walk (Walk *w, GMimeObject *obj, gsize hstart, gsize end,
      const char *section, int depth)
{
  gsize bstart = find_body (w->d, hstart, end);
  if (obj == NULL || !GMIME_IS_MULTIPART (obj)
      || depth >= MH_LIMIT_STORE_MIME_DEPTH)
    {
      g_autofree char *s = *section ? g_strdup (section) : g_strdup ("1");
      leaf (w, obj, hstart, bstart, end, s, depth);
      return;
    }
  GMimeMultipart *mp = GMIME_MULTIPART (obj);
  const char *bnd = g_mime_multipart_get_boundary (mp);
  g_autoptr (GArray) regions = bnd ? split_multipart (w->d, bstart, end, bnd)
                                   : g_array_new (FALSE, FALSE,
                                                  sizeof (gsize) * 2);
  int n = g_mime_multipart_get_count (mp);
  if ((guint) n > regions->len)
    n = (int) regions->len;
  if (*section)
    add_part (w, section, hstart, bstart, end);
  g_string_append_c (w->body, '(');
  g_string_append_c (w->bs, '(');
  for (int i = 0; i < n; i++)
    {
      gsize *r = &g_array_index (regions, gsize, i * 2);
      g_autofree char *sec = *section
                               ? g_strdup_printf ("%s.%d", section, i + 1)
                               : g_strdup_printf ("%d", i + 1);
      walk (w, g_mime_multipart_get_part (mp, i), r[0], r[1], sec,
            depth + 1);
    }
  if (n == 0)
    {
      /* RFC 3501 requires at least one part: describe an empty one. */
      g_autofree char *sec = *section ? g_strconcat (section, ".1", NULL)
                                      : g_strdup ("1");
      leaf (w, NULL, bstart, bstart, bstart, sec, depth + 1);
    }
  GMimeContentType *ct = g_mime_object_get_content_type (obj);
  const char *sub = ct ? g_mime_content_type_get_media_subtype (ct) : NULL;
  g_string_append_c (w->body, ' ');
  nstring (w->body, sub ? sub : "mixed");
  g_string_append_c (w->bs, ' ');
  nstring (w->bs, sub ? sub : "mixed");
  g_string_append_c (w->bs, ' ');
  g_autofree char *ctype = header_value (obj, "Content-Type");
  if (!raw_params (w->bs, ctype, FALSE))
    g_string_append (w->bs, "NIL");
  ext_disposition (w->bs, obj);
  g_string_append_c (w->body, ')');
  g_string_append_c (w->bs, ')');
}

static void
string_free (gpointer s)
{
  g_string_free (s, TRUE);
}

/* One entry per cached name, holding all of its lines in message order:
 * mh_store_message_get_header() promises "several if repeated", and
 * IMAP's HEADER.FIELDS answer from the cache needs them all. */
static void
cache_headers (GVariantBuilder *b, const char *d, gsize hend)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (
    string_free);
  gsize i = 0;
  while (i < hend)
    {
      gsize start = i;
      /* One field: its first line and continuation lines (WSP). */
      do
        {
          while (i < hend && d[i] != '\n')
            i++;
          if (i < hend)
            i++;
        }
      while (i < hend && (d[i] == ' ' || d[i] == '\t'));
      const char *colon = memchr (d + start, ':', i - start);
      if (colon == NULL)
        continue;
      g_autofree char *name = g_strndup (d + start, colon - (d + start));
      g_strstrip (name);
      if (!mh_store__header_is_cached (name))
        continue;
      g_autofree char *lc = g_ascii_strdown (name, -1);
      guint k = 0;
      while (k < names->len && strcmp (names->pdata[k], lc) != 0)
        k++;
      if (k == names->len)
        {
          g_ptr_array_add (names, g_steal_pointer (&lc));
          g_ptr_array_add (lines, g_string_new (NULL));
        }
      GString *l = lines->pdata[k];
      if (g_utf8_validate (d + start, (gssize) (i - start), NULL))
        g_string_append_len (l, d + start, (gssize) (i - start));
      else
        {
          /* GVariant strings are UTF-8: keep 8-bit junk out, losslessly
           * enough for display (the file keeps the original; readers
           * that need the bytes see U+FFFD and read the file). */
          g_autofree char *ok = g_utf8_make_valid (d + start,
                                                   (gssize) (i - start));
          g_string_append (l, ok);
        }
    }
  for (guint k = 0; k < names->len; k++)
    g_variant_builder_add (b, "(ss)", (const char *) names->pdata[k],
                           ((GString *) lines->pdata[k])->str);
}

void
mh_store__gmime_init (void)
{
  /* GMime needs one process-wide init, and g_mime_init() itself is not
   * safe against a concurrent call: every library user goes through
   * this one guard (lib/server's SEARCH too). */
  static gsize gmime_once = 0;
  if (g_once_init_enter (&gmime_once))
    {
      g_mime_init ();
      g_once_init_leave (&gmime_once, 1);
    }
}

GVariant *
mh_store__meta_compute (const char *data, gsize len)
{
  mh_store__gmime_init ();
  GMimeStream *st = g_mime_stream_mem_new_with_buffer (data, len);
  GMimeParser *p = g_mime_parser_new_with_stream (st);
  GMimeMessage *m = g_mime_parser_construct_message (p, NULL);
  g_object_unref (p);
  g_object_unref (st);

  gsize hend = find_body (data, 0, len);
  GString *body = g_string_new (NULL), *bs = g_string_new (NULL),
          *env = g_string_new (NULL);
  GVariantBuilder parts, hdrs;
  g_variant_builder_init (&parts, G_VARIANT_TYPE ("a(sttt)"));
  g_variant_builder_init (&hdrs, G_VARIANT_TYPE ("a(ss)"));
  Walk w = { data, body, bs, &parts };
  if (m != NULL)
    {
      envelope (env, GMIME_OBJECT (m));
      GMimeObject *mp = g_mime_message_get_mime_part (m);
      walk (&w, mp ? mp : GMIME_OBJECT (m), 0, len, "", 0);
    }
  else
    {
      g_string_append (env, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
      leaf (&w, NULL, 0, hend, len, "1", 0);
    }
  cache_headers (&hdrs, data, hend);
  GString *all[3] = { env, body, bs };
  for (int k = 0; k < 3; k++)
    if (!g_utf8_validate (all[k]->str, (gssize) all[k]->len, NULL))
      {
        char *ok = g_utf8_make_valid (all[k]->str, (gssize) all[k]->len);
        g_string_assign (all[k], ok);
        g_free (ok);
      }
  GVariant *v = g_variant_new ("(tsssa(ss)a(sttt))", (guint64) hend,
                               env->str, body->str, bs->str, &hdrs, &parts);
  g_string_free (body, TRUE);
  g_string_free (bs, TRUE);
  g_string_free (env, TRUE);
  g_clear_object (&m);
  return g_variant_ref_sink (v);
}
