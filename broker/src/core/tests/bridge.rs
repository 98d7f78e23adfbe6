//! Bridges (Mosquitto's `is_bridge`): a client whose CONNECT has the bridge bit
//! (`Connect::bridge`, the protocol level | 0x80) never gets back what it published, and its
//! subscriptions keep RETAIN as published, in every protocol version; any other client keeps the
//! usual rules.

use super::pid;
use crate::testing::{Driver, Sent};
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

impl Driver {
    /// A client of `protocol` connects with the bridge bit set (clean, keep-alive 60 s) and is
    /// accepted.
    fn connect_bridge(&mut self, protocol: ProtocolVersion, id: &str) -> crate::core::ConnId {
        let c = self.open().unwrap();
        self.send(
            c,
            Packet::Connect(Connect {
                protocol,
                bridge: true,
                clean_start: true,
                keep_alive: 60,
                client_id: id,
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        let out = self.drain(c);
        assert!(matches!(out[0], Sent::ConnAck { code: 0, .. }), "{out:?}");
        c
    }
}

/// What a bridge publishes goes to every other subscriber but never back to the bridge, at
/// QoS 0, 1 and 2 and whichever filter matched; what others publish reaches it.
#[test]
fn a_bridge_never_gets_its_own_messages_back() {
    for version in VERSIONS {
        let mut t = Driver::for_tests();
        let b = t.connect_bridge(version, "bridge");
        // Plain 3.1.1-style options: No Local is not asked for.
        t.subscribe(b, "a/#", QoS::ExactlyOnce);
        t.subscribe(b, "a/+", QoS::AtLeastOnce);
        let s = t.connect("other-sub", true);
        t.subscribe(s, "a/#", QoS::AtLeastOnce);
        t.publish(b, "a/1", b"q0", QosPid::AtMostOnce, false);
        t.publish(b, "a/1", b"q1", QosPid::AtLeastOnce(pid(1)), false);
        t.publish(b, "a/1", b"q2", QosPid::ExactlyOnce(pid(2)), false);
        t.send(b, Packet::PubRel(Ack::new(pid(2))));
        assert_eq!(
            t.publishes(b),
            [],
            "{version:?}: nothing of its own comes back"
        );
        assert_eq!(
            t.publishes(s),
            [
                ("a/1".into(), b"q0".to_vec(), 0),
                ("a/1".into(), b"q1".to_vec(), 1),
                ("a/1".into(), b"q2".to_vec(), 1),
            ],
            "{version:?}"
        );
        let p = t.connect("other-pub", true);
        t.publish(p, "a/2", b"in", QosPid::AtLeastOnce(pid(1)), false);
        assert_eq!(
            t.publishes(b),
            [("a/2".into(), b"in".to_vec(), 1)],
            "{version:?}: others' messages reach it"
        );
    }
}

/// The refusals: a client without the bridge bit gets its own messages back (3.1.1 has no No
/// Local; 5.0 only when it asks), and a bridge's No Local is its own, not its publishers'.
#[test]
fn a_client_that_is_not_a_bridge_gets_its_own_messages_back() {
    for version in VERSIONS {
        let mut t = Driver::for_tests();
        let (c, out) = t.connect_as(version, "plain", true, 60, None, NO_PROPERTIES);
        assert!(matches!(out[0], Sent::ConnAck { code: 0, .. }), "{out:?}");
        t.subscribe(c, "a/#", QoS::AtLeastOnce);
        t.publish(c, "a/1", b"echo", QosPid::AtLeastOnce(pid(1)), false);
        assert_eq!(
            t.publishes(c),
            [("a/1".into(), b"echo".to_vec(), 1)],
            "{version:?}"
        );
    }
    // A bridge subscribed next to a plain client: the plain client still gets its own message
    // back, and the bridge gets it too (it is not the bridge's).
    let mut t = Driver::for_tests();
    let b = t.connect_bridge(ProtocolVersion::V311, "bridge");
    t.subscribe(b, "a/#", QoS::AtLeastOnce);
    let c = t.connect("plain", true);
    t.subscribe(c, "a/#", QoS::AtLeastOnce);
    t.publish(c, "a/1", b"x", QosPid::AtLeastOnce(pid(1)), false);
    assert_eq!(t.publishes(c), [("a/1".into(), b"x".to_vec(), 1)]);
    assert_eq!(t.publishes(b), [("a/1".into(), b"x".to_vec(), 1)]);
}

/// A bridge's subscriptions keep RETAIN as published (Retain As Published, in 3.1 and 3.1.1
/// too), so a retained message stays retained on the far side; a plain 3.1.1 subscriber gets a
/// live message with RETAIN cleared ([MQTT-3.3.1-9] (3.1.1)), as does a 5.0 one that did not ask.
#[test]
fn a_bridge_gets_retain_as_published() {
    for version in VERSIONS {
        let mut t = Driver::for_tests();
        let b = t.connect_bridge(version, "bridge");
        t.subscribe(b, "r/#", QoS::AtLeastOnce);
        let s = t.connect("plain-sub", true);
        t.subscribe(s, "r/#", QoS::AtLeastOnce);
        let v5 = t.connect_v5("plain-v5");
        t.subscribe(v5, "r/#", QoS::AtLeastOnce);
        let p = t.connect("pub", true);
        t.publish(p, "r/1", b"kept", QosPid::AtLeastOnce(pid(1)), true);
        t.publish(p, "r/2", b"live", QosPid::AtLeastOnce(pid(2)), false);
        let retains = |t: &mut Driver, c| {
            t.drain_publications(c)
                .into_iter()
                .map(|p| (p.topic, p.retain))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            retains(&mut t, b),
            [("r/1".into(), true), ("r/2".into(), false)],
            "{version:?}"
        );
        for plain in [s, v5] {
            assert_eq!(
                retains(&mut t, plain),
                [("r/1".into(), false), ("r/2".into(), false)],
                "{version:?}"
            );
        }
        // A retained message stored before the bridge subscribes arrives retained, as to
        // anyone ([MQTT-3.3.1-8] (3.1.1)).
        let late = t.connect_bridge(version, "late-bridge");
        let retained: Vec<_> = t
            .subscribe(late, "r/1", QoS::AtLeastOnce)
            .into_iter()
            .filter_map(|s| match s {
                Sent::Publish(p) => Some((p.topic, p.retain)),
                _ => None,
            })
            .collect();
        assert_eq!(retained, [("r/1".into(), true)], "{version:?}");
    }
}

/// A bridge may publish its own state, `$SYS/broker/connection/<its id>/state` (Mosquitto's
/// bridges do, on the remote), and nothing else under `$`; a client that is not a bridge may
/// not publish that topic either.
#[test]
fn a_bridge_may_publish_its_own_state_and_nothing_else_under_dollar() {
    let mut t = Driver::for_tests();
    let watcher = t.connect("watcher", true);
    t.subscribe(watcher, "$SYS/broker/connection/#", QoS::AtLeastOnce);
    t.subscribe(watcher, "$SYS/other", QoS::AtLeastOnce);
    let b = t.connect_bridge(ProtocolVersion::V311, "edge.up");
    t.publish(
        b,
        "$SYS/broker/connection/edge.up/state",
        b"1",
        QosPid::AtLeastOnce(pid(1)),
        true,
    );
    t.publish(
        b,
        "$SYS/broker/connection/someone/state",
        b"1",
        QosPid::AtLeastOnce(pid(2)),
        true,
    );
    t.publish(b, "$SYS/other", b"x", QosPid::AtLeastOnce(pid(3)), false);
    let plain = t.connect("edge.up2", true);
    t.publish(
        plain,
        "$SYS/broker/connection/edge.up2/state",
        b"1",
        QosPid::AtLeastOnce(pid(1)),
        true,
    );
    assert_eq!(
        t.publishes(watcher),
        [(
            "$SYS/broker/connection/edge.up/state".into(),
            b"1".to_vec(),
            1
        )]
    );
}
