#!/bin/sh
# The C example in README.md compiles against the built library and runs.
# Usage: check-readme.sh CC README LIBDIR SRCROOT CFLAGS-AND-LIBS...
set -eu
cc=$1; readme=$2; libdir=$3; src=$4; shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '/^```c$/,/^```$/p' "$readme" | sed '1d;$d' > "$tmp/example.c"
grep -q mh_directory_open "$tmp/example.c" || { echo "no C example found"; exit 1; }
"$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" "$tmp/example.c" \
  -L"$libdir" -lmailhost "$@" -o "$tmp/example"
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/example" "$tmp/data")
echo "$out"
[ "$out" = "ann may read her mail over IMAP" ]
# a second run must fail cleanly: the domain exists now
if LD_LIBRARY_PATH="$libdir" "$tmp/example" "$tmp/data" 2> "$tmp/err"; then
  echo "second run should fail"; exit 1
fi
grep -q "already exists" "$tmp/err"
