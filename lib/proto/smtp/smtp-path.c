/* lib/proto/smtp: RFC 5321 Path parsing, xtext and base64 checks.
 *
 * Design notes
 * - Grammar: RFC 5321 4.1.2 (Path, Mailbox, Dot-string, Quoted-string,
 *   Domain, address-literal) widened by RFC 6531 3.3 (UTF8-non-ascii in
 *   atext, qtextSMTP and sub-domain). The parser always accepts UTF-8 and
 *   reports it; whether it is allowed depends on MAIL's SMTPUTF8 parameter,
 *   which follows the path, so the caller checks.
 * - Input is (ptr, len), never NUL-terminated; every loop is bounded by
 *   len. No recursion.
 * - Source routes (`<@a,@b:user@c>`) are parsed and dropped: RFC 5321
 *   4.1.1.3 and appendix C say servers SHOULD accept and MAY ignore them.
 * - Lengths: local part 64, domain 255, whole path 256 octets (RFC 5321
 *   4.5.3.1.1-3). UTF-8 labels are not held to the 63-octet label limit
 *   (it applies to their A-label form, which the resolver computes).
 * - `<postmaster>` with no domain is accepted for RCPT (RFC 5321 4.1.1.3);
 *   the caller refuses it as a reverse path.
 */
#include "smtp-private.h"

#include <arpa/inet.h>
#include <string.h>

G_DEFINE_QUARK (mh-smtp-error-quark, mh_smtp_error)

#define PATH_MAX_OCTETS 256   /* RFC 5321 4.5.3.1.3 */
#define DOMAIN_MAX_OCTETS 255 /* RFC 5321 4.5.3.1.2 */

static gboolean
is_atext (guchar c)
{
  /* RFC 5322 3.2.3 atext */
  if (g_ascii_isalnum (c))
    return TRUE;
  switch (c)
    {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '/': case '=': case '?': case '^': case '_':
    case '`': case '{': case '|': case '}': case '~':
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
is_letdig (guchar c)
{
  return g_ascii_isalnum (c) || c >= 0x80;
}

static gboolean
is_dcontent (guchar c)
{
  /* RFC 5321 4.1.3: %d33-90 / %d94-126 */
  return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
 * Advances *i past the domain. */
static gboolean
parse_domain (const char *s, gsize len, gsize *i, gboolean *utf8,
              MhSmtpError *code, char **msg)
{
  gsize start = *i;
  gsize p = *i;

  for (;;)
    {
      gsize label = p;
      gboolean label_utf8 = FALSE;
      if (p >= len || !is_letdig ((guchar) s[p]))
        {
          *code = MH_SMTP_ERROR_SYNTAX;
          *msg = g_strdup (p > start && s[p - 1] == '.'
                             ? "domain has an empty label"
                             : "domain name expected after '@'");
          return FALSE;
        }
      while (p < len
             && (is_letdig ((guchar) s[p]) || s[p] == '-'))
        {
          if ((guchar) s[p] >= 0x80)
            label_utf8 = TRUE;
          p++;
        }
      if (s[p - 1] == '-')
        {
          *code = MH_SMTP_ERROR_SYNTAX;
          *msg = g_strdup ("a domain label ends with '-'");
          return FALSE;
        }
      if (label_utf8)
        *utf8 = TRUE;
      else if (p - label > MH_LIMIT_DOMAIN_LABEL_MAX)
        {
          *code = MH_SMTP_ERROR_TOO_LONG;
          *msg = g_strdup_printf ("a domain label is longer than %d octets",
                                  MH_LIMIT_DOMAIN_LABEL_MAX);
          return FALSE;
        }
      if (p < len && s[p] == '.')
        {
          p++;
          continue;
        }
      break;
    }
  if (p - start > DOMAIN_MAX_OCTETS)
    {
      *code = MH_SMTP_ERROR_TOO_LONG;
      *msg = g_strdup_printf ("domain longer than %d octets (RFC 5321 "
                              "4.5.3.1.2)", DOMAIN_MAX_OCTETS);
      return FALSE;
    }
  *i = p;
  return TRUE;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 / tag ":" 1*dcontent ) "]" */
static gboolean
parse_literal (const char *s, gsize len, gsize *i, MhSmtpError *code,
               char **msg)
{
  gsize p = *i + 1; /* past '[' */
  gsize start = p;
  while (p < len && is_dcontent ((guchar) s[p]))
    p++;
  if (p >= len || s[p] != ']' || p == start)
    {
      *code = MH_SMTP_ERROR_SYNTAX;
      *msg = g_strdup ("address literal must look like [192.0.2.1] or "
                       "[IPv6:2001:db8::1]");
      return FALSE;
    }
  gsize n = p - start;
  if (n > 64)
    {
      *code = MH_SMTP_ERROR_TOO_LONG;
      *msg = g_strdup ("address literal too long");
      return FALSE;
    }
  char buf[65];
  guint8 addr[16];
  memcpy (buf, s + start, n);
  buf[n] = '\0';
  gboolean ok;
  if (n > 5 && g_ascii_strncasecmp (buf, "IPv6:", 5) == 0)
    ok = inet_pton (AF_INET6, buf + 5, addr) == 1;
  else if (strspn (buf, "0123456789.") == n)
    ok = inet_pton (AF_INET, buf, addr) == 1;
  else
    {
      /* General-address-literal: Standardized-tag ":" 1*dcontent */
      const char *colon = strchr (buf, ':');
      ok = colon != NULL && colon > buf && colon[1] != '\0'
           && g_ascii_isalnum (buf[0]) && colon[-1] != '-';
      for (const char *t = buf; ok && t < colon; t++)
        ok = g_ascii_isalnum (*t) || *t == '-';
    }
  if (!ok)
    {
      *code = MH_SMTP_ERROR_SYNTAX;
      *msg = g_strdup_printf ("invalid address literal [%s]", buf);
      return FALSE;
    }
  *i = p + 1;
  return TRUE;
}

void
mh_smtp__path_clear (MhSmtpPath *path)
{
  if (path == NULL)
    return;
  g_clear_pointer (&path->address, g_free);
  g_clear_pointer (&path->local_part, g_free);
  g_clear_pointer (&path->domain, g_free);
  memset (path, 0, sizeof *path);
}

#define FAIL(c, ...)                                                        \
  G_STMT_START                                                              \
  {                                                                         \
    *code_out = (c);                                                        \
    *msg_out = g_strdup_printf (__VA_ARGS__);                               \
    goto fail;                                                              \
  }                                                                         \
  G_STMT_END

gboolean
mh_smtp__path_parse (const char *s, gsize len, gboolean allow_null,
                     gsize *end_out, MhSmtpPath *out, MhSmtpError *code_out,
                     char **msg_out)
{
  g_autoptr (GString) local = g_string_new (NULL);
  gboolean utf8 = FALSE;
  gboolean quoted = FALSE;
  gsize i = 0;

  memset (out, 0, sizeof *out);
  *msg_out = NULL;
  if (len == 0 || s[0] != '<')
    FAIL (MH_SMTP_ERROR_SYNTAX,
          "the address must be in angle brackets, as <user@example.org>");
  i = 1;
  if (i < len && s[i] == '>')
    {
      if (!allow_null)
        FAIL (MH_SMTP_ERROR_SYNTAX, "the null address <> is not allowed here");
      out->is_null = TRUE;
      out->address = g_strdup ("");
      out->local_part = g_strdup ("");
      *end_out = 2;
      return TRUE;
    }

  /* A-d-l ":" — a source route, parsed and dropped (RFC 5321 C). */
  if (i < len && s[i] == '@')
    {
      for (;;)
        {
          i++; /* '@' */
          if (!parse_domain (s, len, &i, &utf8, code_out, msg_out))
            goto fail;
          if (i < len && s[i] == ',')
            {
              i++;
              if (i >= len || s[i] != '@')
                FAIL (MH_SMTP_ERROR_SYNTAX, "bad source route");
              continue;
            }
          if (i < len && s[i] == ':')
            {
              i++;
              break;
            }
          FAIL (MH_SMTP_ERROR_SYNTAX, "bad source route: expected ':'");
        }
      out->had_source_route = TRUE;
    }

  gsize mbox = i;
  if (i < len && s[i] == '"')
    {
      quoted = TRUE;
      i++;
      for (;;)
        {
          if (i >= len)
            FAIL (MH_SMTP_ERROR_SYNTAX, "unterminated quoted local part");
          guchar c = (guchar) s[i];
          if (c == '"')
            {
              i++;
              break;
            }
          if (c == '\\')
            {
              /* quoted-pairSMTP = %d92 %d32-126 */
              if (i + 1 >= len || (guchar) s[i + 1] < 32
                  || (guchar) s[i + 1] > 126)
                FAIL (MH_SMTP_ERROR_SYNTAX,
                      "bad backslash escape in quoted local part");
              g_string_append_c (local, s[i + 1]);
              i += 2;
              continue;
            }
          if (c >= 0x80)
            utf8 = TRUE;
          else if (c < 32 || c == 127)
            FAIL (MH_SMTP_ERROR_SYNTAX,
                  "control character in quoted local part");
          g_string_append_c (local, (char) c);
          i++;
        }
    }
  else
    {
      gboolean need_atom = TRUE;
      while (i < len)
        {
          guchar c = (guchar) s[i];
          if (is_atext (c) || c >= 0x80)
            {
              if (c >= 0x80)
                utf8 = TRUE;
              need_atom = FALSE;
            }
          else if (c == '.')
            {
              if (need_atom)
                FAIL (MH_SMTP_ERROR_SYNTAX, "local part has an empty atom "
                      "(leading or double dot): quote it");
              need_atom = TRUE;
            }
          else
            break;
          g_string_append_c (local, (char) c);
          i++;
        }
      if (local->len == 0)
        {
          if (i < len && (guchar) s[i] < 32)
            FAIL (MH_SMTP_ERROR_SYNTAX, "control character in address");
          FAIL (MH_SMTP_ERROR_SYNTAX, "empty local part");
        }
      if (need_atom)
        FAIL (MH_SMTP_ERROR_SYNTAX, "local part ends with a dot: quote it");
    }
  if (i - mbox > MH_LIMIT_LOCAL_PART_MAX)
    FAIL (MH_SMTP_ERROR_TOO_LONG,
          "local part longer than %d octets (RFC 5321 4.5.3.1.1)",
          MH_LIMIT_LOCAL_PART_MAX);

  if (i < len && s[i] == '@')
    {
      i++;
      gsize dom = i;
      if (i < len && s[i] == '[')
        {
          if (!parse_literal (s, len, &i, code_out, msg_out))
            goto fail;
          out->domain_is_literal = TRUE;
        }
      else if (!parse_domain (s, len, &i, &utf8, code_out, msg_out))
        goto fail;
      out->domain = g_strndup (s + dom, i - dom);
    }
  else if (i < len && s[i] == '>' && !quoted && !out->had_source_route
           && g_ascii_strcasecmp (local->str, "postmaster") == 0)
    out->is_postmaster = TRUE; /* RFC 5321 4.1.1.3 */
  else if (i < len && s[i] == '>')
    FAIL (MH_SMTP_ERROR_SYNTAX, "the address has no @domain");
  else if (i < len && s[i] == ' ')
    FAIL (MH_SMTP_ERROR_SYNTAX, "space inside the address: quote it");
  else
    FAIL (MH_SMTP_ERROR_SYNTAX, "unexpected character in address");

  if (i >= len || s[i] != '>')
    FAIL (MH_SMTP_ERROR_SYNTAX, i < len && s[i] == '.'
            ? "domain ends with a dot" : "expected '>' after the address");
  i++;
  if (i > PATH_MAX_OCTETS)
    FAIL (MH_SMTP_ERROR_TOO_LONG,
          "path longer than %d octets (RFC 5321 4.5.3.1.3)", PATH_MAX_OCTETS);
  if (utf8 && !g_utf8_validate_len (s, i, NULL))
    FAIL (MH_SMTP_ERROR_UTF8, "the address is not valid UTF-8");

  out->is_utf8 = utf8;
  out->address = g_strndup (s + mbox, i - 1 - mbox);
  out->local_part = g_string_free (g_steal_pointer (&local), FALSE);
  *end_out = i;
  return TRUE;

fail:
  mh_smtp__path_clear (out);
  return FALSE;
}

MhSmtpPath *
mh_smtp_path_parse (const char *text, gssize len, gboolean allow_null,
                    gboolean allow_utf8, GError **error)
{
  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  gsize n = len < 0 ? strlen (text) : (gsize) len;
  MhSmtpPath p;
  MhSmtpError code;
  char *msg = NULL;
  gsize end = 0;

  if (!mh_smtp__path_parse (text, n, allow_null, &end, &p, &code, &msg))
    {
      g_set_error (error, MH_SMTP_ERROR, code, "%s", msg);
      g_free (msg);
      return NULL;
    }
  if (end != n)
    {
      mh_smtp__path_clear (&p);
      g_set_error (error, MH_SMTP_ERROR, MH_SMTP_ERROR_SYNTAX,
                   "unexpected text after '>' at offset %" G_GSIZE_FORMAT,
                   end);
      return NULL;
    }
  if (p.is_utf8 && !allow_utf8)
    {
      mh_smtp__path_clear (&p);
      g_set_error_literal (error, MH_SMTP_ERROR, MH_SMTP_ERROR_UTF8,
                           "non-ASCII address without SMTPUTF8 (RFC 6531)");
      return NULL;
    }
  return g_memdup2 (&p, sizeof p);
}

MhSmtpPath *
mh_smtp_path_copy (const MhSmtpPath *path)
{
  g_return_val_if_fail (path != NULL, NULL);
  MhSmtpPath *c = g_memdup2 (path, sizeof *path);
  c->address = g_strdup (path->address);
  c->local_part = g_strdup (path->local_part);
  c->domain = g_strdup (path->domain);
  return c;
}

void
mh_smtp_path_free (MhSmtpPath *path)
{
  if (path == NULL)
    return;
  mh_smtp__path_clear (path);
  g_free (path);
}

G_DEFINE_BOXED_TYPE (MhSmtpPath, mh_smtp_path, mh_smtp_path_copy,
                     mh_smtp_path_free)

gboolean
mh_smtp__xtext_valid (const char *s, gsize len)
{
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) s[i];
      if (c == '+')
        {
          if (i + 2 >= len)
            return FALSE;
          for (int k = 1; k <= 2; k++)
            {
              guchar h = (guchar) s[i + k];
              if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')))
                return FALSE;
            }
          i += 2;
        }
      else if (c < 33 || c > 126 || c == '=')
        return FALSE;
    }
  return TRUE;
}

static gboolean
is_b64 (guchar c)
{
  return g_ascii_isalnum (c) || c == '+' || c == '/';
}

gboolean
mh_smtp__base64_valid (const char *s, gsize len)
{
  if (len % 4 != 0)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (is_b64 ((guchar) s[i]))
        continue;
      /* '=' only as the last one or two characters */
      if (s[i] == '=' && (i == len - 1 || (i == len - 2 && s[len - 1] == '=')))
        continue;
      return FALSE;
    }
  return TRUE;
}
