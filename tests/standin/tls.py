"""An endpoint's server TLS context, built the way Amlen's ``server_utils/src/ssl.c`` builds it.

With ``UseClientCertificate`` the client must present a certificate from one of the profile's trusted CAs. With
a CRL profile on the security profile, the CRL (``data/certificates/CRL/<profile>/<file>``) is loaded into the
context and the leaf certificate is checked against it: a revoked client fails in the handshake. Like the
``_cafile.pem``, the CRL is read when the context is built, so a changed CRL reaches a running endpoint only when
its context is rebuilt (the security profile or the endpoint POSTed again).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

_MIN_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
}


@dataclass(frozen=True)
class TlsSettings:
    """What a security profile and its certificate profile contribute to a listener."""

    certificate: Path
    key: Path
    minimum_protocol: str
    use_client_cipher: bool
    require_client_certificate: bool
    trusted_ca_file: Path | None = None
    trusted_ca_path: Path | None = None
    crl_file: Path | None = None


def build_context(tls: TlsSettings) -> ssl.SSLContext:
    """The server TLS context of an endpoint (OSError or ssl.SSLError when a file is unusable)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # MinimumProtocolMethod only raises the floor; TLS 1.3 stays available, as on Amlen.
    context.minimum_version = _MIN_VERSIONS[tls.minimum_protocol]
    # Amlen loads the certificate file as a chain (SSL_CTX_use_certificate_chain_file: leaf first, then
    # intermediates, all served). Expiry is not checked. Neither sets SSL_MODE_NO_AUTO_CHAIN, so a leaf-only
    # file on a mutual endpoint is completed from the trust store by OpenSSL, as on Amlen.
    context.load_cert_chain(str(tls.certificate), str(tls.key))
    if not tls.use_client_cipher:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        # Amlen sets no X509_V_FLAG_PARTIAL_CHAIN: a client chain must end at a trusted self-signed root, so a
        # trusted intermediate alone admits nobody. Python's SSLContext() leaves the flag off (3.13 sets it only
        # in create_default_context); cleared here so that no Python version can change the contract.
        context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
        # The cafile is read now; the hashed directory is searched on each handshake, even if it is empty or
        # missing at this point. So a trusted CA added later is found without restarting the endpoint, as on
        # Amlen (reference 3.8).
        if tls.trusted_ca_file is not None and tls.trusted_ca_file.exists():
            context.load_verify_locations(cafile=str(tls.trusted_ca_file))
        if tls.trusted_ca_path is not None:
            context.load_verify_locations(capath=str(tls.trusted_ca_path))
        if tls.crl_file is not None:
            # A PEM CRL loads like a CA file; CHECK_LEAF then needs a CRL from the leaf's issuer.
            context.load_verify_locations(cafile=str(tls.crl_file))
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context
