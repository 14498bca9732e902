"""A seat's bundle: a connection kit for the workshop endpoint (lab.kit.writer, the writer `invoke kit` uses).

The CA, the seat's certificate and key, the PKCS#12 pair and its password, connection.env/json, the programs of
the languages the instructor chose (`invoke workshop --kits java,node`), a README with that seat's exact
commands, and a zip of it all. Everything is written only when its bytes change, and the zip is built with fixed
timestamps, so running the workshop again with the same room leaves every file alone (a participant's copy
stays the current one).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.errors import KitError, WorkshopError
from lab.kit.connection import Connection, KitFiles
from lab.kit.programs import available_languages, language_notes
from lab.kit.readme import kit_section
from lab.kit.writer import KitSpec, read_manifest, write_kit
from lab.settings import Settings
from lab.workshop.seats import SeatFiles

__all__ = ["Access", "access", "readme_text", "seat_kit_spec", "write_bundle"]


@dataclass(frozen=True)
class Access:
    """How participants reach the workshop endpoint: by `host` (a name in the server certificate) at `address`."""

    host: str
    address: str
    port: int
    exposed: bool

    @property
    def hosts_line(self) -> str:
        """The line each participant adds to their hosts file."""
        return f"{self.address} {self.host}"


def access(settings: Settings, exposed: str | None) -> Access:
    """Where the workshop endpoint is: LAB_WORKSHOP_HOSTNAME (else the lab's host name) at the exposed address."""
    host = settings.workshop_hostname or settings.hostname
    return Access(host, exposed or settings.host_ip, settings.workshop_port, exposed is not None)


def write_bundle(seat: SeatFiles, ca_pem: bytes, where: Access, *, languages: Sequence[str] | None = None) -> bool:
    """Bring the seat's kit up to date (myCA.pem, the PKCS#12 pair, connection.env/json, README.md, programs of
    `languages` and the zip); True when any file changed. `languages` None keeps what the bundle holds.

    The bundle is the lab's, not the participant's: its files are rewritten (`force`) whatever was edited in it.
    """
    if languages is None:
        kept = read_manifest(seat.dir).get("languages")
        languages = [lang for lang in kept if lang in available_languages()] if isinstance(kept, list) else []
    try:
        return bool(write_kit(seat_kit_spec(seat, ca_pem, where, languages), force=True).changed)
    except KitError as exc:
        raise WorkshopError(f"seat {seat.name}: {exc.message}", exc.hint) from exc


def seat_kit_spec(seat: SeatFiles, ca_pem: bytes, where: Access, languages: Sequence[str]) -> KitSpec:
    """The seat's bundle as a kit for the workshop endpoint: its own PEM names, client ID prefix and topic tree."""
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        chain = tuple(x509.load_pem_x509_certificates(_read(seat.presented)))
        # The lab made this key a moment ago (or on an earlier run): the full RSA check would only cost time.
        key = serialization.load_pem_private_key(_read(seat.key), password=None, unsafe_skip_rsa_key_validation=True)
    except ValueError as exc:
        raise WorkshopError(f"seat {seat.name}: its certificate or key cannot be read",
                            f"`invoke workshop --reissue {seat.name}` makes new ones") from exc
    files = KitFiles(ca=seat.ca.name, cert=seat.presented.name, key=seat.key.name)
    connection = Connection(address=where.address, server_name=where.host, tls_port=None, mtls_port=where.port,
                            client_id=f"{seat.cn}-kit", topic=f"workshop/{seat.cn}/kit", files=files)
    present = (seat.cert.name, *((seat.chain.name,) if seat.chain.is_file() else ()), seat.key.name)
    section = kit_section(connection, languages, legacy_p12=False,
                          adding="the instructor's `invoke workshop --kits LANGS`")
    readme = readme_text(seat, where) + "\n" + section + language_notes(languages)
    return KitSpec(name=seat.cn, dir=seat.dir, zip=seat.zip, zip_root=seat.name, connection=connection, ca=ca,
                   chain=chain, key=key, pems={seat.ca.name: (ca_pem, 0o644)}, readme=readme,
                   languages=tuple(languages), present=present)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WorkshopError(f"cannot read {path}: {exc.strerror}", "run the same `invoke workshop` again") from exc


def readme_text(seat: SeatFiles, where: Access) -> str:
    """The seat's README: who it is, its topics, the hosts line, and copy-paste commands for three clients."""
    me, host, port = seat.cn, where.host, where.port
    # In the two-tier PKI the seat presents its chain (certificate, then the intermediate): the broker trusts
    # only the root, and a chain must reach it.
    shown = seat.presented.name
    files = f"--cafile myCA.pem --cert {shown} --key {me}.key"
    own, room = f"workshop/{me}", "workshop/all"
    sub = f"mosquitto_sub -h {host} -p {port} {files} -i {me}-sub -t {shlex.quote(own + '/#')} " \
          f"-t {shlex.quote(room + '/#')} -v"
    pub = f"mosquitto_pub -h {host} -p {port} {files} -i {me}-pub"
    here = seat.name  # the zip unpacks into <name>/, so these paths work from where it was unzipped
    lab_files = f"-F {here}/myCA.pem -C {here}/{shown} -K {here}/{me}.key"  # the guide's -F, -C and -K
    reach = (
        f"The broker is on the instructor's machine at {where.address}, port {port}."
        if where.exposed
        else f"The broker listens on the instructor's machine only ({where.address}) until the instructor runs "
             "`invoke workshop --expose ADDRESS`; then this README names that address."
    )
    return f"""# Workshop seat {seat.name}

You are **{me}**: the common name (CN) in your certificate is your identity on the workshop broker, the way
the TLS guide says a client certificate's CN "is roughly equivalent to a username".

- broker: `{host}` port **{port}**, MQTT over TLS, your client certificate required
- your topics: `{own}/...` (yours alone) and `{room}/...` (the whole room)
- MQTT client IDs: must start with `{me}`, e.g. `{me}-sub` and `{me}-pub` at the same time
- files: `myCA.pem` (the lab CA: trust only it), `{me}.crt` and `{me}.key` (yours; keep the key to yourself){
    f", and `{shown}` (your certificate, then the intermediate CA that signed it: what your client presents)"
    if shown != f"{me}.crt" else ""}

## 1. Name the broker

{reach} Add this line to your hosts file (`/etc/hosts`; on Windows
`C:\\Windows\\System32\\drivers\\etc\\hosts`), so that `{host}` reaches it and matches its certificate:

    {where.hosts_line}

## 2. mosquitto

Run these in this directory. Subscribe to your topics and the room's:

    {sub}

In another terminal, publish to yourself and to the room:

    {pub} -t {own}/hello -m 'hello from {me}'
    {pub} -t {room}/hello -m 'hello room'

## 3. The guide's paho client (amlen-lab's `invoke sub` / `invoke pub`)

In a clone of amlen-lab, with this bundle unzipped there (so that `{here}/` holds these files):

    invoke sub -H {host} -P {port} -s {lab_files} -c {me}-sub -t {shlex.quote(own + '/#')}
    invoke pub -H {host} -P {port} -s {lab_files} -c {me}-pub -t {own}/hello -m hello

Or with paho-mqtt 2.x in your own Python (the guide's `client_sub_opts.py` cannot send a client certificate;
this is the same client with it):

```python
import paho.mqtt.client as mqtt

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="{me}-py")
client.tls_set(ca_certs="myCA.pem", certfile="{shown}", keyfile="{me}.key")
client.on_message = lambda c, u, msg: print(msg.topic, msg.payload.decode())
client.connect("{host}", {port})
client.subscribe("{own}/#")
client.subscribe("{room}/#")
client.publish("{room}/hello", "hello from {me}")
client.loop_forever()
```

## What the broker refuses, and how that looks

- another seat's topics, e.g. `workshop/seat.other/#`: MQTT 3.1.1 answers the SUBSCRIBE with SUBACK `0x80`
  and closes the connection on a QoS 1 PUBLISH there; MQTT 5 answers both with reason `0x87` (Not authorized).
- a client ID that does not start with `{me}`: CONNACK "not authorized".
- no certificate, or one the lab CA did not sign: the TLS handshake fails.
- a revoked certificate (`invoke workshop --revoke {seat.name}` on the instructor's side): the TLS handshake fails.
"""
