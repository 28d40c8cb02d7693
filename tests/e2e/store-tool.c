/* A small driver of lib/store for the e2e interop test with Dovecot
 * (test-store-dovecot.py). Not installed.
 *
 *   store-tool MAILDIR INDEX create FOLDER
 *   store-tool MAILDIR INDEX deliver FOLDER FLAGS KEYWORDS   < message
 *       FLAGS: letters of S R F T D P or "-"; KEYWORDS: comma list or "-"
 *       prints the UID
 *   store-tool MAILDIR INDEX flags FOLDER UID +|-|= FLAGS KEYWORDS
 *   store-tool MAILDIR INDEX expunge FOLDER UID
 *   store-tool MAILDIR INDEX subscribe FOLDER
 *   store-tool MAILDIR INDEX dump
 *       one line per message: folder TAB uidvalidity TAB uid TAB flags
 *       TAB keywords (sorted, comma separated) TAB subject; then lines
 *       "subscribed TAB folder"
 */
#include <mailhost/mailhost.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static MhStoreFlags
parse_flags (const char *s)
{
  MhStoreFlags f = 0;
  for (; s && *s; s++)
    switch (*s)
      {
      case 'S': f |= MH_STORE_FLAG_SEEN; break;
      case 'R': f |= MH_STORE_FLAG_ANSWERED; break;
      case 'F': f |= MH_STORE_FLAG_FLAGGED; break;
      case 'T': f |= MH_STORE_FLAG_DELETED; break;
      case 'D': f |= MH_STORE_FLAG_DRAFT; break;
      case 'P': f |= MH_STORE_FLAG_FORWARDED; break;
      default: break;
      }
  return f;
}

static char *
flags_str (MhStoreFlags f)
{
  GString *s = g_string_new (NULL);
  if (f & MH_STORE_FLAG_DRAFT) g_string_append_c (s, 'D');
  if (f & MH_STORE_FLAG_FLAGGED) g_string_append_c (s, 'F');
  if (f & MH_STORE_FLAG_FORWARDED) g_string_append_c (s, 'P');
  if (f & MH_STORE_FLAG_ANSWERED) g_string_append_c (s, 'R');
  if (f & MH_STORE_FLAG_SEEN) g_string_append_c (s, 'S');
  if (f & MH_STORE_FLAG_DELETED) g_string_append_c (s, 'T');
  if (s->len == 0) g_string_append_c (s, '-');
  return g_string_free (s, FALSE);
}

static char **
parse_keywords (const char *s)
{
  if (s == NULL || strcmp (s, "-") == 0)
    return g_new0 (char *, 1);
  return g_strsplit (s, ",", -1);
}

static int
die (GError *e)
{
  fprintf (stderr, "store-tool: %s\n", e ? e->message : "failed");
  return 1;
}

static gint
cmp_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

int
main (int argc, char **argv)
{
  if (argc < 4)
    {
      fprintf (stderr, "usage: store-tool MAILDIR INDEX COMMAND ...\n");
      return 2;
    }
  GError *e = NULL;
  g_autoptr (MhStore) s = mh_store_open (argv[1], argv[2],
                                         MH_STORE_OPEN_CREATE, &e);
  if (s == NULL)
    return die (e);
  const char *cmd = argv[3];
  if (strcmp (cmd, "create") == 0 && argc == 5)
    return mh_store_folder_create (s, argv[4], &e) ? 0 : die (e);
  if (strcmp (cmd, "subscribe") == 0 && argc == 5)
    return mh_store_subscribe (s, argv[4], TRUE, &e) ? 0 : die (e);
  if (strcmp (cmd, "deliver") == 0 && argc == 7)
    {
      g_autofree char *data = NULL;
      gsize len = 0;
      g_autoptr (GIOChannel) in = g_io_channel_unix_new (0);
      g_io_channel_set_encoding (in, NULL, NULL);
      if (g_io_channel_read_to_end (in, &data, &len, &e) != G_IO_STATUS_NORMAL)
        return die (e);
      g_autoptr (GBytes) b = g_bytes_new (data, len);
      g_auto (GStrv) kw = parse_keywords (argv[6]);
      guint32 uid = 0;
      if (!mh_store_deliver (s, argv[4], b, parse_flags (argv[5]),
                             (const char *const *) kw, 0, &uid, &e))
        return die (e);
      printf ("%u\n", uid);
      return 0;
    }
  if (strcmp (cmd, "flags") == 0 && argc == 9)
    {
      guint32 uid = (guint32) atoi (argv[5]);
      MhStoreFlagOp op = argv[6][0] == '+'   ? MH_STORE_FLAGS_ADD
                         : argv[6][0] == '-' ? MH_STORE_FLAGS_REMOVE
                                             : MH_STORE_FLAGS_REPLACE;
      g_auto (GStrv) kw = parse_keywords (argv[8]);
      return mh_store_set_flags (s, argv[4], &uid, 1, op,
                                 parse_flags (argv[7]),
                                 (const char *const *) kw, 0, NULL, &e)
               ? 0
               : die (e);
    }
  if (strcmp (cmd, "expunge") == 0 && argc == 6)
    {
      guint32 uid = (guint32) atoi (argv[5]);
      return mh_store_expunge (s, argv[4], &uid, 1, FALSE, NULL, &e)
               ? 0
               : die (e);
    }
  if (strcmp (cmd, "dump") == 0 && argc == 4)
    {
      g_auto (GStrv) folders = mh_store_folder_list (s, &e);
      if (folders == NULL)
        return die (e);
      for (int i = 0; folders[i]; i++)
        {
          g_autoptr (MhStoreView) v = mh_store_select (s, folders[i], FALSE,
                                                       &e);
          if (v == NULL)
            return die (e);
          MhStoreStatus st;
          mh_store_view_get_status (v, &st);
          printf ("folder\t%s\t%u\t%u\n", folders[i], st.uidvalidity,
                  st.uidnext);
          for (guint j = 0; j < mh_store_view_get_count (v); j++)
            {
              guint32 uid = mh_store_view_get_uid (v, j);
              g_autofree char *fl = flags_str (mh_store_view_get_flags (v, j));
              g_auto (GStrv) kw = mh_store_view_get_keywords (v, j);
              qsort (kw, g_strv_length (kw), sizeof (char *),
                     (int (*) (const void *, const void *)) cmp_str);
              g_autofree char *kws = kw[0] ? g_strjoinv (",", kw)
                                           : g_strdup ("-");
              g_autoptr (MhStoreMessage) m = mh_store_message_get (
                s, folders[i], uid, &e);
              if (m == NULL)
                return die (e);
              gboolean cached;
              const char *subj = mh_store_message_get_header (m, "Subject",
                                                              &cached);
              g_autofree char *sv = g_strdup (subj ? subj + 8 : " ");
              g_strstrip (sv);
              printf ("%s\t%u\t%u\t%s\t%s\t%s\n", folders[i], st.uidvalidity,
                      uid, fl, kws, sv);
            }
        }
      g_auto (GStrv) subs = mh_store_subscriptions (s, &e);
      for (int i = 0; subs && subs[i]; i++)
        printf ("subscribed\t%s\n", subs[i]);
      return 0;
    }
  fprintf (stderr, "store-tool: bad command or arguments\n");
  return 2;
}
