"""The state database: plain dicts in, plain dicts out.

One :class:`Database` per process wraps one SQLAlchemy engine (thread safe;
every method takes its own connection from the pool and its own
transaction). Every state change that can race is one ``UPDATE ... WHERE``
whose row count tells whether it won, never a read followed by a write.

Timestamps are naive UTC ``datetime`` objects (``oslo_utils.timeutils``).
"""

import functools
import json
import os
import threading
import uuid as uuidlib

from alembic import command as alembic_command
from alembic import config as alembic_config
from alembic import migration
from oslo_config import cfg
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import engines
from oslo_utils import timeutils
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy import exc as sa_exc

from nova_snapshot.conf import database as database_conf

from nova_snapshot.compute import task_states
from nova_snapshot.compute import vm_states
from nova_snapshot.db import models
from nova_snapshot import exception


class _Unset:
    def __repr__(self):
        return 'UNSET'


#: "No expectation" for ``instance_update``; ``None`` is a real task_state.
UNSET = _Unset()

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'migrations')
# Seconds SQLite waits on a locked database before giving up: long enough
# for the API and a compute service sharing one file on a small host.
SQLITE_BUSY_TIMEOUT = 30

_JSON_DEFAULTS = {'flavor': None, 'metadata': {}, 'system_metadata': {}}
_EVENT_RESULTS = {'success': 'Success', 'error': 'Error'}

_instances = models.instances
_bdms = models.block_device_mappings
_actions = models.instance_actions
_events = models.instance_actions_events
_faults = models.instance_faults
_services = models.services
_nodes = models.compute_nodes
_keypairs = models.key_pairs

# Node counter -> (total, reserved, allocation ratio) columns.
_CAPACITY = {
    'memory_mb_used': ('memory_mb', 'memory_mb_reserved',
                       'ram_allocation_ratio'),
    'local_gb_used': ('local_gb', 'local_gb_reserved',
                      'disk_allocation_ratio'),
    'vcpus_used': ('vcpus', 'vcpus_reserved', 'cpu_allocation_ratio'),
}
# Usage key of a claim -> node counter, and node counter -> instance column.
_CLAIM_KEYS = {'memory_mb': 'memory_mb_used', 'disk_gb': 'local_gb_used',
               'vcpus': 'vcpus_used'}
_INSTANCE_CLAIMS = {'memory_mb_used': 'claimed_memory_mb',
                    'local_gb_used': 'claimed_disk_gb',
                    'vcpus_used': 'claimed_vcpus'}
NODE_USAGE_COLUMNS = tuple(_CAPACITY)
# A release whose compare-and-swap keeps losing gives up after this many
# reads (only concurrent releases of the same instance can make it lose).
RELEASE_ATTEMPTS = 5
# A checked update whose row keeps changing between read and write gives
# up after this many reads (it only loses to other writers of the row).
CHECKED_UPDATE_ATTEMPTS = 10


def _decrement(column, amount):
    # Never below zero, even on counters a repair has not fixed yet.
    return sa.case((column >= amount, column - amount), else_=0)


def _database_opts(conf_or_url):
    """The [database] group of a ConfigOpts; a URL gets the defaults."""
    if not isinstance(conf_or_url, str):
        return conf_or_url.database
    conf = cfg.ConfigOpts()
    database_conf.register_opts(conf)
    conf([], project='nova-snapshot', default_config_files=[])
    conf.set_override('connection', conf_or_url, group='database')
    # A URL is given by tools and tests that expect an answer at once, not
    # oslo.db's ten start-up attempts ten seconds apart.
    conf.set_override('max_retries', 0, group='database')
    return conf.database


def _make_engine(opts):
    """oslo.db's engine: its pool sizing, connection recycling, start-up
    retries, disconnect detection on checkout and error translation
    (``oslo_db.exception``), from the [database] options."""
    url = sa.engine.make_url(opts.connection)
    parameters = opts.connection_parameters or ''
    pool = {'max_pool_size': opts.max_pool_size,
            'max_overflow': opts.max_overflow,
            'pool_timeout': opts.pool_timeout}
    if url.get_backend_name() == 'sqlite':
        # No pool to size: oslo.db opens a file per use (NullPool) and
        # shares one connection for a memory database (StaticPool).
        pool = {}
        if url.database not in (None, '', ':memory:'):
            directory = os.path.dirname(os.path.abspath(url.database))
            os.makedirs(directory, exist_ok=True)
        if 'timeout' not in url.query:
            busy = 'timeout=%d' % SQLITE_BUSY_TIMEOUT
            parameters = '&'.join(p for p in (parameters, busy) if p)
    return engines.create_engine(
        opts.connection, sqlite_fk=True,
        sqlite_synchronous=opts.sqlite_synchronous,
        mysql_sql_mode=opts.mysql_sql_mode,
        connection_recycle_time=opts.connection_recycle_time,
        connection_debug=opts.connection_debug,
        max_retries=opts.max_retries, retry_interval=opts.retry_interval,
        connection_trace=opts.connection_trace,
        connection_parameters=parameters or None, **pool)


class _RetryScope(threading.local):
    active = False


_retry_scope = _RetryScope()


def _retried(method):
    """Run a Database method again when its transaction deadlocked (and on
    a lost connection with use_db_reconnect), per [database] db_* options.

    Safe because a deadlock rolls the whole transaction back and every
    method's writes are one transaction (or CAS statements that are
    no-ops the second time). Only the outermost call retries.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if _retry_scope.active:
            return method(self, *args, **kwargs)
        _retry_scope.active = True
        try:
            return self._retry(method)(self, *args, **kwargs)
        finally:
            _retry_scope.active = False
    return wrapper


def _with_retries(cls):
    """Wrap every public method of ``cls`` with :func:`_retried`,
    including those added later in the class body by other changes."""
    for name, value in list(vars(cls).items()):
        if (not name.startswith('_') and callable(value)
                and name not in cls.NOT_RETRIED):
            setattr(cls, name, _retried(value))
    return cls


def _as_tuple(expected):
    if isinstance(expected, (list, tuple, set, frozenset)):
        return tuple(expected)
    return (expected,)


def _one_of(column, values):
    """``column IN (values)`` where a ``None`` among them means IS NULL."""
    present = [v for v in values if v is not None]
    clauses = [column.in_(present)] if present else []
    if len(present) != len(values):
        clauses.append(column.is_(None))
    return sa.or_(*clauses) if clauses else sa.false()


def _after(columns, dirs, marker_values):
    """Rows after the marker row in this order (keyset pagination), with
    NULL lowest: after on key i, equal on every key before it."""
    clauses = []
    equal = []
    for column, direction, value in zip(columns, dirs, marker_values):
        if value is None:
            later = (column.is_not(None) if direction == 'asc'
                     else sa.false())
            same = column.is_(None)
        else:
            later = (column > value if direction == 'asc'
                     else sa.or_(column < value, column.is_(None)))
            same = column == value
        clauses.append(sa.and_(*equal, later))
        equal.append(same)
    return sa.or_(*clauses)


def _checked(table, values, forbidden=('id',)):
    unknown = set(values) - set(table.c.keys())
    bad = unknown | (set(values) & set(forbidden))
    if bad:
        raise ValueError('Cannot set %s on %s' % (sorted(bad), table.name))
    return dict(values)


def _encode_instance(values, forbidden=('id',)):
    row = _checked(_instances, values, forbidden)
    for key in _JSON_DEFAULTS:
        if key in row and row[key] is not None:
            row[key] = json.dumps(row[key])
    return row


def _instance_dict(row):
    instance = dict(row._mapping)
    for key, default in _JSON_DEFAULTS.items():
        raw = instance[key]
        instance[key] = json.loads(raw) if raw else default
    return instance


def _dict(row):
    return None if row is None else dict(row._mapping)


# instance_list filters matched as the database's regular expressions
# (Nova's), and the column each one reads.
_REGEX_FILTERS = {'name_regex': 'name',
                  'reservation_id_regex': 'reservation_id',
                  'key_name_regex': 'key_name'}


def _claim_update(host, usage, topic):
    """The parts of a claim's compare-and-swap ``UPDATE`` of ``host``'s
    node: the amounts by counter column, the ``WHERE`` (the host's service
    enabled, each non-zero amount within capacity) and the new counters."""
    amounts = {column: int(usage.get(key) or 0)
               for key, column in _CLAIM_KEYS.items()}
    where = [_nodes.c.host == host, sa.exists().where(
        _services.c.host == host, _services.c.topic == topic,
        _services.c.disabled == sa.false())]
    counters = {}
    for column, amount in amounts.items():
        total, reserved, ratio = _CAPACITY[column]
        used = _nodes.c[column]
        counters[column] = used + amount
        if amount:
            where.append(used + amount <= (
                _nodes.c[total] - _nodes.c[reserved]) * _nodes.c[ratio])
    return amounts, where, counters


@_with_retries
class Database:
    """All reads and writes of nova-snapshot state.

    :param conf_or_url: a ConfigOpts with the ``[database]`` group
        registered, or an SQLAlchemy URL string.
    """

    #: Methods that are not database transactions, never retried.
    NOT_RETRIED = ('dispose', 'create_schema', 'schema_version')

    def __init__(self, conf_or_url):
        opts = _database_opts(conf_or_url)
        self.url = opts.connection
        self.engine = _make_engine(opts)
        self._retry = oslo_db_api.wrap_db_retry(
            max_retries=opts.db_max_retries,
            retry_interval=opts.db_retry_interval,
            inc_retry_interval=opts.db_inc_retry_interval,
            max_retry_interval=opts.db_max_retry_interval,
            retry_on_deadlock=True,
            retry_on_disconnect=opts.use_db_reconnect)

    def dispose(self):
        """Close pooled connections (tests, and before dropping a DB)."""
        self.engine.dispose()

    # Schema

    def create_schema(self):
        """Run every alembic migration up to head (idempotent)."""
        config = alembic_config.Config()
        config.set_main_option('script_location', MIGRATIONS_DIR)
        with self.engine.begin() as conn:
            config.attributes['connection'] = conn
            alembic_command.upgrade(config, 'head')

    def schema_version(self):
        """Current alembic revision, or None for an empty database."""
        with self.engine.connect() as conn:
            context = migration.MigrationContext.configure(conn)
            return context.get_current_revision()

    # Instances

    def instance_create(self, values):
        values = dict(values)
        values.setdefault('uuid', str(uuidlib.uuid4()))
        values.setdefault('created_at', timeutils.utcnow())
        values.setdefault('metadata', {})
        values.setdefault('system_metadata', {})
        with self.engine.begin() as conn:
            conn.execute(_instances.insert().values(_encode_instance(values)))
            return self._instance_get(conn, values['uuid'])

    def instance_get(self, uuid):
        with self.engine.connect() as conn:
            return self._instance_get(conn, uuid)

    def _instance_get(self, conn, uuid):
        row = conn.execute(sa.select(_instances).where(
            _instances.c.uuid == uuid, _instances.c.deleted == 0)).first()
        if row is None:
            raise exception.InstanceNotFound(instance_id=uuid)
        return _instance_dict(row)

    def instance_get_all(self, project_id=None, host=None, task_states=None):
        query = sa.select(_instances).where(_instances.c.deleted == 0)
        if project_id is not None:
            query = query.where(_instances.c.project_id == project_id)
        if host is not None:
            query = query.where(_instances.c.host == host)
        if task_states is not None:
            query = query.where(_one_of(_instances.c.task_state,
                                        _as_tuple(task_states)))
        query = query.order_by(_instances.c.created_at, _instances.c.id)
        with self.engine.connect() as conn:
            return [_instance_dict(row) for row in conn.execute(query)]

    # Listing (GET /servers): a page of instances with what their views
    # need, in a fixed number of statements whatever the page size.

    #: Sort keys ``instance_list`` understands: the ``instances`` column.
    #: Every column a Nova sort key names (api/handlers/server_list.py
    #: sorts by nothing else).
    SORT_COLUMNS = ('created_at', 'updated_at', 'launched_at', 'name',
                    'host', 'image_ref', 'power_state', 'progress',
                    'project_id', 'user_id', 'root_device_name',
                    'task_state', 'vm_state', 'uuid', 'id', 'locked',
                    'locked_by', 'access_ip_v4', 'access_ip_v6',
                    'auto_disk_config', 'key_name', 'description',
                    'launch_index')

    def instance_list(self, filters=None, limit=None, marker=None,
                      sort_keys=('created_at', 'id'),
                      sort_dirs=('desc', 'desc'), with_faults=False,
                      with_bdms=False):
        """One page of instances, in at most four statements.

        :param filters: a dict, every key optional: ``project_id``,
            ``user_id``, ``host``, ``image_ref``, ``uuid`` (exact);
            ``name_regex``, ``reservation_id_regex`` (the database's
            regular expression match);
            ``vm_state``/``task_state`` (lists; ``None`` allowed in
            task_state); ``flavor_id``; ``changes_before`` (a datetime);
            ``locked`` (a bool); ``soft_deleted`` (see _list_where);
            ``changes_since`` (a datetime:
            changed, created or deleted at or after it); ``deleted``
            (False: live only, the default; True: deleted only; None: both).
        :param marker: uuid of the last instance of the previous page,
            live or deleted, in any project (Nova's rule).
        :param sort_keys: names in :attr:`SORT_COLUMNS`; ``id`` is added
            last so the order is total and a page boundary is exact.
        :param sort_dirs: 'asc' or 'desc' per key. NULL sorts lowest on
            every backend (PostgreSQL's own default is the opposite).
        :param with_faults: add ``fault``: each instance's newest fault.
        :param with_bdms: add ``bdms``: each instance's live BDMs.
        :raises: MarkerNotFound; InvalidSortKey.
        """
        filters = dict(filters or {})
        keys, dirs = list(sort_keys), list(sort_dirs)
        if 'id' not in keys:
            keys.append('id')
            dirs.append(dirs[0] if dirs else 'desc')
        for key, direction in zip(keys, dirs):
            if key not in self.SORT_COLUMNS or direction not in ('asc',
                                                                 'desc'):
                raise exception.InvalidSortKey(key=key, direction=direction)
        columns = [_instances.c[key] for key in keys]
        query = sa.select(_instances).where(*self._list_where(filters))
        with self.engine.connect() as conn:
            if marker is not None:
                row = conn.execute(sa.select(*columns).where(
                    _instances.c.uuid == marker)).first()
                if row is None:
                    raise exception.MarkerNotFound(marker=marker)
                query = query.where(_after(columns, dirs, tuple(row)))
            for column, direction in zip(columns, dirs):
                nulls = sa.case((column.is_(None), 0), else_=1)
                query = query.order_by(
                    getattr(nulls, direction)(), getattr(column, direction)())
            if limit is not None:
                query = query.limit(limit)
            try:
                rows = conn.execute(query).fetchall()
            except db_exc.DBError as exc:
                # A pattern Python compiles but the server's regular
                # expression dialect refuses is the caller's error.
                patterns = [filters[key] for key in _REGEX_FILTERS
                            if filters.get(key) is not None]
                if not patterns or not any(
                        word in str(exc).lower()
                        for word in ('regular expression', 'regexp')):
                    raise
                raise exception.Invalid(
                    reason='Invalid regular expression: %s'
                    % ', '.join(patterns))
            instances = [_instance_dict(row) for row in rows]
            uuids = [instance['uuid'] for instance in instances]
            if with_faults:
                faults = self._latest_faults(conn, uuids)
                for instance in instances:
                    instance['fault'] = faults.get(instance['uuid'])
            if with_bdms:
                bdms = {uuid: [] for uuid in uuids}
                if uuids:
                    for row in conn.execute(sa.select(_bdms).where(
                            _bdms.c.instance_uuid.in_(uuids),
                            _bdms.c.deleted == 0).order_by(_bdms.c.id)):
                        bdms[row.instance_uuid].append(_dict(row))
                for instance in instances:
                    instance['bdms'] = bdms[instance['uuid']]
        return instances

    def _list_where(self, filters):
        where = []
        deleted = filters.get('deleted', False)
        # Nova's soft_deleted: False hides SOFT_DELETED servers from a
        # live-only list; True adds them to a deleted-only one.
        soft_deleted = filters.get('soft_deleted')
        is_soft_deleted = _instances.c.vm_state == vm_states.SOFT_DELETED
        if deleted is False:
            where.append(_instances.c.deleted == 0)
            if soft_deleted is False:
                where.append(sa.or_(_instances.c.vm_state.is_(None),
                                    sa.not_(is_soft_deleted)))
        elif deleted is True:
            if soft_deleted:
                where.append(sa.or_(_instances.c.deleted != 0,
                                    is_soft_deleted))
            else:
                where.append(_instances.c.deleted != 0)
        for key in ('project_id', 'user_id', 'host', 'image_ref', 'uuid'):
            if filters.get(key) is not None:
                where.append(_instances.c[key] == filters[key])
        for key, column in _REGEX_FILTERS.items():
            if filters.get(key) is not None:
                where.append(_instances.c[column].regexp_match(filters[key]))
        if filters.get('vm_state') is not None:
            where.append(_one_of(_instances.c.vm_state,
                                 _as_tuple(filters['vm_state'])))
        if filters.get('task_state') is not None:
            where.append(_one_of(_instances.c.task_state,
                                 _as_tuple(filters['task_state'])))
        if filters.get('flavor_id') is not None:
            where.append(self._flavor_id() == str(filters['flavor_id']))
        if filters.get('changes_since') is not None:
            since = filters['changes_since']
            # A row never updated has no updated_at; its creation counts.
            changed = sa.func.coalesce(_instances.c.updated_at,
                                       _instances.c.created_at)
            where.append(sa.or_(changed >= since,
                                _instances.c.deleted_at >= since))
        if filters.get('changes_before') is not None:
            # Nova's changes-before (2.66): changed at or before this time.
            changed = sa.func.coalesce(_instances.c.updated_at,
                                       _instances.c.created_at)
            where.append(changed <= filters['changes_before'])
        if filters.get('locked') is not None:
            where.append(_instances.c.locked == bool(filters['locked']))
        return where

    def _flavor_id(self):
        """The ``id`` inside the JSON text of the flavor column."""
        dialect = self.engine.dialect.name
        if dialect == 'postgresql':
            return sa.cast(_instances.c.flavor,
                           postgresql.JSON)['id'].as_string()
        value = sa.func.json_extract(_instances.c.flavor, '$.id')
        if dialect == 'mysql':
            return sa.func.json_unquote(value)
        return value  # SQLite: json_extract gives the string itself

    def _latest_faults(self, conn, uuids):
        """{instance uuid: newest fault} in one statement."""
        if not uuids:
            return {}
        newest = sa.func.row_number().over(
            partition_by=_faults.c.instance_uuid,
            order_by=(_faults.c.created_at.desc(), _faults.c.id.desc()))
        ranked = sa.select(_faults, newest.label('rank')).where(
            _faults.c.instance_uuid.in_(uuids)).subquery()
        rows = conn.execute(sa.select(
            *[ranked.c[name] for name in _faults.c.keys()]).where(
                ranked.c.rank == 1))
        return {row.instance_uuid: _dict(row) for row in rows}

    def instance_update(self, uuid, values, expected_task_state=UNSET,
                        expected_vm_state=UNSET, expected_host=UNSET):
        """Update one live instance if its states are as expected.

        :param expected_task_state: a value or tuple of values (``None``
            allowed) the current task_state must be one of; UNSET: any.
        :param expected_vm_state: the same for vm_state.
        :param expected_host: the same for host (``None``: no host).
        :returns: the updated instance dict.
        :raises: InstanceNotFound, UnexpectedDeletingTaskStateError,
            UnexpectedTaskStateError (also for a vm_state mismatch).
        """
        row = _encode_instance(values, forbidden=('id', 'uuid', 'deleted'))
        row.setdefault('updated_at', timeutils.utcnow())
        expected = {}
        if expected_task_state is not UNSET:
            expected['task_state'] = _as_tuple(expected_task_state)
        if expected_vm_state is not UNSET:
            expected['vm_state'] = _as_tuple(expected_vm_state)
        if expected_host is not UNSET:
            expected['host'] = _as_tuple(expected_host)
        where = [_instances.c.uuid == uuid, _instances.c.deleted == 0]
        where += [_one_of(_instances.c[field], allowed)
                  for field, allowed in expected.items()]
        with self.engine.begin() as conn:
            result = conn.execute(_instances.update().where(*where)
                                  .values(row))
            if result.rowcount == 1:
                return self._instance_get(conn, uuid)
        self._raise_update_conflict(uuid, expected)

    def instance_update_checked(self, uuid, values, check=None,
                                expected_task_state=UNSET,
                                system_metadata=None,
                                attempts=CHECKED_UPDATE_ATTEMPTS):
        """Read, check in Python, write: one compare-and-swap.

        For conditions a ``WHERE`` on states cannot say (a key of
        ``system_metadata`` names who holds the task state). The write
        happens only if ``task_state``, ``vm_state`` and the stored
        ``system_metadata`` text are still what the check saw; otherwise
        the row is read and checked again.

        :param check: ``check(instance)`` raises to refuse (any exception,
            passed on as is).
        :param expected_task_state: as for :meth:`instance_update`, checked
            on the row read (same exceptions).
        :param system_metadata: ``{key: value}`` merged into the row's
            current system_metadata; a value None removes the key; a
            callable value is called with the current one (or None).
        :returns: the updated instance dict.
        """
        row = _encode_instance(values, forbidden=(
            'id', 'uuid', 'deleted', 'system_metadata'))
        cols = _instances.c
        for _attempt in range(attempts):
            with self.engine.connect() as conn:
                current = conn.execute(sa.select(_instances).where(
                    cols.uuid == uuid, cols.deleted == 0)).first()
            if current is None:
                raise exception.InstanceNotFound(instance_id=uuid)
            instance = _instance_dict(current)
            if expected_task_state is not UNSET:
                allowed = _as_tuple(expected_task_state)
                if instance['task_state'] not in allowed:
                    self._raise_conflict(uuid, instance,
                                         {'task_state': allowed})
            if check is not None:
                check(instance)
            update = dict(row, updated_at=timeutils.utcnow())
            if system_metadata:
                merged = dict(instance['system_metadata'])
                for key, value in system_metadata.items():
                    if callable(value):
                        value = value(merged.get(key))
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                update['system_metadata'] = json.dumps(merged)
            raw = current._mapping['system_metadata']
            where = [cols.uuid == uuid, cols.deleted == 0,
                     _one_of(cols.task_state, (instance['task_state'],)),
                     _one_of(cols.vm_state, (instance['vm_state'],)),
                     cols.system_metadata.is_(None) if raw is None
                     else cols.system_metadata == raw]
            with self.engine.begin() as conn:
                result = conn.execute(_instances.update().where(*where)
                                      .values(update))
                if result.rowcount == 1:
                    return self._instance_get(conn, uuid)
        # The row changed under every check: a conflict like any other.
        raise exception.UnexpectedTaskStateError(
            instance_uuid=uuid,
            expected={'task_state': [instance['task_state']]},
            actual={'task_state': instance['task_state'],
                    'changed_while_checked': attempts})

    def _raise_conflict(self, uuid, actual, expected):
        props = {'instance_uuid': uuid,
                 'expected': {f: list(v) for f, v in expected.items()},
                 'actual': {f: actual[f] for f in expected}}
        if actual['task_state'] == task_states.DELETING:
            raise exception.UnexpectedDeletingTaskStateError(**props)
        raise exception.UnexpectedTaskStateError(**props)

    def _raise_update_conflict(self, uuid, expected):
        # Only explains a lost compare-and-swap; nothing is retried.
        actual = self.instance_get(uuid)
        conflicts = {f: a for f, a in expected.items()
                     if actual[f] not in a}
        if not conflicts:
            # The row changed again since the UPDATE; report everything.
            conflicts = expected
        props = {'instance_uuid': uuid,
                 'expected': {f: list(v) for f, v in conflicts.items()},
                 'actual': {f: actual[f] for f in conflicts}}
        if actual['task_state'] == task_states.DELETING:
            raise exception.UnexpectedDeletingTaskStateError(**props)
        raise exception.UnexpectedTaskStateError(**props)

    def instance_lock(self, uuid, locked_by, reason=None,
                      only_if_unlocked=True):
        """Lock a live instance (``locked_by``: 'owner' or 'admin').

        :param only_if_unlocked: True (an owner's lock): a locked instance
            stays as it is, first holder and reason kept. False (an
            admin's): the lock becomes the admin's, as in Nova.
        :param reason: stored when given; None keeps the current one.
        :returns: the instance dict afterwards.
        :raises: InstanceNotFound.
        """
        if locked_by not in ('owner', 'admin'):
            raise ValueError('locked_by must be owner or admin')
        cols = _instances.c
        where = [cols.uuid == uuid, cols.deleted == 0]
        if only_if_unlocked:
            where.append(cols.locked == sa.false())
        values = {'locked': True, 'locked_by': locked_by,
                  'updated_at': timeutils.utcnow()}
        if reason is not None:
            values['locked_reason'] = reason
        with self.engine.begin() as conn:
            conn.execute(_instances.update().where(*where).values(values))
            return self._instance_get(conn, uuid)

    def instance_unlock(self, uuid, expected_locked_by=UNSET):
        """Unlock a live instance; a no-op if it is not locked.

        :param expected_locked_by: unlock only if the lock's holder is
            this, checked in the same statement (a non-admin may not lift
            an admin's lock that was taken after it looked).
        :returns: the instance dict as it is afterwards (still locked if
            the holder did not match).
        :raises: InstanceNotFound.
        """
        cols = _instances.c
        where = [cols.uuid == uuid, cols.deleted == 0,
                 cols.locked == sa.true()]
        if expected_locked_by is not UNSET:
            where.append(cols.locked_by == expected_locked_by)
        with self.engine.begin() as conn:
            conn.execute(_instances.update().where(*where).values(
                locked=False, locked_by=None, locked_reason=None,
                updated_at=timeutils.utcnow()))
            return self._instance_get(conn, uuid)

    def instance_destroy(self, uuid):
        """Soft-delete an instance and its BDMs, after releasing what it
        holds on its host; returns the deleted row."""
        self.instance_release_claim(uuid)
        now = timeutils.utcnow()
        deleted = {'deleted_at': now, 'updated_at': now}
        with self.engine.begin() as conn:
            result = conn.execute(_instances.update().where(
                _instances.c.uuid == uuid, _instances.c.deleted == 0).values(
                deleted=_instances.c.id, **deleted))
            if result.rowcount != 1:
                raise exception.InstanceNotFound(instance_id=uuid)
            conn.execute(_bdms.update().where(
                _bdms.c.instance_uuid == uuid, _bdms.c.deleted == 0).values(
                deleted=_bdms.c.id, **deleted))
            row = conn.execute(sa.select(_instances).where(
                _instances.c.uuid == uuid)).one()
        return _instance_dict(row)

    # Block device mappings

    def bdm_create(self, values):
        values = _checked(_bdms, values)
        values.setdefault('created_at', timeutils.utcnow())
        with self.engine.begin() as conn:
            result = conn.execute(_bdms.insert().values(values))
            bdm_id = result.inserted_primary_key[0]
            return _dict(conn.execute(sa.select(_bdms).where(
                _bdms.c.id == bdm_id)).one())

    def bdm_update(self, bdm_id, values):
        """Update one live BDM (volume_id, attachment_id, connection_info
        as the build goes); returns it. ``NotFound`` when it is gone."""
        values = _checked(_bdms, values,
                          forbidden=('id', 'instance_uuid', 'deleted'))
        values.setdefault('updated_at', timeutils.utcnow())
        with self.engine.begin() as conn:
            result = conn.execute(_bdms.update().where(
                _bdms.c.id == bdm_id, _bdms.c.deleted == 0).values(values))
            if result.rowcount != 1:
                raise exception.NotFound()
            return _dict(conn.execute(sa.select(_bdms).where(
                _bdms.c.id == bdm_id)).one())

    def bdm_destroy(self, bdm_id):
        """Soft-delete one BDM (a detached volume); gone already is fine."""
        now = timeutils.utcnow()
        with self.engine.begin() as conn:
            conn.execute(_bdms.update().where(
                _bdms.c.id == bdm_id, _bdms.c.deleted == 0).values(
                deleted=_bdms.c.id, deleted_at=now, updated_at=now))

    def bdm_get_by_instance(self, uuid):
        query = sa.select(_bdms).where(
            _bdms.c.instance_uuid == uuid, _bdms.c.deleted == 0
        ).order_by(_bdms.c.id)
        with self.engine.connect() as conn:
            return [_dict(row) for row in conn.execute(query)]

    # Instance actions (os-instance-actions)

    def action_start(self, context, instance_uuid, action):
        values = {'action': action, 'instance_uuid': instance_uuid,
                  'request_id': context.request_id,
                  'user_id': context.user_id,
                  'project_id': context.project_id,
                  'start_time': timeutils.utcnow()}
        with self.engine.begin() as conn:
            result = conn.execute(_actions.insert().values(values))
            return _dict(conn.execute(sa.select(_actions).where(
                _actions.c.id == result.inserted_primary_key[0])).one())

    def _action_row(self, conn, instance_uuid, request_id):
        row = conn.execute(sa.select(_actions).where(
            _actions.c.instance_uuid == instance_uuid,
            _actions.c.request_id == request_id,
        ).order_by(_actions.c.id.desc()).limit(1)).first()
        if row is None:
            raise exception.InstanceActionNotFound(
                request_id=request_id, instance_uuid=instance_uuid)
        return row

    def action_event_start(self, context, instance_uuid, event, host=None):
        """Record the start of ``event`` under the request's action."""
        with self.engine.begin() as conn:
            action = self._action_row(conn, instance_uuid, context.request_id)
            result = conn.execute(_events.insert().values(
                action_id=action.id, event=event, host=host,
                start_time=timeutils.utcnow()))
            return _dict(conn.execute(sa.select(_events).where(
                _events.c.id == result.inserted_primary_key[0])).one())

    def action_event_finish(self, context, instance_uuid, event, result,
                            traceback=None, details=None):
        """Finish the newest ``event`` of the request's action.

        :param result: 'Success' or 'Error' (any case); an error also marks
            the whole action with message 'Error', as Nova does.
        """
        outcome = _EVENT_RESULTS.get(str(result).lower())
        if outcome is None:
            raise ValueError('Event result must be Success or Error, not %r'
                             % (result,))
        with self.engine.begin() as conn:
            action = self._action_row(conn, instance_uuid, context.request_id)
            event_id = conn.execute(sa.select(_events.c.id).where(
                _events.c.action_id == action.id, _events.c.event == event,
            ).order_by(_events.c.id.desc()).limit(1)).scalar()
            if event_id is None:
                raise exception.InstanceActionEventNotFound(
                    event=event, action_id=action.id)
            conn.execute(_events.update().where(_events.c.id == event_id)
                         .values(result=outcome, traceback=traceback,
                                 details=details,
                                 finish_time=timeutils.utcnow()))
            if outcome == 'Error':
                conn.execute(_actions.update().where(
                    _actions.c.id == action.id).values(message='Error'))
            return _dict(conn.execute(sa.select(_events).where(
                _events.c.id == event_id)).one())

    def actions_get(self, instance_uuid):
        """Actions of an instance, newest first."""
        query = sa.select(_actions).where(
            _actions.c.instance_uuid == instance_uuid
        ).order_by(_actions.c.start_time.desc(), _actions.c.id.desc())
        with self.engine.connect() as conn:
            return [_dict(row) for row in conn.execute(query)]

    def action_events_unfinished(self, instance_uuid, event, host):
        """Events named ``event`` that ``host`` started and never finished,
        each with its action's ``request_id``, ``user_id``, ``project_id``.
        """
        query = sa.select(
            _events, _actions.c.request_id, _actions.c.user_id,
            _actions.c.project_id,
        ).join(_actions, _events.c.action_id == _actions.c.id).where(
            _actions.c.instance_uuid == instance_uuid,
            _events.c.event == event, _events.c.host == host,
            _events.c.finish_time.is_(None),
        ).order_by(_events.c.id)
        with self.engine.connect() as conn:
            return [_dict(row) for row in conn.execute(query)]

    def action_get_by_request_id(self, instance_uuid, request_id):
        """One action with its ``events`` (newest first).

        :raises: InstanceActionNotFound
        """
        with self.engine.connect() as conn:
            action = _dict(self._action_row(conn, instance_uuid, request_id))
            events = conn.execute(sa.select(_events).where(
                _events.c.action_id == action['id']
            ).order_by(_events.c.start_time.desc(), _events.c.id.desc()))
            action['events'] = [_dict(row) for row in events]
        return action

    # Faults

    def fault_create(self, instance_uuid, code, message, details, host=None):
        values = {'instance_uuid': instance_uuid, 'code': int(code),
                  # The column is 255 wide; details keep the whole story.
                  'message': (message or '')[:255], 'details': details,
                  'host': host, 'created_at': timeutils.utcnow()}
        with self.engine.begin() as conn:
            result = conn.execute(_faults.insert().values(values))
            return _dict(conn.execute(sa.select(_faults).where(
                _faults.c.id == result.inserted_primary_key[0])).one())

    def fault_get_latest(self, instance_uuid):
        """The newest fault of an instance, or None."""
        query = sa.select(_faults).where(
            _faults.c.instance_uuid == instance_uuid
        ).order_by(_faults.c.created_at.desc(), _faults.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            return _dict(conn.execute(query).first())

    # Services

    def service_update(self, host, topic, binary=None):
        """Heartbeat: count a report for (host, topic), creating the row."""
        now = timeutils.utcnow()
        bump = _services.update().where(
            _services.c.host == host, _services.c.topic == topic
        ).values(report_count=_services.c.report_count + 1,
                 updated_at=now, last_seen_up=now)
        try:
            with self.engine.begin() as conn:
                if conn.execute(bump).rowcount == 0:
                    conn.execute(_services.insert().values(
                        host=host, topic=topic, binary=binary or topic,
                        report_count=1, created_at=now, updated_at=now,
                        last_seen_up=now))
                return self._service_get(conn, host, topic)
        except (sa_exc.IntegrityError, db_exc.DBDuplicateEntry):
            pass  # a concurrent first heartbeat created the row; bump it
        with self.engine.begin() as conn:
            conn.execute(bump)
            return self._service_get(conn, host, topic)

    def _service_get(self, conn, host, topic):
        return _dict(conn.execute(sa.select(_services).where(
            _services.c.host == host, _services.c.topic == topic)).one())

    def service_get_all(self, topic):
        query = sa.select(_services).where(
            _services.c.topic == topic).order_by(_services.c.host)
        with self.engine.connect() as conn:
            return [_dict(row) for row in conn.execute(query)]

    # Services: os-services and nova-snapshot-manage service

    def service_list(self, host=None, binary=None):
        """Services (any topic), optionally of one host and/or binary."""
        query = sa.select(_services).order_by(_services.c.id)
        if host is not None:
            query = query.where(_services.c.host == host)
        if binary is not None:
            query = query.where(_services.c.binary == binary)
        with self.engine.connect() as conn:
            return [_dict(row) for row in conn.execute(query)]

    def service_get(self, service_id):
        """:raises: ServiceNotFound"""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_services).where(
                _services.c.id == service_id)).first()
        if row is None:
            raise exception.ServiceNotFound(service_id=service_id)
        return _dict(row)

    def service_get_by_host_and_binary(self, host, binary):
        """:raises: HostBinaryNotFound"""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_services).where(
                _services.c.host == host, _services.c.binary == binary)
            ).first()
        if row is None:
            raise exception.HostBinaryNotFound(host=host, binary=binary)
        return _dict(row)

    def service_set_status(self, service_id, values):
        """Set ``disabled``, ``disabled_reason`` and/or ``forced_down``
        (an operator's decision, never touched by heartbeats); returns the
        service. :raises: ServiceNotFound"""
        allowed = {'disabled', 'disabled_reason', 'forced_down'}
        if not values or set(values) - allowed:
            raise ValueError('Only %s can be set, not %s'
                             % (sorted(allowed), sorted(values)))
        with self.engine.begin() as conn:
            result = conn.execute(_services.update().where(
                _services.c.id == service_id).values(
                updated_at=timeutils.utcnow(), **values))
            if result.rowcount != 1:
                raise exception.ServiceNotFound(service_id=service_id)
            return _dict(conn.execute(sa.select(_services).where(
                _services.c.id == service_id)).one())

    def service_destroy(self, service_id, compute=True):
        """Delete a service; for a compute service (``compute``) also its
        host's compute node, refused while live instances are on the host.

        The node row goes first: deleting it waits for claims in flight on
        the host, so the instance check that follows sees their rows, and
        later claims find no node to claim on.

        :raises: ServiceNotFound, ServiceHasInstances
        """
        with self.engine.begin() as conn:
            service = conn.execute(sa.select(_services).where(
                _services.c.id == service_id)).first()
            if service is None:
                raise exception.ServiceNotFound(service_id=service_id)
            if compute:
                conn.execute(_nodes.delete().where(
                    _nodes.c.host == service.host))
                hosting = conn.execute(sa.select(sa.func.count()).where(
                    _instances.c.host == service.host,
                    _instances.c.deleted == 0)).scalar()
                if hosting:
                    raise exception.ServiceHasInstances()
            conn.execute(_services.delete().where(
                _services.c.id == service_id))

    # Compute nodes: capacity and claims

    def compute_node_update(self, host, resources):
        """Heartbeat side: store what a host reports (totals,
        reservations, ratios, ``running_vms``, ``hypervisor_hostname``),
        creating its row. The ``*_used`` counters are never written here:
        a report can be older than a claim made meanwhile.

        :returns: the node dict.
        """
        values = _checked(_nodes, resources, forbidden=NODE_USAGE_COLUMNS +
                          ('id', 'host', 'created_at'))
        now = timeutils.utcnow()
        values['updated_at'] = now
        update = _nodes.update().where(_nodes.c.host == host).values(values)
        try:
            with self.engine.begin() as conn:
                if conn.execute(update).rowcount == 0:
                    conn.execute(_nodes.insert().values(
                        host=host, created_at=now, **values))
                return self._node_get(conn, host)
        except (sa_exc.IntegrityError, db_exc.DBDuplicateEntry):
            pass  # a concurrent first report created the row
        with self.engine.begin() as conn:
            conn.execute(update)
            return self._node_get(conn, host)

    def _node_get(self, conn, host):
        row = conn.execute(sa.select(_nodes).where(
            _nodes.c.host == host)).first()
        if row is None:
            raise exception.ComputeHostNotFound(host=host)
        return _dict(row)

    def compute_node_get(self, host):
        """:raises: ComputeHostNotFound"""
        with self.engine.connect() as conn:
            return self._node_get(conn, host)

    def compute_node_get_all(self, topic):
        """Every compute node with its service's state: ``service_id``,
        ``disabled``, ``disabled_reason``, ``forced_down``,
        ``last_seen_up``, ``service_updated_at``, ``service_created_at``.
        A node without a service of ``topic`` is left out."""
        query = sa.select(
            _nodes, _services.c.id.label('service_id'),
            _services.c.disabled, _services.c.disabled_reason,
            _services.c.forced_down, _services.c.last_seen_up,
            _services.c.updated_at.label('service_updated_at'),
            _services.c.created_at.label('service_created_at'),
        ).join(_services, sa.and_(_services.c.host == _nodes.c.host,
                                  _services.c.topic == topic)
               ).order_by(_nodes.c.host)
        with self.engine.connect() as conn:
            return [_dict(row) for row in conn.execute(query)]

    def instance_create_claimed(self, values, host, usage, topic):
        """Claim ``usage`` on ``host`` and create the instance there, in
        one transaction; None when the host cannot take it.

        The claim is one compare-and-swap ``UPDATE`` of the node's
        counters whose ``WHERE`` holds the capacity test (Nova's
        placement rule: used + requested <= (total - reserved) x ratio)
        and that the host's service is still enabled. Concurrent claims
        on one host serialise on its row and each re-checks the test
        against the counters the previous one left, so a host is never
        overcommitted however many API workers race.

        :param usage: ``{'memory_mb', 'disk_gb', 'vcpus'}``; a zero
            amount is not tested (a server booted from a volume takes no
            local disk).
        """
        amounts, where, counters = _claim_update(host, usage, topic)
        values = dict(values, host=host)
        for column, claimed in _INSTANCE_CLAIMS.items():
            values[claimed] = amounts[column]
        values.setdefault('uuid', str(uuidlib.uuid4()))
        values.setdefault('created_at', timeutils.utcnow())
        values.setdefault('metadata', {})
        values.setdefault('system_metadata', {})
        with self.engine.begin() as conn:
            claimed = conn.execute(_nodes.update().where(*where).values(
                updated_at=timeutils.utcnow(), **counters))
            if claimed.rowcount != 1:
                return None
            conn.execute(_instances.insert().values(
                _encode_instance(values)))
            return self._instance_get(conn, values['uuid'])

    def instance_claim_existing(self, uuid, host, usage, topic,
                                expected_task_state, values=None):
        """Claim ``usage`` on ``host`` for a live instance that holds no
        host (a shelved-offloaded server being unshelved) and set its
        ``host``, in one transaction; None when the host cannot take it.

        The node counters are claimed as :meth:`instance_create_claimed`
        does; the instance is updated only while it has no host, no claim
        and ``task_state`` is ``expected_task_state`` (else the node
        update is rolled back and UnexpectedTaskStateError raised).
        """
        amounts, where, counters = _claim_update(host, usage, topic)
        row = _encode_instance(dict(values or {}), forbidden=(
            'id', 'uuid', 'deleted', 'host'))
        row.update(host=host, updated_at=timeutils.utcnow())
        for column, claimed in _INSTANCE_CLAIMS.items():
            row[claimed] = amounts[column]
        cols = _instances.c
        with self.engine.begin() as conn:
            claimed = conn.execute(_nodes.update().where(*where).values(
                updated_at=timeutils.utcnow(), **counters))
            if claimed.rowcount != 1:
                return None
            result = conn.execute(_instances.update().where(
                cols.uuid == uuid, cols.deleted == 0, cols.host.is_(None),
                *[cols[c] == 0 for c in _INSTANCE_CLAIMS.values()],
                _one_of(cols.task_state, _as_tuple(expected_task_state))
            ).values(row))
            if result.rowcount == 1:
                return self._instance_get(conn, uuid)
            # Leaving the block by an exception rolls the claim back.
            raise exception.UnexpectedTaskStateError(
                instance_uuid=uuid,
                expected={'task_state': list(_as_tuple(
                    expected_task_state)), 'host': None},
                actual={'changed': 'host, claim or task_state'})

    def instance_release_claim(self, uuid):
        """Give back what a live instance holds on its host, exactly once:
        the instance's ``claimed_*`` are zeroed by a compare-and-swap on
        the values read, in the transaction that lowers the counters.

        :returns: True when something was released.
        """
        for _attempt in range(RELEASE_ATTEMPTS):
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(
                    _instances.c.host, *[_instances.c[c] for c in
                                         _INSTANCE_CLAIMS.values()]).where(
                    _instances.c.uuid == uuid,
                    _instances.c.deleted == 0)).first()
            if row is None or not any(row[1:]):
                return False
            held = {column: row._mapping[claimed]
                    for column, claimed in _INSTANCE_CLAIMS.items()}
            with self.engine.begin() as conn:
                cas = conn.execute(_instances.update().where(
                    _instances.c.uuid == uuid, _instances.c.deleted == 0,
                    _one_of(_instances.c.host, (row.host,)),
                    *[_instances.c[_INSTANCE_CLAIMS[c]] == amount
                      for c, amount in held.items()]).values(
                    {claimed: 0 for claimed in _INSTANCE_CLAIMS.values()}))
                if cas.rowcount != 1:
                    continue  # changed under us: read again
                if row.host is not None:
                    conn.execute(_nodes.update().where(
                        _nodes.c.host == row.host).values(
                        {column: _decrement(_nodes.c[column], amount)
                         for column, amount in held.items()}))
                return True
        return False

    def instance_discard(self, uuid):
        """Undo the creation of an instance whose create request failed
        before the server was handed to anyone (no build cast sent): give
        back its claim (:meth:`instance_release_claim`), then remove its
        rows (BDMs, actions and their events, faults, the instance) for
        good, in one transaction. Gone already is fine."""
        self.instance_release_claim(uuid)
        with self.engine.begin() as conn:
            actions = sa.select(_actions.c.id).where(
                _actions.c.instance_uuid == uuid)
            conn.execute(_events.delete().where(
                _events.c.action_id.in_(actions)))
            for table in (_actions, _faults, _bdms):
                conn.execute(table.delete().where(
                    table.c.instance_uuid == uuid))
            conn.execute(_instances.delete().where(
                _instances.c.uuid == uuid))

    def compute_node_repair_usage(self, host):
        """Set the host's counters to the sum of its live instances'
        claims if they differ (a crash between steps of an older version,
        a database edited by hand, instances from before the counters).

        Counters and sums are read in one statement, so they are
        consistent with each other; the write is a compare-and-swap on the
        counters read, so a claim or release committed meanwhile wins and
        the repair waits for the next heartbeat.

        :returns: the counters written, or None when nothing was wrong
            (or the compare-and-swap lost).
        """
        sums = {column: sa.select(sa.func.coalesce(sa.func.sum(
            _instances.c[claimed]), 0)).where(
            _instances.c.host == host, _instances.c.deleted == 0
        ).scalar_subquery().label('sum_' + column)
            for column, claimed in _INSTANCE_CLAIMS.items()}
        query = sa.select(*[_nodes.c[c] for c in _INSTANCE_CLAIMS],
                          *sums.values()).where(_nodes.c.host == host)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        seen = {c: row._mapping[c] for c in _INSTANCE_CLAIMS}
        actual = {c: int(row._mapping['sum_' + c]) for c in _INSTANCE_CLAIMS}
        if seen == actual:
            return None
        with self.engine.begin() as conn:
            result = conn.execute(_nodes.update().where(
                _nodes.c.host == host,
                *[_nodes.c[c] == v for c, v in seen.items()]).values(actual))
        return actual if result.rowcount == 1 else None

    # Keypairs (os-keypairs): a user's, by name

    def keypair_create(self, values):
        """Insert a keypair; returns it.

        :raises: KeyPairExists (the user has one of that name: the unique
            constraint decides, so two concurrent creates cannot both win)
        """
        values = _checked(_keypairs, values)
        values.setdefault('created_at', timeutils.utcnow())
        try:
            with self.engine.begin() as conn:
                conn.execute(_keypairs.insert().values(values))
                return self._keypair_get(conn, values['user_id'],
                                         values['name'])
        except (sa_exc.IntegrityError, db_exc.DBDuplicateEntry):
            raise exception.KeyPairExists(key_name=values['name'])

    def keypair_get(self, user_id, name):
        """:raises: KeypairNotFound"""
        with self.engine.connect() as conn:
            return self._keypair_get(conn, user_id, name)

    def _keypair_get(self, conn, user_id, name):
        row = conn.execute(sa.select(_keypairs).where(
            _keypairs.c.user_id == user_id,
            _keypairs.c.name == name)).first()
        if row is None:
            raise exception.KeypairNotFound(name=name, user_id=user_id)
        return _dict(row)

    def keypair_list(self, user_id, limit=None, marker=None):
        """The user's keypairs by name; ``marker`` (a name) starts the
        page after it. :raises: MarkerNotFound (no keypair of that name)
        """
        query = sa.select(_keypairs).where(
            _keypairs.c.user_id == user_id).order_by(_keypairs.c.name)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            if marker is not None:
                found = conn.execute(sa.select(_keypairs.c.id).where(
                    _keypairs.c.user_id == user_id,
                    _keypairs.c.name == marker)).first()
                if found is None:
                    raise exception.MarkerNotFound(marker=marker)
                query = query.where(_keypairs.c.name > marker)
            return [_dict(row) for row in conn.execute(query)]

    def keypair_count(self, user_id):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(
                _keypairs.c.user_id == user_id)).scalar()

    def keypair_destroy(self, user_id, name):
        """:raises: KeypairNotFound"""
        with self.engine.begin() as conn:
            result = conn.execute(_keypairs.delete().where(
                _keypairs.c.user_id == user_id, _keypairs.c.name == name))
        if result.rowcount != 1:
            raise exception.KeypairNotFound(name=name, user_id=user_id)
