/* Domain and address syntax: every bad input gets INVALID with a message
 * naming what is wrong; equivalent spellings give one stored form. */
#include "mh-test.h"
#include "directory/directory-private.h"

#include <string.h>

static void
assert_domain (const char *in, const char *want)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a = mh_directory_domain_to_ascii (in, &error);
  if (a == NULL)
    fail_msg ("'%s' refused: %s", in, error->message);
  assert_string_equal (a, want);
}

static void
assert_bad_domain (const char *in, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a = mh_directory_domain_to_ascii (in, &error);
  if (a != NULL)
    fail_msg ("'%s' accepted as '%s'", in, a);
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        needle, NULL);
}

static void
test_domain_normalisation (void **state)
{
  /* U-label and A-label give the same domain, in any case. */
  assert_domain ("Bücher.Example", "xn--bcher-kva.example");
  assert_domain ("xn--bcher-kva.example", "xn--bcher-kva.example");
  assert_domain ("XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example");
  assert_domain ("EXAMPLE.ORG.", "example.org");
  /* UTS#46 nontransitional: ß stays ß (not "ss"). */
  assert_domain ("faß.de", "xn--fa-hia.de");
  /* Fullwidth letters map to ASCII. */
  assert_domain ("\xef\xbc\xa5xample.com", "example.com");
  g_autofree char *u = mh_directory_domain_to_unicode ("xn--bcher-kva.example");
  assert_string_equal (u, "bücher.example");
  g_autofree char *plain = mh_directory_domain_to_unicode ("example.org");
  assert_string_equal (plain, "example.org");
}

static void
test_domain_invalid (void **state)
{
  assert_bad_domain ("", "empty");
  assert_bad_domain (NULL, "empty");
  assert_bad_domain ("a..example", "empty label");
  assert_bad_domain (".example.org", "empty label");
  assert_bad_domain ("example.org..", "empty label");
  assert_bad_domain ("localhost", "at least two labels");
  assert_bad_domain ("exa mple.org", "space");
  assert_bad_domain ("a_b.example", "'_'");
  assert_bad_domain ("-ab.example", "hyphen");
  assert_bad_domain ("ab-.example", "hyphen");
  assert_bad_domain ("ab--cd.example", "hyphen");
  assert_bad_domain ("192.0.2.1", "all digits");
  assert_bad_domain ("\xff.example", "UTF-8");
  /* IDNA that does not normalise. */
  assert_bad_domain ("xn--zz-.example", "hyphen");
  assert_bad_domain ("xn--abc.example", "IDNA");
  assert_bad_domain ("x.xn--zz", "IDNA");
  assert_bad_domain ("\xe2\x98\x83.com", "IDNA");        /* snowman */
  assert_bad_domain ("\xf0\x9f\x92\xa9.la", "IDNA");     /* emoji */
  assert_bad_domain ("xn--ls8h.la", "IDNA");             /* its A-label */

  /* Over-long label: 64 octets. */
  g_autofree char *label64 = g_strnfill (64, 'a');
  g_autofree char *d64 = g_strconcat (label64, ".example", NULL);
  assert_bad_domain (d64, "63");
  g_autofree char *label63 = g_strnfill (63, 'a');
  g_autofree char *d63 = g_strconcat (label63, ".example", NULL);
  assert_domain (d63, d63);

  /* Over-long name: 254 octets (labels of 63 are fine). */
  g_autofree char *b61 = g_strnfill (61, 'b');
  g_autofree char *b62 = g_strnfill (62, 'b');
  g_autofree char *big = g_strdup_printf ("%s.%s.%s.%s", label63, label63,
                                          label63, b61);
  assert_int_equal (strlen (big), 253);
  assert_domain (big, big);
  g_autofree char *bigger = g_strdup_printf ("%s.%s.%s.%s", label63, label63,
                                             label63, b62);
  assert_int_equal (strlen (bigger), 254);
  assert_bad_domain (bigger, "253");
  g_autofree char *huge = g_strnfill (5000, 'a');
  assert_bad_domain (huge, "too long");
}

static void
assert_address (const char *in, const char *local, const char *domain)
{
  MhDirectoryAddress a;
  g_autoptr (GError) error = NULL;
  if (!mh_directory__address_parse (in, &a, &error))
    fail_msg ("'%s' refused: %s", in, error->message);
  assert_string_equal (a.local, local);
  assert_string_equal (a.domain, domain);
  mh_directory__address_clear (&a);
}

static void
assert_bad_address (const char *in, const char *needle)
{
  MhDirectoryAddress a;
  g_autoptr (GError) error = NULL;
  if (mh_directory__address_parse (in, &a, &error))
    fail_msg ("'%s' accepted as '%s@%s'", in, a.local, a.domain);
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        needle, NULL);
}

static void
test_addresses (void **state)
{
  assert_address ("John.Doe@Example.ORG", "John.Doe", "example.org");
  assert_address ("a+tag@bücher.example", "a+tag", "xn--bcher-kva.example");
  /* RFC 5321 4.1.2: a quoted dot-string is the same mailbox. */
  assert_address ("\"john\"@example.org", "john", "example.org");
  assert_address ("\"john doe\"@example.org", "\"john doe\"", "example.org");
  assert_address ("\"a\\\"b\"@example.org", "\"a\\\"b\"", "example.org");
  assert_address ("\"a@b\"@example.org", "\"a@b\"", "example.org");
  assert_address ("jöran@example.org", "jöran", "example.org");

  assert_bad_address ("", "empty");
  assert_bad_address ("user", "no '@domain'");
  assert_bad_address ("@example.org", "empty local part");
  assert_bad_address (".a@example.org", "'.'");
  assert_bad_address ("a.@example.org", "'.'");
  assert_bad_address ("a..b@example.org", "'.'");
  assert_bad_address ("a b@example.org", "' '");
  assert_bad_address ("a(b)@example.org", "'('");
  assert_bad_address ("\"abc@example.org", "quoted");
  assert_bad_address ("\"a\"b@example.org", "quoted");
  assert_bad_address ("\"a\x01\"@example.org", "control");
  assert_bad_address ("user@exa_mple.org", "'_'");
  assert_bad_address ("user@localhost", "two labels");
  g_autofree char *l65 = g_strnfill (65, 'x');
  g_autofree char *a65 = g_strconcat (l65, "@example.org", NULL);
  assert_bad_address (a65, "64");
  g_autofree char *l64 = g_strnfill (64, 'x');
  g_autofree char *a64 = g_strconcat (l64, "@example.org", NULL);
  assert_address (a64, l64, "example.org");
  /* 64 + 1 + 190 > 254 */
  g_autofree char *d63 = g_strnfill (63, 'd');
  g_autofree char *f62 = g_strnfill (62, 'f');
  g_autofree char *d = g_strdup_printf ("%s.%s.%s", d63, d63, f62);
  g_autofree char *long_addr = g_strconcat (l64, "@", d, NULL);
  assert_bad_address (long_addr, "254");
}

static void
test_local_fold (void **state)
{
  g_autofree char *a = mh_directory__local_fold ("John.Doe", FALSE);
  assert_string_equal (a, "john.doe");
  g_autofree char *b = mh_directory__local_fold ("John.Doe", TRUE);
  assert_string_equal (b, "John.Doe");
  g_autofree char *c = mh_directory__local_fold ("JÖRAN", FALSE);
  assert_string_equal (c, "jöran");
}

static void
test_protocols (void **state)
{
  MhDirectoryProtocols p;
  g_autoptr (GError) error = NULL;
  assert_true (mh_directory_protocols_from_string ("imap, POP3", &p, NULL));
  assert_int_equal (p, MH_DIRECTORY_PROTOCOL_IMAP | MH_DIRECTORY_PROTOCOL_POP3);
  assert_true (mh_directory_protocols_from_string ("all", &p, NULL));
  assert_int_equal (p, MH_DIRECTORY_PROTOCOL_ALL);
  assert_true (mh_directory_protocols_from_string ("none", &p, NULL));
  assert_int_equal (p, 0);
  assert_false (mh_directory_protocols_from_string ("imap,smtp", &p, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        "'smtp'", NULL);
  g_clear_error (&error);
  assert_false (mh_directory_protocols_from_string ("", &p, &error));
  mh_test_assert_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                        "no protocol", NULL);
  g_autofree char *s = mh_directory_protocols_to_string (
      MH_DIRECTORY_PROTOCOL_SUBMISSION | MH_DIRECTORY_PROTOCOL_IMAP);
  assert_string_equal (s, "imap,submission");
  g_autofree char *n = mh_directory_protocols_to_string (0);
  assert_string_equal (n, "none");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_domain_normalisation),
    cmocka_unit_test (test_domain_invalid),
    cmocka_unit_test (test_addresses),
    cmocka_unit_test (test_local_fold),
    cmocka_unit_test (test_protocols),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
