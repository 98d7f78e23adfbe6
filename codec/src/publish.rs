//! PUBLISH (§3.3): an application message.

use crate::ProtocolVersion;
use crate::data::{PacketId, QoS, Writer, packet_id, start_packet, str_len, utf8_scanned};
use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
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
    /// small and the 3.1.1 one holds no property code.
    #[inline]
    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if version.is_v5() {
            self.encode_v5(buf)
        } else {
            self.encode_v311(buf)
        }
    }

    #[inline(never)]
    fn encode_v5(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_in(ProtocolVersion::V5, buf)
    }

    #[inline(never)]
    fn encode_v311(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_in(ProtocolVersion::V311, buf)
    }

    #[inline(always)]
    fn encode_in(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (body, properties) = self.body_len(version)?;
        let first = ((PacketType::Publish as u8) << 4) | self.flags();
        let mut w = start_packet(buf, first, body)?;
        self.write(version, properties, &mut w);
        w.finish()
    }

    /// The body length, and the length of the property items (5.0), checking the packet against
    /// the rules the decoder enforces.
    #[inline(always)]
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
            if !self.properties.is_empty() {
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
    #[inline(always)]
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
