#!/usr/bin/env python3
"""Compare wren-broker, Mosquitto and rumqttd with wren-bench, alternately, in one run.

Run through compare.sh, which builds the binaries first. Every measurement gets a freshly
started broker on its own loopback port (so no run inherits another's memory or sessions), and
the brokers take turns: rep 1 runs job 1 on A, B, C, then job 2 on A, B, C, ...; the table
shows the median of the reps.

The generator's setting (`--threads`, default "1,2,1s") is part of the measuring stick, and no
one setting is fair to every broker on a small machine: with 2 cores, a 2-thread generator leaves
a single-threaded broker sharing its core with generator threads, and a 1-thread generator cannot
use a second core a CPU-bound broker leaves free; a sleeping generator makes every broker's send
to it on loopback pay for waking it, which `1s` (one thread, `wren-bench --spin`) avoids at the
price of a core. So every job runs with each setting and each broker is shown with the one that
gave it its best median (the "gen threads" column); the medians for every setting follow in a
second table.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Broker settings for fairness (see README.md): every broker gets a large per-client queue, so an
# unbounded flood is not cut short by a queue limit that another broker does not have, and the
# same outgoing QoS 1 window, wren-broker's and Mosquitto's default of 20 (rumqttd 0.20 ignores
# the setting and always sends 100: the `w100` jobs give the other two 100 as well, and
# `window_probe` measures what each broker really does). wren-broker also drops
# QoS 0 messages to a connection whose socket queue holds more than max_outgoing_bytes (1 MiB by
# default): raised to 64 MiB, as Mosquitto (max_queued_bytes 0) and rumqttd do not drop them.
QUEUE = 1_000_000
INFLIGHT = 20
OUTGOING_BYTES = 64 * 1024 * 1024


def free_port():
    """An unused loopback port (bound to 0 and released; the broker binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    """How to start one broker on a given port (`tls_ok`: it can serve TLS, see make_certs;
    `conf_command`: how to run it on a mosquitto.conf, for the bridge row, see start_bridge)."""

    def __init__(self, name, command_for_port, tls_ok=False, persist_ok=False, conf_command=None):
        self.name = name
        self.command_for_port = command_for_port
        self.tls_ok = tls_ok
        self.persist_ok = persist_ok
        self.conf_command = conf_command

    def start(self, tmp, inflight=INFLIGHT, tls=None, durable=False):
        """`tls`: (certfile, keyfile) for a TLS listener instead of plain TCP. `durable`: with
        persistence on, in a fresh directory (see store_dir)."""
        port = free_port()
        cmd = self.command_for_port(port, tmp, inflight, tls, store_dir() if durable else None)
        return self.launch(cmd, port, tmp), port

    def start_conf(self, tmp, conf_for_port, role):
        """Start it on the mosquitto.conf `conf_for_port(port)` (file `<name>-<role>.conf`)."""
        port = free_port()
        conf = os.path.join(tmp, f"{self.name}-{role}.conf")
        with open(conf, "w") as f:
            f.write(conf_for_port(port))
        return self.launch(self.conf_command(conf), port, tmp), port

    def launch(self, cmd, port, tmp):
        log = open(os.path.join(tmp, f"{self.name}.log"), "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not wait_listening(port, proc):
            stop(proc)
            raise RuntimeError(f"{self.name} did not start: {' '.join(cmd)} (log in {tmp})")
        return proc


# Directories of the durable rows' stores, removed at the end of the run.
STORE_DIRS = []


def store_dir():
    """A fresh directory for one broker's persistence file, writable by Mosquitto's own user
    (it drops root before it writes its database)."""
    d = tempfile.mkdtemp(prefix="wren-compare-store-")
    os.chmod(d, 0o777)
    STORE_DIRS.append(d)
    return d


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wren_broker(binary, name="wren", extra=""):
    """wren-broker with the run's limits; `extra` is more TOML (e.g. `threads = 2`)."""
    def cmd(port, tmp, inflight, tls, store):
        conf = os.path.join(tmp, f"{name}.toml")
        with open(conf, "w") as f:
            f.write(
                f"max_queued_messages = {QUEUE}\n"
                f"max_inflight_messages = {inflight}\n"
                f"max_outgoing_bytes = {OUTGOING_BYTES}\n"
                # Memory only, as Mosquitto by default, except in the durable rows (durable
                # mode: a PUBACK waits for the fsync of what it acknowledges).
                + (f'persistence_location = "{store}"\n' if store else "persistence = false\n")
                + f"{extra}\n"
            )
            if tls:
                f.write(
                    f'[[listener]]\nport = {port}\nbind = "127.0.0.1"\n'
                    f'certfile = "{tls[0]}"\nkeyfile = "{tls[1]}"\n'
                )
        if tls:
            return [binary, "-c", conf]
        return [binary, "-c", conf, "-p", str(port), "--bind", "127.0.0.1"]

    # The bridge row runs the main build only: `--also-wren` ones carry TOML lines a
    # mosquitto.conf cannot hold, and may be builds from before the bridge.
    conf_command = (lambda conf: [binary, "-c", conf]) if name == "wren" else None
    return Broker(name, cmd, tls_ok=True, persist_ok=True, conf_command=conf_command)


def also_wren(spec):
    """`LABEL=PATH` or `LABEL=PATH;TOML` (`;` separating TOML lines), for --also-wren."""
    label, _, rest = spec.partition("=")
    path, _, toml = rest.partition(";")
    if not label or not path or label == "wren":
        sys.exit(f"--also-wren {spec!r}: expected LABEL=PATH[;TOML], LABEL not 'wren'")
    return wren_broker(path, label, toml.replace(";", "\n"))


def mosquitto(binary):
    def cmd(port, tmp, inflight, tls, store):
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                f"listener {port} 127.0.0.1\n"
                "allow_anonymous true\n"
                f"max_queued_messages {QUEUE}\n"
                f"max_inflight_messages {inflight}\n"
            )
            if store:
                # The closest Mosquitto comes to writing every change: a save of its whole
                # database after every change (it still acknowledges before saving).
                f.write(f"persistence true\npersistence_location {store}/\n"
                        "autosave_interval 1\nautosave_on_changes true\n")
            if tls:
                f.write(f"certfile {tls[0]}\nkeyfile {tls[1]}\n")
        return [binary, "-c", conf]

    return Broker("mosquitto", cmd, tls_ok=True, persist_ok=True,
                  conf_command=lambda conf: [binary, "-c", conf])


def rumqttd(binary):
    # (Its outgoing window is fixed at 100 whatever `inflight` says: see window_probe.)
    def cmd(port, tmp, inflight, tls, store):
        with open(os.path.join(HERE, "rumqttd.toml")) as f:
            text = f.read()
        conf = os.path.join(tmp, "rumqttd.toml")
        with open(conf, "w") as f:
            f.write(text.replace('listen = "127.0.0.1:1883"', f'listen = "127.0.0.1:{port}"'))
        return [binary, "-q", "-c", conf]

    return Broker("rumqttd", cmd)


def bridge_conf(port, far_port=None):
    """The mosquitto.conf of the `qos1 bridge` row, the same text for Mosquitto (`mosquitto -c`)
    and wren-broker (`wren-broker -c`): the far broker B without `far_port`, the near broker A
    (where the publishers are) with a bridge forwarding bench/# to B at QoS 1.

    Persistence off on both (Mosquitto's default, said explicitly for wren-broker), and the same
    limits as every other row: the global max_inflight_messages / max_queued_messages, which
    apply to a broker's outgoing QoS 1 messages to any connection, its bridge's included (no
    bridge-only setting for one side). cleansession true: every run starts two fresh brokers
    and the bridge stays connected throughout, so a session kept across a reconnection would
    play no part; a message PUBACKed on A and lost on the way still counts as undelivered."""
    text = (
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        f"max_queued_messages {QUEUE}\n"
        f"max_inflight_messages {INFLIGHT}\n"
    )
    if far_port is not None:
        text += (
            "connection bench\n"
            f"address 127.0.0.1:{far_port}\n"
            "topic bench/# out 1\n"
            "cleansession true\n"
            "try_private true\n"
            "bridge_protocol_version mqttv311\n"
        )
    return text


def jobs(quick, idle_connections=None):
    """(name, wren-bench arguments, [(metric, label, higher_is_better)], [in-flight window]).

    `idle_connections` replaces the connection counts of `idle` (2000) and `idle-sub` (3000).

    Bounded runs publish for a fixed time (as many messages as the broker takes in that time).
    Unbounded runs publish a fixed number of messages as fast as the broker reads them (stopping
    early at the same time limit): a time-based flood would only measure how big each broker lets
    its queues grow (1,000,000 messages here) before it drops.
    """
    secs = "1" if quick else "2"
    cap = "100000000"
    k = 0.5 if quick else 1.0
    fan_in, fan_out, qos1 = (str(int(n * k)) for n in (500_000, 40_000, 200_000))
    per_core = ("per_core", "per broker CPU-s", True)
    rate = [("rate", "msg/s", True), per_core]
    deliveries = [("rate", "deliveries/s", True), per_core]
    timed = ["--mode", "bounded", "--duration", secs, "--messages", cap]
    out = [
        ("fan-in bounded", ["fan-in"] + timed, rate),
        ("fan-out bounded", ["fan-out"] + timed, deliveries),
        ("qos1 bounded", ["qos1"] + timed, rate),
    ]
    flood = ["--mode", "unbounded", "--duration", secs, "--messages"]
    out += [
        ("fan-in unbounded", ["fan-in"] + flood + [fan_in], rate),
        ("fan-out unbounded", ["fan-out"] + flood + [fan_out], deliveries),
        ("qos1 unbounded", ["qos1"] + flood + [qos1], rate),
        # The QoS 1 jobs again with an outgoing window of 100 for every broker: rumqttd's fixed
        # window, so that the comparison with it is like for like.
        ("qos1 bounded w100", ["qos1"] + timed, rate, 100),
        ("qos1 unbounded w100", ["qos1"] + flood + [qos1], rate, 100),
    ]
    # QoS 1 over TLS (`wren-bench --tls CAFILE`), wren-broker and Mosquitto with the same
    # certificate (rumqttd is not set up for TLS here); `{CA}` becomes the run's CA file.
    out.append(("qos1 bounded tls", ["--tls", "{CA}", "qos1"] + timed, rate))
    # QoS 1 to a persistent subscriber with persistence on: wren-broker's durable mode (each
    # PUBACK after the fsync of what it acknowledges, group commit) against Mosquitto saving its
    # database after every change (`autosave_interval 1`, `autosave_on_changes true`).
    out.append(("qos1 durable", ["--persistent-subscribers", "qos1"] + timed, rate))
    # QoS 1 through a bridge: publishers on broker A, the subscriber on broker B, A forwarding
    # bench/# to B over a bridge of its own mosquitto.conf (bridge_conf), wren-broker to
    # wren-broker against Mosquitto to Mosquitto; `{SUB_PORT}` becomes B's port (start_bridge).
    out.append(("qos1 bridge", ["--sub-port", "{SUB_PORT}", "qos1"] + timed, rate))
    out.append(
        (
            "latency",
            ["latency", "--rate", "2000", "--duration", "3" if quick else "5"],
            [("p50_us", "p50 us", False), ("p99_us", "p99 us", False), ("p999_us", "p99.9 us", False)],
        )
    )
    idle_metrics = [("bytes_per_conn", "B/conn", False), ("connect_rate", "conn/s", True)]
    out.append(("idle", ["idle", "--connections", str(idle_connections or 2000)], idle_metrics))
    # Connection rate (and memory) over TLS: a handshake per connection.
    out.append(
        (
            "idle tls",
            ["--tls", "{CA}", "idle", "--connections", str(idle_connections or 2000)],
            idle_metrics,
        )
    )
    # The same with a QoS 1 subscription to its own topic per connection (a device fleet, each
    # listening on its command topic); memory read 1 s after the last SUBACK.
    out.append(
        ("idle-sub", ["idle-sub", "--connections", str(idle_connections or 3000)], idle_metrics)
    )
    return out


# The metric that picks each job's generator setting for a broker (default: the job's first
# metric): latency is judged on its tail, as the goal is.
PICK_BY = {"latency": "p99_us"}


def make_certs():
    """A CA and a server certificate for 127.0.0.1 (P-256, by Debian's openssl), in a directory
    anyone can read (Mosquitto reads them after dropping root for its own user); returns the
    directory and (ca, cert, key), or None without openssl."""
    if not shutil.which("openssl"):
        return None
    d = tempfile.mkdtemp(prefix="wren-compare-certs-")
    os.chmod(d, 0o755)
    ca, ca_key, cert, key = (os.path.join(d, n) for n in ("ca.pem", "ca.key", "server.pem", "server.key"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key],
        ["openssl", "req", "-x509", "-new", "-key", ca_key, "-subj", "/CN=wren-compare CA",
         "-days", "2", "-out", ca],
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
        ["openssl", "req", "-new", "-key", key, "-subj", "/CN=localhost", "-out", cert + ".csr"],
        ["openssl", "x509", "-req", "-in", cert + ".csr", "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
    ]
    for step in steps:
        subprocess.run(step, check=True, capture_output=True, timeout=30)
    for p in (ca, cert, key):
        os.chmod(p, 0o644)
    return d, (ca, cert, key)


def run_one(bench, broker, args, tmp, setting, log, inflight=INFLIGHT, certs=None):
    """One run of wren-bench on a fresh broker; `setting` is a generator setting of --threads
    (`N`, or `Ns` for N spinning threads)."""
    threads = setting.rstrip("s")
    spin = ["--spin"] if setting.endswith("s") else []
    tls = None
    if "--tls" in args:
        ca, cert, key = certs
        tls = (cert, key)
        args = [ca if a == "{CA}" else a for a in args]
    far = None
    if "--sub-port" in args:
        proc, port, far, far_port = start_bridge(broker, tmp)
        args = [str(far_port) if a == "{SUB_PORT}" else a for a in args]
        args = ["--sub-broker-pid", str(far.pid)] + args
    else:
        proc, port = broker.start(tmp, inflight, tls, durable="--persistent-subscribers" in args)
    try:
        cmd = [
            bench, "--json", "--port", str(port), "--label", broker.name,
            "--broker-pid", str(proc.pid), "--threads", threads, "--timeout", "60",
        ] + spin + args
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        lines = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
        if res.returncode != 0 or not lines:
            print(f"  ! {broker.name} {' '.join(args)}: exit {res.returncode}: "
                  f"{res.stderr.strip()[-300:]}", file=sys.stderr)
        for l in lines:
            log.write(json.dumps(l) + "\n")
        log.flush()
        return lines[0] if lines else None
    finally:
        for p in (proc, far):
            if p is None:
                continue
            stop(p)
            if p.returncode not in (0, -signal.SIGTERM, None):
                print(f"  ! {broker.name} exited with {p.returncode}", file=sys.stderr)


def mqtt_packet(first, body):
    n, length = len(body), b""
    while True:
        digit, n = n % 128, n // 128
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def mqtt_str(b):
    return len(b).to_bytes(2, "big") + b


def mqtt_connect(port, client_id):
    c = socket.create_connection(("127.0.0.1", port), timeout=2)
    c.sendall(mqtt_packet(0x10, mqtt_str(b"MQTT") + bytes([4, 0x02, 0, 60]) + mqtt_str(client_id)))
    if c.recv(4)[:1] != b"\x20":
        raise RuntimeError("no CONNACK")
    return c


def publishes(data):
    """How many PUBLISH packets `data` (packets read from one connection) starts."""
    count, i = 0, 0
    while i < len(data):
        j, length, mult = i + 1, 0, 1
        while j < len(data):
            length += (data[j] & 0x7F) * mult
            mult *= 128
            j += 1
            if not data[j - 1] & 0x80:
                break
        count += data[i] >> 4 == 3
        i = j + length
    return count


def window_probe(broker, tmp, inflight=INFLIGHT, messages=300):
    """The outgoing QoS 1 window a broker really uses: how many QoS 1 PUBLISHes a subscriber
    that acknowledges none of them receives (of `messages` published)."""
    proc, port = broker.start(tmp, inflight)
    try:
        sub = mqtt_connect(port, b"window-probe-sub")
        sub.sendall(mqtt_packet(0x82, b"\x00\x01" + mqtt_str(b"probe/window") + b"\x01"))
        sub.recv(5)  # SUBACK
        pub = mqtt_connect(port, b"window-probe-pub")
        for i in range(1, messages + 1):
            body = mqtt_str(b"probe/window") + i.to_bytes(2, "big") + b"x"
            pub.sendall(mqtt_packet(0x32, body))
        deadline, data = time.monotonic() + 1.0, b""
        sub.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = sub.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        sub.close()
        pub.close()
        return publishes(data)
    except (OSError, RuntimeError) as e:
        print(f"  ! window probe of {broker.name}: {e}", file=sys.stderr)
        return None
    finally:
        stop(proc)


# How long a bridge may take to forward its first message before the run fails.
BRIDGE_TIMEOUT = 10.0


def start_bridge(broker, tmp):
    """Start the far broker B, then the near one A with a bridge to B (bridge_conf), and wait
    until the bridge forwards: a QoS 1 probe published on A to bench/probe (a payload shorter
    than wren-bench's stamp, so a late copy reaching a wren-bench subscriber is ignored) every
    0.2 s until one arrives at a subscriber on B. Returns (A process, A port, B process, B port).
    Raises RuntimeError, with the tail of the brokers' log, if nothing arrives in BRIDGE_TIMEOUT
    seconds: a broker whose bridge does not come up fails the run, it is not skipped."""
    log = os.path.join(tmp, f"{broker.name}.log")
    log_from = os.path.getsize(log) if os.path.exists(log) else 0
    far, far_port = broker.start_conf(tmp, bridge_conf, "far")
    try:
        near, port = broker.start_conf(tmp, lambda p: bridge_conf(p, far_port), "near")
    except RuntimeError:
        stop(far)
        raise
    try:
        waited = bridge_probe(port, far_port)
    except (OSError, RuntimeError) as e:
        waited = e
    if isinstance(waited, float):
        return near, port, far, far_port
    stop(near)
    stop(far)
    with open(log, "rb") as f:
        f.seek(log_from)
        tail = f.read()[-2000:].decode(errors="replace")
    raise RuntimeError(
        f"{broker.name}: the bridge from port {port} to {far_port} forwarded nothing in "
        f"{BRIDGE_TIMEOUT:.0f} s ({waited or 'no probe arrived'}); configuration:\n"
        f"{bridge_conf(port, far_port)}log of both brokers (the far one first):\n{tail}")


def bridge_probe(port, far_port):
    """Seconds until a probe published on `port` arrived on `far_port`, or None (see
    start_bridge)."""
    t0 = time.monotonic()
    sub = mqtt_connect(far_port, b"bridge-probe-sub")
    pub = None
    try:
        sub.sendall(mqtt_packet(0x82, b"\x00\x01" + mqtt_str(b"bench/probe") + b"\x01"))
        sub.recv(5)  # SUBACK
        pub = mqtt_connect(port, b"bridge-probe-pub")
        sub.settimeout(0.2)
        pid = 0
        while time.monotonic() - t0 < BRIDGE_TIMEOUT:
            pid += 1
            pub.sendall(mqtt_packet(0x32, mqtt_str(b"bench/probe") + pid.to_bytes(2, "big")
                                    + b"probe"))
            try:
                data = sub.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise RuntimeError(f"port {far_port} closed the probe's subscriber")
            if publishes(data):
                return time.monotonic() - t0
        return None
    finally:
        sub.close()
        if pub is not None:
            pub.close()


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", required=True, help="wren-bench binary")
    ap.add_argument("--wren", help="wren-broker binary (skipped if missing)")
    ap.add_argument("--also-wren", action="append", default=[], metavar="LABEL=PATH[;TOML]",
                    help="another wren-broker in the same run (e.g. an older build, or "
                         "'threads2=target/release/wren-broker;threads = 2'): its column is "
                         "compared with wren's like the other brokers'; repeatable")
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--rumqttd", default=shutil.which("rumqttd"))
    ap.add_argument("--quick", action="store_true", help="1 rep, half the messages (~2 min)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    ap.add_argument("--threads", default="1,2,1s",
                    help="generator settings to run every job with (comma-separated): N is "
                         "wren-bench --threads N, Ns the same with --spin")
    ap.add_argument("--only", help="comma-separated job names to run (e.g. 'fan-in bounded,idle')")
    ap.add_argument("--idle-connections", type=int,
                    help="connections of the idle and idle-sub jobs (default 2000 and 3000)")
    ap.add_argument("--out", help="file for the raw JSON lines")
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    settings = [t.strip() for t in a.threads.split(",") if t.strip()]
    for t in settings:
        if not re.fullmatch(r"[1-9][0-9]*s?", t):
            sys.exit(f"--threads {a.threads!r}: {t!r} is neither N nor Ns (N >= 1)")

    # 3000 idle connections need 3000 descriptors in the generator and in each broker.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    brokers = []
    if a.wren and os.access(a.wren, os.X_OK):
        brokers.append(wren_broker(a.wren))
    else:
        print("note: wren-broker not available, skipped", file=sys.stderr)
    for spec in a.also_wren:
        extra = also_wren(spec)
        brokers.append(extra)
    if a.mosquitto and os.access(a.mosquitto, os.X_OK):
        brokers.append(mosquitto(a.mosquitto))
    else:
        print("note: mosquitto not installed, skipped", file=sys.stderr)
    if a.rumqttd and os.access(a.rumqttd, os.X_OK):
        brokers.append(rumqttd(a.rumqttd))
    else:
        print("note: rumqttd not installed (cargo install rumqttd), skipped", file=sys.stderr)
    if not brokers:
        sys.exit("no broker to measure")

    todo = jobs(a.quick, a.idle_connections)
    if a.only:
        wanted = {w.strip() for w in a.only.split(",")}
        todo = [j for j in todo if j[0] in wanted]
    certs_dir, certs = None, None
    if any("--tls" in j[1] for j in todo):
        made = make_certs()
        if made is None:
            print("note: openssl not installed (apt-get install openssl): TLS jobs skipped",
                  file=sys.stderr)
            todo = [j for j in todo if "--tls" not in j[1]]
        else:
            certs_dir, certs = made
    out_path = a.out or os.path.join(tempfile.gettempdir(), f"wren-compare-{int(time.time())}.jsonl")
    results = {}  # (job, broker, generator setting) -> [report]
    # Other work on the machine skews everything (latency tails most): say how busy it was.
    load0 = loadavg()
    t0 = time.monotonic()
    bridge_line = None
    try:
        with tempfile.TemporaryDirectory(prefix="wren-compare-") as tmp, open(out_path, "w") as log:
            # What each broker does with the window it is given (see window_probe).
            windows = {b.name: [window_probe(b, tmp, w) for w in (INFLIGHT, 100)] for b in brokers}
            windows_line = "outgoing QoS 1 window measured, configured {} / 100: {}".format(
                INFLIGHT, "; ".join(f"{n} {w[0]}/{w[1]}" for n, w in windows.items()))
            print(windows_line, file=sys.stderr, flush=True)
            if any("--sub-port" in j[1] for j in todo):
                # Each bridge once before the first rep, so one that does not come up stops the
                # run now (exit status 1) rather than minutes into it.
                ups = []
                for b in brokers:
                    if b.conf_command:
                        t = time.monotonic()
                        try:
                            near, _, far, _ = start_bridge(b, tmp)
                        except RuntimeError as e:
                            sys.exit(f"qos1 bridge: {e}")
                        ups.append(f"{b.name} {time.monotonic() - t:.2f} s")
                        stop(near)
                        stop(far)
                bridge_line = ("bridge up (both brokers started, first probe through): "
                               + "; ".join(ups))
                print(bridge_line, file=sys.stderr, flush=True)
            for rep in range(reps):
                for name, args, metrics, *window in todo:
                    for setting in settings:
                        for b in brokers:
                            if "--tls" in args and not b.tls_ok:
                                continue
                            if "--persistent-subscribers" in args and not b.persist_ok:
                                continue
                            if "--sub-port" in args and not b.conf_command:
                                continue
                            r = run_one(a.bench, b, args, tmp, setting, log, *window, certs=certs)
                            if r is not None:
                                r["gen_threads"] = setting
                                results.setdefault((name, b.name, setting), []).append(r)
                            brief = ""
                            if r is not None:
                                brief = " ".join(f"{m}={fmt(r.get(m))}" for m, _, _ in metrics)
                                if r.get("expected") is not None:
                                    brief += f" delivered={r.get('delivered')}/{r.get('expected')}"
                            print(f"[{time.monotonic() - t0:6.1f}s] rep {rep + 1}/{reps} {name:<18} "
                                  f"t{setting} {b.name:<10} {brief}", file=sys.stderr, flush=True)
    finally:
        if certs_dir:
            shutil.rmtree(certs_dir, ignore_errors=True)
        for d in STORE_DIRS:
            shutil.rmtree(d, ignore_errors=True)
    names = [b.name for b in brokers]
    print_table(todo, names, best_settings(todo, names, settings, results), reps)
    print_by_setting(todo, names, settings, results)
    print(windows_line)
    if bridge_line:
        print(bridge_line)
    print(f"\nraw results: {out_path}; total {time.monotonic() - t0:.0f} s; "
          f"load average at start {load0}, at end {loadavg()} ({os.cpu_count()} CPUs)")


def loadavg():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def median_of(reports, metric):
    vals = [r[metric] for r in reports if isinstance(r.get(metric), (int, float))]
    return statistics.median(vals) if vals else None


def best_settings(todo, names, settings, results):
    """(job, broker) -> (generator setting, reports) with the best median of the job's picking
    metric (PICK_BY, else its first)."""
    best = {}
    for name, _, metrics, *_ in todo:
        pick = PICK_BY.get(name, metrics[0][0])
        higher = next((h for m, _, h in metrics if m == pick), True)
        for n in names:
            scored = [(median_of(results.get((name, n, t), []), pick), t) for t in settings]
            scored = [(v, t) for v, t in scored if v is not None]
            if scored:
                _, t = (max if higher else min)(scored)
                best[(name, n)] = (t, results[(name, n, t)])
    return best


def print_by_setting(todo, names, settings, results):
    """Each job's picking metric per broker and generator setting."""
    if len(settings) < 2:
        return
    head = ["scenario", "metric"] + [f"{n} t{t}" for n in names for t in settings]
    rows = [head]
    for name, _, metrics, *_ in todo:
        pick = PICK_BY.get(name, metrics[0][0])
        label = next((l for m, l, _ in metrics if m == pick), pick)
        rows.append([name, label] + [fmt(median_of(results.get((name, n, t), []), pick))
                                     for n in names for t in settings])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print("\nmedians by generator setting (tN = wren-bench --threads N, tNs = the same with "
          "--spin)")
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_table(todo, names, best, reps):
    """`best`: (job, broker) -> (generator setting, reports), from best_settings."""
    results = {k: reports for k, (_, reports) in best.items()}
    head = ["scenario", "metric"] + names
    others = [n for n in names if n != "wren"]
    if "wren" in names:
        head += [f"wren/{n}" for n in others]
    head += ["better", "gen threads", "delivered/expected (worst rep)"]
    rows = [head]
    for name, _, metrics, *_ in todo:
        for metric, label, higher in metrics:
            med = {n: median_of(results.get((name, n), []), metric) for n in names}
            row = [name, label] + [fmt(med[n]) for n in names]
            if "wren" in names:
                for n in others:
                    w, o = med.get("wren"), med.get(n)
                    row.append(f"{w / o:.2f}x" if w is not None and o else "-")
            row.append("higher" if higher else "lower")
            first = metric == metrics[0][0]
            row.append(" ".join(str(best[(name, n)][0]) if (name, n) in best else "-"
                                for n in names) if first else "")
            checks = []
            for n in names:
                rs = results.get((name, n), [])
                if rs and rs[0].get("expected") is not None:
                    worst = min(rs, key=lambda r: r.get("delivered") or 0)
                    checks.append(f"{n} {worst.get('delivered')}/{worst.get('expected')}")
                elif rs and rs[0].get("subscribed") is not None:
                    worst = min(rs, key=lambda r: min(r.get("alive") or 0, r.get("routed") or 0))
                    checks.append(f"{n} {worst.get('subscribed')}/{worst.get('connections')} "
                                  f"subscribed, {worst.get('routed')} routed, "
                                  f"{worst.get('alive')} alive")
                elif rs and rs[0].get("connections") is not None:
                    worst = min(rs, key=lambda r: r.get("alive") or 0)
                    checks.append(f"{n} {worst.get('alive')}/{worst.get('connections')} alive")
            row.append(", ".join(checks) if first else "")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print(f"\nmedian of {reps} rep(s), each broker with its best generator setting ('gen "
          f"threads', in the order {' '.join(names)}); ratios are wren/other: above 1 is better "
          "for wren where 'better' is higher, below 1 is better where it is lower")
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
