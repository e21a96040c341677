#!/usr/bin/env bash
# Stop the Cinder services tools/stack/cinder-up.sh started, by the pids it
# recorded (checked by cmdline first). The database and the volumes in Ceph
# are kept. Their children (the API worker, the per-backend volume process)
# exit with them; the privsep daemon exits when its socket closes.
set -uo pipefail
source "$(dirname "$0")/cinder-common.sh"

pids=()
for svc in $CINDER_SERVICES; do
    f=$PID_DIR/cinder-$svc.pid
    if cinder_alive "$svc"; then
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null && pids+=("$svc:$pid")
    else
        rm -f "$f"
    fi
done
for entry in "${pids[@]}"; do
    svc=${entry%%:*}
    pid=${entry#*:}
    if ! wait_for 20 bash -c "! kill -0 $pid"; then
        log "cinder-$svc ($pid) ignored TERM; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_DIR/cinder-$svc.pid"
    log "stopped cinder-$svc ($pid)"
done
rm -f "$PID_DIR/cinder.confhash"
