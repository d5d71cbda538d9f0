"""The committed production example (``mosquitto/mosquitto.conf`` and ``mosquitto/acl``, the
enrolment broker's ``mosquitto/enrolment.conf`` and ``mosquitto/enrolment-acl``, and
``mosquitto/openssl.cnf``).

Regenerate with ``python -m flotta.mosquitto.example DIR``; a test keeps them up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flotta.mosquitto.acl import AclSettings, render_acl, render_enrolment_acl
from flotta.mosquitto.config import enrolment_settings, production_settings, render_config
from flotta.mosquitto.files import ENROLMENT_CONFIG_NAME
from flotta.mosquitto.openssl import OPENSSL_CONFIG_NAME, render_openssl_config

# One observer and one bootstrap batch, to show their sections.
EXAMPLE_ACL = AclSettings(observers=("dashboards",), bootstrap_batches=("factory",))


def example_files() -> dict[str, str]:
    """File name -> content of the production example."""
    fleet = production_settings()
    return {
        "mosquitto.conf": render_config(fleet),
        "acl": render_acl(EXAMPLE_ACL),
        ENROLMENT_CONFIG_NAME: render_config(enrolment_settings(fleet)),
        "enrolment-acl": render_enrolment_acl(),
        OPENSSL_CONFIG_NAME: render_openssl_config(),
    }


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path("mosquitto")
    for name, text in example_files().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
