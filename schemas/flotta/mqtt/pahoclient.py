"""paho's ``Client`` with one O(n)-per-acknowledgement loop made O(1) when it has nothing to do.

On every PUBACK paho walks all of its unacknowledged messages looking for one queued behind the
in-flight window (``Client._update_inflight``). The operator keeps up to 256 publishes in flight
and nothing queued behind them, so each of a fan-out's 10,000 acknowledgements walked 256
messages for nothing: 11 % of the operator's CPU in a fan-out (py-spy, 2026-12-03).

Every message paho holds is either counted in flight or queued; when there are no more messages
than are in flight, none is queued and the walk is skipped. Otherwise paho's own walk runs.
``tests/mqtt/test_paho_client.py`` holds the window to paho's behaviour.
"""

from __future__ import annotations

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode


class WindowedClient(paho.Client):
    def _update_inflight(self) -> MQTTErrorCode:
        if len(self._out_messages) <= self._inflight_messages:
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # nothing is queued behind the window
        return super()._update_inflight()
