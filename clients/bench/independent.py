#!/usr/bin/env python3
"""Compare wren-broker with Mosquitto (and rumqttd) using a load generator that is not ours.

The generator is `mqtt-benchmark` from crates.io (`cargo install mqtt-benchmark`; written by
someone else on rumqttc): C clients, each publishing N messages at a QoS to its own topic
`test/<i>` as fast as rumqttc's in-flight window (100) lets it, no subscribers. It reports the
messages published per second from the first connect to the last publish handed to the client,
which at QoS 1 and 2 is paced by the broker's acknowledgements and at QoS 0 mostly by the client.

Every broker runs with its *default* settings, as a new user would start it (wren-broker with no
config file; Mosquitto with only a loopback listener and anonymous access; rumqttd with
clients/bench/rumqttd.toml, as it needs a config file), freshly started for every run; the
brokers take turns and the table shows medians and the ratios of the medians, with the broker's
CPU time per run (user + system, from /proc).

    python3 clients/bench/independent.py --wren target/release/wren-broker [--reps 3]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from compare import Broker, fmt, rumqttd, stop

JOBS = [
    # (QoS, clients, messages per client): a million messages each.
    (0, 10, 100_000),
    (0, 100, 10_000),
    (1, 10, 100_000),
    (1, 100, 10_000),
    (2, 10, 100_000),
    (2, 100, 10_000),
]

TOTAL = re.compile(r"(\d+) client, total: (\d+), duration: ([\d.]+) \(sec\), avg speed: ([\d.]+)")


def wren_default(binary):
    return Broker("wren", lambda port, tmp, inflight: [binary, "-p", str(port), "--bind", "127.0.0.1"])


def mosquitto_default(binary):
    def cmd(port, tmp, inflight):
        conf = os.path.join(tmp, "mosquitto-default.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        return [binary, "-c", conf]

    return Broker("mosquitto", cmd)


def cpu_seconds(pid):
    """User + system CPU time of a process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(tool, broker, tmp, qos, clients, per_client):
    """One run on a fresh broker: (messages/s, broker CPU seconds), or None if it failed."""
    proc, port = broker.start(tmp)
    try:
        before = cpu_seconds(proc.pid)
        cmd = [tool, "-b", f"127.0.0.1:{port}", "-q", str(qos), "-C", str(clients),
               "-s", str(per_client)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        cpu = cpu_seconds(proc.pid) - before
        m = TOTAL.search(res.stdout)
        if res.returncode != 0 or not m or int(m.group(2)) != clients * per_client:
            tail = (res.stdout + res.stderr).strip()[-300:]
            print(f"  ! {broker.name} q{qos} c{clients}: exit {res.returncode}: {tail}", file=sys.stderr)
            return None
        return float(m.group(4)), cpu
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", default=shutil.which("mqtt-benchmark"), help="mqtt-benchmark binary")
    ap.add_argument("--wren", required=True, help="wren-broker binary")
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--rumqttd", default=shutil.which("rumqttd"))
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if not a.tool:
        sys.exit("mqtt-benchmark not found: cargo install mqtt-benchmark (or pass --tool)")

    brokers = [wren_default(a.wren), mosquitto_default(a.mosquitto)]
    if a.rumqttd:
        brokers.append(rumqttd(a.rumqttd))
    results = {}
    with tempfile.TemporaryDirectory(prefix="wren-independent-") as tmp:
        for rep in range(a.reps):
            for qos, clients, per_client in JOBS:
                for b in brokers:
                    r = run_one(a.tool, b, tmp, qos, clients, per_client)
                    if r:
                        results.setdefault((qos, clients, b.name), []).append(r)
            print(f"rep {rep + 1}/{a.reps} done", file=sys.stderr)

    names = [b.name for b in brokers]
    others = names[1:]
    head = ["QoS", "clients x messages"] + [f"{n} msg/s" for n in names] + \
        [f"{n} CPU s" for n in names] + [f"wren / {n}" for n in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for qos, clients, per_client in JOBS:
        rate = {n: statistics.median([r[0] for r in results.get((qos, clients, n), [])] or [0]) for n in names}
        cpu = {n: statistics.median([r[1] for r in results.get((qos, clients, n), [])] or [0]) for n in names}
        row = [str(qos), f"{clients} x {per_client:,}"] + [fmt(rate[n]) for n in names] + \
            [f"{cpu[n]:.2f}" for n in names] + \
            [f"{rate['wren'] / rate[n]:.2f}x" if rate[n] else "-" for n in others]
        print("| " + " | ".join(row) + " |")
    print(f"\n{a.reps} reps, median; mqtt-benchmark {subprocess.run([a.tool, '-V'], capture_output=True, text=True).stdout.strip()}; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
