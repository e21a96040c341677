"""Helpers for functional tests: the real services tools/stack/start.sh runs.

Functional tests fail (never skip) when the stack is missing: a green run
must mean the code really talked to Glance, RabbitMQ, PostgreSQL and libvirt.
"""

import os
import unittest
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
STACK_ENV = os.path.join(REPO_ROOT, '.stack', 'env')
REQUIRED_KEYS = ('GLANCE_URL', 'TRANSPORT_URL', 'PG_URL', 'LIBVIRT_URI',
                 'STACK_DIR')


class StackMissing(AssertionError):
    """The real services are not there; a functional test cannot pass."""


def read_env(path=STACK_ENV):
    """Return .stack/env as a dict; raise StackMissing if absent/incomplete."""
    if not os.path.exists(path):
        raise StackMissing('%s does not exist: run tools/stack/start.sh '
                           '(or tools/run-tests.sh) first' % path)
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#') or '=' not in line:
                continue
            key, value = line.split('=', 1)
            if key.startswith('export '):
                key = key[len('export '):]
            env[key.strip()] = value.strip().strip('"\'')
    missing = [k for k in REQUIRED_KEYS if not env.get(k)]
    if missing:
        raise StackMissing('%s lacks %s: re-run tools/stack/start.sh'
                           % (path, ', '.join(missing)))
    return env


def check_glance(url, timeout=5):
    """Raise StackMissing unless Glance answers its healthcheck."""
    try:
        with urllib.request.urlopen(url.rstrip('/') + '/healthcheck',
                                    timeout=timeout) as resp:
            if resp.status == 200:
                return
            status = resp.status
    except (urllib.error.URLError, OSError) as exc:
        status = exc
    raise StackMissing('Glance at %s is not healthy (%s): run '
                       'tools/stack/start.sh' % (url, status))


class StackTestCase(unittest.TestCase):
    """Base class: ``self.stack`` is the dict of .stack/env."""

    stack = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack = read_env()
