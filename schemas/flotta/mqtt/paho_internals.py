"""Every use of paho-mqtt's private API in Flotta, and nowhere else.

``flotta.mqtt`` drives paho from the asyncio loop and takes per-packet costs out of its hot
paths; for that it overrides private methods, reads private attributes and replaces two classes
paho creates internally. paho may change any of these in a minor release, so:

* they are all here: every other module (and the bridge) only uses paho's public API and the
  functions of this module;
* :data:`PRIVATE_API` names each one with the shape relied on, and :func:`problems` checks
  them against the installed paho; ``tests/mqtt/test_paho_internals.py`` fails with that list
  (and checks that no other module reaches into paho);
* paho-mqtt is pinned in ``pyproject.toml`` to the minor version that test passes on.

What each use is for:

``WindowedClient`` (paho's ``Client`` with these overrides):

* ``_create_socket``: take a socket connected and TLS-handshaken on the event loop
  (``flotta.mqtt.tls_connect``); paho's own connects with blocking calls.
* ``_easy_log``: drop paho's log lines of other levels before they are formatted (a debug line
  for every packet; the calls alone were 5 % of the simulator's CPU in a fan-out).
* ``_update_inflight`` (reads ``_out_messages``, ``_inflight_messages``): on every PUBACK
  paho walks all of its unacknowledged messages looking for one queued behind the in-flight
  window. The operator keeps up to 256 publishes in flight and nothing queued behind them, so
  each of a fan-out's 10,000 acknowledgements walked 256 messages for nothing (11 % of the
  operator's CPU, py-spy, 2026-12-03). Every message paho holds is either counted in flight or
  queued; when there are no more messages than are in flight, none is queued and the walk is
  skipped. Otherwise paho's own walk runs.
* ``_packet_write`` (reads ``_out_packet`` and its packet dicts' ``command``, ``qos``,
  ``packet``, ``pos``, ``to_process``; calls ``_sock_send``, ``_easy_log``): paho writes
  each queued packet with its own ``send``: over TLS a record and a system call per packet, and
  as many reads for the broker. The packets at the head of the queue that need nothing done
  once written (all but QoS 0 publishes and DISCONNECT, which paho's own loop handles) are
  joined into one ``send`` of at most ``COALESCE_BYTES``; from the first packet that does need
  it on, paho's own loop writes one by one. A partial write leaves the rest queued, as paho does.
* ``_handle_publish`` (reads ``_in_packet["command"]`` and ``_in_packet["packet"]``): the fast
  receive path. paho builds an ``MQTTMessage`` (with a lock), parses the properties and walks a
  topic matcher for every PUBLISH; a client that sets ``take_publish`` gets the raw packet
  first (``flotta.mqtt.publish_parsing``) and paho handles only what it does not take. The bridge
  receives 10-16k messages a second per replica through it.

Functions on a client:

* :func:`close_socket` (``_sock_close``): drop the connection without a DISCONNECT packet,
  with paho's socket callbacks (paho has no public way).
* :func:`renew_tls_context` (``_ssl_context``): ``tls_set_context`` may be called only once;
  a renewed certificate needs a new context, kept where paho's own connect would use it.
* :func:`set_inflight_window` (``_max_inflight_messages``): paho ignores the broker's Receive
  Maximum and its setter refuses an open connection; it is set on CONNACK, which precedes
  every publish.

Classes paho creates, replaced at import of ``flotta.mqtt`` (only when their shape matches;
otherwise paho's own stay, slower):

* :class:`LazyConditionMessageInfo` for ``MQTTMessageInfo`` (slots ``_condition``,
  ``_iterpos``, ``_published``; method ``_set_as_published``): paho makes one for every message
  it sends or receives, each with a ``threading.Condition`` so that another thread can
  ``wait_for_publish()``. ``flotta.mqtt`` never waits that way; the condition alone was 6 % of
  the simulator's CPU (py-spy, 10,000 devices heartbeating). The lazy class makes it only for a
  caller that waits or asks, so paho's own blocking API keeps working.
* :class:`SharedTableProperties` for ``Properties`` in ``paho.mqtt._packet`` (a private
  module) and ``paho.mqtt.client``: paho's ``Properties.__init__`` builds a list, two dicts and
  some thirty ``list.index`` calls each time, about 30 us, for every PUBLISH and PUBACK it
  decodes. The tables (the instance attributes ``types``, ``names``, ``properties``) never
  change, so they are built once and shared; packing, unpacking and the checks on assignment
  are paho's own code.

Behaviour tests: ``test_paho_client.py``, ``test_paho_message_info.py``,
``test_paho_properties.py`` and ``test_paho_internals.py`` in ``tests/mqtt``.
"""

from __future__ import annotations

import inspect
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, LogLevel, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

logger = logging.getLogger(__name__)

COALESCE_BYTES = 64 * 1024  # joined into one send at most (four TLS records)
_PUBLISH = 0x30
_DISCONNECT = 0xE0

TakePublish = Callable[[int, bytearray], bool]


# ---- the inventory ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrivateUse:
    """One private name of paho relied on here, and its expected shape.

    ``kind``: ``method`` (``shape``: the parameter names), ``attribute`` (``shape``: the type
    name of its value on a new client), ``keys`` (``shape``: keys the dict must have),
    ``slots`` (``shape``: the class's ``__slots__``), ``instance`` (``shape``: the attributes of
    a new instance), ``global`` (``shape``: the module attribute's class name)."""

    owner: str
    name: str
    kind: str
    shape: tuple[str, ...]
    why: str


PRIVATE_API: tuple[PrivateUse, ...] = (
    PrivateUse("Client", "_create_socket", "method", ("self",), "sockets connected on the loop"),
    PrivateUse(
        "Client", "_easy_log", "method", ("self", "level", "fmt", "args"), "log level filter"
    ),
    PrivateUse("Client", "_update_inflight", "method", ("self",), "skip the in-flight walk"),
    PrivateUse("Client", "_packet_write", "method", ("self",), "joined writes"),
    PrivateUse("Client", "_sock_send", "method", ("self", "buf"), "joined writes"),
    PrivateUse("Client", "_handle_publish", "method", ("self",), "fast receive path"),
    PrivateUse("Client", "_sock_close", "method", ("self",), "close_socket"),
    PrivateUse("Client", "_out_messages", "attribute", ("OrderedDict",), "in-flight walk"),
    PrivateUse("Client", "_inflight_messages", "attribute", ("int",), "in-flight walk"),
    PrivateUse("Client", "_max_inflight_messages", "attribute", ("int",), "set_inflight_window"),
    PrivateUse("Client", "_out_packet", "attribute", ("deque",), "joined writes"),
    PrivateUse("Client", "_in_packet", "attribute", ("dict",), "fast receive path"),
    PrivateUse("Client", "_in_packet", "keys", ("command", "packet"), "fast receive path"),
    PrivateUse("Client", "_ssl_context", "attribute", ("NoneType",), "renew_tls_context"),
    PrivateUse(
        "Client",
        "_out_packet[]",
        "keys",
        ("command", "qos", "packet", "pos", "to_process"),
        "joined writes (checked on a queued packet by the test)",
    ),
    PrivateUse(
        "MQTTMessageInfo",
        "__slots__",
        "slots",
        ("_condition", "_iterpos", "_published", "mid", "rc"),
        "LazyConditionMessageInfo",
    ),
    PrivateUse(
        "MQTTMessageInfo", "_set_as_published", "method", ("self",), "LazyConditionMessageInfo"
    ),
    PrivateUse(
        "paho.mqtt._packet", "Properties", "global", ("Properties",), "SharedTableProperties"
    ),
    PrivateUse(
        "Properties",
        "__init__",
        "instance",
        ("names", "packetType", "properties", "types"),
        "SharedTableProperties",
    ),
)

OUT_PACKET_KEYS = next(u.shape for u in PRIVATE_API if u.name == "_out_packet[]")


def problems() -> list[str]:
    """What of :data:`PRIVATE_API` the installed paho does not have as expected (empty: all).

    Checks what can be checked without a connection; a queued packet's keys are checked with
    :func:`out_packet_problems`."""
    found: list[str] = []
    probe = paho.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=paho.MQTTv5)
    owners: dict[str, Any] = {
        "Client": paho.Client,
        "MQTTMessageInfo": _paho_message_info(),
        "Properties": Properties,
        "paho.mqtt._packet": paho_packet,
    }
    for use in PRIVATE_API:
        owner = owners[use.owner]
        where = f"{use.owner}.{use.name}"
        if use.kind == "method":
            method = getattr(owner, use.name, None)
            if not callable(method):
                found.append(f"{where} is gone (used for: {use.why})")
                continue
            parameters = tuple(inspect.signature(method).parameters)
            if parameters != use.shape:
                found.append(f"{where} takes {parameters}, expected {use.shape} ({use.why})")
        elif use.kind == "attribute":
            if not hasattr(probe, use.name):
                found.append(f"{where} is gone (used for: {use.why})")
                continue
            type_name = type(getattr(probe, use.name)).__name__
            if (type_name,) != use.shape:
                found.append(f"{where} is a {type_name}, expected {use.shape[0]} ({use.why})")
        elif use.kind == "keys" and not use.name.endswith("[]"):
            value = getattr(probe, use.name, None)
            missing = set(use.shape) - set(value if isinstance(value, dict) else ())
            if missing:
                found.append(f"{where} lacks the keys {sorted(missing)} ({use.why})")
        elif use.kind == "slots":
            slots = tuple(sorted(getattr(owner, "__slots__", ())))
            if slots != use.shape:
                found.append(f"{where} is {slots}, expected {use.shape} ({use.why})")
        elif use.kind == "instance":
            attributes = tuple(sorted(vars(Properties(PacketTypes.PUBLISH))))  # type: ignore[no-untyped-call]
            if attributes != use.shape:
                found.append(f"{use.owner} instances have {attributes}, expected {use.shape}")
        elif use.kind == "global":
            value = getattr(owner, use.name, None)
            if not isinstance(value, type) or not issubclass(value, Properties):
                found.append(f"{where} is not paho's Properties any more ({use.why})")
    return found


def out_packet_problems(client: paho.Client) -> list[str]:
    """The keys of each packet queued in ``client`` that the joined writes rely on."""
    found = []
    for packet in client._out_packet:
        missing = set(OUT_PACKET_KEYS) - set(packet)
        if missing:
            found.append(f"Client._out_packet[] lacks the keys {sorted(missing)} (joined writes)")
    return found


def _paho_message_info() -> type[Any]:
    """paho's own ``MQTTMessageInfo`` (``paho.mqtt.client`` may hold the lazy one by now)."""
    info_class: type[Any] = paho.MQTTMessageInfo
    return info_class.__mro__[1] if info_class is LazyConditionMessageInfo else info_class


# ---- the client --------------------------------------------------------------------------------


def _written_alone(packet: Any) -> bool:
    """paho acts once such a packet is written (QoS 0 on_publish, DISCONNECT closing)."""
    command = packet["command"] & 0xF0
    return bool(command == _DISCONNECT or (command == _PUBLISH and packet["qos"] == 0))


class WindowedClient(paho.Client):
    """paho's ``Client`` with the overrides described in the module docstring."""

    _logged_levels: frozenset[int] | None = None  # None: every level, as paho does
    _given_socket: Any = None
    # The fast receive path: called with a PUBLISH's first byte and the rest of the packet;
    # True if it took the packet (paho does nothing more with it, not even a PUBACK).
    take_publish: TakePublish | None = None

    def use_socket(self, sock: Any) -> None:
        """The next ``connect()`` takes this connected (and TLS-handshaken) socket instead of
        opening one with paho's blocking calls (None: forget one not taken)."""
        self._given_socket = sock

    def _create_socket(self) -> Any:
        sock, self._given_socket = self._given_socket, None
        return sock if sock is not None else super()._create_socket()

    def log_only(self, levels: frozenset[int]) -> None:
        """Drop paho's log lines of other levels before they are formatted or logged."""
        self._logged_levels = levels

    def _easy_log(self, level: LogLevel, fmt: str, *args: Any) -> None:
        levels = self._logged_levels
        if levels is None or level in levels:
            super()._easy_log(level, fmt, *args)

    def _handle_publish(self) -> MQTTErrorCode:
        take = self.take_publish
        if take is not None:
            packet = self._in_packet
            if take(packet["command"], packet["packet"]):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_publish()

    def _update_inflight(self) -> MQTTErrorCode:
        if len(self._out_messages) <= self._inflight_messages:
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # nothing is queued behind the window
        return super()._update_inflight()

    def _packet_write(self) -> MQTTErrorCode:
        queue = self._out_packet
        while len(queue) > 1 and not _written_alone(queue[0]):
            rc, finished = self._write_joined()
            if not finished:
                return rc
        return super()._packet_write()  # the last packet, or from a packet written alone on

    def _write_joined(self) -> tuple[MQTTErrorCode, bool]:
        """One send for the packets at the head that need nothing done once written."""
        queue = self._out_packet
        batch: list[Any] = []
        size = 0
        for packet in queue:
            if size >= COALESCE_BYTES or _written_alone(packet):
                break
            batch.append(packet)
            size += packet["to_process"]
        data = b"".join(memoryview(p["packet"])[p["pos"] :] for p in batch)
        try:
            written = self._sock_send(data)
        except (AttributeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS, False
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN, False
        except OSError as err:
            self._easy_log(paho.MQTT_LOG_ERR, "failed to send on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST, False
        for packet in batch:
            taken = min(written, packet["to_process"])
            packet["to_process"] -= taken
            packet["pos"] += taken
            written -= taken
            if packet["to_process"] > 0:
                return MQTTErrorCode.MQTT_ERR_AGAIN, False  # the kernel took only part
            queue.popleft()
        return MQTTErrorCode.MQTT_ERR_SUCCESS, True


def close_socket(client: paho.Client) -> None:
    """Close the client's socket without a DISCONNECT packet (paho's socket callbacks run)."""
    client._sock_close()


def renew_tls_context(client: paho.Client, context: ssl.SSLContext) -> None:
    """Give a client that already has a TLS context (``tls_set_context``) a new one."""
    client._ssl_context = context


def set_inflight_window(client: paho.Client, limit: int) -> None:
    """Change the in-flight window on an open connection (on CONNACK, before any publish)."""
    client._max_inflight_messages = limit


# ---- MQTTMessageInfo without a condition per message -------------------------------------------

_INFO_SLOTS = next(u.shape for u in PRIVATE_API if u.kind == "slots")
_creating = threading.Lock()  # two threads asking at once get the same condition


class LazyConditionMessageInfo(paho.MQTTMessageInfo):
    """An ``MQTTMessageInfo`` whose condition is made on first use by a waiting thread."""

    __slots__ = ()

    def __init__(self, mid: int) -> None:  # paho's, minus the condition
        self.mid = mid
        self._published = False
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _waitable(self) -> threading.Condition:
        with _creating:
            try:
                return self._condition
            except AttributeError:
                self._condition = threading.Condition()
                return self._condition

    def _set_as_published(self) -> None:
        # The flag first: a waiter that makes the condition after the check below finds it set.
        self._published = True
        try:
            condition = self._condition
        except AttributeError:
            return  # nobody waits
        with condition:
            condition.notify_all()

    def wait_for_publish(self, timeout: float | None = None) -> None:
        self._waitable()
        super().wait_for_publish(timeout)

    def is_published(self) -> bool:
        self._waitable()
        return super().is_published()


def message_info_compatible() -> bool:
    """Whether this paho's ``MQTTMessageInfo`` has the slots the lazy class relies on."""
    info_class = paho.MQTTMessageInfo
    if info_class is LazyConditionMessageInfo:
        return True
    return tuple(sorted(getattr(info_class, "__slots__", ()))) == _INFO_SLOTS


def install_lazy_message_info() -> bool:
    """Make paho create :class:`LazyConditionMessageInfo`; False (and paho untouched) if this
    paho's ``MQTTMessageInfo`` is not the one it was made for."""
    if paho.MQTTMessageInfo is LazyConditionMessageInfo:
        return True
    if not message_info_compatible():
        logger.warning("paho-mqtt MQTTMessageInfo changed shape; keeping paho's own (slower)")
        return False
    setattr(paho, "MQTTMessageInfo", LazyConditionMessageInfo)  # noqa: B010
    return True


# ---- Properties with shared tables -------------------------------------------------------------

_TABLES = ("types", "names", "properties")


class SharedTableProperties(Properties):
    """A ``Properties`` whose name and type tables are built once, for every instance."""

    _shared: dict[str, Any] = {}

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's parameter name
        shared = SharedTableProperties._shared
        if not shared:
            template = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            shared.update({name: getattr(template, name) for name in _TABLES})
        object.__setattr__(self, "packetType", packetType)
        for name in _TABLES:
            object.__setattr__(self, name, shared[name])


def properties_compatible() -> bool:
    """Whether this paho keeps its tables where :class:`SharedTableProperties` expects them."""
    probe = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    attributes = set(vars(probe))
    return attributes == {"packetType", *_TABLES}


def install_shared_table_properties() -> bool:
    """Make paho create :class:`SharedTableProperties`; False (and paho untouched) if this
    paho's ``Properties`` is not the one it was made for."""
    if getattr(paho, "Properties", None) is SharedTableProperties:
        return True
    if not properties_compatible():
        logger.warning("paho-mqtt Properties changed shape; keeping paho's own (slower)")
        return False
    setattr(paho_packet, "Properties", SharedTableProperties)  # noqa: B010 - not re-exported
    setattr(paho, "Properties", SharedTableProperties)  # noqa: B010
    return True
