"""The reconciler's side of quiesce and of the libvirt driver: asking the
guest agent, releasing stale freezes, listing this service's domains."""

import json
import os
import shutil
import tempfile
import unittest
from unittest import mock

import libvirt

from nova_snapshot.compute import power_state
from nova_snapshot import conf as ns_conf
from nova_snapshot.virt.libvirt import driver as libvirt_driver
from nova_snapshot.virt.libvirt import quiesce as vquiesce
from tests.unit.virt.test_quiesce import libvirt_error

UUID = '11111111-2222-3333-4444-555555555555'
AGENT_XML = """<domain><devices>
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'
 state='%s'/></channel>
<serial type='file'><source path='%s/console.log'/></serial>
</devices></domain>"""


def domain(state=libvirt.VIR_DOMAIN_RUNNING, agent='connected',
           instance_dir='/nowhere', uuid=UUID, name=None):
    dom = mock.Mock()
    dom.UUIDString.return_value = uuid
    dom.name.return_value = name or 'instance-' + uuid
    dom.state.return_value = (state, 1)
    dom.XMLDesc.return_value = AGENT_XML % (agent, instance_dir)
    dom.fsThaw.return_value = 1
    return dom


class FreezeStatusTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='ns-quiesce-')
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        agent = mock.patch('libvirt_qemu.qemuAgentCommand')
        self.agent = agent.start()
        self.addCleanup(agent.stop)

    def answer(self, status):
        self.agent.return_value = json.dumps({'return': status})

    def test_status_is_asked_with_the_timeout(self):
        self.answer('frozen')
        dom = domain()
        self.assertEqual(vquiesce.FROZEN, vquiesce.fsfreeze_status(dom, 3))
        self.agent.assert_called_once_with(
            dom, '{"execute": "guest-fsfreeze-status"}', 3, 0)

    def test_nobody_to_ask(self):
        # Paused (the agent would not answer), no connected agent, errors.
        self.answer('frozen')
        self.assertIsNone(vquiesce.fsfreeze_status(
            domain(state=libvirt.VIR_DOMAIN_PAUSED), 3))
        self.assertIsNone(vquiesce.fsfreeze_status(
            domain(agent='disconnected'), 3))
        self.assertFalse(self.agent.called)
        self.agent.side_effect = libvirt_error(
            libvirt.VIR_ERR_AGENT_UNRESPONSIVE)
        self.assertIsNone(vquiesce.fsfreeze_status(domain(), 3))
        self.agent.side_effect = None
        self.agent.return_value = 'not json'
        self.assertIsNone(vquiesce.fsfreeze_status(domain(), 3))

    def test_a_frozen_guest_without_token_is_thawed(self):
        self.answer('frozen')
        dom = domain()
        done = vquiesce.release_stale_freeze(dom, UUID, self.dir, 4)
        self.assertEqual(1, len(done))
        dom.fsThaw.assert_called_once_with(None, 0)
        dom.agentSetResponseTimeout.assert_called_once_with(4, 0)

    def test_a_thawed_guest_is_left_alone(self):
        self.answer('thawed')
        dom = domain()
        self.assertEqual([], vquiesce.release_stale_freeze(dom, UUID,
                                                           self.dir, 4))
        self.assertFalse(dom.fsThaw.called)

    def test_a_pause_token_resumes_and_goes(self):
        with mock.patch('subprocess.Popen') as popen:
            popen.return_value.pid = 1
            vquiesce.arm('qemu:///system', UUID, self.dir, vquiesce.PAUSE,
                         600)
        dom = domain(state=libvirt.VIR_DOMAIN_PAUSED)
        self.assertEqual(['resumed vcpus'], vquiesce.release_stale_freeze(
            dom, UUID, self.dir, 4))
        dom.resume.assert_called_once_with()
        self.assertFalse(vquiesce.is_armed(self.dir, vquiesce.PAUSE))
        # The agent of a paused guest is not asked.
        self.assertFalse(self.agent.called)

    def test_a_guest_paused_without_token_stays_paused(self):
        dom = domain(state=libvirt.VIR_DOMAIN_PAUSED)
        self.assertEqual([], vquiesce.release_stale_freeze(dom, UUID,
                                                           self.dir, 4))
        self.assertFalse(dom.resume.called)

    def test_no_domain_only_removes_tokens(self):
        with mock.patch('subprocess.Popen') as popen:
            popen.return_value.pid = 1
            vquiesce.arm('qemu:///system', UUID, self.dir, vquiesce.FREEZE,
                         600)
        self.assertEqual([], vquiesce.release_stale_freeze(None, UUID,
                                                           self.dir, 4))
        self.assertFalse(vquiesce.is_armed(self.dir, vquiesce.FREEZE))


class ListDomainsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ns-list-domains-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        conf = ns_conf.new_conf([])
        conf.set_override('instances_path', os.path.join(self.tmp, 'mine'))
        with mock.patch.object(libvirt_driver.vhost, 'Host') as host:
            self.driver = libvirt_driver.LibvirtDriver(conf, None)
        self.host = host.return_value
        self.host.power_state.return_value = power_state.RUNNING
        self.mine = os.path.join(self.tmp, 'mine')

    def test_only_this_services_domains(self):
        ours = domain(instance_dir=os.path.join(self.mine, UUID))
        other_uuid = '22222222-2222-3333-4444-555555555555'
        other_service = domain(uuid=other_uuid, instance_dir=os.path.join(
            self.tmp, 'theirs', other_uuid))
        third = '33333333-2222-3333-4444-555555555555'
        not_named_ours = domain(uuid=third, name='my-test-vm',
                                instance_dir=os.path.join(self.mine, third))
        # A prefix of our directory is not our directory.
        fourth = '44444444-2222-3333-4444-555555555555'
        lookalike = domain(uuid=fourth, instance_dir=self.mine + '-x')
        self.host.get_connection.return_value.listAllDomains.return_value = [
            ours, other_service, not_named_ours, lookalike]
        self.assertEqual([{'uuid': UUID, 'name': 'instance-' + UUID,
                           'power_state': power_state.RUNNING}],
                         self.driver.list_domains())

    def test_a_domain_undefined_while_listed_is_skipped(self):
        ours = domain(instance_dir=os.path.join(self.mine, UUID))
        ours.XMLDesc.side_effect = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN)
        self.host.get_connection.return_value.listAllDomains.return_value = [
            ours]
        self.assertEqual([], self.driver.list_domains())


if __name__ == '__main__':
    unittest.main()
