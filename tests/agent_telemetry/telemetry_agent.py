"""A stand-alone telemetry agent process for kill-and-restart tests: TelemetryService with
system metrics from a prepared /proc tree and the logs of workload ``app`` (``tail -F`` of
``LOGS/app.log``), published through flotta.mqtt with the device's certificate; receipts on
the device's receipts topic confirm its batches.

Usage: python -m tests.agent_telemetry.telemetry_agent STATE LOGS HOST PORT CA CERT KEY DEVICE
Prints ``running`` once started; runs until killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flotta.agent.telemetry import TelemetryService
from flotta.agent.telemetry.system import SystemCollector
from flotta.backoff import Backoff, BackoffPolicy
from flotta.mqtt import MqttClient, MqttSettings, TlsFiles
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import DesiredConfiguration, DesiredWorkload
from flotta.schemas.wire.desired import MetricsSettings, SystemMetricsSettings
from tests.agent_telemetry.log_sources import tail_source
from tests.agent_telemetry.sample_root import sample_root


async def main(arguments: list[str]) -> None:
    state, logs, host, port, ca, cert, key, device = arguments
    client = MqttClient(
        MqttSettings(
            host=host,
            port=int(port),
            client_id=device,
            tls=TlsFiles(Path(ca), Path(cert), Path(key), check_hostname=False),
            reconnect_base=0.1,
            reconnect_cap=0.5,
        )
    )
    processes: list[asyncio.subprocess.Process] = []
    telemetry = TelemetryService(
        Path(state),
        device,
        max_bytes=50_000_000,
        log_source=tail_source(Path(logs), processes),
        system=SystemCollector(sample_root(Path(state) / "root"), clock_ticks=100),
        flush_interval=0.2,
        retry=Backoff(BackoffPolicy(base=0.1, cap=0.5, jitter=0.5)),
    )
    telemetry.configure(
        DesiredConfiguration(metrics=MetricsSettings(system=SystemMetricsSettings(interval=1))),
        [DesiredWorkload(name="app", namespace="default", pod_spec={}, log_collection="x")],
        {},
    )
    await client.connect()
    await client.subscribe([(device_topic(device, DeviceTopic.RECEIPTS), 1)])

    async def feed_receipts() -> None:
        async for message in client.messages():
            telemetry.receipt(message.payload)

    receipts = asyncio.create_task(feed_receipts())
    print("running", flush=True)
    try:
        await telemetry.run(client.publish)
    finally:
        receipts.cancel()
        await asyncio.gather(receipts, return_exceptions=True)
        await telemetry.close()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
