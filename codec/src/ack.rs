//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–3.7): the QoS 1 and QoS 2 acknowledgements share one
//! shape, a packet identifier and (5.0) a reason code and properties, both of which may be left out.

use crate::ProtocolVersion;
use crate::data::{PacketId, Sink, packet_id, u8_};
use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;
use crate::properties::{Properties, PropertyContext, parse_properties};
use crate::reason::ReasonCode;

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
    body: &[u8],
    version: ProtocolVersion,
) -> Result<Ack<'_>, DecodeError> {
    parse_inner(packet, body, version).map_err(crate::data::finish_err)
}

fn parse_inner(
    packet: PacketType,
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Ack<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let (i, packet_id) = packet_id(i)?;
    // 5.0 §3.4.2.1: Remaining Length 2 means reason code 0x00 and no properties; below 4, no
    // property length.
    let (i, reason_code, properties) = if version.is_v5() && !i.is_empty() {
        let (i, code) = u8_(i)?;
        let code = ReasonCode(code);
        if !code.is_valid_for(packet, version) {
            return Err(fail(DecodeError::InvalidReasonCode {
                code: code.0,
                packet,
            }));
        }
        if i.is_empty() {
            (i, code, Properties::default())
        } else {
            let (i, p) = parse_properties(i, PropertyContext::Packet(packet))?;
            (i, code, p)
        }
    } else {
        (i, ReasonCode::SUCCESS, Properties::default())
    };
    if !i.is_empty() {
        return Err(fail(DecodeError::TrailingBytes));
    }
    Ok(Ack {
        packet_id,
        reason_code,
        properties,
    })
}

impl Ack<'_> {
    pub(crate) fn write_body<S: Sink>(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        if !self.reason_code.is_valid_for(packet, version) {
            return Err(EncodeError::InvalidReasonCode {
                code: self.reason_code.0,
                packet,
            });
        }
        s.put_packet_id(self.packet_id)?;
        if version.is_v5() {
            let no_props = self.properties.is_empty();
            if self.reason_code == ReasonCode::SUCCESS && no_props {
                return Ok(());
            }
            s.put_u8(self.reason_code.0)?;
            if !no_props {
                self.properties.write(PropertyContext::Packet(packet), s)?;
            }
        }
        Ok(())
    }
}
