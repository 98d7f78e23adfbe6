//! CONNACK (§3.2): the server's answer to CONNECT.

use crate::data::{Writer, u8_};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
use crate::reason::ReasonCode;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// A CONNACK packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnAck<'a> {
    /// Whether the server resumed a stored session. Never set with a refusal; not on the wire
    /// in MQTT 3.1 (its first byte is reserved: written 0).
    pub session_present: bool,
    /// 3.1.1 return code (0–5) or 5.0 reason code.
    pub code: ReasonCode,
    /// 5.0 CONNACK properties.
    pub properties: Properties<'a>,
}

pub(crate) fn parse(
    i: &[u8],
    version: ProtocolVersion,
) -> Result<ConnAck<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let (i, flags) = u8_(i)?;
    if flags & 0xFE != 0 {
        return Err(fail(DecodeError::ConnAckReservedFlags));
    }
    let (i, code) = u8_(i)?;
    let code = ReasonCode(code);
    if !code.is_valid_for(PacketType::ConnAck, version) {
        return Err(fail(DecodeError::InvalidReasonCode {
            code: code.0,
            packet: PacketType::ConnAck,
        }));
    }
    let session_present = flags & 0x01 != 0;
    if session_present && code != ReasonCode::SUCCESS {
        return Err(fail(DecodeError::SessionPresentOnRefusal));
    }
    let (i, properties) = if version.is_v5() {
        parse_properties(i, PropertyContext::Packet(PacketType::ConnAck))?
    } else {
        (i, Properties::default())
    };
    if !i.is_empty() {
        return Err(fail(DecodeError::TrailingBytes));
    }
    Ok(ConnAck {
        session_present,
        code,
        properties,
    })
}

impl ConnAck<'_> {
    /// The body length and the property items length (5.0), checking the packet against the
    /// rules the decoder enforces.
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<(usize, Block), EncodeError> {
        if !self.code.is_valid_for(PacketType::ConnAck, version) {
            return Err(EncodeError::InvalidReasonCode {
                code: self.code.0,
                packet: PacketType::ConnAck,
            });
        }
        if self.session_present && self.code != ReasonCode::SUCCESS {
            return Err(EncodeError::InvalidValue);
        }
        if !version.is_v5() {
            return Ok((2, Block::EMPTY));
        }
        let properties = self
            .properties
            .items_len(PropertyContext::Packet(PacketType::ConnAck))?;
        Ok((block_len(properties)?.saturating_add(2), properties))
    }

    /// Write the body [`Self::body_len`] measured.
    pub(crate) fn write(&self, version: ProtocolVersion, properties: Block, w: &mut Writer<'_>) {
        // MQTT 3.1 has no Session Present: its first byte is reserved, always 0.
        let session_present = self.session_present && version != ProtocolVersion::V31;
        w.array([u8::from(session_present), self.code.0]);
        if version.is_v5() {
            self.properties.write_block(
                properties,
                PropertyContext::Packet(PacketType::ConnAck),
                w,
            );
        }
    }
}
