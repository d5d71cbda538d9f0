"""A Debian device in a container: Podman with the host's network (the test stack listens on
loopback only), no systemd, no Podman inside. The agent is started the way its installed
unit says (ExecStart, Environment, UMask, RuntimeDirectory) and stopped by its PID."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Protocol

UNIT = "/usr/lib/systemd/system/flotta-agent.service"
CONFIG = "/etc/flotta-agent/agent.toml"
PID_FILE = "/run/flotta-agent.pid"
LOG = "/var/log/flotta-agent.log"


class PodmanSelection(Protocol):
    """The environment that makes ``podman`` use one store (the images' store)."""

    def process_env(self) -> dict[str, str]: ...


class Device:
    def __init__(self, store: PodmanSelection, name: str) -> None:
        self.store = store
        self.name = name

    def podman(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.store.process_env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {done.stdout}{done.stderr}")
        return done

    def start(self, image: str, packages: list[Path]) -> None:
        mounts = [arg for p in packages for arg in ("-v", f"{p}:/packages/{p.name}:ro")]
        self.podman(
            "run", "-d", "--name", self.name, "--network", "host", *mounts, image,
            "sleep", "infinity",
        )  # fmt: skip

    def remove(self) -> None:
        self.podman("rm", "-f", "-t", "0", self.name, check=False)

    def sh(self, script: str, *, stdin: str | None = None, check: bool = True) -> str:
        args = ["exec", "-i"] if stdin is not None else ["exec"]
        done = self.podman(*args, self.name, "sh", "-c", script, stdin=stdin, check=check)
        return done.stdout

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {shlex.quote(path)} && echo yes || true").strip() == "yes"

    def read(self, path: str) -> str:
        return self.sh(f"cat {shlex.quote(path)}")

    def write(self, path: str, text: str) -> None:
        self.sh(f"cat > {shlex.quote(path)}", stdin=text)

    def digest(self, path: str) -> str:
        return hashlib.sha256(self.read(path).encode()).hexdigest()

    def inode(self, path: str) -> str:
        return self.sh(f"stat -c %i {shlex.quote(path)}").strip()

    def mode(self, path: str) -> str:
        return self.sh(f"stat -c '%a %U:%G' {shlex.quote(path)}").strip()

    def dpkg(self, *args: str) -> str:
        return self.sh(" ".join(["dpkg", *map(shlex.quote, args)]) + " 2>&1")

    def package_status(self) -> str:
        return self.sh("dpkg-query -W -f '${Status} ${Version}' flotta-agent 2>&1", check=False)

    # ---- the agent, as its unit runs it -------------------------------------------------------

    def unit_command(self) -> tuple[list[str], dict[str, str]]:
        unit = self.read(UNIT)
        argv = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.M).group(1))  # type: ignore[union-attr]
        environment: dict[str, str] = {}
        for line in re.findall(r"^Environment=(.+)$", unit, re.M):
            for assignment in shlex.split(line):
                key, _, value = assignment.partition("=")
                environment[key] = value
        return argv, environment

    def start_agent(self) -> None:
        argv, environment = self.unit_command()
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in environment.items())
        command = " ".join(map(shlex.quote, argv))
        script = (
            "install -d -m 0700 /run/flotta-agent /var/lib/flotta-agent && umask 077 && "
            f"echo $$ > {PID_FILE} && exec env {assignments} {command} >> {LOG} 2>&1"
        )
        self.podman("exec", "-d", self.name, "sh", "-c", script)
        deadline = time.monotonic() + 10
        while not self.exists(PID_FILE):
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)

    def agent_running(self) -> bool:
        return self.sh(f"kill -0 $(cat {PID_FILE}) 2>/dev/null && echo yes || true") == "yes\n"

    def stop_agent(self, timeout: float = 30) -> None:
        """SIGTERM to the recorded PID (what ``systemctl stop`` sends), then wait."""
        self.sh(f"kill -TERM $(cat {PID_FILE})")
        deadline = time.monotonic() + timeout
        while self.agent_running():
            assert time.monotonic() < deadline, f"the agent ignored SIGTERM:\n{self.log()}"
            time.sleep(0.2)
        self.sh(f"rm -f {PID_FILE}")

    def log(self) -> str:
        return self.sh(f"cat {LOG} 2>/dev/null || true")
