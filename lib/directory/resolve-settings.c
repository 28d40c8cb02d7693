/* lib/directory: syntax checks of the settings that lib/resolve reads
 * (catch_all, routing, subaddress_separator, group_addresses,
 * forward_to). See docs/resolve.md.
 *
 * Design notes
 * - The settings table (records.c) calls these when a value is set, so
 *   a bad value is refused at `mhctl domain set` time with a message
 *   naming the setting, instead of surprising the resolver at RCPT
 *   time. They check syntax only: no transaction is open, so whether a
 *   local catch-all or forward target exists is the resolver's business
 *   (it rejects with a clear trace step when it does not).
 * - Values are stored as given; the resolver normalises them (domain to
 *   A-label, local part folded per the domain) when it reads them.
 * - Lists are bounded so one setting cannot become a mail storm:
 *   MH_LIMIT_FORWARD_TARGETS_MAX forward targets, MH_LIMIT_GROUP_NAMES_MAX
 *   group names.
 */
#include "directory-private.h"

#include <string.h>

/* Characters allowed as sub-address separators: atext that is not a
 * letter or digit. '.' is excluded: it would split first.last. */
#define SEPARATOR_CHARS "+-_=~#%&!$*/?^`{|}'"
#define SEPARATOR_MAX 4

static gboolean
check_address (const char *setting, const char *value, GError **error)
{
  MhDirectoryAddress a;
  g_autoptr (GError) perr = NULL;
  if (!mh_directory__address_parse (value, &a, &perr))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "setting %s: %s", setting, perr->message);
      return FALSE;
    }
  mh_directory__address_clear (&a);
  return TRUE;
}

gboolean
mh_directory__check_catch_all (const char *value, GError **error)
{
  return check_address ("catch_all", value, error);
}

gboolean
mh_directory__check_routing (const char *value, GError **error)
{
  if (strcmp (value, "default") == 0 || strcmp (value, "off") == 0)
    return TRUE;
  g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
               "setting routing: expected 'default' or 'off', got '%s'",
               value);
  return FALSE;
}

gboolean
mh_directory__check_separator (const char *value, GError **error)
{
  if (strcmp (value, "none") == 0)
    return TRUE;
  gsize len = strlen (value);
  if (len == 0 || len > SEPARATOR_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "setting subaddress_separator: expected 1 to %d "
                   "characters (or 'none'), got %zu", SEPARATOR_MAX, len);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    {
      if (strchr (SEPARATOR_CHARS, value[i]) == NULL || value[i] == '\0')
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "setting subaddress_separator: '%c' cannot separate "
                       "a tag (use some of %s)", g_ascii_isprint (value[i])
                       ? value[i] : '?', SEPARATOR_CHARS);
          return FALSE;
        }
      if (memchr (value, value[i], i) != NULL)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "setting subaddress_separator: '%c' is given twice",
                       value[i]);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
mh_directory__check_group_addresses (const char *value, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (value, ",", -1);
  guint n = 0;
  for (guint i = 0; parts[i]; i++)
    {
      g_strstrip (parts[i]);
      if (parts[i][0] == '\0')
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "setting group_addresses: empty name in '%s'", value);
          return FALSE;
        }
      if (strchr (parts[i], '@') != NULL)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "setting group_addresses: '%s' must be a local part "
                       "only (the domain is the one being set)", parts[i]);
          return FALSE;
        }
      g_autofree char *addr = g_strconcat (parts[i], "@group.invalid", NULL);
      if (!check_address ("group_addresses", addr, error))
        return FALSE;
      n++;
    }
  if (n > MH_LIMIT_GROUP_NAMES_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "setting group_addresses: %u names, at most %d", n,
                   MH_LIMIT_GROUP_NAMES_MAX);
      return FALSE;
    }
  return TRUE;
}

gboolean
mh_directory__check_forward_to (const char *value, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (value, ",", -1);
  guint n = 0;
  for (guint i = 0; parts[i]; i++)
    {
      g_strstrip (parts[i]);
      if (parts[i][0] == '\0')
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "setting forward_to: empty address in '%s'", value);
          return FALSE;
        }
      if (!check_address ("forward_to", parts[i], error))
        return FALSE;
      n++;
    }
  if (n > MH_LIMIT_FORWARD_TARGETS_MAX)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "setting forward_to: %u addresses, at most %d", n,
                   MH_LIMIT_FORWARD_TARGETS_MAX);
      return FALSE;
    }
  return TRUE;
}
