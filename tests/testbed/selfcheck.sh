#!/bin/bash
# selfcheck.sh [DIR] -- end-to-end check of a running irsafs testbed (started by up.sh).
# Uses only STS credentials obtained with AssumeRoleWithWebIdentity, except where noted.
# Prints one line per check and "selfcheck: N passed, M failed"; exits 0 only if M = 0.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case ${1:-} in -h|--help) sed -n '2,4s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
DIR=${1:-${IRSAFS_TESTBED_DIR:-/tmp/irsafs-testbed}}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
if [ ! -f "$DIR/state/ready" ]; then
    echo "selfcheck: error: no ready testbed in $DIR (run tests/testbed/up.sh $DIR)" >&2
    exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pass=0 fail=0
ok() { echo "selfcheck: ok   $*"; pass=$((pass + 1)); }
bad() { echo "selfcheck: FAIL $*"; fail=$((fail + 1)); }
check() { # description command... : passes if the command exits 0
    local what=$1; shift
    if "$@" >"$WORK/out" 2>&1; then ok "$what"; else bad "$what: $(head -c 300 "$WORK/out")"; fi
}
S3=(/usr/bin/python3 "$HERE/s3admin.py")
sts_cli() { "${S3[@]}" sts "$READER" "$DIR/token/token" >"$WORK/reader.env"; }
READER=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["roles"]["s3-reader"]["arn"])' "$DIR/state/roles.json")

# ---- CLI level: the steps a person would type ------------------------------------
# shellcheck disable=SC2016  # the single-quoted scripts expand in the inner bash
check "pod.env has the four IRSA variables" \
    bash -c '. "$1" && [ -n "$AWS_ROLE_ARN" ] && [ -s "$AWS_WEB_IDENTITY_TOKEN_FILE" ] &&
             [ "$AWS_REGION" = us-east-1 ] && [ "$AWS_ENDPOINT_URL" = http://127.0.0.1:7480 ] &&
             ! grep -q ACCESS_KEY "$1"' _ "$DIR/pod.env"
check "token file has no trailing newline" \
    bash -c '[ "$(tail -c1 "$1" | od -An -c | tr -d " ")" != "\\n" ]' _ "$DIR/token/token"
check "CLI: sts AssumeRoleWithWebIdentity (s3-reader)" sts_cli
check "CLI: list demo-bucket with STS creds" "${S3[@]}" --env "$WORK/reader.env" list demo-bucket
check "CLI: list other-bucket is 403" "${S3[@]}" --env "$WORK/reader.env" -q --expect 403 list other-bucket

# ---- the matrix, through the importable module -----------------------------------
/usr/bin/python3 - "$DIR" "$HERE" >"$WORK/py.out" 2>&1 <<'EOF'
import hashlib, json, os, subprocess, sys, urllib.request
d, here = sys.argv[1], sys.argv[2]
sys.dont_write_bytecode = True
sys.path.insert(0, here)
import s3admin

passed = failed = 0
def report(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("selfcheck: ok   " + what)
    else:
        failed += 1
        print("selfcheck: FAIL %s%s" % (what, ": " + detail if detail else ""))

def expect(resp, code, what):
    report(resp.status == code, what, "got HTTP %d %s" % (resp.status, resp.error_code))

roles = json.load(open(os.path.join(d, "state", "roles.json")))["roles"]
manifest = json.load(open(os.path.join(d, "seed", "manifest.json")))["buckets"]
with open(os.path.join(d, "token", "token")) as f:
    reader_token = f.read()

def mint(*args):
    return subprocess.run([sys.executable, os.path.join(here, "mint-token"), "-d", d] + list(args),
                          check=True, capture_output=True, text=True).stdout

def sts(role, token, **kw):
    return s3admin.assume_role_with_web_identity(roles[role]["arn"], token, check=False, **kw)

# IdP
try:
    disc = json.load(urllib.request.urlopen("http://127.0.0.1:8088/.well-known/openid-configuration", timeout=5))
    jwks = json.load(urllib.request.urlopen(disc["jwks_uri"], timeout=5))
    k = jwks["keys"][0]
    report(disc["issuer"] == "http://127.0.0.1:8088" and all(f in k for f in
           ("kty", "alg", "use", "kid", "n", "e", "x5c")), "IdP discovery + JWKS with x5c")
except Exception as e:
    report(False, "IdP discovery + JWKS with x5c", str(e))

# s3-reader
resp, creds = sts("s3-reader", reader_token)
report(resp.status == 200 and creds and creds["session_token"], "STS s3-reader -> credentials",
       "HTTP %d" % resp.status)
if not creds:
    print("PY %d %d" % (passed, failed))
    sys.exit(0)
r = s3admin.Client(**creds)
want = manifest["demo-bucket"]
try:
    got = {k["Key"]: int(k["Size"]) for k in r.list_all("demo-bucket", max_keys=10)[0]}
    report(got == {k: v["size"] for k, v in want.items()},
           "reader: ListObjectsV2 (10 per page) == manifest (%d keys)" % len(want),
           "missing %s extra %s" % (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
except s3admin.S3Error as e:
    report(False, "reader: ListObjectsV2 == manifest", str(e))
_, page = r.list_objects_v2("demo-bucket", prefix="many/", max_keys=10)
report(page["truncated"] and page["next"] and len(page["keys"]) == 10, "reader: many/ splits over pages")
bad = []
for key, meta in want.items():
    g = r.get_object("demo-bucket", key, check=False)
    if g.status != 200 or hashlib.sha256(g.body).hexdigest() != meta["sha256"]:
        bad.append("%s (HTTP %d)" % (key, g.status))
report(not bad, "reader: GET every object, sha256 == manifest", ", ".join(bad[:5]))
g = r.get_object("demo-bucket", "big.bin", "bytes=1048576-1052671", check=False)
report(g.status == 206 and len(g.body) == 4096 and
       g.headers.get("content-range") == "bytes 1048576-1052671/12582912", "reader: ranged GET -> 206",
       "HTTP %d %s" % (g.status, g.headers.get("content-range")))
expect(r.head_object("demo-bucket", "no/such/key", check=False), 404, "reader: HEAD missing key -> 404")
expect(r.list_objects_v2("other-bucket", check=False)[0], 403, "reader: list other-bucket -> 403")
expect(r.get_object("other-bucket", "secret.txt", check=False), 403, "reader: GET other-bucket/secret.txt -> 403")
expect(r.put_object("demo-bucket", "x.txt", b"x", check=False), 403, "reader: PUT -> 403")
expect(r.delete_object("demo-bucket", "hello.txt", check=False), 403, "reader: DELETE -> 403")

# token / trust failures (all AccessDenied on radosgw)
for what, token in [
        ("wrong sub", mint("-s", "system:serviceaccount:demo:intruder")),
        ("expired token", mint("-t", "-60")),
        ("wrong aud", mint("-a", "not-sts")),
        ("trailing newline", reader_token + "\n")]:
    resp, c = sts("s3-reader", token)
    report(resp.status == 403 and c is None, "STS s3-reader, %s -> 403" % what, "HTTP %d" % resp.status)
import tempfile
with tempfile.TemporaryDirectory() as tmp:
    other_key = os.path.join(tmp, "other.pem")
    subprocess.run(["openssl", "genrsa", "-out", other_key, "2048"], check=True, capture_output=True)
    for what, token in [("signed by another key", mint("-k", other_key)),
                        ("unknown issuer", mint("-i", "http://127.0.0.1:9"))]:
        resp, c = sts("s3-reader", token)
        report(resp.status == 403 and c is None, "STS s3-reader, %s -> 403" % what, "HTTP %d" % resp.status)
resp, c = sts("s3-reader", mint("-a", "sts.amazonaws.com"))
report(resp.status == 200, "STS s3-reader, aud as plain string -> 200", "HTTP %d" % resp.status)
resp, c = sts("s3-reader", reader_token, duration=60)
report(resp.status == 200, "STS s3-reader, DurationSeconds=60 -> 200", "HTTP %d" % resp.status)

# extra roles
resp, c = sts("s3-team-a", mint("-s", roles["s3-team-a"]["sub"]))
report(resp.status == 200, "STS s3-team-a -> credentials", "HTTP %d" % resp.status)
if c:
    t = s3admin.Client(**c)
    resp, page = t.list_objects_v2("demo-bucket", prefix="team-a/", check=False)
    report(resp.status == 200 and sorted(k["Key"] for k in page["keys"]) == ["team-a/sub/y.txt", "team-a/x.txt"],
           "team-a: list prefix team-a/ -> 200", "HTTP %d" % resp.status)
    expect(t.list_objects_v2("demo-bucket", check=False)[0], 403, "team-a: list root -> 403")
    expect(t.list_objects_v2("demo-bucket", prefix="team-b/", check=False)[0], 403, "team-a: list team-b/ -> 403")
    expect(t.get_object("demo-bucket", "team-a/x.txt", check=False), 200, "team-a: GET team-a/x.txt -> 200")
    expect(t.get_object("demo-bucket", "team-b/x.txt", check=False), 403, "team-a: GET team-b/x.txt -> 403")
resp, c = sts("s3-team-a", reader_token)
report(resp.status == 403, "STS s3-team-a with the reader's token -> 403", "HTTP %d" % resp.status)
resp, c = sts("s3-getonly", mint("-s", roles["s3-getonly"]["sub"]))
if c:
    t = s3admin.Client(**c)
    expect(t.get_object("demo-bucket", "hello.txt", check=False), 200, "getonly: GET -> 200")
    expect(t.list_objects_v2("demo-bucket", check=False)[0], 403, "getonly: list -> 403")
    expect(t.head_object("demo-bucket", "no/such/key", check=False), 403, "getonly: HEAD missing key -> 403 (no ListBucket)")
else:
    report(False, "STS s3-getonly", "HTTP %d" % resp.status)
resp, c = sts("s3-listonly", mint("-s", roles["s3-listonly"]["sub"]))
if c:
    t = s3admin.Client(**c)
    expect(t.list_objects_v2("demo-bucket", check=False)[0], 200, "listonly: list -> 200")
    expect(t.get_object("demo-bucket", "hello.txt", check=False), 403, "listonly: GET -> 403")
else:
    report(False, "STS s3-listonly", "HTTP %d" % resp.status)

print("PY %d %d" % (passed, failed))
sys.exit(0)
EOF
py_rc=$?
grep -v '^PY ' "$WORK/py.out"
counts=$(sed -n 's/^PY //p' "$WORK/py.out")
if [ $py_rc -ne 0 ] || [ -z "$counts" ]; then
    bad "python checks crashed (rc $py_rc)"
else
    read -r p f <<<"$counts"
    pass=$((pass + p)) fail=$((fail + f))
fi
echo "selfcheck: $pass passed, $fail failed"
[ $fail -eq 0 ]
