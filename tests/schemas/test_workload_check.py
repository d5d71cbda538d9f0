from typing import Any

from flotta.schemas.workload_check import check_pod_spec, referenced_configmaps, referenced_secrets


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **extra}


def test_a_runnable_pod_has_no_problems() -> None:
    spec = {
        "containers": [
            container(
                ports=[{"containerPort": 80}], volumeMounts=[{"name": "data", "mountPath": "/d"}]
            )
        ],
        "volumes": [{"name": "data", "hostPath": {"path": "/var/data"}}],
    }
    assert check_pod_spec(spec) == []


def test_probes_a_device_runs_are_fine() -> None:
    probed = container(
        ports=[{"name": "http", "containerPort": 8080}],
        startupProbe={"exec": {"command": ["cat", "/tmp/started"]}, "failureThreshold": 30},
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "successThreshold": 2},
        livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 5},
    )
    assert check_pod_spec({"containers": [probed]}) == []


def test_container_ports_without_host_port_are_fine() -> None:
    assert check_pod_spec({"containers": [container(ports=[{"containerPort": 8080}])]}) == []


def test_unsupported_fields_are_named_by_path() -> None:
    spec = {
        "containers": [
            container(livenessProbe={"exec": {}}, readinessProbe={"grpc": {"port": 9}}),
            {"name": "c", "image": "x", "env": [{"name": "N", "valueFrom": {"fieldRef": {}}}]},
        ],
        "volumes": [{"name": "pvc", "persistentVolumeClaim": {"claimName": "x"}}],
    }
    problems = [str(p) for p in check_pod_spec(spec)]
    assert (
        "spec.pod.spec.containers[0].livenessProbe.exec.command: "
        "must be a non-empty list of strings" in problems
    )
    assert any(p.startswith("spec.pod.spec.containers[0].readinessProbe.grpc") for p in problems)
    assert any(
        p.startswith("spec.pod.spec.containers[1].name: duplicate container name") for p in problems
    )
    assert any(
        p.startswith("spec.pod.spec.containers[1].env[0].valueFrom.fieldRef") for p in problems
    )
    assert any(p.startswith("spec.pod.spec.volumes[0].persistentVolumeClaim") for p in problems)


def test_clashing_host_ports_and_unknown_volume_mounts() -> None:
    spec = {
        "containers": [
            container(ports=[{"containerPort": 80, "hostPort": 8080}]),
            {"name": "d", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]},
            {"name": "e", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]},
        ]
    }
    problems = [str(p) for p in check_pod_spec(spec)]
    assert any("host port 8080/TCP is already used" in p for p in problems)
    assert any("no volume named 'missing'" in p for p in problems)


def test_references_are_collected_with_optionality() -> None:
    spec = {
        "containers": [
            container(
                env=[
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {
                        "name": "B",
                        "valueFrom": {
                            "configMapKeyRef": {"name": "cfg", "key": "k", "optional": True}
                        },
                    },
                ],
                envFrom=[{"secretRef": {"name": "extra", "optional": True}}],
            )
        ],
        "volumes": [
            {"name": "s", "secret": {"secretName": "db"}},
            {"name": "c", "configMap": {"name": "files"}},
        ],
    }
    assert referenced_secrets(spec) == [("db", False), ("extra", True)]
    assert referenced_configmaps(spec) == [("cfg", True), ("files", False)]
