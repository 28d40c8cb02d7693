#!/usr/bin/python3
"""End-to-end tests of address resolution (issue 5) through the real mhctl
(MH_MHCTL): `mhctl resolve` with text, --json and --batch output, rules
set with `domain set` / `user set`, temporary aliases with their expiry
(seen with --at, never by sleeping), group addresses from inside and
outside, and the bad input of the issue."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

MHCTL = os.environ.get("MH_MHCTL")


class Resolve(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mhctl-resolve-")
        self.data = os.path.join(self.tmp, "data")
        self.ok("domain", "add", "example.org")
        self.ok("domain", "add", "bücher.example")
        for u in ("alice@example.org", "bob@example.org",
                  "jürgen@bücher.example"):
            self.ok("user", "add", u)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_mhctl(self, *args, stdin=None, check=None):
        cmd = [MHCTL, "--data-dir", self.data] + list(args)
        p = subprocess.run(cmd, input=stdin, capture_output=True,
                           timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if check is not None:
            self.assertEqual(p.returncode, check,
                             f"{cmd}: rc {p.returncode}\nstdout: {out}\n"
                             f"stderr: {err}")
        return p.returncode, out, err

    def ok(self, *args, stdin=None):
        return self.run_mhctl(*args, stdin=stdin, check=0)[1]

    def resolve(self, address, *opts, rc=0):
        _, out, _ = self.run_mhctl("--json", "resolve", address, *opts,
                                   check=rc)
        return json.loads(out)

    @staticmethod
    def targets(res):
        return [(t["kind"], t["address"]) for t in res["targets"]]

    # -- explain ----------------------------------------------------------

    def test_text_output_explains(self):
        self.ok("alias", "add", "info@example.org", "alice@example.org",
                "partner@far.example")
        out = self.ok("resolve", "Info@Example.ORG")
        self.assertIn("info@example.org: accepted (250 2.1.5", out)
        self.assertIn("mailbox  alice@example.org", out)
        self.assertIn("forward  partner@far.example", out)
        # The trace in order: input, domain, alias, then its targets.
        lines = [l.strip() for l in out.split("trace:")[1].splitlines()
                 if l.strip()]
        self.assertTrue(lines[0].startswith("input"), lines)
        self.assertTrue(lines[1].startswith("domain"), lines)
        self.assertTrue(lines[2].startswith("alias"), lines)
        rc, out, _ = self.run_mhctl("resolve", "nobody@example.org")
        self.assertEqual(rc, 2)
        self.assertIn("rejected (550 5.1.1", out)

    def test_json_and_normalisation(self):
        a = self.resolve("JÜRGEN@BÜCHER.example")
        b = self.resolve("jürgen@xn--bcher-kva.example")
        self.assertEqual(self.targets(a), self.targets(b))
        self.assertEqual(self.targets(a),
                         [("mailbox", "jürgen@xn--bcher-kva.example")])
        self.assertTrue(a["accepted"])
        self.assertEqual(a["code"], 250)
        rules = [s["rule"] for s in a["trace"]]
        self.assertEqual(rules[:3], ["input", "domain", "account"])

    def test_subaddress_catch_all_routing(self):
        self.ok("user", "set", "alice@example.org", "subaddress_folders",
                "true")
        r = self.resolve("alice+News@example.org")
        self.assertEqual(r["targets"][0]["tag"], "News")
        self.assertEqual(r["targets"][0]["folder"], "News")
        self.ok("domain", "set", "example.org", "catch_all",
                "bob@example.org")
        r = self.resolve("whoever@example.org")
        self.assertEqual(self.targets(r), [("mailbox", "bob@example.org")])
        self.assertIn("catch-all", [s["rule"] for s in r["trace"]])
        self.ok("domain", "set", "example.org", "routing", "off")
        r = self.resolve("whoever@example.org", rc=2)
        self.assertEqual(r["targets"][0]["kind"], "reject")
        self.assertIn("routing-off", [s["rule"] for s in r["trace"]])
        rc, _, err = self.run_mhctl("domain", "set", "example.org",
                                    "routing", "maybe")
        self.assertEqual(rc, 3)
        self.assertIn("'default' or 'off'", err)

    def test_forwarding(self):
        self.ok("user", "set", "bob@example.org", "forward_to",
                "bob@far.example")
        r = self.resolve("bob@example.org")
        self.assertEqual(self.targets(r), [("forward", "bob@far.example")])
        self.ok("user", "set", "bob@example.org", "forward_keep_copy", "yes")
        r = self.resolve("bob@example.org")
        self.assertEqual(self.targets(r), [("forward", "bob@far.example"),
                                           ("mailbox", "bob@example.org")])

    # -- batch ------------------------------------------------------------

    def test_batch(self):
        self.ok("alias", "add", "team@example.org", "alice@example.org",
                "bob@example.org")
        lines = ("alice@example.org\nTEAM@example.org\n\nnobody@example.org\n"
                 "x@far.example\n")
        out = self.ok("resolve", "--batch", stdin=lines.encode())
        rows = [l.split("\t") for l in out.splitlines()]
        self.assertEqual(len(rows), 4)
        self.assertEqual(rows[0], ["alice@example.org", "250 2.1.5",
                                   "mailbox:alice@example.org"])
        self.assertEqual(rows[1][2], "mailbox:alice@example.org,"
                                     "mailbox:bob@example.org")
        self.assertEqual(rows[2][1], "550 5.1.1")
        self.assertEqual(rows[3][1], "550 5.1.2")
        # JSON Lines; a malformed line is reported and the rest still run.
        bad = b"alice@example.org\n<>\nal\x00ice@example.org\nbob@example.org\n"
        rc, out, _ = self.run_mhctl("--json", "resolve", "--batch", stdin=bad)
        self.assertEqual(rc, 3)
        objs = [json.loads(l) for l in out.splitlines()]
        self.assertEqual(len(objs), 4)
        self.assertTrue(objs[0]["accepted"])
        self.assertEqual(objs[1]["error"], "invalid")
        self.assertEqual(objs[1]["code"], 501)
        self.assertIn("NUL", objs[2]["text"])
        self.assertTrue(objs[3]["accepted"])
        rc, _, err = self.run_mhctl("resolve", "--batch", "x@example.org")
        self.assertEqual(rc, 1)

    # -- temporary aliases ------------------------------------------------

    def test_temp_alias_expiry(self):
        t = json.loads(self.ok("--json", "alias", "temp", "add",
                               "alice@example.org", "--days", "2"))
        addr = t["address"]
        self.assertEqual(t["target"], "alice@example.org")
        life = t["expires_unix"] - time.time()
        self.assertTrue(2 * 86400 - 120 < life <= 2 * 86400, life)
        r = self.resolve(addr)
        self.assertEqual(self.targets(r), [("mailbox", "alice@example.org")])
        # Tomorrow it still works; in three days it is gone, exactly like
        # an unknown address.
        self.resolve(addr, "--at", "+1d")
        r = self.resolve(addr, "--at", "+3d", rc=2)
        unknown = self.resolve("nobody@example.org", rc=2)
        self.assertEqual((r["code"], r["enhanced"], r["text"]),
                         (unknown["code"], unknown["enhanced"],
                          unknown["text"]))
        self.assertTrue(any("expired" in s["text"] for s in r["trace"]))
        # Default life one year; list; purge as at a later date.
        t2 = json.loads(self.ok("--json", "alias", "temp", "add",
                                "bob@example.org"))
        life = t2["expires_unix"] - time.time()
        self.assertTrue(365 * 86400 - 120 < life <= 365 * 86400, life)
        lst = json.loads(self.ok("--json", "alias", "temp", "list",
                                 "example.org"))
        self.assertEqual(sorted(x["address"] for x in lst),
                         sorted([addr, t2["address"]]))
        out = self.ok("alias", "temp", "purge", "--at", "+3d")
        self.assertIn("1 expired", out)
        lst = json.loads(self.ok("--json", "alias", "temp", "list"))
        self.assertEqual([x["address"] for x in lst], [t2["address"]])
        self.ok("alias", "temp", "del", t2["address"])
        # Bad requests.
        rc, _, err = self.run_mhctl("alias", "temp", "add",
                                    "alice@example.org", "--days", "0")
        self.assertEqual(rc, 1)
        self.assertIn("--days", err)
        rc, _, err = self.run_mhctl("alias", "temp", "add",
                                    "ghost@example.org")
        self.assertEqual(rc, 2)
        self.assertIn("ghost@example.org", err)
        rc, _, err = self.run_mhctl("resolve", addr, "--at", "someday")
        self.assertEqual(rc, 1)

    # -- group addresses --------------------------------------------------

    def test_group_inside_and_outside(self):
        self.ok("domain", "set", "example.org", "group_addresses", "all")
        inside = self.resolve("all@example.org", "--from",
                              "bob@example.org", "--authenticated")
        self.assertEqual(sorted(self.targets(inside)),
                         [("mailbox", "alice@example.org"),
                          ("mailbox", "bob@example.org")])
        for opts in (["--from", "jürgen@bücher.example", "--authenticated"],
                     ["--from", "bob@example.org"],
                     []):
            r = self.resolve("all@example.org", *opts, rc=2)
            self.assertEqual((r["code"], r["enhanced"]), (550, "5.7.1"))
            self.assertIn("authenticated senders", r["text"])

    # -- bad input --------------------------------------------------------

    def test_bad_input(self):
        cases = {
            "@example.org": "empty local part",
            "<>": "null reverse-path",
            "<@relay.example:alice@example.org>": "source route",
            "a" * 65 + "@example.org": "too long",
            "alice@xn--a.example": "xn--a",
            "ali\x01ce@example.org": "control character",
        }
        for addr, needle in cases.items():
            rc, out, err = self.run_mhctl("resolve", addr)
            self.assertEqual(rc, 3, addr)
            self.assertIn(needle, err, addr)
            r = self.resolve(addr, rc=3)
            self.assertEqual(r["error"], "invalid")
        # Alias to itself: refused when made.
        rc, _, err = self.run_mhctl("alias", "add", "me@example.org",
                                    "ME@example.org")
        self.assertEqual(rc, 3)
        self.assertIn("itself", err)
        # Loops and fan-out are clear errors, never a storm.
        self.ok("alias", "add", "l1@example.org", "alice@example.org")
        self.ok("alias", "add", "l2@example.org", "l1@example.org")
        self.ok("alias", "add", "l1@example.org", "l2@example.org")
        rc, _, err = self.run_mhctl("resolve", "l1@example.org")
        self.assertEqual(rc, 3)
        self.assertIn("loop: l1@example.org -> l2@example.org", err)
        many = [f"u{i}@far.example" for i in range(1000)]
        self.ok("alias", "add", "big@example.org", *many)
        r = self.resolve("big@example.org", rc=3)
        self.assertEqual(r["error"], "fanout")
        self.assertIn("more than 500 targets", r["text"])


if __name__ == "__main__":
    if not MHCTL:
        raise SystemExit("MH_MHCTL is not set")
    unittest.main(verbosity=2)
