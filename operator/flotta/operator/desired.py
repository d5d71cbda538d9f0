"""Desired states from the fleet caches: configuration memo, sealing and assembly. Pure given
its inputs (the public-key lookup reads certificates the operator issued)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from flotta.operator.assembly import (
    Assembled,
    RenderedConfiguration,
    Seal,
    assemble,
    render_configuration,
)
from flotta.operator.configuration import build_configuration, configuration_source
from flotta.operator.fleet_cache import Fleet, Key
from flotta.operator.rollouts import Rollouts
from flotta.pki.keys import PublicKey
from flotta.schemas.crd.device import EdgeDevice
from flotta.schemas.crd.device_set import EdgeDeviceSet

PublicKeyLookup = Callable[[EdgeDevice], PublicKey | None]
MAX_MEMO = 4096


class DesiredStates:
    def __init__(
        self,
        fleet: Fleet,
        *,
        seal: Seal,
        public_key: PublicKeyLookup,
        rollouts: Rollouts | None = None,
    ) -> None:
        self._fleet = fleet
        self._rollouts = rollouts
        self._seal = seal
        self._public_key = public_key
        self._configurations: dict[tuple[str, str], RenderedConfiguration] = {}
        # Per device: the spec and set objects its configuration was rendered from. The fleet
        # replaces a model on every change, so identity means "unchanged".
        self._by_device: dict[Key, tuple[object, object, RenderedConfiguration]] = {}

    def invalidate_configurations(self) -> None:
        """Forget rendered configurations (a ConfigMap they may read changed)."""
        self._configurations.clear()
        self._by_device.clear()

    def build(self, key: Key) -> Assembled:
        """The desired state of a device in the fleet (KeyError when it is not there)."""
        device = self._fleet.devices[key]
        namespace = key[0]
        configuration = self._configuration(device, key)
        workloads = self._fleet.workloads_of(key)
        revisions: tuple[str, ...] = ()
        retry = 0
        if self._rollouts is not None:
            workloads, revisions = self._rollouts.choose(key, workloads)
            device_set = self._fleet.device_set(key)
            if device_set is not None and device_set.spec.rollout_policy is not None:
                configuration, chosen = self._rollouts.choose_configuration(
                    key, device_set.metadata.name, configuration
                )
                if chosen is not None:
                    revisions = (chosen, *revisions)
            retry = self._rollouts.retry_token(key, revisions)
        assembled = assemble(
            key[1],
            namespace,
            configuration,
            workloads,
            secrets=lambda name: self._fleet.secret(namespace, name),
            public_key=self._public_key(device),
            seal=self._seal,
            retry=retry,
        )
        return replace(assembled, revisions=revisions) if revisions else assembled

    def _configuration(self, device: EdgeDevice, key: Key) -> RenderedConfiguration:
        device_set = self._fleet.device_set(key)
        known = self._by_device.get(key)
        # A watch event replaces the device object (a status write does too), so compare the
        # spec by value when it is not the same object: rendering costs far more.
        if (
            known is not None
            and known[1] is device_set
            and (known[0] is device.spec or known[0] == device.spec)
        ):
            return known[2]
        rendered = self._render_configuration(device, device_set, key)
        self._by_device[key] = (device.spec, device_set, rendered)
        return rendered

    def forget(self, key: Key) -> None:
        self._by_device.pop(key, None)

    def _render_configuration(
        self, device: EdgeDevice, device_set: EdgeDeviceSet | None, key: Key
    ) -> RenderedConfiguration:
        source = configuration_source(device, device_set)
        sections = {k: v for k, v in source.to_api().items() if k != "requestTime"}
        memo_key = (key[0], json.dumps(sections, sort_keys=True))
        rendered = self._configurations.get(memo_key)
        if rendered is None:
            namespace = key[0]
            rendered = render_configuration(
                build_configuration(source, lambda name: self._fleet.configmap(namespace, name))
            )
            if len(self._configurations) >= MAX_MEMO:
                self._configurations.clear()
            self._configurations[memo_key] = rendered
        return rendered
