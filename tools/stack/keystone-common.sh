# shellcheck shell=bash
# Shared helpers of tools/stack/keystone-*.sh. Sourced, never executed.
# The settings themselves (ports, users, passwords) are in common.sh, which
# start.sh and stop.sh read too.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ks_render SRC DST: fill the @NAME@ placeholders of a template; DST keeps
# its mtime when nothing changed.
ks_render() {
    sed -e "s|@STACK_DIR@|$STACK_DIR|g" -e "s|@PG_HOST@|$PG_HOST|g" \
        -e "s|@PG_PORT@|$PG_PORT|g" -e "s|@KEYSTONE_DB@|$KEYSTONE_DB|g" \
        -e "s|@GLANCE_DB@|$GLANCE_DB|g" -e "s|@GLANCE_PORT@|$GLANCE_PORT|g" \
        -e "s|@KEYSTONE_HOST@|$KEYSTONE_HOST|g" -e "s|@KEYSTONE_PORT@|$KEYSTONE_PORT|g" \
        -e "s|@KEYSTONE_VENV@|$KEYSTONE_VENV|g" -e "s|@KEYSTONE_URL@|$KEYSTONE_URL|g" \
        -e "s|@KEYSTONE_REGION@|$KEYSTONE_REGION|g" \
        -e "s|@KEYSTONE_GLANCE_PORT@|$KEYSTONE_GLANCE_PORT|g" \
        -e "s|@KEYSTONE_GLANCE_URL@|$KEYSTONE_GLANCE_URL|g" \
        -e "s|@KEYSTONE_CINDER_PORT@|$KEYSTONE_CINDER_PORT|g" \
        -e "s|@GLANCE_SERVICE_USER@|$GLANCE_SERVICE_USER|g" \
        -e "s|@GLANCE_SERVICE_PASSWORD@|$GLANCE_SERVICE_PASSWORD|g" \
        -e "s|@CINDER_SERVICE_USER@|$CINDER_SERVICE_USER|g" \
        -e "s|@CINDER_SERVICE_PASSWORD@|$CINDER_SERVICE_PASSWORD|g" \
        "$1" >"$2.new"
    if cmp -s "$2.new" "$2"; then rm "$2.new"; else mv "$2.new" "$2"; fi
}

# stop_pidfile NAME FILE: TERM the process FILE names, KILL it after 15 s,
# then remove FILE and NAME's recorded config hash.
stop_pidfile() {
    local name=$1 file=$2 pid
    if pid_alive "$file"; then
        pid=$(cat "$file")
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 15 bash -c "! kill -0 $pid"; then
            log "$name ($pid) ignored TERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name ($pid)"
    fi
    rm -f "$file" "$PID_DIR/$name.confhash"
}
