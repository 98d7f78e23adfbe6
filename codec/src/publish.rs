//! PUBLISH (§3.3): an application message.

use crate::ProtocolVersion;
use crate::data::{PacketId, QoS, Sink, SliceWriter, count, packet_id, utf8, varint_len};
use crate::error::{DecodeError, EncodeError};
use crate::header::MAX_REMAINING_LENGTH;
use crate::header::PacketType;
use crate::properties::{Properties, PropertyContext, parse_properties};
use crate::topic::TopicName;

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
    let (i, topic) = utf8(i)?;
    let topic = TopicName::new_allow_empty(topic).map_err(fail)?;
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

    pub(crate) fn write_body<S: Sink>(
        &self,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        if self.dup && self.qos_pid == QosPid::AtMostOnce {
            return Err(EncodeError::InvalidValue);
        }
        if self.topic.is_empty() && !(version.is_v5() && self.properties.topic_alias.is_some()) {
            return Err(EncodeError::InvalidValue);
        }
        s.put_str(self.topic.as_str())?;
        if let Some(id) = self.qos_pid.packet_id() {
            s.put_packet_id(id)?;
        }
        if version.is_v5() {
            self.properties
                .write(PropertyContext::Packet(PacketType::Publish), s)?;
        }
        s.put(self.payload)
    }

    /// [`crate::Packet::encode`] for a PUBLISH, the packet a broker encodes most (once for every
    /// subscriber it forwards a message to). The generic path runs `write_body` twice, to count
    /// and then to write; here the body length is a sum and the writes go straight to `buf`.
    /// Same checks, same errors in the same order and the same bytes as [`Self::write_body`]
    /// (the `roundtrip` fuzz target and the codec's vector tests compare both).
    pub(crate) fn encode_packet(
        &self,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if self.dup && self.qos_pid == QosPid::AtMostOnce {
            return Err(EncodeError::InvalidValue);
        }
        if self.topic.is_empty() && !(version.is_v5() && self.properties.topic_alias.is_some()) {
            return Err(EncodeError::InvalidValue);
        }
        let topic = self.topic.as_str().as_bytes();
        let topic_len = u16::try_from(topic.len()).map_err(|_| EncodeError::FieldTooLong)?;
        let packet_id = self.qos_pid.packet_id();
        let ctx = PropertyContext::Packet(PacketType::Publish);
        // 3.1.1 carries no properties; asking whether there are any costs a look at every field.
        let no_properties = !version.is_v5() || self.properties.is_empty();
        let properties_len = match (version.is_v5(), no_properties) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => count(|c| self.properties.write(ctx, c))?,
        };
        // Saturating: anything near usize::MAX is far above the largest Remaining Length.
        let body = topic
            .len()
            .saturating_add(if packet_id.is_some() { 4 } else { 2 })
            .saturating_add(properties_len)
            .saturating_add(self.payload.len());
        let remaining = u32::try_from(body)
            .ok()
            .filter(|&r| r <= MAX_REMAINING_LENGTH)
            .ok_or(EncodeError::PacketTooLarge)?;
        let total = body.saturating_add(varint_len(remaining)).saturating_add(1);
        if buf.len() < total {
            return Err(EncodeError::BufferTooSmall { needed: total });
        }
        let mut w = SliceWriter::new(buf);
        w.put_u8(((PacketType::Publish as u8) << 4) | self.flags())?;
        w.put_varint(remaining)?;
        w.put_u16(topic_len)?;
        w.put(topic)?;
        if let Some(id) = packet_id {
            w.put_packet_id(id)?;
        }
        if version.is_v5() {
            if no_properties {
                w.put_u8(0)?;
            } else {
                self.properties.write(ctx, &mut w)?;
            }
        }
        w.put(self.payload)?;
        Ok(w.position())
    }
}
