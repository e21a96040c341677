"""take_snapshot() and repair() against a real libvirtd + QEMU guest.

The guest is the tiny ticking guest from ``tools/guest/build.sh``: it writes
``tick N`` into sector 1 of its disk every 50 ms. Its 1 GiB qcow2 disk also
holds 64 MiB of pattern data written before boot, so the captures have a
known size. Glance is replaced at the client boundary by an object that
writes the uploaded chunks to a local file.

Needs libvirtd running (``tools/stack/start.sh``) and the guest built; fails
(never skips) when either is missing.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

import libvirt

from nova_snapshot import conf as ns_conf
from nova_snapshot import exception
from nova_snapshot.virt.libvirt import snapshot
from nova_snapshot.virt.libvirt import snapshot_marker
from tests.functional.fixtures import stack as stack_fixture
from tests.functional.fixtures import watchers

MiB = 1024 * 1024
DATA_OFFSET = 1 * MiB
DATA_BYTES = 64 * MiB
SECTOR = 512

DOMAIN_XML = """
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{guest}/kernel</kernel>
    <initrd>{guest}/initramfs.gz</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
"""


def qemu_io_read(path, offset, length):
    """Bytes of a qcow2 image that a running QEMU may hold open (-U)."""
    out = subprocess.run(
        ['qemu-io', '-U', '-r', '-f', 'qcow2', '-c',
         'read -v %d %d' % (offset, length), path],
        check=True, capture_output=True, text=True).stdout
    data = bytearray()
    for line in out.splitlines():
        match = re.match(r'^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} )+)', line)
        if match:
            data += bytes.fromhex(match.group(1).replace(' ', ''))
    return bytes(data[:length])


def tick_of(path):
    match = re.match(rb'tick (\d+)\n', qemu_io_read(path, SECTOR, 32))
    return int(match.group(1)) if match else None


class FakeImageAPI(object):
    """GlanceAPI at the client boundary: uploads land in a local file."""

    def __init__(self, path, fail_after=None):
        self.path = path
        self.fail_after = fail_after
        self.updates = []
        self.size = None

    def update(self, context, image_id, values, remove_props=()):
        self.updates.append(dict(values))

    def upload(self, context, image_id, data, size=None):
        self.size = size
        with open(self.path, 'wb') as f:
            for n, chunk in enumerate(data):
                if self.fail_after is not None and n >= self.fail_after:
                    raise exception.ImageUploadFailed(
                        image_id=image_id, reason='injected failure')
                f.write(chunk)


class StatePoller(watchers.BackgroundWatcher):
    """Records domain.state() every few ms from its own connection (the
    whole list, where DomainStateWatcher keeps the pauses)."""

    def __init__(self, uri, name):
        super().__init__()
        self.conn = libvirt.open(uri)
        self.domain = self.conn.lookupByName(name)
        self.states = []

    def _run(self):
        while not self._stop.is_set():
            self.states.append(self.domain.state()[0])
            time.sleep(0.003)

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.conn.close()


class LibvirtSnapshotTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        stack = stack_fixture.read_stack_env()
        cls.uri = stack.get('LIBVIRT_URI', 'qemu:///system')
        guest = stack['GUEST_DIR']
        for name in ('kernel', 'initramfs.gz'):
            if not os.path.exists(os.path.join(guest, name)):
                raise RuntimeError('%s/%s is missing: run tools/guest/'
                                   'build.sh' % (guest, name))
        cls.conn = libvirt.open(cls.uri)
        cls.tmp = tempfile.mkdtemp(prefix='nsnap-ft-')
        cls.instance = {'uuid': str(uuid.uuid4()), 'project_id': 'proj-1',
                        'user_id': 'user-1',
                        'system_metadata': {'image_kernel_id': 'kern-1',
                                            'image_ramdisk_id': 'ram-1'}}
        cls.disk = os.path.join(cls.tmp, 'instances', cls.instance['uuid'],
                                'disk')
        os.makedirs(os.path.dirname(cls.disk))
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', cls.disk,
                        '1G'], check=True)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0xab %d %d' % (DATA_OFFSET, DATA_BYTES),
                        cls.disk], check=True, capture_output=True)
        cls.console = os.path.join(cls.tmp, 'console.log')
        cls.name = 'nsnap-ft-' + cls.instance['uuid']
        cls.domain = cls.conn.defineXML(DOMAIN_XML.format(
            name=cls.name, guest=guest, disk=cls.disk, console=cls.console))
        cls.domain.create()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.domain.isActive():
                cls.domain.destroy()
            cls.domain.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        finally:
            cls.conn.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.conf = ns_conf.new_conf([])
        self.conf.set_override('instances_path',
                               os.path.join(self.tmp, 'instances'))
        # The push path; test_libvirt_snapshot_stream runs the streamed one.
        self.conf.set_override('live_snapshot_method', 'push',
                               group='libvirt')
        self.snapdir = self.conf.libvirt.snapshots_directory
        self.upload_path = os.path.join(self.tmp, 'uploaded.img')
        self.task_states = []
        self.progress = []
        self.ensure_running()
        self.addCleanup(self.ensure_running)

    def ensure_running(self):
        state = self.domain.state()[0]
        if state == libvirt.VIR_DOMAIN_PAUSED:
            self.domain.resume()
        elif not self.domain.isActive():
            self.domain.create()
        self.wait_ticking()

    def wait_ticking(self, timeout=60):
        """Wait until the guest has written at least two new ticks."""
        first = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tick = tick_of(self.disk)
            if tick is not None:
                if first is None:
                    first = tick
                elif tick >= first + 2:
                    return tick
            time.sleep(0.05)
        self.fail('the guest does not tick; console:\n%s'
                  % self.console_tail())

    def console_tail(self):
        try:
            with open(self.console, errors='replace') as f:
                return ''.join(f.readlines()[-10:])
        except OSError as exc:
            return str(exc)

    def take(self, image_api=None):
        image_api = image_api or FakeImageAPI(self.upload_path)
        facts = snapshot.take_snapshot(
            None, self.domain, self.instance, 'image-1', image_api,
            self.conf, None,
            lambda task_state, expected_state: self.task_states.append(
                (task_state, expected_state)),
            self.progress.append)
        return facts, image_api

    def assert_no_leftovers(self):
        self.assertEqual([], os.listdir(self.snapdir))
        self.assertFalse(os.path.exists(
            snapshot_marker.marker_path(self.conf, self.instance)))

    def assert_compact_capture(self, facts, image_api):
        info = subprocess.run(
            ['qemu-img', 'info', '-f', 'qcow2', '--output=json',
             self.upload_path], check=True, capture_output=True, text=True)
        self.assertIn('"virtual-size": 1073741824', info.stdout)
        self.assertNotIn('backing-filename', info.stdout)
        size = os.path.getsize(self.upload_path)
        self.assertEqual(size, facts['bytes_uploaded'])
        self.assertEqual(size, image_api.size)
        # Holds the 64 MiB written, not the 1 GiB virtual size.
        self.assertGreaterEqual(facts['disk_allocated_bytes'], DATA_BYTES)
        self.assertLess(facts['disk_allocated_bytes'], DATA_BYTES + 8 * MiB)
        self.assertLess(size, DATA_BYTES + 8 * MiB)
        self.assertEqual(b'\xab' * 4096,
                         qemu_io_read(self.upload_path, DATA_OFFSET, 4096))

    def reference_compare(self, captured_tick):
        """Compare the capture with a copy made the classic way.

        The classic copy (managed save + qemu-img convert) is taken after
        the snapshot, so only sector 1 (the tick) may differ: put the
        captured sector into the reference and the two must be identical.
        """
        ref = os.path.join(self.tmp, 'reference.raw')
        cap = os.path.join(self.tmp, 'captured.raw')
        self.domain.managedSave(0)
        try:
            subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O',
                            'raw', self.disk, ref], check=True)
        finally:
            self.domain.create()
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                        self.upload_path, cap], check=True)
        try:
            with open(cap, 'rb') as f:
                f.seek(SECTOR)
                sector = f.read(SECTOR)
            with open(ref, 'r+b') as f:
                f.seek(SECTOR)
                ref_tick = int(re.match(rb'tick (\d+)', f.read(SECTOR))
                               .group(1))
                f.seek(SECTOR)
                f.write(sector)
            self.assertGreater(ref_tick, captured_tick)
            result = subprocess.run(['qemu-img', 'compare', '-f', 'raw',
                                     '-F', 'raw', cap, ref],
                                    capture_output=True, text=True)
            self.assertEqual(0, result.returncode, result.stdout)
        finally:
            os.unlink(cap)
            os.unlink(ref)

    def report(self, label, facts):
        print('\n%s: %s' % (label, {k: (round(v, 4) if isinstance(v, float)
                                        else v) for k, v in facts.items()}))

    # -- tests ----------------------------------------------------------------

    def test_live_never_pauses_and_captures_one_tick(self):
        before = tick_of(self.disk)
        with StatePoller(self.uri, self.name) as poller:
            facts, image_api = self.take()
        after = tick_of(self.disk)
        self.report('live', facts)
        self.assertEqual('live', facts['method'])
        self.assertEqual(0.0, facts['guest_paused_seconds'])
        self.assertGreater(len(poller.states), 5)
        self.assertEqual({libvirt.VIR_DOMAIN_RUNNING}, set(poller.states))
        captured = tick_of(self.upload_path)
        self.assertIsNotNone(captured)
        self.assertLessEqual(before, captured)
        self.assertLessEqual(captured, after)
        self.assert_compact_capture(facts, image_api)
        self.assertEqual('qcow2', image_api.updates[0]['disk_format'])
        self.assertEqual('kern-1', image_api.updates[0]['kernel_id'])
        self.assertEqual(['image_pending_upload', 'image_uploading'],
                         [s for s, _ in self.task_states])
        self.assertEqual(100, self.progress[-1])
        self.assert_no_leftovers()
        self.reference_compare(captured)

    def test_live_paused_guest_stays_paused(self):
        self.domain.suspend()
        with StatePoller(self.uri, self.name) as poller:
            facts, image_api = self.take()
        self.assertEqual('live', facts['method'])
        self.assertEqual({libvirt.VIR_DOMAIN_PAUSED}, set(poller.states))
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, self.domain.state()[0])
        self.assert_compact_capture(facts, image_api)
        self.assert_no_leftovers()

    def test_suspend_path_restores_running_guest(self):
        self.conf.set_override('live_snapshot', False, group='libvirt')
        with StatePoller(self.uri, self.name) as poller:
            facts, image_api = self.take()
        self.report('suspend', facts)
        self.assertEqual('suspend', facts['method'])
        self.assertGreater(facts['guest_paused_seconds'], 0.0)
        self.assertIn(libvirt.VIR_DOMAIN_SHUTOFF, poller.states)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, poller.states[-1])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])
        self.assertFalse(self.domain.hasManagedSaveImage(0))
        self.assertIsNotNone(tick_of(self.upload_path))
        self.assert_compact_capture(facts, image_api)
        self.assert_no_leftovers()
        # The restored guest goes on ticking from where it was.
        self.wait_ticking()

    def test_cold_path_stopped_guest(self):
        self.domain.destroy()
        facts, image_api = self.take()
        self.report('cold', facts)
        self.assertEqual('cold', facts['method'])
        self.assertFalse(self.domain.isActive())
        self.assertEqual(tick_of(self.disk), tick_of(self.upload_path))
        self.assert_compact_capture(facts, image_api)
        self.assert_no_leftovers()

    def test_raw_format(self):
        self.conf.set_override('snapshot_image_format', 'raw',
                               group='libvirt')
        facts, image_api = self.take()
        self.assertEqual('live', facts['method'])
        self.assertEqual('raw', image_api.updates[0]['disk_format'])
        self.assertEqual(1024 * MiB, facts['bytes_uploaded'])
        with open(self.upload_path, 'rb') as f:
            f.seek(DATA_OFFSET)
            self.assertEqual(b'\xab' * 4096, f.read(4096))
        self.assert_no_leftovers()

    def _upload_failure(self, live):
        self.conf.set_override('live_snapshot', live, group='libvirt')
        api = FakeImageAPI(self.upload_path, fail_after=3)
        self.assertRaises(exception.ImageUploadFailed, self.take, api)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])
        self.assertFalse(self.domain.hasManagedSaveImage(0))
        self.assert_no_leftovers()
        self.wait_ticking()

    def test_upload_failure_live(self):
        self._upload_failure(live=True)

    def test_upload_failure_suspend(self):
        self._upload_failure(live=False)

    def test_repair_after_crash_in_suspend(self):
        # What a crash between managed save and restore leaves behind.
        os.makedirs(self.snapdir, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=self.instance['uuid'] + '-',
                                   dir=self.snapdir)
        open(os.path.join(scratch, 'disk.qcow2'), 'wb').close()
        snapshot_marker.write(self.conf, self.instance, {
            'image_id': 'image-1', 'method': 'suspend',
            'original_state': 'running', 'scratch_dir': scratch})
        self.domain.managedSave(0)
        done = snapshot.repair(self.domain, self.instance, self.conf)
        self.assertIn('restored guest to running', done)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])
        self.assert_no_leftovers()
        self.wait_ticking()

    def test_repair_without_marker_leaves_guest_alone(self):
        self.domain.suspend()
        self.assertEqual([], snapshot.repair(self.domain, self.instance,
                                             self.conf))
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, self.domain.state()[0])


if __name__ == '__main__':
    unittest.main()
