#!/usr/bin/env bash
# make dev's restart policy for a worker (compose's is `restart: unless-stopped`): when the
# command exits on its own (a task killed its process; the hard time limit replaced it,
# exit 70), start it again, so one bad task does not stop every other process of make dev.
# Exit 2 (Dramatiq: an import failed, bad arguments) is not retried: it would only fail
# again. SIGTERM or SIGINT (honcho on Ctrl-C) stops the command and this loop for good.
#   usage: scripts/respawn.sh services/worker/start.sh
set -o nounset
stopping=0 child=""
stop() {
  stopping=1
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap stop TERM INT
while true; do
  "$@" &
  child=$!
  # `wait` returns early when a trapped signal arrives: wait until the command itself ends.
  wait "$child"
  code=$?
  while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    code=$?
  done
  if [ "$stopping" = 1 ] || [ "$code" = 0 ] || [ "$code" = 2 ]; then
    exit "$code"
  fi
  echo "respawn: '$*' exited with $code; starting it again in 1 s" >&2
  sleep 1
  [ "$stopping" = 1 ] && exit "$code"
done
