"""Deleting an EdgeDevice (finalizer ``flotta.io/device-cleanup``): tell the device to
deregister, clear its retained topics, revoke its certificate, close the device's open
connection and its broker session (``evicting``), then let the object go.

The revocation goes into the CA's CRL file; ``reload_crl`` makes the broker read it (the test
runner's ``reload()``; on one machine a SIGHUP to the broker; in a cluster it writes the CRL
into the Secret the broker pod mounts, ``crl_secret``, see the operator README).
"""

from __future__ import annotations

import asyncio
import logging

from flotta.operator.assembly import deregistration
from flotta.operator.context import Context
from flotta.operator.errors import TransportError
from flotta.operator.fleet_cache import Key
from flotta.pki.errors import PkiError
from flotta.schemas.codec import encode
from flotta.schemas.crd.common import DEVICE_FINALIZER
from flotta.schemas.topics import DeviceTopic, EnrolTopic, device_topic, enrol_topic

logger = logging.getLogger(__name__)

ACK_TIMEOUT = 10.0


class Cleaner:
    def __init__(self, context: Context) -> None:
        self._context = context

    async def run(self) -> None:
        context = self._context
        await context.synced.wait()
        while True:
            for key in await context.cleanup.get_batch(50):
                try:
                    await self.clean(key)
                except (TransportError, PkiError, TimeoutError) as exc:
                    context.metrics.errors.labels("cleanup").inc()
                    logger.warning("device %s/%s: clean-up failed, retrying: %s", *key, exc)
                    await asyncio.sleep(1.0)
                    context.cleanup.add(key)

    async def clean(self, key: Key) -> None:
        context = self._context
        device = context.fleet.devices.get(key)
        if device is None or DEVICE_FINALIZER not in device.metadata.finalizers:
            return
        namespace, device_id = key
        context.ledger.remove(key)
        await context.broker.connected.wait()
        publish = context.broker.publish_nowait
        goodbye = encode(deregistration(device_id, namespace))
        await asyncio.wait_for(
            publish(device_topic(device_id, DeviceTopic.DESIRED), goodbye, qos=1), ACK_TIMEOUT
        )
        for topic in (
            device_topic(device_id, DeviceTopic.DESIRED),
            device_topic(device_id, DeviceTopic.CONNECTION),
        ):
            await asyncio.wait_for(publish(topic, b"", qos=1, retain=True), ACK_TIMEOUT)
        await context.enrolment.connected.wait()
        await asyncio.wait_for(
            context.enrolment.publish_nowait(
                enrol_topic(device_id, EnrolTopic.ANSWER), b"", qos=1, retain=True
            ),
            ACK_TIMEOUT,
        )
        obj = device.to_api()
        serial = (
            device.status.certificate.serial if device.status and device.status.certificate else ""
        )
        revoked = bool(serial) and await asyncio.to_thread(self._revoke, device_id, serial)
        if serial:
            context.evict(device_id)
        if revoked:
            context.metrics.certificates.labels("revoked").inc()
            await context.kube.event(
                obj, reason="CertificateRevoked", message=f"certificate {serial} revoked"
            )
        finalizers = [f for f in device.metadata.finalizers if f != DEVICE_FINALIZER]
        await context.kube.patch(
            "edgedevices",
            namespace,
            device_id,
            {
                "metadata": {
                    "finalizers": finalizers or None,
                    "resourceVersion": device.metadata.resource_version,
                }
            },
        )
        await context.kube.event(
            obj, reason="Deregistered", message="retained topics cleared, device told to deregister"
        )
        logger.info("device %s/%s deregistered", namespace, device_id)

    def _revoke(self, device_id: str, serial: str) -> bool:
        """Revoke and have the broker load the CRL; False when it was revoked already.

        The reload also runs when it was: a retried clean-up (the last reload failed, for
        example the CRL Secret could not be written) must not let the finalizer go without it.
        """
        store = self._context.pki
        added = store.revoke(int(serial, 16), note=f"device {device_id} deleted")
        if added:
            store.write_crl()
        self._context.reload_crl()
        return added
