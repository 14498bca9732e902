"""The kit's PKCS#12 files: the client's keystore (key + chain) and a Java truststore (the CA only).

Modern by default: AES-256-CBC with PBKDF2-HMAC-SHA256 and an HMAC-SHA256 MAC, what OpenSSL 3's
`openssl pkcs12 -export` writes and Java >= 8u301 / 11.0.12 / 17 read. `legacy=True` writes the old form
(PBE-SHA1-3DES for key and certificates, HMAC-SHA1 MAC) that Java 8 before 8u301, OpenSSL 1.1 and older
Windows need: `openssl pkcs12 -export -legacy` (or OpenSSL 1.1's default) makes the same.

The truststore is `cryptography`'s `serialize_java_truststore`: each certificate bag carries Oracle's
trusted-key-usage attribute (OID 2.16.840.1.113894.746875.1.1), without which Java's PKCS12 KeyStore reads a
certificate entry but does not treat it as trusted (keytool -importcert adds the same attribute).

Both files are randomised (salts and IVs), so the writer keeps them while their inputs are unchanged:
`inputs_digest` is what it compares.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from lab.errors import KitError

__all__ = ["KDF_ROUNDS", "TRUSTSTORE_ALIAS", "inputs_digest", "keystore", "new_password", "truststore"]

# PBKDF2 iterations: OpenSSL 3's default for `pkcs12 -export` (PKCS12_DEFAULT_ITER). The password is 32 random
# characters, not a human's, so more rounds would buy no strength, only time (x2 files x 200 seats).
KDF_ROUNDS = 2048
# The truststore's one entry; keytool prints it as the alias.
TRUSTSTORE_ALIAS = "amlen-lab-ca"
# Bumped when the way the files are made changes, so existing kits are made again.
_FORMAT = b"amlen-lab-kit-p12/1"
# What PKCS#12 holds (not X25519/X448): pkcs12.PKCS12PrivateKeyTypes as classes.
_P12_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey,
             dsa.DSAPrivateKey)


def new_password() -> str:
    """A generated kit password: 32 URL-safe characters (192 bits), no character a shell or Java escapes."""
    return secrets.token_urlsafe(24)


def _encryption(password: str, *, legacy: bool) -> serialization.KeySerializationEncryption:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(KDF_ROUNDS)
    if legacy:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
    else:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    return builder.build(password.encode())


def keystore(name: str, key: PrivateKeyTypes, chain: Sequence[x509.Certificate], password: str, *,
             legacy: bool = False) -> bytes:
    """The client's PKCS#12: its key and certificate (friendly name `name`), then the intermediates of `chain`."""
    if not isinstance(key, _P12_KEYS):
        raise KitError(f"the key of {name} cannot go into a PKCS#12 file", "re-issue it with `invoke client-cert`")
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, chain[0], list(chain[1:]) or None, _encryption(password, legacy=legacy))


def truststore(ca: x509.Certificate, password: str, *, legacy: bool = False) -> bytes:
    """A PKCS#12 truststore holding `ca` as a trusted certificate entry (alias TRUSTSTORE_ALIAS)."""
    entry = pkcs12.PKCS12Certificate(ca, TRUSTSTORE_ALIAS.encode())
    return pkcs12.serialize_java_truststore([entry], _encryption(password, legacy=legacy))


def inputs_digest(*parts: bytes, legacy: bool) -> str:
    """A digest of everything a p12 file is made from (the DER or PEM parts, the password, the form)."""
    digest = hashlib.sha256(_FORMAT + (b"legacy" if legacy else b"modern"))
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()
