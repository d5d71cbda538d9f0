"""The stack's telemetry as an admin sees it: the real agent's sample workload scraped in its
Podman (a network namespace the agent is not in), its counter in Prometheus and its log
lines in Loki through the exporter, and the queries ``flotta dev up`` prints answering."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from flotta.dev.stack.up import LOCAL_AGENT_ID
from flotta.dev.stack.usage import telemetry_usage
from tests.e2e.conftest import RunningSystem, wait_until
from tests.e2e.test_printed_commands import printed_commands
from tests.e2e.test_real_agent import agent_converged, set_system_metrics_interval

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]


def get_json(url: str, **params: str) -> Any:
    with urllib.request.urlopen(  # noqa: S310 - the stack's loopback endpoints
        f"{url}?{urllib.parse.urlencode(params)}", timeout=10
    ) as answer:
        return json.loads(answer.read())


def test_sample_metrics_in_prometheus_and_logs_in_loki(agent_system: RunningSystem) -> None:
    system = agent_system
    endpoints = system.endpoints
    prometheus, loki = endpoints["prometheus"], endpoints["loki"]
    set_system_metrics_interval(system, 5)  # the CPU query needs two samples in its window
    wait_until(lambda: agent_converged(system), timeout=120, what="the agent to run the counter")

    def counter() -> list[dict[str, Any]]:
        answer = get_json(
            f"{prometheus}/api/v1/query", query='counter_ticks_total{workload="counter"}'
        )
        return list(answer["data"]["result"])

    (series,) = wait_until(counter, timeout=90, what="the sample's counter in Prometheus")
    assert series["metric"]["device"] == LOCAL_AGENT_ID
    assert series["metric"]["namespace"] == "default"
    assert series["metric"]["container"] == "counter"
    assert "exported_device" not in series["metric"]  # the device's labels are the exporter's

    def ticks() -> list[str]:
        answer = get_json(
            f"{loki}/loki/api/v1/query_range",
            query=f'{{workload="counter", device="{LOCAL_AGENT_ID}"}} |= "tick"',
            limit="1000",
            direction="forward",
        )
        return [line for stream in answer["data"]["result"] for _, line in stream["values"]]

    lines = wait_until(lambda: len(ticks()) >= 3 and ticks(), timeout=90, what="ticks in Loki")
    assert lines[:3] == ["tick 0", "tick 1", "tick 2"]  # from the start, in order, once

    # Every query printed for the admin answers, with what it promises.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = printed_commands(telemetry_usage(system.layout, system.layout.ports()))
    assert [argv[0] for argv in commands] == ["curl", "curl", "curl", "tail"]

    def run(argv: list[str]) -> Any:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr}"
        return json.loads(done.stdout)

    count, cpu, logs, syslog = commands
    assert run(count)["data"]["result"][0]["metric"]["workload"] == "counter"
    busy = wait_until(
        lambda: run(cpu)["data"]["result"], timeout=60, what="the device's CPU in Prometheus"
    )
    assert busy[0]["metric"] == {"device": LOCAL_AGENT_ID}
    assert 0.0 <= float(busy[0]["value"][1]) <= 100.0
    streams = run(logs)["data"]["result"]
    assert all("tick" in line for stream in streams for _, line in stream["values"])
    assert 1 <= sum(len(stream["values"]) for stream in streams) <= 5  # limit=5

    # The sample's logCollection target (kind syslog, the syslog-server ConfigMap) is the
    # stack's rsyslogd: the same lines arrive there as RFC 5424 messages.
    def syslog_ticks() -> list[str]:
        done = subprocess.run(syslog, env=env, capture_output=True, text=True, timeout=30)
        return [line for line in done.stdout.splitlines() if "tick" in line]

    received = wait_until(syslog_ticks, timeout=60, what="the sample's ticks at rsyslogd")
    assert f" {LOCAL_AGENT_ID} counter counter stdout " in received[-1]
