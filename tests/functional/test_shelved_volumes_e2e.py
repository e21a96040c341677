"""Attach and detach of a volume while the server is SHELVED_OFFLOADED
(microversion 2.20) on the real stack: Keystone, Cinder on Ceph RBD,
libvirt/QEMU.

A volume-backed server is shelved (offloaded at once: no host, no guest).
A blank volume attached then is in use in Cinder but connected to no host;
the unshelve connects it, and the guest, which writes its tick to a second
disk when it has one, finds it as vdb and writes to it. Shelved again, the
volume is detached with no host and becomes available.
"""

import time

from tests.functional import test_volume_backed_e2e


class ShelvedOffloadedVolumesTest(
        test_volume_backed_e2e.VolumeBackedTestBase):

    guest_agent = False

    def _offload(self, server_id):
        resp = self.client.action(server_id, {'shelve': None})
        self.assertEqual(202, resp.status_code, resp.text)
        return self.client.wait_for_server(
            server_id, status='SHELVED_OFFLOADED', timeout=300)

    def _attachments(self, server_id):
        return {a['volumeId']: a for a in self.client.request(
            'GET', '/servers/%s/os-volume_attachments' % server_id,
            microversion='2.79').json()['volumeAttachments']}

    def test_attach_while_offloaded_then_unshelve_then_detach(self):
        server = self.boot_from_volume('bfv-offloaded-attach',
                                       with_data=False)
        server_id = server['id']
        root_id = list(self.attached_volumes(server_id).values())[0]
        self._offload(server_id)
        volume = self.volume_api.create(self.ctx, 1, 'offloaded-data')
        self.volume_api.wait_for_volume(self.ctx, volume['id'], timeout=120)
        url = '/servers/%s/os-volume_attachments' % server_id
        body = {'volumeAttachment': {'volumeId': volume['id']}}

        resp = self.client.request('POST', url, microversion='2.19',
                                   json=body)
        self.assertEqual(409, resp.status_code, resp.text)
        self.assertIn('shelved_offloaded',
                      resp.json()['conflictingRequest']['message'])

        resp = self.client.request('POST', url, microversion='2.20',
                                   json=body)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual('/dev/vdb', resp.json()['volumeAttachment']['device'])
        attached = self.volume_api.get(self.ctx, volume['id'])
        self.assertEqual('in-use', attached['status'])
        # Held for the server, connected to no host.
        self.assertFalse([a for a in attached.get('attachments') or []
                          if a.get('host_name')], attached)
        self.assertEqual({root_id, volume['id']},
                         set(self._attachments(server_id)))

        resp = self.client.action(server_id, {'unshelve': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server_id, timeout=300)
        # The guest found a blank second disk at boot and ticks on it.
        self.wait_for_console(server_id,
                              r'nova-snapshot-guest: last tick vdb none',
                              timeout=120)
        self.assert_still_ticking(server_id)
        time.sleep(2)
        tick, _ = self.rbd_tick(volume['id'])
        self.assertIsNotNone(tick)
        self.assertGreater(tick, 0)
        self.assertEqual('in-use', self.volume_api.get(
            self.ctx, volume['id'])['status'])

        self._offload(server_id)
        resp = self.client.request('DELETE', '%s/%s' % (url, volume['id']),
                                   microversion='2.20')
        self.assertEqual(202, resp.status_code, resp.text)
        self.assertEqual({root_id}, set(self._attachments(server_id)))
        self.volume_api.wait_for_volume(self.ctx, volume['id'], timeout=60)
        # The root volume stays the server's.
        self.assertIn(self.volume_api.get(self.ctx, root_id)['status'],
                      ('reserved', 'in-use'))
