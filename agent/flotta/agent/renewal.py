"""Certificate renewal over MQTT: a CSR for the same device key on ``.../csr``, the new
certificate back on ``.../certificate``, matched by request id.

The key stays the same, so secrets sealed for the device stay readable across renewals.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from flotta.agent.errors import IdentityError
from flotta.agent.identity import CertificateStatus, IdentityStore, renewal_due
from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import ContractError
from flotta.schemas.wire import CertificateAnswer, RenewalRequest

log = logging.getLogger(__name__)

Publish = Callable[[bytes], Awaitable[None]]


class Renewer:
    def __init__(self, identity: IdentityStore, *, fraction: float) -> None:
        self.identity = identity
        self.fraction = fraction
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
        request = RenewalRequest(request_id=self._request_id, csr=self.identity.csr_pem())
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
            status = self.identity.store_certificate(answer.certificate, answer.ca_certificate)
        except IdentityError as exc:
            log.warning("renewed certificate not usable: %s", exc)
            return None
        log.info("certificate renewed; valid until %s", status.not_after)
        return status
