"""[database]: oslo.db's own options, with defaults sized for this API.

The option names and meanings are oslo.db's (the same as Nova's, Glance's
and Cinder's ``[database]``), registered on the ConfigOpts passed in:

* ``connection``: the SQLAlchemy URL (default: a local SQLite file).
* ``max_pool_size``, ``max_overflow``, ``pool_timeout``: the connection
  pool of each process (ignored by SQLite).
* ``connection_recycle_time``: connections older than this are replaced.
* ``max_retries``/``retry_interval``: attempts to reach the database at
  start-up; a dropped connection is detected on checkout and replaced.
* ``db_max_retries``/``db_retry_interval``/``db_inc_retry_interval``/
  ``db_max_retry_interval``: a method whose transaction deadlocked is run
  again (``use_db_reconnect`` also retries on a lost connection).

Why these pool defaults: every request thread holds at most one pooled
connection at a time (``db.api`` takes one per method and returns it), so
a process never waits on its pool while ``max_pool_size + max_overflow`` is
at least its request threads. The API serves 50 concurrent clients with at
most 32 request threads per process (``[api] server_threads``; the uWSGI
configuration runs 2 processes of 16 threads), so 10 + 30 leaves headroom
for the compute services sharing the class. Ten connections stay open: a
steady load of 50 clients doing short queries keeps about that many busy.
Two API processes then open at most 80 connections, under PostgreSQL's
default ``max_connections`` of 100. oslo.db's own defaults (5 + 50, with
SQLAlchemy's 30 s pool timeout) would also do; "QueuePool limit of size 5
overflow 10 reached" came from the old pool of 5 + SQLAlchemy's 10.
"""

import copy

from oslo_db import options as db_options

GROUP = 'database'

DEFAULT_CONNECTION = 'sqlite:////var/lib/nova-snapshot/nova_snapshot.sqlite'
MAX_POOL_SIZE = 10
MAX_OVERFLOW = 30
POOL_TIMEOUT = 30


def register_opts(conf):
    # Registers oslo.db's options in [database] of this ConfigOpts only,
    # then gives them our defaults there (set_defaults works per conf).
    db_options.set_defaults(conf, connection=DEFAULT_CONNECTION,
                            max_pool_size=MAX_POOL_SIZE,
                            max_overflow=MAX_OVERFLOW,
                            pool_timeout=POOL_TIMEOUT)


_DEFAULTS = {'connection': DEFAULT_CONNECTION, 'max_pool_size': MAX_POOL_SIZE,
             'max_overflow': MAX_OVERFLOW, 'pool_timeout': POOL_TIMEOUT}


def list_opts():
    # Copies, so the sample shows our defaults without changing oslo.db's
    # module-level options that other projects in the process may use.
    opts = []
    for group, group_opts in db_options.list_opts():
        if group != GROUP:
            continue
        for opt in group_opts:
            opt = copy.deepcopy(opt)
            if opt.dest in _DEFAULTS:
                opt.default = _DEFAULTS[opt.dest]
            opts.append(opt)
    return {GROUP: opts}
