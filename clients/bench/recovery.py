#!/usr/bin/env python3
"""Durable store figures for the README (#19): disk bytes per queued message and recovery time.

Starts wren-broker (durable persistence, unbounded queues) in a fresh directory, subscribes a
persistent QoS 1 session and leaves, publishes N QoS 1 messages (16-byte payloads) from a raw
socket publisher with a window of 1000, waits for every PUBACK, kills the broker with SIGKILL,
reports the file size per message, restarts it and reports its "restored ... in N ms" line and
the time until it listens, then reconnects the subscriber and counts what it receives.

    python3 clients/bench/recovery.py --wren target/release/wren-broker [--messages 1000000]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from compare import mqtt_packet as packet, mqtt_str


def connect(port, client_id, clean):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    flags = 0x02 if clean else 0x00
    body = mqtt_str(b"MQTT") + bytes([4, flags]) + (600).to_bytes(2, "big") + mqtt_str(client_id)
    s.sendall(packet(0x10, body))
    reader = Reader(s)
    first, rest = reader.next()
    assert first == 0x20 and rest[1] == 0, f"CONNACK {first:#x} {rest!r}"
    return s, reader


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def next(self):
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + length:
                    first, body = self.buf[0], self.buf[i:i + length]
                    self.buf = self.buf[i + length:]
                    return first, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk


def start(wren, d):
    log = open(os.path.join(d, "broker.log"), "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen([wren, "-c", "wren.toml", "--bind", "127.0.0.1", "-p", "0"], cwd=d,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = []
    for raw in proc.stderr:
        line = raw.decode(errors="replace")
        log.write(raw)
        lines.append(line)
        m = re.search(r"running on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1)), time.monotonic() - t0, "".join(lines)
    raise RuntimeError("broker did not start: " + "".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wren", required=True)
    ap.add_argument("--messages", type=int, default=1_000_000)
    a = ap.parse_args()
    a.wren = os.path.abspath(a.wren)
    d = tempfile.mkdtemp(prefix="wren-recovery-")
    try:
        with open(os.path.join(d, "wren.toml"), "w") as f:
            f.write("max_queued_messages = 0\nsys_interval = 0\n")
        proc, port, _, _ = start(a.wren, d)
        s, r = connect(port, b"device", False)
        s.sendall(packet(0x82, (1).to_bytes(2, "big") + mqtt_str(b"fleet/#") + b"\x01"))
        assert r.next()[0] == 0x90
        s.sendall(b"\xe0\x00")
        s.close()
        p, pr = connect(port, b"publisher", True)
        window, sent, acked, t0 = 1000, 0, 0, time.monotonic()
        topic = mqtt_str(b"fleet/sensor/temperature")
        while acked < a.messages:
            batch = []
            while sent < a.messages and sent - acked < window:
                pid = sent % 65535 + 1
                payload = f"{sent:016d}".encode()
                batch.append(packet(0x32, topic + pid.to_bytes(2, "big") + payload))
                sent += 1
            if batch:
                p.sendall(b"".join(batch))
            first, _ = pr.next()
            if first == 0x40:
                acked += 1
        publish_s = time.monotonic() - t0
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        size = os.path.getsize(os.path.join(d, "wren.db"))
        print(f"{a.messages} QoS 1 messages queued and acknowledged in {publish_s:.1f} s "
              f"({a.messages / publish_s:,.0f} msg/s, one publisher, window {window})")
        print(f"wren.db after kill -9: {size:,} bytes, {size / a.messages:.0f} bytes per queued "
              f"message (16-byte payload, 24-byte topic)")
        proc, port, listening_s, log = start(a.wren, d)
        m = re.search(r"Persistence: restored .*", log)
        print(f"restart: listening after {listening_s:.2f} s; {m.group(0) if m else log}")
        s, r = connect(port, b"device", False)
        got, t0 = 0, time.monotonic()
        s.settimeout(10)
        try:
            while got < a.messages:
                first, body = r.next()
                if first & 0xF0 == 0x30:
                    got += 1
                    if first & 0x06:
                        tl = int.from_bytes(body[:2], "big")
                        s.sendall(b"\x40\x02" + body[2 + tl:4 + tl])
        except (socket.timeout, EOFError):
            pass
        print(f"subscriber received {got:,} of {a.messages:,} in {time.monotonic() - t0:.1f} s")
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
