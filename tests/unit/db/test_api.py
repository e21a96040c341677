"""db.api on SQLite: a fresh database file per test."""

import os
import shutil
import tempfile
import unittest

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
        self.assertEqual('0001_initial', database.schema_version())
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
