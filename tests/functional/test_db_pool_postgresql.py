"""[database] pool and reconnect options against the real PostgreSQL."""

import unittest

import sqlalchemy as sa

from nova_snapshot import conf as ns_conf
from nova_snapshot.db import api as db_api
from tests.functional import test_db_postgresql


class TestPoolPostgreSQL(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.server_db = test_db_postgresql._PostgreSQL(
            test_db_postgresql.PG_URL)
        self.server_db.create()
        self.addCleanup(self.server_db.drop)
        self.url = self.server_db.url.render_as_string(hide_password=False)

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
