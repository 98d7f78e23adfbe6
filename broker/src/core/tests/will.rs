//! Wills: when they are published, and the 5.0 will delay.

use crate::testing::Driver;
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn wills() {
    let mut t = Driver::for_tests();
    let s = t.connect("watcher", true);
    t.subscribe(s, "will/#", QoS::AtMostOnce);
    let will = |topic| Will {
        topic: TopicName::new(topic).unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: NO_PROPERTIES,
    };
    let (c, ..) = t.connect_with("a", true, 60, Some(will("will/a")));
    t.lose(c);
    assert_eq!(t.publishes(s), [("will/a".into(), b"gone".to_vec(), 0)]);
    let (c, ..) = t.connect_with("b", true, 60, Some(will("will/b")));
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    assert!(t.publishes(s).is_empty(), "no will after DISCONNECT");
    let (c, ..) = t.connect_with("c", true, 60, Some(will("will/c")));
    t.send(c, Packet::PingResp);
    assert_eq!(
        t.publishes(s),
        [("will/c".into(), b"gone".to_vec(), 0)],
        "protocol error"
    );
    t.connect_with("d", true, 60, Some(will("will/d")));
    t.connect_with("d", true, 60, None);
    assert_eq!(
        t.publishes(s),
        [("will/d".into(), b"gone".to_vec(), 0)],
        "takeover"
    );
    // Keep-alive: 2 s → closed after 3 s of silence, not before.
    let (c, _) = t.connect_with("e", true, 2, Some(will("will/e")));
    t.tick(2900);
    assert!(!t.is_closed(c));
    t.send(s, Packet::PingReq);
    t.tick(3100);
    assert!(t.is_closed(c));
    assert_eq!(t.publishes(s), [("will/e".into(), b"gone".to_vec(), 0)]);
    let _ = c;
}

/// The clock reaches `now_ms`, the watcher `s` pinging on the way (keep-alive 60 s).
fn tick(t: &mut Driver, s: crate::core::ConnId, now_ms: u64) {
    while t.now + 30_000 < now_ms {
        let next = t.now + 30_000;
        t.tick(next);
        t.send(s, Packet::PingReq);
    }
    t.tick(now_ms);
    t.send(s, Packet::PingReq);
}

#[test]
fn will_delay_interval() {
    let mut t = Driver::for_tests();
    let s = t.connect_v5("watch");
    t.subscribe(s, "will/#", QoS::AtMostOnce);
    let will = |topic, delay| Will {
        topic: TopicName::new(topic).unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties {
            will_delay_interval: Some(delay),
            content_type: Some("text/plain"),
            ..NO_PROPERTIES
        },
    };
    let exp = Properties {
        session_expiry_interval: Some(60),
        ..NO_PROPERTIES
    };
    // Delayed 5 s; published then, with its properties.
    let (c, _) = t.connect_v5_with("a", true, exp, Some(will("will/a", 5)));
    t.lose(c);
    tick(&mut t, s, 4_000);
    assert!(t.drain_publications(s).is_empty());
    tick(&mut t, s, 5_000);
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].content_type.as_deref(), Some("text/plain"));
    // Reconnecting within the delay, Clean Start 0 or 1: never published ([MQTT-3.1.2-8]: "a
    // new Network Connection for the ClientID"; Mosquitto).
    for (id, clean, lost_at, back_at) in [("b", false, 5_000, 7_000), ("b2", true, 20_000, 21_000)]
    {
        tick(&mut t, s, lost_at);
        let (c, _) = t.connect_v5_with(id, true, exp, Some(will("will/b", 5)));
        t.lose(c);
        tick(&mut t, s, back_at);
        t.connect_v5_with(id, clean, exp, None);
    }
    tick(&mut t, s, 40_000);
    assert!(t.drain_publications(s).is_empty());
    // The session ends with its connection (expiry 0): the will still waits its delay, as in
    // Mosquitto, so that a reconnect within it cancels it ...
    let (c, _) = t.connect_v5_with("c", true, NO_PROPERTIES, Some(will("will/c", 3)));
    t.lose(c);
    tick(&mut t, s, 40_900);
    let (c, _) = t.connect_v5_with("c", true, NO_PROPERTIES, None);
    tick(&mut t, s, 50_000);
    assert!(t.drain_publications(s).is_empty(), "reconnected within 1 s");
    t.lose(c);
    // ... and goes out when it is due otherwise.
    let (c, _) = t.connect_v5_with("c", true, NO_PROPERTIES, Some(will("will/c", 3)));
    t.lose(c);
    tick(&mut t, s, 52_900);
    assert!(t.drain_publications(s).is_empty());
    tick(&mut t, s, 53_000);
    assert_eq!(t.drain_publications(s)[0].topic, "will/c");
    // A session that expires before the delay: the will goes when it expires.
    let short = Properties {
        session_expiry_interval: Some(2),
        ..NO_PROPERTIES
    };
    let (c, _) = t.connect_v5_with("f", true, short, Some(will("will/f", 100)));
    t.lose(c);
    tick(&mut t, s, 54_900);
    assert!(t.drain_publications(s).is_empty());
    tick(&mut t, s, 55_000);
    assert_eq!(t.drain_publications(s)[0].topic, "will/f");
    tick(&mut t, s, 50_000 + 200_000);
    assert!(t.drain_publications(s).is_empty(), "published once");
    // A will's Message Expiry Interval counts from its publication, not from CONNECT.
    let expiring_will = Will {
        properties: Properties {
            will_delay_interval: Some(2),
            message_expiry_interval: Some(3),
            ..NO_PROPERTIES
        },
        ..will("will/e", 0)
    };
    let (c, _) = t.connect_v5_with("e", true, exp, Some(expiring_will));
    tick(&mut t, s, 300_000);
    t.lose(c);
    tick(&mut t, s, 302_000);
    let got = t.drain_publications(s);
    assert_eq!(got.len(), 1, "not expired although CONNECT was 50 s ago");
    assert_eq!(got[0].message_expiry, Some(3));
    // DISCONNECT 0x04: the will is published.
    let (c, _) = t.connect_v5_with("d", true, NO_PROPERTIES, Some(will("will/d", 0)));
    t.send(
        c,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::DISCONNECT_WITH_WILL)),
    );
    assert_eq!(t.drain_publications(s)[0].topic, "will/d");
}

/// The will delay and the session expiry count from the moment the socket was lost, which the
/// shell passes in, however long ago the broker last saw a packet or a tick (the shell ticks
/// every 250 ms): the Paho interoperability suite's `test_will_delay` found the will published
/// up to a tick early when they counted from the broker's last-seen time.
#[test]
fn will_delay_and_session_expiry_count_from_the_loss() {
    let mut t = Driver::for_tests();
    let s = t.connect_v5("watch");
    t.subscribe(s, "will/#", QoS::AtMostOnce);
    let will = Will {
        topic: TopicName::new("will/a").unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties {
            will_delay_interval: Some(3),
            ..NO_PROPERTIES
        },
    };
    let exp = Properties {
        session_expiry_interval: Some(5),
        ..NO_PROPERTIES
    };
    let (c, _) = t.connect_v5_with("a", true, exp, Some(will));
    // No packet and no tick since the CONNECT at 0; the socket is lost at 0.9 s.
    t.broker.connection_lost(c, 900);
    t.tick(3_899);
    assert!(
        t.drain_publications(s).is_empty(),
        "published before the will delay had passed"
    );
    t.tick(3_900);
    assert_eq!(t.drain_publications(s).len(), 1);
    t.tick(5_899);
    assert!(
        t.broker.sessions().find("a").is_some(),
        "session expired early"
    );
    t.tick(5_900);
    assert!(t.broker.sessions().find("a").is_none());
    // The same when the connection ends on a malformed packet (its will is published).
    let (c, _) = t.connect_v5_with("b", true, exp, Some(will));
    t.broker.decode_failed(c, DecodeError::InvalidUtf8, 6_800);
    t.tick(9_799);
    assert!(
        t.drain_publications(s).is_empty(),
        "published before the will delay had passed"
    );
    t.tick(9_800);
    assert_eq!(t.drain_publications(s).len(), 1);
}

/// #17 item 4, takeover: a 3.1.1 client's will is not published when both connections continue
/// the session (Clean Session 0 twice, as Mosquitto), and is otherwise; a 5.0 client's will
/// follows 5.0 §3.1.4: published (at once with no delay; with a delay, cancelled by the new
/// connection).
#[test]
fn will_on_session_takeover() {
    let will = |topic, delay| Will {
        topic: TopicName::new(topic).unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties {
            will_delay_interval: delay,
            ..NO_PROPERTIES
        },
    };
    // 3.1.1: (old clean, new clean) → published?
    for (old_clean, new_clean, published) in [
        (false, false, false),
        (false, true, true),
        (true, false, true),
        (true, true, true),
    ] {
        let mut t = Driver::for_tests();
        let s = t.connect("watch", true);
        t.subscribe(s, "will/#", QoS::AtMostOnce);
        let (old, _) = t.connect_with("x", old_clean, 60, Some(will("will/x", None)));
        let (new, out) = t.connect_with("x", new_clean, 60, None);
        assert!(t.is_closed(old) && !t.is_closed(new), "{out:?}");
        assert_eq!(
            t.publishes(s).len(),
            usize::from(published),
            "3.1.1 clean {old_clean} then {new_clean}"
        );
        t.tick(120_000);
        assert!(t.publishes(s).is_empty());
    }
    // 5.0: (will delay, new Clean Start) → published?
    let exp = Properties {
        session_expiry_interval: Some(60),
        ..NO_PROPERTIES
    };
    for (delay, new_clean, published) in [
        (None, false, true),
        (None, true, true),
        (Some(5), false, false),
        (Some(5), true, false),
    ] {
        let mut t = Driver::for_tests();
        let s = t.connect_v5("watch");
        t.subscribe(s, "will/#", QoS::AtMostOnce);
        let (old, _) = t.connect_v5_with("x", false, exp, Some(will("will/x", delay)));
        t.connect_v5_with("x", new_clean, exp, None);
        assert!(t.is_closed(old));
        t.tick(10_000);
        assert_eq!(
            t.drain_publications(s).len(),
            usize::from(published),
            "5.0 delay {delay:?}, clean start {new_clean}"
        );
    }
}
