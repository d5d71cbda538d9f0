"""Device logs to a syslog server, as upstream Flotta's ``logCollection`` of kind syslog sent
them: one RFC 5424 message per line (:mod:`flotta.exporter.rfc5424`).

The target comes from the ConfigMap that the entry's ``syslogConfig`` names
(:meth:`SyslogTarget.from_config_map`): upstream's ``Address`` (``host:port``) and
``Protocol`` (``tcp`` or ``udp``), plus ``tls`` for TCP with TLS (RFC 5425) and ``CA``, the
PEM certificate(s) to verify the server with (else the system's trust store).

Each line becomes ``<PRI>1 TIME DEVICE WORKLOAD CONTAINER STREAM [flotta@32473 ...] TEXT``:
the device's own timestamp; severity ``err`` for stderr, ``info`` for stdout, ``notice`` for
the agent's notes (``system``); structured data naming namespace, device, workload,
container, stream, and ``batch`` (the device buffer's stream and the batch's sequence) with
``index`` (the line's place in the batch), so a receiver recognises a batch delivered twice.

Delivery:

* TCP and TLS frame messages by octet counting (RFC 6587), on one connection kept open and
  written by one send at a time, in order. A send succeeds once the receiving host's TCP
  acknowledged every byte (Linux ``SIOCOUTQ``), not merely once the bytes left this process;
  a connection the receiver closed is noticed before writing on it. Syslog itself has no
  acknowledgement, so lines the receiver's TCP acknowledged but the receiver had not read
  when it stopped are lost.
* A target that is down answers ``Retry``; it is tried again after a backoff that grows to a
  minute while it stays down.
* UDP (RFC 5426) sends one message per datagram, cut to ``max_datagram_bytes``; there is no
  acknowledgement, so only a target that answers ICMP "port unreachable" is noticed as down
  (``Retry``). It is there because upstream configurations name it; prefer TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import ssl
import struct
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from flotta.backoff import Backoff, BackoffPolicy
from flotta.exporter import rfc5424
from flotta.exporter.rfc5424 import Facility, Severity
from flotta.exporter.sink import Accepted, DeviceBatch, Retry, SinkOutcome
from flotta.schemas.wire.telemetry import LogsBatch

log = logging.getLogger(__name__)

SyslogProtocol = Literal["tcp", "udp", "tls"]
PROTOCOLS: tuple[SyslogProtocol, ...] = ("tcp", "udp", "tls")
DEFAULT_PORTS: dict[SyslogProtocol, int] = {"tcp": 514, "udp": 514, "tls": 6514}
SD_ID = "flotta@32473"
"""The structured-data element's id. 32473 is the enterprise number RFC 5612 reserves for
documentation: the project has none of its own, and an operator may set another."""
SEVERITIES: dict[str, Severity] = {
    "stdout": Severity.INFO,
    "stderr": Severity.ERR,
    "system": Severity.NOTICE,
}
RECONNECT = BackoffPolicy(base=0.5, cap=60.0, jitter=0.5)
# How often to look whether the peer acknowledged every byte: 1 ms, doubling up to 50 ms.
ACKNOWLEDGEMENT_POLLS = BackoffPolicy(base=0.001, cap=0.05, jitter=0.0)
_SETTLE_ROUNDS = 3  # loop rounds for a peer's close (read event, then callbacks) to land


class SyslogConfigError(ValueError):
    """A syslog ConfigMap the exporter cannot act on; the message says which key and why."""


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where one ``logCollection`` entry's logs go."""

    host: str
    port: int
    protocol: SyslogProtocol = "tcp"
    ca_pem: str = ""
    """For ``tls``: the CA certificate(s) to trust, PEM; empty: the system's trust store."""

    @classmethod
    def from_config_map(cls, data: Mapping[str, str]) -> SyslogTarget:
        """The target an upstream syslog ConfigMap describes (keys ``Address``, ``Protocol``,
        and here also ``CA``; key names match case-insensitively, as upstream's examples
        spell them both ways); raises :class:`SyslogConfigError`."""
        keys = {key.lower(): value for key, value in data.items()}
        protocol = keys.get("protocol", "tcp").strip().lower() or "tcp"
        if protocol not in PROTOCOLS:
            raise SyslogConfigError(f"Protocol {protocol!r} is not supported: use tcp, tls or udp")
        address = keys.get("address", "").strip()
        if not address:
            raise SyslogConfigError("Address is missing: give host:port of the syslog server")
        host, port = parse_address(address, DEFAULT_PORTS[protocol])
        ca_pem = keys.get("ca", "").strip()
        if ca_pem and protocol != "tls":
            raise SyslogConfigError(f"CA is set but Protocol is {protocol}, not tls")
        if ca_pem:
            try:
                ssl.create_default_context(cadata=ca_pem)
            except (ssl.SSLError, ValueError) as exc:
                raise SyslogConfigError(f"CA is not a PEM certificate: {exc}") from None
        return cls(host, port, protocol, ca_pem)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise SyslogConfigError(f"Address {text!r} is not [host]:port")
        port_text = rest[1:]
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port_text = text, ""
    else:
        host, _, port_text = text.partition(":")
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise SyslogConfigError(f"Address {text!r} has no valid host")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SyslogConfigError(f"Address {text!r} has no valid host") from None
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SyslogConfigError(f"Address {text!r} has no valid port (1-65535)")
    return host, int(port_text)


def line_messages(
    batch: DeviceBatch[LogsBatch], *, facility: Facility = Facility.USER, sd_id: str = SD_ID
) -> list[bytes]:
    """The RFC 5424 messages for a batch's lines, in order (not framed)."""
    rfc5424.sd_name(sd_id)
    logs = batch.batch
    batch_id = f"{logs.stream}:{logs.sequence}"
    messages = []
    for index, line in enumerate(logs.lines):
        params = [
            ("namespace", batch.namespace),
            ("device", batch.device),
            ("workload", line.workload),
            ("container", line.container),
            ("stream", line.stream),
            ("batch", batch_id),
            ("index", str(index)),
        ]
        messages.append(
            rfc5424.message(
                facility=facility,
                severity=SEVERITIES.get(line.stream, Severity.INFO),
                time=line.time,
                hostname=batch.device,
                app_name=line.workload,
                procid=line.container,
                msgid=line.stream,
                sd=rfc5424.structured_data([(sd_id, [p for p in params if p[1]])]),
                text=line.line,
            )
        )
    return messages


@dataclass(frozen=True, slots=True)
class SyslogSettings:
    facility: Facility = Facility.USER
    sd_id: str = SD_ID
    connect_timeout: float = 10.0
    write_timeout: float = 30.0
    """How long a send may wait for the receiver's TCP to take every byte."""
    max_datagram_bytes: int = 2048
    """UDP: a longer message is cut (RFC 5426 asks receivers for at least 2048)."""
    reconnect: BackoffPolicy = field(default_factory=lambda: RECONNECT)


class SyslogSink:
    """One syslog target; implements :class:`flotta.exporter.sink.Sink` for logs batches."""

    def __init__(self, target: SyslogTarget, settings: SyslogSettings | None = None) -> None:
        self.target = target
        self.settings = settings or SyslogSettings()
        rfc5424.sd_name(self.settings.sd_id)
        self._lock = asyncio.Lock()
        self._connection: _Connection | None = None
        self._backoff = Backoff(self.settings.reconnect)
        self._retry_at = 0.0
        self._last_error = ""

    @property
    def name(self) -> str:
        return "syslog"

    def __repr__(self) -> str:
        return f"SyslogSink({self.target.address})"

    async def send(self, batches: Sequence[DeviceBatch[LogsBatch]]) -> SinkOutcome:
        messages = [
            message
            for batch in batches
            for message in line_messages(
                batch, facility=self.settings.facility, sd_id=self.settings.sd_id
            )
        ]
        if not messages:
            return Accepted(0)
        async with self._lock:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                return Retry(f"syslog {self.target.address} is down: {self._last_error}", wait)
            try:
                connection = await self._connected()
                await connection.send(messages)
            except (OSError, TimeoutError) as exc:
                return self._failed(exc)
        self._backoff.reset()
        return Accepted(len(messages))

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None:
            await connection.settle()
            if connection.usable:
                return connection
            log.info("syslog %s: %s; reconnecting", self.target.address, connection.why_closed)
            connection.close()
        self._connection = None
        connection = await _open(self.target, self.settings)
        self._connection = connection
        return connection

    def _failed(self, exc: BaseException) -> Retry:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self._last_error = _describe(exc)
        log.warning(
            "syslog %s: %s; next attempt in %.1f s", self.target.address, self._last_error, delay
        )
        return Retry(f"syslog {self.target.address}: {self._last_error}", delay)

    async def aclose(self) -> None:
        async with self._lock:
            if self._connection is not None:
                self._connection.close()
                await self._connection.wait_closed()
                self._connection = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno:
        return os.strerror(exc.errno)  # not asyncio's "Connect call failed (address)"
    return str(exc) or type(exc).__name__


async def _open(target: SyslogTarget, settings: SyslogSettings) -> _Connection:
    loop = asyncio.get_running_loop()
    state = _State(loop)
    async with asyncio.timeout(settings.connect_timeout):
        if target.protocol == "udp":
            datagrams, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(state), remote_addr=(target.host, target.port)
            )
            return _DatagramConnection(datagrams, state, settings)
        context = None
        if target.protocol == "tls":
            # without a CA of its own, the default context trusts the system's store
            context = ssl.create_default_context(cadata=target.ca_pem or None)
        stream, _ = await loop.create_connection(
            lambda: _StreamProtocol(state),
            target.host,
            target.port,
            ssl=context,
            server_hostname=target.host if context is not None else None,
        )
    return _StreamConnection(stream, state, settings)


class _Connection:
    """A connection to the target on the event loop; what its protocol learnt is in ``state``."""

    def __init__(
        self, transport: asyncio.BaseTransport, state: _State, settings: SyslogSettings
    ) -> None:
        self._transport = transport
        self._state = state
        self._settings = settings

    @property
    def usable(self) -> bool:
        return self._state.lost is None and not self._transport.is_closing()

    @property
    def why_closed(self) -> str:
        return _describe(self._state.lost) if self._state.lost else "closed"

    async def settle(self) -> None:
        """Let the loop take in what the peer did meanwhile (a close, an ICMP error)."""
        for _ in range(_SETTLE_ROUNDS):
            await asyncio.sleep(0)

    async def send(self, messages: Sequence[bytes]) -> None:
        """Write every message; raises OSError or TimeoutError when the target did not take
        them all."""
        raise NotImplementedError

    def _raise_if_lost(self) -> None:
        if self._state.lost is not None:
            raise self._state.lost

    def close(self) -> None:
        self._transport.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._state.closed


class _StreamConnection(_Connection):
    """TCP or TLS: octet-counted frames; done when the peer's TCP acknowledged every byte."""

    def __init__(
        self, transport: asyncio.WriteTransport, state: _State, settings: SyslogSettings
    ) -> None:
        super().__init__(transport, state, settings)
        self._stream = transport
        self._fd = _socket_fd(transport)
        transport.set_write_buffer_limits(high=0)  # drained: the kernel took every byte

    async def send(self, messages: Sequence[bytes]) -> None:
        self._stream.writelines([rfc5424.octet_counted(message) for message in messages])
        async with asyncio.timeout(self._settings.write_timeout):
            await self._state.drained()
            await self._acknowledged()

    async def _acknowledged(self) -> None:
        """Wait until the peer's TCP acknowledged every byte written (the socket's send queue
        is empty); where the kernel cannot say, return at once."""
        polls = Backoff(ACKNOWLEDGEMENT_POLLS)
        while self._stream.get_write_buffer_size() > 0 or _unacknowledged(self._fd) > 0:
            self._raise_if_lost()
            await asyncio.sleep(polls.next_delay())
        self._raise_if_lost()


class _DatagramConnection(_Connection):
    """UDP: one datagram per message, cut to ``max_datagram_bytes``."""

    def __init__(
        self, transport: asyncio.DatagramTransport, state: _State, settings: SyslogSettings
    ) -> None:
        super().__init__(transport, state, settings)
        self._datagrams = transport

    async def send(self, messages: Sequence[bytes]) -> None:
        limit = self._settings.max_datagram_bytes
        for message in messages:
            self._datagrams.sendto(rfc5424.truncate(message, limit))
        await self.settle()  # an ICMP "port unreachable" for them arrives meanwhile
        self._raise_if_lost()


class _State:
    """What the protocol callbacks learnt about the connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lost: OSError | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self._writable = asyncio.Event()
        self._writable.set()

    def pause(self) -> None:
        self._writable.clear()

    def resume(self) -> None:
        self._writable.set()

    def lose(self, exc: OSError) -> None:
        if self.lost is None:
            self.lost = exc
        self._writable.set()

    def finish(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    async def drained(self) -> None:
        await self._writable.wait()
        if self.lost is not None:
            raise self.lost


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self._state = state

    def data_received(self, data: bytes) -> None:
        pass  # a syslog receiver sends nothing back; whatever it sends is ignored

    def eof_received(self) -> bool:
        self._state.lose(ConnectionResetError("the receiver closed the connection"))
        return False  # close our side too

    def pause_writing(self) -> None:
        self._state.pause()

    def resume_writing(self) -> None:
        self._state.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        lost = exc if isinstance(exc, OSError) else ConnectionResetError("connection closed")
        self._state.lose(lost)
        self._state.finish()


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, state: _State) -> None:
        self._state = state

    def error_received(self, exc: Exception) -> None:
        self._state.lose(exc if isinstance(exc, OSError) else OSError(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.lose(ConnectionResetError("closed"))
        self._state.finish()


def _socket_fd(transport: asyncio.BaseTransport) -> int:
    sock = transport.get_extra_info("socket")
    return sock.fileno() if sock is not None else -1


def _unacknowledged(fd: int) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux SIOCOUTQ);
    0 where that cannot be asked."""
    if fd < 0:
        return 0
    try:
        raw = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


__all__ = [
    "SD_ID",
    "SyslogConfigError",
    "SyslogSettings",
    "SyslogSink",
    "SyslogTarget",
    "line_messages",
    "parse_address",
]
