"""Table definitions (SQLAlchemy Core) used by ``db.api`` to build queries.

The alembic scripts in ``migrations/versions`` create the schema and are the
source of truth; these tables must describe the same thing, which
``tests/unit/db/test_migrations.py`` checks by comparing the two.

JSON columns are plain ``Text`` holding ``json.dumps`` output so the three
supported backends store them the same way; ``db.api`` decodes them.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()


def _datetime():
    # MySQL/MariaDB DATETIME drops sub-seconds unless asked; actions and
    # faults are ordered by time, so keep microseconds everywhere.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')


def _timestamps():
    return [
        sa.Column('created_at', _datetime(), nullable=True),
        sa.Column('updated_at', _datetime(), nullable=True),
    ]


def _soft_delete():
    # ``deleted`` is 0 for a live row and the row id once deleted (Nova's
    # convention), so unique constraints can include it later if needed.
    return [
        sa.Column('deleted_at', _datetime(), nullable=True),
        sa.Column('deleted', sa.Integer, nullable=False, server_default='0'),
    ]


instances = sa.Table(
    'instances', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('uuid', sa.String(36), nullable=False),
    sa.Column('name', sa.String(255), nullable=True),
    sa.Column('project_id', sa.String(255), nullable=True),
    sa.Column('user_id', sa.String(255), nullable=True),
    sa.Column('host', sa.String(255), nullable=True),
    sa.Column('vm_state', sa.String(255), nullable=True),
    sa.Column('task_state', sa.String(255), nullable=True),
    sa.Column('power_state', sa.Integer, nullable=False, server_default='0'),
    sa.Column('progress', sa.Integer, nullable=False, server_default='0'),
    sa.Column('image_ref', sa.String(255), nullable=True),
    sa.Column('flavor', sa.Text, nullable=True),
    sa.Column('root_device_name', sa.String(255), nullable=True),
    sa.Column('launched_at', _datetime(), nullable=True),
    sa.Column('metadata', sa.Text, nullable=True),
    sa.Column('system_metadata', sa.Text, nullable=True),
    *_timestamps(),
    *_soft_delete(),
    # What the instance holds on its host (see compute_nodes); a release
    # zeroes them in the same statement that checks them.
    sa.Column('claimed_memory_mb', sa.Integer, nullable=False,
              server_default='0'),
    sa.Column('claimed_disk_gb', sa.Integer, nullable=False,
              server_default='0'),
    sa.Column('claimed_vcpus', sa.Integer, nullable=False,
              server_default='0'),
    # accessIPv4/v6 and OS-DCF:diskConfig of the create request (0003).
    sa.Column('access_ip_v4', sa.String(39), nullable=True),
    sa.Column('access_ip_v6', sa.String(39), nullable=True),
    sa.Column('auto_disk_config', sa.Boolean, nullable=True),
    # The server lock (0004): locked_by is 'owner' or 'admin'.
    sa.Column('locked', sa.Boolean, nullable=False, server_default='0'),
    sa.Column('locked_by', sa.String(5), nullable=True),
    sa.Column('locked_reason', sa.String(255), nullable=True),
    # The keypair of the create (or of a 2.54 rebuild) and its public key
    # then (0005; the keypair itself may be deleted since).
    sa.Column('key_name', sa.String(255), nullable=True),
    sa.Column('key_data', sa.Text, nullable=True),
    # The server description (0006; 2.19 create, update, rebuild).
    sa.Column('description', sa.String(255), nullable=True),
    # The create request a server came from and its place in it (0007;
    # os-multiple-create's min_count/max_count).
    sa.Column('reservation_id', sa.String(255), nullable=True),
    sa.Column('launch_index', sa.Integer, nullable=True),
    sa.UniqueConstraint('uuid', name='uniq_instances0uuid'),
    sa.Index('instances_project_id_deleted_idx', 'project_id', 'deleted'),
    sa.Index('instances_host_deleted_idx', 'host', 'deleted'),
    sa.Index('instances_reservation_id_idx', 'reservation_id'),
)

block_device_mappings = sa.Table(
    'block_device_mappings', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('instance_uuid', sa.String(36),
              sa.ForeignKey('instances.uuid',
                            name='block_device_mappings_instance_uuid_fkey'),
              nullable=False),
    sa.Column('source_type', sa.String(255), nullable=True),
    sa.Column('destination_type', sa.String(255), nullable=True),
    sa.Column('boot_index', sa.Integer, nullable=True),
    sa.Column('device_name', sa.String(255), nullable=True),
    sa.Column('device_type', sa.String(255), nullable=True),
    sa.Column('disk_bus', sa.String(255), nullable=True),
    sa.Column('guest_format', sa.String(255), nullable=True),
    sa.Column('volume_id', sa.String(255), nullable=True),
    sa.Column('snapshot_id', sa.String(255), nullable=True),
    sa.Column('image_id', sa.String(255), nullable=True),
    sa.Column('volume_size', sa.Integer, nullable=True),
    sa.Column('delete_on_termination', sa.Boolean, nullable=False,
              server_default=sa.false()),
    sa.Column('no_device', sa.Boolean, nullable=False,
              server_default=sa.false()),
    sa.Column('tag', sa.String(255), nullable=True),
    sa.Column('volume_type', sa.String(255), nullable=True),
    sa.Column('connection_info', sa.Text, nullable=True),
    sa.Column('attachment_id', sa.String(36), nullable=True),
    *_timestamps(),
    *_soft_delete(),
    sa.Index('block_device_mappings_instance_uuid_idx', 'instance_uuid'),
)

instance_actions = sa.Table(
    'instance_actions', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('action', sa.String(255), nullable=False),
    sa.Column('instance_uuid', sa.String(36), nullable=False),
    sa.Column('request_id', sa.String(255), nullable=True),
    sa.Column('user_id', sa.String(255), nullable=True),
    sa.Column('project_id', sa.String(255), nullable=True),
    sa.Column('start_time', _datetime(), nullable=True),
    sa.Column('finish_time', _datetime(), nullable=True),
    sa.Column('message', sa.String(255), nullable=True),
    sa.Index('instance_actions_instance_uuid_request_id_idx',
             'instance_uuid', 'request_id'),
)

instance_actions_events = sa.Table(
    'instance_actions_events', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('action_id', sa.Integer,
              sa.ForeignKey('instance_actions.id',
                            name='instance_actions_events_action_id_fkey'),
              nullable=False),
    sa.Column('event', sa.String(255), nullable=False),
    sa.Column('start_time', _datetime(), nullable=True),
    sa.Column('finish_time', _datetime(), nullable=True),
    sa.Column('result', sa.String(255), nullable=True),
    sa.Column('traceback', sa.Text, nullable=True),
    sa.Column('host', sa.String(255), nullable=True),
    sa.Column('details', sa.Text, nullable=True),
    sa.Index('instance_actions_events_action_id_idx', 'action_id'),
)

instance_faults = sa.Table(
    'instance_faults', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('instance_uuid', sa.String(36), nullable=False),
    sa.Column('code', sa.Integer, nullable=False),
    sa.Column('message', sa.String(255), nullable=True),
    sa.Column('details', sa.Text, nullable=True),
    sa.Column('host', sa.String(255), nullable=True),
    sa.Column('created_at', _datetime(), nullable=True),
    sa.Index('instance_faults_instance_uuid_idx', 'instance_uuid'),
)

# os-keypairs (0005): a keypair belongs to a user, unique by name for it.
key_pairs = sa.Table(
    'key_pairs', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('name', sa.String(255), nullable=False),
    sa.Column('user_id', sa.String(255), nullable=False),
    sa.Column('fingerprint', sa.String(255), nullable=True),
    sa.Column('public_key', sa.Text, nullable=True),
    sa.Column('type', sa.String(5), nullable=False, server_default='ssh'),
    *_timestamps(),
    sa.UniqueConstraint('user_id', 'name',
                        name='uniq_key_pairs0user_id0name'),
)

services = sa.Table(
    'services', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('host', sa.String(255), nullable=False),
    sa.Column('binary', sa.String(255), nullable=True),
    sa.Column('topic', sa.String(255), nullable=False),
    sa.Column('report_count', sa.Integer, nullable=False, server_default='0'),
    sa.Column('disabled', sa.Boolean, nullable=False,
              server_default=sa.false()),
    sa.Column('last_seen_up', _datetime(), nullable=True),
    *_timestamps(),
    sa.Column('disabled_reason', sa.String(255), nullable=True),
    # An operator's "this host is down" (os-services force-down, 2.11).
    sa.Column('forced_down', sa.Boolean, nullable=False,
              server_default=sa.false()),
    sa.UniqueConstraint('host', 'topic', name='uniq_services0host0topic'),
)


def _count(name):
    return sa.Column(name, sa.Integer, nullable=False, server_default='0')


def _ratio(name):
    return sa.Column(name, sa.Float, nullable=False, server_default='1.0')


# One row per compute host. Totals, reservations and ratios come with the
# heartbeat; the *_used counters move only by claims and releases, so a
# heartbeat can never write back a stale usage.
compute_nodes = sa.Table(
    'compute_nodes', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('host', sa.String(255), nullable=False),
    sa.Column('hypervisor_hostname', sa.String(255), nullable=True),
    _count('vcpus'), _count('memory_mb'), _count('local_gb'),
    _count('vcpus_used'), _count('memory_mb_used'), _count('local_gb_used'),
    _count('running_vms'),
    _count('vcpus_reserved'), _count('memory_mb_reserved'),
    _count('local_gb_reserved'),
    _ratio('cpu_allocation_ratio'), _ratio('ram_allocation_ratio'),
    _ratio('disk_allocation_ratio'),
    *_timestamps(),
    sa.UniqueConstraint('host', name='uniq_compute_nodes0host'),
)
