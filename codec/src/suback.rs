//! SUBACK (§3.9) and UNSUBACK (§3.11): a packet identifier and one reason code per filter.
//! A 3.1.1 UNSUBACK carries no codes.

use crate::ProtocolVersion;
use crate::data::{PacketId, Sink, packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;
use crate::list::List;
use crate::properties::{Properties, PropertyContext, parse_properties};
use crate::reason::ReasonCode;

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
    pub(crate) fn write_body<S: Sink>(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        s.put_packet_id(self.packet_id)?;
        if version.is_v5() {
            self.properties.write(PropertyContext::Packet(packet), s)?;
        } else if packet == PacketType::UnsubAck {
            // 3.1.1 UNSUBACK has no payload; 5.0 codes cannot be expressed and are left out.
            return Ok(());
        }
        if self.reason_codes.is_empty() {
            return Err(EncodeError::InvalidValue);
        }
        for code in self.reason_codes.iter() {
            if !code.is_valid_for(packet, version) {
                return Err(EncodeError::InvalidReasonCode {
                    code: code.0,
                    packet,
                });
            }
            s.put_u8(code.0)?;
        }
        Ok(())
    }
}
