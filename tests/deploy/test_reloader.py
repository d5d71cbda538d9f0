"""flotta.mosquitto.reloader: change detection, process lookup, signalling."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flotta.mosquitto.reloader import Reloader, build_parser, find_processes, main


class Sent:
    """Records the signals the reloader sends (no process is signalled)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, pid: int, signum: int) -> None:
        self.calls.append((pid, signum))


def test_signals_only_when_a_watched_file_changed(tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    cert = tmp_path / "server.crt"
    crl.write_text("one")
    cert.write_text("cert")
    sent = Sent()
    reloader = Reloader([crl, cert], lambda: [41, 42], send=sent)
    assert not reloader.check()
    crl.write_text("two")
    assert reloader.check()
    assert sent.calls == [(41, signal.SIGHUP), (42, signal.SIGHUP)]
    assert not reloader.check()
    cert.write_text("renewed")
    assert reloader.check()
    assert len(sent.calls) == 4


def test_a_missing_file_waits_until_it_is_back(tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_text("one")
    sent = Sent()
    reloader = Reloader([crl], lambda: [7], send=sent)
    crl.unlink()
    assert not reloader.check()
    crl.write_text("two")
    assert reloader.check()
    assert sent.calls == [(7, signal.SIGHUP)]


def test_follows_a_symlink_swap_as_the_kubelet_does(tmp_path: Path) -> None:
    """A Secret volume: crl.pem -> ..data/crl.pem, ..data -> a timestamped directory."""
    first, second = tmp_path / "..2024_1", tmp_path / "..2024_2"
    for directory, text in ((first, "old"), (second, "new")):
        directory.mkdir()
        (directory / "crl.pem").write_text(text)
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "crl.pem").symlink_to("..data/crl.pem")
    sent = Sent()
    reloader = Reloader([tmp_path / "crl.pem"], lambda: [9], send=sent)
    swap = tmp_path / "..data_tmp"
    swap.symlink_to(second.name)
    os.replace(swap, tmp_path / "..data")
    assert reloader.check()
    assert sent.calls == [(9, signal.SIGHUP)]


def test_nothing_to_signal_still_takes_the_new_content(tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_text("one")
    sent = Sent()
    reloader = Reloader([crl], list, send=sent)
    crl.write_text("two")
    assert reloader.check()  # the broker reads it when it starts
    assert sent.calls == []
    assert not reloader.check()


def test_find_processes_by_name(tmp_path: Path) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    name = f"rl-{uuid.uuid4().hex[:10]}"  # unique, under the kernel's 15 characters
    binary = tmp_path / name
    shutil.copy(sleep, binary)
    process = subprocess.Popen([str(binary), "30"])
    try:
        # The kernel renames the process a moment after the exec that Popen waited for.
        deadline = time.monotonic() + 5
        while not find_processes(name) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert find_processes(name) == [process.pid]
        assert find_processes(f"{name}-other") == []
    finally:
        process.terminate()
        process.wait(5)
    assert find_processes(name) == []


def test_signal_reaches_a_real_process(tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_text("one")
    marker = tmp_path / "hup"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            f"signal.signal(signal.SIGHUP, lambda *_: open({str(marker)!r}, 'w').close())\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        reloader = Reloader([crl], lambda: [child.pid])
        crl.write_text("two")
        assert reloader.check()
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
    finally:
        child.terminate()
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()


def test_command_line() -> None:
    args = build_parser().parse_args(["--watch", "/a", "--watch", "/b"])
    assert [str(p) for p in args.watch] == ["/a", "/b"]
    assert args.process == "mosquitto"
    with pytest.raises(SystemExit):
        main(["--watch", "/a", "--interval", "0"])
