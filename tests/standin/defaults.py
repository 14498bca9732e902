"""The configuration of a fresh Amlen server, from its ``server_main/config/server_dynamic.json``.

A new server has the admin endpoint's profiles and policy, and the Demo objects: DemoHub, its connection,
topic and subscription policies, and the two demo endpoints (DemoEndpoint on 16102, DemoMqttEndpoint on 1883),
both disabled. So a fresh container listens for MQTT on no port at all.
"""

from __future__ import annotations

from typing import Any

from schema import NAMED_TYPES, SCHEMAS, validate_properties

# The admin endpoint's certificate files in the keystore (copied from the image on a first start).
ADMIN_CERTIFICATE = "AdminDefaultCert.pem"
ADMIN_KEY = "AdminDefaultKey.pem"


def default_objects() -> dict[str, dict[str, dict[str, Any]]]:
    """Amlen's ``server_dynamic.json``: admin defaults and Demo objects (both demo endpoints disabled)."""
    raw: dict[str, dict[str, dict[str, Any]]] = {
        "MessageHub": {"DemoHub": {"Description": "Demo Message Hub."}},
        "Endpoint": {
            "DemoEndpoint": {
                "Port": 16102,
                "Enabled": False,
                "Protocol": "All",
                "Interface": "All",
                "ConnectionPolicies": "DemoConnectionPolicy",
                "TopicPolicies": "DemoTopicPolicy",
                "SubscriptionPolicies": "DemoSubscriptionPolicy",
                "MaxMessageSize": "4096KB",
                "MessageHub": "DemoHub",
                "EnableAbout": True,
                "Description": "Unsecured endpoint for demonstration use only. By default, both "
                "JMS and MQTT protocols are accepted.",
            },
            "DemoMqttEndpoint": {
                "Port": 1883,
                "Enabled": False,
                "Protocol": "MQTT",
                "Interface": "All",
                "ConnectionPolicies": "DemoConnectionPolicy",
                "TopicPolicies": "DemoTopicPolicy",
                "MaxMessageSize": "4096KB",
                "MessageHub": "DemoHub",
                "EnableAbout": True,
                "Description": "Unsecured endpoint for demonstration use with MQTT protocol only. "
                "By default, it uses port 1883.",
            },
        },
        "CertificateProfile": {"AdminDefaultCertProf": {"Certificate": ADMIN_CERTIFICATE, "Key": ADMIN_KEY}},
        "SecurityProfile": {
            "AdminDefaultSecProfile": {
                "MinimumProtocolMethod": "TLSv1.2",
                "UseClientCertificate": False,
                "Ciphers": "Fast",
                "CertificateProfile": "AdminDefaultCertProf",
                "UseClientCipher": False,
                "UsePasswordAuthentication": False,
                "TLSEnabled": False,
            }
        },
        "ConnectionPolicy": {
            "DemoConnectionPolicy": {"Description": "Demo connection policy", "ClientID": "*"}
        },
        "TopicPolicy": {
            "DemoTopicPolicy": {
                "Description": "Demo topic policy",
                "Topic": "*",
                "ClientID": "*",
                "ActionList": "Publish,Subscribe",
                "MaxMessages": 5000,
                "MaxMessagesBehavior": "RejectNewMessages",
                "MaxMessageTimeToLive": "unlimited",
                "DisconnectedClientNotification": False,
            }
        },
        "SubscriptionPolicy": {
            "DemoSubscriptionPolicy": {
                "Description": "Demo policy for shared durable subscription",
                "Subscription": "*",
                "Protocol": "JMS,MQTT",
                "ActionList": "Receive,Control",
                "MaxMessages": 5000,
                "MaxMessagesBehavior": "RejectNewMessages",
            }
        },
        "ConfigurationPolicy": {
            "AdminDefaultConfigPolicy": {
                "Description": "Default configuration policy for AdminEndpoint",
                "ClientAddress": "*",
                "ActionList": "Configure,View,Monitor,Manage",
            }
        },
    }
    objects: dict[str, dict[str, dict[str, Any]]] = {}
    for obj_type in NAMED_TYPES:
        objects[obj_type] = {}
        for name, body in raw.get(obj_type, {}).items():
            props, _ = validate_properties(obj_type, name, body, SCHEMAS[obj_type], None)
            if obj_type == "ConfigurationPolicy":
                # Amlen's REST tests read the default policy back with only the properties it ships with.
                props = {key: value for key, value in props.items() if key in body}
            if obj_type == "Endpoint":
                props["InterfaceName"] = props["Interface"]
            objects[obj_type][name] = props
    return objects
