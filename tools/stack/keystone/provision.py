"""Fill the test stack's Keystone: projects, users, roles, catalog, clouds.yaml.

Run by tools/stack/keystone-up.sh with the Keystone venv's Python (it has
keystoneauth1 and python-keystoneclient), after ``keystone-manage
bootstrap`` made the admin user, the roles and the identity endpoints.
Every call goes through one admin session: the ``openstack`` CLI costs
~2.5 s per call, this whole run well under a second when nothing changes.

Idempotent and converging: what exists with the wanted values is left
alone (no writes, so no token revocations on a warm run); a missing item
is created, an endpoint with another URL is updated, a user whose password
no longer matches gets the stack's one.

Input comes from the environment (names set in tools/stack/common.sh);
output is KEY=value lines for .stack/env on stdout.
"""

import argparse
import json
import os
import sys

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client

DOMAIN = 'default'
TIMEOUT = 30
ROLES = ('admin', 'member', 'reader', 'service')
PROJECTS = {
    'service': 'Service users of the test stack',
    'demo': 'Demo project of the test stack',
    'alt_demo': 'Second demo project (cross-project tests)',
}


def users(env):
    """name -> (password, project, roles) of every user the stack needs."""
    return {
        env['KEYSTONE_DEMO_USER']: (
            env['KEYSTONE_DEMO_PASSWORD'], 'demo', ('member',)),
        env['KEYSTONE_DEMO_READER_USER']: (
            env['KEYSTONE_DEMO_READER_PASSWORD'], 'demo', ('reader',)),
        env['KEYSTONE_ALT_DEMO_USER']: (
            env['KEYSTONE_ALT_DEMO_PASSWORD'], 'alt_demo', ('member',)),
        # Service users: admin to validate tokens and act for restart
        # clean-up, service so their tokens count as service tokens.
        env['NOVA_SNAPSHOT_SERVICE_USER']: (
            env['NOVA_SNAPSHOT_SERVICE_PASSWORD'], 'service',
            ('admin', 'service')),
        env['GLANCE_SERVICE_USER']: (
            env['GLANCE_SERVICE_PASSWORD'], 'service', ('admin', 'service')),
        env['CINDER_SERVICE_USER']: (
            env['CINDER_SERVICE_PASSWORD'], 'service', ('admin', 'service')),
    }


def services(env):
    """(name, type, description, url) of every catalog entry we own."""
    cinder = env['KEYSTONE_CINDER_URL'].rstrip('/') + '/%(project_id)s'
    return (
        ('nova-snapshot', 'compute', 'Compute (nova-snapshot)',
         env['KEYSTONE_COMPUTE_URL']),
        ('glance', 'image', 'Image service (Keystone-mode Glance)',
         env['KEYSTONE_GLANCE_URL']),
        # Both names of Cinder's v3 API: OSC and cinderclient look for
        # volumev3, keystoneauth's service-types authority for block-storage.
        ('cinder', 'block-storage', 'Block storage (Keystone-mode Cinder)',
         cinder),
        ('cinderv3', 'volumev3', 'Block storage v3 (Keystone-mode Cinder)',
         cinder),
    )


def password_session(url, user, password, project):
    auth = v3.Password(auth_url=url, username=user, password=password,
                       project_name=project, user_domain_id=DOMAIN,
                       project_domain_id=DOMAIN)
    return ks_session.Session(auth=auth, timeout=TIMEOUT)


class Provisioner(object):

    def __init__(self, env, log):
        self.env = env
        self.log = log
        self.url = env['KEYSTONE_URL']
        self.region = env['KEYSTONE_REGION']
        self.ks = ks_client.Client(
            session=password_session(self.url, 'admin',
                                     env['KEYSTONE_ADMIN_PASSWORD'], 'admin'),
            region_name=self.region, interface='public')

    def roles(self):
        have = {r.name: r for r in self.ks.roles.list()}
        for name in ROLES:
            if name not in have:
                have[name] = self.ks.roles.create(name)
                self.log('created role %s' % name)
        return have

    def projects(self):
        have = {p.name: p for p in self.ks.projects.list(domain=DOMAIN)}
        for name, description in PROJECTS.items():
            if name not in have:
                have[name] = self.ks.projects.create(
                    name, DOMAIN, description=description)
                self.log('created project %s' % name)
        return have

    def password_works(self, user, password, project):
        try:
            password_session(self.url, user, password, project).get_token()
            return True
        except ks_exc.Unauthorized:
            return False

    def users(self, projects, roles):
        have = {u.name: u for u in self.ks.users.list(domain=DOMAIN)}
        wanted = users(self.env)
        for name, (password, project, _) in wanted.items():
            user = have.get(name)
            if user is None:
                have[name] = self.ks.users.create(
                    name, domain=DOMAIN, password=password,
                    default_project=projects[project])
                self.log('created user %s' % name)
        # Grant before checking passwords: a project-scoped token needs a role.
        for project in {p for _, p, _ in wanted.values()}:
            pid = projects[project].id
            granted = {(a.user['id'], a.role['id'])
                       for a in self.ks.role_assignments.list(project=pid)
                       if hasattr(a, 'user')}
            for name, (_, p, role_names) in wanted.items():
                if p != project:
                    continue
                for role in role_names:
                    key = (have[name].id, roles[role].id)
                    if key not in granted:
                        self.ks.roles.grant(roles[role], user=have[name],
                                            project=pid)
                        self.log('granted %s on %s to %s' % (role, project,
                                                             name))
        for name, (password, project, _) in wanted.items():
            # A changed password in common.sh, or a user someone edited.
            # Only then is it written: a password change revokes the
            # user's tokens, which running tests hold.
            if not self.password_works(name, password, project):
                self.ks.users.update(have[name], password=password)
                self.log('reset the password of %s' % name)

    def catalog(self):
        have = {s.type: s for s in self.ks.services.list()}
        for name, stype, description, url in services(self.env):
            service = have.get(stype)
            if service is None:
                service = self.ks.services.create(
                    name, type=stype, description=description)
                self.log('created service %s (%s)' % (name, stype))
            endpoints = self.ks.endpoints.list(service=service,
                                               region=self.region)
            for iface in ('public', 'internal'):
                mine = [e for e in endpoints if e.interface == iface]
                if not mine:
                    self.ks.endpoints.create(service, url, interface=iface,
                                             region=self.region)
                    self.log('created %s endpoint %s %s' % (iface, stype,
                                                            url))
                    continue
                if mine[0].url != url:
                    self.ks.endpoints.update(mine[0], url=url)
                    self.log('moved %s endpoint %s to %s' % (iface, stype,
                                                             url))
                for extra in mine[1:]:
                    self.ks.endpoints.delete(extra)
                    self.log('deleted duplicate %s endpoint %s' % (iface,
                                                                   stype))

    def run(self):
        roles = self.roles()
        projects = self.projects()
        self.users(projects, roles)
        self.catalog()
        return projects


def clouds_yaml(env):
    """clouds.yaml text: one cloud per user the tests and the demo use."""
    clouds = (
        ('admin', 'admin', env['KEYSTONE_ADMIN_PASSWORD'], 'admin'),
        ('demo', env['KEYSTONE_DEMO_USER'], env['KEYSTONE_DEMO_PASSWORD'],
         'demo'),
        ('demo-reader', env['KEYSTONE_DEMO_READER_USER'],
         env['KEYSTONE_DEMO_READER_PASSWORD'], 'demo'),
        ('alt_demo', env['KEYSTONE_ALT_DEMO_USER'],
         env['KEYSTONE_ALT_DEMO_PASSWORD'], 'alt_demo'),
        ('nova-snapshot', env['NOVA_SNAPSHOT_SERVICE_USER'],
         env['NOVA_SNAPSHOT_SERVICE_PASSWORD'], 'service'),
    )
    q = json.dumps  # a JSON string is a valid YAML scalar
    lines = ['# Written by tools/stack/keystone-up.sh. Use with',
             '#   OS_CLIENT_CONFIG_FILE=<this file> openstack --os-cloud demo ...',
             'clouds:']
    for cloud, user, password, project in clouds:
        lines += [
            '  %s:' % q(cloud),
            '    auth:',
            '      auth_url: %s' % q(env['KEYSTONE_URL']),
            '      username: %s' % q(user),
            '      password: %s' % q(password),
            '      project_name: %s' % q(project),
            '      user_domain_name: Default',
            '      project_domain_name: Default',
            '    region_name: %s' % q(env['KEYSTONE_REGION']),
            '    identity_api_version: 3',
            '    interface: public',
        ]
    return '\n'.join(lines) + '\n'


def write_private(path, text):
    """Write text to path with mode 600 (it holds passwords)."""
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clouds-yaml', required=True)
    args = parser.parse_args(argv)
    env = os.environ

    def log(msg):
        print('provision: %s' % msg, file=sys.stderr)

    projects = Provisioner(env, log).run()
    write_private(args.clouds_yaml, clouds_yaml(env))
    for name, key in (('demo', 'KEYSTONE_DEMO_PROJECT_ID'),
                      ('alt_demo', 'KEYSTONE_ALT_DEMO_PROJECT_ID'),
                      ('service', 'KEYSTONE_SERVICE_PROJECT_ID')):
        print('%s=%s' % (key, projects[name].id))
    return 0


if __name__ == '__main__':
    sys.exit(main())
