/* lib/directory: opening DATA/directory.mdb, schema versions and
 * migrations, transactions and their errors.
 *
 * Design notes
 * - One LMDB file (MDB_NOSUBDIR) plus its "-lock" file. Five named DBs:
 *   meta (schema_version, created), domains, accounts, aliases,
 *   domain_aliases. Keys are described in directory-private.h.
 * - Processes share the file through LMDB's MVCC: mhctl writes while the
 *   servers read. Every public call runs in its own transaction and
 *   copies what it returns, so nothing read is cached across calls and a
 *   server sees mhctl's change at its next look-up. A writer blocked by
 *   another writer waits on LMDB's lock (writes are short).
 * - LMDB forbids opening one file twice in a process (closing the second
 *   env's lock-file descriptor drops the first one's fcntl locks). So a
 *   process-wide registry maps the file's (dev, inode) to the open
 *   MhDirectory, and a second open returns another reference. This is
 *   the only mutable static in the layer; it is keyed by pid too, so a
 *   child after fork() opens its own env instead of touching the
 *   parent's (LMDB caveat: nothing across fork()).
 * - MDB_NOTLS: reader slots belong to transactions, not threads, so any
 *   thread of an embedding program may call in.
 * - On open: mdb_reader_check() clears slots of dead readers (a killed
 *   server would otherwise pin old pages forever); then, in ONE write
 *   transaction, the DBs are created and migration steps run from the
 *   stored schema version up to ours. A newer stored version is refused
 *   before anything is written.
 * - Map size is fixed and generous (sparse: the file grows only as
 *   pages are written); every process uses the same value, so
 *   MDB_MAP_RESIZED never happens between our processes.
 * - The file's problems are reported with its path: a directory in its
 *   place or a file that is not LMDB (CORRUPT), no permission or a lock
 *   file we cannot open (IO), a newer schema (VERSION).
 */
#include "directory-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if GLIB_SIZEOF_VOID_P >= 8
#define MAP_SIZE ((gsize) 16 << 30)    /* 16 GiB of address space */
#else
#define MAP_SIZE ((gsize) 512 << 20)
#endif
#define MAX_READERS 1022

G_DEFINE_QUARK (mh-directory-error-quark, mh_directory_error)

G_DEFINE_ENUM_TYPE (MhDirectoryError, mh_directory_error,
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_FAILED, "failed"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_NOT_FOUND, "not-found"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_EXISTS, "exists"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_INVALID, "invalid"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_AUTH_FAILED, "auth-failed"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_DISABLED, "disabled"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_CORRUPT, "corrupt"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_IO, "io"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_VERSION, "version"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_NOT_EMPTY, "not-empty"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_ERROR_LIMIT, "limit"))

G_DEFINE_FLAGS_TYPE (MhDirectoryProtocols, mh_directory_protocols,
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_PROTOCOL_NONE, "none"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_PROTOCOL_IMAP, "imap"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_PROTOCOL_POP3, "pop3"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_PROTOCOL_SUBMISSION, "submission"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_PROTOCOL_MANAGESIEVE, "managesieve"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_PROTOCOL_ALL, "all"))

G_DEFINE_ENUM_TYPE (MhDirectorySettingScope, mh_directory_setting_scope,
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_SETTING_DOMAIN, "domain"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_SETTING_ACCOUNT, "account"))

G_DEFINE_FLAGS_TYPE (MhDirectoryImportFlags, mh_directory_import_flags,
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_IMPORT_NONE, "none"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_IMPORT_PARTIAL, "partial"),
  G_DEFINE_ENUM_VALUE (MH_DIRECTORY_IMPORT_DRY_RUN, "dry-run"))

G_DEFINE_BOXED_TYPE (MhDirectory, mh_directory, mh_directory_ref,
                     mh_directory_unref)

/* ---- Protocols -------------------------------------------------------- */

static const struct
{
  const char *name;
  MhDirectoryProtocols flag;
} protocol_names[] = {
  { "imap", MH_DIRECTORY_PROTOCOL_IMAP },
  { "pop3", MH_DIRECTORY_PROTOCOL_POP3 },
  { "submission", MH_DIRECTORY_PROTOCOL_SUBMISSION },
  { "managesieve", MH_DIRECTORY_PROTOCOL_MANAGESIEVE },
};

gboolean
mh_directory_protocols_from_string (const char *text,
                                    MhDirectoryProtocols *protocols_out,
                                    GError **error)
{
  g_return_val_if_fail (protocols_out != NULL, FALSE);
  if (text == NULL)
    text = "";
  guint flags = 0;
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  gboolean any = FALSE;
  for (guint i = 0; parts[i]; i++)
    {
      g_strstrip (parts[i]);
      if (parts[i][0] == '\0')
        continue;
      any = TRUE;
      if (g_ascii_strcasecmp (parts[i], "all") == 0)
        {
          flags |= MH_DIRECTORY_PROTOCOL_ALL;
          continue;
        }
      if (g_ascii_strcasecmp (parts[i], "none") == 0)
        continue;
      gboolean found = FALSE;
      for (gsize k = 0; k < G_N_ELEMENTS (protocol_names); k++)
        if (g_ascii_strcasecmp (parts[i], protocol_names[k].name) == 0)
          {
            flags |= protocol_names[k].flag;
            found = TRUE;
          }
      if (!found)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                       "unknown protocol '%s' (expected imap, pop3, "
                       "submission, managesieve, all or none)", parts[i]);
          return FALSE;
        }
    }
  if (!any)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "no protocol given (expected imap, pop3, submission, "
                   "managesieve, all or none)");
      return FALSE;
    }
  *protocols_out = (MhDirectoryProtocols) flags;
  return TRUE;
}

char *
mh_directory_protocols_to_string (MhDirectoryProtocols protocols)
{
  GString *s = g_string_new (NULL);
  for (gsize k = 0; k < G_N_ELEMENTS (protocol_names); k++)
    if (protocols & protocol_names[k].flag)
      {
        if (s->len > 0)
          g_string_append_c (s, ',');
        g_string_append (s, protocol_names[k].name);
      }
  if (s->len == 0)
    g_string_append (s, "none");
  return g_string_free (s, FALSE);
}

/* ---- Errors and transactions ------------------------------------------ */

void
mh_directory__set_mdb_error (MhDirectory *dir, int rc, const char *what,
                             GError **error)
{
  int code = MH_DIRECTORY_ERROR_IO;
  const char *why = mdb_strerror (rc);
  switch (rc)
    {
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_VALSIZE:
      code = MH_DIRECTORY_ERROR_CORRUPT;
      break;
    case MDB_VERSION_MISMATCH:
      code = MH_DIRECTORY_ERROR_VERSION;
      break;
    case MDB_MAP_FULL:
      why = "the directory is full (LMDB map size reached)";
      break;
    case MDB_MAP_RESIZED:
      why = "another process grew the map; reopen the directory";
      break;
    case MDB_READERS_FULL:
      why = "too many concurrent readers";
      break;
    case EACCES:
    case EROFS:
      why = "no write permission (the directory is read-only)";
      break;
    default:
      break;
    }
  g_set_error (error, MH_DIRECTORY_ERROR, code, "%s: %s: %s", dir->path,
               what, why);
}

MDB_txn *
mh_directory__txn_begin (MhDirectory *dir, gboolean write, GError **error)
{
  if (write && dir->read_only)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "%s: cannot change the directory: no write permission "
                   "(opened read-only)", dir->path);
      return NULL;
    }
  MDB_txn *txn = NULL;
  int rc = mdb_txn_begin (dir->env, NULL, write ? 0 : MDB_RDONLY, &txn);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, write ? "cannot begin a write "
                                   "transaction" : "cannot begin a read "
                                   "transaction", error);
      return NULL;
    }
  return txn;
}

gboolean
mh_directory__txn_commit (MhDirectory *dir, MDB_txn *txn, GError **error)
{
  int rc = mdb_txn_commit (txn);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, "cannot commit", error);
      return FALSE;
    }
  return TRUE;
}

/* ---- Schema versions and migrations ----------------------------------- */

#define KEY_SCHEMA "schema_version"
#define KEY_CREATED "created"

guint
mh_directory__read_schema_version (MDB_txn *txn, const MhDirectoryDbs *dbs)
{
  MDB_val k = { strlen (KEY_SCHEMA), (void *) KEY_SCHEMA }, v;
  if (mdb_get (txn, dbs->meta, &k, &v) != 0)
    return 0;
  if (v.mv_size != 4)
    return G_MAXUINT;
  guint32 le;
  memcpy (&le, v.mv_data, 4);
  return GUINT32_FROM_LE (le);
}

gboolean
mh_directory__write_schema_version (MDB_txn *txn, const MhDirectoryDbs *dbs,
                                    guint version, GError **error)
{
  guint32 le = GUINT32_TO_LE ((guint32) version);
  MDB_val k = { strlen (KEY_SCHEMA), (void *) KEY_SCHEMA };
  MDB_val v = { 4, &le };
  int rc = mdb_put (txn, dbs->meta, &k, &v, 0);
  if (rc != 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot write the schema version: %s", mdb_strerror (rc));
      return FALSE;
    }
  return TRUE;
}

/* 0 -> 1: a new file. The DBs already exist (created on open); record
 * when the directory was made. */
static gboolean
migrate_create (MDB_txn *txn, const MhDirectoryDbs *dbs, GError **error)
{
  gint64 now = GINT64_TO_LE (g_get_real_time () / G_USEC_PER_SEC);
  MDB_val k = { strlen (KEY_CREATED), (void *) KEY_CREATED };
  MDB_val v = { sizeof now, &now };
  int rc = mdb_put (txn, dbs->meta, &k, &v, 0);
  if (rc != 0)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot initialise the directory: %s", mdb_strerror (rc));
      return FALSE;
    }
  return TRUE;
}

/* The migration table: step i turns schema `from` into `from + 1`. Add a
 * row (and bump MH_DIRECTORY_SCHEMA_VERSION) when the layout changes. */
static const MhDirectoryMigration migrations[] = {
  { 0, "create the directory", migrate_create },
  { 1, "add temporary aliases", mh_directory__migrate_temp_aliases },
};

static gboolean
migrate_in_txn (MhDirectory *dir, MDB_txn *txn,
                const MhDirectoryMigration *steps, guint n_steps,
                guint target, guint *version_out, GError **error)
{
  guint v = mh_directory__read_schema_version (txn, &dir->dbs);
  if (v > target)
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_VERSION,
                   "%s has schema version %u, but this libmailhost knows "
                   "versions up to %u: it was written by a newer "
                   "libmailhost (upgrade this one)", dir->path, v, target);
      return FALSE;
    }
  guint start = v;
  while (v < target)
    {
      const MhDirectoryMigration *step = NULL;
      for (guint i = 0; i < n_steps; i++)
        if (steps[i].from == v)
          step = &steps[i];
      if (step == NULL)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_VERSION,
                       "%s: no migration from schema version %u", dir->path,
                       v);
          return FALSE;
        }
      g_autoptr (GError) serr = NULL;
      if (!step->run (txn, &dir->dbs, &serr))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, serr->code == MH_DIRECTORY_ERROR_IO
                       ? MH_DIRECTORY_ERROR_IO : MH_DIRECTORY_ERROR_CORRUPT,
                       "%s: migration %u -> %u (%s) failed: %s", dir->path,
                       v, v + 1, step->what, serr->message);
          return FALSE;
        }
      v++;
    }
  if (v != start && !mh_directory__write_schema_version (txn, &dir->dbs, v,
                                                         error))
    return FALSE;
  if (v != start && start != 0)
    mh_log_notice ("directory", NULL, NULL,
                   "%s: migrated schema from version %u to %u", dir->path,
                   start, v);
  *version_out = v;
  return TRUE;
}

gboolean
mh_directory__migrate (MhDirectory *dir, const MhDirectoryMigration *steps,
                       guint n_steps, guint target, GError **error)
{
  MDB_txn *txn = mh_directory__txn_begin (dir, TRUE, error);
  if (txn == NULL)
    return FALSE;
  guint v = 0;
  if (!migrate_in_txn (dir, txn, steps, n_steps, target, &v, error))
    {
      mdb_txn_abort (txn);
      return FALSE;
    }
  if (!mh_directory__txn_commit (dir, txn, error))
    return FALSE;
  dir->schema_version = v;
  return TRUE;
}

static gboolean
open_dbs (MhDirectory *dir, GError **error)
{
  MDB_txn *txn = NULL;
  unsigned int flags = dir->read_only ? 0 : MDB_CREATE;
  int rc = mdb_txn_begin (dir->env, NULL, dir->read_only ? MDB_RDONLY : 0,
                          &txn);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, "cannot begin a transaction",
                                   error);
      return FALSE;
    }
  struct
  {
    const char *name;
    MDB_dbi *dbi;
  } names[] = {
    { "meta", &dir->dbs.meta },
    { "domains", &dir->dbs.domains },
    { "accounts", &dir->dbs.accounts },
    { "aliases", &dir->dbs.aliases },
    { "domain_aliases", &dir->dbs.domain_aliases },
    { "temp_aliases", &dir->dbs.temp_aliases },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      rc = mdb_dbi_open (txn, names[i].name, flags, names[i].dbi);
      if (rc == MDB_NOTFOUND && dir->read_only)
        {
          mdb_txn_abort (txn);
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                       "%s is not initialised and cannot be (no write "
                       "permission)", dir->path);
          return FALSE;
        }
      if (rc != 0)
        {
          mdb_txn_abort (txn);
          g_autofree char *what = g_strdup_printf ("cannot open table '%s'",
                                                   names[i].name);
          mh_directory__set_mdb_error (dir, rc, what, error);
          return FALSE;
        }
    }
  if (dir->read_only)
    {
      guint v = mh_directory__read_schema_version (txn, &dir->dbs);
      /* Commit even a read txn: DBI handles opened in a txn survive only
       * its commit (lmdb.h, mdb_dbi_open); abort would close them. */
      rc = mdb_txn_commit (txn);
      if (rc != 0)
        {
          mh_directory__set_mdb_error (dir, rc, "cannot open the tables",
                                       error);
          return FALSE;
        }
      if (v != MH_DIRECTORY_SCHEMA_VERSION)
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_VERSION,
                       "%s has schema version %u and this libmailhost uses "
                       "%u; it is read-only, so it cannot be migrated",
                       dir->path, v, MH_DIRECTORY_SCHEMA_VERSION);
          return FALSE;
        }
      dir->schema_version = v;
      return TRUE;
    }
  guint v = 0;
  if (!migrate_in_txn (dir, txn, migrations, G_N_ELEMENTS (migrations),
                       MH_DIRECTORY_SCHEMA_VERSION, &v, error))
    {
      /* Aborting also closes the DBI handles opened in this txn. */
      mdb_txn_abort (txn);
      return FALSE;
    }
  if (!mh_directory__txn_commit (dir, txn, error))
    return FALSE;
  dir->schema_version = v;
  return TRUE;
}

/* ---- Open and close --------------------------------------------------- */

static GMutex registry_lock;
static GHashTable *registry;   /* file id -> MhDirectory* (weak) */

static char *
file_id (const struct stat *st)
{
  return g_strdup_printf ("%ju:%ju", (uintmax_t) st->st_dev,
                          (uintmax_t) st->st_ino);
}

static void
directory_free (MhDirectory *dir)
{
  if (dir->env != NULL && dir->pid == getpid ())
    mdb_env_close (dir->env);
  g_free (dir->data_dir);
  g_free (dir->path);
  g_free (dir->lock_path);
  g_free (dir->file_id);
  g_mutex_clear (&dir->dummy_lock);
  if (dir->dummy_hash != NULL)
    g_free (dir->dummy_hash);
  g_free (dir);
}

/* Probes the data file: what LMDB would report as a bare errno gets a
 * message naming the path. Sets *read_only when it is readable only. */
static gboolean
probe_files (MhDirectory *dir, gboolean *exists, struct stat *st,
             GError **error)
{
  *exists = FALSE;
  if (stat (dir->path, st) == 0)
    {
      *exists = TRUE;
      if (S_ISDIR (st->st_mode))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                       "%s is a directory, not an LMDB file", dir->path);
          return FALSE;
        }
      if (!S_ISREG (st->st_mode))
        {
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                       "%s is not a regular file", dir->path);
          return FALSE;
        }
      if (access (dir->path, R_OK) != 0)
        {
          int e = errno;
          g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                       "cannot read %s: %s", dir->path, g_strerror (e));
          return FALSE;
        }
      if (access (dir->path, W_OK) != 0)
        dir->read_only = TRUE;
    }
  else if (errno != ENOENT)
    {
      int e = errno;
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot access %s: %s", dir->path, g_strerror (e));
      return FALSE;
    }
  return TRUE;
}

static gboolean
probe_lock_file (MhDirectory *dir, GError **error)
{
  /* Safe to open and close here: no env of ours has this file open (the
   * registry was checked first), so no fcntl lock of ours is dropped. */
  struct stat st;
  if (stat (dir->lock_path, &st) == 0 && S_ISDIR (st.st_mode))
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot open lock file %s: it is a directory",
                   dir->lock_path);
      return FALSE;
    }
  int fd = open (dir->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot open lock file %s: %s (readers need it too)",
                   dir->lock_path, g_strerror (e));
      return FALSE;
    }
  close (fd);
  return TRUE;
}

static MhDirectory *
open_locked (const char *data_dir, GError **error)
{
  g_autofree char *path = g_build_filename (data_dir, "directory.mdb", NULL);
  struct stat st;
  gboolean exists = FALSE;

  /* Already open in this process? */
  if (stat (path, &st) == 0 && registry != NULL)
    {
      g_autofree char *id = file_id (&st);
      MhDirectory *open_dir = g_hash_table_lookup (registry, id);
      if (open_dir != NULL && open_dir->pid == getpid ())
        {
          g_atomic_int_inc (&open_dir->refcount);
          return open_dir;
        }
    }

  if (g_mkdir_with_parents (data_dir, 0750) != 0)
    {
      int e = errno;
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot create data directory %s: %s", data_dir,
                   g_strerror (e));
      return NULL;
    }

  MhDirectory *dir = g_new0 (MhDirectory, 1);
  dir->refcount = 1;
  dir->pid = getpid ();
  g_mutex_init (&dir->dummy_lock);
  dir->data_dir = g_strdup (data_dir);
  dir->path = g_steal_pointer (&path);
  dir->lock_path = g_strconcat (dir->path, "-lock", NULL);

  if (!probe_files (dir, &exists, &st, error)
      || !probe_lock_file (dir, error))
    {
      directory_free (dir);
      return NULL;
    }

  int rc = mdb_env_create (&dir->env);
  if (rc == 0)
    rc = mdb_env_set_maxdbs (dir->env, 8);
  if (rc == 0)
    rc = mdb_env_set_maxreaders (dir->env, MAX_READERS);
  if (rc == 0)
    rc = mdb_env_set_mapsize (dir->env, MAP_SIZE);
  if (rc != 0)
    {
      mh_directory__set_mdb_error (dir, rc, "cannot set up LMDB", error);
      directory_free (dir);
      return NULL;
    }
  unsigned int flags = MDB_NOSUBDIR | MDB_NOTLS;
  if (dir->read_only)
    flags |= MDB_RDONLY;
  rc = mdb_env_open (dir->env, dir->path, flags, 0640);
  if (rc != 0)
    {
      if (rc == MDB_INVALID)
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_CORRUPT,
                     "%s is not an LMDB database (or its header is "
                     "damaged)", dir->path);
      else if (rc == MDB_VERSION_MISMATCH)
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_VERSION,
                     "%s was written by an incompatible LMDB version",
                     dir->path);
      else
        g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                     "cannot open %s: %s", dir->path, mdb_strerror (rc));
      directory_free (dir);
      return NULL;
    }
  int dead = 0;
  mdb_reader_check (dir->env, &dead);
  if (dead > 0)
    mh_log_info ("directory", NULL, NULL,
                 "%s: cleared %d stale reader slot(s)", dir->path, dead);

  if (!open_dbs (dir, error))
    {
      directory_free (dir);
      return NULL;
    }
  if (stat (dir->path, &st) != 0)
    {
      int e = errno;
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_IO,
                   "cannot stat %s: %s", dir->path, g_strerror (e));
      directory_free (dir);
      return NULL;
    }
  dir->file_id = file_id (&st);
  if (registry == NULL)
    registry = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_replace (registry, g_strdup (dir->file_id), dir);
  return dir;
}

MhDirectory *
mh_directory_open (const char *data_dir, GError **error)
{
  g_return_val_if_fail (data_dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (*data_dir == '\0')
    {
      g_set_error (error, MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID,
                   "data directory path is empty");
      return NULL;
    }
  g_mutex_lock (&registry_lock);
  MhDirectory *dir = open_locked (data_dir, error);
  g_mutex_unlock (&registry_lock);
  return dir;
}

MhDirectory *
mh_directory_ref (MhDirectory *dir)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_atomic_int_inc (&dir->refcount);
  return dir;
}

void
mh_directory_unref (MhDirectory *dir)
{
  if (dir == NULL)
    return;
  /* Under the registry lock, so a concurrent open cannot revive a
   * directory whose count just reached zero. */
  g_mutex_lock (&registry_lock);
  if (!g_atomic_int_dec_and_test (&dir->refcount))
    {
      g_mutex_unlock (&registry_lock);
      return;
    }
  if (registry != NULL && dir->file_id != NULL
      && g_hash_table_lookup (registry, dir->file_id) == dir)
    g_hash_table_remove (registry, dir->file_id);
  g_mutex_unlock (&registry_lock);
  directory_free (dir);
}

const char *
mh_directory_get_path (MhDirectory *dir)
{
  g_return_val_if_fail (dir != NULL, NULL);
  return dir->path;
}

guint
mh_directory_get_schema_version (MhDirectory *dir)
{
  g_return_val_if_fail (dir != NULL, 0);
  return dir->schema_version;
}
