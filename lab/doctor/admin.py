"""Doctor: the admin plane. TLS on, the admin certificate it presents, plain HTTP refused, and a request
without the lab.admin certificate (or the password) refused; in open mode a warning that names the risk."""

from __future__ import annotations

from cryptography import x509

from lab.amlen.adminfiles import LOOPBACK, admin_files
from lab.amlen.adminsec import OPEN_WARNING, Rung, admin_client, lab_owns_admin, target_rung
from lab.clients.tls import handshake, tls_context
from lab.doctor.findings import Run, Status
from lab.errors import AmlenError, LabError

_NAME = "admin API"
_FIX = "`invoke up` locks it again (LAB_ADMIN_SECURITY); if it cannot, `invoke down`, then `invoke up`"


def admin_plane(run: Run) -> None:
    """Check how the lab's own Amlen admin API is locked (an Amlen elsewhere is its owner's business)."""
    settings = run.settings
    if not lab_owns_admin(settings):
        return run.add(_NAME, Status.SKIP, f"{settings.admin_url} is someone else's Amlen: its admin security is "
                       "its owner's (the lab reaches it with LAB_ADMIN_CA/CERT/KEY/NETRC)")
    if run.container is None:
        return run.skip(_NAME, "the lab container running")
    if settings.admin_security == "open":
        return run.add(_NAME, Status.WARN, OPEN_WARNING + " (Access-Control-Allow-Origin: <any origin>, "
                       "Access-Control-Allow-Credentials: true)",
                       "unset LAB_ADMIN_SECURITY (mtls is the default), then `invoke up` locks this container")
    files, port = admin_files(settings), settings.admin_port
    mtls = settings.admin_security == "mtls"
    try:
        context = tls_context(ca_file=files.ca, cert=files.presented_cert if mtls else None,
                              key=files.client_key if mtls else None, server_name=LOOPBACK[0])
    except LabError as exc:
        return run.add(f"{_NAME} TLS", Status.FAIL, exc.message, exc.hint or "")
    seen = handshake(LOOPBACK[0], port, context=context, server_name=LOOPBACK[0], timeout=5)
    if not seen.completed:
        run.add(f"{_NAME} TLS", Status.FAIL, f"no verified TLS handshake on 127.0.0.1:{port}: {seen.error}",
                _FIX)
    else:
        leaf = x509.load_der_x509_certificate(seen.chain[0])
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        run.add(f"{_NAME} TLS", Status.OK,
                f"{seen.version} on 127.0.0.1:{port}; presents {leaf.subject.rfc4514_string()} (SAN "
                f"{', '.join(str(n.value) for n in names)}), verified against the lab CA, valid until "
                f"{leaf.not_valid_after_utc:%Y-%m-%d}")
    _refused(run, Rung.OPEN, "plain HTTP")
    if mtls:
        _refused(run, Rung.PASSWORD, "HTTPS without the lab.admin certificate")
    else:
        _without_password(run)
    return None


def _refused(run: Run, rung: Rung, what: str) -> None:
    try:
        with admin_client(run.settings, timeout=3.0, rung=rung) as client:
            client.status(timeout=3.0)
    except LabError as exc:
        return run.add(f"{_NAME}: {what}", Status.OK, f"refused ({exc.message.rsplit('(', 1)[-1].rstrip(')')})")
    run.add(f"{_NAME}: {what}", Status.FAIL,
            f"answered: the admin API is not locked as LAB_ADMIN_SECURITY={run.settings.admin_security} wants "
            f"({target_rung(run.settings)}), and a web page in your browser may reach it", _FIX)


def _without_password(run: Run) -> None:
    from lab.amlen.admin import AmlenClient

    files = admin_files(run.settings)
    try:
        with AmlenClient(f"https://127.0.0.1:{run.settings.admin_port}", timeout=3.0, verify=str(files.ca)) as bare:
            bare.status(timeout=3.0)
    except AmlenError as exc:
        return run.add(f"{_NAME}: HTTPS without the password", Status.OK, f"refused ({exc.status or exc.message})")
    run.add(f"{_NAME}: HTTPS without the password", Status.FAIL, "answered: no password is asked for", _FIX)
