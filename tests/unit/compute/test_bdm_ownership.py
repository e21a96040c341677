"""Boot from another project's volume or snapshot: refused at the API
(Nova's 400 "Block Device Mapping is Invalid: failed to get ..."), before
any server, volume or attachment exists. The fake Cinder hides other
projects' volumes from a user token, as Keystone-mode Cinder does; the
functional Keystone tests check the real one."""

from nova_snapshot import context as ns_context
from nova_snapshot import exception
from tests.unit.compute import volume_fakes


class ProjectScopedCinder(volume_fakes.FakeCinder):
    """Volumes and snapshots of another project are 404 to a user."""

    def _visible(self, context, item):
        owner = item.get('project_id')
        return owner is None or context.is_admin or \
            owner == context.project_id

    def get(self, context, volume_id):
        volume = super().get(context, volume_id)
        if not self._visible(context, volume):
            raise exception.VolumeNotFound(volume_id=volume_id)
        return volume

    def get_snapshot(self, context, snapshot_id):
        snapshot = super().get_snapshot(context, snapshot_id)
        if not self._visible(context, self.volumes[snapshot['volume_id']]):
            raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
        return snapshot


class BdmOwnershipTest(volume_fakes.VolumeComputeTestCase):

    def setUp(self):
        super().setUp()
        self.other = self.cinder.add_volume(size=1, project_id='project-b')
        self.other_snap = self.cinder.create_snapshot_force(
            self.ctx, self.other['id'], 's')
        self.cinder.__class__ = ProjectScopedCinder
        self.cinder.requests.clear()

    def create(self, bdm):
        bdm = dict({'destination_type': 'volume', 'boot_index': 0}, **bdm)
        return self.api.create(self.ctx, 'vm', None, '1',
                               block_device_mapping=[bdm])

    def assert_nothing_made(self):
        self.assertEqual([], self.db.instance_get_all())
        made = [r for r in self.cinder.requests
                if r[0] in ('create', 'attachment_create')]
        self.assertEqual([], made)
        self.assertEqual('available',
                         self.cinder.volumes[self.other['id']]['status'])

    def test_another_projects_volume(self):
        with self.assertRaises(exception.InvalidBDM) as caught:
            self.create({'source_type': 'volume', 'uuid': self.other['id']})
        self.assertEqual(400, caught.exception.code)
        self.assertEqual('Block Device Mapping is Invalid: failed to get '
                         'volume %s.' % self.other['id'],
                         caught.exception.format_message())
        self.assert_nothing_made()

    def test_another_projects_snapshot(self):
        with self.assertRaises(exception.InvalidBDM) as caught:
            self.create({'source_type': 'snapshot',
                         'uuid': self.other_snap['id'], 'volume_size': 1})
        self.assertIn('failed to get snapshot %s.' % self.other_snap['id'],
                      caught.exception.format_message())
        self.assert_nothing_made()

    def test_a_second_volume_is_checked_too(self):
        mine = self.cinder.add_volume(size=1, project_id=self.ctx.project_id)
        with self.assertRaises(exception.InvalidBDM):
            self.api.create(self.ctx, 'vm', None, '1', block_device_mapping=[
                {'source_type': 'volume', 'uuid': mine['id'],
                 'destination_type': 'volume', 'boot_index': 0},
                {'source_type': 'volume', 'uuid': self.other['id'],
                 'destination_type': 'volume', 'boot_index': 1}])
        self.assert_nothing_made()

    def test_a_volume_in_use_is_400(self):
        mine = self.cinder.add_volume(size=1, status='in-use',
                                      project_id=self.ctx.project_id)
        with self.assertRaises(exception.InvalidVolume) as caught:
            self.create({'source_type': 'volume', 'uuid': mine['id']})
        self.assertEqual(400, caught.exception.code)

    def test_a_volume_cinder_calls_not_bootable_is_400(self):
        mine = self.cinder.add_volume(size=1, bootable=False,
                                      project_id=self.ctx.project_id)
        with self.assertRaises(exception.InvalidBDMVolumeNotBootable) as caught:
            self.create({'source_type': 'volume', 'uuid': mine['id']})
        self.assertEqual(400, caught.exception.code)
        self.assertEqual('Block Device %s is not bootable.' % mine['id'],
                         caught.exception.format_message())
        self.assertEqual([], self.db.instance_get_all())

    def test_a_not_bootable_data_volume_is_fine(self):
        root = self.cinder.add_volume(size=1, bootable=True,
                                      project_id=self.ctx.project_id)
        data = self.cinder.add_volume(size=1, bootable=False,
                                      project_id=self.ctx.project_id)
        instance = self.boot_from_volume(
            [{'source_type': 'volume', 'uuid': root['id'],
              'destination_type': 'volume', 'boot_index': 0},
             {'source_type': 'volume', 'uuid': data['id'],
              'destination_type': 'volume', 'boot_index': 1}])
        self.assertEqual('active', instance['vm_state'])

    def test_the_owner_may_boot(self):
        owner = ns_context.RequestContext(
            user_id='bob', project_id='project-b', roles=['member'])
        instance = self.boot_from_volume(
            [{'source_type': 'volume', 'uuid': self.other['id'],
              'destination_type': 'volume', 'boot_index': 0}], ctx=owner)
        self.assertEqual('active', instance['vm_state'])

    def test_attach_of_another_projects_volume_is_404(self):
        instance = self.boot_from_volume(
            [{'source_type': 'blank', 'destination_type': 'volume',
              'boot_index': 0, 'volume_size': 1}])
        self.cinder.requests.clear()
        with self.assertRaises(exception.VolumeNotFound) as caught:
            self.api.attach_volume(self.ctx, instance, self.other['id'])
        self.assertEqual(404, caught.exception.code)
        self.assertEqual([], [r for r in self.cinder.requests
                              if r[0] == 'attachment_create'])
