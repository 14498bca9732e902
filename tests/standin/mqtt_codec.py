"""Just enough MQTT 3.1, 3.1.1 and 5 framing for the TLS front to read and rewrite a connection's packets.

A packet is a fixed header (type and flags in one byte, then the "remaining length" as a variable byte
integer of one to four bytes) followed by that many bytes. ``FrameReader`` cuts a byte stream into whole
packets, keeping partial ones until the rest arrives; the ``parse_*`` functions read the few fields the front
needs and keep everything else as raw bytes, so a rewritten packet carries the client's options unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

MQTT_V31, MQTT_V311, MQTT_V5 = 3, 4, 5
NOT_AUTHORIZED_V3 = 5  # CONNACK return code "not authorized" (3.1, 3.1.1)
NOT_AUTHORIZED_V5 = 0x87  # reason code "Not authorized" (5)
SUBACK_FAILURE_V3 = 0x80
TOPIC_ALIAS = 0x23  # MQTT 5 property ids
SESSION_EXPIRY = 0x11

_MAX_PACKET = 256 * 1024 * 1024  # the largest remaining length MQTT can encode


class MalformedPacket(Exception):
    """The byte stream is not MQTT (bad length encoding or a packet cut short inside its own length)."""


def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); MalformedPacket past four bytes or past the end."""
    value, shift = 0, 0
    for index in range(4):
        if pos + index >= len(data):
            raise MalformedPacket("variable byte integer cut short")
        byte = data[pos + index]
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + index + 1
    raise MalformedPacket("variable byte integer longer than four bytes")


def packet(first_byte: int, body: bytes) -> bytes:
    """A whole packet from its first byte and its body."""
    return bytes([first_byte]) + encode_varint(len(body)) + body


def packet_type(raw: bytes) -> int:
    return raw[0] >> 4


class FrameReader:
    """Cuts a byte stream into whole MQTT packets (partial packets wait for more bytes)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every packet now complete, in order."""
        self._buffer += data
        packets = []
        while len(self._buffer) >= 2:
            length, pos = 0, 1
            try:
                length, pos = _read_varint(bytes(self._buffer[: min(len(self._buffer), 5)]), 1)
            except MalformedPacket:
                if len(self._buffer) >= 5:
                    raise
                break  # the length itself is not complete yet
            if pos + length > len(self._buffer):
                break
            packets.append(bytes(self._buffer[: pos + length]))
            del self._buffer[: pos + length]
        return packets


def split(raw: bytes) -> tuple[int, bytes]:
    """(first byte, body) of a whole packet."""
    _, pos = _read_varint(raw, 1)
    return raw[0], raw[pos:]


class _Reader:
    """Sequential reads from a packet body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.body):
            raise MalformedPacket("field runs past the end of the packet")
        chunk = self.body[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        return self.binary().decode("utf-8", errors="replace")

    def properties(self) -> bytes:
        """MQTT 5 properties, raw (length prefix excluded)."""
        length, self.pos = _read_varint(self.body, self.pos)
        return self.take(length)

    def rest(self) -> bytes:
        return self.take(len(self.body) - self.pos)


@dataclass(frozen=True)
class Connect:
    version: int
    client_id: str
    username: str | None
    clean: bool = True  # 3.1.1 clean session, MQTT 5 clean start: begin without the stored session
    session_expiry: int = 0  # MQTT 5: seconds the session outlives the connection (3.1.1: 0 or "forever")

    @property
    def persistent(self) -> bool:
        """Whether the session (its subscriptions) outlives the connection."""
        return self.session_expiry > 0 if self.version >= MQTT_V5 else not self.clean


def parse_connect(raw: bytes) -> Connect:
    """Protocol level, client id, user name and session flags of a CONNECT."""
    _, body = split(raw)
    reader = _Reader(body)
    reader.text()  # "MQTT" or "MQIsdp"
    version, flags = reader.u8(), reader.u8()
    reader.u16()  # keep alive
    expiry = 0
    if version >= MQTT_V5:
        expiry = _integer_property(reader.properties(), SESSION_EXPIRY, 4) or 0
    client_id = reader.text()
    if flags & 0x04:  # will
        if version >= MQTT_V5:
            reader.properties()
        reader.text()
        reader.binary()
    username = reader.text() if flags & 0x80 else None
    return Connect(version, client_id, username, bool(flags & 0x02), expiry)


def _integer_property(properties: bytes, wanted: int, size: int) -> int | None:
    """The value of the two- or four-byte integer property ``wanted`` (None when absent)."""
    pos = 0
    while pos < len(properties):
        ident, pos = _read_varint(properties, pos)
        if ident == wanted:
            return int.from_bytes(properties[pos : pos + size], "big")
        pos = _skip_property(ident, properties, pos)
    return None


@dataclass
class Publish:
    first_byte: int
    topic: str
    packet_id: int | None
    properties: bytes  # MQTT 5 only, raw
    payload: bytes
    topic_alias: int | None = None

    @property
    def qos(self) -> int:
        return (self.first_byte >> 1) & 0x03

    def encode(self, version: int) -> bytes:
        topic = self.topic.encode()
        body = len(topic).to_bytes(2, "big") + topic
        if self.packet_id is not None:
            body += self.packet_id.to_bytes(2, "big")
        if version >= MQTT_V5:
            body += encode_varint(len(self.properties)) + self.properties
        return packet(self.first_byte, body + self.payload)


def _skip_property(ident: int, properties: bytes, pos: int) -> int:
    if ident in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):  # byte
        return pos + 1
    if ident in (0x13, 0x21, 0x22, 0x23):  # two-byte integer
        return pos + 2
    if ident in (0x02, 0x11, 0x18, 0x27):  # four-byte integer
        return pos + 4
    if ident == 0x0B:  # variable byte integer
        return _read_varint(properties, pos)[1]
    if ident == 0x26:  # string pair
        pos += 2 + int.from_bytes(properties[pos : pos + 2], "big")
    return pos + 2 + int.from_bytes(properties[pos : pos + 2], "big")  # string or binary


def parse_publish(raw: bytes, version: int) -> Publish:
    first, body = split(raw)
    reader = _Reader(body)
    topic = reader.text()
    packet_id = reader.u16() if (first >> 1) & 0x03 else None
    properties = reader.properties() if version >= MQTT_V5 else b""
    alias = _integer_property(properties, TOPIC_ALIAS, 2) if properties else None
    return Publish(first, topic, packet_id, properties, reader.rest(), alias)


@dataclass
class Subscribe:
    packet_id: int
    properties: bytes
    entries: list[tuple[str, bytes]] = field(default_factory=list)  # (filter, raw entry including options)

    def encode(self, version: int, entries: list[tuple[str, bytes]]) -> bytes:
        body = self.packet_id.to_bytes(2, "big")
        if version >= MQTT_V5:
            body += encode_varint(len(self.properties)) + self.properties
        return packet(0x82, body + b"".join(raw for _, raw in entries))


def parse_subscribe(raw: bytes, version: int) -> Subscribe:
    _, body = split(raw)
    reader = _Reader(body)
    packet_id = reader.u16()
    properties = reader.properties() if version >= MQTT_V5 else b""
    subscribe = Subscribe(packet_id, properties)
    while reader.pos < len(body):
        start = reader.pos
        topic_filter = reader.text()
        reader.u8()  # options
        subscribe.entries.append((topic_filter, body[start : reader.pos]))
    return subscribe


def parse_unsubscribe(raw: bytes, version: int) -> list[str]:
    """The topic filters of an UNSUBSCRIBE."""
    _, body = split(raw)
    reader = _Reader(body)
    reader.u16()  # packet id
    if version >= MQTT_V5:
        reader.properties()
    filters = []
    while reader.pos < len(body):
        filters.append(reader.text())
    return filters


def parse_suback(raw: bytes, version: int) -> tuple[int, bytes, list[int]]:
    """(packet id, raw MQTT 5 properties, reason codes)."""
    _, body = split(raw)
    reader = _Reader(body)
    packet_id = reader.u16()
    properties = reader.properties() if version >= MQTT_V5 else b""
    return packet_id, properties, list(reader.rest())


def suback(packet_id: int, codes: list[int], version: int, properties: bytes = b"") -> bytes:
    body = packet_id.to_bytes(2, "big")
    if version >= MQTT_V5:
        body += encode_varint(len(properties)) + properties
    return packet(0x90, body + bytes(codes))


def ack(kind: int, packet_id: int, version: int, reason: int = 0) -> bytes:
    """PUBACK, PUBREC or PUBCOMP; with a reason code (and empty properties) only in MQTT 5 and only if set."""
    body = packet_id.to_bytes(2, "big")
    if version >= MQTT_V5 and reason:
        body += bytes([reason, 0])
    return packet(kind << 4, body)


def connack_refused(version: int) -> bytes:
    """CONNACK "not authorized": return code 5 (3.1, 3.1.1) or reason 0x87 with no properties (5)."""
    if version >= MQTT_V5:
        return packet(0x20, bytes([0, NOT_AUTHORIZED_V5, 0]))
    return packet(0x20, bytes([0, NOT_AUTHORIZED_V3]))


def connack_code(raw: bytes) -> int:
    _, body = split(raw)
    return body[1] if len(body) > 1 else 0


def disconnect(reason: int) -> bytes:
    """An MQTT 5 server DISCONNECT with a reason code and no properties."""
    return packet(0xE0, bytes([reason, 0]))


def packet_id_of(raw: bytes) -> int:
    _, body = split(raw)
    return int.from_bytes(body[:2], "big")
