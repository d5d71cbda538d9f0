"""Sequences of hostile messages (enrolment requests from a bootstrap holder, renewal requests
and connection messages from an enrolled device) through the operator's real MQTT intake:
each is refused or ignored, the operator stays up, and the next honest device still enrols."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotta.operator.policy import ApprovalPolicy
from flotta.pki.keys import build_csr, csr_to_pem, generate_key
from flotta.schemas.topics import DeviceTopic, EnrolTopic, device_topic, enrol_topic
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.conftest import ENROLMENT_NAMESPACE, NAMESPACE, OperatorThread, Stack
from tests.operator.test_enrolment_integration import Bootstrap

pytestmark = pytest.mark.slow

HUGE = "9" * 100_000
CSR = csr_to_pem(build_csr(generate_key(), "intruder")).decode()


@pytest.fixture
def hostile_stack(stack: Stack) -> Iterator[tuple[Stack, OperatorThread, MqttProbe, MqttProbe]]:
    running = stack.start_operator(
        settings=stack.config.settings.__class__(
            enrolment_namespace=ENROLMENT_NAMESPACE,
            policy=ApprovalPolicy.parse([f"{NAMESPACE}/north"]),
            status_interval=0.2,
        )
    )
    intruder = MqttProbe(
        stack.broker.host,
        stack.broker.enrolment_port,
        stack.broker.bootstrap("batch-x"),
        "intruder",
    )
    intruder.connect()
    enrolled = MqttProbe(
        stack.broker.host,
        stack.broker.port,
        stack.broker.device("dev-hostile", namespace=NAMESPACE),
        "dev-hostile",
    )
    enrolled.connect()
    try:
        yield stack, running, intruder, enrolled
    finally:
        intruder.close()
        enrolled.close()


def mutate(document: dict[str, Any], change: int, draw: st.DrawFn) -> str:
    if change == 0:
        return json.dumps(document)[:-1] + f', "x": {HUGE}}}'
    if change == 1:
        document["hardware"] = {"cpu": {"count": int(HUGE[:40])}, "memory": {"x": [[[[[]]]]]}}
    if change == 2:
        document["csr"] = draw(
            st.sampled_from(
                [
                    "",
                    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                    CSR[: len(CSR) // 2],
                    CSR.replace("CERTIFICATE REQUEST", "PRIVATE KEY"),
                    CSR * 3,
                ]
            )
        )
    if change == 3:
        document = {k.lower(): v for k, v in document.items()}
    if change == 4:
        document["time"] = draw(st.sampled_from(["2026-01-01T00:00:00", 10**20, "0001-01-01"]))
    if change == 5:
        return "[" * 5000 + "]" * 5000
    if change == 6:
        document["requestId"] = draw(st.sampled_from([1, None, "x" * 100, ""]))
    return json.dumps(document)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    target = draw(st.sampled_from(["enrol", "csr", "connection"]))
    change = draw(st.integers(0, 6))
    if target == "enrol":
        document: dict[str, Any] = {"schemaVersion": 1, "targetNamespace": NAMESPACE, "csr": CSR}
    elif target == "csr":
        document = {"schemaVersion": 1, "requestId": "r1", "csr": CSR}
    else:
        document = {"schemaVersion": 1, "state": "online", "time": "2026-01-01T00:00:00Z"}
    return target, mutate(document, change, draw).encode()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(hostile(), min_size=1, max_size=5))
def test_hostile_sequences_never_stop_the_operator(
    hostile_stack: tuple[Stack, OperatorThread, MqttProbe, MqttProbe],
    sequence: list[tuple[str, bytes]],
) -> None:
    stack, running, intruder, enrolled = hostile_stack
    topics = {
        "enrol": (intruder, enrol_topic("intruder", EnrolTopic.REQUEST)),
        "csr": (enrolled, device_topic("dev-hostile", DeviceTopic.CSR)),
        "connection": (enrolled, device_topic("dev-hostile", DeviceTopic.CONNECTION)),
    }
    for target, payload in sequence:
        probe, topic = topics[target]
        assert probe.publish(topic, payload) in (0, 16)
    honest = Bootstrap(stack, f"edge-{uuid.uuid4().hex[:8]}", stack.broker.bootstrap("batch-1"))
    try:
        honest.request(target_set="north")
        assert honest.answer("issued", timeout=15).certificate
    finally:
        honest.probe.close()
    assert running.error is None
    assert all(not task.done() for task in running.operator._tasks)
