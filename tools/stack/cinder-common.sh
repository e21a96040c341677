# Shared settings of tools/stack/cinder-up.sh and cinder-down.sh. Sourced.
# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the scripts that source it
source "$(dirname "${BASH_SOURCE[0]}")/ceph-common.sh"

CINDER_VENV=${CINDER_VENV:-$STACK_DIR/cinder-venv}
CINDER_DIR=$STACK_DIR/cinder
CINDER_CONF=$CINDER_DIR/etc/cinder.conf
CINDER_PORT=${CINDER_PORT:-8776}
CINDER_URL=http://127.0.0.1:$CINDER_PORT/v3
CINDER_DB=${CINDER_DB:-cinder}
CINDER_VHOST=${CINDER_VHOST:-cinder}
CINDER_SERVICES="api scheduler volume"

# cinder_alive SVC: the recorded pid is our cinder-SVC (checked by cmdline,
# so a recycled pid is never mistaken for it).
cinder_alive() {
    local f=$PID_DIR/cinder-$1.pid pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
        | grep -qF "$CINDER_VENV/bin/cinder-$1 --config-file $CINDER_CONF"
}
