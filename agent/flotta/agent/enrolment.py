"""Enrolment with the bootstrap certificate: send the CSR and the hardware inventory, wait
for approval, keep the issued certificate.

The bootstrap certificate only reaches ``flotta/enrol/{client id}/...``, so the client id is
the device id. The request is sent again after every reconnect (the operator treats a
repeated request as the same one); the answer is retained, so it is found after a restart.
"""

from __future__ import annotations

import asyncio
import logging

from flotta.agent.config import AgentConfig
from flotta.agent.errors import EnrolmentError, IdentityError
from flotta.agent.identity import CertificateStatus, IdentityStore
from flotta.mqtt import MqttClient, MqttError, MqttSettings, TlsFiles
from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import ContractError
from flotta.schemas.topics import EnrolTopic, enrol_topic
from flotta.schemas.wire import EnrolmentAnswer, EnrolmentRequest, Hardware

log = logging.getLogger(__name__)


def enrolment_request(config: AgentConfig, csr_pem: str, hardware: Hardware) -> EnrolmentRequest:
    return EnrolmentRequest(
        target_namespace=config.target_namespace,
        target_set=config.target_set,
        model_name=(hardware.system_vendor.product_name if hardware.system_vendor else "")[:256],
        hardware=hardware,
        csr=csr_pem,
    )


def bootstrap_settings(config: AgentConfig, device_id: str) -> MqttSettings:
    """On the enrolment broker, a Mosquitto of its own: the bootstrap certificate is shared by a
    batch, so its clients choose their client ids, and there they reach no enrolled device's
    session."""
    return MqttSettings(
        host=config.enrolment_host,
        port=config.enrolment_port,
        client_id=device_id,
        tls=TlsFiles(
            config.ca_cert,
            config.bootstrap_cert,
            config.bootstrap_key,
            check_hostname=config.check_hostname,
        ),
        clean_start=True,
        session_expiry=0,
        keepalive=config.keepalive_seconds,
        reconnect_base=config.reconnect_base_seconds,
        reconnect_cap=config.reconnect_cap_seconds,
    )


async def enrol(
    config: AgentConfig,
    identity: IdentityStore,
    hardware: Hardware,
    *,
    on_pending: asyncio.Event | None = None,
) -> CertificateStatus:
    """Enrol and return the stored certificate; :class:`EnrolmentError` when declined."""
    device_id = identity.device_id
    request = encode(enrolment_request(config, identity.csr_pem(), hardware))
    request_topic = enrol_topic(device_id, EnrolTopic.REQUEST)
    answer_topic = enrol_topic(device_id, EnrolTopic.ANSWER)

    async def send_request(_: bool) -> None:
        await client.subscribe([(answer_topic, 1)])
        await client.publish(request_topic, request, qos=1)
        log.info("enrolment request sent for %s (namespace %s)", device_id, config.target_namespace)

    client = MqttClient(bootstrap_settings(config, device_id), on_connected=send_request)
    try:
        await client.start()
        waiting = _wait_for_certificate(client, identity, on_pending, _own_key(identity))
        if config.enrolment_timeout_seconds > 0:
            return await asyncio.wait_for(waiting, config.enrolment_timeout_seconds)
        return await waiting
    except TimeoutError:
        raise EnrolmentError(
            f"no certificate within {config.enrolment_timeout_seconds:.0f} s of enrolment"
        ) from None
    finally:
        await client.close()


def _own_key(identity: IdentityStore) -> str:
    # cryptography is loaded only by the process that enrols: the daemon stays without it
    # (about 8 MiB).
    from cryptography import x509

    from flotta.pki.keys import check_public_key, public_key_sha256

    csr = x509.load_pem_x509_csr(identity.csr_pem().encode())
    return public_key_sha256(check_public_key(csr.public_key()))


async def _wait_for_certificate(
    client: MqttClient,
    identity: IdentityStore,
    on_pending: asyncio.Event | None,
    own_key: str,
) -> CertificateStatus:
    async for message in client.messages():
        if not message.payload:
            continue  # a cleared retained answer
        try:
            answer = decode(EnrolmentAnswer, message.payload)
        except ContractError as exc:
            log.warning("ignoring a malformed enrolment answer: %s", exc)
            continue
        if answer.status != "issued" and answer.public_key_sha256 != own_key:
            # Someone else with the bootstrap certificate asked under this id (or an operator
            # too old to say which request it answers): not an answer to this device.
            log.warning(
                "ignoring a %s enrolment answer that is not for this device's key: %s",
                answer.status,
                answer.message or "no reason",
            )
            continue
        if answer.status == "pending":
            log.info("enrolment pending approval: %s", answer.message or "waiting")
            if on_pending is not None:
                on_pending.set()
            continue
        if answer.status in ("declined", "refused"):
            raise EnrolmentError(f"enrolment {answer.status}: {answer.message or 'no reason'}")
        try:
            status = identity.store_certificate(answer.certificate, answer.ca_certificate)
        except IdentityError as exc:
            # e.g. a retained answer for an earlier key of this device id: wait for ours.
            log.warning("ignoring an enrolment answer: %s", exc)
            continue
        log.info("enrolled as %s; certificate valid until %s", status.common_name, status.not_after)
        return status
    raise MqttError("the MQTT client stopped delivering messages")
