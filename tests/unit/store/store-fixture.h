/* A fresh MhStore in a temporary directory for each CMocka test, and a
 * one-call delivery, shared by the store's unit tests. */
#pragma once

#include "mh-test.h"

typedef struct
{
  char *dir;
  char *maildir;
  char *index;
  MhStore *store;
} Fx;

static G_GNUC_UNUSED int
setup (void **state)
{
  Fx *fx = g_new0 (Fx, 1);
  fx->dir = mh_test_mkdtemp ();
  fx->maildir = g_build_filename (fx->dir, "mail", NULL);
  fx->index = g_build_filename (fx->dir, "index", NULL);
  g_autoptr (GError) error = NULL;
  fx->store = mh_store_open (fx->maildir, fx->index, MH_STORE_OPEN_CREATE,
                             &error);
  assert_null (error);
  assert_non_null (fx->store);
  *state = fx;
  return 0;
}

static G_GNUC_UNUSED int
teardown (void **state)
{
  Fx *fx = *state;
  mh_store_unref (fx->store);
  mh_test_rmtree (fx->dir);
  g_free (fx->dir);
  g_free (fx->maildir);
  g_free (fx->index);
  g_free (fx);
  return 0;
}

/* Delivers @text into @folder (NULL: INBOX) with @flags; its UID. */
static G_GNUC_UNUSED guint32
deliver (MhStore *s, const char *folder, const char *text,
         MhStoreFlags flags)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = g_bytes_new_static (text, strlen (text));
  guint32 uid = 0;
  gboolean ok = mh_store_deliver (s, folder, b, flags, NULL, 0, &uid, &error);
  if (!ok)
    fail_msg ("deliver: %s", error->message);
  return uid;
}
