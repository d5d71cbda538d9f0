"""Probes as devices run them: parsed from a pod spec, with what cannot run named by path."""

from typing import Any

import pytest

from flotta.schemas.probes import Exec, HttpGet, Probe, TcpSocket, pod_probes


def spec(**container: Any) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": "x", **container}]}


def test_defaults_are_the_kubernetes_ones() -> None:
    found = pod_probes(spec(livenessProbe={"exec": {"command": ["true"]}}))
    assert found.problems == ()
    assert found.probes == (Probe("app", "liveness", Exec(("true",))),)
    probe = found.probes[0]
    assert (probe.initial_delay, probe.period, probe.timeout) == (0, 10, 1)
    assert (probe.success_threshold, probe.failure_threshold) == (1, 3)
    assert found.by_container == {"app": found.probes}


def test_every_action_and_timing_is_read() -> None:
    found = pod_probes(
        spec(
            ports=[{"name": "web", "containerPort": 8080}],
            startupProbe={"tcpSocket": {"port": "web", "host": "localhost"}, "periodSeconds": 2},
            readinessProbe={
                "httpGet": {
                    "path": "ready",
                    "port": "8081",
                    "httpHeaders": [{"name": "X-Probe", "value": "yes"}],
                },
                "initialDelaySeconds": 3,
                "timeoutSeconds": 4,
                "successThreshold": 2,
                "failureThreshold": 5,
                "terminationGracePeriodSeconds": 9,  # accepted, ignored
            },
        )
    )
    assert found.problems == ()
    startup, readiness = found.probes
    assert startup == Probe("app", "startup", TcpSocket(8080, "127.0.0.1"), period=2)
    assert readiness == Probe(
        "app",
        "readiness",
        HttpGet(8081, "/ready", "", (("X-Probe", "yes"),)),
        initial_delay=3,
        timeout=4,
        success_threshold=2,
        failure_threshold=5,
    )
    assert str(readiness) == "readiness probe (HTTP GET :8081/ready)"


@pytest.mark.parametrize(
    ("probe", "path", "words"),
    [
        ({"grpc": {"port": 1}}, "livenessProbe.grpc", "gRPC"),
        ({}, "livenessProbe", "exactly one of"),
        ({"exec": {"command": ["a"]}, "tcpSocket": {"port": 1}}, "livenessProbe", "exactly one"),
        ({"exec": {"command": "true"}}, "livenessProbe.exec.command", "list of strings"),
        ({"httpGet": {"port": 80, "scheme": "HTTPS"}}, "livenessProbe.httpGet.scheme", "HTTP"),
        ({"httpGet": {"port": "nope"}}, "livenessProbe.httpGet.port", "no port named 'nope'"),
        ({"tcpSocket": {"port": 70000}}, "livenessProbe.tcpSocket.port", "not a port number"),
        ({"tcpSocket": {"port": 1, "host": "db.local"}}, "livenessProbe.tcpSocket.host", "IP"),
        (
            {"httpGet": {"port": 1, "httpHeaders": [{"name": "A", "value": "x\r\nB: y"}]}},
            "livenessProbe.httpGet.httpHeaders[0].value",
            "one line",
        ),
        ({"exec": {"command": ["a"]}, "periodSeconds": 0}, "livenessProbe.periodSeconds", "1"),
        ({"exec": {"command": ["a"]}, "timeoutSeconds": True}, "livenessProbe.timeoutSeconds", ""),
        ({"exec": {"command": ["a"]}, "successThreshold": 2}, "livenessProbe.successThreshold", ""),
        ("yes", "livenessProbe", "object"),
    ],
)
def test_what_cannot_run_is_named_by_path(probe: Any, path: str, words: str) -> None:
    found = pod_probes(spec(livenessProbe=probe))
    assert found.probes == ()
    [problem] = found.problems
    assert problem.path == f"containers[0].{path}"
    assert words in problem.message


def test_init_containers_have_no_probes_and_other_containers_keep_theirs() -> None:
    pod = spec(readinessProbe={"tcpSocket": {"port": 80}})
    pod["initContainers"] = [{"name": "init", "livenessProbe": {"exec": {"command": ["a"]}}}]
    found = pod_probes(pod)
    assert [str(p) for p in found.problems] == [
        "initContainers[0].livenessProbe: init containers have none"
    ]
    assert [p.kind for p in found.probes] == ["readiness"]


def test_the_crd_refuses_grpc_probes_on_a_real_cluster() -> None:
    from flotta.dev.kubeapi.cel import check  # the local API's CEL, cel-python
    from flotta.schemas.crd.registry import kind_spec

    [rule] = [r for r in kind_spec("EdgeWorkload").rules if "grpc" in r.rule]
    assert rule.path == ("spec", "pod", "spec", "containers", "items")
    ok = {"name": "app", "livenessProbe": {"tcpSocket": {"port": 80}}}
    assert check(rule.rule, ok) is True
    assert check(rule.rule, {"name": "app"}) is True
    assert check(rule.rule, {"name": "app", "startupProbe": {"grpc": {"port": 9}}}) is False
