/* libmailhost: IMAP account-level commands (lib/server/imap-account.c).
 *
 * QUOTA (RFC 9208), METADATA (RFC 5464) and NOTIFY (RFC 5465): state
 * that belongs to the account rather than to one message. Split out of
 * imap-message.c so each file has one owner. Each handler runs on a
 * worker thread with the session (imap-private.h); it writes untagged
 * lines and then the tagged line into @out and never touches the engine.
 *
 * METADATA lives in DATA/index/DOMAIN/USER/imap-metadata, a GVariant
 * a{say} ("MAILBOX\tENTRY" -> value; "" is the server), replaced
 * atomically (write, fsync, rename) under an flock()ed lock file so
 * concurrent sessions of one account do not lose each other's updates.
 * Entry names are case-insensitive (RFC 5464 3.2) and kept lower-case.
 *
 * Limits: metadata value size, entry count and total bytes
 * (MH_LIMIT_IMAP_METADATA_*).
 */
#include "imap-private.h"
#include "core/core-private.h"
#include "mailhost/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LOG_SVC "imap"

static gboolean
condstore_on (MhImapSession *s)
{
  return (s->enabled
          & (MH_IMAP_ENABLED_CONDSTORE | MH_IMAP_ENABLED_QRESYNC))
         != 0;
}

/* ---- QUOTA (RFC 9208) -------------------------------------------------- */

/* Usage and limits of the account; FALSE after writing NO. */
static gboolean
quota_usage (MhImapSession *s, const MhImapCommand *cmd, GString *out,
             MhQuotaUsage *u)
{
  g_autoptr (GError) error = NULL;
  memset (u, 0, sizeof *u);
  u->version = 1;
  if (s->quota != NULL)
    {
      if (mh_quota_get_account (s->quota, s->account, u, &error))
        return TRUE;
      mh_log_warning (LOG_SVC, s->account, NULL, "quota: %s",
                      error->message);
      g_clear_error (&error);
    }
  /* No quota layer in the session (the delivery layer keeps its own):
   * usage from the index, limits as lib/quota resolves them (the
   * account's quota_* settings, else its domain's account_quota_*).
   * Enforcement does not depend on this: the store's hook does it. */
  if (!mh_store_get_usage (s->store, &u->bytes, &u->messages, &error))
    {
      mh_imap__tagged_store_error (out, cmd, error);
      return FALSE;
    }
  if (s->directory != NULL && s->account != NULL)
    {
      g_autoptr (MhAccountInfo) a
          = mh_directory_account_lookup (s->directory, s->account, NULL);
      g_autoptr (MhDomainInfo) d
          = a ? mh_directory_domain_lookup (
                    s->directory, mh_account_info_get_ascii_domain (a), NULL)
              : NULL;
      GVariant *as = a ? mh_account_info_get_settings (a) : NULL;
      GVariant *ds = d ? mh_domain_info_get_settings (d) : NULL;
      if (!(as && g_variant_lookup (as, "quota_bytes", "t", &u->bytes_limit))
          && ds)
        g_variant_lookup (ds, "account_quota_bytes", "t", &u->bytes_limit);
      if (!(as
            && g_variant_lookup (as, "quota_messages", "t",
                                 &u->messages_limit))
          && ds)
        g_variant_lookup (ds, "account_quota_messages", "t",
                          &u->messages_limit);
    }
  return TRUE;
}

static gboolean
quota_has_limits (const MhQuotaUsage *u)
{
  return u->bytes_limit > 0 || u->messages_limit > 0;
}

/* "* QUOTA "" (STORAGE used limit MESSAGE used limit)": only the limited
 * resources (RFC 9208 5.1); STORAGE in units of 1024 octets. */
static void
append_quota (GString *out, const MhQuotaUsage *u)
{
  g_string_append (out, "* QUOTA \"\" (");
  if (u->bytes_limit > 0)
    g_string_append_printf (out,
                            "STORAGE %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                            (u->bytes + 1023) / 1024, u->bytes_limit / 1024);
  if (u->messages_limit > 0)
    g_string_append_printf (out,
                            "%sMESSAGE %" G_GUINT64_FORMAT
                            " %" G_GUINT64_FORMAT,
                            u->bytes_limit > 0 ? " " : "", u->messages,
                            u->messages_limit);
  g_string_append (out, ")\r\n");
}

MhImapRun
mh_imap__cmd_quota (MhImapSession *s, const MhImapCommand *cmd,
                    GString *out)
{
  MhQuotaUsage u;

  switch (cmd->kind)
    {
    case MH_IMAP_CMD_SETQUOTA:
      /* RFC 9208 4.3: users may not change their own limits; admins use
       * mhctl quota set. */
      mh_imap__tagged (out, cmd, "NO", "NOPERM",
                       "Quota limits are set by the administrator");
      return MH_IMAP_RUN_DONE;
    case MH_IMAP_CMD_GETQUOTA:
      if (cmd->mailbox != NULL && cmd->mailbox[0] != '\0')
        {
          mh_imap__tagged (out, cmd, "NO", "NONEXISTENT",
                           "No such quota root (the only one is \"\")");
          return MH_IMAP_RUN_DONE;
        }
      if (!quota_usage (s, cmd, out, &u))
        return MH_IMAP_RUN_DONE;
      if (!quota_has_limits (&u))
        {
          mh_imap__tagged (out, cmd, "NO", "NONEXISTENT",
                           "No quota limits on this account");
          return MH_IMAP_RUN_DONE;
        }
      append_quota (out, &u);
      mh_imap__tagged (out, cmd, "OK", NULL, "Getquota completed");
      return MH_IMAP_RUN_DONE;
    case MH_IMAP_CMD_GETQUOTAROOT:
      {
        g_autofree char *why = NULL;
        g_autofree char *f = mh_imap__folder_from_wire (
            s, cmd->mailbox ? cmd->mailbox : "", &why);
        if (f == NULL)
          {
            mh_imap__tagged (out, cmd, "NO", "CANNOT",
                             why ? why : "Invalid mailbox name");
            return MH_IMAP_RUN_DONE;
          }
        if (!mh_store_folder_exists (s->store, f))
          {
            mh_imap__tagged (out, cmd, "NO", "NONEXISTENT",
                             "Mailbox doesn't exist");
            return MH_IMAP_RUN_DONE;
          }
        if (!quota_usage (s, cmd, out, &u))
          return MH_IMAP_RUN_DONE;
        g_string_append (out, "* QUOTAROOT ");
        mh_imap__append_folder (s, out, f);
        if (quota_has_limits (&u))
          {
            g_string_append (out, " \"\"\r\n");
            append_quota (out, &u);
          }
        else
          g_string_append (out, "\r\n");
        mh_imap__tagged (out, cmd, "OK", NULL, "Getquotaroot completed");
        return MH_IMAP_RUN_DONE;
      }
    default:
      mh_imap__tagged (out, cmd, "BAD", NULL, "Not a quota command");
      return MH_IMAP_RUN_DONE;
    }
}

/* ---- METADATA (RFC 5464) ----------------------------------------------- */

/* DATA/index/DOMAIN/USER/imap-metadata (and .lock); NULL for an account
 * name without '@'. */
static char *
metadata_path (MhImapSession *s, const char *suffix)
{
  const char *at = s->account ? strrchr (s->account, '@') : NULL;
  if (at == NULL || at == s->account || at[1] == '\0' || s->data_dir == NULL)
    return NULL;
  g_autofree char *user = g_strndup (s->account, (gsize) (at - s->account));
  g_autofree char *domain = g_ascii_strdown (at + 1, -1);
  if (strchr (user, '/') || strchr (domain, '/') || strcmp (user, "..") == 0
      || strcmp (domain, "..") == 0 || strcmp (user, ".") == 0
      || strcmp (domain, ".") == 0)
    return NULL;
  g_autofree char *name = g_strconcat ("imap-metadata", suffix, NULL);
  return g_build_filename (s->data_dir, "index", domain, user, name, NULL);
}

/* Key: "MAILBOX\tentry" ("" for the server). */
static int
key_cmp (gconstpointer a, gconstpointer b, gpointer unused)
{
  return strcmp (a, b);
}

static GTree *
metadata_new (void)
{
  return g_tree_new_full (key_cmp, NULL, g_free,
                          (GDestroyNotify) g_bytes_unref);
}

static GTree *
metadata_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  GTree *t = metadata_new ();
  g_autoptr (GError) local = NULL;

  if (!g_file_get_contents (path, &data, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return t;
      g_propagate_error (error, g_steal_pointer (&local));
      g_tree_unref (t);
      return NULL;
    }
  g_autoptr (GBytes) b = g_bytes_new_take (g_steal_pointer (&data), len);
  g_autoptr (GVariant) v
      = g_variant_new_from_bytes (G_VARIANT_TYPE ("a{say}"), b, FALSE);
  /* The file is ours, but a torn or foreign file must not crash us:
   * normal form checks every offset. */
  g_autoptr (GVariant) nv = g_variant_get_normal_form (v);
  GVariantIter it;
  const char *key;
  GVariant *val;
  g_variant_iter_init (&it, nv);
  while (g_variant_iter_next (&it, "{&s@ay}", &key, &val))
    {
      gsize n = 0;
      const void *p = g_variant_get_fixed_array (val, &n, 1);
      g_tree_insert (t, g_strdup (key), g_bytes_new (p, n));
      g_variant_unref (val);
    }
  return t;
}

static gboolean
metadata_save_one (gpointer key, gpointer value, gpointer data)
{
  GVariantBuilder *b = data;
  gsize n = 0;
  const void *p = g_bytes_get_data (value, &n);
  g_variant_builder_add (
      b, "{s@ay}", (const char *) key,
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, p, n, 1));
  return FALSE;
}

static gboolean
metadata_save (const char *path, GTree *t, GError **error)
{
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{say}"));
  g_tree_foreach (t, metadata_save_one, &b);
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_builder_end (&b));
  return g_file_set_contents_full (path, g_variant_get_data (v),
                                   (gssize) g_variant_get_size (v),
                                   G_FILE_SET_CONTENTS_CONSISTENT
                                       | G_FILE_SET_CONTENTS_DURABLE,
                                   0600, error);
}

/* RFC 5464 3.2: "/private/..." or "/shared/...", no "*" or "%", no empty
 * component, no trailing "/", printable ASCII. Lower-cased into *out.
 * @top_ok: "/private" and "/shared" alone (GETMETADATA with DEPTH). */
static gboolean
metadata_entry_valid (const char *e, gboolean top_ok, char **out, char **why)
{
  if (g_ascii_strncasecmp (e, "/private/", 9) != 0
      && g_ascii_strncasecmp (e, "/shared/", 8) != 0
      && !(top_ok && (g_ascii_strcasecmp (e, "/private") == 0
                      || g_ascii_strcasecmp (e, "/shared") == 0)))
    {
      *why = g_strdup_printf ("Entry %s must start with /private/ or "
                              "/shared/",
                              e);
      return FALSE;
    }
  gsize len = strlen (e);
  if (len > MH_LIMIT_IMAP_METADATA_ENTRY_MAX)
    {
      *why = g_strdup ("Entry name too long");
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) e[i];
      if (c <= 0x20 || c >= 0x7f || c == '*' || c == '%'
          || (c == '/' && (e[i + 1] == '/' || e[i + 1] == '\0')))
        {
          *why = g_strdup_printf ("Invalid entry name %s", e);
          return FALSE;
        }
    }
  *out = g_ascii_strdown (e, -1);
  return TRUE;
}

/* The store name of the METADATA mailbox ("" for the server), or NULL
 * after writing NO. */
static char *
metadata_mailbox (MhImapSession *s, const MhImapCommand *cmd, GString *out)
{
  if (cmd->mailbox == NULL || cmd->mailbox[0] == '\0')
    return g_strdup ("");
  g_autofree char *why = NULL;
  char *f = mh_imap__folder_from_wire (s, cmd->mailbox, &why);
  if (f == NULL)
    {
      mh_imap__tagged (out, cmd, "NO", "CANNOT",
                       why ? why : "Invalid mailbox name");
      return NULL;
    }
  if (!mh_store_folder_exists (s->store, f))
    {
      mh_imap__tagged (out, cmd, "NO", "NONEXISTENT",
                       "Mailbox doesn't exist");
      g_free (f);
      return NULL;
    }
  if (g_ascii_strcasecmp (f, "INBOX") == 0)
    {
      g_free (f);
      f = g_strdup ("INBOX");
    }
  return f;
}

static void
metadata_append_mailbox (MhImapSession *s, GString *out, const char *mbox)
{
  if (mbox[0] == '\0')
    g_string_append (out, "\"\"");
  else
    mh_imap__append_folder (s, out, mbox);
}

typedef struct
{
  const char *prefix; /* "MBOX\t/entry/" */
  gsize plen;
  gint depth;
  guint64 maxsize;
  guint64 longest;
  GString *line;
  guint n;
  gboolean utf8;
} MetaWalk;

static void
meta_emit (MetaWalk *w, const char *entry, GBytes *value)
{
  gsize n = value ? g_bytes_get_size (value) : 0;
  if (value != NULL && w->maxsize > 0 && n > w->maxsize)
    {
      /* RFC 5464 4.2.1: left out; the tagged OK says how long. */
      w->longest = MAX (w->longest, n);
      return;
    }
  if (w->n++ > 0)
    g_string_append_c (w->line, ' ');
  g_string_append (w->line, entry);
  g_string_append_c (w->line, ' ');
  if (value == NULL)
    g_string_append (w->line, "NIL");
  else
    {
      const char *p = g_bytes_get_data (value, NULL);
      if (memchr (p, '\0', n) != NULL)
        {
          /* RFC 5464 5: binary values travel as literal8. */
          g_string_append_printf (w->line, "~{%" G_GSIZE_FORMAT "}\r\n", n);
          g_string_append_len (w->line, p, (gssize) n);
        }
      else
        mh_imap_append_nstring (w->line, p, (gssize) n, w->utf8);
    }
}

/* Emits the entries below w->prefix (sorted keys: a lower-bound walk). */
static void
meta_walk (MetaWalk *w, GTree *t)
{
  for (GTreeNode *nd = g_tree_lower_bound (t, w->prefix); nd != NULL;
       nd = g_tree_node_next (nd))
    {
      const char *k = g_tree_node_key (nd);
      if (strncmp (k, w->prefix, w->plen) != 0)
        break;
      if (w->depth == 1 && strchr (k + w->plen, '/') != NULL)
        continue;
      meta_emit (w, strchr (k, '\t') + 1, g_tree_node_value (nd));
    }
}

static void
metadata_get (MhImapSession *s, const MhImapCommand *cmd, GString *out,
              GTree *t, const char *mbox)
{
  MetaWalk w = { .depth = cmd->metadata_depth,
                 .maxsize = cmd->metadata_maxsize,
                 .line = g_string_new (NULL),
                 .utf8 = mh_imap__utf8 (s) };
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; cmd->strings != NULL && cmd->strings[i] != NULL; i++)
    {
      g_autofree char *entry = NULL;
      g_autofree char *why = NULL;
      if (!metadata_entry_valid (cmd->strings[i], TRUE, &entry, &why))
        {
          mh_imap__tagged (out, cmd, "BAD", NULL, why);
          g_string_free (w.line, TRUE);
          return;
        }
      gboolean dup = FALSE;
      for (guint k = 0; k < seen->len && !dup; k++)
        dup = strcmp (seen->pdata[k], entry) == 0;
      if (dup)
        continue;
      g_ptr_array_add (seen, g_strdup (entry));
      g_autofree char *key = g_strconcat (mbox, "\t", entry, NULL);
      GBytes *v = g_tree_lookup (t, key);
      if (v == NULL && mbox[0] == '\0'
          && strcmp (entry, "/shared/admin") == 0)
        {
          /* RFC 5464 3.2.1.1: how to reach the administrator. */
          const char *at = strrchr (s->account ? s->account : "", '@');
          g_autofree char *admin = g_strdup_printf (
              "mailto:postmaster@%s", at ? at + 1 : "localhost");
          g_autoptr (GBytes) ab = g_bytes_new (admin, strlen (admin));
          meta_emit (&w, entry, ab);
        }
      else if (v != NULL || w.depth == 0)
        meta_emit (&w, entry, v); /* NIL for a missing entry */
      if (w.depth != 0)
        {
          g_autofree char *prefix = g_strconcat (key, "/", NULL);
          w.prefix = prefix;
          w.plen = strlen (prefix);
          meta_walk (&w, t);
          w.prefix = NULL;
        }
    }
  if (w.n > 0)
    {
      g_string_append (out, "* METADATA ");
      metadata_append_mailbox (s, out, mbox);
      g_string_append (out, " (");
      g_string_append_len (out, w.line->str, (gssize) w.line->len);
      g_string_append (out, ")\r\n");
    }
  g_string_free (w.line, TRUE);
  if (w.longest > 0)
    {
      g_autofree char *code = g_strdup_printf (
          "METADATA LONGENTRIES %" G_GUINT64_FORMAT, w.longest);
      mh_imap__tagged (out, cmd, "OK", code, "Getmetadata completed");
    }
  else
    mh_imap__tagged (out, cmd, "OK", NULL, "Getmetadata completed");
}

typedef struct
{
  guint64 total;
  guint count;
} MetaCount;

static gboolean
meta_count_one (gpointer key, gpointer value, gpointer data)
{
  MetaCount *c = data;
  c->count++;
  c->total += strlen (key) + g_bytes_get_size (value);
  return FALSE;
}

static void
metadata_set (MhImapSession *s, const MhImapCommand *cmd, GString *out,
              const char *mbox)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = metadata_path (s, "");
  g_autofree char *lock = metadata_path (s, ".lock");

  if (path == NULL)
    {
      mh_imap__tagged (out, cmd, "NO", "SERVERBUG",
                       "No metadata storage for this account");
      return;
    }
  /* Pairs of entry and value; a NIL value is NULL, so the array is
   * 2 * pairs + 1 long and is walked by pairs, not by g_strv_length. */
  guint n = 0;
  while (cmd->strings != NULL && cmd->strings[n] != NULL)
    n += 2;
  if (n == 0)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL,
                       "SETMETADATA needs entry and value pairs");
      return;
    }
  /* Validate everything first: the command is atomic (RFC 5464 4.3). */
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i += 2)
    {
      char *entry = NULL;
      g_autofree char *why = NULL;
      if (!metadata_entry_valid (cmd->strings[i], FALSE, &entry, &why))
        {
          mh_imap__tagged (out, cmd, "BAD", NULL, why);
          return;
        }
      g_ptr_array_add (names, entry);
      if (mbox[0] == '\0' && strcmp (entry, "/shared/admin") == 0)
        {
          mh_imap__tagged (out, cmd, "NO", "NOPERM",
                           "/shared/admin is set by the administrator");
          return;
        }
      const char *val = cmd->strings[i + 1];
      if (val != NULL && strlen (val) > MH_LIMIT_IMAP_METADATA_VALUE_MAX)
        {
          g_autofree char *code
              = g_strdup_printf ("METADATA MAXSIZE %u",
                                 (guint) MH_LIMIT_IMAP_METADATA_VALUE_MAX);
          mh_imap__tagged (out, cmd, "NO", code, "Value too long");
          return;
        }
    }

  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      mh_imap__tagged_printf (out, cmd, "NO", "SERVERBUG", "Cannot create %s: %s",
                     dir, g_strerror (errno));
      return;
    }
  int fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock (fd, LOCK_EX) != 0)
    {
      mh_imap__tagged_printf (out, cmd, "NO", "SERVERBUG", "Cannot lock %s: %s", lock,
                     g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return;
    }
  GTree *t = metadata_load (path, &error);
  if (t == NULL)
    {
      close (fd);
      mh_imap__tagged_printf (out, cmd, "NO", "SERVERBUG", "Cannot read metadata: %s",
                     error->message);
      return;
    }
  for (guint i = 0; i < n; i += 2)
    {
      char *key = g_strconcat (mbox, "\t", names->pdata[i / 2], NULL);
      const char *val = cmd->strings[i + 1];
      if (val == NULL)
        {
          g_tree_remove (t, key);
          g_free (key);
        }
      else
        g_tree_insert (t, key, g_bytes_new (val, strlen (val)));
    }
  MetaCount c = { 0 };
  g_tree_foreach (t, meta_count_one, &c);
  if (c.count > MH_LIMIT_IMAP_METADATA_ENTRIES_MAX
      || c.total > MH_LIMIT_IMAP_METADATA_TOTAL_MAX)
    {
      /* RFC 5464 4.3: [METADATA TOOMANY], nothing changed. */
      g_tree_unref (t);
      close (fd);
      mh_imap__tagged (out, cmd, "NO", "METADATA TOOMANY",
                       "Too many metadata entries");
      return;
    }
  gboolean ok = metadata_save (path, t, &error);
  g_tree_unref (t);
  close (fd); /* drops the lock */
  if (!ok)
    {
      mh_imap__tagged_printf (out, cmd, "NO", "SERVERBUG", "Cannot save metadata: %s",
                     error->message);
      return;
    }
  mh_imap__tagged (out, cmd, "OK", NULL, "Setmetadata completed");
}

MhImapRun
mh_imap__cmd_metadata (MhImapSession *s, const MhImapCommand *cmd,
                       GString *out)
{
  g_autofree char *mbox = metadata_mailbox (s, cmd, out);
  if (mbox == NULL)
    return MH_IMAP_RUN_DONE;
  if (cmd->kind == MH_IMAP_CMD_SETMETADATA)
    {
      metadata_set (s, cmd, out, mbox);
      return MH_IMAP_RUN_DONE;
    }
  if (cmd->strings == NULL || cmd->strings[0] == NULL)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL, "Missing entry names");
      return MH_IMAP_RUN_DONE;
    }
  g_autoptr (GError) error = NULL;
  g_autofree char *path = metadata_path (s, "");
  GTree *t = path ? metadata_load (path, &error) : metadata_new ();
  if (t == NULL)
    {
      mh_imap__tagged_printf (out, cmd, "NO", "SERVERBUG", "Cannot read metadata: %s",
                     error->message);
      return MH_IMAP_RUN_DONE;
    }
  metadata_get (s, cmd, out, t, mbox);
  g_tree_unref (t);
  return MH_IMAP_RUN_DONE;
}

/* ---- NOTIFY (RFC 5465) ------------------------------------------------- */

void
mh_imap__notify_free (MhImapNotify *n)
{
  if (n == NULL)
    return;
  g_clear_pointer (&n->groups, g_ptr_array_unref);
  g_free (n);
}

static void
notify_group_free (gpointer p)
{
  MhImapNotifyGroup *g = p;
  g_strfreev (g->mailboxes);
  g_strfreev (g->message_new_atts);
  g_free (g);
}

/* A tiny tokenizer over NOTIFY's raw argument text: atoms, quoted
 * strings, "(" and ")". Literals were already folded in by the engine
 * only as raw text, so a mailbox given as a literal is not supported:
 * such a command gets BAD naming it. */
typedef struct
{
  const char *p;
  const char *end;
} Tok;

static void
tok_ws (Tok *t)
{
  while (t->p < t->end && *t->p == ' ')
    t->p++;
}

static gboolean
tok_char (Tok *t, char c)
{
  tok_ws (t);
  if (t->p < t->end && *t->p == c)
    {
      t->p++;
      return TRUE;
    }
  return FALSE;
}

/* An atom or a quoted string; NULL if neither is next. */
static char *
tok_string (Tok *t)
{
  tok_ws (t);
  if (t->p >= t->end)
    return NULL;
  if (*t->p == '"')
    {
      GString *s = g_string_new (NULL);
      t->p++;
      while (t->p < t->end && *t->p != '"')
        {
          if (*t->p == '\\' && t->p + 1 < t->end)
            t->p++;
          g_string_append_c (s, *t->p++);
        }
      if (t->p >= t->end)
        {
          g_string_free (s, TRUE);
          return NULL;
        }
      t->p++;
      return g_string_free (s, FALSE);
    }
  const char *st = t->p;
  while (t->p < t->end && *t->p != ' ' && *t->p != '(' && *t->p != ')'
         && *t->p != '"' && *t->p != '{')
    t->p++;
  if (t->p == st)
    return NULL;
  return g_strndup (st, (gsize) (t->p - st));
}

#define NOTIFY_SUPPORTED                                                      \
  "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "     \
  "MailboxMetadataChange ServerMetadataChange"

static const struct
{
  const char *name;
  MhImapNotifyEvents ev;
} notify_events[] = {
  { "MessageNew", MH_IMAP_NOTIFY_MESSAGE_NEW },
  { "MessageExpunge", MH_IMAP_NOTIFY_MESSAGE_EXPUNGE },
  { "FlagChange", MH_IMAP_NOTIFY_FLAG_CHANGE },
  { "MailboxName", MH_IMAP_NOTIFY_MAILBOX_NAME },
  { "SubscriptionChange", MH_IMAP_NOTIFY_SUBSCRIPTION_CHANGE },
  { "MailboxMetadataChange", MH_IMAP_NOTIFY_MAILBOX_METADATA_CHANGE },
  { "ServerMetadataChange", MH_IMAP_NOTIFY_SERVER_METADATA_CHANGE },
};

/* Parses one "(filter events)" group. On error sets *bad (BAD text) or
 * *badevent (NO [BADEVENT]). */
static MhImapNotifyGroup *
notify_parse_group (MhImapSession *s, Tok *t, char **bad, gboolean *badevent)
{
  g_autofree char *filter = tok_string (t);
  MhImapNotifyGroup *g = g_new0 (MhImapNotifyGroup, 1);
  g_autoptr (GPtrArray) boxes = g_ptr_array_new_with_free_func (g_free);

  if (filter == NULL)
    goto syntax;
  if (g_ascii_strcasecmp (filter, "SELECTED") == 0)
    g->filter = MH_IMAP_NOTIFY_SELECTED;
  else if (g_ascii_strcasecmp (filter, "SELECTED-DELAYED") == 0)
    g->filter = MH_IMAP_NOTIFY_SELECTED_DELAYED;
  else if (g_ascii_strcasecmp (filter, "INBOXES") == 0)
    g->filter = MH_IMAP_NOTIFY_INBOXES;
  else if (g_ascii_strcasecmp (filter, "PERSONAL") == 0)
    g->filter = MH_IMAP_NOTIFY_PERSONAL;
  else if (g_ascii_strcasecmp (filter, "SUBSCRIBED") == 0)
    g->filter = MH_IMAP_NOTIFY_SUBSCRIBED;
  else if (g_ascii_strcasecmp (filter, "SUBTREE") == 0
           || g_ascii_strcasecmp (filter, "MAILBOXES") == 0)
    {
      g->filter = g_ascii_toupper (filter[0]) == 'S' ? MH_IMAP_NOTIFY_SUBTREE
                                                     : MH_IMAP_NOTIFY_MAILBOXES;
      gboolean list = tok_char (t, '(');
      do
        {
          g_autofree char *wire = tok_string (t);
          g_autofree char *why = NULL;
          if (wire == NULL)
            {
              if (list && boxes->len > 0)
                break;
              goto syntax;
            }
          char *f = mh_imap__folder_from_wire (s, wire, &why);
          if (f == NULL)
            {
              *bad = g_strdup_printf ("NOTIFY: bad mailbox name %s: %s", wire,
                                      why ? why : "invalid");
              goto fail;
            }
          g_ptr_array_add (boxes, f);
        }
      while (list && !tok_char (t, ')'));
      g_ptr_array_add (boxes, NULL);
      g->mailboxes = (char **) g_ptr_array_free (g_steal_pointer (&boxes),
                                                 FALSE);
    }
  else
    {
      *bad = g_strdup_printf ("NOTIFY: unknown mailbox filter %s", filter);
      goto fail;
    }

  if (tok_char (t, '('))
    {
      while (!tok_char (t, ')'))
        {
          g_autofree char *ev = tok_string (t);
          if (ev == NULL)
            goto syntax;
          guint k;
          for (k = 0; k < G_N_ELEMENTS (notify_events); k++)
            if (g_ascii_strcasecmp (ev, notify_events[k].name) == 0)
              break;
          if (k == G_N_ELEMENTS (notify_events))
            {
              /* AnnotationChange (no ANNOTATE here) and unknown events:
               * RFC 5465 5: NO [BADEVENT (what we support)]. */
              *badevent = TRUE;
              goto fail;
            }
          g->events |= notify_events[k].ev;
          if (notify_events[k].ev == MH_IMAP_NOTIFY_MESSAGE_NEW
              && tok_char (t, '('))
            {
              /* MessageNew (fetch-att ...): kept as simple item names. */
              g_autoptr (GPtrArray) atts = g_ptr_array_new_with_free_func (
                  g_free);
              while (!tok_char (t, ')'))
                {
                  char *a = tok_string (t);
                  if (a == NULL)
                    goto syntax;
                  g_ptr_array_add (atts, a);
                }
              g_strfreev (g->message_new_atts);
              g_ptr_array_add (atts, NULL);
              g->message_new_atts
                  = (char **) g_ptr_array_free (g_steal_pointer (&atts), FALSE);
            }
        }
    }
  else
    {
      g_autofree char *none = tok_string (t);
      if (none == NULL || g_ascii_strcasecmp (none, "NONE") != 0)
        goto syntax;
    }
  return g;

syntax:
  *bad = g_strdup ("NOTIFY: syntax error in an event group");
fail:
  notify_group_free (g);
  return NULL;
}

MhImapRun
mh_imap__cmd_notify (MhImapSession *s, const MhImapCommand *cmd,
                     GString *out)
{
  const char *arg = cmd->strings ? cmd->strings[0] : NULL;
  Tok t = { arg ? arg : "", (arg ? arg : "") + (arg ? strlen (arg) : 0) };
  g_autofree char *verb = tok_string (&t);

  if (verb != NULL && g_ascii_strcasecmp (verb, "NONE") == 0)
    {
      tok_ws (&t);
      if (t.p != t.end)
        {
          mh_imap__tagged (out, cmd, "BAD", NULL,
                           "NOTIFY NONE takes no arguments");
          return MH_IMAP_RUN_DONE;
        }
      g_clear_pointer (&s->notify, mh_imap__notify_free);
      mh_imap__tagged (out, cmd, "OK", NULL, "NOTIFY completed");
      return MH_IMAP_RUN_DONE;
    }
  if (verb == NULL || g_ascii_strcasecmp (verb, "SET") != 0)
    {
      mh_imap__tagged (out, cmd, "BAD", NULL,
                       "NOTIFY needs SET or NONE");
      return MH_IMAP_RUN_DONE;
    }

  MhImapNotify *n = g_new0 (MhImapNotify, 1);
  n->groups = g_ptr_array_new_with_free_func (notify_group_free);
  g_autofree char *bad = NULL;
  gboolean badevent = FALSE;
  gboolean have_selected = FALSE;
  const char *save = t.p;
  g_autofree char *word = tok_string (&t);
  if (word != NULL && g_ascii_strcasecmp (word, "STATUS") == 0)
    n->status = TRUE;
  else
    t.p = save;
  while (tok_char (&t, '('))
    {
      MhImapNotifyGroup *g = notify_parse_group (s, &t, &bad, &badevent);
      if (g == NULL)
        break;
      if (!tok_char (&t, ')'))
        {
          notify_group_free (g);
          bad = g_strdup ("NOTIFY: missing ) after an event group");
          break;
        }
      MhImapNotifyEvents msg = MH_IMAP_NOTIFY_MESSAGE_NEW
                               | MH_IMAP_NOTIFY_MESSAGE_EXPUNGE;
      /* RFC 5465 5: MessageNew and MessageExpunge go together, and
       * FlagChange needs them. */
      if ((g->events & msg) != 0 && (g->events & msg) != msg)
        bad = g_strdup ("NOTIFY: MessageNew and MessageExpunge must be "
                        "given together");
      else if ((g->events & MH_IMAP_NOTIFY_FLAG_CHANGE)
               && (g->events & msg) != msg)
        bad = g_strdup ("NOTIFY: FlagChange needs MessageNew and "
                        "MessageExpunge");
      else if (g->message_new_atts != NULL
               && g->filter != MH_IMAP_NOTIFY_SELECTED
               && g->filter != MH_IMAP_NOTIFY_SELECTED_DELAYED)
        bad = g_strdup ("NOTIFY: MessageNew fetch attributes are only "
                        "allowed for SELECTED");
      else if (g->filter == MH_IMAP_NOTIFY_SELECTED
               || g->filter == MH_IMAP_NOTIFY_SELECTED_DELAYED)
        {
          if (have_selected)
            bad = g_strdup ("NOTIFY: SELECTED given twice");
          have_selected = TRUE;
        }
      g_ptr_array_add (n->groups, g);
      if (bad != NULL)
        break;
    }
  tok_ws (&t);
  if (bad == NULL && !badevent && (t.p != t.end || n->groups->len == 0))
    bad = g_strdup ("NOTIFY SET: expected event groups");
  if (badevent)
    {
      mh_imap__notify_free (n);
      mh_imap__tagged (out, cmd, "NO", "BADEVENT (" NOTIFY_SUPPORTED ")",
                       "Unsupported NOTIFY event");
      return MH_IMAP_RUN_DONE;
    }
  if (bad != NULL)
    {
      mh_imap__notify_free (n);
      mh_imap__tagged (out, cmd, "BAD", NULL, bad);
      return MH_IMAP_RUN_DONE;
    }

  if (n->status)
    {
      /* RFC 5465 3.1: STATUS for every mailbox of the non-selected groups
       * that the client asked to watch, now. */
      g_auto (GStrv) all = mh_store_folder_list (s->store, NULL);
      g_auto (GStrv) subs = NULL;
      for (guint i = 0; all != NULL && all[i] != NULL; i++)
        {
          gboolean want = FALSE;
          for (guint k = 0; k < n->groups->len && !want; k++)
            {
              MhImapNotifyGroup *g = n->groups->pdata[k];
              if (g->events == 0)
                continue;
              switch (g->filter)
                {
                case MH_IMAP_NOTIFY_PERSONAL:
                  want = TRUE;
                  break;
                case MH_IMAP_NOTIFY_INBOXES:
                  want = g_ascii_strcasecmp (all[i], "INBOX") == 0;
                  break;
                case MH_IMAP_NOTIFY_SUBSCRIBED:
                  if (subs == NULL)
                    subs = mh_store_subscriptions (s->store, NULL);
                  want = subs != NULL
                         && g_strv_contains ((const char *const *) subs,
                                             all[i]);
                  break;
                case MH_IMAP_NOTIFY_MAILBOXES:
                case MH_IMAP_NOTIFY_SUBTREE:
                  for (guint m = 0; g->mailboxes && g->mailboxes[m]; m++)
                    {
                      gsize l = strlen (g->mailboxes[m]);
                      if (g_ascii_strcasecmp (all[i], g->mailboxes[m]) == 0
                          || (g->filter == MH_IMAP_NOTIFY_SUBTREE
                              && strncmp (all[i], g->mailboxes[m], l) == 0
                              && all[i][l] == '.'))
                        want = TRUE;
                    }
                  break;
                default:
                  break;
                }
            }
          if (!want || (s->folder && strcmp (s->folder, all[i]) == 0))
            continue;
          MhStoreStatus st = { .version = 1 };
          if (!mh_store_folder_status (s->store, all[i], &st, NULL))
            continue;
          g_string_append (out, "* STATUS ");
          mh_imap__append_folder (s, out, all[i]);
          g_string_append_printf (out, " (MESSAGES %u UIDNEXT %u UIDVALIDITY "
                                       "%u UNSEEN %u",
                                  st.messages, st.uidnext, st.uidvalidity,
                                  st.unseen);
          if (condstore_on (s))
            g_string_append_printf (out, " HIGHESTMODSEQ %" G_GUINT64_FORMAT,
                                    st.highestmodseq);
          g_string_append (out, ")\r\n");
        }
    }
  g_clear_pointer (&s->notify, mh_imap__notify_free);
  s->notify = n;
  mh_imap__tagged (out, cmd, "OK", NULL, "NOTIFY completed");
  return MH_IMAP_RUN_DONE;
}
