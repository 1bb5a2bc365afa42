# Sourced by the scripts: checks what a fresh machine must have and installs what is missing,
# with apt-get as root, or stops with the exact command for a user who is not root.
#
#   require_build_tools        a C toolchain, pkg-config and OpenSSL's headers (the rdkafka
#                              crate builds librdkafka with `ssl`), python3
#   require_java_and_maven     Java 17 or newer and Maven, for the Apache brokers
#   require_operator_tools     Prometheus and promtool, headless Chromium with chromedriver,
#                              Node.js and npm: the tests of the alerts, the dashboard and
#                              the console run them for real
#   require_container_tools    podman, runc and debootstrap, to build and run the image
#   require_python_venv        python3 with venv and pip, for the Python dual-read example

prereq_log() { printf '[prerequisites] %s\n' "$*" >&2; }

# Installs Debian packages $@, or says how to.
apt_install() {
    if [ "$(id -u)" = 0 ]; then
        prereq_log "installing missing Debian packages: $*"
        # `update` once per run: a fresh machine's package lists may be empty or stale.
        if [ -z "${PREREQ_APT_UPDATED:-}" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
            PREREQ_APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
            { prereq_log "error: apt-get install $* failed"; exit 1; }
    else
        prereq_log "error: missing Debian packages: $*"
        prereq_log "install them with: sudo apt-get update && sudo apt-get install -y $*"
        exit 1
    fi
}

require_build_tools() {
    local missing=()
    command -v cc >/dev/null || missing+=(gcc)
    command -v c++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v python3 >/dev/null || missing+=(python3)
    command -v flock >/dev/null || missing+=(util-linux)
    # The rdkafka crate's `ssl` feature links OpenSSL through pkg-config.
    if ! { command -v pkg-config >/dev/null && pkg-config --exists openssl; }; then
        missing+=(libssl-dev)
    fi
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
    command -v cargo >/dev/null ||
        { prereq_log "error: cargo is not on PATH: install Rust 1.95 with rustup (https://rustup.rs)"; exit 1; }
}

# The major version of the `java` on PATH, or 0.
java_major() {
    command -v java >/dev/null || { echo 0; return; }
    java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

require_java_and_maven() {
    local missing=()
    command -v python3 >/dev/null || missing+=(python3)
    command -v flock >/dev/null || missing+=(util-linux)
    [ "$(java_major)" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || missing+=(maven)
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
    [ "$(java_major)" -ge 17 ] 2>/dev/null ||
        { prereq_log "error: the brokers need Java 17 or newer; 'java -version' says $(java -version 2>&1 | head -n 1)"; exit 1; }
}

require_operator_tools() {
    local missing=()
    { [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || missing+=(prometheus)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

require_container_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

require_python_venv() {
    command -v python3 >/dev/null || apt_install python3
    # Debian's own python3 keeps venv's pip bootstrap in a separate package.
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}
