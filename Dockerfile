# One image for every Conveyor service; compose and Kubernetes pick the command
# (services/<name>/start.sh). Build: `docker compose build` or `docker build -t conveyor .`
# (BuildKit: the RUN --mount options below need it; Docker 23+ uses it by default).
#
# No `# syntax=docker/dockerfile:...` line, on purpose: it makes BuildKit pull that
# frontend image from Docker Hub before anything else, so the build would fail wherever
# Docker Hub is unreachable (air-gapped, a private registry mirror only) even with the
# base image at hand. Everything used here (RUN --mount=type=cache and type=secret) is
# in the frontend built into BuildKit since Docker 20.10.
#
# A site CA or package index for pip, when the network needs one (optional; the image
# holds neither): `docker build --secret id=pip_cert,src=/path/to/ca-bundle.pem
# --build-arg PIP_INDEX_URL=https://... .` The secret is mounted for the one pip step
# only and is in no layer; the argument exists only in the discarded build stage.

# Pinned to a patch release; CI should also pin the digest (python:3.12.12-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

# ---- build stage: a virtualenv with the dependencies, built where compilers may live ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the lock file alone (versions and hashes CI tested): editing
# the source does not invalidate this (slow) layer.
COPY requirements/main.lock ./
ARG PIP_INDEX_URL
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && pip install --require-hashes --no-deps -r main.lock

# ---- final stage: the venv and the source, no compilers, no pip cache, not root ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DJANGO_STATIC_ROOT=/app/static
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 conveyor \
 && useradd --system --uid 10001 --gid conveyor --home-dir /app --shell /usr/sbin/nologin conveyor \
 && mkdir -p /data/media /data/mail \
 && chown -R conveyor:conveyor /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Source owned by root and read-only to the service user: a compromised process
# cannot rewrite the code it runs.
COPY manage.py pyproject.toml ./
COPY config ./config
COPY conveyor ./conveyor
COPY services ./services
COPY demo ./demo
# Static files are part of the image (whitenoise serves them); the throwaway key and
# SQLite folder exist only for this build step.
RUN DJANGO_SECRET_KEY=collectstatic-only CONVEYOR_DATA_DIR=/tmp/collectstatic \
    python manage.py collectstatic --noinput -v0 \
 && rm -rf /tmp/collectstatic
USER 10001:10001
EXPOSE 8000
CMD ["services/web/start.sh"]
