#!/usr/bin/env bash
# A second cinder-api, in Keystone mode, on $KEYSTONE_CINDER_URL: the
# catalog's block-storage endpoint. It reads Cinder's own config first
# (rendered by cinder-up.sh: same database, RabbitMQ vhost, so the same
# scheduler and volume service) and then tools/stack/keystone/cinder-api.conf.in,
# which switches it to Keystone. The noauth cinder-api on 8776 stays as is.
# Pid in .stack/pids/cinder-api-keystone.pid (checked by cmdline).
#
# Idempotent: left alone when it runs with the current config (its own and
# Cinder's) and answers.
set -euo pipefail
source "$(dirname "$0")/cinder-common.sh"
source "$(dirname "$0")/keystone-common.sh"
# The steps run as "step NAME FUNC", where "set -e" does not apply inside
# FUNC: every command that matters ends in "|| die".

DIR=$STACK_DIR/cinder-keystone
OVERLAY=$DIR/etc/cinder-api-keystone.conf
PIDFILE=$PID_DIR/cinder-api-keystone.pid
ROOT_URL=http://127.0.0.1:$KEYSTONE_CINDER_PORT/

[ "$(id -u)" -eq 0 ] || die "keystone-cinder-up.sh must run as root"
[ -x "$CINDER_VENV/bin/cinder-api" ] || die "no Cinder venv; run tools/stack/install.sh"
[ -s "$PID_DIR/cinder.confhash" ] || die "Cinder is not up; run tools/stack/start.sh (cinder-up.sh)"
mkdir -p "$PID_DIR" "$DIR/etc" "$DIR/log"
exec 7>"$STACK_DIR/.cinder-keystone.lock"
flock 7

# alive: the recorded pid is our cinder-api (a recycled pid never passes).
alive() {
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
        | grep -qF "$CINDER_VENV/bin/cinder-api --config-file $CINDER_CONF --config-file $OVERLAY"
}

# The version list at / answers without a token (300).
answers() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ROOT_URL" || true)" = 300 ]
}

CONFHASH=
config() {
    ks_render "$STACK_TOOLS/keystone/cinder-api.conf.in" "$OVERLAY"
    # Cinder's own hash covers its config, the Ceph cluster and its version.
    CONFHASH=$(cat "$OVERLAY" "$PID_DIR/cinder.confhash" | sha256sum | cut -d' ' -f1)
}

start_api() {
    local pid
    if alive; then
        log "restarting the Keystone-mode cinder-api (config changed or not answering)"
        stop_pidfile cinder-api-keystone "$PIDFILE"
    elif answers; then
        die "something that is not ours answers on $ROOT_URL; stop it first"
    fi
    setsid nohup "$CINDER_VENV/bin/cinder-api" --config-file "$CINDER_CONF" \
        --config-file "$OVERLAY" </dev/null >>"$DIR/log/cinder-api.out" 2>&1 \
        7>&- 8>&- 9>&- &
    pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$(( $(date +%s) + 120 ))
    until answers; do
        if ! alive || [ "$(date +%s)" -ge "$deadline" ]; then
            tail -20 "$DIR/log/cinder-api.log" "$DIR/log/cinder-api.out" 2>/dev/null \
                | grep -v -i eventlet >&2 || true
            die "the Keystone-mode cinder-api did not answer on $ROOT_URL"
        fi
        sleep 0.2
    done
    echo "$CONFHASH" >"$PID_DIR/cinder-api-keystone.confhash"
}

step "cinder-api (keystone) config" config
if alive && answers \
        && [ "$CONFHASH" = "$(cat "$PID_DIR/cinder-api-keystone.confhash" 2>/dev/null)" ]; then
    step "cinder-api (keystone) running" true
else
    step "cinder-api (keystone) start" start_api
fi
