#!/bin/sh
# Install the Flotta agent on a device: only the agent's dependencies (paho-mqtt, msgspec,
# cryptography, PyYAML), no pydantic, no Kubernetes or NATS client.
#
#   sudo ./install.sh /path/to/flotta-*.whl
#
# Needs python3 (>= 3.11) with venv, and Podman with its API socket (podman.socket).
set -eu
WHEEL=${1:?usage: install.sh FLOTTA_WHEEL}
PREFIX=/opt/flotta-agent
HERE=$(cd "$(dirname "$0")" && pwd)

python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --no-cache-dir "${WHEEL}[agent]"
install -d -m 0700 /etc/flotta-agent /var/lib/flotta-agent
[ -e /etc/flotta-agent/agent.toml ] || install -m 0600 "$HERE/agent.toml" /etc/flotta-agent/agent.toml
install -m 0644 "$HERE/flotta-agent.service" /etc/systemd/system/flotta-agent.service
systemctl daemon-reload
systemctl enable --now podman.socket
echo "Put ca.crt, bootstrap.crt and bootstrap.key (0600) in /etc/flotta-agent, set broker_url"
echo "in /etc/flotta-agent/agent.toml, then: systemctl enable --now flotta-agent"
