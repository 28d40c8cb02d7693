/* lib/store internals shared across its files (not installed). */
#pragma once

#include "mailhost/store.h"
#include "mailhost/limits.h"
#include "core/core-private.h"

#include <lmdb.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* ---- names.c: folder names, modified UTF-7, Maildir file names ------- */

/* Validates a UTF-8 folder name and returns its on-disk directory name
 * relative to the Maildir root ("" for INBOX, ".Sent", ".Archive.2024"). */
char *mh_store__folder_dirname (const char *name, GError **error);
/* Inverse: a directory entry (".&AOk-t&AOk-") to its UTF-8 name, or NULL
 * if it is not a valid Maildir++ folder name. */
char *mh_store__folder_from_dirname (const char *dirname);
/* Canonical UTF-8 name: NULL or any case of "INBOX" gives "INBOX". */
const char *mh_store__canon (const char *name);

char *mh_store__mutf7_encode (const char *utf8);
char *mh_store__mutf7_decode (const char *mutf7); /* NULL if invalid */

/* A new unique base name: time.M<usec>P<pid>Q<n>.<host>,S=<size>[,W=]. */
char *mh_store__unique_name (const char *host, guint64 counter, gsize size,
                             gsize vsize);
/* This host's name escaped for Maildir names ('/' ':' ','). */
char *mh_store__host_name (void);
/* Length of the base name (up to ":2," or the end). */
gsize mh_store__base_len (const char *filename);
/* The same on @len bytes that need not be NUL-terminated. */
gsize mh_store__base_len_n (const char *filename, gsize len);
/* Parses the info suffix: system flags and keyword letter bits. */
void mh_store__parse_info (const char *filename, guint32 *flags_out,
                           guint32 *kwbits_out);
/* base + ":2," + flag letters + keyword letters. */
char *mh_store__make_name (const char *base, gsize base_len, guint32 flags,
                           guint32 kwbits);
/* Reads ",S=<n>" from a base name; FALSE if absent. */
gboolean mh_store__name_size (const char *filename, guint64 *size_out);
/* Validates an IMAP keyword (atom, no '\\'). */
gboolean mh_store__keyword_valid (const char *kw, GError **error);
/* Validates a domain or user path component. */
gboolean mh_store__path_component_valid (const char *s);

/* ---- meta.c: the metadata cache (GMime) ------------------------------ */

/* Serialized cache of one message (a GVariant, see meta.c). */
GVariant *mh_store__meta_compute (const char *data, gsize len);
/* What mh_store__meta_compute stores: bump it whenever a change to
 * meta.c changes any cached string or number, so records computed by an
 * older meta.c are recomputed when read (index.c, ops.c), with no
 * `mhctl index rebuild`. Records written before versions existed count
 * as 1. 2: encoded words kept raw, MISSING_DOMAIN, parameters as
 * written, Dovecot's line counts, header copies joined. */
#define MH_STORE_META_VERSION 2
gsize mh_store__rfc822_size (const char *data, gsize len);

/* ---- index: records in LMDB ------------------------------------------ */

/* Databases of one account's environment. */
typedef struct
{
  MDB_env *env;
  MDB_dbi meta;    /* "key" → value: uidvalidity_last, boot_id, counter */
  MDB_dbi folders; /* UTF-8 name → FolderRec (+ keywords, NUL-separated) */
  MDB_dbi msgs;    /* fid(4 BE) uid(4 BE) → MsgRec (+ file name) */
  MDB_dbi names;   /* fid(4 BE) base name → uid (4) */
  MDB_dbi cache;   /* fid(4 BE) uid(4 BE) → serialized GVariant */
  MDB_dbi tombs;   /* fid(4 BE) modseq(8 BE) → uid (4), expunged */
} MhStoreDb;

typedef struct
{
  guint32 id;
  guint32 uidvalidity;
  guint32 uidnext;
  guint32 first_recent_uid;
  guint64 highestmodseq;
  guint32 messages;
  guint32 unseen;
  guint64 size;
  guint32 deleted;
  guint32 n_keywords;
  /* Maildir state at the last full scan; 0 = unknown, rescan. */
  gint64 new_mtime;
  gint64 cur_mtime;
  gint64 uidlist_mtime;
  gint64 uidlist_size;
  /* Since index version 2: records with in_new set, so that SELECT
   * knows without a walk whether it has files to move to cur/. */
  guint32 in_new;
  guint32 spare; /* keeps the record a multiple of 8 bytes */
} FolderRec;
/* The version-1 layout ended before in_new (see index.c's upgrade). */
#define MH_STORE_FOLDER_REC_V1_SIZE G_STRUCT_OFFSET (FolderRec, in_new)

typedef struct
{
  guint64 modseq;
  guint64 size;
  guint64 vsize;
  gint64 internal_date;
  gint64 saved_date;
  guint32 flags;
  guint32 kwbits;
  guint32 in_new;
  guint32 name_len;
  /* followed by name_len bytes of the current file name */
} MsgRec;

typedef struct
{
  FolderRec rec;
  char *name;
  GPtrArray *keywords; /* char* */
} MhStoreFolder;

void mh_store__folder_free (MhStoreFolder *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhStoreFolder, mh_store__folder_free)

/* One delivery waiting for the group commit. */
typedef struct
{
  char *folder;     /* canonical UTF-8 */
  char *filename;   /* name in new/ or cur/ */
  gboolean in_new;
  guint64 size, vsize;
  gint64 internal_date;
  guint32 flags;
  char **keywords;
  GVariant *cache;   /* set once, atomically: see deliver.c */
  GBytes *data;      /* the message, for the cache */
  guint64 ticket;
  guint32 uid;       /* result */
  gboolean indexed;  /* found already indexed by a reconciliation */
  GError *error;     /* result */
} MhStorePending;

struct _MhStore
{
  gint ref;
  char *maildir;
  char *index_dir;
  MhStoreDb db;

  /* Serialises this process's write txns (LMDB allows one per env and
   * one per thread; the lock also covers the folder map below). */
  GMutex write_lock;

  /* Group commit: see deliver.c's design notes. */
  GMutex gc_lock;
  GCond gc_cond;
  GPtrArray *gc_pending;  /* MhStorePending* renamed, not yet durable */
  guint64 gc_next_ticket; /* tickets handed out */
  guint64 gc_done_ticket; /* every ticket <= this is durable */
  gboolean gc_leader;     /* someone is committing */
  volatile gint name_counter;
  char *host;        /* escaped host name for unique names */
  int notify_fd;     /* DATA/index/.../notify, see store.c */
  char *lock_tmp;    /* linked to take dovecot-uidlist.lock, see index.c */

  /* Lazy index durability (index.c design notes); under write_lock. */
  char *marker;          /* our dirty.<pid> file, removed at close */
  gboolean recovered;    /* the index was rebuilt after an unsynced crash */
  GHashTable *uid_bound; /* UIDVALIDITY → bound above every UID given */
  guint64 modseq_bound;  /* bound above every MODSEQ given */

  MhStoreCheckFunc check;
  gpointer check_data;
  GDestroyNotify check_destroy;

  /* Recomputed cache records waiting to be written (index.c). Never
   * taken while holding write_lock. */
  GMutex stale_lock;
  GPtrArray *stale;

  /* Directory scans made by reconciliation (tests check that our own
   * changes cause none). */
  volatile gint n_scans;

  /* The last full view of each large folder (store.c, mh_store_select):
   * canonical folder name -> MhStoreViewCache*. Under view_lock. */
  GMutex view_lock;
  GHashTable *views;

  MhStoreChangeFunc change;
  gpointer change_data;
  GDestroyNotify change_destroy;
};

struct _MhStoreMessage
{
  gint ref;
  guint32 uid;
  MsgRec rec;
  GVariant *cache;
  char *envelope, *body, *bodystructure;
  guint64 header_size;
  /* Lowercase name → copies joined, for cache records made before the
   * copies were joined at indexing (get_header, ops.c). */
  GHashTable *joined;
};

struct _MhStoreWatch
{
  gint ref;
  int fd;
};

/* own.c: our own changes to a folder's files keep its recorded
 * directory mtimes exact (see own.c). Begin after loading the folder in
 * the write txn and before changing any file; declare each change that
 * succeeded; end before the folder record is saved (it sets
 * f->rec.new_mtime/cur_mtime), or abort when the txn is dropped. */
typedef struct _MhStoreOwn MhStoreOwn;
MhStoreOwn *mh_store__own_begin (MhStore *store, MhStoreFolder *f);
void mh_store__own_renamed (MhStoreOwn *o, gboolean from_new,
                            const char *from, gboolean to_new,
                            const char *to);
void mh_store__own_unlinked (MhStoreOwn *o, gboolean in_new,
                             const char *name);
void mh_store__own_linked (MhStoreOwn *o, const char *name);
void mh_store__own_end (MhStoreOwn *o, MhStoreFolder *f);
void mh_store__own_abort (MhStoreOwn *o);

/* store.c: brings @folder up to date with the Maildir, opens a read txn
 * and loads the folder in it. NULL (and no txn) on error; the caller
 * aborts *@txn_out when done. */
MhStoreFolder *mh_store__read_folder (MhStore *store, const char *folder,
                                      MDB_txn **txn_out, GError **error);
/* store.c: runs the change hook (no lock held by the caller). */
void mh_store__changed (MhStore *store, const char *folder);
/* store.c: creates a role folder on first use; NOT_FOUND otherwise. */
gboolean mh_store__role_autocreate (MhStore *store, const char *folder,
                                    GError **error);
gboolean mh_store__header_is_cached (const char *name);
/* meta.c: the one process-wide g_mime_init() (also lib/server). */
void mh_store__gmime_init (void);

/* index.c */
gboolean mh_store__db_open (MhStore *store, GError **error);
void mh_store__db_close (MhStore *store);
int mh_store__txn_begin (MhStore *store, gboolean write, MDB_txn **txn,
                         GError **error);
gboolean mh_store__txn_commit (MhStore *store, MDB_txn *txn, GError **error);
gboolean mh_store__lmdb_error (int rc, const char *what, GError **error);

/* Loads a folder's record; if @create, makes the record (not the dirs). */
MhStoreFolder *mh_store__folder_load (MhStore *store, MDB_txn *txn,
                                      const char *name, gboolean create,
                                      GError **error);
gboolean mh_store__folder_save (MhStore *store, MDB_txn *txn,
                                MhStoreFolder *f, GError **error);
/* Keyword name → index, adding it (and rewriting dovecot-keywords) if
 * @add. -1 if unknown / full (error set only when adding fails). */
int mh_store__keyword_index (MhStore *store, MhStoreFolder *f,
                             const char *kw, gboolean add, GError **error);
gboolean mh_store__keywords_bits (MhStore *store, MhStoreFolder *f,
                                  const char *const *kws, gboolean add,
                                  guint32 *bits_out, GError **error);

/* Adds a message record (uid chosen if 0), updating counters. */
gboolean mh_store__msg_add (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                            const char *filename, gboolean in_new,
                            guint64 size, guint64 vsize, gint64 idate,
                            gint64 saved, guint32 flags, guint32 kwbits,
                            GVariant *cache, guint32 *uid_inout,
                            GError **error);
/* Removes it (and its name and cache), adding a tombstone. */
gboolean mh_store__msg_remove (MhStore *store, MDB_txn *txn,
                               MhStoreFolder *f, guint32 uid,
                               const MsgRec *rec, GError **error);
/* Replaces the record (flags or file name changed), updating counters
 * relative to @old. */
gboolean mh_store__msg_put (MhStore *store, MDB_txn *txn, MhStoreFolder *f,
                            guint32 uid, const MsgRec *old,
                            const MsgRec *rec, const char *filename,
                            GError **error);
/* Cache records (index.c): put writes the current meta version;
 * get returns the record (NULL if none) and whether it is of that
 * version. A record of an older version is recomputed by the reader and
 * handed to cache_stale, which writes it back in batches (at
 * MH_STORE_STALE_BATCH, and at cache_flush: after a read txn ends). */
int mh_store__cache_put (MhStore *store, MDB_txn *txn, guint32 fid,
                         guint32 uid, GVariant *cache);
GVariant *mh_store__cache_get (MhStore *store, MDB_txn *txn, guint32 fid,
                               guint32 uid, gboolean *current_out);
#define MH_STORE_STALE_BATCH 256
void mh_store__cache_stale (MhStore *store, guint32 fid, guint32 uid,
                            GVariant *cache);
void mh_store__cache_flush (MhStore *store);

/* Looks a message up: a copy of its record and file name. */
gboolean mh_store__msg_get (MhStore *store, MDB_txn *txn, guint32 fid,
                            guint32 uid, MsgRec *rec_out, char **name_out);
/* ops.c: one message (record + cache) from an open read txn; no
 * freshness check. NOT_FOUND if the index has no such UID. */
MhStoreMessage *mh_store__message_from_txn (MhStore *store, MDB_txn *txn,
                                            guint32 fid, const char *folder,
                                            guint32 uid, char **filename_out,
                                            GError **error);

/* Folder directory paths. */
char *mh_store__folder_path (MhStore *store, const char *name,
                             GError **error);
/* Makes the folder's Maildir dirs (and maildirfolder file). */
gboolean mh_store__folder_mkdirs (MhStore *store, const char *name,
                                  GError **error);

/* Reconciles a folder with its Maildir if the directories changed (or
 * always if @force). Creates the folder record if needed. */
gboolean mh_store__sync_folder (MhStore *store, const char *name,
                                gboolean force, GError **error);

/* dovecot-uidlist: appends "uid :base" lines under its dotlock. */
gboolean mh_store__uidlist_append (MhStore *store, const char *folder_dir,
                                   MhStoreFolder *f, const guint32 *uids,
                                   char *const *bases, guint n,
                                   GError **error);
/* Rewrites it from the index (after expunges). */
gboolean mh_store__uidlist_rewrite (MhStore *store, MDB_txn *txn,
                                    MhStoreFolder *f, GError **error);

/* Bumps the change counter and pokes the notify file. */
void mh_store__notify (MhStore *store, MDB_txn *txn);

gint64 mh_store__now_ns (void);
gboolean mh_store__fsync_dir (const char *path, GError **error);
gboolean mh_store__io_error (int errsv, const char *what, const char *path,
                             GError **error);

static inline void
mh_store__key_fid_uid (guint8 key[8], guint32 fid, guint32 uid)
{
  key[0] = fid >> 24; key[1] = fid >> 16; key[2] = fid >> 8; key[3] = fid;
  key[4] = uid >> 24; key[5] = uid >> 16; key[6] = uid >> 8; key[7] = uid;
}

static inline guint32
mh_store__be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16)
         | ((guint32) p[2] << 8) | p[3];
}

G_END_DECLS
