#!/usr/bin/python3
"""libmailhost's directory from Python (PyGObject).

Run against a build tree:
  GI_TYPELIB_PATH=build/lib LD_LIBRARY_PATH=build/lib python3 examples/directory.py [DATA_DIR]
Without DATA_DIR a temporary directory is used and removed.
"""
import shutil
import sys
import tempfile

import gi

gi.require_version("Mailhost", "1.0")
from gi.repository import GLib, Mailhost  # noqa: E402


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    try:
        directory = Mailhost.Directory.open(data_dir)
        if not directory.domain_is_local("bücher.example"):
            directory.domain_add("bücher.example")
        directory.domain_set_setting("bücher.example", "quota_bytes", "2G")
        directory.account_add("anna@bücher.example", "correct horse")
        directory.alias_add("info@bücher.example", ["anna@bücher.example"])

        for account in directory.account_list("bücher.example"):
            print(account.get_address(), "stored as",
                  account.get_ascii_address())

        directory.authenticate("anna@bücher.example", "correct horse", "imap")
        print("password verified")
        try:
            directory.authenticate("anna@bücher.example", "wrong", None)
        except GLib.Error as e:
            print("wrong password:", e.message)
    finally:
        if len(sys.argv) <= 1:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
