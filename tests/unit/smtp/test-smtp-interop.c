/* The engine against a real client: Python's smtplib, talking over a
 * socketpair to a tiny host loop in this process. Proves that what the
 * engine writes (EHLO list, AUTH challenges, multi-line replies, enhanced
 * codes) is what a deployed client understands, and that what such a
 * client sends (dot-stuffing, SMTPUTF8, AUTH PLAIN/LOGIN) comes out right.
 * Skipped when /usr/bin/python3 is missing. */
#include "mh-test.h"
#include "mailhost/smtp.h"

#include <errno.h>
#include <gio/gio.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

typedef struct
{
  GPtrArray *bodies;
  GString *body;
  GString *log;
  char *login_user;
  int login_step;
} Host;

static void
auth_answer (MhSmtpEngine *e, Host *h, const MhSmtpEvent *ev)
{
  const char *mech = ev->auth.mechanism;
  if (g_str_equal (mech, "PLAIN"))
    {
      if (ev->auth.response == NULL)
        {
          mh_smtp_engine_reply (e, 334, NULL, "");
          return;
        }
      /* "\0user\0pass" */
      gboolean ok = ev->auth.decoded_len == 10
                    && memcmp (ev->auth.decoded, "\0user\0pass", 10) == 0;
      mh_smtp_engine_reply (e, ok ? 235 : 535, ok ? "2.7.0" : "5.7.8",
                            ok ? "Authenticated" : "Bad credentials");
      return;
    }
  /* LOGIN */
  if (ev->type == MH_SMTP_EVENT_AUTH && ev->auth.response == NULL)
    {
      h->login_step = 1;
      mh_smtp_engine_reply (e, 334, NULL, "VXNlcm5hbWU6");
      return;
    }
  if (h->login_step <= 1)
    {
      g_free (h->login_user);
      h->login_user = g_strndup ((const char *) ev->auth.decoded,
                                 ev->auth.decoded_len);
      h->login_step = 2;
      mh_smtp_engine_reply (e, 334, NULL, "UGFzc3dvcmQ6");
      return;
    }
  gboolean ok = g_strcmp0 (h->login_user, "user") == 0
                && ev->auth.decoded_len == 4
                && memcmp (ev->auth.decoded, "pass", 4) == 0;
  h->login_step = 0;
  mh_smtp_engine_reply (e, ok ? 235 : 535, ok ? "2.7.0" : "5.7.8",
                        ok ? "Authenticated" : "Bad credentials");
}

static void
handle (MhSmtpEngine *e, Host *h, const MhSmtpEvent *ev)
{
  switch (ev->type)
    {
    case MH_SMTP_EVENT_MAIL:
      g_string_append_printf (h->log, "MAIL %s utf8=%d body=%d size=%"
                              G_GUINT64_FORMAT "\n",
                              ev->mail.reverse_path->address,
                              ev->mail.smtputf8, ev->mail.body,
                              ev->mail.size);
      mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_RCPT:
      g_string_append_printf (h->log, "RCPT %s\n",
                              ev->rcpt.forward_path->address);
      if (g_str_has_prefix (ev->rcpt.forward_path->local_part, "unknown"))
        mh_smtp_engine_reply (e, 550, "5.1.1", "No such user here");
      else
        mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_DATA:
      g_string_truncate (h->body, 0);
      mh_smtp_engine_accept (e);
      break;
    case MH_SMTP_EVENT_DATA_CHUNK:
      g_string_append_len (h->body, (const char *) ev->chunk.data,
                           (gssize) ev->chunk.len);
      break;
    case MH_SMTP_EVENT_DATA_END:
      g_ptr_array_add (h->bodies, g_strdup (h->body->str));
      mh_smtp_engine_reply (e, 250, "2.0.0", "Queued as X1\nThank you");
      break;
    case MH_SMTP_EVENT_AUTH:
    case MH_SMTP_EVENT_AUTH_RESPONSE:
      g_string_append_printf (h->log, "AUTH %s\n", ev->auth.mechanism);
      auth_answer (e, h, ev);
      break;
    default:
      if (ev->any.needs_reply)
        mh_smtp_engine_accept (e);
      break;
    }
}

/* Runs @script (python, the socket is fd 3) against one engine. */
static void
run_client (const char *script, const char *const *mechs, Host *h,
            char **client_out)
{
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (
    G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_take_fd (l, sv[1], 3);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_launcher_spawn (l, &error, PYTHON,
                                                           "-c", script,
                                                           NULL);
  assert_non_null (p);

  g_autoptr (MhSmtpEngine) e = mh_smtp_engine_new (MH_SMTP_ROLE_SMTP, NULL);
  mh_smtp_engine_set_auth_mechanisms (e, mechs);
  mh_smtp_engine_greet (e, "mx.test", 220, NULL);
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  guint8 buf[4096];
  gboolean eof = FALSE;
  while (!mh_smtp_engine_is_closed (e) && !eof)
    {
      MhSmtpEvent ev;
      while (mh_smtp_engine_next_event (e, &ev))
        handle (e, h, &ev);
      const guint8 *o;
      gsize n;
      while ((n = mh_smtp_engine_peek_output (e, &o)) > 0)
        {
          ssize_t w = write (sv[0], o, n);
          assert_true (w > 0);
          mh_smtp_engine_consume_output (e, (gsize) w);
        }
      if (mh_smtp_engine_is_closing (e))
        break;
      struct pollfd pfd = { .fd = sv[0], .events = POLLIN };
      int pr = poll (&pfd, 1, 100);
      if (g_get_monotonic_time () > deadline)
        fail_msg ("client did not finish in time; log so far:\n%s",
                  h->log->str);
      if (pr <= 0)
        continue;
      ssize_t r = read (sv[0], buf, sizeof buf);
      if (r <= 0)
        {
          eof = TRUE;
          break;
        }
      gsize off = 0;
      while (off < (gsize) r)
        {
          off += mh_smtp_engine_feed (e, buf + off, (gsize) r - off);
          while (mh_smtp_engine_next_event (e, &ev))
            handle (e, h, &ev);
        }
      mh_smtp_engine_tick (e, g_get_monotonic_time ());
    }
  close (sv[0]);
  g_autofree char *out = NULL;
  assert_true (g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL,
                                              &error));
  if (!g_subprocess_get_if_exited (p) || g_subprocess_get_exit_status (p) != 0)
    fail_msg ("client failed:\n%s\nhost log:\n%s", out, h->log->str);
  *client_out = g_steal_pointer (&out);
}

static const char prologue[] =
  "import smtplib, socket, sys\n"
  "s = socket.socket(fileno=3)\n"
  "class C(smtplib.SMTP):\n"
  "    def _get_socket(self, host, port, timeout):\n"
  "        return s\n"
  "c = C()\n"
  "code, msg = c.connect('mx.test', 25)\n"
  "assert code == 220, (code, msg)\n";

static void
test_smtplib_send_and_auth (void **state)
{
  if (!g_file_test (PYTHON, G_FILE_TEST_IS_EXECUTABLE))
    skip ();
  g_autofree char *script = g_strconcat (
    prologue,
    "code, msg = c.ehlo('client.example')\n"
    "assert code == 250\n"
    "for x in ('pipelining', '8bitmime', 'smtputf8', 'size', 'dsn',\n"
    "          'enhancedstatuscodes', 'chunking', 'auth'):\n"
    "    assert c.has_extn(x), x\n"
    "assert c.esmtp_features['size'] == '20971520'\n"
    "c.login('user', 'pass')\n"
    "msg = 'Subject: t\\r\\n\\r\\n.starts with a dot\\r\\n..two\\r\\n.\\r\\nend\\r\\n'\n"
    "bad = c.sendmail('a@client.example', ['x@mx.test', 'unknown@mx.test'],\n"
    "                 msg)\n"
    "assert list(bad) == ['unknown@mx.test'], bad\n"
    "assert bad['unknown@mx.test'][0] == 550\n"
    "c.sendmail('j\\u00f6rg@b\\u00fccher.example', ['\\u00e9t\\u00e9@mx.test'],\n"
    "           'Subject: u\\r\\n\\r\\nhi\\r\\n'.encode(),\n"
    "           mail_options=['SMTPUTF8', 'BODY=8BITMIME'])\n"
    "try:\n"
    "    c.sendmail('a@client.example', ['unknown2@mx.test'], 'x')\n"
    "    sys.exit('refused recipients must raise')\n"
    "except smtplib.SMTPRecipientsRefused:\n"
    "    pass\n"
    "code, msg = c.noop()\n"
    "assert code == 250 and msg == b'2.0.0 OK', msg\n"
    "code, msg = c.verify('x@mx.test')\n"
    "assert code == 252, code\n"
    "c.quit()\n"
    "print('client ok')\n",
    NULL);
  static const char *const mechs[] = { "PLAIN", "LOGIN", NULL };
  Host h = { g_ptr_array_new_with_free_func (g_free), g_string_new (NULL),
             g_string_new (NULL), NULL, 0 };
  g_autofree char *out = NULL;
  run_client (script, mechs, &h, &out);
  assert_non_null (strstr (out, "client ok"));
  assert_int_equal (h.bodies->len, 2);
  assert_string_equal (h.bodies->pdata[0],
                       "Subject: t\r\n\r\n.starts with a dot\r\n..two\r\n"
                       ".\r\nend\r\n");
  assert_string_equal (h.bodies->pdata[1], "Subject: u\r\n\r\nhi\r\n");
  assert_non_null (strstr (h.log->str, "AUTH PLAIN\n"));
  assert_non_null (strstr (h.log->str, "MAIL j\xc3\xb6rg@b\xc3\xbc"
                                       "cher.example utf8=1 body=2"));
  assert_non_null (strstr (h.log->str, "RCPT \xc3\xa9t\xc3\xa9@mx.test\n"));
  g_ptr_array_unref (h.bodies);
  g_string_free (h.body, TRUE);
  g_string_free (h.log, TRUE);
  g_free (h.login_user);
}

static void
test_smtplib_auth_login_and_failure (void **state)
{
  if (!g_file_test (PYTHON, G_FILE_TEST_IS_EXECUTABLE))
    skip ();
  g_autofree char *script = g_strconcat (
    prologue,
    "c.ehlo('client.example')\n"
    "try:\n"
    "    c.login('user', 'wrong')\n"
    "    sys.exit('bad password accepted')\n"
    "except smtplib.SMTPAuthenticationError as e:\n"
    "    assert e.smtp_code == 535, e\n"
    "c.login('user', 'pass')\n"
    "c.sendmail('a@client.example', ['x@mx.test'], 'Subject: l\\r\\n\\r\\nok\\r\\n')\n"
    "c.quit()\n"
    "print('client ok')\n",
    NULL);
  static const char *const mechs[] = { "LOGIN", NULL };
  Host h = { g_ptr_array_new_with_free_func (g_free), g_string_new (NULL),
             g_string_new (NULL), NULL, 0 };
  g_autofree char *out = NULL;
  run_client (script, mechs, &h, &out);
  assert_non_null (strstr (out, "client ok"));
  assert_int_equal (h.bodies->len, 1);
  g_ptr_array_unref (h.bodies);
  g_string_free (h.body, TRUE);
  g_string_free (h.log, TRUE);
  g_free (h.login_user);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_smtplib_send_and_auth),
    cmocka_unit_test (test_smtplib_auth_login_and_failure),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
