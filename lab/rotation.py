"""`invoke certs --rotate`: a new server certificate on the live broker, proven without dropping anyone.

The drill a real PKI makes routine: issue a new server key and certificate from the same CA (new serial),
upload it with `Overwrite: true`, and prove three things on the running lab: both endpoints now present the
new serial; an MQTT subscription opened before the rotation still receives (Amlen rebuilds the endpoint's TLS
context for new connections and keeps open ones); and a new connection verifies the new chain against the
root. Old and new serial and expiry are reported.
"""

from __future__ import annotations

import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lab.amlen.admin import is_ready
from lab.amlen.adminsec import admin_client
from lab.amlen.configure import converge, desired_objects
from lab.clients.mqtt import listen, publish
from lab.clients.tls import handshake, tls_context
from lab.deadline import Deadline
from lab.errors import CertError, CheckError
from lab.files import lab_lock
from lab.ledger import Ledger
from lab.pki.disk import read_cert
from lab.pki.leaves import rotate_server
from lab.pki.lint import check_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = ["Rotation", "rotate"]

_TOPIC = "topic1/rotation"
# Amlen restarts the endpoint's TLS context at once; a loaded machine may take a few seconds to show it.
_SERVE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Rotation:
    """What the drill saw: the old and new server certificate, and the three proofs."""

    old_serial: str
    old_expiry: str
    new_serial: str
    new_expiry: str
    served: dict[int, str]  # port -> the serial that port presents now
    kept_subscription: str  # what the subscription opened before the rotation received
    new_connection: str  # how a fresh, verifying connection fared
    seconds: float


def rotate(settings: Settings) -> Rotation:
    """Rotate the server certificate on the running lab; CertError/CheckError when a proof fails."""
    if settings.server_cert is not None:
        raise CertError("the server certificate is your own (LAB_SERVER_CERT): the lab cannot issue a new one",
                        "get the new certificate from your CA, point LAB_SERVER_CERT/LAB_SERVER_KEY at it, "
                        "then `invoke up` uploads it")
    started = time.monotonic()
    paths = pki_paths(settings)
    with lab_lock(settings.lab_dir), admin_client(settings) as amlen:
        if not is_ready(amlen.status()) or amlen.get("CertificateProfile", settings.certificate_profile) is None:
            raise CheckError(f"the lab is not up at {settings.admin_base_url}",
                             "run `invoke up` first; --rotate proves the new certificate on the live broker")
        old = read_cert(paths.server_cert)
        nonce = secrets.token_hex(4)
        topic = f"{_TOPIC}/{nonce}"
        # A context per client: a lab context closes every socket it opened when its session ends.
        with listen(settings.host_ip, settings.tls_port, topic, context=_trusting(paths.ca_cert, settings)) \
                as listener:
            publish(settings.host_ip, settings.tls_port, topic, ["before"], qos=1,
                    context=_trusting(paths.ca_cert, settings))
            if not listener.wait_for(1):
                raise CheckError("the subscription opened for the drill received nothing before the rotation",
                                 "`invoke verify` checks the lab first")
            rotate_server(settings)
            check_certificates(settings)
            ledger = Ledger.load(settings.state_file)
            converge(amlen, desired_objects(settings, paths), ledger.fingerprints)
            ledger.save()
            new = read_cert(paths.server_cert)
            served = _wait_until_served(settings, new)
            publish(settings.host_ip, settings.tls_port, topic, ["after"], qos=1,
                    context=_trusting(paths.ca_cert, settings))
            if not listener.wait_for(2):
                raise CheckError("the subscription opened before the rotation stopped receiving after it",
                                 "`invoke logs`: did Amlen close the connection when the profile changed?")
    return Rotation(
        old_serial=f"{old.serial_number:X}", old_expiry=f"{old.not_valid_after_utc:%Y-%m-%d}",
        new_serial=f"{new.serial_number:X}", new_expiry=f"{new.not_valid_after_utc:%Y-%m-%d}",
        served=served,
        kept_subscription="received the message published before and the one published after the rotation",
        new_connection=f"a new connection verified the new chain against {paths.ca_cert.name} and published",
        seconds=time.monotonic() - started,
    )


def _trusting(ca: Path, settings: Settings) -> ssl.SSLContext:
    return tls_context(ca_file=ca, server_name=settings.hostname)


def _wait_until_served(settings: Settings, new: x509.Certificate) -> dict[int, str]:
    """Poll each endpoint until it presents `new` (pause-aware deadline); CheckError when one never does."""
    want = f"{new.serial_number:X}"
    served: dict[int, str] = {}
    for port in (settings.tls_port, settings.mtls_port):
        deadline = Deadline(_SERVE_TIMEOUT)
        while True:
            seen = handshake(settings.host_ip, port, context=tls_context(ca_file=None),
                             server_name=settings.hostname, timeout=5)
            leaf = x509.load_der_x509_certificate(seen.chain[0]) if seen.chain else None
            served[port] = f"{leaf.serial_number:X}" if leaf is not None else f"nothing ({seen.error})"
            if served[port] == want:
                break
            if deadline.expired():
                raise CheckError(f"port {port} still presents serial {served[port]}, not the new {want}",
                                 "`invoke doctor` shows what each endpoint presents")
            time.sleep(0.1)
    return served
