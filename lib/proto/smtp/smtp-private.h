/* lib/proto/smtp internals shared between its files (not installed). */
#pragma once

#include "mailhost/smtp.h"
#include "core/core-private.h"

G_BEGIN_DECLS

/* Parses one RFC 5321 Path starting at s[0] == '<' within @len bytes.
 * On success fills @out (owned strings; clear with mh_smtp__path_clear)
 * and sets *end_out to the offset just past '>'. UTF-8 is always parsed
 * (out->is_utf8 says whether there was any): MAIL's SMTPUTF8 parameter
 * comes after the path, so the caller decides. On failure sets *code_out
 * (an MhSmtpError) and *msg_out (owned text naming the problem). */
gboolean mh_smtp__path_parse (const char *s, gsize len, gboolean allow_null,
                              gsize *end_out, MhSmtpPath *out,
                              MhSmtpError *code_out, char **msg_out);
void mh_smtp__path_clear (MhSmtpPath *path);

/* RFC 3461 4: xtext = *( xchar / hexchar ), hexchar = "+" 2HEXDIG
 * (upper case), xchar = "!".."~" except "+" and "=". */
gboolean mh_smtp__xtext_valid (const char *s, gsize len);

/* Strict RFC 4648 base64 (padding required, no whitespace). */
gboolean mh_smtp__base64_valid (const char *s, gsize len);

G_END_DECLS
