"""The option and policy lists that the sample generators read."""

import os
import subprocess
import sys
import tempfile
import unittest

from nova_snapshot.conf import opts
from nova_snapshot import policies


class ConfigOptionsTest(unittest.TestCase):

    def test_every_option_is_documented(self):
        groups = dict(opts.list_opts())
        self.assertIn('libvirt', groups)
        for group, group_opts in groups.items():
            for opt in group_opts:
                self.assertTrue(opt.help, '%s.%s has no help' % (group, opt.name))

    def test_generator_writes_the_sample(self):
        out = os.path.join(tempfile.mkdtemp(), 'sample.conf')
        subprocess.run([os.path.join(os.path.dirname(sys.executable),
                                     'oslo-config-generator'),
                        '--namespace', 'nova_snapshot', '--output-file', out],
                       check=True, capture_output=True)
        with open(out) as sample:
            text = sample.read()
        self.assertIn('[libvirt]', text)
        self.assertIn('#live_snapshot = true', text)


class PolicyDefaultsTest(unittest.TestCase):

    def test_rules_are_documented_and_unique(self):
        rules = list(policies.list_rules())
        names = [rule.name for rule in rules]
        self.assertEqual(len(names), len(set(names)))
        self.assertIn('os_compute_api:servers:create_image', names)
        self.assertIn('os_compute_api:servers:create_image:allow_volume_backed',
                      names)
        for rule in rules:
            if hasattr(rule, 'operations'):
                self.assertTrue(rule.description, rule.name)
                self.assertTrue(rule.operations, rule.name)

    def test_generator_writes_the_sample(self):
        out = os.path.join(tempfile.mkdtemp(), 'policy.yaml')
        subprocess.run([os.path.join(os.path.dirname(sys.executable),
                                     'oslopolicy-sample-generator'),
                        '--namespace', 'nova_snapshot', '--output-file', out],
                       check=True, capture_output=True)
        with open(out) as sample:
            self.assertIn('os_compute_api:servers:create_image', sample.read())
