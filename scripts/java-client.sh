#!/usr/bin/env bash
# Builds the Java dual-read helper and its example (clients/java) with Maven,
# when its sources changed, and prints the classpath to run them with:
#
#   java -cp "$(scripts/java-client.sh)" org.kafkarocketmqbridge.dualread.example.DualReadExample ...
#
# Dependencies go to the same Maven repository outside the checkout as the
# brokers' jars, so a fresh clone does not download them again.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"
require_java_and_maven >&2
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}
DIR=$REPO/clients/java
JAR=$DIR/target/dual-read-0.1.0.jar

stale() {
    [ ! -f "$JAR" ] || [ ! -d "$DIR/target/lib" ] ||
        [ -n "$(find "$DIR/pom.xml" "$DIR/src" -newer "$JAR" -print -quit)" ]
}

if stale; then
    mkdir -p "$CACHE_DIR/logs"
    log=$CACHE_DIR/logs/java-client.log
    echo "building the Java dual-read helper (clients/java; log: $log)" >&2
    if ! mvn -B -ntp -f "$DIR/pom.xml" -Dmaven.repo.local="$CACHE_DIR/maven-repository" \
        package dependency:copy-dependencies -DoutputDirectory=target/lib -DincludeScope=runtime \
        >"$log" 2>&1; then
        grep -E 'ERROR' "$log" | head -n 20 >&2 || true
        echo "error: Maven could not build clients/java; see $log" >&2
        exit 1
    fi
    touch "$JAR"
fi
echo "$JAR:$DIR/target/lib/*"
