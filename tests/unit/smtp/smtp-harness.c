#include "smtp-harness.h"

#include <string.h>

/* Output may exceed the engine's soft bound by one event's replies: the
 * largest is an LMTP DATA_END with max_recipients 512-octet lines. */
#define OUT_BOUND(r) (16 * 1024 + 1024 + 520 * (gsize) (r))

static void
log_escaped (GString *log, const guint8 *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      if (p[i] == '\r')
        g_string_append (log, "\\r");
      else if (p[i] == '\n')
        g_string_append (log, "\\n");
      else if (p[i] < 32 || p[i] >= 127)
        g_string_append_printf (log, "\\x%02x", p[i]);
      else
        g_string_append_c (log, (char) p[i]);
    }
}

static const char *
event_name (MhSmtpEventType t)
{
  static const char *names[] = {
    "NONE", "HELO", "MAIL", "RCPT", "DATA", "CHUNK", "END", "ABORTED",
    "RSET", "STARTTLS", "AUTH", "AUTH_RESPONSE", "AUTH_ABORTED", "TIMEOUT",
    "ABUSE", "QUIT",
  };
  return t < G_N_ELEMENTS (names) ? names[t] : "?";
}

static gboolean
local_is (const MhSmtpPath *p, const char *prefix)
{
  return g_str_has_prefix (p->local_part, prefix);
}

static void
close_chunk_log (SmtpRun *r, gboolean *in_chunk)
{
  if (*in_chunk)
    {
      g_string_append_c (r->log, '\n');
      *in_chunk = FALSE;
    }
}

static void
auth_check (SmtpRun *r, const guint8 *d, gsize n)
{
  /* PLAIN: authzid \0 authcid \0 passwd */
  const guint8 *a = n > 0 ? memchr (d, 0, n) : NULL;
  const guint8 *b = a ? memchr (a + 1, 0, n - (gsize) (a + 1 - d)) : NULL;
  gboolean ok = b != NULL && (gsize) (b - a - 1) == 4
                && memcmp (a + 1, "user", 4) == 0
                && n - (gsize) (b + 1 - d) == 4 && memcmp (b + 1, "pass", 4) == 0;
  if (ok)
    mh_smtp_engine_reply (r->e, 235, "2.7.0", "Authentication successful");
  else
    mh_smtp_engine_reply (r->e, 535, "5.7.8", "Authentication credentials "
                          "invalid");
  r->auth_step = 0;
}

static void
handle (SmtpRun *r, const MhSmtpEvent *ev)
{
  MhSmtpEngine *e = r->e;
  if (ev->type != MH_SMTP_EVENT_DATA_CHUNK)
    close_chunk_log (r, &r->in_chunk);
  switch (ev->type)
    {
    case MH_SMTP_EVENT_HELO:
      g_string_append_printf (r->log, "HELO %d %s\n", ev->helo.kind,
                              ev->helo.domain);
      mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_MAIL:
      {
        const MhSmtpEventMail *m = &ev->mail;
        g_string_append_printf (r->log, "MAIL <%s> size=%" G_GUINT64_FORMAT
                                " body=%d utf8=%d ret=%d envid=%s auth=%s "
                                "null=%d route=%d\n",
                                m->reverse_path->address, m->size, m->body,
                                m->smtputf8, m->ret,
                                m->envid ? m->envid : "-",
                                m->auth ? m->auth : "-",
                                m->reverse_path->is_null,
                                m->reverse_path->had_source_route);
        if (local_is (m->reverse_path, "reject"))
          mh_smtp_engine_reply (e, 550, "5.7.1", "Sender refused");
        else
          {
            g_free (r->mail_from);
            r->mail_from = g_strdup (m->reverse_path->address);
            g_ptr_array_set_size (r->rcpts, 0);
            mh_smtp_engine_accept (e);
          }
        break;
      }
    case MH_SMTP_EVENT_RCPT:
      {
        const MhSmtpEventRcpt *c = &ev->rcpt;
        g_string_append_printf (r->log, "RCPT <%s> local=%s domain=%s "
                                "notify=%u orcpt=%s;%s n=%u pm=%d lit=%d\n",
                                c->forward_path->address,
                                c->forward_path->local_part,
                                c->forward_path->domain
                                  ? c->forward_path->domain : "-",
                                c->notify,
                                c->orcpt_type ? c->orcpt_type : "-",
                                c->orcpt ? c->orcpt : "-", c->n_accepted,
                                c->forward_path->is_postmaster,
                                c->forward_path->domain_is_literal);
        if (local_is (c->forward_path, "unknown"))
          mh_smtp_engine_reply (e, 550, "5.1.1", "No such user");
        else
          {
            g_ptr_array_add (r->rcpts, g_strdup (c->forward_path->address));
            mh_smtp_engine_accept (e);
          }
        break;
      }
    case MH_SMTP_EVENT_DATA:
      g_string_append_printf (r->log, "DATA bdat=%d n=%u\n", ev->data.bdat,
                              ev->data.n_recipients);
      g_string_truncate (r->body, 0);
      if (r->mail_from && g_str_has_prefix (r->mail_from, "nodata@"))
        mh_smtp_engine_reply (e, 451, "4.3.0", "Spool unavailable");
      else
        mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_DATA_CHUNK:
      assert_true (ev->chunk.len > 0);
      assert_false (ev->any.needs_reply);
      if (!r->in_chunk)
        {
          g_string_append (r->log, "CHUNK ");
          r->in_chunk = TRUE;
        }
      log_escaped (r->log, ev->chunk.data, ev->chunk.len);
      g_string_append_len (r->body, (const char *) ev->chunk.data,
                           (gssize) ev->chunk.len);
      break;
    case MH_SMTP_EVENT_DATA_END:
      g_string_append_printf (r->log, "END size=%" G_GUINT64_FORMAT " n=%u\n",
                              ev->end.size, ev->end.n_replies);
      assert_int_equal (ev->end.size, r->body->len);
      g_ptr_array_add (r->bodies, g_strndup (r->body->str, r->body->len));
      if (mh_smtp_engine_get_role (e) == MH_SMTP_ROLE_LMTP)
        {
          assert_int_equal (ev->end.n_replies, r->rcpts->len);
          for (guint i = 0; i < r->rcpts->len; i++)
            {
              const char *a = r->rcpts->pdata[i];
              if (g_str_has_prefix (a, "full@"))
                mh_smtp_engine_reply (e, 452, "4.2.2", "Mailbox full");
              else
                {
                  g_autofree char *t = g_strdup_printf ("<%s> delivered", a);
                  mh_smtp_engine_reply (e, 250, "2.0.0", t);
                }
            }
        }
      else
        mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_DATA_ABORTED:
      g_string_append_printf (r->log, "ABORTED %d\n", ev->aborted.reason);
      break;
    case MH_SMTP_EVENT_RSET:
      g_string_append (r->log, "RSET\n");
      break;
    case MH_SMTP_EVENT_STARTTLS:
      g_string_append (r->log, "STARTTLS\n");
      mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_AUTH:
    case MH_SMTP_EVENT_AUTH_RESPONSE:
      g_string_append_printf (r->log, "%s %s %s %" G_GSIZE_FORMAT "\n",
                              event_name (ev->type), ev->auth.mechanism,
                              ev->auth.response ? ev->auth.response : "-",
                              ev->auth.decoded_len);
      if (g_str_equal (ev->auth.mechanism, "PLAIN"))
        {
          if (ev->type == MH_SMTP_EVENT_AUTH && ev->auth.response == NULL)
            mh_smtp_engine_reply (e, 334, NULL, "");
          else
            auth_check (r, ev->auth.decoded, ev->auth.decoded_len);
        }
      else if (g_str_equal (ev->auth.mechanism, "LOGIN"))
        {
          if (ev->type == MH_SMTP_EVENT_AUTH)
            {
              r->auth_step = 1;
              if (ev->auth.response != NULL && *ev->auth.response)
                {
                  g_free (r->auth_user);
                  r->auth_user = g_strndup ((const char *) ev->auth.decoded,
                                            ev->auth.decoded_len);
                  r->auth_step = 2;
                  mh_smtp_engine_reply (e, 334, NULL, "UGFzc3dvcmQ6");
                }
              else
                mh_smtp_engine_reply (e, 334, NULL, "VXNlcm5hbWU6");
            }
          else if (r->auth_step == 1)
            {
              g_free (r->auth_user);
              r->auth_user = g_strndup ((const char *) ev->auth.decoded,
                                        ev->auth.decoded_len);
              r->auth_step = 2;
              mh_smtp_engine_reply (e, 334, NULL, "UGFzc3dvcmQ6");
            }
          else
            {
              gboolean ok = g_strcmp0 (r->auth_user, "user") == 0
                            && ev->auth.decoded_len == 4
                            && memcmp (ev->auth.decoded, "pass", 4) == 0;
              r->auth_step = 0;
              if (ok)
                mh_smtp_engine_accept (e);
              else
                mh_smtp_engine_reply (e, 535, "5.7.8", "Bad credentials");
            }
        }
      else
        mh_smtp_engine_reply (e, 504, "5.5.4", "Not here");
      break;
    case MH_SMTP_EVENT_AUTH_ABORTED:
      g_string_append_printf (r->log, "AUTH_ABORTED %d\n",
                              ev->auth_aborted.reason);
      r->auth_step = 0;
      break;
    case MH_SMTP_EVENT_TIMEOUT:
      g_string_append_printf (r->log, "TIMEOUT %d\n", ev->timeout.in_data);
      break;
    case MH_SMTP_EVENT_ABUSE:
      g_string_append_printf (r->log, "ABUSE %d\n", ev->abuse.reason);
      break;
    case MH_SMTP_EVENT_QUIT:
      g_string_append (r->log, "QUIT\n");
      break;
    default:
      fail_msg ("unexpected event %d", ev->type);
    }
}

static void
drain (SmtpRun *r)
{
  gboolean again = TRUE;
  while (again)
    {
      MhSmtpEvent ev;
      again = FALSE;
      while (mh_smtp_engine_next_event (r->e, &ev))
        handle (r, &ev);
      const guint8 *p;
      gsize n = mh_smtp_engine_peek_output (r->e, &p);
      r->max_out_seen = MAX (r->max_out_seen, n);
      if (n > r->out_bound)
        fail_msg ("output grew to %" G_GSIZE_FORMAT " bytes", n);
      if (n > 0)
        {
          g_string_append_len (r->out, (const char *) p, (gssize) n);
          mh_smtp_engine_consume_output (r->e, n);
          again = TRUE; /* the engine may have paused on full output */
        }
    }
}

static void
feed_piece (SmtpRun *r, const char *p, gsize n)
{
  guint stuck = 0;
  while (n > 0)
    {
      gsize used = mh_smtp_engine_feed (r->e, (const guint8 *) p, n);
      p += used;
      n -= used;
      drain (r);
      stuck = used == 0 ? stuck + 1 : 0;
      if (stuck > 1)
        fail_msg ("engine takes no input and has no event to give");
    }
}

void
smtp_run_feed (SmtpRun *r, const char *input, gsize len, gsize step)
{
  gsize off = 0;
  while (off < len)
    {
      gsize n = step == 0 ? len - off : MIN (step, len - off);
      feed_piece (r, input + off, n);
      off += n;
    }
  drain (r);
}

SmtpRun *
smtp_run (const SmtpSetup *s, const char *input, gsize len, gsize step)
{
  SmtpRun *r = g_new0 (SmtpRun, 1);
  r->log = g_string_new (NULL);
  r->out = g_string_new (NULL);
  r->body = g_string_new (NULL);
  r->bodies = g_ptr_array_new_with_free_func (g_free);
  r->rcpts = g_ptr_array_new_with_free_func (g_free);

  r->e = mh_smtp_engine_new (s->role, &s->limits);
  r->out_bound = OUT_BOUND (s->limits.max_recipients
                              ? s->limits.max_recipients
                              : MH_LIMIT_SMTP_RCPTS_MAX);
  MhSmtpExtensions ext = s->ext != 0 ? s->ext : MH_SMTP_EXT_DEFAULT;
  if (s->starttls)
    ext |= MH_SMTP_EXT_STARTTLS;
  mh_smtp_engine_set_extensions (r->e, ext);
  mh_smtp_engine_set_auth_mechanisms (r->e, s->mechs);
  if (s->set_policy)
    mh_smtp_engine_set_policy (r->e, s->policy);
  mh_smtp_engine_set_tls_active (r->e, s->tls_active);
  mh_smtp_engine_greet (r->e, "mx.test", s->greet_code ? s->greet_code : 220,
                        NULL);
  drain (r);

  gsize tls_at = s->tls_at > 0 ? (gsize) s->tls_at : len + 1;
  if (tls_at <= len)
    {
      smtp_run_feed (r, input, tls_at, step);
      /* the handshake: only after the engine said 220 */
      close_chunk_log (r, &r->in_chunk);
      r->discarded = mh_smtp_engine_starttls_done (r->e);
      g_string_append_printf (r->log, "TLS discarded=%" G_GUINT64_FORMAT "\n",
                              r->discarded);
      smtp_run_feed (r, input + tls_at, len - tls_at, step);
    }
  else
    smtp_run_feed (r, input, len, step);
  close_chunk_log (r, &r->in_chunk);
  return r;
}

void
smtp_run_free (SmtpRun *r)
{
  if (r == NULL)
    return;
  mh_smtp_engine_unref (r->e);
  g_string_free (r->log, TRUE);
  g_string_free (r->out, TRUE);
  g_string_free (r->body, TRUE);
  g_ptr_array_unref (r->bodies);
  g_ptr_array_unref (r->rcpts);
  g_free (r->mail_from);
  g_free (r->auth_user);
  g_free (r);
}

SmtpRun *
smtp_run_both (const SmtpSetup *s, const char *input, gssize len)
{
  gsize n = len < 0 ? strlen (input) : (gsize) len;
  SmtpRun *whole = smtp_run (s, input, n, 0);
  const gsize steps[] = { 1, 7 };
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      g_autoptr (SmtpRun) cut = smtp_run (s, input, n, steps[i]);
      if (!g_string_equal (whole->log, cut->log))
        fail_msg ("events differ when fed in %" G_GSIZE_FORMAT
                  "-byte pieces:\n--- whole\n%s--- pieces\n%s", steps[i],
                  whole->log->str, cut->log->str);
      if (!g_string_equal (whole->out, cut->out))
        fail_msg ("output differs when fed in %" G_GSIZE_FORMAT
                  "-byte pieces:\n--- whole\n%s--- pieces\n%s", steps[i],
                  whole->out->str, cut->out->str);
      assert_int_equal (mh_smtp_engine_is_closing (whole->e),
                        mh_smtp_engine_is_closing (cut->e));
    }
  return whole;
}

void
smtp_assert_has (const GString *hay, const char *needle)
{
  if (strstr (hay->str, needle) == NULL)
    fail_msg ("expected '%s' in:\n%s", needle, hay->str);
}

void
smtp_assert_lacks (const GString *hay, const char *needle)
{
  if (strstr (hay->str, needle) != NULL)
    fail_msg ("did not expect '%s' in:\n%s", needle, hay->str);
}

guint
smtp_count (const GString *hay, const char *needle)
{
  guint n = 0;
  gsize nl = strlen (needle);
  for (const char *p = hay->str; (p = strstr (p, needle)) != NULL; p += nl)
    n++;
  return n;
}

char *
smtp_codes (const GString *out)
{
  GString *c = g_string_new (NULL);
  const char *p = out->str;
  while (*p)
    {
      const char *eol = strstr (p, "\r\n");
      if (eol == NULL)
        break;
      if (eol - p >= 4 && p[3] == ' ')
        {
          if (c->len)
            g_string_append_c (c, ' ');
          g_string_append_len (c, p, 3);
        }
      else if (eol - p == 3)
        {
          if (c->len)
            g_string_append_c (c, ' ');
          g_string_append_len (c, p, 3);
        }
      p = eol + 2;
    }
  return g_string_free (c, FALSE);
}
