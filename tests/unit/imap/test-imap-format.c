/* Response helpers: astring/nstring forms and sequence sets. */
#include "mh-test.h"

#include <string.h>

static char *
astr (const char *s, gssize len, gboolean utf8)
{
  GString *o = g_string_new (NULL);
  mh_imap_append_astring (o, s, len, utf8);
  return g_string_free (o, FALSE);
}

static char *
nstr (const char *s, gssize len, gboolean utf8)
{
  GString *o = g_string_new (NULL);
  mh_imap_append_nstring (o, s, len, utf8);
  return g_string_free (o, FALSE);
}

#define ASTR(in, utf8, want)                                                   \
  do                                                                           \
    {                                                                          \
      g_autofree char *got_ = astr (in, -1, utf8);                             \
      assert_string_equal (got_, want);                                        \
    }                                                                          \
  while (0)

#define NSTR(in, utf8, want)                                                   \
  do                                                                           \
    {                                                                          \
      g_autofree char *got_ = nstr (in, -1, utf8);                             \
      assert_string_equal (got_, want);                                        \
    }                                                                          \
  while (0)

static void
test_astring (void **state)
{
  (void)state;
  ASTR ("INBOX", FALSE, "INBOX");
  ASTR ("Sent.2024", FALSE, "Sent.2024");
  ASTR ("", FALSE, "\"\"");
  ASTR ("two words", FALSE, "\"two words\"");
  ASTR ("a\"b\\c", FALSE, "\"a\\\"b\\\\c\"");
  ASTR ("NIL", FALSE, "\"NIL\"");
  ASTR ("nil", FALSE, "\"nil\"");
  ASTR ("a]b", FALSE, "\"a]b\"");
  ASTR ("50%", FALSE, "\"50%\"");
  ASTR ("caf\xc3\xa9", FALSE, "{5}\r\ncaf\xc3\xa9");
  ASTR ("caf\xc3\xa9", TRUE, "\"caf\xc3\xa9\"");
  ASTR ("bad\xc3", TRUE, "{4}\r\nbad\xc3");
  ASTR ("line\r\nbreak", FALSE, "{11}\r\nline\r\nbreak");
  g_autofree char *nul = astr ("a\0b", 3, FALSE);
  assert_memory_equal (nul, "{3}\r\na\0b", 8);
  g_autofree char *longv = g_strnfill (2000, 'x');
  g_autofree char *lo = astr (longv, -1, FALSE);
  assert_true (g_str_has_prefix (lo, "{2000}\r\nxxx"));
  g_autofree char *part = astr ("INBOXES", 5, FALSE);
  assert_string_equal (part, "INBOX");
}

static void
test_nstring (void **state)
{
  (void)state;
  NSTR (NULL, FALSE, "NIL");
  NSTR ("INBOX", FALSE, "\"INBOX\"");
  NSTR ("", FALSE, "\"\"");
  NSTR ("x\ny", FALSE, "{3}\r\nx\ny");
  NSTR ("\xe2\x82\xac", TRUE, "\"\xe2\x82\xac\"");
  NSTR ("\xe2\x82\xac", FALSE, "{3}\r\n\xe2\x82\xac");
}

static MhImapSeqSet *
set_of (const MhImapRange *r, guint n)
{
  MhImapSeqSet *s = g_new0 (MhImapSeqSet, 1);
  s->ranges = g_array_new (FALSE, FALSE, sizeof (MhImapRange));
  g_array_append_vals (s->ranges, r, n);
  return s;
}

static void
free_set (MhImapSeqSet *s)
{
  g_array_unref (s->ranges);
  g_free (s);
}

static void
test_seqset_contains (void **state)
{
  (void)state;
  const MhImapRange r[] = { { 2, 4 }, { 9, 7 }, { 20, MH_IMAP_STAR } };
  MhImapSeqSet *s = set_of (r, 3);
  gboolean want[] = { FALSE, FALSE, TRUE, TRUE, TRUE, FALSE,
                      FALSE, TRUE,  TRUE, TRUE, FALSE };
  for (guint32 i = 0; i < G_N_ELEMENTS (want); i++)
    assert_int_equal (mh_imap_seqset_contains (s, i, 30), want[i]);
  assert_true (mh_imap_seqset_contains (s, 25, 30));
  assert_true (mh_imap_seqset_contains (s, 30, 30));
  assert_false (mh_imap_seqset_contains (s, 31, 30));
  /* "20:*" with * = 10 means 10:20 (RFC 9051 9) */
  assert_true (mh_imap_seqset_contains (s, 15, 10));
  free_set (s);

  const MhImapRange star[] = { { MH_IMAP_STAR, MH_IMAP_STAR } };
  s = set_of (star, 1);
  assert_true (mh_imap_seqset_contains (s, 12, 12));
  assert_false (mh_imap_seqset_contains (s, 11, 12));
  free_set (s);
}

static void
test_seqset_format (void **state)
{
  (void)state;
  const guint32 v[] = { 1, 2, 3, 7, 9, 10, 10, 11, 4294967295u };
  g_autofree char *a = mh_imap_seqset_format (v, G_N_ELEMENTS (v));
  assert_string_equal (a, "1:3,7,9:11,4294967295");
  g_autofree char *b = mh_imap_seqset_format (NULL, 0);
  assert_string_equal (b, "");
  const guint32 one[] = { 42 };
  g_autofree char *c = mh_imap_seqset_format (one, 1);
  assert_string_equal (c, "42");
  const guint32 top[] = { 4294967294u, 4294967295u };
  g_autofree char *d = mh_imap_seqset_format (top, 2);
  assert_string_equal (d, "4294967294:4294967295");
}

static void
test_limits_and_types (void **state)
{
  (void)state;
  g_autoptr (MhImapLimits) l = mh_imap_limits_new ();
  assert_int_equal (l->version, 1);
  assert_int_equal (l->max_line, MH_LIMIT_IMAP_LINE_MAX);
  assert_int_equal (l->max_literal, MH_LIMIT_IMAP_NONAPPEND_LITERAL_MAX);
  assert_int_equal (l->max_append, MH_LIMIT_IMAP_APPEND_MAX);
  assert_int_equal (l->max_pending, MH_LIMIT_IMAP_PENDING_MAX);
  g_autoptr (MhImapLimits) c = mh_imap_limits_copy (l);
  assert_memory_equal (c, l, sizeof *l);
  assert_true (g_type_is_a (mh_imap_limits_get_type (), G_TYPE_BOXED));
  assert_true (g_type_is_a (mh_imap_engine_get_type (), G_TYPE_BOXED));
  assert_true (g_type_is_a (mh_imap_command_get_type (), G_TYPE_BOXED));
  assert_true (mh_imap_error_quark () != 0);
  mh_imap_command_free (NULL);
  mh_imap_engine_unref (NULL);
  mh_imap_limits_free (NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_astring),
    cmocka_unit_test (test_nstring),
    cmocka_unit_test (test_seqset_contains),
    cmocka_unit_test (test_seqset_format),
    cmocka_unit_test (test_limits_and_types),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
