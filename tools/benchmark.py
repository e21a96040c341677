"""createImage benchmark: guest pause, end-to-end time, bytes, vs qemu-img.

For a running guest whose disk holds N MiB (default 512) of non-zero data,
this prints, all measured in one run on this machine:

* the pause the guest experiences (longest gap between the ticks it prints,
  on the host clock) during a live snapshot (``live-push``: push backup to a
  local file, then upload; ``live-stream``: pull backup read over NBD while
  it uploads) and during a suspend snapshot, next to
  the gap in a quiet window of the same length (the guest's own jitter);
* the end-to-end createImage time (request to an active image with the
  server's task state cleared) for each path;
* the bytes uploaded to Glance against the bytes allocated in the disk;
* the ratio of the end-to-end time to a plain ``qemu-img convert`` of the
  same disk to a local qcow2 file, timed in the same run.

With ``--volumes`` it also runs the volume-backed half
(``tools/benchmark_volumes.py``: freeze window and createImage time for 1, 4
and 8 attached Cinder volumes, snapshot time by volume size, restore time);
``--no-images`` skips the image-backed half.

Usage: tools/benchmark.sh [--data-mib N] [--json FILE] [--volumes]
                          [--no-images] [--volume-repeats N]
It prints numbers; it asserts nothing about them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from nova_snapshot import conf as ns_conf  # noqa: E402
from nova_snapshot.image import glance  # noqa: E402
from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402
from tests.functional.fixtures import guest as guest_fixture  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402
from tests.functional.fixtures import watchers  # noqa: E402

CMDLINE = 'console=ttyS0 nsguest.print_every=1'

# Each row restarts the compute service with these options.
PATHS = (
    ('live-push', {'libvirt': {'live_snapshot_method': 'push'}}),
    ('live-stream', {'libvirt': {'live_snapshot_method': 'stream'}}),
    ('suspend', {'libvirt': {'live_snapshot': False}}),
)


def make_data_disk(guest_dir, data_mib, workdir):
    """A qcow2 disk: the guest's blank disk plus N MiB of random data.

    Data starts at 1 MiB so the tick sector stays the guest's; random bytes
    keep qcow2 from treating anything as zero.
    """
    raw = os.path.join(workdir, 'bench.raw')
    disk = os.path.join(workdir, 'bench.qcow2')
    size_mib = data_mib + 64
    with open(raw, 'wb') as out:
        out.truncate(size_mib * 2 ** 20)
        out.seek(2 ** 20)
        for _ in range(data_mib):
            out.write(os.urandom(2 ** 20))
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    disk], check=True)
    os.unlink(raw)
    return disk


def allocated_bytes(path):
    """Bytes of guest data the disk (with its backing chain) holds."""
    out = subprocess.run(['qemu-img', 'map', '-U', '--output=json', path],
                         check=True, capture_output=True, text=True).stdout
    return sum(extent['length'] for extent in json.loads(out)
               if extent.get('data'))


def time_qemu_img_convert(disk, workdir):
    target = os.path.join(workdir, 'baseline.qcow2')
    start = time.monotonic()
    subprocess.run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'qcow2',
                    disk, target], check=True)
    elapsed = time.monotonic() - start
    size = os.path.getsize(target)
    os.unlink(target)
    return elapsed, size


def capture_facts(db, server_id):
    """What the driver reported about the newest snapshot (event details)."""
    for action in db.actions_get(server_id):
        if action['action'] != 'createImage':
            continue
        detail = db.action_get_by_request_id(server_id, action['request_id'])
        for event in detail.get('events', []):
            if event.get('details'):
                return dict(item.split('=', 1)
                            for item in event['details'].split(', '))
    return {}


def _cpu_seconds(pid):
    """User + system CPU seconds of one process (Linux /proc)."""
    try:
        with open('/proc/%d/stat' % pid) as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def cpu_accounts(deployment, stack, domain):
    """Who may burn CPU during a snapshot: name -> list of pids."""
    accounts = {'compute': [deployment.processes[
        'compute-%s' % deployment.hosts[0]].pid]}
    with open('/run/libvirt/qemu/%s.pid' % domain.name()) as f:
        accounts['qemu'] = [int(f.read().split()[0])]
    with open(os.path.join(stack['STACK_DIR'], 'pids',
                           'glance-uwsgi.pid')) as f:
        master = int(f.read().split()[0])
    accounts['glance'] = [master] + deployment_fixture.child_pids(master)
    return accounts


def cpu_snapshot(accounts):
    return {name: sum(_cpu_seconds(pid) for pid in pids)
            for name, pids in accounts.items()}


def snapshot(client, image_api, ctx, server_id, watcher, name, accounts):
    """Time one createImage; ``accounts()`` names the pids to charge."""
    pids_before = accounts()
    cpu_before = cpu_snapshot(pids_before)
    start = time.monotonic()
    image_id = client.create_image(server_id, name)
    # Poll our API, not Glance: every Glance GET costs its worker CPU that
    # the upload it is receiving would otherwise have (measured: ~1.5 s of
    # Glance CPU per 512 MiB snapshot at a 50 ms poll).
    while client.get_server(server_id)['OS-EXT-STS:task_state'] is not None:
        time.sleep(0.05)
    end = time.monotonic()
    image = image_api.get(ctx, image_id)
    if image['status'] != 'active':
        raise RuntimeError('snapshot %s is %s: %s' % (
            image_id, image['status'],
            client.get_server(server_id).get('fault')))
    pids_after = accounts()
    cpu_after = cpu_snapshot(pids_before)
    return {'image_id': image_id, 'seconds': end - start,
            # None where the process was replaced (suspend restarts QEMU)
            # and its CPU time went with it.
            'cpu_seconds': {
                name: (round(cpu_after[name] - cpu_before[name], 2)
                       if pids_after[name] == pids_before[name] else None)
                for name in pids_before},
            'bytes_uploaded': image['size'],
            'guest_max_tick_gap': watcher.max_gap(start, end)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-mib', type=int, default=512)
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--paths', default=','.join(p for p, _ in PATHS),
                        help='comma-separated image-backed paths to run '
                             '(default: all of %(default)s)')
    parser.add_argument('--volumes', action='store_true',
                        help='also run the volume-backed benchmark')
    parser.add_argument('--no-images', action='store_true',
                        help='skip the image-backed benchmark')
    parser.add_argument('--volume-repeats', type=int, default=3,
                        help='createImage runs per volume count, snapshot '
                             'runs per volume size')
    parser.add_argument('--volume-data-mib', type=int, default=256,
                        help='MiB written to each volume of the size test')
    args = parser.parse_args()
    known = dict(PATHS)
    args.paths = [p for p in args.paths.split(',') if p]
    unknown = [p for p in args.paths if p not in known]
    if unknown or not args.paths:
        parser.error('--paths: choose from %s' % ', '.join(known))
    args.paths = [(p, known[p]) for p in args.paths]

    stack = stack_fixture.read_stack_env()
    results = {}
    if not args.no_images:
        results['images'] = image_backed(args, stack)
    if args.volumes:
        import benchmark_volumes
        results['volumes'] = benchmark_volumes.main(
            stack, repeats=args.volume_repeats, data_mib=args.volume_data_mib)
    if args.json:
        # Image-backed only: the file keeps the shape it always had.
        document = results if args.volumes else results['images']
        with open(args.json, 'w') as out:
            json.dump(document, out, indent=2, sort_keys=True)
    return 0


def image_backed(args, stack):
    conf = ns_conf.new_conf([])
    conf.set_override('api_endpoint', stack['GLANCE_URL'], group='glance')
    conf.set_override('auth_mode', 'identity_headers', group='glance')
    image_api = glance.GlanceAPI(conf)
    project = uuid.uuid4().hex
    ctx = guest_fixture.user_context('bench', project)
    workdir = tempfile.mkdtemp(prefix='nova-snapshot-bench-')
    deployment = deployment_fixture.Deployment(stack_env=stack)
    images = []
    results = {'data_mib': args.data_mib}
    try:
        print('preparing a disk with %d MiB of random data' % args.data_mib)
        disk = make_data_disk(stack['GUEST_DIR'], args.data_mib, workdir)
        deployment.start()
        client = deployment.client('bench', project)
        from nova_snapshot.db import api as db_api
        db = db_api.Database(deployment.database_url)
        client_timeout = max(120, args.data_mib // 2)
        base = guest_fixture.upload_tiny_guest(image_api, ctx, stack['GUEST_DIR'],
                                               'bench-guest', disk_path=disk,
                                               command_line=CMDLINE)
        images += [base['id'], base['kernel_id'], base['ramdisk_id']]
        server = client.create_server('bench', base['id'], flavor_ref='2')
        client.wait_for_server(server['id'], timeout=client_timeout)
        domain = deployment.domain(server['id'])
        instance_disk = os.path.join(deployment.state_dir, 'instances',
                                     server['id'], 'disk')
        with watchers.ConsoleTickWatcher(guest_fixture.console_log_path(domain)) as ticks:
            while len(ticks.ticks) < 20:
                time.sleep(0.1)
            results['disk_allocated_bytes'] = allocated_bytes(instance_disk)
            base_s, base_size = time_qemu_img_convert(instance_disk, workdir)
            results['qemu_img_convert_seconds'] = base_s
            results['qemu_img_convert_bytes'] = base_size
            for path, extra_conf in args.paths:
                deployment.stop_compute(deployment.hosts[0])
                deployment.start_compute(deployment.hosts[0], extra_conf)
                deployment.wait_for_compute(deployment.hosts[0])
                # The quiet window also lets the restarted service settle.
                quiet_start = time.monotonic()
                time.sleep(max(5.0, results.get('live-push', {})
                               .get('seconds', 0.0)))
                quiet_gap = ticks.max_gap(quiet_start, time.monotonic())
                res = snapshot(client, image_api, ctx, server['id'], ticks,
                               'bench-%s' % path,
                               lambda: cpu_accounts(deployment, stack,
                                                    domain))
                images.append(res['image_id'])
                res['quiet_max_tick_gap'] = quiet_gap
                res['driver_facts'] = capture_facts(db, server['id'])
                res['ratio_to_qemu_img'] = res['seconds'] / base_s
                res['uploaded_over_allocated'] = (
                    res['bytes_uploaded'] / results['disk_allocated_bytes'])
                results[path] = res
    finally:
        for image_id in images:
            try:
                image_api.delete(ctx, image_id)
            except Exception:
                pass
        deployment.stop()
        subprocess.run(['rm', '-rf', workdir])

    print()
    print('disk: %d MiB of data, %d bytes allocated'
          % (args.data_mib, results['disk_allocated_bytes']))
    print('baseline qemu-img convert to a local qcow2: %.2f s (%d bytes)'
          % (results['qemu_img_convert_seconds'],
             results['qemu_img_convert_bytes']))
    print('%-11s %10s %10s %12s %12s %14s %10s' % (
        'path', 'e2e s', 'x qemu-img', 'pause s', 'jitter s',
        'uploaded B', 'x alloc'))
    for path, _ in args.paths:
        res = results[path]
        print('%-11s %10.2f %10.2f %12.3f %12.3f %14d %10.3f' % (
            path, res['seconds'], res['ratio_to_qemu_img'],
            res['guest_max_tick_gap'] or -1, res['quiet_max_tick_gap'] or -1,
            res['bytes_uploaded'], res['uploaded_over_allocated']))
    print('CPU seconds spent during each snapshot (2 cores: at most 2 x '
          'e2e s)')
    for path, _ in args.paths:
        cpu = results[path]['cpu_seconds']
        print('%-11s %s' % (path, ', '.join(
            '%s %s' % (name, 'n/a' if cpu[name] is None
                       else '%.2f' % cpu[name]) for name in sorted(cpu))))
    for path, _ in args.paths:
        facts = results[path]['driver_facts']
        print('%-11s driver: %s' % (path, ', '.join(
            '%s=%s' % (k, facts[k]) for k in sorted(facts)
            if k.endswith('seconds') or k in ('method', 'live_method'))))
    return results


if __name__ == '__main__':
    sys.exit(main())
