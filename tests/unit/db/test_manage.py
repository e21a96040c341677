"""nova-snapshot-manage db sync / db version."""

import contextlib
import io
import os
import shutil
import tempfile
import unittest

from alembic import config as alembic_config
from alembic import script

from nova_snapshot.cmd import manage
from nova_snapshot.db import api as db_api


def _head():
    config = alembic_config.Config()
    config.set_main_option('script_location', db_api.MIGRATIONS_DIR)
    return script.ScriptDirectory.from_config(config).get_current_head()


class TestManageDB(unittest.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-snapshot-manage-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.db_path = os.path.join(tmp, 'lib', 'state.sqlite')
        self.conf_file = os.path.join(tmp, 'nova-snapshot.conf')
        with open(self.conf_file, 'w') as f:
            f.write('[database]\nconnection = sqlite:///%s\n' % self.db_path)

    def _run(self, *argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = manage.main(['--config-file', self.conf_file] + list(argv))
        return rc, out.getvalue()

    def test_version_then_sync(self):
        rc, out = self._run('db', 'version')
        self.assertEqual(0, rc)
        self.assertIn('None', out)

        rc, out = self._run('db', 'sync')
        self.assertEqual(0, rc)
        self.assertIn(_head(), out)

        rc, out = self._run('db', 'version')
        self.assertEqual(_head() + '\n', out)

        database = db_api.Database('sqlite:///' + self.db_path)
        self.addCleanup(database.dispose)
        self.assertEqual([], database.instance_get_all())

    def test_sync_twice(self):
        self._run('db', 'sync')
        rc, out = self._run('db', 'sync')
        self.assertEqual(0, rc)
        self.assertIn(_head(), out)

    def test_options_after_command(self):
        rc = manage.main(['db', 'sync', '--config-file', self.conf_file])
        self.assertEqual(0, rc)
        self.assertTrue(os.path.exists(self.db_path))

    def test_unknown_command(self):
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit) as caught:
                manage.main(['db', 'drop'])
        self.assertEqual(2, caught.exception.code)
