/* lib/proto/imap: the parsed command's memory (free, copy, GTypes).
 *
 * Design notes
 *
 * MhImapCommand is a plain struct so hosts read fields directly; this
 * file owns its deep free and deep copy so every container in it
 * (sequence sets, the search tree, FETCH attributes, APPEND messages)
 * has exactly one owner. Copy exists for bindings (boxed type); the
 * engine never copies. The LOGIN password and the SASL initial response
 * are wiped before they are freed: a freed heap block may be handed to
 * the next allocation and show up in a core dump.
 */
#include "imap-proto-private.h"

#include <string.h>

G_DEFINE_QUARK (mh - imap - error - quark, mh_imap_error)

/* ---- Sequence sets ------------------------------------------------------- */

MhImapSeqSet *
mh_imap__seqset_new (void)
{
  MhImapSeqSet *set = g_new0 (MhImapSeqSet, 1);
  set->ranges = g_array_new (FALSE, FALSE, sizeof (MhImapRange));
  return set;
}

void
mh_imap__seqset_free (MhImapSeqSet *set)
{
  if (set == NULL)
    return;
  if (set->ranges != NULL)
    g_array_unref (set->ranges);
  g_free (set);
}

MhImapSeqSet *
mh_imap__seqset_copy (const MhImapSeqSet *set)
{
  if (set == NULL)
    return NULL;
  MhImapSeqSet *c = mh_imap__seqset_new ();
  c->saved = set->saved;
  if (set->ranges != NULL && set->ranges->len > 0)
    g_array_append_vals (c->ranges, set->ranges->data, set->ranges->len);
  return c;
}

/* ---- Search keys --------------------------------------------------------- */

MhImapSearchKey *
mh_imap__search_key_new (MhImapSearchKeyType type)
{
  MhImapSearchKey *k = g_new0 (MhImapSearchKey, 1);
  k->type = type;
  return k;
}

void
mh_imap__search_key_free (MhImapSearchKey *key)
{
  if (key == NULL)
    return;
  if (key->children != NULL)
    g_ptr_array_unref (key->children);
  g_free (key->header);
  g_free (key->string);
  mh_imap__seqset_free (key->set);
  g_free (key);
}

MhImapSearchKey *
mh_imap__search_key_copy (const MhImapSearchKey *key)
{
  if (key == NULL)
    return NULL;
  MhImapSearchKey *c = mh_imap__search_key_new (key->type);
  if (key->children != NULL)
    {
      c->children = g_ptr_array_new_full (
          key->children->len, (GDestroyNotify)mh_imap__search_key_free);
      for (guint i = 0; i < key->children->len; i++)
        g_ptr_array_add (c->children,
                         mh_imap__search_key_copy (key->children->pdata[i]));
    }
  c->header = g_strdup (key->header);
  c->string = g_strdup (key->string);
  c->date = key->date;
  c->number = key->number;
  c->set = mh_imap__seqset_copy (key->set);
  return c;
}

/* ---- FETCH attributes and APPEND messages -------------------------------- */

void
mh_imap__fetch_att_free (MhImapFetchAtt *att)
{
  if (att == NULL)
    return;
  g_free (att->part);
  g_strfreev (att->fields);
  g_free (att->section_spec);
  g_free (att);
}

static MhImapFetchAtt *
fetch_att_copy (const MhImapFetchAtt *a)
{
  MhImapFetchAtt *c = g_new0 (MhImapFetchAtt, 1);
  *c = *a;
  c->part = a->n_part > 0 ? g_memdup2 (a->part, a->n_part * sizeof (guint32))
                          : NULL;
  c->fields = g_strdupv (a->fields);
  c->section_spec = g_strdup (a->section_spec);
  return c;
}

void
mh_imap__append_message_free (MhImapAppendMessage *msg)
{
  if (msg == NULL)
    return;
  g_strfreev (msg->flags);
  if (msg->data != NULL)
    g_bytes_unref (msg->data);
  g_free (msg);
}

static MhImapAppendMessage *
append_message_copy (const MhImapAppendMessage *m)
{
  MhImapAppendMessage *c = g_new0 (MhImapAppendMessage, 1);
  c->flags = g_strdupv (m->flags);
  c->date = m->date;
  c->data = m->data != NULL ? g_bytes_ref (m->data) : NULL;
  c->binary = m->binary;
  return c;
}

/* ---- The command --------------------------------------------------------- */

MhImapCommand *
mh_imap__command_new (void)
{
  MhImapCommand *cmd = g_new0 (MhImapCommand, 1);
  cmd->unchangedsince = G_MAXUINT64;
  return cmd;
}

static void
free_secret (char *s)
{
  if (s == NULL)
    return;
  mh_core__wipe (s, strlen (s));
  g_free (s);
}

/* ID and SETMETADATA values may be NULL (NIL): those arrays are pairs
 * ending at the first NULL name, so g_strfreev() would stop early. */
static gboolean
has_pairs (const MhImapCommand *cmd)
{
  return cmd->kind == MH_IMAP_CMD_ID || cmd->kind == MH_IMAP_CMD_SETMETADATA;
}

static void
pairs_free (char **v)
{
  if (v == NULL)
    return;
  for (gsize i = 0; v[i] != NULL; i += 2)
    {
      g_free (v[i]);
      g_free (v[i + 1]);
    }
  g_free (v);
}

static char **
pairs_copy (char **v)
{
  if (v == NULL)
    return NULL;
  gsize n = 0;
  while (v[n] != NULL)
    n += 2;
  char **c = g_new0 (char *, n + 2);
  for (gsize i = 0; i < n; i++)
    c[i] = g_strdup (v[i]);
  return c;
}

void
mh_imap_command_free (MhImapCommand *cmd)
{
  if (cmd == NULL)
    return;
  g_free (cmd->tag);
  g_free (cmd->name);
  g_free (cmd->mailbox);
  g_free (cmd->mailbox2);
  g_free (cmd->reference);
  g_strfreev (cmd->patterns);
  mh_imap__seqset_free (cmd->set);
  if (cmd->fetch_atts != NULL)
    g_ptr_array_unref (cmd->fetch_atts);
  g_strfreev (cmd->store_flags);
  mh_imap__search_key_free (cmd->search);
  g_free (cmd->search_charset);
  if (cmd->sort != NULL)
    g_array_unref (cmd->sort);
  if (cmd->messages != NULL)
    g_ptr_array_unref (cmd->messages);
  mh_imap__seqset_free (cmd->qresync_known_uids);
  mh_imap__seqset_free (cmd->qresync_seq_match);
  mh_imap__seqset_free (cmd->qresync_uid_match);
  if (has_pairs (cmd))
    pairs_free (cmd->strings);
  else
    g_strfreev (cmd->strings);
  g_free (cmd->mechanism);
  free_secret (cmd->initial_response);
  g_free (cmd->user);
  free_secret (cmd->password);
  /* an AUTH_RESPONSE line carries SASL data (PLAIN: the password) */
  free_secret (cmd->line);
  g_free (cmd->compress);
  g_free (cmd);
}

MhImapCommand *
mh_imap_command_copy (const MhImapCommand *cmd)
{
  g_return_val_if_fail (cmd != NULL, NULL);
  MhImapCommand *c = g_new0 (MhImapCommand, 1);
  *c = *cmd;
  c->tag = g_strdup (cmd->tag);
  c->name = g_strdup (cmd->name);
  c->mailbox = g_strdup (cmd->mailbox);
  c->mailbox2 = g_strdup (cmd->mailbox2);
  c->reference = g_strdup (cmd->reference);
  c->patterns = g_strdupv (cmd->patterns);
  c->set = mh_imap__seqset_copy (cmd->set);
  c->fetch_atts = NULL;
  if (cmd->fetch_atts != NULL)
    {
      c->fetch_atts = g_ptr_array_new_full (
          cmd->fetch_atts->len, (GDestroyNotify)mh_imap__fetch_att_free);
      for (guint i = 0; i < cmd->fetch_atts->len; i++)
        g_ptr_array_add (c->fetch_atts,
                         fetch_att_copy (cmd->fetch_atts->pdata[i]));
    }
  c->store_flags = g_strdupv (cmd->store_flags);
  c->search = mh_imap__search_key_copy (cmd->search);
  c->search_charset = g_strdup (cmd->search_charset);
  c->sort = NULL;
  if (cmd->sort != NULL)
    {
      c->sort = g_array_sized_new (FALSE, FALSE, sizeof (MhImapSortCriterion),
                                   cmd->sort->len);
      g_array_append_vals (c->sort, cmd->sort->data, cmd->sort->len);
    }
  c->messages = NULL;
  if (cmd->messages != NULL)
    {
      c->messages = g_ptr_array_new_full (
          cmd->messages->len, (GDestroyNotify)mh_imap__append_message_free);
      for (guint i = 0; i < cmd->messages->len; i++)
        g_ptr_array_add (c->messages,
                         append_message_copy (cmd->messages->pdata[i]));
    }
  c->qresync_known_uids = mh_imap__seqset_copy (cmd->qresync_known_uids);
  c->qresync_seq_match = mh_imap__seqset_copy (cmd->qresync_seq_match);
  c->qresync_uid_match = mh_imap__seqset_copy (cmd->qresync_uid_match);
  c->strings
      = has_pairs (cmd) ? pairs_copy (cmd->strings) : g_strdupv (cmd->strings);
  c->mechanism = g_strdup (cmd->mechanism);
  c->initial_response = g_strdup (cmd->initial_response);
  c->user = g_strdup (cmd->user);
  c->password = g_strdup (cmd->password);
  c->line = g_strdup (cmd->line);
  c->compress = g_strdup (cmd->compress);
  return c;
}

G_DEFINE_BOXED_TYPE (MhImapCommand, mh_imap_command, mh_imap_command_copy,
                     mh_imap_command_free)

/* ---- Limits -------------------------------------------------------------- */

MhImapLimits *
mh_imap_limits_new (void)
{
  MhImapLimits *l = g_new0 (MhImapLimits, 1);
  l->version = 1;
  l->max_line = MH_LIMIT_IMAP_LINE_MAX;
  l->max_literal = MH_LIMIT_IMAP_NONAPPEND_LITERAL_MAX;
  l->max_append = MH_LIMIT_IMAP_APPEND_MAX;
  l->max_command = MH_LIMIT_IMAP_COMMAND_MAX;
  l->max_pending = MH_LIMIT_IMAP_PENDING_MAX;
  l->max_bad_commands = MH_LIMIT_IMAP_BAD_MAX;
  return l;
}

MhImapLimits *
mh_imap_limits_copy (const MhImapLimits *limits)
{
  g_return_val_if_fail (limits != NULL, NULL);
  return g_memdup2 (limits, sizeof *limits);
}

void
mh_imap_limits_free (MhImapLimits *limits)
{
  g_free (limits);
}

G_DEFINE_BOXED_TYPE (MhImapLimits, mh_imap_limits, mh_imap_limits_copy,
                     mh_imap_limits_free)
