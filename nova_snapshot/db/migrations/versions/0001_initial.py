"""Initial schema: instances, BDMs, actions, events, faults, services.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def _dt():
    # Keep microseconds on MySQL/MariaDB: rows are ordered by time.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')


def _timestamps():
    return [sa.Column('created_at', _dt(), nullable=True),
            sa.Column('updated_at', _dt(), nullable=True)]


def _soft_delete():
    return [sa.Column('deleted_at', _dt(), nullable=True),
            sa.Column('deleted', sa.Integer, nullable=False,
                      server_default='0')]


def _str(name, nullable=True, length=255):
    return sa.Column(name, sa.String(length), nullable=nullable)


def upgrade():
    op.create_table(
        'instances',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        _str('uuid', nullable=False, length=36),
        _str('name'),
        _str('project_id'),
        _str('user_id'),
        _str('host'),
        _str('vm_state'),
        _str('task_state'),
        sa.Column('power_state', sa.Integer, nullable=False,
                  server_default='0'),
        sa.Column('progress', sa.Integer, nullable=False, server_default='0'),
        _str('image_ref'),
        sa.Column('flavor', sa.Text, nullable=True),
        _str('root_device_name'),
        sa.Column('launched_at', _dt(), nullable=True),
        sa.Column('metadata', sa.Text, nullable=True),
        sa.Column('system_metadata', sa.Text, nullable=True),
        *_timestamps(),
        *_soft_delete(),
        sa.UniqueConstraint('uuid', name='uniq_instances0uuid'),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    op.create_index('instances_project_id_deleted_idx', 'instances',
                    ['project_id', 'deleted'])
    op.create_index('instances_host_deleted_idx', 'instances',
                    ['host', 'deleted'])

    op.create_table(
        'block_device_mappings',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('instance_uuid', sa.String(36),
                  sa.ForeignKey(
                      'instances.uuid',
                      name='block_device_mappings_instance_uuid_fkey'),
                  nullable=False),
        _str('source_type'),
        _str('destination_type'),
        sa.Column('boot_index', sa.Integer, nullable=True),
        _str('device_name'),
        _str('device_type'),
        _str('disk_bus'),
        _str('guest_format'),
        _str('volume_id'),
        _str('snapshot_id'),
        _str('image_id'),
        sa.Column('volume_size', sa.Integer, nullable=True),
        sa.Column('delete_on_termination', sa.Boolean, nullable=False,
                  server_default=sa.false()),
        sa.Column('no_device', sa.Boolean, nullable=False,
                  server_default=sa.false()),
        _str('tag'),
        _str('volume_type'),
        sa.Column('connection_info', sa.Text, nullable=True),
        _str('attachment_id', length=36),
        *_timestamps(),
        *_soft_delete(),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    op.create_index('block_device_mappings_instance_uuid_idx',
                    'block_device_mappings', ['instance_uuid'])

    op.create_table(
        'instance_actions',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        _str('action', nullable=False),
        _str('instance_uuid', nullable=False, length=36),
        _str('request_id'),
        _str('user_id'),
        _str('project_id'),
        sa.Column('start_time', _dt(), nullable=True),
        sa.Column('finish_time', _dt(), nullable=True),
        _str('message'),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    op.create_index('instance_actions_instance_uuid_request_id_idx',
                    'instance_actions', ['instance_uuid', 'request_id'])

    op.create_table(
        'instance_actions_events',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('action_id', sa.Integer,
                  sa.ForeignKey('instance_actions.id',
                                name='instance_actions_events_action_id_fkey'),
                  nullable=False),
        _str('event', nullable=False),
        sa.Column('start_time', _dt(), nullable=True),
        sa.Column('finish_time', _dt(), nullable=True),
        _str('result'),
        sa.Column('traceback', sa.Text, nullable=True),
        _str('host'),
        sa.Column('details', sa.Text, nullable=True),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    op.create_index('instance_actions_events_action_id_idx',
                    'instance_actions_events', ['action_id'])

    op.create_table(
        'instance_faults',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        _str('instance_uuid', nullable=False, length=36),
        sa.Column('code', sa.Integer, nullable=False),
        _str('message'),
        sa.Column('details', sa.Text, nullable=True),
        _str('host'),
        sa.Column('created_at', _dt(), nullable=True),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    op.create_index('instance_faults_instance_uuid_idx', 'instance_faults',
                    ['instance_uuid'])

    op.create_table(
        'services',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        _str('host', nullable=False),
        _str('binary'),
        _str('topic', nullable=False),
        sa.Column('report_count', sa.Integer, nullable=False,
                  server_default='0'),
        sa.Column('disabled', sa.Boolean, nullable=False,
                  server_default=sa.false()),
        sa.Column('last_seen_up', _dt(), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint('host', 'topic', name='uniq_services0host0topic'),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )


def downgrade():
    for table in ('services', 'instance_faults', 'instance_actions_events',
                  'instance_actions', 'block_device_mappings', 'instances'):
        op.drop_table(table)
