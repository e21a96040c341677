"""keystoneauth options of a service we call, as Nova registers them.

A ``[glance]`` or ``[cinder]`` section gets keystoneauth's own session
options (``timeout``, ``cafile``, ``insecure``...), auth options
(``auth_type``, ``auth_url``... for the credentials used when there is no
user token) and adapter options (``service_type``, ``valid_interfaces``,
``region_name``, ``endpoint_override``: the endpoint comes from the catalog
unless overridden). Only two defaults differ from keystoneauth's: every call
has a ``timeout``, and the catalog is searched internal-first, as Nova does.
"""

import copy

from keystoneauth1 import loading as ks_loading

# Seconds to connect or wait for a read; keystoneauth has no timeout by
# default, and a call without one can hang a request thread for ever.
DEFAULT_TIMEOUT = 60.0
DEFAULT_INTERFACES = ['internal', 'public']


def _with_defaults(opts, defaults):
    out = []
    for opt in opts:
        if opt.dest in defaults:
            opt = copy.deepcopy(opt)
            opt.default = defaults[opt.dest]
        out.append(opt)
    return out


def session_opts(timeout=DEFAULT_TIMEOUT):
    return _with_defaults(ks_loading.get_session_conf_options(),
                          {'timeout': timeout})


def adapter_opts(service_type):
    return _with_defaults(
        ks_loading.get_adapter_conf_options(include_deprecated=False),
        {'service_type': service_type,
         'valid_interfaces': list(DEFAULT_INTERFACES)})


def auth_opts():
    """The auth options shown in samples: common ones plus ``password``'s
    (the plugin's own options are registered when it is loaded)."""
    return (ks_loading.get_auth_common_conf_options() +
            ks_loading.get_auth_plugin_conf_options('password'))


def register(conf, group, service_type=None, timeout=DEFAULT_TIMEOUT):
    conf.register_opts(session_opts(timeout), group=group)
    ks_loading.register_auth_conf_options(conf, group)
    if service_type is not None:
        conf.register_opts(adapter_opts(service_type), group=group)


def list_opts(service_type=None, timeout=DEFAULT_TIMEOUT):
    opts = session_opts(timeout) + auth_opts()
    if service_type is not None:
        opts += adapter_opts(service_type)
    return opts
