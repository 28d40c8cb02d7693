/* lib/server imap.c: the IMAP service ("imap" on 143 with STARTTLS,
 * "imaps" on 993 with implicit TLS) over lib/server, the IMAP engine of
 * lib/proto/imap and the account stores of lib/delivery (README.md, IMAP).
 *
 * Design notes
 * - The engine owns the protocol (framing, literals, syntax, which
 *   commands are valid in which state) and answers BAD itself; this file
 *   is the host glue of imap-private.h: it pulls MhImapCommands, runs
 *   each on the worker pool, hands the response bytes back to the engine
 *   on the main loop, and keeps the session state (login, selected
 *   mailbox, enabled extensions).
 * - One command per session at a time. While a command runs (a worker
 *   job, a throttle delay, a response waiting for the client to read) no
 *   further command is taken from the engine; the engine keeps at most
 *   max_pending parsed commands and then stops reading, so a pipelining
 *   client is held by TCP, not by our memory.
 * - States of a connection here: IDLE (between commands), JOB (a worker
 *   job or a delayed reply of this session is pending: the main loop does
 *   not touch MhImapSession then), MORE (a handler returned
 *   MH_IMAP_RUN_MORE: it is called again once the engine's output fell
 *   below MH_IMAP_CHUNK, i.e. once the client read; a client that stops
 *   reading stops the handler, and lib/server stops draining the engine
 *   at MH_LIMIT_OUTPUT_BUFFER), AUTH (an AUTHENTICATE exchange waits for
 *   the client's next line) and IDLING (the IDLE command: the next line
 *   is DONE; store changes wake the session).
 * - Untagged updates (mh_imap__sync_view) go before the tagged line of
 *   every command run in the selected state, so a client sees what other
 *   sessions, processes (mh-deliver, mh-lmtpd) and tools (mutt) changed.
 *   The view of the store is a snapshot; the status counters tell cheaply
 *   whether anything changed, and only then is the folder read again and
 *   compared UID by UID. RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE
 *   and SEARCH (the UID forms may); then the old view stays until a
 *   command that allows them.
 * - IDLE: one MhStoreWatch (an eventfd that lib/store's process-wide
 *   inotify instance wakes on a change of the account's index, Maildir
 *   top, metadata file, or the folder's new/ and cur/) per account and
 *   folder, shared by every session idling there, polled by the main
 *   loop. A change marks the sessions and each runs one sync job; a
 *   session costs one pointer in the watch's list.
 * - Authentication: LOGIN and AUTHENTICATE PLAIN/LOGIN (SASL-IR) through
 *   lib/auth as lmtp.c does it: the SASL decoding on the main loop, the
 *   password hash on a worker, the throttle's delay as a timer. A
 *   password travels in clear text only over TLS, from loopback when
 *   [imap] plaintext_auth_loopback (Dovecot's rule: local connections
 *   count as secure), or anywhere with [auth] allow_plaintext. Otherwise
 *   LOGINDISABLED is advertised, no AUTH= mechanism is, and LOGIN gets
 *   NO [PRIVACYREQUIRED].
 * - Memory per idle session: this struct, the engine's buffers, the
 *   store view of the selected folder (a few bytes per message), one
 *   pointer in a shared watch. No thread, no main context of its own.
 */
#include "server-private.h"
#include "imap-private.h"
#include "mailhost/delivery.h"
#include "mailhost/imapd.h"

#include <glib-unix.h>
#include <string.h>

#define SVC_OF(im) (mh_server_session_get_service ((im)->session))
#define ID_OF(im) (mh_server_session_get_id ((im)->session))
#define PEER_OF(im) (mh_server_session_get_peer ((im)->session))

typedef struct
{
  gint refcount;
  MhDelivery *delivery;
  MhAuthenticator *auth;
  MhImapLimits limits;
  gboolean plaintext_loopback;
  char *data_dir;
  GHashTable *watches; /* "account\037folder" -> SharedWatch (main loop) */
} ImapService;

typedef enum
{
  BUSY_NONE,
  BUSY_JOB,   /* worker job or delayed reply pending */
  BUSY_MORE,  /* handler wants to go on once the client read */
  BUSY_AUTH,  /* AUTHENTICATE waits for the client's response line */
} Busy;

typedef struct _SharedWatch SharedWatch;

typedef struct
{
  ImapService *svc;
  MhServerSession *session; /* borrowed: the session owns us */
  MhImapEngine *e;
  MhImapSession s;
  Busy busy;
  MhImapCommand *cmd;        /* the command running (JOB, MORE, AUTH) */
  MhImapHandler handler;     /* its handler, for MORE */
  MhSaslServer *sasl;        /* AUTHENTICATE exchange */
  gboolean idling;
  gboolean idle_dirty;       /* the store changed (IDLE or NOTIFY) */
  SharedWatch *watch;
  char *watch_key;           /* the key of @watch */
  /* NOTIFY (RFC 5465): what the client was last told about mailboxes
   * other than the selected one; NULL while no NOTIFY is in force. */
  GHashTable *notify_status; /* folder -> MhStoreStatus* */
  GHashTable *notify_names;  /* folders that exist (set) */
  GHashTable *notify_subs;   /* subscribed folders (set) */
  gpointer notify_meta;      /* METADATA as last seen (imap-account.c) */
  gboolean compressing;
} Imap;

struct _SharedWatch
{
  ImapService *svc;
  char *key;
  MhStoreWatch *watch;
  GSource *source;
  GPtrArray *sessions; /* Imap*, borrowed */
};

static void
imap_service_unref (gpointer data)
{
  ImapService *svc = data;
  if (svc == NULL || !g_atomic_int_dec_and_test (&svc->refcount))
    return;
  mh_delivery_unref (svc->delivery);
  mh_authenticator_unref (svc->auth);
  g_free (svc->data_dir);
  g_hash_table_unref (svc->watches);
  g_free (svc);
}

/* ---- helpers for the handlers (imap-private.h) -------------------------- */

void
mh_imap__tagged (GString *out, const MhImapCommand *cmd, const char *status,
                 const char *code, const char *text)
{
  g_string_append (out, cmd->tag);
  g_string_append_c (out, ' ');
  g_string_append (out, status);
  if (code != NULL && *code)
    g_string_append_printf (out, " [%s]", code);
  g_string_append_c (out, ' ');
  /* Text may come from an error message: never let it break the line. */
  for (const char *p = text && *text ? text : status; *p; p++)
    g_string_append_c (out, (guchar) *p < 0x20 ? ' ' : *p);
  g_string_append (out, "\r\n");
}

gboolean
mh_imap__utf8 (MhImapSession *s)
{
  return (s->enabled & (MH_IMAP_ENABLED_UTF8 | MH_IMAP_ENABLED_REV2)) != 0;
}

/* Modified UTF-7 (RFC 3501 5.1.3): printable ASCII stands for itself,
 * "&" is "&-", everything else is UTF-16BE in base64 with ',' for '/'
 * between "&" and "-". */
static const char b64[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static char *
mutf7_encode (const char *utf8)
{
  GString *out = g_string_new (NULL);
  const char *p = utf8;
  while (*p)
    {
      gunichar c = g_utf8_get_char (p);
      if (c >= 0x20 && c <= 0x7e)
        {
          g_string_append (out, c == '&' ? "&-" : (char[]){ (char) c, 0 });
          p++;
          continue;
        }
      /* A run of characters outside printable ASCII. */
      GArray *u16 = g_array_new (FALSE, FALSE, sizeof (guint8));
      while (*p && !((c = g_utf8_get_char (p)) >= 0x20 && c <= 0x7e))
        {
          gunichar2 units[2];
          int n = 1;
          if (c >= 0x10000)
            {
              units[0] = (gunichar2) (0xd800 + ((c - 0x10000) >> 10));
              units[1] = (gunichar2) (0xdc00 + ((c - 0x10000) & 0x3ff));
              n = 2;
            }
          else
            units[0] = (gunichar2) c;
          for (int i = 0; i < n; i++)
            {
              guint8 b[2] = { (guint8) (units[i] >> 8),
                              (guint8) (units[i] & 0xff) };
              g_array_append_vals (u16, b, 2);
            }
          p = g_utf8_next_char (p);
        }
      g_string_append_c (out, '&');
      guint32 bits = 0;
      int nbits = 0;
      for (guint i = 0; i < u16->len; i++)
        {
          bits = (bits << 8) | g_array_index (u16, guint8, i);
          nbits += 8;
          while (nbits >= 6)
            {
              nbits -= 6;
              g_string_append_c (out, b64[(bits >> nbits) & 0x3f]);
            }
        }
      if (nbits > 0)
        g_string_append_c (out, b64[(bits << (6 - nbits)) & 0x3f]);
      g_string_append_c (out, '-');
      g_array_unref (u16);
    }
  return g_string_free (out, FALSE);
}

static int
b64_value (char c)
{
  const char *p = c ? strchr (b64, c) : NULL;
  return p ? (int) (p - b64) : -1;
}

/* NULL if @s is not canonical modified UTF-7. */
static char *
mutf7_decode (const char *s)
{
  g_autoptr (GString) out = g_string_new (NULL);
  while (*s)
    {
      guchar c = (guchar) *s;
      if (c < 0x20 || c > 0x7e)
        return NULL;
      if (c != '&')
        {
          g_string_append_c (out, (char) c);
          s++;
          continue;
        }
      s++;
      if (*s == '-')
        {
          g_string_append_c (out, '&');
          s++;
          continue;
        }
      GArray *units = g_array_new (FALSE, FALSE, sizeof (gunichar2));
      guint32 bits = 0;
      int nbits = 0;
      int v;
      while ((v = b64_value (*s)) >= 0)
        {
          bits = (bits << 6) | (guint32) v;
          nbits += 6;
          if (nbits >= 16)
            {
              nbits -= 16;
              gunichar2 u = (gunichar2) ((bits >> nbits) & 0xffff);
              g_array_append_val (units, u);
            }
          s++;
        }
      gboolean ok = *s == '-' && units->len > 0 && nbits < 6
                    && (bits & ((1u << nbits) - 1)) == 0;
      /* ASCII must not be encoded (canonical form only), and a NUL or
       * another control character would cut or corrupt the name. */
      for (guint k = 0; ok && k < units->len; k++)
        ok = g_array_index (units, gunichar2, k) > 0x7f;
      char *dec = NULL;
      if (ok)
        dec = g_utf16_to_utf8 ((gunichar2 *) units->data, units->len, NULL,
                               NULL, NULL);
      g_array_unref (units);
      if (dec == NULL)
        return NULL;
      g_string_append (out, dec);
      g_free (dec);
      s++;
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

char *
mh_imap__folder_from_wire (MhImapSession *s, const char *wire,
                           char **why_out)
{
  char *name;
  if (mh_imap__utf8 (s))
    {
      if (!g_utf8_validate (wire, -1, NULL))
        {
          *why_out = g_strdup ("mailbox name is not valid UTF-8");
          return NULL;
        }
      name = g_strdup (wire);
    }
  else
    {
      name = mutf7_decode (wire);
      if (name == NULL)
        {
          *why_out = g_strdup_printf (
              "mailbox name '%s' is not valid modified UTF-7 (RFC 3501 "
              "5.1.3): write '&' as '&-'",
              wire);
          return NULL;
        }
    }
  /* INBOX is case-insensitive, also as the parent of its children. */
  if (g_ascii_strncasecmp (name, "INBOX", 5) == 0
      && (name[5] == '\0' || name[5] == '.'))
    memcpy (name, "INBOX", 5);
  return name;
}

void
mh_imap__append_folder (MhImapSession *s, GString *out, const char *folder)
{
  if (mh_imap__utf8 (s))
    {
      mh_imap_append_astring (out, folder, -1, TRUE);
      return;
    }
  g_autofree char *wire = mutf7_encode (folder);
  mh_imap_append_astring (out, wire, -1, FALSE);
}

/* ---- untagged updates --------------------------------------------------- */

static void
append_flags (MhImapSession *s, GString *out, MhStoreView *view, guint i,
              gboolean recent)
{
  static const struct
  {
    MhStoreFlags flag;
    const char *name;
  } names[] = {
    { MH_STORE_FLAG_SEEN, "\\Seen" },
    { MH_STORE_FLAG_ANSWERED, "\\Answered" },
    { MH_STORE_FLAG_FLAGGED, "\\Flagged" },
    { MH_STORE_FLAG_DELETED, "\\Deleted" },
    { MH_STORE_FLAG_DRAFT, "\\Draft" },
    { MH_STORE_FLAG_FORWARDED, "$Forwarded" },
  };
  MhStoreFlags f = mh_store_view_get_flags (view, i);
  gboolean first = TRUE;
  g_string_append_c (out, '(');
  for (gsize k = 0; k < G_N_ELEMENTS (names); k++)
    if (f & names[k].flag)
      {
        if (!first)
          g_string_append_c (out, ' ');
        g_string_append (out, names[k].name);
        first = FALSE;
      }
  g_auto (GStrv) kw = mh_store_view_get_keywords (view, i);
  for (char **k = kw; k && *k; k++)
    {
      /* $Forwarded is a system flag here (Maildir 'P') */
      if (g_ascii_strcasecmp (*k, "$Forwarded") == 0)
        continue;
      if (!first)
        g_string_append_c (out, ' ');
      g_string_append (out, *k);
      first = FALSE;
    }
  if (!(s->enabled & MH_IMAP_ENABLED_REV2) && recent)
    g_string_append (out, first ? "\\Recent" : " \\Recent");
  g_string_append_c (out, ')');
}

/* \Recent belongs to the session that claimed the message, for as long
 * as it keeps the mailbox selected, while each fresh read-write select
 * claims only what arrived since. s->priv keeps the session's recent
 * UIDs (sorted) with a reference to the view they were last made for:
 * a different view (another SELECT, CLOSE) starts over from its own. */
typedef struct
{
  MhStoreView *view;
  GArray *uids; /* guint32, ascending */
} SessionRecent;

void
mh_imap__session_free_priv (MhImapSession *s)
{
  SessionRecent *r = s->priv;
  if (r == NULL)
    return;
  mh_store_view_unref (r->view);
  g_array_unref (r->uids);
  g_free (r);
  s->priv = NULL;
}

static SessionRecent *
session_recent (MhImapSession *s)
{
  SessionRecent *r = s->priv;
  if (r != NULL && r->view == s->view)
    return r;
  mh_imap__session_free_priv (s);
  r = g_new0 (SessionRecent, 1);
  r->view = mh_store_view_ref (s->view);
  r->uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  guint n = mh_store_view_get_count (s->view);
  for (guint i = 0; i < n; i++)
    if (mh_store_view_is_recent (s->view, i))
      {
        guint32 uid = mh_store_view_get_uid (s->view, i);
        g_array_append_val (r->uids, uid);
      }
  s->priv = r;
  return r;
}

static gboolean
uid_in (GArray *uids, guint32 uid)
{
  guint lo = 0, hi = uids->len;
  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;
      guint32 v = g_array_index (uids, guint32, mid);
      if (v == uid)
        return TRUE;
      if (v < uid)
        lo = mid + 1;
      else
        hi = mid;
    }
  return FALSE;
}

gboolean
mh_imap__is_recent (MhImapSession *s, guint index)
{
  if (s->view == NULL || index >= mh_store_view_get_count (s->view))
    return FALSE;
  if (mh_store_view_is_recent (s->view, index))
    return TRUE;
  /* Claimed by this session at an earlier resync: still \Recent here. */
  return uid_in (session_recent (s)->uids,
                 mh_store_view_get_uid (s->view, index));
}

static void
append_fetch_flags (MhImapSession *s, GString *out, MhStoreView *view,
                    guint i, guint seq, GArray *recent_uids)
{
  gboolean recent = mh_store_view_is_recent (view, i)
                    || uid_in (recent_uids, mh_store_view_get_uid (view, i));
  g_string_append_printf (out, "* %u FETCH (", seq);
  if (s->enabled & MH_IMAP_ENABLED_QRESYNC)
    g_string_append_printf (out, "UID %u ", mh_store_view_get_uid (view, i));
  g_string_append (out, "FLAGS ");
  append_flags (s, out, view, i, recent);
  if (s->enabled & (MH_IMAP_ENABLED_CONDSTORE | MH_IMAP_ENABLED_QRESYNC))
    g_string_append_printf (out, " MODSEQ (%" G_GUINT64_FORMAT ")",
                            mh_store_view_get_modseq (view, i));
  g_string_append (out, ")\r\n");
}

static gboolean
same_strv (char **a, char **b)
{
  guint na = a ? g_strv_length (a) : 0, nb = b ? g_strv_length (b) : 0;
  if (na != nb)
    return FALSE;
  for (guint i = 0; i < na; i++)
    if (!g_strv_contains ((const char *const *) b, a[i]))
      return FALSE;
  return TRUE;
}

gboolean
mh_imap__sync_view (MhImapSession *s, GString *out, gboolean allow_expunge,
                    GError **error)
{
  if (s->folder == NULL || s->view == NULL || s->store == NULL)
    return TRUE;
  MhStoreStatus now = { .version = 1 }, then = { .version = 1 };
  if (!mh_store_folder_status (s->store, s->folder, &now, error))
    return FALSE;
  mh_store_view_get_status (s->view, &then);
  if (now.highestmodseq == then.highestmodseq && now.uidnext == then.uidnext
      && now.messages == then.messages && now.uidvalidity == then.uidvalidity)
    return TRUE;

  g_autoptr (MhStoreView) fresh
      = mh_store_select (s->store, s->folder, !s->read_only, error);
  if (fresh == NULL)
    return FALSE;
  MhStoreView *old = s->view;
  SessionRecent *rec = session_recent (s);
  g_autoptr (GArray) recent_now = g_array_new (FALSE, FALSE,
                                               sizeof (guint32));
  guint n_old = mh_store_view_get_count (old);
  guint n_new = mh_store_view_get_count (fresh);
  g_autoptr (GArray) gone = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr (GArray) changed = g_array_new (FALSE, FALSE, sizeof (guint));
  /* The session's \Recent: what it claimed before (rec) plus what this
   * select claimed; recent_now becomes rec's list once the client has
   * been told. */
  guint i = 0, j = 0, added = 0, recent_old = 0;
  while (i < n_old || j < n_new)
    {
      guint32 ou = i < n_old ? mh_store_view_get_uid (old, i) : G_MAXUINT32;
      guint32 nu = j < n_new ? mh_store_view_get_uid (fresh, j) : G_MAXUINT32;
      if (i < n_old && ou < nu)
        {
          if (uid_in (rec->uids, ou))
            recent_old++;
          g_array_append_val (gone, i);
          i++;
          continue;
        }
      if (j < n_new && nu < ou)
        added++;
      else
        {
          if (uid_in (rec->uids, ou))
            recent_old++;
          if (mh_store_view_get_modseq (old, i)
                  != mh_store_view_get_modseq (fresh, j)
              || mh_store_view_get_flags (old, i)
                     != mh_store_view_get_flags (fresh, j))
            g_array_append_val (changed, j);
          i++;
        }
      if (mh_store_view_is_recent (fresh, j) || uid_in (rec->uids, nu))
        g_array_append_val (recent_now, nu);
      j++;
    }

  if (gone->len > 0 && !allow_expunge)
    {
      /* Keep the client's numbering: report flag changes by the old
       * sequence numbers, the rest at the next command that may. */
      for (guint k = 0; k < changed->len; k++)
        {
          guint nj = g_array_index (changed, guint, k);
          gint oi = mh_store_view_find (old, mh_store_view_get_uid (fresh,
                                                                    nj));
          if (oi >= 0)
            append_fetch_flags (s, out, fresh, nj, (guint) oi + 1,
                                rec->uids);
        }
      return TRUE;
    }

  if (gone->len > 0)
    {
      if (s->enabled & MH_IMAP_ENABLED_QRESYNC)
        {
          g_autofree guint32 *uids = g_new (guint32, gone->len);
          for (guint k = 0; k < gone->len; k++)
            uids[k] = mh_store_view_get_uid (old,
                                             g_array_index (gone, guint, k));
          g_autofree char *set = mh_imap_seqset_format (uids, gone->len);
          g_string_append_printf (out, "* VANISHED %s\r\n", set);
        }
      else
        /* Highest first: each number is still right when it is read. */
        for (guint k = gone->len; k-- > 0;)
          g_string_append_printf (out, "* %u EXPUNGE\r\n",
                                  g_array_index (gone, guint, k) + 1);
    }

  g_auto (GStrv) kw_old = mh_store_view_get_folder_keywords (old);
  g_auto (GStrv) kw_new = mh_store_view_get_folder_keywords (fresh);
  if (!same_strv (kw_old, kw_new))
    {
      GString *kw = g_string_new (NULL);
      for (char **k = kw_new; k && *k; k++)
        if (g_ascii_strcasecmp (*k, "$Forwarded") != 0)
          g_string_append_printf (kw, " %s", *k);
      g_string_append_printf (out,
                              "* FLAGS (\\Answered \\Flagged \\Deleted "
                              "\\Seen \\Draft $Forwarded%s)\r\n",
                              kw->str);
      if (!s->read_only)
        g_string_append_printf (out,
                                "* OK [PERMANENTFLAGS (\\Answered \\Flagged "
                                "\\Deleted \\Seen \\Draft $Forwarded%s "
                                "\\*)] Flags permitted\r\n",
                                kw->str);
      g_string_free (kw, TRUE);
    }

  /* EXPUNGE already lowered the count (RFC 9051 7.5.1) */
  if (added > 0)
    g_string_append_printf (out, "* %u EXISTS\r\n", n_new);
  if (!(s->enabled & MH_IMAP_ENABLED_REV2)
      && (added > 0 || recent_old != recent_now->len))
    g_string_append_printf (out, "* %u RECENT\r\n", recent_now->len);

  for (guint k = 0; k < changed->len; k++)
    {
      guint nj = g_array_index (changed, guint, k);
      append_fetch_flags (s, out, fresh, nj, nj + 1, rec->uids);
    }

  mh_store_view_unref (s->view);
  s->view = g_steal_pointer (&fresh);
  mh_store_view_unref (rec->view);
  rec->view = mh_store_view_ref (s->view);
  g_array_unref (rec->uids);
  rec->uids = g_steal_pointer (&recent_now);
  s->known_modseq = MAX (s->known_modseq, now.highestmodseq);
  return TRUE;
}

/* ---- capabilities ------------------------------------------------------- */

static const char *const caps[] = {
  "IMAP4rev1",
  "IMAP4rev2", /* rev2 includes MOVE, UIDPLUS, ESEARCH */
  "SASL-IR",
  "ID",
  "ENABLE",
  "IDLE",
  "LITERAL+",
  "NAMESPACE",
  "UIDPLUS",
  "MOVE",
  "UNSELECT",
  "CHILDREN",
  "LIST-EXTENDED",
  "LIST-STATUS",
  "SPECIAL-USE",
  "CREATE-SPECIAL-USE",
  "CONDSTORE",
  "QRESYNC",
  "ESEARCH",
  "SEARCHRES",
  "SORT",
  "SORT=DISPLAY",
  "THREAD=REFERENCES",
  "THREAD=ORDEREDSUBJECT",
  "QUOTA",
  "QUOTA=RES-STORAGE",
  "QUOTA=RES-MESSAGE",
  "APPENDLIMIT=", /* the number is appended */
  "BINARY",
  "STATUS=SIZE",
  "SAVEDATE",
  "UTF8=ACCEPT",
  "NOTIFY",
  "METADATA",
  "COMPRESS=DEFLATE",
};

/* A password may cross this connection in clear (see the notes). */
static gboolean
secure_enough (Imap *im)
{
  if (mh_server_session_is_tls (im->session))
    return TRUE;
  if (mh_authenticator_plaintext_allowed (im->svc->auth, FALSE))
    return TRUE;
  const char *ip = mh_server_session_get_peer_ip (im->session);
  if (!im->svc->plaintext_loopback || ip == NULL)
    return FALSE;
  g_autoptr (GInetAddress) a = g_inet_address_new_from_string (ip);
  return a != NULL && g_inet_address_get_is_loopback (a);
}

static char *
capability_list (Imap *im)
{
  GString *c = g_string_new (NULL);
  gboolean authed = im->s.account != NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (caps); i++)
    {
      /* Before login: the base, TLS and login capabilities (and SASL-IR,
       * ID, ENABLE, IDLE, LITERAL+ which clients look for early). */
      if (!authed && i > 6)
        break;
      if (c->len)
        g_string_append_c (c, ' ');
      g_string_append (c, caps[i]);
      if (g_str_has_suffix (caps[i], "="))
        g_string_append_printf (c, "%" G_GUINT64_FORMAT,
                                im->svc->limits.max_append);
    }
  if (!authed)
    {
      if (mh_server_session_can_start_tls (im->session))
        g_string_append (c, " STARTTLS");
      gboolean ok = secure_enough (im);
      g_auto (GStrv) mechs = mh_authenticator_list_mechanisms (im->svc->auth,
                                                               ok);
      for (char **m = mechs; *m; m++)
        g_string_append_printf (c, " AUTH=%s", *m);
      if (!ok)
        g_string_append (c, " LOGINDISABLED");
    }
  return g_string_free (c, FALSE);
}

/* ---- sessions ----------------------------------------------------------- */

static void watch_leave (Imap *im);
static void notify_forget (Imap *im);

static gpointer
imap_new (MhServerSession *session, gpointer user_data)
{
  ImapService *svc = user_data;
  Imap *im = g_new0 (Imap, 1);
  im->svc = svc;
  im->session = session;
  im->e = mh_imap_engine_new (&svc->limits);
  im->s.tls_active = mh_server_session_is_tls (session);
  im->s.append_limit = svc->limits.max_append;
  im->s.data_dir = svc->data_dir; /* lives as long as the service */
  g_autofree char *caps_now = capability_list (im);
  g_autofree char *greeting
      = g_strdup_printf ("[CAPABILITY %s] libmailhost ready", caps_now);
  mh_imap_engine_greet (im->e, greeting);
  return im;
}

static void
session_forget_mailbox (MhImapSession *s)
{
  g_clear_pointer (&s->folder, g_free);
  g_clear_pointer (&s->view, mh_store_view_unref);
  g_clear_pointer (&s->saved_uids, g_array_unref);
  s->read_only = FALSE;
  s->known_modseq = 0;
}

static void
imap_free (gpointer engine)
{
  Imap *im = engine;
  watch_leave (im);
  if (im->s.cursor_free && im->s.cursor)
    im->s.cursor_free (im->s.cursor);
  session_forget_mailbox (&im->s);
  mh_imap__session_free_priv (&im->s);
  if (im->s.notify != NULL)
    mh_imap__notify_free (im->s.notify);
  notify_forget (im);
  g_free (im->s.account);
  g_clear_pointer (&im->s.store, mh_store_unref);
  mh_imap_command_free (im->cmd);
  g_clear_pointer (&im->sasl, mh_sasl_server_unref);
  mh_imap_engine_unref (im->e);
  g_free (im);
}

static gsize
imap_feed (gpointer engine, const guint8 *data, gsize len)
{
  return mh_imap_engine_feed (((Imap *) engine)->e, data, len);
}

static gsize
imap_peek (gpointer engine, const guint8 **data_out)
{
  return mh_imap_engine_peek_output (((Imap *) engine)->e, data_out);
}

static void
imap_consume (gpointer engine, gsize len)
{
  mh_imap_engine_consume_output (((Imap *) engine)->e, len);
}

static gboolean
imap_is_closing (gpointer engine)
{
  return mh_imap_engine_is_closing (((Imap *) engine)->e);
}

static gboolean
imap_is_closed (gpointer engine)
{
  Imap *im = engine;
  /* Closed once BYE went out and nothing of ours still runs. */
  return mh_imap_engine_is_closing (im->e) && im->busy != BUSY_JOB;
}

static gboolean
imap_want_read (gpointer engine)
{
  return mh_imap_engine_want_read (((Imap *) engine)->e);
}

static void
finish_command (Imap *im)
{
  g_clear_pointer (&im->cmd, mh_imap_command_free);
  im->handler = NULL;
  im->busy = BUSY_NONE;
}

/* Applies what a handler asked for (imap-private.h). */
static void
apply_session_changes (Imap *im)
{
  MhImapSession *s = &im->s;
  if (s->set_state)
    {
      mh_imap_engine_set_state (im->e, s->new_state);
      s->set_state = FALSE;
    }
  mh_imap_engine_set_utf8 (im->e, mh_imap__utf8 (s));
  if (s->logout)
    {
      s->logout = FALSE;
      mh_imap_engine_bye (im->e, "Logging out");
    }
}

/* ---- IDLE watches ------------------------------------------------------- */

static void
shared_watch_free (gpointer data)
{
  SharedWatch *w = data;
  if (w->source)
    {
      g_source_destroy (w->source);
      g_source_unref (w->source);
    }
  mh_store_watch_free (w->watch);
  g_ptr_array_unref (w->sessions);
  g_free (w->key);
  g_free (w);
}

static gboolean
watch_ready (gint fd, GIOCondition cond, gpointer data)
{
  SharedWatch *w = data;
  mh_store_watch_wait (w->watch, 0); /* consume the events */
  for (guint i = 0; i < w->sessions->len; i++)
    {
      Imap *im = g_ptr_array_index (w->sessions, i);
      im->idle_dirty = TRUE;
      mh_server_session_kick (im->session);
    }
  return G_SOURCE_CONTINUE;
}

static char *
watch_key (Imap *im)
{
  return g_strdup_printf ("%s\037%s", im->s.account,
                          im->s.folder ? im->s.folder : "");
}

static gboolean
watch_join (Imap *im, GError **error)
{
  g_autofree char *key = watch_key (im);
  g_free (im->watch_key);
  im->watch_key = g_strdup (key);
  SharedWatch *w = g_hash_table_lookup (im->svc->watches, key);
  if (w == NULL)
    {
      MhStoreWatch *sw = mh_store_watch_new (im->s.store, im->s.folder,
                                             error);
      if (sw == NULL)
        return FALSE;
      w = g_new0 (SharedWatch, 1);
      w->svc = im->svc;
      w->key = g_steal_pointer (&key);
      w->watch = sw;
      w->sessions = g_ptr_array_new ();
      w->source = g_unix_fd_source_new (mh_store_watch_get_fd (sw), G_IO_IN);
      g_source_set_callback (w->source, G_SOURCE_FUNC (watch_ready), w, NULL);
      g_source_set_static_name (w->source, "mh-imap-idle");
      g_source_attach (w->source, g_main_context_get_thread_default ());
      g_hash_table_insert (im->svc->watches, w->key, w);
    }
  g_ptr_array_add (w->sessions, im);
  im->watch = w;
  return TRUE;
}

static void
watch_leave (Imap *im)
{
  SharedWatch *w = im->watch;
  g_clear_pointer (&im->watch_key, g_free);
  if (w == NULL)
    return;
  im->watch = NULL;
  g_ptr_array_remove_fast (w->sessions, im);
  if (w->sessions->len == 0)
    g_hash_table_remove (w->svc->watches, w->key); /* frees w */
}

/* The subscriptions file is not part of the index, so its change
 * wakes no watch: tell the account's other sessions in this process
 * (NOTIFY SubscriptionChange). Another process's SUBSCRIBE is seen with
 * the next change of the index. */
static void
wake_account (Imap *im)
{
  g_autofree char *prefix = g_strdup_printf ("%s\037", im->s.account);
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, im->svc->watches);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (g_str_has_prefix (key, prefix))
      {
        SharedWatch *w = value;
        for (guint i = 0; i < w->sessions->len; i++)
          {
            Imap *other = g_ptr_array_index (w->sessions, i);
            if (other != im)
              {
                other->idle_dirty = TRUE;
                mh_server_session_kick (other->session);
              }
          }
      }
}

/* A session watches the store while it idles or while NOTIFY is in
 * force, on the selected folder (or the account's index alone). */
static void
update_watch (Imap *im)
{
  gboolean want = im->s.store != NULL
                  && (im->idling || im->s.notify != NULL);
  if (!want)
    {
      watch_leave (im);
      return;
    }
  g_autofree char *key = watch_key (im);
  if (im->watch != NULL && g_strcmp0 (key, im->watch_key) == 0)
    return;
  watch_leave (im);
  g_autoptr (GError) error = NULL;
  if (!watch_join (im, &error))
    mh_log_warning (SVC_OF (im), ID_OF (im), PEER_OF (im),
                    "cannot watch the store: %s", error->message);
}

/* ---- NOTIFY (RFC 5465) -------------------------------------------------- */

static void
notify_forget (Imap *im)
{
  g_clear_pointer (&im->notify_status, g_hash_table_unref);
  g_clear_pointer (&im->notify_names, g_hash_table_unref);
  g_clear_pointer (&im->notify_subs, g_hash_table_unref);
  g_clear_pointer (&im->notify_meta, mh_imap__metadata_snapshot_free);
}

static gboolean
group_covers (const MhImapNotifyGroup *g, const char *name, char **subs)
{
  switch (g->filter)
    {
    case MH_IMAP_NOTIFY_PERSONAL:
      return TRUE;
    case MH_IMAP_NOTIFY_INBOXES:
      return strcmp (name, "INBOX") == 0;
    case MH_IMAP_NOTIFY_SUBSCRIBED:
      return subs != NULL && g_strv_contains ((const char *const *) subs,
                                              name);
    case MH_IMAP_NOTIFY_MAILBOXES:
    case MH_IMAP_NOTIFY_SUBTREE:
      for (guint m = 0; g->mailboxes && g->mailboxes[m]; m++)
        {
          gsize l = strlen (g->mailboxes[m]);
          if (strcmp (name, g->mailboxes[m]) == 0
              || (g->filter == MH_IMAP_NOTIFY_SUBTREE
                  && strncmp (name, g->mailboxes[m], l) == 0
                  && name[l] == '.'))
            return TRUE;
        }
      return FALSE;
    default:
      return FALSE; /* SELECTED groups: handled by the update itself */
    }
}

/* The events the non-selected groups ask for about @name. */
static MhImapNotifyEvents
notify_events_for (MhImapNotify *n, const char *name, char **subs)
{
  MhImapNotifyEvents ev = 0;
  for (guint k = 0; k < n->groups->len; k++)
    {
      MhImapNotifyGroup *g = g_ptr_array_index (n->groups, k);
      if (group_covers (g, name, subs))
        ev |= g->events;
    }
  return ev;
}

static GHashTable *
string_set (char **names)
{
  GHashTable *h = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         NULL);
  for (char **p = names; p && *p; p++)
    g_hash_table_add (h, g_strdup (*p));
  return h;
}

static const MhImapNotifyGroup *notify_selected (MhImapSession *s);

/* RFC 5465 5.7/5.8: "* METADATA mbox entry" (RFC 5464 4.4.2, entry
 * names only) for each entry another session (or process) changed:
 * MailboxMetadataChange for the mailboxes a group covers (the SELECTED
 * group, when there is one, decides for the selected mailbox),
 * ServerMetadataChange for the server's entries in any group. Without
 * @out it only learns the current state. */
static void
notify_metadata (Imap *im, GString *out, char **subs)
{
  MhImapSession *s = &im->s;
  MhImapNotifyEvents any = 0;
  for (guint k = 0; k < s->notify->groups->len; k++)
    any |= ((MhImapNotifyGroup *) g_ptr_array_index (s->notify->groups, k))
               ->events;
  if (!(any & (MH_IMAP_NOTIFY_MAILBOX_METADATA_CHANGE
               | MH_IMAP_NOTIFY_SERVER_METADATA_CHANGE)))
    {
      g_clear_pointer (&im->notify_meta, mh_imap__metadata_snapshot_free);
      return;
    }
  g_autoptr (GPtrArray) changed = mh_imap__metadata_changes (
      s, &im->notify_meta);
  if (changed == NULL || out == NULL)
    return;
  const MhImapNotifyGroup *sel = notify_selected (s);
  for (guint i = 0; i < changed->len; i++)
    {
      const char *key = g_ptr_array_index (changed, i);
      const char *tab = strchr (key, '\t');
      if (tab == NULL)
        continue;
      g_autofree char *mbox = g_strndup (key, (gsize) (tab - key));
      gboolean want;
      if (mbox[0] == '\0')
        want = (any & MH_IMAP_NOTIFY_SERVER_METADATA_CHANGE) != 0;
      else if (sel != NULL && s->folder != NULL
               && strcmp (s->folder, mbox) == 0)
        want = (sel->events & MH_IMAP_NOTIFY_MAILBOX_METADATA_CHANGE) != 0;
      else
        want = (notify_events_for (s->notify, mbox, subs)
                & MH_IMAP_NOTIFY_MAILBOX_METADATA_CHANGE)
               != 0;
      if (!want)
        continue;
      g_string_append (out, "* METADATA ");
      if (mbox[0] == '\0')
        g_string_append (out, "\"\"");
      else
        mh_imap__append_folder (s, out, mbox);
      g_string_append_c (out, ' ');
      g_string_append (out, tab + 1);
      g_string_append (out, "\r\n");
    }
}

/* Compares the account with what the client was told and, with
 * @report, writes what changed: LIST for created and deleted mailboxes
 * (MailboxName), LIST for (un)subscriptions (SubscriptionChange),
 * STATUS for message events in other mailboxes (RFC 5465 5.3-5.5).
 * Without @report it only records the state (after the client's own
 * commands, which it knows about). Runs on a worker thread. */
static void
notify_scan (Imap *im, GString *out, gboolean report)
{
  MhImapSession *s = &im->s;
  MhImapNotify *n = s->notify;
  const MhImapNotifyEvents msg = MH_IMAP_NOTIFY_MESSAGE_NEW
                                 | MH_IMAP_NOTIFY_MESSAGE_EXPUNGE
                                 | MH_IMAP_NOTIFY_FLAG_CHANGE;
  if (n == NULL || s->store == NULL)
    {
      notify_forget (im);
      return;
    }
  g_auto (GStrv) names = mh_store_folder_list (s->store, NULL);
  g_auto (GStrv) subs = mh_store_subscriptions (s->store, NULL);
  if (names == NULL || subs == NULL)
    return;
  if (im->notify_status == NULL)
    {
      report = FALSE; /* the first scan only learns */
      im->notify_status = g_hash_table_new_full (g_str_hash, g_str_equal,
                                                 g_free, g_free);
    }
  if (report && im->notify_names != NULL)
    {
      for (char **p = names; *p; p++)
        if (!g_hash_table_contains (im->notify_names, *p)
            && (notify_events_for (n, *p, subs) & MH_IMAP_NOTIFY_MAILBOX_NAME))
          {
            g_string_append (out, "* LIST () \".\" ");
            mh_imap__append_folder (s, out, *p);
            g_string_append (out, "\r\n");
          }
      GHashTableIter it;
      gpointer key;
      g_hash_table_iter_init (&it, im->notify_names);
      while (g_hash_table_iter_next (&it, &key, NULL))
        if (!g_strv_contains ((const char *const *) names, key)
            && (notify_events_for (n, key, subs)
                & MH_IMAP_NOTIFY_MAILBOX_NAME))
          {
            g_string_append (out, "* LIST (\\NonExistent) \".\" ");
            mh_imap__append_folder (s, out, key);
            g_string_append (out, "\r\n");
          }
    }
  if (report && im->notify_subs != NULL)
    {
      for (char **p = subs; *p; p++)
        if (!g_hash_table_contains (im->notify_subs, *p)
            && (notify_events_for (n, *p, subs)
                & MH_IMAP_NOTIFY_SUBSCRIPTION_CHANGE))
          {
            g_string_append (out, "* LIST (\\Subscribed) \".\" ");
            mh_imap__append_folder (s, out, *p);
            g_string_append (out, "\r\n");
          }
      GHashTableIter it;
      gpointer key;
      g_hash_table_iter_init (&it, im->notify_subs);
      while (g_hash_table_iter_next (&it, &key, NULL))
        if (!g_strv_contains ((const char *const *) subs, key)
            && (notify_events_for (n, key, NULL)
                & MH_IMAP_NOTIFY_SUBSCRIPTION_CHANGE))
          {
            g_string_append (out, "* LIST () \".\" ");
            mh_imap__append_folder (s, out, key);
            g_string_append (out, "\r\n");
          }
    }
  notify_metadata (im, report ? out : NULL, subs);
  g_clear_pointer (&im->notify_names, g_hash_table_unref);
  g_clear_pointer (&im->notify_subs, g_hash_table_unref);
  im->notify_names = string_set (names);
  im->notify_subs = string_set (subs);

  gboolean condstore = (s->enabled & (MH_IMAP_ENABLED_CONDSTORE
                                      | MH_IMAP_ENABLED_QRESYNC))
                       != 0;
  for (char **p = names; *p; p++)
    {
      MhImapNotifyEvents ev = notify_events_for (n, *p, subs);
      if (!(ev & msg) || (s->folder && strcmp (s->folder, *p) == 0))
        {
          g_hash_table_remove (im->notify_status, *p);
          continue;
        }
      MhStoreStatus st = { .version = 1 };
      if (!mh_store_folder_status (s->store, *p, &st, NULL))
        continue;
      MhStoreStatus *old = g_hash_table_lookup (im->notify_status, *p);
      /* a mailbox new to us was announced by LIST (or is the first
       * scan's): its counters start here */
      gboolean changed
          = old != NULL
            && (old->messages != st.messages
            || old->uidnext != st.uidnext || old->unseen != st.unseen
            || old->uidvalidity != st.uidvalidity
                || ((ev & MH_IMAP_NOTIFY_FLAG_CHANGE)
                    && old->highestmodseq != st.highestmodseq));
      if (report && changed)
        {
          g_string_append (out, "* STATUS ");
          mh_imap__append_folder (s, out, *p);
          g_string_append_printf (out,
                                  " (MESSAGES %u UIDNEXT %u UIDVALIDITY %u "
                                  "UNSEEN %u",
                                  st.messages, st.uidnext, st.uidvalidity,
                                  st.unseen);
          if (condstore)
            g_string_append_printf (out, " HIGHESTMODSEQ %" G_GUINT64_FORMAT,
                                    st.highestmodseq);
          g_string_append (out, ")\r\n");
        }
      g_hash_table_replace (im->notify_status, g_strdup (*p),
                            g_memdup2 (&st, sizeof st));
    }
}

/* The NOTIFY group about the selected mailbox, or NULL. */
static const MhImapNotifyGroup *
notify_selected (MhImapSession *s)
{
  for (guint k = 0; s->notify && k < s->notify->groups->len; k++)
    {
      const MhImapNotifyGroup *g = g_ptr_array_index (s->notify->groups, k);
      if (g->filter == MH_IMAP_NOTIFY_SELECTED
          || g->filter == MH_IMAP_NOTIFY_SELECTED_DELAYED)
        return g;
    }
  return NULL;
}

/* ---- running handlers --------------------------------------------------- */

typedef struct
{
  Imap *im;                 /* only this job touches im->s while it runs */
  const MhImapCommand *cmd; /* im->cmd, or NULL for an IDLE sync */
  MhImapHandler handler;    /* NULL: sync only (NOOP, CHECK, IDLE) */
  const char *ok_text;      /* tagged OK text when there is no handler */
  GString *out;
  MhImapRun run;
} CmdJob;

static void
cmd_job_free (gpointer data)
{
  CmdJob *j = data;
  if (j->out)
    g_string_free (j->out, TRUE);
  g_free (j);
}

/* RFC 9051 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH
 * (their UID forms may); SORT and THREAD are treated as SEARCH. */
static gboolean
expunge_allowed (const MhImapCommand *cmd)
{
  if (cmd == NULL || cmd->uid)
    return TRUE;
  switch (cmd->kind)
    {
    case MH_IMAP_CMD_FETCH:
    case MH_IMAP_CMD_STORE:
    case MH_IMAP_CMD_SEARCH:
    case MH_IMAP_CMD_SORT:
    case MH_IMAP_CMD_THREAD:
      return FALSE;
    default:
      return TRUE;
    }
}

static void
cmd_job (gpointer data)
{
  CmdJob *j = data;
  MhImapSession *s = &j->im->s;
  g_autoptr (GError) error = NULL;
  gsize tag_at;

  if (j->handler == NULL && j->cmd == NULL)
    {
      /* an update between commands: IDLE, or NOTIFY in force */
      const MhImapNotifyGroup *g = notify_selected (s);
      gboolean selected = j->im->idling
                          || (g != NULL && g->events != 0);
      if (selected
          && !mh_imap__sync_view (s, j->out,
                                  j->im->idling
                                      || g->filter == MH_IMAP_NOTIFY_SELECTED,
                                  &error))
        mh_log_warning ("imap", NULL, NULL, "%s: cannot update %s: %s",
                        s->account, s->folder, error->message);
      if (s->notify != NULL)
        notify_scan (j->im, j->out, TRUE);
      return;
    }
  if (j->handler != NULL)
    {
      j->run = j->handler (s, j->cmd, j->out);
      if (j->run == MH_IMAP_RUN_MORE)
        return;
      if (s->notify != NULL || j->im->notify_status != NULL)
        notify_scan (j->im, NULL, FALSE); /* the client saw its own */
      /* The handler's last line is its tagged reply: updates go before
       * it. SELECT and EXAMINE made a fresh view already. */
      if (j->cmd->kind == MH_IMAP_CMD_SELECT
          || j->cmd->kind == MH_IMAP_CMD_EXAMINE || s->folder == NULL)
        return;
      tag_at = j->out->len >= 2 ? j->out->len - 2 : 0;
      while (tag_at > 0 && j->out->str[tag_at - 1] != '\n')
        tag_at--;
    }
  else
    tag_at = j->out->len;

  GString *upd = g_string_new (NULL);
  if (!mh_imap__sync_view (s, upd, expunge_allowed (j->cmd), &error))
    {
      if (g_error_matches (error, MH_STORE_ERROR, MH_STORE_ERROR_NOT_FOUND))
        {
          /* The mailbox is gone (deleted or renamed elsewhere). */
          session_forget_mailbox (s);
          s->set_state = TRUE;
          s->new_state = MH_IMAP_STATE_AUTHENTICATED;
          g_string_append (upd, "* OK [CLOSED] The selected mailbox was "
                                "deleted or renamed by another session\r\n");
        }
      else
        mh_log_warning ("imap", NULL, NULL, "%s: cannot update %s: %s",
                        s->account, s->folder, error->message);
    }
  g_string_insert_len (j->out, (gssize) tag_at, upd->str, (gssize) upd->len);
  g_string_free (upd, TRUE);
  if (j->handler == NULL && j->cmd != NULL)
    mh_imap__tagged (j->out, j->cmd, "OK", NULL, j->ok_text);
}

static void handle_events_now (Imap *im);

static void
cmd_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  Imap *im = user_data;
  CmdJob *j = data;
  mh_imap_engine_write (im->e, (const guint8 *) j->out->str, j->out->len);
  if (j->run == MH_IMAP_RUN_MORE)
    {
      im->busy = BUSY_MORE;
      return; /* handle_events goes on once the client read */
    }
  apply_session_changes (im);
  if (j->cmd != NULL
      && (j->cmd->kind == MH_IMAP_CMD_SUBSCRIBE
          || j->cmd->kind == MH_IMAP_CMD_UNSUBSCRIBE
          || j->cmd->kind == MH_IMAP_CMD_SETMETADATA))
    wake_account (im);
  if (j->cmd == NULL)
    im->busy = BUSY_NONE; /* an update; IDLE or NOTIFY goes on */
  else
    finish_command (im);
  update_watch (im); /* NOTIFY set or gone, another mailbox selected */
}

static void
run_job (Imap *im, const MhImapCommand *cmd, MhImapHandler handler,
         const char *ok_text)
{
  CmdJob *j = g_new0 (CmdJob, 1);
  j->im = im;
  j->cmd = cmd;
  j->handler = handler;
  j->ok_text = ok_text;
  j->out = g_string_new (NULL);
  im->busy = BUSY_JOB;
  mh_server_session_run_blocking (im->session, cmd_job, j, cmd_job_free,
                                  cmd_done, im);
}

/* ---- LOGIN and AUTHENTICATE --------------------------------------------- */

typedef struct
{
  ImapService *svc;
  char *user;                /* LOGIN */
  char *password;            /* LOGIN, wiped */
  MhSaslCredentials *creds;  /* AUTHENTICATE */
  char *service;
  char *peer_ip;
  /* out */
  MhAccountInfo *account;
  MhStore *store;
  guint delay_ms;
  GError *error;
} AuthJob;

static void
auth_job_free (gpointer data)
{
  AuthJob *j = data;
  imap_service_unref (j->svc);
  g_free (j->user);
  if (j->password)
    {
      mh_core__wipe (j->password, strlen (j->password));
      g_free (j->password);
    }
  mh_sasl_credentials_free (j->creds);
  g_free (j->service);
  g_free (j->peer_ip);
  g_clear_pointer (&j->account, mh_account_info_unref);
  g_clear_pointer (&j->store, mh_store_unref);
  g_clear_error (&j->error);
  g_free (j);
}

static void
auth_job (gpointer data)
{
  AuthJob *j = data;
  gint64 now = g_get_monotonic_time ();
  if (j->creds)
    j->account = mh_authenticator_check (j->svc->auth, j->creds, j->service,
                                         j->peer_ip, now, &j->delay_ms,
                                         &j->error);
  else
    j->account = mh_authenticator_check_password (
        j->svc->auth, j->user, j->password, j->service, j->peer_ip, now,
        &j->delay_ms, &j->error);
  if (j->account == NULL)
    return;
  /* Opening the store is disk work too: do it here, not at SELECT. */
  j->store = mh_delivery_get_store (
      j->svc->delivery, mh_account_info_get_ascii_address (j->account),
      &j->error);
  if (j->store == NULL)
    g_clear_pointer (&j->account, mh_account_info_unref);
}

/* The tagged reply for a failed exchange or check. */
static void
auth_reply_error (Imap *im, const MhImapCommand *cmd, const GError *error)
{
  const char *status = "NO", *code = "AUTHENTICATIONFAILED";
  const char *text = "Authentication failed";
  if (error->domain == MH_AUTH_ERROR)
    switch ((MhAuthError) error->code)
      {
      case MH_AUTH_ERROR_ENCRYPTION_REQUIRED:
        code = "PRIVACYREQUIRED", text = error->message;
        break;
      case MH_AUTH_ERROR_MECHANISM:
        code = "CANNOT", text = error->message;
        break;
      case MH_AUTH_ERROR_MALFORMED:
      case MH_AUTH_ERROR_TOO_LONG:
      case MH_AUTH_ERROR_TOO_MANY_STEPS:
      case MH_AUTH_ERROR_STATE:
        status = "BAD", code = NULL, text = error->message;
        break;
      case MH_AUTH_ERROR_CANCELLED:
        /* RFC 9051 6.2.2: a cancelled exchange gets BAD */
        status = "BAD", code = NULL, text = "AUTHENTICATE cancelled";
        break;
      case MH_AUTH_ERROR_UNAVAILABLE:
        code = "UNAVAILABLE",
        text = "Temporary authentication failure, try again later";
        break;
      case MH_AUTH_ERROR_AUTHZID:
        code = "AUTHORIZATIONFAILED",
        text = "Not allowed to act as that user";
        break;
      default: /* FAILED, DISABLED: never say which */
        break;
      }
  else if (error->domain != MH_AUTH_ERROR)
    {
      /* the account's store could not be opened */
      code = "UNAVAILABLE";
      text = "Your mailbox cannot be opened now, try again later";
      mh_log_error (SVC_OF (im), ID_OF (im), PEER_OF (im), "login: %s",
                    error->message);
    }
  mh_imap_engine_tagged (im->e, cmd, status, code, text);
}

static void
auth_finish (MhServerSession *session, gpointer data, gpointer user_data)
{
  Imap *im = user_data;
  AuthJob *j = data;
  gboolean authenticate = im->cmd->kind == MH_IMAP_CMD_AUTHENTICATE;
  if (j->account != NULL && mh_server_session_is_connected (session))
    {
      MhImapSession *s = &im->s;
      s->account = g_strdup (mh_account_info_get_ascii_address (j->account));
      s->store = g_steal_pointer (&j->store);
      s->directory = mh_delivery_get_directory (im->svc->delivery);
      s->quota = mh_delivery_get_quota (im->svc->delivery);
      mh_imap_engine_set_state (im->e, MH_IMAP_STATE_AUTHENTICATED);
      g_autofree char *c = capability_list (im);
      g_autofree char *code = g_strdup_printf ("CAPABILITY %s", c);
      mh_imap_engine_tagged (im->e, im->cmd, "OK", code, "Logged in");
      mh_log_info (SVC_OF (im), ID_OF (im), PEER_OF (im), "login %s",
                   s->account);
    }
  else if (j->error != NULL)
    auth_reply_error (im, im->cmd, j->error);
  if (authenticate)
    mh_imap_engine_auth_done (im->e);
  finish_command (im);
}

static void
auth_done (MhServerSession *session, gpointer data, gpointer user_data)
{
  AuthJob *j = data;
  if (j->delay_ms == 0)
    {
      auth_finish (session, j, user_data);
      return;
    }
  /* Success and failure alike wait (lib/auth); the job data is freed
   * after this returns, so the outcome moves to a timer of its own. */
  AuthJob *later = g_new0 (AuthJob, 1);
  later->svc = j->svc;
  g_atomic_int_inc (&later->svc->refcount);
  later->account = g_steal_pointer (&j->account);
  later->store = g_steal_pointer (&j->store);
  later->error = g_steal_pointer (&j->error);
  mh_server_session_call_later (session, j->delay_ms, auth_finish, later,
                                auth_job_free, user_data);
}

static void
start_auth_job (Imap *im, AuthJob *j)
{
  j->svc = im->svc;
  g_atomic_int_inc (&j->svc->refcount);
  j->service = g_strdup (SVC_OF (im));
  j->peer_ip = g_strdup (mh_server_session_get_peer_ip (im->session));
  im->busy = BUSY_JOB;
  mh_server_session_run_blocking (im->session, auth_job, j, auth_job_free,
                                  auth_done, im);
}

static void
do_login (Imap *im, MhImapCommand *cmd)
{
  if (!secure_enough (im))
    {
      mh_imap_engine_tagged (im->e, cmd, "NO", "PRIVACYREQUIRED",
                             "Plaintext authentication is disabled on this "
                             "connection; use STARTTLS or port 993 first");
      mh_imap_command_free (cmd);
      return;
    }
  if (cmd->user == NULL || cmd->password == NULL)
    {
      mh_imap_engine_tagged (im->e, cmd, "BAD", NULL,
                             "LOGIN needs a user name and a password");
      mh_imap_command_free (cmd);
      return;
    }
  AuthJob *j = g_new0 (AuthJob, 1);
  j->user = g_strdup (cmd->user);
  j->password = g_strdup (cmd->password);
  im->cmd = cmd;
  start_auth_job (im, j);
}

/* AUTHENTICATE (@first) and each AUTH_RESPONSE line. */
static void
do_authenticate (Imap *im, MhImapCommand *cmd, gboolean first)
{
  g_autoptr (GError) error = NULL;
  MhSaslStatus status;
  if (first)
    {
      im->cmd = cmd;
      g_clear_pointer (&im->sasl, mh_sasl_server_unref);
      im->sasl = mh_authenticator_sasl_new (im->svc->auth, cmd->mechanism,
                                            secure_enough (im), &error);
      if (im->sasl == NULL)
        {
          auth_reply_error (im, cmd, error);
          mh_imap_engine_auth_done (im->e);
          finish_command (im);
          return;
        }
      const char *ir = cmd->initial_response;
      status = mh_sasl_server_start (im->sasl, ir, ir ? strlen (ir) : 0,
                                     &error);
    }
  else
    {
      /* im->cmd stays the AUTHENTICATE: its tag ends the exchange */
      g_autoptr (MhImapCommand) resp = cmd;
      const char *line = resp->line ? resp->line : "";
      if (im->sasl == NULL)
        return; /* cannot happen: BUSY_AUTH implies an exchange */
      if (strcmp (line, "*") == 0)
        {
          g_set_error_literal (&error, MH_AUTH_ERROR,
                               MH_AUTH_ERROR_CANCELLED, "cancelled");
          status = MH_SASL_STATUS_FAILED;
        }
      else
        status = mh_sasl_server_feed (im->sasl, line, strlen (line),
                                      &error);
    }
  switch (status)
    {
    case MH_SASL_STATUS_CHALLENGE:
      im->busy = BUSY_AUTH;
      mh_imap_engine_continuation (im->e,
                                   mh_sasl_server_get_challenge (im->sasl));
      return;
    case MH_SASL_STATUS_FAILED:
      g_clear_pointer (&im->sasl, mh_sasl_server_unref);
      auth_reply_error (im, im->cmd, error);
      mh_imap_engine_auth_done (im->e);
      finish_command (im);
      return;
    case MH_SASL_STATUS_DONE:
      break;
    }
  AuthJob *j = g_new0 (AuthJob, 1);
  j->creds = mh_sasl_credentials_copy (
      mh_sasl_server_get_credentials (im->sasl));
  g_clear_pointer (&im->sasl, mh_sasl_server_unref); /* wipes its copy */
  start_auth_job (im, j);
}

/* ---- dispatch ----------------------------------------------------------- */

static MhImapHandler
handler_for (MhImapCommandKind kind)
{
  switch (kind)
    {
    case MH_IMAP_CMD_SELECT:
    case MH_IMAP_CMD_EXAMINE:
      return mh_imap__cmd_select;
    case MH_IMAP_CMD_LIST:
    case MH_IMAP_CMD_LSUB:
      return mh_imap__cmd_list;
    case MH_IMAP_CMD_NAMESPACE:
      return mh_imap__cmd_namespace;
    case MH_IMAP_CMD_STATUS:
      return mh_imap__cmd_status;
    case MH_IMAP_CMD_CREATE:
      return mh_imap__cmd_create;
    case MH_IMAP_CMD_DELETE:
      return mh_imap__cmd_delete;
    case MH_IMAP_CMD_RENAME:
      return mh_imap__cmd_rename;
    case MH_IMAP_CMD_SUBSCRIBE:
    case MH_IMAP_CMD_UNSUBSCRIBE:
      return mh_imap__cmd_subscribe;
    case MH_IMAP_CMD_ENABLE:
      return mh_imap__cmd_enable;
    case MH_IMAP_CMD_ID:
      return mh_imap__cmd_id;
    case MH_IMAP_CMD_FETCH:
      return mh_imap__cmd_fetch;
    case MH_IMAP_CMD_STORE:
      return mh_imap__cmd_store;
    case MH_IMAP_CMD_COPY:
    case MH_IMAP_CMD_MOVE:
      return mh_imap__cmd_copy;
    case MH_IMAP_CMD_EXPUNGE:
      return mh_imap__cmd_expunge;
    case MH_IMAP_CMD_CLOSE:
    case MH_IMAP_CMD_UNSELECT:
      return mh_imap__cmd_close;
    case MH_IMAP_CMD_APPEND:
      return mh_imap__cmd_append;
    case MH_IMAP_CMD_SEARCH:
    case MH_IMAP_CMD_SORT:
    case MH_IMAP_CMD_THREAD:
      return mh_imap__cmd_search;
    case MH_IMAP_CMD_GETQUOTA:
    case MH_IMAP_CMD_GETQUOTAROOT:
    case MH_IMAP_CMD_SETQUOTA:
      return mh_imap__cmd_quota;
    case MH_IMAP_CMD_GETMETADATA:
    case MH_IMAP_CMD_SETMETADATA:
      return mh_imap__cmd_metadata;
    case MH_IMAP_CMD_NOTIFY:
      return mh_imap__cmd_notify;
    default:
      return NULL;
    }
}

static void
do_idle (Imap *im, MhImapCommand *cmd)
{
  if (im->s.store != NULL)
    {
      im->idling = TRUE;
      update_watch (im);
    }
  if (im->watch == NULL)
    {
      im->idling = FALSE;
      mh_imap_engine_tagged (im->e, cmd, "NO", "SERVERBUG",
                             im->s.store != NULL
                                 ? "Cannot watch the mailbox for changes "
                                   "(the server log says why)"
                                 : "IDLE needs a logged-in session");
      mh_imap_command_free (cmd);
      return;
    }
  im->cmd = cmd;
  im->idle_dirty = TRUE; /* report what changed before IDLE at once */
  mh_imap_engine_continuation (im->e, "idling");
}

static void
do_done (Imap *im, MhImapCommand *cmd)
{
  im->idling = FALSE;
  update_watch (im); /* NOTIFY may keep it */
  im->idle_dirty = FALSE;
  mh_imap_command_free (im->cmd); /* the IDLE; DONE carries its tag */
  im->cmd = cmd;
  if (cmd->line != NULL)
    {
      /* the engine ended the IDLE on another line than DONE */
      mh_imap_engine_tagged (im->e, cmd, "BAD", NULL, "Expected DONE");
      finish_command (im);
      return;
    }
  run_job (im, cmd, NULL, "IDLE terminated");
}

static void
dispatch (Imap *im, MhImapCommand *cmd)
{
  MhServerSession *session = im->session;
  switch (cmd->kind)
    {
    case MH_IMAP_CMD_CAPABILITY:
      {
        g_autofree char *c = capability_list (im);
        g_autofree char *line = g_strdup_printf ("* CAPABILITY %s\r\n", c);
        mh_imap_engine_write (im->e, (const guint8 *) line, strlen (line));
        mh_imap_engine_tagged (im->e, cmd, "OK", NULL,
                               "Capability completed");
        break;
      }
    case MH_IMAP_CMD_LOGOUT:
      mh_imap_engine_bye (im->e, "Logging out");
      mh_imap_engine_tagged (im->e, cmd, "OK", NULL, "Logout completed");
      break;
    case MH_IMAP_CMD_STARTTLS:
      if (!mh_server_session_can_start_tls (session))
        {
          mh_imap_engine_tagged (im->e, cmd, "BAD", NULL,
                                 mh_server_session_is_tls (session)
                                     ? "TLS is already active"
                                     : "STARTTLS is not offered here");
          break;
        }
      mh_imap_engine_tagged (im->e, cmd, "OK", NULL,
                             "Begin TLS negotiation now");
      if (!mh_server_session_start_tls (session, NULL))
        mh_log_warning (SVC_OF (im), ID_OF (im), PEER_OF (im),
                        "STARTTLS failed to start");
      break;
    case MH_IMAP_CMD_COMPRESS:
      if (im->compressing)
        mh_imap_engine_tagged (im->e, cmd, "NO", "COMPRESSIONACTIVE",
                               "DEFLATE is already active");
      else if (g_ascii_strcasecmp (cmd->compress ? cmd->compress : "",
                                   "DEFLATE")
               != 0)
        mh_imap_engine_tagged (im->e, cmd, "BAD", NULL,
                               "Unknown compression mechanism; only "
                               "DEFLATE is supported");
      else
        {
          mh_imap_engine_tagged (im->e, cmd, "OK", NULL, "DEFLATE active");
          mh_imap_engine_start_compress (im->e);
          im->compressing = TRUE;
        }
      break;
    case MH_IMAP_CMD_LOGIN:
      do_login (im, cmd);
      return; /* cmd taken */
    case MH_IMAP_CMD_AUTHENTICATE:
      do_authenticate (im, cmd, TRUE);
      return;
    case MH_IMAP_CMD_AUTH_RESPONSE:
      if (im->busy == BUSY_AUTH)
        {
          im->busy = BUSY_NONE;
          do_authenticate (im, cmd, FALSE);
          return;
        }
      mh_imap_engine_tagged (im->e, cmd, "BAD", NULL,
                             "No AUTHENTICATE in progress");
      break;
    case MH_IMAP_CMD_IDLE:
      do_idle (im, cmd);
      return;
    case MH_IMAP_CMD_DONE:
      if (im->idling)
        {
          do_done (im, cmd);
          return;
        }
      mh_imap_engine_tagged (im->e, cmd, "BAD", NULL, "DONE without IDLE");
      break;
    case MH_IMAP_CMD_NOOP:
    case MH_IMAP_CMD_CHECK:
      im->cmd = cmd;
      run_job (im, cmd, NULL,
               cmd->kind == MH_IMAP_CMD_NOOP ? "NOOP completed"
                                             : "CHECK completed");
      return;
    default:
      {
        MhImapHandler h = handler_for (cmd->kind);
        if (h == NULL)
          {
            g_autofree char *text = g_strdup_printf (
                "%s is not available on this server yet", cmd->name);
            mh_imap_engine_tagged (im->e, cmd, "NO", "CANNOT", text);
            break;
          }
        im->cmd = cmd;
        im->handler = h;
        run_job (im, cmd, h, NULL);
        return;
      }
    }
  mh_imap_command_free (cmd);
}

static void
handle_events_now (Imap *im)
{
  while (!mh_imap_engine_is_closing (im->e))
    {
      switch (im->busy)
        {
        case BUSY_JOB:
          return;
        case BUSY_MORE:
          /* Go on only when the client has read most of the last part. */
          if (mh_imap_engine_output_size (im->e) >= MH_IMAP_CHUNK)
            return;
          {
            CmdJob *j = g_new0 (CmdJob, 1);
            j->im = im;
            j->cmd = im->cmd;
            j->handler = im->handler;
            j->out = g_string_new (NULL);
            im->busy = BUSY_JOB;
            mh_server_session_run_blocking (im->session, cmd_job, j,
                                            cmd_job_free, cmd_done, im);
          }
          return;
        case BUSY_AUTH:
        case BUSY_NONE:
          break;
        }
      if (im->idle_dirty && im->busy == BUSY_NONE
          && ((im->idling && im->s.folder != NULL) || im->s.notify != NULL))
        {
          im->idle_dirty = FALSE;
          run_job (im, NULL, NULL, NULL);
          return;
        }
      MhImapCommand *cmd = mh_imap_engine_next_command (im->e);
      if (cmd == NULL)
        return;
      if (im->busy == BUSY_AUTH && cmd->kind != MH_IMAP_CMD_AUTH_RESPONSE)
        {
          /* The engine reads the line after a challenge as the response;
           * anything else means the exchange is over. */
          g_clear_pointer (&im->sasl, mh_sasl_server_unref);
          finish_command (im);
          mh_imap_engine_auth_done (im->e);
        }
      dispatch (im, cmd);
    }
}

static void
imap_handle_events (gpointer engine, MhServerSession *session,
                    gpointer user_data)
{
  handle_events_now (engine);
}

static void
imap_tls_started (gpointer engine, MhServerSession *session,
                  gpointer user_data)
{
  Imap *im = engine;
  im->s.tls_active = TRUE;
  mh_imap_engine_starttls_done (im->e);
}

static const char *
imap_goodbye (MhServerGoodbye reason, gpointer user_data)
{
  switch (reason)
    {
    case MH_SERVER_GOODBYE_TOO_MANY_CONNECTIONS:
      return "* BYE [UNAVAILABLE] Too many connections\r\n";
    case MH_SERVER_GOODBYE_TOO_MANY_FROM_IP:
      return "* BYE [UNAVAILABLE] Too many connections from your address"
             "\r\n";
    case MH_SERVER_GOODBYE_IDLE_TIMEOUT:
      return "* BYE Autologout; idle for too long\r\n";
    case MH_SERVER_GOODBYE_COMMAND_TIMEOUT:
      return "* BYE Command timeout\r\n";
    case MH_SERVER_GOODBYE_SHUTDOWN:
      return "* BYE [UNAVAILABLE] Server shutting down\r\n";
    }
  return NULL;
}

static void
imap_engine_goodbye (gpointer engine, MhServerSession *session,
                     MhServerGoodbye reason, gpointer user_data)
{
  Imap *im = engine;
  mh_imap_engine_bye (im->e, reason == MH_SERVER_GOODBYE_SHUTDOWN
                                 ? "[UNAVAILABLE] Server shutting down"
                             : reason == MH_SERVER_GOODBYE_IDLE_TIMEOUT
                                 ? "Autologout; idle for too long"
                                 : "Command timeout");
}

static const MhService imap_service = {
  .version = MH_SERVICE_VERSION,
  .engine_new = imap_new,
  .engine_free = imap_free,
  .feed = imap_feed,
  .peek_output = imap_peek,
  .consume_output = imap_consume,
  .is_closing = imap_is_closing,
  .is_closed = imap_is_closed,
  .handle_events = imap_handle_events,
  .tls_started = imap_tls_started,
  .goodbye = imap_goodbye,
  .engine_goodbye = imap_engine_goodbye,
  .want_read = imap_want_read,
};

gboolean
mh_server_register_imap_service (MhServer *server, MhDelivery *delivery,
                                 MhAuthenticator *auth, GError **error)
{
  g_return_val_if_fail (server != NULL && delivery != NULL && auth != NULL,
                        FALSE);
  ImapService *svc = g_new0 (ImapService, 1);
  svc->refcount = 1;
  svc->delivery = mh_delivery_ref (delivery);
  svc->auth = mh_authenticator_ref (auth);
  svc->watches = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                        shared_watch_free);
  MhConfig *config = mh_delivery_get_config (delivery);
  svc->data_dir = g_strdup (mh_config_get_string (config, "general",
                                                  "data_dir"));
  svc->plaintext_loopback
      = mh_config_get_bool (config, "imap", "plaintext_auth_loopback");
  /* Engine limits: [imap] keys (the schema range-checks them) and the
   * message size limit for APPEND (APPENDLIMIT). */
  svc->limits.version = 1;
  svc->limits.max_line = (guint) mh_config_get_int (config, "imap",
                                                    "max_line");
  svc->limits.max_literal
      = (guint64) mh_config_get_int (config, "imap", "max_literal");
  svc->limits.max_append
      = (guint64) mh_config_get_int (config, "limits", "max_message_size");
  svc->limits.max_command
      = (guint64) mh_config_get_int (config, "imap", "max_command");
  svc->limits.max_pending
      = (guint) mh_config_get_int (config, "imap", "max_pending");
  svc->limits.max_bad_commands
      = (guint) mh_config_get_int (config, "imap", "max_bad_commands");

  /* One service object for both names: they share the IDLE watches. */
  g_atomic_int_inc (&svc->refcount);
  if (!mh_server_register_service (server, "imap", &imap_service, svc,
                                   imap_service_unref, error))
    {
      imap_service_unref (svc); /* the extra reference, not taken */
      imap_service_unref (svc);
      return FALSE;
    }
  if (!mh_server_register_service (server, "imaps", &imap_service, svc,
                                   imap_service_unref, error))
    {
      imap_service_unref (svc);
      return FALSE;
    }
  return TRUE;
}
