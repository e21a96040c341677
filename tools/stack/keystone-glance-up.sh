#!/usr/bin/env bash
# A second glance-api, in Keystone mode, on $KEYSTONE_GLANCE_URL: the
# catalog's image endpoint. It shares the database and filesystem store
# of the noauth Glance start.sh runs on $GLANCE_URL (which must be up and
# its database synced), so an image made through either is seen by both.
# Same Glance venv; uWSGI pid in .stack/pids/glance-keystone-uwsgi.pid.
#
# Idempotent: left alone when it runs with the current config and answers.
set -euo pipefail
source "$(dirname "$0")/keystone-common.sh"
# The steps run as "step NAME FUNC", where "set -e" does not apply inside
# FUNC: every command that matters ends in "|| die".

DIR=$STACK_DIR/glance-keystone
ETC=$DIR/etc
PIDFILE=$PID_DIR/glance-keystone-uwsgi.pid

[ "$(id -u)" -eq 0 ] || die "keystone-glance-up.sh must run as root"
[ -x "$GLANCE_VENV/bin/uwsgi" ] || die "no Glance venv; run tools/stack/install.sh"
[ -f "$STACK_DIR/glance/.db_synced" ] || die "Glance's database is not synced; run tools/stack/start.sh"
mkdir -p "$PID_DIR" "$LOG_DIR" "$ETC" "$DIR"/{staging,tasks}
exec 7>"$STACK_DIR/.glance-keystone.lock"
flock 7

healthy() {
    curl -sf -o /dev/null --max-time 2 "$KEYSTONE_GLANCE_URL/healthcheck"
}

CONFHASH=
config() {
    ks_render "$STACK_TOOLS/keystone/glance-api.conf.in" "$ETC/glance-api.conf"
    ks_render "$STACK_TOOLS/keystone/glance-uwsgi.ini.in" "$ETC/glance-uwsgi.ini"
    # Glance's stock paste file (it has the "keystone" flavor), with its
    # healthcheck switch-off file moved out of /etc.
    sed -e "s|^disable_by_file_path\s*=.*|disable_by_file_path = $DIR/healthcheck_disable|" \
        "$GLANCE_VENV/etc/glance/glance-api-paste.ini" >"$ETC/glance-api-paste.ini.new" \
        || die "no glance-api-paste.ini in $GLANCE_VENV/etc/glance"
    if cmp -s "$ETC/glance-api-paste.ini.new" "$ETC/glance-api-paste.ini"; then
        rm "$ETC/glance-api-paste.ini.new"
    else
        mv "$ETC/glance-api-paste.ini.new" "$ETC/glance-api-paste.ini"
    fi
    # Glance's version from its dist-info name (no Python start: seconds on
    # a busy machine).
    CONFHASH=$( { cat "$ETC"/glance-api.conf "$ETC"/glance-uwsgi.ini "$ETC"/glance-api-paste.ini
                  cd "$GLANCE_VENV" && ls -d lib/python3*/site-packages/glance-*.dist-info
                } | sha256sum | cut -d' ' -f1)
}

start_uwsgi() {
    if pid_alive "$PIDFILE"; then
        log "restarting the Keystone-mode Glance (config changed or unhealthy)"
        stop_pidfile glance-keystone-uwsgi "$PIDFILE"
    elif healthy; then
        die "something that is not ours answers on $KEYSTONE_GLANCE_URL; stop it first"
    fi
    rm -f "$PIDFILE"
    setsid nohup "$GLANCE_VENV/bin/uwsgi" --ini "$ETC/glance-uwsgi.ini" \
        </dev/null >>"$LOG_DIR/glance-keystone-uwsgi.out" 2>&1 7>&- 8>&- 9>&- &
    if ! wait_for 60 healthy; then
        tail -30 "$LOG_DIR/glance-keystone-uwsgi.log" >&2 || true
        die "the Keystone-mode Glance did not become healthy on $KEYSTONE_GLANCE_URL"
    fi
    echo "$CONFHASH" >"$PID_DIR/glance-keystone-uwsgi.confhash"
}

step "glance (keystone) config" config
if pid_alive "$PIDFILE" && healthy \
        && [ "$CONFHASH" = "$(cat "$PID_DIR/glance-keystone-uwsgi.confhash" 2>/dev/null)" ]; then
    step "glance (keystone) running" true
else
    step "glance (keystone) start" start_uwsgi
fi
