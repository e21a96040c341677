"""tools/benchmark_control.py: the parts that need nothing running.

The benchmark itself runs against the real services and prints numbers
(doc/benchmarks.rst); these check how it counts them.
"""

import importlib.util
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'tools', 'benchmark_control.py')
spec = importlib.util.spec_from_file_location('benchmark_control_tool', TOOL)
bc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bc)


class PercentileTest(unittest.TestCase):

    def test_nearest_rank(self):
        values = list(range(1, 101))
        self.assertEqual(50, bc.percentile(values, 0.50))
        self.assertEqual(95, bc.percentile(values, 0.95))
        self.assertEqual(99, bc.percentile(values, 0.99))
        self.assertEqual(100, bc.percentile(values, 1.0))
        self.assertEqual(7, bc.percentile([7], 0.99))
        self.assertIsNone(bc.percentile([], 0.5))


class RecorderTest(unittest.TestCase):

    def test_statuses_errors_and_latencies(self):
        rec = bc.Recorder('t')
        rec.start()
        rec.add('op', 202, 0.1)
        rec.add('op', 202, 0.3)
        rec.add('op', 409, 0.05)
        rec.add('op', None, 1.0, 'ConnectionResetError')
        rec.stop()
        s = rec.summary('op')
        self.assertEqual(4, s['requests'])
        self.assertEqual(2, s['ok'])
        self.assertEqual({'409': 1}, s['non_2xx'])
        self.assertEqual({'ConnectionResetError': 1}, s['connection_errors'])
        # Only 2xx answers make latencies.
        self.assertEqual(300.0, s['max_ms'])
        self.assertEqual(100.0, s['p50_ms'])

    def test_throughput_counts_answers_within_the_phase(self):
        rec = bc.Recorder('t')
        rec.start()
        rec.add('op', 200, 0.01)
        end = time.monotonic()
        time.sleep(0.02)
        rec.add('op', 200, 0.01)     # in flight at the end: latency only
        rec.stop(at=end)
        s = rec.summary('op')
        self.assertEqual(2, s['ok'])
        self.assertAlmostEqual(1 / rec.wall(), s['per_second'])


class HTTPTest(unittest.TestCase):

    def test_a_reset_connection_is_recorded_by_kind(self):
        server = socket.socket()
        server.bind(('127.0.0.1', 0))
        server.listen(1)
        port = server.getsockname()[1]

        def reset_one():
            conn, _ = server.accept()
            conn.recv(1024)
            # SO_LINGER 0: close sends a RST, as an overflowing server does.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b'\x01\x00\x00\x00\x00\x00\x00\x00')
            conn.close()
        thread = threading.Thread(target=reset_one)
        thread.start()
        rec = bc.Recorder('t')
        rec.start()
        self.assertEqual((None, None),
                         bc.HTTP(port, {}).timed(rec, 'op', 'GET', '/'))
        thread.join(5)
        server.close()
        self.assertEqual(1, sum(rec.errors['op'].values()))
        self.assertIn(list(rec.errors['op'])[0],
                      ('ConnectionResetError', 'RemoteDisconnected'))


class GlanceLogTest(unittest.TestCase):

    def test_counts_new_requests_by_shape(self):
        stack_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, stack_dir)
        os.makedirs(os.path.join(stack_dir, 'logs'))
        path = os.path.join(stack_dir, 'logs', 'glance-uwsgi.log')
        line = ('[pid: 1|app: 0|req: 1/1] 127.0.0.1 () {42 vars in 683 '
                'bytes} [Fri Nov 27 17:45:48 2026] %s %s => generated 0 '
                'bytes in %d msecs (HTTP/1.1 201) 6 headers\n')
        with open(path, 'w') as log:
            log.write(line % ('POST', '/v2/images', 500))
        glance_log = bc.GlanceLog({'STACK_DIR': stack_dir})
        with open(path, 'a') as log:
            log.write(line % ('POST', '/v2/images', 100))
            log.write(line % ('PATCH', '/v2/images/'
                              '0d3a1962-e524-4ef9-9d39-00d3de16f886', 30))
            log.write(line % ('PATCH', '/v2/images/'
                              '1307d13b-e083-4665-aa4a-8208c768bb03', 20))
            log.write('some other line\n')
        self.assertEqual(
            {'POST /v2/images': {'requests': 1, 'worker_ms': 100},
             'PATCH /v2/images/{id}': {'requests': 2, 'worker_ms': 50}},
            glance_log.delta())


class RSSTest(unittest.TestCase):

    def test_growth_after_warmup(self):
        samples = [(float(i), 'mixed', 100 * 1024) for i in range(10)]
        samples[-1] = (9.0, 'mixed', 120 * 1024)
        samples.insert(0, (0.0, 'precreate', 10))
        verdict = bc.rss_verdict(samples, 'mixed')
        self.assertEqual(0.2, verdict['growth_after_warmup'])
        self.assertEqual(120.0, verdict['end_mib'])
        self.assertIsNone(bc.rss_verdict(samples[:3], 'mixed'))

    def test_own_process_is_measured(self):
        self.assertGreater(bc.vm_rss_kib(os.getpid()), 0)


if __name__ == '__main__':
    unittest.main()
