"""Certificates behind the admin API: uploads, certificate profiles and trusted certificates.

The rules of Amlen's ``certApply.sh`` (``Server`` and ``TRUSTED`` branches): an upload is consumed by the apply
that uses it and kept when the apply fails; ``Overwrite`` is needed to replace a stored file; PEM only, RSA keys
only (checked with the openssl command line, see ``certs.py``); a trusted certificate must be a CA.
``CertificateObjects`` is a part of ``store.Configuration``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from typing import Any

import certs
from broker import Log
from certs import DataPaths
from crl import crl_file
from messages import AmlenError, not_found
from schema import CERTIFICATE_PROFILE_OPTIONS, SCHEMAS, TRUSTED_CERTIFICATE_ENTRY, json_type_name, validate_properties
from tls import TlsSettings

MAX_TRUSTED_CERTIFICATES = 100  # per security profile (docs)
_PKCS12_SUFFIXES = (".p12", ".pfx")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\s*", re.DOTALL)


def profile_tls(
    paths: DataPaths, objects: dict[str, dict[str, dict[str, Any]]], profile_name: str, certificate_profile: str
) -> TlsSettings:
    """What security profile ``profile_name`` with certificate profile ``certificate_profile`` gives a listener."""
    profile = objects["SecurityProfile"][profile_name]
    cert_profile = objects["CertificateProfile"][certificate_profile]
    crl_profile = objects["CRLProfile"].get(profile["CRLProfile"] or "")
    return TlsSettings(
        certificate=paths.keystore / cert_profile["Certificate"],
        key=paths.keystore / cert_profile["Key"],
        minimum_protocol=profile["MinimumProtocolMethod"],
        use_client_cipher=profile["UseClientCipher"],
        require_client_certificate=profile["UseClientCertificate"],
        trusted_ca_file=paths.truststore / f"{profile_name}_cafile.pem",
        trusted_ca_path=paths.truststore / f"{profile_name}_capath",
        crl_file=crl_file(paths.certificates, profile["CRLProfile"], crl_profile["CRLSource"]) if crl_profile else None,
    )


class CertificateObjects:
    """Uploads, certificate profiles and trusted certificates of the configuration."""

    paths: DataPaths
    objects: dict[str, dict[str, dict[str, Any]]]
    _lock: threading.RLock
    _log: Log

    def _save(self) -> None:
        raise NotImplementedError

    def _restart_endpoints(
        self, *, security_profile: str | None = None, certificate_profile: str | None = None
    ) -> None:
        raise NotImplementedError

    # ---- uploads -------------------------------------------------------------------------------------------

    @staticmethod
    def _check_file_name(name: str, prop: str) -> None:
        if not name or "/" in name or name in (".", "..") or name != name.strip(" "):
            raise AmlenError(400, 134, prop, name or "NULL")

    def put_file(self, name: str, data: bytes) -> None:
        """``PUT /ima/v1/file/<name>``: stage the raw body (an empty body is accepted, as recorded)."""
        self._check_file_name(name, "FileName")
        with self._lock:
            temporary = self.paths.userfiles / f".{name}.part"
            temporary.write_bytes(data)
            os.replace(temporary, self.paths.userfiles / name)

    def delete_staged_file(self, name: str) -> None:
        """``DELETE /ima/v1/service/file/<name>``: drop a staged upload."""
        self._check_file_name(name, "FileName")
        with self._lock:
            staged = self.paths.userfiles / name
            if not staged.is_file():
                raise AmlenError(404, 113)
            staged.unlink()

    def _post_certificate_profile(self, name: str, body: Any, current: dict[str, Any] | None) -> None:
        """Validate and apply a certificate profile the way ``certApply.sh apply Server`` does.

        Every create or update re-applies the files, so each needs a fresh upload; nothing is consumed unless
        the whole apply succeeds.
        """
        schema = SCHEMAS["CertificateProfile"]
        props, options = validate_properties(
            "CertificateProfile", name, body, schema, current, options=CERTIFICATE_PROFILE_OPTIONS
        )
        cert_name, key_name = props["Certificate"], props["Key"]
        self._check_file_name(cert_name, "Certificate")
        self._check_file_name(key_name, "Key")
        for other, other_props in self.objects["CertificateProfile"].items():
            if other == name:
                continue
            if cert_name in (other_props["Certificate"], other_props["Key"]):
                raise AmlenError(400, 451)
            if key_name in (other_props["Certificate"], other_props["Key"]):
                raise AmlenError(400, 452)
        if cert_name.lower().endswith(_PKCS12_SUFFIXES) or key_name.lower().endswith(_PKCS12_SUFFIXES):
            raise AmlenError(400, 6182)
        staged_cert, staged_key = self.paths.userfiles / cert_name, self.paths.userfiles / key_name
        if not staged_cert.is_file():
            raise AmlenError(400, 6184, cert_name)
        if not staged_key.is_file():
            raise AmlenError(400, 6185, key_name)
        stored_cert, stored_key = self.paths.keystore / cert_name, self.paths.keystore / key_name
        if not options.get("Overwrite", False) and (stored_cert.exists() or stored_key.exists()):
            raise AmlenError(400, 6186)
        info = certs.certificate_info(staged_cert)
        if info is None:
            raise AmlenError(400, 6180)
        password = options.get("KeyFilePassword")
        try:
            modulus = certs.rsa_key_modulus(staged_key, password)
        except certs.KeyNeedsPassword:
            raise AmlenError(400, 6191) from None
        except certs.KeyPasswordWrong:
            raise AmlenError(400, 6193) from None
        if info.rsa_modulus != modulus:
            raise AmlenError(400, 6189)

        certs.write_plain_key(staged_key, stored_key, password)
        if cert_name == key_name:
            # One file holds both: keep its certificates next to the (now unencrypted) key.
            chain = "".join(_PEM_CERTIFICATE.findall(staged_cert.read_text()))
            stored_key.write_text(chain + stored_key.read_text())
        else:
            shutil.copyfile(staged_cert, stored_cert)
        stored_key.chmod(0o600)
        staged_cert.unlink(missing_ok=True)
        staged_key.unlink(missing_ok=True)
        if current is not None:
            for old in {current["Certificate"], current["Key"]} - {cert_name, key_name}:
                (self.paths.keystore / old).unlink(missing_ok=True)
        props["ExpirationDate"] = certs.expiration_date(info)
        self.objects["CertificateProfile"][name] = props
        self._save()
        self._log(
            "CWLNA6011",
            "INFO",
            "Admin",
            f"The configuration is updated: Object=CertificateProfile Name={name} Certificate={cert_name}.",
        )
        if current is not None:
            self._restart_endpoints(certificate_profile=name)

    def _post_trusted_certificates(self, body: Any) -> None:
        """``{"TrustedCertificate": [{"SecurityProfileName": p, "TrustedCertificate": f, "Overwrite": b}]}``.

        Adding a trusted certificate restarts no endpoint: running listeners find new CAs through the hashed
        directory, as Amlen's do.
        """
        if not isinstance(body, list):
            raise AmlenError(400, 127, "TrustedCertificate", "", "TrustedCertificate", json_type_name(body))
        for entry in body:
            file_hint = entry.get("TrustedCertificate", "") if isinstance(entry, dict) else ""
            props, _ = validate_properties(
                "TrustedCertificate", str(file_hint), entry, TRUSTED_CERTIFICATE_ENTRY, None
            )
            profile, file_name, overwrite = (
                props["SecurityProfileName"],
                props["TrustedCertificate"],
                props["Overwrite"],
            )
            if profile not in self.objects["SecurityProfile"]:
                raise not_found("SecurityProfileName", profile)
            self._check_file_name(file_name, "TrustedCertificate")
            staged = self.paths.userfiles / file_name
            target = self.paths.truststore / profile / file_name
            if not staged.is_file():
                if not target.exists():
                    raise not_found("TrustedCertificate", file_name)
                if not overwrite:
                    raise AmlenError(400, 6186)
                continue  # already trusted, nothing uploaded, Overwrite true: a no-op success
            if target.exists() and not overwrite:
                raise AmlenError(400, 6186)
            if file_name.lower().endswith(_PKCS12_SUFFIXES):
                raise AmlenError(400, 6182)
            info = certs.certificate_info(staged)
            if info is None:
                raise AmlenError(400, 6180)
            if not info.is_ca:
                raise AmlenError(400, 6183)
            present = certs.trusted_certificates(self.paths, profile)
            if file_name not in present and len(present) >= MAX_TRUSTED_CERTIFICATES:
                raise AmlenError(400, 374, "TrustedCertificate", len(present) + 1, MAX_TRUSTED_CERTIFICATES)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staged, target)
            certs.rebuild_truststore(self.paths, profile)
            self._log(
                "CWLNA6011",
                "INFO",
                "Admin",
                f"The trusted certificate is added: SecurityProfile={profile} File={file_name}.",
            )

    def _get_certificates(self, obj_type: str, profile: str | None, file_name: str | None) -> dict[str, Any]:
        if obj_type == "ClientCertificate":
            entries: list[dict[str, str]] = []  # the stand-in does not implement allowed client certificates
        else:
            entries = [
                {"SecurityProfileName": trust_profile, "TrustedCertificate": trusted}
                for trust_profile in certs.trust_profiles(self.paths)
                for trusted in certs.trusted_certificates(self.paths, trust_profile)
                if profile in (None, trust_profile) and file_name in (None, trusted)
            ]
        if (profile is not None or file_name is not None) and not entries:
            raise not_found(obj_type, file_name or profile or "")
        return {"Version": "v1", obj_type: entries}
