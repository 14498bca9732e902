"""The MQTT half of the TLS front: reads both directions of an MQTT-over-TCP connection and applies policies.

mosquitto stays the pub/sub engine; this session only decides and rewrites, the way Amlen answers:

- CONNECT: the endpoint's connection policies (any one admits). Refused: CONNACK "not authorized" (3.1.1 return
  code 5, MQTT 5 reason 0x87), CWLNA6104 in the security log, the connection closed (``server_protocol/src/
  mqtt.c``, ``ism_mqtt_error``; ``server_admin/src/policies.c``).
- SUBSCRIBE: each filter needs a topic policy granting ``Subscribe`` on the filter string. Forbidden filters are
  taken out of the packet sent on, and their SUBACK codes put back in place (0x80 in 3.1.1, 0x87 in MQTT 5);
  the other filters of the same packet are granted as usual. CWLNA2202 is logged once per connection.
- PUBLISH: a topic policy granting ``Publish``. Forbidden (``ism_mqtt_replyPublish``): MQTT 5 QoS 1/2 get PUBACK/
  PUBREC 0x87 and stay connected; MQTT 5 QoS 0 and every 3.1.1 publish close the connection (MQTT 5 with a
  DISCONNECT 0x87 first); 3.1 drops the message silently (acknowledging QoS 1/2 as Amlen does). CWLNA2106 is
  logged once per connection. A forbidden message never reaches mosquitto, so no subscriber sees it.

The session also tells ``subscriptions.py`` what the engine holds: each granted filter (with the topic policy that
granted it) as mosquitto's SUBACK passes, UNSUBSCRIBEs, deliveries and the session's end.

The session runs in the connection's own thread (blocking sockets, see ``endpoints.py``).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mqtt_codec as mc
from broker import Log
from connections import ConnectionRecord, ConnectionRegistry
from policies import (
    PUBLISH,
    SUBSCRIBE,
    Identity,
    PolicyLookup,
    admits_connection,
    granting_policy,
    may,
    subscription_topic,
)
from subscriptions import SubscriptionRegistry

_CHUNK = 65536
NOT_AUTHORIZED = "Not authorized"


@dataclass(frozen=True)
class SessionContext:
    """What a session needs from its endpoint."""

    endpoint: str
    port: int
    connection_policies: tuple[str, ...]
    topic_policies: tuple[str, ...]
    lookup: PolicyLookup
    registry: ConnectionRegistry
    subscriptions: SubscriptionRegistry
    log: Log
    count_bytes: Callable[[int], None]
    count_message: Callable[[], None]
    count_bad: Callable[[], None]


class _Finished(Exception):
    """Ends the session; the reason goes into the closing log line."""

    def __init__(self, reason: str, rc: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.rc = reason, rc


def common_name(client: socket.socket) -> str | None:
    """The subject CN of the client's verified certificate (None without one)."""
    if not isinstance(client, ssl.SSLSocket):
        return None
    subject: Any = (client.getpeercert() or {}).get("subject", ())
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class MqttSession:
    """One client connection, relayed to mosquitto packet by packet."""

    def __init__(
        self,
        ctx: SessionContext,
        client: socket.socket,
        backend: socket.socket,
        record: ConnectionRecord,
        closing: threading.Event,
    ) -> None:
        self.ctx, self.client, self.backend, self.record, self.closing = ctx, client, backend, record, closing
        self.cn = common_name(client)
        self.identity: Identity | None = None
        self.version = mc.MQTT_V311
        self._from_client = mc.FrameReader()
        self._from_broker = mc.FrameReader()
        self._connect_sent = False
        self._logged: set[int] = set()
        self._aliases: dict[int, str] = {}  # client -> server topic aliases (MQTT 5)
        self._broker_aliases: set[int] = set()  # aliases mosquitto has been told about
        self._pending_subacks: dict[int, list[int | None]] = {}  # packet id -> denial code or None per filter
        self._pending_grants: dict[int, list[tuple[str, str]]] = {}  # packet id -> (filter, policy) sent on
        self._session_start: mc.Connect | None = None
        self._local_qos2: set[int] = set()  # 3.1 QoS 2 publishes the session acknowledged itself

    # ---- the loop ------------------------------------------------------------------------------------------

    def run(self, first: bytes) -> None:
        """Relay until either side closes or a policy ends the connection; log the close."""
        reason, rc = "The connection was closed by the client.", 0
        try:
            self._client_bytes(first)
            while not self.closing.is_set():
                readable: list[socket.socket]
                if isinstance(self.client, ssl.SSLSocket) and self.client.pending():
                    readable = [self.client]
                else:
                    readable, _, _ = select.select([self.client, self.backend], [], [])
                for source in readable:
                    data = source.recv(_CHUNK)
                    if not data:
                        if source is self.backend:
                            reason = "The connection was closed by the server."
                        raise _Finished(reason)
                    if source is self.client:
                        self._client_bytes(data)
                    else:
                        self._broker_bytes(data)
        except _Finished as finished:
            reason, rc = finished.reason, finished.rc
        except mc.MalformedPacket as exc:
            reason, rc = f"The MQTT data is not valid: {exc}.", 1
        except OSError:
            reason = "The connection was closed."
        finally:
            self.ctx.registry.closed(self.record)
            self.ctx.subscriptions.closed(self.record.ident)
            if self._connect_sent:
                self._log_close(reason, rc)

    def _to_client(self, raw: bytes) -> None:
        self.client.sendall(raw)
        self.record.write_bytes += len(raw)
        self.ctx.count_bytes(len(raw))

    def _client_bytes(self, data: bytes) -> None:
        self.record.read_bytes += len(data)
        self.ctx.count_bytes(len(data))
        for raw in self._from_client.feed(data):
            kind = mc.packet_type(raw)
            if kind == mc.CONNECT:
                self._connect(raw)
            elif self.identity is None:
                raise _Finished("The first packet is not CONNECT.", 1)
            elif kind == mc.PUBLISH:
                self._publish(raw)
            elif kind == mc.SUBSCRIBE:
                self._subscribe(raw)
            elif kind == mc.UNSUBSCRIBE:
                for topic_filter in mc.parse_unsubscribe(raw, self.version):
                    self.ctx.subscriptions.unsubscribed(self.identity.client_id, subscription_topic(topic_filter))
                self.backend.sendall(raw)
            elif kind == mc.PUBREL and mc.packet_id_of(raw) in self._local_qos2:
                self._local_qos2.discard(mc.packet_id_of(raw))
                self._to_client(mc.ack(mc.PUBCOMP, mc.packet_id_of(raw), self.version))
            else:
                self.backend.sendall(raw)

    def _broker_bytes(self, data: bytes) -> None:
        for raw in self._from_broker.feed(data):
            kind = mc.packet_type(raw)
            if kind == mc.CONNACK and self.identity is not None and mc.connack_code(raw) == 0:
                self.ctx.registry.mqtt_connected(self.record, self.identity.client_id, self.identity.user_id)
                connect = self._session_start
                assert connect is not None
                self.ctx.subscriptions.connected(self.record.ident, connect.client_id, clean=connect.clean,
                                                 durable=connect.persistent)
            elif kind == mc.SUBACK:
                self._record_grants(raw)
                raw = self._merge_suback(raw)
            elif kind == mc.PUBLISH:
                self.record.write_msg += 1
                self.ctx.count_message()
                topic = mc.parse_publish(raw, self.version).topic
                if topic:  # empty: an MQTT 5 topic alias mosquitto set up earlier; not counted
                    self.ctx.subscriptions.delivered(self.record.ident, topic)
            self._to_client(raw)

    # ---- CONNECT -------------------------------------------------------------------------------------------

    def _connect(self, raw: bytes) -> None:
        if self.identity is not None:
            raise _Finished("A second CONNECT was received.", 1)
        connect = mc.parse_connect(raw)
        self._session_start = connect
        self.version = connect.version
        self._connect_sent = True
        address = self.record.client_addr
        self.identity = Identity(connect.client_id, connect.username, self.cn, address)
        if admits_connection(self.ctx.lookup, self.ctx.connection_policies, self.identity) is None:
            self.ctx.count_bad()
            self.ctx.log(
                "CWLNA6104",
                "INFO",
                "Security",
                "Connection is not authorized. The connection identifiers are: "
                f"Endpoint={self.ctx.endpoint}, UserID={connect.username or 'NULL'}, "
                f"ClientID={connect.client_id}, ClientIPAddress={address}, "
                f"CertificateCommonName={self.cn or 'NULL'}, Protocol=mqtt.",
            )
            self._to_client(mc.connack_refused(self.version))
            raise _Finished(NOT_AUTHORIZED, 135)
        self.backend.sendall(raw)

    # ---- PUBLISH -------------------------------------------------------------------------------------------

    def _publish(self, raw: bytes) -> None:
        assert self.identity is not None
        self.record.read_msg += 1
        self.ctx.count_message()
        message = mc.parse_publish(raw, self.version)
        if message.topic_alias is not None:
            if message.topic:
                self._aliases[message.topic_alias] = message.topic
            else:
                message.topic = self._aliases.get(message.topic_alias, "")
        if may(self.ctx.lookup, self.ctx.topic_policies, PUBLISH, message.topic, self.identity):
            if message.topic_alias is not None and message.topic_alias not in self._broker_aliases:
                # mosquitto never saw the packet that defined this alias (it was refused): name the topic.
                raw = message.encode(self.version)
                self._broker_aliases.add(message.topic_alias)
            self.backend.sendall(raw)
            return
        self.record.lost_msg += 1
        self._log_once(
            2106,
            "The client request to publish a message to the server failed due to an authorization failure",
        )
        if self.version >= mc.MQTT_V5 and message.packet_id is not None:
            kind = mc.PUBACK if message.qos == 1 else mc.PUBREC
            self._to_client(mc.ack(kind, message.packet_id, self.version, mc.NOT_AUTHORIZED_V5))
        elif self.version >= mc.MQTT_V5:
            self._to_client(mc.disconnect(mc.NOT_AUTHORIZED_V5))
            raise _Finished(NOT_AUTHORIZED, 135)
        elif self.version == mc.MQTT_V311:
            raise _Finished(NOT_AUTHORIZED, 135)
        elif message.packet_id is not None:  # 3.1: dropped, but acknowledged
            if message.qos == 2:
                self._local_qos2.add(message.packet_id)
            self._to_client(mc.ack(mc.PUBACK if message.qos == 1 else mc.PUBREC, message.packet_id, self.version))

    # ---- SUBSCRIBE -----------------------------------------------------------------------------------------

    def _subscribe(self, raw: bytes) -> None:
        assert self.identity is not None
        request = mc.parse_subscribe(raw, self.version)
        denial = mc.NOT_AUTHORIZED_V5 if self.version >= mc.MQTT_V5 else mc.SUBACK_FAILURE_V3
        codes: list[int | None] = []
        allowed = []
        grants = []
        for topic_filter, entry in request.entries:
            topic = subscription_topic(topic_filter)
            policy = granting_policy(self.ctx.lookup, self.ctx.topic_policies, SUBSCRIBE, topic, self.identity)
            if policy is not None:
                codes.append(None)
                allowed.append((topic_filter, entry))
                grants.append((topic_filter, policy))
            else:
                codes.append(denial)
        if grants:
            self._pending_grants[request.packet_id] = grants
        if len(allowed) == len(codes):
            self.backend.sendall(raw)
            return
        self._log_once(2202, "Unable to create a consumer due to an authorization failure")
        if not allowed:
            self._to_client(mc.suback(request.packet_id, [c or 0 for c in codes], self.version))
            return
        self._pending_subacks[request.packet_id] = codes
        self.backend.sendall(request.encode(self.version, allowed))

    def _record_grants(self, raw: bytes) -> None:
        """mosquitto's SUBACK for the filters sent on: each one it granted is now a subscription of the engine."""
        packet_id, _, granted = mc.parse_suback(raw, self.version)
        assert self.identity is not None and self._session_start is not None
        for (topic_filter, policy), code in zip(self._pending_grants.pop(packet_id, []), granted, strict=False):
            if code >= 0x80:
                continue
            share = topic_filter.split("/")[1] if topic_filter != subscription_topic(topic_filter) else None
            properties = self.ctx.lookup("TopicPolicy", policy) or {}
            self.ctx.subscriptions.subscribed(
                self.record.ident, self.identity.client_id, subscription_topic(topic_filter), policy=policy,
                max_messages=int(properties.get("MaxMessages", 5000)), durable=self._session_start.persistent,
                share=share,
            )

    def _merge_suback(self, raw: bytes) -> bytes:
        packet_id, properties, granted = mc.parse_suback(raw, self.version)
        codes = self._pending_subacks.pop(packet_id, None)
        if codes is None:
            return raw
        remaining = iter(granted)
        merged = [code if code is not None else next(remaining, 0x80) for code in codes]
        return mc.suback(packet_id, merged, self.version, properties)

    # ---- logging -------------------------------------------------------------------------------------------

    def _log_once(self, code: int, text: str) -> None:
        """Amlen's ``previouslyLogged``: each warning once per connection."""
        if code in self._logged:
            return
        self._logged.add(code)
        identity = self.identity
        self.ctx.log(
            f"CWLNA{code:04d}",
            "WARN",
            "Connection",
            f"{text}: ConnectionID={self.record.ident} ClientID={identity.client_id if identity else ''} "
            f"Protocol=mqtt Endpoint={self.ctx.endpoint} UserID={(identity.user_id if identity else '') or ''}.",
        )

    def _log_close(self, reason: str, rc: int) -> None:
        record, identity = self.record, self.identity
        uptime = time.monotonic() - record.connected_at if record.connected_at else 0.0
        self.ctx.log(
            "CWLNA1111",
            "NOTICE",
            "Connection",
            f"Closing TCP connection: ConnectionID={record.ident} MonitorID={record.ident} "
            f"ClientID={identity.client_id if identity else ''} Protocol=mqtt Endpoint={self.ctx.endpoint} "
            f"From={record.client_addr}:{record.client_port} UserID={(identity.user_id if identity else '') or ''} "
            f"Uptime={int(uptime)} RC={rc} Reason={reason} ReadBytes={record.read_bytes} "
            f"ReadMsg={record.read_msg} WriteBytes={record.write_bytes} WriteMsg={record.write_msg} "
            f"LostMsg={record.lost_msg} WarnMsg=0.",
        )
