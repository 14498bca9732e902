"""Cross-object checks of security profiles and endpoints, as Amlen's ``validate_SecurityProfile.c`` and
``validate_Endpoint.c`` make them (a part of ``store.Configuration``'s POST)."""

from __future__ import annotations

from typing import Any

import certs
from certs import DataPaths
from messages import AmlenError, bad_value, not_found
from policies import names as _names

Objects = dict[str, dict[str, dict[str, Any]]]


def check_security_profile(objects: Objects, props: dict[str, Any]) -> None:
    """A security profile's references and combinations (``validate_SecurityProfile.c``)."""
    certificate_profile = props["CertificateProfile"]
    if certificate_profile and certificate_profile not in objects["CertificateProfile"]:
        raise not_found("CertificateProfile", certificate_profile)
    if props["TLSEnabled"] and not certificate_profile:
        raise AmlenError(400, 186)
    for reference in ("LTPAProfile", "OAuthProfile"):
        if props[reference]:  # the stand-in has none of these objects
            raise not_found(reference, props[reference])
    crl_profile = props["CRLProfile"]
    if crl_profile and crl_profile not in objects["CRLProfile"]:
        raise not_found("CRLProfile", crl_profile)
    if crl_profile and not props["UseClientCertificate"]:
        # validate_SecurityProfile.c: ISMRC_PropertyRequired on the merged object.
        raise AmlenError(400, 134, "UseClientCertificate", "false")
    if props["AllowNullPassword"] and not props["UsePasswordAuthentication"]:
        raise AmlenError(400, 6207, "UsePasswordAuthentication", "false")

def check_endpoint(
    objects: Objects, paths: DataPaths, name: str, props: dict[str, Any], *, admin_port: int, admin_password_set: bool
) -> None:
    """An endpoint's references, policies, profile and port (``validate_Endpoint.c``)."""
    protocol = props["Protocol"]
    if protocol.lower() != "all" and any(
        item.lower() not in ("jms", "mqtt") for item in _names(protocol)
    ):
        raise bad_value("Protocol", protocol)
    if props["MessageHub"] not in objects["MessageHub"]:
        raise AmlenError(400, 431, props["MessageHub"])
    connection_policies = _names(props["ConnectionPolicies"])
    if not connection_policies:
        raise AmlenError(400, 433)
    for policy in connection_policies:
        if policy not in objects["ConnectionPolicy"]:
            raise not_found("ConnectionPolicy", policy)
    messaging = {
        "TopicPolicy": _names(props.get("TopicPolicies")),
        "SubscriptionPolicy": _names(props.get("SubscriptionPolicies")),
        "QueuePolicy": _names(props.get("QueuePolicies")),
    }
    for policy_type, policies in messaging.items():
        for policy in policies:
            if policy not in objects.get(policy_type, {}):
                raise not_found(policy_type, policy)
    if not any(messaging.values()):
        raise AmlenError(400, 334)
    if messaging["SubscriptionPolicy"] and not any(
        "Subscribe" in _names(objects["TopicPolicy"][policy]["ActionList"])
        for policy in messaging["TopicPolicy"]
    ):
        raise AmlenError(400, 379)
    profile_name = props["SecurityProfile"]
    if profile_name:
        profile = objects["SecurityProfile"].get(profile_name)
        if profile is None:
            raise not_found("SecurityProfile", profile_name)
        if profile["UseClientCertificate"] and not certs.trusted_certificates(paths, profile_name):
            raise AmlenError(400, 456)
        if profile["UsePasswordAuthentication"] and not admin_password_set:
            raise AmlenError(400, 375)
    port = props["Port"]
    if port == admin_port or any(
        other != name and other_props["Port"] == port
        for other, other_props in objects["Endpoint"].items()
    ):
        raise AmlenError(400, 155)
