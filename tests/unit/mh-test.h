/* Helpers shared by the unit tests. CMocka needs these includes in this
 * order. A failing assert longjmps past g_autoptr: leaks in failing tests
 * are expected (STYLE.md). */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <glib.h>
#include "mailhost/mailhost.h"

/* A fresh directory under $TMPDIR; removed (recursively) by
 * mh_test_rmtree(). */
char *mh_test_mkdtemp (void);
void mh_test_rmtree (const char *path);

/* Writes @text to @dir/@name and returns the full path. */
char *mh_test_write_file (const char *dir, const char *name,
                          const char *text);

/* Asserts that @error is set in @domain with @code, and that its message
 * contains every one of the NULL-terminated substrings. */
void mh_test_assert_error (const GError *error, GQuark domain, int code,
                           const char *needle, ...) G_GNUC_NULL_TERMINATED;
