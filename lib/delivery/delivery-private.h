/* lib/delivery internals shared by its files. */
#pragma once

#include "mailhost/delivery.h"
#include "mailhost/resolve.h"
#include "mailhost/quota.h"
#include "core/core-private.h"

struct _MhDeliveryEnvelope
{
  gint refcount;
  char *sender;          /* "" for <> */
  char *login;           /* (nullable) SMTP AUTH identity */
  char *envid;           /* (nullable) */
  guint ret;
  GPtrArray *rcpts;      /* char* */
  GArray *notify;        /* guint per recipient */
  GPtrArray *orcpt;      /* char* or NULL per recipient */
};

struct _MhDeliveryResult
{
  gint refcount;
  char *address;
  guint code;
  char *enhanced;
  char *text;
  GPtrArray *mailboxes;  /* char*, NULL-terminated */
  GPtrArray *folders;    /* char*, NULL-terminated */
  GArray *uids;          /* guint32 */
};

/* envelope.c */
MhDeliveryResult *mh_delivery__result_new (const char *address, guint code,
                                           const char *enhanced,
                                           const char *text);
void mh_delivery__result_add_mailbox (MhDeliveryResult *r,
                                      const char *account,
                                      const char *folder, guint32 uid);
gboolean mh_delivery__address_ok (const char *address, gboolean allow_empty,
                                  const char *what, GError **error);

/* spool.c */
guint64 mh_delivery__spool_max (MhDelivery *d);
const char *mh_delivery__spool_dir (MhDelivery *d);
/* The pool of idle spool files (pipeline.c keeps it, spool.c fills it):
 * take returns one or NULL; give returns FALSE when the pool is full (the
 * caller then destroys @s). */
MhDeliverySpool *mh_delivery__spool_take (MhDelivery *d);
gboolean mh_delivery__spool_give (MhDelivery *d, MhDeliverySpool *s);
/* Closes and frees an idle spool (refcount 0, not in use). */
void mh_delivery__spool_destroy (MhDeliverySpool *s);
