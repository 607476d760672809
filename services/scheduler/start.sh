#!/usr/bin/env bash
# Front door of the scheduler service: fires periodic schedules, exactly once per fire
# time. Two replicas are safe (one leads through a PostgreSQL advisory lock, the other
# stands by). Healthcheck: python -m services.scheduler.healthcheck
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
exec python -m services.scheduler
