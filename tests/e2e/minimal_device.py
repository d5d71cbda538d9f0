"""A device written from docs/contract.md and schemas/json/ alone: paho-mqtt, cryptography and
jsonschema, no Flotta code (a test checks the imports). It validates every payload it sends
and receives against the published schemas, so what the control plane accepts from it is
what an integrator's device would send."""

from __future__ import annotations

import hashlib
import json
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "json"
WEEK = 7 * 24 * 3600


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


def checked(name: str, document: dict[str, Any]) -> bytes:
    """The payload as bytes, after checking it against its schema."""
    errors = [error.message for error in schema(name).iter_errors(document)]
    if errors:
        raise AssertionError(f"{name}: the device would send an invalid payload: {errors}")
    return json.dumps(document).encode()


def parsed(name: str, payload: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(payload)
    errors = [error.message for error in schema(name).iter_errors(document)]
    if errors:
        raise AssertionError(f"{name}: received a payload outside its schema: {errors}")
    return document


@dataclass
class Credentials:
    ca: Path
    cert: Path
    key: Path


@dataclass
class MinimalDevice:
    device_id: str
    host: str
    fleet_port: int
    enrolment_port: int
    ca: Path
    workdir: Path
    namespace: str = "default"
    inbox: queue.Queue[tuple[str, bytes]] = field(default_factory=lambda: queue.Queue(1000))
    applied_version: str = ""
    desired: dict[str, Any] | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    _key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def topic(self, kind: str) -> str:
        return f"flotta/devices/{self.device_id}/{kind}"

    def key_sha256(self) -> str:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    # ---- step 1: enrolment ---------------------------------------------------------------

    def enrol(self, bootstrap: Credentials, timeout: float) -> Credentials:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)]))
            .sign(self._key, hashes.SHA256())
        )
        request = checked(
            "enrol-request",
            {
                "schemaVersion": 1,
                "targetNamespace": self.namespace,
                "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
            },
        )
        answer_topic = f"flotta/enrol/{self.device_id}/answer"

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe(answer_topic, options=SubscribeOptions(qos=1))
            client.publish(f"flotta/enrol/{self.device_id}/request", request, qos=1)

        client = self._client(bootstrap, on_connect)
        client.connect(self.host, self.enrolment_port, clean_start=True, properties=_expiry(0))
        client.loop_start()
        try:
            answer = self._await_answer(timeout)
        finally:
            client.disconnect()
            client.loop_stop()
        cert, key = self.workdir / "device.crt", self.workdir / "device.key"
        cert.write_text(answer["certificate"])
        key.write_bytes(
            self._key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ca = self.workdir / "ca.crt"
        ca.write_text(answer["caCertificate"])
        return Credentials(ca, cert, key)

    def _await_answer(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, payload = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if not payload:
                continue  # a cleared answer
            answer = parsed("enrol-answer", payload)
            if answer["status"] == "issued":
                certificate = x509.load_pem_x509_certificate(answer["certificate"].encode())
                if certificate.public_key() == self._key.public_key():
                    return answer
            elif answer.get("publicKeySha256") == self.key_sha256() and answer["status"] in (
                "declined",
                "refused",
            ):
                raise AssertionError(f"enrolment {answer['status']}: {answer.get('message')}")
        raise AssertionError(f"no certificate within {timeout:.0f} s")

    # ---- steps 2-8: the fleet session --------------------------------------------------------

    def connect(self, identity: Credentials) -> mqtt.Client:
        def on_connect(client: mqtt.Client, *_: Any) -> None:
            options = SubscribeOptions(
                qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            )
            client.subscribe(
                [(self.topic(kind), options) for kind in ("desired", "certificate", "receipts")]
            )
            client.publish(self.topic("connection"), self._connection("online", ""), 1, True)
            self.heartbeat(client)

        def on_message(client: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
            payload = bytes(message.payload)
            if message.topic == self.topic("desired"):
                self.apply(client, payload)
            else:
                self.inbox.put((message.topic, payload))

        client = self._client(identity, on_connect)
        client.on_message = on_message
        client.will_set(
            self.topic("connection"), self._connection("offline", "connection lost"), 1, True
        )
        client.connect(
            self.host, self.fleet_port, keepalive=60, clean_start=False, properties=_expiry(WEEK)
        )
        client.loop_start()
        threading.Thread(target=self._heartbeats, args=(client,), daemon=True).start()
        return client

    def _heartbeats(self, client: mqtt.Client) -> None:
        """Every ``configuration.heartbeat.periodSeconds`` of the desired state, 60 s before."""
        while True:
            desired = self.desired or {}
            period = desired.get("configuration", {}).get("heartbeat", {}).get("periodSeconds", 60)
            if self._stopped.wait(period):
                return
            self.heartbeat(client)

    def heartbeat(self, client: mqtt.Client) -> None:
        report = {"schemaVersion": 1, "time": now(), "appliedVersion": self.applied_version}
        client.publish(self.topic("status"), checked("status", report), qos=1)

    def apply(self, client: mqtt.Client, payload: bytes) -> None:
        if not payload:
            return  # a cleared desired state
        desired = parsed("desired", payload)
        if desired["version"] != self.applied_version:
            self.desired = desired
            self.applied_version = desired["version"]
            self.heartbeat(client)

    def send_event(self, client: mqtt.Client, stream: str, sequence: int) -> None:
        event = {
            "schemaVersion": 1,
            "id": f"{stream}-{sequence}",
            "time": now(),
            "reason": "MinimalDeviceStarted",
            "message": "written from the contract",
            "stream": stream,
            "sequence": sequence,
        }
        client.publish(self.topic("events"), checked("events", event), qos=1)

    def send_metrics(self, client: mqtt.Client, stream: str, sequence: int) -> None:
        batch = {
            "schemaVersion": 1,
            "stream": stream,
            "sequence": sequence,
            "samples": [
                {
                    "name": "minimal_device_up",
                    "labels": {"site": "test"},
                    "value": 1.0,
                    "timestampMs": int(time.time() * 1000),
                }
            ],
        }
        client.publish(self.topic("metrics"), checked("metrics", batch), qos=1)

    def stop(self, client: mqtt.Client) -> None:
        self._stopped.set()
        info = client.publish(
            self.topic("connection"), self._connection("offline", "stopped"), qos=1, retain=True
        )
        info.wait_for_publish(10)
        client.disconnect()
        client.loop_stop()

    # ---- plumbing -------------------------------------------------------------------------

    def _connection(self, state: str, reason: str) -> bytes:
        document = {
            "schemaVersion": 1,
            "state": state,
            "time": now(),
            "appliedVersion": self.applied_version,
            "agentVersion": "minimal-device/1",
            "reason": reason,
        }
        return checked("connection", document)

    def _client(self, credentials: Credentials, on_connect: Any) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv5,
        )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(credentials.ca))
        context.load_cert_chain(str(credentials.cert), str(credentials.key))
        client.tls_set_context(context)
        client.on_connect = on_connect
        client.on_message = lambda _c, _u, message: self.inbox.put(
            (message.topic, bytes(message.payload))
        )
        return client


def _expiry(seconds: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = seconds
    return properties


def wait_for(inbox: queue.Queue[tuple[str, bytes]], topic: str, timeout: float) -> bytes:
    """The next message on ``topic``; others are dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, payload = inbox.get(timeout=0.5)
        except queue.Empty:
            continue
        if got == topic:
            return payload
    raise AssertionError(f"nothing on {topic} within {timeout:.0f} s")
