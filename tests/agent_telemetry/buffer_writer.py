"""A separate process that writes to a telemetry buffer until it is killed (for power-cut
tests). ``insert PATH N``: transactions of N records, each line printed after its commit.
``mid PATH``: commits one transaction, then stops inside a second one until killed.
``form PATH``: forms a metrics batch, prints its sequence and SHA-256, then waits (a publish
in flight) until killed."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from flotta.agent.telemetry.batching import Kind, record_body
from flotta.agent.telemetry.buffer import TelemetryBuffer
from flotta.schemas.wire import MetricSample


def sample(transaction: int, index: int) -> bytes:
    return record_body(
        MetricSample(
            name="writer_record",
            labels={"tx": str(transaction), "i": str(index)},
            value=float(index),
            timestamp_ms=transaction,
        )
    )


def main() -> None:
    mode, path = sys.argv[1], Path(sys.argv[2])
    buffer = TelemetryBuffer(path, max_bytes=1 << 30)
    if mode == "insert":
        size = int(sys.argv[3])
        transaction = 0
        while True:
            buffer.add(Kind.METRICS, [sample(transaction, i) for i in range(size)])
            print(f"committed {transaction}", flush=True)
            transaction += 1
    elif mode == "mid":
        buffer.add(Kind.METRICS, [sample(0, i) for i in range(10)])
        with buffer._transaction() as db:  # the body of add(), stopped before its commit
            db.executemany(
                "INSERT INTO records (kind, created_ms, body) VALUES ('metrics', 0, ?)",
                [(sample(1, i),) for i in range(10)],
            )
            print("inside", flush=True)
            time.sleep(3600)
    elif mode == "form":
        batch = buffer.next_batch(Kind.METRICS)
        assert batch is not None
        digest = hashlib.sha256(batch.payload).hexdigest()
        print(f"in flight {batch.sequence} {digest}", flush=True)
        time.sleep(3600)


if __name__ == "__main__":
    main()
