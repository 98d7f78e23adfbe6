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
