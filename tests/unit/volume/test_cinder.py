"""Unit tests for nova_snapshot.volume.cinder (fakes at cinderclient's edge)."""

import unittest
from unittest import mock

from cinderclient import exceptions as cinder_exc
from cinderclient.v3 import limits as cinder_limits
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading

from nova_snapshot import conf as nova_conf
from nova_snapshot import context as nova_context
from nova_snapshot import exception
from nova_snapshot.volume import cinder

PROJECT = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
VOL = '11111111-2222-3333-4444-555555555555'
SNAP = '66666666-7777-8888-9999-000000000000'
ATT = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'
FLAT_INFO = {'driver_volume_type': 'rbd', 'name': 'volumes/volume-' + VOL,
             'hosts': ['127.0.0.1'], 'ports': ['6789'],
             'auth_enabled': False, 'attachment_id': ATT}


def make_conf(**overrides):
    """Development mode (noauth Cinder at a fixed endpoint) unless the
    test says otherwise."""
    conf = nova_conf.new_conf([])
    overrides.setdefault('auth_mode', 'noauth')
    overrides.setdefault('api_endpoint', 'http://127.0.0.1:8776/v3')
    for key, value in overrides.items():
        conf.set_override(key, value, group='cinder')
    return conf


def make_context(**kwargs):
    kwargs.setdefault('user_id', 'u1')
    kwargs.setdefault('project_id', PROJECT)
    kwargs.setdefault('roles', ['member', 'reader'])
    return nova_context.RequestContext(**kwargs)


class FakeResource(object):
    """What cinderclient managers return: attributes plus to_dict()."""

    def __init__(self, **info):
        self._info = dict(info)

    def to_dict(self):
        return dict(self._info)


class FakeClock(object):

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class CinderAPITestBase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.client = mock.Mock()
        patcher = mock.patch('cinderclient.client.Client',
                             return_value=self.client)
        self.client_cls = patcher.start()
        self.addCleanup(patcher.stop)
        self.conf = make_conf(poll_interval=0.5, min_wait_timeout=10.0,
                              volume_wait_timeout_per_gib=2.0)
        self.api = cinder.CinderAPI(self.conf)
        self.clock = FakeClock()
        self.api._monotonic = self.clock.monotonic
        self.api._sleep = self.clock.sleep
        self.ctx = make_context()

    def raises(self, exc_class, func, *args, **kwargs):
        """assertRaises that returns the exception."""
        with self.assertRaises(exc_class) as caught:
            func(*args, **kwargs)
        return caught.exception

    def auth_of_last_client(self):
        return self.client_cls.call_args.kwargs['auth']


class AuthTest(CinderAPITestBase):

    def test_noauth_identity_service_role_and_project_endpoint(self):
        self.client.volumes.get.return_value = FakeResource(id=VOL)
        self.api.get(self.ctx, VOL)
        args, kwargs = self.client_cls.call_args
        self.assertEqual(('3.44',), args)
        auth = kwargs['auth']
        headers = auth.get_headers(None)
        self.assertEqual('u1:' + PROJECT, headers['X-Auth-Token'])
        self.assertEqual('service', headers['X-Service-Roles'])
        self.assertEqual(PROJECT, headers['X-Project-Id'])
        self.assertEqual('member,reader', headers['X-Roles'])
        self.assertEqual('http://127.0.0.1:8776/v3/' + PROJECT,
                         auth.get_endpoint(None))

    def test_endpoint_trailing_slash_and_microversion_from_conf(self):
        api = cinder.CinderAPI(make_conf(api_endpoint='http://h:1/v3/',
                                         api_microversion='3.71'))
        self.client.volumes.get.return_value = FakeResource(id=VOL)
        api.get(self.ctx, VOL)
        args, kwargs = self.client_cls.call_args
        self.assertEqual(('3.71',), args)
        self.assertEqual('http://h:1/v3/' + PROJECT,
                         kwargs['auth'].get_endpoint(None))

    def test_non_hex_project_refused_before_any_request(self):
        # Cinder would answer 404 to everything: a misleading VolumeNotFound.
        ctx = make_context(project_id='demo')
        self.assertRaises(exception.VolumeError, self.api.get, ctx, VOL)
        self.client_cls.assert_not_called()

    def test_context_without_user_gets_a_default_user(self):
        self.client.volumes.get.return_value = FakeResource(id=VOL)
        self.api.get(make_context(user_id=None), VOL)
        token = self.auth_of_last_client().get_headers(None)['X-Auth-Token']
        self.assertEqual('nova-snapshot:' + PROJECT, token)

    def test_noauth_warns(self):
        with self.assertLogs('nova_snapshot.volume.cinder', 'WARNING'):
            cinder.CinderAPI(make_conf())


CATALOG = [{'type': 'volumev3', 'name': 'cinderv3', 'endpoints': [
    {'region': 'RegionOne',
     'publicURL': 'http://public.test:8786/v3/' + PROJECT,
     'internalURL': 'http://internal.test:8786/v3/' + PROJECT}]}]


def keystone_conf(service_user=False, **cinder_opts):
    """Keystone mode (the default). The service user has a fixed token
    (keystoneauth's admin_token plugin), so nothing calls Keystone."""
    conf = nova_conf.new_conf([])
    for key, value in cinder_opts.items():
        conf.set_override(key, value, group='cinder')
    if service_user:
        conf.set_override('send_service_user_token', True,
                          group='service_user')
        conf.set_override('auth_type', 'admin_token', group='service_user')
        ks_loading.load_auth_from_conf_options(conf, 'service_user')
        conf.set_override('token', 'service-tok', group='service_user')
        conf.set_override('endpoint', 'http://svc.test:8786/v3/svcproject',
                          group='service_user')
    return conf


class KeystoneAuthTest(CinderAPITestBase):

    def last_call(self):
        kwargs = self.client_cls.call_args.kwargs
        return kwargs['auth'], kwargs.get('os_endpoint')

    def test_keystone_is_the_default_and_calls_have_a_timeout(self):
        api = cinder.CinderAPI(keystone_conf())
        self.assertEqual('keystone', api.auth_mode)
        self.assertEqual(60.0, api._session.timeout)

    def test_user_token_and_catalog_endpoint(self):
        api = cinder.CinderAPI(keystone_conf())
        self.client.volumes.get.return_value = FakeResource(id=VOL)
        api.get(make_context(auth_token='tok', service_catalog=CATALOG), VOL)
        auth, endpoint = self.last_call()
        self.assertEqual('http://internal.test:8786/v3/' + PROJECT, endpoint)
        self.assertEqual({'X-Auth-Token': 'tok'},
                         api._session.get_auth_headers(auth))

    def test_service_token_next_to_the_users(self):
        api = cinder.CinderAPI(keystone_conf(service_user=True))
        self.client.volumes.get.return_value = FakeResource(id=VOL)
        api.get(make_context(auth_token='tok', service_catalog=CATALOG), VOL)
        auth, endpoint = self.last_call()
        self.assertEqual({'X-Auth-Token': 'tok',
                          'X-Service-Token': 'service-tok'},
                         api._session.get_auth_headers(auth))
        # The user's catalog, not the service user's.
        self.assertEqual('http://internal.test:8786/v3/' + PROJECT, endpoint)

    def test_endpoint_override_with_project(self):
        api = cinder.CinderAPI(keystone_conf(
            endpoint_override='http://o.test/v3/%(project_id)s'))
        self.client.volumes.get.return_value = FakeResource(id=VOL)
        api.get(make_context(auth_token='tok'), VOL)
        self.assertEqual('http://o.test/v3/' + PROJECT, self.last_call()[1])

    def test_without_user_token_acts_as_the_service_user(self):
        api = cinder.CinderAPI(keystone_conf(service_user=True))
        self.client.volume_snapshots.list.return_value = []
        api.list_snapshots(nova_context.get_admin_context(),
                           metadata={'k': 'v'})
        auth, endpoint = self.last_call()
        self.assertEqual({'X-Auth-Token': 'service-tok'},
                         api._session.get_auth_headers(auth))
        self.assertEqual('http://svc.test:8786/v3/svcproject', endpoint)
        # An admin outside the request's project lists across projects.
        self.client.volume_snapshots.list.assert_called_once_with(
            search_opts={'all_tenants': 1, 'metadata': {'k': 'v'}})

    def test_restart_cleanup_context_acts_as_the_service_user(self):
        # The compute service's start-up clean-up names the requester's
        # project but has no token: the service user, across projects.
        api = cinder.CinderAPI(keystone_conf(service_user=True))
        self.client.volume_snapshots.list.return_value = []
        api.list_snapshots(make_context(request_id='req-1'),
                           metadata={'k': 'v'})
        auth, endpoint = self.last_call()
        self.assertEqual({'X-Auth-Token': 'service-tok'},
                         api._session.get_auth_headers(auth))
        self.assertEqual('http://svc.test:8786/v3/svcproject', endpoint)
        self.client.volume_snapshots.list.assert_called_once_with(
            search_opts={'all_tenants': 1, 'metadata': {'k': 'v'}})

    def test_user_listing_stays_in_the_project(self):
        api = cinder.CinderAPI(keystone_conf())
        self.client.volume_snapshots.list.return_value = []
        api.list_snapshots(make_context(auth_token='tok',
                                        service_catalog=CATALOG),
                           metadata={'k': 'v'})
        self.client.volume_snapshots.list.assert_called_once_with(
            search_opts={'metadata': {'k': 'v'}})

    def test_without_token_nor_credentials(self):
        api = cinder.CinderAPI(keystone_conf())
        exc = self.raises(exception.VolumeError, api.get,
                          nova_context.get_admin_context(), VOL)
        self.assertIn('[service_user]', exc.format_message())
        self.client_cls.assert_not_called()

    def test_no_endpoint_in_catalog(self):
        api = cinder.CinderAPI(keystone_conf())
        self.assertRaises(exception.VolumeError, api.get,
                          make_context(auth_token='tok'), VOL)


class ErrorTranslationTest(CinderAPITestBase):

    def test_volume_not_found(self):
        self.client.volumes.get.side_effect = cinder_exc.NotFound(404)
        exc = self.raises(exception.VolumeNotFound,
                          self.api.get, self.ctx, VOL)
        self.assertIn(VOL, exc.format_message())
        self.assertEqual(404, exc.code)

    def test_snapshot_not_found(self):
        self.client.volume_snapshots.get.side_effect = cinder_exc.NotFound(404)
        self.assertRaises(exception.SnapshotNotFound,
                          self.api.get_snapshot, self.ctx, SNAP)

    def test_volume_from_missing_snapshot_is_snapshot_not_found(self):
        self.client.volumes.create.side_effect = cinder_exc.NotFound(404)
        self.assertRaises(exception.SnapshotNotFound, self.api.create,
                          self.ctx, 1, 'v', snapshot_id=SNAP)

    def test_attachment_not_found(self):
        self.client.attachments.delete.side_effect = cinder_exc.NotFound(404)
        exc = self.raises(exception.VolumeAttachmentNotFound,
                          self.api.attachment_delete, self.ctx, ATT)
        self.assertIn(ATT, exc.format_message())
        self.assertIsInstance(exc, exception.NotFound)

    def test_over_limit_is_over_quota(self):
        self.client.volume_snapshots.create.side_effect = \
            cinder_exc.OverLimit(413, 'SnapshotLimitExceeded')
        exc = self.raises(exception.OverQuota,
                          self.api.create_snapshot_force,
                          self.ctx, VOL, 's')
        self.assertEqual(403, exc.code)
        self.assertIn('SnapshotLimitExceeded', exc.format_message())

    def test_bad_request_is_invalid(self):
        self.client.volume_snapshots.delete.side_effect = \
            cinder_exc.BadRequest(400, 'has dependent volumes')
        exc = self.raises(exception.Invalid, self.api.delete_snapshot,
                          self.ctx, SNAP)
        self.assertIn('has dependent volumes', exc.format_message())

    def test_server_error_is_volume_error(self):
        self.client.volumes.delete.side_effect = \
            cinder_exc.ClientException(500, 'boom')
        exc = self.raises(exception.VolumeError, self.api.delete,
                          self.ctx, VOL)
        self.assertIn('boom', exc.format_message())

    def test_connection_failure_is_volume_error(self):
        self.client.volumes.get.side_effect = ksa_exc.ConnectFailure('refused')
        exc = self.raises(exception.VolumeError, self.api.get,
                          self.ctx, VOL)
        self.assertIn('unreachable', exc.format_message())


class VolumeTest(CinderAPITestBase):

    def test_create_arguments_and_nova_aliases(self):
        self.client.volumes.create.return_value = FakeResource(
            id=VOL, name='v', description='d', status='creating', size=3,
            bootable='false', multiattach=False, attachments=[])
        volume = self.api.create(self.ctx, '3', 'v', image_id='img',
                                 volume_type='ceph', description='d')
        self.client.volumes.create.assert_called_once_with(
            3, name='v', description='d', snapshot_id=None, imageRef='img',
            volume_type='ceph', availability_zone=None, metadata=None)
        self.assertIs(dict, type(volume))
        self.assertEqual('v', volume['display_name'])
        self.assertEqual('d', volume['display_description'])
        self.assertIs(False, volume['bootable'])
        self.assertEqual('detached', volume['attach_status'])

    def test_get_attached_bootable(self):
        self.client.volumes.get.return_value = FakeResource(
            id=VOL, status='in-use', bootable='true',
            attachments=[{'server_id': 'x'}])
        volume = self.api.get(self.ctx, VOL)
        self.assertIs(True, volume['bootable'])
        self.assertEqual('attached', volume['attach_status'])

    def test_delete_cascade(self):
        self.api.delete(self.ctx, VOL, cascade=True)
        self.client.volumes.delete.assert_called_once_with(VOL, cascade=True)


class AttachmentTest(CinderAPITestBase):

    def test_translate_flat_to_nova_shape(self):
        info = cinder.translate_connection_info(FLAT_INFO)
        self.assertEqual('rbd', info['driver_volume_type'])
        self.assertEqual('volumes/volume-' + VOL, info['data']['name'])
        self.assertNotIn('driver_volume_type', info['data'])
        self.assertEqual(['127.0.0.1'], info['data']['hosts'])

    def test_translate_keeps_nested_and_empty(self):
        nested = {'driver_volume_type': 'rbd', 'data': {'name': 'p/i'}}
        self.assertEqual(nested, cinder.translate_connection_info(nested))
        self.assertEqual({}, cinder.translate_connection_info({}))
        self.assertEqual({}, cinder.translate_connection_info(None))

    def test_create_reserves_without_connector(self):
        self.client.attachments.create.return_value = {
            'id': ATT, 'status': 'reserved', 'connection_info': {}}
        att = self.api.attachment_create(self.ctx, VOL, 'inst')
        self.client.attachments.create.assert_called_once_with(
            VOL, None, 'inst')
        self.assertEqual(ATT, att['id'])
        self.assertEqual({}, att['connection_info'])

    def test_create_with_connector_and_mountpoint(self):
        self.client.attachments.create.return_value = {
            'id': ATT, 'connection_info': dict(FLAT_INFO)}
        connector = {'host': 'h'}
        att = self.api.attachment_create(self.ctx, VOL, 'inst',
                                         connector=connector,
                                         mountpoint='/dev/vdb')
        self.client.attachments.create.assert_called_once_with(
            VOL, {'host': 'h', 'mountpoint': '/dev/vdb'}, 'inst')
        self.assertEqual({'host': 'h'}, connector)
        self.assertEqual('rbd', att['connection_info']['driver_volume_type'])

    def test_update_returns_nova_connection_info(self):
        # attachments.update returns an object, not a dict (pitfall 5).
        self.client.attachments.update.return_value = FakeResource(
            id=ATT, connection_info=dict(FLAT_INFO))
        connector = {'host': 'h', 'ip': '127.0.0.1'}
        info = self.api.attachment_update(self.ctx, ATT, connector,
                                          mountpoint='/dev/vdc')
        self.client.attachments.update.assert_called_once_with(
            ATT, {'host': 'h', 'ip': '127.0.0.1', 'mountpoint': '/dev/vdc'})
        self.assertNotIn('mountpoint', connector)
        self.assertEqual('volumes/volume-' + VOL, info['data']['name'])

    def test_complete_and_delete(self):
        self.api.attachment_complete(self.ctx, ATT)
        self.api.attachment_delete(self.ctx, ATT)
        self.client.attachments.complete.assert_called_once_with(ATT)
        self.client.attachments.delete.assert_called_once_with(ATT)


class SnapshotTest(CinderAPITestBase):

    def test_create_snapshot_force(self):
        self.client.volume_snapshots.create.return_value = FakeResource(
            id=SNAP, volume_id=VOL, status='creating', size=4, name='s')
        snap = self.api.create_snapshot_force(self.ctx, VOL, 's', 'desc',
                                              metadata={'k': 'v'})
        self.client.volume_snapshots.create.assert_called_once_with(
            VOL, force=True, name='s', description='desc',
            metadata={'k': 'v'})
        self.assertEqual(4, snap['volume_size'])
        self.assertEqual('s', snap['display_name'])

    def test_list_snapshots_by_volume_and_metadata(self):
        self.client.volume_snapshots.list.return_value = [FakeResource(
            id=SNAP, volume_id=VOL, status='available', size=1, name='s',
            metadata={'k': 'v'})]
        snaps = self.api.list_snapshots(self.ctx, VOL, metadata={'k': 'v'})
        self.client.volume_snapshots.list.assert_called_once_with(
            search_opts={'volume_id': VOL, 'metadata': {'k': 'v'}})
        self.assertEqual([SNAP], [snap['id'] for snap in snaps])
        self.assertEqual({'k': 'v'}, snaps[0]['metadata'])

    def test_limits_as_dict(self):
        self.client.limits.get.return_value = cinder_limits.Limits(
            None, {'absolute': {'maxTotalSnapshots': 10,
                                'totalSnapshotsUsed': 3},
                   'rate': []}, loaded=True)
        self.assertEqual({'maxTotalSnapshots': 10, 'totalSnapshotsUsed': 3},
                         self.api.get_absolute_limits(self.ctx))


class WaitTest(CinderAPITestBase):

    def statuses(self, manager, *statuses, size=1):
        manager.get.side_effect = [
            FakeResource(id=VOL, status=s, size=size) for s in statuses]

    def test_wait_for_volume_polls_until_available(self):
        self.statuses(self.client.volumes, 'creating', 'downloading',
                      'available')
        volume = self.api.wait_for_volume(self.ctx, VOL, 30)
        self.assertEqual('available', volume['status'])
        self.assertEqual([0.5, 0.5], self.clock.sleeps)

    def test_wait_for_volume_error_status(self):
        self.statuses(self.client.volumes, 'creating', 'error')
        exc = self.raises(exception.VolumeError,
                          self.api.wait_for_volume, self.ctx, VOL, 30)
        self.assertIn('error', exc.format_message())
        self.assertEqual([0.5], self.clock.sleeps)

    def test_wait_for_volume_times_out(self):
        self.client.volumes.get.return_value = FakeResource(
            id=VOL, status='creating', size=1)
        exc = self.raises(exception.VolumeError,
                          self.api.wait_for_volume, self.ctx, VOL, 2.0)
        self.assertIn('still creating', exc.format_message())
        # 2 s at 0.5 s per poll: the deadline is seen on the 5th poll.
        self.assertEqual(4, len(self.clock.sleeps))

    def test_wait_other_statuses(self):
        self.statuses(self.client.volumes, 'attaching', 'in-use')
        volume = self.api.wait_for_volume(self.ctx, VOL, 30,
                                          statuses=('in-use',))
        self.assertEqual('in-use', volume['status'])

    def test_default_timeout_scales_with_size(self):
        # 100 GiB at 2 s/GiB = 200 s; the minimum (10 s) does not apply.
        self.client.volumes.get.return_value = FakeResource(
            id=VOL, status='downloading', size=100)
        exc = self.raises(exception.VolumeError,
                          self.api.wait_for_volume, self.ctx, VOL)
        self.assertIn('200.0 s', exc.format_message())
        self.assertEqual(200.0, sum(self.clock.sleeps))

    def test_timeout_has_a_minimum(self):
        self.assertEqual(10.0, self.api.volume_wait_timeout(1))
        self.assertEqual(10.0, self.api.volume_wait_timeout(None))
        self.assertEqual(40.0, self.api.volume_wait_timeout(20))

    def test_wait_for_snapshot_available(self):
        self.statuses(self.client.volume_snapshots, 'creating', 'available')
        snap = self.api.wait_for_snapshot(self.ctx, SNAP, 5)
        self.assertEqual('available', snap['status'])

    def test_wait_for_snapshot_error_raises(self):
        self.statuses(self.client.volume_snapshots, 'creating', 'error')
        self.assertRaises(exception.VolumeError, self.api.wait_for_snapshot,
                          self.ctx, SNAP, 5)

    def test_wait_for_snapshot_error_when_asked_for(self):
        # "Left creating", error or not: what the freeze window waits for.
        self.statuses(self.client.volume_snapshots, 'creating', 'error')
        snap = self.api.wait_for_snapshot(self.ctx, SNAP, 5,
                                          statuses=('available', 'error'))
        self.assertEqual('error', snap['status'])

    def test_wait_for_snapshot_not_found(self):
        self.client.volume_snapshots.get.side_effect = cinder_exc.NotFound(404)
        self.assertRaises(exception.SnapshotNotFound,
                          self.api.wait_for_snapshot, self.ctx, SNAP, 5)

    def test_wait_for_volume_deleted(self):
        self.client.volumes.get.side_effect = [
            FakeResource(id=VOL, status='deleting'),
            cinder_exc.NotFound(404)]
        self.api.wait_for_volume_deleted(self.ctx, VOL, 5)
        self.assertEqual([0.5], self.clock.sleeps)

    def test_wait_for_snapshot_deleted_error(self):
        self.statuses(self.client.volume_snapshots, 'deleting',
                      'error_deleting')
        self.assertRaises(exception.VolumeError,
                          self.api.wait_for_snapshot_deleted,
                          self.ctx, SNAP, 5)
