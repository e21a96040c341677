"""Volume-backed createImage benchmark: freeze window, totals, restore.

Run from ``tools/benchmark.py --volumes`` (``--no-images`` skips the
image-backed half). Against the real Cinder on Ceph RBD, Glance, libvirt
and the guest agent in the ext4 tiny guest, it measures:

* for servers booted from a 1 GiB root volume with 1, 4 and 8 blank 1 GiB
  data volumes attached (vdb, vdb..vde, vdb..vdi; that is 2, 5 and 9
  volumes to snapshot): the freeze window the compute service records in
  the image (``nova_snapshot_freeze_ms``) and the total createImage time,
  request to the 202 (the image is active when the API answers);
* the Cinder snapshot time (create -> available) of an in-use 1 GiB and an
  in-use 10 GiB volume, each with the same amount of data written;
* the restore time (POST /servers with the snapshot image -> ACTIVE) for
  the 1- and the 8-data-volume images.

It prints numbers next to the targets of issue 3; it asserts nothing.
Everything it creates (servers, volumes, snapshots, images) is deleted,
and the project's Cinder quotas are reset.
"""

import json
import os
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nova_snapshot import conf as ns_conf  # noqa: E402
from nova_snapshot.image import glance  # noqa: E402
from nova_snapshot.volume import cinder  # noqa: E402
from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402
from tests.functional.fixtures import guest as guest_fixture  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402

TICK = r'nova-snapshot-guest: tick \d+'


class VolumeBenchmark:

    def __init__(self, stack, counts=(1, 4, 8), repeats=3, data_mib=256,
                 sizes=(1, 10)):
        self.stack = stack
        self.counts = counts
        self.repeats = repeats
        self.data_mib = data_mib
        self.sizes = sizes
        conf = ns_conf.new_conf([])
        conf.set_override('api_endpoint', stack['GLANCE_URL'], group='glance')
        conf.set_override('api_endpoint', stack['CINDER_URL'], group='cinder')
        conf.set_override('auth_mode', 'identity_headers', group='glance')
        conf.set_override('auth_mode', 'noauth', group='cinder')
        # Fine polling: the snapshot times are read through these waits.
        conf.set_override('poll_interval', 0.05, group='cinder')
        self.image_api = glance.GlanceAPI(conf)
        self.volume_api = cinder.CinderAPI(conf)
        self.project = uuid.uuid4().hex
        self.ctx = guest_fixture.user_context('bench', self.project)
        self.deployment = deployment_fixture.Deployment(stack_env=stack)
        self.client = None
        self.images = []

    # -- plumbing ------------------------------------------------------------
    def _cinder(self):
        return self.volume_api._client(self.ctx)

    def _boot(self, name, image_ref, bdms, wait_guest=True):
        start = time.monotonic()
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': name, 'imageRef': image_ref, 'flavorRef': '2',
            'networks': 'none', 'block_device_mapping_v2': bdms}})
        if resp.status_code != 202:
            raise RuntimeError('POST /servers: %s %s'
                               % (resp.status_code, resp.text))
        server_id = resp.json()['server']['id']
        self.client.wait_for_server(server_id, timeout=600, interval=0.05)
        active = time.monotonic() - start
        if wait_guest:
            self._wait_console(server_id, TICK)
        return server_id, active

    def _wait_console(self, server_id, pattern, timeout=180):
        import re
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.client.console(server_id)):
            if time.monotonic() > deadline:
                raise RuntimeError('console of %s never showed %r'
                                   % (server_id, pattern))
            time.sleep(0.3)

    def _delete_server(self, server_id):
        self.client.delete_server(server_id)
        self.client.wait_for_server_gone(server_id, timeout=300)

    def _delete_snapshots(self, snapshot_ids):
        for snap_id in snapshot_ids:
            self.volume_api.delete_snapshot(self.ctx, snap_id)
        for snap_id in snapshot_ids:
            self.volume_api.wait_for_snapshot_deleted(self.ctx, snap_id,
                                                      timeout=300)

    def _upload_ext4_root(self, base):
        image = self.image_api.create(self.ctx, dict(
            name='bench-ext4-guest', disk_format='qcow2',
            container_format='bare', visibility='private',
            kernel_id=base['kernel_id'], ramdisk_id=base['ramdisk_id'],
            os_command_line='console=ttyS0', hw_qemu_guest_agent='yes'))
        self.images.append(image['id'])
        path = os.path.join(self.stack['GUEST_DIR'], 'disk-ext4.qcow2')
        with open(path, 'rb') as data:
            self.image_api.upload(self.ctx, image['id'], data,
                                  size=os.path.getsize(path))
        return image['id']

    # -- the three measurements ---------------------------------------------
    def many_volumes(self, root_image_id, count):
        """Boot with ``count`` data volumes; time createImage; restore once."""
        bdms = [{'source_type': 'image', 'destination_type': 'volume',
                 'uuid': root_image_id, 'boot_index': 0, 'volume_size': 1,
                 'delete_on_termination': True}]
        bdms += [{'source_type': 'blank', 'destination_type': 'volume',
                  'volume_size': 1, 'boot_index': -1,
                  'delete_on_termination': True}] * count
        server_id, boot_s = self._boot('bench-bfv-%d' % count, '', bdms)
        self._wait_console(server_id, 'qemu-ga started')
        guest_fixture.wait_for_guest_agent(self.deployment.domain(server_id))
        row = {'data_volumes': count, 'volumes_snapshotted': count + 1,
               'boot_seconds': boot_s, 'runs': []}
        snapshot_ids, restore_image = [], None
        try:
            for attempt in range(self.repeats):
                # Let the guest write a few ticks between cuts.
                time.sleep(2)
                start = time.monotonic()
                image_id = self.client.create_image(
                    server_id, 'bench-bfv-%d-%d' % (count, attempt))
                total = time.monotonic() - start
                self.images.append(image_id)
                image = self.image_api.get(self.ctx, image_id)
                mapping = json.loads(image['block_device_mapping'])
                snapshot_ids += [bdm['snapshot_id'] for bdm in mapping]
                row['runs'].append({
                    'total_seconds': total,
                    'status_at_202': image['status'],
                    'freeze_ms': int(image['nova_snapshot_freeze_ms']),
                    'consistency': image['nova_snapshot_consistency'],
                    'snapshots': len(mapping)})
                restore_image = restore_image or image_id
            for snap_id in snapshot_ids:
                self.volume_api.wait_for_snapshot(self.ctx, snap_id,
                                                  timeout=300)
            restored, restore_s = self._boot(
                'bench-restore-%d' % count, restore_image, [],
                wait_guest=False)
            row['restore_seconds'] = restore_s
            self._delete_server(restored)
        finally:
            # The clones are gone with the restored server: now the
            # snapshots can go, and after them the source volumes.
            self._delete_snapshots(snapshot_ids)
            self._delete_server(server_id)
        for key in ('total_seconds', 'freeze_ms'):
            row['median_' + key] = statistics.median(
                run[key] for run in row['runs'])
        return row

    def snapshot_sizes(self, base_image_id):
        """Cinder snapshot create -> available, in-use volumes of each size."""
        server_id, _ = self._boot('bench-sizes', base_image_id, [],
                                  wait_guest=False)
        volumes = {}
        try:
            for size in self.sizes:
                vol = self.volume_api.create(self.ctx, size,
                                             'bench-%dg' % size)
                volumes[size] = vol['id']
            for size, vol_id in volumes.items():
                self.volume_api.wait_for_volume(self.ctx, vol_id, timeout=300)
                self._write_data(vol_id)
                resp = self.client.request(
                    'POST', '/servers/%s/os-volume_attachments' % server_id,
                    json={'volumeAttachment': {'volumeId': vol_id}})
                if resp.status_code != 200:
                    raise RuntimeError('attach %s: %s %s' % (
                        vol_id, resp.status_code, resp.text))
                self.volume_api.wait_for_volume(self.ctx, vol_id,
                                                timeout=300,
                                                statuses=('in-use',))
            times = {size: [] for size in self.sizes}
            # Alternate the order so drift on a busy host hits both sizes.
            for attempt in range(self.repeats):
                order = list(self.sizes)
                if attempt % 2:
                    order.reverse()
                for size in order:
                    start = time.monotonic()
                    snap = self.volume_api.create_snapshot_force(
                        self.ctx, volumes[size], 'bench-%dg-%d'
                        % (size, attempt))
                    self.volume_api.wait_for_snapshot(self.ctx, snap['id'],
                                                      timeout=300)
                    times[size].append(time.monotonic() - start)
                    self._delete_snapshots([snap['id']])
        finally:
            self._delete_server(server_id)
            for vol_id in volumes.values():
                self.volume_api.wait_for_volume(
                    self.ctx, vol_id, timeout=120,
                    statuses=('available', 'error'))
                self.volume_api.delete(self.ctx, vol_id)
        return {'data_mib': self.data_mib,
                'seconds': {str(size): t for size, t in times.items()},
                'median_seconds': {str(size): statistics.median(t)
                                   for size, t in times.items()}}

    def _write_data(self, volume_id):
        """Write ``data_mib`` MiB at the start of the volume's RBD image."""
        spec = '%s/volume-%s' % (self.stack.get('RBD_POOL', 'volumes'),
                                 volume_id)
        subprocess.run(['rbd', '--conf', self.stack['CEPH_CONF'], 'bench',
                        '--io-type', 'write', '--io-size', '4M',
                        '--io-threads', '4', '--io-pattern', 'seq',
                        '--io-total', '%dM' % self.data_mib, spec],
                       check=True, capture_output=True)

    # -- the whole run --------------------------------------------------------
    def run(self):
        results = {'counts': {}, 'repeats': self.repeats}
        try:
            self.deployment.start()
            self.client = self.deployment.client('bench', self.project)
            # Room for a source and a restored server of 9 volumes each.
            self._cinder().quotas.update(self.project, volumes=-1,
                                         snapshots=-1, gigabytes=-1)
            base = guest_fixture.upload_tiny_guest(self.image_api, self.ctx,
                                                   self.stack['GUEST_DIR'],
                                                   'bench-vol-guest')
            self.images += [base['id'], base['kernel_id'],
                            base['ramdisk_id']]
            root_id = self._upload_ext4_root(base)
            for count in self.counts:
                print('volumes: %d data volume(s) + root ...' % count,
                      flush=True)
                results['counts'][str(count)] = self.many_volumes(root_id,
                                                                  count)
            print('volumes: snapshot time by volume size ...', flush=True)
            results['sizes'] = self.snapshot_sizes(base['id'])
        finally:
            self.clean_up()
        return results

    def clean_up(self):
        if self.client is not None:
            for srv in self.client.request('GET', '/servers').json().get(
                    'servers', []):
                try:
                    self._delete_server(srv['id'])
                except Exception as exc:
                    print('could not delete server %s: %s' % (srv['id'], exc))
        sweep_cinder(self.volume_api, self.ctx)
        try:
            self._cinder().quotas.delete(self.project)
        except Exception as exc:
            print('could not reset the Cinder quotas: %s' % exc)
        for image_id in self.images:
            try:
                self.image_api.delete(self.ctx, image_id)
            except Exception:
                pass
        self.deployment.stop()


def sweep_cinder(volume_api, ctx, timeout=300):
    """Delete every snapshot and volume the context's project still has.

    Rounds until nothing is left: on RBD a snapshot with clones and a
    volume with snapshots refuse deletion until the other goes first, so
    one pass in a fixed order is not enough. Returns what is left.
    """
    client = volume_api._client(ctx)
    deadline = time.monotonic() + timeout
    while True:
        try:
            snaps = client.volume_snapshots.list()
            vols = client.volumes.list()
        except Exception as exc:
            print('Cinder clean-up failed: %s' % exc)
            return None
        left = snaps + vols
        if not left or time.monotonic() > deadline:
            break
        for item, manager in ([(s, client.volume_snapshots) for s in snaps]
                              + [(v, client.volumes) for v in vols]):
            if item.status in ('deleting', 'in-use', 'attaching',
                               'detaching', 'creating'):
                continue
            try:
                manager.delete(item)
            except Exception:
                pass    # busy: retried next round
        time.sleep(1)
    if left:
        print('left in Cinder: %s' % ', '.join(
            '%s (%s)' % (item.id, item.status) for item in left))
    return left


def _met(ok):
    return 'met' if ok else 'NOT met'


def print_results(results):
    counts = results['counts']
    print()
    print('volume-backed createImage (%d runs per row; median, then all)'
          % results['repeats'])
    print('%-13s %9s %11s %11s %10s  %s' % (
        'data volumes', 'snapshots', 'freeze ms', 'total s', 'restore s',
        'all totals s / freeze ms'))
    for key in sorted(counts, key=int):
        row = counts[key]
        print('%-13s %9d %11d %11.2f %10.2f  %s / %s (%s)' % (
            key, row['volumes_snapshotted'], row['median_freeze_ms'],
            row['median_total_seconds'], row.get('restore_seconds', -1),
            ' '.join('%.2f' % r['total_seconds'] for r in row['runs']),
            ' '.join('%d' % r['freeze_ms'] for r in row['runs']),
            ','.join(sorted({r['consistency'] for r in row['runs']}))))
    sizes = results['sizes']
    med = sizes['median_seconds']
    print('Cinder snapshot of an in-use volume with %d MiB written, create '
          '-> available:' % sizes['data_mib'])
    for size in sorted(med, key=int):
        print('  %3s GiB: median %.2f s (all: %s)' % (
            size, med[size], ' '.join('%.2f' % t
                                      for t in sizes['seconds'][size])))
    ratio = med['10'] / med['1']
    freeze8 = counts['8']['median_freeze_ms']
    total1 = counts['1']['median_total_seconds']
    total8 = counts['8']['median_total_seconds']
    print('targets:')
    print('  freeze window for 8 data volumes <= 2000 ms: %d ms  %s'
          % (freeze8, _met(freeze8 <= 2000)))
    print('  snapshot time 10 GiB / 1 GiB <= 1.2: %.2f  %s'
          % (ratio, _met(ratio <= 1.2)))
    print('  total for 8 <= 2 x total for 1: %.2f s vs 2 x %.2f s = %.2f '
          '(ratio %.2f)  %s' % (total8, total1, 2 * total1, total8 / total1,
                                _met(total8 <= 2 * total1)))
    results['targets'] = {'freeze_8_ms': freeze8, 'size_ratio': ratio,
                          'total_ratio_8_to_1': total8 / total1}


def main(stack=None, repeats=3, data_mib=256):
    bench = VolumeBenchmark(stack or stack_fixture.read_stack_env(),
                            repeats=repeats, data_mib=data_mib)
    results = bench.run()
    print_results(results)
    return results


if __name__ == '__main__':
    main()
