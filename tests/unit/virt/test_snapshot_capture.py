"""Unit tests of nova_snapshot.virt.libvirt.snapshot with a fake domain.

The fake stands in for libvirt.virDomain only; everything above it (path
choice, marker, cleanup, upload streaming) is the real code. qemu-img is
replaced by a function that copies bytes, so nothing needs to be installed.
"""

import json
import os
import shutil
import tempfile
import unittest
from unittest import mock
from xml.etree import ElementTree

import libvirt

from nova_snapshot.compute import task_states
from nova_snapshot import conf as ns_conf
from nova_snapshot import exception
from nova_snapshot.virt.libvirt import snapshot
from nova_snapshot.virt.libvirt import snapshot_marker

UUID = '6a4ae2f5-0f6b-4b8e-9b35-8f0d5c7e2a11'
DISK_BYTES = b'disk-content-' * 100000   # ~1.3 MB: several upload chunks


def qcow2_header(incompatible_features=0):
    """A qcow2 v3 header (1 MiB virtual) as the cold path's check reads."""
    header = bytearray(512)
    header[0:4] = b'QFI\xfb'
    header[4:8] = (3).to_bytes(4, 'big')
    header[20:24] = (16).to_bytes(4, 'big')
    header[24:32] = (1024 * 1024).to_bytes(8, 'big')
    header[72:80] = incompatible_features.to_bytes(8, 'big')
    return bytes(header)


def libvirt_error(code):
    err = libvirt.libvirtError('fake error %d' % code)
    err.err = (code, 0, 'fake error %d' % code, 0, None, None, None, 0, 0)
    return err


class FakeDomain(object):
    """Just enough of virDomain; every call lands in ``events``."""

    def __init__(self, events, state=libvirt.VIR_DOMAIN_RUNNING,
                 managed_save=False, disk_path='/nonexistent/disk',
                 job_polls=2, job_result=libvirt.VIR_DOMAIN_JOB_COMPLETED,
                 backup_error=None):
        self.events = events
        self._state = state
        self._managed_save = managed_save
        self.disk_path = disk_path
        self._job_polls = job_polls
        self._job_result = job_result
        self._backup_error = backup_error
        self._job_left = 0
        self.fail = {}          # method name -> exception to raise
        self.backup_xml = None

    def _call(self, name, *args):
        self.events.append((name,) + args)
        if name in self.fail:
            raise self.fail[name]

    def name(self):
        return 'instance-' + UUID

    def XMLDesc(self, flags=0):
        return (
            "<domain type='qemu'><name>instance-%s</name><devices>"
            "<disk type='file' device='cdrom'><target dev='hdc'/></disk>"
            "<disk type='file' device='disk'><driver name='qemu' "
            "type='qcow2'/><source file='%s'/><target dev='vda' "
            "bus='virtio'/></disk>"
            "<disk type='file' device='disk'><driver name='qemu' "
            "type='raw'/><source file='/other'/><target dev='vdb'/></disk>"
            "</devices></domain>" % (UUID, self.disk_path))

    def state(self, flags=0):
        self._call('state')
        return [self._state, 1]

    def isActive(self):
        return self._state in (libvirt.VIR_DOMAIN_RUNNING,
                               libvirt.VIR_DOMAIN_PAUSED)

    def hasManagedSaveImage(self, flags=0):
        return self._managed_save

    def managedSave(self, flags=0):
        self._call('managedSave', flags)
        self._state = libvirt.VIR_DOMAIN_SHUTOFF
        self._managed_save = True

    def createWithFlags(self, flags=0):
        self._call('createWithFlags', flags)
        self._state = (libvirt.VIR_DOMAIN_PAUSED
                       if flags & libvirt.VIR_DOMAIN_START_PAUSED
                       else libvirt.VIR_DOMAIN_RUNNING)
        self._managed_save = False

    def resume(self):
        self._call('resume')
        self._state = libvirt.VIR_DOMAIN_RUNNING

    def backupBegin(self, xml, checkpoint_xml, flags):
        self._call('backupBegin', flags)
        if self._backup_error is not None:
            raise self._backup_error
        self.backup_xml = xml
        target = ElementTree.fromstring(xml).find('./disks/disk/target')
        with open(target.get('file'), 'wb') as f:
            f.write(DISK_BYTES)
        self._job_left = self._job_polls

    def jobStats(self, flags=0):
        self._call('jobStats', flags)
        if flags & libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED:
            return {'type': self._job_result, 'operation': 9,
                    'disk_total': 100, 'disk_processed': 100,
                    'errmsg': 'boom'}
        if self._job_left:
            self._job_left -= 1
            return {'type': libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
                    'operation': 9, 'disk_total': 100,
                    'disk_processed': 100 - 40 * self._job_left}
        return {'type': libvirt.VIR_DOMAIN_JOB_NONE}

    def abortJob(self, flags=0):
        self._call('abortJob')
        self._job_left = 0


class FakeImageAPI(object):
    def __init__(self, events, fail_upload=None):
        self.events = events
        self.fail_upload = fail_upload
        self.updates = []
        self.data = b''
        self.size = None

    def update(self, context, image_id, values, remove_props=()):
        self.events.append(('image_update', image_id))
        self.updates.append(values)

    def upload(self, context, image_id, data, size=None):
        self.events.append(('image_upload', image_id))
        self.size = size
        for chunk in data:
            self.data += chunk
            if self.fail_upload is not None:
                raise self.fail_upload


def fake_convert(events, domain=None, fail=None):
    def convert(src, src_format, dest, dest_format):
        # The domain must be down while its disk is read (suspend path).
        events.append(('convert', src_format, dest_format,
                       domain.isActive() if domain else None))
        if fail is not None:
            raise fail
        with open(dest, 'wb') as f:
            f.write(DISK_BYTES if src_format != 'qcow2' or
                    not src.endswith('backup.qcow2') else
                    b'RAW' + DISK_BYTES)
    return convert


class SnapshotTestBase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.conf = ns_conf.new_conf([])
        self.conf.set_override('instances_path',
                               os.path.join(self.tmp, 'instances'))
        # The fake domain does push backups (streaming has its own tests).
        self.conf.set_override('live_snapshot_method', 'push',
                               group='libvirt')
        self.snapdir = os.path.join(self.tmp, 'instances', 'snapshots')
        self.disk = os.path.join(self.tmp, 'instances', UUID, 'disk')
        os.makedirs(os.path.dirname(self.disk))
        with open(self.disk, 'wb') as f:
            f.write(qcow2_header() + DISK_BYTES)
        self.events = []
        self.progress = []
        self.instance = {
            'uuid': UUID, 'project_id': 'p1', 'user_id': 'u1',
            'system_metadata': {'image_kernel_id': 'k-1',
                                'image_ramdisk_id': 'r-1',
                                'image_os_type': 'linux'}}
        self.image_api = FakeImageAPI(self.events)

    def domain(self, **kwargs):
        kwargs.setdefault('disk_path', self.disk)
        return FakeDomain(self.events, **kwargs)

    def update_task_state(self, task_state, expected_state):
        self.events.append(('task_state', task_state, expected_state))

    def snap(self, domain, convert_fail=None):
        with mock.patch('nova_snapshot.virt.libvirt.qemu_img.convert',
                        side_effect=fake_convert(self.events, domain,
                                                 convert_fail)):
            return snapshot.take_snapshot(
                None, domain, self.instance, 'img-1', self.image_api,
                self.conf, 'ctx', self.update_task_state,
                self.progress.append)

    def names(self):
        return [e[0] for e in self.events if e[0] not in ('state',
                                                          'jobStats')]

    def assert_clean(self):
        self.assertEqual([], os.listdir(self.snapdir))
        self.assertFalse(os.path.exists(
            snapshot_marker.marker_path(self.conf, self.instance)))


class TestPathSelection(SnapshotTestBase):

    def test_live_running(self):
        dom = self.domain()
        facts = self.snap(dom)
        self.assertEqual('live', facts['method'])
        self.assertEqual(0.0, facts['guest_paused_seconds'])
        self.assertEqual(['task_state', 'backupBegin', 'task_state',
                          'image_update', 'image_upload'], self.names())
        self.assertNotIn('managedSave', self.names())
        # Only the root disk, a qcow2 target inside the snapshots dir.
        xml = ElementTree.fromstring(dom.backup_xml)
        self.assertEqual('push', xml.get('mode'))
        disks = xml.findall('./disks/disk')
        self.assertEqual(['vda'], [d.get('name') for d in disks])
        self.assertEqual('qcow2', disks[0].find('driver').get('type'))
        self.assertTrue(disks[0].find('target').get('file').startswith(
            self.snapdir + os.sep))
        self.assertEqual(DISK_BYTES, self.image_api.data)
        self.assertEqual(len(DISK_BYTES), self.image_api.size)
        self.assertEqual(len(DISK_BYTES), facts['bytes_uploaded'])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assert_clean()

    def test_task_states_and_progress(self):
        self.snap(self.domain())
        states = [e[1:] for e in self.events if e[0] == 'task_state']
        self.assertEqual(
            [(task_states.IMAGE_PENDING_UPLOAD, task_states.IMAGE_SNAPSHOT),
             (task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)],
            states)
        self.assertEqual(0, self.progress[0])
        self.assertEqual(100, self.progress[-1])
        self.assertEqual(sorted(self.progress), self.progress)
        self.assertIn(50, self.progress)
        # Capture progress from the job (60 % of the disk copied = 30 %).
        self.assertIn(30, self.progress)
        # Several upload chunks each moved the needle.
        self.assertGreater(len([p for p in self.progress if 50 < p < 100]), 0)

    def test_metadata(self):
        self.snap(self.domain())
        self.assertEqual(
            {'disk_format': 'qcow2', 'container_format': 'bare',
             'image_location': 'snapshot', 'image_state': 'available',
             'owner_id': 'p1', 'kernel_id': 'k-1', 'ramdisk_id': 'r-1',
             'os_type': 'linux'},
            self.image_api.updates[0])

    def test_metadata_without_kernel(self):
        self.instance['system_metadata'] = {'image_kernel_id': 'none'}
        self.snap(self.domain())
        values = self.image_api.updates[0]
        self.assertNotIn('kernel_id', values)
        self.assertNotIn('ramdisk_id', values)
        self.assertNotIn('os_type', values)

    def test_live_paused_stays_paused(self):
        dom = self.domain(state=libvirt.VIR_DOMAIN_PAUSED)
        facts = self.snap(dom)
        self.assertEqual('live', facts['method'])
        self.assertNotIn('createWithFlags', self.names())
        self.assertNotIn('resume', self.names())
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, dom._state)

    def test_live_raw_converts_backup(self):
        self.conf.set_override('snapshot_image_format', 'raw',
                               group='libvirt')
        facts = self.snap(self.domain())
        self.assertEqual('live', facts['method'])
        self.assertIn(('convert', 'qcow2', 'raw', True), self.events)
        self.assertEqual(b'RAW' + DISK_BYTES, self.image_api.data)
        self.assertEqual('raw', self.image_api.updates[0]['disk_format'])
        self.assert_clean()

    def test_suspend_when_live_disabled(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        dom = self.domain()
        facts = self.snap(dom)
        self.assertEqual('suspend', facts['method'])
        self.assertGreater(facts['guest_paused_seconds'], 0.0)
        # Saved, read while down, restored running, then uploaded.
        self.assertEqual(['task_state', 'managedSave', 'convert',
                          'createWithFlags', 'task_state', 'image_update',
                          'image_upload'], self.names())
        self.assertIn(('convert', 'qcow2', 'qcow2', False), self.events)
        self.assertIn(('createWithFlags', 0), self.events)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assertEqual(DISK_BYTES, self.image_api.data)
        self.assert_clean()

    def test_suspend_paused_restores_paused(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        dom = self.domain(state=libvirt.VIR_DOMAIN_PAUSED)
        self.assertEqual('suspend', self.snap(dom)['method'])
        self.assertIn(('createWithFlags', libvirt.VIR_DOMAIN_START_PAUSED),
                      self.events)
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, dom._state)

    def test_cold_when_stopped(self):
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF)
        facts = self.snap(dom)
        self.assertEqual('cold', facts['method'])
        self.assertEqual(0.0, facts['guest_paused_seconds'])
        self.assertEqual(['task_state', 'convert', 'task_state',
                          'image_update', 'image_upload'], self.names())
        self.assertEqual(libvirt.VIR_DOMAIN_SHUTOFF, dom._state)
        self.assert_clean()

    def test_refuses_a_disk_with_a_data_file(self):
        # The disk's header names an external data file (feature bit 2):
        # a backup or qemu-img convert would copy that file into the
        # user's image. Refused before any path starts (no backup job, no
        # managed save, no convert).
        with open(self.disk, 'wb') as f:
            f.write(qcow2_header(incompatible_features=1 << 2))
        for state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_RUNNING):
            with self.subTest(state=state):
                self.events[:] = []
                dom = self.domain(state=state)
                with self.assertRaises(exception.SnapshotCaptureFailed) as cm:
                    self.snap(dom)
                self.assertIn('data_file', str(cm.exception))
                for name in ('convert', 'backupBegin', 'managedSave'):
                    self.assertNotIn(name, self.names())
                self.assertEqual(state, dom._state)
                self.assert_clean()

    def test_cold_when_suspended_left_suspended(self):
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF,
                          managed_save=True)
        facts = self.snap(dom)
        self.assertEqual('cold', facts['method'])
        self.assertNotIn('createWithFlags', self.names())
        self.assertTrue(dom.hasManagedSaveImage())

    def test_fallback_to_suspend_without_push_backup(self):
        for code in (libvirt.VIR_ERR_NO_SUPPORT,
                     libvirt.VIR_ERR_OPERATION_UNSUPPORTED):
            del self.events[:]
            dom = self.domain(backup_error=libvirt_error(code))
            facts = self.snap(dom)
            self.assertEqual('suspend', facts['method'])
            self.assertIn('live_fallback_reason', facts)
            self.assertIn('managedSave', self.names())
            self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
            self.assert_clean()

    def test_marker_while_capturing(self):
        seen = {}
        dom = self.domain()
        real = dom.backupBegin

        def begin(*args):
            seen.update(snapshot_marker.read(self.conf, self.instance))
            return real(*args)
        dom.backupBegin = begin
        self.snap(dom)
        self.assertEqual('img-1', seen['image_id'])
        self.assertEqual('live', seen['method'])
        self.assertEqual('running', seen['original_state'])
        self.assertEqual(1, seen['original_power_state'])
        self.assertTrue(seen['scratch_dir'].startswith(self.snapdir))
        self.assert_clean()


class TestFailures(SnapshotTestBase):

    def test_upload_failure_live(self):
        self.image_api.fail_upload = exception.ImageUploadFailed(
            image_id='img-1', reason='glance fell over')
        dom = self.domain()
        self.assertRaises(exception.ImageUploadFailed, self.snap, dom)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assert_clean()

    def test_upload_failure_suspend_guest_running(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        self.image_api.fail_upload = IOError('broken pipe')
        dom = self.domain()
        self.assertRaises(IOError, self.snap, dom)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assertFalse(dom.hasManagedSaveImage())
        self.assert_clean()

    def test_convert_failure_restores_guest(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        dom = self.domain()
        err = exception.SnapshotCaptureFailed(instance_uuid=UUID,
                                              reason='qemu-img died')
        self.assertRaises(exception.SnapshotCaptureFailed, self.snap, dom,
                          convert_fail=err)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assertNotIn('image_upload', self.names())
        self.assert_clean()

    def test_backup_job_failed(self):
        dom = self.domain(job_result=libvirt.VIR_DOMAIN_JOB_FAILED)
        self.assertRaises(exception.SnapshotCaptureFailed, self.snap, dom)
        self.assertNotIn('image_upload', self.names())
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assert_clean()

    def test_job_poll_error_aborts_job(self):
        dom = self.domain(job_polls=5)
        real = dom.jobStats
        calls = []

        def stats(flags=0):
            calls.append(flags)
            if len(calls) == 2:
                raise libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR)
            return real(flags)
        dom.jobStats = stats
        self.assertRaises(exception.HypervisorError, self.snap, dom)
        self.assertIn('abortJob', self.names())
        self.assert_clean()

    def test_domain_vanished(self):
        dom = self.domain()
        dom.fail['backupBegin'] = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN)
        self.assertRaises(exception.InstanceNotFound, self.snap, dom)
        self.assert_clean()

    def test_domain_vanished_during_suspend(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        dom = self.domain()
        dom.fail['managedSave'] = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN)
        self.assertRaises(exception.InstanceNotFound, self.snap, dom)
        self.assert_clean()

    def test_task_state_conflict_before_upload(self):
        calls = []

        def update(task_state, expected_state):
            calls.append(task_state)
            if task_state == task_states.IMAGE_UPLOADING:
                raise exception.UnexpectedTaskStateError(
                    instance_uuid=UUID, expected=expected_state,
                    actual='deleting')
        self.conf.set_override('live_snapshot', False, group='libvirt')
        dom = self.domain()
        with mock.patch('nova_snapshot.virt.libvirt.qemu_img.convert',
                        side_effect=fake_convert(self.events, dom)):
            self.assertRaises(
                exception.UnexpectedTaskStateError, snapshot.take_snapshot,
                None, dom, self.instance, 'img-1', self.image_api,
                self.conf, 'ctx', update, None)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assert_clean()

    def test_restore_failure_keeps_marker(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        dom = self.domain()
        dom.fail['createWithFlags'] = libvirt_error(
            libvirt.VIR_ERR_INTERNAL_ERROR)
        self.assertRaises(exception.HypervisorError, self.snap, dom)
        # The scratch copy is gone; the marker stays for repair().
        self.assertEqual([], os.listdir(self.snapdir))
        record = snapshot_marker.read(self.conf, self.instance)
        self.assertEqual('suspend', record['method'])
        self.assertEqual('running', record['original_state'])

    def test_progress_reporter_failure_is_harmless(self):
        def boom(percent):
            raise RuntimeError('notifier down')
        dom = self.domain()
        with mock.patch('nova_snapshot.virt.libvirt.qemu_img.convert',
                        side_effect=fake_convert(self.events, dom)):
            facts = snapshot.take_snapshot(
                None, dom, self.instance, 'img-1', self.image_api,
                self.conf, 'ctx', self.update_task_state, boom)
        self.assertEqual('live', facts['method'])


class TestRepair(SnapshotTestBase):

    def write_marker(self, **record):
        os.makedirs(self.snapdir, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=UUID + '-', dir=self.snapdir)
        open(os.path.join(scratch, 'backup.qcow2'), 'wb').close()
        record.setdefault('scratch_dir', scratch)
        snapshot_marker.write(self.conf, self.instance, record)
        return scratch

    def test_no_marker_noop(self):
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF,
                          managed_save=True)
        self.assertEqual([], snapshot.repair(dom, self.instance, self.conf))
        self.assertEqual([], self.names())

    def test_restores_saved_guest(self):
        scratch = self.write_marker(image_id='img-1', method='suspend',
                                    original_state='running')
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF,
                          managed_save=True)
        done = snapshot.repair(dom, self.instance, self.conf)
        self.assertIn(('createWithFlags', 0), self.events)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, dom._state)
        self.assertFalse(os.path.exists(scratch))
        self.assertEqual('restored guest to running', done[0])
        self.assertEqual(2, len(done))
        self.assert_clean()

    def test_restores_paused_guest_paused(self):
        self.write_marker(image_id='img-1', method='suspend',
                          original_state='paused')
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF,
                          managed_save=True)
        snapshot.repair(dom, self.instance, self.conf)
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, dom._state)

    def test_aborts_running_backup(self):
        self.write_marker(image_id='img-1', method='live',
                          original_state='running')
        dom = self.domain(job_polls=3)
        dom._job_left = 3
        done = snapshot.repair(dom, self.instance, self.conf)
        self.assertIn('abortJob', self.names())
        self.assertIn('aborted backup job', done)
        self.assertNotIn('createWithFlags', self.names())
        self.assert_clean()

    def test_stopped_guest_stays_stopped(self):
        self.write_marker(image_id='img-1', method='cold',
                          original_state='shutdown')
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF)
        snapshot.repair(dom, self.instance, self.conf)
        self.assertNotIn('createWithFlags', self.names())
        self.assert_clean()

    def test_torn_marker_cleans_scratch_only(self):
        scratch = self.write_marker(image_id='img-1')
        with open(snapshot_marker.marker_path(self.conf, self.instance),
                  'w') as f:
            f.write('{"image_')
        dom = self.domain(state=libvirt.VIR_DOMAIN_SHUTOFF,
                          managed_save=True)
        snapshot.repair(dom, self.instance, self.conf)
        self.assertNotIn('createWithFlags', self.names())
        self.assertFalse(os.path.exists(scratch))
        self.assert_clean()

    def test_domain_gone(self):
        self.write_marker(image_id='img-1', method='suspend',
                          original_state='running')
        snapshot.repair(None, self.instance, self.conf)
        self.assert_clean()

    def test_marker_is_json(self):
        self.write_marker(image_id='img-1', method='live',
                          original_state='paused')
        with open(snapshot_marker.marker_path(self.conf,
                                              self.instance)) as f:
            self.assertEqual('img-1', json.load(f)['image_id'])


class TestRootDisk(unittest.TestCase):

    def test_first_disk_device(self):
        dom = FakeDomain([], disk_path='/var/lib/i/disk')
        self.assertEqual(snapshot.RootDisk('vda', '/var/lib/i/disk',
                                           'qcow2'),
                         snapshot.find_root_disk(dom))

    def test_no_disk(self):
        dom = mock.Mock()
        dom.XMLDesc.return_value = '<domain><devices/></domain>'
        self.assertRaises(exception.SnapshotCaptureFailed,
                          snapshot.find_root_disk, dom)


if __name__ == '__main__':
    unittest.main()
