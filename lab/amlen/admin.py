"""A small client for Amlen's REST admin API, in the lab's words.

It uploads files, applies and reads objects, deletes them, and reads the server and endpoint status. One
request at a time (Amlen closes a connection that pipelines). Amlen's CWLNA error codes become `AmlenError`s
whose message names the object and whose hint names the fix: this is the only module that reads them.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from lab.errors import AmlenError

__all__ = ["CODE_HINTS", "AmlenClient", "AmlenObject", "is_ready", "payload"]

# Every error code the reference records (amlen-admin-api.md, section 2.3 and the appendix), with what a
# lab user should do about it. tests/test_amlen.py keeps this list complete.
CODE_HINTS: dict[str, str] = {
    "CWLNA0100": "Amlen reported a system error; look at `invoke logs`",
    "CWLNA0102": "this Amlen cannot do that (e.g. fetch a CRL from a URL); the lab uploads its CRL as a file",
    "CWLNA0111": "a property name is not one Amlen knows; this is a lab bug, please report it",
    "CWLNA0112": "a property value is out of range; check the LAB_* port and name settings",
    "CWLNA0113": "the object does not exist (already deleted?)",
    "CWLNA0115": "an argument is not valid; check object names for trailing spaces",
    "CWLNA0122": "an object name starts with a digit or punctuation, or holds , = \" \\; rename it in .env",
    "CWLNA0127": "a property has the wrong JSON type; this is a lab bug, please report it",
    "CWLNA0130": "Amlen is not running yet, so it has no monitoring data; wait for it (`invoke status`)",
    "CWLNA0133": "an object name is too long (SecurityProfile names: at most 32 characters)",
    "CWLNA0134": "a required property is missing; this is a lab bug, please report it",
    "CWLNA0136": "an object it refers to does not exist; run `invoke up` again to recreate the chain",
    "CWLNA0137": "Amlen has no such REST action (it cannot disconnect a client, for one)",
    "CWLNA0139": "a policy needs a filter (ClientID, CommonNames, ...); this is a lab bug, please report it",
    "CWLNA0140": "this Amlen does not know that object type; is LAB_IMAGE an Amlen server?",
    "CWLNA0167": "Amlen is still starting (or stopping); wait for it (`invoke status`) and run the command again",
    "CWLNA0138": "a property name is not one this Amlen version knows; this is a lab bug, please report it",
    "CWLNA0155": "another Amlen endpoint already uses that port; choose another LAB_TLS_PORT/LAB_MTLS_PORT",
    "CWLNA0186": "a TLS security profile needs a certificate profile",
    "CWLNA0333": "the endpoint needs a connection policy",
    "CWLNA0334": "the endpoint needs a topic, subscription or queue policy",
    "CWLNA0372": "Amlen does not allow deleting this object",
    "CWLNA0375": "password authentication is on but no admin user exists; the lab sends it off explicitly",
    "CWLNA0376": "the object is still used by another one; delete the user first (`invoke down` does this)",
    "CWLNA0379": "subscription policies need a topic policy that grants Subscribe",
    "CWLNA0431": "the message hub does not exist; check LAB_MESSAGE_HUB",
    "CWLNA0433": "the endpoint needs a valid connection policy; check LAB_CONNECTION_POLICY",
    "CWLNA0438": "the message hub still has endpoints",
    "CWLNA0440": "the security profile is still in use",
    "CWLNA0451": "another certificate profile already uses that certificate file name",
    "CWLNA0452": "another certificate profile already uses that key file name",
    "CWLNA0456": "the mutual-TLS profile needs its trusted CA before the endpoint; `invoke up` orders this",
    "CWLNA6001": "Amlen could not parse the request; this is a lab bug, please report it",
    "CWLNA6180": "the certificate is not a PEM X.509 certificate; run `invoke certs`",
    "CWLNA6182": "certificates must be PEM files, not .p12/.pfx",
    "CWLNA6183": "the trusted certificate is not a CA (CA:TRUE); run `invoke certs --new-ca`",
    "CWLNA6184": "the certificate file was not uploaded (or was consumed by an earlier apply); run `invoke up` again",
    "CWLNA6185": "the key file was not uploaded (or was consumed by an earlier apply); run `invoke up` again",
    "CWLNA6186": "the certificate already exists; the lab re-uploads with Overwrite, so run `invoke up` again",
    "CWLNA6189": "the server certificate and key do not match; run `invoke certs` to re-issue them",
    "CWLNA6190": "Amlen could not read the key file; run `invoke certs` to re-issue it",
    "CWLNA6191": "Amlen needs an unencrypted RSA key (EC or encrypted keys give this code); run `invoke certs`",
    "CWLNA6192": "the certificate is in an unexpected format; run `invoke certs`",
    "CWLNA6193": "the key is in an unexpected format or its password is wrong; run `invoke certs`",
    "CWLNA6205": "a property is longer than Amlen allows (SecurityProfile names: at most 32)",
    "CWLNA6206": "SecurityProfile names must be letters and digits only; fix it in .env",
    "CWLNA6207": "password authentication cannot be off with an LTPA profile or AllowNullPassword",
}


# Codes that mean "not there", for reads and deletes that must succeed when there is nothing to do.
_NOT_FOUND = {"CWLNA0113", "CWLNA0136"}
_TIMEOUT = 10.0
_UNAUTHORIZED_HINT = ("the admin API wants another client certificate or password (LAB_ADMIN_CERT/KEY, "
                      "LAB_ADMIN_NETRC); for the lab's own container: `invoke down`, then `invoke up`")


@dataclass(frozen=True)
class AmlenObject:
    """One configuration object the lab wants on the server.

    `name` is the object's name; for a TrustedCertificate (an array entry, not a named object) it is
    `<SecurityProfile>/<file>`. `uploads` are the lab files (name -> bytes) to PUT right before the POST,
    because Amlen consumes a staged file on every apply.
    """

    type: str
    name: str
    properties: Mapping[str, Any]
    uploads: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name the object: `Endpoint TLSTestPort`."""
        return f"{self.type} {self.name}"


def payload(obj: AmlenObject) -> dict[str, Any]:
    """The POST body for `obj`, in Amlen's JSON shape (the one place records become JSON)."""
    if obj.type == "TrustedCertificate":
        profile, _, file_name = obj.name.partition("/")
        return {
            obj.type: [{"SecurityProfileName": profile, "TrustedCertificate": file_name, **obj.properties}]
        }
    return {obj.type: {obj.name: dict(obj.properties)}}


def is_ready(status: Mapping[str, Any]) -> bool:
    """True when a /service/status body says the server runs in production: State 1 and ErrorCode 0.

    `Status == "Running"` alone is not enough: it is also shown in maintenance (9) and standby (10).
    """
    server = status.get("Server") or {}
    return server.get("State") == 1 and server.get("ErrorCode") == 0


class AmlenClient:
    """Talks to one Amlen admin endpoint, e.g. `AmlenClient("http://127.0.0.1:9089")`.

    Over HTTPS, `verify` is the CA file that signed the admin certificate (True: the system's trust store),
    `cert` the (certificate, key) files to present, `auth` a (user, password) for HTTP Basic. One keep-alive
    session carries every request, so a TLS handshake is paid once per client. `lab.amlen.adminsec.admin_client`
    builds the lab's (use it rather than this constructor).
    """

    def __init__(self, base_url: str, *, timeout: float = _TIMEOUT, verify: bool | str = True,
                 cert: tuple[str, str] | None = None, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy and no ~/.netrc: the lab says how to reach its Amlen
        self._session.verify = verify
        self._session.cert = cert
        self._session.auth = auth

    @property
    def session(self) -> requests.Session:
        """The keep-alive requests session with this client's TLS settings and credentials (for raw calls)."""
        return self._session

    def clone(self) -> AmlenClient:
        """A client with the same URL and credentials on its own session (one per thread: Amlen serves one
        request per connection at a time)."""
        session = self._session
        return AmlenClient(self.base_url, timeout=self.timeout, verify=session.verify, cert=session.cert,  # type: ignore[arg-type]
                           auth=session.auth)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the keep-alive connection."""
        self._session.close()

    def __enter__(self) -> AmlenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server status (`GET /ima/v1/service/status`); raises AmlenError while unreachable.

        A short `timeout` suits polling: Docker's port proxy may hold a request while nothing listens yet.
        """
        return self._request("GET", "/ima/v1/service/status", what="read the server status", timeout=timeout,
                             retry=timeout is None)

    def get(self, object_type: str, name: str | None = None) -> dict[str, Any] | None:
        """The object's properties as Amlen returns them, or None when it does not exist.

        Without `name`: the dict of all objects of that type (an empty dict when there are none).
        For TrustedCertificate, `name` is the SecurityProfile and the result is `{"<file>": {...}}`.
        """
        path = f"/ima/v1/configuration/{object_type}" + (f"/{name}" if name else "")
        try:
            body = self._request("GET", path, what=f"read {object_type} {name or ''}".rstrip())
        except AmlenError as exc:
            if exc.code in _NOT_FOUND:
                return None if name else {}
            raise
        found = body.get(object_type)
        if isinstance(found, list):  # TrustedCertificate: an array of {SecurityProfileName, TrustedCertificate}
            found = {entry.get("TrustedCertificate"): entry for entry in found}
        if not isinstance(found, dict):
            return None if name else {}
        return found.get(name) if name and object_type != "TrustedCertificate" else found

    def connections(self, endpoint: str, *, stat_type: str | None = None) -> list[dict[str, Any]]:
        """The connections on `endpoint` as of Amlen's last look (`GET /ima/v1/monitor/Connection`).

        Amlen answers from a cache it rebuilds every 60 s (reference, 2026-12-02): a new connection can be
        missing for up to a minute and a closed one stays listed until the next rebuild; every entry is as of
        that rebuild (`ConnectTime` + `Duration`, nanoseconds). At most 50 entries per `stat_type` (Amlen's
        default: OldestConnection). `Name` is the MQTT client ID (the certificate's CN is not shown). An
        endpoint that does not exist is 500 CWLNA0100 there; here it is simply no connections.
        """
        params = {"Endpoint": endpoint, **({"StatType": stat_type} if stat_type else {})}
        return self._monitor("Connection", params, f"the connections of Endpoint {endpoint}")

    def subscriptions(self, **filters: str) -> list[dict[str, Any]]:
        """The engine's subscriptions (`GET /ima/v1/monitor/Subscription`), live.

        `filters` are the monitor's parameters: `ClientID`, `TopicString`, `MessagingPolicy`, `SubName` (`*`
        matches any characters), `SubType`, `StatType`, `ResultCount` (1..100, Amlen's default 25).
        """
        return self._monitor("Subscription", filters, "the subscriptions")

    def endpoint_monitor(self, name: str) -> dict[str, Any] | None:
        """The monitor entry of an endpoint, or None when it is not listening (live).

        Amlen answers 500 CWLNA0100 for an endpoint that no longer exists, and leaves out an endpoint whose
        port could not be bound: both mean "not live".
        """
        for entry in self._monitor("Endpoint", {"Name": name}, f"Endpoint {name}"):
            if entry.get("Name") == name:
                return entry
        return None

    def _monitor(self, kind: str, params: Mapping[str, str], what: str) -> list[dict[str, Any]]:
        """`GET /ima/v1/monitor/<kind>`'s list; [] when Amlen says the object does not exist."""
        try:
            body = self._request("GET", f"/ima/v1/monitor/{kind}", params=params, what=f"monitor {what}")
        except AmlenError as exc:
            if exc.code in _NOT_FOUND | {"CWLNA0100"}:
                return []
            raise
        return [dict(entry) for entry in body.get(kind) or [] if isinstance(entry, dict)]

    # -- writes ------------------------------------------------------------------------------------------

    def upload(self, file_name: str, data: bytes) -> None:
        """Stage a file (`PUT /ima/v1/file/<name>`, raw body: Amlen does not parse multipart)."""
        self._request(
            "PUT",
            f"/ima/v1/file/{file_name}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            what=f"upload {file_name}",
        )

    def apply(self, obj: AmlenObject) -> None:
        """Upload the object's files, then create or update it (`POST /ima/v1/configuration`).

        A POST that got no answer in time is done again whole, uploads included: the first may have been
        applied (and consumed its uploads), and every object the lab sends may be sent twice.
        """
        for attempt in (1, 2):
            for file_name, data in obj.uploads.items():
                self.upload(file_name, data)
            try:
                self._request("POST", "/ima/v1/configuration", json_body=payload(obj), what=f"apply {obj.label}",
                              retry=False)
                return
            except _NoAnswer:
                if attempt == 2:
                    raise

    def post(self, body: Mapping[str, Any], *, what: str) -> None:
        """POST a body that is no named object (e.g. `{"AdminUserID": ..., "AdminUserPassword": ...}`)."""
        self._request("POST", "/ima/v1/configuration", json_body=dict(body), what=what, retry=False)

    def delete(self, object_type: str, name: str) -> bool:
        """Delete an object; False when it was already gone (so teardown can always be re-run)."""
        try:
            self._request(
                "DELETE", f"/ima/v1/configuration/{object_type}/{name}", what=f"delete {object_type} {name}"
            )
        except AmlenError as exc:
            if exc.code in _NOT_FOUND:
                return False
            raise
        return True

    # -- transport ---------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json_body: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json"}
        # A request that got no answer in time is sent once more (the lab's reads, uploads and deletes may
        # be repeated): after a machine pause the timeout fires on resume, before the server had its turn.
        for attempt in (1, 2):
            try:
                response = self._session.request(
                    method, url, data=data, params=params, headers=headers, timeout=timeout or self.timeout
                )
                break
            except requests.RequestException as exc:
                message = f"cannot {what}: Amlen's admin API at {self.base_url} did not answer ({_reason(exc)})"
                hint = "is the lab up? `invoke status` shows the container; `invoke up` starts it"
                if not isinstance(exc, requests.Timeout):
                    raise AmlenError(message, hint) from exc
                if not retry or attempt == 2:
                    raise _NoAnswer(message, hint) from exc
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code >= 400:
            code = str(body.get("Code") or "")
            message = str(body.get("Message") or response.reason or "no message")
            hint = CODE_HINTS.get(code, "see `invoke logs` for the server's side")
            if response.status_code == 401:  # Amlen's body is text: `Not authorized` or `Bad request`
                message = f"{response.reason} ({response.text.strip()[:40] or 'no body'})"
                hint = _UNAUTHORIZED_HINT
            raise AmlenError(
                f"Amlen refused to {what}: {code or 'HTTP ' + str(response.status_code)} {message}".strip(),
                hint,
                code=code or None,
                status=response.status_code,
            )
        return body


class _NoAnswer(AmlenError):
    """Amlen did not answer a request in time; `apply` catches it to repeat more than the one request."""


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake failed: {_ssl_words(exc)}"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__


def _ssl_words(exc: requests.exceptions.SSLError) -> str:
    """The innermost ssl error's reason (e.g. CERTIFICATE_VERIFY_FAILED), not urllib3's nested repr."""
    inner: BaseException | None = exc
    while inner is not None and not isinstance(inner, ssl.SSLError):
        inner = inner.__cause__ or inner.__context__ or (inner.args[0] if inner.args and isinstance(
            inner.args[0], BaseException) else None)
    if isinstance(inner, ssl.SSLCertVerificationError):
        return f"the admin certificate does not verify ({inner.verify_message})"
    if isinstance(inner, ssl.SSLError):
        return inner.reason or str(inner)
    return "no TLS session"
