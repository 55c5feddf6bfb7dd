# syntax=docker/dockerfile:1
# ghlsync: multi-stage build. The builder compiles a release binary from the
# locked dependency set; the runtime image holds only that binary, CA
# certificates and a non-root user.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /build
# Dependencies first, so source edits do not rebuild them. Cargo checks
# that every target in the manifest exists, so each benchmark gets a stub
# too (they are never built here).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for bench in ghl_rate_limit engine_throughput sync_economy webhook_latency; do \
         echo 'fn main() {}' > "benches/$bench.rs"; done \
    && cargo build --release --locked \
    && rm -rf src
COPY build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
# Touch the sources so cargo rebuilds the crate over the dependency stub.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -m 0755 target/release/ghlsync /usr/local/bin/ghlsync

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ghlsync \
    && useradd --system --uid 10001 --gid ghlsync --home-dir /var/lib/ghlsync \
       --shell /usr/sbin/nologin ghlsync \
    && install -d -o ghlsync -g ghlsync -m 0750 /var/lib/ghlsync \
    && install -d -m 0755 /etc/ghlsync
COPY --from=builder /usr/local/bin/ghlsync /usr/local/bin/ghlsync
COPY config/default.toml /usr/share/doc/ghlsync/default.toml
COPY config/example.toml /usr/share/doc/ghlsync/example.toml

USER ghlsync:ghlsync
WORKDIR /var/lib/ghlsync
VOLUME ["/var/lib/ghlsync"]
ENV GHLSYNC__STATE_DIR=/var/lib/ghlsync
# The HTTP server (webhooks, /healthz, /readyz, /metrics) must listen
# beyond the container's loopback to be reached; publish it with -p 8686:8686.
ENV GHLSYNC__SERVER__BIND=0.0.0.0:8686
EXPOSE 8686
# `ghlsync healthcheck` asks /readyz itself: no curl in the image.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["ghlsync", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ghlsync"]
# The daemon; it migrates the mirror store at start-up. SIGTERM lets the
# writes in flight finish within sync.shutdown_grace (keep Docker's stop
# timeout above it: `docker stop -t 30`).
CMD ["run"]
