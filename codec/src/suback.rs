//! SUBACK (§3.9) and UNSUBACK (§3.11): a packet identifier and one reason code per filter.
//! A 3.1.1 UNSUBACK carries no codes.

use crate::data::{PacketId, Writer, packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::list::{List, for_items};
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
use crate::reason::ReasonCode;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// A SUBACK or UNSUBACK (which one is the [`crate::Packet`] variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubAck<'a> {
    /// The acknowledged packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties (Reason String, User Property).
    pub properties: Properties<'a>,
    /// One code per filter of the request, in order. Empty for a 3.1.1 UNSUBACK.
    pub reason_codes: List<'a, ReasonCode>,
}

pub(crate) fn parse(
    packet: PacketType,
    i: &[u8],
    version: ProtocolVersion,
) -> Result<SubAck<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let (i, packet_id) = packet_id(i)?;
    let (codes, properties) = if version.is_v5() {
        parse_properties(i, PropertyContext::Packet(packet))?
    } else {
        (i, Properties::default())
    };
    let has_codes = version.is_v5() || packet == PacketType::SubAck;
    if !has_codes {
        if !codes.is_empty() {
            return Err(fail(DecodeError::TrailingBytes));
        }
    } else {
        if codes.is_empty() {
            return Err(fail(DecodeError::EmptyAckList));
        }
        if let Some(&bad) = codes
            .iter()
            .find(|&&c| !ReasonCode(c).is_valid_for(packet, version))
        {
            return Err(fail(DecodeError::InvalidReasonCode { code: bad, packet }));
        }
    }
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes: List::from_wire(codes),
    })
}

impl SubAck<'_> {
    /// The body length and the property items length (5.0), checking the packet against the
    /// rules the decoder enforces.
    pub(crate) fn body_len(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
    ) -> Result<(usize, Block), EncodeError> {
        let mut n: usize = 2;
        let mut properties = Block::EMPTY;
        if version.is_v5() {
            properties = self.properties.items_len(PropertyContext::Packet(packet))?;
            n = n.saturating_add(block_len(properties)?);
        } else if packet == PacketType::UnsubAck {
            // 3.1.1 UNSUBACK has no payload; 5.0 codes cannot be expressed and are left out.
            return Ok((n, properties));
        }
        if self.reason_codes.is_empty() {
            return Err(EncodeError::InvalidValue);
        }
        for_items!(self.reason_codes, |codes| {
            for code in codes {
                if !code.is_valid_for(packet, version) {
                    return Err(EncodeError::InvalidReasonCode {
                        code: code.0,
                        packet,
                    });
                }
                n = n.saturating_add(1);
            }
        });
        Ok((n, properties))
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
            self.properties
                .write_block(properties, PropertyContext::Packet(packet), w);
        } else if packet == PacketType::UnsubAck {
            return;
        }
        for_items!(self.reason_codes, |codes| {
            for code in codes {
                w.u8(code.0);
            }
        });
    }
}

impl crate::list::sealed::Sealed for ReasonCode {}
impl<'a> crate::list::ListItem<'a> for ReasonCode {
    fn next_from_wire(rest: &mut &'a [u8]) -> Option<Self> {
        let (first, tail) = rest.split_first()?;
        *rest = tail;
        Some(ReasonCode(*first))
    }
}
