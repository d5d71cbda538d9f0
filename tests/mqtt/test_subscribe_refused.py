"""A refused subscription raises SubscribeError.

Mosquitto's ``acl_file`` (the Flotta broker) never refuses a SUBSCRIBE: it checks each
delivered message instead. To get a real SUBACK refusal, this test runs a second real
Mosquitto over TLS with the dynamic security plugin, whose role denies a subscribe pattern.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotta.dev.nats_server import free_port
from flotta.mosquitto.process import MosquittoProcess
from flotta.mqtt import MqttClient, MqttSettings, SubscribeError, TlsFiles
from flotta.pki.store import PkiStore
from tests.mqtt.helpers import FAST_RECONNECT

DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
USER, PASSWORD = "watcher", "watcher-secret"
NOT_AUTHORIZED = 0x87

pytestmark = pytest.mark.skipif(
    not DYNSEC_PLUGIN.exists(), reason="mosquitto dynamic security plugin not installed"
)


def _dynsec_client(username: str, password: str, role: str) -> dict[str, object]:
    salt = os.urandom(12)
    iterations = 101
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {
        "username": username,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
        "roles": [{"rolename": role}],
    }


@pytest.fixture
def dynsec_broker(fleet_pki: PkiStore, tmp_path: Path) -> Iterator[int]:
    workdir = tmp_path / "dynsec"
    workdir.mkdir()
    (workdir / "dynsec.json").write_text(
        json.dumps(
            {
                "defaultACLAccess": {
                    "publishClientSend": True,
                    "publishClientReceive": True,
                    "subscribe": True,
                    "unsubscribe": True,
                },
                "clients": [_dynsec_client(USER, PASSWORD, "no-secrets")],
                "groups": [],
                "roles": [
                    {
                        "rolename": "no-secrets",
                        "acls": [
                            {
                                "acltype": "subscribePattern",
                                "topic": "secret/#",
                                "priority": 1,
                                "allow": False,
                            }
                        ],
                    }
                ],
            }
        )
    )
    port = free_port("127.0.0.1")
    config = workdir / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                "per_listener_settings false",
                "allow_anonymous false",
                f"plugin {DYNSEC_PLUGIN}",
                f"plugin_opt_config_file {workdir / 'dynsec.json'}",
                "user root",
                "log_dest stderr",
                "log_type all",
                f"listener {port} 127.0.0.1",
                f"cafile {fleet_pki.ca_cert_path}",
                f"certfile {fleet_pki.server_cert_path}",
                f"keyfile {fleet_pki.server_key_path}",
                "",
            ]
        )
    )
    process = MosquittoProcess(config, log_path=workdir / "mosquitto.log")
    try:
        process.start()
        yield port
    finally:
        process.stop()


async def test_refused_subscription_raises_subscribe_error(
    dynsec_broker: int, fleet_pki: PkiStore
) -> None:
    settings = MqttSettings(
        "127.0.0.1",
        dynsec_broker,
        "watcher-1",
        TlsFiles(fleet_pki.ca_cert_path),
        username=USER,
        password=PASSWORD,
        reconnect_base=FAST_RECONNECT["reconnect_base"],
        reconnect_cap=FAST_RECONNECT["reconnect_cap"],
    )
    async with MqttClient(settings) as client:
        with pytest.raises(SubscribeError) as refused:
            await client.subscribe([("public/#", 1), ("secret/#", 1)])
        assert refused.value.reason_codes == (NOT_AUTHORIZED,)
        assert "'secret/#'" in str(refused.value)
        assert "Not authorized" in str(refused.value)
        # The accepted filter of the same SUBSCRIBE is kept and works.
        await client.publish("public/a", b"ok")
        async for message in client.messages():
            assert message.payload == b"ok"
            message.ack()
            break
