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


class _ManageTestBase(unittest.TestCase):

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


class TestManageDB(_ManageTestBase):

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


class TestManageService(_ManageTestBase):
    """service list / disable / enable on a synced database."""

    def _database(self):
        database = db_api.Database('sqlite:///' + self.db_path)
        self.addCleanup(database.dispose)
        return database

    def test_disable_enable_and_list(self):
        self._run('db', 'sync')
        database = self._database()
        database.service_update('cmp1', 'nova-snapshot-compute',
                                binary='nova-snapshot-compute')
        rc, out = self._run('service', 'disable', 'cmp1', '--reason',
                            'new disks')
        self.assertEqual((0, 'Compute service on cmp1 is disabled '
                             '(new disks)\n'), (rc, out))
        service = database.service_get_by_host_and_binary(
            'cmp1', 'nova-snapshot-compute')
        self.assertEqual((True, 'new disks'), (service['disabled'],
                                               service['disabled_reason']))
        rc, out = self._run('service', 'list')
        header, row = out.splitlines()
        self.assertEqual(['Id', 'Binary', 'Host', 'Zone', 'Status', 'State'],
                         header.split()[:6])
        self.assertEqual(['1', 'nova-snapshot-compute', 'cmp1', 'nova',
                          'disabled', 'up'], row.split()[:6])
        self.assertTrue(row.endswith('new disks'))
        rc, out = self._run('service', 'enable', 'cmp1')
        self.assertEqual(0, rc)
        service = database.service_get(service['id'])
        self.assertEqual((False, None), (service['disabled'],
                                         service['disabled_reason']))

    def test_unknown_host_is_an_error(self):
        self._run('db', 'sync')
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc, _out = self._run('service', 'disable', 'nowhere')
        self.assertEqual(1, rc)
        self.assertIn('nowhere', err.getvalue())
