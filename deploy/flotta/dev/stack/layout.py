"""Where the local stack keeps its state, and the ports it keeps across restarts."""

from __future__ import annotations

import json
import os
import random
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path

LOOPBACK = "127.0.0.1"
DEFAULT_STATE_DIR = Path(".flotta")


@dataclass(frozen=True)
class Ports:
    mqtt: int  # the fleet broker: devices and observers
    nats: int
    kube: int
    operator_health: int
    bridge_health: int
    mqtt_services: int  # the fleet broker: the operator and the bridge
    mqtt_enrolment: int  # the enrolment broker
    prometheus: int
    loki: int
    exporter_health: int
    syslog: int

    @classmethod
    def choose(cls) -> Ports:
        return cls(*_stable_ports(len(fields(cls))))

    @classmethod
    def completed(cls, known: dict[str, int]) -> Ports:
        """The ports a state dir recorded, with new ones for what it predates."""
        missing = [f.name for f in fields(cls) if f.name not in known]
        chosen = _stable_ports(len(missing)) if missing else []
        return cls(**known, **dict(zip(missing, chosen, strict=True)))


# Below the kernel's ephemeral range (32768-60999 by default): a port kept across restarts must
# not be taken meanwhile by some client's outgoing connection.
STABLE_RANGE = (20000, 32000)


def _stable_ports(count: int) -> list[int]:
    chosen: list[int] = []
    candidates = list(range(*STABLE_RANGE))
    random.shuffle(candidates)
    for port in candidates:
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise OSError(f"no {count} free loopback ports in {STABLE_RANGE}")


@dataclass(frozen=True)
class StackLayout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kube(self) -> Path:
        return self.root / "kube"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def mosquitto(self) -> Path:
        return self.root / "mosquitto"

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def agent(self) -> Path:
        return self.root / "agent"

    @property
    def podman(self) -> Path:
        return self.root / "podman"

    @property
    def simulator(self) -> Path:
        return self.root / "simulator"

    @property
    def prometheus(self) -> Path:
        return self.root / "prometheus"

    @property
    def loki(self) -> Path:
        return self.root / "loki"

    @property
    def syslog(self) -> Path:
        return self.root / "syslog"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    @property
    def bridge_group(self) -> Path:
        """The bridge replicas' secret shared-subscription group."""
        return self.root / "bridge-group"

    @property
    def processes(self) -> Path:
        return self.root / "processes.json"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    def ports(self) -> Ports:
        """The ports of this state dir: chosen at the first start, the same ever after."""
        if self.ports_file.exists():
            known = json.loads(self.ports_file.read_text())
            ports = Ports.completed(known)
            if set(asdict(ports)) != set(known):
                write_json(self.ports_file, asdict(ports))
            return ports
        ports = Ports.choose()
        write_json(self.ports_file, asdict(ports))
        return ports

    def write_endpoints(self, ports: Ports) -> None:
        write_json(
            self.endpoints,
            {
                "mqtt": f"mqtts://{LOOPBACK}:{ports.mqtt}",
                "enrolment": f"mqtts://{LOOPBACK}:{ports.mqtt_enrolment}",
                "nats": f"tls://{LOOPBACK}:{ports.nats}",
                "kubeconfig": str(self.kubeconfig.resolve()),
                "ca": str((self.pki / "ca.crt").resolve()),
                "prometheus": f"http://{LOOPBACK}:{ports.prometheus}",
                "loki": f"http://{LOOPBACK}:{ports.loki}",
                "syslog": f"tcp://{LOOPBACK}:{ports.syslog}",
            },
        )


def write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (keys, tokens, kubeconfigs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
