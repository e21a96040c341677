"""createImage racing suspend, pause, stop and delete on one server, in
process (ComputeAPI -> fake RPC -> ComputeManager -> fake driver).

Both requests start together from a barrier, each with the server dict
its handler read before either ran; both sides are then held in flight
(the snapshot by the fake driver's gate or a held freeze, the action by a
gate on its driver call) until both API calls have answered, so the two
always overlap. Exactly one wins the server and the other gets a 409;
delete during an image-backed snapshot is the one exception (Nova lets a
delete through any task state but a volume-backed cut): it always wins,
and the snapshot backs off. Afterwards nothing is left set: no task
state, hold or image reference, no frozen guest, no busy server, no
unfinished event, no image of a request that lost.
"""

import threading
import time

from nova_snapshot.compute import api as compute_api
from nova_snapshot import exception
from tests.unit.compute import fakes
from tests.unit.compute import volume_fakes

# One trial per head start (seconds) of createImage over the action.
DELAYS = (0.0, 0.02, 0.1)
ACTIONS = ('suspend', 'pause', 'stop', 'delete')
# The driver call each action's compute side makes.
DRIVER_CALLS = {'suspend': 'suspend', 'pause': 'pause', 'stop': 'power_off',
                'delete': 'destroy'}


class RaceTest(volume_fakes.VolumeComputeTestCase):

    def setUp(self):
        super().setUp()
        self.action_gate = threading.Event()
        self.addCleanup(self.action_gate.set)
        for method in set(DRIVER_CALLS.values()):
            self._gate_driver(method)
        self.frozen = threading.Event()
        real_quiesce = self.driver.quiesce

        def quiesce(*args, **kwargs):
            real_quiesce(*args, **kwargs)
            self.frozen.set()
            self.action_gate.wait(10)
        self.driver.quiesce = quiesce

    def _gate_driver(self, method):
        real = getattr(self.driver, method)

        def gated(*args, **kwargs):
            self.action_gate.wait(10)
            return real(*args, **kwargs)
        setattr(self.driver, method, gated)

    def boot_server(self, volume_backed):
        return self.boot_volume_backed() if volume_backed else self.boot()

    def race(self, action, volume_backed, delay=0.0):
        instance = self.boot_server(volume_backed)
        self.action_gate.clear()
        self.frozen.clear()
        gate = threading.Event()
        self.driver.snapshot_gate = gate
        image_ctx = self.user_context()
        action_ctx = self.user_context()
        barrier = threading.Barrier(2)
        results = {}

        def create_image():
            barrier.wait(5)
            try:
                if volume_backed:
                    results['image'] = self.api.snapshot_volume_backed(
                        image_ctx, instance, 'race', {})
                else:
                    results['image'] = self.api.snapshot(
                        image_ctx, instance, 'race', {})
            except Exception as exc:
                results['image_error'] = exc

        def act():
            barrier.wait(5)
            # createImage does more before its compare-and-swap (image
            # metadata, BDMs, quota): later trials give it a head start,
            # so both orders are seen.
            time.sleep(delay)
            try:
                getattr(self.api, action)(action_ctx, instance)
                results['action'] = True
            except Exception as exc:
                results['action_error'] = exc

        images_before = set(self.image_api.images)
        threads = [threading.Thread(target=create_image, daemon=True),
                   threading.Thread(target=act, daemon=True)]
        for thread in threads:
            thread.start()
        threads[1].join(10)
        # The volume-backed call answers only after its cut: wait until
        # it is frozen or has answered.
        fakes.wait_for(lambda: self.frozen.is_set() or not
                       threads[0].is_alive(), message='createImage held')
        self.action_gate.set()
        gate.set()
        threads[0].join(10)
        self.assertFalse(threads[0].is_alive() or threads[1].is_alive())
        try:
            self.settle(instance)
            self.check(action, volume_backed, instance, results,
                       images_before, (image_ctx, action_ctx))
        except AssertionError as exc:
            raise AssertionError('%s racing %s (%s): %s; %s' % (
                action, 'volume-backed' if volume_backed else 'image-backed',
                results, exc, self._state(instance)))
        return results

    def _state(self, instance):
        try:
            return self.db.instance_get(instance['uuid'])
        except exception.InstanceNotFound:
            return 'deleted'

    def settle(self, instance):
        self.assertTrue(self.manager.wait_for_tasks(10))

        def quiet():
            try:
                current = self.db.instance_get(instance['uuid'])
            except exception.InstanceNotFound:
                return True
            return current['task_state'] is None
        fakes.wait_for(quiet, message='server settled')

    def check(self, action, volume_backed, instance, results, images_before,
              contexts):
        for key in ('image_error', 'action_error'):
            if key in results:
                exc = results[key]
                self.assertIsInstance(exc, exception.InstanceInvalidState,
                                      '%s: %r' % (key, exc))
                self.assertEqual(409, exc.code)
        image_won = 'image' in results
        action_won = 'action' in results
        if action == 'delete' and not volume_backed:
            # Delete runs in any task state but the volume cut.
            self.assertTrue(action_won)
        else:
            self.assertNotEqual(image_won, action_won,
                                'exactly one wins: %r' % results)
        try:
            after = self.db.instance_get(instance['uuid'])
        except exception.InstanceNotFound:
            after = None
        if action == 'delete' and action_won:
            fakes.wait_for(lambda: self._deleted(instance['uuid']),
                           message='server deleted')
        else:
            self.assertIsNotNone(after)
            self.assertIsNone(after['task_state'])
            sysmeta = after['system_metadata']
            for key in (compute_api.VOLUME_SNAPSHOT_HOLD_KEY,
                        compute_api.SNAPSHOT_IMAGE_KEY,
                        compute_api.SNAPSHOT_LEFTOVERS_KEY):
                self.assertNotIn(key, sysmeta)
            if action_won:
                expected = {'suspend': 'suspended', 'pause': 'paused',
                            'stop': 'stopped'}[action]
                self.assertEqual(expected, after['vm_state'])
            else:
                self.assertEqual('active', after['vm_state'])
        # Every event finished (the winning snapshot's cast included,
        # which may still be on its way), then the work unmarks the
        # server, last.
        image_ctx, action_ctx = contexts
        self._events_finished(instance['uuid'], image_ctx,
                              expect_event=image_won)
        self._events_finished(instance['uuid'], action_ctx,
                              expect_event=action_won)
        fakes.wait_for(lambda: not self.manager.busy_instances(),
                       message='no busy server')
        self.assertEqual(set(), self.driver.frozen | self.driver.paused)
        # Images: the winner's is active; nothing unfinished is left.
        new = set(self.image_api.images) - images_before
        for image_id in new:
            self.assertEqual('active', self.image_api.images[image_id]
                             ['status'])
        if image_won and not (action == 'delete' and action_won):
            self.assertIn(results['image']['id'], new)
        if not image_won:
            self.assertEqual(set(), new)
            if volume_backed:
                self.assertEqual({}, self.cinder.snapshots)

    def _deleted(self, uuid):
        try:
            self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return True
        return False

    def _events_finished(self, uuid, ctx, expect_event):
        def finished():
            try:
                action = self.db.action_get_by_request_id(uuid,
                                                          ctx.request_id)
            except exception.NotFound:
                # Lost before any action was recorded.
                return not expect_event
            if expect_event and not action['events']:
                return False
            return all(event['finish_time'] for event in action['events'])
        fakes.wait_for(finished, message='every event of %s finished: %s'
                       % (ctx.request_id, self._events(uuid, ctx)))

    def _events(self, uuid, ctx):
        try:
            return self.db.action_get_by_request_id(uuid, ctx.request_id)
        except exception.NotFound:
            return None

    def run_races(self, volume_backed):
        tally = {}
        for action in ACTIONS:
            for delay in DELAYS:
                results = self.race(action, volume_backed, delay)
                winner = 'createImage' if 'image' in results else action
                if 'image' in results and 'action' in results:
                    winner = 'both'
                key = (action, winner)
                tally[key] = tally.get(key, 0) + 1
                self.cinder.snapshots.clear()
        return tally

    def assert_image_won_some(self, tally):
        """The head starts worked: createImage held the server first in
        at least one trial per action (the order the hold is for)."""
        for action in ACTIONS:
            self.assertTrue(tally.get((action, 'createImage'), 0) +
                            tally.get((action, 'both'), 0), tally)

    def test_image_backed(self):
        tally = self.run_races(volume_backed=False)
        self.assert_image_won_some(tally)

    def test_volume_backed(self):
        tally = self.run_races(volume_backed=True)
        self.assert_image_won_some(tally)
