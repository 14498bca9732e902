"""Amlen's CWLNA return codes, their English texts and the HTTP statuses they travel with.

Texts are copied from Amlen's ``server_utils/include/ismrc.h`` and ``server_admin/xml/ism_admin_tms.xml``;
where the reference's appendix recorded a real server's answer, that answer is what is reproduced here (for
example an unknown property is 400 CWLNA0138, not 404 CWLNA0111 as the source suggests).
"""

from __future__ import annotations

from typing import Any

# rc -> message template; {0}, {1}... are Amlen's ICU-style replacements.
MESSAGES: dict[int, str] = {
    100: "System error",
    102: "The function is not implemented",
    111: "The property name is not valid: Property: {0}.",
    112: 'The property value is not valid: Property: {0} Value: "{1}".',
    113: "The requested item is not found.",
    115: "An argument is not valid: Name: {0}.",
    122: "The Unicode value is not valid.",
    127: "The property type is not valid. Object: {0} Name: {1} Property: {2} Type: {3}",
    130: 'The monitoring data is not available because the server status is not "Running".',
    133: "The name of the configuration object is too long. Object: {0} Property: {1} Value: {2}.",
    134: "The value specified for the required property is invalid or null. Property: {0} Value: {1}.",
    136: "The item or object cannot be found. Type: {0} Name: {1}",
    137: "The REST API call: {0} is not valid.",
    138: "The property name is invalid. Object: {0} Name: {1} Property: {2}",
    139: "The object: {0} must have one of the properties {1} specified",
    140: "The object {0} is not valid.",
    144: (
        "The value that is specified for the property on the configuration object is too long. "
        "Object: {0} Property: {1} Value: {2}."
    ),
    155: "The port is in use.",
    167: "Server not available.",
    180: "The operation is not authorized.",
    186: "The certificate profile must be set if TLSEnabled is true.",
    334: "No messaging policy is configured.",
    371: "The number of client addresses exceeds the maximum number allowed: {0}.",
    372: "Delete is not allowed for {0} object.",
    374: "The number of items exceeded the limit. Item: {0} Count: {1} Limit: {2}",
    375: (
        "User authentication is enabled in the admin endpoint. You must configure an external LDAP server, "
        "or set AdminUserID and AdminUserPassword."
    ),
    376: "The Object: {0}, Name: {1} is still being used by Object: {2}, Name: {3}",
    379: (
        "If you specify a subscription policy, you must also specify at least one topic policy. "
        "The topic policy must grant subscribe authority to the topic that is associated with the "
        "subscription name that is specified in the subscription policy. These subscription policies "
        "and topic policies must be associated with the same endpoint."
    ),
    431: "Invalid MessageHub {0} was specified.",
    433: "The endpoint must contain a valid connection policy.",
    451: "The specified certificate is in use.",
    452: "The specified key file is in use.",
    456: (
        "UseClientCertificate is enabled in the SecurityProfile. "
        "A Trusted Certificate or a Client Certificate must be associated with the SecurityProfile."
    ),
    6001: "Failed to parse administrative request {0}: RC={1}.",
    6011: "The requested configuration change has completed successfully.",
    6180: "The certificate failed the verification.",
    6182: "The certificate must be in PEM format.",
    6183: "The certificate is not a CA certificate.",
    6184: "Cannot find the certificate file {0}. Make sure it has been uploaded.",
    6185: "Cannot find the key file {0}. Make sure it has been uploaded.",
    6186: "The certificate already exists. Set Overwrite to true to replace the existing certificate.",
    6189: "The certificate and key file do not match.",
    6191: 'The key file specified has a password. Need to input a "KeyFilePassword".',
    6193: "The key file might be in an unexpected format, or the key password might be incorrect or missing.",
    6206: 'The property "{0}" must only contain alphanumeric characters.',
    6207: 'The "{0}" cannot be set to "{1}" because the "LTPAProfile or AllowNullPassword" is set.',
}


def code_of(rc: int) -> str:
    """Amlen's message id for a return code: ``CWLNA`` + four digits (``ism_admin_getMsgId``)."""
    return f"CWLNA{rc % 10000:04d}"


def format_message(rc: int, *replacements: object) -> str:
    """The English text of ``rc`` with its ``{n}`` placeholders filled in, as Amlen's REST errors carry it."""
    text = MESSAGES[rc]
    for index, value in enumerate(replacements):
        text = text.replace("{" + str(index) + "}", str(value))
    return text


def success_body() -> dict[str, Any]:
    """The body of every successful POST, PUT and DELETE."""
    return {"Version": "v1", "Code": code_of(6011), "Message": format_message(6011)}


class AmlenError(Exception):
    """An error answer of the admin API: HTTP status, CWLNA code and the message with its replacements."""

    def __init__(self, status: int, rc: int, *replacements: object) -> None:
        self.status = status
        self.rc = rc
        self.message = format_message(rc, *replacements)
        super().__init__(f"{status} {code_of(rc)} {self.message}")

    @property
    def code(self) -> str:
        """The CWLNA message id, e.g. ``CWLNA0136``."""
        return code_of(self.rc)

    def body(self) -> dict[str, Any]:
        """The JSON error body: ``{"Version":"v1","Code":...,"Message":...}``."""
        return {"Version": "v1", "Code": self.code, "Message": self.message}


# Shorthands for the answers the stand-in gives most often; the status codes are the recorded ones.
def bad_value(prop: str, value: object) -> AmlenError:
    """400 CWLNA0112: a value outside the schema's range or options."""
    return AmlenError(400, 112, prop, value)


def not_found(obj_type: str, name: str) -> AmlenError:
    """404 CWLNA0136: a referenced or requested object that does not exist."""
    return AmlenError(404, 136, obj_type, name)


def in_use(obj_type: str, name: str, user_type: str, user_name: str) -> AmlenError:
    """400 CWLNA0376: deleting an object that another object still references (recorded as 400, not 403)."""
    return AmlenError(400, 376, obj_type, name, user_type, user_name)
