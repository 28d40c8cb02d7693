#!/usr/bin/python3
"""End-to-end tests of mhctl: the real binary (MH_MHCTL) on a temporary
data directory, every verb, --json parsed, exit codes, and the bad input
of issue 3 (each gets a clear message and changes nothing)."""

import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

MHCTL = os.environ.get("MH_MHCTL")

# One hash per scheme, password "correct horse" (doveadm pw -s SCHEME).
SSHA256 = "{SSHA256}gl6Q6kWYQ8Ct2KbZWkgcN1OGVcajug6hLLfy7ttm3Xxb4Obk"
SHA512_CRYPT = ("$6$UQ.p8uDrOwQKRWLP$cAP58FWAVrmjfPcKYyCXvdA.Z1oFkeT6S5TkXJ6Y."
                "NUf7UDT.rxH/qMhVEfKH53URWdXfqhyp6EGFL9s6TIl70")


class Mhctl(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mhctl-e2e-")
        self.data = os.path.join(self.tmp, "data")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_mhctl(self, *args, stdin=None, data=True, check=None):
        cmd = [MHCTL]
        if data:
            cmd += ["--data-dir", self.data]
        cmd += list(args)
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                           timeout=60)
        if check is not None:
            self.assertEqual(p.returncode, check,
                             f"{cmd}: rc {p.returncode}\nstdout: {p.stdout}\n"
                             f"stderr: {p.stderr}")
        return p

    def ok(self, *args, stdin=None):
        return self.run_mhctl(*args, stdin=stdin, check=0)

    def fails(self, rc, needle, *args, stdin=None):
        p = self.run_mhctl(*args, stdin=stdin, check=rc)
        self.assertIn(needle, p.stderr)
        self.assertTrue(p.stderr.startswith("mhctl: "), p.stderr)
        return p

    def js(self, *args):
        return json.loads(self.ok("--json", *args).stdout)

    # -- domains ----------------------------------------------------------

    def test_domain_verbs(self):
        self.ok("domain", "add", "Bücher.Example")
        self.ok("domain", "add", "example.org")
        self.fails(2, "domain add: domain 'bücher.example' already exists",
                   "domain", "add", "xn--bcher-kva.example")
        doms = self.js("domain", "list")
        self.assertEqual([d["ascii_name"] for d in doms],
                         ["example.org", "xn--bcher-kva.example"])
        self.assertEqual(doms[1]["name"], "bücher.example")
        show = self.js("domain", "show", "XN--BCHER-KVA.example")
        self.assertEqual(show["accounts"], 0)
        self.assertEqual(show["settings"], {})
        self.ok("domain", "set", "example.org", "quota_bytes", "1G")
        self.ok("domain", "set", "example.org", "max_accounts", "1")
        show = self.js("domain", "show", "example.org")
        self.assertEqual(show["settings"],
                         {"quota_bytes": 1 << 30, "max_accounts": 1})
        self.fails(3, "unknown domain setting 'colour'",
                   "domain", "set", "example.org", "colour", "red")
        self.fails(3, "expected a size", "domain", "set", "example.org",
                   "quota_bytes", "lots")
        self.ok("user", "add", "a@example.org")
        self.fails(2, "max_accounts 1", "user", "add", "b@example.org")
        text = self.ok("domain", "show", "example.org").stdout
        self.assertIn("accounts:   1", text)
        self.fails(2, "still has 1 account(s)", "domain", "del",
                   "example.org")
        self.ok("domain", "del", "example.org", "--force")
        self.fails(2, "domain 'example.org' does not exist",
                   "domain", "show", "example.org")
        self.ok("domain", "del", "bücher.example")
        self.assertEqual(self.js("domain", "list"), [])

    def test_bad_domains(self):
        cases = [
            ("exa mple.org", "space"),
            ("a..b.org", "empty label"),
            ("-a.org", "hyphen"),
            ("a_b.org", "'_'"),
            ("localhost", "two labels"),
            ("a" * 64 + ".org", "63"),
            (".".join(["a" * 63] * 4) + ".org", "too long"),
            ("xn--zz-.example", "hyphen"),
            ("xn--abc.example", "IDNA"),
            ("\u2603.com", "IDNA"),
            ("192.0.2.1", "all digits"),
        ]
        for name, needle in cases:
            with self.subTest(name=name):
                # "--": a name starting with '-' is not an option.
                self.fails(3, needle, "domain", "add", "--", name)
        self.assertEqual(self.js("domain", "list"), [])

    def test_domain_alias_verbs(self):
        self.ok("domain", "add", "example.org")
        self.ok("domain-alias", "add", "example.net", "example.org")
        self.fails(2, "already exists", "domain-alias", "add", "example.net",
                   "example.org")
        self.fails(2, "'exmaple.org' does not exist", "domain-alias", "add",
                   "example.com", "exmaple.org")
        self.fails(2, "already a domain alias", "domain", "add",
                   "example.net")
        lst = self.js("domain-alias", "list")
        self.assertEqual(lst[0]["name"], "example.net")
        self.assertEqual(lst[0]["target"], "example.org")
        self.ok("domain-alias", "del", "example.net")
        self.fails(2, "does not exist", "domain-alias", "del", "example.net")

    # -- users --------------------------------------------------------------

    def test_user_verbs(self):
        self.ok("domain", "add", "example.org")
        self.fails(2, "user add: domain 'exmaple.org' does not exist",
                   "user", "add", "bob@exmaple.org")
        out = self.ok("user", "add", "Bob@Example.org", "--password-stdin",
                      stdin="s3cret\n").stdout
        self.assertIn("bob@example.org", out)
        self.fails(2, "account 'bob@example.org' already exists",
                   "user", "add", "BOB@example.org")
        self.ok("user", "add", "nopw@example.org")
        users = self.js("user", "list", "example.org")
        self.assertEqual([u["address"] for u in users],
                         ["bob@example.org", "nopw@example.org"])
        self.assertTrue(users[0]["has_password"])
        self.assertEqual(users[0]["password_scheme"], "yescrypt")
        self.assertFalse(users[1]["has_password"])
        self.assertEqual(users[0]["protocols"],
                         ["imap", "pop3", "submission", "managesieve"])
        self.assertEqual(len(self.js("user", "list")), 2)

        self.ok("user", "set", "bob@example.org", "display_name", "Bob Ex")
        self.ok("user", "set", "bob@example.org", "protocols", "imap,pop3")
        self.ok("user", "set", "bob@example.org", "quota_bytes", "500M")
        self.ok("user", "set", "bob@example.org", "enabled", "false")
        u = self.js("user", "show", "bob@example.org")
        self.assertEqual(u["display_name"], "Bob Ex")
        self.assertEqual(u["protocols"], ["imap", "pop3"])
        self.assertEqual(u["settings"], {"quota_bytes": 500 << 20})
        self.assertFalse(u["enabled"])
        self.fails(3, "unknown protocol 'smtp'", "user", "set",
                   "bob@example.org", "protocols", "imap,smtp")
        self.fails(3, "unknown account setting", "user", "set",
                   "bob@example.org", "colour", "red")
        self.ok("user", "set", "bob@example.org", "password_hash", SSHA256)
        self.assertEqual(self.js("user", "show", "bob@example.org")
                         ["password_scheme"], "SSHA256")
        self.fails(3, "unknown password scheme", "user", "set",
                   "bob@example.org", "password_hash", "{MD4}x")

        self.ok("user", "passwd", "bob@example.org", "--password-stdin",
                stdin="new password")
        self.assertEqual(self.js("user", "show", "bob@example.org")
                         ["password_scheme"], "yescrypt")
        self.fails(2, "'nobody@example.org' does not exist", "user",
                   "passwd", "nobody@example.org", "--password-stdin",
                   stdin="pw")
        text = self.ok("user", "show", "bob@example.org").stdout
        self.assertIn("display name: Bob Ex", text)
        self.ok("user", "del", "bob@example.org")
        self.fails(2, "does not exist", "user", "show", "bob@example.org")
        self.fails(2, "does not exist", "user", "del", "bob@example.org")
        self.fails(2, "'exmaple.org' does not exist", "user", "list",
                   "exmaple.org")

    def test_passwords(self):
        self.ok("domain", "add", "example.org")
        self.fails(3, "password is empty", "user", "add", "a@example.org",
                   "--password-stdin", stdin="")
        self.fails(3, "password is empty", "user", "add", "a@example.org",
                   "--password-stdin", stdin="\n")
        self.fails(3, "password is too long", "user", "add",
                   "a@example.org", "--password-stdin", stdin="x" * 5000)
        # Nothing was added by the failures.
        self.fails(2, "does not exist", "user", "show", "a@example.org")
        # Never from argv.
        p = self.run_mhctl("user", "add", "a@example.org", "--password",
                           "hunter2", check=1)
        self.assertIn("--password-stdin", p.stderr)
        p = self.run_mhctl("user", "passwd", "a@example.org", check=1)
        self.assertIn("--password-stdin", p.stderr)
        self.fails(1, "does not apply", "domain", "add", "x.org",
                   "--password-stdin")

    def test_bad_addresses(self):
        self.ok("domain", "add", "example.org")
        cases = [
            ("bob", "no '@domain'"),
            ("@example.org", "empty local part"),
            (".bob@example.org", "'.'"),
            ("a..b@example.org", "'.'"),
            ("a b@example.org", "' '"),
            ("x" * 65 + "@example.org", "64"),
        ]
        for addr, needle in cases:
            with self.subTest(addr=addr):
                self.fails(3, needle, "user", "add", addr)
        self.assertEqual(self.js("user", "list"), [])

    # -- aliases ------------------------------------------------------------

    def test_alias_verbs(self):
        self.ok("domain", "add", "example.org")
        self.ok("user", "add", "bob@example.org")
        self.fails(2, "alias target 'ghost@example.org' does not exist",
                   "alias", "add", "info@example.org", "ghost@example.org")
        self.ok("alias", "add", "info@example.org", "bob@example.org",
                "Someone@Elsewhere.com")
        self.fails(2, "already has target 'bob@example.org'", "alias", "add",
                   "info@example.org", "BOB@example.org")
        self.fails(2, "'bob@example.org' is an account", "alias", "add",
                   "bob@example.org", "x@elsewhere.com")
        self.fails(2, "'info@example.org' is already an alias", "user",
                   "add", "info@example.org")
        self.fails(3, "point to itself", "alias", "add", "self@example.org",
                   "self@example.org")
        self.fails(1, "expected SOURCE TARGET", "alias", "add",
                   "x@example.org")
        al = self.js("alias", "list", "example.org")
        self.assertEqual(al[0]["address"], "info@example.org")
        self.assertEqual(al[0]["targets"],
                         ["bob@example.org", "Someone@elsewhere.com"])
        self.assertEqual(self.js("alias", "show", "info@example.org")
                         ["targets"][0], "bob@example.org")
        self.ok("alias", "del", "info@example.org", "bob@example.org")
        self.assertEqual(self.js("alias", "list")[0]["targets"],
                         ["Someone@elsewhere.com"])
        self.fails(2, "has no target", "alias", "del", "info@example.org",
                   "bob@example.org")
        self.ok("alias", "del", "info@example.org")
        self.assertEqual(self.js("alias", "list"), [])
        self.fails(2, "does not exist", "alias", "del", "info@example.org")

    # -- import -------------------------------------------------------------

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_import_with_broken_lines(self):
        self.ok("domain", "add", "example.org")
        self.ok("user", "add", "taken@example.org")
        path = self.write("users.txt", "\n".join([
            "# users from the old server",          # 1
            "alice@example.org " + SSHA256,          # 2
            "",                                      # 3
            "bob@example.org - 1G",                  # 4
            "bad..dots@example.org",                 # 5
            "carol@example.org notahash",            # 6
            "dave@exmaple.org",                      # 7
            "taken@example.org",                     # 8
            "eve@example.org - lots",                # 9
            "ALICE@example.org",                     # 10
            "frank@example.org - 2G extra",          # 11
            "gina@example.org\t" + SHA512_CRYPT + "\t500M",  # 12
        ]) + "\n")
        p = self.run_mhctl("import", path, check=3)
        lines = [int(m) for m in re.findall(r"users\.txt:(\d+): ", p.stderr)]
        self.assertEqual(lines, [5, 6, 7, 8, 9, 10, 11])
        self.assertIn(f"mhctl: import: {path}:7: domain 'exmaple.org' does "
                      "not exist", p.stderr)
        self.assertIn(f"{path}:10: ", p.stderr)
        self.assertIn("duplicate of line 2", p.stderr)
        self.assertIn(f"{path}:8: account 'taken@example.org' already "
                      "exists", p.stderr)
        self.assertIn("nothing added", p.stderr)
        # Nothing added.
        self.assertEqual([u["address"] for u in self.js("user", "list")],
                         ["taken@example.org"])

        # --json gives the same, parsed.
        p = self.run_mhctl("--json", "import", path, check=3)
        res = json.loads(p.stdout)
        self.assertFalse(res["ok"])
        self.assertEqual(res["added"], 0)
        self.assertEqual([e["line"] for e in res["errors"]],
                         [5, 6, 7, 8, 9, 10, 11])

        # --partial adds the good lines.
        p = self.run_mhctl("--json", "import", path, "--partial", check=3)
        res = json.loads(p.stdout)
        self.assertEqual(res["added"], 3)
        users = {u["address"]: u for u in self.js("user", "list")}
        self.assertEqual(sorted(users), ["alice@example.org",
                                         "bob@example.org",
                                         "gina@example.org",
                                         "taken@example.org"])
        self.assertEqual(users["bob@example.org"]["settings"],
                         {"quota_bytes": 1 << 30})
        self.assertEqual(users["gina@example.org"]["password_scheme"],
                         "sha512-crypt")
        self.assertFalse(users["bob@example.org"]["has_password"])

    def test_import_clean_file_and_stdin(self):
        self.ok("domain", "add", "example.org")
        path = self.write("ok.txt", "a@example.org\nb@example.org "
                          + SSHA256 + " 10M\n")
        out = self.ok("import", path, "--dry-run").stdout
        self.assertIn("dry run", out)
        self.assertEqual(self.js("user", "list"), [])
        out = self.ok("import", path).stdout
        self.assertIn("2 account(s) added", out)
        self.ok("import", "-", stdin="c@example.org\n")
        self.assertEqual(len(self.js("user", "list")), 3)
        self.fails(3, "No such file", "import",
                   os.path.join(self.tmp, "missing.txt"))

    def test_import_many_is_fast(self):
        self.ok("domain", "add", "example.org")
        lines = "".join(f"user{i}@example.org {SSHA256} 1G\n"
                        for i in range(2000))
        path = self.write("many.txt", lines)
        t = time.monotonic()
        self.ok("import", path)
        took = time.monotonic() - t
        self.assertEqual(self.js("domain", "show", "example.org")["accounts"],
                         2000)
        # One transaction: generous bound, only catches per-line commits.
        self.assertLess(took, 30)

    # -- the program ----------------------------------------------------------

    def test_usage_help_version(self):
        p = self.run_mhctl(data=False, check=1)
        self.assertIn("Usage: mhctl", p.stderr)
        p = self.run_mhctl("--help", data=False, check=0)
        for verb in ("domain add", "user passwd", "alias del", "import FILE"):
            self.assertIn(verb, p.stdout)
        p = self.run_mhctl("user", "--help", data=False, check=0)
        self.assertIn("mhctl user passwd", p.stdout)
        p = self.run_mhctl("import", "--help", data=False, check=0)
        self.assertIn("--partial", p.stdout)
        p = self.run_mhctl("--version", data=False, check=0)
        self.assertTrue(p.stdout.startswith("mhctl (libmailhost) "))
        self.fails(1, "unknown verb 'frobnicate'", "frobnicate")
        self.fails(1, "unknown verb 'frob'", "user", "frob")
        self.fails(1, "unknown option '--frob'", "--frob", "domain", "list")
        self.fails(1, "expected DOMAIN", "domain", "add")
        self.fails(1, "expected DOMAIN", "domain", "add", "a.org", "b.org")

    def test_config_data_dir(self):
        conf = self.write("mailhost.conf",
                          f"[general]\ndata_dir = {self.data}\n")
        self.run_mhctl("--config", conf, "domain", "add", "example.org",
                       data=False, check=0)
        self.assertTrue(os.path.exists(os.path.join(self.data,
                                                    "directory.mdb")))
        p = self.run_mhctl("--config", conf, "--json", "domain", "list",
                           data=False, check=0)
        self.assertEqual(json.loads(p.stdout)[0]["name"], "example.org")
        bad = self.write("bad.conf", "[nosuchsection]\nx = 1\n")
        p = self.run_mhctl("--config", bad, "domain", "list", data=False,
                           check=3)
        self.assertIn("nosuchsection", p.stderr)

    def test_unreadable_directory(self):
        os.makedirs(self.data)
        with open(os.path.join(self.data, "directory.mdb"), "wb") as f:
            f.write(os.urandom(16384))
        p = self.fails(3, "not an LMDB database", "domain", "list")
        self.assertIn(os.path.join(self.data, "directory.mdb"), p.stderr)
        os.unlink(os.path.join(self.data, "directory.mdb"))
        os.mkdir(os.path.join(self.data, "directory.mdb"))
        self.fails(3, "is a directory", "domain", "list")
        os.rmdir(os.path.join(self.data, "directory.mdb"))
        lock = os.path.join(self.data, "directory.mdb-lock")
        if os.path.exists(lock):
            os.unlink(lock)
        os.mkdir(lock)
        self.fails(3, "lock file", "domain", "list")


if __name__ == "__main__":
    if not MHCTL:
        sys.exit("MH_MHCTL is not set (run through meson test)")
    unittest.main(verbosity=2)
