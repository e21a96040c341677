"""db.api against the real PostgreSQL and MariaDB on this machine.

Each test class creates its own database with a unique name (so concurrent
runs never collide), runs the alembic migrations into it, runs every test of
``DatabaseAPITests`` (including the many-connection compare-and-swap race)
and drops the database at the end. A server that is not reachable is an
error, never a skip.

Override the servers with NOVA_SNAPSHOT_TEST_PG_URL and
NOVA_SNAPSHOT_TEST_MYSQL_URL (URLs whose database part is ignored).
"""

import os
import unittest
import uuid

import sqlalchemy as sa

from nova_snapshot.db import api as db_api
from tests.unit.db import api_tests

PG_URL = os.environ.get(
    'NOVA_SNAPSHOT_TEST_PG_URL',
    'postgresql+psycopg2://postgres@127.0.0.1:5432/nova_snapshot_test')
MYSQL_URL = os.environ.get(
    'NOVA_SNAPSHOT_TEST_MYSQL_URL',
    'mysql+pymysql://root@127.0.0.1:3306/nova_snapshot_test')


class _ServerDatabase:
    """Create and drop one uniquely named database on a server."""

    ADMIN_DB = None

    def __init__(self, base_url):
        self.name = 'nova_snapshot_test_%s' % uuid.uuid4().hex[:12]
        base = sa.engine.make_url(base_url)
        self.url = base.set(database=self.name)
        # URL is a named tuple; set() would ignore database=None.
        self._admin_url = base._replace(database=self.ADMIN_DB)

    def _admin(self, statement):
        engine = sa.create_engine(self._admin_url, poolclass=sa.pool.NullPool,
                                  isolation_level='AUTOCOMMIT')
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def create(self):
        self._admin('CREATE DATABASE %s' % self.name)

    def drop(self):
        self._admin(self.DROP % self.name)


class _PostgreSQL(_ServerDatabase):
    ADMIN_DB = 'postgres'
    # FORCE: a connection a failed test leaked must not keep the DB alive.
    DROP = 'DROP DATABASE IF EXISTS %s WITH (FORCE)'


class _MariaDB(_ServerDatabase):
    ADMIN_DB = None
    DROP = 'DROP DATABASE IF EXISTS %s'

    def create(self):
        self._admin('CREATE DATABASE %s CHARACTER SET utf8mb4' % self.name)


def fresh_postgresql(test):
    """A new, empty PostgreSQL database dropped when ``test`` ends; returns
    it and its URL."""
    server_db = _PostgreSQL(PG_URL)
    server_db.create()
    test.addCleanup(server_db.drop)
    return server_db, server_db.url.render_as_string(hide_password=False)


class ServerDatabaseMixin:
    """Per class: a fresh database on ``SERVER`` at ``BASE_URL`` with the
    schema migrated in, shared by the class's tests as ``self.db`` and
    dropped at the end."""

    SERVER = None
    BASE_URL = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server_db = cls.SERVER(cls.BASE_URL)
        cls.server_db.create()
        cls.url = cls.server_db.url.render_as_string(hide_password=False)
        cls.shared_db = db_api.Database(cls.url)
        try:
            cls.shared_db.create_schema()
        except Exception:
            cls._drop()
            raise

    @classmethod
    def _drop(cls):
        cls.shared_db.dispose()
        cls.server_db.drop()

    @classmethod
    def tearDownClass(cls):
        cls._drop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.db = self.shared_db


class _ServerTestBase(ServerDatabaseMixin, api_tests.DatabaseAPITests):
    # More racers than on SQLite: these servers really run them in parallel.
    THREADS = 12
    ROUNDS = 6

    def test_backend_is_the_server(self):
        self.assertEqual(self.BACKEND, self.db.engine.dialect.name)
        self.assertEqual(self.server_db.name, self.db.engine.url.database)


class TestDatabasePostgreSQL(_ServerTestBase, unittest.TestCase):
    SERVER = _PostgreSQL
    BASE_URL = PG_URL
    BACKEND = 'postgresql'


class TestDatabaseMariaDB(_ServerTestBase, unittest.TestCase):
    SERVER = _MariaDB
    BASE_URL = MYSQL_URL
    BACKEND = 'mysql'
