"""The qemu-img helper: argv, limits, timeouts, errors (real qemu-img)."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest
from unittest import mock

from oslo_concurrency import processutils

from nova_snapshot import exception
from nova_snapshot.virt.libvirt import qemu_img

MiB = 1024 ** 2


class QemuImgTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ns-qemu-img-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def raw(self, name, data):
        with open(self.path(name), 'wb') as f:
            f.write(data)
        return self.path(name)

    def test_convert_info_resize_round_trip(self):
        src = self.raw('src.raw', b'\x07' * MiB)
        dest = self.path('dest.qcow2')
        qemu_img.convert(src, 'raw', dest, 'qcow2')
        info = qemu_img.info(dest, 'qcow2')
        self.assertEqual(('qcow2', MiB), (info['format'],
                                          info['virtual-size']))
        qemu_img.resize(dest, 'qcow2', 4 * MiB)
        self.assertEqual(4 * MiB, qemu_img.info(dest, 'qcow2')[
            'virtual-size'])
        back = self.path('back.raw')
        qemu_img.convert(dest, 'qcow2', back, 'raw')
        with open(back, 'rb') as f:
            self.assertEqual(b'\x07' * MiB, f.read(MiB))

    def test_every_call_has_a_format_limits_and_a_timeout(self):
        src = self.raw('src.raw', b'\0' * MiB)
        dest = self.path('dest.qcow2')
        with mock.patch.object(processutils, 'execute',
                               return_value=('{}', '')) as execute:
            qemu_img.info(src, 'raw')
            qemu_img.convert(src, 'raw', dest, 'qcow2')
            qemu_img.resize(dest, 'qcow2', 2 * MiB)
            qemu_img.map_nbd('/run/x.sock', 'vda')
        argvs = [c.args for c in execute.call_args_list]
        self.assertEqual([
            ('qemu-img', 'info', '-f', 'raw', '--output=json', src),
            ('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', src, dest),
            ('qemu-img', 'resize', '-f', 'qcow2', dest, str(2 * MiB)),
            ('qemu-img', 'map', '--output=json', '--image-opts',
             'driver=nbd,server.type=unix,server.path=/run/x.sock,'
             'export=vda')], argvs)
        limits = [c.kwargs['prlimit'] for c in execute.call_args_list]
        self.assertEqual([qemu_img.INFO_LIMITS, qemu_img.CONVERT_LIMITS,
                          qemu_img.CONVERT_LIMITS, qemu_img.INFO_LIMITS],
                         limits)
        self.assertEqual(1024 ** 3, qemu_img.INFO_LIMITS.address_space)
        self.assertEqual(30, qemu_img.INFO_LIMITS.cpu_time)
        for call in execute.call_args_list:
            self.assertGreater(call.kwargs['timeout'], 0)
            self.assertNotIn('shell', call.kwargs)

    def test_image_opts_escape_commas(self):
        self.assertEqual(
            'driver=nbd,server.type=unix,server.path=/a,,b/s,export=v,,da',
            qemu_img.nbd_unix_image_opts('/a,b/s', 'v,da'))

    def test_refuses_relative_paths_and_unknown_formats(self):
        for call in (lambda: qemu_img.info('disk', 'raw'),
                     lambda: qemu_img.info('-U', 'raw'),
                     lambda: qemu_img.info('nbd:localhost:1', 'raw'),
                     lambda: qemu_img.info('/x', 'vmdk'),
                     lambda: qemu_img.info('/x', None),
                     lambda: qemu_img.convert('/a', 'raw', 'b', 'qcow2'),
                     lambda: qemu_img.convert('/a', 'raw', '/b', 'vmdk'),
                     lambda: qemu_img.resize('/a', 'qcow2', 0),
                     lambda: qemu_img.map_nbd('sock', 'vda')):
            with mock.patch.object(processutils, 'execute') as execute:
                self.assertRaises(exception.QemuImgFailed, call)
            self.assertFalse(execute.called)

    def test_failure_names_the_command_and_stderr(self):
        with self.assertRaises(exception.QemuImgFailed) as cm:
            qemu_img.info(self.path('missing'), 'qcow2')
        message = cm.exception.format_message()
        self.assertTrue(message.startswith('qemu-img info failed: exit 1'),
                        message)
        self.assertIn('No such file', message)

    def test_limits_really_apply(self):
        # 16 MiB of address space is too little for qemu-img (7.2 needs
        # about 32): the limit is enforced on the child, and its death is
        # reported as such.
        small = processutils.ProcessLimits(address_space=16 * MiB)
        src = self.raw('src.raw', b'\0' * MiB)
        with mock.patch.object(qemu_img, 'INFO_LIMITS', small):
            with self.assertRaises(exception.QemuImgFailed) as cm:
                qemu_img.info(src, 'raw')
        self.assertIn('qemu-img info failed', str(cm.exception))
        self.assertIn('process limits', str(cm.exception))
        # The same call without that limit works.
        self.assertEqual('raw', qemu_img.info(src, 'raw')['format'])

    def test_timeout_kills_the_process(self):
        # A stand-in for a qemu-img that never answers.
        fake_bin = os.path.join(self.tmp, 'bin')
        os.mkdir(fake_bin)
        pid_file = self.path('pid')
        script = os.path.join(fake_bin, 'qemu-img')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\necho $$ > %s\nexec sleep 60\n' % pid_file)
        os.chmod(script, 0o755)
        env_path = fake_bin + os.pathsep + os.environ.get('PATH', '')
        started = time.monotonic()
        with mock.patch.dict(os.environ, {'PATH': env_path}):
            with mock.patch.object(qemu_img, 'INFO_TIMEOUT', 1):
                with self.assertRaises(exception.QemuImgFailed) as cm:
                    qemu_img.info(self.raw('x', b'x'), 'raw')
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn('no answer within 1 s', str(cm.exception))
        with open(pid_file) as f:
            pid = int(f.read())
        # Killed and reaped: no such process any more.
        self.assertRaises(ProcessLookupError, os.kill, pid, 0)

    def test_cpu_limit_kills(self):
        # A stand-in that spins: the CPU limit (1 s) stops it long before
        # the wall-clock timeout.
        fake_bin = os.path.join(self.tmp, 'bin')
        os.mkdir(fake_bin)
        script = os.path.join(fake_bin, 'qemu-img')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\nwhile :; do :; done\n')
        os.chmod(script, 0o755)
        env_path = fake_bin + os.pathsep + os.environ.get('PATH', '')
        limits = processutils.ProcessLimits(cpu_time=1)
        started = time.monotonic()
        with mock.patch.dict(os.environ, {'PATH': env_path}), \
                mock.patch.object(qemu_img, 'INFO_LIMITS', limits), \
                mock.patch.object(qemu_img, 'INFO_TIMEOUT', 30):
            with self.assertRaises(exception.QemuImgFailed) as cm:
                qemu_img.info(self.raw('x', b'x'), 'raw')
        self.assertLess(time.monotonic() - started, 20)
        self.assertIn('killed by signal', str(cm.exception))

    def test_no_other_module_runs_qemu_img(self):
        # The helper is the only place the command line is built.
        root = os.path.dirname(os.path.dirname(qemu_img.__file__))
        root = os.path.dirname(root)   # nova_snapshot/
        offenders = []
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = os.path.join(dirpath, name)
                if path == qemu_img.__file__.replace('.pyc', '.py'):
                    continue
                with open(path) as f:
                    text = f.read()
                if "'qemu-img'" in text or '"qemu-img"' in text:
                    offenders.append(os.path.relpath(path, root))
        self.assertEqual([], offenders)


class RealFilesTest(unittest.TestCase):

    def test_allocated_bytes(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b'x' * 8192)
            f.flush()
            self.assertGreaterEqual(qemu_img.allocated_bytes(f.name), 8192)
            subprocess.run(['truncate', '-s', '1G', f.name], check=True)
            self.assertLess(qemu_img.allocated_bytes(f.name), 1024 ** 2)
