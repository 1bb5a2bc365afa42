#!/usr/bin/env bash
# Draws the throughput chart (PNG) from the harness's CSV with matplotlib,
# installed into a virtualenv in the cache on first use.
#   scripts/bench_chart.sh CSV PNG
set -euo pipefail
csv=$1
png=$2
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}
venv=$CACHE_DIR/plot-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib into $venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'matplotlib>=3.8,<4'
fi
"$venv/bin/python" - "$csv" "$png" <<'PY'
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

source, target = sys.argv[1], sys.argv[2]
with open(source) as f:
    rows = list(csv.DictReader(f))
names = [r["what"] for r in rows]
rates = [float(r["records_per_second"]) for r in rows]
colors = ["#9e9e9e" if "ceiling" in n else "#c62828" if "naive" in n else "#1565c0" for n in names]
fig, ax = plt.subplots(figsize=(8, 3.6), dpi=120)
bars = ax.barh(names[::-1], rates[::-1], color=colors[::-1])
ax.bar_label(bars, labels=[f"{r:,.0f}/s" for r in rates[::-1]], padding=3, fontsize=8)
ax.set_xscale("log")
ax.set_xlabel("records per second (median, log scale)")
ax.set_title("kafka-rocketmq-bridge throughput against the ceilings")
ax.set_xlim(min(rates) / 2 if rates else 1, max(rates) * 4 if rates else 10)
fig.tight_layout()
fig.savefig(target)
PY
