//! PUBLISH (§3.3): an application message.

use crate::data::{
    PacketId, QoS, Writer, copy_into, copy_payload, frame_lengths, packet_buf, packet_id,
    plain_written, split_header, start_packet, str_len, utf8_scanned,
};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
use crate::topic::TopicName;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// QoS together with the packet identifier it requires: a QoS 0 PUBLISH has none
/// (`[MQTT-2.3.1-5]`), QoS 1 and 2 have a non-zero one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QosPid {
    /// QoS 0.
    AtMostOnce,
    /// QoS 1 with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet identifier.
    ExactlyOnce(PacketId),
}

impl QosPid {
    /// The QoS.
    pub const fn qos(self) -> QoS {
        match self {
            QosPid::AtMostOnce => QoS::AtMostOnce,
            QosPid::AtLeastOnce(_) => QoS::AtLeastOnce,
            QosPid::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, if QoS > 0.
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            QosPid::AtMostOnce => None,
            QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) => Some(id),
        }
    }

    /// Combine a QoS with a packet identifier (ignored for QoS 0).
    pub const fn new(qos: QoS, id: PacketId) -> Self {
        match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            QoS::AtLeastOnce => QosPid::AtLeastOnce(id),
            QoS::ExactlyOnce => QosPid::ExactlyOnce(id),
        }
    }
}

/// A PUBLISH packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Publish<'a> {
    /// DUP: this may be a re-delivery. Never set at QoS 0 (`[MQTT-3.3.1-2]`).
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos_pid: QosPid,
    /// RETAIN.
    pub retain: bool,
    /// Topic name; empty only in a 5.0 PUBLISH that carries a Topic Alias.
    pub topic: TopicName<'a>,
    /// 5.0 PUBLISH properties.
    pub properties: Properties<'a>,
    /// Application payload (may be empty).
    pub payload: &'a [u8],
}

// Inlined into `decode` so the 280-byte `Publish` is built in place rather than copied out
// through each `Result` layer (PUBLISH is the packet a broker decodes most).
#[inline]
pub(crate) fn parse(
    flags: u8,
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Publish<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let qos = QoS::from_bits((flags >> 1) & 0x03).ok_or(fail(DecodeError::InvalidQos))?;
    if dup && qos == QoS::AtMostOnce {
        return Err(fail(DecodeError::DupWithQos0));
    }
    let (i, (topic, found)) = utf8_scanned(i)?;
    let topic = TopicName::from_scanned(topic, found, true).map_err(fail)?;
    let (i, qos_pid) = match qos {
        QoS::AtMostOnce => (i, QosPid::AtMostOnce),
        QoS::AtLeastOnce => {
            let (i, id) = packet_id(i)?;
            (i, QosPid::AtLeastOnce(id))
        }
        QoS::ExactlyOnce => {
            let (i, id) = packet_id(i)?;
            (i, QosPid::ExactlyOnce(id))
        }
    };
    let (payload, properties) = if version.is_v5() {
        parse_properties(i, PropertyContext::Packet(PacketType::Publish))?
    } else {
        (i, Properties::default())
    };
    if topic.is_empty() {
        if !version.is_v5() {
            return Err(fail(DecodeError::EmptyTopic));
        }
        if properties.topic_alias.is_none() {
            return Err(fail(DecodeError::EmptyTopicWithoutAlias));
        }
    }
    Ok(Publish {
        dup,
        qos_pid,
        retain,
        topic,
        properties,
        payload,
    })
}

impl Publish<'_> {
    pub(crate) fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | (self.qos_pid.qos().bits() << 1) | u8::from(self.retain)
    }

    /// [`crate::Packet::encode`] for a PUBLISH, the packet a broker encodes most (once for every
    /// subscriber it forwards a message to): one function for each version, so that each stays
    /// small and the 3.1.1 one holds no property code. Called directly, it links no other
    /// packet's encoder and needs no [`crate::Packet`] on the stack.
    #[inline]
    pub fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !version.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        if version.is_v5() {
            self.encode_v5(buf)
        } else {
            self.encode_v311(buf)
        }
    }

    #[inline(never)]
    fn encode_v5(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.properties.surely_empty() {
            self.encode_plain(ProtocolVersion::V5, buf)
        } else {
            self.encode_with_properties(buf)
        }
    }

    #[inline(never)]
    fn encode_v311(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        // 3.1.1 carries no properties: they are left out, not checked.
        self.encode_plain(ProtocolVersion::V311, buf)
    }

    /// A 5.0 PUBLISH with properties: measured, checked and written by the general path.
    #[inline(never)]
    fn encode_with_properties(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let version = ProtocolVersion::V5;
        let (body, properties) = self.body_len(version)?;
        let first = ((PacketType::Publish as u8) << 4) | self.flags();
        let mut w = start_packet(buf, first, body)?;
        self.write(version, properties, &mut w);
        w.finish()
    }

    /// A PUBLISH without properties (3.1.1, or 5.0 with none set), the one a broker encodes
    /// most: the same checks, in the same order, and the same bytes as [`Self::body_len`] and
    /// [`Self::write`] with an empty property block, without a property field in sight, and
    /// written by cutting the buffer field by field rather than through a [`Writer`] (no
    /// position to keep, no overrun flag: the buffer is cut to the packet's length first, and
    /// what is left for the payload must be exactly the payload's length).
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn encode_plain(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.dup && self.qos_pid == QosPid::AtMostOnce {
            return Err(EncodeError::InvalidValue);
        }
        let topic = self.topic.as_str().as_bytes();
        // 1 to 65,535 bytes, in one test. (No property is set, so in 5.0 no Topic Alias
        // either: an empty topic is refused in both versions. A `TopicName` is never longer,
        // but its length is checked here as `body_len` checks it.)
        if topic.len().wrapping_sub(1) >= usize::from(u16::MAX) {
            return Err(if topic.is_empty() {
                EncodeError::InvalidValue
            } else {
                EncodeError::FieldTooLong
            });
        }
        let id = self.qos_pid.packet_id();
        // The topic's length, the packet identifier, and in 5.0 the property block: a lone 0
        // length.
        let fixed = usize::from(version.is_v5()).saturating_add(if id.is_some() { 4 } else { 2 });
        // Cannot wrap: a slice's length is at most `isize::MAX`, far below `usize::MAX` minus
        // the 65,540 bytes of the rest.
        let body = topic
            .len()
            .wrapping_add(fixed)
            .wrapping_add(self.payload.len());
        let first = ((PacketType::Publish as u8) << 4) | self.flags();
        // The header in one store for the one- and two-byte Remaining Lengths of packets up
        // to 16 KiB, each with its own copy of the body writes (no branch between the header
        // and them); longer packets out of line.
        let (total, written) = if body < 0x80 {
            let total = body.saturating_add(2);
            let out = packet_buf(buf, total)?;
            let header = [first, (body & 0x7F) as u8];
            (total, self.write_plain(version, out, header, topic, id))
        } else if body < 0x4000 {
            let total = body.saturating_add(3);
            let out = packet_buf(buf, total)?;
            let header = [first, (body & 0x7F) as u8 | 0x80, (body >> 7) as u8];
            (total, self.write_plain(version, out, header, topic, id))
        } else {
            return self.encode_plain_long(version, buf, first, body, topic, id);
        };
        plain_written(total, written)
    }

    /// [`Self::encode_plain`] for a body of 16 KiB and more.
    #[inline(never)]
    fn encode_plain_long(
        &self,
        version: ProtocolVersion,
        buf: &mut [u8],
        first: u8,
        body: usize,
        topic: &[u8],
        id: Option<PacketId>,
    ) -> Result<usize, EncodeError> {
        let (remaining, total) = frame_lengths(body)?;
        let out = packet_buf(buf, total)?;
        let written = split_header(out, first, remaining)
            .and_then(|rest| self.write_plain(version, rest, [], topic, id));
        plain_written(total, written)
    }

    /// Write what [`Self::encode_plain`] measured into `out`, cut to the packet's length,
    /// starting with the fixed header `header`.
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write_plain<const H: usize>(
        &self,
        version: ProtocolVersion,
        out: &mut [u8],
        header: [u8; H],
        topic: &[u8],
        id: Option<PacketId>,
    ) -> Option<()> {
        let (dst, rest) = out.split_first_chunk_mut::<H>()?;
        *dst = header;
        let (len, rest) = rest.split_first_chunk_mut::<2>()?;
        *len = u16::try_from(topic.len()).ok()?.to_be_bytes();
        let (topic_dst, rest) = rest.split_at_mut_checked(topic.len())?;
        copy_into(topic_dst, topic);
        let rest = match (id, version.is_v5()) {
            (Some(id), true) => {
                let (dst, rest) = rest.split_first_chunk_mut::<3>()?;
                let [a, b] = id.get().to_be_bytes();
                *dst = [a, b, 0];
                rest
            }
            (Some(id), false) => {
                let (dst, rest) = rest.split_first_chunk_mut::<2>()?;
                *dst = id.get().to_be_bytes();
                rest
            }
            (None, true) => {
                let (dst, rest) = rest.split_first_mut()?;
                *dst = 0;
                rest
            }
            (None, false) => rest,
        };
        if rest.len() != self.payload.len() {
            return None;
        }
        copy_payload(rest, self.payload);
        Some(())
    }

    /// [`crate::Packet::encoded_len`] for a PUBLISH: the length [`Self::encode`] writes.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if !version.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        crate::data::frame_lengths(self.body_len(version)?.0).map(|(_, total)| total)
    }

    /// The body length, and the length of the property items (5.0), checking the packet against
    /// the rules the decoder enforces.
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<(usize, Block), EncodeError> {
        if self.dup && self.qos_pid == QosPid::AtMostOnce {
            return Err(EncodeError::InvalidValue);
        }
        if self.topic.is_empty() && !(version.is_v5() && self.properties.topic_alias.is_some()) {
            return Err(EncodeError::InvalidValue);
        }
        let mut body = str_len(self.topic.as_str())?;
        if self.qos_pid.packet_id().is_some() {
            body = body.saturating_add(2);
        }
        // 3.1.1 carries no properties: they are left out, not checked.
        let mut properties = Block::EMPTY;
        if version.is_v5() {
            // Most PUBLISH packets carry no properties; the others are measured out of line, so
            // that the common path keeps no property field live.
            if !self.properties.surely_empty() {
                properties = self.properties_len()?;
            }
            body = body.saturating_add(block_len(properties)?);
        }
        // Saturating: anything near usize::MAX is far above the largest Remaining Length.
        Ok((body.saturating_add(self.payload.len()), properties))
    }

    #[inline(never)]
    fn properties_len(&self) -> Result<Block, EncodeError> {
        self.properties
            .items_len(PropertyContext::Packet(PacketType::Publish))
    }

    /// Write the body [`Self::body_len`] measured (`properties`: its property items length).
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) fn write(&self, version: ProtocolVersion, properties: Block, w: &mut Writer<'_>) {
        w.str(self.topic.as_str());
        if let Some(id) = self.qos_pid.packet_id() {
            w.u16(id.get());
        }
        if version.is_v5() {
            if properties.is_empty() {
                w.u8(0);
            } else {
                self.write_properties(properties, w);
            }
        }
        w.put(self.payload);
    }

    #[inline(never)]
    fn write_properties(&self, properties: Block, w: &mut Writer<'_>) {
        self.properties
            .write_block(properties, PropertyContext::Packet(PacketType::Publish), w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::{NO_PROPERTIES, PayloadFormat};
    use crate::{SubscriptionIdentifiers, UserProperties};
    use core::num::{NonZeroU16, NonZeroU32};
    use std::{vec, vec::Vec};

    /// The general path: [`Publish::body_len`] and [`Publish::write`] through a [`Writer`], what
    /// every PUBLISH encode went through before the plain path existed.
    fn encode_general(
        p: &Publish<'_>,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let (body, properties) = p.body_len(version)?;
        let first = ((PacketType::Publish as u8) << 4) | p.flags();
        let mut w = start_packet(buf, first, body)?;
        p.write(version, properties, &mut w);
        w.finish()
    }

    /// `encode` (the plain path for a PUBLISH without properties) and the general path give
    /// the same result and the same bytes, in buffers of the exact size, one byte short and
    /// empty, for every QoS / DUP / RETAIN, topic and payload lengths around every copy size
    /// and Remaining Length boundary, in both versions.
    #[test]
    fn plain_path_agrees_with_the_general_path() {
        static TEXT: [u8; 70_000] = [b't'; 70_000];
        let text = core::str::from_utf8(&TEXT).unwrap();
        // Up to a four-byte Remaining Length.
        let payload = vec![0x5Au8; 2_100_000];
        let id = PacketId::new(0x1234).unwrap();
        let mut topic_lens: Vec<usize> = (0..=70).collect();
        topic_lens.extend([120, 127, 128, 16_380, 65_535]);
        let mut payload_lens: Vec<usize> = (0..=70).collect();
        payload_lens.extend([100, 117, 118, 119, 120, 121, 122, 123, 125, 126, 127, 128]);
        payload_lens.extend([1024, 16_370, 16_375, 16_380, 16_384, 20_000, 2_097_140]);
        payload_lens.extend([2_097_145, 2_097_150, 2_100_000]);
        let mut storage = vec![0u8; 2_100_100];
        let mut reference = vec![0u8; 2_100_100];
        let mut checked = 0;
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos_pid in [
                QosPid::AtMostOnce,
                QosPid::AtLeastOnce(id),
                QosPid::ExactlyOnce(id),
            ] {
                for (dup, retain) in [(false, false), (true, false), (false, true), (true, true)] {
                    for &t in &topic_lens {
                        for &n in &payload_lens {
                            // Every QoS / DUP / RETAIN combination with short topics and
                            // payloads, the long ones with one.
                            if (t > 70 || n > 70)
                                && (dup || retain || qos_pid != QosPid::AtLeastOnce(id))
                            {
                                continue;
                            }
                            if t > 128 && n > 128 {
                                continue;
                            }
                            let p = Publish {
                                dup,
                                qos_pid,
                                retain,
                                topic: TopicName::new_allow_empty(&text[..t]).unwrap(),
                                properties: NO_PROPERTIES,
                                payload: &payload[..n],
                            };
                            let want = encode_general(&p, version, &mut reference);
                            let packet = crate::Packet::Publish(p);
                            assert_eq!(packet.encode(version, &mut storage), want, "{t} {n}");
                            if let Ok(len) = want {
                                assert_eq!(storage[..len], reference[..len], "{t} {n}");
                                assert_eq!(packet.encoded_len(version), Ok(len));
                                for short in [len - 1, 0] {
                                    assert_eq!(
                                        packet.encode(version, &mut storage[..short]),
                                        Err(EncodeError::BufferTooSmall { needed: len })
                                    );
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }

    /// `surely_empty` is `true` exactly when no property is set (for a caller's lists, and for
    /// decoded ones), and a 5.0 PUBLISH with any property takes the general path: the same
    /// bytes, or the same error for a property PUBLISH may not carry.
    #[test]
    fn surely_empty_and_properties_in_a_publish() {
        static USERS: [(&str, &str); 1] = [("k", "v")];
        type Set = fn(&mut Properties<'static>);
        let settings: &[Set] = &[
            |p| p.payload_format_indicator = Some(PayloadFormat::Unspecified),
            |p| p.payload_format_indicator = Some(PayloadFormat::Utf8),
            |p| p.message_expiry_interval = Some(0),
            |p| p.content_type = Some(""),
            |p| p.response_topic = Some(TopicName::new("r").unwrap()),
            |p| p.correlation_data = Some(b""),
            |p| p.subscription_identifiers = SubscriptionIdentifiers::new(&[5]),
            |p| p.session_expiry_interval = Some(0),
            |p| p.assigned_client_identifier = Some(""),
            |p| p.server_keep_alive = Some(0),
            |p| p.authentication_method = Some(""),
            |p| p.authentication_data = Some(b""),
            |p| p.request_problem_information = Some(false),
            |p| p.request_problem_information = Some(true),
            |p| p.will_delay_interval = Some(0),
            |p| p.request_response_information = Some(false),
            |p| p.response_information = Some(""),
            |p| p.server_reference = Some(""),
            |p| p.reason_string = Some(""),
            |p| p.receive_maximum = NonZeroU16::new(1),
            |p| p.topic_alias_maximum = Some(0),
            |p| p.topic_alias = NonZeroU16::new(1),
            |p| p.maximum_qos = Some(QoS::AtMostOnce),
            |p| p.maximum_qos = Some(QoS::AtLeastOnce),
            |p| p.maximum_qos = Some(QoS::ExactlyOnce),
            |p| p.retain_available = Some(false),
            |p| p.user_properties = UserProperties::new(&USERS),
            |p| p.maximum_packet_size = NonZeroU32::new(1),
            |p| p.wildcard_subscription_available = Some(false),
            |p| p.subscription_identifier_available = Some(true),
            |p| p.shared_subscription_available = Some(false),
        ];
        assert!(NO_PROPERTIES.surely_empty());
        assert!(Properties::default().surely_empty());
        let mut storage = [0u8; 256];
        let mut reference = [0u8; 256];
        let mut refused = 0;
        for set in settings {
            let mut properties = NO_PROPERTIES;
            set(&mut properties);
            assert!(!properties.surely_empty(), "{properties:?}");
            assert!(!properties.is_empty(), "{properties:?}");
            let p = Publish {
                dup: false,
                qos_pid: QosPid::AtLeastOnce(PacketId::new(7).unwrap()),
                retain: false,
                topic: TopicName::new("a/b").unwrap(),
                properties,
                payload: b"payload",
            };
            let want = encode_general(&p, ProtocolVersion::V5, &mut reference);
            let got = crate::Packet::Publish(p).encode(ProtocolVersion::V5, &mut storage);
            assert_eq!(got, want, "{properties:?}");
            match want {
                Ok(len) => assert_eq!(storage[..len], reference[..len]),
                Err(EncodeError::PropertyNotAllowed { packet, .. }) => {
                    assert_eq!(packet, PacketType::Publish);
                    refused += 1;
                }
                Err(e) => panic!("{properties:?}: {e:?}"),
            }
            // 3.1.1 leaves every property out.
            let got = crate::Packet::Publish(p).encode(ProtocolVersion::V311, &mut storage);
            let mut plain = p;
            plain.properties = NO_PROPERTIES;
            assert_eq!(
                got,
                encode_general(&plain, ProtocolVersion::V311, &mut reference)
            );
        }
        // The 19 properties PUBLISH may not carry, three of them set two or three ways.
        assert_eq!(refused, 22);
        // Decoded properties: none (the decoder's shared empty set), or each kind of list.
        let bytes = [
            0x0C, 0x26, 0, 1, b'k', 0, 1, b'v', 0x0B, 5, 0x0B, 0x80, 0x01,
        ];
        let (_, decoded) = crate::properties::parse_properties(
            &bytes,
            crate::properties::PropertyContext::Packet(PacketType::Publish),
        )
        .unwrap();
        assert!(!decoded.surely_empty());
        let users_only = Properties {
            subscription_identifiers: SubscriptionIdentifiers::empty(),
            ..decoded
        };
        let ids_only = Properties {
            user_properties: UserProperties::empty(),
            ..decoded
        };
        assert!(!users_only.surely_empty() && !ids_only.surely_empty());
        let (_, none) = crate::properties::parse_properties(
            &[0],
            crate::properties::PropertyContext::Packet(PacketType::Publish),
        )
        .unwrap();
        assert!(none.surely_empty());
    }
}
