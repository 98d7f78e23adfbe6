//! The broker core driven by arbitrary bytes: connections open, receive arbitrary byte chunks
//! (decoded as the runtime shell does), lose their sockets, and time passes. Checks that nothing
//! panics and that every byte the broker sends decodes as a valid packet of the connection's
//! protocol version.
//!
//! Input: a stream of operations, each an opcode byte and its operands. Opening a connection
//! also sends a valid CONNECT (client id, clean flag and version from the operands), so the
//! fuzzer reaches connected states at once; the chunks that follow are free-form.
//!
//! MQTT 5.0: op 6 opens a connection with a 5.0 CONNECT whose properties (session expiry,
//! receive maximum, maximum packet size, topic alias maximum, will with delay, authentication
//! method) come from the operands; op 7 sends a well-formed 5.0 packet chosen by the operands
//! (PUBLISH with topic alias / expiry / payload format, SUBSCRIBE with options, identifiers and
//! `$share`, UNSUBSCRIBE, DISCONNECT with session expiry or will, AUTH, PUBREL), so sequences
//! reach the 5.0 paths that random bytes rarely would. Every packet sent to a client that set a
//! Maximum Packet Size must respect it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use wren_broker::{Broker, Config, ConnId, Event, Framing, HmacChallenge, Outbox};
use wren_codec::{
    Ack, Auth, Connect, DecodeOptions, Disconnect, List, Packet, PacketId, PayloadFormat,
    ProtocolVersion, Publish, QoS, QosPid, ReasonCode, RetainHandling, Status, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName, Unsubscribe, Will, decode,
    properties::{NO_PROPERTIES, Properties},
};

struct Conn {
    id: ConnId,
    outbox: Outbox,
    /// Decoded as the shell decodes (the CONNECT switch included).
    framing: Framing,
    /// The version the broker answers in: the first CONNECT's.
    answer_version: Option<ProtocolVersion>,
    pending: Vec<u8>,
    open: bool,
    /// The Maximum Packet Size the client announced (5.0).
    max_in: Option<u32>,
    /// Hibernating, as the shell does it: the core gave up `outbox`, which must get nothing
    /// more; a socket event (`Broker::wake`) or the core (`Event::Woken` from `Broker::poll_event`) brings a new one.
    hibernating: bool,
}

/// What the shell does whenever it releases the core: hibernating connections the core has
/// something for (or closed) get their new outbox; the congested outboxes a publisher would wait
/// for are live connections' outboxes.
fn absorb_woken(broker: &mut Broker, conns: &mut [Conn]) {
    while let Some(event) = broker.poll_event() {
        match event {
            Event::Woken { conn: id, outbox } => {
                let c = conns
                    .iter_mut()
                    .find(|c| c.id == id)
                    .expect("woken connection exists");
                assert!(c.hibernating, "woken but not hibernating: {id:?}");
                assert_eq!(
                    c.outbox.queued_bytes(),
                    0,
                    "old outbox used while hibernating"
                );
                c.outbox = outbox;
                c.hibernating = false;
            }
            Event::Congested(o) => assert!(
                o.is_closed() || conns.iter().any(|c| !c.hibernating && c.outbox.same(&o)),
                "congestion reported on an outbox no live connection has"
            ),
        }
    }
    for c in conns.iter().filter(|c| c.hibernating) {
        assert_eq!(
            c.outbox.queued_bytes(),
            0,
            "old outbox used while hibernating"
        );
    }
}

const MAX_PACKET: u32 = 4096;

fn config() -> Config {
    Config {
        sys_interval: 1,
        max_inflight_messages: 2,
        max_queued_messages: 4,
        max_outgoing_bytes: 2048,
        max_packet_size: MAX_PACKET,
        max_connect_packet_size: 512,
        max_connections: 8,
        queue_qos0_messages: true,
        max_subscriptions_per_client: 4,
        ..Config::default()
    }
}

/// Feed bytes to a connection the way the shell does.
fn feed(broker: &mut Broker, c: &mut Conn, bytes: &[u8], now: u64) {
    if c.hibernating {
        // Bytes on a hibernating socket: the shell revives the connection first.
        c.outbox = broker
            .wake(c.id)
            .expect("a hibernating connection is known");
        c.hibernating = false;
    }
    if !c.open {
        return;
    }
    c.pending.extend_from_slice(bytes);
    let mut used = 0;
    while let Some(rest) = c.pending.get(used..).filter(|r| !r.is_empty()) {
        match c.framing.decode(rest) {
            Ok(Status::Complete(d)) => {
                if let Packet::Connect(connect) = &d.packet {
                    c.answer_version.get_or_insert(connect.protocol);
                }
                broker.packet_received(c.id, &d.packet, d.consumed, now);
                used += d.consumed;
                if c.outbox.is_closed() {
                    c.open = false;
                    return;
                }
            }
            Ok(Status::Partial(_)) => break,
            Err(e) => {
                broker.decode_failed(c.id, e, now);
                c.open = false;
                return;
            }
        }
    }
    c.pending.drain(..used);
}

/// Everything the broker sent must decode, packet by packet, in the connection's version.
fn check_output(c: &Conn) {
    let mut out = Vec::new();
    c.outbox.drain_into(&mut out);
    let version = c.answer_version.unwrap_or(ProtocolVersion::V311);
    let mut rest = &out[..];
    while !rest.is_empty() {
        match decode(rest, DecodeOptions::new(version)) {
            Ok(Status::Complete(d)) => {
                if let Some(max) = c.max_in {
                    assert!(
                        d.consumed <= max as usize,
                        "packet of {} bytes to a client with Maximum Packet Size {max}",
                        d.consumed
                    );
                }
                rest = &rest[d.consumed..]
            }
            other => panic!("broker sent invalid bytes ({version:?}): {other:?} in {out:?}"),
        }
    }
}

/// Encode `p` as 5.0 and feed it to the connection.
fn feed_packet(broker: &mut Broker, c: &mut Conn, p: &Packet<'_>, now: u64) {
    let mut buf = vec![0u8; p.encoded_len(ProtocolVersion::V5).unwrap_or(0)];
    if let Ok(n) = p.encode(ProtocolVersion::V5, &mut buf) {
        feed(broker, c, &buf[..n], now);
    }
}

/// A 5.0 CONNECT whose properties come from `arg` and `extra`.
fn connect_v5(broker: &mut Broker, c: &mut Conn, arg: u8, extra: u8, now: u64) {
    let ids = ["a", "b", "c", ""];
    let will_props = Properties {
        will_delay_interval: Some(u32::from(extra & 0x03)),
        message_expiry_interval: (extra & 0x04 != 0).then_some(1),
        content_type: Some("text/plain"),
        ..NO_PROPERTIES
    };
    let max_in = (arg & 0x40 != 0).then_some(24 + u32::from(extra));
    let properties = Properties {
        session_expiry_interval: match arg & 0x0C {
            0 => None,
            0x04 => Some(1),
            0x08 => Some(3),
            _ => Some(u32::MAX),
        },
        receive_maximum: NonZeroU16::new(u16::from(extra >> 6)),
        maximum_packet_size: max_in.and_then(NonZeroU32::new),
        topic_alias_maximum: Some(u16::from(extra >> 4 & 0x03)),
        request_response_information: Some(extra & 0x08 != 0),
        authentication_method: (arg & 0x80 != 0).then_some(HmacChallenge::METHOD),
        authentication_data: (arg & 0x80 != 0).then_some(b"user".as_slice()),
        ..NO_PROPERTIES
    };
    let connect = Packet::Connect(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: arg & 0x10 != 0,
        keep_alive: u16::from(arg & 0x20) / 32,
        client_id: ids[usize::from(arg & 0x03)],
        will: (extra & 0x01 != 0).then(|| Will {
            topic: TopicName::new("will/t").expect("topic"),
            payload: b"bye",
            qos: QoS::AtLeastOnce,
            retain: extra & 0x02 != 0,
            properties: will_props,
        }),
        username: None,
        password: None,
        properties,
    });
    c.max_in = max_in;
    feed_packet(broker, c, &connect, now);
}

/// A well-formed 5.0 packet chosen by `arg` and `extra`.
fn packet_v5(broker: &mut Broker, c: &mut Conn, arg: u8, extra: u8, now: u64) {
    let topics = ["t", "t/a", "will/t", "$SYS/x"];
    let filters = ["t", "t/+", "#", "$share/g/t/#", "$share/h/+", "will/#"];
    let pid = PacketId::new(u16::from(extra % 4) + 1).expect("pid");
    let qos = QoS::from_bits(arg & 0x03).unwrap_or(QoS::AtMostOnce);
    match arg >> 5 {
        0 | 1 | 2 => {
            let alias = NonZeroU16::new(u16::from(extra >> 6));
            let topic = if extra & 0x20 != 0 && alias.is_some() {
                TopicName::alias_only()
            } else {
                TopicName::new(topics[usize::from(extra >> 2 & 0x03)]).expect("topic")
            };
            let user = [("k", "v"), ("k", "w")];
            let p = Packet::Publish(Publish {
                dup: false,
                qos_pid: match qos {
                    QoS::AtMostOnce => QosPid::AtMostOnce,
                    q => QosPid::new(q, pid),
                },
                retain: arg & 0x04 != 0,
                topic,
                properties: Properties {
                    topic_alias: alias,
                    message_expiry_interval: (arg & 0x08 != 0).then_some(u32::from(extra & 3)),
                    payload_format_indicator: (arg & 0x10 != 0).then_some(PayloadFormat::Utf8),
                    user_properties: List::new(&user),
                    correlation_data: Some(b"c"),
                    ..NO_PROPERTIES
                },
                payload: if extra & 0x01 != 0 {
                    b"\xff\xfe".as_slice()
                } else {
                    b"payload"
                },
            });
            feed_packet(broker, c, &p, now);
        }
        3 | 4 => {
            let subs = [Subscription {
                filter: TopicFilter::new(filters[usize::from(extra) % filters.len()])
                    .expect("filter"),
                options: SubscriptionOptions {
                    qos,
                    no_local: arg & 0x04 != 0,
                    retain_as_published: arg & 0x08 != 0,
                    retain_handling: match arg >> 3 & 0x03 {
                        0 => RetainHandling::SendAtSubscribe,
                        1 => RetainHandling::SendIfNew,
                        _ => RetainHandling::DoNotSend,
                    },
                },
            }];
            let ids = [u32::from(extra) + 1];
            let p = Packet::Subscribe(Subscribe {
                packet_id: pid,
                properties: Properties {
                    subscription_identifiers: List::new(if arg & 0x10 != 0 {
                        ids.as_slice()
                    } else {
                        &[]
                    }),
                    ..NO_PROPERTIES
                },
                subscriptions: List::new(&subs),
            });
            feed_packet(broker, c, &p, now);
        }
        5 => {
            let f = [TopicFilter::new(filters[usize::from(extra) % filters.len()]).expect("f")];
            let p = Packet::Unsubscribe(Unsubscribe {
                packet_id: pid,
                properties: NO_PROPERTIES,
                filters: List::new(&f),
            });
            feed_packet(broker, c, &p, now);
        }
        6 => {
            let p = match arg & 0x03 {
                0 => Packet::PubRel(Ack::new(pid)),
                1 => Packet::PubAck(Ack::new(pid)),
                2 => Packet::PubRec(Ack::new(pid)),
                _ => Packet::PubComp(Ack::new(pid)),
            };
            feed_packet(broker, c, &p, now);
        }
        _ => {
            let p = if arg & 0x10 != 0 {
                Packet::Auth(Auth {
                    reason_code: if arg & 0x01 != 0 {
                        ReasonCode::RE_AUTHENTICATE
                    } else {
                        ReasonCode::CONTINUE_AUTHENTICATION
                    },
                    properties: Properties {
                        authentication_method: Some(HmacChallenge::METHOD),
                        authentication_data: Some(if arg & 0x02 != 0 {
                            b"user".as_slice()
                        } else {
                            b"xx"
                        }),
                        ..NO_PROPERTIES
                    },
                })
            } else {
                Packet::Disconnect(Disconnect {
                    reason_code: if arg & 0x01 != 0 {
                        ReasonCode::DISCONNECT_WITH_WILL
                    } else {
                        ReasonCode::SUCCESS
                    },
                    properties: Properties {
                        session_expiry_interval: (arg & 0x02 != 0).then_some(u32::from(extra)),
                        ..NO_PROPERTIES
                    },
                })
            };
            feed_packet(broker, c, &p, now);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut broker = Broker::new(config(), 0);
    broker.add_authenticator(Arc::new(HmacChallenge::new().user("user", b"secret")));
    let mut conns: Vec<Conn> = Vec::new();
    let mut now = 0u64;
    let mut input = data;
    let mut take = |n: usize| -> &[u8] {
        let (head, tail) = input.split_at(n.min(input.len()));
        input = tail;
        head
    };
    while let [op] = take(1) {
        let op = *op;
        let arg = take(1).first().copied().unwrap_or(0);
        match op % 8 {
            0 => {
                let peer = "127.0.0.1:40000".parse().expect("address");
                let Some((id, outbox)) = broker.connection_opened(peer, 1883, now) else {
                    continue;
                };
                let mut c = Conn {
                    id,
                    outbox,
                    framing: Framing::new(broker.config()),
                    answer_version: None,
                    pending: Vec::new(),
                    open: true,
                    max_in: None,
                    hibernating: false,
                };
                if arg & 0x80 == 0 {
                    let ids = ["a", "b", "c", ""];
                    let protocol = match arg & 0x30 {
                        0x10 => ProtocolVersion::V31,
                        0x20 => ProtocolVersion::V5,
                        _ => ProtocolVersion::V311,
                    };
                    let connect = Packet::Connect(Connect {
                        protocol,
                        clean_start: arg & 0x04 != 0,
                        keep_alive: u16::from(arg & 0x08) / 8,
                        client_id: ids[usize::from(arg & 0x03)],
                        will: None,
                        username: None,
                        password: None,
                        properties: NO_PROPERTIES,
                    });
                    let mut buf = [0u8; 64];
                    let n = connect.encode(protocol, &mut buf).expect("CONNECT encodes");
                    feed(&mut broker, &mut c, &buf[..n], now);
                }
                conns.push(c);
            }
            1 | 2 => {
                let len = usize::from(take(1).first().copied().unwrap_or(0));
                let chunk = take(len).to_vec();
                let index = usize::from(arg) % conns.len().max(1);
                if let Some(c) = conns.get_mut(index) {
                    feed(&mut broker, c, &chunk, now);
                }
            }
            3 => {
                now += u64::from(arg) * 50;
                broker.handle_timeout(now);
            }
            4 => {
                let index = usize::from(arg) % conns.len().max(1);
                if let Some(c) = conns.get_mut(index) {
                    broker.connection_lost(c.id, now);
                    c.open = false;
                }
            }
            5 => {
                let index = usize::from(arg & 0x7f) % conns.len().max(1);
                if let Some(c) = conns.get_mut(index) {
                    if !c.hibernating {
                        check_output(c);
                        // Quiet now: hibernate, as the shell would.
                        if arg & 0x80 != 0 && c.open && broker.hibernate(c.id) {
                            c.hibernating = true;
                        }
                    }
                }
            }
            6 => {
                let extra = take(1).first().copied().unwrap_or(0);
                let peer = "127.0.0.1:40001".parse().expect("address");
                let Some((id, outbox)) = broker.connection_opened(peer, 1883, now) else {
                    continue;
                };
                let mut c = Conn {
                    id,
                    outbox,
                    framing: Framing::new(broker.config()),
                    answer_version: Some(ProtocolVersion::V5),
                    pending: Vec::new(),
                    open: true,
                    max_in: None,
                    hibernating: false,
                };
                connect_v5(&mut broker, &mut c, arg, extra, now);
                conns.push(c);
            }
            _ => {
                let extra = take(1).first().copied().unwrap_or(0);
                let sel = take(1).first().copied().unwrap_or(0);
                let index = usize::from(sel) % conns.len().max(1);
                if let Some(c) = conns.get_mut(index) {
                    if c.answer_version == Some(ProtocolVersion::V5) {
                        packet_v5(&mut broker, c, arg, extra, now);
                    }
                }
            }
        }
        absorb_woken(&mut broker, &mut conns);
    }
    for c in &conns {
        check_output(c);
    }
    broker.shutdown();
    absorb_woken(&mut broker, &mut conns);
    for c in conns.iter().filter(|c| c.open) {
        assert!(
            !c.hibernating,
            "shutdown wakes every hibernating connection"
        );
        assert!(c.outbox.is_closed(), "shutdown closes every connection");
    }
});
