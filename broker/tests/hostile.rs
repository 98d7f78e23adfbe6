//! Hostile and malformed clients over real TCP on 127.0.0.1: slowloris and idle sockets, huge
//! Remaining Lengths, packets out of order, invalid strings and flags, 5.0 reason codes, floods
//! of QoS 2, filters, user properties and takeovers (Mosquitto's CVE list in
//! `mosquitto-conventions.md`). Each attack is bounded in count and time; each test checks what
//! the broker did to the attacker and that other clients are still served.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use wren_broker::assert_sent;
use wren_broker::testing::raw::{frame as pkt, string as s, varint};
use wren_codec::{Connect, Packet, ProtocolVersion, QoS, QosPid, properties::NO_PROPERTIES};

// ---------------------------------------------------------------------------------------------
// Hand-built packets (the codec refuses to encode most of what is sent here)
// ---------------------------------------------------------------------------------------------

/// A 3.1.1-shaped CONNECT: protocol name and level, flags, keep-alive 30, then `rest`.
fn connect311(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    pkt(
        0x10,
        &[s(name), vec![level, flags, 0, 30], rest.to_vec()].concat(),
    )
}

/// A 5.0 CONNECT (clean start) with raw property bytes and client id `id5`.
fn connect5(props: &[u8]) -> Vec<u8> {
    let mut b = s(b"MQTT");
    b.extend_from_slice(&[5, 0x02, 0, 30]);
    varint(props.len(), &mut b);
    b.extend_from_slice(props);
    b.extend_from_slice(&s(b"id5"));
    pkt(0x10, &b)
}

/// A 5.0 QoS 0 PUBLISH with raw property bytes.
fn publish5(topic: &[u8], props: &[u8]) -> Vec<u8> {
    let mut b = s(topic);
    varint(props.len(), &mut b);
    b.extend_from_slice(props);
    b.extend_from_slice(b"payload");
    pkt(0x30, &b)
}

/// A 3.1.1 SUBSCRIBE (packet id 1) of `filters`, each at options byte `options`.
fn subscribe<F: AsRef<str>>(filters: &[F], options: u8) -> Vec<u8> {
    let mut b = vec![0, 1];
    for f in filters {
        b.extend_from_slice(&s(f.as_ref().as_bytes()));
        b.push(options);
    }
    pkt(0x82, &b)
}

/// `n` User Properties `k`=`v` (7 bytes each).
fn user_properties(n: usize) -> Vec<u8> {
    let one = [&[0x26u8][..], &s(b"k"), &s(b"v")].concat();
    one.repeat(n)
}

/// A connected 5.0 raw client.
fn raw5(addr: SocketAddr, id: &str) -> Raw {
    let mut c = Raw::tcp(addr).v5();
    c.send(&Packet::Connect(Connect {
        protocol: ProtocolVersion::V5,
        bridge: false,
        clean_start: true,
        keep_alive: 30,
        client_id: id,
        will: None,
        username: None,
        password: None,
        properties: NO_PROPERTIES,
    }));
    assert_eq!(
        c.recv().map(Sent::without_properties),
        Some(Sent::connack(false, 0)),
        "{id} connects"
    );
    c
}

/// Every packet the broker sends before it closes the connection (`None` if it stays open).
fn answer_then_close(c: &mut Raw) -> Option<Vec<Sent>> {
    let mut got = Vec::new();
    while let Some(p) = c.recv() {
        got.push(p);
    }
    c.closed_within(Duration::from_millis(200)).then_some(got)
}

// ---------------------------------------------------------------------------------------------
// Before CONNECT
// ---------------------------------------------------------------------------------------------

#[test]
fn slowloris_connect_is_cut_by_the_connect_timeout() {
    let broker = start(|c| c.connect_timeout = 1);
    let addr = broker.local_addr();
    // A CONNECT with a 200-byte client id, one byte every 100 ms: it would take 21 s to finish.
    let connect = connect311(b"MQTT", 4, 0x02, &s([b'x'; 200]));
    let mut c = Raw::tcp(addr);
    let t0 = Instant::now();
    let mut sent = 0;
    for b in &connect {
        c.write(&[*b]);
        sent += 1;
        if c.closed_within(Duration::from_millis(100)) {
            break;
        }
    }
    let took = t0.elapsed();
    assert!(sent < connect.len(), "cut before the CONNECT completed");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut by the 1 s connect timeout (activity does not extend it): {took:?}"
    );
    // A CONNECT announcing 60 KiB (under max_connect_packet_size) that sends 10 bytes.
    let mut c = Raw::tcp(addr);
    let t0 = Instant::now();
    c.write(&[0x10, 0x80, 0xE0, 0x03, 0x00, 0x04, b'M', b'Q', b'T', b'T']);
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    broker_still_works(addr);
}

#[test]
fn idle_connections_are_closed_and_do_not_block_others() {
    let broker = start(|c| c.connect_timeout = 1);
    let addr = broker.local_addr();
    let t0 = Instant::now();
    let mut idle: Vec<Raw> = (0..200).map(|_| Raw::tcp(addr)).collect();
    // Served while 200 sockets sit there saying nothing (no timing bound here: the other
    // tests of this file run alongside on two cores).
    broker_still_works(addr);
    let closed = idle
        .iter_mut()
        .filter_map(|c| c.closed_within(Duration::from_secs(3)).then_some(()))
        .count();
    assert_eq!(closed, 200, "every silent connection is closed");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert_eq!(broker.connected_clients(), 0);
    broker_still_works(addr);
}

#[test]
fn huge_remaining_length_is_refused_from_the_header() {
    // A long connect timeout, so a close within 1 s is the size check and not the timer.
    let broker = start(|c| c.connect_timeout = 10);
    let addr = broker.local_addr();
    let quick = Duration::from_secs(1);
    for (what, bytes) in [
        (
            "CONNECT of 268,435,455 bytes",
            &[0x10u8, 0xFF, 0xFF, 0xFF, 0x7F][..],
        ),
        (
            "PUBLISH of 268,435,455 bytes first",
            &[0x30, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            "5-byte Remaining Length",
            &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
    ] {
        let mut c = Raw::tcp(addr);
        c.write(bytes);
        assert_eq!(c.recv_within(quick), None, "{what}: no answer");
        assert!(c.closed_within(quick), "{what}: closed at once");
    }
    // Connected (3.1.1): closed; 5.0: DISCONNECT 0x95 Packet too large.
    let (mut c, _) = Raw::connect(addr, "big311", true, 30);
    c.write(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
    assert!(c.closed_within(quick));
    let mut c = raw5(addr, "big5");
    c.write(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
    assert!(matches!(
        answer_then_close(&mut c).as_deref(),
        Some([Sent::Disconnect { code: 0x95, .. }])
    ));
    broker_still_works(addr);
}

#[test]
fn packets_before_connect_close_without_an_answer() {
    let broker = start(|c| c.connect_timeout = 10);
    let addr = broker.local_addr();
    for (what, bytes) in [
        ("SUBSCRIBE", subscribe(&["a"], 0)),
        ("PINGREQ", vec![0xC0, 0x00]),
        ("DISCONNECT", vec![0xE0, 0x00]),
        ("AUTH", vec![0xF0, 0x00]),
        ("PUBREL", vec![0x62, 0x02, 0x00, 0x01]),
        ("CONNACK", vec![0x20, 0x02, 0x00, 0x00]),
    ] {
        let mut c = Raw::tcp(addr);
        c.write(&bytes);
        assert_eq!(answer_then_close(&mut c), Some(vec![]), "{what} first");
    }
    assert_eq!(broker.connected_clients(), 0);
    broker_still_works(addr);
}

#[test]
fn bad_connect_packets_are_refused() {
    let broker = start(|c| c.connect_timeout = 10);
    let addr = broker.local_addr();
    let id = s(b"id");
    let refused_with_0x01 = [
        ("\"MQTT\" level 3", connect311(b"MQTT", 3, 0x02, &id)),
        // The bridge bit (Mosquitto's try_private) on a level the name does not speak; on
        // one it speaks (0x84) it is a bridge, accepted (`bridge_bit_on_a_known_level_is_accepted`).
        (
            "\"MQTT\" level 0x83 (bridge bit on 3)",
            connect311(b"MQTT", 0x83, 0x02, &id),
        ),
        ("\"MQIsdp\" level 4", connect311(b"MQIsdp", 4, 0x02, &id)),
        (
            "\"MQIsdp\" level 0x84 (bridge bit on 4)",
            connect311(b"MQIsdp", 0x84, 0x02, &id),
        ),
    ];
    for (what, bytes) in refused_with_0x01 {
        let mut c = Raw::tcp(addr);
        c.write(&bytes);
        assert_eq!(
            answer_then_close(&mut c),
            Some(vec![Sent::connack(false, 1)]),
            "{what}"
        );
    }
    let will = |topic: &[u8]| [s(b"id"), s(topic), s(b"bye")].concat();
    let closed_silently = [
        // [MQTT-3.1.2-1] (the same id in 3.1.1 and 5.0): an unknown protocol name may be closed
        // without CONNACK.
        ("protocol name \"XYZW\"", connect311(b"XYZW", 4, 0x02, &id)),
        (
            "CONNECT header flags 0x1",
            pkt(0x11, &connect311(b"MQTT", 4, 2, &id)[2..]),
        ),
        ("reserved flag bit", connect311(b"MQTT", 4, 0x03, &id)),
        (
            "password without username",
            connect311(b"MQTT", 4, 0x42, &[s(b"id"), s(b"pw")].concat()),
        ),
        (
            "client id invalid UTF-8",
            connect311(b"MQTT", 4, 0x02, &s(b"\xC3\x28")),
        ),
        (
            "client id with U+0000",
            connect311(b"MQTT", 4, 0x02, &s(b"a\0b")),
        ),
        (
            "client id surrogate",
            connect311(b"MQTT", 4, 0x02, &s(b"\xED\xA0\x80")),
        ),
        (
            "username with U+0000",
            connect311(b"MQTT", 4, 0x82, &[s(b"id"), s(b"u\0")].concat()),
        ),
        (
            "username invalid UTF-8",
            connect311(b"MQTT", 4, 0x82, &[s(b"id"), s(b"\xFF")].concat()),
        ),
        (
            "will topic with '#'",
            connect311(b"MQTT", 4, 0x06, &will(b"a/#")),
        ),
        (
            "will topic with '+'",
            connect311(b"MQTT", 4, 0x06, &will(b"+")),
        ),
        (
            "will topic invalid UTF-8",
            connect311(b"MQTT", 4, 0x06, &will(b"\xC3\x28")),
        ),
        (
            "will topic surrogate",
            connect311(b"MQTT", 4, 0x06, &will(b"\xED\xBF\xBF")),
        ),
        ("empty will topic", connect311(b"MQTT", 4, 0x06, &will(b""))),
        ("will QoS 3", connect311(b"MQTT", 4, 0x1E, &will(b"w"))),
        (
            "will QoS without will flag",
            connect311(b"MQTT", 4, 0x0A, &id),
        ),
        (
            "will retain without will flag",
            connect311(b"MQTT", 4, 0x22, &id),
        ),
        (
            "bytes after the payload",
            connect311(b"MQTT", 4, 0x02, &[id.clone(), vec![1, 2]].concat()),
        ),
    ];
    for (what, bytes) in closed_silently {
        let mut c = Raw::tcp(addr);
        c.write(&bytes);
        assert_eq!(answer_then_close(&mut c), Some(vec![]), "{what}");
    }
    assert_eq!(broker.connected_clients(), 0);
    broker_still_works(addr);
}

/// The bridge bit (Mosquitto's try_private) on the level the name speaks: "MQTT" 0x84 and
/// "MQIsdp" 0x83 are accepted (the client is a bridge), and the connection stays open.
#[test]
fn bridge_bit_on_a_known_level_is_accepted() {
    let broker = start(|c| c.connect_timeout = 10);
    let addr = broker.local_addr();
    for (what, bytes) in [
        (
            "\"MQTT\" level 0x84",
            connect311(b"MQTT", 0x84, 0x02, &s(b"br4")),
        ),
        (
            "\"MQIsdp\" level 0x83",
            connect311(b"MQIsdp", 0x83, 0x02, &s(b"br3")),
        ),
    ] {
        let mut c = Raw::tcp(addr);
        c.write(&bytes);
        assert_eq!(c.recv(), Some(Sent::connack(false, 0)), "{what}");
        assert!(!c.closed_within(Duration::from_millis(200)), "{what}");
    }
    broker_still_works(addr);
}

// ---------------------------------------------------------------------------------------------
// After CONNECT
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_strings_filters_and_flags_close_only_that_connection() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut bystander, _) = Raw::connect(addr, "bystander", true, 30);
    assert_eq!(
        bystander.subscribe("ok", QoS::AtMostOnce),
        Sent::SubAck(1, vec![0])
    );
    let sub = |f: &[u8]| pkt(0x82, &[vec![0, 1], s(f), vec![0]].concat());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("topic with U+0000", pkt(0x30, &s(b"a\0b"))),
        ("topic surrogate", pkt(0x30, &s(b"\xED\xA0\x80"))),
        ("topic with '+'", pkt(0x30, &s(b"a/+"))),
        ("empty topic (3.1.1)", pkt(0x30, &s(b""))),
        ("filter a/#/b", sub(b"a/#/b")),
        ("filter a+", sub(b"a+")),
        ("filter #/a", sub(b"#/a")),
        ("empty filter", sub(b"")),
        ("filter with U+0000", sub(b"a\0")),
        ("filter invalid UTF-8", sub(b"\xFF")),
        (
            "SUBSCRIBE QoS 3",
            pkt(0x82, &[vec![0, 1], s(b"a"), vec![3]].concat()),
        ),
        (
            "SUBSCRIBE reserved option bits",
            pkt(0x82, &[vec![0, 1], s(b"a"), vec![4]].concat()),
        ),
        (
            "SUBSCRIBE packet id 0",
            pkt(0x82, &[vec![0, 0], s(b"a"), vec![0]].concat()),
        ),
        ("UNSUBSCRIBE without filters", pkt(0xA2, &[0, 1])),
        (
            "UNSUBSCRIBE header flags 0",
            pkt(0xA0, &[vec![0, 1], s(b"a")].concat()),
        ),
        (
            "UNSUBSCRIBE bad filter",
            pkt(0xA2, &[vec![0, 1], s(b"a/#/b")].concat()),
        ),
        ("PUBREL header flags 0", pkt(0x60, &[0, 1])),
        ("PUBACK header flags 2", pkt(0x42, &[0, 1])),
        (
            "DUP on QoS 0",
            pkt(0x38, &[s(b"ok"), b"dup".to_vec()].concat()),
        ),
        (
            "QoS 2 packet id 0",
            pkt(0x34, &[s(b"ok"), vec![0, 0]].concat()),
        ),
        ("PUBACK of 3 bytes", pkt(0x40, &[0, 1, 0])),
        ("DISCONNECT header flags 1", vec![0xE1, 0x00]),
        ("AUTH in 3.1.1", vec![0xF0, 0x00]),
    ];
    for (what, bytes) in cases {
        let (mut c, _) = Raw::connect(addr, "bad", true, 30);
        c.write(&bytes);
        assert_eq!(answer_then_close(&mut c), Some(vec![]), "{what}");
    }
    // Acknowledgements of unknown ids are answered or ignored, never fatal.
    let (mut c, _) = Raw::connect(addr, "acks", true, 30);
    c.write(&pkt(0x62, &[0, 9]));
    assert_eq!(c.recv(), Some(Sent::PubComp(9, 0)));
    c.write(&pkt(0x50, &[0, 9]));
    assert_eq!(c.recv(), Some(Sent::PubRel(9, 0)));
    c.write(&[pkt(0x40, &[0, 9]), pkt(0x70, &[0, 9]), vec![0xC0, 0]].concat());
    assert_eq!(c.recv(), Some(Sent::PingResp));
    let (mut p, _) = Raw::connect(addr, "p", true, 30);
    p.publish("ok", b"fine", QosPid::AtMostOnce, false);
    assert!(
        matches!(bystander.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"fine")
    );
    assert_eq!(
        bystander.recv_within(QUIET),
        None,
        "nothing from the attackers"
    );
}

#[test]
fn v5_violations_get_the_right_disconnect_reason() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("Topic Alias 0", publish5(b"t", &[0x23, 0, 0]), 0x82),
        (
            "Payload Format Indicator twice",
            publish5(b"t", &[0x01, 0, 0x01, 0]),
            0x82,
        ),
        (
            "Session Expiry in PUBLISH",
            publish5(b"t", &[0x11, 0, 0, 0, 1]),
            0x81,
        ),
        (
            "Response Topic with '#'",
            publish5(b"t", &[0x08, 0, 1, b'#']),
            0x82,
        ),
        ("empty topic without alias", publish5(b"", &[]), 0x82),
        // [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier.
        (
            "Subscription Identifier in PUBLISH",
            publish5(b"t", &[0x0B, 5]),
            0x82,
        ),
        // CVE-2021-28166: server-only packets.
        ("CONNACK", vec![0x20, 0x03, 0x00, 0x00, 0x00], 0x82),
        ("SUBACK", vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x00], 0x82),
        (
            "AUTH without enhanced authentication",
            vec![0xF0, 0x00],
            0x82,
        ),
        ("AUTH re-authenticate", vec![0xF0, 0x02, 0x19, 0x00], 0x82),
        (
            "Subscription Identifier 0",
            pkt(0x82, &[vec![0, 1, 2, 0x0B, 0], s(b"a"), vec![0]].concat()),
            0x82,
        ),
        (
            "SUBSCRIBE reserved option bits",
            pkt(0x82, &[vec![0, 1, 0], s(b"a"), vec![0xC0]].concat()),
            0x81,
        ),
        (
            "Session Expiry in UNSUBSCRIBE",
            pkt(0xA2, &[vec![0, 1, 5, 0x11, 0, 0, 0, 1], s(b"a")].concat()),
            0x81,
        ),
        (
            "DISCONNECT raising a zero Session Expiry",
            vec![0xE0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 9],
            0x82,
        ),
        (
            "DISCONNECT with an unknown reason",
            vec![0xE0, 0x01, 0x03],
            0x81,
        ),
        (
            "PUBREL with a reserved reason",
            vec![0x62, 0x03, 0x00, 0x01, 0x01],
            0x81,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut c = raw5(addr, "bad5");
        c.write(&bytes);
        let answer = answer_then_close(&mut c);
        assert!(
            matches!(answer.as_deref(), Some([Sent::Disconnect { code: got, .. }]) if *got == code),
            "{what}: {answer:?}"
        );
    }
    broker_still_works(addr);
}

#[test]
fn v5_bad_connect_properties_are_refused() {
    let broker = start(|c| c.connect_timeout = 10);
    let addr = broker.local_addr();
    for (what, props) in [
        ("Receive Maximum 0", &[0x21u8, 0, 0][..]),
        ("Maximum Packet Size 0", &[0x27, 0, 0, 0, 0]),
        (
            "Session Expiry Interval twice",
            &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1],
        ),
        ("Topic Alias in CONNECT", &[0x23, 0, 1]),
        ("unknown property 0x7F", &[0x7F, 0]),
    ] {
        let mut c = Raw::tcp(addr).v5();
        c.write(&connect5(props));
        assert_eq!(answer_then_close(&mut c), Some(vec![]), "{what}");
    }
    // CVE-2023-3592: a will whose properties are not will properties (Topic Alias, Session
    // Expiry) or are repeated.
    // (Will Delay once, the control, is accepted.)
    for (what, will_props, answer) in [
        (
            "Will Delay once",
            &[0x18u8, 0, 0, 0, 1][..],
            Some(Sent::connack(false, 0)),
        ),
        ("Topic Alias in will", &[0x23, 0, 1], None),
        ("Session Expiry in will", &[0x11, 0, 0, 0, 1], None),
        (
            "Will Delay twice",
            &[0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1],
            None,
        ),
    ] {
        let mut b = s(b"MQTT");
        b.extend_from_slice(&[5, 0x06, 0, 30, 0]);
        b.extend_from_slice(&s(b"will5"));
        varint(will_props.len(), &mut b);
        b.extend_from_slice(will_props);
        b.extend_from_slice(&[s(b"w"), s(b"bye")].concat());
        let mut c = Raw::tcp(addr).v5();
        c.write(&pkt(0x10, &b));
        assert_eq!(c.recv().map(Sent::without_properties), answer, "{what}");
        c.write(&[0xE0, 0x00]);
        assert!(c.is_closed(), "{what}");
    }
    // 5.0 §3.1.2.11.10: Authentication Data without Authentication Method is a Protocol Error.
    let mut c = Raw::tcp(addr).v5();
    c.write(&connect5(&[0x16, 0, 1, 7]));
    assert_eq!(
        answer_then_close(&mut c),
        Some(vec![Sent::connack(false, 0x82)])
    );
    assert_eq!(broker.connected_clients(), 0);
    broker_still_works(addr);
}

#[test]
fn v5_many_user_properties_are_cheap() {
    // CVE-2021-41039: user properties must not be a CPU DoS.
    let broker = start(|_| {});
    let addr = broker.local_addr();
    // 9,000 user properties fit the 64 KiB pre-CONNECT limit; 10,000 do not.
    let mut c = Raw::tcp(addr).v5();
    let t0 = Instant::now();
    c.write(&connect5(&user_properties(9_000)));
    assert_eq!(
        c.recv().map(Sent::without_properties),
        Some(Sent::connack(false, 0))
    );
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let mut c = Raw::tcp(addr).v5();
    c.write(&connect5(&user_properties(10_000)));
    assert_eq!(answer_then_close(&mut c), Some(vec![]), "above 64 KiB");
    // 100,000 user properties (700 KB) in a PUBLISH, forwarded to a 5.0 and a 3.1.1 subscriber.
    let mut s5 = raw5(addr, "s5");
    s5.send(&Packet::Subscribe(wren_codec::Subscribe {
        packet_id: pid(1),
        properties: NO_PROPERTIES,
        subscriptions: wren_codec::List::new(&[wren_codec::Subscription {
            filter: wren_codec::TopicFilter::new("t").unwrap(),
            options: wren_codec::SubscriptionOptions::qos(QoS::AtMostOnce),
        }]),
    }));
    assert_eq!(s5.recv(), Some(Sent::SubAck(1, vec![0])));
    let (mut s3, _) = Raw::connect(addr, "s3", true, 30);
    assert_eq!(s3.subscribe("t", QoS::AtMostOnce), Sent::SubAck(1, vec![0]));
    let mut p = raw5(addr, "p5");
    let t0 = Instant::now();
    p.write(&publish5(b"t", &user_properties(100_000)));
    assert!(
        matches!(s5.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"payload")
    );
    assert!(
        matches!(s3.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"payload")
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    broker_still_works(addr);
}

// ---------------------------------------------------------------------------------------------
// Floods
// ---------------------------------------------------------------------------------------------

#[test]
fn qos2_without_pubrel_is_bounded_by_the_packet_id_space() {
    // CVE-2023-28366: QoS 2 PUBLISHes that are never released. 3.1.1 has no Receive Maximum;
    // the broker remembers only the ids awaiting PUBREL (at most 65,535 per session), so a
    // reused id is a duplicate: acknowledged, not delivered again, nothing new stored.
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::connect(addr, "counter", true, 30);
    assert_eq!(
        sub.subscribe("q", QoS::AtMostOnce),
        Sent::SubAck(1, vec![0])
    );
    let (mut c, _) = Raw::connect(addr, "unreleased", true, 30);
    let flood = |from: u16, to: u16| {
        let mut bytes = Vec::new();
        for i in from..=to {
            bytes.extend_from_slice(&pkt(
                0x34,
                &[s(b"q"), i.to_be_bytes().to_vec(), b"x".to_vec()].concat(),
            ));
        }
        bytes
    };
    c.write(&flood(1, u16::MAX));
    // Round two: every id again, still unreleased.
    c.write(&flood(1, u16::MAX));
    let mut recs = 0;
    while let Some(Sent::PubRec(_, _)) = c.recv() {
        recs += 1;
        if recs == 2 * 65_535 {
            break;
        }
    }
    assert_eq!(recs, 2 * 65_535, "every PUBLISH acknowledged");
    let mut delivered = 0;
    while let Some(Sent::Publish(Publication { .. })) = sub.recv_within(QUIET) {
        delivered += 1;
    }
    assert_eq!(delivered, 65_535, "the duplicates were not delivered");
    // Releasing one id makes it new again.
    c.write(&pkt(0x62, &[0, 1]));
    assert_eq!(c.recv(), Some(Sent::PubComp(1, 0)));
    c.write(&flood(1, 2));
    assert_eq!(c.recv(), Some(Sent::PubRec(1, 0)));
    assert_eq!(c.recv(), Some(Sent::PubRec(2, 0)));
    assert!(matches!(
        sub.recv(),
        Some(Sent::Publish(Publication { .. }))
    ));
    assert_eq!(sub.recv_within(QUIET), None, "id 2 is still a duplicate");
    broker_still_works(addr);
}

#[test]
fn stuck_qos1_subscriber_to_everything_is_bounded() {
    let broker = start(|c| {
        c.max_outgoing_bytes = 64 * 1024;
        c.max_queued_messages = 100;
    });
    let addr = broker.local_addr();
    // Subscribes to '#' at QoS 1 and never reads nor acknowledges.
    let (mut stuck, _) = Raw::connect(addr, "stuck", false, 60);
    assert_eq!(
        stuck.subscribe("#", QoS::AtLeastOnce),
        Sent::SubAck(1, vec![1])
    );
    let (mut p, _) = Raw::connect(addr, "flooder", true, 60);
    // 20 MB: 2,000 QoS 1 messages of 10 KB.
    let payload = vec![0u8; 10 * 1024];
    for i in 1..=2000u16 {
        p.publish("flood", &payload, QosPid::AtLeastOnce(pid(i)), false);
    }
    p.send(&Packet::PingReq);
    let mut acks = 0;
    loop {
        match p.recv_within(Duration::from_secs(10)) {
            Some(Sent::PubAck(_, _)) => acks += 1,
            Some(Sent::PingResp) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(acks, 2000);
    // 20 in flight + 100 queued; the rest dropped.
    assert_eq!(broker.stats().publish_dropped, 2000 - 120);
    broker_still_works(addr);
}

#[test]
fn huge_subscribe_and_the_subscription_count_goes_back_down() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let filters: Vec<String> = (0..10_000).map(|i| format!("m/{i}/+")).collect();
    // Clean session: the subscriptions go with the connection.
    let (mut c, _) = Raw::connect(addr, "many", true, 30);
    let t0 = Instant::now();
    c.write(&subscribe(&filters, 1));
    assert!(
        matches!(c.recv_within(Duration::from_secs(5)), Some(Sent::SubAck(1, codes)) if codes == vec![1; 10_000])
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(broker.subscription_count(), 10_000);
    drop(c);
    let deadline = Instant::now() + WAIT;
    while broker.subscription_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(broker.subscription_count(), 0, "clean session ended");
    // Persistent session: they stay until a clean session replaces it.
    let (mut c, _) = Raw::connect(addr, "keeper", false, 30);
    c.write(&subscribe(&filters, 0));
    assert!(
        matches!(c.recv_within(Duration::from_secs(5)), Some(Sent::SubAck(1, codes)) if codes.len() == 10_000)
    );
    drop(c);
    std::thread::sleep(QUIET);
    assert_eq!(broker.subscription_count(), 10_000);
    let (_c, ack) = Raw::connect(addr, "keeper", true, 30);
    assert_eq!(ack, Sent::connack(false, 0));
    assert_eq!(
        broker.subscription_count(),
        0,
        "clean session discards them"
    );
    broker_still_works(addr);
}

#[test]
fn long_filters_and_deep_topics() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    let (mut c, _) = Raw::connect(addr, "deep", true, 30);
    let long = "a".repeat(65_535);
    // As deep as Mosquitto goes: 200 separators (201 levels).
    let deepest = vec!["a"; 201].join("/");
    let slashes = "/".repeat(200);
    c.write(&subscribe(&[long.as_str()], 0));
    assert_eq!(
        c.recv(),
        Some(Sent::SubAck(1, vec![0])),
        "65,535-byte filter"
    );
    c.write(&subscribe(&[deepest.as_str()], 0));
    assert_eq!(c.recv(), Some(Sent::SubAck(1, vec![0])), "201 levels");
    c.write(&subscribe(&["#"], 0));
    assert_eq!(c.recv(), Some(Sent::SubAck(1, vec![0])));
    // Retained topics of 201 levels and of one 65,535-byte level: delivered, stored, matched.
    let t0 = Instant::now();
    for topic in [&deepest, &slashes, &long] {
        c.write(&pkt(0x31, &[s(topic.as_bytes()), b"v".to_vec()].concat()));
        assert!(
            matches!(c.recv(), Some(Sent::Publish(Publication { topic: t, .. })) if &t == topic),
            "{} bytes",
            topic.len()
        );
    }
    c.write(&subscribe(&["#"], 0));
    assert_eq!(c.recv(), Some(Sent::SubAck(1, vec![0])));
    let mut retained = 0;
    while let Some(Sent::Publish(Publication { retain: true, .. })) = c.recv_within(QUIET) {
        retained += 1;
    }
    assert_eq!(retained, 3);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Deeper than that, in SUBSCRIBE, PUBLISH and UNSUBSCRIBE alike: Malformed, that connection
    // is closed (10,000 levels; 65,535 empty levels, the deepest a packet can carry).
    let deep = vec!["a"; 10_000].join("/");
    let empty_levels = "/".repeat(65_534);
    for topic in [&deep, &empty_levels] {
        for packet in [
            subscribe(&[topic.as_str()], 0),
            pkt(0x31, &[s(topic.as_bytes()), b"v".to_vec()].concat()),
            pkt(0xA2, &[vec![0, 2], s(topic.as_bytes())].concat()),
        ] {
            let (mut d, _) = Raw::connect(addr, "too-deep", true, 30);
            d.write(&packet);
            assert!(d.is_closed(), "{} levels", topic.split('/').count());
        }
    }
    broker_still_works(addr);
}

#[test]
fn takeover_storm_leaves_one_connection() {
    let broker = start(|_| {});
    let addr = broker.local_addr();
    // 100 connections send CONNECT with the same client id as fast as they can.
    let connect = connect311(b"MQTT", 4, 0x00, &s(b"storm"));
    let mut storm: Vec<Raw> = (0..100)
        .map(|_| {
            let mut c = Raw::tcp(addr);
            c.write(&connect);
            c
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while broker.stats().messages_received < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut alive: Vec<usize> = Vec::new();
    for (i, c) in storm.iter_mut().enumerate() {
        if !c.closed_within(Duration::from_millis(50)) {
            alive.push(i);
        }
    }
    assert_eq!(alive.len(), 1, "one survivor: {alive:?}");
    assert_eq!(broker.connected_clients(), 1);
    let survivor = &mut storm[alive[0]];
    survivor.send(&Packet::PingReq);
    assert_eq!(survivor.recv(), Some(Sent::PingResp));
    assert_eq!(
        survivor.subscribe("s", QoS::AtMostOnce),
        Sent::SubAck(1, vec![0])
    );
    survivor.publish("s", b"mine", QosPid::AtMostOnce, false);
    assert!(
        matches!(survivor.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"mine")
    );
    broker_still_works(addr);
}

/// A client the broker disconnects while it is still writing (as Paho's test_flow_control2
/// does: 101 unreleased QoS 2 PUBLISHes against a Receive Maximum of 100, then a PUBREL for
/// each PUBREC it reads) can go on writing until it reads the DISCONNECT, and then sees an
/// orderly close (end of stream), not a reset: the broker shuts its write side and reads on
/// until the peer closes, instead of closing with the peer's packets unanswered.
#[test]
fn a_client_still_writing_when_disconnected_reads_the_reason_and_an_orderly_close() {
    use std::io::{Read, Write};
    let broker = start(|c| c.receive_maximum = 100);
    let addr = broker.local_addr();
    let mut c = raw5(addr, "still-writing");
    let publishes: Vec<u8> = (1..=101u16)
        .flat_map(|id| {
            let body = [&s(b"flow/2")[..], &id.to_be_bytes(), &[0], b"m"].concat();
            pkt(0x34, &body)
        })
        .collect();
    c.write(&publishes);
    // The broker answers 100 PUBRECs and DISCONNECT 0x93 and is done with the connection;
    // the client, not having read any of it yet, goes on releasing in two batches.
    std::thread::sleep(Duration::from_millis(200));
    for batch in [1..=50u16, 51..=100] {
        let pubrels: Vec<u8> = batch.flat_map(|id| pkt(0x62, &id.to_be_bytes())).collect();
        c.stream
            .write_all(&pubrels)
            .expect("writing to a connection the broker is closing gracefully");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got = Vec::new();
    while let Some(p) = c.recv() {
        got.push(p);
    }
    assert_eq!(got.len(), 101, "{got:?}");
    assert!(
        got[..100].iter().all(|p| matches!(p, Sent::PubRec(_, _))),
        "{got:?}"
    );
    assert_sent!(got[100..], [Sent::Disconnect { code: 0x93, .. }]);
    // recv stops at end of stream or an error: tell them apart.
    c.stream.set_read_timeout(Some(WAIT)).unwrap();
    match c.stream.read(&mut [0u8; 64]) {
        Ok(0) => {}
        other => panic!("expected end of stream after the DISCONNECT, got {other:?}"),
    }
    broker_still_works(addr);
}
