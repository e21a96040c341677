"""A volume-backed createImage holds the server on the real stack (Ceph,
Cinder, libvirt with the guest agent): suspend, pause, stop and delete
sent while the call runs get a 409, and afterwards the server is ACTIVE,
running, thawed and free, and the image is active.

One server for all four actions, to stay fast: each round starts a
createImage, waits until the server shows task_state ``image_snapshot``
(the hold), sends the action, then waits for the createImage answer.
"""

import json
import threading
import time

import libvirt

from tests.functional import test_volume_backed_e2e

ACTIONS = (('suspend', {'suspend': None}), ('pause', {'pause': None}),
           ('stop', {'os-stop': None}), ('delete', None))


class VolumeBackedHoldTest(test_volume_backed_e2e.VolumeBackedTestBase):

    def create_image_in_thread(self, server_id, name):
        result = {}

        def run():
            result['response'] = self.client.action(
                server_id, {'createImage': {'name': name}})
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, result

    def wait_for_hold(self, server_id, thread, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and thread.is_alive():
            server = self.client.get_server(server_id)
            if server.get('OS-EXT-STS:task_state') == 'image_snapshot':
                return True
            time.sleep(0.02)
        return False

    def test_actions_during_the_cut_are_409(self):
        server = self.boot_from_volume('bfv-hold', with_data=False)
        self.wait_for_agent(server['id'])
        for name, body in ACTIONS:
            thread, result = self.create_image_in_thread(
                server['id'], 'hold-%s' % name)
            self.assertTrue(self.wait_for_hold(server['id'], thread),
                            'the hold was not seen before %s' % name)
            if body is None:
                resp = self.client.request('DELETE',
                                           '/servers/%s' % server['id'])
            else:
                resp = self.client.action(server['id'], body)
            self.assertEqual(409, resp.status_code, resp.text)
            self.assertIn('conflictingRequest', resp.json())
            thread.join(300)
            created = result['response']
            self.assertEqual(202, created.status_code, created.text)
            image_id = (created.json().get('image_id') if created.content
                        else created.headers['Location'].rsplit('/', 1)[-1])
            self.addCleanup(self._delete_image, image_id)
            image = self.image_api.get(self.ctx, image_id)
            self.assertEqual('active', image['status'])
            for bdm in json.loads(
                    image['block_device_mapping']):
                self.addCleanup(self._delete_snapshot, bdm['snapshot_id'])
            after = self.client.get_server(server['id'])
            self.assertEqual('ACTIVE', after['status'])
            self.assertIsNone(after['OS-EXT-STS:task_state'])
            self.assertEqual(libvirt.VIR_DOMAIN_RUNNING,
                             self.domain(server['id']).state()[0])
            self.assert_thawed(server['id'])
        # Free again: a pause goes through.
        resp = self.client.action(server['id'], {'pause': None})
        self.assertEqual(202, resp.status_code, resp.text)
        self.client.wait_for_server(server['id'], status='PAUSED')
