# Shared settings of tools/stack/ceph-up.sh and ceph-down.sh. Sourced.
# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the scripts that source it
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CEPH_DIR=$STACK_DIR/ceph
CEPH_CONF=$CEPH_DIR/ceph.conf
# cephx, as in production: every daemon and client.admin have keys in one
# local keyring (ceph.conf names it); Cinder and QEMU use client.cinder.
CEPH_KEYRING=$CEPH_DIR/keyring
CEPH_USER=cinder
# The libvirt secret holding client.cinder's key on this host, the UUID
# Cinder hands out as rbd_secret_uuid (fixed: one per stack, like Nova's).
CEPH_SECRET_UUID=${CEPH_SECRET_UUID:-6a1c2e3f-9b7d-4c55-8e21-0f4d3b2a1c90}
CEPH_POOL=${CEPH_POOL:-volumes}
# Ceph's standard mon ports; override both to run beside another cluster.
CEPH_PORT_V2=${CEPH_PORT_V2:-3300}
CEPH_PORT_V1=${CEPH_PORT_V1:-6789}
# Start order (stop order is the reverse of the OSD-first rule in ceph-down).
CEPH_DAEMONS="mon.a mgr.x osd.0"
export CEPH_CONF

# ceph_daemon_alive NAME: the pid file names a live ceph daemon started with
# our ceph.conf (a recycled pid is never taken for ours).
ceph_daemon_alive() {
    local f=$CEPH_DIR/run/$1.pid pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
        | grep -qE "ceph-(mon|mgr|osd) -c $CEPH_CONF "
}
