#!/usr/bin/env bash
# Single-node Ceph (1 mon, 1 mgr, 1 bluestore OSD on a sparse file, pool
# "volumes", 127.0.0.1 only) under $STACK_DIR/ceph, for Cinder's RBD driver
# and the libvirt RBD disks. No systemd, no cephadm, nothing in /etc/ceph:
# clients use CEPH_CONF=$STACK_DIR/ceph/ceph.conf.
#
# Idempotent and cheap when warm:
#   - cluster built and every daemon alive  -> nothing to do (~0.3 s)
#   - cluster built, some daemon dead       -> restart those from their
#     state (data and the Cinder volumes in it survive a reboot)
#   - no finished cluster (.ready missing)  -> wipe and build from scratch
#     (~6 s), and write a new fsid that cinder-up.sh notices
# Facts behind the settings: /work/shared/reference/environment-ceph.md.
set -euo pipefail
source "$(dirname "$0")/ceph-common.sh"

IP=127.0.0.1
OSD_SIZE_GB=${CEPH_OSD_SIZE_GB:-20}
# Every RBD snapshot create waits for one monitor Paxos proposal: 1 s at
# Ceph's default, ~55 ms at 0.05.
PAXOS=${CEPH_PAXOS:-0.05}
PG_NUM=${CEPH_PG_NUM:-32}

T0=$(now_us)
# lap WHAT: log WHAT with the seconds since the script started.
lap() {
    local ms=$(( ($(now_us) - T0) / 1000 ))
    log "ceph: $* (+$((ms / 1000)).$(printf '%03d' $((ms % 1000)))s)"
}

ceph_q() {
    ceph -c "$CEPH_CONF" --connect-timeout 3 "$@"
}

# ceph_wait WHAT SECONDS CMD...: poll CMD; fail early if a daemon of ours died.
ceph_wait() {
    local what=$1 limit=$2 end d
    shift 2
    end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        for d in $CEPH_DAEMONS; do
            if [ -e "$CEPH_DIR/run/$d.pid" ] && ! ceph_daemon_alive "$d"; then
                grep -E ' -1 |ERROR|error' "$CEPH_DIR/log/$d.log" 2>/dev/null \
                    | tail -5 >&2 || true
                die "ceph: $d died while waiting for: $what"
            fi
        done
        [ "$(date +%s)" -lt "$end" ] || die "ceph: timeout (${limit}s) waiting for: $what"
        sleep 0.2
    done
}

write_conf() {
    local fsid=$1
    cat >"$CEPH_CONF" <<EOF
# Written by nova-snapshot tools/stack/ceph-up.sh
[global]
fsid = $fsid
mon_host = [v2:$IP:$CEPH_PORT_V2,v1:$IP:$CEPH_PORT_V1]
public_addr = $IP
cluster_addr = $IP
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $CEPH_KEYRING
run_dir = $CEPH_DIR/run
crash_dir = $CEPH_DIR/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
auth_allow_insecure_global_id_reclaim = false
osd_crush_chooseleaf_type = 0
[mon]
mon_data = $CEPH_DIR/mon/\$id
log_file = $CEPH_DIR/log/\$name.log
pid_file = $CEPH_DIR/run/\$name.pid
mon_cluster_log_file = $CEPH_DIR/log/cluster.\$channel.log
mon_data_avail_warn = 2
mon_data_avail_crit = 1
paxos_propose_interval = $PAXOS
[mgr]
mgr_data = $CEPH_DIR/mgr/\$id
log_file = $CEPH_DIR/log/\$name.log
pid_file = $CEPH_DIR/run/\$name.pid
[osd]
osd_data = $CEPH_DIR/osd/\$id
log_file = $CEPH_DIR/log/\$name.log
pid_file = $CEPH_DIR/run/\$name.pid
osd_objectstore = bluestore
osd_memory_target = 1073741824
bluestore_block_size = $((OSD_SIZE_GB * 1024 * 1024 * 1024))
bluestore_block_create = true
EOF
}

# One keyring for the mon, client.admin and the local mgr and osd: the
# daemons find their own keys in it by name (ceph.conf "keyring").
write_keyring() {
    rm -f "$CEPH_KEYRING"
    ceph-authtool --create-keyring "$CEPH_KEYRING" --gen-key -n mon. \
        --cap mon 'allow *' >/dev/null
    ceph-authtool "$CEPH_KEYRING" --gen-key -n client.admin --cap mon 'allow *' \
        --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool "$CEPH_KEYRING" --gen-key -n mgr.x \
        --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
    ceph-authtool "$CEPH_KEYRING" --gen-key -n osd.0 --cap mon 'allow profile osd' \
        --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
    chmod 600 "$CEPH_KEYRING"
}

# The daemons fork and write their own pid files; "-c CONF" puts our
# config path into their cmdline so stop scripts can tell them apart.
# Their pre-fork chatter ("Falling back to public interface") goes to a log.
# "8>&-": the daemons must not inherit (and hold forever) our lock.
start_mon() { ceph-mon -c "$CEPH_CONF" -i a >>"$CEPH_DIR/log/start.out" 2>&1 8>&-; }
start_mgr() { ceph-mgr -c "$CEPH_CONF" -i x >>"$CEPH_DIR/log/start.out" 2>&1 8>&-; }
start_osd() { ceph-osd -c "$CEPH_CONF" -i 0 >>"$CEPH_DIR/log/start.out" 2>&1 8>&-; }

mon_answers() { ceph_q mon stat; }
osd_up() { ceph_q osd dump 2>/dev/null | grep -q '^osd\.0 up'; }
mgr_active() { ceph_q mgr stat 2>/dev/null | grep -q '"available": true'; }
pool_writable() {
    timeout 5 rados -c "$CEPH_CONF" -p "$CEPH_POOL" put nova-snapshot-probe "$CEPH_CONF" \
        && rados -c "$CEPH_CONF" -p "$CEPH_POOL" rm nova-snapshot-probe
}

port_taken() {
    (exec 3<>"/dev/tcp/$IP/$1") 2>/dev/null
}

build() {
    local fsid osd_uuid osd_id
    if [ -e "$CEPH_DIR" ]; then
        log "ceph: unfinished cluster in $CEPH_DIR; wiping it"
        "$STACK_TOOLS/ceph-down.sh" --wipe
    fi
    ! port_taken "$CEPH_PORT_V1" && ! port_taken "$CEPH_PORT_V2" \
        || die "ceph: something else listens on $IP:$CEPH_PORT_V2/$CEPH_PORT_V1 (set CEPH_PORT_V2/CEPH_PORT_V1)"
    mkdir -p "$CEPH_DIR"/{mon/a,mgr/x,osd/0,run,log,crash}
    fsid=$(uuidgen)
    write_conf "$fsid"
    write_keyring
    monmaptool --create --fsid "$fsid" \
        --addv a "[v2:$IP:$CEPH_PORT_V2,v1:$IP:$CEPH_PORT_V1]" "$CEPH_DIR/monmap" >/dev/null
    ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" \
        --keyring "$CEPH_KEYRING"
    start_mon
    ceph_wait "mon quorum" 30 mon_answers
    lap "mon answers"
    start_mgr
    osd_uuid=$(uuidgen)
    osd_id=$(ceph_q osd new "$osd_uuid")
    [ "$osd_id" = 0 ] || die "ceph: expected osd.0, got osd.$osd_id"
    ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
        >"$CEPH_DIR/log/osd-mkfs.log" 2>&1 \
        || { cat "$CEPH_DIR/log/osd-mkfs.log" >&2; die "ceph: osd mkfs failed"; }
    lap "osd.0 mkfs done"
    start_osd
    ceph_wait "osd.0 up" 60 osd_up
    lap "osd.0 up"
    ceph_q osd pool create "$CEPH_POOL" "$PG_NUM" "$PG_NUM" >/dev/null 2>&1
    ceph_q osd pool application enable "$CEPH_POOL" rbd >/dev/null 2>&1
    rbd -c "$CEPH_CONF" pool init "$CEPH_POOL"
    # RBD clone v2: without it, deleting a Cinder snapshot that has clone
    # volumes flattens them (a full copy, ~5 s) instead of trashing it.
    ceph_q osd set-require-min-compat-client mimic >/dev/null 2>&1
    ceph_wait "a write to pool $CEPH_POOL" 60 pool_writable
    lap "pool $CEPH_POOL accepts writes"
    # What Cinder's RBD driver and QEMU connect as (the caps the Cinder and
    # Nova guides give it).
    ceph_q auth get-or-create "client.$CEPH_USER" mon 'profile rbd' \
        osd "profile rbd pool=$CEPH_POOL" mgr "profile rbd pool=$CEPH_POOL" \
        >>"$CEPH_KEYRING"
    # Cinder's RBD driver reports capacity from "ceph df", which the mgr
    # feeds; without it the scheduler may see no free space.
    ceph_wait "active mgr" 60 mgr_active
    echo "$fsid" >"$CEPH_DIR/.ready"
    lap "new cluster $fsid ready"
}

restart() {
    local d started=
    # mon first: mgr and osd need it to boot.
    for d in $CEPH_DAEMONS; do
        ceph_daemon_alive "$d" && continue
        rm -f "$CEPH_DIR/run/$d.pid"
        case $d in
            mon.a) start_mon; ceph_wait "mon quorum" 30 mon_answers ;;
            mgr.x) start_mgr ;;
            osd.0) start_osd ;;
        esac
        started="$started $d"
    done
    ceph_wait "osd.0 up" 60 osd_up
    ceph_wait "a write to pool $CEPH_POOL" 60 pool_writable
    ceph_wait "active mgr" 60 mgr_active
    lap "restarted$started"
}

[ "$(id -u)" -eq 0 ] || die "ceph-up.sh must run as root"
command -v ceph-mon >/dev/null || die "ceph-mon is not installed; run tools/stack/install.sh"
# One ceph-up.sh at a time (start.sh serializes itself, direct calls do not).
mkdir -p "$STACK_DIR"
exec 8>"$STACK_DIR/.ceph.lock"
flock 8
if [ -f "$CEPH_DIR/.ready" ] && ! grep -q '^auth_client_required = cephx' "$CEPH_CONF"; then
    # Made by an older checkout with auth none: clients now expect cephx.
    log "ceph: cluster in $CEPH_DIR has no cephx; rebuilding it"
    "$STACK_TOOLS/ceph-down.sh" --wipe
fi
if [ ! -f "$CEPH_DIR/.ready" ]; then
    build
else
    all_alive=1
    for d in $CEPH_DAEMONS; do
        ceph_daemon_alive "$d" || all_alive=
    done
    # Warm path: pids checked by cmdline and the mon port answering; a
    # ceph CLI call would cost ~1 s of Python start-up.
    if [ -n "$all_alive" ] && port_taken "$CEPH_PORT_V2"; then
        exit 0
    fi
    restart
fi
