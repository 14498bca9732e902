"""The configuration behind the admin API: objects, staged uploads, key and trust stores, live endpoints.

Every rule here is Amlen's as the reference records it (its appendix wins over the source reading): the object
types a POST may carry and the order in which Amlen applies them, the cross-object checks (missing references,
CWLNA0456, ports in use, objects still referenced), the certificate rules of ``certApply.sh`` (an upload is
consumed by the apply that uses it, Overwrite, RSA keys only, trusted certificates must be CAs), and the
CRL profiles (``crl.py``). The monitors are in ``monitor.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import certs
from adminobjects import AdminObjects
from broker import Log
from certs import DataPaths
from certstore import CertificateObjects, profile_tls
from crl import apply_crl_profile, remove_crl_profile
from defaults import ADMIN_CERTIFICATE, ADMIN_KEY, default_objects
from endpoints import EndpointManager, EndpointSpec
from messages import AmlenError, bad_value, in_use, not_found
from monitor import endpoint_monitor
from objectchecks import check_endpoint, check_security_profile
from policies import names as _names
from schema import (
    CRL_PROFILE_OPTIONS,
    NAMED_TYPES,
    SCHEMAS,
    check_min_one,
    check_object_name,
    json_type_name,
    validate_properties,
)
from tls import TlsSettings

# janssonProcessPost.c applies the object types of one request in this order, whatever the JSON order.
POST_ORDER = (
    "AdminUserID",
    "AdminUserPassword",
    "CertificateProfile",
    "LTPAProfile",
    "OAuthProfile",
    "CRLProfile",
    "SecurityProfile",
    "TrustedCertificate",
    "ClientCertificate",
    "ConnectionPolicy",
    "ConfigurationPolicy",
    "AdminEndpoint",
    "TopicPolicy",
    "QueuePolicy",
    "SubscriptionPolicy",
    "MessageHub",
    "Endpoint",
)
# Real Amlen object types the stand-in deliberately does not implement: answered 501, never faked.
NOT_IMPLEMENTED = frozenset(
    {
        "LTPAProfile",
        "OAuthProfile",
        "ClientCertificate",
        "QueuePolicy",
        "LDAP",
        "Queue",
        "HighAvailability",
        "ClusterMembership",
    }
)
# Objects of the default configuration that Amlen refuses to delete (403 CWLNA0372).
PROTECTED = {
    "SecurityProfile": "AdminDefaultSecProfile",
    "CertificateProfile": "AdminDefaultCertProf",
    "ConfigurationPolicy": "AdminDefaultConfigPolicy",
}
# Which property of which object type references objects of a given type (for "still being used").
REFERENCES: dict[str, list[tuple[str, str]]] = {
    "CertificateProfile": [("SecurityProfile", "CertificateProfile")],
    "CRLProfile": [("SecurityProfile", "CRLProfile")],
    "SecurityProfile": [("Endpoint", "SecurityProfile")],
    "MessageHub": [("Endpoint", "MessageHub")],
    "ConnectionPolicy": [("Endpoint", "ConnectionPolicies")],
    "TopicPolicy": [("Endpoint", "TopicPolicies")],
    "SubscriptionPolicy": [("Endpoint", "SubscriptionPolicies")],
}


ADMIN_SINGLETONS = ("AdminUserID", "AdminUserPassword", "AdminEndpoint")


class Configuration(CertificateObjects, AdminObjects):
    """All configuration state, guarded by one lock (Amlen also serialises configuration changes)."""

    def __init__(
        self,
        paths: DataPaths,
        endpoints: EndpointManager,
        *,
        admin_port: int,
        admin_password_set: bool,
        log: Log,
        image_certificates: Path,
    ) -> None:
        self.paths = paths
        self.endpoints = endpoints
        self.admin_port = admin_port
        self.admin_password_set = admin_password_set
        self._log = log
        self._lock = threading.RLock()
        self._state_file = paths.config / "standin-config.json"
        self.objects = self._load(image_certificates)
        self._load_admin()

    # ---- persistence ---------------------------------------------------------------------------------------

    def _load(self, image_certificates: Path) -> dict[str, dict[str, dict[str, Any]]]:
        """The saved configuration of this data volume, or Amlen's defaults on a first start."""
        if self._state_file.is_file():
            saved: dict[str, dict[str, dict[str, Any]]] = json.loads(self._state_file.read_text())
            for obj_type in NAMED_TYPES:
                saved.setdefault(obj_type, {})  # a volume saved by an older stand-in
            return saved
        objects = default_objects()
        for name in (ADMIN_CERTIFICATE, ADMIN_KEY):
            target = self.paths.keystore / name
            if not target.exists():
                shutil.copyfile(image_certificates / name, target)
                target.chmod(0o600)
        info = certs.certificate_info(self.paths.keystore / ADMIN_CERTIFICATE)
        if info is not None:
            admin_profile = objects["CertificateProfile"]["AdminDefaultCertProf"]
            admin_profile["ExpirationDate"] = certs.expiration_date(info)
        self._write(objects)
        return objects

    def _save(self) -> None:
        self._write(self.objects)

    def _write(self, objects: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Persist atomically, so a restart (REST or ``docker restart``) finds the same configuration."""
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(objects, indent=2))
        os.replace(temporary, self._state_file)

    # ---- endpoints -----------------------------------------------------------------------------------------

    def _endpoint_spec(self, name: str) -> EndpointSpec | None:
        """What the TLS front needs for an enabled endpoint; None for a disabled one."""
        props = self.objects["Endpoint"][name]
        if not props["Enabled"]:
            return None
        protocols = {item.lower() for item in _names(props["Protocol"])}
        tls: TlsSettings | None = None
        password = False
        profile_name = props.get("SecurityProfile") or ""
        if profile_name:
            profile = self.objects["SecurityProfile"][profile_name]
            password = profile["UsePasswordAuthentication"]
            if profile["TLSEnabled"]:
                tls = profile_tls(self.paths, self.objects, profile_name, profile["CertificateProfile"])
        return EndpointSpec(
            name=name,
            port=props["Port"],
            interface=props["Interface"],
            allows_mqtt=not protocols or bool(protocols & {"all", "mqtt"}),
            password_authentication=password,
            tls=tls,
            connection_policies=tuple(_names(props["ConnectionPolicies"])),
            topic_policies=tuple(_names(props.get("TopicPolicies"))),
            lookup=self.policy,
        )

    def policy(self, obj_type: str, name: str) -> dict[str, Any] | None:
        """A copy of a policy's properties, for the front's checks (None when it does not exist)."""
        with self._lock:
            props = self.objects.get(obj_type, {}).get(name)
            return dict(props) if props is not None else None

    def start_endpoints(self) -> None:
        """Start every enabled endpoint (when messaging starts)."""
        with self._lock:
            for name in self.objects["Endpoint"]:
                self.endpoints.apply(name, self._endpoint_spec(name))

    def _restart_endpoints(
        self, *, security_profile: str | None = None, certificate_profile: str | None = None
    ) -> None:
        """Amlen rebuilds the TLS context of enabled endpoints whose profiles changed; open connections stay."""
        for name, props in self.objects["Endpoint"].items():
            profile_name = props.get("SecurityProfile") or ""
            if not profile_name or not props["Enabled"]:
                continue
            profile = self.objects["SecurityProfile"][profile_name]
            if profile_name == security_profile or (
                certificate_profile is not None and profile["CertificateProfile"] == certificate_profile
            ):
                self.endpoints.apply(name, self._endpoint_spec(name), keep_connections=True)

    # ---- POST ----------------------------------------------------------------------------------------------

    def post(self, request: Any) -> None:
        """``POST /ima/v1/configuration``: apply each object type of the request in Amlen's order.

        Objects are applied one by one; a failure stops the request and leaves the ones before it applied.
        """
        if not isinstance(request, dict):
            raise AmlenError(400, 6001, "'{' expected near '['", 1)
        for obj_type in request:
            if obj_type not in POST_ORDER:
                raise AmlenError(400, 140, obj_type)
        with self._lock:
            for obj_type in POST_ORDER:
                if obj_type not in request:
                    continue
                if obj_type in NOT_IMPLEMENTED:
                    raise AmlenError(501, 102)
                body = request[obj_type]
                if obj_type == "TrustedCertificate":
                    self._post_trusted_certificates(body)
                    continue
                if obj_type == "AdminEndpoint":
                    self._post_admin_endpoint(body)
                    continue
                if obj_type in ADMIN_SINGLETONS:
                    self._post_admin_user(obj_type, body)
                    continue
                if obj_type == "ConfigurationPolicy":
                    self._precheck_configuration_policy(body)
                if not isinstance(body, dict):
                    raise AmlenError(400, 127, obj_type, "", obj_type, json_type_name(body))
                for name, props in body.items():
                    self._post_named(obj_type, name, props)

    def _post_named(self, obj_type: str, name: str, body: Any) -> None:
        check_object_name(obj_type, name)
        if obj_type == "SecurityProfile" and not name.isalnum():
            raise AmlenError(400, 6206, "NameOfSecurityProfile")
        current = self.objects[obj_type].get(name)
        if obj_type == "CertificateProfile":
            self._post_certificate_profile(name, body, current)
            return
        options_schema = CRL_PROFILE_OPTIONS if obj_type == "CRLProfile" else None
        props, options = validate_properties(
            obj_type, name, body, SCHEMAS[obj_type], current, options=options_schema
        )
        if obj_type == "CRLProfile":
            apply_crl_profile(
                self.paths.certificates, self.paths.userfiles, name, props, current, options.get("Overwrite")
            )
        elif obj_type == "SecurityProfile":
            check_security_profile(self.objects, props)
        elif obj_type == "Endpoint":
            props["InterfaceName"] = props["Interface"]
            check_endpoint(
                self.objects,
                self.paths,
                name,
                props,
                admin_port=self.admin_port,
                admin_password_set=self.admin_password_set or bool(self.admin.get("PasswordPosted")),
            )
        elif obj_type == "ConfigurationPolicy":
            check_min_one(obj_type, props, SCHEMAS[obj_type])
            self._check_configuration_policy(props)
        elif obj_type in ("ConnectionPolicy", "TopicPolicy", "SubscriptionPolicy"):
            check_min_one(obj_type, props, SCHEMAS[obj_type])
            ttl = props.get("MaxMessageTimeToLive", "unlimited")
            if ttl != "unlimited" and not (ttl.isdigit() and 1 <= int(ttl) <= 2147483647):
                raise bad_value("MaxMessageTimeToLive", ttl)
        self.objects[obj_type][name] = props
        self._save()
        self.admin_touched(obj_type, name)
        self._log(
            "CWLNA6011", "INFO", "Admin", f"The configuration is updated: Object={obj_type} Name={name}."
        )
        if obj_type == "Endpoint":
            self.endpoints.apply(name, self._endpoint_spec(name))
        elif obj_type == "SecurityProfile" and current is not None:
            self._restart_endpoints(security_profile=name)

    # ---- GET -----------------------------------------------------------------------------------------------

    def get(self, obj_type: str, name: str | None = None, file_name: str | None = None) -> dict[str, Any]:
        """``GET /ima/v1/configuration/<Type>[/<Name>]`` bodies."""
        with self._lock:
            if obj_type in ("TrustedCertificate", "ClientCertificate"):
                return self._get_certificates(obj_type, name, file_name)
            if obj_type in ADMIN_SINGLETONS and name is None:
                return self.get_admin_singleton(obj_type)
            if obj_type not in NAMED_TYPES:
                if obj_type in NOT_IMPLEMENTED:
                    raise AmlenError(501, 102)
                raise AmlenError(400, 140, obj_type)
            objects = self.objects[obj_type]
            if name is None:
                return {"Version": "v1", obj_type: json.loads(json.dumps(objects))}
            if name not in objects:
                raise not_found(obj_type, name)
            return {"Version": "v1", obj_type: {name: dict(objects[name])}}

    # ---- DELETE --------------------------------------------------------------------------------------------

    def _users_of(self, obj_type: str, name: str) -> list[tuple[str, str]]:
        users = []
        for user_type, prop in REFERENCES.get(obj_type, []):
            for user_name, props in self.objects[user_type].items():
                if name in _names(props.get(prop)):
                    users.append((user_type, user_name))
        return users

    def delete(self, obj_type: str, name: str = "", file_name: str | None = None) -> None:
        """``DELETE /ima/v1/configuration/<Type>/<Name>`` (and ``TrustedCertificate/<profile>/<file>``)."""
        with self._lock:
            if obj_type == "TrustedCertificate":
                if file_name is None or file_name not in certs.trusted_certificates(self.paths, name):
                    raise not_found("TrustedCertificate", file_name or name)
                (self.paths.truststore / name / file_name).unlink()
                certs.rebuild_truststore(self.paths, name)
                self._log(
                    "CWLNA6011",
                    "INFO",
                    "Admin",
                    f"The trusted certificate is deleted: SecurityProfile={name} File={file_name}.",
                )
                return
            if obj_type in ADMIN_SINGLETONS:
                raise AmlenError(403, 372, obj_type)
            if obj_type not in NAMED_TYPES:
                if obj_type in NOT_IMPLEMENTED:
                    raise AmlenError(501, 102)
                raise AmlenError(400, 140, obj_type)
            if PROTECTED.get(obj_type) == name:
                raise AmlenError(403, 372, name)
            if name not in self.objects[obj_type]:
                raise AmlenError(404, 113)
            if self.admin_endpoint_uses(obj_type, name):
                raise in_use(obj_type, name, "AdminEndpoint", "AdminEndpoint")
            users = self._users_of(obj_type, name)
            if users:
                raise in_use(obj_type, name, *users[0])
            props = self.objects[obj_type].pop(name)
            self._save()
            if obj_type == "Endpoint":
                self.endpoints.apply(name, None)
            elif obj_type == "SecurityProfile":
                certs.remove_truststore(self.paths, name)
            elif obj_type == "CertificateProfile":
                for stored in {props["Certificate"], props["Key"]}:
                    (self.paths.keystore / stored).unlink(missing_ok=True)
            elif obj_type == "CRLProfile":
                remove_crl_profile(self.paths.certificates, name)
            self._log(
                "CWLNA6011", "INFO", "Admin", f"The configuration is deleted: Object={obj_type} Name={name}."
            )

    # ---- monitor -------------------------------------------------------------------------------------------

    def monitor_endpoints(self, name_filter: str | None) -> dict[str, Any]:
        """``GET /ima/v1/monitor/Endpoint[?Name=...]`` (see ``monitor.py``)."""
        with self._lock:
            return endpoint_monitor(self.objects["Endpoint"], self.endpoints.running(), name_filter)

    def endpoint_names(self) -> set[str]:
        with self._lock:
            return set(self.objects["Endpoint"])
