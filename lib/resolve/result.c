/* lib/resolve: results, targets and trace steps (the boxed types that
 * bindings see), enums and error-to-SMTP mapping.
 *
 * Design notes
 * - A target or a step is ONE allocation: the struct and its strings
 *   packed behind it. The result keeps its first targets in an inline
 *   vector, so a plain-account resolution costs two allocations: the
 *   result and its one target. The GPtrArray that
 *   mh_resolve_result_get_targets() returns is built on the first call
 *   (published with a compare-and-swap, so two threads asking at once
 *   still see one array).
 * - The trace array exists only when tracing was asked for; the getter
 *   makes an empty one on demand so bindings always get an array.
 * - All three are immutable once the resolver hands the result out, so
 *   they may be passed between threads; the reference counts are atomic.
 */
#include "resolve-private.h"

#include <string.h>

G_DEFINE_QUARK (mh-resolve-error-quark, mh_resolve_error)

G_DEFINE_ENUM_TYPE (MhResolveError, mh_resolve_error,
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_ERROR_FAILED, "failed"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_ERROR_INVALID, "invalid"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_ERROR_LOOP, "loop"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_ERROR_DEPTH, "depth"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_ERROR_FANOUT, "fanout"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_ERROR_DIRECTORY, "directory"))

G_DEFINE_ENUM_TYPE (MhResolveTargetKind, mh_resolve_target_kind,
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_TARGET_MAILBOX, "mailbox"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_TARGET_FORWARD, "forward"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_TARGET_REJECT, "reject"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_TARGET_DEFER, "defer"))

G_DEFINE_ENUM_TYPE (MhResolveRule, mh_resolve_rule,
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_INPUT, "input"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_DOMAIN, "domain"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_DOMAIN_ALIAS, "domain-alias"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_NOT_LOCAL, "not-local"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_ACCOUNT, "account"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_ALIAS, "alias"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_TEMP_ALIAS, "temp-alias"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_GROUP, "group"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_SUBADDRESS, "subaddress"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_CATCH_ALL, "catch-all"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_FORWARD, "forward"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_ROUTING_OFF, "routing-off"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_UNKNOWN, "unknown"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_DUPLICATE, "duplicate"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_RULE_TARGET, "target"))

G_DEFINE_FLAGS_TYPE (MhResolveFlags, mh_resolve_flags,
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_FLAGS_NONE, "none"),
  G_DEFINE_ENUM_VALUE (MH_RESOLVE_FLAGS_TRACE, "trace"))

static const char *const rule_names[] = {
  "input", "domain", "domain-alias", "not-local", "account", "alias",
  "temp-alias", "group", "subaddress", "catch-all", "forward",
  "routing-off", "unknown", "duplicate", "target",
};

const char *
mh_resolve_rule_to_string (MhResolveRule rule)
{
  if ((guint) rule < G_N_ELEMENTS (rule_names))
    return rule_names[rule];
  return "?";
}

const char *
mh_resolve_target_kind_to_string (MhResolveTargetKind kind)
{
  switch (kind)
    {
    case MH_RESOLVE_TARGET_MAILBOX:
      return "mailbox";
    case MH_RESOLVE_TARGET_FORWARD:
      return "forward";
    case MH_RESOLVE_TARGET_REJECT:
      return "reject";
    case MH_RESOLVE_TARGET_DEFER:
      return "defer";
    }
  return "?";
}

void
mh_resolve_error_smtp_reply (const GError *error, guint *code_out,
                             const char **enhanced_out)
{
  g_return_if_fail (error != NULL && code_out != NULL
                    && enhanced_out != NULL);
  *code_out = 451;
  *enhanced_out = "4.3.0";
  if (error->domain != MH_RESOLVE_ERROR)
    return;
  switch ((MhResolveError) error->code)
    {
    case MH_RESOLVE_ERROR_INVALID:
      *code_out = 501;
      *enhanced_out = "5.1.3";   /* RFC 3463: bad destination syntax */
      break;
    case MH_RESOLVE_ERROR_LOOP:
    case MH_RESOLVE_ERROR_DEPTH:
      *code_out = 554;
      *enhanced_out = "5.4.6";   /* routing loop detected */
      break;
    case MH_RESOLVE_ERROR_FANOUT:
      *code_out = 550;
      *enhanced_out = "5.5.3";   /* too many recipients */
      break;
    case MH_RESOLVE_ERROR_FAILED:
    case MH_RESOLVE_ERROR_DIRECTORY:
      break;
    }
}

/* ---- Targets ---------------------------------------------------------- */

struct _MhResolveTarget
{
  gint refcount;
  MhResolveTargetKind kind;
  guint code;
  const char *address;
  const char *tag;        /* nullable */
  const char *folder;     /* nullable */
  const char *enhanced;
  const char *text;
  char buf[];             /* the strings above */
};

static char *
put (char **at, const char *s, gsize len)
{
  char *r = *at;
  memcpy (r, s, len);
  r[len] = '\0';
  *at += len + 1;
  return r;
}

MhResolveTarget *
mh_resolve__target_new (MhResolveTargetKind kind, const char *address,
                        gsize addr_len, const char *tag, const char *folder,
                        guint code, const char *enhanced, const char *text)
{
  gsize tl = tag ? strlen (tag) : 0, fl = folder ? strlen (folder) : 0;
  gsize el = strlen (enhanced), xl = strlen (text);
  MhResolveTarget *t = g_malloc (sizeof *t + addr_len + tl + fl + el + xl
                                 + 5);
  char *at = t->buf;
  t->refcount = 1;
  t->kind = kind;
  t->code = code;
  t->address = put (&at, address, addr_len);
  t->tag = tag ? put (&at, tag, tl) : NULL;
  t->folder = folder ? put (&at, folder, fl) : NULL;
  t->enhanced = put (&at, enhanced, el);
  t->text = put (&at, text, xl);
  return t;
}

gboolean
mh_resolve__target_same (MhResolveTarget *t, MhResolveTargetKind kind,
                         const char *address, gsize addr_len, const char *tag,
                         const char *folder)
{
  return t->kind == kind && strlen (t->address) == addr_len
         && memcmp (t->address, address, addr_len) == 0
         && g_strcmp0 (t->tag, tag) == 0 && g_strcmp0 (t->folder, folder) == 0;
}

MhResolveTarget *
mh_resolve_target_ref (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, NULL);
  g_atomic_int_inc (&target->refcount);
  return target;
}

void
mh_resolve_target_unref (MhResolveTarget *target)
{
  if (target != NULL && g_atomic_int_dec_and_test (&target->refcount))
    g_free (target);
}

G_DEFINE_BOXED_TYPE (MhResolveTarget, mh_resolve_target,
                     mh_resolve_target_ref, mh_resolve_target_unref)

MhResolveTargetKind
mh_resolve_target_get_kind (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, MH_RESOLVE_TARGET_REJECT);
  return target->kind;
}

const char *
mh_resolve_target_get_address (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, NULL);
  return target->address;
}

const char *
mh_resolve_target_get_folder (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, NULL);
  return target->folder;
}

const char *
mh_resolve_target_get_tag (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, NULL);
  return target->tag;
}

guint
mh_resolve_target_get_smtp_code (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, 0);
  return target->code;
}

const char *
mh_resolve_target_get_enhanced_code (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, NULL);
  return target->enhanced;
}

const char *
mh_resolve_target_get_text (MhResolveTarget *target)
{
  g_return_val_if_fail (target != NULL, NULL);
  return target->text;
}

/* ---- Steps ------------------------------------------------------------ */

struct _MhResolveStep
{
  gint refcount;
  MhResolveRule rule;
  guint depth;
  const char *address;
  const char *text;
  char buf[];
};

MhResolveStep *
mh_resolve_step_ref (MhResolveStep *step)
{
  g_return_val_if_fail (step != NULL, NULL);
  g_atomic_int_inc (&step->refcount);
  return step;
}

void
mh_resolve_step_unref (MhResolveStep *step)
{
  if (step != NULL && g_atomic_int_dec_and_test (&step->refcount))
    g_free (step);
}

G_DEFINE_BOXED_TYPE (MhResolveStep, mh_resolve_step, mh_resolve_step_ref,
                     mh_resolve_step_unref)

MhResolveRule
mh_resolve_step_get_rule (MhResolveStep *step)
{
  g_return_val_if_fail (step != NULL, MH_RESOLVE_RULE_INPUT);
  return step->rule;
}

guint
mh_resolve_step_get_depth (MhResolveStep *step)
{
  g_return_val_if_fail (step != NULL, 0);
  return step->depth;
}

const char *
mh_resolve_step_get_address (MhResolveStep *step)
{
  g_return_val_if_fail (step != NULL, NULL);
  return step->address;
}

const char *
mh_resolve_step_get_text (MhResolveStep *step)
{
  g_return_val_if_fail (step != NULL, NULL);
  return step->text;
}

/* ---- Results ---------------------------------------------------------- */

#define INLINE_TARGETS 2

struct _MhResolveResult
{
  gint refcount;
  guint n_targets;
  guint cap;                 /* of targets */
  MhResolveTarget **targets; /* owned; inline_targets or malloc'd */
  MhResolveTarget *inline_targets[INLINE_TARGETS];
  GPtrArray *array;       /* for get_targets (refs); NULL until asked */
  GPtrArray *trace;       /* MhResolveStep, owned; NULL until needed */
  const char *address;    /* buf, or folded */
  char *folded;           /* set when folding changed the address */
  char buf[];
};

MhResolveResult *
mh_resolve__result_new (const char *address, gsize len, gboolean trace)
{
  MhResolveResult *r = g_malloc (sizeof *r + len + 1);
  char *at = r->buf;
  r->refcount = 1;
  r->address = put (&at, address, len);
  r->folded = NULL;
  r->n_targets = 0;
  r->cap = INLINE_TARGETS;
  r->targets = r->inline_targets;
  r->array = NULL;
  r->trace = trace ? g_ptr_array_new_with_free_func (
                         (GDestroyNotify) mh_resolve_step_unref)
                   : NULL;
  return r;
}

void
mh_resolve__result_set_address (MhResolveResult *res, const char *address)
{
  /* Only allocates when folding changed something (ALICE@...). */
  if (strcmp (res->address, address) == 0)
    return;
  g_free (res->folded);
  res->folded = g_strdup (address);
  res->address = res->folded;
}

void
mh_resolve__result_add_target (MhResolveResult *res, MhResolveTarget *target)
{
  if (res->n_targets == res->cap)
    {
      /* the resolver's fan-out limit bounds n_targets */
      guint cap = res->cap * 2;
      MhResolveTarget **v = g_new (MhResolveTarget *, cap);
      memcpy (v, res->targets, res->n_targets * sizeof *v);
      if (res->targets != res->inline_targets)
        g_free (res->targets);
      res->targets = v;
      res->cap = cap;
    }
  res->targets[res->n_targets++] = target;
}

guint
mh_resolve__result_n_targets (MhResolveResult *res)
{
  return res->n_targets;
}

MhResolveTarget *
mh_resolve__result_target (MhResolveResult *res, guint i)
{
  return res->targets[i];
}

void
mh_resolve__result_add_step (MhResolveResult *res, MhResolveRule rule,
                             guint depth, const char *address,
                             const char *text)
{
  if (res->trace == NULL)
    return;
  gsize al = strlen (address), tl = strlen (text);
  MhResolveStep *s = g_malloc (sizeof *s + al + tl + 2);
  char *at = s->buf;
  s->refcount = 1;
  s->rule = rule;
  s->depth = depth;
  s->address = put (&at, address, al);
  s->text = put (&at, text, tl);
  g_ptr_array_add (res->trace, s);
}

MhResolveResult *
mh_resolve_result_ref (MhResolveResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  g_atomic_int_inc (&result->refcount);
  return result;
}

void
mh_resolve_result_unref (MhResolveResult *result)
{
  if (result == NULL || !g_atomic_int_dec_and_test (&result->refcount))
    return;
  for (guint i = 0; i < result->n_targets; i++)
    mh_resolve_target_unref (result->targets[i]);
  if (result->targets != result->inline_targets)
    g_free (result->targets);
  if (result->array != NULL)
    g_ptr_array_unref (result->array);
  g_free (result->folded);
  if (result->trace != NULL)
    g_ptr_array_unref (result->trace);
  g_free (result);
}

G_DEFINE_BOXED_TYPE (MhResolveResult, mh_resolve_result,
                     mh_resolve_result_ref, mh_resolve_result_unref)

const char *
mh_resolve_result_get_address (MhResolveResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return result->address;
}

GPtrArray *
mh_resolve_result_get_targets (MhResolveResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  GPtrArray *a = g_atomic_pointer_get (&result->array);
  if (a != NULL)
    return a;
  a = g_ptr_array_new_full (result->n_targets,
                            (GDestroyNotify)mh_resolve_target_unref);
  for (guint i = 0; i < result->n_targets; i++)
    g_ptr_array_add (a, mh_resolve_target_ref (result->targets[i]));
  if (!g_atomic_pointer_compare_and_exchange (&result->array, NULL, a))
    {
      g_ptr_array_unref (a); /* another thread was first */
      a = g_atomic_pointer_get (&result->array);
    }
  return a;
}

GPtrArray *
mh_resolve_result_get_trace (MhResolveResult *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  if (result->trace == NULL)
    result->trace = g_ptr_array_new_with_free_func (
        (GDestroyNotify) mh_resolve_step_unref);
  return result->trace;
}

gboolean
mh_resolve_result_get_accepted (MhResolveResult *result)
{
  g_return_val_if_fail (result != NULL, FALSE);
  for (guint i = 0; i < result->n_targets; i++)
    {
      MhResolveTarget *t = result->targets[i];
      if (t->kind == MH_RESOLVE_TARGET_MAILBOX
          || t->kind == MH_RESOLVE_TARGET_FORWARD)
        return TRUE;
    }
  return FALSE;
}

void
mh_resolve_result_get_reply (MhResolveResult *result, guint *code_out,
                             const char **enhanced_out,
                             const char **text_out)
{
  g_return_if_fail (result != NULL && code_out != NULL
                    && enhanced_out != NULL && text_out != NULL);
  MhResolveTarget *reject = NULL, *defer = NULL;
  for (guint i = 0; i < result->n_targets; i++)
    {
      MhResolveTarget *t = result->targets[i];
      if (t->kind == MH_RESOLVE_TARGET_MAILBOX
          || t->kind == MH_RESOLVE_TARGET_FORWARD)
        {
          *code_out = 250;
          *enhanced_out = "2.1.5";   /* destination address valid */
          *text_out = "recipient ok";
          return;
        }
      if (t->kind == MH_RESOLVE_TARGET_DEFER && defer == NULL)
        defer = t;
      if (t->kind == MH_RESOLVE_TARGET_REJECT && reject == NULL)
        reject = t;
    }
  MhResolveTarget *t = defer ? defer : reject;
  if (t == NULL)
    {
      /* Cannot happen: every resolution yields a target. */
      *code_out = 451;
      *enhanced_out = "4.3.0";
      *text_out = "no delivery target";
      return;
    }
  *code_out = t->code;
  *enhanced_out = t->enhanced;
  *text_out = t->text;
}
