"""Compute capacity: compute_nodes, claims on instances, service status.

* ``compute_nodes``: one row per compute host. The totals and allocation
  ratios come with the service's heartbeat; the ``*_used`` counters are
  moved only by claims and releases (compare-and-swap ``UPDATE``s).
* ``instances.claimed_*``: what the instance holds on its host, so a
  release subtracts exactly what was claimed, once.
* ``services.disabled_reason`` and ``forced_down`` (os-services).

Existing live instances get their claims from their flavor (no root disk
for a server booted from a volume); the counters are filled from those by
the first heartbeat of each host.

Revision ID: 0002
Revises: 0001_initial
Create Date: 2026-11-27
"""

import json

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def _dt():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')


def _count(name):
    return sa.Column(name, sa.Integer, nullable=False, server_default='0')


def _ratio(name):
    return sa.Column(name, sa.Float, nullable=False, server_default='1.0')


def upgrade():
    op.create_table(
        'compute_nodes',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('hypervisor_hostname', sa.String(255), nullable=True),
        _count('vcpus'), _count('memory_mb'), _count('local_gb'),
        _count('vcpus_used'), _count('memory_mb_used'),
        _count('local_gb_used'), _count('running_vms'),
        _count('vcpus_reserved'), _count('memory_mb_reserved'),
        _count('local_gb_reserved'),
        _ratio('cpu_allocation_ratio'), _ratio('ram_allocation_ratio'),
        _ratio('disk_allocation_ratio'),
        sa.Column('created_at', _dt(), nullable=True),
        sa.Column('updated_at', _dt(), nullable=True),
        sa.UniqueConstraint('host', name='uniq_compute_nodes0host'),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    with op.batch_alter_table('instances') as batch:
        batch.add_column(_count('claimed_memory_mb'))
        batch.add_column(_count('claimed_disk_gb'))
        batch.add_column(_count('claimed_vcpus'))
    with op.batch_alter_table('services') as batch:
        batch.add_column(sa.Column('disabled_reason', sa.String(255),
                                   nullable=True))
        batch.add_column(sa.Column('forced_down', sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    _backfill_claims()


def _backfill_claims():
    instances = sa.table(
        'instances', sa.column('uuid'), sa.column('host'),
        sa.column('image_ref'), sa.column('flavor'), sa.column('deleted'),
        sa.column('claimed_memory_mb'), sa.column('claimed_disk_gb'),
        sa.column('claimed_vcpus'))
    bdms = sa.table(
        'block_device_mappings', sa.column('instance_uuid'),
        sa.column('boot_index'), sa.column('destination_type'),
        sa.column('deleted'))
    conn = op.get_bind()
    volume_roots = {row.instance_uuid for row in conn.execute(
        sa.select(bdms.c.instance_uuid).where(
            bdms.c.deleted == 0, bdms.c.boot_index == 0,
            bdms.c.destination_type == 'volume'))}
    rows = conn.execute(sa.select(
        instances.c.uuid, instances.c.image_ref, instances.c.flavor).where(
        instances.c.deleted == 0, instances.c.host.isnot(None))).fetchall()
    for row in rows:
        try:
            flavor = json.loads(row.flavor or 'null') or {}
        except ValueError:
            continue
        volume_backed = row.uuid in volume_roots or not row.image_ref
        conn.execute(instances.update().where(
            instances.c.uuid == row.uuid).values(
            claimed_memory_mb=int(flavor.get('memory_mb') or 0),
            claimed_vcpus=int(flavor.get('vcpus') or 0),
            claimed_disk_gb=0 if volume_backed
            else int(flavor.get('root_gb') or 0)))


def downgrade():
    with op.batch_alter_table('services') as batch:
        batch.drop_column('forced_down')
        batch.drop_column('disabled_reason')
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('claimed_vcpus')
        batch.drop_column('claimed_disk_gb')
        batch.drop_column('claimed_memory_mb')
    op.drop_table('compute_nodes')
