"""The nova-snapshot demo: boot, snapshot both ways, restore, with timings.

Run through ``tools/demo.sh``, which installs and starts the real services
first. Everything here goes through the public compute API over HTTP, the
way ``nova image-create --poll`` would, against real libvirt/QEMU, Glance,
RabbitMQ and a SQLite state database.
"""

import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nova_snapshot import devenv  # noqa: E402
from nova_snapshot.image import glance  # noqa: E402
from nova_snapshot import conf as ns_conf  # noqa: E402


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
    raise RuntimeError('console of %s never showed %r' % (server_id, pattern))


def boot(client, name, image_id):
    server = client.create_server(name, image_id, flavor_ref='2')
    client.wait_for_server(server['id'])
    found = wait_console(client, server['id'],
                         r'nova-snapshot-guest: last tick (\d+|none)')
    wait_console(client, server['id'], r'nova-snapshot-guest: tick \d+')
    return server, found.group(1)


def snapshot(steps, client, deployment, image_api, ctx, server_id, name):
    import libvirt
    conn = libvirt.open(deployment.stack.get('LIBVIRT_URI', 'qemu:///system'))
    domain = conn.lookupByName('instance-%s' % server_id)
    start = time.monotonic()
    with devenv.DomainStateWatcher(domain) as watch:
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
    conn.close()
    steps.say('API answered 202 in %.3f s; image %s' % (accepted, image_id))
    steps.say('task states seen: %s' % ' -> '.join(
        '%s(%s%%)' % (t, p) if p else str(t) for t, p in seen))
    steps.say('image active after %.2f s, %d bytes, disk_format %s'
              % (total, image['size'], image['disk_format']))
    steps.say('guest not running for %.3f s during the snapshot (states seen: %s)'
              % (watch.not_running_seconds,
                 ', '.join(sorted(devenv.DOMAIN_STATE_NAMES.get(s, str(s))
                                  for s in watch.states_seen))))
    return image, watch.not_running_seconds, total


def main():
    steps = Steps()
    stack = devenv.read_stack_env()
    # The demo has a RabbitMQ vhost of its own, apart from the tests'.
    transport_url = stack['TRANSPORT_URL'].rsplit('/', 1)[0] + '/nova_snapshot'
    deployment = devenv.Deployment(stack_env=stack, transport_url=transport_url)
    conf = ns_conf.new_conf([])
    conf.set_override('api_endpoint', stack['GLANCE_URL'], group='glance')
    image_api = glance.GlanceAPI(conf)
    project = uuid.uuid4().hex
    ctx = devenv.user_context('demo', project)
    client = None
    created_images = []
    results = {}
    try:
        steps.run('start nova-snapshot-api and nova-snapshot-compute '
                  '(RabbitMQ, SQLite, libvirt)', deployment.start)
        client = deployment.client('demo', project)
        base = steps.run('upload the tiny guest (kernel, initramfs, qcow2 disk) '
                         'to Glance', devenv.upload_tiny_guest, image_api, ctx,
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

        print('\nSummary')
        for path, (paused, total, found) in results.items():
            print('  %-8s createImage to active image %6.2f s, guest not running '
                  '%.3f s, restored guest resumed from tick %s'
                  % (path, total, paused, found))
        return 0
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
        for image_id in created_images:
            try:
                image_api.delete(ctx, image_id)
            except Exception:
                pass
        deployment.stop()


def _restart_compute(deployment, extra_conf):
    deployment.stop_compute(deployment.hosts[0])
    deployment.start_compute(deployment.hosts[0], extra_conf=extra_conf)
    deployment.wait_for_compute(deployment.hosts[0])


if __name__ == '__main__':
    sys.exit(main())
