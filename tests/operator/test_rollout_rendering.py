"""What the rollout fields render into the desired state: health gates and update windows;
nothing at all when they are unset (upstream manifests keep their versions)."""

from __future__ import annotations

from flotta.operator.configuration import build_configuration, configuration_source
from flotta.operator.rendering import RenderedWorkload, render_workload
from flotta.schemas.wire.desired import HealthGate, UpdateSchedule
from tests.operator.builders import device, device_set, workload


def _render(**kwargs: object) -> RenderedWorkload:
    model, pod = workload("web", selector={}, **kwargs)  # type: ignore[arg-type]
    rendered = render_workload(model, pod, secrets=lambda _n: None, configmaps=lambda _n: None)
    assert isinstance(rendered, RenderedWorkload)
    return rendered


def test_a_workload_policy_renders_its_health_gate_and_nothing_else() -> None:
    plain = _render()
    assert plain.workload.health is None
    gated = _render(
        extra_spec={
            "rolloutPolicy": {
                "batches": [{"limit": 1}],
                "healthGate": {"stabilizationSeconds": 20, "timeoutSeconds": 90},
            }
        }
    )
    assert gated.workload.health == HealthGate(stabilization_seconds=20, timeout_seconds=90)
    batches_only = _render(extra_spec={"rolloutPolicy": {"batches": [{"limit": 1}]}})
    assert batches_only.json == plain.json  # the rest of the policy is not the device's business


def test_update_schedule_and_set_health_gate_reach_the_configuration() -> None:
    member = device("d1", labels={"flotta/member-of": "night"})
    night = device_set(
        "night",
        spec={
            "updatePolicy": {
                "updateSchedule": {
                    "at": "0 2 * * *",
                    "timeZone": "Europe/Berlin",
                    "startGraceDuration": "1h30m",
                }
            },
            "rolloutPolicy": {"healthGate": {"stabilizationSeconds": 5, "timeoutSeconds": 60}},
        },
    )
    configuration = build_configuration(configuration_source(member, night), lambda _n: None)
    assert configuration.update_schedule == UpdateSchedule(
        at="0 2 * * *", time_zone="Europe/Berlin", start_grace_seconds=5400
    )
    assert configuration.health == HealthGate(stabilization_seconds=5, timeout_seconds=60)
    alone = build_configuration(configuration_source(device("d2"), None), lambda _n: None)
    assert alone.update_schedule is None
    assert alone.health == HealthGate()
