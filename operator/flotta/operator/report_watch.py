"""The operator's ear on the devices' status reports while rollouts are under way.

While :meth:`ReportWatch.want` was called within the last ``linger`` seconds (a rollout is
under way, or was a moment ago), a second MQTT connection of the operator's identity
subscribes to ``flotta/devices/+/status`` (QoS 0, no retained messages) and feeds every report
to :class:`~flotta.operator.version_reports.VersionReports`; ``on_change`` runs when a
device's versions changed, so the rollouts are evaluated at once. Otherwise it is
disconnected and the store is empty: a fleet without rollouts pays nothing, and a reconnect
storm (every device reporting after its birth) costs the operator nothing unless a rollout
runs at that moment.

Its own connection (a clean session, client id ``<operator's>-reports``) keeps the reports
away from the operator's persistent session: births, wills and renewal requests never queue
behind them, a report that does not fit is dropped by the broker rather than held (QoS 0; the
EdgeDevice status, which the bridge keeps, says the same a little later), and an operator that
restarts finds no subscription left behind. The client's fast receive path hands each PUBLISH
to the store as it is read, with no queue between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from flotta.mqtt import DisconnectedError, Message, MqttClient, MqttError, RetainHandling
from flotta.operator.broker import BrokerSettings
from flotta.operator.version_reports import CHANGED, VersionReports
from flotta.schemas.topics import DeviceTopic, device_filter

logger = logging.getLogger(__name__)

LINGER = 300.0  # seconds the subscription outlives the last rollout under way
STATUS_FILTER = device_filter(DeviceTopic.STATUS)


class ReportWatch:
    def __init__(
        self,
        settings: BrokerSettings,
        reports: VersionReports,
        *,
        on_change: Callable[[str], None],
        on_result: Callable[[str], None] = lambda _result: None,
        linger: float = LINGER,
    ) -> None:
        self._settings = replace(
            settings.mqtt(),
            client_id=f"{settings.client_id}-reports",
            clean_start=True,
            session_expiry=0,
        )
        self.reports = reports
        self._on_change = on_change
        self._on_result = on_result
        self.linger = linger
        self._wanted_at = -float("inf")
        self._wanted = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._gave_up = False  # a wait for the subscription timed out in this episode
        self.episodes = 0
        self._client: MqttClient | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def want(self) -> None:
        """A rollout is under way: subscribe (if not yet), and stay for ``linger`` more."""
        self._wanted_at = time.monotonic()
        self._wanted.set()

    async def ready(self, within: float) -> bool:
        """Want the reports and wait up to ``within`` seconds for the subscription; once a
        wait timed out, later ones in the same episode return at once (the broker may be
        away: the EdgeDevice statuses still tell)."""
        self.want()
        if self._subscribed.is_set():
            return True
        if self._gave_up or within <= 0:
            return False
        try:
            async with asyncio.timeout(within):
                await self._subscribed.wait()
        except TimeoutError:
            self._gave_up = True
            return False
        return True

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self.episodes += 1
            client = MqttClient(
                self._settings,
                on_connected=self._connected,
                on_disconnected=self._disconnected,
                logger=logger,
                on_message=self._message,
                fast_receive=True,
            )
            self._client = client
            try:
                await client.start()
                while (left := self._wanted_at + self.linger - time.monotonic()) > 0:
                    self._wanted.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await self._wanted.wait()
                logger.info("no rollout under way: status reports no longer read")
            finally:
                self._subscribed.clear()
                self._gave_up = False
                self.reports.clear()
                self._client = None
                await client.close()

    async def _connected(self, _session_present: bool) -> None:
        client = self._client
        if client is None or self._subscribed.is_set():
            return  # kept: the client subscribes again after every reconnect by itself
        try:
            await client.subscribe([(STATUS_FILTER, 0)], retain_handling=RetainHandling.DO_NOT_SEND)
        except DisconnectedError as exc:
            logger.info("status reports: subscribing failed: %s", exc)
            return
        except MqttError as exc:
            logger.error("status reports: subscribing failed: %s", exc)
            return
        self._gave_up = False
        self._subscribed.set()

    async def _disconnected(self, _reason: str) -> None:
        # Subscribed again by the client on the next connection; reports missed meanwhile
        # reach the EdgeDevice statuses through the bridge.
        pass

    def _message(self, message: Message) -> None:
        result, device_id = self.reports.take(message.topic, message.payload, time.monotonic())
        self._on_result(result)
        if result == CHANGED:
            self._on_change(device_id)
