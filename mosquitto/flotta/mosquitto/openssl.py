"""The OpenSSL settings of the Mosquitto process. Mosquitto has no option for them, so the
process is started with ``OPENSSL_CONF`` naming this file (it replaces the system's
``openssl.cnf`` for that process only).

The broker issues no TLS session tickets. Flotta clients never resume a session: every connect
presents the client certificate and has it checked (validity, CRL). A ticket would let a
client skip those checks for its lifetime (two hours by OpenSSL's default), and with OpenSSL
3.0 issuing one costs an encode and a decode of the session, the client certificate's public
key included: more than a quarter of the broker's CPU per connect
(``benchmarks/broker_tls_bench.py``, ``benchmarks/results/broker_tls.md``).
"""

from __future__ import annotations

from pathlib import Path

OPENSSL_CONFIG_NAME = "openssl.cnf"
OPENSSL_CONF = "OPENSSL_CONF"


def render_openssl_config() -> str:
    return "\n".join(
        [
            "# OpenSSL settings for the Flotta broker process, given in OPENSSL_CONF.",
            "# Rendered by flotta.mosquitto.openssl; see there why the broker issues no tickets.",
            "openssl_conf = flotta_openssl",
            "",
            "[flotta_openssl]",
            "ssl_conf = flotta_ssl",
            "",
            "[flotta_ssl]",
            "system_default = flotta_tls",
            "",
            "[flotta_tls]",
            "MinProtocol = TLSv1.2",
            "CipherString = DEFAULT:@SECLEVEL=2",
            "# TLS 1.3: no tickets after the handshake; TLS 1.2: no ticket extension.",
            "NumTickets = 0",
            "Options = -SessionTicket",
            "",
        ]
    )


def openssl_environment(config: Path) -> dict[str, str]:
    """What to add to the broker process's environment (an absolute path: the process may
    change its directory)."""
    return {OPENSSL_CONF: str(config.resolve())}
