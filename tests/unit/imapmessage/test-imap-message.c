/* Unit tests of lib/server/imap-message.c: the message command handlers
 * called directly with a hand-built session on a real store (and a real
 * directory and quota layer) in a temp dir, and hand-built commands, with
 * exact response checks. */
#include "mh-test.h"
#include "server/imap-private.h"

#include <string.h>

/* One data directory, directory and quota layer for the whole run; each
 * test gets its own account (fsyncs are what makes these tests slow). */
typedef struct
{
  char *data;
  MhDirectory *dir;
  MhQuota *quota;
  guint next;
} Group;

typedef struct
{
  Group *g;
  char *data;
  char *user;
  char *address;
  char *maildir;
  MhDirectory *dir;
  MhQuota *quota;
  MhStore *store;
  MhImapSession s;
  guint32 uid[6]; /* uid[1..5] of the five INBOX messages */
} Fx;

#define MSG_FMT                                                               \
  "From: a@example.org\r\n"                                                   \
  "To: alice@example.org\r\n"                                                 \
  "Subject: message %d\r\n"                                                   \
  "Message-ID: <m%d@example.org>\r\n"                                         \
  "\r\n"                                                                      \
  "Body %d\r\n"

static char *
msg_text (int n)
{
  return g_strdup_printf (MSG_FMT, n, n, n);
}

static void
select_folder (Fx *fx, const char *folder, gboolean read_only)
{
  g_autoptr (GError) error = NULL;
  g_clear_pointer (&fx->s.view, mh_store_view_unref);
  g_free (fx->s.folder);
  fx->s.folder = g_strdup (folder);
  fx->s.read_only = read_only;
  fx->s.view = mh_store_select (fx->store, folder, !read_only, &error);
  assert_null (error);
}

static int
group_setup (void **state)
{
  g_autoptr (GError) error = NULL;
  Group *g = g_new0 (Group, 1);
  g->data = mh_test_mkdtemp ();
  g->dir = mh_directory_open (g->data, &error);
  assert_non_null (g->dir);
  assert_true (mh_directory_domain_add (g->dir, "example.org", &error));
  g->quota = mh_quota_open (g->dir, g->data, NULL, &error);
  assert_non_null (g->quota);
  *state = g;
  return 0;
}

static int
group_teardown (void **state)
{
  Group *g = *state;
  mh_quota_unref (g->quota);
  mh_directory_unref (g->dir);
  mh_test_rmtree (g->data);
  g_free (g->data);
  g_free (g);
  return 0;
}

/* Writes a message into the account's Maildir as another tool would. */
static void
drop_message (Fx *fx, const char *sub, const char *name, const char *text)
{
  g_autofree char *dir = g_build_filename (fx->maildir, sub, NULL);
  g_autofree char *path = mh_test_write_file (dir, name, text);
  (void) path;
}

static int
setup (void **state)
{
  g_autoptr (GError) error = NULL;
  Group *g = *state;
  Fx *fx = g_new0 (Fx, 1);
  fx->g = g;
  fx->data = g_strdup (g->data);
  fx->dir = g->dir;
  fx->quota = g->quota;
  fx->user = g_strdup_printf ("u%u", ++g->next);
  fx->address = g_strdup_printf ("%s@example.org", fx->user);
  fx->maildir = g_build_filename (fx->data, "mail", "example.org", fx->user,
                                  NULL);
  assert_true (mh_quota_account_add (fx->quota, fx->address, NULL,
                                     MH_QUOTA_KEEP, MH_QUOTA_KEEP, &error));
  fx->store = mh_store_open_account (fx->data, "example.org", fx->user,
                                     MH_STORE_OPEN_CREATE, &error);
  assert_non_null (fx->store);
  assert_true (mh_quota_attach (fx->quota, fx->store, fx->address, &error));
  for (int i = 1; i <= 5; i++)
    {
      g_autofree char *name = g_strdup_printf (
          "170000000%d.M%dP1.test%s", i, i, i == 2 ? ":2,S" : "");
      g_autofree char *text = msg_text (i);
      drop_message (fx, i == 2 ? "cur" : "new", name, text);
    }
  assert_true (mh_store_folder_create (fx->store, "Archive", &error));
  fx->s.account = g_strdup (fx->address);
  fx->s.store = mh_store_ref (fx->store);
  fx->s.directory = fx->dir;
  fx->s.quota = fx->quota;
  fx->s.data_dir = g_strdup (fx->data);
  fx->s.append_limit = 1000;
  select_folder (fx, "INBOX", FALSE);
  assert_int_equal (mh_store_view_get_count (fx->s.view), 5);
  for (int i = 1; i <= 5; i++)
    fx->uid[i] = mh_store_view_get_uid (fx->s.view, (guint) i - 1);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fx *fx = *state;
  if (fx->s.cursor_free && fx->s.cursor)
    fx->s.cursor_free (fx->s.cursor);
  g_clear_pointer (&fx->s.view, mh_store_view_unref);
  g_free (fx->s.folder);
  g_free (fx->s.account);
  g_free (fx->s.data_dir);
  if (fx->s.saved_uids)
    g_array_unref (fx->s.saved_uids);
  mh_imap__notify_free (fx->s.notify);
  mh_imap__session_free_priv (&fx->s);
  mh_store_unref (fx->s.store);
  mh_store_unref (fx->store);
  *state = fx->g;
  g_free (fx->data);
  g_free (fx->user);
  g_free (fx->address);
  g_free (fx->maildir);
  g_free (fx);
  return 0;
}

/* ---- building commands ---------------------------------------------- */

/* "1:3,5,*" or "$". */
static MhImapSeqSet *
seqset (const char *text)
{
  MhImapSeqSet *set = g_new0 (MhImapSeqSet, 1);
  set->ranges = g_array_new (FALSE, FALSE, sizeof (MhImapRange));
  if (strcmp (text, "$") == 0)
    {
      set->saved = TRUE;
      return set;
    }
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  for (guint i = 0; parts[i]; i++)
    {
      g_auto (GStrv) ab = g_strsplit (parts[i], ":", 2);
      MhImapRange r;
      r.first = strcmp (ab[0], "*") == 0 ? MH_IMAP_STAR
                                         : (guint32) atoi (ab[0]);
      r.last = ab[1] == NULL             ? r.first
               : strcmp (ab[1], "*") == 0 ? MH_IMAP_STAR
                                          : (guint32) atoi (ab[1]);
      g_array_append_val (set->ranges, r);
    }
  return set;
}

/* One UID, or two (as two single ranges; 0 for none). */
static MhImapSeqSet *
uidset (guint32 a, guint32 b)
{
  g_autofree char *t = b ? g_strdup_printf ("%u,%u", a, b)
                         : g_strdup_printf ("%u", a);
  return seqset (t);
}

/* Drops "* n EXISTS" and "* n RECENT" lines: after expunges imap.c's
 * sync may restate the counts; what is tested here is the rest. */
static char *
without_counts (char *o)
{
  GString *r = g_string_new (NULL);
  g_auto (GStrv) lines = g_strsplit (o, "\r\n", -1);
  for (guint i = 0; lines[i] && lines[i][0]; i++)
    if (!(g_str_has_prefix (lines[i], "* ")
          && (g_str_has_suffix (lines[i], " EXISTS")
              || g_str_has_suffix (lines[i], " RECENT"))))
      g_string_append_printf (r, "%s\r\n", lines[i]);
  g_free (o);
  return g_string_free (r, FALSE);
}

static MhImapCommand *
cmd_new (MhImapCommandKind kind, gboolean uid, const char *name,
         const char *set)
{
  MhImapCommand *c = g_new0 (MhImapCommand, 1);
  c->tag = g_strdup ("a1");
  c->kind = kind;
  c->uid = uid;
  c->name = g_strdup (name);
  c->unchangedsince = G_MAXUINT64;
  if (set)
    c->set = seqset (set);
  return c;
}

static void
add_att (MhImapCommand *c, MhImapFetchItem item)
{
  if (c->fetch_atts == NULL)
    c->fetch_atts = g_ptr_array_new_with_free_func (g_free);
  MhImapFetchAtt *a = g_new0 (MhImapFetchAtt, 1);
  a->item = item;
  g_ptr_array_add (c->fetch_atts, a);
}

static void
append_msg_free (gpointer p)
{
  MhImapAppendMessage *m = p;
  g_strfreev (m->flags);
  g_bytes_unref (m->data);
  g_free (m);
}

static void
add_message (MhImapCommand *c, const char *text, const char *flags)
{
  if (c->messages == NULL)
    c->messages = g_ptr_array_new_with_free_func (append_msg_free);
  MhImapAppendMessage *m = g_new0 (MhImapAppendMessage, 1);
  m->data = g_bytes_new (text, strlen (text));
  m->flags = flags ? g_strsplit (flags, " ", -1) : NULL;
  g_ptr_array_add (c->messages, m);
}

/* The longest part a handler returned with RUN_MORE in the last run(). */
static gsize last_max_part;

/* Runs a handler to the end (resuming RUN_MORE) and returns all output. */
static char *
run (Fx *fx, MhImapHandler h, MhImapCommand *c, guint *calls_out)
{
  GString *out = g_string_new (NULL);
  guint calls = 0;
  last_max_part = 0;
  for (;;)
    {
      gsize before = out->len;
      MhImapRun r = h (&fx->s, c, out);
      calls++;
      assert_true (calls < 10000);
      if (r == MH_IMAP_RUN_DONE)
        break;
      /* A chunk never runs far past the bound. */
      assert_true (out->len - before < MH_IMAP_CHUNK + 4096);
      last_max_part = MAX (last_max_part, out->len - before);
    }
  if (calls_out)
    *calls_out = calls;
  mh_imap_command_free (c);
  return g_string_free (out, FALSE);
}

#define assert_out(got, want) assert_string_equal ((got), (want))

/* ---- FETCH ------------------------------------------------------------ */

static void
test_fetch_flags_uid (void **state)
{
  Fx *fx = *state;
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_FETCH, TRUE, "UID FETCH", "1:*");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  g_autofree char *o = run (fx, mh_imap__cmd_fetch, c, NULL);
  g_autofree char *want = g_strdup_printf (
      "* 1 FETCH (UID %u FLAGS (\\Recent))\r\n"
      "* 2 FETCH (UID %u FLAGS (\\Seen \\Recent))\r\n"
      "* 3 FETCH (UID %u FLAGS (\\Recent))\r\n"
      "* 4 FETCH (UID %u FLAGS (\\Recent))\r\n"
      "* 5 FETCH (UID %u FLAGS (\\Recent))\r\n"
      "a1 OK Fetch completed\r\n",
      fx->uid[1], fx->uid[2], fx->uid[3], fx->uid[4], fx->uid[5]);
  assert_out (o, want);

  /* IMAP4rev2 has no \Recent; sets are ordered and merged ("4:2,3"). */
  fx->s.enabled |= MH_IMAP_ENABLED_REV2;
  c = cmd_new (MH_IMAP_CMD_FETCH, FALSE, "FETCH", "4:2,3");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  add_att (c, MH_IMAP_FETCH_UID);
  g_autofree char *o2 = run (fx, mh_imap__cmd_fetch, c, NULL);
  g_autofree char *want2 = g_strdup_printf (
      "* 2 FETCH (UID %u FLAGS (\\Seen))\r\n"
      "* 3 FETCH (UID %u FLAGS ())\r\n"
      "* 4 FETCH (UID %u FLAGS ())\r\n"
      "a1 OK Fetch completed\r\n",
      fx->uid[2], fx->uid[3], fx->uid[4]);
  assert_out (o2, want2);
}

static void
test_fetch_bad_sets (void **state)
{
  Fx *fx = *state;
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_FETCH, FALSE, "FETCH", "3:9");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  g_autofree char *o = run (fx, mh_imap__cmd_fetch, c, NULL);
  assert_out (o, "a1 BAD Invalid messageset: 9 is beyond the last message "
                 "(5)\r\n");

  /* UIDs that do not exist are skipped; "n:*" above the last UID still
   * means the last message (RFC 9051 6.4.8). */
  c = cmd_new (MH_IMAP_CMD_FETCH, TRUE, "UID FETCH", "4000:*");
  add_att (c, MH_IMAP_FETCH_UID);
  g_autofree char *o2 = run (fx, mh_imap__cmd_fetch, c, NULL);
  g_autofree char *want2 = g_strdup_printf (
      "* 5 FETCH (UID %u)\r\na1 OK Fetch completed\r\n", fx->uid[5]);
  assert_out (o2, want2);

  c = cmd_new (MH_IMAP_CMD_FETCH, TRUE, "UID FETCH", "9000:9001");
  add_att (c, MH_IMAP_FETCH_UID);
  g_autofree char *o3 = run (fx, mh_imap__cmd_fetch, c, NULL);
  assert_out (o3, "a1 OK Fetch completed\r\n");

  /* "*" in an empty mailbox is BAD too (RFC 9051 section 9). */
  select_folder (fx, "Archive", FALSE);
  c = cmd_new (MH_IMAP_CMD_FETCH, FALSE, "FETCH", "1:*");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  g_autofree char *o4 = run (fx, mh_imap__cmd_fetch, c, NULL);
  assert_out (o4, "a1 BAD Invalid messageset: the mailbox is empty\r\n");
}

static void
test_fetch_changedsince_modseq (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint64 m5 = mh_store_view_get_modseq (fx->s.view, 4);
  guint32 u = fx->uid[3];
  assert_true (mh_store_set_flags (fx->store, "INBOX", &u, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_FLAGGED,
                                   NULL, 0, NULL, &error));
  select_folder (fx, "INBOX", TRUE);
  guint64 m3 = mh_store_view_get_modseq (fx->s.view, 2);
  assert_true (m3 > m5);

  MhImapCommand *c = cmd_new (MH_IMAP_CMD_FETCH, TRUE, "UID FETCH", "1:*");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  c->changedsince = m5;
  g_autofree char *o = run (fx, mh_imap__cmd_fetch, c, NULL);
  /* CHANGEDSINCE turns CONDSTORE on: MODSEQ is added (RFC 7162 3.1). */
  g_autofree char *want = g_strdup_printf (
      "* 3 FETCH (UID %u FLAGS (\\Flagged) MODSEQ (%" G_GUINT64_FORMAT "))\r\n"
      "a1 OK Fetch completed\r\n",
      fx->uid[3], m3);
  assert_out (o, want);
  assert_true (fx->s.enabled & MH_IMAP_ENABLED_CONDSTORE);

  /* VANISHED needs QRESYNC. */
  c = cmd_new (MH_IMAP_CMD_FETCH, TRUE, "UID FETCH", "1:*");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  c->changedsince = 1;
  c->vanished = TRUE;
  g_autofree char *o2 = run (fx, mh_imap__cmd_fetch, c, NULL);
  assert_out (o2, "a1 BAD VANISHED needs ENABLE QRESYNC first\r\n");
}

static void
test_fetch_resumes_in_chunks (void **state)
{
  Fx *fx = *state;
  /* Enough messages for several 64 KiB chunks of FLAGS lines, written
   * straight into cur/ as another tool would (no fsync per message: the
   * test stays fast); the select picks them up. */
  for (int i = 0; i < 3000; i++)
    {
      g_autofree char *name = g_strdup_printf ("18000%05d.M%dP1.test:2,%s",
                                               i, i, i % 2 ? "S" : "FS");
      g_autofree char *text = msg_text (i);
      drop_message (fx, "cur", name, text);
    }
  select_folder (fx, "INBOX", FALSE);
  guint n = mh_store_view_get_count (fx->s.view);
  assert_int_equal (n, 3005);
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_FETCH, FALSE, "FETCH", "1:*");
  add_att (c, MH_IMAP_FETCH_FLAGS);
  add_att (c, MH_IMAP_FETCH_UID);
  guint calls = 0;
  g_autofree char *o = run (fx, mh_imap__cmd_fetch, c, &calls);
  assert_true (calls >= 3);
  /* Lines of one size: each part stops short of MH_IMAP_CHUNK (so it
   * fits a 64 KiB buffer), and not far short of it. */
  assert_true (last_max_part < MH_IMAP_CHUNK);
  assert_true (last_max_part > MH_IMAP_CHUNK - 256);
  assert_null (fx->s.cursor);
  /* Every message exactly once, in order. */
  g_auto (GStrv) lines = g_strsplit (o, "\r\n", -1);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *head = g_strdup_printf (
          "* %u FETCH (UID %u FLAGS (", i + 1,
          mh_store_view_get_uid (fx->s.view, i));
      assert_true (g_str_has_prefix (lines[i], head));
    }
  assert_string_equal (lines[n], "a1 OK Fetch completed");
}

/* ---- STORE ------------------------------------------------------------ */

static void
test_store (void **state)
{
  Fx *fx = *state;
  fx->s.enabled |= MH_IMAP_ENABLED_REV2;
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_STORE, FALSE, "STORE", "1:2");
  c->store_mode = MH_IMAP_STORE_ADD;
  c->store_flags = g_strsplit ("\\Flagged $Label1 $forwarded", " ", -1);
  g_autofree char *o = run (fx, mh_imap__cmd_store, c, NULL);
  /* A new keyword: FLAGS and PERMANENTFLAGS first (RFC 9051 7.3.5). */
  assert_out (o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
                 "$Forwarded $Label1)\r\n"
                 "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted "
                 "\\Seen \\Draft $Forwarded $Label1 \\*)] Flags permitted\r\n"
                 "* 1 FETCH (FLAGS (\\Flagged $Forwarded $Label1))\r\n"
                 "* 2 FETCH (FLAGS (\\Flagged \\Seen $Forwarded $Label1))\r\n"
                 "a1 OK Store completed\r\n");

  c = cmd_new (MH_IMAP_CMD_STORE, TRUE, "UID STORE", NULL);
  c->set = uidset (fx->uid[2], 0);
  c->store_mode = MH_IMAP_STORE_REMOVE;
  c->store_flags = g_strsplit ("$Label1", " ", -1);
  g_autofree char *o2 = run (fx, mh_imap__cmd_store, c, NULL);
  g_autofree char *want2 = g_strdup_printf (
      "* 2 FETCH (UID %u FLAGS (\\Flagged \\Seen $Forwarded))\r\n"
      "a1 OK Store completed\r\n",
      fx->uid[2]);
  assert_out (o2, want2);

  c = cmd_new (MH_IMAP_CMD_STORE, FALSE, "STORE", "3");
  c->store_mode = MH_IMAP_STORE_REPLACE;
  c->store_silent = TRUE;
  c->store_flags = g_strsplit ("\\Deleted", " ", -1);
  g_autofree char *o3 = run (fx, mh_imap__cmd_store, c, NULL);
  assert_out (o3, "a1 OK Store completed\r\n");
  assert_int_equal (mh_store_view_get_flags (fx->s.view, 2),
                    MH_STORE_FLAG_DELETED);

  c = cmd_new (MH_IMAP_CMD_STORE, FALSE, "STORE", "1");
  c->store_flags = g_strsplit ("\\Recent", " ", -1);
  g_autofree char *o4 = run (fx, mh_imap__cmd_store, c, NULL);
  assert_out (o4, "a1 BAD The \\Recent flag cannot be set by a client\r\n");

  c = cmd_new (MH_IMAP_CMD_STORE, FALSE, "STORE", "1");
  c->store_flags = g_strsplit ("\\Bogus", " ", -1);
  g_autofree char *o5 = run (fx, mh_imap__cmd_store, c, NULL);
  assert_out (o5, "a1 BAD Invalid system flag \\Bogus\r\n");

  select_folder (fx, "INBOX", TRUE);
  c = cmd_new (MH_IMAP_CMD_STORE, FALSE, "STORE", "1");
  c->store_flags = g_strsplit ("\\Seen", " ", -1);
  g_autofree char *o6 = run (fx, mh_imap__cmd_store, c, NULL);
  assert_out (o6, "a1 NO [READ-ONLY] Mailbox is read-only\r\n");
}

static void
test_store_unchangedsince (void **state)
{
  Fx *fx = *state;
  fx->s.enabled |= MH_IMAP_ENABLED_REV2;
  guint64 m1 = mh_store_view_get_modseq (fx->s.view, 0);
  guint64 m5 = mh_store_view_get_modseq (fx->s.view, 4);
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_STORE, TRUE, "UID STORE", "1:*");
  c->store_mode = MH_IMAP_STORE_ADD;
  c->store_silent = TRUE;
  c->store_flags = g_strsplit ("\\Answered", " ", -1);
  c->unchangedsince = m1; /* only message 1 is that old */
  g_autofree char *o = run (fx, mh_imap__cmd_store, c, NULL);
  guint64 nm = mh_store_view_get_modseq (fx->s.view, 0);
  assert_true (nm > m5);
  /* RFC 7162 3.2 example 3: .SILENT still sends UID and MODSEQ. */
  g_autofree char *want = g_strdup_printf (
      "* 1 FETCH (UID %u MODSEQ (%" G_GUINT64_FORMAT "))\r\n"
      "a1 OK [MODIFIED %u:%u] Conditional STORE failed\r\n",
      fx->uid[1], nm, fx->uid[2], fx->uid[5]);
  assert_out (o, want);

  /* UNCHANGEDSINCE 0 always fails; STORE reports sequence numbers. */
  c = cmd_new (MH_IMAP_CMD_STORE, FALSE, "STORE", "2,4");
  c->store_mode = MH_IMAP_STORE_ADD;
  c->store_flags = g_strsplit ("\\Answered", " ", -1);
  c->unchangedsince = 0;
  g_autofree char *o2 = run (fx, mh_imap__cmd_store, c, NULL);
  assert_out (o2, "a1 OK [MODIFIED 2,4] Conditional STORE failed\r\n");
}

/* ---- COPY, MOVE, EXPUNGE, CLOSE ------------------------------------- */

static void
test_copy_move (void **state)
{
  Fx *fx = *state;
  MhStoreStatus st = { .version = 1 };
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_status (fx->store, "Archive", &st, &error));

  MhImapCommand *c = cmd_new (MH_IMAP_CMD_COPY, FALSE, "COPY", "1:2");
  c->mailbox = g_strdup ("Nope");
  g_autofree char *o = run (fx, mh_imap__cmd_copy, c, NULL);
  assert_out (o, "a1 NO [TRYCREATE] Mailbox doesn't exist: Nope\r\n");

  c = cmd_new (MH_IMAP_CMD_COPY, FALSE, "COPY", "1:2");
  c->mailbox = g_strdup ("Archive");
  g_autofree char *o2 = run (fx, mh_imap__cmd_copy, c, NULL);
  g_autofree char *want2 = g_strdup_printf (
      "a1 OK [COPYUID %u %u:%u %u:%u] Copy completed\r\n", st.uidvalidity,
      fx->uid[1], fx->uid[2], st.uidnext, st.uidnext + 1);
  assert_out (o2, want2);

  c = cmd_new (MH_IMAP_CMD_MOVE, TRUE, "UID MOVE", NULL);
  c->set = uidset (fx->uid[3], fx->uid[5]);
  c->mailbox = g_strdup ("Archive");
  g_autofree char *o3 = without_counts (run (fx, mh_imap__cmd_copy, c, NULL));
  g_autofree char *want3 = g_strdup_printf (
      "* OK [COPYUID %u %u,%u %u:%u] Moved UIDs.\r\n"
      "* 5 EXPUNGE\r\n"
      "* 3 EXPUNGE\r\n"
      "a1 OK Move completed\r\n",
      st.uidvalidity, fx->uid[3], fx->uid[5], st.uidnext + 2,
      st.uidnext + 3);
  assert_out (o3, want3);
  assert_int_equal (mh_store_view_get_count (fx->s.view), 3);

  /* QRESYNC: VANISHED instead of EXPUNGE. */
  fx->s.enabled |= MH_IMAP_ENABLED_QRESYNC;
  c = cmd_new (MH_IMAP_CMD_MOVE, FALSE, "MOVE", "1");
  c->mailbox = g_strdup ("Archive");
  g_autofree char *o4 = without_counts (run (fx, mh_imap__cmd_copy, c, NULL));
  g_autofree char *want4 = g_strdup_printf (
      "* OK [COPYUID %u %u %u] Moved UIDs.\r\n"
      "* VANISHED %u\r\n"
      "a1 OK Move completed\r\n",
      st.uidvalidity, fx->uid[1], st.uidnext + 4, fx->uid[1]);
  assert_out (o4, want4);
}

static void
test_expunge_close (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 del[] = { fx->uid[2], fx->uid[3], fx->uid[5] };
  assert_true (mh_store_set_flags (fx->store, "INBOX", del, 3,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_DELETED,
                                   NULL, 0, NULL, &error));
  select_folder (fx, "INBOX", FALSE);

  /* UID EXPUNGE removes only the given \Deleted messages. */
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_EXPUNGE, TRUE, "UID EXPUNGE", NULL);
  c->set = uidset (fx->uid[1], fx->uid[2]);
  g_autofree char *o = without_counts (run (fx, mh_imap__cmd_expunge, c, NULL));
  assert_out (o, "* 2 EXPUNGE\r\na1 OK Expunge completed\r\n");

  c = cmd_new (MH_IMAP_CMD_EXPUNGE, FALSE, "EXPUNGE", NULL);
  g_autofree char *o2 = without_counts (run (fx, mh_imap__cmd_expunge, c, NULL));
  assert_out (o2, "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\na1 OK Expunge completed\r\n");
  assert_int_equal (mh_store_view_get_count (fx->s.view), 2);

  /* UNSELECT keeps \Deleted messages, CLOSE expunges them silently. */
  guint32 u1 = fx->uid[1];
  assert_true (mh_store_set_flags (fx->store, "INBOX", &u1, 1,
                                   MH_STORE_FLAGS_ADD, MH_STORE_FLAG_DELETED,
                                   NULL, 0, NULL, &error));
  select_folder (fx, "INBOX", TRUE);
  c = cmd_new (MH_IMAP_CMD_CLOSE, FALSE, "CLOSE", NULL);
  g_autofree char *o3 = run (fx, mh_imap__cmd_close, c, NULL);
  assert_out (o3, "a1 OK Close completed\r\n"); /* EXAMINE: no expunge */
  assert_true (fx->s.set_state);
  assert_int_equal (fx->s.new_state, MH_IMAP_STATE_AUTHENTICATED);
  assert_null (fx->s.folder);
  assert_null (fx->s.view);

  select_folder (fx, "INBOX", FALSE);
  c = cmd_new (MH_IMAP_CMD_UNSELECT, FALSE, "UNSELECT", NULL);
  g_autofree char *o4 = run (fx, mh_imap__cmd_close, c, NULL);
  assert_out (o4, "a1 OK Unselect completed\r\n");
  MhStoreStatus st = { .version = 1 };
  assert_true (mh_store_folder_status (fx->store, "INBOX", &st, &error));
  assert_int_equal (st.messages, 2);

  select_folder (fx, "INBOX", FALSE);
  c = cmd_new (MH_IMAP_CMD_CLOSE, FALSE, "CLOSE", NULL);
  g_autofree char *o5 = run (fx, mh_imap__cmd_close, c, NULL);
  assert_out (o5, "a1 OK Close completed\r\n");
  assert_true (mh_store_folder_status (fx->store, "INBOX", &st, &error));
  assert_int_equal (st.messages, 1);
}

/* ---- APPEND ----------------------------------------------------------- */

static void
test_append (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  MhStoreStatus st = { .version = 1 };
  assert_true (mh_store_folder_status (fx->store, "Archive", &st, &error));

  MhImapCommand *c = cmd_new (MH_IMAP_CMD_APPEND, FALSE, "APPEND", NULL);
  c->mailbox = g_strdup ("Archive");
  add_message (c, "Subject: one\r\n\r\nx\r\n", "\\Seen $Work");
  add_message (c, "Subject: two\r\n\r\ny\r\n", NULL);
  g_autofree char *o = run (fx, mh_imap__cmd_append, c, NULL);
  g_autofree char *want = g_strdup_printf (
      "a1 OK [APPENDUID %u %u:%u] Append completed\r\n", st.uidvalidity,
      st.uidnext, st.uidnext + 1);
  assert_out (o, want);
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, "Archive", FALSE,
                                               &error);
  assert_int_equal (mh_store_view_get_count (v), 2);
  assert_int_equal (mh_store_view_get_flags (v, 0), MH_STORE_FLAG_SEEN);
  g_auto (GStrv) kw = mh_store_view_get_keywords (v, 0);
  assert_string_equal (kw[0], "$Work");

  c = cmd_new (MH_IMAP_CMD_APPEND, FALSE, "APPEND", NULL);
  c->mailbox = g_strdup ("Missing");
  add_message (c, "Subject: x\r\n\r\nx\r\n", NULL);
  g_autofree char *o2 = run (fx, mh_imap__cmd_append, c, NULL);
  assert_out (o2, "a1 NO [TRYCREATE] Mailbox doesn't exist: Missing\r\n");

  /* APPENDLIMIT (RFC 7889): TOOBIG, and nothing of a MULTIAPPEND is
   * stored. */
  c = cmd_new (MH_IMAP_CMD_APPEND, FALSE, "APPEND", NULL);
  c->mailbox = g_strdup ("Archive");
  add_message (c, "Subject: ok\r\n\r\nx\r\n", NULL);
  g_autofree char *big = g_strnfill (1200, 'x');
  add_message (c, big, NULL);
  g_autofree char *o3 = run (fx, mh_imap__cmd_append, c, NULL);
  assert_out (o3, "a1 NO [TOOBIG] Message is 1200 bytes, over the "
                  "APPENDLIMIT of 1000\r\n");
  assert_true (mh_store_folder_status (fx->store, "Archive", &st, &error));
  assert_int_equal (st.messages, 2);

  /* Into the selected mailbox: EXISTS comes with it. */
  c = cmd_new (MH_IMAP_CMD_APPEND, FALSE, "APPEND", NULL);
  c->mailbox = g_strdup ("INBOX");
  add_message (c, "Subject: in\r\n\r\nx\r\n", NULL);
  g_autofree char *o4 = run (fx, mh_imap__cmd_append, c, NULL);
  assert_true (g_str_has_prefix (o4, "* 6 EXISTS\r\n"));
  assert_non_null (strstr (o4, "a1 OK [APPENDUID "));
}

/* APPEND to Archive of @n small messages ("Subject: a", "b", ...), 44
 * bytes each: the quota tests' batch. */
static MhImapCommand *
archive_batch (guint n)
{
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_APPEND, FALSE, "APPEND", NULL);
  c->mailbox = g_strdup ("Archive");
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *m = g_strdup_printf (
          "Subject: %c\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", 'a' + i);
      add_message (c, m, NULL);
    }
  return c;
}

static void
test_append_over_quota (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint64 bytes = 0, msgs = 0;
  assert_true (mh_store_get_usage (fx->store, &bytes, &msgs, &error));
  assert_true (mh_quota_set_account (fx->quota, fx->address,
                                     (gint64) bytes + 40, 0, &error));
  MhImapCommand *c = archive_batch (2);
  g_autofree char *o = run (fx, mh_imap__cmd_append, c, NULL);
  assert_true (g_str_has_prefix (o, "a1 NO [OVERQUOTA] "));
  MhStoreStatus st = { .version = 1 };
  assert_true (mh_store_folder_status (fx->store, "Archive", &st, &error));
  assert_int_equal (st.messages, 0);
}

/* RFC 3502 3: MULTIAPPEND is all or nothing, and the whole batch is
 * checked against the quota before any message is written: each message
 * would fit alone, the batch does not, and nothing was ever stored (a
 * rollback after the fact would have used up UIDs). */
static void
append_batch_refused (Fx *fx, gint64 bytes, gint64 messages)
{
  g_autoptr (GError) error = NULL;
  MhStoreStatus before = { .version = 1 }, after = { .version = 1 };
  guint64 used = 0, msgs_before = 0, msgs_after = 0;
  assert_true (mh_store_folder_status (fx->store, "Archive", &before,
                                       &error));
  assert_true (mh_store_get_usage (fx->store, &used, &msgs_before, &error));
  assert_true (mh_quota_set_account (fx->quota, fx->address, bytes, messages,
                                     &error));
  MhImapCommand *c = archive_batch (3);
  g_autofree char *o = run (fx, mh_imap__cmd_append, c, NULL);
  assert_true (g_str_has_prefix (o, "a1 NO [OVERQUOTA] "));
  assert_null (strchr (o, '*')); /* no untagged line: nothing changed */
  assert_true (mh_store_folder_status (fx->store, "Archive", &after,
                                       &error));
  assert_int_equal (after.messages, before.messages);
  assert_int_equal (after.uidnext, before.uidnext);
  assert_true (mh_store_get_usage (fx->store, &used, &msgs_after, &error));
  assert_int_equal (msgs_after, msgs_before);
}

static void
test_multiappend_quota_up_front (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint64 bytes = 0, msgs = 0;
  assert_true (mh_store_get_usage (fx->store, &bytes, &msgs, &error));
  assert_int_equal (msgs, 5);
  /* Storage: room for two of the three 44-byte messages. */
  append_batch_refused (fx, (gint64) bytes + 100, 0);
  /* Message count: room for two more messages. */
  append_batch_refused (fx, 0, (gint64) msgs + 2);

  /* The same batch goes in whole once it fits (usage read again: the
   * quota layer may have delivered a warning into INBOX meanwhile). */
  assert_true (mh_store_get_usage (fx->store, &bytes, &msgs, &error));
  assert_true (mh_quota_set_account (fx->quota, fx->address,
                                     (gint64) bytes + 100000, 0, &error));
  MhImapCommand *c = archive_batch (3);
  g_autofree char *o = run (fx, mh_imap__cmd_append, c, NULL);
  assert_non_null (strstr (o, "a1 OK [APPENDUID "));
  MhStoreStatus st = { .version = 1 };
  assert_true (mh_store_folder_status (fx->store, "Archive", &st, &error));
  assert_int_equal (st.messages, 3);
}

/* Without the session's quota layer (s->quota NULL) the store's own
 * check refuses the message that does not fit and the ones stored
 * before it are taken out again: still all or nothing. */
static void
test_multiappend_quota_store_check (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint64 bytes = 0, msgs = 0;
  assert_true (mh_store_get_usage (fx->store, &bytes, &msgs, &error));
  assert_true (mh_quota_set_account (fx->quota, fx->address,
                                     (gint64) bytes + 100, 0, &error));
  fx->s.quota = NULL;
  MhImapCommand *c = archive_batch (3);
  g_autofree char *o = run (fx, mh_imap__cmd_append, c, NULL);
  fx->s.quota = fx->quota;
  assert_true (g_str_has_prefix (o, "a1 NO [OVERQUOTA] "));
  MhStoreStatus st = { .version = 1 };
  assert_true (mh_store_folder_status (fx->store, "Archive", &st, &error));
  assert_int_equal (st.messages, 0);
}

/* ---- QUOTA ------------------------------------------------------------ */

static void
test_quota (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;

  MhImapCommand *c = cmd_new (MH_IMAP_CMD_GETQUOTAROOT, FALSE,
                              "GETQUOTAROOT", NULL);
  c->mailbox = g_strdup ("INBOX");
  g_autofree char *o = run (fx, mh_imap__cmd_quota, c, NULL);
  assert_out (o, "* QUOTAROOT INBOX\r\na1 OK Getquotaroot completed\r\n");

  assert_true (mh_quota_set_account (fx->quota, fx->address,
                                     10 * 1024 * 1024, 1000, &error));
  c = cmd_new (MH_IMAP_CMD_GETQUOTAROOT, FALSE, "GETQUOTAROOT", NULL);
  c->mailbox = g_strdup ("INBOX");
  g_autofree char *o2 = run (fx, mh_imap__cmd_quota, c, NULL);
  assert_out (o2, "* QUOTAROOT INBOX \"\"\r\n"
                  "* QUOTA \"\" (STORAGE 1 10240 MESSAGE 5 1000)\r\n"
                  "a1 OK Getquotaroot completed\r\n");

  c = cmd_new (MH_IMAP_CMD_GETQUOTA, FALSE, "GETQUOTA", NULL);
  c->mailbox = g_strdup ("");
  g_autofree char *o3 = run (fx, mh_imap__cmd_quota, c, NULL);
  assert_out (o3, "* QUOTA \"\" (STORAGE 1 10240 MESSAGE 5 1000)\r\n"
                  "a1 OK Getquota completed\r\n");

  c = cmd_new (MH_IMAP_CMD_SETQUOTA, FALSE, "SETQUOTA", NULL);
  c->mailbox = g_strdup ("");
  g_autofree char *o4 = run (fx, mh_imap__cmd_quota, c, NULL);
  assert_out (o4, "a1 NO [NOPERM] Quota limits are set by the "
                  "administrator\r\n");

  c = cmd_new (MH_IMAP_CMD_GETQUOTAROOT, FALSE, "GETQUOTAROOT", NULL);
  c->mailbox = g_strdup ("Nope");
  g_autofree char *o5 = run (fx, mh_imap__cmd_quota, c, NULL);
  assert_out (o5, "a1 NO [NONEXISTENT] Mailbox doesn't exist\r\n");
}

/* ---- METADATA --------------------------------------------------------- */

static char *
metadata_n (Fx *fx, MhImapCommandKind kind, const char *mbox,
            const char *const *strings, guint n, guint64 maxsize, gint depth)
{
  MhImapCommand *c = cmd_new (kind, FALSE,
                              kind == MH_IMAP_CMD_GETMETADATA ? "GETMETADATA"
                                                              : "SETMETADATA",
                              NULL);
  c->mailbox = g_strdup (mbox);
  c->strings = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    c->strings[i] = g_strdup (strings[i]);
  c->metadata_maxsize = maxsize;
  c->metadata_depth = depth;
  return run (fx, mh_imap__cmd_metadata, c, NULL);
}

/* GETMETADATA entries, or SETMETADATA pairs, NULL-terminated (for SET a
 * NULL value is written as the string "NIL!" here). */
static char *
metadata (Fx *fx, MhImapCommandKind kind, const char *mbox,
          const char *const *strings, guint64 maxsize, gint depth)
{
  guint n = g_strv_length ((char **) strings);
  g_autofree const char **v = g_new0 (const char *, n + 1);
  for (guint i = 0; i < n; i++)
    v[i] = strcmp (strings[i], "NIL!") == 0 ? NULL : strings[i];
  return metadata_n (fx, kind, mbox, v, n, maxsize, depth);
}

static void
test_metadata (void **state)
{
  Fx *fx = *state;
  const char *set1[] = { "/private/comment", "My comment",
                         "/shared/vendor/x/a", "A",
                         "/shared/vendor/x/a/b", "deep",
                         NULL };
  g_autofree char *o = metadata (fx, MH_IMAP_CMD_SETMETADATA, "INBOX", set1,
                                 0, 0);
  assert_out (o, "a1 OK Setmetadata completed\r\n");

  const char *get1[] = { "/Private/Comment", "/shared/comment", NULL };
  g_autofree char *o2 = metadata (fx, MH_IMAP_CMD_GETMETADATA, "INBOX", get1,
                                  0, 0);
  assert_out (o2, "* METADATA INBOX (/private/comment \"My comment\" "
                  "/shared/comment NIL)\r\n"
                  "a1 OK Getmetadata completed\r\n");

  const char *get2[] = { "/shared/vendor/x", NULL };
  g_autofree char *o3 = metadata (fx, MH_IMAP_CMD_GETMETADATA, "INBOX", get2,
                                  0, 1);
  assert_out (o3, "* METADATA INBOX (/shared/vendor/x/a \"A\")\r\n"
                  "a1 OK Getmetadata completed\r\n");
  g_autofree char *o4 = metadata (fx, MH_IMAP_CMD_GETMETADATA, "INBOX", get2,
                                  2, -1);
  assert_out (o4, "* METADATA INBOX (/shared/vendor/x/a \"A\")\r\n"
                  "a1 OK [METADATA LONGENTRIES 4] Getmetadata completed\r\n");

  /* NIL removes; server entries are separate from the mailbox's. */
  const char *set2[] = { "/private/comment", "NIL!", NULL };
  g_autofree char *o5 = metadata (fx, MH_IMAP_CMD_SETMETADATA, "INBOX", set2,
                                  0, 0);
  assert_out (o5, "a1 OK Setmetadata completed\r\n");
  const char *set3[] = { "/private/comment", "server", NULL };
  g_autofree char *o6 = metadata (fx, MH_IMAP_CMD_SETMETADATA, "", set3, 0,
                                  0);
  assert_out (o6, "a1 OK Setmetadata completed\r\n");

  /* It survives a restart: a new session reads the file. */
  const char *get3[] = { "/private/comment", "/shared/admin", NULL };
  g_autofree char *o7 = metadata (fx, MH_IMAP_CMD_GETMETADATA, "", get3, 0,
                                  0);
  assert_out (o7, "* METADATA \"\" (/private/comment \"server\" /shared/admin "
                  "\"mailto:postmaster@example.org\")\r\n"
                  "a1 OK Getmetadata completed\r\n");

  const char *bad[] = { "/other/x", "v", NULL };
  g_autofree char *o8 = metadata (fx, MH_IMAP_CMD_SETMETADATA, "", bad, 0, 0);
  assert_out (o8, "a1 BAD Entry /other/x must start with /private/ or "
                  "/shared/\r\n");
  const char *admin[] = { "/shared/admin", "x", NULL };
  g_autofree char *o9 = metadata (fx, MH_IMAP_CMD_SETMETADATA, "", admin, 0,
                                  0);
  assert_out (o9, "a1 NO [NOPERM] /shared/admin is set by the "
                  "administrator\r\n");
  g_autofree char *o10 = metadata (fx, MH_IMAP_CMD_GETMETADATA, "Nope", get1,
                                   0, 0);
  assert_out (o10, "a1 NO [NONEXISTENT] Mailbox doesn't exist\r\n");

  g_autofree char *big = g_strnfill (MH_LIMIT_IMAP_METADATA_VALUE_MAX + 1,
                                     'v');
  const char *toolong[] = { "/private/big", big, NULL };
  g_autofree char *o11 = metadata (fx, MH_IMAP_CMD_SETMETADATA, "", toolong,
                                   0, 0);
  g_autofree char *want11
      = g_strdup_printf ("a1 NO [METADATA MAXSIZE %d] Value too long\r\n",
                         MH_LIMIT_IMAP_METADATA_VALUE_MAX);
  assert_out (o11, want11);
}

static void
test_metadata_toomany (void **state)
{
  Fx *fx = *state;
  guint n = MH_LIMIT_IMAP_METADATA_ENTRIES_MAX + 1;
  g_autoptr (GPtrArray) a = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i++)
    {
      g_ptr_array_add (a, g_strdup_printf ("/private/e%u", i));
      g_ptr_array_add (a, g_strdup ("v"));
    }
  g_ptr_array_add (a, NULL);
  g_autofree char *o = metadata_n (fx, MH_IMAP_CMD_SETMETADATA, "",
                                   (const char *const *) a->pdata, 2 * n, 0,
                                   0);
  assert_out (o, "a1 NO [METADATA TOOMANY] Too many metadata entries\r\n");
}

/* ---- SEARCH driver, NOTIFY ------------------------------------------- */

static char *
notify (Fx *fx, const char *arg)
{
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_NOTIFY, FALSE, "NOTIFY", NULL);
  c->strings = g_new0 (char *, 2);
  c->strings[0] = g_strdup (arg);
  return run (fx, mh_imap__cmd_notify, c, NULL);
}

static void
test_notify (void **state)
{
  Fx *fx = *state;
  g_autofree char *o = notify (
      fx, "SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
          "(mailboxes (Archive \"INBOX\") (MessageNew MessageExpunge))");
  assert_out (o, "a1 OK NOTIFY completed\r\n");
  assert_non_null (fx->s.notify);
  assert_int_equal (fx->s.notify->groups->len, 2);
  MhImapNotifyGroup *g = fx->s.notify->groups->pdata[0];
  assert_int_equal (g->filter, MH_IMAP_NOTIFY_SELECTED);
  assert_int_equal (g->events, MH_IMAP_NOTIFY_MESSAGE_NEW
                                   | MH_IMAP_NOTIFY_MESSAGE_EXPUNGE
                                   | MH_IMAP_NOTIFY_FLAG_CHANGE);
  assert_string_equal (g->message_new_atts[1], "FLAGS");
  g = fx->s.notify->groups->pdata[1];
  assert_string_equal (g->mailboxes[0], "Archive");
  assert_string_equal (g->mailboxes[1], "INBOX");

  g_autofree char *o2 = notify (fx, "SET STATUS (mailboxes Archive "
                                    "(MessageNew MessageExpunge))");
  assert_true (g_str_has_prefix (o2, "* STATUS Archive (MESSAGES 0 "
                                     "UIDNEXT 1 UIDVALIDITY "));
  assert_true (g_str_has_suffix (o2, " UNSEEN 0)\r\na1 OK NOTIFY "
                                     "completed\r\n"));
  assert_true (fx->s.notify->status);
}

static void
test_notify_errors (void **state)
{
  Fx *fx = *state;
  g_autofree char *o = notify (fx, "SET (SELECTED (AnnotationChange))");
  assert_out (o, "a1 NO [BADEVENT (MessageNew MessageExpunge FlagChange "
                 "MailboxName SubscriptionChange MailboxMetadataChange "
                 "ServerMetadataChange)] Unsupported NOTIFY event\r\n");
  g_autofree char *o2 = notify (fx, "SET (SELECTED (MessageNew))");
  assert_out (o2, "a1 BAD NOTIFY: MessageNew and MessageExpunge must be "
                  "given together\r\n");
  g_autofree char *o3 = notify (fx, "SET (personal (MessageNew (UID) "
                                    "MessageExpunge))");
  assert_out (o3, "a1 BAD NOTIFY: MessageNew fetch attributes are only "
                  "allowed for SELECTED\r\n");
  g_autofree char *o4 = notify (fx, "BOGUS");
  assert_out (o4, "a1 BAD NOTIFY needs SET or NONE\r\n");
  g_autofree char *o5 = notify (fx, "NONE");
  assert_out (o5, "a1 OK NOTIFY completed\r\n");
  assert_null (fx->s.notify);
}

static void
test_search_charset (void **state)
{
  Fx *fx = *state;
  MhImapCommand *c = cmd_new (MH_IMAP_CMD_SEARCH, FALSE, "SEARCH", NULL);
  c->search_charset = g_strdup ("KOI8-R");
  c->search = g_new0 (MhImapSearchKey, 1);
  c->search->type = MH_IMAP_SEARCH_ALL;
  g_autofree char *o = run (fx, mh_imap__cmd_search, c, NULL);
  assert_out (o, "a1 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported "
                   "charset\r\n");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_fetch_flags_uid, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fetch_bad_sets, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fetch_changedsince_modseq, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_fetch_resumes_in_chunks, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_store, setup, teardown),
    cmocka_unit_test_setup_teardown (test_store_unchangedsince, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_copy_move, setup, teardown),
    cmocka_unit_test_setup_teardown (test_expunge_close, setup, teardown),
    cmocka_unit_test_setup_teardown (test_append, setup, teardown),
    cmocka_unit_test_setup_teardown (test_append_over_quota, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_multiappend_quota_up_front, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_multiappend_quota_store_check,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_quota, setup, teardown),
    cmocka_unit_test_setup_teardown (test_metadata, setup, teardown),
    cmocka_unit_test_setup_teardown (test_metadata_toomany, setup, teardown),
    cmocka_unit_test_setup_teardown (test_notify, setup, teardown),
    cmocka_unit_test_setup_teardown (test_notify_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_search_charset, setup, teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
