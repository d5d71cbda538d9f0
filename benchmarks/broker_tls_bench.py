"""What a device connect costs the broker, with and without TLS session tickets, side by side.

    .venv/bin/python benchmarks/broker_tls_bench.py [--connects 3000] [--rounds 3]

Two real Mosquitto brokers with the Flotta configuration on loopback: one started with the
system's OpenSSL settings (session tickets, OpenSSL's default) and one with Flotta's
``openssl.cnf`` (``flotta.mosquitto.openssl``: none). Each round makes ``--connects`` device
connects to each broker in turn, one after the other from this process: a TLS handshake with
the device's own certificate, an MQTT CONNECT answered by a CONNACK, a DISCONNECT. The
broker's CPU time comes from /proc (user + system), this process's from ``time.process_time``.
A reconnect storm is this work 10,000 times over, and Mosquitto does it on one thread.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: where the source folders are
from tests.fixtures.sources import SOURCE_DIRS  # noqa: E402

sys.path[1:1] = [str(ROOT / folder) for folder in SOURCE_DIRS]

from history import earlier_runs, record  # noqa: E402 (benchmarks/history.py)

from benchmarks.fleet_bench import cpu_seconds, machine  # noqa: E402
from flotta.dev.simulator.provision import provision  # noqa: E402
from flotta.mosquitto.openssl import OPENSSL_CONFIG_NAME  # noqa: E402
from tests.fixtures.brokers import TestBroker, new_fleet_pki  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "broker_tls.md"
DEVICES = 200
VARIANTS = ("tickets (OpenSSL default)", "no tickets (Flotta openssl.cnf)")


def device_context(ca: Path, device_dir: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the broker's certificate names 127.0.0.1 as an IP
    context.load_verify_locations(ca)
    context.load_cert_chain(device_dir / "device.crt", device_dir / "device.key")
    return context


def connect_once(broker: TestBroker, context: ssl.SSLContext, client_id: str) -> bool:
    """One device connect; whether the broker issued a session ticket."""
    raw = socket.create_connection((broker.host, broker.port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with context.wrap_socket(raw) as connection:
        encoded = client_id.encode()
        variable_header = b"\x00\x04MQTT\x04\x02\x00\x3c"  # MQTT 3.1.1, clean session, 60 s
        payload = len(encoded).to_bytes(2, "big") + encoded
        packet = bytes([0x10, len(variable_header) + len(payload)]) + variable_header + payload
        connection.sendall(packet)
        connack = connection.recv(4)
        if connack != b"\x20\x02\x00\x00":
            raise RuntimeError(f"{client_id}: CONNACK {connack.hex()}")
        session = connection.session
        connection.sendall(b"\xe0\x00")
        return session is not None and session.has_ticket


def measure(
    broker: TestBroker, contexts: list[tuple[str, ssl.SSLContext]], connects: int
) -> dict[str, float]:
    broker_before, client_before = cpu_seconds(broker.process.pid or 0), time.process_time()
    started = time.perf_counter()
    tickets = 0
    for n in range(connects):
        client_id, context = contexts[n % len(contexts)]
        tickets += connect_once(broker, context, client_id)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "broker_ms": 1e3 * (cpu_seconds(broker.process.pid or 0) - broker_before) / connects,
        "client_ms": 1e3 * (time.process_time() - client_before) / connects,
        "tickets": tickets / connects,
    }


def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    work = Path(tempfile.mkdtemp(prefix="broker-tls-bench-"))
    pki = new_fleet_pki(work / "pki")
    ids = [f"tls-bench-{n:04d}" for n in range(DEVICES)]
    provision(pki, work / "devices", ids, namespace="default")
    brokers = [TestBroker(pki, work / "tickets"), TestBroker(pki, work / "flotta")]
    brokers[0].process.openssl_config = None  # the system's settings
    assert brokers[1].process.openssl_config == work / "flotta" / OPENSSL_CONFIG_NAME
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        for broker in brokers:
            broker.start()
        contexts = [(i, device_context(brokers[0].ca_path, work / "devices" / i)) for i in ids]
        for broker in brokers:  # warm up: first connects, page faults, caches
            measure(broker, contexts, min(200, args.connects))
        for round_ in range(1, args.rounds + 1):
            for variant, broker in zip(VARIANTS, brokers, strict=True):
                result = measure(broker, contexts, args.connects)
                results[variant].append(result)
                print(
                    f"round {round_}: {variant}: {result['wall_s']:.2f} s, broker "
                    f"{result['broker_ms']:.3f} ms, client {result['client_ms']:.3f} ms a "
                    f"connect, tickets issued on {100 * result['tickets']:.0f} % of connects",
                    flush=True,
                )
    finally:
        for broker in brokers:
            broker.stop()
    return results


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    lines = [
        "# Broker TLS: a device connect with and without session tickets",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `benchmarks/broker_tls_bench.py "
        f"--connects {args.connects} --rounds {args.rounds}`.",
        "",
        f"Machine: {machine()}",
        "",
        "Two Mosquitto brokers with the Flotta configuration, measured alternately in each "
        f"round: {args.connects} device connects per broker per round (TLS 1.3 with the "
        f"device's certificate, MQTT CONNECT and CONNACK, DISCONNECT; {DEVICES} devices in "
        "turn). CPU per connect; the median of the rounds, each round's figures in brackets.",
        "",
        "| broker's OpenSSL settings | broker CPU per connect (ms) | client CPU per connect "
        "(ms) | connects a second, one at a time | tickets issued |",
        "|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        each = ", ".join(f"{r['broker_ms']:.3f}" for r in results[variant])
        lines.append(
            f"| {variant} | {median(variant, 'broker_ms'):.3f} ({each}) | "
            f"{median(variant, 'client_ms'):.3f} | "
            f"{args.connects / median(variant, 'wall_s'):.0f} | "
            f"{100 * median(variant, 'tickets'):.0f} % |"
        )
    ratio = median(VARIANTS[1], "broker_ms") / median(VARIANTS[0], "broker_ms")
    lines += [
        "",
        f"Without tickets the broker spends {ratio:.2f} of the CPU per connect it spends with "
        f"them: a reconnect storm of 10,000 devices costs its single thread "
        f"{10 * median(VARIANTS[0], 'broker_ms'):.1f} s of CPU with tickets and "
        f"{10 * median(VARIANTS[1], 'broker_ms'):.1f} s without.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connects", type=int, default=3000, help="per broker per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    earlier = earlier_runs(args.out)
    text = report(run(args), args)
    record(args.out, text, earlier)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
