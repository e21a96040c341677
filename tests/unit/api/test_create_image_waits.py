"""createImage of a volume-backed server whose compute host could not get
the server's lock or a snapshot slot before the call's deadline: a 409
conflictingRequest fault, not a 500."""

from nova_snapshot import exception
from tests.unit.api import base


class TestCreateImageWaitRanOut(base.APITestCase):

    def test_slot_wait_ran_out_is_409(self):
        server = self.compute.add_instance('project-a', image_ref='')
        self.compute.volume_snapshot_error = exception.Conflict(
            reason='timed out after 285 s waiting for one of the 5 '
                   'snapshot slots of host cmp-1')
        response = self.request(
            'POST', '/v2.1/servers/%s/action' % server['uuid'],
            {'createImage': {'name': 'snap'}})
        self.assertEqual(409, response.status_int)
        self.assertIn('snapshot slots of host cmp-1',
                      response.json['conflictingRequest']['message'])
