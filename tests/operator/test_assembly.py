import json
import time

import pytest

from flotta.operator.assembly import (
    RenderedConfiguration,
    assemble,
    deregistration,
    render_configuration,
)
from flotta.operator.configuration import build_configuration
from flotta.operator.rendering import RenderedWorkload, render_workload
from flotta.operator.sealer import Sealer
from flotta.pki.keys import generate_key
from flotta.pki.sealing import unseal
from flotta.schemas.codec import content_version, decode, encode
from flotta.schemas.wire.desired import DesiredState
from tests.operator.builders import b64, device, pod_spec, workload

SECRETS = {
    "db": {"password": b64("s3cret"), "user": b64("app")},
    "pull": {".dockerconfigjson": b64('{"auths":{"r.local":{"auth":"eDp5"}}}')},
}
CONFIGMAPS = {"settings": {"mode": "fast", "ünïcode": "välue"}}


def rendered(name: str, **kwargs: object) -> RenderedWorkload:
    model, raw = workload(name, **kwargs)  # type: ignore[arg-type]
    result = render_workload(model, raw, secrets=SECRETS.get, configmaps=CONFIGMAPS.get)
    assert isinstance(result, RenderedWorkload), result
    return result


def configuration() -> RenderedConfiguration:
    d = device(
        "d1",
        spec={
            "heartbeat": {"periodSeconds": 10},
            "mounts": [{"device": "/dev/sda1", "folder": "/mnt", "type": "ext4"}],
        },
    )
    return render_configuration(build_configuration(d.spec, CONFIGMAPS.get))


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(b"operator-sealing-key")


def test_payload_is_what_the_codec_encodes_and_version_is_the_content_version(
    sealer: Sealer,
) -> None:
    key = generate_key()
    workloads = [
        rendered(
            "web",
            pod=pod_spec(
                envFrom=[{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}]
            ),
        ),
        rendered("pull", extra_spec={"imageRegistries": {"secretRef": {"name": "pull"}}}),
        rendered(
            "a-first",
            labels={"podman/x": "y"},
            extra_spec={"metrics": {"port": 9000, "containers": {"main": {"port": 1}}}},
        ),
    ]
    result = assemble(
        "d1",
        "fleet",
        configuration(),
        workloads,
        secrets=SECRETS.get,
        public_key=key.public_key(),
        seal=sealer,
    )
    state = decode(DesiredState, result.payload)
    assert encode(state) == result.payload
    assert content_version(state) == result.version == state.version
    assert [w.name for w in state.workloads] == ["a-first", "pull", "web"]
    assert result.workloads == ("a-first", "pull", "web")


def test_secrets_are_sealed_for_the_device(sealer: Sealer) -> None:
    key = generate_key()
    workloads = [rendered("web", pod=pod_spec(envFrom=[{"secretRef": {"name": "db"}}]))]
    result = assemble(
        "d1",
        "fleet",
        configuration(),
        workloads,
        secrets=SECRETS.get,
        public_key=key.public_key(),
        seal=sealer,
    )
    assert b"s3cret" not in result.payload
    assert SECRETS["db"]["password"].encode() not in result.payload
    state = decode(DesiredState, result.payload)
    (secret,) = state.secrets
    assert json.loads(unseal(key, secret.data, device_id="d1")) == SECRETS["db"]


def test_registry_auth_is_sealed_per_workload(sealer: Sealer) -> None:
    key = generate_key()
    workloads = [rendered("pull", extra_spec={"imageRegistries": {"secretRef": {"name": "pull"}}})]
    result = assemble(
        "d1",
        "fleet",
        configuration(),
        workloads,
        secrets=SECRETS.get,
        public_key=key.public_key(),
        seal=sealer,
    )
    auth = decode(DesiredState, result.payload).workloads[0].image_registry_auth
    assert auth is not None
    assert unseal(key, auth, device_id="d1") == b'{"auths":{"r.local":{"auth":"eDp5"}}}'


def test_same_inputs_same_bytes_even_with_a_fresh_sealer() -> None:
    key = generate_key()
    workloads = [rendered("web", pod=pod_spec(envFrom=[{"secretRef": {"name": "db"}}]))]
    args = ("d1", "fleet", configuration(), workloads)
    first = assemble(*args, secrets=SECRETS.get, public_key=key.public_key(), seal=Sealer(b"k"))
    second = assemble(*args, secrets=SECRETS.get, public_key=key.public_key(), seal=Sealer(b"k"))
    assert first.payload == second.payload
    other = assemble(
        "d1",
        "fleet",
        configuration(),
        [*workloads, rendered("b")],
        secrets=SECRETS.get,
        public_key=key.public_key(),
        seal=Sealer(b"k"),
    )
    assert other.version != first.version


def test_workload_with_secrets_waits_for_the_device_key(sealer: Sealer) -> None:
    workloads = [
        rendered("web", pod=pod_spec(envFrom=[{"secretRef": {"name": "db"}}])),
        rendered("plain"),
    ]
    result = assemble(
        "d1", "fleet", configuration(), workloads, secrets=SECRETS.get, public_key=None, seal=sealer
    )
    assert result.workloads == ("plain",)
    assert result.skipped[0][0] == "web"


def test_deregistration_message() -> None:
    state = deregistration("d1", "fleet")
    assert state.deregister
    assert state.workloads == []
    assert state.version == content_version(state)


def test_ten_thousand_devices_assemble_well_under_a_second(sealer: Sealer) -> None:
    config = configuration()
    workloads = [rendered("web"), rendered("agent-sidecar")]
    start = time.perf_counter()
    results = [
        assemble(
            f"dev-{i}",
            "fleet",
            config,
            workloads,
            secrets=SECRETS.get,
            public_key=None,
            seal=sealer,
        )
        for i in range(10_000)
    ]
    elapsed = time.perf_counter() - start
    assert len({r.version for r in results}) == 10_000
    assert elapsed < 0.5, f"assembly of 10,000 devices took {elapsed:.3f} s"
