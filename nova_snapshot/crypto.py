"""Keypair material: generation and fingerprints (``cryptography``).

As Nova computes them, so a client compares what it sees with what
``ssh-keygen -l -E md5`` or ``openssl x509 -fingerprint -sha1`` print:

* an SSH public key (``<type> <base64> [comment]``): checked by loading
  it, its fingerprint the MD5 of the decoded key blob, colon-separated
  hex;
* an X509 certificate (PEM): its fingerprint the SHA-1 of the certificate
  (DER), colon-separated lower-case hex.

Generation (below microversion 2.92): an RSA 2048 key; for ``ssh`` the
private key as PEM (traditional OpenSSL format) and the public key in
OpenSSH form with Nova's comment; for ``x509`` a self-signed client
certificate for ``CN=<user id>`` (ten years, extendedKeyUsage clientAuth,
the user principal name ``<user id>@localhost`` as subjectAltName) and
the private key with it as a base64 PKCS#12 bundle without password (what
Windows' WinRM imports), as Nova's ``generate_winrm_x509_cert`` makes.

Anything malformed is :class:`exception.InvalidKeypair` (a 400), never an
error of the library.
"""

import base64
import binascii
import datetime
import hashlib

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID
from cryptography.x509.oid import ObjectIdentifier

from nova_snapshot import exception

KEY_BITS = 2048
# The comment Nova puts on the public keys it generates (clients and
# scripts may look for it).
GENERATED_COMMENT = 'Generated-by-Nova'
# Microsoft's User Principal Name, the otherName WinRM maps to a user.
_UPN_OID = ObjectIdentifier('1.3.6.1.4.1.311.20.2.3')
_CERT_DAYS = 3650


def _colons(hex_digest):
    return ':'.join(hex_digest[i:i + 2] for i in range(0, len(hex_digest), 2))


def ssh_fingerprint(public_key):
    """The MD5 fingerprint of an OpenSSH public key line.

    :raises: InvalidKeypair when it is not one ``cryptography`` loads.
    """
    try:
        serialization.load_ssh_public_key(public_key.encode('utf-8'))
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except Exception:  # noqa: BLE001 - any failure means a bad key
        raise exception.InvalidKeypair(
            reason='failed to generate fingerprint')
    return _colons(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(pem):
    """The SHA-1 fingerprint of a PEM certificate.

    :raises: InvalidKeypair when it is not one.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem.encode('utf-8'))
        digest = cert.fingerprint(hashes.SHA1())  # noqa: S303 - Nova's
    except Exception as exc:  # noqa: BLE001 - any failure: a bad cert
        raise exception.InvalidKeypair(
            reason='failed to generate X509 fingerprint. Error message: '
                   '%s' % exc)
    return _colons(binascii.hexlify(digest).decode('ascii'))


def fingerprint(public_key, key_type):
    """The fingerprint of an imported key of ``key_type`` (ssh, x509)."""
    if key_type == 'x509':
        return x509_fingerprint(public_key)
    return ssh_fingerprint(public_key)


def generate_ssh_key_pair(bits=KEY_BITS):
    """(private key PEM, OpenSSH public key line, fingerprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode('ascii')
    public = '%s %s' % (key.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode('ascii'),
        GENERATED_COMMENT)
    return private, public, ssh_fingerprint(public)


def generate_x509_cert(user_id, bits=KEY_BITS):
    """(base64 PKCS#12 of key and certificate, certificate PEM,
    fingerprint) of a new client certificate for ``user_id``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    upn = ('%s@localhost' % user_id).encode('utf-8')
    # otherName's value is a DER UTF8String: tag 0x0c, then the length.
    upn_der = b'\x0c' + _der_length(len(upn)) + upn
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=_CERT_DAYS))
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.OtherName(_UPN_OID, upn_der)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode('ascii')
    bundle = pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption())
    return (base64.b64encode(bundle).decode('ascii'), pem,
            x509_fingerprint(pem))


def _der_length(length):
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(octets)]) + octets


def generate(key_type, user_id):
    """(private key, public key, fingerprint) of a new key of
    ``key_type``."""
    if key_type == 'x509':
        return generate_x509_cert(user_id)
    return generate_ssh_key_pair()
