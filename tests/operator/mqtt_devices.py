"""Stand-in devices for the operator's rollout tests: one thread reads each device's desired
states from its MQTT probe and hands them to :meth:`MqttDevices.take`, which a subclass
defines (apply and report, fail, record what arrived)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Self

from flotta.schemas.codec import decode, encode
from flotta.schemas.errors import PayloadError
from flotta.schemas.topics import DeviceTopic, device_topic
from flotta.schemas.wire.desired import DesiredState
from flotta.schemas.wire.status import StatusReport
from tests.fixtures.brokers import ProbeFactory
from tests.fixtures.mqtt_probe import MqttProbe
from tests.operator.conftest import Stack, add_device, patch_device_status


class MqttDevices:
    def __init__(self, probes: dict[str, MqttProbe]) -> None:
        self.probes = probes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def take(self, name: str, desired: DesiredState) -> None:
        raise NotImplementedError

    def report(self, name: str, report: StatusReport) -> None:
        self.probes[name].publish(device_topic(name, DeviceTopic.STATUS), encode(report), qos=0)

    def report_applied(self, name: str, version: str) -> None:
        self.report(name, StatusReport(time=datetime.now(UTC), applied_version=version))

    def _run(self) -> None:
        while not self._stop.is_set():
            idle = True
            for name, probe in self.probes.items():
                message = probe.next_message(timeout=0)
                if message is None or not message.payload:
                    continue
                idle = False
                try:
                    desired = decode(DesiredState, message.payload)
                except PayloadError:
                    continue
                self.take(name, desired)
            if idle:
                self._stop.wait(0.01)


def online_devices(
    stack: Stack, mqtt_probes: ProbeFactory, names: list[str]
) -> dict[str, MqttProbe]:
    """EdgeDevices labelled ``app: web`` and Online, each with a probe on its desired topic."""
    probes = {}
    for name in names:
        add_device(stack, name, {"app": "web"})
        patch_device_status(stack, name, {"phase": "Online"})
        probe = mqtt_probes.connect(stack.broker.device(name), name)
        probe.subscribe(device_topic(name, DeviceTopic.DESIRED))
        probes[name] = probe
    return probes
