#!/usr/bin/env bash
# Installs (Debian packages) and starts what the local runs need, when missing or stopped.
# Never stops or reconfigures a server that is already running.
#
#   scripts/ensure-services.sh [what ...]
#
#   rabbitmq     RabbitMQ on this machine (make test)
#   postgresql   PostgreSQL on this machine (make test)
#   for-dev      what BROKER_URL and DATABASE_URL name on this machine (make dev): RabbitMQ
#                when BROKER_URL is local (its default is), PostgreSQL and the database when
#                DATABASE_URL names a local one (unset: SQLite, nothing to start)
#   prometheus   the prometheus package (promtool; tests start their own server)
#   wrk          the HTTP load generator (make bench)
#   browser      Debian's chromium and chromium-driver (make test: tests/browser drive it
#                with Selenium; the driver is given by path, nothing is downloaded)
#   docker       Debian's docker.io (a dockerd the compose test starts privately, its client),
#                docker-compose (1.29) and debootstrap (stand-in base images): make test-compose
set -o errexit -o pipefail -o nounset

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# host:port:user:database of a URL, or nothing when it names another machine.
local_parts() {
  python3 - "$1" <<'EOF'
import sys
from urllib.parse import unquote, urlsplit

url = urlsplit(sys.argv[1].split(";")[0])
if (url.hostname or "localhost") in ("localhost", "127.0.0.1", "::1"):
    print(f"{url.hostname or '127.0.0.1'}:{url.port or ''}:{unquote(url.username or '')}:{unquote(url.path.lstrip('/'))}")
EOF
}

want_rabbitmq=false want_postgresql=false create_database=""
packages=()
for what in "$@"; do
  case "$what" in
    rabbitmq) want_rabbitmq=true ;;
    postgresql) want_postgresql=true ;;
    for-dev)
      if [ -n "$(local_parts "${BROKER_URL:-amqp://127.0.0.1/}")" ]; then want_rabbitmq=true; fi
      if [ -n "${DATABASE_URL:-}" ] && [[ "${DATABASE_URL}" == postgres* ]]; then
        create_database="$(local_parts "$DATABASE_URL")"
        if [ -n "$create_database" ]; then want_postgresql=true; fi
      fi
      ;;
    prometheus) command -v promtool >/dev/null 2>&1 || packages+=(prometheus) ;;
    wrk) command -v wrk >/dev/null 2>&1 || packages+=(wrk) ;;
    browser)
      command -v chromium >/dev/null 2>&1 || packages+=(chromium)
      command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
      ;;
    docker)
      [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || packages+=(docker.io)
      command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
      command -v debootstrap >/dev/null 2>&1 || packages+=(debootstrap)
      ;;
    *) echo "ensure-services.sh: unknown service '$what'" >&2; exit 2 ;;
  esac
done
if $want_rabbitmq; then command -v rabbitmq-server >/dev/null 2>&1 || packages+=(rabbitmq-server); fi
if $want_postgresql; then command -v pg_ctlcluster >/dev/null 2>&1 || packages+=(postgresql); fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

if $want_rabbitmq && ! as_root rabbitmqctl -q status >/dev/null 2>&1; then
  echo "Starting RabbitMQ"
  as_root rabbitmq-server -detached
  as_root rabbitmqctl -q await_startup --timeout 60
fi

if $want_postgresql; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  if ! pg_lsclusters --no-header | grep -q online; then
    echo "Starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  up=false
  for _ in $(seq 1 30); do
    if pg_isready -q -h 127.0.0.1 -p 5432; then up=true; break; fi
    sleep 1
  done
  if ! $up; then
    echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
    exit 1
  fi
  if [ -n "$create_database" ]; then
    IFS=: read -r host port user database <<<"$create_database"
    args=(-h "$host" -p "${port:-5432}" -U "${user:-postgres}")
    if [ -n "$database" ] && ! psql "${args[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
      echo "Creating database $database"
      createdb "${args[@]}" "$database"
    fi
  fi
fi
