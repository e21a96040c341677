"""Fuzz every request body the API takes, from its own schemas.

For each route and microversion that takes a body, hypothesis draws bodies
(``body_fuzz``): schema-valid ones from the route's schema (half of them
pointed at servers, images and volumes that exist, so they get past the
lookups), the same with one thing changed (a hostile value, arbitrary
JSON, a key dropped or added, deep nesting), and bytes that are no JSON
object. Each is sent through the whole WSGI application (auth, size
limit, microversions, router, the real ComputeAPI and a real SQLite
database); Glance and Cinder are the unit tests' in-memory fakes and the
compute service is faked at the RPC boundary (casts are recorded; calls
answer).

A sweep then puts, in a body that is otherwise fine, each value of a
short list (5,000 digits, 2**31, NUL, a lone surrogate, 3,000 open
parentheses...) into every field the schema names, one at a time, so no
field depends on luck to meet them.

Every answer must be below 500, every 4xx a Nova fault body
(``{"<name>": {"code": N, "message": "..."}}`` with Nova's name for N),
and a refused body must leave nothing behind: no server or BDM row, no
cast, no state change, no image, no metadata change. An accepted server
create must have cast its build (nothing left in BUILD with nobody told).

Runs are reproducible (``derandomize``: the examples depend only on the
code). The bodies per route are printed at the end (stderr); on SQLite at
least ``MIN_TOTAL`` must have been sent. 15 % of them and the server
create sweep run again on the stack's PostgreSQL, where some values fail
only when the row is written.
"""

import collections
import datetime
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import urllib.parse

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import settings
from hypothesis import strategies as st
from oslo_config import cfg
import sqlalchemy as sa
import webob

from nova_snapshot.api import deploy
from nova_snapshot.api import faults
from nova_snapshot.api.handlers import services as service_handlers
from nova_snapshot.api import microversion
from nova_snapshot.api.schemas import create_backup as backup_schemas
from nova_snapshot.api.schemas import deferred_delete as \
    deferred_delete_schemas
from nova_snapshot.api.schemas import images as image_schemas
from nova_snapshot.api.schemas import keypairs as keypair_schemas
from nova_snapshot.api.schemas import lock as lock_schemas
from nova_snapshot.api.schemas import reboot as reboot_schemas
from nova_snapshot.api.schemas import rebuild as rebuild_schemas
from nova_snapshot.api.schemas import server_external_events as \
    event_schemas
from nova_snapshot.api.schemas import server_list as server_list_schemas
from nova_snapshot.api.schemas import server_update as update_schemas
from nova_snapshot.api.schemas import servers as server_schemas
from nova_snapshot.api.schemas import services as service_schemas
from nova_snapshot.api.schemas import shelve as shelve_schemas
from nova_snapshot.api.schemas import volume_attachments as va_schemas
from nova_snapshot.compute import api as compute_api
from nova_snapshot import conf as nova_conf
from nova_snapshot.db import api as db_api
from nova_snapshot.db import models
from tests.functional import body_fuzz
from tests.functional import test_db_postgresql
from tests.unit.api import fake_auth
from tests.unit.compute import fakes as compute_fakes
from tests.unit.compute import volume_fakes

HOST = 'fuzz-host'
USER_TOKEN = 'alice:project-a'
SWEEP_SUFFIX = ' (sweep)'
ADMIN_TOKEN = 'admin:project-admin'


class FakeComputeRPC:
    """The compute service at the RPC boundary: casts are recorded, calls
    answer at once."""

    def __init__(self, image_api):
        self.image_api = image_api
        self.sent = []

    def get_console_output(self, context, instance, length=None, **kw):
        self.sent.append(('get_console_output', instance['uuid']))
        return 'console log\n'

    def snapshot_volume_backed(self, context, instance, image_meta, **kw):
        self.sent.append(('snapshot_volume_backed', instance['uuid']))
        image = self.image_api.create(context, dict(image_meta))
        return self.image_api.update(context, image['id'],
                                     {'status': 'active', 'size': 0})

    def __getattr__(self, method):
        if method.startswith('_'):
            raise AttributeError(method)

        def cast(context, instance, *args, **kwargs):
            self.sent.append((method, instance['uuid']))

        return cast


def _version(text):
    return microversion.APIVersion(*text.split('.'))


class Case:
    """One route at one microversion: its schema, who calls it, how many
    bodies, and what a refused body must not have changed."""

    def __init__(self, name, method, path, version, schema, examples,
                 token=USER_TOKEN, realistic=None, state=None,
                 target='server', query=False, sweep_base=None):
        self.name = name
        # callable(fixture class) -> the body the sweep changes one field
        # of at a time; None: no sweep for this case.
        self.sweep_base = sweep_base
        # The schema is the query string's (a dict of lists), sent as one.
        self.query = query
        # The seeded server the path names: "server" (image-backed) or
        # "volume_server" (its root disk a volume).
        self.target = target
        self.method = method
        self.path = path
        self.version = version
        self.schema = schema
        self.examples = examples
        self.token = token
        self.realistic = realistic
        self.state = state
        self._strategies = None

    def strategies(self, fixture):
        """Built once: hypothesis inspects every strategy it is given."""
        if self._strategies is None:
            valid = body_fuzz.schema_bodies(self.schema)
            if self.realistic is not None:
                valid = st.one_of(valid, valid.map(
                    functools.partial(self.realistic, fixture)))
            self._strategies = {
                'valid': valid,
                'mutated': body_fuzz.mutated(valid),
                'targeted': body_fuzz.targeted(
                    valid, body_fuzz.schema_paths(self.schema)),
                'raw': body_fuzz.raw_bodies(valid),
                'json': body_fuzz.json_values,
            }
        return self._strategies


class _BodyFuzz:
    """The fixture and the checks; subclasses pick the database and get
    one test per case (``_add_tests``)."""

    # Share of each case's examples this class runs, and its sweeps (True:
    # all, else the names of the cases whose sweep it runs).
    SCALE = 1.0
    SWEEP = True
    MIN_TOTAL = 0

    @classmethod
    def database_url(cls):
        raise NotImplementedError

    @classmethod
    def drop_database(cls):
        pass

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.COUNTS = collections.Counter()
        cls.STATUSES = collections.Counter()
        cls.STARTED = time.monotonic()
        conf = cfg.ConfigOpts()
        nova_conf.register_opts(conf)
        conf([], project='nova-snapshot', default_config_files=[])
        conf.set_override('connection', cls.database_url(),
                          group='database')
        conf.set_override('api_endpoint', 'http://glance.fuzz.test:9292',
                          group='glance')
        conf.set_override('response_validation', 'error', group='api')
        conf.set_override('default_schedule_host', HOST, group='compute')
        cls.conf = conf
        cls.db = db_api.Database(conf)
        try:
            cls.db.create_schema()
        except Exception:
            cls.db.dispose()
            cls.drop_database()
            raise
        cls.image_api = compute_fakes.FakeImageAPI()
        cls.cinder = volume_fakes.FakeCinder()
        cls.rpc = FakeComputeRPC(cls.image_api)
        cls.compute_api = compute_api.ComputeAPI(
            conf, cls.db, cls.image_api, cls.rpc, volume_api=cls.cinder)
        cls.app = deploy.loadapp(conf, compute_api=cls.compute_api,
                                 auth_protocol=fake_auth.FakeAuthToken)
        cls._seed()

    @classmethod
    def _seed(cls):
        cls.base_image = cls.image_api.add_image(
            name='cirros', owner='project-a', hw_disk_bus='virtio')
        cls.own_image = cls.image_api.add_image(
            name='mine', owner='project-a', visibility='private',
            purpose='fuzz')
        cls.volumes = [cls.cinder.add_volume(size=1, bootable=True)['id']
                       for _ in range(3)]
        now = datetime.datetime.now(datetime.timezone.utc).replace(
            tzinfo=None)
        cls.server = cls.db.instance_create({
            'name': 'target', 'project_id': 'project-a', 'user_id': 'alice',
            'host': HOST, 'vm_state': 'active', 'task_state': None,
            'power_state': 1, 'image_ref': cls.base_image['id'],
            'flavor': {'id': '1', 'name': 'm1.nano', 'memory_mb': 64,
                       'vcpus': 1, 'root_gb': 1, 'ephemeral_gb': 0,
                       'swap': 0},
            'root_device_name': '/dev/vda', 'launched_at': now,
            'metadata': {}, 'system_metadata': {}})
        cls.volume_server = cls.db.instance_create({
            'name': 'volume-target', 'project_id': 'project-a',
            'user_id': 'alice', 'host': HOST, 'vm_state': 'active',
            'task_state': None, 'power_state': 1, 'image_ref': '',
            'flavor': {'id': '1', 'name': 'm1.nano', 'memory_mb': 64,
                       'vcpus': 1, 'root_gb': 1, 'ephemeral_gb': 0,
                       'swap': 0},
            'root_device_name': '/dev/vda', 'launched_at': now,
            'metadata': {}, 'system_metadata': {}})
        root = cls.cinder.add_volume(size=1, status='in-use')
        cls.volume_root = root['id']
        cls.db.bdm_create({
            'instance_uuid': cls.volume_server['uuid'],
            'source_type': 'volume', 'destination_type': 'volume',
            'boot_index': 0, 'device_name': '/dev/vda',
            'delete_on_termination': True, 'volume_id': root['id']})
        cls.other_server = cls.db.instance_create({
            'name': 'other', 'project_id': 'project-b', 'user_id': 'bob',
            'host': HOST, 'vm_state': 'active', 'power_state': 1,
            'image_ref': cls.base_image['id'], 'flavor': {'id': '1'},
            'launched_at': now, 'metadata': {}, 'system_metadata': {}})
        cls.db.service_update(HOST, 'nova-snapshot-compute',
                              binary='nova-snapshot-compute')

    @classmethod
    def tearDownClass(cls):
        elapsed = time.monotonic() - cls.STARTED
        total = sum(cls.COUNTS.values())
        lines = ['API body fuzz (%s): %d bodies in %.1f s'
                 % (cls.__name__, total, elapsed)]
        lines += ['  %5d  %s' % (count, name)
                  for name, count in sorted(cls.COUNTS.items())]
        lines.append('  statuses: %s' % ', '.join(
            '%s x%d' % item for item in sorted(cls.STATUSES.items())))
        print('\n'.join(lines), file=sys.stderr)
        cls.db.dispose()
        cls.drop_database()
        super().tearDownClass()
        # Only when every case ran (not under -k).
        random_cases = [name for name in cls.COUNTS
                        if not name.endswith(SWEEP_SUFFIX)]
        if len(random_cases) == len(CASES) and total < cls.MIN_TOTAL:
            raise AssertionError('only %d requests sent (at least %d wanted)'
                                 % (total, cls.MIN_TOTAL))

    # -- state snapshots: what a refused body must not change -------------

    def _rows(self, *queries):
        """The rows of each (table, where...) query, in one connection."""
        found = []
        with self.db.engine.connect() as conn:
            for table, *where in queries:
                query = sa.select(table)
                for clause in where:
                    query = query.where(clause)
                found.append(sorted(tuple(str(v) for v in row)
                                    for row in conn.execute(query)))
        return found

    def state_servers(self):
        return self._rows((models.instances,),
                          (models.block_device_mappings,))

    def state_server(self):
        return (self._rows(
            (models.instances,
             models.instances.c.uuid == self.target['uuid']),
            (models.block_device_mappings,)),
            sorted(self.image_api.images),
            sorted(self.cinder.snapshots))

    def state_image(self):
        return json.dumps(self.image_api.images[self.own_image['id']],
                          sort_keys=True, default=str)

    def state_services(self):
        return self._rows((models.services,))

    def state_keypairs(self):
        return self._rows((models.key_pairs,))

    def state_events(self):
        return self._rows((models.instances,), (models.instance_actions,))

    def reset_server(self):
        """Every action starts from active servers without a task."""
        with self.db.engine.begin() as conn:
            conn.execute(models.instances.update().where(
                models.instances.c.uuid.in_(
                    [self.server['uuid'], self.volume_server['uuid']])
            ).values(vm_state='active', task_state=None, power_state=1,
                     locked=False, locked_by=None, locked_reason=None))
            # Accepted keypair creates would reach the per-user limit.
            conn.execute(models.key_pairs.delete())

    # -- the request and the checks ----------------------------------------

    def send(self, case, raw):
        path = case.path.format(server=self.target['uuid'],
                                image=self.own_image['id'],
                                volume=self.volume_root)
        if case.query:
            path = '%s?%s' % (path, raw.decode('latin-1'))
        req = webob.Request.blank(path, method=case.method, headers={
            'X-Auth-Token': case.token,
            'Content-Type': 'application/json',
            'OpenStack-API-Version': 'compute %s' % case.version})
        if not case.query:
            req.body = raw
        return req.get_response(self.app)

    def check_fault(self, response):
        status = response.status_int
        detail = '%s: %s' % (response.status, response.text[:2000])
        self.assertLess(status, 500, detail)
        if status < 400:
            return
        self.assertEqual('application/json', response.content_type, detail)
        body = json.loads(response.body)
        name = faults.FAULT_NAMES.get(status, faults.DEFAULT_NAME)
        self.assertEqual([name], list(body), detail)
        self.assertEqual(status, body[name]['code'], detail)
        self.assertIsInstance(body[name]['message'], str, detail)

    def run_case(self, case, raw, counted_as=None):
        self.target = getattr(self, case.target)
        self.reset_server()
        sent_before = len(self.rpc.sent)
        before = getattr(self, case.state)() if case.state else None
        response = self.send(case, raw)
        self.COUNTS[counted_as or case.name] += 1
        self.STATUSES[response.status_int] += 1
        self.check_fault(response)
        sent = self.rpc.sent[sent_before:]
        if response.status_int >= 400:
            self.assertEqual([], sent, 'a refused body was cast')
            if case.state:
                self.assertEqual(before, getattr(self, case.state)(),
                                 'a refused body changed %s' % case.state)
        elif case.name.startswith('POST /servers@'):
            self.check_builds_sent(json.loads(response.body), sent)

    def check_builds_sent(self, body, sent):
        """Every server of an accepted create (one, or several with
        min_count/max_count: the first's body, or return_reservation_id's
        {"reservation_id"}) that is building on a host had its build cast;
        the request made at most [api] max_servers_per_request."""
        if 'reservation_id' in body:
            self.assertEqual(['reservation_id'], list(body))
            reservation = body['reservation_id']
        else:
            reservation = self.db.instance_get(
                body['server']['id'])['reservation_id']
        servers = self.db.instance_list(
            {'reservation_id_regex': '^%s$' % reservation, 'deleted': None})
        self.assertTrue(servers)
        self.assertLessEqual(
            len(servers), self.compute_api.conf.api.max_servers_per_request)
        if 'server' in body:
            self.assertIn(body['server']['id'],
                          [server['uuid'] for server in servers])
        for server in servers:
            if server['host'] and server['vm_state'] == 'building':
                self.assertIn(('build_instance', server['uuid']), sent)

    def run_sweep(self, case):
        """Every field of the schema, in turn, with every value of its
        kind, in a body that is otherwise fine: each field meets the values
        that broke something once, which random draws may miss."""
        base = case.sweep_base(type(self))
        for path, value in body_fuzz.sweep(case.schema,
                                           containers=not case.query):
            body = body_fuzz.put(base, path, value)
            raw = (body_fuzz.query_string(body) if case.query
                   else body_fuzz.encode(body, 'ascii'))
            with self.subTest(path='/'.join(map(str, path)),
                              value=repr(value)[:40]):
                self.run_case(case, raw, case.name + SWEEP_SUFFIX)

    def draw_body(self, data, case):
        strategies = case.strategies(type(self))
        kind = data.draw(st.sampled_from(
            ('valid', 'valid', 'mutated', 'mutated', 'targeted', 'targeted',
             'raw', 'raw', 'json')), label='kind')
        if case.query:
            if kind == 'raw':
                return urllib.parse.quote_from_bytes(
                    data.draw(st.binary(max_size=300), label='raw'),
                    safe='=&').encode()
            return body_fuzz.query_string(
                data.draw(strategies[kind], label='query'))
        if kind == 'raw':
            return data.draw(strategies['raw'], label='raw')
        body = data.draw(strategies[kind], label='body')
        how = data.draw(st.sampled_from(('ascii', 'ascii', 'utf8')),
                        label='encoding')
        return body_fuzz.encode(body, how)


# -- realistic bodies: ids that exist, so lookups pass ----------------------

def _real_rebuild(test, body):
    rebuild = dict(body.get('rebuild') or {})
    rebuild['imageRef'] = test.base_image['id']
    return {'rebuild': rebuild}


def _real_server(test, body):
    server = dict(body.get('server') or {})
    server['imageRef'] = test.base_image['id']
    server['flavorRef'] = '1'
    server.pop('availability_zone', None)
    mappings = []
    for index, item in enumerate(server.get('block_device_mapping_v2', [])):
        item = dict(item)
        volume = test.volumes[index % len(test.volumes)]
        if item.get('source_type') == 'volume':
            item['uuid'] = volume
            item.pop('volume_id', None)
        elif item.get('source_type') == 'image':
            item['uuid'] = test.base_image['id']
            item.pop('image_id', None)
        mappings.append(item)
    if mappings:
        server['block_device_mapping_v2'] = mappings
    server.pop('block_device_mapping', None)
    return dict(body, server=server)


def _real_attachment(test, body):
    attachment = dict(body.get('volumeAttachment') or {})
    attachment['volumeId'] = test.volumes[0]
    return dict(body, volumeAttachment=attachment)


def _real_attachment_update(test, body):
    """The attachment's own volume (an update, not a swap)."""
    attachment = dict(body.get('volumeAttachment') or {})
    attachment['volumeId'] = test.volume_root
    return dict(body, volumeAttachment=attachment)


def _real_service(test, body):
    return dict(body, host=HOST, binary='nova-snapshot-compute')


# An SSH public key that loads (tests/unit/compute/test_keypairs.py).
_PUBLIC_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8kIuksjZoc3GNvhAB99sW4'
               'C4uSlIEhLve3EBS8qlX4 fuzz@h2')


def _real_keypair(test, body):
    """A key that loads, so creates get past the fingerprint."""
    keypair = dict(body.get('keypair') or {})
    keypair['public_key'] = _PUBLIC_KEY
    keypair.pop('type', None)
    return dict(body, keypair=keypair)


def _create_base(fixture):
    return {'server': {
        'name': 'sweep', 'imageRef': fixture.base_image['id'],
        'flavorRef': '1', 'networks': 'none', 'metadata': {'k': 'v'},
        'block_device_mapping_v2': [{
            'source_type': 'blank', 'destination_type': 'volume',
            'boot_index': -1, 'volume_size': 1}]}}


def _real_events(test, body):
    """Events about the seeded servers (each in turn), volume events
    about the volume server's root volume, so they get past the lookup."""
    servers = (test.volume_server, test.server, test.other_server)
    events = []
    for index, event in enumerate(body.get('events') or []):
        event = dict(event, server_uuid=servers[index % 3]['uuid'])
        if str(event.get('name', '')).startswith('volume-'):
            event['tag'] = test.volume_root
        events.append(event)
    return dict(body, events=events)


def _events_base(fixture):
    return {'events': [{'name': 'volume-extended',
                        'server_uuid': fixture.volume_server['uuid'],
                        'tag': fixture.volume_root, 'status': 'completed'}]}


def _fixed(body):
    return lambda fixture: body


def _build_cases():
    cases = []
    for version in ('2.1', '2.32', '2.37', '2.42', '2.45', '2.67',
                    '2.104'):
        cases.append(Case(
            'POST /servers@%s' % version, 'POST', '/v2.1/servers', version,
            server_schemas.create_schema(_version(version)), 400,
            realistic=_real_server, state='state_servers',
            sweep_base=_create_base if version == '2.45' else None))
    for version in ('2.1', '2.19', '2.90', '2.94', '2.104'):
        cases.append(Case(
            'PUT /servers/{id}@%s' % version, 'PUT', '/v2.1/servers/{server}',
            version, update_schemas.update_schema(_version(version)), 150,
            state='state_server', sweep_base=_fixed({'server': {
                'name': 'sweep', 'description': 'd', 'hostname': 'h1',
                'accessIPv4': '10.0.0.1', 'accessIPv6': '::1',
                'OS-DCF:diskConfig': 'AUTO',
                'pinned_availability_zone': None}})
            if version == '2.104' else None))
    action = '/v2.1/servers/{server}/action'
    for version in ('2.1', '2.38', '2.45', '2.104'):
        cases.append(Case(
            'createImage@%s' % version, 'POST', action, version,
            server_schemas.CREATE_IMAGE, 200, state='state_server',
            sweep_base=_fixed({'createImage': {
                'name': 'sweep', 'metadata': {'k': 'v'}}})
            if version == '2.45' else None))
    for version in ('2.1', '2.45'):
        cases.append(Case(
            'createImage(volume-backed)@%s' % version, 'POST', action,
            version, server_schemas.CREATE_IMAGE, 120, state='state_server',
            target='volume_server', sweep_base=_fixed({'createImage': {
                'name': 'sweep', 'metadata': {'k': 'v'}}})
            if version == '2.45' else None))
    for key, schema in (('os-stop', server_schemas.STOP),
                        ('os-start', server_schemas.START),
                        ('pause', server_schemas.PAUSE),
                        ('unpause', server_schemas.UNPAUSE),
                        ('suspend', server_schemas.SUSPEND),
                        ('resume', server_schemas.RESUME)):
        cases.append(Case('%s@2.1' % key, 'POST', action, '2.1', schema,
                          100, state='state_server',
                          sweep_base=_fixed({key: None})))
    for version, target in (('2.1', 'server'), ('2.45', 'server'),
                            ('2.45', 'volume_server')):
        cases.append(Case(
            'createBackup%s@%s' % (
                '(volume-backed)' if target == 'volume_server' else '',
                version), 'POST', action, version,
            backup_schemas.CREATE_BACKUP, 150, state='state_server',
            target=target, sweep_base=_fixed({'createBackup': {
                'name': 'sweep', 'backup_type': 'daily', 'rotation': 2,
                'metadata': {'k': 'v'}}}) if version == '2.45' else None))
    for key, schema in (('shelve', shelve_schemas.SHELVE),
                        ('shelveOffload', shelve_schemas.SHELVE_OFFLOAD)):
        cases.append(Case('%s@2.1' % key, 'POST', action, '2.1', schema,
                          60, state='state_server',
                          sweep_base=_fixed({key: None})))
    for version in ('2.1', '2.77', '2.91'):
        cases.append(Case(
            'unshelve@%s' % version, 'POST', action, version,
            shelve_schemas.unshelve_schema(_version(version)), 60,
            state='state_server', sweep_base=_fixed(
                {'unshelve': {'availability_zone': 'nova'}})
            if version == '2.91' else None))
    cases.append(Case('reboot@2.1', 'POST', action, '2.1',
                      reboot_schemas.REBOOT, 100, state='state_server',
                      sweep_base=_fixed({'reboot': {'type': 'HARD'}})))
    for version in ('2.1', '2.19', '2.104'):
        cases.append(Case(
            'rebuild@%s' % version, 'POST', action, version,
            rebuild_schemas.rebuild_schema(_version(version)), 150,
            realistic=_real_rebuild, state='state_server',
            sweep_base=(lambda fixture: {'rebuild': {
                'imageRef': fixture.base_image['id'], 'name': 'sweep',
                'metadata': {'k': 'v'}, 'preserve_ephemeral': False,
                'accessIPv4': '10.0.0.1', 'adminPass': 'pw',
                'OS-DCF:diskConfig': 'AUTO'}}) if version == '2.19'
            else None))
    cases.append(Case(
        'rebuild(volume-backed)@2.1', 'POST', action, '2.1',
        rebuild_schemas.REBUILD, 60, realistic=_real_rebuild,
        state='state_server', target='volume_server'))
    for version, schema in (('2.1', lock_schemas.LOCK),
                            ('2.73', lock_schemas.LOCK_V273)):
        cases.append(Case(
            'lock@%s' % version, 'POST', action, version, schema, 100,
            state='state_server', sweep_base=_fixed(
                {'lock': {'locked_reason': 'sweep'}}
                if version == '2.73' else {'lock': None})))
    cases.append(Case('unlock@2.1', 'POST', action, '2.1',
                      lock_schemas.UNLOCK, 60, state='state_server',
                      sweep_base=_fixed({'unlock': None})))
    # restore of a server that is not soft-deleted: any body is a 400 or
    # a 409, nothing changes. (forceDelete is not fuzzed here: its valid
    # bodies delete the seeded server the other cases use.)
    cases.append(Case('restore@2.1', 'POST', action, '2.1',
                      deferred_delete_schemas.RESTORE, 60,
                      state='state_server',
                      sweep_base=_fixed({'restore': None})))
    cases.append(Case(
        'os-getConsoleOutput@2.1', 'POST', action, '2.1',
        server_schemas.GET_CONSOLE_OUTPUT, 200, state='state_server',
        sweep_base=_fixed({'os-getConsoleOutput': {'length': 5}})))
    for version, token in (('2.1', USER_TOKEN), ('2.45', ADMIN_TOKEN),
                           ('2.104', USER_TOKEN), ('2.104', ADMIN_TOKEN)):
        cases.append(Case(
            'GET /servers/detail?query@%s%s' % (
                version, '(admin)' if token == ADMIN_TOKEN else ''), 'GET',
            '/v2.1/servers/detail', version,
            server_list_schemas.query_schema(_version(version)), 150,
            token=token, state='state_servers', query=True,
            sweep_base=_fixed({'limit': ['5']}) if version == '2.45'
            else None))
    for version in ('2.1', '2.45', '2.79', '2.104'):
        cases.append(Case(
            'POST os-volume_attachments@%s' % version, 'POST',
            '/v2.1/servers/{server}/os-volume_attachments', version,
            va_schemas.create_schema(_version(version)), 200,
            realistic=_real_attachment,
            state='state_server',
            sweep_base=(lambda fixture: {'volumeAttachment': {
                'volumeId': fixture.volumes[1], 'device': '/dev/vdb'}})
            if version == '2.45' else None))
    # PUT of the volume server's root attachment: 2.85 updates it (a
    # member); before, every PUT is the admin swap (refused, 409 or 400).
    for version, token in (('2.84', ADMIN_TOKEN), ('2.85', USER_TOKEN),
                           ('2.104', ADMIN_TOKEN)):
        cases.append(Case(
            'PUT os-volume_attachments/{id}@%s%s' % (
                version, '(admin)' if token == ADMIN_TOKEN else ''), 'PUT',
            '/v2.1/servers/{server}/os-volume_attachments/{volume}',
            version, va_schemas.update_schema(_version(version)), 100,
            token=token, realistic=_real_attachment_update,
            target='volume_server', state='state_server',
            sweep_base=(lambda fixture: {'volumeAttachment': {
                'volumeId': fixture.volume_root,
                'delete_on_termination': True}})
            if version == '2.85' else None))
    for name, method, path, schema, base in (
            ('POST images/metadata', 'POST', '/v2.1/images/{image}/metadata',
             image_schemas.CREATE_METADATA, {'metadata': {'k': 'v'}}),
            ('PUT images/metadata', 'PUT', '/v2.1/images/{image}/metadata',
             image_schemas.UPDATE_ALL_METADATA,
             {'metadata': {'purpose': 'fuzz'}}),
            ('PUT images/metadata/key', 'PUT',
             '/v2.1/images/{image}/metadata/purpose',
             image_schemas.UPDATE_METADATA_ITEM, {'meta': {'purpose': 'x'}})):
        cases.append(Case('%s@2.1' % name, method, path, '2.1', schema, 200,
                          state='state_image', sweep_base=_fixed(base)))
    for action_name, schema, version in (
            ('enable', service_schemas.ENABLE, '2.1'),
            ('disable', service_schemas.DISABLE, '2.1'),
            ('disable-log-reason', service_schemas.DISABLE_LOG_REASON, '2.1'),
            ('force-down', service_schemas.FORCE_DOWN, '2.11')):
        cases.append(Case(
            'PUT os-services/%s@%s' % (action_name, version), 'PUT',
            '/v2.1/os-services/%s' % action_name, version, schema, 100,
            token=ADMIN_TOKEN, realistic=_real_service,
            state='state_services', sweep_base=_fixed(dict(
                {'host': HOST, 'binary': 'nova-snapshot-compute'},
                **{key: value for key, value in (
                    ('disabled_reason', 'sweep'), ('forced_down', False))
                   if key in schema['properties']}))))
    # os-keypairs: create by version (2.2 type, 2.10 user_id, 2.92 key
    # required) and the list's query (2.35 paging, 2.75 closed).
    for version, token in (('2.1', USER_TOKEN), ('2.2', USER_TOKEN),
                           ('2.10', ADMIN_TOKEN), ('2.92', USER_TOKEN)):
        cases.append(Case(
            'POST os-keypairs@%s' % version, 'POST', '/v2.1/os-keypairs',
            version, keypair_schemas.create_schema(_version(version)), 80,
            token=token, realistic=_real_keypair, state='state_keypairs',
            sweep_base=_fixed({'keypair': {
                'name': 'sweep', 'public_key': _PUBLIC_KEY}})
            if version == '2.92' else None))
    for version in ('2.35', '2.104'):
        cases.append(Case(
            'GET os-keypairs?query@%s' % version, 'GET',
            '/v2.1/os-keypairs', version,
            keypair_schemas.index_query_schema(_version(version)), 80,
            state='state_keypairs', query=True,
            sweep_base=_fixed({'limit': ['5']})
            if version == '2.104' else None))
    # From 2.53 the service is named by its UUID in the path.
    service_uuid = service_handlers.service_uuid(
        {'host': HOST, 'binary': 'nova-snapshot-compute'})
    cases.append(Case(
        'PUT os-services/{uuid}@2.53', 'PUT',
        '/v2.1/os-services/%s' % service_uuid, '2.53',
        service_schemas.UPDATE_V253, 100, token=ADMIN_TOKEN,
        state='state_services', sweep_base=_fixed({
            'status': 'disabled', 'disabled_reason': 'sweep',
            'forced_down': False})))
    # os-server-external-events by the versions that add event names
    # (an admin: the rule is the service role or an admin).
    for version in ('2.1', '2.51', '2.93'):
        cases.append(Case(
            'POST os-server-external-events@%s' % version, 'POST',
            '/v2.1/os-server-external-events', version,
            event_schemas.create_schema(_version(version)), 100,
            token=ADMIN_TOKEN, realistic=_real_events, state='state_events',
            sweep_base=_events_base if version == '2.93' else None))
    return cases


CASES = _build_cases()


def _make_test(case, scale):
    @settings(max_examples=max(1, int(case.examples * scale)),
              derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate, Phase.shrink),
              print_blob=False)
    @given(data=st.data())
    def test(self, data):
        self.run_case(case, self.draw_body(data, case))

    test.__name__ = 'test_%s' % ''.join(
        c if c.isalnum() else '_' for c in case.name)
    test.__doc__ = '%s %s at %s' % (case.method, case.path, case.version)
    return test


def _make_sweep(case):
    def test(self):
        self.run_sweep(case)

    test.__name__ = 'test_%s_sweep' % ''.join(
        c if c.isalnum() else '_' for c in case.name)
    test.__doc__ = 'Every field of %s %s at %s' % (
        case.method, case.path, case.version)
    return test


def _add_tests(cls):
    for case in CASES:
        tests = [_make_test(case, cls.SCALE)]
        if case.sweep_base is not None and (
                cls.SWEEP is True or case.name in cls.SWEEP):
            tests.append(_make_sweep(case))
        for test in tests:
            setattr(cls, test.__name__, test)
    return cls


@_add_tests
class SQLiteBodyFuzzTest(_BodyFuzz, unittest.TestCase):
    """Every case in full, on SQLite: at least MIN_TOTAL bodies."""

    MIN_TOTAL = 5000

    @classmethod
    def database_url(cls):
        cls.tempdir = tempfile.mkdtemp(prefix='nova-snapshot-fuzz-')
        return 'sqlite:///%s' % os.path.join(cls.tempdir, 'fuzz.sqlite')

    @classmethod
    def drop_database(cls):
        shutil.rmtree(cls.tempdir, ignore_errors=True)


@_add_tests
class PostgreSQLBodyFuzzTest(_BodyFuzz, unittest.TestCase):
    """15 % of the bodies on the stack's PostgreSQL (a fresh database):
    NUL in a string and integers past 32 bits fail only there, when the
    row is written. Not reachable is an error, as for the other
    PostgreSQL tests."""

    SCALE = 0.15
    # The server create sweep: the columns PostgreSQL is strict about.
    SWEEP = ('POST /servers@2.45', 'PUT /servers/{id}@2.104')

    @classmethod
    def database_url(cls):
        cls.server_db = test_db_postgresql._PostgreSQL(
            test_db_postgresql.PG_URL)
        cls.server_db.create()
        return cls.server_db.url.render_as_string(hide_password=False)

    @classmethod
    def drop_database(cls):
        cls.server_db.drop()
