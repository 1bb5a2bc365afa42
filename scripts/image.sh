#!/usr/bin/env bash
# The container image, built and run for real with podman (no Docker engine
# runs on these machines), against brokers of its own that require
# credentials:
#
#   scripts/image.sh          build the Dockerfile as shipped (its Rust stage
#                             compiles the bridge inside the container: about
#                             20 minutes from a cold cache), then check the image
#   scripts/image.sh --fast   build only the Dockerfile's runtime stage, with the
#                             binary built here in its place (what CI runs: about
#                             2 minutes), then the same checks
#
# The checks: the README's `docker run` line copies records (read back and
# compared with Kafka); the HEALTHCHECK passes (`podman healthcheck run`);
# the process runs as the non-root user 10001; secrets given by environment
# variable and by `*_file` work and never reach the logs; SIGTERM drains and
# exits 0; a bad config mounted in fails with the same located error as the
# binary, and a non-zero exit.
#
# No image registry is reachable, so the base images are made here and kept
# in podman's store: debian:bookworm-slim from `debootstrap --variant=minbase`
# (cached as a tarball outside the checkout) and, for the full build,
# rust:1.95 from that plus this machine's Rust toolchain.
#
# Environment: BRIDGE_IMAGE_KAFKA_PORT [39092], BRIDGE_IMAGE_NAMESRV_PORT [39876],
# BRIDGE_IMAGE_BROKER_PORT [40911] (its brokers' ports), BRIDGE_IMAGE_RECORDS [2000].
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"

MODE=full
case "${1:-}" in
    --fast) MODE=fast ;;
    "") ;;
    *) echo "usage: scripts/image.sh [--fast]" >&2; exit 2 ;;
esac

CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}
IMAGE=localhost/kafka-rocketmq-bridge:test
NAME=kafka-rocketmq-bridge-image-test
RECORDS=${BRIDGE_IMAGE_RECORDS:-2000}
WORK=$(mktemp -d)
# The README's port: the HEALTHCHECK calls it, and the container shares the host's network.
METRICS_PORT=9464

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

require_build_tools
require_java_and_maven
require_container_tools

# Podman as it works here (../docs and README, "The container image"): runc
# with cgroupfs, and no default ulimits (setting RLIMIT_NOFILE is refused).
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF=$WORK/containers.conf
# Without systemd, podman cannot schedule the HEALTHCHECK's timer and says so
# on every start and stop; `podman healthcheck run` runs it on demand.
podman() {
    command podman --runtime runc --cgroup-manager cgroupfs "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}
# A container's log, both streams, written before this returns: unfiltered
# (the filter above runs on its own and may write late), and `podman logs`
# adds no message of its own.
container_log() {
    command podman --runtime runc --cgroup-manager cgroupfs logs "$1"
}

export BRIDGE_KAFKA_PORT=${BRIDGE_IMAGE_KAFKA_PORT:-39092}
export BRIDGE_NAMESRV_PORT=${BRIDGE_IMAGE_NAMESRV_PORT:-39876}
export BRIDGE_BROKER_PORT=${BRIDGE_IMAGE_BROKER_PORT:-40911}
export BRIDGE_BROKERS_DIR=$WORK/brokers
KAFKA_PASSWORD="image-kafka-$RANDOM$RANDOM"
ROCKETMQ_SECRET="image-rocketmq-$RANDOM$RANDOM"
export BRIDGE_KAFKA_AUTH_USER="bridge:$KAFKA_PASSWORD"
export BRIDGE_BROKER_AUTH_USER="bridge:$ROCKETMQ_SECRET"

# One at a time: podman 4.3 removes none of several names if one is missing.
remove_containers() {
    local name
    for name in "$NAME" "$NAME-bad-config"; do
        podman rm -f "$name" >/dev/null 2>&1 || true
    done
}

cleanup() {
    remove_containers
    "$HERE/brokers.sh" clean >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# What a run that was killed before its cleanup left behind.
remove_containers

# ---- base images ------------------------------------------------------------

# Bump when debian_base makes a different image: an older one is replaced.
BASE_VERSION=2

debian_base() {
    local tag=docker.io/library/debian:bookworm-slim
    local tarball=$CACHE_DIR/images/bookworm-minbase-v$BASE_VERSION.tar
    if podman image exists "$tag" &&
        [ "$(podman image inspect --format '{{ index .Config.Labels "org.kafka-rocketmq-bridge.base" }}' "$tag")" = "$BASE_VERSION" ]; then
        return
    fi
    if [ ! -f "$tarball" ]; then
        step "debootstrap --variant=minbase bookworm (once; cached in $tarball)"
        mkdir -p "$CACHE_DIR/images"
        local rootfs=$WORK/rootfs
        debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
            { tail -n 20 "$WORK/debootstrap.log"; fail "debootstrap"; }
        # What makes the official image "slim": no documentation, manuals or
        # package lists.
        rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
            "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
        # As the official image does: apt deletes the packages it downloaded,
        # so that `apt-get install` in a Dockerfile leaves no .deb behind.
        cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
        tar -C "$rootfs" -c . >"$tarball.tmp" && mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    step "importing $tag from $tarball"
    podman import --quiet --change "LABEL org.kafka-rocketmq-bridge.base=$BASE_VERSION" "$tarball" "$tag" >/dev/null
    # The builder image was made from the old base: make it again.
    podman rmi -f docker.io/library/rust:1.95 >/dev/null 2>&1 || true
}

# rust:1.95 as the Dockerfile's builder stage expects it: Debian with a C
# toolchain and OpenSSL's headers, cargo and rustc on PATH.
rust_base() {
    local tag=docker.io/library/rust:1.95
    podman image exists "$tag" && return
    local toolchain
    toolchain=$(dirname "$(dirname "$(rustup which rustc)")")
    "$toolchain/bin/rustc" --version | grep -q '^rustc 1\.95\.' ||
        fail "this machine's toolchain at $toolchain is not Rust 1.95"
    step "building $tag from debian:bookworm-slim and $toolchain"
    local context=$WORK/rust-context
    mkdir -p "$context/toolchain"
    # Not share/ (documentation): bin, lib, libexec and etc are the compiler.
    cp -a "$toolchain/bin" "$toolchain/lib" "$toolchain/libexec" "$toolchain/etc" "$context/toolchain/" 2>/dev/null ||
        cp -a "$toolchain/bin" "$toolchain/lib" "$context/toolchain/"
    # This machine's own certificate authorities: behind a TLS-inspecting
    # proxy, cargo in the builder stage reaches crates.io only with them.
    mkdir -p "$context/local-ca"
    cp /usr/local/share/ca-certificates/*.crt "$context/local-ca/" 2>/dev/null || true
    cat >"$context/Containerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ make pkg-config libssl-dev libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY toolchain /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
    podman build --network host -t "$tag" "$context" >"$WORK/rust-base.log" 2>&1 ||
        { tail -n 30 "$WORK/rust-base.log"; fail "building $tag"; }
}

# ---- the image ----------------------------------------------------------------

build_full() {
    rust_base
    step "podman build --format docker -t $IMAGE . (the unchanged Dockerfile)"
    local started=$SECONDS
    podman build --format docker --network host -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log"; fail "podman build"; }
    echo "built in $((SECONDS - started)) s"
    # The builder stage stays behind as an untagged image of about 4 GB.
    podman image prune --force >/dev/null
}

# Where cargo puts its builds: target/ unless CARGO_TARGET_DIR says otherwise.
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}

# The Dockerfile's last stage, its one `COPY --from=builder` of the binary
# replaced by the binary built here: the runtime image as shipped, in minutes.
build_fast() {
    step "cargo build --locked --bins"
    cargo build --locked --bins
    local context=$WORK/runtime-context
    mkdir -p "$context/config"
    cp "$TARGET_DIR/debug/kafka-rocketmq-bridge" "$context/"
    cp config/example.yaml "$context/config/"
    awk '/^FROM /{stage=$0; lines=""} {lines = lines $0 "\n"} END {printf "%s", lines}' Dockerfile |
        sed 's#^COPY --from=builder /src/target/release/kafka-rocketmq-bridge #COPY kafka-rocketmq-bridge #' \
            >"$context/Containerfile"
    grep -q '^COPY kafka-rocketmq-bridge ' "$context/Containerfile" ||
        fail "the Dockerfile's last stage no longer copies the binary from the builder stage: update build_fast"
    step "podman build --format docker: the Dockerfile's runtime stage with target/debug/kafka-rocketmq-bridge"
    local started=$SECONDS
    podman build --format docker --network host -t "$IMAGE" "$context" >"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log"; fail "podman build"; }
    echo "built in $((SECONDS - started)) s"
}

debian_base
if [ "$MODE" = full ]; then build_full; else build_fast; fi
cargo build --locked --bins >/dev/null 2>&1 || cargo build --locked --bins
BIN=$TARGET_DIR/debug
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1024 / 1024)) MiB"

# ---- brokers that require credentials -------------------------------------------

step "brokers of its own, with SASL/SCRAM (Kafka) and ACL (RocketMQ) on"
"$HERE/brokers.sh" start >/dev/null
TOPIC=image.orders RMQ_TOPIC=image_orders
SECRETS=$WORK/secrets
mkdir -p "$SECRETS"
printf '%s\n' bridge >"$SECRETS/rocketmq-access-key"
printf '%s\n' "$ROCKETMQ_SECRET" >"$SECRETS/rocketmq-secret-key"
# The container runs as 10001: the mounted secrets must be readable to it.
chmod 0755 "$SECRETS" && chmod 0644 "$SECRETS"/*
# One config for both sides: only the secrets' folder differs.
write_config() {
    cat >"$1" <<EOF
kafka:
  bootstrap_servers: "127.0.0.1:$BRIDGE_KAFKA_PORT"
  group_id: "image-test"
  properties:
    security.protocol: "SASL_PLAINTEXT"
    sasl.mechanism: "SCRAM-SHA-256"
    sasl.username: "bridge"
    sasl.password: "\${KAFKA_PASSWORD}"
rocketmq:
  name_server: "127.0.0.1:$BRIDGE_NAMESRV_PORT"
  producer_group: "image-test"
  access_key_file: "$2/rocketmq-access-key"
  secret_key_file: "$2/rocketmq-secret-key"
mappings:
  - kafka_topic: "$TOPIC"
    rocketmq_topic: "$RMQ_TOPIC"
metrics:
  listen: "127.0.0.1:$METRICS_PORT"
EOF
}
write_config "$WORK/bridge.yaml" /run/secrets/kafka-rocketmq-bridge
write_config "$WORK/host.yaml" "$SECRETS"
export KAFKA_PASSWORD
"$BIN/kafka-rocketmq-bridge" create-topics --config "$WORK/host.yaml" --partitions 4 --queues 4 >/dev/null
"$BIN/demo-traffic" --config "$WORK/host.yaml" produce --records "$RECORDS"

# ---- the README's docker run line -----------------------------------------------

step "podman run: the README's docker run line (with --network host for -p, and the secrets mounted)"
podman run -d --name "$NAME" --network host \
    -v "$WORK/bridge.yaml:/etc/kafka-rocketmq-bridge/bridge.yaml:ro" \
    -v "$SECRETS:/run/secrets/kafka-rocketmq-bridge:ro" \
    -e KAFKA_PASSWORD "$IMAGE" >/dev/null
"$BIN/demo-traffic" --config "$WORK/host.yaml" compare --wait-seconds 120 ||
    { container_log "$NAME" 2>&1 | tail -n 40; fail "the container did not copy the records"; }

step "HEALTHCHECK (podman healthcheck run)"
health=unknown
for _ in $(seq 1 30); do
    if podman healthcheck run "$NAME" >/dev/null 2>&1; then health=healthy; break; fi
    sleep 1
done
[ "$health" = healthy ] || fail "the HEALTHCHECK never passed: $(podman healthcheck run "$NAME" 2>&1)"
echo "healthy"

step "the process runs as the image's non-root user"
uid=$(podman exec "$NAME" id -u)
[ "$uid" = 10001 ] || fail "the bridge runs as uid $uid, not 10001"
echo "uid $uid"

step "no secret in the container's logs"
container_log "$NAME" >"$WORK/container.log" 2>&1
for secret in "$KAFKA_PASSWORD" "$ROCKETMQ_SECRET"; do
    if grep -qF "$secret" "$WORK/container.log"; then fail "a secret appears in the container's log"; fi
done
echo "none"

step "SIGTERM (podman stop): drain, commit, exit 0"
podman stop --time 60 "$NAME" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
container_log "$NAME" >"$WORK/container.log" 2>&1
[ "$code" = 0 ] || { tail -n 20 "$WORK/container.log"; fail "exit code $code after SIGTERM"; }
grep -q "final commit done" "$WORK/container.log" || { tail -n 20 "$WORK/container.log"; fail "no final commit in the log"; }
echo "exit 0, $(grep -c 'final commit done' "$WORK/container.log") final commit"

step "a bad config mounted in: the binary's located error, and a non-zero exit"
BAD=tests/bad-configs/05-unknown-key-did-you-mean.yaml
set +e
"$BIN/kafka-rocketmq-bridge" run --config "$BAD" 2>"$WORK/host-error.txt" >/dev/null
host_code=$?
# The container's own stderr, from its log: what `podman run` prints mixes
# in podman's messages (about the HEALTHCHECK's timer, here).
podman create --name "$NAME-bad-config" --network host \
    -v "$REPO/$BAD:/etc/kafka-rocketmq-bridge/bridge.yaml:ro" "$IMAGE" >/dev/null
podman start "$NAME-bad-config" >/dev/null
image_code=$(podman wait "$NAME-bad-config")
container_log "$NAME-bad-config" 2>"$WORK/image-error.txt" >/dev/null
set -e
[ "$image_code" != 0 ] || fail "the image accepted $BAD"
[ "$image_code" = "$host_code" ] || fail "exit $image_code in the image, $host_code from the binary"
sed "s#$BAD#{file}#g" "$WORK/host-error.txt" >"$WORK/host-error.norm"
sed "s#/etc/kafka-rocketmq-bridge/bridge.yaml#{file}#g" "$WORK/image-error.txt" >"$WORK/image-error.norm"
diff -u "$WORK/host-error.norm" "$WORK/image-error.norm" || fail "the image's error differs from the binary's"
grep -q '{file}:' "$WORK/image-error.norm" || fail "the error does not name the file: $(cat "$WORK/image-error.txt")"
echo "exit $image_code: $(head -n 1 "$WORK/image-error.txt")"

echo
echo "Image checks passed ($MODE build): $IMAGE, $((size / 1024 / 1024)) MiB"
