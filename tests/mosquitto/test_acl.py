"""The ACL and mTLS of a real Mosquitto, checked with paho-mqtt and the mosquitto clients."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flotta.pki.store import PkiStore
from flotta.schemas.topics import (
    TELEMETRY_KINDS,
    DeviceTopic,
    EnrolTopic,
    device_topic,
    enrol_topic,
    shared_filter,
)
from tests.fixtures.brokers import ClientCredentials, ProbeFactory, TestBroker, new_fleet_pki
from tests.fixtures.mqtt_probe import ACCEPTED, NOT_AUTHORIZED, Will

DESIRED_A = device_topic("dev-a", DeviceTopic.DESIRED)
PAYLOAD = b'{"schemaVersion":1}'


def _all_device_topics(device_id: str) -> list[str]:
    return [device_topic(device_id, kind) for kind in DeviceTopic]


# ---- devices ----------------------------------------------------------------------------


def test_device_reads_its_retained_desired_and_others_cannot(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    assert operator.publish(DESIRED_A, b'{"version":"v1"}', retain=True) in ACCEPTED

    device_a = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    device_a.subscribe(DESIRED_A)
    got = device_a.wait_for(DESIRED_A)
    assert got.payload == b'{"version":"v1"}'
    assert got.retain

    device_b = mqtt_probes.connect(mosquitto_broker.device("dev-b"), "dev-b")
    device_b.subscribe(DESIRED_A)
    device_b.subscribe("#")
    assert device_b.drain(quiet=1.0) == []
    assert device_b.publish(DESIRED_A, b"forged", retain=True) == NOT_AUTHORIZED
    assert device_a.publish(DESIRED_A, b"self-made", retain=True) == NOT_AUTHORIZED
    assert device_a.drain(quiet=0.5) == []

    # The retained desired state is still the operator's.
    again = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a-again")
    again.subscribe(DESIRED_A)
    assert again.wait_for(DESIRED_A).payload == b'{"version":"v1"}'


def test_device_writes_only_its_own_reports(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    bridge = mqtt_probes.connect(mosquitto_broker.bridge(), "bridge-0")
    for kind in TELEMETRY_KINDS:
        assert bridge.subscribe(shared_filter("bridge", kind)) == [1]
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    operator.subscribe("flotta/devices/+/csr")

    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    for kind in TELEMETRY_KINDS:
        topic = device_topic("dev-a", kind)
        assert device.publish(topic, PAYLOAD) in ACCEPTED, kind
        assert bridge.wait_for(topic).payload == PAYLOAD
    assert device.publish(device_topic("dev-a", DeviceTopic.CSR), b"csr") in ACCEPTED
    assert operator.wait_for(device_topic("dev-a", DeviceTopic.CSR)).payload == b"csr"

    # Nothing of another device, nothing outside its subtree.
    for topic in [*_all_device_topics("dev-b"), "flotta/other", "dev-a/status", "x"]:
        assert device.publish(topic, b"forged") == NOT_AUTHORIZED, topic
    assert device.publish(device_topic("dev-a", DeviceTopic.CERTIFICATE), b"x") == NOT_AUTHORIZED
    assert bridge.drain(quiet=0.5) == []


def test_device_reads_its_certificate_topic_only(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    for device_id in ("dev-a", "dev-b"):
        topic = device_topic(device_id, DeviceTopic.CERTIFICATE)
        assert operator.publish(topic, device_id.encode(), retain=True) in ACCEPTED
    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    device.subscribe("flotta/devices/+/certificate")
    got = device.drain(quiet=1.0)
    assert [(m.topic, m.payload) for m in got] == [
        (device_topic("dev-a", DeviceTopic.CERTIFICATE), b"dev-a")
    ]


def test_device_will_on_connection_is_published_by_the_broker(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    """A device that vanishes gets its retained offline will; a will on another device's
    topic is dropped by the ACL."""
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    operator.subscribe("flotta/devices/+/connection")
    own = Will(device_topic("dev-a", DeviceTopic.CONNECTION), b"offline")
    foreign = Will(device_topic("dev-b", DeviceTopic.CONNECTION), b"forged-offline")
    for connections, will in enumerate((own, foreign), start=1):
        creds = mosquitto_broker.device("dev-a")
        client = _mosquitto_sub(mosquitto_broker, creds, f"will-{will.payload.decode()}", will)
        # the client id the broker uses is the certificate's CN, whatever the client asked for
        _wait_for_log(mosquitto_broker, " as dev-a ", count=connections)
        os.kill(client.pid, signal.SIGKILL)  # no DISCONNECT: the broker sends the will
        client.wait(5)
    got = operator.drain(quiet=1.5)
    assert [(m.topic, m.payload) for m in got] == [(own.topic, b"offline")]

    # The will is retained: a late reader sees it; the operator can clear it.
    late = mqtt_probes.connect(mosquitto_broker.bridge(), "bridge-late")
    late.subscribe(own.topic)
    assert late.wait_for(own.topic).payload == b"offline"
    assert operator.publish(own.topic, b"", retain=True) in ACCEPTED
    fresh = mqtt_probes.connect(mosquitto_broker.bridge(), "bridge-fresh")
    fresh.subscribe(own.topic)
    assert fresh.drain(quiet=0.7) == []


def _wait_for_log(broker: TestBroker, text: str, timeout: float = 10.0, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while broker.process.log_text().count(text) < count:
        assert time.monotonic() < deadline, f"broker never logged {text!r}"
        time.sleep(0.02)


def _mosquitto_sub(
    broker: TestBroker, creds: ClientCredentials, client_id: str, will: Will
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "mosquitto_sub",
            *_cli_args(broker, creds, client_id),
            "-t",
            device_topic("dev-a", DeviceTopic.DESIRED),
            "--will-topic",
            will.topic,
            "--will-payload",
            will.payload.decode(),
            "--will-qos",
            "1",
            "--will-retain",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ---- refused connections ----------------------------------------------------------------


def test_connection_without_certificate_is_refused(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    probe = mqtt_probes.new(None, "anonymous", ca=str(mosquitto_broker.ca_path))
    assert probe.refused()


def test_certificate_of_a_foreign_ca_is_refused(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory, tmp_path: Path
) -> None:
    foreign = TestBroker(new_fleet_pki(tmp_path / "foreign-pki"), tmp_path / "foreign")
    creds = foreign.device("dev-a")
    # The client trusts our broker's CA but presents a certificate from another CA.
    probe = mqtt_probes.new(creds, "dev-a", ca=str(mosquitto_broker.ca_path))
    assert probe.refused()
    assert "certificate verify failed" in mosquitto_broker.process.log_text()


def test_expired_certificate_is_refused(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    expired = mosquitto_broker.device(
        "dev-a", validity=timedelta(hours=1), now=datetime.now(UTC) - timedelta(days=2)
    )
    assert mqtt_probes.new(expired, "dev-a").refused()
    valid = mosquitto_broker.device("dev-a")
    assert not mqtt_probes.new(valid, "dev-a").refused()


def test_revoked_certificate_is_refused_once_the_crl_is_reloaded(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    revoked = mosquitto_broker.device("dev-a")
    other = mosquitto_broker.device("dev-b")
    assert not mqtt_probes.new(revoked, "dev-a-1").refused()

    mosquitto_broker.revoke(revoked)

    assert mqtt_probes.new(revoked, "dev-a-2").refused()
    assert not mqtt_probes.new(other, "dev-b").refused()
    renewed = mosquitto_broker.device("dev-a")
    assert not mqtt_probes.new(renewed, "dev-a-3").refused()


# ---- internal identities and observers ---------------------------------------------------


def test_operator_writes_desired_and_certificate_and_answers_enrolment(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    operator.subscribe("flotta/#")
    for kind in (DeviceTopic.DESIRED, DeviceTopic.CERTIFICATE, DeviceTopic.CONNECTION):
        assert operator.publish(device_topic("dev-a", kind), b"x") in ACCEPTED, kind
    for kind in (DeviceTopic.STATUS, DeviceTopic.EVENTS, DeviceTopic.METRICS, DeviceTopic.LOGS):
        assert operator.publish(device_topic("dev-a", kind), b"x") == NOT_AUTHORIZED, kind
    enroller = mqtt_probes.connect(
        mosquitto_broker.operator(), "operator-enrol", port=mosquitto_broker.enrolment_port
    )
    for enrol_kind in EnrolTopic:
        # enrolment is on the enrolment broker only
        assert operator.publish(enrol_topic("dev-a", enrol_kind), b"x") == NOT_AUTHORIZED
        assert enroller.publish(enrol_topic("dev-a", enrol_kind), b"x") in ACCEPTED
    # What the global patterns would give a client named "internal:operator" is denied.
    assert operator.publish("flotta/devices/internal:operator/status", b"x") == NOT_AUTHORIZED
    operator.drain(quiet=0.5)

    # It reads applied versions (status), connection and renewal CSRs, not telemetry.
    device = mqtt_probes.connect(mosquitto_broker.device("dev-b"), "dev-b")
    for kind in (*TELEMETRY_KINDS, DeviceTopic.CSR):
        device.publish(device_topic("dev-b", kind), b"r")
    got = {m.topic for m in operator.drain(quiet=1.0)}
    assert got == {
        device_topic("dev-b", kind)
        for kind in (DeviceTopic.STATUS, DeviceTopic.CONNECTION, DeviceTopic.CSR)
    }


def test_bridge_shared_subscription_reads_reports_and_writes_only_receipts(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    operator.publish(DESIRED_A, b"desired", retain=True)
    bridges = [mqtt_probes.connect(mosquitto_broker.bridge(), f"bridge-{i}") for i in range(2)]
    for bridge in bridges:
        assert bridge.subscribe(shared_filter("bridges", DeviceTopic.STATUS)) == [1]
        bridge.subscribe(shared_filter("bridges", DeviceTopic.DESIRED))
    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    sent = [f"status-{i}".encode() for i in range(20)]
    for payload in sent:
        assert device.publish(device_topic("dev-a", DeviceTopic.STATUS), payload) in ACCEPTED
    operator.publish(DESIRED_A, b"desired-2")
    received = [bridge.drain(quiet=1.0) for bridge in bridges]
    # Each status message reaches exactly one bridge of the group; desired state none.
    payloads = sorted(m.payload for got in received for m in got)
    assert payloads == sorted(sent)
    assert all(m.topic == device_topic("dev-a", DeviceTopic.STATUS) for g in received for m in g)
    assert all(received), "both group members should have had a share"
    for topic in [DESIRED_A, device_topic("dev-a", DeviceTopic.CSR), "flotta/x"]:
        assert bridges[0].publish(topic, b"x") == NOT_AUTHORIZED
    # it clears what a device leaves retained on its reports (the ACL cannot say "empty only")
    assert bridges[0].publish(device_topic("dev-a", DeviceTopic.STATUS), b"", retain=True) in (
        ACCEPTED
    )
    assert bridges[0].publish(enrol_topic("bridge-0", EnrolTopic.REQUEST), b"x") == NOT_AUTHORIZED
    assert bridges[0].publish(device_topic("dev-a", DeviceTopic.RECEIPTS), b"r") in ACCEPTED


def test_receipts_reach_only_their_device_and_only_the_bridge_writes_them(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    devices = {d: mqtt_probes.connect(mosquitto_broker.device(d), d) for d in ("dev-a", "dev-b")}
    for device in devices.values():
        device.subscribe("flotta/devices/+/receipts")
    bridge = mqtt_probes.connect(mosquitto_broker.bridge(), "bridge-0")
    for device_id in devices:
        topic = device_topic(device_id, DeviceTopic.RECEIPTS)
        assert bridge.publish(topic, device_id.encode()) in ACCEPTED
    forged = device_topic("dev-a", DeviceTopic.RECEIPTS)
    assert devices["dev-a"].publish(forged, b"forged") == NOT_AUTHORIZED
    assert devices["dev-b"].publish(forged, b"forged") == NOT_AUTHORIZED
    for device_id, device in devices.items():
        got = device.drain(quiet=1.0)
        assert [(m.topic, m.payload) for m in got] == [
            (device_topic(device_id, DeviceTopic.RECEIPTS), device_id.encode())
        ]


def test_observer_reads_every_devices_reports_and_nothing_else(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    observer = mqtt_probes.connect(mosquitto_broker.observer("grafana"), "grafana")
    observer.subscribe("flotta/#")
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    devices = {d: mqtt_probes.connect(mosquitto_broker.device(d), d) for d in ("dev-a", "dev-b")}
    expected = set()
    for device_id, device in devices.items():
        for kind in (*TELEMETRY_KINDS, DeviceTopic.CSR):
            device.publish(device_topic(device_id, kind), b"r")
            if kind in TELEMETRY_KINDS:
                expected.add(device_topic(device_id, kind))
        operator.publish(device_topic(device_id, DeviceTopic.DESIRED), b"d", retain=True)
        operator.publish(device_topic(device_id, DeviceTopic.CERTIFICATE), b"c")
    operator.publish(enrol_topic("dev-c", EnrolTopic.ANSWER), b"a")
    got = observer.drain(quiet=1.0)
    assert {m.topic for m in got} == expected
    for topic in [
        *_all_device_topics("dev-a"),
        "flotta/devices/observer:grafana/status",  # what the device patterns would allow
        enrol_topic("grafana", EnrolTopic.REQUEST),  # what the bootstrap patterns would allow
    ]:
        assert observer.publish(topic, b"x") == NOT_AUTHORIZED, topic


def test_unlisted_observer_gets_nothing(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    creds = mosquitto_broker.client("observer:unlisted")
    observer = mqtt_probes.connect(creds, "unlisted")
    observer.subscribe("flotta/#")
    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    device.publish(device_topic("dev-a", DeviceTopic.STATUS), b"s")
    assert observer.drain(quiet=0.7) == []


# ---- bootstrap ----------------------------------------------------------------------------


@pytest.mark.parametrize("listed", [True, False], ids=["listed-batch", "unlisted-batch"])
def test_bootstrap_reaches_only_its_own_enrolment_topics(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory, listed: bool
) -> None:
    enrolment = mosquitto_broker.enrolment_port
    enroller = mqtt_probes.connect(mosquitto_broker.operator(), "operator-e", port=enrolment)
    enroller.subscribe("flotta/enrol/+/request")
    for device_id in ("new-1", "new-2", "dev-a"):
        enroller.publish(enrol_topic(device_id, EnrolTopic.ANSWER), device_id.encode(), retain=True)
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    operator.subscribe("flotta/devices/+/status")
    operator.publish(DESIRED_A, b"secret", retain=True)

    creds = mosquitto_broker.bootstrap("batch-1", listed=listed)
    boot = mqtt_probes.connect(creds, "new-1")  # on the enrolment broker
    boot.subscribe("flotta/#")
    answer = boot.wait_for(enrol_topic("new-1", EnrolTopic.ANSWER))
    assert answer.payload == b"new-1"
    assert boot.drain(quiet=0.7) == []  # not new-2's answer, no device topics
    assert boot.publish(enrol_topic("new-1", EnrolTopic.REQUEST), b"req") in ACCEPTED
    assert enroller.wait_for(enrol_topic("new-1", EnrolTopic.REQUEST)).payload == b"req"
    for topic in [
        enrol_topic("new-2", EnrolTopic.REQUEST),
        enrol_topic("new-1", EnrolTopic.ANSWER),
        "flotta/devices/new-1/status",
    ]:
        assert boot.publish(topic, b"x") == NOT_AUTHORIZED, topic

    # On the fleet broker a bootstrap certificate reaches nothing, whatever its client id.
    outside = mqtt_probes.connect(creds, "dev-a", port=mosquitto_broker.port)
    outside.subscribe("flotta/#")
    assert outside.drain(quiet=0.7) == []
    for kind in DeviceTopic:
        assert outside.publish(device_topic("dev-a", kind), b"x") == NOT_AUTHORIZED, kind
    assert outside.publish(enrol_topic("dev-a", EnrolTopic.REQUEST), b"x") == NOT_AUTHORIZED
    assert operator.drain(quiet=0.5) == []


def test_a_client_id_belongs_to_its_certificate(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    """Connecting with another client's id took its session over (and could UNSUBSCRIBE it).
    On the fleet's listener the client id is the certificate's CN, and the bootstrap
    certificate is used on a broker of its own, so no certificate reaches another client's
    session: neither a device's nor the operator's."""
    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    device.subscribe(DESIRED_A)
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    operator.subscribe("flotta/devices/+/status")

    rogue = mosquitto_broker.device("dev-x")
    for client_id in ("dev-a", "operator-1"):
        thief = mqtt_probes.connect(rogue, client_id)  # the broker names it dev-x
        thief.close()
    batch = mosquitto_broker.bootstrap("leaked")
    for client_id, port in (("dev-a", mosquitto_broker.enrolment_port), ("dev-a", None)):
        intruder = mqtt_probes.connect(batch, client_id, port=port)
        intruder.close()

    assert device.connected
    assert operator.connected
    assert operator.publish(DESIRED_A, b"still mine") in ACCEPTED
    assert device.wait_for(DESIRED_A).payload == b"still mine"
    assert mosquitto_broker.process.log_text().count("closing old connection") == 0


def test_the_fleet_broker_has_no_enrolment_topics(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    device.subscribe("flotta/enrol/#")
    assert device.drain(quiet=0.7) == []
    assert device.publish(enrol_topic("dev-a", EnrolTopic.REQUEST), b"x") == NOT_AUTHORIZED


def test_known_limit_any_certificate_on_the_enrolment_broker_acts_as_a_bootstrap_one(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    """Documents what the enrolment broker allows: its %c patterns apply to every client, so
    a device certificate used there with some client id gets what a bootstrap certificate
    gets for that id (and nothing more); it reaches no session of the fleet broker's."""
    device = mqtt_probes.connect(
        mosquitto_broker.device("dev-a"), "someone-else", port=mosquitto_broker.enrolment_port
    )
    assert device.publish(enrol_topic("someone-else", EnrolTopic.REQUEST), b"x") in ACCEPTED
    assert device.publish(device_topic("someone-else", DeviceTopic.STATUS), b"x") == (
        NOT_AUTHORIZED
    )


# ---- the real mosquitto command-line clients ----------------------------------------------


def _cli_args(broker: TestBroker, creds: ClientCredentials, client_id: str) -> list[str]:
    return [
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-V",
        "mqttv5",
        "--cafile",
        str(creds.ca),
        "--cert",
        str(creds.cert),
        "--key",
        str(creds.key),
        "-i",
        client_id,
    ]


def _sub_one(
    broker: TestBroker, creds: ClientCredentials, topic: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "mosquitto_sub",
            *_cli_args(broker, creds, creds.identity),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "2",
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )


def _pub(
    broker: TestBroker, creds: ClientCredentials, topic: str, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "mosquitto_pub",
            *_cli_args(broker, creds, creds.identity),
            "-t",
            topic,
            "-m",
            "hi",
            "-q",
            "1",
            *extra,
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )


def test_mosquitto_clients_see_the_same_acl(mosquitto_broker: TestBroker) -> None:
    operator = mosquitto_broker.operator()
    dev_a = mosquitto_broker.device("dev-a")
    dev_b = mosquitto_broker.device("dev-b")

    published = _pub(mosquitto_broker, operator, DESIRED_A, "-r")
    assert published.returncode == 0, published.stderr
    assert b"failed" not in published.stderr

    own = _sub_one(mosquitto_broker, dev_a, DESIRED_A)
    assert (own.returncode, own.stdout) == (0, b"hi\n"), own.stderr
    foreign = _sub_one(mosquitto_broker, dev_b, DESIRED_A)
    assert foreign.returncode == 27  # -W timeout: nothing delivered
    assert foreign.stdout == b""

    denied = _pub(mosquitto_broker, dev_a, DESIRED_A)
    assert b"Not authorized" in denied.stderr
    allowed = _pub(mosquitto_broker, dev_a, device_topic("dev-a", DeviceTopic.STATUS))
    assert allowed.returncode == 0
    assert allowed.stderr == b""

    no_cert = subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            mosquitto_broker.host,
            "-p",
            str(mosquitto_broker.port),
            "--cafile",
            str(mosquitto_broker.ca_path),
            "-i",
            "anon",
            "-t",
            "x",
            "-m",
            "x",
            "-q",
            "1",
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert no_cert.returncode != 0
    plain = subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            mosquitto_broker.host,
            "-p",
            str(mosquitto_broker.port),
            "-i",
            "plain",
            "-t",
            "x",
            "-m",
            "x",
            "-q",
            "1",
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert plain.returncode != 0


def test_mosquitto_clients_refused_after_revocation(mosquitto_broker: TestBroker) -> None:
    dev_a = mosquitto_broker.device("dev-a")
    assert _pub(mosquitto_broker, dev_a, device_topic("dev-a", DeviceTopic.STATUS)).returncode == 0
    mosquitto_broker.revoke(dev_a)
    refused = _pub(mosquitto_broker, dev_a, device_topic("dev-a", DeviceTopic.STATUS))
    assert refused.returncode != 0


# ---- persistence ---------------------------------------------------------------------------


def test_retained_desired_survives_a_broker_restart(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    operator = mqtt_probes.connect(mosquitto_broker.operator(), "operator-1")
    assert operator.publish(DESIRED_A, b"v7", retain=True) in ACCEPTED
    operator.close()
    port = mosquitto_broker.port
    mosquitto_broker.restart()
    assert mosquitto_broker.port == port
    device = mqtt_probes.connect(mosquitto_broker.device("dev-a"), "dev-a")
    device.subscribe(DESIRED_A)
    assert device.wait_for(DESIRED_A).payload == b"v7"


def test_broker_is_stopped_by_pid(fleet_pki: PkiStore, tmp_path: Path) -> None:
    broker = TestBroker(fleet_pki, tmp_path / "b")
    broker.start()
    pid = broker.process.pid
    assert pid is not None
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not broker.process.running


def test_revocation_and_open_connections(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    """Mosquitto 2.0 checks the CRL only during the TLS handshake: an open connection of a
    revoked device survives the reload. Taking over its client id ends it, and the device
    cannot come back."""
    revoked = mosquitto_broker.device("dev-a")
    device = mqtt_probes.connect(revoked, "dev-a")
    mosquitto_broker.revoke(revoked)
    assert device.connected
    assert device.publish(device_topic("dev-a", DeviceTopic.STATUS), b"still") in ACCEPTED

    mqtt_probes.connect(mosquitto_broker.operator(), "dev-a")  # session takeover
    deadline = time.monotonic() + 5
    while device.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not device.connected
    assert mqtt_probes.new(revoked, "dev-a").refused()


def test_an_expired_crl_locks_everyone_out(
    mosquitto_broker: TestBroker, mqtt_probes: ProbeFactory
) -> None:
    """Why the CRL must be re-issued in time: OpenSSL refuses all clients once it expires."""
    creds = mosquitto_broker.device("dev-a")
    mosquitto_broker.pki.write_crl(now=datetime.now(UTC) - timedelta(days=40))
    mosquitto_broker.reload()
    assert mqtt_probes.new(creds, "dev-a").refused()
    mosquitto_broker.pki.write_crl()
    mosquitto_broker.reload()
    assert not mqtt_probes.new(creds, "dev-a-2").refused()
