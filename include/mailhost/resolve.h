/* libmailhost address resolution: from a recipient address to the places
 * its mail goes (local mailboxes, forwards, rejections, deferrals), with
 * a trace that explains every step. See docs/resolve.md.
 *
 * Caveats (read first):
 * - An #MhResolver belongs to one thread at a time (it keeps a reusable
 *   LMDB read transaction and a small cache of domain policies). Make one
 *   per thread; all of them may share one #MhDirectory.
 * - Every resolution reads the directory in ONE LMDB read transaction, so
 *   it sees one consistent snapshot even while mhctl writes; a change is
 *   seen by the next resolution (the domain cache is checked against the
 *   stored bytes every time, never trusted blindly).
 * - Rules, in order, for local@domain: the domain (or a domain alias of
 *   it), then an account, an alias, a temporary alias, a group address,
 *   a sub-address (local+tag: the same rules for "local"), the domain's
 *   catch-all, and else "unknown". With the domain setting routing=off
 *   only the first four are used.
 * - Bad input, alias loops, too-deep chains and too many targets are
 *   errors (#MhResolveError); unknown or refused addresses are results
 *   with a rejection target, so the caller gets the SMTP reply to give.
 */
#pragma once

#include <mailhost/core.h>
#include <mailhost/directory.h>

G_BEGIN_DECLS

/**
 * MH_RESOLVE_ERROR:
 *
 * Error domain of address resolution. Codes are in #MhResolveError.
 */
#define MH_RESOLVE_ERROR (mh_resolve_error_quark ())
MH_API GQuark mh_resolve_error_quark (void);

/**
 * MhResolveError:
 * @MH_RESOLVE_ERROR_FAILED: any other failure
 * @MH_RESOLVE_ERROR_INVALID: the address is malformed: empty local part,
 *   too long (RFC 5321 4.5.3.1), invalid IDNA, `<>`, a source route, a
 *   NUL or control character, bad UTF-8; the message says which
 * @MH_RESOLVE_ERROR_LOOP: an alias, forward or catch-all chain comes back
 *   to an address it already passed through (the message shows the
 *   chain)
 * @MH_RESOLVE_ERROR_DEPTH: a chain is longer than the depth limit
 * @MH_RESOLVE_ERROR_FANOUT: the address expands to more targets than the
 *   fan-out limit (or a group to more accounts than its limit), or more
 *   rules were looked at than the step limit
 * @MH_RESOLVE_ERROR_DIRECTORY: the directory could not be read (IO, or a
 *   corrupt record); temporary from the sender's point of view
 *
 * Codes in %MH_RESOLVE_ERROR. mh_resolve_error_smtp_reply() gives the
 * SMTP reply for each.
 */
typedef enum
{
  MH_RESOLVE_ERROR_FAILED,
  MH_RESOLVE_ERROR_INVALID,
  MH_RESOLVE_ERROR_LOOP,
  MH_RESOLVE_ERROR_DEPTH,
  MH_RESOLVE_ERROR_FANOUT,
  MH_RESOLVE_ERROR_DIRECTORY,
} MhResolveError;

MH_API GType mh_resolve_error_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_ERROR (mh_resolve_error_get_type ())

/**
 * mh_resolve_error_smtp_reply:
 * @error: an error from mh_resolver_resolve()
 * @code_out: (out): the SMTP reply code (501, 554, 451, ...)
 * @enhanced_out: (out) (transfer none): the enhanced status code
 *   (RFC 3463), a static string
 *
 * The reply an SMTP server gives for a resolution that failed with the
 * given @error. It is 501 5.1.3 for bad syntax, 554 5.4.6 for loops and depth, 550
 * 5.5.3 for fan-out, 451 4.3.0 for directory trouble (and anything not
 * in %MH_RESOLVE_ERROR).
 *
 * Thread safety: safe.
 */
MH_API void mh_resolve_error_smtp_reply (const GError *error, guint *code_out,
                                         const char **enhanced_out);

/**
 * MhResolveTargetKind:
 * @MH_RESOLVE_TARGET_MAILBOX: deliver into a local account (maybe into a
 *   folder, with a sub-address tag for Sieve)
 * @MH_RESOLVE_TARGET_FORWARD: send on to an address elsewhere
 * @MH_RESOLVE_TARGET_REJECT: refuse, with a permanent SMTP reply
 * @MH_RESOLVE_TARGET_DEFER: refuse for now, with a temporary SMTP reply
 *
 * What one target of a resolution is.
 */
typedef enum
{
  MH_RESOLVE_TARGET_MAILBOX,
  MH_RESOLVE_TARGET_FORWARD,
  MH_RESOLVE_TARGET_REJECT,
  MH_RESOLVE_TARGET_DEFER,
} MhResolveTargetKind;

MH_API GType mh_resolve_target_kind_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_TARGET_KIND (mh_resolve_target_kind_get_type ())

/**
 * MhResolveRule:
 * @MH_RESOLVE_RULE_INPUT: the address as given, normalised
 * @MH_RESOLVE_RULE_DOMAIN: the domain is hosted here
 * @MH_RESOLVE_RULE_DOMAIN_ALIAS: the domain is a domain alias
 * @MH_RESOLVE_RULE_NOT_LOCAL: the domain is not hosted here
 * @MH_RESOLVE_RULE_ACCOUNT: an account matched
 * @MH_RESOLVE_RULE_ALIAS: an alias matched
 * @MH_RESOLVE_RULE_TEMP_ALIAS: a temporary alias matched
 * @MH_RESOLVE_RULE_GROUP: a group address matched
 * @MH_RESOLVE_RULE_SUBADDRESS: local+tag was split
 * @MH_RESOLVE_RULE_CATCH_ALL: the domain's catch-all was used
 * @MH_RESOLVE_RULE_FORWARD: the account forwards its mail
 * @MH_RESOLVE_RULE_ROUTING_OFF: the domain accepts listed addresses only
 * @MH_RESOLVE_RULE_UNKNOWN: nothing matched
 * @MH_RESOLVE_RULE_DUPLICATE: a target already produced was dropped
 * @MH_RESOLVE_RULE_TARGET: a target was produced
 *
 * The rule a trace step records.
 */
typedef enum
{
  MH_RESOLVE_RULE_INPUT,
  MH_RESOLVE_RULE_DOMAIN,
  MH_RESOLVE_RULE_DOMAIN_ALIAS,
  MH_RESOLVE_RULE_NOT_LOCAL,
  MH_RESOLVE_RULE_ACCOUNT,
  MH_RESOLVE_RULE_ALIAS,
  MH_RESOLVE_RULE_TEMP_ALIAS,
  MH_RESOLVE_RULE_GROUP,
  MH_RESOLVE_RULE_SUBADDRESS,
  MH_RESOLVE_RULE_CATCH_ALL,
  MH_RESOLVE_RULE_FORWARD,
  MH_RESOLVE_RULE_ROUTING_OFF,
  MH_RESOLVE_RULE_UNKNOWN,
  MH_RESOLVE_RULE_DUPLICATE,
  MH_RESOLVE_RULE_TARGET,
} MhResolveRule;

MH_API GType mh_resolve_rule_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_RULE (mh_resolve_rule_get_type ())

/**
 * mh_resolve_rule_to_string:
 * @rule: a rule
 *
 * Returns: (transfer none): its name ("account", "alias", "catch-all",
 *   ...), a static string.
 *
 * Thread safety: safe.
 */
MH_API const char *mh_resolve_rule_to_string (MhResolveRule rule);

/**
 * mh_resolve_target_kind_to_string:
 * @kind: a kind
 *
 * Returns: (transfer none): "mailbox", "forward", "reject" or "defer".
 *
 * Thread safety: safe.
 */
MH_API const char *mh_resolve_target_kind_to_string (MhResolveTargetKind kind);

/**
 * MhResolveFlags:
 * @MH_RESOLVE_FLAGS_NONE: targets only (the fast path for RCPT)
 * @MH_RESOLVE_FLAGS_TRACE: also record the trace
 *
 * Options of mh_resolver_resolve().
 */
typedef enum /*< flags >*/
{
  MH_RESOLVE_FLAGS_NONE = 0,
  MH_RESOLVE_FLAGS_TRACE = 1 << 0,
} MhResolveFlags;

MH_API GType mh_resolve_flags_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_FLAGS (mh_resolve_flags_get_type ())

/**
 * MhResolveLimits:
 * @version: set to 1
 * @max_depth: alias/forward hops followed (0: %MH_LIMIT_RESOLVE_DEPTH_MAX;
 *   at most 32)
 * @max_fanout: targets of one address (0: %MH_LIMIT_RESOLVE_FANOUT_MAX)
 * @max_group: accounts one group address reaches (0:
 *   %MH_LIMIT_RESOLVE_GROUP_MAX)
 * @max_steps: rules looked at in one resolution (0:
 *   %MH_LIMIT_RESOLVE_STEPS_MAX)
 *
 * Limits of a resolver; 0 means the default from limits.h.
 */
typedef struct
{
  guint version;
  guint max_depth;
  guint max_fanout;
  guint max_group;
  guint max_steps;
} MhResolveLimits;

/* ---- Targets ---------------------------------------------------------- */

/**
 * MhResolveTarget:
 *
 * One place mail for the address goes. Immutable, reference counted.
 */
typedef struct _MhResolveTarget MhResolveTarget;

MH_API GType mh_resolve_target_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_TARGET (mh_resolve_target_get_type ())

/**
 * mh_resolve_target_ref:
 * @target: a target
 *
 * Returns: (transfer full): @target
 */
MH_API MhResolveTarget *mh_resolve_target_ref (MhResolveTarget *target);
/**
 * mh_resolve_target_unref:
 * @target: (nullable) (transfer full): a target; %NULL is ignored
 */
MH_API void mh_resolve_target_unref (MhResolveTarget *target);
/**
 * mh_resolve_target_get_kind:
 * @target: a target
 *
 * Returns: what the target is.
 */
MH_API MhResolveTargetKind mh_resolve_target_get_kind (MhResolveTarget *target);
/**
 * mh_resolve_target_get_address:
 * @target: a target
 *
 * Returns: (transfer none): for a mailbox the account ("local@alabel",
 *   the directory's key form, for paths and logs); for a forward the
 *   address to send to; for a reject or defer the address refused.
 */
MH_API const char *mh_resolve_target_get_address (MhResolveTarget *target);
/**
 * mh_resolve_target_get_folder:
 * @target: a target
 *
 * Returns: (transfer none) (nullable): for a mailbox with
 *   subaddress_folders on and a tag: the folder to file into if it
 *   exists (the delivery layer checks; else INBOX). %NULL otherwise.
 */
MH_API const char *mh_resolve_target_get_folder (MhResolveTarget *target);
/**
 * mh_resolve_target_get_tag:
 * @target: a target
 *
 * Returns: (transfer none) (nullable): the sub-address tag ("tag" of
 *   user+tag, as written) for Sieve's :detail, or %NULL.
 */
MH_API const char *mh_resolve_target_get_tag (MhResolveTarget *target);
/**
 * mh_resolve_target_get_smtp_code:
 * @target: a target
 *
 * Returns: for a reject or defer the SMTP reply code (550, 451, ...);
 *   250 otherwise.
 */
MH_API guint mh_resolve_target_get_smtp_code (MhResolveTarget *target);
/**
 * mh_resolve_target_get_enhanced_code:
 * @target: a target
 *
 * Returns: (transfer none): the enhanced status code (RFC 3463), e.g.
 *   "5.1.1"; "2.1.5" for a mailbox or forward.
 */
MH_API const char *mh_resolve_target_get_enhanced_code (MhResolveTarget *target);
/**
 * mh_resolve_target_get_text:
 * @target: a target
 *
 * Returns: (transfer none): for a reject or defer the reply text (safe to
 *   send to the client: it names no other address than the one asked
 *   for); "" otherwise.
 */
MH_API const char *mh_resolve_target_get_text (MhResolveTarget *target);

/* ---- Trace ------------------------------------------------------------ */

/**
 * MhResolveStep:
 *
 * One step of a trace: which rule looked at which address, and what it
 * made of it. Immutable, reference counted.
 */
typedef struct _MhResolveStep MhResolveStep;

MH_API GType mh_resolve_step_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_STEP (mh_resolve_step_get_type ())

/**
 * mh_resolve_step_ref:
 * @step: a step
 *
 * Returns: (transfer full): @step
 */
MH_API MhResolveStep *mh_resolve_step_ref (MhResolveStep *step);
/**
 * mh_resolve_step_unref:
 * @step: (nullable) (transfer full): a step; %NULL is ignored
 */
MH_API void mh_resolve_step_unref (MhResolveStep *step);
/**
 * mh_resolve_step_get_rule:
 * @step: a step
 *
 * Returns: the rule.
 */
MH_API MhResolveRule mh_resolve_step_get_rule (MhResolveStep *step);
/**
 * mh_resolve_step_get_depth:
 * @step: a step
 *
 * Returns: the chain depth (0 for the address asked for, 1 for an alias
 *   target of it, ...).
 */
MH_API guint mh_resolve_step_get_depth (MhResolveStep *step);
/**
 * mh_resolve_step_get_address:
 * @step: a step
 *
 * Returns: (transfer none): the address the rule looked at.
 */
MH_API const char *mh_resolve_step_get_address (MhResolveStep *step);
/**
 * mh_resolve_step_get_text:
 * @step: a step
 *
 * Returns: (transfer none): what happened, for people.
 */
MH_API const char *mh_resolve_step_get_text (MhResolveStep *step);

/* ---- Results ---------------------------------------------------------- */

/**
 * MhResolveResult:
 *
 * The outcome of one resolution: targets (duplicates collapsed) and,
 * when asked for, the trace. Immutable, reference counted.
 */
typedef struct _MhResolveResult MhResolveResult;

MH_API GType mh_resolve_result_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVE_RESULT (mh_resolve_result_get_type ())

/**
 * mh_resolve_result_ref:
 * @result: a result
 *
 * Returns: (transfer full): @result
 */
MH_API MhResolveResult *mh_resolve_result_ref (MhResolveResult *result);
/**
 * mh_resolve_result_unref:
 * @result: (nullable) (transfer full): a result; %NULL is ignored
 */
MH_API void mh_resolve_result_unref (MhResolveResult *result);
/**
 * mh_resolve_result_get_address:
 * @result: a result
 *
 * Returns: (transfer none): the address resolved, normalised
 *   (local@A-label).
 */
MH_API const char *mh_resolve_result_get_address (MhResolveResult *result);
/**
 * mh_resolve_result_get_targets:
 * @result: a result
 *
 * Returns: (transfer none) (element-type MhResolveTarget): the targets in
 *   the order they were found, valid as long as @result.
 */
MH_API GPtrArray *mh_resolve_result_get_targets (MhResolveResult *result);
/**
 * mh_resolve_result_get_trace:
 * @result: a result
 *
 * Returns: (transfer none) (element-type MhResolveStep): the trace in
 *   order; empty unless %MH_RESOLVE_FLAGS_TRACE was given.
 */
MH_API GPtrArray *mh_resolve_result_get_trace (MhResolveResult *result);
/**
 * mh_resolve_result_get_accepted:
 * @result: a result
 *
 * Returns: %TRUE if at least one target is a mailbox or a forward (the
 *   RCPT is accepted; rejected parts of a fan-out are for the delivery
 *   layer to bounce).
 */
MH_API gboolean mh_resolve_result_get_accepted (MhResolveResult *result);
/**
 * mh_resolve_result_get_reply:
 * @result: a result
 * @code_out: (out): SMTP reply code: 250 when accepted, else that of the
 *   first defer (if any) or the first reject
 * @enhanced_out: (out) (transfer none): enhanced status code
 * @text_out: (out) (transfer none): reply text
 *
 * The RCPT reply for the whole result. Strings live as long as @result.
 */
MH_API void mh_resolve_result_get_reply (MhResolveResult *result,
                                         guint *code_out,
                                         const char **enhanced_out,
                                         const char **text_out);

/* ---- The resolver ----------------------------------------------------- */

/**
 * MhResolver:
 *
 * Resolves addresses against a directory. Reference counted; used by one
 * thread at a time.
 */
typedef struct _MhResolver MhResolver;

MH_API GType mh_resolver_get_type (void) G_GNUC_CONST;
#define MH_TYPE_RESOLVER (mh_resolver_get_type ())

/**
 * mh_resolver_new: (constructor)
 * @dir: the directory (a reference is taken)
 * @limits: (nullable): limits, or %NULL for the defaults
 *
 * Returns: (transfer full): a resolver.
 *
 * Thread safety: safe; the resolver itself is for one thread at a time.
 */
MH_API MhResolver *mh_resolver_new (MhDirectory *dir,
                                    const MhResolveLimits *limits);
/**
 * mh_resolver_ref:
 * @resolver: a resolver
 *
 * Returns: (transfer full): @resolver
 */
MH_API MhResolver *mh_resolver_ref (MhResolver *resolver);
/**
 * mh_resolver_unref:
 * @resolver: (nullable) (transfer full): a resolver; %NULL is ignored
 */
MH_API void mh_resolver_unref (MhResolver *resolver);

/**
 * mh_resolver_set_time:
 * @resolver: a resolver
 * @now: seconds since the epoch to judge expiry at, or 0 for the clock
 *
 * Resolves as at @now (temporary aliases expire by it): for "what will
 * happen next month" questions (`mhctl resolve --at`) and for tests.
 *
 * Thread safety: as the resolver.
 */
MH_API void mh_resolver_set_time (MhResolver *resolver, gint64 now);

/**
 * mh_resolver_resolve:
 * @resolver: a resolver
 * @address: the recipient, "local@domain" or "<local@domain>", UTF-8
 * @address_len: its length in bytes, or -1 if NUL-terminated (a given
 *   length lets an embedded NUL be reported instead of cutting the
 *   address short; bindings pass -1)
 * @sender: (nullable): the sender: the authenticated login when
 *   @authenticated, else the envelope sender; only group addresses look
 *   at it
 * @authenticated: whether @sender logged in (SMTP AUTH)
 * @flags: #MhResolveFlags
 * @result_out: (out) (transfer full): the result
 * @error: return location for a #GError, or %NULL
 *
 * Resolves @address in one LMDB read transaction. For a plain account
 * the only allocations are the result's own.
 *
 * Returns: %TRUE with @result_out set (which may hold rejections), or
 *   %FALSE with @error in %MH_RESOLVE_ERROR: INVALID, LOOP, DEPTH,
 *   FANOUT or DIRECTORY.
 *
 * Thread safety: one thread at a time per resolver.
 */
MH_API gboolean mh_resolver_resolve (MhResolver *resolver,
                                     const char *address, gssize address_len,
                                     const char *sender,
                                     gboolean authenticated,
                                     MhResolveFlags flags,
                                     MhResolveResult **result_out,
                                     GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhResolver, mh_resolver_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhResolveResult, mh_resolve_result_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhResolveTarget, mh_resolve_target_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MhResolveStep, mh_resolve_step_unref)

G_END_DECLS
