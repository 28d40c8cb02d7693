/* lib/quota limits: who may have how much, and the domain-sum rule.
 *
 * Design notes
 * - Limits are directory settings: an account's quota_bytes and
 *   quota_messages, else its domain's account_quota_bytes and
 *   account_quota_messages (the defaults); a domain's quota_bytes and
 *   quota_messages are totals for all its accounts. 0 or unset: no limit.
 * - The domain-sum rule: the limits of a domain's accounts may not add up
 *   to more than the domain's limit. Accounts without a limit are not
 *   counted (nothing is promised to them; the domain total still holds
 *   them at delivery). Every change that can break the rule (a new
 *   account, an account limit, a domain total or default) goes through
 *   check_sum() below.
 * - Check and change are not one transaction of the directory, so they
 *   run inside a write transaction of quota.mdb, which LMDB serialises
 *   across processes: two `mhctl quota set` at once cannot both squeeze
 *   under the domain's limit. (Direct mh_directory_*_set_setting() calls
 *   bypass the rule; mhctl routes quota settings through here.)
 * - Messages name the domain in its display form and sizes in binary
 *   units: "accounts of example.org would total 12 GiB, over the
 *   domain's 10 GiB".
 */
#include "quota-private.h"
#include "directory/directory-private.h"

#include <stdlib.h>
#include <string.h>

void
mh_quota__limits_clear (MhQuotaLimits *lim)
{
  g_free (lim->address);
  g_free (lim->local);
  g_free (lim->domain);
  g_free (lim->domain_name);
  memset (lim, 0, sizeof *lim);
}

/* Maps a directory error to ours where the meaning is the same, so
 * callers test one domain; the message is kept. */
static void
propagate_dir_error (GError **error, GError *e)
{
  if (e->domain == MH_DIRECTORY_ERROR
      && e->code == MH_DIRECTORY_ERROR_NOT_FOUND)
    {
      g_set_error_literal (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_NOT_FOUND,
                           e->message);
      g_error_free (e);
    }
  else if (e->domain == MH_DIRECTORY_ERROR
           && e->code == MH_DIRECTORY_ERROR_INVALID)
    {
      g_set_error_literal (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                           e->message);
      g_error_free (e);
    }
  else
    g_propagate_error (error, e);
}

static gboolean
lookup_u64 (GVariant *settings, const char *name, guint64 *out)
{
  return settings != NULL && g_variant_lookup (settings, name, "t", out);
}

static gboolean
lookup_bool (GVariant *settings, const char *name, gboolean *out)
{
  return settings != NULL && g_variant_lookup (settings, name, "b", out);
}

gboolean
mh_quota__account_limits (MhQuota *quota, const char *address,
                          MhQuotaLimits *out, GError **error)
{
  memset (out, 0, sizeof *out);
  GError *e = NULL;
  g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (quota->dir,
                                                             address, &e);
  if (a == NULL)
    {
      propagate_dir_error (error, e);
      return FALSE;
    }
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (
      quota->dir, mh_account_info_get_ascii_domain (a), &e);
  if (d == NULL)
    {
      propagate_dir_error (error, e);
      return FALSE;
    }
  GVariant *as = mh_account_info_get_settings (a);
  GVariant *ds = mh_domain_info_get_settings (d);
  out->address = g_strdup (mh_account_info_get_ascii_address (a));
  out->local = g_strdup (mh_account_info_get_local_part (a));
  out->domain = g_strdup (mh_account_info_get_ascii_domain (a));
  out->domain_name = g_strdup (mh_domain_info_get_name (d));
  if (!lookup_u64 (as, "quota_bytes", &out->bytes))
    lookup_u64 (ds, "account_quota_bytes", &out->bytes);
  if (!lookup_u64 (as, "quota_messages", &out->messages))
    lookup_u64 (ds, "account_quota_messages", &out->messages);
  lookup_u64 (ds, "quota_bytes", &out->domain_bytes);
  lookup_u64 (ds, "quota_messages", &out->domain_messages);
  out->tempfail = quota->tempfail;
  lookup_bool (ds, "quota_tempfail", &out->tempfail);
  return TRUE;
}

/* The delivery path: an attached account's names are known, so read its
 * record and its domain's in one directory transaction, without building
 * info objects (a domain info counts the domain's accounts and aliases, a
 * cursor walk that grows with the domain). FALSE (nothing set) when a
 * record is missing or unreadable: the caller takes the slow path, whose
 * errors say what is wrong. */
gboolean
mh_quota__account_limits_fast (MhQuota *quota, const char *domain,
                               const char *local, MhQuotaLimits *out)
{
  memset (out, 0, sizeof *out);
  MhDirectory *dir = quota->dir;
  MDB_txn *txn = mh_directory__txn_begin (dir, FALSE, NULL);
  if (txn == NULL)
    return FALSE;
  g_autofree char *akey = mh_directory__address_key (local, domain);
  MDB_val ak = { strlen (akey), akey }, dk = { strlen (domain),
                                               (void *) domain };
  MDB_val av, dv;
  MhAccountRecord ar = { 0 };
  MhDomainRecord dr = { 0 };
  gboolean ok = mdb_get (txn, dir->dbs.accounts, &ak, &av) == 0
                && mdb_get (txn, dir->dbs.domains, &dk, &dv) == 0
                && mh_account_record_decode (av.mv_data, av.mv_size, akey,
                                             &ar, NULL)
                && mh_domain_record_decode (dv.mv_data, dv.mv_size, domain,
                                            &dr, NULL);
  mdb_txn_abort (txn);
  if (ok)
    {
      out->address = g_strconcat (local, "@", domain, NULL);
      out->local = g_strdup (local);
      out->domain = g_strdup (domain);
      out->domain_name = mh_directory_domain_to_unicode (domain);
      if (!lookup_u64 (ar.settings, "quota_bytes", &out->bytes))
        lookup_u64 (dr.settings, "account_quota_bytes", &out->bytes);
      if (!lookup_u64 (ar.settings, "quota_messages", &out->messages))
        lookup_u64 (dr.settings, "account_quota_messages", &out->messages);
      lookup_u64 (dr.settings, "quota_bytes", &out->domain_bytes);
      lookup_u64 (dr.settings, "quota_messages", &out->domain_messages);
      out->tempfail = quota->tempfail;
      lookup_bool (dr.settings, "quota_tempfail", &out->tempfail);
    }
  mh_account_record_clear (&ar);
  mh_domain_record_clear (&dr);
  return ok;
}

/* ---- Sizes -------------------------------------------------------------- */

gboolean
mh_quota_parse_size (const char *text, guint64 *bytes_out, GError **error)
{
  g_return_val_if_fail (bytes_out != NULL, FALSE);
  if (text == NULL || *text == '\0')
    {
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                   "expected a size such as 500M or 2G, got ''");
      return FALSE;
    }
  if (g_ascii_strcasecmp (text, "none") == 0
      || g_ascii_strcasecmp (text, "unlimited") == 0)
    {
      *bytes_out = 0;
      return TRUE;
    }
  /* digits [. digits] [K|M|G|T [i] [B]] */
  const char *p = text;
  guint64 whole = 0;
  while (g_ascii_isdigit (*p))
    {
      if (whole > G_MAXUINT64 / 10 - 10)
        goto bad;
      whole = whole * 10 + (guint64) (*p++ - '0');
    }
  if (p == text)
    goto bad;
  guint64 frac = 0, frac_div = 1;
  if (*p == '.')
    {
      p++;
      if (!g_ascii_isdigit (*p))
        goto bad;
      while (g_ascii_isdigit (*p))
        {
          if (frac_div < 1000000000)
            {
              frac = frac * 10 + (guint64) (*p - '0');
              frac_div *= 10;
            }
          p++;
        }
    }
  guint shift = 0;
  switch (g_ascii_toupper (*p))
    {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    case 'B': case '\0': break;
    default: goto bad;
    }
  if (shift)
    {
      p++;
      if (*p == 'i' || *p == 'I')
        p++;
    }
  if (*p == 'B' || *p == 'b')
    p++;
  if (*p != '\0' || (frac_div > 1 && shift == 0))
    goto bad;
  if (whole > (G_MAXUINT64 >> shift) / 2)
    goto bad;
  *bytes_out = (whole << shift) + ((frac << shift) / frac_div);
  return TRUE;
bad:
  g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
               "expected a size such as 500M or 2G, got '%s'", text);
  return FALSE;
}

char *
mh_quota_format_size (guint64 bytes)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB",
                                       "EiB" };
  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " bytes", bytes);
  guint u = 0;
  while (u + 1 < G_N_ELEMENTS (units) && bytes >= (guint64) 1 << (10 * (u + 2)))
    u++;
  guint64 unit = (guint64) 1 << (10 * (u + 1));
  if (bytes % unit == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " %s", bytes / unit,
                            units[u]);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd (buf, sizeof buf, "%.1f", (double) bytes / (double) unit);
  return g_strdup_printf ("%s %s", buf, units[u]);
}

/* ---- The domain-sum rule -------------------------------------------- */

typedef struct
{
  guint64 bytes;             /* limits of accounts that have one */
  guint64 messages;
} Sum;

/* Sums the limits of @domain's accounts, using @def_bytes/@def_messages
 * for accounts without their own, skipping @skip (ascii address). */
static gboolean
sum_accounts (MhQuota *quota, const char *domain, const char *skip,
              guint64 def_bytes, guint64 def_messages, Sum *out,
              GError **error)
{
  memset (out, 0, sizeof *out);
  GError *e = NULL;
  g_autoptr (MhAccountInfoList) list = mh_directory_account_list (quota->dir,
                                                                  domain, &e);
  if (list == NULL)
    {
      propagate_dir_error (error, e);
      return FALSE;
    }
  for (guint i = 0; i < list->len; i++)
    {
      MhAccountInfo *a = list->pdata[i];
      if (skip && strcmp (mh_account_info_get_ascii_address (a), skip) == 0)
        continue;
      GVariant *s = mh_account_info_get_settings (a);
      guint64 b = def_bytes, m = def_messages;
      lookup_u64 (s, "quota_bytes", &b);
      lookup_u64 (s, "quota_messages", &m);
      out->bytes = b > G_MAXUINT64 - out->bytes ? G_MAXUINT64 : out->bytes + b;
      out->messages = m > G_MAXUINT64 - out->messages ? G_MAXUINT64
                                                      : out->messages + m;
    }
  return TRUE;
}

static gboolean
check_sum (const char *domain_name, const Sum *sum, guint64 dom_bytes,
           guint64 dom_messages, GError **error)
{
  if (dom_bytes != 0 && sum->bytes > dom_bytes)
    {
      g_autofree char *a = mh_quota_format_size (sum->bytes);
      g_autofree char *b = mh_quota_format_size (dom_bytes);
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                   "accounts of %s would total %s, over the domain's %s",
                   domain_name, a, b);
      return FALSE;
    }
  if (dom_messages != 0 && sum->messages > dom_messages)
    {
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                   "accounts of %s would total %" G_GUINT64_FORMAT
                   " messages, over the domain's %" G_GUINT64_FORMAT,
                   domain_name, sum->messages, dom_messages);
      return FALSE;
    }
  return TRUE;
}

static gboolean
valid_limit (gint64 v, const char *what, GError **error)
{
  if (v >= 0 || v == MH_QUOTA_KEEP || v == MH_QUOTA_UNSET)
    return TRUE;
  g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
               "%s: %" G_GINT64_FORMAT " is not a limit", what, v);
  return FALSE;
}

/* The value a limit will have: @v, or the current one for KEEP, or
 * @unset_value for UNSET. */
static guint64
next_value (gint64 v, GVariant *settings, const char *name,
            guint64 unset_value)
{
  guint64 cur = unset_value;
  if (v >= 0)
    return (guint64) v;
  if (v == MH_QUOTA_UNSET)
    return unset_value;
  lookup_u64 (settings, name, &cur);
  return cur;
}

typedef gboolean (*SetFunc) (MhDirectory *dir, const char *target,
                             const char *name, const char *value,
                             GError **error);

static gboolean
apply (MhDirectory *dir, SetFunc set, const char *target, const char *name,
       gint64 v, GError **error)
{
  if (v == MH_QUOTA_KEEP)
    return TRUE;
  g_autofree char *text = v >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT, v)
                                 : NULL;
  return set (dir, target, name, text, error);
}

gboolean
mh_quota_set_account (MhQuota *quota, const char *address, gint64 bytes,
                      gint64 messages, GError **error)
{
  g_return_val_if_fail (quota != NULL && address != NULL, FALSE);
  if (!valid_limit (bytes, "storage", error)
      || !valid_limit (messages, "messages", error))
    return FALSE;
  MDB_txn *lock;
  if (!mh_quota__txn_begin (quota, TRUE, &lock, error))
    return FALSE;
  GError *e = NULL;
  g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (quota->dir,
                                                             address, &e);
  g_autoptr (MhDomainInfo) d = a ? mh_directory_domain_lookup (
                                       quota->dir,
                                       mh_account_info_get_ascii_domain (a),
                                       &e)
                                 : NULL;
  gboolean ok = d != NULL;
  if (!ok)
    propagate_dir_error (error, e);
  if (ok)
    {
      GVariant *ds = mh_domain_info_get_settings (d);
      GVariant *as = mh_account_info_get_settings (a);
      guint64 def_b = 0, def_m = 0, dom_b = 0, dom_m = 0;
      lookup_u64 (ds, "account_quota_bytes", &def_b);
      lookup_u64 (ds, "account_quota_messages", &def_m);
      lookup_u64 (ds, "quota_bytes", &dom_b);
      lookup_u64 (ds, "quota_messages", &dom_m);
      /* The account's limit after the change (own, or the default). */
      guint64 cur_b = def_b, cur_m = def_m;
      lookup_u64 (as, "quota_bytes", &cur_b);
      lookup_u64 (as, "quota_messages", &cur_m);
      guint64 nb = bytes == MH_QUOTA_KEEP ? cur_b
                   : bytes == MH_QUOTA_UNSET ? def_b : (guint64) bytes;
      guint64 nm = messages == MH_QUOTA_KEEP ? cur_m
                   : messages == MH_QUOTA_UNSET ? def_m : (guint64) messages;
      Sum sum;
      ok = sum_accounts (quota, mh_account_info_get_ascii_domain (a),
                         mh_account_info_get_ascii_address (a), def_b, def_m,
                         &sum, error);
      if (ok)
        {
          sum.bytes += nb;
          sum.messages += nm;
          ok = check_sum (mh_domain_info_get_name (d), &sum, dom_b, dom_m,
                          error);
        }
      const char *addr = mh_account_info_get_ascii_address (a);
      ok = ok
           && apply (quota->dir, mh_directory_account_set_setting, addr,
                     "quota_bytes", bytes, error)
           && apply (quota->dir, mh_directory_account_set_setting, addr,
                     "quota_messages", messages, error);
    }
  mdb_txn_abort (lock);
  return ok;
}

gboolean
mh_quota_set_domain (MhQuota *quota, const char *domain, gint64 bytes,
                     gint64 messages, gint64 account_bytes,
                     gint64 account_messages, GError **error)
{
  g_return_val_if_fail (quota != NULL && domain != NULL, FALSE);
  if (!valid_limit (bytes, "storage", error)
      || !valid_limit (messages, "messages", error)
      || !valid_limit (account_bytes, "account storage", error)
      || !valid_limit (account_messages, "account messages", error))
    return FALSE;
  MDB_txn *lock;
  if (!mh_quota__txn_begin (quota, TRUE, &lock, error))
    return FALSE;
  GError *e = NULL;
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (quota->dir,
                                                           domain, &e);
  gboolean ok = d != NULL;
  if (!ok)
    propagate_dir_error (error, e);
  if (ok)
    {
      GVariant *ds = mh_domain_info_get_settings (d);
      guint64 nb = next_value (bytes, ds, "quota_bytes", 0);
      guint64 nm = next_value (messages, ds, "quota_messages", 0);
      guint64 ndb = next_value (account_bytes, ds, "account_quota_bytes", 0);
      guint64 ndm = next_value (account_messages, ds,
                                "account_quota_messages", 0);
      const char *ascii = mh_domain_info_get_ascii_name (d);
      Sum sum;
      ok = sum_accounts (quota, ascii, NULL, ndb, ndm, &sum, error)
           && check_sum (mh_domain_info_get_name (d), &sum, nb, nm, error);
      /* A default larger than the total can never be given out. */
      if (ok && ((nb && ndb > nb) || (nm && ndm > nm)))
        {
          g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_OVER_DOMAIN,
                       "the default account quota of %s would be over the "
                       "domain's own quota", mh_domain_info_get_name (d));
          ok = FALSE;
        }
      ok = ok
           && apply (quota->dir, mh_directory_domain_set_setting, ascii,
                     "quota_bytes", bytes, error)
           && apply (quota->dir, mh_directory_domain_set_setting, ascii,
                     "quota_messages", messages, error)
           && apply (quota->dir, mh_directory_domain_set_setting, ascii,
                     "account_quota_bytes", account_bytes, error)
           && apply (quota->dir, mh_directory_domain_set_setting, ascii,
                     "account_quota_messages", account_messages, error);
    }
  mdb_txn_abort (lock);
  return ok;
}

gboolean
mh_quota_account_add (MhQuota *quota, const char *address,
                      const char *password, gint64 bytes, gint64 messages,
                      GError **error)
{
  g_return_val_if_fail (quota != NULL && address != NULL, FALSE);
  if ((bytes < 0 && bytes != MH_QUOTA_KEEP)
      || (messages < 0 && messages != MH_QUOTA_KEEP))
    {
      g_set_error (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID,
                   "a new account's limit is a size or MH_QUOTA_KEEP");
      return FALSE;
    }
  const char *at = strrchr (address, '@');
  if (at == NULL || at[1] == '\0')
    {
      /* Let the directory word the error about the address. */
      return mh_directory_account_add (quota->dir, address, password, error);
    }
  MDB_txn *lock;
  if (!mh_quota__txn_begin (quota, TRUE, &lock, error))
    return FALSE;
  GError *e = NULL;
  g_autoptr (MhDomainInfo) d = mh_directory_domain_lookup (quota->dir,
                                                           at + 1, &e);
  gboolean ok = d != NULL;
  if (!ok)
    g_propagate_error (error, e);
  if (ok)
    {
      GVariant *ds = mh_domain_info_get_settings (d);
      guint64 def_b = 0, def_m = 0, dom_b = 0, dom_m = 0;
      lookup_u64 (ds, "account_quota_bytes", &def_b);
      lookup_u64 (ds, "account_quota_messages", &def_m);
      lookup_u64 (ds, "quota_bytes", &dom_b);
      lookup_u64 (ds, "quota_messages", &dom_m);
      Sum sum;
      ok = sum_accounts (quota, mh_domain_info_get_ascii_name (d), NULL,
                         def_b, def_m, &sum, error);
      if (ok)
        {
          sum.bytes += bytes >= 0 ? (guint64) bytes : def_b;
          sum.messages += messages >= 0 ? (guint64) messages : def_m;
          ok = check_sum (mh_domain_info_get_name (d), &sum, dom_b, dom_m,
                          error);
        }
      ok = ok && mh_directory_account_add (quota->dir, address, password,
                                           error);
      if (ok && (bytes >= 0 || messages >= 0))
        {
          g_autoptr (MhAccountInfo) a = mh_directory_account_lookup (
              quota->dir, address, error);
          const char *addr = a ? mh_account_info_get_ascii_address (a) : NULL;
          ok = a != NULL
               && apply (quota->dir, mh_directory_account_set_setting, addr,
                         "quota_bytes", bytes, error)
               && apply (quota->dir, mh_directory_account_set_setting, addr,
                         "quota_messages", messages, error);
          /* All or nothing: an account without its limit would break the
           * rule this call just checked. */
          if (!ok && addr != NULL)
            mh_directory_account_delete (quota->dir, addr, NULL);
        }
    }
  mdb_txn_abort (lock);
  return ok;
}
