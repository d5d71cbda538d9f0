"""Publish N retained QoS 1 messages: flotta.mqtt vs a bare paho-mqtt loop, side by side.

Runs a real Mosquitto (mutual TLS, Flotta ACL) in a temporary directory and publishes as the
operator to ``flotta/devices/bench-<i>/desired``. Run from the repository root:

    .venv/bin/python benchmarks/mqtt_publish_bench.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: fixtures shared with the test suite

from flotta.mqtt import MqttClient, MqttSettings, TlsFiles  # noqa: E402
from tests.fixtures.brokers import ClientCredentials, TestBroker, new_fleet_pki  # noqa: E402


def _topic(run: str, n: int) -> str:
    return f"flotta/devices/bench-{run}-{n}/desired"


async def bench_flotta(broker: TestBroker, creds: ClientCredentials, n: int) -> float:
    settings = MqttSettings(
        broker.host,
        broker.port,
        "bench-flotta",
        TlsFiles(creds.ca, creds.cert, creds.key),
        clean_start=True,
        session_expiry=0,
    )
    payload = b"x" * 200
    async with MqttClient(settings) as client:
        start = time.perf_counter()
        await asyncio.gather(
            *(client.publish(_topic("a", i), payload, qos=1, retain=True) for i in range(n))
        )
        elapsed = time.perf_counter() - start
        assert client.counters.published == n, client.counters
    return elapsed


def bench_paho(broker: TestBroker, creds: ClientCredentials, n: int, inflight: int) -> float:
    done = threading.Event()
    connected = threading.Event()
    acked = 0

    def on_connect(*_args: object) -> None:
        connected.set()

    def on_publish(
        client: paho.Client, userdata: object, mid: int, rc: ReasonCode, props: Properties
    ) -> None:
        nonlocal acked
        acked += 1
        if acked == n:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=paho.MQTTv5)
    client.tls_set(str(creds.ca), str(creds.cert), str(creds.key))
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("bare paho did not connect")
        payload = b"x" * 200
        start = time.perf_counter()
        for i in range(n):
            client.publish(_topic("b", i), payload, qos=1, retain=True)
        if not done.wait(120):
            raise RuntimeError(f"bare paho: only {acked} of {n} acknowledged")
        return time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--paho-inflight",
        type=int,
        default=20,
        help="bare paho's in-flight limit (flotta.mqtt takes the broker's Receive Maximum: 20)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = TestBroker(new_fleet_pki(Path(tmp) / "pki"), Path(tmp) / "mosquitto")
        broker.start()
        try:
            creds = broker.operator()
            for round_ in range(1, args.rounds + 1):
                paho_s = bench_paho(broker, creds, args.n, args.paho_inflight)
                flotta_s = asyncio.run(bench_flotta(broker, creds, args.n))
                print(
                    f"round {round_}: N={args.n} retained QoS1  "
                    f"bare paho {args.n / paho_s:8.0f} msg/s ({paho_s:.2f} s)  "
                    f"flotta.mqtt {args.n / flotta_s:8.0f} msg/s ({flotta_s:.2f} s)  "
                    f"ratio flotta/paho {paho_s / flotta_s:.2f}"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
