#!/usr/bin/env bash
# Start the real services nova-snapshot talks to, on loopback only, and
# write .stack/env for tests and the demo.
#
# Idempotent: a service that is already running and healthy is left alone.
# The machine's own PostgreSQL and RabbitMQ are used (and started with their
# packaged commands if they are down); libvirtd/virtlogd and Glance are ours,
# started here with their PIDs recorded in .stack/pids/ for stop.sh.
# Ceph (tools/stack/ceph-up.sh, pids in .stack/ceph/run/) and Cinder on it
# (tools/stack/cinder-up.sh) are ours too, for volume-backed servers.
# Keystone (tools/stack/keystone-up.sh) with its catalog and clouds.yaml, and
# Keystone-mode front ends on the same data: a second Glance and a second
# cinder-api (keystone-glance-up.sh, keystone-cinder-up.sh).
set -euo pipefail
source "$(dirname "$0")/ceph-common.sh"

[ "$(id -u)" -eq 0 ] || die "start.sh must run as root"
[ -x "$GLANCE_VENV/bin/uwsgi" ] || die "no Glance venv; run tools/stack/install.sh first"
mkdir -p "$PID_DIR" "$LOG_DIR"
# One start.sh at a time (two test runs at once would both start Glance).
# Daemons started below get "9>&-" so they do not keep the lock forever.
exec 9>"$STACK_DIR/.start.lock"
flock 9

# --- PostgreSQL --------------------------------------------------------------

pg_up() {
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

pg_sql() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -v ON_ERROR_STOP=1 -tAc "$1"
}

postgres() {
    if ! pg_up; then
        local ver
        ver=$(ls /etc/postgresql | sort -V | tail -1)
        [ -n "$ver" ] || die "no PostgreSQL cluster in /etc/postgresql"
        log "starting PostgreSQL $ver"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start 9>&-
        wait_for 30 pg_up || die "PostgreSQL did not come up"
    fi
    # A stock Debian cluster wants a password on TCP; tests connect as
    # postgres@127.0.0.1 without one, as on the project's machines.
    if ! pg_sql 'select 1' >/dev/null 2>&1; then
        local hba
        hba=$(su postgres -s /bin/sh -c "psql -tAc 'show hba_file'")
        log "allowing trust for postgres@127.0.0.1 in $hba"
        sed -i '1i host all postgres 127.0.0.1/32 trust  # nova-snapshot tools/stack' "$hba"
        su postgres -s /bin/sh -c "psql -qtAc 'select pg_reload_conf()'" >/dev/null
        wait_for 5 pg_sql 'select 1' || die "cannot connect to PostgreSQL as postgres@127.0.0.1"
    fi
    if [ "$(pg_sql "select 1 from pg_database where datname = '$PG_TEST_DB'")" != 1 ]; then
        pg_sql "create database $PG_TEST_DB owner postgres" >/dev/null
    fi
}

# --- RabbitMQ ----------------------------------------------------------------

rabbit_up() {
    (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null
}

rabbitmq() {
    if ! rabbit_up; then
        log "starting RabbitMQ"
        rabbitmq-server -detached 9>&-
        timeout 60 rabbitmqctl -q await_startup || die "RabbitMQ did not come up"
    fi
    local have v
    have=$(rabbitmqctl -q list_vhosts name | tr '\n' ' ')
    for v in $RABBIT_VHOSTS; do
        case " $have " in
            *" $v "*) ;;
            *)
                rabbitmqctl -q add_vhost "$v"
                rabbitmqctl -q set_permissions -p "$v" guest '.*' '.*' '.*'
                ;;
        esac
    done
}

# --- libvirt -----------------------------------------------------------------

libvirt_up() {
    timeout 5 virsh -c "$LIBVIRT_URI" version
}

# record_pid NAME SYSTEM_PIDFILE: remember a daemon we started.
record_pid() {
    cp "$2" "$PID_DIR/$1.pid"
}

libvirt() {
    mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/images
    # virtlogd even when libvirtd answers: a libvirtd restarted by hand or
    # by the fault campaign may run without it, and then no guest starts
    # ("Failed to connect socket to '/run/libvirt/virtlogd-sock'").
    if ! pid_alive /run/virtlogd.pid; then
        virtlogd -d 9>&-
        wait_for 5 pid_alive /run/virtlogd.pid || die "virtlogd did not start"
        record_pid virtlogd /run/virtlogd.pid
    fi
    if libvirt_up >/dev/null 2>&1; then
        return 0
    fi
    if ! pid_alive /run/libvirtd.pid; then
        libvirtd -d 9>&-
        wait_for 10 pid_alive /run/libvirtd.pid || die "libvirtd did not start"
        record_pid libvirtd /run/libvirtd.pid
    fi
    wait_for 30 libvirt_up || die "libvirtd does not answer on $LIBVIRT_URI"
}

# --- Glance ------------------------------------------------------------------

GLANCE_DIR=$STACK_DIR/glance
GLANCE_ETC=$GLANCE_DIR/etc
GLANCE_PIDFILE=$PID_DIR/glance-uwsgi.pid

glance_healthy() {
    curl -sf -o /dev/null --max-time 2 "$GLANCE_URL/healthcheck"
}

render() {
    sed -e "s|@STACK_DIR@|$STACK_DIR|g" -e "s|@GLANCE_PORT@|$GLANCE_PORT|g" \
        -e "s|@PG_PORT@|$PG_PORT|g" -e "s|@GLANCE_DB@|$GLANCE_DB|g" "$1" >"$2"
}

glance_config() {
    mkdir -p "$GLANCE_ETC" "$GLANCE_DIR"/{images,staging,tasks,lock}
    local f
    for f in glance-api.conf glance-api-paste.ini glance-uwsgi.ini; do
        render "$STACK_TOOLS/glance/$f.in" "$GLANCE_ETC/$f.new"
        if cmp -s "$GLANCE_ETC/$f.new" "$GLANCE_ETC/$f"; then
            rm "$GLANCE_ETC/$f.new"
        else
            mv "$GLANCE_ETC/$f.new" "$GLANCE_ETC/$f"
        fi
    done
    cp -p "$STACK_TOOLS/glance/nova_snapshot_glance_identity.py" "$GLANCE_ETC/"
    cat "$GLANCE_ETC"/*.conf "$GLANCE_ETC"/*.ini "$GLANCE_ETC"/*.py | sha256sum | cut -d' ' -f1
}

glance_stop() {
    local pid
    pid=$(cat "$GLANCE_PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 15 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$GLANCE_PIDFILE"
}

glance_db_sync() {
    # Schema once per Glance version and database (db_sync takes seconds).
    local version
    version=$("$GLANCE_VENV/bin/python" -c \
        'import importlib.metadata as m; print(m.version("glance"))')
    if [ "$(pg_sql "select 1 from pg_database where datname = '$GLANCE_DB'")" != 1 ]; then
        pg_sql "create database $GLANCE_DB owner postgres" >/dev/null
        rm -f "$GLANCE_DIR/.db_synced"
    fi
    if [ "$(cat "$GLANCE_DIR/.db_synced" 2>/dev/null)" != "$version $GLANCE_DB" ]; then
        "$GLANCE_VENV/bin/glance-manage" --config-file "$GLANCE_ETC/glance-api.conf" \
            db_sync >"$LOG_DIR/glance-db-sync.log" 2>&1 \
            || { tail -20 "$LOG_DIR/glance-db-sync.log" >&2; die "glance-manage db_sync failed"; }
        echo "$version $GLANCE_DB" >"$GLANCE_DIR/.db_synced"
    fi
}

glance() {
    local confhash running_hash=
    confhash=$(glance_config)
    [ -f "$PID_DIR/glance-uwsgi.confhash" ] && running_hash=$(cat "$PID_DIR/glance-uwsgi.confhash")
    if pid_alive "$GLANCE_PIDFILE"; then
        if [ "$confhash" = "$running_hash" ] && glance_healthy; then
            return 0
        fi
    elif glance_healthy; then
        die "something that is not ours answers on $GLANCE_URL; stop it first"
    fi
    # Before any restart, so a running Glance is down only for the restart.
    glance_db_sync
    if pid_alive "$GLANCE_PIDFILE"; then
        log "restarting Glance (config changed or unhealthy)"
        glance_stop
    fi
    rm -f "$GLANCE_PIDFILE"
    setsid nohup "$GLANCE_VENV/bin/uwsgi" --ini "$GLANCE_ETC/glance-uwsgi.ini" \
        </dev/null >>"$LOG_DIR/glance-uwsgi.out" 2>&1 9>&- &
    if ! wait_for 60 glance_healthy; then
        tail -30 "$LOG_DIR/glance-uwsgi.log" >&2 || true
        die "Glance did not become healthy on $GLANCE_URL"
    fi
    echo "$confhash" >"$PID_DIR/glance-uwsgi.confhash"
}

# --- tiny guest (built by tools/guest/build.sh when it exists) -----------------

GUEST_DIR=
guest() {
    local script=$TOP_DIR/tools/guest/build.sh out=$STACK_DIR/guest
    [ -f "$script" ] || return 0
    # build.sh is idempotent (cheap when up to date) and writes to the
    # directory given as its argument.
    bash "$script" "$out" >"$LOG_DIR/guest-build.log" 2>&1 \
        || { tail -20 "$LOG_DIR/guest-build.log" >&2; die "tools/guest/build.sh failed"; }
    GUEST_DIR=$out
}

# --- Ceph and Cinder (volume-backed servers) ---------------------------------

CINDER_ENV=
ceph_cluster() {
    bash "$STACK_TOOLS/ceph-up.sh"
}

# The libvirt secret with client.cinder's key, under the UUID Cinder names
# in every attachment (as an operator sets up each Nova compute host). The
# key changes when the cluster is rebuilt, so it is set every time.
ceph_secret() {
    local key xml
    key=$(mktemp)
    ceph -c "$CEPH_CONF" --connect-timeout 5 auth get-key "client.$CEPH_USER" >"$key"
    if ! virsh -q -c "$LIBVIRT_URI" secret-dumpxml "$CEPH_SECRET_UUID" >/dev/null 2>&1; then
        xml=$(mktemp)
        printf '%s\n' "<secret ephemeral='no' private='no'>" \
            "  <uuid>$CEPH_SECRET_UUID</uuid>" \
            "  <usage type='ceph'><name>nova-snapshot stack client.$CEPH_USER secret</name></usage>" \
            "</secret>" >"$xml"
        virsh -q -c "$LIBVIRT_URI" secret-define "$xml" >/dev/null
        rm -f "$xml"
    fi
    # From a file (base64), so the key never shows in a process listing.
    virsh -q -c "$LIBVIRT_URI" secret-set-value "$CEPH_SECRET_UUID" --file "$key" >/dev/null
    rm -f "$key"
}

cinder_services() {
    bash "$STACK_TOOLS/cinder-up.sh" >"$LOG_DIR/start-cinder.log" 2>&1 \
        || { cat "$LOG_DIR/start-cinder.log" >&2; return 1; }
    # Published only once Cinder is ready, so tests never see a half stack.
    CINDER_ENV="CINDER_URL=http://127.0.0.1:${CINDER_PORT:-8776}/v3
CEPH_CONF=$CEPH_CONF
RBD_POOL=$CEPH_POOL
CEPH_USER=$CEPH_USER
CEPH_SECRET_UUID=$CEPH_SECRET_UUID"
}

# --- Keystone and the Keystone-mode Glance and cinder-api ---------------------

KEYSTONE_ENV=
keystone() {
    bash "$STACK_TOOLS/keystone-up.sh" 9>&- || return 1
    KEYSTONE_ENV=$(cat "$STACK_DIR/keystone/env")
}

KEYSTONE_GLANCE_ENV=
keystone_glance() {
    bash "$STACK_TOOLS/keystone-glance-up.sh" 9>&- || return 1
    KEYSTONE_GLANCE_ENV="KEYSTONE_GLANCE_URL=$KEYSTONE_GLANCE_URL"
}

KEYSTONE_CINDER_ENV=
keystone_cinder() {
    bash "$STACK_TOOLS/keystone-cinder-up.sh" 9>&- || return 1
    KEYSTONE_CINDER_ENV="KEYSTONE_CINDER_URL=$KEYSTONE_CINDER_URL"
}

# --- .stack/env --------------------------------------------------------------

write_env() {
    local tmp=$STACK_DIR/env.tmp
    {
        echo "# Written by tools/stack/start.sh; shell-sourceable KEY=value lines."
        echo "GLANCE_URL=$GLANCE_URL"
        echo "TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/nova_snapshot_test"
        echo "PG_URL=postgresql+psycopg2://postgres@$PG_HOST:$PG_PORT/$PG_TEST_DB"
        echo "LIBVIRT_URI=$LIBVIRT_URI"
        echo "STACK_DIR=$STACK_DIR"
        [ -z "$GUEST_DIR" ] || echo "GUEST_DIR=$GUEST_DIR"
        [ -z "$CINDER_ENV" ] || echo "$CINDER_ENV"
        [ -z "$KEYSTONE_ENV" ] || echo "$KEYSTONE_ENV"
        [ -z "$KEYSTONE_GLANCE_ENV" ] || echo "$KEYSTONE_GLANCE_ENV"
        [ -z "$KEYSTONE_CINDER_ENV" ] || echo "$KEYSTONE_CINDER_ENV"
    } >"$tmp"
    mv "$tmp" "$STACK_DIR/env"
}

T0=$(now_us)
# PostgreSQL and RabbitMQ are independent of the rest and RabbitMQ's CLI is
# slow (an Erlang VM per call): run it in the background.
rabbitmq >"$LOG_DIR/start-rabbitmq.log" 2>&1 & RABBIT_JOB=$!
# Ceph needs nothing else and takes seconds to build: start it now too.
ceph_cluster >"$LOG_DIR/start-ceph.log" 2>&1 9>&- & CEPH_JOB=$!
step "postgresql" postgres
step "libvirtd" libvirt
step "glance" glance
# Keystone needs only PostgreSQL; its cold start (db_sync, keys, bootstrap)
# overlaps Ceph's, which runs in the background.
step "keystone" keystone || die "Keystone did not come up"
step "glance (keystone mode)" keystone_glance || die "the Keystone-mode Glance did not come up"
step "rabbitmq (wait)" wait "$RABBIT_JOB" \
    || { cat "$LOG_DIR/start-rabbitmq.log" >&2; die "RabbitMQ setup failed"; }
# Services are up: publish them before the (slower, separate) guest build so
# a guest failure does not hide the services from everyone else.
write_env
step "ceph (wait)" wait "$CEPH_JOB" \
    || { cat "$LOG_DIR/start-ceph.log" >&2; die "Ceph did not come up"; }
step "libvirt ceph secret" ceph_secret || die "could not set the libvirt secret for Ceph"
step "cinder" cinder_services 9>&- || die "Cinder did not come up"
step "cinder-api (keystone mode)" keystone_cinder \
    || die "the Keystone-mode cinder-api did not come up"
write_env
step "guest image" guest
write_env
MS=$(( ($(now_us) - T0) / 1000 ))
log "start.sh done in $((MS / 1000)).$(printf '%03d' $((MS % 1000)))s; wrote $STACK_DIR/env"
