"""One device's desired state: the encoded payload and its content version. Pure.

The configuration and every workload are rendered to JSON once (see :mod:`rendering`); a
device's payload is composed from those fragments, so 10,000 devices that run the same
workload cost one render and 10,000 string joins and hashes. The result is byte-for-byte
what :func:`flotta.schemas.codec.encode` gives for the same model, and ``version`` is exactly
:func:`flotta.schemas.codec.content_version` (the tests hold both to that).

Secrets are sealed for the device's key; the sealed plaintext is the canonical JSON of the
Secret's ``data`` map as Kubernetes holds it (values base64-encoded).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from flotta.operator.rendering import DOCKER_CONFIG_KEY, RenderedWorkload, canonical_json
from flotta.pki.keys import PublicKey
from flotta.schemas.codec import content_document, encode_fragment, with_version
from flotta.schemas.errors import PayloadTooLargeError
from flotta.schemas.wire.common import SCHEMA_VERSION
from flotta.schemas.wire.desired import (
    DesiredConfiguration,
    DesiredState,
    SealedData,
    SealedSecret,
)

SecretLookup = Callable[[str], Mapping[str, str] | None]
Seal = Callable[[str, PublicKey, bytes], SealedData]


@dataclass(frozen=True, slots=True)
class RenderedConfiguration:
    configuration: DesiredConfiguration
    json: str
    canonical: str


def render_configuration(configuration: DesiredConfiguration) -> RenderedConfiguration:
    return RenderedConfiguration(
        configuration,
        encode_fragment(configuration).decode(),
        canonical_json(content_document(configuration)),
    )


@dataclass(frozen=True, slots=True)
class Assembled:
    device_id: str
    namespace: str
    version: str
    payload: bytes
    workloads: tuple[str, ...]  # names of the workloads included
    skipped: tuple[tuple[str, str], ...]  # (workload, reason) left out for this device
    heartbeat_period: int  # seconds: the period this state tells the device to report at
    revisions: tuple[str, ...] = ()  # rollout revisions it carries ("<kind>/<name>=<revision>")
    retry: int = 0  # the retry token in the payload (not part of the version)


@dataclass(frozen=True, slots=True)
class _Fragment:
    json: str
    canonical: str


def assemble(
    device_id: str,
    namespace: str,
    configuration: RenderedConfiguration,
    workloads: Sequence[RenderedWorkload],
    *,
    secrets: SecretLookup,
    public_key: PublicKey | None,
    seal: Seal,
    retry: int = 0,
) -> Assembled:
    """Compose the desired state of one device from rendered parts (workloads in any order),
    with a retry token when ``retry`` is not 0."""
    included: list[_Fragment] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    secret_names: set[str] = set()
    for rendered in sorted(workloads, key=lambda w: w.name):
        needs_key = bool(rendered.secrets) or rendered.registry_secret is not None
        if needs_key and public_key is None:
            skipped.append((rendered.name, "the device has no certificate yet to seal secrets for"))
            continue
        if rendered.registry_secret is not None and public_key is not None:
            included.append(_with_registry_auth(rendered, device_id, public_key, secrets, seal))
        else:
            included.append(_Fragment(rendered.json, rendered.canonical))
        names.append(rendered.name)
        secret_names.update(rendered.secrets)
    sealed: list[_Fragment] = []
    if public_key is not None:
        for name in sorted(secret_names):
            data = secrets(name)
            if data is None:  # deleted since the render; the next reconcile re-renders
                continue
            secret = SealedSecret(
                name=name, data=seal(device_id, public_key, canonical_json(dict(data)).encode())
            )
            sealed.append(
                _Fragment(
                    encode_fragment(secret).decode(), canonical_json(content_document(secret))
                )
            )
    device_json = json.dumps(device_id, ensure_ascii=False)
    namespace_json = json.dumps(namespace, ensure_ascii=False)
    workloads_canonical = ",".join(f.canonical for f in included)
    secrets_canonical = ",".join(f.canonical for f in sealed)
    canonical = (
        f'{{"configuration":{configuration.canonical},"deregister":false,'
        f'"deviceId":{device_json},"namespace":{namespace_json},'
        f'"schemaVersion":{SCHEMA_VERSION},"secrets":[{secrets_canonical}],'
        f'"workloads":[{workloads_canonical}]}}'
    )
    version = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    # As the encoder writes it: field order, defaults (no deregistration, no workloads or
    # secrets) left out.
    workloads_json = f',"workloads":[{",".join(f.json for f in included)}]' if included else ""
    secrets_json = f',"secrets":[{",".join(f.json for f in sealed)}]' if sealed else ""
    retry_json = f',"retry":{int(retry)}' if retry else ""
    payload = (
        f'{{"schemaVersion":{SCHEMA_VERSION},"deviceId":{device_json},'
        f'"namespace":{namespace_json},"version":"{version}"{retry_json},'
        f'"configuration":{configuration.json}{workloads_json}{secrets_json}}}'
    ).encode()
    if len(payload) > DesiredState.MAX_BYTES:
        raise PayloadTooLargeError(DesiredState.KIND, len(payload), DesiredState.MAX_BYTES)
    return Assembled(
        device_id,
        namespace,
        version,
        payload,
        tuple(names),
        tuple(skipped),
        configuration.configuration.heartbeat.period_seconds,
        retry=retry,
    )


def _with_registry_auth(
    rendered: RenderedWorkload,
    device_id: str,
    public_key: PublicKey,
    secrets: SecretLookup,
    seal: Seal,
) -> _Fragment:
    data = secrets(rendered.registry_secret or "") or {}
    auth = seal(device_id, public_key, decode_base64(data.get(DOCKER_CONFIG_KEY, "")))
    workload = msgspec.structs.replace(rendered.workload, image_registry_auth=auth)
    return _Fragment(encode_fragment(workload).decode(), canonical_json(content_document(workload)))


def deregistration(device_id: str, namespace: str) -> DesiredState:
    """The message that tells a deleted device to remove its workloads, data and configuration."""
    return with_version(DesiredState(device_id=device_id, namespace=namespace, deregister=True))


def decode_base64(value: str) -> bytes:
    """A Secret value as Kubernetes stores it; empty for a malformed one (rendering refuses
    those before assembly)."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""
