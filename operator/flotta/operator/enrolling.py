"""Enrolment and certificate renewal over MQTT, and the EdgeDeviceSignedRequests behind them.

A bootstrap device publishes its request (hardware + CSR) on ``flotta/enrol/{id}/request``;
the answer is retained on ``flotta/enrol/{id}/answer`` (pending, declined, refused, or issued
with the certificate) and cleared once the device connected with its own certificate. An
enrolled device renews on ``flotta/devices/{id}/csr`` with the same key and gets the new
certificate on ``flotta/devices/{id}/certificate``.

:class:`Enroller` acts on the decisions (:mod:`flotta.operator.enrolment`, pure) through its
collaborators: :class:`~flotta.operator.enrolment_channel.EnrolmentChannel` (MQTT),
:class:`~flotta.operator.device_signer.DeviceSigner` (the fleet CA, with the pure checks of
:mod:`flotta.operator.device_certificates`) and
:class:`~flotta.operator.enrolment_records.EnrolmentRecords` (Kubernetes).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from cryptography import x509
from pydantic import ValidationError

from flotta.operator.context import Context
from flotta.operator.device_certificates import (
    certificate_pem,
    csr_pem,
    csr_public_key,
    key_conflict,
    namespace_conflict,
    renewal_key_refusal,
    request_public_key,
    serial_text,
)
from flotta.operator.device_signer import DeviceSigner
from flotta.operator.enrolment import (
    Create,
    Declined,
    Issue,
    Pending,
    Refuse,
    decide,
    request_state,
)
from flotta.operator.enrolment_channel import (
    EnrolmentChannel,
    read_enrolment_request,
    read_renewal_request,
)
from flotta.operator.enrolment_records import EnrolmentRecords
from flotta.operator.errors import EnrolmentError
from flotta.pki.errors import PkiError
from flotta.pki.keys import PublicKey
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.signed_request import EdgeDeviceSignedRequest
from flotta.schemas.errors import ContractError
from flotta.schemas.wire.enrolment import CertificateAnswer, EnrolmentRequest, RenewalRequest

logger = logging.getLogger(__name__)

WAITING = "waiting for approval"


class Enroller:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._channel = EnrolmentChannel(enrolment=context.enrolment, fleet=context.broker)
        self._signer = DeviceSigner(context.pki, context.keyring)
        self._records = EnrolmentRecords(
            context.kube, enrolment_namespace=context.settings.enrolment_namespace
        )
        self.requests: dict[str, EdgeDeviceSignedRequest] = {}

    # ---- MQTT ----------------------------------------------------------------------------

    async def on_request(self, device_id: str, payload: bytes) -> None:
        context = self._context
        try:
            received = read_enrolment_request(device_id, payload)
        except (ContractError, EnrolmentError, PkiError) as exc:
            context.metrics.enrolments.labels("invalid").inc()
            await self._channel.answer(device_id, "refused", str(exc), key=None, retain=False)
            return
        request, csr_key = received.request, received.key
        existing = self.requests.get(device_id)
        decision = decide(
            device_id,
            request,
            csr_key,
            existing_request=existing,
            existing_request_key=request_public_key(existing),
            device_namespaces=context.fleet.namespaces_of(device_id),
            device_key=self._device_key(device_id),
            policy=context.settings.policy,
        )
        match decision:
            case Create(approved=approved):
                await self._create_request(device_id, request, approved)
                await self._channel.answer(device_id, "pending", WAITING, key=csr_key)
            case Issue():
                if existing is not None:
                    await self.issue(existing)
                else:
                    await self._reissue(device_id, request, csr_pem(received.csr))
            case Pending():
                await self._channel.answer(device_id, "pending", WAITING, key=csr_key)
            case Declined(message=message):
                await self._channel.answer(device_id, "declined", message, key=csr_key)
            case Refuse(message=message):
                context.metrics.enrolments.labels("refused").inc()
                logger.warning("enrolment of %s refused: %s", device_id, message)
                await self._channel.answer(device_id, "refused", message, key=csr_key, retain=False)

    async def on_answer_seen(self, device_id: str, payload: bytes) -> None:
        self._channel.answer_seen(device_id, payload)

    async def on_online(self, device_id: str) -> None:
        """The device connected with its own certificate: its enrolment answer can go."""
        await self._channel.clear_answer(device_id)

    async def on_renewal(self, device_id: str, payload: bytes) -> None:
        try:
            request = read_renewal_request(payload)
        except ContractError as exc:
            self._context.metrics.errors.labels("invalid-payload").inc()
            logger.warning("renewal from %s ignored: %s", device_id, exc)
            return
        answer = await self._renew(device_id, request)
        await self._channel.send_certificate(device_id, answer)

    async def _renew(self, device_id: str, request: RenewalRequest) -> CertificateAnswer:
        refused = CertificateAnswer(request_id=request.request_id, status="refused")
        device = self._device(device_id)
        if device is None or device.metadata.deletion_timestamp is not None:
            return msgspec.structs.replace(refused, message=f"device {device_id} is not enrolled")
        current = self._signer.device_key(device)
        try:
            key = csr_public_key(device_id, request.csr)
        except (EnrolmentError, PkiError) as exc:
            return msgspec.structs.replace(refused, message=str(exc))
        refusal = renewal_key_refusal(current, key)
        if refusal is not None:
            return msgspec.structs.replace(refused, message=refusal)
        cert = await self._sign(device, request.csr, key)
        self._context.metrics.certificates.labels("renewed").inc()
        await self._records.certificate_renewed(device, cert)
        return CertificateAnswer(
            request_id=request.request_id,
            status="issued",
            certificate=certificate_pem(cert),
            ca_certificate=self._signer.ca_certificate_pem(),
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
            await self._records.request_approved(request)
            await self.issue(request)
        elif isinstance(state, Declined) and phase != "Declined":
            await self._records.set_request_phase(request, "Declined", "Declined", state.message)
            await self._channel.answer(
                name, "declined", state.message, key=request_public_key(request)
            )
        elif isinstance(state, Pending) and phase is None:
            await self._records.set_request_phase(request, "Pending", "WaitingForApproval", WAITING)

    async def issue(self, request: EdgeDeviceSignedRequest) -> None:
        """Approved: make sure the EdgeDevice exists, sign the CSR, answer with the certificate."""
        context, records, channel = self._context, self._records, self._channel
        device_id = request.metadata.name
        namespace = request.spec.target_namespace
        try:
            key = csr_public_key(device_id, request.spec.csr)
        except (EnrolmentError, PkiError) as exc:
            await records.set_request_phase(request, "Failed", "InvalidCSR", str(exc))
            await channel.answer(device_id, "refused", str(exc), key=None)
            return
        conflict = namespace_conflict(device_id, namespace, context.fleet.namespaces_of(device_id))
        if conflict is not None:
            await records.set_request_phase(request, "Failed", "DeviceIdInUse", conflict)
            await channel.answer(device_id, "refused", conflict, key=key)
            return
        device = context.fleet.devices.get((namespace, device_id))
        if device is None:
            device = await records.create_device(request)
        if device.metadata.deletion_timestamp is not None:
            await channel.answer(device_id, "refused", "the device is being deleted", key=key)
            return
        current = self._signer.device_key(device)
        conflict = key_conflict(device_id, current, key)
        if conflict is not None:
            await records.set_request_phase(request, "Failed", "DeviceIdInUse", conflict)
            await channel.answer(device_id, "refused", conflict, key=key)
            return
        cert = self._signer.current_certificate(device, key) or await self._sign(
            device, request.spec.csr, key, enrolled=current is None
        )
        context.metrics.enrolments.labels("issued").inc()
        context.metrics.certificates.labels("issued").inc()
        serial = serial_text(cert)
        await records.set_request_phase(
            request, "Issued", "CertificateIssued", f"certificate {serial}", serial=serial
        )
        await records.certificate_issued(device, cert)
        await channel.answer(
            device_id,
            "issued",
            "enrolled",
            key=key,
            namespace=namespace,
            certificate=certificate_pem(cert),
            ca_certificate=self._signer.ca_certificate_pem(),
        )

    # ---- helpers -------------------------------------------------------------------------

    async def _sign(
        self, device: EdgeDevice, csr: str, key: PublicKey, *, enrolled: bool = False
    ) -> x509.Certificate:
        meta = device.metadata
        cert = await self._signer.sign(csr, key, device_id=meta.name, namespace=meta.namespace)
        await self._records.record_certificate(device, cert, enrolled=enrolled)
        return cert

    async def _create_request(
        self, device_id: str, request: EnrolmentRequest, approved: bool
    ) -> None:
        created = await self._records.create_request(device_id, request, approved=approved)
        self._context.metrics.enrolments.labels("requested").inc()
        await self._records.request_created(created, device_id, request, approved=approved)

    async def _reissue(self, device_id: str, request: EnrolmentRequest, csr: str) -> None:
        """An enrolled device asked again with the same key (its request object is gone)."""
        device = self._device(device_id)
        if device is None:
            return
        key = csr_public_key(device_id, csr)
        cert = self._signer.current_certificate(device, key) or await self._sign(device, csr, key)
        await self._channel.answer(
            device_id,
            "issued",
            "enrolled",
            key=key,
            namespace=device.metadata.namespace,
            certificate=certificate_pem(cert),
            ca_certificate=self._signer.ca_certificate_pem(),
        )

    def _device(self, device_id: str) -> EdgeDevice | None:
        for namespace in self._context.fleet.namespaces_of(device_id):
            return self._context.fleet.devices.get((namespace, device_id))
        return None

    def _device_key(self, device_id: str) -> PublicKey | None:
        device = self._device(device_id)
        return self._signer.device_key(device) if device is not None else None
