"""The exporter's pure parts, without any server: remote-write encoding, how a receiver's
answer is read, which receiver a device uses, and what a JetStream message decodes to."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import cramjam
import pytest

from flotta.exporter import write_requests
from flotta.exporter.envelopes import EnvelopeDecoder, UndeliverableError
from flotta.exporter.prometheus_sink import Answer, classify
from flotta.exporter.routing import Receiver, choose_receiver
from flotta.exporter.sink import DeviceBatch, SinksByTarget
from flotta.exporter.write_requests import InvalidBatchError, Series
from flotta.schemas.wire.telemetry import LogsBatch, MetricSample, MetricsBatch

DEFAULT = Receiver(url="http://default:9090/api/v1/write")


def batch(
    device: str = "d1",
    samples: list[MetricSample] | None = None,
    namespace: str = "ns",
    sequence: int = 1,
) -> DeviceBatch[MetricsBatch]:
    samples = samples or [MetricSample(name="up", value=1.0, timestamp_ms=1000)]
    return DeviceBatch(
        namespace, device, sequence, MetricsBatch(stream="s", sequence=sequence, samples=samples)
    )


# ---- write requests --------------------------------------------------------------------------


def test_labels_carry_namespace_device_and_the_metric_s_own_sorted() -> None:
    sample = MetricSample(
        name="requests_total",
        labels={"workload": "web", "container": "nginx", "code": "200"},
        value=3.0,
        timestamp_ms=1_700_000_000_000,
    )
    (series,) = write_requests.series_of([batch(samples=[sample])])
    assert series.labels == (
        ("__name__", "requests_total"),
        ("code", "200"),
        ("container", "nginx"),
        ("device", "d1"),
        ("namespace", "ns"),
        ("workload", "web"),
    )
    assert series.samples == [(1_700_000_000_000, 3.0)]


def test_a_device_cannot_name_another_device_or_namespace() -> None:
    sample = MetricSample(
        name="up", labels={"device": "other", "namespace": "kube-system"}, value=1, timestamp_ms=1
    )
    (series,) = write_requests.series_of([batch(samples=[sample])])
    labels = dict(series.labels)
    assert (labels["device"], labels["namespace"]) == ("d1", "ns")
    assert (labels["exported_device"], labels["exported_namespace"]) == ("other", "kube-system")


@pytest.mark.parametrize("name", ["bad-name", "__reserved", "0digit", "dotted.name"])
def test_an_invalid_label_name_makes_the_batch_invalid(name: str) -> None:
    sample = MetricSample(name="up", labels={name: "x"}, value=1, timestamp_ms=1)
    with pytest.raises(InvalidBatchError, match="label name"):
        write_requests.series_of([batch(samples=[sample])])


@pytest.mark.parametrize("name", ["bad-name", "0digit", "dotted.name", ""])
def test_an_invalid_metric_name_makes_the_batch_invalid(name: str) -> None:
    # Metrics envelopes are read with types only (the bridge checked the contract), so the
    # names Prometheus needs are checked when the request is built.
    sample = MetricSample(name=name, value=1, timestamp_ms=1)
    with pytest.raises(InvalidBatchError, match="metric name"):
        write_requests.series_of([batch(samples=[sample])])


def test_samples_of_one_series_share_a_timeseries_in_time_order_across_batches() -> None:
    first = batch(
        samples=[
            MetricSample(name="up", value=2, timestamp_ms=2000),
            MetricSample(name="up", value=1, timestamp_ms=1000),
        ]
    )
    second = batch(samples=[MetricSample(name="up", value=3, timestamp_ms=3000)], sequence=2)
    other = batch(device="d2", samples=[MetricSample(name="up", value=9, timestamp_ms=1500)])
    series = write_requests.series_of([first, second, other])
    assert [s.samples for s in series] == [[(1000, 1.0), (2000, 2.0), (3000, 3.0)], [(1500, 9.0)]]


def test_a_request_round_trips_through_protobuf_and_snappy() -> None:
    series = [
        Series((("__name__", "a"), ("device", "d")), [(1, 1.5), (2, -2.0)]),
        Series((("__name__", "b"),), [(3, 0.0)]),
    ]
    body = write_requests.encode(series)
    assert write_requests.decode(body) == series
    # Snappy's block format (what remote write 1.0 uses), not the framed stream format.
    assert bytes(cramjam.snappy.decompress_raw(body))


def test_chunks_hold_at_most_the_limit_and_keep_every_sample_in_order() -> None:
    long = Series((("__name__", "a"),), [(t, float(t)) for t in range(7)])
    short = Series((("__name__", "b"),), [(1, 1.0), (2, 2.0)])
    chunks = write_requests.chunks([long, short], 3)
    assert [write_requests.sample_count(c) for c in chunks] == [3, 3, 3]
    flattened = [(s.labels, sample) for chunk in chunks for s in chunk for sample in s.samples]
    assert flattened == [(long.labels, x) for x in long.samples] + [
        (short.labels, x) for x in short.samples
    ]


# ---- a receiver's answer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (204, "", "ok"),
        (200, "", "ok"),
        (400, "out of order sample", "too_old"),
        (400, "out of bounds", "too_old"),
        (400, "duplicate sample for timestamp", "too_old"),
        (500, "too old sample\n", "too_old"),  # Prometheus 2.42 with an out-of-order window
        (500, "internal error", "retry"),
        (503, "", "retry"),
        (429, "slow down", "retry"),
        (400, "snappy: corrupt input", "refused"),
        (401, "", "refused"),
        (404, "not found", "refused"),
        (413, "", "refused"),
    ],
)
def test_answers_are_read_as_the_spec_and_prometheus_mean_them(
    status: int, body: str, kind: str
) -> None:
    assert classify(status, body).kind == kind


def test_retry_after_in_seconds_is_kept() -> None:
    assert classify(429, "", "7") == Answer("retry", "HTTP 429", 7.0)
    assert classify(503, "", "Wed, 21 Oct 2015 07:28:00 GMT").after is None


# ---- routing -----------------------------------------------------------------------------


def no_ca(namespace: str, name: str) -> str | None:
    return None


def with_receiver(url: str, **more: object) -> dict[str, object]:
    return {"receiverConfiguration": {"url": url, **more}}


def test_no_receiver_configuration_means_the_default() -> None:
    assert choose_receiver("ns", None, None, False, default=DEFAULT, ca=no_ca) is DEFAULT
    assert choose_receiver("ns", {"system": {}}, None, False, default=DEFAULT, ca=no_ca) is DEFAULT
    assert (
        choose_receiver("ns", with_receiver(""), None, False, default=DEFAULT, ca=no_ca) is DEFAULT
    )


def test_the_device_s_receiver_with_upstream_fields() -> None:
    device = with_receiver("https://r:9090/api/v1/write", requestNumSamples=500, timeoutSeconds=3)
    receiver = choose_receiver("ns", device, None, False, default=DEFAULT, ca=no_ca)
    assert receiver == Receiver("https://r:9090/api/v1/write", 500, 3.0)


def test_an_existing_set_wins_as_a_whole_even_without_a_receiver() -> None:
    device = with_receiver("http://device")
    assert (
        choose_receiver(
            "ns", device, with_receiver("http://set"), True, default=DEFAULT, ca=no_ca
        ).url
        == "http://set"
    )
    # The set exists but says nothing about a receiver: defaults, not the device's.
    assert choose_receiver("ns", device, {}, True, default=DEFAULT, ca=no_ca) is DEFAULT
    # The set named by the label does not exist: the device's own section.
    assert (
        choose_receiver("ns", device, None, False, default=DEFAULT, ca=no_ca).url == "http://device"
    )


def test_the_ca_comes_from_the_secret_of_the_device_s_namespace() -> None:
    asked: list[tuple[str, str]] = []

    def lookup(namespace: str, name: str) -> str | None:
        asked.append((namespace, name))
        return "PEM" if name == "ca" else None

    found = choose_receiver(
        "ns", with_receiver("https://r", caSecretName="ca"), None, False, default=DEFAULT, ca=lookup
    )
    assert (found.ca_pem, found.unavailable) == ("PEM", None)
    missing = choose_receiver(
        "ns",
        with_receiver("https://r", caSecretName="gone"),
        None,
        False,
        default=DEFAULT,
        ca=lookup,
    )
    assert missing.ca_pem is None
    assert missing.unavailable is not None
    assert "ns/gone" in missing.unavailable
    assert asked == [("ns", "ca"), ("ns", "gone")]


# ---- envelopes -----------------------------------------------------------------------------


def envelope(
    data: object, *, source: str = "/flotta/namespaces/ns/devices/d1", kind: str = "metrics"
) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "d1:metrics:s:1",
            "source": source,
            "type": f"io.flotta.device.{kind}.v1",
            "subject": "d1",
            "time": "2026-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


GOOD = {
    "schemaVersion": 1,
    "stream": "s",
    "sequence": 1,
    "samples": [{"name": "up", "value": 1, "timestampMs": 5}],
}


def test_an_envelope_decodes_to_the_device_s_batch() -> None:
    decoded = EnvelopeDecoder(MetricsBatch).decode(
        "flotta.device.ns.d1.metrics", envelope(GOOD), 42
    )
    assert (decoded.namespace, decoded.device, decoded.stream_sequence) == ("ns", "d1", 42)
    (sample,) = decoded.batch.samples
    assert (sample.name, sample.labels, sample.value, sample.timestamp_ms) == ("up", {}, 1.0, 5)
    assert decoded.message_id == "d1:metrics:s:1"


@pytest.mark.parametrize(
    ("subject", "data", "reason"),
    [
        ("flotta.device.ns.d1.metrics", b"", "not JSON"),
        ("flotta.device.ns.d1.metrics", b"[1]", "invalid"),
        ("flotta.device.ns.d1.metrics", envelope({**GOOD, "schemaVersion": 2}), "invalid"),
        ("flotta.device.ns.d1.metrics", envelope({**GOOD, "samples": [{"name": "up"}]}), "invalid"),
        ("flotta.device.ns.d1.metrics", envelope(GOOD, kind="logs"), "CloudEvent type"),
        (
            "flotta.device.ns.d1.metrics",
            envelope(GOOD, source="/flotta/namespaces/ns/devices/d2"),
            "source",
        ),
        ("flotta.device.ns.d1.logs", envelope(GOOD), "carries logs"),
        ("flotta.device.NS.d1.metrics", envelope(GOOD), "DNS-1123"),
        ("not.a.subject", envelope(GOOD), "not a device subject"),
    ],
)
def test_what_is_no_batch_is_undeliverable_with_a_reason(
    subject: str, data: bytes, reason: str
) -> None:
    with pytest.raises(UndeliverableError, match=reason):
        EnvelopeDecoder(MetricsBatch).decode(subject, data, 1)


def test_logs_envelopes_decode_to_logs_batches() -> None:
    data = {
        "schemaVersion": 1,
        "stream": "s",
        "sequence": 3,
        "lines": [{"workload": "w", "time": "2026-01-01T00:00:00Z", "line": "hello"}],
    }
    decoded = EnvelopeDecoder(LogsBatch).decode(
        "flotta.device.ns.d1.logs", envelope(data, kind="logs"), 7
    )
    assert decoded.batch.lines[0].line == "hello"


# ---- syslog routing --------------------------------------------------------------------


def test_a_workload_s_syslog_config_map_comes_from_the_entry_in_effect() -> None:
    from flotta.exporter.routing import syslog_config_map

    device = {"remote": {"kind": "syslog", "syslogConfig": {"name": "device-syslog"}}}
    in_set = {"remote": {"kind": "syslog", "syslogConfig": {"name": "set-syslog"}}}
    assert syslog_config_map("remote", device, None, False) == "device-syslog"
    assert syslog_config_map("remote", device, in_set, True) == "set-syslog"
    assert syslog_config_map("remote", device, {}, True) is None  # the set has no such entry
    assert syslog_config_map(None, device, None, False) is None  # the workload names none
    assert syslog_config_map("other", device, None, False) is None
    mqtt = {"remote": {"kind": "mqtt", "syslogConfig": {"name": "x"}}}
    assert syslog_config_map("remote", mqtt, None, False) is None
    assert syslog_config_map("remote", {"remote": {"kind": "syslog"}}, None, False) is None


def test_retry_after_fractions_negatives_and_non_numbers() -> None:
    assert classify(503, "", "1.5").after == 1.5
    assert classify(503, "", "-3").after is None  # 0: the backoff decides
    assert classify(503, "", "inf").after is None
    assert classify(503, "", "nan").after is None
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    after = classify(503, "", future).after
    assert after is not None
    assert 100 < after <= 120


async def test_one_sink_per_target_made_once_and_all_closed() -> None:
    closed: list[str] = []

    class Named:
        def __init__(self, target: str) -> None:
            self.target = target

        async def aclose(self) -> None:
            closed.append(self.target)

    sinks: SinksByTarget[str, Named] = SinksByTarget(Named)
    first = sinks.get("a")
    assert sinks.get("a") is first
    assert sinks.get("b") is not first
    await sinks.aclose()
    assert sorted(closed) == ["a", "b"]
    assert sinks.get("a") is not first  # made again after closing
