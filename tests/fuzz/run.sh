#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) and run each one for a
# bounded time from a seed corpus made here, at run time, out of
# ../shared/fixtures (XML), ../shared/vectors (SigV4 requests) and a few
# hostile inputs written below (entity expansion, deep nesting, control
# characters in keys, broken JSON and tokens).
#
#   tests/fuzz/run.sh [BUILDDIR] [SECONDS]     (defaults: build-fuzz, $FUZZ_SECONDS or 20)
#
# Runs FUZZ_JOBS targets at once (default: one per core). Prints one line per
# target and ends with "fuzz: N passed, M failed". A crash leaves its input in
# BUILDDIR/fuzz-artifacts/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
bdir=${1:-build-fuzz}
secs=${2:-${FUZZ_SECONDS:-20}}
shared=$src/../shared

if ! command -v clang >/dev/null; then
	echo "fuzz: error: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
fi
if [ ! -d "$bdir" ]; then
	CC=clang meson setup "$bdir" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debugoptimized -Dc_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$bdir" >/dev/null

work=$(mktemp -d /tmp/irsafs-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
art=$bdir/fuzz-artifacts
mkdir -p "$art"

seed() { # target, then files to copy in
	local d=$work/seed-$1
	shift
	mkdir -p "$d"
	for f in "$@"; do
		[ -f "$f" ] && cp "$f" "$d/$(echo "$f" | md5sum | cut -c1-16)"
	done
	return 0
}
put() { # target, name, content (printf format)
	mkdir -p "$work/seed-$1"
	printf "$3" >"$work/seed-$1/$2"
}

xmls() { [ -d "$shared/fixtures/xml/$1" ] && find "$shared/fixtures/xml/$1" -name '*.xml' || true; }
if [ -d "$shared/fixtures/xml" ]; then
	seed fuzz_s3_list $(xmls s3-list) $(find "$shared/fixtures/xml" -name 'responses_s3*.xml')
	seed fuzz_xml_error $(xmls s3-errors) $(find "$shared/fixtures/xml" -name 'errors_*.xml')
	seed fuzz_sts $(xmls sts) $(find "$shared/fixtures/xml" -name '*sts*.xml')
else
	echo "fuzz: ../shared/fixtures is absent: the XML targets start from the hostile seeds only"
fi
if [ -d "$shared/vectors/sigv4" ]; then
	seed fuzz_sigv4 $(find "$shared/vectors/sigv4" -name '*.req')
fi
# Hostile XML for every XML target: entity expansion, external entities, deep
# nesting, a huge attribute, keys with control characters.
for t in fuzz_s3_list fuzz_xml_error fuzz_sts; do
	put $t lol '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><Error><Code>&c;</Code></Error>'
	put $t xxe '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Error><Code>&e;</Code></Error>'
	python3 -c 'print("<a>"*5000 + "</a>"*5000)' >"$work/seed-$t/deep"
	put $t ctl '<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%%00b%%0D%%0Ac%%FF%%C3</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>%%2F%%2F/</Prefix></CommonPrefixes><IsTruncated>true</IsTruncated></ListBucketResult>'
done
# radosgw's echo of a prefix with a control character (s3_xml.c blanks it)
put fuzz_s3_list echo '<ListBucketResult><EncodingType>url</EncodingType><Prefix>d/&#x01;dir/</Prefix><IsTruncated>false</IsTruncated><Contents><Key>d%%2F%%01dir%%2Ff</Key><Size>3</Size></Contents></ListBucketResult>'
put fuzz_sigv4 vanilla 'GET /a//b/../c/%%41%%zz?x=1&y=&=z&x=0 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nMy-Header1:  a   b  \nmy-header1:c\n\n'
put fuzz_sigv4 normalized '\001GET /./../%%2e%%2E/x HTTP/1.1\nHost:h\n\n'
put fuzz_listing keys 'dir/\ndir/a\ndir/\ndir//b\ndir/./c\ndir/../d\ndir/e\001f\ndir/g\r\nh\ndir/\377\376\nP:dir/x/\nP:dir//\nP:dir/e\001f/\nother/z\n'
put fuzz_listing pages 'd/\nd/a\nd/a!b\n--\nd/a.txt\nP:d/a/\n--\nd/b\nd/a0\n--\nP:d/b/\nd/c\n'
python3 -c 'import sys; sys.stdout.write("d/\n" + "d/" + "x"*1024 + "\n" + "d/" + "y"*255 + "\n" + "d/" + "z"*256 + "\n")' \
	>"$work/seed-fuzz_listing/long"
put fuzz_creds_json ok '\000{"AccessKeyId":"AKID","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}'
put fuzz_creds_json process '\002{"Version":1,"AccessKeyId":"AKID","SecretAccessKey":"s","SessionToken":"t"}'
put fuzz_creds_json bad '\000{"AccessKeyId":1,"SecretAccessKey":null,"Expiration":"2030-13-45T99:99:99Z","Code":"Nope"}'
put fuzz_creds_json deep '\001[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]'
# The profile target: flags byte (1: config), the name, a newline, the file.
put fuzz_profile creds '\000prod\n[default]\naws_access_key_id = AKIDEXAMPLE\n[prod]\naws_access_key_id=AKID2\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n# comment\n; too\n'
put fuzz_profile config '\001dev\n[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/r\nweb_identity_token_file=/var/run/t\ns3 =\n  addressing_style = path\n[sso-session x]\nregion=eu-west-1\n[default]\nregion = us-east-1\n'
put fuzz_profile bad '\003a\n[a\nk\n=\n[profile]\n'
put fuzz_jwt ok 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwODgiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVtbzpyZWFkZXIiLCJhdWQiOlsic3RzLmFtYXpvbmF3cy5jb20iXSwiZXhwIjoyMDAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMH0.c2ln'
put fuzz_jwt bad 'a.b.c\n'
# CSI requests (first byte: the method; 5 is NodePublishVolume, 6 Unpublish) and a
# handoff message (first byte 0x80). The publish seed is a whole valid request.
mkdir -p "$work/seed-fuzz_csi" "$work/seed-fuzz_initext" "$work/seed-fuzz_resume"
python3 - "$work/seed-fuzz_csi/publish" <<'PY'
import sys
def f(n, b): return bytes([n << 3 | 2, len(b)]) + b
def entry(k, v): return f(8, f(1, k.encode()) + f(2, v.encode()))
cap = f(2, b"") + f(3, bytes([8, 2]))
req = (f(1, b"csi-1") + f(4, b"/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/d/mount") +
       f(5, cap) + bytes([6 << 3, 1]) + entry("bucket", "b") + entry("prefix", "p") +
       entry("csi.storage.k8s.io/pod.uid", "abc-123"))
open(sys.argv[1], "wb").write(bytes([5]) + req)
PY
put fuzz_csi unpublish '\006\012\001v\022\002/t'
put fuzz_csi info '\003'
put fuzz_csi handoff '\200irsafs-handoff 1\nvolume_id=v\nbucket=b\nprefix=p/\ngeneration=2\n'
put fuzz_mountinfo ok '/mnt/a b\n36 35 0:44 / /mnt/a\\040b rw,nosuid - fuse.irsafs irsafs:demo rw,user_id=0\n37 36 0:45 / /mnt/a\\040b rw shared:1 - tmpfs none rw\n'
# A FUSE INIT as the kernel sends it (header, then fuse_init_in: flags with
# FUSE_INIT_EXT, flags2 with FUSE_DIRECT_IO_ALLOW_MMAP), then libfuse's answer
# (fuse_init_out); the first byte is the request's length, 104.
python3 - "$work/seed-fuzz_initext/init" <<'PY'
import struct, sys
hdr = struct.pack("<IIQQIIIHH", 104, 26, 7, 0, 0, 0, 0, 0, 0)
init_in = struct.pack("<IIIII44x", 7, 39, 131072, 1 << 30, 1 << 4)
init_out = struct.pack("<IIIIHHIIHHII24x", 7, 38, 131072, 0x1000, 12, 9, 1 << 20, 1, 256, 0, 0, 0)
open(sys.argv[1], "wb").write(bytes([104]) + hdr + init_in + init_out)
PY
# fs/resume_state.c: a whole OPENDIR in a slot (first byte 0), an INIT of 104
# bytes (1), and a BATCH_FORGET of ids 1, 5 and 9 for a server whose base is 6 (2).
python3 - "$work/seed-fuzz_resume" <<'PY'
import struct, sys
d = sys.argv[1]
req = struct.pack("<IIQQIIIHH", 56, 27, 5, 1, 0, 0, 0, 0, 0) + struct.pack("<II", 0o200000, 0)
slot = struct.pack("<IIIIQ", 2, len(req), len(req), 0, 5) + req + bytes(1000 - len(req))
init = struct.pack("<IIQQIIIHH", 104, 26, 1, 0, 0, 0, 0, 0, 0) + struct.pack("<IIIII44x", 7, 39, 131072, 0, 0)
forget = struct.pack("<IIQQIIIHH", 96, 42, 0, 0, 0, 0, 0, 0, 0) + struct.pack("<II", 3, 0) + \
    b"".join(struct.pack("<QQ", i, 1) for i in (1, 5, 9))
for name, b in (("slot", b"\0" + slot), ("init", b"\1" + struct.pack("<H", len(init)) + init),
                ("forget", b"\2" + struct.pack("<Q", 6) + forget)):
    open(f"{d}/{name}", "wb").write(b)
PY
# gRPC calls as a client sends them after the preface (fuzz_grpc adds it):
# SETTINGS, a request's HEADERS (HPACK literals, no Huffman), DATA with the
# 5-byte message prefix. A good call, two interleaved, one whose prefix lies,
# a compressed one, a GET, paths at and past 256 bytes, a reset mid-call, padding
# on a reset stream, a PING.
mkdir -p "$work/seed-fuzz_grpc"
python3 - "$work/seed-fuzz_grpc" <<'PY'
import struct, sys
d = sys.argv[1]
def frame(t, fl, sid, p=b""): return struct.pack(">I", len(p))[1:] + bytes([t, fl]) + struct.pack(">I", sid) + p
def hint(n):  # an HPACK integer with a 7-bit prefix, the H bit clear
    if n < 127: return bytes([n])
    out, n = [127], n - 127
    while n >= 128: out.append(n % 128 + 128); n //= 128
    return bytes(out + [n])
def lit(k, v): return b"\0" + hint(len(k)) + k.encode() + hint(len(v)) + v.encode()
def headers(sid, path="/csi.v1.Identity/Probe", method="POST", ct="application/grpc", end=False):
    h = [(":path", path), (":method", method), (":scheme", "http"), (":authority", "localhost"),
         ("content-type", ct), ("te", "trailers")]
    return frame(1, 4 | (1 if end else 0), sid, b"".join(lit(k, v) for k, v in h))
def msg(b, flag=0, n=None): return bytes([flag]) + struct.pack(">I", len(b) if n is None else n) + b
def data(sid, b, end=True): return frame(0, 1 if end else 0, sid, b)
S = frame(4, 0, 0)
seeds = {
    "call": S + headers(1) + data(1, msg(b"")),
    "echo": S + headers(1, "/csi.v1.Node/NodeGetInfo") + data(1, msg(b"\x0a\x03abc")),
    "two": S + headers(1) + headers(3, ct="application/grpc+proto") + data(3, msg(b"x"), False) +
           data(1, msg(b"yy")) + data(3, b"", True),
    "split": S + headers(5) + data(5, msg(b"abcdef")[:3], False) + data(5, msg(b"abcdef")[3:]),
    "lies": S + headers(1) + data(1, msg(b"abc", n=9)),
    "gzip": S + headers(1) + data(1, msg(b"abc", flag=1)),
    "get": S + headers(1, method="GET", end=True),
    "long": S + headers(1, "/" + "p" * 300) + data(1, msg(b"")),
    "p255": S + headers(1, "/" + "p" * 254) + data(1, msg(b"")),  # the longest path kept
    "p256": S + headers(1, "/" + "p" * 255) + data(1, msg(b"")),  # the shortest refused
    "nogrpc": S + headers(1, ct="application/json") + data(1, b"{}"),
    "reset": S + headers(1) + frame(3, 0, 1, struct.pack(">I", 8)) + data(1, msg(b"")),
    # A stream nghttp2 resets (a NUL in a header name), then DATA on it with more padding
    # than bytes, which nghttp2 skips unread, then a good call on another stream.
    "reset-pad": S + frame(1, 4, 3, lit(":method", "POST") + lit(":path", "/x") + lit(":a\0b", "c")) +
                 frame(0, 9, 3, bytes([16]) + b"abcd") + headers(5) + data(5, msg(b"abc")),
    "ping": S + frame(6, 0, 0, b"12345678") + frame(8, 0, 0, struct.pack(">I", 65536)) + headers(1) + data(1, msg(b"")),
}
for name, b in seeds.items():
    open(f"{d}/{name}", "wb").write(b)
PY
put fuzz_headers range 'bytes 0-131071/1073741824'
put fuzz_headers date 'Sat, 28 Nov 2026 15:17:00 GMT'
put fuzz_headers iso '2026-11-28T15:17:00.123Z'
put fuzz_jwt aud 'e30.eyJhdWQiOlsxLDIsMyw0LDUsNiw3LDgsOSwxMF0sImV4cCI6IngifQ.'

# One target per core at once (FUZZ_JOBS, default nproc): the same time per
# target, in a fraction of the wall time. Each writes its verdict to a file,
# printed in order at the end.
jobs=${FUZZ_JOBS:-$(nproc)}
fuzz_one() { # exe
	local exe=$1 name corpus log runs
	name=$(basename "$exe")
	corpus=$work/corpus-$name
	mkdir -p "$corpus" "$work/seed-$name"
	log=$bdir/fuzz-$name.log
	if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-artifact_prefix="$art/$name-" -print_final_stats=1 \
		"$corpus" "$work/seed-$name" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz: $name: ok, ${runs:-?} runs in ${secs} s" >"$work/verdict-$name"
	else
		{
			echo "fuzz: $name: FAILED (see $log and $art)"
			grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 || true
		} >"$work/verdict-$name"
	fi
}
names=()
for exe in "$bdir"/tests/fuzz/fuzz_*; do
	[ -f "$exe" ] && [ -x "$exe" ] || continue
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n || true
	done
	fuzz_one "$exe" &
	names+=("$(basename "$exe")")
done
wait
passed=0
failed=0
for name in "${names[@]}"; do
	if [ -f "$work/verdict-$name" ]; then
		cat "$work/verdict-$name"
	else
		echo "fuzz: $name: FAILED (no verdict)"
	fi
	if grep -q ': ok,' "$work/verdict-$name" 2>/dev/null; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
