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

/// #17 item 9: messages over a 5.0 client's Maximum Packet Size are dropped for it while the
/// QoS 1 and 2 messages around them flow, in a window of 2, with distinct packet ids and every
/// acknowledgement honoured (sent as raw bytes); nothing dropped stays in flight.
#[test]
fn oversize_messages_dropped_and_the_flows_around_them_complete() {
    let mut t = Driver::for_tests_with(crate::config::Config {
        max_inflight_messages: 2,
        ..crate::config::Config::for_tests()
    });
    let small_max = Properties {
        maximum_packet_size: NonZeroU32::new(64),
        session_expiry_interval: Some(300),
        ..NO_PROPERTIES
    };
    let (s, _) = t.connect_v5_with("s", true, small_max, None);
    t.subscribe(s, "t", QoS::ExactlyOnce);
    let p = t.connect("p", true);
    let big = [b'x'; 100];
    let sends: [(&[u8], QosPid); 7] = [
        (&big, QosPid::AtLeastOnce(pid(1))),
        (b"a", QosPid::AtLeastOnce(pid(2))),
        (&big, QosPid::ExactlyOnce(pid(3))),
        (b"b", QosPid::ExactlyOnce(pid(4))),
        (&big, QosPid::AtLeastOnce(pid(5))),
        (b"c", QosPid::AtLeastOnce(pid(6))),
        (b"d", QosPid::ExactlyOnce(pid(7))),
    ];
    for (payload, qos) in sends {
        t.publish(p, "t", payload, qos, false);
        if let QosPid::ExactlyOnce(id) = qos {
            t.send(p, Packet::PubRel(Ack::new(id)));
        }
    }
    let mut seen = Vec::new();
    let mut pids = Vec::new();
    // Acknowledge whatever arrives until nothing more does.
    let mut rels = 0;
    for _ in 0..20 {
        let sent = t.drain(s);
        if sent.is_empty() {
            break;
        }
        for packet in sent {
            match packet {
                Sent::Publish(m) => {
                    let [hi, lo] = m.pid.to_be_bytes();
                    seen.push((m.payload.clone(), m.qos));
                    pids.push(m.pid);
                    let ack = if m.qos == 1 { 0x40 } else { 0x50 };
                    t.feed(s, &[ack, 2, hi, lo]);
                }
                Sent::PubRel(id, 0) => {
                    rels += 1;
                    let [hi, lo] = id.to_be_bytes();
                    t.feed(s, &[0x70, 2, hi, lo]);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(rels, 2);
    assert!(!t.is_closed(s));
    assert_eq!(
        seen,
        [
            (b"a".to_vec(), 1),
            (b"b".to_vec(), 2),
            (b"c".to_vec(), 1),
            (b"d".to_vec(), 2)
        ]
    );
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), pids.len(), "packet ids {pids:?}");
    assert_eq!(t.broker.stats().publish_dropped, 3);
    assert!(t.qos_state("s").inflight.is_empty());
    assert!(t.qos_state("s").queued.is_empty());

    // A message in flight that no longer fits the Maximum Packet Size the client reconnects
    // with is dropped on redelivery, not left holding a slot of the window.
    t.tick(1_000);
    t.publish(p, "t", &[b'y'; 40], QosPid::AtLeastOnce(pid(8)), false);
    t.publish(p, "t", &[b'z'; 40], QosPid::AtLeastOnce(pid(9)), false);
    assert_eq!(t.drain_publications(s).len(), 2, "not acknowledged");
    t.lose(s);
    let smaller = Properties {
        maximum_packet_size: NonZeroU32::new(30),
        ..small_max
    };
    let (s, out) = t.connect_v5_with("s", false, smaller, None);
    assert_sent!(
        out,
        [Sent::ConnAck {
            session_present: true,
            ..
        }]
    );
    assert!(t.qos_state("s").inflight.is_empty(), "dropped on resume");
    assert_eq!(t.broker.stats().publish_dropped, 5);
    t.publish(p, "t", b"e", QosPid::AtLeastOnce(pid(10)), false);
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 1, "the window is free");
    assert_eq!(got[0].payload, b"e");
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

/// `message_size_limit` (Mosquitto's): a larger payload is acknowledged — 5.0 with 0x97 Quota
/// exceeded, and a QoS 2 exchange then ends (its id is not kept) — and dropped; the publisher
/// stays connected. `persistent_client_expiration` caps every session's expiry, 3.1.1
/// persistent sessions included.
#[test]
fn message_size_limit_and_persistent_client_expiration() {
    let mut t = Driver::for_tests_with(crate::config::Config {
        message_size_limit: 4,
        persistent_client_expiration: 10,
        ..crate::config::Config::for_tests()
    });
    let s = t.connect("s", true);
    t.subscribe(s, "t", QoS::AtLeastOnce);
    let p5 = t.connect_v5("p5");
    t.publish(p5, "t", b"12345", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p5, "t", b"12345", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p5, "t", b"1234", QosPid::AtLeastOnce(pid(3)), false);
    assert_sent!(
        t.drain(p5),
        [
            Sent::PubAck(1, 0x97),
            Sent::PubRec(2, 0x97),
            Sent::PubAck(3, 0)
        ]
    );
    assert!(t.qos_state("p5").awaiting_rel.is_empty());
    let p3 = t.connect("p3", true);
    t.publish(p3, "t", b"123456", QosPid::AtLeastOnce(pid(4)), false);
    assert_eq!(t.drain(p3), [Sent::PubAck(4, 0)]);
    assert!(!t.is_closed(p3) && !t.is_closed(p5));
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"1234");
    // A 3.1.1 persistent session now expires 10 s after its client went.
    let c = t.connect("persistent", false);
    t.lose(c);
    t.tick(9_000);
    assert!(t.broker.sessions().find("persistent").is_some());
    t.tick(11_000);
    assert!(t.broker.sessions().find("persistent").is_none());
}
