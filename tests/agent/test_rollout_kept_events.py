"""What a rollout keeps on disk, in which order: a run killed between two writes must leave
enough for the next run to tell the fleet what happened."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flotta.agent.daemon import Agent
from flotta.agent.event_journal import JOURNAL_FILE, EventJournal
from flotta.agent.rollout_journal import RolloutJournal, RolloutRecord
from flotta.schemas.codec import with_version
from flotta.schemas.wire import DesiredState, DesiredWorkload
from tests.agent.conftest import AgentConfigFactory
from tests.fixtures.podman import PodmanTestEnv

pytestmark = [pytest.mark.podman]


async def test_the_failure_event_is_on_disk_before_the_journal_says_rolling_back(
    agent_config: AgentConfigFactory, clean_podman: PodmanTestEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed once the rollout journal says rolling-back only finishes the rollback
    when restarted; the VersionFailed event is not made again."""
    config = agent_config()
    config.state_dir.mkdir(parents=True, mode=0o700)
    agent = Agent(config)
    agent.event_sender.resume()
    kept_when_rolling_back: list[list[str]] = []
    save = RolloutJournal.save

    def save_and_look(journal: RolloutJournal, record: RolloutRecord) -> None:
        save(journal, record)
        if record.transaction is not None and record.transaction.phase == "rolling-back":
            events, saved = EventJournal.open(config.state_dir / JOURNAL_FILE)
            events.close()
            kept_when_rolling_back.append([event.reason for _, event in saved.events])

    monkeypatch.setattr(RolloutJournal, "save", save_and_look)
    # a probe on an init container: the version fails before any pod is made
    init = {
        "name": "init",
        "image": clean_podman.image,
        "livenessProbe": {"exec": {"command": ["true"]}},
    }
    spec = {"initContainers": [init], "containers": [{"name": "app", "image": clean_podman.image}]}
    desired = with_version(
        DesiredState(
            device_id=config.device_id,
            namespace="default",
            workloads=[DesiredWorkload(name="web", namespace="default", pod_spec=spec)],
        )
    )
    agent.state.desired = desired
    try:
        step, _ = await agent.reconciler.rollout.step(desired, datetime.now(UTC))
    finally:
        agent.event_sender.close_journal()
    assert step == "apply"
    assert agent.state.failed is not None
    assert agent.state.failed.rolled_back
    assert kept_when_rolling_back == [["VersionFailed"]]
