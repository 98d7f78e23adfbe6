//! PUBLISH routing: RETAIN and `$` topics, 5.0 acknowledgement reason codes and payload format,
//! properties forwarded between versions, the client's Maximum Packet Size, message expiry.

use super::pid;
use crate::assert_sent;
use crate::testing::{Driver, Publication, Sent};
use std::num::NonZeroU32;
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn qos0_routing_clears_retain_and_skips_dollar_topics() {
    let mut t = Driver::for_tests();
    let s = t.connect("sub", true);
    assert_eq!(
        t.subscribe(s, "a/+", QoS::AtMostOnce),
        [Sent::SubAck(1, vec![0])]
    );
    t.subscribe(s, "#", QoS::AtMostOnce);
    let p = t.connect("pub", true);
    t.publish(p, "a/b", b"hi", QosPid::AtMostOnce, true);
    assert_eq!(
        t.drain(s),
        [Sent::Publish(Publication {
            topic: "a/b".into(),
            payload: b"hi".to_vec(),
            qos: 0,
            pid: 0,
            dup: false,
            retain: false,
            ..Publication::default()
        })],
        "delivered once, RETAIN cleared on live forwarding"
    );
    t.publish(p, "$SYS/fake", b"x", QosPid::AtMostOnce, true);
    t.subscribe(s, "$SYS/#", QoS::AtMostOnce);
    assert!(t.publishes(s).is_empty(), "$ publish dropped, not retained");
    assert!(t.broker.retained().get("$SYS/fake").is_none());
}

#[test]
fn puback_pubrec_reason_codes_no_subscribers_and_payload_format() {
    let mut t = Driver::for_tests();
    let p = t.connect_v5("pub");
    t.publish(p, "nobody", b"x", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "nobody", b"x", QosPid::ExactlyOnce(pid(2)), false);
    assert_eq!(t.drain(p), [Sent::PubAck(1, 0x10), Sent::PubRec(2, 0x10)]);
    let s = t.connect_v5("sub");
    t.subscribe(s, "t", QoS::AtLeastOnce);
    t.publish(p, "t", b"x", QosPid::AtLeastOnce(pid(3)), false);
    assert_eq!(t.drain(p), [Sent::PubAck(3, 0)]);
    // Payload Format Indicator 1 with bytes that are not UTF-8.
    let utf8 = Properties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        ..NO_PROPERTIES
    };
    t.drain_publications(s);
    t.publish_with(
        p,
        "t",
        b"\xff\xfe",
        QosPid::AtLeastOnce(pid(4)),
        false,
        utf8,
    );
    t.publish_with(
        p,
        "t",
        b"\xff\xfe",
        QosPid::ExactlyOnce(pid(5)),
        false,
        utf8,
    );
    assert_eq!(t.drain(p), [Sent::PubAck(4, 0x99), Sent::PubRec(5, 0x99)]);
    assert!(t.drain_publications(s).is_empty(), "not forwarded");
    t.publish_with(p, "t", "ok ✓".as_bytes(), QosPid::AtMostOnce, false, utf8);
    let got = t.drain_publications(s);
    assert!(got[0].payload_is_utf8, "indicator forwarded");
    t.publish_with(p, "t", b"\xff", QosPid::AtMostOnce, false, utf8);
    assert_sent!(t.drain(p), [Sent::Disconnect { code: 0x99, .. }]);
    // PUBREL for an unknown id: PUBCOMP 0x92.
    let p = t.connect_v5("pub2");
    t.send(p, Packet::PubRel(Ack::new(pid(77))));
    assert_eq!(t.drain(p), [Sent::PubComp(77, 0x92)]);
}

#[test]
fn properties_forwarded_in_order_between_versions() {
    let mut t = Driver::for_tests();
    let s5 = t.connect_v5("s5");
    t.subscribe(s5, "t", QoS::AtLeastOnce);
    let s3 = t.connect("s3", true);
    let subs = [Subscription {
        filter: TopicFilter::new("t").unwrap(),
        options: SubscriptionOptions::qos(QoS::AtLeastOnce),
    }];
    t.send(
        s3,
        Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            properties: NO_PROPERTIES,
            subscriptions: List::new(&subs),
        }),
    );
    t.drain(s3);
    let user = [("b", "2"), ("a", "1"), ("b", "3")];
    let props = Properties {
        content_type: Some("text/plain"),
        response_topic: Some(TopicName::new("reply/here").unwrap()),
        correlation_data: Some(b"\x01\x02"),
        user_properties: List::new(&user),
        ..NO_PROPERTIES
    };
    let p = t.connect_v5("p");
    t.publish_with(p, "t", b"hi", QosPid::AtLeastOnce(pid(1)), false, props);
    let got = t.drain_publications(s5);
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(g.content_type.as_deref(), Some("text/plain"));
    assert_eq!(g.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(g.correlation_data.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(
        g.user_properties,
        [("b", "2"), ("a", "1"), ("b", "3")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // The 3.1.1 subscriber gets the message without properties.
    let out = t.drain(s3);
    assert_eq!(out.len(), 1, "{out:?}");
    // And a 3.1.1 publisher reaches the 5.0 subscriber.
    t.send(
        s3,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: NO_PROPERTIES,
            payload: b"from3",
        }),
    );
    assert_eq!(t.drain_publications(s5)[0].payload, b"from3");
}

#[test]
fn maximum_packet_size_toward_client_drops_and_counts() {
    let mut t = Driver::for_tests();
    let (s, _) = t.connect_v5_with(
        "s",
        true,
        Properties {
            maximum_packet_size: NonZeroU32::new(40),
            ..NO_PROPERTIES
        },
        None,
    );
    t.subscribe(s, "t", QoS::AtLeastOnce);
    let p = t.connect_v5("p");
    t.publish(p, "t", &[0u8; 100], QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "t", &[0u8; 100], QosPid::AtMostOnce, false);
    t.publish(p, "t", b"small", QosPid::AtLeastOnce(pid(2)), false);
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"small");
    assert_eq!(t.broker.stats().publish_dropped, 2);
    assert_eq!(t.qos_state("s").inflight.len(), 1);
}

#[test]
fn message_expiry_counts_down_and_drops() {
    let mut t = Driver::for_tests();
    let exp = |e| Properties {
        session_expiry_interval: Some(e),
        ..NO_PROPERTIES
    };
    let (c, _) = t.connect_v5_with("s", true, exp(100), None);
    t.subscribe(c, "t", QoS::AtLeastOnce);
    t.lose(c);
    let p = t.connect_v5("p");
    let mexp = |e| Properties {
        message_expiry_interval: Some(e),
        ..NO_PROPERTIES
    };
    t.publish_with(
        p,
        "t",
        b"long",
        QosPid::AtLeastOnce(pid(1)),
        false,
        mexp(10),
    );
    t.publish_with(
        p,
        "t",
        b"short",
        QosPid::AtLeastOnce(pid(2)),
        false,
        mexp(1),
    );
    t.publish_with(p, "r", b"ret", QosPid::AtMostOnce, true, mexp(2));
    t.tick(2_500);
    let (c, out) = t.connect_v5_with("s", false, exp(100), None);
    let got: Vec<_> = out
        .into_iter()
        .filter_map(|q| match q {
            Sent::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "the 1 s message expired while queued");
    assert_eq!(got[0].payload, b"long");
    assert_eq!(got[0].message_expiry, Some(8), "10 s minus the 2 s waited");
    assert!(
        t.broker.retained().get("r").is_none(),
        "expired retained message gone"
    );
    // Live forwarding keeps the interval as published.
    t.publish_with(p, "t", b"now", QosPid::AtMostOnce, false, mexp(30));
    assert_eq!(t.drain_publications(c)[0].message_expiry, Some(30));
    let _ = c;
}
