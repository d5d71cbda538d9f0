"""Sockets that live in a pod's network namespace, so the agent reaches the pod's ports
whatever network Podman gave it.

Why: a pod's address is reachable from the agent's own network namespace only in one of
Podman's set-ups (rootful, bridge network, agent in the host's namespace). It is not when
Podman runs rootless (the pod network lives in the rootless user's namespace behind
slirp4netns or pasta), when the Podman service has a network namespace of its own (the local
stack, ``flotta dev up``), or when a pod only listens on its loopback. Every pod has a
network namespace, and its infra container's process is in it: ``/proc/<pid>/ns/net``.

How: a socket belongs to the network namespace its creator was in at ``socket()``, and keeps
it for its whole life. A short-lived thread of its own enters the pod's namespace
(``setns(2)`` changes only the calling thread's namespace), creates the socket, goes back,
and ends; the socket is then connected and read by the event loop like any other. No other
thread ever runs in the pod's namespace, and a thread that could not go back ends with its
work. Nothing is started per scrape (no ``nsenter``, no helper process), and no port is
published on the host, so a workload's metrics port stays private to the device.

Entering a network namespace needs ``CAP_SYS_ADMIN`` (the agent runs as root; see
``agent/packaging/flotta-agent.service``). Without it, :func:`socket_in` raises
``PermissionError``, and :func:`open_connection` (what the scraper and the health gate's
probes use) falls back to the pod's address from the agent's own namespace, which works for
rootful Podman on the host network stack.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
OWN_NAMESPACE = "/proc/thread-self/ns/net"

_libc = ctypes.CDLL(None, use_errno=True)
_setns_call = _libc.setns
_setns_call.argtypes = (ctypes.c_int, ctypes.c_int)
_setns_call.restype = ctypes.c_int


def netns_of(pid: int) -> str:
    """The network namespace file of a process (``/proc/<pid>/ns/net``)."""
    return f"/proc/{pid}/ns/net"


def _setns(descriptor: int) -> None:
    if _setns_call(descriptor, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"setns: {os.strerror(number)}")


def _create(netns: str, family: int) -> socket.socket:
    own = os.open(OWN_NAMESPACE, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except BaseException:
            _setns(own)
            raise
        try:
            _setns(own)  # if this fails, the thread ends next, still in the pod's namespace
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        return sock
    finally:
        os.close(own)


def socket_in(netns: str, family: int = socket.AF_INET) -> socket.socket:
    """A non-blocking TCP socket in the network namespace ``netns`` (a ``/proc/<pid>/ns/net``
    or ``/run/netns/<name>`` file). Blocks briefly: call it through ``asyncio.to_thread``.

    Raises ``FileNotFoundError`` when the namespace is gone (the pod stopped),
    ``PermissionError`` without ``CAP_SYS_ADMIN``, ``OSError`` otherwise.
    """
    outcome: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            outcome.append(_create(netns, family))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=work, name="flotta-netns", daemon=True)
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


async def open_connection(
    host: str, port: int, netns: str = "", *, limit: int = 64 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``host``:``port`` made from inside the network namespace
    ``netns`` (empty: the agent's own). Without the right to enter it, the connection is
    made from the agent's own namespace, and its failure says so."""
    if not netns:
        return await asyncio.open_connection(host, port, limit=limit)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = await asyncio.to_thread(socket_in, netns, family)
    except PermissionError as exc:
        try:
            return await asyncio.open_connection(host, port, limit=limit)
        except OSError as direct:
            raise OSError(
                f"{direct}; the pod's network namespace {netns} could not be entered "
                f"({exc.strerror}: the agent needs CAP_SYS_ADMIN)"
            ) from None
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=limit)
