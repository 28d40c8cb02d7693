#!/usr/bin/python3
"""The directory API through GObject introspection (PyGObject), against
the built library: a domain, a user, a password verified, errors as
GLib.Error in the Mailhost directory domain."""

import os
import shutil
import sys
import tempfile
import unittest

import gi

gi.require_version("Mailhost", "1.0")
from gi.repository import GLib, Mailhost  # noqa: E402


class DirectoryBinding(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mh-py-")
        self.dir = Mailhost.Directory.open(self.tmp)

    def tearDown(self):
        del self.dir
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assertDirError(self, code, fn, *args):
        with self.assertRaises(GLib.Error) as cm:
            fn(*args)
        self.assertTrue(cm.exception.matches(Mailhost.directory_error_quark(),
                                             code), cm.exception.message)
        return cm.exception

    def test_domain_user_password(self):
        self.assertTrue(self.dir.domain_add("Bücher.Example"))
        self.assertTrue(self.dir.account_add("Bob@bücher.example",
                                             "correct horse"))
        self.assertTrue(self.dir.authenticate("bob@xn--bcher-kva.example",
                                              "correct horse", "imap"))
        e = self.assertDirError(Mailhost.DirectoryError.AUTH_FAILED,
                                self.dir.authenticate, "bob@bücher.example",
                                "wrong", None)
        self.assertIn("authentication failed", e.message)
        info = self.dir.account_lookup("BOB@bücher.example")
        self.assertEqual(info.get_address(), "bob@bücher.example")
        self.assertEqual(info.get_ascii_domain(), "xn--bcher-kva.example")
        self.assertEqual(info.get_protocols(), Mailhost.DirectoryProtocols.ALL)
        self.assertEqual(info.get_password_scheme(), "yescrypt")

        self.dir.account_set_protocols("bob@bücher.example",
                                       Mailhost.DirectoryProtocols.IMAP)
        self.assertDirError(Mailhost.DirectoryError.DISABLED,
                            self.dir.authenticate, "bob@bücher.example",
                            "correct horse", "pop3")

    def test_lists_aliases_settings(self):
        self.dir.domain_add("example.org")
        for u in ("a", "b"):
            self.dir.account_add(f"{u}@example.org", None)
        accounts = self.dir.account_list("example.org")
        self.assertEqual([a.get_address() for a in accounts],
                         ["a@example.org", "b@example.org"])
        self.dir.alias_add("info@example.org",
                           ["a@example.org", "x@elsewhere.com"])
        alias = self.dir.alias_lookup("info@example.org")
        self.assertEqual(alias.get_targets(),
                         ["a@example.org", "x@elsewhere.com"])
        self.assertDirError(Mailhost.DirectoryError.NOT_FOUND,
                            self.dir.alias_add, "x@example.org",
                            ["ghost@example.org"])
        self.dir.domain_set_setting("example.org", "quota_bytes", "1G")
        dom = self.dir.domain_lookup("example.org")
        self.assertEqual(dom.get_setting_uint64("quota_bytes", 0), 1 << 30)
        self.assertEqual(dom.get_settings().unpack(),
                         {"quota_bytes": 1 << 30})
        self.assertEqual(dom.get_account_count(), 2)
        self.assertEqual([d.get_name() for d in self.dir.domain_list()],
                         ["example.org"])
        self.assertDirError(Mailhost.DirectoryError.INVALID,
                            self.dir.domain_add, "exa mple.org")

    def test_import(self):
        self.dir.domain_add("example.org")
        imp = Mailhost.DirectoryImport.new(self.dir)
        imp.add_account(1, "a@example.org",
                        "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=", -1)
        imp.add_account(2, "b@exmaple.org", None, -1)
        with self.assertRaises(GLib.Error):
            imp.commit(Mailhost.DirectoryImportFlags.NONE)
        self.assertEqual(imp.get_n_failures(), 1)
        msg, tag, code = imp.get_failure(0)
        self.assertEqual(tag, 2)
        self.assertIn("exmaple.org", msg)
        ok, added = imp.commit(Mailhost.DirectoryImportFlags.PARTIAL)
        self.assertTrue(ok)
        self.assertEqual(added, 1)
        self.assertTrue(self.dir.authenticate("a@example.org",
                                              "correct horse", None))

    def test_static_helpers(self):
        self.assertEqual(Mailhost.directory_domain_to_ascii("Bücher.example"),
                         "xn--bcher-kva.example")
        self.assertTrue(Mailhost.directory_password_verify(
            "Hello world!",
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjn"
            "QJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"))
        h = Mailhost.directory_password_hash("pw")
        self.assertTrue(h.startswith("$y$"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
