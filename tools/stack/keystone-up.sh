#!/usr/bin/env bash
# Keystone for the test stack: uWSGI on $KEYSTONE_URL, database
# $KEYSTONE_DB on the machine's PostgreSQL, fernet tokens; then the
# projects, users, roles and catalog of tools/stack/keystone/provision.py,
# .stack/clouds.yaml and .stack/keystone/env (KEY=value lines start.sh puts
# into .stack/env). Called by start.sh after PostgreSQL is up.
#
# Idempotent: db_sync and bootstrap run once per Keystone version and
# database, keys are made once, a Keystone running with the current config
# is left alone; provisioning only writes what is missing or differs, and
# a warm run with unchanged inputs checks it with one token request.
set -euo pipefail
source "$(dirname "$0")/keystone-common.sh"
# The steps run as "step NAME FUNC", where "set -e" does not apply inside
# FUNC: every command that matters ends in "|| die".

KEYSTONE_DIR=$STACK_DIR/keystone
KEYSTONE_ETC=$KEYSTONE_DIR/etc
KEYSTONE_PIDFILE=$PID_DIR/keystone-uwsgi.pid
MANAGE=$KEYSTONE_VENV/bin/keystone-manage

[ "$(id -u)" -eq 0 ] || die "keystone-up.sh must run as root"
[ -x "$KEYSTONE_VENV/bin/uwsgi" ] || die "no Keystone venv; run tools/stack/install.sh"
mkdir -p "$PID_DIR" "$LOG_DIR" "$KEYSTONE_ETC"
# One keystone-up.sh at a time (direct calls are not serialized by
# start.sh's lock); uWSGI is spawned with "7>&-" so it does not keep it.
exec 7>"$STACK_DIR/.keystone.lock"
flock 7

pg_sql() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -v ON_ERROR_STOP=1 -tAc "$1"
}

healthy() {
    curl -sf -o /dev/null --max-time 2 "$KEYSTONE_URL"
}

# manage LOGNAME ARGS...: keystone-manage, output to a log (it prints an
# eventlet deprecation block on every call), shown only on failure.
manage() {
    local logf=$LOG_DIR/keystone-$1.log
    shift
    "$MANAGE" --config-file "$KEYSTONE_ETC/keystone.conf" "$@" >"$logf" 2>&1 \
        || { grep -v -i eventlet "$logf" | tail -20 >&2; return 1; }
}

VERSION=
config() {
    ks_render "$STACK_TOOLS/keystone/keystone.conf.in" "$KEYSTONE_ETC/keystone.conf"
    ks_render "$STACK_TOOLS/keystone/keystone-uwsgi.ini.in" "$KEYSTONE_ETC/keystone-uwsgi.ini"
    # From the dist-info name: a Python start costs seconds on a busy machine.
    VERSION=$(cd "$KEYSTONE_VENV" && ls -d lib/python3*/site-packages/keystone-*.dist-info) \
        || die "keystone is not installed in $KEYSTONE_VENV"
    VERSION=${VERSION##*/keystone-}
    VERSION=${VERSION%.dist-info}
    CONFHASH=$( { cat "$KEYSTONE_ETC"/keystone.conf "$KEYSTONE_ETC"/keystone-uwsgi.ini
                  echo "$VERSION"; } | sha256sum | cut -d' ' -f1)
}

# Schema, then bootstrap, once per Keystone version and database (each
# keystone-manage call is seconds of imports). A new database redoes both.
database() {
    if [ "$(pg_sql "select 1 from pg_database where datname = '$KEYSTONE_DB'")" != 1 ]; then
        pg_sql "create database $KEYSTONE_DB owner postgres" >/dev/null \
            || die "cannot create database $KEYSTONE_DB"
        rm -f "$KEYSTONE_DIR/.db_synced" "$KEYSTONE_DIR/.bootstrapped"
    fi
    if [ "$(cat "$KEYSTONE_DIR/.db_synced" 2>/dev/null)" != "$VERSION $KEYSTONE_DB" ]; then
        manage db-sync db_sync || die "keystone-manage db_sync failed"
        echo "$VERSION $KEYSTONE_DB" >"$KEYSTONE_DIR/.db_synced"
    fi
}

# Fernet keys sign the tokens, credential keys encrypt stored credentials.
# Made once and kept: new keys would invalidate every token handed out.
keys() {
    local kind
    for kind in fernet credential; do
        if [ -z "$(ls -A "$KEYSTONE_DIR/$kind-keys" 2>/dev/null)" ]; then
            mkdir -p "$KEYSTONE_DIR/$kind-keys"
            manage "$kind-setup" "${kind}_setup" \
                --keystone-user "$(id -un)" --keystone-group "$(id -gn)" \
                || die "keystone-manage ${kind}_setup failed"
        fi
    done
}

# The admin user and project, the roles admin/manager/member/reader/service
# with their implications, the default domain, the region and the identity
# endpoints. Keystone's own command; re-running it changes nothing, but it
# costs seconds, hence the stamp.
bootstrap() {
    local want="$VERSION $KEYSTONE_DB $KEYSTONE_URL $KEYSTONE_REGION $KEYSTONE_ADMIN_PASSWORD"
    [ "$(cat "$KEYSTONE_DIR/.bootstrapped" 2>/dev/null)" != "$want" ] || return 0
    manage bootstrap bootstrap \
        --bootstrap-username admin --bootstrap-password "$KEYSTONE_ADMIN_PASSWORD" \
        --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id "$KEYSTONE_REGION" \
        --bootstrap-public-url "$KEYSTONE_URL" \
        --bootstrap-internal-url "$KEYSTONE_URL" \
        --bootstrap-admin-url "$KEYSTONE_URL" \
        || die "keystone-manage bootstrap failed"
    echo "$want" >"$KEYSTONE_DIR/.bootstrapped"
}

start_uwsgi() {
    if pid_alive "$KEYSTONE_PIDFILE"; then
        log "restarting Keystone (config changed or unhealthy)"
        stop_pidfile keystone-uwsgi "$KEYSTONE_PIDFILE"
    elif healthy; then
        die "something that is not ours answers on $KEYSTONE_URL; stop it first"
    fi
    rm -f "$KEYSTONE_PIDFILE"
    setsid nohup "$KEYSTONE_VENV/bin/uwsgi" --ini "$KEYSTONE_ETC/keystone-uwsgi.ini" \
        </dev/null >>"$LOG_DIR/keystone-uwsgi.out" 2>&1 7>&- 8>&- 9>&- &
    if ! wait_for 60 healthy; then
        tail -30 "$LOG_DIR/keystone-uwsgi.log" >&2 || true
        die "Keystone did not answer on $KEYSTONE_URL"
    fi
    echo "$CONFHASH" >"$PID_DIR/keystone-uwsgi.confhash"
}

# What provision.py reads from its environment (names from common.sh).
PROVISION_VARS="KEYSTONE_URL KEYSTONE_REGION KEYSTONE_ADMIN_PASSWORD
KEYSTONE_DEMO_USER KEYSTONE_DEMO_PASSWORD
KEYSTONE_DEMO_READER_USER KEYSTONE_DEMO_READER_PASSWORD
KEYSTONE_ALT_DEMO_USER KEYSTONE_ALT_DEMO_PASSWORD
NOVA_SNAPSHOT_SERVICE_USER NOVA_SNAPSHOT_SERVICE_PASSWORD
GLANCE_SERVICE_USER GLANCE_SERVICE_PASSWORD
CINDER_SERVICE_USER CINDER_SERVICE_PASSWORD
KEYSTONE_COMPUTE_URL KEYSTONE_GLANCE_URL KEYSTONE_CINDER_URL"
PROVISION_STAMP=$KEYSTONE_DIR/.provisioned

provision_inputs() {
    local name
    { cat "$STACK_TOOLS/keystone/provision.py" "$KEYSTONE_DIR/.bootstrapped"
      for name in $PROVISION_VARS CLOUDS_YAML; do echo "$name=${!name}"; done
    } | sha256sum | cut -d' ' -f1
}

# demo_token_works: Keystone still has the demo user, its password and a
# role in demo (a project-scoped token needs one): one request, not the
# seconds of provision.py's imports and checks.
demo_token_works() {
    curl -sf -o /dev/null --max-time 5 -H 'Content-Type: application/json' \
        -d @- "$KEYSTONE_URL/auth/tokens" <<EOF
{"auth": {"identity": {"methods": ["password"], "password": {"user": {
  "name": "$KEYSTONE_DEMO_USER", "domain": {"id": "default"},
  "password": "$KEYSTONE_DEMO_PASSWORD"}}},
 "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}}
EOF
}

provision_done() {
    [ "$(cat "$PROVISION_STAMP" 2>/dev/null)" = "$(provision_inputs)" ] \
        && [ -s "$KEYSTONE_DIR/env" ] && [ -s "$CLOUDS_YAML" ] && demo_token_works
}

provision() {
    local out name
    local vars=()
    # provision.py converges in ~1 s on a quiet machine, but under load its
    # imports alone take seconds: a warm start checks with one token request.
    if provision_done; then
        return 0
    fi
    log "provisioning Keystone (tools/stack/keystone/provision.py)"
    for name in $PROVISION_VARS; do vars+=("$name=${!name}"); done
    rm -f "$PROVISION_STAMP"
    out=$(env "${vars[@]}" "$KEYSTONE_VENV/bin/python" \
        "$STACK_TOOLS/keystone/provision.py" --clouds-yaml "$CLOUDS_YAML") \
        || die "provisioning Keystone failed"
    # Read by start.sh's write_env; the front ends' URLs are added there
    # once they answer.
    {
        for name in KEYSTONE_URL KEYSTONE_REGION CLOUDS_YAML CLIENTS_VENV \
                KEYSTONE_COMPUTE_URL; do
            echo "$name=${!name}"
        done
        echo "KEYSTONE_ADMIN_USER=admin"
        echo "KEYSTONE_ADMIN_PASSWORD=$KEYSTONE_ADMIN_PASSWORD"
        echo "KEYSTONE_ADMIN_PROJECT=admin"
        for name in KEYSTONE_DEMO_USER KEYSTONE_DEMO_PASSWORD \
                KEYSTONE_DEMO_READER_USER KEYSTONE_DEMO_READER_PASSWORD \
                KEYSTONE_ALT_DEMO_USER KEYSTONE_ALT_DEMO_PASSWORD; do
            echo "$name=${!name}"
        done
        echo "KEYSTONE_SERVICE_PROJECT=service"
        for name in NOVA_SNAPSHOT_SERVICE_USER NOVA_SNAPSHOT_SERVICE_PASSWORD \
                GLANCE_SERVICE_USER GLANCE_SERVICE_PASSWORD \
                CINDER_SERVICE_USER CINDER_SERVICE_PASSWORD; do
            echo "$name=${!name}"
        done
        echo "$out"
    } >"$KEYSTONE_DIR/env.tmp"
    mv "$KEYSTONE_DIR/env.tmp" "$KEYSTONE_DIR/env"
    provision_inputs >"$PROVISION_STAMP"
}

step "keystone config" config
if pid_alive "$KEYSTONE_PIDFILE" && healthy \
        && [ "$CONFHASH" = "$(cat "$PID_DIR/keystone-uwsgi.confhash" 2>/dev/null)" ]; then
    step "keystone running" true
else
    # Independent, and each keystone-manage call is seconds of imports.
    keys >"$LOG_DIR/keystone-keys.out" 2>&1 & KEYS_JOB=$!
    step "keystone database" database
    step "keystone keys (parallel)" wait "$KEYS_JOB" \
        || { cat "$LOG_DIR/keystone-keys.out" >&2; die "Keystone key setup failed"; }
    step "keystone bootstrap" bootstrap
    step "keystone uwsgi start" start_uwsgi
fi
step "keystone provision" provision
