#!/usr/bin/python3
"""Times `mhctl import` of 10,000 users with precomputed password hashes
(salted {SSHA256}, as exported from a Dovecot setup, each with its own
salt) into a fresh data directory. Prints figures; never fails on speed.

  MH_MHCTL=build/bin/mhctl /usr/bin/python3 tests/bench/bench-mhctl-import.py [N]
"""
import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

MHCTL = os.environ["MH_MHCTL"]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def ssha256(password, salt):
    digest = hashlib.sha256(password.encode() + salt).digest()
    return "{SSHA256}" + base64.b64encode(digest + salt).decode()


def mhctl(data, *args):
    p = subprocess.run([MHCTL, "--data-dir", data, *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"mhctl {' '.join(args)}: {p.stderr}")
    return p.stdout


def main():
    rnd = random.Random(42)
    tmp = tempfile.mkdtemp(prefix="mh-bench-import-")
    try:
        data = os.path.join(tmp, "data")
        path = os.path.join(tmp, "users.txt")
        with open(path, "w") as f:
            f.write("# bench: %d users\n" % N)
            for i in range(N):
                salt = bytes(rnd.getrandbits(8) for _ in range(8))
                f.write(f"user{i:05d}@example.org "
                        f"{ssha256('pw%d' % i, salt)} 1G\n")
        mhctl(data, "domain", "add", "example.org")
        t = time.monotonic()
        mhctl(data, "import", path)
        took = time.monotonic() - t
        show = json.loads(mhctl(data, "--json", "domain", "show",
                                "example.org"))
        size = os.path.getsize(os.path.join(data, "directory.mdb"))
        print(f"mhctl import of {N} users (precomputed hashes): "
              f"{took:.2f} s ({N / took:.0f} users/s), "
              f"{show['accounts']} accounts, directory.mdb {size >> 10} KiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
