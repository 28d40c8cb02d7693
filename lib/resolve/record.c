/* lib/resolve: zero-copy readers of the directory's records.
 *
 * Design notes
 * - The directory stores every value as a serialised GVariant "(uv)"
 *   (lib/directory/records.c). Decoding one with the GVariant API costs
 *   a copy, a normal-form check and a handful of allocations: more than
 *   the rest of a resolution. At RCPT time we read only a few fields, so
 *   this file walks the serialised bytes directly, following the
 *   GVariant serialisation format (GLib's "GVariant Serialisation"
 *   spec, which is stable: it is also D-Bus's GVariant wire format):
 *   - a container's framing offsets are little-endian, 1, 2, 4 or 8
 *     bytes wide depending on the container's size;
 *   - a tuple stores the end of each variable-size member but the last,
 *     in reverse order, at its end; fixed members are aligned;
 *   - an array of variable-size elements stores each element's end, in
 *     order, at its end;
 *   - a variant is the child's bytes, a NUL, then its type string;
 *   - "ms" is empty for Nothing, else the string, its NUL, and a NUL.
 * - Every offset is bounds-checked against the value; anything that does
 *   not fit is reported as "not a record" and the caller says CORRUPT.
 *   Multi-byte numbers are read with memcpy (LMDB values are not
 *   aligned). Nothing is allocated; strings point into the LMDB page.
 * - Only record format version 1 is read, with the exact inner type
 *   string, as records.c writes it; another version is refused rather
 *   than misread (the directory's own rule).
 */
#include "resolve-private.h"

#include <string.h>

typedef MhBytes Span;

static gsize
offset_size (gsize container_len)
{
  if (container_len > G_MAXUINT32)
    return 8;
  if (container_len > G_MAXUINT16)
    return 4;
  if (container_len > G_MAXUINT8)
    return 2;
  return container_len > 0 ? 1 : 0;
}

static gboolean
read_offset (Span c, gsize at, gsize os, gsize *out)
{
  if (os == 0 || at > c.len || c.len - at < os)
    return FALSE;
  guint64 v = 0;
  for (gsize i = 0; i < os; i++)
    v |= (guint64) c.p[at + i] << (8 * i);
  if (v > c.len)
    return FALSE;
  *out = (gsize) v;
  return TRUE;
}

static gsize
align (gsize n, gsize a)
{
  return (n + a - 1) & ~(a - 1);
}

/* The record's inner value if @data is "(uv)" with u == 1 and the
 * variant's type string equal to @type. */
static gboolean
unwrap (const void *data, gsize len, const char *type, Span *inner)
{
  Span r = { data, len };
  guint32 version;
  if (r.len < 8 + 1 + 1)
    return FALSE;
  memcpy (&version, r.p, 4);
  if (GUINT32_FROM_LE (version) != MH_DIRECTORY_RECORD_VERSION)
    return FALSE;
  /* u (4 bytes) then v aligned to 8, the last member: no offsets. */
  Span v = { r.p + 8, r.len - 8 };
  gsize tlen = strlen (type);
  if (v.len < tlen + 1 || v.p[v.len - tlen - 1] != '\0'
      || memcmp (v.p + v.len - tlen, type, tlen) != 0)
    return FALSE;
  inner->p = v.p;
  inner->len = v.len - tlen - 1;
  return TRUE;
}

/* A NUL-terminated string occupying exactly @s. */
static gboolean
string_ok (Span s)
{
  return s.len >= 1 && s.p[s.len - 1] == '\0'
         && memchr (s.p, '\0', s.len - 1) == NULL;
}

/* Looks at each entry of an a{sv} for the keys we know. */
static gboolean
read_settings (Span a, MhResolveAccount *out)
{
  if (a.len == 0)
    return TRUE;
  gsize os = offset_size (a.len);
  gsize table;
  if (!read_offset (a, a.len - os, os, &table) || table > a.len - os
      || (a.len - table) % os != 0)
    return FALSE;
  gsize n = (a.len - table) / os;
  gsize start = 0;
  for (gsize i = 0; i < n; i++)
    {
      gsize end;
      if (!read_offset (a, table + i * os, os, &end) || end > table)
        return FALSE;
      start = align (start, 8);
      if (start > end)
        return FALSE;
      Span e = { a.p + start, end - start };
      start = end;
      /* {sv}: key s (its end as the one framing offset), value v. */
      gsize eos = offset_size (e.len);
      gsize key_end;
      if (!read_offset (e, e.len - eos, eos, &key_end)
          || key_end > e.len - eos)
        return FALSE;
      Span key = { e.p, key_end };
      if (!string_ok (key))
        return FALSE;
      gsize vstart = align (key_end, 8);
      if (vstart > e.len - eos)
        return FALSE;
      Span v = { e.p + vstart, e.len - eos - vstart };
      /* The variant's type string follows its last NUL. */
      if (v.len < 2)
        return FALSE;
      gsize nul = v.len;
      while (nul > 0 && v.p[nul - 1] != '\0')
        nul--;
      if (nul == 0)
        return FALSE;
      Span vtype = { v.p + nul, v.len - nul };
      Span vdata = { v.p, nul - 1 };
      const char *k = (const char *) key.p;
      gboolean is_b = vtype.len == 1 && vtype.p[0] == 'b';
      gboolean is_s = vtype.len == 1 && vtype.p[0] == 's';
      if (strcmp (k, "forward_to") == 0 && is_s)
        {
          if (!string_ok (vdata))
            return FALSE;
          out->forward_to.p = vdata.p;
          out->forward_to.len = vdata.len - 1;
        }
      else if (strcmp (k, "forward_keep_copy") == 0 && is_b)
        {
          if (vdata.len != 1)
            return FALSE;
          out->keep_copy = vdata.p[0] != 0;
        }
      else if (strcmp (k, "subaddress_folders") == 0 && is_b)
        {
          if (vdata.len != 1)
            return FALSE;
          out->subaddress_folders = vdata.p[0] != 0;
        }
    }
  return TRUE;
}

gboolean
mh_resolve__read_account (const void *data, gsize len, MhResolveAccount *out)
{
  memset (out, 0, sizeof *out);
  Span t;
  if (!unwrap (data, len, "(msmsbuxa{sv})", &t))
    return FALSE;
  /* Two variable members (ms, ms) before the last: two offsets. */
  gsize os = offset_size (t.len);
  gsize end0, end1;
  if (t.len < 2 * os || !read_offset (t, t.len - os, os, &end0)
      || !read_offset (t, t.len - 2 * os, os, &end1) || end0 > end1)
    return FALSE;
  gsize limit = t.len - 2 * os;
  gsize b_at = end1;
  gsize u_at = align (b_at + 1, 4);
  gsize x_at = align (u_at + 4, 8);
  gsize a_at = align (x_at + 8, 8);
  if (a_at > limit || end1 > limit)
    return FALSE;
  out->enabled = t.p[b_at] != 0;
  Span a = { t.p + a_at, limit - a_at };
  return read_settings (a, out);
}

gboolean
mh_resolve__read_alias (const void *data, gsize len, guint *n_targets_out,
                        MhResolveEachTarget each, gpointer user_data)
{
  Span t;
  *n_targets_out = 0;
  if (!unwrap (data, len, "(asx)", &t))
    return FALSE;
  gsize os = offset_size (t.len);
  gsize as_end;
  if (!read_offset (t, t.len - os, os, &as_end)
      || align (as_end, 8) + 8 > t.len - os)
    return FALSE;
  Span a = { t.p, as_end };
  if (a.len == 0)
    return TRUE;
  gsize aos = offset_size (a.len);
  gsize table;
  if (!read_offset (a, a.len - aos, aos, &table) || table > a.len - aos
      || (a.len - table) % aos != 0)
    return FALSE;
  gsize n = (a.len - table) / aos;
  *n_targets_out = (guint) n;
  gsize start = 0;
  for (gsize i = 0; i < n; i++)
    {
      gsize end;
      if (!read_offset (a, table + i * aos, aos, &end) || end > table
          || end < start)
        return FALSE;
      Span s = { a.p + start, end - start };
      if (!string_ok (s))
        return FALSE;
      start = end;
      if (each != NULL && !each ((const char *) s.p, s.len - 1, user_data))
        return TRUE;
    }
  return TRUE;
}

gboolean
mh_resolve__read_temp_alias (const void *data, gsize len, MhBytes *target_out,
                             gint64 *expires_out)
{
  Span t;
  if (!unwrap (data, len, "(sxx)", &t))
    return FALSE;
  gsize os = offset_size (t.len);
  gsize s_end;
  if (!read_offset (t, t.len - os, os, &s_end))
    return FALSE;
  gsize x1 = align (s_end, 8);
  if (x1 + 16 > t.len - os)
    return FALSE;
  Span s = { t.p, s_end };
  if (!string_ok (s))
    return FALSE;
  gint64 le;
  memcpy (&le, t.p + x1 + 8, 8);
  *expires_out = GINT64_FROM_LE (le);
  target_out->p = s.p;
  target_out->len = s.len - 1;
  return TRUE;
}
