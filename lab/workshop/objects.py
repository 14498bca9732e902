"""The workshop's Amlen objects: a third endpoint where each seat's certificate CN is its identity.

What a real Amlen was seen to enforce (reference, "Observed later (2026-11-29)"):

- ConnectionPolicy `CommonNames: "seat.*"` admits only seat certificates (a lab-CA certificate with another CN
  gets CONNACK "not authorized"); `ClientID: "${CommonName}*"` makes each MQTT client ID start with the CN, so
  a seat can run `seat.07-sub` and `seat.07-pub` at once and the connection monitor (which shows client IDs,
  not CNs) tells seats apart.
- TopicPolicy `Topic: "workshop/${CommonName}/*"` gives each seat its own tree; a second one the room's
  `workshop/all/*`. Amlen's topic wildcard is `*` (clients subscribe with `#`).
- A CRLProfile on the security profile revokes single seats.

The objects are applied with `lab.amlen.configure.converge` (only what differs) and recorded in the ledger's `amlen`
list in creation order, so `invoke down` deletes them before the guide's objects, endpoint first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lab.amlen.admin import AmlenClient, AmlenObject
from lab.amlen.configure import ObjectAction, ObjectResult, converge
from lab.ledger import Ledger
from lab.settings import Settings
from lab.workshop.roster import CN_PREFIX

__all__ = [
    "CA_FILE",
    "CRL_FILE",
    "CRL_PROFILE",
    "ENDPOINT",
    "OWN_TOPICS",
    "ROOM_TOPICS",
    "SECURITY_PROFILE",
    "apply_workshop",
    "workshop_objects",
]

ENDPOINT = "WorkshopSeats"
SECURITY_PROFILE = "WorkshopSeatsSecProfile"  # SecurityProfile names: letters and digits only, at most 32
CRL_PROFILE = "WorkshopSeatsCRL"
CONNECTION_POLICY = "WorkshopSeatsConnection"
OWN_TOPICS = "WorkshopSeatsOwnTopics"
ROOM_TOPICS = "WorkshopSeatsRoomTopics"
# Upload names of their own: the ledger remembers what Amlen holds per file name, and the guide's profile
# already has a `myCA.pem` (after `certs --new-ca` both must be re-uploaded, each to its own profile).
CA_FILE = "workshop-myCA.pem"
CRL_FILE = "workshop-seats-crl.pem"
_SEATS = CN_PREFIX + "*"


def workshop_objects(settings: Settings, *, ca_pem: bytes, crl_pem: bytes) -> list[AmlenObject]:
    """The workshop's objects in the order Amlen accepts them (a profile's CRL and CA before its endpoint)."""
    return [
        # RevalidateConnection: Amlen re-checks open connections against a new CRL where it can.
        AmlenObject("CRLProfile", CRL_PROFILE,
                    {"CRLSource": CRL_FILE, "RevalidateConnection": True, "Overwrite": True},
                    uploads={CRL_FILE: crl_pem}),
        AmlenObject("SecurityProfile", SECURITY_PROFILE, {
            "TLSEnabled": True,
            "MinimumProtocolMethod": "TLSv1.2",
            "Ciphers": "Fast",
            "UseClientCertificate": True,
            "UsePasswordAuthentication": False,
            "UseClientCipher": False,
            "CertificateProfile": settings.certificate_profile,
            "CRLProfile": CRL_PROFILE,
        }),
        AmlenObject("TrustedCertificate", f"{SECURITY_PROFILE}/{CA_FILE}", {"Overwrite": True},
                    uploads={CA_FILE: ca_pem}),
        AmlenObject("ConnectionPolicy", CONNECTION_POLICY, {
            "Description": "amlen-lab workshop: seat certificates only, client IDs starting with the CN",
            "CommonNames": _SEATS,
            "ClientID": "${CommonName}*",
        }),
        AmlenObject("TopicPolicy", OWN_TOPICS, {
            "Description": "amlen-lab workshop: each seat's own topics",
            "Topic": "workshop/${CommonName}/*",
            "ActionList": "Publish,Subscribe",
            "CommonNames": _SEATS,
        }),
        AmlenObject("TopicPolicy", ROOM_TOPICS, {
            "Description": "amlen-lab workshop: the whole room's topics",
            "Topic": "workshop/all/*",
            "ActionList": "Publish,Subscribe",
            "CommonNames": _SEATS,
        }),
        AmlenObject("Endpoint", ENDPOINT, {
            "Enabled": True,
            "Port": settings.workshop_port,
            "Interface": "All",
            "Protocol": "MQTT",
            "MessageHub": settings.message_hub,
            "SecurityProfile": SECURITY_PROFILE,
            "ConnectionPolicies": CONNECTION_POLICY,
            "TopicPolicies": f"{OWN_TOPICS},{ROOM_TOPICS}",
            "MaxMessageSize": "1024KB",
            "Description": "amlen-lab: the workshop's seats (mutual TLS, the certificate CN is the identity)",
        }),
    ]


def apply_workshop(
    amlen: AmlenClient,
    ledger: Ledger,
    objects: Sequence[AmlenObject],
    *,
    run_id: str,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ObjectResult]:
    """Converge Amlen to `objects`, recording each one created in the ledger as soon as it exists.

    A replaced CRL takes effect when the endpoint's TLS context is rebuilt, which Amlen does when the
    security profile is posted (as for a replaced trusted CA), so the profile is posted again after it.
    """
    entry = ledger.entries.setdefault("amlen", {"url": amlen.base_url, "objects": []})

    def record(result: ObjectResult) -> None:
        if result.action is ObjectAction.CREATED:
            entry["objects"].append({"run": run_id, "type": result.object.type, "name": result.object.name})
        ledger.save()

    results = converge(amlen, objects, ledger.fingerprints, progress=progress, on_result=record)
    actions = {(r.object.type, r.object.name): r.action for r in results}
    profile = next(o for o in objects if o.type == "SecurityProfile")
    if (actions.get(("CRLProfile", CRL_PROFILE)) is ObjectAction.UPDATED
            and actions[(profile.type, profile.name)] is ObjectAction.UNCHANGED):
        amlen.apply(profile)
    return results
