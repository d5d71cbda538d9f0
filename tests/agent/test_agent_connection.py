"""Connection-level behaviour against a real Mosquitto; Podman is not needed here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from flotta.agent.config import AgentConfig
from flotta.agent.daemon import Agent
from flotta.agent.errors import EnrolmentError
from flotta.agent.event_journal import JOURNAL_FILE, EventJournal
from flotta.agent.status_file import read_status
from flotta.schemas.codec import encode
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire import DeviceEvent, TelemetryReceipt
from tests.agent.conftest import AgentConfigFactory
from tests.agent.fleet_peer import FleetPeer, wait_for
from tests.fixtures.brokers import TestBroker
from tests.fixtures.operator_peer import EnrolmentPeer

pytestmark = pytest.mark.slow


@pytest.fixture
async def short_lived_fleet(mosquitto_broker: TestBroker) -> AsyncIterator[FleetPeer]:
    # 44 s of validity plus the CA's 5 min backdating: at 0.9 renewal is due ~10 s after issue.
    async with FleetPeer(mosquitto_broker, validity=timedelta(seconds=44)) as peer:
        yield peer


async def test_certificate_is_renewed_before_expiry_and_used_to_reconnect(
    agent_config_without_podman: AgentConfigFactory, short_lived_fleet: FleetPeer
) -> None:
    config = agent_config_without_podman(renew_at_fraction=0.9)
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    try:
        await wait_for(lambda: short_lived_fleet.enrolments, 30)
        await wait_for(lambda: agent.identity.status() is not None, 30)
        first = agent.identity.status()
        assert first is not None
        await wait_for(lambda: short_lived_fleet.renewals, 40)
        await wait_for(
            lambda: (s := agent.identity.status()) is not None and s.serial != first.serial, 20
        )
        # Reconnected with the renewed certificate: a second birth message arrives.
        await wait_for(
            lambda: len([c for c in short_lived_fleet.connections if c.state == "online"]) >= 2,
            20,
        )
        renewed = await short_lived_fleet.wait_status(
            lambda s: (
                s.certificate_not_after is not None and s.certificate_not_after > first.not_after
            )
        )
        assert renewed.certificate_not_after is not None
        status = read_status(config.state_dir)
        assert status is not None
        assert status.connected
    finally:
        agent.stop()
        assert await asyncio.wait_for(task, 30) == 0


async def test_declined_enrolment_stops_with_a_clear_error(
    agent_config_without_podman: AgentConfigFactory, mosquitto_broker: TestBroker
) -> None:
    config = agent_config_without_podman(device_id="refused-1")
    async with EnrolmentPeer(mosquitto_broker, decline=frozenset({"refused-1"})):
        with pytest.raises(EnrolmentError, match="declined"):
            await asyncio.wait_for(Agent(config).run(), 30)
    assert not config.identity_dir.joinpath("device.crt").exists()


class _Run:
    def __init__(self, config: AgentConfig) -> None:
        self.agent = Agent(config)
        self.task = asyncio.create_task(self.agent.run())

    async def stop(self) -> None:
        self.agent.stop()
        assert await asyncio.wait_for(self.task, 30) == 0


async def test_events_kept_until_their_receipt_survive_an_agent_restart(
    agent_config_without_podman: AgentConfigFactory, fleet: FleetPeer
) -> None:
    # the peer sends no receipt until the end, and the resend period is longer than the test
    config = agent_config_without_podman(telemetry_resend_seconds=600)

    def copies() -> list[DeviceEvent]:
        return [e for e in fleet.events if e.reason == "InvalidDesiredState"]

    await fleet.publish_raw("edge-1", b"\xff not json")  # retained: an event on subscribing
    run = _Run(config)
    try:
        await wait_for(lambda: copies() and run.agent.events.unconfirmed == 1, 30)
        await fleet.publish_raw("edge-1", b"")  # cleared: the next runs get no bad state
    finally:
        await run.stop()
    [sent] = copies()
    assert (sent.stream, sent.sequence) == (run.agent.events.stream, 0)

    run = _Run(config)  # sends the kept event again at once, the same bytes
    try:
        await wait_for(lambda: len(copies()) == 2, 30)
        assert copies()[1] == sent
        receipt = TelemetryReceipt(kind="events", stream=run.agent.events.stream, sequences=[0])
        await fleet.bridge.publish(
            device_topic("edge-1", DeviceTopic.RECEIPTS), encode(receipt), qos=1
        )
        await wait_for(lambda: len(run.agent.events) == 0, 30)
    finally:
        await run.stop()
    assert run.agent.events.stream == sent.stream
    assert run.agent.state.bad_payloads == 0

    journal = EventJournal(config.state_dir / JOURNAL_FILE)
    try:
        saved = journal.load()
    finally:
        journal.close()
    assert (saved.stream, saved.next_sequence, saved.events) == (sent.stream, 1, [])


async def test_a_refusal_for_another_key_does_not_stop_the_enrolment(
    agent_config_without_podman: AgentConfigFactory, mosquitto_broker: TestBroker
) -> None:
    """A competing request under this device's id (another holder of the bootstrap
    certificate) is refused; the device sees that refusal, names another key in it, and goes
    on waiting for its own answer."""
    config = agent_config_without_podman(device_id="competed-1")
    async with EnrolmentPeer(mosquitto_broker, competed=frozenset({"competed-1"})) as peer:
        running = _Run(config)
        try:
            await wait_for(lambda: config.identity_dir.joinpath("device.crt").exists(), 30)
        finally:
            await running.stop()
        assert peer.issued == ["competed-1"]
