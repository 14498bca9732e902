"""The guide's Amlen configuration as data, and how to converge a server to it and back.

One sequence serves `invoke up`, `invoke configure` (any running Amlen) and the testcontainers module:
`desired_objects` lists the objects in the order Amlen requires (a mutual-TLS endpoint needs its trusted CA
first, CWLNA0456), `converge` applies only what differs, `confirm_live` proves the endpoints listen (a 200
from Amlen is not a bound port), and `teardown` deletes in reverse dependency order.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lab.amlen.admin import AmlenClient, AmlenObject
from lab.deadline import Deadline
from lab.errors import AmlenError, CheckError
from lab.pki.info import describe_certificate
from lab.pki.paths import PkiPaths
from lab.settings import Settings

__all__ = [
    "EndpointProbe",
    "ObjectAction",
    "ObjectResult",
    "confirm_live",
    "converge",
    "desired_objects",
    "endpoint_probes",
    "fingerprint",
    "teardown",
]

# Properties Amlen accepts on POST but never returns (or returns transformed): not compared on read-back.
_WRITE_ONLY = {"Overwrite", "KeyFilePassword", "CertFilePassword"}


class ObjectAction(StrEnum):
    """What `converge` did with one object."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ObjectResult:
    """One object's outcome; `existed` tells `down` whether the lab may delete it later."""

    object: AmlenObject
    action: ObjectAction
    existed: bool


def fingerprint(data: bytes) -> str:
    """sha256 of a file's bytes: how the lab remembers which certificate Amlen holds."""
    return hashlib.sha256(data).hexdigest()


def desired_objects(settings: Settings, pki: PkiPaths) -> list[AmlenObject]:
    """The guide's objects, in the order Amlen accepts them (reference section 7).

    The mutual profile trusts the root alone (`lab.pki.chain.TRUST_ROOT_ONLY` says why), whatever the PKI.
    """
    # What the certificate profile names: the leaf, or leaf + intermediate(s) (+ root) in serving order.
    server_cert = pki.served_cert.read_bytes()
    server_key = pki.served_key.read_bytes()
    ca_cert = pki.ca_cert.read_bytes()
    # Your own encrypted key: Amlen decrypts it with KeyFilePassword (write-only: never read back).
    password = {"KeyFilePassword": settings.server_key_password.get_secret_value()} \
        if settings.server_key_password is not None else {}

    def security_profile(name: str, *, client_certs: bool) -> AmlenObject:
        # Every property is sent: Amlen's schema defaults differ from the WebUI's (UsePasswordAuthentication
        # defaults to true), and sending all of them makes a read-back comparison meaningful.
        return AmlenObject("SecurityProfile", name, {
            "TLSEnabled": True,
            "MinimumProtocolMethod": "TLSv1.2",
            "Ciphers": "Fast",
            "UseClientCertificate": client_certs,
            "UsePasswordAuthentication": False,
            "UseClientCipher": False,
            "CertificateProfile": settings.certificate_profile,
        })

    def endpoint(name: str, port: int, profile: str) -> AmlenObject:
        return AmlenObject("Endpoint", name, {
            "Enabled": True,
            "Port": port,
            "Interface": "All",
            "Protocol": "All",
            "MessageHub": settings.message_hub,
            "SecurityProfile": profile,
            "ConnectionPolicies": settings.connection_policy,
            "TopicPolicies": settings.topic_policy,
            "SubscriptionPolicies": settings.subscription_policy,
            "MaxMessageSize": "1024KB",
            "Description": "amlen-lab: the TLS guide's endpoint",
        })

    return [
        AmlenObject(
            "CertificateProfile",
            settings.certificate_profile,
            {"Certificate": pki.served_cert.name, "Key": pki.server_key.name, "Overwrite": True, **password},
            uploads={pki.served_cert.name: server_cert, pki.server_key.name: server_key},
        ),
        security_profile(settings.security_profile, client_certs=False),
        endpoint(settings.tls_endpoint, settings.tls_port, settings.security_profile),
        security_profile(settings.mutual_security_profile, client_certs=True),
        AmlenObject(
            "TrustedCertificate",
            f"{settings.mutual_security_profile}/{pki.ca_cert.name}",
            {"Overwrite": True},
            uploads={pki.ca_cert.name: ca_cert},
        ),
        endpoint(settings.mtls_endpoint, settings.mtls_port, settings.mutual_security_profile),
    ]


def converge(
    amlen: AmlenClient,
    objects: Sequence[AmlenObject],
    fingerprints: dict[str, str],
    *,
    progress: Callable[[str], None] = lambda _: None,
    on_result: Callable[[ObjectResult], None] = lambda _: None,
    fresh: bool = False,
) -> list[ObjectResult]:
    """Apply each object that is missing or differs; leave matching ones alone.

    `on_result` hears about each object as soon as it is done, so a failure half-way still leaves a record
    of what was created before it.

    `fingerprints` (file name -> sha256 of what Amlen holds) is read and updated in place: a changed
    certificate is re-uploaded with Overwrite. When a trusted CA is replaced, its SecurityProfile is posted
    again, because Amlen rebuilds an endpoint's trust list only when the endpoint's profile changes.

    `fresh`: the server was created moments ago and holds only its defaults, so nothing is read back first
    (the lab's objects cannot be there yet).
    """
    results: list[ObjectResult] = []
    for obj in objects:
        progress(obj.label)
        existing = None if fresh else _read(amlen, obj)
        same_files = all(fingerprints.get(name) == fingerprint(data) for name, data in obj.uploads.items())
        if existing is not None and same_files and _matches(obj, existing):
            results.append(ObjectResult(obj, ObjectAction.UNCHANGED, existed=True))
            on_result(results[-1])
            continue
        amlen.apply(obj)
        for name, data in obj.uploads.items():
            fingerprints[name] = fingerprint(data)
        if obj.type == "TrustedCertificate" and not fresh:
            # Amlen builds an endpoint's trust list from its profile: attaching (or replacing) a CA takes
            # effect on running endpoints only when the profile is posted again (reference 3.8). On a fresh
            # server the profile's endpoint is created after this, with the CA already attached.
            profile = obj.name.partition("/")[0]
            for other in objects:
                if other.type == "SecurityProfile" and other.name == profile:
                    amlen.apply(other)
        action = ObjectAction.CREATED if existing is None else ObjectAction.UPDATED
        results.append(ObjectResult(obj, action, existed=existing is not None))
        on_result(results[-1])
    return results


def _read(amlen: AmlenClient, obj: AmlenObject) -> Mapping[str, Any] | None:
    if obj.type == "TrustedCertificate":
        profile, _, file_name = obj.name.partition("/")
        entries = amlen.get("TrustedCertificate", profile) or {}
        return entries.get(file_name)
    return amlen.get(obj.type, obj.name)


def _matches(obj: AmlenObject, existing: Mapping[str, Any]) -> bool:
    wanted = {k: v for k, v in obj.properties.items() if k not in _WRITE_ONLY}
    if any(existing.get(k) != v for k, v in wanted.items()):
        return False
    if obj.type == "CertificateProfile":
        # Amlen shows the certificate's expiry: a different one means a different certificate.
        expiry = describe_certificate(obj.uploads[obj.properties["Certificate"]]).not_after
        return existing.get("ExpirationDate") == expiry.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return True


def teardown(amlen: AmlenClient, objects: Iterable[AmlenObject]) -> list[str]:
    """Delete `objects` in reverse order (endpoints before profiles); returns the labels deleted.

    Objects that are already gone are skipped, so teardown can always be run again.
    """
    deleted = []
    for obj in reversed(list(objects)):
        if amlen.delete(obj.type, obj.name):
            deleted.append(obj.label)
    return deleted


@dataclass(frozen=True)
class EndpointProbe:
    """How to prove one endpoint: its Amlen name, where clients reach it, and a client TLS context for it."""

    name: str
    host: str
    port: int
    context: ssl.SSLContext
    client_id: str = ""  # empty: a random one; an endpoint whose policy checks client IDs needs a matching one


def endpoint_probes(settings: Settings, pki: PkiPaths, host: str, tls_port: int, mtls_port: int) -> list[EndpointProbe]:
    """The guide's two endpoints as clients reach them at `host`: trusting only the lab CA and checking the
    lab's host name (sent by TLS even when dialling an address); the mutual one with the first client
    certificate."""
    from lab.clients.tls import tls_context

    if not settings.client_names:
        raise CheckError("no client certificate is configured (LAB_CLIENT_NAMES is empty), so the mutual-TLS "
                         "endpoint cannot be proven", "set LAB_CLIENT_NAMES, e.g. test.client1")
    key, cert = pki.client_presented(settings.client_names[0])
    system = pki.server_trust is None  # your own certificate from a public CA: the system's trust store
    plain = tls_context(ca_file=pki.server_trust, server_name=settings.hostname, system_trust=system)
    mutual = tls_context(ca_file=pki.server_trust, cert=cert, key=key, server_name=settings.hostname,
                         system_trust=system)
    return [EndpointProbe(settings.tls_endpoint, host, tls_port, plain),
            EndpointProbe(settings.mtls_endpoint, host, mtls_port, mutual)]


def confirm_live(
    amlen: AmlenClient,
    probes: Sequence[EndpointProbe],
    *,
    timeout: float = 20.0,
    diagnose: Callable[[str], list[str]] = lambda _name: [],
) -> None:
    """Wait until every endpoint is in Amlen's monitor and answers an MQTT CONNECT with a CONNACK.

    A 200 from Amlen is not a bound port, Docker's port proxy accepts TCP even when nothing listens inside,
    and a TLS handshake is not enough either: under 1 GiB of memory Amlen completes nothing and closes every
    connection (CWLNA1119). Only a CONNACK proves the endpoint. The wait is pause-aware (`lab.deadline`);
    when it runs out, `diagnose(name)` (Amlen's log, in words) names the cause.
    """
    with ThreadPoolExecutor(max_workers=max(len(probes), 1), thread_name_prefix="live") as pool:
        # One endpoint at a time would add their handshakes up; each probe has its own deadline.
        for done in [pool.submit(_prove, amlen, probe, timeout, diagnose) for probe in probes]:
            done.result()


def _prove(admin: AmlenClient, probe: EndpointProbe, timeout: float, diagnose: Callable[[str], list[str]]) -> None:
    from lab.clients.mqtt import try_connect  # paho only for this proof

    deadline = Deadline(timeout)
    problem = ""
    with admin.clone() as amlen:  # a session per thread: Amlen serves one request per connection
        while True:
            entry = amlen.endpoint_monitor(probe.name)
            if entry is None:
                problem = "it is missing from Amlen's endpoint monitor (port held by another process?)"
            elif not entry.get("Enabled") or entry.get("LastErrorCode"):
                problem = f"the monitor shows Enabled={entry.get('Enabled')} LastErrorCode={entry.get('LastErrorCode')}"
            else:
                outcome = try_connect(probe.host, probe.port, context=probe.context,
                                      timeout=max(deadline.cap(5.0), 1.0), client_id=probe.client_id)
                if outcome.accepted:
                    break
                problem = f"MQTT CONNECT got {outcome.reason}"
                # Refused outright (not silence): when Amlen's log already says why, waiting cannot help.
                causes = [] if outcome.silent else diagnose(probe.name)
                if causes:
                    raise AmlenError(f"Endpoint {probe.name} takes no connection on {probe.host}:{probe.port}: "
                                     f"{causes[0]}", f"the client saw: {problem}")
            if deadline.expired():
                causes = diagnose(probe.name)
                raise AmlenError(
                    f"Endpoint {probe.name} was accepted but is not live on {probe.host}:{probe.port}: "
                    + (causes[0] if causes else problem),
                    "run `invoke doctor`, and `invoke logs` for Amlen's side" if not causes
                    else f"(the client saw: {problem})",
                )
            time.sleep(0.1)
