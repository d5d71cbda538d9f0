"""An isolated Podman for tests and the local stack: own config, own store, own API socket.

Facts of the machines this runs on (Debian Podman 4.3):

- only the ``runc`` runtime works (crun rejects the hybrid cgroup layout), and container
  ulimits must stay below the host's hard limits, so both go into a project-owned
  ``containers.conf`` passed through ``CONTAINERS_CONF``;
- the store, the run root, Podman's tmp dir (locks, events) and the network definitions live
  under the given state dir (``CONTAINERS_STORAGE_CONF``), never in the system store;
- nothing can be pulled: the workload image is a busybox-static rootfs imported locally, and
  the pod infra image is the one Podman builds itself from ``catatonit`` on first use
  (``localhost/podman-pause:<version>``), so no ``infra_image`` has to be configured;
- with ``private_network`` the API service runs in a network namespace of its own, so pod
  bridges, NAT rules and host ports never touch the machine's network (and two instances
  cannot fight over a host port). Reach host ports there with :meth:`PodmanService.netns_argv`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

BUSYBOX_IMAGE = "localhost/flotta/busybox:latest"
BUSYBOX_BINARY = Path("/bin/busybox")
KUBE_NETWORK = "podman-default-kube-network"
KUBE_SUBNET = "10.89.0.0/24"
KUBE_GATEWAY = "10.89.0.1"
ULIMITS = ("nofile=4096:4096", "nproc=4096:4096")
LOG_SIZE_MAX = 8 * 1024 * 1024
# command -> Debian package
TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "tar": "tar",
}


class PodmanUnavailableError(RuntimeError):
    """Podman cannot work on this machine; the message says why."""


@dataclass(frozen=True, slots=True)
class PodmanEnvironment:
    """Where one isolated Podman keeps everything, and the environment that selects it."""

    state_dir: Path

    @property
    def containers_conf(self) -> Path:
        return self.state_dir / "containers.conf"

    @property
    def storage_conf(self) -> Path:
        return self.state_dir / "storage.conf"

    @property
    def registries_conf(self) -> Path:
        return self.state_dir / "registries.conf"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "podman.sock"

    @property
    def socket_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        """Variables that make the ``podman`` command use this instance."""
        return {
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
        }

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def unavailable_reason() -> str | None:
    """None when Podman can be used here, else why not (for ``pytest.skip``)."""
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    if not BUSYBOX_BINARY.exists():
        return f"{BUSYBOX_BINARY} is missing (apt-get install busybox-static)"
    if os.geteuid() != 0:
        return "the isolated Podman runs rootful: run the tests as root"
    return None


def write_config(state_dir: Path, *, insecure_registries: Sequence[str] = ()) -> PodmanEnvironment:
    """Write ``containers.conf``, ``storage.conf`` and ``registries.conf`` for an instance
    rooted at ``state_dir``. Short image names are not searched anywhere; the
    ``insecure_registries`` (host:port) are reached over plain HTTP (test registries)."""
    state_dir = state_dir.resolve()
    environment = PodmanEnvironment(state_dir)
    for sub in ("root", "runroot", "tmp", "networks"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    ulimits = ", ".join(json.dumps(limit) for limit in ULIMITS)
    environment.containers_conf.write_text(
        "[containers]\n"
        f"default_ulimits = [{ulimits}]\n"
        'log_driver = "k8s-file"\n'
        f"log_size_max = {LOG_SIZE_MAX}\n"
        "\n[network]\n"
        f"network_config_dir = {json.dumps(str(state_dir / 'networks'))}\n"
        "\n[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f"events_logfile_path = {json.dumps(str(state_dir / 'tmp' / 'events.log'))}\n"
        f"tmp_dir = {json.dumps(str(state_dir / 'tmp'))}\n"
    )
    _write_kube_network(state_dir / "networks")
    environment.storage_conf.write_text(
        "[storage]\n"
        'driver = "vfs"\n'
        f"graphroot = {json.dumps(str(state_dir / 'root'))}\n"
        f"runroot = {json.dumps(str(state_dir / 'runroot'))}\n"
    )
    registries = ["unqualified-search-registries = []\n"]
    for location in insecure_registries:
        registries.append(f"\n[[registry]]\nlocation = {json.dumps(location)}\ninsecure = true\n")
    environment.registries_conf.write_text("".join(registries))
    return environment


def _write_kube_network(network_dir: Path) -> None:
    """The network ``kube play`` uses, defined up front without DNS.

    Podman 4.3 keeps aardvark-dns state in the fixed ``/run/containers/networks`` whatever
    the configuration says, so instances with DNS would share one DNS server across network
    namespaces. Pods here do not resolve each other by name; without DNS nothing is shared
    but the IP allocation database, which keeps allocations apart.
    """
    definition = {
        "name": KUBE_NETWORK,
        "id": hashlib.sha256(KUBE_NETWORK.encode()).hexdigest(),
        "driver": "bridge",
        "network_interface": "podman1",
        "created": "2024-01-01T00:00:00Z",
        "subnets": [{"subnet": KUBE_SUBNET, "gateway": KUBE_GATEWAY}],
        "ipv6_enabled": False,
        "internal": False,
        "dns_enabled": False,
        "ipam_options": {"driver": "host-local"},
    }
    path = network_dir / f"{KUBE_NETWORK}.json"
    path.write_text(json.dumps(definition, indent=2) + "\n")
    # The same network for the CNI backend, which Podman uses where netavark is not installed
    # (each backend reads only its own file); without it the network exists only after the
    # first ``kube play`` made it.
    conflist = {
        "cniVersion": "0.4.0",
        "name": KUBE_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni-podman1",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": KUBE_SUBNET, "gateway": KUBE_GATEWAY}]],
                },
                "capabilities": {"ips": True},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"},
        ],
    }
    (network_dir / f"{KUBE_NETWORK}.conflist").write_text(json.dumps(conflist, indent=2) + "\n")


class SelectsPodman(Protocol):
    """What picks one Podman: the environment its commands run with."""

    def process_env(self) -> dict[str, str]: ...


def podman(
    environment: SelectsPodman, *args: str, stdin: bytes | None = None, timeout: float = 120
) -> str:
    """Run one ``podman`` command against this instance; its stdout, or a readable error."""
    completed = subprocess.run(
        ["podman", *args],
        input=stdin,
        capture_output=True,
        env=environment.process_env(),
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()
        raise PodmanUnavailableError(f"podman {' '.join(args)} failed: {message}")
    return completed.stdout.decode(errors="replace")


def image_exists(environment: SelectsPodman, image: str) -> bool:
    completed = subprocess.run(
        ["podman", "image", "exists", image],
        env=environment.process_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return completed.returncode == 0


def build_busybox_image(environment: PodmanEnvironment, image: str = BUSYBOX_IMAGE) -> bool:
    """Import a busybox-static rootfs as ``image`` unless it exists; True when it was built."""
    if image_exists(environment, image):
        return False
    with tempfile.TemporaryDirectory(prefix="flotta-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _busybox_rootfs(rootfs)
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."],
            check=True,
            timeout=60,
        )
        podman(
            environment,
            "import",
            "--change",
            'CMD ["/bin/sh"]',
            "--change",
            "ENV PATH=/bin",
            str(archive),
            image,
        )
    return True


def _busybox_rootfs(rootfs: Path) -> None:
    bin_dir = rootfs / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("etc", "tmp", "root", "proc", "sys", "dev", "export"):
        (rootfs / name).mkdir()
    (rootfs / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX_BINARY, bin_dir / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX_BINARY), "--list"], capture_output=True, check=True, text=True, timeout=10
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")


class PodmanService:
    """``podman system service`` on a unix socket, started and stopped by PID."""

    def __init__(self, environment: PodmanEnvironment, *, private_network: bool = True) -> None:
        self.environment = environment
        self.private_network = private_network
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise PodmanUnavailableError("the Podman service is not running")
        return self._process.pid

    def argv(self) -> list[str]:
        serve = ["podman", "system", "service", "--time=0", self.environment.socket_url]
        if not self.private_network:
            return serve
        # `exec` keeps the PID: the recorded process is podman itself, inside its namespace.
        script = 'ip link set lo up && exec "$@"'
        return ["unshare", "--net", "--", "sh", "-c", script, "sh", *serve]

    def netns_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the service's network namespace (to reach host ports there)."""
        if not self.private_network:
            return list(argv)
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *argv]

    def start(self, *, timeout: float = 30.0) -> None:
        if self._process is not None:
            raise PodmanUnavailableError("the Podman service is already running")
        socket_path = self.environment.socket_path
        socket_path.unlink(missing_ok=True)
        log_path = self.environment.state_dir / "service.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment.process_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if socket_path.exists() and ping(socket_path):
                return
            time.sleep(0.05)
        self.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise PodmanUnavailableError(f"podman system service did not come up: {tail}")

    def stop(self, *, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def __enter__(self) -> PodmanService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def ping(socket_path: Path, *, timeout: float = 2.0) -> bool:
    try:
        status, _ = api_call(socket_path, "GET", "/_ping", timeout=timeout)
    except OSError:
        return False
    return status == 200


def api_call(
    socket_path: Path,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """One blocking libpod API call (for harness housekeeping; the agent has its own client)."""
    import http.client
    import socket

    class _UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            self.sock = sock

    target = "/v4.0.0/libpod" + path
    if query:
        target += "?" + urllib.parse.urlencode(query)
    connection = _UnixConnection("localhost", timeout=timeout)
    try:
        connection.request(method, target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def remove_all_pods(environment: PodmanEnvironment, *, stop_timeout: int = 0) -> list[str]:
    """Stop and remove every pod and container of a running service; the removed pod names."""
    socket_path = environment.socket_path
    status, body = api_call(socket_path, "GET", "/pods/json")
    if status != 200:
        raise PodmanUnavailableError(f"listing pods failed ({status}): {body!r}")
    names = [str(pod["Name"]) for pod in json.loads(body or b"[]")]
    for name in names:
        quoted = urllib.parse.quote(name, safe="")
        api_call(socket_path, "POST", f"/pods/{quoted}/stop", query={"t": str(stop_timeout)})
        api_call(socket_path, "DELETE", f"/pods/{quoted}", query={"force": "true"})
    api_call(socket_path, "POST", "/containers/prune")
    status, body = api_call(socket_path, "GET", "/secrets/json")
    if status == 200:
        for secret in json.loads(body or b"[]"):
            api_call(socket_path, "DELETE", f"/secrets/{secret['ID']}")
    return names
