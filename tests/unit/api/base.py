"""An API test case: the real stack over FakeComputeAPI, in process.

Requests are authenticated as in production (keystone strategy, the API's
own KeystoneContext) with a stand-in for keystonemiddleware
(:mod:`fake_auth`) whose tokens say who the caller is, so a test can act as
any persona, including one with no role at all.
"""

import json
import unittest

from oslo_config import cfg
import webob

from nova_snapshot.api import deploy
from nova_snapshot import conf as nova_conf
from tests.unit.api import fake_auth
from tests.unit.api import fakes


class APITestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        nova_conf.register_opts(self.conf)
        self.conf([], project='nova-snapshot', default_config_files=[])
        self.conf.set_override('response_validation', 'error', group='api')
        self.conf.set_override('api_endpoint', 'http://glance.test:9292/',
                               group='glance')
        self.compute = fakes.FakeComputeAPI()
        self.app = deploy.loadapp(self.conf, compute_api=self.compute,
                                  auth_protocol=fake_auth.FakeAuthToken)

    def request(self, method, path, body=None, token='alice:project-a',
                version=None, roles=None, raw=None):
        if roles is not None:
            token = fake_auth.token(*token.split(':'), roles=roles)
        headers = {'X-Auth-Token': token}
        if version is not None:
            headers['OpenStack-API-Version'] = 'compute %s' % version
        req = webob.Request.blank(path, method=method, headers=headers)
        if body is not None or raw is not None:
            req.content_type = 'application/json'
            req.body = raw if raw is not None else json.dumps(body).encode()
        return req.get_response(self.app)
