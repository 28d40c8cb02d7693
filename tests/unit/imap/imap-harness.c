/* The scripted IMAP host of imap-harness.h. */
#include "imap-harness.h"

#include <string.h>

void
imap_run_free (ImapRun *r)
{
  if (r == NULL)
    return;
  mh_imap_engine_unref (r->e);
  g_string_free (r->log, TRUE);
  g_string_free (r->out, TRUE);
  g_ptr_array_unref (r->cmds);
  g_free (r);
}

static void
add_str (GString *s, const char *k, const char *v)
{
  if (v == NULL)
    return;
  g_string_append_printf (s, " %s=", k);
  for (const char *p = v; *p; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      g_string_append_printf (s, "\\x%02x", (guchar)*p);
    else
      g_string_append_c (s, *p);
}

static void
add_set (GString *s, const char *k, const MhImapSeqSet *set)
{
  if (set == NULL)
    return;
  g_string_append_printf (s, " %s=", k);
  if (set->saved)
    g_string_append_c (s, '$');
  for (guint i = 0; i < set->ranges->len; i++)
    {
      MhImapRange *r = &g_array_index (set->ranges, MhImapRange, i);
      if (i > 0)
        g_string_append_c (s, ',');
      if (r->first == MH_IMAP_STAR)
        g_string_append_c (s, '*');
      else
        g_string_append_printf (s, "%u", r->first);
      if (r->last != r->first)
        {
          if (r->last == MH_IMAP_STAR)
            g_string_append (s, ":*");
          else
            g_string_append_printf (s, ":%u", r->last);
        }
    }
}

static void
add_strv (GString *s, const char *k, char **v, gboolean pairs)
{
  if (v == NULL)
    return;
  g_string_append_printf (s, " %s=[", k);
  for (gsize i = 0; v[i] != NULL || (pairs && i % 2 == 1); i++)
    {
      if (i > 0)
        g_string_append_c (s, '|');
      g_string_append (s, v[i] != NULL ? v[i] : "NIL");
    }
  g_string_append_c (s, ']');
}

static void
add_key (GString *s, const MhImapSearchKey *k)
{
  static const char *const names[] = {
    "AND",         "OR",        "NOT",        "ALL",
    "SEQSET",      "UID",       "ANSWERED",   "DELETED",
    "DRAFT",       "FLAGGED",   "SEEN",       "RECENT",
    "NEW",         "OLD",       "UNANSWERED", "UNDELETED",
    "UNDRAFT",     "UNFLAGGED", "UNSEEN",     "KEYWORD",
    "UNKEYWORD",   "BCC",       "CC",         "FROM",
    "TO",          "SUBJECT",   "HEADER",     "BODY",
    "TEXT",        "BEFORE",    "ON",         "SINCE",
    "SENTBEFORE",  "SENTON",    "SENTSINCE",  "LARGER",
    "SMALLER",     "MODSEQ",    "OLDER",      "YOUNGER",
    "SAVEDBEFORE", "SAVEDON",   "SAVEDSINCE", "SAVEDATESUPPORTED",
  };
  g_string_append (s, names[k->type]);
  if (k->header != NULL)
    g_string_append_printf (s, ":h=%s", k->header);
  if (k->string != NULL)
    g_string_append_printf (s, ":s=%s", k->string);
  if (k->date != 0)
    g_string_append_printf (s, ":d=%" G_GINT64_FORMAT, k->date);
  if (k->number != 0)
    g_string_append_printf (s, ":n=%" G_GUINT64_FORMAT, k->number);
  if (k->set != NULL)
    {
      GString *t = g_string_new (NULL);
      add_set (t, "set", k->set);
      g_string_append_printf (s, ":%s", t->str + 1);
      g_string_free (t, TRUE);
    }
  if (k->children != NULL)
    {
      g_string_append_c (s, '(');
      for (guint i = 0; i < k->children->len; i++)
        {
          if (i > 0)
            g_string_append_c (s, ' ');
          add_key (s, k->children->pdata[i]);
        }
      g_string_append_c (s, ')');
    }
}

char *
imap_describe (const MhImapCommand *c)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "%s %s", c->tag, c->name);
  if (c->uid)
    g_string_append (s, " uid");
  add_str (s, "mailbox", c->mailbox);
  add_str (s, "mailbox2", c->mailbox2);
  add_str (s, "ref", c->reference);
  add_strv (s, "patterns", c->patterns, FALSE);
  if (c->list_select)
    g_string_append_printf (s, " select=%x", c->list_select);
  if (c->list_return)
    g_string_append_printf (s, " return=%x", c->list_return);
  if (c->status_items)
    g_string_append_printf (s, " status=%x", c->status_items);
  add_set (s, "set", c->set);
  if (c->fetch_atts != NULL)
    {
      g_string_append (s, " atts=");
      for (guint i = 0; i < c->fetch_atts->len; i++)
        {
          MhImapFetchAtt *a = c->fetch_atts->pdata[i];
          g_string_append_printf (s, "%s%d", i ? "," : "", a->item);
          if (a->peek)
            g_string_append (s, "p");
          if (a->section_spec != NULL)
            g_string_append_printf (s, "[%s]", a->section_spec);
          if (a->n_part > 0)
            {
              g_string_append (s, "{");
              for (guint k = 0; k < a->n_part; k++)
                g_string_append_printf (s, "%s%u", k ? "." : "", a->part[k]);
              g_string_append (s, "}");
            }
          if (a->text != 0)
            g_string_append_printf (s, "t%d", a->text);
          if (a->fields != NULL)
            {
              g_autofree char *j = g_strjoinv ("+", a->fields);
              g_string_append_printf (s, "f(%s)", j);
            }
          if (a->partial)
            g_string_append_printf (
                s, "<%" G_GUINT64_FORMAT ".%" G_GUINT64_FORMAT ">", a->offset,
                a->length);
        }
    }
  if (c->changedsince)
    g_string_append_printf (s, " changedsince=%" G_GUINT64_FORMAT,
                            c->changedsince);
  if (c->vanished)
    g_string_append (s, " vanished");
  if (c->store_flags != NULL)
    g_string_append_printf (s, " store=%d%s", c->store_mode,
                            c->store_silent ? "s" : "");
  add_strv (s, "flags", c->store_flags, FALSE);
  if (c->unchangedsince != G_MAXUINT64)
    g_string_append_printf (s, " unchangedsince=%" G_GUINT64_FORMAT,
                            c->unchangedsince);
  if (c->search != NULL)
    {
      g_string_append (s, " search=");
      add_key (s, c->search);
    }
  add_str (s, "charset", c->search_charset);
  if (c->esearch)
    g_string_append_printf (s, " esearch=%x", c->search_return);
  if (c->sort != NULL)
    {
      g_string_append (s, " sort=");
      for (guint i = 0; i < c->sort->len; i++)
        {
          MhImapSortCriterion *sc
              = &g_array_index (c->sort, MhImapSortCriterion, i);
          g_string_append_printf (s, "%s%s%d", i ? "," : "",
                                  sc->reverse ? "-" : "", sc->key);
        }
    }
  if (c->kind == MH_IMAP_CMD_THREAD)
    g_string_append_printf (s, " thread=%d", c->thread);
  if (c->messages != NULL)
    for (guint i = 0; i < c->messages->len; i++)
      {
        MhImapAppendMessage *m = c->messages->pdata[i];
        gsize n;
        const char *d = g_bytes_get_data (m->data, &n);
        g_autofree char *data = g_strndup (d != NULL ? d : "", n);
        g_string_append_printf (s, " msg%u:", i);
        add_strv (s, "flags", m->flags, FALSE);
        if (m->date)
          g_string_append_printf (s, " date=%" G_GINT64_FORMAT, m->date);
        if (m->binary)
          g_string_append (s, " binary");
        add_str (s, "data", data);
      }
  if (c->condstore)
    g_string_append (s, " condstore");
  if (c->qresync)
    g_string_append_printf (s, " qresync=%u/%" G_GUINT64_FORMAT,
                            c->qresync_uidvalidity, c->qresync_modseq);
  add_set (s, "known", c->qresync_known_uids);
  add_set (s, "seqmatch", c->qresync_seq_match);
  add_set (s, "uidmatch", c->qresync_uid_match);
  add_strv (s, "strings", c->strings,
            c->kind == MH_IMAP_CMD_ID || c->kind == MH_IMAP_CMD_SETMETADATA);
  if (c->metadata_maxsize)
    g_string_append_printf (s, " maxsize=%" G_GUINT64_FORMAT,
                            c->metadata_maxsize);
  if (c->metadata_depth)
    g_string_append_printf (s, " depth=%d", c->metadata_depth);
  add_str (s, "mech", c->mechanism);
  add_str (s, "ir", c->initial_response);
  add_str (s, "user", c->user);
  add_str (s, "pass", c->password);
  add_str (s, "line", c->line);
  add_str (s, "compress", c->compress);
  return g_string_free (s, FALSE);
}

static void
drain_out (ImapRun *r)
{
  const guint8 *p;
  gsize n = mh_imap_engine_peek_output (r->e, &p);
  g_string_append_len (r->out, (const char *)p, (gssize)n);
  mh_imap_engine_consume_output (r->e, n);
}

static void
answer (ImapRun *r, const ImapSetup *s, MhImapCommand *cmd)
{
  MhImapEngine *e = r->e;
  switch (cmd->kind)
    {
    case MH_IMAP_CMD_LOGIN:
      if (g_strcmp0 (cmd->user, "user") == 0
          && g_strcmp0 (cmd->password, "pass") == 0)
        {
          mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
          mh_imap_engine_tagged (e, cmd, "OK", NULL, "Logged in");
        }
      else
        mh_imap_engine_tagged (e, cmd, "NO", "AUTHENTICATIONFAILED",
                               "Authentication failed");
      break;
    case MH_IMAP_CMD_AUTHENTICATE:
    case MH_IMAP_CMD_AUTH_RESPONSE:
      {
        const char *resp = cmd->kind == MH_IMAP_CMD_AUTHENTICATE
                               ? cmd->initial_response
                               : cmd->line;
        if (resp == NULL)
          {
            mh_imap_engine_continuation (e, "");
            break;
          }
        if (g_str_equal (resp, "*"))
          mh_imap_engine_tagged (e, cmd, "BAD", NULL,
                                 "Authentication cancelled");
        else if (g_str_equal (resp, "AHVzZXIAcGFzcw==")) /* \0user\0pass */
          {
            mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
            mh_imap_engine_tagged (e, cmd, "OK", NULL, "Logged in");
          }
        else
          mh_imap_engine_tagged (e, cmd, "NO", "AUTHENTICATIONFAILED",
                                 "Authentication failed");
        mh_imap_engine_auth_done (e);
        break;
      }
    case MH_IMAP_CMD_SELECT:
    case MH_IMAP_CMD_EXAMINE:
      mh_imap_engine_set_state (e, MH_IMAP_STATE_SELECTED);
      mh_imap_engine_tagged (e, cmd, "OK", "READ-WRITE", NULL);
      break;
    case MH_IMAP_CMD_CLOSE:
    case MH_IMAP_CMD_UNSELECT:
      mh_imap_engine_set_state (e, MH_IMAP_STATE_AUTHENTICATED);
      mh_imap_engine_tagged (e, cmd, "OK", NULL, NULL);
      break;
    case MH_IMAP_CMD_IDLE:
      mh_imap_engine_continuation (e, "idling");
      break;
    case MH_IMAP_CMD_DONE:
      if (cmd->line == NULL)
        mh_imap_engine_tagged (e, cmd, "OK", NULL, "IDLE terminated");
      else
        mh_imap_engine_tagged (e, cmd, "BAD", NULL, "Expected DONE");
      break;
    case MH_IMAP_CMD_STARTTLS:
      if (s->refuse_starttls)
        mh_imap_engine_tagged (e, cmd, "NO", NULL, "No TLS here");
      else
        {
          mh_imap_engine_tagged (e, cmd, "OK", NULL, "Begin TLS negotiation");
          mh_imap_engine_starttls_done (e);
        }
      break;
    case MH_IMAP_CMD_LOGOUT:
      mh_imap_engine_bye (e, "Logging out");
      mh_imap_engine_tagged (e, cmd, "OK", NULL, NULL);
      break;
    default:
      mh_imap_engine_tagged (e, cmd, "OK", NULL, NULL);
      break;
    }
}

static void
host (ImapRun *r, const ImapSetup *s)
{
  MhImapCommand *cmd;
  while ((cmd = mh_imap_engine_next_command (r->e)) != NULL)
    {
      g_autofree char *d = imap_describe (cmd);
      g_string_append_printf (r->log, "%s\n", d);
      answer (r, s, cmd);
      g_ptr_array_add (r->cmds, cmd);
    }
  drain_out (r);
}

static ImapRun *run_impl (const ImapSetup *s, const char *script, gssize len,
                          gsize piece, gsize cut);

ImapRun *
imap_run (const ImapSetup *s, const char *script, gssize len, gsize piece)
{
  return run_impl (s, script, len, piece, 0);
}

ImapRun *
imap_run_cut (const ImapSetup *s, const char *script, gssize len, gsize cut)
{
  return run_impl (s, script, len, 0, cut);
}

static ImapRun *
run_impl (const ImapSetup *s, const char *script, gssize len, gsize piece,
          gsize cut)
{
  ImapRun *r = g_new0 (ImapRun, 1);
  r->e = mh_imap_engine_new (&s->limits);
  r->log = g_string_new (NULL);
  r->out = g_string_new (NULL);
  r->cmds
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mh_imap_command_free);
  mh_imap_engine_set_state (r->e, s->state);
  mh_imap_engine_set_utf8 (r->e, s->utf8);
  mh_imap_engine_set_literal_minus (r->e, s->literal_minus);
  gsize n = len < 0 ? strlen (script) : (gsize)len;
  gsize off = 0;
  while (off < n)
    {
      gsize want = piece == 0 ? n - off : MIN (piece, n - off);
      if (cut > 0 && off < cut)
        want = cut - off;
      gsize used
          = mh_imap_engine_feed (r->e, (const guint8 *)script + off, want);
      off += used;
      host (r, s);
      if (used == 0)
        {
          /* the host drained commands: the engine must take more now */
          used = mh_imap_engine_feed (r->e, (const guint8 *)script + off, want);
          off += used;
          host (r, s);
          if (used == 0 && !mh_imap_engine_is_closing (r->e))
            fail_msg ("engine stalled at offset %" G_GSIZE_FORMAT, off);
          if (used == 0)
            break;
        }
    }
  host (r, s);
  r->closing = mh_imap_engine_is_closing (r->e);
  return r;
}

static char *
without_plus_ok (const char *s)
{
  GString *o = g_string_new (NULL);
  const char *p = s;
  while (*p)
    {
      const char *nl = strchr (p, '\n');
      gsize n = nl != NULL ? (gsize)(nl - p + 1) : strlen (p);
      if (!(n == 6 && strncmp (p, "+ OK\r\n", 6) == 0))
        g_string_append_len (o, p, (gssize)n);
      p += n;
    }
  return g_string_free (o, FALSE);
}

static guint
count_plus_ok (const char *s)
{
  guint n = 0;
  for (const char *p = s; (p = strstr (p, "+ OK\r\n")) != NULL; p += 6)
    n++;
  return n;
}

ImapRun *
imap_run_all (const ImapSetup *s, const char *script, gssize len)
{
  ImapRun *whole = imap_run (s, script, len, 0);
  const gsize pieces[] = { 1, 7 };
  for (gsize i = 0; i < G_N_ELEMENTS (pieces); i++)
    {
      g_autoptr (ImapRun) r = imap_run (s, script, len, pieces[i]);
      if (strcmp (r->log->str, whole->log->str) != 0)
        fail_msg ("piece %" G_GSIZE_FORMAT " log differs:\n%s\nvs whole:\n%s",
                  pieces[i], r->log->str, whole->log->str);
      /* "+ OK" for a synchronising literal goes out as soon as the
       * literal is announced, so where it lands among the replies to
       * earlier commands depends on the cut; everything else may not */
      g_autofree char *o1 = without_plus_ok (r->out->str);
      g_autofree char *o2 = without_plus_ok (whole->out->str);
      if (strcmp (o1, o2) != 0
          || count_plus_ok (r->out->str) != count_plus_ok (whole->out->str))
        fail_msg ("piece %" G_GSIZE_FORMAT " output differs:\n%s\nvs "
                  "whole:\n%s",
                  pieces[i], r->out->str, whole->out->str);
    }
  return whole;
}

MhImapCommand *
imap_parse_ok (const char *wire, MhImapState state)
{
  g_autofree char *script = g_strconcat (wire, "\r\n", NULL);
  MhImapEngine *e = mh_imap_engine_new (NULL);
  mh_imap_engine_set_state (e, state);
  gsize n = strlen (script);
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)script, n), n);
  MhImapCommand *cmd = mh_imap_engine_next_command (e);
  const guint8 *out;
  gsize on = mh_imap_engine_peek_output (e, &out);
  if (cmd == NULL || on > 0)
    fail_msg ("no command from \"%s\"; output: %.*s", wire, (int)on,
              (const char *)out);
  assert_null (mh_imap_engine_next_command (e));
  mh_imap_engine_unref (e);
  return cmd;
}

void
imap_parse_bad (const char *wire, MhImapState state, const char *reply)
{
  g_autofree char *script = g_strconcat (wire, "\r\n", NULL);
  MhImapEngine *e = mh_imap_engine_new (NULL);
  mh_imap_engine_set_state (e, state);
  gsize n = strlen (script);
  assert_int_equal (mh_imap_engine_feed (e, (const guint8 *)script, n), n);
  MhImapCommand *cmd = mh_imap_engine_next_command (e);
  if (cmd != NULL)
    {
      g_autofree char *d = imap_describe (cmd);
      fail_msg ("\"%s\" parsed as %s", wire, d);
    }
  const guint8 *out;
  gsize on = mh_imap_engine_peek_output (e, &out);
  g_autofree char *got = g_strndup ((const char *)out, on);
  g_autofree char *want = g_strconcat (reply, "\r\n", NULL);
  if (strcmp (got, want) != 0)
    fail_msg ("\"%s\"\n  got:  %s  want: %s", wire, got, want);
  mh_imap_engine_unref (e);
}
