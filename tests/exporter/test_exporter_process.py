"""``flotta exporter run`` as its own process, killed with SIGKILL in the middle of a delivery
and started again: Prometheus ends up with every sample once, nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client.parser import text_string_to_metric_families

from flotta.child_process import same_code_environment, terminate
from flotta.dev.nats_server import NatsServer, free_port
from tests.exporter.prometheus_server import PrometheusServer
from tests.exporter.support import consumer_lag, eventually, metrics_batch, now_ms, publish_batch

DEVICES = 8
BATCHES = 40  # per device
SAMPLES = 150  # per batch: 48,000 samples in all


def start_exporter(
    nats: NatsServer, prometheus: PrometheusServer, port: int, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "flotta.cli",
        "exporter",
        "run",
        f"--nats-url={nats.url}",
        f"--prometheus-url={prometheus.write_url}",
        "--device-receivers=off",
        f"--health-port={port}",
        "--ack-wait=3",
        "--fetch-batch=4",  # small sends: the kill lands mid-delivery
        "--request-samples=600",
        "--log-format=json",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=out, env=same_code_environment(), start_new_session=True
        )


def sent_items(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "flotta_exporter_sent_items_total":
                return float(sample.value)
    return 0.0


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_an_exporter_killed_mid_batch_and_restarted_loses_and_doubles_nothing(
    nc: NatsClient, nats_server: NatsServer, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    start = now_ms() - 20 * 60_000
    expected: dict[str, list[tuple[int, float]]] = {}
    for device in range(DEVICES):
        name = f"dev-{device}"
        times = [start + i * 20 for i in range(BATCHES * SAMPLES)]
        expected[f"{name}/flotta_test_value"] = [(t, float(t % 100_003)) for t in times]
        for sequence in range(BATCHES):
            chunk = times[sequence * SAMPLES : (sequence + 1) * SAMPLES]
            batch = metrics_batch(sequence, chunk, value=lambda t: float(t % 100_003))
            await publish_batch(nc, "ns", name, batch, wait=False)
    await nc.flush()
    total = DEVICES * BATCHES * SAMPLES

    port = free_port()
    log = tmp_path / "exporter.log"
    first = start_exporter(nats_server, prometheus, port, log)
    try:
        deadline = time.monotonic() + 30
        sent = 0.0
        while sent <= 0 and time.monotonic() < deadline:  # poll tightly: kill at the first
            sent = await asyncio.to_thread(sent_items, port)
            await asyncio.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(5)
    finally:
        terminate(first, name="exporter")
    assert 0 < sent < total, f"killed after {sent} of {total} samples: not mid-delivery"
    # What the killed replica had fetched is still unacknowledged: JetStream holds it.
    assert await consumer_lag(nc) > 0

    second = start_exporter(nats_server, prometheus, port, log)
    try:
        await eventually(lambda: _drained(nc), within=60, what="restarted exporter drained")
    finally:
        assert terminate(second, name="exporter") == 0

    stored = await asyncio.to_thread(prometheus.samples, 'flotta_test_value{namespace="ns"}', "1h")
    assert sorted(stored) == sorted(expected)
    for key, samples in expected.items():
        assert stored[key] == samples, key  # every sample, once, at its time, with its value
    assert '"level": "ERROR"' not in log.read_text()


async def _drained(nc: NatsClient) -> bool:
    return await consumer_lag(nc) == 0


def test_run_without_a_sink_says_so_and_exits_2() -> None:
    env = {k: v for k, v in same_code_environment().items() if not k.startswith("FLOTTA_")}
    env.pop("KUBECONFIG", None)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "flotta.cli", "exporter", "run", "--health-port=-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no sink configured" in done.stderr


def test_options_come_from_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from flotta.cli import build_parser

    monkeypatch.setenv("FLOTTA_EXPORTER_PROMETHEUS_URL", "http://from-env:9090/api/v1/write")
    monkeypatch.setenv("FLOTTA_EXPORTER_FETCH_BATCH", "64")
    monkeypatch.setenv("FLOTTA_EXPORTER_LOKI_URL", "http://loki-env:3100")
    args = build_parser().parse_args(["exporter", "run", "--loki-url", "http://flag:3100"])
    assert args.prometheus_url == "http://from-env:9090/api/v1/write"
    assert args.fetch_batch == 64
    assert args.loki_url == "http://flag:3100"
