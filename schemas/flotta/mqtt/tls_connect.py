"""TCP connect and TLS handshake on the event loop, without a worker thread.

paho connects with blocking calls, so the client used to run them in a worker thread. With
thousands of clients in one process (the fleet simulator in a reconnect storm) the worker
threads and the loop thread took the GIL from each other at every step of every handshake:
the loop, which reads the CONNACKs, was starved until the handshakes ran out, and every
hand-over cost system calls. Here the socket is non-blocking from the start and the handshake
is driven by the loop's readiness callbacks; paho gets the socket once the handshake is done.

A numeric address needs no resolver; a host name is resolved by ``loop.getaddrinfo`` (the
loop's executor, as asyncio does it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


async def open_socket(host: str, port: int, context: ssl.SSLContext | None) -> socket.socket:
    """A connected socket, with its TLS handshake done when ``context`` is given.

    Raises ``OSError`` (``ssl.SSLError`` included) as a blocking connect would; cancelled, it
    closes what it opened."""
    sock = await _connect_tcp(host, port)
    if context is None:
        return sock
    try:
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        await _handshake(tls)
    except BaseException:
        tls.close()
        raise
    return tls


async def _connect_tcp(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    errors: list[OSError] = []
    for family, kind, proto, _, address in await _addresses(loop, host, port):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if not errors:
        raise OSError(f"no address for {host}")
    raise errors[0]


async def _addresses(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> Sequence[AddressInfo]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]


async def _handshake(tls: ssl.SSLSocket) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            await _ready(loop.add_reader, loop.remove_reader, tls.fileno())
        except ssl.SSLWantWriteError:
            await _ready(loop.add_writer, loop.remove_writer, tls.fileno())


async def _ready(watch: Callable[..., None], unwatch: Callable[[int], object], fd: int) -> None:
    """Until the descriptor is readable (or writable, as ``watch`` says)."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watch(fd, _settle, ready)
    try:
        await ready
    finally:
        unwatch(fd)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
