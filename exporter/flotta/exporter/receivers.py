"""Device -> the remote-write sink its metrics go to.

A :class:`ReceiverDirectory` answers which :class:`~flotta.exporter.routing.Receiver` a device
uses (:class:`DefaultReceivers`: the exporter's default for every device; the Kubernetes one,
:mod:`flotta.exporter.kube_receivers`, from the EdgeDevices and EdgeDeviceSets); equal
receivers share one :class:`~flotta.exporter.prometheus_sink.RemoteWriteSink`, so batches
of every device that uses a receiver are combined into its requests. A sink (one HTTP
connection pool) is kept for each receiver configuration seen: they are few.
"""

from __future__ import annotations

from typing import Protocol

from flotta.exporter.prometheus_sink import RemoteWriteSink
from flotta.exporter.routing import Receiver
from flotta.exporter.sink import DeviceBatch, SinksByTarget
from flotta.schemas.wire.telemetry import MetricsBatch


class ReceiverDirectory(Protocol):
    def receiver(self, namespace: str, device: str) -> Receiver: ...


class DefaultReceivers:
    def __init__(self, default: Receiver) -> None:
        self.default = default

    def receiver(self, namespace: str, device: str) -> Receiver:
        return self.default


class ReceiverSinks:
    """``select`` for the metrics delivery: the sink of the batch's device's receiver."""

    def __init__(self, directory: ReceiverDirectory) -> None:
        self.directory = directory
        self._sinks: SinksByTarget[Receiver, RemoteWriteSink] = SinksByTarget(RemoteWriteSink)

    def select(self, batch: DeviceBatch[MetricsBatch]) -> RemoteWriteSink:
        return self._sinks.get(self.directory.receiver(batch.namespace, batch.device))

    async def aclose(self) -> None:
        await self._sinks.aclose()
