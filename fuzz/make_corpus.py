#!/usr/bin/env python3
"""Write the fuzz seed corpus: hand-built valid MQTT 3.1.1 and 5.0 packets of every type.

Usage: python3 fuzz/make_corpus.py [OUT_DIR]   (default: fuzz/corpus/seed next to this script)

Every seed is one packet exactly as it travels on the wire (the fuzz targets take raw bytes), plus
a few multi-packet streams for the `stream` target. The packets are built from the field layouts
of the specification (3.1.1 §3, 5.0 §3), including its worked examples, so the seeds start the
fuzzer deep inside every packet parser instead of at the fixed header. Re-running the script
rewrites the same files (the output is deterministic).
"""

import os
import struct
import sys


def varint(n):
    """Variable Byte Integer (§1.5.5 / §2.2.3)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def s(text):
    """UTF-8 Encoded String: two-byte length, then the bytes."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return u16(len(data)) + data


def b(data):
    """Binary Data: two-byte length, then the bytes."""
    return u16(len(data)) + data


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + body


# 5.0 properties: (identifier, encoded value).
def props(*items):
    block = b"".join(varint(pid) + value for pid, value in items)
    return varint(len(block)) + block


NO_PROPS = props()

PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUB_AVAILABLE = 0x28
SUB_ID_AVAILABLE = 0x29
SHARED_SUB_AVAILABLE = 0x2A


def user(k, v):
    return (USER_PROPERTY, s(k) + s(v))


def connect(level, flags, keep_alive, client_id, *, name="MQTT", properties=b"", will=None,
            username=None, password=None):
    body = s(name) + bytes([level, flags]) + u16(keep_alive) + properties + s(client_id)
    if will is not None:
        will_props, topic, payload = will
        body += will_props + s(topic) + b(payload)
    if username is not None:
        body += s(username)
    if password is not None:
        body += b(password)
    return packet(0x10, body)


def publish(topic, payload, *, qos=0, pid=1, dup=False, retain=False, properties=None):
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = s(topic) + (u16(pid) if qos else b"") + (properties if properties is not None else b"")
    return packet(0x30 | flags, body + payload)


def ack(kind, pid, tail=b""):
    """PUBACK (4), PUBREC (5), PUBREL (6, flags 0b0010) and PUBCOMP (7)."""
    first = (kind << 4) | (0x02 if kind == 6 else 0)
    return packet(first, u16(pid) + tail)


def subscribe(pid, filters, properties=b""):
    payload = b"".join(s(f) + bytes([opts]) for f, opts in filters)
    return packet(0x82, u16(pid) + properties + payload)


def unsubscribe(pid, filters, properties=b""):
    return packet(0xA2, u16(pid) + properties + b"".join(s(f) for f in filters))


def seeds():
    out = {}

    # ---- MQTT 3.1.1 ----------------------------------------------------------------------
    out["v311-connect-minimal"] = connect(4, 0x02, 60, "c1")
    out["v311-connect-empty-client-id"] = connect(4, 0x02, 0, "")
    # 3.1.1 §3.1.2.10 example: flags 0xCE = username, password, will QoS 1, will, clean session;
    # keep alive 10 seconds.
    out["v311-connect-spec-example"] = connect(
        4, 0xCE, 10, "wren-client", will=(b"", "clients/wren/status", b"offline"),
        username="alice", password=b"secret")
    out["v311-connect-will-retain-qos2"] = connect(
        4, 0x36, 30, "dev-7", will=(b"", "site/dev-7/lwt", b"gone"))
    out["v31-connect-mqisdp"] = connect(3, 0x02, 60, "legacy-client", name="MQIsdp")
    out["v311-connack-accepted"] = packet(0x20, bytes([0x00, 0x00]))
    out["v311-connack-session-present"] = packet(0x20, bytes([0x01, 0x00]))
    out["v311-connack-not-authorized"] = packet(0x20, bytes([0x00, 0x05]))
    out["v311-publish-qos0"] = publish("a/b", b"hi")
    out["v311-publish-qos1"] = publish("site/kitchen/temperature", b"21.5", qos=1, pid=7)
    out["v311-publish-qos2-dup-retain"] = publish("x", b"\x00\x01\x02", qos=2, pid=65535,
                                                  dup=True, retain=True)
    out["v311-publish-sys-topic"] = publish("$SYS/broker/uptime", b"12345 seconds")
    out["v311-publish-empty-payload-retain"] = publish("clear/me", b"", retain=True)
    out["v311-publish-utf8-topic"] = publish("häuser/café/温度", "ok ✓".encode())
    # Remaining Length 127 (one length byte) and 128 (two bytes): the varint boundary.
    out["v311-publish-rl127"] = publish("t", b"p" * (127 - 3))
    out["v311-publish-rl128"] = publish("t", b"p" * (128 - 3))
    out["v311-puback"] = ack(4, 7)
    out["v311-pubrec"] = ack(5, 8)
    out["v311-pubrel"] = ack(6, 8)
    out["v311-pubcomp"] = ack(7, 8)
    out["v311-subscribe-one"] = subscribe(10, [("a/b", 0)])
    out["v311-subscribe-wildcards"] = subscribe(
        11, [("site/+/temperature", 1), ("site/#", 2), ("#", 0), ("+", 1), ("+/+/+", 0),
             ("$SYS/#", 0), ("/", 1), ("a//b", 2)])
    out["v311-suback"] = packet(0x90, u16(11) + bytes([0x00, 0x01, 0x02, 0x80]))
    out["v311-unsubscribe"] = unsubscribe(12, ["a/b", "site/#", "+/x"])
    out["v311-unsuback"] = packet(0xB0, u16(12))
    out["v311-pingreq"] = packet(0xC0, b"")
    out["v311-pingresp"] = packet(0xD0, b"")
    out["v311-disconnect"] = packet(0xE0, b"")
    # Non-minimal Remaining Length: legal in 3.1.1, refused in 5.0.
    out["v311-pingreq-nonminimal-length"] = bytes([0xC0, 0x80, 0x00])

    # ---- MQTT 5.0 ------------------------------------------------------------------------
    out["v5-connect-minimal"] = connect(5, 0x02, 60, "c5", properties=NO_PROPS)
    # 5.0 §3.1.2.11 example: a Session Expiry Interval of 10 seconds.
    out["v5-connect-spec-example"] = connect(
        5, 0xCE, 10, "wren-client",
        properties=props((SESSION_EXPIRY, u32(10))),
        will=(props((WILL_DELAY, u32(5))), "clients/wren/status", b"offline"),
        username="alice", password=b"secret")
    out["v5-connect-all-props"] = connect(
        5, 0xF6, 120, "full",
        properties=props(
            (SESSION_EXPIRY, u32(3600)), (RECEIVE_MAXIMUM, u16(20)),
            (MAXIMUM_PACKET_SIZE, u32(1 << 20)), (TOPIC_ALIAS_MAXIMUM, u16(10)),
            (REQUEST_RESPONSE_INFO, b"\x01"), (REQUEST_PROBLEM_INFO, b"\x00"),
            user("region", "eu"), user("region", "us"),
            (AUTH_METHOD, s("SCRAM-SHA-1")), (AUTH_DATA, b(b"client-first"))),
        will=(props((WILL_DELAY, u32(30)), (PAYLOAD_FORMAT, b"\x01"),
                    (MESSAGE_EXPIRY, u32(60)), (CONTENT_TYPE, s("text/plain")),
                    (RESPONSE_TOPIC, s("replies/full")), (CORRELATION_DATA, b(b"\x01\x02")),
                    user("why", "lwt")),
              "site/full/lwt", b"bye"),
        username="bob", password=b"pw")
    # In 5.0 a password without a user name is allowed.
    out["v5-connect-password-only"] = connect(5, 0x42, 0, "p", properties=NO_PROPS,
                                              password=b"token")
    out["v5-connack-success"] = packet(0x20, bytes([0x00, 0x00]) + NO_PROPS)
    out["v5-connack-all-props"] = packet(0x20, bytes([0x01, 0x00]) + props(
        (SESSION_EXPIRY, u32(0)), (RECEIVE_MAXIMUM, u16(100)), (MAXIMUM_QOS, b"\x01"),
        (RETAIN_AVAILABLE, b"\x01"), (MAXIMUM_PACKET_SIZE, u32(65536)),
        (ASSIGNED_CLIENT_ID, s("auto-1234")), (TOPIC_ALIAS_MAXIMUM, u16(16)),
        (REASON_STRING, s("welcome")), user("server", "wren"),
        (WILDCARD_SUB_AVAILABLE, b"\x01"), (SUB_ID_AVAILABLE, b"\x01"),
        (SHARED_SUB_AVAILABLE, b"\x01"), (SERVER_KEEP_ALIVE, u16(30)),
        (RESPONSE_INFO, s("resp/")), (SERVER_REFERENCE, s("other:1883")),
        (AUTH_METHOD, s("SCRAM-SHA-1")), (AUTH_DATA, b(b"server-final"))))
    out["v5-connack-refused"] = packet(0x20, bytes([0x00, 0x87]) + props(
        (REASON_STRING, s("not authorized"))))
    out["v5-publish-qos0-no-props"] = publish("a/b", b"hi", properties=NO_PROPS)
    out["v5-publish-qos1-props"] = publish(
        "site/kitchen/temperature", b"21.5", qos=1, pid=7, properties=props(
            (PAYLOAD_FORMAT, b"\x01"), (MESSAGE_EXPIRY, u32(300)),
            (CONTENT_TYPE, s("text/plain")), (RESPONSE_TOPIC, s("replies/kitchen")),
            (CORRELATION_DATA, b(b"\xde\xad\xbe\xef")), user("unit", "C"), user("unit", "F")))
    out["v5-publish-topic-alias"] = publish("site/a", b"1", properties=props((TOPIC_ALIAS, u16(1))))
    out["v5-publish-alias-only"] = publish("", b"2", qos=1, pid=2,
                                           properties=props((TOPIC_ALIAS, u16(1))))
    out["v5-publish-sub-ids"] = publish(
        "a/b", b"x", qos=2, pid=3, retain=True,
        properties=props((SUBSCRIPTION_ID, varint(1)), (SUBSCRIPTION_ID, varint(127)),
                         (SUBSCRIPTION_ID, varint(128)), (SUBSCRIPTION_ID, varint(268435455))))
    out["v5-puback-short"] = ack(4, 7)
    out["v5-puback-reason"] = ack(4, 7, b"\x10")
    out["v5-puback-props"] = ack(4, 7, b"\x80" + props((REASON_STRING, s("quota")),
                                                       user("k", "v")))
    out["v5-pubrec-no-matching"] = ack(5, 8, b"\x10" + NO_PROPS)
    out["v5-pubrel-not-found"] = ack(6, 8, b"\x92")
    out["v5-pubcomp"] = ack(7, 8, b"\x00" + props((REASON_STRING, s("done"))))
    out["v5-subscribe-options"] = subscribe(
        20, [("site/+/temperature", 0x01), ("site/#", 0x2E), ("a/b", 0x14),
             ("$share/group/site/#", 0x02)],
        props((SUBSCRIPTION_ID, varint(42)), user("client", "dash")))
    out["v5-subscribe-shared"] = subscribe(21, [("$share/g1/+/x", 0x01)], NO_PROPS)
    out["v5-suback"] = packet(0x90, u16(20) + props((REASON_STRING, s("ok")))
                              + bytes([0x00, 0x01, 0x02, 0x80, 0x87, 0x8F, 0x91, 0x97, 0x9E,
                                       0xA1, 0xA2]))
    out["v5-unsubscribe"] = unsubscribe(22, ["a/b", "$share/g1/+/x"], props(user("k", "v")))
    out["v5-unsuback"] = packet(0xB0, u16(22) + NO_PROPS + bytes([0x00, 0x11, 0x87, 0x8F]))
    out["v5-pingreq"] = packet(0xC0, b"")
    out["v5-disconnect-short"] = packet(0xE0, b"")
    out["v5-disconnect-reason"] = packet(0xE0, b"\x04")
    out["v5-disconnect-props"] = packet(0xE0, b"\x9C" + props(
        (SESSION_EXPIRY, u32(0)), (SERVER_REFERENCE, s("other:1883")),
        (REASON_STRING, s("use another server")), user("a", "b")))
    out["v5-auth-continue"] = packet(0xF0, b"\x18" + props(
        (AUTH_METHOD, s("SCRAM-SHA-1")), (AUTH_DATA, b(b"client-final")),
        (REASON_STRING, s("step 2"))))
    out["v5-auth-short"] = packet(0xF0, b"")

    # ---- Streams: one connection's packets back to back (for the `stream` target) --------
    out["stream-v311-session"] = b"".join([
        out["v311-connect-spec-example"], out["v311-subscribe-wildcards"],
        out["v311-publish-qos1"], out["v311-puback"], out["v311-pingreq"],
        out["v311-unsubscribe"], out["v311-disconnect"]])
    out["stream-v5-session"] = b"".join([
        out["v5-connect-spec-example"], out["v5-subscribe-options"],
        out["v5-publish-qos1-props"], out["v5-publish-alias-only"], out["v5-puback-props"],
        out["v5-pingreq"], out["v5-disconnect-props"]])
    out["stream-v311-partial-tail"] = out["v311-pingreq"] + out["v311-publish-qos1"][:-3]
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "seed")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds())} seeds to {out_dir}")


if __name__ == "__main__":
    main()
