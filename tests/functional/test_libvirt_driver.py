"""LibvirtDriver against the real libvirtd, booting the tiny test guest.

Needs ``tools/stack/start.sh`` (libvirtd) and ``tools/guest/build.sh`` (the
guest in ``GUEST_DIR``); fails, never skips, when either is missing. Glance
is replaced at the client boundary by :class:`FileImageAPI`, which serves
the guest's files from a dict.

Every domain a test creates is named ``instance-<uuid>`` (the driver's rule)
with a UUID the test made; tearDown destroys exactly those.
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
import libvirt_qemu

from nova_snapshot.compute import power_state
from nova_snapshot.compute import task_states
from nova_snapshot import conf as ns_conf
from nova_snapshot import exception
from nova_snapshot.virt.libvirt import driver as libvirt_driver
from nova_snapshot.virt.libvirt import snapshot_marker
from tests.functional.fixtures import guest
from tests.functional.fixtures import stack

BOOT_TIMEOUT = 90
SECTOR = 512
LAST_TICK = re.compile(r'nova-snapshot-guest: last tick (\d+|none)')
TICK = re.compile(r'nova-snapshot-guest: tick (\d+)')
AGENT_UP = re.compile(r'nova-snapshot-guest: qemu-ga started')
MOUNTED = re.compile(r'nova-snapshot-guest: mounted /dev/vda on /mnt')


class FileImageAPI:
    """The part of GlanceAPI the driver uses, backed by local files."""

    def __init__(self, files, metas=None):
        self.files = dict(files)      # image id -> path
        self.metas = dict(metas or {})
        self.updates = []
        self.uploads = {}

    def download(self, context, image_id, dest_path):
        try:
            src = self.files[image_id]
        except KeyError:
            raise exception.ImageNotFound(image_id=image_id)
        shutil.copyfile(src, dest_path)
        return os.path.getsize(dest_path)

    def update(self, context, image_id, values, remove_props=()):
        self.updates.append((image_id, dict(values)))

    def upload(self, context, image_id, data, size=None):
        chunks = [data.read()] if hasattr(data, 'read') else list(data)
        self.uploads[image_id] = b''.join(chunks)


def tick_on_disk(qcow2_path, workdir):
    """The tick stored in sector 1 of a qcow2 disk (None when blank)."""
    raw = os.path.join(workdir, 'tick-%s.raw' % uuid.uuid4().hex)
    # -U: the guest may hold the image open (paused or running).
    subprocess.run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw',
                    qcow2_path, raw], check=True)
    try:
        with open(raw, 'rb') as f:
            f.seek(SECTOR)
            sector = f.read(SECTOR)
    finally:
        os.unlink(raw)
    match = re.match(rb'tick (\d+)\n', sector)
    return int(match.group(1)) if match else None


class LibvirtDriverTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        env = stack.read_stack_env()
        cls.uri = env.get('LIBVIRT_URI', 'qemu:///system')
        guest_dir = env.get('GUEST_DIR') or os.path.join(
            stack.REPO_ROOT, '.stack', 'guest')
        for name in ('kernel', 'initramfs.gz', 'disk.qcow2'):
            if not os.path.exists(os.path.join(guest_dir, name)):
                raise AssertionError('%s/%s is missing: run tools/guest/'
                                     'build.sh' % (guest_dir, name))
        cls.guest_dir = guest_dir
        # Fail (not skip) when libvirtd is down.
        conn = libvirt.open(cls.uri)
        conn.close()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ns-libvirt-test-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.conf = ns_conf.new_conf([])
        self.conf.set_override('instances_path',
                               os.path.join(self.tmp, 'instances'))
        self.conf.set_override('connection_uri', self.uri, group='libvirt')
        self.image_api = FileImageAPI({
            'kernel-image': os.path.join(self.guest_dir, 'kernel'),
            'ramdisk-image': os.path.join(self.guest_dir, 'initramfs.gz'),
            'disk-image': os.path.join(self.guest_dir, 'disk.qcow2'),
            'ext4-image': os.path.join(self.guest_dir, 'disk-ext4.qcow2'),
        })
        self.driver = libvirt_driver.LibvirtDriver(self.conf, self.image_api)
        self.driver.init_host('test-host')
        self.instances = []
        self.addCleanup(self._destroy_all)

    def _destroy_all(self):
        for instance in self.instances:
            try:
                self.driver.destroy(None, instance)
            except Exception:
                # Last resort, so that no test guest outlives the test.
                conn = libvirt.open(self.uri)
                try:
                    dom = conn.lookupByUUIDString(instance['uuid'])
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(
                        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                except libvirt.libvirtError:
                    pass
                conn.close()

    # -- helpers ------------------------------------------------------------

    def make_instance(self):
        instance = {
            'uuid': str(uuid.uuid4()),
            # A user's name never reaches libvirt or a path.
            'name': 'my server; rm -rf / <x>',
            'project_id': 'p1', 'user_id': 'u1', 'image_ref': 'disk-image',
            'flavor': {'name': 'm1.micro', 'memory_mb': 128, 'vcpus': 1,
                       'root_gb': 1},
            'system_metadata': {},
        }
        self.instances.append(instance)
        return instance

    def image_meta(self, **extra):
        meta = {'id': 'disk-image', 'disk_format': 'qcow2',
                'container_format': 'bare', 'kernel_id': 'kernel-image',
                'ramdisk_id': 'ramdisk-image'}
        meta.update(extra)
        return meta

    def disk_path(self, instance):
        return os.path.join(self.conf.instances_path, instance['uuid'],
                            'disk')

    def wait_console(self, instance, pattern, count=1, timeout=BOOT_TIMEOUT):
        """Wait until ``pattern`` matched ``count`` times; return matches."""
        deadline = time.monotonic() + timeout
        while True:
            found = pattern.findall(self.driver.get_console_output(instance))
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                self.fail('no %d x %r on the console after %ss:\n%s' % (
                    count, pattern.pattern, timeout,
                    self.driver.get_console_output(instance)[-3000:]))
            time.sleep(0.05)

    def wait_tick_above(self, instance, value, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            ticks = [int(t) for t in TICK.findall(
                self.driver.get_console_output(instance))]
            if ticks and ticks[-1] > value:
                return ticks[-1]
            if time.monotonic() > deadline:
                self.fail('the guest did not count past %d' % value)
            time.sleep(0.05)

    def domain(self, instance):
        conn = libvirt.open(self.uri)
        self.addCleanup(conn.close)
        return conn.lookupByUUIDString(instance['uuid'])

    def spawn(self, **meta):
        instance = self.make_instance()
        started = time.monotonic()
        state = self.driver.spawn(None, instance, self.image_meta(**meta))
        spawned = time.monotonic()
        self.assertEqual(power_state.RUNNING, state)
        self.assertEqual(['none'], self.wait_console(instance, LAST_TICK))
        self.wait_console(instance, TICK)
        now = time.monotonic()
        print('spawn() %.2f s, guest start to first tick %.2f s (load %s)' % (
            spawned - started, now - spawned,
            os.getloadavg()[0]))
        return instance

    # -- tests --------------------------------------------------------------

    def test_spawn_power_cycle_keeps_the_disk(self):
        instance = self.spawn()
        uuid_ = instance['uuid']
        dom = self.domain(instance)
        self.assertEqual('instance-' + uuid_, dom.name())
        self.assertIn(uuid_, self.driver.list_instance_uuids())
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        # The flavor's root_gb grew the 64 MiB image.
        info = subprocess.run(['qemu-img', 'info', '-U', '--output=json',
                               self.disk_path(instance)], check=True,
                              capture_output=True, text=True).stdout
        self.assertIn('"virtual-size": %d' % (1024 ** 3), info)

        self.wait_tick_above(instance, 1)
        self.driver.power_off(instance)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_power_state(instance))
        on_disk = tick_on_disk(self.disk_path(instance), self.tmp)
        self.assertIsNotNone(on_disk)
        self.assertGreater(on_disk, 1)

        self.driver.power_on(None, instance)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        # The console log is appended to: the second boot's line is the
        # second "last tick" line, and it is what the disk held.
        lasts = self.wait_console(instance, LAST_TICK, count=2)
        self.assertEqual(str(on_disk), lasts[1])
        self.wait_tick_above(instance, on_disk)

        # Idempotent power ops.
        self.driver.power_on(None, instance)
        self.driver.power_off(instance)
        self.driver.power_off(instance)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_power_state(instance))

    def test_pause_suspend_and_destroy(self):
        instance = self.spawn(hw_qemu_guest_agent='true')
        dom = self.domain(instance)
        self.assertIn("org.qemu.guest_agent.0", dom.XMLDesc(0))
        self.wait_tick_above(instance, 1)

        self.driver.pause(instance)
        self.assertEqual(power_state.PAUSED,
                         self.driver.get_power_state(instance))
        frozen = tick_on_disk(self.disk_path(instance), self.tmp)
        time.sleep(0.5)
        self.assertEqual(frozen, tick_on_disk(self.disk_path(instance),
                                              self.tmp))
        self.driver.unpause(instance)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        self.wait_tick_above(instance, frozen)

        self.driver.suspend(instance)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_power_state(instance))
        self.assertTrue(dom.hasManagedSaveImage(0))
        saved = tick_on_disk(self.disk_path(instance), self.tmp)
        self.driver.resume(instance)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        self.assertFalse(dom.hasManagedSaveImage(0))
        self.wait_tick_above(instance, saved)
        # Restored from memory, not rebooted: still one "last tick" line.
        self.assertEqual(1, len(LAST_TICK.findall(
            self.driver.get_console_output(instance))))

        # Destroy works on a managed-saved guest and is idempotent.
        self.driver.suspend(instance)
        inst_dir = os.path.dirname(self.disk_path(instance))
        scratch = os.path.join(self.conf.libvirt.snapshots_directory,
                               instance['uuid'] + '-left-over')
        os.makedirs(scratch)
        self.driver.destroy(None, instance)
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_power_state, instance)
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_console_output, instance)
        self.assertNotIn(instance['uuid'], self.driver.list_instance_uuids())
        self.assertFalse(os.path.exists(inst_dir))
        self.assertFalse(os.path.exists(scratch))
        self.driver.destroy(None, instance)

    def test_guest_agent_freezes_the_ext4_disk(self):
        instance = self.spawn(id='ext4-image', hw_qemu_guest_agent='true')
        self.wait_console(instance, MOUNTED)
        self.wait_console(instance, AGENT_UP)
        dom = self.domain(instance)
        reply = guest.wait_for_guest_agent(dom)
        self.assertEqual('{"return":{}}', reply.replace(' ', ''))
        started = time.monotonic()
        self.assertEqual(1, dom.fsFreeze(None, 0))
        try:
            status = libvirt_qemu.qemuAgentCommand(
                dom, '{"execute":"guest-fsfreeze-status"}', 10, 0)
            self.assertIn('frozen', status)
        finally:
            self.assertEqual(1, dom.fsThaw(None, 0))
        print('freeze + status + thaw: %.3f s' % (time.monotonic() - started))
        status = libvirt_qemu.qemuAgentCommand(
            dom, '{"execute":"guest-fsfreeze-status"}', 10, 0)
        self.assertIn('thawed', status)

    def test_repair_after_crash_resumes_a_guest_paused_by_a_snapshot(self):
        instance = self.spawn()
        # What an interrupted suspend-path snapshot leaves: a paused guest,
        # the marker and a scratch directory.
        self.driver.pause(instance)
        snapshot_marker.write(self.conf, instance, {
            'image_id': 'img', 'method': 'suspend', 'phase': 'capture',
            'original_state': 'running'})
        scratch = os.path.join(self.conf.libvirt.snapshots_directory,
                               instance['uuid'] + '-crashed')
        os.makedirs(scratch)

        self.driver.repair_after_crash(instance)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        self.assertIsNone(snapshot_marker.read(self.conf, instance))
        self.assertFalse(os.path.exists(scratch))

        # Without a marker a paused guest is the user's: left paused.
        self.driver.pause(instance)
        self.driver.repair_after_crash(instance)
        self.assertEqual(power_state.PAUSED,
                         self.driver.get_power_state(instance))

    def test_snapshot_delegates_and_uploads_a_disk_with_one_tick(self):
        instance = self.spawn()
        self.wait_tick_above(instance, 1)
        states = []

        def update_task_state(task_state, expected_state=None):
            states.append(task_state)

        facts = self.driver.snapshot(None, instance, 'snap-image',
                                     update_task_state, lambda p: None)
        self.assertEqual([task_states.IMAGE_PENDING_UPLOAD,
                          task_states.IMAGE_UPLOADING], states)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_power_state(instance))
        data = self.image_api.uploads['snap-image']
        self.assertEqual(len(data), facts['bytes_uploaded'])
        path = os.path.join(self.tmp, 'snap.qcow2')
        with open(path, 'wb') as f:
            f.write(data)
        self.assertIsNotNone(tick_on_disk(path, self.tmp))

    def test_failed_spawn_leaves_nothing(self):
        instance = self.make_instance()
        meta = self.image_meta(kernel_id='no-such-kernel')
        self.assertRaises(exception.ImageNotFound, self.driver.spawn, None,
                          instance, meta)
        self.assertRaises(exception.InstanceNotFound,
                          self.driver.get_power_state, instance)
        self.assertFalse(os.path.exists(os.path.dirname(
            self.disk_path(instance))))
