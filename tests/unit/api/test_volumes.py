"""Volumes through the API: block_device_mapping_v2 on create (every 400
rule), os-volume_attachments, volumes_attached, and createImage on a
volume-backed server (Nova's error mapping)."""

import uuid as uuidlib

from nova_snapshot import exception
from tests.unit.api import base

VOL = '5f0c6e43-77ab-4e31-8a0b-3c2d1e0f9a88'
SNAP = '7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d'
IMAGE = '6b0c7a5d-0c86-4b2f-9c5f-1a0c7e0d1f11'


class TestCreateWithBDM(base.APITestCase):

    def create(self, bdms, image_ref='', version='2.45', **server):
        minor = int(version.split('.')[1])
        body = {'name': 'vm', 'flavorRef': '1',
                'networks': 'none' if minor >= 37 else []}
        if image_ref is not None:
            body['imageRef'] = image_ref
        if bdms is not None:
            body['block_device_mapping_v2'] = bdms
        body.update(server)
        return self.request('POST', '/v2.1/servers', {'server': body},
                            version=version)

    def assert400(self, response, text):
        self.assertEqual(400, response.status_int, response.text)
        self.assertIn(text, response.json['badRequest']['message'])
        self.assertEqual([], self.compute.calls)

    def test_boot_from_volume_normalised(self):
        response = self.create([
            {'source_type': 'volume', 'uuid': VOL, 'boot_index': '0',
             'destination_type': 'volume', 'delete_on_termination': 'yes',
             'disk_bus': 'scsi'},
            {'source_type': 'blank', 'destination_type': 'volume',
             'volume_size': '2', 'boot_index': -1, 'device_name': 'vdb'}])
        self.assertEqual(202, response.status_int, response.text)
        create, bdms = self.compute.calls[0], self.compute.calls[1][1]
        self.assertEqual('', create[2])
        self.assertEqual(0, bdms[0]['boot_index'])
        self.assertIs(True, bdms[0]['delete_on_termination'])
        self.assertEqual(VOL, bdms[0]['uuid'])
        self.assertEqual('scsi', bdms[0]['disk_bus'])
        self.assertIsNone(bdms[1]['boot_index'])
        self.assertEqual(2, bdms[1]['volume_size'])
        self.assertIsNone(bdms[1]['uuid'])
        self.assertIs(False, bdms[1]['delete_on_termination'])
        server_id = response.json['server']['id']
        show = self.request('GET', '/v2.1/servers/%s' % server_id,
                            version='2.3').json['server']
        self.assertEqual('', show['image'])
        self.assertEqual([{'id': VOL, 'delete_on_termination': True}],
                         [v for v in show[
                             'os-extended-volumes:volumes_attached']
                          if v['id'] == VOL])
        show = self.request('GET', '/v2.1/servers/%s' % server_id,
                            version='2.2').json['server']
        self.assertIn({'id': VOL},
                      show['os-extended-volumes:volumes_attached'])

    def test_image_plus_data_volume(self):
        response = self.create([{'source_type': 'image', 'uuid': IMAGE,
                                 'destination_type': 'local',
                                 'boot_index': 0},
                                {'source_type': 'volume', 'uuid': VOL}],
                               image_ref=IMAGE)
        self.assertEqual(202, response.status_int, response.text)
        self.assertEqual(IMAGE, self.compute.calls[0][2])

    def test_image_ref_alone_passes_no_mapping(self):
        response = self.create(None, image_ref=IMAGE)
        self.assertEqual(202, response.status_int, response.text)
        self.assertEqual('create', self.compute.calls[-1][0])

    def test_rules(self):
        cases = [
            ([{'source_type': 'volume', 'boot_index': 0}], '',
             'Missing device UUID.'),
            ([{'source_type': 'blank', 'uuid': VOL, 'boot_index': 0,
               'destination_type': 'volume', 'volume_size': 1}], '',
             'Invalid device UUID.'),
            ([{'source_type': 'image', 'uuid': IMAGE, 'boot_index': 0,
               'destination_type': 'volume'}], '',
             "Images with destination_type 'volume' need"),
            ([{'source_type': 'blank', 'boot_index': 0,
               'destination_type': 'volume'}], '',
             'Blank volumes'),
            ([{'source_type': 'image', 'uuid': IMAGE, 'boot_index': 0,
               'destination_type': 'local'}], None,
             'Mapping image to local is not supported.'),
            ([{'source_type': 'blank', 'destination_type': 'local',
               'boot_index': 1}], IMAGE, 'Only volumes'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0},
              {'source_type': 'volume', 'uuid': SNAP, 'boot_index': 0}],
             '', 'Boot sequence'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 1}], '',
             'Boot sequence'),
            ([{'source_type': 'volume', 'uuid': VOL}], '', 'Boot sequence'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'device_name': 'vd a'}], '', 'device_name'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'disk_bus': 'floppybus'}], '', 'disk_bus floppybus'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'device_type': 'tape'}], '', 'device_type tape'),
            # Nova's libvirt list has these; this driver builds neither
            # (a 202 and an ERROR at spawn before the shared normaliser).
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'disk_bus': 'fdc'}], '', 'disk_bus fdc is not supported'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'device_type': 'cdrom'}], '', 'device_type cdrom'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'device_name': 'fd0'}], '', 'device name fd0'),
            ([{'source_type': 'snapshot', 'uuid': SNAP, 'boot_index': 0,
               'snapshot_id': VOL}], '', 'name different sources'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0}],
             'not-a-uuid', 'imageRef'),
            ([{'source_type': 'disk', 'uuid': VOL, 'boot_index': 0}], '',
             'source_type'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'destination_type': 'remote'}], '', 'destination_type'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 'x'}],
             '', 'boot_index'),
            ([{'source_type': 'blank', 'volume_size': 0, 'boot_index': 0,
               'destination_type': 'volume'}], '', 'volume_size'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'delete_on_termination': 'maybe'}], '',
             'delete_on_termination'),
            ([{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
               'volume_type': 'ceph'}], '', 'Additional'),
            ([{'boot_index': 0, 'uuid': VOL}], '', 'required fields'),
            (None, '', 'Missing imageRef attribute'),
            (None, None, 'Missing imageRef attribute'),
        ]
        for bdms, image_ref, text in cases:
            with self.subTest(bdms=bdms, image_ref=image_ref):
                self.assert400(self.create(bdms, image_ref=image_ref), text)

    def test_tag_by_microversion(self):
        bdm = [{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0,
                'tag': 'root'}]
        for version, status in (('2.31', 400), ('2.32', 202), ('2.33', 400),
                                ('2.41', 400), ('2.42', 202)):
            with self.subTest(version=version):
                response = self.create(bdm, version=version)
                self.assertEqual(status, response.status_int, response.text)

    def test_legacy_mapping_is_refused(self):
        legacy = [{'volume_id': VOL, 'device_name': 'vda'}]
        self.assert400(self.create(None, block_device_mapping=legacy),
                       'legacy v1 format')
        self.assert400(self.create(
            [{'source_type': 'volume', 'uuid': VOL, 'boot_index': 0}],
            block_device_mapping=legacy), 'different block_device_mapping')


class TestVolumeAttachments(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.root = self.compute.add_volume(self.server, boot_index=0,
                                            device_name='/dev/vda')
        self.data = self.compute.add_volume(self.server)
        self.url = '/v2.1/servers/%s/os-volume_attachments' % (
            self.server['uuid'])

    def test_index_and_show(self):
        body = self.request('GET', self.url).json
        self.assertEqual(
            [{'id': self.root['volume_id'], 'volumeId': self.root['volume_id'],
              'serverId': self.server['uuid'], 'device': '/dev/vda'},
             {'id': self.data['volume_id'], 'volumeId': self.data['volume_id'],
              'serverId': self.server['uuid'], 'device': '/dev/vdb'}],
            body['volumeAttachments'])
        response = self.request('GET', '%s/%s' % (self.url,
                                                  self.data['volume_id']))
        self.assertEqual(body['volumeAttachments'][1],
                         response.json['volumeAttachment'])

    def test_show_unknown_is_404(self):
        response = self.request('GET', '%s/%s' % (self.url, VOL))
        self.assertEqual(404, response.status_int)
        self.assertEqual('Instance %s is not attached to volume %s'
                         % (self.server['uuid'], VOL),
                         response.json['itemNotFound']['message'])

    def test_attach(self):
        response = self.request('POST', self.url, {'volumeAttachment': {
            'volumeId': VOL, 'device': '/dev/vdd'}})
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual({'id': VOL, 'volumeId': VOL, 'device': '/dev/vdd',
                          'serverId': self.server['uuid']},
                         response.json['volumeAttachment'])
        self.assertEqual(('attach_volume', self.server['uuid'], VOL,
                          '/dev/vdd'), self.compute.calls[-1])

    def test_attach_errors(self):
        cases = [
            ({'volumeAttachment': {'volumeId': 'nope'}}, 400),
            ({'volumeAttachment': {'volumeId': VOL, 'device': 'vdb'}}, 400),
            ({'volumeAttachment': {'volumeId': VOL, 'x': 1}}, 400),
            ({'volumeAttachment': {}}, 400),
            ({'volumeAttachment': {
                'volumeId': self.data['volume_id']}}, 400),  # InvalidVolume
            ({'volumeAttachment': {
                'volumeId': '00000000-0000-4000-8000-000000000000'}}, 404),
        ]
        for body, status in cases:
            with self.subTest(body=body):
                response = self.request('POST', self.url, body)
                self.assertEqual(status, response.status_int, response.text)

    def test_attach_on_a_device_the_driver_cannot_hotplug(self):
        for device in ('/dev/hdb', '/dev/sdb1', '/dev/fd'):
            with self.subTest(device=device):
                response = self.request('POST', self.url, {
                    'volumeAttachment': {'volumeId': VOL,
                                         'device': device}})
                self.assertEqual(400, response.status_int, response.text)
                self.assertIn('The supplied device path (%s' % device,
                              response.json['badRequest']['message'])
        self.assertNotIn('attach_volume',
                         [call[0] for call in self.compute.calls])

    def test_attach_wrong_state_is_409(self):
        self.compute.instances[self.server['uuid']]['task_state'] = 'pausing'
        response = self.request('POST', self.url,
                                {'volumeAttachment': {'volumeId': VOL}})
        self.assertEqual(409, response.status_int)
        self.assertIn("Cannot 'attach_volume' instance",
                      response.json['conflictingRequest']['message'])
        response = self.request('DELETE', '%s/%s' % (
            self.url, self.data['volume_id']))
        self.assertEqual(409, response.status_int)
        self.assertIn("Cannot 'detach_volume' instance",
                      response.json['conflictingRequest']['message'])

    def test_shelved_servers_take_attach_and_detach_from_2_20(self):
        for state in ('shelved', 'shelved_offloaded'):
            self.compute.instances[self.server['uuid']]['vm_state'] = state
            for method, path, body, action in (
                    ('POST', self.url, {'volumeAttachment': {
                        'volumeId': VOL}}, 'attach_volume'),
                    ('DELETE', '%s/%s' % (self.url, self.data['volume_id']),
                     None, 'detach_volume')):
                with self.subTest(state=state, action=action):
                    calls = len(self.compute.calls)
                    response = self.request(method, path, body,
                                            version='2.19')
                    self.assertEqual(409, response.status_int, response.text)
                    self.assertEqual(
                        "Cannot '%s' instance %s while it is in vm_state %s"
                        % (action, self.server['uuid'], state),
                        response.json['conflictingRequest']['message'])
                    self.assertEqual(calls, len(self.compute.calls))
                    response = self.request(method, path, body,
                                            version='2.20')
                    self.assertIn(response.status_int, (200, 202),
                                  response.text)
                    self.assertEqual(action, self.compute.calls[-1][0])

    def test_detach(self):
        response = self.request('DELETE', '%s/%s' % (
            self.url, self.data['volume_id']))
        self.assertEqual(202, response.status_int, response.text)
        self.assertEqual(('detach_volume', self.server['uuid'],
                          self.data['volume_id']), self.compute.calls[-1])

    def test_detach_root_is_400_unknown_is_404(self):
        response = self.request('DELETE', '%s/%s' % (
            self.url, self.root['volume_id']))
        self.assertEqual(400, response.status_int)
        self.assertEqual('Cannot detach a root device volume',
                         response.json['badRequest']['message'])
        response = self.request('DELETE', '%s/%s' % (self.url, VOL))
        self.assertEqual(404, response.status_int)
        self.assertEqual([], [c for c in self.compute.calls
                              if c[0] == 'detach_volume'])

    def test_other_project_is_404(self):
        response = self.request('GET', self.url, token='bob:project-b')
        self.assertEqual(404, response.status_int)

    def test_reader_lists_but_cannot_attach(self):
        response = self.request('GET', self.url, roles='reader')
        self.assertEqual(200, response.status_int)
        response = self.request('POST', self.url, {
            'volumeAttachment': {'volumeId': VOL}}, roles='reader')
        self.assertEqual(403, response.status_int)


class TestUpdateVolumeAttachment(base.APITestCase):
    """PUT os-volume_attachments/{volume_id}: 2.85 update of
    delete_on_termination; the swap-volume forms as Nova refuses them."""

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.data = self.compute.add_volume(self.server, tag='t1')
        self.url = '/v2.1/servers/%s/os-volume_attachments/%s' % (
            self.server['uuid'], self.data['volume_id'])

    def _put(self, attachment, version='2.85', **kwargs):
        return self.request('PUT', self.url, {'volumeAttachment': attachment},
                            version=version, **kwargs)

    def test_member_updates_delete_on_termination(self):
        response = self._put({'volumeId': self.data['volume_id'],
                              'delete_on_termination': True})
        self.assertEqual(202, response.status_int, response.text)
        self.assertEqual(b'', response.body)
        self.assertEqual(('update_volume_attachment', self.server['uuid'],
                          self.data['volume_id'], True),
                         self.compute.calls[-1])
        shown = self.request('GET', self.url, version='2.85').json
        self.assertIs(True,
                      shown['volumeAttachment']['delete_on_termination'])
        # The fields of a show may be sent back unchanged (Nova).
        response = self._put({'volumeId': self.data['volume_id'],
                              'device': '/dev/vdb', 'tag': 't1',
                              'serverId': self.server['uuid'],
                              'id': self.data['volume_id'],
                              'delete_on_termination': 'false'})
        self.assertEqual(202, response.status_int, response.text)
        self.assertIs(False, self.compute.calls[-1][3])

    def test_immutable_fields_unknown_volume_and_bad_bodies(self):
        cases = [
            ({'device': '/dev/vdc'}, 400, 'The device property is not '
                                          'mutable'),
            ({'tag': 'other'}, 400, 'The tag property is not mutable'),
            ({'serverId': VOL}, 400, 'The serverId property is not mutable'),
            ({'delete_on_termination': 'maybe'}, 400, None),
            ({'attachment_id': VOL}, 400, None),
        ]
        for extra, status, message in cases:
            with self.subTest(extra=extra):
                body = dict({'volumeId': self.data['volume_id']}, **extra)
                response = self._put(body)
                self.assertEqual(status, response.status_int, response.text)
                if message:
                    self.assertEqual(message,
                                     response.json['badRequest']['message'])
        response = self.request(
            'PUT', self.url.replace(self.data['volume_id'], VOL),
            {'volumeAttachment': {'volumeId': VOL}}, version='2.85')
        self.assertEqual(404, response.status_int, response.text)
        # Before 2.85 the body is the swap's: volumeId alone.
        response = self._put({'volumeId': self.data['volume_id'],
                              'delete_on_termination': True},
                             version='2.84', roles='admin')
        self.assertEqual(400, response.status_int, response.text)
        self.assertNotIn('update_volume_attachment',
                         [c[0] for c in self.compute.calls])

    def test_reader_and_other_project_refused(self):
        body = {'volumeId': self.data['volume_id'],
                'delete_on_termination': True}
        self.assertEqual(403, self._put(body, roles='reader').status_int)
        self.assertEqual(404, self._put(body,
                                        token='bob:project-b').status_int)

    def test_swap_is_admin_only_and_refused_as_nova_does(self):
        # Before 2.85 every PUT is a swap; from 2.85 another volumeId.
        for version, volume_id in (('2.84', self.data['volume_id']),
                                   ('2.85', VOL)):
            with self.subTest(version=version):
                response = self._put({'volumeId': volume_id},
                                     version=version)
                self.assertEqual(403, response.status_int, response.text)

        class Cinder:
            volumes = {self.data['volume_id']: {'migration_status': None},
                       VOL: {}}

            def get(self, context, volume_id):
                try:
                    return dict(self.volumes[volume_id], id=volume_id)
                except KeyError:
                    raise exception.VolumeNotFound(volume_id=volume_id)
        self.compute.volume_api = Cinder()
        response = self._put({'volumeId': VOL}, roles='admin')
        self.assertEqual(409, response.status_int, response.text)
        self.assertEqual('volume %s is not migrating; this API should only '
                         'be called by Cinder' % self.data['volume_id'],
                         response.json['conflictingRequest']['message'])
        Cinder.volumes[self.data['volume_id']]['migration_status'] = \
            'migrating'
        response = self._put({'volumeId': VOL}, roles='admin')
        self.assertEqual(409, response.status_int, response.text)
        self.assertIn('not supported by this service',
                      response.json['conflictingRequest']['message'])
        unknown = '00000000-0000-4000-8000-000000000000'
        response = self._put({'volumeId': unknown}, roles='admin')
        self.assertEqual(400, response.status_int, response.text)


class TestCreateImageVolumeBacked(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a', image_ref='')
        self.url = '/v2.1/servers/%s/action' % self.server['uuid']
        self.compute.volume_snapshot_error = None

    def snap(self, version='2.45'):
        return self.request('POST', self.url,
                            {'createImage': {'name': 'vb'}}, version=version)

    def test_success_both_shapes(self):
        response = self.snap('2.44')
        self.assertEqual(202, response.status_int, response.text)
        self.assertRegex(response.headers['Location'],
                         r'^http://glance\.test/images/[0-9a-f-]{36}$')
        response = self.snap('2.45')
        self.assertEqual(202, response.status_int, response.text)
        self.assertNotIn('Location', response.headers)
        uuidlib.UUID(response.json['image_id'])
        self.assertEqual(['snapshot_volume_backed'] * 2,
                         [c[0] for c in self.compute.calls])

    def test_error_mapping(self):
        over = exception.OverQuota(overs='snapshots')
        over.code = 413  # Nova's OverQuota says 413; the answer is 403
        cases = [
            (exception.InstanceQuiesceFailed(reason='agent silent'), 409),
            (exception.InstanceQuiesceNotSupported(instance_id='x',
                                                   reason='no agent'), 400),
            (exception.InvalidVolume(reason='in-use'), 400),
            (over, 403),
            (exception.ImageNotAuthorized(image_id='x'), 403),
            (exception.VolumeNotFound(volume_id='v'), 500),
            (exception.VolumeSnapshotFailed(instance_uuid='x',
                                            reason='error'), 500),
        ]
        for error, status in cases:
            with self.subTest(error=type(error).__name__):
                self.compute.volume_snapshot_error = error
                response = self.snap()
                self.assertEqual(status, response.status_int, response.text)
                if status == 500:
                    self.assertNotIn('error', response.json[
                        'computeFault']['message'].split('\n')[0])

    def test_state_409(self):
        self.compute.instances[self.server['uuid']]['vm_state'] = 'building'
        response = self.snap()
        self.assertEqual(409, response.status_int)
        self.assertIn("Cannot 'createImage'",
                      response.json['conflictingRequest']['message'])
