"""/os-keypairs through the whole API stack (FakeComputeAPI's real SQLite
database): codes and bodies per microversion, validation, per-user scope
and policy, paging; key_name on server create, show and rebuild."""

from nova_snapshot.compute import keypairs as keypair_api
from tests.unit.api import base
from tests.unit.compute import test_keypairs as data

URL = '/v2.1/os-keypairs'
IMAGE = '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'
ALICE = 'alice:project-a'
BOB = 'bob:project-a'          # same project, another user
ADMIN = 'root:admin-project'
READER = ['member', 'reader']


class KeypairAPITestCase(base.APITestCase):

    def post(self, keypair, version='2.1', token=ALICE, roles=('member',)):
        return self.request('POST', URL, {'keypair': keypair}, token=token,
                            version=version, roles=list(roles))

    def get(self, path='', version='2.1', token=ALICE, roles=('member',)):
        return self.request('GET', URL + path, token=token, version=version,
                            roles=list(roles))

    def delete(self, path, version='2.1', token=ALICE, roles=('member',)):
        return self.request('DELETE', URL + path, token=token,
                            version=version, roles=list(roles))

    def add(self, user, name, key=data.RSA_KEY):
        return keypair_api.KeypairAPI(self.compute.db).import_key_pair(
            user, name, key)

    def assertFault(self, code, response, message=None):
        self.assertEqual(code, response.status_int, response.text)
        fault = next(iter(response.json.values()))
        self.assertEqual(code, fault['code'])
        if message is not None:
            self.assertIn(message, fault['message'])


class TestCreate(KeypairAPITestCase):

    def test_generate_at_2_1(self):
        response = self.post({'name': 'gen'})
        self.assertEqual(200, response.status_int)
        body = response.json['keypair']
        self.assertEqual({'name', 'public_key', 'fingerprint', 'user_id',
                          'private_key'}, set(body))
        self.assertEqual('alice', body['user_id'])
        self.assertIn('PRIVATE KEY', body['private_key'])

    def test_import_per_version(self):
        for version, status, with_type in (('2.1', 200, False),
                                           ('2.2', 201, True),
                                           ('2.10', 201, True),
                                           ('2.92', 201, True),
                                           ('2.104', 201, True)):
            with self.subTest(version=version):
                name = 'k-' + version.replace('.', '-')
                response = self.post({'name': name,
                                      'public_key': data.RSA_KEY}, version)
                self.assertEqual(status, response.status_int, response.text)
                body = response.json['keypair']
                self.assertEqual(data.RSA_FINGERPRINT, body['fingerprint'])
                self.assertNotIn('private_key', body)
                self.assertEqual(with_type, 'type' in body)

    def test_type_from_2_2(self):
        response = self.post({'name': 'c', 'type': 'x509',
                              'public_key': data.CERT}, '2.1')
        self.assertFault(400, response, 'type')
        response = self.post({'name': 'c', 'type': 'x509',
                              'public_key': data.CERT}, '2.2')
        self.assertEqual(('x509', data.CERT_FINGERPRINT),
                         (response.json['keypair']['type'],
                          response.json['keypair']['fingerprint']))
        response = self.post({'name': 'w', 'type': 'x509'}, '2.2')
        self.assertEqual(201, response.status_int)
        self.assertIn('BEGIN CERTIFICATE',
                      response.json['keypair']['public_key'])
        self.assertFault(400, self.post({'name': 'x', 'type': 'rsa'},
                                        '2.2'))

    def test_no_generation_from_2_92(self):
        self.assertEqual(201, self.post({'name': 'g'}, '2.91').status_int)
        self.assertFault(400, self.post({'name': 'g2'}, '2.92'),
                         'public_key')

    def test_names(self):
        good = ('a', 'key_1- x', 'A' * 255)
        bad = ('', ' lead', 'trail ', 'A' * 256, r'key_/.\@:', 'k/x',
               'k.pub', 'me@host', 'k\u00e9', 'k\x00', 'k\t')
        for name in good:
            with self.subTest(name=name):
                self.assertEqual(201, self.post(
                    {'name': name, 'public_key': data.RSA_KEY},
                    '2.2').status_int)
        for name in bad:
            with self.subTest(name=name):
                self.assertFault(400, self.post(
                    {'name': name, 'public_key': data.RSA_KEY}, '2.2'))
        # 2.92 allows "@" and ".".
        for name in ('k.pub', 'me@host'):
            with self.subTest(name=name):
                self.assertEqual(201, self.post(
                    {'name': name, 'public_key': data.RSA_KEY},
                    '2.92').status_int)
        self.assertFault(400, self.post(
            {'name': 'k/x', 'public_key': data.RSA_KEY}, '2.92'))

    def test_bad_bodies(self):
        for body in ({}, {'keypair': None}, {'keypair': {}},
                     {'keypair': {'name': 5}},
                     {'keypair': {'name': 'k', 'public_key': 5}},
                     {'keypair': {'name': 'k', 'extra': 1}},
                     {'keypair': {'name': 'k'}, 'x': 1}):
            with self.subTest(body=body):
                response = self.request('POST', URL, body, token=ALICE,
                                        version='2.2', roles=['member'])
                self.assertFault(400, response)

    def test_malformed_public_keys_are_400(self):
        for key in data.BAD_SSH_KEYS:
            with self.subTest(key=key[:30]):
                # A lone surrogate or a NUL is refused with the body.
                self.assertFault(400, self.post(
                    {'name': 'bad', 'public_key': key}, '2.2'),
                    'Keypair data is invalid' if key.isprintable()
                    or key in ('', ' ') else None)
        self.assertFault(400, self.post(
            {'name': 'bad', 'type': 'x509', 'public_key': data.RSA_KEY},
            '2.2'), 'Keypair data is invalid')
        self.assertEqual([], self.get(version='2.2').json['keypairs'])

    def test_duplicate_is_409(self):
        self.post({'name': 'dup', 'public_key': data.RSA_KEY})
        self.assertFault(409, self.post({'name': 'dup'}),
                         "Key pair 'dup' already exists.")
        # Another user may use the name.
        self.assertEqual(200, self.post({'name': 'dup'},
                                        token=BOB).status_int)

    def test_user_id_from_2_10_admin_only(self):
        body = {'name': 'k', 'public_key': data.RSA_KEY, 'user_id': 'bob'}
        self.assertFault(400, self.post(body, '2.9', token=ADMIN,
                                        roles=['admin']))
        self.assertFault(403, self.post(body, '2.10'))
        response = self.post(body, '2.10', token=ADMIN, roles=['admin'])
        self.assertEqual('bob', response.json['keypair']['user_id'])
        self.assertEqual(['k'], [k['keypair']['name'] for k in self.get(
            version='2.10', token=BOB).json['keypairs']])
        # A user naming themselves is the owner: allowed, even roleless.
        body['user_id'] = 'alice'
        self.assertEqual(201, self.post(body, '2.10', roles=[]).status_int)

    def test_quota(self):
        api = keypair_api.KeypairAPI(self.compute.db)
        for i in range(keypair_api.KEY_PAIRS_PER_USER):
            api.db.keypair_create({'user_id': 'alice', 'name': 'k%d' % i,
                                   'public_key': data.RSA_KEY})
        self.assertFault(403, self.post({'name': 'one-more'}),
                         'Quota exceeded, too many key pairs.')


class TestReadAndDelete(KeypairAPITestCase):

    def setUp(self):
        super().setUp()
        self.created = self.add('alice', 'mine')
        self.add('bob', 'his', data.ED25519_KEY)

    def test_list_per_version(self):
        item = self.get().json['keypairs'][0]['keypair']
        self.assertEqual({'name': 'mine', 'public_key': data.RSA_KEY,
                          'fingerprint': data.RSA_FINGERPRINT}, item)
        item = self.get(version='2.2').json['keypairs'][0]['keypair']
        self.assertEqual('ssh', item['type'])
        body = self.get(version='2.35').json
        self.assertEqual(['mine'], [k['keypair']['name']
                                    for k in body['keypairs']])
        self.assertNotIn('keypairs_links', body)

    def test_show_per_version(self):
        shown = self.get('/mine').json['keypair']
        self.assertEqual({'name', 'public_key', 'fingerprint', 'user_id',
                          'id', 'created_at', 'updated_at', 'deleted',
                          'deleted_at'}, set(shown))
        self.assertEqual(('alice', False, None, None, self.created['id']),
                         (shown['user_id'], shown['deleted'],
                          shown['deleted_at'], shown['updated_at'],
                          shown['id']))
        self.assertRegex(shown['created_at'],
                         r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$')
        self.assertEqual('ssh',
                         self.get('/mine', '2.2').json['keypair']['type'])

    def test_names_with_spaces_in_the_url(self):
        self.add('alice', 'my key')
        self.assertEqual('my key',
                         self.get('/my%20key').json['keypair']['name'])
        self.assertEqual(202, self.delete('/my%20key').status_int)

    def test_another_users_keypair_is_not_found(self):
        for version in ('2.1', '2.2', '2.10', '2.104'):
            with self.subTest(version=version):
                self.assertFault(404, self.get('/his', version),
                                 'Keypair his not found for user alice')
                self.assertFault(404, self.delete('/his', version))
        self.assertEqual(['mine'], [k['keypair']['name'] for k in
                                    self.get().json['keypairs']])
        # Naming the other user is a 403 by the owner rule.
        for method in ('GET', 'DELETE'):
            with self.subTest(method=method):
                response = self.request(
                    method, URL + '/his?user_id=bob', token=ALICE,
                    version='2.10', roles=['member'])
                self.assertFault(403, response)
        self.assertFault(403, self.get('?user_id=bob', '2.10'))
        self.assertEqual('his', self.get('/his', token=BOB).json[
            'keypair']['name'])

    def test_the_same_user_in_another_project_sees_them(self):
        shown = self.get('/mine', token='alice:project-b')
        self.assertEqual('mine', shown.json['keypair']['name'])

    def test_admin_with_user_id(self):
        admin = {'token': ADMIN, 'roles': ['admin']}
        # user_id is ignored before 2.10.
        self.assertFault(404, self.get('/his?user_id=bob', '2.9', **admin))
        self.assertEqual('bob', self.get('/his?user_id=bob', '2.10',
                                         **admin).json['keypair']['user_id'])
        self.assertEqual(['his'], [k['keypair']['name'] for k in self.get(
            '?user_id=bob', '2.10', **admin).json['keypairs']])
        self.assertEqual(204, self.delete('/his?user_id=bob', '2.10',
                                          **admin).status_int)
        self.assertFault(404, self.get('/his', token=BOB))

    def test_delete_codes(self):
        self.add('alice', 'two')
        self.assertEqual(202, self.delete('/mine').status_int)
        self.assertEqual(204, self.delete('/two', '2.2').status_int)
        self.assertFault(404, self.delete('/mine'))
        self.assertEqual([], self.get().json['keypairs'])

    def test_paging_from_2_35(self):
        for name in ('b', 'c', 'd'):
            self.add('alice', name)
        names = [k['keypair']['name'] for k in self.get(
            '?limit=2', '2.35').json['keypairs']]
        self.assertEqual(['b', 'c'], names)
        body = self.get('?limit=2&marker=c', '2.35').json
        self.assertEqual(['d', 'mine'], [k['keypair']['name']
                                         for k in body['keypairs']])
        self.assertEqual('next', body['keypairs_links'][0]['rel'])
        self.assertIn('marker=mine', body['keypairs_links'][0]['href'])
        self.assertIn('/v2.1/os-keypairs?',
                      body['keypairs_links'][0]['href'])
        # Before 2.35 limit and marker are ignored.
        self.assertEqual(4, len(self.get('?limit=1', '2.34').json[
            'keypairs']))
        self.assertNotIn('keypairs_links', self.get('?limit=1', '2.34').json)
        self.assertFault(400, self.get('?marker=his', '2.35'),
                         'Marker his could not be found.')
        for query in ('?limit=-1', '?limit=x', '?limit='):
            with self.subTest(query=query):
                self.assertFault(400, self.get(query, '2.35'))
        self.conf.set_override('max_limit', 2, group='api')
        body = self.get('', '2.35').json
        self.assertEqual(2, len(body['keypairs']))
        self.assertIn('marker=c', body['keypairs_links'][0]['href'])

    def test_bytes_no_database_takes(self):
        # Found by the body fuzz: a 400 or 404, never a 500.
        self.assertFault(400, self.get('?user_id=%FF', '2.10'), 'UTF-8')
        self.assertFault(400, self.get('/mine?user_id=a%00b', '2.10'),
                         'NUL')
        self.assertFault(404, self.get('/mi%00ne'))
        self.assertFault(404, self.delete('/mi%00ne', '2.2'))

    def test_unknown_query_parameters_from_2_75(self):
        for path in ('', '/mine'):
            with self.subTest(path=path):
                self.assertEqual(200, self.get(path + '?foo=1',
                                               '2.74').status_int)
                self.assertFault(400, self.get(path + '?foo=1', '2.75'),
                                 'foo')
        self.assertFault(400, self.delete('/mine?foo=1', '2.75'))
        self.assertEqual(204, self.delete('/mine?foo=1', '2.74').status_int)


class TestServerKeyName(KeypairAPITestCase):

    def setUp(self):
        super().setUp()
        self.add('alice', 'mine')
        self.add('bob', 'his')

    def create(self, key_name, version='2.1', token=ALICE):
        server = {'name': 'vm', 'imageRef': IMAGE, 'flavorRef': '1',
                  'key_name': key_name}
        if version != '2.1':
            server['networks'] = 'none'
        return self.request('POST', '/v2.1/servers', {'server': server},
                            token=token, version=version, roles=['member'])

    def test_create_show_and_list(self):
        response = self.create('mine')
        self.assertEqual(202, response.status_int, response.text)
        server_id = response.json['server']['id']
        for version in ('2.1', '2.104'):
            with self.subTest(version=version):
                shown = self.request('GET', '/v2.1/servers/' + server_id,
                                     token=ALICE, version=version,
                                     roles=READER).json['server']
                self.assertEqual('mine', shown['key_name'])
                listed = self.request('GET', '/v2.1/servers/detail',
                                      token=ALICE, version=version,
                                      roles=READER).json['servers']
                self.assertEqual(['mine'], [s['key_name'] for s in listed])

    def test_unknown_or_another_users_key_is_400(self):
        for name in ('nope', 'his'):
            with self.subTest(key_name=name):
                self.assertFault(400, self.create(name, '2.37'),
                                 'Invalid key_name provided.')
        self.assertFault(400, self.create(None))
        self.assertFault(400, self.create(''))
        self.assertFault(400, self.create('x' * 256))
        self.assertEqual({}, self.compute.instances)

    def test_rebuild_key_name_from_2_54(self):
        instance = self.compute.add_instance('project-a', user_id='alice')
        url = '/v2.1/servers/%s/action' % instance['uuid']

        def rebuild(version, **extra):
            body = {'rebuild': dict(imageRef=IMAGE, **extra)}
            return self.request('POST', url, body, token=ALICE,
                                version=version, roles=['member'])

        def last_kwargs():
            return [c for c in self.compute.calls
                    if c[0] == 'rebuild_args'][-1][3]
        self.assertFault(400, rebuild('2.53', key_name='mine'))
        self.assertFault(400, rebuild('2.54', key_name='his'),
                         'Invalid key_name provided.')
        self.assertEqual(202, rebuild('2.54', key_name='mine').status_int)
        self.assertEqual('mine', last_kwargs()['key_name'])
        self.compute.instances[instance['uuid']]['task_state'] = None
        self.assertEqual(202, rebuild('2.54', key_name=None).status_int)
        self.assertIsNone(last_kwargs()['key_name'])
        self.compute.instances[instance['uuid']]['task_state'] = None
        self.assertEqual(202, rebuild('2.54').status_int)
        self.assertNotIn('key_name', last_kwargs())
