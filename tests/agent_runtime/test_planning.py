"""The pure planner: create, replace, remove, keep, start."""

from __future__ import annotations

from flotta.agent.runtime import RunningWorkload, WorkloadSpec, plan, spec_hash

POD = """
apiVersion: v1
kind: Pod
spec:
  containers:
  - {name: app, image: localhost/flotta/busybox:latest, command: [sleep, "100"]}
"""


def spec(name: str, pod: str = POD, **kwargs: object) -> WorkloadSpec:
    return WorkloadSpec(name=name, pod_yaml=pod, **kwargs)  # type: ignore[arg-type]


def running(
    workload: WorkloadSpec, status: str = "Running", policy: str = "Always"
) -> RunningWorkload:
    return RunningWorkload(
        workload.name, "id-" + workload.name, spec_hash(workload), status, policy
    )


def test_new_workloads_are_created_and_unknown_pods_removed() -> None:
    result = plan({"b": spec("b"), "a": spec("a")}, {"old": running(spec("old"))})
    assert result.create == ("a", "b")
    assert result.remove == ("old",)
    assert result.replace == result.keep == result.start == ()


def test_unchanged_workload_is_kept() -> None:
    web = spec("web")
    result = plan({"web": web}, {"web": running(web)})
    assert result.keep == ("web",)
    assert result.is_empty


def test_reformatted_yaml_is_the_same_specification() -> None:
    web = spec("web")
    reformatted = spec(
        "web",
        pod='{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "app",'
        ' "image": "localhost/flotta/busybox:latest", "command": ["sleep", "100"]}]}}',
    )
    assert plan({"web": reformatted}, {"web": running(web)}).keep == ("web",)


def test_any_input_change_replaces() -> None:
    web = spec("web", env={"DEVICE_ID": "d1"}, secrets={"s": {"k": b"v1"}})
    changes = [
        spec(
            "web",
            pod=POD.replace('"100"', '"200"'),
            env={"DEVICE_ID": "d1"},
            secrets={"s": {"k": b"v1"}},
        ),
        spec("web", env={"DEVICE_ID": "d2"}, secrets={"s": {"k": b"v1"}}),
        spec("web", env={"DEVICE_ID": "d1"}, secrets={"s": {"k": b"v2"}}),
        spec("web", env={"DEVICE_ID": "d1"}, secrets={"s": {"k": b"v1"}}, registry_auth="{}"),
        spec("web", env={"DEVICE_ID": "d1"}, secrets={"s": {"k": b"v1"}}, labels={"a": "b"}),
        spec(
            "web",
            env={"DEVICE_ID": "d1"},
            secrets={"s": {"k": b"v1"}},
            configmaps=["kind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"],
        ),
    ]
    for changed in changes:
        assert plan({"web": changed}, {"web": running(web)}).replace == ("web",), changed


def test_pod_without_hash_label_is_replaced() -> None:
    web = spec("web")
    foreign = RunningWorkload("web", "id", "", "Running")
    assert plan({"web": web}, {"web": foreign}).replace == ("web",)


def test_stopped_pod_with_restart_always_is_started() -> None:
    web, job, paused = spec("web"), spec("job"), spec("paused")
    result = plan(
        {"web": web, "job": job, "paused": paused},
        {
            "web": running(web, status="Exited"),
            "job": running(job, status="Exited", policy="Never"),
            "paused": running(paused, status="Running"),
        },
    )
    assert result.keep == ("job", "paused", "web")
    assert result.start == ("web",)
    assert not result.is_empty


def test_unparseable_manifest_still_plans() -> None:
    broken = spec("x", pod="{not yaml: [")
    assert plan({"x": broken}, {}).create == ("x",)
    assert plan({"x": broken}, {"x": running(broken)}).keep == ("x",)
