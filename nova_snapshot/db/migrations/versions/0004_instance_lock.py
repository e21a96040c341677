"""Server lock (Nova's os-lock-server action).

* ``instances.locked``: true while the server is locked; state-changing
  actions by a user who may not override the lock answer 409.
* ``instances.locked_by``: ``owner`` or ``admin``, who locked it (Nova's
  enum values; kept as a short string so the three backends store it the
  same way without a native enum type). NULL while unlocked.
* ``instances.locked_reason``: the reason given with the lock (2.73).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances') as batch:
        # A plain '0' default, not sa.false(): an expression default makes
        # alembic rebuild the SQLite table, which the foreign keys on
        # instances.uuid refuse; '0' reads as false on every backend.
        batch.add_column(sa.Column('locked', sa.Boolean, nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('locked_by', sa.String(5),
                                   nullable=True))
        batch.add_column(sa.Column('locked_reason', sa.String(255),
                                   nullable=True))


def downgrade():
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('locked_reason')
        batch.drop_column('locked_by')
        batch.drop_column('locked')
