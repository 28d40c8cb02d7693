/* mhctl verbs of the store (issue 4): `index rebuild` and `expunge`.
 *
 *   mhctl index rebuild ADDRESS [--json]
 *       throws the account's index away and rebuilds it from the Maildir
 *       alone (UIDs from dovecot-uidlist, flags from file names).
 *   mhctl expunge ADDRESS [--rules RULES] [--now SECONDS] [--json]
 *       applies the retention rules ([store] retention, or RULES, e.g.
 *       "Junk:seen=7d,unseen=30d;Trash:any=14d") to the account now.
 *
 * ADDRESS is local@domain; the account's Maildir is DATA/mail/DOMAIN/LOCAL
 * and its index DATA/index/DOMAIN/LOCAL. Like bin/mhctl-resolve.c these
 * verbs parse their own options; mhctl's main calls mhctl_store_main()
 * first. Exit codes as mhctl: 1 usage, 2 not found, 3 data error.
 */
#include "mh-config.h"
#include "mhctl-store.h"

#include <mailhost/mailhost.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mhctl-common.h"

typedef struct
{
  const char *data_dir;
  const char *config_path;
  const char *rules;
  const char *now;
  gboolean json;
  gboolean help;
  const char *name;
} Opts;

void
mhctl_store_usage (FILE *out)
{
  fprintf (out, "  index rebuild ADDRESS\n"
                "  expunge ADDRESS [--rules RULES] [--now SECONDS]\n");
}

static int
usage (FILE *out, const char *name, int code)
{
  if (strcmp (name, "index rebuild") == 0)
    fprintf (out,
             "usage: mhctl index rebuild ADDRESS [--json]\n"
             "Rebuilds the account's index from its Maildir alone: UIDs "
             "and UIDVALIDITY\nfrom dovecot-uidlist, flags from the file "
             "names, keywords from\ndovecot-keywords, metadata by parsing "
             "each message.\n");
  else
    fprintf (out,
             "usage: mhctl expunge ADDRESS [--rules RULES] [--now SECONDS] "
             "[--json]\nExpunges what the retention rules allow (default: "
             "[store] retention),\ne.g. --rules 'Junk:seen=7d,unseen=30d;"
             "Trash:any=14d'.\n");
  return code;
}

static int
fail (const Opts *o, int code, const char *msg)
{
  fprintf (stderr, "mhctl: %s: %s\n", o->name, msg);
  return code;
}

static int
code_for (const GError *e)
{
  if (e->domain == MH_STORE_ERROR
      && (e->code == MH_STORE_ERROR_NOT_FOUND
          || e->code == MH_STORE_ERROR_BUSY))
    return EXIT_CONFLICT;
  return EXIT_DATA;
}

static MhConfig *
load_config (const Opts *o, GError **error)
{
  if (o->config_path)
    return mh_config_load (o->config_path, error);
  g_autofree char *def = g_build_filename (MH_SYSCONFDIR, "mailhost",
                                           "mailhost.conf", NULL);
  if (g_file_test (def, G_FILE_TEST_EXISTS))
    return mh_config_load (def, error);
  return mh_config_new ();
}

static MhStore *
open_account (const Opts *o, MhConfig *config, const char *address,
              int *code)
{
  const char *at = strrchr (address, '@');
  if (at == NULL || at == address || at[1] == '\0')
    {
      g_autofree char *m = g_strdup_printf ("'%s' is not an address "
                                            "(local@domain)", address);
      *code = fail (o, EXIT_USAGE, m);
      return NULL;
    }
  g_autofree char *local = g_ascii_strdown (address, at - address);
  g_autofree char *domain = g_ascii_strdown (at + 1, -1);
  const char *data = o->data_dir ? o->data_dir
                                 : mh_config_get_string (config, "general",
                                                         "data_dir");
  g_autofree char *md = g_build_filename (data, "mail", domain, local, NULL);
  if (!g_file_test (md, G_FILE_TEST_IS_DIR))
    {
      g_autofree char *m = g_strdup_printf ("%s has no Maildir (%s)",
                                            address, md);
      *code = fail (o, EXIT_CONFLICT, m);
      return NULL;
    }
  g_autoptr (GError) e = NULL;
  MhStore *s = mh_store_open_account (data, domain, local, 0, &e);
  if (s == NULL)
    *code = fail (o, code_for (e), e->message);
  return s;
}

static int
run_rebuild (const Opts *o, MhConfig *config, const char *address)
{
  int code = 0;
  g_autoptr (MhStore) s = open_account (o, config, address, &code);
  if (s == NULL)
    return code;
  g_autoptr (GError) e = NULL;
  gint64 t0 = g_get_monotonic_time ();
  if (!mh_store_rebuild (s, &e))
    return fail (o, code_for (e), e->message);
  double secs = (g_get_monotonic_time () - t0) / 1e6;
  g_auto (GStrv) folders = mh_store_folder_list (s, &e);
  guint64 bytes = 0, msgs = 0;
  if (folders == NULL || !mh_store_get_usage (s, &bytes, &msgs, &e))
    return fail (o, code_for (e), e->message);
  if (o->json)
    printf ("{\"address\": \"%s\", \"folders\": %u, \"messages\": %"
            G_GUINT64_FORMAT ", \"bytes\": %" G_GUINT64_FORMAT
            ", \"seconds\": %.3f}\n", address, g_strv_length (folders), msgs,
            bytes, secs);
  else
    printf ("rebuilt the index of %s: %u folders, %" G_GUINT64_FORMAT
            " messages, %" G_GUINT64_FORMAT " bytes in %.2f s\n", address,
            g_strv_length (folders), msgs, bytes, secs);
  return 0;
}

static int
run_expunge (const Opts *o, MhConfig *config, const char *address)
{
  const char *text = o->rules ? o->rules
                              : mh_config_get_string (config, "store",
                                                      "retention");
  g_autoptr (GError) e = NULL;
  guint n = 0;
  g_autofree MhStoreRetention *rules = NULL;
  if (text && *text)
    {
      rules = mh_store_retention_parse (text, &n, &e);
      if (rules == NULL)
        return fail (o, EXIT_USAGE, e->message);
    }
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  if (o->now)
    {
      guint64 v;
      if (!g_ascii_string_to_unsigned (o->now, 10, 0, G_MAXINT64, &v, NULL))
        return fail (o, EXIT_USAGE, "--now wants seconds since the epoch");
      now = (gint64) v;
    }
  int code = 0;
  g_autoptr (MhStore) s = open_account (o, config, address, &code);
  if (s == NULL)
    return code;
  guint gone = 0;
  if (n > 0 && !mh_store_apply_retention (s, rules, n, now, &gone, &e))
    return fail (o, code_for (e), e->message);
  if (o->json)
    printf ("{\"address\": \"%s\", \"rules\": %u, \"expunged\": %u}\n",
            address, n, gone);
  else
    printf ("%s: %u messages expunged by %u rules\n", address, gone, n);
  return 0;
}

gboolean
mhctl_store_main (int argc, char **argv, int *code_out)
{
  const char *p0 = NULL, *p1 = NULL;
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (a[0] == '-' && strcmp (a, "-") != 0)
        {
          if ((strcmp (a, "--data-dir") == 0 || strcmp (a, "--config") == 0
               || strcmp (a, "--rules") == 0 || strcmp (a, "--now") == 0)
              && i + 1 < argc)
            i++;
          continue;
        }
      if (p0 == NULL)
        p0 = a;
      else if (p1 == NULL)
        p1 = a;
    }
  gboolean is_rebuild = g_strcmp0 (p0, "index") == 0;
  gboolean is_expunge = g_strcmp0 (p0, "expunge") == 0;
  if (!is_rebuild && !is_expunge)
    return FALSE;

  Opts o = { 0 };
  o.name = is_rebuild ? "index rebuild" : "expunge";
  g_autoptr (GPtrArray) pos = g_ptr_array_new ();
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (a[0] != '-' || strcmp (a, "-") == 0)
        {
          g_ptr_array_add (pos, argv[i]);
          continue;
        }
      const char **value = NULL;
      if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        o.help = TRUE;
      else if (strcmp (a, "--json") == 0)
        o.json = TRUE;
      else if (strcmp (a, "--data-dir") == 0)
        value = &o.data_dir;
      else if (strcmp (a, "--config") == 0)
        value = &o.config_path;
      else if (strcmp (a, "--rules") == 0 && is_expunge)
        value = &o.rules;
      else if (strcmp (a, "--now") == 0 && is_expunge)
        value = &o.now;
      else
        {
          fprintf (stderr, "mhctl: %s: unknown option '%s' (see mhctl %s "
                   "--help)\n", o.name, a, o.name);
          *code_out = EXIT_USAGE;
          return TRUE;
        }
      if (value)
        {
          if (i + 1 >= argc)
            {
              fprintf (stderr, "mhctl: %s: %s needs a value\n", o.name, a);
              *code_out = EXIT_USAGE;
              return TRUE;
            }
          *value = argv[++i];
        }
    }
  if (o.help)
    {
      *code_out = usage (stdout, o.name, 0);
      return TRUE;
    }
  /* index rebuild ADDRESS / expunge ADDRESS */
  guint want = is_rebuild ? 3 : 2;
  if (is_rebuild && (pos->len < 2 || strcmp (pos->pdata[1], "rebuild") != 0))
    {
      fprintf (stderr, "mhctl: index: unknown verb '%s' (only 'rebuild')\n",
               pos->len > 1 ? (char *) pos->pdata[1] : "");
      *code_out = EXIT_USAGE;
      return TRUE;
    }
  if (pos->len != want)
    {
      *code_out = usage (stderr, o.name, EXIT_USAGE);
      return TRUE;
    }
  const char *address = pos->pdata[want - 1];
  g_autoptr (GError) e = NULL;
  g_autoptr (MhConfig) config = load_config (&o, &e);
  if (config == NULL)
    {
      *code_out = fail (&o, EXIT_DATA, e->message);
      return TRUE;
    }
  *code_out = is_rebuild ? run_rebuild (&o, config, address)
                         : run_expunge (&o, config, address);
  return TRUE;
}
