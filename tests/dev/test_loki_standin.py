"""The stack's Loki stand-in: the LogQL subset it serves, and the store a restart reads."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from flotta.dev.loki import LogQuery, LokiStandIn, parse_query
from flotta.dev.prometheus import config_text


def test_logql_selectors_and_line_filters() -> None:
    query = parse_query('{workload="counter", device="d\\"1"} |= "tick" != "tick 1"')
    assert query == LogQuery({"workload": "counter", "device": 'd"1'}, ("tick",), ("tick 1",))
    assert query.keeps("tick 2")
    assert not query.keeps("tick 10")
    assert not query.keeps("tock")
    for bad in ('workload="x"', '{workload=~"x.*"}', '{a="b"} |~ "t.*"', 'rate({a="b"}[1m])'):
        with pytest.raises(ValueError, match="parse error"):
            parse_query(bad)


async def test_pushed_lines_are_queried_and_kept_across_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "entries.jsonl"
    first = LokiStandIn(store=store)
    await first.start()
    now = time.time_ns()
    push = {
        "streams": [
            {
                "stream": {"workload": "counter", "device": "d1"},
                "values": [[str(now - 2000), "tick 0"], [str(now - 1000), "noise"]],
            }
        ]
    }
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{first.url}/loki/api/v1/push", json=push) as answer,
        ):
            assert answer.status == 204
    finally:
        await first.stop()

    second = LokiStandIn(port=first.port, store=store)  # the same port, state from the store
    await second.start()
    try:
        async with aiohttp.ClientSession() as http:
            params = {"query": '{device="d1"} |= "tick"'}
            async with http.get(f"{second.url}/loki/api/v1/query", params=params) as answer:
                document = await answer.json()
            async with http.get(f"{second.url}/loki/api/v1/label/workload/values") as answer:
                values = await answer.json()
    finally:
        await second.stop()
    ((stream,),) = [document["data"]["result"]]
    assert stream["values"] == [[str(now - 2000), "tick 0"]]
    assert values["data"] == ["counter"]


def test_prometheus_configuration_takes_late_samples_and_scrapes_the_stack() -> None:
    text = config_text({"flotta-exporter": "127.0.0.1:9"})
    assert "out_of_order_time_window: 7d" in text
    assert "      - targets: ['127.0.0.1:9']" in text
