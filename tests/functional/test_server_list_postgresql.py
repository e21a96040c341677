"""GET /servers and /servers/detail against the real PostgreSQL.

The same tests as on SQLite (``tests/unit/api/server_list_tests``), where
PostgreSQL's own regular expressions (``~``), JSON operators and NULL
ordering are used, and the statement count of a page is checked for 5 and
50 servers. One database per class, emptied between tests; an unreachable
server is an error, never a skip.
"""

import unittest

from nova_snapshot.db import api as db_api
from nova_snapshot.db import models
from tests.functional import test_db_postgresql
from tests.unit.api import server_list_tests


class _PostgreSQL:

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server_db = test_db_postgresql._PostgreSQL(
            test_db_postgresql.PG_URL)
        cls.server_db.create()
        try:
            cls.shared_db = db_api.Database(
                cls.server_db.url.render_as_string(hide_password=False))
            cls.shared_db.create_schema()
        except Exception:
            cls.server_db.drop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.shared_db.dispose()
        cls.server_db.drop()
        super().tearDownClass()

    def setUp(self):
        self.db = self.shared_db
        with self.db.engine.begin() as conn:
            for table in reversed(models.metadata.sorted_tables):
                conn.execute(table.delete())
        super().setUp()

    def test_backend_is_postgresql(self):
        self.assertEqual('postgresql', self.db.engine.dialect.name)


class TestServerListPostgreSQL(_PostgreSQL, server_list_tests.ServerListTests,
                               unittest.TestCase):

    def test_regex_postgresql_refuses_is_a_400(self):
        self.db.instance_create({'name': 'x', 'project_id': 'project-a'})
        # Python compiles a lookbehind; so does PostgreSQL 12+, but not a
        # named group in Python's syntax.
        body = self._list('name=(%3FP<n>x)', status=400)
        self.assertIn('Invalid regular expression',
                      body['badRequest']['message'])


class TestStatementCountPostgreSQL(_PostgreSQL,
                                   server_list_tests.StatementCountTests,
                                   unittest.TestCase):
    pass
