"""An EdgeWorkload rendered once into its device-independent wire form, or the reasons no
device can run it. Pure; assembly then shares the rendered bytes across every device.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flotta.operator.configuration import allow_list, health_gate
from flotta.operator.errors import SelectorError
from flotta.operator.selectors import Selector, compile_selector
from flotta.schemas.codec import content_document, encode_fragment
from flotta.schemas.crd.workload import EdgeWorkload
from flotta.schemas.wire.desired import ConfigMapData, DesiredWorkload, WorkloadMetricsSettings
from flotta.schemas.workload_check import (
    check_pod_spec,
    referenced_configmaps,
    referenced_secrets,
)

PODMAN_PREFIX = "podman/"
DOCKER_CONFIG_KEY = ".dockerconfigjson"

Lookup = Callable[[str], Mapping[str, str] | None]


@dataclass(frozen=True, slots=True)
class Target:
    """Which devices of the workload's namespace it selects: one by name, or a selector."""

    device: str | None
    selector: Selector | None

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.device is not None:
            return name == self.device
        return self.selector is not None and self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class RenderedWorkload:
    """A valid workload: the wire model, its JSON (field order, as the codec encodes) and its
    canonical JSON (sorted keys, as the content version hashes), computed once."""

    namespace: str
    name: str
    target: Target
    workload: DesiredWorkload
    json: str
    canonical: str
    secrets: tuple[str, ...]  # referenced Secrets that exist, sealed per device
    registry_secret: str | None  # Secret with .dockerconfigjson, sealed per device


@dataclass(frozen=True, slots=True)
class InvalidWorkload:
    namespace: str
    name: str
    problems: tuple[str, ...]

    @property
    def message(self) -> str:
        return "; ".join(self.problems)


def canonical_json(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def podman_metadata(values: Mapping[str, str]) -> dict[str, str]:
    """Only ``podman/`` labels or annotations travel to the device, prefix stripped."""
    return {
        key[len(PODMAN_PREFIX) :]: value
        for key, value in sorted(values.items())
        if key.startswith(PODMAN_PREFIX) and len(key) > len(PODMAN_PREFIX)
    }


def render_target(workload: EdgeWorkload) -> Target:
    spec = workload.spec
    if spec.device:
        return Target(spec.device, None)
    if spec.device_selector is None:
        raise SelectorError(
            "set spec.device (one device) or spec.deviceSelector (a label selector)"
        )
    return Target(None, compile_selector(spec.device_selector))


def render_workload(
    workload: EdgeWorkload,
    pod_spec: Mapping[str, Any],
    *,
    secrets: Lookup,
    configmaps: Lookup,
) -> RenderedWorkload | InvalidWorkload:
    """Render a workload; ``pod_spec`` is the manifest's pod spec as the API returned it (so
    fields the models do not know reach the device unchanged)."""
    meta = workload.metadata
    problems = [str(problem) for problem in check_pod_spec(pod_spec)]
    target: Target | None = None
    try:
        target = render_target(workload)
    except SelectorError as exc:
        problems.append(f"spec.deviceSelector: {exc}")

    present_secrets = []
    for name, optional in referenced_secrets(pod_spec):
        if secrets(name) is not None:
            present_secrets.append(name)
        elif not optional:
            problems.append(f"Secret {name!r} does not exist in namespace {meta.namespace!r}")
    configmap_data = []
    for name, optional in referenced_configmaps(pod_spec):
        data = configmaps(name)
        if data is not None:
            configmap_data.append(ConfigMapData(name=name, data=dict(sorted(data.items()))))
        elif not optional:
            problems.append(f"ConfigMap {name!r} does not exist in namespace {meta.namespace!r}")

    registry_secret = None
    registries = workload.spec.image_registries
    if registries is not None and registries.secret_ref is not None:
        registry_secret = registries.secret_ref.name
        data = secrets(registry_secret)
        if data is None:
            problems.append(f"image registry Secret {registry_secret!r} does not exist")
        elif not _is_base64(data.get(DOCKER_CONFIG_KEY, "")):
            problems.append(
                f"image registry Secret {registry_secret!r} has no valid {DOCKER_CONFIG_KEY}"
            )

    metrics = None
    if workload.spec.metrics is not None:
        spec_metrics = workload.spec.metrics
        metrics = WorkloadMetricsSettings(
            path=spec_metrics.path,
            port=spec_metrics.port,
            interval=spec_metrics.interval,
            allow_list=(
                allow_list(configmaps(spec_metrics.allow_list.name))
                if spec_metrics.allow_list
                else None
            ),
            containers={
                name: container.to_api()
                for name, container in sorted((spec_metrics.containers or {}).items())
            },
        )

    if problems or target is None:
        return InvalidWorkload(meta.namespace, meta.name, tuple(problems))
    desired = DesiredWorkload(
        name=meta.name,
        namespace=meta.namespace,
        labels=podman_metadata(meta.labels),
        annotations=podman_metadata(meta.annotations),
        pod_spec=dict(pod_spec),
        configmaps=configmap_data,
        secrets=present_secrets,
        metrics=metrics,
        log_collection=workload.spec.log_collection or "",
        data=workload.spec.data.to_api() if workload.spec.data is not None else None,
        health=health_gate(workload.spec.rollout_policy),
    )
    return RenderedWorkload(
        namespace=meta.namespace,
        name=meta.name,
        target=target,
        workload=desired,
        json=encode_fragment(desired).decode(),
        canonical=canonical_json(content_document(desired)),
        secrets=tuple(present_secrets),
        registry_secret=registry_secret,
    )


def workload_references(
    pod_spec: Mapping[str, Any], workload: EdgeWorkload
) -> tuple[set[str], set[str]]:
    """(Secrets, ConfigMaps) a workload reads, optional ones included, for the change index."""
    secret_names = {name for name, _ in referenced_secrets(pod_spec)}
    registries = workload.spec.image_registries
    if registries is not None and registries.secret_ref is not None:
        secret_names.add(registries.secret_ref.name)
    configmap_names = {name for name, _ in referenced_configmaps(pod_spec)}
    if workload.spec.metrics is not None and workload.spec.metrics.allow_list is not None:
        configmap_names.add(workload.spec.metrics.allow_list.name)
    return secret_names, configmap_names


def _is_base64(value: str) -> bool:
    try:
        return bool(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False
