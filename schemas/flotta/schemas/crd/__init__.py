"""Pydantic models of the Flotta custom resources (group management.project-flotta.io/v1alpha1),
field-compatible with upstream Flotta; the CRD manifests in ``deploy/crds`` are generated from
them by :mod:`flotta.schemas.crdgen`."""

from flotta.schemas.crd.common import API_VERSION, GROUP, VERSION, Condition, LabelSelector
from flotta.schemas.crd.device import EdgeDevice, EdgeDeviceSpec, EdgeDeviceStatus
from flotta.schemas.crd.deviceset import EdgeDeviceSet, EdgeDeviceSetSpec, EdgeDeviceSetStatus
from flotta.schemas.crd.signedrequest import (
    EdgeDeviceSignedRequest,
    EdgeDeviceSignedRequestSpec,
    EdgeDeviceSignedRequestStatus,
)
from flotta.schemas.crd.workload import EdgeWorkload, EdgeWorkloadSpec, EdgeWorkloadStatus

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
