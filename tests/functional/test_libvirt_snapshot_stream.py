"""The streamed live path (``live_snapshot_method = stream``) on real libvirt.

Same throwaway ticking guest and file-backed fake Glance as
test_libvirt_snapshot; the inherited live, upload-failure and raw tests run
again with streaming switched on (raw falls back to push), and the tests
here check what is particular to streaming: the backup job is still
running while Glance receives data, nothing disk-sized is written locally,
the job and its scratch files are gone afterwards, and the upload is a
valid qcow2 equal to the disk at one instant.

Fails (never skips) when libvirtd or the guest is missing.
"""

import os
import subprocess
import unittest

import libvirt

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import snapshot_stream
from tests.functional import test_libvirt_snapshot as base


class WatchingImageAPI(base.FakeImageAPI):
    """Records, at every chunk, whether the backup job is still running and
    how much the scratch directory holds."""

    def __init__(self, path, domain, snapdir):
        super().__init__(path)
        self.domain = domain
        self.snapdir = snapdir
        self.job_types = []
        self.scratch_bytes = []

    def _scratch_bytes(self):
        total = 0
        for top, _, files in os.walk(self.snapdir):
            for name in files:
                try:
                    total += os.stat(os.path.join(top, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
        return total

    def upload(self, context, image_id, data, size=None):
        def watched():
            for chunk in data:
                self.job_types.append(self.domain.jobStats(0).get('type'))
                self.scratch_bytes.append(self._scratch_bytes())
                yield chunk
        super().upload(context, image_id, watched(), size=size)


class LibvirtSnapshotStreamTest(base.LibvirtSnapshotTest):

    # Not about the live capture method; covered by the base module.
    test_suspend_path_restores_running_guest = None
    test_cold_path_stopped_guest = None
    test_upload_failure_suspend = None
    test_repair_after_crash_in_suspend = None
    test_repair_without_marker_leaves_guest_alone = None

    def setUp(self):
        super().setUp()
        self.conf.set_override('live_snapshot_method', 'stream',
                               group='libvirt')

    def assert_no_job(self):
        self.assertEqual(libvirt.VIR_DOMAIN_JOB_NONE,
                         self.domain.jobStats(0).get('type'))

    def qemu_img_check(self):
        result = subprocess.run(['qemu-img', 'check', '-f', 'qcow2',
                                 self.upload_path],
                                capture_output=True, text=True)
        self.assertEqual(0, result.returncode,
                         result.stdout + result.stderr)

    def test_stream_never_pauses_and_equals_one_instant(self):
        api = WatchingImageAPI(self.upload_path, self.domain, self.snapdir)
        before = base.tick_of(self.disk)
        with base.StatePoller(self.uri, self.name) as poller:
            facts, image_api = self.take(api)
        after = base.tick_of(self.disk)
        self.report('stream', facts)
        self.assertEqual('live', facts['method'])
        self.assertEqual('stream', facts['live_method'])
        self.assertEqual(0.0, facts['guest_paused_seconds'])
        self.assertGreater(len(poller.states), 5)
        self.assertEqual({libvirt.VIR_DOMAIN_RUNNING}, set(poller.states))
        # The data came straight from the running job...
        self.assertGreater(len(api.job_types), 10)
        self.assertNotIn(libvirt.VIR_DOMAIN_JOB_NONE, api.job_types)
        # ...and no local copy of the 64 MiB was made on the way.
        self.assertLess(max(api.scratch_bytes), 16 * base.MiB)
        self.assert_no_job()
        self.qemu_img_check()
        captured = base.tick_of(self.upload_path)
        self.assertIsNotNone(captured)
        self.assertLessEqual(before, captured)
        self.assertLessEqual(captured, after)
        self.assert_compact_capture(facts, image_api)
        self.assertEqual(['image_pending_upload', 'image_uploading'],
                         [s for s, _ in self.task_states])
        # One pass: progress starts low and climbs with the bytes sent.
        self.assertLess(self.progress[0], 10)
        self.assertEqual(sorted(self.progress), self.progress)
        self.assertGreater(len(self.progress), 10)
        self.assertEqual(100, self.progress[-1])
        self.assert_no_leftovers()
        self.reference_compare(captured)

    def test_stream_upload_failure_ends_job(self):
        api = base.FakeImageAPI(self.upload_path, fail_after=2)
        self.assertRaises(exception.NovaSnapshotException, self.take, api)
        self.assert_no_job()
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.domain.state()[0])
        self.assert_no_leftovers()
        self.wait_ticking()

    def test_export_listing_and_extents(self):
        # The export name libvirt reports, and the map read through it.
        os.makedirs(self.snapdir, exist_ok=True)
        scratch = os.path.join(self.snapdir, 'probe')
        os.makedirs(scratch)
        self.addCleanup(lambda: os.path.isdir(scratch) and os.rmdir(scratch))
        stream = snapshot_stream.LiveStream(self.domain, 'vda', scratch)
        try:
            self.assertEqual(1024 * base.MiB, stream.layout.virtual_size)
            self.assertGreaterEqual(stream.data_bytes, base.DATA_BYTES)
            self.assertLess(stream.data_bytes, base.DATA_BYTES + 4 * base.MiB)
            self.assertTrue(os.path.exists(stream.socket_path))
        finally:
            stream.close()
        self.assert_no_job()
        self.assertEqual([], os.listdir(scratch))


if __name__ == '__main__':
    unittest.main()
