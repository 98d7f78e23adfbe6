//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–3.7): the QoS 1 and QoS 2 acknowledgements share one
//! shape, a packet identifier and (5.0) a reason code and properties, both of which may be left out.

use crate::data::{PacketId, Writer, packet_id};
use crate::disconnect::{parse_reason_tail, reason_tail_len, write_reason_tail};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Block, Properties};
use crate::reason::ReasonCode;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// A PUBACK, PUBREC, PUBREL or PUBCOMP (which one is the [`crate::Packet`] variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ack<'a> {
    /// The acknowledged packet identifier.
    pub packet_id: PacketId,
    /// 5.0 reason code; always success in 3.1.1.
    pub reason_code: ReasonCode,
    /// 5.0 properties (Reason String, User Property).
    pub properties: Properties<'a>,
}

impl Ack<'_> {
    /// A successful acknowledgement of `packet_id` with no properties.
    pub const fn new(packet_id: PacketId) -> Ack<'static> {
        Ack {
            packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: crate::properties::NO_PROPERTIES,
        }
    }
}

pub(crate) fn parse(
    packet: PacketType,
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Ack<'_>, nom::Err<DecodeError>> {
    let (i, packet_id) = packet_id(i)?;
    // 5.0 §3.4.2.1: Remaining Length 2 means reason code 0x00 and no properties.
    let (reason_code, properties) = if version.is_v5() {
        parse_reason_tail(i, packet)?
    } else if i.is_empty() {
        (ReasonCode::SUCCESS, Properties::default())
    } else {
        return Err(nom::Err::Failure(DecodeError::TrailingBytes));
    };
    Ok(Ack {
        packet_id,
        reason_code,
        properties,
    })
}

impl Ack<'_> {
    /// The body length and the property items length (5.0), checking the packet against the
    /// rules the decoder enforces.
    pub(crate) fn body_len(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
    ) -> Result<(usize, Block), EncodeError> {
        if !self.reason_code.is_valid_for(packet, version) {
            return Err(EncodeError::InvalidReasonCode {
                code: self.reason_code.0,
                packet,
            });
        }
        if !version.is_v5() {
            return Ok((2, Block::EMPTY));
        }
        let (tail, properties) = reason_tail_len(self.reason_code, &self.properties, packet)?;
        Ok((tail.saturating_add(2), properties))
    }

    /// Write the body [`Self::body_len`] measured.
    pub(crate) fn write(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
        properties: Block,
        w: &mut Writer<'_>,
    ) {
        w.u16(self.packet_id.get());
        if version.is_v5() {
            write_reason_tail(self.reason_code, &self.properties, packet, properties, w);
        }
    }
}
