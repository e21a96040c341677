"""Alembic environment for the nova-snapshot state database.

``db.api.Database.create_schema()`` hands over an open connection through
``config.attributes['connection']``; the ``alembic`` command line instead
reads ``sqlalchemy.url`` from the alembic config.
"""

from alembic import context
import sqlalchemy as sa

config = context.config


def _run(connection):
    context.configure(connection=connection, target_metadata=None,
                      render_as_batch=connection.dialect.name == 'sqlite')
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get('connection')
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option('sqlalchemy.url'),
                              poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def run_migrations_offline():
    context.configure(url=config.get_main_option('sqlalchemy.url'),
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
