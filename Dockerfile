# syntax=docker/dockerfile:1
# ghlsync: multi-stage build. The builder compiles a release binary from the
# locked dependency set; the runtime image holds only that binary, CA
# certificates and a non-root user.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

# cargo-chef, in the one toolchain every build stage shares (a different
# Rust version between stages would defeat the dependency cache).
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
RUN cargo install cargo-chef --locked
WORKDIR /build

# The recipe: the workspace's manifests and lock file, with every member
# (the product, crates/ghlsync-sim) and every target (binary, library,
# benchmarks) reduced to what building the dependencies needs, whatever the
# list of targets is. Its content changes only when those change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Dependencies first, from the recipe alone, so source edits do not rebuild
# them. The same package, binary and flags as the build below, so they are
# compiled with the same features and reused by it.
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p ghl-sync --bin ghlsync
# Then the workspace itself. benches/ comes along because the manifest names
# the benchmark targets and cargo checks that they exist (they are not
# built); tests/ is not needed (.dockerignore leaves it out).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY crates ./crates
COPY benches ./benches
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked -p ghl-sync --bin ghlsync \
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

# Numeric, so an orchestrator can check it is not root without reading
# /etc/passwd (Kubernetes' runAsNonRoot).
USER 10001:10001
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
