"""Backend-independent tests of ``db.api.Database``.

:class:`DatabaseAPITests` is a mixin: the SQLite unit tests and the
PostgreSQL/MariaDB functional tests mix it into a ``unittest.TestCase`` and
set ``self.db`` (schema already at head) plus ``self.url`` (for the race,
which opens one ``Database`` per thread). Tests never assume an empty
database: the functional classes share one database per class.
"""

import datetime
import threading
from unittest import mock
import uuid

from oslo_db import exception as db_exc
import sqlalchemy as sa

from nova_snapshot import context
from nova_snapshot.db import api as db_api
from nova_snapshot.db import models
from nova_snapshot import exception

FLAVOR = {'name': 'm1.nano', 'flavorid': '1', 'memory_mb': 64, 'vcpus': 1,
          'root_gb': 1}
PENDING = 'image_snapshot_pending'


def _uid():
    return str(uuid.uuid4())


class DatabaseAPITests:

    def _instance(self, **values):
        base = {'name': 'vm', 'project_id': self.project_id,
                'user_id': 'u1', 'host': 'compute1', 'vm_state': 'active',
                'task_state': None, 'power_state': 1, 'flavor': FLAVOR}
        base.update(values)
        return self.db.instance_create(base)

    def _context(self, request_id=None):
        return context.RequestContext(
            user_id='u1', project_id=self.project_id,
            request_id=request_id or 'req-' + _uid())

    def _raises(self, exc_type, func, *args, **kwargs):
        with self.assertRaises(exc_type) as caught:
            func(*args, **kwargs)
        return caught.exception

    def _freeze_time(self, when):
        """Make db.api's clock read ``when`` until the test ends."""
        self._now = when
        patcher = mock.patch.object(db_api.timeutils, 'utcnow',
                                    side_effect=lambda *a, **k: self._now)
        patcher.start()
        self.addCleanup(patcher.stop)

    def _set_time(self, when):
        self._now = when

    def _advance(self, seconds):
        self._now += datetime.timedelta(seconds=seconds)

    @property
    def project_id(self):
        # One project per test so shared databases do not leak rows between
        # tests that list instances.
        if not hasattr(self, '_project_id'):
            self._project_id = 'project-' + _uid()
        return self._project_id

    # Schema

    def test_schema_at_head_and_sync_is_idempotent(self):
        from alembic import config as alembic_config
        from alembic import script
        config = alembic_config.Config()
        config.set_main_option('script_location', db_api.MIGRATIONS_DIR)
        head = script.ScriptDirectory.from_config(config).get_current_head()
        self.assertNotEqual('0001_initial', head)
        self.assertEqual(head, self.db.schema_version())
        self.db.create_schema()
        self.assertEqual(head, self.db.schema_version())

    def test_migrations_match_models(self):
        from alembic import autogenerate
        from alembic import migration
        with self.db.engine.connect() as conn:
            mc = migration.MigrationContext.configure(
                conn, opts={'compare_type': True})
            diff = autogenerate.compare_metadata(mc, models.metadata)
        diff = [d for d in diff
                if not (d[0] == 'remove_table' and d[1].name ==
                        'alembic_version')]
        self.assertEqual([], diff)

    # Instances

    def test_instance_create_and_get_decodes_json(self):
        created = self._instance(
            metadata={'purpose': 'test', 'ünï': 'çødé'},
            system_metadata={'image_os_type': 'linux',
                             'image_min_ram': '0'})
        got = self.db.instance_get(created['uuid'])
        self.assertEqual(created, got)
        self.assertEqual(FLAVOR, got['flavor'])
        self.assertEqual({'purpose': 'test', 'ünï': 'çødé'}, got['metadata'])
        self.assertEqual('linux', got['system_metadata']['image_os_type'])
        self.assertEqual(36, len(got['uuid']))
        self.assertIsNone(got['task_state'])
        self.assertEqual(0, got['deleted'])
        self.assertEqual(0, got['progress'])
        self.assertIsInstance(got['created_at'], datetime.datetime)

    def test_instance_create_defaults_json_columns(self):
        created = self.db.instance_create({'name': 'bare'})
        self.assertEqual({}, created['metadata'])
        self.assertEqual({}, created['system_metadata'])
        self.assertIsNone(created['flavor'])

    def test_instance_create_keeps_given_uuid(self):
        given = _uid()
        self.assertEqual(given, self._instance(uuid=given)['uuid'])

    def test_instance_create_rejects_unknown_column(self):
        self.assertRaises(ValueError, self._instance, colour='blue')

    def test_instance_get_unknown(self):
        self.assertRaises(exception.InstanceNotFound,
                          self.db.instance_get, _uid())

    def test_instance_get_all_filters(self):
        a = self._instance(host='h-a')
        b = self._instance(host='h-b', task_state=PENDING)
        c = self._instance(host='h-b', task_state='image_uploading')
        self._instance(project_id='other-' + _uid(), host='h-b')

        def uuids(**kw):
            return [i['uuid'] for i in
                    self.db.instance_get_all(project_id=self.project_id, **kw)]

        self.assertEqual([a['uuid'], b['uuid'], c['uuid']], uuids())
        self.assertEqual([b['uuid'], c['uuid']], uuids(host='h-b'))
        self.assertEqual([c['uuid']], uuids(task_states=['image_uploading']))
        self.assertEqual([a['uuid'], b['uuid']],
                         uuids(task_states=(None, PENDING)))
        self.assertEqual([a['uuid']], uuids(task_states=[None]))
        self.assertEqual([], uuids(task_states=[]))
        everything = self.db.instance_get_all(host='h-b')
        self.assertGreaterEqual(len(everything), 3)

    def test_instance_update_plain(self):
        inst = self._instance()
        self._freeze_time(datetime.datetime(2030, 1, 2, 3, 4, 5, 600000))
        updated = self.db.instance_update(
            inst['uuid'], {'progress': 42, 'metadata': {'k': 'v'}})
        self.assertEqual(42, updated['progress'])
        self.assertEqual({'k': 'v'}, updated['metadata'])
        self.assertEqual(datetime.datetime(2030, 1, 2, 3, 4, 5, 600000),
                         updated['updated_at'])
        self.assertEqual(updated, self.db.instance_get(inst['uuid']))

    def test_instance_update_rejects_identity_columns(self):
        inst = self._instance()
        for key in ('id', 'uuid', 'deleted', 'nope'):
            self.assertRaises(ValueError, self.db.instance_update,
                              inst['uuid'], {key: 1})

    def test_cas_success_single_value_and_tuple(self):
        inst = self._instance()
        updated = self.db.instance_update(
            inst['uuid'], {'task_state': PENDING}, expected_task_state=None)
        self.assertEqual(PENDING, updated['task_state'])
        updated = self.db.instance_update(
            inst['uuid'], {'task_state': 'image_uploading'},
            expected_task_state=('image_snapshot', PENDING))
        self.assertEqual('image_uploading', updated['task_state'])
        updated = self.db.instance_update(
            inst['uuid'], {'task_state': None, 'vm_state': 'stopped'},
            expected_task_state='image_uploading',
            expected_vm_state=('active', 'paused'))
        self.assertIsNone(updated['task_state'])
        self.assertEqual('stopped', updated['vm_state'])

    def test_cas_failure_task_state(self):
        inst = self._instance(task_state=PENDING, progress=7)
        exc = self._raises(
            exception.UnexpectedTaskStateError, self.db.instance_update,
            inst['uuid'], {'task_state': PENDING, 'progress': 99},
            expected_task_state=(None,))
        self.assertNotIsInstance(exc,
                                 exception.UnexpectedDeletingTaskStateError)
        self.assertEqual(409, exc.code)
        self.assertEqual({'task_state': [None]}, exc.kwargs['expected'])
        self.assertEqual({'task_state': PENDING}, exc.kwargs['actual'])
        self.assertIn(inst['uuid'], exc.format_message())
        # Nothing was written.
        self.assertEqual(7, self.db.instance_get(inst['uuid'])['progress'])

    def test_cas_failure_deleting(self):
        inst = self._instance(task_state='deleting')
        exc = self._raises(
            exception.UnexpectedDeletingTaskStateError,
            self.db.instance_update, inst['uuid'], {'task_state': PENDING},
            expected_task_state=None)
        self.assertEqual({'task_state': 'deleting'}, exc.kwargs['actual'])

    def test_cas_failure_vm_state(self):
        inst = self._instance(vm_state='error')
        exc = self._raises(
            exception.UnexpectedTaskStateError, self.db.instance_update,
            inst['uuid'], {'task_state': PENDING},
            expected_task_state=None, expected_vm_state=('active',))
        self.assertEqual({'vm_state': ['active']}, exc.kwargs['expected'])
        self.assertEqual({'vm_state': 'error'}, exc.kwargs['actual'])
        self.assertIsNone(self.db.instance_get(inst['uuid'])['task_state'])

    def test_update_unknown_or_deleted_is_not_found(self):
        self.assertRaises(exception.InstanceNotFound, self.db.instance_update,
                          _uid(), {'progress': 1})
        inst = self._instance()
        self.db.instance_destroy(inst['uuid'])
        self.assertRaises(exception.InstanceNotFound, self.db.instance_update,
                          inst['uuid'], {'progress': 1})
        self.assertRaises(exception.InstanceNotFound, self.db.instance_update,
                          inst['uuid'], {'task_state': PENDING},
                          expected_task_state=None)

    def test_instance_discard_removes_every_row_of_it(self):
        # A multiple create that failed while storing (compute/
        # multiple_create.py): the instance and everything of it go.
        keep = self._instance()
        inst = self._instance()
        for instance in (keep, inst):
            self.db.bdm_create({'instance_uuid': instance['uuid'],
                                'boot_index': 0, 'source_type': 'image',
                                'destination_type': 'local'})
            ctx = self._context()
            self.db.action_start(ctx, instance['uuid'], 'create')
            self.db.action_event_start(ctx, instance['uuid'], 'build')
            self.db.fault_create(instance['uuid'], 500, 'm', 'd')
        self.db.instance_discard(inst['uuid'])
        self._raises(exception.InstanceNotFound, self.db.instance_get,
                     inst['uuid'])
        self.assertEqual([], self.db.instance_list(
            {'uuid': inst['uuid'], 'deleted': None}))
        self.assertEqual([], self.db.bdm_get_by_instance(inst['uuid']))
        self.assertEqual([], self.db.actions_get(inst['uuid']))
        self.assertIsNone(self.db.fault_get_latest(inst['uuid']))
        with self.db.engine.connect() as conn:
            self.assertEqual(1, conn.execute(sa.select(
                sa.func.count()).select_from(models.instance_actions_events)
                .where(models.instance_actions_events.c.action_id.in_(
                    sa.select(models.instance_actions.c.id).where(
                        models.instance_actions.c.instance_uuid.in_(
                            [keep['uuid'], inst['uuid']]))))).scalar())
        # Gone already is fine; the other instance keeps all of its rows.
        self.db.instance_discard(inst['uuid'])
        self.assertEqual(keep['uuid'], self.db.instance_get(
            keep['uuid'])['uuid'])
        self.assertEqual(1, len(self.db.bdm_get_by_instance(keep['uuid'])))
        self.assertEqual(1, len(self.db.actions_get(keep['uuid'])))

    def test_instance_destroy_is_soft(self):
        inst = self._instance()
        self.db.bdm_create({'instance_uuid': inst['uuid'], 'boot_index': 0,
                            'source_type': 'image',
                            'destination_type': 'local'})
        gone = self.db.instance_destroy(inst['uuid'])
        self.assertEqual(inst['id'], gone['deleted'])
        self.assertIsNotNone(gone['deleted_at'])
        self.assertRaises(exception.InstanceNotFound,
                          self.db.instance_get, inst['uuid'])
        self.assertNotIn(inst['uuid'], [
            i['uuid'] for i in
            self.db.instance_get_all(project_id=self.project_id)])
        self.assertEqual([], self.db.bdm_get_by_instance(inst['uuid']))
        self.assertRaises(exception.InstanceNotFound,
                          self.db.instance_destroy, inst['uuid'])
        # The row is still there for auditing.
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(models.instances).where(
                models.instances.c.uuid == inst['uuid'])).one()
        self.assertEqual(inst['id'], row.deleted)

    def test_instance_lock_and_unlock(self):
        inst = self._instance()
        self.assertFalse(inst['locked'])
        self.assertIsNone(inst['locked_by'])
        locked = self.db.instance_lock(inst['uuid'], 'owner', 'backup')
        self.assertTrue(locked['locked'])
        self.assertEqual('owner', locked['locked_by'])
        self.assertEqual('backup', locked['locked_reason'])
        # A second lock keeps the first holder and reason.
        again = self.db.instance_lock(inst['uuid'], 'admin', 'other')
        self.assertEqual(('owner', 'backup'),
                         (again['locked_by'], again['locked_reason']))
        # An admin's lock takes it over; no reason keeps the old one.
        taken = self.db.instance_lock(inst['uuid'], 'admin',
                                      only_if_unlocked=False)
        self.assertEqual(('admin', 'backup'),
                         (taken['locked_by'], taken['locked_reason']))
        self.db.instance_unlock(inst['uuid'])
        self.db.instance_lock(inst['uuid'], 'owner', 'backup')
        # Unlock only if the holder is the expected one.
        kept = self.db.instance_unlock(inst['uuid'],
                                       expected_locked_by='admin')
        self.assertTrue(kept['locked'])
        freed = self.db.instance_unlock(inst['uuid'],
                                        expected_locked_by='owner')
        self.assertFalse(freed['locked'])
        self.assertIsNone(freed['locked_by'])
        self.assertIsNone(freed['locked_reason'])
        self.assertFalse(self.db.instance_unlock(inst['uuid'])['locked'])
        self.assertRaises(ValueError, self.db.instance_lock, inst['uuid'],
                          'someone')
        self.db.instance_destroy(inst['uuid'])
        self.assertRaises(exception.InstanceNotFound, self.db.instance_lock,
                          inst['uuid'], 'owner')
        self.assertRaises(exception.InstanceNotFound,
                          self.db.instance_unlock, inst['uuid'])

    # Block device mappings

    def test_bdm_create_and_list(self):
        inst = self._instance()
        root = self.db.bdm_create({
            'instance_uuid': inst['uuid'], 'boot_index': 0,
            'source_type': 'volume', 'destination_type': 'volume',
            'volume_id': _uid(), 'device_name': '/dev/vda',
            'delete_on_termination': True, 'connection_info': '{"a": 1}'})
        data = self.db.bdm_create({
            'instance_uuid': inst['uuid'], 'boot_index': None,
            'source_type': 'blank', 'destination_type': 'local',
            'volume_size': 1, 'guest_format': 'ext4'})
        bdms = self.db.bdm_get_by_instance(inst['uuid'])
        self.assertEqual([root['id'], data['id']], [b['id'] for b in bdms])
        self.assertIs(True, bdms[0]['delete_on_termination'])
        self.assertIs(False, bdms[1]['delete_on_termination'])
        self.assertIs(False, bdms[1]['no_device'])
        self.assertEqual('{"a": 1}', bdms[0]['connection_info'])
        self.assertEqual(0, bdms[0]['deleted'])

    def test_bdm_needs_an_instance(self):
        # oslo.db's engine translates the driver's IntegrityError.
        self.assertRaises(db_exc.DBReferenceError, self.db.bdm_create,
                          {'instance_uuid': _uid(), 'boot_index': 0})

    # Instance actions and events

    def test_action_start_uses_context(self):
        inst = self._instance()
        ctxt = self._context()
        action = self.db.action_start(ctxt, inst['uuid'], 'createImage')
        self.assertEqual('createImage', action['action'])
        self.assertEqual(ctxt.request_id, action['request_id'])
        self.assertEqual('u1', action['user_id'])
        self.assertEqual(self.project_id, action['project_id'])
        self.assertIsNotNone(action['start_time'])
        self.assertIsNone(action['message'])

    def test_actions_newest_first_by_start_time(self):
        inst = self._instance()
        first = datetime.datetime(2030, 1, 1, 10, 0, 0)
        # Insert the later action first so id order and time order differ.
        self._freeze_time(first + datetime.timedelta(seconds=5))
        later = self.db.action_start(self._context(), inst['uuid'], 'stop')
        self._set_time(first)
        earlier = self.db.action_start(self._context(), inst['uuid'],
                                       'create')
        self._set_time(first + datetime.timedelta(seconds=9))
        newest = self.db.action_start(self._context(), inst['uuid'],
                                      'createImage')
        self.assertEqual(
            [newest['id'], later['id'], earlier['id']],
            [a['id'] for a in self.db.actions_get(inst['uuid'])])
        self.assertEqual([], self.db.actions_get(_uid()))

    def test_events_success(self):
        inst = self._instance()
        ctxt = self._context()
        self.db.action_start(ctxt, inst['uuid'], 'createImage')
        started = self.db.action_event_start(
            ctxt, inst['uuid'], 'compute_snapshot_instance', host='cmp1')
        self.assertIsNone(started['result'])
        self.assertIsNone(started['finish_time'])
        finished = self.db.action_event_finish(
            ctxt, inst['uuid'], 'compute_snapshot_instance', 'success')
        self.assertEqual(started['id'], finished['id'])
        self.assertEqual('Success', finished['result'])
        self.assertEqual('cmp1', finished['host'])
        self.assertIsNotNone(finished['finish_time'])
        action = self.db.action_get_by_request_id(inst['uuid'],
                                                  ctxt.request_id)
        self.assertIsNone(action['message'])
        self.assertEqual([finished], action['events'])

    def test_unfinished_events_of_a_host(self):
        inst = self._instance()
        ctxt = self._context()
        self.db.action_start(ctxt, inst['uuid'], 'createImage')
        self.db.action_event_start(ctxt, inst['uuid'], 'ev', host='cmp1')
        done = self._context()
        self.db.action_start(done, inst['uuid'], 'createImage')
        self.db.action_event_start(done, inst['uuid'], 'ev', host='cmp1')
        self.db.action_event_finish(done, inst['uuid'], 'ev', 'Success')
        self.db.action_event_start(done, inst['uuid'], 'other', host='cmp1')
        elsewhere = self._context()
        self.db.action_start(elsewhere, inst['uuid'], 'createImage')
        self.db.action_event_start(elsewhere, inst['uuid'], 'ev',
                                   host='cmp2')
        found = self.db.action_events_unfinished(inst['uuid'], 'ev', 'cmp1')
        self.assertEqual([ctxt.request_id], [e['request_id'] for e in found])
        self.assertEqual(ctxt.project_id, found[0]['project_id'])
        self.assertEqual(ctxt.user_id, found[0]['user_id'])
        self.assertEqual([], self.db.action_events_unfinished(
            self._instance()['uuid'], 'ev', 'cmp1'))

    def test_event_error_marks_action(self):
        inst = self._instance()
        ctxt = self._context()
        self.db.action_start(ctxt, inst['uuid'], 'createImage')
        start = datetime.datetime(2030, 1, 1)
        self._freeze_time(start)
        self.db.action_event_start(ctxt, inst['uuid'], 'ev_one')
        self._advance(1)
        self.db.action_event_start(ctxt, inst['uuid'], 'ev_two')
        self.db.action_event_finish(ctxt, inst['uuid'], 'ev_one', 'Success')
        failed = self.db.action_event_finish(
            ctxt, inst['uuid'], 'ev_two', 'Error',
            traceback='Traceback: boom', details='boom')
        self.assertEqual('Error', failed['result'])
        self.assertEqual('Traceback: boom', failed['traceback'])
        self.assertEqual('boom', failed['details'])
        action = self.db.action_get_by_request_id(inst['uuid'],
                                                  ctxt.request_id)
        self.assertEqual('Error', action['message'])
        self.assertEqual(['ev_two', 'ev_one'],
                         [e['event'] for e in action['events']])
        self.assertEqual(['Error', 'Success'],
                         [e['result'] for e in action['events']])

    def test_event_errors(self):
        inst = self._instance()
        ctxt = self._context()
        self.assertRaises(exception.InstanceActionNotFound,
                          self.db.action_event_start, ctxt, inst['uuid'],
                          'ev')
        self.db.action_start(ctxt, inst['uuid'], 'createImage')
        self.assertRaises(exception.InstanceActionEventNotFound,
                          self.db.action_event_finish, ctxt, inst['uuid'],
                          'never_started', 'Success')
        self.db.action_event_start(ctxt, inst['uuid'], 'ev')
        self.assertRaises(ValueError, self.db.action_event_finish, ctxt,
                          inst['uuid'], 'ev', 'Maybe')
        self.assertRaises(exception.InstanceActionNotFound,
                          self.db.action_get_by_request_id, inst['uuid'],
                          'req-unknown')

    # Faults

    def test_faults_latest(self):
        inst = self._instance()
        self.assertIsNone(self.db.fault_get_latest(inst['uuid']))
        self._freeze_time(datetime.datetime(2030, 1, 1))
        self.db.fault_create(inst['uuid'], 500, 'first', 'trace 1',
                             host='cmp1')
        self._advance(2)
        second = self.db.fault_create(inst['uuid'], 409, 'x' * 300,
                                      'trace 2')
        latest = self.db.fault_get_latest(inst['uuid'])
        self.assertEqual(second, latest)
        self.assertEqual(409, latest['code'])
        self.assertEqual('x' * 255, latest['message'])
        self.assertEqual('trace 2', latest['details'])
        self.assertEqual(datetime.datetime(2030, 1, 1, 0, 0, 2),
                         latest['created_at'])

    # Services

    def test_service_heartbeat(self):
        topic = 'topic-' + _uid()
        self._freeze_time(datetime.datetime(2030, 1, 1))
        first = self.db.service_update('host-b', topic)
        self.assertEqual(1, first['report_count'])
        self.assertIs(False, first['disabled'])
        self.assertEqual(topic, first['binary'])
        self._advance(10)
        again = self.db.service_update('host-b', topic)
        self.assertEqual(first['id'], again['id'])
        self.assertEqual(2, again['report_count'])
        self.assertEqual(datetime.datetime(2030, 1, 1, 0, 0, 10),
                         again['last_seen_up'])
        self.db.service_update('host-a', topic, binary='nova-snapshot-x')
        self.db.service_update('host-a', 'other-' + topic)
        services = self.db.service_get_all(topic)
        self.assertEqual(['host-a', 'host-b'], [s['host'] for s in services])
        self.assertEqual('nova-snapshot-x', services[0]['binary'])
        self.assertEqual([], self.db.service_get_all('none-' + topic))

    # The race

    THREADS = 8
    ROUNDS = 4

    def _race(self, write):
        """Run ``write(database, index)`` in THREADS threads at once, each
        with its own engine; returns each one's outcome: 'won', the
        UnexpectedTaskStateError it lost with, or the repr of any other
        error (reported by the callers' assertions)."""
        databases = [db_api.Database(self.url) for _ in range(self.THREADS)]
        for database in databases:
            self.addCleanup(database.dispose)
        barrier = threading.Barrier(self.THREADS)
        outcomes = [None] * self.THREADS

        def race(index):
            barrier.wait(timeout=30)
            try:
                write(databases[index], index)
                outcomes[index] = 'won'
            except exception.UnexpectedTaskStateError as exc:
                outcomes[index] = exc
            except Exception as exc:
                outcomes[index] = repr(exc)

        threads = [threading.Thread(target=race, args=(i,))
                   for i in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return outcomes

    def test_concurrent_cas_has_exactly_one_winner(self):
        """Threads, each with its own engine, race None -> pending."""
        inst = self._instance()
        for _round in range(self.ROUNDS):
            self.db.instance_update(inst['uuid'],
                                    {'task_state': None, 'progress': 0})
            outcomes = self._race(lambda db, index: db.instance_update(
                inst['uuid'], {'task_state': PENDING, 'progress': index + 1},
                expected_task_state=None))
            winners = [i for i, o in enumerate(outcomes) if o == 'won']
            losers = [o for o in outcomes if o != 'won']
            self.assertEqual(1, len(winners), outcomes)
            for lost in losers:
                self.assertIsInstance(lost, exception.UnexpectedTaskStateError)
                self.assertEqual({'task_state': PENDING},
                                 lost.kwargs['actual'])
            final = self.db.instance_get(inst['uuid'])
            self.assertEqual(PENDING, final['task_state'])
            # The row holds the winner's write, not a loser's.
            self.assertEqual(winners[0] + 1, final['progress'])

    def test_checked_update_race_has_exactly_one_winner(self):
        """instance_update_checked: each thread takes a hold (task_state
        and a system_metadata key naming it) from None; one wins, every
        other one finds the winner's hold."""
        inst = self._instance(system_metadata={'keep': 'me'})
        for _round in range(self.ROUNDS):
            self.db.instance_update_checked(
                inst['uuid'], {'task_state': None},
                system_metadata={'hold': None})
            outcomes = self._race(lambda db, index: db.instance_update_checked(
                inst['uuid'], {'task_state': 'image_snapshot'},
                expected_task_state=None,
                system_metadata={'hold': 'req-%d' % index}))
            winners = [i for i, o in enumerate(outcomes) if o == 'won']
            self.assertEqual(1, len(winners), outcomes)
            for lost in outcomes:
                if lost != 'won':
                    self.assertIsInstance(
                        lost, exception.UnexpectedTaskStateError)
            final = self.db.instance_get(inst['uuid'])
            self.assertEqual('image_snapshot', final['task_state'])
            self.assertEqual({'keep': 'me', 'hold': 'req-%d' % winners[0]},
                             final['system_metadata'])
