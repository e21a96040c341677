"""Create and rebuild store the 2.19 ``description``, and rebuild the 2.90
``hostname`` (through ComputeAPI and the manager over fake:/ RPC, as
test_reboot_rebuild_lock)."""

from unittest import mock

from nova_snapshot.compute import api as compute_api
from nova_snapshot import exception
from tests.unit.compute import fakes


class RebuildDescriptionTest(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        self.new_image = self.image_api.add_image(name='snap', min_ram=0)

    def _description(self, instance):
        return self.db.instance_get(instance['uuid'])['description']

    def test_create_stores_it(self):
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'],
                                   '1', description='made by a test')
        self.assertEqual('made by a test', self._description(instance))
        plain = self.api.create(self.ctx, 'vm2', self.base_image['id'], '1')
        self.assertIsNone(self._description(plain))
        for server in (instance, plain):
            self.wait_for_instance(server['uuid'],
                                   lambda i: i['vm_state'] == 'active')

    def test_set_kept_and_removed(self):
        instance = self.boot()
        accepted = self.api.rebuild(self.ctx, instance, self.new_image['id'],
                                    description='rebuilt for tests')
        # Written with the rebuilding compare-and-swap: the 202 shows it.
        self.assertEqual('rebuilt for tests', accepted['description'])
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('rebuilt for tests', after['description'])
        # Not given: left as it is.
        self.api.rebuild(self.ctx, after, self.new_image['id'], name='n')
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('rebuilt for tests', after['description'])
        # null removes it.
        self.api.rebuild(self.ctx, after, self.new_image['id'],
                         description=None)
        self.assertIsNone(self.wait_idle(instance['uuid'])['description'])

    def test_unsent_cast_puts_the_description_back(self):
        instance = self.boot()
        self.db.instance_update(instance['uuid'], {'description': 'before'})
        instance = self.db.instance_get(instance['uuid'])
        with mock.patch.object(
                self.rpcapi, 'rebuild_instance',
                side_effect=exception.ComputeServiceUnavailable(
                    host='host-a', reason='broker down')):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.rebuild, self.ctx, instance,
                              self.new_image['id'], description='after')
        self.assertEqual('before', self._description(instance))


class RebuildHostnameTest(fakes.ComputeTestCase):

    def setUp(self):
        super().setUp()
        self.new_image = self.image_api.add_image(name='snap', min_ram=0)

    def _hostname(self, instance):
        return self.db.instance_get(instance['uuid'])['system_metadata'].get(
            compute_api.HOSTNAME_KEY)

    def test_hostname_and_rename(self):
        instance = self.boot(name='First Name')
        self.assertIsNone(self._hostname(instance))
        # A rename writes down the hostname the server had.
        self.api.rebuild(self.ctx, instance, self.new_image['id'],
                         name='Second')
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('first-name', self._hostname(after))
        self.api.rebuild(self.ctx, after, self.new_image['id'],
                         hostname='web-1.example.org', name='Third')
        after = self.wait_idle(instance['uuid'])
        self.assertEqual('web-1.example.org', self._hostname(after))

    def test_unsent_cast_puts_the_hostname_back(self):
        instance = self.boot(name='First Name')
        with mock.patch.object(
                self.rpcapi, 'rebuild_instance',
                side_effect=exception.ComputeServiceUnavailable(
                    host='host-a', reason='broker down')):
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.rebuild, self.ctx, instance,
                              self.new_image['id'], hostname='other')
            self.assertRaises(exception.ComputeServiceUnavailable,
                              self.api.rebuild, self.ctx, instance,
                              self.new_image['id'], name='renamed')
        self.assertIsNone(self._hostname(instance))
        self.assertEqual('First Name',
                         self.db.instance_get(instance['uuid'])['name'])
