"""What enrolment writes to Kubernetes: EdgeDeviceSignedRequests (created, their phase set),
EdgeDevices (created, their certificate recorded) and the Events that tell about them. The
objects' bodies are built by pure functions; :class:`EnrolmentRecords` writes them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from flotta.operator.device_certificates import issued_message, serial_text
from flotta.operator.errors import TransportError
from flotta.operator.hardware_labels import hardware_labels
from flotta.operator.patching import KubeWriter
from flotta.schemas.codec import content_document
from flotta.schemas.crd.common import API_VERSION, DEVICE_FINALIZER, MEMBER_OF_LABEL
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.signed_request import EdgeDeviceSignedRequest
from flotta.schemas.wire.enrolment import EnrolmentRequest

logger = logging.getLogger(__name__)

REQUESTS = "edgedevicesignedrequests"
DEVICES = "edgedevices"


def now_text() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def signed_request_body(
    device_id: str, namespace: str, request: EnrolmentRequest, *, approved: bool
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeDeviceSignedRequest",
        "metadata": {"name": device_id, "namespace": namespace},
        "spec": {
            "targetNamespace": request.target_namespace,
            "targetSet": request.target_set,
            "approved": approved,
            "features": {
                "modelName": request.model_name,
                **({"hardware": content_document(request.hardware)} if request.hardware else {}),
            },
            "csr": request.csr,
        },
    }


def requested_message(device_id: str, request: EnrolmentRequest, *, approved: bool) -> str:
    return f"device {device_id} asks to enrol in {request.target_namespace}" + (
        " (approved by policy)" if approved else " (waiting for approval)"
    )


def device_body(request: EdgeDeviceSignedRequest, request_time: str) -> dict[str, Any]:
    """The EdgeDevice an approved request enrols: hardware labels, its set, the finalizer."""
    labels = hardware_labels(request.spec.features.hardware if request.spec.features else None)
    if request.spec.target_set:
        labels[MEMBER_OF_LABEL] = request.spec.target_set
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "metadata": {
            "name": request.metadata.name,
            "namespace": request.spec.target_namespace,
            "labels": labels,
            "finalizers": [DEVICE_FINALIZER],
        },
        "spec": {"requestTime": request_time},
    }


def request_phase_status(
    request: EdgeDeviceSignedRequest,
    phase: str,
    reason: str,
    message: str,
    *,
    serial: str,
    transition_time: str,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {
                "type": "Approved",
                "status": "True" if request.spec.approved else "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition_time,
            }
        ],
    }
    if serial:
        status["certificateSerial"] = serial
    return status


def device_certificate_status(
    device: EdgeDevice, cert: x509.Certificate, *, enrolled: bool
) -> dict[str, Any]:
    """The device's certificate (and Enrolled, for a first certificate of a device without a
    phase yet)."""
    status: dict[str, Any] = {
        "certificate": {
            "serial": serial_text(cert),
            "notAfter": cert.not_valid_after_utc.isoformat(),
        }
    }
    if enrolled and (device.status is None or device.status.phase is None):
        status["phase"] = "Enrolled"
    return status


class EnrolmentRecords:
    def __init__(self, kube: KubeWriter, *, enrolment_namespace: str) -> None:
        self._kube = kube
        self._namespace = enrolment_namespace

    async def create_request(
        self, device_id: str, request: EnrolmentRequest, *, approved: bool
    ) -> dict[str, Any]:
        """The EdgeDeviceSignedRequest, created in the enrolment namespace (or the existing)."""
        body = signed_request_body(device_id, self._namespace, request, approved=approved)
        return await self._kube.create(REQUESTS, self._namespace, body)

    async def request_created(
        self, created: dict[str, Any], device_id: str, request: EnrolmentRequest, *, approved: bool
    ) -> None:
        await self._kube.event(
            created,
            reason="EnrolmentRequested",
            message=requested_message(device_id, request, approved=approved),
        )

    async def request_approved(self, request: EdgeDeviceSignedRequest) -> None:
        name = request.metadata.name
        await self._kube.event(
            request.to_api(),
            reason="Approved",
            message=f"enrolment of {name} in {request.spec.target_namespace} approved",
        )

    async def set_request_phase(
        self,
        request: EdgeDeviceSignedRequest,
        phase: str,
        reason: str,
        message: str,
        *,
        serial: str = "",
    ) -> None:
        """Best effort: a status not written is logged (the next event writes it again)."""
        status = request_phase_status(
            request, phase, reason, message, serial=serial, transition_time=now_text()
        )
        try:
            await self._kube.patch_status(
                REQUESTS, request.metadata.namespace, request.metadata.name, status
            )
        except TransportError as exc:
            logger.info("request %s: status not written: %s", request.metadata.name, exc)

    async def create_device(self, request: EdgeDeviceSignedRequest) -> EdgeDevice:
        namespace = request.spec.target_namespace
        created = await self._kube.create(DEVICES, namespace, device_body(request, now_text()))
        await self._kube.event(
            created, reason="Enrolled", message=f"enrolled through request {request.metadata.name}"
        )
        return EdgeDevice.model_validate(created)

    async def record_certificate(
        self, device: EdgeDevice, cert: x509.Certificate, *, enrolled: bool
    ) -> None:
        meta = device.metadata
        status = device_certificate_status(device, cert, enrolled=enrolled)
        await self._kube.patch_status(DEVICES, meta.namespace, meta.name, status)

    async def certificate_issued(self, device: EdgeDevice, cert: x509.Certificate) -> None:
        await self._kube.event(
            device.to_api(), reason="CertificateIssued", message=issued_message(cert)
        )

    async def certificate_renewed(self, device: EdgeDevice, cert: x509.Certificate) -> None:
        await self._kube.event(
            device.to_api(), reason="CertificateRenewed", message=issued_message(cert)
        )
