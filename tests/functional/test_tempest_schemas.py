"""Every body this API sends, at every microversion from 2.1 to the
maximum, against tempest's response schema of that microversion.

tempest validates each response it gets, but its tests reach only some
versions; this walks them all: server show/list/detail (member and
admin), the rebuild body (views.server_rebuild, with and without a
password), the server update body, flavors, volume attachments, instance
actions, os-services and os-keypairs.
The bodies come from the API in process (tests/unit/api's app over the
fake compute API); tools/tempest/check_schemas.py validates them with
tempest's own code in tempest's virtualenv (tools/tempest/run.sh installs
it), so the schemas are tempest's and not a copy.
"""

import datetime
import json
import os
import subprocess
import unittest
from unittest import mock
import uuid

from nova_snapshot.api import microversion
from nova_snapshot.api import views
from tests.unit.api import base
from tests.unit.compute import test_keypairs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TEMPEST_PYTHON = os.path.join(REPO_ROOT, '.stack', 'tempest-venv', 'bin',
                              'python')
CHECKER = os.path.join(REPO_ROOT, 'tools', 'tempest', 'check_schemas.py')
ADMIN = ['admin', 'member', 'reader']


@unittest.skipUnless(os.path.exists(TEMPEST_PYTHON),
                     'tempest is not installed (tools/tempest/run.sh)')
class TestTempestSchemas(base.APITestCase):

    def setUp(self):
        super().setUp()
        when = datetime.datetime(2024, 1, 2)
        self.server = self.compute.add_instance(
            'project-a', name='web 1', locked_reason='maintenance',
            # Of a multiple create: a string where tempest allows null.
            reservation_id='r-0a1b2c3d', launch_index=1,
            system_metadata={'image_hw_disk_bus': 'virtio',
                             'pinned_availability_zone': 'nova'})
        self.compute.add_volume(self.server, delete_on_termination=True)
        self.compute.actions[self.server['uuid']] = [{
            'action': 'stop', 'instance_uuid': self.server['uuid'],
            'request_id': 'req-1', 'user_id': 'alice',
            'project_id': 'project-a', 'message': None, 'start_time': when,
            'finish_time': when, 'events': [{
                'event': 'compute_stop', 'result': 'Success',
                'traceback': None, 'host': 'host1', 'details': None,
                'start_time': when, 'finish_time': when}]}]
        self.url = '/v2.1/servers/%s' % self.server['uuid']

    def get(self, path, version, roles=None):
        response = self.request('GET', path, version=version, roles=roles)
        self.assertEqual(200, response.status_int, response.text)
        return response.json

    def rebuild_bodies(self, version):
        with mock.patch.object(views, 'server_show',
                               wraps=views.server_show) as spy:
            self.get(self.url, version)
        req = spy.call_args[0][0]
        instance = self.compute.instances[self.server['uuid']]
        return [
            ('rebuild_server', 202,
             {'server': views.server_rebuild(req, instance)}),
            ('rebuild_server_with_admin_pass', 202,
             {'server': views.server_rebuild(req, instance,
                                             admin_password='secret')})]

    def bodies(self, version):
        url = self.url
        found = [
            ('servers', 'get_server', 200, self.get(url, version)),
            ('servers', 'get_server', 200, self.get(url, version, ADMIN)),
            ('servers', 'list_servers', 200,
             self.get('/v2.1/servers', version)),
            ('servers', 'list_servers_detail', 200,
             self.get('/v2.1/servers/detail', version)),
            ('servers', 'list_servers_detail', 200,
             self.get('/v2.1/servers/detail', version, ADMIN)),
            ('servers', 'list_volume_attachments', 200,
             self.get(url + '/os-volume_attachments', version)),
            ('servers', 'list_instance_actions', 200,
             self.get(url + '/os-instance-actions', version)),
            ('servers', 'show_instance_action', 200,
             self.get(url + '/os-instance-actions/req-1', version)),
            ('servers', 'show_instance_action', 200,
             self.get(url + '/os-instance-actions/req-1', version, ADMIN)),
            ('flavors', 'create_update_get_flavor_details', 200,
             self.get('/v2.1/flavors/1', version)),
            ('flavors', 'list_flavors_details', 200,
             self.get('/v2.1/flavors/detail', version)),
            ('services', 'list_services', 200,
             self.get('/v2.1/os-services', version, ADMIN)),
        ]
        volume_id = found[5][3]['volumeAttachments'][0]['volumeId']
        found.append(('servers', 'show_volume_attachment', 200, self.get(
            url + '/os-volume_attachments/' + volume_id, version)))
        found += [('servers',) + item for item in
                  self.rebuild_bodies(version)]
        response = self.request('PUT', url, {'server': {}}, version=version)
        self.assertEqual(200, response.status_int, response.text)
        found.append(('servers', 'update_server', 200, response.json))
        found += self.keypair_bodies(version)
        if not microversion.APIVersion.parse(version).matches((2, 101)):
            response = self.request(
                'POST', url + '/os-volume_attachments', {'volumeAttachment': {
                    'volumeId': str(uuid.uuid4())}}, version=version)
            self.assertEqual(200, response.status_int, response.text)
            found.append(('servers', 'attach_volume', 200, response.json))
        return found

    def keypair_bodies(self, version):
        """os-keypairs: an import at every version (200 at 2.1, 201
        from 2.2), a generated key where generation still exists, the
        list and the show."""
        found = []
        name = 'k-' + version.replace('.', '-')
        response = self.request('POST', '/v2.1/os-keypairs', {'keypair': {
            'name': name, 'public_key': test_keypairs.RSA_KEY}},
            version=version)
        found.append(('keypairs', 'create_keypair', response.status_int,
                      response.json))
        if version in ('2.1', '2.2', '2.10', '2.91'):
            response = self.request('POST', '/v2.1/os-keypairs', {
                'keypair': {'name': name + '-gen'}}, version=version)
            found.append(('keypairs', 'create_keypair',
                          response.status_int, response.json))
        found.append(('keypairs', 'list_keypairs', 200,
                      self.get('/v2.1/os-keypairs', version)))
        found.append(('keypairs', 'get_keypair', 200,
                      self.get('/v2.1/os-keypairs/' + name, version)))
        # A user holds at most 100 keypairs: 104 versions are more.
        for keypair in found[-2][3]['keypairs']:
            self.request('DELETE', '/v2.1/os-keypairs/' + keypair[
                'keypair']['name'], version=version)
        return found

    def test_every_version(self):
        checks = []
        for minor in range(1, microversion.MAX_MINOR + 1):
            version = '2.%d' % minor
            checks += [[version, client, name, status, body]
                       for client, name, status, body in
                       self.bodies(version)]
        service_id = self.get('/v2.1/os-services', '2.53',
                              ADMIN)['services'][0]['id']
        response = self.request('PUT', '/v2.1/os-services/' + service_id,
                                {'status': 'disabled'}, version='2.53',
                                roles=ADMIN)
        checks.append(['2.53', 'services', 'update_service', 200,
                       response.json])
        result = subprocess.run(
            [TEMPEST_PYTHON, CHECKER], input=json.dumps(checks),
            capture_output=True, text=True, timeout=300)
        self.assertEqual(0, result.returncode,
                         result.stdout + result.stderr[-2000:])
        # Every body was looked at (the checker prints nothing otherwise).
        self.assertGreater(len(checks), 1500)
