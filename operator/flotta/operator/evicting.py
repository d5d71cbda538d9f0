"""Evicting a revoked device from the broker.

The broker checks the CRL only at the TLS handshake, so a revoked device's open connection
would keep publishing, and keep receiving: when the same id enrolled again with a new key,
the old connection got the new device's desired state, and its heartbeats made the new
EdgeDevice look Online. Once the certificate is revoked, the operator connects with the
device's client id and a clean start, which makes Mosquitto close the device's connection
and discard its session (subscriptions and queued messages), then leaves.

The broker may load the CRL after the first eviction (in a cluster the new CRL reaches the
broker pod through a Secret volume, which kubelet refreshes within about a minute), and the
device then reconnects with its still-valid certificate. So each device is evicted again
after :data:`EVICTION_DELAYS`, unless it enrolled again meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from flotta.mqtt import MqttClient, MqttError, MqttSettings

logger = logging.getLogger(__name__)

EVICTION_DELAYS = (0.0, 5.0, 30.0, 90.0)  # seconds after the revocation
MAX_PENDING = 40_000  # evictions waiting; beyond it a revocation is evicted once, not again


class Evictor:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        enrolled: Callable[[str], bool],
        on_evicted: Callable[[str], None] = lambda _device: None,
    ) -> None:
        self._settings = settings
        self._enrolled = enrolled
        self._on_evicted = on_evicted
        self._due: list[tuple[float, int, str]] = []  # (monotonic time, attempt, device id)
        self._wake = asyncio.Event()

    def evict(self, device_id: str) -> None:
        """Evict now, and again after each of :data:`EVICTION_DELAYS`."""
        now = time.monotonic()
        delays = EVICTION_DELAYS if len(self._due) < MAX_PENDING else EVICTION_DELAYS[:1]
        for attempt, delay in enumerate(delays):
            heapq.heappush(self._due, (now + delay, attempt, device_id))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._due)

    async def run(self) -> None:
        while True:
            if not self._due:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._due[0][0] - time.monotonic()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            _, attempt, device_id = heapq.heappop(self._due)
            if attempt > 0 and self._enrolled(device_id):
                continue  # the id enrolled again with a new certificate: leave it connected
            await self._evict_once(device_id)

    async def _evict_once(self, device_id: str) -> None:
        settings = replace(
            self._settings,
            client_id=device_id,
            clean_start=True,
            session_expiry=0,
            will=None,
            reconnect_cap=self._settings.reconnect_base,
        )
        client = MqttClient(settings)
        try:
            await asyncio.wait_for(client.connect(), settings.connect_timeout + 1)
        except (MqttError, TimeoutError) as exc:
            logger.warning("could not evict device %s from the broker: %s", device_id, exc)
            return
        finally:
            await client.close()
        self._on_evicted(device_id)
        logger.info("device %s evicted from the broker (session discarded)", device_id)
