#!/bin/sh
# The generated irsafs(1) documents every option `irsafs --help` lists, says
# what README.md's exit-status table says, word for word, and groff renders it
# and mount.irsafs(8) without warnings.
#   usage: check-manpage.sh MANPAGE IRSAFS README HELPER_MANPAGE
set -eu
man=$1
bin=$2
readme=$3
helper_man=$4
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
# The exit statuses: each row of README.md's table ("| N | meaning |", under
# "| exit status |"), without markdown, is the text of `.B N` in EXIT STATUS.
norm() { tr '\n' ' ' | sed 's/\\-/-/g; s/`//g; s/  */ /g; s/^ //; s/ $//'; }
rows=$(awk '/^\| exit status \|/ { t = 1; next } t && /^\|---/ { next } t && /^\| [0-9]+ \|/ { print; next } t { exit }' "$readme")
[ -n "$rows" ] || { echo "FAIL: no exit-status table in $readme"; fail=$((fail + 1)); }
printf '%s\n' "$rows" | while IFS='|' read -r _ n text _; do
	n=$(echo $n)
	want=$(printf '%s' "$text" | norm)
	got=$(awk -v n="$n" '/^\.SH EXIT STATUS/ { s = 1; next } /^\.SH/ { s = 0 }
		s && /^\.TP/ { if (p) exit; next } s && $0 == ".B " n { p = 1; next }
		p && /^\.PP/ { exit } p { print }' "$man" | norm)
	if [ "$got" != "$want" ]; then
		echo "FAIL: exit status $n: README says '$want', $man says '$got'"
		exit 1
	fi
done || fail=$((fail + 1))
if command -v groff >/dev/null 2>&1; then
	warnings=$(groff -man -Tutf8 -ww -z "$helper_man" 2>&1 || true)
	if [ -n "$warnings" ]; then
		echo "FAIL: groff warns about $helper_man: $warnings"
		fail=$((fail + 1))
	fi
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
