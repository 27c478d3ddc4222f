#!/bin/sh
# The generated irsafs(1) documents every option `irsafs --help` lists, and
# groff renders it without warnings.
#   usage: check-manpage.sh MANPAGE IRSAFS
set -eu
man=$1
bin=$2
fail=0
text=$(sed 's/\\-/-/g' "$man")
# The option lines of --help (the usage lines also name subcommand flags).
for flag in $("$bin" --help | grep -- '^  -' | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	if ! printf '%s\n' "$text" | grep -q -- "$flag"; then
		echo "FAIL: $flag is in irsafs --help but not in $man"
		fail=$((fail + 1))
	fi
done
if grep -q '@[A-Z]*@' "$man"; then
	echo "FAIL: $man still has an @PLACEHOLDER@"
	fail=$((fail + 1))
fi
if command -v groff >/dev/null 2>&1; then
	warnings=$(groff -man -Tutf8 -ww -z "$man" 2>&1 || true)
	if [ -n "$warnings" ]; then
		echo "FAIL: groff warns: $warnings"
		fail=$((fail + 1))
	fi
else
	echo "note: groff not installed, rendering not checked"
fi
if [ "$fail" = 0 ]; then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
	exit 1
fi
