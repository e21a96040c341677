#!/usr/bin/env bash
# Stop the Keystone-mode cinder-api and Glance and Keystone itself, by the
# pids keystone-*-up.sh recorded (never by name). Keystone's database,
# keys, the users and the catalog are kept; keystone-up.sh restarts on them.
set -uo pipefail
source "$(dirname "$0")/cinder-common.sh"
source "$(dirname "$0")/keystone-common.sh"

# The cinder-api pidfile is only trusted when the pid is still that process
# (pids are recycled; uWSGI removes its own pidfiles on exit).
f=$PID_DIR/cinder-api-keystone.pid
if [ -s "$f" ] && ! tr '\0' ' ' <"/proc/$(cat "$f")/cmdline" 2>/dev/null \
        | grep -qF "$CINDER_VENV/bin/cinder-api --config-file"; then
    rm -f "$f"
fi
stop_pidfile cinder-api-keystone "$f"
stop_pidfile glance-keystone-uwsgi "$PID_DIR/glance-keystone-uwsgi.pid"
stop_pidfile keystone-uwsgi "$PID_DIR/keystone-uwsgi.pid"
