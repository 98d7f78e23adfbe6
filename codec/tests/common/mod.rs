//! The shared table of byte-exact vectors, written by hand from the MQTT 3.1.1 and 5.0
//! specifications, and a field-by-field packet comparison.
//!
//! Every vector is canonical: decoding `bytes` gives `packet` and encoding `packet` gives `bytes`.
//! The few large vectors (long filters, Remaining Length boundaries, 2 MB PUBLISH) are built by
//! loops over data written here, with lengths computed by this file's own Variable Byte Integer
//! encoder (`vbi`), never by the codec.
#![allow(dead_code)]

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::OnceLock;

use wren_codec::*;

/// One byte-exact vector.
#[derive(Debug)]
pub struct Vector {
    /// What the vector shows.
    pub name: &'static str,
    /// The connection's version (CONNECT names its own; this is what decode is given).
    pub version: ProtocolVersion,
    /// The packet on the wire.
    pub bytes: &'static [u8],
    /// The packet those bytes are.
    pub packet: Packet<'static>,
}

impl Vector {
    pub fn options(&self) -> DecodeOptions {
        DecodeOptions::new(self.version)
    }

    /// Vectors this large are sampled rather than exhaustively split in the slow loops.
    pub fn is_large(&self) -> bool {
        self.bytes.len() > LARGE
    }
}

/// Above this many bytes a vector counts as large.
pub const LARGE: usize = 70_000;

pub const V31: ProtocolVersion = ProtocolVersion::V31;
pub const V311: ProtocolVersion = ProtocolVersion::V311;
pub const V5: ProtocolVersion = ProtocolVersion::V5;

pub fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

pub fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn tn(s: &'static str) -> TopicName<'static> {
    TopicName::new(s).unwrap()
}

pub fn tf(s: &'static str) -> TopicFilter<'static> {
    TopicFilter::new(s).unwrap()
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub fn nz16(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap()
}

pub fn nz32(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

pub fn users(items: &'static [UserProperty<'static>]) -> UserProperties<'static> {
    List::new(items)
}

/// A Variable Byte Integer, by the algorithm of 3.1.1 §2.2.3 / 5.0 §1.5.5.
pub fn vbi(mut x: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (x % 128) as u8;
        x /= 128;
        if x > 0 {
            byte |= 128;
        }
        out.push(byte);
        if x == 0 {
            return out;
        }
    }
}

/// A UTF-8 string / binary field: two-byte length, then the bytes.
pub fn field(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// A whole packet from its first byte and body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[first], &vbi(body.len()), body])
}

fn v(
    name: &'static str,
    version: ProtocolVersion,
    bytes: Vec<u8>,
    packet: Packet<'static>,
) -> Vector {
    Vector {
        name,
        version,
        bytes: leak(bytes),
        packet,
    }
}

fn sub(filter: &'static str, options: SubscriptionOptions) -> Subscription<'static> {
    Subscription {
        filter: tf(filter),
        options,
    }
}

fn opts(qos: QoS, no_local: bool, rap: bool, rh: RetainHandling) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: rh,
    }
}

/// A QoS 0 PUBLISH to `a/b` whose Remaining Length is exactly `remaining` (payload padding).
fn publish_with_remaining(
    name: &'static str,
    version: ProtocolVersion,
    remaining: usize,
    header: &[u8],
) -> Vector {
    // Body: topic (2 + 3), 5.0 property length 0 (1), payload.
    let fixed = if version.is_v5() { 6 } else { 5 };
    let payload: Vec<u8> = (0..remaining - fixed).map(|i| (i % 251) as u8).collect();
    let payload = leak(payload);
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    let bytes = cat(&[
        &[0x30],
        header,
        &[0x00, 0x03, b'a', b'/', b'b'],
        props,
        payload,
    ]);
    assert_eq!(
        &vbi(remaining)[..],
        header,
        "{name}: header written by hand"
    );
    v(
        name,
        version,
        bytes,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload,
        }),
    )
}

/// A SUBSCRIBE with `n` generated filters (some of them long), both versions.
fn many_filters(name: &'static str, version: ProtocolVersion, n: usize, long: usize) -> Vector {
    let mut subs = Vec::new();
    let mut payload = Vec::new();
    for i in 0..n {
        let mut filter = format!("site/{i:02}/+/reading");
        if i % 7 == 3 {
            // mqttrs truncated long filters: make some of them long.
            filter.push('/');
            filter.push_str(&"x".repeat(long));
        }
        if i == n - 1 {
            filter.push_str("/#");
        }
        let filter = leak_str(filter);
        let options = if version.is_v5() {
            let rh = match i % 3 {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            };
            let qos = QoS::from_bits((i % 3) as u8).unwrap();
            opts(qos, i % 2 == 0, i % 4 == 1, rh)
        } else {
            SubscriptionOptions::qos(QoS::from_bits((i % 3) as u8).unwrap())
        };
        // Options byte (5.0 §3.8.3.1): QoS bits 0-1, No Local bit 2, RAP bit 3, RH bits 4-5.
        let byte = (i % 3) as u8
            | if version.is_v5() {
                (u8::from(i % 2 == 0) << 2) | (u8::from(i % 4 == 1) << 3) | (((i % 3) as u8) << 4)
            } else {
                0
            };
        payload.extend(field(filter.as_bytes()));
        payload.push(byte);
        subs.push(sub(filter, options));
    }
    let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
    let body = cat(&[&[0x12, 0x34], props, &payload]);
    v(
        name,
        version,
        frame(0x82, &body),
        Packet::Subscribe(Subscribe {
            packet_id: pid(0x1234),
            properties: NO_PROPERTIES,
            subscriptions: List::new(leak(subs)),
        }),
    )
}

/// A 5.0 QoS 0 PUBLISH to `a/b` with one Content Type of `len` bytes, so that the property
/// length takes `prop_len_bytes` bytes: the property block length is a Variable Byte Integer too.
fn publish_with_long_property(name: &'static str, len: usize, prop_len_bytes: &[u8]) -> Vector {
    let content_type = leak_str("c".repeat(len));
    // Property block: id (1) + string length (2) + string.
    assert_eq!(vbi(3 + len), prop_len_bytes, "{name}: written by hand");
    let body = cat(&[
        &[0x00, 0x03, b'a', b'/', b'b'],
        prop_len_bytes,
        &[0x03],
        &field(content_type.as_bytes()),
        b"!",
    ]);
    v(
        name,
        V5,
        frame(0x30, &body),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("a/b"),
            properties: Properties {
                content_type: Some(content_type),
                ..NO_PROPERTIES
            },
            payload: b"!",
        }),
    )
}

fn big_publish(name: &'static str, version: ProtocolVersion) -> Vector {
    // 2 MiB payload: Remaining Length 2,097,157 (3.1.1) / 2,097,160 (5.0) needs four length bytes.
    let payload: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let payload = leak(payload);
    let (first, header, var): (u8, &[u8], &[u8]) = if version.is_v5() {
        // QoS 1, packet id 2, property length 0: body 5 + 2 + 1 + 2 MiB = 2,097,160.
        (
            0x32,
            &[0x88, 0x80, 0x80, 0x01],
            &[0x00, 0x03, b'a', b'/', b'b', 0x00, 0x02, 0x00],
        )
    } else {
        (
            0x30,
            &[0x85, 0x80, 0x80, 0x01],
            &[0x00, 0x03, b'a', b'/', b'b'],
        )
    };
    assert_eq!(vbi(var.len() + payload.len()), header);
    let bytes = cat(&[&[first], header, var, payload]);
    v(
        name,
        version,
        bytes,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: if version.is_v5() {
                QosPid::AtLeastOnce(pid(2))
            } else {
                QosPid::AtMostOnce
            },
            retain: false,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload,
        }),
    )
}

/// Every vector, built once per test binary.
pub fn vectors() -> &'static [Vector] {
    static VECTORS: OnceLock<Vec<Vector>> = OnceLock::new();
    VECTORS.get_or_init(build)
}

/// The vectors small enough for exhaustive loops.
pub fn small_vectors() -> impl Iterator<Item = &'static Vector> {
    vectors().iter().filter(|v| !v.is_large())
}

// One commented `push` per vector reads better than one huge `vec![]` literal.
#[allow(clippy::too_many_lines, clippy::vec_init_then_push)]
fn build() -> Vec<Vector> {
    let mut out = Vec::new();

    // ---------------------------------------------------------------- CONNECT
    // 3.1.1 §3.1.2.10 example: flags 0xCE (User Name, Password, Will QoS 1, Will, Clean Session),
    // Keep Alive 10, followed by the payload fields in their order (§3.1.3).
    out.push(v(
        "3.1.1 CONNECT: will + username + password (spec example header)",
        V311,
        cat(&[
            &[0x10, 36],
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A],
            &[0x00, 0x04],
            b"wren",
            &[0x00, 0x03],
            b"w/t",
            &[0x00, 0x03],
            b"bye",
            &[0x00, 0x04],
            b"user",
            &[0x00, 0x02],
            b"pw",
        ]),
        Packet::Connect(Connect {
            protocol: V311,
            bridge: false,
            clean_start: true,
            keep_alive: 10,
            client_id: "wren",
            will: Some(Will {
                topic: tn("w/t"),
                payload: b"bye",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: NO_PROPERTIES,
            }),
            username: Some("user"),
            password: Some(b"pw"),
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "3.1.1 CONNECT: empty client id, clean session, no keep alive",
        V311,
        vec![
            0x10, 12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
        ],
        Packet::Connect(Connect {
            protocol: V311,
            bridge: false,
            clean_start: true,
            keep_alive: 0,
            client_id: "",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    ));
    // Flags 0xB4: User Name, Will Retain, Will QoS 2, Will; not clean.
    out.push(v(
        "3.1.1 CONNECT: retained QoS 2 will, username only, keep alive 65535",
        V311,
        cat(&[
            &[0x10, 29],
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xB4, 0xFF, 0xFF],
            &[0x00, 0x02],
            b"c1",
            &[0x00, 0x05],
            b"$w/xy",
            &[0x00, 0x00],
            &[0x00, 0x04],
            b"name",
        ]),
        Packet::Connect(Connect {
            protocol: V311,
            bridge: false,
            clean_start: false,
            keep_alive: 65535,
            client_id: "c1",
            will: Some(Will {
                topic: tn("$w/xy"),
                payload: b"",
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: NO_PROPERTIES,
            }),
            username: Some("name"),
            password: None,
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "3.1 CONNECT: MQIsdp level 3",
        V311,
        cat(&[
            &[0x10, 17],
            &[0x00, 0x06],
            b"MQIsdp",
            &[0x03, 0x02, 0x00, 0x3C],
            &[0x00, 0x03],
            b"abc",
        ]),
        Packet::Connect(Connect {
            protocol: V31,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id: "abc",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    ));
    // Mosquitto's try_private: a bridge sets the protocol level's high bit.
    out.push(v(
        "3.1 CONNECT: bridge (MQIsdp level 0x83)",
        V311,
        cat(&[
            &[0x10, 17],
            &[0x00, 0x06],
            b"MQIsdp",
            &[0x83, 0x02, 0x00, 0x3C],
            &[0x00, 0x03],
            b"br1",
        ]),
        Packet::Connect(Connect {
            protocol: V31,
            bridge: true,
            clean_start: true,
            keep_alive: 60,
            client_id: "br1",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "3.1.1 CONNECT: bridge (level 0x84), persistent session, username",
        V311,
        cat(&[
            &[0x10, 21],
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x84, 0x80, 0x00, 0x3C],
            &[0x00, 0x03],
            b"br1",
            &[0x00, 0x04],
            b"user",
        ]),
        Packet::Connect(Connect {
            protocol: V311,
            bridge: true,
            clean_start: false,
            keep_alive: 60,
            client_id: "br1",
            will: None,
            username: Some("user"),
            password: None,
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "5.0 CONNECT: bridge (level 0x85), session expiry",
        V5,
        cat(&[
            &[0x10, 21],
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x85, 0x02, 0x00, 0x3C],
            &[0x05, 0x11, 0x00, 0x00, 0x00, 0x3C],
            &[0x00, 0x03],
            b"br1",
        ]),
        Packet::Connect(Connect {
            protocol: V5,
            bridge: true,
            clean_start: true,
            keep_alive: 60,
            client_id: "br1",
            will: None,
            username: None,
            password: None,
            properties: Properties {
                session_expiry_interval: Some(60),
                ..NO_PROPERTIES
            },
        }),
    ));
    out.push(v(
        "5.0 CONNECT: every CONNECT property and every will property",
        V5,
        cat(&[
            &[0x10, 0x91, 0x01], // Remaining Length 145: two bytes
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xEE, 0x00, 0x3C],
            &[47],                           // property length
            &[0x11, 0x00, 0x00, 0x0E, 0x10], // session expiry 3600
            &[0x15, 0x00, 0x05],             // authentication method
            b"SCRAM",
            &[0x16, 0x00, 0x03, 1, 2, 3], // authentication data
            &[0x17, 0x00],                // request problem information 0
            &[0x19, 0x01],                // request response information 1
            &[0x21, 0x00, 0x14],          // receive maximum 20
            &[0x22, 0x00, 0x0A],          // topic alias maximum 10
            &[0x26, 0x00, 0x06],          // user property
            b"region",
            &[0x00, 0x02],
            b"eu",
            &[0x27, 0x00, 0x10, 0x00, 0x00], // maximum packet size 1 MiB
            &[0x00, 0x06],
            b"wren-1",
            &[57],                           // will property length
            &[0x01, 0x01],                   // payload format: UTF-8
            &[0x02, 0x00, 0x00, 0x00, 0x78], // message expiry 120
            &[0x03, 0x00, 0x0A],
            b"text/plain",
            &[0x08, 0x00, 0x06],
            b"resp/t",
            &[0x09, 0x00, 0x02, 0xAB, 0xCD], // correlation data
            &[0x18, 0x00, 0x00, 0x00, 0x1E], // will delay 30
            &[0x26, 0x00, 0x02],
            b"k1",
            &[0x00, 0x02],
            b"v1",
            &[0x26, 0x00, 0x02],
            b"k1",
            &[0x00, 0x02],
            b"v2",
            &[0x00, 0x06],
            b"will/t",
            &[0x00, 0x04],
            b"gone",
            &[0x00, 0x01],
            b"u",
            &[0x00, 0x02, 0x00, 0xFF],
        ]),
        Packet::Connect(Connect {
            protocol: V5,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id: "wren-1",
            will: Some(Will {
                topic: tn("will/t"),
                payload: b"gone",
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties {
                    payload_format_indicator: Some(PayloadFormat::Utf8),
                    message_expiry_interval: Some(120),
                    content_type: Some("text/plain"),
                    response_topic: Some(tn("resp/t")),
                    correlation_data: Some(&[0xAB, 0xCD]),
                    will_delay_interval: Some(30),
                    user_properties: users(&[("k1", "v1"), ("k1", "v2")]),
                    ..NO_PROPERTIES
                },
            }),
            username: Some("u"),
            password: Some(&[0x00, 0xFF]),
            properties: Properties {
                session_expiry_interval: Some(3600),
                authentication_method: Some("SCRAM"),
                authentication_data: Some(&[1, 2, 3]),
                request_problem_information: Some(false),
                request_response_information: Some(true),
                receive_maximum: Some(nz16(20)),
                topic_alias_maximum: Some(10),
                user_properties: users(&[("region", "eu")]),
                maximum_packet_size: Some(nz32(1 << 20)),
                ..NO_PROPERTIES
            },
        }),
    ));
    // 5.0 §3.1.2.11 example (figure 3-7): flags 0xCE, Keep Alive 10, Property Length 5 with
    // Session Expiry Interval 10; the payload as in the 3.1.1 vector, with an empty will property
    // block.
    out.push(v(
        "5.0 CONNECT: spec example header, will + username + password",
        V5,
        cat(&[
            &[0x10, 43],
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xCE, 0x00, 0x0A],
            &[0x05, 0x11, 0x00, 0x00, 0x00, 0x0A],
            &[0x00, 0x04],
            b"wren",
            &[0x00],
            &[0x00, 0x03],
            b"w/t",
            &[0x00, 0x03],
            b"bye",
            &[0x00, 0x04],
            b"user",
            &[0x00, 0x02],
            b"pw",
        ]),
        Packet::Connect(Connect {
            protocol: V5,
            bridge: false,
            clean_start: true,
            keep_alive: 10,
            client_id: "wren",
            will: Some(Will {
                topic: tn("w/t"),
                payload: b"bye",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: NO_PROPERTIES,
            }),
            username: Some("user"),
            password: Some(b"pw"),
            properties: Properties {
                session_expiry_interval: Some(10),
                ..NO_PROPERTIES
            },
        }),
    ));
    // 5.0 allows a password without a user name (§3.1.2.9).
    out.push(v(
        "5.0 CONNECT: password without username",
        V5,
        cat(&[
            &[0x10, 16],
            &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x40, 0x00, 0x00],
            &[0x00],
            &[0x00, 0x00],
            &[0x00, 0x01, b'p'],
        ]),
        Packet::Connect(Connect {
            protocol: V5,
            bridge: false,
            clean_start: false,
            keep_alive: 0,
            client_id: "",
            will: None,
            username: None,
            password: Some(b"p"),
            properties: NO_PROPERTIES,
        }),
    ));

    // ---------------------------------------------------------------- CONNACK
    out.push(v(
        "3.1.1 CONNACK: accepted",
        V311,
        vec![0x20, 0x02, 0x00, 0x00],
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::V3_ACCEPTED,
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "3.1.1 CONNACK: session present",
        V311,
        vec![0x20, 0x02, 0x01, 0x00],
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::V3_ACCEPTED,
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "3.1.1 CONNACK: not authorized (5)",
        V311,
        vec![0x20, 0x02, 0x00, 0x05],
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::V3_NOT_AUTHORIZED,
            properties: NO_PROPERTIES,
        }),
    ));
    out.push(v(
        "5.0 CONNACK: every capability property",
        V5,
        cat(&[
            &[0x20, 84, 0x01, 0x00, 81],
            &[0x11, 0x00, 0x00, 0x1C, 0x20], // session expiry 7200
            &[0x12, 0x00, 0x06],
            b"auto-1",
            &[0x13, 0x00, 0x1E], // server keep alive 30
            &[0x15, 0x00, 0x05],
            b"SCRAM",
            &[0x16, 0x00, 0x01, 0x09],
            &[0x1A, 0x00, 0x03],
            b"ri/",
            &[0x1C, 0x00, 0x0A],
            b"other:1883",
            &[0x1F, 0x00, 0x02],
            b"ok",
            &[0x21, 0x00, 0x64], // receive maximum 100
            &[0x22, 0x00, 0x10], // topic alias maximum 16
            &[0x24, 0x01],       // maximum QoS 1
            &[0x25, 0x00],       // retain not available
            &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],
            &[0x27, 0x00, 0x01, 0x00, 0x00], // maximum packet size 65536
            &[0x28, 0x01],
            &[0x29, 0x00],
            &[0x2A, 0x01],
        ]),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::SUCCESS,
            properties: Properties {
                session_expiry_interval: Some(7200),
                assigned_client_identifier: Some("auto-1"),
                server_keep_alive: Some(30),
                authentication_method: Some("SCRAM"),
                authentication_data: Some(&[9]),
                response_information: Some("ri/"),
                server_reference: Some("other:1883"),
                reason_string: Some("ok"),
                receive_maximum: Some(nz16(100)),
                topic_alias_maximum: Some(16),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                user_properties: users(&[("a", "b")]),
                maximum_packet_size: Some(nz32(65536)),
                wildcard_subscription_available: Some(true),
                subscription_identifier_available: Some(false),
                shared_subscription_available: Some(true),
                ..NO_PROPERTIES
            },
        }),
    ));
    out.push(v(
        "5.0 CONNACK: refused, not authorized, property length 0",
        V5,
        vec![0x20, 0x03, 0x00, 0x87, 0x00],
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::NOT_AUTHORIZED,
            properties: NO_PROPERTIES,
        }),
    ));

    // ---------------------------------------------------------------- PUBLISH
    // 3.1.1 §3.3.2.3 example: topic "a/b", packet identifier 10.
    out.push(v(
        "3.1.1 PUBLISH: QoS 0",
        V311,
        vec![0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'],
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload: b"hi",
        }),
    ));
    out.push(v(
        "3.1.1 PUBLISH: QoS 1, packet id 10 (spec example)",
        V311,
        vec![
            0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'x', b'y', b'z',
        ],
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(pid(10)),
            retain: false,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload: b"xyz",
        }),
    ));
    out.push(v(
        "3.1.1 PUBLISH: QoS 2, DUP, RETAIN",
        V311,
        vec![0x3D, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0xFF, 0xFF, 0x00],
        Packet::Publish(Publish {
            dup: true,
            qos_pid: QosPid::ExactlyOnce(pid(65535)),
            retain: true,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload: &[0x00],
        }),
    ));
    out.push(v(
        "3.1.1 PUBLISH: QoS 0 retained, empty payload (clears a retained message)",
        V311,
        vec![0x31, 0x05, 0x00, 0x03, b'a', b'/', b'b'],
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: true,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload: b"",
        }),
    ));
    out.push(v(
        "3.1.1 PUBLISH: multi-byte UTF-8 topic",
        V311,
        cat(&[&[0x30, 0x0D, 0x00, 0x0B], "é/€/😀".as_bytes()]),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("é/€/😀"),
            properties: NO_PROPERTIES,
            payload: b"",
        }),
    ));
    out.push(v(
        "5.0 PUBLISH: QoS 0, property length 0, empty payload",
        V5,
        vec![0x30, 0x06, 0x00, 0x03, b'a', b'/', b'b', 0x00],
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload: b"",
        }),
    ));
    out.push(v(
        "5.0 PUBLISH: QoS 1 retained with every PUBLISH property",
        V5,
        cat(&[
            &[0x33, 52, 0x00, 0x03],
            b"s/t",
            &[0x12, 0x34, 42],
            &[0x01, 0x01],
            &[0x02, 0x00, 0x00, 0x00, 0x3C],
            &[0x03, 0x00, 0x04],
            b"json",
            &[0x08, 0x00, 0x03],
            b"r/1",
            &[0x09, 0x00, 0x02],
            b"c1",
            &[0x23, 0x00, 0x05],
            &[0x26, 0x00, 0x01, b'x', 0x00, 0x01, b'y'],
            &[0x26, 0x00, 0x01, b'x', 0x00, 0x01, b'z'],
            b"{}",
        ]),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(pid(0x1234)),
            retain: true,
            topic: tn("s/t"),
            properties: Properties {
                payload_format_indicator: Some(PayloadFormat::Utf8),
                message_expiry_interval: Some(60),
                content_type: Some("json"),
                response_topic: Some(tn("r/1")),
                correlation_data: Some(b"c1"),
                topic_alias: Some(nz16(5)),
                user_properties: users(&[("x", "y"), ("x", "z")]),
                ..NO_PROPERTIES
            },
            payload: b"{}",
        }),
    ));
    out.push(v(
        "5.0 PUBLISH: QoS 2 DUP, empty topic with Topic Alias",
        V5,
        vec![
            0x3C, 0x09, 0x00, 0x00, 0x00, 0x07, 0x03, 0x23, 0x00, 0x0A, b'p',
        ],
        Packet::Publish(Publish {
            dup: true,
            qos_pid: QosPid::ExactlyOnce(pid(7)),
            retain: false,
            topic: TopicName::alias_only(),
            properties: Properties {
                topic_alias: Some(nz16(10)),
                ..NO_PROPERTIES
            },
            payload: b"p",
        }),
    ));
    // A server forwarding one message that matched three subscriptions [MQTT-3.3.4-4].
    out.push(v(
        "5.0 PUBLISH: server PUBLISH with multiple subscription identifiers",
        V5,
        cat(&[
            &[0x30, 24, 0x00, 0x03],
            b"a/b",
            &[17],
            &[0x0B, 0x01],
            &[0x0B, 0x80, 0x01],
            &[0x0B, 0xFF, 0xFF, 0xFF, 0x7F],
            &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
            b"m",
        ]),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("a/b"),
            properties: Properties {
                subscription_identifiers: List::new(&[1, 128, 268_435_455]),
                user_properties: users(&[("k", "v")]),
                ..NO_PROPERTIES
            },
            payload: b"m",
        }),
    ));
    // Remaining Length boundaries (3.1.1 §2.2.3 table 2.4 / 5.0 §1.5.5 table 1-1).
    out.push(publish_with_remaining(
        "3.1.1 PUBLISH: Remaining Length 127",
        V311,
        127,
        &[0x7F],
    ));
    out.push(publish_with_remaining(
        "3.1.1 PUBLISH: Remaining Length 128",
        V311,
        128,
        &[0x80, 0x01],
    ));
    out.push(publish_with_remaining(
        "5.0 PUBLISH: Remaining Length 16383",
        V5,
        16_383,
        &[0xFF, 0x7F],
    ));
    out.push(publish_with_remaining(
        "5.0 PUBLISH: Remaining Length 16384",
        V5,
        16_384,
        &[0x80, 0x80, 0x01],
    ));
    out.push(publish_with_remaining(
        "3.1.1 PUBLISH: Remaining Length 2097151",
        V311,
        2_097_151,
        &[0xFF, 0xFF, 0x7F],
    ));
    // Property length boundaries: 127 / 128 (two bytes) / 16,384 (three bytes).
    out.push(publish_with_long_property(
        "5.0 PUBLISH: property length 127",
        124,
        &[0x7F],
    ));
    out.push(publish_with_long_property(
        "5.0 PUBLISH: property length 128",
        125,
        &[0x80, 0x01],
    ));
    out.push(publish_with_long_property(
        "5.0 PUBLISH: property length 16384",
        16_381,
        &[0x80, 0x80, 0x01],
    ));
    out.push(big_publish("3.1.1 PUBLISH: 2 MiB payload", V311));
    out.push(big_publish("5.0 PUBLISH: 2 MiB payload, QoS 1", V5));

    // ---------------------------------------------------------------- PUBACK .. PUBCOMP
    for (first, name311, name5_2, name5_3, code) in [
        (
            0x40u8,
            "3.1.1 PUBACK",
            "5.0 PUBACK: Remaining Length 2 (rust-mqtt #59)",
            "5.0 PUBACK: Remaining Length 3",
            0x10u8,
        ),
        (
            0x50,
            "3.1.1 PUBREC",
            "5.0 PUBREC: Remaining Length 2",
            "5.0 PUBREC: Remaining Length 3",
            0x80,
        ),
        (
            0x62,
            "3.1.1 PUBREL",
            "5.0 PUBREL: Remaining Length 2",
            "5.0 PUBREL: Remaining Length 3",
            0x92,
        ),
        (
            0x70,
            "3.1.1 PUBCOMP",
            "5.0 PUBCOMP: Remaining Length 2",
            "5.0 PUBCOMP: Remaining Length 3",
            0x92,
        ),
    ] {
        let wrap = |a: Ack<'static>| match first {
            0x40 => Packet::PubAck(a),
            0x50 => Packet::PubRec(a),
            0x62 => Packet::PubRel(a),
            _ => Packet::PubComp(a),
        };
        out.push(v(
            name311,
            V311,
            vec![first, 0x02, 0x00, 0x0A],
            wrap(Ack::new(pid(10))),
        ));
        out.push(v(
            name5_2,
            V5,
            vec![first, 0x02, 0xAB, 0xCD],
            wrap(Ack::new(pid(0xABCD))),
        ));
        out.push(v(
            name5_3,
            V5,
            vec![first, 0x03, 0x00, 0x01, code],
            wrap(Ack {
                packet_id: pid(1),
                reason_code: ReasonCode(code),
                properties: NO_PROPERTIES,
            }),
        ));
    }
    out.push(v(
        "5.0 PUBACK: reason string and user property",
        V5,
        cat(&[
            &[0x40, 18, 0x00, 0x01, 0x10, 14],
            &[0x1F, 0x00, 0x04],
            b"none",
            &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],
        ]),
        Packet::PubAck(Ack {
            packet_id: pid(1),
            reason_code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            properties: Properties {
                reason_string: Some("none"),
                user_properties: users(&[("a", "b")]),
                ..NO_PROPERTIES
            },
        }),
    ));
    out.push(v(
        "5.0 PUBCOMP: success with a reason string",
        V5,
        cat(&[
            &[0x70, 0x08, 0x00, 0x02, 0x00, 0x04, 0x1F, 0x00, 0x01],
            b"x",
        ]),
        Packet::PubComp(Ack {
            packet_id: pid(2),
            reason_code: ReasonCode::SUCCESS,
            properties: Properties {
                reason_string: Some("x"),
                ..NO_PROPERTIES
            },
        }),
    ));

    // ---------------------------------------------------------------- SUBSCRIBE
    // 3.1.1 §3.8.3 example: "a/b" QoS 1, "c/d" QoS 2, packet identifier 10.
    out.push(v(
        "3.1.1 SUBSCRIBE: spec example",
        V311,
        cat(&[
            &[0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03],
            b"a/b",
            &[0x01, 0x00, 0x03],
            b"c/d",
            &[0x02],
        ]),
        Packet::Subscribe(Subscribe {
            packet_id: pid(10),
            properties: NO_PROPERTIES,
            subscriptions: List::new(leak(vec![
                sub("a/b", SubscriptionOptions::qos(QoS::AtLeastOnce)),
                sub("c/d", SubscriptionOptions::qos(QoS::ExactlyOnce)),
            ])),
        }),
    ));
    out.push(v(
        "5.0 SUBSCRIBE: every subscription option, identifier, user property, shared",
        V5,
        cat(&[
            &[0x82, 41, 0x00, 0x0B, 9],
            &[0x0B, 42],
            &[0x26, 0x00, 0x01, b'u', 0x00, 0x01, b'1'],
            &[0x00, 0x03],
            b"a/+",
            &[0x01],
            &[0x00, 0x03],
            b"b/#",
            &[0x1E], // QoS 2, No Local, Retain As Published, Retain Handling 1
            &[0x00, 0x0A],
            b"$share/g/c",
            &[0x20], // QoS 0, Retain Handling 2
            &[0x00, 0x01],
            b"d",
            &[0x09], // QoS 1, Retain As Published
        ]),
        Packet::Subscribe(Subscribe {
            packet_id: pid(11),
            properties: Properties {
                subscription_identifiers: List::new(&[42]),
                user_properties: users(&[("u", "1")]),
                ..NO_PROPERTIES
            },
            subscriptions: List::new(leak(vec![
                sub("a/+", SubscriptionOptions::qos(QoS::AtLeastOnce)),
                sub(
                    "b/#",
                    opts(QoS::ExactlyOnce, true, true, RetainHandling::SendIfNew),
                ),
                sub(
                    "$share/g/c",
                    opts(QoS::AtMostOnce, false, false, RetainHandling::DoNotSend),
                ),
                sub(
                    "d",
                    opts(
                        QoS::AtLeastOnce,
                        false,
                        true,
                        RetainHandling::SendAtSubscribe,
                    ),
                ),
            ])),
        }),
    ));
    out.push(many_filters(
        "3.1.1 SUBSCRIBE: 20 filters (mqttrs truncation)",
        V311,
        20,
        300,
    ));
    out.push(many_filters(
        "5.0 SUBSCRIBE: 20 filters with all options",
        V5,
        20,
        300,
    ));
    out.push(many_filters(
        "3.1.1 SUBSCRIBE: 8 filters, some 5000 bytes long",
        V311,
        8,
        5000,
    ));
    // One filter of the maximum string length, 65,535 bytes.
    {
        let filter = leak_str(format!("{}/#", "f".repeat(65_533)));
        let body = cat(&[&[0x00, 0x01, 0x00], &field(filter.as_bytes()), &[0x02]]);
        out.push(v(
            "5.0 SUBSCRIBE: one 65535-byte filter",
            V5,
            frame(0x82, &body),
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                subscriptions: List::new(leak(vec![Subscription {
                    filter: TopicFilter::new(filter).unwrap(),
                    options: SubscriptionOptions::qos(QoS::ExactlyOnce),
                }])),
            }),
        ));
    }

    // ---------------------------------------------------------------- SUBACK
    // 3.1.1 §3.9.3 example: granted QoS 0, granted QoS 2, failure.
    out.push(v(
        "3.1.1 SUBACK: spec example with failure 0x80",
        V311,
        vec![0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80],
        Packet::SubAck(SubAck {
            packet_id: pid(10),
            properties: NO_PROPERTIES,
            reason_codes: List::new(&[ReasonCode(0), ReasonCode(2), ReasonCode::V3_SUBACK_FAILURE]),
        }),
    ));
    out.push(v(
        "5.0 SUBACK: every SUBACK reason code",
        V5,
        cat(&[
            &[0x90, 19, 0x00, 0x0B, 4, 0x1F, 0x00, 0x01, b'x'],
            &[
                0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
            ],
        ]),
        Packet::SubAck(SubAck {
            packet_id: pid(11),
            properties: Properties {
                reason_string: Some("x"),
                ..NO_PROPERTIES
            },
            reason_codes: List::new(&[
                ReasonCode::SUCCESS,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::UNSPECIFIED_ERROR,
                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
                ReasonCode::NOT_AUTHORIZED,
                ReasonCode::TOPIC_FILTER_INVALID,
                ReasonCode::PACKET_IDENTIFIER_IN_USE,
                ReasonCode::QUOTA_EXCEEDED,
                ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
            ]),
        }),
    ));

    // ---------------------------------------------------------------- UNSUBSCRIBE / UNSUBACK
    // 3.1.1 §3.10.3 example: "a/b", "c/d".
    out.push(v(
        "3.1.1 UNSUBSCRIBE: spec example",
        V311,
        cat(&[
            &[0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03],
            b"a/b",
            &[0x00, 0x03],
            b"c/d",
        ]),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(10),
            properties: NO_PROPERTIES,
            filters: List::new(leak(vec![tf("a/b"), tf("c/d")])),
        }),
    ));
    out.push(v(
        "5.0 UNSUBSCRIBE: user property, wildcard and shared filters",
        V5,
        cat(&[
            &[0xA2, 32, 0x00, 0x0C, 7],
            &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
            &[0x00, 0x03],
            b"a/b",
            &[0x00, 0x03],
            b"c/#",
            &[0x00, 0x0A],
            b"$share/g/x",
        ]),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(12),
            properties: Properties {
                user_properties: users(&[("k", "v")]),
                ..NO_PROPERTIES
            },
            filters: List::new(leak(vec![tf("a/b"), tf("c/#"), tf("$share/g/x")])),
        }),
    ));
    out.push(v(
        "3.1.1 UNSUBACK",
        V311,
        vec![0xB0, 0x02, 0x00, 0x0A],
        Packet::UnsubAck(SubAck {
            packet_id: pid(10),
            properties: NO_PROPERTIES,
            reason_codes: List::empty(),
        }),
    ));
    out.push(v(
        "5.0 UNSUBACK: every UNSUBACK reason code",
        V5,
        vec![
            0xB0, 10, 0x00, 0x0C, 0x00, 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91,
        ],
        Packet::UnsubAck(SubAck {
            packet_id: pid(12),
            properties: NO_PROPERTIES,
            reason_codes: List::new(&[
                ReasonCode::SUCCESS,
                ReasonCode::NO_SUBSCRIPTION_EXISTED,
                ReasonCode::UNSPECIFIED_ERROR,
                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
                ReasonCode::NOT_AUTHORIZED,
                ReasonCode::TOPIC_FILTER_INVALID,
                ReasonCode::PACKET_IDENTIFIER_IN_USE,
            ]),
        }),
    ));

    // ---------------------------------------------------------------- PINGREQ / PINGRESP
    for version in [V311, V5] {
        let (a, b) = if version.is_v5() {
            ("5.0 PINGREQ", "5.0 PINGRESP")
        } else {
            ("3.1.1 PINGREQ", "3.1.1 PINGRESP")
        };
        out.push(v(a, version, vec![0xC0, 0x00], Packet::PingReq));
        out.push(v(b, version, vec![0xD0, 0x00], Packet::PingResp));
    }

    // ---------------------------------------------------------------- DISCONNECT / AUTH
    out.push(v(
        "3.1.1 DISCONNECT",
        V311,
        vec![0xE0, 0x00],
        Packet::Disconnect(Disconnect::NORMAL),
    ));
    out.push(v(
        "5.0 DISCONNECT: Remaining Length 0 (rust-mqtt #59)",
        V5,
        vec![0xE0, 0x00],
        Packet::Disconnect(Disconnect::NORMAL),
    ));
    out.push(v(
        "5.0 DISCONNECT: Remaining Length 1, with will",
        V5,
        vec![0xE0, 0x01, 0x04],
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::DISCONNECT_WITH_WILL)),
    ));
    out.push(v(
        "5.0 DISCONNECT: use another server, with properties",
        V5,
        cat(&[
            &[0xE0, 23, 0x9C, 21],
            &[0x11, 0x00, 0x00, 0x00, 0x00],
            &[0x1C, 0x00, 0x01, b's'],
            &[0x1F, 0x00, 0x02],
            b"go",
            &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],
        ]),
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::USE_ANOTHER_SERVER,
            properties: Properties {
                session_expiry_interval: Some(0),
                server_reference: Some("s"),
                reason_string: Some("go"),
                user_properties: users(&[("a", "b")]),
                ..NO_PROPERTIES
            },
        }),
    ));
    out.push(v(
        "5.0 AUTH: Remaining Length 0",
        V5,
        vec![0xF0, 0x00],
        Packet::Auth(Disconnect::NORMAL),
    ));
    out.push(v(
        "5.0 AUTH: Remaining Length 1, continue authentication",
        V5,
        vec![0xF0, 0x01, 0x18],
        Packet::Auth(Disconnect::with_reason(ReasonCode::CONTINUE_AUTHENTICATION)),
    ));
    out.push(v(
        "5.0 AUTH: re-authenticate with method, data and reason",
        V5,
        cat(&[
            &[0xF0, 18, 0x19, 16],
            &[0x15, 0x00, 0x05],
            b"SCRAM",
            &[0x16, 0x00, 0x01, 0x01],
            &[0x1F, 0x00, 0x01, b'r'],
        ]),
        Packet::Auth(Disconnect {
            reason_code: ReasonCode::RE_AUTHENTICATE,
            properties: Properties {
                authentication_method: Some("SCRAM"),
                authentication_data: Some(&[1]),
                reason_string: Some("r"),
                ..NO_PROPERTIES
            },
        }),
    ));
    out
}

/// Compare two property sets field by field, iterating both lists.
pub fn assert_properties_eq(ctx: &str, a: &Properties<'_>, e: &Properties<'_>) {
    assert_eq!(
        a.payload_format_indicator, e.payload_format_indicator,
        "{ctx}: payload format"
    );
    assert_eq!(
        a.message_expiry_interval, e.message_expiry_interval,
        "{ctx}: message expiry"
    );
    assert_eq!(a.content_type, e.content_type, "{ctx}: content type");
    assert_eq!(a.response_topic, e.response_topic, "{ctx}: response topic");
    assert_eq!(
        a.correlation_data, e.correlation_data,
        "{ctx}: correlation data"
    );
    assert_eq!(
        a.subscription_identifiers.iter().collect::<Vec<_>>(),
        e.subscription_identifiers.iter().collect::<Vec<_>>(),
        "{ctx}: subscription identifiers"
    );
    assert_eq!(
        a.subscription_identifiers.len(),
        e.subscription_identifiers.len()
    );
    assert_eq!(
        a.session_expiry_interval, e.session_expiry_interval,
        "{ctx}: session expiry"
    );
    assert_eq!(
        a.assigned_client_identifier, e.assigned_client_identifier,
        "{ctx}"
    );
    assert_eq!(a.server_keep_alive, e.server_keep_alive, "{ctx}");
    assert_eq!(a.authentication_method, e.authentication_method, "{ctx}");
    assert_eq!(a.authentication_data, e.authentication_data, "{ctx}");
    assert_eq!(
        a.request_problem_information, e.request_problem_information,
        "{ctx}"
    );
    assert_eq!(a.will_delay_interval, e.will_delay_interval, "{ctx}");
    assert_eq!(
        a.request_response_information, e.request_response_information,
        "{ctx}"
    );
    assert_eq!(a.response_information, e.response_information, "{ctx}");
    assert_eq!(a.server_reference, e.server_reference, "{ctx}");
    assert_eq!(a.reason_string, e.reason_string, "{ctx}");
    assert_eq!(a.receive_maximum, e.receive_maximum, "{ctx}");
    assert_eq!(a.topic_alias_maximum, e.topic_alias_maximum, "{ctx}");
    assert_eq!(a.topic_alias, e.topic_alias, "{ctx}");
    assert_eq!(a.maximum_qos, e.maximum_qos, "{ctx}");
    assert_eq!(a.retain_available, e.retain_available, "{ctx}");
    assert_eq!(
        a.user_properties.iter().collect::<Vec<_>>(),
        e.user_properties.iter().collect::<Vec<_>>(),
        "{ctx}: user properties"
    );
    assert_eq!(a.user_properties.len(), e.user_properties.len(), "{ctx}");
    assert_eq!(a.maximum_packet_size, e.maximum_packet_size, "{ctx}");
    assert_eq!(
        a.wildcard_subscription_available, e.wildcard_subscription_available,
        "{ctx}"
    );
    assert_eq!(
        a.subscription_identifier_available, e.subscription_identifier_available,
        "{ctx}"
    );
    assert_eq!(
        a.shared_subscription_available, e.shared_subscription_available,
        "{ctx}"
    );
    assert_eq!(a.is_empty(), e.is_empty(), "{ctx}: is_empty");
    assert_eq!(a, e, "{ctx}: whole property set");
}

fn assert_ack_eq(ctx: &str, a: &Ack<'_>, e: &Ack<'_>) {
    assert_eq!(a.packet_id, e.packet_id, "{ctx}: packet id");
    assert_eq!(a.reason_code, e.reason_code, "{ctx}: reason code");
    assert_properties_eq(ctx, &a.properties, &e.properties);
}

fn assert_suback_eq(ctx: &str, a: &SubAck<'_>, e: &SubAck<'_>) {
    assert_eq!(a.packet_id, e.packet_id, "{ctx}: packet id");
    assert_properties_eq(ctx, &a.properties, &e.properties);
    assert_eq!(
        a.reason_codes.iter().collect::<Vec<_>>(),
        e.reason_codes.iter().collect::<Vec<_>>(),
        "{ctx}: reason codes"
    );
    assert_eq!(a.reason_codes.len(), e.reason_codes.len(), "{ctx}");
    assert_eq!(
        a.reason_codes.is_empty(),
        e.reason_codes.is_empty(),
        "{ctx}"
    );
}

fn assert_disconnect_eq(ctx: &str, a: &Disconnect<'_>, e: &Disconnect<'_>) {
    assert_eq!(a.reason_code, e.reason_code, "{ctx}: reason code");
    assert_properties_eq(ctx, &a.properties, &e.properties);
}

/// Compare a decoded packet with the expected one, every field, iterating every list.
pub fn assert_packet_eq(ctx: &str, actual: &Packet<'_>, expected: &Packet<'_>) {
    assert_eq!(
        actual.packet_type(),
        expected.packet_type(),
        "{ctx}: packet type"
    );
    match (actual, expected) {
        (Packet::Connect(a), Packet::Connect(e)) => {
            assert_eq!(a.protocol, e.protocol, "{ctx}: protocol");
            assert_eq!(a.bridge, e.bridge, "{ctx}: bridge");
            assert_eq!(a.clean_start, e.clean_start, "{ctx}: clean start");
            assert_eq!(a.keep_alive, e.keep_alive, "{ctx}: keep alive");
            assert_eq!(a.client_id, e.client_id, "{ctx}: client id");
            assert_eq!(a.username, e.username, "{ctx}: username");
            assert_eq!(a.password, e.password, "{ctx}: password");
            assert_properties_eq(ctx, &a.properties, &e.properties);
            match (&a.will, &e.will) {
                (None, None) => {}
                (Some(a), Some(e)) => {
                    assert_eq!(a.topic, e.topic, "{ctx}: will topic");
                    assert_eq!(a.payload, e.payload, "{ctx}: will payload");
                    assert_eq!(a.qos, e.qos, "{ctx}: will qos");
                    assert_eq!(a.retain, e.retain, "{ctx}: will retain");
                    assert_properties_eq(ctx, &a.properties, &e.properties);
                }
                (a, e) => panic!("{ctx}: will {a:?} != {e:?}"),
            }
        }
        (Packet::ConnAck(a), Packet::ConnAck(e)) => {
            assert_eq!(
                a.session_present, e.session_present,
                "{ctx}: session present"
            );
            assert_eq!(a.code, e.code, "{ctx}: code");
            assert_properties_eq(ctx, &a.properties, &e.properties);
        }
        (Packet::Publish(a), Packet::Publish(e)) => {
            assert_eq!(a.dup, e.dup, "{ctx}: dup");
            assert_eq!(a.qos_pid, e.qos_pid, "{ctx}: qos/pid");
            assert_eq!(a.retain, e.retain, "{ctx}: retain");
            assert_eq!(a.topic, e.topic, "{ctx}: topic");
            assert_properties_eq(ctx, &a.properties, &e.properties);
            assert!(a.payload == e.payload, "{ctx}: payload differs");
        }
        (Packet::PubAck(a), Packet::PubAck(e))
        | (Packet::PubRec(a), Packet::PubRec(e))
        | (Packet::PubRel(a), Packet::PubRel(e))
        | (Packet::PubComp(a), Packet::PubComp(e)) => assert_ack_eq(ctx, a, e),
        (Packet::Subscribe(a), Packet::Subscribe(e)) => {
            assert_eq!(a.packet_id, e.packet_id, "{ctx}: packet id");
            assert_properties_eq(ctx, &a.properties, &e.properties);
            let got: Vec<_> = a.subscriptions.iter().collect();
            let want: Vec<_> = e.subscriptions.iter().collect();
            assert_eq!(got.len(), want.len(), "{ctx}: subscription count");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.filter, w.filter, "{ctx}: filter {i}");
                assert_eq!(g.options, w.options, "{ctx}: options {i}");
            }
            assert_eq!(a.subscriptions.len(), want.len(), "{ctx}: len()");
        }
        (Packet::SubAck(a), Packet::SubAck(e)) | (Packet::UnsubAck(a), Packet::UnsubAck(e)) => {
            assert_suback_eq(ctx, a, e)
        }
        (Packet::Unsubscribe(a), Packet::Unsubscribe(e)) => {
            assert_eq!(a.packet_id, e.packet_id, "{ctx}: packet id");
            assert_properties_eq(ctx, &a.properties, &e.properties);
            assert_eq!(
                a.filters.iter().collect::<Vec<_>>(),
                e.filters.iter().collect::<Vec<_>>(),
                "{ctx}: filters"
            );
            assert_eq!(a.filters.len(), e.filters.len(), "{ctx}");
        }
        (Packet::PingReq, Packet::PingReq) | (Packet::PingResp, Packet::PingResp) => {}
        (Packet::Disconnect(a), Packet::Disconnect(e)) | (Packet::Auth(a), Packet::Auth(e)) => {
            assert_disconnect_eq(ctx, a, e)
        }
        (a, e) => panic!("{ctx}: {:?} != {:?}", a.packet_type(), e.packet_type()),
    }
    assert!(
        actual == expected,
        "{ctx}: PartialEq disagrees with the field comparison"
    );
}

/// Decode a whole packet, expecting it complete.
pub fn decode_complete(bytes: &[u8], options: DecodeOptions) -> Decoded<'_> {
    match decode(bytes, options) {
        Ok(Status::Complete(d)) => d,
        other => panic!("expected a complete packet, got {other:?}"),
    }
}

/// Decode, expecting an error.
pub fn decode_err(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    match decode(bytes, DecodeOptions::new(version)) {
        Err(e) => e,
        Ok(other) => panic!("expected an error, got {other:?} for {bytes:02x?}"),
    }
}
