# syntax=docker/dockerfile:1
# Multi-stage build: the official Rust image builds, a slim Debian runs.

FROM rust:1.95 AS builder
WORKDIR /src
# librdkafka is built from source by the rdkafka crate (no cmake needed);
# OpenSSL headers come with the rust image.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY src ./src
# Cargo.toml names the benchmark target; cargo wants its file present.
COPY benches ./benches
# Line tables are for profiling builds; the image keeps symbols (function
# names in backtraces) and sheds the rest: 236 MB -> 49 MB.
RUN cargo build --release --locked --bin kafka-rocketmq-bridge \
    && strip --strip-debug target/release/kafka-rocketmq-bridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bridge
COPY --from=builder /src/target/release/kafka-rocketmq-bridge /usr/local/bin/kafka-rocketmq-bridge
COPY config/example.yaml /etc/kafka-rocketmq-bridge/example.yaml
USER 10001
# Prometheus metrics and health endpoints (metrics.listen).
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
ENTRYPOINT ["kafka-rocketmq-bridge"]
CMD ["run", "--config", "/etc/kafka-rocketmq-bridge/bridge.yaml"]
