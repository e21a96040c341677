"""Rebuild of a volume-backed server with another image (microversion 2.93)
on the real stack: Keystone, Glance, Cinder on Ceph RBD (os-reimage at
volume API 3.68), libvirt/QEMU.

The tiny guest boots from a Cinder volume made from one image, with a data
volume, and counts ticks in sector 1 of both. The other image is the same
filesystem with ``tick 4242424`` written in its sector 1: a guest booted
from a root volume re-imaged with it prints ``last tick 4242424`` and
counts on from there, which no other disk could make it do.
"""

import os
import tempfile
import uuid

from tests.functional import e2e_base
from tests.functional import test_volume_backed_e2e

LAST_TICK = r'nova-snapshot-guest: last tick (\d+|none)'
MARK = 4242424


class RebuildReimageTest(test_volume_backed_e2e.VolumeBackedTestBase):

    guest_agent = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.marked_image = cls._upload_marked_image()

    @classmethod
    def release_project(cls):
        try:
            cls.image_api.delete(cls.ctx, cls.marked_image['id'])
        except Exception:
            pass
        super().release_project()

    @classmethod
    def _upload_marked_image(cls):
        """The root image's filesystem as a raw image with ``tick MARK``
        in its sector 1."""
        with tempfile.TemporaryDirectory() as tmp:
            raw = os.path.join(tmp, 'marked.raw')
            e2e_base.qcow2_to_raw(os.path.join(cls.guest_dir,
                                               'disk-ext4.qcow2'), raw)
            with open(raw, 'r+b') as disk:
                disk.seek(e2e_base.SECTOR)
                disk.write(('tick %d\n' % MARK).encode().ljust(
                    e2e_base.SECTOR, b'\0'))
            image = cls.image_api.create(cls.ctx, dict(
                name='e2e-marked-%s' % uuid.uuid4().hex[:6],
                disk_format='raw', container_format='bare',
                visibility='private',
                kernel_id=cls.base_image['kernel_id'],
                ramdisk_id=cls.base_image['ramdisk_id'],
                os_command_line=e2e_base.GUEST_COMMAND_LINE))
            with open(raw, 'rb') as data:
                cls.image_api.upload(cls.ctx, image['id'], data,
                                     size=os.path.getsize(raw))
        return cls.image_api.get(cls.ctx, image['id'])

    def test_root_volume_re_imaged_with_another_image(self):
        server = self.boot_from_volume('bfv-reimage')
        volumes = self.attached_volumes(server['id'])
        self.assertEqual(2, len(volumes))
        root_id = volumes['/dev/vda']
        self.assertEqual(self.vol_image['id'], self.volume_api.get(
            self.ctx, root_id)['volume_image_metadata']['image_id'])
        self.assertGreater(self.latest_tick(server['id']), 0)
        body = {'rebuild': {'imageRef': self.marked_image['id'],
                            'name': 'bfv-reimaged'}}

        # Before 2.93 the root volume is never re-imaged: Nova's 400.
        resp = self.client.action(server['id'], body, microversion='2.92')
        self.assertEqual(400, resp.status_code, resp.text)
        self.assertIn('Unable to rebuild with a different image for a '
                      'volume-backed server',
                      resp.json()['badRequest']['message'])

        resp = self.client.action(server['id'], body, microversion='2.93')
        self.assertEqual(202, resp.status_code, resp.text)
        self.assertEqual('REBUILD', resp.json()['server']['status'])
        self.assertEqual('', resp.json()['server']['image'])
        after = self.client.wait_for_server(server['id'], timeout=300)
        self.assertEqual('bfv-reimaged', after['name'])
        # The same volumes, at the same devices.
        self.assertEqual(volumes, self.attached_volumes(server['id']))
        volume = self.volume_api.get(self.ctx, root_id)
        self.assertEqual('in-use', volume['status'])
        self.assertEqual(self.marked_image['id'],
                         volume['volume_image_metadata']['image_id'])
        # The guest booted from the new image's contents on that volume and
        # counts on from its mark; the data volume was not touched (its
        # own tick, not the mark).
        match, _ = self.wait_for_console(server['id'], LAST_TICK,
                                         timeout=120)
        self.assertEqual(str(MARK), match.group(1))
        data_match, _ = self.wait_for_console(
            server['id'], r'nova-snapshot-guest: last tick vdb (\d+)')
        self.assertNotEqual(MARK, int(data_match.group(1)))
        self.assert_still_ticking(server['id'])
        self.assertGreater(self.latest_tick(server['id']), MARK)

        actions = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % server['id'],
            microversion='2.93').json()['instanceActions']
        self.assertEqual(['rebuild', 'create'],
                         [a['action'] for a in actions])
        # The guest's tick is in the root volume Ceph holds.
        tick, _ = self.rbd_tick(root_id)
        self.assertGreater(tick, MARK)
