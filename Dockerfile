# Keelwatch server image. Build from the repository root:
#   docker build -t ghcr.io/keelwatch/keelwatch:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid/gid: the Kubernetes manifests run as 10001 too.
RUN groupadd --system --gid 10001 keelwatch \
    && useradd --system --uid 10001 --gid keelwatch --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin keelwatch \
    && mkdir -p /data \
    && chown keelwatch:keelwatch /data

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
# Compiled at install time, so a read-only root filesystem needs no __pycache__ writes.
RUN pip install . \
    && rm -rf /build

WORKDIR /data
USER 10001:10001

# HTTP (API, /ingest, _bulk, OTLP, HEC, Loki), Fluent forward, syslog TCP+UDP, syslog TLS,
# Lumberjack. Ports below 1024 need a capability the container does not have.
EXPOSE 8080/tcp 24224/tcp 5140/tcp 5140/udp 6514/tcp 5044/tcp

ENTRYPOINT ["keelwatch"]
CMD ["serve", "--data", "/data", "--host", "0.0.0.0", "--port", "8080"]
