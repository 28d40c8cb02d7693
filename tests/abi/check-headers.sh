#!/bin/sh
# Each public header must compile on its own under strict flags
# (STYLE.md, Visibility). Usage: check-headers.sh CC SRCROOT CFLAGS...
set -eu
cc=$1; src=$2; shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for h in "$src"/include/mailhost/*.h; do
  name=$(basename "$h")
  printf '#include <mailhost/%s>\nint mh_header_test_%s;\n' "$name" \
    "$(echo "$name" | tr -c 'a-z0-9\n' '_')" > "$tmp/t.c"
  if ! "$cc" -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only \
      -I"$src/include" "$@" "$tmp/t.c" 2> "$tmp/err"; then
    echo "FAIL: $name does not compile alone:"; cat "$tmp/err"; status=1
  else
    echo "ok: $name"
  fi
done
exit $status
