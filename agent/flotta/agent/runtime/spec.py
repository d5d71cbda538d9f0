"""What the device should run (``WorkloadSpec``) and what Podman runs (``RunningWorkload``).

The specification hash covers everything that changes what runs: manifest, ConfigMaps,
secret values, registry auth, injected environment, export dir, labels, annotations and the
version of the rendering rules. It is stored on the pod as a label, so an agent restarted
after a reboot recognises its pods without any local state.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

# Bumped when the rendering rules change what Podman is given: every pod is then replaced.
RENDER_VERSION = 1

WORKLOAD_LABEL = "flotta.io/workload"
SPEC_HASH_LABEL = "flotta.io/spec-hash"
RESTART_POLICY_LABEL = "flotta.io/restart-policy"
STOP_TIMEOUT_LABEL = "flotta.io/stop-timeout"

WORKLOAD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")

Phase = Literal[
    "Pending", "Deploying", "Running", "Exited", "Failed", "Stopped", "Removing", "Unknown"
]
RestartPolicy = Literal["Always", "OnFailure", "Never"]


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload as the device should run it.

    ``pod_yaml`` is a Kubernetes Pod manifest (apiVersion v1, kind Pod); ``configmaps`` are
    extra YAML documents of kind ConfigMap; ``secrets`` maps a Secret name to its decrypted
    data; ``registry_auth`` is a ``.dockerconfigjson``; ``env`` is set in every container;
    ``export_dir`` is mounted at ``/export`` in every container.
    """

    name: str
    pod_yaml: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    configmaps: list[str] = field(default_factory=list)
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    registry_auth: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    export_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class RunningWorkload:
    """A pod this agent created, as read back from Podman."""

    name: str
    pod_id: str
    spec_hash: str
    status: str
    restart_policy: str = "Always"
    stop_timeout: int = 10


@dataclass(frozen=True, slots=True)
class ContainerState:
    name: str
    container_id: str
    state: str
    exit_code: int
    restart_count: int
    running_for: float | None = None


@dataclass(frozen=True, slots=True)
class ContainerHealth:
    """An application container as the health gate reads it (``inspect``).

    ``restart_policy`` is Podman's for the container, in Kubernetes spelling (Always,
    OnFailure, Never)."""

    name: str
    container_id: str
    state: str
    exit_code: int
    restart_count: int
    started_at: str
    running_for: float | None = None
    error: str = ""
    restart_policy: RestartPolicy = "Always"


@dataclass(frozen=True, slots=True)
class ExecResult:
    """A command run in a container: its exit code (None: it did not end in time, and runs
    on) and the start of its output, stdout and stderr interleaved."""

    exit_code: int | None
    output: str = ""


@dataclass(frozen=True, slots=True)
class WorkloadState:
    """A workload's phase now, with what explains it."""

    name: str
    phase: Phase
    message: str = ""
    restarts: int = 0
    containers: tuple[ContainerState, ...] = ()


def spec_hash(spec: WorkloadSpec) -> str:
    """A stable hash of everything that changes what runs (formatting of YAML excluded)."""
    secrets = {
        name: {key: base64.b64encode(value).decode() for key, value in sorted(data.items())}
        for name, data in sorted(spec.secrets.items())
    }
    canonical = {
        "render": RENDER_VERSION,
        "name": spec.name,
        "pod": _canonical_yaml(spec.pod_yaml),
        "configmaps": [_canonical_yaml(text) for text in spec.configmaps],
        "secrets": secrets,
        "registry_auth": spec.registry_auth,
        "env": dict(sorted(spec.env.items())),
        "export_dir": str(spec.export_dir) if spec.export_dir is not None else None,
        "labels": dict(sorted(spec.labels.items())),
        "annotations": dict(sorted(spec.annotations.items())),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def _canonical_yaml(text: str) -> str:
    """Canonical JSON of the documents when the text parses (so reformatting changes
    nothing), else the text itself."""
    try:
        documents = list(yaml.safe_load_all(text))
        return json.dumps(documents, sort_keys=True, separators=(",", ":"), default=str)
    except (yaml.YAMLError, TypeError, ValueError):
        return text
