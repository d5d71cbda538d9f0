"""The device's MQTT session with its own certificate.

One client at a time: it subscribes to what the control plane sends the device, announces the
connection state (retained, with a will saying "offline"), hands every message to the inbox
and renews the certificate when due. A renewed certificate ends the client; the agent then
starts the next one, which connects with the new certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flotta.agent.agent_state import AgentState
from flotta.agent.config import AgentConfig
from flotta.agent.identity import IdentityStore
from flotta.agent.renewal import Renewer
from flotta.agent.reporting import utc
from flotta.mqtt import Message, MqttClient, MqttError, MqttSettings, TlsFiles, Will
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import ConnectionState
from flotta.tasks import TaskSet

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
RENEWAL_TIMEOUT = 60.0
RENEWAL_RETRY = 300.0
GOODBYE_TIMEOUT = 5.0


class MqttSession:
    def __init__(
        self,
        config: AgentConfig,
        identity: IdentityStore,
        state: AgentState,
        renewer: Renewer,
        *,
        handle: Callable[[Message], None],
        on_online: Callable[[], None],
        on_offline: Callable[[], None],
        on_task_failure: Callable[[str, BaseException], None],
    ) -> None:
        """``handle`` takes each message (an exception it raises counts as a bad payload);
        ``on_online`` runs once the client is subscribed and announced itself online,
        ``on_offline`` once a connection was lost."""
        self._config = config
        self._device_id = identity.device_id
        self._identity = identity
        self._state = state
        self._renewer = renewer
        self._handle = handle
        self._on_online = on_online
        self._on_offline = on_offline
        self._client: MqttClient | None = None
        self._subscribed = False
        self._tasks = TaskSet("agent-session", on_task_failure)
        self._renewed = asyncio.Event()

    @property
    def client(self) -> MqttClient | None:
        """The current client (None before the first and between two)."""
        return self._client

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _topic(self, kind: DeviceTopic) -> str:
        return device_topic(self._device_id, kind)

    def _connection_state(self, reason: str) -> ConnectionState:
        return ConnectionState(
            state="offline" if reason else "online",
            time=datetime.now(UTC),
            applied_version=self._state.applied_version,
            agent_version=AGENT_VERSION,
            reason=reason,
        )

    def settings(self) -> MqttSettings:
        config, identity = self._config, self._identity
        will = self._connection_state("connection lost")
        return MqttSettings(
            host=config.broker_host,
            port=config.broker_port,
            client_id=self._device_id,
            tls=TlsFiles(
                identity.ca_path,
                identity.cert_path,
                identity.key_path,
                check_hostname=config.check_hostname,
            ),
            keepalive=config.keepalive_seconds,
            will=Will(self._topic(DeviceTopic.CONNECTION), encode(will), qos=1, retain=True),
            reconnect_base=config.reconnect_base_seconds,
            reconnect_cap=config.reconnect_cap_seconds,
        )

    async def run_until_renewed(self) -> None:
        """One MQTT client with the current certificate, until a renewal (or cancelled)."""
        self._renewed.clear()
        client = MqttClient(
            self.settings(),
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            manual_ack=True,
        )
        self._client = client
        self._subscribed = False
        await client.start()
        self._tasks.start("consume", self._consume(client))
        self._tasks.start("renewal", self._renew_when_due(client))
        await self._renewed.wait()
        await self._tasks.stop_all()
        self._client = None
        await client.close()
        log.info("reconnecting with the renewed certificate")

    async def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1 on the current client; an MqttError when there is none."""
        client = self._client
        if client is None:
            raise MqttError("no MQTT client yet")
        await client.publish(topic, payload, qos=1)

    async def stop_tasks(self) -> None:
        await self._tasks.stop_all()

    async def close(self, *, say_goodbye: bool) -> None:
        """Close the client; with ``say_goodbye`` announce "agent stopped" first if connected."""
        client, self._client = self._client, None
        if client is None:
            return
        if client.connected and say_goodbye:
            with contextlib.suppress(MqttError, TimeoutError):
                await asyncio.wait_for(
                    self._publish_connection(client, "agent stopped"), GOODBYE_TIMEOUT
                )
        await client.close()

    async def _on_connected(self, session_present: bool) -> None:
        client = self._client
        if client is None:
            return
        self._state.last_connected = utc(datetime.now(UTC))
        self._state.last_error = ""
        if not (session_present and self._subscribed):
            await client.subscribe(
                [
                    (self._topic(DeviceTopic.DESIRED), 1),
                    (self._topic(DeviceTopic.CERTIFICATE), 1),
                    (self._topic(DeviceTopic.RECEIPTS), 1),
                ]
            )
            self._subscribed = True
        await self._publish_connection(client, "")
        self._on_online()

    async def _on_disconnected(self, reason: str) -> None:
        self._state.last_error = reason
        log.warning("MQTT connection lost: %s", reason)
        self._on_offline()

    async def _publish_connection(self, client: MqttClient, reason: str) -> None:
        state = self._connection_state(reason)
        await client.publish(self._topic(DeviceTopic.CONNECTION), encode(state), qos=1, retain=True)

    async def _consume(self, client: MqttClient) -> None:
        async for message in client.messages():
            try:
                self._handle(message)
            except Exception:  # a message the checks did not foresee costs itself, no more
                self._state.bad_payloads += 1
                log.exception("a message on %r could not be handled", message.topic[:200])
            client.ack(message)

    async def _renew_when_due(self, client: MqttClient) -> None:
        topic = self._topic(DeviceTopic.CSR)

        async def publish(payload: bytes) -> None:
            await client.publish(topic, payload, qos=1)

        while True:
            delay = self._renewer.due()
            if delay > 0:
                await asyncio.sleep(min(delay, 3600.0))
                continue
            await client.wait_connected()
            try:
                renewed = await self._renewer.renew(publish, answer_within=RENEWAL_TIMEOUT)
            except MqttError as exc:
                log.info("certificate renewal not sent: %s", exc)
                renewed = None
            if renewed is not None:
                self._renewed.set()
                return
            await asyncio.sleep(RENEWAL_RETRY)
