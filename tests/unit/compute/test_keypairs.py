"""Keypairs below the API: crypto.py (generation, fingerprints, a
malformed key refused), compute/keypairs.py against a real SQLite database
(names per user, duplicates, paging, the per-user limit), and the key a
server keeps from its create and from a 2.54 rebuild."""

import base64
import subprocess
import tempfile
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography import x509

from nova_snapshot.compute import keypairs
from nova_snapshot import crypto
from nova_snapshot.db import api as db_api
from nova_snapshot import exception
from tests.unit.compute import fakes

# tempest's test_keypair_create_with_pub_key key, and the fingerprints
# ssh-keygen -l -E md5 and openssl x509 -fingerprint -sha1 print.
RSA_KEY = (
    'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCsNe3/1ILNCqFyfYWDeTKLD6jEXC2OQ'
    'HLmietMWW+/vdaZq7KZEwO0jhglaFjU1mpqq4Gz5RX156sCTNM9vRbwKAxfsdF9laBYV'
    'sex3m3Wmui3uYrKyumsoJn2g9GNnG1PI1mrVjZ61i0GY3khna+wzlTpCCmy5HNlrmbj3'
    'XLqBUpipTOXmsnr4sChzC53KCd8LXuwc1i/CZPvF+3XipvAgFSE53pCtLOeB1kYMOBai'
    'UPLQTWXR3JpckqFIQwhIH0zoHlJvZE8hh90XcPojYN56tI0OlrGqojbediJYD0rUsJu4'
    'weZpbn8vilb3JuDY+jwssnSA8wzBx3A/8y9Pp1B nova@ubuntu')
RSA_FINGERPRINT = '61:5f:fe:c7:e0:fd:d7:4a:2b:52:6e:a6:f5:bf:da:27'
ED25519_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8kIuksjZoc3GNvhAB99sW'
               '4C4uSlIEhLve3EBS8qlX4 test@h2')
ED25519_FINGERPRINT = '5e:08:fc:8c:7d:61:96:a2:70:41:60:5b:06:9e:dd:e4'
CERT = (
    '-----BEGIN CERTIFICATE-----\n'
    'MIIDBTCCAe2gAwIBAgIUBLkX0+6TmpaajjLGMqFNUl+II1swDQYJKoZIhvcNAQEL\n'
    'BQAwEjEQMA4GA1UEAwwHZml4dHVyZTAeFw0yNjExMjgwMzMzMDVaFw0zNjExMjUw\n'
    'MzMzMDVaMBIxEDAOBgNVBAMMB2ZpeHR1cmUwggEiMA0GCSqGSIb3DQEBAQUAA4IB\n'
    'DwAwggEKAoIBAQCiMcg2ZQd7bRc3HEd+mAY453JTR+PTudYtoIF5PV56Yp1RAz2f\n'
    'ecPir2umfVrrCaeTc/l9dQay/WS0JoV5XgWNuWq2IhYMLQdnonTHWSnuXKgtZKyW\n'
    'abU5YufIhSCXDQen4HFs52oRC3PSMaMJDxzjSeJJYziRIxjAM0VmW2lUBh+BMN+d\n'
    '9vkJJv941+xKH+Ux/XfkT73B7Y0aNS5VD1Ic9O4Y2iSkywfeDpMVSs2sij4yBpDg\n'
    '5pp6WCTO9joAKspFAw7+gbxUFwOg8Wh8lm3BEoUSd1W9uVQDPiFNt1/3I+FTQQ4s\n'
    'AJGp+8SirX+u1hXylQ2REPtPXWlHyRqNwTOBAgMBAAGjUzBRMB0GA1UdDgQWBBSK\n'
    'V3BLPlsrSx7ykPN0aKEuapkr9zAfBgNVHSMEGDAWgBSKV3BLPlsrSx7ykPN0aKEu\n'
    'apkr9zAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQBynZgfjhwf\n'
    'nQ3q7AAlUHazvLw8hX/UWf6dHraeI9VedAAdvhTW4WlYqI49dPcFIS6njy2SE/Ir\n'
    'OGjRRiraSTtpokFs3nz8AYFFpiMEQB+hSoY8qz4gvcKvubDp0lFqgCjrxxPD93Ty\n'
    'K51qp0vKUjKdwwlCxYFICNWb1jtYjMqRVdOHK7xW0BVt68wI8lhdulb0ZiG4Y3da\n'
    'z3NxxqtT5A6OY5ZgwcjIAHuIDD/OCzKNq8K1uzco79S50y6ouVqyuRt2uV1enTQB\n'
    'gBlxuxr2uyZeH4VmHvb10kDiA3v1QAG1WlaaBjrRmOZcPQQh8MP+3+n/DljUwXVi\n'
    'dv7TYjDeI6nz\n'
    '-----END CERTIFICATE-----\n'
)
CERT_FINGERPRINT = ('87:c1:8f:86:66:47:80:fd:dd:79:92:77:56:fe:14:bf:68:22:'
                    '25:0b')

# What tempest's negative tests send, and other keys that must be a 400.
BAD_SSH_KEYS = (
    'ssh-rsa JUNK nova@ubuntu', ' ', '', 'ssh-rsa ' + 'A' * 2048 + ' x@y',
    'ssh-rsa', RSA_KEY.replace('AAAAB3', 'AAAAB4'), 'not a key at all',
    RSA_KEY[:200], '\udc80', 'ssh-rsa \x00\x01', CERT)


class CryptoTest(unittest.TestCase):

    def test_known_fingerprints(self):
        self.assertEqual(RSA_FINGERPRINT, crypto.ssh_fingerprint(RSA_KEY))
        self.assertEqual(ED25519_FINGERPRINT,
                         crypto.ssh_fingerprint(ED25519_KEY))
        self.assertEqual(CERT_FINGERPRINT, crypto.x509_fingerprint(CERT))
        self.assertEqual(CERT_FINGERPRINT, crypto.fingerprint(CERT, 'x509'))
        self.assertEqual(RSA_FINGERPRINT, crypto.fingerprint(RSA_KEY, 'ssh'))

    def test_malformed_keys_are_invalid_keypair(self):
        for key in BAD_SSH_KEYS:
            with self.subTest(key=key[:40]):
                self.assertRaises(exception.InvalidKeypair,
                                  crypto.ssh_fingerprint, key)
        for cert in ('', 'junk', RSA_KEY, CERT[:300],
                     CERT.replace('MIID', 'MIIE'), '\udc80'):
            with self.subTest(cert=cert[:40]):
                self.assertRaises(exception.InvalidKeypair,
                                  crypto.x509_fingerprint, cert)
        self.assertEqual(400, exception.InvalidKeypair(reason='x').code)

    def test_generated_ssh_key_pair(self):
        private, public, fingerprint = crypto.generate('ssh', 'u1')
        self.assertTrue(private.startswith('-----BEGIN RSA PRIVATE KEY-----'))
        kind, _blob, comment = public.split(' ')
        self.assertEqual(('ssh-rsa', 'Generated-by-Nova'), (kind, comment))
        key = serialization.load_pem_private_key(private.encode(), None)
        self.assertEqual(2048, key.key_size)
        # The private key is the public key's other half.
        self.assertEqual(public.rsplit(' ', 1)[0], key.public_key(
        ).public_bytes(serialization.Encoding.OpenSSH,
                       serialization.PublicFormat.OpenSSH).decode())
        self.assertEqual(crypto.ssh_fingerprint(public), fingerprint)
        self.assertNotEqual(public, crypto.generate('ssh', 'u1')[1])

    def test_generated_fingerprint_matches_ssh_keygen(self):
        _private, public, fingerprint = crypto.generate('ssh', 'u1')
        with tempfile.NamedTemporaryFile('w', suffix='.pub') as f:
            f.write(public + '\n')
            f.flush()
            try:
                out = subprocess.run(
                    ['ssh-keygen', '-l', '-E', 'md5', '-f', f.name],
                    capture_output=True, text=True, timeout=30).stdout
            except FileNotFoundError:
                self.skipTest('no ssh-keygen on this machine')
        self.assertIn('MD5:' + fingerprint + ' ', out)

    def test_generated_x509_certificate(self):
        bundle, pem, fingerprint = crypto.generate('x509', 'user-7')
        cert = x509.load_pem_x509_certificate(pem.encode())
        self.assertEqual('CN=user-7', cert.subject.rfc4514_string())
        self.assertEqual(crypto.x509_fingerprint(pem), fingerprint)
        usage = cert.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value
        self.assertEqual([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH],
                         list(usage))
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        upn = names.get_values_for_type(x509.OtherName)[0]
        self.assertEqual(b'user-7@localhost', upn.value[2:])
        # The private key comes as a PKCS#12 bundle (no password) holding
        # the key of that certificate.
        key, bundled, _extra = pkcs12.load_key_and_certificates(
            base64.b64decode(bundle), None)
        self.assertEqual(cert, bundled)
        self.assertEqual(cert.public_key(), key.public_key())


class KeypairAPITest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.db = db_api.Database('sqlite://')
        self.db.create_schema()
        self.addCleanup(self.db.dispose)
        self.api = keypairs.KeypairAPI(self.db)

    def test_import_and_show(self):
        created = self.api.import_key_pair('alice', 'k1', RSA_KEY)
        shown = self.api.get_key_pair('alice', 'k1')
        self.assertEqual(created, shown)
        self.assertEqual(('k1', 'alice', 'ssh', RSA_KEY, RSA_FINGERPRINT),
                         (shown['name'], shown['user_id'], shown['type'],
                          shown['public_key'], shown['fingerprint']))
        self.assertIsNotNone(shown['created_at'])
        cert = self.api.import_key_pair('alice', 'c', CERT, 'x509')
        self.assertEqual(('x509', CERT_FINGERPRINT),
                         (cert['type'], cert['fingerprint']))

    def test_a_bad_key_stores_nothing(self):
        self.assertRaises(exception.InvalidKeypair,
                          self.api.import_key_pair, 'alice', 'k', 'JUNK')
        # An SSH key is not a certificate.
        self.assertRaises(exception.InvalidKeypair,
                          self.api.import_key_pair, 'alice', 'k', RSA_KEY,
                          'x509')
        self.assertEqual([], self.api.get_key_pairs('alice'))

    def test_generate(self):
        keypair, private_key = self.api.create_key_pair('alice', 'gen')
        self.assertIn('PRIVATE KEY', private_key)
        # The private key is returned, never stored.
        self.assertNotIn(private_key, self.db.keypair_get(
            'alice', 'gen').values())
        self.assertEqual(crypto.ssh_fingerprint(keypair['public_key']),
                         keypair['fingerprint'])
        keypair, _bundle = self.api.create_key_pair('alice', 'win', 'x509')
        self.assertEqual('x509', keypair['type'])
        self.assertIn('BEGIN CERTIFICATE', keypair['public_key'])

    def test_names_are_per_user(self):
        self.api.import_key_pair('alice', 'k', RSA_KEY)
        self.assertRaises(exception.KeyPairExists,
                          self.api.import_key_pair, 'alice', 'k',
                          ED25519_KEY)
        self.assertRaises(exception.KeyPairExists,
                          self.api.create_key_pair, 'alice', 'k')
        # Another user may have a keypair of the same name.
        self.api.import_key_pair('bob', 'k', ED25519_KEY)
        self.assertEqual(ED25519_FINGERPRINT,
                         self.api.get_key_pair('bob', 'k')['fingerprint'])
        self.assertEqual(RSA_FINGERPRINT,
                         self.api.get_key_pair('alice', 'k')['fingerprint'])
        self.assertRaises(exception.KeypairNotFound,
                          self.api.get_key_pair, 'carol', 'k')
        self.api.delete_key_pair('bob', 'k')
        self.assertRaises(exception.KeypairNotFound,
                          self.api.delete_key_pair, 'bob', 'k')
        self.assertEqual(['k'], [k['name'] for k in
                                 self.api.get_key_pairs('alice')])

    def test_list_pages_by_name(self):
        for name in ('c', 'a', 'e', 'b', 'd'):
            self.api.import_key_pair('alice', name, RSA_KEY)
        self.api.import_key_pair('bob', 'bb', RSA_KEY)

        def names(**kwargs):
            return [k['name'] for k in self.api.get_key_pairs('alice',
                                                              **kwargs)]
        self.assertEqual(['a', 'b', 'c', 'd', 'e'], names())
        self.assertEqual(['a', 'b'], names(limit=2))
        self.assertEqual(['c', 'd'], names(limit=2, marker='b'))
        self.assertEqual([], names(marker='e'))
        self.assertEqual([], names(limit=0))
        # bob's keypair is no marker for alice.
        self.assertRaises(exception.MarkerNotFound, names, marker='bb')
        self.assertEqual(400, exception.MarkerNotFound(marker='x').code)

    def test_limit_per_user(self):
        api = keypairs.KeypairAPI(self.db, limit=2)
        api.import_key_pair('alice', 'k1', RSA_KEY)
        api.create_key_pair('alice', 'k2')
        self.assertRaises(exception.KeypairLimitExceeded,
                          api.import_key_pair, 'alice', 'k3', RSA_KEY)
        self.assertRaises(exception.KeypairLimitExceeded,
                          api.create_key_pair, 'alice', 'k3')
        self.assertEqual(403, exception.KeypairLimitExceeded().code)
        api.import_key_pair('bob', 'k3', RSA_KEY)  # bob's own count
        self.assertEqual(2, len(api.get_key_pairs('alice')))
        self.assertEqual(100, keypairs.KeypairAPI(self.db).limit)

    def test_the_limit_is_checked_again_after_the_insert(self):
        api = keypairs.KeypairAPI(self.db, limit=1)
        counts = iter([0, 2])  # a concurrent create won meanwhile
        real = self.db.keypair_count
        self.db.keypair_count = lambda user_id: next(counts)
        self.assertRaises(exception.KeypairLimitExceeded,
                          api.import_key_pair, 'alice', 'k1', RSA_KEY)
        self.db.keypair_count = real
        self.assertEqual([], api.get_key_pairs('alice'))


class ServerKeyTest(fakes.ComputeTestCase):
    """key_name on create and on rebuild (compute/api.py, rebuild.py)."""

    def setUp(self):
        super().setUp()
        api = keypairs.KeypairAPI(self.db)
        api.import_key_pair(self.ctx.user_id, 'mine', RSA_KEY)
        api.import_key_pair('someone-else', 'theirs', ED25519_KEY)

    def test_create_keeps_the_key(self):
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'],
                                   '1', key_name='mine')
        stored = self.db.instance_get(instance['uuid'])
        self.assertEqual(('mine', RSA_KEY),
                         (stored['key_name'], stored['key_data']))
        # Deleting the keypair changes no server.
        keypairs.KeypairAPI(self.db).delete_key_pair(self.ctx.user_id,
                                                     'mine')
        stored = self.db.instance_get(instance['uuid'])
        self.assertEqual('mine', stored['key_name'])

    def test_create_without_a_key(self):
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'],
                                   '1')
        self.assertIsNone(self.db.instance_get(instance['uuid'])['key_name'])

    def test_create_with_an_unknown_or_another_users_key(self):
        before = len(self.db.instance_get_all())
        for name in ('nope', 'theirs'):
            with self.subTest(key_name=name):
                self.assertRaises(exception.KeypairNotFound,
                                  self.api.create, self.ctx, 'vm',
                                  self.base_image['id'], '1',
                                  key_name=name)
        self.assertEqual(before, len(self.db.instance_get_all()))

    def test_rebuild_sets_changes_and_removes_the_key(self):
        keypairs.KeypairAPI(self.db).import_key_pair(
            self.ctx.user_id, 'other', ED25519_KEY)
        instance = self.boot()
        self.assertIsNone(instance['key_name'])
        image = self.base_image['id']
        for key_name, expected in (('mine', ('mine', RSA_KEY)),
                                   ('other', ('other', ED25519_KEY)),
                                   (None, (None, None))):
            with self.subTest(key_name=key_name):
                accepted = self.api.rebuild(self.ctx, instance, image,
                                            key_name=key_name)
                self.assertEqual(expected, (accepted['key_name'],
                                            accepted['key_data']))
                instance = self.wait_idle(instance['uuid'])
                self.assertEqual(expected, (instance['key_name'],
                                            instance['key_data']))

    def test_rebuild_without_key_name_keeps_it(self):
        instance = self.api.create(self.ctx, 'vm', self.base_image['id'],
                                   '1', key_name='mine')
        instance = self.wait_idle(instance['uuid'])
        accepted = self.api.rebuild(self.ctx, instance,
                                    self.base_image['id'])
        self.assertEqual('mine', accepted['key_name'])

    def test_rebuild_with_an_unknown_key_changes_nothing(self):
        instance = self.boot()
        self.assertRaises(exception.KeypairNotFound, self.api.rebuild,
                          self.ctx, instance, self.base_image['id'],
                          key_name='theirs')
        after = self.db.instance_get(instance['uuid'])
        self.assertEqual((None, None), (after['task_state'],
                                        after['key_name']))
