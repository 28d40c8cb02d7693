#!/usr/bin/python3
"""UIDs survive index rebuilds (issue 7): what an IMAP client saw before
`mhctl index rebuild`, and before the account's index directory was
deleted outright, is what it sees after, over a real socket.

A client that caches mail by (UIDVALIDITY, UID) must never be told that a
UID now names another message, and a CONDSTORE client must never see
HIGHESTMODSEQ go backwards (RFC 7162 3.1.2.1), or it would miss changes.
So after each rebuild this checks, for INBOX and a second folder:
- UIDVALIDITY unchanged;
- every UID names the same message (by Message-ID) with the same flags
  and keywords;
- UIDNEXT not lower, HIGHESTMODSEQ not lower;
- a message delivered after the rebuild gets a UID above every UID seen
  before, also above the expunged ones (never reused).

Environment: MH_IMAPD, MH_MHCTL, MH_DELIVER (built programs)."""

import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_servers import OurImapd, have_ours  # noqa: E402


def message(n):
    return (f"From: Sender <sender@far.example>\r\n"
            f"To: alice@example.org\r\n"
            f"Subject: message {n}\r\n"
            f"Message-ID: <m{n}@far.example>\r\n"
            f"Date: Wed, 25 Nov 2026 10:{n:02d}:00 +0000\r\n"
            f"\r\n"
            f"Body of message {n}.\r\n").encode()


def ok(typ_data):
    typ, data = typ_data
    if typ != "OK":
        raise AssertionError(f"IMAP said {typ}: {data!r}")
    return data


def snapshot(m, folder):
    """(status dict, {uid: (message-id, frozenset of flags)}) of a folder."""
    data = ok(m.status(folder,
                       "(UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"))
    text = data[0].decode()
    status = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+)", text)}
    ok(m.select(folder, readonly=True))
    data = ok(m.uid("FETCH", "1:*",
                    "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"))
    msgs = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        flags = re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()
        mid = re.search(rb"<([^>]+)>", item[1]).group(1).decode()
        # \Recent depends on which session saw the message first.
        msgs[uid] = (mid, frozenset(f for f in flags if f != "\\Recent"))
    ok(m.close())
    return status, msgs


@unittest.skipUnless(have_ours(), "MH_IMAPD, MH_MHCTL, MH_DELIVER not set")
class Rebuild(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mh-imap-rebuild-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.srv = OurImapd(os.path.join(self.tmp, "ours"), plaintext=True)
        self.srv.start()
        self.addCleanup(self.srv.stop)

    def login(self):
        m = self.srv.imap(tls="none")
        self.addCleanup(self.logout, m)
        return m

    @staticmethod
    def logout(m):
        try:
            m.logout()
        except Exception:
            pass

    def fill(self):
        for n in range(1, 7):
            self.srv.deliver(message(n))
        m = self.login()
        ok(m.create("Work"))
        for n in range(7, 10):
            ok(m.append("Work", "(\\Flagged $Project)", None, message(n)))
        ok(m.select("INBOX"))
        ok(m.uid("STORE", "1,3", "+FLAGS", "(\\Seen $Label1)"))
        ok(m.uid("STORE", "4", "+FLAGS", "(\\Answered \\Draft)"))
        ok(m.uid("STORE", "2,5", "+FLAGS", "(\\Deleted)"))
        ok(m.expunge())
        ok(m.close())
        ok(m.select("Work"))
        ok(m.uid("STORE", "2", "-FLAGS", "(\\Flagged)"))
        ok(m.close())
        return m

    def check_same(self, before, after, what):
        for folder in before:
            (st0, msgs0), (st1, msgs1) = before[folder], after[folder]
            self.assertEqual(st1["UIDVALIDITY"], st0["UIDVALIDITY"],
                             f"{what}: UIDVALIDITY of {folder}")
            self.assertEqual(st1["MESSAGES"], st0["MESSAGES"], what)
            self.assertEqual(msgs1, msgs0, f"{what}: UIDs, messages and "
                                           f"flags of {folder}")
            self.assertGreaterEqual(st1["UIDNEXT"], st0["UIDNEXT"],
                                    f"{what}: UIDNEXT of {folder}")
            self.assertGreaterEqual(st1["HIGHESTMODSEQ"],
                                    st0["HIGHESTMODSEQ"],
                                    f"{what}: HIGHESTMODSEQ of {folder}")

    def state(self, m):
        return {f: snapshot(m, f) for f in ("INBOX", "Work")}

    def new_uid_above(self, before, n):
        """Delivers message @n; its UID must be above every UID seen."""
        self.srv.deliver(message(n))
        m = self.login()
        _, msgs = snapshot(m, "INBOX")
        new = [u for u, (mid, _) in msgs.items() if mid == f"m{n}@far.example"]
        self.assertEqual(len(new), 1, msgs)
        st0 = before["INBOX"][0]
        self.assertGreaterEqual(new[0], st0["UIDNEXT"],
                                "a UID handed out before the rebuild "
                                "(or an expunged one) was reused")

    def test_rebuild_and_lost_index_keep_uids(self):
        m = self.fill()
        before = self.state(m)
        inbox = before["INBOX"][1]
        # The set-up did what it meant to: UIDs 2 and 5 are gone.
        self.assertEqual(sorted(inbox), [1, 3, 4, 6])
        self.assertIn("$Label1", inbox[1][1])
        self.assertEqual(before["Work"][1][2][1], frozenset({"$Project"}))

        # 1. mhctl index rebuild while the server is stopped.
        self.srv.stop()
        self.srv.index_rebuild()
        self.srv.start()
        after = self.state(self.login())
        self.check_same(before, after, "after mhctl index rebuild")

        # 2. The index directory deleted: rebuilt from the Maildir and
        # dovecot-uidlist on the next open.
        self.srv.stop()
        index = os.path.join(self.srv.data, "index", "example.org", "alice")
        self.assertTrue(os.path.isdir(index), index)
        shutil.rmtree(index)
        self.srv.start()
        after = self.state(self.login())
        self.check_same(before, after, "after the index was deleted")

        # 3. New mail after both: a fresh UID.
        self.new_uid_above(before, 10)

    def test_rebuild_while_running(self):
        """mhctl index rebuild against a running server: refused with a
        clear error naming the problem, or done; either way, no UID
        changes meaning."""
        m = self.fill()
        before = self.state(m)
        p = __import__("subprocess").run(
            [self.srv.mhctl, "--data-dir", self.srv.data, "index",
             "rebuild", "alice@example.org"], capture_output=True,
            timeout=120)
        if p.returncode != 0:
            self.assertTrue(p.stderr.strip(), "a refusal must say why")
        after = self.state(self.login())
        self.check_same(before, after, "after a rebuild while running")
        self.new_uid_above(before, 11)


if __name__ == "__main__":
    unittest.main(verbosity=2)
