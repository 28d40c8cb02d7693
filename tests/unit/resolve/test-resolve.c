/* Address resolution (issue 5): every rule, the normalisation, the safety
 * limits and each kind of bad input, against a real LMDB directory. */
#include "mh-test.h"
#include "directory/directory-private.h"
#include "resolve/resolve-private.h"

#include <string.h>

typedef struct
{
  char *tmp;
  MhDirectory *dir;
  MhResolver *res;
} Fixture;

#define OK(call)                                                           \
  do                                                                       \
    {                                                                      \
      g_autoptr (GError) ok_err_ = NULL;                                   \
      GError **error_ = &ok_err_;                                          \
      if (!(call))                                                         \
        fail_msg ("%s: %s", #call, ok_err_ ? ok_err_->message : "?");      \
    }                                                                      \
  while (0)

#define FAILS(call, domain, code, ...)                                     \
  do                                                                       \
    {                                                                      \
      g_autoptr (GError) ok_err_ = NULL;                                   \
      GError **error_ = &ok_err_;                                          \
      if (call)                                                            \
        fail_msg ("%s succeeded", #call);                                  \
      mh_test_assert_error (ok_err_, domain, code, __VA_ARGS__, NULL);     \
    }                                                                      \
  while (0)

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  f->tmp = mh_test_mkdtemp ();
  g_autoptr (GError) error = NULL;
  f->dir = mh_directory_open (f->tmp, &error);
  if (f->dir == NULL)
    fail_msg ("open: %s", error->message);
  f->res = mh_resolver_new (f->dir, NULL);
  OK (mh_directory_domain_add (f->dir, "example.org", error_));
  OK (mh_directory_account_add (f->dir, "alice@example.org", NULL, error_));
  OK (mh_directory_account_add (f->dir, "bob@example.org", NULL, error_));
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  mh_resolver_unref (f->res);
  mh_directory_unref (f->dir);
  mh_test_rmtree (f->tmp);
  g_free (f->tmp);
  g_free (f);
  return 0;
}

/* Resolves and renders the targets as "kind:address[/tag][#folder]"
 * joined by spaces, e.g. "mailbox:alice@example.org". */
static char *
targets_of (Fixture *f, const char *address, const char *sender,
            gboolean auth, MhResolveResult **keep)
{
  g_autoptr (MhResolveResult) r = NULL;
  g_autoptr (GError) error = NULL;
  if (!mh_resolver_resolve (f->res, address, -1, sender, auth,
                            MH_RESOLVE_FLAGS_TRACE, &r, &error))
    fail_msg ("resolve %s: %s", address, error->message);
  GString *s = g_string_new (NULL);
  GPtrArray *t = mh_resolve_result_get_targets (r);
  for (guint i = 0; i < t->len; i++)
    {
      MhResolveTarget *x = t->pdata[i];
      if (i)
        g_string_append_c (s, ' ');
      g_string_append_printf (s, "%s:%s", mh_resolve_target_kind_to_string (
                                  mh_resolve_target_get_kind (x)),
                              mh_resolve_target_get_address (x));
      if (mh_resolve_target_get_tag (x))
        g_string_append_printf (s, "/%s", mh_resolve_target_get_tag (x));
      if (mh_resolve_target_get_folder (x))
        g_string_append_printf (s, "#%s", mh_resolve_target_get_folder (x));
      if (mh_resolve_target_get_kind (x) >= MH_RESOLVE_TARGET_REJECT)
        g_string_append_printf (s, "=%u/%s", mh_resolve_target_get_smtp_code (x),
                                mh_resolve_target_get_enhanced_code (x));
    }
  if (keep)
    *keep = g_steal_pointer (&r);
  return g_string_free (s, FALSE);
}

#define EXPECT(f, addr, want)                                              \
  do                                                                       \
    {                                                                      \
      g_autofree char *got_ = targets_of ((f), (addr), NULL, FALSE, NULL); \
      assert_string_equal (got_, (want));                                  \
    }                                                                      \
  while (0)

static gboolean
trace_has (MhResolveResult *r, MhResolveRule rule, const char *needle)
{
  GPtrArray *t = mh_resolve_result_get_trace (r);
  for (guint i = 0; i < t->len; i++)
    if (mh_resolve_step_get_rule (t->pdata[i]) == rule
        && (needle == NULL
            || strstr (mh_resolve_step_get_text (t->pdata[i]), needle)))
      return TRUE;
  return FALSE;
}

static gboolean
resolve_fails (Fixture *f, const char *address, gssize len, GError **error)
{
  g_autoptr (MhResolveResult) r = NULL;
  gboolean ok = mh_resolver_resolve (f->res, address, len, NULL, FALSE,
                                     MH_RESOLVE_FLAGS_NONE, &r, error);
  if (ok)
    assert_non_null (r);
  else
    assert_null (r);
  return !ok;
}

#define BAD(f, addr, len, code, ...)                                       \
  FAILS (!resolve_fails ((f), (addr), (len), error_), MH_RESOLVE_ERROR,    \
         (code), __VA_ARGS__)

/* ---- Plain accounts and normalisation --------------------------------- */

static void
test_account_and_case (void **state)
{
  Fixture *f = *state;
  EXPECT (f, "alice@example.org", "mailbox:alice@example.org");
  EXPECT (f, "ALICE@Example.ORG", "mailbox:alice@example.org");
  {
    MhResolveResult *n = NULL;
    g_autofree char *x = targets_of (f, "ALICE@Example.ORG", NULL, FALSE, &n);
    assert_string_equal (mh_resolve_result_get_address (n),
                         "alice@example.org");
    mh_resolve_result_unref (n);
  }
  EXPECT (f, "<alice@example.org>", "mailbox:alice@example.org");
  EXPECT (f, "alice@example.org.", "mailbox:alice@example.org");
  EXPECT (f, "\"alice\"@example.org", "mailbox:alice@example.org");
  MhResolveResult *r = NULL;
  g_autofree char *t = targets_of (f, "nobody@example.org", NULL, FALSE, &r);
  assert_string_equal (t, "reject:nobody@example.org=550/5.1.1");
  assert_false (mh_resolve_result_get_accepted (r));
  guint code;
  const char *enh, *text;
  mh_resolve_result_get_reply (r, &code, &enh, &text);
  assert_int_equal (code, 550);
  assert_string_equal (enh, "5.1.1");
  assert_true (trace_has (r, MH_RESOLVE_RULE_UNKNOWN, NULL));
  mh_resolve_result_unref (r);
  /* A domain not hosted here is not relayed. */
  EXPECT (f, "x@elsewhere.example", "reject:x@elsewhere.example=550/5.1.2");
  /* A disabled account refuses mail. */
  OK (mh_directory_account_set_enabled (f->dir, "bob@example.org", FALSE,
                                        error_));
  EXPECT (f, "bob@example.org", "reject:bob@example.org=550/5.2.1");
}

static void
test_case_sensitive_domain (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_domain_add (f->dir, "cs.example", error_));
  OK (mh_directory_domain_set_setting (f->dir, "cs.example",
                                       "case_sensitive_local_part", "true",
                                       error_));
  OK (mh_directory_account_add (f->dir, "Carol@cs.example", NULL, error_));
  EXPECT (f, "Carol@CS.example", "mailbox:Carol@cs.example");
  EXPECT (f, "carol@cs.example", "reject:carol@cs.example=550/5.1.1");
}

static void
test_idna_and_utf8 (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_domain_add (f->dir, "bücher.example", error_));
  OK (mh_directory_account_add (f->dir, "jürgen@bücher.example", NULL,
                                error_));
  const char *want = "mailbox:jürgen@xn--bcher-kva.example";
  EXPECT (f, "jürgen@bücher.example", want);
  EXPECT (f, "JÜRGEN@BÜCHER.example", want);
  EXPECT (f, "jürgen@xn--bcher-kva.example", want);
  EXPECT (f, "J\xc3\x9cRGEN@XN--BCHER-KVA.EXAMPLE", want);
  /* Decomposed ü (u + U+0308) is the same mailbox after NFC. */
  EXPECT (f, "ju\xcc\x88rgen@bücher.example", want);
  /* Quoted local parts with characters that need the quotes. */
  OK (mh_directory_account_add (f->dir, "\"john doe\"@example.org", NULL,
                                error_));
  EXPECT (f, "\"John Doe\"@example.org", "mailbox:\"john doe\"@example.org");
}

static void
test_bad_input (void **state)
{
  Fixture *f = *state;
  BAD (f, "", -1, MH_RESOLVE_ERROR_INVALID, "empty");
  BAD (f, "@example.org", -1, MH_RESOLVE_ERROR_INVALID, "empty local part");
  BAD (f, "<>", -1, MH_RESOLVE_ERROR_INVALID, "<>", "null reverse-path");
  BAD (f, "<@relay.example:alice@example.org>", -1, MH_RESOLVE_ERROR_INVALID,
       "source route");
  BAD (f, "@relay.example,@b.example:alice@example.org", -1,
       MH_RESOLVE_ERROR_INVALID, "source route");
  BAD (f, "alice@example.org\0x", 19, MH_RESOLVE_ERROR_INVALID,
       "NUL byte at offset 17");
  BAD (f, "ali\x01" "ce@example.org", -1, MH_RESOLVE_ERROR_INVALID,
       "control character 0x01 at offset 3");
  BAD (f, "alice@exa\x7fmple.org", -1, MH_RESOLVE_ERROR_INVALID,
       "control character 0x7f");
  BAD (f, "alice@example.org\r\n", -1, MH_RESOLVE_ERROR_INVALID,
       "control character 0x0d");
  BAD (f, "alice", -1, MH_RESOLVE_ERROR_INVALID, "no '@domain'");
  BAD (f, "<alice@example.org", -1, MH_RESOLVE_ERROR_INVALID, "'<'");
  BAD (f, "al\xff" "ce@example.org", -1, MH_RESOLVE_ERROR_INVALID, "UTF-8");
  BAD (f, "alice@xn--zz-.example", -1, MH_RESOLVE_ERROR_INVALID, "xn--zz-");
  BAD (f, "alice@xn--a.example", -1, MH_RESOLVE_ERROR_INVALID, "xn--a");
  BAD (f, "alice@-bad.example", -1, MH_RESOLVE_ERROR_INVALID, "-bad");
  BAD (f, "a..b@example.org", -1, MH_RESOLVE_ERROR_INVALID, "'.'");
  /* RFC 5321 4.5.3.1.1: 64-octet local part; 4.5.3.1.3: 254 in all. */
  g_autofree char *l65 = g_strnfill (65, 'a');
  g_autofree char *a65 = g_strconcat (l65, "@example.org", NULL);
  BAD (f, a65, -1, MH_RESOLVE_ERROR_INVALID, "local part is too long");
  g_autofree char *l64 = g_strnfill (64, 'a');
  g_autofree char *lab = g_strnfill (60, 'b');
  g_autofree char *long_addr = g_strdup_printf ("%s@%s.%s.%s.example", l64,
                                                lab, lab, lab);
  BAD (f, long_addr, -1, MH_RESOLVE_ERROR_INVALID, "too long");
  g_autofree char *huge = g_strnfill (2000, 'x');
  BAD (f, huge, -1, MH_RESOLVE_ERROR_INVALID, "too long");
  /* The SMTP replies for errors. */
  g_autoptr (GError) e = g_error_new (MH_RESOLVE_ERROR,
                                      MH_RESOLVE_ERROR_INVALID, "x");
  guint code;
  const char *enh;
  mh_resolve_error_smtp_reply (e, &code, &enh);
  assert_int_equal (code, 501);
  assert_string_equal (enh, "5.1.3");
  e->code = MH_RESOLVE_ERROR_LOOP;
  mh_resolve_error_smtp_reply (e, &code, &enh);
  assert_int_equal (code, 554);
  e->code = MH_RESOLVE_ERROR_DIRECTORY;
  mh_resolve_error_smtp_reply (e, &code, &enh);
  assert_int_equal (code, 451);
}

/* ---- Aliases ---------------------------------------------------------- */

static void
test_aliases (void **state)
{
  Fixture *f = *state;
  const char *t1[] = { "alice@example.org", "bob@example.org",
                       "Ext@Other.example", NULL };
  OK (mh_directory_alias_add (f->dir, "info@example.org", t1, error_));
  EXPECT (f, "info@example.org",
          "mailbox:alice@example.org mailbox:bob@example.org "
          "forward:Ext@other.example");
  /* A chain, and a duplicate collapsing: team -> info, alice. */
  const char *t2[] = { "info@example.org", "alice@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "team@example.org", t2, error_));
  MhResolveResult *r = NULL;
  g_autofree char *t = targets_of (f, "team@example.org", NULL, FALSE, &r);
  assert_string_equal (t, "mailbox:alice@example.org mailbox:bob@example.org "
                          "forward:Ext@other.example");
  assert_true (trace_has (r, MH_RESOLVE_RULE_DUPLICATE, "alice@example.org"));
  mh_resolve_result_unref (r);
  /* An alias to itself is refused when it is made. */
  const char *self[] = { "INFO@example.org", NULL };
  FAILS (mh_directory_alias_add (f->dir, "info@example.org", self, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "itself");
  /* An alias to a missing local address is refused when made; one that
   * went missing later is rejected at resolution. */
  const char *dangling[] = { "bob@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "old@example.org", dangling, error_));
  OK (mh_directory_account_delete (f->dir, "bob@example.org", error_));
  EXPECT (f, "old@example.org", "reject:bob@example.org=550/5.1.1");
}

static void
test_loop_and_depth (void **state)
{
  Fixture *f = *state;
  const char *a[] = { "alice@example.org", NULL };
  const char *b[] = { "l1@example.org", NULL };
  const char *c[] = { "l2@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "l1@example.org", a, error_));
  OK (mh_directory_alias_add (f->dir, "l2@example.org", b, error_));
  OK (mh_directory_alias_add (f->dir, "l1@example.org", c, error_));
  /* l1 -> l2 -> l1. */
  BAD (f, "l1@example.org", -1, MH_RESOLVE_ERROR_LOOP,
       "loop: l1@example.org -> l2@example.org -> l1@example.org");
  BAD (f, "L2@example.org", -1, MH_RESOLVE_ERROR_LOOP, "loop");

  /* d0 -> d1 -> ... -> d9 -> alice: deeper than a limit of 4. */
  const char *prev = "alice@example.org";
  char *names[10];
  for (int i = 9; i >= 0; i--)
    {
      names[i] = g_strdup_printf ("d%d@example.org", i);
      const char *t[] = { prev, NULL };
      OK (mh_directory_alias_add (f->dir, names[i], t, error_));
      prev = names[i];
    }
  BAD (f, "d0@example.org", -1, MH_RESOLVE_ERROR_DEPTH, "deeper than 8");
  EXPECT (f, "d3@example.org", "mailbox:alice@example.org");
  MhResolveLimits lim = { .version = 1, .max_depth = 4 };
  g_autoptr (MhResolver) small = mh_resolver_new (f->dir, &lim);
  g_autoptr (MhResolveResult) r = NULL;
  FAILS (mh_resolver_resolve (small, "d5@example.org", -1, NULL, FALSE, 0,
                              &r, error_),
         MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_DEPTH, "deeper than 4");
  OK (mh_resolver_resolve (small, "d6@example.org", -1, NULL, FALSE, 0, &r,
                           error_));
  for (int i = 0; i < 10; i++)
    g_free (names[i]);
}

static void
test_fanout (void **state)
{
  Fixture *f = *state;
  /* 1,000 targets: the directory allows them, the resolver's fan-out
   * limit (500) does not deliver them. */
  g_autoptr (GPtrArray) t = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; i < 1000; i++)
    g_ptr_array_add (t, g_strdup_printf ("user%d@far.example", i));
  g_ptr_array_add (t, NULL);
  OK (mh_directory_alias_add (f->dir, "everyone@example.org",
                              (const char *const *) t->pdata, error_));
  BAD (f, "everyone@example.org", -1, MH_RESOLVE_ERROR_FANOUT,
       "more than 500 targets");
  MhResolveLimits lim = { .version = 1, .max_fanout = 2000 };
  g_autoptr (MhResolver) big = mh_resolver_new (f->dir, &lim);
  g_autoptr (MhResolveResult) r = NULL;
  OK (mh_resolver_resolve (big, "everyone@example.org", -1, NULL, FALSE, 0,
                           &r, error_));
  assert_int_equal (mh_resolve_result_get_targets (r)->len, 1000);
  /* A step limit bounds work even when targets collapse. */
  MhResolveLimits steps = { .version = 1, .max_steps = 2 };
  g_autoptr (MhResolver) few = mh_resolver_new (f->dir, &steps);
  const char *d[] = { "alice@example.org", "bob@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "two@example.org", d, error_));
  g_autoptr (MhResolveResult) r2 = NULL;
  FAILS (mh_resolver_resolve (few, "two@example.org", -1, NULL, FALSE, 0, &r2,
                              error_),
         MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_FANOUT, "step limit");
}

static void
test_domain_alias (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_domain_alias_add (f->dir, "old.example", "example.org",
                                     error_));
  MhResolveResult *r = NULL;
  g_autofree char *t = targets_of (f, "Alice@OLD.example", NULL, FALSE, &r);
  assert_string_equal (t, "mailbox:alice@example.org");
  assert_true (trace_has (r, MH_RESOLVE_RULE_DOMAIN_ALIAS, "old.example"));
  mh_resolve_result_unref (r);
  EXPECT (f, "nobody@old.example", "reject:nobody@example.org=550/5.1.1");
}

/* ---- Catch-all and routing -------------------------------------------- */

static void
test_catch_all (void **state)
{
  Fixture *f = *state;
  EXPECT (f, "nobody@example.org", "reject:nobody@example.org=550/5.1.1");
  /* The same resolver sees the change (its domain cache is checked
   * against the stored record). */
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "catch_all",
                                       "alice@example.org", error_));
  MhResolveResult *r = NULL;
  g_autofree char *t = targets_of (f, "nobody@example.org", NULL, FALSE, &r);
  assert_string_equal (t, "mailbox:alice@example.org");
  assert_true (trace_has (r, MH_RESOLVE_RULE_CATCH_ALL, NULL));
  mh_resolve_result_unref (r);
  /* Only when nothing else matches. */
  EXPECT (f, "bob@example.org", "mailbox:bob@example.org");
  EXPECT (f, "bob+x@example.org", "mailbox:bob@example.org/x");
  /* A catch-all naming a missing account defers (configuration error),
   * and never loops through itself. */
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "catch_all",
                                       "ghost@example.org", error_));
  EXPECT (f, "nobody@example.org", "defer:ghost@example.org=451/4.3.0");
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "catch_all",
                                       "x@far.example", error_));
  EXPECT (f, "nobody@example.org", "forward:x@far.example");
  FAILS (mh_directory_domain_set_setting (f->dir, "example.org", "catch_all",
                                          "not an address", error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "catch_all");
}

static void
test_routing_off (void **state)
{
  Fixture *f = *state;
  const char *t[] = { "bob@example.org", NULL };
  OK (mh_directory_alias_add (f->dir, "sales@example.org", t, error_));
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "catch_all",
                                       "alice@example.org", error_));
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "routing",
                                       "off", error_));
  MhResolveResult *r = NULL;
  g_autofree char *x = targets_of (f, "nobody@example.org", NULL, FALSE, &r);
  assert_string_equal (x, "reject:nobody@example.org=550/5.1.1");
  assert_true (trace_has (r, MH_RESOLVE_RULE_ROUTING_OFF, NULL));
  assert_false (trace_has (r, MH_RESOLVE_RULE_CATCH_ALL, NULL));
  mh_resolve_result_unref (r);
  EXPECT (f, "alice+tag@example.org",
          "reject:alice+tag@example.org=550/5.1.1");
  EXPECT (f, "alice@example.org", "mailbox:alice@example.org");
  EXPECT (f, "sales@example.org", "mailbox:bob@example.org");
  FAILS (mh_directory_domain_set_setting (f->dir, "example.org", "routing",
                                          "sometimes", error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "'default' or "
         "'off'");
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "routing",
                                       "default", error_));
  EXPECT (f, "nobody@example.org", "mailbox:alice@example.org");
}

/* ---- Sub-addresses ---------------------------------------------------- */

static void
test_subaddress (void **state)
{
  Fixture *f = *state;
  EXPECT (f, "alice+Lists@example.org", "mailbox:alice@example.org/Lists");
  EXPECT (f, "ALICE+a+b@example.org", "mailbox:alice@example.org/a+b");
  EXPECT (f, "alice+@example.org", "mailbox:alice@example.org");
  EXPECT (f, "+alice@example.org", "reject:+alice@example.org=550/5.1.1");
  EXPECT (f, "nobody+x@example.org", "reject:nobody+x@example.org=550/5.1.1");
  /* Folders only when the account asks for them. */
  OK (mh_directory_account_set_setting (f->dir, "alice@example.org",
                                        "subaddress_folders", "true",
                                        error_));
  EXPECT (f, "alice+Lists@example.org",
          "mailbox:alice@example.org/Lists#Lists");
  /* Sub-addresses of an alias keep the tag on its mailboxes. */
  const char *t[] = { "bob@example.org", "x@far.example", NULL };
  OK (mh_directory_alias_add (f->dir, "team@example.org", t, error_));
  EXPECT (f, "team+urgent@example.org",
          "mailbox:bob@example.org/urgent forward:x@far.example");
  /* Another separator, several separators, none. */
  OK (mh_directory_domain_set_setting (f->dir, "example.org",
                                       "subaddress_separator", "-", error_));
  EXPECT (f, "alice-x@example.org", "mailbox:alice@example.org/x#x");
  EXPECT (f, "alice+x@example.org", "reject:alice+x@example.org=550/5.1.1");
  OK (mh_directory_domain_set_setting (f->dir, "example.org",
                                       "subaddress_separator", "+-", error_));
  EXPECT (f, "bob+x@example.org", "mailbox:bob@example.org/x");
  EXPECT (f, "bob-y@example.org", "mailbox:bob@example.org/y");
  OK (mh_directory_domain_set_setting (f->dir, "example.org",
                                       "subaddress_separator", "none",
                                       error_));
  EXPECT (f, "bob+x@example.org", "reject:bob+x@example.org=550/5.1.1");
  FAILS (mh_directory_domain_set_setting (f->dir, "example.org",
                                          "subaddress_separator", "a", error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "'a'");
  FAILS (mh_directory_domain_set_setting (f->dir, "example.org",
                                          "subaddress_separator", "++",
                                          error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "twice");
}

/* ---- Forwarding ------------------------------------------------------- */

static void
test_forwarding (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_account_set_setting (f->dir, "alice@example.org",
                                        "forward_to",
                                        "a@far.example, bob@example.org",
                                        error_));
  EXPECT (f, "alice@example.org",
          "forward:a@far.example mailbox:bob@example.org");
  OK (mh_directory_account_set_setting (f->dir, "alice@example.org",
                                        "forward_keep_copy", "true", error_));
  EXPECT (f, "alice+t@example.org",
          "forward:a@far.example mailbox:bob@example.org "
          "mailbox:alice@example.org/t");
  /* bob forwards back to alice: a loop, not a mail storm. */
  OK (mh_directory_account_set_setting (f->dir, "bob@example.org",
                                        "forward_to", "alice@example.org",
                                        error_));
  BAD (f, "alice@example.org", -1, MH_RESOLVE_ERROR_LOOP,
       "alice@example.org -> bob@example.org -> alice@example.org");
  FAILS (mh_directory_account_set_setting (f->dir, "bob@example.org",
                                           "forward_to", "a@b.example,,",
                                           error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "forward_to");
}

/* ---- Temporary aliases ------------------------------------------------ */

static void
test_temp_alias (void **state)
{
  Fixture *f = *state;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr (MhTempAliasInfo) t = NULL;
  OK ((t = mh_directory_temp_alias_add (f->dir, "Alice@example.org",
                                        now + 2 * 86400, error_)) != NULL);
  const char *addr = mh_temp_alias_info_get_ascii_address (t);
  assert_true (g_str_has_suffix (addr, "@example.org"));
  assert_int_equal (strlen (addr), 12 + strlen ("@example.org"));
  assert_string_equal (mh_temp_alias_info_get_target (t),
                       "alice@example.org");
  EXPECT (f, addr, "mailbox:alice@example.org");
  g_autofree char *upper = g_ascii_strup (addr, -1);
  EXPECT (f, upper, "mailbox:alice@example.org");
  /* Three days on it is gone: rejected exactly like an unknown address. */
  mh_resolver_set_time (f->res, now + 3 * 86400);
  MhResolveResult *r = NULL;
  g_autofree char *x = targets_of (f, addr, NULL, FALSE, &r);
  g_autofree char *want = g_strdup_printf ("reject:%s=550/5.1.1", addr);
  assert_string_equal (x, want);
  assert_true (trace_has (r, MH_RESOLVE_RULE_TEMP_ALIAS, "expired"));
  mh_resolve_result_unref (r);
  mh_resolver_set_time (f->res, 0);

  /* Default life is one year; lists; two are never the same. */
  g_autoptr (MhTempAliasInfo) t2 = NULL;
  OK ((t2 = mh_directory_temp_alias_add (f->dir, "bob@example.org", 0,
                                         error_)) != NULL);
  gint64 life = mh_temp_alias_info_get_expires (t2) - now;
  assert_true (life >= 365 * 86400 && life <= 365 * 86400 + 60);
  assert_string_not_equal (addr, mh_temp_alias_info_get_address (t2));
  g_autoptr (MhTempAliasInfoList) all = NULL;
  OK ((all = mh_directory_temp_alias_list (f->dir, NULL, error_)) != NULL);
  assert_int_equal (all->len, 2);
  g_autoptr (MhTempAliasInfoList) bobs = NULL;
  OK ((bobs = mh_directory_temp_alias_list (f->dir, "bob@example.org",
                                            error_)) != NULL);
  assert_int_equal (bobs->len, 1);
  g_autoptr (MhTempAliasInfo) found = NULL;
  OK ((found = mh_directory_temp_alias_lookup (f->dir, addr, error_)) != NULL);
  assert_false (mh_temp_alias_info_is_expired (found, now));
  assert_true (mh_temp_alias_info_is_expired (found, now + 3 * 86400));

  /* Purge at a later time removes the expired one only. */
  guint removed = 0;
  OK (mh_directory_temp_alias_purge (f->dir, now + 3 * 86400, &removed,
                                     error_));
  assert_int_equal (removed, 1);
  EXPECT (f, addr, want);
  OK (mh_directory_temp_alias_delete (f->dir,
                                      mh_temp_alias_info_get_address (t2),
                                      error_));
  FAILS (mh_directory_temp_alias_delete (f->dir,
                                         mh_temp_alias_info_get_address (t2),
                                         error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND, "does not exist");

  /* Bad requests. */
  FAILS (mh_directory_temp_alias_add (f->dir, "ghost@example.org", 0, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND, "ghost");
  FAILS (mh_directory_temp_alias_add (f->dir, "alice@example.org", now - 1,
                                      error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "not in the future");
  FAILS (mh_directory_temp_alias_add (f->dir, "alice@example.org",
                                      now + 4000LL * 86400, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "3650 days");
  /* They count against max_aliases. */
  OK (mh_directory_domain_set_setting (f->dir, "example.org", "max_aliases",
                                       "1", error_));
  g_autoptr (MhTempAliasInfo) t3 = NULL;
  OK ((t3 = mh_directory_temp_alias_add (f->dir, "alice@example.org", 0,
                                         error_)) != NULL);
  FAILS (mh_directory_temp_alias_add (f->dir, "alice@example.org", 0, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_LIMIT, "max_aliases");
}

/* ---- Group addresses -------------------------------------------------- */

static void
test_group (void **state)
{
  Fixture *f = *state;
  OK (mh_directory_account_add (f->dir, "carol@example.org", NULL, error_));
  OK (mh_directory_account_set_enabled (f->dir, "carol@example.org", FALSE,
                                        error_));
  OK (mh_directory_domain_add (f->dir, "other.example", error_));
  OK (mh_directory_account_add (f->dir, "dave@other.example", NULL, error_));
  OK (mh_directory_domain_alias_add (f->dir, "alias.example", "example.org",
                                     error_));
  OK (mh_directory_domain_set_setting (f->dir, "example.org",
                                       "group_addresses", "all, Staff",
                                       error_));
  const char *inside = "mailbox:alice@example.org mailbox:bob@example.org";
  g_autofree char *a = targets_of (f, "all@example.org", "bob@example.org",
                                   TRUE, NULL);
  assert_string_equal (a, inside);
  g_autofree char *b = targets_of (f, "STAFF@example.org",
                                   "alice@alias.example", TRUE, NULL);
  assert_string_equal (b, inside);
  /* Outside senders, and unauthenticated insiders, are refused. */
  const char *refused = "reject:all@example.org=550/5.7.1";
  MhResolveResult *r = NULL;
  g_autofree char *c = targets_of (f, "all@example.org", "dave@other.example",
                                   TRUE, &r);
  assert_string_equal (c, refused);
  guint code;
  const char *enh, *text;
  mh_resolve_result_get_reply (r, &code, &enh, &text);
  assert_non_null (strstr (text, "authenticated senders"));
  assert_true (trace_has (r, MH_RESOLVE_RULE_GROUP, "refused"));
  mh_resolve_result_unref (r);
  g_autofree char *d = targets_of (f, "all@example.org", "bob@example.org",
                                   FALSE, NULL);
  assert_string_equal (d, refused);
  g_autofree char *e = targets_of (f, "all@example.org", NULL, FALSE, NULL);
  assert_string_equal (e, refused);
  /* A group bigger than its limit is an error, not a storm. */
  MhResolveLimits lim = { .version = 1, .max_group = 1 };
  g_autoptr (MhResolver) small = mh_resolver_new (f->dir, &lim);
  g_autoptr (MhResolveResult) r2 = NULL;
  FAILS (mh_resolver_resolve (small, "all@example.org", -1, "bob@example.org",
                              TRUE, 0, &r2, error_),
         MH_RESOLVE_ERROR, MH_RESOLVE_ERROR_FANOUT, "more than 1 accounts");
  FAILS (mh_directory_domain_set_setting (f->dir, "example.org",
                                          "group_addresses", "all@x.example",
                                          error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "local part only");
}

/* ---- Directory: bulk aliases, migration, corrupt records -------------- */

static void
test_alias_import (void **state)
{
  Fixture *f = *state;
  const char *src[] = { "a1@example.org", "a2@example.org", "a3@example.org",
                        NULL };
  const char *tgt[] = { "alice@example.org", "a1@example.org, x@far.example",
                        "bob@example.org", NULL };
  guint added = 0;
  OK (mh_directory_alias_import (f->dir, src, tgt, &added, error_));
  assert_int_equal (added, 3);
  EXPECT (f, "a2@example.org", "mailbox:alice@example.org forward:x@far.example");
  const char *bad_src[] = { "b1@example.org", "alice@example.org", NULL };
  const char *bad_tgt[] = { "bob@example.org", "bob@example.org", NULL };
  FAILS (mh_directory_alias_import (f->dir, bad_src, bad_tgt, NULL, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_EXISTS, "entry 2",
         "nothing was added");
  EXPECT (f, "b1@example.org", "reject:b1@example.org=550/5.1.1");
  const char *self_src[] = { "s@example.org", NULL };
  const char *self_tgt[] = { "S@example.org", NULL };
  FAILS (mh_directory_alias_import (f->dir, self_src, self_tgt, NULL, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_INVALID, "itself");
  const char *miss_tgt[] = { "ghost@example.org", NULL };
  FAILS (mh_directory_alias_import (f->dir, self_src, miss_tgt, NULL, error_),
         MH_DIRECTORY_ERROR, MH_DIRECTORY_ERROR_NOT_FOUND, "ghost");
}

static void
test_migration_v1 (void **state)
{
  Fixture *f = *state;
  assert_int_equal (mh_directory_get_schema_version (f->dir), 2);
  MDB_txn *txn = mh_directory__txn_begin (f->dir, TRUE, NULL);
  assert_non_null (txn);
  assert_true (mh_directory__write_schema_version (txn, &f->dir->dbs, 1,
                                                   NULL));
  assert_true (mh_directory__txn_commit (f->dir, txn, NULL));
  mh_resolver_unref (f->res);
  mh_directory_unref (f->dir);
  OK ((f->dir = mh_directory_open (f->tmp, error_)) != NULL);
  f->res = mh_resolver_new (f->dir, NULL);
  assert_int_equal (mh_directory_get_schema_version (f->dir), 2);
  EXPECT (f, "alice@example.org", "mailbox:alice@example.org");
}

static void
test_corrupt_record (void **state)
{
  Fixture *f = *state;
  MDB_txn *txn = mh_directory__txn_begin (f->dir, TRUE, NULL);
  MDB_val k = { strlen ("example.org@bob"), "example.org@bob" };
  MDB_val v = { 9, "\x01\0\0\0garbage" };
  assert_int_equal (mdb_put (txn, f->dir->dbs.accounts, &k, &v, 0), 0);
  assert_true (mh_directory__txn_commit (f->dir, txn, NULL));
  BAD (f, "bob@example.org", -1, MH_RESOLVE_ERROR_DIRECTORY,
       "account 'example.org@bob' is corrupt");
  EXPECT (f, "alice@example.org", "mailbox:alice@example.org");
  /* The in-place reader agrees with GVariant on every prefix of a real
   * record: it never reads past the end. */
  txn = mh_directory__txn_begin (f->dir, FALSE, NULL);
  MDB_val ka = { strlen ("example.org@alice"), "example.org@alice" }, va;
  assert_int_equal (mdb_get (txn, f->dir->dbs.accounts, &ka, &va), 0);
  g_autofree guint8 *copy = g_memdup2 (va.mv_data, va.mv_size);
  gsize len = va.mv_size;
  mdb_txn_abort (txn);
  MhResolveAccount acc;
  assert_true (mh_resolve__read_account (copy, len, &acc));
  assert_true (acc.enabled);
  for (gsize cut = 0; cut < len; cut++)
    {
      g_autofree guint8 *part = g_memdup2 (copy, cut);
      mh_resolve__read_account (part, cut, &acc);  /* no crash (ASan) */
    }
}

static void
test_types (void **state)
{
  (void) state;
  /* Introspectable: boxed types and enums are registered. */
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_RESOLVER));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_RESOLVE_RESULT));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_RESOLVE_TARGET));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_RESOLVE_STEP));
  assert_true (G_TYPE_IS_BOXED (MH_TYPE_TEMP_ALIAS_INFO));
  assert_true (G_TYPE_IS_ENUM (MH_TYPE_RESOLVE_RULE));
  assert_true (G_TYPE_IS_FLAGS (MH_TYPE_RESOLVE_FLAGS));
  assert_string_equal (mh_resolve_rule_to_string (MH_RESOLVE_RULE_CATCH_ALL),
                       "catch-all");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_account_and_case, setup, teardown),
    cmocka_unit_test_setup_teardown (test_case_sensitive_domain, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_idna_and_utf8, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_input, setup, teardown),
    cmocka_unit_test_setup_teardown (test_aliases, setup, teardown),
    cmocka_unit_test_setup_teardown (test_loop_and_depth, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fanout, setup, teardown),
    cmocka_unit_test_setup_teardown (test_domain_alias, setup, teardown),
    cmocka_unit_test_setup_teardown (test_catch_all, setup, teardown),
    cmocka_unit_test_setup_teardown (test_routing_off, setup, teardown),
    cmocka_unit_test_setup_teardown (test_subaddress, setup, teardown),
    cmocka_unit_test_setup_teardown (test_forwarding, setup, teardown),
    cmocka_unit_test_setup_teardown (test_temp_alias, setup, teardown),
    cmocka_unit_test_setup_teardown (test_group, setup, teardown),
    cmocka_unit_test_setup_teardown (test_alias_import, setup, teardown),
    cmocka_unit_test_setup_teardown (test_migration_v1, setup, teardown),
    cmocka_unit_test_setup_teardown (test_corrupt_record, setup, teardown),
    cmocka_unit_test (test_types),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
