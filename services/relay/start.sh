#!/usr/bin/env bash
# Front door of the outbox relay: publishes tasks the web service could not (broker
# down, process died) and deferred tasks once due. Several replicas are safe.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
exec python manage.py relay
