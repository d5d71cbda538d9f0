"""Turn a ``WorkloadSpec`` into what Podman 4.3's ``kube play`` runs correctly. Pure.

What it changes, and why:

- ``metadata``: the pod is named after the workload and labelled with the workload name, the
  specification hash, the restart policy and the stop timeout (Podman ignores
  ``terminationGracePeriodSeconds``; the runtime stops pods with it).
- ``env`` of every container gets the injected variables (``DEVICE_ID`` ...), replacing
  same-named entries.
- ``ports`` without ``hostPort`` are dropped: Podman 4.3 would publish them on the host
  (hostPort = containerPort), so two workloads exposing the same port would collide. Inside
  the pod they stay reachable on the pod's address anyway.
- Secrets used in ``env``/``envFrom`` become Podman secrets named per workload (``flotta__``
  + workload + ``__`` + secret), in the format 4.3 reads (a JSON map key -> base64 value).
- ``secret`` and ``configMap`` volumes become read-only ``hostPath`` volumes of files the
  runtime writes per workload: 4.3 crashes on secret volumes, and keeps configMap volumes as
  named volumes shared by name across pods and never refreshed.
- an ``export`` hostPath volume (the workload's export dir) is mounted at ``/export``.
- probes are removed: the agent's health gate runs them (:mod:`flotta.agent.probing`).
  Podman 4.3 ignores ``startupProbe`` and ``readinessProbe``, and makes of a
  ``livenessProbe`` a health check that restarts the container when it fails, run by
  ``/bin/sh`` (the exec command joined with spaces) with ``curl`` for ``httpGet`` (a named
  port becomes 0, headers are dropped) and ``nc -z`` for ``tcpSocket``, which images often
  lack.
ConfigMap documents are passed along, so ``configMapKeyRef``/``configMapRef`` work as usual.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flotta.agent.runtime.errors import InvalidManifestError
from flotta.agent.runtime.spec import (
    RESTART_POLICY_LABEL,
    SPEC_HASH_LABEL,
    STOP_TIMEOUT_LABEL,
    WORKLOAD_LABEL,
    WORKLOAD_NAME,
    WorkloadSpec,
    spec_hash,
)

EXPORT_VOLUME = "export"
EXPORT_MOUNT_PATH = "/export"
DEFAULT_STOP_TIMEOUT = 10
MAX_STOP_TIMEOUT = 600
DEFAULT_FILE_MODE = 0o644
SECRET_PREFIX = "flotta__"  # noqa: S105 (a name prefix)
MAX_SECRET_NAME = 253
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PodmanSecret:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ProjectedFile:
    path: Path
    data: bytes
    mode: int


@dataclass(frozen=True)
class RenderedWorkload:
    """Everything the runtime hands to Podman and writes to disk for one workload."""

    name: str
    kube_yaml: str
    spec_hash: str
    restart_policy: str
    stop_timeout: int
    files_dir: Path
    secrets: tuple[PodmanSecret, ...] = ()
    files: tuple[ProjectedFile, ...] = ()
    directories: tuple[Path, ...] = ()


def secret_prefix(workload: str) -> str:
    """Prefix of every Podman secret that belongs to ``workload``."""
    return f"{SECRET_PREFIX}{workload}__"


def podman_secret_name(workload: str, secret: str) -> str:
    name = secret_prefix(workload) + secret
    if len(name) <= MAX_SECRET_NAME:
        return name
    return secret_prefix(workload) + hashlib.sha256(secret.encode()).hexdigest()[:32]


def render(spec: WorkloadSpec, *, files_root: Path) -> RenderedWorkload:
    """The kube YAML, Podman secrets and files for ``spec``; files live under
    ``files_root / spec.name``."""
    _Renderer.check_name(spec.name)
    return _Renderer(spec, files_root / spec.name).render()


class _Renderer:
    def __init__(self, spec: WorkloadSpec, files_dir: Path) -> None:
        self.spec = spec
        self.files_dir = files_dir
        self.secrets: dict[str, PodmanSecret] = {}
        self.files: list[ProjectedFile] = []
        self.directories: list[Path] = []
        self.read_only_volumes: set[str] = set()

    @staticmethod
    def check_name(name: str) -> None:
        if not WORKLOAD_NAME.match(name):
            raise InvalidManifestError(
                name, "the name must be a DNS label (lower-case a-z, 0-9, '-', '.'; max 63)"
            )

    def fail(self, reason: str) -> InvalidManifestError:
        return InvalidManifestError(self.spec.name, reason)

    def render(self) -> RenderedWorkload:
        manifest = self.parse_pod()
        pod_spec: Document = copy.deepcopy(manifest["spec"])
        configmaps = self.parse_configmaps()
        restart_policy = pod_spec.get("restartPolicy", "Always")
        if restart_policy not in RESTART_POLICIES:
            raise self.fail(
                f"spec.restartPolicy {restart_policy!r} is not one of {RESTART_POLICIES}"
            )
        stop_timeout = self.stop_timeout(pod_spec)
        self.project_volumes(pod_spec, configmaps)
        self.add_export(pod_spec)
        for path, container in self.containers(pod_spec):
            self.rewrite_env(container, path)
            self.drop_unpublished_ports(container)
            for probe in PROBES:
                container.pop(probe, None)
            for mount in container.get("volumeMounts") or []:
                if isinstance(mount, dict) and mount.get("name") in self.read_only_volumes:
                    mount["readOnly"] = True
        digest = spec_hash(self.spec)
        metadata = manifest.get("metadata") or {}
        labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
        labels.update(self.spec.labels)
        labels.update(
            {
                WORKLOAD_LABEL: self.spec.name,
                SPEC_HASH_LABEL: digest,
                RESTART_POLICY_LABEL: restart_policy,
                STOP_TIMEOUT_LABEL: str(stop_timeout),
            }
        )
        annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
        annotations.update(self.spec.annotations)
        new_metadata: Document = {"name": self.spec.name, "labels": labels}
        if annotations:
            new_metadata["annotations"] = annotations
        pod: Document = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": new_metadata,
            "spec": pod_spec,
        }
        documents = [*configmaps.values(), pod]
        return RenderedWorkload(
            name=self.spec.name,
            kube_yaml=yaml.safe_dump_all(documents, sort_keys=True),
            spec_hash=digest,
            restart_policy=restart_policy,
            stop_timeout=stop_timeout,
            files_dir=self.files_dir,
            secrets=tuple(self.secrets[name] for name in sorted(self.secrets)),
            files=tuple(self.files),
            directories=tuple(self.directories),
        )

    def parse_pod(self) -> Document:
        try:
            documents = [doc for doc in yaml.safe_load_all(self.spec.pod_yaml) if doc is not None]
        except yaml.YAMLError as error:
            raise self.fail(f"the pod manifest is not valid YAML: {error}") from None
        if len(documents) != 1 or not isinstance(documents[0], dict):
            raise self.fail("the pod manifest must be exactly one YAML mapping")
        manifest: Document = documents[0]
        if "containers" in manifest and "spec" not in manifest:
            manifest = {"apiVersion": "v1", "kind": "Pod", "spec": manifest}
        if manifest.get("kind", "Pod") != "Pod":
            raise self.fail(f"the manifest is of kind {manifest.get('kind')!r}, not Pod")
        pod_spec = manifest.get("spec")
        if not isinstance(pod_spec, dict):
            raise self.fail("the pod manifest has no spec mapping")
        containers = pod_spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise self.fail("spec.containers must list at least one container")
        for path, container in self.containers(pod_spec):
            if not isinstance(container.get("image"), str) or not container["image"]:
                raise self.fail(f"{path}.image is required")
        if not isinstance(manifest.get("metadata") or {}, dict):
            raise self.fail("metadata must be a mapping")
        return manifest

    def containers(self, pod_spec: Document) -> Iterator[tuple[str, Document]]:
        for group in ("initContainers", "containers"):
            items = pod_spec.get(group) or []
            if not isinstance(items, list):
                raise self.fail(f"spec.{group} must be a list")
            for index, container in enumerate(items):
                if not isinstance(container, dict):
                    raise self.fail(f"spec.{group}[{index}] must be a mapping")
                yield f"spec.{group}[{index}]", container

    def parse_configmaps(self) -> dict[str, Document]:
        found: dict[str, Document] = {}
        for index, text in enumerate(self.spec.configmaps):
            try:
                documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
            except yaml.YAMLError as error:
                raise self.fail(f"configmaps[{index}] is not valid YAML: {error}") from None
            for document in documents:
                if not isinstance(document, dict) or document.get("kind") != "ConfigMap":
                    raise self.fail(f"configmaps[{index}] holds something that is not a ConfigMap")
                name = (document.get("metadata") or {}).get("name")
                if not isinstance(name, str) or not name:
                    raise self.fail(f"configmaps[{index}] has no metadata.name")
                found[name] = document
        return found

    def stop_timeout(self, pod_spec: Document) -> int:
        value = pod_spec.get("terminationGracePeriodSeconds", DEFAULT_STOP_TIMEOUT)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail("spec.terminationGracePeriodSeconds must be a non-negative integer")
        return min(value, MAX_STOP_TIMEOUT)

    # volumes -----------------------------------------------------------------------------

    def project_volumes(self, pod_spec: Document, configmaps: Mapping[str, Document]) -> None:
        volumes = pod_spec.get("volumes") or []
        if not isinstance(volumes, list):
            raise self.fail("spec.volumes must be a list")
        for index, volume in enumerate(volumes):
            if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
                raise self.fail(f"spec.volumes[{index}] must be a mapping with a name")
            path = f"spec.volumes[{index}]"
            if "secret" in volume:
                source = volume["secret"] or {}
                name = source.get("secretName")
                data = self.spec.secrets.get(name) if isinstance(name, str) else None
                self.project(volume, path, "secret", name, data, source)
            elif "configMap" in volume:
                source = volume["configMap"] or {}
                name = source.get("name")
                document = configmaps.get(name) if isinstance(name, str) else None
                data = self.configmap_data(document, path) if document is not None else None
                self.project(volume, path, "configMap", name, data, source)

    def configmap_data(self, document: Document, path: str) -> dict[str, bytes]:
        data: dict[str, bytes] = {}
        for key, value in (document.get("data") or {}).items():
            data[str(key)] = str(value).encode()
        for key, value in (document.get("binaryData") or {}).items():
            try:
                data[str(key)] = base64.b64decode(str(value), validate=True)
            except ValueError:
                raise self.fail(f"{path}: binaryData {key!r} is not base64") from None
        return data

    def project(
        self,
        volume: Document,
        path: str,
        kind: str,
        name: object,
        data: Mapping[str, bytes] | None,
        source: Mapping[str, Any],
    ) -> None:
        optional = bool(source.get("optional", False))
        if data is None:
            if not optional:
                raise self.fail(f"{path}: {kind} {name!r} is not available on the device")
            data = {}
        directory = self.files_dir / "volumes" / volume["name"]
        default_mode = source.get("defaultMode", DEFAULT_FILE_MODE)
        items = source.get("items")
        if items:
            wanted = []
            for item in items:
                key, target = item.get("key"), item.get("path")
                if key not in data:
                    if optional:
                        continue
                    raise self.fail(f"{path}: {kind} {name!r} has no key {key!r}")
                wanted.append((str(key), str(target), item.get("mode", default_mode)))
        else:
            wanted = [(key, key, default_mode) for key in sorted(data)]
        for key, target, mode in wanted:
            normal = posixpath.normpath(target)
            if normal.startswith(("/", "..")) or normal == ".":
                raise self.fail(f"{path}: item path {target!r} must stay inside the volume")
            if not isinstance(mode, int) or not 0 <= mode <= 0o777:
                raise self.fail(f"{path}: file mode {mode!r} is not a permission mode")
            self.files.append(ProjectedFile(directory / normal, data[key], mode))
        self.directories.append(directory)
        self.read_only_volumes.add(volume["name"])
        volume.pop(kind)
        volume["hostPath"] = {"path": str(directory), "type": "Directory"}

    def add_export(self, pod_spec: Document) -> None:
        if self.spec.export_dir is None:
            return
        volumes = pod_spec.setdefault("volumes", [])
        if not any(volume.get("name") == EXPORT_VOLUME for volume in volumes):
            export = str(self.spec.export_dir)
            volumes.append(
                {"name": EXPORT_VOLUME, "hostPath": {"path": export, "type": "DirectoryOrCreate"}}
            )
            self.directories.append(self.spec.export_dir)
        for _, container in self.containers(pod_spec):
            mounts = container.setdefault("volumeMounts", [])
            if not any(
                mount.get("name") == EXPORT_VOLUME or mount.get("mountPath") == EXPORT_MOUNT_PATH
                for mount in mounts
            ):
                mounts.append({"name": EXPORT_VOLUME, "mountPath": EXPORT_MOUNT_PATH})

    # containers --------------------------------------------------------------------------

    def rewrite_env(self, container: Document, path: str) -> None:
        env: list[Any] = [
            entry
            for entry in container.get("env") or []
            if not (isinstance(entry, dict) and entry.get("name") in self.spec.env)
        ]
        kept: list[Any] = []
        for index, entry in enumerate(env):
            ref = ((entry.get("valueFrom") or {}) if isinstance(entry, dict) else {}).get(
                "secretKeyRef"
            )
            if ref is None or self.use_secret(ref, f"{path}.env[{index}]", key=ref.get("key")):
                kept.append(entry)
        kept.extend({"name": name, "value": value} for name, value in sorted(self.spec.env.items()))
        container["env"] = kept
        env_from: list[Any] = []
        for index, entry in enumerate(container.get("envFrom") or []):
            ref = entry.get("secretRef") if isinstance(entry, dict) else None
            if ref is None or self.use_secret(ref, f"{path}.envFrom[{index}]", key=None):
                env_from.append(entry)
        if env_from:
            container["envFrom"] = env_from
        else:
            container.pop("envFrom", None)

    def use_secret(self, ref: Any, path: str, *, key: object) -> bool:
        """Point ``ref`` at the workload's Podman secret; False to drop an optional one."""
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            raise self.fail(f"{path}: a secret reference needs a name")
        name = ref["name"]
        data = self.spec.secrets.get(name)
        optional = bool(ref.get("optional", False))
        if data is None or (key is not None and key not in data):
            if optional:
                return False
            missing = f"secret {name!r}" + (f" key {key!r}" if data is not None else "")
            raise self.fail(f"{path}: {missing} is not available on the device")
        podman_name = podman_secret_name(self.spec.name, name)
        encoded = {k: base64.b64encode(v).decode() for k, v in sorted(data.items())}
        self.secrets[podman_name] = PodmanSecret(podman_name, json.dumps(encoded).encode())
        ref["name"] = podman_name
        return True

    @staticmethod
    def drop_unpublished_ports(container: Document) -> None:
        ports = [
            port
            for port in container.get("ports") or []
            if isinstance(port, dict) and port.get("hostPort")
        ]
        if ports:
            container["ports"] = ports
        else:
            container.pop("ports", None)
