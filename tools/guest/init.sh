#!/bin/busybox sh
# shellcheck shell=dash  # busybox ash, checked as the closest POSIX shell
# /init of the nova-snapshot test guest (runs as PID 1 from the initramfs).
#
# The guest keeps a counter in sector 1 of its root disk and bumps it every
# ~50 ms, so its disk changes all the time: a snapshot must hold exactly one
# tick, and a guest booted from that snapshot prints the tick it found.
# Sector 1 (bytes 512-1023) is never used by ext4 with 1 KiB blocks, so the
# counter and a filesystem can share the disk.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "nova-snapshot-guest: $*" > /dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /var/run /tmp /mnt

# The cloud kernel builds virtio as modules; any other order fails with
# "Unknown symbol".
for mod in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
           virtio_pci virtio_blk virtio_console; do
    [ -f "/lib/modules/$mod.ko" ] && insmod "/lib/modules/$mod.ko"
done

i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if [ ! -b /dev/vda ]; then
    say "no root disk /dev/vda"
    while :; do sleep 3600; done
fi

last=$(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | tr -d '\000' | head -n 1)
n=none
case "$last" in
    "tick "*) n=${last#tick } ;;
esac
case "$n" in
    ''|*[!0-9]*) n=none ;;
esac
say "last tick $n"
[ "$n" = none ] && n=0

# A second disk (a data volume) gets the same tick in its sector 1. The
# kernel names every virtio disk it found at once: wait until there are as
# many /dev/vd? nodes as virtio block devices (id 0x0002) in sysfs.
nblk=$(cat /sys/bus/virtio/devices/*/device 2>/dev/null | grep -c '^0x0002$')
i=0
while [ "$(ls /dev/vd? 2>/dev/null | wc -l)" -lt "$nblk" ] && [ "$i" -lt 40 ]; do
    sleep 0.05; i=$((i + 1))
done
if [ -b /dev/vdb ]; then
    lastb=$(dd if=/dev/vdb bs=512 skip=1 count=1 2>/dev/null | tr -d '\000' | head -n 1)
    nb=none
    case "$lastb" in
        "tick "*) nb=${lastb#tick } ;;
    esac
    case "$nb" in
        ''|*[!0-9]*) nb=none ;;
    esac
    say "last tick vdb $nb"
fi

# A filesystem on the disk (the ext4 variant) is mounted so that the guest
# agent has something to freeze.
# (busybox-static has no blkid: look for the ext2/3/4 superblock magic 0xEF53
# at byte 1080.)
magic=$(dd if=/dev/vda bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
if [ "$magic" = 53ef ]; then
    mount -t ext4 /dev/vda /mnt && say "mounted /dev/vda on /mnt"
fi
if [ -b /dev/vdb ]; then
    magic=$(dd if=/dev/vdb bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
    if [ "$magic" = 53ef ]; then
        mkdir -p /vdb
        mount -t ext4 /dev/vdb /vdb && say "mounted /dev/vdb on /vdb"
    fi
fi
# Each tick is also written to a file on every mounted filesystem. While
# the agent has them frozen that write blocks, so the loop stops: a frozen
# guest writes no tick to any disk, and the raw sectors of all disks agree.
fsfiles=
grep -q ' /mnt ext4 ' /proc/mounts && fsfiles="$fsfiles /mnt/tick"
grep -q ' /vdb ext4 ' /proc/mounts && fsfiles="$fsfiles /vdb/tick"

# No udev here, so the agent's port is only /dev/vport0p1 (present when the
# domain has the org.qemu.guest_agent.0 channel). It shows up shortly after
# virtio_console loads; wait for it in the background.
(
    j=0
    while [ ! -c /dev/vport0p1 ] && [ "$j" -lt 60 ]; do sleep 0.05; j=$((j + 1)); done
    if [ -c /dev/vport0p1 ]; then
        qemu-ga -d -m virtio-serial -p /dev/vport0p1 -f /run/qemu-ga.pid \
            && say "qemu-ga started"
    fi
) &

# nsguest.print_every=N on the kernel command line prints every Nth tick
# (the benchmark uses 1 to time the gaps the guest sees); default 20.
every=20
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        nsguest.print_every=*) every=${arg#nsguest.print_every=} ;;
    esac
done
case "$every" in
    ''|*[!0-9]*|0) every=20 ;;
esac

first=1
while :; do
    n=$((n + 1))
    printf 'tick %d\n' "$n" | dd of=/dev/vda bs=512 seek=1 count=1 \
        conv=sync,notrunc,fsync 2>/dev/null
    # Checked every tick: a volume attached later is written from then on.
    if [ -b /dev/vdb ]; then
        printf 'tick %d\n' "$n" | dd of=/dev/vdb bs=512 seek=1 count=1 \
            conv=sync,notrunc,fsync 2>/dev/null
    fi
    for f in $fsfiles; do
        printf 'tick %d\n' "$n" > "$f"
    done
    if [ "$first" = 1 ] || [ $((n % every)) -eq 0 ]; then
        say "tick $n"
        first=0
    fi
    sleep 0.05
done
