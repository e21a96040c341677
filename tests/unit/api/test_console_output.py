"""os-getConsoleOutput's answers to what the compute side raises: Nova's
404, 409 and 501, and a 503 for an outage (the compute service or its
hypervisor, e.g. libvirtd restarting), never a 500."""

from unittest import mock

from nova_snapshot import exception
from tests.unit.api import base

BODY = {'os-getConsoleOutput': {'length': None}}


class ConsoleOutputTest(base.APITestCase):

    def setUp(self):
        super().setUp()
        self.server = self.compute.add_instance('project-a')
        self.path = '/v2.1/servers/%s/action' % self.server['uuid']

    def answer(self, error):
        with mock.patch.object(self.compute, 'get_console_output',
                               side_effect=error):
            return self.request('POST', self.path, BODY)

    def test_no_guest_on_the_host_is_nova_404(self):
        response = self.answer(exception.InstanceNotFound(
            instance_id=self.server['uuid']))
        self.assertEqual(404, response.status_int, response.text)
        self.assertIn(self.server['uuid'],
                      response.json['itemNotFound']['message'])

    def test_no_host_yet_is_409(self):
        response = self.answer(exception.InstanceInvalidState(
            attr='task_state', instance_uuid=self.server['uuid'],
            state='scheduling', method='getConsoleOutput'))
        self.assertEqual(409, response.status_int, response.text)
        self.assertIn('conflictingRequest', response.json)

    def test_hypervisor_unreachable_is_a_503_to_retry(self):
        response = self.answer(exception.HypervisorUnavailable(
            reason='cannot connect to qemu:///system'))
        self.assertEqual(503, response.status_int, response.text)
        message = response.json['serviceUnavailable']['message']
        self.assertIn('hypervisor', message)
        # The hypervisor's own words stay in the log.
        self.assertNotIn('qemu:///system', message)

    def test_compute_service_unreachable_is_a_503(self):
        response = self.answer(exception.ComputeServiceUnavailable(
            host='host1', reason='no answer'))
        self.assertEqual(503, response.status_int, response.text)

    def test_control_characters_are_dropped_as_nova_does(self):
        with mock.patch.object(self.compute, 'get_console_output',
                               return_value='a\x00b\x1bc\r\nd\te\n'):
            response = self.request('POST', self.path, BODY)
        self.assertEqual(200, response.status_int, response.text)
        self.assertEqual('abc\nd\te\n', response.json['output'])
