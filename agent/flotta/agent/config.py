"""The agent's settings: a TOML file with documented defaults, then command-line overrides.

Every key is optional; ``agent/packaging/agent.toml`` lists them all with their defaults.
Settings are loaded once and passed in; nothing reads them from globals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flotta.agent.errors import ConfigError
from flotta.schemas.errors import TopicError
from flotta.schemas.topics import ENROLMENT_PORT, validate_device_id, validate_namespace

DEFAULT_CONFIG_PATH = Path("/etc/flotta-agent/agent.toml")
DEVICE_ID_PREFIX = "device-"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str = ""  # empty: derived from the machine id (see device_id_from_machine_id)
    machine_id_path: Path = Path("/etc/machine-id")
    state_dir: Path = Path("/var/lib/flotta-agent")
    broker_url: str = "mqtts://localhost:8883"
    # The enrolment broker, where the bootstrap certificate is used; empty: the broker_url's
    # host on the enrolment port (8884).
    enrolment_url: str = ""
    check_hostname: bool = True
    ca_cert: Path = Path("/etc/flotta-agent/ca.crt")
    bootstrap_cert: Path = Path("/etc/flotta-agent/bootstrap.crt")
    bootstrap_key: Path = Path("/etc/flotta-agent/bootstrap.key")
    target_namespace: str = "default"
    target_set: str = ""
    podman_socket: str = "unix:///run/podman/podman.sock"
    files_root: Path = Path("/run/flotta-agent/files")
    heartbeat_seconds: int = 60  # until the desired state says otherwise
    resync_seconds: float = 30.0  # level-triggered reconcile even without a change
    reconnect_base_seconds: float = 1.0
    reconnect_cap_seconds: float = 300.0
    keepalive_seconds: int = 60
    enrolment_timeout_seconds: float = 0.0  # 0: wait for approval forever
    renew_at_fraction: float = 2 / 3  # of the certificate's validity
    telemetry_max_mib: int = 64
    # Keep sent batches until the bridge's receipt (false: until the broker's acknowledgement,
    # for a bridge without receipts); send one again after this long without its receipt.
    telemetry_receipts: bool = True
    telemetry_resend_seconds: float = 120.0
    telemetry_receipt_window: int = 16  # sent batches per kind awaiting receipts at a time
    rpm_ostree: str = "rpm-ostree"
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    # The ostree remote written for a hosted objects URL checks GPG signatures unless this is
    # false (logged as a warning at every start); keys: a file or folder (empty: the keys
    # ostree already trusts for the remote).
    ostree_gpg_verify: bool = True
    ostree_gpg_keypath: str = ""
    event_queue: int = 256

    # ---- derived ---------------------------------------------------------------------------

    @property
    def broker_host(self) -> str:
        return urlsplit(self.broker_url).hostname or "localhost"

    @property
    def broker_port(self) -> int:
        parts = urlsplit(self.broker_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def enrolment_host(self) -> str:
        if not self.enrolment_url:
            return self.broker_host
        return urlsplit(self.enrolment_url).hostname or "localhost"

    @property
    def enrolment_port(self) -> int:
        if not self.enrolment_url:
            return ENROLMENT_PORT
        return urlsplit(self.enrolment_url).port or ENROLMENT_PORT

    @property
    def identity_dir(self) -> Path:
        return self.state_dir / "identity"

    def resolved_device_id(self) -> str:
        if self.device_id:
            return self.device_id
        try:
            machine_id = self.machine_id_path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"no device_id configured and {self.machine_id_path} is unreadable: {exc}"
            ) from None
        return device_id_from_machine_id(machine_id)


def device_id_from_machine_id(machine_id: str) -> str:
    """A stable DNS-1123 label that does not reveal the machine id itself."""
    if not machine_id:
        raise ConfigError("the machine id is empty; configure device_id")
    digest = hashlib.sha256(b"flotta-device-id:" + machine_id.encode()).hexdigest()
    return DEVICE_ID_PREFIX + digest[:20]


_FIELDS = {f.name: f for f in dataclasses.fields(AgentConfig)}


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """Defaults, then the file (when given and present), then ``overrides`` (None values
    are ignored)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                values.update(tomllib.load(handle))
        except FileNotFoundError:
            if path != DEFAULT_CONFIG_PATH:
                raise ConfigError(f"configuration file {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return build_config(values)


def build_config(values: Mapping[str, Any]) -> AgentConfig:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    converted = {name: _convert(name, value) for name, value in values.items()}
    config = AgentConfig(**converted)
    _validate(config)
    return config


def _convert(name: str, value: Any) -> Any:
    default = getattr(AgentConfig(), name)
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if isinstance(default, Path):
            if not isinstance(value, str | Path):
                raise TypeError("expected a path")
            return Path(value)
        if isinstance(default, tuple):
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError("expected a list of strings")
            return tuple(value)
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError("expected a number")
            return float(value)
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError("expected an integer")
            return int(value)
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"configuration key {name!r}: {exc} (got {value!r})") from None


def _validate(config: AgentConfig) -> None:
    try:
        if config.device_id:
            validate_device_id(config.device_id)
        validate_namespace(config.target_namespace)
    except TopicError as exc:
        raise ConfigError(str(exc)) from None
    for name, url in (("broker_url", config.broker_url), ("enrolment_url", config.enrolment_url)):
        if url and urlsplit(url).scheme != "mqtts":
            raise ConfigError(f"{name} must be mqtts://host:port (TLS), not {url!r}")
    if not 0.1 <= config.renew_at_fraction <= 0.95:
        raise ConfigError("renew_at_fraction must lie between 0.1 and 0.95")
    if not 1 <= config.heartbeat_seconds <= 86400:
        raise ConfigError("heartbeat_seconds must lie between 1 and 86400")
    if config.reconnect_base_seconds <= 0 or config.reconnect_cap_seconds < (
        config.reconnect_base_seconds
    ):
        raise ConfigError("reconnect_base_seconds must be > 0 and <= reconnect_cap_seconds")
    if config.telemetry_max_mib < 1:
        raise ConfigError("telemetry_max_mib must be at least 1")
    if config.telemetry_resend_seconds < 1:
        raise ConfigError("telemetry_resend_seconds must be at least 1")
    if config.telemetry_receipt_window < 1:
        raise ConfigError("telemetry_receipt_window must be at least 1")
    if config.event_queue < 1:
        raise ConfigError("event_queue must be at least 1")
    keypath = config.ostree_gpg_keypath
    if keypath and (not keypath.startswith("/") or any(not ch.isprintable() for ch in keypath)):
        raise ConfigError("ostree_gpg_keypath must be an absolute path on one line")
