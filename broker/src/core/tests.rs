use super::*;
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::*;
use wren_codec::{
    DecodeOptions, Status, Subscription, SubscriptionOptions, TopicFilter, TopicName, Will, decode,
};

/// The hibernating connections the core woke ([`Event::Woken`]), with their new outboxes.
fn take_woken(b: &mut Broker) -> Vec<(ConnId, Outbox)> {
    std::iter::from_fn(|| b.poll_event())
        .filter_map(|e| match e {
            Event::Woken { conn, outbox } => Some((conn, outbox)),
            Event::Congested(_) => None,
        })
        .collect()
}

/// The congested subscribers the core reported ([`Event::Congested`]).
fn take_congested(b: &mut Broker) -> Vec<Outbox> {
    std::iter::from_fn(|| b.poll_event())
        .filter_map(|e| match e {
            Event::Congested(o) => Some(o),
            Event::Woken { .. } => None,
        })
        .collect()
}

/// An owned summary of a packet the broker sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum P {
    ConnAck(bool, u8),
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        pid: u16,
        dup: bool,
        retain: bool,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    SubAck(u16, Vec<u8>),
    UnsubAck(u16),
    PingResp,
    Disconnect(u8),
}

fn drain(o: &Outbox) -> Vec<P> {
    let mut buf = Vec::new();
    o.drain_into(&mut buf);
    let mut rest = &buf[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let opts = DecodeOptions::new(ProtocolVersion::V311);
        let Ok(Status::Complete(d)) = decode(rest, opts) else {
            panic!("undecodable output {rest:?}")
        };
        out.push(match d.packet {
            Packet::ConnAck(c) => P::ConnAck(c.session_present, c.code.0),
            Packet::Publish(p) => P::Publish {
                topic: p.topic.as_str().into(),
                payload: p.payload.to_vec(),
                qos: p.qos_pid.qos().bits(),
                pid: p.qos_pid.packet_id().map_or(0, |p| p.get()),
                dup: p.dup,
                retain: p.retain,
            },
            Packet::PubAck(a) => P::PubAck(a.packet_id.get()),
            Packet::PubRec(a) => P::PubRec(a.packet_id.get()),
            Packet::PubRel(a) => P::PubRel(a.packet_id.get()),
            Packet::PubComp(a) => P::PubComp(a.packet_id.get()),
            Packet::SubAck(s) => P::SubAck(
                s.packet_id.get(),
                s.reason_codes.iter().map(|c| c.0).collect(),
            ),
            Packet::UnsubAck(s) => P::UnsubAck(s.packet_id.get()),
            Packet::PingResp => P::PingResp,
            Packet::Disconnect(d) => P::Disconnect(d.reason_code.0),
            other => panic!("unexpected {other:?}"),
        });
        rest = &rest[d.consumed..];
    }
    out
}

fn publishes(o: &Outbox) -> Vec<(String, Vec<u8>, u8)> {
    drain(o)
        .into_iter()
        .filter_map(|p| match p {
            P::Publish {
                topic,
                payload,
                qos,
                ..
            } => Some((topic, payload, qos)),
            _ => None,
        })
        .collect()
}

pub(super) fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

/// The test harness shared with the 5.0 tests (`broker_v5_tests.rs`): a core and its clock.
pub(super) struct T {
    pub(super) b: Broker,
    pub(super) now: u64,
}

impl T {
    pub(super) fn new() -> T {
        Self::with(Config::for_tests())
    }
    pub(super) fn with(config: Config) -> T {
        T {
            b: Broker::new(
                Config {
                    sys_interval: 0,
                    ..config
                },
                0,
            ),
            now: 0,
        }
    }
    pub(super) fn open(&mut self) -> (ConnId, Outbox) {
        self.b.connection_opened(peer(), 1883, self.now).unwrap()
    }
    pub(super) fn send(&mut self, conn: ConnId, p: Packet<'_>) {
        self.b.packet_received(conn, &p, 10, self.now);
    }
    fn connect_with(
        &mut self,
        id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<Will<'_>>,
    ) -> (ConnId, Outbox, Vec<P>) {
        let (c, o) = self.open();
        self.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V311,
                clean_start: clean,
                keep_alive,
                client_id: id,
                will,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        let out = drain(&o);
        (c, o, out)
    }
    fn connect(&mut self, id: &str, clean: bool) -> (ConnId, Outbox) {
        let (c, o, out) = self.connect_with(id, clean, 60, None);
        assert!(matches!(out[0], P::ConnAck(_, 0)), "{out:?}");
        (c, o)
    }
    fn subscribe(&mut self, conn: ConnId, o: &Outbox, filter: &str, qos: QoS) -> Vec<P> {
        let subs = [Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options: SubscriptionOptions::qos(qos),
        }];
        self.send(
            conn,
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                subscriptions: List::new(&subs),
            }),
        );
        drain(o)
    }
    fn publish(
        &mut self,
        conn: ConnId,
        topic: &str,
        payload: &[u8],
        qos_pid: QosPid,
        retain: bool,
    ) {
        self.send(
            conn,
            Packet::Publish(Publish {
                dup: false,
                qos_pid,
                retain,
                topic: TopicName::new(topic).unwrap(),
                properties: NO_PROPERTIES,
                payload,
            }),
        );
    }
}

#[test]
fn hibernating_connection_gives_up_its_outbox_and_is_woken_with_a_new_one() {
    let mut t = T::new();
    let (s, so) = t.connect("sub", true);
    t.subscribe(s, &so, "h/#", QoS::AtLeastOnce);
    let (p, po) = t.connect("pub", true);
    // Refused while something is queued; granted once the writer has taken it.
    t.publish(p, "h/1", b"one", QosPid::AtMostOnce, false);
    assert!(!t.b.hibernate(s), "a message is waiting");
    assert_eq!(publishes(&so), [("h/1".into(), b"one".to_vec(), 0)]);
    assert!(t.b.hibernate(s));
    assert!(!t.b.hibernate(s), "already hibernating");
    assert!(!t.b.hibernate(ConnId(999)), "unknown connection");
    assert!(take_woken(&mut t.b).is_empty());
    // A message for it: a new outbox with the message, reported once.
    t.publish(p, "h/2", b"two", QosPid::AtLeastOnce(pid(5)), false);
    assert_eq!(drain(&po), [P::PubAck(5)]);
    assert_eq!(so.queued_bytes(), 0, "the old outbox gets nothing");
    let woken = take_woken(&mut t.b);
    assert_eq!(woken.len(), 1);
    let (id, fresh) = &woken[0];
    assert_eq!(*id, s);
    assert!(matches!(
        &drain(fresh)[..],
        [P::Publish { topic, qos: 1, .. }] if topic == "h/2"
    ));
    assert!(take_woken(&mut t.b).is_empty());
    // Woken by its socket instead: the core hands out the outbox it queues on from then on.
    assert!(t.b.hibernate(s));
    let back = t.b.wake(s).unwrap();
    t.publish(p, "h/3", b"three", QosPid::AtMostOnce, false);
    assert_eq!(publishes(&back), [("h/3".into(), b"three".to_vec(), 0)]);
    assert!(
        take_woken(&mut t.b).is_empty(),
        "it was not hibernating any more"
    );
    assert!(t.b.wake(ConnId(999)).is_none());
}

#[test]
fn hibernating_connection_closed_by_the_core_is_woken_closed() {
    let mut t = T::new();
    let will = Will {
        topic: TopicName::new("w").unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: NO_PROPERTIES,
    };
    let (w, _wo, _) = t.connect_with("sleepy", true, 1, Some(will));
    let (s, so) = t.connect("watch", true);
    t.subscribe(s, &so, "w", QoS::AtMostOnce);
    assert!(t.b.hibernate(w));
    // Keep-alive 1 s: closed after 1.5 s without a packet, will published.
    t.now = 1600;
    t.b.handle_timeout(t.now);
    assert_eq!(publishes(&so), [("w".into(), b"gone".to_vec(), 0)]);
    let woken = take_woken(&mut t.b);
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].0, w);
    assert!(
        woken[0].1.is_closed(),
        "the shell flushes and shuts the socket"
    );
    // Takeover of a hibernating connection closes it the same way.
    let (old, _oo) = t.connect("twin", false);
    assert!(t.b.hibernate(old));
    let (_new, _no) = t.connect("twin", false);
    let woken = take_woken(&mut t.b);
    assert!(woken.iter().any(|(id, o)| *id == old && o.is_closed()));
}

#[test]
fn connect_and_session_present() {
    let mut t = T::new();
    let (c, _o, out) = t.connect_with("a", false, 60, None);
    assert_eq!(out, [P::ConnAck(false, 0)]);
    assert_eq!(t.b.connected_clients(), 1);
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    assert_eq!(t.b.connected_clients(), 0);
    assert_eq!(t.b.sessions().len(), 1, "persistent session kept");
    let (_, _, out) = t.connect_with("a", false, 60, None);
    assert_eq!(out, [P::ConnAck(true, 0)]);
    let (_, _, out) = t.connect_with("b", true, 60, None);
    assert_eq!(out, [P::ConnAck(false, 0)]);
}

#[test]
fn clean_session_discards_state() {
    let mut t = T::new();
    let (c, o) = t.connect("a", false);
    t.subscribe(c, &o, "x", QoS::AtLeastOnce);
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    let (c, o, out) = t.connect_with("a", true, 60, None);
    assert_eq!(out, [P::ConnAck(false, 0)], "clean connect: no session");
    assert!(t.b.subscriptions().is_empty());
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    assert!(
        t.b.sessions().is_empty(),
        "clean session ends with the connection"
    );
    assert!(o.is_closed());
}

#[test]
fn client_id_rules() {
    let mut t = T::new();
    let (_, o, out) = t.connect_with("", false, 60, None);
    assert_eq!(out, [P::ConnAck(false, 2)]);
    assert!(o.is_closed());
    let (_, o, out) = t.connect_with("", true, 60, None);
    assert_eq!(out, [P::ConnAck(false, 0)]);
    assert!(!o.is_closed());
    let (_, id) =
        t.b.sessions()
            .iter()
            .next()
            .map(|(i, s)| (*i, s.client_id.clone()))
            .unwrap();
    assert!(id.starts_with("auto-") && id.len() == 41, "{id}");
    // 3.1: at most 23 bytes.
    let (c, o) = t.open();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V31,
            clean_start: true,
            keep_alive: 0,
            client_id: "012345678901234567890123",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    );
    assert_eq!(drain(&o), [P::ConnAck(false, 2)]);
}

#[test]
fn keepalive_above_maximum_is_refused() {
    let mut t = T::with(Config {
        max_keepalive: 100,
        ..Config::for_tests()
    });
    let (_, o, out) = t.connect_with("a", true, 101, None);
    assert_eq!(out, [P::ConnAck(false, 2)]);
    assert!(o.is_closed());
}

#[test]
fn qos0_routing_clears_retain_and_skips_dollar_topics() {
    let mut t = T::new();
    let (s, so) = t.connect("sub", true);
    assert_eq!(
        t.subscribe(s, &so, "a/+", QoS::AtMostOnce),
        [P::SubAck(1, vec![0])]
    );
    t.subscribe(s, &so, "#", QoS::AtMostOnce);
    let (p, _po) = t.connect("pub", true);
    t.publish(p, "a/b", b"hi", QosPid::AtMostOnce, true);
    assert_eq!(
        drain(&so),
        [P::Publish {
            topic: "a/b".into(),
            payload: b"hi".to_vec(),
            qos: 0,
            pid: 0,
            dup: false,
            retain: false
        }],
        "delivered once, RETAIN cleared on live forwarding"
    );
    t.publish(p, "$SYS/fake", b"x", QosPid::AtMostOnce, true);
    t.subscribe(s, &so, "$SYS/#", QoS::AtMostOnce);
    assert!(publishes(&so).is_empty(), "$ publish dropped, not retained");
    assert!(t.b.retained().get("$SYS/fake").is_none());
}

#[test]
fn overlapping_subscriptions_deliver_once_at_highest_qos() {
    let mut t = T::new();
    let (s, so) = t.connect("sub", true);
    t.subscribe(s, &so, "a/#", QoS::AtMostOnce);
    t.subscribe(s, &so, "a/b", QoS::ExactlyOnce);
    let (p, _) = t.connect("pub", true);
    t.publish(p, "a/b", b"1", QosPid::AtLeastOnce(pid(5)), false);
    assert_eq!(
        publishes(&so),
        [("a/b".into(), b"1".to_vec(), 1)],
        "min(1, 2)"
    );
}

#[test]
fn qos1_and_qos2_flows_and_exactly_once() {
    let mut t = T::new();
    let (s, so) = t.connect("sub", true);
    t.subscribe(s, &so, "t", QoS::ExactlyOnce);
    let (p, po) = t.connect("pub", true);
    t.publish(p, "t", b"q1", QosPid::AtLeastOnce(pid(1)), false);
    assert_eq!(drain(&po), [P::PubAck(1)]);
    t.publish(p, "t", b"q2", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p, "t", b"q2", QosPid::ExactlyOnce(pid(2)), false);
    assert_eq!(drain(&po), [P::PubRec(2), P::PubRec(2)]);
    let got = drain(&so);
    assert_eq!(
        got.len(),
        2,
        "duplicate QoS 2 publish not delivered twice: {got:?}"
    );
    t.send(p, Packet::PubRel(Ack::new(pid(2))));
    assert_eq!(drain(&po), [P::PubComp(2)]);
    // After the release the id is free again: a new message with it is delivered.
    t.publish(p, "t", b"again", QosPid::ExactlyOnce(pid(2)), false);
    assert_eq!(publishes(&so).len(), 1);
    // Outgoing QoS 2 to the subscriber: PUBREC → PUBREL, PUBCOMP frees the slot.
    let sess = t.b.sessions().find("sub").unwrap();
    assert_eq!(
        t.b.sessions().get(sess).unwrap().delivery().inflight.len(),
        3
    );
    let P::Publish {
        pid: p2, qos: 2, ..
    } = got[1].clone()
    else {
        panic!("{got:?}")
    };
    t.send(s, Packet::PubRec(Ack::new(pid(p2))));
    assert_eq!(drain(&so), [P::PubRel(p2)]);
    t.send(s, Packet::PubComp(Ack::new(pid(p2))));
    assert_eq!(
        t.b.sessions().get(sess).unwrap().delivery().inflight.len(),
        2
    );
    let P::Publish {
        pid: p1, qos: 1, ..
    } = got[0].clone()
    else {
        panic!()
    };
    t.send(s, Packet::PubAck(Ack::new(pid(p1))));
    assert_eq!(
        t.b.sessions().get(sess).unwrap().delivery().inflight.len(),
        1
    );
}

#[test]
fn inflight_window_queues_the_rest() {
    let mut t = T::with(Config {
        max_inflight_messages: 2,
        ..Config::for_tests()
    });
    let (s, so) = t.connect("sub", true);
    t.subscribe(s, &so, "t", QoS::AtLeastOnce);
    let (p, _) = t.connect("pub", true);
    for i in 1..=5u8 {
        t.publish(p, "t", &[i], QosPid::AtLeastOnce(pid(u16::from(i))), false);
    }
    let first = drain(&so);
    assert_eq!(first.len(), 2, "window of 2: {first:?}");
    let P::Publish { pid: id, .. } = first[0] else {
        panic!()
    };
    t.send(s, Packet::PubAck(Ack::new(pid(id))));
    assert_eq!(publishes(&so), [("t".into(), vec![3], 1)]);
}

#[test]
fn offline_queue_and_redelivery_with_dup_and_pubrel() {
    let mut t = T::new();
    let (s, so) = t.connect("sub", false);
    t.subscribe(s, &so, "t/#", QoS::ExactlyOnce);
    let (p, _) = t.connect("pub", true);
    t.publish(p, "t/1", b"a", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "t/2", b"b", QosPid::ExactlyOnce(pid(2)), false);
    t.publish(p, "t/3", b"c", QosPid::ExactlyOnce(pid(3)), false);
    let sent = drain(&so);
    assert_eq!(sent.len(), 3);
    let P::Publish { pid: rec_pid, .. } = sent[2] else {
        panic!()
    };
    t.send(s, Packet::PubRec(Ack::new(pid(rec_pid))));
    assert_eq!(drain(&so), [P::PubRel(rec_pid)]);
    // The subscriber drops without acknowledging; meanwhile more arrives, QoS 0 is not queued.
    t.b.connection_lost(s, t.now);
    t.publish(p, "t/4", b"d", QosPid::AtLeastOnce(pid(4)), false);
    t.publish(p, "t/5", b"e", QosPid::AtMostOnce, false);
    let (_, so, out) = t.connect_with("sub", false, 60, None);
    assert_eq!(out[0], P::ConnAck(true, 0));
    let rest = &out[1..];
    assert!(
        matches!(&rest[0], P::Publish { topic, dup: true, qos: 1, .. } if topic == "t/1"),
        "{rest:?}"
    );
    assert!(matches!(&rest[1], P::Publish { topic, dup: true, qos: 2, .. } if topic == "t/2"));
    assert_eq!(rest[2], P::PubRel(rec_pid));
    assert!(matches!(&rest[3], P::Publish { topic, dup: false, qos: 1, .. } if topic == "t/4"));
    assert_eq!(rest.len(), 4, "QoS 0 not queued offline: {rest:?}");
    assert!(drain(&so).is_empty());
}

#[test]
fn retained_messages() {
    let mut t = T::new();
    let (p, _) = t.connect("pub", true);
    t.publish(p, "r/a", b"1", QosPid::AtLeastOnce(pid(1)), true);
    t.publish(p, "r/b", b"2", QosPid::AtMostOnce, true);
    t.publish(p, "r/b", b"3", QosPid::AtMostOnce, true);
    let (s, so) = t.connect("sub", true);
    let out = t.subscribe(s, &so, "r/+", QoS::AtLeastOnce);
    assert_eq!(out[0], P::SubAck(1, vec![1]));
    let mut got: Vec<_> = out[1..]
        .iter()
        .map(|p| match p {
            P::Publish {
                topic,
                payload,
                qos,
                retain,
                ..
            } => (topic.clone(), payload.clone(), *qos, *retain),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("r/a".into(), b"1".to_vec(), 1, true),
            ("r/b".into(), b"3".to_vec(), 0, true)
        ]
    );
    t.publish(p, "r/a", b"", QosPid::AtMostOnce, true);
    assert_eq!(t.b.retained().len(), 1, "empty payload deletes");
}

#[test]
fn wills() {
    let mut t = T::new();
    let (s, so) = t.connect("watcher", true);
    t.subscribe(s, &so, "will/#", QoS::AtMostOnce);
    let will = |topic| Will {
        topic: TopicName::new(topic).unwrap(),
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
        properties: NO_PROPERTIES,
    };
    let (c, ..) = t.connect_with("a", true, 60, Some(will("will/a")));
    t.b.connection_lost(c, t.now);
    assert_eq!(publishes(&so), [("will/a".into(), b"gone".to_vec(), 0)]);
    let (c, ..) = t.connect_with("b", true, 60, Some(will("will/b")));
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    assert!(publishes(&so).is_empty(), "no will after DISCONNECT");
    let (c, ..) = t.connect_with("c", true, 60, Some(will("will/c")));
    t.send(c, Packet::PingResp);
    assert_eq!(
        publishes(&so),
        [("will/c".into(), b"gone".to_vec(), 0)],
        "protocol error"
    );
    t.connect_with("d", true, 60, Some(will("will/d")));
    t.connect_with("d", true, 60, None);
    assert_eq!(
        publishes(&so),
        [("will/d".into(), b"gone".to_vec(), 0)],
        "takeover"
    );
    // Keep-alive: 2 s → closed after 3 s of silence, not before.
    let (c, co, _) = t.connect_with("e", true, 2, Some(will("will/e")));
    t.now = 2900;
    t.b.handle_timeout(t.now);
    assert!(!co.is_closed());
    t.send(s, Packet::PingReq);
    t.now = 3100;
    t.b.handle_timeout(t.now);
    assert!(co.is_closed());
    assert_eq!(publishes(&so), [("will/e".into(), b"gone".to_vec(), 0)]);
    let _ = c;
}

#[test]
fn takeover_closes_old_connection_and_keeps_session() {
    let mut t = T::new();
    let (c1, o1) = t.connect("x", false);
    t.subscribe(c1, &o1, "t", QoS::AtLeastOnce);
    let (_, o2, out) = t.connect_with("x", false, 60, None);
    assert!(o1.is_closed());
    assert!(!o2.is_closed());
    assert_eq!(out, [P::ConnAck(true, 0)]);
    assert_eq!(t.b.connected_clients(), 1);
    // The old connection's late EOF changes nothing.
    t.b.connection_lost(c1, t.now);
    assert_eq!(t.b.connected_clients(), 1);
    assert_eq!(t.b.subscriptions().len(), 1);
}

#[test]
fn protocol_violations_close_the_connection() {
    let mut t = T::new();
    // Not CONNECT first.
    let (c, o) = t.open();
    t.send(c, Packet::PingReq);
    assert!(o.is_closed());
    // Second CONNECT.
    let (c, o) = t.connect("a", true);
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 0,
            client_id: "a",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    );
    assert!(o.is_closed());
    // Server-only packets.
    for p in [
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: NO_PROPERTIES,
        }),
        Packet::PingResp,
        Packet::SubAck(SubAck {
            packet_id: pid(1),
            properties: NO_PROPERTIES,
            reason_codes: List::new(&[ReasonCode::SUCCESS]),
        }),
    ] {
        let (c, o) = t.connect("b", true);
        t.send(c, p);
        assert!(o.is_closed(), "{p:?}");
    }
    // Decode errors.
    let (c, o) = t.connect("c", true);
    t.b.decode_failed(c, DecodeError::InvalidUtf8, t.now);
    assert!(o.is_closed());
    assert_eq!(t.b.connected_clients(), 0);
    let (c, o) = t.open();
    t.b.decode_failed(c, DecodeError::UnsupportedProtocolLevel(6), t.now);
    assert_eq!(drain(&o), [P::ConnAck(false, 1)]);
    assert!(o.is_closed());
}

#[test]
fn connect_timeout() {
    let mut t = T::new();
    let (_, o) = t.open();
    t.now = 9_999;
    t.b.handle_timeout(t.now);
    assert!(!o.is_closed());
    t.now = 10_000;
    t.b.handle_timeout(t.now);
    assert!(o.is_closed());
}

#[test]
fn queue_limit_drop_policy() {
    let mut t = T::with(Config {
        max_queued_messages: 2,
        queue_qos0_messages: true,
        ..Config::for_tests()
    });
    let (s, so) = t.connect("sub", false);
    t.subscribe(s, &so, "t", QoS::AtLeastOnce);
    t.b.connection_lost(s, t.now);
    let (p, _) = t.connect("pub", true);
    t.publish(p, "t", b"q0", QosPid::AtMostOnce, false);
    t.publish(p, "t", b"a", QosPid::AtLeastOnce(pid(1)), false);
    t.publish(p, "t", b"b", QosPid::AtLeastOnce(pid(2)), false); // evicts q0
    t.publish(p, "t", b"c", QosPid::AtLeastOnce(pid(3)), false); // dropped
    t.publish(p, "t", b"z", QosPid::AtMostOnce, false); // dropped
    assert_eq!(t.b.stats().publish_dropped, 3);
    let (_, _, out) = t.connect_with("sub", false, 60, None);
    let payloads: Vec<_> = out
        .iter()
        .filter_map(|p| match p {
            P::Publish { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn slow_consumer_holds_publishers_back_then_drops_qos0_then_is_closed() {
    let mut t = T::with(Config {
        max_outgoing_bytes: 100,
        ..Config::for_tests()
    });
    let (s, so) = t.connect("slow", true);
    t.subscribe(s, &so, "t", QoS::AtMostOnce);
    let (p, _) = t.connect("pub", true);
    drop(take_congested(&mut t.b));
    // 45-byte PUBLISHes: three fit under the limit, two more up to twice it (the publisher
    // is told to wait), the rest are dropped.
    for _ in 0..10 {
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    }
    let congested = take_congested(&mut t.b);
    assert!(
        congested.len() == 1 && congested[0].same(&so),
        "{congested:?}"
    );
    assert!(so.is_congested(100));
    assert_eq!(t.b.stats().publish_dropped, 5, "{:?}", t.b.stats());
    assert_eq!(so.queued_bytes(), 225);
    assert_eq!(publishes(&so).len(), 5);
    assert!(!so.is_congested(100), "drained");
    // A connection a publisher gave up waiting for (stalled) holds no one back, and loses
    // what goes past the limit, until it drains.
    for _ in 0..3 {
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    }
    so.mark_stalled();
    t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    assert!(take_congested(&mut t.b).is_empty());
    assert_eq!(t.b.stats().publish_dropped, 6);
    assert_eq!(publishes(&so).len(), 3);
    // A first stall ends after one drain (see `Outbox::mark_stalled`): it paces again.
    assert!(!so.is_stalled());
    assert!(!so.is_closed());
    // Acknowledgements are never dropped; past 8× the limit the client is closed.
    for i in 1..=300u16 {
        t.publish(s, "x", b"", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(so.is_closed());
}

#[test]
fn without_backpressure_a_congested_subscriber_is_dropped_to_at_once() {
    let mut t = T::with(Config {
        max_outgoing_bytes: 100,
        max_inflight_messages: 1,
        max_queued_messages: 2,
        max_publisher_hold_ms: 0,
        ..Config::for_tests()
    });
    let (s, so) = t.connect("slow", true);
    t.subscribe(s, &so, "t", QoS::AtLeastOnce);
    let (p, _) = t.connect("pub", true);
    drop(take_congested(&mut t.b));
    for _ in 0..10 {
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
    }
    for i in 1..=5u16 {
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(take_congested(&mut t.b).is_empty(), "no one held back");
    // QoS 0: three under the limit; QoS 1: one in flight, two queued.
    assert_eq!(t.b.stats().publish_dropped, 7 + 2, "{:?}", t.b.stats());
}

#[test]
fn a_long_session_queue_holds_publishers_back_until_it_drains() {
    let mut t = T::with(Config {
        max_inflight_messages: 2,
        max_queued_messages: 8,
        ..Config::for_tests()
    });
    let (s, so) = t.connect("sub", false);
    t.subscribe(s, &so, "t", QoS::AtLeastOnce);
    let (p, _) = t.connect("pub", true);
    drop(take_congested(&mut t.b));
    // 2 in flight, then the queue: held back once it holds half of its 8.
    for i in 1..=5u16 {
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(take_congested(&mut t.b).is_empty(), "3 queued");
    t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(6)), false);
    let congested = take_congested(&mut t.b);
    assert!(
        congested.len() == 1 && congested[0].same(&so),
        "{congested:?}"
    );
    assert!(so.is_congested(usize::MAX));
    // Acknowledged until 2 (a quarter) are queued: the publisher goes on.
    let mut sent = drain(&so);
    while so.is_congested(usize::MAX) {
        let Some(P::Publish { pid: id, .. }) = sent.pop() else {
            panic!("no more in flight");
        };
        t.send(s, Packet::PubAck(Ack::new(pid(id))));
        sent.extend(drain(&so));
    }
    let sess = t.b.sessions().find("sub").unwrap();
    assert_eq!(t.b.sessions().get(sess).unwrap().delivery().queued.len(), 2);
    assert_eq!(t.b.stats().publish_dropped, 0);
    // An offline client holds no one back: its queue is simply bounded.
    t.b.connection_lost(s, t.now);
    for i in 7..=20u16 {
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert!(take_congested(&mut t.b).is_empty());
    // 6 more fill its queue of 8; the other 8 are dropped.
    assert_eq!(t.b.stats().publish_dropped, 8, "{:?}", t.b.stats());
}

#[test]
fn sys_topics_are_published_retained() {
    let mut t = T::with(Config::for_tests());
    t.b.config.sys_interval = 10;
    let (s, so) = t.connect("sub", true);
    t.subscribe(s, &so, "$SYS/broker/clients/connected", QoS::AtMostOnce);
    t.b.handle_timeout(0);
    assert_eq!(
        publishes(&so),
        [("$SYS/broker/clients/connected".into(), b"1".to_vec(), 0)]
    );
    t.b.handle_timeout(5_000);
    assert!(publishes(&so).is_empty(), "interval not reached");
    t.b.handle_timeout(10_000);
    assert_eq!(publishes(&so).len(), 1);
    assert_eq!(
        t.b.retained().get("$SYS/broker/uptime").unwrap().payload(),
        b"10 seconds"
    );
    assert!(
        t.b.retained()
            .get("$SYS/broker/retained messages/count")
            .is_some()
    );
}

/// Captures log lines (the logger is process-wide; tests filter by their own client ids).
struct Capture(std::sync::Mutex<Vec<String>>);
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}
static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

fn logged(needle: &str) -> Vec<String> {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

#[test]
fn mosquitto_style_log_lines() {
    logged("");
    let mut t = T::with(Config {
        max_queued_messages: 1,
        ..Config::for_tests()
    });
    let (c, _) = t.connect("log-sensor-1", true);
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    let (_, _, _) = t.connect_with("log-sleepy", true, 1, None);
    t.now = 2000;
    t.b.handle_timeout(t.now);
    let (c, _) = t.connect("log-malformed", true);
    t.b.decode_failed(c, DecodeError::InvalidUtf8, t.now);
    let (c, _) = t.connect("log-violator", true);
    t.send(c, Packet::PingResp);
    let (c, _) = t.connect("log-big", true);
    t.b.decode_failed(c, DecodeError::PacketTooLarge { size: 10, max: 5 }, t.now);
    let (c, o) = t.connect("log-dropper", false);
    t.subscribe(c, &o, "t", QoS::AtLeastOnce);
    t.b.connection_lost(c, t.now);
    let (p, _) = t.connect("log-pub", true);
    for i in 1..=3 {
        t.publish(p, "t", b"x", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert_eq!(
        logged("log-sensor-1"),
        [
            "New client connected from 127.0.0.1:40000 as log-sensor-1 (p2, c1, k60).",
            "Client log-sensor-1 disconnected."
        ]
    );
    assert!(logged("New connection from 127.0.0.1:40000 on port 1883.").len() >= 7);
    assert_eq!(
        logged("Client log-sleepy has"),
        ["Client log-sleepy has exceeded timeout, disconnecting."]
    );
    assert_eq!(
        logged("Client log-malformed"),
        ["Client log-malformed disconnected due to malformed packet."]
    );
    assert_eq!(
        logged("Client log-violator d"),
        ["Client log-violator disconnected due to protocol error."]
    );
    assert_eq!(
        logged("Client log-big"),
        ["Client log-big disconnected due to oversize packet."]
    );
    assert_eq!(
        logged("dropped for client log-dropper"),
        ["Outgoing messages are being dropped for client log-dropper."],
        "logged once per episode"
    );
    assert_eq!(
        logged("Client log-dropper closed"),
        ["Client log-dropper closed its connection."]
    );
}

#[test]
fn exactly_once_survives_reconnect() {
    let mut t = T::new();
    let (s, so) = t.connect("sub", true);
    t.subscribe(s, &so, "x", QoS::ExactlyOnce);
    let (p, po) = t.connect("pub", false);
    t.publish(p, "x", b"1", QosPid::ExactlyOnce(pid(5)), false);
    assert_eq!(drain(&po), [P::PubRec(5)]);
    t.b.connection_lost(p, t.now);
    // The publisher never saw PUBREC, so it resends with DUP on its resumed session.
    let (p, po, _) = t.connect_with("pub", false, 60, None);
    t.publish(p, "x", b"1", QosPid::ExactlyOnce(pid(5)), false);
    assert_eq!(drain(&po), [P::PubRec(5)]);
    t.send(p, Packet::PubRel(Ack::new(pid(5))));
    assert_eq!(drain(&po), [P::PubComp(5)]);
    assert_eq!(
        publishes(&so).len(),
        1,
        "delivered once across the reconnect"
    );
}

#[test]
fn v5_basics() {
    let mut t = T::new();
    let (c, o) = t.open();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 30,
            client_id: "",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    );
    let mut buf = Vec::new();
    o.drain_into(&mut buf);
    let opts = DecodeOptions::new(ProtocolVersion::V5);
    let Ok(Status::Complete(d)) = decode(&buf, opts) else {
        panic!("{buf:?}")
    };
    let Packet::ConnAck(ack) = d.packet else {
        panic!()
    };
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert!(
        ack.properties
            .assigned_client_identifier
            .is_some_and(|id| id.starts_with("auto-"))
    );
    // A protocol violation gets DISCONNECT with a reason before the close.
    t.send(c, Packet::PingResp);
    buf.clear();
    o.drain_into(&mut buf);
    let Ok(Status::Complete(d)) = decode(&buf, opts) else {
        panic!("{buf:?}")
    };
    let Packet::Disconnect(d) = d.packet else {
        panic!("{:?}", d.packet)
    };
    assert_eq!(d.reason_code, ReasonCode::PROTOCOL_ERROR);
    assert_eq!(d.properties.reason_string, Some("protocol error"));
    assert!(o.is_closed());
}

#[test]
fn partial_packets_count_as_keep_alive_activity() {
    let mut t = T::new();
    let (c, o, _) = t.connect_with("slow-upload", true, 1, None);
    t.now = 1400;
    t.b.bytes_arrived(c, t.now);
    t.now = 2000;
    t.b.handle_timeout(t.now);
    assert!(!o.is_closed());
    t.now = 3000;
    t.b.handle_timeout(t.now);
    assert!(o.is_closed());
}

#[test]
fn max_connections() {
    let mut t = T::with(Config {
        max_connections: 1,
        ..Config::for_tests()
    });
    let (c, _) = t.open();
    assert!(t.b.connection_opened(peer(), 1883, 0).is_none());
    t.b.connection_lost(c, t.now);
    assert!(t.b.connection_opened(peer(), 1883, 0).is_some());
}

#[test]
fn unsubscribe_and_refused_filters() {
    let mut t = T::with(Config {
        max_subscriptions_per_client: 1,
        ..Config::for_tests()
    });
    let (s, so) = t.connect("sub", true);
    assert_eq!(
        t.subscribe(s, &so, "a", QoS::ExactlyOnce),
        [P::SubAck(1, vec![2])]
    );
    assert_eq!(
        t.subscribe(s, &so, "a", QoS::AtMostOnce),
        [P::SubAck(1, vec![0])],
        "replace"
    );
    assert_eq!(
        t.subscribe(s, &so, "b", QoS::AtMostOnce),
        [P::SubAck(1, vec![0x80])]
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
    assert_eq!(drain(&so), [P::UnsubAck(9)]);
    assert!(t.b.subscriptions().is_empty());
    assert_eq!(
        t.subscribe(s, &so, "$share/g/a", QoS::AtMostOnce),
        [P::SubAck(1, vec![0x80])]
    );
    t.send(s, Packet::PingReq);
    assert_eq!(drain(&so), [P::PingResp]);
}

#[test]
fn per_connection_state_stays_small() {
    let conn = std::mem::size_of::<super::conn::Connection>();
    let session = std::mem::size_of::<super::session::Session>();
    eprintln!("Connection {conn} B, Session {session} B");
    assert!(
        conn + session < 512,
        "Connection {conn} B + Session {session} B"
    );
}
