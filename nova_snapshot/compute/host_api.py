"""Compute services as operators see them (Nova's HostAPI): os-services
and ``nova-snapshot-manage service``.

Disabling a host only stops new servers from being scheduled to it (the
claim re-checks it in SQL, so a disable wins over a request in flight);
its servers keep running and can be deleted, so a host can be drained.
"""

from nova_snapshot.compute import scheduler
from nova_snapshot import exception

COMPUTE_BINARY = 'nova-snapshot-compute'
# Nova's zone for services that are not compute services.
INTERNAL_ZONE = 'internal'


class HostAPI(object):

    def __init__(self, conf, db):
        self.conf = conf
        self.db = db

    def _decorate(self, service):
        service = dict(service)
        service['up'] = scheduler.service_is_up(
            service, self.conf.service_down_time)
        service['zone'] = (self.conf.default_availability_zone
                           if service.get('binary') == COMPUTE_BINARY
                           else INTERNAL_ZONE)
        return service

    def service_get_all(self, host=None, binary=None):
        """Services with ``up`` (heartbeat within service_down_time and
        not forced down) and ``zone``."""
        return [self._decorate(s)
                for s in self.db.service_list(host=host, binary=binary)]

    def service_update_by_host_and_binary(self, host, binary, values):
        """Set ``disabled``/``disabled_reason``/``forced_down``.

        :raises: Invalid for a service that is not a compute service
            (Nova updates only nova-compute), HostBinaryNotFound.
        """
        if binary != COMPUTE_BINARY:
            raise exception.Invalid(
                reason='Updating a %s service is not supported. Only %s '
                       'services can be updated.' % (binary, COMPUTE_BINARY))
        service = self.db.service_get_by_host_and_binary(host, binary)
        return self._decorate(self.db.service_set_status(service['id'],
                                                         values))

    def service_delete(self, service_id):
        """Delete a service (a compute service with its compute node,
        refused while it hosts servers, as Nova).

        :raises: ServiceNotFound, ServiceHasInstances (409)
        """
        service = self.db.service_get(service_id)
        self.db.service_destroy(
            service_id, compute=service.get('binary') == COMPUTE_BINARY)
