"""The FakeDriver follows the driver contract the manager relies on."""

import os
import shutil
import tempfile
import threading
import unittest

from nova_snapshot.compute import power_state
from nova_snapshot.compute import task_states
from nova_snapshot import conf as ns_conf
from nova_snapshot import exception
from nova_snapshot.virt import fake
from nova_snapshot.virt import loader

INSTANCE = {'uuid': '5d0b6a1e-7f4e-4d0a-9a77-3c1f0d9e8b21', 'name': 'vm'}


class RecordingImageAPI:

    def __init__(self):
        self.updates = []
        self.uploads = {}

    def update(self, context, image_id, values, remove_props=()):
        self.updates.append((image_id, values))

    def upload(self, context, image_id, data, size=None):
        body = b''.join(data)
        self.uploads[image_id] = (body, size)


class FakeDriverTest(unittest.TestCase):

    def setUp(self):
        self.image_api = RecordingImageAPI()
        self.driver = fake.FakeDriver(ns_conf.new_conf([]), self.image_api)
        self.states = []
        self.progress = []

    def update_task_state(self, task_state, expected_state=None):
        self.states.append((task_state, expected_state))

    def snapshot(self):
        return self.driver.snapshot('ctx', INSTANCE, 'img',
                                    self.update_task_state,
                                    self.progress.append)

    def test_loaded_by_name(self):
        drv = loader.load_compute_driver(ns_conf.new_conf([]), self.image_api,
                                         name='fake')
        self.assertIsInstance(drv, fake.FakeDriver)

    def test_power_cycle(self):
        self.assertEqual(power_state.RUNNING,
                         self.driver.spawn(None, INSTANCE, {'id': 'i'}))
        self.assertEqual([INSTANCE['uuid']], self.driver.list_instance_uuids())
        steps = [(self.driver.pause, power_state.PAUSED),
                 (self.driver.unpause, power_state.RUNNING),
                 (self.driver.suspend, power_state.SHUTDOWN),
                 (self.driver.resume, power_state.RUNNING),
                 (self.driver.power_off, power_state.SHUTDOWN)]
        for call, expected in steps:
            call(INSTANCE)
            self.assertEqual(expected, self.driver.get_power_state(INSTANCE))
        self.driver.power_on(None, INSTANCE)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(INSTANCE))
        self.assertIn('booted from image i',
                      self.driver.get_console_output(INSTANCE))
        self.assertRaises(exception.HypervisorError, self.driver.unpause,
                          INSTANCE)
        self.driver.destroy(None, INSTANCE)
        self.driver.destroy(None, INSTANCE)
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_power_state, INSTANCE)
        self.assertEqual('spawn', self.driver.calls[0][0])

    def test_snapshot_follows_the_contract(self):
        self.driver.spawn(None, INSTANCE, {'id': 'i'})
        facts = self.snapshot()
        self.assertEqual(
            [(task_states.IMAGE_PENDING_UPLOAD, task_states.IMAGE_SNAPSHOT),
             (task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)],
            self.states)
        self.assertEqual([0, 50, 100], self.progress)
        body, size = self.image_api.uploads['img']
        self.assertEqual(self.driver.snapshot_data, body)
        self.assertEqual(len(body), size)
        self.assertEqual(len(body), facts['bytes_uploaded'])
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(INSTANCE))

    def test_snapshot_of_unknown_instance(self):
        self.assertRaises(exception.InstanceNotFound, self.snapshot)
        self.assertEqual([], self.states)

    def test_failure_injection_points(self):
        self.driver.spawn(None, INSTANCE, {'id': 'i'})
        self.driver.fail_snapshot_with = exception.SnapshotCaptureFailed
        expected_states = {'start': 0, 'capture': 1, 'upload': 2}
        for point, n_states in expected_states.items():
            self.states = []
            self.driver.fail_snapshot_at = point
            self.assertRaises(exception.SnapshotCaptureFailed, self.snapshot)
            self.assertEqual(n_states, len(self.states), point)
        self.assertEqual({}, self.image_api.uploads)
        self.driver.fail_snapshot_with = None
        self.snapshot()
        self.assertIn('img', self.image_api.uploads)

    def test_failure_injection_instance_and_other_methods(self):
        self.driver.fail_spawn_with = exception.HypervisorError(reason='x')
        self.assertRaises(exception.HypervisorError, self.driver.spawn, None,
                          INSTANCE, {'id': 'i'})
        self.assertEqual([], self.driver.list_instance_uuids())

    def test_gate_holds_a_snapshot_in_flight(self):
        self.driver.spawn(None, INSTANCE, {'id': 'i'})
        self.driver.snapshot_gate = threading.Event()
        errors = []

        def run():
            try:
                self.snapshot()
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(0.2)
        self.assertTrue(thread.is_alive())
        self.assertEqual(1, len(self.states))
        # Deleted while held: the snapshot notices.
        self.driver.destroy(None, INSTANCE)
        self.driver.snapshot_gate.set()
        thread.join(5)
        self.assertEqual(1, len(errors))
        self.assertIsInstance(errors[0], exception.InstanceNotFound)

    def test_hold_file_holds_a_snapshot_in_flight(self):
        # As a service runs it: the option comes from a config file parsed
        # before the driver registers its [fake] group.
        hold_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, hold_dir)
        conf_file = os.path.join(hold_dir, 'compute.conf')
        with open(conf_file, 'w') as out:
            out.write('[fake]\nsnapshot_hold_dir = %s\n' % hold_dir)
        self.driver = fake.FakeDriver(
            ns_conf.new_conf(['--config-file', conf_file]), self.image_api)
        self.driver.spawn(None, INSTANCE, {'id': 'i'})
        other = dict(INSTANCE, uuid='0b9f3c1e-2d4a-4e8b-9c7d-6a5f4e3d2c1b')
        self.driver.spawn(None, other, {'id': 'i'})
        hold = os.path.join(hold_dir, INSTANCE['uuid'])
        open(hold, 'w').close()
        # Another instance's snapshot is not held.
        self.driver.snapshot('ctx', other, 'other-img',
                             lambda **kw: None, lambda pct: None)
        self.assertIn('other-img', self.image_api.uploads)
        thread = threading.Thread(target=self.snapshot)
        thread.start()
        thread.join(0.3)
        self.assertTrue(thread.is_alive())
        self.assertEqual(1, len(self.states))
        self.assertNotIn('img', self.image_api.uploads)
        os.unlink(hold)
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertIn('img', self.image_api.uploads)

    def test_hold_timeout_bounds_the_wait(self):
        hold_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, hold_dir)
        conf = ns_conf.new_conf([])
        self.driver = fake.FakeDriver(conf, self.image_api)
        conf.set_override('snapshot_hold_dir', hold_dir, group='fake')
        conf.set_override('snapshot_hold_timeout', 0.2, group='fake')
        self.driver.spawn(None, INSTANCE, {'id': 'i'})
        open(os.path.join(hold_dir, INSTANCE['uuid']), 'w').close()
        self.snapshot()
        self.assertIn('img', self.image_api.uploads)

    def test_repair_is_recorded(self):
        self.driver.repair_after_crash(INSTANCE)
        self.assertEqual([INSTANCE['uuid']], self.driver.repaired)
