#!/usr/bin/python3
"""End-to-end tests of quotas (issue 4) through the real mhctl (MH_MHCTL):
`quota show|set|recalc`, `user add --storage`, `user set` / `domain set`
of quota settings, with their exit codes and messages; usage counted from
a Maildir written behind our back, and the maildirsize file we leave for
other tools. When dovecot and doveadm are installed and we are root, a
real Dovecot (quota plugin, `quota = maildir:User quota`, no limits of
its own) reads our maildirsize: limits and usage; and a message Dovecot
saves is seen by us without being counted twice."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

MHCTL = os.environ.get("MH_MHCTL")
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

GiB = 1 << 30


class Quota(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mhctl-quota-")
        self.data = os.path.join(self.tmp, "data")
        self.ok("domain", "add", "example.org")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_mhctl(self, *args, check=None):
        cmd = [MHCTL, "--data-dir", self.data] + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if check is not None:
            self.assertEqual(p.returncode, check,
                             f"{cmd}: rc {p.returncode}\nstdout: {out}\n"
                             f"stderr: {err}")
        return p.returncode, out, err

    def ok(self, *args):
        return self.run_mhctl(*args, check=0)[1]

    def fails(self, rc, message, *args):
        _, out, err = self.run_mhctl(*args, check=rc)
        self.assertIn(message, err)
        return err

    def show(self, target):
        return json.loads(self.ok("--json", "quota", "show", target))

    def maildir(self, local, domain="example.org"):
        return os.path.join(self.data, "mail", domain, local)

    def put(self, local, folder, name, body):
        """A message file written by 'another tool', its name carrying
        the right ,S= size."""
        md = self.maildir(local)
        base = md if folder == "INBOX" else os.path.join(md, "." + folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        path = os.path.join(base, "cur", f"{name},S={len(body)}:2,S")
        with open(path, "wb") as f:
            f.write(body)
        return path

    # -- limits and the domain-sum rule ----------------------------------

    def test_set_show_and_domain_sum(self):
        self.assertIn("storage 10 GiB, messages 1000",
                      self.ok("quota", "set", "example.org", "--storage",
                              "10G", "--messages", "1000"))
        self.ok("user", "add", "alice@example.org", "--storage", "6G")
        self.fails(2, "mhctl: user add: accounts of example.org would total "
                   "12 GiB, over the domain's 10 GiB",
                   "user", "add", "bob@example.org", "--storage", "6G")
        # Refused means not added.
        self.run_mhctl("user", "show", "bob@example.org", check=2)
        self.ok("user", "add", "bob@example.org", "--storage", "4G",
                "--messages", "100")
        self.fails(2, "mhctl: quota set: accounts of example.org would total "
                   "12 GiB, over the domain's 10 GiB",
                   "quota", "set", "bob@example.org", "--storage", "6G")
        self.fails(2, "would total 1100 messages, over the domain's 1000",
                   "quota", "set", "alice@example.org", "--messages", "1000")
        # The domain cannot shrink below its accounts; the user and domain
        # settings verbs follow the same rule.
        self.fails(2, "would total 10 GiB, over the domain's 9 GiB",
                   "quota", "set", "example.org", "--storage", "9G")
        self.fails(2, "would total 13 GiB", "user", "set",
                   "bob@example.org", "quota_bytes", "7G")
        self.fails(2, "over the domain's 9 GiB", "domain", "set",
                   "example.org", "quota_bytes", "9G")
        # A default per-account quota counts at user add.
        self.ok("quota", "set", "alice@example.org", "--storage", "5G")
        self.ok("quota", "set", "example.org", "--account-storage", "1G")
        self.ok("user", "add", "carol@example.org")          # 5 + 4 + 1
        self.fails(2, "would total 11 GiB, over the domain's 10 GiB",
                   "user", "add", "dave@example.org")

        a = self.show("alice@example.org")
        self.assertEqual(a["address"], "alice@example.org")
        self.assertEqual(a["bytes_limit"], 5 * GiB)
        self.assertEqual(a["messages_limit"], 0)
        self.assertEqual(self.show("carol@example.org")["bytes_limit"], GiB)
        d = self.show("example.org")
        self.assertEqual(d["domain"], "example.org")
        self.assertEqual(d["bytes_limit"], 10 * GiB)
        self.assertEqual(d["messages_limit"], 1000)
        self.assertEqual([x["address"] for x in d["accounts"]],
                         ["alice@example.org", "bob@example.org",
                          "carol@example.org"])
        everything = json.loads(self.ok("--json", "quota", "show"))
        self.assertEqual([x["domain"] for x in everything], ["example.org"])
        text = self.ok("quota", "show", "bob@example.org")
        self.assertIn("storage:  0 bytes of 4 GiB (0%)", text)
        self.assertIn("messages: 0 of 100 (0%)", text)
        # 'default' unsets: bob gets the domain's 1 GiB default.
        self.ok("quota", "set", "bob@example.org", "--storage", "default")
        self.assertEqual(self.show("bob@example.org")["bytes_limit"], GiB)

    def test_bad_input(self):
        self.ok("user", "add", "alice@example.org")
        self.fails(3, "mhctl: quota set: --storage: expected a size such as "
                   "500M or 2G, got 'lots'",
                   "quota", "set", "alice@example.org", "--storage", "lots")
        self.fails(3, "--messages: expected a number of messages",
                   "quota", "set", "alice@example.org", "--messages", "-3")
        self.fails(3, "--storage: expected a size", "user", "add",
                   "bob@example.org", "--storage", "big")
        self.fails(2, "nobody@example.org", "quota", "show",
                   "nobody@example.org")
        self.fails(2, "nowhere.example", "quota", "recalc", "nowhere.example")
        self.fails(2, "nowhere.example", "quota", "set", "nowhere.example",
                   "--storage", "1G")
        self.fails(1, "nothing to set", "quota", "set", "alice@example.org")
        self.fails(1, "not of an account", "quota", "set",
                   "alice@example.org", "--account-storage", "1G")
        self.fails(1, "which one?", "quota")
        self.fails(1, "unknown verb 'grow'", "quota", "grow")
        self.fails(1, "unknown option '--size'", "quota", "set",
                   "alice@example.org", "--size", "1G")
        self.fails(1, "--storage needs a value", "quota", "set",
                   "alice@example.org", "--storage")
        self.fails(1, "apply to quota set only", "quota", "show",
                   "--storage", "1G")
        self.fails(1, "expected at most one", "quota", "show", "a", "b")
        self.fails(1, "--storage/--messages does not apply here",
                   "user", "passwd", "alice@example.org", "--storage", "1G")
        self.assertIn("quota recalc", self.ok("quota", "--help"))
        self.assertIn("quota show", self.ok("--help"))

    # -- usage from files, recalc, maildirsize ----------------------------

    def test_recalc_from_files_and_maildirsize(self):
        self.ok("user", "add", "alice@example.org", "--storage", "10M",
                "--messages", "50")
        bodies = [b"Subject: one\n\n" + b"x" * 4000 + b"\n",
                  b"Subject: two\n\n" + b"y" * 1000 + b"\n",
                  b"Subject: three\n\nz\n"]
        paths = [self.put("alice", "INBOX", "1700000000.M1P1.host",
                          bodies[0]),
                 self.put("alice", "INBOX", "1700000001.M2P2.host",
                          bodies[1]),
                 self.put("alice", "Sent", "1700000002.M3P3.host",
                          bodies[2])]
        total = sum(len(b) for b in bodies)
        self.assertIn("example.org: 1 account(s) recounted",
                      self.ok("quota", "recalc", "example.org"))
        a = self.show("alice@example.org")
        self.assertEqual((a["bytes"], a["messages"]), (total, 3))
        self.assertEqual(a["messages_percent"], 6)
        with open(os.path.join(self.maildir("alice"), "maildirsize")) as f:
            self.assertEqual(f.read(), f"10485760S,50C\n{total} 3\n")
        d = self.show("example.org")
        self.assertEqual((d["bytes"], d["messages"]), (total, 3))

        # Removed behind our back: recalc sees it, and so does the file.
        os.unlink(paths[0])
        self.assertIn("alice@example.org: 1 account(s) recounted",
                      self.ok("quota", "recalc", "alice@example.org"))
        left = total - len(bodies[0])
        a = self.show("alice@example.org")
        self.assertEqual((a["bytes"], a["messages"]), (left, 2))
        self.assertEqual(self.show("example.org")["bytes"], left)
        with open(os.path.join(self.maildir("alice"), "maildirsize")) as f:
            self.assertEqual(f.read(), f"10485760S,50C\n{left} 2\n")
        # New limits reach the file's header.
        self.ok("quota", "set", "alice@example.org", "--messages",
                "unlimited")
        self.show("alice@example.org")
        with open(os.path.join(self.maildir("alice"), "maildirsize")) as f:
            self.assertEqual(f.read().split("\n")[0], "10485760S")
        self.assertIn("all domains: 1 account(s) recounted",
                      self.ok("quota", "recalc"))

    # -- Dovecot reads what we wrote ---------------------------------------

    @unittest.skipUnless(os.geteuid() == 0 and os.path.exists(DOVECOT)
                         and os.path.exists(DOVEADM),
                         "needs root, dovecot and doveadm")
    def test_dovecot_reads_maildirsize(self):
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.tmp, 0o755)
        self.ok("user", "add", "alice@example.org", "--storage", "10M",
                "--messages", "50")
        self.put("alice", "INBOX", "1700000000.M1P1.host",
                 b"Subject: one\n\n" + b"x" * 5000 + b"\n")
        self.put("alice", "INBOX", "1700000001.M2P2.host",
                 b"Subject: two\n\n" + b"y" * 3000 + b"\n")
        self.ok("quota", "recalc", "alice@example.org")
        md = self.maildir("alice")
        for root, dirs, files in os.walk(os.path.join(self.data, "mail")):
            for n in dirs + files:
                os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.data, 0o755)
        home = os.path.join(self.tmp, "home")
        os.makedirs(home)
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.tmp, d))
        users = os.path.join(self.tmp, "users")
        with open(users, "w") as f:
            f.write(f"alice:{{PLAIN}}x:{nobody.pw_uid}:{nobody.pw_gid}::"
                    f"{home}::\n")
        conf = os.path.join(self.tmp, "dovecot.conf")
        with open(conf, "w") as f:
            # No quota_rule: Dovecot takes the limits from maildirsize.
            f.write(f"""base_dir = {self.tmp}/run
state_dir = {self.tmp}/state
log_path = {self.tmp}/dovecot.log
ssl = no
protocols =
first_valid_uid = 1
mail_location = maildir:{md}
mail_plugins = quota
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
namespace inbox {{
  inbox = yes
  separator = .
}}
plugin {{
  quota = maildir:User quota
}}
""")
        proc = subprocess.Popen([DOVECOT, "-F", "-c", conf],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            sock = os.path.join(self.tmp, "run", "auth-userdb")
            deadline = time.time() + 20
            while not os.path.exists(sock):
                if time.time() > deadline or proc.poll() is not None:
                    self.fail("dovecot did not start")
                time.sleep(0.1)

            def dovecot_quota():
                p = subprocess.run([DOVEADM, "-c", conf, "-f", "tab",
                                    "quota", "get", "-u", "alice"],
                                   capture_output=True, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                rows = [line.split("\t") for line in
                        p.stdout.decode().strip().split("\n")[1:]]
                return {r[1]: (int(r[2]), r[3]) for r in rows}

            q = dovecot_quota()
            a = self.show("alice@example.org")
            # STORAGE in KiB, rounded up; limits from our header.
            self.assertEqual(q["STORAGE"],
                             ((a["bytes"] + 1023) // 1024, "10240"))
            self.assertEqual(q["MESSAGE"], (2, "50"))

            # Dovecot saves a message and appends its own line; we see the
            # message, and the file is not counted twice.
            msg = b"Subject: from dovecot\n\n" + b"d" * 2000 + b"\n"
            p = subprocess.run([DOVEADM, "-c", conf, "save", "-u", "alice"],
                               input=msg, capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            a2 = self.show("alice@example.org")
            self.assertEqual(a2["messages"], 3)
            self.assertEqual(a2["bytes"], a["bytes"] + len(msg))
            with open(os.path.join(md, "maildirsize")) as f:
                lines = f.read().strip().split("\n")
            sums = [sum(int(x.split()[i]) for x in lines[1:])
                    for i in (0, 1)]
            self.assertEqual(sums, [a2["bytes"], 3])
            self.assertEqual(dovecot_quota()["MESSAGE"], (3, "50"))
            self.assertEqual(dovecot_quota()["STORAGE"][0],
                             (a2["bytes"] + 1023) // 1024)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    if not MHCTL:
        print("MH_MHCTL is not set", file=sys.stderr)
        sys.exit(77)
    unittest.main(verbosity=2)
