#!/bin/sh
# greenboot health check (install into /etc/greenboot/check/required.d/): the boot is healthy
# when the Flotta agent service is active and Podman answers. A failing required check makes
# greenboot reboot and, after its retries, roll back to the previous rpm-ostree deployment;
# the agent then reports the requested commit as Failed (deployed but not booted).
#
# Settings (environment, e.g. from a systemd drop-in for greenboot-healthcheck.service):
#   FLOTTA_AGENT_SERVICE    unit to check               (default flotta-agent.service)
#   FLOTTA_HEALTH_TIMEOUT   seconds to wait for health  (default 300)
#   FLOTTA_HEALTH_INTERVAL  seconds between attempts    (default 5)
set -u

service="${FLOTTA_AGENT_SERVICE:-flotta-agent.service}"
timeout="${FLOTTA_HEALTH_TIMEOUT:-300}"
interval="${FLOTTA_HEALTH_INTERVAL:-5}"
waited=0

while :; do
    problems=""
    state="$(systemctl is-active "$service" 2>/dev/null)"
    case "$state" in
        active) ;;
        failed)
            echo "flotta health check: $service has failed" >&2
            exit 1
            ;;
        *) problems="$service is ${state:-unknown}" ;;
    esac
    if ! podman_error="$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>&1 >/dev/null)"; then
        problems="${problems:+$problems; }podman does not answer: $(echo "$podman_error" | tail -n 1)"
    fi
    if [ -z "$problems" ]; then
        echo "flotta health check: $service active, podman answers"
        exit 0
    fi
    if [ "$waited" -ge "$timeout" ]; then
        echo "flotta health check failed after ${waited}s: $problems" >&2
        exit 1
    fi
    sleep "$interval"
    waited=$((waited + interval))
done
