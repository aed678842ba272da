# fenqi: one image with both binaries, fenqid (the service, the default
# command) and fenqictl (the operator's tool; docker-compose.yml runs its
# simulator from this image too).
#
#   docker build -t fenqi:dev .
#   docker run --rm -p 8080:8080 -e FENQI_HTTP_ADDR=:8080 -e FENQI_ADMIN_TOKEN=… \
#     -e FENQI_KAFKA_BROKERS=… -e FENQI_REDIS_ADDR=… fenqi:dev
# (fenqid's admin listener defaults to 127.0.0.1:8080, unreachable from outside
# the container; on :8080 it refuses to start without an admin token.)
#   docker run --rm fenqi:dev fenqictl --help

# ---- build -------------------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries (no cgo), no VCS stamping (the context has no .git).
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
RUN go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/fenqid ./cmd/fenqictl

# ---- run ---------------------------------------------------------------------
# debian:bookworm-slim rather than distroless: the image carries curl, so that
# the orchestrator can probe GET /healthz (docker-compose.yml does) without
# fenqid growing a healthcheck subcommand. ca-certificates for TLS brokers.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fenqi \
 && useradd --system --uid 10001 --gid fenqi --home-dir /var/lib/fenqi --create-home --shell /usr/sbin/nologin fenqi
COPY --from=build /out/fenqid /out/fenqictl /usr/local/bin/
# Non-root; the working directory is the user's own, so that the relative
# default -data-dir of `fenqid -embedded` is writable too.
USER 10001:10001
WORKDIR /var/lib/fenqi
# The admin listener (with FENQI_HTTP_ADDR=:8080 and a token): /healthz, /readyz and, once wired, /metrics.
EXPOSE 8080
CMD ["fenqid"]
