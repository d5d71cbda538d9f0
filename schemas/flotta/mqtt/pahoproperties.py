"""paho's MQTT v5 ``Properties`` without rebuilding its lookup tables for every packet.

paho-mqtt's ``Properties.__init__`` builds a list, two dicts and some thirty ``list.index``
calls each time, about 30 us, and paho makes one for every PUBLISH and PUBACK it decodes: a
large share of the CPU of a process that handles thousands of messages a second (the
simulator, the bridge). The tables never change after they are built, so
:class:`SharedTableProperties` builds them once and shares them; everything else (packing,
unpacking, checks on assignment) is paho's own code.

:func:`install` makes paho's packet decoder and client create these instead. It is applied
when ``flotta.mqtt`` is imported, only to a paho whose ``Properties`` keeps its tables in the
four attributes this relies on; ``tests/mqtt/test_paho_properties.py`` holds the two classes
to the same results for every packet type and property.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho_client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

logger = logging.getLogger(__name__)

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


def compatible() -> bool:
    """Whether this paho keeps its tables where :class:`SharedTableProperties` expects them."""
    probe = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    attributes = set(vars(probe))
    return attributes == {"packetType", *_TABLES}


def install() -> bool:
    """Make paho create :class:`SharedTableProperties`; False (and paho untouched) if this
    paho's ``Properties`` is not the one it was made for."""
    if getattr(paho_client, "Properties", None) is SharedTableProperties:
        return True
    if not compatible():
        logger.warning("paho-mqtt Properties changed shape; keeping paho's own (slower)")
        return False
    setattr(paho_packet, "Properties", SharedTableProperties)  # noqa: B010 - not re-exported
    setattr(paho_client, "Properties", SharedTableProperties)  # noqa: B010
    return True
