#!/usr/bin/env python3
"""CPU per thread of the bridge and the brokers over a window, from /proc.

Beside each process's CPU it prints how long its threads were ready to run
but waited for a core (schedstat), and the machine's idle, I/O-wait and
steal time: together they tell a copy bound by the cores from one bound by
waiting.

Used for "Where the time goes" (benches/analysis.md): run it beside a copy,
for example `benches/thread_cpu.py --seconds 10 --wait` while the harness runs
`--only-bridge`. Processes are found by their command lines: the bridge's
binary name, and the `-Dbridge.component=NAME@DIR` markers that
scripts/brokers.sh puts on each java command line. Threads with the same name
(digits stripped, so `SendMessageThread_3` counts with `_1`) are summed.

    benches/thread_cpu.py [--seconds S] [--wait] [--after S] [--top N]

--wait first waits (up to 10 minutes) until a bridge process is running and
using CPU, and --after S more seconds, so the window starts inside the copy
(past its restart scan and the JIT warm-up of freshly started brokers).
"""

import argparse
import os
import re
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
PROCESSES = {
    "bridge": lambda cmd: cmd and os.path.basename(cmd[0]) == "kafka-rocketmq-bridge" and "run" in cmd,
    "kafka": lambda cmd: any(a.startswith("-Dbridge.component=kafka") for a in cmd),
    "namesrv": lambda cmd: any(a.startswith("-Dbridge.component=namesrv") for a in cmd),
    "broker": lambda cmd: any(a.startswith("-Dbridge.component=broker") for a in cmd),
    # The benchmark harness (benches/pipeline.rs), which counts the copies.
    "harness": lambda cmd: cmd and os.path.basename(cmd[0]).startswith("pipeline-"),
}


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def find_processes():
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmd = command_line(entry)
            for label, matches in PROCESSES.items():
                if matches(cmd):
                    found.setdefault(label, []).append(int(entry))
    return found


def ticks(path):
    """utime + stime of a /proc stat file; the name may hold spaces."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run_queue_wait(pid):
    """Seconds the process's threads spent runnable, waiting for a core."""
    waited = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                waited += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waited / 1e9


def machine_times():
    """(total, idle, iowait, steal) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields[:8]), fields[3], fields[4], fields[7]


def thread_ticks(pid):
    threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return threads
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                waited_ns = int(f.read().split()[1])
            threads[(tid, name)] = (ticks(f"/proc/{pid}/task/{tid}/stat"), waited_ns)
        except (OSError, IndexError, ValueError):
            continue  # the thread ended
    return threads


def snapshot(processes):
    return {
        label: {pid: thread_ticks(pid) for pid in pids}
        for label, pids in processes.items()
    }


def wait_for_busy_bridge():
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pids = find_processes().get("bridge", [])
        for pid in pids:
            before = ticks(f"/proc/{pid}/stat")
            time.sleep(0.5)
            try:
                if ticks(f"/proc/{pid}/stat") - before >= 0.1 * TICKS:
                    return
            except OSError:
                continue
        time.sleep(0.2)
    sys.exit("no busy bridge process within 10 minutes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--after", type=float, default=0.0)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    if args.wait:
        wait_for_busy_bridge()
        time.sleep(args.after)
    processes = find_processes()
    if not processes:
        sys.exit("neither the bridge nor a broker of scripts/brokers.sh is running")
    waits = {label: sum(run_queue_wait(p) for p in pids) for label, pids in processes.items()}
    machine = machine_times()
    start, began = snapshot(processes), time.monotonic()
    time.sleep(args.seconds)
    end, wall = snapshot(processes), time.monotonic() - began
    machine = [b - a for a, b in zip(machine, machine_times())]
    for label, pids in processes.items():
        waits[label] = sum(run_queue_wait(p) for p in pids) - waits[label]
    total = max(machine[0], 1)
    print(f"CPU over {wall:.1f} s of wall time (1.00 = one core busy all the window; "
          "per thread: used/waited for a core); "
          f"machine: idle {machine[1] / total:.0%}, I/O wait {machine[2] / total:.0%}, steal {machine[3] / total:.0%}")
    for label in PROCESSES:
        per_name = {}
        for pid, threads in end.get(label, {}).items():
            for key, (used, waited) in threads.items():
                used0, waited0 = start[label].get(pid, {}).get(key, (0, 0))
                name = re.sub(r"[-_ ]?\d+$", "", key[1]) or key[1]
                cpu, wait = per_name.get(name, (0, 0))
                per_name[name] = (cpu + used - used0, wait + waited - waited0)
        if not per_name:
            continue
        total = sum(cpu for cpu, _ in per_name.values()) / TICKS / wall
        busiest = sorted(per_name.items(), key=lambda item: -item[1][0])[: args.top]
        # Per thread: cores used / cores' worth of time spent waiting for one.
        parts = ", ".join(
            f"{name} {cpu / TICKS / wall:.2f}/{wait / 1e9 / wall:.2f}"
            for name, (cpu, wait) in busiest
            if cpu
        )
        print(f"{label}: {total:.2f} cores, waited for a core {waits[label] / wall:.2f}; {parts}")


if __name__ == "__main__":
    main()
