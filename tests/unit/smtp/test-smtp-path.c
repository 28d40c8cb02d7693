/* RFC 5321 Path parsing (mh_smtp_path_parse and the engine's parser). */
#include "mh-test.h"
#include "mailhost/smtp.h"
#include "proto/smtp/smtp-private.h"

#include <string.h>

static MhSmtpPath *
ok (const char *text, gboolean null, gboolean utf8)
{
  g_autoptr (GError) error = NULL;
  MhSmtpPath *p = mh_smtp_path_parse (text, -1, null, utf8, &error);
  if (p == NULL)
    fail_msg ("'%s' should parse: %s", text, error->message);
  return p;
}

static void
bad (const char *text, int code, const char *needle)
{
  g_autoptr (GError) error = NULL;
  MhSmtpPath *p = mh_smtp_path_parse (text, -1, TRUE, FALSE, &error);
  if (p != NULL)
    fail_msg ("'%s' should not parse (got %s)", text, p->address);
  mh_test_assert_error (error, MH_SMTP_ERROR, code, needle, NULL);
}

static void
test_plain_and_null (void **state)
{
  g_autoptr (MhSmtpPath) p = ok ("<User.Name+tag@Example.ORG>", FALSE, FALSE);
  assert_string_equal (p->address, "User.Name+tag@Example.ORG");
  assert_string_equal (p->local_part, "User.Name+tag");
  assert_string_equal (p->domain, "Example.ORG");
  assert_false (p->is_null || p->is_utf8 || p->domain_is_literal);

  g_autoptr (MhSmtpPath) n = ok ("<>", TRUE, FALSE);
  assert_true (n->is_null);
  assert_string_equal (n->address, "");
  assert_null (n->domain);
  bad ("<>x", MH_SMTP_ERROR_SYNTAX, "after '>'");

  g_autoptr (GError) error = NULL;
  assert_null (mh_smtp_path_parse ("<>", -1, FALSE, FALSE, &error));
  mh_test_assert_error (error, MH_SMTP_ERROR, MH_SMTP_ERROR_SYNTAX,
                        "null address", NULL);

  g_autoptr (MhSmtpPath) c = mh_smtp_path_copy (p);
  assert_string_equal (c->address, p->address);
  assert_true (c->address != p->address);
}

static void
test_quoted_local_part (void **state)
{
  g_autoptr (MhSmtpPath) p = ok ("<\"john \\\"jr\\\" doe\"@example.org>",
                                 FALSE, FALSE);
  assert_string_equal (p->local_part, "john \"jr\" doe");
  assert_string_equal (p->address, "\"john \\\"jr\\\" doe\"@example.org");
  /* '>' and '@' inside quotes do not end anything */
  g_autoptr (MhSmtpPath) q = ok ("<\"a>b@c\"@example.org>", FALSE, FALSE);
  assert_string_equal (q->local_part, "a>b@c");
  bad ("<\"abc@example.org>", MH_SMTP_ERROR_SYNTAX, "unterminated");
  bad ("<\"a\x01\"@example.org>", MH_SMTP_ERROR_SYNTAX, "control");
}

static void
test_literals (void **state)
{
  g_autoptr (MhSmtpPath) a = ok ("<u@[192.0.2.1]>", FALSE, FALSE);
  assert_true (a->domain_is_literal);
  assert_string_equal (a->domain, "[192.0.2.1]");
  g_autoptr (MhSmtpPath) b = ok ("<u@[IPv6:2001:db8::1]>", FALSE, FALSE);
  assert_string_equal (b->domain, "[IPv6:2001:db8::1]");
  g_autoptr (MhSmtpPath) c = ok ("<u@[x-tag:stuff]>", FALSE, FALSE);
  assert_true (c->domain_is_literal);
  bad ("<u@[192.0.2.256]>", MH_SMTP_ERROR_SYNTAX, "invalid address literal");
  bad ("<u@[IPv6:zz::1]>", MH_SMTP_ERROR_SYNTAX, "invalid address literal");
  bad ("<u@[]>", MH_SMTP_ERROR_SYNTAX, "address literal");
  bad ("<u@[1.2.3.4>", MH_SMTP_ERROR_SYNTAX, "address literal");
}

static void
test_source_route_and_postmaster (void **state)
{
  g_autoptr (MhSmtpPath) p = ok ("<@relay.example,@b.example:user@c.example>",
                                 FALSE, FALSE);
  assert_true (p->had_source_route);
  assert_string_equal (p->address, "user@c.example");
  bad ("<@relay.example user@c.example>", MH_SMTP_ERROR_SYNTAX,
       "source route");

  g_autoptr (MhSmtpPath) pm = ok ("<PostMaster>", FALSE, FALSE);
  assert_true (pm->is_postmaster);
  assert_null (pm->domain);
  bad ("<someone>", MH_SMTP_ERROR_SYNTAX, "no @domain");
}

static void
test_syntax_errors (void **state)
{
  bad ("user@example.org", MH_SMTP_ERROR_SYNTAX, "angle brackets");
  bad ("<user@example.org", MH_SMTP_ERROR_SYNTAX, "'>'");
  bad ("<.user@example.org>", MH_SMTP_ERROR_SYNTAX, "empty atom");
  bad ("<us..er@example.org>", MH_SMTP_ERROR_SYNTAX, "empty atom");
  bad ("<user.@example.org>", MH_SMTP_ERROR_SYNTAX, "ends with a dot");
  bad ("<user@example.org.>", MH_SMTP_ERROR_SYNTAX, "empty label");
  bad ("<user@-example.org>", MH_SMTP_ERROR_SYNTAX, "domain name expected");
  bad ("<user@example-.org>", MH_SMTP_ERROR_SYNTAX, "ends with '-'");
  bad ("<user@>", MH_SMTP_ERROR_SYNTAX, "domain name expected");
  bad ("<us er@example.org>", MH_SMTP_ERROR_SYNTAX, "space");
  bad ("<@example.org>", MH_SMTP_ERROR_SYNTAX, "bad source route");
  bad ("<a(b)@example.org>", MH_SMTP_ERROR_SYNTAX, "unexpected character");
}

static void
test_lengths (void **state)
{
  g_autofree char *l64 = g_strnfill (64, 'a');
  g_autofree char *l65 = g_strnfill (65, 'a');
  g_autofree char *okp = g_strdup_printf ("<%s@example.org>", l64);
  g_autofree char *badp = g_strdup_printf ("<%s@example.org>", l65);
  g_autoptr (MhSmtpPath) p = ok (okp, FALSE, FALSE);
  bad (badp, MH_SMTP_ERROR_TOO_LONG, "64 octets");

  g_autofree char *lab = g_strnfill (64, 'b');
  g_autofree char *badl = g_strdup_printf ("<a@%s.org>", lab);
  bad (badl, MH_SMTP_ERROR_TOO_LONG, "label");

  /* 4 labels of 63 + dots = 255 octets: the domain is fine but the path
   * (local + @ + brackets) exceeds 256 */
  g_autofree char *l63 = g_strnfill (63, 'c');
  g_autofree char *dom = g_strdup_printf ("%s.%s.%s.%s", l63, l63, l63, l63);
  g_autofree char *longp = g_strdup_printf ("<a@%s>", dom);
  bad (longp, MH_SMTP_ERROR_TOO_LONG, "256");
  g_autofree char *dom2 = g_strdup_printf ("%s.%s.%s.%s.x", l63, l63, l63,
                                           l63);
  g_autofree char *longd = g_strdup_printf ("<a@%s>", dom2);
  bad (longd, MH_SMTP_ERROR_TOO_LONG, "255");
}

static void
test_utf8 (void **state)
{
  const char *u = "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>";
  bad (u, MH_SMTP_ERROR_UTF8, "SMTPUTF8");
  g_autoptr (MhSmtpPath) p = ok (u, FALSE, TRUE);
  assert_true (p->is_utf8);
  assert_string_equal (p->local_part, "j\xc3\xb6rg");
  /* invalid UTF-8 is refused even when UTF-8 is allowed */
  g_autoptr (GError) error = NULL;
  assert_null (mh_smtp_path_parse ("<j\xc3(x@example.org>", -1, FALSE, TRUE,
                                   &error));
  assert_non_null (error);
}

static void
test_not_nul_terminated (void **state)
{
  /* (ptr, len): bytes past len are never read as part of the path */
  const char buf[] = "<a@example.org>GARBAGE";
  g_autoptr (GError) error = NULL;
  g_autoptr (MhSmtpPath) p = mh_smtp_path_parse (buf, 15, FALSE, FALSE,
                                                 &error);
  assert_non_null (p);
  assert_string_equal (p->domain, "example.org");
  g_autoptr (MhSmtpPath) q = mh_smtp_path_parse (buf, 14, FALSE, FALSE, NULL);
  assert_null (q);
}

static void
test_xtext_and_base64 (void **state)
{
  assert_true (mh_smtp__xtext_valid ("abc+2Bdef", 9));
  assert_false (mh_smtp__xtext_valid ("abc+2bdef", 9)); /* lower hex */
  assert_false (mh_smtp__xtext_valid ("abc+2", 5));
  assert_false (mh_smtp__xtext_valid ("a=b", 3));
  assert_false (mh_smtp__xtext_valid ("a b", 3));
  assert_true (mh_smtp__base64_valid ("AHVzZXIAcGFzcw==", 16));
  assert_true (mh_smtp__base64_valid ("", 0));
  assert_false (mh_smtp__base64_valid ("AHVzZXIAcGFzcw=", 15));
  assert_false (mh_smtp__base64_valid ("AH=zZXIA", 8));
  assert_false (mh_smtp__base64_valid ("AHV*ZXIA", 8));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plain_and_null),
    cmocka_unit_test (test_quoted_local_part),
    cmocka_unit_test (test_literals),
    cmocka_unit_test (test_source_route_and_postmaster),
    cmocka_unit_test (test_syntax_errors),
    cmocka_unit_test (test_lengths),
    cmocka_unit_test (test_utf8),
    cmocka_unit_test (test_not_nul_terminated),
    cmocka_unit_test (test_xtext_and_base64),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
