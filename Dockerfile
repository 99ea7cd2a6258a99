# syntax=docker/dockerfile:1
# One image for `agentadapter serve`, `agentadapter worker` and every other command.
#
#   docker build -t agentadapter .                                       # server, PostgreSQL, Redis, Celery
#   docker build --build-arg EXTRAS=server,postgres,redis,celery,otel -t agentadapter .
#   docker build --build-arg BASE_IMAGE=registry.example.com/python:3.11-slim -t agentadapter .
#
# The builder stage builds the package's wheel and the wheels of its dependencies (compilers live
# there only); the runtime stage installs them from those wheels, offline, and runs as a non-root
# user. No secret is read at build time: configuration comes from the environment at run time.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder
ARG EXTRAS=server,postgres,redis,celery
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Compilers, for dependencies without a wheel for this platform; they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY src ./src
# The package's wheel, then every dependency of the chosen extras as wheels, at the pinned versions.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m pip wheel --wheel-dir /wheels --constraint requirements/constraints.txt \
       "$(ls /dist/agentadapter-*.whl)[${EXTRAS}]" \
    && cp /dist/agentadapter-*.whl /wheels/

# ---------------------------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime
ARG EXTRAS=server,postgres,redis,celery
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AGENTADAPTER_DATA_DIR=/data
RUN groupadd --system --gid 10001 agentadapter \
    && useradd --system --uid 10001 --gid agentadapter --home-dir /data --shell /usr/sbin/nologin agentadapter \
    && mkdir -p /data && chown agentadapter:agentadapter /data
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels "agentadapter[${EXTRAS}]"
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# Readiness, not just liveness: a draining instance (SIGTERM) answers 503 and is reported unhealthy.
# Workers run the same image: their compose service turns this check off (they serve no HTTP).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["agentadapter"]
# Migrations run once, before the servers start (compose's `migrate` service, or a Kubernetes Job).
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
