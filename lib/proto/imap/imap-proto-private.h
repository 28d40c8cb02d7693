/* lib/proto/imap internals shared between its files (not installed).
 *
 * The name differs from lib/server/imap-private.h on purpose: both
 * folders are on the private include path. */
#pragma once

#include "mailhost/imap.h"
#include "mailhost/limits.h"
#include "core/core-private.h"

G_BEGIN_DECLS

/* command.c */
MhImapSeqSet *mh_imap__seqset_new (void);
void mh_imap__seqset_free (MhImapSeqSet *set);
MhImapSeqSet *mh_imap__seqset_copy (const MhImapSeqSet *set);
MhImapSearchKey *mh_imap__search_key_new (MhImapSearchKeyType type);
void mh_imap__search_key_free (MhImapSearchKey *key);
MhImapSearchKey *mh_imap__search_key_copy (const MhImapSearchKey *key);
void mh_imap__fetch_att_free (MhImapFetchAtt *att);
void mh_imap__append_message_free (MhImapAppendMessage *msg);
MhImapCommand *mh_imap__command_new (void);

/* parse.c: the outcome of parsing one framed command. */
typedef enum
{
  MH_IMAP_PARSE_OK,
  MH_IMAP_PARSE_BAD, /* tagged (or untagged, tag "*") BAD */
  MH_IMAP_PARSE_NO,  /* tagged NO, e.g. [BADCHARSET] */
} MhImapParseResult;

/* Parses one complete command: its lines joined with CRLF, literals in
 * place ("{n}\r\n" then n bytes), no final CRLF. @whole, when not NULL,
 * owns the same bytes as @buf and lets APPEND messages be slices of it
 * rather than copies. On success *cmd_out is set. Otherwise *tag_out
 * (the tag, or "*" when none could be read), *code_out (nullable
 * response code) and *text_out say what to answer. */
MhImapParseResult mh_imap__parse (const guint8 *buf, gsize len, GBytes *whole,
                                  gboolean utf8, MhImapCommand **cmd_out,
                                  char **tag_out, char **code_out,
                                  char **text_out);

/* Reads "tag SP name [SP name2]" at the start of @buf for the framing's
 * literal limits; returns the tag (or NULL) and sets *is_append_out. */
char *mh_imap__peek_tag (const guint8 *buf, gsize len, gboolean *is_append_out);

/* TRUE if @c may appear in a tag (RFC 9051 9: ASTRING-CHAR but "+"). */
gboolean mh_imap__is_tag_char (guchar c);

G_END_DECLS
