"""The reconciler inside a running deployment (API, compute, PostgreSQL,
RabbitMQ, libvirtd, Keystone-mode Glance): what a lost cast and a delete
the host missed leave behind is repaired by the compute service's own
periodic pass, acting as its service user.

The broken states are written straight into the database (what the lost
cast or the API's local delete would leave): breaking the broker or the
heartbeats is the fault campaign's job. The reconciler runs every 2 s
here, with short graces.
"""

import os
import time

import libvirt

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import task_states
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from tests.functional import e2e_base


class ReconcilerEndToEndTest(e2e_base.EndToEndTestCase):

    extra_conf = {'reconciler': {'interval': '2', 'startup_delay': '1',
                                 'task_state_grace': '3'}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = db_api.Database(cls.deployment.database_url)

    @classmethod
    def tearDownClass(cls):
        cls.db.dispose()
        super().tearDownClass()

    def test_a_lost_cast_is_released_and_its_image_deleted(self):
        server = self.boot('lost-cast', wait_for_ticks=False)
        image = self.image_api.create(self.ctx, {
            'name': 'lost-cast', 'instance_uuid': server['id'],
            'image_type': 'snapshot', 'visibility': 'private'})
        self.addCleanup(self._delete_image, image['id'])
        instance = self.db.instance_get(server['id'])
        sysmeta = dict(instance['system_metadata'])
        sysmeta[compute_api.SNAPSHOT_IMAGE_KEY] = image['id']
        # What the API writes before a cast that never arrives.
        self.db.instance_update(
            server['id'], {'task_state': task_states.IMAGE_SNAPSHOT_PENDING,
                           'system_metadata': sysmeta},
            expected_task_state=None)
        started = time.monotonic()
        self.client.wait_for_server(server['id'], task_state=None,
                                    timeout=60)
        released = time.monotonic() - started
        deadline = time.monotonic() + 30
        while True:
            try:
                self.image_api.get(self.ctx, image['id'])
            except exception.ImageNotFound:
                break
            self.assertLess(time.monotonic(), deadline,
                            'image %s was not deleted' % image['id'])
            time.sleep(0.5)
        print('lost cast released after %.1f s (grace 3 s, interval 2 s)'
              % released)
        after = self.db.instance_get(server['id'])
        self.assertNotIn(compute_api.SNAPSHOT_IMAGE_KEY,
                         after['system_metadata'])
        fault = self.db.fault_get_latest(server['id'])
        self.assertIn('image_snapshot_pending', fault['message'])
        # The guest was not touched.
        self.assert_still_ticking(server['id'])

    def test_a_guest_whose_row_was_deleted_is_reaped(self):
        server = self.boot('reaped', wait_for_ticks=False)
        self.domain(server['id'])
        inst_dir = os.path.join(self.deployment.state_dir, 'instances',
                                server['id'])
        self.assertTrue(os.path.isdir(inst_dir))
        # What the API's local delete does while the host is down.
        self.db.instance_destroy(server['id'])
        started = time.monotonic()
        deadline = started + 60
        while True:
            try:
                self.domain(server['id'])
            except libvirt.libvirtError:
                break
            self.assertLess(time.monotonic(), deadline,
                            'the guest of deleted %s still runs'
                            % server['id'])
            time.sleep(0.5)
        print('guest of a deleted row reaped after %.1f s'
              % (time.monotonic() - started))
        self.assertFalse(os.path.exists(inst_dir))
        self.assertIn('reaped',
                      self.db.fault_get_latest(server['id'])['message'])
