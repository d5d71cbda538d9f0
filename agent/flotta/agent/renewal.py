"""Certificate renewal over MQTT: a CSR for the same device key on ``.../csr``, the new
certificate back on ``.../certificate``, matched by request id.

The key stays the same, so secrets sealed for the device stay readable across renewals. The
daemon builds the CSR and checks the new certificate in a child process (:class:`ChildKeys`),
so that it never loads ``cryptography`` itself.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from flotta.agent.errors import IdentityError
from flotta.agent.identity import CertificateStatus, IdentityStore, renewal_due
from flotta.agent.key_process import KeyChildError, parse_status, run_child
from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import ContractError
from flotta.schemas.wire import CertificateAnswer, RenewalRequest

log = logging.getLogger(__name__)

Publish = Callable[[bytes], Awaitable[None]]


class KeyOperations(Protocol):
    async def csr(self) -> str: ...

    async def store(self, certificate: str, ca: str) -> CertificateStatus:
        """Check the certificate against the device key and store it (IdentityError if not)."""
        ...


class InProcessKeys:
    def __init__(self, identity: IdentityStore) -> None:
        self.identity = identity

    async def csr(self) -> str:
        return self.identity.csr_pem()

    async def store(self, certificate: str, ca: str) -> CertificateStatus:
        return self.identity.store_certificate(certificate, ca)


class ChildKeys:
    """The same operations in a child process (:mod:`flotta.agent.key_process`)."""

    def __init__(self, identity: IdentityStore) -> None:
        self.request = {"identity": str(identity.directory), "device_id": identity.device_id}

    async def csr(self) -> str:
        answer = await self._call({"op": "csr"})
        return str(answer["csr"])

    async def store(self, certificate: str, ca: str) -> CertificateStatus:
        answer = await self._call({"op": "store", "certificate": certificate, "ca": ca})
        try:
            return CertificateStatus(*parse_status(answer["status"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityError(
                f"unreadable certificate status from the key child: {exc}"
            ) from None

    async def _call(self, request: dict[str, str]) -> dict[str, Any]:
        try:
            answer = await run_child({**self.request, **request})
        except KeyChildError as exc:
            raise IdentityError(str(exc)) from None
        if "error" in answer:
            raise IdentityError(str(answer["error"]))
        return answer


class Renewer:
    def __init__(
        self, identity: IdentityStore, *, fraction: float, keys: KeyOperations | None = None
    ) -> None:
        self.identity = identity
        self.fraction = fraction
        self.keys = keys or InProcessKeys(identity)
        self._request_id = ""
        self._answer: asyncio.Future[CertificateAnswer] | None = None

    def due(self, now: datetime | None = None) -> float:
        """Seconds until renewal is due (0 or less: now)."""
        status = self.identity.status()
        if status is None:
            return 0.0
        moment = renewal_due(status, now or datetime.now(UTC), fraction=self.fraction)
        return (moment - (now or datetime.now(UTC))).total_seconds()

    def deliver(self, payload: bytes) -> None:
        """An answer arrived on the certificate topic."""
        try:
            answer = decode(CertificateAnswer, payload)
        except ContractError as exc:
            log.warning("ignoring a malformed certificate answer: %s", exc)
            return
        if answer.request_id != self._request_id or self._answer is None:
            return  # an answer to an earlier request
        if not self._answer.done():
            self._answer.set_result(answer)

    async def renew(self, publish: Publish, *, answer_within: float) -> CertificateStatus | None:
        """Ask once; the new certificate status, or None when refused or unanswered."""
        self._request_id = uuid.uuid4().hex
        self._answer = asyncio.get_running_loop().create_future()
        try:
            request = RenewalRequest(request_id=self._request_id, csr=await self.keys.csr())
        except IdentityError as exc:
            log.warning("no certificate renewal request: %s", exc)
            return None
        try:
            await publish(encode(request))
            answer = await asyncio.wait_for(self._answer, answer_within)
        except TimeoutError:
            log.warning("no answer to certificate renewal request %s", self._request_id)
            return None
        finally:
            self._answer = None
        if answer.status != "issued":
            log.warning("certificate renewal refused: %s", answer.message or "no reason")
            return None
        try:
            status = await self.keys.store(answer.certificate, answer.ca_certificate)
        except IdentityError as exc:
            log.warning("renewed certificate not usable: %s", exc)
            return None
        log.info("certificate renewed; valid until %s", status.not_after)
        return status
