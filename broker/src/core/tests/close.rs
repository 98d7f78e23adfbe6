//! Why connections end: protocol violations, decode errors, and the 5.0 DISCONNECT reasons.

use super::pid;
use crate::assert_sent;
use crate::testing::{Driver, Sent};
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::*;

#[test]
fn protocol_violations_close_the_connection() {
    let mut t = Driver::for_tests();
    // Not CONNECT first.
    let c = t.open().unwrap();
    t.send(c, Packet::PingReq);
    assert!(t.is_closed(c));
    // Second CONNECT.
    let c = t.connect("a", true);
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            bridge: false,
            clean_start: true,
            keep_alive: 0,
            client_id: "a",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    );
    assert!(t.is_closed(c));
    // Server-only packets.
    for p in [
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: NO_PROPERTIES,
        }),
        Packet::PingResp,
        Packet::SubAck(SubAck {
            packet_id: pid(1),
            properties: NO_PROPERTIES,
            reason_codes: List::new(&[ReasonCode::SUCCESS]),
        }),
    ] {
        let c = t.connect("b", true);
        t.send(c, p);
        assert!(t.is_closed(c), "{p:?}");
    }
    // Decode errors.
    let c = t.connect("c", true);
    t.broker.decode_failed(c, DecodeError::InvalidUtf8, t.now);
    assert!(t.is_closed(c));
    assert_eq!(t.broker.connected_clients(), 0);
    let c = t.open().unwrap();
    t.broker
        .decode_failed(c, DecodeError::UnsupportedProtocolLevel(6), t.now);
    assert_eq!(t.drain(c), [Sent::connack(false, 1)]);
    assert!(t.is_closed(c));
}

#[test]
fn server_disconnect_reasons() {
    let mut t = Driver::for_tests();
    // Keep-alive timeout.
    let (c, _) = t.connect_as(ProtocolVersion::V5, "k", true, 1, None, NO_PROPERTIES);
    t.tick(2_000);
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x8D, .. }]);
    // Session taken over.
    let c1 = t.connect_v5("x");
    t.connect_v5("x");
    assert_sent!(t.drain(c1), [Sent::Disconnect { code: 0x8E, .. }]);
    // Malformed and too large.
    let c = t.connect_v5("m");
    t.broker.decode_failed(c, DecodeError::InvalidUtf8, t.now);
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x81, .. }]);
    let c = t.connect_v5("l");
    t.broker
        .decode_failed(c, DecodeError::PacketTooLarge { size: 10, max: 5 }, t.now);
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x95, .. }]);
    // Shutdown.
    let c = t.connect_v5("sd");
    t.shutdown();
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x8B, .. }]);
}

/// #17 item 1: CONNACK, SUBACK, UNSUBACK and PINGRESP from a client are a Protocol Error decided
/// from the fixed header's packet type alone, whatever its flags, length or body (even a body
/// that would not parse, a length over the maximum, or a packet not complete yet): 5.0 gets
/// DISCONNECT 0x82, 3.1.1 a close without a word. Before CONNECT, a close.
#[test]
fn server_only_packets_are_a_protocol_error_from_their_first_byte() {
    let raw: [&[u8]; 13] = [
        &[0x20, 0x02, 0x00, 0x00],             // CONNACK
        &[0x2F, 0x00],                         // CONNACK, reserved flags set
        &[0x20, 0x03, 0xFF, 0xFF, 0xFF],       // CONNACK, body that does not parse
        &[0x20, 0xFF, 0xFF, 0xFF, 0x7F],       // CONNACK, 256 MB announced
        &[0x20],                               // CONNACK, the first byte alone
        &[0x90, 0x03, 0x00, 0x01, 0x00],       // SUBACK
        &[0x90, 0x00],                         // SUBACK, no packet id
        &[0x9F, 0x02, 0x00],                   // SUBACK, flags, incomplete
        &[0xB0, 0x02, 0x00, 0x01],             // UNSUBACK
        &[0xB0, 0x01, 0xFF],                   // UNSUBACK, short body
        &[0xD0, 0x00],                         // PINGRESP
        &[0xD3, 0x02, 0x01, 0x02],             // PINGRESP, flags and a body
        &[0xD0, 0x80, 0x80, 0x80, 0x80, 0x01], // PINGRESP, remaining length too long
    ];
    for bytes in raw {
        let mut t = Driver::for_tests();
        let c = t.connect_v5("v5");
        t.feed(c, bytes);
        assert!(t.is_closed(c), "5.0 {bytes:02x?}");
        assert_sent!(
            t.drain(c),
            [Sent::Disconnect { code: 0x82, .. }],
            "5.0 {bytes:02x?}"
        );

        let c = t.connect("v3", true);
        t.feed(c, bytes);
        assert!(t.is_closed(c), "3.1.1 {bytes:02x?}");
        assert_eq!(t.drain(c), [], "3.1.1 {bytes:02x?}");

        let c = t.open().unwrap();
        t.feed(c, bytes);
        assert!(t.is_closed(c), "before CONNECT {bytes:02x?}");
        assert_eq!(t.drain(c), [], "before CONNECT {bytes:02x?}");
    }
    // The packets a client does send are not refused by their first byte: a PINGREQ with a
    // body is Malformed (0x81), not a Protocol Error.
    let mut t = Driver::for_tests();
    let c = t.connect_v5("v5");
    t.feed(c, &[0xC0, 0x01, 0x00]);
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x81, .. }]);
}
