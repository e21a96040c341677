"""GlanceAPI's part of the compute images proxy: get_all and the split
between Glance attributes and custom properties (glanceclient faked)."""

import unittest
from unittest import mock

from glanceclient import exc as glance_exc

from nova_snapshot import exception
from nova_snapshot.image import glance
from tests.unit.image import test_glance


class GetAllTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.client = mock.Mock()
        patcher = mock.patch.object(glance.glanceclient, 'Client',
                                    return_value=self.client)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.api = glance.GlanceAPI(test_glance.make_conf())
        self.ctx = test_glance.make_context()

    def test_only_given_page_params_go_to_glance(self):
        self.client.images.list.return_value = iter([
            test_glance.FakeImage(id='i1', self='/v2/images/i1', x='1')])
        images = self.api.get_all(self.ctx, filters={'name': 'n'})
        self.assertEqual([{'id': 'i1', 'x': '1'}], images)
        self.client.images.list.assert_called_once_with(
            filters={'name': 'n'})

    def test_limit_marker_page_size(self):
        self.client.images.list.return_value = iter([])
        self.assertEqual([], self.api.get_all(
            self.ctx, limit=5, marker='m', page_size=2))
        self.client.images.list.assert_called_once_with(
            filters={}, limit=5, marker='m', page_size=2)

    def test_bad_marker_is_bad_request(self):
        self.client.images.list.side_effect = glance_exc.HTTPBadRequest(
            'marker not found')
        self.assertRaises(exception.ImageBadRequest, self.api.get_all,
                          self.ctx, marker='nope')


class CustomPropertiesTest(unittest.TestCase):

    def test_glance_attributes_are_not_properties(self):
        image = {'id': 'i', 'name': 'n', 'status': 'active', 'size': 1,
                 'owner': 'p', 'visibility': 'private', 'min_ram': 0,
                 'min_disk': 0, 'disk_format': 'raw', 'checksum': 'c',
                 'container_format': 'bare', 'created_at': 't',
                 'updated_at': 't', 'os_hash_algo': 'sha512',
                 'os_hash_value': 'v', 'os_hidden': False, 'protected': False,
                 'tags': [], 'virtual_size': None, 'stores': 'ceph',
                 'instance_uuid': 'u', 'image_type': 'snapshot'}
        self.assertEqual({'instance_uuid': 'u', 'image_type': 'snapshot'},
                         glance.custom_properties(image))
