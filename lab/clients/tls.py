"""TLS as the lab's clients and probes see it: contexts that trust only the lab CA, bare handshakes, and every
`ssl`/socket error put into words.

By address with the right name: paho passes the host given to `connect()` as `server_hostname` to
`SSLContext.wrap_socket` and has no option to change it (paho #133/#734). `tls_context(server_name=...)`
returns an `SSLContext` subclass whose `wrap_socket` substitutes the name, so paho can dial 127.0.0.1 while
TLS sends SNI and verifies `testserver.getting.started` - no hosts entry needed, full MQTT on top.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import CheckError

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_ANSWER",
    "Handshake",
    "LabTLSContext",
    "explain",
    "handshake",
    "is_silence",
    "tls_context",
]

# Long enough for a TLS handshake plus a few messages on a loaded CI machine; short enough that a
# silent port does not stall the matrix.
DEFAULT_TIMEOUT = 5.0
# How long to wait for a TLS 1.3 alert after the client's side of the handshake completed: the server
# sends its verdict on the client certificate only then (RFC 8446 4.4.2), and on loopback it takes < 10 ms.
_ALERT_WAIT = 0.5
NO_ANSWER = "no answer in time"
_ENCODING_DER = 2  # _ssl.ENCODING_DER, for the private chain call of Python < 3.13

# OpenSSL reason codes -> what they mean for a lab user. The first match wins.
_TLS_REASONS: tuple[tuple[str, str], ...] = (
    ("CERTIFICATE_REQUIRED", "server demanded a client certificate (TLS alert: certificate required)"),
    ("UNKNOWN_CA", "server does not trust the issuer of the client certificate (TLS alert: unknown CA)"),
    ("BAD_CERTIFICATE", "server rejected the client certificate (TLS alert: bad certificate)"),
    ("CERTIFICATE_EXPIRED", "server rejected an expired certificate (TLS alert: certificate expired)"),
    ("CERTIFICATE_UNKNOWN", "server rejected the client certificate (TLS alert: certificate unknown)"),
    ("ACCESS_DENIED", "server denied access (TLS alert: access denied)"),
    ("DECRYPT_ERROR", "client certificate and key do not belong together (TLS alert: decrypt error)"),
    (
        "HANDSHAKE_FAILURE",
        "server refused the handshake (TLS alert: handshake failure; with TLS 1.2 a missing client "
        "certificate looks like this)",
    ),
    ("PROTOCOL_VERSION", "client and server share no TLS version (TLS alert: protocol version)"),
    ("WRONG_VERSION_NUMBER", "the other side does not speak TLS (plain MQTT or HTTP on this port?)"),
    ("PACKET_LENGTH_TOO_LONG", "the other side does not speak TLS (plain MQTT or HTTP on this port?)"),
    ("UNEXPECTED_EOF", "server closed the connection during the TLS handshake"),
    ("EOF occurred in violation of protocol", "server closed the connection during the TLS handshake"),
)


@dataclass(frozen=True)
class Handshake:
    """A bare TLS handshake: the server's certificate chain (DER, leaf first) and any error, in words.

    `alert` is what the server said after the client's side of the handshake completed (TLS 1.3 sends the
    verdict on a client certificate only then); None when it kept the connection open.
    """

    reached: bool
    completed: bool
    version: str | None
    chain: tuple[bytes, ...]
    error: str | None
    alert: str | None
    seconds: float


class LabTLSContext(ssl.SSLContext):
    """An SSLContext that can pin the TLS name, and remembers the sockets it wrapped.

    `server_name`: always send and verify that name, whatever host the socket was dialled by.
    `opened`: paho does not close the socket when the handshake inside `connect()` raises, so the session
    closes what this context opened.
    """

    server_name: str | None = None

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        # SSLContext.wrap_socket's whole signature, so a server_hostname passed by position is replaced too.
        wrapped = super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.server_name or server_hostname,
            session=session,
        )
        self.__dict__.setdefault("opened", []).append(wrapped)
        return wrapped

    def close_opened(self) -> None:
        """Close every socket this context wrapped (idempotent)."""
        for wrapped in self.__dict__.pop("opened", []):
            with contextlib.suppress(OSError):
                wrapped.close()


def tls_context(
    *,
    ca_file: Path | None,
    cert: Path | None = None,
    key: Path | None = None,
    server_name: str | None = None,
    system_trust: bool = False,
) -> ssl.SSLContext:
    """A client TLS context trusting only `ca_file` (None: do not verify the server at all, unless
    `system_trust`: then the system's trust store, for a server certificate from a public CA).

    With `server_name`, the context sends and verifies that name even when connecting by IP address.
    Not verifying is for probes of the server's own policy (does it refuse a client without a certificate?),
    where our opinion of the server must not stop the handshake first. `cert` may be a chain file (leaf, then
    intermediates): all of it is sent.

    A chain verifies only when it ends at a trusted self-signed root, as Amlen verifies clients: the
    partial-chain flag is cleared (Python >= 3.13 sets it in `ssl.create_default_context`; this context is
    not made that way, and says so), so trusting an intermediate alone proves nothing here either.
    """
    context = LabTLSContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        if ca_file is None and system_trust:
            context.load_default_certs()
        elif ca_file is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.load_verify_locations(cafile=str(ca_file))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise CheckError(
            f"cannot load TLS files ({ca_file}, {cert}, {key}): {explain(exc)}",
            "check the paths; `invoke certs` makes the lab's files",
        ) from exc
    return context


def explain(error: BaseException | str) -> str:
    """One sentence for a connection error (exception or paho log text), in the lab's words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        message = str(error.verify_message or error.reason or error)
        if "mismatch" in message:
            return f"hostname mismatch: {message.rstrip('.')}"
        return f"the server's certificate does not verify against the trusted CA: {message}"
    if isinstance(error, socket.gaierror):
        return f"the name does not resolve ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: nothing is listening on that port"
    if isinstance(error, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(error, TimeoutError):
        return NO_ANSWER
    text = str(error)
    for marker, words in _TLS_REASONS:
        if marker.lower() in text.lower():
            return words
    if "Connection reset" in text:
        return "the server reset the connection"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return text or type(error).__name__


def handshake(
    address: str,
    port: int,
    *,
    context: ssl.SSLContext,
    server_name: str,
    wait_for_alert: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Handshake:
    """A TLS handshake like `openssl s_client -connect address:port -servername server_name`, as data.

    With `wait_for_alert`, read briefly after the handshake to learn whether the server accepts the client
    (its TLS 1.3 alert arrives then); paho's own read often loses that alert to a connection reset.
    """
    start = time.perf_counter()
    chain: tuple[bytes, ...] = ()
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        return Handshake(False, False, None, (), explain(exc), None, time.perf_counter() - start)
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=server_name)
        except (OSError, ssl.SSLError) as exc:
            return Handshake(True, False, None, (), explain(exc), None, time.perf_counter() - start)
        with tls:
            chain = _chain(tls)
            alert = None
            if wait_for_alert:
                alert = _read_alert(tls)
            return Handshake(True, True, tls.version(), chain, None, alert, time.perf_counter() - start)


def _chain(tls: ssl.SSLSocket) -> tuple[bytes, ...]:
    """Every certificate the server presented, DER, in its order (what `openssl s_client -showcerts` lists)."""
    unverified = getattr(tls, "get_unverified_chain", None)
    if unverified is not None:  # Python >= 3.13: documented (and typed) as a list of DER bytes
        der: list[bytes] = unverified() or []
        return tuple(bytes(c) for c in der)
    # Python 3.10-3.12 have the same call on the socket's _ssl object only (returning _ssl.Certificate); the
    # chain is what doctor diagnoses, so it is read there rather than left at the leaf.
    inner: Any = getattr(tls, "_sslobj", None)
    private = getattr(inner, "get_unverified_chain", None)
    if private is not None:
        return tuple(bytes(c.public_bytes(_ENCODING_DER)) for c in private() or [])
    leaf = tls.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def _read_alert(tls: ssl.SSLSocket) -> str | None:
    tls.settimeout(_ALERT_WAIT)
    try:
        data = tls.recv(1)
    except TimeoutError:
        return None
    except (OSError, ssl.SSLError) as exc:
        return explain(exc)
    return None if data else "server closed the connection right after the handshake"


def is_silence(reason: str) -> bool:
    """Did a connection fail only because nothing answered in time (worth one retry: a pause looks so)?"""
    return NO_ANSWER in reason
