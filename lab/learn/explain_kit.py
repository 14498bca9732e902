"""`invoke kit`'s PKCS#12 files made by hand: `openssl pkcs12 -export` for the keystore, `keytool -importcert`
for the Java truststore, with this lab's names (a section of `invoke guide` and of `up --explain`).

The password is made on the spot into a 0600 file that the commands read (`-passout file:`, `-storepass:file`),
so none is ever on a command line or in the guide.
"""

from __future__ import annotations

import shlex

from lab.kit.pkcs12 import TRUSTSTORE_ALIAS
from lab.learn import explain_pki as manual_pki
from lab.learn.manual import Command, ManualStep
from lab.settings import Settings

__all__ = ["kit_steps"]

_CHAPTER = "Your application"


def kit_steps(settings: Settings) -> list[ManualStep]:
    """The two PKCS#12 files of `invoke kit` for the lab's first client, by hand (none without a client)."""
    if not settings.client_names:
        return []
    client = settings.client_names[0]
    shown = f"{client}.chain.pem" if settings.pki == "intermediate" else f"{client}.crt"
    ca = manual_pki.trust_name(settings)
    name = shlex.quote(client)
    keystore = ManualStep(
        "verification", _CHAPTER, "A PKCS#12 keystore for Java and other JSSE clients",
        f"`invoke kit` writes this for you, with PEM files, `connection.env` and a program per language, in "
        f".lab/kits/{client}/. OpenSSL 3's defaults are what the kit uses: AES-256-CBC, PBKDF2-HMAC-SHA256 with "
        "2048 iterations and an HMAC-SHA256 MAC. Java 8 before 8u301 and OpenSSL 1.1 read only the legacy form: add "
        "`-legacy` (3DES and SHA-1), as `invoke kit --legacy-p12` does.",
        (Command("(umask 077 && openssl rand -base64 24 > kit.password)",
                 comment="a password in a 0600 file: never on a command line"),
         Command(f"openssl pkcs12 -export -name {name} -inkey {client}.key -in {shown} -out client.p12 "
                 "-passout file:kit.password"),
         Command("openssl pkcs12 -info -noout -in client.p12 -passin file:kit.password",
                 expect="MAC: sha256, Iteration 2048 ... PBES2, PBKDF2, AES-256-CBC, Iteration 2048, "
                        "PRF hmacWithSHA256")),
    )
    truststore = ManualStep(
        "verification", _CHAPTER, "A Java truststore that holds the CA",
        "keytool marks an imported certificate as trusted (Oracle's trusted-key-usage attribute): a PKCS#12 file "
        "made by `openssl pkcs12 -export -nokeys` lacks it, and Java's KeyStore does not treat its certificate as "
        "trusted. keytool comes with every JDK.",
        (Command("rm -f truststore.p12", comment="keytool adds to an existing store; start from none"),
         Command(f"keytool -importcert -noprompt -alias {TRUSTSTORE_ALIAS} -file {ca} -keystore truststore.p12 "
                 "-storetype PKCS12 -storepass:file kit.password"),
         Command("keytool -list -keystore truststore.p12 -storepass:file kit.password",
                 expect=f"{TRUSTSTORE_ALIAS}, ..., trustedCertEntry"),
         Command("keytool -list -keystore client.p12 -storepass:file kit.password",
                 expect=f"{client}, ..., PrivateKeyEntry")),
        requires="command -v keytool >/dev/null",
        requires_note="keytool (a JDK) is not installed",
    )
    return [keystore, truststore]
