/* lib/core configuration: a GKeyFile checked against one schema.
 *
 * Design notes
 * - The schema below is the single list of every section and key any
 *   layer reads. A layer that grows a setting adds a row here and a line
 *   in docs/config.md; nothing else parses the file.
 * - Loading is all-or-nothing: every value is validated before the
 *   config is returned, and the first problem is reported with the file,
 *   section and key, so a typo never silently becomes a default.
 * - Service sections ([smtp], [imap], ...) share one set of keys; their
 *   defaults (port, TLS mode) come from the service table.
 * - A loaded MhConfig is immutable and so may be shared by threads; a
 *   reload builds a new one and swaps the pointer.
 */
#include "core-private.h"

#include <errno.h>
#include <string.h>

G_DEFINE_QUARK (mh-config-error-quark, mh_config_error)

typedef enum
{
  T_STRING,
  T_PATH,
  T_INT,
  T_BOOL,
  T_LIST,
  T_ENUM,
  T_DURATION,
  T_SIZE,
} KeyType;

typedef struct
{
  const char *section;   /* "@service" = every service section */
  const char *key;
  KeyType type;
  const char *def;       /* default as written in a file; NULL = unset */
  gint64 min, max;       /* for INT, DURATION, SIZE */
  const char *choices;   /* for ENUM: "a|b|c" */
} KeySpec;

#define SVC "@service"
#define BIG G_MAXINT64
#define STR(x) G_STRINGIFY (x)

static const MhCoreService services[] = {
  { "smtp", 25, "starttls" },
  { "submission", 587, "starttls" },
  { "submissions", 465, "implicit" },
  { "lmtp", 24, "none" },
  { "imap", 143, "starttls" },
  { "imaps", 993, "implicit" },
  { "pop3", 110, "starttls" },
  { "pop3s", 995, "implicit" },
  { "managesieve", 4190, "starttls" },
  { "echo", 7, "starttls" },   /* lib/server's diagnostic line service */
  { NULL, 0, NULL },
};

static const KeySpec schema[] = {
  /* [general] */
  { "general", "data_dir", T_PATH, "/var/lib/mailhost", 0, 0, NULL },
  { "general", "hostname", T_STRING, NULL, 0, 0, NULL },
  { "general", "user", T_STRING, NULL, 0, 0, NULL },
  { "general", "group", T_STRING, NULL, 0, 0, NULL },
  { "general", "log_level", T_ENUM, "info", 0, 0,
    "error|warning|notice|info|debug" },
  { "general", "log_target", T_ENUM, "auto", 0, 0, "auto|stderr|journal" },
  { "general", "worker_threads", T_INT, STR (MH_LIMIT_WORKER_THREADS), 1,
    256, NULL },
  { "general", "shutdown_grace", T_DURATION,
    STR (MH_LIMIT_SHUTDOWN_GRACE_S), 0, 3600, NULL },

  /* [tls] */
  { "tls", "cert", T_PATH, NULL, 0, 0, NULL },   /* DATA/tls/cert.pem */
  { "tls", "key", T_PATH, NULL, 0, 0, NULL },    /* DATA/tls/key.pem */
  { "tls", "min_version", T_ENUM, "1.2", 0, 0, "1.2|1.3" },
  { "tls", "priority", T_STRING, NULL, 0, 0, NULL },

  /* [limits]: server-wide; a service section may override some */
  { "limits", "max_connections", T_INT, STR (MH_LIMIT_CONNECTIONS_TOTAL), 1,
    1000000, NULL },
  { "limits", "max_connections_per_ip", T_INT,
    STR (MH_LIMIT_CONNECTIONS_PER_IP), 1, 1000000, NULL },
  { "limits", "idle_timeout", T_DURATION, STR (MH_LIMIT_IDLE_TIMEOUT_S), 1,
    86400, NULL },
  { "limits", "command_timeout", T_DURATION,
    STR (MH_LIMIT_COMMAND_TIMEOUT_S), 1, 86400, NULL },
  { "limits", "tls_handshake_timeout", T_DURATION,
    STR (MH_LIMIT_TLS_HANDSHAKE_S), 1, 3600, NULL },
  { "limits", "max_message_size", T_SIZE, "20M", /* MESSAGE_SIZE_MAX */
    1024, (gint64) 1 << 40, NULL },
  /* the SMTP/submission/LMTP engine's limits (MhSmtpLimits); RFC 5321
   * 4.5.3.1 sets the floors: 100 recipients, 512-octet commands,
   * 1000-octet text lines */
  { "limits", "smtp_max_recipients", T_INT, STR (MH_LIMIT_SMTP_RCPTS_MAX),
    1, 100000, NULL },
  { "limits", "smtp_max_line", T_INT, STR (MH_LIMIT_SMTP_LINE_MAX), 512,
    65536, NULL },
  { "limits", "smtp_max_data_line", T_INT, STR (MH_LIMIT_SMTP_DATA_LINE_MAX),
    1000, 1 << 20, NULL },
  { "limits", "smtp_max_errors", T_INT, STR (MH_LIMIT_SMTP_ERRORS_MAX), 1,
    10000, NULL },
  { "limits", "smtp_max_bad_commands", T_INT,
    STR (MH_LIMIT_SMTP_BAD_COMMANDS_MAX), 1, 10000, NULL },

  /* [auth] */
  { "auth", "fails_before_delay", T_INT, STR (MH_LIMIT_AUTH_FAILS_FREE), 0,
    1000, NULL },
  { "auth", "max_delay", T_DURATION, "15s", 0, 3600, NULL },
  { "auth", "forget_after", T_DURATION, STR (MH_LIMIT_AUTH_FORGET_S), 1,
    86400 * 7, NULL },
  { "auth", "allow_plaintext", T_BOOL, "false", 0, 0, NULL },

  /* [store] (lib/store, docs/store.md) */
  { "store", "retention", T_STRING, "Junk:seen=7d,unseen=30d;Trash:any=14d",
    0, 0, NULL },
  { "store", "retention_interval", T_DURATION, "1h", 60, 86400 * 7, NULL },

  /* [quota] (lib/quota, docs/quota.md) */
  { "quota", "tempfail", T_BOOL, "true", 0, 0, NULL },
  { "quota", "warn_levels", T_LIST, "80, 95", 0, 0, NULL },
  { "quota", "warn_from", T_STRING, NULL, 0, 0, NULL },
  { "quota", "maildirsize", T_BOOL, "true", 0, 0, NULL },

  /* [imap] (also read by [imaps]; lib/server/imap.c, README.md, IMAP) */
  { "imap", "plaintext_auth_loopback", T_BOOL, "true", 0, 0, NULL },
  /* defaults as in limits.h (MH_LIMIT_IMAP_*: expressions, so spelt out) */
  { "imap", "max_line", T_SIZE, "64k", 1024, 1 << 24, NULL },
  { "imap", "max_literal", T_SIZE, "64k", 1024, (gint64) 1 << 30, NULL },
  { "imap", "max_command", T_SIZE, "256k", 4096, (gint64) 1 << 30, NULL },
  { "imap", "max_pending", T_INT, STR (MH_LIMIT_IMAP_PENDING_MAX), 1, 1000,
    NULL },
  { "imap", "max_bad_commands", T_INT, STR (MH_LIMIT_IMAP_BAD_MAX), 1, 10000,
    NULL },

  /* every service section */
  { SVC, "enabled", T_BOOL, "false", 0, 0, NULL },
  { SVC, "listen", T_LIST, NULL, 0, 0, NULL },       /* "*:PORT" */
  { SVC, "tls", T_ENUM, NULL, 0, 0, "none|starttls|implicit" },
  { SVC, "max_connections", T_INT, "0", 0, 1000000, NULL }, /* 0: [limits] */
  { SVC, "max_connections_per_ip", T_INT, "0", 0, 1000000, NULL },
  { SVC, "idle_timeout", T_DURATION, "0", 0, 86400, NULL },
  { SVC, "command_timeout", T_DURATION, "0", 0, 86400, NULL },
  { SVC, "socket_mode", T_STRING, "0660", 0, 0, NULL }, /* unix: listen */
};

struct _MhConfig
{
  gint refcount;
  char *source;              /* file name for messages */
  GHashTable *values;        /* "section\037key" -> validated text */
  GHashTable *sections;      /* section names present in the file */
};

G_DEFINE_BOXED_TYPE (MhConfig, mh_config, mh_config_ref, mh_config_unref)

const MhCoreService *
mh_core__services (void)
{
  return services;
}

static const MhCoreService *
find_service (const char *section)
{
  for (const MhCoreService *s = services; s->name; s++)
    if (strcmp (s->name, section) == 0)
      return s;
  return NULL;
}

static gboolean
section_known (const char *section)
{
  if (find_service (section))
    return TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS (schema); i++)
    if (strcmp (schema[i].section, section) == 0)
      return TRUE;
  return FALSE;
}

static const KeySpec *
find_key (const char *section, const char *key)
{
  /* a service's own keys ([imap] plaintext_auth_loopback) first */
  for (gsize i = 0; i < G_N_ELEMENTS (schema); i++)
    if (strcmp (schema[i].section, section) == 0
        && strcmp (schema[i].key, key) == 0)
      return &schema[i];
  const char *sec = find_service (section) ? SVC : section;
  for (gsize i = 0; i < G_N_ELEMENTS (schema); i++)
    if (strcmp (schema[i].section, sec) == 0
        && strcmp (schema[i].key, key) == 0)
      return &schema[i];
  return NULL;
}

static char *
default_for (const char *section, const KeySpec *spec)
{
  const MhCoreService *svc = find_service (section);
  if (svc && strcmp (spec->key, "listen") == 0)
    return g_strdup_printf ("*:%u", svc->port);
  if (svc && strcmp (spec->key, "tls") == 0)
    return g_strdup (svc->tls);
  return g_strdup (spec->def);
}

static char *
vkey (const char *section, const char *key)
{
  return g_strconcat (section, "\037", key, NULL);
}

static gboolean G_GNUC_PRINTF (5, 6)
bad (GError **error, const char *source, const char *section,
     const char *key, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_BAD_VALUE,
               "%s: [%s] %s: %s", source, section, key, what);
  return FALSE;
}

static gboolean
check_range (gint64 v, const KeySpec *spec, const char *source,
             const char *section, const char *unit, GError **error)
{
  if (v < spec->min || v > spec->max)
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_BAD_VALUE,
                   "%s: [%s] %s: %" G_GINT64_FORMAT "%s is out of range "
                   "(%" G_GINT64_FORMAT " to %" G_GINT64_FORMAT "%s)",
                   source, section, spec->key, v, unit, spec->min,
                   spec->max, unit);
      return FALSE;
    }
  return TRUE;
}

/* Validates @value for @spec; on success stores the normalised text. */
static gboolean
validate (const KeySpec *spec, const char *source, const char *section,
          const char *value, char **norm_out, GError **error)
{
  gint64 v = 0;

  if (strlen (value) > 4096)
    return bad (error, source, section, spec->key, "value is too long");

  switch (spec->type)
    {
    case T_STRING:
    case T_PATH:
      if (spec->type == T_PATH && *value == '\0')
        return bad (error, source, section, spec->key,
                    "expected a path, got an empty value");
      *norm_out = g_strdup (value);
      return TRUE;

    case T_INT:
      {
        char *end = NULL;
        errno = 0;
        v = g_ascii_strtoll (value, &end, 10);
        if (*value == '\0' || errno != 0 || *end != '\0')
          return bad (error, source, section, spec->key,
                      "expected a whole number, got '%s'", value);
        if (!check_range (v, spec, source, section, "", error))
          return FALSE;
        *norm_out = g_strdup_printf ("%" G_GINT64_FORMAT, v);
        return TRUE;
      }

    case T_DURATION:
      if (!mh_core__parse_duration (value, &v))
        return bad (error, source, section, spec->key,
                    "expected a duration such as 30s, 5m or 2h, got '%s'",
                    value);
      if (!check_range (v, spec, source, section, "s", error))
        return FALSE;
      *norm_out = g_strdup_printf ("%" G_GINT64_FORMAT, v);
      return TRUE;

    case T_SIZE:
      if (!mh_core__parse_size (value, &v))
        return bad (error, source, section, spec->key,
                    "expected a size such as 512k, 20M or 1G, got '%s'",
                    value);
      if (!check_range (v, spec, source, section, " bytes", error))
        return FALSE;
      *norm_out = g_strdup_printf ("%" G_GINT64_FORMAT, v);
      return TRUE;

    case T_BOOL:
      if (g_ascii_strcasecmp (value, "true") == 0
          || g_ascii_strcasecmp (value, "yes") == 0
          || strcmp (value, "1") == 0)
        *norm_out = g_strdup ("true");
      else if (g_ascii_strcasecmp (value, "false") == 0
               || g_ascii_strcasecmp (value, "no") == 0
               || strcmp (value, "0") == 0)
        *norm_out = g_strdup ("false");
      else
        return bad (error, source, section, spec->key,
                    "expected true or false, got '%s'", value);
      return TRUE;

    case T_ENUM:
      {
        g_auto (GStrv) choices = g_strsplit (spec->choices, "|", -1);
        if (!g_strv_contains ((const char *const *) choices, value))
          {
            g_autofree char *list = g_strjoinv (", ", choices);
            g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_BAD_VALUE,
                         "%s: [%s] %s: expected one of %s, got '%s'", source,
                         section, spec->key, list, value);
            return FALSE;
          }
        *norm_out = g_strdup (value);
        return TRUE;
      }

    case T_LIST:
      {
        /* "a, b; c": separators are ',' ';' or white space */
        g_auto (GStrv) parts = g_regex_split_simple ("[,;\\s]+", value, 0, 0);
        g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
        for (char **p = parts; *p; p++)
          if (**p)
            g_strv_builder_add (b, *p);
        g_auto (GStrv) items = g_strv_builder_end (b);
        *norm_out = g_strjoinv (";", items);
        return TRUE;
      }
    }
  g_assert_not_reached ();
}

MhConfig *
mh_config_new (void)
{
  MhConfig *c = g_new0 (MhConfig, 1);
  c->refcount = 1;
  c->values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  c->sections = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (schema); i++)
    {
      const KeySpec *spec = &schema[i];
      gboolean per_service = strcmp (spec->section, SVC) == 0;
      for (const MhCoreService *svc = services; svc->name; svc++)
        {
          const char *section = per_service ? svc->name : spec->section;
          g_autofree char *def = default_for (section, spec);
          char *norm = NULL;
          if (def != NULL
              && !validate (spec, "schema", section, def, &norm, NULL))
            g_error ("mh_config: bad default for [%s] %s", section,
                     spec->key);
          if (norm != NULL)
            g_hash_table_replace (c->values, vkey (section, spec->key), norm);
          if (!per_service)
            break;
        }
    }
  return c;
}

MhConfig *
mh_config_ref (MhConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_atomic_int_inc (&config->refcount);
  return config;
}

void
mh_config_unref (MhConfig *config)
{
  if (config == NULL || !g_atomic_int_dec_and_test (&config->refcount))
    return;
  g_hash_table_unref (config->values);
  g_hash_table_unref (config->sections);
  g_free (config->source);
  g_free (config);
}

static gboolean
set_checked (MhConfig *c, const char *source, const char *section,
             const char *key, const char *value, GError **error)
{
  if (!section_known (section))
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_UNKNOWN_SECTION,
                   "%s: unknown section [%s]", source, section);
      return FALSE;
    }
  const KeySpec *spec = find_key (section, key);
  if (spec == NULL)
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_UNKNOWN_KEY,
                   "%s: [%s] unknown key '%s'", source, section, key);
      return FALSE;
    }
  char *norm = NULL;
  if (!validate (spec, source, section, value, &norm, error))
    return FALSE;
  g_hash_table_replace (c->values, vkey (section, key), norm);
  return TRUE;
}

gboolean
mh_config_set (MhConfig *config, const char *section, const char *key,
               const char *value, GError **error)
{
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (section != NULL && key != NULL && value != NULL,
                        FALSE);
  return set_checked (config, config->source ? config->source : "config",
                      section, key, value, error);
}

MhConfig *
mh_config_load_data (const char *data, gssize len, const char *name,
                     GError **error)
{
  g_return_val_if_fail (data != NULL, NULL);
  if (name == NULL)
    name = "config";
  if (len < 0)
    len = (gssize) strlen (data);
  if ((gsize) len > MH_LIMIT_CONFIG_FILE_MAX)
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE,
                   "%s: larger than %d bytes", name, MH_LIMIT_CONFIG_FILE_MAX);
      return NULL;
    }
  if (memchr (data, '\0', (gsize) len) != NULL)
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE,
                   "%s: contains a NUL byte; not a text file", name);
      return NULL;
    }
  if (!g_utf8_validate_len (data, (gsize) len, NULL))
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE,
                   "%s: not valid UTF-8", name);
      return NULL;
    }

  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  if (!g_key_file_load_from_data (kf, data, (gsize) len, G_KEY_FILE_NONE,
                                  &local))
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_PARSE, "%s: %s",
                   name, local->message);
      return NULL;
    }

  g_autoptr (MhConfig) c = mh_config_new ();
  c->source = g_strdup (name);
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);
  for (char **g = groups; *g; g++)
    {
      if (!section_known (*g))
        {
          g_set_error (error, MH_CONFIG_ERROR,
                       MH_CONFIG_ERROR_UNKNOWN_SECTION,
                       "%s: unknown section [%s]", name, *g);
          return NULL;
        }
      g_hash_table_add (c->sections, g_strdup (*g));
      g_auto (GStrv) keys = g_key_file_get_keys (kf, *g, NULL, NULL);
      for (char **k = keys; k && *k; k++)
        {
          g_autofree char *raw = g_key_file_get_value (kf, *g, *k, NULL);
          g_autofree char *val = g_strstrip (g_strdup (raw ? raw : ""));
          if (!set_checked (c, name, *g, *k, val, error))
            return NULL;
        }
    }
  return g_steal_pointer (&c);
}

MhConfig *
mh_config_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) local = NULL;

  if (!g_file_get_contents (path, &data, &len, &local))
    {
      g_set_error (error, MH_CONFIG_ERROR, MH_CONFIG_ERROR_IO, "%s",
                   local->message);
      return NULL;
    }
  return mh_config_load_data (data, (gssize) len, path, error);
}

/* Returns the stored or default text; NULL if unset without default. */
static const char *
lookup (MhConfig *c, const char *section, const char *key,
        const KeySpec **spec_out)
{
  const KeySpec *spec = find_key (section, key);
  if (spec == NULL || (!find_service (section) && !section_known (section)))
    {
      g_critical ("mh_config: no key [%s] %s in the schema", section, key);
      *spec_out = NULL;
      return NULL;
    }
  *spec_out = spec;
  g_autofree char *k = vkey (section, key);
  /* Defaults were filled in by mh_config_new(): a pure read, so a
   * loaded config may be shared by threads. */
  return g_hash_table_lookup (c->values, k);
}

const char *
mh_config_get_string (MhConfig *config, const char *section, const char *key)
{
  const KeySpec *spec;
  g_return_val_if_fail (config != NULL, NULL);
  return lookup (config, section, key, &spec);
}

gint64
mh_config_get_int (MhConfig *config, const char *section, const char *key)
{
  const KeySpec *spec;
  g_return_val_if_fail (config != NULL, 0);
  const char *v = lookup (config, section, key, &spec);
  return v ? g_ascii_strtoll (v, NULL, 10) : 0;
}

gboolean
mh_config_get_bool (MhConfig *config, const char *section, const char *key)
{
  const KeySpec *spec;
  g_return_val_if_fail (config != NULL, FALSE);
  const char *v = lookup (config, section, key, &spec);
  return v != NULL && strcmp (v, "true") == 0;
}

char **
mh_config_get_list (MhConfig *config, const char *section, const char *key)
{
  const KeySpec *spec;
  g_return_val_if_fail (config != NULL, NULL);
  const char *v = lookup (config, section, key, &spec);
  if (v == NULL || *v == '\0')
    return g_new0 (char *, 1);
  return g_strsplit (v, ";", -1);
}

gboolean
mh_config_has_section (MhConfig *config, const char *section)
{
  g_return_val_if_fail (config != NULL, FALSE);
  return g_hash_table_contains (config->sections, section);
}

const char *
mh_config_get_source (MhConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  return config->source;
}

char *
mh_config_to_data (MhConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  GString *out = g_string_new (NULL);
  const char *last = NULL;

  /* fixed sections first, in schema order */
  for (gsize i = 0; i < G_N_ELEMENTS (schema); i++)
    {
      const KeySpec *s = &schema[i];
      if (strcmp (s->section, SVC) == 0 || find_service (s->section))
        continue; /* printed with their service below */
      if (last == NULL || strcmp (last, s->section) != 0)
        g_string_append_printf (out, "%s[%s]\n", last ? "\n" : "",
                                s->section);
      last = s->section;
      const char *v = mh_config_get_string (config, s->section, s->key);
      if (v)
        g_string_append_printf (out, "%s = %s\n", s->key, v);
      else
        g_string_append_printf (out, "# %s =\n", s->key);
    }
  for (const MhCoreService *svc = services; svc->name; svc++)
    {
      g_string_append_printf (out, "\n[%s]\n", svc->name);
      for (gsize i = 0; i < G_N_ELEMENTS (schema); i++)
        if (strcmp (schema[i].section, SVC) == 0
            || strcmp (schema[i].section, svc->name) == 0)
          {
            const char *v
                = mh_config_get_string (config, svc->name, schema[i].key);
            g_string_append_printf (out, "%s = %s\n", schema[i].key,
                                    v ? v : "");
          }
    }
  return g_string_free (out, FALSE);
}
