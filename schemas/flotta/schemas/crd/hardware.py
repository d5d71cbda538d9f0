"""The hardware inventory as the resources store it (EdgeDevice ``status.hardware``,
EdgeDeviceSignedRequest ``spec.features.hardware``): the wire struct
:class:`flotta.schemas.wire.hardware.Hardware` itself, the one definition of its fields
(upstream Flotta's HardwareInfo names). The API server keeps fields beyond these, as a newer
device may report them.
"""

from __future__ import annotations

from typing import Annotated

from flotta.schemas.crd.wire_field import WireField
from flotta.schemas.wire.hardware import Hardware

StoredHardware = Annotated[Hardware, WireField(keep_unknown_fields=True)]
