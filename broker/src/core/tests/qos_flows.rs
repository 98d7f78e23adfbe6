//! QoS 1 and 2 flows: acknowledgements, exactly-once, the in-flight window and 5.0 Receive
//! Maximum, the offline queue and its redelivery.

use super::pid;
use crate::assert_sent;
use crate::config::Config;
use crate::testing::{Driver, Publication, Sent};
use std::num::NonZeroU16;
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn qos1_and_qos2_flows_and_exactly_once() {
    let mut t = Driver::for_tests();
    let s = t.connect("sub", true);
    t.subscribe(s, "t", QoS::ExactlyOnce);
    let p = t.connect("pub", true);
    t.publish(p, "t", b"q1", QosPid::AtLeastOnce(pid(1)), false);
    assert_eq!(t.drain(p), [Sent::PubAck(1, 0)]);
    t.publish(p, "t", b"q2", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p, "t", b"q2", QosPid::ExactlyOnce(pid(2)), false);
    assert_eq!(t.drain(p), [Sent::PubRec(2, 0), Sent::PubRec(2, 0)]);
    let got = t.drain(s);
    assert_eq!(
        got.len(),
        2,
        "duplicate QoS 2 publish not delivered twice: {got:?}"
    );
    t.send(p, Packet::PubRel(Ack::new(pid(2))));
    assert_eq!(t.drain(p), [Sent::PubComp(2, 0)]);
    // After the release the id is free again: a new message with it is delivered.
    t.publish(p, "t", b"again", QosPid::ExactlyOnce(pid(2)), false);
    assert_eq!(t.publishes(s).len(), 1);
    // Outgoing QoS 2 to the subscriber: PUBREC → PUBREL, PUBCOMP frees the slot.
    assert_eq!(t.qos_state("sub").inflight.len(), 3);
    let Sent::Publish(Publication {
        pid: p2, qos: 2, ..
    }) = got[1].clone()
    else {
        panic!("{got:?}")
    };
    t.send(s, Packet::PubRec(Ack::new(pid(p2))));
    assert_eq!(t.drain(s), [Sent::PubRel(p2, 0)]);
    t.send(s, Packet::PubComp(Ack::new(pid(p2))));
    assert_eq!(t.qos_state("sub").inflight.len(), 2);
    let Sent::Publish(Publication {
        pid: p1, qos: 1, ..
    }) = got[0].clone()
    else {
        panic!()
    };
    t.send(s, Packet::PubAck(Ack::new(pid(p1))));
    assert_eq!(t.qos_state("sub").inflight.len(), 1);
}

#[test]
fn exactly_once_survives_reconnect() {
    let mut t = Driver::for_tests();
    let s = t.connect("sub", true);
    t.subscribe(s, "x", QoS::ExactlyOnce);
    let p = t.connect("pub", false);
    t.publish(p, "x", b"1", QosPid::ExactlyOnce(pid(5)), false);
    assert_eq!(t.drain(p), [Sent::PubRec(5, 0)]);
    t.lose(p);
    // The publisher never saw PUBREC, so it resends with DUP on its resumed session.
    let (p, _) = t.connect_with("pub", false, 60, None);
    t.publish(p, "x", b"1", QosPid::ExactlyOnce(pid(5)), false);
    assert_eq!(t.drain(p), [Sent::PubRec(5, 0)]);
    t.send(p, Packet::PubRel(Ack::new(pid(5))));
    assert_eq!(t.drain(p), [Sent::PubComp(5, 0)]);
    assert_eq!(
        t.publishes(s).len(),
        1,
        "delivered once across the reconnect"
    );
}

#[test]
fn inflight_window_queues_the_rest() {
    let mut t = Driver::for_tests_with(Config {
        max_inflight_messages: 2,
        ..Config::for_tests()
    });
    let s = t.connect("sub", true);
    t.subscribe(s, "t", QoS::AtLeastOnce);
    let p = t.connect("pub", true);
    for i in 1..=5u8 {
        t.publish(p, "t", &[i], QosPid::AtLeastOnce(pid(u16::from(i))), false);
    }
    let first = t.drain(s);
    assert_eq!(first.len(), 2, "window of 2: {first:?}");
    let Sent::Publish(Publication { pid: id, .. }) = first[0] else {
        panic!()
    };
    t.send(s, Packet::PubAck(Ack::new(pid(id))));
    assert_eq!(t.publishes(s), [("t".into(), vec![3], 1)]);
}

#[test]
fn receive_maximum_both_directions() {
    let mut t = Driver::for_tests_with(Config {
        receive_maximum: 2,
        ..Config::for_tests()
    });
    let p = t.connect_v5("p");
    t.publish(p, "t", b"1", QosPid::ExactlyOnce(pid(1)), false);
    t.publish(p, "t", b"2", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p, "t", b"2", QosPid::ExactlyOnce(pid(2)), false);
    assert_eq!(t.drain(p).len(), 3, "duplicates do not count");
    t.publish(p, "t", b"3", QosPid::ExactlyOnce(pid(3)), false);
    assert_sent!(t.drain(p), [Sent::Disconnect { code: 0x93, .. }]);
    // The client's Receive Maximum caps the broker's window toward it.
    let (s, _) = t.connect_v5_with(
        "s",
        true,
        Properties {
            receive_maximum: NonZeroU16::new(1),
            ..NO_PROPERTIES
        },
        None,
    );
    t.subscribe(s, "w", QoS::AtLeastOnce);
    let p = t.connect_v5("p3");
    for i in 1..=3 {
        t.publish(p, "w", &[i], QosPid::AtLeastOnce(pid(u16::from(i))), false);
    }
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 1, "window of 1");
    t.send(s, Packet::PubAck(Ack::new(pid(got[0].pid))));
    assert_eq!(t.drain_publications(s)[0].payload, [2]);
}

#[test]
fn offline_queue_and_redelivery_with_dup_and_pubrel() {
    let mut t = Driver::for_tests();
    let s = t.connect("sub", false);
    t.subscribe(s, "t/#", QoS::ExactlyOnce);
    let p = t.connect("pub", true);
    t.publish(p, "t/1", b"a", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "t/2", b"b", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p, "t/3", b"c", QosPid::ExactlyOnce(pid(3)), false);
    let sent = t.drain(s);
    assert_eq!(sent.len(), 3);
    let Sent::Publish(Publication { pid: rec_pid, .. }) = sent[2] else {
        panic!()
    };
    t.send(s, Packet::PubRec(Ack::new(pid(rec_pid))));
    assert_eq!(t.drain(s), [Sent::PubRel(rec_pid, 0)]);
    // The subscriber drops without acknowledging; meanwhile more arrives, QoS 0 is not queued.
    t.lose(s);
    t.publish(p, "t/4", b"d", QosPid::AtLeastOnce(pid(4)), false);
    t.publish(p, "t/5", b"e", QosPid::AtMostOnce, false);
    let (s, out) = t.connect_with("sub", false, 60, None);
    assert_eq!(out[0], Sent::connack(true, 0));
    let rest = &out[1..];
    assert!(
        matches!(&rest[0], Sent::Publish(Publication { topic, dup: true, qos: 1, .. }) if topic == "t/1"),
        "{rest:?}"
    );
    assert!(
        matches!(&rest[1], Sent::Publish(Publication { topic, dup: true, qos: 2, .. }) if topic == "t/2")
    );
    assert_eq!(rest[2], Sent::PubRel(rec_pid, 0));
    assert!(
        matches!(&rest[3], Sent::Publish(Publication { topic, dup: false, qos: 1, .. }) if topic == "t/4")
    );
    assert_eq!(rest.len(), 4, "QoS 0 not queued offline: {rest:?}");
    assert!(t.drain(s).is_empty());
}

#[test]
fn queue_limit_drop_policy() {
    let mut t = Driver::for_tests_with(Config {
        max_queued_messages: 2,
        queue_qos0_messages: true,
        ..Config::for_tests()
    });
    let s = t.connect("sub", false);
    t.subscribe(s, "t", QoS::AtLeastOnce);
    t.lose(s);
    let p = t.connect("pub", true);
    t.publish(p, "t", b"q0", QosPid::AtMostOnce, false);
    t.publish(p, "t", b"a", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "t", b"b", QosPid::AtLeastOnce(pid(2)), false); // evicts q0
    t.publish(p, "t", b"c", QosPid::AtLeastOnce(pid(3)), false); // dropped
    t.publish(p, "t", b"z", QosPid::AtMostOnce, false); // dropped
    assert_eq!(t.broker.stats().publish_dropped, 3);
    let (_, out) = t.connect_with("sub", false, 60, None);
    let payloads: Vec<_> = out
        .iter()
        .filter_map(|p| match p {
            Sent::Publish(Publication { payload, .. }) => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
}

/// #17 item 3: an acknowledgement of the wrong kind for a message the broker sent (PUBREC or
/// PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREC) is a Protocol Error, in raw
/// bytes, 3.1.1 and 5.0; the right ones complete the flows, and one for an id not in flight is
/// ignored.
#[test]
fn acknowledgements_of_the_wrong_kind_are_a_protocol_error() {
    const PUBACK: u8 = 0x40;
    const PUBREC: u8 = 0x50;
    const PUBCOMP: u8 = 0x70;
    // (QoS the message is sent at, the acknowledgements the subscriber answers with)
    let wrong: [(QosPid, &[u8]); 5] = [
        (QosPid::AtLeastOnce(pid(1)), &[PUBREC]),
        (QosPid::AtLeastOnce(pid(1)), &[PUBCOMP]),
        (QosPid::ExactlyOnce(pid(1)), &[PUBACK]),
        (QosPid::ExactlyOnce(pid(1)), &[PUBCOMP]),
        (QosPid::ExactlyOnce(pid(1)), &[PUBREC, PUBACK]),
    ];
    // A subscriber `s` (5.0 or 3.1.1) at QoS 2 on `t`, and a publisher `p`.
    let pair = |v5: bool| {
        let mut t = Driver::for_tests();
        let s = if v5 {
            t.connect_v5("s")
        } else {
            t.connect("s", true)
        };
        t.subscribe(s, "t", QoS::ExactlyOnce);
        let p = t.connect("p", true);
        (t, s, p)
    };
    for v5 in [false, true] {
        for (qos, acks) in wrong {
            let (mut t, s, p) = pair(v5);
            t.publish(p, "t", b"m", qos, false);
            let got = t.drain_publications(s);
            assert_eq!(got.len(), 1);
            let [hi, lo] = got[0].pid.to_be_bytes();
            for (i, &ack) in acks.iter().enumerate() {
                t.feed(s, &[ack, 0x02, hi, lo]);
                if i + 1 < acks.len() {
                    assert_eq!(t.drain(s), [Sent::PubRel(got[0].pid, 0)]);
                }
            }
            assert!(t.is_closed(s), "v5 {v5}, {qos:?} answered {acks:02x?}");
            if v5 {
                assert_sent!(t.drain(s), [Sent::Disconnect { code: 0x82, .. }]);
            } else {
                assert_eq!(t.drain(s), []);
            }
        }
        // The right acknowledgements complete both flows; late duplicates are ignored.
        let (mut t, s, p) = pair(v5);
        t.publish(p, "t", b"1", QosPid::AtLeastOnce(pid(1)), false);
        t.publish(p, "t", b"2", QosPid::ExactlyOnce(pid(2)), false);
        let got = t.drain_publications(s);
        assert_eq!(got.len(), 2);
        let (q1, q2) = (got[0].pid.to_be_bytes(), got[1].pid.to_be_bytes());
        t.feed(s, &[PUBACK, 2, q1[0], q1[1]]);
        t.feed(s, &[PUBREC, 2, q2[0], q2[1]]);
        assert_eq!(t.drain(s), [Sent::PubRel(got[1].pid, 0)]);
        t.feed(s, &[PUBCOMP, 2, q2[0], q2[1]]);
        t.feed(s, &[PUBACK, 2, q1[0], q1[1]]);
        t.feed(s, &[PUBCOMP, 2, q2[0], q2[1]]);
        assert!(!t.is_closed(s));
        assert_eq!(t.drain(s), []);
        assert!(t.qos_state("s").inflight.is_empty());
    }
}
