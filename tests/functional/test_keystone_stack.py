"""The test stack's Keystone and its Keystone-mode Glance and cinder-api.

Everything here talks to the real services tools/stack/start.sh runs
(tools/stack/keystone-*.sh): Keystone on KEYSTONE_URL, a Glance validating
tokens on KEYSTONE_GLANCE_URL over the same data as the noauth Glance on
GLANCE_URL, a cinder-api validating tokens on KEYSTONE_CINDER_URL over the
same database as the noauth one on CINDER_URL, and the unmodified
``openstack`` client reading .stack/clouds.yaml.
"""

import json
import os
import stat
import subprocess
import time
import unittest
import uuid

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1.identity import v3
from keystoneauth1 import service_token
from keystoneauth1 import session as ks_session
import requests

from tests.functional import base

KEYS = ('KEYSTONE_URL', 'KEYSTONE_REGION', 'CLOUDS_YAML', 'CLIENTS_VENV',
        'KEYSTONE_GLANCE_URL', 'KEYSTONE_CINDER_URL', 'KEYSTONE_COMPUTE_URL',
        'KEYSTONE_DEMO_PROJECT_ID', 'KEYSTONE_ALT_DEMO_PROJECT_ID')
TIMEOUT = 30


def password_auth(stack, who):
    """A keystoneauth password plugin for one of the stack's users.

    ``who`` is the prefix of its .stack/env names: KEYSTONE_DEMO,
    KEYSTONE_ALT_DEMO, KEYSTONE_ADMIN, NOVA_SNAPSHOT_SERVICE, ...
    """
    project = {'KEYSTONE_DEMO': 'demo', 'KEYSTONE_DEMO_READER': 'demo',
               'KEYSTONE_ALT_DEMO': 'alt_demo',
               'KEYSTONE_ADMIN': stack.get('KEYSTONE_ADMIN_PROJECT'),
               'NOVA_SNAPSHOT_SERVICE': stack.get('KEYSTONE_SERVICE_PROJECT'),
               }[who]
    return v3.Password(auth_url=stack['KEYSTONE_URL'],
                       username=stack[who + '_USER'],
                       password=stack[who + '_PASSWORD'],
                       project_name=project, user_domain_name='Default',
                       project_domain_name='Default')


def password_session(stack, who):
    return ks_session.Session(auth=password_auth(stack, who), timeout=TIMEOUT)


class KeystoneStackTestCase(base.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [k for k in KEYS if not cls.stack.get(k)]
        if missing:
            raise base.StackMissing('.stack/env lacks %s: run '
                                    'tools/stack/start.sh' % ', '.join(missing))
        cls.demo = password_session(cls.stack, 'KEYSTONE_DEMO')
        cls.alt = password_session(cls.stack, 'KEYSTONE_ALT_DEMO')
        cls.admin = password_session(cls.stack, 'KEYSTONE_ADMIN')
        try:
            cls.demo_token = cls.demo.get_token()
        except ks_exc.ConnectFailure as exc:
            raise base.StackMissing('Keystone at %s does not answer (%s): '
                                    'run tools/stack/start.sh'
                                    % (cls.stack['KEYSTONE_URL'], exc))

    def get(self, url, token=None, **headers):
        if token:
            headers['X-Auth-Token'] = token
        return requests.get(url, headers=headers, timeout=TIMEOUT)


class CatalogTest(KeystoneStackTestCase):

    def test_demo_token_lists_compute_image_and_block_storage(self):
        access = self.demo.auth.get_access(self.demo)
        self.assertEqual(self.stack['KEYSTONE_DEMO_PROJECT_ID'],
                         access.project_id)
        self.assertEqual({'member', 'reader'},
                         {'member', 'reader'} & set(access.role_names))
        catalog = access.service_catalog
        region = self.stack['KEYSTONE_REGION']
        project_url = '%s/%s' % (self.stack['KEYSTONE_CINDER_URL'].rstrip('/'),
                                 self.stack['KEYSTONE_DEMO_PROJECT_ID'])
        for service_type, want in (
                ('compute', self.stack['KEYSTONE_COMPUTE_URL']),
                ('image', self.stack['KEYSTONE_GLANCE_URL']),
                ('block-storage', project_url),
                ('volumev3', project_url),
                ('identity', self.stack['KEYSTONE_URL'])):
            for interface in ('public', 'internal'):
                self.assertEqual(
                    [want],
                    list(catalog.get_urls(service_type=service_type,
                                          interface=interface,
                                          region_name=region)),
                    '%s %s' % (service_type, interface))

    def test_reader_has_reader_role_only(self):
        reader = password_session(self.stack, 'KEYSTONE_DEMO_READER')
        access = reader.auth.get_access(reader)
        self.assertEqual(self.stack['KEYSTONE_DEMO_PROJECT_ID'],
                         access.project_id)
        self.assertIn('reader', access.role_names)
        self.assertNotIn('member', access.role_names)

    def test_wrong_password_is_refused(self):
        auth = v3.Password(auth_url=self.stack['KEYSTONE_URL'],
                           username=self.stack['KEYSTONE_DEMO_USER'],
                           password='not-' + self.stack['KEYSTONE_DEMO_PASSWORD'],
                           project_name='demo', user_domain_name='Default',
                           project_domain_name='Default')
        sess = ks_session.Session(auth=auth, timeout=TIMEOUT)
        self.assertRaises(ks_exc.Unauthorized, sess.get_token)

    def test_clouds_yaml_is_private(self):
        mode = os.stat(self.stack['CLOUDS_YAML']).st_mode
        self.assertEqual(0o600, stat.S_IMODE(mode))


class KeystoneGlanceTest(KeystoneStackTestCase):

    def setUp(self):
        super().setUp()
        self.images = self.stack['KEYSTONE_GLANCE_URL'] + '/v2/images'

    def test_token_required(self):
        self.assertEqual(401, self.get(self.images).status_code)
        bogus = self.get(self.images, token=uuid.uuid4().hex)
        self.assertEqual(401, bogus.status_code)
        resp = self.get(self.images, token=self.demo_token)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertIn('images', resp.json())

    def test_image_from_noauth_glance_seen_through_keystone_glance(self):
        # A private image of some other project, made and uploaded through
        # the noauth Glance with identity headers.
        owner = uuid.uuid4().hex
        noauth = {'X-Identity-Status': 'Confirmed', 'X-Project-Id': owner,
                  'X-User-Id': 'u-' + owner[:8], 'X-Roles': 'member,reader'}
        glance = self.stack['GLANCE_URL'] + '/v2/images'
        resp = requests.post(
            glance, json={'name': 'ks-shared-' + owner[:8],
                          'disk_format': 'raw', 'container_format': 'bare',
                          'visibility': 'private'},
            headers=noauth, timeout=TIMEOUT)
        self.assertEqual(201, resp.status_code, resp.text)
        image_id = resp.json()['id']
        self.addCleanup(requests.delete, '%s/%s' % (glance, image_id),
                        headers=noauth, timeout=TIMEOUT)
        data = os.urandom(4096)
        resp = requests.put(
            '%s/%s/file' % (glance, image_id), data=data,
            headers=dict(noauth, **{'Content-Type': 'application/octet-stream'}),
            timeout=TIMEOUT)
        self.assertEqual(204, resp.status_code, resp.text)

        url = '%s/%s' % (self.images, image_id)
        admin_token = self.admin.get_token()
        resp = self.get(url, token=admin_token)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual(owner, resp.json()['owner'])
        self.assertEqual('active', resp.json()['status'])
        # Same filesystem store: the bytes come back through the other API.
        resp = self.get(url + '/file', token=admin_token)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(data, resp.content)
        # Keystone's identity is what Glance applies: demo is another project.
        self.assertEqual(404, self.get(url, token=self.demo_token).status_code)


class KeystoneCinderTest(KeystoneStackTestCase):

    VERSION = {'OpenStack-API-Version': 'volume 3.0'}
    CONNECTOR = {'host': 'ks-stack-test', 'ip': '127.0.0.1',
                 'platform': 'x86_64', 'os_type': 'linux',
                 'multipath': False, 'initiator': None}

    def volumes_url(self, project_id):
        return '%s/%s/volumes' % (self.stack['KEYSTONE_CINDER_URL'].rstrip('/'),
                                  project_id)

    def test_token_required(self):
        url = self.volumes_url(self.stack['KEYSTONE_DEMO_PROJECT_ID'])
        self.assertEqual(401, self.get(url, **self.VERSION).status_code)
        self.assertEqual(401, self.get(url, token=uuid.uuid4().hex,
                                       **self.VERSION).status_code)

    def _available_volume(self, sess, project_id):
        url = self.volumes_url(project_id)
        resp = sess.post(url, json={'volume': {'size': 1}},
                         headers=self.VERSION, raise_exc=False)
        self.assertEqual(202, resp.status_code, resp.text)
        volume_url = '%s/%s' % (url, resp.json()['volume']['id'])
        self.addCleanup(sess.delete, volume_url, headers=self.VERSION,
                        raise_exc=False)
        self._wait_status(sess, volume_url, 'available')
        return resp.json()['volume']['id'], volume_url

    def _wait_status(self, sess, url, want, deadline=120):
        end = time.monotonic() + deadline
        while True:
            resp = sess.get(url, headers=self.VERSION, raise_exc=False)
            status = (resp.json()['volume']['status']
                      if resp.status_code == 200 else resp.status_code)
            if status == want:
                return
            if status == 'error' or time.monotonic() > end:
                self.fail('volume %s is %s, wanted %s' % (url, status, want))
            time.sleep(0.5)

    def test_demo_lists_its_volumes_only(self):
        demo_project = self.stack['KEYSTONE_DEMO_PROJECT_ID']
        url = self.volumes_url(demo_project)
        name = 'ks-stack-' + uuid.uuid4().hex[:8]
        resp = self.demo.post(url, json={'volume': {'size': 1, 'name': name}},
                              headers=self.VERSION, raise_exc=False)
        self.assertEqual(202, resp.status_code, resp.text)
        volume_id = resp.json()['volume']['id']
        self.addCleanup(self.demo.delete, '%s/%s' % (url, volume_id),
                        headers=self.VERSION, raise_exc=False)
        self._wait_status(self.demo, '%s/%s' % (url, volume_id), 'available')

        resp = self.get(url, token=self.demo_token, **self.VERSION)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertIn(volume_id, [v['id'] for v in resp.json()['volumes']])
        # Another project's token sees none of it, in its own URL or demo's.
        alt_url = self.volumes_url(self.stack['KEYSTONE_ALT_DEMO_PROJECT_ID'])
        resp = self.alt.get(alt_url, headers=self.VERSION)
        self.assertNotIn(volume_id, [v['id'] for v in resp.json()['volumes']])
        resp = self.alt.get('%s/%s' % (alt_url, volume_id),
                            headers=self.VERSION, raise_exc=False)
        self.assertEqual(404, resp.status_code)
        # The noauth cinder-api shares the database: it sees the same volume.
        resp = requests.get(
            '%s/%s/volumes/%s' % (self.stack['CINDER_URL'].rstrip('/'),
                                  demo_project, volume_id),
            headers=dict(self.VERSION,
                         **{'X-Auth-Token': 'ks-stack-test:' + demo_project}),
            timeout=TIMEOUT)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual(name, resp.json()['volume']['name'])

    def test_attachment_delete_with_service_token(self):
        # An attachment in use by a server (it has connection_info) is
        # deleted by Nova without Cinder asking Nova first only when the
        # request carries a service token with the service role.
        demo_project = self.stack['KEYSTONE_DEMO_PROJECT_ID']
        volume_id, volume_url = self._available_volume(self.demo, demo_project)
        version = {'OpenStack-API-Version': 'volume 3.44'}
        attachments = '%s/%s/attachments' % (
            self.stack['KEYSTONE_CINDER_URL'].rstrip('/'), demo_project)
        resp = self.demo.post(attachments, json={'attachment': {
            'volume_uuid': volume_id, 'instance_uuid': str(uuid.uuid4()),
            'connector': self.CONNECTOR}}, headers=version, raise_exc=False)
        self.assertEqual(200, resp.status_code, resp.text)
        attachment = resp.json()['attachment']
        self.assertTrue(attachment['connection_info'])
        url = '%s/%s' % (attachments, attachment['id'])

        demo_auth = password_auth(self.stack, 'KEYSTONE_DEMO')
        # A user's own token is no service token: the service role is
        # required (keystonemiddleware's service_token_roles_required).
        as_demo = ks_session.Session(
            auth=service_token.ServiceTokenAuthWrapper(demo_auth, demo_auth),
            timeout=TIMEOUT)
        resp = as_demo.delete(url, headers=version, raise_exc=False)
        self.assertEqual(401, resp.status_code, resp.text)

        with_service = ks_session.Session(
            auth=service_token.ServiceTokenAuthWrapper(
                demo_auth, password_auth(self.stack, 'NOVA_SNAPSHOT_SERVICE')),
            timeout=TIMEOUT)
        resp = with_service.delete(url, headers=version, raise_exc=False)
        self.assertEqual(200, resp.status_code, resp.text)
        resp = self.demo.get(url, headers=version, raise_exc=False)
        self.assertEqual(404, resp.status_code)
        self._wait_status(self.demo, volume_url, 'available')


class OfficialClientTest(KeystoneStackTestCase):

    def openstack(self, *args):
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=self.stack['CLOUDS_YAML'])
        for key in list(env):
            if key.startswith('OS_') and key != 'OS_CLIENT_CONFIG_FILE':
                del env[key]
        cmd = [os.path.join(self.stack['CLIENTS_VENV'], 'bin', 'openstack')]
        proc = subprocess.run(cmd + list(args), env=env, capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stderr)
        return proc.stdout

    def test_token_issue_from_clouds_yaml(self):
        out = json.loads(self.openstack('--os-cloud', 'demo', 'token',
                                        'issue', '-f', 'json'))
        self.assertEqual(self.stack['KEYSTONE_DEMO_PROJECT_ID'],
                         out['project_id'])
        # The token it printed is a real one: Keystone validates it.
        resp = self.admin.get(
            self.stack['KEYSTONE_URL'] + '/auth/tokens',
            headers={'X-Subject-Token': out['id']})
        self.assertEqual(self.stack['KEYSTONE_DEMO_USER'],
                         resp.json()['token']['user']['name'])


if __name__ == '__main__':
    unittest.main()
