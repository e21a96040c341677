"""POST /os-server-external-events: Nova's per-event codes, overall status,
names per microversion, policy, and what each accepted event does here
(the servers live in a real SQLite database)."""

import logging
import uuid as uuidlib

from nova_snapshot.compute import external_events
from nova_snapshot.compute import rebuild
from nova_snapshot.compute import task_states
from tests.unit.api import base

PATH = '/v2.1/os-server-external-events'
SERVICE = 'cinder:service-project:service'
ADMIN = 'admin:admin-project'
VOLUME_ID = '8a4f4a9e-3c1b-4c55-9d7e-2f9a0e6b1c11'


class _EventsTestCase(base.APITestCase):
    """A server on host1 with VOLUME_ID as its root volume."""

    def setUp(self):
        super().setUp()
        self.db = self.compute.db
        self.server = self._server(host='host1')
        self.db.bdm_create({'instance_uuid': self.server['uuid'],
                            'source_type': 'volume',
                            'destination_type': 'volume', 'boot_index': 0,
                            'device_name': '/dev/vda',
                            'volume_id': VOLUME_ID})

    def _server(self, **values):
        return self.db.instance_create(dict(
            {'project_id': 'project-a', 'user_id': 'alice',
             'vm_state': 'active'}, **values))

    def _post(self, events, token=SERVICE, version='2.93'):
        return self.request('POST', PATH, {'events': events}, token=token,
                            version=version)

    def _event(self, name='volume-extended', server=None, **extra):
        event = {'name': name,
                 'server_uuid': (server or self.server)['uuid']}
        event.update(extra)
        return event


class ExternalEventsTest(_EventsTestCase):

    def test_accepted_event_is_echoed_completed(self):
        response = self._post([self._event(tag=VOLUME_ID)])
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual([dict(self._event(tag=VOLUME_ID), code=200,
                               status='completed')],
                         response.json['events'])

    def test_sent_status_is_answered_with_the_outcome(self):
        # Nova answers "completed" for an accepted event, whatever the
        # sender said (Neutron sends "failed" for a failed plug).
        response = self._post([self._event('network-vif-plugged',
                                           status='failed', tag='port')])
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual('completed', response.json['events'][0]['status'])

    def test_unknown_server_is_404_in_a_207(self):
        missing = {'uuid': str(uuidlib.uuid4())}
        response = self._post([self._event(tag=VOLUME_ID),
                               self._event(server=missing, tag=VOLUME_ID)])
        self.assertEqual(207, response.status_int, response.text)
        self.assertEqual([(200, 'completed'), (404, 'failed')],
                         [(e['code'], e['status'])
                          for e in response.json['events']])

    def test_all_failing_is_207_not_404(self):
        # Nova since bug 1855752: never a 404 for the whole request.
        response = self._post([self._event(server={'uuid': str(
            uuidlib.uuid4())}, tag=VOLUME_ID)])
        self.assertEqual(207, response.status_int, response.text)
        self.assertEqual(404, response.json['events'][0]['code'])

    def test_deleted_server_is_404(self):
        gone = self._server(host='host1')
        self.db.instance_destroy(gone['uuid'])
        response = self._post([self._event('network-changed', server=gone)])
        self.assertEqual(207, response.status_int, response.text)
        self.assertEqual(404, response.json['events'][0]['code'])

    def test_missing_tag_is_400_where_required(self):
        for name in ('volume-extended', 'power-update',
                     'accelerator-request-bound'):
            with self.subTest(name=name):
                response = self._post([self._event(name)])
                self.assertEqual(207, response.status_int, response.text)
                self.assertEqual((400, 'failed'), (
                    response.json['events'][0]['code'],
                    response.json['events'][0]['status']))
        for name in ('network-changed', 'volume-reimaged'):
            with self.subTest(name=name):
                response = self._post([self._event(name)])
                self.assertEqual(200, response.status_int, response.text)

    def test_server_without_host_is_422(self):
        unplaced = self._server(host=None, vm_state='shelved_offloaded')
        response = self._post([self._event('network-changed',
                                           server=unplaced)])
        self.assertEqual(207, response.status_int, response.text)
        self.assertEqual((422, 'failed'), (
            response.json['events'][0]['code'],
            response.json['events'][0]['status']))

    def test_host_down_still_accepts(self):
        # Nova casts to the host whatever its state; nothing here needs
        # the host at all.
        service = self.db.service_update('host1', 'nova-snapshot-compute',
                                         binary='nova-snapshot-compute')
        self.db.service_set_status(service['id'], {'forced_down': True})
        response = self._post([self._event(tag=VOLUME_ID)])
        self.assertEqual(200, response.status_int, response.text)

    def test_names_per_microversion(self):
        cases = [('network-vif-deleted', '2.1', '2.1'),
                 ('volume-extended', '2.51', '2.50'),
                 ('power-update', '2.76', '2.75'),
                 ('accelerator-request-bound', '2.82', '2.81'),
                 ('volume-reimaged', '2.93', '2.92')]
        for name, first, before in cases:
            with self.subTest(name=name):
                event = self._event(name, tag='POWER_ON')
                self.assertEqual(
                    200, self._post([event], version=first).status_int)
                if before != first:
                    self.assertEqual(
                        400, self._post([event], version=before).status_int)

    def test_bad_bodies_are_400(self):
        for body in ({}, {'events': []}, {'events': [{'name': 'x'}]},
                     {'events': [self._event(status='done')]},
                     {'events': [self._event(tag='t' * 256)]},
                     {'events': [self._event(extra=1)]},
                     {'events': [{'name': 'network-changed',
                                  'server_uuid': 'not-a-uuid'}]}):
            with self.subTest(body=body):
                response = self.request('POST', PATH, body, token=SERVICE,
                                        version='2.93')
                self.assertEqual(400, response.status_int, response.text)
                self.assertIn('badRequest', response.json)

    def test_policy_service_or_admin(self):
        event = [self._event('network-changed')]
        self.assertEqual(200, self._post(event, token=ADMIN).status_int)
        self.assertEqual(200, self._post(event).status_int)
        for roles in ('member,reader', 'reader', ''):
            with self.subTest(roles=roles):
                response = self._post(
                    event, token='alice:project-a:%s' % roles)
                self.assertEqual(403, response.status_int, response.text)

    def test_refused_caller_changes_nothing(self):
        response = self._post([self._event(tag=VOLUME_ID)],
                              token='alice:project-a:member,reader')
        self.assertEqual(403, response.status_int)
        self.assertEqual([], self.db.actions_get(self.server['uuid']))

    def test_project_id_in_the_url(self):
        response = self.request(
            'POST', '/v2.1/service-project/os-server-external-events',
            {'events': [self._event('network-changed')]}, token=SERVICE)
        self.assertEqual(200, response.status_int, response.text)

    def test_only_post(self):
        response = self.request('GET', PATH, token=SERVICE)
        self.assertEqual(405, response.status_int)
        self.assertEqual('POST', response.headers['Allow'])


class EventEffectsTest(_EventsTestCase):
    """What an accepted event does (compute/external_events)."""

    def _actions(self):
        return [a['action'] for a in self.db.actions_get(self.server['uuid'])]

    def test_volume_extended_records_the_action_as_nova(self):
        with self.assertLogs(external_events.LOG, logging.INFO) as logs:
            self._post([self._event(tag=VOLUME_ID)])
        self.assertEqual([external_events.EXTEND_VOLUME_ACTION],
                         self._actions())
        action = self.db.actions_get(self.server['uuid'])[0]
        self.assertEqual(('cinder', 'service-project'),
                         (action['user_id'], action['project_id']))
        self.assertIn('next hard reboot or start', logs.output[0])

    def test_volume_extended_of_another_volume_warns(self):
        with self.assertLogs(external_events.LOG, logging.WARNING) as logs:
            response = self._post([self._event(tag=str(uuidlib.uuid4()))])
        # Nova's API accepts it too; its compute host warns.
        self.assertEqual(200, response.status_int)
        self.assertIn('is not attached', logs.output[0])

    def test_other_events_record_no_action(self):
        for name in ('network-changed', 'network-vif-plugged',
                     'network-vif-unplugged', 'network-vif-deleted',
                     'power-update', 'accelerator-request-bound',
                     'volume-reimaged'):
            with self.subTest(name=name):
                response = self._post([self._event(name, tag='POWER_OFF')])
                self.assertEqual(200, response.status_int, response.text)
        self.assertEqual([], self._actions())
        self.assertEqual('active',
                         self.db.instance_get(self.server['uuid'])[
                             'vm_state'])

    def test_volume_reimaged_during_a_reimage_is_logged_as_expected(self):
        reimaging = self._server(
            host='host1', task_state=task_states.REBUILD_BLOCK_DEVICE_MAPPING,
            system_metadata={rebuild.REIMAGE_KEY: str(uuidlib.uuid4())})
        with self.assertLogs(external_events.LOG, logging.INFO) as logs:
            response = self._post([self._event(
                'volume-reimaged', server=reimaging, tag=VOLUME_ID)])
        self.assertEqual(200, response.status_int, response.text)
        self.assertIn('INFO', logs.output[0])
        self.assertIn('the rebuild polls the volume', logs.output[0])
        # Nothing about the rebuild changed: the poll owns it.
        self.assertEqual(task_states.REBUILD_BLOCK_DEVICE_MAPPING,
                         self.db.instance_get(reimaging['uuid'])[
                             'task_state'])

    def test_unexpected_volume_reimaged_warns(self):
        with self.assertLogs(external_events.LOG, logging.WARNING) as logs:
            self._post([self._event('volume-reimaged', tag=VOLUME_ID)])
        self.assertIn('not re-imaging', logs.output[0])
