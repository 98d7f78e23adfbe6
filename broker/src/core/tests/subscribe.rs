//! SUBSCRIBE and UNSUBSCRIBE: overlapping subscriptions, refused filters and reason codes,
//! 5.0 subscription options and identifiers, shared subscriptions.

use super::pid;
use crate::assert_sent;
use crate::config::Config;
use crate::testing::{Driver, Sent};
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::*;

#[test]
fn overlapping_subscriptions_deliver_once_at_highest_qos() {
    let mut t = Driver::for_tests();
    let s = t.connect("sub", true);
    t.subscribe(s, "a/#", QoS::AtMostOnce);
    t.subscribe(s, "a/b", QoS::ExactlyOnce);
    let p = t.connect("pub", true);
    t.publish(p, "a/b", b"1", QosPid::AtLeastOnce(pid(5)), false);
    assert_eq!(
        t.publishes(s),
        [("a/b".into(), b"1".to_vec(), 1)],
        "min(1, 2)"
    );
}

#[test]
fn unsubscribe_and_refused_filters() {
    let mut t = Driver::for_tests_with(Config {
        max_subscriptions_per_client: 1,
        ..Config::for_tests()
    });
    let s = t.connect("sub", true);
    assert_eq!(
        t.subscribe(s, "a", QoS::ExactlyOnce),
        [Sent::SubAck(1, vec![2])]
    );
    assert_eq!(
        t.subscribe(s, "a", QoS::AtMostOnce),
        [Sent::SubAck(1, vec![0])],
        "replace"
    );
    assert_eq!(
        t.subscribe(s, "b", QoS::AtMostOnce),
        [Sent::SubAck(1, vec![0x80])]
    );
    let filters = [TopicFilter::new("a").unwrap()];
    t.send(
        s,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(9),
            properties: NO_PROPERTIES,
            filters: List::new(&filters),
        }),
    );
    assert_eq!(t.drain(s), [Sent::UnsubAck(9, vec![])]);
    assert!(t.broker.subscriptions().is_empty());
    assert_eq!(
        t.subscribe(s, "b", QoS::AtMostOnce),
        [Sent::SubAck(1, vec![0])],
        "room again"
    );
    t.send(s, Packet::PingReq);
    assert_eq!(t.drain(s), [Sent::PingResp]);
}

#[test]
fn suback_and_unsuback_reason_codes() {
    let mut t = Driver::for_tests_with(Config {
        wildcard_subscription_available: false,
        subscription_identifier_available: false,
        max_subscriptions_per_client: 2,
        ..Config::for_tests()
    });
    let c = t.connect_v5("c");
    assert_eq!(
        t.subscribe(c, "a/+", QoS::AtMostOnce),
        [Sent::SubAck(1, vec![0xA2])]
    );
    assert_eq!(
        t.subscribe_with(c, "a", SubscriptionOptions::qos(QoS::AtMostOnce), Some(5)),
        [Sent::SubAck(1, vec![0xA1])]
    );
    assert_eq!(
        t.subscribe(c, "a", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![1])]
    );
    assert_eq!(
        t.subscribe(c, "b", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![1])]
    );
    assert_eq!(
        t.subscribe(c, "c", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![0x97])]
    );
    let filters = [
        TopicFilter::new("a").unwrap(),
        TopicFilter::new("zz").unwrap(),
    ];
    t.send(
        c,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(9),
            properties: NO_PROPERTIES,
            filters: List::new(&filters),
        }),
    );
    assert_eq!(t.drain(c), [Sent::UnsubAck(9, vec![0, 0x11])]);
    // No Local on a shared subscription is a protocol error.
    let mut opts = SubscriptionOptions::qos(QoS::AtMostOnce);
    opts.no_local = true;
    let mut t = Driver::for_tests();
    let c = t.connect_v5("c");
    assert_sent!(
        t.subscribe_with(c, "$share/g/x", opts, None),
        [Sent::Disconnect { code: 0x82, .. }]
    );
}

#[test]
fn subscription_options_and_identifiers() {
    let mut t = Driver::for_tests();
    let c = t.connect_v5("c");
    let mut nl = SubscriptionOptions::qos(QoS::AtLeastOnce);
    nl.no_local = true;
    t.subscribe_with(c, "own/#", nl, Some(7));
    t.subscribe_with(
        c,
        "own/+",
        SubscriptionOptions::qos(QoS::AtMostOnce),
        Some(9),
    );
    let p = t.connect_v5("p");
    t.publish(p, "own/a", b"1", QosPid::AtLeastOnce(pid(1)), false);
    let got = t.drain_publications(c);
    assert_eq!(got.len(), 1, "overlapping subscriptions: one delivery");
    let mut ids = got[0].subscription_ids.clone();
    ids.sort();
    assert_eq!(ids, [7, 9], "one identifier per matching subscription");
    assert_eq!(got[0].qos, 1);
    // No Local: own publish skips the no-local subscription, not the other one.
    t.publish(c, "own/a", b"2", QosPid::AtMostOnce, false);
    let got = t.drain_publications(c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subscription_ids, [9]);
    // Retain As Published.
    let s = t.connect_v5("s");
    let mut rap = SubscriptionOptions::qos(QoS::AtMostOnce);
    rap.retain_as_published = true;
    t.subscribe_with(s, "r/rap", rap, None);
    t.subscribe(s, "r/plain", QoS::AtMostOnce);
    t.publish_with(p, "r/rap", b"x", QosPid::AtMostOnce, true, NO_PROPERTIES);
    t.publish_with(p, "r/plain", b"x", QosPid::AtMostOnce, true, NO_PROPERTIES);
    let got = t.drain_publications(s);
    assert!(got[0].retain && !got[1].retain, "{got:?}");
    // Retain Handling: 0 sends, 1 sends only for a new subscription, 2 never.
    let mut rh = SubscriptionOptions::qos(QoS::AtMostOnce);
    rh.retain_handling = RetainHandling::SendIfNew;
    let r = t.connect_v5("r");
    assert_eq!(t.subscribe_with(r, "r/rap", rh, None).len(), 2);
    assert_eq!(t.subscribe_with(r, "r/rap", rh, None).len(), 1, "exists");
    rh.retain_handling = RetainHandling::DoNotSend;
    assert_eq!(t.subscribe_with(r, "r/plain", rh, None).len(), 1);
    rh.retain_handling = RetainHandling::SendAtSubscribe;
    let out = t.subscribe_with(r, "r/plain", rh, Some(4));
    let Sent::Publish(p) = &out[1] else {
        panic!("{out:?}")
    };
    assert!(p.retain, "retained on subscribe always carry RETAIN");
    assert_eq!(p.subscription_ids, [4]);
}

#[test]
fn shared_subscriptions_round_robin_no_retained_and_fail_over() {
    let mut t = Driver::for_tests();
    let p = t.connect_v5("p");
    t.publish_with(p, "job/1", b"old", QosPid::AtMostOnce, true, NO_PROPERTIES);
    let a = t.connect_v5("a");
    let b = t.connect_v5("b");
    assert_eq!(
        t.subscribe(a, "$share/g/job/+", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![1])],
        "no retained message for a shared subscription"
    );
    assert_eq!(
        t.subscribe(b, "$share/g/job/+", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![1])]
    );
    assert_eq!(t.broker.shared_subscription_members("$share/g/job/+"), 2);
    for i in 1..=4u8 {
        t.publish(
            p,
            "job/x",
            &[i],
            QosPid::AtLeastOnce(pid(u16::from(i))),
            false,
        );
    }
    let (ga, gb) = (t.drain_publications(a), t.drain_publications(b));
    assert_eq!((ga.len(), gb.len()), (2, 2), "round robin");
    // `a` goes away without acknowledging: its two messages go to `b`.
    t.lose(a);
    let got = t.drain_publications(b);
    let mut payloads: Vec<_> = got.iter().map(|p| p.payload[0]).collect();
    payloads.sort();
    let mut expected: Vec<_> = ga.iter().map(|p| p.payload[0]).collect();
    expected.sort();
    assert_eq!(payloads, expected, "fail-over of unacknowledged messages");
    assert_eq!(t.broker.shared_subscription_members("$share/g/job/+"), 1);
    // A non-shared subscriber still gets every message too.
    let c = t.connect_v5("c");
    t.subscribe(c, "job/+", QoS::AtMostOnce);
    t.publish(p, "job/y", b"z", QosPid::AtMostOnce, false);
    assert_eq!(t.drain_publications(c).len(), 1);
    assert_eq!(t.drain_publications(b).len(), 1);
}
