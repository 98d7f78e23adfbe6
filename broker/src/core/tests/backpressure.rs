//! Backpressure: congested subscribers hold publishers back, then lose messages, then are closed.

use super::pid;
use crate::config::Config;
use crate::testing::{Driver, Publication, Sent};
use wren_codec::*;

#[test]
fn slow_consumer_holds_publishers_back_then_drops_qos0_then_is_closed() {
    let mut t = Driver::for_tests_with(Config {
        max_outgoing_bytes: 100,
        ..Config::for_tests()
    });
    let s = t.connect("slow", true);
    let so = t.outbox(s);
    t.subscribe(s, "t", QoS::AtMostOnce);
    let p = t.connect("pub", true);
    drop(t.take_congested());
    // 45-byte PUBLISHes: three fit under the limit, two more up to twice it (the publisher
    // is told to wait), the rest are dropped.
    for _ in 0..10 {
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    }
    let congested = t.take_congested();
    assert!(
        congested.len() == 1 && congested[0].same(&so),
        "{congested:?}"
    );
    assert!(so.is_congested(100));
    assert_eq!(
        t.broker.stats().publish_dropped,
        5,
        "{:?}",
        t.broker.stats()
    );
    assert_eq!(so.queued_bytes(), 225);
    assert_eq!(t.publishes(s).len(), 5);
    assert!(!so.is_congested(100), "drained");
    // A connection a publisher gave up waiting for (stalled) holds no one back, and loses
    // what goes past the limit, until it drains.
    for _ in 0..3 {
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    }
    so.mark_stalled();
    t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    assert!(t.take_congested().is_empty());
    assert_eq!(t.broker.stats().publish_dropped, 6);
    assert_eq!(t.publishes(s).len(), 3);
    // A first stall ends after one drain (see `Outbox::mark_stalled`): it paces again.
    assert!(!so.is_stalled());
    assert!(!t.is_closed(s));
    // Acknowledgements are never dropped; past 8× the limit the client is closed.
    for i in 1..=300u16 {
        t.publish(s, "x", b"", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(t.is_closed(s));
}

#[test]
fn without_backpressure_a_congested_subscriber_is_dropped_to_at_once() {
    let mut t = Driver::for_tests_with(Config {
        max_outgoing_bytes: 100,
        max_inflight_messages: 1,
        max_queued_messages: 2,
        max_publisher_hold_ms: 0,
        ..Config::for_tests()
    });
    let s = t.connect("slow", true);
    t.subscribe(s, "t", QoS::AtLeastOnce);
    let p = t.connect("pub", true);
    drop(t.take_congested());
    for _ in 0..10 {
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    }
    for i in 1..=5u16 {
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(t.take_congested().is_empty(), "no one held back");
    // QoS 0: three under the limit; QoS 1: one in flight, two queued.
    assert_eq!(
        t.broker.stats().publish_dropped,
        7 + 2,
        "{:?}",
        t.broker.stats()
    );
}

#[test]
fn a_long_session_queue_holds_publishers_back_until_it_drains() {
    let mut t = Driver::for_tests_with(Config {
        max_inflight_messages: 2,
        max_queued_messages: 8,
        ..Config::for_tests()
    });
    let s = t.connect("sub", false);
    let so = t.outbox(s);
    t.subscribe(s, "t", QoS::AtLeastOnce);
    let p = t.connect("pub", true);
    drop(t.take_congested());
    // 2 in flight, then the queue: held back once it holds half of its 8.
    for i in 1..=5u16 {
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(t.take_congested().is_empty(), "3 queued");
    t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(6)), false);
    let congested = t.take_congested();
    assert!(
        congested.len() == 1 && congested[0].same(&so),
        "{congested:?}"
    );
    assert!(so.is_congested(usize::MAX));
    // Acknowledged until 2 (a quarter) are queued: the publisher goes on.
    let mut sent = t.drain(s);
    while so.is_congested(usize::MAX) {
        let Some(Sent::Publish(Publication { pid: id, .. })) = sent.pop() else {
            panic!("no more in flight");
        };
        t.send(s, Packet::PubAck(Ack::new(pid(id))));
        sent.extend(t.drain(s));
    }
    assert_eq!(t.qos_state("sub").queued.len(), 2);
    assert_eq!(t.broker.stats().publish_dropped, 0);
    // An offline client holds no one back: its queue is simply bounded.
    t.lose(s);
    for i in 7..=20u16 {
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(t.take_congested().is_empty());
    // 6 more fill its queue of 8; the other 8 are dropped.
    assert_eq!(
        t.broker.stats().publish_dropped,
        8,
        "{:?}",
        t.broker.stats()
    );
}
