"""Crafted images against the real stack: all refused, nothing read.

The images (``tests/crafted_images.py``) name a host file or another
server's disk as a qcow2 data file, backing file or VMDK extent, lie about
their format, or are larger than the flavor's disk. Each goes two ways:

* **the real path**: uploaded to the stack's Glance (noauth, :9292) as the
  ``disk_format`` it claims, then booted through the API (RabbitMQ, the
  compute service, the libvirt driver). Recent Glance inspects uploads
  itself and refuses most: that is recorded, the same bytes are offered
  again as ``raw``, and when Glance refuses those too the bytes are
  planted behind its back, as an older Glance or another path would have
  stored them: a harmless placeholder is uploaded as the declared format,
  then its file in Glance's store and its size and hashes in Glance's
  database are replaced by the crafted ones. Expected: a 400 at the API
  when Glance knows a size that does not fit, otherwise a server in ERROR
  with a fault that names no host path;
* **the driver path**: the exact file handed to the libvirt driver's
  spawn (download, inspection) in this process, as the declared format,
  whatever Glance did with it.

Afterwards nothing may be left (no domain, no instance directory), the
host file's access time must be unchanged (nothing opened it: the file
system is mounted relatime and its atime is set before its mtime, so any
read moves it) and neither marker may appear in any file under the
deployment's instances directory but the victim server's own disk.
"""

import configparser
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import libvirt
import psycopg2
import sqlalchemy.engine

from nova_snapshot import conf as ns_conf
from nova_snapshot import exception
from nova_snapshot.virt.libvirt import driver as libvirt_driver
from tests import crafted_images
from tests.functional import e2e_base

HOST_MARKER = b'NS-HOST-SECRET-%s' % uuid.uuid4().hex.encode()
VICTIM_MARKER = b'NS-VICTIM-DATA-%s' % uuid.uuid4().hex.encode()
MiB = 1024 ** 2


class _FileImageAPI:
    """The driver's image API serving one local file for every image id."""

    def __init__(self, path):
        self.path = path

    def download(self, context, image_id, dest_path):
        shutil.copyfile(self.path, dest_path)
        return os.path.getsize(dest_path)


class CraftedImagesTest(e2e_base.EndToEndTestCase):

    # The development set-up: identity headers to the noauth Glance.
    keystone = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix='ns-crafted-',
                                    dir=cls.deployment.state_dir)
        cls.host_file = os.path.join(cls.work, 'host-secret')
        with open(cls.host_file, 'wb') as f:
            f.write((HOST_MARKER + b'\n') * (MiB // (len(HOST_MARKER) + 1)))
        st = os.stat(cls.host_file)
        # relatime updates an atime older than the mtime on any read.
        os.utime(cls.host_file, (st.st_mtime - 3600, st.st_mtime))
        cls.host_atime = os.stat(cls.host_file).st_atime
        cls.victim = cls._boot_victim()
        cls.victim_disk = os.path.join(cls.deployment.state_dir,
                                       'instances', cls.victim['id'], 'disk')
        cls.images = crafted_images.build_all(cls.work, cls.host_file,
                                              cls.victim_disk)

    @classmethod
    def _boot_victim(cls):
        """Another tenant's server whose disk holds VICTIM_MARKER."""
        raw = os.path.join(cls.work, 'victim.raw')
        qcow = os.path.join(cls.work, 'victim.qcow2')
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                        os.path.join(cls.guest_dir, 'disk.qcow2'), raw],
                       check=True)
        with open(raw, 'r+b') as f:
            # Past sector 1, where the guest writes its ticks.
            f.seek(MiB)
            f.write(VICTIM_MARKER * 64)
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                        raw, qcow], check=True)
        image = cls.image_api.create(cls.ctx, dict(
            name='crafted-victim', disk_format='qcow2',
            container_format='bare', visibility='private',
            kernel_id=cls.base_image['kernel_id'],
            ramdisk_id=cls.base_image['ramdisk_id'],
            os_command_line=e2e_base.GUEST_COMMAND_LINE))
        cls.victim_image = image['id']
        with open(qcow, 'rb') as data:
            cls.image_api.upload(cls.ctx, image['id'], data,
                                 size=os.path.getsize(qcow))
        server = cls.client.create_server('victim', image['id'],
                                          flavor_ref='2')
        return cls.client.wait_for_server(server['id'], timeout=120)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.image_api.delete(cls.ctx, cls.victim_image)
        except Exception:
            pass
        super().tearDownClass()

    # -- helpers -------------------------------------------------------------

    def upload(self, crafted, disk_format):
        """Create and upload; returns (image id, None) or (id, refusal)."""
        image = self.image_api.create(self.ctx, dict(
            name='crafted-%s' % crafted.name, disk_format=disk_format,
            container_format='bare', visibility='private',
            kernel_id=self.base_image['kernel_id'],
            ramdisk_id=self.base_image['ramdisk_id']))
        self.addCleanup(self._delete_image, image['id'])
        try:
            with open(crafted.path, 'rb') as data:
                self.image_api.upload(self.ctx, image['id'], data,
                                      size=os.path.getsize(crafted.path))
        except exception.NovaSnapshotException as exc:
            return image['id'], exc.format_message()
        return image['id'], None

    def glance_db(self):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(os.path.join(self.stack['STACK_DIR'], 'glance', 'etc',
                                 'glance-api.conf'))
        url = sqlalchemy.engine.make_url(parser['database']['connection'])
        return psycopg2.connect(host=url.host, port=url.port or 5432,
                                user=url.username, dbname=url.database)

    def plant(self, crafted):
        """An active image of ``crafted.disk_format`` holding the crafted
        bytes, which Glance refused to take (see the module's doc)."""
        placeholder = (crafted_images.qcow2(crafted_images.MiB)
                       if crafted.disk_format == 'qcow2' else bytes(MiB))
        image = self.image_api.create(self.ctx, dict(
            name='crafted-planted-%s' % crafted.name,
            disk_format=crafted.disk_format, container_format='bare',
            visibility='private', kernel_id=self.base_image['kernel_id'],
            ramdisk_id=self.base_image['ramdisk_id']))
        self.addCleanup(self._delete_image, image['id'])
        self.image_api.upload(self.ctx, image['id'], placeholder,
                              size=len(placeholder))
        with open(crafted.path, 'rb') as f:
            data = f.read()
        conn = self.glance_db()
        try:
            with conn, conn.cursor() as cur:
                cur.execute('SELECT value FROM image_locations WHERE '
                            'image_id = %s AND NOT deleted', (image['id'],))
                (location,), = cur.fetchall()
                self.assertTrue(location.startswith('file://'), location)
                with open(location[len('file://'):], 'wb') as f:
                    f.write(data)
                cur.execute(
                    'UPDATE images SET size = %s, virtual_size = NULL, '
                    "checksum = %s, os_hash_algo = 'sha512', "
                    'os_hash_value = %s WHERE id = %s',
                    (len(data), hashlib.md5(data).hexdigest(),
                     hashlib.sha512(data).hexdigest(), image['id']))
        finally:
            conn.close()
        return image['id']

    def assert_no_host_path(self, text):
        for path in (self.host_file, self.victim_disk, '/etc/passwd',
                     self.deployment.state_dir):
            self.assertNotIn(path, text)

    def assert_nothing_left(self, server_id):
        self.assertRaises(libvirt.libvirtError, self.libvirt.lookupByName,
                          'instance-%s' % server_id)
        self.assertFalse(os.path.exists(os.path.join(
            self.deployment.state_dir, 'instances', server_id)))

    def boot_through_api(self, crafted, image_id):
        """POST /servers; returns ('400', message) or (server id, None)."""
        resp = self.client.request('POST', '/servers', json={'server': {
            'name': 'crafted', 'imageRef': image_id, 'flavorRef': '2',
            'networks': 'none'}})
        if resp.status_code == 400:
            return '400', resp.json()['badRequest']['message']
        self.assertEqual(202, resp.status_code, resp.text)
        server_id = resp.json()['server']['id']
        self.addCleanup(self._delete_server, server_id)
        return server_id, None

    def spawn_in_driver(self, crafted):
        """The file straight into the driver's spawn, as declared."""
        conf = ns_conf.new_conf([])
        conf.set_override('instances_path', os.path.join(
            self.deployment.state_dir, 'instances'))
        conf.set_override('connection_uri', self.stack.get(
            'LIBVIRT_URI', 'qemu:///system'), group='libvirt')
        driver = libvirt_driver.LibvirtDriver(
            conf, _FileImageAPI(crafted.path))
        instance = {'uuid': str(uuid.uuid4()), 'project_id': self.project,
                    'user_id': self.user, 'system_metadata': {},
                    'flavor': {'memory_mb': 128, 'vcpus': 1, 'root_gb': 1}}
        meta = {'id': 'crafted-%s' % crafted.name,
                'disk_format': crafted.disk_format,
                'container_format': 'bare',
                'kernel_id': self.base_image['kernel_id'],
                'ramdisk_id': self.base_image['ramdisk_id']}
        expected = (exception.FlavorDiskSmallerThanImage
                    if crafted.refused_by == 'size'
                    else exception.ImageUnacceptable)
        with self.assertRaises(expected) as cm:
            driver.spawn(None, instance, meta)
        self.assert_no_host_path(cm.exception.format_message())
        self.assert_nothing_left(instance['uuid'])
        return cm.exception.format_message()

    def scan_for_markers(self):
        """Files under instances/ holding a marker (the victim's own disk
        may hold its marker)."""
        found = []
        victim_dir = os.path.dirname(self.victim_disk)
        top = os.path.join(self.deployment.state_dir, 'instances')
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(dirpath, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                with open(path, 'rb') as f:
                    data = f.read()
                if HOST_MARKER in data:
                    found.append(('host', path))
                if VICTIM_MARKER in data and not path.startswith(
                        victim_dir + os.sep):
                    found.append(('victim', path))
        return found

    # -- the probe -------------------------------------------------------------

    def test_crafted_images_refused_and_nothing_read(self):
        started = time.monotonic()
        self.assertGreaterEqual(len(self.images), 20)
        rows = []
        pending = {}
        for crafted in self.images:
            image_id, refusal = self.upload(crafted, crafted.disk_format)
            row = {'name': crafted.name, 'declared': crafted.disk_format,
                   'glance': 'accepted' if refusal is None else 'refused'}
            if refusal is not None and crafted.disk_format != 'raw':
                # Glance refused the declared format: the same bytes as raw.
                image_id, refusal = self.upload(crafted, 'raw')
                row['glance'] += ', as raw %s' % (
                    'accepted' if refusal is None else 'refused')
            if refusal is not None:
                image_id = self.plant(crafted)
                row['glance'] += ', planted behind Glance'
            server_id, message = self.boot_through_api(crafted, image_id)
            if server_id == '400':
                self.assert_no_host_path(message)
                row['api'] = '400 %s' % message[:70]
            else:
                pending[server_id] = (row, 'api')
            if crafted.refused_by == 'size':
                # The same image with no sizes known to Glance: the
                # compute's check after the download must catch it.
                server_id, message = self.boot_through_api(
                    crafted, self.plant(crafted))
                self.assertNotEqual('400', server_id, message)
                pending[server_id] = (row, 'api, sizes unknown to Glance')
            row['driver'] = self.spawn_in_driver(crafted)[:80]
            rows.append(row)

        deadline = time.monotonic() + 120
        for server_id, (row, key) in pending.items():
            server = self.client.wait_for_server(
                server_id, status='ERROR',
                timeout=max(1, deadline - time.monotonic()))
            fault = server.get('fault') or {}
            self.assertTrue(fault.get('message'), server)
            self.assertTrue(
                'unacceptable' in fault['message'] or
                "Flavor's disk is too small" in fault['message'],
                fault)
            self.assert_no_host_path(repr(fault))
            self.assert_nothing_left(server_id)
            row[key] = 'ERROR fault: %s' % fault['message'][:70]

        for row in rows:
            print('%-50s %-5s glance: %s' % (row.pop('name'),
                                             row.pop('declared'),
                                             row.pop('glance')))
            for key, value in sorted(row.items()):
                print('%s %s: %s' % (' ' * 50, key, value))
        print('%d crafted images, all refused; %.1f s' % (
            len(rows), time.monotonic() - started))
        # The refusals came from our checks, and nothing read the files.
        self.assertEqual([], self.scan_for_markers())
        self.assertEqual(self.host_atime, os.stat(self.host_file).st_atime,
                         'something read the host file')
        # The victim was never touched: still running.
        self.assertEqual('ACTIVE', self.client.get_server(
            self.victim['id'])['status'])

        # Control: the same checks do see a read. qemu-img, with nothing
        # inspecting first, copies the host file through the data-file
        # image into a file under instances/.
        leaky = [c for c in self.images
                 if c.name == 'qcow2-data-file-host-file'][0]
        out = os.path.join(self.deployment.state_dir, 'instances',
                           'control-%s.raw' % uuid.uuid4().hex)
        self.addCleanup(os.unlink, out)
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                        leaky.path, out], check=True)
        self.assertIn(('host', out), self.scan_for_markers())
        self.assertNotEqual(self.host_atime,
                            os.stat(self.host_file).st_atime)
