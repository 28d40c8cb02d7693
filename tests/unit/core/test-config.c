#include "mh-test.h"

#include <string.h>

static void
test_defaults (void **state)
{
  g_autoptr (MhConfig) c = mh_config_new ();
  assert_string_equal (mh_config_get_string (c, "general", "data_dir"),
                       "/var/lib/mailhost");
  assert_int_equal (mh_config_get_int (c, "limits", "command_timeout"), 300);
  assert_int_equal (mh_config_get_int (c, "limits", "max_message_size"),
                    20 * 1024 * 1024);
  assert_string_equal (mh_config_get_string (c, "imaps", "tls"), "implicit");
  g_auto (GStrv) listen = mh_config_get_list (c, "imap", "listen");
  assert_int_equal (g_strv_length (listen), 1);
  assert_string_equal (listen[0], "*:143");
  assert_false (mh_config_get_bool (c, "imap", "enabled"));
  assert_null (mh_config_get_string (c, "tls", "cert"));
}

static void
test_load_values (void **state)
{
  const char *text = "[general]\n"
                     "data_dir = /srv/mail\n"
                     "log_level = debug\n"
                     "[imap]\n"
                     "enabled = yes\n"
                     "listen = 127.0.0.1:1143, [::1]:1143\n"
                     "idle_timeout = 31m\n"
                     "[limits]\n"
                     "max_message_size = 50M\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) c = mh_config_load_data (text, -1, "t.conf", &error);
  assert_null (error);
  assert_non_null (c);
  assert_string_equal (mh_config_get_string (c, "general", "data_dir"),
                       "/srv/mail");
  assert_true (mh_config_get_bool (c, "imap", "enabled"));
  assert_int_equal (mh_config_get_int (c, "imap", "idle_timeout"), 31 * 60);
  assert_int_equal (mh_config_get_int (c, "limits", "max_message_size"),
                    50 * 1024 * 1024);
  g_auto (GStrv) listen = mh_config_get_list (c, "imap", "listen");
  assert_int_equal (g_strv_length (listen), 2);
  assert_string_equal (listen[1], "[::1]:1143");
  assert_true (mh_config_has_section (c, "imap"));
  assert_false (mh_config_has_section (c, "pop3"));
  assert_string_equal (mh_config_get_source (c), "t.conf");
}

typedef struct
{
  const char *text;
  int code;
  const char *needle1;
  const char *needle2;
} BadCase;

static void
test_bad_input_names_what_is_wrong (void **state)
{
  static const BadCase cases[] = {
    { "[imapd]\nenabled=true\n", MH_CONFIG_ERROR_UNKNOWN_SECTION,
      "bad.conf", "[imapd]" },
    { "[imap]\nenable=true\n", MH_CONFIG_ERROR_UNKNOWN_KEY, "[imap]",
      "'enable'" },
    { "[imap]\nenabled=maybe\n", MH_CONFIG_ERROR_BAD_VALUE, "[imap] enabled",
      "'maybe'" },
    { "[imap]\nidle_timeout=soon\n", MH_CONFIG_ERROR_BAD_VALUE,
      "[imap] idle_timeout", "duration" },
    { "[limits]\nmax_connections=0\n", MH_CONFIG_ERROR_BAD_VALUE,
      "[limits] max_connections", "out of range" },
    { "[limits]\nmax_connections=12abc\n", MH_CONFIG_ERROR_BAD_VALUE,
      "max_connections", "'12abc'" },
    { "[limits]\nmax_message_size=1.5G\n", MH_CONFIG_ERROR_BAD_VALUE,
      "max_message_size", "size" },
    { "[tls]\nmin_version=1.0\n", MH_CONFIG_ERROR_BAD_VALUE,
      "[tls] min_version", "1.2, 1.3" },
    { "[general]\ndata_dir=\n", MH_CONFIG_ERROR_BAD_VALUE,
      "[general] data_dir", "empty" },
    { "no section here\n", MH_CONFIG_ERROR_PARSE, "bad.conf", NULL },
    { "[general\n", MH_CONFIG_ERROR_PARSE, "bad.conf", NULL },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      MhConfig *c = mh_config_load_data (cases[i].text, -1, "bad.conf",
                                         &error);
      assert_null (c);
      mh_test_assert_error (error, MH_CONFIG_ERROR, cases[i].code,
                            cases[i].needle1, cases[i].needle2, NULL);
    }
}

static void
test_binary_and_huge_files_refused (void **state)
{
  g_autoptr (GError) error = NULL;
  const char nul[] = "[general]\ndata_dir=/a\0b\n";
  assert_null (mh_config_load_data (nul, sizeof nul - 1, "x.conf", &error));
  mh_test_assert_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE, "NUL",
                        NULL);
  g_clear_error (&error);
  const char latin1[] = "[general]\nhostname=caf\xe9\n";
  assert_null (mh_config_load_data (latin1, -1, "x.conf", &error));
  mh_test_assert_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE,
                        "UTF-8", NULL);
  g_clear_error (&error);
  gsize big = MH_LIMIT_CONFIG_FILE_MAX + 1;
  g_autofree char *huge = g_malloc (big);
  memset (huge, '#', big);
  assert_null (mh_config_load_data (huge, (gssize) big, "x.conf", &error));
  mh_test_assert_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE,
                        "larger", NULL);
}

static void
test_load_file_and_missing_file (void **state)
{
  g_autofree char *dir = mh_test_mkdtemp ();
  g_autofree char *path = mh_test_write_file (dir, "m.conf",
                                              "[pop3]\nenabled=true\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) c = mh_config_load (path, &error);
  assert_non_null (c);
  assert_true (mh_config_get_bool (c, "pop3", "enabled"));
  assert_string_equal (mh_config_get_source (c), path);

  g_autofree char *missing = g_build_filename (dir, "nope.conf", NULL);
  assert_null (mh_config_load (missing, &error));
  mh_test_assert_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_IO,
                        "nope.conf", NULL);
  mh_test_rmtree (dir);
}

static void
test_set_validates (void **state)
{
  g_autoptr (MhConfig) c = mh_config_new ();
  g_autoptr (GError) error = NULL;
  assert_true (mh_config_set (c, "general", "data_dir", "/tmp/x", &error));
  assert_string_equal (mh_config_get_string (c, "general", "data_dir"),
                       "/tmp/x");
  assert_false (mh_config_set (c, "imap", "idle_timeout", "-1", &error));
  mh_test_assert_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_BAD_VALUE,
                        "idle_timeout", NULL);
  g_clear_error (&error);
  assert_false (mh_config_set (c, "nope", "x", "1", &error));
  mh_test_assert_error (error, MH_CONFIG_ERROR,
                        MH_CONFIG_ERROR_UNKNOWN_SECTION, "[nope]", NULL);
}

static void
test_to_data_round_trips (void **state)
{
  g_autoptr (MhConfig) c = mh_config_new ();
  assert_true (mh_config_set (c, "smtp", "enabled", "true", NULL));
  g_autofree char *text = mh_config_to_data (c);
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) again = mh_config_load_data (text, -1, "dump",
                                                    &error);
  assert_null (error);
  assert_true (mh_config_get_bool (again, "smtp", "enabled"));
  assert_int_equal (mh_config_get_int (again, "limits", "idle_timeout"),
                    MH_LIMIT_IDLE_TIMEOUT_S);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),
    cmocka_unit_test (test_load_values),
    cmocka_unit_test (test_bad_input_names_what_is_wrong),
    cmocka_unit_test (test_binary_and_huge_files_refused),
    cmocka_unit_test (test_load_file_and_missing_file),
    cmocka_unit_test (test_set_validates),
    cmocka_unit_test (test_to_data_round_trips),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
