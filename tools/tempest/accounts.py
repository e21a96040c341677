"""tempest's pre-provisioned accounts: made in Keystone, listed for tempest.

tempest's dynamic credentials create a project per test class and, with
``[service_available] neutron = true``, clean up its security group
through the network API, which this stack does not have (the class then
errors in tearDownClass and its project is left behind). Pre-provisioned
credentials create nothing at run time: tempest locks one account of the
accounts file per persona while a class runs.

What tempest asks for (tempest.lib.common.preprov_creds): ``primary`` is an
account with role ``member`` in a project, ``project_reader`` an account
with role ``reader`` *in the primary's project*, ``alt`` any free account
that is not an admin, ``admin`` an account with role ``admin``. So each
project here has one member and one reader, the members are listed first
(an ``alt`` then lands on a member of another project, never on a reader),
and there are enough projects for two classes at a time that each hold a
primary and an alt.

Idempotent: an existing user, project or grant is left alone; a user whose
password no longer works gets the one of the accounts file (kept between
runs, mode 600).
"""

import json
import os
import secrets

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
import yaml

DOMAIN_ID = 'default'
DOMAIN_NAME = 'Default'
TIMEOUT = 30
PREFIX = 'tempest-ns'
# Two classes at a time each hold a member (primary) and another member
# (alt): four projects would do; one more so that an alt never has to
# fall back to a reader.
PROJECTS = 5
ADMINS = 2


def wanted_accounts():
    """[(username, project, role)] in the order tempest should try them."""
    accounts = []
    for n in range(1, PROJECTS + 1):
        accounts.append(('%s-member-%d' % (PREFIX, n),
                         '%s-%d' % (PREFIX, n), 'member'))
    for n in range(1, PROJECTS + 1):
        accounts.append(('%s-reader-%d' % (PREFIX, n),
                         '%s-%d' % (PREFIX, n), 'reader'))
    for n in range(1, ADMINS + 1):
        accounts.append(('%s-admin-%d' % (PREFIX, n),
                         '%s-admin' % PREFIX, 'admin'))
    return accounts


def admin_credentials(clouds_yaml, cloud='admin'):
    """(auth_url, username, password, project) of a cloud in clouds.yaml."""
    with open(clouds_yaml) as f:
        auth = yaml.safe_load(f)['clouds'][cloud]['auth']
    return (auth['auth_url'], auth['username'], auth['password'],
            auth['project_name'])


def password_session(auth_url, username, password, project):
    auth = v3.Password(auth_url=auth_url, username=username,
                       password=password, project_name=project,
                       user_domain_id=DOMAIN_ID, project_domain_id=DOMAIN_ID)
    return ks_session.Session(auth=auth, timeout=TIMEOUT)


def load_passwords(path):
    """username -> password of an accounts file written before, if any."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {a['username']: a['password'] for a in yaml.safe_load(f) or []}


class Identity(object):
    """The few Keystone v3 calls this needs, through one admin session."""

    def __init__(self, session, auth_url):
        self.session = session
        self.url = auth_url.rstrip('/')

    def _get(self, path, key, **params):
        return self.session.get(self.url + path, params=params).json()[key]

    def _post(self, path, body):
        return self.session.post(self.url + path, json=body).json()

    def role_ids(self, names):
        have = {r['name']: r['id'] for r in self._get('/roles', 'roles')}
        missing = set(names) - set(have)
        if missing:
            # keystone-manage bootstrap makes them; without them the stack
            # is not the one this was written for.
            raise RuntimeError('roles missing in Keystone: %s'
                               % ', '.join(sorted(missing)))
        return have

    def ensure_project(self, name, log):
        found = self._get('/projects', 'projects', name=name,
                          domain_id=DOMAIN_ID)
        if found:
            return found[0]['id']
        log('created project %s' % name)
        return self._post('/projects', {'project': {
            'name': name, 'domain_id': DOMAIN_ID,
            'description': 'tempest pre-provisioned accounts'}})['project']['id']

    def ensure_user(self, name, password, project_id, log):
        found = self._get('/users', 'users', name=name, domain_id=DOMAIN_ID)
        if found:
            return found[0]['id'], False
        log('created user %s' % name)
        user = self._post('/users', {'user': {
            'name': name, 'domain_id': DOMAIN_ID, 'password': password,
            'default_project_id': project_id}})['user']
        return user['id'], True

    def ensure_grant(self, project_id, user_id, role_id):
        path = '/projects/%s/users/%s/roles/%s' % (project_id, user_id,
                                                   role_id)
        try:
            self.session.head(self.url + path)
        except ks_exc.NotFound:
            self.session.put(self.url + path)
            return True
        return False

    def set_password(self, user_id, password):
        self.session.patch(self.url + '/users/%s' % user_id,
                           json={'user': {'password': password}})


def provision(clouds_yaml, accounts_file, log=print):
    """Make the accounts exist in Keystone; write tempest's accounts file.

    Returns the accounts as written (dicts in tempest's format).
    """
    auth_url, user, password, project = admin_credentials(clouds_yaml)
    identity = Identity(password_session(auth_url, user, password, project),
                        auth_url)
    passwords = load_passwords(accounts_file)
    roles = identity.role_ids({'admin', 'member', 'reader'})
    project_ids = {}
    accounts = []
    for username, project_name, role in wanted_accounts():
        if project_name not in project_ids:
            project_ids[project_name] = identity.ensure_project(project_name,
                                                                log)
        pid = project_ids[project_name]
        secret = passwords.get(username) or secrets.token_urlsafe(18)
        user_id, created = identity.ensure_user(username, secret, pid, log)
        if identity.ensure_grant(pid, user_id, roles[role]):
            log('granted %s on %s to %s' % (role, project_name, username))
        if not created:
            try:
                password_session(auth_url, username, secret,
                                 project_name).get_token()
            except ks_exc.Unauthorized:
                identity.set_password(user_id, secret)
                log('reset the password of %s' % username)
        accounts.append({
            'username': username, 'password': secret,
            'project_name': project_name,
            'user_domain_name': DOMAIN_NAME,
            'project_domain_name': DOMAIN_NAME,
            'roles': [role]})
    write_private(accounts_file, accounts)
    return accounts


def write_private(path, accounts):
    """Write the accounts as YAML (JSON is YAML) readable by root only."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as out:
        out.write('# Written by tools/tempest/accounts.py; tempest\'s '
                  'test_accounts_file.\n')
        json.dump(accounts, out, indent=1)
        out.write('\n')
    os.replace(tmp, path)
