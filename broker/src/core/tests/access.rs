//! Who may connect and what they may do with topics (`core/access.rs`), with a user store and
//! topic rules made here: password checks and their refusals, the rules for SUBSCRIBE, PUBLISH,
//! deliveries, retained messages and wills, and a reload that disconnects whoever lost the
//! right to be connected.

use std::collections::HashMap;
use std::sync::Arc;

use super::pid;
use crate::assert_sent;
use crate::config::Config;
use crate::core::{ListenerAccess, TopicAccess, TopicRules, UserStore};
use crate::testing::{Driver, Sent};
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::*;

/// Users with plain passwords (the real store hashes them: `security/password_file.rs`).
#[derive(Debug)]
struct Users(HashMap<&'static str, &'static str>);

impl UserStore for Users {
    fn verify(&self, username: &str, password: &[u8]) -> bool {
        self.0
            .get(username)
            .is_some_and(|p| p.as_bytes() == password)
    }

    fn credential(&self, username: &str) -> Option<u64> {
        self.0
            .get(username)
            .map(|p| p.len() as u64 + p.bytes().map(u64::from).sum::<u64>())
    }
}

/// Topic rules: `(user, topic prefix, access)` grants; everything else refused.
#[derive(Debug)]
struct Rules(Vec<(&'static str, &'static str, TopicAccess)>);

impl TopicRules for Rules {
    fn allows(&self, _: &str, username: Option<&str>, topic: &str, access: TopicAccess) -> bool {
        let user = username.unwrap_or("");
        self.0
            .iter()
            .any(|&(u, prefix, a)| u == user && a == access && topic.starts_with(prefix))
    }
}

fn users(list: &[(&'static str, &'static str)]) -> Option<Arc<dyn UserStore>> {
    Some(Arc::new(Users(list.iter().copied().collect())))
}

/// A broker whose one listener admits no anonymous client and has `users` and `rules`.
fn broker(
    users: Option<Arc<dyn UserStore>>,
    rules: Option<Arc<dyn TopicRules>>,
    anonymous: bool,
) -> Driver {
    let mut t = Driver::for_tests_with(Config {
        allow_anonymous: Some(anonymous),
        max_failed_logins: 0,
        ..Config::for_tests()
    });
    t.broker.set_listener_access(vec![ListenerAccess {
        allow_anonymous: anonymous,
        users,
        rules,
    }]);
    t
}

/// `id` connects (`v5` or 3.1.1) with `user`/`password`: its connection and what it got.
fn login(
    t: &mut Driver,
    v5: bool,
    id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> (crate::core::ConnId, Vec<Sent>) {
    let c = t.open().unwrap();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: if v5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            },
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id: id,
            will: None,
            username: user,
            password: password.map(str::as_bytes),
            properties: NO_PROPERTIES,
        }),
    );
    let out = t.drain(c);
    (c, out)
}

fn code(out: &[Sent]) -> u8 {
    match out {
        [Sent::ConnAck { code, .. }, ..] => *code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn passwords_are_checked_and_refusals_say_why() {
    let mut t = broker(users(&[("alice", "right")]), None, false);
    for v5 in [false, true] {
        let (c, out) = login(&mut t, v5, "a", Some("alice"), Some("right"));
        assert_eq!(code(&out), 0, "v5 {v5}");
        assert!(!t.is_closed(c));
        let bad = if v5 { 0x86 } else { 0x05 };
        let anonymous = if v5 { 0x87 } else { 0x05 };
        for (user, password, want) in [
            (Some("alice"), Some("wrong"), bad),
            (Some("alice"), None, bad),
            (Some("bob"), Some("right"), bad),
            (None, None, anonymous),
        ] {
            let (c, out) = login(&mut t, v5, "b", user, password);
            assert_eq!(code(&out), want, "v5 {v5} {user:?} {password:?}");
            assert!(t.is_closed(c));
        }
    }
    // Anonymous clients too where allowed; users still checked.
    let mut t = broker(users(&[("alice", "right")]), None, true);
    assert_eq!(code(&login(&mut t, false, "a", None, None).1), 0);
    assert_eq!(
        code(&login(&mut t, false, "b", Some("alice"), Some("x")).1),
        5
    );
}

#[test]
fn reload_disconnects_who_lost_the_right() {
    let mut t = broker(users(&[("alice", "right"), ("bob", "pw")]), None, true);
    let (alice, _) = login(&mut t, true, "a", Some("alice"), Some("right"));
    let (bob, _) = login(&mut t, false, "b", Some("bob"), Some("pw"));
    let (anon, _) = login(&mut t, true, "n", None, None);
    // bob's password changed, alice unchanged, anonymous clients no longer allowed.
    t.broker.set_listener_access(vec![ListenerAccess {
        allow_anonymous: false,
        users: users(&[("alice", "right"), ("bob", "new")]),
        rules: None,
    }]);
    t.absorb();
    assert!(!t.is_closed(alice));
    assert!(t.is_closed(bob));
    assert!(t.is_closed(anon));
    assert_sent!(t.drain(anon), [Sent::Disconnect { code: 0x87, .. }]);
    assert_eq!(t.broker.connected_clients(), 1);
    // A user removed.
    t.broker.set_listener_access(vec![ListenerAccess {
        allow_anonymous: false,
        users: users(&[("bob", "new")]),
        rules: None,
    }]);
    t.absorb();
    assert!(t.is_closed(alice));
    assert_sent!(t.drain(alice), [Sent::Disconnect { code: 0x87, .. }]);
}

#[test]
fn topic_rules_for_subscribe_publish_delivery_retained_and_wills() {
    use TopicAccess::*;
    let rules = Rules(vec![
        ("reader", "public/", Subscribe),
        ("reader", "public/", Read),
        ("reader", "#", Subscribe),
        ("writer", "public/", Write),
        ("writer", "secret/", Write),
        ("writer", "will/", Write),
    ]);
    let mut t = broker(
        users(&[("reader", "r"), ("writer", "w")]),
        Some(Arc::new(rules)),
        false,
    );
    let (r3, _) = login(&mut t, false, "r3", Some("reader"), Some("r"));
    let (r5, _) = login(&mut t, true, "r5", Some("reader"), Some("r"));
    // SUBSCRIBE refused where the rules say no: 0x80, 5.0 0x87.
    assert_eq!(
        t.subscribe(r3, "secret/x", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![0x80])]
    );
    assert_eq!(
        t.subscribe(r5, "secret/x", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![0x87])]
    );
    // `#` is granted, but only readable topics are delivered through it.
    assert_eq!(
        t.subscribe(r5, "#", QoS::AtLeastOnce),
        [Sent::SubAck(1, vec![1])]
    );
    let (w, _) = login(&mut t, true, "w", Some("writer"), Some("w"));
    t.publish(w, "public/a", b"ok", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(w, "secret/a", b"leak", QosPid::AtLeastOnce(pid(2)), true);
    // (secret/a matched a subscription its subscriber may not read: 0x00, as from Mosquitto.)
    assert_sent!(t.drain(w), [Sent::PubAck(1, 0), Sent::PubAck(2, 0)]);
    let got = t.drain_publications(r5);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic, "public/a");
    // A PUBLISH without write access: acknowledged (5.0 0x87) and dropped, not retained.
    let (r, _) = login(&mut t, true, "rp", Some("reader"), Some("r"));
    t.publish(r, "public/b", b"no", QosPid::AtLeastOnce(pid(3)), true);
    assert_sent!(t.drain(r), [Sent::PubAck(3, 0x87)]);
    assert!(t.drain_publications(r5).is_empty());
    assert!(t.broker.retained().get("public/b").is_none());
    // Retained messages on subscribe: only readable ones.
    t.publish(w, "public/r", b"kept", QosPid::AtMostOnce, true);
    t.drain_publications(r5);
    let (late, _) = login(&mut t, true, "late", Some("reader"), Some("r"));
    let got = t.subscribe(late, "#", QoS::AtMostOnce);
    let topics: Vec<&str> = got
        .iter()
        .filter_map(|s| s.publication())
        .map(|p| p.topic.as_str())
        .collect();
    assert_eq!(
        topics,
        ["public/r"],
        "secret/a is retained but not readable"
    );
    // Wills: published only where their client may write.
    let c = t.open().unwrap();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id: "willing",
            will: Some(Will {
                topic: TopicName::new("public/will").unwrap(),
                payload: b"gone",
                qos: QoS::AtMostOnce,
                retain: false,
                properties: NO_PROPERTIES,
            }),
            username: Some("reader"),
            password: Some(b"r"),
            properties: NO_PROPERTIES,
        }),
    );
    t.lose(c);
    assert!(
        t.drain_publications(r5).is_empty(),
        "reader may not write public/will"
    );
}
