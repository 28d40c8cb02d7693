#!/usr/bin/python3
"""End-to-end tests of delivery (issue 6): mh-deliver's exit codes and the
Maildir it writes, and the LMTP service of mh-lmtpd (TCP and a unix socket)
and of `mailhostd --demo`, driven by Python's smtplib.LMTP with several
recipients, one unknown, checking each per-recipient reply."""

import glob
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

MHCTL = os.environ.get("MH_MHCTL")
DELIVER = os.environ.get("MH_DELIVER")
LMTPD = os.environ.get("MH_LMTPD")
MAILHOSTD = os.environ.get("MH_MAILHOSTD")

MSG = (b"From: Bob <bob@far.example>\r\nTo: alice@example.org\r\n"
       b"Subject: e2e\r\nMessage-ID: <e2e-1@far.example>\r\n\r\n"
       b"Hello Alice.\r\n.leading dot\r\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mh-e2e-delivery-")
        self.data = os.path.join(self.tmp, "data")
        self.mhctl("domain", "add", "example.org")
        for u in ("alice", "bob"):
            self.mhctl("user", "add", f"{u}@example.org")
        self.mhctl("alias", "add", "info@example.org", "alice@example.org")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mhctl(self, *args):
        p = subprocess.run([MHCTL, "--data-dir", self.data] + list(args),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def maildir(self, user, sub="new"):
        d = os.path.join(self.data, "mail", "example.org", user, sub)
        out = []
        for path in sorted(glob.glob(os.path.join(d, "*"))):
            with open(path, "rb") as f:
                out.append(f.read())
        return out


class Deliver(Base):
    def deliver(self, *args, stdin=MSG, config=None):
        cmd = [DELIVER, "--data-dir", self.data]
        if config:
            cmd += ["--config", config]
        p = subprocess.run(cmd + list(args), input=stdin,
                           capture_output=True, timeout=60)
        return p.returncode, p.stderr.decode()

    def test_delivers_with_headers_and_lf(self):
        rc, err = self.deliver("-f", "bob@far.example", "alice@example.org")
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        [m] = self.maildir("alice")
        self.assertTrue(m.startswith(b"Return-Path: <bob@far.example>\n"
                                     b"Delivered-To: alice@example.org\n"
                                     b"From: Bob"), m)
        self.assertNotIn(b"\r\n", m)
        # stdin is not SMTP: a leading dot stays as it is
        self.assertIn(b"\n.leading dot\n", m)

    def test_unknown_user_is_67(self):
        rc, err = self.deliver("nobody@example.org")
        self.assertEqual(rc, 67)
        self.assertIn("<nobody@example.org>: 550 5.1.1", err)
        rc, err = self.deliver("someone@elsewhere.example")
        self.assertEqual(rc, 67, err)

    def test_mixed_recipients_alias_stored_once(self):
        rc, err = self.deliver("-f", "", "alice@example.org",
                               "info@example.org", "nobody@example.org",
                               "bob@example.org")
        self.assertEqual(rc, 67, err)
        self.assertNotIn("alice", err)
        self.assertEqual(len(self.maildir("alice")), 1)
        [b] = self.maildir("bob")
        self.assertTrue(b.startswith(b"Return-Path: <>\n"), b)

    def test_mbox_from_line_dropped(self):
        rc, err = self.deliver(
            "-f", "bob@far.example", "alice@example.org",
            stdin=b"From bob@far.example  Wed Nov 25 10:00:00 2026\n"
                  b"Subject: fetched\n\nbody\n")
        self.assertEqual(rc, 0, err)
        [m] = self.maildir("alice")
        self.assertEqual(m, b"Return-Path: <bob@far.example>\n"
                            b"Delivered-To: alice@example.org\n"
                            b"Subject: fetched\n\nbody\n")

    def test_over_quota_73_and_75(self):
        self.mhctl("user", "add", "carol@example.org", "--storage", "400")
        rc, err = self.deliver("carol@example.org", stdin=b"x" * 1000)
        self.assertEqual(rc, 73, err)          # can never fit: 552 5.2.2
        self.assertIn("552 5.2.2", err)
        rc, err = self.deliver("carol@example.org", stdin=b"y" * 300)
        self.assertEqual(rc, 0, err)
        rc, err = self.deliver("carol@example.org", stdin=b"z" * 200)
        self.assertEqual(rc, 75, err)          # full for now: 452 4.2.2
        self.assertIn("452 4.2.2", err)
        # one of ours (the other file, if any, is the quota layer's
        # warning at 80 %)
        ours = [m for m in self.maildir("carol") if b"Delivered-To" in m]
        self.assertEqual(len(ours), 1)
        self.assertIn(b"y" * 300, ours[0])

    def test_too_big_is_65(self):
        conf = os.path.join(self.tmp, "small.conf")
        with open(conf, "w") as f:
            f.write("[limits]\nmax_message_size = 1K\n")
        rc, err = self.deliver("alice@example.org", stdin=b"a" * 5000,
                               config=conf)
        self.assertEqual(rc, 65, err)
        self.assertIn("larger than the limit", err)
        self.assertEqual(self.maildir("alice"), [])

    def test_bad_sender_is_65(self):
        rc, err = self.deliver("-f", "a@b\nX-Injected: yes",
                               "alice@example.org")
        self.assertEqual(rc, 65, err)
        self.assertIn("control character", err)
        self.assertEqual(self.maildir("alice"), [])

    def test_usage_and_config_errors(self):
        rc, err = self.deliver()
        self.assertEqual(rc, 64)
        self.assertIn("no recipient", err)
        rc, err = self.deliver("--bogus", "alice@example.org")
        self.assertEqual(rc, 64)
        conf = os.path.join(self.tmp, "bad.conf")
        with open(conf, "w") as f:
            f.write("[limits]\nmax_message_size = lots\n")
        rc, err = self.deliver("alice@example.org", config=conf)
        self.assertEqual(rc, 78)
        self.assertIn("max_message_size", err)

    def test_unusable_data_dir_is_temporary(self):
        bad = os.path.join(self.tmp, "file")
        with open(bad, "w") as f:
            f.write("not a directory")
        p = subprocess.run([DELIVER, "--data-dir", bad, "alice@example.org"],
                           input=MSG, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn(bad, p.stderr.decode())


def lmtp_send(client, sender, rcpts, body):
    """MAIL, RCPTs, DATA by hand: smtplib's LMTP class does not read the
    per-recipient replies after the data (RFC 2033 4.2)."""
    code, _ = client.mail(sender)
    assert code == 250, code
    rcpt_replies = [client.rcpt(r) for r in rcpts]
    accepted = [r for r, rep in zip(rcpts, rcpt_replies) if rep[0] == 250]
    if not accepted:
        return rcpt_replies, []
    client.putcmd("data")
    code, msg = client.getreply()
    assert code == 354, (code, msg)
    q = body.replace(b"\r\n.", b"\r\n..")     # RFC 5321 4.5.2
    if q.startswith(b"."):
        q = b"." + q
    if not q.endswith(b"\r\n"):
        q += b"\r\n"
    client.send(q + b".\r\n")
    data_replies = [client.getreply() for _ in accepted]
    return rcpt_replies, list(zip(accepted, data_replies))


class Lmtp(Base):
    limits = ""    # extra [limits] lines of a subclass

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.sock = os.path.join(self.tmp, "lmtp.sock")
        self.conf = os.path.join(self.tmp, "mailhost.conf")
        with open(self.conf, "w") as f:
            f.write(f"[general]\ndata_dir = {self.data}\n"
                    f"[limits]\nmax_message_size = 100K\n"
                    f"{self.limits}"
                    f"[lmtp]\nenabled = true\n"
                    f"listen = 127.0.0.1:{self.port}, unix:{self.sock}\n")
        self.log = open(os.path.join(self.tmp, "lmtpd.log"), "w+")
        self.proc = subprocess.Popen([LMTPD, "--config", self.conf],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.fail("mh-lmtpd did not start: " + self.logtext())
                time.sleep(0.05)

    def tearDown(self):
        self.proc.terminate()
        rc = self.proc.wait(30)
        self.log.close()
        super().tearDown()
        self.assertEqual(rc, 0)

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def check_session(self, client):
        code, caps = client.ehlo("front.example")
        self.assertEqual(code, 250)
        self.assertIn(b"PIPELINING", caps)
        rcpts, data = lmtp_send(client, "bob@far.example",
                                ["alice@example.org", "nobody@example.org",
                                 "bob@example.org", "info@example.org"],
                                MSG)
        self.assertEqual([r[0] for r in rcpts], [250, 550, 250, 250])
        self.assertTrue(rcpts[1][1].startswith(b"5.1.1"), rcpts[1])
        self.assertEqual([a for a, _ in data],
                         ["alice@example.org", "bob@example.org",
                          "info@example.org"])
        for addr, (code, text) in data:
            self.assertEqual(code, 250, (addr, text))
            self.assertIn(addr.encode(), text)
        client.quit()

    def test_tcp_several_recipients_one_unknown(self):
        with smtplib.LMTP("127.0.0.1", self.port) as c:
            self.check_session(c)
        [a] = self.maildir("alice")    # alice and info: one copy
        [b] = self.maildir("bob")
        self.assertTrue(a.startswith(b"Return-Path: <bob@far.example>\n"
                                     b"Delivered-To: alice@example.org\n"))
        self.assertIn(b"Delivered-To: bob@example.org\n", b)
        # dot-stuffing undone, CRLF stored as LF
        self.assertIn(b"\n.leading dot\n", a)
        self.assertNotIn(b"\r", a)

    def test_unix_socket(self):
        with smtplib.LMTP(self.sock) as c:
            self.check_session(c)
        self.assertEqual(len(self.maildir("alice")), 1)
        self.assertEqual(len(self.maildir("bob")), 1)

    def test_two_transactions_in_one_session_and_rset(self):
        with smtplib.LMTP("127.0.0.1", self.port) as c:
            c.ehlo("front.example")
            for i in range(3):
                _, data = lmtp_send(c, "", ["alice@example.org"],
                                    MSG + f"n={i}\r\n".encode())
                self.assertEqual(data[0][1][0], 250)
            c.mail("x@far.example")
            c.rcpt("bob@example.org")
            self.assertEqual(c.rset()[0], 250)
            # after RSET, DATA has no transaction
            c.putcmd("data")
            self.assertEqual(c.getreply()[0], 503)
        self.assertEqual(len(self.maildir("alice")), 3)
        self.assertEqual(self.maildir("bob"), [])

    def test_too_big_nothing_stored(self):
        with smtplib.LMTP("127.0.0.1", self.port) as c:
            c.sock.settimeout(20)
            c.ehlo("front.example")
            big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 150
            c.mail("bob@far.example")
            c.rcpt("alice@example.org")
            c.putcmd("data")
            self.assertEqual(c.getreply()[0], 354)
            c.send(big + b".\r\nNOOP\r\n")
            first = c.getreply()
            self.assertEqual(first[0], 552, first)
            self.assertEqual(c.getreply()[0], 250)   # the NOOP
            # the session goes on
            _, data = lmtp_send(c, "bob@far.example", ["bob@example.org"],
                                MSG)
            self.assertEqual(data[0][1][0], 250)
        self.assertEqual(self.maildir("alice"), [])
        self.assertEqual(len(self.maildir("bob")), 1)

    def test_too_big_gets_one_reply_per_recipient(self):
        # RFC 2033 4.2: after the data, one reply per accepted recipient,
        # also when the message is refused as a whole; a single 552 would
        # put an LMTP client such as Postfix out of step.
        with smtplib.LMTP("127.0.0.1", self.port) as c:
            c.sock.settimeout(3)
            c.ehlo("front.example")
            big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 150
            c.mail("bob@far.example")
            c.rcpt("alice@example.org")
            c.rcpt("bob@example.org")
            c.putcmd("data")
            self.assertEqual(c.getreply()[0], 354)
            c.send(big + b".\r\nNOOP\r\n")
            replies = [c.getreply()[0] for _ in range(3)]
            self.assertEqual(replies, [552, 552, 250])

    def test_quota_at_rcpt(self):
        self.mhctl("user", "add", "carol@example.org", "--storage", "300")
        with smtplib.LMTP("127.0.0.1", self.port) as c:
            c.ehlo("front.example")
            c.mail("bob@far.example", ["SIZE=5000"])
            code, text = c.rcpt("carol@example.org")
            self.assertEqual(code, 552)
            self.assertTrue(text.startswith(b"5.2.2"), text)

    def test_pipelined_with_swaks(self):
        swaks = shutil.which("swaks")
        if not swaks:
            self.skipTest("swaks not installed (apt-get install swaks)")
        p = subprocess.run([swaks, "--protocol", "LMTP", "--server",
                            f"127.0.0.1:{self.port}", "--pipeline",
                            "--from", "bob@far.example",
                            "--to", "alice@example.org,bob@example.org",
                            "--body", "pipelined"],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("<alice@example.org> delivered", out)
        self.assertIn("<bob@example.org> delivered", out)
        self.assertEqual(len(self.maildir("alice")), 1)


class LmtpLimits(Lmtp):
    """The engine limits come from [limits] (issue 6)."""
    limits = "smtp_max_recipients = 2\n"

    def test_configured_recipient_limit_gives_452(self):
        with smtplib.LMTP("127.0.0.1", self.port) as c:
            c.ehlo("front.example")
            rcpts, data = lmtp_send(c, "bob@far.example",
                                    ["alice@example.org", "bob@example.org",
                                     "info@example.org"], MSG)
            self.assertEqual([r[0] for r in rcpts], [250, 250, 452])
            self.assertTrue(rcpts[2][1].startswith(b"4.5.3"), rcpts[2])
            self.assertEqual([d[1][0] for d in data], [250, 250])
            # RFC 5321 4.5.3.1.10: the rest goes in the next transaction
            _, data = lmtp_send(c, "bob@far.example", ["info@example.org"],
                                MSG)
            self.assertEqual(data[0][1][0], 250)
        # alice got one copy directly and one through info@
        self.assertEqual(len(self.maildir("alice")), 2)
        self.assertEqual(len(self.maildir("bob")), 1)

    # the base class's cases with four recipients do not apply here
    test_tcp_several_recipients_one_unknown = None
    test_unix_socket = None
    test_too_big_gets_one_reply_per_recipient = None


class Demo(unittest.TestCase):
    """mailhostd --demo serves LMTP on 10024 for demo@demo.example."""

    def test_demo_lmtp(self):
        for port in (10024, 10007):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    self.skipTest(f"port {port} in use (another demo?)")
        tmp = tempfile.mkdtemp(prefix="mh-e2e-demo-")
        data = os.path.join(tmp, "demo")
        proc = subprocess.Popen([MAILHOSTD, "--demo", "--data-dir", data],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", 10024), 1).close()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        self.fail("mailhostd --demo did not serve LMTP")
                    time.sleep(0.1)
            with smtplib.LMTP("127.0.0.1", 10024) as c:
                c.ehlo("front.example")
                _, data_r = lmtp_send(c, "bob@far.example",
                                      ["demo@demo.example"], MSG)
                self.assertEqual(data_r[0][1][0], 250)
            files = glob.glob(os.path.join(data, "mail", "demo.example",
                                           "demo", "new", "*"))
            self.assertEqual(len(files), 1)
        finally:
            proc.terminate()
            out = proc.communicate(timeout=30)[0].decode()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertIn("lmtp         127.0.0.1 port 10024", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
