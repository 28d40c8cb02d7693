#!/usr/bin/python3
"""End-to-end tests of the IMAP account-level commands (issue 7,
lib/server/imap-account.c): QUOTA roots from lib/quota (account and
domain), METADATA following RENAME and dropped on DELETE, NOTIFY
MailboxMetadataChange/ServerMetadataChange between two sessions, and
CREATE (USE (...)) for any name kept as /private/specialuse metadata and
shown in LIST. mh-imapd on ephemeral ports, exact responses over real
sockets, imaplib as a real client.

Environment: MH_IMAPD, MH_MHCTL, MH_DELIVER (built binaries); certtool
(gnutls-bin) makes the certificate.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_servers import OurImapd, have_ours, USER, PASSWORD  # noqa: E402

MSG = (b"From: a@far.example\r\nTo: alice@example.org\r\n"
       b"Subject: hello\r\n\r\nbody\r\n")


class Raw:
    """An IMAP line client: cmd() returns the untagged lines and the
    tagged line (without the tag)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 15)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def line(self, timeout=15):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; have %r" % self.buf)
            self.buf += d
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out.decode("utf-8", "replace")

    def send(self, text):
        self.sock.sendall((text + "\r\n").encode())

    def cmd(self, text):
        self.n += 1
        t = "t%d" % self.n
        self.send("%s %s" % (t, text))
        lines = []
        while True:
            line = self.line()
            if line.startswith(t + " "):
                return lines, line[len(t) + 1:]
            lines.append(line)

    def pending(self, wait=0.5):
        """Untagged lines that arrive within @wait seconds."""
        lines = []
        end = time.time() + wait
        while True:
            left = end - time.time()
            if left <= 0:
                return lines
            try:
                lines.append(self.line(left))
            except (socket.timeout, TimeoutError):
                return lines

    def wait_for(self, pred, timeout=5):
        """Untagged lines up to the first one @pred accepts."""
        lines = []
        end = time.time() + timeout
        while time.time() < end:
            try:
                line = self.line(max(0.05, end - time.time()))
            except (socket.timeout, TimeoutError):
                break
            lines.append(line)
            if pred(line):
                return lines
        raise AssertionError("not seen in %ss; got %r" % (timeout, lines))

    def close(self):
        self.sock.close()


@unittest.skipUnless(have_ours() and shutil.which("certtool"),
                     "needs MH_IMAPD, MH_MHCTL, MH_DELIVER and certtool")
class AccountCommands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mh-imap-acct-")
        cls.srv = OurImapd(cls.tmp, plaintext=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.raws = []
        self.r = self.raw()
        # Every test starts with INBOX alone and no metadata.
        lines, tagged = self.r.cmd('LIST "" "*"')
        for l in lines:
            name = l.rsplit(" ", 1)[1].strip('"')
            if name.upper() != "INBOX":
                self.r.cmd('DELETE "%s"' % name)
        self.r.cmd('SETMETADATA INBOX (/private/comment NIL '
                   '/shared/comment NIL)')
        self.r.cmd('SETMETADATA "" (/private/comment NIL)')

    def tearDown(self):
        for r in self.raws:
            r.close()

    def raw(self):
        r = Raw(self.srv.port)
        self.assertEqual(r.cmd("LOGIN %s %s" % (USER, PASSWORD))[1][:2],
                         "OK")
        self.raws.append(r)
        return r

    # ---- QUOTA (RFC 9208) from lib/quota ---------------------------------

    def test_quota_roots(self):
        r = self.r
        self.srv.mhctl_run("quota", "set", USER, "--storage", "unlimited",
                           "--messages", "0")
        self.srv.mhctl_run("quota", "set", "example.org", "--storage", "0",
                           "--messages", "0")
        self.srv.deliver(MSG)
        # no limits anywhere: no root
        self.assertEqual(r.cmd("GETQUOTAROOT INBOX"),
                         (["* QUOTAROOT INBOX"], "OK Getquotaroot completed"))
        self.assertEqual(r.cmd('GETQUOTA ""'),
                         ([], "NO [NONEXISTENT] No quota limits on this "
                              "account"))
        # the account's own limits: root ""
        self.srv.mhctl_run("quota", "set", USER, "--storage", "10M",
                           "--messages", "100")
        self.assertEqual(r.cmd("GETQUOTAROOT INBOX"),
                         (['* QUOTAROOT INBOX ""',
                           '* QUOTA "" (STORAGE 1 10240 MESSAGE 1 100)'],
                          "OK Getquotaroot completed"))
        # lib/quota's usage follows a delivery at once
        self.srv.deliver(MSG)
        self.assertEqual(r.cmd('GETQUOTA ""'),
                         (['* QUOTA "" (STORAGE 1 10240 MESSAGE 2 100)'],
                          "OK Getquota completed"))
        # the domain's total: a second root, named after the domain
        self.srv.mhctl_run("quota", "set", "example.org", "--storage",
                           "100M")
        self.assertEqual(r.cmd("GETQUOTAROOT INBOX"),
                         (['* QUOTAROOT INBOX "" example.org',
                           '* QUOTA "" (STORAGE 1 10240 MESSAGE 2 100)',
                           '* QUOTA example.org (STORAGE 1 102400)'],
                          "OK Getquotaroot completed"))
        self.assertEqual(r.cmd("GETQUOTA example.org"),
                         (['* QUOTA example.org (STORAGE 1 102400)'],
                          "OK Getquota completed"))
        self.assertEqual(r.cmd("GETQUOTA Example.ORG"),
                         (['* QUOTA example.org (STORAGE 1 102400)'],
                          "OK Getquota completed"))
        self.assertEqual(r.cmd("GETQUOTA other.example"),
                         ([], "NO [NONEXISTENT] No such quota root"))
        # only the domain limited: the account's limits come from the
        # domain's defaults when it has them
        self.srv.mhctl_run("quota", "set", USER, "--storage", "default",
                           "--messages", "default")
        self.srv.mhctl_run("quota", "set", "example.org",
                           "--account-messages", "50")
        r.cmd("CREATE Work")
        self.assertEqual(r.cmd("GETQUOTAROOT Work"),
                         (['* QUOTAROOT Work "" example.org',
                           '* QUOTA "" (MESSAGE 2 50)',
                           '* QUOTA example.org (STORAGE 1 102400)'],
                          "OK Getquotaroot completed"))
        self.assertEqual(r.cmd("GETQUOTAROOT Nope"),
                         ([], "NO [NONEXISTENT] Mailbox doesn't exist"))
        self.assertEqual(r.cmd('SETQUOTA "" (STORAGE 1)'),
                         ([], "NO [NOPERM] Quota limits are set by the "
                              "administrator"))
        self.srv.mhctl_run("quota", "set", "example.org", "--storage", "0",
                           "--account-messages", "default")
        self.assertEqual(r.cmd("GETQUOTAROOT INBOX"),
                         (["* QUOTAROOT INBOX"], "OK Getquotaroot completed"))
        r.cmd("SELECT INBOX")
        r.cmd("STORE 1:* +FLAGS (\\Deleted)")
        r.cmd("CLOSE")

    # ---- METADATA follows RENAME, goes with DELETE (RFC 5464 3.3) -------

    def test_metadata_rename_delete(self):
        r = self.r
        for box in ("Proj", "Proj.Sub", "Projector", "Other"):
            self.assertEqual(r.cmd("CREATE %s" % box)[1], "OK Create completed")
        self.assertEqual(r.cmd('SETMETADATA Proj (/private/comment "p")'),
                         ([], "OK Setmetadata completed"))
        r.cmd('SETMETADATA Proj.Sub (/private/comment "s" '
              '/shared/comment "t")')
        r.cmd('SETMETADATA Projector (/private/comment "x")')
        self.assertEqual(r.cmd("RENAME Proj Work"),
                         ([], "OK Rename completed"))
        self.assertEqual(r.cmd("GETMETADATA Work /private/comment"),
                         (['* METADATA Work (/private/comment "p")'],
                          "OK Getmetadata completed"))
        self.assertEqual(r.cmd("GETMETADATA Work.Sub (/private/comment "
                               "/shared/comment)"),
                         (['* METADATA Work.Sub (/private/comment "s" '
                           '/shared/comment "t")'],
                          "OK Getmetadata completed"))
        # a name sharing the prefix is another mailbox: untouched
        self.assertEqual(r.cmd("GETMETADATA Projector /private/comment"),
                         (['* METADATA Projector (/private/comment "x")'],
                          "OK Getmetadata completed"))
        # a new mailbox of the old name starts without any
        r.cmd("CREATE Proj")
        self.assertEqual(r.cmd("GETMETADATA Proj /private/comment"),
                         (['* METADATA Proj (/private/comment NIL)'],
                          "OK Getmetadata completed"))
        # DELETE drops the mailbox's own entries; recreating finds none
        self.assertEqual(r.cmd("DELETE Work.Sub"),
                         ([], "OK Delete completed"))
        r.cmd("CREATE Work.Sub")
        self.assertEqual(r.cmd("GETMETADATA Work.Sub /private/comment"),
                         (['* METADATA Work.Sub (/private/comment NIL)'],
                          "OK Getmetadata completed"))
        self.assertEqual(r.cmd("GETMETADATA Work /private/comment"),
                         (['* METADATA Work (/private/comment "p")'],
                          "OK Getmetadata completed"))
        # RENAME INBOX leaves INBOX (and its metadata) where it is
        r.cmd('SETMETADATA INBOX (/private/comment "in")')
        self.assertEqual(r.cmd("RENAME INBOX Old"),
                         ([], "OK Rename completed"))
        self.assertEqual(r.cmd("GETMETADATA INBOX /private/comment"),
                         (['* METADATA INBOX (/private/comment "in")'],
                          "OK Getmetadata completed"))
        self.assertEqual(r.cmd("GETMETADATA Old /private/comment"),
                         (['* METADATA Old (/private/comment NIL)'],
                          "OK Getmetadata completed"))

    # ---- NOTIFY metadata events (RFC 5465 5.7, 5.8) ----------------------

    def test_notify_metadata(self):
        r = self.r
        r.cmd("CREATE Lists")
        r.cmd("CREATE Quiet")
        w = self.raw()
        self.assertEqual(w.cmd("NOTIFY SET (MAILBOXES (Lists INBOX) "
                               "(MailboxMetadataChange)) (SELECTED "
                               "(MessageNew MessageExpunge)) (PERSONAL "
                               "(ServerMetadataChange))"),
                         ([], "OK NOTIFY completed"))
        self.assertEqual(r.cmd('SETMETADATA Lists (/private/comment "a" '
                               '/shared/comment "b")'),
                         ([], "OK Setmetadata completed"))
        got = w.wait_for(lambda l: l.startswith("* METADATA Lists "
                                                "/shared/comment"))
        self.assertEqual(got, ["* METADATA Lists /private/comment",
                               "* METADATA Lists /shared/comment"])
        # a mailbox no group covers for metadata: nothing
        r.cmd('SETMETADATA Quiet (/private/comment "q")')
        self.assertEqual(w.pending(1.0), [])
        # the server's entries
        r.cmd('SETMETADATA "" (/private/comment "srv")')
        self.assertEqual(w.wait_for(lambda l: True),
                         ['* METADATA "" /private/comment'])
        # a removal is a change too
        r.cmd("SETMETADATA Lists (/shared/comment NIL)")
        self.assertEqual(w.wait_for(lambda l: True),
                         ["* METADATA Lists /shared/comment"])
        # the session's own change is not told back to it
        self.assertEqual(w.cmd('SETMETADATA INBOX (/private/comment '
                               '"mine")'),
                         ([], "OK Setmetadata completed"))
        self.assertEqual(w.pending(1.0), [])
        # another process (a second server on the same data directory)
        other = OurImapd(self.tmp, plaintext=True, create_user=False,
                         data=self.srv.data)
        other.start()
        try:
            o = Raw(other.port)
            o.cmd("LOGIN %s %s" % (USER, PASSWORD))
            self.assertEqual(o.cmd('SETMETADATA INBOX (/private/comment '
                                   '"from afar")')[1],
                             "OK Setmetadata completed")
            self.assertEqual(w.wait_for(lambda l: True),
                             ["* METADATA INBOX /private/comment"])
            o.close()
        finally:
            other.stop()
        self.assertEqual(w.cmd("NOTIFY NONE"), ([], "OK NOTIFY completed"))
        r.cmd('SETMETADATA Lists (/private/comment "c")')
        self.assertEqual(w.pending(1.0), [])

    # ---- CREATE (USE (...)) for any name (RFC 6154) ----------------------

    def test_special_use(self):
        r = self.r
        self.assertEqual(r.cmd("CREATE Old-Mail (USE (\\Archive))"),
                         ([], "OK Create completed"))
        self.assertEqual(r.cmd('LIST "" Old-Mail'),
                         (['* LIST (\\HasNoChildren \\Archive) "." Old-Mail'],
                          "OK List completed"))
        self.assertEqual(r.cmd("GETMETADATA Old-Mail /private/specialuse"),
                         (['* METADATA Old-Mail (/private/specialuse '
                           '"\\\\Archive")'],
                          "OK Getmetadata completed"))
        self.assertEqual(r.cmd("CREATE Bin (USE (\\trash \\Junk))"),
                         ([], "OK Create completed"))
        lines, tagged = r.cmd('LIST (SPECIAL-USE) "" "*"')
        self.assertEqual(tagged, "OK List completed")
        self.assertEqual(lines,
                         ['* LIST (\\HasNoChildren \\Trash \\Junk) "." Bin',
                          '* LIST (\\HasNoChildren \\Archive) "." Old-Mail'])
        lines, tagged = r.cmd('LIST "" "*" RETURN (SPECIAL-USE)')
        self.assertIn('* LIST (\\HasNoChildren \\Archive) "." Old-Mail',
                      lines)
        self.assertIn('* LIST (\\HasNoChildren) "." INBOX', lines)
        # refused: nothing created
        self.assertEqual(r.cmd("CREATE Everything (USE (\\All))"),
                         ([], "NO [USEATTR] \\All is not supported here "
                              "(no virtual mailboxes)"))
        self.assertEqual(r.cmd("CREATE X (USE (\\Bogus))"),
                         ([], "NO [USEATTR] Unknown special-use attribute "
                              "\\Bogus (known: \\Archive \\Drafts \\Junk "
                              "\\Sent \\Trash)"))
        self.assertEqual(r.cmd('LIST "" Everything'),
                         ([], "OK List completed"))
        # settable with SETMETADATA, checked the same way
        r.cmd("CREATE Plain")
        self.assertEqual(r.cmd('SETMETADATA Plain (/private/specialuse '
                               '"\\\\sent")'),
                         ([], "OK Setmetadata completed"))
        self.assertEqual(r.cmd('LIST "" Plain'),
                         (['* LIST (\\HasNoChildren \\Sent) "." Plain'],
                          "OK List completed"))
        self.assertEqual(r.cmd('SETMETADATA Plain (/private/specialuse '
                               '"\\\\Flagged")'),
                         ([], "NO [USEATTR] \\Flagged is not supported "
                              "here (no virtual mailboxes)"))
        self.assertEqual(r.cmd('SETMETADATA Plain (/private/specialuse '
                               'NIL)'),
                         ([], "OK Setmetadata completed"))
        self.assertEqual(r.cmd('LIST "" Plain'),
                         (['* LIST (\\HasNoChildren) "." Plain'],
                          "OK List completed"))
        # role folders keep theirs
        self.assertEqual(r.cmd("CREATE Sent (USE (\\Sent))"),
                         ([], "OK Create completed"))
        self.assertEqual(r.cmd("GETMETADATA Sent /private/specialuse"),
                         (['* METADATA Sent (/private/specialuse '
                           '"\\\\Sent")'],
                          "OK Getmetadata completed"))
        self.assertEqual(r.cmd('SETMETADATA Sent (/private/specialuse '
                               '"\\\\Trash")'),
                         ([], "NO [USEATTR] Sent keeps its special use "
                              "\\Sent"))
        self.assertEqual(r.cmd("CREATE Drafts (USE (\\Junk))"),
                         ([], "NO [USEATTR] \\Junk cannot be given to "
                              "Drafts: it keeps its special use \\Drafts"))
        # the attribute follows RENAME and goes with DELETE
        self.assertEqual(r.cmd("RENAME Old-Mail Attic"),
                         ([], "OK Rename completed"))
        self.assertEqual(r.cmd('LIST "" Attic'),
                         (['* LIST (\\HasNoChildren \\Archive) "." Attic'],
                          "OK List completed"))
        r.cmd("DELETE Attic")
        r.cmd("CREATE Attic")
        self.assertEqual(r.cmd('LIST "" Attic'),
                         (['* LIST (\\HasNoChildren) "." Attic'],
                          "OK List completed"))
        # imaplib, a real client, sees it as well
        m = self.srv.imap(tls="none")
        typ, data = m.list('""', "Bin")
        self.assertEqual((typ, data),
                         ("OK", [b'(\\HasNoChildren \\Trash \\Junk) "." Bin']))
        m.logout()

    # ---- many idle accounts: one inotify instance (lib/store/watch.c) ----

    def test_many_idle_accounts(self):
        n = 140  # more than the kernel's default 128 instances per user
        users = ["idle%d@example.org" % i for i in range(n)]
        self.srv.mhctl_run("import", "-", stdin="".join(
            "%s {PLAIN}pw-%d\n" % (u, i) for i, u in enumerate(users)))
        conns = []
        try:
            for i, u in enumerate(users):
                c = Raw(self.srv.port)
                conns.append(c)
                self.assertEqual(c.cmd("LOGIN %s pw-%d" % (u, i))[1][:2],
                                 "OK")
                c.cmd("SELECT INBOX")
                c.send("i IDLE")
                self.assertEqual(c.line(), "+ idling")
            fds = os.listdir("/proc/%d/fd" % self.srv.proc.pid)
            kinds = []
            for fd in fds:
                try:
                    kinds.append(os.readlink("/proc/%d/fd/%s"
                                             % (self.srv.proc.pid, fd)))
                except OSError:
                    pass
            self.assertEqual(kinds.count("anon_inode:inotify"), 1)
            p = subprocess.run([self.srv.deliver_prog, "--data-dir",
                                self.srv.data, "-f", "a@far.example",
                                users[77]], input=MSG, capture_output=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(conns[77].wait_for(lambda l: "EXISTS" in l),
                             ["* 1 EXISTS"])
            for i in (0, 76, 78, n - 1):
                self.assertEqual(conns[i].pending(0.2), [])
        finally:
            for c in conns:
                c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
