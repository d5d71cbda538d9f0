"""OsUpdater against the rpm-ostree stand-in on PATH (tests/agent_osupdate/standin): real
subprocesses that keep the deployments in a JSON file and answer like rpm-ostree."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flotta.agent.osupdate import OsUpdater
from flotta.schemas.wire import OsInformation
from tests.agent_osupdate.conftest import BOOTED, LATEST, MISSING, NEW, OstreeHost

REPO = Path(__file__).resolve().parents[2]


def updater(host: OstreeHost, **kwargs: object) -> OsUpdater:
    return OsUpdater(
        host.state_dir,
        reboot_command=kwargs.pop("reboot_command", host.reboot_command),  # type: ignore[arg-type]
        boot_id_path=host.boot_id_file,
        remotes_dir=host.state_dir / "remotes.d",
        **kwargs,  # type: ignore[arg-type]
    )


def reasons(events: list) -> list[str]:  # type: ignore[type-arg]
    return [event.reason for event in events]


async def test_absent_rpm_ostree_means_unsupported(tmp_path: Path) -> None:
    updates = OsUpdater(tmp_path, rpm_ostree="no-such-rpm-ostree-here", reboot_command=["true"])
    report = updates.report()
    assert not report.supported
    assert report.last_upgrade_status == "Unsupported"
    assert "not supported" in report.message
    assert reasons(await updates.reconcile(OsInformation(commit_id=NEW))) == ["OsUpdateUnsupported"]
    assert await updates.reconcile(OsInformation(commit_id=NEW)) == []


async def test_deploy_reboot_and_report_success_after_boot(ostree_host: OstreeHost) -> None:
    updates = updater(ostree_host)
    report = updates.report()
    assert report.supported
    assert report.current_commit_id == BOOTED
    assert await updates.reconcile(OsInformation()) == []

    events = await updates.reconcile(OsInformation(commit_id=NEW))
    assert reasons(events) == ["OsUpgradeStarted"]
    assert ostree_host.calls("deploy") == [["deploy", NEW]]
    assert ostree_host.read()["reboots"] == 1
    assert updates.report().last_upgrade_status == "InProgress"
    assert updates.report().requested_commit_id == NEW

    after_boot = updater(ostree_host)  # the agent starts again after the reboot
    assert after_boot.report().last_upgrade_status == "InProgress"
    events = await after_boot.reconcile(OsInformation(commit_id=NEW))
    assert reasons(events) == ["OsUpgradeSucceeded"]
    report = after_boot.report()
    assert report.current_commit_id == NEW
    assert report.last_upgrade_status == "Succeeded"
    assert report.last_upgrade_time is not None
    assert await after_boot.reconcile(OsInformation(commit_id=NEW)) == []
    assert ostree_host.read()["reboots"] == 1


async def test_deployed_but_not_booted_is_failed_and_not_retried(ostree_host: OstreeHost) -> None:
    ostree_host.update(bad=[NEW])
    updates = updater(ostree_host)
    assert reasons(await updates.reconcile(OsInformation(commit_id=NEW))) == ["OsUpgradeStarted"]
    after_boot = updater(ostree_host)
    events = await after_boot.reconcile(OsInformation(commit_id=NEW))
    assert reasons(events) == ["OsUpgradeFailed"]
    assert events[0].type == "Warning"
    assert "deployed but not booted" in events[0].message
    report = after_boot.report()
    assert (report.current_commit_id, report.last_upgrade_status) == (BOOTED, "Failed")
    assert await after_boot.reconcile(OsInformation(commit_id=NEW)) == []
    assert len(ostree_host.calls("deploy")) == 1
    # another request is tried
    assert reasons(await after_boot.reconcile(OsInformation(commit_id=LATEST))) == [
        "OsUpgradeStarted"
    ]


async def test_a_commit_that_cannot_be_deployed_fails_without_reboot(
    ostree_host: OstreeHost,
) -> None:
    updates = updater(ostree_host)
    events = await updates.reconcile(OsInformation(commit_id=MISSING))
    assert reasons(events) == ["OsUpgradeFailed"]
    assert "No such metadata object" in events[0].message
    assert "reboots" not in ostree_host.read()
    assert updates.report().last_upgrade_status == "Failed"
    assert await updates.reconcile(OsInformation(commit_id=MISSING)) == []  # waits to retry
    assert len(ostree_host.calls("deploy")) == 1


async def test_automatic_upgrade(ostree_host: OstreeHost) -> None:
    updates = updater(ostree_host)
    request = OsInformation(automatically_upgrade=True)
    assert await updates.reconcile(request) == []  # nothing newer
    assert "reboots" not in ostree_host.read()
    ostree_host.update(latest=LATEST)
    assert reasons(await updates.reconcile(request)) == ["OsUpgradeStarted"]
    after_boot = updater(ostree_host)
    assert reasons(await after_boot.reconcile(request)) == ["OsUpgradeSucceeded"]
    assert after_boot.report().current_commit_id == LATEST


async def test_hosted_objects_url_rebases_onto_the_flotta_remote(ostree_host: OstreeHost) -> None:
    updates = updater(ostree_host)
    request = OsInformation(commit_id=NEW, hosted_objects_url="http://127.0.0.1:8080/repo")
    assert reasons(await updates.reconcile(request)) == ["OsUpgradeStarted"]
    assert ostree_host.calls("rebase") == [["rebase", "flotta:", NEW]]
    remote = (ostree_host.state_dir / "remotes.d" / "flotta.conf").read_text()
    assert "url=http://127.0.0.1:8080/repo" in remote
    assert ostree_host.read()["deployments"][0]["origin"] == "flotta:fedora/iot"


async def test_a_failing_reboot_hook_is_reported_and_retried(ostree_host: OstreeHost) -> None:
    updates = updater(ostree_host, reboot_command=["false"])
    assert reasons(await updates.reconcile(OsInformation(commit_id=NEW))) == [
        "OsUpgradeStarted",
        "OsRebootFailed",
    ]
    retry = updater(ostree_host)  # same boot, working hook now
    assert reasons(await retry.reconcile(OsInformation(commit_id=NEW))) == []
    assert ostree_host.read()["reboots"] == 1
    assert len(ostree_host.calls("deploy")) == 1  # deployed once, rebooted on retry
    assert reasons(await updater(ostree_host).reconcile(OsInformation(commit_id=NEW))) == [
        "OsUpgradeSucceeded"
    ]


AGENT_SCRIPT = """
import asyncio, sys
from pathlib import Path
from flotta.agent.osupdate import OsUpdater
from flotta.schemas.wire import OsInformation
updates = OsUpdater(Path(sys.argv[1]), reboot_command=sys.argv[4:], boot_id_path=Path(sys.argv[2]))
print("reconciling", flush=True)
asyncio.run(updates.reconcile(OsInformation(commit_id=sys.argv[3])))
"""


def kill_agent_mid_deploy(host: OstreeHost) -> None:
    """Run reconcile in a separate process and SIGKILL it while rpm-ostree deploys."""
    host.update(deploy_delay=1.5)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / p) for p in ("schemas", "agent"))
    command = [sys.executable, "-c", AGENT_SCRIPT, str(host.state_dir), str(host.boot_id_file)]
    with subprocess.Popen(
        [*command, NEW, *host.reboot_command], env=env, stdout=subprocess.PIPE, text=True
    ) as agent:
        assert agent.stdout is not None
        assert agent.stdout.readline().strip() == "reconciling"
        deadline = time.monotonic() + 20
        while not host.calls("deploy") and time.monotonic() < deadline:
            time.sleep(0.05)
        agent.send_signal(signal.SIGKILL)  # rpm-ostree's transaction goes on without the agent
        agent.wait()
    assert host.calls("deploy") == [["deploy", NEW]]
    assert "reboots" not in host.read()
    while host.read()["deployments"][0]["checksum"] != NEW:
        assert time.monotonic() < deadline
        time.sleep(0.05)


async def test_agent_killed_mid_deploy_finishes_after_restart(ostree_host: OstreeHost) -> None:
    await asyncio.to_thread(kill_agent_mid_deploy, ostree_host)
    restarted = updater(ostree_host)
    assert restarted.report().last_upgrade_status == "InProgress"
    assert reasons(await restarted.reconcile(OsInformation(commit_id=NEW))) == []
    assert ostree_host.read()["reboots"] == 1
    assert len(ostree_host.calls("deploy")) == 1  # already deployed: only the reboot remained
    after_boot = updater(ostree_host)
    assert reasons(await after_boot.reconcile(OsInformation(commit_id=NEW))) == [
        "OsUpgradeSucceeded"
    ]
