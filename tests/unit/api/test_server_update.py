"""PUT /servers/{id} (server update) over the real ComputeAPI and an
in-memory SQLite database: the schema of each microversion, what is
written, the response body, policy and scoping, 2.104's pinning rules, and
that a refused request changes nothing."""

import datetime
from unittest import mock

from nova_snapshot.api import faults
from nova_snapshot.api import microversion
from nova_snapshot.api.schemas import server_update as schema
from nova_snapshot.api import validation
from nova_snapshot.api import views
from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import flavors
from nova_snapshot.compute import server_update
from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot import conf as nova_conf
from nova_snapshot import context
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from tests.unit.api import base

ALICE = 'alice:project-a'
ADMIN = 'admin:project-admin'
BOB = 'bob:project-b'


class TestUpdateSchema(base.APITestCase):

    def _check(self, server, version):
        validation.validate({'server': server}, schema.update_schema(
            microversion.APIVersion.parse(version)))

    def _refused(self, server, version):
        with self.assertRaises(faults.APIFault) as caught:
            self._check(server, version)
        self.assertEqual(400, caught.exception.code)
        return caught.exception.message

    def test_fields_by_version(self):
        taken = [
            ('2.1', {}),
            ('2.1', {'name': 'new', 'accessIPv4': '1.1.1.1',
                     'accessIPv6': '::babe:202:202',
                     'OS-DCF:diskConfig': 'MANUAL'}),
            ('2.19', {'description': 'about it'}),
            ('2.19', {'description': None}),
            ('2.19', {'description': ''}),
            ('2.90', {'hostname': 'web-1'}),
            ('2.94', {'hostname': 'web-1.example.org'}),
            ('2.104', {'pinned_availability_zone': None}),
            ('2.104', {'pinned_availability_zone': 'nova'}),
        ]
        for version, server in taken:
            with self.subTest(version=version, server=server):
                self._check(server, version)
        refused = [
            ('2.18', {'description': 'too early'}),
            ('2.89', {'hostname': 'web-1'}),
            ('2.90', {'hostname': 'web-1.example.org'}),
            ('2.93', {'hostname': 'a'}),
            ('2.103', {'pinned_availability_zone': 'nova'}),
            ('2.104', {'pinned_availability_zone': ''}),
            ('2.104', {'pinned_availability_zone': 'z' * 256}),
            ('2.104', {'metadata': {'k': 'v'}}),
            ('2.104', {'imageRef': 'x'}),
        ]
        for version, server in refused:
            with self.subTest(version=version, server=server):
                self._refused(server, version)

    def test_bad_names_and_descriptions(self):
        for name in ('', ' ', ' lead', 'trail ', 'x' * 256, None, 5):
            with self.subTest(name=name):
                self._refused({'name': name}, '2.1')
        for description in ('x' * 256, 'a\x00b', 'tab\there', 7):
            with self.subTest(description=description):
                self._refused({'description': description}, '2.19')

    def test_body_shape(self):
        version = microversion.APIVersion.parse('2.1')
        for body in ({}, {'server': None}, {'server': []},
                     {'server': {}, 'other': 1}, {'servers': {}}):
            with self.subTest(body=body):
                with self.assertRaises(faults.APIFault):
                    validation.validate(body, schema.update_schema(version))


class TestServerUpdate(base.APITestCase):

    def setUp(self):
        self.db = db_api.Database('sqlite://')
        self.addCleanup(self.db.dispose)
        self.db.create_schema()
        self.api = compute_api.ComputeAPI(nova_conf.new_conf([]), self.db,
                                          image_api=None, rpcapi=None)
        with mock.patch.object(base.fakes, 'FakeComputeAPI',
                               return_value=self.api):
            super().setUp()

    def _server(self, project='project-a', user='alice', **values):
        now = datetime.datetime(2025, 1, 1, 12, 0, 0)
        row = {'name': 'Old Name', 'project_id': project, 'user_id': user,
               'host': 'host1', 'vm_state': vm_states.ACTIVE,
               'task_state': None, 'power_state': 1,
               'image_ref': 'c0ffee00-0000-4000-8000-000000000001',
               'flavor': flavors.get_flavor('1'), 'created_at': now,
               'updated_at': now, 'launched_at': now, 'metadata': {},
               'system_metadata': {}}
        row.update(values)
        return self.db.instance_create(row)

    def _put(self, server_id, server, version='2.1', token=ALICE,
             status=200, roles=None):
        response = self.request('PUT', '/v2.1/servers/%s' % server_id,
                                {'server': server}, token=token,
                                version=version, roles=roles)
        self.assertEqual(status, response.status_int, response.text)
        return response.json

    def _show(self, server_id, version='2.1', token=ALICE):
        response = self.request('GET', '/v2.1/servers/%s' % server_id,
                                token=token, version=version)
        self.assertEqual(200, response.status_int, response.text)
        return response.json['server']

    # -- what is written and shown -------------------------------------------

    def test_rename_and_addresses(self):
        server = self._server()
        body = self._put(server['uuid'], {
            'name': 'Íñstáñcé', 'accessIPv4': '1.1.1.1',
            'accessIPv6': '0:0::babe:220.12.22.2',
            'OS-DCF:diskConfig': 'AUTO'})['server']
        self.assertEqual('Íñstáñcé', body['name'])
        # Stored in canonical text, as Nova's IPAddress field does.
        self.assertEqual('::babe:dc0c:1602', body['accessIPv6'])
        shown = self._show(server['uuid'])
        for key in ('name', 'accessIPv4', 'accessIPv6', 'OS-DCF:diskConfig'):
            self.assertEqual(body[key], shown[key], key)
        self.assertEqual('AUTO', shown['OS-DCF:diskConfig'])

    def test_description_set_and_removed(self):
        server = self._server()
        body = self._put(server['uuid'], {'description': 'web tier'},
                         version='2.19')['server']
        self.assertEqual('web tier', body['description'])
        self.assertEqual('web tier',
                         self._show(server['uuid'], '2.19')['description'])
        self._put(server['uuid'], {'name': 'renamed'}, version='2.19')
        self.assertEqual('web tier',
                         self._show(server['uuid'], '2.19')['description'])
        self._put(server['uuid'], {'description': None}, version='2.19')
        self.assertIsNone(self._show(server['uuid'], '2.19')['description'])

    def test_hostname_and_rename_keeps_it(self):
        server = self._server()
        key = 'OS-EXT-SRV-ATTR:hostname'
        self.assertEqual('old-name', self._show(server['uuid'], '2.90')[key])
        # A rename keeps the hostname the server had (Nova sets it once).
        body = self._put(server['uuid'], {'name': 'Brand New'},
                         version='2.90')['server']
        self.assertEqual('old-name', body[key])
        body = self._put(server['uuid'], {'hostname': 'web-1'},
                         version='2.90')['server']
        self.assertEqual('web-1', body[key])
        body = self._put(server['uuid'], {'hostname': 'web-1.example.org'},
                         version='2.94')['server']
        self.assertEqual('web-1.example.org', body[key])
        self.assertEqual('web-1.example.org',
                         self._show(server['uuid'], '2.94')[key])

    def test_empty_update_changes_nothing(self):
        server = self._server()
        before = self.db.instance_get(server['uuid'])
        body = self._put(server['uuid'], {})['server']
        self.assertEqual('Old Name', body['name'])
        self.assertEqual(before, self.db.instance_get(server['uuid']))

    # -- the body per microversion -------------------------------------------

    def test_body_is_reduced_below_275_and_show_from_it(self):
        server = self._server()
        for minor in (1, 9, 19, 47, 71, 73, 74):
            version = '2.%d' % minor
            with self.subTest(version=version):
                body = self._put(server['uuid'], {}, version)['server']
                expected = self._show(server['uuid'], version)
                for key in views._NOT_IN_OLD_REBUILD:
                    expected.pop(key, None)
                self.assertEqual(expected, body)
                self.assertNotIn('OS-EXT-STS:vm_state', body)
        for minor in (75, 90, 96, 98, 100, 104):
            version = '2.%d' % minor
            for token in (ALICE, ADMIN):
                with self.subTest(version=version, token=token):
                    body = self._put(server['uuid'], {}, version,
                                     token=token)['server']
                    self.assertEqual(self._show(server['uuid'], version,
                                                token=token), body)
        body = self._put(server['uuid'], {}, '2.71')['server']
        self.assertEqual([], body['server_groups'])
        self.assertIn('locked', self._put(server['uuid'], {}, '2.9')[
            'server'])
        self.assertNotIn('locked', self._put(server['uuid'], {}, '2.8')[
            'server'])

    # -- who may ------------------------------------------------------------

    def test_another_projects_server_is_not_found(self):
        server = self._server(project='project-b', user='bob')
        self._put(server['uuid'], {'name': 'stolen'}, status=404)
        self._put('00000000-0000-4000-8000-000000000000', {'name': 'x'},
                  status=404)
        self.assertEqual('Old Name',
                         self.db.instance_get(server['uuid'])['name'])
        # An admin may (Nova's default: project member or admin).
        self._put(server['uuid'], {'name': 'by-admin'}, token=ADMIN)
        self.assertEqual('by-admin',
                         self.db.instance_get(server['uuid'])['name'])

    def test_reader_is_forbidden(self):
        server = self._server()
        self._put(server['uuid'], {'name': 'read-only'}, status=403,
                  roles=['reader'])
        self.assertEqual('Old Name',
                         self.db.instance_get(server['uuid'])['name'])

    def test_bad_body_is_400_before_the_lookup(self):
        server = self._server()
        for body in ({'name': ''}, {'name': 'x' * 256}, {'nope': 1}):
            with self.subTest(body=body):
                self._put(server['uuid'], body, status=400)
                # Nova validates the body first: 400 even for a server
                # that does not exist.
                self._put('00000000-0000-4000-8000-000000000000', body,
                          status=400)
        response = self.request('PUT', '/v2.1/servers/%s' % server['uuid'],
                                raw=b'{"server": ')
        self.assertEqual(400, response.status_int)
        self.assertEqual('Old Name',
                         self.db.instance_get(server['uuid'])['name'])

    def test_locked_or_busy_server_can_be_updated(self):
        """Nova's update checks neither the lock nor the state."""
        for values in ({'locked': True, 'locked_by': 'admin'},
                       {'locked': True, 'locked_by': 'owner'},
                       {'task_state': task_states.REBUILDING},
                       {'vm_state': vm_states.BUILDING,
                        'task_state': task_states.SCHEDULING},
                       {'vm_state': vm_states.ERROR}):
            with self.subTest(values=values):
                server = self._server(**values)
                self._put(server['uuid'], {'name': 'renamed'})
                row = self.db.instance_get(server['uuid'])
                self.assertEqual('renamed', row['name'])
                for key, value in values.items():
                    self.assertEqual(value, row[key])

    # -- 2.104: pinning -----------------------------------------------------

    def _pinned(self, server_id):
        return self._show(server_id, '2.104')['pinned_availability_zone']

    def test_unpin_and_repin(self):
        server = self._server(system_metadata={
            compute_api.PINNED_AZ_KEY: 'nova'})
        body = self._put(server['uuid'], {'pinned_availability_zone': None},
                         '2.104')['server']
        self.assertIsNone(body['pinned_availability_zone'])
        self.assertIsNone(self._pinned(server['uuid']))
        # Unpinning an unpinned server is a no-op.
        self._put(server['uuid'], {'pinned_availability_zone': None},
                  '2.104')
        self.assertIsNone(self._pinned(server['uuid']))
        body = self._put(server['uuid'], {'pinned_availability_zone': 'nova'},
                         '2.104')['server']
        self.assertEqual('nova', body['pinned_availability_zone'])
        self.assertEqual('nova', body['OS-EXT-AZ:availability_zone'])
        # The same zone again: a no-op.
        self._put(server['uuid'], {'pinned_availability_zone': 'nova'},
                  '2.104')
        self.assertEqual('nova', self._pinned(server['uuid']))

    def test_pin_conflicts_change_nothing(self):
        pinned = self._server(system_metadata={
            compute_api.PINNED_AZ_KEY: 'nova'})
        body = self._put(pinned['uuid'], {
            'pinned_availability_zone': 'other', 'name': 'not-applied'},
            '2.104', status=409)
        self.assertEqual(
            'Cannot change pinned availability zone directly. Unpin first '
            'by setting pinned_availability_zone to null.',
            body['conflictingRequest']['message'])
        unpinned = self._server()
        body = self._put(unpinned['uuid'], {
            'pinned_availability_zone': 'other', 'name': 'not-applied'},
            '2.104', status=409)
        self.assertEqual(
            "Server can only be pinned to its current availability zone "
            "'nova', but 'other' was requested.",
            body['conflictingRequest']['message'])
        for server in (pinned, unpinned):
            row = self.db.instance_get(server['uuid'])
            self.assertEqual('Old Name', row['name'])
            self.assertEqual(server['system_metadata'],
                             row['system_metadata'])
            self.assertEqual(server['updated_at'], row['updated_at'])

    def test_pin_is_checked_on_the_row_not_the_read(self):
        """The rules apply to the row as it is when written: a pin made
        after the caller read the server is seen (compare-and-swap)."""
        server = self._server()
        stale = self.api.get(self.api_context(), server['uuid'])
        self.db.instance_update_checked(
            server['uuid'], {},
            system_metadata={compute_api.PINNED_AZ_KEY: 'nova'})
        self.assertRaises(server_update.PinnedZoneChangeRefused,
                          self.api.update_instance, self.api_context(),
                          stale, {'name': 'x'}, pinned_az='elsewhere')
        self.assertEqual('Old Name',
                         self.db.instance_get(server['uuid'])['name'])

    def test_update_of_a_deleted_server_is_not_found(self):
        server = self._server()
        stale = self.api.get(self.api_context(), server['uuid'])
        self.db.instance_destroy(server['uuid'])
        self.assertRaises(exception.InstanceNotFound,
                          self.api.update_instance, self.api_context(),
                          stale, {'name': 'x'})

    def api_context(self):
        return context.RequestContext(user_id='alice', project_id='project-a',
                                      roles=['member'])


class TestDefaultHostname(base.APITestCase):

    def test_default_hostname(self):
        for name, expected in (('Old Name', 'old-name'),
                               ('web_01.example', 'web-01-example'),
                               ('--x--', 'x'), ('x' * 80, 'x' * 63)):
            with self.subTest(name=name):
                self.assertEqual(expected,
                                 server_update.default_hostname(name, 'u'))
        self.assertEqual('server-u', server_update.default_hostname('ÉÉ',
                                                                    'u'))
