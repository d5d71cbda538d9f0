"""The private parts of paho-mqtt that Flotta relies on are all in ``flotta.mqtt.paho_internals``,
listed there, and still there with the same shape in the installed paho.

When one of these fails after a paho upgrade, do not loosen it: adapt ``paho_internals`` (each
use says why it exists) or keep paho pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import socket
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from flotta.mqtt import paho_internals
from flotta.mqtt.paho_internals import PRIVATE_API, PrivateUse, WindowedClient

ROOT = Path(__file__).resolve().parents[2]
INTERNALS = Path(paho_internals.__file__).resolve()
PAHO = f"paho-mqtt {version('paho-mqtt')}"


def paho_private_names() -> set[str]:
    """Every private name paho's client classes have (methods, attributes, slots)."""
    probe = paho.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=paho.MQTTv5)
    names = set(dir(paho.Client)) | set(vars(probe))
    names |= set(paho_internals._paho_message_info().__slots__)
    names |= set(dir(paho.MQTTMessage))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_the_installed_paho_has_every_private_name_flotta_uses() -> None:
    found = paho_internals.problems()
    assert not found, (
        f"{PAHO} no longer has what flotta.mqtt.paho_internals relies on:\n  "
        + "\n  ".join(found)
        + "\nAdapt paho_internals (its docstring says why each use exists) or pin paho back."
    )


def test_a_queued_packet_and_a_received_publish_have_the_shape_relied_on() -> None:
    """Over a socket pair: CONNECT queued (the joined writes read its dict), then two PUBLISH
    packets read, one taken by the fast path and one left to paho."""
    ours, broker = socket.socketpair()
    client = WindowedClient(
        CallbackAPIVersion.VERSION2, client_id="c", protocol=paho.MQTTv5, manual_ack=True
    )
    taken: list[tuple[int, bytes]] = []
    left: list[tuple[str, bytes]] = []
    client.on_socket_register_write = lambda *args: None  # queue only
    client.on_message = lambda _c, _u, message: left.append((message.topic, bytes(message.payload)))

    def take(command: int, body: bytearray) -> bool:
        taken.append((command, bytes(body)))
        return len(taken) > 1  # the first is left to paho

    client.take_publish = take
    try:
        client.use_socket(ours)
        client.connect("localhost", 1883)
        queued = list(client._out_packet)
        assert queued, f"{PAHO} queued no CONNECT packet"
        problems = paho_internals.out_packet_problems(client)
        assert not problems, f"{PAHO}: " + "; ".join(problems)

        broker.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK, accepted, no properties
        publish = b"\x00\x03t/a\x00\x07\x00hi"  # topic, packet id 7, no properties, payload
        broker.sendall(bytes([0x32, len(publish)]) + publish)
        broker.sendall(bytes([0x32, len(publish)]) + publish)
        for _ in range(3):
            client.loop_read()
        assert left == [("t/a", b"hi")], f"{PAHO}: a PUBLISH not taken did not reach on_message"
        assert taken == [(0x32, publish), (0x32, publish)], (
            f"{PAHO}: Client._handle_publish no longer sees the packet as read"
        )
    finally:
        broker.close()
        paho_internals.close_socket(client)


def _paho_aliases(tree: ast.Module) -> set[str]:
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name.startswith("paho")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paho"):
            aliases |= {a.asname or a.name for a in node.names}
    return aliases


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _reaches_into_paho(path: Path, private: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    aliases = _paho_aliases(tree)
    where = path.relative_to(ROOT)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paho"):
            names = [a.name for a in node.names if a.name.startswith("_")]
            if "._" in f".{node.module}" or names:
                found.append(f"{where}:{node.lineno} imports a private part of paho")
        elif isinstance(node, ast.Import):
            if any(a.name.startswith("paho") and "._" in a.name for a in node.names):
                found.append(f"{where}:{node.lineno} imports a private paho module")
        elif isinstance(node, ast.ClassDef):
            if any(_root_name(base) in aliases for base in node.bases):
                found.append(f"{where}:{node.lineno} subclasses a paho class ({node.name})")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{where}:{node.lineno} uses paho's {node.attr}")
    return found


def test_no_other_module_reaches_into_paho() -> None:
    """Modules that import paho use only its public API (and paho_internals' functions)."""
    private = paho_private_names()
    found = []
    for path in sorted(ROOT.glob("*/flotta/**/*.py")):
        if path.resolve() == INTERNALS or ".venv" in path.parts:
            continue
        text = path.read_text()
        if "paho" in text:
            found += _reaches_into_paho(path, private)
    assert not found, "move these into flotta.mqtt.paho_internals:\n  " + "\n  ".join(found)


def test_every_private_name_used_in_pahointernals_is_listed() -> None:
    """A new use of a paho private name must be added to PRIVATE_API (and so be checked)."""
    private = paho_private_names()
    listed = {use.name for use in PRIVATE_API} | {
        name for use in PRIVATE_API if use.kind == "slots" for name in use.shape
    }
    tree = ast.parse(INTERNALS.read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            used.add(node.attr)
        elif isinstance(node, ast.FunctionDef) and node.name in private:
            used.add(node.name)  # an override
    assert used <= listed, f"not in PRIVATE_API: {sorted(used - listed)}"
    assert used, "the scan found no private use at all: it is broken"


def test_a_changed_or_missing_name_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = (
        PrivateUse("Client", "_handle_publish", "method", ("self", "extra"), "fast receive"),
        PrivateUse("Client", "_no_such_attribute", "attribute", ("int",), "nothing"),
        PrivateUse("Client", "_in_packet", "keys", ("command", "no_such_key"), "fast receive"),
    )
    monkeypatch.setattr(paho_internals, "PRIVATE_API", changed)
    assert paho_internals.problems() == [
        "Client._handle_publish takes ('self',), expected ('self', 'extra') (fast receive)",
        "Client._no_such_attribute is gone (used for: nothing)",
        "Client._in_packet lacks the keys ['no_such_key'] (fast receive)",
    ]
