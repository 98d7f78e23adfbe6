//! MQTT 5.0 over loopback TCP: an independent client (`rumqttc::v5`) for the behaviour a
//! well-behaved library exercises, and a raw 5.0 codec client for every reason-code path a
//! library will not provoke (bad aliases, too many QoS 2, oversize, bad payload format, AUTH).

mod common;

use common::Sent;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS as RQoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, Packet as RPacket, PublishProperties, SubscribeProperties,
    SubscribeReasonCode,
};
use rumqttc::v5::{Client, Event, MqttOptions};
use wren_broker::HmacChallenge;
use wren_codec::{
    Auth, Connect, Packet, PacketId, PayloadFormat, ProtocolVersion, Publish, QoS, QosPid,
    ReasonCode, Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName, Unsubscribe,
    properties::{NO_PROPERTIES, Properties},
};

const WAIT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// rumqttc v5
// ---------------------------------------------------------------------------------------------

struct Mq5 {
    client: Client,
    rx: Receiver<RPacket>,
}

fn mq5(addr: SocketAddr, id: &str, tweak: impl FnOnce(&mut MqttOptions)) -> (Mq5, bool) {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    tweak(&mut opts);
    let (client, mut connection) = Client::new(opts, 100);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(RPacket::ConnAck(ack)) => {
                return (Mq5 { client, rx }, ack.session_present);
            }
            Ok(_) => {}
            Err(e) => panic!("no CONNACK: {e}"),
        }
    }
}

impl Mq5 {
    /// Wait for the SUBACK of the subscription just sent; asserts it granted QoS 1.
    fn suback(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(RPacket::SubAck(s)) => {
                    assert_eq!(
                        s.return_codes,
                        [SubscribeReasonCode::Success(RQoS::AtLeastOnce)]
                    );
                    return;
                }
                Ok(_) => {}
                Err(e) => panic!("no SUBACK: {e}"),
            }
        }
    }

    fn next_publish_within(
        &self,
        timeout: Duration,
    ) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(RPacket::Publish(p)) => return Some(p),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

#[test]
fn v5_properties_and_subscription_identifier_reach_v5_and_v311_subscribers() {
    let broker = common::start(|_| {});
    let addr = broker.local_addr();
    let (sub, _) = mq5(addr, "v5-sub", |_| {});
    sub.client
        .subscribe_with_properties(
            "req/+",
            RQoS::AtLeastOnce,
            SubscribeProperties {
                id: Some(42),
                user_properties: vec![],
            },
        )
        .unwrap();
    sub.suback();
    let (old, _) = common::Mq::connect(addr, "v311-sub", true);
    old.subscribe("req/+", rumqttc::QoS::AtLeastOnce);
    let (publisher, _) = mq5(addr, "v5-pub", |_| {});
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("resp/1".into()),
        correlation_data: Some(b"corr".to_vec().into()),
        user_properties: vec![("z".into(), "1".into()), ("a".into(), "2".into())],
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties("req/x", RQoS::AtLeastOnce, false, "{}", props)
        .unwrap();
    let got = sub.next_publish_within(WAIT).expect("5.0 subscriber");
    let p = got.properties.expect("properties forwarded");
    assert_eq!(p.subscription_identifiers, [42]);
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.response_topic.as_deref(), Some("resp/1"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"corr"[..]));
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(
        p.user_properties,
        [("z".to_string(), "1".to_string()), ("a".into(), "2".into())],
        "order kept"
    );
    let old_got = old.next_publish();
    assert_eq!(
        &old_got.payload[..],
        b"{}",
        "3.1.1 subscriber gets the 5.0 publish"
    );
    // And the reverse: a 3.1.1 publish reaches the 5.0 subscriber.
    old.publish("req/y", rumqttc::QoS::AtMostOnce, false, b"old");
    let got = sub.next_publish_within(WAIT).expect("from 3.1.1");
    assert_eq!(&got.payload[..], b"old");
}

#[test]
fn v5_shared_subscription_round_robin_and_session_expiry() {
    let broker = common::start(|_| {});
    let addr = broker.local_addr();
    let (a, _) = mq5(addr, "share-a", |_| {});
    let (b, _) = mq5(addr, "share-b", |_| {});
    for m in [&a, &b] {
        m.client
            .subscribe("$share/workers/job", RQoS::AtLeastOnce)
            .unwrap();
        m.suback();
    }
    let (p, _) = mq5(addr, "share-pub", |_| {});
    for i in 0..6u8 {
        p.client
            .publish("job", RQoS::AtLeastOnce, false, vec![i])
            .unwrap();
    }
    let count = |m: &Mq5| {
        let mut n = 0;
        while m.next_publish_within(Duration::from_millis(500)).is_some() {
            n += 1;
        }
        n
    };
    assert_eq!(
        (count(&a), count(&b)),
        (3, 3),
        "round robin over two members"
    );

    // Session Expiry Interval 1 s: present right after a disconnect, gone 2 s later.
    let expiring = |o: &mut MqttOptions| {
        o.set_clean_start(false);
        let mut cp = ConnectProperties::new();
        cp.session_expiry_interval = Some(1);
        o.set_connect_properties(cp);
    };
    let (e, present) = mq5(addr, "expiring", expiring);
    assert!(!present);
    e.client.disconnect().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (e, present) = mq5(addr, "expiring", expiring);
    assert!(present, "resumed within the interval");
    e.client.disconnect().unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    let (_e, present) = mq5(addr, "expiring", expiring);
    assert!(!present, "expired");
}

// ---------------------------------------------------------------------------------------------
// Raw 5.0 client
// ---------------------------------------------------------------------------------------------

/// A raw 5.0 client; the harness decodes what it reads ([`common::Incoming`]).
struct Raw5 {
    stream: TcpStream,
    incoming: common::Incoming,
}

fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

impl Raw5 {
    fn open(addr: SocketAddr, id: &str, properties: Properties<'_>) -> (Raw5, Sent) {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut raw = Raw5 {
            stream,
            incoming: common::Incoming::new(ProtocolVersion::V5),
        };
        raw.send(&Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            bridge: false,
            clean_start: true,
            keep_alive: 30,
            client_id: id,
            will: None,
            username: None,
            password: None,
            properties,
        }));
        let first = raw.recv().expect("CONNACK or AUTH");
        (raw, first)
    }

    fn connect(addr: SocketAddr, id: &str) -> Raw5 {
        let (raw, ack) = Self::open(addr, id, NO_PROPERTIES);
        assert!(matches!(ack, Sent::ConnAck { code: 0, .. }), "{ack:?}");
        raw
    }

    fn send(&mut self, p: &Packet<'_>) {
        let mut buf = vec![0u8; p.encoded_len(ProtocolVersion::V5).unwrap()];
        p.encode(ProtocolVersion::V5, &mut buf).unwrap();
        let _ = self.stream.write_all(&buf);
    }

    fn publish(&mut self, topic: &str, payload: &[u8], qos_pid: QosPid, props: Properties<'_>) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos_pid,
            retain: false,
            topic: TopicName::new(topic).unwrap(),
            properties: props,
            payload,
        }));
    }

    fn subscribe(&mut self, filter: &str) -> Sent {
        let subs = [Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        }];
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            properties: NO_PROPERTIES,
            subscriptions: wren_codec::List::new(&subs),
        }));
        self.recv().expect("SUBACK")
    }

    fn recv(&mut self) -> Option<Sent> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(p) = self.incoming.next() {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.incoming.extend(&chunk[..n]),
            }
        }
    }

    /// The DISCONNECT reason the broker sends before it closes the connection.
    fn disconnect_reason(&mut self) -> u8 {
        loop {
            match self.recv() {
                Some(Sent::Disconnect { code, .. }) => {
                    assert!(self.recv().is_none(), "closed after DISCONNECT");
                    return code;
                }
                Some(_) => {}
                None => panic!("closed without DISCONNECT"),
            }
        }
    }
}

#[test]
fn raw_v5_ack_reason_codes() {
    let broker = common::start(|_| {});
    let addr = broker.local_addr();
    let mut c = Raw5::connect(addr, "acks");
    c.publish(
        "nobody/here",
        b"x",
        QosPid::AtLeastOnce(pid(1)),
        NO_PROPERTIES,
    );
    assert_eq!(
        c.recv(),
        Some(Sent::PubAck(1, 0x10)),
        "No matching subscribers"
    );
    c.publish(
        "nobody/here",
        b"x",
        QosPid::ExactlyOnce(pid(2)),
        NO_PROPERTIES,
    );
    assert_eq!(c.recv(), Some(Sent::PubRec(2, 0x10)));
    let utf8 = Properties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        ..NO_PROPERTIES
    };
    c.publish("a", b"\xc3\x28", QosPid::AtLeastOnce(pid(3)), utf8);
    assert_eq!(
        c.recv(),
        Some(Sent::PubAck(3, 0x99)),
        "Payload format invalid"
    );
    let filters = [TopicFilter::new("never/subscribed").unwrap()];
    c.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(4),
        properties: NO_PROPERTIES,
        filters: wren_codec::List::new(&filters),
    }));
    assert_eq!(c.recv(), Some(Sent::UnsubAck(4, vec![0x11])));
    // 201 levels (200 separators) is as deep as Mosquitto goes: granted (one more level closes
    // the connection: core/tests/strings.rs).
    let deep = vec!["a"; 201].join("/");
    assert_eq!(c.subscribe(&deep), Sent::SubAck(1, vec![1]));
    c.publish("a", b"\xff", QosPid::AtMostOnce, utf8);
    assert_eq!(c.disconnect_reason(), 0x99);
    // An invalid share name is refused by the codec when decoding (the codec will not encode
    // one, so the bytes are written by hand): DISCONNECT 0x81.
    let mut c = Raw5::connect(addr, "bad-share");
    let filter = b"$share/g+/x";
    let mut sub = vec![
        0x82,
        (2 + 1 + 2 + filter.len() + 1) as u8,
        0x00,
        0x05,
        0x00,
        0x00,
    ];
    sub.push(filter.len() as u8);
    sub.extend_from_slice(filter);
    sub.push(0x01);
    let _ = c.stream.write_all(&sub);
    assert_eq!(c.disconnect_reason(), 0x81);
}

#[test]
fn raw_v5_server_disconnect_reasons() {
    let broker = common::start(|c| {
        c.receive_maximum = 1;
        c.topic_alias_maximum = 2;
        c.max_packet_size = 256;
    });
    let addr = broker.local_addr();
    let alias = |a| Properties {
        topic_alias: std::num::NonZeroU16::new(a),
        ..NO_PROPERTIES
    };
    // Topic alias above the maximum.
    let mut c = Raw5::connect(addr, "alias-high");
    c.publish("t", b"x", QosPid::AtMostOnce, alias(3));
    assert_eq!(c.disconnect_reason(), 0x94);
    // An alias within the maximum never set, with an empty topic: a Protocol Error.
    let mut c = Raw5::connect(addr, "alias-unknown");
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::AtMostOnce,
        retain: false,
        topic: TopicName::alias_only(),
        properties: alias(1),
        payload: b"x",
    }));
    assert_eq!(c.disconnect_reason(), 0x82);
    // More unreleased QoS 2 than Receive Maximum 1.
    let mut c = Raw5::connect(addr, "greedy");
    c.publish("t", b"1", QosPid::ExactlyOnce(pid(1)), NO_PROPERTIES);
    assert_eq!(c.recv(), Some(Sent::PubRec(1, 0x10)));
    c.publish("t", b"2", QosPid::ExactlyOnce(pid(2)), NO_PROPERTIES);
    assert_eq!(c.disconnect_reason(), 0x93);
    // Packet larger than the broker's Maximum Packet Size.
    let mut c = Raw5::connect(addr, "big");
    c.publish("t", &[0u8; 400], QosPid::AtMostOnce, NO_PROPERTIES);
    assert_eq!(c.disconnect_reason(), 0x95);
    // Malformed: PUBLISH at QoS 3.
    let mut c = Raw5::connect(addr, "malformed");
    let _ = c.stream.write_all(&[0x36, 0x03, 0x00, 0x01, b't']);
    assert_eq!(c.disconnect_reason(), 0x81);
    // Protocol error: a second CONNECT; with a reason string.
    let mut c = Raw5::connect(addr, "twice");
    c.send(&Packet::Connect(Connect {
        protocol: ProtocolVersion::V5,
        bridge: false,
        clean_start: true,
        keep_alive: 30,
        client_id: "twice",
        will: None,
        username: None,
        password: None,
        properties: NO_PROPERTIES,
    }));
    assert_eq!(
        c.recv(),
        Some(Sent::Disconnect {
            code: 0x82,
            reason_string: Some("protocol error".into())
        })
    );
    // Session taken over.
    let mut old = Raw5::connect(addr, "taken");
    let _new = Raw5::connect(addr, "taken");
    assert_eq!(old.disconnect_reason(), 0x8E);
    // Inbound alias round trip works for a well-behaved client.
    let mut s = Raw5::connect(addr, "alias-sub");
    assert_eq!(s.subscribe("long/name"), Sent::SubAck(1, vec![1]));
    let mut p = Raw5::connect(addr, "alias-pub");
    p.publish("long/name", b"1", QosPid::AtMostOnce, alias(1));
    p.send(&Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::AtMostOnce,
        retain: false,
        topic: TopicName::alias_only(),
        properties: alias(1),
        payload: b"2",
    }));
    assert_eq!(
        s.recv().as_ref().and_then(Sent::publication).map(|p| (
            p.topic.as_str(),
            &p.payload[..],
            p.topic_alias
        )),
        Some(("long/name", &b"1"[..], None))
    );
    assert_eq!(
        s.recv().as_ref().and_then(Sent::publication).map(|p| (
            p.topic.as_str(),
            &p.payload[..],
            p.topic_alias
        )),
        Some(("long/name", &b"2"[..], None))
    );
}

#[test]
fn raw_v5_enhanced_authentication() {
    let mut config = wren_broker::Config::for_tests();
    config.sys_interval = 0;
    let broker = wren_broker::Server::bind(config)
        .unwrap()
        .with_authenticator(Arc::new(HmacChallenge::new().user("alice", b"secret")))
        .start()
        .unwrap();
    let addr = broker.local_addr();
    let props = |method, data: &'static [u8]| Properties {
        authentication_method: Some(method),
        authentication_data: Some(data),
        ..NO_PROPERTIES
    };
    let (_, ack) = Raw5::open(addr, "nope", props("SCRAM-SHA-1", b""));
    assert_eq!(
        ack,
        Sent::connack(false, 0x8C),
        "unknown method: Bad authentication method"
    );
    let (mut c, first) = Raw5::open(addr, "alice-1", props(HmacChallenge::METHOD, b"alice"));
    let Sent::Auth(0x18, nonce) = first else {
        panic!("{first:?}")
    };
    let answer = HmacChallenge::respond(b"secret", &nonce);
    c.send(&Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(HmacChallenge::METHOD),
            authentication_data: Some(&answer),
            ..NO_PROPERTIES
        },
    }));
    let ack = c.recv();
    assert!(
        matches!(ack, Some(Sent::ConnAck { code: 0, .. })),
        "{ack:?}"
    );
    // Re-authentication.
    c.send(&Packet::Auth(Auth {
        reason_code: ReasonCode::RE_AUTHENTICATE,
        properties: props(HmacChallenge::METHOD, b"alice"),
    }));
    let Some(Sent::Auth(0x18, nonce)) = c.recv() else {
        panic!()
    };
    let answer = HmacChallenge::respond(b"secret", &nonce);
    c.send(&Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(HmacChallenge::METHOD),
            authentication_data: Some(&answer),
            ..NO_PROPERTIES
        },
    }));
    assert_eq!(c.recv(), Some(Sent::Auth(0, vec![])));
    // Wrong secret: CONNACK 0x87.
    let (mut c, first) = Raw5::open(addr, "alice-2", props(HmacChallenge::METHOD, b"alice"));
    let Sent::Auth(0x18, nonce) = first else {
        panic!("{first:?}")
    };
    let answer = HmacChallenge::respond(b"guess", &nonce);
    c.send(&Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(HmacChallenge::METHOD),
            authentication_data: Some(&answer),
            ..NO_PROPERTIES
        },
    }));
    assert_eq!(c.recv(), Some(Sent::connack(false, 0x87)));
    assert_eq!(c.recv(), None, "closed");
}

#[test]
fn raw_v5_authentication_users_from_config() {
    let broker = common::start(|c| {
        c.auth_hmac_users.insert("bob".into(), "pw".into());
    });
    let addr = broker.local_addr();
    let (mut c, first) = Raw5::open(
        addr,
        "bob-1",
        Properties {
            authentication_method: Some(HmacChallenge::METHOD),
            authentication_data: Some(b"bob"),
            ..NO_PROPERTIES
        },
    );
    let Sent::Auth(0x18, nonce) = first else {
        panic!("{first:?}")
    };
    let answer = HmacChallenge::respond(b"pw", &nonce);
    c.send(&Packet::Auth(Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(HmacChallenge::METHOD),
            authentication_data: Some(&answer),
            ..NO_PROPERTIES
        },
    }));
    let ack = c.recv();
    assert!(
        matches!(ack, Some(Sent::ConnAck { code: 0, .. })),
        "{ack:?}"
    );
}

/// #17 item 4 over sockets, in raw bytes: a 5.0 client with a 3 s Will Delay (Session Expiry 0)
/// whose socket drops and which reconnects within a second sends no will; one that does not
/// reconnect sends it after the delay.
#[test]
fn raw_v5_will_delay_cancelled_by_a_reconnect() {
    let broker = common::start(|_| {});
    let addr = broker.local_addr();
    let (mut watcher, _) = common::Raw::connect(addr, "will-watcher", true, 60);
    assert_eq!(
        watcher.subscribe("will/#", QoS::AtMostOnce),
        Sent::SubAck(1, vec![0])
    );
    // CONNECT 5.0, Clean Start, keep-alive 60, client id `id`, and a will on `will/{id}` with
    // Will Delay Interval 3 (property 0x18) when `will` is set.
    let connect = |id: &str, will: bool| {
        let mut body = vec![
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            if will { 0x06 } else { 0x02 },
        ];
        body.extend_from_slice(&[0, 60, 0]);
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        if will {
            body.extend_from_slice(&[5, 0x18, 0, 0, 0, 3]);
            let topic = format!("will/{id}");
            body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            body.extend_from_slice(topic.as_bytes());
            body.extend_from_slice(&[0, 4]);
            body.extend_from_slice(b"gone");
        }
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&packet).unwrap();
        let mut connack = [0u8; 3];
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.read_exact(&mut connack).unwrap();
        assert_eq!(connack[..2], [0x20, connack[1]]);
        s
    };
    let back = connect("back", true);
    let gone = connect("gone", true);
    drop(back);
    drop(gone);
    std::thread::sleep(Duration::from_millis(500));
    let _back_again = connect("back", false);
    let mut wills = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(4_500);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match watcher.recv_within(left) {
            Some(Sent::Publish(p)) => wills.push(p.topic),
            Some(other) => panic!("{other:?}"),
            None => break,
        }
    }
    assert_eq!(wills, ["will/gone"]);
}

/// #18 item 7 over sockets: after `max_failed_logins` refusals from 127.0.0.1, its next CONNECT
/// is refused with 0x8A Banned without its credentials being looked at.
#[test]
fn raw_v5_failed_logins_ban_the_address_for_a_while() {
    let broker = common::start(|c| {
        c.allow_anonymous = Some(false);
        c.max_failed_logins = 2;
        c.failed_login_window = 60;
        c.failed_login_block = 60;
    });
    let addr = broker.local_addr();
    // CONNECT 5.0, clean start, keep-alive 60, client id "guess", no properties.
    let connect = [
        0x10, 18, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 5, b'g', b'u', b'e', b's',
        b's',
    ];
    let mut codes = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(&connect).unwrap();
        let mut head = [0u8; 4];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x20, "CONNACK");
        codes.push(head[3]);
    }
    assert_eq!(codes, [0x87, 0x87, 0x8A]);
}
