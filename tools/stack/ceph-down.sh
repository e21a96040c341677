#!/usr/bin/env bash
# Stop the Ceph daemons tools/stack/ceph-up.sh started (only the pids in its
# pid files, after checking their cmdline). Data stays, so ceph-up.sh
# restarts the same cluster; with --wipe, $STACK_DIR/ceph is removed too.
#
# The OSD goes first, while the mon can still hear it say goodbye (else it
# waits osd_mon_shutdown_timeout, 5 s); then mgr and mon together.
set -uo pipefail
source "$(dirname "$0")/ceph-common.sh"

WIPE=
[ "${1:-}" = --wipe ] && WIPE=1

# stop_daemons NAME...: TERM them all, wait up to 10 s each, then KILL.
stop_daemons() {
    local d pid pids=()
    for d in "$@"; do
        ceph_daemon_alive "$d" || continue
        pid=$(cat "$CEPH_DIR/run/$d.pid")
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        if ! wait_for 10 bash -c "! kill -0 $pid"; then
            log "ceph daemon $pid ignored TERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    [ ${#pids[@]} -eq 0 ] || log "stopped ceph $*"
}

[ -d "$CEPH_DIR" ] || exit 0
stop_daemons osd.0
stop_daemons mgr.x mon.a
rm -f "$CEPH_DIR"/run/*.pid
if [ -n "$WIPE" ]; then
    rm -rf "$CEPH_DIR"
    log "removed $CEPH_DIR"
fi
