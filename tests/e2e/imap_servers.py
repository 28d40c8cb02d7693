"""IMAP servers for the end-to-end client tests and the IMAP benchmark:
ours (mh-imapd, or mailhostd with [imap] on) and a private Dovecot, both
on free ports of 127.0.0.1, each in a directory of its own, with the same
account (alice@example.org), the same self-signed certificate (made with
certtool, see test_server.make_cert) and the same way to deliver a
message into INBOX (mh-deliver for ours, dovecot-lda for Dovecot).

Used by tests/e2e/test-imap-clients.py, tests/e2e/test-imap-dovecot.py
and tests/bench/bench-imap.py. Environment: MH_IMAPD, MH_MHCTL,
MH_DELIVER for ours (MH_MAILHOSTD to start mailhostd instead); Dovecot needs root (it refuses to run its
mail processes as uid 0, so its mail belongs to nobody).

Design notes
- A server is started with start() and always killed with stop(); the
  log stays readable (log_text()) for failure messages.
- `plaintext` says whether LOGIN is allowed before TLS. The client tests
  leave it off so every client must do STARTTLS or implicit TLS; the
  comparison test and the benchmark turn it on (no TLS cost measured).
- Dovecot's namespace separator is a parameter, so the comparison test can
  ask ours first and configure Dovecot the same way; its special-use
  folders match our store's fixed role names (Sent, Drafts, Trash, Junk,
  Archive).
"""

import imaplib
import os
import shutil
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import free_port, make_cert, wait_listening  # noqa: E402

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
NOBODY = 65534
USER = "alice@example.org"
PASSWORD = "Secret-pw-1"
ROLES = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
         "Junk": "\\Junk", "Archive": "\\Archive"}


def env_prog(*names):
    for n in names:
        v = os.environ.get(n)
        if v and os.path.exists(v):
            return v
    return None


def have_ours():
    return bool(env_prog("MH_IMAPD") and env_prog("MH_MHCTL")
                and env_prog("MH_DELIVER"))


def have_dovecot():
    return (os.geteuid() == 0 and os.path.exists(DOVECOT)
            and os.path.exists("/usr/lib/dovecot/imap"))


def client_context(cafile=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ImapServer:
    kind = "?"
    host = "127.0.0.1"
    user = USER
    password = PASSWORD

    def __init__(self, root, plaintext=False):
        self.root = root
        self.plaintext = plaintext
        os.makedirs(root, exist_ok=True)
        os.chmod(root, 0o755)
        tls = os.path.join(root, "tls")
        os.makedirs(tls, exist_ok=True)
        self.cert, self.key = make_cert(tls, "cert")
        os.chmod(tls, 0o755)
        os.chmod(self.cert, 0o644)
        os.chmod(self.key, 0o644)   # Dovecot reads it as root anyway
        self.port = free_port()
        self.tls_port = free_port()
        self.proc = None
        self.log_path = os.path.join(root, f"{self.kind}.log")

    def log_text(self, tail=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def imap(self, tls="starttls", login=True):
        """An imaplib client, logged in; tls is 'starttls', 'implicit' or
        'none'."""
        if tls == "implicit":
            m = imaplib.IMAP4_SSL(self.host, self.tls_port,
                                  ssl_context=client_context(self.cert),
                                  timeout=30)
        else:
            m = imaplib.IMAP4(self.host, self.port, timeout=30)
            if tls == "starttls":
                m.starttls(client_context(self.cert))
        if login:
            m.login(self.user, self.password)
        return m

    def __repr__(self):
        return f"<{self.kind} imap on {self.port}/{self.tls_port}>"


class OurImapd(ImapServer):
    kind = "ours"

    def __init__(self, root, plaintext=False, extra_conf="", data=None,
                 create_user=True, plain_hash=False):
        super().__init__(root, plaintext)
        self.imapd = env_prog("MH_IMAPD")
        self.mailhostd = env_prog("MH_MAILHOSTD")
        self.mhctl = env_prog("MH_MHCTL")
        self.deliver_prog = env_prog("MH_DELIVER")
        self.data = data or os.path.join(root, "data")
        self.extra_conf = extra_conf
        self.conf = os.path.join(root, "mailhost.conf")
        if create_user:
            self.mhctl_run("domain", "add", "example.org")
            if plain_hash:
                # the benchmark's LOGINs cost what Dovecot's {PLAIN} does
                self.mhctl_run("import", "-",
                               stdin=f"{USER} {{PLAIN}}{PASSWORD}\n")
            else:
                self.mhctl_run("user", "add", USER, "--password-stdin",
                               stdin=PASSWORD + "\n")

    @property
    def maildir(self):
        return os.path.join(self.data, "mail", "example.org", "alice")

    def mhctl_run(self, *args, stdin=None):
        p = subprocess.run([self.mhctl, "--data-dir", self.data] + list(args),
                           input=stdin.encode() if stdin else None,
                           capture_output=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"mhctl {' '.join(args)}: exit {p.returncode}"
                               f": {p.stderr.decode()}")
        return p.stdout.decode()

    def config_text(self):
        return (f"[general]\ndata_dir = {self.data}\nlog_level = info\n"
                f"log_target = stderr\nshutdown_grace = 2s\n"
                f"[tls]\ncert = {self.cert}\nkey = {self.key}\n"
                f"[auth]\nallow_plaintext = "
                f"{'true' if self.plaintext else 'false'}\n"
                f"[limits]\nmax_connections = 30000\n"
                f"max_connections_per_ip = 30000\n"
                f"[imap]\nenabled = true\nlisten = 127.0.0.1:{self.port}\n"
                f"tls = starttls\n"
                f"[imaps]\nenabled = true\n"
                f"listen = 127.0.0.1:{self.tls_port}\ntls = implicit\n"
                + self.extra_conf)

    def start(self, program=None):
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        prog = program or self.imapd
        self.program = prog
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([prog, "--config", self.conf],
                                     stdout=self.log, stderr=self.log)
        wait_listening([self.port, self.tls_port], self.proc,
                       os.path.basename(prog), self.log_text)
        return self

    def stop(self):
        """Stops the server; raises if a sanitizer (ASan, UBSan, LSan in
        a -Db_sanitize build) reported anything in its log."""
        super().stop()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
            text = self.log_text(1 << 30)
            for needle in ("ERROR: AddressSanitizer", "runtime error:",
                           "ERROR: LeakSanitizer"):
                if needle in text:
                    i = text.index(needle)
                    raise AssertionError(f"{os.path.basename(self.program)}"
                                         f": sanitizer report:\n"
                                         + text[max(0, i - 200):i + 4000])

    def deliver(self, message, sender="sender@far.example"):
        p = subprocess.run([self.deliver_prog, "--data-dir", self.data,
                            "-f", sender, USER], input=message,
                           capture_output=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"mh-deliver: exit {p.returncode}: "
                               f"{p.stderr.decode()}")

    def index_rebuild(self):
        return self.mhctl_run("index", "rebuild", USER)


class DovecotImapd(ImapServer):
    kind = "dovecot"

    def __init__(self, root, plaintext=False, separator=".", maildir=None,
                 extra_conf="", imap_service="", login_service=""):
        super().__init__(root, plaintext)
        self.separator = separator
        self.home = os.path.join(root, "home")
        self._maildir = maildir or os.path.join(self.home, "Maildir")
        self.index = os.path.join(root, "index")
        self.extra_conf = extra_conf
        self.imap_service = imap_service
        self.login_service = login_service
        for d in (self.home, self.index, self._maildir):
            os.makedirs(d, exist_ok=True)
            os.chown(d, NOBODY, NOBODY)
        for d in ("run", "state"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        self.users = os.path.join(root, "users")
        with open(self.users, "w") as f:
            f.write(f"{USER}:{{PLAIN}}{PASSWORD}:{NOBODY}:{NOBODY}::"
                    f"{self.home}::\n")
        self.conf = os.path.join(root, "dovecot.conf")

    @property
    def maildir(self):
        return self._maildir

    def config_text(self):
        roles = "".join(
            f"  mailbox {name} {{\n    special_use = {use}\n  }}\n"
            for name, use in ROLES.items())
        return f"""base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{self.key}
disable_plaintext_auth = {'no' if self.plaintext else 'yes'}
listen = 127.0.0.1
protocols = imap
first_valid_uid = 1
mail_location = maildir:{self._maildir}:INDEX={self.index}
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.users}
}}
userdb {{
  driver = passwd-file
  args = {self.users}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = {self.tls_port}
    ssl = yes
  }}
{self.login_service}
}}
service imap {{
{self.imap_service}
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
{roles}}}
{self.extra_conf}
"""

    def master_pid(self):
        return self.proc.pid

    def start(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_listening([self.port, self.tls_port], self.proc, "dovecot",
                       self.log_text)
        return self

    def chown_mail(self):
        """Gives the Maildir (made or copied by root) to nobody."""
        for top, dirs, files in os.walk(self._maildir):
            os.chown(top, NOBODY, NOBODY)
            for f in files:
                os.chown(os.path.join(top, f), NOBODY, NOBODY)

    def deliver(self, message, sender="sender@far.example"):
        p = subprocess.run([DOVECOT_LDA, "-c", self.conf, "-d", USER,
                            "-f", sender], input=message,
                           capture_output=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"dovecot-lda: exit {p.returncode}: "
                               f"{p.stderr.decode()}")


def servers_wanted():
    """Which servers a test runs against: MH_IMAP_SERVERS=ours,dovecot
    (default: both, each only if available)."""
    want = os.environ.get("MH_IMAP_SERVERS", "ours,dovecot").split(",")
    return [w.strip() for w in want if w.strip()]
