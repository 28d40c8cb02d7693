#include "mh-test.h"

#include <glib/gstdio.h>
#include <string.h>

char *
mh_test_mkdtemp (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("mhtest-XXXXXX", &error);
  if (dir == NULL)
    fail_msg ("mkdtemp: %s", error->message);
  return dir;
}

void
mh_test_rmtree (const char *path)
{
  if (path == NULL)
    return;
  GDir *d = g_dir_open (path, 0, NULL);
  if (d != NULL)
    {
      const char *name;
      while ((name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          if (g_file_test (child, G_FILE_TEST_IS_DIR)
              && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            mh_test_rmtree (child);
          else
            g_unlink (child);
        }
      g_dir_close (d);
    }
  g_rmdir (path);
}

char *
mh_test_write_file (const char *dir, const char *name, const char *text)
{
  char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents (path, text, -1, &error))
    fail_msg ("write %s: %s", path, error->message);
  return path;
}

void
mh_test_assert_error (const GError *error, GQuark domain, int code,
                      const char *needle, ...)
{
  if (error == NULL)
    fail_msg ("expected an error in %s code %d, got none",
              g_quark_to_string (domain), code);
  if (error->domain != domain || error->code != code)
    fail_msg ("expected %s code %d, got %s code %d: %s",
              g_quark_to_string (domain), code,
              g_quark_to_string (error->domain), error->code,
              error->message);
  va_list ap;
  va_start (ap, needle);
  for (const char *n = needle; n; n = va_arg (ap, const char *))
    if (strstr (error->message, n) == NULL)
      {
        va_end (ap);
        fail_msg ("error message '%s' lacks '%s'", error->message, n);
      }
  va_end (ap);
}
