"""The libvirt connection of one compute host and domain lookups."""

import threading
import uuid as uuidlib

import libvirt

from nova_snapshot.compute import power_state
from nova_snapshot import exception

DOMAIN_PREFIX = 'instance-'

# libvirt's states in Nova's terms. A domain that libvirt has shut off
# after a managed save is SHUTDOWN too, as in Nova: the instance's vm_state
# (suspended) says why.
POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: power_state.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: power_state.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: power_state.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: power_state.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: power_state.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: power_state.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: power_state.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: power_state.SUSPENDED,
}


def domain_name(instance_uuid):
    """The libvirt name of an instance's domain (never the server name)."""
    return DOMAIN_PREFIX + str(uuidlib.UUID(instance_uuid))


def _ignore_libvirt_error(_ctx, _err):
    pass


def is_connection_lost(exc):
    """The libvirtd at the other end of the connection went away (it
    restarted): the error comes from the RPC layer, or names the
    connection itself."""
    return (exc.get_error_domain() == libvirt.VIR_FROM_RPC or
            exc.get_error_code() in (libvirt.VIR_ERR_NO_CONNECT,
                                     libvirt.VIR_ERR_INVALID_CONN))


def is_not_found(exc):
    return exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN


def hypervisor_error(exc):
    """Our exception for a libvirtError that is neither "no domain" nor
    handled by the caller: HypervisorUnavailable when libvirtd is out of
    reach (the caller may try again), else HypervisorError."""
    if is_connection_lost(exc):
        return exception.HypervisorUnavailable(reason=str(exc))
    return exception.HypervisorError(reason=str(exc))


class Host:
    """Owns one libvirt connection, reopened when it drops."""

    def __init__(self, uri):
        # libvirt prints every error to stderr by default; ours are raised
        # as exceptions and logged where they matter.
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        self.uri = uri
        self._conn = None
        self._lock = threading.Lock()

    def get_connection(self):
        with self._lock:
            conn = self._conn
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                # libvirtd down or restarting (its socket refuses): try
                # again later, nothing was done.
                raise exception.HypervisorUnavailable(
                    reason='cannot connect to %s: %s' % (self.uri, exc))
            return self._conn

    def close(self):
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None

    def get_domain(self, instance_uuid):
        """Return the virDomain of an instance or raise InstanceNotFound."""
        try:
            key = str(uuidlib.UUID(instance_uuid))
        except (TypeError, ValueError):
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        try:
            return self._call(lambda conn: conn.lookupByUUIDString(key))
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                raise exception.InstanceNotFound(instance_id=instance_uuid)
            raise hypervisor_error(exc)

    def _call(self, func):
        """``func(connection)``, once more on a new connection when the
        old one turns out dead. After a restart of libvirtd the cached
        connection may still say isAlive() until its first call fails
        ("Broken pipe"); the calls made through here are idempotent."""
        conn = self.get_connection()
        try:
            return func(conn)
        except libvirt.libvirtError as exc:
            if not is_connection_lost(exc):
                raise
        with self._lock:
            if self._conn is conn:
                self._conn = None
        return func(self.get_connection())

    def define(self, xml):
        return self._call(lambda conn: conn.defineXML(xml))

    def list_instance_uuids(self):
        """UUIDs of every domain (running or not) that this service made."""
        domains = self._call(lambda conn: conn.listAllDomains(0))
        return [d.UUIDString() for d in domains
                if d.name().startswith(DOMAIN_PREFIX)]

    @staticmethod
    def power_state(domain):
        try:
            state, _reason = domain.state()
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                raise exception.InstanceNotFound(
                    instance_id=domain.UUIDString())
            raise hypervisor_error(exc)
        return POWER_STATES.get(state, power_state.NOSTATE)

    @staticmethod
    def state_and_reason(domain):
        return domain.state()
