//! DISCONNECT (§3.14) and AUTH (§3.15): a reason code and properties, both of which 5.0 lets a
//! sender leave out (Remaining Length 0 means success and no properties). A 3.1.1 DISCONNECT is
//! empty; AUTH does not exist in 3.1.1.

use crate::data::{Writer, u8_};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
use crate::reason::ReasonCode;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// A DISCONNECT or AUTH (which one is the [`crate::Packet`] variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Disconnect<'a> {
    /// 5.0 reason code (0x00: normal disconnection / success).
    pub reason_code: ReasonCode,
    /// 5.0 properties.
    pub properties: Properties<'a>,
}

/// AUTH has the same shape as DISCONNECT.
pub type Auth<'a> = Disconnect<'a>;

impl Disconnect<'_> {
    /// A normal disconnection with no properties.
    pub const NORMAL: Disconnect<'static> = Disconnect {
        reason_code: ReasonCode::SUCCESS,
        properties: crate::properties::NO_PROPERTIES,
    };

    /// A DISCONNECT (or AUTH) with this reason code and no properties.
    pub const fn with_reason(reason_code: ReasonCode) -> Disconnect<'static> {
        Disconnect {
            reason_code,
            properties: crate::properties::NO_PROPERTIES,
        }
    }
}

pub(crate) fn parse(
    packet: PacketType,
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Disconnect<'_>, nom::Err<DecodeError>> {
    if !version.is_v5() {
        return if i.is_empty() {
            Ok(Disconnect::NORMAL)
        } else {
            Err(nom::Err::Failure(DecodeError::TrailingBytes))
        };
    }
    let (reason_code, properties) = parse_reason_tail(i, packet)?;
    Ok(Disconnect {
        reason_code,
        properties,
    })
}

/// 5.0's optional tail of PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH: nothing (success,
/// no properties), a reason code alone, or a reason code and a property block (§3.4.2.1,
/// §3.14.2.1, §3.15.2.1). It must end the packet.
pub(crate) fn parse_reason_tail(
    i: &[u8],
    packet: PacketType,
) -> Result<(ReasonCode, Properties<'_>), nom::Err<DecodeError>> {
    if i.is_empty() {
        return Ok((ReasonCode::SUCCESS, Properties::default()));
    }
    let (i, code) = u8_(i)?;
    let code = ReasonCode(code);
    if !code.is_valid_for(packet, ProtocolVersion::V5) {
        return Err(nom::Err::Failure(DecodeError::InvalidReasonCode {
            code: code.0,
            packet,
        }));
    }
    let (i, properties) = if i.is_empty() {
        (i, Properties::default())
    } else {
        parse_properties(i, PropertyContext::Packet(packet))?
    };
    if !i.is_empty() {
        return Err(nom::Err::Failure(DecodeError::TrailingBytes));
    }
    Ok((code, properties))
}

/// The length of the tail [`parse_reason_tail`] reads, in its shortest form, and of its property
/// items, checking the properties against `packet`.
pub(crate) fn reason_tail_len(
    code: ReasonCode,
    properties: &Properties<'_>,
    packet: PacketType,
) -> Result<(usize, Block), EncodeError> {
    let items = properties.items_len(PropertyContext::Packet(packet))?;
    if items.is_empty() {
        // No properties: the code alone, or nothing at all for success.
        return Ok((usize::from(code != ReasonCode::SUCCESS), items));
    }
    Ok((block_len(items)?.saturating_add(1), items))
}

/// Write the tail [`reason_tail_len`] measured (`items`: its property block).
pub(crate) fn write_reason_tail(
    code: ReasonCode,
    properties: &Properties<'_>,
    packet: PacketType,
    items: Block,
    w: &mut Writer<'_>,
) {
    if items.is_empty() {
        if code != ReasonCode::SUCCESS {
            w.u8(code.0);
        }
        return;
    }
    w.u8(code.0);
    properties.write_block(items, PropertyContext::Packet(packet), w);
}

impl Disconnect<'_> {
    /// The body length and the property items length (5.0), checking the packet against the
    /// rules the decoder enforces.
    pub(crate) fn body_len(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
    ) -> Result<(usize, Block), EncodeError> {
        if !version.is_v5() {
            // 3.1.1 DISCONNECT is empty: a 5.0 reason cannot be expressed and is left out.
            return if packet == PacketType::Auth {
                Err(EncodeError::NotInVersion)
            } else {
                Ok((0, Block::EMPTY))
            };
        }
        if !self.reason_code.is_valid_for(packet, version) {
            return Err(EncodeError::InvalidReasonCode {
                code: self.reason_code.0,
                packet,
            });
        }
        reason_tail_len(self.reason_code, &self.properties, packet)
    }

    /// Write the body [`Self::body_len`] measured.
    pub(crate) fn write(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
        properties: Block,
        w: &mut Writer<'_>,
    ) {
        if version.is_v5() {
            write_reason_tail(self.reason_code, &self.properties, packet, properties, w);
        }
    }
}
