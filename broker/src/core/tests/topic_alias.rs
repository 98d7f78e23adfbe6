//! 5.0 topic aliases, from the client and to it.

use crate::assert_sent;
use crate::config::Config;
use crate::testing::{Driver, Sent};
use std::num::NonZeroU16;
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn topic_alias_inbound() {
    let mut t = Driver::for_tests_with(Config {
        topic_alias_maximum: 2,
        ..Config::for_tests()
    });
    let s = t.connect_v5("s");
    t.subscribe(s, "long/topic/name", QoS::AtMostOnce);
    let p = t.connect_v5("p");
    let alias = |a| Properties {
        topic_alias: NonZeroU16::new(a),
        ..NO_PROPERTIES
    };
    t.publish_with(
        p,
        "long/topic/name",
        b"1",
        QosPid::AtMostOnce,
        false,
        alias(2),
    );
    t.send(
        p,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::alias_only(),
            properties: alias(2),
            payload: b"2",
        }),
    );
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].topic, "long/topic/name");
    assert_eq!(got[1].payload, b"2");
    // An alias within the maximum that was never set, with an empty topic → 0x82 (#17 item 5).
    t.send(
        p,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::alias_only(),
            properties: alias(1),
            payload: b"3",
        }),
    );
    assert_sent!(t.drain(p), [Sent::Disconnect { code: 0x82, .. }]);
    assert!(t.is_closed(p));
    // Above the Topic Alias Maximum → 0x94.
    let p = t.connect_v5("p2");
    t.publish_with(p, "a", b"1", QosPid::AtMostOnce, false, alias(3));
    assert_sent!(t.drain(p), [Sent::Disconnect { code: 0x94, .. }]);
}

/// #17 item 5 in raw bytes: PUBLISH with an empty topic and Topic Alias 1 (maximum 2) never set
/// on this connection → 0x82; Topic Alias 3 → 0x94; alias 1 set, then used → delivered.
#[test]
fn topic_alias_never_set_is_a_protocol_error() {
    // PUBLISH QoS 0, topic `topic`, properties: Topic Alias `alias`, payload "x".
    let publish = |topic: &[u8], alias: u8| {
        let mut p = vec![0x30, (2 + topic.len() + 4 + 1) as u8];
        p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        p.extend_from_slice(topic);
        p.extend_from_slice(&[3, 0x23, 0, alias, b'x']);
        p
    };
    let broker = || {
        Driver::for_tests_with(Config {
            topic_alias_maximum: 2,
            ..Config::for_tests()
        })
    };
    let mut t = broker();
    let p = t.connect_v5("p");
    t.feed(p, &publish(b"", 1));
    assert_sent!(t.drain(p), [Sent::Disconnect { code: 0x82, .. }]);
    let mut t = broker();
    let p = t.connect_v5("p");
    t.feed(p, &publish(b"", 3));
    assert_sent!(t.drain(p), [Sent::Disconnect { code: 0x94, .. }]);
    let mut t = broker();
    let s = t.connect_v5("s");
    t.subscribe(s, "a/b", QoS::AtMostOnce);
    let p = t.connect_v5("p");
    t.feed(p, &publish(b"a/b", 1));
    t.feed(p, &publish(b"", 1));
    assert!(!t.is_closed(p));
    assert_eq!(t.drain_publications(s).len(), 2);
}

#[test]
fn topic_alias_outbound() {
    let mut t = Driver::for_tests_with(Config {
        outbound_topic_aliases: 5,
        ..Config::for_tests()
    });
    let (s, _) = t.connect_v5_with(
        "s",
        true,
        Properties {
            topic_alias_maximum: Some(1),
            ..NO_PROPERTIES
        },
        None,
    );
    t.subscribe(s, "#", QoS::AtMostOnce);
    let p = t.connect_v5("p");
    for topic in ["a/b", "a/b", "c"] {
        t.publish(p, topic, b"x", QosPid::AtMostOnce, false);
    }
    let got = t.drain_publications(s);
    let seen: Vec<_> = got
        .iter()
        .map(|p| (p.topic.as_str(), p.topic_alias))
        .collect();
    assert_eq!(
        seen,
        [("a/b", Some(1)), ("", Some(1)), ("c", None)],
        "client's maximum of 1 respected"
    );
}
