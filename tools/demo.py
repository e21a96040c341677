"""The nova-snapshot demo: boot, snapshot both ways, restore, with timings.

Run through ``tools/demo.sh``, which installs and starts the real services
first. Everything here goes through the public compute API over HTTP, the
way ``nova image-create --poll`` would, against real libvirt/QEMU, Glance,
RabbitMQ and a SQLite state database.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402
from tests.functional.fixtures import guest as guest_fixture  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402
from tests.functional.fixtures import watchers  # noqa: E402
from nova_snapshot.image import glance  # noqa: E402
from nova_snapshot import conf as ns_conf  # noqa: E402
from nova_snapshot.volume import cinder  # noqa: E402

SECTOR = 512


class Steps:
    def __init__(self):
        self.number = 0
        self.started = time.monotonic()

    def run(self, title, func, *args, **kwargs):
        self.number += 1
        print('[%2d] %s ...' % (self.number, title), flush=True)
        start = time.monotonic()
        result = func(*args, **kwargs)
        print('     done in %.2f s' % (time.monotonic() - start), flush=True)
        return result

    def say(self, text):
        print('     %s' % text, flush=True)


def latest_tick(client, server_id):
    ticks = re.findall(r'nova-snapshot-guest: tick (\d+)',
                       client.console(server_id))
    return max(map(int, ticks)) if ticks else None


def wait_console(client, server_id, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, client.console(server_id))
        if match:
            return match
        time.sleep(0.2)
    raise RuntimeError('console of %s never showed %r in %s s; its tail:\n%s'
                       % (server_id, pattern, timeout,
                          client.console(server_id)[-1500:]))


def boot(client, name, image_id):
    server = client.create_server(name, image_id, flavor_ref='2')
    client.wait_for_server(server['id'])
    found = wait_console(client, server['id'],
                         r'nova-snapshot-guest: last tick (\d+|none)')
    wait_console(client, server['id'], r'nova-snapshot-guest: tick \d+')
    return server, found.group(1)


def snapshot(steps, client, deployment, image_api, ctx, server_id, name):
    domain = deployment.domain(server_id)
    start = time.monotonic()
    with watchers.DomainStateWatcher(domain) as watch:
        image_id = client.create_image(server_id, name)
        accepted = time.monotonic() - start
        seen = []
        while True:
            server = client.get_server(server_id)
            state = (server['OS-EXT-STS:task_state'], server.get('progress'))
            if state != (seen[-1] if seen else None):
                seen.append(state)
            image = image_api.get(ctx, image_id)
            if image['status'] == 'active' and state[0] is None:
                break
            if image['status'] in ('killed', 'deleted'):
                raise RuntimeError('snapshot failed: %s' % server.get('fault'))
            time.sleep(0.1)
    total = time.monotonic() - start
    steps.say('API answered 202 in %.3f s; image %s' % (accepted, image_id))
    steps.say('task states seen: %s' % ' -> '.join(
        '%s(%s%%)' % (t, p) if p else str(t) for t, p in seen))
    steps.say('image active after %.2f s, %d bytes, disk_format %s'
              % (total, image['size'], image['disk_format']))
    steps.say('guest not running for %.3f s during the snapshot (states seen: %s)'
              % (watch.not_running_seconds,
                 ', '.join(sorted(watchers.DOMAIN_STATE_NAMES.get(s, str(s))
                                  for s in watch.states_seen))))
    return image, watch.not_running_seconds, total


def main():
    steps = Steps()
    stack = stack_fixture.read_stack_env()
    # The demo has a RabbitMQ vhost of its own, apart from the tests'.
    transport_url = stack['TRANSPORT_URL'].rsplit('/', 1)[0] + '/nova_snapshot'
    deployment = deployment_fixture.Deployment(stack_env=stack, transport_url=transport_url)
    conf = ns_conf.new_conf([])
    conf.set_override('api_endpoint', stack['GLANCE_URL'], group='glance')
    conf.set_override('auth_mode', 'identity_headers', group='glance')
    image_api = glance.GlanceAPI(conf)
    conf.set_override('api_endpoint', stack['CINDER_URL'], group='cinder')
    conf.set_override('auth_mode', 'noauth', group='cinder')
    volume_api = cinder.CinderAPI(conf)
    project = uuid.uuid4().hex
    ctx = guest_fixture.user_context('demo', project)
    client = None
    created_images = []
    results = {}
    try:
        steps.run('start nova-snapshot-api and nova-snapshot-compute '
                  '(RabbitMQ, SQLite, libvirt)', deployment.start)
        client = deployment.client('demo', project)
        base = steps.run('upload the tiny guest (kernel, initramfs, qcow2 disk) '
                         'to Glance', guest_fixture.upload_tiny_guest, image_api, ctx,
                         stack['GUEST_DIR'], 'demo-guest')
        created_images += [base['id'], base['kernel_id'], base['ramdisk_id']]
        server, last = steps.run('boot a server from it and wait for its first '
                                 'tick', boot, client, 'demo-source', base['id'])
        steps.say('server %s: guest found "last tick %s" on its blank disk'
                  % (server['id'], last))

        for path, live in (('live', True), ('suspend', False)):
            if not live:
                steps.run('restart the compute service with '
                          '[libvirt] live_snapshot = false', _restart_compute,
                          deployment, {'libvirt': {'live_snapshot': False}})
            before = latest_tick(client, server['id'])
            image, paused, total = steps.run(
                'createImage with the %s path while the guest writes' % path,
                snapshot, steps, client, deployment, image_api, ctx,
                server['id'], 'demo-%s-snapshot' % path)
            created_images.append(image['id'])
            steps.say('guest tick before the request: %s' % before)
            restored, found = steps.run(
                'boot a server from the %s snapshot' % path, boot, client,
                'demo-restored-%s' % path, image['id'])
            steps.say('restored guest found "last tick %s" on its disk and '
                      'counts on' % found)
            results[path] = (paused, total, found)
            client.delete_server(restored['id'])

        volume_result = volume_backed(steps, deployment, client, image_api,
                                      volume_api, ctx, base, created_images)

        print('\nSummary')
        for path, (paused, total, found) in results.items():
            print('  %-8s createImage to active image %6.2f s, guest not running '
                  '%.3f s, restored guest resumed from tick %s'
                  % (path, total, paused, found))
        answer, freeze_ms, consistency, agree = volume_result
        print('  %-8s createImage answered (image active) in %.2f s, guest '
              'frozen %s ms (%s), restored vda/vdb %s the snapshots'
              % ('volume', answer, freeze_ms, consistency,
                 'match' if agree else 'DO NOT match'))
        return 0 if agree else 1
    except Exception as exc:
        print('DEMO FAILED: %s' % exc, file=sys.stderr)
        for name in list(deployment.processes):
            print('--- %s log tail ---\n%s' % (name, deployment.log_tail(name)),
                  file=sys.stderr)
        return 1
    finally:
        if client is not None:
            for srv in client.request('GET', '/servers').json().get('servers', []):
                client.delete_server(srv['id'])
            for srv_id in [s['id'] for s in client.request(
                    'GET', '/servers').json().get('servers', [])]:
                try:
                    client.wait_for_server_gone(srv_id, timeout=30)
                except RuntimeError:
                    pass
        _sweep_cinder(volume_api, ctx)
        for image_id in created_images:
            try:
                image_api.delete(ctx, image_id)
            except Exception:
                pass
        deployment.stop()


# -- the volume-backed path ----------------------------------------------

def upload_ext4_root(image_api, ctx, stack, base, name):
    """The ext4 guest disk with qemu-ga, booting the tiny guest's kernel."""
    image = image_api.create(ctx, dict(
        name=name, disk_format='qcow2', container_format='bare',
        visibility='private', kernel_id=base['kernel_id'],
        ramdisk_id=base['ramdisk_id'], os_command_line='console=ttyS0',
        hw_qemu_guest_agent='yes'))
    path = os.path.join(stack['GUEST_DIR'], 'disk-ext4.qcow2')
    with open(path, 'rb') as data:
        image_api.upload(ctx, image['id'], data, size=os.path.getsize(path))
    return image_api.get(ctx, image['id'])


def boot_with(client, name, image_ref, bdms, deployment=None):
    """Boot with block devices; with ``deployment``, wait for qemu-ga."""
    resp = client.request('POST', '/servers', json={'server': {
        'name': name, 'imageRef': image_ref, 'flavorRef': '2',
        'networks': 'none', 'block_device_mapping_v2': bdms}})
    if resp.status_code != 202:
        raise RuntimeError('POST /servers: %s %s' % (resp.status_code,
                                                     resp.text))
    server_id = resp.json()['server']['id']
    client.wait_for_server(server_id, timeout=300)
    wait_console(client, server_id, r'nova-snapshot-guest: tick \d+', 600)
    if deployment is not None:
        wait_console(client, server_id, 'qemu-ga started', 600)
        guest_fixture.wait_for_guest_agent(deployment.domain(server_id))
    return server_id


def attachments(client, server_id):
    resp = client.request('GET', '/servers/%s/os-volume_attachments'
                          % server_id)
    resp.raise_for_status()
    return {a['device']: a['volumeId']
            for a in resp.json()['volumeAttachments']}


def rbd_snapshot_tick(stack, volume_id, snapshot_id):
    """The tick in sector 1 of a Cinder snapshot, read with rbd export."""
    spec = '%s/volume-%s@snapshot-%s' % (stack.get('RBD_POOL', 'volumes'),
                                         volume_id, snapshot_id)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'export.raw')
        subprocess.run(['rbd', '--conf', stack['CEPH_CONF'], 'export', spec,
                        out, '--no-progress'], check=True,
                       capture_output=True)
        with open(out, 'rb') as data:
            sector = data.read(2 * SECTOR)[SECTOR:]
    match = re.match(rb'tick (\d+)', sector)
    return int(match.group(1)) if match else None


def volume_backed(steps, deployment, client, image_api, volume_api, ctx,
                  base, created_images):
    """Boot from a volume, snapshot it, restore it; compare with Ceph."""
    stack = deployment.stack
    root = steps.run('upload the ext4 guest disk (with qemu-ga) to Glance',
                     upload_ext4_root, image_api, ctx, stack, base,
                     'demo-ext4-guest')
    created_images.append(root['id'])
    bdms = [{'source_type': 'image', 'destination_type': 'volume',
             'uuid': root['id'], 'boot_index': 0, 'volume_size': 1,
             'delete_on_termination': True},
            {'source_type': 'blank', 'destination_type': 'volume',
             'volume_size': 1, 'boot_index': -1,
             'delete_on_termination': True}]
    source = steps.run('boot a server from a 1 GiB volume (made from that '
                       'image) with a blank 1 GiB data volume; wait for its '
                       'ticks and qemu-ga', boot_with, client,
                       'demo-bfv-source', '', bdms, deployment)
    volumes = attachments(client, source)
    steps.say('server %s, volumes: %s' % (source, ', '.join(
        '%s=%s' % item for item in sorted(volumes.items()))))

    def create_image():
        start = time.monotonic()
        image_id = client.create_image(source, 'demo-bfv-snapshot')
        answered = time.monotonic() - start
        created_images.append(image_id)
        return image_id, answered
    image_id, answered = steps.run('createImage of the volume-backed server '
                                   'while the guest writes', create_image)
    image = image_api.get(ctx, image_id)
    mapping = json.loads(image['block_device_mapping'])
    steps.say('API answered in %.3f s; image %s is %s, size %s' % (
        answered, image_id, image['status'], image['size']))
    steps.say('consistency %s, guest frozen for %s ms' % (
        image.get('nova_snapshot_consistency'),
        image.get('nova_snapshot_freeze_ms')))
    snapshots = {}
    for bdm in sorted(mapping, key=lambda b: b['device_name']):
        snap = volume_api.wait_for_snapshot(ctx, bdm['snapshot_id'],
                                            timeout=120)
        snapshots[bdm['device_name']] = snap
        steps.say('Cinder snapshot %s of %s (%s): %s, %s GiB' % (
            snap['id'], bdm['device_name'], snap['volume_id'],
            snap['status'], snap['size']))

    expected = steps.run('read the tick each snapshot holds with rbd export',
                         lambda: {dev: rbd_snapshot_tick(
                             stack, snap['volume_id'], snap['id'])
                             for dev, snap in snapshots.items()})
    restored = steps.run('boot a server from the zero-byte image (a volume '
                         'from each snapshot)', boot_with, client,
                         'demo-bfv-restored', image_id, [])
    console = client.console(restored)
    found = {
        '/dev/vda': re.search(r'nova-snapshot-guest: last tick (\d+|none)\r?\n',
                              console),
        '/dev/vdb': re.search(
            r'nova-snapshot-guest: last tick vdb (\d+|none)\r?\n', console)}
    agree = True
    for dev in sorted(expected):
        seen = found.get(dev)
        seen = seen.group(1) if seen else '(no line)'
        agree = agree and seen == str(expected[dev])
        steps.say('%s: restored guest says "last tick %s", the snapshot holds '
                  'tick %s' % (dev, seen, expected[dev]))

    def clean_up():
        # The servers take their volumes along (delete_on_termination); the
        # sweep deletes the snapshots, retrying while clones still hold them.
        for server_id in (restored, source):
            client.delete_server(server_id)
        for server_id in (restored, source):
            client.wait_for_server_gone(server_id, timeout=300)
        image_api.delete(ctx, image_id)
        created_images.remove(image_id)
        _sweep_cinder(volume_api, ctx)
    steps.run('delete both servers (and their volumes), the snapshots and '
              'the image', clean_up)
    return (answered, image.get('nova_snapshot_freeze_ms'),
            image.get('nova_snapshot_consistency'), agree)


def _sweep_cinder(volume_api, ctx, timeout=300):
    import benchmark_volumes
    benchmark_volumes.sweep_cinder(volume_api, ctx, timeout)


def _restart_compute(deployment, extra_conf):
    deployment.stop_compute(deployment.hosts[0])
    deployment.start_compute(deployment.hosts[0], extra_conf=extra_conf)
    deployment.wait_for_compute(deployment.hosts[0])


if __name__ == '__main__':
    sys.exit(main())
