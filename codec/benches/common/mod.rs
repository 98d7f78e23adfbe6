//! The packets of the benchmark rows, shared by `benches/codec.rs` (criterion) and
//! `examples/callgrind.rs` (instruction counts), so both measure the same bytes.

use std::num::{NonZeroU16, NonZeroU32};
use wren_codec::{
    Connect, List, Packet, PacketId, Properties, ProtocolVersion, Publish, QoS, QosPid,
    RetainHandling, Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName, Will,
};

/// Exactly 16 bytes, as the task's PUBLISH rows require.
pub const TOPIC: &str = "sensors/dev01/tc";

pub const USER_PROPERTIES: [(&str, &str); 2] = [("region", "eu-west"), ("fw", "1.4.2")];

pub const FILTERS: [&str; 8] = [
    "site/+/temperature",
    "site/+/humidity",
    "site/kitchen/#",
    "alerts/#",
    "$SYS/broker/load/#",
    "cmd/dev01/+",
    "config/dev01",
    "+/status",
];

/// The same PUBLISH in both versions (no 5.0 properties): QoS 1, 16-byte topic.
pub fn publish(payload: &[u8]) -> Packet<'_> {
    Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::AtLeastOnce(PacketId::new(10).expect("non-zero")),
        retain: false,
        topic: TopicName::new(TOPIC).expect("valid topic"),
        properties: Properties::default(),
        payload,
    })
}

pub fn connect(protocol: ProtocolVersion) -> Packet<'static> {
    static USERS: [(&str, &str); 2] = USER_PROPERTIES;
    let v5 = protocol.is_v5();
    let properties = if v5 {
        Properties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(64),
            maximum_packet_size: NonZeroU32::new(1 << 20),
            topic_alias_maximum: Some(16),
            user_properties: List::new(&USERS),
            ..Properties::default()
        }
    } else {
        Properties::default()
    };
    let will_properties = if v5 {
        Properties {
            will_delay_interval: Some(30),
            message_expiry_interval: Some(600),
            content_type: Some("text/plain"),
            ..Properties::default()
        }
    } else {
        Properties::default()
    };
    Packet::Connect(Connect {
        protocol,
        bridge: false,
        clean_start: true,
        keep_alive: 60,
        client_id: "wren-bench-client-01",
        will: Some(Will {
            topic: TopicName::new("clients/wren-bench-client-01/status").expect("valid"),
            payload: b"offline",
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: will_properties,
        }),
        username: Some("alice"),
        password: Some(b"correct horse battery staple"),
        properties,
    })
}

pub fn subscribe<'a>(v5: bool, subs: &'a [Subscription<'a>]) -> Packet<'a> {
    static SUB_ID: [u32; 1] = [42];
    let properties = if v5 {
        Properties {
            subscription_identifiers: List::new(&SUB_ID),
            ..Properties::default()
        }
    } else {
        Properties::default()
    };
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(11).expect("non-zero"),
        properties,
        subscriptions: List::new(subs),
    })
}

/// Eight subscriptions; the 5.0 ones also use Retain As Published and Retain Handling (3.1.1
/// cannot carry them, so a 3.1.1 SUBSCRIBE would not decode back to the same packet).
pub fn subscriptions(v5: bool) -> Vec<Subscription<'static>> {
    FILTERS
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let qos = QoS::from_bits((i % 3) as u8).expect("0..=2");
            let options = if v5 {
                SubscriptionOptions {
                    qos,
                    no_local: false,
                    retain_as_published: i % 2 == 0,
                    retain_handling: if i % 4 == 0 {
                        RetainHandling::SendIfNew
                    } else {
                        RetainHandling::SendAtSubscribe
                    },
                }
            } else {
                SubscriptionOptions::qos(qos)
            };
            Subscription {
                filter: TopicFilter::new(f).expect("valid filter"),
                options,
            }
        })
        .collect()
}

/// What the wren decode row reads besides `decode` itself: every lazily decoded list.
pub fn read_lists(packet: &Packet<'_>) -> usize {
    match packet {
        Packet::Subscribe(s) => s
            .subscriptions
            .iter()
            .map(|sub| sub.filter.as_str().len() + usize::from(sub.options.to_byte()))
            .sum(),
        Packet::Connect(c) => c
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum(),
        Packet::Publish(p) => p.payload.len(),
        _ => 0,
    }
}
