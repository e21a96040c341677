"""Soft delete end to end: API -> RabbitMQ -> compute -> libvirt/QEMU, with
``[DEFAULT] reclaim_instance_interval`` set, as a Keystone user.

The tiny guest counts ``tick N`` in sector 1 of its disk and prints
``last tick N`` when it boots: a restored guest shows a new boot on its
console that found the tick its disk held when it was powered off.
"""

import os
import re
import time

import libvirt
import psycopg2

from nova_snapshot import fault_injection
from tests.functional import e2e_base

LAST_TICK = r'nova-snapshot-guest: last tick (\d+|none)'
# Short, so the reclaim comes within the test; the compute service checks
# every interval, so a server goes between one and two intervals after its
# soft delete.
RECLAIM_INTERVAL = 30


class SoftDeleteTest(e2e_base.EndToEndTestCase):

    extra_conf = {'DEFAULT': {'reclaim_instance_interval': RECLAIM_INTERVAL}}

    def _boot(self):
        server = self.client.create_server(
            'soft', self.base_image['id'], flavor_ref='2')
        # A DELETE only soft-deletes here: clean up with forceDelete.
        self.addCleanup(self._force_delete, server['id'])
        server = self.client.wait_for_server(server['id'], timeout=120)
        self.wait_for_console(server['id'], r'nova-snapshot-guest: tick \d+')
        return server

    def _force_delete(self, server_id):
        self.client.action(server_id, {'forceDelete': None})
        try:
            self.client.wait_for_server_gone(server_id, timeout=60)
        except RuntimeError:
            pass

    def _boots(self, server_id):
        return re.findall(LAST_TICK, self.client.console(server_id))

    def _soft_delete(self, server_id):
        resp = self.client.delete_server(server_id)
        self.assertEqual(204, resp.status_code, resp.text)
        server = self.client.wait_for_server(server_id,
                                             status='SOFT_DELETED',
                                             timeout=120)
        self.assertEqual('soft-delete', server['OS-EXT-STS:vm_state'])
        return server

    def _row(self, server_id):
        conn = psycopg2.connect(
            'host=127.0.0.1 user=postgres dbname=%s' % self.db_name)
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT deleted, vm_state, claimed_memory_mb '
                            'FROM instances WHERE uuid = %s', (server_id,))
                return cur.fetchone()
        finally:
            conn.close()

    def test_soft_delete_restore_and_reclaim(self):
        server = self._boot()
        server_id = server['id']
        disk = self.instance_disk(server_id)
        # 1. DELETE soft-deletes: the guest is powered off, kept.
        self._soft_delete(server_id)
        domain = self.domain(server_id)
        self.assertFalse(domain.isActive())
        self.assertTrue(os.path.exists(disk))
        raw = os.path.join(self.deployment.state_dir, 'soft.raw')
        e2e_base.qcow2_to_raw(disk, raw)
        with open(raw, 'rb') as handle:
            kept_tick = e2e_base.read_tick(handle.read())
        os.unlink(raw)
        self.assertIsNotNone(kept_tick)
        # Not in the live list.
        listed = self.client.request('GET', '/servers').json()['servers']
        self.assertNotIn(server_id, [s['id'] for s in listed])
        # Other actions are refused while it is soft-deleted.
        resp = self.client.action(server_id, {'os-start': None})
        self.assertEqual(409, resp.status_code, resp.text)

        # 2. restore: the same guest runs again on its intact disk.
        boots = len(self._boots(server_id))
        resp = self.client.action(server_id, {'restore': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server_id, timeout=120)
        deadline = time.monotonic() + 120
        while len(self._boots(server_id)) <= boots:
            self.assertLess(time.monotonic(), deadline,
                            'the restored guest did not boot')
            time.sleep(0.3)
        self.assertEqual(str(kept_tick), self._boots(server_id)[boots])
        self.assert_still_ticking(server_id)
        self.assertTrue(self.domain(server_id).isActive())

        # 3. soft-delete again and let the periodic reclaim remove it.
        self._soft_delete(server_id)
        started = time.monotonic()
        self.client.wait_for_server_gone(server_id,
                                         timeout=2 * RECLAIM_INTERVAL + 60)
        waited = time.monotonic() - started
        self.assertRaises(libvirt.libvirtError, self.libvirt.lookupByName,
                          'instance-%s' % server_id)
        self.assertFalse(os.path.exists(os.path.dirname(disk)))
        deleted, vm_state, claimed = self._row(server_id)
        self.assertNotEqual(0, deleted)
        self.assertEqual(('deleted', 0), (vm_state, claimed))
        # Its actions stay readable from 2.21 (404 before).
        path = '/servers/%s/os-instance-actions' % server_id
        self.assertEqual(404, self.client.request(
            'GET', path, microversion='2.20').status_code)
        resp = self.client.request('GET', path, microversion='2.21')
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual(
            ['delete', 'restore', 'delete', 'create'],
            [a['action'] for a in resp.json()['instanceActions']])
        print('reclaimed %.1f s after the second soft delete '
              '(interval %d s)' % (waited, RECLAIM_INTERVAL))

    def test_force_delete_of_a_soft_deleted_server(self):
        server = self._boot()
        self._soft_delete(server['id'])
        resp = self.client.action(server['id'], {'forceDelete': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server_gone(server['id'], timeout=60)
        self.assertRaises(libvirt.libvirtError, self.libvirt.lookupByName,
                          'instance-%s' % server['id'])

    def _restart_compute_armed(self, point):
        """The compute service again, with the kill point ``point``
        armed (the fault campaign's mechanism)."""
        host = self.hosts[0]
        self.deployment.stop_compute(host)
        os.environ[fault_injection.ENV_VAR] = point
        try:
            proc = self.deployment.start_compute(host)
        finally:
            os.environ.pop(fault_injection.ENV_VAR, None)
        self.deployment.wait_for_compute(host, 60)
        return proc

    def _killed_then_restarted(self, proc, server_id, task_state):
        proc.wait(120)
        self.assertEqual(-9, proc.returncode)
        # Killed with the task state the API set: nothing else moves it.
        self.assertEqual(task_state, self.client.get_server(server_id)[
            'OS-EXT-STS:task_state'])
        self.deployment.start_compute(self.hosts[0])
        self.deployment.wait_for_compute(self.hosts[0], 60)

    def test_compute_killed_mid_soft_delete_and_mid_restore(self):
        server = self._boot()
        server_id = server['id']
        proc = self._restart_compute_armed('soft_delete.started')
        resp = self.client.delete_server(server_id)
        self.assertEqual(204, resp.status_code, resp.text)
        self._killed_then_restarted(proc, server_id, 'soft-deleting')
        # The start-up repair finishes the soft delete.
        self.client.wait_for_server(server_id, status='SOFT_DELETED',
                                    timeout=120)
        self.assertFalse(self.domain(server_id).isActive())

        proc = self._restart_compute_armed('restore.started')
        resp = self.client.action(server_id, {'restore': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self._killed_then_restarted(proc, server_id, 'restoring')
        # ... and the restore: the guest runs and counts again.
        self.client.wait_for_server(server_id, timeout=120)
        self.assertTrue(self.domain(server_id).isActive())
        self.assert_still_ticking(server_id, timeout=60)
        resp = self.client.request(
            'GET', '/servers/%s/os-instance-actions' % server_id)
        self.assertEqual(['restore', 'delete', 'create'], [
            a['action'] for a in resp.json()['instanceActions']])
