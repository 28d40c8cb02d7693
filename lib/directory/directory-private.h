/* lib/directory internals shared between its files (not installed). */
#pragma once

#include "mailhost/directory.h"
#include "core/core-private.h"

#include <lmdb.h>

G_BEGIN_DECLS

/* The schema version this library writes. Bump it and add a row to the
 * migration table in directory.c when the layout changes. */
#define MH_DIRECTORY_SCHEMA_VERSION 2

/* Record format version of each record kind (records.c). A record is a
 * GVariant "(uv)": its format version and the version's tuple. Readers
 * accept every version they know; a migration rewrites old ones. */
#define MH_DIRECTORY_RECORD_VERSION 1

typedef struct
{
  MDB_dbi meta;            /* "schema_version" -> guint32 LE, "created" */
  MDB_dbi domains;         /* A-label -> domain record */
  MDB_dbi accounts;        /* "alabel@local" -> account record */
  MDB_dbi aliases;         /* "alabel@local" -> alias record */
  MDB_dbi domain_aliases;  /* alias A-label -> domain alias record */
  MDB_dbi temp_aliases;    /* "alabel@local" -> temp alias record (v2) */
} MhDirectoryDbs;

struct _MhDirectory
{
  gint refcount;
  char *data_dir;
  char *path;               /* DATA/directory.mdb */
  char *lock_path;          /* DATA/directory.mdb-lock */
  MDB_env *env;
  MhDirectoryDbs dbs;
  gboolean read_only;
  guint schema_version;
  /* Registry key (see directory.c): one env per file per process. */
  char *file_id;
  GPid pid;
  /* Dummy hash for unknown users, made on first authenticate. */
  GMutex dummy_lock;
  char *dummy_hash;
  /* yescrypt cost of new hashes (and the dummy); 0 = libxcrypt's
   * default. Only unit tests lower it, to stay fast. */
  guint hash_cost;
};

/* A migration step: rewrites a schema @from into @from + 1 inside @txn.
 * Run in order, all in one write transaction. */
typedef struct
{
  guint from;
  const char *what;
  gboolean (*run) (MDB_txn *txn, const MhDirectoryDbs *dbs, GError **error);
} MhDirectoryMigration;

/* Runs @steps from the stored version up to @target in one write txn of
 * @dir. Exposed so tests can run a made-up table. */
gboolean mh_directory__migrate (MhDirectory *dir,
                                const MhDirectoryMigration *steps,
                                guint n_steps, guint target, GError **error);
guint mh_directory__read_schema_version (MDB_txn *txn,
                                         const MhDirectoryDbs *dbs);
gboolean mh_directory__write_schema_version (MDB_txn *txn,
                                             const MhDirectoryDbs *dbs,
                                             guint version, GError **error);

/* Transactions: errors carry the path and LMDB's message. */
MDB_txn *mh_directory__txn_begin (MhDirectory *dir, gboolean write,
                                  GError **error);
gboolean mh_directory__txn_commit (MhDirectory *dir, MDB_txn *txn,
                                   GError **error);
void mh_directory__set_mdb_error (MhDirectory *dir, int rc, const char *what,
                                  GError **error);

/* ---- names.c ---- */
/* A parsed address. local is normalised per the case flag; domain is the
 * A-label. */
typedef struct
{
  char *local;
  char *domain;
} MhDirectoryAddress;

void mh_directory__address_clear (MhDirectoryAddress *a);
/* Splits at the last '@' and checks both halves' syntax. The local part
 * is NFC-normalised but not yet case-folded (that needs the domain's
 * setting): see mh_directory__local_fold(). */
gboolean mh_directory__address_parse (const char *address,
                                      MhDirectoryAddress *out,
                                      GError **error);
/* Canonical local part: lower case unless @case_sensitive. */
char *mh_directory__local_fold (const char *local, gboolean case_sensitive);
/* "alabel@local": the key of accounts and aliases, sorted by domain. */
char *mh_directory__address_key (const char *local, const char *domain);
gboolean mh_directory__key_split (const void *key, gsize len, char **local_out,
                                  char **domain_out);

/* ---- password.c ---- */
const char *mh_directory__hash_scheme (const char *hash);
/* mh_directory_password_hash() with a yescrypt cost (0 = default). */
char *mh_directory__password_hash_cost (const char *password, guint cost,
                                        GError **error);
char *mh_directory__dummy_hash (guint cost, GError **error);

/* ---- records.c ---- */
typedef enum
{
  MH_SETTING_COUNT,     /* "t", plain number */
  MH_SETTING_SIZE,      /* "t", bytes; "1G" accepted */
  MH_SETTING_BOOL,      /* "b" */
  MH_SETTING_STRING,    /* "s" */
} MhSettingType;

typedef struct
{
  const char *name;
  guint scopes;         /* 1 << MhDirectorySettingScope */
  MhSettingType type;
  const char *description;
  /* Optional extra check of a STRING value (syntax only: no txn). */
  gboolean (*check) (const char *value, GError **error);
} MhSettingSpec;

const MhSettingSpec *mh_directory__setting_find (MhDirectorySettingScope scope,
                                                 const char *name);
/* Parses @value for @spec into a floating GVariant or sets INVALID. */
GVariant *mh_directory__setting_parse (const MhSettingSpec *spec,
                                       const char *value, GError **error);
/* Returns a new a{sv} with @name set to @value (NULL: removed). */
GVariant *mh_directory__settings_replace (GVariant *settings,
                                          const char *name, GVariant *value);

typedef struct
{
  gint64 created;
  GVariant *settings;   /* a{sv}, owned */
} MhDomainRecord;

typedef struct
{
  char *display_name;   /* NULL = unset */
  char *hash;           /* NULL = no login */
  gboolean enabled;
  guint32 protocols;
  gint64 created;
  GVariant *settings;   /* a{sv}, owned */
} MhAccountRecord;

typedef struct
{
  GPtrArray *targets;   /* char*, "local@alabel" */
  gint64 created;
} MhAliasRecord;

typedef struct
{
  char *target;         /* A-label */
  gint64 created;
} MhDomainAliasRecord;

void mh_domain_record_clear (MhDomainRecord *r);
void mh_account_record_clear (MhAccountRecord *r);
void mh_alias_record_clear (MhAliasRecord *r);
void mh_domain_alias_record_clear (MhDomainAliasRecord *r);

/* Encode: returns a new GBytes of the "(uv)" blob. */
GBytes *mh_domain_record_encode (const MhDomainRecord *r);
GBytes *mh_account_record_encode (const MhAccountRecord *r);
GBytes *mh_alias_record_encode (const MhAliasRecord *r);
GBytes *mh_domain_alias_record_encode (const MhDomainAliasRecord *r);

/* Names a record in a decode error: "KIND 'KEY'", or "KIND 'KEY@DOMAIN'"
 * when @domain is set, or just KIND when @key is NULL. The text is built
 * only when an error is, so a look-up that succeeds formats nothing (it
 * sits on the RCPT path). */
typedef struct
{
  const char *kind;   /* "account", "domain alias", ... */
  const char *key;    /* nullable */
  const char *domain; /* nullable */
} MhRecordWhat;

#define MH_RECORD_WHAT(kind, key, domain)                                      \
  (&(const MhRecordWhat){ (kind), (key), (domain) })

/* The "(uv)" envelope every record has: wrap () sinks @inner and
 * returns the bytes; unwrap () copies @data, checks the envelope and
 * returns the inner tuple if it has @type for a version we know, else
 * CORRUPT naming @what. */
GBytes *mh_directory__record_wrap (GVariant *inner);
GVariant *mh_directory__record_unwrap (const void *data, gsize len,
                                       const MhRecordWhat *what,
                                       const char *type, GError **error);

/* Decode @data (valid only in its txn; everything is copied). CORRUPT
 * naming @what on a bad or unknown-version record. */
gboolean mh_domain_record_decode_named (const void *data, gsize len,
                                        const MhRecordWhat *what,
                                        MhDomainRecord *out, GError **error);
gboolean mh_account_record_decode_named (const void *data, gsize len,
                                         const MhRecordWhat *what,
                                         MhAccountRecord *out, GError **error);
gboolean mh_alias_record_decode_named (const void *data, gsize len,
                                       const MhRecordWhat *what,
                                       MhAliasRecord *out, GError **error);
gboolean mh_domain_alias_record_decode_named (const void *data, gsize len,
                                              const MhRecordWhat *what,
                                              MhDomainAliasRecord *out,
                                              GError **error);
/* The same with @what already formatted ("account 'a@b'"), for callers
 * that have the text at hand anyway. */
gboolean mh_domain_record_decode (const void *data, gsize len,
                                  const char *what, MhDomainRecord *out,
                                  GError **error);
gboolean mh_account_record_decode (const void *data, gsize len,
                                   const char *what, MhAccountRecord *out,
                                   GError **error);
gboolean mh_alias_record_decode (const void *data, gsize len,
                                 const char *what, MhAliasRecord *out,
                                 GError **error);
gboolean mh_domain_alias_record_decode (const void *data, gsize len,
                                        const char *what,
                                        MhDomainAliasRecord *out,
                                        GError **error);

/* Info objects, built from records (the record is stolen). */
MhDomainInfo *mh_directory__domain_info_new (const char *alabel,
                                             MhDomainRecord *rec,
                                             guint n_accounts,
                                             guint n_aliases);
MhAccountInfo *mh_directory__account_info_new (const char *local,
                                               const char *alabel,
                                               MhAccountRecord *rec);
MhAliasInfo *mh_directory__alias_info_new (const char *local,
                                           const char *alabel,
                                           MhAliasRecord *rec);
MhDomainAliasInfo *mh_directory__domain_alias_info_new (
    const char *alabel, MhDomainAliasRecord *rec);
/* The stored hash, for tests and lib/auth (never shown to users). */
const char *mh_directory__account_info_get_hash (MhAccountInfo *info);

/* ---- kv.c: LMDB helpers inside a caller's txn ---- */
gint64 mh_directory__now (void);
/* 1 found (*out valid until the txn ends), 0 not found, -1 error (set). */
int mh_directory__get (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                       const char *key, MDB_val *out, GError **error);
/* *found as mh_directory__get () returns; FALSE on an error. */
gboolean mh_directory__has_key (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                                const char *key, int *found, GError **error);
/* Writes and releases @bytes. */
gboolean mh_directory__put (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                            const char *key, GBytes *bytes, GError **error);
/* A missing key is no error; *found_out (nullable) tells. */
gboolean mh_directory__del (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                            const char *key, gboolean *found_out,
                            GError **error);

typedef enum
{
  MH_DIRECTORY_EACH_STOP, /* error set: stop and fail */
  MH_DIRECTORY_EACH_NEXT,
  MH_DIRECTORY_EACH_DELETE, /* delete this record, go on */
} MhDirectoryEach;

/* @key and @val are valid during the call only. */
typedef MhDirectoryEach (*MhDirectoryEachFn) (const MDB_val *key,
                                              const MDB_val *val, gpointer data,
                                              GError **error);
/* Calls @fn for each record of @dbi whose key starts with @prefix (NULL
 * or "": all), in key order. LMDB errors name @what ("cursor failed"). */
gboolean mh_directory__each (MhDirectory *dir, MDB_txn *txn, MDB_dbi dbi,
                             const char *prefix, MhDirectoryEachFn fn,
                             gpointer data, const char *what, GError **error);
/* Counts keys of @dbi starting with "alabel@". */
gboolean mh_directory__count_prefix (MhDirectory *dir, MDB_txn *txn,
                                     MDB_dbi dbi, const char *alabel,
                                     guint *count_out, GError **error);

/* NOT_FOUND "domain 'U-label' does not exist" */
void mh_directory__not_found_domain (const char *alabel, GError **error);

/* The record of @key decoded into *out: 1 found, 0 not found, -1 error
 * (set; CORRUPT names the record). */
int mh_directory__read_domain (MhDirectory *dir, MDB_txn *txn,
                               const char *alabel, MhDomainRecord *out,
                               GError **error);
int mh_directory__read_account (MhDirectory *dir, MDB_txn *txn, const char *key,
                                MhAccountRecord *out, GError **error);
int mh_directory__read_alias (MhDirectory *dir, MDB_txn *txn, const char *key,
                              MhAliasRecord *out, GError **error);
int mh_directory__read_domain_alias (MhDirectory *dir, MDB_txn *txn,
                                     const char *alabel,
                                     MhDomainAliasRecord *out, GError **error);
gboolean mh_directory__domain_case_sensitive (const MhDomainRecord *dom);

/* ---- kv.c: an address against its hosted domain ---- */
typedef struct
{
  char *local;  /* folded per the domain's setting */
  char *domain; /* A-label */
  char *key;    /* "alabel@local" */
  MhDomainRecord dom;
} MhDirectoryResolved;

/* Parses @address and reads its domain, which must be hosted (else
 * NOT_FOUND naming the domain). */
gboolean mh_directory__resolve (MhDirectory *dir, MDB_txn *txn,
                                const char *address, MhDirectoryResolved *out,
                                GError **error);
void mh_directory__resolved_clear (MhDirectoryResolved *r);

/* A look-up by address: @fn gets @address resolved in a read txn and
 * returns the info object, or NULL with @error set (NOT_FOUND, ...). */
typedef gpointer (*MhDirectoryLookupFn) (MhDirectory *dir, MDB_txn *txn,
                                         const MhDirectoryResolved *r,
                                         const char *address, GError **error);
gpointer mh_directory__lookup (MhDirectory *dir, const char *address,
                               MhDirectoryLookupFn fn, GError **error);

/* ---- resolve-settings.c: syntax checks of the resolution settings ---- */
gboolean mh_directory__check_catch_all (const char *value, GError **error);
gboolean mh_directory__check_routing (const char *value, GError **error);
gboolean mh_directory__check_separator (const char *value, GError **error);
gboolean mh_directory__check_group_addresses (const char *value,
                                              GError **error);
gboolean mh_directory__check_forward_to (const char *value, GError **error);

/* ---- temp-alias.c ---- */
/* Schema 1 -> 2: the temp_aliases table (created by open_dbs). */
gboolean mh_directory__migrate_temp_aliases (MDB_txn *txn,
                                             const MhDirectoryDbs *dbs,
                                             GError **error);

typedef struct
{
  char *target;         /* the owning account, "local@alabel" */
  gint64 created;
  gint64 expires;       /* seconds since the epoch */
} MhTempAliasRecord;

void mh_temp_alias_record_clear (MhTempAliasRecord *r);
GBytes *mh_temp_alias_record_encode (const MhTempAliasRecord *r);
gboolean mh_temp_alias_record_decode (const void *data, gsize len,
                                      const char *what,
                                      MhTempAliasRecord *out, GError **error);

G_END_DECLS
