"""GET /servers and /servers/detail over the real ComputeAPI and database.

A mixin: ``test_server_list`` runs it on SQLite, and
``tests/functional/test_server_list_postgresql`` on PostgreSQL, where the
regular expressions, JSON and NULL ordering are the server's own.
Subclasses set ``self.db`` (schema created) before calling setUp.
"""

import datetime
from unittest import mock
from urllib import parse

from oslo_utils import timeutils
import sqlalchemy as sa

from nova_snapshot.api import microversion
from nova_snapshot.api.schemas import server_list as server_list_schema
from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import flavors
from nova_snapshot.compute import vm_states
from nova_snapshot.db import api as db_api
from nova_snapshot.db import models
from tests.unit.api import base

ADMIN = 'admin:project-admin'
ALICE = 'alice:project-a'
BOB = 'bob:project-b'


class _ListTestBase(base.APITestCase):

    def setUp(self):
        self.api = compute_api.ComputeAPI(self._conf_for_api(), self.db,
                                          image_api=None, rpcapi=None)
        # The base case builds the app around its fake; give it ours.
        with mock.patch.object(base.fakes, 'FakeComputeAPI',
                               return_value=self.api):
            super().setUp()
        self.clock = datetime.datetime(2025, 1, 1, 12, 0, 0)

    def _conf_for_api(self):
        from nova_snapshot import conf as nova_conf

        return nova_conf.new_conf([])

    # -- helpers -----------------------------------------------------------

    def _server(self, project='project-a', name='server', **values):
        self.clock += datetime.timedelta(seconds=1)
        row = {'name': name, 'project_id': project, 'user_id': 'u',
               'host': 'host1', 'vm_state': vm_states.ACTIVE,
               'task_state': None, 'image_ref': 'image-1',
               'flavor': flavors.get_flavor('1'), 'created_at': self.clock,
               'launched_at': self.clock}
        row.update(values)
        return self.db.instance_create(row)

    def _list(self, query='', token=ALICE, detail=False, version=None,
              status=200):
        path = '/v2.1/servers%s%s' % ('/detail' if detail else '',
                                      '?' + query if query else '')
        response = self.request('GET', path, token=token, version=version)
        self.assertEqual(status, response.status_int, response.text)
        return response.json

    def _ids(self, body):
        return [s['id'] for s in body['servers']]


class ServerListTests(_ListTestBase):

    # -- scoping -----------------------------------------------------------

    def test_own_project_newest_first(self):
        first = self._server()
        second = self._server()
        self._server(project='project-b')
        self.assertEqual([second['uuid'], first['uuid']],
                         self._ids(self._list()))
        self.assertNotIn('servers_links', self._list())

    def test_all_tenants_for_admins_only(self):
        mine = self._server(project='project-admin')
        alice = self._server()
        bob = self._server(project='project-b')
        self.assertEqual([mine['uuid']], self._ids(self._list(token=ADMIN)))
        self.assertEqual([bob['uuid'], alice['uuid'], mine['uuid']],
                         self._ids(self._list('all_tenants=1', token=ADMIN)))
        # Present and empty counts as true (Nova's is_all_tenants).
        self.assertEqual(3, len(self._list('all_tenants', token=ADMIN)
                                ['servers']))
        self.assertEqual([mine['uuid']],
                         self._ids(self._list('all_tenants=0', token=ADMIN)))
        for key in ('project_id', 'tenant_id'):
            self.assertEqual([bob['uuid']], self._ids(self._list(
                'all_tenants=1&%s=project-b' % key, token=ADMIN,
                detail=True)))
        # Without all_tenants an admin's project filter is not honoured.
        self.assertEqual([mine['uuid']], self._ids(
            self._list('project_id=project-b', token=ADMIN)))
        self._list('all_tenants=1', token=ALICE, status=403)
        self._list('all_tenants=1', token=ALICE, detail=True, status=403)
        body = self._list('all_tenants=maybe', token=ADMIN, status=400)
        self.assertIn('Unrecognized value', body['badRequest']['message'])

    def test_admin_only_filters_are_ignored_for_others(self):
        here = self._server(host='host1')
        there = self._server(host='host2')
        # Unknown and admin-only parameters are dropped, not refused.
        self.assertEqual([there['uuid'], here['uuid']],
                         self._ids(self._list('host=host2&bogus=1')))
        self._server(project='project-admin', host='host2')
        self.assertEqual(1, len(self._list(
            'host=host2', token=ADMIN)['servers']))
        self.assertEqual(2, len(self._list(
            'host=host2&all_tenants=1', token=ADMIN)['servers']))

    # -- paging ------------------------------------------------------------

    def test_pages_follow_next_links_to_the_end(self):
        made = [self._server(name='s%d' % i)['uuid'] for i in range(5)]
        seen, query, pages = [], 'limit=2', 0
        while True:
            body = self._list(query, detail=True)
            pages += 1
            seen += self._ids(body)
            links = body.get('servers_links')
            if not links:
                break
            self.assertEqual('next', links[0]['rel'])
            href = parse.urlsplit(links[0]['href'])
            self.assertEqual('/v2.1/servers/detail', href.path)
            params = dict(parse.parse_qsl(href.query))
            self.assertEqual({'limit': '2', 'marker': seen[-1]}, params)
            query = href.query
        self.assertEqual(list(reversed(made)), seen)
        self.assertEqual(3, pages)

    def test_exactly_full_last_page_links_to_an_empty_one(self):
        for i in range(2):
            self._server()
        body = self._list('limit=2')
        self.assertIn('servers_links', body)
        marker = body['servers'][-1]['id']
        self.assertEqual({'servers': []},
                         self._list('limit=2&marker=%s' % marker))

    def test_max_limit_caps_a_page(self):
        self.conf.set_override('max_limit', 3, group='api')
        for i in range(4):
            self._server()
        self.assertEqual(3, len(self._list()['servers']))
        self.assertEqual(3, len(self._list('limit=10')['servers']))
        self.assertIn('servers_links', self._list())
        self.assertEqual([], self._list('limit=0')['servers'])

    def test_marker_errors(self):
        body = self._list('marker=nope', status=400)
        self.assertEqual('marker [nope] not found',
                         body['badRequest']['message'])
        for bad in ('limit=-1', 'limit=abc', 'limit=1.5', 'limit='):
            body = self._list(bad, status=400)
            self.assertIn('Invalid input for query parameters limit',
                          body['badRequest']['message'])

    def test_marker_of_a_deleted_server_still_pages(self):
        a, b, c = (self._server()['uuid'] for _ in range(3))
        self.db.instance_destroy(b)
        self.assertEqual([a], self._ids(self._list('marker=%s' % b)))

    def test_marker_of_another_project_is_not_found(self):
        # Nova pages after any project's server: that tells a caller the
        # server exists. Here it is an unknown marker, for deleted ones too.
        mine = self._server()['uuid']
        theirs = self._server(project='project-b')['uuid']
        gone = self._server(project='project-b')['uuid']
        self.db.instance_destroy(gone)
        for marker in (theirs, gone):
            for detail in (False, True):
                body = self._list('marker=%s' % marker, detail=detail,
                                  status=400)
                self.assertEqual('marker [%s] not found' % marker,
                                 body['badRequest']['message'])
        self.assertEqual([], self._ids(self._list('marker=%s' % mine)))
        # An admin listing every project pages after anyone's server.
        self.assertEqual([mine], self._ids(self._list(
            'all_tenants=1&marker=%s' % theirs, token=ADMIN)))

    # -- sorting -----------------------------------------------------------

    def test_sort_keys_and_directions(self):
        b = self._server(name='b')
        a = self._server(name='a')
        c = self._server(name='c', task_state=None)
        self.assertEqual([a['uuid'], b['uuid'], c['uuid']], self._ids(
            self._list('sort_key=display_name&sort_dir=asc')))
        self.assertEqual([c['uuid'], b['uuid'], a['uuid']], self._ids(
            self._list('sort_key=display_name')))
        # A key without a column here holds one value for every server:
        # the direction still applies to the default keys after it.
        self.assertEqual([b['uuid'], a['uuid'], c['uuid']], self._ids(
            self._list('sort_key=key_name&sort_dir=asc')))
        # Ignored keys (Nova's list) go with their direction.
        self.assertEqual([c['uuid'], a['uuid'], b['uuid']], self._ids(
            self._list('sort_key=id&sort_dir=asc')))

    def test_sort_errors(self):
        self._list('sort_key=bogus', status=400)
        body = self._list('sort_key=display_name&sort_dir=up', status=400)
        self.assertEqual("Unknown sort direction, must be 'desc' or 'asc'",
                         body['badRequest']['message'])
        self._list('sort_key=uuid&sort_dir=asc&sort_dir=desc', status=400)
        body = self._list('sort_key=host', status=403)
        self.assertEqual('Only administrators can sort servers by host',
                         body['forbidden']['message'])
        self._list('sort_key=host', token=ADMIN)

    def test_every_nova_sort_key_is_answered_as_nova_does(self):
        # Nova sorts by every key of its list (200), drops the ignored
        # ones below 2.75 and refuses them from 2.75 (400); nothing it
        # knows is a database error here ("Cannot sort by ...", or a 500
        # for a key whose column the database does not sort by).
        self._server(name='a', access_ip_v4='10.0.0.2')
        self._server(name='b', access_ip_v4='10.0.0.1')
        newest = str(microversion.MAX_VERSION)
        for version in ('2.1', '2.72', '2.73', '2.75', newest):
            refused = set()
            if version in ('2.75', newest):
                refused = set(server_list_schema.IGNORED_SORT_KEYS_V273)
            for key in server_list_schema.VALID_SORT_KEYS:
                for direction in ('asc', 'desc'):
                    query = 'sort_key=%s&sort_dir=%s' % (key, direction)
                    response = self.request(
                        'GET', '/v2.1/servers?' + query, token=ADMIN,
                        version=version)
                    expected = 400 if key in refused else 200
                    self.assertEqual(expected, response.status_int,
                                     '%s at %s: %s' % (query, version,
                                                       response.text))

    def test_sort_by_the_columns_nova_sorts_by(self):
        low = self._server(name='low', access_ip_v4='10.0.0.1',
                           access_ip_v6='::1', auto_disk_config=False,
                           locked=True, locked_by='admin')
        high = self._server(name='high', access_ip_v4='10.0.0.9',
                            access_ip_v6='::9', auto_disk_config=True,
                            locked=True, locked_by='owner')
        for key in ('access_ip_v4', 'access_ip_v6', 'auto_disk_config',
                    'locked_by'):
            self.assertEqual([low['uuid'], high['uuid']], self._ids(
                self._list('sort_key=%s&sort_dir=asc' % key)), key)
            self.assertEqual([high['uuid'], low['uuid']], self._ids(
                self._list('sort_key=%s&sort_dir=desc' % key)), key)

    def test_sort_columns_are_columns(self):
        # The handler sorts by no name the database would refuse, and the
        # database by no name that is not a column.
        for column in db_api.Database.SORT_COLUMNS:
            self.assertIn(column, models.instances.c, column)

    def test_pages_with_nulls_in_the_sort_key(self):
        # task_state is NULL for most: paging must neither skip nor repeat.
        made = [self._server(task_state=state)['uuid'] for state in
                (None, 'image_snapshot', None, 'deleting', None, None)]
        for direction in ('asc', 'desc'):
            seen, marker = [], None
            for _ in range(10):
                query = 'sort_key=task_state&sort_dir=%s&limit=2' % direction
                if marker:
                    query += '&marker=%s' % marker
                page = self._ids(self._list(query))
                if not page:
                    break
                seen += page
                marker = page[-1]
            self.assertEqual(sorted(made), sorted(seen), direction)
            self.assertEqual(len(made), len(seen), direction)

    # -- filters -----------------------------------------------------------

    def test_name_is_a_regular_expression(self):
        web = self._server(name='web-1')
        self._server(name='db-1')
        self.assertEqual([web['uuid']], self._ids(self._list('name=^web')))
        self.assertEqual([web['uuid']], self._ids(self._list('name=eb-')))
        body = self._list('name=(', status=400)
        self.assertIn('Invalid input for query parameters name',
                      body['badRequest']['message'])

    def test_key_name_is_a_regular_expression(self):
        keyed = self._server(name='a', key_name='deploy-key')
        self._server(name='b', key_name='other')
        self._server(name='c')
        self.assertEqual([keyed['uuid']], self._ids(self._list(
            'key_name=^deploy', version='2.83')))
        # Before 2.83 a non-admin's key_name is dropped, as in Nova.
        self.assertEqual(3, len(self._list('key_name=^deploy',
                                           version='2.82')['servers']))
        self.assertEqual([keyed['uuid']], self._ids(self._list(
            'key_name=ploy-&all_tenants=1', token=ADMIN)))

    def test_status_maps_to_states(self):
        active = self._server()
        error = self._server(vm_state=vm_states.ERROR)
        snap = self._server(task_state='image_snapshot')
        self.assertEqual([snap['uuid'], active['uuid']],
                         self._ids(self._list('status=ACTIVE')))
        self.assertEqual([error['uuid']],
                         self._ids(self._list('status=error')))
        self.assertEqual(3, len(self._list(
            'status=ACTIVE&status=ERROR')['servers']))
        self.assertEqual([], self._list('status=bogus')['servers'])
        body = self._list('status=bogus', version='2.38', status=400)
        self.assertEqual('Invalid status value',
                         body['badRequest']['message'])

    def test_deleted_servers_for_admins_by_status(self):
        gone = self._server(project='project-admin')
        self.db.instance_update(gone['uuid'], {'vm_state': vm_states.DELETED})
        self.db.instance_destroy(gone['uuid'])
        body = self._list('status=DELETED', token=ADMIN, detail=True)
        self.assertEqual([gone['uuid']], self._ids(body))
        self.assertEqual('DELETED', body['servers'][0]['status'])
        body = self._list('status=DELETED', status=403)
        self.assertEqual('Only administrators may list deleted instances',
                         body['forbidden']['message'])

    def test_image_and_flavor(self):
        one = self._server(image_ref='image-1', flavor=flavors.get_flavor('1'))
        two = self._server(image_ref='image-2', flavor=flavors.get_flavor('2'))
        self.assertEqual([two['uuid']], self._ids(self._list('image=image-2')))
        self.assertEqual([one['uuid']], self._ids(self._list('flavor=1')))
        self.assertEqual([two['uuid']], self._ids(self._list('flavor=2')))
        self.assertEqual([], self._list('flavor=42')['servers'])

    def test_changes_since_includes_deleted_servers(self):
        old = self._server()
        self.db.instance_update(old['uuid'], {'updated_at': self.clock})
        since = self.clock + datetime.timedelta(seconds=30)
        self.clock = since + datetime.timedelta(seconds=30)
        new = self._server()
        gone = self._server()
        self.db.instance_update(gone['uuid'], {'vm_state': vm_states.DELETED})
        self.db.instance_destroy(gone['uuid'])
        query = 'changes-since=%s' % parse.quote(since.isoformat() + 'Z')
        body = self._list(query, detail=True)
        self.assertEqual({new['uuid'], gone['uuid']}, set(self._ids(body)))
        status = {s['id']: s['status'] for s in body['servers']}
        self.assertEqual('DELETED', status[gone['uuid']])
        body = self._list('changes-since=yesterday', status=400)
        self.assertEqual('Invalid filter field: changes-since.',
                         body['badRequest']['message'])
        # Without changes-since, deleted servers are not listed.
        self.assertNotIn(gone['uuid'], self._ids(self._list()))

    def test_changes_before_from_2_66(self):
        old = self._server()
        self.db.instance_update(old['uuid'], {'updated_at': self.clock})
        before = self.clock + datetime.timedelta(seconds=30)
        self.clock = before + datetime.timedelta(seconds=30)
        new = self._server()
        self.db.instance_update(new['uuid'], {'updated_at': self.clock})
        query = 'changes-before=%s' % parse.quote(before.isoformat() + 'Z')
        self.assertEqual([old['uuid']],
                         self._ids(self._list(query, version='2.66')))
        # Below 2.66 a user's changes-before is dropped, not applied.
        self.assertEqual({old['uuid'], new['uuid']},
                         set(self._ids(self._list(query, version='2.65'))))
        since = 'changes-since=%s' % parse.quote(
            self.clock.isoformat() + 'Z')
        self._list(query + '&' + since, version='2.66', status=400)

    def test_locked_filter_and_sort_from_2_73(self):
        free = self._server(name='free')
        held = self._server(name='held', locked=True, locked_by='owner',
                            locked_reason='why')
        self.assertEqual([held['uuid']], self._ids(
            self._list('locked=true', version='2.73')))
        self.assertEqual([free['uuid']], self._ids(
            self._list('locked=0', version='2.73')))
        self.assertEqual([free['uuid'], held['uuid']], self._ids(
            self._list('sort_key=locked&sort_dir=asc', version='2.73')))
        body = self._list(detail=True, version='2.73')
        reasons = {s['id']: s['locked_reason'] for s in body['servers']}
        self.assertEqual({free['uuid']: None, held['uuid']: 'why'}, reasons)
        self._list('locked=maybe', version='2.73', status=400)
        # Below 2.73 locked is dropped for a user and ignored as a sort key.
        self.assertEqual(2, len(self._list('locked=true&sort_key=locked',
                                           version='2.72')['servers']))

    def test_unknown_parameters_are_400_from_2_75(self):
        self._server()
        self._list('bogus=1', version='2.74')
        body = self._list('bogus=1', version='2.75', status=400)
        self.assertIn('bogus', body['badRequest']['message'])
        self._list('sort_key=vcpus', version='2.75', status=400)
        self._list('metadata=x', token=ADMIN, version='2.75', status=400)

    def test_filters_no_server_here_can_match(self):
        self._server()
        for query in ('ip=10.0',):
            self.assertEqual([], self._list(query)['servers'], query)
        # ip6 is a filter from 2.5; before, an unknown parameter.
        self.assertEqual([], self._list('ip6=::1', version='2.5')['servers'])
        self.assertEqual(1, len(self._list('ip6=::1')['servers']))
        self.assertEqual([], self._list('tags=a', version='2.26')['servers'])
        # Before 2.26 tags are an unknown parameter: dropped.
        self.assertEqual(1, len(self._list('tags=a')['servers']))

    def test_reservation_id_filter_and_fields(self):
        # Two servers of one multiple create, one of another request, one
        # made before reservation ids were kept (NULL).
        first = self._server(name='web-1', reservation_id='r-aaaa1111',
                             launch_index=0)
        second = self._server(name='web-2', reservation_id='r-aaaa1111',
                              launch_index=1)
        other = self._server(name='db', reservation_id='r-bbbb2222',
                             launch_index=0)
        self._server(name='old')
        body = self._list('reservation_id=r-aaaa1111')
        self.assertEqual(sorted([first['uuid'], second['uuid']]),
                         sorted(self._ids(body)))
        # Nova matches it as a regular expression; any user may filter.
        self.assertEqual([other['uuid']],
                         self._ids(self._list('reservation_id=b{4}')))
        self.assertEqual([], self._list('reservation_id=r-cccc')['servers'])
        self._list('reservation_id=r-(', status=400)
        # Admins see it (2.3) with each server's place in its request.
        body = self._list('all_tenants=1&reservation_id=aaaa'
                          '&sort_key=launch_index&sort_dir=asc',
                          token=ADMIN, detail=True,
                          version='2.3')
        self.assertEqual(
            [('r-aaaa1111', 0), ('r-aaaa1111', 1)],
            [(s['OS-EXT-SRV-ATTR:reservation_id'],
              s['OS-EXT-SRV-ATTR:launch_index']) for s in body['servers']])
        old = self._list('all_tenants=1&name=old', token=ADMIN,
                         detail=True, version='2.3')['servers']
        self.assertEqual((None, 0), (old[0]['OS-EXT-SRV-ATTR:reservation_id'],
                                     old[0]['OS-EXT-SRV-ATTR:launch_index']))

    # -- detail ------------------------------------------------------------

    def test_detail_has_latest_fault_and_volumes(self):
        error = self._server(vm_state=vm_states.ERROR)
        active = self._server()
        self.db.fault_create(error['uuid'], 500, 'first', 'tb')
        timeutils.set_time_override(datetime.datetime(2030, 1, 1))
        self.addCleanup(timeutils.clear_time_override)
        self.db.fault_create(error['uuid'], 404, 'latest', None)
        self.db.fault_create(active['uuid'], 500, 'hidden', None)
        self.db.bdm_create({'instance_uuid': active['uuid'],
                            'source_type': 'volume',
                            'destination_type': 'volume',
                            'volume_id': 'vol-1', 'boot_index': None})
        body = self._list(detail=True, version='2.3')
        servers = {s['id']: s for s in body['servers']}
        self.assertEqual({'code': 404, 'message': 'latest',
                          'created': '2030-01-01T00:00:00Z'},
                         servers[error['uuid']]['fault'])
        self.assertNotIn('fault', servers[active['uuid']])
        self.assertEqual(
            [{'id': 'vol-1', 'delete_on_termination': False}],
            servers[active['uuid']]['os-extended-volumes:volumes_attached'])
        self.assertEqual(
            [], servers[error['uuid']]['os-extended-volumes:volumes_attached'])

    def test_production_checks_the_first_server_of_a_page(self):
        for _ in range(3):
            self._server()
        from nova_snapshot.api import validation

        checked = []
        real = validation.validate_response

        def record(conf, body, schema):
            checked.append(len(body['servers']))
            return real(conf, body, schema)

        with mock.patch.object(validation, 'validate_response', record):
            self.assertEqual(3, len(self._list(detail=True)['servers']))
            self.conf.set_override('response_validation', 'warn',
                                   group='api')
            self.assertEqual(3, len(self._list(detail=True)['servers']))
        # Tests ("error") check every server; "warn" the first.
        self.assertEqual([3, 1], checked)

    # -- robustness --------------------------------------------------------

    def test_no_query_string_is_a_server_error(self):
        self._server()
        queries = ['', '&&&', '=', '==x', 'limit', 'limit=99999999999999999999',
                   'marker=', 'marker=%00', 'name=%00', 'name=%FF%FE',
                   'name=' + parse.quote('(?P<x>a)'), 'name=' + parse.quote(
                       '[[:alpha:]]'), 'name=' + parse.quote('a{1,2}{3}'),
                   'name=\\', 'status=', 'status=%00', 'sort_key=',
                   'sort_dir=', 'sort_dir=asc', 'changes-since=',
                   'changes-since=2025-13-45T99:99:99Z', 'changes-since=%00',
                   'flavor=', 'image=', 'all_tenants=', 'deleted=yes',
                   'host=' + 'x' * 5000, '_private=1', 'limit=1&limit=x',
                   'sort_key=display_name&sort_key=display_name',
                   'sort_key=hostname&sort_key=node&sort_key=display_name']
        for token in (ALICE, ADMIN):
            for query in queries:
                for detail in (False, True):
                    path = '/v2.1/servers%s?%s' % (
                        '/detail' if detail else '', query)
                    response = self.request('GET', path, token=token)
                    self.assertLess(response.status_int, 500,
                                    '%s %s: %s' % (token, path,
                                                   response.text))


class StatementCounter:
    """Counts the SQL statements an engine runs while it is active."""

    def __init__(self, engine):
        self.engine = engine
        self.statements = []

    def _count(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def __enter__(self):
        sa.event.listen(self.engine, 'before_cursor_execute', self._count)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, 'before_cursor_execute', self._count)


class StatementCountTests(_ListTestBase):
    """A page costs the same number of statements for 5 and 50 servers."""

    def _fill(self, count):
        for i in range(count):
            server = self._server(vm_state=vm_states.ERROR
                                  if i % 2 else vm_states.ACTIVE)
            self.db.fault_create(server['uuid'], 500, 'f%d' % i, None)
            self.db.fault_create(server['uuid'], 400, 'g%d' % i, None)
            self.db.bdm_create({'instance_uuid': server['uuid'],
                                'source_type': 'volume',
                                'destination_type': 'volume',
                                'volume_id': 'vol-%d' % i,
                                'boot_index': None})

    def _statements(self, path, token=ALICE):
        """(statements, SELECTs among them, servers listed)."""
        with StatementCounter(self.db.engine) as counter:
            response = self.request('GET', path, token=token, version='2.3')
        self.assertEqual(200, response.status_int, response.text)
        selects = [s for s in counter.statements
                   if s.lstrip().upper().startswith('SELECT')]
        return (len(counter.statements), len(selects),
                len(response.json['servers']))

    def test_statements_do_not_grow_with_servers(self):
        paths = ['/v2.1/servers', '/v2.1/servers/detail',
                 '/v2.1/servers/detail?limit=3',
                 '/v2.1/servers/detail?status=ERROR&sort_key=display_name']
        self._fill(5)
        small = {p: self._statements(p) for p in paths}
        self._fill(45)
        large = {p: self._statements(p) for p in paths}
        for path in paths:
            self.assertEqual(small[path][:2], large[path][:2], path)
        self.assertEqual(5, small['/v2.1/servers/detail'][2])
        self.assertEqual(50, large['/v2.1/servers/detail'][2])
        # The instances, their newest faults and their volumes.
        self.assertEqual(3, large['/v2.1/servers/detail'][1])
        self.assertEqual(1, large['/v2.1/servers'][1])
        marker = self._list('limit=1')['servers'][0]['id']
        _, selects, listed = self._statements(
            '/v2.1/servers/detail?marker=%s' % marker)
        self.assertEqual(49, listed)
        # and the marker's row, twice: once to check the caller may see
        # it (see test_marker_of_another_project_is_not_found).
        self.assertEqual(5, selects)
