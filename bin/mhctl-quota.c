/* mhctl verbs of quotas (issue 4, docs/quota.md):
 *
 *   mhctl quota show [USER|DOMAIN]
 *   mhctl quota set USER|DOMAIN [--storage SIZE] [--messages N]
 *                   [--account-storage SIZE] [--account-messages N]
 *   mhctl quota recalc [USER|DOMAIN]
 *
 * Design notes
 * - As in bin/mhctl-resolve.c: these verbs take options with values, so
 *   mhctl.c hands the whole command line here first
 *   (mhctl_quota_main()); any other command is left to mhctl.c. Global
 *   options and exit codes mean the same there and here: 0 ok, 1 usage,
 *   2 not found or conflict (over the domain's quota), 3 data error.
 * - A target with '@' is an account, else a domain. Sizes are "500M",
 *   "10G", "0"/"unlimited" (no limit) or "default" (unset: an account
 *   gets its domain's default).
 * - Every change goes through lib/quota, which refuses limits that would
 *   take a domain's accounts over the domain's quota; mhctl.c routes
 *   `user add --storage`, `user set quota_*` and `domain set quota_*`
 *   here for the same reason.
 */
#include "mh-config.h"
#include "mhctl-quota.h"

#include <stdlib.h>
#include <string.h>

#include "mhctl-common.h"

typedef struct
{
  const char *data_dir;
  const char *config_path;
  gboolean json;
  gboolean help;
  const char *storage;
  const char *messages;
  const char *account_storage;
  const char *account_messages;
  const char *name;          /* "quota show", for messages */
} Opts;

static int
fail (const Opts *o, int code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static int
fail (const Opts *o, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "mhctl: %s: %s\n", o->name, msg);
  return code;
}

static void
json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *) s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        {
          g_string_append_c (out, '\\');
          g_string_append_c (out, (char) *p);
        }
      else if (*p < 0x20 || *p == 0x7f)
        g_string_append_printf (out, "\\u%04x", *p);
      else
        g_string_append_c (out, (char) *p);
    }
  g_string_append_c (out, '"');
}

/* "default" -> MH_QUOTA_UNSET, else a size (or a count for @count). */
static gboolean
parse_limit (const char *text, gboolean count, gint64 *out, GError **error)
{
  if (text == NULL)
    {
      *out = MH_QUOTA_KEEP;
      return TRUE;
    }
  if (g_ascii_strcasecmp (text, "default") == 0)
    {
      *out = MH_QUOTA_UNSET;
      return TRUE;
    }
  guint64 v;
  if (count)
    {
      if (g_ascii_strcasecmp (text, "unlimited") == 0
          || g_ascii_strcasecmp (text, "none") == 0)
        v = 0;
      else if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXINT64, &v,
                                            NULL))
        {
          g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                       "expected a number of messages, 'unlimited' or "
                       "'default', got '%s'", text);
          return FALSE;
        }
    }
  else if (!mh_quota_parse_size (text, &v, error))
    return FALSE;
  if (v > G_MAXINT64)
    {
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                   "'%s' is too large", text);
      return FALSE;
    }
  *out = (gint64) v;
  return TRUE;
}

static MhQuota *
quota_for (MhDirectory *dir, MhConfig *config, GError **error)
{
  /* directory.mdb lives in DATA: the quota layer's data dir is the
   * same. */
  g_autofree char *data = g_path_get_dirname (mh_directory_get_path (dir));
  return mh_quota_open (dir, data, config, error);
}

gboolean
mhctl_quota_account_add (MhDirectory *dir, const char *address,
                         const char *password, const char *storage,
                         const char *messages, GError **error)
{
  gint64 b = 0, m = 0;
  GError *e = NULL;
  const char *bad = !parse_limit (storage, FALSE, &b, &e) ? "storage"
                    : !parse_limit (messages, TRUE, &m, &e) ? "messages"
                                                            : NULL;
  if (bad != NULL)
    {
      g_set_error (error, e->domain, e->code, "--%s: %s", bad, e->message);
      g_error_free (e);
      return FALSE;
    }
  if (b == MH_QUOTA_UNSET)
    b = MH_QUOTA_KEEP;   /* "default" is what no option means */
  if (m == MH_QUOTA_UNSET)
    m = MH_QUOTA_KEEP;
  g_autoptr (MhQuota) q = quota_for (dir, NULL, error);
  return q != NULL
         && mh_quota_account_add (q, address, password, b, m, error);
}

gboolean
mhctl_quota_set_setting (MhDirectory *dir, gboolean domain,
                         const char *target, const char *name,
                         const char *value, gboolean *handled_out,
                         GError **error)
{
  static const char *const names[] = { "quota_bytes", "quota_messages",
                                       "account_quota_bytes",
                                       "account_quota_messages" };
  guint which = G_N_ELEMENTS (names);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (strcmp (name, names[i]) == 0)
      which = i;
  *handled_out = which < (domain ? 4u : 2u);
  if (!*handled_out)
    return FALSE;
  gint64 v = MH_QUOTA_UNSET;
  if (value != NULL && !parse_limit (value, which % 2 == 1, &v, error))
    return FALSE;
  gint64 lim[4] = { MH_QUOTA_KEEP, MH_QUOTA_KEEP, MH_QUOTA_KEEP,
                    MH_QUOTA_KEEP };
  lim[which] = v;
  g_autoptr (MhQuota) q = quota_for (dir, NULL, error);
  if (q == NULL)
    return FALSE;
  return domain ? mh_quota_set_domain (q, target, lim[0], lim[1], lim[2],
                                       lim[3], error)
                : mh_quota_set_account (q, target, lim[0], lim[1], error);
}

/* ---- show ------------------------------------------------------------- */

static guint
percent (guint64 used, guint64 limit)
{
  return limit ? (guint) MIN ((double) used * 100.0 / (double) limit,
                              999.0) : 0;
}

static void
usage_json (GString *s, const char *key, const char *name,
            const MhQuotaUsage *u)
{
  g_string_append_printf (s, "{\"%s\": ", key);
  json_string (s, name);
  g_string_append_printf (s, ", \"bytes\": %" G_GUINT64_FORMAT
                          ", \"bytes_limit\": %" G_GUINT64_FORMAT
                          ", \"messages\": %" G_GUINT64_FORMAT
                          ", \"messages_limit\": %" G_GUINT64_FORMAT
                          ", \"bytes_percent\": %u, \"messages_percent\": %u",
                          u->bytes, u->bytes_limit, u->messages,
                          u->messages_limit, percent (u->bytes, u->bytes_limit),
                          percent (u->messages, u->messages_limit));
}

static void
usage_text (GString *s, const char *name, const MhQuotaUsage *u,
            const char *indent)
{
  g_autofree char *used = mh_quota_format_size (u->bytes);
  g_autofree char *lim = u->bytes_limit ? mh_quota_format_size (u->bytes_limit)
                                        : g_strdup ("unlimited");
  g_autofree char *bp = u->bytes_limit
                            ? g_strdup_printf (" (%u%%)",
                                               percent (u->bytes,
                                                        u->bytes_limit))
                            : g_strdup ("");
  g_autofree char *ml = u->messages_limit
                            ? g_strdup_printf ("%" G_GUINT64_FORMAT,
                                               u->messages_limit)
                            : g_strdup ("unlimited");
  g_autofree char *mp = u->messages_limit
                            ? g_strdup_printf (" (%u%%)",
                                               percent (u->messages,
                                                        u->messages_limit))
                            : g_strdup ("");
  g_string_append_printf (s, "%s%s\n%s  storage:  %s of %s%s\n"
                          "%s  messages: %" G_GUINT64_FORMAT " of %s%s\n",
                          indent, name, indent, used, lim, bp, indent,
                          u->messages, ml, mp);
}

static gboolean
show_domain (MhQuota *q, MhDirectory *dir, MhDomainInfo *d, gboolean json,
             GString *s, GError **error)
{
  MhQuotaUsage du;
  if (!mh_quota_get_domain (q, mh_domain_info_get_ascii_name (d), &du, error))
    return FALSE;
  g_autoptr (MhAccountInfoList) list = mh_directory_account_list (
      dir, mh_domain_info_get_ascii_name (d), error);
  if (list == NULL)
    return FALSE;
  if (json)
    {
      usage_json (s, "domain", mh_domain_info_get_name (d), &du);
      g_string_append (s, ", \"accounts\": [");
    }
  else
    {
      usage_text (s, mh_domain_info_get_name (d), &du, "");
      guint64 def_b = mh_domain_info_get_setting_uint64 (
          d, "account_quota_bytes", 0);
      guint64 def_m = mh_domain_info_get_setting_uint64 (
          d, "account_quota_messages", 0);
      if (def_b || def_m)
        {
          g_autofree char *b = def_b ? mh_quota_format_size (def_b)
                                     : g_strdup ("unlimited");
          g_autofree char *m = def_m ? g_strdup_printf ("%" G_GUINT64_FORMAT,
                                                        def_m)
                                     : g_strdup ("unlimited");
          g_string_append_printf (s, "  account default: storage %s, "
                                  "messages %s\n", b, m);
        }
    }
  for (guint i = 0; i < list->len; i++)
    {
      MhAccountInfo *a = list->pdata[i];
      MhQuotaUsage au;
      if (!mh_quota_get_account (q, mh_account_info_get_ascii_address (a), &au,
                                 error))
        return FALSE;
      if (json)
        {
          if (i)
            g_string_append (s, ", ");
          usage_json (s, "address", mh_account_info_get_address (a), &au);
          g_string_append_c (s, '}');
        }
      else
        usage_text (s, mh_account_info_get_address (a), &au, "  ");
    }
  if (json)
    g_string_append (s, "]}");
  return TRUE;
}

static int
verb_show (const Opts *o, MhQuota *q, MhDirectory *dir, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) s = g_string_new (NULL);
  if (n == 1 && strchr (args[0], '@') != NULL)
    {
      MhQuotaUsage u;
      if (!mh_quota_get_account (q, args[0], &u, &error))
        return fail (o, mhctl_exit_code (error), "%s", error->message);
      g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (dir, args[0],
                                                                 NULL);
      const char *name = a ? mh_account_info_get_address (a) : args[0];
      if (o->json)
        {
          usage_json (s, "address", name, &u);
          g_string_append_c (s, '}');
        }
      else
        usage_text (s, name, &u, "");
    }
  else if (n == 1)
    {
      g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (dir, args[0],
                                                               &error);
      if (d == NULL || !show_domain (q, dir, d, o->json, s, &error))
        return fail (o, mhctl_exit_code (error), "%s", error->message);
    }
  else
    {
      g_autoptr (MhDomainInfoList) list = mh_directory_domain_list (dir,
                                                                    &error);
      if (list == NULL)
        return fail (o, mhctl_exit_code (error), "%s", error->message);
      if (o->json)
        g_string_append_c (s, '[');
      for (guint i = 0; i < list->len; i++)
        {
          if (i && o->json)
            g_string_append (s, ", ");
          if (!show_domain (q, dir, list->pdata[i], o->json, s, &error))
            return fail (o, mhctl_exit_code (error), "%s",
                         error->message);
        }
      if (o->json)
        g_string_append_c (s, ']');
    }
  fputs (s->str, stdout);
  if (s->len == 0 || s->str[s->len - 1] != '\n')
    fputc ('\n', stdout);
  return 0;
}

/* ---- set and recalc --------------------------------------------------- */

static int
done (const Opts *o, const char *what)
{
  if (o->json)
    {
      g_autoptr (GString) s = g_string_new ("{\"ok\": true, \"message\": ");
      json_string (s, what);
      g_string_append (s, "}\n");
      fputs (s->str, stdout);
    }
  else
    printf ("%s\n", what);
  return 0;
}

static int
verb_set (const Opts *o, MhQuota *q, char **args, int n)
{
  const char *target = args[0];
  gboolean account = strchr (target, '@') != NULL;
  if (!o->storage && !o->messages && !o->account_storage
      && !o->account_messages)
    return fail (o, EXIT_USAGE, "nothing to set: give --storage and/or "
                 "--messages%s", account ? "" : " (or --account-storage, "
                 "--account-messages)");
  if (account && (o->account_storage || o->account_messages))
    return fail (o, EXIT_USAGE, "--account-storage and --account-messages "
                 "are the defaults of a domain, not of an account");
  gint64 v[4];
  const char *text[4] = { o->storage, o->messages, o->account_storage,
                          o->account_messages };
  const char *opt[4] = { "--storage", "--messages", "--account-storage",
                         "--account-messages" };
  for (guint i = 0; i < 4; i++)
    {
      g_autoptr (GError) e = NULL;
      if (!parse_limit (text[i], i % 2 == 1, &v[i], &e))
        return fail (o, EXIT_DATA, "%s: %s", opt[i], e->message);
    }
  g_autoptr (GError) error = NULL;
  gboolean ok = account
                    ? mh_quota_set_account (q, target, v[0], v[1], &error)
                    : mh_quota_set_domain (q, target, v[0], v[1], v[2], v[3],
                                           &error);
  if (!ok)
    return fail (o, mhctl_exit_code (error), "%s", error->message);
  MhQuotaUsage u;
  if (!(account ? mh_quota_get_account (q, target, &u, &error)
                : mh_quota_get_domain (q, target, &u, &error)))
    return fail (o, mhctl_exit_code (error), "%s", error->message);
  g_autofree char *b = u.bytes_limit ? mh_quota_format_size (u.bytes_limit)
                                     : g_strdup ("unlimited");
  g_autofree char *m = u.messages_limit
                           ? g_strdup_printf ("%" G_GUINT64_FORMAT,
                                              u.messages_limit)
                           : g_strdup ("unlimited");
  g_autofree char *msg = g_strdup_printf ("%s: quota set: storage %s, "
                                          "messages %s", target, b, m);
  return done (o, msg);
}

static int
verb_recalc (const Opts *o, MhQuota *q, char **args, int n)
{
  g_autoptr (GError) error = NULL;
  guint count = 0;
  if (!mh_quota_recalc (q, n ? args[0] : NULL, &count, &error))
    return fail (o, mhctl_exit_code (error), "%s", error->message);
  g_autofree char *msg = g_strdup_printf ("%s: %u account(s) recounted",
                                          n ? args[0] : "all domains",
                                          count);
  return done (o, msg);
}

/* ---- Dispatch ----------------------------------------------------------- */

static const char usage_lines[] =
    "  quota show [USER|DOMAIN]\n"
    "  quota set USER|DOMAIN [--storage SIZE] [--messages N]\n"
    "            [--account-storage SIZE] [--account-messages N]\n"
    "  quota recalc [USER|DOMAIN]\n";

static const char help_text[] =
    "Usage: mhctl [--data-dir DIR] [--json] quota show [USER|DOMAIN]\n"
    "       mhctl quota set USER|DOMAIN [--storage SIZE] [--messages N]\n"
    "                   [--account-storage SIZE] [--account-messages N]\n"
    "       mhctl quota recalc [USER|DOMAIN]\n\n"
    "  show     usage and limits of an account, of a domain and its\n"
    "           accounts, or of every domain\n"
    "  set      limits: of an account, or the totals of a domain\n"
    "           (--account-storage/--account-messages: the default of its\n"
    "           accounts). SIZE is 500M, 10G, 0 or unlimited; 'default'\n"
    "           unsets. Refused (exit 2) when the account quotas of a\n"
    "           domain would add up to more than the domain's quota.\n"
    "  recalc   counts again from the Maildirs (after other tools changed\n"
    "           them) and rewrites each maildirsize\n"
    "  Exit: 0 ok, 1 usage, 2 not found or over the domain's quota,\n"
    "  3 bad input or unreadable data.\n";

void
mhctl_quota_usage (FILE *out)
{
  fputs (usage_lines, out);
}

gboolean
mhctl_quota_main (int argc, char **argv, int *code_out)
{
  /* Ours when the first positional argument is "quota". */
  const char *p0 = NULL;
  for (int i = 1; i < argc && p0 == NULL; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--") == 0)
        {
          p0 = i + 1 < argc ? argv[i + 1] : "";
          break;
        }
      if (a[0] == '-' && strcmp (a, "-") != 0)
        {
          if ((strcmp (a, "--data-dir") == 0 || strcmp (a, "--config") == 0
               || strcmp (a, "--storage") == 0
               || strcmp (a, "--messages") == 0
               || strcmp (a, "--account-storage") == 0
               || strcmp (a, "--account-messages") == 0)
              && i + 1 < argc)
            i++;
          continue;
        }
      p0 = a;
    }
  if (p0 == NULL || strcmp (p0, "quota") != 0)
    return FALSE;

  Opts o = { .name = "quota" };
  g_autoptr (GPtrArray) pos = g_ptr_array_new ();
  gboolean options_done = FALSE;
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (options_done || a[0] != '-' || strcmp (a, "-") == 0)
        {
          g_ptr_array_add (pos, argv[i]);
          continue;
        }
      static const char *const valued[] = { "--data-dir", "--config",
                                            "--storage", "--messages",
                                            "--account-storage",
                                            "--account-messages" };
      const char **slot[] = { &o.data_dir, &o.config_path, &o.storage,
                              &o.messages, &o.account_storage,
                              &o.account_messages };
      gboolean matched = FALSE;
      for (guint k = 0; k < G_N_ELEMENTS (valued) && !matched; k++)
        {
          gsize l = strlen (valued[k]);
          if (strcmp (a, valued[k]) == 0)
            {
              if (i + 1 >= argc)
                {
                  *code_out = fail (&o, EXIT_USAGE, "%s needs a value", a);
                  return TRUE;
                }
              *slot[k] = argv[++i];
              matched = TRUE;
            }
          else if (strncmp (a, valued[k], l) == 0 && a[l] == '=')
            {
              *slot[k] = a + l + 1;
              matched = TRUE;
            }
        }
      if (matched)
        continue;
      if (strcmp (a, "--") == 0)
        options_done = TRUE;
      else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        o.help = TRUE;
      else if (strcmp (a, "--json") == 0)
        o.json = TRUE;
      else
        {
          fprintf (stderr, "mhctl: quota: unknown option '%s' (see mhctl "
                   "quota --help)\n", a);
          *code_out = EXIT_USAGE;
          return TRUE;
        }
    }
  if (o.help)
    {
      fputs (help_text, stdout);
      *code_out = 0;
      return TRUE;
    }
  const char *verb = pos->len > 1 ? pos->pdata[1] : NULL;
  char **args = (char **) pos->pdata + MIN (pos->len, 2);
  int n = (int) pos->len - 2;
  int min = 0, max = 1;
  if (verb == NULL)
    {
      fprintf (stderr, "mhctl: quota: which one? (show, set, recalc)\n%s",
               help_text);
      *code_out = EXIT_USAGE;
      return TRUE;
    }
  g_autofree char *name = g_strdup_printf ("quota %s", verb);
  o.name = name;
  if (strcmp (verb, "set") == 0)
    min = 1;
  else if (strcmp (verb, "show") != 0 && strcmp (verb, "recalc") != 0)
    {
      fprintf (stderr, "mhctl: quota: unknown verb '%s'\n%s", verb,
               usage_lines);
      *code_out = EXIT_USAGE;
      return TRUE;
    }
  if (n < min || n > max)
    {
      *code_out = fail (&o, EXIT_USAGE, "expected %s",
                        min ? "USER or DOMAIN" : "at most one USER or "
                        "DOMAIN");
      return TRUE;
    }
  if (strcmp (verb, "set") != 0
      && (o.storage || o.messages || o.account_storage || o.account_messages))
    {
      *code_out = fail (&o, EXIT_USAGE, "--storage and the like apply to "
                        "quota set only");
      return TRUE;
    }

  /* The data directory: --data-dir, else the config's. */
  g_autoptr (GError) error = NULL;
  g_autoptr (MhConfig) config = NULL;
  g_autofree char *def = g_build_filename (MH_SYSCONFDIR, "mailhost",
                                           "mailhost.conf", NULL);
  if (o.config_path != NULL)
    config = mh_config_load (o.config_path, &error);
  else if (g_file_test (def, G_FILE_TEST_EXISTS))
    config = mh_config_load (def, &error);
  else
    config = mh_config_new ();
  if (config == NULL)
    {
      *code_out = fail (&o, EXIT_DATA, "%s", error->message);
      return TRUE;
    }
  const char *data = o.data_dir ? o.data_dir
                                : mh_config_get_string (config, "general",
                                                        "data_dir");
  g_autoptr (MhDirectory) dir = mh_directory_open (data, &error);
  if (dir == NULL)
    {
      *code_out = fail (&o, mhctl_exit_code (error), "%s",
                        error->message);
      return TRUE;
    }
  g_autoptr (MhQuota) q = mh_quota_open (dir, data, config, &error);
  if (q == NULL)
    {
      *code_out = fail (&o, EXIT_DATA, "%s", error->message);
      return TRUE;
    }
  if (strcmp (verb, "show") == 0)
    *code_out = verb_show (&o, q, dir, args, n);
  else if (strcmp (verb, "set") == 0)
    *code_out = verb_set (&o, q, args, n);
  else
    *code_out = verb_recalc (&o, q, args, n);
  return TRUE;
}
