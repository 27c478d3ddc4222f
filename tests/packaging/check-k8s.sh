#!/bin/sh
# Validate packaging/kubernetes with a real validator: kubernetes-models (the
# Kubernetes OpenAPI schemas) pinned by packaging/kubernetes/validate/
# package-lock.json, installed with `npm ci` into WORKDIR (a build directory,
# never the source tree), then validate.mjs on three renderings of the
# templates, validate-csi.mjs for the CSI driver's manifests in
# packaging/kubernetes/csi (with unknown-field checks), and negative.mjs (each
# mistake either validator must catch).
#   usage: check-k8s.sh SRC IRSAFS WORKDIR IRSAFS_CSI
set -eu
src=$1
bin=$(readlink -f "$2")
work=$3
csi=$(readlink -f "$4")
skip() {
	echo "SKIP: $*"
	exit 77
}
command -v node >/dev/null 2>&1 || skip "node is not installed (tests/deps.sh installs nodejs and npm)"
command -v npm >/dev/null 2>&1 || skip "npm is not installed (tests/deps.sh installs it)"
vdir=$src/packaging/kubernetes/validate
mkdir -p "$work"
if ! cmp -s "$vdir/package-lock.json" "$work/package-lock.json" || [ ! -d "$work/node_modules" ]; then
	cp "$vdir/package.json" "$vdir/package-lock.json" "$work/"
	if ! (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
		tail -5 "$work/npm.log"
		rm -f "$work/package-lock.json"
		skip "npm ci failed (is the npm registry reachable?); see $work/npm.log"
	fi
fi
cp "$vdir/validate.mjs" "$vdir/negative.mjs" "$vdir/validate-csi.mjs" "$work/"
cd "$work"
manifests=$src/packaging/kubernetes
# The shipped examples, then the two renderings a template must also survive:
# a prefix typed with its trailing slash, and the whole bucket (no prefix).
status=0
for set in "" "PREFIX=models/ KEY_PREFIX=models/" "PREFIX= KEY_PREFIX="; do
	echo "== validate.mjs ${set:-(placeholders.env)}"
	# shellcheck disable=SC2086 # one word per NAME=VALUE
	node validate.mjs "$manifests" "$bin" "$src" $set || status=1
done
# Each mistake the validator exists for, made on purpose, must be caught.
echo "== negative.mjs"
node negative.mjs "$manifests" "$bin" "$src" "$csi" || status=1
for set in "" "PREFIX=models/" "PREFIX="; do
	echo "== validate-csi.mjs ${set:-(placeholders.env)}"
	# shellcheck disable=SC2086 # one word per NAME=VALUE
	node validate-csi.mjs "$manifests/csi" "$bin" "$csi" $set || status=1
done
exit $status
