"""The admin plane by hand: the admin certificates, a password, and the curl calls that lock Amlen's admin API.

The same calls `lab.steps.admin` makes (`securing_calls`, without secrets), in its order: each over the
transport the server still accepts, then a status call over the next one (retried: Amlen reopens its listener
some 30 ms later). Every later call of the guide goes with `admin_curl_options`: `--cacert myCA.pem --cert
lab.admin.crt --key lab.admin.key` to `https://127.0.0.1:<port>`. No secret is written out: the password is made
by openssl into `admin.netrc` (0600), which curl reads (`--netrc-file`).
"""

from __future__ import annotations

import json
import shlex

from lab.amlen.adminfiles import ADMIN_CLIENT, LOOPBACK, SERVER_NAME
from lab.amlen.adminsec import OPEN_WARNING, Rung, lab_owns_admin, remote_curl_options
from lab.learn import explain_pki as manual_pki
from lab.learn.manual import ADMIN_URL_VAR, OPEN_URL_VAR, Command, ManualStep
from lab.settings import Settings
from lab.steps.admin import securing_calls

__all__ = ["ADMIN_FILES", "admin_curl_options", "admin_steps"]

CURL = "curl --fail-with-body -sS -w '\\n'"
# The admin files in the guide's working directory (the lab keeps them in <LAB_DIR>/admin/).
ADMIN_FILES = {"server key": "admin-server.key", "server cert": "admin-server.crt",
               "client key": f"{ADMIN_CLIENT}.key", "client cert": f"{ADMIN_CLIENT}.crt", "netrc": "admin.netrc"}
_ACCEPTED = '"Code": "CWLNA6011"'
_CHAPTER = "Lock the admin API"
_WEBUI = "Server > Security Settings > Admin Endpoint"


def admin_curl_options(settings: Settings, rung: Rung | None = None) -> str:
    """curl's options for `rung` (default: where LAB_ADMIN_SECURITY leaves the lab), files in the current dir."""
    if not lab_owns_admin(settings):  # an Amlen elsewhere: what LAB_ADMIN_* say reaches it
        return remote_curl_options(settings)
    rung = rung or _target(settings)
    ca = manual_pki.pki_names(settings)[1]
    cert = f"{ADMIN_CLIENT}.chain.pem" if settings.pki == "intermediate" else ADMIN_FILES["client cert"]
    return {
        Rung.OPEN: "",
        Rung.PASSWORD: f" --cacert {ca} --netrc-file {ADMIN_FILES['netrc']}",
        Rung.CERT_PASSWORD: f" --cacert {ca} --cert {cert} --key {ADMIN_FILES['client key']} "
                            f"--netrc-file {ADMIN_FILES['netrc']}",
        Rung.CERT: f" --cacert {ca} --cert {cert} --key {ADMIN_FILES['client key']}",
    }[rung]


def admin_steps(settings: Settings) -> list[ManualStep]:
    """The sections for the plan's `admin certificates` and `admin plane` steps (open mode: what stays open)."""
    if not lab_owns_admin(settings):
        return []
    if settings.admin_security == "open":
        origin = "http://evil.example"
        return [ManualStep("admin plane", _CHAPTER, "The admin API stays open (LAB_ADMIN_SECURITY=open)",
                           OPEN_WARNING + ". This shows it: Amlen hands any Origin the right to read the answer.",
                           (Command(f"curl -sS -o /dev/null -D - -H 'Origin: {origin}' "
                                    f"{_url(OPEN_URL_VAR, 'service/status')} | grep -i '^access-control-allow'",
                                    expect=f"Access-Control-Allow-Origin: {origin}, "
                                           "Access-Control-Allow-Credentials: true"),))]
    return [*_certificates(settings), _lock(settings)]


def _certificates(settings: Settings) -> list[ManualStep]:
    sans = tuple(f"IP:{address}" for address in LOOPBACK)
    server = manual_pki.leaf(
        settings, SERVER_NAME, server=True, files=(ADMIN_FILES["server key"], ADMIN_FILES["server cert"]),
        sans=sans, about=("admin certificates", _CHAPTER, "A certificate for the admin API",
                          f"Amlen's admin API serves a self-signed certificate that names nothing. This one, from "
                          f"the toy CA, names {SERVER_NAME} and {', '.join(LOOPBACK)}, so curl verifies "
                          f"https://127.0.0.1:{settings.admin_port} against myCA.pem, with no -k."))
    steps = [server]
    if settings.admin_security == "mtls":
        steps.append(manual_pki.leaf(
            settings, ADMIN_CLIENT, server=False, files=(ADMIN_FILES["client key"], ADMIN_FILES["client cert"]),
            about=("admin certificates", _CHAPTER, f"The admin client certificate {ADMIN_CLIENT}",
                   f"What the lab shows the admin API. Amlen will require a client certificate from the toy CA, "
                   f"and its configuration policy will let in CN {ADMIN_CLIENT} only: no lab client or seat may "
                   "carry that name.")))
    netrc = ADMIN_FILES["netrc"]
    make = (f"(umask 077; printf 'default login %s password %s\\n' \"labadmin$(openssl rand -hex 4)\" "
            f"\"$(openssl rand -base64 18 | tr -d '/+=')\" > {netrc})")
    steps.append(ManualStep(
        "admin certificates", _CHAPTER, "An admin user and password",
        "Amlen's default superuser `admin` must not stay as it is. The password is made here and read by curl "
        "from a file only you can read: it never appears on a command line or in the output.",
        (Command(make, expect="nothing; admin.netrc, mode 0600"),)))
    return steps


def _lock(settings: Settings) -> ManualStep:
    commands: list[Command] = []
    for call in securing_calls(settings, secrets=False):
        options, url = admin_curl_options(settings, call.over), _var(call.over)
        for name, source in call.sources.items():
            local = _local(settings, source.name)
            commands.append(Command(f"{CURL}{options} -X PUT --data-binary @{local} {_url(url, f'file/{name}')}",
                                    webui=_WEBUI, expect=_ACCEPTED))
        body = json.dumps(call.body, indent=2)
        if "AdminUserPassword" in body:
            # The shell reads the user and password from admin.netrc into the body; nothing else in it is touched.
            read = f"read -r _ _ ADMIN_USER _ ADMIN_PASSWORD < {ADMIN_FILES['netrc']}\n"
            body = body.replace('"$ADMIN_USER"', '"${ADMIN_USER}"').replace('"$ADMIN_PASSWORD"', '"${ADMIN_PASSWORD}"')
            quote = "JSON"
        else:
            read, quote = "", "'JSON'"
        commands.append(Command(f"{read}{CURL}{options} -X POST -H 'Content-Type: application/json' "
                                f"{_url(url, 'configuration')} --data-binary @- <<{quote}\n{body}\nJSON",
                                comment=call.label, webui=_WEBUI, expect=_ACCEPTED))
        if call.then is not call.over:
            commands.append(Command(f"{CURL}{admin_curl_options(settings, call.then)} "
                                    f"{_url(_var(call.then), 'service/status')} >/dev/null",
                                    comment=f"from now on: {call.then}", expect="nothing: HTTP 200", retry=True))
    checks = [Command(f"curl -sS -o /dev/null {_url(OPEN_URL_VAR, 'service/status')}",
                      comment="plain HTTP gets no answer any more", expect="fails: Empty reply from server",
                      must_fail=True)]
    if settings.admin_security == "mtls":
        ca = manual_pki.pki_names(settings)[1]
        checks.append(Command(f"curl -sS -o /dev/null --cacert {ca} {_url(ADMIN_URL_VAR, 'service/status')}",
                              comment="nor HTTPS without the client certificate",
                              expect="fails: the TLS handshake (alert certificate required)", must_fail=True))
    return ManualStep(
        "admin plane", _CHAPTER, "Lock the admin API before anything else",
        "Open, the admin API takes any request from anyone who can reach 127.0.0.1, a web page in your browser "
        "included (Amlen answers every Origin with CORS allow-credentials). As Amlen's operator does first, "
        "then better: an admin password, TLS with the certificate above, "
        + ("a client certificate from the toy CA, and only CN lab.admin let in; then the password is switched off. "
           if settings.admin_security == "mtls" else "and the password on every request. ")
        + "The order matters: a policy set before the certificate is required locks you out.",
        (*commands, *checks))


def _target(settings: Settings) -> Rung:
    return {"open": Rung.OPEN, "password": Rung.PASSWORD, "mtls": Rung.CERT}[settings.admin_security]


def _var(rung: Rung) -> str:
    return OPEN_URL_VAR if rung is Rung.OPEN else ADMIN_URL_VAR


def _local(settings: Settings, lab_name: str) -> str:
    """The guide's file for a lab file name (the admin files sit beside the others in the working directory)."""
    names = {"admin-server.crt": ADMIN_FILES["server cert"], "admin-server.key": ADMIN_FILES["server key"],
             "admin-server.chain.pem": "admin-server.chain.pem"}
    return names.get(lab_name, lab_name)


def _url(var: str, path: str) -> str:
    return f'"${var}"' + shlex.quote("/ima/v1/" + path)
