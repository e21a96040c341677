#!/bin/bash
# Build the tiny nova-snapshot test guest from Debian packages only.
#
#   tools/guest/build.sh [OUTDIR]      (default: <repo>/.stack/guest)
#
# Writes to OUTDIR:
#   kernel           vmlinuz of Debian's cloud kernel (direct kernel boot)
#   initramfs.gz     busybox-static + virtio modules + qemu-ga, /init = init.sh
#   disk.qcow2       64 MiB blank qcow2 root disk (the guest keeps a tick
#                    counter in its sector 1); copy it before booting it
#   disk-ext4.qcow2  the same with an ext4 filesystem (1 KiB blocks, so
#                    sector 1 stays free), for guest-agent quiesce tests
#   manifest         what went in, versions and sha256 sums
#
# Boot: <kernel>, <initrd>, <cmdline>console=ttyS0</cmdline>, virtio disk vda,
# serial console to a file. The guest prints "nova-snapshot-guest: last tick
# <N|none>" and then "nova-snapshot-guest: tick <N>" lines.
# A second virtio disk (vdb, e.g. a data volume; hot-plugged ones too) gets
# the same tick in its sector 1, and "nova-snapshot-guest: last tick vdb
# <N|none>" is printed at boot when vdb is there. Either disk made from
# disk-ext4.qcow2 is mounted (vda on /mnt, vdb on /vdb) and each tick also
# goes to a file on it, so a guest-agent freeze stops the ticks.
#
# Re-running is cheap: nothing is rebuilt while every output is newer than
# this script and init.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUTDIR=${1:-$REPO/.stack/guest}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

OUTPUTS=(kernel initramfs.gz disk.qcow2 disk-ext4.qcow2 manifest)
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
         virtio_pci virtio_blk virtio_console)

up_to_date() {
    local f
    for f in "${OUTPUTS[@]}"; do
        [ -e "$OUTDIR/$f" ] || return 1
        [ "$OUTDIR/$f" -nt "$HERE/build.sh" ] || return 1
        [ "$OUTDIR/$f" -nt "$HERE/init.sh" ] || return 1
    done
}

if up_to_date; then
    echo "guest is up to date in $OUTDIR"
    exit 0
fi

log() { echo "guest: $*" >&2; }

# Host tools; the guest's busybox and qemu-ga are taken from these packages.
need_pkgs=()
for pair in busybox:busybox-static cpio:cpio qemu-img:qemu-utils \
            mkfs.ext4:e2fsprogs; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need_pkgs+=("${pair#*:}")
done
[ -x /usr/sbin/qemu-ga ] || need_pkgs+=(qemu-guest-agent)
# busybox may come from the dynamic "busybox" package; we need the static one.
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${need_pkgs[@]}" >&2
fi

CACHE=$OUTDIR/cache
mkdir -p "$CACHE"
# The metapackage names the current kernel ABI package.
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')
if [ -z "$KPKG" ]; then
    log "cannot resolve linux-image-cloud-amd64 (run apt-get update?)"
    exit 1
fi
KDEB=$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$KDEB" ]; then
    log "downloading $KPKG"
    # apt's _apt user cannot write to root-only dirs; the warning is harmless.
    (cd "$CACHE" && chmod 755 . && apt-get download -q "$KPKG" >&2)
    KDEB=$(ls "$CACHE/${KPKG}"_*.deb | head -n 1)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nova-snapshot-guest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

dpkg -x "$KDEB" "$WORK/k"
VMLINUZ=$(ls "$WORK"/k/boot/vmlinuz-* | head -n 1)
KVER=${VMLINUZ##*/vmlinuz-}

ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,mnt,lib/modules,var}
ln -s ../run "$ROOT/var/run"
cp /bin/busybox "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do
    [ -e "$ROOT/bin/$applet" ] || ln -s busybox "$ROOT/bin/$applet"
done
for mod in "${MODULES[@]}"; do
    ko=$(find "$WORK/k/lib/modules/$KVER/kernel" -name "$mod.ko" | head -n 1)
    if [ -n "$ko" ]; then
        cp "$ko" "$ROOT/lib/modules/$mod.ko"
    fi
done

# qemu-ga and the shared libraries it needs, at the same paths.
cp /usr/sbin/qemu-ga "$ROOT/usr/sbin/qemu-ga"
for lib in $(ldd /usr/sbin/qemu-ga | awk '/=>/ {print $3} /^\s*\/.*ld-linux/ {print $1}'); do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
done

install -m 0755 "$HERE/init.sh" "$ROOT/init"

cp "$VMLINUZ" "$OUTDIR/kernel.tmp"
(cd "$ROOT" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) |
    gzip -6 > "$OUTDIR/initramfs.gz.tmp"

rm -f "$OUTDIR/disk.qcow2.tmp" "$WORK/ext4.raw"
qemu-img create -q -f qcow2 "$OUTDIR/disk.qcow2.tmp" 64M
truncate -s 64M "$WORK/ext4.raw"
mkfs.ext4 -q -F -b 1024 -L nsguest "$WORK/ext4.raw"
qemu-img convert -q -f raw -O qcow2 "$WORK/ext4.raw" "$OUTDIR/disk-ext4.qcow2.tmp"

mv -f "$OUTDIR/kernel.tmp" "$OUTDIR/kernel"
mv -f "$OUTDIR/initramfs.gz.tmp" "$OUTDIR/initramfs.gz"
mv -f "$OUTDIR/disk.qcow2.tmp" "$OUTDIR/disk.qcow2"
mv -f "$OUTDIR/disk-ext4.qcow2.tmp" "$OUTDIR/disk-ext4.qcow2"

{
    echo "# nova-snapshot test guest, built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel_package=$KPKG $(dpkg-deb -f "$KDEB" Version)"
    echo "kernel_release=$KVER"
    echo "busybox=$(dpkg-query -W -f '${Version}' busybox-static)"
    echo "qemu_guest_agent=$(dpkg-query -W -f '${Version}' qemu-guest-agent)"
    echo "modules=${MODULES[*]}"
    echo "cmdline=console=ttyS0"
    echo "tick_sector=1"
    echo "tick_disks=vda vdb"
    for f in kernel initramfs.gz disk.qcow2 disk-ext4.qcow2; do
        echo "sha256 $f $(sha256sum "$OUTDIR/$f" | cut -d' ' -f1)"
    done
} > "$OUTDIR/manifest.tmp"
mv -f "$OUTDIR/manifest.tmp" "$OUTDIR/manifest"

log "built guest in $OUTDIR"
