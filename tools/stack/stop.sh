#!/usr/bin/env bash
# Stop what tools/stack/start.sh started, by the PIDs it recorded in
# .stack/pids/ (never by process name). The machine's own PostgreSQL and
# RabbitMQ, and a libvirtd that someone else started, are left running.
# Data under .stack/ (Glance images and DB, guest files, the Ceph cluster
# and the Cinder database) is kept; start.sh restarts on top of it.
set -euo pipefail
source "$(dirname "$0")/common.sh"

# stop_pid NAME: TERM the recorded process, KILL it after 15 s.
stop_pid() {
    local name=$1 file=$PID_DIR/$1.pid pid
    if ! pid_alive "$file"; then
        rm -f "$file"
        return 0
    fi
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 bash -c "! kill -0 $pid"; then
        log "$name ($pid) ignored TERM; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
    log "stopped $name ($pid)"
}

# The Keystone-mode cinder-api and Glance, and Keystone, first: the
# front ends read Cinder's and Glance's config and data.
"$STACK_TOOLS/keystone-down.sh" || true
# Cinder before Ceph (its volume service holds RADOS connections).
"$STACK_TOOLS/cinder-down.sh" || true
"$STACK_TOOLS/ceph-down.sh" || true
[ -d "$PID_DIR" ] || exit 0
stop_pid glance-uwsgi
rm -f "$PID_DIR/glance-uwsgi.confhash"
stop_pid libvirtd
stop_pid virtlogd
rm -f "$STACK_DIR/env"
