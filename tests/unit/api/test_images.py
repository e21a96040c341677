"""The compute images proxy (/images, /images/{id}/metadata) over the
in-memory Glance: Nova's view, filters, paging, versions and errors."""

import json
from unittest import mock

from nova_snapshot import exception
from tests.unit.api import base

SERVER = '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9'


class ImagesTestCase(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.glance = self.compute.image_api
        self.image = self.glance.add_image(
            name='snap', owner='project-a', status='active', size=2048,
            min_ram=64, min_disk=1, created_at='2024-01-02T03:04:05Z',
            updated_at='2024-01-02T03:05:06Z', instance_uuid=SERVER,
            image_type='snapshot', hw_disk_bus='virtio')

    def get(self, path, version='2.35', **kwargs):
        return self.request('GET', path, version=version, **kwargs)

    def set_max_limit(self, value):
        self.conf.set_override('max_limit', value, group='api')


class TestImageView(ImagesTestCase):

    def test_show_in_novas_shape(self):
        response = self.get('/v2.1/images/%s' % self.image['id'])
        self.assertEqual(200, response.status_int, response.text)
        image = response.json['image']
        self.assertEqual(self.image['id'], image['id'])
        self.assertEqual('snap', image['name'])
        self.assertEqual('ACTIVE', image['status'])
        self.assertEqual(100, image['progress'])
        self.assertEqual(64, image['minRam'])
        self.assertEqual(1, image['minDisk'])
        self.assertEqual(2048, image['OS-EXT-IMG-SIZE:size'])
        self.assertEqual('2024-01-02T03:04:05Z', image['created'])
        self.assertEqual('2024-01-02T03:05:06Z', image['updated'])
        # Only the custom properties: no owner, visibility, disk_format...
        self.assertEqual({'instance_uuid': SERVER, 'image_type': 'snapshot',
                          'hw_disk_bus': 'virtio'}, image['metadata'])
        self.assertEqual(
            [('self', 'http://localhost/v2.1/images/%s' % self.image['id']),
             ('bookmark', 'http://localhost/images/%s' % self.image['id']),
             ('alternate',
              'http://glance.test/images/%s' % self.image['id'])],
            [(link['rel'], link['href']) for link in image['links']])
        self.assertEqual('application/vnd.openstack.image',
                         image['links'][2]['type'])
        self.assertEqual(SERVER, image['server']['id'])
        self.assertEqual('http://localhost/v2.1/servers/%s' % SERVER,
                         image['server']['links'][0]['href'])
        self.assertNotIn('OS-DCF:diskConfig', image)

    def test_status_and_progress_mapping(self):
        expected = {'active': ('ACTIVE', 100), 'queued': ('SAVING', 25),
                    'saving': ('SAVING', 50), 'deleted': ('DELETED', 0),
                    'pending_delete': ('DELETED', 0), 'killed': ('ERROR', 0),
                    'uploading': ('UNKNOWN', 0), 'importing': ('UNKNOWN', 0),
                    'deactivated': ('UNKNOWN', 0)}
        for status, (shown, progress) in expected.items():
            with self.subTest(status=status):
                image = self.glance.add_image(status=status, size=None)
                body = self.get('/v2.1/images/%s' % image['id']).json['image']
                self.assertEqual(shown, body['status'])
                self.assertEqual(progress, body['progress'])
                self.assertEqual(0, body['OS-EXT-IMG-SIZE:size'])

    def test_no_server_for_a_plain_image(self):
        image = self.glance.add_image(name='base')
        body = self.get('/v2.1/images/%s' % image['id']).json['image']
        self.assertNotIn('server', body)
        self.assertEqual({}, body['metadata'])
        self.assertIsNone(body['created'])

    def test_disk_config_from_auto_disk_config(self):
        for value, shown in (('True', 'AUTO'), ('false', 'MANUAL'),
                             ('disabled', 'MANUAL')):
            image = self.glance.add_image(auto_disk_config=value)
            body = self.get('/v2.1/images/%s' % image['id']).json['image']
            self.assertEqual(shown, body['OS-DCF:diskConfig'])

    def test_block_device_mapping_is_decoded(self):
        bdm = [{'source_type': 'snapshot', 'boot_index': 0}]
        image = self.glance.add_image(block_device_mapping=json.dumps(bdm),
                                      bdm_v2='True')
        body = self.get('/v2.1/images/%s' % image['id']).json['image']
        self.assertEqual(bdm, body['metadata']['block_device_mapping'])
        self.assertEqual('True', body['metadata']['bdm_v2'])

    def test_unknown_image_is_404(self):
        response = self.get('/v2.1/images/%s' % SERVER)
        self.assertEqual(404, response.status_int)
        self.assertEqual('Image not found.',
                         response.json['itemNotFound']['message'])

    def test_gone_from_236(self):
        for path in ('/v2.1/images', '/v2.1/images/detail',
                     '/v2.1/images/%s' % self.image['id']):
            for version in ('2.36', '2.45'):
                with self.subTest(path=path, version=version):
                    response = self.get(path, version=version)
                    self.assertEqual(404, response.status_int)
                    self.assertEqual(404,
                                     response.json['itemNotFound']['code'])
        response = self.request('DELETE', '/v2.1/images/%s' %
                                self.image['id'], version='2.36')
        self.assertEqual(404, response.status_int)
        self.assertIn(self.image['id'], self.glance.images)
        # Without a version header a client gets 2.1: served.
        response = self.request('GET', '/v2.1/images')
        self.assertEqual(200, response.status_int)

    def test_project_id_url_form(self):
        response = self.get('/v2.1/project-a/images/%s' % self.image['id'])
        self.assertEqual(200, response.status_int, response.text)


class TestImageList(ImagesTestCase):

    def test_index_and_detail(self):
        other = self.glance.add_image(name='base')
        index = self.get('/v2.1/images').json
        self.assertEqual([(self.image['id'], 'snap'), (other['id'], 'base')],
                         [(i['id'], i['name']) for i in index['images']])
        self.assertEqual(['id', 'links', 'name'],
                         sorted(index['images'][0]))
        self.assertNotIn('images_links', index)
        detail = self.get('/v2.1/images/detail').json
        self.assertEqual('ACTIVE', detail['images'][0]['status'])
        self.assertEqual(SERVER, detail['images'][0]['server']['id'])
        self.assertEqual({'filters': {}, 'limit': None, 'marker': None,
                          'page_size': None}, self.glance.list_calls[-1])

    def test_filters_go_to_glance_under_glance_names(self):
        self.get('/v2.1/images/detail?name=snap&status=ACTIVE'
                 '&server=http://nova/v2.1/servers/%s&type=snapshot'
                 '&minRam=64&minDisk=1&changes-since=2024-01-01T00:00:00Z'
                 '&property-hw_disk_bus=virtio&flavor=ignored' % SERVER)
        self.assertEqual({'name': 'snap', 'status': 'active',
                          'instance_uuid': SERVER, 'image_type': 'snapshot',
                          'min_ram': '64', 'min_disk': '1',
                          'updated_at': 'gte:2024-01-01T00:00:00Z',
                          'hw_disk_bus': 'virtio'},
                         self.glance.list_calls[-1]['filters'])

    def test_filters_select(self):
        self.glance.add_image(name='base', instance_uuid='other')
        body = self.get('/v2.1/images?server=%s' % SERVER).json
        self.assertEqual([self.image['id']], [i['id'] for i in body['images']])
        body = self.get('/v2.1/images?type=backup').json
        self.assertEqual([], body['images'])

    def test_limit_marker_and_next_link(self):
        more = [self.glance.add_image(name='i%d' % n) for n in range(3)]
        body = self.get('/v2.1/images?limit=2&name=x').json
        self.assertEqual(2, self.glance.list_calls[-1]['limit'])
        self.assertEqual({'filters': {'name': 'x'}, 'limit': 2,
                          'marker': None, 'page_size': None},
                         self.glance.list_calls[-1])
        self.glance.list_calls.clear()
        body = self.get('/v2.1/images?limit=2').json
        self.assertEqual([self.image['id'], more[0]['id']],
                         [i['id'] for i in body['images']])
        self.assertEqual(
            [{'rel': 'next', 'href': 'http://localhost/v2.1/images?limit=2'
                                     '&marker=%s' % more[0]['id']}],
            body['images_links'])
        body = self.get('/v2.1/images/detail?limit=2&marker=%s'
                        % more[0]['id']).json
        self.assertEqual([more[1]['id'], more[2]['id']],
                         [i['id'] for i in body['images']])
        self.assertEqual('http://localhost/v2.1/images/detail?limit=2'
                         '&marker=%s' % more[2]['id'],
                         body['images_links'][0]['href'])
        body = self.get('/v2.1/images?limit=2&marker=%s'
                        % more[2]['id']).json
        self.assertEqual({'images': []}, body)

    def test_max_limit_caps_the_page_link(self):
        self.set_max_limit(2)
        self.glance.add_image(name='second')
        body = self.get('/v2.1/images').json
        self.assertIn('images_links', body)
        body = self.get('/v2.1/images?limit=5').json
        self.assertIn('images_links', body)
        self.glance.add_image(name='third')
        # Nova asks Glance for the given limit and links only a page of
        # exactly max_limit items.
        body = self.get('/v2.1/images?limit=5').json
        self.assertEqual(3, len(body['images']))
        self.assertNotIn('images_links', body)

    def test_page_params(self):
        self.get('/v2.1/images?page_size=7&offset=3&limit=0&marker=')
        self.assertEqual({'filters': {}, 'limit': None, 'marker': None,
                          'page_size': 7}, self.glance.list_calls[-1])
        for query in ('limit=-1', 'limit=abc', 'limit=', 'page_size=1.5',
                      'offset=-2'):
            with self.subTest(query=query):
                response = self.get('/v2.1/images?%s' % query)
                self.assertEqual(400, response.status_int)
                self.assertIn('Invalid input for query parameters',
                              response.json['badRequest']['message'])

    def test_unknown_marker_is_400(self):
        response = self.get('/v2.1/images?marker=%s' % SERVER)
        self.assertEqual(400, response.status_int)

    def test_glance_down_is_503_without_details(self):
        # Unreachable or silent past [glance] timeout: serviceUnavailable
        # (faults.unavailable_response), the reason stays in the log.
        with mock.patch.object(
                self.glance, 'get_all', side_effect=exception.
                GlanceConnectionFailed(reason='refused')):
            response = self.get('/v2.1/images/detail')
        self.assertEqual(503, response.status_int)
        self.assertNotIn('refused', response.text)


class TestImageDelete(ImagesTestCase):

    def test_delete(self):
        response = self.request('DELETE', '/v2.1/images/%s' %
                                self.image['id'], version='2.35')
        self.assertEqual(204, response.status_int, response.text)
        self.assertEqual(b'', response.body)
        self.assertEqual([self.image['id']], self.glance.deleted)
        response = self.request('DELETE', '/v2.1/images/%s' %
                                self.image['id'], version='2.35')
        self.assertEqual(404, response.status_int)
        self.assertEqual('Image not found.',
                         response.json['itemNotFound']['message'])

    def test_glance_refuses(self):
        with mock.patch.object(
                self.glance, 'delete', side_effect=exception.
                ImageNotAuthorized(image_id=self.image['id'])):
            response = self.request('DELETE', '/v2.1/images/%s' %
                                    self.image['id'])
        self.assertEqual(403, response.status_int)
        self.assertEqual('You are not allowed to delete the image.',
                         response.json['forbidden']['message'])

    def test_reader_cannot_delete(self):
        response = self.request('DELETE', '/v2.1/images/%s' %
                                self.image['id'], roles='reader')
        self.assertEqual(403, response.status_int)
        self.assertEqual([], self.glance.deleted)


class TestImageMetadata(ImagesTestCase):

    def url(self, key=None, image_id=None):
        url = '/v2.1/images/%s/metadata' % (image_id or self.image['id'])
        return url if key is None else '%s/%s' % (url, key)

    def props(self):
        image = self.glance.images[self.image['id']]
        return {k: v for k, v in image.items()
                if k in ('instance_uuid', 'image_type', 'hw_disk_bus', 'a',
                         'b', 'c') or k.startswith('k')}

    def test_index_and_show(self):
        body = self.get(self.url()).json
        self.assertEqual({'metadata': {'instance_uuid': SERVER,
                                       'image_type': 'snapshot',
                                       'hw_disk_bus': 'virtio'}}, body)
        body = self.get(self.url('image_type')).json
        self.assertEqual({'meta': {'image_type': 'snapshot'}}, body)
        response = self.get(self.url('nope'))
        self.assertEqual(404, response.status_int)
        # A Glance attribute is not metadata.
        self.assertEqual(404, self.get(self.url('owner')).status_int)

    def test_create_merges(self):
        response = self.request('POST', self.url(), {'metadata': {
            'a': '1', 'image_type': 'test'}}, version='2.38')
        self.assertEqual(200, response.status_int, response.text)
        expected = {'instance_uuid': SERVER, 'image_type': 'test',
                    'hw_disk_bus': 'virtio', 'a': '1'}
        self.assertEqual({'metadata': expected}, response.json)
        self.assertEqual(expected, self.props())

    def test_update_all_replaces(self):
        response = self.request('PUT', self.url(),
                                {'metadata': {'a': '1', 'b': '2'}})
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual({'metadata': {'a': '1', 'b': '2'}}, response.json)
        self.assertEqual({'a': '1', 'b': '2'}, self.props())
        # Glance attributes stay.
        self.assertEqual('snap', self.glance.images[self.image['id']]['name'])

    def test_update_item(self):
        response = self.request('PUT', self.url('c'), {'meta': {'c': '3'}})
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual({'meta': {'c': '3'}}, response.json)
        self.assertEqual('3', self.props()['c'])
        response = self.request('PUT', self.url('c'), {'meta': {'d': '3'}})
        self.assertEqual(400, response.status_int)
        self.assertEqual('Request body and URI mismatch',
                         response.json['badRequest']['message'])
        for body in ({'meta': {}}, {'meta': {'c': '1', 'e': '2'}},
                     {'meta': {'c': 3}}, {'metadata': {'c': '3'}}):
            with self.subTest(body=body):
                response = self.request('PUT', self.url('c'), body)
                self.assertEqual(400, response.status_int)

    def test_access_attributes_are_not_metadata(self):
        # Who owns and who sees the image is not changed through metadata
        # (Nova would pass these to Glance: a member could make its image
        # community or hide it through the compute API).
        image = dict(self.glance.images[self.image['id']])
        for key, value in (('visibility', 'community'), ('owner', 'other'),
                           ('os_hidden', 'true'), ('protected', 'true')):
            for method, url, body in (
                    ('POST', self.url(), {'metadata': {key: value}}),
                    ('PUT', self.url(), {'metadata': {key: value}}),
                    ('PUT', self.url(key), {'meta': {key: value}})):
                with self.subTest(key=key, method=method, url=url):
                    response = self.request(method, url, body)
                    self.assertEqual(400, response.status_int)
                    self.assertIn('%s is an attribute of the image' % key,
                                  response.json['badRequest']['message'])
        self.assertEqual(image, self.glance.images[self.image['id']])

    def test_delete_item(self):
        response = self.request('DELETE', self.url('image_type'))
        self.assertEqual(204, response.status_int, response.text)
        self.assertNotIn('image_type', self.props())
        response = self.request('DELETE', self.url('image_type'))
        self.assertEqual(404, response.status_int)
        self.assertEqual('Invalid metadata key',
                         response.json['itemNotFound']['message'])

    def test_bad_bodies(self):
        for body in ({'metadata': {'': 'x'}}, {'metadata': {'a' * 256: 'x'}},
                     {'metadata': {'a': 'x' * 256}}, {'metadata': {'a': 1}},
                     {'metadata': {'a': None}}, {'metadata': []}, {},
                     {'metadata': {}, 'x': 1}):
            for method in ('POST', 'PUT'):
                with self.subTest(body=body, method=method):
                    response = self.request(method, self.url(), body)
                    self.assertEqual(400, response.status_int)
        response = self.request('POST', self.url(), raw=b'{not json')
        self.assertEqual(400, response.status_int)

    def test_limit_of_128_items(self):
        items = {'k%d' % n: 'v' for n in range(125)}
        response = self.request('POST', self.url(), {'metadata': items})
        self.assertEqual(200, response.status_int)  # 3 + 125 = 128
        response = self.request('POST', self.url(), {'metadata': {'x': 'y'}})
        self.assertEqual(403, response.status_int)
        self.assertEqual('Image metadata limit exceeded',
                         response.json['forbidden']['message'])
        response = self.request('PUT', self.url('x'), {'meta': {'x': 'y'}})
        self.assertEqual(403, response.status_int)
        # Changing an existing item does not add one.
        response = self.request('PUT', self.url('k1'), {'meta': {'k1': 'z'}})
        self.assertEqual(200, response.status_int)
        items = {'k%d' % n: 'v' for n in range(129)}
        response = self.request('PUT', self.url(), {'metadata': items})
        self.assertEqual(403, response.status_int)
        self.assertNotIn('x', self.props())

    def test_glance_quota_is_403(self):
        with mock.patch.object(self.glance, 'update',
                               side_effect=exception.OverQuota(
                                   overs='image properties')):
            response = self.request('POST', self.url(),
                                    {'metadata': {'a': 'b'}})
        self.assertEqual(403, response.status_int)

    def test_unknown_image_is_404_everywhere(self):
        calls = [('GET', self.url(image_id=SERVER), None),
                 ('GET', self.url('a', image_id=SERVER), None),
                 ('POST', self.url(image_id=SERVER), {'metadata': {}}),
                 ('PUT', self.url(image_id=SERVER), {'metadata': {}}),
                 ('PUT', self.url('a', image_id=SERVER), {'meta': {'a': 'b'}}),
                 ('DELETE', self.url('a', image_id=SERVER), None)]
        for method, url, body in calls:
            with self.subTest(method=method, url=url):
                response = self.request(method, url, body)
                self.assertEqual(404, response.status_int)
                self.assertEqual('Image not found.',
                                 response.json['itemNotFound']['message'])

    def test_served_until_238(self):
        self.assertEqual(200, self.get(self.url(), version='2.38').status_int)
        for version in ('2.39', '2.45'):
            response = self.get(self.url(), version=version)
            self.assertEqual(404, response.status_int)
            response = self.request('PUT', self.url('a'),
                                    {'meta': {'a': 'b'}}, version=version)
            self.assertEqual(404, response.status_int)
        self.assertNotIn('a', self.props())

    def test_reader_reads_but_cannot_write(self):
        self.assertEqual(200, self.get(self.url(), roles='reader').status_int)
        response = self.request('POST', self.url(), {'metadata': {'a': 'b'}},
                                roles='reader')
        self.assertEqual(403, response.status_int)
        self.assertNotIn('a', self.props())
