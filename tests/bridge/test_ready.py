"""The EdgeDevice ``Ready`` condition as kubectl sees it: ``kubectl wait --for=condition=Ready``
and the READY column, with the real bridge, Mosquitto and the local Kubernetes API."""

from __future__ import annotations

import asyncio
import subprocess

from flotta.schemas.topics import DeviceTopic, device_topic
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.support import create_device
from tests.bridge.test_integration import heartbeat, status_of

KUBECTL = "/usr/bin/kubectl"


async def kubectl(env: BridgeEnv, *args: str) -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, f"--kubeconfig={env.kube.kube.kubeconfig}", "-n", NAMESPACE, *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )


def ready_condition(env: BridgeEnv, name: str) -> tuple[str, str] | None:
    for condition in status_of(env, name).get("conditions", []):
        if condition["type"] == "Ready":
            return condition["status"], condition["reason"]
    return None


async def test_kubectl_waits_for_a_device_to_be_ready(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    create_device(bridge_env.kube.api, NAMESPACE, "dev-r")
    await start_bridge()
    device = await asyncio.to_thread(bridge_env.device, "dev-r")
    topic = device_topic("dev-r", DeviceTopic.STATUS)
    try:
        silent = await kubectl(
            bridge_env, "wait", "--for=condition=Ready", "edgedevice/dev-r", "--timeout=1s"
        )
        assert silent.returncode != 0  # the device never reported: not Ready

        await asyncio.to_thread(device.publish, topic, heartbeat(("web", "Running")))
        waited = await kubectl(
            bridge_env, "wait", "--for=condition=Ready", "edgedevice/dev-r", "--timeout=20s"
        )
        assert waited.returncode == 0, waited.stderr
        assert "condition met" in waited.stdout
        row = await kubectl(bridge_env, "get", "ed", "dev-r", "--no-headers")
        assert row.stdout.split()[:3] == ["dev-r", "Online", "True"]  # NAME PHASE READY

        await asyncio.to_thread(device.publish, topic, heartbeat(("web", "Failed")))
        waited = await kubectl(
            bridge_env, "wait", "--for=condition=Ready=false", "ed/dev-r", "--timeout=20s"
        )
        assert waited.returncode == 0, waited.stderr
        assert ready_condition(bridge_env, "dev-r") == ("False", "WorkloadsNotReady")
        row = await kubectl(bridge_env, "get", "ed", "dev-r", "--no-headers")
        assert row.stdout.split()[:3] == ["dev-r", "Online", "False"]
    finally:
        await asyncio.to_thread(device.close)
