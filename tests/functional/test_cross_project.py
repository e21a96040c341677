"""Cross-project probe against the real Keystone stack.

``demo`` makes servers (image-backed with a data volume attached, and
volume-backed), images (its base image and two createImage snapshots, one
of them a volume-backed snapshot whose image maps a Cinder snapshot),
volumes and volume snapshots. Then ``alt_demo`` tries every route the API
serves (``router.ROUTES``) with demo's ids, at the lowest and a recent
microversion (the images proxy below 2.36), once plainly and once with
spoofed identity headers claiming admin in demo's project; it also tries
to boot from demo's images, volumes and snapshots and to attach and
detach demo's volumes on a server of its own. ``demo-reader`` tries every
route that changes something. Every answer must be 404 or 403 (400 where
Nova answers that: a boot naming a source the caller cannot see, a
``/v2.1/{project_id}`` URL naming another project); lists answer 200 with
nothing of demo's in them. Afterwards demo's servers, actions, images,
volumes and snapshots are what they were, and alt_demo owns nothing it
did not make itself.

The compute services run the ``fake`` driver: every route here is control
plane (the images, volumes and snapshots are real, in Glance and Cinder).
The tally of requests per route and status is printed (``-s``) and kept in
``cross_project_tally.json`` in the deployment's state directory.
"""

import collections
import json
import os
import time
import uuid

import requests

from nova_snapshot.api.handlers import server_actions
from nova_snapshot.api import router
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from nova_snapshot.image import glance
from nova_snapshot.volume import cinder
from tests.functional import base
from tests.functional.fixtures import deployment as deployment_fixture
from tests.functional.fixtures import guest
from tests.functional.fixtures import keystone
from tests.functional.fixtures import stack as stack_fixture
from tests.functional import test_keystone_e2e

FAKE_DRIVER = {'compute': {'compute_driver': 'fake'}}
TIMEOUT = 60
# The minimum, the last version before the later shapes, and the maximum.
VERSIONS = ('2.1', '2.45', '2.104')
PROXY_VERSIONS = ('2.1', '2.35')
FOREIGN = frozenset([403, 404])
# Nova's 400 for a boot naming an image, volume or snapshot the caller
# cannot see ("Image ... could not be found", "failed to get volume").
FOREIGN_BOOT = frozenset([400, 403, 404])
# Identity headers a client may try to smuggle past keystonemiddleware.
SPOOF = {
    'X-Roles': 'admin,member,reader', 'X-Role': 'admin',
    'X-Service-Roles': 'admin,service',
    'X-Identity-Status': 'Confirmed', 'X-Is-Admin-Project': 'True',
    'OpenStack-System-Scope': 'all', 'X-System-Scope': 'all',
}
# Servers listed by the routes below; their actions are probed one by one.
ACTION_BODIES = {
    'createImage': {'createImage': {'name': 'xp-steal'}},
    'os-stop': {'os-stop': None},
    'os-start': {'os-start': None},
    'pause': {'pause': None},
    'unpause': {'unpause': None},
    'suspend': {'suspend': None},
    'resume': {'resume': None},
    'os-getConsoleOutput': {'os-getConsoleOutput': {'length': 10}},
    'shelve': {'shelve': None},
    'shelveOffload': {'shelveOffload': None},
    'unshelve': {'unshelve': None},
    'createBackup': {'createBackup': {'name': 'xp-steal',
                                      'backup_type': 'daily', 'rotation': 0}},
    'reboot': {'reboot': {'type': 'HARD'}},
    'rebuild': {'rebuild': {
        'imageRef': '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11',
        'name': 'xp-steal'}},
    'lock': {'lock': None},
    'unlock': {'unlock': None},
    'restore': {'restore': None},
    'forceDelete': {'forceDelete': None},
}


# A public key alt_demo offers in a keypair create it must not make.
_PUBLIC_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8kIuksjZoc3GNvhAB99sW4'
               'C4uSlIEhLve3EBS8qlX4 xp@alt')


def _name(prefix):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:6])


def _update_fields(version):
    """A server update body with every field ``version`` takes."""
    minor = int(version.split('.')[1])
    fields = {'name': 'xp-stolen', 'accessIPv4': '10.9.9.9',
              'OS-DCF:diskConfig': 'AUTO'}
    if minor >= 19:
        fields['description'] = 'stolen'
    if minor >= 90:
        fields['hostname'] = 'stolen'
    if minor >= 104:
        fields['pinned_availability_zone'] = None
    return fields


def _server_body(version, **fields):
    """A create body valid at ``version``: "networks": "none" exists
    from 2.37 only (below, no networks at all)."""
    server = dict(name=_name('xp-steal'), flavorRef='1', **fields)
    if tuple(int(p) for p in version.split('.')) >= (2, 37):
        server['networks'] = 'none'
    return {'server': server}


def _external_event(version, server_id):
    """An event about ``server_id`` valid at ``version`` (volume-extended
    from 2.51, which records an instance action when accepted)."""
    if tuple(int(p) for p in version.split('.')) >= (2, 51):
        return {'name': 'volume-extended', 'server_uuid': server_id,
                'tag': '5f0c6e43-77ab-4e31-8a0b-3c2d1e0f9a88'}
    return {'name': 'network-changed', 'server_uuid': server_id}


class CrossProjectProbeTest(base.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = stack_fixture.read_stack_env()
        cls.deployment = deployment_fixture.Deployment(
            stack_env=cls.stack, keystone=True, extra_conf=FAKE_DRIVER)
        cls.cleanups = []
        try:
            cls.deployment.start()
            cls._set_up_users()
            cls._set_up_demo()
            cls._set_up_alt()
        except Exception:
            cls._tear_down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()
        super().tearDownClass()

    @classmethod
    def _tear_down(cls):
        try:
            for cleanup in reversed(cls.cleanups):
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - best effort clean-up
                    pass
        finally:
            cls.deployment.stop(
                remove_state=not os.environ.get('NOVA_SNAPSHOT_KEEP_STATE'))

    # -- set-up ----------------------------------------------------------

    @classmethod
    def _set_up_users(cls):
        cls.demo = keystone.user_context(cls.stack, 'demo')
        cls.reader = keystone.user_context(cls.stack, 'demo-reader')
        cls.alt = keystone.user_context(cls.stack, 'alt_demo')
        conf = test_keystone_e2e.keystone_conf(cls.stack)
        cls.image_api = glance.GlanceAPI(conf)
        cls.volume_api = cinder.CinderAPI(conf)
        cls.db = db_api.Database(cls.deployment.database_url)
        cls.cleanups.append(cls.db.dispose)

    @classmethod
    def call(cls, ctx, method, path, version='2.45', headers=None, **kw):
        all_headers = {'X-Auth-Token': ctx.auth_token,
                       'OpenStack-API-Version': 'compute %s' % version,
                       'X-OpenStack-Nova-API-Version': version}
        all_headers.update(headers or {})
        return requests.request(method, cls.deployment.endpoint + path,
                                headers=all_headers, timeout=TIMEOUT, **kw)

    @classmethod
    def _ok(cls, response, status=(200, 202)):
        if response.status_code not in status:
            raise AssertionError('%s %s: %s %s' % (
                response.request.method, response.request.url,
                response.status_code, response.text))
        return response.json() if response.content else {}

    @classmethod
    def _boot(cls, ctx, name, **server):
        body = {'server': dict(name=name, flavorRef='1', networks='none',
                               **server)}
        server = cls._ok(cls.call(ctx, 'POST', '/v2.1/servers',
                                  json=body))['server']
        cls.cleanups.append(lambda: cls._delete_server(ctx, server['id']))
        return cls._wait_server(ctx, server['id'])

    @classmethod
    def _wait_gone(cls, ctx, server_id, timeout=120):
        deadline = time.monotonic() + timeout
        while cls.call(ctx, 'GET', '/v2.1/servers/%s'
                       % server_id).status_code != 404:
            if time.monotonic() > deadline:
                raise AssertionError('server %s not deleted' % server_id)
            time.sleep(0.3)

    @classmethod
    def _wait_server(cls, ctx, server_id, timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            server = cls._ok(cls.call(
                ctx, 'GET', '/v2.1/servers/%s' % server_id))['server']
            if (server['status'] == 'ACTIVE'
                    and server['OS-EXT-STS:task_state'] is None):
                return server
            if server['status'] == 'ERROR' or time.monotonic() > deadline:
                raise AssertionError('server %s: %s' % (server_id, server))
            time.sleep(0.3)

    @classmethod
    def _delete_server(cls, ctx, server_id):
        cls.call(ctx, 'DELETE', '/v2.1/servers/%s' % server_id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and cls.call(
                ctx, 'GET', '/v2.1/servers/%s' % server_id).status_code != 404:
            time.sleep(0.5)

    @classmethod
    def _volume(cls, ctx, name):
        volume = cls.volume_api.create(ctx, 1, name)
        cls.cleanups.append(lambda: cls._delete_volume(ctx, volume['id']))
        return cls.volume_api.wait_for_volume(ctx, volume['id'], timeout=180)

    @classmethod
    def _delete_volume(cls, ctx, volume_id):
        for snap in cls.volume_api.list_snapshots(ctx, volume_id=volume_id):
            cls.volume_api.delete_snapshot(ctx, snap['id'])
            cls.volume_api.wait_for_snapshot_deleted(ctx, snap['id'],
                                                     timeout=120)
        cls.volume_api.delete(ctx, volume_id)
        cls.volume_api.wait_for_volume_deleted(ctx, volume_id, timeout=120)

    @classmethod
    def _image(cls, ctx, name, data=b'\0' * 1024 * 1024, **props):
        meta = dict(name=name, disk_format='raw', container_format='bare',
                    visibility='private')
        meta.update(props)
        if not data:
            image = cls.image_api.create_active_empty(ctx, meta)
        else:
            image = cls.image_api.create(ctx, meta)
            cls.image_api.upload(ctx, image['id'], iter([data]),
                                 size=len(data))
        cls.cleanups.append(lambda: cls.image_api.delete(ctx, image['id']))
        return cls.image_api.get(ctx, image['id'])

    @classmethod
    def _wait_volume_status(cls, ctx, volume_id, status, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            volume = cls.volume_api.get(ctx, volume_id)
            if volume['status'] == status:
                return volume
            if time.monotonic() > deadline:
                raise AssertionError('volume %s is %s, wanted %s'
                                     % (volume_id, volume['status'], status))
            time.sleep(0.5)

    @classmethod
    def _snapshot_image(cls, ctx, server_id):
        response = cls.call(ctx, 'POST', '/v2.1/servers/%s/action'
                            % server_id,
                            json={'createImage': {'name': _name('xp-snap')}})
        image_id = cls._ok(response)['image_id']
        cls.cleanups.append(lambda: cls.image_api.delete(ctx, image_id))
        image = guest.wait_for_image(
            cls.image_api, ctx, image_id, timeout=180)
        cls._wait_server(ctx, server_id)
        return image

    @classmethod
    def _set_up_demo(cls):
        demo = cls.demo
        cls.base_image = cls._image(demo, _name('xp-base'))
        cls.data_volume = cls._volume(demo, _name('xp-data'))
        cls.free_volume = cls._volume(demo, _name('xp-free'))
        snap = cls.volume_api.create_snapshot_force(
            demo, cls.free_volume['id'], _name('xp-vsnap'))
        cls.volume_snapshot = cls.volume_api.wait_for_snapshot(
            demo, snap['id'], timeout=180)
        # A: image-backed, with demo's data volume attached.
        cls.server_a = cls._boot(demo, _name('xp-a'),
                                 imageRef=cls.base_image['id'],
                                 metadata={'owner': 'demo'})
        cls._ok(cls.call(demo, 'POST', '/v2.1/servers/%s/os-volume_attachments'
                         % cls.server_a['id'], json={'volumeAttachment': {
                             'volumeId': cls.data_volume['id']}}))
        cls._wait_volume_status(demo, cls.data_volume['id'], 'in-use')
        cls._wait_server(demo, cls.server_a['id'])
        # B: volume-backed (a blank root volume Nova-snapshot creates).
        cls.server_b = cls._boot(demo, _name('xp-b'), imageRef='',
                                 block_device_mapping_v2=[{
                                     'source_type': 'blank',
                                     'destination_type': 'volume',
                                     'boot_index': 0, 'volume_size': 1,
                                     'delete_on_termination': True}])
        cls.root_volume_id = cls._attachments(demo, cls.server_b['id'])[0]
        cls.image_a = cls._snapshot_image(demo, cls.server_a['id'])
        cls.image_b = cls._snapshot_image(demo, cls.server_b['id'])
        mapping = json.loads(cls.image_b['block_device_mapping'])
        cls.snapshot_b_id = mapping[0]['snapshot_id']
        cls.cleanups.append(lambda: cls._delete_snapshot(
            demo, cls.snapshot_b_id))
        cls.servers = [cls.server_a['id'], cls.server_b['id']]
        # C: deleted; its actions stay readable to demo from 2.21.
        server_c = cls._boot(demo, _name('xp-c'),
                             imageRef=cls.base_image['id'])
        cls.call(demo, 'POST', '/v2.1/servers/%s/action' % server_c['id'],
                 json={'forceDelete': None})
        cls._wait_gone(demo, server_c['id'])
        cls.deleted_server = server_c['id']
        cls.deleted_actions = [a['request_id'] for a in cls._ok(cls.call(
            demo, 'GET', '/v2.1/servers/%s/os-instance-actions'
            % server_c['id'], version='2.21'))['instanceActions']]
        cls.images = [cls.base_image['id'], cls.image_a['id'],
                      cls.image_b['id']]
        cls.volumes = [cls.data_volume['id'], cls.free_volume['id'],
                       cls.root_volume_id]
        cls.snapshots = [cls.volume_snapshot['id'], cls.snapshot_b_id]
        # Shared with alt_demo, as a cloud's users share snapshots: alt
        # may see and boot them, never change them, and the volume-backed
        # one names a Cinder snapshot alt cannot read.
        cls.shared_image = cls._image(demo, _name('xp-shared'),
                                      visibility='shared')
        for image_id in (cls.shared_image['id'], cls.image_b['id']):
            cls._share(demo, image_id, cls.alt.project_id)
        cls.shared = [cls.shared_image['id'], cls.image_b['id']]
        cls.images.append(cls.shared_image['id'])
        # demo's keypair: keypairs belong to users, alt_demo is another.
        cls.keypair_name = _name('xp-key')
        cls._ok(cls.call(demo, 'POST', '/v2.1/os-keypairs', version='2.2',
                         json={'keypair': {'name': cls.keypair_name}}),
                status=(201,))
        cls.cleanups.append(lambda: cls.call(
            demo, 'DELETE', '/v2.1/os-keypairs/%s' % cls.keypair_name))
        cls.before = cls._demo_state()

    @classmethod
    def _delete_snapshot(cls, ctx, snapshot_id):
        cls.volume_api.delete_snapshot(ctx, snapshot_id)
        cls.volume_api.wait_for_snapshot_deleted(ctx, snapshot_id,
                                                 timeout=120)

    @classmethod
    def _attachments(cls, ctx, server_id):
        body = cls._ok(cls.call(ctx, 'GET', '/v2.1/servers/%s/'
                                'os-volume_attachments' % server_id))
        return [a['volumeId'] for a in body['volumeAttachments']]

    @classmethod
    def _share(cls, ctx, image_id, project_id):
        url = '%s/v2/images/%s' % (cls.stack['KEYSTONE_GLANCE_URL'],
                                   image_id)
        headers = {'X-Auth-Token': ctx.auth_token}
        if cls.image_api.get(ctx, image_id)['visibility'] != 'shared':
            patch = [{'op': 'replace', 'path': '/visibility',
                      'value': 'shared'}]
            cls._ok(requests.patch(url, timeout=TIMEOUT, json=patch,
                                   headers=dict(headers, **{
                                       'Content-Type': 'application/'
                                       'openstack-images-v2.1-json-patch'})))
        cls._ok(requests.post(url + '/members', headers=headers,
                              timeout=TIMEOUT, json={'member': project_id}))

    @classmethod
    def _set_up_alt(cls):
        alt = cls.alt
        cls.alt_volume = cls._volume(alt, _name('xp-alt-vol'))
        cls.alt_image = cls._image(alt, _name('xp-alt-img'))
        cls.alt_server = cls._boot(alt, _name('xp-alt'),
                                   imageRef=cls.alt_image['id'])
        # An image of alt's own whose mapping names demo's Cinder snapshot:
        # booting it must not make a volume of demo's data.
        mapping = [{'source_type': 'snapshot', 'destination_type': 'volume',
                    'snapshot_id': cls.snapshot_b_id, 'boot_index': 0,
                    'device_name': '/dev/vda', 'volume_size': 1,
                    'delete_on_termination': True}]
        cls.alt_mapping_image = cls._image(
            alt, _name('xp-alt-map'), data=b'',
            block_device_mapping=json.dumps(mapping), bdm_v2='True',
            root_device_name='/dev/vda')
        cls.alt_before = cls._alt_state()

    # -- what must not change ------------------------------------------------

    @classmethod
    def _demo_state(cls):
        state = {}
        for server_id in cls.servers:
            server = cls._ok(cls.call(cls.demo, 'GET', '/v2.1/servers/%s'
                                      % server_id, version='2.104'))[
                'server']
            actions = cls._ok(cls.call(
                cls.demo, 'GET', '/v2.1/servers/%s/os-instance-actions'
                % server_id))['instanceActions']
            state[server_id] = {
                key: server.get(key) for key in (
                    'name', 'status', 'OS-EXT-STS:task_state',
                    'OS-EXT-STS:vm_state', 'OS-EXT-STS:power_state',
                    'updated', 'metadata', 'tenant_id',
                    'os-extended-volumes:volumes_attached',
                    # What a server update (PUT) could change.
                    'description', 'accessIPv4', 'accessIPv6',
                    'OS-DCF:diskConfig', 'OS-EXT-SRV-ATTR:hostname',
                    'pinned_availability_zone')}
            state[server_id]['actions'] = sorted(
                (a['action'], a['request_id']) for a in actions)
            state[server_id]['attachments'] = cls._attachments(cls.demo,
                                                               server_id)
        for image_id in cls.images:
            state[image_id] = cls.image_api.get(cls.demo, image_id)
        for volume_id in cls.volumes:
            volume = cls.volume_api.get(cls.demo, volume_id)
            state[volume_id] = (volume['status'], sorted(
                a.get('server_id') or '' for a in volume.get('attachments')
                or []))
        for snapshot_id in cls.snapshots:
            snap = cls.volume_api.get_snapshot(cls.demo, snapshot_id)
            state[snapshot_id] = (snap['status'], snap['volume_id'])
        state['volumes'] = cls._cinder_ids(cls.demo, 'volumes')
        state['snapshots'] = cls._cinder_ids(cls.demo, 'snapshots')
        state['images'] = sorted(
            i['id'] for i in cls.image_api.list(cls.demo)
            if i.get('owner') == cls.demo.project_id)
        state['keypairs'] = sorted(
            (k['keypair']['name'], k['keypair']['fingerprint'])
            for k in cls._ok(cls.call(cls.demo, 'GET', '/v2.1/os-keypairs'))[
                'keypairs'])
        return state

    @classmethod
    def _cinder_ids(cls, ctx, collection):
        """Every volume or snapshot of ``ctx``'s project, by id."""
        url = '%s/%s/%s?all_tenants=0' % (cls.stack['KEYSTONE_CINDER_URL'],
                                          ctx.project_id, collection)
        body = cls._ok(requests.get(url, timeout=TIMEOUT, headers={
            'X-Auth-Token': ctx.auth_token}))
        return sorted(item['id'] for item in body[collection])

    @classmethod
    def _alt_state(cls):
        servers = cls.db.instance_list({'project_id': cls.alt.project_id,
                                        'deleted': None})
        return {
            'servers': sorted(s['uuid'] for s in servers),
            'images': sorted(i['id'] for i in cls.image_api.list(cls.alt)
                             if i.get('owner') == cls.alt.project_id),
            'snapshots': cls._cinder_ids(cls.alt, 'snapshots'),
            'volumes': cls._cinder_ids(cls.alt, 'volumes'),
            'volume': cls.volume_api.get(cls.alt, cls.alt_volume['id'])[
                'status'],
            'image': {key: cls.image_api.get(cls.alt, cls.alt_image['id'])[
                key] for key in ('owner', 'visibility', 'updated_at')},
        }

    # -- the probe ---------------------------------------------------------

    def setUp(self):
        super().setUp()
        self.maxDiff = None  # a changed state says what changed
        self.tally = collections.defaultdict(collections.Counter)
        self.violations = []

    def probe(self, who, ctx, method, template, path, allowed,
              version='2.45', headers=None, json_body=None,
              no_foreign_ids=False, names=None):
        """One request; record its status under ``template`` and a
        violation when the status is not allowed. ``no_foreign_ids``: a
        200 list must name none of demo's ids. ``names``: a 400 must name
        this id (refused for the foreign source, not for something else).
        """
        response = self.call(ctx, method, path, version=version,
                             headers=headers, json=json_body)
        status = response.status_code
        self.tally['%s %s' % (method, template)][status] += 1
        if status not in allowed:
            self.violations.append('%s %s %s (v%s%s): %s %s' % (
                who, method, path, version, ' spoofed' if headers else '',
                status, response.text[:300]))
        elif status == 400 and names and names not in response.text:
            self.violations.append('%s %s %s (v%s): a 400 not about %s: %s'
                                   % (who, method, path, version, names,
                                      response.text[:300]))
        elif status >= 400:
            body = response.json()
            if len(body) != 1 or 'message' not in next(iter(body.values())):
                self.violations.append('%s %s %s: not a fault body: %s' % (
                    who, method, path, response.text[:300]))
        if no_foreign_ids and status == 200:
            leaked = [i for i in self.servers + self.images + self.volumes
                      + [self.keypair_name]
                      if i in response.text and i not in self.shared]
            if leaked:
                self.violations.append('%s %s %s: lists demo\'s %s' % (
                    who, method, path, leaked))
        return response

    def _server_routes(self, who, ctx, server_id, headers, reader=False):
        """Every /servers/{server_id}... route with ``server_id``."""
        allowed = FOREIGN
        item = '/v2.1/servers/%s' % server_id
        for version in VERSIONS:
            def probe(method, template, path, body=None):
                self.probe(who, ctx, method, template, path, allowed,
                           version=version, headers=headers, json_body=body)
            if not reader:
                probe('GET', '/servers/{server_id}', item)
                probe('GET', '/servers/{server_id}/os-instance-actions',
                      item + '/os-instance-actions')
                for request_id in self.before[server_id]['actions']:
                    probe('GET', '/servers/{server_id}/os-instance-actions/'
                          '{request_id}',
                          item + '/os-instance-actions/%s' % request_id[1])
                probe('GET', '/servers/{server_id}/os-volume_attachments',
                      item + '/os-volume_attachments')
                for volume_id in self.volumes:
                    probe('GET', '/servers/{server_id}/os-volume_attachments/'
                          '{volume_id}',
                          item + '/os-volume_attachments/%s' % volume_id)
            probe('DELETE', '/servers/{server_id}', item)
            probe('PUT', '/servers/{server_id}', item,
                  {'server': _update_fields(version)})
            # Not served here (no server metadata routes): the answer
            # names no server, whoever owns it.
            for method in ('GET', 'POST', 'PUT'):
                self.probe(who, ctx, method,
                           '/servers/{server_id}/metadata (not served)',
                           item + '/metadata', {404}, version=version,
                           headers=headers,
                           json_body=None if method == 'GET' else {
                               'metadata': {'stolen': 'yes'}})
            for action, body in ACTION_BODIES.items():
                # The reader too: console output is a member's.
                probe('POST', '/servers/{server_id}/action (%s)' % action,
                      item + '/action', body)
            for volume_id in (self.free_volume['id'], self.alt_volume['id']):
                probe('POST', '/servers/{server_id}/os-volume_attachments',
                      item + '/os-volume_attachments',
                      {'volumeAttachment': {'volumeId': volume_id}})
            for volume_id in self.volumes:
                probe('DELETE', '/servers/{server_id}/os-volume_attachments/'
                      '{volume_id}',
                      item + '/os-volume_attachments/%s' % volume_id)
                # 2.85 update (the swap before): the body is valid at every
                # version, so only the server's owner decides.
                probe('PUT', '/servers/{server_id}/os-volume_attachments/'
                      '{volume_id}',
                      item + '/os-volume_attachments/%s' % volume_id,
                      {'volumeAttachment': {'volumeId': volume_id}})

    def _deleted_server_routes(self, who, ctx, headers):
        """The 2.21 instance actions of demo's deleted server: readable
        by its project only."""
        item = '/v2.1/servers/%s/os-instance-actions' % self.deleted_server
        for version in ('2.21', '2.104'):
            self.probe(who, ctx, 'GET',
                       '/servers/{server_id}/os-instance-actions (deleted)',
                       item, FOREIGN, version=version, headers=headers)
            for request_id in self.deleted_actions:
                self.probe(who, ctx, 'GET',
                           '/servers/{server_id}/os-instance-actions/'
                           '{request_id} (deleted)',
                           '%s/%s' % (item, request_id), FOREIGN,
                           version=version, headers=headers)

    def _image_routes(self, who, ctx, image_id, headers, reader=False):
        item = '/v2.1/images/%s' % image_id
        meta = item + '/metadata'
        # An image shared with alt_demo: it may read it (Glance shows it
        # to members), and changing it stays a 403.
        shared = who.startswith('alt') and image_id in self.shared
        for version in PROXY_VERSIONS:
            def probe(method, template, path, body=None, allowed=FOREIGN):
                if shared:
                    template += ' (shared)'
                self.probe(who, ctx, method, template, path, allowed,
                           version=version, headers=headers, json_body=body)
            if not reader:
                readable = {200} if shared else FOREIGN
                probe('GET', '/images/{image_id}', item, allowed=readable)
                probe('GET', '/images/{image_id}/metadata', meta,
                      allowed=readable)
                probe('GET', '/images/{image_id}/metadata/{key}',
                      meta + '/image_type', allowed=FOREIGN | readable)
            probe('DELETE', '/images/{image_id}', item)
            probe('POST', '/images/{image_id}/metadata', meta,
                  {'metadata': {'stolen': 'yes'}})
            probe('PUT', '/images/{image_id}/metadata', meta,
                  {'metadata': {'stolen': 'yes'}})
            probe('PUT', '/images/{image_id}/metadata/{key}',
                  meta + '/stolen', {'meta': {'stolen': 'yes'}})
            probe('DELETE', '/images/{image_id}/metadata/{key}',
                  meta + '/image_type')

    def _boots(self, who, ctx, headers):
        """Boots from demo's images, volumes and snapshots."""
        # (the demo id the refusal must name, the server fields). Booting
        # the plain shared image is alt's right; the shared volume-backed
        # snapshot image is refused for its Cinder snapshot.
        private = [i for i in self.images if i not in self.shared]
        sources = [(i, {'imageRef': i}) for i in private]
        for image_id in (self.alt_mapping_image['id'], self.image_b['id']):
            sources.append((self.snapshot_b_id, {'imageRef': image_id}))
        for volume_id in self.volumes:
            sources.append((volume_id, {
                'imageRef': '', 'block_device_mapping_v2': [{
                    'source_type': 'volume', 'destination_type': 'volume',
                    'boot_index': 0, 'uuid': volume_id}]}))
            # A data volume beside an image of alt's own.
            sources.append((volume_id, {
                'imageRef': self.alt_image['id'],
                'block_device_mapping_v2': [{
                    'source_type': 'volume', 'destination_type': 'volume',
                    'uuid': volume_id}]}))
        for snapshot_id in self.snapshots:
            sources.append((snapshot_id, {
                'imageRef': '', 'block_device_mapping_v2': [{
                    'source_type': 'snapshot', 'destination_type': 'volume',
                    'boot_index': 0, 'volume_size': 1,
                    'uuid': snapshot_id}]}))
        for image_id in private:
            sources.append((image_id, {
                'imageRef': '', 'block_device_mapping_v2': [{
                    'source_type': 'image', 'destination_type': 'volume',
                    'boot_index': 0, 'volume_size': 1, 'uuid': image_id}]}))
        for version in VERSIONS:
            for foreign_id, source in sources:
                self.probe(who, ctx, 'POST', '/servers (boot)',
                           '/v2.1/servers', FOREIGN_BOOT, version=version,
                           headers=headers, names=foreign_id,
                           json_body=_server_body(version, **source))

    def _lists(self, who, ctx, headers):
        demo = self.demo.project_id
        # The create request of demo's server (multiple create's filter).
        reservation = self.db.instance_get(
            self.server_a['id'])['reservation_id']
        for version in VERSIONS:
            for path in ('/servers', '/servers/detail'):
                for query in ('', '?project_id=%s' % demo,
                              '?tenant_id=%s' % demo,
                              '?uuid=%s' % self.server_a['id'],
                              '?image=%s' % self.base_image['id'],
                              '?deleted=true&changes-since=2000-01-01',
                              '?name=xp-',
                              '?reservation_id=%s' % reservation):
                    self.probe(who, ctx, 'GET', path, '/v2.1' + path + query,
                               {200}, version=version, headers=headers,
                               no_foreign_ids=True)
                for query in ('?all_tenants=1',
                              '?all_tenants=1&project_id=%s' % demo):
                    self.probe(who, ctx, 'GET', path + ' (all_tenants)',
                               '/v2.1' + path + query, {403},
                               version=version, headers=headers)
                # Someone else's server as a marker is no page boundary.
                self.probe(who, ctx, 'GET', path + ' (marker)',
                           '/v2.1' + path + '?marker=%s'
                           % self.server_a['id'], {400}, version=version,
                           headers=headers)
        for version in PROXY_VERSIONS:
            for path in ('/images', '/images/detail'):
                for query in ('', '?server=%s' % self.server_a['id'],
                              '?server=%s' % self.server_b['id'],
                              '?property-owner=%s' % demo):
                    self.probe(who, ctx, 'GET', path, '/v2.1' + path + query,
                               {200}, version=version, headers=headers,
                               no_foreign_ids=True)

    def _other_routes(self, who, ctx, headers):
        """Routes of alt's own server with demo's ids, the URL form naming
        demo's project, os-services and a forced host."""
        own = '/v2.1/servers/%s' % self.alt_server['id']
        demo = self.demo.project_id
        for version in VERSIONS:
            def probe(method, template, path, allowed=FOREIGN, body=None):
                self.probe(who, ctx, method, template, path, allowed,
                           version=version, headers=headers, json_body=body)
            for server_id in self.servers:
                for _action, request_id in self.before[server_id]['actions']:
                    probe('GET', '/servers/{server_id}/os-instance-actions/'
                          '{request_id} (own server)',
                          own + '/os-instance-actions/%s' % request_id)
            for volume_id in self.volumes:
                probe('POST', '/servers/{server_id}/os-volume_attachments '
                      '(own server)', own + '/os-volume_attachments',
                      FOREIGN_BOOT,
                      {'volumeAttachment': {'volumeId': volume_id}})
                probe('GET', '/servers/{server_id}/os-volume_attachments/'
                      '{volume_id} (own server)',
                      own + '/os-volume_attachments/%s' % volume_id)
                probe('DELETE', '/servers/{server_id}/os-volume_attachments/'
                      '{volume_id} (own server)',
                      own + '/os-volume_attachments/%s' % volume_id)
            for server_id in self.servers:
                # Nova's 400: the URL's project is not the token's.
                probe('GET', '/{project_id}/servers/{server_id}',
                      '/v2.1/%s/servers/%s' % (demo, server_id), {400})
                probe('GET', '/{project_id}/servers/{server_id}',
                      '/v2.1/%s/servers/%s' % (self.alt.project_id,
                                               server_id))
            probe('GET', '/os-services', '/v2.1/os-services', {403})
            probe('PUT', '/os-services/{service_id}',
                  '/v2.1/os-services/disable', {403},
                  {'host': self.deployment.hosts[0],
                   'binary': 'nova-snapshot-compute'})
            probe('DELETE', '/os-services/{service_id}',
                  '/v2.1/os-services/1', {403})
            # Events about demo's servers (and their volumes): the service
            # role or an admin only; an accepted volume-extended would add
            # an instance action to demo's server.
            for server_id in self.servers:
                probe('POST', '/os-server-external-events',
                      '/v2.1/os-server-external-events', {403},
                      {'events': [_external_event(version, server_id)]})
            probe('POST', '/servers (forced host)', '/v2.1/servers', {403},
                  _server_body(version, imageRef=self.alt_image['id'],
                               availability_zone='nova:%s'
                               % self.deployment.hosts[0]))

    def _keypair_routes(self, who, ctx, headers):
        """demo's keypair: not found by its name alone, 403 when demo's
        user is named (from 2.10; before it user_id is ignored), never
        listed, deleted, replaced or usable for a boot or a rebuild."""
        name = self.keypair_name
        item = '/v2.1/os-keypairs/' + name
        own = '/v2.1/servers/%s' % self.alt_server['id']
        for version in VERSIONS:
            def probe(method, template, path, allowed=FOREIGN, body=None,
                      **kwargs):
                self.probe(who, ctx, method, template, path, allowed,
                           version=version, headers=headers, json_body=body,
                           **kwargs)
            as_demo = '?user_id=' + self.demo.user_id
            for method in ('GET', 'DELETE'):
                probe(method, '/os-keypairs/{keypair_name}', item, {404})
                probe(method, '/os-keypairs/{keypair_name} (user_id)',
                      item + as_demo,
                      {403} if version != '2.1' else {404})
            probe('GET', '/os-keypairs', '/v2.1/os-keypairs', {200},
                  no_foreign_ids=True)
            probe('GET', '/os-keypairs (user_id)',
                  '/v2.1/os-keypairs' + as_demo,
                  {403} if version != '2.1' else {200}, no_foreign_ids=True)
            # Create demo's keypair, or one for demo's user: refused
            # (user_id is an unknown key at 2.1).
            probe('POST', '/os-keypairs (user_id)', '/v2.1/os-keypairs',
                  {403} if version != '2.1' else {400},
                  {'keypair': {'name': name, 'user_id': self.demo.user_id,
                               'public_key': _PUBLIC_KEY}})
            probe('POST', '/servers (boot, key_name)', '/v2.1/servers',
                  {400}, _server_body(version, imageRef=self.alt_image['id'],
                                      key_name=name), names='key_name')
            if version == '2.104':
                probe('POST', '/servers/{server_id}/action (rebuild, '
                      'key_name, own server)', own + '/action', {400},
                      {'rebuild': {'imageRef': self.alt_image['id'],
                                   'key_name': name}}, names='key_name')

    def _report(self, title):
        lines = ['%s: %d requests' % (title, sum(
            sum(c.values()) for c in self.tally.values()))]
        for route in sorted(self.tally):
            statuses = ', '.join('%d x%d' % (status, count) for status, count
                                 in sorted(self.tally[route].items()))
            lines.append('  %-70s %s' % (route, statuses))
        print('\n'.join(lines))
        path = os.path.join(self.deployment.state_dir,
                            'cross_project_tally.json')
        tallies = {}
        if os.path.exists(path):
            with open(path) as handle:
                tallies = json.load(handle)
        tallies[title] = {route: dict(counter)
                          for route, counter in self.tally.items()}
        with open(path, 'w') as handle:
            json.dump(tallies, handle, indent=1, sort_keys=True)
        if os.environ.get('CROSS_PROJECT_TALLY'):
            with open(os.environ['CROSS_PROJECT_TALLY'], 'a') as handle:
                handle.write('\n'.join(lines) + '\n')

    def _check_unchanged(self):
        # Casts a wrongly accepted request made would land by now.
        time.sleep(2)
        self.assertEqual(self.before, self._demo_state())
        self.assertEqual(self.alt_before, self._alt_state())

    def _probe_everything(self, who, ctx, headers=None):
        for server_id in self.servers:
            self._server_routes(who, ctx, server_id, headers)
        self._deleted_server_routes(who, ctx, headers)
        for image_id in self.images:
            self._image_routes(who, ctx, image_id, headers)
        self._boots(who, ctx, headers)
        self._lists(who, ctx, headers)
        self._other_routes(who, ctx, headers)
        self._keypair_routes(who, ctx, headers)

    # -- the tests -----------------------------------------------------------

    def test_every_route_covered(self):
        """The probe knows every route the router serves: a new route
        fails here until it is probed."""
        probed = {
            '/servers', '/servers/detail', '/servers/{server_id}',
            '/servers/{server_id}/action',
            '/servers/{server_id}/os-instance-actions',
            '/servers/{server_id}/os-instance-actions/{request_id}',
            '/servers/{server_id}/os-volume_attachments',
            '/servers/{server_id}/os-volume_attachments/{volume_id}',
            '/images', '/images/detail', '/images/{image_id}',
            '/images/{image_id}/metadata',
            '/images/{image_id}/metadata/{key}',
            '/os-services', '/os-services/{service_id}',
            '/os-keypairs', '/os-keypairs/{keypair_name}',
            '/os-server-external-events',
        }
        # Not project resources: versions and the flavor catalogue.
        public = {'/', '/v2.1', '/flavors', '/flavors/detail',
                  '/flavors/{flavor_id}'}
        served = {t[len('/v2.1'):] if t.startswith('/v2.1/') else t
                  for t in router.ROUTES}
        self.assertEqual(set(), served - probed - public)
        self.assertEqual(set(ACTION_BODIES), set(server_actions.ACTIONS))

    def test_alt_demo_reaches_nothing_of_demo(self):
        self._probe_everything('alt_demo', self.alt)
        self._report('alt_demo')
        self.assertEqual([], self.violations)
        self._check_unchanged()

    def test_spoofed_identity_headers_give_no_powers(self):
        """alt_demo's token with headers claiming admin in demo's project:
        keystonemiddleware drops them; nothing of demo's is reached, no
        admin listing, no forced host, no os-services."""
        headers = dict(SPOOF, **{
            'X-Project-Id': self.demo.project_id,
            'X-Tenant-Id': self.demo.project_id,
            'X-Tenant': 'demo', 'X-Project-Name': 'demo',
            'X-User-Id': self.demo.user_id, 'X-User': 'demo',
            'X-Service-Project-Id': self.demo.project_id})
        self._probe_everything('alt_demo', self.alt, headers)
        self._report('alt_demo spoofed')
        self.assertEqual([], self.violations)
        self._check_unchanged()

    def test_demo_reader_changes_nothing(self):
        """demo's reader sees demo's resources but every route that
        changes something is 403, with or without headers claiming
        admin."""
        reader = self.reader
        for headers in (None, dict(SPOOF)):
            for server_id in self.servers:
                self._server_routes('demo-reader', reader, server_id,
                                    headers, reader=True)
            for image_id in self.images:
                self._image_routes('demo-reader', reader, image_id, headers,
                                   reader=True)
            self.probe('demo-reader', reader, 'POST', '/servers (boot)',
                       '/v2.1/servers', {403}, headers=headers,
                       json_body=_server_body(
                           '2.45', imageRef=self.base_image['id']))
            self.probe('demo-reader', reader, 'GET', '/servers (all_tenants)',
                       '/v2.1/servers?all_tenants=1', {403}, headers=headers)
        self._report('demo-reader')
        self.assertEqual([], self.violations)
        # The reader does read: the probe above is not refusing everyone.
        self.assertEqual(200, self.call(
            reader, 'GET', '/v2.1/servers/%s' % self.server_a['id'])
            .status_code)
        self._check_unchanged()

    def test_alt_demo_cannot_give_its_images_away(self):
        """Metadata that names Glance's owner or visibility, through the
        images proxy or createImage of alt's own server, never makes an
        image demo's or public."""
        alt, demo = self.alt, self.demo.project_id
        meta = '/v2.1/images/%s/metadata' % self.alt_image['id']
        refused = {400, 403}
        for version in PROXY_VERSIONS:
            for body in ({'owner': demo}, {'visibility': 'public'},
                         {'visibility': 'community'}):
                self.probe('alt_demo', alt, 'POST',
                           '/images/{image_id}/metadata (own image)', meta,
                           refused, version=version,
                           json_body={'metadata': body})
                key = next(iter(body))
                self.probe('alt_demo', alt, 'PUT',
                           '/images/{image_id}/metadata/{key} (own image)',
                           '%s/%s' % (meta, key), refused, version=version,
                           json_body={'meta': body})
        image = self.image_api.get(alt, self.alt_image['id'])
        self.assertEqual((alt.project_id, 'private'),
                         (image['owner'], image['visibility']))
        made = []
        for version in VERSIONS:
            response = self.probe(
                'alt_demo', alt, 'POST',
                '/servers/{server_id}/action (createImage, own server)',
                '/v2.1/servers/%s/action' % self.alt_server['id'],
                {202, 400, 403}, version=version, json_body={'createImage': {
                    'name': _name('xp-give'), 'metadata': {
                        'owner': demo, 'visibility': 'public',
                        'instance_owner': demo,
                        'instance_uuid': self.server_a['id']}}})
            if response.status_code == 202:
                made.append(response.json()['image_id'] if response.content
                            else response.headers['Location'].rsplit('/')[-1])
                self._wait_server(alt, self.alt_server['id'])
        self._report('alt_demo own images')
        for image_id in made:
            image = guest.wait_for_image(self.image_api, alt, image_id,
                                         timeout=120)
            self.image_api.delete(alt, image_id)
            self.assertEqual((alt.project_id, 'private'),
                             (image['owner'], image['visibility']))
            self.assertRaises(exception.ImageNotFound, self.image_api.get,
                              self.demo, image_id)
        self.assertEqual([], self.violations)
        self._check_unchanged()
