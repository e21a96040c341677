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

    def test_prefix_says_the_action(self):
        self.assertEqual('createImage', fc.point_action('image.uploaded'))
        self.assertEqual('createImage', fc.point_action('volume.held'))
        self.assertEqual('createBackup',
                         fc.point_action('backup.mid_rotation'))
        self.assertEqual('shelve', fc.point_action('shelve.offload_destroyed'))
        # not shelve's: the prefix is the whole first word
        self.assertEqual('unshelve', fc.point_action('unshelve.spawned'))
        self.assertEqual('rebuild', fc.point_action('rebuild.old_disk_gone'))
        self.assertEqual('reboot', fc.point_action('reboot.destroyed'))

    def test_new_actions_run_on_both_kinds_of_server(self):
        both = ('live-stream', 'volume-backed')
        self.assertEqual(both, fc.point_paths('shelve.offload_destroyed'))
        self.assertEqual(both, fc.point_paths('rebuild.old_disk_gone'))
        self.assertEqual(both, fc.point_paths('reboot.started'))
        # a volume-backed server is never backed up (400)
        self.assertEqual(('live-stream',),
                         fc.point_paths('backup.captured'))

    def test_image_only_points_skip_the_volume_backed_server(self):
        # a volume-backed shelve goes straight to its offload and its
        # unshelve has no image to delete
        for point in ('shelve.powered_off', 'shelve.image_uploaded',
                      'shelve.shelved', 'unshelve.image_deleted'):
            self.assertEqual(('live-stream',), fc.point_paths(point), point)

    def test_every_point_in_the_code_has_an_action_and_a_path(self):
        for point in fc.find_points():
            self.assertIn(fc.point_action(point), (
                'createImage', 'createBackup', 'shelve', 'unshelve',
                'rebuild', 'reboot'), point)
            self.assertTrue(fc.point_paths(point), point)
            for path in fc.point_paths(point):
                self.assertIn(path, fc.PATHS, point)


class PlanTest(unittest.TestCase):

    def _plan(self, argv, points):
        args = fc.parse_args(argv + ['--seed', '1'])
        campaign = fc.Campaign.__new__(fc.Campaign)
        campaign.args = args
        campaign.rng = fc.random.Random(1)
        with mock.patch.object(fc, 'find_points', return_value=points), \
                mock.patch.object(fc, 'log'):
            return campaign.plan()

    QUICK_POINTS = {'image.a': 'f', 'volume.b': 'f', 'suspend.c': 'f',
                    'backup.captured': 'f', 'shelve.offload_destroyed': 'f',
                    'unshelve.spawned': 'f', 'rebuild.spawned': 'f',
                    'reboot.started': 'f', 'soft_delete.started': 'f',
                    'restore.started': 'f'}

    def test_quick_is_one_per_kind_and_two_kill_points(self):
        plan = self._plan(['--quick'], self.QUICK_POINTS)
        self.assertEqual(len(fc.ALL_KINDS) - 1,
                         len([k for k, _, _ in plan if k != 'kill-point']))
        self.assertEqual(len(fc.ALL_KINDS) - 1,
                         len({k for k, _, _ in plan if k != 'kill-point'}))
        kill_points = [(path, point) for kind, path, point in plan
                       if kind == 'kill-point']
        # One createImage point and one of another action, each on one of
        # its own paths.
        self.assertEqual(2, len(kill_points))
        actions = [fc.point_action(point) for _, point in kill_points]
        self.assertEqual('createImage', actions[0])
        self.assertNotEqual('createImage', actions[1])
        for path, point in kill_points:
            self.assertIn(path, fc.point_paths(point))

    def test_quick_kill_points_go_round_with_the_seed(self):
        paths, actions, drawn = set(), set(), set()
        for seed in range(60):
            args = fc.parse_args(['--quick', '--kinds', 'kill-point'])
            campaign = fc.Campaign.__new__(fc.Campaign)
            campaign.args = args
            campaign.rng = fc.random.Random(seed)
            with mock.patch.object(fc, 'find_points',
                                   return_value=self.QUICK_POINTS), \
                    mock.patch.object(fc, 'log'):
                for _, path, point in campaign.plan():
                    drawn.add(point)
                    actions.add(fc.point_action(point))
                    if fc.point_action(point) == 'createImage':
                        paths.add(path)
        # Successive CI runs (a seed each) reach every createImage path and
        # every other action, never a point the campaign has no trial for.
        self.assertEqual(set(fc.IMAGE_PATHS) | {'volume-backed'}, paths)
        self.assertEqual({'createImage', 'createBackup', 'shelve',
                          'unshelve', 'rebuild', 'reboot'}, actions)
        self.assertFalse({'soft_delete.started', 'restore.started'} & drawn)

    def test_full_plan_spreads_a_point_over_its_paths(self):
        plan = self._plan(['--kinds', 'kill-point', '--trials', '3',
                           '--points', 'shelve.'],
                          {'shelve.offload_destroyed': 'f',
                           'shelve.shelved': 'f', 'unshelve.spawned': 'f'})
        # In rounds: trial n of every point before trial n + 1 of any, so
        # a run cut short has reached each point.
        self.assertEqual(
            [('live-stream', 'shelve.offload_destroyed'),
             ('live-stream', 'shelve.shelved'),
             ('volume-backed', 'shelve.offload_destroyed'),
             ('live-stream', 'shelve.shelved'),
             ('live-stream', 'shelve.offload_destroyed'),
             ('live-stream', 'shelve.shelved')],
            [(path, point) for _, path, point in plan])

    def test_new_race_kinds_are_planned(self):
        plan = self._plan(['--kinds', 'race-shelve,race-reboot,race-backup',
                           '--trials', '2'], {})
        self.assertEqual(
            [('race-shelve', 'volume-backed'), ('race-reboot', 'volume-backed'),
             ('race-backup', 'live-stream'), ('race-shelve', 'live-stream'),
             ('race-reboot', 'live-stream'), ('race-backup', 'live-stream')],
            [(kind, path) for kind, path, _ in plan])
        for kind in ('race-shelve', 'race-reboot', 'race-backup'):
            self.assertIn(kind, fc.FULL_COUNTS)

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


class ActionBodyTest(unittest.TestCase):

    def setUp(self):
        self.campaign = fc.Campaign.__new__(fc.Campaign)
        self.campaign.base_image = {'id': 'base'}
        self.campaign.vol_image = {'id': 'ext4'}
        self.trial = fc.Trial('kill-point', 1, 'live-stream',
                              'backup.captured')
        self.image_server = fc.Server('i' * 36, 'host-a', False, 'image')
        self.volume_server = fc.Server('v' * 36, 'host-a', True, 'volume')

    def body(self, action, server=None):
        return self.campaign.action_body(self.trial,
                                         server or self.image_server, action)

    def test_trial_knows_its_action(self):
        self.assertEqual('createBackup', self.trial.action)
        self.assertEqual('createImage', fc.Trial('race-stop', 1).action)
        self.assertEqual('createBackup', self.trial.as_dict()['action'])

    def test_backup_rotates_the_trials_own_type(self):
        body, version = self.body('createBackup')
        self.assertIsNone(version)
        self.assertEqual({'name': self.trial.image_name, 'rotation': 1,
                          'backup_type': fc.backup_type(self.trial)},
                         body['createBackup'])
        other = fc.Trial('kill-point', 2, 'live-stream', 'backup.captured')
        self.assertNotEqual(fc.backup_type(self.trial),
                            fc.backup_type(other))

    def test_unshelve_goes_back_to_the_servers_host(self):
        self.assertEqual(({'unshelve': {'host': 'host-a'}}, '2.91'),
                         self.body('unshelve'))

    def test_rebuild_image_by_kind_of_server(self):
        self.assertEqual('base',
                         self.body('rebuild')[0]['rebuild']['imageRef'])
        self.assertEqual('ext4', self.body(
            'rebuild', self.volume_server)[0]['rebuild']['imageRef'])

    def test_reimage_points_rebuild_the_volume_backed_server_at_2_93(self):
        self.assertEqual(('volume-backed',),
                         fc.point_paths('rebuild.reimage_requested'))
        self.trial = fc.Trial('kill-point', 3, 'volume-backed',
                              'rebuild.reimage_requested')
        self.assertEqual(({'rebuild': {'imageRef': 'ext4'}}, '2.93'),
                         self.body('rebuild', self.volume_server))
        self.trial = fc.Trial('kill-point', 4, 'volume-backed',
                              'rebuild.spawned')
        self.assertIsNone(self.body('rebuild', self.volume_server)[1])

    def test_reboot_is_hard_and_shelve_has_no_body(self):
        self.assertEqual({'reboot': {'type': 'HARD'}},
                         self.body('reboot')[0])
        self.assertEqual({'shelve': None}, self.body('shelve')[0])
        self.assertEqual({'createImage': {'name': self.trial.image_name}},
                         self.body('createImage')[0])


class ShelvedCheckTest(unittest.TestCase):

    def setUp(self):
        self.campaign = fc.Campaign.__new__(fc.Campaign)
        self.campaign.images = mock.Mock()
        self.campaign.ctx = None
        self.server = fc.Server('s' * 36, 'host-a', False, 'image')

    def problems(self, row, status='SHELVED_OFFLOADED'):
        with mock.patch.object(self.campaign, '_row', return_value=row):
            return self.campaign._shelved_problems(self.server, status)

    def test_offloaded_with_active_image_holds(self):
        self.campaign.images.get.return_value = {'status': 'active'}
        self.assertEqual([], self.problems(
            ('shelved_offloaded', None, 0, {'shelved_image_id': 'img'})))

    def test_offloaded_without_image_is_a_violation(self):
        # an offloaded server with neither host nor image can never come
        # back
        self.campaign.images.get.side_effect = Exception('404')
        found = self.problems(('shelved_offloaded', None, 0,
                               {'shelved_image_id': 'img'}))
        self.assertEqual(['shelved-image'], [i for i, _ in found])
        self.assertEqual(['shelved-image'], [i for i, _ in self.problems(
            ('shelved_offloaded', None, 0, {}))])

    def test_offloaded_holding_a_claim_is_a_violation(self):
        self.campaign.images.get.return_value = {'status': 'active'}
        found = self.problems(('shelved_offloaded', 'host-a', 512,
                               {'shelved_image_id': 'img'}))
        self.assertEqual(['claim'], [i for i, _ in found])
        # SHELVED keeps its host
        self.assertEqual([], self.problems(
            ('shelved', 'host-a', 512, {'shelved_image_id': 'img'}),
            status='SHELVED'))

    def test_volume_backed_needs_no_image(self):
        self.server.volume_backed = True
        self.assertEqual([], self.problems(('shelved_offloaded', None, 0,
                                            {})))

    def test_shelve_image_no_row_holds_is_left_over(self):
        conn = mock.MagicMock()
        cursor = conn.cursor.return_value.__enter__.return_value
        cursor.fetchall.return_value = [
            ('{"shelved_image_id": "held"}',), (None,)]
        self.campaign.pg = mock.Mock()
        self.campaign.pg.connect.return_value = conn
        found = self.campaign._shelve_leftovers([
            {'id': 'held', 'name': 'camp-image-shelved', 'status': 'active'},
            {'id': 'lost', 'name': 'camp-image-shelved', 'status': 'active'},
            {'id': 'other', 'name': 'camp-x', 'status': 'active'}])
        self.assertEqual(1, len(found))
        self.assertEqual('failed-image', found[0][0])
        self.assertIn('lost', found[0][1])


class SummaryTest(unittest.TestCase):

    def test_new_actions_have_their_own_rows(self):
        trials = [fc.Trial('kill-point', 1, 'live-stream', 'image.uploaded'),
                  fc.Trial('kill-point', 2, 'live-stream', 'shelve.shelved'),
                  fc.Trial('kill-point', 3, 'volume-backed',
                           'reboot.started')]
        self.assertEqual(['kill-point live-stream',
                          'kill-point shelve live-stream',
                          'kill-point reboot volume-backed'],
                         list(fc.summarise(trials)))


class OutcomeTest(unittest.TestCase):
    """What a server may be after a trial of a new action."""

    def setUp(self):
        self.campaign = fc.Campaign.__new__(fc.Campaign)
        self.campaign.client = mock.Mock()
        self.campaign.task_state = mock.Mock(return_value=None)
        self.campaign.domain = mock.Mock()
        self.campaign.domain.return_value.state.return_value = [
            fc.libvirt.VIR_DOMAIN_RUNNING]
        self.server = fc.Server('s' * 36, 'host-a', False, 'image')

    def problems(self, status):
        self.campaign.client.get_server.return_value = {'status': status}
        with mock.patch.object(self.campaign, '_shelved_problems',
                               return_value=[]):
            return self.campaign._server_problems(self.server)

    def test_outcomes_by_action(self):
        self.assertEqual(('ACTIVE', 'ERROR'), fc.ACTION_OUTCOMES['rebuild'])
        self.assertNotIn('ERROR', fc.ACTION_OUTCOMES['shelve'])
        self.assertNotIn('reboot', fc.ACTION_OUTCOMES)
        self.assertNotIn('createBackup', fc.ACTION_OUTCOMES)

    def test_an_accepted_error_is_left_to_the_rebuild_check(self):
        self.server.accept = ('ERROR',)
        self.assertEqual([], self.problems('ERROR'))
        self.campaign.domain.assert_not_called()

    def test_a_status_outside_the_outcomes_is_a_violation(self):
        self.server.accept = ('SHELVED_OFFLOADED',)
        found = self.problems('SHUTOFF')
        self.assertEqual('power-state', found[0][0])
        self.assertIn('ACTIVE or SHELVED_OFFLOADED', found[0][1])

    def test_offloaded_must_have_no_domain(self):
        self.server.accept = ('SHELVED_OFFLOADED',)
        found = self.problems('SHELVED_OFFLOADED')
        self.assertEqual(['domain-without-row'], [i for i, _ in found])
        self.campaign.domain.side_effect = fc.libvirt.libvirtError('gone')
        self.assertEqual([], self.problems('SHELVED_OFFLOADED'))
