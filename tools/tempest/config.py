"""tempest.conf for this stack: what nova-snapshot serves, and nothing more.

Every feature flag below says what the compute API of this project does;
a flag set to false makes tempest skip (and report) the tests of that
feature. The tests that tempest would still run against an API this
project lacks are in tools/tempest/skip-list.txt, each with its reason.
"""

# Nova's 2.1 up to this API's maximum (Nova's own, 2.104: see
# nova_snapshot/api/microversion.py). Below 2.36 tempest waits for
# snapshots through the compute images proxy (/v2.1/images), which this
# API serves as Nova does up to 2.35.
MIN_MICROVERSION = '2.1'
MAX_MICROVERSION = '2.104'
# Seconds tempest waits for a server or image to change state. The tiny
# guest boots and snapshots in seconds; 120 s is ample on a busy 2-core
# machine and keeps a hung test from eating the CI budget.
BUILD_TIMEOUT = 120

# [compute-feature-enabled]: true only for what the API serves.
COMPUTE_FEATURES = {
    'snapshot': True,              # createImage
    'console_output': True,        # os-getConsoleOutput
    'pause': True,
    'suspend': True,
    'enable_instance_password': True,   # adminPass in the create response
    # Server create takes OS-DCF:diskConfig and shows it back, as Nova.
    'disk_config': True,
    'resize': False,
    'shelve': True,                # shelve, shelveOffload, unshelve
    'shelve_migrate': False,
    'rescue': False,
    'stable_rescue': False,
    'change_password': False,
    'live_migration': False,
    'cold_migration': False,
    'block_migration_for_live_migration': False,
    'interface_attach': False,
    'vnc_console': False,
    'spice_console': False,
    'serial_console': False,
    'metadata_service': False,
    'config_drive': False,
    'personality': False,
    'attach_encrypted_volume': False,
    'swap_volume': False,
    'volume_multiattach': False,
    'hostname_fqdn_sanitization': False,
    'unified_limits': False,
}


def render(facts):
    """tempest.conf text from ``facts``, a dict with:

    identity_uri, region, accounts_file, lock_path, log_dir, image_ref,
    image_ref_alt, flavor_ref, flavor_ref_alt; cinder (optional): the
    catalog has a block-storage endpoint.
    """
    conf = {}
    conf['DEFAULT'] = {
        'log_dir': facts['log_dir'],
        'log_file': 'tempest.log',
        'debug': 'true',
        'use_stderr': 'false',
    }
    conf['oslo_concurrency'] = {'lock_path': facts['lock_path']}
    conf['auth'] = {
        # Pre-provisioned accounts (tools/tempest/accounts.py): dynamic
        # credentials would clean up through a network API there is none of.
        'use_dynamic_credentials': 'false',
        'test_accounts_file': facts['accounts_file'],
        'default_credentials_domain_name': 'Default',
        'create_isolated_networks': 'false',
    }
    conf['identity'] = {
        'uri_v3': facts['identity_uri'],
        'auth_version': 'v3',
        'region': facts['region'],
        'v3_endpoint_type': 'public',
    }
    conf['identity-feature-enabled'] = {'api_v3': 'true'}
    conf['compute'] = {
        'region': facts['region'],
        'endpoint_type': 'publicURL',
        'image_ref': facts['image_ref'],
        'image_ref_alt': facts['image_ref_alt'],
        'flavor_ref': facts['flavor_ref'],
        'flavor_ref_alt': facts['flavor_ref_alt'],
        'min_microversion': MIN_MICROVERSION,
        'max_microversion': MAX_MICROVERSION,
        'build_timeout': str(BUILD_TIMEOUT),
        'build_interval': '1',
        # As the deployment's [DEFAULT] shelved_offload_time (Nova's
        # default): a shelve ends SHELVED_OFFLOADED.
        'shelved_offload_time': '0',
    }
    conf['compute-feature-enabled'] = {
        key: str(value).lower() for key, value in COMPUTE_FEATURES.items()}
    conf['image'] = {
        'region': facts['region'],
        'endpoint_type': 'public',
        'build_timeout': str(BUILD_TIMEOUT),
        'build_interval': '1',
    }
    conf['image-feature-enabled'] = {'api_v2': 'true'}
    conf['service_available'] = {
        'nova': 'true',
        'glance': 'true',
        # Boot from volume through the Keystone-mode Cinder of the stack.
        'cinder': str(bool(facts.get('cinder'))).lower(),
        # tempest skips every compute class that sets
        # create_default_network unless neutron is "available"; with
        # pre-provisioned accounts and no [compute] fixed_network_name it
        # creates and looks up no network, so no network call is made.
        # The few tests that do call the network API are in the skip list.
        'neutron': 'true',
        'swift': 'false',
        'horizon': 'false',
        'placement': 'false',
    }
    if facts.get('cinder'):
        conf['volume'] = {
            'region': facts['region'],
            'endpoint_type': 'publicURL',
            'build_timeout': str(BUILD_TIMEOUT),
            'build_interval': '1',
        }
        conf['volume-feature-enabled'] = {'backup': 'false'}
    conf['validation'] = {'run_validation': 'false'}
    lines = ['# Written by tools/tempest/run.py from the stack; '
             'do not edit the copy.']
    for section, options in conf.items():
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % item for item in options.items())
        lines.append('')
    return '\n'.join(lines)
