"""Wire payloads of the MQTT contract (v1): one model per topic, each with a schema version
and a size limit. Encode and decode with :mod:`flotta.schemas.codec`."""

from flotta.schemas.wire.common import SCHEMA_VERSION
from flotta.schemas.wire.connection import ConnectionState
from flotta.schemas.wire.desired import (
    DesiredConfiguration,
    DesiredState,
    DesiredWorkload,
    SealedData,
    SealedSecret,
)
from flotta.schemas.wire.enrolment import (
    CertificateAnswer,
    EnrolmentAnswer,
    EnrolmentRequest,
    RenewalRequest,
)
from flotta.schemas.wire.events import DeviceEvent
from flotta.schemas.wire.status import HardwareReport, StatusReport, UpgradeReport, WorkloadReport
from flotta.schemas.wire.telemetry import (
    LogLine,
    LogsBatch,
    MetricSample,
    MetricsBatch,
    TelemetryReceipt,
)

__all__ = [
    "SCHEMA_VERSION",
    "CertificateAnswer",
    "ConnectionState",
    "DesiredConfiguration",
    "DesiredState",
    "DesiredWorkload",
    "DeviceEvent",
    "EnrolmentAnswer",
    "EnrolmentRequest",
    "HardwareReport",
    "LogLine",
    "LogsBatch",
    "MetricSample",
    "MetricsBatch",
    "RenewalRequest",
    "SealedData",
    "SealedSecret",
    "StatusReport",
    "TelemetryReceipt",
    "UpgradeReport",
    "WorkloadReport",
]
