"""tools/tempest: the lists tempest runs with and the tempest.conf it gets.

The run itself (tools/tempest/run.py against the real stack) is part of
tools/run-tests.sh; these check the pieces that need nothing running.
"""

import configparser
import importlib.util
import os
import tempfile
import unittest

TEMPEST_TOOLS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), 'tools', 'tempest')


def load(name):
    # The tools are scripts, not a package: load one under a name that
    # shadows nothing on sys.path.
    spec = importlib.util.spec_from_file_location(
        'tempest_tools_' + name, os.path.join(TEMPEST_TOOLS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


accounts = load('accounts')
config = load('config')
lists = load('lists')


def write_list(text):
    fd, path = tempfile.mkstemp(suffix='.txt')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    return path


class ListsTest(unittest.TestCase):

    def test_committed_lists_are_well_formed(self):
        include = lists.read_list(lists.INCLUDE_LIST)
        skip = lists.read_list(lists.SKIP_LIST)
        self.assertEqual([], lists.problems(include, skip))
        self.assertIn(r'^tempest\.api\.compute\.images\.',
                      [regex for regex, _ in include])
        for regex, reason in skip:
            self.assertTrue(regex.startswith(r'^tempest\.api\.compute\.'),
                            regex)

    def test_comment_is_the_reason(self):
        path = write_list('# heading\n\n^a\\.b  # needs reboot\n^c\n')
        self.assertEqual([('^a\\.b', 'needs reboot'), ('^c', '')],
                         lists.read_list(path))

    def test_entry_without_reason_or_regex_is_a_problem(self):
        found = lists.problems([('^x(', '')], [('^y', ''), ('^z', 'why')])
        self.assertEqual(2, len(found))
        self.assertIn('^x(: not a regex', found[0])
        self.assertEqual('^y: no reason given', found[1])

    def test_apply_selects_and_reports_what_each_entry_takes_out(self):
        ids = ['t.images.A.test_1', 't.images.A.test_2', 't.servers.B.test_3',
               't.other.C.test_4']
        selected, taken = lists.apply(
            ids, [(r'^t\.images\.', ''), (r'^t\.servers\.', '')],
            [(r'\.test_2$', 'r'), (r'^t\.other\.', 'r')])
        self.assertEqual(['t.images.A.test_1', 't.servers.B.test_3'], selected)
        self.assertEqual({r'\.test_2$': ['t.images.A.test_2'],
                          r'^t\.other\.': []}, taken)


class ConfigTest(unittest.TestCase):

    FACTS = {
        'identity_uri': 'http://127.0.0.1:5000/v3', 'region': 'RegionOne',
        'accounts_file': '/x/accounts.yaml', 'lock_path': '/x/lock',
        'log_dir': '/x/logs', 'image_ref': 'img-1', 'image_ref_alt': 'img-2',
        'flavor_ref': '2', 'flavor_ref_alt': '3',
    }

    def parse(self):
        conf = configparser.ConfigParser(interpolation=None)
        conf.read_string(config.render(self.FACTS))
        return conf

    def test_pre_provisioned_credentials(self):
        conf = self.parse()
        self.assertEqual('false', conf['auth']['use_dynamic_credentials'])
        self.assertEqual('/x/accounts.yaml',
                         conf['auth']['test_accounts_file'])

    def test_microversions_and_stack_facts(self):
        conf = self.parse()
        self.assertEqual('2.1', conf['compute']['min_microversion'])
        self.assertEqual('2.104', conf['compute']['max_microversion'])
        self.assertEqual('img-2', conf['compute']['image_ref_alt'])
        self.assertEqual('3', conf['compute']['flavor_ref_alt'])
        self.assertEqual('http://127.0.0.1:5000/v3',
                         conf['identity']['uri_v3'])

    def test_features_the_api_lacks_are_off(self):
        features = self.parse()['compute-feature-enabled']
        for name in ('resize', 'rescue', 'change_password',
                     'live_migration', 'interface_attach'):
            self.assertEqual('false', features[name], name)
        for name in ('snapshot', 'pause', 'suspend', 'console_output',
                     'shelve'):
            self.assertEqual('true', features[name], name)


class AccountsTest(unittest.TestCase):

    def test_members_first_then_readers_then_admins(self):
        wanted = accounts.wanted_accounts()
        roles = [role for _, _, role in wanted]
        self.assertEqual(sorted(roles, key=['member', 'reader',
                                            'admin'].index), roles)
        # Every member has a reader in its project (tempest's
        # project_reader must share the primary's project).
        members = {p for _, p, r in wanted if r == 'member'}
        readers = {p for _, p, r in wanted if r == 'reader'}
        self.assertEqual(members, readers)
        # Two classes at a time, each holding a primary and an alt member.
        self.assertGreaterEqual(len(members), 4)
        self.assertEqual(len(wanted), len({u for u, _, _ in wanted}))

    def test_passwords_of_an_earlier_file_are_kept(self):
        path = os.path.join(tempfile.mkdtemp(), 'etc', 'accounts.yaml')
        accounts.write_private(path, [{'username': 'u1', 'password': 'p1'}])
        self.assertEqual({'u1': 'p1'}, accounts.load_passwords(path))
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)
        self.assertEqual({}, accounts.load_passwords(path + '.missing'))
