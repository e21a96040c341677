"""Access addresses and disk config of a server (Nova's create fields).

* ``instances.access_ip_v4`` / ``access_ip_v6``: the ``accessIPv4`` and
  ``accessIPv6`` a server was created with, in canonical text (39
  characters hold any IPv6 address, as Nova's column does).
* ``instances.auto_disk_config``: ``OS-DCF:diskConfig`` AUTO (true) or
  MANUAL (false); NULL for servers made before this revision, which show
  MANUAL as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('access_ip_v4', sa.String(39),
                                   nullable=True))
        batch.add_column(sa.Column('access_ip_v6', sa.String(39),
                                   nullable=True))
        batch.add_column(sa.Column('auto_disk_config', sa.Boolean,
                                   nullable=True))


def downgrade():
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('auto_disk_config')
        batch.drop_column('access_ip_v6')
        batch.drop_column('access_ip_v4')
