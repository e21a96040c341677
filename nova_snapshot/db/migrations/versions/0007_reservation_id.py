"""Multiple create (os-multiple-create): the request a server came from.

* ``instances.reservation_id``: Nova's ``r-`` id of the create request
  (every server of one ``min_count``/``max_count`` request shares it); the
  ``reservation_id`` list filter and ``OS-EXT-SRV-ATTR:reservation_id``
  (2.3) read it. NULL for servers created before this revision.
* ``instances.launch_index``: the server's 0-based place in its request
  (``OS-EXT-SRV-ATTR:launch_index``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('reservation_id', sa.String(255),
                                   nullable=True))
        batch.add_column(sa.Column('launch_index', sa.Integer,
                                   nullable=True))
        batch.create_index('instances_reservation_id_idx',
                           ['reservation_id'])


def downgrade():
    with op.batch_alter_table('instances') as batch:
        batch.drop_index('instances_reservation_id_idx')
        batch.drop_column('launch_index')
        batch.drop_column('reservation_id')
