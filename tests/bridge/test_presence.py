"""A serving bridge replica renews its presence lease (the operator reads them: with none
alive, Online devices become Unknown)."""

from __future__ import annotations

from kubernetes import client

from flotta.bridge.presence import lease_name
from flotta.schemas.crd.common import BRIDGE_PRESENCE_LABEL
from tests.bridge.conftest import NAMESPACE, BridgeEnv, StartBridge
from tests.bridge.test_integration import eventually


def test_lease_names_are_dns_labels() -> None:
    assert lease_name("flotta-bridge-0") == "bridge-flotta-bridge-0"
    assert lease_name("Bridge_1.example") == "bridge-bridge-1-example"
    assert len(lease_name("x" * 200)) <= 63


async def test_a_serving_bridge_renews_its_presence_lease(
    bridge_env: BridgeEnv, start_bridge: StartBridge
) -> None:
    await start_bridge(lease_namespace=NAMESPACE)
    leases = client.CoordinationV1Api(bridge_env.kube.api)

    def ours() -> client.V1Lease | None:
        found = leases.list_namespaced_lease(NAMESPACE, label_selector=BRIDGE_PRESENCE_LABEL)
        return next(iter(found.items), None)

    lease = await eventually(ours)
    assert lease.metadata.name == lease_name("bridge-1")
    assert lease.spec.holder_identity == "bridge-1"
    assert lease.spec.lease_duration_seconds >= 20
