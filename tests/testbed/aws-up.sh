#!/bin/bash
# aws-up.sh [DIR] -- the testbed's AWS mode: real S3's and STS's host names
# over HTTPS, all on loopback. On top of the testbed up.sh starts (or reuses)
# in DIR, it adds:
#   - a test CA, made at run time with openssl, and one server certificate for
#     s3.REGION.amazonaws.com, *.s3.REGION.amazonaws.com and
#     sts.REGION.amazonaws.com;
#   - a second radosgw on the same cluster (127.0.0.1:7481), started with
#     --rgw-dns-name s3.REGION.amazonaws.com, so BUCKET.s3.REGION.amazonaws.com
#     addresses BUCKET (virtual-hosted style);
#   - stunnel (Debian's stunnel4) terminating TLS on S3_IP:443 for that
#     radosgw, and on STS_IP:443 for the first one's STS (a radosgw with a DNS
#     name takes any other Host, sts.REGION.amazonaws.com too, for a bucket;
#     both share the STS key, so either takes the other's session tokens);
#   - DIR/aws/hosts and DIR/aws/nsswitch.conf, which aws-run bind-mounts over
#     /etc/hosts and /etc/nsswitch.conf in a private mount namespace: the AWS
#     names resolve to S3_IP and STS_IP there, and no name is asked of DNS.
# Prints the Pod environment, without any endpoint variable but with
# AWS_CA_BUNDLE (export NAME=value lines) on stdout; also in DIR/aws/pod.env.
# Run commands in it with: tests/testbed/aws-run DIR COMMAND...
# Stop it with down.sh, like the rest of the testbed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REGION=us-east-1
S3_IP=127.0.44.1
STS_IP=127.0.44.2
RGW_PORT=7481
BASE_PORT=7480
S3_HOST=s3.$REGION.amazonaws.com
STS_HOST=sts.$REGION.amazonaws.com
T0=$(date +%s.%N)

die() { echo "aws-up.sh: error: $*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "aws-up.sh: [$(elapsed)s] $*" >&2; }

case ${1:-} in
    -h|--help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (usage: aws-up.sh [DIR])" ;;
esac
command -v stunnel4 >/dev/null 2>&1 || die "stunnel4 is missing; install with: apt-get install -y stunnel4"
command -v unshare >/dev/null 2>&1 || die "unshare is missing; install with: apt-get install -y util-linux"
# The base testbed first (it takes DIR.lock itself, and normalizes DIR).
base_env=$("$HERE/up.sh" "$@")
DIR=$(sed -n "s/^export AWS_WEB_IDENTITY_TOKEN_FILE=\(.*\)\/token\/token$/\1/p" <<<"$base_env")
[ -n "$DIR" ] && [ -f "$DIR/ceph.conf" ] || die "up.sh gave no testbed directory"
A=$DIR/aws
exec 9>"$DIR.lock"
flock -w 600 9 || die "another up.sh or down.sh has held $DIR.lock for 10 minutes"

pid_ok() { # name: recorded PID alive and started for this DIR
    local f=$DIR/pids/$1.pid pid cmd
    [ -f "$f" ] || return 1
    pid=$(<"$f")
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ -n $cmd && $cmd == *"$DIR/"* ]]
}
https_up() { # any HTTP answer from the second radosgw, through stunnel, with the test CA
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' --cacert "$A/ca.pem" \
        --resolve "$S3_HOST:443:$S3_IP" "https://$S3_HOST/" 2>/dev/null || true)" != 000 ] &&
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' --cacert "$A/ca.pem" \
        --resolve "$STS_HOST:443:$STS_IP" "https://$STS_HOST/" 2>/dev/null || true)" != 000 ]
}
print_env() {
    {
        grep -E '^export (AWS_ROLE_ARN|AWS_WEB_IDENTITY_TOKEN_FILE)=' <<<"$base_env"
        printf 'export AWS_REGION=%s\n' "$REGION"
        printf 'export AWS_CA_BUNDLE=%q\n' "$A/ca.pem"
    } >"$A/pod.env.tmp"
    mv "$A/pod.env.tmp" "$A/pod.env"
    cat "$A/pod.env"
}

if [ -f "$A/ready" ] && pid_ok rgw-aws && pid_ok stunnel && https_up; then
    say "AWS mode already running in $A"
    print_env
    exit 0
fi
# A partial AWS mode: stop what is left of it (and wait, to free its ports).
for name in stunnel rgw-aws; do
    if pid_ok $name; then
        kill -TERM "$(<"$DIR/pids/$name.pid")" 2>/dev/null || true
        for _ in $(seq 50); do pid_ok $name || break; sleep 0.1; done
        pid_ok $name && kill -KILL "$(<"$DIR/pids/$name.pid")" 2>/dev/null
    fi
    rm -f "$DIR/pids/$name.pid"
done
rm -rf "$A"
mkdir -p "$A" "$DIR/rgw-aws"
trap 'echo "aws-up.sh: error: step failed at line $LINENO: $BASH_COMMAND (logs: $DIR/log/)" >&2' ERR
busy=$(/usr/bin/python3 - "$S3_IP" 443 "$STS_IP" 443 127.0.0.1 "$RGW_PORT" <<'EOF'
import socket, sys
a = sys.argv[1:]
for host, port in zip(a[::2], a[1::2]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, int(port)))
    except OSError:
        print(f"{host}:{port}")
    finally:
        s.close()
EOF
)
[ -z "$busy" ] || die "$busy already in use by something this testbed did not start; stop it and rerun"

# ---- the test CA and the server certificate (EC keys: fast to make) ---------
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$A/ca.key" -out "$A/ca.pem" -days 30 -subj "/CN=irsafs testbed CA" \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign \
    2>>"$DIR/log/aws-openssl.out"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$A/server.key" -out "$A/server.csr" -subj "/CN=$S3_HOST" 2>>"$DIR/log/aws-openssl.out"
printf 'subjectAltName=DNS:%s,DNS:*.%s,DNS:%s\nextendedKeyUsage=serverAuth\n' \
    "$S3_HOST" "$S3_HOST" "$STS_HOST" >"$A/server.ext"
openssl x509 -req -in "$A/server.csr" -CA "$A/ca.pem" -CAkey "$A/ca.key" -CAcreateserial \
    -days 30 -extfile "$A/server.ext" -out "$A/server.pem" 2>>"$DIR/log/aws-openssl.out"
chmod 600 "$A/ca.key" "$A/server.key"
say "test CA and certificate for $S3_HOST, *.$S3_HOST, $STS_HOST made"

# ---- the second radosgw: same cluster, same STS key, AWS's host name --------
CONF=$DIR/ceph.conf
sts_key=$(sed -n 's/^rgw sts key = //p' "$CONF")
[ -n "$sts_key" ] || die "no 'rgw sts key' in $CONF"
timeout 30 ceph -c "$CONF" --connect-timeout 25 auth get-or-create client.rgw.aws \
    mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$A/keyring" 2>>"$DIR/log/aws-ceph.out" ||
    die "ceph auth get-or-create client.rgw.aws failed (see $DIR/log/aws-ceph.out)"
setsid radosgw -c "$CONF" -n client.rgw.aws --keyring "$A/keyring" -f \
    --rgw-frontends "beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1" \
    --rgw-dns-name "$S3_HOST" --rgw-data "$DIR/rgw-aws" --log-file "$DIR/log/rgw-aws.log" \
    --admin-socket "$DIR/run/rgw-aws.asok" --debug-rgw "${RGW_DEBUG:-1}" \
    --rgw-s3-auth-use-sts true --rgw-sts-key "$sts_key" \
    --rgw-sts-min-session-duration "${STS_MIN_DURATION:-60}" \
    </dev/null >>"$DIR/log/rgw-aws.out" 2>&1 9>&- &
echo $! >"$DIR/pids/rgw-aws.pid"

# ---- stunnel: TLS on 443 for the AWS names, one certificate for all ----------
cat >"$A/stunnel.conf" <<EOF
; generated by tests/testbed/aws-up.sh: TLS for the AWS names, loopback only
foreground = yes
pid =
output = $DIR/log/stunnel.log
debug = notice
cert = $A/server.pem
key = $A/server.key
[s3]
accept = $S3_IP:443
connect = 127.0.0.1:$RGW_PORT
[sts]
accept = $STS_IP:443
connect = 127.0.0.1:$BASE_PORT
EOF
setsid stunnel4 "$A/stunnel.conf" </dev/null >>"$DIR/log/stunnel.out" 2>&1 9>&- &
echo $! >"$DIR/pids/stunnel.pid"

# ---- name resolution inside aws-run: files only, the AWS names on loopback ---
buckets=$(/usr/bin/python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["buckets"]))' \
    "$DIR/seed/manifest.json")
{
    printf '# generated by tests/testbed/aws-up.sh (bind-mounted over /etc/hosts by aws-run)\n'
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    printf '%s\t%s' "$S3_IP" "$S3_HOST"
    for b in $buckets no-such-bucket; do printf ' %s.%s' "$b" "$S3_HOST"; done
    printf '\n%s\t%s\n' "$STS_IP" "$STS_HOST"
} >"$A/hosts"
{
    printf '# generated by tests/testbed/aws-up.sh: host names from %s only, never DNS\n' "$A/hosts"
    grep -v '^hosts:' /etc/nsswitch.conf 2>/dev/null || true
    printf 'hosts: files\n'
} >"$A/nsswitch.conf"

deadline=$(($(date +%s) + 60))
until https_up; do
    for n in rgw-aws stunnel; do pid_ok $n || die "$n exited while starting (see $DIR/log/$n*.log, *.out)"; done
    [ "$(date +%s)" -lt "$deadline" ] || die "https://$S3_HOST/ did not answer within 60 s (see $DIR/log/)"
    sleep 0.2
done
touch "$A/ready"
say "ready in $(elapsed) s: https://$S3_HOST on $S3_IP, https://$STS_HOST on $STS_IP; run commands with: tests/testbed/aws-run $DIR COMMAND..."
print_env
