//! 5.0 session expiry.

use super::connack_properties;
use crate::assert_sent;
use crate::config::Config;
use crate::testing::{Driver, Sent};
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn session_expiry_interval() {
    let mut t = Driver::for_tests();
    let exp = |e| Properties {
        session_expiry_interval: Some(e),
        ..NO_PROPERTIES
    };
    let (c, _) = t.connect_v5_with("e", true, exp(10), None);
    t.subscribe(c, "t", QoS::AtLeastOnce);
    t.lose(c);
    t.tick(9_000);
    assert!(t.broker.sessions().find("e").is_some());
    let (_, out) = t.connect_v5_with("e", false, exp(10), None);
    assert_sent!(
        out[..1],
        [Sent::ConnAck {
            session_present: true,
            code: 0,
            ..
        }]
    );
    // The reconnection restarted the clock: lost at 9 s, expires at 19 s.
    let c = t
        .broker
        .sessions()
        .get(t.broker.sessions().find("e").unwrap())
        .unwrap()
        .conn
        .unwrap();
    t.lose(c);
    t.tick(18_900);
    assert!(t.broker.sessions().find("e").is_some());
    t.tick(19_000);
    assert!(t.broker.sessions().find("e").is_none(), "expired");
    assert!(t.broker.subscriptions().is_empty());
    // 0: ends at disconnect; DISCONNECT may not raise 0 to non-zero.
    let c = t.connect_v5("z");
    t.send(
        c,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties: exp(30),
        }),
    );
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x82, .. }]);
    assert!(t.broker.sessions().find("z").is_none());
    // Non-zero lowered to 0 by DISCONNECT: the session ends.
    let (c, _) = t.connect_v5_with("y", true, exp(100), None);
    t.send(
        c,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties: exp(0),
        }),
    );
    assert!(t.broker.sessions().find("y").is_none());
    // A cap: the interval is shortened and CONNACK says so.
    let mut t2 = Driver::for_tests_with(Config {
        max_session_expiry_interval: 5,
        ..Config::for_tests()
    });
    let (c, out) = t2.connect_v5_with("capped", true, exp(100), None);
    assert_eq!(connack_properties(&out).session_expiry_interval, Some(5));
    t2.lose(c);
    t2.tick(5_000);
    assert!(
        t2.broker.sessions().find("capped").is_none(),
        "expired after 5 s"
    );
    // 0xFFFFFFFF: never.
    let (c, _) = t.connect_v5_with("n", true, exp(u32::MAX), None);
    t.lose(c);
    t.tick(u64::from(u32::MAX) * 1000 + 50_000);
    assert!(t.broker.sessions().find("n").is_some());
}
