"""Paste filter for the test Glance: an identity for header-less requests.

The test Glance runs without Keystone. Clients that know this (our
GlanceAPI in ``identity_headers`` mode) send the headers keystonemiddleware
would set; the ``context`` filter after this one trusts them. Clients that
send nothing (Cinder under noauth, curl) would otherwise get Glance's
read-only anonymous context, so they get a fixed service identity instead.
"""


class DefaultIdentity(object):

    def __init__(self, app, conf):
        self.app = app
        self.roles = conf.get('roles', 'admin,member,reader')
        self.project_id = conf.get('project_id', 'service')
        self.user_id = conf.get('user_id', 'noauth-service')

    def __call__(self, environ, start_response):
        if environ.get('HTTP_X_IDENTITY_STATUS') != 'Confirmed':
            environ['HTTP_X_IDENTITY_STATUS'] = 'Confirmed'
            environ['HTTP_X_ROLES'] = self.roles
            environ['HTTP_X_PROJECT_ID'] = self.project_id
            environ['HTTP_X_USER_ID'] = self.user_id
        return self.app(environ, start_response)


def filter_factory(global_conf, **local_conf):
    conf = dict(global_conf, **local_conf)

    def _filter(app):
        return DefaultIdentity(app, conf)
    return _filter
