"""Keypairs: import, generate, list, show, delete (Nova's KeypairAPI).

A keypair belongs to a user, not to a project: its name is unique per
user, and a user sees the same keypairs from every project. A server
keeps the name and the public key it was created (or rebuilt) with, so
deleting a keypair changes no server.

A user holds at most :data:`KEY_PAIRS_PER_USER` keypairs (Nova's
``[quota] key_pairs`` default); like Nova, the count is checked before
the insert and again after it, and the loser of a race removes its own
row.
"""

from nova_snapshot import crypto
from nova_snapshot import exception

KEY_PAIRS_PER_USER = 100
SSH = 'ssh'
X509 = 'x509'
TYPES = (SSH, X509)


class KeypairAPI:
    """Keypairs in the state database (``db``: a db.api.Database)."""

    def __init__(self, db, limit=KEY_PAIRS_PER_USER):
        self.db = db
        self.limit = limit

    def _check_quota(self, user_id, delta):
        if self.db.keypair_count(user_id) + delta > self.limit:
            raise exception.KeypairLimitExceeded()

    def _store(self, user_id, name, key_type, public_key, fingerprint):
        self._check_quota(user_id, 1)
        keypair = self.db.keypair_create({
            'user_id': user_id, 'name': name, 'type': key_type,
            'public_key': public_key, 'fingerprint': fingerprint})
        try:
            self._check_quota(user_id, 0)
        except exception.KeypairLimitExceeded:
            self._destroy_quietly(user_id, name)
            raise
        return keypair

    def _destroy_quietly(self, user_id, name):
        try:
            self.db.keypair_destroy(user_id, name)
        except exception.KeypairNotFound:
            pass

    def import_key_pair(self, user_id, name, public_key, key_type=SSH):
        """Store a public key (or an X509 certificate) the caller has.

        :raises: InvalidKeypair (400), KeyPairExists (409),
            KeypairLimitExceeded (403)
        """
        fingerprint = crypto.fingerprint(public_key, key_type)
        return self._store(user_id, name, key_type, public_key, fingerprint)

    def create_key_pair(self, user_id, name, key_type=SSH):
        """Generate a keypair (below 2.92); returns (keypair, private key).

        The private key is only returned, never stored.
        """
        # Quota and name first: no 2048-bit key is made for nothing.
        self._check_quota(user_id, 1)
        try:
            self.db.keypair_get(user_id, name)
        except exception.KeypairNotFound:
            pass
        else:
            raise exception.KeyPairExists(key_name=name)
        private_key, public_key, fingerprint = crypto.generate(key_type,
                                                               user_id)
        keypair = self._store(user_id, name, key_type, public_key,
                              fingerprint)
        return keypair, private_key

    def get_key_pair(self, user_id, name):
        """:raises: KeypairNotFound"""
        return self.db.keypair_get(user_id, name)

    def get_key_pairs(self, user_id, limit=None, marker=None):
        """:raises: MarkerNotFound"""
        return self.db.keypair_list(user_id, limit=limit, marker=marker)

    def delete_key_pair(self, user_id, name):
        """:raises: KeypairNotFound"""
        self.db.keypair_destroy(user_id, name)
