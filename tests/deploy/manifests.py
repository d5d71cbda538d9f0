"""The Kubernetes manifests in deploy/kubernetes, loaded for the deploy tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
CRDS = ROOT / "deploy" / "crds"
NAMESPACE = "flotta"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

Obj = dict[str, Any]


def kustomization(directory: Path = BASE) -> Obj:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            loaded: Obj = yaml.safe_load((directory / name).read_text())
            return loaded
    raise FileNotFoundError(f"no kustomization in {directory}")


def manifest_files() -> list[Path]:
    return sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")


def load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def objects() -> list[Obj]:
    """Every object of the base's own files (not the CRDs), namespaced as kustomize does."""
    result = []
    for path in manifest_files():
        for obj in load(path):
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"].setdefault("namespace", NAMESPACE)
            result.append(obj)
    return result


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def find(kind: str, name: str) -> Obj:
    for obj in objects():
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name} is not in deploy/kubernetes")


def workloads() -> list[Obj]:
    return [obj for obj in objects() if obj["kind"] in WORKLOAD_KINDS]


@dataclass(frozen=True)
class Container:
    workload: str
    owner: Obj  # the Deployment or StatefulSet
    spec: Obj
    init: bool

    @property
    def pod(self) -> Obj:
        pod: Obj = self.owner["spec"]["template"]["spec"]
        return pod

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def argv(self) -> list[str]:
        """command + args with ``$(VAR)`` expanded as the kubelet does (from env values;
        a value from the downward API stands for the pod's name)."""
        env: dict[str, str] = {}
        for item in self.spec.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                env[item["name"]] = f"{self.workload}-0"
        words = [*self.spec.get("command", []), *self.spec.get("args", [])]
        return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), w) for w in words]

    def mounts(self) -> dict[str, Obj]:
        """mountPath -> the volume mounted there."""
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for claim in self.owner["spec"].get("volumeClaimTemplates", []):
            volumes[claim["metadata"]["name"]] = {"volumeClaimTemplate": claim}
        return {
            m["mountPath"]: volumes.get(m["name"], {}) for m in self.spec.get("volumeMounts", [])
        }


def containers() -> list[Container]:
    found = []
    for obj in workloads():
        pod = obj["spec"]["template"]["spec"]
        name = obj["metadata"]["name"]
        found += [Container(name, obj, c, True) for c in pod.get("initContainers", [])]
        found += [Container(name, obj, c, False) for c in pod["containers"]]
    return found


def container(workload: str, name: str) -> Container:
    for candidate in containers():
        if candidate.workload == workload and candidate.name == name:
            return candidate
    raise KeyError(f"no container {name} in {workload}")


# The broker ConfigMap's listeners (file -> ports): devices, the control plane; enrolment.
BROKER_LISTENERS = {"mosquitto.conf": (8883, 8885), "enrolment.conf": (8884,)}


def loopback_listeners(files: dict[str, str], ports: dict[int, int]) -> dict[str, str]:
    """The broker ConfigMap's files with each listener moved from every address to loopback,
    on ``ports[its port in the manifests]``: what one host network needs of the base."""
    moved = dict(files)
    for file, listened in BROKER_LISTENERS.items():
        for port in listened:
            line = f"\nlistener {port} 0.0.0.0\n"
            assert moved[file].count(line) == 1, (file, port)
            moved[file] = moved[file].replace(line, f"\nlistener {ports[port]} 127.0.0.1\n")
    return moved


def broker_files() -> dict[str, str]:
    """The files of the base's broker ConfigMap (its configMapGenerator), by key."""
    [generator] = kustomization()["configMapGenerator"]
    return {Path(f).name: (BASE / f).read_text() for f in generator["files"]}
