/* lib/resolve: the resolver. From one recipient address to its targets,
 * in one LMDB read transaction.
 *
 * Design notes
 * - Rules for local@domain, in order (docs/resolve.md):
 *     domain: hosted, or a domain alias (one hop; then its target), or
 *       not local (rejected at the top, a forward inside an expansion);
 *     1 account  2 alias  3 temporary alias  4 group address
 *     5 sub-address: local+tag tries 1-4 for "local", keeping the tag
 *     6 catch-all of the domain  7 unknown (550 5.1.1)
 *   With routing=off, 5 and 6 are skipped: only listed addresses pass.
 *   An account with forward_to expands to those addresses (plus itself
 *   with forward_keep_copy). Alias, temporary-alias, forward and
 *   catch-all targets are expanded with the same rules one level deeper.
 * - Safety: the chain of addresses being expanded (one key per depth)
 *   is kept on the stack; meeting one of them again is a LOOP, going
 *   deeper than max_depth is DEPTH, more distinct targets than
 *   max_fanout (max_group for a group) or more rules looked at than
 *   max_steps is FANOUT. Each is an error naming the chain or the
 *   limit, never a hang or a mail storm. Equal targets collapse into one.
 * - Cost: one reusable read transaction (mdb_txn_reset/renew: no malloc,
 *   one reader slot kept per resolver), addresses normalised into stack
 *   buffers (ASCII fast path; UTF-8, quoted local parts and IDNA go
 *   through lib/directory's parser), records read in place
 *   (record.c), trace text formatted only when asked for. Domain
 *   policies (settings decoded from GVariant) are cached per resolver,
 *   keyed by the name AND checked against the stored bytes whenever the
 *   snapshot changed (mdb_txn_id: it grows with every commit, by any
 *   process): in the same snapshot nothing can differ, in a newer one a
 *   changed record shows as changed bytes, so the cache is never stale,
 *   even with mhctl writing while a server reads.
 * - Rejection texts never name an address other than the one asked for
 *   (an alias's internals are not the sender's business); the trace
 *   holds the details for the administrator.
 * - Clock: expiry of temporary aliases is judged at the resolver's time
 *   (mh_resolver_set_time(), else the wall clock), read at most once per
 *   resolution and only when a temporary alias is met (a clock read is
 *   a few percent of a plain-account resolution on a VM).
 */
#include "resolve-private.h"

#include <string.h>

#define DEPTH_CAP 32
#define LOCAL_BUF (4 * MH_LIMIT_LOCAL_PART_MAX + 8)
#define DOMAIN_BUF (MH_LIMIT_DOMAIN_MAX + 8)
#define KEY_BUF (DOMAIN_BUF + LOCAL_BUF + 2)
#define CACHE_MAX 4096
#define SEP_MAX 8

/* ---- The resolver and its domain cache -------------------------------- */

typedef struct
{
  gboolean is_alias;      /* from domain_aliases, else domains */
  char *raw;              /* the stored value, to validate the entry */
  gsize raw_len;
  gsize txnid;            /* the snapshot it was last checked in */
  char *alias_target;     /* is_alias: the hosted domain, A-label */
  gboolean cs;            /* case_sensitive_local_part */
  gboolean routing_off;
  char sep[SEP_MAX];      /* sub-address separators; "" = off */
  char *catch_all;        /* as set, or NULL */
  char **groups;          /* folded group local parts, or NULL */
} DomainEntry;

struct _MhResolver
{
  gint refcount;
  MhDirectory *dir;
  MhResolveLimits limits;
  MDB_txn *txn;           /* reset between resolutions, or NULL */
  GHashTable *domains;    /* A-label -> DomainEntry */
  gint64 now;             /* 0: the clock */
};

static void
domain_entry_free (gpointer p)
{
  DomainEntry *e = p;
  g_free (e->raw);
  g_free (e->alias_target);
  g_free (e->catch_all);
  g_strfreev (e->groups);
  g_free (e);
}

MhResolver *
mh_resolver_new (MhDirectory *dir, const MhResolveLimits *limits)
{
  g_return_val_if_fail (dir != NULL, NULL);
  MhResolver *r = g_new0 (MhResolver, 1);
  r->refcount = 1;
  r->dir = mh_directory_ref (dir);
  if (limits != NULL)
    r->limits = *limits;
  r->limits.version = 1;
  if (r->limits.max_depth == 0)
    r->limits.max_depth = MH_LIMIT_RESOLVE_DEPTH_MAX;
  r->limits.max_depth = MIN (r->limits.max_depth, DEPTH_CAP - 1);
  if (r->limits.max_fanout == 0)
    r->limits.max_fanout = MH_LIMIT_RESOLVE_FANOUT_MAX;
  if (r->limits.max_group == 0)
    r->limits.max_group = MH_LIMIT_RESOLVE_GROUP_MAX;
  if (r->limits.max_steps == 0)
    r->limits.max_steps = MH_LIMIT_RESOLVE_STEPS_MAX;
  r->domains = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      domain_entry_free);
  return r;
}

MhResolver *
mh_resolver_ref (MhResolver *resolver)
{
  g_return_val_if_fail (resolver != NULL, NULL);
  g_atomic_int_inc (&resolver->refcount);
  return resolver;
}

void
mh_resolver_unref (MhResolver *resolver)
{
  if (resolver == NULL || !g_atomic_int_dec_and_test (&resolver->refcount))
    return;
  if (resolver->txn != NULL)
    mdb_txn_abort (resolver->txn);
  g_hash_table_unref (resolver->domains);
  mh_directory_unref (resolver->dir);
  g_free (resolver);
}

G_DEFINE_BOXED_TYPE (MhResolver, mh_resolver, mh_resolver_ref,
                     mh_resolver_unref)

void
mh_resolver_set_time (MhResolver *resolver, gint64 now)
{
  g_return_if_fail (resolver != NULL);
  resolver->now = now;
}

/* ---- One resolution --------------------------------------------------- */

typedef struct
{
  char local[LOCAL_BUF];   /* canonical local part, not yet folded */
  gsize llen;
  char domain[DOMAIN_BUF]; /* A-label */
  gsize dlen;
} Addr;

typedef struct
{
  MhResolver *r;
  MDB_txn *txn;
  MhResolveResult *res;
  gboolean trace;
  const char *sender;
  gboolean authenticated;
  gint64 now;
  guint steps;
  guint cap;               /* fan-out cap now in force */
  char path[DEPTH_CAP][KEY_BUF];
  GError **error;
} Run;

#define TRACE(run, rule, depth, addr, ...)                                  \
  do                                                                        \
    {                                                                       \
      if ((run)->trace)                                                     \
        {                                                                   \
          char text_[512];                                                  \
          g_snprintf (text_, sizeof text_, __VA_ARGS__);                    \
          mh_resolve__result_add_step ((run)->res, (rule), (depth), (addr), \
                                       text_);                              \
        }                                                                   \
    }                                                                       \
  while (0)

static gboolean
dir_error (Run *run, int rc, const char *what)
{
  g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DIRECTORY,
               "%s: cannot read %s: %s", mh_directory_get_path (run->r->dir),
               what, mdb_strerror (rc));
  return FALSE;
}

static gboolean
corrupt (Run *run, const char *kind, const char *key)
{
  g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DIRECTORY,
               "%s: the record of %s '%s' is corrupt",
               mh_directory_get_path (run->r->dir), kind, key);
  return FALSE;
}

/* ---- Normalisation ---------------------------------------------------- */

/* RFC 5322 atext, as a table: this runs for every byte of every RCPT. */
static const guint8 atext_table[128] = {
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
  ['*'] = 1, ['+'] = 1, ['-'] = 1, ['/'] = 1, ['='] = 1, ['?'] = 1,
  ['^'] = 1, ['_'] = 1, ['`'] = 1, ['{'] = 1, ['|'] = 1, ['}'] = 1,
  ['~'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
  ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
  ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
  ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
  ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
  ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
  ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
  ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
  ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
  ['y'] = 1, ['z'] = 1,
};

static inline gboolean
is_atext (guchar c)
{
  return c < 128 && atext_table[c];
}

static inline char
lower (char c)
{
  return c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c;
}

/* "a@b" into @out (KEY_BUF bytes); returns the length. */
static gsize
join (char *out, const char *a, gsize alen, const char *b, gsize blen)
{
  if (alen + 1 + blen >= KEY_BUF)
    {
      alen = MIN (alen, (gsize) KEY_BUF / 2 - 1);
      blen = MIN (blen, (gsize) KEY_BUF / 2 - 1);
    }
  memcpy (out, a, alen);
  out[alen] = '@';
  memcpy (out + alen + 1, b, blen);
  out[alen + 1 + blen] = '\0';
  return alen + 1 + blen;
}

/* LDH domain, lower-cased into @out; FALSE for anything the fast path
 * does not handle (the slow path then decides, with its messages). */
static gboolean
fast_domain (const char *d, gsize len, char *out, gsize *out_len)
{
  if (len > 0 && d[len - 1] == '.')
    len--;
  if (len == 0 || len > MH_LIMIT_DOMAIN_MAX)
    return FALSE;
  gsize label = 0, labels = 1, last_start = 0;
  gboolean digits_only = TRUE;
  for (gsize i = 0; i < len; i++)
    {
      char c = d[i];
      if (c == '.')
        {
          if (label == 0 || out[i - 1] == '-')
            return FALSE;
          label = 0;
          labels++;
          last_start = i + 1;
          digits_only = TRUE;
          out[i] = '.';
          continue;
        }
      if (!g_ascii_isalnum (c) && c != '-')
        return FALSE;
      if (c == '-' && label == 0)
        return FALSE;
      /* "xn--" and other "??--" labels go to libidn2. */
      if (c == '-' && label == 3 && out[i - 1] == '-')
        return FALSE;
      if (!g_ascii_isdigit (c))
        digits_only = FALSE;
      out[i] = lower (c);
      if (++label > MH_LIMIT_DOMAIN_LABEL_MAX)
        return FALSE;
    }
  if (label == 0 || out[len - 1] == '-' || labels < 2 || digits_only)
    return FALSE;
  (void) last_start;
  out[len] = '\0';
  *out_len = len;
  return TRUE;
}

static gboolean
fast_local (const char *l, gsize len)
{
  if (len == 0 || len > MH_LIMIT_LOCAL_PART_MAX || l[0] == '.'
      || l[len - 1] == '.')
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (l[i] == '.')
        {
          if (l[i + 1] == '.')
            return FALSE;
        }
      else if (!is_atext ((guchar) l[i]))
        return FALSE;
    }
  return TRUE;
}

/* Normalises @in (not NUL-terminated) into @out. @top: the address asked
 * for (angle brackets, <> and source routes are recognised there). */
static gboolean
normalise (const char *in, gsize len, gboolean top, Addr *out,
           GError **error)
{
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) in[i];
      if (c == '\0')
        {
          g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                       "address contains a NUL byte at offset %zu", i);
          return FALSE;
        }
      if (c < 0x20 || c == 0x7f)
        {
          g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                       "address contains control character 0x%02x at "
                       "offset %zu", c, i);
          return FALSE;
        }
    }
  if (top && len >= 1 && in[0] == '<')
    {
      if (in[len - 1] != '>')
        {
          g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                       "address '%.*s' opens '<' without closing '>'",
                       (int) MIN (len, 300), in);
          return FALSE;
        }
      in++;
      len -= 2;
      if (len == 0)
        {
          g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                       "<> is the null reverse-path (RFC 5321 4.5.5): it "
                       "names no mailbox to resolve");
          return FALSE;
        }
    }
  if (len == 0)
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address is empty");
      return FALSE;
    }
  if (in[0] == '@' && memchr (in, ':', len) != NULL)
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address '%.*s' has a source route (@host,...:); source "
                   "routes are not accepted (RFC 5321 4.1.2 and appendix C)",
                   (int) MIN (len, 300), in);
      return FALSE;
    }
  if (len > MH_LIMIT_ADDRESS_MAX * 4)
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address '%.40s...' is too long: %zu octets, at most %d "
                   "(RFC 5321 4.5.3.1.3)", in, len, MH_LIMIT_ADDRESS_MAX);
      return FALSE;
    }
  const char *at = NULL;
  gboolean ascii = TRUE;
  for (gsize i = 0; i < len; i++)
    {
      if (in[i] == '@')
        at = in + i;
      if ((guchar) in[i] >= 0x80)
        ascii = FALSE;
    }
  if (!ascii && !g_utf8_validate (in, (gssize) len, NULL))
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address is not valid UTF-8");
      return FALSE;
    }
  if (at == NULL)
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address '%.*s' has no '@domain'", (int) MIN (len, 300),
                   in);
      return FALSE;
    }
  gsize llen = (gsize) (at - in);
  if (llen == 0)
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address '%.*s' has an empty local part",
                   (int) MIN (len, 300), in);
      return FALSE;
    }
  if (ascii && llen <= MH_LIMIT_LOCAL_PART_MAX && len <= MH_LIMIT_ADDRESS_MAX
      && fast_local (in, llen)
      && fast_domain (at + 1, len - llen - 1, out->domain, &out->dlen))
    {
      memcpy (out->local, in, llen);
      out->local[llen] = '\0';
      out->llen = llen;
      if (llen + 1 + out->dlen <= MH_LIMIT_ADDRESS_MAX)
        return TRUE;
    }
  /* Slow path: quoted local parts, UTF-8 (NFC), IDNA, and the precise
   * message for anything wrong. */
  g_autofree char *copy = g_strndup (in, len);
  MhDirectoryAddress a;
  g_autoptr (GError) perr = NULL;
  if (!mh_directory__address_parse (copy, &a, &perr))
    {
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID, "%s",
                   perr->message);
      return FALSE;
    }
  gsize l = strlen (a.local), d = strlen (a.domain);
  if (l >= sizeof out->local || d >= sizeof out->domain)
    {
      mh_directory__address_clear (&a);
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_INVALID,
                   "address '%s' is too long", copy);
      return FALSE;
    }
  memcpy (out->local, a.local, l + 1);
  out->llen = l;
  memcpy (out->domain, a.domain, d + 1);
  out->dlen = d;
  mh_directory__address_clear (&a);
  return TRUE;
}

/* Folds @local into @out per @cs. */
static void
fold (const char *local, gsize len, gboolean cs, char *out, gsize *out_len)
{
  gboolean ascii = TRUE;
  for (gsize i = 0; i < len && ascii; i++)
    ascii = (guchar) local[i] < 0x80;
  if (cs || !ascii)
    {
      if (cs)
        {
          memcpy (out, local, len);
          out[len] = '\0';
          *out_len = len;
          return;
        }
      /* Same folding as lib/directory (keys must match). */
      g_autofree char *f = mh_directory__local_fold (local, FALSE);
      gsize fl = MIN (strlen (f), (gsize) LOCAL_BUF - 1);
      memcpy (out, f, fl);
      out[fl] = '\0';
      *out_len = fl;
      return;
    }
  for (gsize i = 0; i < len; i++)
    out[i] = lower (local[i]);
  out[len] = '\0';
  *out_len = len;
}

/* ---- Domains ---------------------------------------------------------- */

static DomainEntry *
entry_build (gboolean is_alias, const MDB_val *v, const char *alabel,
             GError **error)
{
  DomainEntry *e = g_new0 (DomainEntry, 1);
  e->is_alias = is_alias;
  e->raw = g_memdup2 (v->mv_data, v->mv_size);
  e->raw_len = v->mv_size;
  const MhRecordWhat *what
      = MH_RECORD_WHAT (is_alias ? "domain alias" : "domain", alabel, NULL);
  if (is_alias)
    {
      MhDomainAliasRecord da;
      if (!mh_domain_alias_record_decode_named (v->mv_data, v->mv_size, what,
                                                &da, error))
        {
          domain_entry_free (e);
          return NULL;
        }
      e->alias_target = g_steal_pointer (&da.target);
      mh_domain_alias_record_clear (&da);
      return e;
    }
  MhDomainRecord dom;
  if (!mh_domain_record_decode_named (v->mv_data, v->mv_size, what, &dom,
                                      error))
    {
      domain_entry_free (e);
      return NULL;
    }
  g_variant_lookup (dom.settings, "case_sensitive_local_part", "b", &e->cs);
  const char *s = NULL;
  if (g_variant_lookup (dom.settings, "routing", "&s", &s))
    e->routing_off = g_strcmp0 (s, "off") == 0;
  strcpy (e->sep, "+");
  if (g_variant_lookup (dom.settings, "subaddress_separator", "&s", &s))
    {
      if (strcmp (s, "none") == 0)
        e->sep[0] = '\0';
      else
        g_strlcpy (e->sep, s, sizeof e->sep);
    }
  if (g_variant_lookup (dom.settings, "catch_all", "&s", &s) && *s)
    e->catch_all = g_strdup (s);
  if (g_variant_lookup (dom.settings, "group_addresses", "&s", &s) && *s)
    {
      e->groups = g_strsplit (s, ",", -1);
      for (guint i = 0; e->groups[i]; i++)
        {
          g_strstrip (e->groups[i]);
          char buf[LOCAL_BUF];
          gsize bl;
          fold (e->groups[i], MIN (strlen (e->groups[i]), LOCAL_BUF - 1),
                e->cs, buf, &bl);
          g_free (e->groups[i]);
          e->groups[i] = g_strdup (buf);
        }
    }
  mh_domain_record_clear (&dom);
  return e;
}

/* 1 found (*out set), 0 neither hosted nor a domain alias, -1 error. */
static int
domain_get (Run *run, const char *alabel, gsize alen, DomainEntry **out)
{
  MhDirectoryDbs *dbs = &run->r->dir->dbs;
  /* Same snapshot as when the entry was last checked: nothing can have
   * changed (LMDB transaction IDs grow with every commit). */
  gsize txnid = mdb_txn_id (run->txn);
  DomainEntry *e = g_hash_table_lookup (run->r->domains, alabel);
  if (e != NULL && e->txnid == txnid)
    {
      *out = e;
      return 1;
    }
  MDB_val k = { alen, (void *) alabel }, v;
  gboolean is_alias = FALSE;
  int rc = mdb_get (run->txn, dbs->domains, &k, &v);
  if (rc == MDB_NOTFOUND)
    {
      is_alias = TRUE;
      rc = mdb_get (run->txn, dbs->domain_aliases, &k, &v);
      if (rc == MDB_NOTFOUND)
        return 0;
    }
  if (rc != 0)
    return dir_error (run, rc, "a domain") ? 1 : -1;
  if (e != NULL && e->is_alias == is_alias && e->raw_len == v.mv_size
      && memcmp (e->raw, v.mv_data, v.mv_size) == 0)
    {
      e->txnid = txnid;
      *out = e;
      return 1;
    }
  g_autoptr (GError) derr = NULL;
  e = entry_build (is_alias, &v, alabel, &derr);
  if (e == NULL)
    {
      g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DIRECTORY,
                   "%s", derr->message);
      return -1;
    }
  e->txnid = txnid;
  g_hash_table_replace (run->r->domains, g_strndup (alabel, alen), e);
  *out = e;
  return 1;
}

/* ---- Targets ---------------------------------------------------------- */

static gboolean
add_target (Run *run, MhResolveTargetKind kind, const char *addr, gsize alen,
            const char *tag, const char *folder, guint code,
            const char *enhanced, const char *text, guint depth)
{
  guint n = mh_resolve__result_n_targets (run->res);
  for (guint i = 0; i < n; i++)
    if (mh_resolve__target_same (mh_resolve__result_target (run->res, i),
                                 kind, addr, alen, tag, folder))
      {
        TRACE (run, MH_RESOLVE_RULE_DUPLICATE, depth, addr,
               "%s %.*s already a target: delivered once",
               mh_resolve_target_kind_to_string (kind), (int) alen, addr);
        return TRUE;
      }
  if (n >= run->cap)
    {
      g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_FANOUT,
                   "'%s' expands to more than %u targets (the fan-out "
                   "limit)", mh_resolve_result_get_address (run->res),
                   run->cap);
      return FALSE;
    }
  mh_resolve__result_add_target (
      run->res, mh_resolve__target_new (kind, addr, alen, tag, folder, code,
                                        enhanced, text));
  if (run->trace)
    {
      char where[600] = "";
      if (tag != NULL)
        g_snprintf (where, sizeof where, " (tag '%s'%s%s)", tag,
                    folder ? ", folder " : "", folder ? folder : "");
      if (kind == MH_RESOLVE_TARGET_MAILBOX
          || kind == MH_RESOLVE_TARGET_FORWARD)
        TRACE (run, MH_RESOLVE_RULE_TARGET, depth, addr, "%s %.*s%s",
               mh_resolve_target_kind_to_string (kind), (int) alen, addr,
               where);
      else
        TRACE (run, MH_RESOLVE_RULE_TARGET, depth, addr, "%s %u %s %s",
               mh_resolve_target_kind_to_string (kind), code, enhanced,
               text);
    }
  return TRUE;
}

static gboolean
reject (Run *run, const char *addr, guint code, const char *enhanced,
        const char *text, guint depth)
{
  MhResolveTargetKind kind = code >= 500 ? MH_RESOLVE_TARGET_REJECT
                                         : MH_RESOLVE_TARGET_DEFER;
  return add_target (run, kind, addr, strlen (addr), NULL, NULL, code,
                     enhanced, text, depth);
}

/* ---- Expansion -------------------------------------------------------- */

static gboolean expand (Run *run, const char *local, gsize llen,
                        const char *alabel, gsize dlen, guint depth,
                        const char *tag, gboolean catch_all_target);

/* Enters @key at @depth: LOOP if it is already on the chain. */
static gboolean
enter (Run *run, const char *key, guint depth)
{
  for (guint i = 0; i < depth; i++)
    if (strcmp (run->path[i], key) == 0)
      {
        GString *chain = g_string_new (NULL);
        for (guint k = i; k < depth; k++)
          {
            const char *p = strchr (run->path[k], '@');
            g_string_append_printf (chain, "%s@%.*s -> ", p ? p + 1 : "",
                                    (int) (p ? p - run->path[k] : 0),
                                    run->path[k]);
          }
        const char *p = strchr (key, '@');
        g_string_append_printf (chain, "%s@%.*s", p ? p + 1 : "",
                                (int) (p ? p - key : 0), key);
        g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_LOOP,
                     "loop: %s", chain->str);
        g_string_free (chain, TRUE);
        return FALSE;
      }
  gsize kl = strnlen (key, KEY_BUF - 1);
  memcpy (run->path[depth], key, kl);
  run->path[depth][kl] = '\0';
  return TRUE;
}

/* Expands "local@domain" text (a stored target or setting) at @depth. */
static gboolean
expand_text (Run *run, const char *text, gsize len, guint depth,
             const char *tag, gboolean catch_all_target)
{
  Addr a;
  g_autoptr (GError) nerr = NULL;
  if (!normalise (text, len, FALSE, &a, &nerr))
    {
      /* Stored data that no longer parses: the administrator's to fix;
       * defer so no mail is lost meanwhile. */
      g_autofree char *shown = g_strndup (text, MIN (len, 300));
      TRACE (run, MH_RESOLVE_RULE_UNKNOWN, depth, shown,
             "stored address is malformed: %s", nerr->message);
      return reject (run, shown, 451, "4.3.0",
                     "temporary configuration problem", depth);
    }
  return expand (run, a.local, a.llen, a.domain, a.dlen, depth, tag,
                 catch_all_target);
}

typedef struct
{
  Run *run;
  guint depth;
  const char *tag;
  gboolean ok;
} EachCtx;

static gboolean
each_alias_target (const char *target, gsize len, gpointer user_data)
{
  EachCtx *c = user_data;
  c->ok = expand_text (c->run, target, len, c->depth, c->tag, FALSE);
  return c->ok;
}

/* Mail for an account (its record already read). */
static gboolean
deliver_account (Run *run, const char *key, const char *addr, gsize alen,
                 const MhResolveAccount *acc, guint depth, const char *tag)
{
  if (!acc->enabled)
    {
      TRACE (run, MH_RESOLVE_RULE_ACCOUNT, depth, addr,
             "account %s is disabled", addr);
      return reject (run, addr, 550, "5.2.1", "mailbox disabled", depth);
    }
  if (acc->forward_to.len > 0)
    {
      TRACE (run, MH_RESOLVE_RULE_FORWARD, depth, addr,
             "account %s forwards to %.*s%s", addr,
             (int) acc->forward_to.len, acc->forward_to.p,
             acc->keep_copy ? ", keeping a copy" : "");
      if (depth + 1 > run->r->limits.max_depth)
        {
          g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DEPTH,
                       "forwarding chain deeper than %u at '%s'",
                       run->r->limits.max_depth, addr);
          return FALSE;
        }
      if (!enter (run, key, depth))
        return FALSE;
      const char *p = (const char *) acc->forward_to.p;
      const char *end = p + acc->forward_to.len;
      while (p < end)
        {
          const char *comma = memchr (p, ',', (gsize) (end - p));
          const char *stop = comma ? comma : end;
          const char *s = p, *e = stop;
          while (s < e && g_ascii_isspace (*s))
            s++;
          while (e > s && g_ascii_isspace (e[-1]))
            e--;
          if (e > s && !expand_text (run, s, (gsize) (e - s), depth + 1, NULL,
                                     FALSE))
            return FALSE;
          p = stop + 1;
        }
      if (!acc->keep_copy)
        return TRUE;
    }
  const char *folder = acc->subaddress_folders && tag && *tag ? tag : NULL;
  return add_target (run, MH_RESOLVE_TARGET_MAILBOX, addr, alen,
                     tag && *tag ? tag : NULL, folder, 250, "2.1.5", "",
                     depth);
}

/* Is the sender an authenticated user of @hosted? */
static gboolean
sender_inside (Run *run, const char *hosted)
{
  if (!run->authenticated || run->sender == NULL)
    return FALSE;
  Addr s;
  if (!normalise (run->sender, strlen (run->sender), TRUE, &s, NULL))
    return FALSE;
  if (strcmp (s.domain, hosted) == 0)
    return TRUE;
  DomainEntry *e = NULL;
  GError **saved = run->error;
  g_autoptr (GError) ignored = NULL;
  run->error = &ignored;
  int r = domain_get (run, s.domain, s.dlen, &e);
  run->error = saved;
  return r == 1 && e->is_alias && g_strcmp0 (e->alias_target, hosted) == 0;
}

/* Every enabled account of @hosted. */
static gboolean
expand_group (Run *run, const char *hosted, const char *addr, guint depth)
{
  char prefix[DOMAIN_BUF + 1];
  gsize plen = (gsize) g_snprintf (prefix, sizeof prefix, "%s@", hosted);
  MDB_cursor *cur = NULL;
  int rc = mdb_cursor_open (run->txn, run->r->dir->dbs.accounts, &cur);
  if (rc != 0)
    return dir_error (run, rc, "the accounts");
  run->cap = MAX (run->cap, run->r->limits.max_group);
  MDB_val k = { plen, prefix }, v;
  guint members = 0;
  gboolean ok = TRUE;
  rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE);
  while (ok && rc == 0 && k.mv_size > plen
         && memcmp (k.mv_data, prefix, plen) == 0)
    {
      char key[KEY_BUF], member[KEY_BUF];
      if (k.mv_size >= KEY_BUF)
        {
          ok = corrupt (run, "account", "(over-long key)");
          break;
        }
      memcpy (key, k.mv_data, k.mv_size);
      key[k.mv_size] = '\0';
      gsize ml = (gsize) g_snprintf (member, sizeof member, "%s@%s",
                                     key + plen, hosted);
      MhResolveAccount acc;
      if (!mh_resolve__read_account (v.mv_data, v.mv_size, &acc))
        {
          ok = corrupt (run, "account", key);
          break;
        }
      if (acc.enabled)
        {
          if (++members > run->r->limits.max_group)
            {
              g_set_error (run->error, MH_RESOLVE_ERROR,
                           MH_RESOLVE_ERROR_FANOUT,
                           "group address '%s' reaches more than %u "
                           "accounts (the group limit)", addr,
                           run->r->limits.max_group);
              ok = FALSE;
              break;
            }
          ok = deliver_account (run, key, member, ml, &acc, depth + 1, NULL);
        }
      if (ok)
        rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
    }
  mdb_cursor_close (cur);
  if (ok && rc != 0 && rc != MDB_NOTFOUND)
    return dir_error (run, rc, "the accounts");
  if (ok && members == 0)
    {
      TRACE (run, MH_RESOLVE_RULE_GROUP, depth, addr,
             "group %s has no enabled accounts", addr);
      return reject (run, addr, 550, "5.1.1", "no such user here", depth);
    }
  return ok;
}

/* Rules 1-4 for folded @flocal at @hosted. Sets *matched. */
static gboolean
match_listed (Run *run, const DomainEntry *dom, const char *hosted,
              gsize hlen, const char *flocal, gsize fllen, guint depth,
              const char *tag, gboolean *matched)
{
  MhDirectoryDbs *dbs = &run->r->dir->dbs;
  char key[KEY_BUF], addr[KEY_BUF];
  memcpy (key, hosted, hlen);
  key[hlen] = '@';
  memcpy (key + hlen + 1, flocal, fllen + 1);
  gsize klen = hlen + 1 + fllen;
  memcpy (addr, flocal, fllen);
  addr[fllen] = '@';
  memcpy (addr + fllen + 1, hosted, hlen + 1);
  gsize alen = klen;
  MDB_val k = { klen, key }, v;
  *matched = TRUE;

  if (++run->steps > run->r->limits.max_steps)
    {
      g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_FANOUT,
                   "'%s' needs more than %u look-ups (the step limit)",
                   mh_resolve_result_get_address (run->res),
                   run->r->limits.max_steps);
      return FALSE;
    }
  if (!enter (run, key, depth))
    return FALSE;

  /* 1. An account. */
  int rc = mdb_get (run->txn, dbs->accounts, &k, &v);
  if (rc == 0)
    {
      MhResolveAccount acc;
      if (!mh_resolve__read_account (v.mv_data, v.mv_size, &acc))
        return corrupt (run, "account", key);
      TRACE (run, MH_RESOLVE_RULE_ACCOUNT, depth, addr, "account %s", addr);
      return deliver_account (run, key, addr, alen, &acc, depth, tag);
    }
  if (rc != MDB_NOTFOUND)
    return dir_error (run, rc, "an account");

  /* 2. An alias. */
  rc = mdb_get (run->txn, dbs->aliases, &k, &v);
  if (rc == 0)
    {
      guint n = 0;
      if (run->trace)
        {
          if (!mh_resolve__read_alias (v.mv_data, v.mv_size, &n, NULL, NULL))
            return corrupt (run, "alias", key);
          TRACE (run, MH_RESOLVE_RULE_ALIAS, depth, addr,
                 "alias %s with %u target(s)", addr, n);
        }
      if (depth + 1 > run->r->limits.max_depth)
        {
          g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DEPTH,
                       "alias chain deeper than %u at '%s'",
                       run->r->limits.max_depth, addr);
          return FALSE;
        }
      EachCtx c = { run, depth + 1, tag, TRUE };
      if (!mh_resolve__read_alias (v.mv_data, v.mv_size, &n,
                                   each_alias_target, &c))
        return corrupt (run, "alias", key);
      return c.ok;
    }
  if (rc != MDB_NOTFOUND)
    return dir_error (run, rc, "an alias");

  /* 3. A temporary alias. */
  rc = mdb_get (run->txn, dbs->temp_aliases, &k, &v);
  if (rc == 0)
    {
      MhBytes target;
      gint64 expires = 0;
      if (!mh_resolve__read_temp_alias (v.mv_data, v.mv_size, &target,
                                        &expires))
        return corrupt (run, "temporary alias", key);
      if (run->now == 0) /* the clock, read once and only when needed */
        run->now = g_get_real_time () / G_USEC_PER_SEC;
      if (run->now >= expires)
        {
          if (run->trace)
            {
              g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (
                  expires);
              g_autofree char *when = dt ? g_date_time_format_iso8601 (dt)
                                         : g_strdup ("?");
              TRACE (run, MH_RESOLVE_RULE_TEMP_ALIAS, depth, addr,
                     "temporary alias %s expired at %s: treated as unknown",
                     addr, when);
            }
          return reject (run, addr, 550, "5.1.1", "no such user here",
                         depth);
        }
      TRACE (run, MH_RESOLVE_RULE_TEMP_ALIAS, depth, addr,
             "temporary alias %s for %.*s", addr, (int) target.len,
             target.p);
      if (depth + 1 > run->r->limits.max_depth)
        {
          g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DEPTH,
                       "alias chain deeper than %u at '%s'",
                       run->r->limits.max_depth, addr);
          return FALSE;
        }
      return expand_text (run, (const char *) target.p, target.len,
                          depth + 1, tag, FALSE);
    }
  if (rc != MDB_NOTFOUND)
    return dir_error (run, rc, "a temporary alias");

  /* 4. A group address. */
  for (guint i = 0; dom->groups && dom->groups[i]; i++)
    if (strcmp (dom->groups[i], flocal) == 0)
      {
        if (!sender_inside (run, hosted))
          {
            TRACE (run, MH_RESOLVE_RULE_GROUP, depth, addr,
                   "group address %s refused: sender %s is not an "
                   "authenticated user of %s", addr,
                   run->sender ? run->sender : "(none)", hosted);
            return reject (run, addr, 550, "5.7.1",
                           "group address: only authenticated senders of "
                           "its own domain may write to it", depth);
          }
        TRACE (run, MH_RESOLVE_RULE_GROUP, depth, addr,
               "group address %s: every enabled account of %s", addr,
               hosted);
        if (depth + 1 > run->r->limits.max_depth)
          {
            g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DEPTH,
                         "chain deeper than %u at '%s'",
                         run->r->limits.max_depth, addr);
            return FALSE;
          }
        return expand_group (run, hosted, addr, depth);
      }
  *matched = FALSE;
  return TRUE;
}

static gboolean
expand (Run *run, const char *local, gsize llen, const char *alabel,
        gsize dlen, guint depth, const char *tag, gboolean catch_all_target)
{
  char shown[KEY_BUF];
  gsize shown_len = join (shown, local, llen, alabel, dlen);

  DomainEntry *dom = NULL;
  int r = domain_get (run, alabel, dlen, &dom);
  if (r < 0)
    return FALSE;
  if (r == 0)
    {
      if (depth == 0)
        {
          TRACE (run, MH_RESOLVE_RULE_NOT_LOCAL, depth, shown,
                 "domain %s is not hosted here", alabel);
          return reject (run, shown, 550, "5.1.2",
                         "domain not hosted here (relaying denied)", depth);
        }
      TRACE (run, MH_RESOLVE_RULE_NOT_LOCAL, depth, shown,
             "domain %s is elsewhere: forward", alabel);
      return add_target (run, MH_RESOLVE_TARGET_FORWARD, shown, shown_len,
                         NULL, NULL, 250, "2.1.5", "", depth);
    }
  const char *hosted = alabel;
  gsize hlen = dlen;
  if (dom->is_alias)
    {
      hosted = dom->alias_target;
      hlen = strlen (hosted);
      TRACE (run, MH_RESOLVE_RULE_DOMAIN_ALIAS, depth, shown,
             "domain %s is an alias of %s", alabel, hosted);
      DomainEntry *t = NULL;
      r = domain_get (run, hosted, hlen, &t);
      if (r < 0)
        return FALSE;
      if (r == 0 || t->is_alias)
        {
          TRACE (run, MH_RESOLVE_RULE_DOMAIN_ALIAS, depth, shown,
                 "domain alias %s points at %s, which is not hosted",
                 alabel, hosted);
          return reject (run, shown, 451, "4.3.0",
                         "temporary configuration problem", depth);
        }
      dom = t;
    }
  else
    TRACE (run, MH_RESOLVE_RULE_DOMAIN, depth, shown, "domain %s is hosted%s",
           alabel, dom->routing_off ? " (routing off)" : "");

  char flocal[LOCAL_BUF];
  gsize fllen;
  fold (local, llen, dom->cs, flocal, &fllen);
  if (depth == 0)
    {
      char folded[KEY_BUF];
      join (folded, flocal, fllen, alabel, dlen);
      mh_resolve__result_set_address (run->res, folded);
    }
  gboolean matched = FALSE;
  if (!match_listed (run, dom, hosted, hlen, flocal, fllen, depth, tag,
                     &matched))
    return FALSE;
  if (matched)
    return TRUE;

  char addr[KEY_BUF];
  join (addr, flocal, fllen, hosted, hlen);
  if (dom->routing_off)
    {
      TRACE (run, MH_RESOLVE_RULE_ROUTING_OFF, depth, addr,
             "%s is not listed and routing is off for %s: no sub-address "
             "or catch-all", addr, hosted);
      return reject (run, addr, 550, "5.1.1", "no such user here", depth);
    }

  /* 5. Sub-address: the first separator after the first character. */
  if (dom->sep[0] != '\0' && flocal[0] != '"')
    {
      gsize cut = strcspn (flocal + 1, dom->sep) + 1;
      if (cut < fllen)
        {
          /* The tag keeps the case it was written in (Sieve :detail). */
          char tagbuf[LOCAL_BUF];
          const char *src = llen == fllen ? local : flocal;
          gsize tl = fllen - cut - 1;
          memcpy (tagbuf, src + cut + 1, tl);
          tagbuf[tl] = '\0';
          flocal[cut] = '\0';
          TRACE (run, MH_RESOLVE_RULE_SUBADDRESS, depth, addr,
                 "sub-address: local part %s, tag '%s'", flocal, tagbuf);
          if (!match_listed (run, dom, hosted, hlen, flocal, cut, depth,
                             tagbuf, &matched))
            return FALSE;
          if (matched)
            return TRUE;
          flocal[cut] = local[cut];
        }
    }

  /* 6. Catch-all (not for a catch-all's own target: that would loop). */
  if (dom->catch_all != NULL && !catch_all_target)
    {
      TRACE (run, MH_RESOLVE_RULE_CATCH_ALL, depth, addr,
             "nothing else matched: catch-all of %s is %s", hosted,
             dom->catch_all);
      if (depth + 1 > run->r->limits.max_depth)
        {
          g_set_error (run->error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DEPTH,
                       "chain deeper than %u at '%s'",
                       run->r->limits.max_depth, addr);
          return FALSE;
        }
      return expand_text (run, dom->catch_all, strlen (dom->catch_all),
                          depth + 1, NULL, TRUE);
    }

  /* 7. Unknown. */
  if (catch_all_target)
    {
      TRACE (run, MH_RESOLVE_RULE_UNKNOWN, depth, addr,
             "catch-all target %s does not exist: deferred until the "
             "administrator fixes it", addr);
      return reject (run, addr, 451, "4.3.0",
                     "temporary configuration problem", depth);
    }
  TRACE (run, MH_RESOLVE_RULE_UNKNOWN, depth, addr,
         "no account, alias, temporary alias or group %s", addr);
  return reject (run, addr, 550, "5.1.1", "no such user here", depth);
}

/* ---- Entry point ------------------------------------------------------ */

static MDB_txn *
txn_open (MhResolver *r, GError **error)
{
  int rc;
  if (r->txn != NULL)
    {
      rc = mdb_txn_renew (r->txn);
      if (rc == 0)
        return r->txn;
      mdb_txn_abort (r->txn);
      r->txn = NULL;
    }
  rc = mdb_txn_begin (r->dir->env, NULL, MDB_RDONLY, &r->txn);
  if (rc != 0)
    {
      r->txn = NULL;
      g_set_error (error, MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DIRECTORY,
                   "%s: cannot begin a read transaction: %s",
                   mh_directory_get_path (r->dir), mdb_strerror (rc));
      return NULL;
    }
  return r->txn;
}

gboolean
mh_resolver_resolve (MhResolver *resolver, const char *address,
                     gssize address_len, const char *sender,
                     gboolean authenticated, MhResolveFlags flags,
                     MhResolveResult **result_out, GError **error)
{
  g_return_val_if_fail (resolver != NULL, FALSE);
  g_return_val_if_fail (result_out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  *result_out = NULL;
  if (address == NULL)
    address = "";
  gsize len = address_len < 0 ? strlen (address) : (gsize) address_len;

  Addr a;
  if (!normalise (address, len, TRUE, &a, error))
    return FALSE;

  /* Run holds the chain buffers (~11 KiB): on the stack, not malloc'd. */
  Run run;
  run.r = resolver;
  run.trace = (flags & MH_RESOLVE_FLAGS_TRACE) != 0;
  run.sender = sender;
  run.authenticated = authenticated;
  run.now = resolver->now; /* 0: the clock, read when first needed */
  run.steps = 0;
  run.cap = resolver->limits.max_fanout;
  run.error = error;
  char shown[KEY_BUF];
  gsize slen = join (shown, a.local, a.llen, a.domain, a.dlen);
  run.res = mh_resolve__result_new (shown, slen, run.trace);
  if (run.trace)
    {
      g_autofree char *copy = g_strndup (address, len);
      TRACE (&run, MH_RESOLVE_RULE_INPUT, 0, shown, "%s normalised to %s",
             copy, shown);
    }
  if (g_hash_table_size (resolver->domains) > CACHE_MAX)
    g_hash_table_remove_all (resolver->domains);
  run.txn = txn_open (resolver, error);
  if (run.txn == NULL)
    {
      mh_resolve_result_unref (run.res);
      return FALSE;
    }
  gboolean ok = expand (&run, a.local, a.llen, a.domain, a.dlen, 0, NULL,
                        FALSE);
  mdb_txn_reset (run.txn);
  if (!ok)
    {
      mh_resolve_result_unref (run.res);
      return FALSE;
    }
  *result_out = run.res;
  return TRUE;
}
