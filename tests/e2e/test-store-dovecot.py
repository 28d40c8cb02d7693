#!/usr/bin/python3
"""Interoperability of lib/store with Dovecot (issue 4), both ways.

A real Dovecot (dovecot-imapd) is started on a free port of 127.0.0.1 with
a minimal configuration of its own (passwd-file user, maildir), and
driven with imaplib; our side is tests/e2e/store-tool (MH_STORE_TOOL).
1. We write a Maildir (folders with a non-ASCII name, flags, keywords,
   UIDs with a gap, a subscription); Dovecot must list the same folders,
   UIDVALIDITY, UIDs, flags and keywords.
2. Dovecot writes (CREATE, APPEND with flags and a keyword, STORE on our
   messages, EXPUNGE); we must read the same UIDs (APPENDUID), flags,
   keywords and folders.
3. We deliver again; Dovecot sees our new UID.
Dovecot refuses mail user uid 0, so both run as nobody on the Maildir
(Dovecot drops to the userdb uid; store-tool is started as nobody).
Exit 77 (skipped) without root or without Dovecot."""

import imaplib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

TOOL = os.environ.get("MH_STORE_TOOL")
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
NOBODY = 65534


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


class DovecotInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mh-dovecot-")
        os.chmod(cls.tmp, 0o755)
        cls.mail = os.path.join(cls.tmp, "mail")
        cls.index = os.path.join(cls.tmp, "index")
        home = os.path.join(cls.tmp, "home")
        for d in (cls.mail, cls.index, home):
            os.makedirs(d)
            os.chown(d, NOBODY, NOBODY)
        for d in ("run", "state"):
            os.makedirs(os.path.join(cls.tmp, d))
        users = os.path.join(cls.tmp, "users")
        with open(users, "w") as f:
            f.write(f"alice:{{PLAIN}}secret:{NOBODY}:{NOBODY}::{home}::\n")
        cls.port = free_port()
        cls.conf = os.path.join(cls.tmp, "dovecot.conf")
        with open(cls.conf, "w") as f:
            f.write(f"""base_dir = {cls.tmp}/run
state_dir = {cls.tmp}/state
log_path = {cls.tmp}/dovecot.log
ssl = no
disable_plaintext_auth = no
listen = 127.0.0.1
protocols = imap
first_valid_uid = 1
mail_location = maildir:{cls.mail}
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  inet_listener imap {{
    port = {cls.port}
  }}
}}
namespace inbox {{
  inbox = yes
  separator = .
}}
""")
        cls.proc = subprocess.Popen([DOVECOT, "-F", "-c", cls.conf],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), 1).close()
                break
            except OSError:
                if time.time() > deadline or cls.proc.poll() is not None:
                    raise RuntimeError("dovecot did not start: " + cls.log())
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def log(cls):
        try:
            with open(os.path.join(cls.tmp, "dovecot.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def tool(self, *args, stdin=None):
        p = subprocess.run([TOOL, self.mail, self.index] + list(args),
                           input=stdin, capture_output=True,
                           preexec_fn=as_nobody, timeout=60)
        self.assertEqual(p.returncode, 0,
                         f"store-tool {args}: {p.stderr.decode()}")
        return p.stdout.decode()

    def dump(self):
        """folder -> (uidvalidity, {uid: (flags, keywords, subject)})"""
        out = {}
        subs = []
        for line in self.tool("dump").splitlines():
            f = line.split("\t")
            if f[0] == "folder":
                out[f[1]] = (int(f[2]), {})
            elif f[0] == "subscribed":
                subs.append(f[1])
            else:
                out[f[0]][1][int(f[2])] = (f[3], f[4], f[5])
        return out, subs

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.login("alice", "secret")
        return m

    @staticmethod
    def imap_messages(m, mailbox):
        """UIDVALIDITY and {uid: set of flags} through IMAP."""
        typ, data = m.select(mailbox)
        assert typ == "OK", data
        uv = int(m.untagged_responses.get("UIDVALIDITY", [b"0"])[-1])
        typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
        msgs = {}
        for item in data:
            if not item:
                continue
            text = item.decode() if isinstance(item, bytes) else item[0].decode()
            mm = re.search(r"UID (\d+) FLAGS \(([^)]*)\)", text) or \
                re.search(r"FLAGS \(([^)]*)\) UID (\d+)", text)
            if mm is None:
                continue
            if mm.re.pattern.startswith("UID"):
                uid, flags = int(mm.group(1)), mm.group(2)
            else:
                flags, uid = mm.group(1), int(mm.group(2))
            msgs[uid] = set(flags.split()) - {"\\Recent"}
        return uv, msgs

    @staticmethod
    def to_imap_flags(letters, keywords):
        names = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged",
                 "T": "\\Deleted", "D": "\\Draft", "P": "$Forwarded"}
        out = {names[c] for c in letters if c in names}
        if keywords != "-":
            out |= set(keywords.split(","))
        return out

    def test_both_ways(self):
        msg = lambda n: f"From: a@example.org\nSubject: ours {n}\n\nbody {n}\n".encode()
        # --- 1. we write, Dovecot reads ------------------------------------
        self.tool("create", "Archive.2024")
        self.tool("create", "Entwürfe")
        self.tool("subscribe", "Entwürfe")
        u1 = int(self.tool("deliver", "INBOX", "S", "-", stdin=msg(1)))
        u2 = int(self.tool("deliver", "INBOX", "FR", "$Label1,Work",
                           stdin=msg(2)))
        u3 = int(self.tool("deliver", "INBOX", "-", "-", stdin=msg(3)))
        u4 = int(self.tool("deliver", "INBOX", "-", "-", stdin=msg(4)))
        self.tool("expunge", "INBOX", str(u3))            # a UID gap
        self.tool("deliver", "Entwürfe", "D", "-", stdin=msg(5))
        ours, subs = self.dump()
        self.assertEqual([u1, u2, u4], sorted(ours["INBOX"][1]))

        m = self.imap()
        typ, boxes = m.list()
        names = {b.decode().rsplit(" ", 1)[1].strip('"') for b in boxes}
        self.assertTrue({"INBOX", "Archive.2024", "Entw&APw-rfe"} <= names,
                        names)
        typ, lsub = m.lsub()
        self.assertIn("Entw&APw-rfe", b" ".join(lsub).decode())
        uv_inbox, seen = self.imap_messages(m, "INBOX")
        self.assertEqual(uv_inbox, ours["INBOX"][0])
        self.assertEqual(sorted(seen), [u1, u2, u4])
        for uid, (fl, kw, subj) in ours["INBOX"][1].items():
            self.assertEqual(seen[uid], self.to_imap_flags(fl, kw),
                             f"UID {uid}")
        uv, seen = self.imap_messages(m, "Entw&APw-rfe")
        self.assertEqual(uv, ours["Entwürfe"][0])
        self.assertEqual(list(seen.values()), [{"\\Draft"}])
        typ, data = m.select("INBOX")
        typ, data = m.uid("FETCH", str(u2), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"ours 2", data[0][1])

        # --- 2. Dovecot writes, we read ------------------------------------
        self.assertEqual(m.create("Dove.Sub")[0], "OK")
        typ, data = m.append("INBOX", r"(\Seen $Custom)", None,
                             b"Subject: from dovecot\r\n\r\nhello\r\n")
        self.assertEqual(typ, "OK", data)
        appended = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        typ, data = m.append("Dove.Sub", r"(\Flagged)", None,
                             b"Subject: in sub\r\n\r\nx\r\n")
        self.assertEqual(typ, "OK", data)
        m.select("INBOX")
        m.uid("STORE", str(u2), "-FLAGS", r"(\Flagged Work)")
        m.uid("STORE", str(u1), "+FLAGS", r"(\Deleted)")
        m.expunge()
        m.logout()

        ours, subs = self.dump()
        self.assertEqual(ours["INBOX"][0], uv_inbox)
        inbox = ours["INBOX"][1]
        self.assertEqual(sorted(inbox), [u2, u4, appended])
        self.assertEqual(inbox[appended][:2], ("S", "$Custom"))
        self.assertEqual(inbox[appended][2], "from dovecot")
        self.assertEqual(inbox[u2][:2], ("R", "$Label1"))
        self.assertIn("Dove.Sub", ours)
        self.assertEqual([v[:2] for v in ours["Dove.Sub"][1].values()],
                         [("F", "-")])
        self.assertIn("Entwürfe", subs)

        # --- 3. we deliver again, Dovecot sees our UID ---------------------
        u6 = int(self.tool("deliver", "INBOX", "-", "Work", stdin=msg(6)))
        self.assertGreater(u6, appended)
        m = self.imap()
        uv2, seen = self.imap_messages(m, "INBOX")
        self.assertEqual(uv2, uv_inbox)
        self.assertEqual(sorted(seen), [u2, u4, appended, u6])
        self.assertEqual(seen[u6], {"Work"})
        m.logout()


if __name__ == "__main__":
    if os.geteuid() != 0 or not os.path.exists(DOVECOT):
        print("skipped: needs root and dovecot-imapd", file=sys.stderr)
        sys.exit(77)
    if not TOOL:
        print("MH_STORE_TOOL not set", file=sys.stderr)
        sys.exit(2)
    unittest.main(verbosity=2)
