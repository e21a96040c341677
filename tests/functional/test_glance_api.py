"""GlanceAPI against the real Glance that tools/stack/start.sh runs."""

import hashlib
import json
import os
import socket
import tempfile
import uuid

from nova_snapshot import conf as nova_conf
from nova_snapshot import context as nova_context
from nova_snapshot import exception
from nova_snapshot.image import glance
from tests.functional import base
from tests.functional import glance_proxy

MIB = 1024 * 1024


def make_context(project=None, roles=('member', 'reader'), user=None):
    return nova_context.RequestContext(
        user_id=user or 'user-' + uuid.uuid4().hex[:8],
        project_id=project or uuid.uuid4().hex,
        roles=list(roles))


def unused_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class GlanceAPITestCase(base.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        base.check_glance(cls.stack['GLANCE_URL'])

    def setUp(self):
        super().setUp()
        self.conf = nova_conf.new_conf([])
        self.conf.set_override('api_endpoint', self.stack['GLANCE_URL'],
                               group='glance')
        self.conf.set_override('auth_mode', 'identity_headers',
                               group='glance')
        self.api = glance.GlanceAPI(self.conf)
        self.ctx = make_context()

    def _create(self, ctx=None, **meta):
        ctx = ctx or self.ctx
        meta.setdefault('name', 'test-' + uuid.uuid4().hex[:8])
        meta.setdefault('disk_format', 'raw')
        meta.setdefault('container_format', 'bare')
        image = self.api.create(ctx, meta)
        self.addCleanup(self._delete_quietly, ctx, image['id'])
        return image

    def _delete_quietly(self, ctx, image_id):
        try:
            self.api.delete(ctx, image_id)
        except exception.ImageNotFound:
            pass

    def _tempfile(self, data):
        fd, path = tempfile.mkstemp(prefix='glance-test-')
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        return path

    # -- metadata -------------------------------------------------------------

    def test_requests_glance_sees(self):
        # Through a counting proxy: the image schema is read once for all
        # callers, and an update is one read and one PATCH (glanceclient
        # alone reads the schema per client and the image again after).
        proxy = glance_proxy.GlanceProxy(self.stack['GLANCE_URL']).start()
        self.addCleanup(proxy.stop)
        self.conf.set_override('api_endpoint', proxy.url, group='glance')
        api = glance.GlanceAPI(self.conf)
        for _ in range(3):
            ctx = make_context()
            image = api.create(ctx, {'name': 'count', 'disk_format': 'raw',
                                     'container_format': 'bare'})
            self.addCleanup(self._delete_quietly, ctx, image['id'])
            updated = api.update(ctx, image['id'], {'image_type': 'snapshot'})
            self.assertEqual('snapshot', updated['image_type'])
            self.assertEqual('snapshot',
                             self.api.get(ctx, image['id'])['image_type'])
        calls = [(method, path.split('?')[0]) for method, path in
                 proxy.requests]
        self.assertEqual(1, calls.count(('GET', '/v2/schemas/image')),
                         calls)
        per_image = [c for c in calls if c[1] != '/v2/schemas/image']
        self.assertEqual(['POST', 'GET', 'PATCH'] * 3,
                         [method for method, _path in per_image], calls)

    def test_create_get_update_delete(self):
        image = self._create(name='snap-1', instance_uuid='abc',
                             image_type='snapshot', min_disk=1)
        self.assertEqual('queued', image['status'])
        self.assertEqual(self.ctx.project_id, image['owner'])
        # Custom properties are top-level keys of a plain dict.
        self.assertIs(dict, type(image))
        self.assertEqual('abc', image['instance_uuid'])
        self.assertNotIn('self', image)

        got = self.api.get(self.ctx, image['id'])
        self.assertEqual('snap-1', got['name'])
        self.assertEqual('snapshot', got['image_type'])
        self.assertEqual(1, got['min_disk'])

        updated = self.api.update(self.ctx, image['id'],
                                  {'extra': 'x', 'min_ram': 64},
                                  remove_props=('image_type',))
        self.assertEqual('x', updated['extra'])
        self.assertEqual(64, updated['min_ram'])
        self.assertNotIn('image_type', updated)
        self.assertEqual('abc', updated['instance_uuid'])
        # A None value removes the property too.
        updated = self.api.update(self.ctx, image['id'], {'extra': None})
        self.assertNotIn('extra', updated)

        self.api.delete(self.ctx, image['id'])
        self.assertRaises(exception.ImageNotFound,
                          self.api.get, self.ctx, image['id'])
        self.assertRaises(exception.ImageNotFound,
                          self.api.delete, self.ctx, image['id'])

    def test_unknown_image_is_not_found(self):
        missing = str(uuid.uuid4())
        for call in (lambda: self.api.get(self.ctx, missing),
                     lambda: self.api.update(self.ctx, missing, {'a': 'b'}),
                     lambda: self.api.delete(self.ctx, missing)):
            with self.assertRaises(exception.ImageNotFound) as cm:
                call()
            self.assertEqual(404, cm.exception.code)

    def test_bad_format_is_bad_request(self):
        with self.assertRaises(exception.ImageBadRequest) as cm:
            self.api.create(self.ctx, {'name': 'bad', 'disk_format': 'floppy',
                                       'container_format': 'bare'})
        self.assertEqual(400, cm.exception.code)

    def test_role_list_reaches_glance_intact(self):
        # 'reader' alone may not create; 'reader,member' may. If the comma
        # were URL-encoded Glance would see one unknown role and refuse.
        reader = make_context(roles=('reader',))
        self.assertRaises(exception.ImageNotAuthorized, self.api.create,
                          reader, {'name': 'r', 'disk_format': 'raw',
                                   'container_format': 'bare'})
        both = make_context(roles=('reader', 'member'))
        image = self._create(ctx=both)
        self.assertEqual(both.project_id, image['owner'])

    # -- data -----------------------------------------------------------------

    def test_upload_file_and_download(self):
        data = os.urandom(3 * MIB + 12345)
        path = self._tempfile(data)
        image = self._create()
        with open(path, 'rb') as f:
            sent = self.api.upload(self.ctx, image['id'], f, size=len(data))
        self.assertEqual(len(data), sent)

        got = self.api.get(self.ctx, image['id'])
        self.assertEqual('active', got['status'])
        self.assertEqual(len(data), got['size'])
        # Glance computed these from what it received.
        self.assertEqual(hashlib.md5(data).hexdigest(), got['checksum'])
        self.assertEqual('sha512', got['os_hash_algo'])
        self.assertEqual(hashlib.sha512(data).hexdigest(),
                         got['os_hash_value'])

        dest = os.path.join(tempfile.mkdtemp(prefix='glance-dl-'), 'disk')
        self.addCleanup(os.rmdir, os.path.dirname(dest))
        self.addCleanup(os.unlink, dest)
        written = self.api.download(self.ctx, image['id'], dest)
        self.assertEqual(len(data), written)
        with open(dest, 'rb') as f:
            self.assertEqual(data, f.read())

    def test_upload_iterator_without_size(self):
        self.conf.set_override('upload_chunk_size', 256 * 1024, group='glance')
        api = glance.GlanceAPI(self.conf)
        pieces = [os.urandom(n) for n in (1, 70000, MIB, 5, 300000)]
        data = b''.join(pieces)
        image = self._create()
        self.assertEqual(len(data), api.upload(self.ctx, image['id'],
                                               iter(pieces)))
        got = api.get(self.ctx, image['id'])
        self.assertEqual(len(data), got['size'])
        self.assertEqual(hashlib.sha512(data).hexdigest(),
                         got['os_hash_value'])

    def test_upload_to_active_image_is_rejected(self):
        image = self._create()
        self.api.upload(self.ctx, image['id'], [b'first'], size=5)
        self.assertRaises(exception.ImageBadRequest, self.api.upload,
                          self.ctx, image['id'], [b'second'], size=6)

    def test_download_without_data(self):
        image = self._create()
        dest = os.path.join(tempfile.mkdtemp(prefix='glance-dl-'), 'disk')
        self.addCleanup(os.rmdir, os.path.dirname(dest))
        self.assertRaises(exception.ImageUnacceptable, self.api.download,
                          self.ctx, image['id'], dest)
        self.assertFalse(os.path.exists(dest))

    def test_create_active_empty(self):
        image = self.api.create_active_empty(
            self.ctx, {'name': 'volume-backed', 'bdm_v2': 'True',
                       'block_device_mapping': [{'source_type': 'snapshot'}]})
        self.addCleanup(self._delete_quietly, self.ctx, image['id'])
        self.assertEqual('active', image['status'])
        self.assertEqual(0, image['size'])
        self.assertEqual('raw', image['disk_format'])
        self.assertEqual([{'source_type': 'snapshot'}],
                         json.loads(image['block_device_mapping']))

    def test_list_by_property(self):
        # How a restarted compute service finds the image of a request.
        tag = 'req-' + uuid.uuid4().hex
        wanted = self._create(nova_snapshot_request_id=tag)
        self._create(nova_snapshot_request_id='req-other')
        found = self.api.list(self.ctx, nova_snapshot_request_id=tag)
        self.assertEqual([wanted['id']], [image['id'] for image in found])
        self.assertEqual('queued', found[0]['status'])

    # -- isolation ------------------------------------------------------------

    def test_private_image_is_invisible_to_other_project(self):
        owner = make_context()
        other = make_context()
        image = self._create(ctx=owner, visibility='private')
        self.api.upload(owner, image['id'], [b'secret'], size=6)

        dest = os.path.join(tempfile.mkdtemp(prefix='glance-dl-'), 'disk')
        self.addCleanup(os.rmdir, os.path.dirname(dest))
        self.assertRaises(exception.ImageNotFound,
                          self.api.get, other, image['id'])
        self.assertRaises(exception.ImageNotFound,
                          self.api.download, other, image['id'], dest)
        self.assertRaises(exception.ImageNotFound,
                          self.api.update, other, image['id'], {'a': 'b'})
        self.assertRaises(exception.ImageNotFound,
                          self.api.delete, other, image['id'])
        # Still there for its owner.
        self.assertEqual('active', self.api.get(owner, image['id'])['status'])

    def test_instance_owner_becomes_member(self):
        admin = make_context(roles=('admin', 'member', 'reader'))
        server_project = make_context()
        image = self._create(ctx=admin,
                             instance_owner=server_project.project_id)
        self.assertEqual(admin.project_id, image['owner'])
        got = self.api.get(server_project, image['id'])
        self.assertEqual(image['id'], got['id'])
        # A project that is not a member still cannot see it.
        self.assertRaises(exception.ImageNotFound,
                          self.api.get, make_context(), image['id'])

    # -- transport ------------------------------------------------------------

    def test_connection_failure_is_translated_after_retries(self):
        self.conf.set_override('api_endpoint',
                               'http://127.0.0.1:%d' % unused_port(),
                               group='glance')
        self.conf.set_override('num_retries', 1, group='glance')
        api = glance.GlanceAPI(self.conf)
        api.retry_backoff = 0
        self.assertRaises(exception.GlanceConnectionFailed,
                          api.get, self.ctx, str(uuid.uuid4()))

    def test_generate_image_url(self):
        self.assertEqual('%s/images/abc' % self.stack['GLANCE_URL'],
                         self.api.generate_image_url('abc'))
