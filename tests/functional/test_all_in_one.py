"""The embedded single-machine mode: ``nova-snapshot-all``.

API and compute service in one process, RPC over oslo.messaging's in-memory
transport (no ``transport_url``), state in SQLite; still real libvirt/QEMU
and a real Glance. The live snapshot must restore the captured tick.

It stays on the development set-up (noauth API, the noauth Glance): the
single-machine mode is what a developer runs without a Keystone.
"""

import re

from tests.functional import e2e_base


class AllInOneTest(e2e_base.EndToEndTestCase):

    all_in_one = True
    keystone = False

    def test_boot_snapshot_restore(self):
        conf_text = open(self.deployment.config_files['all']).read()
        self.assertNotIn('transport_url', conf_text)
        self.assertIn('sqlite:', conf_text)
        server = self.boot('aio-source')
        image = self.snapshot_and_wait(server['id'], 'aio-snap')
        tick = e2e_base.read_tick(self.download_raw(image['id']))
        self.assertIsNotNone(tick)
        restored = self.boot('aio-restored', image_id=image['id'],
                             wait_for_ticks=False)
        match, _ = self.wait_for_console(
            restored['id'], r'nova-snapshot-guest: last tick (\d+|none)')
        self.assertEqual(str(tick), match.group(1))
        self.assertTrue(re.match(r'\d+', match.group(1)))
