"""OS updates with rpm-ostree: deploy the requested commit, reboot through a hook, and
judge the result after the boot."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from flotta.agent.osupdate.errors import OstreeCommandError, OstreeStatusError, OsUpdateError
from flotta.agent.osupdate.ostree import OstreeStatus, parse_status
from flotta.agent.osupdate.planning import StepKind, next_step, parse_time, verdict_after_boot
from flotta.agent.osupdate.remotes import REMOTE_NAME, remote_config
from flotta.agent.osupdate.state import load_state, save_state
from flotta.schemas.wire import DeviceEvent, OsInformation, UpgradeReport
from flotta.schemas.wire.status import UpgradeStatus

log = logging.getLogger(__name__)

STATE_FILE = "osupdate.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
REMOTES_DIR = Path("/etc/ostree/remotes.d")
UNSUPPORTED = "rpm-ostree is not installed: OS updates are not supported on this device"
UNVERIFIED = (
    "OS commits from a hosted objects URL are pulled without GPG signature verification "
    "(ostree_gpg_verify = false in the agent configuration)"
)


class OsUpdater:
    def __init__(
        self,
        state_dir: Path,
        *,
        rpm_ostree: str = "rpm-ostree",
        reboot_command: Sequence[str],
        boot_id_path: Path = BOOT_ID,
        remotes_dir: Path = REMOTES_DIR,
        command_time_limit: float = 1800.0,
        retry_after: timedelta = timedelta(minutes=10),
        gpg_verify: bool = True,
        gpg_keypath: str = "",
    ) -> None:
        self._state_path = state_dir / STATE_FILE
        self._rpm_ostree = rpm_ostree
        self._reboot_command = tuple(reboot_command)
        self._boot_id_path = boot_id_path
        self._remotes_dir = remotes_dir
        self._time_limit = command_time_limit
        self._retry_after = retry_after
        self._gpg_verify = gpg_verify
        self._gpg_keypath = gpg_keypath
        if not gpg_verify:
            log.warning("OS update: %s", UNVERIFIED)
        self._state = load_state(self._state_path)
        self._booted_commit = ""
        self._warned_unsupported = False

    @property
    def supported(self) -> bool:
        return shutil.which(self._rpm_ostree) is not None

    # ---- reporting -------------------------------------------------------------------------

    def report(self) -> UpgradeReport:
        if not self.supported:
            return UpgradeReport(
                supported=False, last_upgrade_status="Unsupported", message=UNSUPPORTED
            )
        if not self._booted_commit:
            self._booted_commit = self._booted_now()
        state = self._state
        status: UpgradeStatus = "InProgress" if state.phase else _finished(state.last_status)
        return UpgradeReport(
            supported=True,
            current_commit_id=self._booted_commit,
            requested_commit_id=state.requested_commit,
            last_upgrade_status=status,
            last_upgrade_time=parse_time(state.last_time),
            message=state.last_message,
        )

    def _booted_now(self) -> str:
        """A synchronous status query, only when nothing is cached yet."""
        try:
            done = subprocess.run(
                [self._rpm_ostree, "status", "--json"],
                capture_output=True,
                timeout=30,
                check=True,
            )
            booted = parse_status(done.stdout).booted
        except (OSError, subprocess.SubprocessError, OstreeStatusError) as exc:
            log.warning("OS update: cannot read the booted commit: %s", exc)
            return ""
        return booted.checksum if booted else ""

    # ---- reconciling -----------------------------------------------------------------------

    async def reconcile(self, os: OsInformation, *, change: bool = True) -> list[DeviceEvent]:
        """Judge a finished reboot, then move towards the requested OS; returns the events
        to publish. A reboot, when needed, is requested through the hook as the last step.
        ``change=False`` (outside the update window): judge only, deploy nothing."""
        if not self.supported:
            if (os.commit_id or os.automatically_upgrade) and not self._warned_unsupported:
                self._warned_unsupported = True
                return [event("Warning", "OsUpdateUnsupported", UNSUPPORTED)]
            return []
        events: list[DeviceEvent] = []
        try:
            status = await self._status()
            boot_id = self._boot_id()
            verdict = verdict_after_boot(self._state, status, boot_id)
            if verdict is not None:
                self._save(
                    phase="",
                    last_status=verdict.status,
                    last_time=now_text(),
                    last_message=verdict.message,
                    failed_commit=verdict.commit if verdict.status == "Failed" else "",
                    retry_not_before="",
                )
                kind: Literal["Normal", "Warning"] = (
                    "Normal" if verdict.status == "Succeeded" else "Warning"
                )
                events.append(event(kind, f"OsUpgrade{verdict.status}", verdict.message))
            step = next_step(os, status, self._state, now=datetime.now(UTC))
            if not change:
                return events
            log.debug("OS update: %s %s (%s)", step.kind.value, step.commit, step.reason)
            if step.kind is StepKind.DEPLOY:
                events += await self._deploy(step.commit, os.hosted_objects_url, boot_id)
            elif step.kind is StepKind.UPGRADE:
                events += await self._upgrade(status, boot_id)
            elif step.kind is StepKind.REBOOT:
                self._save(requested_commit=step.commit, phase="rebooting", boot_id=boot_id)
                events += await self._reboot(step.commit)
        except OsUpdateError as exc:
            log.warning("OS update: %s", exc)
            events.append(event("Warning", "OsUpgradeFailed", str(exc)))
        return events

    async def _deploy(self, commit: str, hosted_url: str, boot_id: str) -> list[DeviceEvent]:
        self._save(
            requested_commit=commit,
            phase="deploying",
            boot_id=boot_id,
            failed_commit="",
            retry_not_before="",
        )
        try:
            if hosted_url:
                self._write_remote(hosted_url)
                await self._run(self._rpm_ostree, "rebase", f"{REMOTE_NAME}:", commit)
            else:
                await self._run(self._rpm_ostree, "deploy", commit)
            status = await self._status()
            pending = status.pending
            if pending is None or pending.checksum != commit:
                raise OstreeCommandError(
                    (self._rpm_ostree, "deploy", commit), "no pending deployment of the commit"
                )
        except OsUpdateError as exc:
            retry = datetime.now(UTC) + self._retry_after
            self._save(
                phase="",
                last_status="Failed",
                last_time=now_text(),
                last_message=f"deploying {commit} failed: {exc}",
                retry_not_before=retry.isoformat(),
            )
            return [event("Warning", "OsUpgradeFailed", self._state.last_message)]
        self._save(phase="rebooting")
        message = f"{commit} deployed; rebooting into it"
        if hosted_url and not self._gpg_verify:
            message += f" ({UNVERIFIED})"
        started = event("Normal", "OsUpgradeStarted", message)
        return [started, *await self._reboot(commit)]

    async def _upgrade(self, status: OstreeStatus, boot_id: str) -> list[DeviceEvent]:
        booted = status.booted.checksum if status.booted else ""
        await self._run(self._rpm_ostree, "upgrade")
        pending = (await self._status()).pending
        if pending is None or pending.checksum == booted:
            return []
        self._save(
            requested_commit=pending.checksum,
            phase="rebooting",
            boot_id=boot_id,
            failed_commit="",
            retry_not_before="",
        )
        started = event("Normal", "OsUpgradeStarted", f"upgraded to {pending.checksum}; rebooting")
        return [started, *await self._reboot(pending.checksum)]

    async def _reboot(self, commit: str) -> list[DeviceEvent]:
        try:
            await self._run(*self._reboot_command)
        except OstreeCommandError as exc:
            return [event("Warning", "OsRebootFailed", f"rebooting into {commit}: {exc.reason}")]
        return []

    # ---- adapters --------------------------------------------------------------------------

    async def _status(self) -> OstreeStatus:
        status = parse_status(await self._run(self._rpm_ostree, "status", "--json"))
        self._booted_commit = status.booted.checksum if status.booted else ""
        return status

    async def _run(self, *command: str) -> bytes:
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise OstreeCommandError(command, str(exc)) from None
        try:
            async with asyncio.timeout(self._time_limit):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise OstreeCommandError(command, f"no answer within {self._time_limit:g} s") from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            detail = stderr.decode(errors="replace").strip()[-500:] or f"exit {process.returncode}"
            raise OstreeCommandError(command, detail)
        return stdout

    def _boot_id(self) -> str:
        try:
            return self._boot_id_path.read_text().strip()
        except OSError as exc:
            raise OsUpdateError(f"cannot read the boot id {self._boot_id_path}: {exc}") from exc

    def _write_remote(self, url: str) -> None:
        text = remote_config(url, gpg_verify=self._gpg_verify, gpg_keypath=self._gpg_keypath)
        if not self._gpg_verify:
            log.warning("OS update: remote %s at %s: %s", REMOTE_NAME, url, UNVERIFIED)
        try:
            self._remotes_dir.mkdir(parents=True, exist_ok=True)
            (self._remotes_dir / f"{REMOTE_NAME}.conf").write_text(text)
        except OSError as exc:
            raise OsUpdateError(f"cannot write the ostree remote: {exc}") from exc

    def _save(self, **changes: str) -> None:
        self._state = self._state.with_changes(**changes)
        try:
            save_state(self._state_path, self._state)
        except OSError as exc:
            raise OsUpdateError(f"cannot persist {self._state_path}: {exc}") from exc


def now_text() -> str:
    return datetime.now(UTC).isoformat()


def event(kind: Literal["Normal", "Warning"], reason: str, message: str) -> DeviceEvent:
    return DeviceEvent(
        id=uuid.uuid4().hex,
        time=datetime.now(UTC),
        type=kind,
        reason=reason,
        message=message[:4096],
    )


def _finished(status: str) -> UpgradeStatus:
    """A recorded status as the report spells it; anything else reports none."""
    if status == "InProgress":
        return "InProgress"
    if status == "Succeeded":
        return "Succeeded"
    if status == "Failed":
        return "Failed"
    return ""
