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
from nova_snapshot import context as ns_context
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

    def test_a_lost_build_cast_is_built_by_the_reconciler(self):
        model = self.db.instance_get(
            self.boot('model', wait_for_ticks=False)['id'])
        # What the API writes before a build cast that never arrives (a
        # broker restart drops it): the row on its host, 'scheduling', and
        # the create action.
        values = {key: model[key] for key in (
            'project_id', 'user_id', 'host', 'image_ref', 'flavor',
            'root_device_name', 'metadata', 'system_metadata',
            'auto_disk_config')}
        values.update(name='lost-build', vm_state='building',
                      task_state=task_states.SCHEDULING, power_state=0)
        instance = self.db.instance_create(values)
        self.addCleanup(self._delete_server, instance['uuid'])
        ctx = ns_context.RequestContext(user_id=model['user_id'],
                                        project_id=model['project_id'])
        self.db.action_start(ctx, instance['uuid'], compute_api.ACTION_CREATE)
        started = time.monotonic()
        server = self.client.wait_for_server(instance['uuid'], timeout=120)
        print('lost build cast built after %.1f s (grace 3 s, interval 2 s)'
              % (time.monotonic() - started))
        self.assertEqual('ACTIVE', server['status'])
        self.wait_for_console(instance['uuid'],
                              r'nova-snapshot-guest: tick \d+')
        # The build's events are the user's create action's.
        action = self.db.action_get_by_request_id(instance['uuid'],
                                                  ctx.request_id)
        events = action['events']
        self.assertEqual([('compute_build_and_run_instance', 'Success')],
                         [(e['event'], e['result']) for e in events])

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
