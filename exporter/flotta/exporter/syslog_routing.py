"""Device logs to the syslog servers upstream's ``logCollection`` names.

A workload's lines go where its ``spec.logCollection`` points in the ``logCollection`` map in
effect for the device (its set's, else its own): an entry of kind ``syslog`` names a
ConfigMap with the server's ``Address`` and ``Protocol`` (:func:`flotta.exporter.routing.
syslog_config_map`, :meth:`flotta.exporter.syslog_sink.SyslogTarget.from_config_map`).
Lines of workloads without one go to the exporter's default syslog server, if it has one,
and are otherwise not for syslog (Loki still gets them).

Each device gets a sink of its own (:class:`DeviceSyslog`), so the exporter sends each
device's batches in order and one device whose server is down, or whose ConfigMap cannot be
read or used, holds back only its own lines: ``Retry`` with the reason, the batches wait in
JetStream until the ConfigMap is fixed or the server is back. Every server has one
:class:`~flotta.exporter.syslog_sink.SyslogSink` (one connection) shared by the devices
that use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from flotta.exporter.sink import Accepted, DeviceBatch, Retry, SinkOutcome, SinksByTarget
from flotta.exporter.syslog_sink import (
    SyslogConfigError,
    SyslogSettings,
    SyslogSink,
    SyslogTarget,
)
from flotta.schemas.wire.telemetry import LogLine, LogsBatch

NAME = "syslog"


class SyslogDirectory(Protocol):
    def syslog_config(
        self, namespace: str, device: str, workload: str
    ) -> tuple[str, dict[str, str] | None] | None: ...


class SyslogRoutes:
    """``select`` for the syslog delivery: the device's own sink."""

    def __init__(
        self,
        directory: SyslogDirectory | None,
        *,
        default: SyslogTarget | None = None,
        settings: SyslogSettings | None = None,
    ) -> None:
        self.directory = directory
        self.default = default
        self.settings = settings or SyslogSettings()
        self._devices: dict[tuple[str, str], DeviceSyslog] = {}
        self._sinks: SinksByTarget[SyslogTarget, SyslogSink] = SinksByTarget(
            lambda target: SyslogSink(target, self.settings)
        )
        # namespace/ConfigMap -> (the data it was read from, the target or why not)
        self._parsed: dict[tuple[str, str], tuple[Any, SyslogTarget | str]] = {}

    def select(self, batch: DeviceBatch[LogsBatch]) -> DeviceSyslog:
        key = (batch.namespace, batch.device)
        sink = self._devices.get(key)
        if sink is None:
            sink = self._devices[key] = DeviceSyslog(self, batch.namespace, batch.device)
        return sink

    def target(self, namespace: str, device: str, workload: str) -> SyslogTarget | str | None:
        """Where a workload's lines go: a target, why it cannot be used yet, or None."""
        found = (
            self.directory.syslog_config(namespace, device, workload)
            if self.directory is not None
            else None
        )
        if found is None:
            return self.default
        name, data = found
        if data is None:
            return f"syslog ConfigMap {namespace}/{name} not found (or not read yet)"
        parsed = self._parsed.get((namespace, name))
        if parsed is None or parsed[0] is not data:
            try:
                result: SyslogTarget | str = SyslogTarget.from_config_map(data)
            except SyslogConfigError as exc:
                result = f"syslog ConfigMap {namespace}/{name}: {exc}"
            parsed = self._parsed[(namespace, name)] = (data, result)
        return parsed[1]

    def sink(self, target: SyslogTarget) -> SyslogSink:
        return self._sinks.get(target)

    async def aclose(self) -> None:
        await self._sinks.aclose()


class DeviceSyslog:
    """One device's lines, each to its workload's server; all or none per send."""

    def __init__(self, routes: SyslogRoutes, namespace: str, device: str) -> None:
        self.routes = routes
        self.namespace = namespace
        self.device = device

    @property
    def name(self) -> str:
        return NAME

    async def send(self, batches: Sequence[DeviceBatch[LogsBatch]]) -> SinkOutcome:
        targets: dict[str, SyslogTarget | str | None] = {}
        parts: dict[SyslogTarget, list[DeviceBatch[LogsBatch]]] = {}
        for item in batches:
            lines: dict[SyslogTarget, list[LogLine]] = {}
            for line in item.batch.lines:
                if line.workload not in targets:
                    targets[line.workload] = self.routes.target(
                        self.namespace, self.device, line.workload
                    )
                target = targets[line.workload]
                if isinstance(target, str):
                    return Retry(target)
                if target is not None:
                    lines.setdefault(target, []).append(line)
            for target, chosen in lines.items():
                batch = msgspec.structs.replace(item.batch, lines=chosen)
                parts.setdefault(target, []).append(
                    DeviceBatch(item.namespace, item.device, item.stream_sequence, batch)
                )
        accepted = too_old = 0
        for target, part in parts.items():
            outcome = await self.routes.sink(target).send(part)
            if not isinstance(outcome, Accepted):
                return outcome  # what went to other servers goes again: they see repeats
            accepted += outcome.items
            too_old += outcome.too_old
        return Accepted(accepted, too_old)

    async def aclose(self) -> None:
        """The servers' connections belong to :class:`SyslogRoutes`."""
