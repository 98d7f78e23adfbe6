//! Application messages as the broker stores and forwards them, and the per-connection output
//! items built from them.
//!
//! A [`Message`] is encoded at most twice in its life (once without and once with a packet
//! identifier), however many subscribers receive it: every subscriber shares the same bytes, and
//! the writer only patches the first byte (DUP/QoS/RETAIN) and the packet identifier while copying
//! into its socket buffer. That is what makes fan-out cheap.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use wren_codec::{
    Packet, PacketId, ProtocolVersion, Publish, QoS, QosPid, TopicName, properties::NO_PROPERTIES,
};

/// An application message: topic, payload, the QoS it was published with and its RETAIN flag.
#[derive(Debug)]
pub struct Message {
    topic: Box<str>,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    /// 3.1.1 PUBLISH at QoS 0 (no packet identifier), encoded on first use.
    without_pid: OnceLock<Bytes>,
    /// 3.1.1 PUBLISH at QoS 1 with a placeholder packet identifier, encoded on first use; serves
    /// QoS 1 and QoS 2 deliveries (same length, only flags and identifier differ).
    with_pid: OnceLock<Bytes>,
}

impl Message {
    /// A message; the topic is assumed valid (it came out of the codec or the broker itself).
    pub fn new(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain,
            without_pid: OnceLock::new(),
            with_pid: OnceLock::new(),
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

    /// The message as a PUBLISH packet with these delivery parameters.
    fn packet(&self, qos_pid: QosPid, dup: bool, retain: bool) -> Option<Packet<'_>> {
        let topic = TopicName::new(&self.topic).ok()?;
        Some(Packet::Publish(Publish {
            dup,
            qos_pid,
            retain,
            topic,
            properties: NO_PROPERTIES,
            payload: &self.payload,
        }))
    }

    fn encode(&self, qos_pid: QosPid, version: ProtocolVersion) -> Bytes {
        let Some(packet) = self.packet(qos_pid, false, false) else {
            return Bytes::new();
        };
        let mut buf = vec![0u8; packet.encoded_len(version).unwrap_or(0)];
        match packet.encode(version, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Bytes::from(buf)
            }
            Err(_) => Bytes::new(),
        }
    }

    /// The output item that delivers this message to a connection speaking `version`.
    ///
    /// `pid` is `None` for a QoS 0 delivery. 3.1 and 3.1.1 connections share the cached
    /// encoding; a 5.0 connection gets its own (its PUBLISH has a property length).
    pub fn delivery(
        &self,
        version: ProtocolVersion,
        qos: QoS,
        pid: Option<PacketId>,
        dup: bool,
        retain: bool,
    ) -> Out {
        let qos_pid = match pid {
            Some(id) => QosPid::new(qos, id),
            None => QosPid::AtMostOnce,
        };
        let dup = dup && qos_pid != QosPid::AtMostOnce;
        let flags = (u8::from(dup) << 3) | (qos_pid.qos().bits() << 1) | u8::from(retain);
        if version.is_v5() {
            // Rare for now: 5.0 encodes per delivery.
            let Some(packet) = self.packet(qos_pid, dup, retain) else {
                return Out::Raw(Bytes::new());
            };
            let mut buf = vec![0u8; packet.encoded_len(version).unwrap_or(0)];
            let n = packet.encode(version, &mut buf).unwrap_or(0);
            buf.truncate(n);
            return Out::Raw(Bytes::from(buf));
        }
        match qos_pid.packet_id() {
            None => Out::Publish {
                template: self
                    .without_pid
                    .get_or_init(|| self.encode(QosPid::AtMostOnce, ProtocolVersion::V311))
                    .clone(),
                flags,
                pid: None,
            },
            Some(id) => {
                let template = self
                    .with_pid
                    .get_or_init(|| {
                        let placeholder = PacketId::new(1).map(QosPid::AtLeastOnce);
                        self.encode(
                            placeholder.unwrap_or(QosPid::AtMostOnce),
                            ProtocolVersion::V311,
                        )
                    })
                    .clone();
                // 3.1.1 has nothing between the packet identifier and the payload.
                let offset = template
                    .len()
                    .saturating_sub(self.payload.len())
                    .saturating_sub(2);
                Out::Publish {
                    template,
                    flags,
                    pid: Some((id, offset)),
                }
            }
        }
    }
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
    fn inline_control_packets() {
        let ack = Packet::PubAck(wren_codec::Ack::new(PacketId::new(9).unwrap()));
        let out = Out::packet(&ack, ProtocolVersion::V311);
        assert!(matches!(out, Out::Inline { len: 4, .. }));
        let mut buf = Vec::new();
        out.write_to(&mut buf);
        assert_eq!(buf, [0x40, 0x02, 0x00, 0x09]);
    }
}
