"""The guide's certificate sections by hand: the toy CA (and the intermediate CA under it), the server and
client certificates and their chain files, or your own server certificate, as `openssl` commands.

The profiles come from `lab.pki.build`, the file names from `lab.pki.paths`, what goes after a leaf from the
same rule the lab applies (`lab.pki.chain`: the leaf, then each issuer; the root only with LAB_SERVE_ROOT).
"""

from __future__ import annotations

import shlex

from cryptography import x509

from lab.learn.manual import PASSPHRASE_VAR, Command, ManualStep
from lab.pki import build as certs
from lab.pki.chain import after_leaf as chain_after_leaf
from lab.pki.info import EKU_NAMES, KEY_USAGE_NAMES
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = ["after_leaf", "intermediate", "issuer_names", "leaf", "own_server", "pki_names", "readable", "subj",
           "toy_ca", "trust_name"]


def toy_ca(settings: Settings) -> ManualStep:
    ca_key, ca_cert = pki_names(settings)[:2]
    subject = subj(certs.subject_name(certs.CA_COMMON_NAME))
    usage = ",".join(KEY_USAGE_NAMES[flag] for flag in certs.CA_KEY_USAGE)
    two_tier = settings.pki == "intermediate"
    pathlen = certs.ROOT_PATH_LENGTH_TWO_TIER if two_tier else certs.CA_PATH_LENGTH
    signs = ("may sign one CA below it (pathlen 1): the intermediate, which signs everything else, as a real "
             "CA's issuing CA does" if two_tier else "may sign leaves only (pathlen 0)")
    return ManualStep(
        "certificates", "The toy CA", "Make the CA" if not two_tier else "Make the root CA",
        f"The CA signs the server and client certificates; clients trust it instead of a public CA. Its key "
        f"is RSA {certs.KEY_BITS} and encrypted at rest with the passphrase in ${PASSPHRASE_VAR}; the "
        f"certificate is valid for {settings.ca_days} days and {signs}.",
        (Command(f"openssl genrsa -aes256 -passout env:{PASSPHRASE_VAR} -out {ca_key} {certs.KEY_BITS}"),
         Command(f"openssl req -x509 -new -{certs.SIGNATURE_HASH.name} -days {settings.ca_days} -key {ca_key} "
                 f"-passin env:{PASSPHRASE_VAR} \\\n  -subj {shlex.quote(subject)} \\\n"
                 f"  -addext 'basicConstraints=critical,CA:TRUE,pathlen:{pathlen}' \\\n"
                 f"  -addext 'keyUsage=critical,{usage}' \\\n  -out {ca_cert}"),
         Command(f"openssl x509 -in {ca_cert} -noout -subject -enddate",
                 expect=f"subject={readable(subject)}, and the end date {settings.ca_days} days from now")),
    )


def intermediate(settings: Settings) -> ManualStep:
    """LAB_PKI=intermediate: the intermediate CA under the root, as a real CA's issuing CA."""
    ca_key, ca_cert = pki_names(settings)[:2]
    key, cert = issuer_names(settings)
    stem = cert.removesuffix(".pem")
    subject = subj(certs.subject_name(certs.INTERMEDIATE_COMMON_NAME))
    usage = ",".join(KEY_USAGE_NAMES[flag] for flag in certs.CA_KEY_USAGE)
    extensions = ["basicConstraints=critical,CA:TRUE,pathlen:0", f"keyUsage=critical,{usage}",
                  "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
    return ManualStep(
        "certificates", "The toy CA", "Make the intermediate CA",
        "What a real CA does: the root stays offline and an intermediate CA signs the certificates. It may sign "
        "leaves only (pathlen 0); its key is encrypted like the root's. Every leaf below comes with a chain file "
        "(the leaf, then this certificate), because clients trust only the root and must be sent the rest.",
        (Command(f"openssl genrsa -aes256 -passout env:{PASSPHRASE_VAR} -out {key} {certs.KEY_BITS}"),
         Command(f"openssl req -new -key {key} -passin env:{PASSPHRASE_VAR} -subj {shlex.quote(subject)} "
                 f"-out {stem}.csr"),
         Command("printf '%s\\n' " + " \\\n  ".join(shlex.quote(ext) for ext in extensions) + f" > {stem}.ext"),
         Command(f"openssl x509 -req -{certs.SIGNATURE_HASH.name} -days {settings.ca_days} -in {stem}.csr "
                 f"-CA {ca_cert} -CAkey {ca_key} -passin env:{PASSPHRASE_VAR} \\\n  -CAcreateserial "
                 f"-extfile {stem}.ext -out {cert}"),
         Command(f"openssl verify -CAfile {ca_cert} {cert}", expect=f"{cert}: OK")),
    )


def own_server(settings: Settings) -> ManualStep:
    """LAB_SERVER_CERT: the guide's "if you've already got a certificate from a well-known CA"."""
    pki = pki_paths(settings)
    cert, key = shlex.quote(str(settings.server_cert)), shlex.quote(str(settings.server_key))
    trust = f"-CAfile {shlex.quote(str(settings.trust_ca))}" if settings.trust_ca else "(the system's CAs)"
    verify = (f"openssl verify {'-CAfile ' + shlex.quote(str(settings.trust_ca)) if settings.trust_ca else ''} "
              f"-untrusted {cert} {cert}").replace("  ", " ")
    return ManualStep(
        "certificates", "The server certificate", "Your own certificate",
        "You already have a certificate (skip straight to adding it to the server). Amlen takes RSA keys only, "
        "serves the certificate file whole, and accepts an expired certificate without a word, so check it first: "
        f"the leaf must name {settings.hostname}, and the file must hold the leaf, then each intermediate, in "
        f"that order, up to (not necessarily including) the root your clients trust {trust}. The lab writes "
        f"that order into {pki.server_chain.name} (re-ordering the file if needed) and never changes your files.",
        (Command(f"openssl x509 -in {cert} -noout -subject -issuer -ext subjectAltName -enddate",
                 expect=f"DNS:{settings.hostname} and an end date in the future"),
         Command(f"openssl pkey -in {key} -noout -text | head -1",
                 expect="Private-Key: (2048 bit, 2 primes): an RSA key (EC keys are refused)"),
         Command(verify, expect="OK"),
         Command(f"cp {cert} {pki.server_chain.name} && cp {key} {pki.server_key.name}",
                 comment="the upload names the steps below use")),
    )


def leaf(settings: Settings, name: str, *, server: bool, files: tuple[str, str] | None = None,
         sans: tuple[str, ...] = (), about: tuple[str, str, str, str] | None = None) -> ManualStep:
    """A server certificate (SAN DNS:<hostname>, serverAuth) or a client certificate (CN=<name>, clientAuth).

    `files` (key, certificate) and `sans` (extra `IP:...`/`DNS:...` names) and `about` (plan step, chapter,
    title, why) make other leaves the same way: the admin plane's (`lab.learn.explain_admin`)."""
    _ca_key, ca_cert, server_key, server_cert = pki_names(settings)
    signer_key, signer_cert = issuer_names(settings)
    key, cert = files or ((server_key, server_cert) if server else (f"{name}.key", f"{name}.crt"))
    stem = cert.removesuffix(".crt")
    days = settings.server_days if server else settings.client_days
    flags = certs.SERVER_KEY_USAGE if server else certs.CLIENT_KEY_USAGE
    extensions = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical," + ",".join(KEY_USAGE_NAMES[flag] for flag in flags),
        "extendedKeyUsage=" + EKU_NAMES[certs.SERVER_EKU if server else certs.CLIENT_EKU],
        *([f"subjectAltName={','.join((f'DNS:{name}', *sans))}"] if server else []),
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
    ]
    subject = subj(certs.subject_name(name))
    if server:
        chapter, title = "The server certificate", f"A certificate for {name}"
        why = (f"The certificate Amlen presents on both endpoints. Clients check that {name} is in its subject "
               f"alternative names, so that is where the name goes. The key is RSA {certs.KEY_BITS} and NOT "
               "encrypted: Amlen reads only unencrypted RSA keys (encrypted ones crash some versions).")
    else:
        chapter, title = "Mutual TLS", f"A client certificate for {name}"
        why = (f"On the mutual-TLS endpoint each client shows a certificate from the toy CA. Its CN ({name}) is "
               "the identity Amlen's policies can use; it is good for client authentication only.")
    if about is not None:
        step, chapter, title, why = about
    else:
        step = "certificates"
    after = after_leaf(settings, server=server)
    untrusted = f" -untrusted {signer_cert}" if signer_cert != ca_cert else ""
    chain = ([Command(f"cat {cert} {' '.join(after)} > {stem}.chain.pem",
                      comment="the chain: the leaf, then what a client that trusts only the root needs")]
             if after else [])
    if after:
        why += (f" It goes with {stem}.chain.pem, the leaf followed by {', then '.join(after)}: "
                + ("what Amlen serves (the guide's 'server certificate followed by the intermediate cert(s)')."
                   if server else "what the client presents, since the broker trusts only the root."))
    return ManualStep(step, chapter, title, why + f" Valid for {days} days.", (
        Command(f"openssl genrsa -out {key} {certs.KEY_BITS}"),
        Command(f"openssl req -new -key {key} -subj {shlex.quote(subject)} -out {stem}.csr"),
        Command("printf '%s\\n' " + " \\\n  ".join(shlex.quote(ext) for ext in extensions) + f" > {stem}.ext"),
        Command(f"openssl x509 -req -{certs.SIGNATURE_HASH.name} -days {days} -in {stem}.csr -CA {signer_cert} "
                f"-CAkey {signer_key} -passin env:{PASSPHRASE_VAR} \\\n  -CAcreateserial -extfile {stem}.ext "
                f"-out {cert}"),
        Command(f"openssl verify -CAfile {ca_cert}{untrusted} {cert}", expect=f"{cert}: OK"),
        *chain,
    ))


def trust_name(settings: Settings) -> str:
    """The file clients trust for the server: myCA.pem; with your own certificate LAB_TRUST_CA or its root."""
    if not settings.own_server:
        return pki_names(settings)[1]
    trust = pki_paths(settings).server_trust
    return shlex.quote(str(trust)) if trust is not None else "/etc/ssl/certs/ca-certificates.crt"


def issuer_names(settings: Settings) -> tuple[str, str]:
    """(key, certificate) of the CA that signs the leaves: the intermediate in the two-tier PKI, else the root."""
    pki = pki_paths(settings)
    if pki.two_tier:
        return pki.intermediate_key.name, pki.intermediate_cert.name
    return pki.ca_key.name, pki.ca_cert.name


def after_leaf(settings: Settings, *, server: bool) -> list[str]:
    """What a leaf's chain file carries after it (the lab's own rule, `lab.pki.chain.after_leaf`), by name."""
    return [path.name for path in chain_after_leaf(pki_paths(settings), server=server, serve_root=settings.serve_root)]


def pki_names(settings: Settings) -> tuple[str, str, str, str]:
    """(CA key, CA certificate, server key, server certificate): the lab's file names, without directories."""
    pki = pki_paths(settings)
    return pki.ca_key.name, pki.ca_cert.name, pki.server_key.name, pki.server_cert.name


def subj(name: x509.Name) -> str:
    """`name` as openssl's -subj argument, attributes in the certificate's order: /CN=.../O=..."""
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("/", "\\/")

    return "".join(f"/{attr.rfc4514_attribute_name}={escape(str(attr.value))}" for attr in name)


def readable(subject: str) -> str:
    """An -subj string as `openssl x509 -subject` prints it: CN = a, O = b."""
    parts = [part.partition("=") for part in subject.strip("/").split("/")]
    return ", ".join(f"{key} = {value}" for key, _, value in parts)
