"""Sequences of hostile messages on the topics a device reads (desired state, receipts,
certificate answers) through the agent's message path: each is refused and counted, the last
good desired state stays, and the next good one is taken."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotta.agent.daemon import Agent
from flotta.mqtt import Message
from flotta.schemas.codec import decode_device_payload, encode, with_version
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.desired import DesiredState
from tests.agent.conftest import AgentConfigFactory

DEVICE = "edge-1"
HUGE = "9" * 100_000


def message(kind: DeviceTopic, payload: bytes) -> Message:
    return Message(
        topic=device_topic(DEVICE, kind),
        payload=payload,
        qos=1,
        retain=kind is DeviceTopic.DESIRED,
        mid=1,
        duplicate=False,
        properties=None,
        connection=1,
        _acker=lambda _m: None,
    )


def desired(generation: str) -> bytes:
    return encode(with_version(DesiredState(device_id=DEVICE, namespace=f"ns-{generation}")))


@st.composite
def hostile(draw: st.DrawFn) -> tuple[DeviceTopic, bytes]:
    kind = draw(
        st.sampled_from([DeviceTopic.DESIRED, DeviceTopic.RECEIPTS, DeviceTopic.CERTIFICATE])
    )
    documents: dict[DeviceTopic, dict[str, Any]] = {
        DeviceTopic.DESIRED: json.loads(desired("hostile")),
        DeviceTopic.RECEIPTS: {
            "schemaVersion": 1,
            "kind": "events",
            "stream": "s",
            "sequences": [1],
        },
        DeviceTopic.CERTIFICATE: {"schemaVersion": 1, "requestId": "r", "status": "issued"},
    }
    document = documents[kind]
    change = draw(st.integers(0, 6))
    if change == 0:
        return kind, (json.dumps(document)[:-1] + f',"x":{HUGE}}}').encode()
    if change == 1:
        return kind, ("[" * 5000 + "]" * 5000).encode()
    if change == 2:
        return kind, draw(st.binary(max_size=64))
    if change == 3:
        document["deviceId" if kind is DeviceTopic.DESIRED else "stream"] = draw(
            st.sampled_from(["edge-2", "", 7, None, "x" * 300])
        )
    elif change == 4:
        document = {key.lower(): value for key, value in document.items()}
    elif change == 5:
        field = {
            DeviceTopic.DESIRED: "workloads",
            DeviceTopic.RECEIPTS: "sequences",
            DeviceTopic.CERTIFICATE: "status",
        }[kind]
        document[field] = draw(st.sampled_from([[2**64], [-1], "x", [{"name": 1}], {}]))
    else:
        document["schemaVersion"] = draw(st.sampled_from([True, 2, "1", None]))
    return kind, json.dumps(document).encode()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=st.lists(hostile(), min_size=1, max_size=6), generation=st.uuids())
def test_hostile_messages_are_refused_and_the_next_good_state_is_taken(
    agent_config_without_podman: AgentConfigFactory,
    sequence: list[tuple[DeviceTopic, bytes]],
    generation: Any,
) -> None:
    agent = Agent(agent_config_without_podman())
    good = desired(f"before-{generation.hex}")
    assert agent.inbox.accept_desired(good)
    kept = agent.state.desired
    assert kept is not None
    for kind, payload in sequence:
        agent.inbox.handle(message(kind, payload))
        assert agent.state.desired == kept  # nothing refused replaced the last good state
    after = desired(f"after-{generation.hex}")
    agent.inbox.handle(message(DeviceTopic.DESIRED, after))
    assert agent.state.desired is not None
    assert agent.state.desired.namespace == f"ns-after-{generation.hex}"
    assert agent.state.bad_payloads + agent.state.bad_receipts == sum(
        refused_by_the_contract(kind, payload) for kind, payload in sequence
    )


def refused_by_the_contract(kind: DeviceTopic, payload: bytes) -> bool:
    """What the agent must count as bad: by the reference decoder, a desired state (not a clear)
    or a receipt it refuses, or a desired state for another device."""
    if kind is DeviceTopic.CERTIFICATE or (kind is DeviceTopic.DESIRED and not payload):
        return False
    try:
        decoded = decode_device_payload(kind, payload)
    except PayloadError:
        return True
    return isinstance(decoded, DesiredState) and decoded.device_id != DEVICE
