"""How the lab reaches an Amlen admin API, and which lock its own Amlen's admin plane is behind.

One factory, `admin_client(settings)`, is what every part that talks to the admin API uses (up, configure,
status, doctor, workshop, rotation, down, the testcontainers module). For the lab's own Amlen (no LAB_ADMIN_URL)
it follows LAB_ADMIN_SECURITY:

    mtls      https://127.0.0.1:<port>, the admin certificate verified against the lab CA, the lab.admin client
              certificate presented (Amlen requires it, and its ConfigurationPolicy lets only that CN in)
    password  https://..., verified the same way, HTTP Basic with the generated AdminUserID/AdminUserPassword
    open      http://..., nothing: any web page in the user's browser can read and change the configuration

An Amlen elsewhere (LAB_ADMIN_URL) is reached with LAB_ADMIN_CA / LAB_ADMIN_CERT + LAB_ADMIN_KEY /
LAB_ADMIN_NETRC, and its admin security is never changed.

While securing, the lab's Amlen passes through "rungs" (`Rung`): open, TLS + password, TLS + certificate +
password, TLS + certificate. `find_rung` tells which one a running server is on, so that a re-run goes on
from there and a server another lab directory locked is named at once instead of waited for.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from lab.amlen.admin import AmlenClient
from lab.amlen.adminfiles import admin_files, read_credentials
from lab.deadline import Deadline
from lab.errors import AmlenError, CertError
from lab.settings import Settings

__all__ = [
    "LOCKED_HINT",
    "OPEN_WARNING",
    "AdminLocked",
    "AdminSource",
    "Rung",
    "admin_client",
    "admin_curl",
    "admin_source",
    "admin_ssl_context",
    "find_rung",
    "lab_owns_admin",
    "target_rung",
    "wait_for_rung",
]

OPEN_WARNING = ("LAB_ADMIN_SECURITY=open leaves Amlen's admin API on plain HTTP with no login, and Amlen answers "
                "every Origin with CORS allow-credentials: any web page your browser opens can read and change it")
LOCKED_HINT = "`invoke down` removes that container (and its volume), then `invoke up` makes one this lab can open"
_TIMEOUT = 10.0
_FIRST_TLS_POLL = 0.02


class Rung(StrEnum):
    """How a request reaches the admin API: each securing stage locks the one before it out."""

    OPEN = "plain HTTP"
    PASSWORD = "TLS + password"
    CERT_PASSWORD = "TLS + client certificate + password"
    CERT = "TLS + client certificate"


_TARGET = {"open": Rung.OPEN, "password": Rung.PASSWORD, "mtls": Rung.CERT}
# Most secured first: a warm `up` finds its rung with the first request.
_LADDER = (Rung.CERT, Rung.CERT_PASSWORD, Rung.PASSWORD, Rung.OPEN)


class AdminLocked(AmlenError):
    """The lab's container answers, but to another lab's certificates or password (or its files are gone)."""


def lab_owns_admin(settings: Settings) -> bool:
    """True for the lab's own Amlen (its container, or compose/amlen.yaml's on LAB_ADMIN_PORT): the lab locks
    its admin plane. An Amlen at LAB_ADMIN_URL is someone else's."""
    return not settings.admin_url


def target_rung(settings: Settings) -> Rung:
    """Where LAB_ADMIN_SECURITY wants the lab's Amlen."""
    return _TARGET[settings.admin_security]


def admin_client(settings: Settings, *, timeout: float = _TIMEOUT, rung: Rung | None = None) -> AmlenClient:
    """The admin API client for `settings` (the one factory; see the module docstring).

    `rung` picks a stage of the lab's own securing sequence (default: the LAB_ADMIN_SECURITY target).
    Raises CertError (one line, with a hint) when a file it needs is missing or unreadable.
    """
    if not lab_owns_admin(settings):
        return _remote_client(settings, timeout)
    rung = rung or target_rung(settings)
    port = settings.admin_port
    if rung is Rung.OPEN:
        return AmlenClient(f"http://127.0.0.1:{port}", timeout=timeout)
    files = admin_files(settings)
    if not files.ca.is_file() and not _listens(port):
        # Nothing of the lab here, and nothing listening: say what a user checks first.
        raise AmlenError(f"Amlen's admin API at https://127.0.0.1:{port} did not answer (connection refused)",
                         "is the lab up? `invoke status` shows the container; `invoke up` starts it")
    _require(files.ca, "the lab CA (myCA.pem)")
    cert: tuple[str, str] | None = None
    auth: tuple[str, str] | None = None
    if rung in (Rung.CERT, Rung.CERT_PASSWORD):
        cert = (str(_require(files.presented_cert, "the lab.admin client certificate")),
                str(_require(files.client_key, "the lab.admin client key")))
    if rung in (Rung.PASSWORD, Rung.CERT_PASSWORD):
        auth = read_credentials(_require(files.netrc, "the admin credentials"))
    return AmlenClient(f"https://127.0.0.1:{port}", timeout=timeout, verify=str(files.ca), cert=cert, auth=auth)


def admin_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """An SSLContext that reaches the lab's admin API as `admin_client` does (None in open mode), for any
    HTTP client: the lab CA verifies the server (hostname checked), the lab.admin certificate is presented."""
    if lab_owns_admin(settings) and settings.admin_security == "open":
        return None
    files = admin_files(settings)
    context = ssl.create_default_context(cafile=str(files.ca if lab_owns_admin(settings) else settings.admin_ca)
                                         if lab_owns_admin(settings) or settings.admin_ca else None)
    if lab_owns_admin(settings) and settings.admin_security == "mtls":
        context.load_cert_chain(str(files.presented_cert), str(files.client_key))
    elif settings.admin_cert and settings.admin_key:
        context.load_cert_chain(str(settings.admin_cert), str(settings.admin_key))
    return context


def admin_curl(settings: Settings, path: str = "/ima/v1/service/status") -> str:
    """The one curl command line that reaches the admin API by hand (no secret on it: files only)."""
    import shlex

    url = settings.admin_base_url + path
    if not lab_owns_admin(settings):
        return f"curl -s{remote_curl_options(settings)} {url}"
    if settings.admin_security == "open":
        return f"curl -s {url}"
    files = admin_files(settings)
    parts = [f"--cacert {shlex.quote(str(files.ca))}"]
    if settings.admin_security == "mtls":
        parts.append(f"--cert {shlex.quote(str(files.presented_cert))} --key {shlex.quote(str(files.client_key))}")
    else:
        parts.append(f"--netrc-file {shlex.quote(str(files.netrc))}")
    return " ".join(["curl -s", *parts, url])


def remote_curl_options(settings: Settings) -> str:
    """curl's options for an Amlen elsewhere, from LAB_ADMIN_CA / LAB_ADMIN_CERT + KEY / LAB_ADMIN_NETRC."""
    import shlex

    parts = [f"--cacert {shlex.quote(str(settings.admin_ca))}" if settings.admin_ca else "",
             f"--cert {shlex.quote(str(settings.admin_cert))} --key {shlex.quote(str(settings.admin_key))}"
             if settings.admin_cert and settings.admin_key else "",
             f"--netrc-file {shlex.quote(str(settings.admin_netrc))}" if settings.admin_netrc else ""]
    return "".join(f" {part}" for part in parts if part)


def find_rung(settings: Settings, *, timeout: float = 2.0, first: Iterable[Rung] = (),
              answers: list[dict[str, Any]] | None = None) -> tuple[Rung, AmlenClient] | None:
    """Which rung the lab's running Amlen answers on (trying `first`, then the most secured), with a client
    for it (its status body appended to `answers`); None while nothing answers yet (starting). Raises
    AdminLocked when the server answers but to none of this lab's credentials: another lab directory locked
    it, or this one lost its files."""
    order = list(dict.fromkeys((*first, *_LADDER)))
    refusals: list[str] = []
    # A rung tried before the first refusal that got no answer at all may be the server's own, still starting (a
    # restarted container opens its listener between two tries): then a later refusal proves nothing yet.
    silent_first = False
    for rung in order:
        try:
            client = admin_client(settings, timeout=timeout, rung=rung)
        except CertError as exc:
            refusals.append(f"{rung}: {exc.message}")
            continue
        except AmlenError:
            silent_first = silent_first or not refusals
            continue  # nothing listens yet
        try:
            status = client.status(timeout=timeout)
            if answers is not None:
                answers.append(status)
            return rung, client
        except AmlenError as exc:
            client.close()
            if _refused(exc):
                # The reason alone: "...did not answer (TLS handshake failed: ...)" -> "TLS handshake failed: ..."
                reason = exc.message.split(" did not answer (", 1)[-1].removesuffix(")")
                refusals.append(f"{rung}: {reason}")
            else:
                silent_first = silent_first or not refusals
    # No rung answered. One that refused outright, with none silent before it, says the server is up and not this
    # lab's; silence first: it is still starting (the caller polls again).
    if refusals and not silent_first:
        raise AdminLocked(
            f"the Amlen admin API on 127.0.0.1:{settings.admin_port} is locked by another lab directory (or this "
            f"one lost its admin files in {settings.admin_dir}): {refusals[0]}",
            LOCKED_HINT,
            status=401,  # an answer, not silence: readiness stops polling at once
        )
    return None


def wait_for_rung(settings: Settings, rung: Rung, *, before: Rung | None = None, timeout: float = 60.0,
                  poll: float = 0.005) -> AmlenClient:
    """Poll until the admin API answers on `rung` after a POST moved it there from `before` (Amlen reopens its
    listener some 30 ms after answering that POST); pause-aware, so a VM pause does not fail it.

    Where `rung`'s client would also pass the old listener (it offers all the old one required), its answer
    proves nothing: the old rung's client, on a fresh connection each time, must be refused first. From plain
    HTTP the old rung is polled first too, because it is cheap (a refused plain request costs a millisecond, a
    TLS attempt that the old listener serves with Amlen's default certificate ten); there the new rung's
    verified answer would prove the switch by itself, as only the new listener serves the lab's certificate.
    Otherwise (the new client offers less than the old listener required) the old listener refuses the new
    client, so its answer is the proof. Either way the connection that answered is the new listener's (opened
    after the old one refused, or refused by it), and it is kept: the next request needs no new handshake.
    """
    deadline = Deadline(timeout)
    witness = before if before is not None and (before is Rung.OPEN or _OFFERS[rung] >= _OFFERS[before]) else None
    last = "no answer"
    if before is not Rung.OPEN:
        # Every early TLS attempt is a full handshake the old listener serves (and the server's CPU that its switch
        # needs): none before 20 ms, as Amlen switched 26-33 ms after its answer (reference, 2026-12-04).
        time.sleep(_FIRST_TLS_POLL)
    if witness is not None:
        with admin_client(settings, timeout=2.0, rung=witness) as old:
            while not _refuses(old, deadline.cap(2.0)):
                last = f"{witness} still answers"
                _pause_or_fail(deadline, rung, timeout, last, poll)
    client = admin_client(settings, timeout=2.0, rung=rung)
    while True:
        try:
            client.status(timeout=deadline.cap(2.0))
            client.timeout = _TIMEOUT
            return client
        except AmlenError as exc:
            last = exc.message
            client.close()  # a fresh connection (and handshake) next time
        _pause_or_fail(deadline, rung, timeout, last, poll)


def _pause_or_fail(deadline: Deadline, rung: Rung, timeout: float, last: str, poll: float) -> None:
    if deadline.expired():
        raise AmlenError(f"the admin API did not answer over {rung} within {timeout:.0f} s after the lab "
                         f"switched it ({last})",
                         "`invoke logs` shows Amlen's side; `invoke down`, then `invoke up` starts over")
    time.sleep(poll)


# What each rung's client offers, which is also what a server on that rung requires.
_OFFERS: dict[Rung, frozenset[str]] = {
    Rung.OPEN: frozenset(), Rung.PASSWORD: frozenset({"tls", "password"}),
    Rung.CERT_PASSWORD: frozenset({"tls", "password", "certificate"}), Rung.CERT: frozenset({"tls", "certificate"}),
}


def _refuses(old: AmlenClient, timeout: float) -> bool:
    """True when a fresh connection of `old` is refused (the listener has switched away from its rung). No
    answer in time is not a refusal: a paused machine must not pass for a switched listener."""
    try:
        old.status(timeout=timeout)
    except AmlenError as exc:
        return "(timed out)" not in exc.message
    finally:
        old.close()  # the next attempt opens a new connection: a kept-alive one may outlive the old listener
    return False


class AdminSource:
    """What readiness polls: the lab's Amlen on whichever rung it answers (or one fixed client), remembering it.

    A new volume is open (Amlen's defaults): only plain HTTP is tried. Otherwise the rungs are tried, the
    target first, so a restarted, locked container costs one request once it answers.
    """

    def __init__(self, settings: Settings, *, fixed: AmlenClient | None = None, fresh: bool = False) -> None:
        self.settings = settings
        self._fixed = fixed
        self._first = (Rung.OPEN,) if fresh else (target_rung(settings),)
        self._only_open = fresh
        self.found: tuple[Rung, AmlenClient] | None = None
        self.base_url = fixed.base_url if fixed else settings.admin_base_url

    def status(self, *, timeout: float | None = None) -> dict[str, Any]:
        """One status poll; AmlenError (no status) while nothing answers, AdminLocked when locked out."""
        if self._fixed is not None:
            return self._fixed.status(timeout=timeout)
        if self.found is None:
            if self._only_open:
                self.found = Rung.OPEN, admin_client(self.settings, timeout=timeout or 2.0, rung=Rung.OPEN)
            else:
                answers: list[dict[str, Any]] = []
                self.found = find_rung(self.settings, timeout=timeout or 2.0, first=self._first, answers=answers)
                if answers:
                    return answers[0]  # the rung's answer is this poll's: no second request
            if self.found is None:
                raise AmlenError(f"the admin API at {self.base_url} did not answer yet")
        try:
            return self.found[1].status(timeout=timeout)
        except AmlenError:
            if not self._only_open:
                self.found[1].close()
                self.found = None  # ask the rungs again next time
            raise

    def settle(self, ctx: Any) -> None:
        """Hand the client that answered to the run's context (`LabContext.use_amlen`)."""
        if self.found is not None:
            self.found[1].timeout = _TIMEOUT
            ctx.use_amlen(self.found[1], self.found[0])


def admin_source(ctx: Any) -> AdminSource:
    """What `ReadyStep` polls for this run (`ctx` is the LabContext)."""
    if not lab_owns_admin(ctx.settings):
        return AdminSource(ctx.settings, fixed=ctx.amlen)
    return AdminSource(ctx.settings, fresh=ctx.fresh_server)


def _remote_client(settings: Settings, timeout: float) -> AmlenClient:
    url = settings.admin_url
    cert: tuple[str, str] | None = None
    if settings.admin_cert and settings.admin_key:
        cert = (str(_require(settings.admin_cert, "LAB_ADMIN_CERT")),
                str(_require(settings.admin_key, "LAB_ADMIN_KEY")))
    auth = read_credentials(_require(settings.admin_netrc, "LAB_ADMIN_NETRC")) if settings.admin_netrc else None
    verify: bool | str = str(_require(settings.admin_ca, "LAB_ADMIN_CA")) if settings.admin_ca else True
    if url.startswith("http://") and (cert or auth):
        raise CertError(f"LAB_ADMIN_URL {url} is plain HTTP, but a client certificate or password is set for it",
                        "use https:// (a password or certificate over plain HTTP protects nothing)")
    return AmlenClient(url, timeout=timeout, verify=verify, cert=cert, auth=auth)


def _listens(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _require(path: Any, what: str) -> Any:
    if path is None or not path.is_file():
        raise CertError(f"{what} {path} is missing", f"for the lab's own container: {LOCKED_HINT}; "
                        "for an Amlen elsewhere: set LAB_ADMIN_CA, LAB_ADMIN_CERT/KEY or LAB_ADMIN_NETRC")
    return path


# TLS alerts and HTTP answers that mean "the server is up and refuses these credentials" (not "starting").
_REFUSALS = ("CERTIFICATE_VERIFY_FAILED", "does not verify", "UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
             "ACCESS_DENIED", "CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "WRONG_VERSION_NUMBER")


def _refused(exc: AmlenError) -> bool:
    if exc.status is not None:
        return exc.status < 500
    return any(word in exc.message.upper() or word in exc.message for word in _REFUSALS)


def on_rungs(settings: Settings) -> Callable[[Rung], AmlenClient]:
    """A client maker for the securing sequence (`lab.steps.admin`)."""
    return lambda rung: admin_client(settings, rung=rung)
