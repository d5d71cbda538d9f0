#!/usr/bin/env bash
# Installs the Debian packages the local stack and the tests need (idempotent).
set -euo pipefail
# catatonit: Podman builds its pod infra image from it (a Recommends, so name it).
# rsyslog, rsyslog-gnutls: the syslog server (TCP, TLS, UDP) of the log sink's tests. There is
# no Loki to install: Debian's package "loki" is an unrelated program (genetic linkage
# analysis), so the Loki sink is tested against a stand-in (tests/fixtures/loki.py).
# rpm: rpmbuild and rpm -qp for the agent's packages (make agent-packages; dpkg-deb is dpkg's).
packages=(mosquitto mosquitto-clients podman runc catatonit busybox-static iproute2 prometheus curl
  rsyslog rsyslog-gnutls rpm)
# mmdebstrap (+ the Debian archive keys): the images' root filesystems; binutils: strip for
# the shared objects of the control-plane image's wheels (make images, docs/images.md).
packages+=(mmdebstrap debian-archive-keyring binutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged broker must not hold the default port or our state; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
# Likewise the packaged Prometheus (port 9090): the stack and the tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
# rsyslog: tests run their own rsyslogd; the system logger this script just installed is
# disabled and stopped (one that was there before is the machine's, and is left alone).
if [[ " ${missing[*]} " == *" rsyslog "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now rsyslog >/dev/null 2>&1 || true
fi
