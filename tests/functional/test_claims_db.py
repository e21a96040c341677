"""Claims, releases and repairs against the real PostgreSQL and MariaDB.

The race that matters runs here: creators on separate connections claim on
one small host at the same time and the server's row locking, not Python,
decides who wins; the host is never overcommitted. Each class uses its own
freshly created database (``test_db_postgresql``'s helpers).
"""

import unittest

from tests.functional import test_db_postgresql as server_dbs
from tests.unit.db import capacity_tests


class _ServerCapacityBase(server_dbs.ServerDatabaseMixin,
                          capacity_tests.CapacityTests):
    CLAIM_THREADS = 24

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
