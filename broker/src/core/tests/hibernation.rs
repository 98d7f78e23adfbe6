//! Hibernation: a quiet connection gives up its outbox and is woken with a new one.

use super::pid;
use crate::core::*;
use crate::testing::{Driver, Publication, Sent};
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::*;

#[test]
fn hibernating_connection_gives_up_its_outbox_and_is_woken_with_a_new_one() {
    let mut t = Driver::for_tests();
    let s = t.connect("sub", true);
    let so = t.outbox(s);
    t.subscribe(s, "h/#", QoS::AtLeastOnce);
    let p = t.connect("pub", true);
    // Refused while something is queued; granted once the writer has taken it.
    t.publish(p, "h/1", b"one", QosPid::AtMostOnce, false);
    assert!(!t.hibernate(s), "a message is waiting");
    assert_eq!(t.publishes(s), [("h/1".into(), b"one".to_vec(), 0)]);
    assert!(t.hibernate(s));
    assert!(!t.hibernate(s), "already hibernating");
    assert!(!t.hibernate(ConnId(999)), "unknown connection");
    assert!(t.take_woken().is_empty());
    // A message for it: a new outbox with the message, reported once.
    t.publish(p, "h/2", b"two", QosPid::AtLeastOnce(pid(5)), false);
    assert_eq!(t.drain(p), [Sent::PubAck(5, 0)]);
    assert_eq!(so.queued_bytes(), 0, "the old outbox gets nothing");
    let woken = t.take_woken();
    assert_eq!(woken.len(), 1);
    let (id, fresh) = &woken[0];
    assert_eq!(*id, s);
    assert!(fresh.same(&t.outbox(s)));
    assert!(matches!(
        &t.drain(s)[..],
        [Sent::Publish(Publication { topic, qos: 1, .. })] if topic == "h/2"
    ));
    assert!(t.take_woken().is_empty());
    // Woken by its socket instead: the core hands out the outbox it queues on from then on.
    assert!(t.hibernate(s));
    let back = t.wake(s).unwrap();
    t.publish(p, "h/3", b"three", QosPid::AtMostOnce, false);
    assert!(back.same(&t.outbox(s)));
    assert_eq!(t.publishes(s), [("h/3".into(), b"three".to_vec(), 0)]);
    assert!(t.take_woken().is_empty(), "it was not hibernating any more");
    assert!(t.wake(ConnId(999)).is_none());
}

#[test]
fn hibernating_connection_closed_by_the_core_is_woken_closed() {
    let mut t = Driver::for_tests();
    let will = Will {
        topic: TopicName::new("w").unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: NO_PROPERTIES,
    };
    let (w, _) = t.connect_with("sleepy", true, 1, Some(will));
    let s = t.connect("watch", true);
    t.subscribe(s, "w", QoS::AtMostOnce);
    assert!(t.hibernate(w));
    // Keep-alive 1 s: closed after 1.5 s without a packet, will published.
    t.tick(1600);
    assert_eq!(t.publishes(s), [("w".into(), b"gone".to_vec(), 0)]);
    let woken = t.take_woken();
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].0, w);
    assert!(
        woken[0].1.is_closed(),
        "the shell flushes and shuts the socket"
    );
    // Takeover of a hibernating connection closes it the same way.
    let old = t.connect("twin", false);
    assert!(t.hibernate(old));
    let _new = t.connect("twin", false);
    let woken = t.take_woken();
    assert!(woken.iter().any(|(id, o)| *id == old && o.is_closed()));
}
