#!/usr/bin/env bash
# Install what nova-snapshot needs on a fresh Debian 12 machine (run as root).
#
# Idempotent: every step checks first and skips work already done, so a
# second run takes a few seconds. Creates:
#   .venv/                 the project virtualenv (requirements + tests + -e .)
#   .stack/glance-venv/    Glance + glanceclient + uWSGI, kept apart from the
#                          project so their pins never fight ours
#   .stack/cinder-venv/    Cinder + cinderclient (+ Debian's rados/rbd
#                          bindings linked in for the RBD driver)
#   .stack/keystone-venv/  Keystone 30 + uWSGI + keystoneclient (provisioning)
#   .stack/clients-venv/   the official clients (openstack, nova), unmodified,
#                          as an operator would use them with .stack/clouds.yaml
#   .stack/tempest-venv/   tempest, for tools/tempest/run.py
set -euo pipefail
source "$(dirname "$0")/common.sh"

APT_PACKAGES="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
qemu-system-x86 qemu-utils qemu-block-extra libvirt-dev pkg-config
busybox-static cpio qemu-guest-agent e2fsprogs
python3-venv python3-dev gcc git curl shellcheck
ceph-mon ceph-mgr ceph-osd ceph-common python3-rbd python3-rados"
# Only installed when missing: the machines we run on already have them
# running, and reinstalling would not touch a running server anyway.
APT_IF_ABSENT="rabbitmq-server postgresql"
GLANCE_PACKAGES="glance python-glanceclient uwsgi psycopg2-binary"
CINDER_VENV=$STACK_DIR/cinder-venv
CINDER_PACKAGES="cinder python-cinderclient psycopg2-binary"
# tempest for tools/tempest/run.py, pinned: its tests are the contract.
TEMPEST_VENV=$STACK_DIR/tempest-venv
TEMPEST_PACKAGES="tempest==47.0.0"
KEYSTONE_PACKAGES="keystone>=30,<31 uwsgi psycopg2-binary python-keystoneclient"
CLIENTS_PACKAGES="python-openstackclient python-novaclient"

[ "$(id -u)" -eq 0 ] || die "install.sh must run as root"
mkdir -p "$STACK_DIR" "$LOG_DIR"
# One install.sh at a time: two pip runs into one venv corrupt it.
exec 9>"$STACK_DIR/.install.lock"
flock 9

# missing_packages PKG...: print the ones dpkg does not have installed.
missing_packages() {
    local installed
    # dpkg-query fails for names it has never seen; that just means missing.
    installed=$( (dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true) \
        | awk '$NF == "installed" {print $1}')
    local p
    for p in "$@"; do
        grep -qx "$p" <<<"$installed" || echo "$p"
    done
}

apt_packages() {
    local missing
    missing=$(missing_packages $APT_PACKAGES $APT_IF_ABSENT)
    # tools/guest/build.sh resolves the kernel package from the apt lists,
    # which container images often ship without.
    if [ -z "$missing" ] && compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    [ -n "$missing" ] || return 0
    log "apt: installing" $missing
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends $missing >"$LOG_DIR/apt-install.log"
}

# libvirtd will not start its QEMU driver until these exist.
libvirt_users() {
    getent group kvm >/dev/null || groupadd -r kvm
    getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
    id libvirt-qemu >/dev/null 2>&1 \
        || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt \
            -s /usr/sbin/nologin libvirt-qemu
}

# set_conf FILE KEY VALUE: make "KEY = VALUE" the only active setting.
set_conf() {
    local file=$1 key=$2 value=$3
    if grep -qE "^\s*${key}\s*=" "$file"; then
        sed -i -E "s|^\s*${key}\s*=.*|${key} = ${value}|" "$file"
    else
        printf '%s = %s\n' "$key" "$value" >>"$file"
    fi
}

# QEMU runs as root with no security driver: there is no SELinux/AppArmor
# here, and images under .stack/ must stay readable by us after a run.
qemu_conf() {
    local f=/etc/libvirt/qemu.conf
    mkdir -p /etc/libvirt
    [ -f "$f" ] || printf '# Written by nova-snapshot tools/stack/install.sh\n' >"$f"
    set_conf "$f" user '"root"'
    set_conf "$f" group '"root"'
    set_conf "$f" security_driver '"none"'
    set_conf "$f" remember_owner 0
}

# venv_install VENV MARKER_INPUT PIP_ARGS...: (re)install when the inputs
# changed since the last successful run (hash kept in VENV/.installed).
venv_install() {
    local venv=$1 inputs=$2 logf
    shift 2
    logf=$LOG_DIR/pip-$(basename "$venv").log
    if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$inputs" ]; then
        return 0
    fi
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" >"$logf" 2>&1 \
        || { tail -20 "$logf" >&2; return 1; }
    echo "$inputs" >"$venv/.installed"
}

tempest_venv() {
    venv_install "$TEMPEST_VENV" "$TEMPEST_PACKAGES" $TEMPEST_PACKAGES
}

project_venv() {
    local inputs
    inputs=$(cat requirements.txt test-requirements.txt setup.cfg | sha256sum)
    venv_install "$PROJECT_VENV" "$inputs" \
        -r requirements.txt -r test-requirements.txt -e .
}

glance_venv() {
    venv_install "$GLANCE_VENV" "$GLANCE_PACKAGES" $GLANCE_PACKAGES
}

# Cinder's RBD driver imports rados and rbd, which exist only as Debian's
# compiled bindings (python3-rados/-rbd): link them into the venv.
cinder_venv() {
    venv_install "$CINDER_VENV" "$CINDER_PACKAGES" $CINDER_PACKAGES
    local site mod so
    site=$("$CINDER_VENV/bin/python" -c \
        'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    for mod in rados rbd; do
        so=$(ls /usr/lib/python3/dist-packages/$mod.cpython-*.so 2>/dev/null | head -1)
        [ -n "$so" ] || die "python3-$mod is not installed"
        ln -sfn "$so" "$site/$(basename "$so")"
    done
    "$CINDER_VENV/bin/python" -c 'import rados, rbd' \
        || die "the Cinder venv cannot import rados/rbd"
}

keystone_venv() {
    venv_install "$KEYSTONE_VENV" "$KEYSTONE_PACKAGES" $KEYSTONE_PACKAGES
}

clients_venv() {
    venv_install "$CLIENTS_VENV" "$CLIENTS_PACKAGES" $CLIENTS_PACKAGES
}

cd "$TOP_DIR"
T0=$(now_us)
step "apt packages" apt_packages
step "libvirt users/groups" libvirt_users
step "qemu.conf" qemu_conf
# The venvs are independent: install them side by side.
step "glance venv (background)" true
# Keystone after Glance: both need uwsgi, which pip compiles (no wheel on
# PyPI); in sequence the second install takes the first one's cached wheel.
{ glance_venv && keystone_venv; } & GLANCE_JOB=$!
step "cinder venv (background)" true
cinder_venv & CINDER_JOB=$!
step "clients venv (background)" true
clients_venv & CLIENTS_JOB=$!
rc=0
step "tempest venv (background)" true
tempest_venv & TEMPEST_JOB=$!
step "project venv" project_venv || rc=1
step "glance+keystone venvs (wait)" wait "$GLANCE_JOB" || rc=1
step "cinder venv (wait)" wait "$CINDER_JOB" || rc=1
step "tempest venv (wait)" wait "$TEMPEST_JOB" || rc=1
step "clients venv (wait)" wait "$CLIENTS_JOB" || rc=1
[ $rc -eq 0 ] || die "a virtualenv install failed (logs in $LOG_DIR)"
MS=$(( ($(now_us) - T0) / 1000 ))
log "install.sh done in $((MS / 1000)).$(printf '%03d' $((MS % 1000)))s"
