# syntax=docker/dockerfile:1
# Build: docker build -t tracktion/file-watcher:latest .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p watcher --locked && strip target/release/file-watcher

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/file-watcher --create-home filewatcher
COPY --from=build /src/target/release/file-watcher /usr/local/bin/file-watcher
USER 10001
# State (the redb store, the instance lock and a generated INSTANCE_ID) lives here: mount a
# volume so restarts reconcile instead of rediscovering everything.
ENV STATE_DIR=/var/lib/file-watcher \
    HTTP_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
VOLUME ["/var/lib/file-watcher"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/file-watcher"]
