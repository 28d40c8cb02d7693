#!/usr/bin/python3
"""The real Postfix chain (issue 6): a private Postfix instance (its own
config_directory and queue_directory in a temporary directory, SMTP on a
high port of 127.0.0.1) with `virtual_transport = lmtp:inet:...` pointing at
our mh-lmtpd; swaks sends through Postfix and the message must appear in the
Maildir, with the per-recipient LMTP refusal of an unknown user in
Postfix's log. Needs root and the postfix and swaks packages (installs
nothing itself); skipped with a message when postfix is not installed."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

MHCTL = os.environ.get("MH_MHCTL")
LMTPD = os.environ.get("MH_LMTPD")
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SWAKS = shutil.which("swaks")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            if time.time() > deadline or (proc and proc.poll() is not None):
                return False
            time.sleep(0.1)


@unittest.skipUnless(os.path.exists(POSTFIX),
                     "postfix is not installed (apt-get install -y postfix)")
@unittest.skipUnless(SWAKS, "swaks is not installed (apt-get install -y swaks)")
@unittest.skipUnless(os.geteuid() == 0, "a private Postfix needs root")
class PostfixChain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mh-e2e-postfix-")
        os.chmod(cls.tmp, 0o755)
        cls.data = os.path.join(cls.tmp, "data")
        cls.run_ok([MHCTL, "--data-dir", cls.data, "domain", "add",
                    "example.org"])
        cls.run_ok([MHCTL, "--data-dir", cls.data, "user", "add",
                    "alice@example.org"])
        cls.run_ok([MHCTL, "--data-dir", cls.data, "alias", "add",
                    "info@example.org", "alice@example.org"])

        # mh-lmtpd
        cls.lmtp_port = free_port()
        conf = os.path.join(cls.tmp, "mailhost.conf")
        with open(conf, "w") as f:
            f.write(f"[general]\ndata_dir = {cls.data}\n"
                    f"[lmtp]\nenabled = true\n"
                    f"listen = 127.0.0.1:{cls.lmtp_port}\n")
        cls.lmtpd_log = open(os.path.join(cls.tmp, "lmtpd.log"), "w")
        cls.lmtpd = subprocess.Popen([LMTPD, "--config", conf],
                                     stdout=cls.lmtpd_log,
                                     stderr=cls.lmtpd_log)
        if not wait_port(cls.lmtp_port, cls.lmtpd):
            raise RuntimeError("mh-lmtpd did not start")

        # Postfix
        cls.smtp_port = free_port()
        cls.pf = os.path.join(cls.tmp, "postfix")
        queue = os.path.join(cls.tmp, "queue")
        pfdata = os.path.join(cls.tmp, "pfdata")
        os.makedirs(cls.pf)
        os.makedirs(queue)
        os.makedirs(pfdata)
        shutil.chown(pfdata, "postfix")
        cls.maillog = os.path.join(cls.tmp, "maillog")
        with open(os.path.join(cls.pf, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {pfdata}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.postfix-test.example
mydomain = postfix-test.example
myorigin = $myhostname
mydestination =
relay_domains =
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = example.org
virtual_mailbox_maps =
smtpd_reject_unlisted_recipient = no
virtual_transport = lmtp:inet:127.0.0.1:{cls.lmtp_port}
smtp_dns_support_level = disabled
lmtp_host_lookup = native
maillog_file = {cls.maillog}
maillog_file_prefixes = {cls.tmp}
smtpd_banner = $myhostname ESMTP
biff = no
delay_warning_time = 0
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
""")
        # master.cf: smtpd on our port, nothing chrooted (the chroot would
        # need a copy of /etc in the queue directory)
        with open("/etc/postfix/master.cf") as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            fields = line.split()
            if fields and not line[0].isspace() and not line.startswith("#"):
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"127.0.0.1:{cls.smtp_port}"
                if len(fields) >= 5:
                    fields[4] = "n"
                line = " ".join(fields)
            out.append(line)
        with open(os.path.join(cls.pf, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        cls.run_ok([POSTFIX, "-c", cls.pf, "check"])
        cls.run_ok([POSTFIX, "-c", cls.pf, "start"])
        if not wait_port(cls.smtp_port):
            raise RuntimeError("postfix did not listen: " + cls.log())

    @classmethod
    def tearDownClass(cls):
        try:
            with open(os.path.join(cls.tmp, "queue", "pid",
                                   "master.pid")) as f:
                master = int(f.read().strip())
        except (OSError, ValueError):
            master = None
        subprocess.run([POSTFIX, "-c", cls.pf, "stop"], capture_output=True,
                       timeout=60)
        # master exits asynchronously: wait for it before removing its
        # queue directory
        deadline = time.time() + 20
        while master and time.time() < deadline:
            try:
                os.kill(master, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        cls.lmtpd.terminate()
        cls.lmtpd.wait(30)
        cls.lmtpd_log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def run_ok(cls, cmd):
        p = subprocess.run(cmd, capture_output=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}\n"
                               f"{p.stderr}")
        return p.stdout.decode()

    @classmethod
    def log(cls):
        try:
            with open(cls.maillog) as f:
                return f.read()[-4000:]
        except OSError:
            return "(no maillog)"

    def maildir(self):
        return glob.glob(os.path.join(self.data, "mail", "example.org",
                                      "alice", "new", "*"))

    def test_postfix_hands_mail_to_mh_lmtpd(self):
        before = len(self.maildir())
        p = subprocess.run([SWAKS, "--server",
                            f"127.0.0.1:{self.smtp_port}",
                            "--from", "bob@far.example",
                            "--to", "alice@example.org,nobody@example.org,"
                                    "info@example.org",
                            "--header", "Subject: through postfix",
                            "--body", "via Postfix and LMTP"],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("250 2.0.0 Ok: queued", out)
        deadline = time.time() + 60
        while len(self.maildir()) == before and time.time() < deadline:
            time.sleep(0.2)
        files = self.maildir()
        # alice and her alias info: one copy
        self.assertEqual(len(files) - before, 1, self.log())
        with open(sorted(files, key=os.path.getmtime)[-1], "rb") as f:
            msg = f.read()
        self.assertTrue(msg.startswith(b"Return-Path: <bob@far.example>\n"
                                       b"Delivered-To: alice@example.org\n"),
                        msg[:200])
        self.assertIn(b"Subject: through postfix", msg)
        self.assertIn(b"Received: from", msg)      # Postfix's
        self.assertIn(b"via Postfix and LMTP", msg)
        # Postfix saw a per-recipient answer: two delivered, one refused
        deadline = time.time() + 30
        while time.time() < deadline:
            log = self.log()
            if ("<nobody@example.org>" in log and "status=bounced" in log
                    and log.count("status=sent") >= 2):
                break
            time.sleep(0.2)
        log = self.log()
        self.assertRegex(log, r"to=<alice@example.org>.*relay=127\.0\.0\.1"
                              r".*status=sent \(250 2\.0\.0")
        self.assertRegex(log, r"to=<nobody@example.org>.*status=bounced "
                              r".*550 5\.1\.1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
