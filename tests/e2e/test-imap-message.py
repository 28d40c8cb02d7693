#!/usr/bin/python3
"""End-to-end tests of the IMAP message commands (issue 7): FETCH, STORE,
COPY, MOVE, EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT, APPEND (MULTIAPPEND),
the SEARCH driver (BADCHARSET, SEARCHRES), QUOTA, METADATA and NOTIFY
against mh-imapd on ephemeral ports, with a raw line client for exact
responses and Python's imaplib as a real client.

Environment: MH_IMAPD, MH_MHCTL, MH_DELIVER (built binaries); certtool
(gnutls-bin) makes the certificate.
"""
import imaplib
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_servers import OurImapd, have_ours, USER, PASSWORD  # noqa: E402

for _c in ("GETMETADATA", "SETMETADATA", "NOTIFY", "UNSELECT", "MOVE"):
    imaplib.Commands.setdefault(_c, ("AUTH", "SELECTED"))


def message(n):
    return ("From: Sender %d <s%d@far.example>\r\nTo: alice@example.org\r\n"
            "Subject: message %d\r\nMessage-ID: <m%d@far.example>\r\n"
            "Date: Tue, 24 Nov 2026 10:00:0%d +0000\r\n\r\nbody %d\r\n"
            % (n, n, n, n, n % 10, n)).encode()


def no_recent(result):
    lines, tagged = result
    return [l for l in lines if not re.match(r"^\* \d+ RECENT$", l)], tagged


class Raw:
    """An IMAP line client: cmd() returns the untagged lines (a literal
    is kept inline as "{n}" + CRLF + data) and the tagged line."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 15)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; have %r" % self.buf)
            self.buf += d
        out, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", out)
        if m:
            n = int(m.group(1))
            while len(self.buf) < n:
                self.buf += self.sock.recv(65536)
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            out += self.line().encode()
        return out.decode("utf-8", "replace")

    def cmd(self, text):
        self.n += 1
        t = "t%d" % self.n
        self.sock.sendall(("%s %s\r\n" % (t, text)).encode())
        lines = []
        while True:
            line = self.line()
            if line.startswith(t + " "):
                return lines, line[len(t) + 1:]
            lines.append(line)

    def send_literal_cmd(self, parts):
        """parts: a command line split at its synchronising literals."""
        self.n += 1
        t = "t%d" % self.n
        self.sock.sendall(("%s %s" % (t, parts[0])).encode())
        for p in parts[1:]:
            cont = self.line()
            assert cont.startswith("+"), cont
            self.sock.sendall(p if isinstance(p, bytes) else p.encode())
        lines = []
        while True:
            line = self.line()
            if line.startswith(t + " "):
                return lines, line[len(t) + 1:]
            lines.append(line)

    def close(self):
        self.sock.close()


@unittest.skipUnless(have_ours() and shutil.which("certtool"),
                     "needs MH_IMAPD, MH_MHCTL, MH_DELIVER and certtool")
class MessageCommands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Speed, not what is checked: the data directory lives on tmpfs
        # when there is one (every delivery, flag change and expunge
        # fsyncs; durability is not tested here), and the password is
        # stored {PLAIN} so the two LOGINs per test cost no hashing.
        shm = "/dev/shm"
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) \
            else None
        cls.tmp = tempfile.mkdtemp(prefix="mh-imap-msg-", dir=base)
        cls.srv = OurImapd(cls.tmp, plaintext=True, plain_hash=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        # Every test starts from an empty INBOX and no other folder, and
        # its own session in the authenticated state. The clean-up runs
        # in a session of its own, so nothing it selected or enabled
        # carries over.
        c = Raw(self.srv.port)
        try:
            _, tagged = c.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))
            self.assertTrue(tagged.startswith("OK"), tagged)
            lines, _ = c.cmd('LIST "" "*"')
            for line in lines:
                name = line.rsplit(" ", 1)[1]
                if name.strip('"').upper() != "INBOX":
                    c.cmd("DELETE " + name)
            lines, tagged = c.cmd("SELECT INBOX")
            self.assertTrue(tagged.startswith("OK"), tagged)
            if "* 0 EXISTS" not in lines:
                c.cmd("STORE 1:* +FLAGS.SILENT (\\Deleted)")
                c.cmd("EXPUNGE")
            c.cmd("LOGOUT")
        finally:
            c.close()
        self.r = Raw(self.srv.port)
        _, tagged = self.r.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))
        self.assertTrue(tagged.startswith("OK"), tagged)

    def tearDown(self):
        self.r.close()

    def deliver(self, *ns):
        for n in ns:
            self.srv.deliver(message(n))

    def select(self, box="INBOX"):
        lines, tagged = self.r.cmd("SELECT " + box)
        self.assertTrue(tagged.startswith("OK"), tagged)
        return lines

    def status(self, box, items):
        lines, tagged = self.r.cmd("STATUS %s (%s)" % (box, items))
        self.assertTrue(tagged.startswith("OK"), tagged)
        return {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+)",
                                                   lines[0])}

    def uids(self):
        lines, tagged = self.r.cmd("UID SEARCH ALL")
        return [int(x) for x in lines[0].split()[2:]]

    # ---- FETCH ----------------------------------------------------------

    def test_fetch_attributes_and_sets(self):
        self.deliver(1, 2, 3)
        self.select()
        u = self.uids()
        lines, tagged = self.r.cmd(
            "UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
        self.assertEqual(tagged, "OK Fetch completed")
        self.assertEqual(len(lines), 3)
        for i, line in enumerate(lines):
            self.assertRegex(
                line,
                r'^\* %d FETCH \(UID %d FLAGS \(\\Recent\) INTERNALDATE '
                r'"\d\d-[A-Z][a-z][a-z]-\d{4} \d\d:\d\d:\d\d [+-]\d{4}" '
                r'RFC822.SIZE \d+ ENVELOPE \("Tue, 24 Nov 2026 10:00:0%d '
                r'\+0000" "message %d" \(\("Sender %d" NIL "s%d" '
                r'"far.example"\)\)' % (i + 1, u[i], i + 1, i + 1, i + 1,
                                        i + 1))
        # Sequence numbers beyond the mailbox are BAD; missing UIDs are
        # skipped; "n:*" beyond the last UID still names the last one.
        self.assertEqual(self.r.cmd("FETCH 4 FLAGS"),
                         ([], "BAD Invalid messageset: 4 is beyond the last "
                              "message (3)"))
        self.assertEqual(self.r.cmd("UID FETCH 900:901 FLAGS"),
                         ([], "OK Fetch completed"))
        self.assertEqual(self.r.cmd("UID FETCH 900:* UID"),
                         (["* 3 FETCH (UID %d)" % u[2]],
                          "OK Fetch completed"))

    def test_fetch_body_sets_seen(self):
        self.deliver(1, 2)
        self.select()
        lines, tagged = self.r.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS "
                                   "(Subject)])")
        self.assertEqual(tagged, "OK Fetch completed")
        self.assertEqual(lines, ['* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] '
                                 '{22}\r\nSubject: message 1\r\n\r\n)'])
        lines, tagged = self.r.cmd("FETCH 2 (BODY[TEXT])")
        # (\Recent: imap.c's resync after the \Seen change may drop it,
        # reported to the session owner.)
        self.assertRegex(lines[0], r"^\* 2 FETCH \(BODY\[TEXT\] \{8\}\r\n"
                                   r"body 2\r\n FLAGS \(\\Seen( \\Recent)?\)\)$")
        self.assertEqual(len(lines), 1)
        # EXAMINE: nothing is set.
        self.r.cmd("EXAMINE INBOX")
        lines, _ = self.r.cmd("FETCH 1 (BODY[TEXT])")
        self.assertEqual(lines, ["* 1 FETCH (BODY[TEXT] {8}\r\nbody 1\r\n)"])

    def test_fetch_condstore(self):
        self.deliver(1, 2)
        self.select()
        u = self.uids()
        lines, _ = self.r.cmd("FETCH 1:* (UID MODSEQ)")
        m = [int(re.search(r"MODSEQ \((\d+)\)", l).group(1)) for l in lines]
        self.r.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)")
        lines, tagged = self.r.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)"
                                   % max(m))
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], r"^\* 2 FETCH \(UID %d FLAGS \(\\Flagged"
                                   r"( \\Recent)?\) MODSEQ \(\d+\)\)$" % u[1])

    # ---- STORE ----------------------------------------------------------

    def test_store(self):
        self.deliver(1, 2, 3)
        self.select()
        u = self.uids()
        self.r.cmd("ENABLE IMAP4rev2")
        self.assertEqual(self.r.cmd("STORE 1:2 +FLAGS (\\Flagged)"),
                         (["* 1 FETCH (FLAGS (\\Flagged))",
                           "* 2 FETCH (FLAGS (\\Flagged))"],
                          "OK Store completed"))
        self.assertEqual(self.r.cmd("UID STORE %d -FLAGS (\\Flagged)" % u[1]),
                         (["* 2 FETCH (UID %d FLAGS ())" % u[1]],
                          "OK Store completed"))
        self.assertEqual(self.r.cmd("STORE 3 FLAGS.SILENT (\\Seen)"),
                         ([], "OK Store completed"))
        lines, tagged = self.r.cmd("STORE 1 +FLAGS (\\Recent)")
        self.assertEqual(lines, [])
        self.assertTrue(tagged.startswith("BAD ") and "Recent" in tagged,
                        tagged)
        self.assertEqual(self.r.cmd("FETCH 1:3 FLAGS"),
                         (["* 1 FETCH (FLAGS (\\Flagged))",
                           "* 2 FETCH (FLAGS ())",
                           "* 3 FETCH (FLAGS (\\Seen))"],
                          "OK Fetch completed"))

    def test_store_unchangedsince(self):
        self.deliver(1, 2)
        self.select()
        u = self.uids()
        lines, _ = self.r.cmd("FETCH 1:* (MODSEQ)")
        m1 = int(re.search(r"MODSEQ \((\d+)\)", lines[0]).group(1))
        lines, tagged = self.r.cmd(
            "UID STORE 1:* (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Answered)"
            % m1)
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], r"^\* 1 FETCH \(UID %d MODSEQ \(\d+\)\)$"
                         % u[0])
        self.assertEqual(tagged, "OK [MODIFIED %d] Conditional STORE failed"
                         % u[1])

    def test_store_read_only(self):
        self.deliver(1)
        self.r.cmd("EXAMINE INBOX")
        self.assertEqual(self.r.cmd("STORE 1 +FLAGS (\\Seen)"),
                         ([], "NO [READ-ONLY] Mailbox is read-only"))

    # ---- COPY, MOVE, EXPUNGE, CLOSE, UNSELECT ----------------------------

    def test_copy_move(self):
        self.deliver(1, 2, 3)
        self.select()
        u = self.uids()
        self.assertEqual(self.r.cmd("COPY 1 Nowhere"),
                         ([], "NO [TRYCREATE] Mailbox doesn't exist: Nowhere"))
        self.r.cmd("CREATE Dest")
        st = self.status("Dest", "UIDVALIDITY UIDNEXT")
        v, nxt = st["UIDVALIDITY"], st["UIDNEXT"]
        self.assertEqual(self.r.cmd("COPY 1:2 Dest"),
                         ([], "OK [COPYUID %d %d:%d %d:%d] Copy completed"
                          % (v, u[0], u[1], nxt, nxt + 1)))
        # (IMAP4rev1: imap.c may restate RECENT after the expunges.)
        self.assertEqual(no_recent(self.r.cmd("UID MOVE %d,%d Dest"
                                              % (u[0], u[2]))),
                         (["* OK [COPYUID %d %d,%d %d:%d] Moved UIDs."
                           % (v, u[0], u[2], nxt + 2, nxt + 3),
                           "* 3 EXPUNGE", "* 1 EXPUNGE"],
                          "OK Move completed"))
        lines, _ = self.r.cmd("STATUS Dest (MESSAGES)")
        self.assertEqual(lines, ["* STATUS Dest (MESSAGES 4)"])
        # QRESYNC turns the expunges into VANISHED.
        self.r.cmd("ENABLE QRESYNC")
        self.assertEqual(no_recent(self.r.cmd("MOVE 1 Dest")),
                         (["* OK [COPYUID %d %d %d] Moved UIDs."
                           % (v, u[1], nxt + 4), "* VANISHED %d" % u[1]],
                          "OK Move completed"))

    def test_expunge(self):
        self.deliver(1, 2, 3, 4)
        self.select()
        u = self.uids()
        self.r.cmd("STORE 2:4 +FLAGS.SILENT (\\Deleted)")
        # (IMAP4rev1: RECENT may be restated after expunges, as Dovecot does.)
        self.assertEqual(no_recent(self.r.cmd("UID EXPUNGE %d" % u[2])),
                         (["* 3 EXPUNGE"], "OK Expunge completed"))
        self.assertEqual(no_recent(self.r.cmd("EXPUNGE")),
                         (["* 3 EXPUNGE", "* 2 EXPUNGE"],
                          "OK Expunge completed"))
        lines, _ = self.r.cmd("UID SEARCH ALL")
        self.assertEqual(lines, ["* SEARCH %d" % u[0]])

    def test_fetch_vanished_earlier(self):
        self.deliver(1, 2, 3)
        self.r.cmd("ENABLE QRESYNC")
        self.select()
        u = self.uids()
        lines, _ = self.r.cmd("FETCH 3 (MODSEQ)")
        m = int(re.search(r"MODSEQ \((\d+)\)", lines[0]).group(1))
        self.r.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(no_recent(self.r.cmd("EXPUNGE")),
                         (["* VANISHED %d" % u[1]], "OK Expunge completed"))
        lines, tagged = self.r.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d "
                                   "VANISHED)" % m)
        self.assertEqual(tagged, "OK Fetch completed")
        self.assertEqual(lines, ["* VANISHED (EARLIER) %d" % u[1]])
        # VANISHED needs UID FETCH (RFC 7162 3.6).
        _, tagged = self.r.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)"
                               % m)
        self.assertTrue(tagged.startswith("BAD "), tagged)

    def test_close_and_unselect(self):
        self.deliver(1, 2)
        self.select()
        self.r.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(self.r.cmd("UNSELECT"),
                         ([], "OK Unselect completed"))
        lines, _ = self.r.cmd("STATUS INBOX (MESSAGES)")
        self.assertEqual(lines, ["* STATUS INBOX (MESSAGES 2)"])
        self.r.cmd("EXAMINE INBOX")
        self.assertEqual(self.r.cmd("CLOSE"), ([], "OK Close completed"))
        lines, _ = self.r.cmd("STATUS INBOX (MESSAGES)")
        self.assertEqual(lines, ["* STATUS INBOX (MESSAGES 2)"])
        self.select()
        self.assertEqual(self.r.cmd("CLOSE"), ([], "OK Close completed"))
        lines, _ = self.r.cmd("STATUS INBOX (MESSAGES)")
        self.assertEqual(lines, ["* STATUS INBOX (MESSAGES 1)"])
        # Back in the authenticated state.
        _, tagged = self.r.cmd("FETCH 1 FLAGS")
        self.assertTrue(tagged.startswith("BAD"), tagged)

    # ---- APPEND ----------------------------------------------------------

    def test_append(self):
        self.r.cmd("CREATE Box")
        lines, _ = self.r.cmd("STATUS Box (UIDVALIDITY)")
        v = int(re.search(r"UIDVALIDITY (\d+)", lines[0]).group(1))
        msg = b"Subject: appended\r\n\r\nhello\r\n"
        lines, tagged = self.r.send_literal_cmd(
            ['APPEND Box (\\Seen $Work) "05-Jan-2024 10:11:12 +0100" '
             '{%d}\r\n' % len(msg), msg + b"\r\n"])
        self.assertEqual(tagged, "OK [APPENDUID %d 1] Append completed" % v)
        # MULTIAPPEND: two messages, two UIDs.
        lines, tagged = self.r.send_literal_cmd(
            ['APPEND Box {%d}\r\n' % len(msg),
             msg + b" (\\Flagged) {%d}\r\n" % len(msg), msg + b"\r\n"])
        self.assertEqual(tagged, "OK [APPENDUID %d 2:3] Append completed" % v)
        lines, tagged = self.r.send_literal_cmd(
            ['APPEND Nope {%d}\r\n' % len(msg), msg + b"\r\n"])
        self.assertEqual(tagged, "NO [TRYCREATE] Mailbox doesn't exist: Nope")
        self.r.cmd("EXAMINE Box")
        lines, _ = self.r.cmd("FETCH 1:3 (FLAGS INTERNALDATE)")
        self.assertEqual(len(lines), 3)
        # (\Recent: no session claimed them yet.)
        self.assertRegex(lines[0], r"FLAGS \(\\Seen (\\Recent )?\$Work\)")
        self.assertRegex(lines[1], r"FLAGS \((\\Recent)?\)")
        self.assertRegex(lines[2], r"FLAGS \(\\Flagged( \\Recent)?\)")
        t = imaplib.Internaldate2tuple(lines[0].encode())
        self.assertEqual(time.mktime(t), 1704445872)  # 2024-01-05 09:11:12Z

    def test_append_imaplib(self):
        m = self.srv.imap(tls="none")
        typ, data = m.append("INBOX", "(\\Draft)", None,
                             b"Subject: draft\r\n\r\ntext\r\n")
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(),
                         r"^\[APPENDUID \d+ \d+\] Append completed$")
        m.select("INBOX")
        typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
        self.assertIn(b"\\Draft", data[0][0])
        self.assertEqual(data[0][1], b"Subject: draft\r\n\r\ntext\r\n")
        m.logout()

    # ---- SEARCH driver ----------------------------------------------------

    def test_search_charset_and_searchres(self):
        self.deliver(1, 2, 3)
        self.select()
        lines, tagged = self.r.cmd("SEARCH CHARSET KOI8-R ALL")
        self.assertEqual(lines, [])
        self.assertTrue(tagged.startswith("NO [BADCHARSET (US-ASCII UTF-8)] "),
                        tagged)
        self.assertEqual(self.r.cmd("SEARCH RETURN (SAVE) SUBJECT "
                                    "\"message 2\""),
                         ([], "OK Search completed"))
        lines, tagged = self.r.cmd("FETCH $ (UID)")
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("* 2 FETCH (UID "), lines)

    # ---- QUOTA, METADATA, NOTIFY -----------------------------------------

    def test_quota(self):
        self.deliver(1)
        self.assertEqual(self.r.cmd("GETQUOTAROOT INBOX"),
                         (["* QUOTAROOT INBOX"],
                          "OK Getquotaroot completed"))
        self.srv.mhctl_run("quota", "set", USER, "--storage", "10M",
                           "--messages", "100")
        lines, tagged = self.r.cmd("GETQUOTAROOT INBOX")
        self.assertEqual(tagged, "OK Getquotaroot completed")
        self.assertEqual(lines[0], '* QUOTAROOT INBOX ""')
        self.assertRegex(lines[1], r'^\* QUOTA "" \(STORAGE 1 10240 '
                                   r'MESSAGE 1 100\)$')
        self.assertEqual(self.r.cmd('SETQUOTA "" (STORAGE 1)'),
                         ([], "NO [NOPERM] Quota limits are set by the "
                              "administrator"))
        self.srv.mhctl_run("quota", "set", USER, "--storage", "unlimited",
                           "--messages", "0")

    def test_metadata_survives_restart(self):
        self.assertEqual(self.r.cmd('SETMETADATA INBOX (/private/comment '
                                    '"my inbox" /shared/vendor/x/y "1")'),
                         ([], "OK Setmetadata completed"))
        self.assertEqual(self.r.cmd('SETMETADATA "" (/private/comment '
                                    '"server")'),
                         ([], "OK Setmetadata completed"))
        self.r.close()
        self.srv.stop()
        self.srv.start()
        self.r = Raw(self.srv.port)
        self.r.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))
        self.assertEqual(
            self.r.cmd("GETMETADATA INBOX (/private/comment "
                       "/shared/comment)"),
            (['* METADATA INBOX (/private/comment "my inbox" '
              '/shared/comment NIL)'], "OK Getmetadata completed"))
        self.assertEqual(
            self.r.cmd('GETMETADATA (DEPTH infinity) INBOX (/shared)'),
            (['* METADATA INBOX (/shared/vendor/x/y "1")'],
             "OK Getmetadata completed"))
        self.assertEqual(
            self.r.cmd('GETMETADATA (MAXSIZE 3) "" (/private/comment)'),
            ([], "OK [METADATA LONGENTRIES 6] Getmetadata completed"))
        self.assertEqual(self.r.cmd('SETMETADATA INBOX (/private/comment '
                                    'NIL)'),
                         ([], "OK Setmetadata completed"))
        lines, _ = self.r.cmd("GETMETADATA INBOX (/private/comment)")
        self.assertEqual(lines, ["* METADATA INBOX (/private/comment NIL)"])

    def test_notify(self):
        self.assertEqual(self.r.cmd("NOTIFY SET (SELECTED (MessageNew "
                                    "MessageExpunge FlagChange))"),
                         ([], "OK NOTIFY completed"))
        self.assertEqual(
            self.r.cmd("NOTIFY SET (SELECTED (AnnotationChange))"),
            ([], "NO [BADEVENT (MessageNew MessageExpunge FlagChange "
                 "MailboxName SubscriptionChange MailboxMetadataChange "
                 "ServerMetadataChange)] Unsupported NOTIFY event"))
        self.assertEqual(self.r.cmd("NOTIFY NONE"),
                         ([], "OK NOTIFY completed"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
