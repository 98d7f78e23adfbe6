#!/usr/bin/env python3
"""MQTT 3.1.1 (and one 5.0) flows with the Eclipse Paho Python client against a broker on
127.0.0.1:PORT, after the test cases of Paho's interoperability suite (paho.mqtt.testing,
client_test.py): basic QoS 0/1/2, retained messages with wildcards and their deletion, offline
queueing for a persistent session, overlapping subscriptions, keep-alive expiry publishing the
will, zero-length client id, `$` topics, unsubscribe.

Run by broker/tests/paho.rs (which starts wren-broker in-process): `flows.py PORT`. Prints one
PASS/FAIL line per check and a closing 'N passed, N failed'; exits 1 on any failure.
"""

import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PORT = int(sys.argv[1])
HOST = "127.0.0.1"
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
results = []


def check(name, ok):
    results.append(ok)
    print(("PASS " if ok else "FAIL ") + name, flush=True)


def wait_for(pred, timeout=3.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)
    return pred()


class Client:
    def __init__(self, client_id, clean=True, protocol=mqtt.MQTTv311):
        self.messages = []
        self.lock = threading.Lock()
        self.rc = None
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean if protocol != mqtt.MQTTv5 else None,
            protocol=protocol,
        )
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, flags, rc, props=None: setattr(self, "rc", rc)

    def _on_message(self, client, userdata, m):
        with self.lock:
            self.messages.append((m.topic, m.payload, m.qos, m.retain))

    def received(self):
        with self.lock:
            return list(self.messages)

    def connect(self, keepalive=60, will=None):
        if will:
            self.c.will_set(*will)
        self.c.connect(HOST, PORT, keepalive)
        self.c.loop_start()
        wait_for(lambda: self.rc is not None)
        return self.rc

    def subscribe(self, *args):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(*args)
        done.wait(3)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def clear_retained():
    a = Client("clean-retained")
    a.connect()
    a.subscribe("#", 0)
    time.sleep(0.5)
    for topic, _, _, retain in a.received():
        if retain:
            a.c.publish(topic, b"", 0, retain=True)
    time.sleep(0.2)
    a.stop()


# basic: one message at each QoS
a = Client("myclientid")
a.connect()
a.subscribe(TOPICS[0], 2)
for q in (0, 1, 2):
    a.c.publish(TOPICS[0], b"qos %d" % q, q)
check("basic: 3 messages", wait_for(lambda: len(a.received()) == 3))
a.stop()

# retained messages, delivered to a wildcard subscription with RETAIN set, then deleted
a = Client("myclientid")
a.connect()
for q, t in ((0, TOPICS[1]), (1, TOPICS[2]), (2, TOPICS[3])):
    a.c.publish(t, b"qos %d" % q, q, retain=True).wait_for_publish(3)
a.subscribe(WILDTOPICS[5], 2)
got = wait_for(lambda: len(a.received()) >= 3) and a.received()
check("retained: 3 via +/+, RETAIN set", bool(got) and len(got) == 3 and all(m[3] for m in got))
a.stop()
clear_retained()
a = Client("myclientid")
a.connect()
a.subscribe(WILDTOPICS[5], 2)
time.sleep(0.5)
check("retained: none after deletion", a.received() == [])
a.stop()

# offline queueing: QoS 1 and 2 (QoS 0 optional) kept for a persistent session
a = Client("myclientid", clean=False)
a.connect()
a.subscribe(WILDTOPICS[5], 2)
a.stop()
b = Client("myclientid2")
b.connect()
for q, t in ((0, TOPICS[1]), (1, TOPICS[2]), (2, TOPICS[3])):
    b.c.publish(t, b"qos %d" % q, q).wait_for_publish(3)
b.stop()
a = Client("myclientid", clean=False)
a.connect()
wait_for(lambda: len(a.received()) >= 2)
time.sleep(0.3)
check("offline queueing: 2 or 3 messages", len(a.received()) in (2, 3))
a.stop()
a = Client("myclientid")  # a clean connect ends the persistent session
a.connect()
a.stop()

# overlapping subscriptions: once at the highest QoS, or once per subscription
a = Client("myclientid")
a.connect()
a.subscribe([(WILDTOPICS[6], 2), (WILDTOPICS[0], 1)])
a.c.publish(TOPICS[3], b"overlapping topic filters", 2)
wait_for(lambda: len(a.received()) >= 1)
time.sleep(0.3)
got = a.received()
check(
    "overlapping: one at QoS 2, or two at QoS 1 and 2",
    (len(got) == 1 and got[0][2] == 2) or (len(got) == 2 and sorted(m[2] for m in got) == [1, 2]),
)
a.stop()

# keep-alive: a client that stops talking is cut after 1.5 x keep-alive, and its will goes out
b = Client("myclientid2")
b.connect()
b.subscribe(TOPICS[4], 2)
a = Client("myclientid")
a.connect(keepalive=2, will=(TOPICS[4], b"keepalive expiry", 0, False))
a.c.loop_stop()  # no more PINGREQs; the socket stays open
check(
    "keep-alive: will published",
    wait_for(lambda: any(m[1] == b"keepalive expiry" for m in b.received()), timeout=6),
)
b.stop()

# zero-length client id with clean session: accepted (the broker assigns one)
a = Client("")
check("zero-length client id with clean session: accepted", a.connect() == 0)
a.stop()

# $ topics are not matched by filters starting with a wildcard
a = Client("myclientid")
a.connect()
a.subscribe([(WILDTOPICS[5], 2), ("#", 2)])
b = Client("dollar")
b.connect()
b.c.publish("$" + TOPICS[1], b"", 1).wait_for_publish(3)
b.c.publish(TOPICS[1], b"plain", 1).wait_for_publish(3)
b.stop()
wait_for(lambda: len(a.received()) >= 2)
time.sleep(0.2)
check("$ topics: not matched by +/+ or #", not any(m[0].startswith("$") for m in a.received()))
a.stop()

# unsubscribe: only the remaining subscription delivers
a = Client("myclientid")
a.connect()
a.subscribe([(TOPICS[0], 2), (TOPICS[1], 2), (TOPICS[2], 2)])
done = threading.Event()
a.c.on_unsubscribe = lambda *x: done.set()
a.c.unsubscribe([TOPICS[0], TOPICS[1]])
done.wait(3)
for t in (TOPICS[0], TOPICS[1], TOPICS[2]):
    a.c.publish(t, b"x", 1)
wait_for(lambda: len(a.received()) >= 1)
time.sleep(0.3)
check("unsubscribe: only Topic/C delivers", [m[0] for m in a.received()] == [TOPICS[2]])
a.stop()

# MQTT 5.0: the basic flow with Paho's 5.0 client
a = Client("v5client", protocol=mqtt.MQTTv5)
check("5.0 connect: reason code 0", a.connect() == 0)
a.subscribe(TOPICS[0], 2)
for q in (0, 1, 2):
    a.c.publish(TOPICS[0], b"v5 qos %d" % q, q)
check("5.0 basic: 3 messages", wait_for(lambda: len(a.received()) == 3))
a.stop()

failed = results.count(False)
print("%d passed, %d failed" % (len(results) - failed, failed))
sys.exit(1 if failed else 0)
