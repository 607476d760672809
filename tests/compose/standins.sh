#!/usr/bin/env bash
# Stand-in images for `make test-compose` (issue 15), built only for the images the
# private engine cannot pull, each tagged with the exact name the Dockerfile or the
# compose file uses. Nothing of this machine is written into the repository: the Debian
# mirror comes from apt's own sources, the CPython from the PATH.
#
#   tests/compose/standins.sh base WORKDIR     Debian bookworm (debootstrap minbase) as
#                                              conveyor-test/debian:bookworm
#   tests/compose/standins.sh python WORKDIR   the Dockerfile's FROM image (its exact tag):
#                                              the base plus the host's CPython 3.12
#   tests/compose/standins.sh SERVICE WORKDIR  the compose file's image for SERVICE (postgres,
#                                              rabbitmq, prometheus; its exact tag) from
#                                              tests/compose/SERVICE/
#   tests/compose/standins.sh all WORKDIR      each of the above that cannot be pulled
#
# Run with DOCKER_HOST pointing at the private engine (tests/compose/dockerd.sh).
set -o errexit -o pipefail -o nounset

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DOCKER=${DOCKER:-/usr/bin/docker}
BASE_IMAGE=conveyor-test/debian:bookworm
PULL_TIMEOUT=${PULL_TIMEOUT:-30}
# What the Python stand-in's shared libraries (and ssl, sqlite3, ctypes, ...) load.
BASE_PACKAGES=ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,libuuid1,libgdbm6,libexpat1,libbz2-1.0,liblzma5,libncursesw6,libreadline8,zlib1g,libtirpc3

die() { echo "standins.sh: $*" >&2; exit 1; }
docker() { "$DOCKER" "$@"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# True when the engine already has IMAGE or can pull it (a real registry): then no
# stand-in is built and nothing built here shadows the real image.
pullable() {
    have_image "$1" && return 0
    timeout "$PULL_TIMEOUT" "$DOCKER" pull -q "$1" >/dev/null 2>&1
}

# The Debian mirror apt uses on this machine (bookworm, main archive).
debian_mirror() {
    apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 'Codename: bookworm' 'Origin: Debian' 2>/dev/null |
        grep -v -- '-security' | sort -u | head -n 1
}

# The exact tag of the Dockerfile's FROM image (its PYTHON_IMAGE default).
python_image_tag() {
    sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/Dockerfile" | head -n 1
}

build_base() {
    local work=$1 mirror rootfs
    have_image "$BASE_IMAGE" && return 0
    command -v debootstrap >/dev/null || die "needs debootstrap (apt-get install debootstrap)"
    mirror=$(debian_mirror)
    [[ -n $mirror ]] || die "no Debian bookworm mirror in apt's sources"
    rootfs="$work/rootfs"
    rm -rf "$rootfs"
    echo "standins.sh: debootstrap bookworm from $mirror" >&2
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . |
        docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

build_python() {
    local work=$1 tag prefix version ctx
    tag=$(python_image_tag)
    [[ -n $tag ]] || die "no ARG PYTHON_IMAGE=... in the Dockerfile"
    pullable "$tag" && return 0
    build_base "$work"
    # A relocatable CPython 3.12 (pyenv's, or PYTHON_PREFIX): its prefix is copied to
    # /usr/local as in the official image. Debian's /usr/bin/python3.12 is not one.
    prefix=${PYTHON_PREFIX:-$(python3.12 -c 'import sys; print(sys.base_prefix)' 2>/dev/null || true)}
    [[ -n $prefix && $prefix != /usr && -x $prefix/bin/python3.12 ]] ||
        die "needs a relocatable CPython 3.12 (pyenv install 3.12, or PYTHON_PREFIX=...)"
    version=$("$prefix/bin/python3.12" -c 'import platform; print(platform.python_version())')
    ctx="$work/python-context"
    rm -rf "$ctx"
    mkdir -p "$ctx/python"
    # Not the test suite, not the caches, not Tk and NIS (the official slim image has no
    # Tk either; their libraries are not in the base), and nothing installed into the
    # host's site-packages (a .pth there may carry this machine's own settings): pip only.
    tar -C "$prefix" -c \
        --exclude='./lib/python3.12/test' --exclude='__pycache__' \
        --exclude='./lib/python3.12/tkinter' --exclude='./lib/python3.12/idlelib' \
        --exclude='./lib/python3.12/lib-dynload/_tkinter.*' --exclude='./lib/python3.12/lib-dynload/nis.*' \
        --exclude='./lib/python3.12/site-packages/*' . | tar -C "$ctx/python" -x
    cp -a "$prefix/lib/python3.12/site-packages/"pip "$prefix/lib/python3.12/site-packages/"pip-*.dist-info \
        "$ctx/python/lib/python3.12/site-packages/"
    echo "standins.sh: $tag from $BASE_IMAGE and CPython $version ($prefix)" >&2
    docker build -q -t "$tag" -f - "$ctx" >/dev/null <<EOF
FROM $BASE_IMAGE
COPY python/ /usr/local/
# The interpreter's RUNPATH names the host prefix; ldconfig finds libpython3.12.so in
# /usr/local/lib instead. Then fail here, not in the project's build, if an extension
# module misses a shared library.
RUN ldconfig \\
 && python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, venv, ensurepip' \\
 && ! ldd /usr/local/lib/python3.12/lib-dynload/*.so | grep 'not found'
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 \\
    PYTHON_VERSION=$version
LABEL org.conveyor.stand-in="CPython $version on Debian bookworm minbase, for tests/compose"
CMD ["python3"]
EOF
    rm -rf "$ctx"
}

# The exact image a service of docker-compose.yml names (`image:` under `  NAME:`).
compose_image() {
    awk -v svc="  $1:" '$0 == svc { found = 1; next }
        found && /^    image:/ { print $2; exit }
        found && /^  [^ ]/ { exit }' "$ROOT/docker-compose.yml"
}

# A stand-in built from tests/compose/SERVICE/Dockerfile on the base image.
build_service() {
    local work=$1 service=$2 tag
    tag=$(compose_image "$service")
    [[ -n $tag ]] || die "no image for service $service in docker-compose.yml"
    pullable "$tag" && return 0
    build_base "$work"
    echo "standins.sh: $tag from tests/compose/$service" >&2
    docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$tag" "$HERE/$service" >/dev/null
}

work=${2:?usage: $0 base|python|postgres|rabbitmq|prometheus|all WORKDIR}
mkdir -p "$work"
work=$(cd "$work" && pwd)
case "$1" in
base) build_base "$work" ;;
python) build_python "$work" ;;
postgres | rabbitmq | prometheus) build_service "$work" "$1" ;;
all)
    build_python "$work"
    for service in postgres rabbitmq prometheus; do
        build_service "$work" "$service"
    done
    ;;
*) die "usage: $0 base|python|postgres|rabbitmq|prometheus|all WORKDIR" ;;
esac
