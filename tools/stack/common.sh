# Shared helpers for tools/stack/*.sh. Sourced, never executed.
# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the scripts that source it
#
# Everything the scripts create lives under $STACK_DIR (.stack/ in the
# repository), so a checkout can be wiped with stop.sh + rm -rf .stack.

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_DIR=${STACK_DIR:-$TOP_DIR/.stack}
STACK_TOOLS=$TOP_DIR/tools/stack
PID_DIR=$STACK_DIR/pids
LOG_DIR=$STACK_DIR/logs
GLANCE_VENV=$STACK_DIR/glance-venv
PROJECT_VENV=$TOP_DIR/.venv

GLANCE_HOST=127.0.0.1
GLANCE_PORT=9292
GLANCE_URL=http://$GLANCE_HOST:$GLANCE_PORT
PG_HOST=127.0.0.1
PG_PORT=5432
PG_TEST_DB=nova_snapshot_test
GLANCE_DB=nova_snapshot_glance
RABBIT_VHOSTS="nova_snapshot nova_snapshot_test"
LIBVIRT_URI=qemu:///system

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"
}

die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Microseconds since the epoch (bash 5 builtin, no fork).
now_us() {
    local t=${EPOCHREALTIME/./}
    echo "${t#0}"
}

# step NAME CMD...: run a step and print how long it took.
step() {
    local name=$1 t0 ms rc=0
    shift
    t0=$(now_us)
    "$@" || rc=$?
    ms=$(( ($(now_us) - t0) / 1000 ))
    printf '[%s] %-30s %4d.%03ds%s\n' "$(date +%H:%M:%S)" "$name" \
        $((ms / 1000)) $((ms % 1000)) \
        "$([ $rc -eq 0 ] || echo "  FAILED (rc=$rc)")"
    return $rc
}

# pid_alive FILE: true when FILE names a live process.
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
    local deadline=$(( $(date +%s) + $1 ))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# --- Keystone and the Keystone-mode front ends (tools/stack/keystone*) -------
# A test stack: fixed passwords, written to .stack/env and .stack/clouds.yaml.
# Venvs, port and database can be overridden (a second, scratch Keystone).
KEYSTONE_VENV=${KEYSTONE_VENV:-$STACK_DIR/keystone-venv}
CLIENTS_VENV=${CLIENTS_VENV:-$STACK_DIR/clients-venv}
KEYSTONE_HOST=127.0.0.1
KEYSTONE_PORT=${KEYSTONE_PORT:-5000}
KEYSTONE_URL=http://$KEYSTONE_HOST:$KEYSTONE_PORT/v3
KEYSTONE_REGION=RegionOne
KEYSTONE_DB=${KEYSTONE_DB:-nova_snapshot_keystone}
CLOUDS_YAML=$STACK_DIR/clouds.yaml
KEYSTONE_ADMIN_PASSWORD=admin-pass
KEYSTONE_DEMO_USER=demo
KEYSTONE_DEMO_PASSWORD=demo-pass
KEYSTONE_DEMO_READER_USER=demo-reader
KEYSTONE_DEMO_READER_PASSWORD=demo-reader-pass
KEYSTONE_ALT_DEMO_USER=alt_demo
KEYSTONE_ALT_DEMO_PASSWORD=alt-demo-pass
NOVA_SNAPSHOT_SERVICE_USER=nova-snapshot
NOVA_SNAPSHOT_SERVICE_PASSWORD=nova-snapshot-pass
GLANCE_SERVICE_USER=glance
GLANCE_SERVICE_PASSWORD=glance-pass
CINDER_SERVICE_USER=cinder
CINDER_SERVICE_PASSWORD=cinder-pass
# Where a Keystone-mode nova-snapshot-api listens (tests, demo, tempest):
# the catalog's compute endpoint, registered whether or not it runs.
KEYSTONE_COMPUTE_PORT=8774
KEYSTONE_COMPUTE_URL=http://127.0.0.1:$KEYSTONE_COMPUTE_PORT/v2.1
# Second Glance and cinder-api, validating tokens, on the same data as the
# noauth ones at $GLANCE_PORT and 8776.
KEYSTONE_GLANCE_PORT=9393
KEYSTONE_GLANCE_URL=http://127.0.0.1:$KEYSTONE_GLANCE_PORT
KEYSTONE_CINDER_PORT=8786
KEYSTONE_CINDER_URL=http://127.0.0.1:$KEYSTONE_CINDER_PORT/v3
