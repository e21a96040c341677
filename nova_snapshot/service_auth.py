"""How this service authenticates its calls to Glance and Cinder.

With Keystone (the default ``auth_mode``), a call made for a user carries
the user's token from the request context; with ``[service_user]
send_service_user_token`` also a token of the service user
(keystoneauth's ``ServiceTokenAuthWrapper``), so Glance and Cinder accept
the user's token even once it has expired (a long snapshot). The endpoint
comes from the catalog the user's token came with (kept in the context, as
Nova does), unless ``endpoint_override`` names it.

A context without a token (start-up clean-up, other work no user asked
for) authenticates with the service's own credentials: the ``[glance]`` /
``[cinder]`` auth options when set, else ``[service_user]``'s; the endpoint
then comes from that identity's catalog.
"""

from keystoneauth1.access import service_catalog
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import plugin as ksa_plugin
from keystoneauth1 import service_token
from oslo_log import log as logging

from nova_snapshot import exception

LOG = logging.getLogger(__name__)

SERVICE_USER_GROUP = 'service_user'


class NoCredentials(exception.NovaSnapshotException):
    msg_fmt = ('No credentials to call %(service)s: the request has no user '
               'token and neither [%(group)s] nor [service_user] has auth '
               'options.')


class ContextAuthPlugin(ksa_plugin.BaseAuthPlugin):
    """The user's token and catalog, as the API received them."""

    def __init__(self, token, catalog, project_id=None):
        super().__init__()
        self.token = token
        self.catalog = service_catalog.ServiceCatalogV2(catalog or [])
        self.project_id = project_id

    def get_token(self, *args, **kwargs):
        return self.token

    def get_endpoint(self, session, service_type=None, interface=None,
                     region_name=None, service_name=None, **kwargs):
        return self.catalog.url_for(
            service_type=service_type, service_name=service_name,
            interface=interface, region_name=region_name)

    def get_project_id(self, session, **kwargs):
        return self.project_id

    def invalidate(self):
        # Nothing to re-authenticate with: a refused token stays refused.
        return False


class ServiceClientAuth:
    """Session, credentials and endpoint lookup for one service's calls.

    :param conf: the ConfigOpts; ``group`` (``glance`` or ``cinder``) has
        keystoneauth's session, auth and adapter options.
    """

    def __init__(self, conf, group):
        self.group = group
        opts = conf[group]
        self.service_type = opts.service_type
        self.interfaces = list(opts.valid_interfaces or ['public'])
        self.region_name = opts.region_name
        self.endpoint_override = opts.endpoint_override
        # One session (one connection pool, the timeout and TLS options)
        # for every call; identity is per call.
        self.session = ks_loading.load_session_from_conf_options(conf, group)
        self.send_service_token = (
            conf[SERVICE_USER_GROUP].send_service_user_token)
        self._own_auth = ks_loading.load_auth_from_conf_options(conf, group)
        self._service_user = ks_loading.load_auth_from_conf_options(
            conf, SERVICE_USER_GROUP)
        if self.send_service_token and self._service_user is None:
            LOG.warning('[service_user] send_service_user_token is set but '
                        'the section has no auth options: calls to %s carry '
                        'the user\'s token only', group)

    def auth_for(self, context):
        """The auth plugin for a call made with ``context``."""
        if getattr(context, 'auth_token', None):
            auth = ContextAuthPlugin(
                context.auth_token,
                getattr(context, 'service_catalog', None),
                project_id=context.project_id)
            if self.send_service_token and self._service_user is not None:
                auth = service_token.ServiceTokenAuthWrapper(
                    user_auth=auth, service_auth=self._service_user)
            return auth
        auth = self._own_auth or self._service_user
        if auth is None:
            raise NoCredentials(service=self.group, group=self.group)
        return auth

    def acts_as_service(self, context):
        """True when a call with ``context`` is made as this service (no
        user token): it is not scoped to the context's project."""
        return not getattr(context, 'auth_token', None)

    def endpoint(self, auth):
        """The service's URL for a call with ``auth``: ``endpoint_override``
        (``%(project_id)s`` filled in), else the catalog's."""
        if self.endpoint_override:
            url = self.endpoint_override
            if '%(' in url:
                url = url % {'project_id': auth.get_project_id(self.session)}
            return url
        url = self.session.get_endpoint(
            auth, service_type=self.service_type, interface=self.interfaces,
            region_name=self.region_name)
        if not url:
            raise ksa_exc.EndpointNotFound(
                'No %s endpoint (interfaces %s, region %s) in the catalog'
                % (self.service_type, ','.join(self.interfaces),
                   self.region_name))
        return url
