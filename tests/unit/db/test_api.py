"""db.api on SQLite: a fresh database file per test."""

import os
import shutil
import tempfile
import unittest
from unittest import mock

from nova_snapshot import conf as ns_conf
from nova_snapshot.db import api as db_api
from tests.unit.db import api_tests


class TestDatabaseSQLite(api_tests.DatabaseAPITests, unittest.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-snapshot-db-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        # A directory that does not exist yet: Database creates it.
        self.path = os.path.join(tmp, 'state', 'nova_snapshot.sqlite')
        self.url = 'sqlite:///' + self.path
        self.db = db_api.Database(self.url)
        self.addCleanup(self.db.dispose)
        self.db.create_schema()


class TestDatabaseSetup(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='nova-snapshot-db-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def test_from_conf(self):
        path = os.path.join(self.tmp, 'a', 'b', 'state.sqlite')
        conf_file = os.path.join(self.tmp, 'ns.conf')
        with open(conf_file, 'w') as f:
            f.write('[database]\nconnection = sqlite:///%s\n' % path)
        conf = ns_conf.new_conf(['--config-file', conf_file])
        database = db_api.Database(conf)
        self.addCleanup(database.dispose)
        self.assertTrue(os.path.isdir(os.path.dirname(path)))
        self.assertIsNone(database.schema_version())
        database.create_schema()
        self.assertIsNotNone(database.schema_version())
        self.assertNotEqual('0001_initial', database.schema_version())
        self.assertTrue(os.path.exists(path))

    def test_sqlite_pragmas(self):
        database = db_api.Database(
            'sqlite:///' + os.path.join(self.tmp, 'p.sqlite'))
        self.addCleanup(database.dispose)
        with database.engine.connect() as conn:
            self.assertEqual(
                1, conn.exec_driver_sql('PRAGMA foreign_keys').scalar())
            self.assertEqual(
                db_api.SQLITE_BUSY_TIMEOUT * 1000,
                conn.exec_driver_sql('PRAGMA busy_timeout').scalar())

    def test_memory_database_is_shared_between_connections(self):
        database = db_api.Database('sqlite://')
        self.addCleanup(database.dispose)
        database.create_schema()
        created = database.instance_create({'name': 'mem'})
        self.assertEqual(created, database.instance_get(created['uuid']))

    def test_unset_is_not_none(self):
        self.assertIsNot(db_api.UNSET, None)
        self.assertEqual('UNSET', repr(db_api.UNSET))

    def test_migrations_are_inside_the_package(self):
        self.assertTrue(os.path.isfile(
            os.path.join(db_api.MIGRATIONS_DIR, 'env.py')))
        self.assertTrue(os.path.isfile(os.path.join(
            db_api.MIGRATIONS_DIR, 'versions', '0001_initial.py')))


class TestDatabaseOptions(unittest.TestCase):
    """[database] carries oslo.db's options, with our defaults, and the
    engine and the retry wrapper use them."""

    def _conf(self, **overrides):
        conf = ns_conf.new_conf([])
        conf.set_override('connection', 'sqlite://', group='database')
        for name, value in overrides.items():
            conf.set_override(name, value, group='database')
        return conf

    def test_oslo_db_names_and_our_defaults(self):
        opts = self._conf().database
        self.assertEqual(10, opts.max_pool_size)
        self.assertEqual(30, opts.max_overflow)
        self.assertEqual(30, opts.pool_timeout)
        # Untouched oslo.db options keep oslo.db's defaults.
        self.assertEqual(3600, opts.connection_recycle_time)
        self.assertEqual(20, opts.db_max_retries)
        self.assertEqual(10, opts.max_retries)

    def test_sample_lists_our_defaults_without_changing_oslo_db(self):
        from nova_snapshot.conf import database
        from oslo_db import options as db_options

        listed = {o.dest: o.default for o in database.list_opts()['database']}
        self.assertEqual(10, listed['max_pool_size'])
        library = {o.dest: o.default for o in db_options.database_opts}
        self.assertEqual(5, library['max_pool_size'])

    def test_deadlock_is_retried_per_db_max_retries(self):
        from oslo_db import exception as db_exc

        conf = self._conf(db_max_retries=2, db_retry_interval=0,
                          db_inc_retry_interval=False)
        database = db_api.Database(conf)
        self.addCleanup(database.dispose)
        database.create_schema()
        created = database.instance_create({'name': 'x'})
        real = db_api.Database._instance_get
        calls = []

        def deadlock_twice(db, conn, uuid):
            calls.append(uuid)
            if len(calls) <= 2:
                raise db_exc.DBDeadlock()
            return real(db, conn, uuid)

        with mock.patch.object(db_api.Database, '_instance_get',
                               deadlock_twice):
            self.assertEqual(created['uuid'],
                             database.instance_get(created['uuid'])['uuid'])
            self.assertEqual(3, len(calls))
            calls[:] = []
            # A third deadlock is beyond db_max_retries = 2.
            with mock.patch.object(db_api.Database, '_instance_get',
                                   side_effect=db_exc.DBDeadlock()) as get:
                self.assertRaises(db_exc.DBDeadlock, database.instance_get,
                                  created['uuid'])
                self.assertEqual(3, get.call_count)

    def test_nested_calls_retry_only_once(self):
        # instance_update's lost-CAS path calls instance_get: a deadlock
        # there must not multiply the attempts (3 x 3).
        from oslo_db import exception as db_exc

        conf = self._conf(db_max_retries=2, db_retry_interval=0,
                          db_inc_retry_interval=False)
        database = db_api.Database(conf)
        self.addCleanup(database.dispose)
        database.create_schema()
        created = database.instance_create({'name': 'x'})
        with mock.patch.object(db_api.Database, '_instance_get',
                               side_effect=db_exc.DBDeadlock()) as get:
            self.assertRaises(db_exc.DBDeadlock, database.instance_update,
                              created['uuid'], {'name': 'y'},
                              expected_task_state='no-such-state')
        self.assertEqual(3, get.call_count)
        self.assertFalse(hasattr(db_api.Database.dispose, '__wrapped__'))
