"""Each device's metrics go to the receiver its EdgeDevice or EdgeDeviceSet names
(``metrics.receiverConfiguration``), and each workload's lines to the syslog server of its
``logCollection`` entry, read from the local Kubernetes API; the RBAC of the cluster install
grants exactly the reads that takes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from nats.aio.client import Client as NatsClient

from flotta.dev.nats_server import free_port
from flotta.exporter.app import SinkRoute
from flotta.exporter.kube_receivers import KubeReceivers
from flotta.exporter.receivers import ReceiverSinks
from flotta.exporter.routing import Receiver
from flotta.exporter.syslog_routing import SyslogRoutes
from flotta.pki.store import PkiStore
from flotta.schemas.crd.common import GROUP, MEMBER_OF_LABEL, VERSION
from flotta.schemas.wire.telemetry import LogsBatch, MetricsBatch
from tests.deploy.test_rbac import CLUSTER, Need, grants, watch
from tests.exporter.log_batches import ticks
from tests.exporter.prometheus_server import PrometheusServer
from tests.exporter.support import consumer_lag, eventually, metrics_batch, now_ms, publish_batch
from tests.fixtures.kubeprocess import LocalKube, running_kube
from tests.fixtures.rsyslog import RsyslogServer

NAMESPACE = "site"


@pytest.fixture
def site_kube(tmp_path: Path) -> Iterator[tuple[LocalKube, k8s.ApiClient]]:
    with running_kube(tmp_path / "kube", NAMESPACE) as started:
        yield started


def create(
    api: k8s.ApiClient, plural: str, kind: str, name: str, spec: dict[str, Any], **labels: str
) -> None:
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        plural,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": spec,
        },
    )


def receiver(url: str, **more: Any) -> dict[str, Any]:
    return {"metrics": {"receiverConfiguration": {"url": url, **more}}}


async def test_each_device_s_metrics_go_to_its_own_or_its_set_s_receiver(
    nc: NatsClient,
    prometheus: PrometheusServer,
    site_kube: tuple[LocalKube, k8s.ApiClient],
    run_exporter: Any,
) -> None:
    local, api = site_kube
    nowhere = f"http://127.0.0.1:{free_port()}/api/v1/write"  # nothing listens: Retry
    create(
        api,
        "edgedevicesets",
        "EdgeDeviceSet",
        "west",
        receiver(prometheus.write_url, requestNumSamples=2),
    )
    create(api, "edgedevices", "EdgeDevice", "own", receiver(prometheus.write_url))
    # The set exists, so its section wins over the device's own.
    create(
        api, "edgedevices", "EdgeDevice", "member", receiver(nowhere), **{MEMBER_OF_LABEL: "west"}
    )
    create(api, "edgedevices", "EdgeDevice", "plain", {})  # the default receiver
    # A CA Secret that does not exist: nothing is sent to that receiver, the batch waits.
    create(
        api, "edgedevices", "EdgeDevice", "tls",
        receiver(prometheus.write_url.replace("http:", "https:"), caSecretName="missing-ca"),
    )  # fmt: skip

    now = now_ms()
    for device in ("own", "member", "plain", "tls"):
        await publish_batch(nc, NAMESPACE, device, metrics_batch(1, [now - 2000, now - 1000, now]))
    receivers = KubeReceivers(local.kubeconfig, default=Receiver(nowhere))
    sinks = ReceiverSinks(receivers)
    route = SinkRoute(
        "prometheus", MetricsBatch, sinks.select, sinks.aclose, ready=lambda: receivers.synced
    )
    exporter = await run_exporter([route])
    try:
        # Until the EdgeDevices and sets are listed nothing is fetched: a batch routed to the
        # default receiver for want of its device would go to the wrong place.
        await asyncio.sleep(1.5)
        assert await consumer_lag(nc) == -1  # not even the consumer yet
        assert exporter.readiness()["routes-prometheus"] is False
        receivers.start()

        def landed() -> Any:
            return sorted(prometheus.samples('flotta_test_value{namespace="site"}'))

        assert await eventually(landed, within=15, what="samples in Prometheus") == [
            "member/flotta_test_value",
            "own/flotta_test_value",
        ]
        await asyncio.sleep(2.0)
        assert sorted(prometheus.samples('flotta_test_value{namespace="site"}')) == [
            "member/flotta_test_value",
            "own/flotta_test_value",
        ]
        assert await consumer_lag(nc) == 2  # plain (default: down) and tls (no CA) wait
        assert exporter.readiness()["routes-prometheus"] is True

        # Those two retry in lanes of their own: later batches of the others still flow.
        later = now_ms()
        for device in ("own", "member"):
            await publish_batch(nc, NAMESPACE, device, metrics_batch(2, [later]))

        def got_later() -> bool:
            stored = prometheus.samples('flotta_test_value{namespace="site"}')
            return all(stored.get(f"{d}/flotta_test_value", [])[-1:] == [(later, float(later))]
                       for d in ("own", "member"))  # fmt: skip

        await eventually(got_later, within=15, what="later batches past the retrying ones")
        assert await consumer_lag(nc) == 2
    finally:
        receivers.stop()


def test_the_exporter_s_rbac_grants_exactly_the_reads_it_makes() -> None:
    needed = {
        *watch(GROUP, "edgedevices"),
        *watch(GROUP, "edgedevicesets"),
        *watch(GROUP, "edgeworkloads"),
        Need("", "secrets", "get"),  # read_namespaced_secret, any namespace a device is in
        Need("", "configmaps", "get"),  # read_namespaced_config_map, likewise
    }
    root = Path(__file__).parents[2]  # the exporter's reads and the shared watch's lists
    source = "".join(
        (root / path).read_text()
        for path in ("exporter/flotta/exporter/kube_receivers.py", "schemas/flotta/kube_watch.py")
    )
    calls = {"list_cluster_custom_object", "read_namespaced_secret", "read_namespaced_config_map"}
    assert {c for c in calls if c in source} == calls
    granted = grants("flotta-exporter")
    for need in needed:
        assert any(g.allows(need) for g in granted), f"flotta-exporter may not {need}"
    for grant in granted:
        rule = grant.rule
        assert grant.namespace == CLUSTER
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert Need(group, resource, verb) in needed, f"needless grant {rule}"


async def test_workload_lines_go_to_the_syslog_server_of_their_log_collection(
    nc: NatsClient,
    rsyslog_server: RsyslogServer,
    site_kube: tuple[LocalKube, k8s.ApiClient],
    run_exporter: Any,
) -> None:
    local, api = site_kube
    k8s.CoreV1Api(api).create_namespaced_config_map(
        NAMESPACE,
        k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="syslog-a"),
            data={"Address": f"127.0.0.1:{rsyslog_server.port}", "Protocol": "tcp"},
        ),
    )
    to_syslog = {"kind": "syslog", "syslogConfig": {"name": "syslog-a"}}
    create(api, "edgedevices", "EdgeDevice", "logger", {"logCollection": {"remote": to_syslog}})
    # Its entry names a ConfigMap that does not exist: its lines wait, the others' flow.
    broken = {"kind": "syslog", "syslogConfig": {"name": "nope"}}
    create(api, "edgedevices", "EdgeDevice", "broken", {"logCollection": {"remote": broken}})
    pod = {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    create(api, "edgeworkloads", "EdgeWorkload", "app",
           {"type": "pod", "device": "logger", "pod": pod, "logCollection": "remote"})  # fmt: skip
    create(
        api,
        "edgeworkloads",
        "EdgeWorkload",
        "quiet",
        {"type": "pod", "device": "logger", "pod": pod},
    )

    lines = [*ticks(3, workload="app"), *ticks(2, workload="quiet")]
    await publish_batch(nc, NAMESPACE, "logger", LogsBatch(stream="b0", sequence=1, lines=lines))
    await publish_batch(
        nc, NAMESPACE, "broken", LogsBatch(stream="b0", sequence=1, lines=ticks(1, workload="app"))
    )
    receivers = KubeReceivers(local.kubeconfig, default=Receiver("http://127.0.0.1:9/unused"))
    syslog = SyslogRoutes(receivers)
    route = SinkRoute(
        "syslog", LogsBatch, syslog.select, syslog.aclose, ready=lambda: receivers.synced
    )
    receivers.start()
    try:
        await run_exporter([route])
        await asyncio.to_thread(rsyslog_server.wait_for, 3)
        await asyncio.sleep(1.0)
        received = rsyslog_server.received()
        assert [
            (m["hostname"], m["app-name"], m["msg"].removeprefix("\ufeff")) for m in received
        ] == [
            ("logger", "app", "tick-0"),
            ("logger", "app", "tick-1"),
            ("logger", "app", "tick-2"),
        ]
        assert await consumer_lag(nc, "syslog") == 1  # broken's batch waits for its ConfigMap
    finally:
        receivers.stop()


async def test_a_receiver_over_https_is_verified_with_the_ca_of_its_secret(
    nc: NatsClient,
    fleet_pki: PkiStore,
    tmp_path: Path,
    site_kube: tuple[LocalKube, k8s.ApiClient],
    run_exporter: Any,
) -> None:
    local, api = site_kube
    secure = PrometheusServer(
        tmp_path / "secure-prometheus",
        tls=(fleet_pki.server_cert_path, fleet_pki.server_key_path, fleet_pki.ca_cert_path),
    )
    secure.start()
    try:
        k8s.CoreV1Api(api).create_namespaced_secret(
            NAMESPACE,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name="prom-ca"),
                string_data={"ca.crt": fleet_pki.ca_cert_path.read_text()},
            ),
        )
        create(api, "edgedevices", "EdgeDevice", "verified",
               receiver(secure.write_url, caSecretName="prom-ca"))  # fmt: skip
        # The same receiver without the CA: the system's trust store does not know it.
        create(api, "edgedevices", "EdgeDevice", "unverified", receiver(secure.write_url))
        now = now_ms()
        for device in ("verified", "unverified"):
            await publish_batch(nc, NAMESPACE, device, metrics_batch(1, [now]))
        receivers = KubeReceivers(local.kubeconfig, default=Receiver("http://127.0.0.1:9/unused"))
        sinks = ReceiverSinks(receivers)
        route = SinkRoute(
            "prometheus", MetricsBatch, sinks.select, sinks.aclose, ready=lambda: receivers.synced
        )
        receivers.start()
        try:
            await run_exporter([route])

            def landed() -> Any:
                return sorted(secure.samples('flotta_test_value{namespace="site"}'))

            assert await eventually(landed, within=15, what="verified samples") == [
                "verified/flotta_test_value"
            ]
            await asyncio.sleep(1.0)
            assert landed() == ["verified/flotta_test_value"]
            assert await consumer_lag(nc) == 1  # the unverified one retries, it is not sent
        finally:
            receivers.stop()
    finally:
        secure.stop()
