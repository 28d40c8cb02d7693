#!/usr/bin/python3
"""LMTP delivery benchmark (issue 6): Postfix's smtp-source in LMTP mode
(-L), 10 KiB messages, 10,000 of them per run, session concurrency 1, 8 and
32, against mh-lmtpd and against Dovecot's LMTP (private config, fsync on:
mail_fsync = always), both writing Maildirs on the same disk, one run each.
Prints messages per second and the server's peak RSS (Dovecot: the sum over
its processes) and the ratios. Never fails on speed; skips a side whose
program is missing (apt-get install postfix dovecot-lmtpd).

Environment: MH_LMTPD, MH_MHCTL; BENCH_MESSAGES (default 10000),
BENCH_CONCURRENCY (default "1,8,32"), BENCH_DIR (default: a directory under
the build tree, i.e. on a real disk, not tmpfs)."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

LMTPD = os.environ.get("MH_LMTPD")
MHCTL = os.environ.get("MH_MHCTL")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
CONC = [int(c) for c in os.environ.get("BENCH_CONCURRENCY",
                                       "1,8,32").split(",")]
SIZE = 10 * 1024
# [general] worker_threads for mh-lmtpd ("" = the default)
WORKERS = (f"worker_threads = {os.environ['BENCH_WORKERS']}\n"
           if os.environ.get("BENCH_WORKERS") else "")
NOBODY = 65534


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server on port {port} did not start")
            time.sleep(0.05)


def tree_rss_kb(root_pid):
    """RSS (kB) of root_pid and all its descendants."""
    children = {}
    rss = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
            rss[int(d)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
            children.setdefault(ppid, []).append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    total, todo = 0, [root_pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ = pid, 0, threading.Event()

    def run(self):
        while not self.stop_.is_set():
            self.peak = max(self.peak, tree_rss_kb(self.pid))
            time.sleep(0.05)

    def stop(self):
        self.stop_.set()
        self.join()
        return self.peak


def count_files(pattern):
    return len(glob.glob(pattern))


def run_source(port, sessions, rcpt):
    """smtp-source -L: returns (seconds, messages/s)."""
    cmd = [SMTP_SOURCE, "-L", "-d", "-s", str(sessions), "-m",
           str(MESSAGES), "-l", str(SIZE), "-f", "bench@far.example",
           "-t", rcpt, "-S", "bench", f"127.0.0.1:{port}"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, timeout=3600)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {p.stderr.decode()}")
    return dt, MESSAGES / dt


def bench_ours(base, sessions):
    data = os.path.join(base, f"mh-{sessions}")
    subprocess.run([MHCTL, "--data-dir", data, "domain", "add",
                    "example.org"], check=True, capture_output=True)
    subprocess.run([MHCTL, "--data-dir", data, "user", "add",
                    "bench@example.org"], check=True, capture_output=True)
    port = free_port()
    conf = os.path.join(base, f"mh-{sessions}.conf")
    with open(conf, "w") as f:
        f.write(f"[general]\ndata_dir = {data}\n{WORKERS}"
                f"[lmtp]\nenabled = true\nlisten = 127.0.0.1:{port}\n"
                f"max_connections_per_ip = 1000\n")
    log = open(os.path.join(base, f"mh-{sessions}.log"), "w")
    proc = subprocess.Popen([LMTPD, "--config", conf], stdout=log,
                            stderr=log)
    try:
        wait_port(port, proc)
        sampler = RssSampler(proc.pid)
        sampler.start()
        dt, rate = run_source(port, sessions, "bench@example.org")
        peak = sampler.stop()
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    n = count_files(os.path.join(data, "mail", "example.org", "bench",
                                 "new", "*"))
    shutil.rmtree(data, ignore_errors=True)
    return rate, peak, n


def bench_dovecot(base, sessions):
    root = os.path.join(base, f"dc-{sessions}")
    home = os.path.join(root, "home")
    for d in ("run", "state", "home"):
        os.makedirs(os.path.join(root, d))
    os.chmod(root, 0o755)
    os.chown(home, NOBODY, NOBODY)
    port = free_port()
    conf = os.path.join(root, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
listen = 127.0.0.1
protocols = lmtp
first_valid_uid = 1
mail_fsync = always
mail_location = maildir:~/Maildir
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={NOBODY} gid={NOBODY} home={home}/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  process_limit = 1024
  client_limit = 1
}}
""")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        sampler = RssSampler(proc.pid)
        sampler.start()
        dt, rate = run_source(port, sessions, "bench@example.org")
        peak = sampler.stop()
    finally:
        proc.terminate()
        proc.wait(60)
    n = count_files(os.path.join(home, "bench", "Maildir", "new", "*"))
    shutil.rmtree(root, ignore_errors=True)
    return rate, peak, n


def main():
    if not os.path.exists(SMTP_SOURCE):
        print("bench-lmtp: smtp-source not found: skipped "
              "(apt-get install postfix)")
        return
    have_dovecot = (not os.environ.get("BENCH_NO_DOVECOT")
                    and os.path.exists(DOVECOT)
                    and os.path.exists("/usr/lib/dovecot/lmtp")
                    and os.geteuid() == 0)
    parent = os.environ.get("BENCH_DIR") or os.environ.get("MESON_BUILD_ROOT")
    if not parent:
        parent = os.path.dirname(os.path.dirname(LMTPD))
    base = tempfile.mkdtemp(prefix="bench-lmtp-", dir=parent)
    os.chmod(base, 0o755)
    print(f"bench-lmtp: smtp-source -L, {MESSAGES} messages of {SIZE} bytes,"
          f" one recipient, fsync on both sides, disk of {base}")
    if not have_dovecot:
        print("bench-lmtp: Dovecot LMTP not available (apt-get install "
              "dovecot-lmtpd; needs root): ours only")
    try:
        for c in CONC:
            rate, rss, n = bench_ours(base, c)
            line = (f"concurrency {c:2d}: mh-lmtpd {rate:7.0f} msg/s, "
                    f"RSS {rss / 1024:6.1f} MiB ({n} stored)")
            if have_dovecot:
                drate, drss, dn = bench_dovecot(base, c)
                line += (f" | dovecot-lmtp {drate:7.0f} msg/s, RSS "
                         f"{drss / 1024:6.1f} MiB ({dn} stored) | speed x"
                         f"{rate / drate:.2f}, RSS x{rss / drss:.2f}")
            print(line, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
