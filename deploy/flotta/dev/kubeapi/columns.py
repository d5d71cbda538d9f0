"""Table cells that no JSONPath gives, as kube-apiserver's printers compute them for
``kubectl get`` (``pkg/printers/internalversion``). Pure: object in, cell out."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _join(values: list[str]) -> str | None:
    return ", ".join(values) if values else None


def created_at(obj: Obj) -> Any:
    """Roles and ClusterRoles show their creation time itself (RFC 3339), not an age."""
    return (obj.get("metadata") or {}).get("creationTimestamp")


def role_ref(obj: Obj) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _subjects(obj: Obj, kind: str) -> str | None:
    names = []
    for subject in obj.get("subjects") or ():
        if subject.get("kind") != kind:
            continue
        if kind == "ServiceAccount":
            namespace = subject.get("namespace") or (obj.get("metadata") or {}).get("namespace")
            names.append(f"{namespace}/{subject.get('name', '')}")
        else:
            names.append(str(subject.get("name", "")))
    return _join(names)


def users(obj: Obj) -> str | None:
    return _subjects(obj, "User")


def groups(obj: Obj) -> str | None:
    return _subjects(obj, "Group")


def service_accounts(obj: Obj) -> str | None:
    return _subjects(obj, "ServiceAccount")


def secret_count(obj: Obj) -> int:
    return len(obj.get("secrets") or ())


def ready_replicas(obj: Obj) -> str:
    """``READY`` of Deployments and StatefulSets: ready/desired."""
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    ready = (obj.get("status") or {}).get("readyReplicas", 0)
    return f"{ready}/{wanted}"


def containers(obj: Obj) -> str | None:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return _join([str(c.get("name", "")) for c in pod.get("containers") or ()])


def images(obj: Obj) -> str | None:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return _join([str(c.get("image", "")) for c in pod.get("containers") or ()])


def service_ports(obj: Obj) -> str | None:
    ports = []
    for port in (obj.get("spec") or {}).get("ports") or ():
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) if ports else None


def cluster_ip(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("clusterIP") or "<none>")


def external_ip(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    if spec.get("type") == "LoadBalancer":
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = [str(i.get("ip") or i.get("hostname")) for i in ingress]
        return ",".join(found) if found else "<pending>"
    return ",".join(spec.get("externalIPs") or ()) or "<none>"


def selector(obj: Obj) -> str:
    labels = ((obj.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def access_modes(obj: Obj) -> str | None:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX"}
    modes = (obj.get("spec") or {}).get("accessModes") or ()
    return ",".join(short.get(m, m) for m in modes) or None
