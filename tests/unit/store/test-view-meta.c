/* Unit tests of lib/store/view-meta.c and the view's size/date columns:
 * the batch reader answers as mh_store_message_get() does, from one
 * snapshot; a file that vanished is still reported when its body is
 * read; repeated cached headers are all returned. */
#include "mh-test.h"
#include "store/store-private.h"
#include "store-fixture.h"

#include <glib/gstdio.h>
#include <string.h>

static const char msg1[] = "From: Alice <alice@example.org>\n"
                           "Subject: one\n"
                           "Date: Tue, 24 Nov 2026 10:00:00 +0000\n"
                           "\n"
                           "Body one\n";
static const char msg2[] = "From: Bob <bob@example.org>\r\n"
                           "Subject: two, longer\r\n"
                           "Delivered-To: a@example.org\r\n"
                           "Received: from a by b\r\n"
                           "Delivered-To: b@example.org\r\n"
                           "\r\n"
                           "Body two\r\nmore\r\n";

static void
test_view_columns_match_messages (void **state)
{
  Fx *fx = *state;
  guint32 u1 = deliver (fx->store, NULL, msg1, 0);
  guint32 u2 = deliver (fx->store, NULL, msg2, 0);
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, FALSE,
                                               &error);
  assert_non_null (v);
  assert_int_equal (mh_store_view_get_count (v), 2);
  guint32 uids[2] = { u1, u2 };
  for (guint i = 0; i < 2; i++)
    {
      assert_int_equal (mh_store_view_get_uid (v, i), uids[i]);
      g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, NULL,
                                                           uids[i], &error);
      assert_non_null (m);
      assert_int_equal (mh_store_view_get_rfc822_size (v, i),
                        mh_store_message_get_rfc822_size (m));
      assert_int_equal (mh_store_view_get_internal_date (v, i),
                        mh_store_message_get_internal_date (m));
      gint64 now = g_get_real_time () / G_USEC_PER_SEC;
      gint64 sd = mh_store_view_get_save_date (v, i);
      assert_true (sd > now - 60 && sd <= now + 1);
    }
  /* msg1 has 5 LF ends: RFC822.SIZE counts CRLF. */
  assert_int_equal (mh_store_view_get_rfc822_size (v, 0),
                    strlen (msg1) + 5);
}

static void
test_reader (void **state)
{
  Fx *fx = *state;
  guint32 u1 = deliver (fx->store, NULL, msg1, 0);
  guint32 u2 = deliver (fx->store, NULL, msg2, 0);
  g_autoptr (GError) error = NULL;
  g_autoptr (MhStoreReader) r = mh_store_reader_new (fx->store, "INBOX",
                                                     &error);
  assert_non_null (r);
  g_autoptr (MhStoreMessage) a = mh_store_reader_get (r, u2, &error);
  g_autoptr (MhStoreMessage) b = mh_store_message_get (fx->store, NULL, u2,
                                                       &error);
  assert_non_null (a);
  assert_non_null (b);
  assert_int_equal (mh_store_message_get_uid (a), u2);
  assert_string_equal (mh_store_message_get_envelope (a),
                       mh_store_message_get_envelope (b));
  assert_string_equal (mh_store_message_get_bodystructure (a, TRUE),
                       mh_store_message_get_bodystructure (b, TRUE));
  assert_int_equal (mh_store_message_get_rfc822_size (a),
                    mh_store_message_get_rfc822_size (b));
  assert_int_equal (mh_store_message_get_header_size (a),
                    mh_store_message_get_header_size (b));

  /* A repeated cached header: every copy, in order. */
  gboolean cached = FALSE;
  assert_string_equal (mh_store_message_get_header (a, "delivered-to",
                                                    &cached),
                       "Delivered-To: a@example.org\r\n"
                       "Delivered-To: b@example.org\r\n");
  assert_true (cached);

  /* Unknown UID: NOT_FOUND naming it. */
  assert_null (mh_store_reader_get (r, 999, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "999", NULL);
  g_clear_error (&error);

  /* The file vanishes under the reader: metadata from the snapshot,
   * but reading the body reports it gone. */
  g_autoptr (MhStoreView) v = mh_store_select (fx->store, NULL, FALSE,
                                               &error);
  assert_non_null (v);
  for (const char *sub = "new"; sub; sub = strcmp (sub, "new") ? NULL : "cur")
    {
      g_autofree char *d = g_build_filename (fx->maildir, sub, NULL);
      GDir *dir = g_dir_open (d, 0, NULL);
      const char *n;
      while (dir && (n = g_dir_read_name (dir)))
        {
          g_autofree char *p = g_build_filename (d, n, NULL);
          g_unlink (p);
        }
      if (dir)
        g_dir_close (dir);
    }
  g_autoptr (MhStoreMessage) c = mh_store_reader_get (r, u1, &error);
  assert_non_null (c);
  assert_null (mh_store_read (fx->store, NULL, u1, NULL, 0, -1, &error));
  assert_non_null (error);
  g_clear_error (&error);

  /* A new reader sees the folder as it now is. */
  g_autoptr (MhStoreReader) r2 = mh_store_reader_new (fx->store, NULL,
                                                      &error);
  assert_non_null (r2);
  assert_null (mh_store_reader_get (r2, u1, &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "no message", NULL);
  g_clear_error (&error);

  /* Unknown folder. */
  assert_null (mh_store_reader_new (fx->store, "Nope", &error));
  mh_test_assert_error (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND,
                        "Nope", NULL);
}

/* Writes a cache record as the first index version wrote it (no meta
 * version, one entry per copy of a header) for @u; returns the path of
 * its file. */
static char *
put_v1_record (Fx *fx, guint32 u)
{
  g_autoptr (GError) error = NULL;
  MDB_txn *txn;
  assert_int_equal (mh_store__txn_begin (fx->store, TRUE, &txn, &error), 0);
  g_autoptr (MhStoreFolder) f = mh_store__folder_load (fx->store, txn,
                                                       "INBOX", FALSE,
                                                       &error);
  assert_non_null (f);
  GVariantBuilder h, p;
  g_variant_builder_init (&h, G_VARIANT_TYPE ("a(ss)"));
  g_variant_builder_add (&h, "(ss)", "delivered-to", "Delivered-To: x\r\n");
  g_variant_builder_add (&h, "(ss)", "subject", "Subject: s\r\n");
  g_variant_builder_add (&h, "(ss)", "delivered-to", "Delivered-To: y\r\n");
  g_variant_builder_init (&p, G_VARIANT_TYPE ("a(sttt)"));
  g_autoptr (GVariant) c = g_variant_ref_sink (g_variant_new (
      "(tsssa(ss)a(sttt))", (guint64) 10, "NIL", "NIL", "NIL", &h, &p));
  guint8 key[8];
  mh_store__key_fid_uid (key, f->rec.id, u);
  MDB_val k = { 8, key };
  MDB_val v = { g_variant_get_size (c), (void *) g_variant_get_data (c) };
  assert_int_equal (mdb_put (txn, fx->store->db.cache, &k, &v, 0), 0);
  MsgRec r;
  g_autofree char *fn = NULL;
  assert_true (mh_store__msg_get (fx->store, txn, f->rec.id, u, &r, &fn));
  assert_true (mh_store__txn_commit (fx->store, txn, &error));
  return g_build_filename (fx->maildir, r.in_new ? "new" : "cur", fn, NULL);
}

/* A cache record of the first index version is recomputed from the file
 * when read; while its file cannot be read, the record still answers,
 * with every copy of a repeated header. */
static void
test_old_header_records (void **state)
{
  Fx *fx = *state;
  guint32 u = deliver (fx->store, NULL, msg2, 0);
  g_autoptr (GError) error = NULL;
  g_free (put_v1_record (fx, u));
  g_autoptr (MhStoreMessage) m = mh_store_message_get (fx->store, NULL, u,
                                                       &error);
  assert_non_null (m);
  assert_string_equal (mh_store_message_get_header (m, "Delivered-To", NULL),
                       "Delivered-To: a@example.org\r\n"
                       "Delivered-To: b@example.org\r\n");

  /* The file goes away after the reader's snapshot. */
  g_autofree char *path = put_v1_record (fx, u);
  MhStoreReader *r = mh_store_reader_new (fx->store, NULL, &error);
  assert_non_null (r);
  assert_int_equal (g_unlink (path), 0);
  g_autoptr (MhStoreMessage) o = mh_store_reader_get (r, u, &error);
  mh_store_reader_unref (r);
  assert_non_null (o);
  const char *a = mh_store_message_get_header (o, "Delivered-To", NULL);
  assert_string_equal (a, "Delivered-To: x\r\nDelivered-To: y\r\n");
  /* Asked again: the same string, the first stays valid. */
  assert_ptr_equal (mh_store_message_get_header (o, "delivered-to", NULL),
                    a);
  assert_string_equal (mh_store_message_get_header (o, "Subject", NULL),
                       "Subject: s\r\n");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_view_columns_match_messages, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_reader, setup, teardown),
    cmocka_unit_test_setup_teardown (test_old_header_records, setup,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
