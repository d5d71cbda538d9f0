"""Exporter benchmark: JetStream -> Prometheus remote write on this machine, with a real
nats-server (JetStream, file storage) and Debian's Prometheus (remote-write receiver,
out-of-order window) as child processes.

1. Throughput per replica: the telemetry stream holds N metrics batches (as the bridge
   publishes them); one ``flotta exporter run`` process drains them into Prometheus, and
   the rate is samples over the time from the creation of its consumer to an empty one.
   In the same run, alternating, a bare loop does the same work (pull 256, decode the
   envelopes as plain JSON, samples grouped by series into one protobuf request, snappy,
   POST, ack, the next pull; no validation, no routing, no dead letters, no metrics): the
   exporter's rate over the bare loop's.
2. Latency: with background load on the stream, a probe device's sample is published every
   200 ms; the time from its publish to the moment Prometheus' query API returns it.

    .venv/bin/python benchmarks/exporter_bench.py --out benchmarks/results/exporter.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: where the source folders are
from tests.fixtures.sources import SOURCE_DIRS  # noqa: E402

sys.path[1:1] = [str(ROOT / folder) for folder in SOURCE_DIRS]

import aiohttp  # noqa: E402
import cramjam  # noqa: E402
import msgspec  # noqa: E402
import nats  # noqa: E402
from nats.aio.client import Client as NatsClient  # noqa: E402
from nats.js.api import ConsumerConfig  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks.history import earlier_runs, record  # noqa: E402
from flotta.bridge.outbound import MSG_ID_HEADER, to_nats  # noqa: E402
from flotta.child_process import same_code_environment, terminate  # noqa: E402
from flotta.dev.nats_server import NatsServer, free_port  # noqa: E402
from flotta.exporter.jetstream import TELEMETRY_STREAM, durable_name  # noqa: E402
from flotta.exporter.write_requests import HEADERS, WriteRequest  # noqa: E402
from flotta.schemas.codec import encode  # noqa: E402
from flotta.schemas.topics import DeviceTopic  # noqa: E402
from flotta.schemas.wire.telemetry import MetricSample, MetricsBatch  # noqa: E402
from tests.exporter.prometheus_server import PrometheusServer  # noqa: E402
from tests.exporter.support import create_streams  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "exporter.md"
BARE = "bench-bare"
FILTER = "flotta.device.*.*.metrics"


def log(text: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {text}", flush=True)


# ---- the bare loop (its own process: python exporter_bench.py --bare NATS WRITE) ----------


async def bare_loop(nats_url: str, write_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        FILTER,
        durable=BARE,
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(ack_wait=30.0, max_deliver=-1, max_ack_pending=4096),
    )
    decoder = msgspec.json.Decoder()
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            grouped: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
            for msg in msgs:
                event = decoder.decode(msg.data)
                _, _, namespace, device, _ = msg.subject.split(".")
                for sample in event["data"]["samples"]:
                    labels = {
                        "__name__": sample["name"],
                        **sample.get("labels", {}),
                        "namespace": namespace,
                        "device": device,
                    }
                    key = tuple(sorted(labels.items()))
                    grouped.setdefault(key, []).append((sample["timestampMs"], sample["value"]))
            request = WriteRequest()
            for key, points in grouped.items():
                series = request.timeseries.add()
                for name, text in key:
                    series.labels.add(name=name, value=text)
                for timestamp, value in sorted(points):
                    series.samples.add(value=value, timestamp=timestamp)
            body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
            async with session.post(write_url, data=body) as response:
                if response.status >= 300:
                    raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
            for msg in msgs:
                await msg.ack()


# ---- helpers ---------------------------------------------------------------------------


class Child:
    def __init__(self, command: list[str], log_path: Path) -> None:
        with log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=out, env=same_code_environment(), start_new_session=True
            )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        terminate(self.process, name="child")


def exporter_command(nats_url: str, write_url: str, health_port: int) -> list[str]:
    return [
        sys.executable, "-m", "flotta.cli", "exporter", "run",
        f"--nats-url={nats_url}", f"--prometheus-url={write_url}", "--device-receivers=off",
        f"--health-port={health_port}", "--log-format=json",
    ]  # fmt: skip


def bare_command(nats_url: str, write_url: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--bare", nats_url, write_url]


def batch_message(
    prefix: str,
    device: int,
    sequence: int,
    samples: int,
    series: int,
    first: int,
    step_ms: int = 1000,
) -> Any:
    """One device's batch as the bridge publishes it: ``series`` metrics sampled every
    ``step_ms`` from ``first`` (ms), ``samples`` in all."""
    steps = samples // series
    batch = MetricsBatch(
        stream="bench",
        sequence=sequence,
        samples=[
            MetricSample(
                name=f"flotta_bench_{metric}",
                labels={"workload": "bench", "container": "c"},
                value=float(step + metric),
                timestamp_ms=first + step * step_ms,
            )
            for step in range(steps)
            for metric in range(series)
        ],
    )
    return to_nats(
        namespace="bench",
        device_id=f"{prefix}-{device}",
        kind=DeviceTopic.METRICS,
        payload=batch,
        data=encode(batch),
        now=datetime.now(UTC),
    )


def batches(prefix: str, devices: int, per_device: int, samples: int, series: int) -> list[Any]:
    start = int(time.time() * 1000) - 20 * 60_000
    span = samples // series * 1000  # one batch's time range
    return [
        batch_message(prefix, device, sequence, samples, series, start + sequence * span)
        for device in range(devices)
        for sequence in range(per_device)
    ]


async def publish(nc: NatsClient, messages: list[Any]) -> None:
    js = nc.jetstream()
    before = (await js.stream_info(TELEMETRY_STREAM)).state.messages
    for message in messages:
        await nc.publish(message.subject, message.body, headers={MSG_ID_HEADER: message.msg_id})
    await nc.flush()
    while (await js.stream_info(TELEMETRY_STREAM)).state.messages < before + len(messages):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def lag(nc: NatsClient, durable: str) -> int | None:
    """What the consumer has not had acknowledged; None before the process created it."""
    try:
        info = await nc.jetstream().consumer_info(TELEMETRY_STREAM, durable)
    except nats.js.errors.NotFoundError:
        return None
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def drain_rate(nc: NatsClient, durable: str, within: float) -> float:
    """Seconds from the moment the process created its consumer to an empty consumer."""
    deadline = time.monotonic() + within
    first: float | None = None
    while time.monotonic() < deadline:
        left = await lag(nc, durable)
        now = time.monotonic()
        if left is not None and first is None:
            first = now
        if left == 0 and first is not None:
            return max(now - first, 0.001)
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{durable} did not drain in {within} s")


# ---- 1. throughput ------------------------------------------------------------------------


async def throughput(args: argparse.Namespace, nats_url: str, write_url: str, work: Path) -> Any:
    nc = await nats.connect(nats_url)
    rows = []
    try:
        for round_ in range(args.rounds):
            row: dict[str, Any] = {}
            for who in ("exporter", "bare"):
                durable = durable_name("prometheus") if who == "exporter" else BARE
                messages = batches(
                    f"{who}{round_}", args.devices, args.batches, args.samples, args.series
                )
                total = len(messages) * args.samples
                # Each process finds only its run's batches and creates its consumer.
                js = nc.jetstream()
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_consumer(TELEMETRY_STREAM, durable)
                await js.purge_stream(TELEMETRY_STREAM)
                await publish(nc, messages)
                port = free_port()
                command = (
                    exporter_command(nats_url, write_url, port)
                    if who == "exporter"
                    else bare_command(nats_url, write_url)
                )
                child = Child(command, work / f"{who}.log")
                try:
                    seconds = await drain_rate(nc, durable, 300)
                    cpu = child.cpu_seconds()
                finally:
                    child.stop()
                row[who] = {"rate": total / seconds, "cpu_us": cpu / total * 1e6, "samples": total}
                log(f"round {round_ + 1} {who}: {total / seconds:,.0f} samples/s")
            row["load"] = os.getloadavg()[0]
            rows.append(row)
    finally:
        await nc.close()
    return rows


# ---- 2. latency -------------------------------------------------------------------------


def seen_probes(base_url: str) -> set[int]:
    query = urllib.parse.urlencode(
        {"query": "flotta_bench_probe[5m]", "time": f"{time.time():.3f}"}
    )
    with urllib.request.urlopen(f"{base_url}/api/v1/query?{query}", timeout=5) as response:  # noqa: S310 - loopback
        data = msgspec.json.decode(response.read())
    return {int(float(v)) for series in data["data"]["result"] for _, v in series["values"]}


async def latency(
    args: argparse.Namespace, nats_url: str, prometheus: PrometheusServer, work: Path
) -> Any:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_consumer(TELEMETRY_STREAM, durable_name("prometheus"))
    await js.purge_stream(TELEMETRY_STREAM)  # the throughput runs' batches
    port = free_port()
    child = Child(exporter_command(nats_url, prometheus.write_url, port), work / "latency.log")
    published: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = asyncio.Event()

    async def load() -> None:
        # args.background samples a second, in batches of 100, spread over 100 devices.
        interval = 100 / args.background
        index = 0
        next_at = time.monotonic()
        devices = 100
        step = devices * 100 // args.background * 1000 // 10  # ms: each device keeps time
        ends = [int(time.time() * 1000) - 10 * step] * devices
        while not stop.is_set():
            device, sequence = index % devices, index // devices
            message = batch_message("load", device, sequence, 100, 10, ends[device], step)
            ends[device] += 10 * step
            index += 1
            await nc.publish(message.subject, message.body, headers={MSG_ID_HEADER: message.msg_id})
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def probe() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            batch = MetricsBatch(
                stream="probe",
                sequence=number,
                samples=[
                    MetricSample(
                        name="flotta_bench_probe",
                        value=float(number),
                        timestamp_ms=int(time.time() * 1000),
                    )
                ],
            )
            out = to_nats(
                namespace="bench", device_id="probe", kind=DeviceTopic.METRICS, payload=batch,
                data=encode(batch), now=datetime.now(UTC),
            )  # fmt: skip
            await nc.jetstream().publish(out.subject, out.body, headers={MSG_ID_HEADER: out.msg_id})
            published[number] = time.monotonic()
            await asyncio.sleep(0.2)

    async def poll() -> None:
        while not stop.is_set():
            for number in await asyncio.to_thread(seen_probes, prometheus.base_url):
                seen.setdefault(number, time.monotonic())
            await asyncio.sleep(0.05)

    exporter_delays: dict[float, float] = {}
    try:
        await asyncio.sleep(3.0)  # the exporter starts
        tasks = [asyncio.ensure_future(f()) for f in (load, probe, poll)]
        await asyncio.sleep(args.latency_seconds)
        stop.set()
        await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 10
        while set(published) - set(seen) and time.monotonic() < deadline:
            for number in await asyncio.to_thread(seen_probes, prometheus.base_url):
                seen.setdefault(number, time.monotonic())
            await asyncio.sleep(0.05)
        exporter_delays = await asyncio.to_thread(delivery_delays, port)
    finally:
        child.stop()
        await nc.close()
    delays = sorted(seen[n] - published[n] for n in published if n in seen)
    missing = len(set(published) - set(seen))
    return {
        "delays": delays,
        "missing": missing,
        "probes": len(published),
        "exporter": exporter_delays,
    }


def delivery_delays(port: int) -> dict[float, float]:
    """The exporter's own view (``flotta_exporter_delivery_delay_seconds``): the share of
    batches accepted within each bucket's seconds of reaching JetStream."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "flotta_exporter_delivery_delay_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] = sample.value
    total = buckets.get(float("inf"), 0.0)
    return {le: count / total for le, count in sorted(buckets.items()) if total}


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def render(args: argparse.Namespace, rows: list[Any], lat: dict[str, Any]) -> str:
    lines = [
        "# Exporter benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this machine ({os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, shared with other work); "
        "`benchmarks/exporter_bench.py` with nats-server (JetStream, file storage) and "
        "Prometheus 2.42 (Debian, `--web.enable-remote-write-receiver`, out-of-order window "
        "30m), each exporter or bare loop its own process.",
        "",
        "## 1. Throughput of one replica",
        "",
        f"{args.devices} devices x {args.batches} batches x {args.samples} samples "
        f"({args.series} series a batch) waiting in FLOTTA_TELEMETRY, drained into Prometheus; "
        "rate from the creation of its consumer to an empty consumer. Bare loop: pull 256, JSON, "
        "samples grouped by series in one protobuf request, snappy, POST, ack, next pull.",
        "",
        "| round | samples | exporter samples/s | bare samples/s | exporter / bare "
        "| exporter CPU/sample | bare CPU/sample | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, row in enumerate(rows, start=1):
        e, b = row["exporter"], row["bare"]
        lines.append(
            f"| {n} | {e['samples']:,} | {e['rate']:,.0f} | {b['rate']:,.0f} | "
            f"{e['rate'] / b['rate']:.2f} | {e['cpu_us']:.1f} us | {b['cpu_us']:.1f} us | "
            f"{row['load']:.1f} |"
        )
    delays = lat["delays"]
    lines += [
        "",
        "Goal: at least 0.7 of the bare loop, and at least 20,000 samples/s.",
        "",
        "## 2. Publish to queryable",
        "",
        f"One probe sample every 200 ms for {args.latency_seconds:.0f} s, with "
        f"{args.background:,} samples/s of other devices' batches on the stream; the time "
        "from its JetStream publish until `/api/v1/query` returns it (polled every 50 ms).",
        "",
        "| probes | p50 | p90 | p99 | max | never seen |",
        "|---|---|---|---|---|---|",
    ]
    if delays:
        lines.append(
            f"| {lat['probes']} | {percentile(delays, 0.5) * 1000:.0f} ms | "
            f"{percentile(delays, 0.9) * 1000:.0f} ms | {percentile(delays, 0.99) * 1000:.0f} ms "
            f"| {delays[-1] * 1000:.0f} ms | {lat['missing']} |"
        )
    shares = lat["exporter"]
    if shares:
        within = ", ".join(
            f"{share:.1%} within {le:g} s" for le, share in shares.items() if le in (0.5, 1, 2.5, 5)
        )
        lines += [
            "",
            "The exporter's own part (`flotta_exporter_delivery_delay_seconds`, from a batch's "
            "arrival in JetStream to the receiver's acceptance, every batch of the run): "
            f"{within}.",
        ]
    lines += ["", "Goal: p99 at most 5 s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--batches", type=int, default=20, help="per device")
    parser.add_argument("--samples", type=int, default=100, help="per batch")
    parser.add_argument("--series", type=int, default=10, help="metrics per batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--background", type=int, default=5000, help="samples/s meanwhile")
    parser.add_argument("--out", type=Path, help=f"record the results here (e.g. {RESULTS})")
    parser.add_argument("--bare", nargs=2, metavar=("NATS", "WRITE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        asyncio.run(bare_loop(*args.bare))
        return 0
    work = Path(tempfile.mkdtemp(prefix="exporter-bench-"))
    log(f"work directory {work}")
    nats_server = NatsServer(work / "jetstream", log_path=work / "nats.log")
    prometheus = PrometheusServer(work / "prometheus")
    nats_server.start()
    prometheus.start()
    try:
        asyncio.run(create_streams(nats_server.url))
        rows = asyncio.run(throughput(args, nats_server.url, prometheus.write_url, work))
        lat = asyncio.run(latency(args, nats_server.url, prometheus, work))
    finally:
        prometheus.stop()
        nats_server.stop()
    report = render(args, rows, lat)
    print(report)
    if args.out is not None:
        record(args.out, report, earlier_runs(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
