//! CONNECT and CONNACK: session present, clean sessions, client ids, keep-alive limits,
//! takeover, the connection limit, and the 5.0 CONNACK's capabilities.

use super::{connack_properties, pid};
use crate::assert_sent;
use crate::config::Config;
use crate::testing::{Driver, Sent, decode_all};
use std::num::NonZeroU32;
use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::*;

#[test]
fn connect_and_session_present() {
    let mut t = Driver::for_tests();
    let (c, out) = t.connect_with("a", false, 60, None);
    assert_eq!(out, [Sent::connack(false, 0)]);
    assert_eq!(t.broker.connected_clients(), 1);
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    assert_eq!(t.broker.connected_clients(), 0);
    assert_eq!(t.broker.sessions().len(), 1, "persistent session kept");
    let (_, out) = t.connect_with("a", false, 60, None);
    assert_eq!(out, [Sent::connack(true, 0)]);
    let (_, out) = t.connect_with("b", true, 60, None);
    assert_eq!(out, [Sent::connack(false, 0)]);
}

#[test]
fn clean_session_discards_state() {
    let mut t = Driver::for_tests();
    let c = t.connect("a", false);
    t.subscribe(c, "x", QoS::AtLeastOnce);
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    let (c, out) = t.connect_with("a", true, 60, None);
    assert_eq!(out, [Sent::connack(false, 0)], "clean connect: no session");
    assert!(t.broker.subscriptions().is_empty());
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    assert!(
        t.broker.sessions().is_empty(),
        "clean session ends with the connection"
    );
    assert!(t.is_closed(c));
}

#[test]
fn client_id_rules() {
    let mut t = Driver::for_tests();
    let (c, out) = t.connect_with("", false, 60, None);
    assert_eq!(out, [Sent::connack(false, 2)]);
    assert!(t.is_closed(c));
    let (c, out) = t.connect_with("", true, 60, None);
    assert_eq!(out, [Sent::connack(false, 0)]);
    assert!(!t.is_closed(c));
    let (_, id) = t
        .broker
        .sessions()
        .iter()
        .next()
        .map(|(i, s)| (*i, s.client_id.clone()))
        .unwrap();
    assert!(id.starts_with("auto-") && id.len() == 41, "{id}");
}

/// #17 item 6, MQTT 3.1 (`MQIsdp`) in raw bytes: CONNACK's first byte is always 0 (3.1 has no
/// Session Present, even for a resumed session); ids longer than 23 bytes are accepted, and an
/// empty one with Clean Session is assigned, as Mosquitto does; an empty one without it is
/// refused (0x02).
#[test]
fn mqtt31_connect() {
    // CONNECT "MQIsdp" level 3, keep-alive 30, client id `id`.
    let connect = |id: &[u8], clean: bool| {
        let mut p = vec![0x10, (14 + id.len()) as u8, 0, 6];
        p.extend_from_slice(b"MQIsdp");
        p.extend_from_slice(&[3, if clean { 0x02 } else { 0x00 }, 0, 30]);
        p.extend_from_slice(&(id.len() as u16).to_be_bytes());
        p.extend_from_slice(id);
        p
    };
    let mut t = Driver::for_tests();
    let long = b"0123456789012345678901234567890123456789";
    for round in 0..2 {
        let c = t.open().unwrap();
        t.feed(c, &connect(long, false));
        assert_eq!(
            t.drain_bytes(c),
            [0x20, 0x02, 0x00, 0x00],
            "round {round}: session present would be {}",
            round == 1
        );
        if round == 0 {
            t.subscribe(c, "keep", QoS::AtLeastOnce);
        }
        assert!(!t.is_closed(c));
        t.lose(c);
    }
    assert_eq!(t.broker.subscriptions().len(), 1, "the session was resumed");
    let c = t.open().unwrap();
    t.feed(c, &connect(b"", true));
    assert_eq!(t.drain_bytes(c), [0x20, 0x02, 0x00, 0x00]);
    assert!(!t.is_closed(c));
    assert!(
        t.broker
            .sessions()
            .iter()
            .any(|(_, s)| s.client_id.starts_with("auto-"))
    );
    let c = t.open().unwrap();
    t.feed(c, &connect(b"", false));
    assert_eq!(t.drain_bytes(c), [0x20, 0x02, 0x00, 0x02]);
    assert!(t.is_closed(c));
}

#[test]
fn keepalive_above_maximum_is_refused() {
    let mut t = Driver::for_tests_with(Config {
        max_keepalive: 100,
        ..Config::for_tests()
    });
    let (c, out) = t.connect_with("a", true, 101, None);
    assert_eq!(out, [Sent::connack(false, 2)]);
    assert!(t.is_closed(c));
}

#[test]
fn takeover_closes_old_connection_and_keeps_session() {
    let mut t = Driver::for_tests();
    let c1 = t.connect("x", false);
    t.subscribe(c1, "t", QoS::AtLeastOnce);
    let (c2, out) = t.connect_with("x", false, 60, None);
    assert!(t.is_closed(c1));
    assert!(!t.is_closed(c2));
    assert_eq!(out, [Sent::connack(true, 0)]);
    assert_eq!(t.broker.connected_clients(), 1);
    // The old connection's late EOF changes nothing.
    t.lose(c1);
    assert_eq!(t.broker.connected_clients(), 1);
    assert_eq!(t.broker.subscriptions().len(), 1);
}

#[test]
fn max_connections() {
    let mut t = Driver::for_tests_with(Config {
        max_connections: 1,
        ..Config::for_tests()
    });
    let c = t.open().unwrap();
    assert!(
        t.broker
            .connection_opened(Driver::peer(), 0, 1883, 0)
            .is_none()
    );
    t.lose(c);
    assert!(
        t.broker
            .connection_opened(Driver::peer(), 0, 1883, 0)
            .is_some()
    );
}

#[test]
fn v5_basics() {
    let mut t = Driver::for_tests();
    let c = t.open().unwrap();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            bridge: false,
            clean_start: true,
            keep_alive: 30,
            client_id: "",
            will: None,
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }),
    );
    let out = t.drain(c);
    assert_sent!(out, [Sent::ConnAck { code: 0, .. }]);
    assert!(
        connack_properties(&out)
            .assigned_client_identifier
            .as_ref()
            .is_some_and(|id| id.starts_with("auto-"))
    );
    // A protocol violation gets DISCONNECT with a reason before the close.
    t.send(c, Packet::PingResp);
    assert_eq!(
        t.drain(c),
        [Sent::Disconnect {
            code: ReasonCode::PROTOCOL_ERROR.0,
            reason_string: Some("protocol error".into())
        }]
    );
    assert!(t.is_closed(c));
}

#[test]
fn connack_capabilities_server_keep_alive_and_response_information() {
    let mut t = Driver::for_tests_with(Config {
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
    let c = t.open().unwrap();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            bridge: false,
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
    let out = t.drain(c);
    assert_sent!(
        out,
        [Sent::ConnAck {
            session_present: false,
            code: 0,
            ..
        }],
        "5.0: keep-alive above the maximum is not refused"
    );
    let p = connack_properties(&out);
    assert!(
        p.assigned_client_identifier
            .as_ref()
            .unwrap()
            .starts_with("auto-")
    );
    assert_eq!(p.server_keep_alive, Some(100));
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.maximum_qos, Some(1));
    assert_eq!(p.topic_alias_maximum, Some(3));
    assert_eq!(p.maximum_packet_size, Some(5000));
    assert_eq!(p.response_information.as_deref(), Some("resp/"));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
    // Not requested: no Response Information.
    let (_, out) = t.connect_v5_with("x", true, NO_PROPERTIES, None);
    assert_eq!(connack_properties(&out).response_information, None);
    // QoS 2 publish above Maximum QoS 1 → DISCONNECT 0x9B; retain → 0x9A.
    let c = t.connect_v5("q");
    t.publish(c, "t", b"x", QosPid::ExactlyOnce(pid(1)), false);
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x9B, .. }]);
    let c = t.connect_v5("r");
    t.publish_with(c, "t", b"x", QosPid::AtMostOnce, true, NO_PROPERTIES);
    assert_sent!(t.drain(c), [Sent::Disconnect { code: 0x9A, .. }]);
    // SUBACK grants at most Maximum QoS; shared refused with 0x9E.
    let c = t.connect_v5("s");
    assert_eq!(
        t.subscribe(c, "a", QoS::ExactlyOnce),
        [Sent::SubAck(1, vec![1])]
    );
    assert_eq!(
        t.subscribe(c, "$share/g/a", QoS::AtMostOnce),
        [Sent::SubAck(1, vec![0x9E])]
    );
}

#[test]
fn connack_fits_a_tiny_maximum_packet_size() {
    // Found by the broker_core fuzz target: the full CONNACK (capabilities) is ~30 bytes.
    let mut t = Driver::for_tests();
    let c = t.open().unwrap();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            bridge: false,
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
    let buf = t.drain_bytes(c);
    assert!(buf.len() <= 20, "{} bytes", buf.len());
    let out = decode_all(&buf, ProtocolVersion::V5).unwrap();
    assert_sent!(out, [Sent::ConnAck { code: 0, .. }]);
}

/// #18 secure default: a listener other hosts can reach admits no anonymous client unless
/// `allow_anonymous = true` (CONNACK 0x05 / 5.0 0x87, as Mosquitto 2.0), and with no password
/// file a user name does not help; a local-only listener admits them.
#[test]
fn anonymous_clients_only_where_allowed() {
    let open = Config {
        bind: "0.0.0.0".into(),
        ..Config::for_tests()
    };
    let mut t = Driver::for_tests_with(open.clone());
    let (c, out) = t.connect_with("anon", true, 60, None);
    assert_eq!(out, [Sent::connack(false, 5)]);
    assert!(t.is_closed(c));
    let (c, out) = t.connect_as(ProtocolVersion::V5, "anon5", true, 60, None, NO_PROPERTIES);
    assert_sent!(out, [Sent::ConnAck { code: 0x87, .. }]);
    assert!(t.is_closed(c));
    let c = t.open().unwrap();
    t.send(
        c,
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id: "named",
            will: None,
            username: Some("bob"),
            password: Some(b"pw"),
            properties: NO_PROPERTIES,
        }),
    );
    assert_eq!(t.drain(c), [Sent::connack(false, 5)], "no password file");
    assert_eq!(t.broker.connected_clients(), 0);
    // Explicitly open.
    let mut t = Driver::for_tests_with(Config {
        allow_anonymous: Some(true),
        ..open
    });
    t.connect("anon", true);
    // Local only (loopback): open by default; closed when said so.
    let mut t = Driver::for_tests();
    t.connect("anon", true);
    let mut t = Driver::for_tests_with(Config {
        allow_anonymous: Some(false),
        ..Config::for_tests()
    });
    let (_, out) = t.connect_with("anon", true, 60, None);
    assert_eq!(out, [Sent::connack(false, 5)]);
}

/// #18 item 7: after `max_failed_logins` refused logins from one address within the window,
/// that address is refused (5.0: 0x8A Banned) for the block time without its credentials being
/// looked at; other addresses carry on.
#[test]
fn failed_logins_block_one_address_for_a_while() {
    let mut t = Driver::for_tests_with(Config {
        allow_anonymous: Some(false),
        max_failed_logins: 3,
        failed_login_window: 10,
        failed_login_block: 30,
        ..Config::for_tests()
    });
    let connect_v5 = |t: &mut Driver, peer: &str| {
        let c = t.open_from(peer.parse().unwrap()).unwrap();
        t.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V5,
                bridge: false,
                clean_start: true,
                keep_alive: 60,
                client_id: "guess",
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        let out = t.drain(c);
        assert!(t.is_closed(c));
        match out.as_slice() {
            [Sent::ConnAck { code, .. }] => *code,
            other => panic!("{other:?}"),
        }
    };
    let attacker = "192.0.2.7:5000";
    for i in 0..3 {
        t.tick(i * 1_000);
        assert_eq!(connect_v5(&mut t, attacker), 0x87, "failure {i}");
    }
    assert_eq!(connect_v5(&mut t, attacker), 0x8A, "blocked");
    assert_eq!(
        connect_v5(&mut t, "192.0.2.7:5001"),
        0x8A,
        "the address, any port"
    );
    assert_eq!(
        connect_v5(&mut t, "192.0.2.8:5000"),
        0x87,
        "another address"
    );
    t.tick(2_000 + 29_000);
    assert_eq!(connect_v5(&mut t, attacker), 0x8A, "still blocked");
    t.tick(2_000 + 30_000);
    assert_eq!(connect_v5(&mut t, attacker), 0x87, "block over");
}

/// A CONNACK larger than the client's Maximum Packet Size (here the Assigned Client Identifier
/// does not fit in 24 bytes) may not be sent, and nothing may come before a CONNACK: the client
/// is refused with the short CONNACK 0x95 (Packet too large) and the connection closes.
#[test]
fn a_connack_larger_than_the_clients_maximum_packet_size_refuses_it() {
    let mut t = Driver::for_tests();
    // With room for the CONNACK, the same client is accepted.
    for (maximum, code) in [(24, 0x95), (200, 0)] {
        let properties = Properties {
            maximum_packet_size: NonZeroU32::new(maximum),
            ..NO_PROPERTIES
        };
        let (c, out) = t.connect_v5_with("", true, properties, None);
        assert!(
            matches!(out[..], [Sent::ConnAck { code: got, .. }] if got == code),
            "{maximum}: {out:?}"
        );
        assert_eq!(t.is_closed(c), code != 0, "{maximum}");
    }
}
