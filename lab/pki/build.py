"""What the lab's certificates look like, and the builders that make them with `cryptography`.

The profile (key size, names, usages, lifetimes' clock skew) is public so `invoke guide` writes the same
certificates as openssl commands; `lab.pki.ca` and `lab.pki.leaves` decide when to make which file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_COMMON_NAME",
    "CA_KEY_USAGE",
    "CA_PATH_LENGTH",
    "CLIENT_EKU",
    "CLIENT_KEY_USAGE",
    "CLOCK_SKEW",
    "INTERMEDIATE_COMMON_NAME",
    "KEY_BITS",
    "ORGANIZATION",
    "RENEW_WITHIN_DAYS",
    "ROOT_PATH_LENGTH_TWO_TIER",
    "SERVER_EKU",
    "SERVER_KEY_USAGE",
    "SIGNATURE_HASH",
    "KeyPool",
    "LabCa",
    "ServerNames",
    "build_ca_cert",
    "build_intermediate",
    "build_leaf",
    "cert_pem",
    "key_pem",
    "key_stream",
    "key_usage",
    "lifetime_days",
    "new_key",
    "new_keys",
    "now",
    "subject_name",
]

# RSA only: Amlen checks keys with `openssl rsa -check` and matches them to certificates by modulus.
KEY_BITS = 2048
# A leaf this close to its end is re-issued by `invoke certs`, so a lab started today lasts a workshop.
RENEW_WITHIN_DAYS = 30
# Back-date notBefore a little so a container whose clock is slightly behind the host accepts new certs.
CLOCK_SKEW = dt.timedelta(minutes=5)
# The certificate profiles below are public so `invoke guide` writes the same ones as openssl commands.
ORGANIZATION = "amlen-lab"
CA_COMMON_NAME = "amlen-lab toy CA"
SIGNATURE_HASH = hashes.SHA256()
# pathlen 0: the toy CA signs leaves only, never another CA.
CA_PATH_LENGTH = 0
# LAB_PKI=intermediate: the root may sign one CA (pathlen 1), the intermediate leaves only (pathlen 0).
ROOT_PATH_LENGTH_TWO_TIER = 1
INTERMEDIATE_COMMON_NAME = "amlen-lab toy intermediate CA"
# KeyUsage flags by cryptography's field names. The server set is the guide's; a client certificate gets
# clientAuth only, so it cannot pose as a server (mkcert adds both; we do not).
CA_KEY_USAGE = ("key_cert_sign", "crl_sign")
SERVER_KEY_USAGE = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment")
CLIENT_KEY_USAGE = ("digital_signature", "key_encipherment")
SERVER_EKU = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_EKU = ExtendedKeyUsageOID.CLIENT_AUTH

@dataclass(frozen=True)
class LabCa:
    """A lab CA, key decrypted, for signing leaves and CRLs in this process (never written out like this).

    `chain` is what goes after a leaf it signed, so that a client trusting only the root can follow: the
    intermediate itself when this is one, nothing when this is the root.
    """

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class ServerNames:
    """What the server certificate must name: DNS names (the first is the lab's host name) and IP addresses."""

    dns: tuple[str, ...]
    ips: tuple[str, ...] = ()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def new_keys(count: int) -> list[rsa.RSAPrivateKey]:
    """`count` fresh RSA keys, made on every core: key generation dominates issuing a room of certificates.

    Threads, not processes: cryptography >= 47 releases the GIL while it generates (measured on 2 cores: 30
    keys in 0.72 s with two threads, 0.93 s with a spawned process pool, 1.5 s serially), and threads need
    neither fork (unsafe next to the docker SDK's and rich's threads) nor a re-import of the caller's __main__.
    With an older cryptography the threads take turns, which costs nothing over a plain loop.
    """
    return list(key_stream(count))


def key_stream(count: int) -> Iterator[rsa.RSAPrivateKey]:
    """`count` fresh RSA keys, made on every core and handed over one by one as they are ready.

    What the caller does with each key (sign a certificate, write and fsync its files: I/O, not CPU) overlaps
    the making of the next ones, instead of waiting for the whole batch: a room of 200 seats is then about
    as fast as its keys alone. Keys not yet taken when the caller stops are not made.
    """
    workers = min(count, os.cpu_count() or 1)
    if workers <= 1:
        for _ in range(count):
            yield new_key()
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rsa-keygen")
    try:
        futures = [pool.submit(new_key) for _ in range(count)]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class KeyPool:
    """RSA keys made ahead, on every core, for a set about to be made from nothing (a cold `up`).

    A fresh set needs its keys one after another (root, intermediate, server, clients), and each waits for the
    one before; made ahead in parallel, two cores halve that. `take()` hands out a made key, or makes one
    when the pool is empty; keys not taken are never used. The pool's threads end with the `with` block.
    """

    def __init__(self, count: int) -> None:
        workers = max(1, min(count, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rsa-keygen")
        self._ahead = deque(self._pool.submit(new_key) for _ in range(count))

    def take(self) -> rsa.RSAPrivateKey:
        """A fresh key (made ahead if the pool still has one)."""
        return self._ahead.popleft().result() if self._ahead else new_key()

    def take_many(self, count: int) -> Iterator[rsa.RSAPrivateKey]:
        """`count` fresh keys, one by one: the pool's first, the rest made in parallel (see `key_stream`)."""
        ahead = min(count, len(self._ahead))
        for _ in range(ahead):
            yield self.take()
        yield from key_stream(count - ahead)

    def __enter__(self) -> KeyPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        for future in self._ahead:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


def subject_name(cn: str) -> x509.Name:
    """The subject of every certificate the lab makes: CN=`cn`, O=amlen-lab (in that order)."""
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
    ])


def build_ca_cert(key: rsa.RSAPrivateKey, *, days: int, cn: str = CA_COMMON_NAME,
                  path_length: int = CA_PATH_LENGTH) -> x509.Certificate:
    """A self-signed root: CA:TRUE with `path_length`, keyCertSign/cRLSign, its own SKI as AKI."""
    start = now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject_name(cn))
        .issuer_name(subject_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(CA_KEY_USAGE), critical=True)
        .add_extension(ski, critical=False)
        # Self-referencing AKI: strict verifiers (Python >= 3.13's VERIFY_X509_STRICT) like it present.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, SIGNATURE_HASH)
    )


def build_intermediate(root: LabCa, key: rsa.RSAPrivateKey, *, days: int) -> x509.Certificate:
    """The intermediate CA under `root`: CA:TRUE pathlen 0 (it signs leaves only), keyCertSign/cRLSign."""
    start = now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject_name(INTERMEDIATE_COMMON_NAME))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(min(start + dt.timedelta(days=days), root.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(CA_KEY_USAGE), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(root), critical=False)
        .sign(root.key, SIGNATURE_HASH)
    )


def _authority_key_id(ca: LabCa) -> x509.AuthorityKeyIdentifier:
    try:
        ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        # ca.cert's key, typed as RSA: the CA was made from this key or checked to match it.
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())


def build_leaf(
    ca: LabCa, key: rsa.RSAPrivateKey, name: str, *, days: int, server: ServerNames | None = None,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """A server certificate (SAN DNS:name and `server`'s names, serverAuth) or a client one (CN=name, clientAuth).

    Valid from `not_before` (default: now, less the clock skew) for `days` (a negative span: the expiry drill's
    certificate that expired already), never past the CA's end.
    """
    start = not_before or now() - CLOCK_SKEW
    # Never outlive the CA: a chain is only as valid as its shortest link.
    not_after = min(start + CLOCK_SKEW + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
    aki = _authority_key_id(ca)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name(name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if server is not None:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys((name, *server.dns))]
        sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in server.ips]
        builder = (
            builder.add_extension(key_usage(SERVER_KEY_USAGE), critical=True)
            .add_extension(x509.ExtendedKeyUsage([SERVER_EKU]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        )
    else:
        builder = builder.add_extension(key_usage(CLIENT_KEY_USAGE), critical=True).add_extension(
            x509.ExtendedKeyUsage([CLIENT_EKU]), critical=False
        )
    return builder.sign(ca.key, SIGNATURE_HASH)


def key_usage(flags: tuple[str, ...]) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{n: n in flags for n in names})


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # Unencrypted PKCS#1 ("BEGIN RSA PRIVATE KEY"), what the guide's `openssl genrsa` gives and Amlen reads.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def lifetime_days(cert: x509.Certificate) -> int:
    """Whole days from now until `cert` expires."""
    return round((cert.not_valid_after_utc - now()).total_seconds() / 86400)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


