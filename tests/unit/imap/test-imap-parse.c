/* The command parser, command by command: each case is one command line
 * (literals inline) and the exact fields it must give, written as the
 * one-line description of imap_describe() (harness). Then the BAD texts
 * of malformed arguments, and direct checks of the fields whose
 * encoding matters (dates, partial ranges, seqsets, pairs with NIL). */
#include "imap-harness.h"

#include <string.h>

typedef struct
{
  MhImapState state;
  const char *wire;
  gsize len;
  const char *want;
} ParseCase;

static const ParseCase parse_cases[] = {
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a CAPABILITY", 12, "a CAPABILITY" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a1 noop", 7, "a1 NOOP" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "A.1 LOGOUT", 10, "A.1 LOGOUT" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "x STARTTLS", 10, "x STARTTLS" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a AUTHENTICATE plain", 20,
    "a AUTHENTICATE mech=PLAIN" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==",
    37, "a AUTHENTICATE mech=PLAIN ir=AHVzZXIAcGFzcw==" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a AUTHENTICATE PLAIN =", 22,
    "a AUTHENTICATE mech=PLAIN ir==" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN user pass", 17,
    "a LOGIN user=user pass=pass" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN \"us\\\"er\" {4+}\015\012p\\ss",
    27, "a LOGIN user=us\"er pass=p\\ss" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN \"\" \"a b\"", 16,
    "a LOGIN user= pass=a b" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a ID NIL", 8, "a ID" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED,
    "a ID (\"name\" \"mutt\" \"version\" NIL \"os\" \"Linux\")", 47,
    "a ID strings=[name|mutt|version|NIL|os|Linux]" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a ID ()", 7, "a ID strings=[]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a ENABLE condstore qresync UTF8=ACCEPT", 38,
    "a ENABLE strings=[CONDSTORE|QRESYNC|UTF8=ACCEPT]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT inbox", 14,
    "a SELECT mailbox=INBOX" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX.Sent", 19,
    "a SELECT mailbox=INBOX.Sent" },
  { MH_IMAP_STATE_AUTHENTICATED, "a EXAMINE \"Foo Bar\" (CONDSTORE)", 31,
    "a EXAMINE mailbox=Foo Bar condstore" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
    71,
    "a SELECT mailbox=INBOX qresync=67890007/20050715194045000 "
    "known=41,43:211,214:541" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 "
    "(5000,7500,9000,9990:9999 "
    "15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,"
    "29997)))",
    166,
    "a SELECT mailbox=INBOX qresync=67890007/90060115194045000 known=1:29997 "
    "seqmatch=5000,7500,9000,9990:9999 "
    "uidmatch=15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,"
    "29991,29994,29997" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX (QRESYNC (1 2 (1:3 4:6)))", 40,
    "a SELECT mailbox=INBOX qresync=1/2 seqmatch=1:3 uidmatch=4:6" },
  { MH_IMAP_STATE_AUTHENTICATED, "a CREATE Drafts", 15,
    "a CREATE mailbox=Drafts" },
  { MH_IMAP_STATE_AUTHENTICATED, "a CREATE MySpecial (USE (\\Drafts \\Sent))",
    40, "a CREATE mailbox=MySpecial strings=[\\Drafts|\\Sent]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a DELETE foo", 12, "a DELETE mailbox=foo" },
  { MH_IMAP_STATE_AUTHENTICATED, "a RENAME foo \"bar baz\"", 22,
    "a RENAME mailbox=foo mailbox2=bar baz" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SUBSCRIBE inbox", 17,
    "a SUBSCRIBE mailbox=INBOX" },
  { MH_IMAP_STATE_AUTHENTICATED, "a UNSUBSCRIBE {3}\015\012foo", 22,
    "a UNSUBSCRIBE mailbox=foo" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"\" *", 11,
    "a LIST ref= patterns=[*]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"\" %", 11,
    "a LIST ref= patterns=[%]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"~/Mail/\" \"%\"", 20,
    "a LIST ref=~/Mail/ patterns=[%]" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\"", 41,
    "a LIST ref= patterns=[*] select=5" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST (SPECIAL-USE) \"\" *", 25,
    "a LIST ref= patterns=[*] select=8" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a LIST \"\" (\"INBOX\" \"Drafts\" foo*) RETURN (CHILDREN SUBSCRIBED)", 62,
    "a LIST ref= patterns=[INBOX|Drafts|foo*] return=3" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN) SPECIAL-USE)", 57,
    "a LIST ref= patterns=[%] return=c status=11" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST () \"\" % RETURN ()", 24,
    "a LIST ref= patterns=[%]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LSUB \"#news.\" \"comp.mail.*\"", 29,
    "a LSUB ref=#news. patterns=[comp.mail.*]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a NAMESPACE", 11, "a NAMESPACE" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
    "HIGHESTMODSEQ APPENDLIMIT)",
    98, "a STATUS mailbox=INBOX status=1ff" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a APPEND saved-messages (\\Seen) {5}\015\012hello", 42,
    "a APPEND mailbox=saved-messages msg0: flags=[\\Seen] data=hello" },
  { MH_IMAP_STATE_AUTHENTICATED, "a APPEND INBOX {0}\015\012", 20,
    "a APPEND mailbox=INBOX msg0: data=" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a APPEND INBOX (\\Seen $Junk) \"17-Jul-1996 02:44:25 -0700\" "
    "{5+}\015\012hello",
    69,
    "a APPEND mailbox=INBOX msg0: flags=[\\Seen|$Junk] date=837596665 "
    "data=hello" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a APPEND INBOX \" 7-Jul-1996 02:44:25 +0000\" ~{3}\015\012a\000b", 53,
    "a APPEND mailbox=INBOX msg0: date=836707465 binary data=a" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a APPEND INBOX () {3}\015\012one {3}\015\012two", 35,
    "a APPEND mailbox=INBOX msg0: flags=[] data=one msg1: data=two" },
  { MH_IMAP_STATE_AUTHENTICATED, "a APPEND INBOX UTF8 (~{2}\015\012hi)", 30,
    "a APPEND mailbox=INBOX msg0: binary data=hi" },
  { MH_IMAP_STATE_AUTHENTICATED, "a IDLE", 6, "a IDLE" },
  { MH_IMAP_STATE_SELECTED, "a CHECK", 7, "a CHECK" },
  { MH_IMAP_STATE_SELECTED, "a CLOSE", 7, "a CLOSE" },
  { MH_IMAP_STATE_SELECTED, "a UNSELECT", 10, "a UNSELECT" },
  { MH_IMAP_STATE_SELECTED, "a EXPUNGE", 9, "a EXPUNGE" },
  { MH_IMAP_STATE_SELECTED, "a UID EXPUNGE 3000:3002", 23,
    "a UID EXPUNGE uid set=3000:3002" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 ALL", 13, "a FETCH set=1 atts=0,2,3,4" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1:* FAST", 16,
    "a FETCH set=1:* atts=0,2,3" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 2,4:5 FULL", 18,
    "a FETCH set=2,4:5 atts=0,2,3,4,5" },
  { MH_IMAP_STATE_SELECTED,
    "a FETCH * (FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE "
    "RFC822 RFC822.HEADER RFC822.TEXT MODSEQ SAVEDATE BODY)",
    123, "a FETCH set=* atts=0,1,2,3,4,6,7,8,9,13,14,5" },
  { MH_IMAP_STATE_SELECTED,
    "a FETCH 1 (BODY[] BODY.PEEK[HEADER] BODY[TEXT] body.peek[1.2.MIME] "
    "BODY[1.2.3] BODY[2.HEADER])",
    94,
    "a FETCH set=1 "
    "atts=10[],10p[HEADER]t1,10[TEXT]t4,10p[1.2.MIME]{1.2}t5,10[1.2.3]{1.2.3},"
    "10[2.HEADER]{2}t1" },
  { MH_IMAP_STATE_SELECTED,
    "a FETCH 1 BODY.PEEK[HEADER.FIELDS (From To \"X-Spam Score\")]", 59,
    "a FETCH set=1 atts=10p[HEADER.FIELDS (From To \"X-Spam "
    "Score\")]t2f(From+To+X-Spam Score)" },
  { MH_IMAP_STATE_SELECTED,
    "a FETCH 1 (BODY[HEADER.FIELDS.NOT (Received)]<0.2048> BODY[]<10.20>)", 68,
    "a FETCH set=1 atts=10[HEADER.FIELDS.NOT "
    "(Received)]t3f(Received)<0.2048>,10[]<10.20>" },
  { MH_IMAP_STATE_SELECTED,
    "a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[1] BINARY[])", 69,
    "a FETCH set=1 atts=11[1]{1},11p[1.2]{1.2}<0.100>,12[1]{1},11[]" },
  { MH_IMAP_STATE_SELECTED,
    "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)", 53,
    "a UID FETCH uid set=1:* atts=0 changedsince=12345 vanished" },
  { MH_IMAP_STATE_SELECTED, "a FETCH $ (FLAGS) (CHANGEDSINCE 1)", 34,
    "a FETCH set=$ atts=0 changedsince=1" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1:3 +FLAGS (\\Deleted \\seen)", 35,
    "a STORE set=1:3 store=1 flags=[\\Deleted|\\Seen]" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 -FLAGS.SILENT \\Flagged $Label1", 40,
    "a STORE set=1 store=2s flags=[\\Flagged|$Label1]" },
  { MH_IMAP_STATE_SELECTED, "a STORE 2 FLAGS ()", 18,
    "a STORE set=2 store=0 flags=[]" },
  { MH_IMAP_STATE_SELECTED,
    "a UID STORE 1,3 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)", 67,
    "a UID STORE uid set=1,3 store=1s flags=[\\Deleted] "
    "unchangedsince=320162338" },
  { MH_IMAP_STATE_SELECTED, "a COPY 2:4 MEETING", 18,
    "a COPY mailbox=MEETING set=2:4" },
  { MH_IMAP_STATE_SELECTED, "a UID MOVE 42 \"Trash\"", 21,
    "a UID MOVE uid mailbox=Trash set=42" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH ALL", 12, "a SEARCH search=AND(ALL)" },
  { MH_IMAP_STATE_SELECTED,
    "a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"", 50,
    "a SEARCH search=AND(FLAGGED SINCE:d=8797 NOT(FROM:s=Smith))" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH OR BODY foo (TO bar CC baz) UNSEEN", 43,
    "a SEARCH search=AND(OR(BODY:s=foo AND(TO:s=bar CC:s=baz)) UNSEEN)" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH CHARSET UTF-8 TEXT {6}\015\012XXXXXX", 39,
    "a SEARCH search=AND(TEXT:s=XXXXXX) charset=UTF-8" },
  { MH_IMAP_STATE_SELECTED,
    "a UID SEARCH RETURN (MIN MAX COUNT ALL SAVE) 1:100 UID 2:* LARGER 100 "
    "SMALLER 200",
    81,
    "a UID SEARCH uid search=AND(SEQSET:set=1:100 UID:set=2:* LARGER:n=100 "
    "SMALLER:n=200) esearch=1f" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH RETURN () $", 20,
    "a SEARCH search=AND(SEQSET:set=$) esearch=4" },
  { MH_IMAP_STATE_SELECTED,
    "a SEARCH HEADER \"Message-ID\" \"<x@y>\" KEYWORD $Forwarded UNKEYWORD "
    "Junk",
    70,
    "a SEARCH search=AND(HEADER:h=Message-ID:s=<x@y> KEYWORD:s=$Forwarded "
    "UNKEYWORD:s=Junk)" },
  { MH_IMAP_STATE_SELECTED,
    "a SEARCH BEFORE \"01-Jan-2000\" ON 29-Feb-2000 SENTBEFORE 1-Jan-1970 "
    "SENTON 2-Jan-1970 SENTSINCE 31-Dec-2024",
    106,
    "a SEARCH search=AND(BEFORE:d=10957 ON:d=11016 SENTBEFORE SENTON:d=1 "
    "SENTSINCE:d=20088)" },
  { MH_IMAP_STATE_SELECTED,
    "a SEARCH ANSWERED DELETED DRAFT RECENT NEW OLD SEEN UNANSWERED UNDELETED "
    "UNDRAFT UNFLAGGED UNSEEN BCC x SUBJECT y",
    113,
    "a SEARCH search=AND(ANSWERED DELETED DRAFT RECENT NEW OLD SEEN UNANSWERED "
    "UNDELETED UNDRAFT UNFLAGGED UNSEEN BCC:s=x SUBJECT:s=y)" },
  { MH_IMAP_STATE_SELECTED,
    "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338", 46,
    "a SEARCH changedsince=620162338 "
    "search=AND(MODSEQ:h=/flags/\\draft:s=all:n=620162338)" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH MODSEQ 5 OLDER 3600 YOUNGER 60", 39,
    "a SEARCH changedsince=5 search=AND(MODSEQ:n=5 OLDER:n=3600 "
    "YOUNGER:n=60)" },
  { MH_IMAP_STATE_SELECTED,
    "a SEARCH SAVEDBEFORE 1-Jan-2020 SAVEDON 2-Jan-2020 SAVEDSINCE 3-Jan-2020 "
    "SAVEDATESUPPORTED",
    90,
    "a SEARCH search=AND(SAVEDBEFORE:d=18262 SAVEDON:d=18263 "
    "SAVEDSINCE:d=18264 SAVEDATESUPPORTED)" },
  { MH_IMAP_STATE_SELECTED,
    "a SORT (REVERSE ARRIVAL SUBJECT DISPLAYFROM) UTF-8 ALL", 54,
    "a SORT search=AND(ALL) charset=UTF-8 sort=-0,5,7" },
  { MH_IMAP_STATE_SELECTED, "a UID SORT RETURN (COUNT) (DATE) US-ASCII UNSEEN",
    48, "a UID SORT uid search=AND(UNSEEN) charset=US-ASCII esearch=8 sort=2" },
  { MH_IMAP_STATE_SELECTED, "a THREAD REFERENCES UTF-8 ALL", 29,
    "a THREAD search=AND(ALL) charset=UTF-8 thread=1" },
  { MH_IMAP_STATE_SELECTED,
    "a UID THREAD ORDEREDSUBJECT US-ASCII SINCE 5-MAR-2000", 53,
    "a UID THREAD uid search=AND(SINCE:d=11021) charset=US-ASCII thread=0" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETQUOTA \"\"", 13, "a GETQUOTA mailbox=" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETQUOTAROOT inbox", 20,
    "a GETQUOTAROOT mailbox=INBOX" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SETQUOTA \"\" (STORAGE 512 MESSAGE 1000)",
    40, "a SETQUOTA mailbox= strings=[STORAGE|512|MESSAGE|1000]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA \"\" /shared/comment", 32,
    "a GETMETADATA mailbox= strings=[/shared/comment]" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/shared/comment "
    "/private/comment)",
    84,
    "a GETMETADATA mailbox=INBOX strings=[/shared/comment|/private/comment] "
    "maxsize=1024 depth=-1" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a SETMETADATA INBOX (/private/comment \"My comment\" /shared/x NIL)", 65,
    "a SETMETADATA mailbox=INBOX strings=[/private/comment|My "
    "comment|/shared/x|NIL]" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a SETMETADATA \"\" (/shared/admin ~{4}\015\012ab\000c)", 43,
    "a SETMETADATA mailbox= strings=[/shared/admin|ab]" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a NOTIFY SET (selected MessageNew (uid body.peek[header.fields (from to "
    "subject)]) MessageExpunge) (subtree Lists MessageNew)",
    125,
    "a NOTIFY strings=[SET (selected MessageNew (uid body.peek[header.fields "
    "(from to subject)]) MessageExpunge) (subtree Lists MessageNew)]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a NOTIFY NONE", 13,
    "a NOTIFY strings=[NONE]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a COMPRESS deflate", 18,
    "a COMPRESS compress=DEFLATE" },
  /* the rest of each keyword table: every name maps to its value */
  { MH_IMAP_STATE_AUTHENTICATED,
    "a LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) \"\" *", 46,
    "a LIST ref= patterns=[*] select=7" },
  { MH_IMAP_STATE_SELECTED,
    "a SORT (CC REVERSE FROM SIZE TO DISPLAYTO) UTF-8 ALL", 52,
    "a SORT search=AND(ALL) charset=UTF-8 sort=1,-3,4,6,8" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 FLAGS (\\answered \\DRAFT)", 34,
    "a STORE set=1 store=0 flags=[\\Answered|\\Draft]" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a GETMETADATA (DEPTH 0 MAXSIZE 5) INBOX /private/x", 50,
    "a GETMETADATA mailbox=INBOX strings=[/private/x] maxsize=5" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA (depth 1) INBOX (/shared/x)",
    41, "a GETMETADATA mailbox=INBOX strings=[/shared/x] depth=1" },
  { MH_IMAP_STATE_AUTHENTICATED, "a EXAMINE INBOX (CONDSTORE QRESYNC (1 2))",
    41, "a EXAMINE mailbox=INBOX condstore qresync=1/2" },
  { MH_IMAP_STATE_SELECTED, "a UID FETCH 1 (FLAGS) (VANISHED CHANGEDSINCE 7)",
    47, "a UID FETCH uid set=1 atts=0 changedsince=7 vanished" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BINARY.PEEK[2]", 24,
    "a FETCH set=1 atts=11p[2]{2}" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a LIST \"\" * RETURN (STATUS (UIDNEXT SIZE) CHILDREN)", 51,
    "a LIST ref= patterns=[*] return=a status=44" },
  { MH_IMAP_STATE_AUTHENTICATED, "a ENABLE qresync", 16,
    "a ENABLE strings=[QRESYNC]" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SETQUOTA root ()", 18,
    "a SETQUOTA mailbox=root strings=[]" },
};

static void
test_parse_table (void **state)
{
  (void)state;
  gboolean print = g_getenv ("IMAP_PRINT") != NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (parse_cases); i++)
    {
      const ParseCase *c = &parse_cases[i];
      GString *script = g_string_new_len (c->wire, (gssize)c->len);
      g_string_append (script, "\r\n");
      ImapSetup s = { .state = c->state };
      g_autoptr (ImapRun) r
          = imap_run_all (&s, script->str, (gssize)script->len);
      g_string_free (script, TRUE);
      if (print)
        {
          g_print ("%" G_GSIZE_FORMAT "\t%s", i, r->log->str);
          continue;
        }
      if (r->cmds->len != 1)
        fail_msg ("case %" G_GSIZE_FORMAT " \"%s\": %u commands; output %s", i,
                  c->wire, r->cmds->len, r->out->str);
      g_autofree char *d = imap_describe (r->cmds->pdata[0]);
      if (strcmp (d, c->want) != 0)
        fail_msg ("case %" G_GSIZE_FORMAT " \"%s\"\n  got:  %s\n  want: %s", i,
                  c->wire, d, c->want);
      /* a copy describes the same (bindings use it) */
      g_autoptr (MhImapCommand) copy = mh_imap_command_copy (r->cmds->pdata[0]);
      g_autofree char *d2 = imap_describe (copy);
      assert_string_equal (d, d2);
    }
}

static const ParseCase bad_cases[] = {
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT caf\303\251", 14,
    "a BAD Error in IMAP command SELECT: 8-bit characters are only allowed "
    "in quoted strings (after ENABLE UTF8=ACCEPT) and literals" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT \303\251", 11,
    "a BAD Error in IMAP command SELECT: 8-bit characters are only allowed "
    "in quoted strings (after ENABLE UTF8=ACCEPT) and literals" },
  /* fuzz-imap found a double free here (corpus crash-sort-reverse-
   * double-free) */
  { MH_IMAP_STATE_SELECTED, "a SORT (REVERSE)", 16,
    "a BAD Error in IMAP command SORT: expected a space before sort key "
    "after REVERSE" },
  { MH_IMAP_STATE_SELECTED, "a SORT (REVERSE", 15,
    "a BAD Error in IMAP command SORT: missing sort key after REVERSE" },
  { MH_IMAP_STATE_SELECTED, "a FETCH", 7,
    "a BAD Error in IMAP command FETCH: missing message set" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1", 9,
    "a BAD Error in IMAP command FETCH: missing FETCH items" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 0 FLAGS", 15,
    "a BAD Error in IMAP command FETCH: message number must not be 0" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1:x FLAGS", 17,
    "a BAD Error in IMAP command FETCH: invalid message set" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 (FLAGS", 16,
    "a BAD Error in IMAP command FETCH: missing the next FETCH item or ')'" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 (FLAGS ALL)", 21,
    "a BAD Error in IMAP command FETCH: the macro ALL cannot be used inside a "
    "list" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BODYX", 15,
    "a BAD Error in IMAP command FETCH: unknown FETCH item \"BODYX\"" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BODY[HEADER.FOO]", 26,
    "a BAD Error in IMAP command FETCH: invalid section text \"HEADER.FOO\" "
    "(expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT)" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BODY[MIME]", 20,
    "a BAD Error in IMAP command FETCH: invalid section text \"MIME\" "
    "(expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT)" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BODY[1.TEXT", 21,
    "a BAD Error in IMAP command FETCH: expected ']' to close the section" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BODY[]<1.0>", 21,
    "a BAD Error in IMAP command FETCH: partial length must not be 0" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BINARY[HEADER]", 24,
    "a BAD Error in IMAP command FETCH: BINARY sections take part numbers "
    "only" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 FLAGS (CHANGEDSINCE 0)", 32,
    "a BAD Error in IMAP command FETCH: CHANGEDSINCE value must not be 0" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 FLAGS (VANISHED)", 26,
    "a BAD Error in IMAP command FETCH: VANISHED is only allowed in UID "
    "FETCH" },
  { MH_IMAP_STATE_SELECTED, "a UID FETCH 1 FLAGS (VANISHED)", 30,
    "a BAD Error in IMAP command UID FETCH: VANISHED requires CHANGEDSINCE" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 FLAGS (FOO)", 21,
    "a BAD Error in IMAP command FETCH: unknown FETCH modifier FOO (expected "
    "CHANGEDSINCE or VANISHED)" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 99999999999 FLAGS", 25,
    "a BAD Error in IMAP command FETCH: message number is too large" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 FLAGS (\\Recent)", 25,
    "a BAD Error in IMAP command STORE: \\Recent cannot be set by clients" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 FLAGS (\\Foo)", 22,
    "a BAD Error in IMAP command STORE: unknown system flag \\Foo" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 XFLAGS (\\Seen)", 24,
    "a BAD Error in IMAP command STORE: unknown STORE item XFLAGS (expected "
    "FLAGS, +FLAGS or -FLAGS, optionally .SILENT)" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 (UNCHANGEDSINCE x) FLAGS ()", 37,
    "a BAD Error in IMAP command STORE: expected UNCHANGEDSINCE value (a "
    "number)" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 +FLAGS", 16,
    "a BAD Error in IMAP command STORE: missing flags" },
  { MH_IMAP_STATE_SELECTED, "a COPY 1", 8,
    "a BAD Error in IMAP command COPY: missing destination mailbox" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH", 8,
    "a BAD Error in IMAP command SEARCH: missing search key" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH FOO", 12,
    "a BAD Error in IMAP command SEARCH: unknown search key \"FOO\"" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH CHARSET KOI8-R TEXT x", 30,
    "a NO [BADCHARSET (US-ASCII UTF-8)] Error in IMAP command SEARCH: "
    "unsupported charset KOI8-R" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH SINCE 31-Feb-2020", 26,
    "a BAD Error in IMAP command SEARCH: invalid date: day 31 of month 2 of "
    "2020" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH SINCE yesterday", 24,
    "a BAD Error in IMAP command SEARCH: invalid date (expected d-Mon-yyyy, "
    "e.g. 1-Feb-2024)" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH OR SEEN", 16,
    "a BAD Error in IMAP command SEARCH: missing second search key of OR" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH (SEEN", 14,
    "a BAD Error in IMAP command SEARCH: missing the next search key or ')'" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH RETURN (BOGUS) ALL", 27,
    "a BAD Error in IMAP command SEARCH: unknown return option BOGUS (expected "
    "MIN, MAX, ALL, COUNT or SAVE)" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH TEXT \"caf\303\251\"", 21,
    "a BAD Error in IMAP command SEARCH: 8-bit characters in quoted argument "
    "of TEXT need UTF8=ACCEPT (or a literal)" },
  { MH_IMAP_STATE_SELECTED, "a SORT (SUBJECT) ALL", 20,
    "a NO [BADCHARSET (US-ASCII UTF-8)] Error in IMAP command SORT: "
    "unsupported charset ALL" },
  { MH_IMAP_STATE_SELECTED, "a SORT (FOO) UTF-8 ALL", 22,
    "a BAD Error in IMAP command SORT: unknown sort key FOO" },
  { MH_IMAP_STATE_SELECTED, "a THREAD X UTF-8 ALL", 20,
    "a BAD Error in IMAP command THREAD: unknown threading algorithm X "
    "(expected ORDEREDSUBJECT or REFERENCES)" },
  { MH_IMAP_STATE_SELECTED, "a UID FOO 1", 11,
    "a BAD Error in IMAP command UID: FOO cannot follow UID" },
  { MH_IMAP_STATE_SELECTED, "a UID", 5,
    "a BAD Error in IMAP command UID: missing command (COPY, MOVE, FETCH, "
    "SEARCH, STORE, EXPUNGE, SORT or THREAD)" },
  { MH_IMAP_STATE_SELECTED, "a UID LIST", 10,
    "a BAD Error in IMAP command UID: LIST cannot follow UID" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT", 8,
    "a BAD Error in IMAP command SELECT: missing mailbox name" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX (FOO)", 20,
    "a BAD Error in IMAP command SELECT: unknown SELECT parameter FOO "
    "(expected CONDSTORE or QRESYNC)" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX (QRESYNC (0 1))", 30,
    "a BAD Error in IMAP command SELECT: QRESYNC UIDVALIDITY must not be 0" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX (QRESYNC (1 0))", 30,
    "a BAD Error in IMAP command SELECT: QRESYNC modseq must not be 0" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX extra", 20,
    "a BAD Error in IMAP command SELECT: expected '(' to open the SELECT "
    "parameters" },
  { MH_IMAP_STATE_AUTHENTICATED, "a CREATE x (USE (Sent))", 23,
    "a BAD Error in IMAP command CREATE: expected '\\' to start a special-use "
    "attribute" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST (RECURSIVEMATCH) \"\" *", 28,
    "a BAD Error in IMAP command LIST: RECURSIVEMATCH needs another selection "
    "option such as SUBSCRIBED" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST (BOGUS) \"\" *", 19,
    "a BAD Error in IMAP command LIST: unknown LIST selection option BOGUS" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"\" * RETURN (BOGUS)", 26,
    "a BAD Error in IMAP command LIST: unknown LIST return option BOGUS" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"\" * FOO", 15,
    "a BAD Error in IMAP command LIST: expected RETURN after the mailbox "
    "patterns" },
  { MH_IMAP_STATE_AUTHENTICATED, "a STATUS INBOX (FOO)", 20,
    "a BAD Error in IMAP command STATUS: unknown status item FOO" },
  { MH_IMAP_STATE_AUTHENTICATED, "a STATUS INBOX MESSAGES", 23,
    "a BAD Error in IMAP command STATUS: expected '(' to open the status "
    "items" },
  { MH_IMAP_STATE_AUTHENTICATED, "a APPEND INBOX \"hello\"", 22,
    "a BAD Error in IMAP command APPEND: invalid date-time (expected "
    "\"dd-Mon-yyyy hh:mm:ss +zzzz\")" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a APPEND INBOX (\\Seen) \"1-Jan-2000 00:00:00 +0000\"", 50,
    "a BAD Error in IMAP command APPEND: missing message literal" },
  { MH_IMAP_STATE_AUTHENTICATED,
    "a APPEND INBOX \"32-Jan-2000 00:00:00 +0000\" {1}\015\012x", 50,
    "+ OK\015\012a BAD Error in IMAP command APPEND: date-time out of range" },
  { MH_IMAP_STATE_AUTHENTICATED, "a APPEND", 8,
    "a BAD Error in IMAP command APPEND: missing mailbox name" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA INBOX /foo", 24,
    "a BAD Error in IMAP command GETMETADATA: metadata entry \"/foo\" must "
    "start with /private or /shared" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA (DEPTH 2) INBOX /shared/x", 39,
    "a BAD Error in IMAP command GETMETADATA: DEPTH must be 0, 1 or infinity" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SETMETADATA INBOX ()", 22,
    "a BAD Error in IMAP command SETMETADATA: SETMETADATA needs at least one "
    "entry" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SETQUOTA root (STORAGE x)", 27,
    "a BAD Error in IMAP command SETQUOTA: expected resource limit (a "
    "number)" },
  { MH_IMAP_STATE_AUTHENTICATED, "a ENABLE", 8,
    "a BAD Error in IMAP command ENABLE: missing capability name" },
  { MH_IMAP_STATE_AUTHENTICATED, "a NOTIFY", 8,
    "a BAD Error in IMAP command NOTIFY: missing NOTIFY arguments" },
  { MH_IMAP_STATE_AUTHENTICATED, "a COMPRESS", 10,
    "a BAD Error in IMAP command COMPRESS: missing compression mechanism" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LOGIN a b", 11,
    "a BAD LOGIN: Already authenticated" },
  { MH_IMAP_STATE_AUTHENTICATED, "a ID (\"a\" \"b\"", 13,
    "a BAD Error in IMAP command ID: missing the next ID field" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"\" \"caf\303\251\"", 17,
    "a BAD Error in IMAP command LIST: 8-bit characters in quoted mailbox "
    "pattern need UTF8=ACCEPT (or a literal)" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a AUTHENTICATE PLAIN abc", 24,
    "a BAD Error in IMAP command AUTHENTICATE: initial response is not base64 "
    "(or \"=\" for empty)" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a AUTHENTICATE", 14,
    "a BAD Error in IMAP command AUTHENTICATE: missing SASL mechanism" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN user", 12,
    "a BAD Error in IMAP command LOGIN: missing password" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN \"unterminated", 21,
    "a BAD Error in IMAP command LOGIN: unterminated quoted string in user "
    "name" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN \"bad\\escape\" x", 22,
    "a BAD Error in IMAP command LOGIN: invalid escape in quoted string of "
    "user name (only \\\" and \\\\ are allowed)" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN us(er pass", 18,
    "a BAD Error in IMAP command LOGIN: expected a space before password" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a SELECT INBOX", 14,
    "a BAD SELECT: Not authenticated: log in first" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a FETCH 1 FLAGS", 15,
    "a BAD FETCH: Not authenticated: log in first" },
  { MH_IMAP_STATE_AUTHENTICATED, "a FETCH 1 FLAGS", 15,
    "a BAD FETCH: No mailbox selected" },
  { MH_IMAP_STATE_AUTHENTICATED, "a STARTTLS", 10,
    "a BAD STARTTLS: Already authenticated" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LOGIN user pass", 17,
    "a BAD LOGIN: Already authenticated" },
  { MH_IMAP_STATE_AUTHENTICATED, "a AUTHENTICATE PLAIN", 20,
    "a BAD AUTHENTICATE: Already authenticated" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a FOO", 5, "a BAD Unknown command FOO" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "+ NOOP", 6,
    "* BAD Invalid tag (letters, digits and most punctuation but not + ( ) { * "
    "% \" \\)" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a+b NOOP", 8,
    "* BAD Invalid tag (letters, digits and most punctuation but not + ( ) { * "
    "% \" \\)" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "(a) NOOP", 8,
    "* BAD Invalid tag (letters, digits and most punctuation but not + ( ) { * "
    "% \" \\)" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a", 1,
    "a BAD Missing command name after the tag" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a  NOOP", 7,
    "a BAD Missing command name after the tag" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a NOOP extra", 12,
    "a BAD Error in IMAP command NOOP: unexpected characters at the end of the "
    "command" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a CAPABILITY (x)", 16,
    "a BAD Error in IMAP command CAPABILITY: unexpected characters at the end "
    "of the command" },
  { MH_IMAP_STATE_NOT_AUTHENTICATED, "a LOGIN {1}\015\012u {1}\015\012p x", 23,
    "+ OK\015\012+ OK\015\012a BAD Error in IMAP command LOGIN: unexpected "
    "characters at the end of the command" },
  /* each list shape: what is missing or unknown, and where */
  { MH_IMAP_STATE_SELECTED, "a SEARCH RETURN (MIN", 20,
    "a BAD Error in IMAP command SEARCH: missing the next return option" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH RETURN (MIN  MAX) ALL", 30,
    "a BAD Error in IMAP command SEARCH: expected return option" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST (SUBSCRIBED \"\" *", 23,
    "a BAD Error in IMAP command LIST: expected selection option" },
  { MH_IMAP_STATE_AUTHENTICATED, "a LIST \"\" * RETURN (CHILDREN", 28,
    "a BAD Error in IMAP command LIST: missing the next return option" },
  { MH_IMAP_STATE_AUTHENTICATED, "a STATUS INBOX (MESSAGES", 24,
    "a BAD Error in IMAP command STATUS: missing the next status item" },
  { MH_IMAP_STATE_AUTHENTICATED, "a STATUS INBOX ()", 17,
    "a BAD Error in IMAP command STATUS: expected status item" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 FLAGS (VANISHED", 25,
    "a BAD Error in IMAP command FETCH: missing the next FETCH modifier" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 (FOO 1) FLAGS ()", 26,
    "a BAD Error in IMAP command STORE: unknown STORE modifier FOO (expected "
    "UNCHANGEDSINCE)" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 FLAGS (\\Seen", 22,
    "a BAD Error in IMAP command STORE: missing the next flag" },
  { MH_IMAP_STATE_SELECTED, "a STORE 1 FLAGS \\Seen  \\Draft", 29,
    "a BAD Error in IMAP command STORE: expected a flag" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))",
    44, "a BAD Error in IMAP command SELECT: QRESYNC given twice" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SELECT INBOX (CONDSTORE", 25,
    "a BAD Error in IMAP command SELECT: missing the next SELECT parameter" },
  { MH_IMAP_STATE_SELECTED, "a SORT (REVERSE REVERSE) UTF-8 ALL", 34,
    "a BAD Error in IMAP command SORT: unknown sort key REVERSE" },
  { MH_IMAP_STATE_SELECTED, "a SORT (DATE UTF-8 ALL", 22,
    "a BAD Error in IMAP command SORT: unknown sort key UTF-8" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 BODY[HEADER.FIELDS (a]", 32,
    "a BAD Error in IMAP command FETCH: missing the next header field name" },
  { MH_IMAP_STATE_SELECTED, "a FETCH 1 (FLAGS  UID)", 22,
    "a BAD Error in IMAP command FETCH: expected a FETCH item" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA (FOO) INBOX /shared/x", 35,
    "a BAD Error in IMAP command GETMETADATA: unknown GETMETADATA option FOO "
    "(expected MAXSIZE or DEPTH)" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA (DEPTH 1 INBOX /shared/x", 38,
    "a BAD Error in IMAP command GETMETADATA: unknown GETMETADATA option INBOX "
    "(expected MAXSIZE or DEPTH)" },
  { MH_IMAP_STATE_AUTHENTICATED, "a GETMETADATA INBOX (/shared/x /private/y",
    41,
    "a BAD Error in IMAP command GETMETADATA: missing the next entry name" },
  { MH_IMAP_STATE_AUTHENTICATED, "a CREATE x (FOO)", 16,
    "a BAD Error in IMAP command CREATE: unknown CREATE parameter FOO "
    "(expected USE)" },
  { MH_IMAP_STATE_AUTHENTICATED, "a CREATE x (USE (\\Sent \\Junk)", 29,
    "a BAD Error in IMAP command CREATE: missing the next CREATE parameter" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SETQUOTA root (STORAGE 1", 26,
    "a BAD Error in IMAP command SETQUOTA: missing the next resource" },
  { MH_IMAP_STATE_AUTHENTICATED, "a SETMETADATA INBOX (/shared/x \"v\"", 34,
    "a BAD Error in IMAP command SETMETADATA: missing the next entry" },
  { MH_IMAP_STATE_AUTHENTICATED, "a ENABLE a  b", 13,
    "a BAD Error in IMAP command ENABLE: expected capability name" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH MODSEQ \"/flags/x\" bogus 5", 34,
    "a BAD Error in IMAP command SEARCH: MODSEQ entry type must be priv, "
    "shared or all" },
  { MH_IMAP_STATE_SELECTED, "a SEARCH OLDER 0", 16,
    "a BAD Error in IMAP command SEARCH: argument of OLDER must not be 0" },
};

/* Each bad command gets exactly one tagged (or untagged) BAD or NO with
 * its text, and the engine goes on: a NOOP after it is still served. */
static void
test_bad_corpus (void **state)
{
  (void)state;
  gboolean print = g_getenv ("IMAP_PRINT") != NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (bad_cases); i++)
    {
      const ParseCase *c = &bad_cases[i];
      GString *script = g_string_new_len (c->wire, (gssize)c->len);
      g_string_append (script, "\r\nz NOOP\r\n");
      ImapSetup s = { .state = c->state };
      g_autoptr (ImapRun) r
          = imap_run_all (&s, script->str, (gssize)script->len);
      g_string_free (script, TRUE);
      if (print)
        {
          const char *end = g_strrstr (r->out->str, "\r\nz OK NOOP");
          g_autofree char *o
              = g_strndup (r->out->str, end != NULL ? end - r->out->str : 0);
          g_print ("%" G_GSIZE_FORMAT "\t%s\n", i, o);
          continue;
        }
      if (r->cmds->len != 1)
        fail_msg ("case %" G_GSIZE_FORMAT " \"%s\": %u commands; output %s", i,
                  c->wire, r->cmds->len, r->out->str);
      g_autofree char *want
          = g_strconcat (c->want, "\r\nz OK NOOP completed.\r\n", NULL);
      if (strcmp (r->out->str, want) != 0)
        fail_msg ("case %" G_GSIZE_FORMAT " \"%s\"\n  got:  %s\n  want: %s", i,
                  c->wire, r->out->str, want);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_table),
    cmocka_unit_test (test_bad_corpus),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
