#!/usr/bin/python3
"""End-to-end test of the retention timer (issue 4): mailhostd applies
`[store] retention` on its own, once shortly after start and then every
interval, off its main loop, through the stores the services share.
MH_TEST_RETENTION_SECONDS (test only, docs/config.md) shortens the first
delay and the interval to 2 s. Old messages are files written behind the
server's back into .Junk and .Trash with old mtimes (the arrival time a
reconciliation records); the test watches them go, the others stay with
their UIDs, dovecot-uidlist is rewritten by the expunge, a log line per
pass gives the counts, and SIGTERM still ends the server cleanly."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

MAILHOSTD = os.environ.get("MH_MAILHOSTD")
MHCTL = os.environ.get("MH_MHCTL")
STORE_TOOL = os.environ.get("MH_STORE_TOOL")
DAY = 86400
BODY = b"From: a@example.org\nSubject: %s\n\nbody\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Retention(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mh-retention-")
        self.data = os.path.join(self.tmp, "data")
        self.mhctl("domain", "add", "example.org")
        for u in ("alice", "bob", "carol"):
            self.mhctl("user", "add", f"{u}@example.org")
        self.proc = None
        self.n = 0

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mhctl(self, *args):
        p = subprocess.run([MHCTL, "--data-dir", self.data] + list(args),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def maildir(self, user):
        return os.path.join(self.data, "mail", "example.org", user)

    def put(self, user, folder, age_days, seen, subject):
        """A message file as another tool writes it, arrived age_days ago."""
        base = self.maildir(user)
        if folder != "INBOX":
            base = os.path.join(base, "." + folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        self.n += 1
        body = BODY % subject.encode()
        t = int(time.time() - age_days * DAY)
        name = f"{t}.M{self.n}P1.test,S={len(body)}"
        path = (os.path.join(base, "cur", name + ":2,S") if seen
                else os.path.join(base, "new", name))
        with open(path, "wb") as f:
            f.write(body)
        os.utime(path, (t, t))
        return path

    def start(self):
        self.conf = os.path.join(self.tmp, "mailhost.conf")
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(f"[general]\ndata_dir = {self.data}\nlog_level = info\n"
                    "log_target = stderr\n"
                    "[store]\nretention = Junk:seen=7d,unseen=30d;"
                    "Trash:any=14d\n"
                    f"[lmtp]\nenabled = true\nlisten = 127.0.0.1:{self.port}\n")
        self.logf = open(os.path.join(self.tmp, "mailhostd.log"), "w+")
        env = dict(os.environ, MH_TEST_RETENTION_SECONDS="2")
        self.proc = subprocess.Popen([MAILHOSTD, "--config", self.conf],
                                     stdout=self.logf, stderr=self.logf,
                                     env=env)

    def log(self):
        self.logf.flush()
        with open(self.logf.name) as f:
            return f.read()

    def wait_passes(self, n, timeout=60):
        deadline = time.time() + timeout
        while True:
            passes = re.findall(r"pass done: (\d+) accounts checked, (\d+) "
                                r"messages expunged, (\d+) failures",
                                self.log())
            if len(passes) >= n:
                return [tuple(map(int, p)) for p in passes]
            if time.time() > deadline or self.proc.poll() is not None:
                self.fail(f"no {n} retention passes: {self.log()}")
            time.sleep(0.1)

    def dump(self, user):
        p = subprocess.run([STORE_TOOL, self.maildir(user),
                            os.path.join(self.data, "index", "example.org",
                                         user), "dump"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l.split("\t") for l in p.stdout.decode().splitlines()
                if not l.startswith(("subscribed", "folder\t"))]
        return {(r[0], r[5]): int(r[2]) for r in rows}

    def test_timer_expunges_old_messages(self):
        gone = [self.put("alice", "Junk", 10, True, "junk seen 10d"),
                self.put("alice", "Junk", 40, False, "junk unseen 40d"),
                self.put("alice", "Trash", 20, True, "trash 20d"),
                self.put("carol", "Trash", 15, False, "carol trash 15d")]
        kept = [self.put("alice", "Junk", 3, True, "junk seen 3d"),
                self.put("alice", "Junk", 20, False, "junk unseen 20d"),
                self.put("alice", "Trash", 2, True, "trash 2d"),
                self.put("alice", "INBOX", 400, True, "inbox 400d")]
        # bob has no Maildir: skipped, and none is created for him.
        self.start()
        passes = self.wait_passes(1)
        self.assertEqual(passes[0], (2, 4, 0))
        for p in gone:
            self.assertFalse(os.path.exists(p), p)
        for p in kept:
            self.assertTrue(os.path.exists(p), p)
        self.assertFalse(os.path.exists(self.maildir("bob")))
        log = self.log()
        self.assertIn("retention: expunged 2 from Junk", log)
        self.assertIn("alice@example.org: 3 messages expunged", log)
        # The expunge went through the index: dovecot-uidlist was
        # rewritten without the removed names.
        with open(os.path.join(self.maildir("alice"), ".Junk",
                               "dovecot-uidlist")) as f:
            uidlist = f.read()
        for p in gone[:2]:
            self.assertNotIn(os.path.basename(p).split(":")[0], uidlist)
        for p in kept[:2]:
            self.assertIn(os.path.basename(p).split(":")[0], uidlist)
        before = self.dump("alice")
        self.assertEqual(sorted(s for _, s in before),
                         ["inbox 400d", "junk seen 3d", "junk unseen 20d",
                          "trash 2d"])

        # The timer goes on: a message that turns old meanwhile goes at
        # the next pass; the others keep their UIDs.
        late = self.put("alice", "Trash", 30, True, "late trash")
        passes = self.wait_passes(len(passes) + 2)
        self.assertFalse(os.path.exists(late))
        self.assertEqual(sum(p[1] for p in passes), 5)
        self.assertEqual(self.dump("alice"), before)

        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(30), 0, self.log())
        self.assertIn("shutdown complete", self.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
