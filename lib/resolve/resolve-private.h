/* lib/resolve internals shared between its files (not installed). */
#pragma once

#include "mailhost/resolve.h"
#include "directory/directory-private.h"

G_BEGIN_DECLS

/* ---- record.c: zero-copy readers of directory records ---------------- */

/* A byte range inside an LMDB value (valid only in its txn). */
typedef struct
{
  const guint8 *p;
  gsize len;
} MhBytes;

/* The fields of an account record the resolver needs. Strings point into
 * the LMDB value (NUL-terminated there; len excludes the NUL). */
typedef struct
{
  gboolean enabled;
  MhBytes forward_to;        /* len 0: unset */
  gboolean keep_copy;
  gboolean subaddress_folders;
} MhResolveAccount;

/* Each returns FALSE if the bytes are not a version-1 record of that
 * kind (the caller reports CORRUPT with the key). No allocation. */
gboolean mh_resolve__read_account (const void *data, gsize len,
                                   MhResolveAccount *out);
/* Calls @each for every target of an alias record; stops early (and
 * returns TRUE) if @each returns FALSE. */
typedef gboolean (*MhResolveEachTarget) (const char *target, gsize len,
                                         gpointer user_data);
gboolean mh_resolve__read_alias (const void *data, gsize len,
                                 guint *n_targets_out,
                                 MhResolveEachTarget each,
                                 gpointer user_data);
gboolean mh_resolve__read_temp_alias (const void *data, gsize len,
                                      MhBytes *target_out,
                                      gint64 *expires_out);

/* ---- result.c: building results --------------------------------------- */

MhResolveResult *mh_resolve__result_new (const char *address, gsize len,
                                         gboolean trace);
/* The normalised address once the local part is folded per its domain. */
void mh_resolve__result_set_address (MhResolveResult *res,
                                     const char *address);
/* Takes the target. */
void mh_resolve__result_add_target (MhResolveResult *res,
                                    MhResolveTarget *target);
guint mh_resolve__result_n_targets (MhResolveResult *res);
MhResolveTarget *mh_resolve__result_target (MhResolveResult *res, guint i);
void mh_resolve__result_add_step (MhResolveResult *res, MhResolveRule rule,
                                  guint depth, const char *address,
                                  const char *text);

/* One allocation holding every string. NULL strings stay NULL. */
MhResolveTarget *mh_resolve__target_new (MhResolveTargetKind kind,
                                         const char *address, gsize addr_len,
                                         const char *tag, const char *folder,
                                         guint code, const char *enhanced,
                                         const char *text);
/* TRUE if @t is @kind with @address, @tag and @folder (NULL-aware). */
gboolean mh_resolve__target_same (MhResolveTarget *t, MhResolveTargetKind kind,
                                  const char *address, gsize addr_len,
                                  const char *tag, const char *folder);

G_END_DECLS
