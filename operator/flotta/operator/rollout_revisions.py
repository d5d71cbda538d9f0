"""Revisions of an EdgeWorkload or an EdgeDeviceSet under a rollout policy, and their
``apps/v1`` ControllerRevision form. Pure.

A set's revision is the configuration its members get (``configuration`` of the desired
state: heartbeat, metrics, log destinations, OS commit, mounts, health gate, update window).

A revision is what a device runs of the workload: its rendered wire form (pod spec, podman
labels and annotations, ConfigMap data, metrics, health gate) and the name of its registry
Secret. Where the workload runs (``device``/``deviceSelector``) and the rest of the policy are
not part of it: they change nothing a device runs. Secret values are sealed per device at
assembly and are not part of a revision either (a changed Secret reaches every device at
once, as it does for a Deployment's pods).

The ControllerRevision is named ``<workload>-<hash>`` after its content, so a revert to an
earlier content finds its revision again (its ``revision`` number is raised, as Kubernetes
does for DaemonSets); ``data`` never changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from flotta.operator.assembly import RenderedConfiguration, render_configuration
from flotta.operator.rendering import RenderedWorkload, canonical_json
from flotta.schemas.codec import content_document, encode_fragment
from flotta.schemas.crd.common import API_VERSION
from flotta.schemas.wire.desired import DesiredConfiguration, DesiredWorkload

OWNER_KIND_LABEL = "rollout.flotta.io/owner-kind"
OWNER_NAME_LABEL = "rollout.flotta.io/owner-name"
ATTEMPT_ANNOTATION = "rollout.flotta.io/attempt"
HALTED_ANNOTATION = "rollout.flotta.io/halted"
# Rendered into the workload's annotations when a content is rolled out again after a rollout
# of it halted: devices never re-apply a version they marked failed, so the retry needs bytes
# of its own.
RETRY_ANNOTATION = "flotta.io/rollout-attempt"
WORKLOAD_KIND = "EdgeWorkload"
SET_KIND = "EdgeDeviceSet"
REVISION_SELECTOR = f"{OWNER_KIND_LABEL} in ({WORKLOAD_KIND},{SET_KIND})"


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision of a workload or a set: what a device runs, and its identity."""

    namespace: str
    owner: str  # the EdgeWorkload's or EdgeDeviceSet's name
    name: str  # ControllerRevision name: <owner>-<hash>
    workload: DesiredWorkload | None
    registry_secret: str | None
    number: int = 0
    attempt: int = 0  # rollouts of this content that halted before this one
    halted: bool = False
    configuration: DesiredConfiguration | None = None  # a set's revision
    kind: str = WORKLOAD_KIND

    @property
    def key(self) -> str:
        """How ``status.desiredRevisions`` of an EdgeDevice names the rollout."""
        return f"{self.kind}/{self.owner}"

    def rendered_configuration(self) -> RenderedConfiguration:
        assert self.configuration is not None
        return render_configuration(self.configuration)

    def rendered(self, target: Any) -> RenderedWorkload:
        """The revision as assembly takes it (with the retry annotation from the second
        attempt on)."""
        workload = self.workload
        assert workload is not None
        if self.attempt:
            annotations = {**workload.annotations, RETRY_ANNOTATION: str(self.attempt)}
            workload = msgspec.structs.replace(workload, annotations=annotations)
        return RenderedWorkload(
            namespace=self.namespace,
            name=self.owner,
            target=target,
            workload=workload,
            json=encode_fragment(workload).decode(),
            canonical=canonical_json(content_document(workload)),
            secrets=tuple(workload.secrets),
            registry_secret=self.registry_secret,
        )


def content_hash(rendered: RenderedWorkload) -> str:
    digest = hashlib.sha256(rendered.canonical.encode())
    digest.update(b"\0" + (rendered.registry_secret or "").encode())
    return digest.hexdigest()[:10]


def revision_of(rendered: RenderedWorkload) -> Revision:
    return Revision(
        namespace=rendered.namespace,
        owner=rendered.name,
        name=f"{rendered.name[:242]}-{content_hash(rendered)}",
        workload=rendered.workload,
        registry_secret=rendered.registry_secret,
    )


def configuration_revision_of(
    namespace: str, owner: str, rendered: RenderedConfiguration
) -> Revision:
    digest = hashlib.sha256(rendered.canonical.encode()).hexdigest()[:10]
    return Revision(
        namespace=namespace,
        owner=owner,
        name=f"{owner[:242]}-{digest}",
        workload=None,
        registry_secret=None,
        configuration=rendered.configuration,
        kind=SET_KIND,
    )


def controller_revision(revision: Revision, owner_uid: str) -> dict[str, Any]:
    """The ControllerRevision object of a revision."""
    data: dict[str, Any] = {}
    if revision.workload is not None:
        data["workload"] = content_document(revision.workload)
    if revision.configuration is not None:
        data["configuration"] = content_document(revision.configuration)
    if revision.registry_secret:
        data["registrySecret"] = revision.registry_secret
    annotations = {ATTEMPT_ANNOTATION: str(revision.attempt)}
    if revision.halted:
        annotations[HALTED_ANNOTATION] = "true"
    metadata: dict[str, Any] = {
        "name": revision.name,
        "namespace": revision.namespace,
        "labels": {OWNER_KIND_LABEL: revision.kind, OWNER_NAME_LABEL: revision.owner},
        "annotations": annotations,
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": revision.kind,
                "name": revision.owner,
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": metadata,
        "data": data,
        "revision": revision.number,
    }


class RevisionError(ValueError):
    """A ControllerRevision that is not one of ours, or whose data cannot be read."""


def from_controller_revision(obj: dict[str, Any]) -> Revision:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    data = obj.get("data") or {}
    kind = labels.get(OWNER_KIND_LABEL)
    if kind not in (WORKLOAD_KIND, SET_KIND) or not isinstance(data, dict):
        raise RevisionError(f"controllerrevision {meta.get('name')!r} is not a rollout's")
    try:
        workload = configuration = None
        if kind == WORKLOAD_KIND:
            workload = msgspec.convert(data.get("workload"), DesiredWorkload)
        else:
            configuration = msgspec.convert(data.get("configuration"), DesiredConfiguration)
        attempt = int(annotations.get(ATTEMPT_ANNOTATION) or 0)
        number = int(obj.get("revision") or 0)
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        raise RevisionError(f"controllerrevision {meta.get('name')!r}: {exc}") from None
    registry = data.get("registrySecret")
    return Revision(
        namespace=str(meta.get("namespace") or ""),
        owner=str(labels.get(OWNER_NAME_LABEL) or ""),
        name=str(meta.get("name") or ""),
        workload=workload,
        registry_secret=registry if isinstance(registry, str) and registry else None,
        number=number,
        attempt=attempt,
        halted=annotations.get(HALTED_ANNOTATION) == "true",
        configuration=configuration,
        kind=kind,
    )
