"""What a device can run: checks an EdgeWorkload's pod beyond what the CRD schema can say.

Pure; the operator reports each problem as a condition and an Event on the workload and does
not publish it. Field paths are spelled as in the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flotta.schemas.probes import pod_probes

UNSUPPORTED_CONTAINER_FIELDS = {
    "lifecycle": "lifecycle hooks are not supported on devices",
    "volumeDevices": "volumeDevices are not supported on devices",
}
SUPPORTED_VOLUME_SOURCES = ("hostPath", "configMap", "secret")
UNSUPPORTED_ENV_SOURCES = {
    "fieldRef": "fieldRef is not available on devices (DEVICE_ID is set in every container)",
    "resourceFieldRef": "resourceFieldRef is not available on devices",
}


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_pod_spec(pod_spec: Mapping[str, Any], base: str = "spec.pod.spec") -> list[Problem]:
    return list(_pod_problems(pod_spec, base))


def _pod_problems(pod_spec: Mapping[str, Any], base: str) -> Iterator[Problem]:
    containers = pod_spec.get("containers") or []
    if not containers:
        yield Problem(f"{base}.containers", "at least one container is required")
    for problem in pod_probes(pod_spec).problems:
        yield Problem(f"{base}.{problem.path}", problem.message)
    seen_names: set[str] = set()
    host_ports: dict[tuple[int, str], str] = {}
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod_spec.get(group) or []):
            path = f"{base}.{group}[{index}]"
            if not isinstance(container, Mapping):
                yield Problem(path, "must be an object")
                continue
            name = container.get("name", "")
            if name in seen_names:
                yield Problem(f"{path}.name", f"duplicate container name {name!r}")
            seen_names.add(name)
            yield from _container_problems(container, path, host_ports)
    volume_names: set[str] = set()
    for index, volume in enumerate(pod_spec.get("volumes") or []):
        path = f"{base}.volumes[{index}]"
        if not isinstance(volume, Mapping):
            yield Problem(path, "must be an object")
            continue
        volume_names.add(str(volume.get("name", "")))
        sources = [key for key in volume if key != "name"]
        unsupported = [key for key in sources if key not in SUPPORTED_VOLUME_SOURCES]
        if unsupported:
            yield Problem(
                f"{path}.{unsupported[0]}",
                "volume type is not supported on devices (use "
                + ", ".join(SUPPORTED_VOLUME_SOURCES)
                + ")",
            )
        elif not sources:
            yield Problem(
                path, "a volume needs a source (" + ", ".join(SUPPORTED_VOLUME_SOURCES) + ")"
            )
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod_spec.get(group) or []):
            if not isinstance(container, Mapping):
                continue
            for mount_index, mount in enumerate(container.get("volumeMounts") or []):
                name = mount.get("name") if isinstance(mount, Mapping) else None
                if name not in volume_names and name != "export":
                    yield Problem(
                        f"{base}.{group}[{index}].volumeMounts[{mount_index}].name",
                        f"no volume named {name!r} in spec.pod.spec.volumes",
                    )


def _container_problems(
    container: Mapping[str, Any], path: str, host_ports: dict[tuple[int, str], str]
) -> Iterator[Problem]:
    for field, message in UNSUPPORTED_CONTAINER_FIELDS.items():
        if field in container:
            yield Problem(f"{path}.{field}", message)
    for env_index, env in enumerate(container.get("env") or []):
        source = env.get("valueFrom") if isinstance(env, Mapping) else None
        if isinstance(source, Mapping):
            for field, message in UNSUPPORTED_ENV_SOURCES.items():
                if field in source:
                    yield Problem(f"{path}.env[{env_index}].valueFrom.{field}", message)
    for port_index, port in enumerate(container.get("ports") or []):
        if not isinstance(port, Mapping) or port.get("hostPort") is None:
            continue
        key = (int(port["hostPort"]), str(port.get("protocol", "TCP")))
        where = f"{path}.ports[{port_index}].hostPort"
        if key in host_ports:
            yield Problem(
                where, f"host port {key[0]}/{key[1]} is already used by {host_ports[key]}"
            )
        host_ports[key] = where


def referenced_secrets(pod_spec: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """Secrets a pod refers to, as (name, optional), in first-use order."""
    return _references(pod_spec, "secretKeyRef", "secretRef", "secret", "secretName")


def referenced_configmaps(pod_spec: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """ConfigMaps a pod refers to, as (name, optional), in first-use order."""
    return _references(pod_spec, "configMapKeyRef", "configMapRef", "configMap", "name")


def _references(
    pod_spec: Mapping[str, Any], env_key: str, env_from_key: str, volume_key: str, volume_name: str
) -> list[tuple[str, bool]]:
    found: dict[str, bool] = {}

    def add(ref: object, name_key: str) -> None:
        if isinstance(ref, Mapping) and isinstance(ref.get(name_key), str) and ref[name_key]:
            name = ref[name_key]
            found[name] = found.get(name, True) and bool(ref.get("optional", False))

    for group in ("initContainers", "containers"):
        for container in pod_spec.get(group) or []:
            if not isinstance(container, Mapping):
                continue
            for env in container.get("env") or []:
                add(((env or {}).get("valueFrom") or {}).get(env_key), "name")
            for env_from in container.get("envFrom") or []:
                add((env_from or {}).get(env_from_key), "name")
    for volume in pod_spec.get("volumes") or []:
        add((volume or {}).get(volume_key), volume_name)
    return list(found.items())
