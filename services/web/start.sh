#!/usr/bin/env bash
# Front door of the web service: gunicorn serving config.wsgi.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
# Metrics of every gunicorn process go to one folder, read by /metrics. It must be set
# before Python starts and emptied at start, or a restart would add up old and new counts.
bind="${WEB_BIND:-127.0.0.1:8000}"
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/conveyor-metrics/web-${bind//[^[:alnum:]]/_}}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
exec gunicorn config.wsgi:application --config services/web/gunicorn.conf.py
