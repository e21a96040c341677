"""An unreachable or silent Glance, Cinder or compute service is a 503
serviceUnavailable fault naming the service, never a 500 or the client
library's exception."""

import json
import unittest

from nova_snapshot.api import faults
from nova_snapshot import exception


class UnavailableFaultTest(unittest.TestCase):

    def _fault(self, exc):
        response = faults.from_exception(exc)
        return response.status_int, json.loads(response.text)

    def test_each_service(self):
        cases = [
            (exception.GlanceConnectionFailed(
                reason='Request to http://10.0.0.5:9292/v2 timed out'),
             'image service'),
            (exception.CinderConnectionFailed(reason='ConnectTimeout'),
             'block storage service'),
            (exception.ComputeServiceUnavailable(
                host='h1', reason='OperationalError'), 'compute service'),
        ]
        for exc, name in cases:
            with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
                status, body = self._fault(exc)
            self.assertEqual(503, status)
            self.assertEqual(['serviceUnavailable'], list(body))
            message = body['serviceUnavailable']['message']
            self.assertIn(name, message)
            # Endpoints and exception classes stay in the log.
            for leak in ('10.0.0.5', 'Error', 'Timeout', 'h1', 'class'):
                self.assertNotIn(leak, message)

    def test_other_server_errors_stay_500(self):
        with self.assertLogs('nova_snapshot.api.faults', 'ERROR'):
            status, body = self._fault(exception.VolumeError(reason='x'))
        self.assertEqual(500, status)


if __name__ == '__main__':
    unittest.main()
