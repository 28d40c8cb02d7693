/* libmailhost core: export macro, version, error domains, logging and
 * configuration. Every other public header includes this one.
 */
#pragma once

#include <glib.h>
#include <glib-object.h>

#if defined(__GNUC__) || defined(__clang__)
#define MH_API __attribute__ ((visibility ("default"))) extern
#else
#define MH_API extern
#endif

G_BEGIN_DECLS

/**
 * mh_version:
 *
 * Returns: (transfer none): the library version, e.g. "0.1.0".
 *
 * Thread safety: safe.
 */
MH_API const char *mh_version (void);

/**
 * MH_CORE_ERROR:
 *
 * Error domain of lib/core helpers. Codes are in #MhCoreError.
 */
#define MH_CORE_ERROR (mh_core_error_quark ())
MH_API GQuark mh_core_error_quark (void);

/**
 * MhCoreError:
 * @MH_CORE_ERROR_FAILED: any other failure
 * @MH_CORE_ERROR_INVALID: an argument or input value is malformed
 * @MH_CORE_ERROR_LIMIT: an input exceeds a limit from limits.h
 *
 * Codes in %MH_CORE_ERROR.
 */
typedef enum
{
  MH_CORE_ERROR_FAILED,
  MH_CORE_ERROR_INVALID,
  MH_CORE_ERROR_LIMIT,
} MhCoreError;

/* ---- Logging ---------------------------------------------------------- */

/**
 * MhLogLevel:
 * @MH_LOG_ERROR: something failed and was not retried
 * @MH_LOG_WARNING: something is wrong but service continues
 * @MH_LOG_NOTICE: normal but significant (start, stop, auth failure)
 * @MH_LOG_INFO: per-session events (connect, login, delivery)
 * @MH_LOG_DEBUG: protocol detail
 *
 * Severity of a log record, in syslog order.
 */
typedef enum
{
  MH_LOG_ERROR,
  MH_LOG_WARNING,
  MH_LOG_NOTICE,
  MH_LOG_INFO,
  MH_LOG_DEBUG,
} MhLogLevel;

/**
 * MhLogTarget:
 * @MH_LOG_TARGET_AUTO: the journal when stderr is connected to it, else
 *   stderr
 * @MH_LOG_TARGET_STDERR: one line per record on stderr
 * @MH_LOG_TARGET_JOURNAL: the systemd journal, with MH_SERVICE,
 *   MH_SESSION and MH_PEER fields
 *
 * Where mh_log_install() sends records.
 */
typedef enum
{
  MH_LOG_TARGET_AUTO,
  MH_LOG_TARGET_STDERR,
  MH_LOG_TARGET_JOURNAL,
} MhLogTarget;

/**
 * mh_log_message:
 * @level: severity
 * @service: (nullable): the service, e.g. "imap", "mhctl"
 * @session: (nullable): a session id, to follow one connection
 * @peer: (nullable): the remote address, e.g. "192.0.2.1:4242"
 * @message: the text
 *
 * Emits one structured record through GLib's structured logging (log
 * domain "mailhost", fields MH_SERVICE, MH_SESSION, MH_PEER). The library
 * itself never chooses where records go: the program does, with
 * mh_log_install() or its own g_log_set_writer_func().
 *
 * Thread safety: safe.
 */
MH_API void mh_log_message (MhLogLevel level, const char *service,
                            const char *session, const char *peer,
                            const char *message);

/**
 * mh_log_install:
 * @target: where records go
 * @max_level: records less severe than this are dropped
 *
 * For programs, not libraries: installs a GLib log writer for the whole
 * process (g_log_set_writer_func() can be called once per process). Lines
 * on stderr look like
 * `2026-11-25T10:00:00.123Z info imap[s12] 192.0.2.1:4242: login user=a@b`.
 *
 * Thread safety: call once, early, from the main thread.
 */
MH_API void mh_log_install (MhLogTarget target, MhLogLevel max_level);

/**
 * mh_log_level_from_string:
 * @name: "error", "warning", "notice", "info" or "debug"
 * @level_out: (out): the level
 *
 * Returns: %TRUE if @name is a level name.
 */
MH_API gboolean mh_log_level_from_string (const char *name,
                                          MhLogLevel *level_out);

/* ---- Configuration ---------------------------------------------------- */

/**
 * MH_CONFIG_ERROR:
 *
 * Error domain of configuration loading. Codes are in #MhConfigError.
 * Messages always name the file, and the section and key where there is
 * one: `mailhost.conf: [imap] idle_timeout: expected a duration such as
 * 30s, 5m or 2h, got 'soon'`.
 */
#define MH_CONFIG_ERROR (mh_config_error_quark ())
MH_API GQuark mh_config_error_quark (void);

/**
 * MhConfigError:
 * @MH_CONFIG_ERROR_IO: the file could not be read
 * @MH_CONFIG_ERROR_PARSE: not a valid key file
 * @MH_CONFIG_ERROR_UNKNOWN_SECTION: a section no layer knows
 * @MH_CONFIG_ERROR_UNKNOWN_KEY: a key its section does not have
 * @MH_CONFIG_ERROR_BAD_VALUE: a value of the wrong type or out of range
 *
 * Codes in %MH_CONFIG_ERROR.
 */
typedef enum
{
  MH_CONFIG_ERROR_IO,
  MH_CONFIG_ERROR_PARSE,
  MH_CONFIG_ERROR_UNKNOWN_SECTION,
  MH_CONFIG_ERROR_UNKNOWN_KEY,
  MH_CONFIG_ERROR_BAD_VALUE,
} MhConfigError;

/**
 * MhConfig:
 *
 * A validated configuration: a GKeyFile checked against the schema of
 * every layer (docs/config.md), with defaults for what is not set.
 * Reference counted; immutable once loaded, so it may be shared between
 * threads. A reload (SIGHUP) builds a new one.
 */
typedef struct _MhConfig MhConfig;

MH_API GType mh_config_get_type (void) G_GNUC_CONST;
#define MH_TYPE_CONFIG (mh_config_get_type ())

/**
 * mh_config_new:
 *
 * Returns: (transfer full): a configuration holding only defaults.
 */
MH_API MhConfig *mh_config_new (void);

/**
 * mh_config_load:
 * @path: (type filename): the file to read
 * @error: return location for a #GError, or %NULL
 *
 * Reads and validates @path. Nothing is partly applied: either every
 * value is valid and a config is returned, or none is.
 *
 * Returns: (transfer full) (nullable): the config, or %NULL with @error
 *   in %MH_CONFIG_ERROR.
 */
MH_API MhConfig *mh_config_load (const char *path, GError **error);

/**
 * mh_config_load_data:
 * @data: (array length=len) (element-type guint8): key-file text
 * @len: length of @data, or -1 if NUL-terminated
 * @name: the name to use in error messages (a file name)
 * @error: return location for a #GError, or %NULL
 *
 * As mh_config_load() on text in memory.
 *
 * Returns: (transfer full) (nullable): the config, or %NULL with @error
 *   in %MH_CONFIG_ERROR.
 */
MH_API MhConfig *mh_config_load_data (const char *data, gssize len,
                                      const char *name, GError **error);

/**
 * mh_config_ref: (skip)
 *
 * Bindings use the boxed type's own copy and free.
 */
MH_API MhConfig *mh_config_ref (MhConfig *config);
/**
 * mh_config_unref: (skip)
 *
 * NULL-safe.
 */
MH_API void mh_config_unref (MhConfig *config);

/**
 * mh_config_set:
 * @config: a config not yet shared with other threads
 * @section: section name
 * @key: key name
 * @value: the value as it would be written in the file
 * @error: return location for a #GError, or %NULL
 *
 * Sets one value after validating it as the loader would (programs use
 * this for command-line overrides such as --data-dir).
 *
 * Returns: %TRUE, or %FALSE with @error in %MH_CONFIG_ERROR.
 */
MH_API gboolean mh_config_set (MhConfig *config, const char *section,
                               const char *key, const char *value,
                               GError **error);

/**
 * mh_config_get_string:
 * @config: a config
 * @section: section name
 * @key: key name
 *
 * Returns: (transfer none) (nullable): the value or its default, valid as
 *   long as @config; %NULL when unset with no default. Asking for a key
 *   the schema lacks is a programmer error.
 */
MH_API const char *mh_config_get_string (MhConfig *config,
                                         const char *section,
                                         const char *key);

/**
 * mh_config_get_int:
 * @config: a config
 * @section: section name
 * @key: key name of an integer, size (bytes) or duration (seconds) key
 *
 * Returns: the value or its default.
 */
MH_API gint64 mh_config_get_int (MhConfig *config, const char *section,
                                 const char *key);

/**
 * mh_config_get_bool:
 * @config: a config
 * @section: section name
 * @key: key name of a boolean key
 *
 * Returns: the value or its default.
 */
MH_API gboolean mh_config_get_bool (MhConfig *config, const char *section,
                                    const char *key);

/**
 * mh_config_get_list:
 * @config: a config
 * @section: section name
 * @key: key name of a list key
 *
 * Returns: (transfer full) (array zero-terminated=1): the values (maybe
 *   none); free with g_strfreev().
 */
MH_API char **mh_config_get_list (MhConfig *config, const char *section,
                                  const char *key);

/**
 * mh_config_has_section:
 * @config: a config
 * @section: section name
 *
 * Returns: %TRUE if the loaded file had @section.
 */
MH_API gboolean mh_config_has_section (MhConfig *config,
                                       const char *section);

/**
 * mh_config_get_source:
 * @config: a config
 *
 * Returns: (transfer none) (nullable): the file it was loaded from.
 */
MH_API const char *mh_config_get_source (MhConfig *config);

/**
 * mh_config_to_data:
 * @config: a config
 *
 * Returns: (transfer full): the effective configuration (defaults
 *   included) as key-file text, for `--print-config`.
 */
MH_API char *mh_config_to_data (MhConfig *config);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhConfig, mh_config_unref)

G_END_DECLS
