"""The ostree remote the agent writes: GPG verification on unless configured off, and a URL
from the desired state cannot add lines of its own."""

import logging
from pathlib import Path

import pytest

from flotta.agent.config import build_config
from flotta.agent.errors import ConfigError
from flotta.agent.osupdate import OsUpdateError, OsUpdater
from flotta.agent.osupdate.remotes import remote_config
from flotta.schemas.wire import OsInformation
from tests.agent_osupdate.conftest import NEW, OstreeHost

URL = "https://ostree.example/repo"


def test_verification_is_on_by_default() -> None:
    assert build_config({}).ostree_gpg_verify is True
    assert remote_config(URL, gpg_verify=True) == (
        f'[remote "flotta"]\nurl={URL}\ngpg-verify=true\n'
    )


def test_a_key_path_is_given_to_ostree() -> None:
    text = remote_config(URL, gpg_verify=True, gpg_keypath="/etc/flotta-agent/os.gpg")
    assert text.splitlines()[2:] == ["gpg-verify=true", "gpgkeypath=/etc/flotta-agent/os.gpg"]


def test_off_only_when_asked() -> None:
    text = remote_config(URL, gpg_verify=False, gpg_keypath="/ignored")
    assert text.splitlines()[2:] == ["gpg-verify=false"]


@pytest.mark.parametrize(
    "url",
    [
        f"{URL}\ngpg-verify=false",
        f"{URL}\rgpg-verify=false",
        f"{URL} x",
        "",
        "ftp://ostree.example/repo",
        "ostree.example/repo",
    ],
)
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(OsUpdateError, match="hosted objects URL"):
        remote_config(url, gpg_verify=True)


@pytest.mark.parametrize("keypath", ["relative/key.gpg", "/etc/key\n.gpg"])
def test_key_path_must_be_absolute_and_one_line(keypath: str) -> None:
    with pytest.raises(ConfigError, match="ostree_gpg_keypath"):
        build_config({"ostree_gpg_keypath": keypath})


def updater(host: OstreeHost, **kwargs: object) -> OsUpdater:
    return OsUpdater(
        host.state_dir,
        reboot_command=host.reboot_command,
        boot_id_path=host.boot_id_file,
        remotes_dir=host.state_dir / "remotes.d",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_updater_writes_a_verifying_remote_by_default(
    ostree_host: OstreeHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    updates = updater(ostree_host, gpg_keypath="/etc/flotta-agent/os.gpg")
    events = await updates.reconcile(OsInformation(commit_id=NEW, hosted_objects_url=URL))
    assert [e.reason for e in events] == ["OsUpgradeStarted"]
    assert "GPG" not in events[0].message
    remote = (ostree_host.state_dir / "remotes.d" / "flotta.conf").read_text()
    assert "gpg-verify=true\ngpgkeypath=/etc/flotta-agent/os.gpg\n" in remote
    assert "GPG" not in caplog.text


async def test_updater_with_verification_off_says_so(
    ostree_host: OstreeHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    updates = updater(ostree_host, gpg_verify=False)
    assert "without GPG signature verification" in caplog.text  # at start, before any update
    events = await updates.reconcile(OsInformation(commit_id=NEW, hosted_objects_url=URL))
    assert [e.reason for e in events] == ["OsUpgradeStarted"]
    assert "ostree_gpg_verify = false" in events[0].message
    remote = (ostree_host.state_dir / "remotes.d" / "flotta.conf").read_text()
    assert "gpg-verify=false" in remote
    assert sum("remote flotta at" in r.getMessage() for r in caplog.records) == 1


async def test_a_url_with_a_line_break_fails_the_update_and_writes_nothing(
    ostree_host: OstreeHost,
) -> None:
    updates = updater(ostree_host)
    request = OsInformation(commit_id=NEW, hosted_objects_url=f"{URL}\ngpg-verify=false")
    events = await updates.reconcile(request)
    assert [e.reason for e in events] == ["OsUpgradeFailed"]
    assert "hosted objects URL" in events[0].message
    assert not (ostree_host.state_dir / "remotes.d").exists()
    assert ostree_host.calls("rebase") == []


def test_packaged_configuration_keeps_verification_on() -> None:
    from flotta.agent.config import load_config

    repo = Path(__file__).resolve().parents[2]
    assert load_config(repo / "agent/packaging/agent.toml").ostree_gpg_verify is True
