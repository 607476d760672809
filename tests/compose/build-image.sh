#!/usr/bin/env bash
# Builds the project's image from the real Dockerfile for `make test-compose` (issue 15),
# with what this machine's pip needs to reach its package index, found at run time and
# never written into the repository or the image:
#   - the CA bundle pip is told to use (PIP_CERT, else `pip config get global.cert`),
#     as the BuildKit secret `pip_cert` (mounted for the pip step only);
#   - the index URL (PIP_INDEX_URL, else `pip config get global.index-url`), as the build
#     argument of that name, only when one is set (default: PyPI).
# Local-path settings (file:// indexes, find-links folders) do not exist inside the build
# and are left out.
#
#   tests/compose/build-image.sh TAG [docker build options...]
#
# Uses Debian's client (/usr/bin/docker: BuildKit without buildx) and DOCKER_HOST.
set -o errexit -o pipefail -o nounset

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOCKER=${DOCKER:-/usr/bin/docker}
tag=${1:?usage: $0 TAG [docker build options...]}
shift

pip_setting() { python3 -m pip config get "$1" 2>/dev/null || true; }

args=()
cert=${PIP_CERT:-$(pip_setting global.cert)}
if [[ -n $cert && -s $cert ]]; then
    args+=(--secret "id=pip_cert,src=$cert")
fi
index=${PIP_INDEX_URL:-$(pip_setting global.index-url)}
if [[ -n $index && $index != file:* ]]; then
    args+=(--build-arg "PIP_INDEX_URL=$index")
fi

began=$(date +%s)
DOCKER_BUILDKIT=1 "$DOCKER" build "${args[@]}" -t "$tag" "$@" "$ROOT"
echo "build-image.sh: $tag built in $(($(date +%s) - began)) s" >&2
