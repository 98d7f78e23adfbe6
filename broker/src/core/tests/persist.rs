//! Persistence (`persist.rs`, `restore.rs`, `crate::store`): in the durable mode an
//! acknowledgement waits for the batch holding what it acknowledges, in order; a failing store
//! refuses new QoS 1/2 messages; what the core journals, written to a real store and read back,
//! rebuilds the sessions, their queues and in-flight state, QoS 2 ids and retained messages.

use super::pid;
use crate::config::Config;
use crate::core::{Change, OutgoingState, Persistence};
use crate::store::Store;
use crate::testing::{Driver, Publication, Sent};
use wren_codec::*;

fn durable() -> Driver {
    let mut t = Driver::for_tests();
    t.broker.set_persistence(Persistence::Durable);
    t
}

/// A new store file in a fresh directory named after `name`, recovered (empty): the
/// directory (removed by the test at its end), the file and the store.
fn new_store(name: &str) -> (std::path::PathBuf, std::path::PathBuf, Store) {
    let dir = std::env::temp_dir().join(format!("wren-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("wren.db");
    let mut store = Store::open(&path).unwrap();
    store.recover().unwrap();
    (dir, path, store)
}

/// Everything journalled so far, as one committed batch (what the store writer does).
fn commit(t: &mut Driver) -> Vec<Change> {
    let Some((batch, changes)) = t.broker.take_changes() else {
        return Vec::new();
    };
    t.broker.changes_committed(batch, t.now);
    t.absorb();
    changes
}

#[test]
fn durable_acknowledgements_wait_for_their_batch_in_order() {
    let mut t = durable();
    let dev = t.connect("device", false);
    // The SUBACK creating a persistent subscription waits for the disk.
    assert_eq!(t.subscribe(dev, "cmd/#", QoS::AtLeastOnce), []);
    let changes = commit(&mut t);
    assert!(
        matches!(&changes[..], [Change::Session { client_id, disconnected_at: None, .. }, Change::Subscribed { filter, .. }] if &**client_id == "device" && &**filter == "cmd/#"),
        "{changes:?}"
    );
    assert_eq!(t.drain(dev), [Sent::SubAck(1, vec![1])]);
    t.send(
        dev,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::SUCCESS)),
    );
    commit(&mut t);

    let p = t.connect("app", true);
    t.publish(p, "cmd/1", b"a", QosPid::AtLeastOnce(pid(1)), false);
    assert_eq!(
        t.drain(p),
        [],
        "PUBACK held: the queued message is not on disk yet"
    );
    // Taken by the writer (being written) ...
    let (first, _) = t.broker.take_changes().unwrap();
    t.publish(p, "cmd/2", b"b", QosPid::AtLeastOnce(pid(2)), false);
    // ... a PINGRESP is not an acknowledgement: it goes at once.
    t.send(p, Packet::PingReq);
    assert_eq!(t.drain(p), [Sent::PingResp]);
    t.broker.changes_committed(first, t.now);
    assert_eq!(
        t.drain(p),
        [Sent::PubAck(1, 0)],
        "only the first batch is on disk"
    );
    commit(&mut t);
    assert_eq!(t.drain(p), [Sent::PubAck(2, 0)]);
    // QoS 2: PUBREC, PUBREL and PUBCOMP wait alike.
    t.publish(p, "cmd/3", b"c", QosPid::ExactlyOnce(pid(3)), false);
    assert_eq!(t.drain(p), []);
    commit(&mut t);
    assert_eq!(t.drain(p), [Sent::PubRec(3, 0)]);
    t.send(p, Packet::PubRel(Ack::new(pid(3))));
    assert_eq!(
        t.drain(p),
        [Sent::PubComp(3, 0)],
        "nothing to write: at once"
    );

    // Nothing persistent involved: nothing journalled, nothing held.
    let q = t.connect("other", true);
    t.publish(q, "no/subscriber", b"x", QosPid::AtLeastOnce(pid(9)), false);
    assert_eq!(t.drain(q), [Sent::PubAck(9, 0)]);
    assert!(!t.broker.has_changes());
    // Another session's batch being written (or failing) holds no one else's acknowledgement.
    t.publish(p, "cmd/4", b"d", QosPid::AtLeastOnce(pid(4)), false);
    let _taken = t.broker.take_changes().unwrap();
    t.publish(
        q,
        "no/subscriber",
        b"y",
        QosPid::AtLeastOnce(pid(10)),
        false,
    );
    assert_eq!(
        t.subscribe(q, "any", QoS::AtLeastOnce),
        [Sent::PubAck(10, 0), Sent::SubAck(1, vec![1])]
    );
    assert_eq!(t.drain(p), []);
}

/// A message queued, sent and acknowledged by its subscriber before the writer took its batch
/// leaves nothing to write (one `Void` where it was queued, no `Sent`, no `Done`); one done
/// with in a later batch is recorded as done.
#[test]
fn a_message_done_with_in_its_batch_leaves_nothing_to_write() {
    let mut t = durable();
    let dev = t.connect("device", false);
    t.subscribe(dev, "cmd/#", QoS::ExactlyOnce);
    commit(&mut t);
    t.drain(dev);
    let p = t.connect("app", true);

    // QoS 1, delivered and acknowledged before the batch is taken.
    t.publish(p, "cmd/1", b"a", QosPid::AtLeastOnce(pid(1)), false);
    let sent = t.drain_publications(dev);
    assert_eq!(sent.len(), 1);
    let out_pid = sent[0].pid;
    t.send(dev, Packet::PubAck(Ack::new(pid(out_pid))));
    assert_eq!(t.drain(p), [], "the PUBACK still waits for its batch");
    let changes = commit(&mut t);
    assert!(
        matches!(&changes[..], [Change::Void]),
        "nothing left to write: {changes:?}"
    );
    assert_eq!(t.drain(p), [Sent::PubAck(1, 0)]);

    // Done with in a later batch: recorded as such.
    t.publish(p, "cmd/2", b"b", QosPid::AtLeastOnce(pid(2)), false);
    let sent = t.drain_publications(dev);
    commit(&mut t);
    t.send(dev, Packet::PubAck(Ack::new(pid(sent[0].pid))));
    let changes = commit(&mut t);
    assert!(matches!(&changes[..], [Change::Done { .. }]), "{changes:?}");
}

/// Exactly once across a crash: a QoS 2 message goes to a persistent session only once its
/// record (and packet id) is on disk, and so does its PUBREL; what is sent to the same
/// connection after it waits behind it, in order. A clean session's QoS 2, which a crash ends
/// anyway, goes at once.
#[test]
fn a_qos2_delivery_to_a_persistent_session_waits_for_its_record() {
    let mut t = durable();
    let dev = t.connect("device", false);
    t.subscribe(dev, "cmd/#", QoS::ExactlyOnce);
    let watcher = t.connect("watcher", true);
    t.subscribe(watcher, "cmd/#", QoS::ExactlyOnce);
    commit(&mut t);
    t.drain(dev);
    t.drain(watcher);
    let p = t.connect("app", true);

    t.publish(p, "cmd/1", b"two", QosPid::ExactlyOnce(pid(1)), false);
    t.publish(p, "cmd/2", b"one", QosPid::AtLeastOnce(pid(2)), false);
    assert_eq!(
        t.drain_publications(watcher).len(),
        2,
        "not persistent: at once"
    );
    assert_eq!(
        t.drain(dev),
        [],
        "not on disk yet: held, and the QoS 1 behind it"
    );
    commit(&mut t);
    let sent = t.drain_publications(dev);
    let order: Vec<(&str, u8)> = sent.iter().map(|p| (p.topic.as_str(), p.qos)).collect();
    assert_eq!(order, [("cmd/1", 2), ("cmd/2", 1)]);
    // Its PUBREC recorded, the PUBREL waits for that too.
    t.send(dev, Packet::PubRec(Ack::new(pid(sent[0].pid))));
    assert_eq!(t.drain(dev), []);
    let changes = commit(&mut t);
    assert!(
        changes.iter().any(|c| matches!(
            c,
            Change::Sent {
                state: OutgoingState::AwaitingPubComp,
                ..
            }
        )),
        "{changes:?}"
    );
    assert_eq!(t.drain(dev), [Sent::PubRel(sent[0].pid, 0)]);

    // Back after a disconnection: the PUBREL sent again waits for what is not on disk yet.
    t.send(
        dev,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::SUCCESS)),
    );
    let (dev, out) = t.connect_with("device", false, 60, None);
    assert!(matches!(out[..], [Sent::ConnAck { .. }]), "{out:?}");
    commit(&mut t);
    let out = t.drain(dev);
    assert!(
        matches!(&out[..], [Sent::PubRel(id, 0), Sent::Publish(_)] if *id == sent[0].pid),
        "{out:?}"
    );
}

#[test]
fn periodic_mode_journals_without_holding_and_memory_mode_journals_nothing() {
    let mut t = Driver::for_tests();
    t.broker.set_persistence(Persistence::Periodic);
    let dev = t.connect("device", false);
    assert_eq!(
        t.subscribe(dev, "cmd/#", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![1])]
    );
    assert!(t.broker.has_changes());
    let mut m = Driver::for_tests();
    assert_eq!(m.broker.persistence(), Persistence::Memory);
    let dev = m.connect("device", false);
    m.subscribe(dev, "cmd/#", QoS::AtLeastOnce);
    assert!(!m.broker.has_changes());
}

#[test]
fn a_failing_store_refuses_qos1_and_qos2_until_it_writes_again() {
    let mut t = durable();
    let v5 = t.connect_v5("v5");
    let v3 = t.connect("v3", true);
    t.broker.store_failing();
    t.publish(v5, "t", b"1", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(v5, "t", b"2", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(v5, "t", b"0", QosPid::AtMostOnce, false);
    // 0x97 Quota exceeded, not acknowledged-and-lost; QoS 0 goes on.
    assert_eq!(t.drain(v5), [Sent::PubAck(1, 0x97), Sent::PubRec(2, 0x97)]);
    // 3.1.1 cannot refuse a PUBLISH: the connection is closed.
    t.publish(v3, "t", b"1", QosPid::AtLeastOnce(pid(1)), false);
    assert!(t.is_closed(v3));
    assert_eq!(t.broker.stats().store_failures, 1);
    assert_eq!(t.broker.stats().store_refused, 3);
    // Written again: accepted again.
    t.broker.changes_committed(0, t.now);
    t.publish(v5, "t", b"3", QosPid::AtLeastOnce(pid(3)), false);
    assert_eq!(t.drain(v5), [Sent::PubAck(3, 0x10)]);
}

/// A scenario through the core with the durable journal, every change written to a real store
/// file, then read back into a new broker: the same sessions, subscriptions, queues (in order),
/// in-flight messages (re-sent with DUP, PUBREL for those PUBREC'd), QoS 2 ids awaiting PUBREL
/// and retained messages; a message two sessions hold is stored once.
#[test]
fn what_the_core_journals_rebuilds_the_same_state() {
    let (dir, path, mut store) = new_store("unit");

    let mut t = durable();
    let a = t.connect("a", false);
    t.subscribe(a, "s/#", QoS::ExactlyOnce);
    let b = t.connect("b", false);
    t.subscribe(b, "s/#", QoS::AtLeastOnce);
    t.subscribe(b, "gone/#", QoS::AtLeastOnce);
    t.send(
        b,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            properties: properties::NO_PROPERTIES,
            filters: List::new(&[TopicFilter::new("gone/#").unwrap()]),
        }),
    );
    let p = t.connect("pub", false);
    // An incoming QoS 2 message not yet released.
    t.publish(p, "x", b"q2", QosPid::ExactlyOnce(pid(7)), false);
    t.publish(p, "s/1", b"one", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "s/2", b"two", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p, "r", b"kept", QosPid::AtLeastOnce(pid(3)), true);
    t.publish(p, "r2", b"gone", QosPid::AtLeastOnce(pid(4)), true);
    t.publish(p, "r2", b"", QosPid::AtLeastOnce(pid(5)), true);
    store.write(&commit(&mut t)).unwrap();
    // `a` received both: acknowledges the first, PUBRECs the second.
    let got = t.drain_publications(a);
    assert_eq!(got.len(), 2, "{got:?}");
    t.send(a, Packet::PubAck(Ack::new(pid(got[0].pid))));
    t.send(a, Packet::PubRec(Ack::new(pid(got[1].pid))));
    // `b` acknowledges nothing and leaves; more arrives for it while away.
    t.send(
        a,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::SUCCESS)),
    );
    t.send(
        b,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::SUCCESS)),
    );
    t.publish(p, "s/3", b"three", QosPid::AtLeastOnce(pid(6)), false);
    store.write(&commit(&mut t)).unwrap();
    // Four message bodies: s/1 (held by b), s/2 (a and b: once), s/3 (a and b: once), none for
    // the retained (stored with its topic).
    assert_eq!(store.stored_messages().unwrap(), 3);
    drop(store);

    let mut store = Store::open(&path).unwrap();
    let (restored, report) = store.recover().unwrap();
    assert_eq!(
        (
            report.sessions,
            report.messages,
            report.retained,
            report.unreadable
        ),
        (3, 5, 1, 0),
        "{report:?}"
    );
    let mut r = Driver::for_tests_with(Config::for_tests());
    assert_eq!(r.broker.restore(restored, 0), 0);
    r.broker.set_persistence(Persistence::Durable);
    assert_eq!(r.broker.subscriptions().len(), 2);
    let qa = r.qos_state("a");
    assert_eq!(qa.inflight.len(), 1);
    assert_eq!(qa.inflight[0].state, OutgoingState::AwaitingPubComp);
    assert_eq!(qa.queued.len(), 1);
    assert_eq!(r.qos_state("b").inflight.len(), 2);
    assert_eq!(r.qos_state("b").queued.len(), 1);
    assert!(r.qos_state("pub").awaiting_rel.contains(&7));
    assert_eq!(r.broker.retained().len(), 1);
    // Back: `a` gets PUBREL for the PUBREC'd message, then the one queued; `b` everything it
    // never acknowledged, the in-flight ones with DUP, in order.
    let (a, mut out) = r.connect_with("a", false, 60, None);
    // (The PUBREL, and what follows it, wait for the batch with the CONNECT's changes.)
    assert_eq!(out.len(), 1, "{out:?}");
    commit(&mut r);
    out.extend(r.drain(a));
    assert!(
        matches!(
            out[0],
            Sent::ConnAck {
                session_present: true,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(matches!(out[1], Sent::PubRel(..)), "{out:?}");
    assert!(
        matches!(&out[2], Sent::Publish(Publication { topic, qos: 1, .. }) if topic == "s/3"),
        "{out:?}"
    );
    let (_, out) = r.connect_with("b", false, 60, None);
    let topics: Vec<(String, bool)> = out
        .iter()
        .filter_map(|s| match s {
            Sent::Publish(p) => Some((p.topic.clone(), p.dup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        topics,
        [
            ("s/1".to_owned(), true),
            ("s/2".to_owned(), true),
            ("s/3".to_owned(), false)
        ]
    );
    // The unreleased QoS 2 id is still known: a resend is not delivered twice.
    let (p, _) = r.connect_with("pub", false, 60, None);
    let s = r.connect("watcher", true);
    r.subscribe(s, "x", QoS::ExactlyOnce);
    r.publish(p, "x", b"q2", QosPid::ExactlyOnce(pid(7)), false);
    assert_eq!(r.publishes(s), []);
    let _ = a;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A will waiting for its Will Delay Interval is kept by the store: after a restart it is
/// published when its delay has passed (counted from the disconnection), once.
#[test]
fn a_delayed_will_survives_a_restart() {
    let (dir, path, mut store) = new_store("will");
    let mut t = durable();
    let will = Will {
        topic: TopicName::new("will/sensor").unwrap(),
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: properties::Properties {
            will_delay_interval: Some(2),
            ..properties::NO_PROPERTIES
        },
    };
    let session = properties::Properties {
        session_expiry_interval: Some(3600),
        ..properties::NO_PROPERTIES
    };
    let (c, _) = t.connect_v5_with("sensor", true, session, Some(will));
    t.lose(c);
    let changes = commit(&mut t);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Will { will: Some(_), .. })),
        "{changes:?}"
    );
    store.write(&changes).unwrap();
    drop(store);

    let mut store = Store::open(&path).unwrap();
    let (restored, _) = store.recover().unwrap();
    assert_eq!(restored.wills.len(), 1);
    let (_, _, due_in) = &restored.wills[0];
    assert!(*due_in <= 2000, "{due_in}");
    let mut r = Driver::for_tests();
    r.broker.restore(restored, 0);
    r.broker.set_persistence(Persistence::Durable);
    let s = r.connect("watcher", true);
    r.subscribe(s, "will/#", QoS::AtLeastOnce);
    r.tick(2_500);
    let got = r.publishes(s);
    assert_eq!(got, [("will/sensor".to_owned(), b"offline".to_vec(), 1)]);
    // Published: the store is told, so a second restart does not publish it again.
    let changes = r.broker.take_changes().unwrap().1;
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Will { will: None, .. })),
        "{changes:?}"
    );
    store.write(&changes).unwrap();
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let (restored, _) = store.recover().unwrap();
    assert!(restored.wills.is_empty());
    assert_eq!(restored.retained.len(), 1, "the retained will");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The will of a client connected when the broker dies (a crash, or a shutdown, which closes
/// connections without their wills) comes back after the restart as a will waiting for its
/// delay from then: published unless its client connects again first. One whose connection
/// ended normally does not come back.
#[test]
fn the_will_of_a_client_connected_when_the_broker_dies_is_kept() {
    let (dir, path, mut store) = new_store("cwill");
    let will = |topic: &'static str, delay: Option<u32>| Will {
        topic: TopicName::new(topic).unwrap(),
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: properties::Properties {
            will_delay_interval: delay,
            ..properties::NO_PROPERTIES
        },
    };
    let mut t = durable();
    // A 3.1.1 lamp (no delay), a 5.0 sensor (5 s), and one that says goodbye.
    t.connect_with("lamp", true, 60, Some(will("state/lamp", None)));
    t.connect_v5_with(
        "sensor",
        true,
        properties::NO_PROPERTIES,
        Some(will("state/sensor", Some(5))),
    );
    let (polite, _) = t.connect_with("polite", true, 60, Some(will("state/polite", None)));
    t.send(
        polite,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::SUCCESS)),
    );
    store.write(&commit(&mut t)).unwrap();
    // The broker dies: nothing more is written.
    drop(t);
    drop(store);

    let mut store = Store::open(&path).unwrap();
    let (restored, report) = store.recover().unwrap();
    assert_eq!(report.connected_wills, 2, "{report:?}");
    let mut wills: Vec<(&str, u64)> = restored
        .wills
        .iter()
        .map(|(c, _, due_in)| (&**c, *due_in))
        .collect();
    wills.sort();
    assert_eq!(wills, [("lamp", 0), ("sensor", 5000)]);
    let mut r = Driver::for_tests();
    r.broker.restore(restored, 0);
    r.broker.set_persistence(Persistence::Durable);
    let watcher = r.connect("watcher", true);
    r.subscribe(watcher, "state/#", QoS::AtLeastOnce);
    r.tick(100);
    assert_eq!(
        r.publishes(watcher),
        [("state/lamp".to_owned(), b"offline".to_vec(), 1)]
    );
    // The sensor is back within its delay: no will. It connects without one, then the broker
    // shuts down: nothing of it is kept, and its earlier will is not published.
    r.connect_v5_with("sensor", true, properties::NO_PROPERTIES, None);
    r.tick(6_000);
    assert_eq!(r.publishes(watcher), []);
    // A client connected at a shutdown keeps its will in the store.
    r.connect_with("lamp", true, 60, Some(will("state/lamp", None)));
    r.broker.shutdown();
    store.write(&r.broker.take_changes().unwrap().1).unwrap();
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let (restored, report) = store.recover().unwrap();
    let clients: Vec<&str> = restored.wills.iter().map(|(c, _, _)| &**c).collect();
    assert_eq!((clients, report.connected_wills), (vec!["lamp"], 1));
    drop(store);
    // Recovery made it a will waiting for its delay, in the same transaction: a second
    // recovery finds it there, not twice.
    let mut store = Store::open(&path).unwrap();
    let (restored, report) = store.recover().unwrap();
    assert_eq!((restored.wills.len(), report.connected_wills), (1, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// In the durable mode a client whose will is kept for a crash is told it is connected only
/// once the will is on disk; what it sends meanwhile is answered after the CONNACK, in order. A
/// 5.0 connection closed before then gets no DISCONNECT (it may not come before the CONNACK).
/// A client without a will gets its CONNACK at once.
#[test]
fn the_connack_of_a_client_with_a_will_waits_for_the_will_on_disk() {
    let will = || Will {
        topic: TopicName::new("state/lamp").unwrap(),
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: properties::NO_PROPERTIES,
    };
    let mut t = durable();
    // A persistent subscriber: the lamp's QoS 1 PUBLISH is stored, so its PUBACK waits for the
    // disk as well.
    let watcher = t.connect("watcher", false);
    t.subscribe(watcher, "state/#", QoS::AtLeastOnce);
    commit(&mut t);
    let (lamp, out) = t.connect_with("lamp", true, 60, Some(will()));
    assert_eq!(out, []);
    t.publish(
        lamp,
        "state/lamp",
        b"on",
        QosPid::AtLeastOnce(pid(1)),
        false,
    );
    t.send(lamp, Packet::PingReq);
    assert_eq!(t.drain(lamp), []);
    let changes = commit(&mut t);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::ConnectedWill { will: Some(_), .. })),
        "{changes:?}"
    );
    assert_eq!(
        t.drain(lamp),
        [Sent::connack(false, 0), Sent::PubAck(1, 0), Sent::PingResp]
    );
    // No will: nothing to wait for.
    t.connect("plain", true);

    // Taken over before its CONNACK went: closed without a DISCONNECT.
    let (first, out) = t.connect_v5_with("sensor", true, properties::NO_PROPERTIES, Some(will()));
    assert_eq!(out, []);
    let (second, out) = t.connect_v5_with("sensor", true, properties::NO_PROPERTIES, None);
    assert!(t.is_closed(first));
    assert_eq!(t.drain(first), []);
    // (Its own CONNACK has nothing to wait for: it has no will.)
    assert!(
        matches!(out[..], [Sent::ConnAck { code: 0, .. }]),
        "{out:?}"
    );
    // Once connected, a takeover is told (0x8E Session taken over).
    let (_, out) = t.connect_v5_with("sensor", true, properties::NO_PROPERTIES, None);
    assert!(
        matches!(out[..], [Sent::ConnAck { code: 0, .. }]),
        "{out:?}"
    );
    let out = t.drain(second);
    assert!(
        matches!(out[..], [Sent::Disconnect { code: 0x8E, .. }]),
        "{out:?}"
    );
}

/// A store that held many messages and then let them go gives the space back when compacted
/// (the broker does it at start-up and while it runs, `Store::sparse`); a full one is left
/// alone.
#[test]
fn a_store_mostly_free_is_compacted() {
    let (dir, path, mut store) = new_store("compact");
    let mut config = Config::for_tests();
    config.max_queued_messages = 0;
    let mut t = Driver::for_tests_with(config);
    t.broker.set_persistence(Persistence::Durable);
    let dev = t.connect("device", false);
    t.subscribe(dev, "cmd/#", QoS::AtLeastOnce);
    t.lose(dev);
    let p = t.connect("app", true);
    let payload = vec![b'x'; 1000];
    for i in 0..4000u16 {
        let id = i % 60_000 + 1;
        t.publish(p, "cmd/1", &payload, QosPid::AtLeastOnce(pid(id)), false);
        if i % 500 == 0 {
            store.write(&commit(&mut t)).unwrap();
        }
    }
    store.write(&commit(&mut t)).unwrap();
    assert_eq!(
        store.sparse(0).unwrap(),
        None,
        "a store holding 4 MB of messages is not sparse"
    );
    // The device comes back with a clean session: everything it held goes.
    t.connect("device", true);
    store.write(&commit(&mut t)).unwrap();
    let before = store.sparse(0).unwrap().expect("sparse");
    let after = store.compact().unwrap();
    eprintln!("compacted {before} -> {after}");
    assert!(
        before > 4_000_000 && after < before / 4,
        "{before} -> {after}"
    );
    // Still a store: written and read back.
    t.connect("other", false);
    store.write(&commit(&mut t)).unwrap();
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let (restored, _) = store.recover().unwrap();
    assert_eq!(restored.sessions.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many seeded random runs (clients connecting, subscribing, publishing QoS 0/1/2 and retained
/// messages, acknowledging some of what they get in any order, leaving and coming back),
/// every step's changes written to a store as its own batch: at every 25th step and at the end,
/// a broker rebuilt from the store has the same durable state as the one that ran.
#[test]
fn random_runs_rebuild_the_same_durable_state() {
    use crate::testing::DurableState;
    let mut held = 0;
    for seed in 1..=40u64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut t = Driver::for_tests_with(Config {
            max_inflight_messages: 3,
            max_queued_messages: 50,
            ..Config::for_tests()
        });
        t.broker.set_persistence(Persistence::Periodic);
        let mut store = Store::in_memory().unwrap();
        store.recover().unwrap();
        let names = ["p0", "p1", "c2", "p3"];
        let mut conns: Vec<Option<crate::core::ConnId>> = vec![None; names.len()];
        let filters = ["a/#", "a/b", "+/b", "c"];
        let topics = ["a/b", "a/c", "x/b", "c"];
        for step in 0..200u32 {
            let i = rnd(names.len() as u64) as usize;
            match (conns[i], rnd(10)) {
                (None, _) => {
                    let (c, _) = t.connect_with(names[i], names[i].starts_with('c'), 60, None);
                    conns[i] = Some(c);
                }
                (Some(c), 0) => {
                    t.lose(c);
                    conns[i] = None;
                }
                (Some(c), 1) => {
                    let f = filters[rnd(4) as usize];
                    let qos = QoS::from_bits(rnd(3) as u8).unwrap();
                    t.subscribe(c, f, qos);
                }
                (Some(c), 2..=5) => {
                    // A few messages in one batch: one segment holds several.
                    for n in 0..1 + rnd(4) as u16 {
                        let topic = topics[rnd(4) as usize];
                        let payload = format!("{seed}-{step}-{n}");
                        let p = pid(1 + ((step * 4) % 60000) as u16 + n);
                        let qos_pid = match rnd(3) {
                            0 => QosPid::AtMostOnce,
                            1 => QosPid::AtLeastOnce(p),
                            _ => QosPid::ExactlyOnce(p),
                        };
                        t.publish(c, topic, payload.as_bytes(), qos_pid, rnd(5) == 0);
                        // Some publishers release their QoS 2 message, some not yet.
                        if matches!(qos_pid, QosPid::ExactlyOnce(_)) && rnd(2) == 0 {
                            t.send(c, Packet::PubRel(Ack::new(p)));
                        }
                    }
                }
                (Some(c), _) => {
                    // Acknowledge some of what arrived, in any order.
                    let mut got = t.drain_publications(c);
                    while !got.is_empty() {
                        let p = got.swap_remove(rnd(got.len() as u64) as usize);
                        if rnd(4) == 0 || p.qos == 0 {
                            continue;
                        }
                        let ack = Ack::new(pid(p.pid));
                        if p.qos == 1 {
                            t.send(c, Packet::PubAck(ack));
                        } else {
                            t.send(c, Packet::PubRec(ack));
                            if rnd(2) == 0 {
                                t.send(c, Packet::PubComp(Ack::new(pid(p.pid))));
                            }
                        }
                    }
                }
            }
            if let Some((_, changes)) = t.broker.take_changes() {
                store.write(&changes).unwrap();
            }
            if step % 25 == 24 || step == 199 {
                let (restored, report) = store.recover().unwrap();
                assert_eq!(report.unreadable, 0);
                let mut r = Driver::for_tests();
                assert_eq!(r.broker.restore(restored, t.now), 0);
                let state = DurableState::of(&t.broker);
                assert_eq!(
                    state,
                    DurableState::of(&r.broker),
                    "seed {seed}, step {step}"
                );
                held += state
                    .sessions
                    .values()
                    .map(|s| s.messages.len())
                    .sum::<usize>();
            }
        }
    }
    // (The runs did leave messages for the store to keep.)
    eprintln!("messages held at the checks: {held}");
    assert!(held > 100, "{held}");
}
