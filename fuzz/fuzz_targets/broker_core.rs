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
//!
//! Persistence: the core journals what must survive a restart, in the durable mode (output
//! waits for the batch it depends on; operations with the top bit set leave their changes to
//! the next batch) or the periodic one (nothing waits), as the first input byte says; the
//! changes are written to a durable store (`wren_broker::store`, in memory), and at the end a
//! broker rebuilt from what the store kept must have the same durable state (`DurableState`:
//! persistent sessions, their QoS 1/2 messages in order, QoS 2 ids awaiting PUBREL, retained
//! messages) as the one that ran.
//!
//! The core is driven by the broker's test harness, `wren_broker::testing::Driver`, which
//! decodes bytes as the shell does, absorbs the core's events as the shell does and checks, on
//! every drain, that the output decodes in the connection's version within the client's Maximum
//! Packet Size and that nothing but AUTH comes before the CONNACK; on every event, that a woken
//! connection was hibernating, that hibernating connections' old outboxes get nothing and that
//! congestion is reported only on live outboxes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use wren_broker::store::Store;
use wren_broker::testing::{Driver, DurableState};
use wren_broker::{Config, ConnId, HmacChallenge, Persistence};
use wren_codec::{
    Ack, Auth, Connect, Disconnect, List, Packet, PacketId, PayloadFormat, ProtocolVersion,
    Publish, QoS, QosPid, ReasonCode, RetainHandling, Subscribe, Subscription, SubscriptionOptions,
    TopicFilter, TopicName, Unsubscribe, Will,
    properties::{NO_PROPERTIES, Properties},
};

const MAX_PACKET: u32 = 4096;

thread_local! {
    /// One in-memory store for every input, cleared at the start of each (making one costs
    /// milliseconds, which would slow the fuzzer a hundredfold).
    static STORE: std::cell::RefCell<Store> =
        std::cell::RefCell::new(Store::in_memory().expect("an in-memory store"));
}

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

/// A 5.0 CONNECT whose properties come from `arg` and `extra`.
fn connect_v5(t: &mut Driver, c: ConnId, arg: u8, extra: u8) {
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
        bridge: false,
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
    // The driver holds the output to the CONNECT's Maximum Packet Size.
    t.send_encoded(c, connect);
}

/// A well-formed 5.0 packet chosen by `arg` and `extra`.
fn packet_v5(t: &mut Driver, c: ConnId, arg: u8, extra: u8) {
    let topics = ["t", "t/a", "will/t", "$SYS/x"];
    let filters = ["t", "t/+", "#", "$share/g/t/#", "$share/h/+", "will/#"];
    let pid = PacketId::new(u16::from(extra % 4) + 1).expect("pid");
    let qos = QoS::from_bits(arg & 0x03).unwrap_or(QoS::AtMostOnce);
    match arg >> 5 {
        0..=2 => {
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
            t.send_encoded(c, p);
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
            t.send_encoded(c, p);
        }
        5 => {
            let f = [TopicFilter::new(filters[usize::from(extra) % filters.len()]).expect("f")];
            let p = Packet::Unsubscribe(Unsubscribe {
                packet_id: pid,
                properties: NO_PROPERTIES,
                filters: List::new(&f),
            });
            t.send_encoded(c, p);
        }
        6 => {
            let p = match arg & 0x03 {
                0 => Packet::PubRel(Ack::new(pid)),
                1 => Packet::PubAck(Ack::new(pid)),
                2 => Packet::PubRec(Ack::new(pid)),
                _ => Packet::PubComp(Ack::new(pid)),
            };
            t.send_encoded(c, p);
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
            t.send_encoded(c, p);
        }
    }
}

/// Write the changes journalled since the last batch to the store, and tell the core (which
/// releases what waited for them).
fn commit(t: &mut Driver) {
    if let Some((batch, changes)) = t.broker.take_changes() {
        STORE.with_borrow_mut(|store| store.write(&changes).expect("the in-memory store writes"));
        t.broker.changes_committed(batch, t.now);
        t.absorb();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut t = Driver::new(config());
    t.broker
        .add_authenticator(Arc::new(HmacChallenge::new().user("user", b"secret")));
    // The first byte's low bit: the durable mode (output held until the batch recording what
    // it depends on is committed: QoS 2 deliveries to persistent sessions, the CONNACK of a
    // client with a will, acknowledgements) or the periodic one (nothing waits).
    let (durable, mut input) = match data.split_first() {
        Some((mode, rest)) => (mode & 1 == 1, rest),
        None => (false, data),
    };
    t.broker.set_persistence(if durable {
        Persistence::Durable
    } else {
        Persistence::Periodic
    });
    STORE.with_borrow_mut(|store| store.clear().expect("the in-memory store clears"));
    let mut take = |n: usize| -> &[u8] {
        let (head, tail) = input.split_at(n.min(input.len()));
        input = tail;
        head
    };
    // The connection an operand picks, among those opened so far.
    let pick = |t: &Driver, sel: u8| -> Option<ConnId> {
        let clients = t.clients();
        clients
            .get(usize::from(sel) % clients.len().max(1))
            .map(|c| c.id)
    };
    while let [op] = take(1) {
        let op = *op;
        let arg = take(1).first().copied().unwrap_or(0);
        match op % 8 {
            0 => {
                let Some(id) = t.open() else {
                    continue;
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
                        // A bridge (Mosquitto's try_private): No Local and Retain As Published
                        // on its subscriptions.
                        bridge: arg & 0x40 != 0,
                        clean_start: arg & 0x04 != 0,
                        keep_alive: u16::from(arg & 0x08) / 8,
                        client_id: ids[usize::from(arg & 0x03)],
                        will: None,
                        username: None,
                        password: None,
                        properties: NO_PROPERTIES,
                    });
                    t.send_encoded(id, connect);
                }
            }
            1 | 2 => {
                let len = usize::from(take(1).first().copied().unwrap_or(0));
                let chunk = take(len).to_vec();
                if let Some(id) = pick(&t, arg) {
                    t.feed(id, &chunk);
                }
            }
            3 => {
                let now = t.now + u64::from(arg) * 50;
                t.tick(now);
            }
            4 => {
                if let Some(id) = pick(&t, arg) {
                    t.lose(id);
                }
            }
            5 => {
                if let Some(id) = pick(&t, arg & 0x7f)
                    && !t.client(id).hibernating
                {
                    t.drain(id);
                    // Quiet now: hibernate, as the shell would.
                    if arg & 0x80 != 0 && t.client(id).open {
                        t.hibernate(id);
                    }
                }
            }
            6 => {
                let extra = take(1).first().copied().unwrap_or(0);
                let Some(id) = t.open() else {
                    continue;
                };
                connect_v5(&mut t, id, arg, extra);
            }
            _ => {
                let extra = take(1).first().copied().unwrap_or(0);
                let sel = take(1).first().copied().unwrap_or(0);
                if let Some(id) = pick(&t, sel)
                    && t.client(id).version == Some(ProtocolVersion::V5)
                {
                    packet_v5(&mut t, id, arg, extra);
                }
            }
        }
        t.absorb();
        // (Durable mode: an operation with the top bit set leaves its changes to the next
        // batch, so held output waits across operations.)
        if !durable || op & 0x80 == 0 {
            commit(&mut t);
        }
    }
    commit(&mut t);
    // What the store kept rebuilds the same durable state.
    let (restored, _) = STORE.with_borrow_mut(|store| store.recover().expect("the store recovers"));
    let mut rebuilt = Driver::new(config());
    rebuilt.broker.restore(restored, t.now);
    assert_eq!(
        DurableState::of(&t.broker),
        DurableState::of(&rebuilt.broker),
        "the store rebuilds what the broker had"
    );
    let ids: Vec<ConnId> = t.clients().iter().map(|c| c.id).collect();
    for &id in &ids {
        t.drain(id);
    }
    t.shutdown();
    for c in t.clients().iter().filter(|c| c.open) {
        assert!(
            !c.hibernating,
            "shutdown wakes every hibernating connection"
        );
        assert!(c.outbox.is_closed(), "shutdown closes every connection");
    }
});
