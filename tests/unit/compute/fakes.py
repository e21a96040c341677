"""Test doubles for the compute unit tests: an in-memory Glance and a
database that records every instance update it applies."""

import copy
import os
import shutil
import tempfile
import threading
import time
import unittest
import uuid as uuidlib

import oslo_messaging as messaging

from nova_snapshot.compute import api as compute_api
from nova_snapshot.compute import notifications
from nova_snapshot.compute import rpcapi as compute_rpcapi
from nova_snapshot import conf as ns_conf
from nova_snapshot import context as ns_context
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from nova_snapshot import rpc
from nova_snapshot import service
from nova_snapshot.virt import fake as fake_virt


class FakeImageAPI(object):
    """The GlanceAPI interface over a dict; flattened image dicts."""

    def __init__(self):
        self.images = {}
        self.members = {}
        self.data = {}
        self.deleted = []
        self.list_calls = []
        self._lock = threading.Lock()

    def add_image(self, **values):
        image = {'id': str(uuidlib.uuid4()), 'status': 'active',
                 'visibility': 'public', 'min_ram': 0, 'min_disk': 0,
                 'disk_format': 'qcow2', 'container_format': 'bare',
                 'owner': 'admin-project', 'size': 1024}
        image.update(values)
        self.images[image['id']] = image
        return copy.deepcopy(image)

    def get(self, context, image_id):
        with self._lock:
            try:
                return copy.deepcopy(self.images[image_id])
            except KeyError:
                raise exception.ImageNotFound(image_id=image_id)

    def list(self, context, **filters):
        """Images whose values equal every filter (Glance's property
        filters; visibility is not modelled)."""
        with self._lock:
            return [copy.deepcopy(image) for image in self.images.values()
                    if all(image.get(k) == v for k, v in filters.items())]

    def create(self, context, image_meta):
        image = dict(image_meta)
        owner = image.pop('instance_owner', None)
        image.update(id=str(uuidlib.uuid4()), status='queued',
                     owner=context.project_id, size=None)
        with self._lock:
            self.images[image['id']] = image
            if owner:
                self.members.setdefault(image['id'], []).append(owner)
        return copy.deepcopy(image)

    def update(self, context, image_id, values, remove_props=()):
        with self._lock:
            if image_id not in self.images:
                raise exception.ImageNotFound(image_id=image_id)
            image = self.images[image_id]
            image.update(values)
            for key in remove_props:
                image.pop(key, None)
            return copy.deepcopy(image)

    def upload(self, context, image_id, data, size=None):
        chunks = [data.read()] if hasattr(data, 'read') else list(data)
        payload = b''.join(chunks)
        with self._lock:
            if image_id not in self.images:
                raise exception.ImageNotFound(image_id=image_id)
            self.data[image_id] = payload
            self.images[image_id].update(status='active', size=len(payload))

    def delete(self, context, image_id):
        with self._lock:
            if image_id not in self.images:
                raise exception.ImageNotFound(image_id=image_id)
            del self.images[image_id]
            self.deleted.append(image_id)

    def generate_image_url(self, image_id):
        return 'http://glance.test/images/%s' % image_id

    def get_all(self, context, filters=None, limit=None, marker=None,
                page_size=None):
        """Glance's list as the images proxy calls it: equality filters
        (``updated_at`` takes Glance's ``gte:`` form), images after
        ``marker`` in stored order (an unknown one is Glance's 400), at most
        ``limit``. ``self.list_calls`` keeps what was asked."""
        self.list_calls.append({'filters': dict(filters or {}),
                                'limit': limit, 'marker': marker,
                                'page_size': page_size})
        filters = dict(filters or {})
        since = filters.pop('updated_at', None)
        with self._lock:
            images = [copy.deepcopy(i) for i in self.images.values()]
        if marker is not None:
            ids = [i['id'] for i in images]
            if marker not in ids:
                raise exception.ImageBadRequest(image_id=marker,
                                                reason='marker not found')
            images = images[ids.index(marker) + 1:]
        images = [i for i in images
                  if all(str(i.get(k)) == str(v) for k, v in filters.items())]
        if since is not None:
            bound = since.split(':', 1)[1]
            images = [i for i in images if (i.get('updated_at') or '') >= bound]
        return images[:limit] if limit else images


class RecordingDatabase(db_api.Database):
    """The real SQLite database, remembering each applied task_state."""

    def __init__(self, url):
        super().__init__(url)
        self.task_state_log = []
        self._log_lock = threading.Lock()

    def instance_update(self, uuid, values, *args, **kwargs):
        result = super().instance_update(uuid, values, *args, **kwargs)
        if 'task_state' in values:
            with self._log_lock:
                self.task_state_log.append((uuid, result['task_state']))
        return result

    def instance_update_checked(self, uuid, values, *args, **kwargs):
        result = super().instance_update_checked(uuid, values, *args,
                                                 **kwargs)
        if 'task_state' in values:
            with self._log_lock:
                self.task_state_log.append((uuid, result['task_state']))
        return result

    def task_states_of(self, uuid):
        with self._log_lock:
            return [state for u, state in self.task_state_log if u == uuid]


class NotificationCollector(object):
    """Notification listener endpoint keeping everything it hears."""

    def __init__(self):
        self.received = []
        self._lock = threading.Lock()

    def _add(self, priority, ctxt, publisher_id, event_type, payload,
             metadata):
        with self._lock:
            self.received.append({'priority': priority,
                                  'publisher_id': publisher_id,
                                  'event_type': event_type,
                                  'payload': payload})

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._add('INFO', ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._add('ERROR', ctxt, publisher_id, event_type, payload, metadata)

    def of_type(self, event_type):
        with self._lock:
            return [n for n in self.received if n['event_type'] == event_type]


def wait_for(predicate, timeout=10.0, interval=0.02, message='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('Timed out waiting for %s' % message)
        time.sleep(interval)


def make_conf(**compute_overrides):
    conf = ns_conf.new_conf([])
    rpc.register_opts(conf)
    conf.set_override('driver', ['messaging'],
                      group='oslo_messaging_notifications')
    conf.set_override('progress_interval', 0.1, group='compute')
    for key, value in compute_overrides.items():
        conf.set_override(key, value, group='compute')
    return conf


class ComputeTestCase(unittest.TestCase):
    """A compute service on an in-memory broker, SQLite, FakeDriver and a
    fake Glance; ``self.api`` is the ComputeAPI the HTTP layer would use."""

    HOST = 'host-a'

    def setUp(self):
        super().setUp()
        # The scheduler places servers: the service reports its (fake)
        # capacity at start.
        self.conf = make_conf()
        # A file, not sqlite:// : the in-memory database is one shared
        # connection, which the API thread and the compute workers would
        # use at the same time.
        tmpdir = tempfile.mkdtemp(prefix='nova-snapshot-unit-')
        self.addCleanup(shutil.rmtree, tmpdir, True)
        self.db = RecordingDatabase(
            'sqlite:///%s' % os.path.join(tmpdir, 'state.sqlite'))
        self.db.create_schema()
        self.addCleanup(self.db.dispose)
        self.image_api = FakeImageAPI()
        self.base_image = self.image_api.add_image(
            name='cirros', min_ram=64, min_disk=0, hw_disk_bus='virtio',
            os_distro='cirros', img_signature='c2ln',
            img_signature_hash_method='SHA-256', cache_in_nova='True',
            cinder_encryption_key_id='k1', kernel_id='kid')
        self.transport = rpc.get_transport(self.conf)
        self.addCleanup(self.transport.cleanup)
        ntransport = rpc.get_notification_transport(self.conf)
        self.addCleanup(ntransport.cleanup)
        self.notifications = NotificationCollector()
        listener = messaging.get_notification_listener(
            ntransport, [messaging.Target(topic='notifications')],
            [self.notifications], executor='threading')
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        self.driver = fake_virt.FakeDriver(self.conf, self.image_api)
        self.service = service.ComputeService(
            self.conf, host=self.HOST, db=self.db, image_api=self.image_api,
            driver=self.driver, transport=self.transport,
            notifier=rpc.get_notifier(self.conf,
                                      notifications.publisher_id(self.HOST),
                                      transport=ntransport))
        self.service.start()
        self.addCleanup(self.service.stop)
        self.manager = self.service.manager
        self.rpcapi = compute_rpcapi.ComputeRPCAPI(self.transport)
        self.api = compute_api.ComputeAPI(self.conf, self.db, self.image_api,
                                          self.rpcapi)
        self.ctx = self.user_context()

    def raises(self, exc_class, func, *args, **kwargs):
        """assertRaises that returns the exception."""
        with self.assertRaises(exc_class) as caught:
            func(*args, **kwargs)
        return caught.exception

    @staticmethod
    def user_context(user='user-1', project='project-1', admin=False):
        roles = ['admin', 'member'] if admin else ['member', 'reader']
        return ns_context.RequestContext(user_id=user, project_id=project,
                                         is_admin=admin, roles=roles)

    def boot(self, name='vm', ctx=None, flavor='1'):
        ctx = ctx or self.ctx
        instance = self.api.create(ctx, name, self.base_image['id'], flavor)
        return self.wait_for_instance(
            instance['uuid'],
            lambda i: i['vm_state'] == 'active' and i['task_state'] is None,
            'instance to become active')

    def wait_for_instance(self, uuid, predicate, message='instance state'):
        def check():
            instance = self.db.instance_get(uuid)
            return instance if predicate(instance) else None
        return wait_for(check, message=message)

    def wait_for_event(self, uuid, event, ctx=None):
        """The finished ``event`` of the request's action (the manager
        writes it after the instance is released on success)."""
        ctx = ctx or self.ctx

        def finished():
            action = self.db.action_get_by_request_id(uuid, ctx.request_id)
            for found in action['events']:
                if found['event'] == event and found['result']:
                    return found
            return None
        return wait_for(finished, message='event %s' % event)

    def start_held_snapshot(self, instance, name):
        """Start a snapshot that the fake driver holds in the capture.

        Returns ``(image, gate)``; ``gate.set()`` lets it finish (also done
        at cleanup).
        """
        gate = threading.Event()
        self.driver.snapshot_gate = gate
        self.addCleanup(gate.set)
        image = self.api.snapshot(self.ctx, instance, name, {})
        self.wait_for_instance(
            instance['uuid'],
            lambda i: i['task_state'] == 'image_pending_upload')
        return image, gate

    def wait_idle(self, uuid):
        self.manager.wait_for_tasks(10)
        return self.wait_for_instance(uuid, lambda i: i['task_state'] is None,
                                      'task_state None')
