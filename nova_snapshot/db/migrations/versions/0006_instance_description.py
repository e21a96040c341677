"""Server description (Nova's ``display_description``, microversion 2.19).

* ``instances.description``: the ``description`` a create, an update
  (``PUT /servers/{id}``) or a rebuild gave, at most 255 characters (the
  API's limit); NULL when none was given or it was removed (null).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('description', sa.String(255),
                                   nullable=True))


def downgrade():
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('description')
