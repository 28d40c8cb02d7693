/* mhctl verbs of address resolution (issue 5, docs/resolve.md):
 *
 *   mhctl resolve ADDRESS... [--from SENDER] [--authenticated] [--at DATE]
 *   mhctl resolve --batch [--from SENDER] [--authenticated] [--at DATE]
 *   mhctl alias temp add USER [--days N]
 *   mhctl alias temp list [DOMAIN|USER]
 *   mhctl alias temp del ADDRESS
 *   mhctl alias temp purge [--at DATE]
 *
 * Design notes
 * - These verbs take options with values (--from, --days, --at) that the
 *   verb table of mhctl.c does not parse, so mhctl.c hands the whole
 *   command line here first (mhctl_resolve_main()); a command that is not
 *   ours is left to mhctl.c untouched. The global options (--data-dir,
 *   --config, --json, --help) mean the same as there, and so do the exit
 *   codes: 0 ok, 1 usage, 2 not found or conflict (for resolve: the
 *   address is refused or deferred), 3 data error (bad input, unreadable
 *   directory).
 * - resolve explains: text output shows the targets and the trace (rule
 *   by rule); --json gives the same as one object. --batch reads one
 *   address a line from stdin and writes one line per address (JSON Lines
 *   with --json), without the trace, through one resolver: the whole
 *   process is what the benchmark compares with `postmap -q -`. In batch
 *   mode refusals are answers, not failures: the exit code is 3 only if
 *   a line was malformed.
 * - --at DATE resolves as at another time ("2027-01-31", an ISO 8601
 *   time, or "+40d"): temporary aliases expire by it. That is how an
 *   administrator (and the e2e test, which never sleeps) sees expiry.
 */
#include "mh-config.h"
#include "mhctl-resolve.h"

#include <mailhost/mailhost.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mhctl-common.h"
#define BATCH_LINE_MAX 4096

typedef struct
{
  const char *data_dir;
  const char *config_path;
  gboolean json;
  gboolean help;
  const char *from;
  gboolean authenticated;
  gboolean batch;
  const char *days;
  const char *at;
  const char *name;
  GPtrArray *pos;          /* positional arguments after the verb */
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
  if (s == NULL)
    {
      g_string_append (out, "null");
      return;
    }
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

static char *
time_text (gint64 t)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (t);
  return dt ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup ("?");
}

/* "2027-01-31", "2027-01-31T12:00:00Z" or "+40d": seconds since epoch. */
static gboolean
parse_when (const char *text, gint64 *out)
{
  if (text[0] == '+')
    {
      gsize n = strlen (text);
      guint64 days;
      if (n < 3 || text[n - 1] != 'd')
        return FALSE;
      g_autofree char *num = g_strndup (text + 1, n - 2);
      if (!g_ascii_string_to_unsigned (num, 10, 0, 100000, &days, NULL))
        return FALSE;
      *out = g_get_real_time () / G_USEC_PER_SEC + (gint64) days * 86400;
      return TRUE;
    }
  g_autofree char *full = strchr (text, 'T') ? g_strdup (text)
                                             : g_strconcat (text,
                                                            "T00:00:00Z",
                                                            NULL);
  g_autoptr (GTimeZone) utc = g_time_zone_new_utc ();
  g_autoptr (GDateTime) dt = g_date_time_new_from_iso8601 (full, utc);
  if (dt == NULL)
    return FALSE;
  *out = g_date_time_to_unix (dt);
  return TRUE;
}

static MhDirectory *
open_directory (const Opts *o, int *code)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *data_dir = NULL;
  if (o->data_dir != NULL)
    data_dir = g_strdup (o->data_dir);
  else
    {
      g_autoptr (MhConfig) config = NULL;
      g_autofree char *def = g_build_filename (MH_SYSCONFDIR, "mailhost",
                                               "mailhost.conf", NULL);
      if (o->config_path != NULL)
        config = mh_config_load (o->config_path, &error);
      else if (g_file_test (def, G_FILE_TEST_EXISTS))
        config = mh_config_load (def, &error);
      else
        config = mh_config_new ();
      if (config == NULL)
        {
          *code = fail (o, EXIT_DATA, "%s", error->message);
          return NULL;
        }
      data_dir = g_strdup (mh_config_get_string (config, "general",
                                                 "data_dir"));
    }
  MhDirectory *dir = mh_directory_open (data_dir, &error);
  if (dir == NULL)
    *code = fail (o, mhctl_exit_code (error), "%s", error->message);
  return dir;
}

/* ---- resolve ------------------------------------------------------------ */

static void
result_json (GString *s, MhResolveResult *res, gboolean with_trace)
{
  guint code;
  const char *enh, *text;
  mh_resolve_result_get_reply (res, &code, &enh, &text);
  g_string_append (s, "{\"address\": ");
  json_string (s, mh_resolve_result_get_address (res));
  g_string_append_printf (s, ", \"accepted\": %s, \"code\": %u, "
                          "\"enhanced\": ",
                          mh_resolve_result_get_accepted (res) ? "true"
                                                               : "false",
                          code);
  json_string (s, enh);
  g_string_append (s, ", \"text\": ");
  json_string (s, text);
  g_string_append (s, ", \"targets\": [");
  GPtrArray *targets = mh_resolve_result_get_targets (res);
  for (guint i = 0; i < targets->len; i++)
    {
      MhResolveTarget *t = targets->pdata[i];
      g_string_append (s, i ? ", {\"kind\": " : "{\"kind\": ");
      json_string (s, mh_resolve_target_kind_to_string (
                          mh_resolve_target_get_kind (t)));
      g_string_append (s, ", \"address\": ");
      json_string (s, mh_resolve_target_get_address (t));
      g_string_append (s, ", \"folder\": ");
      json_string (s, mh_resolve_target_get_folder (t));
      g_string_append (s, ", \"tag\": ");
      json_string (s, mh_resolve_target_get_tag (t));
      g_string_append_printf (s, ", \"code\": %u, \"enhanced\": ",
                              mh_resolve_target_get_smtp_code (t));
      json_string (s, mh_resolve_target_get_enhanced_code (t));
      g_string_append (s, ", \"text\": ");
      json_string (s, mh_resolve_target_get_text (t));
      g_string_append_c (s, '}');
    }
  g_string_append_c (s, ']');
  if (with_trace)
    {
      g_string_append (s, ", \"trace\": [");
      GPtrArray *trace = mh_resolve_result_get_trace (res);
      for (guint i = 0; i < trace->len; i++)
        {
          MhResolveStep *st = trace->pdata[i];
          g_string_append (s, i ? ", {\"rule\": " : "{\"rule\": ");
          json_string (s, mh_resolve_rule_to_string (
                              mh_resolve_step_get_rule (st)));
          g_string_append_printf (s, ", \"depth\": %u, \"address\": ",
                                  mh_resolve_step_get_depth (st));
          json_string (s, mh_resolve_step_get_address (st));
          g_string_append (s, ", \"text\": ");
          json_string (s, mh_resolve_step_get_text (st));
          g_string_append_c (s, '}');
        }
      g_string_append_c (s, ']');
    }
  g_string_append_c (s, '}');
}

static void
error_json (GString *s, const char *address, const GError *error)
{
  guint code;
  const char *enh;
  mh_resolve_error_smtp_reply (error, &code, &enh);
  g_string_append (s, "{\"address\": ");
  json_string (s, address);
  g_string_append (s, ", \"accepted\": false, \"error\": ");
  GEnumClass *klass = g_type_class_ref (MH_TYPE_RESOLVE_ERROR);
  GEnumValue *ev = error->domain == MH_RESOLVE_ERROR
                   ? g_enum_get_value (klass, error->code) : NULL;
  json_string (s, ev ? ev->value_nick : "failed");
  g_type_class_unref (klass);
  g_string_append_printf (s, ", \"code\": %u, \"enhanced\": ", code);
  json_string (s, enh);
  g_string_append (s, ", \"text\": ");
  json_string (s, error->message);
  g_string_append_c (s, '}');
}

static void
result_text (GString *s, MhResolveResult *res)
{
  guint code;
  const char *enh, *text;
  mh_resolve_result_get_reply (res, &code, &enh, &text);
  g_string_append_printf (s, "%s: %s (%u %s %s)\n",
                          mh_resolve_result_get_address (res),
                          mh_resolve_result_get_accepted (res)
                              ? "accepted"
                              : code < 500 ? "deferred" : "rejected",
                          code, enh, text);
  g_string_append (s, "targets:\n");
  GPtrArray *targets = mh_resolve_result_get_targets (res);
  for (guint i = 0; i < targets->len; i++)
    {
      MhResolveTarget *t = targets->pdata[i];
      MhResolveTargetKind k = mh_resolve_target_get_kind (t);
      g_string_append_printf (s, "  %-8s %s", mh_resolve_target_kind_to_string (k),
                              mh_resolve_target_get_address (t));
      if (mh_resolve_target_get_tag (t))
        g_string_append_printf (s, " tag=%s", mh_resolve_target_get_tag (t));
      if (mh_resolve_target_get_folder (t))
        g_string_append_printf (s, " folder=%s",
                                mh_resolve_target_get_folder (t));
      if (k == MH_RESOLVE_TARGET_REJECT || k == MH_RESOLVE_TARGET_DEFER)
        g_string_append_printf (s, " %u %s %s",
                                mh_resolve_target_get_smtp_code (t),
                                mh_resolve_target_get_enhanced_code (t),
                                mh_resolve_target_get_text (t));
      g_string_append_c (s, '\n');
    }
  g_string_append (s, "trace:\n");
  GPtrArray *trace = mh_resolve_result_get_trace (res);
  for (guint i = 0; i < trace->len; i++)
    {
      MhResolveStep *st = trace->pdata[i];
      g_string_append_printf (s, "  %*s%-12s %s\n",
                              (int) (2 * mh_resolve_step_get_depth (st)), "",
                              mh_resolve_rule_to_string (
                                  mh_resolve_step_get_rule (st)),
                              mh_resolve_step_get_text (st));
    }
}

/* One line of batch output, without allocating per line beyond the
 * result: ADDRESS TAB verdict TAB kind:address,... */
static void
batch_text (FILE *out, MhResolveResult *res)
{
  guint code;
  const char *enh, *text;
  mh_resolve_result_get_reply (res, &code, &enh, &text);
  fputs (mh_resolve_result_get_address (res), out);
  fprintf (out, "\t%u %s\t", code, enh);
  GPtrArray *targets = mh_resolve_result_get_targets (res);
  for (guint i = 0; i < targets->len; i++)
    {
      MhResolveTarget *t = targets->pdata[i];
      if (i)
        fputc (',', out);
      fputs (mh_resolve_target_kind_to_string (
                 mh_resolve_target_get_kind (t)), out);
      fputc (':', out);
      fputs (mh_resolve_target_get_address (t), out);
    }
  fputc ('\n', out);
}

static int
run_batch (const Opts *o, MhResolver *resolver)
{
  static char outbuf[1 << 16];
  setvbuf (stdout, outbuf, _IOFBF, sizeof outbuf);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  guint lineno = 0;
  gboolean bad = FALSE;
  g_autoptr (GString) s = g_string_new (NULL);
  while ((n = getline (&line, &cap, stdin)) >= 0)
    {
      lineno++;
      gsize len = (gsize) n;
      while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
      if (len == 0)
        continue;
      MhResolveResult *res = NULL;
      g_autoptr (GError) error = NULL;
      if (len > BATCH_LINE_MAX)
        error = g_error_new (MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                             "line %u is too long: %zu bytes", lineno, len);
      else
        mh_resolver_resolve (resolver, line, (gssize) len, o->from,
                             o->authenticated, MH_RESOLVE_FLAGS_NONE, &res,
                             &error);
      if (res == NULL)
        {
          bad = TRUE;
          g_autofree char *shown = g_utf8_make_valid (line, (gssize) MIN (len,
                                                      300));
          for (char *p = shown; *p; p++)
            if ((guchar) *p < 0x20 || *p == 0x7f)
              *p = '?';
          if (o->json)
            {
              g_string_truncate (s, 0);
              error_json (s, shown, error);
              g_string_append_c (s, '\n');
              fputs (s->str, stdout);
            }
          else
            {
              guint code;
              const char *enh;
              mh_resolve_error_smtp_reply (error, &code, &enh);
              printf ("%s\t%u %s\terror:%s\n", shown, code, enh,
                      error->message);
            }
          continue;
        }
      if (o->json)
        {
          g_string_truncate (s, 0);
          result_json (s, res, FALSE);
          g_string_append_c (s, '\n');
          fputs (s->str, stdout);
        }
      else
        batch_text (stdout, res);
      mh_resolve_result_unref (res);
    }
  free (line);
  if (fflush (stdout) != 0)
    return fail (o, EXIT_DATA, "cannot write the output");
  return bad ? EXIT_DATA : 0;
}

static int
verb_resolve (const Opts *o, MhDirectory *dir)
{
  if (o->days != NULL)
    return fail (o, EXIT_USAGE, "--days does not apply here");
  if (o->batch && o->pos->len > 0)
    return fail (o, EXIT_USAGE, "--batch reads addresses from stdin: give "
                 "no ADDRESS");
  if (!o->batch && o->pos->len == 0)
    return fail (o, EXIT_USAGE, "expected ADDRESS... or --batch");
  g_autoptr (MhResolver) resolver = mh_resolver_new (dir, NULL);
  if (o->at != NULL)
    {
      gint64 when;
      if (!parse_when (o->at, &when))
        return fail (o, EXIT_USAGE, "--at: expected a date (2027-01-31), an "
                     "ISO 8601 time or +Nd, got '%s'", o->at);
      mh_resolver_set_time (resolver, when);
    }
  if (o->batch)
    return run_batch (o, resolver);
  int code = 0;
  g_autoptr (GString) s = g_string_new (NULL);
  if (o->json && o->pos->len > 1)
    g_string_append_c (s, '[');
  for (guint i = 0; i < o->pos->len; i++)
    {
      const char *address = o->pos->pdata[i];
      g_autoptr (MhResolveResult) res = NULL;
      g_autoptr (GError) error = NULL;
      if (o->json && i > 0)
        g_string_append (s, ", ");
      if (!mh_resolver_resolve (resolver, address, -1, o->from,
                                o->authenticated, MH_RESOLVE_FLAGS_TRACE,
                                &res, &error))
        {
          if (o->json)
            error_json (s, address, error);
          else
            fprintf (stderr, "mhctl: resolve: %s: %s\n", address,
                     error->message);
          code = EXIT_DATA;
          continue;
        }
      if (o->json)
        result_json (s, res, TRUE);
      else
        result_text (s, res);
      if (!mh_resolve_result_get_accepted (res) && code == 0)
        code = EXIT_CONFLICT;
    }
  if (o->json && o->pos->len > 1)
    g_string_append_c (s, ']');
  if (s->len > 0)
    {
      fputs (s->str, stdout);
      if (s->str[s->len - 1] != '\n')
        fputc ('\n', stdout);
    }
  return code;
}

/* ---- alias temp --------------------------------------------------------- */

static void
temp_json (GString *s, MhTempAliasInfo *t)
{
  g_autofree char *created = time_text (mh_temp_alias_info_get_created (t));
  g_autofree char *expires = time_text (mh_temp_alias_info_get_expires (t));
  g_string_append (s, "{\"address\": ");
  json_string (s, mh_temp_alias_info_get_address (t));
  g_string_append (s, ", \"ascii_address\": ");
  json_string (s, mh_temp_alias_info_get_ascii_address (t));
  g_string_append (s, ", \"target\": ");
  json_string (s, mh_temp_alias_info_get_target (t));
  g_string_append (s, ", \"created\": ");
  json_string (s, created);
  g_string_append (s, ", \"expires\": ");
  json_string (s, expires);
  g_string_append_printf (s, ", \"expires_unix\": %" G_GINT64_FORMAT
                          ", \"expired\": %s}",
                          mh_temp_alias_info_get_expires (t),
                          mh_temp_alias_info_is_expired (
                              t, g_get_real_time () / G_USEC_PER_SEC)
                              ? "true" : "false");
}

static int
verb_temp (const Opts *o, MhDirectory *dir, const char *verb)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) s = g_string_new (NULL);
  guint n = o->pos->len;
  gboolean is_add = strcmp (verb, "add") == 0;
  gboolean is_purge = strcmp (verb, "purge") == 0;
  if (o->days != NULL && !is_add)
    return fail (o, EXIT_USAGE, "--days applies to 'alias temp add' only");
  if (o->at != NULL && !is_purge)
    return fail (o, EXIT_USAGE, "--at applies to 'alias temp purge' only");
  if (o->from != NULL || o->authenticated || o->batch)
    return fail (o, EXIT_USAGE, "--from, --authenticated and --batch apply "
                 "to resolve only");
  if (is_add)
    {
      if (n != 1)
        return fail (o, EXIT_USAGE, "expected USER [--days N]");
      gint64 expires = 0;
      if (o->days != NULL)
        {
          guint64 days;
          if (!g_ascii_string_to_unsigned (o->days, 10, 1,
                                           MH_LIMIT_TEMP_ALIAS_DAYS_MAX,
                                           &days, NULL))
            return fail (o, EXIT_USAGE, "--days: expected a whole number "
                         "from 1 to %d, got '%s'",
                         MH_LIMIT_TEMP_ALIAS_DAYS_MAX, o->days);
          expires = g_get_real_time () / G_USEC_PER_SEC
                    + (gint64) days * 86400;
        }
      g_autoptr (MhTempAliasInfo) t = mh_directory_temp_alias_add (
          dir, o->pos->pdata[0], expires, &error);
      if (t == NULL)
        return fail (o, mhctl_exit_code (error), "%s", error->message);
      if (o->json)
        temp_json (s, t);
      else
        {
          g_autofree char *when = time_text (mh_temp_alias_info_get_expires (t));
          g_string_append_printf (s, "%s -> %s (expires %s)",
                                  mh_temp_alias_info_get_address (t),
                                  mh_temp_alias_info_get_target (t), when);
        }
    }
  else if (strcmp (verb, "list") == 0)
    {
      if (n > 1)
        return fail (o, EXIT_USAGE, "expected [DOMAIN|USER]");
      g_autoptr (MhTempAliasInfoList) list = mh_directory_temp_alias_list (
          dir, n ? o->pos->pdata[0] : NULL, &error);
      if (list == NULL)
        return fail (o, mhctl_exit_code (error), "%s", error->message);
      gint64 now = g_get_real_time () / G_USEC_PER_SEC;
      if (o->json)
        g_string_append_c (s, '[');
      for (guint i = 0; i < list->len; i++)
        {
          MhTempAliasInfo *t = list->pdata[i];
          if (o->json)
            {
              if (i)
                g_string_append (s, ", ");
              temp_json (s, t);
              continue;
            }
          g_autofree char *when = time_text (mh_temp_alias_info_get_expires (t));
          g_string_append_printf (s, "%s -> %s (expire%s %s)\n",
                                  mh_temp_alias_info_get_address (t),
                                  mh_temp_alias_info_get_target (t),
                                  mh_temp_alias_info_is_expired (t, now)
                                      ? "d" : "s", when);
        }
      if (o->json)
        g_string_append_c (s, ']');
    }
  else if (strcmp (verb, "del") == 0)
    {
      if (n != 1)
        return fail (o, EXIT_USAGE, "expected ADDRESS");
      if (!mh_directory_temp_alias_delete (dir, o->pos->pdata[0], &error))
        return fail (o, mhctl_exit_code (error), "%s", error->message);
      if (o->json)
        g_string_append (s, "{\"ok\": true}");
      else
        g_string_append_printf (s, "%s deleted", (char *) o->pos->pdata[0]);
    }
  else if (is_purge)
    {
      if (n != 0)
        return fail (o, EXIT_USAGE, "expected no arguments");
      gint64 when = 0;
      if (o->at != NULL && !parse_when (o->at, &when))
        return fail (o, EXIT_USAGE, "--at: expected a date (2027-01-31), an "
                     "ISO 8601 time or +Nd, got '%s'", o->at);
      guint removed = 0;
      if (!mh_directory_temp_alias_purge (dir, when, &removed, &error))
        return fail (o, mhctl_exit_code (error), "%s", error->message);
      if (o->json)
        g_string_append_printf (s, "{\"ok\": true, \"removed\": %u}",
                                removed);
      else
        g_string_append_printf (s, "%u expired temporary alias(es) removed",
                                removed);
    }
  else
    {
      fprintf (stderr, "mhctl: alias temp: unknown verb '%s' (add, list, "
               "del, purge)\n", verb);
      return EXIT_USAGE;
    }
  if (s->len > 0)
    {
      fputs (s->str, stdout);
      if (s->str[s->len - 1] != '\n')
        fputc ('\n', stdout);
    }
  return 0;
}

/* ---- Dispatch ----------------------------------------------------------- */

static const char usage_text[] =
    "  resolve ADDRESS... [--from SENDER] [--authenticated] [--at DATE]\n"
    "  resolve --batch [--from SENDER] [--authenticated] [--at DATE]\n"
    "  alias temp add USER [--days N]\n"
    "  alias temp list [DOMAIN|USER]\n"
    "  alias temp del ADDRESS\n"
    "  alias temp purge [--at DATE]\n";

static const char help_resolve[] =
    "Usage: mhctl [--data-dir DIR] [--json] resolve ADDRESS... [--from "
    "SENDER]\n"
    "         [--authenticated] [--at DATE]\n"
    "       mhctl [--data-dir DIR] [--json] resolve --batch [...]\n\n"
    "  Shows where mail for ADDRESS goes: the targets (mailbox, forward,\n"
    "  reject, defer) and the trace of the rules that matched, in order.\n"
    "  --from SENDER      the sender (group addresses look at it)\n"
    "  --authenticated    the sender logged in (SMTP AUTH)\n"
    "  --at DATE          resolve as at DATE (2027-01-31, ISO 8601, +Nd):\n"
    "                     temporary aliases expire by it\n"
    "  --batch            read addresses from stdin, one a line; write one\n"
    "                     line each (JSON Lines with --json), no trace\n"
    "  Exit: 0 accepted, 2 refused or deferred, 3 malformed address.\n";

static const char help_temp[] =
    "Usage: mhctl [--data-dir DIR] [--json] alias temp add USER [--days N]\n"
    "       mhctl alias temp list [DOMAIN|USER]\n"
    "       mhctl alias temp del ADDRESS\n"
    "       mhctl alias temp purge [--at DATE]\n\n"
    "  Temporary (disposable) aliases: a random address in USER's domain\n"
    "  that delivers to USER until it expires (after N days; default 365,\n"
    "  at most 3650). Expired ones are refused like unknown addresses;\n"
    "  purge deletes them.\n";

void
mhctl_resolve_usage (FILE *out)
{
  fputs (usage_text, out);
}

gboolean
mhctl_resolve_main (int argc, char **argv, int *code_out)
{
  /* First pass: is this one of ours? Find the first two positionals. */
  const char *p0 = NULL, *p1 = NULL;
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--") == 0)
        {
          if (i + 1 < argc && p0 == NULL)
            p0 = argv[i + 1];
          if (i + 2 < argc && p1 == NULL)
            p1 = argv[i + 2];
          break;
        }
      if (a[0] == '-' && strcmp (a, "-") != 0)
        {
          if ((strcmp (a, "--data-dir") == 0 || strcmp (a, "--config") == 0
               || strcmp (a, "--from") == 0 || strcmp (a, "--days") == 0
               || strcmp (a, "--at") == 0)
              && i + 1 < argc)
            i++;
          continue;
        }
      if (p0 == NULL)
        p0 = a;
      else if (p1 == NULL)
        p1 = a;
    }
  gboolean is_resolve = p0 != NULL && strcmp (p0, "resolve") == 0;
  gboolean is_temp = p0 != NULL && strcmp (p0, "alias") == 0 && p1 != NULL
                     && strcmp (p1, "temp") == 0;
  if (!is_resolve && !is_temp)
    return FALSE;

  Opts o = { 0 };
  o.name = is_resolve ? "resolve" : "alias temp";
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
      const char **value = NULL;
      if (strcmp (a, "--") == 0)
        options_done = TRUE;
      else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        o.help = TRUE;
      else if (strcmp (a, "--json") == 0)
        o.json = TRUE;
      else if (strcmp (a, "--authenticated") == 0)
        o.authenticated = TRUE;
      else if (strcmp (a, "--batch") == 0)
        o.batch = TRUE;
      else if (strcmp (a, "--data-dir") == 0)
        value = &o.data_dir;
      else if (strcmp (a, "--config") == 0)
        value = &o.config_path;
      else if (strcmp (a, "--from") == 0)
        value = &o.from;
      else if (strcmp (a, "--days") == 0)
        value = &o.days;
      else if (strcmp (a, "--at") == 0)
        value = &o.at;
      else if (g_str_has_prefix (a, "--data-dir="))
        o.data_dir = a + strlen ("--data-dir=");
      else if (g_str_has_prefix (a, "--config="))
        o.config_path = a + strlen ("--config=");
      else if (g_str_has_prefix (a, "--from="))
        o.from = a + strlen ("--from=");
      else if (g_str_has_prefix (a, "--days="))
        o.days = a + strlen ("--days=");
      else if (g_str_has_prefix (a, "--at="))
        o.at = a + strlen ("--at=");
      else
        {
          fprintf (stderr, "mhctl: %s: unknown option '%s' (see mhctl %s "
                   "--help)\n", o.name, a, o.name);
          *code_out = EXIT_USAGE;
          return TRUE;
        }
      if (value != NULL)
        {
          if (i + 1 >= argc)
            {
              *code_out = fail (&o, EXIT_USAGE, "%s needs a value", a);
              return TRUE;
            }
          *value = argv[++i];
        }
    }
  /* Drop the noun (and "temp" and the verb). */
  guint skip = is_resolve ? 1 : 2;
  const char *verb = NULL;
  if (is_temp)
    {
      if (pos->len < 3)
        {
          if (o.help)
            {
              fputs (help_temp, stdout);
              *code_out = 0;
              return TRUE;
            }
          fprintf (stderr, "mhctl: alias temp: which one? (add, list, del, "
                   "purge)\n%s", help_temp);
          *code_out = EXIT_USAGE;
          return TRUE;
        }
      verb = pos->pdata[2];
      skip = 3;
    }
  if (o.help)
    {
      fputs (is_resolve ? help_resolve : help_temp, stdout);
      *code_out = 0;
      return TRUE;
    }
  g_ptr_array_remove_range (pos, 0, skip);
  o.pos = pos;
  if (o.from != NULL && !is_resolve)
    {
      *code_out = fail (&o, EXIT_USAGE, "--from applies to resolve only");
      return TRUE;
    }
  int code = 0;
  MhDirectory *dir = open_directory (&o, &code);
  if (dir == NULL)
    {
      *code_out = code;
      return TRUE;
    }
  *code_out = is_resolve ? verb_resolve (&o, dir) : verb_temp (&o, dir, verb);
  mh_directory_unref (dir);
  return TRUE;
}
