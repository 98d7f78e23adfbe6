#!/usr/bin/env python3
"""Eclipse Paho Python over WebSockets against wren-broker (run by broker/tests/websockets.rs):
`ws.py WS_PORT WSS_PORT CA_FILE`. transport="websockets" on ws:// (3.1.1 and 5.0, two paths) and
wss:// trusting the test CA: connect, subscribe, a QoS 1 round trip. Prints one PASS/FAIL line
per check and 'N passed, N failed'; exits 1 on any failure.
"""

import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WS_PORT, WSS_PORT, CA = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
results = []


def check(name, ok):
    results.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name, flush=True)


def round_trip(name, port, path, tls=False, protocol=mqtt.MQTTv311):
    connected, subscribed, received = threading.Event(), threading.Event(), threading.Event()
    got = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-" + name,
                    transport="websockets", protocol=protocol)
    c.ws_set_options(path=path)
    if tls:
        c.tls_set(ca_certs=CA)
    c.on_connect = lambda *a: connected.set()
    c.on_subscribe = lambda *a: subscribed.set()

    def on_message(client, userdata, m):
        got.append((m.topic, m.payload, m.qos))
        received.set()

    c.on_message = on_message
    try:
        c.connect("127.0.0.1", port, 30)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check(f"{name}: connect ({e})", False)
        check(f"{name}: (not run)", False)
        return
    c.loop_start()
    try:
        check(f"{name}: connected", connected.wait(5))
        c.subscribe(f"paho/{name}", 1)
        subscribed.wait(5)
        c.publish(f"paho/{name}", b"hello", 1)
        check(f"{name}: its QoS 1 message back",
              received.wait(5) and got[0] == (f"paho/{name}", b"hello", 1))
        c.disconnect()
    finally:
        c.loop_stop()


round_trip("ws", WS_PORT, "/mqtt")
round_trip("ws5", WS_PORT, "/", protocol=mqtt.MQTTv5)
round_trip("wss", WSS_PORT, "/mqtt", tls=True)
passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
