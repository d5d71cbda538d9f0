"""paho's socket on the asyncio loop: readers/writers from paho's socket callbacks.

Every paho call, and so every socket callback, happens on the loop thread: the socket is
connected on the loop and handed to paho (``flotta.mqtt.tls_connect``).

Once connected, writes are flushed once per loop iteration: paho asks for a writer whenever it
queues a packet; instead of watching the socket for each (two epoll changes and a wake-up per
packet), :class:`SocketBridge` writes everything queued in this iteration at its end, and
watches the socket only when the kernel would not take it all.

Reads: a readable socket gets one packet read, and more while TLS holds decrypted bytes. With
``read_burst`` above 1 (the fast receive path) it gets up to that many packets read while the
socket has more, so that a stream of small messages is taken in batches: one turn of the loop
(and one flush of what the consumer sends on, such as NATS publishes and PUBACKs) for many
messages, not one per message. Mosquitto writes each PUBLISH in a TLS record of its own, so
without it the bridge took one message per turn of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from typing import Any

import paho.mqtt.client as paho

PENDING_READ_ROUNDS = 1000  # bound on extra reads of bytes TLS already decrypted
READ_BURST = 256  # packets read per readable event on the fast receive path, at most


class SocketBridge:
    """Serves one paho client's socket from the event loop it is created on."""

    def __init__(
        self, client: paho.Client, loop: asyncio.AbstractEventLoop, *, read_burst: int = 1
    ) -> None:
        self._paho = client
        self._loop = loop
        self._read_burst = read_burst
        self._poll: select.poll | None = None  # whether the socket has more, for read bursts
        self._flush_scheduled = False
        self._watching_writes = False

    def attach(self) -> None:
        self._paho.on_socket_open = self._socket_open
        self._paho.on_socket_close = self._socket_close
        self._paho.on_socket_register_write = self._socket_register_write
        self._paho.on_socket_unregister_write = self._socket_unregister_write

    def _is_current(self, sock: Any) -> bool:
        """Still paho's open socket (a scheduled flush may run after it was closed)."""
        current: Any = self._paho.socket()
        return current is sock and bool(sock.fileno() >= 0)

    def _socket_open(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._add_reader(sock)

    def _add_reader(self, sock: Any) -> None:
        if self._is_current(sock):
            # By descriptor: asyncio formats a socket object into the KeyError it raises (and
            # catches) for every new registration, and repr() of a socket makes two syscalls.
            self._loop.add_reader(sock.fileno(), self._readable, sock)
            if self._read_burst > 1:
                self._poll = select.poll()
                self._poll.register(sock.fileno(), select.POLLIN)

    def _readable(self, sock: Any) -> None:
        self._paho.loop_read()
        # TLS may hold decrypted bytes that the socket no longer signals as readable.
        rounds = 0
        more = self._read_burst - 1
        while self._is_current(sock) and rounds < PENDING_READ_ROUNDS:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                pass
            elif more > 0 and self._poll is not None and self._poll.poll(0):
                more -= 1
            else:
                return
            self._paho.loop_read()
            rounds += 1

    def _socket_close(self, client: paho.Client, userdata: object, sock: Any) -> None:
        fd = sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
        self._poll = None

    def _socket_register_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._schedule_flush(sock)

    def _schedule_flush(self, sock: Any) -> None:
        if not self._paho.is_connected():
            # Until the CONNACK, wait for the socket: a refusal the broker has already sent (a
            # TLS alert naming the certificate problem) is then read before CONNECT is written,
            # which would turn it into a connection reset.
            if self._is_current(sock):
                self._watch_writes(sock)
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what paho queued (for whichever socket is current by now)."""
        self._flush_scheduled = False
        sock: Any = self._paho.socket()
        if sock is None or sock.fileno() < 0 or self._watching_writes:
            return
        self._paho.loop_write()
        # paho unregisters (see below) once its queue is empty; what is left waits for the socket.
        if self._paho.want_write() and self._is_current(sock):
            self._watch_writes(sock)

    def _watch_writes(self, sock: Any) -> None:
        if not self._watching_writes:
            self._watching_writes = True
            self._loop.add_writer(sock.fileno(), self._writable)

    def _writable(self) -> None:
        self._paho.loop_write()

    def _socket_unregister_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        if self._watching_writes:
            self._watching_writes = False
            fd = sock.fileno()
            if fd >= 0:
                self._loop.remove_writer(fd)


def disable_nagle(sock: object) -> None:
    """Send small packets at once: with Nagle's algorithm a PUBLISH or PUBACK can wait for the
    peer's delayed TCP ACK (up to 40 ms on Linux) behind the one before it."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
