#!/bin/sh
# Build irsafs(1) from irsafs.1.in and the binary's own --help, so the page
# never lists other options than the program: @OPTIONS@ becomes one .TP entry
# per option line of `irsafs --help`, @HELP_NOTES@ the paragraphs after them.
#   usage: gen-manpage.sh TEMPLATE IRSAFS OUTPUT VERSION BINDIR
set -eu
template=$1
bin=$2
out=$3
version=$4
bindir=$5
tmp=$out.tmp
"$bin" --help | awk '
function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
BEGIN { state = 0 }
/^  -/ {
	state = 1
	line = substr($0, 3)
	n = match(line, /  +/)
	if (n) { term = substr(line, 1, n - 1); desc = substr(line, n + RLENGTH) }
	else { term = line; desc = "" }
	printf ".TP\n.B %s\n", esc(term) > "/dev/stderr"
	# A term too long for its column has its text on the next lines.
	if (desc != "") print esc(desc) > "/dev/stderr"
	next
}
state == 1 && /^          / { sub(/^ +/, ""); print esc($0) > "/dev/stderr"; next }
state >= 1 && /^$/ { if (state == 2) print ".PP"; state = 2; next }
state == 2 { print esc($0) }
' 2>"$tmp.options" >"$tmp.notes"
if [ ! -s "$tmp.options" ]; then
	echo "gen-manpage.sh: no options found in $bin --help" >&2
	exit 1
fi
awk -v opts="$tmp.options" -v notes="$tmp.notes" -v version="$version" -v bindir="$bindir" '
/^@OPTIONS@$/ { while ((getline l < opts) > 0) print l; next }
/^@HELP_NOTES@$/ { while ((getline l < notes) > 0) print l; next }
{ gsub(/@VERSION@/, version); gsub(/@BINDIR@/, bindir); print }
' "$template" >"$tmp"
rm -f "$tmp.options" "$tmp.notes"
mv "$tmp" "$out"
