"""What the admin port checks on each request: transport, credentials, configuration policies, CORS.

Observed on a real Amlen (reference appendix "Observed later (2026-12-04)"):

- Open (``TLSEnabled`` false): plain HTTP, and TLS for a connection whose first byte is a ClientHello
  (Amlen's ``secure = 2`` listener), with the profile's certificate. ``TLSEnabled`` true: TLS only; a plain
  HTTP request gets no HTTP answer (the connection is closed).
- ``UseClientCertificate``: the handshake needs a certificate that verifies against the profile's trusted
  certificates (no partial chains); without one the handshake fails.
- ``UsePasswordAuthentication``: HTTP Basic against AdminUserID/AdminUserPassword; no credentials -> 401
  ``Not authorized``; a wrong password or another user -> 401 ``Bad request``.
- A request that no ConfigurationPolicy of the AdminEndpoint matches -> 401 ``Bad request``.
- Every answer to a request with an ``Origin`` reflects it (``Access-Control-Allow-Origin: <origin>``,
  ``Access-Control-Allow-Credentials: true``); ``OPTIONS`` is 200 with the preflight headers. Neither
  ``Content-Type`` nor ``Host`` is checked.

Chosen from Amlen's source where nothing was observed (``server_monitoring/src/restApi.c``): which actions of
a matching policy allow which request (``ACTIONS``); a matching policy without the action is 400 CWLNA0180.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from adminobjects import AdminPlane, password_matches
from messages import AmlenError
from policies import Identity, config_policy_matches, names

CORS_PREFLIGHT_HEADERS = (
    ("Access-Control-Allow-Methods", "GET, PUT, POST, DELETE"),
    ("Access-Control-Allow-Headers", "content-type"),
    ("Access-Control-Max-Age", "1728000"),
)
NOT_AUTHORIZED, BAD_REQUEST = "Not authorized", "Bad request"

# restApi.c: the ConfigurationPolicy actions that allow each kind of request (any one of them suffices).
_ANY = frozenset({"View", "Monitor", "Manage", "Configure"})
ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("configuration", "GET"): _ANY,
    ("configuration", "POST"): frozenset({"Configure"}),
    ("configuration", "DELETE"): frozenset({"Configure"}),
    ("monitor", "GET"): _ANY,
    ("file", "PUT"): frozenset({"Configure", "Manage"}),
    ("service", "GET"): _ANY,
    ("service", "POST"): frozenset({"Configure", "Manage"}),
    ("service", "DELETE"): frozenset({"Configure"}),
}


@dataclass(frozen=True)
class Refusal:
    """A 401 answer: a short text body, as Amlen's HTTP layer sends it."""

    text: str


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic <base64 user:password>`` -> (user, password); None when absent or not Basic."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    user, _, password = decoded.partition(":")
    return user, password


class PasswordCache:
    """Checked (user, password, stored hash) triples, so that PBKDF2 runs once per credential, not per request."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    def matches(self, stored: str, password: str) -> bool:
        tag = hmac.new(self._key, f"{stored}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            if tag in self._good:
                return True
        if not password_matches(stored, password):
            return False
        with self._lock:
            self._good.add(tag)
        return True


def common_name(peer_certificate: dict[str, Any] | None) -> str | None:
    """The verified client certificate's subject commonName (None without a certificate)."""
    for rdn in (peer_certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def check_request(
    plane: AdminPlane,
    passwords: PasswordCache,
    *,
    authorization: str | None,
    common_name: str | None,
    address: str,
    family: str,
    method: str,
) -> Refusal | None:
    """None when the request may go on; a 401 Refusal; AmlenError 400 CWLNA0180 when its action is not allowed."""
    credentials = basic_credentials(authorization)
    user: str | None = credentials[0] if credentials else None
    if plane.password_authentication:
        if credentials is None:
            return Refusal(NOT_AUTHORIZED)
        if credentials[0] != plane.user_id or not passwords.matches(plane.password_hash, credentials[1]):
            return Refusal(BAD_REQUEST)
    identity = Identity(client_id="", user_id=user, common_name=common_name, address=address, protocol="admin")
    matching = [policy for policy in plane.policies if config_policy_matches(policy, identity)]
    if not matching:
        return Refusal(BAD_REQUEST)
    wanted = ACTIONS.get((family, method))
    if wanted is None:
        return None  # not an admin action; routing answers it (400 CWLNA0137)
    if not any(wanted & set(names(policy.get("ActionList"))) for policy in matching):
        raise AmlenError(400, 180)
    return None
