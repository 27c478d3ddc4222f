#!/bin/bash
# down.sh [DIR] [--wipe] -- stop the irsafs testbed started by up.sh in DIR.
# Sends TERM (then KILL after ${DOWN_GRACE:-5} s; 1 s for radosgw if mon/osd are gone) only to the PIDs recorded in
# DIR/pids/*.pid whose /proc/PID/cmdline still contains "DIR/".
# --wipe also removes DIR (only if it carries up.sh's marker file, or is empty).
set -u

MARKER=.irsafs-testbed
say() { echo "down.sh: $*" >&2; }
die() { echo "down.sh: error: $*" >&2; exit 1; }

DIR="" WIPE=0
for arg in "$@"; do
    case $arg in
        --wipe) WIPE=1 ;;
        -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) die "unknown option '$arg' (usage: down.sh [DIR] [--wipe])" ;;
        *) [ -z "$DIR" ] || die "more than one DIR given"; DIR=$arg ;;
    esac
done
DIR=${DIR:-${IRSAFS_TESTBED_DIR:-/tmp/irsafs-testbed}}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
while [ "${DIR%/}" != "$DIR" ] && [ "$DIR" != / ]; do DIR=${DIR%/}; done
[ "$DIR" != / ] || die "refusing DIR=/"
# The same lock as up.sh: never tear down a testbed while it is being built
# (unless up.sh itself, which holds it, runs us).
if [ "${IRSAFS_TESTBED_LOCKED:-}" != "$DIR" ]; then
	exec 9>"$DIR.lock"
	flock -w 600 9 || die "another up.sh or down.sh has held $DIR.lock for 10 minutes"
fi

if [ ! -d "$DIR" ]; then
    say "nothing at $DIR"
    exit 0
fi

# ours PID: alive (not a zombie) and started for this DIR
ours() {
    local cmd
    [ -r "/proc/$1/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [ -n "$cmd" ] && [[ $cmd == *"$DIR/"* ]]
}

# stop_wave NAME...: TERM the named recorded processes, KILL what is left after the grace time
stop_wave() {
    local name f pid i still pids=() left=()
    for name in "$@"; do
        f=$DIR/pids/$name.pid
        [ -f "$f" ] || continue
        pid=$(<"$f")
        if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
            kill -TERM "$pid" 2>/dev/null && pids+=("$pid") && say "stopping $name (pid $pid)"
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for ((i = 0; i < grace * 20; i++)); do
        left=()
        for pid in "${pids[@]}"; do ours "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && return 0
        sleep 0.05
    done
    say "sending KILL to ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null
    for ((i = 0; i < 40; i++)); do
        still=0
        for pid in "${left[@]}"; do ours "$pid" && still=1; done
        [ $still -eq 0 ] && return 0
        sleep 0.05
    done
    say "warning: still running after KILL: ${left[*]}"
}

alive() { [ -f "$DIR/pids/$1.pid" ] && ours "$(<"$DIR/pids/$1.pid")"; }
grace=${DOWN_GRACE:-5}
# radosgw cannot shut down cleanly without its cluster: do not wait long for it then
if ! alive mon || ! alive osd; then grace=1; fi

# clients of the cluster first, then the osd, then the mon
others=()
for f in "$DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .pid)
    case $name in mon|osd) ;; *) others+=("$name") ;; esac
done
stop_wave "${others[@]}"
grace=${DOWN_GRACE:-5}
stop_wave osd
stop_wave mon
rm -f "$DIR"/pids/*.pid "$DIR/state/ready"

if [ $WIPE -eq 1 ]; then
    if [ -f "$DIR/$MARKER" ] || [ -z "$(ls -A "$DIR")" ]; then
        rm -rf "$DIR" || die "could not remove $DIR"
        say "removed $DIR"
    else
        die "$DIR has no $MARKER marker; not removing it"
    fi
fi
exit 0
