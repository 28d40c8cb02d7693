/* Unit tests of lib/server/imap-search.c: every SEARCH key against a real
 * MhStore in a temp dir, SORT keys, THREAD (ORDEREDSUBJECT, REFERENCES),
 * the SEARCH/SORT/ESEARCH lines, SEARCHRES saving, and the text helpers
 * (RFC 5256 base subject, RFC 2047 decoding, Date: parsing). TZ is set
 * to UTC before anything reads it, so the internal-date days are fixed. */
#include "mh-test.h"
#include "server/imap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Search program builders ------------------------------------------- */

static void key_free (gpointer p);

static MhImapSearchKey *
key (MhImapSearchKeyType type)
{
  MhImapSearchKey *k = g_new0 (MhImapSearchKey, 1);
  k->type = type;
  return k;
}

static MhImapSearchKey *
key_str (MhImapSearchKeyType type, const char *s)
{
  MhImapSearchKey *k = key (type);
  k->string = g_strdup (s);
  return k;
}

static MhImapSearchKey *
key_num (MhImapSearchKeyType type, guint64 n)
{
  MhImapSearchKey *k = key (type);
  k->number = n;
  return k;
}

static gint64
day (int y, int m, int d)
{
  GDate *a = g_date_new_dmy ((GDateDay) d, (GDateMonth) m, (GDateYear) y);
  GDate *e = g_date_new_dmy (1, G_DATE_JANUARY, 1970);
  gint64 r = (gint64) g_date_get_julian (a) - (gint64) g_date_get_julian (e);
  g_date_free (a);
  g_date_free (e);
  return r;
}

static MhImapSearchKey *
key_date (MhImapSearchKeyType type, int y, int m, int d)
{
  MhImapSearchKey *k = key (type);
  k->date = day (y, m, d);
  return k;
}

static MhImapSearchKey *
key_header (const char *name, const char *s)
{
  MhImapSearchKey *k = key_str (MH_IMAP_SEARCH_HEADER, s);
  k->header = g_strdup (name);
  return k;
}

/* A set "a:b,c" given as pairs; 0 stands for "*". */
static MhImapSearchKey *
key_set (MhImapSearchKeyType type, const guint32 *pairs, guint n)
{
  MhImapSearchKey *k = key (type);
  k->set = g_new0 (MhImapSeqSet, 1);
  k->set->ranges = g_array_new (FALSE, FALSE, sizeof (MhImapRange));
  for (guint i = 0; i < n; i++)
    {
      MhImapRange r = { pairs[2 * i] ? pairs[2 * i] : MH_IMAP_STAR,
                        pairs[2 * i + 1] ? pairs[2 * i + 1] : MH_IMAP_STAR };
      g_array_append_val (k->set->ranges, r);
    }
  return k;
}

static MhImapSearchKey *
key_saved (MhImapSearchKeyType type)
{
  MhImapSearchKey *k = key (type);
  k->set = g_new0 (MhImapSeqSet, 1);
  k->set->saved = TRUE;
  return k;
}

static MhImapSearchKey *
key_op (MhImapSearchKeyType type, MhImapSearchKey *a, MhImapSearchKey *b)
{
  MhImapSearchKey *k = key (type);
  k->children = g_ptr_array_new_with_free_func (key_free);
  g_ptr_array_add (k->children, a);
  if (b)
    g_ptr_array_add (k->children, b);
  return k;
}

static void
key_free (gpointer p)
{
  MhImapSearchKey *k = p;
  if (k == NULL)
    return;
  if (k->children)
    g_ptr_array_unref (k->children);
  g_free (k->header);
  g_free (k->string);
  if (k->set)
    {
      if (k->set->ranges)
        g_array_unref (k->set->ranges);
      g_free (k->set);
    }
  g_free (k);
}

/* ---- Fixture ------------------------------------------------------------ */

static const char m1[] =
  "From: Alice Example <alice@example.org>\n"
  "To: bob@example.net\n"
  "Subject: Hello there\n"
  "Date: Mon, 2 Nov 2026 10:00:00 +0000\n"
  "Message-ID: <m1@example.org>\n"
  "\n"
  "Body line one\n";

static const char m2[] =
  "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>\n"
  "To: zed@example.org\n"
  "Cc: carol@example.net\n"
  "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\n"
  "Date: Tue, 3 Nov 2026 23:30:00 -0500\n"
  "Message-ID: <m2@example.fr>\n"
  "MIME-Version: 1.0\n"
  "Content-Type: text/plain; charset=ISO-8859-1\n"
  "Content-Transfer-Encoding: quoted-printable\n"
  "\n"
  "Voil=E0 le r=E9sum=E9 du\n"
  " projet.\n";

static const char m3[] =
  "From: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.de>\n"
  "To: \"Anna\" <anna@example.de>\n"
  "Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus\n"
  " =?UTF-8?Q?K=C3=B6ln?=\n"
  "Date: Wed, 4 Nov 2026 01:00:00 +0200\n"
  "X-Custom: foo bar\n"
  "MIME-Version: 1.0\n"
  "Content-Type: multipart/mixed; boundary=\"B\"\n"
  "\n"
  "--B\n"
  "Content-Type: text/plain; charset=utf-8\n"
  "Content-Transfer-Encoding: base64\n"
  "\n"
  "R3LDvMOfZSB2b24gZGVyIFN0cmHDn2Uu\n"
  "--B\n"
  "Content-Type: application/octet-stream\n"
  "Content-Transfer-Encoding: base64\n"
  "\n"
  "c2VjcmV0d29yZA==\n"
  "--B--\n";

/* No Date: its sent date is the internal date. */
static const char m4_head[] =
  "From: Yann <aaron@example.com>\n"
  "Bcc: dave@example.com\n"
  "Subject: Fwd: Zebra\n"
  "\n";

static const char m5[] =
  "From: Carol <carol@example.net>\n"
  "To: alice@example.org\n"
  "Subject: Re: Hello there\n"
  "Date: Thu, 5 Nov 2026 09:00:00 +0000\n"
  "Message-ID: <m5@example.net>\n"
  "In-Reply-To: <m1@example.org>\n"
  "\n"
  "I agree.\n";

typedef struct
{
  char *dir;
  MhStore *store;
  MhStoreView *view;
  const char *folder; /* of view: NULL for INBOX */
  guint64 m2_modseq;
} Fx;

static gint64
noon (int d)
{
  GDateTime *t = g_date_time_new_utc (2026, 11, d, 12, 0, 0);
  gint64 r = g_date_time_to_unix (t);
  g_date_time_unref (t);
  return r;
}

static guint32
deliver (MhStore *s, const char *folder, const char *text, MhStoreFlags fl,
         const char *const *kw, gint64 date)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = g_bytes_new (text, strlen (text));
  guint32 uid = 0;
  if (!mh_store_deliver (s, folder, b, fl, kw, date, &uid, &error))
    fail_msg ("deliver: %s", error->message);
  return uid;
}

static int
setup (void **state)
{
  Fx *fx = g_new0 (Fx, 1);
  fx->dir = mh_test_mkdtemp ();
  g_autofree char *md = g_build_filename (fx->dir, "mail", NULL);
  g_autofree char *ix = g_build_filename (fx->dir, "index", NULL);
  g_autoptr (GError) error = NULL;
  fx->store = mh_store_open (md, ix, MH_STORE_OPEN_CREATE, &error);
  assert_non_null (fx->store);
  /* UID 1 is expunged so UIDs (2..6) differ from sequence numbers. */
  guint32 gone = deliver (fx->store, NULL, m1, 0, NULL, noon (1));
  assert_true (mh_store_expunge (fx->store, NULL, &gone, 1, FALSE, NULL,
                                 &error));
  const char *work[] = { "$Work", NULL };
  deliver (fx->store, NULL, m1, MH_STORE_FLAG_SEEN, NULL, noon (2));
  deliver (fx->store, NULL, m2, 0, NULL, noon (3));
  deliver (fx->store, NULL, m3, MH_STORE_FLAG_DELETED | MH_STORE_FLAG_SEEN,
           work, noon (4));
  GString *m4 = g_string_new (m4_head);
  for (int i = 0; i < 100; i++)
    g_string_append (m4, "A line of padding to make this message large.\n");
  deliver (fx->store, NULL, m4->str, MH_STORE_FLAG_DRAFT, NULL, noon (5));
  g_string_free (m4, TRUE);
  deliver (fx->store, NULL, m5, 0, work, noon (6));
  /* m2's flags change last: it holds the highest MODSEQ. */
  guint32 u2 = 3;
  assert_true (mh_store_set_flags (fx->store, NULL, &u2, 1,
                                   MH_STORE_FLAGS_ADD,
                                   MH_STORE_FLAG_FLAGGED
                                     | MH_STORE_FLAG_ANSWERED,
                                   NULL, 0, NULL, &error));
  fx->view = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_non_null (fx->view);
  assert_int_equal (mh_store_view_get_count (fx->view), 5);
  assert_int_equal (mh_store_view_get_uid (fx->view, 0), 2);
  fx->m2_modseq = mh_store_view_get_modseq (fx->view, 1);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fx *fx = *state;
  mh_store_view_unref (fx->view);
  mh_store_unref (fx->store);
  mh_test_rmtree (fx->dir);
  g_free (fx->dir);
  g_free (fx);
  return 0;
}

/* Runs @k (taking it) and returns the sequence numbers, "1 3". */
static char *
run (Fx *fx, MhImapSearchKey *k, const GArray *saved)
{
  g_autoptr (GError) error = NULL;
  GArray *r = mh_imap__search (fx->store, fx->folder, fx->view, k, saved,
                              &error);
  key_free (k);
  if (r == NULL)
    fail_msg ("search: %s", error->message);
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < r->len; i++)
    g_string_append_printf (s, "%s%u", i ? " " : "",
                            g_array_index (r, guint, i) + 1);
  g_array_unref (r);
  return g_string_free (s, FALSE);
}

#define SEARCH_IS(fx, k, want)                                               \
  do                                                                         \
    {                                                                        \
      g_autofree char *got_ = run ((fx), (k), NULL);                         \
      assert_string_equal (got_, (want));                                    \
    }                                                                        \
  while (0)

/* ---- SEARCH ------------------------------------------------------------- */

static void
test_flags (void **state)
{
  Fx *fx = *state;
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_ALL), "1 2 3 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_SEEN), "1 3");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_UNSEEN), "2 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_FLAGGED), "2");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_UNFLAGGED), "1 3 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_ANSWERED), "2");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_UNANSWERED), "1 3 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_DELETED), "3");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_UNDELETED), "1 2 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_DRAFT), "4");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_UNDRAFT), "1 2 3 5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_KEYWORD, "$work"), "3 5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_UNKEYWORD, "$Work"), "1 2 4");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_KEYWORD, "$Other"), "");
  /* The first read-write select claimed \Recent for every message. */
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_RECENT), "1 2 3 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_NEW), "2 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_OLD), "");
  g_autoptr (GError) error = NULL;
  MhStoreView *again = mh_store_select (fx->store, NULL, TRUE, &error);
  assert_non_null (again);
  MhStoreView *first = fx->view;
  fx->view = again;
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_RECENT), "");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_NEW), "");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_OLD), "1 2 3 4 5");
  fx->view = first;
  mh_store_view_unref (again);
}

static void
test_forwarded_keyword (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  guint32 u = 6;
  assert_true (mh_store_set_flags (fx->store, NULL, &u, 1,
                                   MH_STORE_FLAGS_ADD,
                                   MH_STORE_FLAG_FORWARDED, NULL, 0, NULL,
                                   &error));
  MhStoreView *v = mh_store_select (fx->store, NULL, FALSE, &error);
  MhStoreView *old = fx->view;
  fx->view = v;
  /* $Forwarded is Maildir's 'P' flag, searched as a keyword. */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_KEYWORD, "$Forwarded"), "5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_UNKEYWORD, "$forwarded"),
             "1 2 3 4");
  fx->view = old;
  mh_store_view_unref (v);
}

static void
test_sets (void **state)
{
  Fx *fx = *state;
  const guint32 a[] = { 2, 3 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, a, 1), "2 3");
  const guint32 b[] = { 4, 0, 1, 1 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, b, 2), "1 4 5");
  /* Sequence numbers past the end do not exist: "7:*" of five messages
   * is empty (Dovecot agrees); "*" alone and "5:*" are the last. */
  const guint32 c[] = { 7, 0 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, c, 1), "");
  const guint32 c2[] = { 0, 0 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, c2, 1), "5");
  const guint32 c3[] = { 0, 5 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, c3, 1), "5");
  const guint32 c4[] = { 3, 9 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, c4, 1), "3 4 5");
  const guint32 rev[] = { 3, 2 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_SEQSET, rev, 1), "2 3");
  /* UIDs are 2..6. */
  const guint32 u[] = { 3, 4 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_UID, u, 1), "2 3");
  /* UID "10:*" holds the last UID, 6 (RFC 9051 9, seq-range). */
  const guint32 u2[] = { 10, 0 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_UID, u2, 1), "5");
  const guint32 u3[] = { 1, 1 };
  SEARCH_IS (fx, key_set (MH_IMAP_SEARCH_UID, u3, 1), "");
  /* "$" is the saved result, by UID. */
  g_autoptr (GArray) saved = g_array_new (FALSE, FALSE, sizeof (guint32));
  guint32 s1 = 3, s2 = 6, s3 = 99;
  g_array_append_val (saved, s1);
  g_array_append_val (saved, s2);
  g_array_append_val (saved, s3);
  g_autofree char *r1 = run (fx, key_saved (MH_IMAP_SEARCH_SEQSET), saved);
  assert_string_equal (r1, "2 5");
  g_autofree char *r2 = run (fx, key_op (MH_IMAP_SEARCH_AND,
                                         key_saved (MH_IMAP_SEARCH_UID),
                                         key (MH_IMAP_SEARCH_UNSEEN)),
                             saved);
  assert_string_equal (r2, "2 5");
  g_autofree char *r3 = run (fx, key_saved (MH_IMAP_SEARCH_SEQSET), NULL);
  assert_string_equal (r3, "");
}

static void
test_boolean (void **state)
{
  Fx *fx = *state;
  SEARCH_IS (fx, key_op (MH_IMAP_SEARCH_OR, key (MH_IMAP_SEARCH_FLAGGED),
                         key (MH_IMAP_SEARCH_DRAFT)),
             "2 4");
  SEARCH_IS (fx, key_op (MH_IMAP_SEARCH_NOT,
                         key_op (MH_IMAP_SEARCH_OR, key (MH_IMAP_SEARCH_SEEN),
                                 key (MH_IMAP_SEARCH_DELETED)),
                         NULL),
             "2 4 5");
  /* OR (SEEN NOT DELETED) (UNSEEN KEYWORD $Work) */
  SEARCH_IS (
    fx,
    key_op (MH_IMAP_SEARCH_OR,
            key_op (MH_IMAP_SEARCH_AND, key (MH_IMAP_SEARCH_SEEN),
                    key_op (MH_IMAP_SEARCH_NOT, key (MH_IMAP_SEARCH_DELETED),
                            NULL)),
            key_op (MH_IMAP_SEARCH_AND, key (MH_IMAP_SEARCH_UNSEEN),
                    key_str (MH_IMAP_SEARCH_KEYWORD, "$Work"))),
    "1 5");
  /* Costly and cheap keys mixed: NOT (OR BODY x FROM y) AND UNSEEN. */
  SEARCH_IS (fx,
             key_op (MH_IMAP_SEARCH_AND,
                     key_op (MH_IMAP_SEARCH_NOT,
                             key_op (MH_IMAP_SEARCH_OR,
                                     key_str (MH_IMAP_SEARCH_BODY, "agree"),
                                     key_str (MH_IMAP_SEARCH_FROM, "yann")),
                             NULL),
                     key (MH_IMAP_SEARCH_UNSEEN)),
             "2");
  /* NOT NOT */
  SEARCH_IS (fx,
             key_op (MH_IMAP_SEARCH_NOT,
                     key_op (MH_IMAP_SEARCH_NOT, key (MH_IMAP_SEARCH_DRAFT),
                             NULL),
                     NULL),
             "4");
  /* An empty AND (the root with no keys left) matches everything. */
  MhImapSearchKey *empty = key (MH_IMAP_SEARCH_AND);
  empty->children = g_ptr_array_new_with_free_func (key_free);
  SEARCH_IS (fx, empty, "1 2 3 4 5");
}

static void
test_headers (void **state)
{
  Fx *fx = *state;
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_FROM, "alice"), "1");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_FROM, "example"), "1 2 3 4 5");
  /* ISO-8859-1 encoded word, matched case-insensitively in UTF-8. */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_FROM, "ANDRÉ"), "2");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_FROM, "zoë"), "3");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "café CRÈME"), "2");
  /* UTF-8 words across a folded line. i;unicode-casemap maps each
   * character alone: ß is not "SS" (Dovecot agrees). */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "GRÜßE AUS KÖLN"), "3");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "GRÜSSE"), "");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "hello"), "1 5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, ""), "1 2 3 4 5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_TO, "bob@"), "1");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_TO, "anna"), "3");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_CC, "carol"), "2");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BCC, "dave"), "4");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BCC, "nobody"), "");
  /* A header the store does not cache: read from the header block. */
  SEARCH_IS (fx, key_header ("X-Custom", "BAR"), "3");
  SEARCH_IS (fx, key_header ("x-custom", ""), "3");
  SEARCH_IS (fx, key_header ("Message-ID", ""), "1 2 5");
  SEARCH_IS (fx, key_header ("In-Reply-To", "m1@example"), "5");
  SEARCH_IS (fx, key_header ("X-Missing", ""), "");
  SEARCH_IS (fx, key_op (MH_IMAP_SEARCH_NOT, key_header ("Date", ""), NULL),
             "4");
}

static void
test_body_text (void **state)
{
  Fx *fx = *state;
  /* Quoted-printable ISO-8859-1, decoded and converted. */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "RÉSUMÉ"), "2");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "voilà"), "2");
  /* base64 UTF-8 text part. */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "straße"), "3");
  /* An attachment is not text. */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "secretword"), "");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "body line"), "1");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "hello"), "");
  /* TEXT: the header fields too (decoded). */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_TEXT, "hello"), "1 5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_TEXT, "x-custom"), "3");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_TEXT, "crème"), "2");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_TEXT, "padding"), "4");
  /* Two body keys share one read of the message. */
  SEARCH_IS (fx, key_op (MH_IMAP_SEARCH_AND,
                         key_str (MH_IMAP_SEARCH_BODY, "agree"),
                         key_str (MH_IMAP_SEARCH_TEXT, "carol")),
             "5");
}

static void
test_dates_sizes (void **state)
{
  Fx *fx = *state;
  /* Internal dates: noon UTC on Nov 2..6. */
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_ON, 2026, 11, 4), "3");
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_BEFORE, 2026, 11, 4), "1 2");
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SINCE, 2026, 11, 5), "4 5");
  /* Save dates: all five were saved today, whatever their internal date
   * says (RFC 8514: the moment the message came into this folder). */
  {
    g_autoptr (GDateTime) today = g_date_time_new_now_local ();
    g_autoptr (GDateTime) tomorrow = g_date_time_add_days (today, 1);
    int y = g_date_time_get_year (today), mo = g_date_time_get_month (today),
        d = g_date_time_get_day_of_month (today);
    SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SAVEDON, y, mo, d), "1 2 3 4 5");
    SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SAVEDSINCE, y, mo, d),
               "1 2 3 4 5");
    SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SAVEDBEFORE, y, mo, d), "");
    SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SAVEDSINCE,
                             g_date_time_get_year (tomorrow),
                             g_date_time_get_month (tomorrow),
                             g_date_time_get_day_of_month (tomorrow)),
               "");
    SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SAVEDON, 2026, 11, 4), "");
  }
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_SAVEDATESUPPORTED), "1 2 3 4 5");
  /* Sent dates, each in its own zone: m2 says Nov 3 (-0500) although it
   * is Nov 4 in UTC; m3 says Nov 4 (+0200), Nov 3 in UTC. m4 has no
   * Date: its internal date (Nov 5) counts. */
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SENTON, 2026, 11, 3), "2");
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SENTON, 2026, 11, 4), "3");
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SENTBEFORE, 2026, 11, 4), "1 2");
  SEARCH_IS (fx, key_date (MH_IMAP_SEARCH_SENTSINCE, 2026, 11, 5), "4 5");
  /* OLDER/YOUNGER against now. */
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  guint64 to_4 = (guint64) (now - noon (4));
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_OLDER, to_4), "1 2 3");
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_YOUNGER, to_4 - 60), "4 5");
  /* Sizes: RFC822.SIZE of each message. */
  guint64 sz[5];
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (MhStoreMessage) msg = mh_store_message_get (
        fx->store, NULL, mh_store_view_get_uid (fx->view, i), &error);
      assert_non_null (msg);
      sz[i] = mh_store_message_get_rfc822_size (msg);
    }
  assert_true (sz[3] > 4000); /* m4 is the padded one */
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_LARGER, 4000), "4");
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_LARGER, sz[3]), "");
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_SMALLER, sz[0] + 1),
             sz[4] <= sz[0] ? "1 5" : "1");
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_SMALLER, sz[0]),
             sz[4] < sz[0] ? "5" : "");
  /* MODSEQ: m2 changed last. */
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_MODSEQ, fx->m2_modseq), "2");
  SEARCH_IS (fx, key_num (MH_IMAP_SEARCH_MODSEQ, 1), "1 2 3 4 5");
}

static void
test_expunged_and_errors (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  /* Another session expunges m3 after our view was taken: it matches
   * nothing, not even NOT FROM. Flag keys still answer from the view. */
  guint32 u = 4;
  assert_true (mh_store_expunge (fx->store, NULL, &u, 1, FALSE, NULL,
                                 &error));
  SEARCH_IS (fx, key_op (MH_IMAP_SEARCH_NOT,
                         key_str (MH_IMAP_SEARCH_FROM, "nobody"), NULL),
             "1 2 4 5");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_BODY, "e"), "1 2 4 5");
  SEARCH_IS (fx, key (MH_IMAP_SEARCH_DELETED), "3");
  /* A malformed program is refused with a message naming the fault. */
  MhImapSearchKey *bad = key (MH_IMAP_SEARCH_OR);
  bad->children = g_ptr_array_new_with_free_func (key_free);
  g_ptr_array_add (bad->children, key (MH_IMAP_SEARCH_ALL));
  GArray *r = mh_imap__search (fx->store, NULL, fx->view, bad, NULL, &error);
  assert_null (r);
  mh_test_assert_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_SYNTAX, "OR",
                        "2", NULL);
  g_clear_error (&error);
  key_free (bad);
  MhImapSearchKey *deep = key (MH_IMAP_SEARCH_ALL);
  for (int i = 0; i < 300; i++)
    deep = key_op (MH_IMAP_SEARCH_NOT, deep, NULL);
  r = mh_imap__search (fx->store, NULL, fx->view, deep, NULL, &error);
  assert_null (r);
  mh_test_assert_error (error, MH_IMAP_ERROR, MH_IMAP_ERROR_LIMIT, "nested",
                        NULL);
  key_free (deep);
}

static void
test_edge_messages (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Edge", &error));
  deliver (fx->store, "Edge", "From: a@b\nTo: c@d\n\nno subject\n", 0,
           NULL, noon (2));
  /* 8-bit Latin-1 with no charset label: read as Latin-1. */
  deliver (fx->store, "Edge", "Subject:\n\ncaf\xe9 au lait\n", 0, NULL,
           noon (3));
  /* A message/rfc822 attachment: its headers and text are body. */
  deliver (fx->store, "Edge",
           "Subject: fwd\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=Z\n\n--Z\n"
           "Content-Type: text/html; charset=utf-8\n\n<p>outer</p>\n--Z\n"
           "Content-Type: message/rfc822\n\n"
           "Subject: =?UTF-8?Q?inner_=C3=A9t=C3=A9?=\n\nsummer text\n--Z--\n",
           0, NULL, noon (4));
  MhStoreView *v = mh_store_select (fx->store, "Edge", FALSE, &error);
  assert_non_null (v);
  MhStoreView *old = fx->view;
  fx->view = v;
  fx->folder = "Edge";
  struct
  {
    MhImapSearchKeyType type;
    const char *s;
    const char *want;
  } cases[] = {
    { MH_IMAP_SEARCH_SUBJECT, "", "2 3" }, /* present, even empty */
    { MH_IMAP_SEARCH_FROM, "", "1" },
    { MH_IMAP_SEARCH_BODY, "", "1 2 3" },
    { MH_IMAP_SEARCH_BODY, "CAFÉ", "2" },
    { MH_IMAP_SEARCH_BODY, "outer", "3" },
    { MH_IMAP_SEARCH_BODY, "inner été", "3" },
    { MH_IMAP_SEARCH_BODY, "summer", "3" },
    { MH_IMAP_SEARCH_SUBJECT, "inner", "" },
    { MH_IMAP_SEARCH_TEXT, "mime-version", "3" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *got = run (fx, key_str (cases[i].type, cases[i].s),
                                  NULL);
      if (strcmp (got, cases[i].want) != 0)
        fail_msg ("case %u (\"%s\"): got \"%s\", want \"%s\"", i,
                  cases[i].s, got, cases[i].want);
    }
  fx->folder = NULL;
  fx->view = old;
  mh_store_view_unref (v);
}

/* The copy-free ASCII path of header matching must answer exactly what
 * the full path (unfold, RFC 2047 decode, i;unicode-casemap, substring)
 * answers. Each message holds one value as Subject (cached by the store)
 * and as X-Test (read from the file); every needle is searched in both,
 * and the hits are compared with the full path computed here. The
 * values mix ASCII, raw UTF-8, encoded words (ASCII-only ones too, which
 * look like ASCII but must be decoded), folded lines, leading blanks and
 * "=?" that is no encoded word. */
static const char *const fast_values[] = {
  "Hello World",
  "hello world",
  "HELLO\n WORLD",
  "Hello\n\tWorld",
  "=?UTF-8?Q?Hello_World?=",
  "=?US-ASCII?B?SGVsbG8gV29ybGQ=?=",
  "=?UTF-8?Q?Hello?=\n =?UTF-8?Q?_World?=",
  "Re: [list] Hello",
  "a=?b c",
  "a=\n ?b c",
  "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln",
  "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?Q?K=F6ln?=",
  "file",
  "\xef\xac\x81le", /* U+FB01 LATIN SMALL LIGATURE FI */
  "   leading",
  "tab\there",
  "\xc7\x86 ligature", /* U+01C6 dz with caron */
  "\xc4\xb0stanbul",   /* U+0130 I with dot above */
  "x",
  "Stra\xc3\x9f" "e STRASSE",
  "~!@#$%^&*()_+{}|:<>?`-=[];',./ mixed 123",
};

static const char *const fast_needles[] = {
  "hello", "HELLO WORLD", "o w", "hello_world", "=?", "file",
  "\xef\xac\x81le", "FILE", "FI", "gr\xc3\xbc\xc3\x9f" "e", "GR\xc3\x9cSSE",
  "k\xc3\xb6ln", " leading", "leading", "tab\there", "\xc7\x85",
  "istanbul", "\xc4\xb0", "[list]", "", "a=?b", "a= ?B", "x", "X", "STRA",
  "stra\xc3\x9f" "e", "strasse", "~!@#$%^&*()_+{}|:<>?`-=[];',./",
  "MIXED 1", "\xc3\xa9",
};

static void
test_header_fast_path (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Fast", &error));
  guint nv = G_N_ELEMENTS (fast_values);
  for (guint i = 0; i < nv; i++)
    {
      g_autofree char *msg = g_strdup_printf (
        "From: a@example.org\nSubject: %s\nX-Test: %s\n\nbody %u\n",
        fast_values[i], fast_values[i], i);
      deliver (fx->store, "Fast", msg, 0, NULL, noon (2));
    }
  /* Two fields of one name: either may match. */
  deliver (fx->store, "Fast",
           "Subject: first\nSubject: =?UTF-8?Q?s=C3=A9cond?=\n"
           "X-Test: first\nX-Test: =?UTF-8?Q?s=C3=A9cond?=\n\nb\n",
           0, NULL, noon (2));
  MhStoreView *v = mh_store_select (fx->store, "Fast", FALSE, &error);
  assert_non_null (v);
  MhStoreView *old = fx->view;
  fx->view = v;
  fx->folder = "Fast";
  for (guint k = 0; k < G_N_ELEMENTS (fast_needles); k++)
    {
      g_autofree char *fn = mh_imap__fold (fast_needles[k], -1);
      GString *want = g_string_new (NULL);
      for (guint i = 0; i < nv; i++)
        {
          /* Unfolded (CR/LF dropped), leading blanks skipped, decoded,
           * folded: the full path, written out. */
          GString *u = g_string_new (NULL);
          for (const char *p = fast_values[i]; *p; p++)
            if (*p != '\n' && *p != '\r'
                && !(u->len == 0 && (*p == ' ' || *p == '\t')))
              g_string_append_c (u, *p);
          g_autofree char *dec = mh_imap__decode_header (u->str);
          g_autofree char *f = mh_imap__fold (dec, -1);
          if (*fn == '\0' || strstr (f, fn))
            g_string_append_printf (want, "%s%u", want->len ? " " : "", i + 1);
          g_string_free (u, TRUE);
        }
      /* The message with two fields. */
      g_autofree char *fs = mh_imap__fold ("s\xc3\xa9" "cond", -1);
      if (*fn == '\0' || strstr ("FIRST", fn) || strstr (fs, fn))
        g_string_append_printf (want, "%s%u", want->len ? " " : "", nv + 1);
      g_autofree char *got_s = run (
        fx, key_str (MH_IMAP_SEARCH_SUBJECT, fast_needles[k]), NULL);
      g_autofree char *got_h = run (
        fx, key_header ("X-Test", fast_needles[k]), NULL);
      if (strcmp (got_s, want->str) != 0 || strcmp (got_h, want->str) != 0)
        fail_msg ("needle \"%s\": SUBJECT \"%s\", HEADER \"%s\", want "
                  "\"%s\"", fast_needles[k], got_s, got_h, want->str);
      g_string_free (want, TRUE);
    }
  /* A few answers pinned, so the reference above cannot drift. */
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "hello world"),
             "1 2 3 5 6 7");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "hello_world"), "");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, " leading"), "");
  SEARCH_IS (fx, key_str (MH_IMAP_SEARCH_SUBJECT, "K\xc3\x96LN"), "11 12");
  SEARCH_IS (fx, key_header ("X-Test", "S\xc3\x89" "COND"), "22");
  fx->folder = NULL;
  fx->view = old;
  mh_store_view_unref (v);
}

/* ---- SORT --------------------------------------------------------------- */

static char *
sort (Fx *fx, const MhImapSortCriterion *c, guint n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) crit = g_array_new (FALSE, FALSE,
                                         sizeof (MhImapSortCriterion));
  g_array_append_vals (crit, c, n);
  MhImapSearchKey *all = key (MH_IMAP_SEARCH_ALL);
  g_autoptr (GArray) idx = mh_imap__search (fx->store, NULL, fx->view, all,
                                            NULL, &error);
  key_free (all);
  assert_non_null (idx);
  if (!mh_imap__sort (fx->store, NULL, fx->view, crit, idx, &error))
    fail_msg ("sort: %s", error->message);
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < idx->len; i++)
    g_string_append_printf (s, "%s%u", i ? " " : "",
                            g_array_index (idx, guint, i) + 1);
  return g_string_free (s, FALSE);
}

#define SORT_IS(fx, want, ...)                                               \
  do                                                                         \
    {                                                                        \
      const MhImapSortCriterion c_[] = { __VA_ARGS__ };                      \
      g_autofree char *got_ = sort ((fx), c_, G_N_ELEMENTS (c_));            \
      assert_string_equal (got_, (want));                                    \
    }                                                                        \
  while (0)

static void
test_sort (void **state)
{
  Fx *fx = *state;
  SORT_IS (fx, "1 2 3 4 5", { MH_IMAP_SORT_ARRIVAL, FALSE });
  SORT_IS (fx, "5 4 3 2 1", { MH_IMAP_SORT_ARRIVAL, TRUE });
  /* UTC: m1 Nov 2 10:00, m3 Nov 3 23:00, m2 Nov 4 04:30, m5 Nov 5 09:00,
   * m4 (internal date) Nov 5 12:00. */
  SORT_IS (fx, "1 3 2 5 4", { MH_IMAP_SORT_DATE, FALSE });
  /* Base subjects: café crème, grüße aus köln, hello there (x2),
   * zebra. */
  SORT_IS (fx, "2 3 1 5 4", { MH_IMAP_SORT_SUBJECT, FALSE });
  SORT_IS (fx, "2 3 5 1 4", { MH_IMAP_SORT_SUBJECT, FALSE },
           { MH_IMAP_SORT_DATE, TRUE });
  SORT_IS (fx, "4 1 5 3 2", { MH_IMAP_SORT_SUBJECT, TRUE });
  /* addr-mailbox: aaron, alice, andre, carol, zoe. */
  SORT_IS (fx, "4 1 2 5 3", { MH_IMAP_SORT_FROM, FALSE });
  /* Display names: Alice Example, André, Carol, Yann, Zoë. */
  SORT_IS (fx, "1 2 5 4 3", { MH_IMAP_SORT_DISPLAYFROM, FALSE });
  /* To: (none), alice, anna, bob, zed. */
  SORT_IS (fx, "4 5 3 1 2", { MH_IMAP_SORT_TO, FALSE });
  /* DISPLAYTO: "", alice@example.org, Anna, bob@example.net, zed@... */
  SORT_IS (fx, "4 5 3 1 2", { MH_IMAP_SORT_DISPLAYTO, FALSE });
  /* Cc: only m2 has one; ties keep sequence order, even reversed. */
  SORT_IS (fx, "1 3 4 5 2", { MH_IMAP_SORT_CC, FALSE });
  SORT_IS (fx, "2 1 3 4 5", { MH_IMAP_SORT_CC, TRUE });
  /* SIZE: m4 is the largest. */
  g_autofree char *bysize = NULL;
  {
    const MhImapSortCriterion c = { MH_IMAP_SORT_SIZE, TRUE };
    bysize = sort (fx, &c, 1);
  }
  assert_true (g_str_has_prefix (bysize, "4 "));
}

/* ---- THREAD ------------------------------------------------------------- */

static void
thread_msg (MhStore *s, int n, const char *id, const char *refs,
            const char *irt, const char *subject)
{
  GString *m = g_string_new ("From: t@example.org\n");
  if (id)
    g_string_append_printf (m, "Message-ID: <%s@x>\n", id);
  if (refs)
    g_string_append_printf (m, "References: %s\n", refs);
  if (irt)
    g_string_append_printf (m, "In-Reply-To: %s\n", irt);
  g_string_append_printf (m, "Subject: %s\n", subject);
  g_string_append_printf (m, "Date: Sun, %d Nov 2026 08:00:00 +0000\n", n);
  g_string_append (m, "\nx\n");
  deliver (s, "Threads", m->str, 0, NULL, noon (n));
  g_string_free (m, TRUE);
}

static char *
thread (Fx *fx, MhImapThreadAlgorithm algo, gboolean uid)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, "Threads", FALSE,
                                               &error);
  assert_non_null (v);
  MhImapSearchKey *all = key (MH_IMAP_SEARCH_ALL);
  g_autoptr (GArray) idx = mh_imap__search (fx->store, "Threads", v, all,
                                            NULL, &error);
  key_free (all);
  GString *out = g_string_new (NULL);
  if (!mh_imap__thread (fx->store, "Threads", v, algo, idx, uid, out,
                        &error))
    fail_msg ("thread: %s", error->message);
  return g_string_free (out, FALSE);
}

static void
test_thread (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Threads", &error));
  g_autofree char *none = thread (fx, MH_IMAP_THREAD_REFERENCES, FALSE);
  assert_string_equal (none, "");
  /* 1 <a>; 2 <b> replies to a; 3 <c> to b; 4 <d> to a; 5 "Other";
   * 6 and 7 reply to a message we do not have; 8 "Re: Other" without
   * references; 9 "Plan" again, without a Message-ID. */
  thread_msg (fx->store, 1, "a", NULL, NULL, "Plan");
  thread_msg (fx->store, 2, "b", "<a@x>", "<a@x>", "Re: Plan");
  thread_msg (fx->store, 3, "c", "<a@x> <b@x>", NULL, "Re: Plan");
  thread_msg (fx->store, 4, "d", NULL, "<a@x> (sent by someone)",
              "Re: Plan");
  thread_msg (fx->store, 5, "e", NULL, NULL, "Other");
  thread_msg (fx->store, 6, "f", "<missing@x>", NULL, "Lost parent");
  thread_msg (fx->store, 7, "g", "<missing@x>", NULL, "Re: Lost parent");
  thread_msg (fx->store, 8, "h", NULL, NULL, "Re: Other");
  thread_msg (fx->store, 9, NULL, NULL, NULL, "Plan");
  g_autofree char *refs = thread (fx, MH_IMAP_THREAD_REFERENCES, FALSE);
  assert_string_equal (refs, "((1 (2 3)(4))(9))(5 8)((6)(7))");
  g_autofree char *ord = thread (fx, MH_IMAP_THREAD_ORDEREDSUBJECT, FALSE);
  assert_string_equal (ord, "(1 (2)(3)(4)(9))(5 8)(6 7)");
  g_autofree char *uids = thread (fx, MH_IMAP_THREAD_ORDEREDSUBJECT, TRUE);
  assert_string_equal (uids, "(1 (2)(3)(4)(9))(5 8)(6 7)");
}

static void
test_thread_loops_and_dups (void **state)
{
  Fx *fx = *state;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Threads", &error));
  /* 1 and 2 reference each other (a loop); 3 duplicates 1's ID; 4 has a
   * long chain of unknown references ending at 2. */
  thread_msg (fx->store, 1, "p", "<q@x>", NULL, "A");
  thread_msg (fx->store, 2, "q", "<p@x>", NULL, "B");
  thread_msg (fx->store, 3, "p", NULL, NULL, "C");
  thread_msg (fx->store, 4, "r", "<x1@x> <x2@x> <q@x>", NULL, "D");
  g_autofree char *refs = thread (fx, MH_IMAP_THREAD_REFERENCES, FALSE);
  /* 1 is linked under 2 first (2's References); 2 then cannot go under
   * 1 (a loop) and stays a root with 1 and 4 below. */
  assert_string_equal (refs, "(2 (1)(4))(3)");
}

/* A long In-Reply-To chain and many roots with one subject, written
 * straight into the Maildir: one thread each, and the shapes RFC 5256
 * gives ("(1 2 3 ...)" and a dummy over "((a)(b)...)"). */
static void
test_thread_big (void **state)
{
  Fx *fx = *state;
  const int n = 300;
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, "Threads", &error));
  g_autofree char *cur = g_build_filename (mh_store_get_maildir (fx->store),
                                           ".Threads", "cur", NULL);
  for (int i = 0; i < 2 * n; i++)
    {
      gboolean chain = i < n;
      int k = chain ? i : i - n;
      g_autofree char *name = g_strdup_printf ("%s/%d.M%dP1.t:2,", cur,
                                               1700000000 + i, i);
      g_autofree char *irt = chain && k > 0
                               ? g_strdup_printf ("In-Reply-To: <c%d@x>\n",
                                                  k - 1)
                               : g_strdup ("");
      g_autofree char *text = g_strdup_printf (
        "Message-ID: <%c%d@x>\n%sSubject: %s\n"
        "Date: Mon, %d Nov 2026 %02d:%02d:00 +0000\n\nx\n",
        chain ? 'c' : 's', k, irt,
        chain ? (k ? "Re: Chain" : "Chain") : "Same", chain ? 2 : 3,
        k / 60, k % 60);
      assert_true (g_file_set_contents (name, text, -1, NULL));
    }
  g_usleep (100000); /* a new directory mtime tick for the store */
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, "Threads", FALSE,
                                               &error);
  assert_non_null (v);
  assert_int_equal (mh_store_view_get_count (v), 2 * n);
  /* Sequence numbers by Message-ID: the store picks the UID order. */
  g_autofree guint *seq_c = g_new0 (guint, n);
  g_autofree guint *seq_s = g_new0 (guint, n);
  for (guint i = 0; i < 2 * (guint) n; i++)
    {
      g_autoptr (MhStoreMessage) m = mh_store_message_get (
        fx->store, "Threads", mh_store_view_get_uid (v, i), &error);
      assert_non_null (m);
      const char *h = mh_store_message_get_header (m, "message-id", NULL);
      char kind;
      int k;
      assert_int_equal (sscanf (h, "Message-ID: <%c%d@x>", &kind, &k), 2);
      (kind == 'c' ? seq_c : seq_s)[k] = i + 1;
    }
  GString *want = g_string_new ("(");
  for (int k = 0; k < n; k++)
    g_string_append_printf (want, "%s%u", k ? " " : "", seq_c[k]);
  g_string_append (want, ")(");
  for (int k = 0; k < n; k++)
    g_string_append_printf (want, "(%u)", seq_s[k]);
  g_string_append (want, ")");
  g_autofree char *got = thread (fx, MH_IMAP_THREAD_REFERENCES, FALSE);
  assert_string_equal (got, want->str);
  g_string_free (want, TRUE);
}

/* ---- Sliced runs ---------------------------------------------------- */

/* A folder of @n varied messages written straight into cur/: threads of
 * replies, repeated subjects (some encoded), a few needles in bodies, a
 * header the store does not cache, and flags. */
static MhStoreView *
many_folder (Fx *fx, const char *folder, int n)
{
  g_autoptr (GError) error = NULL;
  assert_true (mh_store_folder_create (fx->store, folder, &error));
  g_autofree char *dot = g_strconcat (".", folder, NULL);
  g_autofree char *cur = g_build_filename (mh_store_get_maildir (fx->store),
                                           dot, "cur", NULL);
  int start = 0;
  for (int i = 0; i < n; i++)
    {
      if (i % 5 == 0 || i % 7 == 3)
        start = i;
      g_autofree char *name = g_strdup_printf (
        "%s/%d.M%dP1.t:2,%s", cur, 1700000000 + i, i,
        i % 3 ? "S" : (i % 4 ? "" : "F"));
      g_autofree char *refs = start != i
                                ? g_strdup_printf ("References: <m%d@x>\n",
                                                   i - 1)
                                : g_strdup ("");
      g_autofree char *s1 = g_strdup_printf (
        "%s %d", i % 11 == 0 ? "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=" : "topic",
        start % 17);
      g_autofree char *text = g_strdup_printf (
        "From: User %d <u%d@example.org>\nMessage-ID: <m%d@x>\n%s"
        "Subject: %s%s\nDate: Mon, %d Nov 2026 %02d:%02d:00 +0000\n"
        "X-Custom: v%d\n\nbody %d%s\n",
        i % 13, i % 13, i, refs, start != i ? "Re: " : "", s1,
        1 + (i * 7) % 28, (i / 60) % 24, i % 60, i % 9, i,
        i % 10 == 0 ? " needle" : "");
      assert_true (g_file_set_contents (name, text, -1, NULL));
    }
  g_usleep (100000); /* a new directory mtime tick for the store */
  MhStoreView *v = mh_store_select (fx->store, folder, FALSE, &error);
  assert_non_null (v);
  assert_int_equal (mh_store_view_get_count (v), (guint) n);
  return v;
}

static char *
indices_text (const GArray *a)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; a && i < a->len; i++)
    g_string_append_printf (s, "%s%u", i ? " " : "",
                            g_array_index (a, guint, i));
  return g_string_free (s, FALSE);
}

/* Runs a job in slices of @msgs messages (0: time slices of 1 us) and
 * returns its indices (or thread list); *@slices_out counts the calls. */
static char *
job_run (MhImapSearchJob *j, guint msgs, guint *slices_out)
{
  g_autoptr (GError) error = NULL;
  guint slices = 0;
  int r;
  while ((r = mh_imap__search_job_step (j, msgs, msgs ? 0 : 1, &error)) == 0)
    slices++;
  slices++;
  if (r < 0)
    fail_msg ("job: %s", error->message);
  *slices_out = slices;
  const char *t = mh_imap__search_job_get_threads (j);
  char *out = *t ? g_strdup (t)
                 : indices_text (mh_imap__search_job_get_result (j));
  mh_imap__search_job_free (j);
  return out;
}

static void
test_sliced_jobs (void **state)
{
  Fx *fx = *state;
  const int n = 240;
  g_autoptr (MhStoreView) v = many_folder (fx, "Many", n);
  g_autoptr (GError) error = NULL;
  MhImapSearchKey *progs[] = {
    key (MH_IMAP_SEARCH_ALL),
    key_str (MH_IMAP_SEARCH_SUBJECT, "topic 3"),
    key_str (MH_IMAP_SEARCH_SUBJECT, "gr\xc3\xbc\xc3\x9f" "e"),
    key_op (MH_IMAP_SEARCH_OR, key_str (MH_IMAP_SEARCH_FROM, "u7@"),
            key (MH_IMAP_SEARCH_FLAGGED)),
    key_op (MH_IMAP_SEARCH_AND, key (MH_IMAP_SEARCH_UNSEEN),
            key_header ("X-Custom", "v3")),
    key_str (MH_IMAP_SEARCH_BODY, "needle"),
    key_op (MH_IMAP_SEARCH_NOT, key_str (MH_IMAP_SEARCH_FROM, "user 1"),
            NULL),
  };
  const guint budgets[] = { 1, 7, 100, 0 };
  for (guint p = 0; p < G_N_ELEMENTS (progs); p++)
    {
      g_autoptr (GArray) whole = mh_imap__search (fx->store, "Many", v,
                                                  progs[p], NULL, &error);
      assert_non_null (whole);
      g_autofree char *want = indices_text (whole);
      /* Each program finds some messages, and not all (but ALL). */
      if (whole->len == 0 || (p > 0 && whole->len == (guint) n))
        fail_msg ("program %u finds %u of %d", p, whole->len, n);
      for (guint b = 0; b < G_N_ELEMENTS (budgets); b++)
        {
          guint slices;
          MhImapSearchJob *j = mh_imap__search_job_new (
            fx->store, "Many", v, progs[p], NULL, &error);
          assert_non_null (j);
          g_autofree char *got = job_run (j, budgets[b], &slices);
          if (strcmp (got, want) != 0)
            fail_msg ("program %u, slices of %u: \"%s\", want \"%s\"", p,
                      budgets[b], got, want);
          if (budgets[b] == 1)
            assert_int_equal (slices, n);
        }
      key_free (progs[p]);
    }
  /* SORT: keys gathered in slices, sorted at the end. */
  const MhImapSortCriterion crits[][2] = {
    { { MH_IMAP_SORT_SUBJECT, FALSE }, { MH_IMAP_SORT_DATE, TRUE } },
    { { MH_IMAP_SORT_FROM, TRUE }, { MH_IMAP_SORT_ARRIVAL, FALSE } },
    { { MH_IMAP_SORT_DATE, FALSE }, { MH_IMAP_SORT_SIZE, TRUE } },
  };
  MhImapSearchKey *unseen = key (MH_IMAP_SEARCH_UNSEEN);
  for (guint c = 0; c < G_N_ELEMENTS (crits); c++)
    {
      g_autoptr (GArray) crit = g_array_new (FALSE, FALSE,
                                             sizeof (MhImapSortCriterion));
      g_array_append_vals (crit, crits[c], 2);
      g_autoptr (GArray) idx = mh_imap__search (fx->store, "Many", v, unseen,
                                                NULL, &error);
      assert_true (mh_imap__sort (fx->store, "Many", v, crit, idx, &error));
      g_autofree char *want = indices_text (idx);
      for (guint b = 0; b < G_N_ELEMENTS (budgets); b++)
        {
          guint slices;
          MhImapSearchJob *j = mh_imap__search_job_new (
            fx->store, "Many", v, unseen, NULL, &error);
          assert_true (mh_imap__search_job_sort (j, crit, &error));
          g_autofree char *got = job_run (j, budgets[b], &slices);
          if (strcmp (got, want) != 0)
            fail_msg ("sort %u, slices of %u: \"%s\", want \"%s\"", c,
                      budgets[b], got, want);
        }
    }
  key_free (unseen);
  /* THREAD: containers built in slices, threaded at the end. */
  MhImapSearchKey *all = key (MH_IMAP_SEARCH_ALL);
  g_autoptr (GArray) every = mh_imap__search (fx->store, "Many", v, all,
                                              NULL, &error);
  for (int a = 0; a < 2; a++)
    {
      MhImapThreadAlgorithm algo = a ? MH_IMAP_THREAD_ORDEREDSUBJECT
                                     : MH_IMAP_THREAD_REFERENCES;
      GString *w = g_string_new (NULL);
      assert_true (mh_imap__thread (fx->store, "Many", v, algo, every, TRUE,
                                    w, &error));
      assert_true (w->len > 0);
      for (guint b = 0; b < G_N_ELEMENTS (budgets); b++)
        {
          guint slices;
          MhImapSearchJob *j = mh_imap__search_job_new (
            fx->store, "Many", v, all, NULL, &error);
          assert_true (mh_imap__search_job_thread (j, algo, TRUE, &error));
          g_autofree char *got = job_run (j, budgets[b], &slices);
          if (strcmp (got, w->str) != 0)
            fail_msg ("thread %d, slices of %u differ", a, budgets[b]);
          if (budgets[b] == 1)
            assert_int_equal (slices, 2 * n);
        }
      g_string_free (w, TRUE);
    }
  key_free (all);
}

/* The command handler returns MH_IMAP_RUN_MORE between slices and, once
 * done, answers exactly what one unsliced run answers: SEARCH, ESEARCH
 * with SAVE ("$" saved the same), SEARCH over "$", UID SORT and THREAD. */
static char *
run_handler (MhImapSession *s, MhImapCommand *c, guint *calls_out)
{
  GString *out = g_string_new (NULL);
  guint calls = 0;
  for (;;)
    {
      MhImapRun r = mh_imap__cmd_search (s, c, out);
      calls++;
      assert_true (calls < 100000);
      if (r == MH_IMAP_RUN_DONE)
        break;
      /* Nothing is written before the last slice. */
      assert_int_equal (out->len, 0);
      assert_non_null (s->cursor);
    }
  assert_null (s->cursor);
  *calls_out = calls;
  mh_imap_command_free (c);
  return g_string_free (out, FALSE);
}

static MhImapCommand *
search_cmd (MhImapCommandKind kind, gboolean uid, MhImapSearchKey *k)
{
  MhImapCommand *c = g_new0 (MhImapCommand, 1);
  c->tag = g_strdup ("a1");
  c->kind = kind;
  c->uid = uid;
  c->name = g_strdup (kind == MH_IMAP_CMD_SORT     ? "SORT"
                      : kind == MH_IMAP_CMD_THREAD ? "THREAD"
                                                   : "SEARCH");
  c->search = k;
  return c;
}

static void
test_sliced_handler (void **state)
{
  Fx *fx = *state;
  const int n = 120;
  MhImapSession s = { 0 };
  s.store = fx->store;
  s.folder = g_strdup ("Handler");
  s.view = many_folder (fx, "Handler", n);
  for (int round = 0; round < 2; round++)
    {
      /* Round 0 unsliced, round 1 in slices of 3 messages. */
      mh_imap__search_set_slice (round ? 3 : 0, 0);
      g_autoptr (GString) all = g_string_new (NULL);
      guint calls, total = 0;
      for (int cmd = 0; cmd < 6; cmd++)
        {
          MhImapCommand *c = NULL;
          switch (cmd)
            {
            case 0:
              c = search_cmd (MH_IMAP_CMD_SEARCH, FALSE,
                              key_str (MH_IMAP_SEARCH_FROM, "u5@"));
              break;
            case 1:
              c = search_cmd (MH_IMAP_CMD_SEARCH, TRUE,
                              key_str (MH_IMAP_SEARCH_SUBJECT, "topic"));
              c->esearch = TRUE;
              c->search_return = MH_IMAP_RETURN_SAVE | MH_IMAP_RETURN_MIN
                                 | MH_IMAP_RETURN_COUNT
                                 | MH_IMAP_RETURN_ALL;
              break;
            case 2:
              c = search_cmd (MH_IMAP_CMD_SEARCH, FALSE,
                              key_op (MH_IMAP_SEARCH_AND,
                                      key_saved (MH_IMAP_SEARCH_UID),
                                      key_str (MH_IMAP_SEARCH_BODY,
                                               "needle")));
              break;
            case 3:
              {
                c = search_cmd (MH_IMAP_CMD_SORT, TRUE,
                                key (MH_IMAP_SEARCH_UNSEEN));
                c->sort = g_array_new (FALSE, FALSE,
                                       sizeof (MhImapSortCriterion));
                MhImapSortCriterion k1 = { MH_IMAP_SORT_SUBJECT, TRUE };
                MhImapSortCriterion k2 = { MH_IMAP_SORT_DATE, FALSE };
                g_array_append_val (c->sort, k1);
                g_array_append_val (c->sort, k2);
                break;
              }
            case 4:
              c = search_cmd (MH_IMAP_CMD_THREAD, FALSE,
                              key (MH_IMAP_SEARCH_ALL));
              c->thread = MH_IMAP_THREAD_REFERENCES;
              break;
            case 5:
              /* A failing program empties "$" in either mode. */
              c = search_cmd (MH_IMAP_CMD_SEARCH, FALSE,
                              key (MH_IMAP_SEARCH_HEADER));
              c->search_return = MH_IMAP_RETURN_SAVE;
              c->esearch = TRUE;
              break;
            }
          g_autofree char *o = run_handler (&s, c, &calls);
          total += calls;
          if (round == 1 && cmd < 5)
            assert_true (calls > 1);
          if (cmd == 1)
            {
              /* "$" after the save. */
              assert_non_null (s.saved_uids);
              g_string_append_printf (all, "saved %u\r\n",
                                      s.saved_uids->len);
            }
          g_string_append (all, o);
        }
      assert_int_equal (s.saved_uids->len, 0);
      g_clear_pointer (&s.saved_uids, g_array_unref);
      static char *first;
      if (round == 0)
        {
          first = g_strdup (all->str);
          assert_int_equal (total, 6);
          assert_non_null (strstr (first, "* ESEARCH (TAG \"a1\") UID MIN"));
          assert_non_null (strstr (first, "* THREAD ("));
          assert_non_null (strstr (first, "a1 BAD HEADER needs a field"));
        }
      else
        {
          assert_string_equal (all->str, first);
          g_clear_pointer (&first, g_free);
        }
    }
  mh_imap__search_set_slice (0, 5000);
  /* A new command while another's cursor is held starts afresh. */
  MhImapCommand *c1 = search_cmd (MH_IMAP_CMD_SEARCH, FALSE,
                                  key (MH_IMAP_SEARCH_ALL));
  mh_imap__search_set_slice (1, 0);
  GString *o1 = g_string_new (NULL);
  assert_int_equal (mh_imap__cmd_search (&s, c1, o1), MH_IMAP_RUN_MORE);
  assert_non_null (s.cursor);
  guint calls;
  g_autofree char *o2 = run_handler (
    &s, search_cmd (MH_IMAP_CMD_SEARCH, FALSE,
                    key_str (MH_IMAP_SEARCH_FROM, "u5@")),
    &calls);
  assert_non_null (strstr (o2, "* SEARCH 6 "));
  assert_int_equal (calls, n);
  mh_imap__search_set_slice (0, 5000);
  mh_imap_command_free (c1);
  g_string_free (o1, TRUE);
  g_clear_pointer (&s.view, mh_store_view_unref);
  g_free (s.folder);
}

/* ---- Responses ---------------------------------------------------------- */

static char *
format (Fx *fx, MhImapCommandKind kind, gboolean uid, gboolean esearch,
        MhImapSearchReturn ret, gboolean rev2, MhImapSearchKey *prog,
        const guint *idx, guint n)
{
  MhImapCommand cmd = { 0 };
  cmd.tag = (char *) "a1";
  cmd.kind = kind;
  cmd.uid = uid;
  cmd.esearch = esearch;
  cmd.search_return = ret;
  cmd.search = prog;
  g_autoptr (GArray) a = g_array_new (FALSE, FALSE, sizeof (guint));
  g_array_append_vals (a, idx, n);
  GString *out = g_string_new (NULL);
  mh_imap__search_format (out, &cmd, fx->view, a, rev2);
  key_free (prog);
  return g_string_free (out, FALSE);
}

static void
test_format (void **state)
{
  Fx *fx = *state;
  const guint idx[] = { 0, 1, 2, 4 };
  const guint none[] = { 0 };
  g_autofree char *a = format (fx, MH_IMAP_CMD_SEARCH, FALSE, FALSE, 0,
                               FALSE, key (MH_IMAP_SEARCH_ALL), idx, 4);
  assert_string_equal (a, "* SEARCH 1 2 3 5\r\n");
  g_autofree char *b = format (fx, MH_IMAP_CMD_SEARCH, TRUE, FALSE, 0,
                               FALSE, key (MH_IMAP_SEARCH_ALL), idx, 4);
  assert_string_equal (b, "* SEARCH 2 3 4 6\r\n");
  g_autofree char *c = format (fx, MH_IMAP_CMD_SEARCH, FALSE, FALSE, 0,
                               FALSE, key (MH_IMAP_SEARCH_ALL), none, 0);
  assert_string_equal (c, "* SEARCH\r\n");
  /* RFC 7162 3.1.5: the highest MODSEQ of the matches (m2's). */
  g_autofree char *d = format (
    fx, MH_IMAP_CMD_SEARCH, FALSE, FALSE, 0, FALSE,
    key_op (MH_IMAP_SEARCH_AND, key_num (MH_IMAP_SEARCH_MODSEQ, 1), NULL),
    idx, 4);
  g_autofree char *dw = g_strdup_printf (
    "* SEARCH 1 2 3 5 (MODSEQ %" G_GUINT64_FORMAT ")\r\n", fx->m2_modseq);
  assert_string_equal (d, dw);
  g_autofree char *d0 = format (fx, MH_IMAP_CMD_SEARCH, FALSE, FALSE, 0,
                                FALSE, key_num (MH_IMAP_SEARCH_MODSEQ, 1),
                                none, 0);
  assert_string_equal (d0, "* SEARCH\r\n");
  /* ESEARCH (RFC 4731). */
  g_autofree char *e = format (
    fx, MH_IMAP_CMD_SEARCH, TRUE, TRUE,
    MH_IMAP_RETURN_MIN | MH_IMAP_RETURN_MAX | MH_IMAP_RETURN_COUNT
      | MH_IMAP_RETURN_ALL,
    FALSE, key (MH_IMAP_SEARCH_ALL), idx, 4);
  assert_string_equal (
    e, "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 6 COUNT 4 ALL 2:4,6\r\n");
  g_autofree char *f = format (fx, MH_IMAP_CMD_SEARCH, FALSE, TRUE,
                               MH_IMAP_RETURN_COUNT, FALSE,
                               key (MH_IMAP_SEARCH_ALL), none, 0);
  assert_string_equal (f, "* ESEARCH (TAG \"a1\") COUNT 0\r\n");
  g_autofree char *g = format (fx, MH_IMAP_CMD_SEARCH, FALSE, TRUE,
                               MH_IMAP_RETURN_MIN | MH_IMAP_RETURN_ALL,
                               FALSE, key (MH_IMAP_SEARCH_ALL), none, 0);
  assert_string_equal (g, "* ESEARCH (TAG \"a1\")\r\n");
  /* IMAP4rev2: ESEARCH, ALL when no RETURN was given. */
  g_autofree char *h = format (fx, MH_IMAP_CMD_SEARCH, FALSE, FALSE, 0, TRUE,
                               key (MH_IMAP_SEARCH_ALL), idx, 4);
  assert_string_equal (h, "* ESEARCH (TAG \"a1\") ALL 1:3,5\r\n");
  /* RETURN (SAVE) alone answers nothing. */
  g_autofree char *i = format (fx, MH_IMAP_CMD_SEARCH, FALSE, TRUE,
                               MH_IMAP_RETURN_SAVE, FALSE,
                               key (MH_IMAP_SEARCH_ALL), idx, 4);
  assert_string_equal (i, "");
  g_autofree char *j = format (
    fx, MH_IMAP_CMD_SEARCH, FALSE, TRUE,
    MH_IMAP_RETURN_SAVE | MH_IMAP_RETURN_MIN, FALSE,
    key_num (MH_IMAP_SEARCH_MODSEQ, 1), idx + 2, 2);
  g_autofree char *jw = g_strdup_printf (
    "* ESEARCH (TAG \"a1\") MIN 3 MODSEQ %" G_GUINT64_FORMAT "\r\n",
    mh_store_view_get_modseq (fx->view, 2));
  assert_string_equal (j, jw);
  /* SORT keeps its order. */
  const guint sorted[] = { 4, 0, 1, 2 };
  g_autofree char *k = format (fx, MH_IMAP_CMD_SORT, FALSE, FALSE, 0, TRUE,
                               key (MH_IMAP_SEARCH_ALL), sorted, 4);
  assert_string_equal (k, "* SORT 5 1 2 3\r\n");
  g_autofree char *l = format (fx, MH_IMAP_CMD_SORT, TRUE, TRUE,
                               MH_IMAP_RETURN_ALL | MH_IMAP_RETURN_MIN
                                 | MH_IMAP_RETURN_MAX,
                               FALSE, key (MH_IMAP_SEARCH_ALL), sorted, 4);
  assert_string_equal (l,
                       "* ESEARCH (TAG \"a1\") UID MIN 6 MAX 4 ALL 6,2:4\r\n");
}

static void
test_save (void **state)
{
  Fx *fx = *state;
  GArray *saved = NULL;
  const guint idx[] = { 4, 0, 2 };
  g_autoptr (GArray) a = g_array_new (FALSE, FALSE, sizeof (guint));
  g_array_append_vals (a, idx, 3);
  mh_imap__search_save (&saved, fx->view, a, MH_IMAP_RETURN_SAVE);
  assert_int_equal (saved->len, 3);
  assert_int_equal (g_array_index (saved, guint32, 0), 2);
  assert_int_equal (g_array_index (saved, guint32, 1), 4);
  assert_int_equal (g_array_index (saved, guint32, 2), 6);
  mh_imap__search_save (&saved, fx->view, a,
                        MH_IMAP_RETURN_SAVE | MH_IMAP_RETURN_MAX);
  assert_int_equal (saved->len, 1);
  assert_int_equal (g_array_index (saved, guint32, 0), 6);
  mh_imap__search_save (&saved, fx->view, a,
                        MH_IMAP_RETURN_SAVE | MH_IMAP_RETURN_MIN
                          | MH_IMAP_RETURN_COUNT);
  assert_int_equal (saved->len, 3);
  g_array_set_size (a, 0);
  mh_imap__search_save (&saved, fx->view, a, MH_IMAP_RETURN_SAVE);
  assert_int_equal (saved->len, 0);
  g_array_unref (saved);
}

/* ---- Text helpers -------------------------------------------------------- */

static void
base_is (const char *raw, const char *want, gboolean want_refwd)
{
  gboolean refwd = !want_refwd;
  g_autofree char *got = mh_imap__base_subject (raw, &refwd);
  if (strcmp (got, want) != 0 || refwd != want_refwd)
    fail_msg ("base subject of \"%s\": got \"%s\" (%d), want \"%s\" (%d)",
              raw, got, refwd, want, want_refwd);
}

static void
test_base_subject (void **state)
{
  (void) state;
  base_is ("Hello", "Hello", FALSE);
  base_is ("Re: Hello", "Hello", TRUE);
  base_is ("RE: re: Fwd: FW: fw: Hello", "Hello", TRUE);
  base_is ("Re[2]: Hello", "Hello", TRUE);
  base_is ("Re [list]: Hello", "Hello", TRUE);
  base_is ("[list] Re: Hello", "Hello", TRUE);
  base_is ("[list] [tag] Hello", "Hello", FALSE);
  base_is ("[list]", "[list]", FALSE);
  base_is ("[list] ", "[list]", FALSE);
  base_is ("Hello (fwd)", "Hello", TRUE);
  base_is ("Hello (FWD) (fwd)  ", "Hello", TRUE);
  base_is ("[Fwd: Re: Hello]", "Hello", TRUE);
  base_is ("Re: [fwd: [list] Re: Hello (fwd)]", "Hello", TRUE);
  /* A leading blob goes when something remains (step 4). */
  base_is ("[fwd: Hello] tail", "tail", FALSE);
  base_is ("  Hello \t  world  ", "Hello world", FALSE);
  base_is ("Re:", "", TRUE);
  base_is ("Reply: hi", "Reply: hi", FALSE);
  base_is ("Fwd:Re:x", "x", TRUE);
  base_is ("Re: Re:  (fwd)", "", TRUE);
  base_is ("=?UTF-8?Q?Re=3A_caf=C3=A9?=", "café", TRUE);
  base_is ("=?ISO-8859-1?Q?Fwd:_M=FCnchen?= (fwd)", "München", TRUE);
  base_is ("Re: Hello\r\n there", "Hello there", TRUE);
  base_is ("", "", FALSE);
}

static void
test_decode (void **state)
{
  (void) state;
  g_autofree char *a = mh_imap__decode_header (
    "=?ISO-8859-1?Q?Andr=E9?= <a@b>");
  assert_string_equal (a, "André <a@b>");
  g_autofree char *b = mh_imap__decode_header (
    "=?UTF-8?B?R3LDvMOfZQ==?=\r\n =?UTF-8?Q?_K=C3=B6ln?=");
  assert_string_equal (b, "Grüße Köln");
  /* Raw 8-bit Latin-1 still comes out as valid UTF-8. */
  g_autofree char *c = mh_imap__decode_header ("caf\xe9");
  assert_true (g_utf8_validate (c, -1, NULL));
  g_autofree char *f1 = mh_imap__fold ("STRASSE", -1);
  g_autofree char *f2 = mh_imap__fold ("strasse", -1);
  assert_string_equal (f1, f2);
  /* Σσς all titlecase to Σ. */
  g_autofree char *f5 = mh_imap__fold ("\xce\xa3\xcf\x83\xcf\x82", -1);
  assert_string_equal (f5, "\xce\xa3\xce\xa3\xce\xa3");
  g_autofree char *f3 = mh_imap__fold ("Caf\xc3\xa9", -1);   /* é */
  g_autofree char *f4 = mh_imap__fold ("CAFE\xcc\x81", -1);  /* E + ́ */
  assert_string_equal (f3, f4);
  g_autofree char *ad = mh_imap__address_sort_key (
    "\"Zed\" <Zed.Z@Example.org>, b@c", FALSE);
  assert_string_equal (ad, "Zed.Z");
  g_autofree char *dn = mh_imap__address_sort_key (
    "=?ISO-8859-1?Q?Andr=E9?= <a@b>", TRUE);
  assert_string_equal (dn, "André");
  g_autofree char *da = mh_imap__address_sort_key ("<a@b>", TRUE);
  assert_string_equal (da, "a@b");
  g_autofree char *gr = mh_imap__address_sort_key (
    "team: x@y, z@w;", FALSE);
  assert_string_equal (gr, "x");
  g_autofree char *no = mh_imap__address_sort_key ("", FALSE);
  assert_string_equal (no, "");
}

static void
test_parse_date (void **state)
{
  (void) state;
  gint64 utc = 0, d = 0;
  assert_true (mh_imap__parse_date ("Tue, 3 Nov 2026 23:30:00 -0500", &utc,
                                    &d));
  assert_int_equal (d, day (2026, 11, 3));
  GDateTime *t = g_date_time_new_utc (2026, 11, 4, 4, 30, 0);
  assert_int_equal (utc, g_date_time_to_unix (t));
  g_date_time_unref (t);
  /* No weekday, two-digit year, obsolete zone name. */
  assert_true (mh_imap__parse_date ("4 Nov 26 01:00 EST", &utc, &d));
  assert_int_equal (d, day (2026, 11, 4));
  assert_false (mh_imap__parse_date ("not a date", &utc, &d));
  assert_false (mh_imap__parse_date ("", &utc, &d));
  assert_false (mh_imap__parse_date (NULL, &utc, &d));
  assert_int_equal (mh_imap__local_day (noon (4)), day (2026, 11, 4));
}

int
main (void)
{
  /* Internal-date days are taken in the server's zone: fix it. */
  g_setenv ("TZ", "UTC", TRUE);
  tzset ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_flags, setup, teardown),
    cmocka_unit_test_setup_teardown (test_forwarded_keyword, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sets, setup, teardown),
    cmocka_unit_test_setup_teardown (test_boolean, setup, teardown),
    cmocka_unit_test_setup_teardown (test_headers, setup, teardown),
    cmocka_unit_test_setup_teardown (test_body_text, setup, teardown),
    cmocka_unit_test_setup_teardown (test_dates_sizes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_expunged_and_errors, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_edge_messages, setup, teardown),
    cmocka_unit_test_setup_teardown (test_header_fast_path, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sort, setup, teardown),
    cmocka_unit_test_setup_teardown (test_thread, setup, teardown),
    cmocka_unit_test_setup_teardown (test_thread_loops_and_dups, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_thread_big, setup, teardown),
    cmocka_unit_test_setup_teardown (test_sliced_jobs, setup, teardown),
    cmocka_unit_test_setup_teardown (test_sliced_handler, setup, teardown),
    cmocka_unit_test_setup_teardown (test_format, setup, teardown),
    cmocka_unit_test_setup_teardown (test_save, setup, teardown),
    cmocka_unit_test (test_base_subject),
    cmocka_unit_test (test_decode),
    cmocka_unit_test (test_parse_date),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
