"""Desired workloads (wire) -> workload specifications for the runtime.

Sealed secrets and registry credentials are opened through an ``Opener`` (the daemon's opens
them with the device key in a child process, :mod:`flotta.agent.unsealing`); a workload whose
secrets cannot be opened is left out with the reason, the others go on.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flotta.agent.runtime import WorkloadSpec
from flotta.schemas.wire import DesiredState, DesiredWorkload, SealedData, SealedSecret

DEVICE_ID_ENV = "DEVICE_ID"

# Opens one sealed item with the device key; raises ValueError when it cannot.
Opener = Callable[[SealedData], bytes]


@dataclass(frozen=True, slots=True)
class ConvertedWorkloads:
    specs: dict[str, WorkloadSpec]
    failures: dict[str, str]  # workload -> why it cannot run


class SecretUnavailableError(ValueError):
    """A secret that the workload references cannot be opened."""


def export_dir(state_dir: Path, workload: str) -> Path:
    return state_dir / "workloads" / workload / "export"


def convert(
    state: DesiredState,
    *,
    opener: Opener,
    state_dir: Path,
) -> ConvertedWorkloads:
    device_id = state.device_id
    sealed = {secret.name: secret for secret in state.secrets}
    opened: dict[str, dict[str, bytes]] = {}
    specs: dict[str, WorkloadSpec] = {}
    failures: dict[str, str] = {}
    for workload in state.workloads:
        try:
            secrets = {
                name: _open_secret(name, sealed, opened, opener) for name in workload.secrets
            }
            auth = _registry_auth(workload, opener)
        except SecretUnavailableError as exc:
            failures[workload.name] = str(exc)
            continue
        specs[workload.name] = workload_spec(
            workload, device_id=device_id, secrets=secrets, registry_auth=auth, state_dir=state_dir
        )
    return ConvertedWorkloads(specs, failures)


def workload_spec(
    workload: DesiredWorkload,
    *,
    device_id: str,
    secrets: dict[str, dict[str, bytes]],
    registry_auth: str | None,
    state_dir: Path,
) -> WorkloadSpec:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": workload.name},
        "spec": workload.pod_spec,
    }
    configmaps = [
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": configmap.name},
                "data": dict(configmap.data),
            },
            sort_keys=True,
        )
        for configmap in workload.configmaps
    ]
    return WorkloadSpec(
        name=workload.name,
        pod_yaml=yaml.safe_dump(pod, sort_keys=True),
        labels=dict(workload.labels),
        annotations=dict(workload.annotations),
        configmaps=configmaps,
        secrets=secrets,
        registry_auth=registry_auth,
        env={DEVICE_ID_ENV: device_id},
        export_dir=export_dir(state_dir, workload.name),
    )


def _open_secret(
    name: str,
    sealed: dict[str, SealedSecret],
    opened: dict[str, dict[str, bytes]],
    opener: Opener,
) -> dict[str, bytes]:
    if name in opened:
        return opened[name]
    secret = sealed.get(name)
    if secret is None:
        raise SecretUnavailableError(f"secret {name!r} is not in the desired state")
    try:
        document = json.loads(opener(secret.data))
    except ValueError as exc:
        raise SecretUnavailableError(f"secret {name!r} cannot be opened: {exc}") from None
    if not isinstance(document, dict) or not all(
        isinstance(value, str) for value in document.values()
    ):
        raise SecretUnavailableError(f"secret {name!r} is not a map of strings")
    try:
        data = {str(k): base64.b64decode(value, validate=True) for k, value in document.items()}
    except (binascii.Error, ValueError):
        raise SecretUnavailableError(f"secret {name!r} has a value that is not base64") from None
    opened[name] = data
    return data


def _registry_auth(workload: DesiredWorkload, opener: Opener) -> str | None:
    if workload.image_registry_auth is None:
        return None
    try:
        return opener(workload.image_registry_auth).decode()
    except ValueError as exc:  # SealingError and UnicodeDecodeError are ValueErrors
        raise SecretUnavailableError(f"registry credentials cannot be opened: {exc}") from None
