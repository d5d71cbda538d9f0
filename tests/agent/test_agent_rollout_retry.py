"""An explicit retry on a real device: real agent, real Podman, real Mosquitto (mTLS + ACL).

A failed version stays failed, pass after pass, whatever would happen now if it ran again; a
desired state with the same version and a greater ``retry`` token has it applied once more:
once per new token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from flotta.agent.daemon import Agent
from flotta.schemas.wire import DesiredState, StatusReport
from tests.agent.conftest import AgentConfigFactory
from tests.agent.fleet_peer import FleetPeer, wait_for
from tests.agent.test_agent_podman import SERVE, RunningAgent, pods
from tests.agent.test_agent_rollouts import good_then, pod, rolled_back
from tests.fixtures.podman import PodmanTestEnv

pytestmark = [pytest.mark.podman, pytest.mark.slow]


async def pod_ids(env: PodmanTestEnv) -> dict[str, str]:
    return {name: found.pod_id for name, found in (await pods(env)).items()}


async def test_a_failed_version_is_applied_again_once_per_new_retry_token(
    agent_config: AgentConfigFactory,
    fleet: FleetPeer,
    clean_podman: PodmanTestEnv,
    tmp_path: Path,
) -> None:
    flag = tmp_path / "flag"
    flag.mkdir()
    # Runs only while the host has flag/ok: the same version fails or runs depending on it.
    needs_flag = pod(
        clean_podman.image,
        f"test -f /flag/ok || exit 3; {SERVE}",
        restartPolicy="Never",
        container={"volumeMounts": [{"name": "flag", "mountPath": "/flag"}]},
        volumes=[{"name": "flag", "hostPath": {"path": str(flag), "type": "Directory"}}],
    )
    running = RunningAgent(Agent(agent_config()))
    try:
        good, before, bad = await good_then(fleet, clean_podman, {"web": needs_flag})
        report = await rolled_back(fleet, clean_podman, good, bad, before)
        assert report.failed is not None
        assert (report.failed.reason, report.failed.retry) == ("container-exited", 0)

        # Retry token 1, still without the flag: applied once more, failed under token 1.
        since = len(fleet.statuses)
        await fleet.publish_desired(retried(bad, 1))
        await reported(fleet, since, lambda s: s.applying_version == bad.version)
        again = await reported(
            fleet,
            since,
            lambda s: s.failed is not None and s.failed.retry == 1 and s.failed.rolled_back,
        )
        assert again.applied_version == good.version
        assert again.applying_version == ""

        # It would run now, but no new token: not applied, pass after pass.
        (flag / "ok").write_text("ok")
        ids = await pod_ids(clean_podman)
        await fleet.publish_desired(retried(bad, 1))  # the same token again
        await asyncio.sleep(5)  # more than two resync periods
        assert await pod_ids(clean_podman) == ids
        latest = fleet.statuses[-1]
        assert (latest.applied_version, latest.applying_version) == (good.version, "")
        assert latest.failed is not None
        assert latest.failed.retry == 1

        # Token 2: applied once more, healthy now, and the failure is gone.
        since = len(fleet.statuses)
        await fleet.publish_desired(retried(bad, 2))
        healthy = await reported(fleet, since, lambda s: s.applied_version == bad.version)
        assert healthy.failed is None
        assert healthy.applying_version == ""
        assert (await pod_ids(clean_podman))["web"] != ids["web"]
    finally:
        assert await running.stop() == 0


async def reported(
    fleet: FleetPeer, since: int, check: Callable[[StatusReport], bool]
) -> StatusReport:
    """The first status report after the first ``since`` ones that passes ``check``."""
    found: StatusReport = await wait_for(
        lambda: next((s for s in fleet.statuses[since:] if check(s)), None), 90
    )
    return found


def retried(state: DesiredState, token: int) -> DesiredState:
    """The same desired state (the same version) with a retry token."""
    return msgspec.structs.replace(state, retry=token)
