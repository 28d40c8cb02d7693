/* lib/server imap-mailbox.c: the IMAP commands about mailboxes and the
 * session: SELECT/EXAMINE (with CONDSTORE and QRESYNC), LIST/LSUB (with
 * LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN), NAMESPACE, STATUS,
 * CREATE (with CREATE-SPECIAL-USE), DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, ENABLE and ID (README.md, IMAP).
 *
 * Design notes
 * - Handlers run on a worker thread (imap-private.h): they call the
 *   store, write untagged lines and then their tagged line into @out,
 *   and record state changes in the session for imap.c to apply.
 * - One namespace, personal, prefix "" and hierarchy delimiter "." (the
 *   Maildir++ separator, as Dovecot's default Maildir namespace). Names
 *   on the wire are modified UTF-7 until UTF8=ACCEPT or IMAP4rev2 is
 *   enabled; the store speaks UTF-8 (mh_imap__folder_from_wire).
 * - Special use: the role folders (Sent, Drafts, Trash, Junk, Archive)
 *   get theirs from their fixed names in the store. Any other mailbox
 *   gets one from CREATE ... (USE (...)) or SETMETADATA, kept as its RFC
 *   6154 4 "/private/specialuse" METADATA entry (imap-account.c), which
 *   LIST shows, RENAME moves and DELETE drops.
 * - LIST builds the candidate names once (folders on disk, the holes
 *   between levels, subscriptions), then matches every pattern with a
 *   bounded dynamic-programming matcher ('*' any, '%' any but '.'), so a
 *   hostile pattern costs at most name x pattern steps.
 * - RENAME of INBOX moves its messages to the new folder and leaves
 *   INBOX empty (RFC 3501 6.3.5); its children stay where they are.
 * - Failures name what is wrong and carry the RFC 5530 code:
 *   [NONEXISTENT], [ALREADYEXISTS], [CANNOT], [LIMIT], [OVERQUOTA],
 *   [SERVERBUG] (details in the log, not to the client).
 */
#include "imap-private.h"
#include "core/core-private.h"

#include <string.h>

/* ---- shared pieces ------------------------------------------------------ */

static void
reply_store_error (MhImapSession *s, const MhImapCommand *cmd, GString *out,
                   const GError *error, const char *folder)
{
  const char *code = "SERVERBUG";
  g_autofree char *text = NULL;
  if (error->domain == MH_STORE_ERROR)
    switch ((MhStoreError) error->code)
      {
      case MH_STORE_ERROR_NOT_FOUND:
        code = "NONEXISTENT";
        text = g_strdup_printf ("Mailbox does not exist: %s",
                                folder ? folder : error->message);
        break;
      case MH_STORE_ERROR_EXISTS:
        code = "ALREADYEXISTS";
        text = g_strdup (error->message);
        break;
      case MH_STORE_ERROR_INVALID:
        code = "CANNOT";
        text = g_strdup (error->message);
        break;
      case MH_STORE_ERROR_LIMIT:
        code = "LIMIT";
        text = g_strdup (error->message);
        break;
      case MH_STORE_ERROR_REFUSED:
        code = "OVERQUOTA";
        text = g_strdup (error->message);
        break;
      default:
        break;
      }
  if (text == NULL)
    {
      mh_log_error ("imap", NULL, NULL, "%s: %s %s: %s", s->account,
                    cmd->name, folder ? folder : "", error->message);
      text = g_strdup ("Internal error; the server log has the details");
    }
  mh_imap__tagged (out, cmd, "NO", code, text);
}

/* The mailbox argument as a store name, or NULL after a NO. */
static char *
folder_arg (MhImapSession *s, const MhImapCommand *cmd, const char *wire,
            GString *out)
{
  g_autofree char *why = NULL;
  if (wire == NULL)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "Missing mailbox name");
      return NULL;
    }
  char *name = mh_imap__folder_from_wire (s, wire, &why);
  if (name == NULL)
    mh_imap__tagged (out, cmd, "NO", "CANNOT", why);
  return name;
}

static void
append_flag_list (GString *out, MhStoreView *view, gboolean star)
{
  g_string_append (out, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft "
                        "$Forwarded");
  g_auto (GStrv) kw = mh_store_view_get_folder_keywords (view);
  for (char **k = kw; k && *k; k++)
    if (g_ascii_strcasecmp (*k, "$Forwarded") != 0) /* a system flag here */
      g_string_append_printf (out, " %s", *k);
  if (star)
    g_string_append (out, " \\*");
  g_string_append_c (out, ')');
}

static void
append_message_flags (MhImapSession *s, GString *out, MhStoreView *view,
                      guint i)
{
  static const struct
  {
    MhStoreFlags flag;
    const char *name;
  } names[] = {
    { MH_STORE_FLAG_SEEN, "\\Seen" },
    { MH_STORE_FLAG_ANSWERED, "\\Answered" },
    { MH_STORE_FLAG_FLAGGED, "\\Flagged" },
    { MH_STORE_FLAG_DELETED, "\\Deleted" },
    { MH_STORE_FLAG_DRAFT, "\\Draft" },
    { MH_STORE_FLAG_FORWARDED, "$Forwarded" },
  };
  MhStoreFlags f = mh_store_view_get_flags (view, i);
  GString *l = g_string_new (NULL);
  for (gsize k = 0; k < G_N_ELEMENTS (names); k++)
    if (f & names[k].flag)
      g_string_append_printf (l, " %s", names[k].name);
  g_auto (GStrv) kw = mh_store_view_get_keywords (view, i);
  for (char **k = kw; k && *k; k++)
    if (g_ascii_strcasecmp (*k, "$Forwarded") != 0)
      g_string_append_printf (l, " %s", *k);
  if (!(s->enabled & MH_IMAP_ENABLED_REV2) && mh_store_view_is_recent (view, i))
    g_string_append (l, " \\Recent");
  g_string_append_printf (out, "(%s)", l->len ? l->str + 1 : "");
  g_string_free (l, TRUE);
}

static void
forget_selected (MhImapSession *s)
{
  g_clear_pointer (&s->folder, g_free);
  g_clear_pointer (&s->view, mh_store_view_unref);
  g_clear_pointer (&s->saved_uids, g_array_unref);
  if (s->cursor_free && s->cursor)
    s->cursor_free (s->cursor);
  s->cursor = NULL;
  s->cursor_free = NULL;
  s->read_only = FALSE;
  s->known_modseq = 0;
}

/* ---- SELECT and EXAMINE ------------------------------------------------- */

/* RFC 7162 3.2.5.2: what changed since the client's modseq: VANISHED
 * (EARLIER) for expunged UIDs it knew, FETCH for changed messages. */
static gboolean
qresync_report (MhImapSession *s, const MhImapCommand *cmd,
                MhStoreView *view, GString *out, GError **error)
{
  g_autoptr (MhStoreView) ch = mh_store_changes_since (
      s->store, s->folder, cmd->qresync_modseq, error);
  if (ch == NULL)
    return FALSE;
  guint n_gone = 0;
  const guint32 *gone = mh_store_view_get_vanished (ch, &n_gone);
  g_autoptr (GArray) report = g_array_new (FALSE, FALSE, sizeof (guint32));
  guint32 top = mh_store_view_get_count (view) > 0
                    ? mh_store_view_get_uid (
                        view, mh_store_view_get_count (view) - 1)
                    : 0;
  for (guint i = 0; i < n_gone; i++)
    if (cmd->qresync_known_uids == NULL
        || mh_imap_seqset_contains (cmd->qresync_known_uids, gone[i],
                                    MAX (top, gone[i])))
      g_array_append_val (report, gone[i]);
  if (report->len > 0)
    {
      g_autofree char *set
          = mh_imap_seqset_format ((guint32 *) report->data, report->len);
      g_string_append_printf (out, "* VANISHED (EARLIER) %s\r\n", set);
    }
  guint n = mh_store_view_get_count (ch);
  for (guint i = 0; i < n; i++)
    {
      guint32 uid = mh_store_view_get_uid (ch, i);
      gint at = mh_store_view_find (view, uid);
      if (at < 0)
        continue; /* expunged after the view was made */
      g_string_append_printf (out, "* %d FETCH (UID %u FLAGS ", at + 1, uid);
      append_message_flags (s, out, view, (guint) at);
      g_string_append_printf (out, " MODSEQ (%" G_GUINT64_FORMAT "))\r\n",
                              mh_store_view_get_modseq (view, (guint) at));
    }
  return TRUE;
}

MhImapRun
mh_imap__cmd_select (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  gboolean examine = cmd->kind == MH_IMAP_CMD_EXAMINE;

  if (cmd->qresync && !(s->enabled & MH_IMAP_ENABLED_QRESYNC))
    {
      /* RFC 7162 3.2.5: QRESYNC must be enabled first */
      mh_imap__tagged (out, cmd, "BAD", NULL,
                       "QRESYNC parameter without ENABLE QRESYNC");
      return MH_IMAP_RUN_DONE;
    }
  /* Whatever happens next, the old mailbox is closed (RFC 9051 6.3.2). */
  if (s->folder != NULL)
    {
      forget_selected (s);
      if (s->enabled & (MH_IMAP_ENABLED_QRESYNC | MH_IMAP_ENABLED_REV2))
        g_string_append (out, "* OK [CLOSED] Previous mailbox closed\r\n");
    }
  s->set_state = TRUE;
  s->new_state = MH_IMAP_STATE_AUTHENTICATED;

  g_autofree char *name = folder_arg (s, cmd, cmd->mailbox, out);
  if (name == NULL)
    return MH_IMAP_RUN_DONE;
  MhStoreView *view = mh_store_select (s->store, name, !examine, &error);
  if (view == NULL)
    {
      reply_store_error (s, cmd, out, error, name);
      return MH_IMAP_RUN_DONE;
    }
  if (cmd->condstore || cmd->qresync)
    s->enabled |= MH_IMAP_ENABLED_CONDSTORE;

  MhStoreStatus st = { .version = 1 };
  mh_store_view_get_status (view, &st);
  guint count = mh_store_view_get_count (view);
  gboolean rev2 = (s->enabled & MH_IMAP_ENABLED_REV2) != 0;

  g_string_append (out, "* FLAGS ");
  append_flag_list (out, view, FALSE);
  g_string_append (out, "\r\n* OK [PERMANENTFLAGS ");
  if (examine)
    g_string_append (out, "()");
  else
    append_flag_list (out, view, TRUE);
  g_string_append_printf (out, "] %s\r\n* %u EXISTS\r\n",
                          examine ? "Read-only mailbox" : "Flags permitted",
                          count);
  if (!rev2)
    {
      guint recent = 0, unseen = 0;
      for (guint i = 0; i < count; i++)
        {
          if (mh_store_view_is_recent (view, i))
            recent++;
          if (unseen == 0
              && !(mh_store_view_get_flags (view, i) & MH_STORE_FLAG_SEEN))
            unseen = i + 1;
        }
      g_string_append_printf (out, "* %u RECENT\r\n", recent);
      if (unseen > 0)
        g_string_append_printf (out, "* OK [UNSEEN %u] First unseen\r\n",
                                unseen);
    }
  g_string_append_printf (out,
                          "* OK [UIDVALIDITY %u] UIDs valid\r\n"
                          "* OK [UIDNEXT %u] Predicted next UID\r\n"
                          "* OK [HIGHESTMODSEQ %" G_GUINT64_FORMAT
                          "] Highest\r\n",
                          st.uidvalidity, st.uidnext, st.highestmodseq);
  if (rev2)
    {
      /* RFC 9051 6.3.2: the mailbox's name as the server spells it */
      g_string_append (out, "* LIST () \".\" ");
      mh_imap__append_folder (s, out, name);
      g_string_append (out, "\r\n");
    }

  s->folder = g_steal_pointer (&name);
  s->view = view;
  s->read_only = examine;
  s->known_modseq = st.highestmodseq;
  s->new_state = MH_IMAP_STATE_SELECTED;

  if (cmd->qresync && cmd->qresync_uidvalidity == st.uidvalidity
      && cmd->qresync_modseq < st.highestmodseq
      && !qresync_report (s, cmd, view, out, &error))
    {
      mh_log_warning ("imap", NULL, NULL, "%s: QRESYNC of %s: %s",
                      s->account, s->folder, error->message);
      g_clear_error (&error);
    }
  mh_imap__tagged (out, cmd, "OK", examine ? "READ-ONLY" : "READ-WRITE",
                   examine ? "Examine completed" : "Select completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- LIST and LSUB ------------------------------------------------------ */

/* RFC 3501 6.3.8: '*' matches anything, '%' anything but the delimiter.
 * Dynamic programming over (name, pattern): bounded, no backtracking. */
static gboolean
pattern_match (const char *name, const char *pat)
{
  gsize n = strlen (name), m = strlen (pat);
  /* row[j]: name[0..i) matches pat[0..j) */
  g_autofree guint8 *row = g_new0 (guint8, m + 1);
  g_autofree guint8 *next = g_new0 (guint8, m + 1);
  row[0] = 1;
  for (gsize j = 1; j <= m; j++)
    row[j] = row[j - 1] && (pat[j - 1] == '*' || pat[j - 1] == '%');
  for (gsize i = 1; i <= n; i++)
    {
      char c = name[i - 1];
      next[0] = 0;
      for (gsize j = 1; j <= m; j++)
        {
          char p = pat[j - 1];
          if (p == '*')
            next[j] = next[j - 1] || row[j];
          else if (p == '%')
            next[j] = next[j - 1] || (row[j] && c != '.');
          else
            next[j] = row[j - 1] && p == c;
        }
      memcpy (row, next, m + 1);
    }
  return row[m] != 0;
}

typedef struct
{
  char *name;
  gboolean exists;
  gboolean subscribed;
  gboolean children;       /* an existing (or, for LSUB, subscribed) child */
  gboolean sub_children;   /* a subscribed descendant */
} Cand;

static void
cand_free (gpointer p)
{
  Cand *c = p;
  g_free (c->name);
  g_free (c);
}

static gint
cand_cmp (gconstpointer a, gconstpointer b)
{
  const Cand *x = *(Cand *const *) a, *y = *(Cand *const *) b;
  /* INBOX first, then byte order (as the store lists) */
  gboolean xi = strcmp (x->name, "INBOX") == 0;
  gboolean yi = strcmp (y->name, "INBOX") == 0;
  if (xi != yi)
    return xi ? -1 : 1;
  return strcmp (x->name, y->name);
}

static Cand *
cand_get (GHashTable *by_name, GPtrArray *all, const char *name)
{
  Cand *c = g_hash_table_lookup (by_name, name);
  if (c == NULL)
    {
      c = g_new0 (Cand, 1);
      c->name = g_strdup (name);
      g_hash_table_insert (by_name, c->name, c);
      g_ptr_array_add (all, c);
    }
  return c;
}

/* Marks every ancestor of @name in @all: @existing says the child
 * exists, @subscribed that it is subscribed. */
static void
mark_parents (GHashTable *by_name, GPtrArray *all, const char *name,
              gboolean existing, gboolean subscribed, gboolean add_holes)
{
  g_autofree char *p = g_strdup (name);
  char *dot;
  while ((dot = strrchr (p, '.')) != NULL)
    {
      *dot = '\0';
      Cand *c = add_holes ? cand_get (by_name, all, p)
                          : g_hash_table_lookup (by_name, p);
      if (c == NULL)
        continue;
      if (existing)
        c->children = TRUE;
      if (subscribed)
        c->sub_children = TRUE;
    }
}

/* RFC 8438 3: SIZE must be at least the sum of the messages'
 * RFC822.SIZE (CRLF line ends), while the store counts bytes on disk
 * (LF): add them up from the metadata cache, no message file is read. */
static gboolean
virtual_size (MhImapSession *s, const char *folder, guint64 *size_out,
              GError **error)
{
  g_autoptr (MhStoreView) v = mh_store_select (s->store, folder, FALSE,
                                               error);
  if (v == NULL)
    return FALSE;
  guint64 sum = 0;
  guint n = mh_store_view_get_count (v);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (MhStoreMessage) m = mh_store_message_get (
          s->store, folder, mh_store_view_get_uid (v, i), NULL);
      if (m != NULL) /* expunged meanwhile: not counted */
        sum += mh_store_message_get_rfc822_size (m);
    }
  *size_out = sum;
  return TRUE;
}

/* mh_store_folder_status() plus SIZE as RFC 8438 means it. */
static gboolean
folder_status (MhImapSession *s, const char *folder, MhImapStatusItem items,
               MhStoreStatus *st, GError **error)
{
  if (!mh_store_folder_status (s->store, folder, st, error))
    return FALSE;
  if (items & MH_IMAP_STATUS_SIZE)
    return virtual_size (s, folder, &st->size, error);
  return TRUE;
}

static void
append_status_items (MhImapSession *s, GString *out, MhImapStatusItem items,
                     const MhStoreStatus *st)
{
  GString *l = g_string_new (NULL);
  if (items & MH_IMAP_STATUS_MESSAGES)
    g_string_append_printf (l, " MESSAGES %u", st->messages);
  if (items & MH_IMAP_STATUS_RECENT)
    g_string_append_printf (l, " RECENT %u", st->recent);
  if (items & MH_IMAP_STATUS_UIDNEXT)
    g_string_append_printf (l, " UIDNEXT %u", st->uidnext);
  if (items & MH_IMAP_STATUS_UIDVALIDITY)
    g_string_append_printf (l, " UIDVALIDITY %u", st->uidvalidity);
  if (items & MH_IMAP_STATUS_UNSEEN)
    g_string_append_printf (l, " UNSEEN %u", st->unseen);
  if (items & MH_IMAP_STATUS_DELETED)
    g_string_append_printf (l, " DELETED %u", st->deleted);
  if (items & MH_IMAP_STATUS_SIZE)
    g_string_append_printf (l, " SIZE %" G_GUINT64_FORMAT, st->size);
  if (items & MH_IMAP_STATUS_HIGHESTMODSEQ)
    g_string_append_printf (l, " HIGHESTMODSEQ %" G_GUINT64_FORMAT,
                            st->highestmodseq);
  if (items & MH_IMAP_STATUS_APPENDLIMIT)
    {
      if (s->append_limit > 0)
        g_string_append_printf (l, " APPENDLIMIT %" G_GUINT64_FORMAT,
                                s->append_limit);
      else
        g_string_append (l, " APPENDLIMIT NIL");
    }
  g_string_append_printf (out, "(%s)", l->len ? l->str + 1 : "");
  g_string_free (l, TRUE);
}

static void
append_attr (GString *a, const char *attr)
{
  if (a->len)
    g_string_append_c (a, ' ');
  g_string_append (a, attr);
}

MhImapRun
mh_imap__cmd_list (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  gboolean lsub = cmd->kind == MH_IMAP_CMD_LSUB;
  MhImapListSelect sel = cmd->list_select;
  MhImapListReturn ret = cmd->list_return;
  gboolean extended = sel != 0 || ret != 0;
  const char *done = lsub ? "Lsub completed" : "List completed";
  const char *reference = cmd->reference ? cmd->reference : "";

  if (cmd->patterns == NULL || cmd->patterns[0] == NULL)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "Missing mailbox pattern");
      return MH_IMAP_RUN_DONE;
    }
  /* RFC 3501 6.3.8: LIST "" "" asks for the delimiter and root. */
  if (!lsub && cmd->patterns[1] == NULL && *cmd->patterns[0] == '\0')
    {
      g_string_append (out, "* LIST (\\Noselect) \".\" \"\"\r\n");
      mh_imap__tagged (out, cmd, "OK", NULL, done);
      return MH_IMAP_RUN_DONE;
    }

  /* The patterns as store names. */
  g_autoptr (GPtrArray) pats = g_ptr_array_new_with_free_func (g_free);
  for (char **p = cmd->patterns; *p; p++)
    {
      if (**p == '\0')
        continue;
      g_autofree char *full = g_strconcat (reference, *p, NULL);
      g_autofree char *why = NULL;
      char *name = mh_imap__folder_from_wire (s, full, &why);
      if (name == NULL)
        continue; /* matches nothing we could hold */
      if (g_ascii_strncasecmp (name, "INBOX", 5) == 0)
        memcpy (name, "INBOX", 5); /* "inbox*" finds INBOX too */
      g_ptr_array_add (pats, name);
    }

  g_auto (GStrv) folders = mh_store_folder_list (s->store, &error);
  g_auto (GStrv) subs = folders ? mh_store_subscriptions (s->store, &error)
                                : NULL;
  if (folders == NULL || subs == NULL)
    {
      reply_store_error (s, cmd, out, error, NULL);
      return MH_IMAP_RUN_DONE;
    }
  g_autoptr (GHashTable) by_name = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) all = g_ptr_array_new_with_free_func (cand_free);
  for (char **f = folders; *f; f++)
    cand_get (by_name, all, *f)->exists = TRUE;
  for (char **f = subs; *f; f++)
    {
      const char *n = g_ascii_strcasecmp (*f, "INBOX") == 0 ? "INBOX" : *f;
      cand_get (by_name, all, n)->subscribed = TRUE;
    }
  /* Children and holes: every level above an existing folder is listed
   * (a hole as \Noselect), and parents learn about subscribed kids. */
  guint n_all = all->len;
  for (guint i = 0; i < n_all; i++)
    {
      Cand *c = g_ptr_array_index (all, i);
      g_autofree char *name = g_strdup (c->name);
      mark_parents (by_name, all, name, c->exists || (lsub && c->subscribed),
                    c->subscribed, c->exists || lsub);
    }
  g_ptr_array_sort (all, cand_cmp);

  g_autoptr (GHashTable) uses = NULL; /* read on first need */
  gboolean want_sub = (ret & MH_IMAP_LIST_RETURN_SUBSCRIBED)
                      || (sel & MH_IMAP_LIST_SELECT_SUBSCRIBED);
  for (guint i = 0; i < all->len; i++)
    {
      Cand *c = g_ptr_array_index (all, i);
      gboolean matched = FALSE;
      for (guint k = 0; k < pats->len && !matched; k++)
        {
          const char *pat = g_ptr_array_index (pats, k);
          /* RFC 3501 6.3.9: an unsubscribed parent shows (\Noselect)
           * only where '%' stops short of its subscribed children;
           * with '*' the children themselves match. */
          if (lsub && !c->subscribed && strchr (pat, '*') != NULL)
            continue;
          matched = pattern_match (c->name, pat);
        }
      if (!matched)
        continue;
      const char *use = c->exists ? mh_store_role_special_use (
                            mh_store_folder_role (c->name))
                                  : NULL;
      if (use == NULL && c->exists)
        {
          if (uses == NULL)
            uses = mh_imap__specialuse_map (s);
          use = g_hash_table_lookup (uses, c->name);
        }
      gboolean childinfo = FALSE;
      if (lsub)
        {
          if (!c->subscribed && !c->sub_children)
            continue;
        }
      else if (sel & MH_IMAP_LIST_SELECT_SUBSCRIBED)
        {
          childinfo = (sel & MH_IMAP_LIST_SELECT_RECURSIVEMATCH)
                      && c->sub_children;
          if (!c->subscribed && !childinfo)
            continue;
        }
      else if (!c->exists && !c->children)
        continue; /* subscribed only: not a LIST answer */
      if ((sel & MH_IMAP_LIST_SELECT_SPECIAL_USE) && use == NULL)
        continue;

      g_autoptr (GString) a = g_string_new (NULL);
      if (lsub)
        {
          if (!c->subscribed || !c->exists)
            append_attr (a, "\\Noselect");
        }
      else
        {
          if (!c->exists)
            append_attr (a, extended && c->subscribed && !c->children
                                ? "\\NonExistent"
                                : "\\Noselect");
          append_attr (a, c->children ? "\\HasChildren" : "\\HasNoChildren");
          if (want_sub && c->subscribed)
            append_attr (a, "\\Subscribed");
          if (use)
            append_attr (a, use);
        }
      g_string_append_printf (out, "* %s (%s) \".\" ", lsub ? "LSUB" : "LIST",
                              a->str);
      mh_imap__append_folder (s, out, c->name);
      if (childinfo)
        g_string_append (out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
      g_string_append (out, "\r\n");

      /* RFC 5819: STATUS right after the LIST of each selectable one. */
      if (!lsub && (ret & MH_IMAP_LIST_RETURN_STATUS) && c->exists)
        {
          MhStoreStatus st = { .version = 1 };
          g_autoptr (GError) serr = NULL;
          if (folder_status (s, c->name, cmd->status_items, &st, &serr))
            {
              g_string_append (out, "* STATUS ");
              mh_imap__append_folder (s, out, c->name);
              g_string_append_c (out, ' ');
              append_status_items (s, out, cmd->status_items, &st);
              g_string_append (out, "\r\n");
            }
        }
    }
  mh_imap__tagged (out, cmd, "OK", NULL, done);
  return MH_IMAP_RUN_DONE;
}

MhImapRun
mh_imap__cmd_namespace (MhImapSession *s, const MhImapCommand *cmd,
                        GString *out)
{
  g_string_append (out, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
  mh_imap__tagged (out, cmd, "OK", NULL, "Namespace completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- STATUS ------------------------------------------------------------- */

MhImapRun
mh_imap__cmd_status (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = folder_arg (s, cmd, cmd->mailbox, out);
  if (name == NULL)
    return MH_IMAP_RUN_DONE;
  MhStoreStatus st = { .version = 1 };
  if (!folder_status (s, name, cmd->status_items, &st, &error))
    {
      reply_store_error (s, cmd, out, error, name);
      return MH_IMAP_RUN_DONE;
    }
  /* RFC 7162 3.1: STATUS (HIGHESTMODSEQ) turns CONDSTORE on */
  if (cmd->status_items & MH_IMAP_STATUS_HIGHESTMODSEQ)
    s->enabled |= MH_IMAP_ENABLED_CONDSTORE;
  g_string_append (out, "* STATUS ");
  mh_imap__append_folder (s, out, name);
  g_string_append_c (out, ' ');
  append_status_items (s, out, cmd->status_items, &st);
  g_string_append (out, "\r\n");
  mh_imap__tagged (out, cmd, "OK", NULL, "Status completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- CREATE, DELETE, RENAME --------------------------------------------- */

MhImapRun
mh_imap__cmd_create (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = folder_arg (s, cmd, cmd->mailbox, out);
  if (name == NULL)
    return MH_IMAP_RUN_DONE;
  /* RFC 3501 6.3.3: a trailing delimiter only says more levels follow */
  gsize len = strlen (name);
  if (len > 1 && name[len - 1] == '.')
    name[len - 1] = '\0';
  if (strcmp (name, "INBOX") == 0 || mh_store_folder_exists (s->store, name))
    {
      g_autofree char *t = g_strdup_printf ("Mailbox already exists: %s",
                                            name);
      mh_imap__tagged (out, cmd, "NO", "ALREADYEXISTS", t);
      return MH_IMAP_RUN_DONE;
    }
  /* RFC 6154 3: a role folder's special use comes with its fixed name;
   * any other gets the attributes as its /private/specialuse. Checked
   * before the mailbox is made: refused means not created. */
  MhStoreRole role = mh_store_folder_role (name);
  const char *fixed = mh_store_role_special_use (role);
  g_autofree char *use = NULL;
  if (fixed != NULL)
    {
      for (char **u = cmd->strings; u && *u; u++)
        if (g_ascii_strcasecmp (*u, fixed) != 0)
          {
            g_autofree char *t = g_strdup_printf (
                "%s cannot be given to %s: it keeps its special use %s",
                *u, name, fixed);
            mh_imap__tagged (out, cmd, "NO", "USEATTR", t);
            return MH_IMAP_RUN_DONE;
          }
    }
  else if (cmd->strings != NULL && cmd->strings[0] != NULL)
    {
      g_autofree char *why = NULL;
      use = mh_imap__specialuse_parse ((const char *const *) cmd->strings,
                                       &why);
      if (use == NULL)
        {
          mh_imap__tagged (out, cmd, "NO", "USEATTR", why);
          return MH_IMAP_RUN_DONE;
        }
    }
  if (!mh_store_folder_create (s->store, name, &error))
    {
      reply_store_error (s, cmd, out, error, name);
      return MH_IMAP_RUN_DONE;
    }
  if (use != NULL)
    {
      /* A metadata entry left by an earlier mailbox of this name was
       * dropped with it (DELETE); this one is new. */
      if (!mh_imap__specialuse_save (s, name, use, &error))
        {
          mh_log_error ("imap", NULL, NULL, "%s: special use of %s: %s",
                        s->account, name, error->message);
          mh_store_folder_delete (s->store, name, NULL);
          mh_imap__tagged (out, cmd, "NO", "SERVERBUG",
                           "Cannot record the special use; mailbox not "
                           "created");
          return MH_IMAP_RUN_DONE;
        }
    }
  mh_imap__tagged (out, cmd, "OK", NULL, "Create completed");
  return MH_IMAP_RUN_DONE;
}

MhImapRun
mh_imap__cmd_delete (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = folder_arg (s, cmd, cmd->mailbox, out);
  if (name == NULL)
    return MH_IMAP_RUN_DONE;
  if (strcmp (name, "INBOX") == 0)
    {
      mh_imap__tagged (out, cmd, "NO", "CANNOT", "INBOX cannot be deleted");
      return MH_IMAP_RUN_DONE;
    }
  if (!mh_store_folder_delete (s->store, name, &error))
    {
      if (g_error_matches (error, MH_STORE_ERROR, MH_STORE_ERROR_EXISTS))
        {
          g_autofree char *t = g_strdup_printf (
              "Mailbox %s has children, delete them first", name);
          mh_imap__tagged (out, cmd, "NO", "CANNOT", t);
        }
      else
        reply_store_error (s, cmd, out, error, name);
      return MH_IMAP_RUN_DONE;
    }
  mh_imap__metadata_move (s, name, NULL); /* RFC 5464 3.3: goes too */
  if (s->folder != NULL && strcmp (s->folder, name) == 0)
    {
      /* RFC 9051 6.3.4: deleting the selected mailbox closes it */
      forget_selected (s);
      s->set_state = TRUE;
      s->new_state = MH_IMAP_STATE_AUTHENTICATED;
      g_string_append (out, "* OK [CLOSED] Mailbox deleted\r\n");
    }
  mh_imap__tagged (out, cmd, "OK", NULL, "Delete completed");
  return MH_IMAP_RUN_DONE;
}

/* RFC 3501 6.3.5: renaming INBOX moves its messages to a new mailbox. */
static gboolean
rename_inbox (MhImapSession *s, const char *to, GError **error)
{
  if (!mh_store_folder_create (s->store, to, error))
    return FALSE;
  g_autoptr (MhStoreView) v = mh_store_select (s->store, "INBOX", FALSE,
                                               error);
  if (v == NULL)
    return FALSE;
  guint n = mh_store_view_get_count (v);
  if (n == 0)
    return TRUE;
  g_autofree guint32 *uids = g_new (guint32, n);
  for (guint i = 0; i < n; i++)
    uids[i] = mh_store_view_get_uid (v, i);
  return mh_store_copy (s->store, "INBOX", uids, n, to, TRUE, NULL, NULL,
                        NULL, error);
}

MhImapRun
mh_imap__cmd_rename (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *from = folder_arg (s, cmd, cmd->mailbox, out);
  if (from == NULL)
    return MH_IMAP_RUN_DONE;
  g_autofree char *to = folder_arg (s, cmd, cmd->mailbox2, out);
  if (to == NULL)
    return MH_IMAP_RUN_DONE;
  gsize len = strlen (to);
  if (len > 1 && to[len - 1] == '.')
    to[len - 1] = '\0';
  if (strcmp (to, "INBOX") == 0 || mh_store_folder_exists (s->store, to))
    {
      g_autofree char *t = g_strdup_printf ("Mailbox already exists: %s",
                                            to);
      mh_imap__tagged (out, cmd, "NO", "ALREADYEXISTS", t);
      return MH_IMAP_RUN_DONE;
    }
  gboolean ok = strcmp (from, "INBOX") == 0
                    ? rename_inbox (s, to, &error)
                    : mh_store_folder_rename (s->store, from, to, &error);
  if (!ok)
    {
      reply_store_error (s, cmd, out, error,
                         g_error_matches (error, MH_STORE_ERROR,
                                          MH_STORE_ERROR_NOT_FOUND)
                             ? from
                             : NULL);
      return MH_IMAP_RUN_DONE;
    }
  /* RFC 5464 3.3: its METADATA (and its children's) goes with it;
   * INBOX stays, and so does its. */
  if (strcmp (from, "INBOX") != 0)
    mh_imap__metadata_move (s, from, to);
  /* The selected mailbox may have moved with its parent. */
  if (s->folder != NULL && strcmp (from, "INBOX") != 0)
    {
      gsize fl = strlen (from);
      if (strncmp (s->folder, from, fl) == 0
          && (s->folder[fl] == '\0' || s->folder[fl] == '.'))
        {
          char *moved = g_strconcat (to, s->folder + fl, NULL);
          g_free (s->folder);
          s->folder = moved;
        }
    }
  mh_imap__tagged (out, cmd, "OK", NULL, "Rename completed");
  return MH_IMAP_RUN_DONE;
}

MhImapRun
mh_imap__cmd_subscribe (MhImapSession *s, const MhImapCommand *cmd,
                        GString *out)
{
  g_autoptr (GError) error = NULL;
  gboolean on = cmd->kind == MH_IMAP_CMD_SUBSCRIBE;
  g_autofree char *name = folder_arg (s, cmd, cmd->mailbox, out);
  if (name == NULL)
    return MH_IMAP_RUN_DONE;
  if (!mh_store_subscribe (s->store, name, on, &error))
    {
      reply_store_error (s, cmd, out, error, name);
      return MH_IMAP_RUN_DONE;
    }
  mh_imap__tagged (out, cmd, "OK", NULL,
                   on ? "Subscribe completed" : "Unsubscribe completed");
  return MH_IMAP_RUN_DONE;
}

/* ---- ENABLE and ID ------------------------------------------------------ */

MhImapRun
mh_imap__cmd_enable (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  static const struct
  {
    const char *name;     /* as ENABLED echoes it */
    MhImapEnabled bit;    /* what the name stands for */
    MhImapEnabled implies;
  } known[] = {
    { "CONDSTORE", MH_IMAP_ENABLED_CONDSTORE, 0 },
    /* RFC 7162 3.2.3: QRESYNC implies CONDSTORE */
    { "QRESYNC", MH_IMAP_ENABLED_QRESYNC, MH_IMAP_ENABLED_CONDSTORE },
    { "UTF8=ACCEPT", MH_IMAP_ENABLED_UTF8, 0 },
    { "IMAP4rev2", MH_IMAP_ENABLED_REV2, 0 },
    { "METADATA", MH_IMAP_ENABLED_METADATA, 0 },
  };
  GString *list = g_string_new (NULL);
  MhImapEnabled before = s->enabled, listed = 0;
  for (char **p = cmd->strings; p && *p; p++)
    for (gsize k = 0; k < G_N_ELEMENTS (known); k++)
      if (g_ascii_strcasecmp (*p, known[k].name) == 0)
        {
          /* RFC 5161 3.1: ENABLED lists what this command turned on
           * (asked for and not on before it); unknown names are
           * ignored. */
          if (!(before & known[k].bit) && !(listed & known[k].bit))
            g_string_append_printf (list, " %s", known[k].name);
          listed |= known[k].bit;
          s->enabled |= known[k].bit | known[k].implies;
        }
  g_string_append_printf (out, "* ENABLED%s\r\n", list->str);
  g_string_free (list, TRUE);
  mh_imap__tagged (out, cmd, "OK", NULL, "Enabled");
  return MH_IMAP_RUN_DONE;
}

MhImapRun
mh_imap__cmd_id (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  /* RFC 2971: log what the client says about itself (printable only) */
  if (cmd->strings != NULL)
    {
      GString *l = g_string_new (NULL);
      for (guint i = 0; cmd->strings[i] && i < 60; i += 2)
        {
          const char *v = cmd->strings[i + 1];
          g_string_append_printf (l, "%s%s=", l->len ? " " : "",
                                  cmd->strings[i]);
          for (const char *p = v ? v : "NIL"; *p && l->len < 1024; p++)
            g_string_append_c (l, (guchar) *p < 0x20 ? '?' : *p);
          if (v == NULL)
            break; /* the value was NIL: the next slot is the name */
        }
      mh_log_info ("imap", NULL, NULL, "%s: client ID %s",
                   s->account ? s->account : "(not logged in)", l->str);
      g_string_free (l, TRUE);
    }
  g_string_append_printf (out,
                          "* ID (\"name\" \"libmailhost\" \"version\" "
                          "\"%s\")\r\n",
                          mh_version ());
  mh_imap__tagged (out, cmd, "OK", NULL, "ID completed");
  return MH_IMAP_RUN_DONE;
}
