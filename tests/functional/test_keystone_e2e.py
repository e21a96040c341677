"""The service run as a cloud runs it: Keystone tokens at the API, the
stack's Keystone-mode Glance (:9393) and Cinder (:8786) found in the
catalog and called with the user's token plus the service user's.

A Keystone ``Deployment`` (API on the catalog's port 8774 when it is free)
boots the tiny guest as ``demo`` and snapshots it; the roles come from
Keystone (``demo-reader`` is refused), a client's identity headers are
ignored, Cinder refuses another project's volume, an expired user token
passes beside the service token, token-less work (the restart clean-up
included) acts as the service user, and the unmodified ``openstack`` and
``nova`` clients of ``.stack/clients-venv`` work against it.
"""

import json
import os
import socket
import subprocess
import unittest
import uuid

import requests

from nova_snapshot import conf as ns_conf
from nova_snapshot import context as ns_context
from nova_snapshot.image import glance
from nova_snapshot.volume import cinder
from tests.functional.fixtures import deployment as deployment_fixture
from tests.functional.fixtures import guest
from tests.functional.fixtures import keystone
from tests.functional.fixtures import stack as stack_fixture


def _port_free(port):
    with socket.socket() as sock:
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def keystone_conf(stack, service_user=True):
    """An in-process conf as the Keystone deployment's services have it."""
    conf = ns_conf.new_conf([])
    fake = {'api': {}}
    deployment_fixture.keystone_sections(fake, stack)
    groups = ('glance', 'cinder', 'service_user') if service_user else (
        'glance', 'cinder')
    from keystoneauth1 import loading as ks_loading
    for group in groups:
        if 'auth_type' in fake[group]:
            conf.register_opts(ks_loading.get_auth_plugin_conf_options(
                fake[group]['auth_type']), group=group)
        for key, value in fake[group].items():
            if key == 'valid_interfaces':
                value = [value]
            elif value in ('true', 'false'):
                value = value == 'true'
            conf.set_override(key, value, group=group)
    return conf


class KeystoneDeploymentTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = stack_fixture.read_stack_env()
        port = int(cls.stack.get('KEYSTONE_COMPUTE_PORT', 8774))
        cls.deployment = deployment_fixture.Deployment(
            stack_env=cls.stack, keystone=True,
            api_port=port if _port_free(port) else None,
            # As a cloud serves it: under uWSGI with the shipped ini.
            uwsgi=True,
            extra_conf={'DEFAULT': {
                # keystoneauth logs each request's headers (tokens as
                # hashes): how the test sees the service token go out.
                'default_log_levels': 'keystoneauth=DEBUG,amqp=WARN,'
                'oslo.messaging=INFO,oslo_messaging=INFO,stevedore=WARN,'
                'urllib3.connectionpool=WARN,keystonemiddleware=WARN'}})
        try:
            cls.deployment.start()
        except Exception:
            cls.deployment.stop(remove_state=False)
            raise
        cls.demo = keystone.user_context(cls.stack, 'demo')
        cls.reader = keystone.user_context(cls.stack, 'demo-reader')
        cls.alt = keystone.user_context(cls.stack, 'alt_demo')
        cls.client = keystone.compute_client(cls.deployment,
                                             cls.demo.auth_token)
        cls.image_api = glance.GlanceAPI(keystone_conf(cls.stack))
        cls.base_image = guest.upload_tiny_guest(
            cls.image_api, cls.demo, cls.stack['GUEST_DIR'],
            name='ks-guest-%s' % uuid.uuid4().hex[:6])
        cls.images = [cls.base_image['id'], cls.base_image['kernel_id'],
                      cls.base_image['ramdisk_id']]
        cls.servers = []
        cls.server = cls.boot('ks-vm')

    @classmethod
    def boot(cls, name, client=None, **extra):
        client = client or cls.client
        server = client.create_server(name, cls.base_image['id'], **extra)
        cls.servers.append((client, server['id']))
        return client.wait_for_server(server['id'], timeout=180)

    @classmethod
    def tearDownClass(cls):
        try:
            for client, server_id in getattr(cls, 'servers', []):
                client.delete_server(server_id)
            for client, server_id in getattr(cls, 'servers', []):
                try:
                    client.wait_for_server_gone(server_id)
                except RuntimeError:
                    pass
            for image_id in getattr(cls, 'images', []):
                try:
                    cls.image_api.delete(cls.demo, image_id)
                except Exception:
                    pass
        finally:
            cls.deployment.stop(
                remove_state=not os.environ.get('NOVA_SNAPSHOT_KEEP_STATE'))
        super().tearDownClass()

    def api(self, method, path, token=None, **kwargs):
        headers = kwargs.pop('headers', {})
        if token:
            headers['X-Auth-Token'] = token
        headers.setdefault('OpenStack-API-Version', 'compute 2.45')
        return requests.request(method, self.deployment.endpoint + '/v2.1'
                                + path, headers=headers, timeout=60,
                                **kwargs)

    # -- authentication and roles -------------------------------------

    def test_no_token_is_401_with_www_authenticate(self):
        response = self.api('GET', '/servers')
        self.assertEqual(401, response.status_code)
        self.assertEqual('Keystone uri="%s"' % self.stack['KEYSTONE_URL'],
                         response.headers['WWW-Authenticate'])
        response = self.api('GET', '/servers', token='not-a-token')
        self.assertEqual(401, response.status_code)

    def test_spoofed_identity_headers_are_ignored(self):
        spoof = {'X-Roles': 'admin,member', 'X-Role': 'admin',
                 'X-Project-Id': self.demo.project_id,
                 'X-Tenant-Id': self.demo.project_id,
                 'X-Identity-Status': 'Confirmed'}
        # alt_demo claiming admin in demo's project sees nothing of demo's.
        response = self.api('GET', '/servers/%s' % self.server['id'],
                            token=self.alt.auth_token, headers=dict(spoof))
        self.assertEqual(404, response.status_code, response.text)
        # A reader claiming member cannot create.
        response = self.api('POST', '/servers', token=self.reader.auth_token,
                            headers=dict(spoof), json={'server': {
                                'name': 'nope', 'flavorRef': '1',
                                'imageRef': self.base_image['id'],
                                'networks': 'none'}})
        self.assertEqual(403, response.status_code, response.text)
        # No token at all: the headers alone authenticate nothing.
        response = self.api('GET', '/servers', headers=dict(spoof))
        self.assertEqual(401, response.status_code)

    def test_reader_lists_but_cannot_create_image(self):
        response = self.api('GET', '/servers', token=self.reader.auth_token)
        self.assertEqual(200, response.status_code)
        self.assertIn(self.server['id'],
                      [s['id'] for s in response.json()['servers']])
        response = self.api(
            'POST', '/servers/%s/action' % self.server['id'],
            token=self.reader.auth_token,
            json={'createImage': {'name': 'nope'}})
        self.assertEqual(403, response.status_code)
        self.assertEqual(
            "Policy doesn't allow os_compute_api:servers:create_image to be "
            "performed.", response.json()['forbidden']['message'])

    # -- the snapshot, as the user, with a service token ---------------

    def test_create_image_as_demo_with_service_token(self):
        self.assertEqual(self.demo.project_id, self.server['tenant_id'])
        self.assertEqual(self.demo.user_id, self.server['user_id'])
        name = 'ks-snap-%s' % uuid.uuid4().hex[:6]
        image_id = self.client.create_image(self.server['id'], name,
                                            metadata={'purpose': 'ks-test'})
        self.images.append(image_id)
        image = guest.wait_for_image(self.image_api, self.demo, image_id,
                                     timeout=300)
        self.assertEqual(self.demo.project_id, image['owner'])
        self.assertEqual('private', image['visibility'])
        self.assertEqual(name, image['name'])
        self.assertEqual('snapshot', image['image_type'])
        self.assertEqual(self.server['id'], image['instance_uuid'])
        self.assertEqual(self.demo.user_id, image['user_id'])
        self.assertEqual(self.base_image['id'], image['base_image_ref'])
        self.assertEqual(self.base_image['kernel_id'], image['kernel_id'])
        self.assertEqual('ks-test', image['purpose'])
        self.assertEqual('qcow2', image['disk_format'])
        self.assertGreater(image['size'], 0)
        # alt_demo's token does not see it: Glance checked the project.
        from nova_snapshot import exception
        self.assertRaises(exception.ImageNotFound, self.image_api.get,
                          self.alt, image_id)
        # The compute service uploaded with demo's token and its own
        # service token (keystoneauth logs tokens as hashes).
        upload = self._logged_requests('compute-%s'
                                       % self.deployment.hosts[0],
                                       'PUT', '/v2/images/%s/file' % image_id)
        self.assertTrue(upload, 'no upload request in the compute log')
        self.assertIn('X-Auth-Token: {SHA256}', upload[0])
        self.assertIn('X-Service-Token: {SHA256}', upload[0])

    def _logged_requests(self, service, method, path):
        log = os.path.join(self.deployment.state_dir, '%s.log' % service)
        with open(log, errors='replace') as handle:
            return [line for line in handle
                    if 'REQ: curl' in line and '-X %s' % method in line
                    and path in line]

    def test_glance_accepts_user_and_service_token(self):
        url = self.stack['KEYSTONE_GLANCE_URL'] + '/v2/images?limit=1'
        service = keystone.session(self.stack, 'nova-snapshot').get_token()
        response = requests.get(url, timeout=30, headers={
            'X-Auth-Token': self.demo.auth_token,
            'X-Service-Token': service})
        self.assertEqual(200, response.status_code, response.text)
        # The service token never stands in for the user's.
        response = requests.get(url, timeout=30, headers={
            'X-Auth-Token': 'not-a-token', 'X-Service-Token': service})
        self.assertEqual(401, response.status_code, response.text)

    def test_an_expired_user_token_passes_with_a_service_token(self):
        """What makes a snapshot outlive its user's token: Glance and
        Cinder (keystonemiddleware, service_token_roles_required) accept an
        expired user token only next to a token of a service-role user."""
        expired = keystone.expired_token(self.stack, self.demo.user_id,
                                         self.demo.project_id)
        service = keystone.session(self.stack, 'nova-snapshot').get_token()
        for url in (self.stack['KEYSTONE_GLANCE_URL'] + '/v2/images?limit=1',
                    '%s/%s/volumes' % (self.stack['KEYSTONE_CINDER_URL'],
                                       self.demo.project_id)):
            with self.subTest(url=url):
                def get(**headers):
                    return requests.get(url, timeout=30, headers=dict(
                        headers, **{'X-Auth-Token': expired})).status_code
                self.assertEqual(401, get())
                self.assertEqual(200, get(**{'X-Service-Token': service}))
                # A member's token is no service token.
                self.assertEqual(401, get(**{
                    'X-Service-Token': self.alt.auth_token}))

    def test_our_clients_survive_an_expired_user_token(self):
        ctx = ns_context.RequestContext.from_dict(self.demo.to_dict())
        ctx.auth_token = keystone.expired_token(
            self.stack, self.demo.user_id, self.demo.project_id)
        image_api = glance.GlanceAPI(keystone_conf(self.stack))
        volume_api = cinder.CinderAPI(keystone_conf(self.stack))
        self.assertEqual(self.base_image['id'], image_api.get(
            ctx, self.base_image['id'])['id'])
        self.assertIn('maxTotalVolumes', volume_api.get_absolute_limits(ctx))
        # An upload, as a snapshot's ends, with the expired token.
        image = image_api.create(ctx, {'name': 'ks-expired-upload',
                                       'disk_format': 'raw',
                                       'container_format': 'bare'})
        self.images.append(image['id'])
        data = os.urandom(3 * 1024 * 1024 + 17)
        self.assertEqual(len(data), image_api.upload(ctx, image['id'],
                                                     iter([data])))
        uploaded = image_api.get(self.demo, image['id'])
        self.assertEqual(('active', len(data)),
                         (uploaded['status'], uploaded['size']))
        # Without [service_user] send_service_user_token they are refused.
        conf = keystone_conf(self.stack)
        conf.set_override('send_service_user_token', False,
                          group='service_user')
        from nova_snapshot import exception
        self.assertRaises(exception.ImageNotAuthorized,
                          glance.GlanceAPI(conf).get, ctx,
                          self.base_image['id'])
        self.assertRaises(exception.VolumeError,
                          cinder.CinderAPI(conf).get_absolute_limits, ctx)

    # -- Cinder checks the caller's project ----------------------------

    def test_boot_from_another_projects_volume_is_400(self):
        volume_api = cinder.CinderAPI(keystone_conf(self.stack))
        volume = volume_api.create(self.demo, 1, 'ks-demo-vol-%s'
                                   % uuid.uuid4().hex[:6])
        self.addCleanup(self._delete_volume, volume_api, volume['id'])
        volume_api.wait_for_volume(self.demo, volume['id'], timeout=120)
        alt_client = keystone.compute_client(self.deployment,
                                             self.alt.auth_token)
        name = 'ks-steal-%s' % uuid.uuid4().hex[:6]
        response = alt_client.request('POST', '/servers', json={'server': {
            'name': name, 'flavorRef': '1', 'imageRef': '',
            'networks': 'none', 'block_device_mapping_v2': [{
                'source_type': 'volume', 'destination_type': 'volume',
                'boot_index': 0, 'uuid': volume['id']}]}})
        self.assertEqual(400, response.status_code, response.text)
        self.assertEqual('Block Device Mapping is Invalid: failed to get '
                         'volume %s.' % volume['id'],
                         response.json()['badRequest']['message'])
        servers = alt_client.request('GET', '/servers').json()['servers']
        self.assertNotIn(name, [s['name'] for s in servers])
        after = volume_api.get(self.demo, volume['id'])
        self.assertEqual('available', after['status'])
        self.assertEqual([], after['attachments'])
        # The same for a snapshot of demo's volume.
        snap = volume_api.create_snapshot_force(self.demo, volume['id'],
                                                'ks-demo-snap')
        self.addCleanup(self._delete_snapshot, volume_api, snap['id'])
        volume_api.wait_for_snapshot(self.demo, snap['id'], timeout=120)
        response = alt_client.request('POST', '/servers', json={'server': {
            'name': name, 'flavorRef': '1', 'imageRef': '',
            'networks': 'none', 'block_device_mapping_v2': [{
                'source_type': 'snapshot', 'destination_type': 'volume',
                'boot_index': 0, 'volume_size': 1, 'uuid': snap['id']}]}})
        self.assertEqual(400, response.status_code, response.text)
        self.assertEqual('Block Device Mapping is Invalid: failed to get '
                         'snapshot %s.' % snap['id'],
                         response.json()['badRequest']['message'])
        servers = alt_client.request('GET', '/servers').json()['servers']
        self.assertNotIn(name, [s['name'] for s in servers])

    def test_attach_another_projects_volume_is_404(self):
        volume_api = cinder.CinderAPI(keystone_conf(self.stack))
        volume = volume_api.create(self.alt, 1, 'ks-alt-vol-%s'
                                   % uuid.uuid4().hex[:6])
        self.addCleanup(self._delete_volume, volume_api, volume['id'],
                        self.alt)
        volume_api.wait_for_volume(self.alt, volume['id'], timeout=120)
        response = self.client.request(
            'POST', '/servers/%s/os-volume_attachments' % self.server['id'],
            json={'volumeAttachment': {'volumeId': volume['id']}})
        self.assertEqual(404, response.status_code, response.text)
        self.assertEqual('available',
                         volume_api.get(self.alt, volume['id'])['status'])

    def _delete_snapshot(self, volume_api, snapshot_id):
        try:
            volume_api.delete_snapshot(self.demo, snapshot_id)
            volume_api.wait_for_snapshot_deleted(self.demo, snapshot_id,
                                                 timeout=60)
        except Exception:
            pass

    def _delete_volume(self, volume_api, volume_id, ctx=None):
        ctx = ctx or self.demo
        try:
            volume_api.delete(ctx, volume_id)
            volume_api.wait_for_volume_deleted(ctx, volume_id, timeout=60)
        except Exception:
            pass

    # -- work without a user token: the service user -------------------

    def test_token_less_work_acts_as_the_service_user(self):
        """What the start-up clean-up of an interrupted volume snapshot
        does, with a context that has no token: list the request's Cinder
        snapshots and images across projects, then delete them."""
        conf = keystone_conf(self.stack)
        volume_api = cinder.CinderAPI(conf)
        tag = {'nova_snapshot_request_id': 'req-%s' % uuid.uuid4()}
        volume = volume_api.create(self.demo, 1, 'ks-clean-%s'
                                   % uuid.uuid4().hex[:6])
        self.addCleanup(self._delete_volume, volume_api, volume['id'])
        volume_api.wait_for_volume(self.demo, volume['id'], timeout=120)
        snap = volume_api.create_snapshot_force(self.demo, volume['id'],
                                                'ks-clean', metadata=tag)
        volume_api.wait_for_snapshot(self.demo, snap['id'], timeout=120)
        image = self.image_api.create(self.demo, dict(
            tag, name='ks-clean', disk_format='raw',
            container_format='bare'))
        self.images.append(image['id'])

        service = ns_context.RequestContext(
            user_id=self.demo.user_id, project_id=self.demo.project_id,
            request_id=tag['nova_snapshot_request_id'], overwrite=False)
        self.assertIsNone(service.auth_token)
        found = volume_api.list_snapshots(service, metadata=tag)
        self.assertEqual([snap['id']], [s['id'] for s in found])
        images = self.image_api.list(service, **tag)
        self.assertEqual([image['id']], [i['id'] for i in images])
        self.image_api.delete(service, image['id'])
        volume_api.delete_snapshot(service, snap['id'])
        volume_api.wait_for_snapshot_deleted(self.demo, snap['id'],
                                             timeout=60)
        from nova_snapshot import exception
        self.assertRaises(exception.ImageNotFound, self.image_api.get,
                          self.demo, image['id'])

    def test_restart_cleanup_runs_as_the_service_user(self):
        """A compute service that died mid volume snapshot left an
        unfinished event, a tagged Cinder snapshot and a queued image in
        demo's project; at its next start no user token exists, and it
        cleans them up as [service_user] (the state a SIGKILL leaves is
        written directly: killing mid-cut is the volume e2e tests' job)."""
        from nova_snapshot.compute import manager
        from nova_snapshot.compute import volume_snapshot
        from nova_snapshot.db import api as db_api
        from nova_snapshot import exception
        request_id = 'req-%s' % uuid.uuid4()
        ctx = ns_context.RequestContext.from_dict(self.demo.to_dict())
        ctx.request_id = request_id
        host = self.deployment.hosts[0]
        db = db_api.Database(self.deployment.database_url)
        self.addCleanup(db.dispose)
        db.action_start(ctx, self.server['id'], 'createImage')
        db.action_event_start(ctx, self.server['id'],
                              manager.VOLUME_SNAPSHOT_EVENT, host=host)
        volume_api = cinder.CinderAPI(keystone_conf(self.stack))
        volume = volume_api.create(self.demo, 1, 'ks-restart-%s'
                                   % uuid.uuid4().hex[:6])
        self.addCleanup(self._delete_volume, volume_api, volume['id'])
        volume_api.wait_for_volume(self.demo, volume['id'], timeout=120)
        tags = {volume_snapshot.INSTANCE_TAG: self.server['id'],
                volume_snapshot.REQUEST_TAG: request_id}
        snap = volume_api.create_snapshot_force(self.demo, volume['id'],
                                                'ks-left', metadata=tags)
        self.addCleanup(self._delete_snapshot, volume_api, snap['id'])
        volume_api.wait_for_snapshot(self.demo, snap['id'], timeout=120)
        queued = self.image_api.create(self.demo, {
            'name': 'ks-left', volume_snapshot.REQUEST_TAG: request_id})
        self.images.append(queued['id'])

        self.deployment.stop_compute(host)
        self.deployment.start_compute(host)
        self.deployment.wait_for_compute(host)

        volume_api.wait_for_snapshot_deleted(self.demo, snap['id'],
                                             timeout=120)
        self.assertRaises(exception.ImageNotFound, self.image_api.get,
                          self.demo, queued['id'])
        response = self.client.request(
            'GET', '/servers/%s/os-instance-actions/%s'
            % (self.server['id'], request_id))
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual('Error', response.json()['instanceAction'].get(
            'message'))
        event = db.action_get_by_request_id(self.server['id'],
                                            request_id)['events'][0]
        self.assertEqual('Error', event['result'])
        self.assertIn('deleted 1 leftover', event['details'])

    # -- the unmodified clients ----------------------------------------

    def _compute_override(self):
        """The catalog names port 8774; when this deployment could not
        take it, point the clients at ours explicitly."""
        if self.deployment.api_port == int(
                self.stack.get('KEYSTONE_COMPUTE_PORT', 8774)):
            return None
        return self.deployment.endpoint + '/v2.1'

    def _run(self, argv, env, timeout=300):
        result = subprocess.run(argv, env=env, capture_output=True,
                                text=True, timeout=timeout)
        self.assertEqual(0, result.returncode,
                         '%s failed:\n%s\n%s' % (' '.join(argv),
                                                 result.stdout,
                                                 result.stderr))
        return result.stdout

    def test_openstack_and_nova_clients(self):
        override = self._compute_override()
        env = keystone.clients_env(self.stack, 'demo', override)
        if env['OS_CLIENT_CONFIG_FILE'] != self.stack['CLOUDS_YAML']:
            self.addCleanup(os.unlink, env['OS_CLIENT_CONFIG_FILE'])
        name = 'ks-osc-%s' % uuid.uuid4().hex[:6]
        out = self._run(['openstack', 'server', 'create', '--flavor', '1',
                         '--image', self.base_image['id'], '--wait',
                         '-f', 'json', name], env)
        server = json.loads(out)
        self.servers.append((self.client, server['id']))
        self.assertEqual('ACTIVE', server['status'])
        snap_name = name + '-snap'
        out = self._run(['openstack', 'server', 'image', 'create', '--wait',
                         '--name', snap_name, '-f', 'json', server['id']],
                        env)
        image = json.loads(out)
        self.images.append(image['id'])
        self.assertEqual('active', image['status'])
        self.assertEqual(self.demo.project_id, image['owner'])

        nova_env = keystone.nova_env(self.stack, 'demo', override)
        nova_name = name + '-nova'
        argv = ['nova', 'image-create', server['id'], nova_name]
        if override is None:
            # --poll reads the image through the catalog's Glance;
            # novaclient's endpoint override would send that to us too, so
            # it is only exercised when this deployment owns the catalog's
            # port (the test then polls Glance itself).
            argv.insert(2, '--poll')
        out = self._run(argv, nova_env)
        if override is None:
            self.assertIn('Finished', out)
        images = self.image_api.list(self.demo, name=nova_name)
        self.assertEqual(1, len(images), images)
        self.images.append(images[0]['id'])
        image = guest.wait_for_image(self.image_api, self.demo,
                                     images[0]['id'], timeout=300)
        self.assertEqual(self.demo.project_id, image['owner'])
