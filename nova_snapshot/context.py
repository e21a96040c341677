"""Request context: who is asking, carried from the API through RPC."""

from oslo_context import context as oslo_context

from nova_snapshot import exception

# Catalog entries a context keeps (as Nova filters them): the services the
# compute side calls with the user's token. Everything else would only
# bloat every RPC message.
CATALOG_TYPES = frozenset(['image', 'block-storage', 'volumev3', 'volumev2',
                           'volume'])


class RequestContext(oslo_context.RequestContext):
    """A request context that can check policy.

    The enforcer is attached by the API middleware (``context.enforcer``) so
    nothing here reaches for a global one. ``auth_token`` and
    ``service_catalog`` (keystonemiddleware's v2-style list, filtered to
    :data:`CATALOG_TYPES`) travel over RPC so the compute side calls Glance
    and Cinder as the user who asked.
    """

    FROM_DICT_EXTRA_KEYS = ['service_catalog']

    def __init__(self, *args, enforcer=None, service_catalog=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.enforcer = enforcer
        self.service_catalog = [
            entry for entry in (service_catalog or ())
            if entry.get('type') in CATALOG_TYPES]

    def to_dict(self):
        values = super().to_dict()
        values['service_catalog'] = self.service_catalog
        return values

    def can(self, action, target=None, fatal=True):
        """Return True if policy allows ``action`` on ``target``.

        The target defaults to the caller's own project and user; callers
        acting on a resource pass the resource owner's project instead.
        """
        if target is None:
            target = {'project_id': self.project_id, 'user_id': self.user_id}
        if self.enforcer is None:
            raise exception.PolicyNotAuthorized(action=action)
        return self.enforcer.authorize(action, target, self, fatal=fatal)

    def elevated(self):
        ctx = self.from_dict(self.to_dict())
        ctx.enforcer = self.enforcer
        ctx.is_admin = True
        if 'admin' not in ctx.roles:
            ctx.roles = list(ctx.roles) + ['admin']
        return ctx

    @classmethod
    def from_dict(cls, values, **kwargs):
        return super().from_dict(values, **kwargs)


def get_admin_context():
    """A context with no user token: Glance and Cinder calls made with it
    authenticate as this service (``[service_user]`` or the service's own
    credentials), never as a user."""
    return RequestContext(user_id=None, project_id=None, is_admin=True,
                          roles=['admin'], overwrite=False)
