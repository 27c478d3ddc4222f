#!/usr/bin/env bash
# The main job, end to end on this machine: install what is needed, build,
# start the local S3 + STS testbed (radosgw and a tiny OIDC issuer), mount the
# demo bucket with nothing but the environment an EKS Pod with IRSA gets, and
# show what a user sees. The mounts stay up; the last lines say how to stop.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

echo "== starting the testbed (radosgw + OIDC issuer on 127.0.0.1)"
pod_env=$(tests/testbed/up.sh)
echo "$pod_env"

mnt=${IRSAFS_DEMO_MNT:-/tmp/irsafs-demo}
other=${mnt}-other
for d in "$mnt" "$other"; do
	if mountpoint -q "$d"; then fusermount3 -u -z "$d"; fi
	mkdir -p "$d"
done

# Only what a Pod gets: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_REGION
# and, for this local endpoint, AWS_ENDPOINT_URL. No keys.
pod() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c "$pod_env"$'\n''exec "$@"' pod "$@"; }

show() { printf '\n$ %s\n' "$*"; "$@" 2>&1 || true; }

echo
echo "== mounting s3://demo-bucket on $mnt"
pod build/app/irsafs demo-bucket "$mnt"
echo "== mounting s3://other-bucket (which the role may not touch) on $other"
pod build/app/irsafs other-bucket "$other"

cd "$mnt"
show ls -l "$mnt"
show cat "$mnt/hello.txt"
show ls -l "$mnt/odd" "$mnt/dir"
show find "$mnt/dir" "$mnt/unicode"
show sha256sum "$mnt/big.bin"
show cat "$mnt/no-such-file.txt"
show ls "$other"
show cat "$other/secret.txt"
show touch "$mnt/hello.txt"
cd / >/dev/null

cat <<EOT

The mounts stay up. To stop everything:
  fusermount3 -u $mnt; fusermount3 -u $other
  tests/testbed/down.sh            # add --wipe to delete its data too
EOT
