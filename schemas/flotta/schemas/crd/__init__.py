"""Pydantic models of the Flotta custom resources (group management.project-flotta.io/v1alpha1),
field-compatible with upstream Flotta; the CRD manifests in ``deploy/crds`` are generated from
them by :mod:`flotta.schemas.crd.registry` and :mod:`flotta.schemas.crd_generator`.

The names below load on first use: a component that needs a few submodules (the bridge
reads only EdgeDevices) does not pay for every kind (the pod spec alone is megabytes of
schema). A fragment that devices send is not defined here but in :mod:`flotta.schemas.wire`,
and a model holds its struct (:mod:`flotta.schemas.crd.wire_field`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION, Condition, LabelSelector
    from flotta.schemas.crd.device import EdgeDevice, EdgeDeviceSpec, EdgeDeviceStatus
    from flotta.schemas.crd.device_set import (
        EdgeDeviceSet,
        EdgeDeviceSetSpec,
        EdgeDeviceSetStatus,
    )
    from flotta.schemas.crd.signed_request import (
        EdgeDeviceSignedRequest,
        EdgeDeviceSignedRequestSpec,
        EdgeDeviceSignedRequestStatus,
    )
    from flotta.schemas.crd.workload import EdgeWorkload, EdgeWorkloadSpec, EdgeWorkloadStatus

_HOMES = {
    "API_VERSION": "common",
    "GROUP": "common",
    "VERSION": "common",
    "Condition": "common",
    "LabelSelector": "common",
    "EdgeDevice": "device",
    "EdgeDeviceSpec": "device",
    "EdgeDeviceStatus": "device",
    "EdgeDeviceSet": "device_set",
    "EdgeDeviceSetSpec": "device_set",
    "EdgeDeviceSetStatus": "device_set",
    "EdgeDeviceSignedRequest": "signed_request",
    "EdgeDeviceSignedRequestSpec": "signed_request",
    "EdgeDeviceSignedRequestStatus": "signed_request",
    "EdgeWorkload": "workload",
    "EdgeWorkloadSpec": "workload",
    "EdgeWorkloadStatus": "workload",
}

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "EdgeDevice",
    "EdgeDeviceSet",
    "EdgeDeviceSetSpec",
    "EdgeDeviceSetStatus",
    "EdgeDeviceSignedRequest",
    "EdgeDeviceSignedRequestSpec",
    "EdgeDeviceSignedRequestStatus",
    "EdgeDeviceSpec",
    "EdgeDeviceStatus",
    "EdgeWorkload",
    "EdgeWorkloadSpec",
    "EdgeWorkloadStatus",
    "LabelSelector",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
