#include "mh-test.h"
#include "core/core-private.h"
#include "mh-config.h"
#define MH_VERSION_FOR_TEST MH_VERSION

static void
test_duration_parsing (void **state)
{
  gint64 v = 0;
  assert_true (mh_core__parse_duration ("30", &v));
  assert_int_equal (v, 30);
  assert_true (mh_core__parse_duration ("5m", &v));
  assert_int_equal (v, 300);
  assert_true (mh_core__parse_duration ("2h", &v));
  assert_int_equal (v, 7200);
  assert_true (mh_core__parse_duration ("1w", &v));
  assert_int_equal (v, 604800);
  assert_false (mh_core__parse_duration ("", &v));
  assert_false (mh_core__parse_duration ("m", &v));
  assert_false (mh_core__parse_duration ("-5s", &v));
  assert_false (mh_core__parse_duration ("5 m", &v));
  assert_false (mh_core__parse_duration ("99999999999999999999w", &v));
  assert_false (mh_core__parse_duration ("9223372036854775807w", &v));
}

static void
test_size_parsing (void **state)
{
  gint64 v = 0;
  assert_true (mh_core__parse_size ("20M", &v));
  assert_int_equal (v, 20 * 1024 * 1024);
  assert_true (mh_core__parse_size ("512k", &v));
  assert_int_equal (v, 512 * 1024);
  assert_true (mh_core__parse_size ("100", &v));
  assert_int_equal (v, 100);
  assert_false (mh_core__parse_size ("1.5G", &v));
  assert_false (mh_core__parse_size ("G", &v));
  assert_false (mh_core__parse_size ("9999999999T", &v));
}

static void
test_memeq_ct (void **state)
{
  assert_true (mh_core__memeq_ct ("secret", 6, "secret", 6));
  assert_false (mh_core__memeq_ct ("secreT", 6, "secret", 6));
  assert_false (mh_core__memeq_ct ("secret!", 7, "secret", 6));
  assert_false (mh_core__memeq_ct ("secre", 5, "secret", 6));
  assert_true (mh_core__memeq_ct ("", 0, "", 0));
}

static void
test_wipe (void **state)
{
  char buf[8] = "hunter2";
  mh_core__wipe (buf, sizeof buf);
  for (gsize i = 0; i < sizeof buf; i++)
    assert_int_equal (buf[i], 0);
}

static void
test_log_levels (void **state)
{
  MhLogLevel l;
  assert_true (mh_log_level_from_string ("DEBUG", &l));
  assert_int_equal (l, MH_LOG_DEBUG);
  assert_true (mh_log_level_from_string ("notice", &l));
  assert_int_equal (l, MH_LOG_NOTICE);
  assert_false (mh_log_level_from_string ("loud", &l));
  assert_false (mh_log_level_from_string (NULL, &l));
  assert_string_equal (mh_version (), MH_VERSION_FOR_TEST);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_duration_parsing),
    cmocka_unit_test (test_size_parsing),
    cmocka_unit_test (test_memeq_ct),
    cmocka_unit_test (test_wipe),
    cmocka_unit_test (test_log_levels),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
