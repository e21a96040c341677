"""snapshot_backup.abort: a backup job is gone when abort returns."""

import unittest

import libvirt

from nova_snapshot.virt.libvirt import snapshot_backup


def libvirt_error(code):
    error = libvirt.libvirtError('injected')
    error.get_error_code = lambda: code
    return error


class FakeDomain:
    """A domain whose job needs ``refusals`` aborts refused and then
    ``lingers`` polls after the abort before libvirt reports it gone."""

    def __init__(self, job=True, refusals=0, lingers=0, active=True):
        self.job = job
        self.refusals = refusals
        self.lingers = lingers
        self.active = active
        self.aborts = 0
        self._aborted = False

    def name(self):
        return 'instance-x'

    def isActive(self):
        return self.active

    def jobStats(self, flags=0):
        if self._aborted and self.lingers:
            self.lingers -= 1
        elif self._aborted:
            self.job = False
        return {'type': libvirt.VIR_DOMAIN_JOB_UNBOUNDED if self.job
                else libvirt.VIR_DOMAIN_JOB_NONE}

    def abortJob(self):
        self.aborts += 1
        if self.refusals:
            self.refusals -= 1
            raise libvirt_error(libvirt.VIR_ERR_OPERATION_TIMEOUT)
        self._aborted = True


class AbortTest(unittest.TestCase):

    def abort(self, domain, timeout=5.0):
        return snapshot_backup.abort(domain, timeout=timeout, interval=0)

    def test_no_job_is_quiet(self):
        domain = FakeDomain(job=False)
        self.assertFalse(self.abort(domain))
        self.assertEqual(0, domain.aborts)

    def test_inactive_domain_has_no_job(self):
        self.assertFalse(self.abort(FakeDomain(active=False)))

    def test_waits_until_the_job_is_gone(self):
        domain = FakeDomain(lingers=3)
        self.assertTrue(self.abort(domain))
        self.assertFalse(domain.job)

    def test_a_refused_abort_is_asked_again(self):
        domain = FakeDomain(refusals=2)
        self.assertTrue(self.abort(domain))
        self.assertEqual(3, domain.aborts)
        self.assertFalse(domain.job)

    def test_gives_up_at_the_deadline(self):
        domain = FakeDomain(refusals=10 ** 6)
        self.assertTrue(self.abort(domain, timeout=0.05))
        self.assertTrue(domain.job)

    def test_a_vanished_domain_raises(self):
        domain = FakeDomain()

        def gone(flags=0):
            raise libvirt_error(libvirt.VIR_ERR_NO_DOMAIN)
        domain.jobStats = gone
        self.assertRaises(libvirt.libvirtError, self.abort, domain)
