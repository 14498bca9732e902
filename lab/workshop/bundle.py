"""A seat's bundle: the CA, its certificate and key, a README with that seat's exact commands, and a zip of it.

Everything is written only when its bytes change, and the zip is built with fixed timestamps, so running the
workshop again with the same room leaves every file alone (a participant's copy stays the current one).
"""

from __future__ import annotations

import io
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lab.errors import WorkshopError
from lab.files import atomic_write
from lab.settings import Settings
from lab.workshop.seats import SeatFiles

__all__ = ["Access", "access", "readme_text", "write_bundle"]

# zip cannot store times before 1980; a fixed one keeps the archive's bytes a function of its contents.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


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


def write_bundle(seat: SeatFiles, ca_pem: bytes, where: Access) -> bool:
    """Bring the seat's myCA.pem, README.md and zip up to date; True when any of them changed."""
    changed = _write_if_changed(seat.ca, ca_pem, mode=0o644)
    changed |= _write_if_changed(seat.readme, readme_text(seat, where).encode(), mode=0o644)
    return _write_if_changed(seat.zip, _zip_bytes(seat), mode=0o600) or changed


def _zip_bytes(seat: SeatFiles) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        chain = ((seat.chain, 0o644),) if seat.chain.is_file() else ()
        for path, mode in ((seat.ca, 0o644), (seat.cert, 0o644), *chain, (seat.key, 0o600), (seat.readme, 0o644)):
            info = zipfile.ZipInfo(f"{seat.name}/{path.name}", date_time=_ZIP_TIME)
            info.external_attr = (0o100000 | mode) << 16  # a regular file with its Unix mode: the key stays 0600
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _read(path))
    return buffer.getvalue()


def _write_if_changed(path: Path, data: bytes, *, mode: int) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WorkshopError(f"cannot read {path}: {exc.strerror}", "check the workshop directory's permissions") \
            from exc
    try:
        atomic_write(path, data, mode=mode)
    except OSError as exc:
        raise WorkshopError(f"cannot write {path}: {exc.strerror or exc}", "check free space and permissions") \
            from exc
    return True


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
