/* lib/quota internals shared between its files (not installed). */
#pragma once

#include "mailhost/quota.h"
#include "core/core-private.h"

#include <lmdb.h>

G_BEGIN_DECLS

/* ---- maildirsize.c: the Maildir++ quota file ------------------------- */

/* The Maildir++ spec's limits: a file over this is recalculated, and so
 * is one over quota older than MH_QUOTA__STALE_S (Courier, Dovecot). */
#define MH_QUOTA__MAILDIRSIZE_MAX 5120
#define MH_QUOTA__STALE_S (15 * 60)

/* What a maildirsize file says. valid is FALSE for a missing, empty,
 * malformed or negative-sum file (all mean: write it again). */
typedef struct
{
  gboolean valid;
  guint64 bytes_limit;       /* 0: none */
  guint64 messages_limit;    /* 0: none */
  gint64 bytes;              /* sum of the lines */
  gint64 messages;
  guint lines;               /* lines after the header */
  gsize size;                /* bytes of the file */
  gint64 mtime;              /* seconds */
} MhMaildirsize;

/* The header line, "10485760S,1000C"; "0S" for no limits (as Dovecot
 * writes it, so that no line is empty). */
char *mh_quota__maildirsize_header (guint64 bytes_limit,
                                    guint64 messages_limit);
/* Parses file contents (not NUL-terminated). */
void mh_quota__maildirsize_parse (const char *data, gsize len,
                                  MhMaildirsize *out);
/* Reads MAILDIR/maildirsize; a missing file is not an error (valid is
 * FALSE). FALSE with MH_QUOTA_ERROR_IO on other read errors. */
gboolean mh_quota__maildirsize_read (const char *maildir,
                                     MhMaildirsize *out, GError **error);
/* Writes the header and one line of usage to a temporary file and renames
 * it over MAILDIR/maildirsize. */
gboolean mh_quota__maildirsize_write (const char *maildir,
                                      guint64 bytes_limit,
                                      guint64 messages_limit, guint64 bytes,
                                      guint64 messages, GError **error);
/* Appends one "BYTES COUNT" line (O_APPEND, one write(2)). */
gboolean mh_quota__maildirsize_append (const char *maildir, gint64 bytes,
                                       gint64 messages, GError **error);
/* Brings maildirsize to the given usage and limits: rewritten when
 * missing, malformed, over MH_QUOTA__MAILDIRSIZE_MAX, with other limits,
 * or over quota and untrustworthy (more than one line, or stale); else
 * one line with the difference is appended (none if none). A missing
 * Maildir is left alone. */
gboolean mh_quota__maildirsize_sync (const char *maildir,
                                     guint64 bytes_limit,
                                     guint64 messages_limit, guint64 bytes,
                                     guint64 messages, gint64 now,
                                     GError **error);
/* Sums the messages of a Maildir++ tree from its files, as Dovecot's
 * maildir quota backend does: new/ and cur/ of the root and of every
 * ".folder", size from ",S=" in the name, else stat(). */
gboolean mh_quota__maildir_scan (const char *maildir, guint64 *bytes_out,
                                 guint64 *messages_out, GError **error);

/* ---- limits.c --------------------------------------------------------- */

/* The limits that apply to one account, resolved from the directory. */
typedef struct
{
  char *address;             /* ascii local@domain */
  char *local;
  char *domain;              /* A-label */
  char *domain_name;         /* U-label, for messages */
  guint64 bytes;             /* the account's, or the domain default */
  guint64 messages;
  guint64 domain_bytes;      /* the domain's totals */
  guint64 domain_messages;
  gboolean tempfail;         /* over quota: 4.2.2 rather than 5.2.2 */
} MhQuotaLimits;

void mh_quota__limits_clear (MhQuotaLimits *lim);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MhQuotaLimits, mh_quota__limits_clear)
gboolean mh_quota__account_limits (MhQuota *quota, const char *address,
                                   MhQuotaLimits *out, GError **error);
/* The same for a known account (ascii domain, normalised local part),
 * read in one directory transaction; FALSE means "take the slow path". */
gboolean mh_quota__account_limits_fast (MhQuota *quota, const char *domain,
                                        const char *local,
                                        MhQuotaLimits *out);

/* ---- quota.c ---------------------------------------------------------- */

struct _MhQuota
{
  gint refcount;
  MhDirectory *dir;
  char *data_dir;
  MDB_env *env;
  MDB_dbi dbi;
  gboolean tempfail;         /* [quota] tempfail */
  GArray *levels;            /* guint percentages, ascending */
  char *warn_from;           /* NULL: postmaster@DOMAIN */
  gboolean maildirsize;      /* keep maildirsize files */
  GMutex lock;               /* attached */
  GHashTable *attached;      /* MhStore* -> Attach* (weak both ways) */
};

/* Begins a write transaction on quota.mdb: also the cross-process lock
 * that serialises limit changes (limits.c). */
gboolean mh_quota__txn_begin (MhQuota *quota, gboolean write, MDB_txn **txn,
                              GError **error);

G_END_DECLS
