"""The compute images proxy against the real Glance.

A deployment's API (its own process) serves /v2.1/images below 2.36 over
the stack's Glance with the caller's identity: in Keystone mode the user's
token goes to the Keystone-mode Glance found in the catalog, in the
development set-up identity headers go to the noauth Glance. Images are
made directly in Glance as the user, then listed, filtered, shown, changed
and deleted through the proxy; another project never sees them. The
deployments run the ``fake`` compute driver (no guests), whose snapshots
still go to Glance, so a createImage can be followed through the proxy as
tempest follows it below 2.36.
"""

import time
import uuid

import requests

from tests.functional import base
from tests.functional.fixtures import deployment
from tests.functional import test_keystone_stack

TIMEOUT = 30
PROXY_VERSION = 'compute 2.35'
# Compute services without guests: the fake driver uploads a few bytes.
FAKE_DRIVER = {'compute': {'compute_driver': 'fake'}}


class ImagesProxyScenario:
    """The checks; subclasses say how users authenticate and reach Glance.

    Subclasses set in setUpClass: ``cls.deployment``, ``cls.owner`` and
    ``cls.other`` (API tokens of two projects) and implement
    ``glance_request(method, path, **kwargs)`` as the owner.
    """

    def api(self, method, path, token=None, version=PROXY_VERSION, **kw):
        headers = {'X-Auth-Token': token or self.owner,
                   'OpenStack-API-Version': version}
        return requests.request(method, self.deployment.endpoint + path,
                                headers=headers, timeout=TIMEOUT, **kw)

    def make_image(self, **properties):
        body = {'name': 'proxy-' + uuid.uuid4().hex[:8],
                'disk_format': 'raw', 'container_format': 'bare'}
        body.update(properties)
        response = self.glance_request('POST', '/v2/images', json=body)
        self.assertEqual(201, response.status_code, response.text)
        image = response.json()
        self.addCleanup(self.glance_request, 'DELETE',
                        '/v2/images/%s' % image['id'])
        return image

    def test_list_show_and_filter_a_snapshot(self):
        server = str(uuid.uuid4())
        snap = self.make_image(instance_uuid=server, image_type='snapshot',
                               min_ram=64, min_disk=1)
        plain = self.make_image()

        response = self.api('GET', '/v2.1/images/%s' % snap['id'])
        self.assertEqual(200, response.status_code, response.text)
        image = response.json()['image']
        self.assertEqual(snap['name'], image['name'])
        # Glance's "queued" is Nova's SAVING, 25 %.
        self.assertEqual(('SAVING', 25), (image['status'], image['progress']))
        self.assertEqual((64, 1, 0), (image['minRam'], image['minDisk'],
                                      image['OS-EXT-IMG-SIZE:size']))
        self.assertEqual({'instance_uuid': server, 'image_type': 'snapshot'},
                         image['metadata'])
        self.assertEqual(server, image['server']['id'])
        self.assertRegex(image['created'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        alternate = image['links'][2]
        self.assertEqual('alternate', alternate['rel'])
        self.assertTrue(alternate['href'].endswith('/images/%s' % snap['id']))

        ids = [i['id'] for i in self.api('GET', '/v2.1/images').json()[
            'images']]
        self.assertIn(snap['id'], ids)
        self.assertIn(plain['id'], ids)
        found = self.api('GET', '/v2.1/images/detail?server=%s' % server)
        self.assertEqual([snap['id']],
                         [i['id'] for i in found.json()['images']])
        found = self.api('GET', '/v2.1/images?type=snapshot&status=SAVING'
                                '&name=%s' % snap['name'])
        # Glance has no "saving" image: the filter goes through as Glance's.
        self.assertEqual([], found.json()['images'])
        found = self.api('GET', '/v2.1/images?type=snapshot&status=QUEUED'
                                '&name=%s' % snap['name'])
        self.assertEqual([snap['id']],
                         [i['id'] for i in found.json()['images']])

    def test_paging_follows_glance(self):
        marker_name = 'page-' + uuid.uuid4().hex[:8]
        made = {self.make_image(image_type=marker_name)['id']
                for _ in range(3)}
        seen = []
        url = '/v2.1/images?limit=2&type=%s' % marker_name
        pages = 0
        while url:
            body = self.api('GET', url).json()
            pages += 1
            seen += [i['id'] for i in body['images']]
            links = body.get('images_links')
            url = links[0]['href'].split(self.deployment.endpoint, 1)[1] \
                if links else None
            self.assertLess(pages, 5)
        self.assertEqual(made, set(seen))
        self.assertEqual(3, len(seen))
        response = self.api('GET', '/v2.1/images?marker=%s' % uuid.uuid4())
        self.assertEqual(400, response.status_code, response.text)

    def test_metadata_round_trip(self):
        image = self.make_image(image_type='snapshot', keep='me')
        url = '/v2.1/images/%s/metadata' % image['id']
        response = self.api('POST', url, json={'metadata': {'color': 'blue'}})
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual({'image_type': 'snapshot', 'keep': 'me',
                          'color': 'blue'}, response.json()['metadata'])
        response = self.api('PUT', url + '/color',
                            json={'meta': {'color': 'red'}})
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual({'meta': {'color': 'red'}},
                         self.api('GET', url + '/color').json())
        response = self.api('DELETE', url + '/keep')
        self.assertEqual(204, response.status_code, response.text)
        self.assertEqual(404, self.api('GET', url + '/keep').status_code)
        # What Glance itself now has.
        stored = self.glance_request('GET', '/v2/images/%s'
                                     % image['id']).json()
        self.assertEqual('red', stored['color'])
        self.assertNotIn('keep', stored)
        response = self.api('PUT', url, json={'metadata': {'only': 'this'}})
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual({'only': 'this'},
                         self.api('GET', url).json()['metadata'])
        stored = self.glance_request('GET', '/v2/images/%s'
                                     % image['id']).json()
        self.assertEqual('this', stored['only'])
        self.assertNotIn('image_type', stored)
        self.assertEqual(image['name'], stored['name'])
        too_many = {'k%03d' % n: 'v' for n in range(129)}
        response = self.api('PUT', url, json={'metadata': too_many})
        self.assertEqual(403, response.status_code, response.text)
        response = self.api('GET', url, version='compute 2.39')
        self.assertEqual(404, response.status_code)

    def wait_for(self, what, probe, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.5)
        self.fail('timed out waiting for %s' % what)

    def test_snapshot_followed_through_the_proxy(self):
        base_image = self.make_image()
        response = self.glance_request(
            'PUT', '/v2/images/%s/file' % base_image['id'], data=b'\0' * 4096,
            headers={'Content-Type': 'application/octet-stream'})
        self.assertEqual(204, response.status_code, response.text)
        response = self.api('POST', '/v2.1/servers', version='compute 2.1',
                            json={'server': {'name': 'proxy-vm',
                                             'imageRef': base_image['id'],
                                             'flavorRef': '1'}})
        self.assertEqual(202, response.status_code, response.text)
        server_id = response.json()['server']['id']
        self.addCleanup(self.api, 'DELETE', '/v2.1/servers/%s' % server_id)
        self.wait_for('server ACTIVE', lambda: self.api(
            'GET', '/v2.1/servers/%s' % server_id).json()['server'][
                'status'] == 'ACTIVE')
        # Below 2.45 the image is named only by the Location header.
        response = self.api('POST', '/v2.1/servers/%s/action' % server_id,
                            version='compute 2.1',
                            json={'createImage': {'name': 'proxy-snap',
                                                  'metadata': {
                                                      'image_type': 'test'}}})
        self.assertEqual(202, response.status_code, response.text)
        image_id = response.headers['Location'].rsplit('/', 1)[1]
        self.addCleanup(self.glance_request, 'DELETE',
                        '/v2/images/%s' % image_id)
        path = '/v2.1/images/%s' % image_id

        def active():
            image = self.api('GET', path).json()['image']
            self.assertIn(image['status'], ('SAVING', 'ACTIVE'))
            return image if image['status'] == 'ACTIVE' else None

        image = self.wait_for('snapshot ACTIVE', active)
        self.assertEqual(100, image['progress'])
        self.assertEqual('proxy-snap', image['name'])
        self.assertEqual(server_id, image['server']['id'])
        self.assertEqual(server_id, image['metadata']['instance_uuid'])
        # The user's metadata wins over Nova's own image_type.
        self.assertEqual('test', image['metadata']['image_type'])
        self.assertGreater(image['OS-EXT-IMG-SIZE:size'], 0)
        found = self.api('GET', '/v2.1/images/detail?server=%s' % server_id)
        self.assertEqual([image_id], [i['id'] for i in found.json()['images']])
        self.assertEqual(204, self.api('DELETE', path).status_code)
        self.wait_for('snapshot gone', lambda: self.api(
            'GET', path).status_code == 404)

    def test_delete(self):
        image = self.make_image()
        path = '/v2.1/images/%s' % image['id']
        # Another project does not see it: 404 for reads and deletes.
        self.assertEqual(404, self.api('GET', path,
                                       token=self.other).status_code)
        self.assertEqual(404, self.api('DELETE', path,
                                       token=self.other).status_code)
        self.assertEqual(404, self.api('DELETE', path,
                                       version='compute 2.36').status_code)
        response = self.api('DELETE', path)
        self.assertEqual(204, response.status_code, response.text)
        self.assertEqual(404, self.glance_request(
            'GET', '/v2/images/%s' % image['id']).status_code)
        response = self.api('GET', path)
        self.assertEqual(404, response.status_code)
        self.assertEqual('Image not found.',
                         response.json()['itemNotFound']['message'])


class NoAuthImagesProxyTest(ImagesProxyScenario, base.StackTestCase):
    """Development set-up: noauth API, identity headers to Glance."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        base.check_glance(cls.stack['GLANCE_URL'])
        cls.project = uuid.uuid4().hex
        cls.owner = 'alice:%s' % cls.project
        cls.other = 'bob:%s' % uuid.uuid4().hex
        cls.deployment = deployment.Deployment(
            cls.stack, extra_conf=FAKE_DRIVER).start()

    @classmethod
    def tearDownClass(cls):
        cls.deployment.stop()
        super().tearDownClass()

    def glance_request(self, method, path, **kwargs):
        headers = {'X-Identity-Status': 'Confirmed', 'X-User-Id': 'alice',
                   'X-Project-Id': self.project, 'X-Roles': 'member,reader'}
        headers.update(kwargs.pop('headers', {}))
        return requests.request(method, self.stack['GLANCE_URL'] + path,
                                headers=headers, timeout=TIMEOUT, **kwargs)


class KeystoneImagesProxyTest(ImagesProxyScenario,
                              test_keystone_stack.KeystoneStackTestCase):
    """As a cloud runs it: Keystone tokens, the catalog's Glance."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.owner = cls.demo_token
        cls.other = cls.alt.get_token()
        cls.deployment = deployment.Deployment(
            cls.stack, keystone=True, extra_conf=FAKE_DRIVER).start()

    @classmethod
    def tearDownClass(cls):
        cls.deployment.stop()
        super().tearDownClass()

    def glance_request(self, method, path, **kwargs):
        return self.demo.request(self.stack['KEYSTONE_GLANCE_URL'] + path,
                                 method, raise_exc=False, **kwargs)

    def test_reader_reads_but_cannot_change(self):
        reader = test_keystone_stack.password_session(
            self.stack, 'KEYSTONE_DEMO_READER').get_token()
        image = self.make_image(image_type='snapshot')
        path = '/v2.1/images/%s' % image['id']
        self.assertEqual(200, self.api('GET', path, token=reader).status_code)
        response = self.api('POST', path + '/metadata', token=reader,
                            json={'metadata': {'a': 'b'}})
        self.assertEqual(403, response.status_code, response.text)
        response = self.api('DELETE', path, token=reader)
        self.assertEqual(403, response.status_code, response.text)
        self.assertEqual(200, self.glance_request(
            'GET', '/v2/images/%s' % image['id']).status_code)
