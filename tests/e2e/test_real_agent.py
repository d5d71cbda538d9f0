"""The whole system with the real agent running real Podman workloads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flotta.agent.status_file import read_status
from flotta.dev.stack.nats_client import observer_connection
from flotta.dev.stack.up import LOCAL_AGENT_ID
from flotta.schemas.crd.common import GROUP, VERSION
from tests.e2e.conftest import RunningSystem, restart_broker, wait_until
from tests.fixtures.kubetypes import obj

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]


def agent_converged(system: RunningSystem, *, not_version: str = "") -> dict[str, Any] | None:
    status = system.device(LOCAL_AGENT_ID).get("status") or {}
    desired = status.get("desiredVersion")
    if status.get("phase") != "Online" or not desired or desired == not_version:
        return None
    if status.get("appliedVersion") != desired:
        return None
    phases = {w["name"]: w["phase"] for w in status.get("workloads") or []}
    return status if phases.get("counter") == "Running" else None


def agent_connected_since(system: RunningSystem, since: datetime) -> bool:
    status = read_status(system.layout.agent / "state")
    if status is None or not status.connected or not status.last_connected:
        return False
    return datetime.fromisoformat(status.last_connected.replace("Z", "+00:00")) > since


def patch_counter_args(system: RunningSystem, text: str) -> None:
    workload = system.workload("counter")
    container = workload["spec"]["pod"]["spec"]["containers"][0]
    container["args"] = [f"while true; do echo {text}; sleep 2; done"]
    system.custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "edgeworkloads", "counter", {"spec": workload["spec"]}
    )


def set_system_metrics_interval(system: RunningSystem, seconds: int) -> None:
    system.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "edgedevicesets",
        "shop-floor",
        {"spec": {"metrics": {"system": {"interval": seconds, "allowList": None}}}},
    )


async def nats_messages(state_dir: Path, subject: str, *, stream: str) -> list[dict[str, Any]]:
    """Everything the stream holds for the subject, in order."""
    connection = await observer_connection(state_dir)
    try:
        jetstream = connection.jetstream()
        consumer = await jetstream.pull_subscribe(subject, stream=stream)
        found: list[dict[str, Any]] = []
        while True:
            try:
                batch = await consumer.fetch(200, timeout=2)
            except TimeoutError:  # nats raises asyncio.TimeoutError, the same class
                return found
            for message in batch:
                found.append(json.loads(message.data))
                await message.ack()
                if message.metadata.num_pending == 0:
                    return found  # caught up; more keep arriving while the agent runs
    finally:
        await connection.close()


def agent_messages(system: RunningSystem, kind: str, stream: str) -> list[dict[str, Any]]:
    """What JetStream holds of the local agent's messages of one kind."""
    subject = f"flotta.device.default.{LOCAL_AGENT_ID}.{kind}"
    return asyncio.run(nats_messages(system.layout.root, subject, stream=stream))


def test_enrol_run_a_pod_and_report(agent_system: RunningSystem) -> None:
    system = agent_system
    status = wait_until(
        lambda: agent_converged(system), timeout=120, what="the agent to run the counter"
    )
    device = system.device(LOCAL_AGENT_ID)
    assert device["metadata"]["labels"]["flotta/member-of"] == "shop-floor"
    assert status["certificate"]["serial"]
    requests = obj(
        system.custom.list_namespaced_custom_object(
            GROUP, VERSION, "flotta", "edgedevicesignedrequests"
        )
    )
    assert [r["status"]["phase"] for r in requests["items"]] == ["Issued"]
    statuses = agent_messages(system, "status", "FLOTTA_STATUS")
    assert statuses
    assert statuses[-1]["type"] == "io.flotta.device.status.v1"
    assert statuses[-1]["data"]["appliedVersion"] == status["appliedVersion"]


def test_offline_device_converges_on_reconnect_and_loses_no_metrics(
    agent_system: RunningSystem,
) -> None:
    """The hard order: the agent is back on the restarted broker before the bridge is.
    Mosquitto 2.0 does not restore an offline client's shared subscription from its store, so
    what the agent sends then is acknowledged and dropped; the bridge's receipts (missing for
    those batches) make the agent send them again."""
    system = agent_system
    set_system_metrics_interval(system, 1)
    first = wait_until(lambda: agent_converged(system), timeout=120, what="the agent to converge")
    time.sleep(3)  # metrics flowing at one round a second

    bridge = next(r for r in system.stack.records if r.name == "bridge" and r.is_running())
    paused_at = datetime.now(UTC)
    os.kill(bridge.pid, signal.SIGSTOP)  # the bridge falls behind the agent
    try:
        restart_broker(
            system,
            down_for=8.0,  # the agent keeps collecting into its buffer meanwhile
            while_down=lambda: patch_counter_args(system, "changed-while-offline"),
        )
        wait_until(
            lambda: agent_connected_since(system, paused_at),
            timeout=60,
            what="the agent to reconnect while the bridge is paused",
        )
        time.sleep(4)  # batches sent now reach no queue: only the agent's resend saves them

        def applied_and_told_while_the_bridge_is_away() -> bool:
            status = read_status(system.layout.agent / "state")
            return (
                status is not None
                and status.applied_version not in ("", first["appliedVersion"])
                and status.events_unconfirmed >= 1
            )

        # the events of applying the change go out now, and reach no queue either
        wait_until(
            applied_and_told_while_the_bridge_is_away,
            timeout=90,
            what="the agent to apply the change and send its events while the bridge is paused",
        )
    finally:
        os.kill(bridge.pid, signal.SIGCONT)

    second = wait_until(
        lambda: agent_converged(system, not_version=first["desiredVersion"]),
        timeout=120,
        what="the agent to apply the change made while it was offline",
    )
    assert second["appliedVersion"] != first["appliedVersion"]

    def delivered_without_gaps() -> list[tuple[str, int]] | None:
        batches = agent_messages(system, "metrics", "FLOTTA_TELEMETRY")
        sequences = [(b["data"]["stream"], b["data"]["sequence"]) for b in batches]
        assert len(set(sequences)) == len(sequences), "a batch landed twice in the stream"
        numbers = sorted(sequence for _, sequence in sequences)
        if len(numbers) < 12 or numbers != list(range(numbers[0], numbers[-1] + 1)):
            return None  # still draining the buffer (or a batch is lost: then this times out)
        return sequences

    sequences = wait_until(
        delivered_without_gaps, timeout=120, what="every metric batch, with no gap in sequence"
    )
    assert len({stream for stream, _ in sequences}) == 1

    def resent() -> int | None:
        status = read_status(system.layout.agent / "state")
        return status.telemetry_resent if status is not None and status.telemetry_resent else None

    # the batches the broker dropped came back through the receipt protocol, not by luck
    assert wait_until(resent, timeout=30, what="the agent's count of resent batches") >= 1

    def events_delivered_once() -> list[dict[str, Any]] | None:
        events = agent_messages(system, "events", "FLOTTA_EVENTS")
        ids = [e["data"]["id"] for e in events]
        assert len(set(ids)) == len(ids), "an event landed twice in the stream"
        status = read_status(system.layout.agent / "state")
        if status is None or status.events_unconfirmed or not status.events_resent:
            return None  # the resend is still to come, or its receipt
        during = [e for e in events if datetime.fromisoformat(e["data"]["time"]) > paused_at]
        return during or None

    during = wait_until(
        events_delivered_once,
        timeout=120,
        what="the events sent while the bridge was away, resent and confirmed",
    )
    assert any(e["data"].get("workload") == "counter" for e in during)


def test_broker_that_lost_its_retained_store_is_repaired(agent_system: RunningSystem) -> None:
    system = agent_system
    first = wait_until(lambda: agent_converged(system), timeout=120, what="the agent to converge")
    restart_broker(system, wipe_store=True)
    patch_counter_args(system, "after-store-loss")
    wait_until(
        lambda: agent_converged(system, not_version=first["desiredVersion"]),
        timeout=120,
        what="the agent to converge after the broker lost its store",
    )
