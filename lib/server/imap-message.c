/* libmailhost: IMAP message commands (lib/server/imap-message.c).
 *
 * FETCH, STORE, COPY/MOVE, EXPUNGE/UID EXPUNGE, CLOSE/UNSELECT, APPEND
 * (MULTIAPPEND) and the SEARCH/SORT/THREAD drivers (QUOTA, METADATA and
 * NOTIFY are in imap-account.c). Each handler runs on a
 * worker thread with the session (imap-private.h); it writes untagged
 * lines and then the tagged line into @out and never touches the engine.
 *
 * Sets: a sequence set is resolved against s->view into sorted, merged
 * ranges of view indices (IdxRange), never into one entry per message,
 * so "1:*" on 100,000 messages costs a few bytes. Sequence numbers out
 * of range (and "*" in an empty mailbox) are BAD (RFC 9051 6.4.5 and the
 * seq-number rule of section 9); UIDs not present are skipped.
 *
 * Views: s->view is what the client knows. After we change flags or
 * expunge, mh_imap__sync_view() (imap.c) brings it up to date and writes
 * what changed. For FETCH and STORE, whose own response carries the new
 * flags of the messages they touched, the FETCH lines that sync writes
 * for those same messages are dropped (filter_own_fetches) so the client
 * sees each change once, as Dovecot does.
 *
 * FETCH is resumable: it returns MH_IMAP_RUN_MORE once the next line
 * would take @out to MH_IMAP_CHUNK bytes (so a part and the engine's
 * copy of it fit 64 KiB blocks malloc reuses; a line longer than that
 * goes alone), keeping a FetchCursor in s->cursor (tied to the
 * command pointer, so a stale cursor is never resumed by another
 * command). FLAGS/UID/MODSEQ-only fetches are rendered straight from the
 * view (render_cheap) without looking at message metadata.
 *
 * Quota: a MULTIAPPEND is checked whole against s->quota before any
 * message is written (RFC 3502: all or nothing); without s->quota the
 * store's own check refuses a message and the ones before it are
 * expunged again. Usage is brought up to date by the store's change hook
 * (mh_quota_attach) after APPEND, COPY, MOVE and EXPUNGE, not here.
 *
 * Limits: APPEND size (s->append_limit).
 */
#include "imap-private.h"
#include "core/core-private.h"
#include "mailhost/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LOG_SVC "imap"

/* ---- Sets -------------------------------------------------------------- */

typedef struct
{
  guint first; /* view indices, inclusive */
  guint last;
} IdxRange;

static gint
idx_range_cmp (gconstpointer a, gconstpointer b)
{
  const IdxRange *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* Sorts and merges overlapping or adjacent ranges in place. */
static void
ranges_normalise (GArray *r)
{
  if (r->len < 2)
    return;
  g_array_sort (r, idx_range_cmp);
  guint w = 0;
  for (guint i = 1; i < r->len; i++)
    {
      IdxRange *cur = &g_array_index (r, IdxRange, w);
      IdxRange *nx = &g_array_index (r, IdxRange, i);
      if (nx->first <= cur->last + 1)
        {
          if (nx->last > cur->last)
            cur->last = nx->last;
        }
      else
        g_array_index (r, IdxRange, ++w) = *nx;
    }
  g_array_set_size (r, w + 1);
}

static guint
ranges_count (const GArray *r)
{
  guint n = 0;
  for (guint i = 0; i < r->len; i++)
    {
      const IdxRange *x = &g_array_index (r, IdxRange, i);
      n += x->last - x->first + 1;
    }
  return n;
}

static gboolean
ranges_contain (const GArray *r, guint idx)
{
  guint lo = 0, hi = r->len;
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      const IdxRange *x = &g_array_index (r, IdxRange, mid);
      if (idx < x->first)
        hi = mid;
      else if (idx > x->last)
        lo = mid + 1;
      else
        return TRUE;
    }
  return FALSE;
}

static guint
view_count (MhImapSession *s)
{
  return s->view != NULL ? mh_store_view_get_count (s->view) : 0;
}

/* First index whose UID is >= @uid (count if none). The view is in UID
 * order. */
static guint
view_lower_bound (MhStoreView *view, guint n, guint32 uid)
{
  guint lo = 0, hi = n;
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      if (mh_store_view_get_uid (view, mid) < uid)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

/* Resolves @set (sequence numbers, or UIDs when @uid) to index ranges.
 * FALSE with *@bad_out (the BAD text) for sequence numbers out of range. */
static gboolean
resolve_set (MhImapSession *s, const MhImapSeqSet *set, gboolean uid,
             GArray **ranges_out, char **bad_out)
{
  g_autoptr (GArray) r = g_array_new (FALSE, FALSE, sizeof (IdxRange));
  guint n = view_count (s);

  *ranges_out = NULL;
  *bad_out = NULL;
  if (set == NULL)
    {
      *bad_out = g_strdup ("Missing message set");
      return FALSE;
    }
  if (set->saved)
    {
      /* SEARCHRES "$": UIDs; those expunged since are skipped (RFC 5182
       * 2.1). */
      for (guint i = 0; s->saved_uids != NULL && i < s->saved_uids->len; i++)
        {
          gint idx = n ? mh_store_view_find (
                           s->view, g_array_index (s->saved_uids, guint32, i))
                       : -1;
          if (idx >= 0)
            {
              IdxRange x = { (guint) idx, (guint) idx };
              g_array_append_val (r, x);
            }
        }
      ranges_normalise (r);
      *ranges_out = g_steal_pointer (&r);
      return TRUE;
    }
  guint32 max_uid = n ? mh_store_view_get_uid (s->view, n - 1) : 0;
  for (guint i = 0; set->ranges != NULL && i < set->ranges->len; i++)
    {
      const MhImapRange *x = &g_array_index (set->ranges, MhImapRange, i);
      guint32 a = x->first, b = x->last;
      if (!uid)
        {
          /* RFC 9051 section 9 (seq-number): a number above the count,
           * and "*" in an empty mailbox, get a tagged BAD. */
          if (a == MH_IMAP_STAR)
            a = n;
          if (b == MH_IMAP_STAR)
            b = n;
          if (a == 0 || b == 0 || a > n || b > n)
            {
              if (n == 0)
                *bad_out = g_strdup ("Invalid messageset: the mailbox is "
                                     "empty");
              else
                *bad_out = g_strdup_printf ("Invalid messageset: %u is "
                                            "beyond the last message (%u)",
                                            (a == 0 || a > n) ? a : b, n);
              return FALSE;
            }
          if (a > b)
            {
              guint32 t = a;
              a = b;
              b = t;
            }
          IdxRange y = { a - 1, b - 1 };
          g_array_append_val (r, y);
        }
      else
        {
          if (n == 0)
            continue;
          if (a == MH_IMAP_STAR)
            a = max_uid;
          if (b == MH_IMAP_STAR)
            b = max_uid;
          if (a > b)
            {
              guint32 t = a;
              a = b;
              b = t;
            }
          guint lo = view_lower_bound (s->view, n, a);
          guint hi = b == G_MAXUINT32 ? n
                                      : view_lower_bound (s->view, n, b + 1);
          if (lo < hi)
            {
              IdxRange y = { lo, hi - 1 };
              g_array_append_val (r, y);
            }
        }
    }
  ranges_normalise (r);
  *ranges_out = g_steal_pointer (&r);
  return TRUE;
}

/* The UIDs of @ranges, ascending. */
static GArray *
ranges_uids (MhImapSession *s, const GArray *ranges)
{
  GArray *u = g_array_sized_new (FALSE, FALSE, sizeof (guint32),
                                 ranges_count (ranges));
  for (guint i = 0; i < ranges->len; i++)
    {
      const IdxRange *x = &g_array_index (ranges, IdxRange, i);
      for (guint j = x->first; j <= x->last; j++)
        {
          guint32 uid = mh_store_view_get_uid (s->view, j);
          g_array_append_val (u, uid);
        }
    }
  return u;
}

static gboolean
uid_sorted_contains (const GArray *uids, guint32 uid)
{
  guint lo = 0, hi = uids ? uids->len : 0;
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      guint32 v = g_array_index (uids, guint32, mid);
      if (v < uid)
        lo = mid + 1;
      else if (v > uid)
        hi = mid;
      else
        return TRUE;
    }
  return FALSE;
}

static gint
uid_cmp (gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return x < y ? -1 : x > y;
}

static char *
format_uids (const GArray *uids)
{
  if (uids == NULL || uids->len == 0)
    return g_strdup ("");
  return mh_imap_seqset_format ((const guint32 *) uids->data, uids->len);
}

/* ---- Small helpers ----------------------------------------------------- */

static const char *
store_folder (MhImapSession *s)
{
  return s->folder;
}

void
mh_imap__tagged_printf (GString *out, const MhImapCommand *cmd,
                        const char *status, const char *code,
                        const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  mh_imap__tagged (out, cmd, status, code, text);
}

/* NO for a store failure, with the response code RFC 5530 gives it. */
void
mh_imap__tagged_store_error (GString *out, const MhImapCommand *cmd,
                             const GError *error)
{
  const char *code = NULL;
  g_autofree char *text = NULL;

  if (error != NULL && error->domain == MH_STORE_ERROR)
    switch ((MhStoreError) error->code)
      {
      case MH_STORE_ERROR_REFUSED:
        {
          /* The quota check's message starts with "4.2.2 " or "5.2.2 ":
           * the IMAP client gets only the text. */
          if (mh_quota_error_get_reply (error, NULL, NULL, &text))
            code = "OVERQUOTA";
          else
            code = "LIMIT";
          break;
        }
      case MH_STORE_ERROR_NOT_FOUND:
        code = "NONEXISTENT";
        break;
      case MH_STORE_ERROR_LIMIT:
        code = "LIMIT";
        break;
      case MH_STORE_ERROR_INVALID:
        code = "CANNOT";
        break;
      case MH_STORE_ERROR_EXISTS:
        code = "ALREADYEXISTS";
        break;
      default:
        code = "SERVERBUG";
        break;
      }
  else if (error != NULL && error->domain == MH_QUOTA_ERROR
           && mh_quota_error_get_reply (error, NULL, NULL, &text))
    code = "OVERQUOTA";
  else
    code = "SERVERBUG";
  mh_imap__tagged (out, cmd, "NO", code,
                   text ? text : error ? error->message : "Internal error");
}

gboolean
mh_imap__require_selected (MhImapSession *s, const MhImapCommand *cmd,
                           GString *out)
{
  if (s->folder == NULL || s->view == NULL)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "No mailbox selected");
      return FALSE;
    }
  return TRUE;
}

static gboolean
condstore_on (MhImapSession *s)
{
  return (s->enabled
          & (MH_IMAP_ENABLED_CONDSTORE | MH_IMAP_ENABLED_QRESYNC))
         != 0;
}

static gboolean
qresync_on (MhImapSession *s)
{
  return (s->enabled & MH_IMAP_ENABLED_QRESYNC) != 0;
}

/* A system flag or keyword of STORE/APPEND. FALSE with *@bad_out for
 * \Recent and unknown system flags (RFC 9051 2.3.2: only the defined
 * ones may be set; \Recent never by a client). */
static gboolean
parse_flags (char **list, MhStoreFlags *flags_out, GPtrArray *keywords,
             char **bad_out)
{
  *flags_out = 0;
  for (guint i = 0; list != NULL && list[i] != NULL; i++)
    {
      const char *f = list[i];
      if (f[0] == '\\')
        {
          if (g_ascii_strcasecmp (f, "\\Seen") == 0)
            *flags_out |= MH_STORE_FLAG_SEEN;
          else if (g_ascii_strcasecmp (f, "\\Answered") == 0)
            *flags_out |= MH_STORE_FLAG_ANSWERED;
          else if (g_ascii_strcasecmp (f, "\\Flagged") == 0)
            *flags_out |= MH_STORE_FLAG_FLAGGED;
          else if (g_ascii_strcasecmp (f, "\\Deleted") == 0)
            *flags_out |= MH_STORE_FLAG_DELETED;
          else if (g_ascii_strcasecmp (f, "\\Draft") == 0)
            *flags_out |= MH_STORE_FLAG_DRAFT;
          else if (g_ascii_strcasecmp (f, "\\Recent") == 0)
            {
              *bad_out = g_strdup ("The \\Recent flag cannot be set by a "
                                   "client");
              return FALSE;
            }
          else
            {
              *bad_out = g_strdup_printf ("Invalid system flag %s", f);
              return FALSE;
            }
        }
      else if (g_ascii_strcasecmp (f, "$Forwarded") == 0)
        *flags_out |= MH_STORE_FLAG_FORWARDED;
      else if (f[0] == '\0')
        {
          *bad_out = g_strdup ("Empty keyword");
          return FALSE;
        }
      else
        {
          /* atom-specials (RFC 9051 section 9) cannot be in a keyword. */
          for (const char *p = f; *p; p++)
            if ((guchar) *p <= 0x20 || (guchar) *p >= 0x7f
                || strchr ("(){%*\"\\]", *p) != NULL)
              {
                *bad_out = g_strdup_printf ("Invalid keyword %s", f);
                return FALSE;
              }
          gboolean dup = FALSE;
          for (guint k = 0; k < keywords->len && !dup; k++)
            dup = g_ascii_strcasecmp (keywords->pdata[k], f) == 0;
          if (!dup)
            g_ptr_array_add (keywords, (gpointer) f);
        }
    }
  return TRUE;
}

/* "FLAGS (\Answered ... kw)" of the message at @idx of @view. @has_kw
 * says whether the folder has any keyword (saves an allocation per
 * message when it has none). */
static gboolean
is_recent (MhImapSession *s, guint idx)
{
  return mh_imap__is_recent (s, idx);
}

static void
append_flags (GString *out, MhImapSession *s, guint idx, gboolean has_kw,
              gboolean rev2)
{
  MhStoreView *view = s->view;
  MhStoreFlags f = mh_store_view_get_flags (view, idx);
  gsize start = out->len;

  g_string_append (out, "FLAGS (");
  gsize body = out->len;
  if (f & MH_STORE_FLAG_ANSWERED)
    g_string_append (out, "\\Answered ");
  if (f & MH_STORE_FLAG_FLAGGED)
    g_string_append (out, "\\Flagged ");
  if (f & MH_STORE_FLAG_DELETED)
    g_string_append (out, "\\Deleted ");
  if (f & MH_STORE_FLAG_SEEN)
    g_string_append (out, "\\Seen ");
  if (f & MH_STORE_FLAG_DRAFT)
    g_string_append (out, "\\Draft ");
  /* \Recent is gone from IMAP4rev2 (RFC 9051 appendix E). */
  if (!rev2 && is_recent (s, idx))
    g_string_append (out, "\\Recent ");
  if (f & MH_STORE_FLAG_FORWARDED)
    g_string_append (out, "$Forwarded ");
  if (has_kw)
    {
      g_auto (GStrv) kw = mh_store_view_get_keywords (view, idx);
      for (guint i = 0; kw != NULL && kw[i] != NULL; i++)
        {
          g_string_append (out, kw[i]);
          g_string_append_c (out, ' ');
        }
    }
  if (out->len > body)
    g_string_truncate (out, out->len - 1);
  g_string_append_c (out, ')');
  (void) start;
}

static gboolean
view_has_keywords (MhStoreView *view)
{
  g_auto (GStrv) kw = mh_store_view_get_folder_keywords (view);
  return kw != NULL && kw[0] != NULL;
}

/* Parses "* N FETCH" at the start of @line; 0 if it is not one. */
static guint
fetch_line_seq (const char *line, gsize len)
{
  if (len < 10 || line[0] != '*' || line[1] != ' ')
    return 0;
  guint64 v = 0;
  gsize i = 2;
  while (i < len && g_ascii_isdigit (line[i]) && v < G_MAXUINT32)
    v = v * 10 + (guint) (line[i++] - '0');
  if (i == 2 || v == 0 || v > G_MAXUINT32)
    return 0;
  if (len - i < 7 || memcmp (line + i, " FETCH ", 7) != 0)
    return 0;
  return (guint) v;
}

/* Appends @sync (output of mh_imap__sync_view) to @out without the FETCH
 * lines of messages in @own (index ranges): our response reports those.
 * Sync's FETCH lines carry no literals (flags, UID, MODSEQ only). */
static void
filter_own_fetches (GString *out, const GString *sync, const GArray *own)
{
  const char *p = sync->str, *end = sync->str + sync->len;
  while (p < end)
    {
      const char *nl = memchr (p, '\n', (gsize) (end - p));
      const char *le = nl ? nl + 1 : end;
      guint seq = fetch_line_seq (p, (gsize) (le - p));
      if (seq == 0 || own == NULL || !ranges_contain (own, seq - 1))
        g_string_append_len (out, p, le - p);
      p = le;
    }
}

/* Brings the view up to date; on failure logs and goes on (the command's
 * own work is done; the next sync will catch up). */
static void
sync_view (MhImapSession *s, GString *out, gboolean allow_expunge,
           const GArray *own)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) tmp = g_string_new (NULL);
  if (!mh_imap__sync_view (s, tmp, allow_expunge, &error))
    mh_log_warning (LOG_SVC, s->account, NULL, "view sync of %s: %s",
                    s->folder ? s->folder : "?",
                    error ? error->message : "failed");
  filter_own_fetches (out, tmp, own);
}

/* ---- FETCH ------------------------------------------------------------- */

typedef struct
{
  const MhImapCommand *cmd; /* the command this progress belongs to */
  GArray *ranges;           /* IdxRange, what is left to send */
  guint ri;                 /* current range */
  guint next;               /* next index within it */
  GArray *seen_set;         /* UIDs whose \Seen we set (sorted) */
  guint64 changedsince;
  gboolean cheap;
  gboolean has_kw;
  gboolean add_uid;
  gboolean add_modseq;
  gboolean rev2;
  guint sent;
  gboolean failed_expunged;
  gboolean failed_cte;
  char *failure;
} FetchCursor;

static void
fetch_cursor_free (gpointer p)
{
  FetchCursor *c = p;
  if (c == NULL)
    return;
  g_clear_pointer (&c->ranges, g_array_unref);
  g_clear_pointer (&c->seen_set, g_array_unref);
  g_free (c->failure);
  g_free (c);
}

static void
cursor_clear (MhImapSession *s)
{
  if (s->cursor != NULL && s->cursor_free != NULL)
    s->cursor_free (s->cursor);
  s->cursor = NULL;
  s->cursor_free = NULL;
}

/* TRUE if every attribute can be answered from the view alone. */
static gboolean
fetch_is_cheap (const GPtrArray *atts)
{
  for (guint i = 0; i < atts->len; i++)
    {
      const MhImapFetchAtt *a = atts->pdata[i];
      if (a->item != MH_IMAP_FETCH_FLAGS && a->item != MH_IMAP_FETCH_UID
          && a->item != MH_IMAP_FETCH_MODSEQ)
        return FALSE;
    }
  return TRUE;
}

/* "* N FETCH (UID u FLAGS (...) MODSEQ (m))": UID first (as Dovecot and
 * imap-fetch.c do), then the items in the client's order, MODSEQ last
 * when CONDSTORE adds it. */
static void
render_cheap (FetchCursor *c, MhImapSession *s, const GPtrArray *atts,
              guint idx, gboolean add_flags, GString *out)
{
  MhStoreView *v = s->view;
  gboolean want_uid = c->add_uid, want_flags = add_flags,
           want_modseq = c->add_modseq;

  for (guint i = 0; i < atts->len; i++)
    {
      const MhImapFetchAtt *a = atts->pdata[i];
      if (a->item == MH_IMAP_FETCH_UID)
        want_uid = TRUE;
      else if (a->item == MH_IMAP_FETCH_FLAGS)
        want_flags = TRUE;
      else if (a->item == MH_IMAP_FETCH_MODSEQ)
        want_modseq = TRUE;
    }
  g_string_append_printf (out, "* %u FETCH (", idx + 1);
  gsize start = out->len;
  if (want_uid)
    g_string_append_printf (out, "UID %u ", mh_store_view_get_uid (v, idx));
  if (want_flags)
    {
      append_flags (out, s, idx, c->has_kw, c->rev2);
      g_string_append_c (out, ' ');
    }
  if (want_modseq)
    g_string_append_printf (out, "MODSEQ (%" G_GUINT64_FORMAT ") ",
                            mh_store_view_get_modseq (v, idx));
  if (out->len > start)
    g_string_truncate (out, out->len - 1);
  g_string_append (out, ")\r\n");
}

/* FETCH (CHANGEDSINCE m VANISHED): "* VANISHED (EARLIER) uids" for the
 * UIDs of the set expunged after m (RFC 7162 3.6). */
static gboolean
fetch_vanished (MhImapSession *s, const MhImapCommand *cmd, GString *out,
                GError **error)
{
  g_autoptr (MhStoreView) ch = mh_store_changes_since (
      s->store, store_folder (s), cmd->changedsince, error);
  if (ch == NULL)
    return FALSE;
  guint nv = 0;
  const guint32 *v = mh_store_view_get_vanished (ch, &nv);
  guint n = view_count (s);
  guint32 star = n ? mh_store_view_get_uid (s->view, n - 1) : 0;
  g_autoptr (GArray) hit = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint i = 0; i < nv; i++)
    {
      /* A UID still in the client's view was not reported expunged yet:
       * it is not "vanished" for this client. */
      if (cmd->set->saved
              ? uid_sorted_contains (s->saved_uids, v[i])
              : mh_imap_seqset_contains (cmd->set, v[i], MAX (star, v[i])))
        if (n == 0 || mh_store_view_find (s->view, v[i]) < 0)
          g_array_append_val (hit, v[i]);
    }
  if (hit->len > 0)
    {
      g_array_sort (hit, uid_cmp);
      g_autofree char *set = format_uids (hit);
      g_string_append_printf (out, "* VANISHED (EARLIER) %s\r\n", set);
    }
  return TRUE;
}

static MhImapRun
fetch_start (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autofree char *bad = NULL;
  g_autoptr (GArray) ranges = NULL;
  g_autoptr (GError) error = NULL;

  if (cmd->fetch_atts == NULL || cmd->fetch_atts->len == 0)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "Missing FETCH attributes");
      return MH_IMAP_RUN_DONE;
    }
  if (cmd->vanished)
    {
      /* RFC 7162 3.6: VANISHED needs UID FETCH, QRESYNC enabled and
       * CHANGEDSINCE. */
      if (!cmd->uid)
        {
          mh_imap__tagged (out, cmd, "BAD", NULL,
                           "VANISHED is only allowed in UID FETCH");
          return MH_IMAP_RUN_DONE;
        }
      if (!qresync_on (s))
        {
          mh_imap__tagged (out, cmd, "BAD", NULL,
                           "VANISHED needs ENABLE QRESYNC first");
          return MH_IMAP_RUN_DONE;
        }
      if (cmd->changedsince == 0)
        {
          mh_imap__tagged (out, cmd, "BAD", NULL,
                           "VANISHED needs CHANGEDSINCE");
          return MH_IMAP_RUN_DONE;
        }
    }
  if (!resolve_set (s, cmd->set, cmd->uid, &ranges, &bad))
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, bad);
      return MH_IMAP_RUN_DONE;
    }
  gboolean want_modseq = FALSE;
  for (guint i = 0; i < cmd->fetch_atts->len; i++)
    if (((MhImapFetchAtt *) cmd->fetch_atts->pdata[i])->item
        == MH_IMAP_FETCH_MODSEQ)
      want_modseq = TRUE;
  /* RFC 7162 3.1: CHANGEDSINCE and the MODSEQ item are CONDSTORE
   * enabling: from now on MODSEQ goes with every FETCH. */
  if (cmd->changedsince > 0 || want_modseq)
    s->enabled |= MH_IMAP_ENABLED_CONDSTORE;

  FetchCursor *c = g_new0 (FetchCursor, 1);
  c->cmd = cmd;
  c->changedsince = cmd->changedsince;
  c->cheap = fetch_is_cheap (cmd->fetch_atts);
  c->add_uid = cmd->uid;
  c->add_modseq = condstore_on (s);
  c->rev2 = (s->enabled & MH_IMAP_ENABLED_REV2) != 0;
  s->cursor = c;
  s->cursor_free = fetch_cursor_free;

  if (cmd->vanished && !fetch_vanished (s, cmd, out, &error))
    {
      cursor_clear (s);
      mh_imap__tagged_store_error (out, cmd, error);
      return MH_IMAP_RUN_DONE;
    }


  /* \Seen first, in one store call, so the FETCH lines show it (RFC 9051
   * 6.4.5: BODY[] without .PEEK sets \Seen). */
  if (!s->read_only && !c->cheap
      && mh_imap__fetch_sets_seen (cmd->fetch_atts))
    {
      g_autoptr (GArray) unseen = g_array_new (FALSE, FALSE, sizeof (guint32));
      for (guint i = 0; i < ranges->len; i++)
        {
          const IdxRange *x = &g_array_index (ranges, IdxRange, i);
          for (guint j = x->first; j <= x->last; j++)
            if (!(mh_store_view_get_flags (s->view, j) & MH_STORE_FLAG_SEEN)
                && (c->changedsince == 0
                    || mh_store_view_get_modseq (s->view, j)
                           > c->changedsince))
              {
                guint32 u = mh_store_view_get_uid (s->view, j);
                g_array_append_val (unseen, u);
              }
        }
      if (unseen->len > 0)
        {
          if (!mh_store_set_flags (s->store, store_folder (s),
                                   (const guint32 *) unseen->data,
                                   unseen->len, MH_STORE_FLAGS_ADD,
                                   MH_STORE_FLAG_SEEN, NULL, 0, NULL,
                                   &error))
            {
              cursor_clear (s);
              mh_imap__tagged_store_error (out, cmd, error);
              return MH_IMAP_RUN_DONE;
            }
          c->seen_set = g_steal_pointer (&unseen);
          sync_view (s, out, FALSE, ranges);
        }
    }
  c->ranges = g_steal_pointer (&ranges);
  c->has_kw = s->view != NULL && view_has_keywords (s->view);
  if (c->ranges->len > 0)
    c->next = g_array_index (c->ranges, IdxRange, 0).first;
  return MH_IMAP_RUN_MORE;
}

MhImapRun
mh_imap__cmd_fetch (MhImapSession *s, const MhImapCommand *cmd,
                    GString *out)
{
  FetchCursor *c = s->cursor;

  if (c == NULL || s->cursor_free != fetch_cursor_free || c->cmd != cmd)
    {
      cursor_clear (s);
      if (!mh_imap__require_selected (s, cmd, out))
        return MH_IMAP_RUN_DONE;
      if (fetch_start (s, cmd, out) == MH_IMAP_RUN_DONE)
        return MH_IMAP_RUN_DONE;
      c = s->cursor;
    }

  MhImapFetchArgs args = {
    .store = s->store,
    .folder = store_folder (s),
    .view = s->view,
    .atts = cmd->fetch_atts,
    .add_uid = c->add_uid,
    .add_modseq = c->add_modseq,
    .utf8 = mh_imap__utf8 (s),
    .rev2 = c->rev2,
  };
  /* One reader per chunk: a single freshness check and read transaction
   * for up to 64 KiB of output, instead of one per message. Without one
   * (it failed to open) fetch_one looks each message up itself. */
  g_autoptr (MhStoreReader) reader
      = c->cheap ? NULL
                 : mh_store_reader_new (s->store, store_folder (s), NULL);
  args.reader = reader;
  guint count = view_count (s);
  /* The chunk is built in one allocation of MH_IMAP_CHUNK bytes: @out
   * would otherwise double from a few bytes up through 64 KiB, copying
   * itself each time. */
  if (out->allocated_len < MH_IMAP_CHUNK)
    {
      gsize had = out->len;
      g_string_set_size (out, MH_IMAP_CHUNK - 1);
      g_string_truncate (out, had);
    }
  gsize line_max = 0; /* longest message line in this chunk */

  while (c->ri < c->ranges->len)
    {
      const IdxRange *x = &g_array_index (c->ranges, IdxRange, c->ri);
      guint last = MIN (x->last, count ? count - 1 : 0);
      for (guint i = c->next; i <= last && count > 0; i++)
        {
          if (c->changedsince > 0
              && mh_store_view_get_modseq (s->view, i) <= c->changedsince)
            continue;
          gboolean add_flags
              = c->seen_set != NULL
                && uid_sorted_contains (c->seen_set,
                                        mh_store_view_get_uid (s->view, i));
          gsize before = out->len;
          if (c->cheap)
            {
              render_cheap (c, s, cmd->fetch_atts, i, add_flags, out);
              c->sent++;
            }
          else
            {
              g_autoptr (GError) error = NULL;
              args.add_flags = add_flags;
              if (mh_imap__fetch_one (&args, i, out, &error))
                c->sent++;
              else
                {
                  g_string_truncate (out, before);
                  if (g_error_matches (error, G_IO_ERROR,
                                       G_IO_ERROR_NOT_FOUND)
                      || g_error_matches (error, MH_STORE_ERROR,
                                          MH_STORE_ERROR_NOT_FOUND))
                    c->failed_expunged = TRUE; /* skipped: RFC 9051 7.5.1 */
                  else if (g_error_matches (error, G_IO_ERROR,
                                            G_IO_ERROR_INVALID_DATA))
                    c->failed_cte = TRUE;
                  else if (c->failure == NULL)
                    c->failure = g_strdup (error ? error->message
                                                 : "Internal error");
                }
            }
          line_max = MAX (line_max, out->len - before);
          /* Stop before the next line would take @out past the chunk
           * (lines of one FETCH are alike in size): the chunk and the
           * engine's copy of it stay in 64 KiB blocks that malloc
           * reuses, where 128 KiB ones are mapped (or the heap trimmed)
           * and faulted in again for every chunk. */
          if (out->len + line_max >= MH_IMAP_CHUNK)
            {
              c->next = i + 1;
              if (c->next > x->last)
                {
                  c->ri++;
                  if (c->ri < c->ranges->len)
                    c->next = g_array_index (c->ranges, IdxRange, c->ri).first;
                }
              return MH_IMAP_RUN_MORE;
            }
        }
      c->ri++;
      if (c->ri < c->ranges->len)
        c->next = g_array_index (c->ranges, IdxRange, c->ri).first;
    }

  if (c->failure != NULL)
    mh_imap__tagged (out, cmd, "NO", "SERVERBUG", c->failure);
  else if (c->failed_cte)
    /* RFC 3516 4.3: BINARY of a part we cannot decode. */
    mh_imap__tagged (out, cmd, "NO", "UNKNOWN-CTE",
                     "Unknown Content-Transfer-Encoding");
  else if (c->failed_expunged && c->sent == 0)
    /* RFC 5530: the messages went away under us (another tool). */
    mh_imap__tagged (out, cmd, "NO", "EXPUNGEISSUED",
                     "Some of the requested messages no longer exist");
  else
    mh_imap__tagged (out, cmd, "OK", NULL, "Fetch completed");
  cursor_clear (s);
  return MH_IMAP_RUN_DONE;
}

/* ---- STORE ------------------------------------------------------------- */

MhImapRun
mh_imap__cmd_store (MhImapSession *s, const MhImapCommand *cmd,
                    GString *out)
{
  g_autofree char *bad = NULL;
  g_autoptr (GArray) ranges = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) keywords = g_ptr_array_new ();
  MhStoreFlags flags = 0;

  if (!mh_imap__require_selected (s, cmd, out))
    return MH_IMAP_RUN_DONE;
  if (!parse_flags (cmd->store_flags, &flags, keywords, &bad)
      || !resolve_set (s, cmd->set, cmd->uid, &ranges, &bad))
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, bad);
      return MH_IMAP_RUN_DONE;
    }
  if (s->read_only)
    {
      mh_imap__tagged (out, cmd, "NO", "READ-ONLY", "Mailbox is read-only");
      return MH_IMAP_RUN_DONE;
    }
  gboolean conditional = cmd->unchangedsince != G_MAXUINT64;
  if (conditional)
    s->enabled |= MH_IMAP_ENABLED_CONDSTORE; /* RFC 7162 3.1 */

  g_autoptr (GArray) uids = ranges_uids (s, ranges);
  g_autoptr (GArray) failed = NULL;
  g_ptr_array_add (keywords, NULL);
  MhStoreFlagOp op = cmd->store_mode == MH_IMAP_STORE_ADD ? MH_STORE_FLAGS_ADD
                     : cmd->store_mode == MH_IMAP_STORE_REMOVE
                         ? MH_STORE_FLAGS_REMOVE
                         : MH_STORE_FLAGS_REPLACE;

  if (conditional && cmd->unchangedsince == 0)
    {
      /* RFC 7162 3.2: UNCHANGEDSINCE 0 always fails (every message has
       * a MODSEQ of at least 1); the store takes 0 as "no condition". */
      failed = g_array_ref (uids);
    }
  else if (uids->len > 0
           && !mh_store_set_flags (s->store, store_folder (s),
                                   (const guint32 *) uids->data, uids->len,
                                   op, flags,
                                   (const char *const *) keywords->pdata,
                                   conditional ? cmd->unchangedsince : 0,
                                   &failed, &error))
    {
      if (error->domain == MH_STORE_ERROR
          && error->code == MH_STORE_ERROR_INVALID)
        mh_imap__tagged (out, cmd, "BAD", NULL, error->message);
      else
        mh_imap__tagged_store_error (out, cmd, error);
      return MH_IMAP_RUN_DONE;
    }
  if (failed != NULL && failed->len > 1)
    g_array_sort (failed, uid_cmp);

  sync_view (s, out, FALSE, ranges);

  /* Untagged FETCH for every message of the set that passed: FLAGS unless
   * .SILENT, UID under UID STORE, MODSEQ under CONDSTORE (RFC 7162 3.2:
   * even with .SILENT). */
  gboolean modseq = condstore_on (s);
  if (!cmd->store_silent || modseq)
    {
      gboolean has_kw = view_has_keywords (s->view);
      guint n = view_count (s);
      for (guint i = 0; i < ranges->len; i++)
        {
          const IdxRange *x = &g_array_index (ranges, IdxRange, i);
          for (guint j = x->first; j <= x->last && j < n; j++)
            {
              guint32 uid = mh_store_view_get_uid (s->view, j);
              if (failed != NULL && uid_sorted_contains (failed, uid))
                continue;
              g_string_append_printf (out, "* %u FETCH (", j + 1);
              if (cmd->uid)
                g_string_append_printf (out, "UID %u ", uid);
              if (!cmd->store_silent)
                {
                  append_flags (out, s, j, has_kw,
                                (s->enabled & MH_IMAP_ENABLED_REV2) != 0);
                  g_string_append_c (out, ' ');
                }
              if (modseq)
                g_string_append_printf (out, "MODSEQ (%" G_GUINT64_FORMAT
                                             ") ",
                                        mh_store_view_get_modseq (s->view,
                                                                  j));
              g_string_truncate (out, out->len - 1);
              g_string_append (out, ")\r\n");
            }
        }
    }

  if (failed != NULL && failed->len > 0)
    {
      g_autofree char *set = NULL;
      if (cmd->uid)
        set = format_uids (failed);
      else
        {
          g_autoptr (GArray) seqs
              = g_array_new (FALSE, FALSE, sizeof (guint32));
          for (guint i = 0; i < failed->len; i++)
            {
              gint idx = mh_store_view_find (
                  s->view, g_array_index (failed, guint32, i));
              if (idx >= 0)
                {
                  guint32 seq = (guint32) idx + 1;
                  g_array_append_val (seqs, seq);
                }
            }
          set = format_uids (seqs);
        }
      g_autofree char *code = g_strdup_printf ("MODIFIED %s", set);
      mh_imap__tagged (out, cmd, "OK", code, "Conditional STORE failed");
    }
  else
    mh_imap__tagged (out, cmd, "OK", NULL, "Store completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- COPY and MOVE ----------------------------------------------------- */

/* The store name of @wire for a target mailbox; NULL after writing NO. */
static char *
target_folder (MhImapSession *s, const MhImapCommand *cmd, const char *wire,
               GString *out)
{
  g_autofree char *why = NULL;
  char *f = mh_imap__folder_from_wire (s, wire ? wire : "", &why);
  if (f == NULL)
    {
      mh_imap__tagged (out, cmd, "NO", "CANNOT",
                       why ? why : "Invalid mailbox name");
      return NULL;
    }
  if (!mh_store_folder_exists (s->store, f))
    {
      /* RFC 9051 6.3.12: TRYCREATE tells the client CREATE would help. */
      mh_imap__tagged_printf (out, cmd, "NO", "TRYCREATE", "Mailbox doesn't exist: %s",
                     wire);
      g_free (f);
      return NULL;
    }
  return f;
}

static gboolean
same_folder (const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return FALSE;
  if (g_ascii_strcasecmp (a, "INBOX") == 0)
    return g_ascii_strcasecmp (b, "INBOX") == 0;
  return strcmp (a, b) == 0;
}

MhImapRun
mh_imap__cmd_copy (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autofree char *bad = NULL;
  g_autoptr (GArray) ranges = NULL;
  g_autoptr (GError) error = NULL;
  gboolean move = cmd->kind == MH_IMAP_CMD_MOVE;

  if (!mh_imap__require_selected (s, cmd, out))
    return MH_IMAP_RUN_DONE;
  if (!resolve_set (s, cmd->set, cmd->uid, &ranges, &bad))
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, bad);
      return MH_IMAP_RUN_DONE;
    }
  if (move && s->read_only)
    {
      mh_imap__tagged (out, cmd, "NO", "READ-ONLY", "Mailbox is read-only");
      return MH_IMAP_RUN_DONE;
    }
  g_autofree char *to = target_folder (s, cmd, cmd->mailbox, out);
  if (to == NULL)
    return MH_IMAP_RUN_DONE;
  g_autoptr (GArray) uids = ranges_uids (s, ranges);
  if (uids->len == 0)
    {
      mh_imap__tagged (out, cmd, "OK", NULL, "No messages found");
      return MH_IMAP_RUN_DONE;
    }
  gboolean same = same_folder (to, s->folder);
  g_autoptr (GArray) src = NULL;
  g_autoptr (GArray) dst = NULL;
  guint32 uidvalidity = 0;
  if (!mh_store_copy (s->store, store_folder (s),
                      (const guint32 *) uids->data, uids->len, to, move,
                      &src, &dst, &uidvalidity, &error))
    {
      mh_imap__tagged_store_error (out, cmd, error);
      return MH_IMAP_RUN_DONE;
    }
  g_autofree char *code = NULL;
  if (src != NULL && dst != NULL && src->len > 0 && src->len == dst->len)
    {
      g_autofree char *ss = format_uids (src);
      g_autofree char *ds = format_uids (dst);
      code = g_strdup_printf ("COPYUID %u %s %s", uidvalidity, ss, ds);
    }
  if (move)
    {
      /* RFC 6851 4.3: COPYUID goes in an untagged OK before the
       * expunges; sync writes EXPUNGE (or VANISHED under QRESYNC) for the
       * moved messages, and EXISTS when the target is this mailbox. */
      if (code != NULL)
        g_string_append_printf (out, "* OK [%s] Moved UIDs.\r\n", code);
      sync_view (s, out, TRUE, NULL);
      mh_imap__tagged (out, cmd, "OK", NULL, "Move completed");
    }
  else
    {
      if (same)
        sync_view (s, out, FALSE, NULL);
      mh_imap__tagged (out, cmd, "OK", code, "Copy completed");
    }
  return MH_IMAP_RUN_DONE;
}

/* ---- EXPUNGE, CLOSE, UNSELECT ------------------------------------------ */

MhImapRun
mh_imap__cmd_expunge (MhImapSession *s, const MhImapCommand *cmd,
                      GString *out)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) uids = NULL;

  if (!mh_imap__require_selected (s, cmd, out))
    return MH_IMAP_RUN_DONE;
  if (cmd->uid)
    {
      g_autofree char *bad = NULL;
      g_autoptr (GArray) ranges = NULL;
      if (!resolve_set (s, cmd->set, TRUE, &ranges, &bad))
        {
          mh_imap__tagged (out, cmd, "BAD", NULL, bad);
          return MH_IMAP_RUN_DONE;
        }
      uids = ranges_uids (s, ranges);
    }
  if (s->read_only)
    {
      mh_imap__tagged (out, cmd, "NO", "READ-ONLY", "Mailbox is read-only");
      return MH_IMAP_RUN_DONE;
    }
  if (uids == NULL || uids->len > 0)
    {
      if (!mh_store_expunge (s->store, store_folder (s),
                             uids ? (const guint32 *) uids->data : NULL,
                             uids ? uids->len : 0, TRUE, NULL, &error))
        {
          mh_imap__tagged_store_error (out, cmd, error);
          return MH_IMAP_RUN_DONE;
        }
    }
  /* The view learns the expunges (ours and others') and writes EXPUNGE,
   * or VANISHED under QRESYNC (RFC 7162 3.2.10). */
  sync_view (s, out, TRUE, NULL);
  mh_imap__tagged (out, cmd, "OK", NULL, "Expunge completed");
  return MH_IMAP_RUN_DONE;
}

static void
leave_selected (MhImapSession *s)
{
  g_clear_pointer (&s->view, mh_store_view_unref);
  g_clear_pointer (&s->folder, g_free);
  g_clear_pointer (&s->saved_uids, g_array_unref);
  s->read_only = FALSE;
  s->known_modseq = 0;
  s->set_state = TRUE;
  s->new_state = MH_IMAP_STATE_AUTHENTICATED;
}

MhImapRun
mh_imap__cmd_close (MhImapSession *s, const MhImapCommand *cmd,
                    GString *out)
{
  if (!mh_imap__require_selected (s, cmd, out))
    return MH_IMAP_RUN_DONE;
  if (cmd->kind == MH_IMAP_CMD_CLOSE && !s->read_only)
    {
      /* RFC 9051 6.4.1: CLOSE expunges \Deleted messages silently (no
       * EXPUNGE responses); EXAMINE'd mailboxes are left alone. A failure
       * does not keep the client in the mailbox. */
      g_autoptr (GError) error = NULL;
      if (!mh_store_expunge (s->store, store_folder (s), NULL, 0, TRUE,
                             NULL, &error))
        mh_log_warning (LOG_SVC, s->account, NULL, "CLOSE of %s: %s",
                        s->folder, error->message);
    }
  leave_selected (s);
  mh_imap__tagged (out, cmd, "OK", NULL,
                   cmd->kind == MH_IMAP_CMD_CLOSE ? "Close completed"
                                                  : "Unselect completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- APPEND ------------------------------------------------------------ */

MhImapRun
mh_imap__cmd_append (MhImapSession *s, const MhImapCommand *cmd,
                     GString *out)
{
  g_autoptr (GError) error = NULL;

  if (cmd->messages == NULL || cmd->messages->len == 0)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "Missing message");
      return MH_IMAP_RUN_DONE;
    }
  /* Check every message before storing any: MULTIAPPEND is all or
   * nothing (RFC 3502 3). */
  guint64 total = 0;
  for (guint i = 0; i < cmd->messages->len; i++)
    {
      const MhImapAppendMessage *m = cmd->messages->pdata[i];
      MhStoreFlags fl;
      g_autoptr (GPtrArray) kw = g_ptr_array_new ();
      g_autofree char *bad = NULL;
      gsize len = m->data ? g_bytes_get_size (m->data) : 0;
      if (!parse_flags (m->flags, &fl, kw, &bad))
        {
          mh_imap__tagged (out, cmd, "BAD", NULL, bad);
          return MH_IMAP_RUN_DONE;
        }
      if (len == 0)
        {
          mh_imap__tagged (out, cmd, "NO", NULL,
                           "Can't save a zero byte message");
          return MH_IMAP_RUN_DONE;
        }
      if (s->append_limit > 0 && len > s->append_limit)
        {
          mh_imap__tagged_printf (out, cmd, "NO", "TOOBIG",
                         "Message is %" G_GSIZE_FORMAT " bytes, over the "
                         "APPENDLIMIT of %" G_GUINT64_FORMAT,
                         len, s->append_limit);
          return MH_IMAP_RUN_DONE;
        }
      if (!m->binary && memchr (g_bytes_get_data (m->data, NULL), '\0', len))
        {
          /* RFC 9051 4.3: NUL only travels in literal8 (BINARY). */
          mh_imap__tagged (out, cmd, "NO", "CANNOT",
                           "Message contains NUL; send it as a literal8");
          return MH_IMAP_RUN_DONE;
        }
      total += len;
    }
  g_autofree char *to = target_folder (s, cmd, cmd->mailbox, out);
  if (to == NULL)
    return MH_IMAP_RUN_DONE;
  /* One quota check for the whole MULTIAPPEND before anything is
   * written; the store's hook checks each message again. */
  if (s->quota != NULL
      && !mh_quota_check (s->quota, s->store, (gint64) total,
                          cmd->messages->len, &error))
    {
      if (mh_quota_error_get_reply (error, NULL, NULL, NULL))
        {
          mh_imap__tagged_store_error (out, cmd, error);
          return MH_IMAP_RUN_DONE;
        }
      g_clear_error (&error); /* not attached: the hook decides */
    }

  g_autoptr (GArray) uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint i = 0; i < cmd->messages->len; i++)
    {
      const MhImapAppendMessage *m = cmd->messages->pdata[i];
      MhStoreFlags fl = 0;
      g_autoptr (GPtrArray) kw = g_ptr_array_new ();
      g_autofree char *bad = NULL;
      guint32 uid = 0;
      parse_flags (m->flags, &fl, kw, &bad);
      g_ptr_array_add (kw, NULL);
      if (!mh_store_deliver (s->store, to, m->data, fl,
                             (const char *const *) kw->pdata, m->date, &uid,
                             &error))
        {
          if (uids->len > 0)
            {
              g_autoptr (GError) e2 = NULL;
              if (!mh_store_expunge (s->store, to,
                                     (const guint32 *) uids->data, uids->len,
                                     FALSE, NULL, &e2))
                mh_log_warning (LOG_SVC, s->account, NULL,
                                "MULTIAPPEND rollback in %s: %s", to,
                                e2->message);
            }
          if (error->domain == MH_STORE_ERROR
              && error->code == MH_STORE_ERROR_INVALID)
            mh_imap__tagged (out, cmd, "BAD", NULL, error->message);
          else
            mh_imap__tagged_store_error (out, cmd, error);
          return MH_IMAP_RUN_DONE;
        }
      g_array_append_val (uids, uid);
    }

  MhStoreStatus st = { .version = 1 };
  g_autofree char *code = NULL;
  if (mh_store_folder_status (s->store, to, &st, NULL))
    {
      g_autoptr (GArray) sorted = g_array_copy (uids);
      g_array_sort (sorted, uid_cmp);
      g_autofree char *set = NULL;
      /* RFC 4315 3: the UIDs in the order of the messages; a range only
       * when they are ascending (they are: UIDs only grow). */
      if (uids->len == 1)
        set = g_strdup_printf ("%u", g_array_index (uids, guint32, 0));
      else
        set = format_uids (sorted);
      code = g_strdup_printf ("APPENDUID %u %s", st.uidvalidity, set);
    }
  if (s->view != NULL && same_folder (to, s->folder))
    sync_view (s, out, TRUE, NULL); /* EXISTS for the selected mailbox */
  mh_imap__tagged (out, cmd, "OK", code, "Append completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- SEARCH, SORT, THREAD ---------------------------------------------- */

