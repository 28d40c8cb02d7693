#!/usr/bin/python3
"""Real IMAP clients against our IMAP server (issue 7): mbsync (isync),
offlineimap, neomutt, fetchmail and curl, over STARTTLS and implicit TLS
with a self-signed certificate the clients are told to trust.

Every test runs against our server (MH_IMAPD; MH_MAILHOSTD for the one
test of mailhostd's IMAP) and, as a control that the test itself is
right, against a private Dovecot (dovecot-imapd) with the same account
and the same steps: class names end in Ours or Dovecot. MH_IMAP_SERVERS
picks them (default "ours,dovecot"). A test of a client that is not
installed is skipped (apt-get install isync offlineimap3 fetchmail
neomutt curl).

What is checked is the mail, never only an exit code: which messages
each side holds (by Message-ID), their flags, their bytes, and that a
second sync changes nothing (files, UIDNEXT and HIGHESTMODSEQ on the
server). The server's state is read with imaplib, the local one from the
client's Maildir files. Deliveries go through mh-deliver (ours) or
dovecot-lda (Dovecot); flags are changed with imaplib.

neomutt runs under a pseudo-terminal (it needs one even with -e push),
with its whole work queued by `push` in -e commands and ending in
<quit>; it lists messages by piping each to a shell command that appends
its Subject to a file, and moves/flags messages with <save-message> and
<flag-message> followed by <sync-mailbox>.
"""

import glob
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imap_servers  # noqa: E402
from imap_servers import (USER, PASSWORD, DovecotImapd, OurImapd,  # noqa: E402
                          have_dovecot, have_ours, servers_wanted)

MBSYNC = shutil.which("mbsync")
OFFLINEIMAP = shutil.which("offlineimap")
NEOMUTT = shutil.which("neomutt")
FETCHMAIL = shutil.which("fetchmail")
CURL = shutil.which("curl")

FLAG_LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered",
                "S": "\\Seen", "T": "\\Deleted"}


def message(key, subject=None, body=None, extra=""):
    """A small RFC 5322 message with Message-ID <key@test>, LF endings
    (deliveries) — see crlf() for APPEND."""
    subject = subject or f"message {key}"
    body = body or f"This is the body of {key}.\nSecond line.\n"
    return (f"From: Sender <sender@far.example>\nTo: {USER}\n"
            f"Subject: {subject}\nDate: Wed, 25 Nov 2026 10:00:00 +0000\n"
            f"Message-ID: <{key}@test>\n{extra}\n{body}").encode()


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def lf(data):
    return data.replace(b"\r\n", b"\n")


def msgid_of(data):
    m = re.search(rb"^Message-ID:\s*<([^@>]+)@test>", data, re.M | re.I)
    return m.group(1).decode() if m else None


def strip_trace(data):
    """The message without the delivery agents' trace lines
    (Return-Path, Delivered-To, Received, X-Original-To), LF endings."""
    data = lf(data)
    head, sep, body = data.partition(b"\n\n")
    keep, skipping = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                keep.append(line)
            continue
        name = line.split(b":", 1)[0].lower()
        skipping = name in (b"return-path", b"delivered-to", b"received",
                            b"x-original-to", b"status", b"x-status",
                            b"x-uid", b"x-keywords", b"content-length",
                            b"lines", b"x-tuid")
        if not skipping:
            keep.append(line)
    return b"\n".join(keep) + sep + body


# ---- the server side, read with imaplib -------------------------------------

def folder_delimiter(m):
    typ, data = m.list('""', '""')
    assert typ == "OK", data
    mm = re.match(rb'\(.*?\) (?:"(.)"|NIL)', data[0])
    return mm.group(1).decode() if mm and mm.group(1) else "."


def list_folders(m):
    typ, data = m.list()
    assert typ == "OK", data
    out = {}
    for item in data:
        if isinstance(item, tuple):   # a literal name
            attrs = item[0].decode()
            name = item[1].decode()
        else:
            mm = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', item)
            attrs, name = mm.group(1).decode(), mm.group(2).decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[name] = set(attrs.split())
    return out


def server_messages(m, folder):
    """{message key: (set of flags, LF bytes)} of a folder: FETCH 1:* of
    FLAGS, then of BODY.PEEK[] (the \\Seen state is not touched), matched
    by sequence number (always the first token, wherever a server puts the
    other items)."""
    typ, data = m.select(f'"{folder}"')
    assert typ == "OK", (folder, data)
    count = int(data[0])
    flags, bodies = {}, {}
    if count:
        typ, data = m.fetch("1:*", "(FLAGS)")
        assert typ == "OK", data
        for item in data:
            mm = re.match(rb"(\d+) \(.*FLAGS \(([^)]*)\)", item)
            flags[int(mm.group(1))] = set(
                mm.group(2).decode().split()) - {"\\Recent"}
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        assert typ == "OK", data
        for item in data:
            if isinstance(item, tuple):
                seq = int(item[0].split()[0])
                bodies[seq] = item[1]
    assert sorted(flags) == sorted(bodies) == list(range(1, count + 1)), \
        (folder, count, sorted(flags), sorted(bodies))
    m.close()
    return {msgid_of(bodies[s]): (flags[s], lf(bodies[s])) for s in flags}


def server_flags(m, folder):
    return {k: v[0] for k, v in server_messages(m, folder).items()}


def server_status(m, folder):
    typ, data = m.status(f'"{folder}"', "(MESSAGES UIDNEXT HIGHESTMODSEQ)")
    assert typ == "OK", data
    text = data[0].decode()
    return {k: int(v) for k, v in re.findall(r"(MESSAGES|UIDNEXT|"
                                              r"HIGHESTMODSEQ) (\d+)", text)}


# ---- the client side: Maildir files ----------------------------------------

def maildir_messages(path):
    """{key: (set of flags, LF bytes)} of one Maildir (cur and new)."""
    out = {}
    for sub in ("cur", "new"):
        for f in glob.glob(os.path.join(path, sub, "*")):
            with open(f, "rb") as fh:
                data = fh.read()
            info = os.path.basename(f).rpartition(":2,")
            letters = info[2] if info[1] else ""
            flags = {FLAG_LETTERS[c] for c in letters if c in FLAG_LETTERS}
            out[msgid_of(data)] = (flags, lf(data))
    return out


def maildir_snapshot(root):
    """Every message file under root: {relative path: bytes}."""
    snap = {}
    for top, dirs, files in os.walk(root):
        if os.path.basename(top) not in ("cur", "new"):
            continue
        for f in files:
            p = os.path.join(top, f)
            with open(p, "rb") as fh:
                snap[os.path.relpath(p, root)] = fh.read()
    return snap


def write_maildir_message(path, name, data, letters=""):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    p = os.path.join(path, "cur", f"{name}:2,{letters}")
    with open(p, "wb") as f:
        f.write(data)
    return p


def find_file(path, key):
    for sub in ("cur", "new"):
        for f in glob.glob(os.path.join(path, sub, "*")):
            with open(f, "rb") as fh:
                if msgid_of(fh.read()) == key:
                    return f
    raise AssertionError(f"no message <{key}@test> in {path}")


def set_file_flags(path, letters):
    """Renames a Maildir file to carry exactly these flag letters (as a
    local mail reader does); moves it to cur/."""
    d = os.path.dirname(os.path.dirname(path))
    base = os.path.basename(path).split(":2,")[0]
    new = os.path.join(d, "cur", f"{base}:2,{''.join(sorted(letters))}")
    os.rename(path, new)
    return new


# ---- the tests ---------------------------------------------------------------

class ClientBase:
    """Mixed into one unittest.TestCase per server (see the end)."""
    server_kind = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=f"mh-imap-clients-"
                                           f"{self.server_kind}-")
        os.chmod(self.tmp, 0o755)
        root = os.path.join(self.tmp, "server")
        if self.server_kind == "ours":
            self.srv = OurImapd(root)
        else:
            self.srv = DovecotImapd(root)
        self.srv.start()
        self.addCleanup(self.srv.stop)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        m = self.srv.imap()
        self.sep = folder_delimiter(m)
        m.logout()

    def fail_with_log(self, text):
        self.fail(f"{text}\n--- {self.srv.kind} log ---\n"
                  + self.srv.log_text())

    def imap(self):
        return self.srv.imap()

    def run_tool(self, argv, timeout=120, env=None, ok=(0,), stdin=None):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run(argv, capture_output=True, timeout=timeout,
                           env=e, input=stdin)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(
            errors="replace")
        if p.returncode not in ok:
            self.fail_with_log(f"{os.path.basename(argv[0])} exited "
                               f"{p.returncode}:\n{out[-6000:]}")
        return p.returncode, out

    def name(self, *parts):
        return self.sep.join(parts)

    def seed(self):
        """INBOX: i1 (\\Seen), i2 (\\Flagged \\Answered), i3 (none), by
        delivery; Sent: s1 (\\Seen); Archive: a1 (\\Seen \\Flagged);
        Archive<sep>2024: n1 (none), by APPEND."""
        for k in ("i1", "i2", "i3"):
            self.srv.deliver(message(k))
        m = self.imap()
        for f in ("Sent", "Archive", self.name("Archive", "2024")):
            typ, data = m.create(f'"{f}"')
            self.assertEqual(typ, "OK", (f, data))
        for folder, key, flags in (("Sent", "s1", r"(\Seen)"),
                                   ("Archive", "a1", r"(\Seen \Flagged)"),
                                   (self.name("Archive", "2024"), "n1",
                                    None)):
            typ, data = m.append(f'"{folder}"', flags, None,
                                 crlf(message(key)))
            self.assertEqual(typ, "OK", data)
        m.select("INBOX")
        typ, data = m.search(None, "ALL")
        self.assertEqual(data[0].split(), [b"1", b"2", b"3"])
        m.store("1", "+FLAGS", r"(\Seen)")
        m.store("2", "+FLAGS", r"(\Flagged \Answered)")
        m.logout()

    def server_state(self, folders):
        m = self.imap()
        try:
            return {f: server_messages(m, f) for f in folders}
        finally:
            m.logout()

    def server_statuses(self, folders):
        m = self.imap()
        try:
            return {f: server_status(m, f) for f in folders}
        finally:
            m.logout()

    def assert_same(self, server, local, what):
        """server and local: {folder: {key: (flags, bytes)}}; bytes are
        compared without trace headers, flags exactly."""
        for folder in server:
            s = {k: v[0] for k, v in server[folder].items()}
            lo = {k: v[0] for k, v in local[folder].items()}
            self.assertEqual(s, lo, f"{what}: flags in {folder}")
            for k in s:
                self.assertEqual(strip_trace(server[folder][k][1]),
                                 strip_trace(local[folder][k][1]),
                                 f"{what}: bytes of <{k}> in {folder}")

    # ---- mbsync --------------------------------------------------------------

    def mbsync_conf(self, local, implicit):
        conf = os.path.join(self.tmp, "mbsyncrc")
        port = self.srv.tls_port if implicit else self.srv.port
        with open(conf, "w") as f:
            f.write(f"""IMAPAccount t
Host 127.0.0.1
Port {port}
User {USER}
Pass {PASSWORD}
SSLType {"IMAPS" if implicit else "STARTTLS"}
CertificateFile {self.srv.cert}
PipelineDepth 1

IMAPStore far
Account t

MaildirStore near
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel c
Far :far:
Near :near:
Patterns *
Create Both
Remove Both
Expunge Both
Sync All
SyncState *
""")
        return conf

    def mbsync(self, conf):
        rc, out = self.run_tool([MBSYNC, "-V", "-c", conf, "-a"])
        return out

    def local_state(self, local, folders, mapping=None):
        out = {}
        for f in folders:
            rel = "INBOX" if f == "INBOX" else (mapping(f) if mapping else f)
            out[f] = maildir_messages(os.path.join(local, rel))
        return out

    @unittest.skipUnless(MBSYNC, "mbsync not installed (apt-get install "
                                 "isync)")
    def test_mbsync_two_way(self):
        self.seed()
        nested = self.name("Archive", "2024")
        folders = ["INBOX", "Sent", "Archive", nested]
        local = os.path.join(self.tmp, "mbsync")
        os.makedirs(local)
        # --- first sync over STARTTLS: everything comes down
        conf = self.mbsync_conf(local, implicit=False)
        self.mbsync(conf)
        to_local = (lambda f: f.replace(self.sep, "/"))
        srv = self.server_state(folders)
        loc = self.local_state(local, folders, to_local)
        self.assertEqual(set(srv["INBOX"]), {"i1", "i2", "i3"})
        self.assertEqual(srv["INBOX"]["i2"][0], {"\\Flagged", "\\Answered"})
        self.assertEqual(loc["INBOX"]["i1"][0], {"\\Seen"})
        self.assertEqual(set(loc[nested]), {"n1"})
        self.assert_same(srv, loc, "after the first mbsync")

        # --- second sync (implicit TLS this time): nothing changes
        before_files = maildir_snapshot(local)
        before_status = self.server_statuses(folders)
        conf = self.mbsync_conf(local, implicit=True)
        out = self.mbsync(conf)
        self.assertEqual(maildir_snapshot(local), before_files,
                         "the second mbsync changed local files:\n" + out)
        self.assertEqual(self.server_statuses(folders), before_status,
                         "the second mbsync changed the server:\n" + out)

        # --- changes on both sides
        self.srv.deliver(message("i4"))                     # server: new
        m = self.imap()
        m.select("INBOX")
        typ, data = m.search(None, "HEADER", "Message-ID", "i3@test")
        m.store(data[0].decode(), "+FLAGS", r"(\Seen)")     # server: flag
        m.select("Archive")
        m.store("1", "+FLAGS", r"(\Deleted)")               # server: delete
        m.expunge()
        m.logout()
        f = find_file(os.path.join(local, "INBOX"), "i2")    # local: flags
        set_file_flags(f, "RS")                  # +Seen, -Flagged
        f = find_file(os.path.join(local, "INBOX"), "i1")    # local: trash
        set_file_flags(f, "ST")
        os.unlink(find_file(os.path.join(local, "Archive", "2024"), "n1"))
        write_maildir_message(os.path.join(local, "Sent"),   # local: new
                              "1700000000.l1.host", message("l1"), "S")
        write_maildir_message(os.path.join(local, "Projects"),
                              "1700000001.p1.host", message("p1"), "F")
        self.mbsync(conf)
        folders.append("Projects")
        srv = self.server_state(folders)
        loc = self.local_state(local, folders, to_local)
        self.assertEqual({k: v[0] for k, v in srv["INBOX"].items()},
                         {"i2": {"\\Seen", "\\Answered"},
                          "i3": {"\\Seen"}, "i4": set()})
        self.assertEqual({k: v[0] for k, v in srv["Sent"].items()},
                         {"s1": {"\\Seen"}, "l1": {"\\Seen"}})
        self.assertEqual(srv["Archive"], {})
        self.assertEqual(srv[nested], {})
        self.assertEqual({k: v[0] for k, v in srv["Projects"].items()},
                         {"p1": {"\\Flagged"}})
        # mbsync adds an X-TUID header to what it uploads
        self.assertEqual(strip_trace(srv["Sent"]["l1"][1]), message("l1"))
        self.assert_same(srv, loc, "after the two-way mbsync")

        # --- and once more: a no-op again
        before_files = maildir_snapshot(local)
        before_status = self.server_statuses(folders)
        out = self.mbsync(conf)
        self.assertEqual(maildir_snapshot(local), before_files, out)
        self.assertEqual(self.server_statuses(folders), before_status, out)

    # ---- offlineimap ---------------------------------------------------------

    @unittest.skipUnless(OFFLINEIMAP, "offlineimap not installed (apt-get "
                                      "install offlineimap3)")
    def test_offlineimap_two_way(self):
        self.seed()
        nested = self.name("Archive", "2024")
        folders = ["INBOX", "Sent", "Archive", nested]
        local = os.path.join(self.tmp, "offlineimap")
        meta = os.path.join(self.tmp, "offlineimap-meta")
        conf = os.path.join(self.tmp, "offlineimaprc")
        with open(conf, "w") as f:
            f.write(f"""[general]
accounts = t
metadata = {meta}
ui = basic

[Account t]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {local}
sep = .

[Repository far]
type = IMAP
remotehost = localhost
remoteport = {self.srv.tls_port}
remoteuser = {USER}
remotepass = {PASSWORD}
ssl = yes
sslcacertfile = {self.srv.cert}
maxconnections = 1
""")
        run = lambda: self.run_tool([OFFLINEIMAP, "-c", conf, "-o", "-u",
                                     "basic"])[1]
        to_local = (lambda f: f.replace(self.sep, "."))
        out = run()
        self.assertNotIn("ERROR", out)
        srv = self.server_state(folders)
        loc = self.local_state(local, folders, to_local)
        self.assertEqual(set(loc["INBOX"]), {"i1", "i2", "i3"})
        self.assertEqual(loc["Archive"]["a1"][0], {"\\Seen", "\\Flagged"})
        self.assert_same(srv, loc, "after the first offlineimap")

        # changes both ways, one round each
        self.srv.deliver(message("i4"))
        m = self.imap()
        m.select("INBOX")
        typ, data = m.search(None, "HEADER", "Message-ID", "i3@test")
        m.store(data[0].decode(), "+FLAGS", r"(\Flagged)")
        m.select(f'"{nested}"')
        m.store("1", "+FLAGS", r"(\Deleted)")
        m.expunge()
        m.logout()
        inbox = os.path.join(local, "INBOX")
        set_file_flags(find_file(inbox, "i2"), "RS")        # -Flagged +Seen
        os.unlink(find_file(os.path.join(local, "Sent"), "s1"))
        write_maildir_message(os.path.join(local, "Archive"),
                              "1700000000.l2.host", message("l2"), "S")
        out = run()
        self.assertNotIn("ERROR", out)
        srv = self.server_state(folders)
        loc = self.local_state(local, folders, to_local)
        self.assertEqual({k: v[0] for k, v in srv["INBOX"].items()},
                         {"i1": {"\\Seen"}, "i2": {"\\Seen", "\\Answered"},
                          "i3": {"\\Flagged"}, "i4": set()})
        self.assertEqual(srv["Sent"], {})
        self.assertEqual({k: v[0] for k, v in srv["Archive"].items()},
                         {"a1": {"\\Seen", "\\Flagged"}, "l2": {"\\Seen"}})
        self.assertEqual(srv[nested], {})
        self.assert_same(srv, loc, "after the second offlineimap")
        # a third round changes nothing
        before_files = maildir_snapshot(local)
        before_status = self.server_statuses(folders)
        run()
        self.assertEqual(maildir_snapshot(local), before_files)
        self.assertEqual(self.server_statuses(folders), before_status)

    # ---- neomutt -------------------------------------------------------------

    def neomutt(self, rc, pushes, timeout=60):
        """Runs neomutt under a pty with -e push commands; returns what it
        drew (for failure messages)."""
        argv = [NEOMUTT, "-n", "-F", rc]
        for p in pushes:
            argv += ["-e", f"push '{p}'"]
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "vt100"
            os.environ["HOME"] = self.tmp
            os.environ["COLUMNS"] = "200"
            os.environ["LINES"] = "50"
            os.execv(argv[0], argv)
        screen = b""
        deadline = time.time() + timeout
        status = None
        while time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                screen += data
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
            self.fail_with_log("neomutt did not finish; screen:\n"
                               + screen.decode(errors="replace")[-3000:])
        os.close(fd)
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]",
                      "", screen.decode(errors="replace"))
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, text[-3000:])
        return text

    @unittest.skipUnless(NEOMUTT, "neomutt not installed")
    def test_neomutt_batch(self):
        self.seed()
        m = self.imap()
        m.append("INBOX", None, None, crlf(message("mv", "please move me")))
        m.append("INBOX", None, None, crlf(message("fl", "flag me")))
        m.logout()
        listing = os.path.join(self.tmp, "listing")
        helper = os.path.join(self.tmp, "subject.sh")
        with open(helper, "w") as f:
            f.write(f"#!/bin/sh\ngrep -i '^Subject:' >> {listing}\n")
        os.chmod(helper, 0o755)
        rc = os.path.join(self.tmp, "neomuttrc")
        with open(rc, "w") as f:
            f.write(f"""set folder = "imaps://{USER.replace('@', '%40')}@127.0.0.1:{self.srv.tls_port}/"
set imap_pass = "{PASSWORD}"
set spoolfile = "+INBOX"
set ssl_ca_certificates_file = "{self.srv.cert}"
set certificate_file = "{self.srv.cert}"
set ssl_verify_host = no
set imap_delim_chars = "{self.sep}/"
set header_cache = ""
set message_cachedir = ""
set mail_check = 60
set imap_keepalive = 60
set confirmappend = no
set confirmcreate = no
set delete = yes
set move = no
set quit = yes
set mark_old = no
set wait_key = no
set beep = no
set pipe_split = yes
set pipe_decode = no
set sort = date-received
set record = ""
""")
        # 1. list: pipe every message's Subject into a file
        self.neomutt(rc, ["<tag-pattern>~A<enter><tag-prefix>"
                          f"<pipe-message>{helper}<enter><quit>"])
        with open(listing) as f:
            subjects = sorted(line.strip() for line in f)
        self.assertEqual(subjects, sorted(
            ["Subject: message i1", "Subject: message i2",
             "Subject: message i3", "Subject: please move me",
             "Subject: flag me"]))
        # 2. move one to Archive and flag another, then sync
        self.neomutt(rc, ['<tag-pattern>~s "please move"<enter>'
                          '<tag-prefix><save-message>=Archive<enter>'
                          '<tag-pattern>~s "flag me"<enter>'
                          '<tag-prefix><flag-message>'
                          '<sync-mailbox><quit>'])
        m = self.imap()
        inbox = server_flags(m, "INBOX")
        archive = server_flags(m, "Archive")
        m.logout()
        self.assertNotIn("mv", inbox)
        self.assertEqual(archive.get("mv"), set(), archive)
        self.assertIn("a1", archive)
        self.assertEqual(inbox["fl"], {"\\Flagged"})
        self.assertEqual(inbox["i2"], {"\\Flagged", "\\Answered"})
        self.assertEqual(sorted(inbox), ["fl", "i1", "i2", "i3"])

    # ---- fetchmail -----------------------------------------------------------

    def fetchmail(self, rc_text, ok=(0,)):
        rc = os.path.join(self.tmp, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(rc_text)
        os.chmod(rc, 0o600)
        home = os.path.join(self.tmp, "fetchmail-home")
        os.makedirs(home, exist_ok=True)
        return self.run_tool([FETCHMAIL, "-f", rc, "--nosyslog",
                              "--nodetach", "-v"],
                             env={"FETCHMAILHOME": home, "HOME": home},
                             ok=ok)

    @unittest.skipUnless(FETCHMAIL, "fetchmail not installed")
    def test_fetchmail_keep_and_nokeep(self):
        for k in ("f1", "f2", "f3"):
            self.srv.deliver(message(k))
        m = self.imap()
        m.select("INBOX")
        m.store("1", "+FLAGS", r"(\Seen)")        # f1 is already read
        m.logout()
        out_dir = os.path.join(self.tmp, "fetched")
        os.makedirs(out_dir)
        mda = os.path.join(self.tmp, "mda.sh")
        with open(mda, "w") as f:
            f.write(f"#!/bin/sh\ncat > {out_dir}/$(date +%s%N).$$\n")
        os.chmod(mda, 0o755)

        def rc(port, extra, mda=mda):
            return (f"set no bouncemail\n"
                    f"poll localhost via 127.0.0.1 service {port} "
                    f"proto IMAP auth password\n"
                    f"  user \"{USER}\" there with password \"{PASSWORD}\" "
                    f"is root here\n"
                    f"  sslcertck sslcommonname localhost sslcertfile "
                    f"\"{self.srv.cert}\"\n"
                    f"  mda \"{mda}\"\n  {extra}\n")

        def fetched():
            out = {}
            for p in glob.glob(os.path.join(out_dir, "*")):
                with open(p, "rb") as f:
                    data = f.read()
                out[msgid_of(data)] = data
                os.unlink(p)
            return out

        # keep, over STARTTLS: only the unseen ones, marked \Seen, kept
        code, out = self.fetchmail(rc(self.srv.port, "sslproto \"tls1.2+\" keep"))
        self.assertRegex(out, r"(?i)starttls|TLS")
        got = fetched()
        self.assertEqual(sorted(got), ["f2", "f3"], out)
        self.assertEqual(strip_trace(got["f2"]), message("f2"))
        m = self.imap()
        self.assertEqual(server_flags(m, "INBOX"),
                         {"f1": {"\\Seen"}, "f2": {"\\Seen"},
                          "f3": {"\\Seen"}})
        m.logout()
        # again: nothing new (exit 1 = no mail)
        code, out = self.fetchmail(rc(self.srv.port, "sslproto \"tls1.2+\" keep"),
                                   ok=(1,))
        self.assertEqual(fetched(), {})
        # no keep + fetchall over implicit TLS: all of them, then gone.
        # Ours delivers them to another account with mh-deliver as MDA.
        self.srv.deliver(message("f4"))
        to_bob = self.server_kind == "ours"
        if to_bob:
            self.srv.mhctl_run("user", "add", "bob@example.org")
            bob = os.path.join(self.srv.data, "mail", "example.org", "bob")
            mda2 = (f"{self.srv.deliver_prog} --data-dir {self.srv.data} "
                    f"-f %F -- bob@example.org")
        code, out = self.fetchmail(rc(self.srv.tls_port,
                                      "ssl no keep fetchall",
                                      mda=mda2 if to_bob else mda))
        if to_bob:
            self.assertEqual(fetched(), {})
            got = {k: v[1] for k, v in maildir_messages(bob).items()}
        else:
            got = fetched()
        self.assertEqual(sorted(got), ["f1", "f2", "f3", "f4"], out)
        self.assertEqual(strip_trace(got["f4"]), message("f4"))
        m = self.imap()
        self.assertEqual(server_flags(m, "INBOX"), {})
        m.logout()

    # ---- curl ----------------------------------------------------------------

    def curl(self, url, *args, implicit=False, data_in=None):
        port = self.srv.tls_port if implicit else self.srv.port
        scheme = "imaps" if implicit else "imap"
        argv = [CURL, "-sS", "--cacert", self.srv.cert, "-u",
                f"{USER}:{PASSWORD}", f"{scheme}://127.0.0.1:{port}/{url}"]
        if not implicit:
            argv.insert(1, "--ssl-reqd")
        p = subprocess.run(argv + list(args), capture_output=True,
                           timeout=60, input=data_in)
        if p.returncode != 0:
            self.fail_with_log(f"curl {url} {args}: exit {p.returncode}: "
                               f"{p.stderr.decode()}")
        return p.stdout

    @unittest.skipUnless(CURL, "curl not installed")
    def test_curl(self):
        self.seed()
        nested = self.name("Archive", "2024")
        # LIST
        out = self.curl("").decode()
        names = set()
        for line in out.splitlines():
            mm = re.match(r'\* LIST \(([^)]*)\) "(.)" (.*)$', line)
            self.assertIsNotNone(mm, line)
            names.add(mm.group(3).strip('"'))
        self.assertTrue({"INBOX", "Sent", "Archive", nested} <= names, out)
        self.assertIn("\\Sent", re.search(r"\(([^)]*)\) \S+ \"?Sent\"?\r?$",
                                          out, re.M).group(1))
        # EXAMINE (over implicit TLS)
        out = self.curl("INBOX", "-X", "EXAMINE INBOX",
                        implicit=True).decode()
        self.assertRegex(out, r"(?m)^\* 3 EXISTS")
        self.assertRegex(out, r"(?m)^\* OK \[UIDVALIDITY \d+\]")
        self.assertRegex(out, r"(?m)^\* OK \[UIDNEXT 4\]")
        # UID FETCH of a message and of a section
        m = self.imap()
        m.select("INBOX")
        typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", "i2@test")
        uid = data[0].decode()
        typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
        want = data[0][1]
        m.logout()
        self.assertEqual(self.curl(f"INBOX;UID={uid}"), want)
        self.assertEqual(
            self.curl(f"INBOX;UID={uid};SECTION=HEADER.FIELDS%20(SUBJECT)"),
            b"Subject: message i2\r\n\r\n")
        self.assertEqual(self.curl(f"INBOX;UID={uid};SECTION=TEXT"),
                         b"This is the body of i2.\r\nSecond line.\r\n")
        # SEARCH
        out = self.curl("INBOX?SUBJECT%20%22message%20i3%22").decode()
        self.assertEqual(out.strip(), "* SEARCH 3")
        out = self.curl("INBOX?FLAGGED").decode()
        self.assertEqual(out.strip(), "* SEARCH 2")
        # the BODY[] fetch above set \Seen on i2 (RFC 9051 6.4.5)
        out = self.curl("INBOX?UNSEEN").decode()
        self.assertEqual(out.strip(), "* SEARCH 3")
        m = self.imap()
        self.assertEqual(server_flags(m, "INBOX")["i2"],
                         {"\\Seen", "\\Flagged", "\\Answered"})
        m.logout()
        # APPEND by upload
        up = os.path.join(self.tmp, "upload.eml")
        with open(up, "wb") as f:
            f.write(crlf(message("c1", "uploaded by curl")))
        self.curl("Sent", "-T", up)
        m = self.imap()
        sent = server_messages(m, "Sent")
        m.logout()
        self.assertEqual(sorted(sent), ["c1", "s1"])
        self.assertEqual(sent["c1"][1], message("c1", "uploaded by curl"))
        # curl APPENDs with (\\Seen)
        self.assertEqual(sent["c1"][0], {"\\Seen"})


class MailhostdImap:
    """mailhostd serves the same IMAP (only for ours)."""

    @unittest.skipUnless(CURL and imap_servers.env_prog("MH_MAILHOSTD"),
                         "curl or MH_MAILHOSTD missing")
    def test_mailhostd_serves_imap(self):
        self.srv.stop()
        self.srv.start(program=imap_servers.env_prog("MH_MAILHOSTD"))
        self.srv.deliver(message("d1"))
        out = self.curl("INBOX", "-X", "EXAMINE INBOX").decode()
        self.assertRegex(out, r"(?m)^\* 1 EXISTS")
        self.assertEqual(strip_trace(self.curl("INBOX;UID=1", implicit=True)),
                         message("d1"))


def make_classes():
    wanted = servers_wanted()
    for kind, ok, why in (("ours", have_ours(),
                           "MH_IMAPD, MH_MHCTL, MH_DELIVER not set (is "
                           "mh-imapd built?)"),
                          ("dovecot", have_dovecot(),
                           "needs root and dovecot-imapd")):
        name = "Clients" + kind.capitalize()
        attrs = {"server_kind": kind}
        bases = (ClientBase, MailhostdImap) if kind == "ours" else \
            (ClientBase,)
        cls = type(name, bases + (unittest.TestCase,), attrs)
        if kind not in wanted:
            cls = unittest.skip(f"{kind}: not in MH_IMAP_SERVERS")(cls)
        elif not ok:
            cls = unittest.skip(f"{kind}: {why}")(cls)
        globals()[name] = cls


make_classes()

if __name__ == "__main__":
    unittest.main(verbosity=2)
