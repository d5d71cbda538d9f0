"""Injected failures of simulated devices: rules from the command line or from a JSON file in
the simulator's state dir, which a running simulator follows (so a test or a person can make a
share of the fleet fail an image while it runs).

``STATE_DIR/faults.json``::

    [{"image": "web:broken", "share": 0.3, "mode": "exit", "after": 5},
     {"image": "web:stuck", "mode": "timeout"},
     {"version": "sha256:...", "mode": "silent"}]

``mode``: ``exit`` (a container exits: ``container-exited``), ``health-check`` (a probe fails:
``health-check-failed``), ``timeout`` (the version never becomes healthy: ``timed-out`` at the
health gate's ``timeoutSeconds``), ``silent`` (the device stops reporting). ``after``: seconds
from the start of the apply to the exit or the failed probe (default 0; at most the gate's
timeout). ``share``: the fraction of devices that fail (the same devices for every rule with
that share; default all).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, get_args

from flotta.dev.simulator.device import FaultMode, FaultRule

logger = logging.getLogger(__name__)

FAULTS_NAME = "faults.json"
MODES: frozenset[str] = frozenset(get_args(FaultMode))


class FaultError(ValueError):
    """A fault rule that cannot be read."""


def rule(document: Any) -> FaultRule:
    if not isinstance(document, dict):
        raise FaultError(f"a fault rule is an object, not {document!r}")
    image, version = document.get("image", ""), document.get("version", "")
    share, mode = document.get("share", 1.0), document.get("mode", "exit")
    after = document.get("after", 0.0)
    if not isinstance(image, str) or not isinstance(version, str) or not (image or version):
        raise FaultError("a fault rule needs an image or a version (strings)")
    if not isinstance(share, int | float) or not 0 <= share <= 1:
        raise FaultError(f"share must be between 0 and 1, not {share!r}")
    if mode not in MODES:
        raise FaultError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
    if isinstance(after, bool) or not isinstance(after, int | float) or not 0 <= after <= 86400:
        raise FaultError(f"after must be a number of seconds from 0 to 86400, not {after!r}")
    return FaultRule(
        image=image, version=version, share=float(share), mode=mode, after=float(after)
    )


def load_faults(path: Path) -> tuple[FaultRule, ...]:
    """The rules of a faults file; none (with a warning) when it cannot be read."""
    try:
        document = json.loads(path.read_text())
        rules = document if isinstance(document, list) else [document]
        return tuple(rule(item) for item in rules)
    except (OSError, ValueError) as exc:
        logger.warning("%s: no fault rules taken (%s)", path, exc)
        return ()
