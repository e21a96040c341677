"""GET /servers and /servers/detail on SQLite (see server_list_tests)."""

import unittest

from nova_snapshot.db import api as db_api
from tests.unit.api import server_list_tests


class _SQLite:

    def setUp(self):
        self.db = db_api.Database('sqlite://')
        self.addCleanup(self.db.dispose)
        self.db.create_schema()
        super().setUp()


class TestServerListSQLite(_SQLite, server_list_tests.ServerListTests,
                           unittest.TestCase):
    pass


class TestStatementCountSQLite(_SQLite, server_list_tests.StatementCountTests,
                               unittest.TestCase):
    pass
