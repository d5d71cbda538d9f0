"""Write a broker directory: ``mosquitto.conf``, ``acl`` and ``openssl.cnf`` next to each
other, and the enrolment broker's ``enrolment.conf`` and ``enrolment-acl`` beside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flotta.mosquitto.acl import AclSettings, render_acl, render_enrolment_acl
from flotta.mosquitto.config import BrokerSettings, render_config
from flotta.mosquitto.openssl import OPENSSL_CONFIG_NAME, render_openssl_config
from flotta.pki.files import write_atomic

ENROLMENT_CONFIG_NAME = "enrolment.conf"


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    config_path: Path
    acl_path: Path
    openssl_config_path: Path  # give it to the process in OPENSSL_CONF


def settings_for_pki(
    pki_dir: Path,
    out_dir: Path,
    *,
    port: int,
    bind_address: str,
    services_port: int | None,
    persistence_dir: Path | None = None,
    run_as_root: bool = False,
) -> BrokerSettings:
    """Fleet broker settings that use the files of a ``flotta pki`` directory (absolute
    paths); :func:`flotta.mosquitto.config.enrolment_settings` gives its enrolment broker."""
    pki = pki_dir.resolve()
    out = out_dir.resolve()
    return BrokerSettings(
        cafile=pki / "ca.crt",
        certfile=pki / "server.crt",
        keyfile=pki / "server.key",
        crlfile=pki / "crl.pem",
        acl_file=out / "acl",
        persistence_dir=(persistence_dir or out / "data").resolve(),
        port=port,
        bind_address=bind_address,
        services_port=services_port,
        services_bind_address=bind_address,
        run_as_root=run_as_root,
    )


def write_broker_files(
    settings: BrokerSettings, acl: AclSettings, config_path: Path
) -> BrokerFiles:
    """Render the files atomically; create the persistence directory. ``acl`` is for the
    fleet broker (the enrolment broker's ACL names no one)."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    settings.persistence_dir.mkdir(parents=True, exist_ok=True)
    openssl_config = config_path.with_name(OPENSSL_CONFIG_NAME)
    acl_text = render_acl(acl) if settings.role == "fleet" else render_enrolment_acl()
    write_atomic(settings.acl_file, acl_text.encode())
    write_atomic(openssl_config, render_openssl_config().encode())
    write_atomic(config_path, render_config(settings).encode())
    return BrokerFiles(config_path, settings.acl_file, openssl_config)
