//! Application messages as the broker stores and forwards them, and the per-connection output
//! items built from them.
//!
//! A [`Message`] is encoded at most twice per protocol family in its life (once without and once
//! with a packet identifier; 3.1/3.1.1 share one pair, 5.0 has its own because its PUBLISH has a
//! property block), however many subscribers receive it: every subscriber shares the same bytes,
//! and the writer only patches the first byte (DUP/QoS/RETAIN) and the packet identifier while
//! copying into its socket buffer. That is what makes fan-out cheap.
//!
//! A 5.0 delivery whose properties differ per subscriber — Subscription Identifiers, a Message
//! Expiry Interval already counted down by the time the message waited, an outbound Topic
//! Alias — is encoded for that delivery alone ([`Delivery`]).

use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use wren_codec::{
    List, Packet, PacketId, PayloadFormat, ProtocolVersion, Publish, QoS, QosPid, TopicName,
    properties::{NO_PROPERTIES, Properties},
};

/// The 5.0 properties a PUBLISH (or a will) carries that the broker forwards unchanged
/// ([MQTT-3.3.2-4], [MQTT-3.3.2-15] … [MQTT-3.3.2-20]): every 5.0 subscriber gets them as
/// published, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    /// Payload Format Indicator.
    pub payload_format: Option<PayloadFormat>,
    /// Content Type.
    pub content_type: Option<Box<str>>,
    /// Response Topic.
    pub response_topic: Option<Box<str>>,
    /// Correlation Data.
    pub correlation_data: Option<Box<[u8]>>,
    /// User Properties, order kept ([MQTT-3.3.2-18]).
    pub user_properties: Vec<(Box<str>, Box<str>)>,
}

impl MessageProperties {
    /// The forwarded properties of a PUBLISH or will; `None` if it has none (the common case,
    /// which then costs no allocation).
    pub fn from_packet(p: &Properties<'_>) -> Option<Box<MessageProperties>> {
        if p.payload_format_indicator.is_none()
            && p.content_type.is_none()
            && p.response_topic.is_none()
            && p.correlation_data.is_none()
            && p.user_properties.is_empty()
        {
            return None;
        }
        Some(Box::new(MessageProperties {
            payload_format: p.payload_format_indicator,
            content_type: p.content_type.map(Into::into),
            response_topic: p.response_topic.map(|t| t.as_str().into()),
            correlation_data: p.correlation_data.map(Into::into),
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }))
    }
}

/// What makes one 5.0 delivery of a message differ from the shared encoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery<'a> {
    /// Now, in the broker's milliseconds: the Message Expiry Interval sent is the published one
    /// minus the whole seconds the message waited ([MQTT-3.3.2-6]).
    pub now_ms: u64,
    /// Subscription Identifiers of the subscriptions that matched ([MQTT-3.3.4-3]).
    pub subscription_ids: &'a [u32],
    /// An outbound Topic Alias, and whether the topic name is sent along (first use of the
    /// alias) or left empty.
    pub topic_alias: Option<(NonZeroU16, bool)>,
}

/// An application message: topic, payload, the QoS it was published with, its RETAIN flag and
/// (5.0) its properties and expiry.
#[derive(Debug)]
pub struct Message {
    topic: Box<str>,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    properties: Option<Box<MessageProperties>>,
    /// Message Expiry Interval in seconds, and when the broker received the message (ms).
    expiry: Option<(u32, u64)>,
    /// 3.1.1 PUBLISH at QoS 0 (no packet identifier), encoded on first use.
    without_pid: OnceLock<Bytes>,
    /// 3.1.1 PUBLISH at QoS 1 with a placeholder packet identifier, encoded on first use; serves
    /// QoS 1 and QoS 2 deliveries (same length, only flags and identifier differ).
    with_pid: OnceLock<Bytes>,
    /// The same two for 5.0 connections (no per-subscriber properties).
    v5_without_pid: OnceLock<Bytes>,
    v5_with_pid: OnceLock<Bytes>,
    /// Its id in the durable store once stored there (0: not stored; `crate::store`), so that
    /// a message many persistent sessions hold is stored once.
    store_id: AtomicU64,
}

impl Message {
    /// A message; the topic is assumed valid (it came out of the codec or the broker itself).
    pub fn new(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Arc<Message> {
        Self::with_properties(topic, payload, qos, retain, &NO_PROPERTIES, 0)
    }

    /// A message with the properties of its PUBLISH (or will), received at `now_ms`.
    pub fn with_properties(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: &Properties<'_>,
        now_ms: u64,
    ) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain,
            properties: MessageProperties::from_packet(properties),
            expiry: properties.message_expiry_interval.map(|e| (e, now_ms)),
            without_pid: OnceLock::new(),
            with_pid: OnceLock::new(),
            v5_without_pid: OnceLock::new(),
            v5_with_pid: OnceLock::new(),
            store_id: AtomicU64::new(0),
        })
    }

    /// A message from its parts (the durable store's recovery): `expiry` is the Message Expiry
    /// Interval left and the broker time it counts from.
    pub fn from_parts(
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Option<Box<MessageProperties>>,
        expiry: Option<(u32, u64)>,
    ) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload,
            qos,
            retain,
            properties,
            expiry,
            without_pid: OnceLock::new(),
            with_pid: OnceLock::new(),
            v5_without_pid: OnceLock::new(),
            v5_with_pid: OnceLock::new(),
            store_id: AtomicU64::new(0),
        })
    }

    /// The topic the message was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The QoS it was published with.
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// Whether it was published with RETAIN.
    pub fn retain(&self) -> bool {
        self.retain
    }

    /// The forwarded 5.0 properties.
    pub fn properties(&self) -> Option<&MessageProperties> {
        self.properties.as_deref()
    }

    /// The message as published at `now_ms`: a will is built at CONNECT but published later,
    /// and its Message Expiry Interval counts from the publication.
    pub fn restamped(self: &Arc<Self>, now_ms: u64) -> Arc<Message> {
        let Some((secs, _)) = self.expiry else {
            return Arc::clone(self);
        };
        Arc::new(Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
            expiry: Some((secs, now_ms)),
            without_pid: OnceLock::new(),
            with_pid: OnceLock::new(),
            v5_without_pid: OnceLock::new(),
            v5_with_pid: OnceLock::new(),
            store_id: AtomicU64::new(0),
        })
    }

    /// Its Message Expiry Interval in seconds and when the broker received it (broker ms).
    pub fn expiry(&self) -> Option<(u32, u64)> {
        self.expiry
    }

    /// Its id in the durable store (0: not stored).
    pub fn store_id(&self) -> u64 {
        self.store_id.load(Ordering::Relaxed)
    }

    /// Remember its id in the durable store.
    pub fn set_store_id(&self, id: u64) {
        self.store_id.store(id, Ordering::Relaxed);
    }

    /// Whether it has a Message Expiry Interval.
    pub fn expires(&self) -> bool {
        self.expiry.is_some()
    }

    /// Whether its Message Expiry Interval has passed at `now_ms` ([MQTT-3.3.2-5] (5.0)).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expiry.is_some_and(|(secs, received)| {
            now_ms.saturating_sub(received) >= u64::from(secs).saturating_mul(1000)
        })
    }

    /// The Message Expiry Interval to send at `now_ms`: the published one minus the whole
    /// seconds waited.
    pub fn remaining_expiry(&self, now_ms: u64) -> Option<u32> {
        self.expiry.map(|(secs, received)| {
            let waited = now_ms.saturating_sub(received) / 1000;
            secs.saturating_sub(u32::try_from(waited).unwrap_or(u32::MAX))
        })
    }

    /// Whether a delivery at `now_ms` with `d` can use the shared 5.0 encoding.
    fn shared_v5(&self, d: &Delivery<'_>) -> bool {
        d.subscription_ids.is_empty()
            && d.topic_alias.is_none()
            && self.remaining_expiry(d.now_ms) == self.expiry.map(|(s, _)| s)
    }

    /// Encode the message as a PUBLISH with these delivery parameters.
    fn encode(
        &self,
        version: ProtocolVersion,
        qos_pid: QosPid,
        dup: bool,
        retain: bool,
        d: &Delivery<'_>,
    ) -> Bytes {
        let (topic, alias) = match d.topic_alias {
            Some((alias, true)) => (TopicName::new(&self.topic).ok(), Some(alias)),
            Some((alias, false)) => (Some(TopicName::alias_only()), Some(alias)),
            None => (TopicName::new(&self.topic).ok(), None),
        };
        let Some(topic) = topic else {
            return Bytes::new();
        };
        let user: Vec<(&str, &str)>;
        let mut properties = NO_PROPERTIES;
        if version.is_v5() {
            if let Some(p) = &self.properties {
                user = p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (&**k, &**v))
                    .collect();
                properties.payload_format_indicator = p.payload_format;
                properties.content_type = p.content_type.as_deref();
                properties.response_topic = p
                    .response_topic
                    .as_deref()
                    .and_then(|t| TopicName::new(t).ok());
                properties.correlation_data = p.correlation_data.as_deref();
                properties.user_properties = List::new(&user);
            }
            properties.message_expiry_interval = self.remaining_expiry(d.now_ms);
            properties.subscription_identifiers = List::new(d.subscription_ids);
            properties.topic_alias = alias;
        }
        let packet = Packet::Publish(Publish {
            dup,
            qos_pid,
            retain,
            topic,
            properties,
            payload: &self.payload,
        });
        let mut buf = vec![0u8; packet.encoded_len(version).unwrap_or(0)];
        match packet.encode(version, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Bytes::from(buf)
            }
            Err(_) => Bytes::new(),
        }
    }

    /// The output item that delivers this message to a connection speaking `version`, with no
    /// per-subscriber properties (see [`Message::delivery_with`]).
    #[inline]
    pub fn delivery(
        &self,
        version: ProtocolVersion,
        qos: QoS,
        pid: Option<PacketId>,
        dup: bool,
        retain: bool,
    ) -> Out {
        if version.is_v5() {
            return self.delivery_with(version, qos, pid, dup, retain, &Delivery::default());
        }
        // The 3.1.1 fan-out path: straight to the shared encoding.
        let (qos_pid, flags) = delivery_flags(qos, pid, dup, retain);
        self.shared_delivery(false, qos_pid, flags, 0)
    }

    /// The output item that delivers this message to a connection speaking `version`.
    ///
    /// `pid` is `None` for a QoS 0 delivery. Deliveries share one cached encoding per protocol
    /// family unless `d` asks for per-subscriber 5.0 properties.
    pub fn delivery_with(
        &self,
        version: ProtocolVersion,
        qos: QoS,
        pid: Option<PacketId>,
        dup: bool,
        retain: bool,
        d: &Delivery<'_>,
    ) -> Out {
        let (qos_pid, flags) = delivery_flags(qos, pid, dup, retain);
        let v5 = version.is_v5();
        if v5 && !self.shared_v5(d) {
            let dup = flags & 0x08 != 0;
            return Out::Raw(self.encode(version, qos_pid, dup, retain, d));
        }
        self.shared_delivery(v5, qos_pid, flags, d.now_ms)
    }

    /// A delivery from the shared encoding of its protocol family (3.1 and 3.1.1 PUBLISH
    /// encodings are identical), encoded on first use.
    #[inline]
    fn shared_delivery(&self, v5: bool, qos_pid: QosPid, flags: u8, now_ms: u64) -> Out {
        let family = if v5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V311
        };
        let base = Delivery {
            now_ms,
            ..Delivery::default()
        };
        match qos_pid.packet_id() {
            None => {
                let cell = if v5 {
                    &self.v5_without_pid
                } else {
                    &self.without_pid
                };
                Out::Publish {
                    template: cell
                        .get_or_init(|| {
                            self.encode(family, QosPid::AtMostOnce, false, false, &base)
                        })
                        .clone(),
                    flags,
                    pid: None,
                }
            }
            Some(id) => {
                let cell = if v5 {
                    &self.v5_with_pid
                } else {
                    &self.with_pid
                };
                let template = cell
                    .get_or_init(|| {
                        let placeholder = PacketId::new(1).map(QosPid::AtLeastOnce);
                        self.encode(
                            family,
                            placeholder.unwrap_or(QosPid::AtMostOnce),
                            false,
                            false,
                            &base,
                        )
                    })
                    .clone();
                let offset = if v5 {
                    pid_offset(&template, self.topic.len())
                } else {
                    // 3.1.1 has nothing between the packet identifier and the payload.
                    template
                        .len()
                        .saturating_sub(self.payload.len())
                        .saturating_sub(2)
                };
                Out::Publish {
                    template,
                    flags,
                    pid: Some((id, offset)),
                }
            }
        }
    }
}

/// The PUBLISH's QoS and packet id, and the low nibble of its first byte (DUP, QoS, RETAIN).
#[inline]
fn delivery_flags(qos: QoS, pid: Option<PacketId>, dup: bool, retain: bool) -> (QosPid, u8) {
    let qos_pid = match pid {
        Some(id) => QosPid::new(qos, id),
        None => QosPid::AtMostOnce,
    };
    let dup = dup && qos_pid != QosPid::AtMostOnce;
    let flags = (u8::from(dup) << 3) | (qos_pid.qos().bits() << 1) | u8::from(retain);
    (qos_pid, flags)
}

/// Offset of the packet identifier in an encoded PUBLISH: after the fixed header (the type
/// byte and the Remaining Length's bytes) and the topic name (two length bytes and the topic).
fn pid_offset(packet: &[u8], topic_len: usize) -> usize {
    let length_bytes = packet
        .iter()
        .skip(1)
        .take(4)
        .position(|b| b & 0x80 == 0)
        .map_or(1, |p| p.saturating_add(1));
    1usize
        .saturating_add(length_bytes)
        .saturating_add(2)
        .saturating_add(topic_len)
}

/// One item queued for a connection's socket.
#[derive(Debug, Clone)]
pub enum Out {
    /// Encoded bytes, sent as they are (possibly shared with other connections).
    Raw(Bytes),
    /// A short control packet (acknowledgements, PINGRESP): kept inline, no allocation.
    Inline {
        /// Packet bytes; only the first `len` are sent.
        buf: [u8; 8],
        /// Length.
        len: u8,
    },
    /// A shared PUBLISH encoding, sent with its own flags and packet identifier.
    Publish {
        /// The shared encoding.
        template: Bytes,
        /// Low nibble of the first byte: DUP, QoS, RETAIN.
        flags: u8,
        /// Packet identifier and its offset in `template`, for QoS 1 and 2.
        pid: Option<(PacketId, usize)>,
    },
}

impl Out {
    /// A control packet encoded inline (falls back to `Raw` if it is longer than 8 bytes).
    pub fn packet(packet: &Packet<'_>, version: ProtocolVersion) -> Out {
        let mut buf = [0u8; 8];
        match packet.encode(version, &mut buf) {
            Ok(n) => Out::Inline {
                buf,
                len: n.try_into().unwrap_or(0),
            },
            Err(_) => {
                let mut v = vec![0u8; packet.encoded_len(version).unwrap_or(0)];
                let n = packet.encode(version, &mut v).unwrap_or(0);
                v.truncate(n);
                Out::Raw(Bytes::from(v))
            }
        }
    }

    /// Bytes this item puts on the wire.
    pub fn len(&self) -> usize {
        match self {
            Out::Raw(b) => b.len(),
            Out::Inline { len, .. } => usize::from(*len),
            Out::Publish { template, .. } => template.len(),
        }
    }

    /// Whether the item is empty (an encoding that failed; never sent).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append the item's bytes to `buf`.
    pub fn write_to(&self, buf: &mut Vec<u8>) {
        match self {
            Out::Raw(b) => buf.extend_from_slice(b),
            Out::Inline { buf: b, len } => {
                buf.extend_from_slice(b.get(..usize::from(*len)).unwrap_or_default())
            }
            Out::Publish {
                template,
                flags,
                pid,
            } => {
                let start = buf.len();
                buf.extend_from_slice(template);
                let Some(packet) = buf.get_mut(start..) else {
                    return;
                };
                if let Some(first) = packet.first_mut() {
                    *first = 0x30 | flags;
                }
                if let Some((id, offset)) = pid
                    && let Some(slot) = packet.get_mut(*offset..offset.saturating_add(2))
                {
                    slot.copy_from_slice(&id.get().to_be_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_codec::{DecodeOptions, Status, decode};

    fn decode_publish(bytes: &[u8]) -> (bool, QosPid, bool, String, Vec<u8>) {
        let opts = DecodeOptions::new(ProtocolVersion::V311);
        let Ok(Status::Complete(d)) = decode(bytes, opts) else {
            panic!("not a packet: {bytes:?}")
        };
        assert_eq!(d.consumed, bytes.len());
        let Packet::Publish(p) = d.packet else {
            panic!("not a publish")
        };
        (
            p.dup,
            p.qos_pid,
            p.retain,
            p.topic.as_str().to_owned(),
            p.payload.to_vec(),
        )
    }

    #[test]
    fn deliveries_share_one_encoding_and_patch_flags_and_id() {
        let m = Message::new("a/b", b"hello", QoS::ExactlyOnce, true);
        let pid = |v| PacketId::new(v).unwrap();
        let d1 = m.delivery(
            ProtocolVersion::V311,
            QoS::AtLeastOnce,
            Some(pid(7)),
            false,
            false,
        );
        let d2 = m.delivery(
            ProtocolVersion::V311,
            QoS::ExactlyOnce,
            Some(pid(0x1234)),
            true,
            true,
        );
        let (Out::Publish { template: t1, .. }, Out::Publish { template: t2, .. }) = (&d1, &d2)
        else {
            panic!("expected shared publishes")
        };
        assert_eq!(t1.as_ptr(), t2.as_ptr(), "one encoding shared");
        let mut buf = Vec::new();
        d1.write_to(&mut buf);
        assert_eq!(
            decode_publish(&buf),
            (
                false,
                QosPid::AtLeastOnce(pid(7)),
                false,
                "a/b".into(),
                b"hello".to_vec()
            )
        );
        buf.clear();
        d2.write_to(&mut buf);
        assert_eq!(
            decode_publish(&buf),
            (
                true,
                QosPid::ExactlyOnce(pid(0x1234)),
                true,
                "a/b".into(),
                b"hello".to_vec()
            )
        );
        buf.clear();
        let d0 = m.delivery(ProtocolVersion::V311, QoS::AtMostOnce, None, true, false);
        d0.write_to(&mut buf);
        assert_eq!(
            decode_publish(&buf),
            (
                false,
                QosPid::AtMostOnce,
                false,
                "a/b".into(),
                b"hello".to_vec()
            ),
            "DUP never set at QoS 0"
        );
    }

    #[test]
    fn v5_delivery_decodes_as_v5() {
        let m = Message::new("t", b"x", QoS::AtLeastOnce, false);
        let d = m.delivery(
            ProtocolVersion::V5,
            QoS::AtLeastOnce,
            PacketId::new(3),
            false,
            false,
        );
        let mut buf = Vec::new();
        d.write_to(&mut buf);
        let opts = DecodeOptions::new(ProtocolVersion::V5);
        let Ok(Status::Complete(dec)) = decode(&buf, opts) else {
            panic!()
        };
        let Packet::Publish(p) = dec.packet else {
            panic!()
        };
        assert_eq!((p.topic.as_str(), p.payload), ("t", &b"x"[..]));
    }

    #[test]
    fn v5_deliveries_share_one_encoding_unless_properties_differ() {
        let user = [("k", "v")];
        let props = Properties {
            content_type: Some("text/plain"),
            user_properties: List::new(&user),
            message_expiry_interval: Some(60),
            ..NO_PROPERTIES
        };
        let m = Message::with_properties("a/b", b"hello", QoS::AtLeastOnce, false, &props, 1000);
        let pid = |v| PacketId::new(v);
        let at = |now_ms| Delivery {
            now_ms,
            ..Delivery::default()
        };
        let v5 = ProtocolVersion::V5;
        let d1 = m.delivery_with(v5, QoS::AtLeastOnce, pid(7), false, false, &at(1500));
        let d2 = m.delivery_with(v5, QoS::AtLeastOnce, pid(0x1234), true, true, &at(1900));
        let (Out::Publish { template: t1, .. }, Out::Publish { template: t2, .. }) = (&d1, &d2)
        else {
            panic!("expected shared publishes: {d1:?}")
        };
        assert_eq!(t1.as_ptr(), t2.as_ptr(), "one 5.0 encoding shared");
        let decode5 = |out: &Out| {
            let mut buf = Vec::new();
            out.write_to(&mut buf);
            let Ok(Status::Complete(d)) = decode(&buf, DecodeOptions::new(v5)) else {
                panic!("{buf:?}")
            };
            let Packet::Publish(p) = d.packet else {
                panic!()
            };
            (
                p.qos_pid,
                p.dup,
                p.properties.message_expiry_interval,
                p.properties
                    .subscription_identifiers
                    .iter()
                    .collect::<Vec<_>>(),
                p.properties.content_type.map(str::to_owned),
                p.payload.to_vec(),
            )
        };
        let got = decode5(&d2);
        assert_eq!(
            got.0,
            QosPid::AtLeastOnce(pid(0x1234).unwrap()),
            "id patched"
        );
        assert!(got.1);
        assert_eq!(got.4.as_deref(), Some("text/plain"));
        assert_eq!(got.5, b"hello");
        // Subscription identifiers or a counted-down expiry: an encoding of its own.
        let ids = [3, 9];
        let d3 = m.delivery_with(
            v5,
            QoS::AtMostOnce,
            None,
            false,
            false,
            &Delivery {
                now_ms: 3500,
                subscription_ids: &ids,
                topic_alias: None,
            },
        );
        assert!(matches!(d3, Out::Raw(_)));
        let got = decode5(&d3);
        assert_eq!((got.2, got.3), (Some(58), vec![3, 9]));
        assert!(m.is_expired(61_000) && !m.is_expired(60_999));
        // 3.1.1 gets the message without properties, from its own shared encoding.
        let d4 = m.delivery(
            ProtocolVersion::V311,
            QoS::AtLeastOnce,
            pid(2),
            false,
            false,
        );
        let mut buf = Vec::new();
        d4.write_to(&mut buf);
        assert_eq!(decode_publish(&buf).4, b"hello");
    }

    #[test]
    fn inline_control_packets() {
        let ack = Packet::PubAck(wren_codec::Ack::new(PacketId::new(9).unwrap()));
        let out = Out::packet(&ack, ProtocolVersion::V311);
        assert!(matches!(out, Out::Inline { len: 4, .. }));
        let mut buf = Vec::new();
        out.write_to(&mut buf);
        assert_eq!(buf, [0x40, 0x02, 0x00, 0x09]);
    }
}
