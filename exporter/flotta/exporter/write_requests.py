"""Prometheus remote write 1.0 requests from device metrics batches: pure, no I/O.

A request is a ``prometheus.WriteRequest`` protobuf, compressed with snappy's block format
(the 1.0 spec: ``Content-Encoding: snappy``, ``X-Prometheus-Remote-Write-Version: 0.1.0``).

Libraries, and why:

* ``protobuf`` (Google's runtime, the upb C backend): the reference implementation of the wire
  format, maintained with every protoc release. The four messages of remote write 1.0 are
  declared below as a descriptor, so there is no generated ``_pb2`` module to keep in step
  with a protoc version, and no build step.
* ``cramjam`` (Rust bindings, wheels for every platform): snappy's block format
  (``compress_raw``), which is what remote write uses (not the framed stream format).
  ``python-snappy`` is a thin layer over cramjam since its 0.7, so cramjam is the one to take.

Labels of every series: the metric's own, then ``namespace`` and ``device`` from the NATS
subject (a device cannot name another: its own ``namespace`` or ``device`` label is kept as
``exported_namespace`` / ``exported_device``, as Prometheus does for scraped targets), and
``workload`` / ``container`` as the device set them on workload metrics. Samples keep the
device's timestamps. Samples of one series within a request share one ``TimeSeries``, sorted
by time, and the labels of each series are sorted by name, as the spec requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from flotta.exporter.sink import DeviceBatch
from flotta.schemas.wire.telemetry import MetricsBatch

CONTENT_TYPE = "application/x-protobuf"
HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "flotta-exporter",
}
NAME_LABEL = "__name__"
OWN_LABELS = ("namespace", "device")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _descriptor() -> descriptor_pb2.FileDescriptorProto:
    """``prometheus/prompb/types.proto`` and ``remote.proto``: the parts remote write 1.0 uses."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="flotta/exporter/prometheus_remote.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str, bool]) -> None:
        described = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            added = described.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL,
            )
            if type_name:
                added.type_name = type_name

    message(
        "Label",
        ("name", 1, field.TYPE_STRING, "", False),
        ("value", 2, field.TYPE_STRING, "", False),
    )
    message(
        "Sample",
        ("value", 1, field.TYPE_DOUBLE, "", False),
        ("timestamp", 2, field.TYPE_INT64, "", False),
    )
    message(
        "TimeSeries",
        ("labels", 1, field.TYPE_MESSAGE, ".prometheus.Label", True),
        ("samples", 2, field.TYPE_MESSAGE, ".prometheus.Sample", True),
    )
    message("WriteRequest", ("timeseries", 1, field.TYPE_MESSAGE, ".prometheus.TimeSeries", True))
    return proto


_pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with another prompb
_pool.Add(_descriptor())
WriteRequest: Any = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("prometheus.WriteRequest")
)

SeriesKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a request: sorted labels, and ``(timestamp_ms, value)`` sorted by time."""

    labels: SeriesKey
    samples: list[tuple[int, float]]

    def __len__(self) -> int:
        return len(self.samples)


class InvalidBatchError(ValueError):
    """A batch Prometheus would never take (an invalid label name): dead-letter it."""


def series_labels(namespace: str, device: str, name: str, labels: dict[str, str]) -> SeriesKey:
    """The labels of a sample's series, sorted by name; raises InvalidBatchError for a metric
    or label name Prometheus refuses."""
    if not METRIC_NAME.match(name):
        raise InvalidBatchError(f"metric name {name!r} is not a valid Prometheus metric name")
    merged: dict[str, str] = {}
    for key, value in labels.items():
        if not LABEL_NAME.match(key) or key.startswith("__"):
            raise InvalidBatchError(f"label name {key!r} is not a valid Prometheus label name")
        merged[f"exported_{key}" if key in OWN_LABELS else key] = value
    merged[NAME_LABEL] = name
    merged["namespace"] = namespace
    merged["device"] = device
    return tuple(sorted(merged.items()))


def series_of(batches: Iterable[DeviceBatch[MetricsBatch]]) -> list[Series]:
    """The batches' samples grouped by series (in order of first appearance), each series'
    samples sorted by time."""
    grouped: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], Series] = {}
    for item in batches:
        namespace, device = item.namespace, item.device
        for sample in item.batch.samples:
            key = (namespace, device, sample.name, tuple(sample.labels.items()))
            series = grouped.get(key)
            if series is None:
                labels = series_labels(namespace, device, sample.name, sample.labels)
                series = grouped[key] = Series(labels, [])
            series.samples.append((sample.timestamp_ms, sample.value))
    result = list(grouped.values())
    for series in result:
        series.samples.sort(key=_time)
    return result


def _time(sample: tuple[int, float]) -> int:
    return sample[0]


def encode(series: Sequence[Series]) -> bytes:
    """The snappy-compressed ``WriteRequest`` body."""
    request = WriteRequest()
    add_series = request.timeseries.add
    for one in series:
        timeseries = add_series()
        add_label = timeseries.labels.add
        for name, text in one.labels:
            add_label(name=name, value=text)
        add_sample = timeseries.samples.add
        for timestamp, value in one.samples:
            add_sample(value=value, timestamp=timestamp)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def decode(body: bytes) -> list[Series]:
    """A request body back into series (tests, and the benchmark's receiver)."""
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return [
        Series(
            tuple((label.name, label.value) for label in ts.labels),
            [(sample.timestamp, sample.value) for sample in ts.samples],
        )
        for ts in request.timeseries
    ]


def chunks(series: Sequence[Series], limit: int) -> list[list[Series]]:
    """The series cut into requests of at most ``limit`` samples (a series longer than the
    limit is cut too, keeping its time order)."""
    result: list[list[Series]] = []
    current: list[Series] = []
    size = 0
    for one in series:
        samples = one.samples
        while samples:
            room = limit - size
            if room <= 0:
                result.append(current)
                current, size = [], 0
                room = limit
            taken = samples[:room]
            samples = samples[room:]
            current.append(
                one if not samples and len(taken) == len(one) else Series(one.labels, taken)
            )
            size += len(taken)
    if current:
        result.append(current)
    return result


def sample_count(series: Iterable[Series]) -> int:
    return sum(len(one.samples) for one in series)
