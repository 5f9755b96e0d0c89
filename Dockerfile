# meetsync's image: small, non-root, `meetsync` as its entry point (docs/deploying.md, "Running
# on several hosts"; compose.yaml uses it).
#
#   docker build -t meetsync .                    # on python:3.12-slim; wheels built here
#   docker run --rm meetsync --version
#   docker run --rm -p 8000:8000 -e REDIS_URL=... -e MEETSYNC_DB=postgresql://... meetsync serve
#
# Two stages: the builder makes a wheel of meetsync and of each dependency (`pip wheel`), the
# final stage installs from that wheelhouse only (`--no-index`: no network), into a virtual
# environment, so the image holds no compiler, no pip cache, no wheels, and no pip. (The
# wheelhouse is bind-mounted from the builder: Docker's BuildKit, its default builder since
# Docker 23, or buildah.)
#
# Build arguments:
#   BASE        the base image of both stages: a Debian-based one with python3 and its venv
#               module (default: the official python:3.12-slim).
#   WHEELHOUSE  a directory of the build context that already holds the wheels (meetsync's and
#               every dependency's, for the base's Python): the builder copies it instead of
#               running `pip wheel` (a build without access to the package index;
#               scripts/image_check.sh builds it this way).
ARG BASE=python:3.12-slim

FROM ${BASE} AS builder
ARG WHEELHOUSE=""
COPY . /src
RUN if [ -n "$WHEELHOUSE" ]; then \
        cp -r "/src/$WHEELHOUSE" /wheels; \
    else \
        python3 -m pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels /src; \
    fi \
    && ls /wheels/meetsync-*.whl >/dev/null

FROM ${BASE}
ENV PATH=/opt/meetsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheelhouse is mounted for this one step, never copied into a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python3 -m venv /opt/meetsync \
    && /opt/meetsync/bin/python -m pip install --no-cache-dir --no-index --find-links=/wheels \
        meetsync \
    && /opt/meetsync/bin/python -m pip uninstall --yes --quiet setuptools pip \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/meetsync --create-home \
        --shell /usr/sbin/nologin meetsync
USER meetsync
# A SQLite mirror (the default ./meetsync.db) lands here; several hosts use PostgreSQL instead.
WORKDIR /var/lib/meetsync
EXPOSE 8000
ENTRYPOINT ["meetsync"]
CMD ["serve"]
