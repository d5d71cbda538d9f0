"""Write a broker directory: ``mosquitto.conf``, ``acl`` and ``openssl.cnf`` next to each
other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flotta.mosquitto.acl import AclSettings, render_acl
from flotta.mosquitto.config import BrokerSettings, render_config
from flotta.mosquitto.openssl import OPENSSL_CONFIG_NAME, render_openssl_config
from flotta.pki.files import write_atomic


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
    persistence_dir: Path | None = None,
    run_as_root: bool = False,
) -> BrokerSettings:
    """Settings that use the files of a ``flotta pki`` directory (absolute paths)."""
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
        run_as_root=run_as_root,
    )


def write_broker_files(
    settings: BrokerSettings, acl: AclSettings, config_path: Path
) -> BrokerFiles:
    """Render the files atomically; create the persistence directory."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    settings.persistence_dir.mkdir(parents=True, exist_ok=True)
    openssl_config = config_path.with_name(OPENSSL_CONFIG_NAME)
    write_atomic(settings.acl_file, render_acl(acl).encode())
    write_atomic(openssl_config, render_openssl_config().encode())
    write_atomic(config_path, render_config(settings).encode())
    return BrokerFiles(config_path, settings.acl_file, openssl_config)
