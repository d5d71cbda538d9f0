"""Publish rate of flotta.mqtt against a bare paho-mqtt QoS 1 loop, side by side in one run.

    python benchmarks/mqtt_publish_bench.py [--messages 10000]

Both publish N retained QoS 1 messages of the size of a small desired state to a real
Mosquitto (mutual TLS, the Flotta ACL) as the operator identity, and wait until the broker
acknowledged every one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in ("schemas", "operator", "bridge", "agent", "mosquitto", "deploy", "."):
    sys.path.insert(0, str(ROOT / folder))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from flotta.mqtt import MqttClient, MqttSettings, TlsFiles  # noqa: E402
from flotta.schemas.topics import DeviceTopic, device_topic  # noqa: E402
from tests.fixtures.brokers import ClientCredentials, TestBroker, new_fleet_pki  # noqa: E402

PAYLOAD = b"x" * 1500


def bare_paho(broker: TestBroker, creds: ClientCredentials, count: int, prefix: str) -> float:
    done = threading.Event()
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=paho.MQTTv5)
    client.tls_set(ca_certs=str(creds.ca), certfile=str(creds.cert), keyfile=str(creds.key))
    client.tls_insecure_set(True)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    time.sleep(0.5)
    started = time.perf_counter()
    for i in range(count):
        client.publish(
            device_topic(f"{prefix}-{i}", DeviceTopic.DESIRED), PAYLOAD, qos=1, retain=True
        )
    done.wait(120)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


async def flotta_client(
    broker: TestBroker, creds: ClientCredentials, count: int, prefix: str
) -> float:
    settings = MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id="bench-flotta",
        tls=TlsFiles(creds.ca, creds.cert, creds.key, check_hostname=False),
        clean_start=True,
        max_inflight=1000,
    )
    client = MqttClient(settings)
    await client.connect()
    started = time.perf_counter()
    await asyncio.gather(
        *(
            client.publish(device_topic(f"{prefix}-{i}", DeviceTopic.DESIRED), PAYLOAD, retain=True)
            for i in range(count)
        )
    )
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = TestBroker(new_fleet_pki(Path(tmp) / "pki"), Path(tmp) / "mosquitto")
        broker.start()
        try:
            creds = broker.operator()
            rows = []
            for round_ in range(args.rounds):
                paho_s = bare_paho(broker, creds, args.messages, f"paho{round_}")
                flotta_s = asyncio.run(
                    flotta_client(broker, creds, args.messages, f"flotta{round_}")
                )
                rows.append((paho_s, flotta_s))
                print(
                    f"round {round_ + 1}: bare paho {args.messages / paho_s:,.0f} msg/s, "
                    f"flotta.mqtt {args.messages / flotta_s:,.0f} msg/s, "
                    f"ratio {paho_s / flotta_s:.2f}"
                )
        finally:
            broker.stop()
    best_paho = min(r[0] for r in rows)
    best_flotta = min(r[1] for r in rows)
    ratio = best_paho / best_flotta
    machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"
    print(
        f"best of {args.rounds}: bare paho {args.messages / best_paho:,.0f} msg/s, "
        f"flotta.mqtt {args.messages / best_flotta:,.0f} msg/s, ratio {ratio:.2f} ({machine})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
