#!/usr/bin/env python3
"""The exported symbols of libmailhost.so are exactly the MH_API
declarations in include/mailhost (STYLE.md, Visibility): nothing internal
leaks, and nothing declared public is missing."""
import re
import subprocess
import sys
from pathlib import Path

lib, include = sys.argv[1], Path(sys.argv[2])
out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                     capture_output=True, text=True).stdout
exported = {line.split()[-1] for line in out.splitlines()
            if line.split() and line.split()[-2] in ("T", "D", "B", "R")}
declared = set()
for h in include.glob("*.h"):
    text = h.read_text()
    # MH_API <type> <name> (   possibly over several lines
    for m in re.finditer(r"MH_API\b([^;(]*?)\b(mh_\w+)\s*\(", text, re.S):
        declared.add(m.group(2))
    for m in re.finditer(r"MH_API\b[^;(]*?\b(mh_\w+)\s*;", text, re.S):
        declared.add(m.group(1))
ignore = {"_init", "_fini", "_edata", "_end", "__bss_start"}
leaked = sorted(s for s in exported - declared - ignore)
missing = sorted(declared - exported)
for s in leaked:
    print(f"exported but not declared MH_API in include/: {s}")
for s in missing:
    print(f"declared MH_API but not exported: {s}")
print(f"{len(exported & declared)} public symbols checked")
sys.exit(1 if leaked or missing else 0)
