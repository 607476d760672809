#!/usr/bin/env bash
# A private Docker engine for `make test-compose` (issue 15): its own data root, exec
# root, socket, pid file and bridge, all under one folder; it never reads or touches
# /var/run/docker.sock or another engine's files.
#
#   tests/compose/dockerd.sh start DIR   start it; prints the lines to `eval` (DOCKER_HOST,
#                                        DOCKER_BUILDKIT, the storage driver it settled on)
#   tests/compose/dockerd.sh stop DIR    stop it, unmount what it left, delete its bridge
#                                        and remove DIR (layers, volumes, logs: everything)
#
# Needs root and Debian's docker.io (dockerd 20.10, its client /usr/bin/docker, which
# builds with BuildKit without buildx). overlay2 is tried first; vfs (every layer a full
# copy: several GB for a few builds) only when overlay2 cannot start.
# Shared with any other engine on the host, as with every dockerd: the iptables chains
# named DOCKER*. The bridge and its subnet are private (see pick_subnet).
set -o errexit -o pipefail -o nounset

DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER=${DOCKER:-/usr/bin/docker}
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}

die() { echo "dockerd.sh: $*" >&2; exit 1; }

# The bridge's name is derived from DIR, so two private engines never share one (and
# `stop` finds it again). Interface names are at most 15 characters.
bridge_name() { echo "cvy$(printf %s "$1" | md5sum | cut -c1-8)"; }

# A /24 for the bridge and a /16 pool for compose's networks that no host route uses.
pick_subnet() {
    local routes second
    routes=$(ip -4 route show table all 2>/dev/null || true)
    for second in 213 214 215 216 217 218 219; do
        if ! grep -q "10\.${second}\." <<<"$routes"; then
            echo "$second"
            return
        fi
    done
    die "no free 10.21x.0.0/16 range for the private bridge"
}

docker_ready() { DOCKER_HOST="unix://$1/docker.sock" "$DOCKER" version >/dev/null 2>&1; }

# Starts dockerd with one storage driver; returns non-zero if it exits or never answers.
try_start() {
    local dir=$1 driver=$2 bridge=$3 second=$4 pid waited=0
    mkdir -p "$dir/data" "$dir/exec"
    # setsid: its own session, so a Ctrl-C on the caller's terminal reaches it only
    # through `stop`, which lets it stop its containers first.
    setsid "$DOCKERD" \
        --data-root "$dir/data" \
        --exec-root "$dir/exec" \
        --pidfile "$dir/dockerd.pid" \
        -H "unix://$dir/docker.sock" \
        --storage-driver "$driver" \
        --bridge "$bridge" \
        --default-address-pool "base=10.$second.0.0/16,size=24" \
        --log-level warn \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/dockerd.launch-pid"
    while ! docker_ready "$dir"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if ((waited >= START_TIMEOUT * 10)); then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

start() {
    local dir=$1 bridge second driver began
    [[ $EUID -eq 0 ]] || die "needs root (dockerd)"
    [[ -x $DOCKERD && -x $DOCKER ]] || die "needs Debian's docker.io ($DOCKERD, $DOCKER): apt-get install docker.io"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ ! -e $dir/docker.sock ]] || die "$dir/docker.sock exists: an engine may already run there"
    # A unix socket path has a 108-byte limit.
    ((${#dir} < 80)) || die "$dir is too long a path for the engine's sockets"
    bridge=$(bridge_name "$dir")
    second=$(pick_subnet)
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add name "$bridge" type bridge
        ip addr add "10.$second.255.1/24" dev "$bridge"
    fi
    ip link set "$bridge" up
    began=$(date +%s.%N)
    for driver in overlay2 vfs; do
        if try_start "$dir" "$driver" "$bridge" "$second"; then
            echo "$driver" >"$dir/storage-driver"
            printf 'export DOCKER_HOST=unix://%s/docker.sock\n' "$dir"
            printf 'export DOCKER_BUILDKIT=1\n'
            printf '# private dockerd (%s, %s) answered after %.1f s; log: %s/dockerd.log\n' \
                "$("$DOCKERD" --version | cut -d, -f1)" "$driver" \
                "$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$dir"
            return
        fi
        echo "dockerd.sh: storage driver $driver failed:" >&2
        tail -n 5 "$dir/dockerd.log" >&2 || true
        rm -rf "$dir/data" "$dir/exec" "$dir/dockerd.pid"
    done
    die "dockerd did not start with overlay2 nor vfs (log: $dir/dockerd.log)"
}

stop() {
    local dir=$1 pid waited=0 target
    [[ -d $dir ]] || return 0
    dir=$(cd "$dir" && pwd)
    pid=$(cat "$dir/dockerd.pid" 2>/dev/null || cat "$dir/dockerd.launch-pid" 2>/dev/null || true)
    # Only the process this script started (its pid file), and only if it is a dockerd
    # whose socket is ours: never another engine.
    if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "-H unix://$dir/docker.sock"; then
        # Containers first, with their own grace periods (dockerd's shutdown gives 10 s).
        if docker_ready "$dir"; then
            DOCKER_HOST="unix://$dir/docker.sock" "$DOCKER" ps -q | xargs -r \
                env DOCKER_HOST="unix://$dir/docker.sock" "$DOCKER" stop >/dev/null 2>&1 || true
        fi
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null && ((waited < 300)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Whatever the engine left mounted under DIR (overlay layers, netns, shm), deepest first.
    { findmnt -rn -o TARGET | grep -F "$dir/" || true; } | sort -r | while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done
    ip link del "$(bridge_name "$dir")" 2>/dev/null || true
    rm -rf "$dir"
}

case "${1:-}" in
start) start "${2:?usage: $0 start DIR}" ;;
stop) stop "${2:?usage: $0 stop DIR}" ;;
*) die "usage: $0 start|stop DIR" ;;
esac
