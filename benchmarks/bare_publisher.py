"""A bare publisher of desired states, in its own process: the floor's stand-in for the operator.

    python benchmarks/bare_publisher.py --port PORT --ca CA --cert CERT --key KEY \
        --prefix simb --devices N

``simulator_bench.py`` starts it so that publishing does not share a process and an event loop
with anything else the benchmark does. It connects as the operator and publishes as the
operator does, with nothing else around it: ``flotta.mqtt``'s ``publish_callback`` (QoS 1,
retained, no future per message, as many in flight as the broker's Receive Maximum), which
publishes 1.5x as fast as a bare paho loop with its network thread
(``results/operator.md``). It answers commands, one line each, on stdin:

- ``prepare GENERATION``: encode every device's desired state of that generation (not timed);
  answers ``ready``;
- ``go``: publish them all; answers ``published SECONDS`` once the broker acknowledged every
  one.

End of input disconnects and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in ("schemas", "deploy", "."):
    sys.path.insert(0, str(ROOT / folder))

from flotta.dev.simulator.shards import device_ids  # noqa: E402
from flotta.mqtt import MqttClient, MqttError, MqttSettings, TlsFiles  # noqa: E402
from flotta.schemas.codec import encode, with_version  # noqa: E402
from flotta.schemas.topics import DeviceTopic, device_topic  # noqa: E402
from flotta.schemas.wire import (  # noqa: E402
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    HeartbeatConfiguration,
)


def desired_payload(
    device_id: str, namespace: str, generation: int, heartbeat: int
) -> tuple[str, bytes]:
    """One device's desired state of ``generation``: its version and its encoding."""
    state = with_version(
        DesiredState(
            device_id=device_id,
            namespace=namespace,
            configuration=DesiredConfiguration(
                heartbeat=HeartbeatConfiguration(period_seconds=heartbeat)
            ),
            workloads=[
                DesiredWorkload(
                    name="app",
                    namespace=namespace,
                    pod_spec={"containers": [{"name": "app", "image": f"app:{generation}"}]},
                )
            ],
        )
    )
    return state.version, encode(state)


async def publish_all(client: MqttClient, messages: list[tuple[str, bytes]]) -> float:
    """Publish every message (callbacks, no future each); seconds until the broker
    acknowledged the last one."""
    all_done = asyncio.get_running_loop().create_future()
    remaining = len(messages)
    errors: list[MqttError] = []

    def done(error: MqttError | None) -> None:
        nonlocal remaining
        if error is not None:
            errors.append(error)
        remaining -= 1
        if remaining == 0 and not all_done.done():
            all_done.set_result(None)

    start = time.perf_counter()
    for topic, payload in messages:
        client.publish_callback(topic, payload, retain=True, done=done)
    if messages:
        await all_done
    if errors:
        raise errors[0]
    return time.perf_counter() - start


async def serve(args: argparse.Namespace) -> None:
    ids = device_ids(args.prefix, args.devices)
    topics = [device_topic(device_id, DeviceTopic.DESIRED) for device_id in ids]
    settings = MqttSettings(
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        tls=TlsFiles(args.ca, args.cert, args.key, check_hostname=False),
        clean_start=True,
        session_expiry=0,
    )
    loop = asyncio.get_running_loop()
    messages: list[tuple[str, bytes]] = []
    async with MqttClient(settings) as client:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = line.split()
            if command[:1] == ["prepare"] and len(command) == 2:
                generation = int(command[1])
                messages = [
                    (topic, desired_payload(i, args.namespace, generation, args.heartbeat)[1])
                    for topic, i in zip(topics, ids, strict=True)
                ]
                answer = "ready"
            elif command == ["go"]:
                seconds = await asyncio.wait_for(publish_all(client, messages), args.timeout)
                answer = f"published {seconds:.3f}"
            else:
                answer = f"error: unknown command {line.strip()!r}"
            print(answer, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="the services listener")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="the operator's")
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--client-id", default="operator-bench")
    parser.add_argument("--prefix", required=True, help="device ids are PREFIX-00000, ...")
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--heartbeat", type=int, default=10, help="seconds, in the state")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for a publish")
    asyncio.run(serve(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
