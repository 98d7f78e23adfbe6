//! #17 items 2, 7 and 8, in raw bytes (the codec accepts all of these strings): control
//! characters in client ids, user names, will topics, topic names and filters are Malformed;
//! topic depth is counted as Mosquitto counts it; 3.1.1 clients get shared subscriptions.
//! The rules are in `core/validate.rs`.

use crate::assert_sent;
use crate::testing::raw::{frame, string};
use crate::testing::{Driver, Sent};

/// CONNECT of `level` (4: 3.1.1, 5: 5.0), clean, keep-alive 60, with `id`, an optional will on
/// `will_topic` (payload "x"), an optional user name.
fn connect(level: u8, id: &[u8], will_topic: Option<&[u8]>, user: Option<&[u8]>) -> Vec<u8> {
    let mut flags = 0x02;
    if will_topic.is_some() {
        flags |= 0x04;
    }
    if user.is_some() {
        flags |= 0x80;
    }
    let mut body = string(b"MQTT");
    body.extend_from_slice(&[level, flags, 0, 60]);
    if level == 5 {
        body.push(0);
    }
    body.extend(string(id));
    if let Some(t) = will_topic {
        if level == 5 {
            body.push(0);
        }
        body.extend(string(t));
        body.extend(string(b"x"));
    }
    if let Some(u) = user {
        body.extend(string(u));
    }
    frame(0x10, &body)
}

/// PUBLISH QoS 1, packet id 1, to `topic`.
fn publish(v5: bool, topic: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(&[0, 1]);
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(b"p");
    frame(0x32, &body)
}

/// SUBSCRIBE packet id 1 to `filter` at QoS 0.
fn subscribe(v5: bool, filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1];
    if v5 {
        body.push(0);
    }
    body.extend(string(filter));
    body.push(0);
    frame(0x82, &body)
}

/// UNSUBSCRIBE packet id 1 from `filter`.
fn unsubscribe(v5: bool, filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1];
    if v5 {
        body.push(0);
    }
    body.extend(string(filter));
    frame(0xA2, &body)
}

/// A connected client of `level` that sent `bytes`: what it was sent after CONNACK, and whether
/// it was closed.
fn after(level: u8, bytes: &[u8]) -> (Vec<Sent>, bool) {
    let mut t = Driver::for_tests();
    let c = t.open().unwrap();
    t.feed(c, &connect(level, b"c", None, None));
    assert_sent!(t.drain(c), [Sent::ConnAck { code: 0, .. }]);
    t.feed(c, bytes);
    (t.drain(c), t.is_closed(c))
}

/// A closed connection: 5.0 with DISCONNECT 0x81 (Malformed), 3.1.1 with nothing.
#[track_caller]
fn assert_malformed(level: u8, bytes: &[u8], what: &str) {
    let (sent, closed) = after(level, bytes);
    assert!(closed, "{what} (level {level}) closes: {sent:?}");
    if level == 5 {
        assert_sent!(sent, [Sent::Disconnect { code: 0x81, .. }], "{what}");
    } else {
        assert_eq!(sent, [], "{what}");
    }
}

const CONTROLS: [&str; 8] = [
    "\u{1}",
    "\u{1F}",
    "\u{7F}",
    "\u{80}",
    "\u{9F}",
    "\u{FDD0}",
    "\u{FFFF}",
    "\u{10FFFE}",
];

#[test]
fn control_characters_in_topics_and_filters_are_malformed() {
    for level in [4, 5] {
        let v5 = level == 5;
        for c in CONTROLS {
            let s = format!("a/{c}b");
            assert_malformed(level, &publish(v5, s.as_bytes()), "PUBLISH");
            assert_malformed(level, &subscribe(v5, s.as_bytes()), "SUBSCRIBE");
            assert_malformed(level, &unsubscribe(v5, s.as_bytes()), "UNSUBSCRIBE");
        }
        // Printable characters beyond them are fine.
        let (sent, closed) = after(level, &subscribe(v5, "a/\u{A0}é\u{FFFD}".as_bytes()));
        assert!(!closed);
        assert_eq!(sent, [Sent::SubAck(1, vec![0])]);
        let (sent, closed) = after(level, &unsubscribe(v5, b"a/~"));
        assert!(!closed);
        assert!(matches!(sent[..], [Sent::UnsubAck(1, _)]), "{sent:?}");
    }
}

#[test]
fn control_characters_in_connect_are_malformed() {
    for level in [4, 5] {
        for c in CONTROLS {
            let bad = format!("x{c}");
            for (what, packet) in [
                ("client id", connect(level, bad.as_bytes(), None, None)),
                (
                    "will topic",
                    connect(level, b"c", Some(bad.as_bytes()), None),
                ),
                (
                    "user name",
                    connect(level, b"c", None, Some(bad.as_bytes())),
                ),
            ] {
                let mut t = Driver::for_tests();
                let conn = t.open().unwrap();
                t.feed(conn, &packet);
                assert!(t.is_closed(conn), "{what} {c:?} level {level}");
                // Closed as for any malformed CONNECT: no CONNACK.
                assert_eq!(t.drain(conn), [], "{what} {c:?} level {level}");
                assert_eq!(t.broker.connected_clients(), 0);
            }
        }
        // The same CONNECT without them is accepted.
        let mut t = Driver::for_tests();
        let conn = t.open().unwrap();
        t.feed(
            conn,
            &connect(level, "é".as_bytes(), Some(b"w/t"), Some(b"u")),
        );
        assert_sent!(t.drain(conn), [Sent::ConnAck { code: 0, .. }]);
    }
}

#[test]
fn topic_depth_as_mosquitto_counts_it() {
    let deepest_ok = ["/".repeat(200), "abc/".repeat(199) + "d"];
    let too_deep = [
        "/".repeat(201),
        "abc/".repeat(201) + "d",
        "/".repeat(65_535),
    ];
    for level in [4, 5] {
        let v5 = level == 5;
        for topic in &deepest_ok {
            // Granted, and a PUBLISH to it delivered.
            let mut t = Driver::for_tests();
            let s = t.open().unwrap();
            t.feed(s, &connect(level, b"s", None, None));
            t.feed(s, &subscribe(v5, topic.as_bytes()));
            let sent = t.drain(s);
            assert_sent!(sent, [Sent::ConnAck { code: 0, .. }, _]);
            assert_eq!(sent[1], Sent::SubAck(1, vec![0]));
            let p = t.open().unwrap();
            t.feed(p, &connect(level, b"p", None, None));
            t.feed(p, &publish(v5, topic.as_bytes()));
            assert!(!t.is_closed(p));
            let got = t.drain_publications(s);
            assert_eq!(got.len(), 1, "{} levels", topic.split('/').count());
            assert_eq!(&got[0].topic, topic);
        }
        for topic in &too_deep {
            let n = topic.split('/').count();
            // PUBLISH: a Protocol Error, as Mosquitto answers it.
            let (sent, closed) = after(level, &publish(v5, topic.as_bytes()));
            assert!(closed, "PUBLISH {n}");
            if v5 {
                assert_sent!(sent, [Sent::Disconnect { code: 0x82, .. }]);
            } else {
                assert_eq!(sent, []);
            }
            assert_malformed(level, &subscribe(v5, topic.as_bytes()), &format!("SUB {n}"));
            assert_malformed(
                level,
                &unsubscribe(v5, topic.as_bytes()),
                &format!("UNSUB {n}"),
            );
        }
    }
}

#[test]
fn a_refused_filter_subscribes_none_of_its_packet() {
    let mut t = Driver::for_tests();
    let c = t.open().unwrap();
    t.feed(c, &connect(5, b"c", None, None));
    let mut body = vec![0, 1, 0];
    body.extend(string(b"ok/1"));
    body.push(0);
    body.extend(string(b"bad/\x01"));
    body.push(0);
    t.feed(c, &frame(0x82, &body));
    assert!(t.is_closed(c));
    assert!(t.broker.subscriptions().is_empty());
}

#[test]
fn shared_subscriptions_for_v311_clients() {
    let mut t = Driver::for_tests();
    let mut members = Vec::new();
    for id in [b"a", b"b"] {
        let c = t.open().unwrap();
        t.feed(c, &connect(4, id, None, None));
        t.feed(c, &subscribe(false, b"$share/g/job/+"));
        let sent = t.drain(c);
        assert_sent!(sent, [Sent::ConnAck { code: 0, .. }, _]);
        assert_eq!(sent[1], Sent::SubAck(1, vec![0]));
        members.push(c);
    }
    assert_eq!(t.broker.shared_subscription_members("$share/g/job/+"), 2);
    let p = t.open().unwrap();
    t.feed(p, &connect(4, b"p", None, None));
    for _ in 0..4 {
        t.feed(p, &publish(false, b"job/1"));
    }
    let counts: Vec<usize> = members
        .iter()
        .map(|&c| t.drain_publications(c).len())
        .collect();
    assert_eq!(counts, [2, 2], "load-shared, each message once");
    // Unsubscribed like any other filter.
    t.feed(members[0], &unsubscribe(false, b"$share/g/job/+"));
    assert_sent!(t.drain(members[0]), [Sent::UnsubAck(1, _)]);
    assert_eq!(t.broker.shared_subscription_members("$share/g/job/+"), 1);
}
