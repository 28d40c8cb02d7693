/* lib/delivery envelope.c: the envelope of a message and the result of
 * one recipient.
 *
 * Design notes
 * - Both are plain reference-counted records registered as boxed types,
 *   so bindings see them. An envelope is built on one thread (the
 *   protocol's main loop) and then handed to a worker that only reads
 *   it; a result is made once and never changes.
 * - Addresses are checked where they enter the pipeline
 *   (mh_delivery__address_ok) rather than here: the envelope keeps what
 *   the caller gave so a bad one can be reported by name.
 */
#include "delivery-private.h"

#include <string.h>

G_DEFINE_QUARK (mh-delivery-error-quark, mh_delivery_error)

G_DEFINE_BOXED_TYPE (MhDeliveryEnvelope, mh_delivery_envelope,
                     mh_delivery_envelope_ref, mh_delivery_envelope_unref)
G_DEFINE_BOXED_TYPE (MhDeliveryResult, mh_delivery_result,
                     mh_delivery_result_ref, mh_delivery_result_unref)

MhDeliveryEnvelope *
mh_delivery_envelope_new (const char *sender)
{
  MhDeliveryEnvelope *env = g_new0 (MhDeliveryEnvelope, 1);
  env->refcount = 1;
  env->sender = g_strdup (sender ? sender : "");
  env->rcpts = g_ptr_array_new_with_free_func (g_free);
  env->notify = g_array_new (FALSE, TRUE, sizeof (guint));
  env->orcpt = g_ptr_array_new_with_free_func (g_free);
  return env;
}

MhDeliveryEnvelope *
mh_delivery_envelope_ref (MhDeliveryEnvelope *env)
{
  g_return_val_if_fail (env != NULL, NULL);
  g_atomic_int_inc (&env->refcount);
  return env;
}

void
mh_delivery_envelope_unref (MhDeliveryEnvelope *env)
{
  if (env == NULL || !g_atomic_int_dec_and_test (&env->refcount))
    return;
  g_free (env->sender);
  g_free (env->login);
  g_free (env->envid);
  g_ptr_array_unref (env->rcpts);
  g_array_unref (env->notify);
  g_ptr_array_unref (env->orcpt);
  g_free (env);
}

void
mh_delivery_envelope_add_recipient (MhDeliveryEnvelope *env,
                                    const char *address, guint notify,
                                    const char *orcpt)
{
  g_return_if_fail (env != NULL && address != NULL);
  g_ptr_array_add (env->rcpts, g_strdup (address));
  g_array_append_val (env->notify, notify);
  g_ptr_array_add (env->orcpt, g_strdup (orcpt));
}

void
mh_delivery_envelope_set_dsn (MhDeliveryEnvelope *env, const char *envid,
                              guint ret)
{
  g_return_if_fail (env != NULL);
  g_free (env->envid);
  env->envid = g_strdup (envid);
  env->ret = ret;
}

void
mh_delivery_envelope_set_authenticated (MhDeliveryEnvelope *env,
                                        const char *login)
{
  g_return_if_fail (env != NULL);
  g_free (env->login);
  env->login = g_strdup (login);
}

const char *
mh_delivery_envelope_get_sender (MhDeliveryEnvelope *env)
{
  g_return_val_if_fail (env != NULL, NULL);
  return env->sender;
}

guint
mh_delivery_envelope_get_n_recipients (MhDeliveryEnvelope *env)
{
  g_return_val_if_fail (env != NULL, 0);
  return env->rcpts->len;
}

const char *
mh_delivery_envelope_get_recipient (MhDeliveryEnvelope *env, guint index)
{
  g_return_val_if_fail (env != NULL && index < env->rcpts->len, NULL);
  return g_ptr_array_index (env->rcpts, index);
}

/* ---- results ------------------------------------------------------------ */

MhDeliveryResult *
mh_delivery__result_new (const char *address, guint code,
                         const char *enhanced, const char *text)
{
  MhDeliveryResult *r = g_new0 (MhDeliveryResult, 1);
  r->refcount = 1;
  r->address = g_strdup (address);
  r->code = code;
  r->enhanced = g_strdup (enhanced);
  r->text = g_strdup (text);
  r->mailboxes = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (r->mailboxes, NULL);
  r->folders = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (r->folders, NULL);
  r->uids = g_array_new (FALSE, TRUE, sizeof (guint32));
  return r;
}

void
mh_delivery__result_add_mailbox (MhDeliveryResult *r, const char *account,
                                 const char *folder, guint32 uid)
{
  /* keep the arrays NULL-terminated: insert before the terminator */
  g_ptr_array_insert (r->mailboxes, r->mailboxes->len - 1,
                      g_strdup (account));
  g_ptr_array_insert (r->folders, r->folders->len - 1,
                      g_strdup (folder ? folder : "INBOX"));
  g_array_append_val (r->uids, uid);
}

MhDeliveryResult *
mh_delivery_result_ref (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  g_atomic_int_inc (&result->refcount);
  return result;
}

void
mh_delivery_result_unref (MhDeliveryResult *result)
{
  if (result == NULL || !g_atomic_int_dec_and_test (&result->refcount))
    return;
  g_free (result->address);
  g_free (result->enhanced);
  g_free (result->text);
  g_ptr_array_unref (result->mailboxes);
  g_ptr_array_unref (result->folders);
  g_array_unref (result->uids);
  g_free (result);
}

const char *
mh_delivery_result_get_address (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return result->address;
}

guint
mh_delivery_result_get_code (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, 0);
  return result->code;
}

const char *
mh_delivery_result_get_enhanced (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return result->enhanced;
}

const char *
mh_delivery_result_get_text (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return result->text;
}

gboolean
mh_delivery_result_is_success (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, FALSE);
  return result->code >= 200 && result->code < 300;
}

gboolean
mh_delivery_result_is_temporary (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, FALSE);
  return result->code >= 400 && result->code < 500;
}

const char *const *
mh_delivery_result_get_mailboxes (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return (const char *const *) result->mailboxes->pdata;
}

const guint32 *
mh_delivery_result_get_uids (MhDeliveryResult *result, guint *n_out)
{
  g_return_val_if_fail (result != NULL, NULL);
  *n_out = result->uids->len;
  return (const guint32 *) (gpointer) result->uids->data;
}

const char *const *
mh_delivery_result_get_folders (MhDeliveryResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return (const char *const *) result->folders->pdata;
}

/* Envelope addresses end up in header lines (Return-Path, Delivered-To):
 * a CR or LF would let a caller (mh-deliver's -f) inject headers. The SMTP
 * engine never lets one through; the check is for the other callers. */
gboolean
mh_delivery__address_ok (const char *address, gboolean allow_empty,
                         const char *what, GError **error)
{
  gsize len = strlen (address);
  if (len == 0 && !allow_empty)
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                   "%s: empty address", what);
      return FALSE;
    }
  /* RFC 5321 4.5.3.1.3: a path is at most 256 octets */
  if (len > 256)
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                   "%s: address longer than 256 octets", what);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    if ((guchar) address[i] < 0x20 || address[i] == 0x7f)
      {
        g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                     "%s: control character in address", what);
        return FALSE;
      }
  if (!g_utf8_validate (address, len, NULL))
    {
      g_set_error (error, MH_DELIVERY_ERROR, MH_DELIVERY_ERROR_INVALID,
                   "%s: address is not valid UTF-8", what);
      return FALSE;
    }
  return TRUE;
}
