"""Keypairs (Nova's os-keypairs) and the server's key.

* ``key_pairs``: one row per keypair; a keypair belongs to a user (not a
  project), so ``(user_id, name)`` is unique. ``type`` is ``ssh`` or
  ``x509`` (Nova's enum values, kept as a short string as ``locked_by``
  is). Rows are deleted, not soft-deleted: nothing refers to a keypair
  by id once it is gone (a server keeps the name and the public key).
* ``instances.key_name`` and ``instances.key_data``: the keypair a server
  was created (or, from 2.54, rebuilt) with, and its public key at that
  time, as Nova keeps them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _datetime():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')


def upgrade():
    op.create_table(
        'key_pairs',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(255), nullable=False),
        sa.Column('user_id', sa.String(255), nullable=False),
        sa.Column('fingerprint', sa.String(255), nullable=True),
        sa.Column('public_key', sa.Text, nullable=True),
        sa.Column('type', sa.String(5), nullable=False,
                  server_default='ssh'),
        sa.Column('created_at', _datetime(), nullable=True),
        sa.Column('updated_at', _datetime(), nullable=True),
        sa.UniqueConstraint('user_id', 'name',
                            name='uniq_key_pairs0user_id0name'),
    )
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('key_name', sa.String(255),
                                   nullable=True))
        batch.add_column(sa.Column('key_data', sa.Text, nullable=True))


def downgrade():
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('key_data')
        batch.drop_column('key_name')
    op.drop_table('key_pairs')
