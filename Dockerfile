# Build: docker build -t file-watcher .       (the image is file-watcher:latest; nobody publishes it)
# Run:   see the README's "Docker" section, or docker-compose.multi-instance.yaml.
#
# The base images are build arguments whose defaults are the pinned public images. With no
# registry at hand, any image with the same contents stands in (scripts/test-containers makes
# both from Debian packages):
#   docker build --build-arg RUST_IMAGE=my/rust:1.95.0 --build-arg RUNTIME_IMAGE=my/debian:12 .
# The toolchain the project is developed and tested with:
ARG RUST_IMAGE=rust:1.95.0-bookworm
# Debian 12, as the build stage (the binary links against its glibc):
ARG RUNTIME_IMAGE=debian:12.12-slim

# --- build -----------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src

# Dependencies first, in a layer of their own: it is rebuilt only when a manifest or the lock
# changes, not on every source edit. Cargo needs every member's manifest and, for each target a
# manifest names or implies, a file at the expected path; stubs stand in for the sources here.
COPY Cargo.toml Cargo.lock ./
COPY hasher/Cargo.toml hasher/
COPY publisher/Cargo.toml publisher/
COPY watcher/Cargo.toml watcher/
COPY benches/Cargo.toml benches/
RUN mkdir -p hasher/src publisher/src watcher/src benches/src benches/benches \
    && touch hasher/src/lib.rs publisher/src/lib.rs watcher/src/lib.rs benches/src/lib.rs \
    && echo 'fn main() {}' > watcher/src/main.rs \
    && for b in hashing publish pipeline; do echo 'fn main() {}' > "benches/benches/$b.rs"; done \
    && cargo build --release -p watcher --locked

# The real sources. COPY keeps the files' own mtimes, which can be older than the stub build:
# touch them so cargo rebuilds our crates (and only those).
COPY hasher/src hasher/src
COPY publisher/src publisher/src
COPY watcher/src watcher/src
RUN find hasher/src publisher/src watcher/src -name '*.rs' -exec touch {} + \
    && cargo build --release -p watcher --locked \
    && strip target/release/file-watcher \
    && target/release/file-watcher --version

# --- runtime ---------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# ca-certificates: the trust store for amqps:// brokers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 filewatcher \
    && useradd --system --uid 10001 --gid 10001 --no-log-init \
        --home-dir /var/lib/file-watcher --create-home --shell /usr/sbin/nologin filewatcher
COPY --from=build /src/target/release/file-watcher /usr/local/bin/file-watcher
# The process writes only STATE_DIR (the redb store, the instance lock and a generated
# INSTANCE_ID): mount a volume there so restarts reconcile instead of rediscovering everything.
# The rest of the filesystem can be mounted read-only (docker run --read-only).
ENV STATE_DIR=/var/lib/file-watcher \
    HTTP_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
VOLUME ["/var/lib/file-watcher"]
USER 10001:10001
EXPOSE 8080
# Asks /health/ready; no curl needed in the image. A long first scan does not make it fail,
# so the start period only covers opening the store and connecting to the broker.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/file-watcher", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/file-watcher"]
