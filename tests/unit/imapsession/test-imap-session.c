/* Unit tests of lib/server/imap.c's helpers (folder names on the wire,
 * tagged lines, untagged updates) and imap-mailbox.c's handlers, called
 * directly with a hand-built session on a real store in a temp dir and
 * hand-built commands, with exact response checks. */
#include "mh-test.h"
#include "server/imap-private.h"

#include <string.h>

typedef struct
{
  char *dir;
  MhStore *store;
  MhImapSession s;
} Fx;

static int
setup (void **state)
{
  g_autoptr (GError) error = NULL;
  Fx *fx = g_new0 (Fx, 1);
  fx->dir = mh_test_mkdtemp ();
  g_autofree char *maildir = g_build_filename (fx->dir, "mail", NULL);
  g_autofree char *index = g_build_filename (fx->dir, "index", NULL);
  fx->store = mh_store_open (maildir, index, MH_STORE_OPEN_CREATE, &error);
  assert_non_null (fx->store);
  fx->s.account = g_strdup ("alice@example.org");
  fx->s.store = fx->store;
  fx->s.append_limit = 1000;
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fx *fx = *state;
  mh_imap__session_free_priv (&fx->s);
  g_clear_pointer (&fx->s.view, mh_store_view_unref);
  g_free (fx->s.folder);
  g_free (fx->s.account);
  if (fx->s.saved_uids)
    g_array_unref (fx->s.saved_uids);
  mh_store_unref (fx->store);
  mh_test_rmtree (fx->dir);
  g_free (fx->dir);
  g_free (fx);
  return 0;
}

static guint32
deliver (Fx *fx, const char *folder, int n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = g_strdup_printf (
      "From: a@example.org\r\nSubject: m%d\r\n\r\nbody %d\r\n", n, n);
  g_autoptr (GBytes) b = g_bytes_new (text, strlen (text));
  guint32 uid = 0;
  assert_true (mh_store_deliver (fx->store, folder, b, 0, NULL, 0, &uid,
                                 &error));
  return uid;
}

/* A command as the engine would hand it over. */
static MhImapCommand *
command (MhImapCommandKind kind, const char *name, const char *mailbox)
{
  MhImapCommand *c = g_new0 (MhImapCommand, 1);
  c->tag = g_strdup ("a1");
  c->kind = kind;
  c->name = g_strdup (name);
  c->mailbox = g_strdup (mailbox);
  c->unchangedsince = G_MAXUINT64;
  return c;
}

static char *
run (Fx *fx, MhImapHandler h, MhImapCommand *cmd)
{
  GString *out = g_string_new (NULL);
  assert_int_equal (h (&fx->s, cmd, out), MH_IMAP_RUN_DONE);
  mh_imap_command_free (cmd);
  return g_string_free (out, FALSE);
}

/* ---- names --------------------------------------------------------------- */

static void
test_folder_names_mutf7 (void **state)
{
  Fx *fx = *state;
  struct
  {
    const char *wire, *name;
  } ok[] = {
    { "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
    { "Tom &- Jerry", "Tom & Jerry" },
    { "&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
    { "&2D3eAA-", "\xf0\x9f\x98\x80" }, /* a surrogate pair */
    { "inbox", "INBOX" },
    { "Inbox.Sub", "INBOX.Sub" },
    { "Inboxes", "Inboxes" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (ok); i++)
    {
      g_autofree char *why = NULL;
      g_autofree char *name = mh_imap__folder_from_wire (&fx->s, ok[i].wire,
                                                         &why);
      assert_non_null (name);
      assert_string_equal (name, ok[i].name);
      if (strcmp (ok[i].name, "INBOX") == 0
          || g_str_has_prefix (ok[i].name, "INBOX."))
        continue;
      GString *out = g_string_new (NULL);
      mh_imap__append_folder (&fx->s, out, ok[i].name);
      /* astring: an atom or a quoted string */
      g_autofree char *bare = g_strdup (out->str[0] == '"'
                                            ? out->str + 1
                                            : out->str);
      if (out->str[0] == '"')
        bare[strlen (bare) - 1] = '\0';
      assert_string_equal (bare, ok[i].wire);
      g_string_free (out, TRUE);
    }
  /* not canonical or not modified UTF-7: refused with a reason */
  const char *bad[] = { "a&b", "&AGE-", "&Zg", "caf\xc3\xa9", "&-&",
                        "&AAA-" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *why = NULL;
      char *name = mh_imap__folder_from_wire (&fx->s, bad[i], &why);
      assert_null (name);
      assert_non_null (strstr (why, "modified UTF-7"));
    }
  /* UTF8=ACCEPT: UTF-8 both ways */
  fx->s.enabled |= MH_IMAP_ENABLED_UTF8;
  g_autofree char *why = NULL;
  g_autofree char *name = mh_imap__folder_from_wire (&fx->s,
                                                     "caf\xc3\xa9", &why);
  assert_string_equal (name, "caf\xc3\xa9");
  assert_null (mh_imap__folder_from_wire (&fx->s, "caf\xc3", &why));
  GString *out = g_string_new (NULL);
  mh_imap__append_folder (&fx->s, out, "caf\xc3\xa9");
  assert_string_equal (out->str, "\"caf\xc3\xa9\"");
  g_string_free (out, TRUE);
}

static void
test_tagged_line_stays_one_line (void **state)
{
  g_autoptr (MhImapCommand) cmd = command (MH_IMAP_CMD_NOOP, "NOOP", NULL);
  GString *out = g_string_new (NULL);
  mh_imap__tagged (out, cmd, "NO", "SERVERBUG", "bad\r\n* OK injected");
  assert_string_equal (out->str, "a1 NO [SERVERBUG] bad  * OK injected\r\n");
  g_string_truncate (out, 0);
  mh_imap__tagged (out, cmd, "OK", NULL, "done");
  assert_string_equal (out->str, "a1 OK done\r\n");
  g_string_free (out, TRUE);
}

/* ---- updates ------------------------------------------------------------- */

static void
test_sync_view_reports_changes (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 u1 = deliver (fx, NULL, 1);
  guint32 u2 = deliver (fx, NULL, 2);
  g_autofree char *sel = run (fx, mh_imap__cmd_select,
                              command (MH_IMAP_CMD_SELECT, "SELECT",
                                       "INBOX"));
  assert_non_null (strstr (sel, "* 2 EXISTS\r\n* 2 RECENT\r\n"));
  GString *out = g_string_new (NULL);

  /* nothing changed: nothing said */
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  assert_string_equal (out->str, "");

  /* a new message, then a flag change by someone else */
  deliver (fx, NULL, 3);
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  assert_string_equal (out->str, "* 3 EXISTS\r\n* 3 RECENT\r\n");
  g_string_truncate (out, 0);
  assert_true (mh_store_set_flags (fx->store, NULL, &u2, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_SEEN,
                                   NULL, 0, NULL, &error));
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  assert_string_equal (out->str,
                       "* 2 FETCH (FLAGS (\\Seen \\Recent))\r\n");
  g_string_truncate (out, 0);

  /* CONDSTORE adds MODSEQ, QRESYNC the UID */
  fx->s.enabled |= MH_IMAP_ENABLED_CONDSTORE | MH_IMAP_ENABLED_QRESYNC;
  assert_true (mh_store_set_flags (fx->store, NULL, &u2, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_FLAGGED,
                                   NULL, 0, NULL, &error));
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  g_autofree char *want = g_strdup_printf (
      "* 2 FETCH (UID %u FLAGS (\\Seen \\Flagged \\Recent) MODSEQ (%"
      G_GUINT64_FORMAT "))\r\n",
      u2, mh_store_view_get_modseq (fx->s.view, 1));
  assert_string_equal (out->str, want);
  g_string_truncate (out, 0);

  /* an expunge while EXPUNGE may not be sent: the view stays */
  assert_true (mh_store_expunge (fx->store, NULL, &u1, 1, FALSE, NULL,
                                 &error));
  assert_true (mh_imap__sync_view (&fx->s, out, FALSE, &error));
  assert_string_equal (out->str, "");
  assert_int_equal (mh_store_view_get_count (fx->s.view), 3);
  /* ... and is reported when it may: VANISHED under QRESYNC */
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  /* the count of \Recent (the session's own) drops with it */
  g_autofree char *vanished = g_strdup_printf ("* VANISHED %u\r\n"
                                               "* 2 RECENT\r\n", u1);
  assert_string_equal (out->str, vanished);
  assert_int_equal (mh_store_view_get_count (fx->s.view), 2);
  g_string_truncate (out, 0);

  /* without QRESYNC: EXPUNGE by sequence number, highest first */
  fx->s.enabled = 0;
  deliver (fx, NULL, 4);
  deliver (fx, NULL, 5);
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  g_string_truncate (out, 0);
  assert_int_equal (mh_store_view_get_count (fx->s.view), 4);
  guint32 gone[2] = { mh_store_view_get_uid (fx->s.view, 1),
                      mh_store_view_get_uid (fx->s.view, 3) };
  assert_true (mh_store_expunge (fx->store, NULL, gone, 2, FALSE, NULL,
                                 &error));
  assert_true (mh_imap__sync_view (&fx->s, out, TRUE, &error));
  assert_string_equal (out->str,
                       "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n* 2 RECENT\r\n");
  g_string_free (out, TRUE);
}

/* ---- mailbox commands ---------------------------------------------------- */

static void
test_list_patterns_and_holes (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "A.B.C", &error));
  assert_true (mh_store_folder_create (fx->store, "Junk", &error));
  /* remove the middle level behind the store's back: a hole */
  g_autofree char *mid = g_build_filename (fx->dir, "mail", ".A.B", NULL);
  mh_test_rmtree (mid);

  MhImapCommand *c = command (MH_IMAP_CMD_LIST, "LIST", NULL);
  c->reference = g_strdup ("");
  c->patterns = g_strsplit ("*", " ", -1);
  g_autofree char *all = run (fx, mh_imap__cmd_list, c);
  assert_string_equal (all, "* LIST (\\HasNoChildren) \".\" INBOX\r\n"
                            "* LIST (\\HasChildren) \".\" A\r\n"
                            "* LIST (\\Noselect \\HasChildren) \".\" A.B\r\n"
                            "* LIST (\\HasNoChildren) \".\" A.B.C\r\n"
                            "* LIST (\\HasNoChildren \\Junk) \".\" Junk\r\n"
                            "a1 OK List completed\r\n");
  c = command (MH_IMAP_CMD_LIST, "LIST", NULL);
  c->reference = g_strdup ("A.");
  c->patterns = g_strsplit ("%", " ", -1);
  g_autofree char *level = run (fx, mh_imap__cmd_list, c);
  assert_string_equal (level,
                       "* LIST (\\Noselect \\HasChildren) \".\" A.B\r\n"
                       "a1 OK List completed\r\n");
  /* a pattern that would backtrack badly elsewhere stays cheap */
  c = command (MH_IMAP_CMD_LIST, "LIST", NULL);
  c->reference = g_strdup ("");
  c->patterns = g_strsplit ("*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%x",
                            " ", -1);
  g_autofree char *none = run (fx, mh_imap__cmd_list, c);
  assert_string_equal (none, "a1 OK List completed\r\n");
}

static void
test_rename_inbox_moves_messages (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  deliver (fx, NULL, 1);
  deliver (fx, NULL, 2);
  MhImapCommand *c = command (MH_IMAP_CMD_RENAME, "RENAME", "inbox");
  c->mailbox2 = g_strdup ("Old.Mail");
  g_autofree char *out = run (fx, mh_imap__cmd_rename, c);
  assert_string_equal (out, "a1 OK Rename completed\r\n");
  MhStoreStatus st = { .version = 1 };
  assert_true (mh_store_folder_status (fx->store, NULL, &st, &error));
  assert_int_equal (st.messages, 0);
  assert_true (mh_store_folder_status (fx->store, "Old.Mail", &st, &error));
  assert_int_equal (st.messages, 2);
  assert_true (mh_store_folder_exists (fx->store, "Old"));
  c = command (MH_IMAP_CMD_RENAME, "RENAME", "Old");
  c->mailbox2 = g_strdup ("INBOX");
  g_autofree char *again = run (fx, mh_imap__cmd_rename, c);
  assert_string_equal (again, "a1 NO [ALREADYEXISTS] Mailbox already "
                              "exists: INBOX\r\n");
}

static void
test_enable_and_status (void **state)
{
  Fx *fx = *state;
  deliver (fx, NULL, 1);
  MhImapCommand *c = command (MH_IMAP_CMD_ENABLE, "ENABLE", NULL);
  c->strings = g_strsplit ("QRESYNC CONDSTORE X-UNKNOWN utf8=accept", " ",
                           -1);
  g_autofree char *en = run (fx, mh_imap__cmd_enable, c);
  assert_string_equal (en, "* ENABLED QRESYNC CONDSTORE UTF8=ACCEPT\r\n"
                           "a1 OK Enabled\r\n");
  assert_true (mh_imap__utf8 (&fx->s));
  c = command (MH_IMAP_CMD_STATUS, "STATUS", "INBOX");
  c->status_items = MH_IMAP_STATUS_MESSAGES | MH_IMAP_STATUS_UNSEEN
                    | MH_IMAP_STATUS_SIZE | MH_IMAP_STATUS_APPENDLIMIT;
  g_autofree char *st = run (fx, mh_imap__cmd_status, c);
  /* 44 bytes with CRLF line ends (40 in the Maildir file, with LF) */
  assert_string_equal (st, "* STATUS INBOX (MESSAGES 1 UNSEEN 1 SIZE 44 "
                           "APPENDLIMIT 1000)\r\na1 OK Status completed\r\n");
}


/* ---- METADATA across RENAME/DELETE, special use (imap-account.c) ------ */

static char *
set_meta (Fx *fx, const char *mbox, const char *entry, const char *value)
{
  MhImapCommand *c = command (MH_IMAP_CMD_SETMETADATA, "SETMETADATA", mbox);
  c->strings = g_new0 (char *, 3);
  c->strings[0] = g_strdup (entry);
  c->strings[1] = g_strdup (value); /* NULL: NIL */
  return run (fx, mh_imap__cmd_metadata, c);
}

static char *
get_meta (Fx *fx, const char *mbox, const char *entry)
{
  MhImapCommand *c = command (MH_IMAP_CMD_GETMETADATA, "GETMETADATA", mbox);
  c->strings = g_new0 (char *, 2);
  c->strings[0] = g_strdup (entry);
  return run (fx, mh_imap__cmd_metadata, c);
}

static char *
list_one (Fx *fx, const char *pattern)
{
  MhImapCommand *c = command (MH_IMAP_CMD_LIST, "LIST", NULL);
  c->reference = g_strdup ("");
  c->patterns = g_strsplit (pattern, " ", -1);
  return run (fx, mh_imap__cmd_list, c);
}

static void
test_metadata_follows_rename (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  fx->s.data_dir = fx->dir;
  for (const char *const *n = (const char *const[]) { "P", "P.Sub", "Px",
                                                      NULL };
       *n; n++)
    assert_true (mh_store_folder_create (fx->store, *n, &error));
  g_free (set_meta (fx, "P", "/private/comment", "p"));
  g_free (set_meta (fx, "P.Sub", "/shared/comment", "s"));
  g_free (set_meta (fx, "Px", "/private/comment", "x"));
  /* the server's entries and INBOX's are never moved */
  assert_true (mh_imap__metadata_move (&fx->s, "INBOX", "Other"));

  MhImapCommand *c = command (MH_IMAP_CMD_RENAME, "RENAME", "P");
  c->mailbox2 = g_strdup ("Q");
  g_free (run (fx, mh_imap__cmd_rename, c));
  g_autofree char *q = get_meta (fx, "Q", "/private/comment");
  assert_string_equal (q, "* METADATA Q (/private/comment \"p\")\r\n"
                          "a1 OK Getmetadata completed\r\n");
  g_autofree char *qs = get_meta (fx, "Q.Sub", "/shared/comment");
  assert_string_equal (qs, "* METADATA Q.Sub (/shared/comment \"s\")\r\n"
                           "a1 OK Getmetadata completed\r\n");
  g_autofree char *px = get_meta (fx, "Px", "/private/comment");
  assert_string_equal (px, "* METADATA Px (/private/comment \"x\")\r\n"
                           "a1 OK Getmetadata completed\r\n");
  assert_true (mh_store_folder_create (fx->store, "P", &error));
  g_autofree char *p = get_meta (fx, "P", "/private/comment");
  assert_string_equal (p, "* METADATA P (/private/comment NIL)\r\n"
                          "a1 OK Getmetadata completed\r\n");

  /* DELETE drops the mailbox's own entries only */
  c = command (MH_IMAP_CMD_DELETE, "DELETE", "Q.Sub");
  g_free (run (fx, mh_imap__cmd_delete, c));
  assert_true (mh_store_folder_create (fx->store, "Q.Sub", &error));
  g_autofree char *gone = get_meta (fx, "Q.Sub", "/shared/comment");
  assert_string_equal (gone, "* METADATA Q.Sub (/shared/comment NIL)\r\n"
                             "a1 OK Getmetadata completed\r\n");
  g_autofree char *kept = get_meta (fx, "Q", "/private/comment");
  assert_string_equal (kept, q);
}

static void
test_metadata_changes (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  fx->s.data_dir = fx->dir;
  gpointer snap = NULL;
  assert_null (mh_imap__metadata_changes (&fx->s, &snap)); /* learns */
  assert_non_null (snap);
  assert_null (mh_imap__metadata_changes (&fx->s, &snap)); /* no file */
  g_free (set_meta (fx, "INBOX", "/private/a", "1"));
  g_free (set_meta (fx, "", "/private/b", "2"));
  g_autoptr (GPtrArray) ch = mh_imap__metadata_changes (&fx->s, &snap);
  assert_non_null (ch);
  assert_int_equal (ch->len, 2);
  assert_string_equal (ch->pdata[0], "\t/private/b");
  assert_string_equal (ch->pdata[1], "INBOX\t/private/a");
  assert_null (mh_imap__metadata_changes (&fx->s, &snap)); /* unchanged */
  g_free (set_meta (fx, "INBOX", "/private/a", NULL));
  g_free (set_meta (fx, "", "/private/b", "3"));
  g_autoptr (GPtrArray) ch2 = mh_imap__metadata_changes (&fx->s, &snap);
  assert_non_null (ch2);
  assert_int_equal (ch2->len, 2); /* a removal and a new value */
  assert_string_equal (ch2->pdata[0], "\t/private/b");
  assert_string_equal (ch2->pdata[1], "INBOX\t/private/a");
  mh_imap__metadata_snapshot_free (snap);
}

static void
test_special_use (void **state)
{
  Fx *fx = *state;
  fx->s.data_dir = fx->dir;
  g_autofree char *why = NULL;
  const char *two[] = { "\\junk", "\\Trash", "\\Junk", NULL };
  g_autofree char *v = mh_imap__specialuse_parse (two, &why);
  assert_string_equal (v, "\\Junk \\Trash");
  const char *all[] = { "\\All", NULL };
  assert_null (mh_imap__specialuse_parse (all, &why));
  assert_string_equal (why, "\\All is not supported here (no virtual "
                            "mailboxes)");
  g_clear_pointer (&why, g_free);
  const char *none[] = { NULL };
  assert_null (mh_imap__specialuse_parse (none, &why));
  assert_string_equal (why, "USE needs at least one special-use attribute");

  MhImapCommand *c = command (MH_IMAP_CMD_CREATE, "CREATE", "Keep");
  c->strings = g_strsplit ("\\Archive", " ", -1);
  g_autofree char *created = run (fx, mh_imap__cmd_create, c);
  assert_string_equal (created, "a1 OK Create completed\r\n");
  c = command (MH_IMAP_CMD_CREATE, "CREATE", "Nope");
  c->strings = g_strsplit ("\\Flagged", " ", -1);
  g_autofree char *refused = run (fx, mh_imap__cmd_create, c);
  assert_string_equal (refused, "a1 NO [USEATTR] \\Flagged is not supported "
                                "here (no virtual mailboxes)\r\n");
  assert_false (mh_store_folder_exists (fx->store, "Nope"));
  g_autofree char *l = list_one (fx, "*");
  assert_string_equal (l, "* LIST (\\HasNoChildren) \".\" INBOX\r\n"
                          "* LIST (\\HasNoChildren \\Archive) \".\" Keep\r\n"
                          "a1 OK List completed\r\n");
  /* INBOX may get one; a role folder keeps its own */
  g_autofree char *sent = set_meta (fx, "INBOX", "/private/specialuse",
                                    "\\Sent");
  assert_string_equal (sent, "a1 OK Setmetadata completed\r\n");
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Trash", &error));
  g_autofree char *t = set_meta (fx, "Trash", "/private/specialuse",
                                 "\\Junk");
  assert_string_equal (t, "a1 NO [USEATTR] Trash keeps its special use "
                          "\\Trash\r\n");
  g_autofree char *srv = set_meta (fx, "", "/private/specialuse", "\\Junk");
  assert_string_equal (srv, "a1 NO [USEATTR] /private/specialuse belongs to "
                            "a mailbox, not to the server\r\n");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_folder_names_mutf7, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_tagged_line_stays_one_line, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sync_view_reports_changes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_list_patterns_and_holes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_rename_inbox_moves_messages, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_metadata_follows_rename, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_metadata_changes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_special_use, setup, teardown),
    cmocka_unit_test_setup_teardown (test_enable_and_status, setup,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
