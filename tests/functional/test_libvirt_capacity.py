"""LibvirtDriver.get_available_resource against the real libvirtd: what a
compute host reports with its heartbeat is this machine's."""

import os
import shutil
import tempfile
import unittest

import libvirt

from nova_snapshot import conf as ns_conf
from nova_snapshot.virt.libvirt import driver as libvirt_driver
from tests.functional.fixtures import stack

GiB = 1024 ** 3
NODES = '/sys/devices/system/node'


def _numa_memory_kib():
    total = 0
    for name in sorted(os.listdir(NODES)) if os.path.isdir(NODES) else ():
        path = os.path.join(NODES, name, 'meminfo')
        if name.startswith('node') and os.path.exists(path):
            with open(path) as meminfo:
                total += int(next(line for line in meminfo
                                  if 'MemTotal:' in line).split()[-2])
    return total


def _meminfo_kib():
    with open('/proc/meminfo') as meminfo:
        return int(next(line for line in meminfo
                        if line.startswith('MemTotal:')).split()[1])


class LibvirtCapacityTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.uri = stack.read_stack_env().get('LIBVIRT_URI', 'qemu:///system')
        self.tmp = tempfile.mkdtemp(prefix='nova-snapshot-capacity-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        conf = ns_conf.new_conf([])
        conf.set_override('instances_path', self.tmp)
        conf.set_override('connection_uri', self.uri, group='libvirt')
        self.driver = libvirt_driver.LibvirtDriver(conf, image_api=None)
        self.driver.init_host('capacity-test')

    def test_reports_this_machine(self):
        got = self.driver.get_available_resource()
        # The machine's own numbers, read without libvirt.
        self.assertEqual(os.cpu_count(), got['vcpus'])
        # libvirt counts the memory of the NUMA nodes (on this VM less
        # than /proc/meminfo's MemTotal, which includes memory no node
        # lists); Nova's driver reports the same number.
        total_kib = _numa_memory_kib() or _meminfo_kib()
        self.assertAlmostEqual(total_kib // 1024, got['memory_mb'],
                               delta=total_kib // 1024 // 50)
        stats = os.statvfs(self.tmp)
        self.assertEqual(stats.f_blocks * stats.f_frsize // GiB,
                         got['local_gb'])
        self.assertGreater(got['local_gb'], 0)
        conn = libvirt.open(self.uri)
        try:
            self.assertEqual(conn.getHostname(), got['hypervisor_hostname'])
            self.assertEqual(conn.getInfo()[1], got['memory_mb'])
        finally:
            conn.close()
