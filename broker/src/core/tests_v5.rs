//! Unit tests of the core's MQTT 5.0 behaviour (driven through `Broker` events, output decoded
//! as 5.0). Named after the behaviour; `broker/MQTT5.md` maps spec sections to them.

use super::tests::{T, pid};
use super::*;
use crate::core::HmacChallenge;
use std::num::{NonZeroU16, NonZeroU32};
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;
use wren_codec::{
    DecodeOptions, Status, Subscription, SubscriptionOptions, TopicFilter, TopicName, Will, decode,
};

/// An owned summary of a packet the broker sent to a 5.0 client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Q {
    ConnAck { present: bool, code: u8 },
    Publish(Pb),
    PubAck(u16, u8),
    PubRec(u16, u8),
    PubRel(u16, u8),
    PubComp(u16, u8),
    SubAck(Vec<u8>),
    UnsubAck(Vec<u8>),
    PingResp,
    Disconnect(u8),
    Auth(u8, Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Pb {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    pid: u16,
    retain: bool,
    sub_ids: Vec<u32>,
    expiry: Option<u32>,
    alias: Option<u16>,
    user: Vec<(String, String)>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation: Option<Vec<u8>>,
    utf8: bool,
}

/// The CONNACK properties of the last CONNACK decoded (kept apart: they are many).
#[derive(Debug, Default, Clone)]
struct AckProps {
    assigned: Option<String>,
    server_keep_alive: Option<u16>,
    receive_maximum: Option<u16>,
    maximum_qos: Option<u8>,
    topic_alias_maximum: Option<u16>,
    maximum_packet_size: Option<u32>,
    response_information: Option<String>,
    retain_available: Option<bool>,
    shared_available: Option<bool>,
}

fn drain_v(o: &Outbox, version: ProtocolVersion) -> (Vec<Q>, AckProps) {
    let mut buf = Vec::new();
    o.drain_into(&mut buf);
    let mut rest = &buf[..];
    let mut out = Vec::new();
    let mut props = AckProps::default();
    while !rest.is_empty() {
        let Ok(Status::Complete(d)) = decode(rest, DecodeOptions::new(version)) else {
            panic!("undecodable output {rest:?}")
        };
        out.push(match d.packet {
            Packet::ConnAck(c) => {
                let p = c.properties;
                props = AckProps {
                    assigned: p.assigned_client_identifier.map(Into::into),
                    server_keep_alive: p.server_keep_alive,
                    receive_maximum: p.receive_maximum.map(|r| r.get()),
                    maximum_qos: p.maximum_qos.map(|q| q.bits()),
                    topic_alias_maximum: p.topic_alias_maximum,
                    maximum_packet_size: p.maximum_packet_size.map(|m| m.get()),
                    response_information: p.response_information.map(Into::into),
                    retain_available: p.retain_available,
                    shared_available: p.shared_subscription_available,
                };
                Q::ConnAck {
                    present: c.session_present,
                    code: c.code.0,
                }
            }
            Packet::Publish(p) => Q::Publish(Pb {
                topic: p.topic.as_str().into(),
                payload: p.payload.to_vec(),
                qos: p.qos_pid.qos().bits(),
                pid: p.qos_pid.packet_id().map_or(0, |p| p.get()),
                retain: p.retain,
                sub_ids: p.properties.subscription_identifiers.iter().collect(),
                expiry: p.properties.message_expiry_interval,
                alias: p.properties.topic_alias.map(|a| a.get()),
                user: p
                    .properties
                    .user_properties
                    .iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
                content_type: p.properties.content_type.map(Into::into),
                response_topic: p.properties.response_topic.map(|t| t.as_str().into()),
                correlation: p.properties.correlation_data.map(Into::into),
                utf8: p.properties.payload_format_indicator == Some(PayloadFormat::Utf8),
            }),
            Packet::PubAck(a) => Q::PubAck(a.packet_id.get(), a.reason_code.0),
            Packet::PubRec(a) => Q::PubRec(a.packet_id.get(), a.reason_code.0),
            Packet::PubRel(a) => Q::PubRel(a.packet_id.get(), a.reason_code.0),
            Packet::PubComp(a) => Q::PubComp(a.packet_id.get(), a.reason_code.0),
            Packet::SubAck(s) => Q::SubAck(s.reason_codes.iter().map(|c| c.0).collect()),
            Packet::UnsubAck(s) => Q::UnsubAck(s.reason_codes.iter().map(|c| c.0).collect()),
            Packet::PingResp => Q::PingResp,
            Packet::Disconnect(d) => Q::Disconnect(d.reason_code.0),
            Packet::Auth(a) => Q::Auth(
                a.reason_code.0,
                a.properties
                    .authentication_data
                    .unwrap_or_default()
                    .to_vec(),
            ),
            other => panic!("unexpected {other:?}"),
        });
        rest = &rest[d.consumed..];
    }
    (out, props)
}

fn drain5(o: &Outbox) -> Vec<Q> {
    drain_v(o, ProtocolVersion::V5).0
}

fn pubs(o: &Outbox) -> Vec<Pb> {
    drain5(o)
        .into_iter()
        .filter_map(|q| match q {
            Q::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

impl T {
    fn tick(&mut self, now: u64) {
        self.now = now;
        self.b.handle_timeout(now);
    }
    fn connect_full(
        &mut self,
        id: &str,
        clean: bool,
        properties: Properties<'_>,
        will: Option<Will<'_>>,
    ) -> (ConnId, Outbox, Vec<Q>, AckProps) {
        let (c, o) = self.open();
        self.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V5,
                clean_start: clean,
                keep_alive: 60,
                client_id: id,
                will,
                username: None,
                password: None,
                properties,
            }),
        );
        let (out, props) = drain_v(&o, ProtocolVersion::V5);
        (c, o, out, props)
    }
    /// A 5.0 client with a clean start and no properties, CONNACK checked.
    fn connect5(&mut self, id: &str) -> (ConnId, Outbox) {
        let (c, o, out, _) = self.connect_full(id, true, NO_PROPERTIES, None);
        assert!(matches!(out[0], Q::ConnAck { code: 0, .. }), "{out:?}");
        (c, o)
    }
    fn connect_v3(&mut self, id: &str) -> (ConnId, Outbox) {
        let (c, o) = self.open();
        self.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V311,
                clean_start: true,
                keep_alive: 60,
                client_id: id,
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        drain_v(&o, ProtocolVersion::V311);
        (c, o)
    }
    fn sub_opts(
        &mut self,
        conn: ConnId,
        o: &Outbox,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Vec<Q> {
        let subs = [Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options,
        }];
        let ids: Vec<u32> = id.into_iter().collect();
        self.send(
            conn,
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: Properties {
                    subscription_identifiers: List::new(&ids),
                    ..NO_PROPERTIES
                },
                subscriptions: List::new(&subs),
            }),
        );
        drain5(o)
    }
    fn sub(&mut self, conn: ConnId, o: &Outbox, filter: &str, qos: QoS) -> Vec<Q> {
        self.sub_opts(conn, o, filter, SubscriptionOptions::qos(qos), None)
    }
    fn publish_p(
        &mut self,
        conn: ConnId,
        topic: &str,
        payload: &[u8],
        qos_pid: QosPid,
        retain: bool,
        properties: Properties<'_>,
    ) {
        self.send(
            conn,
            Packet::Publish(Publish {
                dup: false,
                qos_pid,
                retain,
                topic: TopicName::new(topic).unwrap(),
                properties,
                payload,
            }),
        );
    }
    fn publish5(&mut self, conn: ConnId, topic: &str, payload: &[u8], qos_pid: QosPid) {
        self.publish_p(conn, topic, payload, qos_pid, false, NO_PROPERTIES);
    }
}

#[test]
fn connack_capabilities_server_keep_alive_and_response_information() {
    let mut t = T::with(Config {
        max_keepalive: 100,
        maximum_qos: 1,
        retain_available: false,
        shared_subscription_available: false,
        response_information: "resp/".into(),
        max_packet_size: 5000,
        receive_maximum: 7,
        topic_alias_maximum: 3,
        ..Config::for_tests()
    });
    let (c, o) = t.open();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 200,
            client_id: "",
            will: None,
            username: None,
            password: None,
            properties: Properties {
                request_response_information: Some(true),
                ..NO_PROPERTIES
            },
        }),
    );
    let (out, p) = drain_v(&o, ProtocolVersion::V5);
    assert_eq!(
        out,
        [Q::ConnAck {
            present: false,
            code: 0
        }],
        "5.0: keep-alive above the maximum is not refused"
    );
    assert!(p.assigned.unwrap().starts_with("auto-"));
    assert_eq!(p.server_keep_alive, Some(100));
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.maximum_qos, Some(1));
    assert_eq!(p.topic_alias_maximum, Some(3));
    assert_eq!(p.maximum_packet_size, Some(5000));
    assert_eq!(p.response_information.as_deref(), Some("resp/"));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.shared_available, Some(false));
    // Not requested: no Response Information.
    let (_, _, _, p) = t.connect_full("x", true, NO_PROPERTIES, None);
    assert_eq!(p.response_information, None);
    // QoS 2 publish above Maximum QoS 1 → DISCONNECT 0x9B; retain → 0x9A.
    let (c, o) = t.connect5("q");
    t.publish5(c, "t", b"x", QosPid::ExactlyOnce(pid(1)));
    assert_eq!(drain5(&o), [Q::Disconnect(0x9B)]);
    let (c, o) = t.connect5("r");
    t.publish_p(c, "t", b"x", QosPid::AtMostOnce, true, NO_PROPERTIES);
    assert_eq!(drain5(&o), [Q::Disconnect(0x9A)]);
    // SUBACK grants at most Maximum QoS; shared refused with 0x9E.
    let (c, o) = t.connect5("s");
    assert_eq!(t.sub(c, &o, "a", QoS::ExactlyOnce), [Q::SubAck(vec![1])]);
    assert_eq!(
        t.sub(c, &o, "$share/g/a", QoS::AtMostOnce),
        [Q::SubAck(vec![0x9E])]
    );
}

#[test]
fn puback_pubrec_reason_codes_no_subscribers_and_payload_format() {
    let mut t = T::new();
    let (p, po) = t.connect5("pub");
    t.publish5(p, "nobody", b"x", QosPid::AtLeastOnce(pid(1)));
    t.publish5(p, "nobody", b"x", QosPid::ExactlyOnce(pid(2)));
    assert_eq!(drain5(&po), [Q::PubAck(1, 0x10), Q::PubRec(2, 0x10)]);
    let (s, so) = t.connect5("sub");
    t.sub(s, &so, "t", QoS::AtLeastOnce);
    t.publish5(p, "t", b"x", QosPid::AtLeastOnce(pid(3)));
    assert_eq!(drain5(&po), [Q::PubAck(3, 0)]);
    // Payload Format Indicator 1 with bytes that are not UTF-8.
    let utf8 = Properties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        ..NO_PROPERTIES
    };
    pubs(&so);
    t.publish_p(
        p,
        "t",
        b"\xff\xfe",
        QosPid::AtLeastOnce(pid(4)),
        false,
        utf8,
    );
    t.publish_p(
        p,
        "t",
        b"\xff\xfe",
        QosPid::ExactlyOnce(pid(5)),
        false,
        utf8,
    );
    assert_eq!(drain5(&po), [Q::PubAck(4, 0x99), Q::PubRec(5, 0x99)]);
    assert!(pubs(&so).is_empty(), "not forwarded");
    t.publish_p(p, "t", "ok ✓".as_bytes(), QosPid::AtMostOnce, false, utf8);
    let got = pubs(&so);
    assert!(got[0].utf8, "indicator forwarded");
    t.publish_p(p, "t", b"\xff", QosPid::AtMostOnce, false, utf8);
    assert_eq!(drain5(&po), [Q::Disconnect(0x99)]);
    // PUBREL for an unknown id: PUBCOMP 0x92.
    let (p, po) = t.connect5("pub2");
    t.send(p, Packet::PubRel(Ack::new(pid(77))));
    assert_eq!(drain5(&po), [Q::PubComp(77, 0x92)]);
}

#[test]
fn suback_and_unsuback_reason_codes() {
    let mut t = T::with(Config {
        wildcard_subscription_available: false,
        subscription_identifier_available: false,
        max_subscriptions_per_client: 2,
        ..Config::for_tests()
    });
    let (c, o) = t.connect5("c");
    assert_eq!(
        t.sub(c, &o, "a/+", QoS::AtMostOnce),
        [Q::SubAck(vec![0xA2])]
    );
    assert_eq!(
        t.sub_opts(
            c,
            &o,
            "a",
            SubscriptionOptions::qos(QoS::AtMostOnce),
            Some(5)
        ),
        [Q::SubAck(vec![0xA1])]
    );
    assert_eq!(t.sub(c, &o, "a", QoS::AtLeastOnce), [Q::SubAck(vec![1])]);
    assert_eq!(t.sub(c, &o, "b", QoS::AtLeastOnce), [Q::SubAck(vec![1])]);
    assert_eq!(t.sub(c, &o, "c", QoS::AtLeastOnce), [Q::SubAck(vec![0x97])]);
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
    assert_eq!(drain5(&o), [Q::UnsubAck(vec![0, 0x11])]);
    // No Local on a shared subscription is a protocol error.
    let mut opts = SubscriptionOptions::qos(QoS::AtMostOnce);
    opts.no_local = true;
    let mut t = T::new();
    let (c, o) = t.connect5("c");
    assert_eq!(
        t.sub_opts(c, &o, "$share/g/x", opts, None),
        [Q::Disconnect(0x82)]
    );
}

#[test]
fn properties_forwarded_in_order_between_versions() {
    let mut t = T::new();
    let (s5, so5) = t.connect5("s5");
    t.sub(s5, &so5, "t", QoS::AtLeastOnce);
    let (s3, so3) = t.connect_v3("s3");
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
    drain_v(&so3, ProtocolVersion::V311);
    let user = [("b", "2"), ("a", "1"), ("b", "3")];
    let props = Properties {
        content_type: Some("text/plain"),
        response_topic: Some(TopicName::new("reply/here").unwrap()),
        correlation_data: Some(b"\x01\x02"),
        user_properties: List::new(&user),
        ..NO_PROPERTIES
    };
    let (p, _) = t.connect5("p");
    t.publish_p(p, "t", b"hi", QosPid::AtLeastOnce(pid(1)), false, props);
    let got = pubs(&so5);
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(g.content_type.as_deref(), Some("text/plain"));
    assert_eq!(g.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(g.correlation.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(
        g.user,
        [("b", "2"), ("a", "1"), ("b", "3")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // The 3.1.1 subscriber gets the message without properties.
    let (out, _) = drain_v(&so3, ProtocolVersion::V311);
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
    assert_eq!(pubs(&so5)[0].payload, b"from3");
}

#[test]
fn subscription_options_and_identifiers() {
    let mut t = T::new();
    let (c, o) = t.connect5("c");
    let mut nl = SubscriptionOptions::qos(QoS::AtLeastOnce);
    nl.no_local = true;
    t.sub_opts(c, &o, "own/#", nl, Some(7));
    t.sub_opts(
        c,
        &o,
        "own/+",
        SubscriptionOptions::qos(QoS::AtMostOnce),
        Some(9),
    );
    let (p, _) = t.connect5("p");
    t.publish5(p, "own/a", b"1", QosPid::AtLeastOnce(pid(1)));
    let got = pubs(&o);
    assert_eq!(got.len(), 1, "overlapping subscriptions: one delivery");
    let mut ids = got[0].sub_ids.clone();
    ids.sort();
    assert_eq!(ids, [7, 9], "one identifier per matching subscription");
    assert_eq!(got[0].qos, 1);
    // No Local: own publish skips the no-local subscription, not the other one.
    t.publish5(c, "own/a", b"2", QosPid::AtMostOnce);
    let got = pubs(&o);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sub_ids, [9]);
    // Retain As Published.
    let (s, so) = t.connect5("s");
    let mut rap = SubscriptionOptions::qos(QoS::AtMostOnce);
    rap.retain_as_published = true;
    t.sub_opts(s, &so, "r/rap", rap, None);
    t.sub(s, &so, "r/plain", QoS::AtMostOnce);
    t.publish_p(p, "r/rap", b"x", QosPid::AtMostOnce, true, NO_PROPERTIES);
    t.publish_p(p, "r/plain", b"x", QosPid::AtMostOnce, true, NO_PROPERTIES);
    let got = pubs(&so);
    assert!(got[0].retain && !got[1].retain, "{got:?}");
    // Retain Handling: 0 sends, 1 sends only for a new subscription, 2 never.
    let mut rh = SubscriptionOptions::qos(QoS::AtMostOnce);
    rh.retain_handling = RetainHandling::SendIfNew;
    let (r, ro) = t.connect5("r");
    assert_eq!(t.sub_opts(r, &ro, "r/rap", rh, None).len(), 2);
    assert_eq!(t.sub_opts(r, &ro, "r/rap", rh, None).len(), 1, "exists");
    rh.retain_handling = RetainHandling::DoNotSend;
    assert_eq!(t.sub_opts(r, &ro, "r/plain", rh, None).len(), 1);
    rh.retain_handling = RetainHandling::SendAtSubscribe;
    let out = t.sub_opts(r, &ro, "r/plain", rh, Some(4));
    let Q::Publish(p) = &out[1] else {
        panic!("{out:?}")
    };
    assert!(p.retain, "retained on subscribe always carry RETAIN");
    assert_eq!(p.sub_ids, [4]);
}

#[test]
fn topic_alias_inbound() {
    let mut t = T::with(Config {
        topic_alias_maximum: 2,
        ..Config::for_tests()
    });
    let (s, so) = t.connect5("s");
    t.sub(s, &so, "long/topic/name", QoS::AtMostOnce);
    let (p, po) = t.connect5("p");
    let alias = |a| Properties {
        topic_alias: NonZeroU16::new(a),
        ..NO_PROPERTIES
    };
    t.publish_p(
        p,
        "long/topic/name",
        b"1",
        QosPid::AtMostOnce,
        false,
        alias(2),
    );
    t.send(
        p,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::alias_only(),
            properties: alias(2),
            payload: b"2",
        }),
    );
    let got = pubs(&so);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].topic, "long/topic/name");
    assert_eq!(got[1].payload, b"2");
    // Unknown alias with an empty topic → 0x94.
    t.send(
        p,
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::alias_only(),
            properties: alias(1),
            payload: b"3",
        }),
    );
    assert_eq!(drain5(&po), [Q::Disconnect(0x94)]);
    assert!(po.is_closed());
    // Above the Topic Alias Maximum → 0x94.
    let (p, po) = t.connect5("p2");
    t.publish_p(p, "a", b"1", QosPid::AtMostOnce, false, alias(3));
    assert_eq!(drain5(&po), [Q::Disconnect(0x94)]);
}

#[test]
fn topic_alias_outbound() {
    let mut t = T::with(Config {
        outbound_topic_aliases: 5,
        ..Config::for_tests()
    });
    let (s, so, _, _) = t.connect_full(
        "s",
        true,
        Properties {
            topic_alias_maximum: Some(1),
            ..NO_PROPERTIES
        },
        None,
    );
    t.sub(s, &so, "#", QoS::AtMostOnce);
    let (p, _) = t.connect5("p");
    for topic in ["a/b", "a/b", "c"] {
        t.publish5(p, topic, b"x", QosPid::AtMostOnce);
    }
    let got = pubs(&so);
    let seen: Vec<_> = got.iter().map(|p| (p.topic.as_str(), p.alias)).collect();
    assert_eq!(
        seen,
        [("a/b", Some(1)), ("", Some(1)), ("c", None)],
        "client's maximum of 1 respected"
    );
}

#[test]
fn receive_maximum_both_directions() {
    let mut t = T::with(Config {
        receive_maximum: 2,
        ..Config::for_tests()
    });
    let (p, po) = t.connect5("p");
    t.publish5(p, "t", b"1", QosPid::ExactlyOnce(pid(1)));
    t.publish5(p, "t", b"2", QosPid::ExactlyOnce(pid(2)));
    t.publish5(p, "t", b"2", QosPid::ExactlyOnce(pid(2)));
    assert_eq!(drain5(&po).len(), 3, "duplicates do not count");
    t.publish5(p, "t", b"3", QosPid::ExactlyOnce(pid(3)));
    assert_eq!(drain5(&po), [Q::Disconnect(0x93)]);
    // The client's Receive Maximum caps the broker's window toward it.
    let (s, so, _, _) = t.connect_full(
        "s",
        true,
        Properties {
            receive_maximum: NonZeroU16::new(1),
            ..NO_PROPERTIES
        },
        None,
    );
    t.sub(s, &so, "w", QoS::AtLeastOnce);
    let (p, _) = t.connect5("p3");
    for i in 1..=3 {
        t.publish5(p, "w", &[i], QosPid::AtLeastOnce(pid(u16::from(i))));
    }
    let got = pubs(&so);
    assert_eq!(got.len(), 1, "window of 1");
    t.send(s, Packet::PubAck(Ack::new(pid(got[0].pid))));
    assert_eq!(pubs(&so)[0].payload, [2]);
}

#[test]
fn maximum_packet_size_toward_client_drops_and_counts() {
    let mut t = T::new();
    let (s, so, _, _) = t.connect_full(
        "s",
        true,
        Properties {
            maximum_packet_size: NonZeroU32::new(40),
            ..NO_PROPERTIES
        },
        None,
    );
    t.sub(s, &so, "t", QoS::AtLeastOnce);
    let (p, _) = t.connect5("p");
    t.publish5(p, "t", &[0u8; 100], QosPid::AtLeastOnce(pid(1)));
    t.publish5(p, "t", &[0u8; 100], QosPid::AtMostOnce);
    t.publish5(p, "t", b"small", QosPid::AtLeastOnce(pid(2)));
    let got = pubs(&so);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"small");
    assert_eq!(t.b.stats().publish_dropped, 2);
    let sid = t.b.sessions().find("s").unwrap();
    assert_eq!(
        t.b.sessions().get(sid).unwrap().delivery().inflight.len(),
        1
    );
}

#[test]
fn session_expiry_interval() {
    let mut t = T::new();
    let exp = |e| Properties {
        session_expiry_interval: Some(e),
        ..NO_PROPERTIES
    };
    let (c, o, _, _) = t.connect_full("e", true, exp(10), None);
    t.sub(c, &o, "t", QoS::AtLeastOnce);
    t.b.connection_lost(c, t.now);
    t.tick(9_000);
    assert!(t.b.sessions().find("e").is_some());
    let (_, _, out, _) = t.connect_full("e", false, exp(10), None);
    assert_eq!(
        out[0],
        Q::ConnAck {
            present: true,
            code: 0
        }
    );
    // The reconnection restarted the clock: lost at 9 s, expires at 19 s.
    let c =
        t.b.sessions()
            .get(t.b.sessions().find("e").unwrap())
            .unwrap()
            .conn
            .unwrap();
    t.b.connection_lost(c, t.now);
    t.tick(18_900);
    assert!(t.b.sessions().find("e").is_some());
    t.tick(19_000);
    assert!(t.b.sessions().find("e").is_none(), "expired");
    assert!(t.b.subscriptions().is_empty());
    // 0: ends at disconnect; DISCONNECT may not raise 0 to non-zero.
    let (c, o) = t.connect5("z");
    t.send(
        c,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties: exp(30),
        }),
    );
    assert_eq!(drain5(&o), [Q::Disconnect(0x82)]);
    assert!(t.b.sessions().find("z").is_none());
    // Non-zero lowered to 0 by DISCONNECT: the session ends.
    let (c, _, _, _) = t.connect_full("y", true, exp(100), None);
    t.send(
        c,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties: exp(0),
        }),
    );
    assert!(t.b.sessions().find("y").is_none());
    // A cap: the interval is shortened and CONNACK says so.
    let mut t2 = T::with(Config {
        max_session_expiry_interval: 5,
        ..Config::for_tests()
    });
    let (c, o) = t2.open();
    t2.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 60,
            client_id: "capped",
            will: None,
            username: None,
            password: None,
            properties: exp(100),
        }),
    );
    let mut buf = Vec::new();
    o.drain_into(&mut buf);
    let Ok(Status::Complete(d)) = decode(&buf, DecodeOptions::new(ProtocolVersion::V5)) else {
        panic!()
    };
    let Packet::ConnAck(ack) = d.packet else {
        panic!()
    };
    assert_eq!(ack.properties.session_expiry_interval, Some(5));
    t2.b.connection_lost(c, t2.now);
    t2.tick(5_000);
    assert!(
        t2.b.sessions().find("capped").is_none(),
        "expired after 5 s"
    );
    // 0xFFFFFFFF: never.
    let (c, _, _, _) = t.connect_full("n", true, exp(u32::MAX), None);
    t.b.connection_lost(c, t.now);
    t.tick(u64::from(u32::MAX) * 1000 + 50_000);
    assert!(t.b.sessions().find("n").is_some());
}

#[test]
fn message_expiry_counts_down_and_drops() {
    let mut t = T::new();
    let exp = |e| Properties {
        session_expiry_interval: Some(e),
        ..NO_PROPERTIES
    };
    let (c, o, _, _) = t.connect_full("s", true, exp(100), None);
    t.sub(c, &o, "t", QoS::AtLeastOnce);
    t.b.connection_lost(c, t.now);
    let (p, _) = t.connect5("p");
    let mexp = |e| Properties {
        message_expiry_interval: Some(e),
        ..NO_PROPERTIES
    };
    t.publish_p(
        p,
        "t",
        b"long",
        QosPid::AtLeastOnce(pid(1)),
        false,
        mexp(10),
    );
    t.publish_p(
        p,
        "t",
        b"short",
        QosPid::AtLeastOnce(pid(2)),
        false,
        mexp(1),
    );
    t.publish_p(p, "r", b"ret", QosPid::AtMostOnce, true, mexp(2));
    t.tick(2_500);
    let (c, o, out, _) = t.connect_full("s", false, exp(100), None);
    let got: Vec<_> = out
        .into_iter()
        .filter_map(|q| match q {
            Q::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "the 1 s message expired while queued");
    assert_eq!(got[0].payload, b"long");
    assert_eq!(got[0].expiry, Some(8), "10 s minus the 2 s waited");
    assert!(
        t.b.retained().get("r").is_none(),
        "expired retained message gone"
    );
    // Live forwarding keeps the interval as published.
    t.publish_p(p, "t", b"now", QosPid::AtMostOnce, false, mexp(30));
    assert_eq!(pubs(&o)[0].expiry, Some(30));
    let _ = c;
}

#[test]
fn shared_subscriptions_round_robin_no_retained_and_fail_over() {
    let mut t = T::new();
    let (p, _) = t.connect5("p");
    t.publish_p(p, "job/1", b"old", QosPid::AtMostOnce, true, NO_PROPERTIES);
    let (a, ao) = t.connect5("a");
    let (b, bo) = t.connect5("b");
    assert_eq!(
        t.sub(a, &ao, "$share/g/job/+", QoS::AtLeastOnce),
        [Q::SubAck(vec![1])],
        "no retained message for a shared subscription"
    );
    assert_eq!(
        t.sub(b, &bo, "$share/g/job/+", QoS::AtLeastOnce),
        [Q::SubAck(vec![1])]
    );
    assert_eq!(t.b.shared_subscription_members("$share/g/job/+"), 2);
    for i in 1..=4u8 {
        t.publish5(p, "job/x", &[i], QosPid::AtLeastOnce(pid(u16::from(i))));
    }
    let (ga, gb) = (pubs(&ao), pubs(&bo));
    assert_eq!((ga.len(), gb.len()), (2, 2), "round robin");
    // `a` goes away without acknowledging: its two messages go to `b`.
    t.b.connection_lost(a, t.now);
    let got = pubs(&bo);
    let mut payloads: Vec<_> = got.iter().map(|p| p.payload[0]).collect();
    payloads.sort();
    let mut expected: Vec<_> = ga.iter().map(|p| p.payload[0]).collect();
    expected.sort();
    assert_eq!(payloads, expected, "fail-over of unacknowledged messages");
    assert_eq!(t.b.shared_subscription_members("$share/g/job/+"), 1);
    // A non-shared subscriber still gets every message too.
    let (c, co) = t.connect5("c");
    t.sub(c, &co, "job/+", QoS::AtMostOnce);
    t.publish5(p, "job/y", b"z", QosPid::AtMostOnce);
    assert_eq!(pubs(&co).len(), 1);
    assert_eq!(pubs(&bo).len(), 1);
}

/// The will delay and the session expiry count from the moment the socket was lost, which the
/// shell passes in, however long ago the broker last saw a packet or a tick (the shell ticks
/// every 250 ms): the Paho interoperability suite's `test_will_delay` found the will published
/// up to a tick early when they counted from the broker's last-seen time.
#[test]
fn will_delay_and_session_expiry_count_from_the_loss() {
    let mut t = T::new();
    let (s, so) = t.connect5("watch");
    t.sub(s, &so, "will/#", QoS::AtMostOnce);
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
    let (c, _, _, _) = t.connect_full("a", true, exp, Some(will));
    // No packet and no tick since the CONNECT at 0; the socket is lost at 0.9 s.
    t.b.connection_lost(c, 900);
    t.tick(3_899);
    assert!(
        pubs(&so).is_empty(),
        "published before the will delay had passed"
    );
    t.tick(3_900);
    assert_eq!(pubs(&so).len(), 1);
    t.tick(5_899);
    assert!(t.b.sessions().find("a").is_some(), "session expired early");
    t.tick(5_900);
    assert!(t.b.sessions().find("a").is_none());
    // The same when the connection ends on a malformed packet (its will is published).
    let (c, _, _, _) = t.connect_full("b", true, exp, Some(will));
    t.b.decode_failed(c, DecodeError::InvalidUtf8, 6_800);
    t.tick(9_799);
    assert!(
        pubs(&so).is_empty(),
        "published before the will delay had passed"
    );
    t.tick(9_800);
    assert_eq!(pubs(&so).len(), 1);
}

#[test]
fn will_delay_interval() {
    let mut t = T::new();
    let (s, so) = t.connect5("watch");
    t.sub(s, &so, "will/#", QoS::AtMostOnce);
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
    let (c, _, _, _) = t.connect_full("a", true, exp, Some(will("will/a", 5)));
    t.b.connection_lost(c, t.now);
    t.tick(4_000);
    assert!(pubs(&so).is_empty());
    t.tick(5_000);
    let got = pubs(&so);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].content_type.as_deref(), Some("text/plain"));
    // Reconnecting within the delay: never published.
    let (c, _, _, _) = t.connect_full("b", true, exp, Some(will("will/b", 5)));
    t.b.connection_lost(c, t.now);
    t.tick(7_000);
    t.connect_full("b", false, exp, None);
    t.tick(20_000);
    assert!(pubs(&so).is_empty());
    // The session ends first (expiry 0): published at once.
    let (c, _, _, _) = t.connect_full("c", true, NO_PROPERTIES, Some(will("will/c", 100)));
    t.b.connection_lost(c, t.now);
    assert_eq!(pubs(&so).len(), 1);
    // A will's Message Expiry Interval counts from its publication, not from CONNECT.
    let expiring_will = Will {
        properties: Properties {
            will_delay_interval: Some(2),
            message_expiry_interval: Some(3),
            ..NO_PROPERTIES
        },
        ..will("will/e", 0)
    };
    let (c, _, _, _) = t.connect_full("e", true, exp, Some(expiring_will));
    t.tick(50_000);
    t.b.connection_lost(c, t.now);
    t.tick(52_000);
    let got = pubs(&so);
    assert_eq!(got.len(), 1, "not expired although CONNECT was 50 s ago");
    assert_eq!(got[0].expiry, Some(3));
    // DISCONNECT 0x04: the will is published.
    let (c, _, _, _) = t.connect_full("d", true, NO_PROPERTIES, Some(will("will/d", 0)));
    t.send(
        c,
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::DISCONNECT_WITH_WILL)),
    );
    assert_eq!(pubs(&so)[0].topic, "will/d");
}

#[test]
fn server_disconnect_reasons() {
    let mut t = T::new();
    // Keep-alive timeout.
    let (_, o, _, _) = {
        let (c, o) = t.open();
        t.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V5,
                clean_start: true,
                keep_alive: 1,
                client_id: "k",
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        drain5(&o);
        (c, o, (), ())
    };
    t.tick(2_000);
    assert_eq!(drain5(&o), [Q::Disconnect(0x8D)]);
    // Session taken over.
    let (_, o1) = t.connect5("x");
    t.connect5("x");
    assert_eq!(drain5(&o1), [Q::Disconnect(0x8E)]);
    // Malformed and too large.
    let (c, o) = t.connect5("m");
    t.b.decode_failed(c, DecodeError::InvalidUtf8, t.now);
    assert_eq!(drain5(&o), [Q::Disconnect(0x81)]);
    let (c, o) = t.connect5("l");
    t.b.decode_failed(c, DecodeError::PacketTooLarge { size: 10, max: 5 }, t.now);
    assert_eq!(drain5(&o), [Q::Disconnect(0x95)]);
    // Shutdown.
    let (_, o) = t.connect5("sd");
    t.b.shutdown();
    assert_eq!(drain5(&o), [Q::Disconnect(0x8B)]);
}

#[test]
fn enhanced_authentication_and_reauthentication() {
    let mut t = T::new();
    t.b.add_authenticator(Arc::new(HmacChallenge::new().user("alice", b"k")));
    let auth_props = |data: &'static [u8]| Properties {
        authentication_method: Some(HmacChallenge::METHOD),
        authentication_data: Some(data),
        ..NO_PROPERTIES
    };
    // Unknown method → CONNACK 0x8C.
    let (_, o, out, _) = t.connect_full(
        "u",
        true,
        Properties {
            authentication_method: Some("NOPE"),
            ..NO_PROPERTIES
        },
        None,
    );
    assert_eq!(
        out,
        [Q::ConnAck {
            present: false,
            code: 0x8C
        }]
    );
    assert!(o.is_closed());
    // The exchange: CONNECT → AUTH 0x18 (nonce) → AUTH 0x18 (HMAC) → CONNACK 0.
    let (c, o, out, _) = t.connect_full("a", true, auth_props(b"alice"), None);
    let [Q::Auth(0x18, nonce)] = &out[..] else {
        panic!("{out:?}")
    };
    let answer = HmacChallenge::respond(b"k", nonce);
    fn reply(code: ReasonCode, data: &[u8]) -> Packet<'_> {
        Packet::Auth(Auth {
            reason_code: code,
            properties: Properties {
                authentication_method: Some(HmacChallenge::METHOD),
                authentication_data: Some(data),
                ..NO_PROPERTIES
            },
        })
    }
    t.send(c, reply(ReasonCode::CONTINUE_AUTHENTICATION, &answer));
    assert_eq!(
        drain5(&o),
        [Q::ConnAck {
            present: false,
            code: 0
        }]
    );
    assert_eq!(t.b.connected_clients(), 1);
    // Re-authentication: AUTH 0x19 → AUTH 0x18 → AUTH 0x00.
    t.send(c, reply(ReasonCode::RE_AUTHENTICATE, b"alice"));
    let out = drain5(&o);
    let [Q::Auth(0x18, nonce)] = &out[..] else {
        panic!("{out:?}")
    };
    let answer = HmacChallenge::respond(b"k", nonce);
    t.send(c, reply(ReasonCode::CONTINUE_AUTHENTICATION, &answer));
    assert_eq!(drain5(&o), [Q::Auth(0, vec![])]);
    // A wrong answer: CONNACK 0x87.
    let (c, o, _, _) = t.connect_full("b", true, auth_props(b"alice"), None);
    t.send(c, reply(ReasonCode::CONTINUE_AUTHENTICATION, b"bad"));
    assert_eq!(
        drain5(&o),
        [Q::ConnAck {
            present: false,
            code: 0x87
        }]
    );
    assert!(o.is_closed());
    // Anything but AUTH during the exchange: CONNACK 0x82.
    let (c, o, _, _) = t.connect_full("c", true, auth_props(b"alice"), None);
    t.send(c, Packet::PingReq);
    assert_eq!(
        drain5(&o),
        [Q::ConnAck {
            present: false,
            code: 0x82
        }]
    );
    // AUTH without enhanced authentication is a protocol error.
    let (c, o) = t.connect5("plain");
    t.send(c, reply(ReasonCode::RE_AUTHENTICATE, b""));
    assert_eq!(drain5(&o), [Q::Disconnect(0x82)]);
}

#[test]
fn connack_fits_a_tiny_maximum_packet_size() {
    // Found by the broker_core fuzz target: the full CONNACK (capabilities) is ~30 bytes.
    let mut t = T::new();
    let (c, o) = t.open();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 60,
            client_id: "tiny",
            will: None,
            username: None,
            password: None,
            properties: Properties {
                maximum_packet_size: NonZeroU32::new(20),
                ..NO_PROPERTIES
            },
        }),
    );
    let mut buf = Vec::new();
    o.drain_into(&mut buf);
    assert!(buf.len() <= 20, "{} bytes", buf.len());
    let Ok(Status::Complete(d)) = decode(&buf, DecodeOptions::new(ProtocolVersion::V5)) else {
        panic!("{buf:?}")
    };
    assert!(matches!(d.packet, Packet::ConnAck(a) if a.code == ReasonCode::SUCCESS));
}
