//! Integration tests over real TCP on 127.0.0.1 (ephemeral ports): `rumqttc` as an independent
//! client, plus a raw codec client for what a well-behaved client library cannot do.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rumqttc::QoS as RQoS;
use wren_codec::properties::NO_PROPERTIES;
use wren_codec::{
    Ack, Packet, QoS, QosPid, Subscribe, Subscription, SubscriptionOptions, TopicFilter,
};

#[test]
fn qos0_qos1_qos2_end_to_end() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (sub, present) = Mq::connect(addr, "sub", true);
    assert!(!present);
    sub.subscribe("e2e/#", RQoS::ExactlyOnce);
    let (publ, _) = Mq::connect(addr, "pub", true);
    for (i, qos) in [RQoS::AtMostOnce, RQoS::AtLeastOnce, RQoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publ.publish(&format!("e2e/{i}"), qos, false, format!("m{i}").as_bytes());
        let p = sub.next_publish();
        assert_eq!(p.topic, format!("e2e/{i}"));
        assert_eq!(&p.payload[..], format!("m{i}").as_bytes());
        assert_eq!(p.qos, qos, "delivered at min(publish QoS, granted QoS)");
        assert!(!p.retain);
    }
    assert!(sub.next_publish_within(QUIET).is_none(), "nothing else");
    // Granted QoS 1 caps a QoS 2 publish.
    let (sub1, _) = Mq::connect(addr, "sub1", true);
    sub1.subscribe("cap", RQoS::AtLeastOnce);
    publ.publish("cap", RQoS::ExactlyOnce, false, b"x");
    assert_eq!(sub1.next_publish().qos, RQoS::AtLeastOnce);
}

#[test]
fn qos2_duplicate_before_pubrel_is_delivered_once() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (sub, _) = Mq::connect(addr, "sub", true);
    sub.subscribe("once", RQoS::ExactlyOnce);
    let (mut p, _) = Raw::connect(addr, "raw-pub", true, 30);
    p.publish("once", b"1", QosPid::ExactlyOnce(pid(7)), false);
    assert_eq!(p.recv(), Some(Sent::PubRec(7, 0)));
    // The "retransmission" (DUP would be set by a real client; the id is what matters).
    p.publish("once", b"1", QosPid::ExactlyOnce(pid(7)), false);
    assert_eq!(p.recv(), Some(Sent::PubRec(7, 0)));
    p.ack(Packet::PubRel(Ack::new(pid(7))));
    assert_eq!(p.recv(), Some(Sent::PubComp(7, 0)));
    assert_eq!(&sub.next_publish().payload[..], b"1");
    assert!(sub.next_publish_within(QUIET).is_none(), "exactly once");
}

#[test]
fn persistent_session_queues_while_offline() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (sub, present) = Mq::connect(addr, "durable", false);
    assert!(!present);
    sub.subscribe("q/#", RQoS::AtLeastOnce);
    sub.disconnect();
    let (publ, _) = Mq::connect(addr, "pub", true);
    publ.publish("q/1", RQoS::AtLeastOnce, false, b"a");
    publ.publish("q/2", RQoS::ExactlyOnce, false, b"b");
    publ.publish("q/3", RQoS::AtMostOnce, false, b"not queued");
    std::thread::sleep(QUIET);
    let (sub, present) = Mq::connect(addr, "durable", false);
    assert!(present, "CONNACK session present");
    let a = sub.next_publish();
    let b = sub.next_publish();
    assert_eq!((a.topic.as_str(), &a.payload[..]), ("q/1", &b"a"[..]));
    assert_eq!(
        (b.topic.as_str(), &b.payload[..], b.qos),
        ("q/2", &b"b"[..], RQoS::AtLeastOnce)
    );
    assert!(
        sub.next_publish_within(QUIET).is_none(),
        "QoS 0 not queued offline"
    );
    sub.disconnect();
    // A clean session connect discards it.
    let (c, present) = Mq::connect(addr, "durable", true);
    assert!(!present);
    c.disconnect();
    let (_c, present) = Mq::connect(addr, "durable", false);
    assert!(!present);
}

#[test]
fn unacknowledged_publish_is_redelivered_with_dup_after_reconnect() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut s, ack) = Raw::connect(addr, "flaky", false, 30);
    assert_eq!(ack, Sent::connack(false, 0));
    assert_eq!(
        s.subscribe("r/#", QoS::ExactlyOnce),
        Sent::SubAck(1, vec![2])
    );
    let (mut p, _) = Raw::connect(addr, "pub", true, 30);
    p.publish("r/1", b"one", QosPid::AtLeastOnce(pid(1)), false);
    p.publish("r/2", b"two", QosPid::ExactlyOnce(pid(2)), false);
    let first = s.recv().unwrap();
    let second = s.recv().unwrap();
    let Sent::Publish(Publication {
        dup: false,
        pid: pid1,
        ..
    }) = first.clone()
    else {
        panic!("{first:?}")
    };
    let Sent::Publish(Publication {
        dup: false,
        pid: pid2,
        qos: 2,
        ..
    }) = second.clone()
    else {
        panic!("{second:?}")
    };
    // Acknowledge the QoS 2 message's first step only, then drop without acking the QoS 1.
    s.ack(Packet::PubRec(Ack::new(pid(pid2))));
    assert_eq!(s.recv(), Some(Sent::PubRel(pid2, 0)));
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    let (mut s, ack) = Raw::connect(addr, "flaky", false, 30);
    assert_eq!(ack, Sent::connack(true, 0));
    assert_eq!(
        s.recv(),
        Some(Sent::Publish(Publication {
            topic: "r/1".into(),
            payload: b"one".to_vec(),
            qos: 1,
            pid: pid1,
            dup: true,
            retain: false,
            ..Publication::default()
        }))
    );
    assert_eq!(
        s.recv(),
        Some(Sent::PubRel(pid2, 0)),
        "PUBREL re-sent for PUBREC'd message"
    );
    s.puback(pid1);
    s.ack(Packet::PubComp(Ack::new(pid(pid2))));
    assert_eq!(s.recv_within(QUIET), None);
}

#[test]
fn will_on_dropped_socket_not_after_disconnect() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (watch, _) = Mq::connect(addr, "watcher", true);
    watch.subscribe("wills/#", RQoS::AtLeastOnce);
    let (c, _) = Raw::connect_with(addr, "dies", true, 30, Some(("wills/dies", b"bye")));
    drop(c);
    let w = watch.next_publish();
    assert_eq!(
        (w.topic.as_str(), &w.payload[..]),
        ("wills/dies", &b"bye"[..])
    );
    let (mut c, _) = Raw::connect_with(addr, "polite", true, 30, Some(("wills/polite", b"bye")));
    c.send(&Packet::Disconnect(wren_codec::Disconnect::NORMAL));
    assert!(c.is_closed());
    assert!(
        watch.next_publish_within(QUIET).is_none(),
        "no will after DISCONNECT"
    );
    // rumqttc's own will on a protocol violation by a raw client.
    let (mut c, _) = Raw::connect_with(addr, "rude", true, 30, Some(("wills/rude", b"x")));
    c.write(&[0xD0, 0x00]); // PINGRESP: server-only
    assert!(c.is_closed());
    assert_eq!(watch.next_publish().topic, "wills/rude");
}

#[test]
fn keep_alive_timeout_disconnects_and_publishes_will() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (watch, _) = Mq::connect(addr, "watcher", true);
    watch.subscribe("ka", RQoS::AtMostOnce);
    let (mut c, _) = Raw::connect_with(addr, "silent", true, 1, Some(("ka", b"timeout")));
    let t0 = Instant::now();
    assert!(c.closed_within(Duration::from_secs(4)));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "not before 1.5 × keep-alive: {waited:?}"
    );
    assert_eq!(&watch.next_publish().payload[..], b"timeout");
    // PINGREQ keeps a connection alive.
    let (mut c, _) = Raw::connect(addr, "pinger", true, 1);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(600));
        c.send(&Packet::PingReq);
        assert_eq!(c.recv(), Some(Sent::PingResp));
    }
}

#[test]
fn retained_messages_with_wildcards_and_delete() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (publ, _) = Mq::connect(addr, "pub", true);
    publ.publish("home/kitchen/temp", RQoS::AtLeastOnce, true, b"21");
    publ.publish("home/hall/temp", RQoS::AtMostOnce, true, b"19");
    publ.publish("home/hall/temp", RQoS::AtMostOnce, true, b"20");
    publ.publish("office/temp", RQoS::AtMostOnce, true, b"18");
    std::thread::sleep(QUIET);
    let (sub, _) = Mq::connect(addr, "sub", true);
    sub.subscribe("home/+/temp", RQoS::AtLeastOnce);
    let mut got = [sub.next_publish(), sub.next_publish()];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(got[0].topic, "home/hall/temp");
    assert_eq!(&got[0].payload[..], b"20", "replaced");
    assert_eq!(got[1].topic, "home/kitchen/temp");
    assert!(got.iter().all(|p| p.retain), "retain flag set on subscribe");
    assert!(sub.next_publish_within(QUIET).is_none());
    // Live forwarding clears the retain flag.
    publ.publish("home/hall/temp", RQoS::AtMostOnce, true, b"22");
    let live = sub.next_publish();
    assert!(!live.retain);
    // Empty payload deletes.
    publ.publish("home/hall/temp", RQoS::AtMostOnce, true, b"");
    assert!(
        sub.next_publish().payload.is_empty(),
        "delete is forwarded live"
    );
    let (sub2, _) = Mq::connect(addr, "sub2", true);
    sub2.subscribe("home/#", RQoS::AtMostOnce);
    assert_eq!(sub2.next_publish().topic, "home/kitchen/temp");
    assert!(sub2.next_publish_within(QUIET).is_none());
}

#[test]
fn takeover_closes_old_connection() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (watch, _) = Mq::connect(addr, "watcher", true);
    watch.subscribe("w", RQoS::AtMostOnce);
    let (mut old, _) = Raw::connect_with(addr, "same-id", false, 30, Some(("w", b"old will")));
    assert_eq!(
        old.subscribe("t", QoS::AtLeastOnce),
        Sent::SubAck(1, vec![1])
    );
    let (mut new, ack) = Raw::connect(addr, "same-id", false, 30);
    assert_eq!(ack, Sent::connack(true, 0));
    assert!(old.is_closed());
    // Both connections continue the session (clean session 0 twice): no will, as in Mosquitto.
    // A takeover with clean session 1 publishes it.
    let (_other, _) = Raw::connect_with(addr, "other-id", false, 30, Some(("w", b"other will")));
    let (_other_new, ack) = Raw::connect(addr, "other-id", true, 30);
    assert_eq!(ack, Sent::connack(false, 0));
    assert_eq!(&watch.next_publish().payload[..], b"other will");
    // The session (with its subscription) moved to the new connection.
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    p.publish("t", b"to new", QosPid::AtMostOnce, false);
    assert!(
        matches!(new.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"to new")
    );
    assert_eq!(broker.connected_clients(), 4);
}

#[test]
fn dollar_topics() {
    let broker = start(|c| c.sys_interval = 1);
    let addr = broker.local_addr();
    let (mut all, _) = Raw::connect(addr, "all", true, 30);
    all.subscribe("#", QoS::AtMostOnce);
    all.subscribe("+/broker/#", QoS::AtMostOnce);
    let (mut sys, _) = Raw::connect(addr, "sys", true, 30);
    sys.subscribe("$SYS/broker/uptime", QoS::AtMostOnce);
    let up = sys.recv_within(Duration::from_secs(3));
    assert!(
        matches!(&up, Some(Sent::Publish(Publication { topic, payload, .. }))
            if topic == "$SYS/broker/uptime" && payload.ends_with(b" seconds")),
        "{up:?}"
    );
    // A client may not publish to a $ topic: dropped (QoS 1 still acknowledged).
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    p.publish(
        "$SYS/broker/uptime",
        b"forged",
        QosPid::AtLeastOnce(pid(1)),
        true,
    );
    assert_eq!(p.recv(), Some(Sent::PubAck(1, 0)));
    p.publish("$custom/x", b"forged", QosPid::AtMostOnce, false);
    assert_eq!(
        all.recv_within(Duration::from_millis(1500)),
        None,
        "# skips $SYS"
    );
    let next = sys.recv_within(Duration::from_secs(3));
    assert!(
        matches!(&next, Some(Sent::Publish(Publication { payload, .. })) if payload != b"forged"),
        "{next:?}"
    );
    broker_still_works(addr);
}

#[test]
fn sys_statistics() {
    let broker = start(|c| c.sys_interval = 1);
    let addr = broker.local_addr();
    let (sub, _) = Mq::connect(addr, "stats", true);
    sub.subscribe("$SYS/broker/#", RQoS::AtMostOnce);
    // Collect until the values reflect this client (the first interval may predate it).
    let mut topics = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Some(p) = sub.next_publish_within(Duration::from_millis(1500)) else {
            break;
        };
        topics.insert(
            p.topic.clone(),
            String::from_utf8_lossy(&p.payload).into_owned(),
        );
        if topics.len() >= 15
            && topics
                .get("$SYS/broker/clients/connected")
                .map(String::as_str)
                == Some("1")
            && topics
                .get("$SYS/broker/subscriptions/count")
                .map(String::as_str)
                == Some("1")
        {
            break;
        }
    }
    for t in [
        "clients/connected",
        "clients/total",
        "clients/maximum",
        "messages/received",
        "messages/sent",
        "publish/messages/dropped",
        "publish/messages/received",
        "publish/messages/sent",
        "bytes/received",
        "bytes/sent",
        "subscriptions/count",
        "retained messages/count",
        "uptime",
        "version",
    ] {
        assert!(
            topics.contains_key(&format!("$SYS/broker/{t}")),
            "{t} in {topics:?}"
        );
    }
    assert_eq!(topics["$SYS/broker/clients/connected"], "1");
    assert_eq!(topics["$SYS/broker/subscriptions/count"], "1");
}

#[test]
fn overlapping_subscriptions_deliver_once_at_highest_qos() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut s, _) = Raw::connect(addr, "overlap", true, 30);
    s.subscribe("a/#", QoS::AtMostOnce);
    s.subscribe("a/+", QoS::ExactlyOnce);
    // Re-subscribing replaces the QoS.
    assert_eq!(
        s.subscribe("a/b", QoS::AtMostOnce),
        Sent::SubAck(1, vec![0])
    );
    assert_eq!(
        s.subscribe("a/b", QoS::AtLeastOnce),
        Sent::SubAck(1, vec![1])
    );
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    p.publish("a/b", b"x", QosPid::ExactlyOnce(pid(3)), false);
    let got = s.recv().unwrap();
    assert!(
        matches!(got, Sent::Publish(Publication { qos: 2, .. })),
        "{got:?}"
    );
    assert_eq!(s.recv_within(QUIET), None, "once");
    // Unsubscribe.
    let filters = [
        wren_codec::TopicFilter::new("a/+").unwrap(),
        wren_codec::TopicFilter::new("a/#").unwrap(),
    ];
    s.send(&Packet::Unsubscribe(wren_codec::Unsubscribe {
        packet_id: pid(5),
        properties: wren_codec::NO_PROPERTIES,
        filters: wren_codec::List::new(&filters),
    }));
    assert_eq!(s.recv(), Some(Sent::UnsubAck(5, vec![])));
    p.publish("a/b", b"y", QosPid::AtMostOnce, false);
    assert!(
        matches!(s.recv(), Some(Sent::Publish(Publication { qos: 0, .. }))),
        "a/b at QoS 1 remains"
    );
    p.publish("a/c", b"z", QosPid::AtMostOnce, false);
    assert_eq!(s.recv_within(QUIET), None);
}

#[test]
fn client_id_rules() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut c, ack) = Raw::connect(addr, "", false, 30);
    assert_eq!(
        ack,
        Sent::connack(false, 2),
        "empty id without clean session"
    );
    assert!(c.is_closed());
    let (_c, ack) = Raw::connect(addr, "", true, 30);
    assert_eq!(ack, Sent::connack(false, 0), "assigned an id");
    // A 3.1 (MQIsdp) CONNECT.
    let mut c = Raw::tcp(addr);
    c.write(&[
        0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x1e, 0x00,
        0x04, b'v', b'3', b'1', b'!',
    ]);
    assert_eq!(c.recv(), Some(Sent::connack(false, 0)));
    assert_eq!(broker.connected_clients(), 2);
}

#[test]
fn unacceptable_protocol_level() {
    let broker = start(|_| {});
    let mut c = Raw::tcp(broker.local_addr());
    // "MQTT" level 6.
    c.write(&[
        0x10, 0x0e, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x1e, 0x00, 0x02, b'i',
        b'd',
    ]);
    assert_eq!(c.recv(), Some(Sent::connack(false, 1)));
    assert!(c.is_closed());
}

#[test]
fn second_connect_is_a_protocol_violation() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut c, _) = Raw::connect(addr, "twice", true, 30);
    c.write(&[
        0x10, 0x0f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x03, b'a',
        b'b', b'c',
    ]);
    assert!(c.is_closed());
    broker_still_works(addr);
}

#[test]
fn malformed_packets_close_only_that_connection() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut bystander, _) = Raw::connect(addr, "bystander", true, 30);
    bystander.subscribe("ok", QoS::AtMostOnce);
    let cases: &[(&str, &[u8])] = &[
        ("QoS 3 publish", &[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]),
        ("invalid UTF-8 topic", &[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28]),
        ("wildcard in topic name", &[0x30, 0x03, 0x00, 0x01, b'#']),
        ("reserved packet type 0", &[0x00, 0x00]),
        (
            "bad SUBSCRIBE flags",
            &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
        ),
        ("SUBSCRIBE without filters", &[0x82, 0x02, 0x00, 0x01]),
        ("varint too long", &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ("packet id 0", &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00]),
        ("PINGREQ with body", &[0xC0, 0x01, 0x00]),
    ];
    for (what, bytes) in cases {
        let (mut c, _) = Raw::connect(addr, "bad", true, 30);
        c.write(bytes);
        assert!(c.is_closed(), "{what}: connection closed");
    }
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    p.publish("ok", b"fine", QosPid::AtMostOnce, false);
    assert!(
        matches!(bystander.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"fine")
    );
}

#[test]
fn server_only_packets_close_the_connection() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    for (what, bytes) in [
        ("CONNACK", &[0x20u8, 0x02, 0x00, 0x00][..]),
        ("SUBACK", &[0x90, 0x03, 0x00, 0x01, 0x00]),
        ("UNSUBACK", &[0xB0, 0x02, 0x00, 0x01]),
        ("PINGRESP", &[0xD0, 0x00]),
    ] {
        let (mut c, _) = Raw::connect(addr, "client", true, 30);
        c.write(bytes);
        assert!(c.is_closed(), "{what}");
    }
    broker_still_works(addr);
}

#[test]
fn oversize_packet_refused_from_its_header() {
    let broker = start(|c| c.max_packet_size = 1024);
    let addr = broker.local_addr();
    let (mut c, _) = Raw::connect(addr, "big", true, 30);
    // A PUBLISH header announcing 2000 bytes; the body never comes.
    c.write(&[0x30, 0xD0, 0x0F]);
    assert!(
        c.closed_within(Duration::from_secs(2)),
        "closed before the body arrives"
    );
    // Just under the limit passes.
    let (mut s, _) = Raw::connect(addr, "s", true, 30);
    s.subscribe("t", QoS::AtMostOnce);
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    p.publish("t", &[7u8; 1000], QosPid::AtMostOnce, false);
    assert!(
        matches!(s.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload.len() == 1000)
    );
}

#[test]
fn pre_connect_limits() {
    let broker = start(|c| c.connect_timeout = 1);
    let addr = broker.local_addr();
    // A CONNECT header announcing 1 MB (above max_connect_packet_size).
    let mut c = Raw::tcp(addr);
    c.write(&[0x10, 0x80, 0x80, 0x40]);
    assert!(c.closed_within(Duration::from_secs(2)));
    // A first packet that is not CONNECT.
    let mut c = Raw::tcp(addr);
    c.write(&[0x30, 0x05, 0x00, 0x01, b'a', b'h', b'i']);
    assert!(c.closed_within(Duration::from_secs(2)));
    // Nothing at all: the connect timeout.
    let mut c = Raw::tcp(addr);
    let t0 = Instant::now();
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(t0.elapsed() >= Duration::from_millis(900));
    broker_still_works(addr);
}

#[test]
fn inflight_window_and_queue_limits() {
    let broker = start(|c| {
        c.max_inflight_messages = 2;
        c.max_queued_messages = 3;
    });
    let addr = broker.local_addr();
    let (mut s, _) = Raw::connect(addr, "slow", true, 30);
    s.subscribe("w", QoS::AtLeastOnce);
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    for i in 1..=8u16 {
        p.publish("w", &[i as u8], QosPid::AtLeastOnce(pid(i)), false);
        assert_eq!(p.recv(), Some(Sent::PubAck(i, 0)));
    }
    // 2 in flight, 3 queued, 3 dropped.
    let mut got = Vec::new();
    while let Some(Sent::Publish(Publication { payload, pid, .. })) = s.recv_within(QUIET) {
        got.push(payload[0]);
        s.puback(pid);
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert_eq!(broker.stats().publish_dropped, 3);
}

#[test]
fn stuck_subscriber_does_not_grow_memory() {
    let broker = start(|c| {
        c.max_outgoing_bytes = 64 * 1024;
        c.max_packet_size = 1024 * 1024;
    });
    let addr = broker.local_addr();
    // Subscribes, then never reads.
    let (mut stuck, _) = Raw::connect(addr, "stuck", true, 60);
    stuck.subscribe("flood", QoS::AtMostOnce);
    let (mut p, _) = Raw::connect(addr, "flooder", true, 60);
    let payload = vec![0u8; 64 * 1024];
    for _ in 0..400 {
        p.publish("flood", &payload, QosPid::AtMostOnce, false);
    }
    p.send(&Packet::PingReq);
    assert_eq!(p.recv_within(Duration::from_secs(10)), Some(Sent::PingResp));
    assert!(broker.stats().publish_dropped > 0, "{:?}", broker.stats());
    broker_still_works(addr);
}

/// A message of `len` bytes whose first four are its sequence number.
fn numbered(i: u32, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.max(4)];
    m[..4].copy_from_slice(&i.to_be_bytes());
    m
}

/// Publish `n` numbered messages from a thread (its writes block while the broker holds it back).
fn flood(
    addr: std::net::SocketAddr,
    id: &str,
    n: u32,
    len: usize,
    qos: QoS,
) -> std::thread::JoinHandle<Duration> {
    let (mut p, _) = Raw::connect(addr, id, true, 60);
    std::thread::spawn(move || {
        let t0 = Instant::now();
        for i in 0..n {
            let qos_pid = match qos {
                QoS::AtMostOnce => QosPid::AtMostOnce,
                QoS::AtLeastOnce => QosPid::AtLeastOnce(pid((i % 60_000 + 1) as u16)),
                QoS::ExactlyOnce => QosPid::ExactlyOnce(pid((i % 60_000 + 1) as u16)),
            };
            p.publish("flood", &numbered(i, len), qos_pid, false);
        }
        // Everything read and handled by the broker once this answers.
        p.send(&Packet::PingReq);
        loop {
            match p.recv_within(Duration::from_secs(30)) {
                Some(Sent::PingResp) => return t0.elapsed(),
                Some(_) => {}
                None => panic!("no PINGRESP"),
            }
        }
    })
}

/// Receive numbered messages until `n` or a quiet spell; acknowledges QoS 1.
fn receive_numbered(s: &mut Raw, n: u32) -> Vec<u32> {
    let mut got = Vec::new();
    while got.len() < n as usize {
        match s.recv_within(Duration::from_secs(3)) {
            Some(Sent::Publish(Publication {
                payload, qos, pid, ..
            })) => {
                got.push(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                if qos == 1 {
                    s.puback(pid);
                }
            }
            Some(other) => panic!("{other:?}"),
            None => break,
        }
    }
    got
}

/// Nothing dropped: all `n` numbered messages arrived, in order.
fn assert_whole_and_in_order(broker: &wren_broker::ServerHandle, got: &[u32], n: u32) {
    assert_eq!(broker.stats().publish_dropped, 0, "{:?}", broker.stats());
    assert_eq!(got.len(), n as usize);
    assert!(got.iter().copied().eq(0..n), "in order");
}

#[test]
fn a_slow_qos0_subscriber_paces_its_publisher_instead_of_losing_messages() {
    // 20 MB to a subscriber that starts reading late, through a 64 KiB limit: more than the
    // kernel's socket buffers and the limit hold, so without backpressure most would be dropped.
    let broker = start(|c| c.max_outgoing_bytes = 64 * 1024);
    let addr = broker.local_addr();
    let (mut s, _) = Raw::connect(addr, "slow", true, 60);
    s.subscribe("flood", QoS::AtMostOnce);
    let n = 20_000;
    let publisher = flood(addr, "fast", n, 1024, QoS::AtMostOnce);
    std::thread::sleep(Duration::from_millis(500));
    let got = receive_numbered(&mut s, n);
    publisher.join().unwrap();
    assert_whole_and_in_order(&broker, &got, n);
}

#[test]
fn a_qos1_flood_reaches_a_slower_subscriber_whole() {
    // 5,000 QoS 1 messages as fast as the socket takes them, to a subscriber that acknowledges
    // each as it reads it, through a window of 10 and a queue of 100.
    let broker = start(|c| {
        c.max_inflight_messages = 10;
        c.max_queued_messages = 100;
    });
    let addr = broker.local_addr();
    let (mut s, _) = Raw::connect(addr, "slow", true, 60);
    s.subscribe("flood", QoS::AtLeastOnce);
    let n = 5_000;
    let publisher = flood(addr, "fast", n, 16, QoS::AtLeastOnce);
    let got = receive_numbered(&mut s, n);
    publisher.join().unwrap();
    assert_whole_and_in_order(&broker, &got, n);
}

#[test]
fn a_stuck_subscriber_holds_its_publisher_back_only_briefly() {
    let broker = start(|c| c.max_outgoing_bytes = 64 * 1024);
    let addr = broker.local_addr();
    // Subscribes, then never reads.
    let (mut stuck, _) = Raw::connect(addr, "stuck", true, 60);
    stuck.subscribe("flood", QoS::AtMostOnce);
    let (mut healthy, _) = Raw::connect(addr, "healthy", true, 60);
    healthy.subscribe("flood", QoS::AtMostOnce);
    let n = 20_000;
    let publisher = flood(addr, "fast", n, 1024, QoS::AtMostOnce);
    let got = receive_numbered(&mut healthy, n);
    let took = publisher.join().unwrap();
    // Held back for one patience check (1 s) without progress, then the stuck one is stalled:
    // its messages are dropped and everyone else goes on.
    assert!(
        took < Duration::from_secs(4),
        "publisher held back for {took:?}"
    );
    assert_eq!(got.len(), n as usize, "the healthy subscriber lost nothing");
    assert!(broker.stats().publish_dropped > 0, "{:?}", broker.stats());
    broker_still_works(addr);
}

#[test]
fn a_subscriber_too_slow_to_keep_up_does_not_pace_its_publisher() {
    // The default limits (1 MiB, max_publisher_hold_ms 2 s): a subscriber that cannot take
    // 2 MiB within 2 s holds the publisher back, then is dropped to for a while.
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut slow, _) = Raw::connect(addr, "slow", true, 60);
    slow.subscribe("flood", QoS::AtMostOnce);
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let reading = reading.clone();
        let mut stream = slow.stream.try_clone().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            // About 320 KB/s: steady progress, but 2 MiB takes over 6 s.
            let mut buf = [0u8; 16 * 1024];
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = stream.read(&mut buf);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // 100 MB: at its pace the slow subscriber would take over five minutes.
    let took = flood(addr, "fast", 100_000, 1024, QoS::AtMostOnce)
        .join()
        .unwrap();
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        took < Duration::from_secs(10),
        "publisher held back for {took:?}"
    );
    assert!(broker.stats().publish_dropped > 0, "{:?}", broker.stats());
    drop(slow);
    reader.join().unwrap();
}

#[test]
fn graceful_shutdown_closes_connections() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (watch, _) = Mq::connect(addr, "watch", true);
    watch.subscribe("w", RQoS::AtMostOnce);
    let (mut c, _) = Raw::connect_with(addr, "c", true, 30, Some(("w", b"will")));
    broker.shutdown();
    assert!(c.is_closed());
    assert!(
        watch.next_publish_within(QUIET).is_none(),
        "no wills on shutdown"
    );
    assert!(!wren_broker::testing::listening(addr), "listener closed");
}

/// Wait until at least `n` connections hibernate.
fn wait_hibernating(broker: &wren_broker::ServerHandle, n: usize) {
    let end = Instant::now() + WAIT;
    while broker.hibernating_connections() < n {
        assert!(
            Instant::now() < end,
            "{} hibernating, expected {n}",
            broker.hibernating_connections()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hibernating_connections_wake_for_messages_timeouts_hang_ups_and_takeover() {
    let broker = start(|c| c.hibernate_after_ms = 50);
    let addr = broker.local_addr();
    // A subscriber that goes quiet after a long enough pause hibernates; so does a client that
    // has just connected.
    let (mut sub, _) = Raw::connect(addr, "sub", true, 30);
    assert!(matches!(
        sub.subscribe("h/#", QoS::AtLeastOnce),
        Sent::SubAck(..)
    ));
    std::thread::sleep(Duration::from_millis(100));
    sub.send(&Packet::PingReq);
    assert_eq!(sub.recv(), Some(Sent::PingResp));
    let (mut sleepy, _) = Raw::connect_with(addr, "sleepy", true, 1, Some(("h/will", b"ka")));
    let (hang_up, _) = Raw::connect_with(addr, "hang-up", true, 30, Some(("h/will", b"eof")));
    let (mut twin, _) = Raw::connect(addr, "twin", true, 30);
    wait_hibernating(&broker, 4);
    // A message for a hibernating subscriber wakes it, at QoS 1 with its acknowledgement.
    let (publisher, _) = Mq::connect(addr, "pub", true);
    publisher.publish("h/x", RQoS::AtLeastOnce, false, b"hello");
    match sub.recv() {
        Some(Sent::Publish(Publication {
            topic,
            payload,
            qos: 1,
            pid,
            ..
        })) => {
            assert_eq!((topic.as_str(), &payload[..]), ("h/x", &b"hello"[..]));
            sub.puback(pid);
        }
        other => panic!("{other:?}"),
    }
    // Its socket closing wakes it: the will goes out.
    drop(hang_up);
    assert!(
        matches!(sub.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"eof")
    );
    // The keep-alive runs out while it hibernates: closed, will published.
    assert!(sleepy.closed_within(Duration::from_secs(4)));
    assert!(
        matches!(sub.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"ka")
    );
    // Takeover of a hibernating connection closes it.
    let (mut twin2, connack) = Raw::connect(addr, "twin", true, 30);
    assert_eq!(connack, Sent::connack(false, 0));
    assert!(twin.closed_within(WAIT));
    // Shutdown closes hibernating connections too (the new twin hibernates once connected).
    wait_hibernating(&broker, 1);
    broker.shutdown();
    assert!(twin2.closed_within(WAIT));
    assert!(sub.closed_within(WAIT));
}

#[test]
fn hibernation_off_keeps_every_connection_live() {
    let broker = start(|c| c.hibernate_after_ms = 0);
    let addr = broker.local_addr();
    let (mut c, _) = Raw::connect(addr, "c", true, 30);
    std::thread::sleep(QUIET);
    assert_eq!(broker.hibernating_connections(), 0);
    c.send(&Packet::PingReq);
    assert_eq!(c.recv(), Some(Sent::PingResp));
}

/// A client's packets are handled in the order they reach the broker, across connections, also
/// when the first comes from a hibernating connection: a SUBSCRIBE written just before another
/// client's PUBLISH (without waiting for the SUBACK, as test suites and request/response clients
/// do) matches it. Found by the Paho interoperability suite (test_request_response), where a
/// revived connection's task was queued behind tasks woken by the same reactor turn. (With one
/// executor thread, the default: with more, connections are handled in parallel and their
/// relative order is up to the threads, as MQTT allows.)
#[test]
fn subscribe_from_a_hibernating_client_is_not_overtaken_by_a_later_publish() {
    let broker = start(|c| {
        c.threads = 1;
        // A sleeping thread: both packets arrive within one reactor turn.
        c.busy_poll_us = 0;
    });
    let addr = broker.local_addr();
    for round in 0..40 {
        // The publisher is busy (after subscribing it hibernates, but a PINGREQ right after
        // revives it after a short quiet spell: live), the subscriber has just connected (it
        // hibernates).
        let (mut publ, _) = Raw::connect(addr, &format!("order-pub-{round}"), true, 30);
        assert!(matches!(
            publ.subscribe("order/elsewhere", QoS::AtMostOnce),
            Sent::SubAck(..)
        ));
        publ.send(&Packet::PingReq);
        assert_eq!(publ.recv(), Some(Sent::PingResp));
        let (mut sub, _) = Raw::connect(addr, &format!("order-sub-{round}"), true, 30);
        wait_hibernating(&broker, 1);
        let topic = format!("order/{round}");
        let subs = [Subscription {
            filter: TopicFilter::new(&topic).unwrap(),
            options: SubscriptionOptions::qos(QoS::AtMostOnce),
        }];
        sub.send(&Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            properties: NO_PROPERTIES,
            subscriptions: wren_codec::List::new(&subs),
        }));
        publ.publish(&topic, b"after the subscribe", QosPid::AtMostOnce, false);
        assert!(matches!(sub.recv(), Some(Sent::SubAck(..))));
        match sub.recv_within(Duration::from_secs(2)) {
            Some(Sent::Publish(Publication { payload, .. })) => {
                assert_eq!(payload, b"after the subscribe")
            }
            other => panic!("round {round}: the PUBLISH sent after the SUBSCRIBE: {other:?}"),
        }
        drop((sub, publ));
        let end = Instant::now() + WAIT;
        while broker.connected_clients() > 0 {
            assert!(Instant::now() < end);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// #18: several listeners, each with its own rules (`per_listener_settings`), and the default
/// local-only mode on both loopback addresses.
#[test]
fn listeners_and_their_rules() {
    let listener = |anonymous| wren_broker::Listener {
        bind: "127.0.0.1".into(),
        port: 0,
        allow_anonymous: anonymous,
        ..wren_broker::Listener::default()
    };
    let broker = start(|c| {
        c.per_listener_settings = true;
        c.listener = vec![listener(Some(true)), listener(Some(false)), listener(None)];
    });
    let addrs = broker.local_addrs().to_vec();
    assert_eq!(addrs.len(), 3);
    let (_open, ack) = Raw::connect(addrs[0], "open", true, 30);
    assert_eq!(ack, Sent::connack(false, 0));
    let (mut closed, ack) = Raw::connect(addrs[1], "closed", true, 30);
    assert_eq!(ack, Sent::connack(false, 5), "allow_anonymous false");
    assert!(closed.is_closed());
    let (_local, ack) = Raw::connect(addrs[2], "local", true, 30);
    assert_eq!(
        ack,
        Sent::connack(false, 0),
        "loopback only: anonymous by default"
    );
    assert_eq!(broker.connected_clients(), 2);

    // No listener, no bind: local-only mode, 127.0.0.1 and (where the machine has it) ::1.
    let local = start(|c| c.bind = String::new());
    let addrs = local.local_addrs().to_vec();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    assert!(addrs.iter().any(|a| a.is_ipv4()), "{addrs:?}");
    for (i, addr) in addrs.into_iter().enumerate() {
        let (_c, ack) = Raw::connect(addr, &format!("local-{i}"), true, 30);
        assert_eq!(ack, Sent::connack(false, 0), "{addr}");
    }
}
