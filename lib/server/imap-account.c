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
 * QUOTA roots come from lib/quota through s->quota (the pipeline's
 * MhQuota): "" for the account, the domain's name for the domain's
 * total; a root exists while it has a limit.
 *
 * METADATA of a mailbox follows it: RENAME moves the entries of the
 * mailbox and its children, DELETE drops the mailbox's own
 * (mh_imap__metadata_move, called by imap-mailbox.c). A mailbox's
 * special use other than a role folder's is its RFC 6154 4
 * "/private/specialuse" entry (CREATE (USE), SETMETADATA; LIST reads it
 * with mh_imap__specialuse_map). NOTIFY metadata events compare a
 * per-session snapshot (a hash per entry) with the file
 * (mh_imap__metadata_changes).
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
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SVC "imap"
/* RFC 6154 4: a mailbox's special use as METADATA. */
#define SPECIALUSE_ENTRY "/private/specialuse"

static char *specialuse_parse_value (const char *value, char **why);

static gboolean
condstore_on (MhImapSession *s)
{
  return (s->enabled
          & (MH_IMAP_ENABLED_CONDSTORE | MH_IMAP_ENABLED_QRESYNC))
         != 0;
}

/* ---- QUOTA (RFC 9208) -------------------------------------------------- */

/* Quota roots, as lib/quota knows them: "" is the account's own
 * (its limits, else its domain's account_quota_* defaults), and the
 * domain's ASCII name is the domain's total (quota_bytes/messages of the
 * domain), when it has one. A root exists only while it has a limit:
 * a resource without a limit is not a quota (RFC 9208 3.1). Every
 * mailbox of the account is under both roots. */
typedef struct
{
  MhQuotaUsage account;
  MhQuotaUsage domain;
  char *domain_name; /* NULL: no domain root */
} QuotaRoots;

static gboolean
quota_has_limits (const MhQuotaUsage *u)
{
  return u->bytes_limit > 0 || u->messages_limit > 0;
}

/* Without a quota layer (a host that built the session by hand): usage
 * from the index, limits as lib/quota resolves them. */
static gboolean
quota_from_directory (MhImapSession *s, MhQuotaUsage *u, GError **error)
{
  if (!mh_store_get_usage (s->store, &u->bytes, &u->messages, error))
    return FALSE;
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

/* Usage and limits of the account's roots; FALSE after writing NO. */
static gboolean
quota_roots (MhImapSession *s, const MhImapCommand *cmd, GString *out,
             QuotaRoots *r)
{
  g_autoptr (GError) error = NULL;
  memset (r, 0, sizeof *r);
  r->account.version = r->domain.version = 1;
  if (s->quota == NULL)
    {
      if (quota_from_directory (s, &r->account, &error))
        return TRUE;
      mh_imap__tagged_store_error (out, cmd, error);
      return FALSE;
    }
  if (!mh_quota_get_account (s->quota, s->account, &r->account, &error))
    {
      mh_log_warning (LOG_SVC, s->account, NULL, "quota: %s", error->message);
      mh_imap__tagged_printf (out, cmd, "NO", "UNAVAILABLE",
                              "Cannot read the quota now: %s",
                              error->message);
      return FALSE;
    }
  const char *at = strrchr (s->account, '@');
  if (at == NULL)
    return TRUE;
  if (mh_quota_get_domain (s->quota, at + 1, &r->domain, &error))
    {
      if (quota_has_limits (&r->domain))
        r->domain_name = g_ascii_strdown (at + 1, -1);
    }
  else if (!g_error_matches (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_NOT_FOUND))
    {
      mh_log_warning (LOG_SVC, s->account, NULL, "quota of %s: %s", at + 1,
                      error->message);
      mh_imap__tagged_printf (out, cmd, "NO", "UNAVAILABLE",
                              "Cannot read the domain's quota now: %s",
                              error->message);
      return FALSE;
    }
  return TRUE;
}

/* "* QUOTA root (STORAGE used limit MESSAGE used limit)": only the
 * limited resources (RFC 9208 5.1); STORAGE in units of 1024 octets,
 * usage rounded up (a started KiB is used), the limit rounded down (no
 * more is promised than there is). */
static void
append_quota (GString *out, const char *root, const MhQuotaUsage *u)
{
  g_string_append (out, "* QUOTA ");
  mh_imap_append_astring (out, root, -1, FALSE);
  g_string_append (out, " (");
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
  QuotaRoots r;

  switch (cmd->kind)
    {
    case MH_IMAP_CMD_SETQUOTA:
      /* RFC 9208 4.3: users may not change their own limits; admins use
       * mhctl quota set. */
      mh_imap__tagged (out, cmd, "NO", "NOPERM",
                       "Quota limits are set by the administrator");
      return MH_IMAP_RUN_DONE;
    case MH_IMAP_CMD_GETQUOTA:
      {
        const char *root = cmd->mailbox ? cmd->mailbox : "";
        if (!quota_roots (s, cmd, out, &r))
          return MH_IMAP_RUN_DONE;
        g_autofree char *dom = r.domain_name;
        if (root[0] == '\0' && quota_has_limits (&r.account))
          append_quota (out, "", &r.account);
        else if (dom != NULL && g_ascii_strcasecmp (root, dom) == 0)
          append_quota (out, dom, &r.domain);
        else
          {
            /* RFC 9208 4.2: NO for a root that does not exist. */
            mh_imap__tagged (out, cmd, "NO", "NONEXISTENT",
                             root[0] == '\0'
                                 ? "No quota limits on this account"
                                 : "No such quota root");
            return MH_IMAP_RUN_DONE;
          }
        mh_imap__tagged (out, cmd, "OK", NULL, "Getquota completed");
        return MH_IMAP_RUN_DONE;
      }
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
        if (!quota_roots (s, cmd, out, &r))
          return MH_IMAP_RUN_DONE;
        g_autofree char *dom = r.domain_name;
        /* RFC 9208 4.3: QUOTAROOT naming every root, then a QUOTA for
         * each. */
        g_string_append (out, "* QUOTAROOT ");
        mh_imap__append_folder (s, out, f);
        if (quota_has_limits (&r.account))
          g_string_append (out, " \"\"");
        if (dom != NULL)
          {
            g_string_append_c (out, ' ');
            mh_imap_append_astring (out, dom, -1, FALSE);
          }
        g_string_append (out, "\r\n");
        if (quota_has_limits (&r.account))
          append_quota (out, "", &r.account);
        if (dom != NULL)
          append_quota (out, dom, &r.domain);
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
      else if (v == NULL && mbox[0] != '\0'
               && strcmp (entry, SPECIALUSE_ENTRY) == 0
               && mh_store_role_special_use (mh_store_folder_role (mbox)))
        {
          /* A role folder's special use is its name's (RFC 6154 4). */
          const char *fixed
              = mh_store_role_special_use (mh_store_folder_role (mbox));
          g_autoptr (GBytes) fb = g_bytes_new (fixed, strlen (fixed));
          meta_emit (&w, entry, fb);
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
  g_autoptr (GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
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
      if (strcmp (entry, SPECIALUSE_ENTRY) == 0)
        {
          /* RFC 6154 4: a mailbox's special use, checked as CREATE
           * (USE) checks it; role folders keep their name's. */
          const char *fixed
              = mbox[0] ? mh_store_role_special_use (
                              mh_store_folder_role (mbox))
                        : NULL;
          g_autofree char *uwhy = NULL;
          g_autofree char *canon
              = val ? specialuse_parse_value (val, &uwhy) : NULL;
          if (mbox[0] == '\0')
            {
              g_free (uwhy);
              uwhy = g_strdup (SPECIALUSE_ENTRY " belongs to a mailbox, "
                                                "not to the server");
            }
          else if (fixed != NULL
                   && (canon == NULL || strcmp (canon, fixed) != 0))
            {
              g_free (uwhy);
              uwhy = g_strdup_printf ("%s keeps its special use %s", mbox,
                                      fixed);
            }
          if (uwhy != NULL)
            {
              mh_imap__tagged (out, cmd, "NO", "USEATTR", uwhy);
              return;
            }
          /* A role folder's comes from its name: nothing is stored. */
          g_ptr_array_add (values, fixed ? g_strdup ("") : g_steal_pointer (&canon));
        }
      else
        g_ptr_array_add (values, NULL); /* as given */
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
      const char *val = values->pdata[i / 2] ? values->pdata[i / 2]
                                             : cmd->strings[i + 1];
      if (val != NULL && val[0] == '\0' && values->pdata[i / 2] != NULL)
        val = NULL; /* a role folder's special use: not stored */
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

/* ---- METADATA for other commands --------------------------------------- */

/* Runs @edit on the account's metadata under the lock and saves it when
 * @edit says it changed something. FALSE with @error on I/O trouble. */
typedef gboolean (*MetaEdit) (GTree *t, gpointer data);

static gboolean
metadata_update (MhImapSession *s, MetaEdit edit, gpointer data,
                 GError **error)
{
  g_autofree char *path = metadata_path (s, "");
  g_autofree char *lock = metadata_path (s, ".lock");
  if (path == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "no metadata storage for account %s",
                   s->account ? s->account : "(none)");
      return FALSE;
    }
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      /* Nothing stored: nothing to move or drop. A creation (special
       * use) still goes through the lock below. */
      g_autoptr (GTree) empty = metadata_new ();
      if (!edit (empty, data))
        return TRUE;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
                   "cannot create %s: %s", dir, g_strerror (e));
      return FALSE;
    }
  int fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock (fd, LOCK_EX) != 0)
    {
      int e = errno;
      if (fd >= 0)
        close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
                   "cannot lock %s: %s", lock, g_strerror (e));
      return FALSE;
    }
  GTree *t = metadata_load (path, error);
  gboolean ok = t != NULL;
  if (ok && edit (t, data))
    ok = metadata_save (path, t, error);
  if (t != NULL)
    g_tree_unref (t);
  close (fd); /* drops the lock */
  return ok;
}

typedef struct
{
  const char *from;
  const char *to; /* NULL: drop */
} MetaMove;

/* Entries of mailbox @from ("FROM\t...") and, on a rename, of its
 * children ("FROM.child\t..."). */
static gboolean
meta_move_edit (GTree *t, gpointer data)
{
  MetaMove *m = data;
  gsize fl = strlen (m->from);
  g_autoptr (GPtrArray) keys = g_ptr_array_new ();
  g_autofree char *low = g_strdup (m->from); /* lower bound: "FROM" */
  for (GTreeNode *nd = g_tree_lower_bound (t, low); nd != NULL;
       nd = g_tree_node_next (nd))
    {
      const char *k = g_tree_node_key (nd);
      if (strncmp (k, m->from, fl) != 0)
        break;
      if (k[fl] == '\t' || (m->to != NULL && k[fl] == '.'))
        g_ptr_array_add (keys, (gpointer) k);
    }
  if (keys->len == 0)
    return FALSE;
  /* Collect first: the tree must not change while it is walked. */
  g_autoptr (GPtrArray) moved = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) vals = g_ptr_array_new_with_free_func (
      (GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < keys->len; i++)
    {
      const char *k = keys->pdata[i];
      if (m->to != NULL)
        {
          g_ptr_array_add (moved, g_strconcat (m->to, k + fl, NULL));
          g_ptr_array_add (vals, g_bytes_ref (g_tree_lookup (t, k)));
        }
    }
  for (guint i = 0; i < keys->len; i++)
    g_tree_remove (t, keys->pdata[i]); /* frees the key: done with it */
  for (guint i = 0; i < moved->len; i++)
    g_tree_replace (t, g_strdup (moved->pdata[i]),
                    g_bytes_ref (vals->pdata[i]));
  return TRUE;
}

gboolean
mh_imap__metadata_move (MhImapSession *s, const char *from, const char *to)
{
  g_autoptr (GError) error = NULL;
  MetaMove m = { from, to };
  if (from == NULL || from[0] == '\0' || strcmp (from, "INBOX") == 0)
    return TRUE; /* the server's entries and INBOX's stay */
  if (metadata_update (s, meta_move_edit, &m, &error))
    return TRUE;
  mh_log_warning (LOG_SVC, s->account, NULL,
                  "metadata of %s not %s: %s", from,
                  to ? "moved" : "dropped", error->message);
  return FALSE;
}

/* ---- Special use (RFC 6154) ---------------------------------------------- */

/* What this store can mean by each attribute: \All and \Flagged name
 * virtual mailboxes, which it has not, so they are refused rather than
 * shown on a mailbox that does not behave as they promise. */
static const char *const special_uses[] = {
  "\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash",
};

char *
mh_imap__specialuse_parse (const char *const *uses, char **why)
{
  g_autoptr (GString) v = g_string_new (NULL);
  *why = NULL;
  for (guint i = 0; uses != NULL && uses[i] != NULL; i++)
    {
      const char *canon = NULL;
      for (guint k = 0; k < G_N_ELEMENTS (special_uses) && !canon; k++)
        if (g_ascii_strcasecmp (uses[i], special_uses[k]) == 0)
          canon = special_uses[k];
      if (canon == NULL)
        {
          if (g_ascii_strcasecmp (uses[i], "\\All") == 0
              || g_ascii_strcasecmp (uses[i], "\\Flagged") == 0)
            *why = g_strdup_printf ("%s is not supported here (no virtual "
                                    "mailboxes)",
                                    uses[i]);
          else
            *why = g_strdup_printf ("Unknown special-use attribute %s "
                                    "(known: \\Archive \\Drafts \\Junk "
                                    "\\Sent \\Trash)",
                                    uses[i]);
          return NULL;
        }
      /* once each, in the client's order */
      gboolean dup = FALSE;
      for (const char *p = v->str; (p = strstr (p, canon)) != NULL;
           p += strlen (canon))
        if ((p == v->str || p[-1] == ' ')
            && (p[strlen (canon)] == '\0' || p[strlen (canon)] == ' '))
          dup = TRUE;
      if (dup)
        continue;
      if (v->len > 0)
        g_string_append_c (v, ' ');
      g_string_append (v, canon);
    }
  if (v->len == 0)
    {
      *why = g_strdup ("USE needs at least one special-use attribute");
      return NULL;
    }
  return g_string_free (g_steal_pointer (&v), FALSE);
}

/* A /private/specialuse value as written by a client: attributes
 * separated by spaces (RFC 6154 4). */
static char *
specialuse_parse_value (const char *value, char **why)
{
  g_auto (GStrv) parts = g_strsplit (value, " ", -1);
  g_autoptr (GPtrArray) uses = g_ptr_array_new ();
  for (guint i = 0; parts[i]; i++)
    if (parts[i][0] != '\0')
      g_ptr_array_add (uses, parts[i]);
  g_ptr_array_add (uses, NULL);
  return mh_imap__specialuse_parse ((const char *const *) uses->pdata, why);
}

typedef struct
{
  const char *key;
  const char *value;
} MetaPut;

static gboolean
meta_put_edit (GTree *t, gpointer data)
{
  MetaPut *p = data;
  g_tree_replace (t, g_strdup (p->key),
                  g_bytes_new (p->value, strlen (p->value)));
  return TRUE;
}

gboolean
mh_imap__specialuse_save (MhImapSession *s, const char *folder,
                          const char *value, GError **error)
{
  g_autofree char *key = g_strconcat (folder, "\t" SPECIALUSE_ENTRY, NULL);
  MetaPut p = { key, value };
  return metadata_update (s, meta_put_edit, &p, error);
}

GHashTable *
mh_imap__specialuse_map (MhImapSession *s)
{
  g_autoptr (GError) error = NULL;
  GHashTable *map = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           g_free);
  g_autofree char *path = metadata_path (s, "");
  GTree *t = path ? metadata_load (path, &error) : NULL;
  if (t == NULL)
    {
      if (error != NULL)
        mh_log_warning (LOG_SVC, s->account, NULL, "metadata: %s",
                        error->message);
      return map;
    }
  const char *suffix = "\t" SPECIALUSE_ENTRY;
  gsize sl = strlen (suffix);
  for (GTreeNode *nd = g_tree_node_first (t); nd != NULL;
       nd = g_tree_node_next (nd))
    {
      const char *k = g_tree_node_key (nd);
      gsize kl = strlen (k);
      if (kl <= sl || strcmp (k + kl - sl, suffix) != 0)
        continue;
      GBytes *v = g_tree_node_value (nd);
      gsize n = 0;
      const char *p = g_bytes_get_data (v, &n);
      /* Only what SETMETADATA would accept now reaches LIST. */
      g_autofree char *raw = g_strndup (p, n);
      g_autofree char *why = NULL;
      char *canon = memchr (p, '\0', n) ? NULL
                                         : specialuse_parse_value (raw, &why);
      if (canon != NULL)
        g_hash_table_replace (map, g_strndup (k, kl - sl), canon);
    }
  g_tree_unref (t);
  return map;
}

/* ---- METADATA change events (NOTIFY, RFC 5465 5.7 and 5.8) -------------- */

/* What a session last saw of the account's metadata: the file's identity
 * (so an unchanged file is not read again) and a hash per entry. */
typedef struct
{
  dev_t dev;
  ino_t ino;
  gint64 mtime_ns;
  goffset size;
  GHashTable *hashes; /* "MBOX\tentry" -> hash of the value */
} MetaSnapshot;

static gint
cmp_strp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

void
mh_imap__metadata_snapshot_free (gpointer snapshot)
{
  MetaSnapshot *m = snapshot;
  if (m == NULL)
    return;
  g_hash_table_unref (m->hashes);
  g_free (m);
}

GPtrArray *
mh_imap__metadata_changes (MhImapSession *s, gpointer *snapshot)
{
  MetaSnapshot *old = *snapshot;
  g_autofree char *path = metadata_path (s, "");
  struct stat st;
  gboolean exists = path != NULL && g_stat (path, &st) == 0;
  if (old != NULL
      && (exists ? (old->ino == st.st_ino && old->dev == st.st_dev
                    && old->size == st.st_size
                    && old->mtime_ns == (gint64) st.st_mtim.tv_sec
                                                * 1000000000
                                            + st.st_mtim.tv_nsec)
                 : old->ino == 0))
    return NULL; /* the same file (atomic replace: a new inode) */

  g_autoptr (GError) error = NULL;
  GTree *t = exists ? metadata_load (path, &error) : metadata_new ();
  if (t == NULL)
    {
      mh_log_warning (LOG_SVC, s->account, NULL, "metadata: %s",
                      error->message);
      return NULL;
    }
  MetaSnapshot *now = g_new0 (MetaSnapshot, 1);
  if (exists)
    {
      now->dev = st.st_dev;
      now->ino = st.st_ino;
      now->size = st.st_size;
      now->mtime_ns = (gint64) st.st_mtim.tv_sec * 1000000000
                      + st.st_mtim.tv_nsec;
    }
  now->hashes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GPtrArray *changed = g_ptr_array_new_with_free_func (g_free);
  for (GTreeNode *nd = g_tree_node_first (t); nd != NULL;
       nd = g_tree_node_next (nd))
    {
      const char *k = g_tree_node_key (nd);
      guint h = g_bytes_hash (g_tree_node_value (nd));
      g_hash_table_insert (now->hashes, g_strdup (k), GUINT_TO_POINTER (h));
      gpointer oh;
      if (old != NULL
          && (!g_hash_table_lookup_extended (old->hashes, k, NULL, &oh)
              || GPOINTER_TO_UINT (oh) != h))
        g_ptr_array_add (changed, g_strdup (k));
    }
  g_tree_unref (t);
  if (old != NULL)
    {
      GHashTableIter it;
      gpointer k;
      g_hash_table_iter_init (&it, old->hashes);
      while (g_hash_table_iter_next (&it, &k, NULL))
        if (!g_hash_table_contains (now->hashes, k))
          g_ptr_array_add (changed, g_strdup (k));
      g_ptr_array_sort (changed, cmp_strp);
    }
  mh_imap__metadata_snapshot_free (old);
  *snapshot = now;
  if (old == NULL || changed->len == 0)
    {
      g_ptr_array_unref (changed);
      return NULL; /* the first look only learns */
    }
  return changed;
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
