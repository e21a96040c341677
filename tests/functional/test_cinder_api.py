"""CinderAPI against the real Cinder + Ceph that tools/stack/start.sh runs.

Every state Cinder reports is also checked in Ceph itself (``rbd`` CLI, and
Debian's python3-rbd binding through /usr/bin/python3 for reading data),
so a test passes only when the volumes really exist in the pool.
"""

import hashlib
import json
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import uuid

from nova_snapshot import conf as nova_conf
from nova_snapshot import context as nova_context
from nova_snapshot import exception
from nova_snapshot.image import glance
from nova_snapshot.volume import cinder
from tests.functional import base

MIB = 1024 * 1024
CONNECTOR = {'host': 'h', 'ip': '127.0.0.1', 'platform': 'x86_64',
             'os_type': 'linux', 'multipath': False, 'initiator': None}
CINDER_KEYS = ('CINDER_URL', 'CEPH_CONF', 'RBD_POOL')
# Reads the first N bytes of an RBD image with Debian's binding (the
# project venv has no rados/rbd); argv: conf pool image length.
_READ_RBD = '''
import sys, rados, rbd
conf, pool, name, length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with rados.Rados(conffile=conf) as cluster:
    with cluster.open_ioctx(pool) as ioctx:
        with rbd.Image(ioctx, name, read_only=True) as image:
            sys.stdout.buffer.write(image.read(0, length))
'''


def make_context(project=None, user=None):
    return nova_context.RequestContext(
        user_id=user or 'user-' + uuid.uuid4().hex[:8],
        project_id=project or uuid.uuid4().hex,
        roles=['member', 'reader'])


def check_cinder(env, timeout=5):
    """Raise StackMissing unless .stack/env has Cinder and it answers."""
    missing = [k for k in CINDER_KEYS if not env.get(k)]
    if missing:
        raise base.StackMissing('.stack/env lacks %s: run tools/stack/start.sh'
                                % ', '.join(missing))
    root = env['CINDER_URL'].rstrip('/').rsplit('/', 1)[0] + '/'
    try:
        urllib.request.urlopen(root, timeout=timeout)
        status = 'no version list'
    except urllib.error.HTTPError as exc:
        if exc.code == 300:  # the version list
            return
        status = exc
    except (urllib.error.URLError, OSError) as exc:
        status = exc
    raise base.StackMissing('Cinder at %s does not answer (%s): run '
                            'tools/stack/start.sh' % (root, status))


class CinderAPITestCase(base.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        check_cinder(cls.stack)

    def setUp(self):
        super().setUp()
        self.conf = nova_conf.new_conf([])
        self.conf.set_override('api_endpoint', self.stack['CINDER_URL'],
                               group='cinder')
        self.conf.set_override('auth_mode', 'noauth', group='cinder')
        self.conf.set_override('poll_interval', 0.05, group='cinder')
        self.api = cinder.CinderAPI(self.conf)
        self.ctx = make_context()
        self.pool = self.stack['RBD_POOL']

    # -- helpers --------------------------------------------------------------

    def rbd(self, *args):
        out = subprocess.run(
            ['rbd', '-c', self.stack['CEPH_CONF'], '--format', 'json'] +
            list(args), check=True, capture_output=True, timeout=60)
        return json.loads(out.stdout or b'null')

    def rbd_read(self, image, length):
        out = subprocess.run(
            ['/usr/bin/python3', '-c', _READ_RBD, self.stack['CEPH_CONF'],
             self.pool, image, str(length)],
            check=True, capture_output=True, timeout=60)
        return out.stdout

    def create_volume(self, ctx=None, size=1, wait=True, **kwargs):
        ctx = ctx or self.ctx
        volume = self.api.create(ctx, size, 'test-' + uuid.uuid4().hex[:8],
                                 **kwargs)
        self.addCleanup(self._delete_volume, ctx, volume['id'])
        if not wait:
            return volume
        return self.api.wait_for_volume(ctx, volume['id'], 120)

    def snapshot(self, volume_id, ctx=None):
        ctx = ctx or self.ctx
        snap = self.api.create_snapshot_force(ctx, volume_id, 'snap-test')
        self.addCleanup(self._delete_snapshot, ctx, snap['id'])
        return snap

    def attach(self, volume_id, ctx=None):
        ctx = ctx or self.ctx
        att = self.api.attachment_create(ctx, volume_id, str(uuid.uuid4()))
        self.addCleanup(self._delete_attachment, ctx, att['id'])
        return att

    def _delete_volume(self, ctx, volume_id):
        try:
            self.api.delete(ctx, volume_id, cascade=True)
            self.api.wait_for_volume_deleted(ctx, volume_id, 60)
        except exception.VolumeNotFound:
            pass

    def _delete_snapshot(self, ctx, snapshot_id):
        try:
            # Cinder refuses to delete a snapshot still being created.
            self.api.wait_for_snapshot(ctx, snapshot_id, 60,
                                       statuses=('available', 'error'))
            self.api.delete_snapshot(ctx, snapshot_id)
            self.api.wait_for_snapshot_deleted(ctx, snapshot_id, 60)
        except exception.SnapshotNotFound:
            pass

    def _delete_attachment(self, ctx, attachment_id):
        try:
            self.api.attachment_delete(ctx, attachment_id)
        except exception.NotFound:
            pass

    # -- tests ----------------------------------------------------------------

    def test_attach_snapshot_clone_and_delete(self):
        volume = self.create_volume()
        vid = volume['id']
        image = 'volume-%s' % vid
        self.assertEqual(1, volume['size'])
        self.assertEqual('detached', volume['attach_status'])
        self.assertEqual(MIB * 1024, self.rbd('info', '%s/%s' % (
            self.pool, image))['size'])

        # Nova's attach: reserve, connector, complete.
        att = self.attach(vid)
        self.assertEqual({}, att['connection_info'])
        self.assertEqual('reserved', self.api.get(self.ctx, vid)['status'])
        info = self.api.attachment_update(self.ctx, att['id'], CONNECTOR,
                                          mountpoint='/dev/vdb')
        self.assertEqual('rbd', info['driver_volume_type'])
        self.assertEqual('%s/%s' % (self.pool, image), info['data']['name'])
        self.assertEqual(['127.0.0.1'], info['data']['hosts'])
        # cephx: the user and the UUID of the libvirt secret every compute
        # host has for it, never the key.
        self.assertTrue(info['data']['auth_enabled'])
        self.assertEqual(self.stack.get('CEPH_USER', 'cinder'),
                         info['data']['auth_username'])
        self.assertEqual(self.stack['CEPH_SECRET_UUID'],
                         info['data']['secret_uuid'])
        self.assertNotIn('secret', info['data'])
        self.api.attachment_complete(self.ctx, att['id'])
        volume = self.api.get(self.ctx, vid)
        self.assertEqual('in-use', volume['status'])
        self.assertEqual('attached', volume['attach_status'])

        # In-use snapshot (force): a protected RBD snapshot, size-independent.
        started = time.monotonic()
        snap = self.snapshot(vid)
        snap = self.api.wait_for_snapshot(self.ctx, snap['id'], 60)
        took = time.monotonic() - started
        self.assertEqual('available', snap['status'])
        self.assertEqual(vid, snap['volume_id'])
        self.assertEqual(1, snap['volume_size'])
        rbd_snaps = self.rbd('snap', 'ls', '%s/%s' % (self.pool, image))
        self.assertIn('snapshot-%s' % snap['id'],
                      [s['name'] for s in rbd_snaps])
        print('in-use snapshot to available: %.2fs' % took)

        # A bigger volume from the snapshot: a COW clone of it in Ceph.
        clone = self.create_volume(size=2, snapshot_id=snap['id'])
        self.assertEqual(2, clone['size'])
        self.assertEqual(snap['id'], clone['snapshot_id'])
        clone_info = self.rbd('info', '%s/volume-%s' % (self.pool,
                                                        clone['id']))
        self.assertEqual(2 * 1024 * MIB, clone_info['size'])
        self.assertEqual(image, clone_info['parent']['image'])
        self.assertEqual('snapshot-%s' % snap['id'],
                         clone_info['parent']['snapshot'])

        # Tear down in Nova's order; each step checked.
        self.api.attachment_delete(self.ctx, att['id'])
        self.api.wait_for_volume(self.ctx, vid, 30)
        self.api.delete(self.ctx, clone['id'])
        self.api.wait_for_volume_deleted(self.ctx, clone['id'], 60)
        self.api.delete_snapshot(self.ctx, snap['id'])
        self.api.wait_for_snapshot_deleted(self.ctx, snap['id'], 60)
        self.api.delete(self.ctx, vid)
        self.api.wait_for_volume_deleted(self.ctx, vid, 60)
        self.assertRaises(exception.VolumeNotFound, self.api.get,
                          self.ctx, vid)
        self.assertRaises(exception.SnapshotNotFound, self.api.get_snapshot,
                          self.ctx, snap['id'])
        names = self.rbd('ls', self.pool)
        self.assertNotIn(image, names)
        self.assertNotIn('volume-%s' % clone['id'], names)

    def test_snapshots_listed_by_volume_with_metadata(self):
        # How a restarted compute service finds what a dead one asked for.
        vid = self.create_volume()['id']
        plain = self.snapshot(vid)
        tagged = self.api.create_snapshot_force(
            self.ctx, vid, 'tagged',
            metadata={'nova_snapshot_request_id': 'req-x'})
        self.addCleanup(self._delete_snapshot, self.ctx, tagged['id'])
        listed = {s['id']: s for s in self.api.list_snapshots(self.ctx, vid)}
        self.assertEqual({plain['id'], tagged['id']}, set(listed))
        self.assertEqual({'nova_snapshot_request_id': 'req-x'},
                         listed[tagged['id']]['metadata'])
        self.assertEqual({}, listed[plain['id']]['metadata'])
        self.assertEqual([], self.api.list_snapshots(
            self.ctx, self.create_volume()['id']))

    def test_forced_snapshots_of_three_in_use_volumes(self):
        # All requests first, then all waits: Cinder works on them together.
        volumes = [self.create_volume(wait=False) for _ in range(3)]
        volumes = [self.api.wait_for_volume(self.ctx, v['id'], 120)
                   for v in volumes]
        for volume in volumes:
            att = self.attach(volume['id'])
            self.api.attachment_update(self.ctx, att['id'], CONNECTOR)
            self.api.attachment_complete(self.ctx, att['id'])
        snaps = [self.snapshot(v['id']) for v in volumes]
        done = [self.api.wait_for_snapshot(self.ctx, s['id'], 60,
                                           statuses=('available', 'error'))
                for s in snaps]
        self.assertEqual(['available'] * 3, [s['status'] for s in done])
        self.assertEqual(sorted(v['id'] for v in volumes),
                         sorted(s['volume_id'] for s in done))

    def test_volume_from_glance_image(self):
        image_api = self._glance()
        data = hashlib.sha256(b'nova-snapshot').digest() * (MIB // 32)
        image = image_api.create(self.ctx, {
            'name': 'cinder-src-' + uuid.uuid4().hex[:8],
            'disk_format': 'raw', 'container_format': 'bare'})
        self.addCleanup(self._delete_image, image_api, image['id'])
        image_api.upload(self.ctx, image['id'], data, size=len(data))

        volume = self.api.create(self.ctx, 1, 'from-image',
                                 image_id=image['id'])
        self.addCleanup(self._delete_volume, self.ctx, volume['id'])
        volume = self.api.wait_for_volume(self.ctx, volume['id'])
        self.assertTrue(volume['bootable'])
        self.assertEqual(image['id'],
                         volume['volume_image_metadata']['image_id'])
        read = self.rbd_read('volume-%s' % volume['id'], len(data))
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         hashlib.sha256(read).hexdigest())

    def _glance(self):
        base.check_glance(self.stack['GLANCE_URL'])
        self.conf.set_override('api_endpoint', self.stack['GLANCE_URL'],
                               group='glance')
        self.conf.set_override('auth_mode', 'identity_headers',
                               group='glance')
        return glance.GlanceAPI(self.conf)

    def _delete_image(self, image_api, image_id):
        try:
            image_api.delete(self.ctx, image_id)
        except exception.ImageNotFound:
            pass

    def test_limits_are_unlimited_and_counted_per_project(self):
        before = self.api.get_absolute_limits(self.ctx)
        self.assertEqual(-1, before['maxTotalVolumes'])
        self.assertEqual(-1, before['maxTotalSnapshots'])
        self.assertEqual(-1, before['maxTotalVolumeGigabytes'])
        volume = self.create_volume(size=2)
        snap = self.snapshot(volume['id'])
        self.api.wait_for_snapshot(self.ctx, snap['id'], 60)
        after = self.api.get_absolute_limits(self.ctx)
        self.assertEqual(before['totalVolumesUsed'] + 1,
                         after['totalVolumesUsed'])
        self.assertEqual(before['totalSnapshotsUsed'] + 1,
                         after['totalSnapshotsUsed'])
        self.assertEqual(before['totalGigabytesUsed'] + 4,
                         after['totalGigabytesUsed'])

    def test_two_projects_are_isolated(self):
        ctx_a, ctx_b = make_context(), make_context()
        volume = self.create_volume(ctx=ctx_a)
        self.assertEqual(ctx_a.project_id,
                         volume['os-vol-tenant-attr:tenant_id'])
        snap = self.snapshot(volume['id'], ctx=ctx_a)
        self.api.wait_for_snapshot(ctx_a, snap['id'], 60)
        # Usage belongs to the owner only. (Under noauth every caller is an
        # admin of its project, so B could still read A's volume by id.)
        limits_b = self.api.get_absolute_limits(ctx_b)
        self.assertEqual(0, limits_b['totalVolumesUsed'])
        self.assertEqual(0, limits_b['totalSnapshotsUsed'])
        limits_a = self.api.get_absolute_limits(ctx_a)
        self.assertEqual(1, limits_a['totalVolumesUsed'])
        self.assertEqual(1, limits_a['totalSnapshotsUsed'])

    def test_errors_are_translated(self):
        missing = str(uuid.uuid4())
        self.assertRaises(exception.VolumeNotFound, self.api.get,
                          self.ctx, missing)
        self.assertRaises(exception.SnapshotNotFound, self.api.get_snapshot,
                          self.ctx, missing)
        self.assertRaises(exception.VolumeNotFound,
                          self.api.create_snapshot_force, self.ctx, missing,
                          'x')
        self.assertRaises(exception.SnapshotNotFound, self.api.create,
                          self.ctx, 1, 'x', snapshot_id=missing)
        self.assertRaises(exception.VolumeAttachmentNotFound,
                          self.api.attachment_delete, self.ctx, missing)
        # A volume with a snapshot cannot go without cascade: 400.
        volume = self.create_volume()
        snap = self.snapshot(volume['id'])
        self.api.wait_for_snapshot(self.ctx, snap['id'], 60)
        self.assertRaises(exception.Invalid, self.api.delete,
                          self.ctx, volume['id'])
        # And a wait for a status that never comes ends in VolumeError.
        self.assertRaises(exception.VolumeError, self.api.wait_for_volume,
                          self.ctx, volume['id'], 0.3, statuses=('in-use',))

    def test_non_hex_project_is_refused(self):
        self.assertRaises(exception.VolumeError, self.api.get,
                          make_context(project='demo'), str(uuid.uuid4()))


if __name__ == '__main__':
    unittest.main()
