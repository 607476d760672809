#!/usr/bin/env bash
# Installs (Debian packages) and starts RabbitMQ and PostgreSQL when they are missing or
# stopped. Never stops or reconfigures a server that is already running.
set -o errexit -o pipefail -o nounset

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
for extra in "$@"; do
  case "$extra" in
    prometheus) command -v promtool >/dev/null 2>&1 || missing+=(prometheus) ;;
    wrk) command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
  esac
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! as_root rabbitmqctl -q status >/dev/null 2>&1; then
  echo "Starting RabbitMQ"
  as_root rabbitmq-server -detached
  as_root rabbitmqctl -q await_startup --timeout 60
fi

version=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_lsclusters --no-header | grep -q online; then
  echo "Starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 1
done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
