"""Every command that ``flotta dev up`` prints works, as printed, against the running stack."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from flotta.dev.stack.usage import usage
from tests.e2e.conftest import RunningSystem

REPO = Path(__file__).resolve().parents[2]
# What each long-running command is given to stop by itself once it has shown something.
BOUNDED = {
    "mosquitto_sub": ["-C", "2", "-W", "60"],
}
STREAMING = {("kubectl", "-w"), ("flotta", "tail")}


def printed_commands(text: str) -> list[list[str]]:
    """The indented lines of the usage text, continuation lines joined, comments dropped."""
    commands: list[list[str]] = []
    pending = ""
    for line in text.splitlines():
        if not line.startswith("  ") and not pending:
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        commands.append(shlex.split(pending, comments=True))
        pending = ""
    return commands


def _streaming(argv: list[str]) -> bool:
    return any(program == argv[0] and flag in argv for program, flag in STREAMING)


def _run(argv: list[str], env: dict[str, str]) -> str:
    if argv[0] in BOUNDED:
        argv = argv + BOUNDED[argv[0]]
    if not _streaming(argv):
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, f"{shlex.join(argv)} failed: {done.stderr}"
        return done.stdout
    # A command that streams until stopped: read until its first lines came, then stop it.
    process = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return "".join(lines)


def test_the_usage_text_is_read_as_the_commands_it_shows() -> None:
    text = "intro\n  kubectl get x   # a comment\n  tool -a \\\n    --b c\nLogs: here\n"
    assert printed_commands(text) == [["kubectl", "get", "x"], ["tool", "-a", "--b", "c"]]


def test_every_printed_command_works(simulated_system: RunningSystem) -> None:
    system = simulated_system
    text = usage(system.layout, system.layout.ports())
    commands = printed_commands(text)
    programs = {argv[0] for argv in commands}
    assert programs == {"export", "kubectl", "flotta", "mosquitto_sub", "curl", "tail"}, text

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs: dict[str, str] = {}
    for argv in commands:
        if argv[0] == "export":
            name, _, value = argv[1].partition("=")
            env[name] = value
            continue
        outputs[shlex.join(argv)] = _run(argv, env)

    def output_of(fragment: str) -> str:
        return next(out for command, out in outputs.items() if fragment in command)

    assert "edgedevice" in output_of("get flotta -A").lower()
    assert "sim-0000" in output_of("get edgedevices -A -w")
    assert "edgeworkload" in output_of("apply -f").lower()
    assert "flotta.device." in output_of("dev tail")
    queries = [out for command, out in outputs.items() if command.startswith("curl")]
    assert len(queries) == 3  # Prometheus twice, Loki once (their content: test_telemetry_stack)
    assert all(json.loads(out)["status"] == "success" for out in queries)
    subscribed = output_of("mosquitto_sub").splitlines()
    assert len(subscribed) == 2, subscribed
    assert all(line.startswith("flotta/devices/sim-") for line in subscribed), subscribed
