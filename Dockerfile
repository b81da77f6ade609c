# syntax=docker/dockerfile:1.7
# bizfed: one image for `bizfed serve` (the default) and the one-shot `bizfed seed`.
# Built by .github/workflows/release.yml; policies checked offline by tests/deploy/test_container.py.

# --- builder: wheels for bizfed and every dependency (compilers live only here) ---
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Headers in case a dependency has no wheel for this platform and must compile (pyodbc needs unixODBC's).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential unixodbc-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
RUN pip wheel --wheel-dir /wheels /src

# --- runtime: Python, unixODBC + the MariaDB ODBC driver, the wheels; no build tools ---
FROM python:3.11.13-slim-bookworm AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="bizfed" \
      org.opencontainers.image.description="One REST API over the Warehouse, Sales and Accounting systems" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/bizfed/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    BIZFED_PORT=8000

# Debian's packages, unpinned on purpose: the base tag pins the release and security updates should land.
# The driver's postinst registers "MariaDB Unicode" when odbcinst is already configured; register it
# explicitly otherwise, and fail the build if unixODBC does not know it (BIZFED_ACCOUNTING_ODBC names it).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends unixodbc odbc-mariadb \
 && (odbcinst -q -d -n "MariaDB Unicode" >/dev/null 2>&1 \
     || odbcinst -i -d -f /usr/share/odbc-mariadb/odbcinst.ini.template) \
 && odbcinst -q -d -n "MariaDB Unicode" \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 bizfed \
 && useradd --system --uid 10001 --gid bizfed --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin bizfed

# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/bizfed \
 && /opt/bizfed/bin/pip install --no-index --find-links=/wheels bizfed \
 && /opt/bizfed/bin/python -c "import pyodbc, api.app"

COPY --chmod=0755 deploy/container/serve.py /usr/local/bin/bizfed-serve

# Numeric, so Kubernetes' runAsNonRoot can verify it; the process writes only to /tmp.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
STOPSIGNAL SIGTERM

HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('BIZFED_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health/live', timeout=2).status == 200 else 1)"]

# bizfed serve --host 0.0.0.0 --port $BIZFED_PORT --workers <CPUs granted, or $BIZFED_WORKERS>
CMD ["bizfed-serve"]
