#!/bin/bash
# up.sh [DIR] -- start the irsafs testbed: ceph-mon + ceph-osd (memstore) + radosgw
# with STS, and a static OIDC issuer, all on 127.0.0.1, state in DIR
# (default: $IRSAFS_TESTBED_DIR or /tmp/irsafs-testbed).
# Prints the Pod environment (export NAME=value lines) on stdout; everything
# else goes to stderr, so:   eval "$(tests/testbed/up.sh)"
# Env knobs: STS_MIN_DURATION (default 60), RGW_DEBUG (default 1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
MARKER=.irsafs-testbed
RGW_PORT=7480 IDP_PORT=8088 MON_V2=3300 MON_V1=6789
ENDPOINT=http://127.0.0.1:$RGW_PORT
ISSUER=http://127.0.0.1:$IDP_PORT
T0=$(date +%s.%N)

die() { echo "up.sh: error: $*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "up.sh: [$(elapsed)s] $*" >&2; }

case ${1:-} in
    -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (usage: up.sh [DIR])" ;;
esac
[ $# -le 1 ] || die "usage: up.sh [DIR]"
DIR=${1:-${IRSAFS_TESTBED_DIR:-/tmp/irsafs-testbed}}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
while [ "${DIR%/}" != "$DIR" ] && [ "$DIR" != / ]; do DIR=${DIR%/}; done
[[ $DIR =~ ^/[A-Za-z0-9._/+-]+$ ]] && [ "$DIR" != / ] ||
    die "DIR '$DIR' must be an absolute path of letters, digits and ._/+- only (ceph.conf limits)"
CONF=$DIR/ceph.conf

# One up.sh or down.sh per DIR at a time: two at once would tear down each
# other's daemons. The lock sits beside DIR, which a rebuild wipes.
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock -w 600 9 || die "another up.sh or down.sh has held $DIR.lock for 10 minutes"
# The down.sh this script runs (to clear a stale testbed) must not wait for it.
export IRSAFS_TESTBED_LOCKED="$DIR"

# ---- prerequisites ------------------------------------------------------------
missing_cmds=() missing_pkgs=()
need() { # command package
    if ! command -v "$1" >/dev/null 2>&1; then
        missing_cmds+=("$1")
        [[ " ${missing_pkgs[*]} " == *" $2 "* ]] || missing_pkgs+=("$2")
    fi
}
need ceph-mon ceph-mon; need ceph-osd ceph-osd; need monmaptool ceph-base
need radosgw radosgw; need ceph ceph-common; need ceph-authtool ceph-common
need radosgw-admin ceph-common; need openssl openssl; need curl curl
need setsid util-linux; need sha256sum coreutils
[ -x $PY ] || { missing_cmds+=("$PY"); missing_pkgs+=(python3); }
[ ${#missing_cmds[@]} -eq 0 ] ||
    die "missing ${missing_cmds[*]}; install with: apt-get install -y ${missing_pkgs[*]}"

# ---- helpers ------------------------------------------------------------------
pid_ok() { # name: recorded PID alive and started for this DIR
    local f=$DIR/pids/$1.pid pid cmd
    [ -f "$f" ] || return 1
    pid=$(<"$f")
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ -n $cmd && $cmd == *"$DIR/"* ]]
}
http_code() { curl -s -o /dev/null -m "${2:-2}" -w '%{http_code}' "$1" 2>/dev/null || true; }
start() { # name cmd... : start detached in its own session, record its PID
    local name=$1; shift
    setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 9>&- &  # the daemon must not hold the lock
    echo $! >"$DIR/pids/$name.pid"
}
mint() { $PY "$HERE/mint-token" -d "$DIR" -s system:serviceaccount:demo:reader -t 3600 -o "$DIR/token/token"; }
print_env() {
    local arn
    arn=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["roles"]["s3-reader"]["arn"])' \
        "$DIR/state/roles.json")
    {
        printf 'export AWS_ROLE_ARN=%q\n' "$arn"
        printf 'export AWS_WEB_IDENTITY_TOKEN_FILE=%q\n' "$DIR/token/token"
        printf 'export AWS_REGION=us-east-1\n'
        printf 'export AWS_ENDPOINT_URL=%q\n' "$ENDPOINT"
    } >"$DIR/pod.env.tmp"
    mv "$DIR/pod.env.tmp" "$DIR/pod.env"
    cat "$DIR/pod.env"
}
healthy() {
    [ -f "$DIR/$MARKER" ] && [ -f "$DIR/state/ready" ] || return 1
    local n
    for n in mon osd rgw idp; do pid_ok $n || return 1; done
    [ "$(http_code "$ENDPOINT/")" != 000 ] || return 1
    [ "$(http_code "$ISSUER/healthz")" = 200 ] || return 1
}

# ---- fast path: already up -----------------------------------------------------
if healthy; then
    mint
    say "testbed already running in $DIR; token re-minted"
    print_env
    exit 0
fi

# ---- stale / foreign DIR -------------------------------------------------------
if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    [ -f "$DIR/$MARKER" ] ||
        die "$DIR is not empty and has no $MARKER marker; give another DIR (up.sh DIR) or empty it"
    say "testbed in $DIR is stale or partial; stopping it, then rebuilding"
    "$HERE/down.sh" "$DIR"
fi

# ---- ports ---------------------------------------------------------------------
busy=$($PY - "$RGW_PORT" "$IDP_PORT" "$MON_V2" "$MON_V1" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        print(p)
    finally:
        s.close()
EOF
)
if [ -n "$busy" ]; then
    msg="" hint=""
    for p in $busy; do
        who=""
        if command -v ss >/dev/null 2>&1; then
            who=$(ss -Hltnp "sport = :$p" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -1 |
                sed 's/users:(("\([^"]*\)",pid=\([0-9]*\)/\1 pid \2/')
            pid=${who##* }
            if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
                other=$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n 's#^\(/.*\)/ceph\.conf$#\1#p; s#^--dir=\{0,1\}\(/.*\)/idp$#\1#p' | head -1)
                [ -n "$other" ] && hint=" (another testbed: run tests/testbed/down.sh $other)"
            fi
        fi
        msg+="${msg:+, }$p${who:+ ($who)}"
    done
    die "port(s) $msg on 127.0.0.1 already in use by something this testbed did not start; stop it$hint and rerun"
fi

# ---- layout --------------------------------------------------------------------
if [ -f "$DIR/$MARKER" ]; then
    "$HERE/down.sh" "$DIR" --wipe
fi
mkdir -p "$DIR"
echo "irsafs testbed created by tests/testbed/up.sh at $(date -u +%FT%TZ)" >"$DIR/$MARKER"
mkdir -p "$DIR"/{pids,log,run,crash,state,token,seed,idp,mon,osd/ceph-0,rgw}
trap 'echo "up.sh: error: step failed at line $LINENO: $BASH_COMMAND (logs: $DIR/log/)" >&2' ERR

say "building testbed in $DIR"
read -r FSID OSD_UUID STS_KEY <<<"$($PY -c '
import secrets, string, uuid
a = string.ascii_letters + string.digits
print(uuid.uuid4(), uuid.uuid4(), "".join(secrets.choice(a) for _ in range(16)))')"

cat >"$CONF" <<EOF
# generated by tests/testbed/up.sh -- irsafs testbed, loopback only
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
log to stderr = false
ms bind ipv4 = true
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = $DIR/mon/\$cluster-\$id
admin socket = $DIR/run/\$name.asok
paxos propose interval = 0.1

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
public addr = 127.0.0.1
cluster addr = 127.0.0.1
admin socket = $DIR/run/\$name.asok

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $DIR/rgw
log file = $DIR/log/rgw.log
admin socket = $DIR/run/rgw.asok
debug rgw = ${RGW_DEBUG:-1}
rgw s3 auth use sts = true
rgw sts key = $STS_KEY
rgw sts min session duration = ${STS_MIN_DURATION:-60}
EOF

# IdP key + self-signed cert (in the background while the cluster comes up)
(
    cd "$DIR/idp"
    openssl genrsa -out key.pem 2048 2>/dev/null
    openssl req -x509 -new -key key.pem -subj /CN=irsafs-testbed-idp -days 3650 -out cert.pem 2>/dev/null
    openssl x509 -in cert.pem -outform DER | sha256sum | cut -c1-16 >kid
    openssl x509 -in cert.pem -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' | tr A-F a-f >thumbprint
    echo "$ISSUER" >issuer
) &
idp_keys=$!

# ---- mon -----------------------------------------------------------------------
K=$DIR/keyring
ceph-authtool "$K" --create-keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool "$K" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$K" >>"$DIR/log/mkfs.out" 2>&1
start mon ceph-mon -c "$CONF" -i a -f
say "mon started"

# ---- osd (memstore) -------------------------------------------------------------
osd_id=$(timeout 30 ceph -c "$CONF" --connect-timeout 25 osd new "$OSD_UUID" 2>>"$DIR/log/mkfs.out") ||
    die "mon did not answer within 25 s (see $DIR/log/mon.a.log)"
[ "$osd_id" = 0 ] || die "unexpected osd id '$osd_id' from 'ceph osd new'"
timeout 60 ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$DIR/log/mkfs.out" 2>&1 ||
    die "ceph-osd --mkfs failed (see $DIR/log/mkfs.out)"
start osd ceph-osd -c "$CONF" -i 0 -f
say "osd started"

# ---- radosgw + IdP ---------------------------------------------------------------
start rgw radosgw -c "$CONF" -n client.rgw.a -f
wait $idp_keys || die "IdP key generation with openssl failed"
start idp $PY "$HERE/idp.py" --dir "$DIR/idp" --port $IDP_PORT --log "$DIR/log/idp.log"

wait_for() { # what timeout-seconds pidname... -- cmd : poll until cmd succeeds
    local what=$1 limit=$2 n; shift 2
    local names=()
    while [ "$1" != -- ]; do names+=("$1"); shift; done
    shift
    local deadline=$(($(date +%s) + limit))
    until "$@"; do
        for n in "${names[@]}"; do
            pid_ok "$n" || die "$n exited while waiting for $what (see $DIR/log/)"
        done
        [ "$(date +%s)" -lt "$deadline" ] || die "$what not ready after $limit s (see $DIR/log/)"
        sleep 0.2
    done
}
idp_up() { [ "$(http_code "$ISSUER/healthz" 1)" = 200 ]; }
rgw_up() { [ "$(http_code "$ENDPOINT/" 1)" != 000 ]; }
wait_for "IdP on 127.0.0.1:$IDP_PORT" 10 idp -- idp_up
wait_for "radosgw on 127.0.0.1:$RGW_PORT" 90 mon osd rgw -- rgw_up
say "radosgw answers on $ENDPOINT"

# ---- users -----------------------------------------------------------------------
mkuser() { # uid caps
    local ak sk
    read -r ak sk <<<"$($PY -c '
import secrets, string
a = string.ascii_uppercase + string.digits
b = string.ascii_letters + string.digits
print("".join(secrets.choice(a) for _ in range(20)), "".join(secrets.choice(b) for _ in range(40)))')"
    radosgw-admin -c "$CONF" user create --uid "$1" --display-name "$1" \
        --access-key "$ak" --secret-key "$sk" >>"$DIR/log/radosgw-admin.out" 2>&1 || return 1
    if [ -n "$2" ]; then
        radosgw-admin -c "$CONF" caps add --uid "$1" --caps "$2" >>"$DIR/log/radosgw-admin.out" 2>&1 || return 1
    fi
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_ENDPOINT_URL=%s\nAWS_REGION=us-east-1\n' \
        "$ak" "$sk" "$ENDPOINT" >"$DIR/state/$1.env"
}
mkuser owner "" & u1=$!
mkuser iamadmin 'roles=*;oidc-provider=*' & u2=$!
wait $u1 && wait $u2 || die "radosgw-admin user create failed (see $DIR/log/radosgw-admin.out)"
say "users owner and iamadmin created"

# ---- data, IAM, token --------------------------------------------------------------
$PY "$HERE/seed.py" "$DIR" || die "seeding failed (see above and $DIR/log/rgw.log)"
say "buckets seeded, OIDC provider and roles created"
mint
touch "$DIR/state/ready"
say "ready in $(elapsed) s; token: $DIR/token/token; stop with: tests/testbed/down.sh $DIR"
print_env
