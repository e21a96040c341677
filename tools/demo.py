"""The nova-snapshot demo: boot, snapshot both ways, restore, with timings.

Run through ``tools/demo.sh``, which installs and starts the real services
first. Everything here goes through the public compute API over HTTP
against real libvirt/QEMU, Glance, Cinder, RabbitMQ and a SQLite state
database.

By default it runs as a cloud does: the API validates the stack's Keystone
tokens and listens on the catalog's compute endpoint (port 8774), Glance
and Cinder are the Keystone-mode ones of the catalog, and every step acts
as the Keystone user ``demo``. At the end the unmodified official clients
(``openstack server image create --wait`` and ``nova image-create --poll``
from ``.stack/clients-venv``) snapshot a server, with their output, and a
server boots from what they made. ``--noauth`` runs the development
set-up instead (noauth API on a free port, the noauth Glance and Cinder,
no client steps).
"""

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import libvirt

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nova_snapshot import conf as ns_conf  # noqa: E402
from nova_snapshot.image import glance  # noqa: E402
from nova_snapshot.volume import cinder  # noqa: E402
from tests.functional.fixtures import client as client_fixture  # noqa: E402
from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402
from tests.functional.fixtures import guest as guest_fixture  # noqa: E402
from tests.functional.fixtures import keystone  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402
from tests.functional.fixtures import watchers  # noqa: E402

SECTOR = 512
# no_timer_check: on a loaded host a TCG guest's kernel can find its timer
# interrupt "not working" at boot and panic; virtual machines skip that check.
GUEST_COMMAND_LINE = 'console=ttyS0 no_timer_check'


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


def compute_port(stack):
    """The port of the compute endpoint in the stack's catalog."""
    url = stack.get('KEYSTONE_COMPUTE_URL', 'http://127.0.0.1:8774/v2.1')
    return urllib.parse.urlsplit(url).port or 80


def check_port_free(port):
    with socket.socket() as sock:
        # As the API binds it: connections in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('127.0.0.1', port))
        except OSError as exc:
            raise SystemExit(
                'port %d (the compute endpoint of the Keystone catalog) is '
                'taken: %s. Stop what listens there (ss -ltnp sport = :%d) '
                'or run tools/demo.py --noauth.' % (port, exc, port))


class Setup:
    """Who the demo is and how it reaches the services."""

    def __init__(self, stack, use_keystone, transport_url):
        self.keystone = use_keystone
        if use_keystone:
            port = compute_port(stack)
            check_port_free(port)
            self.deployment = deployment_fixture.Deployment(
                stack_env=stack, transport_url=transport_url, keystone=True,
                api_port=port, uwsgi=True)
            self.session = keystone.session(stack, 'demo')
            self.ctx = keystone.user_context(stack, 'demo')
            conf = ns_conf.new_conf([])
            for group in ('glance', 'cinder'):
                conf.set_override('auth_mode', 'keystone', group=group)
                conf.set_override('region_name', stack.get(
                    'KEYSTONE_REGION', 'RegionOne'), group=group)
                conf.set_override('valid_interfaces', ['public'],
                                  group=group)
        else:
            self.deployment = deployment_fixture.Deployment(
                stack_env=stack, transport_url=transport_url)
            self.session = None
            self.ctx = guest_fixture.user_context('demo', uuid.uuid4().hex)
            conf = ns_conf.new_conf([])
            conf.set_override('api_endpoint', stack['GLANCE_URL'],
                              group='glance')
            conf.set_override('auth_mode', 'identity_headers',
                              group='glance')
            conf.set_override('api_endpoint', stack['CINDER_URL'],
                              group='cinder')
            conf.set_override('auth_mode', 'noauth', group='cinder')
        self.image_api = glance.GlanceAPI(conf)
        self.volume_api = cinder.CinderAPI(conf)

    def describe(self):
        if self.keystone:
            return ('Keystone: API at %s (the catalog\'s compute endpoint, '
                    'under uWSGI with etc/nova-snapshot/api-uwsgi.ini) '
                    'validating tokens, Glance and Cinder from the catalog; '
                    'acting as user demo of project %s'
                    % (self.deployment.endpoint, self.ctx.project_id))
        return ('noauth development set-up: API at %s, noauth Glance and '
                'Cinder, project %s' % (self.deployment.endpoint,
                                        self.ctx.project_id))

    def client(self):
        if self.keystone:
            return client_fixture.ComputeClient(self.deployment.endpoint,
                                                auth=self.session)
        return self.deployment.client('demo', self.ctx.project_id)


def main(argv=None):
    # Waiting for a guest agent polls libvirt until it answers; libvirt's
    # default handler would print every "not connected yet" to stderr.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--noauth', action='store_true',
                        help='the development set-up: no Keystone, no '
                             'official clients')
    args = parser.parse_args(argv)
    steps = Steps()
    stack = stack_fixture.read_stack_env()
    # The demo has a RabbitMQ vhost of its own, apart from the tests'.
    transport_url = stack['TRANSPORT_URL'].rsplit('/', 1)[0] + '/nova_snapshot'
    setup = Setup(stack, not args.noauth, transport_url)
    deployment = setup.deployment
    image_api, volume_api, ctx = setup.image_api, setup.volume_api, setup.ctx
    print(setup.describe(), flush=True)
    client = None
    created_images = []
    cinder_made = {'volumes': set(), 'snapshots': set()}
    results = {}
    try:
        steps.run('start nova-snapshot-api and nova-snapshot-compute '
                  '(RabbitMQ, SQLite, libvirt)', deployment.start)
        client = setup.client()
        base = steps.run('upload the tiny guest (kernel, initramfs, qcow2 disk) '
                         'to Glance', guest_fixture.upload_tiny_guest, image_api, ctx,
                         stack['GUEST_DIR'], 'demo-guest',
                         command_line=GUEST_COMMAND_LINE)
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
                                      volume_api, ctx, base, created_images,
                                      cinder_made)
        clients_result = None
        if setup.keystone:
            steps.run('restart the compute service with the default (live) '
                      'path', _restart_compute, deployment, None)
            clients_result = official_clients(steps, stack, client, image_api,
                                              ctx, server['id'],
                                              created_images)

        print('\nSummary (%s)' % ('Keystone' if setup.keystone else 'noauth'))
        for path, (paused, total, found) in results.items():
            print('  %-8s createImage to active image %6.2f s, guest not running '
                  '%.3f s, restored guest resumed from tick %s'
                  % (path, total, paused, found))
        answer, freeze_ms, consistency, agree = volume_result
        print('  %-8s createImage answered (image active) in %.2f s, guest '
              'frozen %s ms (%s), restored vda/vdb %s the snapshots'
              % ('volume', answer, freeze_ms, consistency,
                 'match' if agree else 'DO NOT match'))
        if clients_result:
            for label, seconds in clients_result['timings']:
                print('  %-8s %s: %.2f s' % ('clients', label, seconds))
            print('  %-8s server booted from the openstack client\'s image '
                  'resumed from tick %s' % ('clients',
                                            clients_result['found']))
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
        _delete_cinder(volume_api, ctx, cinder_made)
        for image_id in created_images:
            try:
                image_api.delete(ctx, image_id)
            except Exception:
                pass
        deployment.stop()


# -- the official clients, as a user of the cloud runs them ---------------

def run_client(steps, argv, env, timeout=600):
    """Run an official client; print its command line and its output."""
    steps.say('$ %s' % ' '.join(shlex.quote(arg) for arg in argv))
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True,
                            timeout=timeout)
    seconds = time.monotonic() - start
    # novaclient's --poll redraws its progress line with carriage returns:
    # show each distinct state of it once.
    output = result.stdout.replace('\r', '\n')
    shown = None
    for line in output.splitlines():
        if line.strip() and line != shown:
            steps.say('  %s' % line)
            shown = line
    if result.returncode != 0:
        raise RuntimeError('%s exited with %d:\n%s' % (
            argv[0], result.returncode, result.stderr[-2000:]))
    steps.say('(%s returned 0 after %.2f s)' % (argv[0], seconds))
    return output, seconds


def official_clients(steps, stack, client, image_api, ctx, server_id,
                     created_images):
    """openstack and nova, unmodified, from clouds.yaml / OS_* variables,
    finding this API through the Keystone catalog."""
    timings = []
    osc_name = 'demo-osc-snapshot'
    env = keystone.clients_env(stack, 'demo')
    # Not a terminal: tell cliff how wide a table may be, as a terminal would.
    env['CLIFF_MAX_TERM_WIDTH'] = '110'
    output, seconds = steps.run(
        'openstack server image create --wait (clouds.yaml, cloud demo)',
        run_client, steps,
        ['openstack', '--os-cloud', 'demo', 'server', 'image', 'create',
         '--wait', '--name', osc_name, server_id], env)
    timings.append(('openstack server image create --wait', seconds))
    osc_image = _image_named(image_api, ctx, osc_name)
    created_images.append(osc_image['id'])
    steps.say('Glance: image %s is %s, %d bytes, owner %s' % (
        osc_image['id'], osc_image['status'], osc_image['size'],
        osc_image['owner']))

    nova_name = 'demo-nova-snapshot'
    output, seconds = steps.run(
        'nova image-create --poll (OS_* variables)', run_client, steps,
        ['nova', 'image-create', '--poll', server_id, nova_name],
        keystone.nova_env(stack, 'demo'))
    timings.append(('nova image-create --poll', seconds))
    if 'Finished' not in output:
        raise RuntimeError('nova image-create --poll did not finish: %s'
                           % output)
    nova_image = _image_named(image_api, ctx, nova_name)
    created_images.append(nova_image['id'])
    steps.say('Glance: image %s is %s, %d bytes, owner %s' % (
        nova_image['id'], nova_image['status'], nova_image['size'],
        nova_image['owner']))

    restored, found = steps.run(
        'boot a server from the openstack client\'s snapshot', boot, client,
        'demo-restored-osc', osc_image['id'])
    steps.say('restored guest found "last tick %s" on its disk and counts on'
              % found)
    client.delete_server(restored['id'])
    return {'timings': timings, 'found': found}


def _image_named(image_api, ctx, name):
    images = image_api.list(ctx, name=name)
    if len(images) != 1:
        raise RuntimeError('expected one image named %s in Glance, found %d'
                           % (name, len(images)))
    return images[0]


# -- the volume-backed path ----------------------------------------------

def upload_ext4_root(image_api, ctx, stack, base, name):
    """The ext4 guest disk with qemu-ga, booting the tiny guest's kernel."""
    image = image_api.create(ctx, dict(
        name=name, disk_format='qcow2', container_format='bare',
        visibility='private', kernel_id=base['kernel_id'],
        ramdisk_id=base['ramdisk_id'], os_command_line=GUEST_COMMAND_LINE,
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
                  base, created_images, cinder_made):
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
    cinder_made['volumes'].update(volumes.values())
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
        cinder_made['snapshots'].add(snap['id'])
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
    cinder_made['volumes'].update(attachments(client, restored).values())
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
        # snapshots go next, retried while clones still hold them.
        for server_id in (restored, source):
            client.delete_server(server_id)
        for server_id in (restored, source):
            client.wait_for_server_gone(server_id, timeout=300)
        image_api.delete(ctx, image_id)
        created_images.remove(image_id)
        _delete_cinder(volume_api, ctx, cinder_made)
    steps.run('delete both servers (and their volumes), the snapshots and '
              'the image', clean_up)
    return (answered, image.get('nova_snapshot_freeze_ms'),
            image.get('nova_snapshot_consistency'), agree)


def _delete_cinder(volume_api, ctx, made, timeout=300):
    """Delete the volumes and snapshots the demo made, and only those: the
    demo project is shared with whoever else uses the stack's cloud.

    Rounds until they are gone: on RBD a snapshot with clones and a volume
    with snapshots refuse deletion until the other goes first.
    """
    from cinderclient import exceptions as cinder_exc
    client = volume_api._client(ctx)
    deadline = time.monotonic() + timeout
    while made['snapshots'] or made['volumes']:
        for ids, manager in ((made['snapshots'], client.volume_snapshots),
                             (made['volumes'], client.volumes)):
            for item_id in list(ids):
                try:
                    item = manager.get(item_id)
                    if item.status not in ('deleting', 'in-use', 'attaching',
                                           'detaching', 'creating'):
                        manager.delete(item)
                except cinder_exc.NotFound:
                    ids.discard(item_id)
                except Exception:
                    pass    # busy: retried next round
        if time.monotonic() > deadline:
            print('left in Cinder: snapshots %s, volumes %s' % (
                sorted(made['snapshots']), sorted(made['volumes'])))
            return
        if made['snapshots'] or made['volumes']:
            time.sleep(1)


def _restart_compute(deployment, extra_conf):
    deployment.stop_compute(deployment.hosts[0])
    deployment.start_compute(deployment.hosts[0], extra_conf=extra_conf)
    deployment.wait_for_compute(deployment.hosts[0])


if __name__ == '__main__':
    sys.exit(main())
