//! The engine without sockets: packets in, packets out, time passed by hand.

use core::num::NonZeroU16;

use super::*;
use wren_codec::{ConnAck, NO_PROPERTIES, QoS, SubscriptionOptions};

const T0: Instant = Instant::from_millis(0);

fn connect_packet(version: ProtocolVersion, clean: bool, keep_alive: u16) -> Connect<'static> {
    Connect {
        protocol: version,
        bridge: false,
        clean_start: clean,
        keep_alive,
        client_id: "test",
        will: None,
        username: None,
        password: None,
        properties: NO_PROPERTIES,
    }
}

fn connack(session_present: bool, code: u8) -> Packet<'static> {
    Packet::ConnAck(ConnAck {
        session_present,
        code: ReasonCode(code),
        properties: NO_PROPERTIES,
    })
}

fn connected<const N: usize>(config: Config, keep_alive: u16) -> Engine<N> {
    let mut e = Engine::new(config);
    e.connect(connect_packet(config.version, true, keep_alive), T0)
        .unwrap();
    e.handle(connack(false, 0), T0).unwrap();
    assert_eq!(e.state(), State::Connected);
    e
}

fn v311() -> Config {
    Config::new(ProtocolVersion::V311)
}

fn topic() -> TopicName<'static> {
    TopicName::new("a/b").unwrap()
}

fn publish<const N: usize>(e: &mut Engine<N>, qos: QoS, now: Instant) -> Publish<'static> {
    e.publish(Message::new(topic(), b"x", qos), now).unwrap()
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

#[test]
fn connect_then_connack_accepts() {
    let mut e: Engine<4> = Engine::new(v311());
    assert_eq!(e.state(), State::Disconnected);
    let p = e
        .connect(connect_packet(ProtocolVersion::V311, true, 30), T0)
        .unwrap();
    assert!(matches!(p, Packet::Connect(c) if c.keep_alive == 30));
    assert_eq!(e.state(), State::Connecting);
    // Publishing before CONNACK is refused.
    assert_eq!(
        e.publish(Message::new(topic(), b"x", QoS::AtMostOnce), T0),
        Err(Error::NotConnected)
    );
    let h = e.handle(connack(false, 0), T0).unwrap();
    assert!(matches!(
        h.event,
        Some(Event::Connected {
            session_present: false,
            ..
        })
    ));
    assert_eq!(e.state(), State::Connected);
    // A second CONNACK is a protocol violation.
    assert_eq!(
        e.handle(connack(false, 0), T0),
        Err(Error::UnexpectedPacket(PacketType::ConnAck))
    );
    assert_eq!(
        e.connect(connect_packet(ProtocolVersion::V311, true, 30), T0),
        Err(Error::AlreadyConnected)
    );
}

#[test]
fn v3_refusal_is_typed() {
    let mut e: Engine<4> = Engine::new(v311());
    e.connect(connect_packet(ProtocolVersion::V311, true, 30), T0)
        .unwrap();
    let err = e.handle(connack(false, 5), T0).unwrap_err();
    assert_eq!(
        err,
        Error::Refused(ConnectRefused::V3(ConnectReturnCode::NotAuthorized))
    );
    let Error::Refused(r) = err else {
        unreachable!()
    };
    assert_eq!(r.code(), 5);
    assert_eq!(e.state(), State::Disconnected);
}

#[test]
fn v5_refusal_is_typed() {
    let mut e: Engine<4> = Engine::new(Config::new(ProtocolVersion::V5));
    let p = e
        .connect(connect_packet(ProtocolVersion::V5, true, 30), T0)
        .unwrap();
    // The engine advertises its incoming capacity as Receive Maximum.
    let Packet::Connect(c) = p else {
        unreachable!()
    };
    assert_eq!(c.properties.receive_maximum, NonZeroU16::new(4));
    let err = e.handle(connack(false, 0x86), T0).unwrap_err();
    assert_eq!(
        err,
        Error::Refused(ConnectRefused::V5(ReasonCode::BAD_USER_NAME_OR_PASSWORD))
    );
    assert_eq!(ConnectRefused::V5(ReasonCode(0x86)).code(), 134);
}

#[test]
fn packet_ids_increase_and_wrap_skipping_those_in_flight() {
    let mut e: Engine<4> = connected(v311(), 0);
    assert_eq!(
        publish(&mut e, QoS::AtLeastOnce, T0).qos_pid.packet_id(),
        Some(id(1))
    );
    assert_eq!(
        publish(&mut e, QoS::AtLeastOnce, T0).qos_pid.packet_id(),
        Some(id(2))
    );
    // QoS 0 takes no identifier.
    assert_eq!(
        publish(&mut e, QoS::AtMostOnce, T0).qos_pid.packet_id(),
        None
    );
    e.handle(Packet::PubAck(Ack::new(id(2))), T0).unwrap();
    // Jump to the end of the range: 65535 is next, then 1 is still in flight, so 2.
    e.last_packet_id = 65534;
    assert_eq!(
        publish(&mut e, QoS::AtLeastOnce, T0).qos_pid.packet_id(),
        Some(id(65535))
    );
    assert_eq!(
        publish(&mut e, QoS::AtLeastOnce, T0).qos_pid.packet_id(),
        Some(id(2))
    );
    assert_eq!(e.in_flight(), 3);
}

#[test]
fn in_flight_limit_is_enforced_and_freed_by_acks() {
    let mut e: Engine<2> = connected(v311(), 0);
    publish(&mut e, QoS::AtLeastOnce, T0);
    publish(&mut e, QoS::ExactlyOnce, T0);
    assert!(!e.can_publish());
    assert_eq!(
        e.publish(Message::new(topic(), b"x", QoS::AtLeastOnce), T0),
        Err(Error::InFlightFull)
    );
    // QoS 0 needs no slot.
    assert!(
        e.publish(Message::new(topic(), b"x", QoS::AtMostOnce), T0)
            .is_ok()
    );
    // Subscribing needs a slot too.
    let subs = [Subscription {
        filter: TopicFilter::new("a/#").unwrap(),
        options: SubscriptionOptions::qos(QoS::AtMostOnce),
    }];
    assert_eq!(
        e.subscribe(&subs, NO_PROPERTIES, T0),
        Err(Error::InFlightFull)
    );
    let h = e.handle(Packet::PubAck(Ack::new(id(1))), T0).unwrap();
    assert!(matches!(h.event, Some(Event::PubAck(a)) if a.packet_id == id(1)));
    assert!(e.can_publish());
    // A repeated PUBACK is ignored.
    let h = e.handle(Packet::PubAck(Ack::new(id(1))), T0).unwrap();
    assert_eq!(h.event, None);
}

#[test]
fn server_receive_maximum_limits_publishes() {
    let mut e: Engine<8> = Engine::new(Config::new(ProtocolVersion::V5));
    e.connect(connect_packet(ProtocolVersion::V5, true, 0), T0)
        .unwrap();
    let mut props = NO_PROPERTIES;
    props.receive_maximum = NonZeroU16::new(1);
    e.handle(
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: props,
        }),
        T0,
    )
    .unwrap();
    publish(&mut e, QoS::AtLeastOnce, T0);
    assert_eq!(
        e.publish(Message::new(topic(), b"x", QoS::AtLeastOnce), T0),
        Err(Error::InFlightFull)
    );
}

#[test]
fn qos2_outgoing_flow() {
    let mut e: Engine<4> = connected(v311(), 0);
    let p = publish(&mut e, QoS::ExactlyOnce, T0);
    let pid = p.qos_pid.packet_id().unwrap();
    assert_eq!(e.stage_of(pid), Some(Stage::PubRec));
    let h = e.handle(Packet::PubRec(Ack::new(pid)), T0).unwrap();
    assert!(matches!(h.event, Some(Event::PubRec(_))));
    assert_eq!(
        h.reply.map(Control::packet),
        Some(Packet::PubRel(Ack::new(pid)))
    );
    assert_eq!(e.stage_of(pid), Some(Stage::PubComp));
    // A duplicate PUBREC gets another PUBREL but no second event.
    let h = e.handle(Packet::PubRec(Ack::new(pid)), T0).unwrap();
    assert_eq!(h.event, None);
    assert_eq!(
        h.reply.map(Control::packet),
        Some(Packet::PubRel(Ack::new(pid)))
    );
    let h = e.handle(Packet::PubComp(Ack::new(pid)), T0).unwrap();
    assert!(matches!(h.event, Some(Event::PubComp(_))));
    assert_eq!(e.in_flight(), 0);
}

#[test]
fn qos2_failed_pubrec_ends_the_flow_in_v5() {
    let mut e: Engine<4> = connected(Config::new(ProtocolVersion::V5), 0);
    let pid = publish(&mut e, QoS::ExactlyOnce, T0)
        .qos_pid
        .packet_id()
        .unwrap();
    let mut ack = Ack::new(pid);
    ack.reason_code = ReasonCode::NOT_AUTHORIZED;
    let h = e.handle(Packet::PubRec(ack), T0).unwrap();
    assert_eq!(h.reply, None);
    assert!(matches!(h.event, Some(Event::PubRec(a)) if !a.reason_code.is_success()));
    assert_eq!(e.in_flight(), 0);
}

#[test]
fn qos2_incoming_is_delivered_once() {
    let mut e: Engine<4> = connected(v311(), 0);
    let incoming = Publish {
        dup: false,
        qos_pid: QosPid::ExactlyOnce(id(9)),
        retain: false,
        topic: topic(),
        properties: NO_PROPERTIES,
        payload: b"once",
    };
    let h = e.handle(Packet::Publish(incoming), T0).unwrap();
    assert!(matches!(h.event, Some(Event::Message(p)) if p.payload == b"once"));
    assert_eq!(
        h.reply.map(Control::packet),
        Some(Packet::PubRec(Ack::new(id(9))))
    );
    // The server resends (our PUBREC was lost): acknowledged again, not delivered again.
    let dup = Publish {
        dup: true,
        ..incoming
    };
    let h = e.handle(Packet::Publish(dup), T0).unwrap();
    assert_eq!(h.event, None);
    assert_eq!(
        h.reply.map(Control::packet),
        Some(Packet::PubRec(Ack::new(id(9))))
    );
    let h = e.handle(Packet::PubRel(Ack::new(id(9))), T0).unwrap();
    assert_eq!(
        h.reply.map(Control::packet),
        Some(Packet::PubComp(Ack::new(id(9))))
    );
    // After PUBREL the identifier is free: a new message with it is delivered.
    let h = e.handle(Packet::Publish(incoming), T0).unwrap();
    assert!(matches!(h.event, Some(Event::Message(_))));
}

#[test]
fn qos1_incoming_is_acknowledged() {
    let mut e: Engine<4> = connected(v311(), 0);
    let p = Publish {
        dup: false,
        qos_pid: QosPid::AtLeastOnce(id(3)),
        retain: true,
        topic: topic(),
        properties: NO_PROPERTIES,
        payload: b"1",
    };
    let h = e.handle(Packet::Publish(p), T0).unwrap();
    assert_eq!(
        h.reply.map(Control::packet),
        Some(Packet::PubAck(Ack::new(id(3))))
    );
    assert!(matches!(h.event, Some(Event::Message(m)) if m.retain));
}

#[test]
fn incoming_qos2_capacity_is_bounded() {
    let mut e: Engine<4, 1> = Engine::new(v311());
    e.connect(connect_packet(ProtocolVersion::V311, true, 0), T0)
        .unwrap();
    e.handle(connack(false, 0), T0).unwrap();
    let p = |n| Publish {
        dup: false,
        qos_pid: QosPid::ExactlyOnce(id(n)),
        retain: false,
        topic: topic(),
        properties: NO_PROPERTIES,
        payload: b"",
    };
    e.handle(Packet::Publish(p(1)), T0).unwrap();
    assert_eq!(
        e.handle(Packet::Publish(p(2)), T0),
        Err(Error::ReceiveMaximumExceeded)
    );
}

#[test]
fn timed_retries_set_dup_in_v311() {
    let mut config = v311();
    config.retry_interval_ms = Some(1000);
    let mut e: Engine<4> = connected(config, 0);
    let pid = publish(&mut e, QoS::AtLeastOnce, T0)
        .qos_pid
        .packet_id()
        .unwrap();
    assert_eq!(
        e.poll(Instant::from_millis(999)),
        Poll::Wait(Some(Instant::from_millis(1000)))
    );
    assert_eq!(e.poll(Instant::from_millis(1000)), Poll::Republish(pid));
    let msg = Message::new(topic(), b"x", QoS::AtLeastOnce);
    let dup = e.duplicate(pid, msg).unwrap();
    assert!(dup.dup);
    assert_eq!(dup.qos_pid, QosPid::AtLeastOnce(pid));
    // The retry restarted the timer.
    assert_eq!(
        e.poll(Instant::from_millis(1500)),
        Poll::Wait(Some(Instant::from_millis(2000)))
    );
    // A PUBREL awaiting PUBCOMP is resent as PUBREL.
    let p2 = publish(&mut e, QoS::ExactlyOnce, Instant::from_millis(1500));
    let id2 = p2.qos_pid.packet_id().unwrap();
    e.handle(Packet::PubRec(Ack::new(id2)), Instant::from_millis(1500))
        .unwrap();
    e.handle(Packet::PubAck(Ack::new(pid)), Instant::from_millis(1500))
        .unwrap();
    assert_eq!(
        e.poll(Instant::from_millis(2600)),
        Poll::Send(Control::PubRel(id2, ReasonCode::SUCCESS))
    );
    // duplicate() refuses flows that are not waiting for PUBACK/PUBREC.
    assert_eq!(e.duplicate(id2, msg), None);
}

#[test]
fn no_timed_retries_in_v5() {
    let mut config = Config::new(ProtocolVersion::V5);
    config.retry_interval_ms = Some(1000);
    let mut e: Engine<4> = connected(config, 0);
    publish(&mut e, QoS::AtLeastOnce, T0);
    assert_eq!(e.poll(Instant::from_millis(10_000)), Poll::Wait(None));
}

#[test]
fn keep_alive_pings_after_idle_and_times_out() {
    let mut e: Engine<4> = connected(v311(), 10);
    assert_eq!(
        e.poll(Instant::from_millis(5_000)),
        Poll::Wait(Some(Instant::from_millis(10_000)))
    );
    // Sending anything postpones the ping.
    publish(&mut e, QoS::AtMostOnce, Instant::from_millis(5_000));
    assert_eq!(
        e.poll(Instant::from_millis(10_000)),
        Poll::Wait(Some(Instant::from_millis(15_000)))
    );
    assert_eq!(
        e.poll(Instant::from_millis(15_000)),
        Poll::Send(Control::PingReq)
    );
    // Only one ping outstanding; the deadline is now the PINGRESP's.
    assert_eq!(
        e.poll(Instant::from_millis(16_000)),
        Poll::Wait(Some(Instant::from_millis(25_000)))
    );
    let h = e
        .handle(Packet::PingResp, Instant::from_millis(16_000))
        .unwrap();
    assert_eq!(h.event, Some(Event::PingResp));
    assert_eq!(
        e.poll(Instant::from_millis(24_999)),
        Poll::Wait(Some(Instant::from_millis(25_000)))
    );
    assert_eq!(
        e.poll(Instant::from_millis(25_000)),
        Poll::Send(Control::PingReq)
    );
    // No PINGRESP within a keep-alive period: dead.
    assert_eq!(e.poll(Instant::from_millis(35_000)), Poll::KeepAliveTimeout);
    assert_eq!(e.state(), State::Disconnected);
}

#[test]
fn keep_alive_zero_never_pings() {
    let mut e: Engine<4> = connected(v311(), 0);
    assert_eq!(e.poll(Instant::from_millis(1_000_000)), Poll::Wait(None));
}

#[test]
fn server_keep_alive_overrides() {
    let mut e: Engine<4> = Engine::new(Config::new(ProtocolVersion::V5));
    e.connect(connect_packet(ProtocolVersion::V5, true, 60), T0)
        .unwrap();
    let mut props = NO_PROPERTIES;
    props.server_keep_alive = Some(5);
    e.handle(
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: props,
        }),
        T0,
    )
    .unwrap();
    assert_eq!(e.keep_alive_secs(), 5);
    assert_eq!(
        e.poll(Instant::from_millis(5_000)),
        Poll::Send(Control::PingReq)
    );
}

#[test]
fn connack_timeout() {
    let mut config = v311();
    config.connect_timeout_ms = 100;
    let mut e: Engine<4> = Engine::new(config);
    e.connect(connect_packet(ProtocolVersion::V311, true, 0), T0)
        .unwrap();
    assert_eq!(
        e.poll(Instant::from_millis(50)),
        Poll::Wait(Some(Instant::from_millis(100)))
    );
    assert_eq!(e.poll(Instant::from_millis(100)), Poll::ConnectTimeout);
    assert_eq!(e.state(), State::Disconnected);
}

#[test]
fn reconnect_with_session_resends_publish_and_pubrel() {
    let mut e: Engine<4> = Engine::new(v311());
    e.connect(connect_packet(ProtocolVersion::V311, false, 0), T0)
        .unwrap();
    e.handle(connack(false, 0), T0).unwrap();
    let q1 = publish(&mut e, QoS::AtLeastOnce, T0)
        .qos_pid
        .packet_id()
        .unwrap();
    let q2 = publish(&mut e, QoS::ExactlyOnce, T0)
        .qos_pid
        .packet_id()
        .unwrap();
    e.handle(Packet::PubRec(Ack::new(q2)), T0).unwrap();
    let subs = [Subscription {
        filter: TopicFilter::new("x").unwrap(),
        options: SubscriptionOptions::qos(QoS::AtMostOnce),
    }];
    e.subscribe(&subs, NO_PROPERTIES, T0).unwrap();
    assert_eq!(e.in_flight(), 3);

    e.connection_lost();
    assert_eq!(e.state(), State::Disconnected);
    assert_eq!(
        e.publish(Message::new(topic(), b"x", QoS::AtMostOnce), T0),
        Err(Error::NotConnected)
    );
    // Nothing is resent while disconnected.
    assert_eq!(e.poll(Instant::from_millis(10)), Poll::Wait(None));

    let t1 = Instant::from_millis(1000);
    e.connect(connect_packet(ProtocolVersion::V311, false, 0), t1)
        .unwrap();
    e.handle(connack(true, 0), t1).unwrap();
    // The SUBSCRIBE is not part of the session; the publish flows are, and are resent.
    assert_eq!(e.in_flight(), 2);
    let mut resent = [e.poll(t1), e.poll(t1)];
    resent.sort_by_key(|p| matches!(p, Poll::Send(_)));
    assert_eq!(resent[0], Poll::Republish(q1));
    assert_eq!(
        resent[1],
        Poll::Send(Control::PubRel(q2, ReasonCode::SUCCESS))
    );
    assert_eq!(e.poll(t1), Poll::Wait(None));
    let dup = e
        .duplicate(q1, Message::new(topic(), b"x", QoS::AtLeastOnce))
        .unwrap();
    assert!(dup.dup);
}

#[test]
fn reconnect_without_session_drops_flows() {
    let mut e: Engine<4> = Engine::new(v311());
    e.connect(connect_packet(ProtocolVersion::V311, false, 0), T0)
        .unwrap();
    e.handle(connack(false, 0), T0).unwrap();
    publish(&mut e, QoS::AtLeastOnce, T0);
    e.connection_lost();
    e.connect(connect_packet(ProtocolVersion::V311, false, 0), T0)
        .unwrap();
    e.handle(connack(false, 0), T0).unwrap();
    assert_eq!(e.in_flight(), 0);
    assert_eq!(e.poll(T0), Poll::Wait(None));
}

#[test]
fn clean_start_discards_session_state() {
    let mut e: Engine<4> = connected(v311(), 0);
    publish(&mut e, QoS::AtLeastOnce, T0);
    e.disconnect(T0);
    assert_eq!(e.state(), State::Disconnected);
    e.connect(connect_packet(ProtocolVersion::V311, true, 0), T0)
        .unwrap();
    assert_eq!(e.in_flight(), 0);
}

#[test]
fn subscribe_and_unsubscribe_are_tracked() {
    let mut e: Engine<4> = connected(v311(), 0);
    let subs = [Subscription {
        filter: TopicFilter::new("a/#").unwrap(),
        options: SubscriptionOptions::qos(QoS::AtLeastOnce),
    }];
    let s = e.subscribe(&subs, NO_PROPERTIES, T0).unwrap();
    assert_eq!(e.stage_of(s.packet_id), Some(Stage::SubAck));
    assert_eq!(
        e.subscribe(&[], NO_PROPERTIES, T0),
        Err(Error::EmptyRequest)
    );
    let codes = [ReasonCode::GRANTED_QOS_1];
    let suback = SubAck {
        packet_id: s.packet_id,
        properties: NO_PROPERTIES,
        reason_codes: List::new(&codes),
    };
    let h = e.handle(Packet::SubAck(suback), T0).unwrap();
    assert!(matches!(h.event, Some(Event::SubAck(_))));
    let filters = [TopicFilter::new("a/#").unwrap()];
    let u = e.unsubscribe(&filters, NO_PROPERTIES, T0).unwrap();
    assert_ne!(u.packet_id, s.packet_id);
    let unsuback = SubAck {
        packet_id: u.packet_id,
        properties: NO_PROPERTIES,
        reason_codes: List::empty(),
    };
    let h = e.handle(Packet::UnsubAck(unsuback), T0).unwrap();
    assert!(matches!(h.event, Some(Event::UnsubAck(_))));
    assert_eq!(e.in_flight(), 0);
}

#[test]
fn server_disconnect_in_v5_ends_the_connection() {
    let mut e: Engine<4> = connected(Config::new(ProtocolVersion::V5), 0);
    let d = Disconnect::with_reason(ReasonCode::SESSION_TAKEN_OVER);
    let h = e.handle(Packet::Disconnect(d), T0).unwrap();
    assert!(
        matches!(h.event, Some(Event::Disconnected(x)) if x.reason_code == ReasonCode::SESSION_TAKEN_OVER)
    );
    assert_eq!(e.state(), State::Disconnected);
}

#[test]
fn client_only_packets_from_the_server_are_errors() {
    let mut e: Engine<4> = connected(v311(), 0);
    assert_eq!(
        e.handle(Packet::PingReq, T0),
        Err(Error::UnexpectedPacket(PacketType::PingReq))
    );
    let conn = connect_packet(ProtocolVersion::V311, true, 0);
    assert_eq!(
        e.handle(Packet::Connect(conn), T0),
        Err(Error::UnexpectedPacket(PacketType::Connect))
    );
}

#[test]
fn server_maximum_qos_and_retain_available() {
    let mut e: Engine<4> = Engine::new(Config::new(ProtocolVersion::V5));
    e.connect(connect_packet(ProtocolVersion::V5, true, 0), T0)
        .unwrap();
    let mut props = NO_PROPERTIES;
    props.maximum_qos = Some(QoS::AtLeastOnce);
    props.retain_available = Some(false);
    e.handle(
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: props,
        }),
        T0,
    )
    .unwrap();
    assert_eq!(
        e.publish(Message::new(topic(), b"x", QoS::ExactlyOnce), T0),
        Err(Error::QosNotSupported(QoS::AtLeastOnce))
    );
    let mut m = Message::new(topic(), b"x", QoS::AtLeastOnce);
    m.retain = true;
    assert_eq!(e.publish(m, T0), Err(Error::RetainNotSupported));
}

#[test]
fn backoff_doubles_caps_and_resets() {
    let mut b = Backoff::new(100, 1000);
    let delays: [u64; 6] = core::array::from_fn(|_| b.next_delay(0));
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(b.attempts(), 6);
    b.reset();
    assert_eq!(b.next_delay(0), 100);
    // Jitter stays within the upper quarter below the nominal delay.
    let mut b = Backoff::new(1000, 1000);
    for j in [1u32, 7, 250, 999, u32::MAX] {
        let d = b.next_delay(j);
        assert!((750..=1000).contains(&d), "{d}");
    }
}

#[test]
fn encoded_packets_round_trip_through_the_codec() {
    let mut e: Engine<4> = connected(Config::new(ProtocolVersion::V5), 0);
    let pairs = [("unit", "C")];
    let mut m = Message::new(topic(), b"21.5", QoS::AtLeastOnce);
    m.properties.content_type = Some("text/plain");
    m.properties.user_properties = List::new(&pairs);
    let p = Packet::Publish(e.publish(m, T0).unwrap());
    let mut buf = [0u8; 128];
    let n = p.encode(ProtocolVersion::V5, &mut buf).unwrap();
    let opts = wren_codec::DecodeOptions::new(ProtocolVersion::V5);
    let Ok(wren_codec::Status::Complete(d)) = wren_codec::decode(&buf[..n], opts) else {
        panic!("not decoded")
    };
    let Packet::Publish(back) = d.packet else {
        panic!("not a publish")
    };
    assert_eq!(back.properties.content_type, Some("text/plain"));
    assert_eq!(
        back.properties.user_properties.iter().next(),
        Some(("unit", "C"))
    );
}

#[test]
fn control_encodes_as_its_packet() {
    let controls = [
        Control::PingReq,
        Control::PubAck(id(1), ReasonCode::SUCCESS),
        Control::PubRec(id(2), ReasonCode::SUCCESS),
        Control::PubRel(id(3), ReasonCode::SUCCESS),
        Control::PubComp(id(4), ReasonCode::SUCCESS),
        Control::PubRel(id(5), ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
    ];
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        if !version.is_enabled() {
            continue;
        }
        for control in controls {
            // The same bytes, or the same refusal (3.1.1 has no reason codes).
            let packet = control.packet();
            assert_eq!(packet.packet_type(), control.packet_type());
            let (mut by_control, mut by_packet) = ([0u8; 8], [0u8; 8]);
            let n = control.encode(version, &mut by_control);
            assert_eq!(n, packet.encode(version, &mut by_packet), "{control:?}");
            assert_eq!(by_control, by_packet, "{control:?} {version:?}");
        }
    }
}

#[test]
fn wrapping_clock_widens_across_the_wrap() {
    let mut c = WrappingClock::new();
    assert_eq!(c.instant(u32::MAX - 5).as_millis(), u64::from(u32::MAX - 5));
    assert_eq!(c.instant(4).as_millis(), u64::from(u32::MAX) + 5);
    // Backwards is ignored.
    assert_eq!(c.instant(3).as_millis(), u64::from(u32::MAX) + 5);
    // A second wrap, read twice on the way (each step under half the counter's range).
    c.instant(0x8000_0000);
    c.instant(0xFFFF_FFFF);
    assert_eq!(c.instant(1).as_millis(), (1 << 33) + 1);
}
