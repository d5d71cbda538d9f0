"""A stand-in for the kubelet, for the install tests: it reads a Deployment or StatefulSet
from the (local) Kubernetes API and runs its pod's containers with what the pod spec gives
them, as the kubelet would:

- the service account's token from a TokenRequest (as the kubelet asks for it, 3607 s), the
  API's CA and the namespace in ``/var/run/secrets/kubernetes.io/serviceaccount``, and
  ``KUBERNETES_SERVICE_HOST``/``_PORT`` (unless ``automountServiceAccountToken`` is false);
- every Secret, ConfigMap, emptyDir and claim volume as files at its mountPath (the keys,
  ``items`` and ``defaultMode`` of the spec, group-owned by ``fsGroup``), read-only where the
  mount says so;
- env from values, the downward API and Secret keys; ``$(VAR)`` expanded in the arguments;
  ``HOSTNAME`` the pod's name; the user, group and ``fsGroup`` of the securityContext, no
  capabilities, no privilege escalation;
- init containers first, each to completion;
- ``shareProcessNamespace``: with Podman, the pod's containers join the process namespace
  of a pause container (``sleep infinity`` from the first one's image, removed by
  ``PodmanRunner.close``), which holds it as the kubelet's pause container does.

Two ways to run a container: ``HostRunner`` runs the component from this checkout in a
private mount namespace (overlays on ``/etc`` and ``/var/lib`` and a tmpfs on ``/run``, so
every mount lands at its real path and nothing outside the namespace changes), as the pod's
user; ``PodmanRunner`` runs the pod's image (``make images``) with Podman on the host
network. Service names resolve to 127.0.0.1 (``/etc/hosts``, or ``--add-host``).
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.fixtures.sources import source_path

REPO_ROOT = Path(__file__).resolve().parents[2]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBELET_TOKEN_SECONDS = 3607  # what the kubelet asks for a projected token


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass
class Container:
    """One container of a pod, ready to run."""

    pod: str
    name: str
    image: str
    command: list[str]  # empty: the image's entrypoint
    args: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    uid: int
    gid: int
    groups: list[int]
    read_only_root: bool
    hosts: dict[str, str] = field(default_factory=dict)
    share_process_namespace: bool = False  # the pod's shareProcessNamespace


def _expand(text: str, env: dict[str, str]) -> str:
    """``$(VAR)`` as the kubelet expands it (``$$`` escapes, unknown names stay)."""
    return re.sub(r"\$\$|\$\((\w+)\)", lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


class Kubelet:
    """Materializes pods of one namespace under ``root``."""

    def __init__(self, admin: client.ApiClient, root: Path, *, api_url: str, ca_path: Path) -> None:
        self.core: Any = client.CoreV1Api(admin)
        self.apps: Any = client.AppsV1Api(admin)
        self.root = root
        host, _, port = api_url.removeprefix("https://").rpartition(":")
        self.service_env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
        self.ca_path = ca_path

    def workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        api = self.apps.api_client
        read = (
            self.apps.read_namespaced_deployment
            if kind == "Deployment"
            else self.apps.read_namespaced_stateful_set
        )
        return dict(api.sanitize_for_serialization(read(name, namespace)))

    def pod(
        self, kind: str, namespace: str, name: str, pod_name: str, *, hosts: dict[str, str]
    ) -> list[Container]:
        """The pod's containers, init containers first, with their volumes written."""
        workload = self.workload(kind, namespace, name)
        spec = workload["spec"]["template"]["spec"]
        pod_dir = self.root / pod_name
        pod_dir.mkdir(parents=True)
        security = spec.get("securityContext") or {}
        fs_group = security.get("fsGroup")
        volumes = {
            volume["name"]: self._volume(volume, namespace, pod_dir / "volumes", fs_group)
            for volume in spec.get("volumes") or ()
        }
        automount = spec.get("automountServiceAccountToken", True)
        if automount:
            volumes["kube-api-access"] = self._service_account(
                namespace, spec.get("serviceAccountName", "default"), pod_dir / "volumes"
            )
        claims = {
            c["metadata"]["name"]: c for c in workload["spec"].get("volumeClaimTemplates") or ()
        }
        for claim in claims:
            volumes[claim] = self._directory(pod_dir / "volumes" / claim, fs_group, 0o2775)
        containers = []
        for item in [*spec.get("initContainers", []), *spec["containers"]]:
            context = {**security, **(item.get("securityContext") or {})}
            env = {"HOSTNAME": pod_name}
            if automount:
                env |= self.service_env
            for variable in item.get("env") or ():
                env[variable["name"]] = self._env_value(variable, namespace, pod_name, env)
            mounts = [
                Mount(volumes[m["name"]], m["mountPath"], bool(m.get("readOnly")))
                for m in item.get("volumeMounts") or ()
            ]
            if automount:
                mounts.append(Mount(volumes["kube-api-access"], SERVICE_ACCOUNT_DIR, True))
            containers.append(
                Container(
                    pod=pod_name,
                    name=item["name"],
                    image=item["image"],
                    command=[_expand(w, env) for w in item.get("command") or ()],
                    args=[_expand(w, env) for w in item.get("args") or ()],
                    env=env,
                    mounts=mounts,
                    uid=int(context.get("runAsUser", 0)),
                    gid=int(context.get("runAsGroup", 0)),
                    groups=[int(fs_group)] if fs_group is not None else [],
                    read_only_root=bool(context.get("readOnlyRootFilesystem")),
                    hosts=hosts,
                    share_process_namespace=bool(spec.get("shareProcessNamespace")),
                )
            )
            assert context.get("allowPrivilegeEscalation") is False, item["name"]
            assert (context.get("capabilities") or {}).get("drop") == ["ALL"], item["name"]
        return containers

    # ---- volumes and env -----------------------------------------------------------------

    @staticmethod
    def _directory(path: Path, fs_group: int | None, mode: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if fs_group is not None:
            os.chown(path, 0, fs_group)
        path.chmod(mode)
        return path

    def _files(
        self,
        directory: Path,
        data: dict[str, bytes],
        items: list[dict[str, Any]] | None,
        mode: int,
        fs_group: int | None,
    ) -> Path:
        self._directory(directory, fs_group, 0o755)
        chosen = (
            [(i["key"], i["path"], i.get("mode", mode)) for i in items]
            if items
            else [(key, key, mode) for key in data]
        )
        for key, path, file_mode in chosen:
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])
            os.chown(target, 0, fs_group if fs_group is not None else 0)
            target.chmod(file_mode)
        return directory

    def _volume(
        self, volume: dict[str, Any], namespace: str, directory: Path, fs_group: int | None
    ) -> Path:
        target = directory / volume["name"]
        if "secret" in volume:
            source = volume["secret"]
            secret = self.core.read_namespaced_secret(source["secretName"], namespace)
            data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
            return self._files(
                target, data, source.get("items"), source.get("defaultMode", 0o644), fs_group
            )
        if "configMap" in volume:
            source = volume["configMap"]
            config_map = self.core.read_namespaced_config_map(source["name"], namespace)
            data = {k: v.encode() for k, v in (config_map.data or {}).items()}
            return self._files(
                target, data, source.get("items"), source.get("defaultMode", 0o644), fs_group
            )
        if "emptyDir" in volume:
            return self._directory(target, None, 0o1777)
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            self.core.read_namespaced_persistent_volume_claim(claim, namespace)  # it must exist
            return self._directory(target, fs_group, 0o2775)
        raise AssertionError(f"volume kind not handled: {volume}")

    def _service_account(self, namespace: str, account: str, directory: Path) -> Path:
        answer = self.core.create_namespaced_service_account_token(
            account,
            namespace,
            {"spec": {"audiences": [], "expirationSeconds": KUBELET_TOKEN_SECONDS}},
        )
        data = {
            "token": answer.status.token.encode(),
            "ca.crt": self.ca_path.read_bytes(),
            "namespace": namespace.encode(),
        }
        return self._files(directory / "kube-api-access", data, None, 0o644, None)

    def _env_value(
        self, variable: dict[str, Any], namespace: str, pod_name: str, env: dict[str, str]
    ) -> str:
        if "value" in variable:
            return _expand(str(variable["value"]), env)
        source = variable["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            return {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = self.core.read_namespaced_secret(ref["name"], namespace)
            return base64.b64decode(secret.data[ref["key"]]).decode()
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            return str(
                self.core.read_namespaced_config_map(ref["name"], namespace).data[ref["key"]]
            )
        raise AssertionError(f"env source not handled: {variable}")


# ---- running ---------------------------------------------------------------------------------


@dataclass
class Running:
    container: Container
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class HostRunner:
    """This checkout's components in a private mount namespace, as the pod's user."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entrypoint(self, container: Container) -> list[str]:
        """The image's ENTRYPOINT (``flotta``), as this checkout runs it."""
        return [sys.executable, "-m", "flotta.cli"]

    def script(self, container: Container) -> str:
        scratch = self.root / f"{container.pod}-{container.name}"
        lines = ["set -e", "mount --make-rprivate /"]
        for lower in ("/etc", "/var/lib"):
            upper = scratch / lower.strip("/").replace("/", "-")
            (upper / "upper").mkdir(parents=True)
            (upper / "work").mkdir()
            lines.append(
                f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper / 'upper'},"
                f"workdir={upper / 'work'} {lower}"
            )
        lines.append("mount -t tmpfs -o mode=0755 tmpfs /run")
        for name, address in container.hosts.items():
            lines.append(f"echo {shlex.quote(f'{address} {name}')} >> /etc/hosts")
        # Every source is bound to a staging place first: a later mount (a volume at /tmp)
        # could hide where the sources are.
        for index, mount in enumerate(container.mounts):
            stage = f"/run/.kubelet/{index}"
            source = shlex.quote(str(mount.source))
            lines.append(f"mkdir -p {stage} && mount --bind {source} {stage}")
        # This checkout and its virtualenv too: a volume at /tmp would hide a checkout there.
        checkouts = sorted({str(REPO_ROOT), os.path.realpath(sys.prefix)})
        for index, path in enumerate(checkouts):
            lines.append(
                f"mkdir -p /run/.checkout/{index} && mount --bind {shlex.quote(path)} /run/.checkout/{index}"
            )
        for index, mount in enumerate(container.mounts):
            target = shlex.quote(mount.target)
            lines.append(f"mkdir -p {target} && mount --bind /run/.kubelet/{index} {target}")
            if mount.read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        for index, path in enumerate(checkouts):
            hidden = any(Path(path).is_relative_to(m.target) for m in container.mounts)
            if hidden:
                quoted = shlex.quote(path)
                lines.append(f"mkdir -p {quoted} && mount --bind /run/.checkout/{index} {quoted}")
        argv = container.command or self.entrypoint(container)
        argv = [*argv, *container.args]
        groups = ",".join(str(g) for g in container.groups) or str(container.gid)
        lines.append(
            f"exec setpriv --reuid={container.uid} --regid={container.gid} --groups={groups}"
            " --inh-caps=-all --bounding-set=-all --no-new-privs -- "
            + " ".join(shlex.quote(word) for word in argv)
        )
        return "\n".join(lines)

    def start(self, container: Container) -> Running:
        log = self.root / f"{container.pod}-{container.name}.log"
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": source_path(),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **container.env,
        }
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    self.script(container),
                ],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd="/",
            )
        return Running(container, process, log)

    def run(self, container: Container, timeout: float = 60) -> Running:
        running = self.start(container)
        code = running.process.wait(timeout)
        assert code == 0, f"{container.name} failed ({code}): {running.log_text()}"
        return running


class PodmanRunner:
    """The pod's image with Podman on the host network, as a container runtime would run
    it: the pod's user and fsGroup, no capabilities, no privilege escalation, a read-only
    root file system where the spec says so, each volume bound at its mountPath. ``env``
    selects the Podman store that holds the image (its ``CONTAINERS_*`` variables)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self._pauses: dict[str, str] = {}  # pod -> its pause container

    def command(self, container: Container) -> list[str]:
        name = f"{container.pod}-{container.name}-{uuid.uuid4().hex[:8]}"
        argv = [
            "podman",
            "run",
            "--rm",
            f"--name={name}",
            "--network=host",
            f"--hostname={container.pod}",
            f"--user={container.uid}:{container.gid}",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--pull=never",
        ]
        argv += [f"--group-add={group}" for group in container.groups]
        if container.share_process_namespace:
            argv.append(f"--pid=container:{self._pause(container)}")
        if container.read_only_root:
            argv.append("--read-only")
        argv += [f"--add-host={name}:{address}" for name, address in container.hosts.items()]
        argv += [f"--env={key}={value}" for key, value in container.env.items()]
        for mount in container.mounts:
            options = "ro" if mount.read_only else "rw"
            argv.append(f"--volume={mount.source}:{mount.target}:{options}")
        if container.command:
            argv += [f"--entrypoint={container.command[0]}", container.image]
            argv += [*container.command[1:], *container.args]
        else:
            argv += [container.image, *container.args]
        return argv

    def start(self, container: Container) -> Running:
        log = self.root / f"{container.pod}-{container.name}.log"
        argv = self.command(container)
        with log.open("wb") as handle:
            process = subprocess.Popen(
                argv, env={**os.environ, **self.env}, stdout=handle, stderr=subprocess.STDOUT
            )
        return Running(container, process, log)

    def _pause(self, container: Container) -> str:
        """The pod's pause container, started (detached) the first time."""
        if container.pod not in self._pauses:
            name = f"{container.pod}-pause-{uuid.uuid4().hex[:8]}"
            self._podman(
                "run",
                "--detach",
                "--rm",
                f"--name={name}",
                "--network=host",
                f"--user={container.uid}:{container.gid}",
                "--cap-drop=all",
                "--security-opt=no-new-privileges",
                "--read-only",
                "--pull=never",
                "--entrypoint=sleep",
                container.image,
                "infinity",
            )
            self._pauses[container.pod] = name
        return self._pauses[container.pod]

    def _podman(self, *args: str) -> None:
        done = subprocess.run(
            ["podman", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"podman {args[0]}: {done.stderr}"

    def close(self) -> None:
        """Remove the pause containers (once the pods' containers are stopped)."""
        for name in self._pauses.values():
            self._podman("rm", "--force", "--ignore", "--time=0", name)
        self._pauses.clear()

    def run(self, container: Container, timeout: float = 120) -> Running:
        running = self.start(container)
        code = running.process.wait(timeout)
        assert code == 0, f"{container.name} failed ({code}): {running.log_text()}"
        return running
