#!/usr/bin/env bash
# Front door of the worker service: Dramatiq processes (through django-dramatiq) that
# run every task in the catalog. SIGTERM: stop taking messages, finish the running ones
# within CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS, leave the rest to RabbitMQ.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
# Metrics: services/worker/exposition.py serves every worker process's metrics (the
# conveyor_* series) from one folder on dramatiq_prom_host:dramatiq_prom_port. Loopback by
# default; the compose file sets dramatiq_prom_host=0.0.0.0 so Prometheus can scrape it.
# The folder must be set before Python starts and emptied at start.
export dramatiq_prom_host="${dramatiq_prom_host:-127.0.0.1}"
export dramatiq_prom_port="${dramatiq_prom_port:-9191}"
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/conveyor-metrics/worker-${dramatiq_prom_port}}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
exec python manage.py rundramatiq \
  --processes "${WORKER_PROCESSES:-1}" \
  --threads "${WORKER_THREADS:-8}" \
  --worker-shutdown-timeout "$(( ${CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS:-60} * 1000 ))" \
  ${WORKER_QUEUES:+--queues ${WORKER_QUEUES}}
