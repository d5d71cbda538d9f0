"""Run the local API: TLS on loopback, bearer token, kubeconfig written once ready."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import signal
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import web

from flotta.dev.kubeapi.api import Api
from flotta.dev.kubeapi.authn import KEY_FILE, Authenticator, KeyFile
from flotta.dev.kubeapi.authorizing import Gate
from flotta.dev.kubeapi.handlers import Handlers, Settings
from flotta.dev.kubeapi.storage import Storage
from flotta.dev.kubeapi.tls import ensure_serving_files

logger = logging.getLogger(__name__)

CONTEXT_NAME = "flotta-local"


@dataclass(frozen=True)
class ServerConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    history_size: int = 10_000
    queue_size: int = 10_000
    bookmark_interval: float = 60.0
    audit_log: Path | None = None  # audit.k8s.io Events, one JSON line per request


def _token(state_dir: Path) -> str:
    path = state_dir / "token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def kubeconfig_text(url: str, ca_pem: bytes, token: str) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT_NAME, "user": {"token": token}}],
        "contexts": [
            {"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME}}
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False)


class KubeApiServer:
    """One local API server over one state directory."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.token = ""
        self.url = ""
        self.ca_path = self.state_dir / "ca.crt"
        self._runner: web.AppRunner | None = None
        self._storage: Storage | None = None
        self.api: Api | None = None
        self._handlers: Handlers | None = None
        self._gate: Gate | None = None

    async def start(self) -> str:
        """Listen, then write the kubeconfig; returns the server URL."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_dir.chmod(0o700)  # it holds Secrets and the admin token
        self.kubeconfig.unlink(missing_ok=True)
        files = ensure_serving_files(self.state_dir)
        self.token = _token(self.state_dir)
        self._storage = Storage(self.state_dir / "state.db")
        self.api = Api(
            self._storage, history_size=self.config.history_size, queue_size=self.config.queue_size
        )
        authenticator = Authenticator(
            self.token,
            KeyFile(self.state_dir / KEY_FILE),
            self._account_uid,
            clock=time.time,
        )
        self._gate = Gate(self.api, authenticator, audit_log=self.config.audit_log)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        port = sock.getsockname()[1]
        self.url = f"https://{self.config.host}:{port}"
        settings = Settings(
            server_address=f"{self.config.host}:{port}",
            bookmark_interval=self.config.bookmark_interval,
        )
        app = web.Application(client_max_size=3 * 1024 * 1024)
        self._handlers = Handlers(self.api, settings, self._gate)
        self._handlers.routes(app)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.cert, files.key)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        temporary = self.kubeconfig.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(kubeconfig_text(self.url, files.ca_cert.read_bytes(), self.token))
        temporary.replace(self.kubeconfig)
        logger.info("local Kubernetes API serving on %s (kubeconfig %s)", self.url, self.kubeconfig)
        return self.url

    def _account_uid(self, namespace: str, name: str) -> str | None:
        """The uid of a stored ServiceAccount (tokens name the account they were issued for)."""
        if self._storage is None:
            return None
        entry = self._storage.get("/serviceaccounts", namespace, name)
        return None if entry is None else str(entry.load()["metadata"]["uid"])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._handlers is not None:
            self._handlers.abort_connections()
            await asyncio.sleep(0)  # the loop runs the aborts' connection_lost callbacks
        if self._gate is not None:
            self._gate.close()
            self._gate = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None


async def serve(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = KubeApiServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        logger.info("local Kubernetes API stopping")
        await server.stop()
