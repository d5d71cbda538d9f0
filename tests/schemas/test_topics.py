import pytest

from flotta.schemas.errors import TopicError
from flotta.schemas.topics import (
    DeviceTopic,
    EnrolTopic,
    device_topic,
    enrol_topic,
    nats_subject,
    parse_device_topic,
    parse_enrol_topic,
    parse_nats_subject,
    shared_filter,
)


def test_device_topic_round_trip() -> None:
    for kind in DeviceTopic:
        parsed = parse_device_topic(device_topic("cam-1", kind))
        assert (parsed.device_id, parsed.kind) == ("cam-1", kind)


def test_enrol_topic_round_trip() -> None:
    for kind in EnrolTopic:
        parsed = parse_enrol_topic(enrol_topic("cam-1", kind))
        assert (parsed.device_id, parsed.kind) == ("cam-1", kind)


def test_nats_subject_round_trip() -> None:
    subject = nats_subject("factory", "cam-1", DeviceTopic.METRICS)
    assert subject == "flotta.device.factory.cam-1.metrics"
    parsed = parse_nats_subject(subject)
    assert (parsed.namespace, parsed.device_id, parsed.kind) == (
        "factory",
        "cam-1",
        DeviceTopic.METRICS,
    )


def test_shared_subscription_filter() -> None:
    assert shared_filter("bridge", DeviceTopic.STATUS) == "$share/bridge/flotta/devices/+/status"


@pytest.mark.parametrize(
    "device_id",
    ["", "Cam", "a.b", "a/b", "+", "#", "bootstrap:x", "-a", "a-", "x" * 64, "a b"],
)
def test_device_ids_that_would_escape_a_topic_level_are_refused(device_id: str) -> None:
    with pytest.raises(TopicError):
        device_topic(device_id, DeviceTopic.STATUS)


@pytest.mark.parametrize(
    "topic",
    [
        "flotta/devices/a/unknown",
        "flotta/devices/a/status/extra",
        "other/devices/a/status",
        "flotta/devices//status",
        "flotta/devices/A/status",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_device_topic(topic)


def test_desired_is_not_a_nats_kind() -> None:
    with pytest.raises(TopicError, match="not forwarded"):
        nats_subject("ns", "d", DeviceTopic.DESIRED)
    with pytest.raises(TopicError):
        parse_nats_subject("flotta.device.ns.d.desired")
