#!/usr/bin/env python3
"""Compare wren-broker with Mosquitto (and rumqttd) using a load generator that is not ours.

The generator is `mqtt-benchmark` from crates.io (`cargo install mqtt-benchmark`; written by
someone else on rumqttc): C clients, each publishing N messages at a QoS to its own topic
`test/<i>` as fast as rumqttc's in-flight window (100) lets it, no subscribers. It reports the
messages published per second from the first connect to the last publish handed to the client,
which at QoS 1 and 2 is paced by the broker's acknowledgements and at QoS 0 mostly by the client.

With `--subscriber`, floods (10 clients x 100,000 messages of 5 bytes) also go to one
`mosquitto_sub -t 'test/#'` (Debian's mosquitto-clients, another independent client) at the same
QoS, and the table shows how many of the million it received and at what rate, from the first
publish to the last delivery: a fan-in measured entirely with tools that are not ours.

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

SUBSCRIBED_JOBS = [(0, 10, 100_000), (1, 10, 100_000), (2, 10, 100_000)]

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


def run_with_subscriber(tool, broker, tmp, qos, clients, per_client, sub_tool):
    """One flood on a fresh broker with one mosquitto_sub on test/#: (publish rate, messages
    delivered, delivery rate from the first publish to the last delivery), or None. The
    subscriber writes one line per message to a file (a pipe to this script would pace it)."""
    import time

    proc, port = broker.start(tmp)
    out_path = os.path.join(tmp, "sub.out")
    with open(out_path, "wb") as out:
        sub = subprocess.Popen([sub_tool, "-p", str(port), "-t", "test/#", "-q", str(qos), "-F", "%t"],
                               stdout=out, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # subscribed
        t0 = time.time()
        cmd = [tool, "-b", f"127.0.0.1:{port}", "-q", str(qos), "-C", str(clients),
               "-s", str(per_client), "-P", "hello"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        m = TOTAL.search(res.stdout)
        if res.returncode != 0 or not m:
            print(f"  ! {broker.name} q{qos} with subscriber: exit {res.returncode}", file=sys.stderr)
            return None
        # Deliveries go on after the last publish: wait until they stop for 3 s (at most 60 s).
        size, deadline = -1, time.monotonic() + 60
        while os.path.getsize(out_path) != size and time.monotonic() < deadline:
            size = os.path.getsize(out_path)
            time.sleep(3)
        last = os.path.getmtime(out_path)
        with open(out_path, "rb") as f:
            delivered = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return float(m.group(4)), delivered, delivered / max(last - t0, 1e-9)
    finally:
        sub.terminate()
        sub.wait()
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", default=shutil.which("mqtt-benchmark"), help="mqtt-benchmark binary")
    ap.add_argument("--wren", required=True, help="wren-broker binary")
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--rumqttd", default=shutil.which("rumqttd"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--subscriber", action="store_true",
                    help="run the floods with one mosquitto_sub receiving them instead")
    ap.add_argument("--sub-tool", default=shutil.which("mosquitto_sub") or "mosquitto_sub")
    a = ap.parse_args()
    if not a.tool:
        sys.exit("mqtt-benchmark not found: cargo install mqtt-benchmark (or pass --tool)")

    brokers = [wren_default(a.wren), mosquitto_default(a.mosquitto)]
    if a.rumqttd:
        brokers.append(rumqttd(a.rumqttd))
    names = [b.name for b in brokers]
    if a.subscriber:
        print_subscribed(a, brokers, names)
    else:
        print_publish_only(a, brokers, names)
    print(f"\n{a.reps} reps, median; mqtt-benchmark "
          f"{subprocess.run([a.tool, '-V'], capture_output=True, text=True).stdout.strip()}; "
          f"load average {os.getloadavg()[0]:.2f}")


def collect(reps, brokers, jobs, run):
    """Every job on every broker in turns, `reps` times: {(job, broker name): [results]}."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="wren-independent-") as tmp:
        for rep in range(reps):
            for job in jobs:
                for b in brokers:
                    r = run(b, tmp, *job)
                    if r:
                        results.setdefault((job, b.name), []).append(r)
            print(f"rep {rep + 1}/{reps} done", file=sys.stderr)
    return results


def print_publish_only(a, brokers, names):
    results = collect(a.reps, brokers, JOBS, lambda b, tmp, *job: run_one(a.tool, b, tmp, *job))
    others = names[1:]
    head = ["QoS", "clients x messages"] + [f"{n} msg/s" for n in names] + \
        [f"{n} CPU s" for n in names] + [f"wren / {n}" for n in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for job in JOBS:
        qos, clients, per_client = job
        rate = {n: statistics.median([r[0] for r in results.get((job, n), [])] or [0]) for n in names}
        cpu = {n: statistics.median([r[1] for r in results.get((job, n), [])] or [0]) for n in names}
        row = [str(qos), f"{clients} x {per_client:,}"] + [fmt(rate[n]) for n in names] + \
            [f"{cpu[n]:.2f}" for n in names] + \
            [f"{rate['wren'] / rate[n]:.2f}x" if rate[n] else "-" for n in others]
        print("| " + " | ".join(row) + " |")


def print_subscribed(a, brokers, names):
    results = collect(a.reps, brokers, SUBSCRIBED_JOBS,
                      lambda b, tmp, *job: run_with_subscriber(a.tool, b, tmp, *job, a.sub_tool))
    print("With one mosquitto_sub on test/# (10 publishers x 100,000 messages; medians):\n")
    head = ["QoS"] + [f"{n} delivered" for n in names] + [f"{n} delivered/s" for n in names] + \
        [f"{n} published/s" for n in names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for job in SUBSCRIBED_JOBS:
        qos = job[0]
        med = {n: [statistics.median([r[i] for r in results.get((job, n), [])] or [0])
                   for i in range(3)] for n in names}
        row = [str(qos)] + [fmt(med[n][1]) for n in names] + [fmt(med[n][2]) for n in names] + \
            [fmt(med[n][0]) for n in names]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
