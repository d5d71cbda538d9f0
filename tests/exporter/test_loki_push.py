"""The Loki sink's pure parts: streams and push bodies from batches, and reading Loki's
answers (the messages are Loki's own, as its distributor and ingester write them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flotta.exporter.loki_sink import (
    LokiSettings,
    Push,
    go_time_ns,
    pushes,
    streams,
    time_refused,
    timestamp_ns,
)
from flotta.exporter.retry_after import retry_after
from tests.exporter.log_batches import T0, batch, line, ticks

T0_NS = 1714979289123456000  # 2024-05-06T07:08:09.123456Z


def test_timestamps_are_the_device_times_in_nanoseconds() -> None:
    assert timestamp_ns(T0) == T0_NS
    assert timestamp_ns(datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1000


def test_one_stream_per_workload_container_and_output_with_the_metrics_label_names() -> None:
    grouped = streams(
        [
            batch(
                [
                    line("a", container="main"),
                    line("b", container="main", stream="stderr"),
                    line("c", container="side"),
                    line("note", container="", stream="system"),
                ]
            ),
            batch([line("d", container="main")], device="dev-2"),
        ]
    )
    assert list(grouped) == [
        (
            ("namespace", "site-a"),
            ("device", "dev-1"),
            ("workload", "app"),
            ("container", "main"),
            ("stream", "stdout"),
        ),
        (
            ("namespace", "site-a"),
            ("device", "dev-1"),
            ("workload", "app"),
            ("container", "main"),
            ("stream", "stderr"),
        ),
        (
            ("namespace", "site-a"),
            ("device", "dev-1"),
            ("workload", "app"),
            ("container", "side"),
            ("stream", "stdout"),
        ),
        (  # no container: the label is left out, as Loki drops empty labels anyway
            ("namespace", "site-a"),
            ("device", "dev-1"),
            ("workload", "app"),
            ("stream", "system"),
        ),
        (
            ("namespace", "site-a"),
            ("device", "dev-2"),
            ("workload", "app"),
            ("container", "main"),
            ("stream", "stdout"),
        ),
    ]


def test_a_streams_entries_go_in_time_order_and_an_instants_lines_keep_theirs() -> None:
    later, earlier = T0 + timedelta(seconds=1), T0
    grouped = streams([batch([line("b1", at=later), line("a1", at=earlier), line("b2", at=later)])])
    (entries,) = grouped.values()
    assert [text for _, text in entries] == ["a1", "b1", "b2"]


def test_pushes_are_split_at_the_size_cap_keeping_each_streams_order() -> None:
    grouped = streams([batch(ticks(30, workload="a")), batch(ticks(30, workload="b"), sequence=1)])
    requests = pushes(grouped, max_bytes=400)
    assert len(requests) > 3
    seen: dict[str, list[str]] = {"a": [], "b": []}
    for push in requests:
        body = json.loads(push.body)
        assert sum(len(s["values"]) for s in body["streams"]) == len(push.timestamps)
        assert len(push.body) < 400 + 400  # the cap counts entries; labels come on top
        for stream in body["streams"]:
            seen[stream["stream"]["workload"]] += [value[1] for value in stream["values"]]
            assert [int(v[0]) for v in stream["values"]] == sorted(
                int(v[0]) for v in stream["values"]
            )
    assert seen == {"a": [f"tick-{i}" for i in range(30)], "b": [f"tick-{i}" for i in range(30)]}


def test_a_push_body_is_lokis_json() -> None:
    (push,) = pushes(streams([batch([line("hello ✓\nworld")])]), max_bytes=1 << 20)
    assert json.loads(push.body) == {
        "streams": [
            {
                "stream": {
                    "namespace": "site-a",
                    "device": "dev-1",
                    "workload": "app",
                    "container": "main",
                    "stream": "stdout",
                },
                "values": [[str(T0_NS), "hello ✓\nworld"]],
            }
        ]
    }
    assert push.timestamps == [T0_NS]


def test_an_entry_bigger_than_the_cap_still_goes_alone() -> None:
    requests = pushes(streams([batch([line("x" * 1000), line("y")])]), max_bytes=100)
    assert [len(p.timestamps) for p in requests] == [1, 1]


def test_the_push_url_is_derived_from_the_base_url() -> None:
    assert LokiSettings("http://loki:3100").push_url == "http://loki:3100/loki/api/v1/push"
    assert LokiSettings("http://loki:3100/").push_url == "http://loki:3100/loki/api/v1/push"
    assert LokiSettings("https://x/loki/api/v1/push").push_url == "https://x/loki/api/v1/push"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06 07:08:09.123456 +0000 UTC", T0_NS),
        ("2024-05-06T07:08:09.123456Z", T0_NS),
        ("2024-05-06T09:08:09.123456+02:00", T0_NS),
        ("2024-05-06 07:08:09 +0000 UTC", T0_NS - 123456000),
        ("not a time", None),
    ],
)
def test_loki_times_are_read_in_go_and_rfc3339_spelling(text: str, expected: int | None) -> None:
    assert go_time_ns(text) == expected


PUSH = Push(b"", [T0_NS + i * 1_000_000_000 for i in range(10)])  # ten entries, 1 s apart
NOW = T0_NS + 3600 * 1_000_000_000


def refused(message: str) -> int | None:
    return time_refused(message, PUSH, now_ns=NOW, grace_ns=600 * 1_000_000_000)


def test_the_ingesters_count_of_ignored_entries_is_taken() -> None:
    message = (
        "entry with timestamp 2024-05-06 07:08:09.123456 +0000 UTC ignored, reason: 'entry too "
        'far behind\' for stream: {device="dev-1"},\n'
        "entry with timestamp 2024-05-06 07:08:10.123456 +0000 UTC ignored, reason: 'entry too "
        'far behind\' for stream: {device="dev-1"},\n'
        "total ignored: 2 out of 10"
    )
    assert refused(message) == 2
    assert refused(message.replace("entry too far behind", "entry out of order")) == 2
    newer = "user 'fake', total ignored: 3 out of 10 for stream: {device=\"dev-1\"}"
    assert refused("entry with timestamp ... 'entry too far behind ...',\n" + newer) == 3


def test_too_old_entries_are_counted_from_the_cutoff_loki_names() -> None:
    cutoff = "2024-05-06T07:08:13.500000Z"  # after the first five entries
    message = (
        "entry for stream '{device=\"dev-1\"}' has timestamp too old: 2024-05-06T07:08:09Z, "
        f"oldest acceptable timestamp is: {cutoff}"
    )
    assert refused(message) == 5
    assert refused(message + "\n" + message) == 5  # the same cutoff named twice: once


def test_without_a_cutoff_the_named_entry_bounds_the_count() -> None:
    # Loki 2.4 names the last entry it refused: those up to it were refused too
    message = (
        "entry for stream '{device=\"dev-1\"}' has timestamp too old: "
        "2024-05-06 07:08:12.123456 +0000 UTC"
    )
    assert refused(message) == 4


def test_too_new_entries_are_those_past_lokis_clock_and_grace() -> None:
    push = Push(b"", [NOW - 1, NOW + 599 * 10**9, NOW + 601 * 10**9, NOW + 7200 * 10**9])
    message = (
        "entry for stream '{device=\"d\"}' has timestamp too new: 2024-05-06 09:08:09 +0000 UTC"
    )
    assert time_refused(message, push, now_ns=NOW, grace_ns=600 * 10**9) == 2


def test_a_time_refusal_counts_at_least_one_and_at_most_all() -> None:
    assert refused("... entry too far behind ... (no count given)") == 1
    assert refused("total ignored: 50 out of 50 ... entry out of order") == 10


def test_other_refusals_are_not_about_time() -> None:
    assert refused("Max entry size '10' bytes exceeded for stream '{a=\"b\"}'") is None
    assert refused("error at least one label pair is required per stream") is None


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    assert retry_after("Mon, 06 May 2024 07:08:39 GMT", now=now) == 30.0
    assert retry_after("Mon, 06 May 2024 07:08:00 GMT", now=now) == 0.0
