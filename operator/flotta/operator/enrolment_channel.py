"""The MQTT side of enrolment and renewal: requests read, answers published.

A bootstrap device's answer is retained on ``flotta/enrol/{id}/answer`` until the device
connected with its own certificate; a renewed certificate goes to
``flotta/devices/{id}/certificate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from flotta.operator.context import Publisher
from flotta.operator.enrolment import load_request_csr
from flotta.pki.keys import PublicKey, check_public_key, public_key_sha256
from flotta.schemas.codec import decode, encode
from flotta.schemas.topics import DeviceTopic, EnrolTopic, device_topic, enrol_topic
from flotta.schemas.wire.enrolment import (
    CertificateAnswer,
    EnrolmentAnswer,
    EnrolmentRequest,
    EnrolmentStatus,
    RenewalRequest,
)

MAX_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """An enrolment request whose CSR parsed, holds its signature and asks for a usable key."""

    request: EnrolmentRequest
    csr: x509.CertificateSigningRequest
    key: PublicKey


def read_enrolment_request(device_id: str, payload: bytes) -> ReceivedRequest:
    """Raises ContractError, EnrolmentError or PkiError for a request to refuse."""
    request = decode(EnrolmentRequest, payload)
    csr = load_request_csr(device_id, request.csr)
    return ReceivedRequest(request, csr, check_public_key(csr.public_key()))


def read_renewal_request(payload: bytes) -> RenewalRequest:
    """Raises ContractError for a request to ignore."""
    return decode(RenewalRequest, payload)


def enrolment_answer(
    status: EnrolmentStatus, message: str, key: PublicKey | None, **fields: str
) -> EnrolmentAnswer:
    """An answer naming the key of the request it answers (none for a malformed request)."""
    return EnrolmentAnswer(
        status=status,
        message=message[:MAX_MESSAGE],
        public_key_sha256=public_key_sha256(key) if key is not None else "",
        **fields,
    )


class EnrolmentChannel:
    def __init__(self, *, enrolment: Publisher, fleet: Publisher) -> None:
        """``enrolment``: the enrolment broker (bootstrap devices); ``fleet``: the broker of
        enrolled devices."""
        self._enrolment = enrolment
        self._fleet = fleet
        self._answered: set[str] = set()  # device ids with a retained enrolment answer

    async def answer(
        self,
        device_id: str,
        status: EnrolmentStatus,
        message: str,
        *,
        key: PublicKey | None,
        retain: bool = True,
        **fields: str,
    ) -> None:
        """Answer on the id's answer topic, naming the key of the request answered. A refusal
        of a competing or malformed request is not retained: whoever else holds the bootstrap
        certificate must not replace the answer the first requester of the id sees."""
        answer = enrolment_answer(status, message, key, **fields)
        if retain:
            self._answered.add(device_id)
        await self._enrolment.publish_nowait(
            enrol_topic(device_id, EnrolTopic.ANSWER), encode(answer), qos=1, retain=retain
        )

    def answer_seen(self, device_id: str, payload: bytes) -> None:
        """The broker holds (or no longer holds) a retained answer for the id."""
        if payload:
            self._answered.add(device_id)
        else:
            self._answered.discard(device_id)

    async def clear_answer(self, device_id: str) -> None:
        """The device connected with its own certificate: its retained answer can go."""
        if device_id in self._answered:
            self._answered.discard(device_id)
            await self._enrolment.publish_nowait(
                enrol_topic(device_id, EnrolTopic.ANSWER), b"", qos=1, retain=True
            )

    async def send_certificate(self, device_id: str, answer: CertificateAnswer) -> None:
        await self._fleet.publish_nowait(
            device_topic(device_id, DeviceTopic.CERTIFICATE), encode(answer), qos=1
        )
