"""A container's probes (``startupProbe``, ``readinessProbe``, ``livenessProbe``) as devices
run them. Pure: the operator reports what a device could not run, the agent runs the rest.

A probe has one action: ``exec`` (a command, no shell), ``httpGet`` (scheme HTTP; ``port`` a
number or the name of one of the container's ports; ``path``, ``host``, ``httpHeaders``) or
``tcpSocket`` (``port``, ``host``); and the Kubernetes timings with their defaults:
``initialDelaySeconds`` 0, ``periodSeconds`` 10, ``timeoutSeconds`` 1, ``successThreshold`` 1
(1 for liveness and startup probes), ``failureThreshold`` 3. ``host``, when set, is an IP
address or ``localhost``: a device resolves no names in the pod's network. ``grpc`` probes and
HTTPS are not run; ``terminationGracePeriodSeconds`` of a probe is accepted and ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["startup", "readiness", "liveness"]
PROBE_FIELDS: dict[str, Kind] = {
    "startupProbe": "startup",
    "readinessProbe": "readiness",
    "livenessProbe": "liveness",
}
ACTIONS = ("exec", "httpGet", "tcpSocket")
TIMINGS = {  # field -> (default, least value)
    "initialDelaySeconds": (0, 0),
    "periodSeconds": (10, 1),
    "timeoutSeconds": (1, 1),
    "successThreshold": (1, 1),
    "failureThreshold": (3, 1),
}
MAX_SECONDS = 86_400
MAX_THRESHOLD = 10_000


@dataclass(frozen=True, slots=True)
class Exec:
    command: tuple[str, ...]

    def __str__(self) -> str:
        return "exec " + " ".join(self.command)


@dataclass(frozen=True, slots=True)
class HttpGet:
    port: int
    path: str = "/"
    host: str = ""  # empty: the pod's address
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"HTTP GET {self.host}:{self.port}{self.path}"


@dataclass(frozen=True, slots=True)
class TcpSocket:
    port: int
    host: str = ""

    def __str__(self) -> str:
        return f"TCP {self.host}:{self.port}"


Action = Exec | HttpGet | TcpSocket


@dataclass(frozen=True, slots=True)
class Probe:
    container: str
    kind: Kind
    action: Action
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    def __str__(self) -> str:
        return f"{self.kind} probe ({self.action})"


@dataclass(frozen=True, slots=True)
class ProbeProblem:
    path: str  # spelled as in the pod spec, from the container: containers[0].livenessProbe
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class PodProbes:
    probes: tuple[Probe, ...] = ()
    problems: tuple[ProbeProblem, ...] = ()
    by_container: dict[str, tuple[Probe, ...]] = field(default_factory=dict)


def pod_probes(pod_spec: Mapping[str, Any]) -> PodProbes:
    """The probes of the pod's containers, and what is wrong with those that cannot run.
    Init containers may have none."""
    probes: list[Probe] = []
    problems: list[ProbeProblem] = []
    for group in ("initContainers", "containers"):
        for index, container in enumerate(_list(pod_spec.get(group))):
            if not isinstance(container, Mapping):
                continue
            where = f"{group}[{index}]"
            for name in PROBE_FIELDS:
                if name not in container:
                    continue
                if group == "initContainers":
                    problems.append(ProbeProblem(f"{where}.{name}", "init containers have none"))
                    continue
                try:
                    probes.append(_probe(container, name, f"{where}.{name}"))
                except _InvalidProbeError as invalid:
                    problems.append(ProbeProblem(invalid.path, invalid.message))
    by_container: dict[str, tuple[Probe, ...]] = {}
    for probe in probes:
        by_container[probe.container] = (*by_container.get(probe.container, ()), probe)
    return PodProbes(tuple(probes), tuple(problems), by_container)


class _InvalidProbeError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _probe(container: Mapping[str, Any], name: str, path: str) -> Probe:
    spec = container[name]
    if not isinstance(spec, Mapping):
        raise _InvalidProbeError(path, "must be an object")
    kind = PROBE_FIELDS[name]
    if "grpc" in spec:
        raise _InvalidProbeError(
            f"{path}.grpc", "gRPC probes are not run on devices (use exec, httpGet or tcpSocket)"
        )
    actions = [action for action in ACTIONS if action in spec]
    if len(actions) != 1:
        raise _InvalidProbeError(path, "needs exactly one of exec, httpGet, tcpSocket")
    action_path = f"{path}.{actions[0]}"
    handler = spec[actions[0]]
    if not isinstance(handler, Mapping):
        raise _InvalidProbeError(action_path, "must be an object")
    action: Action
    if actions[0] == "exec":
        action = _exec(handler, action_path)
    elif actions[0] == "httpGet":
        action = _http_get(handler, container, action_path)
    else:
        action = TcpSocket(_port(handler, container, action_path), _host(handler, action_path))
    timings = dict(_timings(spec, path))
    if kind != "readiness" and timings["successThreshold"] != 1:
        raise _InvalidProbeError(f"{path}.successThreshold", f"must be 1 for a {kind} probe")
    return Probe(
        container=str(container.get("name", "")),
        kind=kind,
        action=action,
        initial_delay=timings["initialDelaySeconds"],
        period=timings["periodSeconds"],
        timeout=timings["timeoutSeconds"],
        success_threshold=timings["successThreshold"],
        failure_threshold=timings["failureThreshold"],
    )


def _exec(handler: Mapping[str, Any], path: str) -> Exec:
    command = handler.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) for part in command)
        or not command[0]
    ):
        raise _InvalidProbeError(f"{path}.command", "must be a non-empty list of strings")
    return Exec(tuple(command))


def _http_get(handler: Mapping[str, Any], container: Mapping[str, Any], path: str) -> HttpGet:
    scheme = handler.get("scheme", "HTTP")
    if scheme != "HTTP":
        raise _InvalidProbeError(f"{path}.scheme", f"{scheme!r} is not run on devices (only HTTP)")
    url_path = handler.get("path", "/")
    if not isinstance(url_path, str) or any(char in url_path for char in " \r\n"):
        raise _InvalidProbeError(f"{path}.path", "must be a URL path without spaces")
    headers = []
    for index, header in enumerate(_list(handler.get("httpHeaders"))):
        name = header.get("name") if isinstance(header, Mapping) else None
        value = header.get("value", "") if isinstance(header, Mapping) else None
        if not isinstance(name, str) or not _token(name) or not isinstance(value, str):
            raise _InvalidProbeError(
                f"{path}.httpHeaders[{index}]", "needs a header name and a value"
            )
        if any(char in value for char in "\r\n"):
            raise _InvalidProbeError(f"{path}.httpHeaders[{index}].value", "must be one line")
        headers.append((name, value))
    return HttpGet(
        port=_port(handler, container, path),
        path=url_path if url_path.startswith("/") else f"/{url_path}",
        host=_host(handler, path),
        headers=tuple(headers),
    )


def _port(handler: Mapping[str, Any], container: Mapping[str, Any], path: str) -> int:
    port = handler.get("port")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, int) and not isinstance(port, bool):
        if 1 <= port <= 65535:
            return port
        raise _InvalidProbeError(f"{path}.port", f"{port} is not a port number (1-65535)")
    if isinstance(port, str) and port:
        for entry in _list(container.get("ports")):
            if isinstance(entry, Mapping) and entry.get("name") == port:
                number = entry.get("containerPort")
                if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 65536:
                    return number
        raise _InvalidProbeError(f"{path}.port", f"the container has no port named {port!r}")
    raise _InvalidProbeError(f"{path}.port", "needs a port number or the name of a container port")


def _host(handler: Mapping[str, Any], path: str) -> str:
    host = handler.get("host", "")
    if host in ("", "localhost"):
        return "127.0.0.1" if host else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise _InvalidProbeError(f"{path}.host", "must be an IP address or localhost") from None


def _timings(spec: Mapping[str, Any], path: str) -> Iterator[tuple[str, int]]:
    for name, (default, least) in TIMINGS.items():
        value = spec.get(name)
        value = default if value is None else value
        most = MAX_THRESHOLD if name.endswith("Threshold") else MAX_SECONDS
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            raise _InvalidProbeError(
                f"{path}.{name}", f"must be a whole number from {least} to {most}"
            )
        yield name, value


def _token(name: str) -> bool:
    return bool(name) and all(
        33 <= ord(char) < 127 and char not in '()<>@,;:\\"/[]?={}' for char in name
    )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
