"""Claims, releases and repairs against the real PostgreSQL and MariaDB.

The race that matters runs here: creators on separate connections claim on
one small host at the same time and the server's row locking, not Python,
decides who wins; the host is never overcommitted. Each class uses its own
freshly created database (``test_db_postgresql``'s helpers).
"""

import unittest

from nova_snapshot.db import api as db_api
from tests.functional import test_db_postgresql as server_dbs
from tests.unit.db import capacity_tests


class _ServerCapacityBase(capacity_tests.CapacityTests):
    SERVER = None
    BASE_URL = None
    CLAIM_THREADS = 24

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

    def test_backend_is_the_server(self):
        self.assertEqual(self.BACKEND, self.db.engine.dialect.name)

    def test_repeated_races_never_overcommit(self):
        for _round in range(3):
            self.test_concurrent_claims_never_overcommit()


class TestClaimsPostgreSQL(_ServerCapacityBase, unittest.TestCase):
    SERVER = server_dbs._PostgreSQL
    BASE_URL = server_dbs.PG_URL
    BACKEND = 'postgresql'


class TestClaimsMariaDB(_ServerCapacityBase, unittest.TestCase):
    SERVER = server_dbs._MariaDB
    BASE_URL = server_dbs.MYSQL_URL
    BACKEND = 'mysql'
