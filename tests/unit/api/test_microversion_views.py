"""The bodies of 2.46 to 2.104 (api/microversion.py's ledger), route by
route, each at the version before a change and at the change."""

import datetime
from unittest import mock
import uuid

from nova_snapshot.api.handlers import volume_attachments
from nova_snapshot.api import microversion
from nova_snapshot.api import views
from tests.unit.api import base

ADMIN = ['admin', 'member', 'reader']


class TestServerBody(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance(
            'project-a', name='My Server_1', locked_reason='testing',
            system_metadata={'image_hw_disk_bus': 'virtio',
                             'image_secret_note': 'not shown',
                             'image_min_ram': '0',
                             'pinned_availability_zone': 'nova'})
        self.url = '/v2.1/servers/%s' % self.server['uuid']

    def show(self, version, **kwargs):
        response = self.request('GET', self.url, version=version, **kwargs)
        self.assertEqual(200, response.status_int, response.text)
        return response.json['server']

    def test_latest_is_the_new_maximum(self):
        response = self.request('GET', self.url, version='latest')
        self.assertEqual('compute 2.104',
                         response.headers['OpenStack-API-Version'])

    def test_every_version_in_range_answers(self):
        for minor in range(1, microversion.MAX_MINOR + 1):
            with self.subTest(minor=minor):
                self.show('2.%d' % minor)
        response = self.request('GET', self.url, version='2.105')
        self.assertEqual(406, response.status_int)

    def test_every_read_route_answers_at_every_version(self):
        self.compute.add_volume(self.server)
        routes = ['/v2.1/servers', '/v2.1/servers/detail', '/v2.1/flavors',
                  '/v2.1/flavors/detail', '/v2.1/flavors/1',
                  self.url + '/os-volume_attachments',
                  self.url + '/os-instance-actions', '/v2.1', '/']
        for minor in range(1, microversion.MAX_MINOR + 1):
            for path in routes:
                with self.subTest(minor=minor, path=path):
                    response = self.request('GET', path,
                                            version='2.%d' % minor)
                    self.assertEqual(200, response.status_int,
                                     response.text)
            with self.subTest(minor=minor, path='/v2.1/os-services'):
                self.assertEqual(200, self.request(
                    'GET', '/v2.1/os-services', version='2.%d' % minor,
                    roles=ADMIN).status_int)

    def test_flavor_is_embedded_from_2_47(self):
        self.assertEqual('1', self.show('2.46')['flavor']['id'])
        self.assertEqual(
            {'vcpus': 1, 'ram': 64, 'disk': 1, 'ephemeral': 0, 'swap': 0,
             'original_name': 'm1.nano', 'extra_specs': {}},
            self.show('2.47')['flavor'])

    def test_fields_appear_at_their_versions(self):
        cases = [('trusted_image_certificates', '2.63', None),
                 ('server_groups', '2.71', []),
                 ('locked_reason', '2.73', 'testing'),
                 ('pinned_availability_zone', '2.96', 'nova'),
                 ('scheduler_hints', '2.100', {})]
        for key, version, value in cases:
            with self.subTest(key=key):
                before = microversion.APIVersion.parse(version)
                self.assertNotIn(key, self.show('2.%d' % (before[1] - 1)))
                self.assertEqual(value, self.show(version)[key])

    def test_hostname_for_everyone_from_2_90(self):
        self.assertNotIn('OS-EXT-SRV-ATTR:hostname', self.show('2.89'))
        self.assertEqual('my-server-1',
                         self.show('2.90')['OS-EXT-SRV-ATTR:hostname'])

    def test_image_properties_from_2_98(self):
        self.assertNotIn('properties', self.show('2.97')['image'])
        # Only the standard properties: a free-form one stays hidden, and
        # Glance's own fields are not properties.
        self.assertEqual({'hw_disk_bus': 'virtio'},
                         self.show('2.98')['image']['properties'])

    def test_server_groups_not_in_detail(self):
        response = self.request('GET', '/v2.1/servers/detail',
                                version='latest')
        self.assertEqual(200, response.status_int, response.text)
        server = response.json['servers'][0]
        self.assertNotIn('server_groups', server)
        self.assertEqual('testing', server['locked_reason'])
        self.assertEqual({}, server['scheduler_hints'])

    def test_show_refuses_query_parameters_from_2_102(self):
        response = self.request('GET', self.url + '?foo=1', version='2.101')
        self.assertEqual(200, response.status_int)
        response = self.request('GET', self.url + '?foo=1', version='2.102')
        self.assertEqual(400, response.status_int)
        self.assertIn('foo', response.json['badRequest']['message'])


class TestCreateHostname(base.APITestCase):

    def create(self, version, hostname):
        return self.request('POST', '/v2.1/servers', {'server': {
            'name': 'web', 'imageRef': str(uuid.uuid4()), 'flavorRef': '1',
            'networks': 'none', 'hostname': hostname}}, version=version)

    def test_by_version(self):
        self.assertEqual(400, self.create('2.89', 'web-1').status_int)
        response = self.create('2.90', 'web-1')
        self.assertEqual(202, response.status_int, response.text)
        self.assertIn(('create_hostname', 'web-1'), self.compute.calls)
        fqdn = 'x' * 52 + '-guest-test.domaintest.com'
        self.assertEqual(400, self.create('2.93', fqdn).status_int)
        self.assertEqual(202, self.create('2.94', fqdn).status_int)
        self.assertEqual(400, self.create('2.94', 'a b').status_int)

    def test_shown_from_system_metadata(self):
        server = self.compute.add_instance(
            'project-a', system_metadata={'hostname': 'web-1.example.org'})
        response = self.request('GET', '/v2.1/servers/%s' % server['uuid'],
                                version='2.94')
        self.assertEqual('web-1.example.org',
                         response.json['server']['OS-EXT-SRV-ATTR:hostname'])


class TestRebuildBody(base.APITestCase):
    """views.server_rebuild, which the rebuild action answers with."""

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')

    def body(self, version, **kwargs):
        """The rebuild body for a real request at ``version`` (the one a
        GET of the server goes through)."""
        with mock.patch.object(views, 'server_show',
                               wraps=views.server_show) as spy:
            self.request('GET', '/v2.1/servers/%s' % self.server['uuid'],
                         version=version)
        req = spy.call_args[0][0]
        return views.server_rebuild(req, self.server, **kwargs)

    def test_reduced_below_2_75_full_from_2_75(self):
        old = self.body('2.74')
        self.assertNotIn('OS-EXT-STS:vm_state', old)
        self.assertNotIn('OS-EXT-AZ:availability_zone', old)
        self.assertIsNone(old['key_name'])
        self.assertIsNone(old['user_data'])
        new = self.body('2.75')
        self.assertEqual('active', new['OS-EXT-STS:vm_state'])
        self.assertNotIn('OS-EXT-SRV-ATTR:user_data', new)
        self.assertEqual([], new['server_groups'])

    def test_key_name_and_user_data_by_version(self):
        self.assertNotIn('key_name', self.body('2.53'))
        self.assertNotIn('user_data', self.body('2.56'))
        self.assertEqual('secret', self.body(
            '2.1', admin_password='secret')['adminPass'])


class TestFlavorBody(base.APITestCase):

    def flavor(self, version):
        response = self.request('GET', '/v2.1/flavors/1', version=version)
        self.assertEqual(200, response.status_int, response.text)
        return response.json['flavor']

    def test_versions(self):
        old = self.flavor('2.54')
        self.assertEqual('', old['swap'])
        self.assertNotIn('description', old)
        self.assertIsNone(self.flavor('2.55')['description'])
        self.assertNotIn('extra_specs', self.flavor('2.60'))
        self.assertEqual({}, self.flavor('2.61')['extra_specs'])
        self.assertEqual(0, self.flavor('2.75')['swap'])
        self.assertEqual(1.0, self.flavor('2.101')['rxtx_factor'])
        latest = self.flavor('2.102')
        self.assertNotIn('rxtx_factor', latest)
        self.assertNotIn('OS-FLV-DISABLED:disabled', latest)

    def test_name_filter_from_2_102(self):
        response = self.request('GET', '/v2.1/flavors?name=m1.tiny',
                                version='2.102')
        self.assertEqual(['m1.tiny'],
                         [f['name'] for f in response.json['flavors']])
        response = self.request('GET', '/v2.1/flavors?name=m1.tiny',
                                version='2.101')
        self.assertEqual(400, response.status_int)  # unknown from 2.75
        response = self.request('GET', '/v2.1/flavors?name=m1.tiny',
                                version='2.74')
        self.assertEqual(4, len(response.json['flavors']))


class TestVolumeAttachmentBody(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.data = self.compute.add_volume(self.server,
                                            delete_on_termination=True)
        self.url = '/v2.1/servers/%s/os-volume_attachments' % (
            self.server['uuid'])

    def item(self, version):
        response = self.request('GET', self.url, version=version)
        self.assertEqual(200, response.status_int, response.text)
        return response.json['volumeAttachments'][0]

    def test_fields_by_version(self):
        self.assertNotIn('tag', self.item('2.69'))
        self.assertIsNone(self.item('2.70')['tag'])
        self.assertNotIn('delete_on_termination', self.item('2.78'))
        self.assertIs(True, self.item('2.79')['delete_on_termination'])
        self.assertEqual(self.data['volume_id'], self.item('2.88')['id'])
        latest = self.item('2.89')
        self.assertNotIn('id', latest)
        self.assertEqual(self.data['attachment_id'], latest['attachment_id'])
        self.assertEqual(volume_attachments.bdm_uuid(self.data),
                         latest['bdm_uuid'])
        uuid.UUID(latest['bdm_uuid'])

    def test_attach_by_version(self):
        vol = str(uuid.uuid4())
        body = {'volumeAttachment': {'volumeId': vol, 'tag': 'data',
                                     'delete_on_termination': True}}
        response = self.request('POST', self.url, body, version='2.48')
        self.assertEqual(400, response.status_int)  # no tag before 2.49
        response = self.request('POST', self.url, body, version='2.79')
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual('data', response.json['volumeAttachment']['tag'])
        self.assertIs(True, response.json['volumeAttachment'][
            'delete_on_termination'])
        self.assertEqual({'tag': 'data', 'delete_on_termination': True},
                         self.compute.attach_options)
        other = str(uuid.uuid4())
        response = self.request('POST', self.url, {'volumeAttachment': {
            'volumeId': other}}, version='2.101')
        self.assertEqual(202, response.status_int, response.text)
        self.assertEqual(b'', response.body)

    def test_index_limit_and_offset(self):
        self.compute.add_volume(self.server, device_name='/dev/vdc')
        response = self.request('GET', self.url + '?limit=1&offset=1',
                                version='2.79')
        self.assertEqual(['/dev/vdc'], [
            a['device'] for a in response.json['volumeAttachments']])
        response = self.request('GET', self.url + '?bogus=1',
                                version='2.75')
        self.assertEqual(400, response.status_int)


class TestInstanceActionBody(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        for index, name in enumerate(('stop', 'start', 'stop')):
            self.compute.actions.setdefault(self.server['uuid'], []).insert(
                0, {'action': name, 'instance_uuid': self.server['uuid'],
                    'request_id': 'req-%d' % index, 'user_id': 'alice',
                    'project_id': 'project-a', 'message': None,
                    'start_time': datetime.datetime(2024, 1, 2, 3, index),
                    'finish_time': datetime.datetime(2024, 1, 2, 4, index),
                    'events': [{'event': 'compute_%s' % name,
                                'result': 'Success', 'traceback': 'tb',
                                'host': 'host1', 'details': 'why',
                                'start_time': None, 'finish_time': None}]})
        self.url = '/v2.1/servers/%s/os-instance-actions' % (
            self.server['uuid'])

    def test_events_for_readers_from_2_51(self):
        url = self.url + '/req-1'
        self.assertNotIn('events', self.request(
            'GET', url, version='2.50').json['instanceAction'])
        event = self.request('GET', url, version='2.51').json[
            'instanceAction']['events'][0]
        self.assertNotIn('traceback', event)
        event = self.request('GET', url, version='2.62').json[
            'instanceAction']['events'][0]
        self.assertEqual(views.host_id('host1', 'project-a'), event['hostId'])
        self.assertNotIn('host', event)
        self.assertNotIn('details', self.request(
            'GET', url, version='2.84').json['instanceAction']['events'][0])
        event = self.request('GET', url, version='2.84', roles=ADMIN).json[
            'instanceAction']['events'][0]
        self.assertEqual(('tb', 'host1', 'why'), (
            event['traceback'], event['host'], event['details']))

    def test_paging_from_2_58(self):
        body = self.request('GET', self.url + '?limit=2',
                            version='2.58').json
        self.assertEqual(['req-2', 'req-1'], [
            a['request_id'] for a in body['instanceActions']])
        self.assertEqual('2024-01-02T04:02:00.000000',
                         body['instanceActions'][0]['updated_at'])
        self.assertIn('marker=req-1', body['links'][0]['href'])
        body = self.request('GET', self.url + '?marker=req-1',
                            version='2.58').json
        self.assertEqual(['req-0'], [
            a['request_id'] for a in body['instanceActions']])
        self.assertNotIn('links', body)
        # Below 2.58 the parameters mean nothing.
        body = self.request('GET', self.url + '?limit=1',
                            version='2.57').json
        self.assertEqual(3, len(body['instanceActions']))
        self.assertNotIn('updated_at', body['instanceActions'][0])

    def test_changes_since_and_before(self):
        query = ('?changes-since=2024-01-02T04:01:00Z'
                 '&changes-before=2024-01-02T04:01:30Z')
        body = self.request('GET', self.url + query, version='2.66').json
        self.assertEqual(['req-1'], [
            a['request_id'] for a in body['instanceActions']])
        response = self.request(
            'GET', self.url + '?changes-since=2024-01-02T05:00:00Z'
            '&changes-before=2024-01-02T04:00:00Z', version='2.66')
        self.assertEqual(400, response.status_int)
        response = self.request('GET', self.url + '?marker=nope',
                                version='2.58')
        self.assertEqual(400, response.status_int)


class TestServicesByUUID(base.APITestCase):

    def list(self, version):
        response = self.request('GET', '/v2.1/os-services', version=version,
                                roles=ADMIN)
        self.assertEqual(200, response.status_int, response.text)
        return response.json['services']

    def test_ids(self):
        self.assertIsInstance(self.list('2.52')[0]['id'], int)
        uuid.UUID(self.list('2.53')[0]['id'])

    def test_update_and_delete_by_uuid(self):
        service_id = self.list('2.53')[0]['id']
        url = '/v2.1/os-services/%s' % service_id
        response = self.request('PUT', url, {
            'status': 'disabled', 'disabled_reason': 'maintenance'},
            version='2.53', roles=ADMIN)
        self.assertEqual(200, response.status_int, response.text)
        service = response.json['service']
        self.assertEqual(('disabled', 'maintenance', service_id, False),
                         (service['status'], service['disabled_reason'],
                          service['id'], service['forced_down']))
        for body, code in (({}, 400),
                           ({'status': 'enabled', 'disabled_reason': 'x'},
                            400),
                           ({'host': 'fake-host'}, 400)):
            with self.subTest(body=body):
                self.assertEqual(code, self.request(
                    'PUT', url, body, version='2.53',
                    roles=ADMIN).status_int)
        self.assertEqual(404, self.request(
            'PUT', '/v2.1/os-services/%s' % uuid.uuid4(),
            {'status': 'enabled'}, version='2.53', roles=ADMIN).status_int)
        self.assertEqual(400, self.request(
            'PUT', '/v2.1/os-services/disable', {'status': 'enabled'},
            version='2.53', roles=ADMIN).status_int)
        self.assertEqual(400, self.request(
            'DELETE', '/v2.1/os-services/1', version='2.53',
            roles=ADMIN).status_int)
