"""The admin endpoint's configuration: AdminUserID, AdminUserPassword, AdminEndpoint and ConfigurationPolicy.

As recorded on a real server (reference appendix "Observed later (2026-12-04)") and read from Amlen's
``validate_AdminEndpoint.c`` / ``validate_ConfigurationPolicy.c``:

- ``GET /configuration/AdminUserID`` is ``{"Version":"v1","AdminUserID":"admin"}`` on a fresh server;
  ``GET .../AdminUserPassword`` is 400 CWLNA0137 (the password is never read back). ``POST {"AdminUserID":..,
  "AdminUserPassword":..}`` is accepted; the password is kept only as a salted PBKDF2 hash.
- ``AdminEndpoint`` is a singleton (``Port``, ``Interface``, ``SecurityProfile``, ``ConfigurationPolicies``; the
  ``Description`` is read-only); the profile and every policy of the list must exist (404 CWLNA0136).
- ``ConfigurationPolicy``: ``ActionList`` from ``Configure,View,Monitor,Manage`` (required), filters
  ``ClientAddress`` (addresses and ranges, or ``*``), ``UserID``, ``GroupID``, ``CommonNames`` (no ``**``), at
  least one filter (CWLNA0139), ``Description``. The default policy cannot be deleted (403 CWLNA0372), one the
  AdminEndpoint lists cannot either (400 CWLNA0376).

The whole of it lives in ``data/config/standin-admin.json`` (and the policies with the other objects), so it
survives a restart. ``AdminPlane`` is what the admin HTTP server enforces (``adminsec.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstore import profile_tls
from messages import AmlenError, bad_value, not_found
from policies import names
from schema import Kind, Prop, check_value, json_type_name, validate_properties
from tls import TlsSettings

ADMIN_ENDPOINT_DESCRIPTION = (
    "Admin Endpoint used for processing administrative and monitoring requests from clients using REST API."
)
ADMIN_ENDPOINT_SCHEMA: dict[str, Prop] = {
    "Port": Prop(Kind.NUMBER, default=9089, minimum=1, maximum=65535),
    "Interface": Prop(Kind.IP_ADDRESS, default="All"),
    "SecurityProfile": Prop(Kind.STRING, default="", max_length=32),
    "ConfigurationPolicies": Prop(Kind.STRING, default=""),
    "Description": Prop(Kind.STRING, settable=False),
}
_ADMIN_STRING = Prop(Kind.STRING, max_length=1024)
MAX_CLIENT_ADDRESSES = 100


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IPv4 address bare, an IPv6 address bare or in brackets; None for anything else."""
    text = text.strip()
    bracketed = text.startswith("[") and text.endswith("]")
    try:
        address = ipaddress.ip_address(text[1:-1] if bracketed else text)
    except ValueError:
        return None
    return None if bracketed and address.version == 4 else address
_PBKDF2_ROUNDS = 4096  # the first check of a credential costs ~15 ms here; later ones are cached


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``pbkdf2-sha256$<rounds>$<salt hex>$<hash hex>``: the password is never stored in clear."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ROUNDS)
    return f"pbkdf2-sha256${_PBKDF2_ROUNDS}${salt.hex()}${digest.hex()}"


def password_matches(stored: str, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time comparison)."""
    try:
        _, rounds, salt, digest = stored.split("$")
        attempt = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(attempt.hex(), digest)


@dataclass(frozen=True)
class AdminPlane:
    """What the admin port enforces right now."""

    tls: TlsSettings  # the certificate served (TLS only, or to a ClientHello in the mixed mode)
    tls_only: bool  # TLSEnabled: plain HTTP gets no answer
    password_authentication: bool
    user_id: str
    password_hash: str
    policies: tuple[dict[str, Any], ...]  # the AdminEndpoint's ConfigurationPolicies, in order
    revision: int  # bumped by every change to the transport (certificate, TLS, client certificates)


class AdminObjects:
    """The admin endpoint's objects of ``store.Configuration``."""

    paths: Any
    objects: dict[str, dict[str, dict[str, Any]]]
    _lock: threading.RLock
    admin_port: int

    def _load_admin(self) -> None:
        self._admin_file: Path = self.paths.config / "standin-admin.json"
        self.admin_revision = 0
        if self._admin_file.is_file():
            self.admin: dict[str, Any] = json.loads(self._admin_file.read_text())
            return
        # Amlen ships a stored (hashed) default password whose clear text is not documented: nobody knows it.
        self.admin = {
            "AdminUserID": "admin",
            "AdminUserPassword": hash_password(secrets.token_urlsafe(24)),
            "AdminEndpoint": {
                "Port": self.admin_port,
                "Interface": "All",
                "SecurityProfile": "AdminDefaultSecProfile",
                "ConfigurationPolicies": "AdminDefaultConfigPolicy",
                "Description": ADMIN_ENDPOINT_DESCRIPTION,
            },
        }
        self._save_admin()

    def _save_admin(self) -> None:
        temporary = self._admin_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.admin, indent=2))
        temporary.chmod(0o600)
        os.replace(temporary, self._admin_file)

    # ---- POST ----------------------------------------------------------------------------------------------

    def _post_admin_user(self, obj_type: str, value: Any) -> None:
        """``{"AdminUserID": "..."}`` / ``{"AdminUserPassword": "..."}`` (strings, not empty)."""
        if not isinstance(value, str):
            raise AmlenError(400, 127, obj_type, "", obj_type, json_type_name(value))
        check_value(obj_type, "", obj_type, _ADMIN_STRING, value)
        if not value:
            raise bad_value(obj_type, '""')
        self.admin[obj_type] = hash_password(value) if obj_type == "AdminUserPassword" else value
        if obj_type == "AdminUserPassword":
            self.admin["PasswordPosted"] = True  # a server configured without one (CWLNA0375) now has one
        self._save_admin()

    def _post_admin_endpoint(self, body: Any) -> None:
        if body is None:
            raise AmlenError(403, 372, "AdminEndpoint")
        current = self.admin["AdminEndpoint"]
        props, _ = validate_properties("AdminEndpoint", "AdminEndpoint", body, ADMIN_ENDPOINT_SCHEMA, current)
        profile = props["SecurityProfile"]
        if profile and profile not in self.objects["SecurityProfile"]:
            raise not_found("SecurityProfile", profile)
        policies = names(props["ConfigurationPolicies"])
        for policy in policies:
            if policy not in self.objects["ConfigurationPolicy"]:
                raise not_found("ConfigurationPolicy", policy)
        props["ConfigurationPolicies"] = ",".join(policies)
        if props["Port"] != current["Port"] or props["Interface"] != current["Interface"]:
            # The stand-in's admin port is published by the container; moving it is not modelled.
            raise AmlenError(501, 102)
        self.admin["AdminEndpoint"] = props
        self._save_admin()
        self.admin_revision += 1

    @staticmethod
    def _precheck_configuration_policy(body: Any) -> None:
        """What Amlen's REST tests expect before the generic validation: ``null`` for the whole type is not a
        valid call (400 CWLNA0137), a ``null`` ActionList is a bad value (400 CWLNA0112), not a missing one."""
        if body is None:
            raise AmlenError(400, 137, '"ConfigurationPolicy":null')
        if isinstance(body, dict):
            for props in body.values():
                if isinstance(props, dict) and "ActionList" in props and props["ActionList"] is None:
                    raise bad_value("ActionList", "null")

    @staticmethod
    def _check_configuration_policy(props: dict[str, Any]) -> None:
        """``validate_ConfigurationPolicy.c`` and Amlen's REST tests: an exact ActionList (no blanks around its
        commas), ``*`` or at most 100 addresses and ascending ``low-high`` ranges (IPv6 in brackets, IPv4 not;
        CWLNA0371 past 100), no ``**`` in the name filters."""
        actions = props["ActionList"]
        if any(item != item.strip() for item in actions.split(",")):
            raise bad_value("ActionList", actions)
        address = props.get("ClientAddress") or ""
        if address and address != "*":
            entries = names(address)
            if len(entries) > MAX_CLIENT_ADDRESSES:
                raise AmlenError(400, 371, MAX_CLIENT_ADDRESSES)
            for entry in entries:
                bounds = [_address(part) for part in entry.split("-")]
                if None in bounds or len(bounds) > 2 or int(bounds[0]) > int(bounds[-1]):  # type: ignore[arg-type]
                    raise bad_value("ClientAddress", address)
        for key in ("UserID", "GroupID", "CommonNames"):
            if "**" in (props.get(key) or ""):
                raise bad_value(key, props[key])

    # ---- GET and DELETE ------------------------------------------------------------------------------------

    def get_admin_singleton(self, obj_type: str) -> dict[str, Any]:
        """``GET /configuration/AdminUserID`` and ``.../AdminEndpoint``; the password is never read back."""
        with self._lock:
            if obj_type == "AdminUserPassword":
                raise AmlenError(400, 137, f"/ima/v1/configuration/{obj_type}")
            if obj_type == "AdminUserID":
                return {"Version": "v1", "AdminUserID": self.admin["AdminUserID"]}
            return {"Version": "v1", "AdminEndpoint": dict(self.admin["AdminEndpoint"])}

    def admin_endpoint_uses(self, obj_type: str, name: str) -> bool:
        """Whether the AdminEndpoint references ``name`` (its security profile or one of its policies)."""
        endpoint = self.admin["AdminEndpoint"]
        if obj_type == "SecurityProfile":
            return bool(endpoint["SecurityProfile"] == name)
        return obj_type == "ConfigurationPolicy" and name in names(endpoint["ConfigurationPolicies"])

    # ---- what the admin port enforces ----------------------------------------------------------------------

    def admin_touched(self, obj_type: str, name: str) -> None:
        """A POSTed object: bump the transport revision when the admin endpoint's TLS may have changed."""
        profile_name = self.admin["AdminEndpoint"]["SecurityProfile"]
        profile = self.objects["SecurityProfile"].get(profile_name) or {}
        if (obj_type == "SecurityProfile" and name == profile_name) or (
            obj_type == "CertificateProfile" and name == profile.get("CertificateProfile")
        ):
            self.admin_revision += 1

    def admin_plane(self) -> AdminPlane:
        """The admin endpoint's security as configured now (read under the configuration lock)."""
        with self._lock:
            endpoint = self.admin["AdminEndpoint"]
            profile_name = endpoint["SecurityProfile"] or "AdminDefaultSecProfile"
            profile = self.objects["SecurityProfile"][profile_name]
            certificate_profile = profile["CertificateProfile"] or "AdminDefaultCertProf"
            if certificate_profile not in self.objects["CertificateProfile"]:
                certificate_profile = "AdminDefaultCertProf"
            tls = profile_tls(self.paths, self.objects, profile_name, certificate_profile)
            policies = tuple(
                dict(self.objects["ConfigurationPolicy"][policy])
                for policy in names(endpoint["ConfigurationPolicies"])
                if policy in self.objects["ConfigurationPolicy"]
            )
            return AdminPlane(
                tls=tls,
                tls_only=bool(profile["TLSEnabled"]),
                password_authentication=bool(profile["UsePasswordAuthentication"]),
                user_id=self.admin["AdminUserID"],
                password_hash=self.admin["AdminUserPassword"],
                policies=policies,
                revision=self.admin_revision,
            )
