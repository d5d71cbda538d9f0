"""Which Prometheus receiver a device's metrics go to: pure.

Upstream Flotta's ``metrics.receiverConfiguration`` (``url``, ``requestNumSamples``,
``timeoutSeconds``, ``caSecretName``) is honoured with upstream's precedence: when the device
belongs to a set (label ``flotta/member-of``) and that EdgeDeviceSet exists, the set's
``metrics`` section applies as a whole, else the device's own. No ``url`` there (or no
section): the exporter's default receiver. ``caSecretName`` names a Secret in the device's
namespace whose ``ca.crt`` is the CA the receiver's certificate is checked against; until that
Secret can be read the receiver answers ``Retry`` (the batches wait in JetStream, they are not
sent to a receiver that cannot be verified, nor to the default one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from flotta.schemas.crd.common import MEMBER_OF_LABEL
from flotta.schemas.crd.config import MetricsConfiguration, MetricsReceiverConfiguration

CA_KEY = "ca.crt"
# The CRD's defaults (upstream's): samples a request, seconds a request.
DEFAULT_REQUEST_SAMPLES = MetricsReceiverConfiguration().request_num_samples
DEFAULT_TIMEOUT = float(MetricsReceiverConfiguration().timeout_seconds)

# (namespace, Secret name) -> the Secret's ca.crt, None when it is missing or has none
CaLookup = Callable[[str, str], str | None]


@dataclass(frozen=True, slots=True)
class Receiver:
    """A remote-write endpoint and how to talk to it; equal receivers share a sink."""

    url: str
    request_num_samples: int = DEFAULT_REQUEST_SAMPLES
    timeout_seconds: float = DEFAULT_TIMEOUT
    ca_pem: str | None = None
    """The CA to verify the receiver with; None: the system's trust store."""
    unavailable: str | None = None
    """Why the receiver cannot be used yet (its CA Secret is missing): batches wait."""


def member_of(device: Mapping[str, Any]) -> str | None:
    labels = device.get("metadata", {}).get("labels") or {}
    value = labels.get(MEMBER_OF_LABEL)
    return str(value) if value else None


def metrics_section(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ``spec.metrics`` of an EdgeDevice or EdgeDeviceSet, as the API holds it."""
    if obj is None:
        return None
    spec = obj.get("spec") or {}
    metrics = spec.get("metrics")
    return metrics if isinstance(metrics, Mapping) else None


def choose_receiver(
    namespace: str,
    device_metrics: Mapping[str, Any] | None,
    set_metrics: Mapping[str, Any] | None,
    set_exists: bool,
    *,
    default: Receiver,
    ca: CaLookup,
) -> Receiver:
    """The receiver for a device of ``namespace``: from its set's metrics section when the
    set exists, else from its own."""
    section = set_metrics if set_exists else device_metrics
    configured = _receiver_configuration(section)
    if configured is None or not configured.url:
        return default
    ca_pem: str | None = None
    unavailable: str | None = None
    if configured.ca_secret_name:
        ca_pem = ca(namespace, configured.ca_secret_name)
        if ca_pem is None:
            unavailable = (
                f"Secret {namespace}/{configured.ca_secret_name} with {CA_KEY} not found "
                f"(the CA of {configured.url})"
            )
    return Receiver(
        url=configured.url,
        request_num_samples=configured.request_num_samples,
        timeout_seconds=float(configured.timeout_seconds),
        ca_pem=ca_pem,
        unavailable=unavailable,
    )


def _receiver_configuration(
    section: Mapping[str, Any] | None,
) -> MetricsReceiverConfiguration | None:
    if not section:
        return None
    try:
        metrics = MetricsConfiguration.model_validate(section)
    except ValidationError:
        return None  # the API server validates the CRD: only a hand-edited object gets here
    return metrics.receiver_configuration


def log_collection_section(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ``spec.logCollection`` map of an EdgeDevice or EdgeDeviceSet."""
    if obj is None:
        return None
    section = (obj.get("spec") or {}).get("logCollection")
    return section if isinstance(section, Mapping) else None


def workload_log_key(workload: Mapping[str, Any]) -> str | None:
    """The ``spec.logCollection`` of an EdgeWorkload: a key of its devices' maps."""
    key = (workload.get("spec") or {}).get("logCollection")
    return str(key) if key else None


def syslog_config_map(
    log_key: str | None,
    device_logs: Mapping[str, Any] | None,
    set_logs: Mapping[str, Any] | None,
    set_exists: bool,
) -> str | None:
    """The ConfigMap (address, protocol) of the syslog server a workload's lines go to, as
    upstream: the workload's ``logCollection`` names an entry of the ``logCollection`` map in
    effect for the device (its set's when the set exists, else its own); an entry of kind
    ``syslog`` names the ConfigMap in ``syslogConfig.name``. None: the lines go to no syslog
    server of their own (the exporter's default one, if it has one)."""
    if not log_key:
        return None
    section = set_logs if set_exists else device_logs
    entry = (section or {}).get(log_key)
    if not isinstance(entry, Mapping) or entry.get("kind", "syslog") != "syslog":
        return None
    config = entry.get("syslogConfig")
    name = config.get("name") if isinstance(config, Mapping) else None
    return str(name) if name else None
