"""Run tempest's compute image and server tests against the real stack.

Run by tools/tempest/run.sh (after tools/stack/install.sh and start.sh).
Steps, each printed with its time:

1. tempest's pre-provisioned accounts in Keystone (tools/tempest/accounts.py);
2. a nova-snapshot deployment in Keystone mode on the catalog's compute
   endpoint (127.0.0.1:8774): API and one compute service, real libvirt,
   RabbitMQ and the Keystone-mode Glance;
3. the tiny guest, public, in that Glance (tools/tempest/guest_image.py);
4. tempest.conf (tools/tempest/config.py) and ``tempest run`` with
   tools/tempest/include-list.txt minus tools/tempest/skip-list.txt;
5. the deployment stopped (its guests destroyed) whatever happened.

Exits with tempest's status: non-zero on any failure. Extra arguments go
to ``tempest run`` (e.g. ``--concurrency 1``, ``--regex images``; a
``--regex`` replaces the include list). ``--skipped`` runs the tests of
the skip list instead, to see which of them pass by now.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(TOOLS_DIR))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, TOOLS_DIR)

import accounts  # noqa: E402
import config  # noqa: E402
import guest_image  # noqa: E402
import lists  # noqa: E402
from tests.functional.fixtures import deployment as deployment_fixture  # noqa: E402
from tests.functional.fixtures import stack as stack_fixture  # noqa: E402

# Two workers at most: the machine has two cores, shared with the guests.
CONCURRENCY = 2
# m1.micro (128 MiB) fits the tiny guest; tempest wants a second flavor
# (e.g. to filter servers by flavor): m1.tiny.
FLAVOR = '2'
FLAVOR_ALT = '3'
DATABASE = 'nova_snapshot_tempest'
PORT_WAIT = 300


def step(title, func, *args, **kwargs):
    print('[tempest] %s ...' % title, flush=True)
    start = time.monotonic()
    result = func(*args, **kwargs)
    print('[tempest] %s: %.1f s' % (title, time.monotonic() - start),
          flush=True)
    return result


def port_in_use(host, port):
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def compute_endpoint(session, region):
    """(host, port) of the catalog's public compute endpoint."""
    from urllib import parse
    url = session.get_endpoint(service_type='compute', interface='public',
                               region_name=region)
    parsed = parse.urlsplit(url)
    return parsed.hostname, parsed.port


def has_service(session, service_type, region):
    from keystoneauth1 import exceptions as ks_exc
    try:
        return bool(session.get_endpoint(service_type=service_type,
                                         interface='public',
                                         region_name=region))
    except ks_exc.EndpointNotFound:
        return False


def fresh_database(pg_url, name=DATABASE):
    """A new, empty PostgreSQL database for this run; its URL.

    Not the fixture's default SQLite: with tempest's two workers the API and
    the compute service write at the same time, and SQLite's whole-file
    lock then fails a compute write ("database is locked") that leaves a
    server stuck in a task state. A production deployment runs PostgreSQL.
    """
    import sqlalchemy
    from sqlalchemy.engine import url as sa_url
    base = sa_url.make_url(pg_url)
    engine = sqlalchemy.create_engine(base.set(database='postgres'),
                                      isolation_level='AUTOCOMMIT')
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(
                'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name))
            conn.execute(sqlalchemy.text('CREATE DATABASE %s' % name))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def start_deployment(stack_env, host, port):
    """The fixture's Keystone-mode deployment, on the catalog's port."""
    # Another deployment on the catalog's port (a Keystone-mode functional
    # test, the demo) may be finishing: wait for it a while, then give up.
    deadline = time.monotonic() + PORT_WAIT
    if port_in_use(host, port):
        print('[tempest] %s:%s is in use; waiting up to %d s for it'
              % (host, port, PORT_WAIT), flush=True)
    while port_in_use(host, port):
        if time.monotonic() > deadline:
            raise SystemExit(
                'tools/tempest/run.py: something still listens on %s:%s, '
                'the catalog\'s compute endpoint; stop it first' % (host, port))
        time.sleep(2)
    # The API as production serves it: uWSGI with the shipped ini.
    deployment = deployment_fixture.Deployment(
        stack_env, keystone=True, api_port=port, uwsgi=True,
        database_url=fresh_database(stack_env['PG_URL']))
    return deployment.start(timeout=120)


def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as out:
        out.write(text)
    os.chmod(path, mode)


def stestr_conf(work_dir, tempest_python):
    """The .stestr.conf tempest run needs in its working directory."""
    site = subprocess.run(
        [tempest_python, '-c',
         'import os, tempest; print(os.path.dirname(tempest.__file__))'],
        check=True, capture_output=True, text=True).stdout.strip()
    write_file(os.path.join(work_dir, '.stestr.conf'),
               '[DEFAULT]\ntest_path=%s/test_discover\ntop_dir=%s\n'
               'group_regex=([^\\.]*\\.)*\n' % (site, site))
    # Listing tests (check_lists) needs the repository that a first
    # ``tempest run`` would otherwise create.
    if not os.path.isdir(os.path.join(work_dir, '.stestr')):
        subprocess.run([os.path.join(os.path.dirname(tempest_python),
                                     'stestr'), 'init'],
                       cwd=work_dir, check=True, capture_output=True)


def check_lists(tempest, conf_file, work_dir):
    """Print what the lists select; False when the skip list is wrong."""
    include = lists.read_list(lists.INCLUDE_LIST)
    skip = lists.read_list(lists.SKIP_LIST)
    found = lists.problems(include, skip)
    listing = subprocess.run(
        [tempest, 'run', '--config-file', conf_file, '--list-tests',
         '--include-list', lists.INCLUDE_LIST], cwd=work_dir,
        capture_output=True, text=True)
    if listing.returncode:
        print('[tempest] listing the tests failed:\n%s%s'
              % (listing.stdout[-2000:], listing.stderr[-2000:]),
              file=sys.stderr)
        return False
    listed = listing.stdout.split()
    test_ids = [t for t in listed if t.startswith('tempest.')]
    selected, taken = lists.apply(test_ids, include, skip)
    found += ['%s: matches no test of the include list' % regex
              for regex, ids in taken.items() if not ids]
    print('[tempest] include list: %d tests; skip list: %d entries take out '
          '%d; %d to run' % (len(test_ids), len(skip),
                             len(test_ids) - len(selected), len(selected)))
    for problem in found:
        print('[tempest] skip list: %s' % problem, file=sys.stderr)
    return not found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=None,
                        help='Where tempest.conf, accounts and logs go '
                             '(default: .stack/tempest).')
    parser.add_argument('--clouds-yaml', default=None,
                        help='clouds.yaml with the cloud "admin" '
                             '(default: the stack\'s).')
    parser.add_argument('--skipped', action='store_true',
                        help='Run only the tests of the skip list, to see '
                             'which of them pass by now.')
    args, tempest_args = parser.parse_known_args(argv)

    started = time.monotonic()
    stack_env = stack_fixture.read_stack_env()
    stack_dir = stack_env.get('STACK_DIR', os.path.join(REPO_ROOT, '.stack'))
    work_dir = args.work_dir or os.path.join(stack_dir, 'tempest')
    clouds_yaml = args.clouds_yaml or stack_env.get(
        'CLOUDS_YAML', os.path.join(stack_dir, 'clouds.yaml'))
    region = stack_env.get('KEYSTONE_REGION', 'RegionOne')
    tempest_venv = os.path.join(stack_dir, 'tempest-venv')
    accounts_file = os.path.join(work_dir, 'etc', 'accounts.yaml')
    conf_file = os.path.join(work_dir, 'etc', 'tempest.conf')

    auth_url, user, password, project = accounts.admin_credentials(
        clouds_yaml)
    admin = accounts.password_session(auth_url, user, password, project)
    host, port = compute_endpoint(admin, region)
    # The catalog's port first: a second run at the same time stops here,
    # before it resets the passwords of the accounts the first one uses.
    deployment = step('deployment on %s:%s' % (host, port), start_deployment,
                      stack_env, host, port)
    rc = 1
    try:
        step('accounts in Keystone', accounts.provision, clouds_yaml,
             accounts_file, log=lambda msg: print('  ' + msg))
        image_id, image_alt_id = step(
            'guest images', guest_image.ensure_guest_images,
            admin, region, stack_env['GUEST_DIR'],
            log=lambda msg: print('  ' + msg))
        # tempest marks an account in use with a file under lock/; a run
        # that was killed leaves them, and the next one would find no free
        # account. Only one run holds the catalog's port, so none is ours.
        shutil.rmtree(os.path.join(work_dir, 'lock'), ignore_errors=True)
        for sub in ('logs', 'lock'):
            os.makedirs(os.path.join(work_dir, sub), exist_ok=True)
        # One run's log: tempest appends, and debug logs grow fast.
        log_file = os.path.join(work_dir, 'logs', 'tempest.log')
        if os.path.exists(log_file):
            os.replace(log_file, log_file + '.1')
        write_file(conf_file, config.render({
            'identity_uri': auth_url, 'region': region,
            'accounts_file': accounts_file,
            'lock_path': os.path.join(work_dir, 'lock'),
            'log_dir': os.path.join(work_dir, 'logs'),
            'image_ref': image_id, 'image_ref_alt': image_alt_id,
            'flavor_ref': FLAVOR, 'flavor_ref_alt': FLAVOR_ALT,
            'cinder': has_service(admin, 'block-storage', region),
        }))
        stestr_conf(work_dir, os.path.join(tempest_venv, 'bin', 'python'))
        tempest = os.path.join(tempest_venv, 'bin', 'tempest')
        if not step('lists', check_lists, tempest, conf_file, work_dir):
            return 2
        command = [tempest, 'run', '--config-file', conf_file,
                   '--concurrency', str(CONCURRENCY)]
        if args.skipped:
            # The skip list's own tests: each should still fail for the
            # reason it gives; one that passes can leave the list.
            command += ['--include-list', lists.SKIP_LIST]
        else:
            command += ['--exclude-list', lists.SKIP_LIST]
            if '--regex' not in tempest_args:
                command += ['--include-list', lists.INCLUDE_LIST]
        print('[tempest] %s' % ' '.join(command + tempest_args), flush=True)
        rc = step('tempest run', subprocess.call, command + tempest_args,
                  cwd=work_dir)
    finally:
        if rc != 0:
            print('[tempest] nova-snapshot logs: %s' % deployment.state_dir)
        # Keep the services' logs of a failed run for the reader.
        step('deployment stopped', deployment.stop, remove_state=(rc == 0))
    print('[tempest] rc=%d, %.0f s in all' % (rc, time.monotonic() - started))
    return rc


if __name__ == '__main__':
    sys.exit(main())
