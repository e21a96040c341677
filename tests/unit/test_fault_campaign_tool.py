"""tools/fault_campaign.py: the parts that need nothing running.

The campaign itself runs against the real stack
(tests/functional/test_fault_campaign_quick.py, doc/reliability.rst);
these check how it plans trials and judges answers.
"""

import importlib.util
import io
import os
import tempfile
import unittest
from unittest import mock

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'tools', 'fault_campaign.py')
spec = importlib.util.spec_from_file_location('fault_campaign_tool', TOOL)
fc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fc)


def _resp(status, body):
    resp = mock.Mock(status_code=status, text=str(body))
    if isinstance(body, Exception):
        resp.json.side_effect = body
    else:
        resp.json.return_value = body
    return resp


class FaultBodyTest(unittest.TestCase):

    def test_nova_fault_passes(self):
        self.assertIsNone(fc.fault_problem(_resp(409, {
            'conflictingRequest': {'code': 409, 'message': 'busy'}})))

    def test_success_is_not_judged(self):
        self.assertIsNone(fc.fault_problem(_resp(202, ValueError())))

    def test_html_error_page_fails(self):
        self.assertIn('not JSON', fc.fault_problem(_resp(500,
                                                         ValueError())))

    def test_code_must_match_the_status(self):
        self.assertIn('code', fc.fault_problem(_resp(503, {
            'serviceUnavailable': {'code': 500, 'message': 'x'}})))

    def test_two_keys_fail(self):
        self.assertIn('one fault', fc.fault_problem(_resp(400, {
            'badRequest': {'code': 400, 'message': 'x'}, 'extra': 1})))


class PointsTest(unittest.TestCase):

    def test_points_found_in_source(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, 'a.py'), 'w') as src:
                src.write("x = 1\nfault_injection.point('volume.held')\n"
                          "    fault_injection.point(\"image.mid_upload\")\n")
            with open(os.path.join(tmp, 'b.txt'), 'w') as other:
                other.write("fault_injection.point('not.python')\n")
            found = fc.find_points(tmp)
        self.assertEqual({'volume.held', 'image.mid_upload'}, set(found))

    def test_prefix_says_the_paths(self):
        self.assertEqual(('volume-backed',), fc.point_paths('volume.held'))
        self.assertEqual(('suspend',), fc.point_paths('suspend.saved'))
        self.assertEqual(fc.IMAGE_PATHS, fc.point_paths('image.uploaded'))


class PlanTest(unittest.TestCase):

    def _plan(self, argv, points):
        args = fc.parse_args(argv + ['--seed', '1'])
        campaign = fc.Campaign.__new__(fc.Campaign)
        campaign.args = args
        campaign.rng = fc.random.Random(1)
        with mock.patch.object(fc, 'find_points', return_value=points), \
                mock.patch.object(fc, 'log'):
            return campaign.plan()

    def test_quick_is_one_per_kind_and_one_point_per_path(self):
        plan = self._plan(['--quick'], {'image.a': 'f', 'volume.b': 'f',
                                        'suspend.c': 'f'})
        kill_points = [(path, point) for kind, path, point in plan
                       if kind == 'kill-point']
        self.assertEqual({'live-stream', 'live-push', 'suspend',
                          'volume-backed'},
                         {path for path, _ in kill_points})
        self.assertEqual(len(fc.ALL_KINDS) - 1,
                         len([k for k, _, _ in plan if k != 'kill-point']))

    def test_counts_and_round_robin(self):
        plan = self._plan(['--kinds', 'pg-restart,race-stop', '--count',
                           'pg-restart=3', '--trials', '2'], {})
        self.assertEqual(['pg-restart', 'race-stop', 'pg-restart',
                          'race-stop', 'pg-restart'],
                         [kind for kind, _, _ in plan])

    def test_no_points_skips_the_kind(self):
        plan = self._plan(['--kinds', 'kill-point'], {})
        self.assertEqual([], plan)

    def test_unknown_kind_refused(self):
        with mock.patch('sys.stderr', io.StringIO()):
            self.assertRaises(SystemExit, fc.parse_args,
                              ['--kinds', 'kill-everything'])


class TableTest(unittest.TestCase):

    def test_violations_listed_with_their_trial(self):
        ok = fc.Trial('pg-restart', 1, 'live-stream')
        ok.recover_s, ok.in_flight = 2.0, True
        bad = fc.Trial('race-stop', 1, 'volume-backed')
        bad.violate('thawed', 'volume(1234abcd) filesystems frozen')
        out = io.StringIO()
        fc.print_table([ok, bad], out)
        text = out.getvalue()
        self.assertRegex(text, r'pg-restart\s+1\s+1\s+0\s+2.0s')
        self.assertIn('race-stop#1', text)
        self.assertIn('thawed', text)
        self.assertIn('2 trials, 1 with violations', text)
