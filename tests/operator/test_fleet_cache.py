from flotta.operator.fleet_cache import Fleet
from flotta.operator.rendering import InvalidWorkload
from flotta.schemas.crd.workload import EdgeWorkload
from tests.operator.builders import b64, device, device_set, pod_spec, workload, workload_obj


def fleet_of(count: int, namespace: str = "fleet", **labels: str) -> Fleet:
    fleet = Fleet()
    for i in range(count):
        fleet.apply_device(
            device(f"d{i}", namespace, labels={"site": "north" if i % 2 else "south", **labels})
        )
    return fleet


def test_selector_workload_targets_matching_devices() -> None:
    fleet = fleet_of(10)
    changes = fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "north"}}))
    north = {f"d{i}" for i in range(1, 10, 2)}
    assert fleet.targets(("fleet", "web")) == north
    assert changes.devices == {("fleet", n) for n in north}
    assert [w.name for w in fleet.workloads_of(("fleet", "d1"))] == ["web"]
    assert fleet.workloads_of(("fleet", "d0")) == []


def test_empty_selector_targets_the_whole_namespace_only() -> None:
    fleet = fleet_of(3)
    fleet.apply_device(device("other", "elsewhere"))
    fleet.apply_workload(*workload("web", selector={}))
    assert fleet.targets(("fleet", "web")) == {"d0", "d1", "d2"}


def test_label_change_affects_exactly_that_device() -> None:
    fleet = fleet_of(10)
    fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "north"}}))
    changes = fleet.apply_device(device("d0", labels={"site": "north"}))
    assert changes.devices == {("fleet", "d0")}
    assert changes.workloads == {("fleet", "web")}
    assert "d0" in fleet.targets(("fleet", "web"))


def test_status_only_change_reconciles_no_device() -> None:
    fleet = fleet_of(2)
    fleet.apply_workload(*workload("web", selector={}))
    changes = fleet.apply_device(device("d0", labels={"site": "south"}, status={"phase": "Online"}))
    assert changes.devices == set()
    assert changes.workloads == {("fleet", "web")}


def test_only_what_workload_counts_use_recounts_them() -> None:
    fleet = fleet_of(2)
    fleet.apply_workload(*workload("web", selector={}))
    running = {"appliedVersion": "v1", "workloads": [{"name": "web", "phase": "Running"}]}
    labels = {"site": "south"}
    fleet.apply_device(device("d0", labels=labels, status={"phase": "Online", **running}))
    offline = {"phase": "Offline", "lastSeenTime": "2026-01-01T00:00:00Z", **running}
    assert fleet.apply_device(device("d0", labels=labels, status=offline)).workloads == set()
    failed = {**offline, "workloads": [{"name": "web", "phase": "Failed"}]}
    changes = fleet.apply_device(device("d0", labels=labels, status=failed))
    assert changes.workloads == {("fleet", "web")}
    applied = {**failed, "appliedVersion": "v2"}
    changes = fleet.apply_device(device("d0", labels=labels, status=applied))
    assert changes.workloads == {("fleet", "web")}


def test_workload_status_write_neither_renders_nor_retargets() -> None:
    fleet = fleet_of(4)
    fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "north"}}))
    rendered = fleet.workloads[("fleet", "web")].result
    obj = workload_obj("web", selector={"matchLabels": {"site": "north"}})
    obj["status"] = {"targetedDevices": 2, "appliedDevices": 1}
    model = EdgeWorkload.model_validate(obj)
    changes = fleet.apply_workload(model, obj["spec"]["pod"]["spec"])
    assert not changes
    entry = fleet.workloads[("fleet", "web")]
    assert entry.result is rendered
    assert entry.model is model  # the status writer compares with the latest status
    assert fleet.targets(("fleet", "web")) == {"d1", "d3"}


def test_workload_annotation_change_renders_again() -> None:
    fleet = fleet_of(2)
    fleet.apply_workload(*workload("web", selector={}))
    changes = fleet.apply_workload(*workload("web", selector={}, annotations={"podman/team": "b"}))
    assert changes.devices == {("fleet", "d0"), ("fleet", "d1")}


def test_operator_workload_labels_do_not_retarget() -> None:
    fleet = fleet_of(2)
    fleet.apply_workload(*workload("web", selector={}))
    changes = fleet.apply_device(device("d0", labels={"site": "south", "workload/web": "true"}))
    assert changes.devices == set()


def test_set_change_affects_its_members() -> None:
    fleet = Fleet()
    fleet.apply_device(device("a", labels={"flotta/member-of": "north"}))
    fleet.apply_device(device("b", labels={"flotta/member-of": "north"}))
    fleet.apply_device(device("c"))
    changes = fleet.apply_set(device_set("north", spec={"heartbeat": {"periodSeconds": 5}}))
    assert changes.devices == {("fleet", "a"), ("fleet", "b")}
    assert fleet.device_set(("fleet", "a")) is not None
    assert fleet.device_set(("fleet", "c")) is None
    assert fleet.members(("fleet", "north")) == {"a", "b"}


def test_secret_change_affects_targets_of_workloads_reading_it() -> None:
    fleet = fleet_of(4)
    fleet.apply_secret("fleet", "db", {"pw": b64("1")})
    fleet.apply_workload(
        *workload(
            "web",
            selector={"matchLabels": {"site": "north"}},
            pod=pod_spec(envFrom=[{"secretRef": {"name": "db"}}]),
        )
    )
    fleet.apply_workload(*workload("other", selector={}))
    changes = fleet.apply_secret("fleet", "db", {"pw": b64("2")})
    assert changes.devices == {("fleet", "d1"), ("fleet", "d3")}
    assert fleet.apply_secret("fleet", "db", {"pw": b64("2")}).devices == set()


def test_missing_secret_invalidates_but_devices_keep_the_last_valid_render() -> None:
    fleet = fleet_of(2)
    fleet.apply_secret("fleet", "db", {"pw": b64("1")})
    fleet.apply_workload(
        *workload("web", selector={}, pod=pod_spec(envFrom=[{"secretRef": {"name": "db"}}]))
    )
    fleet.delete_secret("fleet", "db")
    entry = fleet.workloads[("fleet", "web")]
    assert isinstance(entry.result, InvalidWorkload)
    assert [w.name for w in fleet.workloads_of(("fleet", "d0"))] == ["web"]


def test_new_invalid_workload_targets_nothing_and_leaves_others() -> None:
    fleet = fleet_of(2)
    fleet.apply_workload(*workload("good", selector={}))
    changes = fleet.apply_workload(*workload("bad", selector={}, pod=pod_spec(lifecycle={})))
    assert changes.devices == set()
    assert [w.name for w in fleet.workloads_of(("fleet", "d0"))] == ["good"]


def test_deleting_a_workload_affects_its_targets() -> None:
    fleet = fleet_of(4)
    fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "south"}}))
    changes = fleet.delete_workload(("fleet", "web"))
    assert changes.devices == {("fleet", "d0"), ("fleet", "d2")}
    assert fleet.workloads_of(("fleet", "d0")) == []


def test_workload_change_touches_old_and_new_targets() -> None:
    fleet = fleet_of(4)
    fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "south"}}))
    changes = fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "north"}}))
    assert changes.devices == {("fleet", f"d{i}") for i in range(4)}


def test_deleting_a_device_removes_it_from_targets() -> None:
    fleet = fleet_of(2)
    fleet.apply_workload(*workload("web", selector={}))
    fleet.delete_device(("fleet", "d0"))
    assert fleet.targets(("fleet", "web")) == {"d1"}


def test_configmap_used_by_device_configuration_affects_that_device() -> None:
    fleet = Fleet()
    fleet.apply_device(device("a", spec={"metrics": {"system": {"allowList": {"name": "allow"}}}}))
    fleet.apply_device(device("b"))
    changes = fleet.apply_configmap("fleet", "allow", {"metrics_list.yaml": "names: [x]"})
    assert changes.devices == {("fleet", "a")}


def test_a_content_change_names_apart_the_devices_touched_by_it_alone() -> None:
    fleet = fleet_of(4)
    fleet.apply_workload(*workload("web", selector={"matchLabels": {"site": "south"}}))
    changes = fleet.apply_workload(*workload("web", selector={}, annotations={"podman/team": "b"}))
    assert changes.devices == {("fleet", f"d{i}") for i in range(4)}
    # d1 and d3 are new targets: they are reconciled whatever a rollout says
    assert changes.rendered == {("fleet", "web"): {"d0", "d2"}}
    assert changes.content_only() == {("fleet", "d0"), ("fleet", "d2")}


def test_a_device_touched_for_a_reason_of_its_own_is_not_content_only() -> None:
    fleet = Fleet()
    fleet.apply_device(device("a", spec={"metrics": {"system": {"allowList": {"name": "cm"}}}}))
    fleet.apply_device(device("b"))
    fleet.apply_configmap("fleet", "cm", {"x": "1"})
    pod = pod_spec(volumeMounts=[{"name": "c", "mountPath": "/c"}])
    pod["volumes"] = [{"name": "c", "configMap": {"name": "cm"}}]
    fleet.apply_workload(*workload("web", selector={}, pod=pod))
    # The ConfigMap changes what both devices run of the workload, and a's own configuration.
    changes = fleet.apply_configmap("fleet", "cm", {"x": "2"})
    assert changes.devices == {("fleet", "a"), ("fleet", "b")}
    assert changes.content_only() == {("fleet", "b")}
    merged = fleet.apply_device(device("b", labels={"new": "label"})) | changes
    assert merged.content_only() == set()  # b's labels changed too
