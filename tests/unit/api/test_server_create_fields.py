"""Server create's Nova 2.1 fields (adminPass, accessIPv4/v6,
OS-DCF:diskConfig) and the no-argument actions, against FakeComputeAPI."""

import string

from nova_snapshot.api import faults
from nova_snapshot.api import microversion
from nova_snapshot.api import password
from nova_snapshot.api.schemas import servers as schema
from nova_snapshot.api import validation
from nova_snapshot.compute import api as compute_api
from nova_snapshot import exception
from tests.unit.api import base

IMAGE = '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'


def _body(**extra):
    server = {'name': 'vm', 'imageRef': IMAGE, 'flavorRef': '1'}
    server.update(extra)
    return {'server': server}


class TestCreateSchema(base.APITestCase):

    def _valid(self, body, version='2.1'):
        validation.validate(body, schema.create_schema(
            microversion.APIVersion.parse(version)))

    def _invalid(self, body, version='2.1'):
        with self.assertRaises(faults.APIFault) as caught:
            self._valid(body, version)
        self.assertEqual(400, caught.exception.code)
        return caught.exception.message

    def test_nova_fields_accepted(self):
        self._valid(_body(adminPass='secret', accessIPv4='1.1.1.1',
                          accessIPv6='0000:0000:0000:0000:0000:babe:'
                                     '220.12.22.2',
                          **{'OS-DCF:diskConfig': 'AUTO'}))
        self._valid(_body(adminPass='', **{'OS-DCF:diskConfig': 'MANUAL'}))
        self._valid(_body(networks='none', accessIPv6='::1'), '2.45')

    def test_bad_addresses(self):
        for value in ('1.1.1', '1.1.1.256', '::1', 'example.com', ''):
            with self.subTest(value=value):
                self._invalid(_body(accessIPv4=value))
        for value in ('1.1.1.1', 'fe80::1::2', 'g::1', ''):
            with self.subTest(value=value):
                self._invalid(_body(accessIPv6=value))
        self.assertIn('accessIPv4', self._invalid(_body(accessIPv4=5)))
        # Nova's message names the field and the format.
        self.assertEqual(
            "Invalid input for field/attribute server/accessIPv4. Value: "
            "1.1.1. '1.1.1' is not a 'ipv4'",
            self._invalid(_body(accessIPv4='1.1.1')))

    def test_disk_config_is_upper_case_only(self):
        for value in ('auto', 'Manual', '', None):
            with self.subTest(value=value):
                self._invalid(_body(**{'OS-DCF:diskConfig': value}))

    def test_admin_pass_is_a_string(self):
        for value in (1, None, ['x'], {'p': 'x'}):
            with self.subTest(value=value):
                self._invalid(_body(adminPass=value))


class TestCreateHandler(base.APITestCase):

    def _create(self, **extra):
        response = self.request('POST', '/v2.1/servers', _body(**extra))
        self.assertEqual(202, response.status_int, response.text)
        return response.json['server']

    def _show(self, server_id):
        response = self.request('GET', '/v2.1/servers/%s' % server_id)
        self.assertEqual(200, response.status_int, response.text)
        return response.json['server']

    def test_given_admin_pass_is_returned(self):
        self.assertEqual('s3cret', self._create(adminPass='s3cret')[
            'adminPass'])
        # Nova returns what was given, even an empty string.
        self.assertEqual('', self._create(adminPass='')['adminPass'])

    def test_generated_admin_pass(self):
        first = self._create()['adminPass']
        second = self._create()['adminPass']
        self.assertEqual(12, len(first))
        self.assertNotEqual(first, second)
        self.assertTrue(set(first) <= set(''.join(password.SYMBOL_GROUPS)))

    def test_no_admin_pass_when_disabled(self):
        self.conf.set_override('enable_instance_password', False,
                               group='api')
        self.assertNotIn('adminPass', self._create(adminPass='x'))
        self.assertNotIn('adminPass', self._create())

    def test_access_ips_stored_canonical_and_shown(self):
        server = self._create(
            accessIPv4='1.1.1.1',
            accessIPv6='0000:0000:0000:0000:0000:babe:220.12.22.2')
        stored = self.compute.instances[server['id']]
        self.assertEqual('1.1.1.1', stored['access_ip_v4'])
        self.assertEqual('::babe:dc0c:1602', stored['access_ip_v6'])
        shown = self._show(server['id'])
        self.assertEqual('1.1.1.1', shown['accessIPv4'])
        self.assertEqual('::babe:dc0c:1602', shown['accessIPv6'])

    def test_unset_access_ips_show_empty_strings(self):
        shown = self._show(self._create()['id'])
        self.assertEqual('', shown['accessIPv4'])
        self.assertEqual('', shown['accessIPv6'])

    def test_disk_config_in_create_and_show(self):
        server = self._create(**{'OS-DCF:diskConfig': 'AUTO'})
        self.assertEqual('AUTO', server['OS-DCF:diskConfig'])
        self.assertIs(True,
                      self.compute.instances[server['id']][
                          'auto_disk_config'])
        self.assertEqual('AUTO', self._show(server['id'])[
            'OS-DCF:diskConfig'])
        server = self._create()
        self.assertEqual('MANUAL', server['OS-DCF:diskConfig'])
        self.assertEqual('MANUAL', self._show(server['id'])[
            'OS-DCF:diskConfig'])

    def test_description_from_219(self):
        response = self.request('POST', '/v2.1/servers',
                                _body(description='web tier'),
                                version='2.19')
        self.assertEqual(202, response.status_int, response.text)
        server_id = response.json['server']['id']
        self.assertEqual('web tier',
                         self.compute.instances[server_id]['description'])
        shown = self.request('GET', '/v2.1/servers/%s' % server_id,
                             version='2.19').json['server']
        self.assertEqual('web tier', shown['description'])
        for version, description in (('2.18', 'too early'),
                                     ('2.19', 'x' * 256),
                                     ('2.19', 'new\nline')):
            with self.subTest(version=version, description=description):
                response = self.request(
                    'POST', '/v2.1/servers',
                    _body(description=description, networks='none'),
                    version=version)
                self.assertEqual(400, response.status_int, response.text)

    def test_bad_address_creates_nothing(self):
        response = self.request('POST', '/v2.1/servers',
                                _body(accessIPv4='300.1.1.1'))
        self.assertEqual(400, response.status_int)
        self.assertEqual([], self.compute.calls)


class TestPasswordGenerator(base.APITestCase):

    def test_length_and_groups(self):
        for length in (3, 12, 40):
            value = password.generate(length)
            self.assertEqual(length, len(value))
            for group in password.SYMBOL_GROUPS:
                self.assertTrue(set(value) & set(group), (value, group))

    def test_no_look_alikes(self):
        seen = set(''.join(password.generate(64) for _ in range(20)))
        self.assertFalse(seen & set('01OIl'))
        self.assertTrue(seen <= set(string.ascii_letters + string.digits))


class TestNoArgumentActions(base.APITestCase):
    """Nova's schemas for these take any value, {} as tempest sends it."""

    # action -> (vm_state it needs, ComputeAPI method)
    ACTIONS = {'os-stop': ('active', 'stop'), 'os-start': ('stopped', 'start'),
               'pause': ('active', 'pause'), 'unpause': ('paused', 'unpause'),
               'suspend': ('active', 'suspend'),
               'resume': ('suspended', 'resume')}

    def test_any_value_is_accepted(self):
        for action, (vm_state, method) in self.ACTIONS.items():
            for value in ({}, None, {'force': True}, 1, 'x', []):
                with self.subTest(action=action, value=value):
                    server = self.compute.add_instance('project-a',
                                                       vm_state=vm_state)
                    response = self.request(
                        'POST', '/v2.1/servers/%s/action' % server['uuid'],
                        {action: value})
                    self.assertEqual(202, response.status_int, response.text)
                    self.assertEqual((method, server['uuid']),
                                     self.compute.calls[-1])

    def test_extra_keys_still_refused(self):
        server = self.compute.add_instance('project-a')
        response = self.request(
            'POST', '/v2.1/servers/%s/action' % server['uuid'],
            {'pause': {}, 'unpause': {}})
        self.assertEqual(400, response.status_int)
        self.assertEqual([], self.compute.calls)


class TestDiskConfigForCreate(base.APITestCase):
    """compute.api's rule for the stored auto_disk_config (Nova's)."""

    def test_request_wins_else_image(self):
        rule = compute_api.disk_config_for_create
        self.assertIs(True, rule({'auto_disk_config': 'False'}, True))
        self.assertIs(False, rule({'auto_disk_config': 'True'}, False))
        self.assertIs(True, rule({'auto_disk_config': 'True'}, None))
        self.assertIs(False, rule({}, None))
        self.assertIs(False, rule(None, None))  # booted from a volume
        self.assertIs(True, rule(None, True))

    def test_image_can_disable_it(self):
        rule = compute_api.disk_config_for_create
        image = {'id': 'img-1', 'auto_disk_config': 'Disabled'}
        self.assertIs(False, rule(image, None))
        self.assertIs(False, rule(image, False))
        with self.assertRaises(exception.Invalid) as caught:
            rule(image, True)
        self.assertIn('img-1 has automatic disk resize disabled',
                      caught.exception.format_message())
