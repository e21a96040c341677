"""createImage of a volume-backed server: ComputeAPI -> RPC call ->
VolumeSnapshotter, with FakeCinder, VolumeFakeDriver and a fake Glance."""

import json
from unittest import mock

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import block_device
from nova_snapshot.compute import manager
from nova_snapshot.compute import volume_snapshot
from nova_snapshot import context as ns_context
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import volume_fakes


class VolumeSnapshotTestBase(volume_fakes.VolumeComputeTestCase):

    def boot_two_volumes(self, **image_props):
        if image_props:
            self.image_api.images[self.base_image['id']].update(image_props)
        bdms = [{'source_type': 'image', 'uuid': self.base_image['id'],
                 'destination_type': 'volume', 'boot_index': 0,
                 'volume_size': 40, 'device_name': 'sda',
                 'disk_bus': 'scsi', 'delete_on_termination': True},
                {'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 2, 'delete_on_termination': False}]
        return self.boot_from_volume(bdms)

    def snapshots_left(self):
        return set(self.cinder.snapshots)


class VolumeSnapshotHappyPathTest(VolumeSnapshotTestBase):

    def test_image_mapping_properties_and_consistency(self):
        instance = self.boot_two_volumes(hw_qemu_guest_agent='yes',
                                         block_device_mapping='[]',
                                         bdm_v2='True')
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        image = self.api.snapshot_volume_backed(self.ctx, instance, 'vb',
                                                {'purpose': 'test'})
        stored = self.image_api.get(self.ctx, image['id'])
        self.assertEqual('active', stored['status'])
        self.assertEqual(0, stored['size'])
        self.assertEqual(b'', self.image_api.data[image['id']])
        self.assertEqual('True', stored['bdm_v2'])
        self.assertEqual('/dev/vda', stored['root_device_name'])
        self.assertEqual('quiesced', stored['nova_snapshot_consistency'])
        self.assertGreaterEqual(int(stored['nova_snapshot_freeze_ms']), 100)
        # Nova §2.3: no image_type/instance_uuid/user_id; inherited props
        # and user metadata are there.
        for key in ('image_type', 'instance_uuid', 'user_id'):
            self.assertNotIn(key, stored)
        self.assertEqual('virtio', stored['hw_disk_bus'])
        self.assertEqual('test', stored['purpose'])

        mapping = json.loads(stored['block_device_mapping'])
        snaps = sorted(self.cinder.snapshots.values(),
                       key=lambda s: [r['volume_id'] for r in rows].index(
                           s['volume_id']))
        self.assertEqual(2, len(snaps))
        self.assertEqual([
            {'guest_format': None, 'boot_index': 0,
             'delete_on_termination': True, 'no_device': None,
             'snapshot_id': snaps[0]['id'], 'volume_type': None,
             'device_name': '/dev/sda', 'disk_bus': 'scsi',
             'image_id': None, 'source_type': 'snapshot', 'tag': None,
             'device_type': 'disk', 'volume_id': None,
             'destination_type': 'volume', 'volume_size': 40},
            {'guest_format': None, 'boot_index': None,
             'delete_on_termination': False, 'no_device': None,
             'snapshot_id': snaps[1]['id'], 'volume_type': None,
             'device_name': '/dev/vdb', 'disk_bus': None,
             'image_id': None, 'source_type': 'snapshot', 'tag': None,
             'device_type': 'disk', 'volume_id': None,
             'destination_type': 'volume', 'volume_size': 2}], mapping)
        for entry in mapping:
            self.assertEqual(set(block_device.IMAGE_MAPPING_KEYS),
                             set(entry))
        for snap in snaps:
            self.assertEqual('available', self.cinder.get_snapshot(
                self.ctx, snap['id'])['status'])

        # Records: action, event with facts, notifications; the server
        # was held (image_snapshot) for the call and is released.
        event = self.wait_for_event(instance['uuid'],
                                    'compute_snapshot_volume_backed')
        self.assertEqual('Success', event['result'])
        self.assertIn('consistency=quiesced', event['details'])
        self.assertEqual('createImage', self.api.get_instance_actions(
            self.ctx, instance)[0]['action'])
        self.assertEqual(['image_snapshot', None],
                         self.db.task_states_of(instance['uuid'])[-2:])
        after = self.db.instance_get(instance['uuid'])
        self.assertIsNone(after['task_state'])
        self.assertNotIn(compute_api.VOLUME_SNAPSHOT_HOLD_KEY,
                         after['system_metadata'])
        end = fakes.wait_for(
            lambda: self.notifications.of_type('instance.snapshot.end'),
            message='snapshot end')
        self.assertEqual(image['id'], end[0]['payload']['snapshot_image_id'])
        self.assertEqual(1, len(self.notifications.of_type(
            'instance.snapshot.start')))

    def test_requests_overlap_and_thaw_between_cut_and_available(self):
        bdms = [{'source_type': 'blank', 'destination_type': 'volume',
                 'volume_size': 1, 'boot_index': i} for i in range(4)]
        self.image_api.images[self.base_image['id']]['hw_qemu_guest_agent'] \
            = 'true'
        instance = self.boot_from_volume(bdms, image_ref=None)
        self.db.instance_update(instance['uuid'], {'system_metadata': dict(
            instance['system_metadata'], image_hw_qemu_guest_agent='true')})
        instance = self.db.instance_get(instance['uuid'])
        self.api.snapshot_volume_backed(self.ctx, instance, 'vb', {})

        calls = self.cinder.calls('create_snapshot_force')
        self.assertEqual(4, len(calls))
        # 100 ms per request, all four in flight at once.
        self.assertLess(max(c[1] for c in calls), min(c[2] for c in calls))

        (freeze_at, what), (thaw_at, what2) = self.driver.hold_log
        self.assertEqual(('freeze', 'thaw'), (what, what2))
        self.assertLess(freeze_at, min(c[1] for c in calls))
        # Thawed only once every snapshot had left 'creating' (the fake's
        # statuses move with time: 'created' + snapshot_creating_s) ...
        snapshots = self.cinder.snapshots.values()
        left_creating = max(snap['created'] for snap in snapshots) + \
            self.cinder.snapshot_creating_s
        first_available = min(snap['created'] for snap in snapshots) + \
            self.cinder.snapshot_creating_s + self.cinder.snapshot_available_s
        self.assertGreaterEqual(thaw_at, left_creating)
        # ... promptly (polls every 50 ms) and before any was available.
        self.assertLess(thaw_at - left_creating, 0.2)
        self.assertLess(thaw_at, first_available)
        # 100 ms request + 150 ms creating: the window is well under 1 s.
        self.assertLess(thaw_at - freeze_at, 1.0)
        # One list call per poll for all four, filtered by the request's
        # tag; no per-snapshot polling while the guest is frozen.
        polls = [c for c in self.cinder.calls('list_snapshots')
                 if freeze_at <= c[1] <= thaw_at]
        self.assertGreaterEqual(len(polls), 1)
        self.assertLessEqual(len(polls), (thaw_at - freeze_at) / 0.05 + 1)
        self.assertEqual({(None, (('nova_snapshot_request_id',
                                   self.ctx.request_id),))},
                         {(c[3][0], tuple(sorted(c[3][1].items())))
                          for c in polls})
        self.assertEqual([], [c for c in self.cinder.calls('get_snapshot')
                              if freeze_at <= c[1] <= thaw_at])

    def test_pause_when_no_agent(self):
        instance = self.boot_two_volumes()
        image = self.api.snapshot_volume_backed(self.ctx, instance, 'vb', {})
        stored = self.image_api.get(self.ctx, image['id'])
        self.assertEqual('paused', stored['nova_snapshot_consistency'])
        self.assertEqual(['pause', 'resume'],
                         [what for _, what in self.driver.hold_log])
        self.assertEqual(set(), self.driver.paused)
        self.assertEqual([10.0], self.driver.pause_deadlines)

    def test_crash_consistent_when_pause_is_off(self):
        self.conf.set_override('pause_for_volume_cut', False,
                               group='compute')
        instance = self.boot_two_volumes()
        image = self.api.snapshot_volume_backed(self.ctx, instance, 'vb', {})
        stored = self.image_api.get(self.ctx, image['id'])
        self.assertEqual('crash-consistent',
                         stored['nova_snapshot_consistency'])
        self.assertEqual('0', stored['nova_snapshot_freeze_ms'])
        self.assertEqual([], self.driver.hold_log)

    def test_failed_agent_without_requirement_goes_on(self):
        instance = self.boot_two_volumes(hw_qemu_guest_agent='yes')
        self.driver.quiesce_error = exception.InstanceQuiesceFailed(
            reason='agent not answering')
        image = self.api.snapshot_volume_backed(self.ctx, instance, 'vb', {})
        self.assertEqual('paused', self.image_api.get(
            self.ctx, image['id'])['nova_snapshot_consistency'])


class VolumeSnapshotFailureTest(VolumeSnapshotTestBase):

    def assert_nothing_left(self, instance, images_before):
        self.assertEqual(images_before, set(self.image_api.images))
        self.assertEqual(set(), self.snapshots_left())
        self.assertEqual(set(), self.driver.frozen | self.driver.paused)
        self.assertEqual('active',
                         self.db.instance_get(instance['uuid'])['vm_state'])

    def test_quota_is_403_before_anything_is_frozen(self):
        instance = self.boot_two_volumes(hw_qemu_guest_agent='yes')
        self.cinder.limits = {'maxTotalSnapshots': 10,
                              'totalSnapshotsUsed': 9}
        images = set(self.image_api.images)
        exc = self.raises(exception.OverQuota,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        self.assertEqual(403, exc.code)
        self.assertEqual([], self.driver.hold_log)
        self.assertEqual([], self.cinder.calls('create_snapshot_force'))
        self.assert_nothing_left(instance, images)

    def test_require_quiesce_without_agent_is_400(self):
        instance = self.boot_two_volumes(os_require_quiesce='yes')
        images = set(self.image_api.images)
        exc = self.raises(exception.InstanceQuiesceNotSupported,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        self.assertEqual(400, exc.code)
        self.assertEqual([], self.cinder.calls('create_snapshot_force'))
        self.assert_nothing_left(instance, images)

    def test_require_quiesce_agent_not_answering_is_409(self):
        instance = self.boot_two_volumes(os_require_quiesce='yes',
                                         hw_qemu_guest_agent='yes')
        self.driver.quiesce_error = exception.InstanceQuiesceFailed(
            reason='agent not answering')
        images = set(self.image_api.images)
        exc = self.raises(exception.InstanceQuiesceFailed,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        self.assertEqual(409, exc.code)
        self.assertEqual([], self.cinder.calls('create_snapshot_force'))
        self.assert_nothing_left(instance, images)
        event = self.wait_for_event(instance['uuid'],
                                    'compute_snapshot_volume_backed')
        self.assertEqual('Error', event['result'])

    def test_snapshot_error_deletes_the_others_and_no_image(self):
        instance = self.boot_two_volumes(hw_qemu_guest_agent='yes')
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        self.cinder.snapshot_error_for.add(rows[1]['volume_id'])
        images = set(self.image_api.images)
        exc = self.raises(exception.VolumeSnapshotFailed,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        self.assertIn(rows[1]['volume_id'], exc.format_message())
        self.assertEqual(2, len(self.cinder.deleted_snapshots))
        self.assert_nothing_left(instance, images)
        self.assertEqual(['freeze', 'thaw'],
                         [what for _, what in self.driver.hold_log])
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIn('failed', fault['message'])
        error = fakes.wait_for(
            lambda: self.notifications.of_type('instance.snapshot.error'),
            message='snapshot error notification')
        self.assertEqual('VolumeSnapshotFailed',
                         error[0]['payload']['fault']['exception'])

    def test_available_timeout_cleans_up(self):
        self.conf.set_override('volume_snapshot_timeout', 1, group='compute')
        self.cinder.snapshot_available_s = 3
        instance = self.boot_two_volumes()
        images = set(self.image_api.images)
        self.assertRaises(exception.VolumeSnapshotFailed,
                          self.api.snapshot_volume_backed, self.ctx,
                          instance, 'vb', {})
        self.assert_nothing_left(instance, images)

    def test_state_check_and_image_backed_refusal(self):
        instance = self.boot_two_volumes()
        busy = self.db.instance_update(instance['uuid'],
                                       {'task_state': 'powering-off'})
        self.assertRaises(exception.InstanceInvalidState,
                          self.api.snapshot_volume_backed, self.ctx, busy,
                          'vb', {})


class ThawAtStartTest(VolumeSnapshotTestBase):

    def test_init_host_thaws_active_guests(self):
        instance = self.boot_two_volumes()
        self.driver.frozen.add(instance['uuid'])
        self.manager.init_host()
        self.assertIn(instance['uuid'], self.driver.thawed_at_start)
        self.assertEqual(set(), self.driver.frozen)


class InterruptedAtStartTest(VolumeSnapshotTestBase):
    """A service that died mid volume snapshot left an unfinished event
    and Cinder snapshots tagged with the request; the next start cleans."""

    def interrupted(self, instance):
        """What a service killed after requesting the snapshots leaves."""
        ctx = self.user_context()
        self.db.action_start(ctx, instance['uuid'], 'createImage')
        self.db.action_event_start(ctx, instance['uuid'],
                                   manager.VOLUME_SNAPSHOT_EVENT,
                                   host=self.manager.host)
        tags = {volume_snapshot.INSTANCE_TAG: instance['uuid'],
                volume_snapshot.REQUEST_TAG: ctx.request_id}
        ids = [self.cinder.create_snapshot_force(
            ctx, bdm['volume_id'], 'snap', metadata=tags)['id']
            for bdm in self.db.bdm_get_by_instance(instance['uuid'])]
        return ctx, ids

    def restart(self):
        self.manager.init_host()
        self.assertTrue(self.manager.wait_for_tasks(timeout=10))

    def test_unrecorded_snapshots_are_deleted_and_the_event_closed(self):
        instance = self.boot_two_volumes()
        ctx, ids = self.interrupted(instance)
        # Someone else's snapshot of the same volume stays.
        other = self.cinder.create_snapshot_force(
            ctx, ids and self.cinder.snapshots[ids[0]]['volume_id'], 'mine')
        with mock.patch.object(self.image_api, 'list',
                               wraps=self.image_api.list) as listing:
            self.restart()
        # As the requester's project, with a member's roles (what the
        # development modes need: Glance's policy refuses a list without
        # them), and no user token: with Keystone, Glance and Cinder are
        # then called as the service user (service_auth).
        used = listing.call_args[0][0]
        self.assertEqual((ctx.project_id, ctx.user_id, ctx.request_id),
                         (used.project_id, used.user_id, used.request_id))
        self.assertIn('member', used.roles)
        self.assertIsNone(used.auth_token)
        self.assertEqual(set(ids), set(self.cinder.deleted_snapshots))
        self.assertEqual({other['id']}, self.snapshots_left())
        event = self.wait_for_event(instance['uuid'],
                                    manager.VOLUME_SNAPSHOT_EVENT, ctx=ctx)
        self.assertEqual('Error', event['result'])
        self.assertIn('deleted 2 leftover', event['details'])
        fault = self.api.get(self.ctx, instance['uuid'])['fault']
        self.assertIn('interrupted by a restart', fault['message'])
        # Done once: a second start finds nothing to do.
        self.restart()
        self.assertEqual(2, len(self.cinder.deleted_snapshots))

    def test_snapshots_of_a_finished_image_are_kept(self):
        instance = self.boot_two_volumes()
        ctx, ids = self.interrupted(instance)
        rows = self.db.bdm_get_by_instance(instance['uuid'])
        # Died after the image was made, before the event was finished.
        self.image_api.create_active_empty(ctx, {
            'name': 'done', volume_snapshot.REQUEST_TAG: ctx.request_id,
            'bdm_v2': 'True',
            'block_device_mapping': block_device.encode_image_mapping(
                [block_device.snapshot_image_mapping(snap_id, row)
                 for snap_id, row in zip(ids, rows)])})
        self.restart()
        self.assertEqual([], self.cinder.deleted_snapshots)
        self.assertEqual(set(ids), self.snapshots_left())
        self.assertIn('deleted 0 leftover', self.wait_for_event(
            instance['uuid'], manager.VOLUME_SNAPSHOT_EVENT,
            ctx=ctx)['details'])

    def test_unfinished_image_is_deleted_with_its_snapshots(self):
        instance = self.boot_two_volumes()
        ctx, ids = self.interrupted(instance)
        queued = self.image_api.create(ctx, {
            'name': 'half', volume_snapshot.REQUEST_TAG: ctx.request_id})
        self.restart()
        self.assertIn(queued['id'], self.image_api.deleted)
        self.assertEqual(set(ids), set(self.cinder.deleted_snapshots))

    def test_cinder_down_at_start_is_reported_not_fatal(self):
        instance = self.boot_two_volumes()
        ctx, _ids = self.interrupted(instance)
        with mock.patch.object(self.cinder, 'list_snapshots',
                               side_effect=exception.VolumeError(
                                   reason='connection refused')):
            self.restart()
        event = self.wait_for_event(instance['uuid'],
                                    manager.VOLUME_SNAPSHOT_EVENT, ctx=ctx)
        self.assertIn(volume_snapshot.REQUEST_TAG, event['details'])
        self.assertIn('connection refused', event['details'])
        self.assertEqual('active',
                         self.db.instance_get(instance['uuid'])['vm_state'])

    def test_snapshots_are_tagged_with_instance_and_request(self):
        instance = self.boot_two_volumes()
        image = self.api.snapshot_volume_backed(self.ctx, instance, 'vb', {})
        for snapshot in self.cinder.snapshots.values():
            self.assertEqual(
                {volume_snapshot.INSTANCE_TAG: instance['uuid'],
                 volume_snapshot.REQUEST_TAG: self.ctx.request_id},
                snapshot['metadata'])
        self.assertEqual(self.ctx.request_id, self.image_api.get(
            self.ctx, image['id'])[volume_snapshot.REQUEST_TAG])


class RpcTimeoutWarningTest(fakes.ComputeTestCase):

    def test_warns_when_the_api_would_give_up_first(self):
        opts = self.conf.compute
        self.assertFalse(compute_api._warn_if_rpc_timeout_too_short(opts))
        self.conf.set_override('volume_snapshot_rpc_timeout', 600,
                               group='compute')
        with self.assertLogs('nova_snapshot.compute.api', 'WARNING') as logs:
            self.assertTrue(
                compute_api._warn_if_rpc_timeout_too_short(opts))
        self.assertIn('volume_snapshot_rpc_timeout (600 s)', logs.output[0])


class NoCinderTest(fakes.ComputeTestCase):

    def test_volume_backed_snapshot_without_cinder_is_400(self):
        instance = self.boot()
        self.assertRaises(exception.VolumeBackedSnapshotNotSupported,
                          self.api.snapshot_volume_backed,
                          ns_context.get_admin_context(), instance, 'x', {})
