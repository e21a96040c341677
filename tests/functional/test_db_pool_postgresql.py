"""[database] pool and reconnect options against the real PostgreSQL."""

import threading
import time
import unittest

import sqlalchemy as sa

from nova_snapshot import conf as ns_conf
from nova_snapshot.db import api as db_api
from tests.functional import test_db_postgresql


class TestPoolPostgreSQL(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.server_db, self.url = test_db_postgresql.fresh_postgresql(self)

    def _database(self, **options):
        conf = ns_conf.new_conf([])
        conf.set_override('connection', self.url, group='database')
        for name, value in options.items():
            conf.set_override(name, value, group='database')
        database = db_api.Database(conf)
        self.addCleanup(database.dispose)
        database.create_schema()
        return database

    def test_pool_takes_the_configured_sizes(self):
        database = self._database(max_pool_size=3, max_overflow=2,
                                  pool_timeout=1,
                                  connection_recycle_time=120)
        pool = database.engine.pool
        self.assertEqual(3, pool.size())
        self.assertEqual(2, pool._max_overflow)
        self.assertEqual(1, pool.timeout())
        self.assertEqual(120, pool._recycle)
        # Five connections at once, then the sixth waits pool_timeout.
        held = [database.engine.connect() for _ in range(5)]
        try:
            self.assertRaises(sa.exc.TimeoutError, database.engine.connect)
        finally:
            for conn in held:
                conn.close()

    def test_defaults_are_ours(self):
        pool = self._database().engine.pool
        self.assertEqual(10, pool.size())
        self.assertEqual(30, pool._max_overflow)

    def test_a_killed_connection_is_replaced(self):
        database = self._database(max_pool_size=2)
        created = database.instance_create({'name': 'before'})
        # The server drops every connection of this database (a restart or
        # failover looks the same to the pool).
        admin = sa.create_engine(
            self.server_db._admin_url, poolclass=sa.pool.NullPool,
            isolation_level='AUTOCOMMIT')
        try:
            with admin.connect() as conn:
                killed = conn.execute(sa.text(
                    'SELECT count(pg_terminate_backend(pid)) FROM '
                    'pg_stat_activity WHERE datname = :name'),
                    {'name': self.server_db.name}).scalar()
        finally:
            admin.dispose()
        self.assertGreaterEqual(killed, 1)
        self.assertEqual('before',
                         database.instance_get(created['uuid'])['name'])


class TestDeadlockRetryPostgreSQL(unittest.TestCase):
    """A real deadlock: the loser's method is run again and succeeds."""

    def setUp(self):
        super().setUp()
        _server_db, url = test_db_postgresql.fresh_postgresql(self)
        conf = ns_conf.new_conf([])
        conf.set_override('connection', url, group='database')
        conf.set_override('db_retry_interval', 0, group='database')
        self.db = db_api.Database(conf)
        self.addCleanup(self.db.dispose)
        self.db.create_schema()
        self.other = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.addCleanup(self.other.dispose)

    def test_deadlocked_destroy_is_retried(self):
        instance = self.db.instance_create({'name': 'x'})
        uuid = instance['uuid']
        self.db.bdm_create({'instance_uuid': uuid, 'boot_index': 0})
        deadlocks = []

        def seen(context):
            code = getattr(context.original_exception, 'pgcode', None)
            if code == '40P01':
                deadlocks.append(code)

        sa.event.listen(self.db.engine, 'handle_error', seen)
        locked = threading.Event()
        outcome = {}

        def other_order():
            # Locks the BDM first, then the instance: the opposite order
            # of instance_destroy. Its deadlock check is slow on purpose,
            # so instance_destroy's transaction is the one PostgreSQL
            # aborts.
            with self.other.begin() as conn:
                conn.exec_driver_sql("SET LOCAL deadlock_timeout = '10s'")
                conn.execute(sa.text(
                    'UPDATE block_device_mappings SET device_name = :d '
                    'WHERE instance_uuid = :u'), {'d': '/dev/vdz', 'u': uuid})
                locked.set()
                time.sleep(0.5)  # instance_destroy holds the instance now
                conn.execute(sa.text(
                    'UPDATE instances SET name = :n WHERE uuid = :u'),
                    {'n': 'renamed', 'u': uuid})
            outcome['other'] = 'committed'

        thread = threading.Thread(target=other_order)
        thread.start()
        locked.wait(10)
        destroyed = self.db.instance_destroy(uuid)
        thread.join(30)
        self.assertEqual('committed', outcome.get('other'))
        self.assertEqual(['40P01'], deadlocks)
        self.assertNotEqual(0, destroyed['deleted'])
        self.assertEqual('renamed', destroyed['name'])
