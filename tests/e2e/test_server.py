#!/usr/bin/python3
"""End-to-end tests of lib/server through bin/mailhostd and its diagnostic
echo service (docs/server.md).

Each test starts its own mailhostd on ephemeral ports in a temporary
directory and always kills it. Clients: Python sockets and ssl, and
gnutls-cli for STARTTLS and implicit TLS. Environment: MH_MAILHOSTD is
the built binary.

The helpers above ServerTest are shared: test-imap.py, test-smtp.py and
imap_servers.py import them (free_port, make_cert, client_tls_context,
mhctl, wait_listening, ServiceServer).
"""
import hashlib
import os
import re
import pwd
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

MAILHOSTD = os.environ.get("MH_MAILHOSTD", "mailhostd")
MHCTL = os.environ.get("MH_MHCTL")
GNUTLS_CLI = shutil.which("gnutls-cli")
CERTTOOL = shutil.which("certtool")


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def make_cert(directory, name, cn="localhost"):
    """A self-signed ECDSA pair made with certtool (independent of the
    code under test). Returns (cert_path, key_path)."""
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".pem")
    tmpl = os.path.join(directory, name + ".tmpl")
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                "expiration_days = 30\ntls_www_server\nsigning_key\n" % cn)
    subprocess.run([CERTTOOL, "--generate-privkey", "--key-type=ecdsa",
                    "--outfile", key], check=True, capture_output=True)
    subprocess.run([CERTTOOL, "--generate-self-signed", "--load-privkey", key,
                    "--template", tmpl, "--outfile", cert],
                   check=True, capture_output=True)
    return cert, key


def client_tls_context():
    """A client TLS context that takes our self-signed certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def mhctl(data, *args, stdin=None):
    """Runs mhctl (MH_MHCTL) on the data directory @data; returns its
    output, raises with the output on failure."""
    r = subprocess.run([MHCTL or "mhctl", "--data-dir", data] + list(args),
                       input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("mhctl %s: %s%s" % (" ".join(args), r.stdout,
                                               r.stderr))
    return r.stdout


def wait_listening(ports, proc, what, log, timeout=30):
    """Waits until every port of @ports on 127.0.0.1 accepts a
    connection; raises with log() when @proc exits or @timeout passes."""
    deadline = time.time() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited %d:\n%s"
                                       % (what, proc.returncode, log()))
                if time.time() > deadline:
                    raise RuntimeError("%s does not listen on %d:\n%s"
                                       % (what, port, log()))
                time.sleep(0.05)


class ServiceServer:
    """A server program (mailhostd, mh-imapd, mh-smtpd, ...) on free
    ports of 127.0.0.1 with a config of its own: [general] and [tls],
    then @sections, one section per service of @services, then @extra
    (so @extra continues the last service's section). The log (and the
    config) are PROG.log and PROG.conf in @tmp; the log is appended to,
    so a restart keeps the earlier run's lines. stop() always ends it."""

    def __init__(self, prog, services, tmp, data, cert, key, extra="",
                 ports=None, hostname="mx.example.test", sections=""):
        self.ports = ports or {name: free_port() for name in services}
        base = os.path.join(tmp, os.path.basename(prog))
        self.conf = base + ".conf"
        text = ("[general]\ndata_dir = %s\nhostname = %s\n"
                "log_target = stderr\nlog_level = info\n"
                "[tls]\ncert = %s\nkey = %s\n%s"
                % (data, hostname, cert, key, sections))
        for name, port in self.ports.items():
            text += "[%s]\nenabled = true\nlisten = 127.0.0.1:%d\n" % (
                name, port)
        text += extra
        with open(self.conf, "w") as f:
            f.write(text)
        self.log = open(base + ".log", "a+")
        self.proc = subprocess.Popen([prog, "--config", self.conf],
                                     stdout=self.log, stderr=self.log)
        wait_listening(self.ports.values(), self.proc, prog, self.log_text)

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        """SIGTERM, then SIGKILL after 20 s; returns the exit status."""
        self.proc.terminate()
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


def read(path):
    with open(path) as f:
        return f.read()


def pem_fingerprint(cert_path):
    der = ssl.PEM_cert_to_DER_cert(read(cert_path))
    return hashlib.sha256(der).hexdigest()


class Line:
    """A line client over a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def connect(cls, addr, family=socket.AF_INET, timeout=5):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
        return cls(s)

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                if self.buf:
                    out, self.buf = self.buf, b""
                    return out.decode(errors="replace")
                return None
            self.buf += data
        out, self.buf = self.buf.split(b"\n", 1)
        return out.rstrip(b"\r").decode(errors="replace")

    def reply(self):
        """Reads one SMTP-style reply (multi-line aware); returns its last
        line."""
        while True:
            l = self.line()
            if l is None or len(l) < 4 or l[3] != "-":
                return l

    def starttls(self, server_hostname=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Daemon:
    """A mailhostd with a config of our own, always killed in stop()."""

    def __init__(self, tmp, config, extra_args=(), wait=True):
        self.tmp = tmp
        self.conf = os.path.join(tmp, "mailhost.conf")
        with open(self.conf, "w") as f:
            f.write(config)
        self.log_path = os.path.join(tmp, "mailhostd.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [MAILHOSTD, "--config", self.conf, "--data-dir",
             os.path.join(tmp, "data")] + list(extra_args),
            stdout=subprocess.DEVNULL, stderr=self.log)
        if wait:
            self.wait_log("mailhostd started")

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.log_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError("mailhostd exited %d:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            time.sleep(0.05)
        raise AssertionError("no '%s' in the log:\n%s" % (needle,
                                                           self.log_text()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def echo_config(listen, tls="starttls", extra="", section_extra=""):
    return ("[general]\nlog_level = debug\nlog_target = stderr\n"
            "shutdown_grace = 10s\n%s\n"
            "[echo]\nenabled = true\nlisten = %s\ntls = %s\n%s\n"
            % (extra, listen, tls, section_extra))


class ServerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mh-e2e-server-")
        self.daemons = []
        self.clients = []
        tls = os.path.join(self.tmp, "data", "tls")
        os.makedirs(tls)
        self.cert, self.key = make_cert(tls, "cert")
        os.rename(self.key, os.path.join(tls, "key.pem"))
        self.key = os.path.join(tls, "key.pem")

    def tearDown(self):
        for c in self.clients:
            c.close()
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, config, **kw):
        d = Daemon(self.tmp, config, **kw)
        self.daemons.append(d)
        return d

    def client(self, port, host="127.0.0.1", family=socket.AF_INET):
        c = Line.connect((host, port), family)
        self.clients.append(c)
        return c

    def gnutls_cli(self, port, lines, args, expect):
        """Runs gnutls-cli, writes each line after the previous answer
        arrived, and returns everything it printed. `expect` lists one
        substring to wait for after the connection and after each line."""
        p = subprocess.Popen([GNUTLS_CLI, "-p", str(port), "127.0.0.1"]
                             + args, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = b""
        try:
            for i, want in enumerate(expect):
                if i > 0:
                    p.stdin.write(lines[i - 1].encode() + b"\n")
                    p.stdin.flush()
                deadline = time.time() + 10
                while want.encode() not in out:
                    if time.time() > deadline or p.poll() is not None:
                        raise AssertionError("gnutls-cli: no '%s' in:\n%s"
                                             % (want, out.decode()))
                    r, _, _ = select.select([p.stdout], [], [], 0.2)
                    if r:
                        out += os.read(p.stdout.fileno(), 65536)
        finally:
            p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        return out.decode(errors="replace")

    # ---- plain, IPv6, unix -------------------------------------------------

    def test_plain_tcp_commands_and_pipelining(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port))
        c = self.client(port)
        self.assertTrue(c.line().startswith("220 "))
        c.sock.sendall(b"EHLO x\r\nECHO one\r\nTLS\r\nSLOW 50\r\nECHO two\r\n"
                       b"WAIT 50\r\nQUIT\r\n")
        self.assertEqual(c.reply(), "250 STARTTLS")
        self.assertEqual(c.line(), "250 one")
        self.assertEqual(c.line(), "250 none")
        self.assertEqual(c.line(), "250 slept 50 ms")
        self.assertEqual(c.line(), "250 two")
        self.assertEqual(c.line(), "250 waited 50 ms")
        self.assertEqual(c.line(), "221 2.0.0 bye")
        self.assertIsNone(c.line())

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback")
    def test_ipv6_loopback(self):
        port = free_port(socket.AF_INET6, "::1")
        d = self.start(echo_config("[::1]:%d" % port))
        c = self.client(port, "::1", socket.AF_INET6)
        self.assertTrue(c.line().startswith("220 "))
        c.send("ECHO v6")
        self.assertEqual(c.line(), "250 v6")
        d.wait_log("[::1]:")

    def test_wildcard_listens_on_both_families(self):
        port = free_port()
        self.start(echo_config("*:%d" % port))
        c = self.client(port)
        self.assertTrue(c.line().startswith("220 "))
        if have_ipv6():
            c6 = self.client(port, "::1", socket.AF_INET6)
            self.assertTrue(c6.line().startswith("220 "))

    def test_unix_socket_replaces_stale_file_and_sets_mode(self):
        path = os.path.join(self.tmp, "echo.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()  # leaves a socket file nobody answers on
        self.start(echo_config("unix:%s" % path,
                               section_extra="socket_mode = 0600"))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        c = Line.connect(path, socket.AF_UNIX)
        self.clients.append(c)
        self.assertTrue(c.line().startswith("220 "))
        c.send("ECHO unix")
        self.assertEqual(c.line(), "250 unix")

    def test_unix_socket_in_use_is_refused(self):
        path = os.path.join(self.tmp, "live.sock")
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        live.bind(path)
        live.listen(1)
        try:
            d = self.start(echo_config("unix:%s" % path), wait=False)
            self.assertEqual(d.wait(), 1)
            self.assertIn("echo: cannot listen on unix:%s: Address already "
                          "in use" % path, d.log_text())
        finally:
            live.close()

    # ---- TLS ---------------------------------------------------------------

    @unittest.skipUnless(GNUTLS_CLI, "gnutls-cli not installed")
    def test_starttls_with_gnutls_cli(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port))
        out = self.gnutls_cli(
            port, ["TLS", "ECHO secret"],
            ["--x509cafile", self.cert, "--starttls-proto=smtp"],
            ["Handshake was completed", "250 TLS1.", "250 secret"])
        self.assertIn("The certificate is trusted", out)

    @unittest.skipUnless(GNUTLS_CLI, "gnutls-cli not installed")
    def test_implicit_tls_with_gnutls_cli(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port, tls="implicit"))
        out = self.gnutls_cli(
            port, ["TLS", "EHLO x"], ["--x509cafile", self.cert],
            ["220 mailhost echo service ready (TLS)", "250 TLS1.",
             "250 mailhost echo"])
        # no STARTTLS offered on an encrypted connection
        self.assertNotIn("STARTTLS", out.split("250 TLS1.")[1])

    @unittest.skipUnless(GNUTLS_CLI, "gnutls-cli not installed")
    def test_tls11_refused_tls12_accepted(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port, tls="implicit"))
        p = subprocess.run([GNUTLS_CLI, "--insecure", "-p", str(port),
                            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1",
                            "127.0.0.1"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        # the server, not the client, refused it
        d.wait_log("TLS handshake failed")
        out = self.gnutls_cli(
            port, ["TLS"], ["--insecure", "--priority",
                            "NORMAL:-VERS-ALL:+VERS-TLS1.2"],
            ["Handshake was completed", "250 TLS1.2 TLS_"])
        self.assertIn("250 TLS1.2", out)

    def test_min_version_13_refuses_tls12(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port, tls="implicit",
                               extra="[tls]\nmin_version = 1.3\n"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with self.assertRaises(ssl.SSLError):
                ctx.wrap_socket(s).close()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                self.assertEqual(t.version(), "TLSv1.3")

    def test_starttls_drops_pipelined_clear_text(self):
        # RFC 3207 6 / CVE-2011-0411: bytes after STARTTLS are discarded.
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port))
        c = self.client(port)
        c.line()
        c.sock.sendall(b"STARTTLS\r\nECHO injected\r\n")
        self.assertTrue(c.line().startswith("220 2.0.0"))
        c.starttls()
        c.send("ECHO clean")
        self.assertEqual(c.line(), "250 clean")
        c.send("TLS")
        self.assertTrue(c.line().startswith("250 TLS1."))
        d.wait_log("discarding")

    def test_sighup_reloads_certificate_and_keeps_old_on_error(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port, tls="implicit"))

        def served_fingerprint():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                with ctx.wrap_socket(s) as t:
                    return hashlib.sha256(
                        t.getpeercert(binary_form=True)).hexdigest()

        first = pem_fingerprint(self.cert)
        self.assertEqual(served_fingerprint(), first)
        # a running session keeps its credentials across the reload
        old_session = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old_session.check_hostname = False
        old_session.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        kept = Line(old_session.wrap_socket(raw))
        self.clients.append(kept)
        self.assertTrue(kept.line().startswith("220 "))

        new_dir = os.path.join(self.tmp, "new")
        os.makedirs(new_dir)
        cert2, key2 = make_cert(new_dir, "second", cn="second.example")
        shutil.copy(cert2, self.cert)
        shutil.copy(key2, self.key)
        d.signal(signal.SIGHUP)
        d.wait_log("reloaded certificate")
        second = pem_fingerprint(cert2)
        self.assertNotEqual(first, second)
        self.assertEqual(served_fingerprint(), second)
        kept.send("ECHO still here")
        self.assertEqual(kept.line(), "250 still here")

        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n"
                    "-----END CERTIFICATE-----\n")
        d.signal(signal.SIGHUP)
        d.wait_log("reload failed, keeping the old certificate")
        self.assertEqual(served_fingerprint(), second)

    def test_certificate_not_matching_key_is_refused(self):
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        _, key2 = make_cert(other, "other")
        shutil.copy(key2, self.key)
        d = self.start(echo_config("127.0.0.1:%d" % free_port()), wait=False)
        self.assertEqual(d.wait(), 1)
        self.assertIn("tls: certificate %s does not match key %s"
                      % (self.cert, self.key), d.log_text())

    def test_missing_certificate_is_a_clear_error(self):
        os.unlink(self.cert)
        d = self.start(echo_config("127.0.0.1:%d" % free_port()), wait=False)
        self.assertEqual(d.wait(), 1)
        self.assertIn("tls: cannot read certificate %s" % self.cert,
                      d.log_text())

    # ---- start-up errors ---------------------------------------------------

    def test_port_in_use(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            d = self.start(echo_config("127.0.0.1:%d" % port), wait=False)
            self.assertEqual(d.wait(), 1)
            self.assertIn("echo: cannot listen on 127.0.0.1:%d: Address "
                          "already in use" % port, d.log_text())
        finally:
            busy.close()

    def test_bad_config_names_file_section_and_key(self):
        d = self.start(echo_config("127.0.0.1:1",
                                   section_extra="idle_timeout = soon"),
                       wait=False)
        self.assertEqual(d.wait(), 78)
        self.assertIn("mailhost.conf: [echo] idle_timeout: expected a "
                      "duration", d.log_text())

    def test_bad_listen_entry(self):
        d = self.start(echo_config("localhost:25"), wait=False)
        self.assertEqual(d.wait(), 78)
        self.assertIn("[echo] listen: 'localhost:25': expected", d.log_text())

    # ---- limits and timeouts -------------------------------------------------

    def test_per_ip_limit(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port,
                               section_extra="max_connections_per_ip = 2"))
        a, b = self.client(port), self.client(port)
        self.assertTrue(a.line().startswith("220"))
        self.assertTrue(b.line().startswith("220"))
        c = self.client(port)
        self.assertEqual(c.line(),
                         "421 4.7.0 Too many connections from your address")
        self.assertIsNone(c.line())
        a.send("QUIT")
        self.assertEqual(a.line(), "221 2.0.0 bye")
        self.assertIsNone(a.line())
        time.sleep(0.2)
        d = self.client(port)
        self.assertTrue(d.line().startswith("220"))

    def test_total_limit(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port,
                               extra="[limits]\nmax_connections = 3\n"
                                     "max_connections_per_ip = 100\n"))
        cs = [self.client(port) for _ in range(3)]
        for c in cs:
            self.assertTrue(c.line().startswith("220"))
        extra = self.client(port)
        self.assertEqual(extra.line(), "421 4.7.0 Too many connections")

    def test_idle_timeout(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port,
                               section_extra="idle_timeout = 1s\n"
                                             "command_timeout = 30s"))
        c = self.client(port)
        c.line()
        t0 = time.time()
        self.assertEqual(c.line(), "421 4.4.2 Idle timeout")
        self.assertIsNone(c.line())
        self.assertGreaterEqual(time.time() - t0, 0.9)

    def test_command_timeout(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port,
                               section_extra="idle_timeout = 30s\n"
                                             "command_timeout = 1s"))
        c = self.client(port)
        c.line()
        c.sock.sendall(b"ECH")  # a partial command
        t0 = time.time()
        self.assertEqual(c.line(), "421 4.4.2 Command timeout")
        self.assertLess(time.time() - t0, 5)

    def test_tls_handshake_timeout(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port, tls="implicit",
                                   extra="[limits]\n"
                                         "tls_handshake_timeout = 1s\n"))
        c = self.client(port)
        t0 = time.time()
        self.assertIsNone(c.line())  # closed without a byte
        self.assertGreaterEqual(time.time() - t0, 0.9)
        self.assertLess(time.time() - t0, 5)
        d.wait_log("TLS handshake timeout")

    def test_overlong_line_closes(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port))
        c = self.client(port)
        c.line()
        c.sock.sendall(b"ECHO " + b"a" * 5000 + b"\r\n")
        self.assertEqual(c.line(), "500 5.5.2 line too long")
        self.assertIsNone(c.line())

    def test_blocking_job_does_not_stall_other_sessions(self):
        port = free_port()
        self.start(echo_config("127.0.0.1:%d" % port,
                               extra="worker_threads = 2\n"))
        slow, fast = self.client(port), self.client(port)
        slow.line()
        fast.line()
        slow.send("SLOW 2000")
        time.sleep(0.1)
        t0 = time.time()
        for i in range(5):
            fast.send("ECHO %d" % i)
            self.assertEqual(fast.line(), "250 %d" % i)
        self.assertLess(time.time() - t0, 1.5)  # well under the 2 s job
        self.assertEqual(slow.line(), "250 slept 2000 ms")

    def test_output_back_pressure(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port))
        c = self.client(port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.line()

        def rss_kb():
            for l in read("/proc/%d/status" % d.proc.pid).splitlines():
                if l.startswith("VmRSS:"):
                    return int(l.split()[1])
        before = rss_kb()
        c.send("BIG 500000000")  # 500 MB the client never reads
        time.sleep(1.5)
        grown = rss_kb() - before
        self.assertLess(grown, 64 * 1024, "server buffered %d kB" % grown)
        # it still serves others
        other = self.client(port)
        self.assertTrue(other.line().startswith("220"))

    def test_abusive_clients_do_not_hurt_the_server(self):
        """Resets mid-job, garbage handshakes, unread output, half lines,
        NUL bytes, in bulk; then the server still answers and exits 0.
        Under ASan this is a lifetime test of sessions and jobs."""
        import random
        rnd = random.Random(1234)
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port,
                                   extra="worker_threads = 4\n",
                                   section_extra="max_connections_per_ip = "
                                                 "1000"))
        actions = [
            b"SLOW 200\r\n", b"WAIT 200\r\n", b"STARTTLS\r\n\x16\x03\x01junk",
            b"BIG 10000000\r\n", b"ECH", b"\x00\x01\r\n", b"BEGIN\r\nx\r\n",
            b"STARTTLS\r\n", b"A" * 3000, b"QUIT\r\n",
        ]
        socks = []
        for i in range(150):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(rnd.choice(actions) + rnd.choice(actions))
            socks.append(s)
            if rnd.random() < 0.5:
                time.sleep(0.005)
            if rnd.random() < 0.6:
                victim = socks.pop(rnd.randrange(len(socks)))
                if rnd.random() < 0.5:  # reset instead of FIN
                    victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
                victim.close()
        time.sleep(0.5)
        for s in socks:
            s.close()
        c = self.client(port)
        self.assertTrue(c.line().startswith("220"))
        c.send("SLOW 10")
        self.assertEqual(c.line(), "250 slept 10 ms")
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(), 0)
        log = d.log_text()
        self.assertNotIn("ERROR: AddressSanitizer", log)
        self.assertNotIn("runtime error", log)

    # ---- signals -------------------------------------------------------------

    def test_sigterm_lets_job_finish_then_exits_0(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port))
        busy, idle = self.client(port), self.client(port)
        busy.line()
        idle.line()
        busy.send("SLOW 1500")
        time.sleep(0.3)
        d.signal(signal.SIGTERM)
        self.assertEqual(idle.line(), "421 4.3.2 Service shutting down")
        self.assertIsNone(idle.line())
        # no new connections once shutting down
        time.sleep(0.2)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        self.assertEqual(busy.line(), "250 slept 1500 ms")
        self.assertEqual(busy.line(), "421 4.3.2 Service shutting down")
        self.assertIsNone(busy.line())
        self.assertEqual(d.wait(), 0)

    def test_sigterm_answers_delayed_call_at_once(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port))
        c = self.client(port)
        c.line()
        c.send("WAIT 20000")  # e.g. an auth-failure delay
        time.sleep(0.3)
        t0 = time.time()
        d.signal(signal.SIGTERM)
        self.assertEqual(c.line(), "250 waited 20000 ms")
        self.assertEqual(c.line(), "421 4.3.2 Service shutting down")
        self.assertEqual(d.wait(), 0)
        self.assertLess(time.time() - t0, 3)

    def test_sigterm_grace_cuts_long_job(self):
        port = free_port()
        d = self.start(echo_config("127.0.0.1:%d" % port)
                       .replace("shutdown_grace = 10s", "shutdown_grace = 1s"))
        c = self.client(port)
        c.line()
        c.send("SLOW 5000")
        time.sleep(0.2)
        t0 = time.time()
        d.signal(signal.SIGINT)
        self.assertEqual(d.wait(), 2)
        self.assertLess(time.time() - t0, 4)
        self.assertIn("grace period over", d.log_text())

    # ---- privileges and demo -------------------------------------------------

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_drops_root_to_user(self):
        port = free_port()
        nobody = pwd.getpwnam("nobody")
        d = self.start(echo_config("127.0.0.1:%d" % port),
                       extra_args=["--user", "nobody"])
        status = read("/proc/%d/status" % d.proc.pid)
        uids = [l for l in status.splitlines() if l.startswith("Uid:")][0]
        self.assertEqual(uids.split()[1:], [str(nobody.pw_uid)] * 4)
        c = self.client(port)
        self.assertTrue(c.line().startswith("220"))

    def test_unknown_user_fails(self):
        d = self.start(echo_config("127.0.0.1:%d" % free_port()),
                       extra_args=["--user", "no-such-user-mh"], wait=False)
        self.assertEqual(d.wait(), 1)
        self.assertIn("no-such-user-mh", d.log_text())

    def test_demo_print_config_generates_certificate(self):
        data = os.path.join(self.tmp, "demo")
        p = subprocess.run([MAILHOSTD, "--demo", "--data-dir", data,
                            "--print-config"], capture_output=True,
                           timeout=30, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("[echo]\nenabled = true\nlisten = 127.0.0.1:10007",
                      p.stdout)
        self.assertIn("[imaps]\nenabled = true\nlisten = 127.0.0.1:10993",
                      p.stdout)
        self.assertIn("[pop3s]\nenabled = false", p.stdout)
        key = os.path.join(data, "tls", "key.pem")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        cert_pem = read(os.path.join(data, "tls", "cert.pem"))
        self.assertIn("BEGIN CERTIFICATE", cert_pem)
        # a second run reuses the pair
        before = pem_fingerprint(os.path.join(data, "tls", "cert.pem"))
        subprocess.run([MAILHOSTD, "--demo", "--data-dir", data,
                        "--print-config"], capture_output=True, timeout=30,
                       check=True)
        self.assertEqual(
            pem_fingerprint(os.path.join(data, "tls", "cert.pem")), before)

    def test_demo_runs_and_says_what_is_missing(self):
        try:
            socket.create_connection(("127.0.0.1", 10007), timeout=1).close()
            self.skipTest("port 10007 is busy")
        except OSError:
            pass
        data = os.path.join(self.tmp, "demo")
        out_path = os.path.join(self.tmp, "demo.out")
        with open(out_path, "wb") as out:
            p = subprocess.Popen([MAILHOSTD, "--demo", "--data-dir", data],
                                 stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 10
            while "Stop with Ctrl-C" not in read(out_path):
                if p.poll() is not None and "Address already in use" in \
                        read(out_path):
                    self.skipTest("port 10007 taken meanwhile")
                self.assertIsNone(p.poll(), read(out_path))
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
            text = read(out_path)
            # the demo account exists and its printed password is kept
            m = re.search(r"user: +demo@demo\.example\n +password: +(\S+)",
                          text)
            self.assertIsNotNone(m, text)
            self.assertEqual(read(os.path.join(data, "demo-password")),
                             m.group(1))
            if MHCTL:
                show = subprocess.run([MHCTL, "--data-dir", data, "--json",
                                       "user", "show", "demo@demo.example"],
                                      capture_output=True, text=True)
                self.assertEqual(show.returncode, 0, show.stderr)
                self.assertIn("demo@demo.example", show.stdout)
            self.assertIn("smtp         127.0.0.1 port 10025", text)
            self.assertIn("imap         127.0.0.1 port 10143, STARTTLS",
                          text)
            self.assertIn("imaps        127.0.0.1 port 10993, SSL/TLS", text)
            self.assertNotIn("imap (10143)", text)
            fp = pem_fingerprint(os.path.join(data, "tls", "cert.pem"))
            self.assertIn(":".join(fp[i:i + 2] for i in range(0, 64, 2))
                          .upper(), text)
            c = self.client(10007)
            self.assertTrue(c.line().startswith("220"))
            c.send("STARTTLS")
            self.assertTrue(c.line().startswith("220 2.0.0"))
            c.starttls()
            c.send("TLS")
            self.assertTrue(c.line().startswith("250 TLS1.3"))
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
