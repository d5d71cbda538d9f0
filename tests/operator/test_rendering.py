from flotta.operator.rendering import InvalidWorkload, RenderedWorkload, render_workload
from tests.operator.builders import b64, pod_spec, workload

_NO_DATA: dict[str, dict[str, str]] = {}
NOTHING = _NO_DATA.get


def test_only_podman_labels_and_annotations_travel_prefix_stripped() -> None:
    model, spec = workload(
        "web",
        labels={"podman/app": "web", "team": "a", "podman/": "x"},
        annotations={"podman/io.containers.autoupdate": "registry", "note": "n"},
    )
    rendered = render_workload(model, spec, secrets=NOTHING, configmaps=NOTHING)
    assert isinstance(rendered, RenderedWorkload)
    assert rendered.workload.labels == {"app": "web"}
    assert rendered.workload.annotations == {"io.containers.autoupdate": "registry"}


def test_pod_spec_is_kept_as_given() -> None:
    spec = pod_spec(ports=[{"containerPort": 80}], securityContext={"privileged": False})
    model, raw = workload("web", pod=spec)
    rendered = render_workload(model, raw, secrets=NOTHING, configmaps=NOTHING)
    assert isinstance(rendered, RenderedWorkload)
    assert rendered.workload.pod_spec == spec


def test_probe_and_missing_secret_make_the_workload_invalid() -> None:
    spec = pod_spec(
        livenessProbe={"grpc": {"port": 9000}},
        env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}],
    )
    model, raw = workload("web", pod=spec)
    rendered = render_workload(model, raw, secrets=NOTHING, configmaps=NOTHING)
    assert isinstance(rendered, InvalidWorkload)
    assert any("gRPC probes" in p for p in rendered.problems)
    assert any("Secret 'db' does not exist" in p for p in rendered.problems)


def test_optional_missing_secret_is_skipped() -> None:
    spec = pod_spec(envFrom=[{"secretRef": {"name": "maybe", "optional": True}}])
    model, raw = workload("web", pod=spec)
    rendered = render_workload(model, raw, secrets=NOTHING, configmaps=NOTHING)
    assert isinstance(rendered, RenderedWorkload)
    assert rendered.secrets == ()


def test_configmaps_and_secrets_are_gathered() -> None:
    spec = pod_spec(
        envFrom=[{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "db"}}],
    )
    model, raw = workload("web", pod=spec)
    rendered = render_workload(
        model,
        raw,
        secrets={"db": {"pw": b64("s3cret")}}.get,
        configmaps={"settings": {"b": "2", "a": "1"}}.get,
    )
    assert isinstance(rendered, RenderedWorkload)
    assert rendered.secrets == ("db",)
    assert rendered.workload.secrets == ["db"]
    assert rendered.workload.configmaps[0].name == "settings"
    assert list(rendered.workload.configmaps[0].data) == ["a", "b"]
    assert "s3cret" not in rendered.json
    assert b64("s3cret") not in rendered.json


def test_registry_secret_needs_a_docker_config() -> None:
    model, raw = workload("web", extra_spec={"imageRegistries": {"secretRef": {"name": "pull"}}})
    rendered = render_workload(
        model, raw, secrets={"pull": {"other": "eA=="}}.get, configmaps=NOTHING
    )
    assert isinstance(rendered, InvalidWorkload)
    assert "no valid .dockerconfigjson" in rendered.message


def test_bad_selector_is_a_problem_not_a_crash() -> None:
    model, raw = workload(
        "web", selector={"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}
    )
    rendered = render_workload(model, raw, secrets=NOTHING, configmaps=NOTHING)
    assert isinstance(rendered, InvalidWorkload)
    assert "needs values" in rendered.message


def test_device_wins_over_selector() -> None:
    model, raw = workload("web", device="d7")
    rendered = render_workload(model, raw, secrets=NOTHING, configmaps=NOTHING)
    assert isinstance(rendered, RenderedWorkload)
    assert rendered.target.matches("d7", {})
    assert not rendered.target.matches("d8", {})
