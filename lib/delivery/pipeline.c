/* lib/delivery pipeline.c: resolve -> spam verdict -> Sieve -> quota ->
 * store, per recipient.
 *
 * Design notes
 * - One MhDelivery per process, shared by every thread. It owns the
 *   directory, the quota layer, a pool of resolvers (an MhResolver is for
 *   one thread at a time, so a thread borrows one for a resolution and
 *   gives it back) and the open stores, one per account: a store may be
 *   opened only once per process (LMDB), so the cache is not an
 *   optimisation but the rule. Stores stay open for the life of the
 *   MhDelivery (other layers may hold references we cannot see, so
 *   closing one early could make the next open fail with BUSY).
 * - Spool files are pooled (spool.c): the MhDelivery keeps up to
 *   SPOOL_POOL_MAX idle ones under spool_lock and frees them with itself.
 * - The message is a file (the spool). For each mailbox it is mapped
 *   read-only right behind an anonymous page holding the per-recipient
 *   header lines (Return-Path, Delivered-To), so the store sees one
 *   contiguous message (a GBytes) although nothing but those few header
 *   bytes was copied: the body stays in the page cache, never on the
 *   heap, whatever its size. Messages up to READ_MAX (128 KiB) are read
 *   into one buffer instead, which is cheaper than a mapping for them.
 * - Stages, each one function with one job, run for every mailbox target
 *   of every recipient:
 *     resolve (stage_resolve)  address -> mailbox targets, or a reply
 *     spam    (stage_spam)     verdict; TODAY ALWAYS "keep" (lib/spam,
 *                              a later issue, fills it in)
 *     Sieve   (stage_sieve)    actions; TODAY ALWAYS "keep" into the
 *                              folder resolution chose (sub-address
 *                              folder if it exists, else INBOX); lib/sieve
 *                              fills it in
 *     quota   (stage_quota)    mh_quota_check(), a clear 452/552 reply
 *     store   (stage_store)    mh_store_deliver(): returns after fsync of
 *                              file and directory and the index commit
 *   The store also runs the quota hooks itself (mh_quota_attach): the
 *   check closes the race between two deliveries checking at the same
 *   time, and the change hook keeps the usage current after each one.
 * - A recipient gets 2xx only when every one of its mailboxes has the
 *   message durably. On the first failure its reply is that failure and
 *   its remaining mailboxes are not tried (the sender will retry the
 *   whole recipient; a mailbox stored before the failure may then get a
 *   duplicate, never a loss: the store's own rule).
 * - One message, one mailbox: the accounts already handled in this call
 *   are remembered (done table), so two aliases of one account store the
 *   message once and both recipients get that one outcome.
 * - Forwards need the outbound queue (a later issue). Until then a
 *   recipient whose resolution has a forward target gets 451 4.3.5 that
 *   says so, before anything is stored for it. Rejected or deferred parts
 *   of a fan-out (a group with a disabled member) are logged and skipped,
 *   as resolve.h says bounces for them are the delivery layer's, and
 *   there is no bounce queue yet.
 */
#include "delivery-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define LOG_SVC "delivery"
#define SPOOL_POOL_MAX 64

struct _MhDelivery
{
  gint refcount;
  MhConfig *config;
  char *data_dir;
  char *spool_dir;
  guint64 max_size;
  MhDirectory *dir;
  MhQuota *quota;

  GMutex lock;           /* guards resolvers and stores */
  GPtrArray *resolvers;  /* idle MhResolver* */
  GHashTable *stores;    /* account (A-label form) -> MhStore* */

  GMutex spool_lock; /* guards spools */
  GPtrArray *spools; /* idle MhDeliverySpool*, at most SPOOL_POOL_MAX */
};

G_DEFINE_BOXED_TYPE (MhDelivery, mh_delivery, mh_delivery_ref,
                     mh_delivery_unref)

MhDelivery *
mh_delivery_new (MhConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);
  const char *data_dir = mh_config_get_string (config, "general", "data_dir");
  if (data_dir == NULL || *data_dir == '\0')
    {
      g_set_error_literal (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_OPEN,
                           "no data directory: set [general] data_dir or "
                           "give --data-dir");
      return NULL;
    }
  g_autoptr (GError) local = NULL;
  g_autoptr (MhDirectory) dir = mh_directory_open (data_dir, &local);
  if (dir == NULL)
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_OPEN,
                   "cannot open the directory: %s", local->message);
      return NULL;
    }
  g_autoptr (MhQuota) quota = mh_quota_open (dir, data_dir, config, &local);
  if (quota == NULL)
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_OPEN,
                   "cannot open the quota database: %s", local->message);
      return NULL;
    }
  g_autofree char *spool_dir = g_build_filename (data_dir, "spool", NULL);
  if (g_mkdir_with_parents (spool_dir, 0700) != 0)
    {
      int e = errno;
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_OPEN,
                   "cannot create %s: %s", spool_dir, g_strerror (e));
      return NULL;
    }

  MhDelivery *d = g_new0 (MhDelivery, 1);
  d->refcount = 1;
  d->config = mh_config_ref (config);
  d->data_dir = g_strdup (data_dir);
  d->spool_dir = g_steal_pointer (&spool_dir);
  gint64 max = mh_config_get_int (config, "limits", "max_message_size");
  d->max_size = max > 0 ? (guint64) max : MH_LIMIT_MESSAGE_SIZE_MAX;
  d->dir = g_steal_pointer (&dir);
  d->quota = g_steal_pointer (&quota);
  g_mutex_init (&d->lock);
  d->resolvers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) mh_resolver_unref);
  d->stores = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                     (GDestroyNotify) mh_store_unref);
  g_mutex_init (&d->spool_lock);
  d->spools = g_ptr_array_new_with_free_func (
      (GDestroyNotify)mh_delivery__spool_destroy);
  return d;
}

MhDelivery *
mh_delivery_ref (MhDelivery *d)
{
  g_return_val_if_fail (d != NULL, NULL);
  g_atomic_int_inc (&d->refcount);
  return d;
}

void
mh_delivery_unref (MhDelivery *d)
{
  if (d == NULL || !g_atomic_int_dec_and_test (&d->refcount))
    return;
  g_hash_table_unref (d->stores);
  g_ptr_array_unref (d->resolvers);
  g_mutex_clear (&d->lock);
  g_ptr_array_unref (d->spools); /* idle ones; busy ones hold a ref on d */
  g_mutex_clear (&d->spool_lock);
  mh_quota_unref (d->quota);
  mh_directory_unref (d->dir);
  mh_config_unref (d->config);
  g_free (d->data_dir);
  g_free (d->spool_dir);
  g_free (d);
}

MhConfig *
mh_delivery_get_config (MhDelivery *d)
{
  g_return_val_if_fail (d != NULL, NULL);
  return d->config;
}

MhDirectory *
mh_delivery_get_directory (MhDelivery *d)
{
  g_return_val_if_fail (d != NULL, NULL);
  return d->dir;
}

MhQuota *
mh_delivery_get_quota (MhDelivery *d)
{
  g_return_val_if_fail (d != NULL, NULL);
  return d->quota;
}

guint64
mh_delivery__spool_max (MhDelivery *d)
{
  return d->max_size;
}

const char *
mh_delivery__spool_dir (MhDelivery *d)
{
  return d->spool_dir;
}

/* ---- shared resources --------------------------------------------------- */

MhDeliverySpool *
mh_delivery__spool_take (MhDelivery *d)
{
  MhDeliverySpool *s = NULL;
  g_mutex_lock (&d->spool_lock);
  if (d->spools->len > 0)
    s = g_ptr_array_steal_index_fast (d->spools, d->spools->len - 1);
  g_mutex_unlock (&d->spool_lock);
  return s;
}

gboolean
mh_delivery__spool_give (MhDelivery *d, MhDeliverySpool *s)
{
  gboolean taken = FALSE;
  g_mutex_lock (&d->spool_lock);
  if (d->spools->len < SPOOL_POOL_MAX)
    {
      g_ptr_array_add (d->spools, s);
      taken = TRUE;
    }
  g_mutex_unlock (&d->spool_lock);
  return taken;
}

static MhResolver *
resolver_take (MhDelivery *d)
{
  MhResolver *r = NULL;
  g_mutex_lock (&d->lock);
  if (d->resolvers->len > 0)
    r = g_ptr_array_steal_index_fast (d->resolvers, d->resolvers->len - 1);
  g_mutex_unlock (&d->lock);
  return r ? r : mh_resolver_new (d->dir, NULL);
}

static void
resolver_give (MhDelivery *d, MhResolver *r)
{
  g_mutex_lock (&d->lock);
  g_ptr_array_add (d->resolvers, r);
  g_mutex_unlock (&d->lock);
}

/* TRUE for a non-empty lower-case LDH name with no empty label and no
 * A-label (libidn2 checks those). */
static gboolean
ascii_ldh_lower (const char *d)
{
  if (*d == '\0' || *d == '.' || strstr (d, "xn--") != NULL)
    return FALSE;
  for (const char *p = d; *p; p++)
    {
      char c = *p;
      if (c == '.' && (p[1] == '.' || p[1] == '\0'))
        return FALSE;
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
            || c == '.'))
        return FALSE;
    }
  return TRUE;
}

MhStore *
mh_delivery_get_store (MhDelivery *d, const char *account, GError **error)
{
  g_return_val_if_fail (d != NULL && account != NULL, NULL);
  const char *at = strrchr (account, '@');
  if (at == NULL || at == account || at[1] == '\0')
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                   "'%s' is not an account address (local@domain)",
                   account);
      return NULL;
    }
  /* The resolver hands out accounts with lower-case A-label domains:
   * those are the key as they are, without libidn2 (twice per message:
   * RCPT check and delivery). Anything else goes through IDNA. */
  g_autofree char *domain = NULL;
  g_autofree char *key = NULL;
  if (ascii_ldh_lower (at + 1))
    key = g_strdup (account);
  else
    {
      domain = mh_directory_domain_to_ascii (at + 1, error);
      if (domain == NULL)
        return NULL;
      g_autofree char *local = g_strndup (account, (gsize)(at - account));
      key = g_strconcat (local, "@", domain, NULL);
    }

  /* Opening under the lock: two threads must never open one account
   * twice (BUSY). First opens of different accounts wait for each other;
   * that happens once per account per process. */
  g_mutex_lock (&d->lock);
  MhStore *store = g_hash_table_lookup (d->stores, key);
  if (store == NULL)
    {
      /* first open only: split the key */
      const char *kat = strrchr (key, '@');
      g_autofree char *local = g_strndup (key, (gsize)(kat - key));
      store = mh_store_open_account (d->data_dir, kat + 1, local,
                                     MH_STORE_OPEN_CREATE, error);
      if (store != NULL)
        {
          g_autoptr (GError) qerr = NULL;
          /* The quota hook goes on before the store is shared. An account
           * unknown to the quota layer (deleted meanwhile) just gets no
           * hook; the resolver decides who gets mail, not the quota. */
          if (!mh_quota_attach (d->quota, store, key, &qerr))
            mh_log_warning (LOG_SVC, NULL, NULL,
                            "%s: no quota check: %s", key, qerr->message);
          g_hash_table_insert (d->stores, g_strdup (key), store);
        }
    }
  if (store != NULL)
    mh_store_ref (store);
  g_mutex_unlock (&d->lock);
  return store;
}

/* ---- outcomes ----------------------------------------------------------- */

typedef struct
{
  guint code;
  char *enhanced;
  char *text;
  char *folder;   /* NULL: INBOX */
  guint32 uid;
} Outcome;

static void
outcome_free (Outcome *o)
{
  if (o == NULL)
    return;
  g_free (o->enhanced);
  g_free (o->text);
  g_free (o->folder);
  g_free (o);
}

static Outcome *
outcome_new (guint code, const char *enhanced, const char *text)
{
  Outcome *o = g_new0 (Outcome, 1);
  o->code = code;
  o->enhanced = g_strdup (enhanced);
  o->text = g_strdup (text);
  return o;
}

static gboolean
outcome_ok (const Outcome *o)
{
  return o->code >= 200 && o->code < 300;
}

/* An over-quota error (from mh_quota_check or the store's hook) as its
 * 452/552 reply, anything else as 451 4.3.0. */
static Outcome *
outcome_from_error (const GError *error, const char *what)
{
  guint code;
  g_autofree char *enh = NULL;
  g_autofree char *text = NULL;
  if (mh_quota_error_get_reply (error, &code, &enh, &text))
    return outcome_new (code, enh, text);
  g_autofree char *msg = g_strdup_printf ("%s: temporary local problem, "
                                          "try again later",
                                          what);
  return outcome_new (451, "4.3.0", msg);
}

/* ---- stage 1: resolve --------------------------------------------------- */

/* Resolves @rcpt. Returns the mailbox targets (MhResolveTarget*) or NULL
 * with *refusal set to the reply for the whole recipient. */
static GPtrArray *
stage_resolve (MhDelivery *d, const char *rcpt, const char *sender,
               gboolean authenticated, Outcome **refusal)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MhResolveResult) res = NULL;
  MhResolver *r = resolver_take (d);
  gboolean ok = mh_resolver_resolve (r, rcpt, -1, sender, authenticated,
                                     MH_RESOLVE_FLAGS_NONE, &res, &error);
  resolver_give (d, r);
  if (!ok)
    {
      guint code;
      const char *enh;
      mh_resolve_error_smtp_reply (error, &code, &enh);
      if (g_error_matches (error, MH_RESOLVE_ERROR,
                           MH_RESOLVE_ERROR_DIRECTORY))
        mh_log_warning (LOG_SVC, NULL, NULL, "<%s>: %s", rcpt,
                        error->message);
      *refusal = outcome_new (code, enh, error->message);
      return NULL;
    }
  if (!mh_resolve_result_get_accepted (res))
    {
      guint code;
      const char *enh, *text;
      mh_resolve_result_get_reply (res, &code, &enh, &text);
      *refusal = outcome_new (code, enh, text);
      return NULL;
    }
  GPtrArray *targets = mh_resolve_result_get_targets (res);
  GPtrArray *mailboxes = g_ptr_array_new_with_free_func (
      (GDestroyNotify) mh_resolve_target_unref);
  for (guint i = 0; i < targets->len; i++)
    {
      MhResolveTarget *t = g_ptr_array_index (targets, i);
      switch (mh_resolve_target_get_kind (t))
        {
        case MH_RESOLVE_TARGET_MAILBOX:
          g_ptr_array_add (mailboxes, mh_resolve_target_ref (t));
          break;
        case MH_RESOLVE_TARGET_FORWARD:
          {
            g_autofree char *msg = g_strdup_printf (
                "forwarding to <%s> needs the outbound queue, which is "
                "not enabled yet",
                mh_resolve_target_get_address (t));
            *refusal = outcome_new (451, "4.3.5", msg);
            g_ptr_array_unref (mailboxes);
            return NULL;
          }
        case MH_RESOLVE_TARGET_REJECT:
        case MH_RESOLVE_TARGET_DEFER:
          mh_log_notice (LOG_SVC, NULL, NULL,
                         "<%s>: part <%s> skipped: %u %s %s (no bounce "
                         "queue yet)",
                         rcpt, mh_resolve_target_get_address (t),
                         mh_resolve_target_get_smtp_code (t),
                         mh_resolve_target_get_enhanced_code (t),
                         mh_resolve_target_get_text (t));
          break;
        }
    }
  return mailboxes;
}

/* ---- stage 2: spam verdict ---------------------------------------------- */

typedef enum
{
  VERDICT_KEEP,   /* not spam, or no opinion */
} SpamVerdict;

/* The spam and virus verdict for one mailbox. Today there is no
 * classifier (lib/spam is a later issue), so every message is kept; the
 * stage exists so that filling it in changes this function only. */
static SpamVerdict
stage_spam (MhDelivery *d, MhResolveTarget *target, GBytes *message)
{
  return VERDICT_KEEP;
}

/* ---- stage 3: Sieve ----------------------------------------------------- */

/* The user's Sieve script decides where the message goes. There is no
 * Sieve interpreter yet (lib/sieve is a later issue): the implicit
 * "keep" of RFC 5228 2.10.2, into the folder resolution chose when it
 * exists (a sub-address folder, resolve.h), else INBOX. Returns the
 * folder (NULL for INBOX). */
static char *
stage_sieve (MhDelivery *d, MhResolveTarget *target, MhStore *store,
             SpamVerdict verdict)
{
  const char *folder = mh_resolve_target_get_folder (target);
  if (folder != NULL && mh_store_folder_exists (store, folder))
    return g_strdup (folder);
  return NULL;
}

/* ---- stage 4: quota ----------------------------------------------------- */

static Outcome *
stage_quota (MhDelivery *d, MhStore *store, const char *account,
             guint64 size)
{
  g_autoptr (GError) error = NULL;
  if (mh_quota_check (d->quota, store, (gint64) size, 1, &error))
    return NULL;
  if (g_error_matches (error, MH_QUOTA_ERROR, MH_QUOTA_ERROR_INVALID))
    return NULL; /* no quota hook on this store (see get_store) */
  if (!mh_quota_error_get_reply (error, NULL, NULL, NULL))
    mh_log_warning (LOG_SVC, NULL, NULL, "%s: quota check: %s", account,
                    error->message);
  return outcome_from_error (error, "quota check");
}

/* ---- stage 5: store ----------------------------------------------------- */

typedef struct
{
  guint8 *base;
  gsize len;
} Mapping;

static void
mapping_free (gpointer data)
{
  Mapping *m = data;
  munmap (m->base, m->len);
  g_free (m);
}

/* A small message is read into one buffer instead: in a threaded
 * process every munmap() is a TLB shootdown on every CPU, which cost more
 * than copying 10 KiB (perf: 12% of mh-lmtpd's time at 32 sessions). The
 * bound keeps "never whole in memory" true where it matters. */
#define READ_MAX (128 * 1024)

static GBytes *
read_message (int fd, gsize file_len, const char *prefix, gsize prefix_len,
              GError **error)
{
  guint8 *buf = g_malloc (prefix_len + file_len);
  memcpy (buf, prefix, prefix_len);
  gsize off = 0;
  while (off < file_len)
    {
      ssize_t n = pread (fd, buf + prefix_len + off, file_len - off,
                         (off_t) off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = n < 0 ? errno : EIO;
          g_free (buf);
          g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                       "cannot read the spool file: %s",
                       n < 0 ? g_strerror (e) : "file shrank");
          return NULL;
        }
      off += (gsize) n;
    }
  return g_bytes_new_take (buf, prefix_len + file_len);
}

/* @prefix followed by the first @file_len bytes of @fd, contiguous in
 * memory: an anonymous read-write area ending at a page boundary holds
 * the prefix right-aligned, and the file is mapped (MAP_FIXED) at that
 * boundary. No byte of the file is copied. */
static GBytes *
map_message (int fd, gsize file_len, const char *prefix, gsize prefix_len,
             GError **error)
{
  if (prefix_len + file_len <= READ_MAX)
    return read_message (fd, file_len, prefix, prefix_len, error);
  gsize page = (gsize) sysconf (_SC_PAGESIZE);
  gsize pre = (prefix_len + page - 1) / page * page;
  gsize body = (file_len + page - 1) / page * page;
  gsize total = pre + body;
  guint8 *base = mmap (NULL, total, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED)
    {
      int e = errno;
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                   "cannot map the message: %s", g_strerror (e));
      return NULL;
    }
  if (file_len > 0
      && mmap (base + pre, file_len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd,
               0)
             == MAP_FAILED)
    {
      int e = errno;
      munmap (base, total);
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                   "cannot map the spool file: %s", g_strerror (e));
      return NULL;
    }
  memcpy (base + pre - prefix_len, prefix, prefix_len);
  Mapping *m = g_new (Mapping, 1);
  m->base = base;
  m->len = total;
  return g_bytes_new_with_free_func (base + pre - prefix_len,
                                     prefix_len + file_len, mapping_free, m);
}

typedef struct
{
  MhDelivery *d;
  MhDeliveryEnvelope *env;
  int fd;
  gsize file_len;
  GHashTable *done;   /* account -> Outcome* */
} Message;

static Outcome *
stage_store (MhDelivery *d, MhStore *store, const char *account,
             const char *folder, GBytes *message)
{
  g_autoptr (GError) error = NULL;
  guint32 uid = 0;
  if (!mh_store_deliver (store, folder, message, MH_STORE_FLAG_NONE, NULL, 0,
                         &uid, &error))
    {
      if (!g_error_matches (error, MH_STORE_ERROR, MH_STORE_ERROR_REFUSED))
        mh_log_error (LOG_SVC, NULL, NULL, "%s: cannot store: %s", account,
                      error->message);
      return outcome_from_error (error, "cannot store the message");
    }
  Outcome *o = outcome_new (250, "2.0.0", "delivered");
  o->folder = g_strdup (folder);
  o->uid = uid;
  return o;
}

static char *
header_prefix (const char *sender, const char *account)
{
  return g_strdup_printf ("Return-Path: <%s>\nDelivered-To: %s\n", sender,
                          account);
}

/* Spam, Sieve, quota, store for one mailbox of one recipient. */
static Outcome *
deliver_mailbox (Message *msg, MhResolveTarget *target)
{
  MhDelivery *d = msg->d;
  const char *account = mh_resolve_target_get_address (target);
  g_autoptr (GError) error = NULL;

  g_autofree char *prefix = header_prefix (msg->env->sender, account);
  g_autoptr (GBytes) message
      = map_message (msg->fd, msg->file_len, prefix, strlen (prefix), &error);
  if (message == NULL)
    return outcome_from_error (error, "cannot read the message");

  g_autoptr (MhStore) store = mh_delivery_get_store (d, account, &error);
  if (store == NULL)
    {
      mh_log_error (LOG_SVC, NULL, NULL, "%s: cannot open the mailbox: %s",
                    account, error->message);
      return outcome_from_error (error, "cannot open the mailbox");
    }

  SpamVerdict verdict = stage_spam (d, target, message);
  g_autofree char *folder = stage_sieve (d, target, store, verdict);
  Outcome *refused
      = stage_quota (d, store, account, g_bytes_get_size (message));
  if (refused)
    return refused;
  Outcome *o = stage_store (d, store, account, folder, message);
  /* No mh_quota_update here: the store's change hook (mh_quota_attach in
   * get_store) already moved the usage inside mh_store_deliver; a second
   * update only re-read every folder record. */
  if (outcome_ok (o))
    {
      mh_log_info (LOG_SVC, NULL, NULL,
                   "from=<%s> to=%s folder=%s uid=%u size=%" G_GSIZE_FORMAT
                   ": delivered",
                   msg->env->sender, account, folder ? folder : "INBOX",
                   o->uid, g_bytes_get_size (message));
    }
  return o;
}

static MhDeliveryResult *
deliver_recipient (Message *msg, guint index)
{
  MhDeliveryEnvelope *env = msg->env;
  const char *rcpt = g_ptr_array_index (env->rcpts, index);
  g_autoptr (GError) error = NULL;

  if (!mh_delivery__address_ok (rcpt, FALSE, "recipient", &error))
    return mh_delivery__result_new (rcpt, 501, "5.1.3", error->message);

  Outcome *refusal = NULL;
  gboolean auth = env->login != NULL;
  g_autoptr (GPtrArray) targets = stage_resolve (
      msg->d, rcpt, auth ? env->login : env->sender, auth, &refusal);
  if (targets == NULL)
    {
      MhDeliveryResult *r = mh_delivery__result_new (
          rcpt, refusal->code, refusal->enhanced, refusal->text);
      if (refusal->code >= 500)
        mh_log_info (LOG_SVC, NULL, NULL, "from=<%s> to=<%s>: %u %s %s",
                     env->sender, rcpt, refusal->code, refusal->enhanced,
                     refusal->text);
      outcome_free (refusal);
      return r;
    }
  if (targets->len == 0)
    return mh_delivery__result_new (rcpt, 550, "5.1.1",
                                    "no mailbox to deliver to");

  MhDeliveryResult *ok = mh_delivery__result_new (rcpt, 250, "2.0.0", NULL);
  for (guint i = 0; i < targets->len; i++)
    {
      MhResolveTarget *t = g_ptr_array_index (targets, i);
      const char *account = mh_resolve_target_get_address (t);
      Outcome *o = g_hash_table_lookup (msg->done, account);
      if (o == NULL)
        {
          o = deliver_mailbox (msg, t);
          g_hash_table_insert (msg->done, g_strdup (account), o);
        }
      if (!outcome_ok (o))
        {
          mh_delivery_result_unref (ok);
          return mh_delivery__result_new (rcpt, o->code, o->enhanced,
                                          o->text);
        }
      /* the same account twice in one recipient's targets is collapsed
       * by the resolver; across recipients the done table shares it */
      mh_delivery__result_add_mailbox (ok, account, o->folder, o->uid);
    }
  ok->text = g_strdup_printf ("<%s> delivered", rcpt);
  return ok;
}

GPtrArray *
mh_delivery_deliver_fd (MhDelivery *d, MhDeliveryEnvelope *env, int fd,
                        GError **error)
{
  g_return_val_if_fail (d != NULL && env != NULL, NULL);
  if (env->rcpts->len == 0)
    {
      g_set_error_literal (error, MH_DELIVERY_ERROR,
                           MH_DELIVERY_ERROR_INVALID, "no recipients");
      return NULL;
    }
  if (!mh_delivery__address_ok (env->sender, TRUE, "sender", error))
    return NULL;
  struct stat st;
  if (fstat (fd, &st) != 0)
    {
      int e = errno;
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                   "cannot read the message file: %s", g_strerror (e));
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error_literal (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                           "the message is not in a regular file");
      return NULL;
    }
  if ((guint64) st.st_size > d->max_size)
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_TOO_BIG,
                   "message of %" G_GUINT64_FORMAT " bytes is larger than "
                   "the limit of %" G_GUINT64_FORMAT,
                   (guint64) st.st_size, d->max_size);
      return NULL;
    }

  Message msg = {
    .d = d,
    .env = env,
    .fd = fd,
    .file_len = (gsize) st.st_size,
    .done = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                   (GDestroyNotify) outcome_free),
  };
  GPtrArray *results = g_ptr_array_new_with_free_func (
      (GDestroyNotify) mh_delivery_result_unref);
  for (guint i = 0; i < env->rcpts->len; i++)
    g_ptr_array_add (results, deliver_recipient (&msg, i));
  g_hash_table_unref (msg.done);
  return results;
}

GPtrArray *
mh_delivery_deliver_file (MhDelivery *d, MhDeliveryEnvelope *env,
                          const char *path, GError **error)
{
  g_return_val_if_fail (d != NULL && env != NULL && path != NULL, NULL);
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_SPOOL,
                   "cannot open %s: %s", path, g_strerror (e));
      return NULL;
    }
  GPtrArray *r = mh_delivery_deliver_fd (d, env, fd, error);
  close (fd);
  return r;
}

GPtrArray *
mh_delivery_deliver_spool (MhDelivery *d, MhDeliveryEnvelope *env,
                           MhDeliverySpool *spool, GError **error)
{
  g_return_val_if_fail (spool != NULL, NULL);
  return mh_delivery_deliver_fd (d, env, mh_delivery_spool_get_fd (spool),
                                 error);
}

/* ---- RCPT time ---------------------------------------------------------- */

gboolean
mh_delivery_check_rcpt (MhDelivery *d, const char *rcpt, const char *sender,
                        gboolean authenticated, guint64 size,
                        guint *code_out, char **enhanced_out,
                        char **text_out)
{
  g_return_val_if_fail (d != NULL && rcpt != NULL, FALSE);
  g_autoptr (GError) error = NULL;
  Outcome *o = NULL;

  if (!mh_delivery__address_ok (rcpt, FALSE, "recipient", &error))
    o = outcome_new (501, "5.1.3", error->message);
  else
    {
      g_autoptr (GPtrArray) targets
          = stage_resolve (d, rcpt, sender, authenticated, &o);
      for (guint i = 0; targets && o == NULL && i < targets->len; i++)
        {
          MhResolveTarget *t = g_ptr_array_index (targets, i);
          const char *account = mh_resolve_target_get_address (t);
          g_autoptr (MhStore) store
              = mh_delivery_get_store (d, account, &error);
          if (store == NULL)
            {
              mh_log_error (LOG_SVC, NULL, NULL,
                            "%s: cannot open the mailbox: %s", account,
                            error->message);
              o = outcome_from_error (error, "cannot open the mailbox");
            }
          else
            o = stage_quota (d, store, account, MAX (size, 1));
        }
      if (o == NULL && targets && targets->len == 0)
        o = outcome_new (550, "5.1.1", "no mailbox to deliver to");
      if (o == NULL)
        o = outcome_new (250, "2.1.5", "recipient ok");
    }
  gboolean ok = outcome_ok (o);
  *code_out = o->code;
  *enhanced_out = g_steal_pointer (&o->enhanced);
  *text_out = g_steal_pointer (&o->text);
  outcome_free (o);
  return ok;
}
