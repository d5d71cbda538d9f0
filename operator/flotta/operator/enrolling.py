"""Enrolment and certificate renewal over MQTT, and the EdgeDeviceSignedRequests behind them.

A bootstrap device publishes its request (hardware + CSR) on ``flotta/enrol/{id}/request``;
the answer is retained on ``flotta/enrol/{id}/answer`` (pending, declined, refused, or issued
with the certificate) and cleared once the device connected with its own certificate. An
enrolled device renews on ``flotta/devices/{id}/csr`` with the same key and gets the new
certificate on ``flotta/devices/{id}/certificate``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from flotta.operator.context import Context
from flotta.operator.enrolment import (
    Create,
    Declined,
    Issue,
    Pending,
    Refuse,
    decide,
    key_bytes,
    load_request_csr,
    request_state,
)
from flotta.operator.errors import EnrolmentError, TransportError
from flotta.operator.hwlabels import hardware_labels
from flotta.pki.errors import PkiError
from flotta.pki.keys import PublicKey, check_public_key, public_key_sha256
from flotta.schemas.codec import decode, encode
from flotta.schemas.crd.common import API_VERSION, DEVICE_FINALIZER, MEMBER_OF_LABEL
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.signedrequest import EdgeDeviceSignedRequest
from flotta.schemas.errors import ContractError
from flotta.schemas.topics import DeviceTopic, EnrolTopic, device_topic, enrol_topic
from flotta.schemas.wire.enrolment import (
    CertificateAnswer,
    EnrolmentAnswer,
    EnrolmentRequest,
    RenewalRequest,
)

logger = logging.getLogger(__name__)

REQUESTS = "edgedevicesignedrequests"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _issued_message(cert: x509.Certificate) -> str:
    return (
        f"certificate {cert.serial_number:X} issued, "
        f"valid until {cert.not_valid_after_utc.isoformat()}"
    )


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class Enroller:
    def __init__(self, context: Context) -> None:
        self._context = context
        self.requests: dict[str, EdgeDeviceSignedRequest] = {}
        self._answered: set[str] = set()  # device ids with a retained enrolment answer

    # ---- MQTT ----------------------------------------------------------------------------

    async def on_request(self, device_id: str, payload: bytes) -> None:
        context = self._context
        try:
            request = decode(EnrolmentRequest, payload)
            csr = load_request_csr(device_id, request.csr)
            csr_key = check_public_key(csr.public_key())
        except (ContractError, EnrolmentError, PkiError) as exc:
            context.metrics.enrolments.labels("invalid").inc()
            await self._answer(device_id, "refused", str(exc), key=None, retain=False)
            return
        existing = self.requests.get(device_id)
        decision = decide(
            device_id,
            request,
            csr_key,
            existing_request=existing,
            existing_request_key=self._request_key(existing),
            device_namespaces=context.fleet.namespaces_of(device_id),
            device_key=self._device_key(device_id),
            policy=context.settings.policy,
        )
        match decision:
            case Create(approved=approved):
                await self._create_request(device_id, request, approved)
                await self._answer(device_id, "pending", "waiting for approval", key=csr_key)
            case Issue():
                if existing is not None:
                    await self.issue(existing)
                else:
                    await self._reissue(
                        device_id, request, csr.public_bytes(serialization.Encoding.PEM).decode()
                    )
            case Pending():
                await self._answer(device_id, "pending", "waiting for approval", key=csr_key)
            case Declined(message=message):
                await self._answer(device_id, "declined", message, key=csr_key)
            case Refuse(message=message):
                context.metrics.enrolments.labels("refused").inc()
                logger.warning("enrolment of %s refused: %s", device_id, message)
                await self._answer(device_id, "refused", message, key=csr_key, retain=False)

    async def on_answer_seen(self, device_id: str, payload: bytes) -> None:
        if payload:
            self._answered.add(device_id)
        else:
            self._answered.discard(device_id)

    async def on_online(self, device_id: str) -> None:
        """The device connected with its own certificate: its enrolment answer can go."""
        if device_id in self._answered:
            self._answered.discard(device_id)
            await self._context.enrolment.publish_nowait(
                enrol_topic(device_id, EnrolTopic.ANSWER), b"", qos=1, retain=True
            )

    async def on_renewal(self, device_id: str, payload: bytes) -> None:
        context = self._context
        try:
            request = decode(RenewalRequest, payload)
        except ContractError as exc:
            context.metrics.errors.labels("invalid-payload").inc()
            logger.warning("renewal from %s ignored: %s", device_id, exc)
            return
        answer = await self._renew(device_id, request)
        await context.broker.publish_nowait(
            device_topic(device_id, DeviceTopic.CERTIFICATE), encode(answer), qos=1
        )

    async def _renew(self, device_id: str, request: RenewalRequest) -> CertificateAnswer:
        context = self._context
        refused = CertificateAnswer(request_id=request.request_id, status="refused")
        device = self._device(device_id)
        if device is None or device.metadata.deletion_timestamp is not None:
            return refused.model_copy(update={"message": f"device {device_id} is not enrolled"})
        current = context.keyring.for_device(device)
        try:
            csr = load_request_csr(device_id, request.csr)
            key = check_public_key(csr.public_key())
        except (EnrolmentError, PkiError) as exc:
            return refused.model_copy(update={"message": str(exc)})
        if current is None or key_bytes(current) != key_bytes(key):
            return refused.model_copy(update={"message": "a renewal must reuse the device key"})
        cert = await self._sign(device, request.csr, key)
        context.metrics.certificates.labels("renewed").inc()
        await context.kube.event(
            device.to_api(),
            reason="CertificateRenewed",
            message=_issued_message(cert),
        )
        return CertificateAnswer(
            request_id=request.request_id,
            status="issued",
            certificate=_pem(cert),
            ca_certificate=_pem(context.pki.authority().certificate),
        )

    # ---- EdgeDeviceSignedRequests --------------------------------------------------------

    async def on_request_object(self, event_type: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if event_type == "DELETED":
            self.requests.pop(name, None)
            return
        try:
            request = EdgeDeviceSignedRequest.model_validate(obj)
        except ValidationError:
            self._context.metrics.errors.labels("invalid-object").inc()
            return
        self.requests[name] = request
        phase = request.status.phase if request.status else None
        state = request_state(request)
        if isinstance(state, Issue) and phase != "Issued":
            await self._context.kube.event(
                request.to_api(),
                reason="Approved",
                message=f"enrolment of {name} in {request.spec.target_namespace} approved",
            )
            await self.issue(request)
        elif isinstance(state, Declined) and phase != "Declined":
            await self._set_phase(request, "Declined", "Declined", state.message)
            await self._answer(name, "declined", state.message, key=self._request_key(request))
        elif isinstance(state, Pending) and phase is None:
            await self._set_phase(request, "Pending", "WaitingForApproval", "waiting for approval")

    async def issue(self, request: EdgeDeviceSignedRequest) -> None:
        """Approved: make sure the EdgeDevice exists, sign the CSR, answer with the certificate."""
        context = self._context
        device_id = request.metadata.name
        namespace = request.spec.target_namespace
        try:
            csr = load_request_csr(device_id, request.spec.csr)
            key = check_public_key(csr.public_key())
        except (EnrolmentError, PkiError) as exc:
            await self._set_phase(request, "Failed", "InvalidCSR", str(exc))
            await self._answer(device_id, "refused", str(exc), key=None)
            return
        other = context.fleet.namespaces_of(device_id) - {namespace}
        if other:
            message = f"device id {device_id} is already used in namespace {sorted(other)[0]}"
            await self._set_phase(request, "Failed", "DeviceIdInUse", message)
            await self._answer(device_id, "refused", message, key=key)
            return
        device = context.fleet.devices.get((namespace, device_id))
        if device is None:
            device = await self._create_device(request)
        if device.metadata.deletion_timestamp is not None:
            await self._answer(device_id, "refused", "the device is being deleted", key=key)
            return
        current = context.keyring.for_device(device)
        if current is not None and key_bytes(current) != key_bytes(key):
            message = f"device id {device_id} is already in use by another key"
            await self._set_phase(request, "Failed", "DeviceIdInUse", message)
            await self._answer(device_id, "refused", message, key=key)
            return
        cert = self._current_certificate(device, key) or await self._sign(
            device, request.spec.csr, key, enrolled=current is None
        )
        context.metrics.enrolments.labels("issued").inc()
        context.metrics.certificates.labels("issued").inc()
        await self._set_phase(
            request,
            "Issued",
            "CertificateIssued",
            f"certificate {cert.serial_number:X}",
            serial=f"{cert.serial_number:X}",
        )
        await context.kube.event(
            device.to_api(),
            reason="CertificateIssued",
            message=_issued_message(cert),
        )
        await self._answer(
            device_id,
            "issued",
            "enrolled",
            key=key,
            namespace=namespace,
            certificate=_pem(cert),
            ca_certificate=_pem(context.pki.authority().certificate),
        )

    # ---- helpers -------------------------------------------------------------------------

    def _current_certificate(self, device: EdgeDevice, key: PublicKey) -> x509.Certificate | None:
        """The device's current certificate when a repeated request can get it again: same key,
        and more than half of its validity left (otherwise a fresh one is signed)."""
        status = device.status
        if status is None or status.certificate is None or not status.certificate.serial:
            return None
        try:
            cert = self._context.pki.find_issued(int(status.certificate.serial, 16))
        except (ValueError, PkiError):
            return None
        if cert is None or key_bytes(check_public_key(cert.public_key())) != key_bytes(key):
            return None
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        if cert.not_valid_after_utc - datetime.now(UTC) < lifetime / 2:
            return None
        return cert

    async def _sign(
        self, device: EdgeDevice, csr_pem: str, key: PublicKey, *, enrolled: bool = False
    ) -> x509.Certificate:
        context = self._context
        meta = device.metadata
        cert = await _to_thread(
            context.pki.sign_device_csr, csr_pem.encode(), meta.name, meta.namespace
        )
        serial = f"{cert.serial_number:X}"
        context.keyring.remember(serial, key)
        status: dict[str, Any] = {
            "certificate": {"serial": serial, "notAfter": cert.not_valid_after_utc.isoformat()}
        }
        if enrolled and (device.status is None or device.status.phase is None):
            status["phase"] = "Enrolled"
        await context.kube.patch_status("edgedevices", meta.namespace, meta.name, status)
        return cert

    async def _create_request(
        self, device_id: str, request: EnrolmentRequest, approved: bool
    ) -> None:
        context = self._context
        body = {
            "apiVersion": API_VERSION,
            "kind": "EdgeDeviceSignedRequest",
            "metadata": {"name": device_id, "namespace": context.settings.enrolment_namespace},
            "spec": {
                "targetNamespace": request.target_namespace,
                "targetSet": request.target_set,
                "approved": approved,
                "features": {
                    "modelName": request.model_name,
                    **({"hardware": request.hardware.to_api()} if request.hardware else {}),
                },
                "csr": request.csr,
            },
        }
        created = await context.kube.create(REQUESTS, context.settings.enrolment_namespace, body)
        context.metrics.enrolments.labels("requested").inc()
        await context.kube.event(
            created,
            reason="EnrolmentRequested",
            message=f"device {device_id} asks to enrol in {request.target_namespace}"
            + (" (approved by policy)" if approved else " (waiting for approval)"),
        )

    async def _reissue(self, device_id: str, request: EnrolmentRequest, csr_pem: str) -> None:
        """An enrolled device asked again with the same key (its request object is gone)."""
        device = self._device(device_id)
        if device is None:
            return
        key = check_public_key(load_request_csr(device_id, csr_pem).public_key())
        cert = self._current_certificate(device, key) or await self._sign(device, csr_pem, key)
        await self._answer(
            device_id,
            "issued",
            "enrolled",
            key=key,
            namespace=device.metadata.namespace,
            certificate=_pem(cert),
            ca_certificate=_pem(self._context.pki.authority().certificate),
        )

    async def _create_device(self, request: EdgeDeviceSignedRequest) -> EdgeDevice:
        context = self._context
        labels = hardware_labels(request.spec.features.hardware if request.spec.features else None)
        if request.spec.target_set:
            labels[MEMBER_OF_LABEL] = request.spec.target_set
        body = {
            "apiVersion": API_VERSION,
            "kind": "EdgeDevice",
            "metadata": {
                "name": request.metadata.name,
                "namespace": request.spec.target_namespace,
                "labels": labels,
                "finalizers": [DEVICE_FINALIZER],
            },
            "spec": {"requestTime": _now()},
        }
        created = await context.kube.create("edgedevices", request.spec.target_namespace, body)
        await context.kube.event(
            created, reason="Enrolled", message=f"enrolled through request {request.metadata.name}"
        )
        return EdgeDevice.model_validate(created)

    async def _set_phase(
        self,
        request: EdgeDeviceSignedRequest,
        phase: str,
        reason: str,
        message: str,
        *,
        serial: str = "",
    ) -> None:
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                {
                    "type": "Approved",
                    "status": "True" if request.spec.approved else "False",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": _now(),
                }
            ],
        }
        if serial:
            status["certificateSerial"] = serial
        try:
            await self._context.kube.patch_status(
                REQUESTS, request.metadata.namespace, request.metadata.name, status
            )
        except TransportError as exc:
            logger.info("request %s: status not written: %s", request.metadata.name, exc)

    async def _answer(
        self,
        device_id: str,
        status: str,
        message: str,
        *,
        key: PublicKey | None,
        retain: bool = True,
        **fields: str,
    ) -> None:
        """Answer on the id's answer topic, naming the key of the request answered. A refusal
        of a competing or malformed request is not retained: whoever else holds the bootstrap
        certificate must not replace the answer the first requester of the id sees."""
        answer = EnrolmentAnswer(
            status=status,
            message=message[:4096],
            public_key_sha256=public_key_sha256(key) if key is not None else "",
            **fields,
        )
        if retain:
            self._answered.add(device_id)
        await self._context.enrolment.publish_nowait(
            enrol_topic(device_id, EnrolTopic.ANSWER), encode(answer), qos=1, retain=retain
        )

    def _device(self, device_id: str) -> EdgeDevice | None:
        for namespace in self._context.fleet.namespaces_of(device_id):
            return self._context.fleet.devices.get((namespace, device_id))
        return None

    def _device_key(self, device_id: str) -> PublicKey | None:
        device = self._device(device_id)
        return self._context.keyring.for_device(device) if device is not None else None

    @staticmethod
    def _request_key(request: EdgeDeviceSignedRequest | None) -> PublicKey | None:
        if request is None or not request.spec.csr:
            return None
        try:
            return check_public_key(
                load_request_csr(request.metadata.name, request.spec.csr).public_key()
            )
        except (EnrolmentError, PkiError):
            return None


async def _to_thread(sign: Any, csr: bytes, device_id: str, namespace: str) -> x509.Certificate:
    cert: x509.Certificate = await asyncio.to_thread(
        lambda: sign(csr, device_id=device_id, namespace=namespace)
    )
    return cert
