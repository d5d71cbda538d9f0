"""paho's ``MQTTMessageInfo`` without a ``threading.Condition`` for every message.

paho-mqtt makes an ``MQTTMessageInfo`` for every message it sends or receives, and each one
builds a ``threading.Condition`` (an RLock and a few attributes) so that another thread can
``wait_for_publish()``. ``flotta.mqtt`` never waits that way: publishes complete through
callbacks on the event loop. In the simulator, the condition alone was 6 % of the CPU
(py-spy, 10,000 devices heartbeating). :class:`LazyConditionMessageInfo` makes the condition
only for a caller that waits or asks, so paho's own blocking API keeps working.

:func:`install` makes paho's client create these. It is applied when ``flotta.mqtt`` is
imported, only to a paho whose ``MQTTMessageInfo`` has the slots this relies on;
``tests/mqtt/test_paho_message_info.py`` holds it to paho's behaviour.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as paho_client
from paho.mqtt.enums import MQTTErrorCode

logger = logging.getLogger(__name__)

_SLOTS = ("_condition", "_iterpos", "_published", "mid", "rc")
_creating = threading.Lock()  # two threads asking at once get the same condition


class LazyConditionMessageInfo(paho_client.MQTTMessageInfo):
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


def compatible() -> bool:
    """Whether this paho's ``MQTTMessageInfo`` has the slots the lazy class relies on."""
    info_class = paho_client.MQTTMessageInfo
    if info_class is LazyConditionMessageInfo:
        return True
    return tuple(sorted(getattr(info_class, "__slots__", ()))) == _SLOTS


def install() -> bool:
    """Make paho create :class:`LazyConditionMessageInfo`; False (and paho untouched) if this
    paho's ``MQTTMessageInfo`` is not the one it was made for."""
    if paho_client.MQTTMessageInfo is LazyConditionMessageInfo:
        return True
    if not compatible():
        logger.warning("paho-mqtt MQTTMessageInfo changed shape; keeping paho's own (slower)")
        return False
    setattr(paho_client, "MQTTMessageInfo", LazyConditionMessageInfo)  # noqa: B010
    return True
