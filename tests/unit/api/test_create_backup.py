"""The createBackup handler and schema against FakeComputeAPI."""

from nova_snapshot.api.handlers import create_backup
from nova_snapshot.compute import task_states
from tests.unit.api import base


class TestCreateBackup(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.url = '/v2.1/servers/%s/action' % self.server['uuid']

    def body(self, **values):
        entity = {'name': 'nightly', 'backup_type': 'daily', 'rotation': 2}
        entity.update(values)
        return {'createBackup': entity}

    def test_location_below_245_names_the_compute_images_url(self):
        response = self.request('POST', self.url,
                                self.body(metadata={'k': 'v'}),
                                version='2.44')
        self.assertEqual(202, response.status_int, response.text)
        self.assertEqual(b'', response.body)
        self.assertEqual(('backup', self.server['uuid'], 'nightly', 'daily',
                          2, {'k': 'v'}), self.compute.calls[-1])
        self.assertRegex(response.headers['Location'],
                         r'^http://localhost/v2\.1/images/[0-9a-f-]{36}$')

    def test_no_location_when_rotation_is_zero(self):
        response = self.request('POST', self.url, self.body(rotation=0))
        self.assertEqual(202, response.status_int, response.text)
        self.assertNotIn('Location', response.headers)

    def test_image_id_from_245(self):
        for version in ('2.45', 'latest'):
            server = self.compute.add_instance('project-a')
            url = '/v2.1/servers/%s/action' % server['uuid']
            response = self.request('POST', url, self.body(rotation='0'),
                                    version=version)
            self.assertEqual(202, response.status_int, response.text)
            self.assertNotIn('Location', response.headers)
            self.assertEqual(['image_id'], list(response.json))
            self.assertEqual(0, self.compute.calls[-1][4])

    def test_rotation_strings_and_huge_values(self):
        for value, expected in (('3', 3), ('007', 7), (0, 0),
                                ('9' * 5000, 10 ** 18),
                                (10 ** 30, 10 ** 18)):
            with self.subTest(value=value[:10] if isinstance(value, str)
                              else value):
                server = self.compute.add_instance('project-a')
                url = '/v2.1/servers/%s/action' % server['uuid']
                response = self.request('POST', url,
                                        self.body(rotation=value))
                self.assertEqual(202, response.status_int, response.text)
                self.assertEqual(expected, self.compute.calls[-1][4])

    def test_schema_errors_are_400_before_anything_is_loaded(self):
        bad = [
            self.body(rotation=-1), self.body(rotation='-1'),
            self.body(rotation=1.5), self.body(rotation='1.5'),
            self.body(rotation='abc'), self.body(rotation=''),
            self.body(rotation=True), self.body(rotation=None),
            self.body(backup_type=1), self.body(backup_type=None),
            self.body(name=''), self.body(name=' edge'),
            self.body(name='x' * 256), self.body(metadata={'k': 1}),
            self.body(extra='no'),
            {'createBackup': {'name': 'n', 'backup_type': 'daily'}},
            {'createBackup': {'name': 'n', 'rotation': 1}},
            {'createBackup': {'backup_type': 'daily', 'rotation': 1}},
            {'createBackup': None}, {'createBackup': []},
        ]
        for body in bad:
            with self.subTest(body=body):
                response = self.request('POST', self.url, body)
                self.assertEqual(400, response.status_int, response.text)
                self.assertIn('badRequest', response.json)
        self.assertEqual([], self.compute.calls)

    def test_state_conflict(self):
        self.compute.instances[self.server['uuid']]['task_state'] = (
            task_states.IMAGE_BACKUP)
        response = self.request('POST', self.url, self.body())
        self.assertEqual(409, response.status_int)
        self.assertEqual(
            "Cannot 'createBackup' instance %s while it is in task_state "
            "image_backup" % self.server['uuid'],
            response.json['conflictingRequest']['message'])

    def test_volume_backed_is_400(self):
        server = self.compute.add_instance('project-a', image_ref='')
        url = '/v2.1/servers/%s/action' % server['uuid']
        response = self.request('POST', url, self.body())
        self.assertEqual(400, response.status_int)
        self.assertEqual(
            'Backup is not supported for volume-backed instances.',
            response.json['badRequest']['message'])

    def test_policy_member_or_admin_of_the_instance_project(self):
        response = self.request('POST', self.url, self.body(),
                                roles=['reader'])
        self.assertEqual(403, response.status_int)
        other = self.compute.add_instance('project-b')
        url = '/v2.1/servers/%s/action' % other['uuid']
        response = self.request('POST', url, self.body())
        self.assertEqual(404, response.status_int)
        response = self.request('POST', url, self.body(),
                                token='admin:project-a')
        self.assertEqual(202, response.status_int, response.text)

    def test_metadata_quota_only_below_239(self):
        metadata = {'k%d' % i: 'v' for i in range(129)}
        response = self.request('POST', self.url,
                                self.body(metadata=metadata), version='2.38')
        self.assertEqual(403, response.status_int)
        self.assertEqual([], self.compute.calls)
        response = self.request('POST', self.url,
                                self.body(metadata=metadata), version='2.39')
        self.assertEqual(202, response.status_int)

    def test_the_action_is_recorded(self):
        self.request('POST', self.url, self.body())
        response = self.request(
            'GET', '/v2.1/servers/%s/os-instance-actions' %
            self.server['uuid'])
        self.assertEqual('createBackup',
                         response.json['instanceActions'][0]['action'])


class TestRotationValue(base.unittest.TestCase):

    def test_values(self):
        self.assertEqual(0, create_backup.rotation_value('000'))
        self.assertEqual(12, create_backup.rotation_value('12'))
        self.assertEqual(10 ** 18, create_backup.rotation_value('1' * 19))
        self.assertEqual(5, create_backup.rotation_value(5))
