"""Compute nodes, claims and service rows on SQLite; the 0002 backfill."""

import json
import os
import shutil
import tempfile
import unittest

from alembic import command as alembic_command
from alembic import config as alembic_config
import sqlalchemy as sa

from nova_snapshot.db import api as db_api
from tests.unit.db import capacity_tests


class TestCapacitySQLite(capacity_tests.CapacityTests, unittest.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-snapshot-cap-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.url = 'sqlite:///' + os.path.join(tmp, 'state.sqlite')
        self.db = db_api.Database(self.url)
        self.addCleanup(self.db.dispose)
        self.db.create_schema()


class TestBackfillClaims(unittest.TestCase):
    """Instances from before 0002 get claims from their flavor, and the
    first repair fills the counters from them."""

    def test_upgrade_backfills_claims(self):
        tmp = tempfile.mkdtemp(prefix='nova-snapshot-mig-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        database = db_api.Database('sqlite:///' + os.path.join(tmp, 's.db'))
        self.addCleanup(database.dispose)
        config = alembic_config.Config()
        config.set_main_option('script_location', db_api.MIGRATIONS_DIR)
        with database.engine.begin() as conn:
            config.attributes['connection'] = conn
            alembic_command.upgrade(config, '0001_initial')
        flavor = json.dumps({'memory_mb': 128, 'vcpus': 2, 'root_gb': 5})
        rows = [('image', 'img', 0, 'h1'), ('bfv', 'img', 0, 'h1'),
                ('gone', 'img', 7, 'h1'), ('nohost', 'img', 0, None)]
        with database.engine.begin() as conn:
            for uuid, image_ref, deleted, host in rows:
                conn.execute(sa.text(
                    'INSERT INTO instances (uuid, host, image_ref, flavor, '
                    'deleted, power_state, progress) VALUES (:u, :h, :i, '
                    ':f, :d, 0, 0)'), dict(u=uuid, h=host, i=image_ref,
                                           f=flavor, d=deleted))
            conn.execute(sa.text(
                "INSERT INTO block_device_mappings (instance_uuid, "
                "boot_index, destination_type, deleted, "
                "delete_on_termination, no_device) VALUES "
                "('bfv', 0, 'volume', 0, 0, 0)"))
        database.create_schema()
        with database.engine.connect() as conn:
            claims = {r.uuid: (r.claimed_memory_mb, r.claimed_disk_gb,
                               r.claimed_vcpus) for r in conn.execute(
                sa.text('SELECT uuid, claimed_memory_mb, claimed_disk_gb, '
                        'claimed_vcpus FROM instances'))}
        self.assertEqual({'image': (128, 5, 2), 'bfv': (128, 0, 2),
                          'gone': (0, 0, 0), 'nohost': (0, 0, 0)}, claims)
        database.compute_node_update('h1', {'memory_mb': 4096})
        self.assertEqual({'memory_mb_used': 256, 'local_gb_used': 5,
                          'vcpus_used': 4},
                         database.compute_node_repair_usage('h1'))
