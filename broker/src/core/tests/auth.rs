//! 5.0 enhanced authentication and re-authentication (AUTH).

use crate::assert_sent;
use crate::core::*;
use crate::testing::{Driver, Sent};
use std::sync::Arc;
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn enhanced_authentication_and_reauthentication() {
    let mut t = Driver::for_tests();
    t.broker
        .add_authenticator(Arc::new(HmacChallenge::new().user("alice", b"k")));
    let auth_props = |data: &'static [u8]| Properties {
        authentication_method: Some(HmacChallenge::METHOD),
        authentication_data: Some(data),
        ..NO_PROPERTIES
    };
    // Unknown method → CONNACK 0x8C.
    let (c, out) = t.connect_v5_with(
        "u",
        true,
        Properties {
            authentication_method: Some("NOPE"),
            ..NO_PROPERTIES
        },
        None,
    );
    assert_eq!(out, [Sent::connack(false, 0x8C)]);
    assert!(t.is_closed(c));
    // The exchange: CONNECT → AUTH 0x18 (nonce) → AUTH 0x18 (HMAC) → CONNACK 0.
    let (c, out) = t.connect_v5_with("a", true, auth_props(b"alice"), None);
    let [Sent::Auth(0x18, nonce)] = &out[..] else {
        panic!("{out:?}")
    };
    let answer = HmacChallenge::respond(b"k", nonce);
    fn reply(code: ReasonCode, data: &[u8]) -> Packet<'_> {
        Packet::Auth(Auth {
            reason_code: code,
            properties: Properties {
                authentication_method: Some(HmacChallenge::METHOD),
                authentication_data: Some(data),
                ..NO_PROPERTIES
            },
        })
    }
    t.send(c, reply(ReasonCode::CONTINUE_AUTHENTICATION, &answer));
    assert_sent!(
        t.drain(c),
        [Sent::ConnAck {
            session_present: false,
            code: 0,
            ..
        }]
    );
    assert_eq!(t.broker.connected_clients(), 1);
    // Re-authentication: AUTH 0x19 → AUTH 0x18 → AUTH 0x00.
    t.send(c, reply(ReasonCode::RE_AUTHENTICATE, b"alice"));
    let out = t.drain(c);
    let [Sent::Auth(0x18, nonce)] = &out[..] else {
        panic!("{out:?}")
    };
    let answer = HmacChallenge::respond(b"k", nonce);
    t.send(c, reply(ReasonCode::CONTINUE_AUTHENTICATION, &answer));
    assert_eq!(t.drain(c), [Sent::Auth(0, vec![])]);
    // A wrong answer: CONNACK 0x87.
    let (c, _) = t.connect_v5_with("b", true, auth_props(b"alice"), None);
    t.send(c, reply(ReasonCode::CONTINUE_AUTHENTICATION, b"bad"));
    assert_eq!(t.drain(c), [Sent::connack(false, 0x87)]);
    assert!(t.is_closed(c));
    // Anything but AUTH during the exchange: CONNACK 0x82.
    let (c, _) = t.connect_v5_with("c", true, auth_props(b"alice"), None);
    t.send(c, Packet::PingReq);
    assert_eq!(t.drain(c), [Sent::connack(false, 0x82)]);
    // AUTH without enhanced authentication is a protocol error.
    let c = t.connect_v5("plain");
    t.send(c, reply(ReasonCode::RE_AUTHENTICATE, b""));
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x82, .. }]);
}
