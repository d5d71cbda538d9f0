"""Enrolment and renewal over MQTT against the local Kubernetes API and a real Mosquitto."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from cryptography import x509

from flotta.operator.policy import ApprovalPolicy
from flotta.pki.keys import (
    build_csr,
    csr_to_pem,
    generate_key,
    private_key_to_pem,
    public_key_sha256,
)
from flotta.schemas.codec import decode, encode
from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.topics import DeviceTopic, EnrolTopic, device_topic, enrol_topic
from flotta.schemas.wire.enrolment import (
    CertificateAnswer,
    EnrolmentAnswer,
    EnrolmentRequest,
    RenewalRequest,
)
from flotta.schemas.wire.hardware import Hardware
from tests.fixtures.brokers import ClientCredentials
from tests.fixtures.kubetypes import http_response, obj
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.conftest import ENROLMENT_NAMESPACE, NAMESPACE, Stack, wait_until

pytestmark = pytest.mark.slow

MERGE = "application/merge-patch+json"
HARDWARE = msgspec.convert(
    {"hostname": "Edge-01", "cpu": {"architecture": "aarch64", "modelName": "Cortex-A72"}},
    Hardware,
)


class Bootstrap:
    """A device that has only the shared bootstrap certificate."""

    def __init__(self, stack: Stack, device_id: str, credentials: ClientCredentials) -> None:
        self.device_id = device_id
        self.key = generate_key()
        self.probe = MqttProbe(
            stack.broker.host, stack.broker.enrolment_port, credentials, device_id
        )
        self.probe.connect()
        assert self.probe.subscribe(enrol_topic(device_id, EnrolTopic.ANSWER)) == [1]

    def request(self, *, target_set: str = "", key: Any = None) -> None:
        csr = csr_to_pem(build_csr(key or self.key, self.device_id)).decode()
        request = EnrolmentRequest(
            target_namespace=NAMESPACE, target_set=target_set, hardware=HARDWARE, csr=csr
        )
        topic = enrol_topic(self.device_id, EnrolTopic.REQUEST)
        assert self.probe.publish(topic, encode(request)) in (0, 16)

    def answer(self, status: str, *, timeout: float = 10.0) -> EnrolmentAnswer:
        topic = enrol_topic(self.device_id, EnrolTopic.ANSWER)
        while True:
            message = self.probe.wait_for(topic, timeout=timeout)
            if message.payload:
                answer = decode(EnrolmentAnswer, message.payload)
                if answer.status == status:
                    return answer


def get(stack: Stack, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return obj(stack.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))


def device_credentials(
    stack: Stack, boot: Bootstrap, answer: EnrolmentAnswer, tmp: Any
) -> ClientCredentials:
    cert = x509.load_pem_x509_certificate(answer.certificate.encode())
    cert_path = tmp / f"{boot.device_id}.crt"
    key_path = tmp / f"{boot.device_id}.key"
    cert_path.write_text(answer.certificate)
    key_path.write_bytes(private_key_to_pem(boot.key))
    key_path.chmod(0o600)
    return ClientCredentials(
        boot.device_id, cert_path, key_path, stack.broker.ca_path, cert.serial_number
    )


def test_auto_approved_enrolment_then_connect_and_renew(stack: Stack, tmp_path: Any) -> None:
    stack.start_operator(
        settings=stack.config.settings.__class__(
            enrolment_namespace=ENROLMENT_NAMESPACE,
            policy=ApprovalPolicy.parse([f"{NAMESPACE}/north"]),
            status_interval=0.2,
        )
    )
    boot = Bootstrap(stack, "edge-01", stack.broker.bootstrap("batch-1"))
    boot.request(target_set="north")
    answer = boot.answer("issued")
    assert answer.namespace == NAMESPACE
    cert = x509.load_pem_x509_certificate(answer.certificate.encode())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "edge-01"
    assert cert.public_key() == boot.key.public_key()

    device = get(stack, NAMESPACE, "edgedevices", "edge-01")
    assert device["metadata"]["labels"]["flotta/member-of"] == "north"
    assert device["metadata"]["labels"]["device.hostname"] == "edge-01"
    assert device["metadata"]["labels"]["device.cpu-architecture"] == "aarch64"
    wait_until(
        lambda: (get(stack, NAMESPACE, "edgedevices", "edge-01").get("status") or {}).get(
            "certificate"
        )
    )
    request = wait_until(
        lambda: (
            get(stack, ENROLMENT_NAMESPACE, "edgedevicesignedrequests", "edge-01")
            .get("status", {})
            .get("phase")
            == "Issued"
        )
    )
    assert request

    # Repeating the request with the same key is idempotent.
    boot.request(target_set="north")
    repeated = boot.answer("issued")
    assert repeated.namespace == NAMESPACE
    assert repeated.certificate == answer.certificate  # still valid: the same certificate
    # Another key claiming the same id is refused. It has to use the same client id (the ACL
    # ties enrolment topics to it), so the first session ends before (no takeover ping-pong).
    boot.probe.close()
    intruder = Bootstrap(stack, "edge-01", stack.broker.bootstrap("batch-2"))
    intruder.request(key=generate_key())
    assert "another key" in intruder.answer("refused").message

    intruder.probe.close()
    # The device connects with its certificate; its retained answer is cleared.
    creds = device_credentials(stack, boot, answer, tmp_path)
    device_probe = MqttProbe(stack.broker.host, stack.broker.port, creds, "edge-01")
    device_probe.connect()
    assert device_probe.subscribe(device_topic("edge-01", DeviceTopic.CERTIFICATE)) == [1]
    from datetime import UTC, datetime

    from flotta.schemas.wire.connection import ConnectionState

    birth = ConnectionState(state="online", time=datetime.now(UTC))
    device_probe.publish(
        device_topic("edge-01", DeviceTopic.CONNECTION), encode(birth), retain=True
    )
    device_probe.close()

    watcher = stack.broker.bootstrap("batch-3")

    def answer_cleared() -> bool:
        # The enrolment topics are reachable only with client id = device id.
        probe = MqttProbe(stack.broker.host, stack.broker.enrolment_port, watcher, "edge-01")
        probe.connect()
        try:
            probe.subscribe(enrol_topic("edge-01", EnrolTopic.ANSWER))
            return probe.next_message(timeout=0.5) is None
        finally:
            probe.close()

    wait_until(answer_cleared, timeout=10)
    device_probe = MqttProbe(stack.broker.host, stack.broker.port, creds, "edge-01")
    device_probe.connect()
    assert device_probe.subscribe(device_topic("edge-01", DeviceTopic.CERTIFICATE)) == [1]

    # Renewal over MQTT with the same key.
    renewal = RenewalRequest(
        request_id=uuid.uuid4().hex, csr=csr_to_pem(build_csr(boot.key, "edge-01")).decode()
    )
    assert device_probe.publish(device_topic("edge-01", DeviceTopic.CSR), encode(renewal)) in (
        0,
        16,
    )
    message = device_probe.wait_for(device_topic("edge-01", DeviceTopic.CERTIFICATE), timeout=10)
    renewed = decode(CertificateAnswer, message.payload)
    assert renewed.status == "issued"
    assert renewed.request_id == renewal.request_id
    new_cert = x509.load_pem_x509_certificate(renewed.certificate.encode())
    assert new_cert.serial_number != cert.serial_number
    assert new_cert.public_key() == boot.key.public_key()
    # A renewal with another key is refused.
    other = RenewalRequest(
        request_id="r2", csr=csr_to_pem(build_csr(generate_key(), "edge-01")).decode()
    )
    assert device_probe.publish(device_topic("edge-01", DeviceTopic.CSR), encode(other)) in (0, 16)
    refused = decode(
        CertificateAnswer,
        device_probe.wait_for(device_topic("edge-01", DeviceTopic.CERTIFICATE), timeout=10).payload,
    )
    assert refused.status == "refused"
    assert "reuse the device key" in refused.message
    device_probe.close()


def test_manual_approval_and_decline(stack: Stack) -> None:
    stack.start_operator()
    boot = Bootstrap(stack, "edge-02", stack.broker.bootstrap("batch-1"))
    boot.request()
    assert boot.answer("pending").status == "pending"
    request = wait_until(
        lambda: get(stack, ENROLMENT_NAMESPACE, "edgedevicesignedrequests", "edge-02")
    )
    assert request["spec"]["approved"] is False
    assert request["spec"]["features"]["hardware"]["hostname"] == "Edge-01"
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ENROLMENT_NAMESPACE,
        "edgedevicesignedrequests",
        "edge-02",
        {"spec": {"approved": True}},
        _content_type=MERGE,
    )
    assert boot.answer("issued").namespace == NAMESPACE
    assert get(stack, NAMESPACE, "edgedevices", "edge-02")

    boot.probe.close()
    other = Bootstrap(stack, "edge-03", stack.broker.bootstrap("batch-1"))
    other.request()
    other.answer("pending")
    wait_until(lambda: get(stack, ENROLMENT_NAMESPACE, "edgedevicesignedrequests", "edge-03"))
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ENROLMENT_NAMESPACE,
        "edgedevicesignedrequests",
        "edge-03",
        {"metadata": {"annotations": {"flotta.io/declined": "unknown hardware"}}},
        _content_type=MERGE,
    )
    assert other.answer("declined").message == "unknown hardware"
    wait_until(
        lambda: (
            get(stack, ENROLMENT_NAMESPACE, "edgedevicesignedrequests", "edge-03")
            .get("status", {})
            .get("phase")
            == "Declined"
        )
    )
    events = [e.reason for e in stack.core.list_namespaced_event(ENROLMENT_NAMESPACE).items]
    assert "EnrolmentRequested" in events


def test_standby_takes_over_the_lease(stack: Stack) -> None:
    first = stack.start_operator(identity="operator-a")
    import threading

    from tests.operator.conftest import OperatorThread

    standby = OperatorThread(
        stack.config.__class__(**{**stack.config.__dict__, "identity": "operator-b"})
    )
    starter = threading.Thread(target=standby.start, kwargs={"timeout": 60})
    starter.start()
    lease = wait_until(lambda: stack.core.api_client and _lease(stack))
    assert lease["spec"]["holderIdentity"] == "operator-a"
    leader = wait_until(lambda: standby.operator.leader)
    time_to_try = leader.duration / 3 + 0.5
    import time

    time.sleep(time_to_try)  # the standby tried at least once more and is still waiting
    assert not leader.leading.is_set()
    first.stop()
    starter.join(60)
    stack.operators.append(standby)
    assert leader.leading.is_set()
    assert _lease(stack)["spec"]["holderIdentity"] == "operator-b"


def _lease(stack: Stack) -> dict[str, Any]:
    import json

    from kubernetes import client

    response = client.CoordinationV1Api(stack.api).read_namespaced_lease(
        "flotta-operator", ENROLMENT_NAMESPACE, _preload_content=False
    )
    lease: dict[str, Any] = json.loads(http_response(response).data)
    return lease


def test_a_competing_request_never_changes_the_answer_of_the_first_requester(
    stack: Stack,
) -> None:
    """Whoever else holds the bootstrap certificate and knows a pending device's id can send a
    request under that id with another key; the retained answer the real device reads stays
    its own (pending, for its key), and the competitor's refusal names the competitor's key."""
    stack.start_operator()
    honest = Bootstrap(stack, "edge-07", stack.broker.bootstrap("batch-1"))
    honest.request()
    first = honest.answer("pending")
    assert first.public_key_sha256 == public_key_sha256(honest.key.public_key())
    wait_until(lambda: get(stack, ENROLMENT_NAMESPACE, "edgedevicesignedrequests", "edge-07"))
    honest.probe.close()

    intruder = Bootstrap(stack, "edge-07", stack.broker.bootstrap("batch-1"))
    intruder.request()  # the same id, another key
    refused = intruder.answer("refused")
    assert refused.public_key_sha256 == public_key_sha256(intruder.key.public_key())
    garbage = enrol_topic("edge-07", EnrolTopic.REQUEST)
    assert intruder.probe.publish(garbage, b'{"schemaVersion":1,"csr":"x"}') in (0, 16)
    intruder.probe.close()

    # The real device comes back: the retained answer is still the one for its own key.
    again = Bootstrap(stack, "edge-07", stack.broker.bootstrap("batch-1"))
    retained = again.answer("pending")
    assert retained.public_key_sha256 == first.public_key_sha256
    assert again.probe.next_message(timeout=1.0) is None
    again.probe.close()
