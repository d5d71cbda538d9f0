"""The operator against the local Kubernetes API (official client) and a real Mosquitto:
desired state fan-out, label changes, deletion, invalid workloads, republish on mismatch."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from flotta.pki.keys import load_private_key
from flotta.pki.sealing import unseal
from flotta.schemas.codec import content_version, decode, encode
from flotta.schemas.crd.common import GROUP, VERSION
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.desired import DesiredState
from tests.fixtures.brokers import ClientCredentials
from tests.fixtures.kubetypes import obj
from tests.fixtures.mqtt_probe import MqttProbe, ProbeRefusedError
from tests.operator.builders import b64, pod_spec, workload_obj
from tests.operator.conftest import (
    NAMESPACE,
    Stack,
    add_device,
    add_device_set,
    patch_device_status,
    wait_until,
)

pytestmark = pytest.mark.slow

MERGE = "application/merge-patch+json"


def create_device(stack: Stack, name: str, labels: dict[str, str]) -> ClientCredentials:
    """An EdgeDevice whose certificate the fleet CA signed (as enrolment leaves it)."""
    credentials = stack.broker.device(name, namespace=NAMESPACE)
    add_device(stack, name, labels)
    patch_device_status(stack, name, {"certificate": {"serial": f"{credentials.serial:X}"}})
    return credentials


def device_probe(stack: Stack, credentials: ClientCredentials) -> MqttProbe:
    from tests.fixtures.mqtt_probe import MqttProbe as Probe

    probe = Probe(stack.broker.host, stack.broker.port, credentials, credentials.identity)
    probe.connect()
    assert probe.subscribe(device_topic(credentials.identity, DeviceTopic.DESIRED)) == [1]
    return probe


def next_desired(probe: MqttProbe, *, timeout: float = 10.0) -> DesiredState:
    message = probe.wait_for(device_topic(probe.client_id, DeviceTopic.DESIRED), timeout=timeout)
    return decode(DesiredState, message.payload)


def apply_workload(stack: Stack, obj: dict[str, Any]) -> None:
    stack.objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgeworkloads", obj)


def get(stack: Stack, plural: str, name: str) -> dict[str, Any]:
    return obj(stack.objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name))


def test_fanout_label_change_and_deletion(stack: Stack) -> None:
    creds = {
        name: create_device(stack, name, {"site": site})
        for name, site in (("d1", "north"), ("d2", "north"), ("d3", "south"))
    }
    stack.core.create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(metadata=client.V1ObjectMeta(name="db"), data={"password": b64("s3cret")}),
    )
    apply_workload(
        stack,
        workload_obj(
            "web",
            selector={"matchLabels": {"site": "north"}},
            pod=pod_spec(envFrom=[{"secretRef": {"name": "db"}}]),
            labels={"podman/app": "web", "team": "a"},
        ),
    )
    running = stack.start_operator()
    probes = {name: device_probe(stack, c) for name, c in creds.items()}

    # Retained desired state, read with each device's own certificate.
    states = {name: next_desired(probe) for name, probe in probes.items()}
    for name in ("d1", "d2"):
        state = states[name]
        assert [w.name for w in state.workloads] == ["web"]
        assert state.workloads[0].labels == {"app": "web"}
        assert state.version == content_version(state)
        key = load_private_key(creds[name].key.read_bytes())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        (secret,) = state.secrets
        assert json.loads(unseal(key, secret.data, device_id=name)) == {"password": b64("s3cret")}  # type: ignore[arg-type]
    assert states["d3"].workloads == []

    # Labels and statuses the operator keeps.
    wait_until(
        lambda: get(stack, "edgedevices", "d1")["metadata"]["labels"].get("workload/web") == "true"
    )
    wait_until(
        lambda: (
            get(stack, "edgedevices", "d1").get("status", {}).get("desiredVersion")
            == states["d1"].version
        )
    )
    assert "flotta.io/device-cleanup" in get(stack, "edgedevices", "d1")["metadata"]["finalizers"]
    wait_until(
        lambda: (get(stack, "edgeworkloads", "web").get("status") or {}).get("targetedDevices") == 2
    )

    # A label change republishes exactly the device that changed.
    publishes = running.metric("flotta_operator_publishes_total")
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d3",
        {"metadata": {"labels": {"site": "north"}}},
        _content_type=MERGE,
    )
    moved = next_desired(probes["d3"])
    assert [w.name for w in moved.workloads] == ["web"]
    wait_until(lambda: running.metric("flotta_operator_publishes_total") >= publishes + 1)
    assert probes["d1"].next_message(timeout=1.5) is None
    assert probes["d2"].next_message(timeout=0.1) is None
    assert running.metric("flotta_operator_publishes_total") == publishes + 1

    # A Secret change republishes the devices whose workloads read it.
    stack.core.patch_namespaced_secret("db", NAMESPACE, {"data": {"password": b64("n3w")}})
    for name in ("d1", "d2", "d3"):
        state = next_desired(probes[name])
        key = load_private_key(creds[name].key.read_bytes())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert json.loads(unseal(key, state.secrets[0].data, device_id=name)) == {
            "password": b64("n3w")
        }  # type: ignore[arg-type]

    # Deleting the workload removes it from every targeted device.
    stack.objects.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgeworkloads", "web")
    for name in ("d1", "d2", "d3"):
        assert next_desired(probes[name]).workloads == []

    # Deleting a device: deregister, retained topics cleared, certificate refused.
    stack.objects.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "edgedevices", "d1")
    goodbye = next_desired(probes["d1"])
    assert goodbye.deregister
    cleared = probes["d1"].wait_for(device_topic("d1", DeviceTopic.DESIRED), timeout=10)
    assert cleared.payload == b""
    wait_until(lambda: not _exists(stack, "edgedevices", "d1"))
    # The open connection is closed too, with its session: nothing more reaches it.
    wait_until(lambda: not probes["d1"].connected, timeout=10)
    assert running.metric("flotta_operator_evictions_total") >= 1
    assert probes["d2"].connected
    again = MqttProbe(stack.broker.host, stack.broker.port, creds["d1"], "d1-again")
    with pytest.raises(ProbeRefusedError):
        again.connect()
    assert running.metric("flotta_operator_certificates_total", {"action": "revoked"}) == 1


def _exists(stack: Stack, plural: str, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        get(stack, plural, name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def test_invalid_workload_gets_a_condition_and_an_event_and_is_not_published(stack: Stack) -> None:
    creds = create_device(stack, "d1", {"site": "north"})
    apply_workload(stack, workload_obj("good", selector={}))
    # The API's schema admits it; no device can run it (fieldRef needs a kubelet).
    field_ref = {"fieldRef": {"fieldPath": "metadata.name"}}
    apply_workload(
        stack,
        workload_obj("bad", selector={}, pod=pod_spec(env=[{"name": "N", "valueFrom": field_ref}])),
    )
    apply_workload(
        stack,
        workload_obj(
            "needs-secret", selector={}, pod=pod_spec(envFrom=[{"secretRef": {"name": "missing"}}])
        ),
    )
    stack.start_operator()
    probe = device_probe(stack, creds)
    state = next_desired(probe)
    assert [w.name for w in state.workloads] == ["good"]

    def condition(name: str) -> dict[str, Any] | None:
        for c in (get(stack, "edgeworkloads", name).get("status") or {}).get("conditions") or []:
            if c["type"] == "Valid":
                return c  # type: ignore[no-any-return]
        return None

    bad = wait_until(lambda: condition("bad"))
    assert bad["status"] == "False"
    assert "fieldRef is not available on devices" in bad["message"]
    missing = wait_until(lambda: condition("needs-secret"))
    assert "Secret 'missing' does not exist" in missing["message"]
    assert wait_until(lambda: condition("good"))["status"] == "True"
    events = wait_until(
        lambda: [
            e
            for e in stack.core.list_namespaced_event(NAMESPACE).items
            if e.reason == "InvalidWorkload" and e.involved_object.name == "bad"
        ]
    )
    assert events[0].type == "Warning"

    # Creating the Secret makes the workload valid and it reaches the device.
    stack.core.create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(metadata=client.V1ObjectMeta(name="missing"), data={"k": b64("v")}),
    )
    assert [w.name for w in next_desired(probe).workloads] == ["good", "needs-secret"]


def test_device_announcing_another_version_gets_the_state_again(stack: Stack) -> None:
    creds = create_device(stack, "d1", {})
    apply_workload(stack, workload_obj("web", selector={}))
    stack.start_operator()
    probe = device_probe(stack, creds)
    first = next_desired(probe)
    # As after a broker that lost its retained store: the device comes online with an old version.
    birth = ConnectionState(state="online", time=datetime.now(UTC), applied_version="sha256:old")
    assert probe.publish(
        device_topic("d1", DeviceTopic.CONNECTION), encode(birth), retain=True
    ) in (0, 16)
    again = next_desired(probe)
    assert again.version == first.version
    assert probe.messages.qsize() == 0  # nothing else queued
    # The same version announced: nothing is published.
    current = ConnectionState(state="online", time=datetime.now(UTC), applied_version=first.version)
    probe.publish(device_topic("d1", DeviceTopic.CONNECTION), encode(current), retain=True)
    assert probe.next_message(timeout=1.5) is None


def test_broker_restart_without_retained_store_is_repaired(stack: Stack) -> None:
    creds = create_device(stack, "d1", {})
    apply_workload(stack, workload_obj("web", selector={}))
    running = stack.start_operator()
    probe = device_probe(stack, creds)
    first = next_desired(probe)
    probe.close()
    stack.broker.stop()
    import shutil

    shutil.rmtree(stack.broker.persistence_dir, ignore_errors=True)
    stack.broker.start()
    wait_until(
        lambda: (
            running.operator._broker is not None and running.operator._broker.connected.is_set()
        ),
        timeout=30,
    )
    fresh = device_probe(stack, creds)
    try:
        assert next_desired(fresh, timeout=20).version == first.version
    finally:
        fresh.close()


def test_device_writes_keep_to_their_rate(stack: Stack) -> None:
    """A change to every device reaches the API at ``device_write_rate``, not all at once."""
    names = [f"d{i}" for i in range(6)]
    for name in names:
        create_device(stack, name, {})
    apply_workload(stack, workload_obj("web", selector={}))
    started = time.monotonic()
    stack.start_operator(settings=replace(stack.config.settings, device_write_rate=2.0))

    def written() -> int:
        return sum(
            1
            for name in names
            if get(stack, "edgedevices", name).get("status", {}).get("desiredVersion")
        )

    wait_until(lambda: written() >= 2, timeout=20)
    assert written() < len(names)  # a burst of 2, then 2 a second
    wait_until(lambda: written() == len(names), timeout=20)
    assert time.monotonic() - started >= 1.5


def test_device_writes_wait_for_the_rollout_to_settle(stack: Stack) -> None:
    """The desiredVersion writes start ``device_write_settle`` seconds after the last desired
    state was acknowledged by the broker, not while the devices are still answering."""
    names = [f"d{i}" for i in range(3)]
    for name in names:
        create_device(stack, name, {})
    apply_workload(stack, workload_obj("web", selector={}))
    running = stack.start_operator(settings=replace(stack.config.settings, device_write_settle=3.0))
    metrics = running.operator.metrics
    wait_until(lambda: metrics.publishes._value.get() >= len(names), timeout=20)
    published = time.monotonic()

    def written() -> int:
        return sum(
            1
            for name in names
            if get(stack, "edgedevices", name).get("status", {}).get("desiredVersion")
        )

    wait_until(lambda: written() == len(names), timeout=20)
    assert time.monotonic() - published >= 2.5  # the settle, less the polling above


def test_broker_restart_with_its_store_republishes_nothing(stack: Stack) -> None:
    """The broker kept the operator's session, so it kept the retained states: a fleet
    reconnecting after the restart is not sent every desired state again."""
    for name in ("d1", "d2", "d3"):
        create_device(stack, name, {})
    apply_workload(stack, workload_obj("web", selector={}))
    running = stack.start_operator()
    metrics = running.operator.metrics
    wait_until(lambda: metrics.publishes._value.get() >= 3, timeout=20)
    before = metrics.publishes._value.get()
    stack.broker.restart()
    wait_until(
        lambda: (
            running.operator._broker is not None and running.operator._broker.connected.is_set()
        ),
        timeout=30,
    )
    time.sleep(2.0)  # what a reconnect would publish goes out at once
    assert metrics.publishes._value.get() == before == 3


def test_set_configuration_member_count_and_hardware_labels(stack: Stack) -> None:
    creds = create_device(stack, "d1", {"flotta/member-of": "north"})
    create_device(stack, "d2", {})
    add_device_set(stack, "north", {"heartbeat": {"periodSeconds": 5}})
    stack.start_operator()
    probe = device_probe(stack, creds)
    assert next_desired(probe).configuration.heartbeat.period_seconds == 5
    wait_until(
        lambda: (get(stack, "edgedevicesets", "north").get("status") or {}).get("members") == 1
    )

    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevicesets",
        "north",
        {"spec": {"heartbeat": {"periodSeconds": 7}}},
        _content_type=MERGE,
    )
    assert next_desired(probe).configuration.heartbeat.period_seconds == 7

    # The bridge records the reported inventory; the operator keeps the hardware labels.
    stack.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d2",
        {
            "status": {
                "hardware": {"hostname": "Gateway-7", "systemVendor": {"manufacturer": "ACME"}}
            }
        },
        _content_type=MERGE,
    )
    labels = wait_until(
        lambda: (
            (get(stack, "edgedevices", "d2")["metadata"]["labels"] or {}).get("device.hostname")
            and get(stack, "edgedevices", "d2")["metadata"]["labels"]
        )
    )
    assert labels["device.hostname"] == "gateway-7"
    assert labels["device.system-manufacturer"] == "acme"


def told(stack: Stack, name: str) -> tuple[str | None, int | None]:
    status = get(stack, "edgedevices", name).get("status") or {}
    return status.get("desiredVersion"), status.get("desiredHeartbeatPeriodSeconds")


def test_the_status_records_the_heartbeat_period_the_device_was_told(stack: Stack) -> None:
    """The set's period, not the device's own, goes with desiredVersion; once written, nothing
    is written again until the version changes; a status without it gets it once."""
    creds = create_device(stack, "d1", {"flotta/member-of": "north"})
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d1",
        {"spec": {"heartbeat": {"periodSeconds": 60}}},
        _content_type=MERGE,
    )
    add_device_set(stack, "north", {"heartbeat": {"periodSeconds": 5}})
    running = stack.start_operator()
    probe = device_probe(stack, creds)
    first = next_desired(probe)
    assert first.configuration.heartbeat.period_seconds == 5
    wait_until(lambda: told(stack, "d1") == (first.version, 5))
    version = get(stack, "edgedevices", "d1")["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert get(stack, "edgedevices", "d1")["metadata"]["resourceVersion"] == version

    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevicesets",
        "north",
        {"spec": {"heartbeat": {"periodSeconds": 7}}},
        _content_type=MERGE,
    )
    second = next_desired(probe)
    wait_until(lambda: told(stack, "d1") == (second.version, 7))

    # A status from before the field (an older operator wrote it): one write adds it.
    running.stop()
    stack.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d1",
        {"status": {"desiredHeartbeatPeriodSeconds": None}},
        _content_type=MERGE,
    )
    assert told(stack, "d1") == (second.version, None)
    stack.start_operator()
    wait_until(lambda: told(stack, "d1") == (second.version, 7))


def conditions_of(stack: Stack, plural: str, name: str) -> dict[str, dict[str, Any]]:
    status = get(stack, plural, name).get("status") or {}
    return {c["type"]: c for c in status.get("conditions") or []}


def test_fields_no_device_acts_on_are_named_in_a_condition(stack: Stack) -> None:
    """EdgeDevice (its own configuration, then its set's) and EdgeWorkload say which
    upstream fields they set that the devices ignore; nothing is written while that stays."""
    create_device(stack, "d1", {})
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d1",
        {
            "spec": {
                "mounts": [{"device": "/dev/sdb1", "folder": "/var/data", "type": "ext4"}],
                "storage": {"s3": {"secretName": "bucket"}},
            }
        },
        _content_type=MERGE,
    )
    # The bridge's conditions are there before; the operator's list patch keeps them.
    online = {
        "type": "Online",
        "status": "True",
        "reason": "Heartbeating",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    stack.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d1",
        {"status": {"conditions": [online]}},
        _content_type=MERGE,
    )
    data = {"paths": [{"source": "/export/a", "target": "a"}]}
    apply_workload(stack, workload_obj("syncs", selector={}, extra_spec={"data": data}))
    apply_workload(stack, workload_obj("plain", selector={}))
    stack.start_operator()

    device = wait_until(lambda: conditions_of(stack, "edgedevices", "d1").get("UnsupportedFields"))
    assert device["status"] == "True"
    assert device["reason"] == "FieldsNotActedOn"
    assert "spec.mounts (the agent mounts no block devices)" in device["message"]
    assert "spec.storage.s3 (there is no data sync to S3)" in device["message"]
    assert conditions_of(stack, "edgedevices", "d1")["Online"] == online
    workload = wait_until(
        lambda: conditions_of(stack, "edgeworkloads", "syncs").get("UnsupportedFields")
    )
    assert "spec.data.paths" in workload["message"]
    wait_until(lambda: "Valid" in conditions_of(stack, "edgeworkloads", "plain"))
    assert "UnsupportedFields" not in conditions_of(stack, "edgeworkloads", "plain")

    # Nothing changes: nothing is written.
    wait_until(lambda: (get(stack, "edgedevices", "d1").get("status") or {}).get("desiredVersion"))
    version = get(stack, "edgedevices", "d1")["metadata"]["resourceVersion"]
    time.sleep(1.5)
    assert get(stack, "edgedevices", "d1")["metadata"]["resourceVersion"] == version

    # In a set, the set's configuration is the one in effect: its fields are named.
    add_device_set(stack, "north", {"metrics": {"dataTransfer": {"interval": 30}}})
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevices",
        "d1",
        {"metadata": {"labels": {"flotta/member-of": "north"}}},
        _content_type=MERGE,
    )
    wait_until(
        lambda: conditions_of(stack, "edgedevices", "d1")["UnsupportedFields"]["message"].endswith(
            "EdgeDeviceSet north spec.metrics.dataTransfer (there is no data sync to measure)"
        )
    )
    # Unset there: the condition goes.
    stack.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        "edgedevicesets",
        "north",
        {"spec": {"metrics": {"dataTransfer": None}}},
        _content_type=MERGE,
    )
    wait_until(lambda: "UnsupportedFields" not in conditions_of(stack, "edgedevices", "d1"))
    assert "Online" in conditions_of(stack, "edgedevices", "d1")
