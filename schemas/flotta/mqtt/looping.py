"""paho's socket on the asyncio loop: readers/writers from paho's socket callbacks.

paho calls ``on_socket_open`` and ``on_socket_register_write`` from the thread that runs
``connect()`` (a worker, since TCP + TLS block); those calls are passed to the loop with
``call_soon_threadsafe``. Close/unregister come from the loop thread (paho calls them before
the socket is closed, so they must act at once).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

PENDING_READ_ROUNDS = 1000  # bound on extra reads of bytes TLS already decrypted


class SocketBridge:
    """Serves one paho client's socket from the event loop it is created on."""

    def __init__(self, client: paho.Client, loop: asyncio.AbstractEventLoop) -> None:
        self._paho = client
        self._loop = loop
        self._thread = threading.get_ident()

    def attach(self) -> None:
        self._paho.on_socket_open = self._socket_open
        self._paho.on_socket_close = self._socket_close
        self._paho.on_socket_register_write = self._socket_register_write
        self._paho.on_socket_unregister_write = self._socket_unregister_write

    def _on_loop_thread(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if threading.get_ident() == self._thread:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    def _is_current(self, sock: Any) -> bool:
        """Still paho's open socket (a marshalled callback may arrive after it was closed)."""
        current: Any = self._paho.socket()
        return current is sock and bool(sock.fileno() >= 0)

    def _socket_open(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop_thread(self._add_reader, sock)

    def _add_reader(self, sock: Any) -> None:
        if self._is_current(sock):
            self._loop.add_reader(sock, self._readable, sock)

    def _readable(self, sock: Any) -> None:
        self._paho.loop_read()
        # TLS may hold decrypted bytes that the socket no longer signals as readable.
        rounds = 0
        while (
            isinstance(sock, ssl.SSLSocket)
            and self._is_current(sock)
            and sock.pending()
            and rounds < PENDING_READ_ROUNDS
        ):
            self._paho.loop_read()
            rounds += 1

    def _socket_close(self, client: paho.Client, userdata: object, sock: Any) -> None:
        if sock.fileno() >= 0:
            self._loop.remove_reader(sock)

    def _socket_register_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop_thread(self._add_writer, sock)

    def _add_writer(self, sock: Any) -> None:
        if self._is_current(sock):
            self._loop.add_writer(sock, self._writable)

    def _writable(self) -> None:
        self._paho.loop_write()

    def _socket_unregister_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        if sock.fileno() >= 0:
            self._loop.remove_writer(sock)


def tracking_socket_class(opened: list[ssl.SSLSocket]) -> type[ssl.SSLSocket]:
    """An SSLSocket class that records each socket it creates (for ``sslsocket_class``).

    paho does not close a socket whose TLS handshake failed; the caller closes them.
    """

    class _TrackedSSLSocket(ssl.SSLSocket):
        @classmethod
        def _create(cls, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
            sock: ssl.SSLSocket = super()._create(*args, **kwargs)  # type: ignore[misc]
            opened.append(sock)
            return sock

    return _TrackedSSLSocket
