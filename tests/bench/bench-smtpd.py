#!/usr/bin/python3
"""End-to-end benchmark through mh-smtpd (issue 6): Postfix's smtp-source
sends 10 KiB messages over SMTP (one connection per message, as an MX
sees them) at session concurrency 1, 8 and 32; every message goes
through RCPT resolution, the spool file, the delivery pipeline and the
Maildir store with fsync, as in production. Prints messages per second
and the server's RSS (current and peak); never fails on speed.

Environment: MH_SMTPD and MH_MHCTL (built binaries); MH_BENCH_MESSAGES
(default 10000) messages per concurrency level. Needs smtp-source
(Debian package postfix); skipped (exit 77) without it.
"""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SMTPD = os.environ.get("MH_SMTPD", "mh-smtpd")
MHCTL = os.environ.get("MH_MHCTL", "mhctl")
SMTP_SOURCE = shutil.which("smtp-source") or (
    "/usr/sbin/smtp-source" if os.path.exists("/usr/sbin/smtp-source")
    else None)
MESSAGES = int(os.environ.get("MH_BENCH_MESSAGES", "10000"))
LEVELS = [1, 8, 32]
SIZE = 10 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    """(RSS, peak RSS, anonymous RSS): the file-backed rest is mostly
    LMDB's and the Maildir's mapped pages, shared with the page cache."""
    vals = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                vals[key] = int(line.split()[1])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0), vals.get("RssAnon", 0)


def count(maildir):
    return len(glob.glob(os.path.join(maildir, "new", "*"))) + len(
        glob.glob(os.path.join(maildir, "cur", "*")))


def main():
    if SMTP_SOURCE is None:
        print("SKIP: smtp-source missing (apt-get install postfix)")
        return 77
    tmp = tempfile.mkdtemp(prefix="mh-bench-smtpd-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    for args, stdin in ((["domain", "add", "example.test"], None),
                        (["user", "add", "bench@example.test",
                          "--password-stdin"], "bench password\n")):
        subprocess.run([MHCTL, "--data-dir", data] + args, input=stdin,
                       text=True, check=True, capture_output=True)
    port = free_port()
    conf = os.path.join(tmp, "bench.conf")
    with open(conf, "w") as f:
        f.write("[general]\ndata_dir = %s\nhostname = mx.example.test\n"
                "log_target = stderr\nlog_level = warning\n"
                "[limits]\nmax_connections_per_ip = 1000\n"
                "[smtp]\nenabled = true\nlisten = 127.0.0.1:%d\ntls = none\n"
                % (data, port))
    log = open(os.path.join(tmp, "smtpd.log"), "w+")
    proc = subprocess.Popen([SMTPD, "--config", conf], stdout=log,
                            stderr=log)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    print("mh-smtpd did not start:", log.read())
                    return 1
                time.sleep(0.1)
        maildir = os.path.join(data, "mail", "example.test", "bench")
        print("mh-smtpd end to end: %d messages of %d bytes per level, "
              "1 recipient, a new connection per message, fsync on, "
              "%d CPUs, load %.1f" % (MESSAGES, SIZE, os.cpu_count(),
                                      os.getloadavg()[0]))
        print("%-12s %10s %10s %10s %10s %10s" % (
            "concurrency", "seconds", "msgs/s", "RSS KiB", "peak KiB",
            "anon KiB"))
        for level in LEVELS:
            before = count(maildir)
            t0 = time.monotonic()
            r = subprocess.run([SMTP_SOURCE, "-s", str(level), "-m",
                                str(MESSAGES), "-l", str(SIZE), "-f",
                                "sender@remote.example", "-t",
                                "bench@example.test", "-M", "client.example",
                                "-S", "bench", "127.0.0.1:%d" % port],
                               capture_output=True, text=True)
            elapsed = time.monotonic() - t0
            stored = count(maildir) - before
            cur, peak, anon = rss_kib(proc.pid)
            if r.returncode != 0 or stored != MESSAGES:
                print("level %d: smtp-source exit %d, %d of %d stored: %s"
                      % (level, r.returncode, stored, MESSAGES,
                         (r.stdout + r.stderr)[-500:]))
                return 1
            print("%-12d %10.2f %10.0f %10d %10d %10d" % (
                level, elapsed, MESSAGES / elapsed, cur, peak, anon))
            sys.stdout.flush()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
