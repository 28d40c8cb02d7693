#!/usr/bin/python3
"""A second opinion on our IMAP server (issue 7): one Maildir, two copies,
Dovecot on one and mh-imapd on the other, the same scripted session
against both, and the normalised responses compared command by command.

The Maildir is written here directly (Maildir++ folders, flags in the
file names, keywords in dovecot-keywords, fixed UIDs and UIDVALIDITY in
dovecot-uidlist, fixed mtimes for INTERNALDATE, a subscriptions file),
so both servers start from the very same UIDs: our index is built by
`mhctl index rebuild`, Dovecot indexes on first access. The session
covers SELECT/EXAMINE, FETCH (FLAGS, UID, sizes, INTERNALDATE, ENVELOPE,
BODY, BODYSTRUCTURE, BODY[] and sections, partial, BINARY), SEARCH with
most keys (and ESEARCH, CHARSET UTF-8 with a literal), SORT, THREAD,
STORE, COPY, MOVE, EXPUNGE, UID EXPUNGE, APPEND, CREATE, RENAME, DELETE,
LIST (and LIST-EXTENDED/SPECIAL-USE/STATUS), LSUB, STATUS, NAMESPACE,
CLOSE, UNSELECT.

Normalisation (what is not compared, and why):
- CAPABILITY and ID data, and the human text after OK/NO/BAD/BYE and
  their response codes (servers word them differently);
- \\Recent and RECENT counts (session-order dependent by definition);
- MODSEQ and HIGHESTMODSEQ numbers (each server counts its own);
- the order of items inside one FETCH response, and of the attributes of
  a LIST line (no order is prescribed);
- how ENVELOPE strings spell RFC 2047 encoded words (compared decoded:
  ours re-encodes display names, Dovecot copies the header's words).
Everything else must be equal. DIFFERENCES lists the commands whose
responses differ on purpose, with the reason; any other difference fails
the test with both responses side by side.

MH_IMAP_SECOND=dovecot compares Dovecot with a second Dovecot (to check
this test itself). Needs root and dovecot-imapd; exit 77 otherwise."""

import email.errors
import email.header
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_servers import (USER, PASSWORD, DovecotImapd, OurImapd,  # noqa: E402
                          have_dovecot, have_ours)

UIDVALIDITY = {"INBOX": 1700000001, "Sent": 1700000002,
               "Archive": 1700000003, "Archive.2024": 1700000004,
               "Lists": 1700000005}
KEYWORDS = ["$Label1", "Work", "$Forwarded"]

# Commands whose responses differ on purpose: {command label: reason}.
DIFFERENCES = {
    "store read-only":
        "STORE in an EXAMINEd mailbox: ours answers NO [READ-ONLY], Dovecot "
        "OK and changes nothing; RFC 3501 6.3.2 permits no change there and "
        "a NO tells the client so",
    "list after":
        "our store creates missing parents as real folders (CREATE "
        "Projects.Alpha makes a selectable Projects), Dovecot lists a "
        "\\Noselect placeholder",
    "select missing":
        "ours gives the RFC 5530 code NO [NONEXISTENT]; Dovecot's text "
        "says it without a code",
}

# ---- the Maildir ---------------------------------------------------------------

BOUNDARY = "=-=b1=-="


def msg_plain(n, subject, frm, date, body, extra=""):
    return (f"Return-Path: <{frm[1]}>\n"
            f"Received: from mx.far.example by mail.example.org; {date}\n"
            f"From: {frm[0]} <{frm[1]}>\nTo: Alice <alice@example.org>\n"
            f"Subject: {subject}\nDate: {date}\n"
            f"Message-ID: <m{n}@far.example>\n{extra}"
            f"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            f"Content-Transfer-Encoding: 8bit\n\n{body}")


def corpus():
    """[(folder, uid, flag letters, keyword indexes, mtime, bytes)]"""
    base = 1704067200  # 2024-01-01 00:00:00 UTC
    day = 86400
    out = []
    inbox = [
        msg_plain(1, "Project kickoff", ("Bob Builder", "bob@far.example"),
                  "Mon, 01 Jan 2024 09:00:00 +0100",
                  "Hello Alice,\nthe project starts on Monday.\nBob\n"),
        msg_plain(2, "Re: Project kickoff", ("Alice", "alice@example.org"),
                  "Tue, 02 Jan 2024 10:30:00 +0000",
                  "> the project starts on Monday.\nGreat, see you.\n",
                  "In-Reply-To: <m1@far.example>\n"
                  "References: <m1@far.example>\n"),
        msg_plain(3, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=",
                  ("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=",
                   "juergen@far.example"),
                  "Wed, 03 Jan 2024 08:15:00 +0100",
                  "Viele Grüße aus München!\nJürgen\n",
                  "Cc: Carol <carol@example.net>, dave@example.net\n"),
        # multipart/mixed: text + base64 attachment
        (f"From: Carol <carol@example.net>\nTo: alice@example.org\n"
         f"Subject: Report with attachment\n"
         f"Date: Thu, 04 Jan 2024 12:00:00 +0000\n"
         f"Message-ID: <m4@far.example>\nMIME-Version: 1.0\n"
         f"Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\n"
         f"This is a multi-part message.\n"
         f"--{BOUNDARY}\nContent-Type: text/plain; charset=us-ascii\n\n"
         f"See the report attached.\n"
         f"--{BOUNDARY}\nContent-Type: application/pdf; name=\"report.pdf\"\n"
         f"Content-Disposition: attachment; filename=\"report.pdf\"\n"
         f"Content-Transfer-Encoding: base64\n\n"
         f"JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3Ry\n"
         f"ZWFtCkhlbGxvIHdvcmxkCmVuZHN0cmVhbQplbmRvYmoK\n"
         f"--{BOUNDARY}--\n"),
        # multipart/alternative inside mixed, with a message/rfc822
        ("From: Dave <dave@example.net>\nTo: alice@example.org\n"
         "Subject: Fwd: Project kickoff\n"
         "Date: Fri, 05 Jan 2024 16:45:00 -0500\n"
         "Message-ID: <m5@far.example>\nMIME-Version: 1.0\n"
         "References: <m1@far.example>\n"
         "Content-Type: multipart/mixed; boundary=\"outer\"\n\n"
         "--outer\nContent-Type: multipart/alternative; boundary=\"alt\"\n\n"
         "--alt\nContent-Type: text/plain; charset=utf-8\n"
         "Content-Transfer-Encoding: quoted-printable\n\n"
         "Forwarding this =E2=80=94 FYI.\n"
         "--alt\nContent-Type: text/html; charset=utf-8\n\n"
         "<p>Forwarding this &mdash; FYI.</p>\n"
         "--alt--\n"
         "--outer\nContent-Type: message/rfc822\n\n"
         + msg_plain(1, "Project kickoff",
                     ("Bob Builder", "bob@far.example"),
                     "Mon, 01 Jan 2024 09:00:00 +0100",
                     "Hello Alice,\nthe project starts on Monday.\nBob\n")
         + "--outer--\n"),
        msg_plain(6, "Invoice 2024-001", ("Billing", "billing@shop.example"),
                  "Sat, 06 Jan 2024 07:00:00 +0000",
                  "Your invoice.\n" + "Line of the invoice text.\n" * 120),
        msg_plain(7, "Re: Re: Project kickoff",
                  ("Bob Builder", "bob@far.example"),
                  "Sun, 07 Jan 2024 11:11:00 +0100",
                  "Monday then.\n",
                  "In-Reply-To: <m2@far.example>\n"
                  "References: <m1@far.example> <m2@far.example>\n"),
        msg_plain(8, "lunch?", ("Eve", "eve@example.com"),
                  "Mon, 08 Jan 2024 12:00:00 +0000", "Lunch at noon?\n",
                  "Reply-To: Eve Work <eve@work.example>\n"
                  "Sender: assistant@example.com\n"),
    ]
    # UIDs with a gap (4 and 9 were expunged long ago)
    uids = [1, 2, 3, 5, 6, 7, 8, 10]
    flags = ["S", "RS", "", "F", "S", "", "FS", "D"]
    kws = [[], [1], [0, 1], [], [2], [], [], []]
    for i, (text, uid) in enumerate(zip(inbox, uids)):
        out.append(("INBOX", uid, flags[i], kws[i], base + i * day, text))
    out.append(("Sent", 1, "S", [], base + 2 * day,
                msg_plain(2, "Re: Project kickoff",
                          ("Alice", "alice@example.org"),
                          "Tue, 02 Jan 2024 10:30:00 +0000",
                          "Great, see you.\n")))
    for i in range(3):
        out.append(("Archive", i + 1, "S", [], base - (30 - i) * day,
                    msg_plain(100 + i, f"Old news {i}",
                              ("News", "news@lists.example"),
                              f"Fri, {i + 1:02d} Dec 2023 06:00:00 +0000",
                              f"Old item {i}.\n")))
    for i in range(2):
        out.append(("Archive.2024", i + 1, "" if i else "S", [],
                    base + (10 + i) * day,
                    msg_plain(200 + i, f"Kept {i}", ("Kim", "kim@x.example"),
                              f"Thu, {11 + i:02d} Jan 2024 06:00:00 +0000",
                              f"Kept item {i}.\n")))
    return out


def write_maildir(root):
    """Writes the corpus; returns nothing. Layout as Dovecot writes it."""
    kw_letters = "abcdefghijklmnopqrstuvwxyz"
    items = corpus()
    folders = sorted(set(f for f, *_ in items) | {"Lists"})
    for folder in folders:
        d = root if folder == "INBOX" else os.path.join(root, "." + folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if folder != "INBOX":
            open(os.path.join(d, "maildirfolder"), "w").close()
        rows = [(u, fl, kw, mt, t) for f, u, fl, kw, mt, t in items
                if f == folder]
        nextuid = max([u for u, *_ in rows], default=0) + 1
        if folder == "INBOX":
            nextuid = 12       # 11 was expunged too
        lines = [f"3 V{UIDVALIDITY[folder]} N{nextuid} "
                 f"G{'%032x' % UIDVALIDITY[folder]}"]
        for uid, fl, kw, mtime, text in rows:
            data = text.encode()
            vsize = len(data) + data.count(b"\n")
            base = f"{mtime}.M{uid}P1.testhost,S={len(data)},W={vsize}"
            letters = "".join(sorted(fl + "".join(kw_letters[k]
                                                   for k in kw)))
            path = os.path.join(d, "cur", f"{base}:2,{letters}")
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (mtime, mtime))
            lines.append(f"{uid} :{base}")
        with open(os.path.join(d, "dovecot-uidlist"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(d, "dovecot-keywords"), "w") as f:
            f.write("".join(f"{i} {k}\n" for i, k in enumerate(KEYWORDS)))
    with open(os.path.join(root, "subscriptions"), "w") as f:
        f.write("INBOX\nSent\nArchive\n")


# ---- a raw IMAP client -----------------------------------------------------------

class Raw:
    """Sends commands and returns the raw response lines up to the tagged
    one; literals in responses are kept inline ({n}\\r\\n + data)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 30)
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed; got " + repr(self.buf))
            self.buf += data
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out

    def exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed in a literal")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """One response: a line, with its literals and continuations."""
        out = self.line()
        while True:
            m = re.search(rb"\{(\d+)\+?\}$", out)
            if not m:
                return out
            out += b"\r\n" + self.exact(int(m.group(1)))
            out += self.line()

    def command(self, text, literals=()):
        """text may hold {LIT} markers, replaced by synchronising literals
        from `literals` in order."""
        self.n += 1
        tag = f"T{self.n:03d}".encode()
        parts = text.encode().split(b"{LIT}")
        payload = tag + b" " + parts[0]
        for i, lit in enumerate(literals):
            self.sock.sendall(payload + b"{%d}\r\n" % len(lit))
            cont = self.line()
            if not cont.startswith(b"+"):
                return [cont]
            payload = lit + parts[i + 1]
        self.sock.sendall(payload + b"\r\n")
        lines = []
        while True:
            r = self.response()
            lines.append(r)
            if r.startswith(tag + b" "):
                return lines

    def idle(self, trigger):
        """IDLE; trigger() once the server said '+'; the untagged lines
        that arrive within IDLE_WAIT seconds (and 1 s after the first),
        a "-- DONE --" mark, then what follows DONE up to the tagged
        line."""
        self.n += 1
        tag = f"T{self.n:03d}".encode()
        self.sock.sendall(tag + b" IDLE\r\n")
        cont = self.response()
        if not cont.startswith(b"+"):
            return [cont]
        trigger()
        lines = [b"+"]
        deadline = time.time() + IDLE_WAIT
        try:
            while time.time() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.time()))
                if b"\r\n" not in self.buf:
                    data = self.sock.recv(65536)
                    if not data:
                        raise EOFError("connection closed in IDLE")
                    self.buf += data
                    continue
                lines.append(self.response())
                deadline = min(deadline, time.time() + 1.0)
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(30)
        lines.append(b"-- DONE --")
        self.sock.sendall(b"DONE\r\n")
        while True:
            r = self.response()
            lines.append(r)
            if r.startswith(tag + b" "):
                return lines

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- normalisation ------------------------------------------------------------

def tokens(s):
    """Splits an IMAP item list into top-level tokens (atoms, quoted
    strings, literals, parenthesised lists, bracketed sections glued to
    their atom)."""
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c == " ":
            i += 1
            continue
        start = i
        if c == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
            i += 1
        elif c == "{" or s.startswith("~{", i):
            m = re.match(r"~?\{(\d+)\+?\}\r\n", s[i:])
            i += m.end() + int(m.group(1))
        elif c == "(":
            depth = 0
            while i < n:
                if s[i] == '"':
                    i += 1
                    while i < n and s[i] != '"':
                        i += 2 if s[i] == "\\" else 1
                elif s[i] == "{":
                    m = re.match(r"\{(\d+)\+?\}\r\n", s[i:])
                    if m:
                        i += m.end() + int(m.group(1)) - 1
                elif s[i] == "(":
                    depth += 1
                elif s[i] == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            while i < n and s[i] not in " ()":
                if s[i] == "[":
                    while i < n and s[i] != "]":
                        i += 1
                i += 1
            if i < n and s[i] == "(" and s[start:i].upper() in ():
                pass
        out.append(s[start:i])
    return out


def decode_words(text):
    """RFC 2047 encoded words decoded: ours re-encodes non-ASCII display
    names from the parsed header (lib/store/meta.c, address_name()),
    Dovecot passes the header's own words; both mean the same name."""
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(
            email.header.decode_header(text)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return text


def norm_flags(text):
    inner = text.strip()[1:-1].split()
    return "(" + " ".join(sorted(f for f in inner if f != "\\Recent")) + ")"


def norm_fetch(items):
    toks = tokens(items[1:-1])
    pairs = []
    for k in range(0, len(toks) - 1, 2):
        name, value = toks[k].upper(), toks[k + 1]
        if name == "FLAGS":
            value = norm_flags(value)
        elif name == "ENVELOPE":
            value = re.sub(r'"((?:[^"\\]|\\.)*)"',
                           lambda m: '"' + decode_words(m.group(1)) + '"',
                           value)
        elif name == "MODSEQ":
            value = "(N)"
        pairs.append(f"{name} {value}")
    return " ".join(sorted(pairs))


SPECIAL_USE = {"\\All", "\\Archive", "\\Drafts", "\\Flagged",
               "\\Junk", "\\Sent", "\\Trash"}
CHILD_INFO = {"\\HasChildren", "\\HasNoChildren"}
# LIST/LSUB attributes a server may leave out for these commands, so both
# sides' answers are compared without them: child information unless
# RETURN (CHILDREN) was asked for (RFC 5258 4), special-use attributes
# unless the command is about them (RFC 6154 2; LSUB is not covered).
OPTIONAL_ATTRS = {
    "list special-use": CHILD_INFO,
    "list subscribed": CHILD_INFO | SPECIAL_USE,
    "list return status": CHILD_INFO | SPECIAL_USE,
    "lsub": SPECIAL_USE,
    "lsub after": SPECIAL_USE,
}


def flag_list_problems(lines):
    """Duplicates in a FLAGS or PERMANENTFLAGS list (always wrong)."""
    bad = []
    for raw in lines:
        s = raw.decode("latin-1")
        m = re.match(r"^\* (?:FLAGS \(|OK \[PERMANENTFLAGS \()([^)]*)\)", s)
        if m:
            names = [f.lower() for f in m.group(1).split()]
            dups = sorted({f for f in names if names.count(f) > 1})
            if dups:
                bad.append(f"{s!r} lists {', '.join(dups)} more than once")
    return bad


def system_flags_only(text):
    """A flag list without keywords: which keywords a folder lists in
    FLAGS is per-server bookkeeping (ours: the folder's dovecot-keywords,
    Dovecot: what its index has seen)."""
    return " ".join(f for f in text.split() if f.startswith("\\"))


def normalise(lines, label=""):
    drop_attrs = OPTIONAL_ATTRS.get(label, set())
    out = []
    for raw in lines:
        # latin-1: one character per octet, so literal counts hold
        s = raw.decode("latin-1")
        m = re.match(r"^(\*|T\d+) (OK|NO|BAD|BYE|PREAUTH)( \[[^\]]*\])?",
                     s)
        if m:
            code = m.group(3) or ""
            if code.upper().startswith(" [CAPABILITY"):
                continue
            # untagged CLOSED (RFC 7162, optional in IMAP4rev1) and
            # HIGHESTMODSEQ before CONDSTORE is enabled (allowed)
            if m.group(1) == "*" and re.match(
                    r" \[(CLOSED|HIGHESTMODSEQ)", code):
                continue
            code = re.sub(r"(HIGHESTMODSEQ|MODIFIED) [\d:,]+", r"\1 N",
                          code)
            pm = re.match(r" \[PERMANENTFLAGS \(([^)]*)\)\]", code)
            if pm:
                code = f" [PERMANENTFLAGS ({system_flags_only(pm.group(1))})]"
            out.append(f"{'TAG' if m.group(1) != '*' else '*'} "
                       f"{m.group(2)}{code}")
            continue
        if re.match(r"^\* (CAPABILITY|ID) ", s) or \
                re.match(r"^\* \d+ RECENT$", s):
            continue
        m = re.match(r"^\* (\d+) FETCH (.*)$", s, re.S)
        if m:
            out.append(f"* {m.group(1)} FETCH {norm_fetch(m.group(2))}")
            continue
        m = re.match(r"^\* (LIST|LSUB) \(([^)]*)\) (.*)$", s, re.S)
        if m:
            attrs = " ".join(sorted((a for a in m.group(2).split()
                                     if a not in drop_attrs),
                                    key=str.lower))
            out.append(f"* {m.group(1)} ({attrs}) {m.group(3)}")
            continue
        m = re.match(r"^\* FLAGS \((.*)\)$", s)
        if m:
            out.append("* FLAGS " + norm_flags(
                "(" + system_flags_only(m.group(1)) + ")"))
            continue
        m = re.match(r"^\* ESEARCH (\(TAG \S+\) )?(UID )?(.*)$", s)
        if m:
            # the order of ESEARCH return data is free (RFC 4731)
            toks = m.group(3).split()
            pairs = sorted(f"{toks[k]} {toks[k + 1]}"
                           for k in range(0, len(toks) - 1, 2))
            out.append("* ESEARCH " + (m.group(1) or "") + (m.group(2) or "")
                       + " ".join(pairs))
            continue
        s = re.sub(r"(HIGHESTMODSEQ|MODSEQ) \d+", r"\1 N", s)
        out.append(s)
    # a LIST/STATUS answer's order is free: sort those lines
    listish = [x for x in out if re.match(r"\* (LIST|LSUB|STATUS) ", x)]
    if listish:
        rest = [x for x in out if x not in listish]
        out = sorted(listish) + rest
    return out


# ---- the session ------------------------------------------------------------------

LIT_SUBJECT = "Grüße".encode()
APPEND_MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@far.example\r\n"
              b"Subject: appended draft\r\nDate: Tue, 09 Jan 2024 10:00:00 "
              b"+0000\r\nMessage-ID: <app1@example.org>\r\n\r\n"
              b"A draft.\r\n")

APPEND_MSG2 = APPEND_MSG.replace(b"app1@", b"app2@")
APPEND_MSG3 = APPEND_MSG.replace(b"app1@", b"app3@")
# Every IDLE step makes a change, so each server owes at least one line.
# Generous: on a loaded machine (load 180 in CI) Dovecot's IDLE answered
# later than 3 s and its lines then showed up one step late.
IDLE_WAIT = 20.0

SESSION = [
    # label, command, literals
    ("namespace", "NAMESPACE", ()),
    ("list all", 'LIST "" "*"', ()),
    ("list top", 'LIST "" "%"', ()),
    ("list archive children", 'LIST "" "Archive.%"', ()),
    ("list special-use", 'LIST (SPECIAL-USE) "" "*"', ()),
    ("list subscribed", 'LIST (SUBSCRIBED) "" "*"', ()),
    ("list return status", 'LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))',
     ()),
    ("lsub", 'LSUB "" "*"', ()),
    ("status inbox", "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)",
     ()),
    ("status archive", "STATUS Archive (MESSAGES UIDNEXT UNSEEN)", ()),
    ("status size", "STATUS INBOX (SIZE)", ()),
    ("examine archive", "EXAMINE Archive", ()),
    ("fetch examined", "FETCH 1:* (UID FLAGS)", ()),
    ("examine keeps unseen", "FETCH 1 (BODY[TEXT])", ()),
    ("store read-only", "STORE 1 +FLAGS (\\Flagged)", ()),
    ("select inbox", "SELECT INBOX", ()),
    ("fetch flags", "FETCH 1:* (FLAGS)", ()),
    ("fetch uid sizes dates",
     "FETCH 1:* (UID RFC822.SIZE INTERNALDATE)", ()),
    ("fetch envelope", "FETCH 1:* ENVELOPE", ()),
    ("fetch bodystructure", "FETCH 1:* BODYSTRUCTURE", ()),
    ("fetch body", "FETCH 1:* BODY", ()),
    ("uid fetch all bodies", "UID FETCH 1:* (BODY.PEEK[])", ()),
    ("fetch header text", "FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
     ()),
    ("fetch mime parts",
     "FETCH 4 (BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[1.MIME] "
     "BODY.PEEK[2.MIME])", ()),
    ("fetch nested parts",
     "FETCH 5 (BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BODY.PEEK[2.HEADER] "
     "BODY.PEEK[2.TEXT] BODY.PEEK[2.1])", ()),
    ("fetch header fields",
     "FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (From Subject)])", ()),
    ("fetch header fields not",
     "FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path)])", ()),
    ("fetch partial", "FETCH 1 (BODY.PEEK[]<10.40> BODY.PEEK[TEXT]<5.1000>)",
     ()),
    ("fetch rfc822.header", "FETCH 3 (RFC822.HEADER)", ()),
    ("fetch binary", "FETCH 4 (BINARY.PEEK[2] BINARY.SIZE[2])", ()),
    ("fetch binary qp", "FETCH 5 (BINARY.PEEK[1.1] BINARY.SIZE[1.1])", ()),
    ("uid fetch range", "UID FETCH 4:8 (FLAGS)", ()),
    ("fetch sets seen", "FETCH 3 (BODY[TEXT])", ()),
    ("fetch after seen", "FETCH 3 (FLAGS)", ()),
    ("search all", "SEARCH ALL", ()),
    ("search seen", "SEARCH SEEN", ()),
    ("search unseen", "SEARCH UNSEEN", ()),
    ("search flagged", "SEARCH FLAGGED", ()),
    ("search answered", "SEARCH ANSWERED", ()),
    ("search draft", "SEARCH DRAFT", ()),
    ("search deleted", "SEARCH DELETED", ()),
    ("search keyword", "SEARCH KEYWORD Work", ()),
    ("search unkeyword", "SEARCH UNKEYWORD $Label1", ()),
    ("search from", "SEARCH FROM bob", ()),
    ("search to", "SEARCH TO alice@example.org", ()),
    ("search cc", "SEARCH CC carol", ()),
    ("search subject", "SEARCH SUBJECT kickoff", ()),
    ("search subject utf8 literal", "SEARCH CHARSET UTF-8 SUBJECT {LIT}",
     (LIT_SUBJECT,)),
    ("search body", "SEARCH BODY monday", ()),
    ("search text", "SEARCH TEXT fyi", ()),
    ("search header", 'SEARCH HEADER Message-ID "<m7@far.example>"', ()),
    ("search header exists", 'SEARCH HEADER Reply-To ""', ()),
    ("search larger", "SEARCH LARGER 2000", ()),
    ("search smaller", "SEARCH SMALLER 700", ()),
    ("search since", "SEARCH SINCE 4-Jan-2024", ()),
    ("search before", "SEARCH BEFORE 3-Jan-2024", ()),
    ("search on", "SEARCH ON 5-Jan-2024", ()),
    ("search sentsince", "SEARCH SENTSINCE 5-Jan-2024", ()),
    ("search sentbefore", "SEARCH SENTBEFORE 3-Jan-2024", ()),
    ("search or not", "SEARCH OR FLAGGED NOT SEEN", ()),
    ("search seq set", "SEARCH 2:4,7", ()),
    ("search uid set", "SEARCH UID 3:7", ()),
    ("search nested", "SEARCH (OR FROM bob FROM eve) SEEN", ()),
    ("uid search", "UID SEARCH OR SUBJECT lunch SUBJECT invoice", ()),
    ("esearch", "SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN", ()),
    ("uid esearch", "UID SEARCH RETURN (COUNT) ALL", ()),
    ("search save", "SEARCH RETURN (SAVE) FROM bob", ()),
    ("fetch saved", "FETCH $ (UID)", ()),
    ("sort date", "SORT (DATE) UTF-8 ALL", ()),
    ("sort reverse arrival", "SORT (REVERSE ARRIVAL) UTF-8 ALL", ()),
    ("sort subject", "SORT (SUBJECT) UTF-8 ALL", ()),
    ("sort from", "SORT (FROM) UTF-8 ALL", ()),
    ("sort size", "SORT (SIZE) UTF-8 ALL", ()),
    ("sort cc to", "SORT (CC TO) UTF-8 ALL", ()),
    ("uid sort", "UID SORT (REVERSE SIZE) UTF-8 SEEN", ()),
    ("thread references", "THREAD REFERENCES UTF-8 ALL", ()),
    ("thread orderedsubject", "THREAD ORDEREDSUBJECT UTF-8 ALL", ()),
    ("store add", "STORE 1 +FLAGS (\\Flagged)", ()),
    ("store replace", "STORE 2 FLAGS (\\Seen Work)", ()),
    ("store remove silent", "STORE 5 -FLAGS.SILENT (\\Seen)", ()),
    ("uid store keyword", "UID STORE 7:8 +FLAGS (Urgent)", ()),
    ("store check", "FETCH 1:* (FLAGS)", ()),
    ("copy", "COPY 1:2 Archive", ()),
    ("uid copy", "UID COPY 10 Lists", ()),
    ("move", "MOVE 6 Lists", ()),
    ("after move", "FETCH 1:* (UID)", ()),
    ("delete flag", "STORE 1 +FLAGS.SILENT (\\Deleted)", ()),
    ("expunge", "EXPUNGE", ()),
    ("uid expunge", "UID STORE 7:8 +FLAGS.SILENT (\\Deleted)", ()),
    ("uid expunge only 8", "UID EXPUNGE 8", ()),
    ("after expunge", "UID FETCH 1:* (FLAGS)", ()),
    ("append", 'APPEND Sent (\\Draft \\Seen) "09-Jan-2024 10:00:00 +0000" '
     '{LIT}', (APPEND_MSG,)),
    ("status after", "STATUS Lists (MESSAGES UIDNEXT)", ()),
    ("create", "CREATE Projects.Alpha", ()),
    ("create exists", "CREATE Projects.Alpha", ()),
    ("rename", "RENAME Projects.Alpha Projects.Beta", ()),
    ("subscribe", "SUBSCRIBE Projects.Beta", ()),
    ("list after", 'LIST "" "*"', ()),
    ("lsub after", 'LSUB "" "*"', ()),
    ("delete", "DELETE Projects.Beta", ()),
    ("unsubscribe", "UNSUBSCRIBE Projects.Beta", ()),
    ("select missing", "SELECT NoSuchFolder", ()),
    ("select archive", "SELECT Archive", ()),
    ("archive contents", "UID FETCH 1:* (FLAGS ENVELOPE)", ()),
    ("close", "CLOSE", ()),
    ("select sent", "SELECT Sent", ()),
    ("sent contents",
     "FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", ()),
    ("unselect", "UNSELECT", ()),
    ("select lists", "SELECT Lists", ()),
    ("lists contents", "UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)", ()),
    ("fetch no mailbox", "UNSELECT", ()),
    ("bad command", "FROBNICATE", ()),
    ("fetch unselected", "FETCH 1 FLAGS", ()),
    # Two sessions on one mailbox: "B:" runs on a second connection; A
    # learns of B's changes on NOOP and, within IDLE_WAIT seconds, in IDLE
    # ("IDLE|B:..." idles on A, makes B's change, then sends DONE; the
    # lines A got before DONE come before the "-- DONE --" mark).
    ("two: a select", "SELECT INBOX", ()),
    ("two: b select", "B:SELECT INBOX", ()),
    ("two: b store", "B:STORE 1 +FLAGS (\\Flagged)", ()),
    ("two: a noop sees flags", "NOOP", ()),
    ("two: b append", "B:APPEND INBOX {LIT}", (APPEND_MSG2,)),
    ("two: a noop sees exists", "NOOP", ()),
    ("two: b delete", "B:STORE 2 +FLAGS.SILENT (\\Deleted)", ()),
    ("two: b expunge", "B:EXPUNGE", ()),
    ("two: a noop sees expunge", "NOOP", ()),
    ("two: a idle sees flags", "IDLE|B:STORE 1 -FLAGS (\\Flagged)", ()),
    ("two: a idle sees append", "IDLE|B:APPEND INBOX {LIT}",
     (APPEND_MSG3,)),
    ("two: a idle sees move", "IDLE|B:MOVE 1 Lists", ()),
    ("two: a state", "UID FETCH 1:* (FLAGS)", ()),
]


def run_session(port):
    conns = {}

    def conn(name):
        if name not in conns:
            c = conns[name] = Raw(port)
            r = c.command(f'LOGIN "{USER}" "{PASSWORD}"')
            assert r[-1].split()[1] == b"OK", r
        return conns[name]

    out = {}
    try:
        for label, cmd, lits in SESSION:
            if cmd.startswith("IDLE|B:"):
                out[label] = (cmd, conn("A").idle(
                    lambda: conn("B").command(cmd[7:], lits)))
            elif cmd.startswith("B:"):
                out[label] = (cmd, conn("B").command(cmd[2:], lits))
            else:
                out[label] = (cmd, conn("A").command(cmd, lits))
        for c in conns.values():
            c.command("LOGOUT")
    finally:
        for c in conns.values():
            c.close()
    return out


class SecondOpinion(unittest.TestCase):
    def test_same_session_same_answers(self):
        tmp = tempfile.mkdtemp(prefix="mh-imap-dovecot-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        master = os.path.join(tmp, "maildir")
        write_maildir(master)
        second = os.environ.get("MH_IMAP_SECOND", "ours")
        if second == "ours":
            ours = OurImapd(os.path.join(tmp, "ours"), plaintext=True)
            shutil.rmtree(ours.maildir, ignore_errors=True)
            shutil.copytree(master, ours.maildir)
            ours.index_rebuild()
            ours.start()
            self.addCleanup(ours.stop)
            sep = self.delimiter(ours.port)
        else:
            sep = "."
            ours = DovecotImapd(os.path.join(tmp, "dovecot2"),
                                plaintext=True,
                                maildir=os.path.join(tmp, "dc2-maildir"))
            shutil.rmtree(ours.maildir)
            shutil.copytree(master, ours.maildir)
            ours.chown_mail()
            ours.start()
            self.addCleanup(ours.stop)
        self.assertEqual(sep, ".", "our delimiter is not '.': the session "
                         "uses '.'-separated names")
        dc = DovecotImapd(os.path.join(tmp, "dovecot"), plaintext=True,
                          separator=sep,
                          maildir=os.path.join(tmp, "dc-maildir"))
        shutil.rmtree(dc.maildir)
        shutil.copytree(master, dc.maildir)
        dc.chown_mail()
        dc.start()
        self.addCleanup(dc.stop)

        theirs = run_session(dc.port)
        mine = run_session(ours.port)
        report, unexpected = [], []
        for label, cmd, _ in SESSION:
            problems = [f"  {side}: {problem}\n"
                        for side, res in (("dovecot", theirs),
                                          (ours.kind, mine))
                        for problem in flag_list_problems(res[label][1])]
            if problems:
                unexpected.append(f"--- {label}: {cmd}\n" + "".join(problems))
            a = normalise(theirs[label][1], label)
            b = normalise(mine[label][1], label)
            if a == b:
                continue
            block = (f"--- {label}: {cmd}\n  dovecot:\n"
                     + "".join(f"    {x}\n" for x in a)
                     + f"  {ours.kind}:\n"
                     + "".join(f"    {x}\n" for x in b))
            if label in DIFFERENCES:
                report.append(block + f"  (on purpose: "
                                      f"{DIFFERENCES[label]})\n")
            else:
                unexpected.append(block)
        if report:
            print("\nDifferences on purpose:\n" + "".join(report),
                  file=sys.stderr)
        if unexpected:
            self.fail(f"{len(unexpected)} of {len(SESSION)} commands answer "
                      f"differently:\n" + "".join(unexpected))
        # the session did real work (the compare is not of two errors)
        self.assertEqual(normalise(theirs["search seen"][1])[0],
                         "* SEARCH 1 2 3 5 7")
        self.assertIn("TAG OK", normalise(theirs["move"][1])[-1])

    def delimiter(self, port):
        c = Raw(port)
        try:
            c.command(f'LOGIN "{USER}" "{PASSWORD}"')
            r = c.command('LIST "" ""')
            m = re.match(rb'\* LIST \([^)]*\) "(.)"', r[0])
            return m.group(1).decode() if m else None
        finally:
            c.close()


if __name__ == "__main__":
    if not have_dovecot():
        print("skipped: needs root and dovecot-imapd", file=sys.stderr)
        sys.exit(77)
    if os.environ.get("MH_IMAP_SECOND", "ours") == "ours" and not have_ours():
        print("skipped: MH_IMAPD, MH_MHCTL, MH_DELIVER not set (mh-imapd "
              "not built yet?)", file=sys.stderr)
        sys.exit(77)
    unittest.main(verbosity=2)
