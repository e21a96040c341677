"""createBackup end to end, as the Keystone user ``demo``: API -> RabbitMQ
-> compute -> libvirt/QEMU (the live snapshot path) -> the Keystone-mode
Glance, then the rotation against the real Glance's listing.

Three daily backups with rotation 2 leave exactly the two newest (the
first one is deleted); rotation 0 deletes every daily backup of the
server, the new one too, and no other type's; the unmodified ``openstack
server backup create --wait`` of ``.stack/clients-venv`` works.
"""

import json
import os
import subprocess
import time
import uuid

from nova_snapshot import exception
from tests.functional import e2e_base
from tests.functional.fixtures import keystone
from tests.functional import test_volume_backed_e2e


class BackupRotationTest(e2e_base.EndToEndTestCase):

    def setUp(self):
        super().setUp()
        self.made = []
        self.addCleanup(self._delete_made)

    def _delete_made(self):
        for image_id in self.made:
            self._delete_image(image_id)

    def backup(self, server_id, name, rotation, backup_type='daily'):
        response = self.client.action(server_id, {'createBackup': {
            'name': name, 'backup_type': backup_type,
            'rotation': rotation}}, microversion='2.45')
        self.assertEqual(202, response.status_code, response.text)
        image_id = response.json()['image_id']
        self.made.append(image_id)
        return image_id

    def backups(self, server_id, backup_type='daily'):
        """The ids of the server's backups of the type in Glance, as a
        set: Glance shows created_at to the second, so two backups made
        within one second have no order a test can read (the rotation
        itself orders by Glance's own newest-first list)."""
        images = self.image_api.list(
            self.ctx, instance_uuid=server_id, image_type='backup',
            backup_type=backup_type)
        return {i['id'] for i in images}

    def wait_for_backups(self, server_id, expected, backup_type='daily',
                         timeout=120):
        """Wait until the rotation leaves exactly ``expected``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.backups(server_id, backup_type)
            if found == set(expected):
                return
            if time.monotonic() > deadline:
                self.fail('backups of %s are %s, not %s' % (
                    server_id, found, expected))
            time.sleep(0.5)

    def backup_and_wait(self, server_id, name, rotation, expected_after,
                        backup_type='daily'):
        image_id = self.backup(server_id, name, rotation, backup_type)
        self.client.wait_for_server(server_id, task_state=None, timeout=180)
        expected = [image_id if e == 'new' else e for e in expected_after]
        self.wait_for_backups(server_id, expected, backup_type)
        return image_id

    def test_rotation_keeps_the_newest_then_zero_deletes_them_all(self):
        server = self.boot('backup-source')
        sid = server['id']
        first = self.backup_and_wait(sid, 'daily-1', 2, ['new'])
        image = self.image_api.get(self.ctx, first)
        self.assertEqual('active', image['status'])
        self.assertEqual('backup', image['image_type'])
        self.assertEqual('daily', image['backup_type'])
        self.assertEqual(sid, image['instance_uuid'])
        self.assertEqual(self.project, image['owner'])
        self.assertEqual('qcow2', image['disk_format'])
        # The live path: the guest kept running through each backup.
        self.assertEqual('ACTIVE', self.client.get_server(sid)['status'])

        second = self.backup_and_wait(sid, 'daily-2', 2, [first, 'new'])
        third = self.backup_and_wait(sid, 'daily-3', 2, [second, 'new'])
        self.assertEqual({second, third}, self.backups(sid))
        self.assertRaises(exception.ImageNotFound, self.image_api.get,
                          self.ctx, first)
        # The backup is a bootable snapshot of the running guest.
        tick = e2e_base.read_tick(self.download_raw(third))
        self.assertIsNotNone(tick)

        # Another type is a rotation of its own.
        weekly = self.backup_and_wait(sid, 'weekly-1', 1, ['new'],
                                      backup_type='weekly')
        self.backup_and_wait(sid, 'daily-4', 0, [])
        self.assertEqual({weekly}, self.backups(sid, 'weekly'))
        self.assertEqual('ACTIVE', self.client.get_server(sid)['status'])
        self.assert_still_ticking(sid)

        actions = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % sid).json()
        self.assertEqual(
            ['createBackup'] * 5,
            [a['action'] for a in actions['instanceActions']
             if a['action'] != 'create'])

    def test_openstack_server_backup_create_wait(self):
        server = self.boot('osc-backup', wait_for_ticks=False)
        env = keystone.clients_env(self.stack, 'demo',
                                   self.deployment.endpoint + '/v2.1')
        self.addCleanup(os.unlink, env['OS_CLIENT_CONFIG_FILE'])
        name = 'osc-backup-%s' % uuid.uuid4().hex[:6]
        argv = ['openstack', 'server', 'backup', 'create', '--name', name,
                '--type', 'daily', '--rotate', '2', '--wait', '-f', 'json',
                server['id']]
        result = subprocess.run(argv, env=env, capture_output=True,
                                text=True, timeout=300)
        self.assertEqual(0, result.returncode,
                         '%s\n%s' % (result.stdout, result.stderr))
        image = json.loads(result.stdout)
        self.made.append(image['id'])
        self.assertEqual(name, image['name'])
        # The client prints the image as it found it before waiting; it
        # returned only once Glance said active.
        stored = self.image_api.get(self.ctx, image['id'])
        self.assertEqual('active', stored['status'])
        self.assertEqual(('backup', 'daily', server['id']),
                         (stored['image_type'], stored['backup_type'],
                          stored['instance_uuid']))


class VolumeBackedBackupTest(test_volume_backed_e2e.VolumeBackedTestBase):
    """Nova backs up image-backed servers only: a volume-backed server is
    a 400, with no image made and no state taken."""

    guest_agent = False

    def test_volume_backed_server_is_refused(self):
        server = self.boot_from_volume('bfv-backup', with_data=False)
        before = {i['id'] for i in self.image_api.list(
            self.ctx, instance_uuid=server['id'])}
        response = self.client.action(server['id'], {'createBackup': {
            'name': 'no', 'backup_type': 'daily', 'rotation': 1}},
            microversion='2.45')
        self.assertEqual(400, response.status_code, response.text)
        self.assertEqual(
            'Backup is not supported for volume-backed instances.',
            response.json()['badRequest']['message'])
        after = self.client.get_server(server['id'])
        self.assertEqual('ACTIVE', after['status'])
        self.assertIsNone(after['OS-EXT-STS:task_state'])
        self.assertEqual(before, {i['id'] for i in self.image_api.list(
            self.ctx, instance_uuid=server['id'])})
