#!/usr/bin/python3
"""End-to-end tests of the SMTP and submission services (issue 6):
mailhostd, mh-smtpd and mh-submissiond on ephemeral ports with a
temporary data directory, driven by swaks, Python's smtplib and raw
sockets (BDAT and the bad-input corpus).

Every test that sends something looks at the Maildir afterwards: what was
accepted is there with Received (TLS version and cipher), Return-Path and
Delivered-To; what was refused left nothing behind.

Environment: MH_MAILHOSTD, MH_SMTPD, MH_SUBMISSIOND, MH_MHCTL (built
binaries). swaks and certtool are Debian packages (swaks, gnutls-bin).
"""
import base64
import functools
import glob
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import (client_tls_context as plain_ctx,  # noqa: E402
                         make_cert, mhctl, ServiceServer)

MAILHOSTD = os.environ.get("MH_MAILHOSTD", "mailhostd")
SMTPD = os.environ.get("MH_SMTPD", "mh-smtpd")
SUBMISSIOND = os.environ.get("MH_SUBMISSIOND", "mh-submissiond")
SWAKS = shutil.which("swaks")
CERTTOOL = shutil.which("certtool")

DOMAIN = "example.test"
ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
CAROL = "carol@" + DOMAIN
ALICE_PW = "alice secret 1"
BOB_PW = "bob secret 2"
MAX_SIZE = 64 * 1024

# Our servers with this file's domain, message size limit and a failure
# throttle short enough for the tests that trip it.
Server = functools.partial(
    ServiceServer, hostname="mx." + DOMAIN,
    sections=("[limits]\nmax_message_size = %d\n"
              "[auth]\nfails_before_delay = 2\nmax_delay = 1s\n" % MAX_SIZE))


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def provision(data):
    mhctl(data, "domain", "add", DOMAIN)
    mhctl(data, "user", "add", ALICE, "--password-stdin",
          stdin=ALICE_PW + "\n")
    mhctl(data, "user", "add", BOB, "--password-stdin", stdin=BOB_PW + "\n")
    mhctl(data, "user", "add", CAROL, "--password-stdin",
          "--storage", "20K", stdin="carol pw 3\n")
    mhctl(data, "alias", "add", "info@" + DOMAIN, ALICE)
    mhctl(data, "alias", "add", "team@" + DOMAIN, ALICE, BOB)
    mhctl(data, "alias", "add", "postmaster@" + DOMAIN, ALICE)


class Raw:
    """A raw SMTP client: exact bytes out, replies in."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                return None
            self.buf += d
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out.decode("utf-8", "replace")

    def reply(self):
        """The whole reply as one string, lines joined by newlines."""
        lines = []
        while True:
            l = self.line()
            if l is None:
                return "\n".join(lines) if lines else None
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return "\n".join(lines)

    def starttls(self):
        self.sock = plain_ctx().wrap_socket(self.sock)
        self.buf = b""

    def close(self):
        self.sock.close()


class SmtpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mh-e2e-smtp-")
        cls.data = os.path.join(cls.tmp, "data")
        os.makedirs(cls.data)
        provision(cls.data)
        cls.cert, cls.key = make_cert(cls.tmp, "cert")
        cls.srv = Server(MAILHOSTD, ["smtp", "submission", "submissions"],
                         cls.tmp, cls.data, cls.cert, cls.key)
        cls.smtp = cls.srv.ports["smtp"]
        cls.sub = cls.srv.ports["submission"]
        cls.subs = cls.srv.ports["submissions"]

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, "mailhostd exit status %d" % rc

    # ---- helpers ------------------------------------------------------

    def maildir(self, user="alice"):
        return os.path.join(self.data, "mail", DOMAIN, user)

    def messages(self, user="alice"):
        d = self.maildir(user)
        return sorted(glob.glob(os.path.join(d, "new", "*"))
                      + glob.glob(os.path.join(d, "cur", "*")))

    def find(self, marker, user="alice"):
        """The stored messages holding @marker."""
        out = []
        for p in self.messages(user):
            with open(p, "rb") as f:
                body = f.read()
            if marker.encode() in body:
                out.append(body)
        return out

    def assert_stored_once(self, marker, user="alice"):
        found = self.find(marker, user)
        self.assertEqual(len(found), 1, "%s in %s's Maildir %d times" % (
            marker, user, len(found)))
        msg = found[0]
        head = msg.split(b"\n\n", 1)[0]
        self.assertTrue(msg.startswith(b"Return-Path: <"), msg[:200])
        self.assertIn(b"\nDelivered-To: %s@%s\n" % (user.encode(),
                                                   DOMAIN.encode()), head)
        self.assertIn(b"\nReceived: from ", head)
        self.assertNotIn(b"\r\n", msg)  # Maildir convention: LF
        return msg

    def assert_nothing_stored(self, marker):
        for user in ("alice", "bob", "carol"):
            self.assertEqual(self.find(marker, user), [],
                             "partial or refused message stored")
        spool = os.path.join(self.data, "spool")
        if os.path.isdir(spool):
            self.assertEqual(os.listdir(spool), [], "spool file left")

    def swaks(self, *args, ok=True):
        r = subprocess.run([SWAKS, "--hide-informational", "--timeout", "30"]
                           + list(args), capture_output=True, text=True)
        if ok:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def body(self, marker, extra=""):
        return ("From: <someone@remote.example>\r\nTo: <%s>\r\n"
                "Subject: %s\r\n%s\r\nbody %s\r\n" % (ALICE, marker, extra,
                                                      marker))

    # ---- swaks ----------------------------------------------------------

    def test_swaks_plain(self):
        self.swaks("--server", "127.0.0.1:%d" % self.smtp,
                   "--from", "someone@remote.example", "--to", ALICE,
                   "--header", "Subject: swaks-plain-1")
        msg = self.assert_stored_once("swaks-plain-1")
        self.assertIn(b"Return-Path: <someone@remote.example>\n", msg)
        self.assertIn(b"with ESMTP id", msg)
        self.assertNotIn(b"using TLS", msg.split(b"Subject")[0])

    def test_swaks_starttls_received_names_tls(self):
        self.swaks("--server", "127.0.0.1:%d" % self.smtp, "-tls",
                   "--from", "someone@remote.example", "--to", ALICE,
                   "--header", "Subject: swaks-tls-1")
        msg = self.assert_stored_once("swaks-tls-1")
        self.assertRegex(msg.decode(), r"with ESMTPS id s\d+\n\t\(using "
                         r"TLS1\.[23] with cipher TLS_[A-Z0-9_]+\)")

    def test_swaks_auth_plain_and_login_on_587(self):
        for mech in ("PLAIN", "LOGIN"):
            marker = "swaks-auth-" + mech
            self.swaks("--server", "127.0.0.1:%d" % self.sub, "-tls",
                       "--auth", mech, "--auth-user", ALICE,
                       "--auth-password", ALICE_PW, "--from", ALICE,
                       "--to", BOB, "--header", "Subject: " + marker)
            msg = self.assert_stored_once(marker, "bob")
            self.assertIn(b"with ESMTPSA id", msg)

    def test_swaks_pipelining(self):
        r = self.swaks("--server", "127.0.0.1:%d" % self.smtp, "--pipeline",
                       "--from", "someone@remote.example",
                       "--to", "%s,%s,nobody@%s" % (ALICE, BOB, DOMAIN),
                       "--header", "Subject: swaks-pipe-1", ok=False)
        self.assertIn("550 5.1.1", r.stdout)
        self.assertIn("250 2.0.0", r.stdout)
        self.assert_stored_once("swaks-pipe-1", "alice")
        self.assert_stored_once("swaks-pipe-1", "bob")

    def test_swaks_8bitmime(self):
        self.swaks("--server", "127.0.0.1:%d" % self.smtp,
                   "--from", "someone@remote.example", "--to", ALICE,
                   "--header", "Subject: swaks-8bit-1",
                   "--body", "Grüße aus Köln\n",
                   "--add-header", "Content-Type: text/plain; charset=utf-8")
        msg = self.assert_stored_once("swaks-8bit-1")
        self.assertIn("Grüße aus Köln".encode(), msg)

    # ---- smtplib --------------------------------------------------------

    def test_smtplib_alias_and_account_stored_once(self):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.ehlo("client.remote.example")
            refused = s.sendmail("someone@remote.example",
                                 [ALICE, "info@" + DOMAIN],
                                 self.body("smtplib-alias-1"))
            self.assertEqual(refused, {})
        msg = self.assert_stored_once("smtplib-alias-1")
        # two recipients: no "for <...>" clause
        self.assertNotIn(b"\tfor <", msg.split(b"Subject")[0])

    def test_smtplib_unknown_recipient_550(self):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("someone@remote.example", ["nobody@" + DOMAIN],
                           self.body("smtplib-unknown-1"))
            code, text = cm.exception.recipients["nobody@" + DOMAIN]
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b"5.1.1"), text)
        self.assert_nothing_stored("smtplib-unknown-1")

    def test_smtplib_smtputf8_addresses(self):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("smtputf8"))
            msg = self.body("smtplib-utf8-1").encode("utf-8")
            refused = s.sendmail("jörg@bücher.example", [ALICE], msg,
                                 mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            self.assertEqual(refused, {})
        stored = self.assert_stored_once("smtplib-utf8-1")
        self.assertIn("Return-Path: <jörg@bücher.example>".encode(), stored)
        self.assertIn(b"with UTF8SMTP id", stored)

    def test_bare_postmaster(self):
        # RFC 5321 4.1.1.3: <postmaster> without a domain is this host's
        # (hostname mx.example.test -> postmaster@example.test)
        r = self.session()
        r.cmd("MAIL FROM:<x@remote.example>")
        self.assertTrue(r.cmd("RCPT TO:<Postmaster>").startswith("250"))
        self.assertTrue(r.cmd("DATA").startswith("354"))
        self.assertTrue(r.cmd("Subject: bare-postmaster-1\r\n\r\nhi\r\n.")
                        .startswith("250"))
        r.close()
        msg = self.assert_stored_once("bare-postmaster-1")
        self.assertIn(b"\tfor <postmaster@example.test>;", msg)

    def test_relaying_denied_without_auth(self):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail(ALICE, ["victim@elsewhere.example"],
                           self.body("relay-1"))
            code, text = cm.exception.recipients["victim@elsewhere.example"]
            self.assertEqual(code, 554)
            self.assertIn(b"5.7.1", text)
            self.assertIn(b"relaying denied", text)
        self.assert_nothing_stored("relay-1")

    def test_over_quota_at_rcpt(self):
        r = Raw(self.smtp)
        self.assertTrue(r.reply().startswith("220"))
        self.assertTrue(r.cmd("EHLO c.example").startswith("250"))
        self.assertTrue(r.cmd("MAIL FROM:<x@remote.example> SIZE=40000")
                        .startswith("250"))
        rep = r.cmd("RCPT TO:<%s>" % CAROL)
        self.assertRegex(rep, r"^(452 4\.2\.2|552 5\.2\.2) ")
        r.cmd("QUIT")
        r.close()

    def test_smtps_465_implicit_tls(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.subs, timeout=30,
                              context=plain_ctx()) as s:
            s.login(BOB, BOB_PW)
            refused = s.sendmail(BOB, [ALICE], self.body("smtps-465-1"))
            self.assertEqual(refused, {})
        msg = self.assert_stored_once("smtps-465-1")
        self.assertIn(b"with ESMTPSA id", msg)
        self.assertIn(b"Return-Path: <%s>" % BOB.encode(), msg)

    # ---- BDAT (swaks has no CHUNKING) ------------------------------------

    def test_bdat_chunks(self):
        r = Raw(self.smtp)
        r.reply()
        self.assertIn("CHUNKING", r.cmd("EHLO c.example"))
        self.assertTrue(r.cmd("MAIL FROM:<x@remote.example>")
                        .startswith("250"))
        self.assertTrue(r.cmd("RCPT TO:<%s>" % ALICE).startswith("250"))
        part1 = b"Subject: bdat-1\r\n\r\nfirst chunk\r\n"
        part2 = b".a line with a dot, no stuffing in BDAT\r\n"
        r.send(b"BDAT %d\r\n" % len(part1) + part1)
        self.assertTrue(r.reply().startswith("250"))
        r.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        self.assertTrue(r.reply().startswith("250 2.0.0"))
        r.cmd("QUIT")
        r.close()
        msg = self.assert_stored_once("bdat-1")
        self.assertIn(b"\n.a line with a dot, no stuffing in BDAT\n", msg)

    # ---- submission -------------------------------------------------------

    def test_submission_auth_before_starttls_530(self):
        r = Raw(self.sub)
        r.reply()
        ehlo = r.cmd("EHLO c.example")
        self.assertIn("STARTTLS", ehlo)
        self.assertNotIn("AUTH", ehlo)
        cred = base64.b64encode(b"\0" + ALICE.encode() + b"\0"
                                + ALICE_PW.encode()).decode()
        self.assertTrue(r.cmd("AUTH PLAIN " + cred).startswith("530 5.7.0"))
        self.assertTrue(r.cmd("MAIL FROM:<%s>" % ALICE).startswith("530"))
        r.cmd("QUIT")
        r.close()

    def tls_session(self):
        r = Raw(self.sub)
        r.reply()
        r.cmd("EHLO c.example")
        self.assertTrue(r.cmd("STARTTLS").startswith("220"))
        r.starttls()
        self.assertIn("AUTH PLAIN LOGIN", r.cmd("EHLO c.example"))
        return r

    def auth(self, r, user=ALICE, pw=ALICE_PW):
        cred = base64.b64encode(b"\0" + user.encode() + b"\0"
                                + pw.encode()).decode()
        return r.cmd("AUTH PLAIN " + cred)

    def test_submission_mail_before_auth_530(self):
        r = self.tls_session()
        self.assertTrue(r.cmd("MAIL FROM:<%s>" % ALICE)
                        .startswith("530 5.7.0"))
        r.close()

    def test_submission_wrong_password_535(self):
        r = self.tls_session()
        self.assertTrue(self.auth(r, ALICE, "wrong").startswith("535 5.7.8"))
        self.assertTrue(r.cmd("MAIL FROM:<%s>" % ALICE).startswith("530"))
        r.close()

    def test_submission_broken_base64_501(self):
        r = self.tls_session()
        self.assertTrue(r.cmd("AUTH PLAIN !!!not-base64!!!")
                        .startswith("501"))
        self.assertTrue(r.cmd("AUTH LOGIN").startswith("334"))
        self.assertTrue(r.cmd("%%%%").startswith("501"))
        # the session still works after both
        self.assertTrue(self.auth(r).startswith("235"))
        r.close()

    def test_submission_forbidden_sender_553(self):
        r = self.tls_session()
        self.assertTrue(self.auth(r).startswith("235"))
        for sender in (BOB, "ceo@bigbank.example", "bob+x@" + DOMAIN,
                       "nobody@" + DOMAIN):
            rep = r.cmd("MAIL FROM:<%s>" % sender)
            self.assertTrue(rep.startswith("553 5.7.1"), (sender, rep))
            self.assertIn("not one of the addresses", rep)
        # own address, alias, sub-address, a shared alias alice is a
        # target of, and the null sender are fine
        for sender in (ALICE, "info@" + DOMAIN, "alice+lists@" + DOMAIN,
                       "team@" + DOMAIN, ""):
            self.assertTrue(r.cmd("MAIL FROM:<%s>" % sender)
                            .startswith("250"), sender)
            r.cmd("RSET")
        r.close()

    def test_submission_alias_sender_delivers(self):
        r = self.tls_session()
        self.assertTrue(self.auth(r).startswith("235"))
        self.assertTrue(r.cmd("MAIL FROM:<info@%s>" % DOMAIN)
                        .startswith("250"))
        self.assertTrue(r.cmd("RCPT TO:<%s>" % BOB).startswith("250"))
        self.assertTrue(r.cmd("DATA").startswith("354"))
        rep = r.cmd("Subject: sub-alias-1\r\n\r\nhi\r\n.")
        self.assertTrue(rep.startswith("250"), rep)
        r.close()
        self.assert_stored_once("sub-alias-1", "bob")

    def test_submission_remote_recipient_honest_451(self):
        r = self.tls_session()
        self.assertTrue(self.auth(r).startswith("235"))
        r.cmd("MAIL FROM:<%s>" % ALICE)
        rep = r.cmd("RCPT TO:<friend@elsewhere.example>")
        self.assertTrue(rep.startswith("451 4.7.1"), rep)
        self.assertIn("outbound relay is not enabled", rep)
        # a local recipient in the same transaction still goes through
        self.assertTrue(r.cmd("RCPT TO:<%s>" % BOB).startswith("250"))
        self.assertTrue(r.cmd("DATA").startswith("354"))
        self.assertTrue(r.cmd("Subject: sub-mixed-1\r\n\r\nhi\r\n.")
                        .startswith("250"))
        r.close()
        self.assert_stored_once("sub-mixed-1", "bob")

    # ---- bad input ---------------------------------------------------------

    def session(self, port=None):
        r = Raw(port or self.smtp)
        self.assertTrue(r.reply().startswith("220"))
        self.assertTrue(r.cmd("EHLO c.example").startswith("250"))
        return r

    def test_overlong_command_line_500(self):
        r = self.session()
        rep = r.cmd("MAIL FROM:<" + "a" * 2000 + "@remote.example>")
        self.assertTrue(rep.startswith("500 5.5.6"), rep)
        self.assertTrue(r.cmd("NOOP").startswith("250"))
        r.close()

    def test_overlong_data_line_554(self):
        r = self.session()
        r.cmd("MAIL FROM:<x@remote.example>")
        r.cmd("RCPT TO:<%s>" % ALICE)
        r.cmd("DATA")
        rep = r.cmd("Subject: long-line-1\r\n\r\n" + "x" * 5000 + "\r\n.")
        self.assertTrue(rep.startswith("554 5.6.0"), rep)
        r.close()
        self.assert_nothing_stored("long-line-1")

    def test_bare_lf_in_data_refused(self):
        r = self.session()
        r.cmd("MAIL FROM:<x@remote.example>")
        r.cmd("RCPT TO:<%s>" % ALICE)
        self.assertTrue(r.cmd("DATA").startswith("354"))
        # SMTP smuggling attempt: "\n.\n" must not end the message
        r.send("Subject: bare-lf-1\r\n\r\nhi\n.\nMAIL FROM:<evil@x>\r\n"
               "more\r\n.\r\n")
        rep = r.reply()
        self.assertTrue(rep.startswith("550 5.5.2"), rep)
        self.assertTrue(r.cmd("NOOP").startswith("250"))
        r.close()
        self.assert_nothing_stored("bare-lf-1")

    def test_bare_lf_in_command_refused(self):
        r = self.session()
        r.send("NOOP\n")
        self.assertTrue(r.reply().startswith("500 5.5.2"))
        r.close()

    def test_commands_out_of_order_503(self):
        r = self.session()
        self.assertTrue(r.cmd("RCPT TO:<%s>" % ALICE).startswith("503 5.5.1"))
        self.assertTrue(r.cmd("DATA").startswith("503 5.5.1"))
        r.cmd("MAIL FROM:<x@remote.example>")
        self.assertTrue(r.cmd("MAIL FROM:<y@remote.example>")
                        .startswith("503 5.5.1"))
        # DATA with no accepted recipient (RFC 5321 3.3: 554 or 503)
        self.assertRegex(r.cmd("DATA"), r"^(503|554) 5\.5\.1 ")
        r.close()
        r = Raw(self.smtp)
        r.reply()
        self.assertTrue(r.cmd("MAIL FROM:<x@remote.example>")
                        .startswith("503"))
        r.close()

    def test_1001_recipients(self):
        before = len(self.messages())
        r = self.session()
        r.cmd("MAIL FROM:<x@remote.example>")
        # pipelined all at once, as a bulk client would
        r.send("".join("RCPT TO:<%s>\r\n" % ALICE for _ in range(1001)))
        codes = [r.reply()[:9] for _ in range(1001)]
        # RFC 5321 4.5.3.1.10: past the limit 452, and the client sends
        # the rest in another transaction
        self.assertEqual(codes[:100], ["250 2.1.5"] * 100)
        self.assertEqual(codes[100:], ["452 4.5.3"] * 901)
        self.assertTrue(r.cmd("RSET").startswith("250"))
        self.assertTrue(r.cmd("QUIT").startswith("221"))
        r.close()
        self.assertEqual(len(self.messages()), before)

    def test_oversized_message_552(self):
        r = self.session()
        rep = r.cmd("MAIL FROM:<x@remote.example> SIZE=%d" % (MAX_SIZE * 2))
        self.assertTrue(rep.startswith("552 5.3.4"), rep)
        r.cmd("MAIL FROM:<x@remote.example>")
        r.cmd("RCPT TO:<%s>" % ALICE)
        r.cmd("DATA")
        line = "y" * 900 + "\r\n"
        r.send("Subject: oversized-1\r\n\r\n" + line * (MAX_SIZE // 900 + 10))
        rep = r.cmd(".")
        self.assertTrue(rep.startswith("552 5.3.4"), rep)
        self.assertTrue(r.cmd("NOOP").startswith("250"))
        r.close()
        self.assert_nothing_stored("oversized-1")

    def test_http_verb_closes(self):
        r = Raw(self.smtp)
        r.reply()
        rep = r.cmd("GET / HTTP/1.1")
        self.assertTrue(rep is None or rep.startswith("421"), rep)
        r.close()

    def test_auth_failure_delay_does_not_block_others(self):
        # after fails_before_delay (2) failures the answer waits (max 1 s);
        # meanwhile another session is served at once
        r = self.tls_session()
        for _ in range(3):
            self.auth(r, BOB, "wrong")
        cred = base64.b64encode(b"\0" + BOB.encode() + b"\0wrong").decode()
        r.send("AUTH PLAIN " + cred + "\r\n")
        t0 = time.monotonic()
        other = Raw(self.smtp)
        self.assertTrue(other.reply().startswith("220"))
        self.assertTrue(other.cmd("NOOP").startswith("250"))
        other_t = time.monotonic() - t0
        rep = r.reply()
        delayed_t = time.monotonic() - t0
        self.assertTrue(rep.startswith("535"), rep)
        self.assertLess(other_t, delayed_t)
        other.close()
        r.close()


class ProgramsTest(unittest.TestCase):
    """mh-smtpd and mh-submissiond on their own, and RFC 5321 timeouts
    (short ones in the config)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mh-e2e-smtpd-")
        cls.data = os.path.join(cls.tmp, "data")
        os.makedirs(cls.data)
        provision(cls.data)
        cls.cert, cls.key = make_cert(cls.tmp, "cert")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_version_and_help(self):
        for prog in (SMTPD, SUBMISSIOND):
            r = subprocess.run([prog, "--version"], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0)
            self.assertIn(os.path.basename(prog), r.stdout)
            r = subprocess.run([prog, "--bogus"], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 64)

    def test_smtpd_alone_and_stall_mid_data(self):
        # extra lines land in the last section written: [smtp]
        srv = Server(SMTPD, ["smtp"], self.tmp, self.data, self.cert,
                     self.key, extra="command_timeout = 2s\n")
        try:
            port = srv.ports["smtp"]
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.sendmail("x@remote.example", [ALICE],
                           "Subject: smtpd-alone-1\r\n\r\nhi\r\n")
            r = Raw(port, timeout=30)
            r.reply()
            r.cmd("EHLO c.example")
            r.cmd("MAIL FROM:<x@remote.example>")
            r.cmd("RCPT TO:<%s>" % ALICE)
            self.assertTrue(r.cmd("DATA").startswith("354"))
            r.send("Subject: stalled-1\r\n\r\nhalf a mess")
            t0 = time.monotonic()
            rep = r.reply()
            waited = time.monotonic() - t0
            self.assertTrue(rep and rep.startswith("421 4.4.2"), rep)
            self.assertGreater(waited, 1.5)
            self.assertIsNone(r.reply())  # closed
            r.close()
        finally:
            self.assertEqual(srv.stop(), 0)
        found = [slurp(p) for p in glob.glob(os.path.join(
            self.data, "mail", DOMAIN, "alice", "*", "*"))]
        self.assertEqual(sum(b"smtpd-alone-1" in m for m in found), 1)
        self.assertEqual(sum(b"stalled-1" in m for m in found), 0)
        # mh-smtpd serves smtp only: no submission listener was opened
        self.assertEqual(list(srv.ports), ["smtp"])

    def test_submissiond_alone(self):
        srv = Server(SUBMISSIOND, ["submission", "submissions"], self.tmp,
                     self.data, self.cert, self.key)
        try:
            with smtplib.SMTP("127.0.0.1", srv.ports["submission"],
                              timeout=30) as s:
                s.starttls(context=plain_ctx())
                s.login(ALICE, ALICE_PW)
                with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                    s.sendmail(BOB, [BOB], "Subject: x\r\n\r\nx\r\n")
                self.assertEqual(cm.exception.smtp_code, 553)
                s.sendmail(ALICE, [BOB], "Subject: subd-alone-1\r\n\r\nhi\r\n")
        finally:
            self.assertEqual(srv.stop(), 0)
        found = glob.glob(os.path.join(self.data, "mail", DOMAIN, "bob", "*",
                                       "*"))
        self.assertTrue(any(b"subd-alone-1" in slurp(p) for p in found))


class DemoTest(unittest.TestCase):
    """`mailhostd --demo` then swaks over 10587 STARTTLS with the printed
    password (skipped when the demo ports are taken)."""

    def test_demo_submission(self):
        for port in (10025, 10587, 10465, 10024, 10007):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    self.skipTest("demo port %d in use" % port)
        tmp = tempfile.mkdtemp(prefix="mh-e2e-demo-")
        out = open(os.path.join(tmp, "out"), "w+")
        p = subprocess.Popen([MAILHOSTD, "--demo", "--data-dir",
                              os.path.join(tmp, "d")], stdout=out,
                             stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 30
            while b"password:" not in slurp(out.name):
                self.assertIsNone(p.poll(), "mailhostd --demo exited")
                self.assertLess(time.time(), deadline)
                time.sleep(0.2)
            text = slurp(out.name).decode()
            for line in ("smtp         127.0.0.1 port 10025",
                         "submission   127.0.0.1 port 10587",
                         "submissions  127.0.0.1 port 10465"):
                self.assertIn(line, text)
            pw = text.split("password:")[1].split()[0]
            r = subprocess.run([SWAKS, "--server", "127.0.0.1:10587", "-tls",
                                "--auth", "PLAIN", "--auth-user",
                                "demo@demo.example", "--auth-password", pw,
                                "--from", "demo@demo.example", "--to",
                                "demo@demo.example", "--header",
                                "Subject: demo-swaks-1"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout)
        finally:
            p.terminate()
            p.wait(20)
            out.close()
        stored = glob.glob(os.path.join(tmp, "d", "mail", "demo.example",
                                        "demo", "new", "*"))
        self.assertTrue(any(b"demo-swaks-1" in slurp(f) for f in stored))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not SWAKS or not CERTTOOL:
        print("SKIP: swaks or certtool missing")
        sys.exit(77)
    unittest.main(verbosity=2)
