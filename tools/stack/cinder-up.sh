#!/usr/bin/env bash
# Cinder (api, scheduler, volume with the RBD driver on the "volumes" pool of
# tools/stack/ceph-up.sh's cluster), no Keystone (auth_strategy = noauth),
# on 127.0.0.1:$CINDER_PORT. Database "cinder" on the machine's PostgreSQL,
# RabbitMQ vhost "cinder", Glance at $GLANCE_URL. Pids in .stack/pids/.
#
# Idempotent: when the three services run with the current config and the
# API answers, nothing is done. Otherwise they are (re)started and this
# waits until cinder-volume has reported in and the scheduler sees the pool.
# A new Ceph cluster (new fsid) gets a fresh database: the old volume rows
# would point at images that no longer exist.
set -euo pipefail
source "$(dirname "$0")/cinder-common.sh"

ADMIN_PROJECT=0000000000000000000000000000cafe
API_VERSION=3.71
T0=$(now_us)

lap() {
    local ms=$(( ($(now_us) - T0) / 1000 ))
    log "cinder: $* (+$((ms / 1000)).$(printf '%03d' $((ms % 1000)))s)"
}

pg_sql() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -v ON_ERROR_STOP=1 -tAc "$1"
}

api() {
    curl -sf --max-time 5 -H "X-Auth-Token: nova-snapshot-stack:$ADMIN_PROJECT" \
        -H "OpenStack-API-Version: volume $API_VERSION" "$CINDER_URL/$1"
}

api_answers() {
    local code
    # The version list at / (300); /v3/ itself answers 204.
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:$CINDER_PORT/" || true)
    [ "$code" = 200 ] || [ "$code" = 300 ]
}

# reported BINARY SINCE: the service is up with a heartbeat newer than
# SINCE (after a restart the old row still says "up" for 60 s).
reported() {
    api "os-services?binary=$1" | python3 -c '
import json, sys
services = json.load(sys.stdin)["services"]
sys.exit(0 if any(s["state"] == "up" and (s["updated_at"] or "") >= sys.argv[1]
                  for s in services) else 1)' "$2"
}

# scheduler_registered SINCE: the scheduler wrote its service row after SINCE
# (it does so right before it starts consuming RPC).
scheduler_registered() {
    [ "$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -d "$CINDER_DB" -tAc \
        "select count(*) from services where \"binary\" = 'cinder-scheduler'
         and not deleted and coalesce(updated_at, created_at) >= '$1'")" -ge 1 ]
}

pool_up() {
    api "scheduler-stats/get_pools?detail=true" | grep -q '"backend_state": "up"'
}

render_config() {
    local etc=$CINDER_DIR/etc src=$CINDER_VENV/etc/cinder f
    mkdir -p "$etc" "$CINDER_DIR"/{log,state,lock,conversion}
    sed -e "s|@CINDER_DIR@|$CINDER_DIR|g" -e "s|@CINDER_VENV@|$CINDER_VENV|g" \
        -e "s|@CINDER_PORT@|$CINDER_PORT|g" -e "s|@CINDER_VHOST@|$CINDER_VHOST|g" \
        -e "s|@CINDER_DB@|$CINDER_DB|g" -e "s|@GLANCE_URL@|$GLANCE_URL|g" \
        -e "s|@PG_HOST@|$PG_HOST|g" -e "s|@PG_PORT@|$PG_PORT|g" \
        -e "s|@RBD_POOL@|$CEPH_POOL|g" -e "s|@CEPH_CONF@|$CEPH_CONF|g" \
        -e "s|@CEPH_USER@|$CEPH_USER|g" -e "s|@CEPH_SECRET_UUID@|$CEPH_SECRET_UUID|g" \
        -e "s|@KEYSTONE_URL@|$KEYSTONE_URL|g" -e "s|@KEYSTONE_REGION@|$KEYSTONE_REGION|g" \
        -e "s|@CINDER_SERVICE_USER@|$CINDER_SERVICE_USER|g" \
        -e "s|@CINDER_SERVICE_PASSWORD@|$CINDER_SERVICE_PASSWORD|g" \
        "$STACK_TOOLS/cinder/cinder.conf.in" >"$etc/cinder.conf.new"
    mv "$etc/cinder.conf.new" "$etc/cinder.conf"
    # The venv ships these; used unchanged except rootwrap's search paths
    # (as root, commands run directly, but the file must be valid).
    for f in api-paste.ini resource_filters.json; do
        cp "$src/$f" "$etc/$f"
    done
    rm -rf "$etc/rootwrap.d"
    cp -r "$src/rootwrap.d" "$etc/rootwrap.d"
    sed -e "s|^filters_path\s*=.*|filters_path = $etc/rootwrap.d|" \
        -e "s|^exec_dirs\s*=\(.*\)|exec_dirs = $CINDER_VENV/bin,\1|" \
        "$src/rootwrap.conf" >"$etc/rootwrap.conf"
    { cat "$etc/cinder.conf" "$etc/api-paste.ini" "$etc/rootwrap.conf"
      cat "$CEPH_DIR/.ready"
      "$CINDER_VENV/bin/python" -c \
          'import importlib.metadata as m; print(m.version("cinder"))'
    } | sha256sum | cut -d' ' -f1
}

rabbit_vhost() {
    if ! rabbitmqctl -q list_vhosts name | grep -qx "$CINDER_VHOST"; then
        rabbitmqctl -q add_vhost "$CINDER_VHOST"
        rabbitmqctl -q set_permissions -p "$CINDER_VHOST" guest '.*' '.*' '.*'
    fi
}

# Schema once per Cinder version and Ceph cluster; a new cluster means
# a fresh database.
db_sync() {
    local want have
    want="$("$CINDER_VENV/bin/python" -c \
        'import importlib.metadata as m; print(m.version("cinder"))') $(cat "$CEPH_DIR/.ready")"
    have=$(cat "$CINDER_DIR/.db_synced" 2>/dev/null || true)
    if [ "$(pg_sql "select 1 from pg_database where datname = '$CINDER_DB'")" = 1 ] \
            && [ "$have" = "$want" ]; then
        return 0
    fi
    if [ "${have#* }" != "${want#* }" ]; then
        pg_sql "drop database if exists $CINDER_DB with (force)" >/dev/null
    fi
    if [ "$(pg_sql "select 1 from pg_database where datname = '$CINDER_DB'")" != 1 ]; then
        pg_sql "create database $CINDER_DB owner postgres" >/dev/null
    fi
    "$CINDER_VENV/bin/cinder-manage" --config-file "$CINDER_CONF" db sync \
        >"$LOG_DIR/cinder-db-sync.log" 2>&1 \
        || { tail -20 "$LOG_DIR/cinder-db-sync.log" >&2; die "cinder-manage db sync failed"; }
    echo "$want" >"$CINDER_DIR/.db_synced"
    lap "database $CINDER_DB synced"
}

[ "$(id -u)" -eq 0 ] || die "cinder-up.sh must run as root"
[ -x "$CINDER_VENV/bin/cinder-volume" ] || die "no Cinder venv; run tools/stack/install.sh"
[ -f "$CEPH_DIR/.ready" ] || die "no Ceph cluster; run tools/stack/ceph-up.sh first"
mkdir -p "$PID_DIR" "$LOG_DIR"
# One cinder-up.sh at a time (start.sh serializes itself, direct calls do
# not); the services are spawned with "8>&-" so they do not keep it.
exec 8>"$STACK_DIR/.cinder.lock"
flock 8

confhash=$(render_config)
all_alive=1
for svc in $CINDER_SERVICES; do
    cinder_alive "$svc" || all_alive=
done
if [ -n "$all_alive" ] && [ "$confhash" = "$(cat "$PID_DIR/cinder.confhash" 2>/dev/null)" ] \
        && api_answers; then
    exit 0
fi
if ! cinder_alive api && api_answers; then
    die "something that is not ours answers on $CINDER_URL; stop it first"
fi

"$STACK_TOOLS/cinder-down.sh"
# rabbitmqctl boots an Erlang VM per call (seconds): overlap it with the DB.
rabbit_vhost >"$LOG_DIR/cinder-vhost.log" 2>&1 & VHOST_JOB=$!
db_sync
wait "$VHOST_JOB" || { cat "$LOG_DIR/cinder-vhost.log" >&2; die "RabbitMQ vhost $CINDER_VHOST"; }
spawn() {
    setsid nohup "$CINDER_VENV/bin/cinder-$1" --config-file "$CINDER_CONF" \
        </dev/null >>"$CINDER_DIR/log/cinder-$1.out" 2>&1 8>&- 9>&- &
    echo $! >"$PID_DIR/cinder-$1.pid"
}

# fail_wait WHAT: report which service died (with its log) or the timeout.
STARTED=
fail_wait() {
    local svc
    for svc in $STARTED; do
        if ! cinder_alive "$svc"; then
            tail -20 "$CINDER_DIR/log/cinder-$svc.log" "$CINDER_DIR/log/cinder-$svc.out" \
                2>/dev/null | grep -v -i eventlet >&2 || true
            die "cinder-$svc died while waiting for: $1"
        fi
    done
    die "timeout waiting for: $1 (logs in $CINDER_DIR/log)"
}

# wait_alive SECONDS WHAT CMD...: like wait_for, but gives up at once when
# one of our services has died.
wait_alive() {
    local limit=$1 what=$2 deadline svc
    shift 2
    deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        for svc in $STARTED; do
            cinder_alive "$svc" || fail_wait "$what"
        done
        [ "$(date +%s)" -lt "$deadline" ] || fail_wait "$what"
        sleep 0.2
    done
}

# The scheduler must listen before cinder-volume starts: the volume service
# announces its pool once, at the end of its start-up, and a scheduler that
# missed it sees no backend until the next report 60 s later.
since=$(date -u +%Y-%m-%dT%H:%M:%S)
spawn api
spawn scheduler
STARTED="api scheduler"
lap "spawned cinder-api, cinder-scheduler"
# Read from the database: the API is still starting in parallel.
wait_alive 120 "cinder-scheduler to register" scheduler_registered "$since"
lap "cinder-scheduler registered"
spawn volume
STARTED="api scheduler volume"
wait_alive 120 "the API on $CINDER_URL" api_answers
lap "API answers"
wait_alive 120 "cinder-volume in os-services" reported cinder-volume "$since"
lap "cinder-volume up"
wait_alive 120 "the scheduler to see the RBD pool" pool_up
echo "$confhash" >"$PID_DIR/cinder.confhash"
lap "scheduler sees pool ${CEPH_POOL} (ready)"
