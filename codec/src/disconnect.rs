//! DISCONNECT (§3.14) and AUTH (§3.15): a reason code and properties, both of which 5.0 lets a
//! sender leave out (Remaining Length 0 means success and no properties). A 3.1.1 DISCONNECT is
//! empty; AUTH does not exist in 3.1.1.

use crate::ProtocolVersion;
use crate::data::{Sink, u8_};
use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;
use crate::properties::{Properties, PropertyContext, parse_properties};
use crate::reason::ReasonCode;

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
    body: &[u8],
    version: ProtocolVersion,
) -> Result<Disconnect<'_>, DecodeError> {
    parse_inner(packet, body, version).map_err(crate::data::finish_err)
}

fn parse_inner(
    packet: PacketType,
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Disconnect<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    if !version.is_v5() || i.is_empty() {
        if !i.is_empty() {
            return Err(fail(DecodeError::TrailingBytes));
        }
        return Ok(Disconnect::NORMAL);
    }
    let (i, code) = u8_(i)?;
    let code = ReasonCode(code);
    if !code.is_valid_for(packet, version) {
        return Err(fail(DecodeError::InvalidReasonCode {
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
        return Err(fail(DecodeError::TrailingBytes));
    }
    Ok(Disconnect {
        reason_code: code,
        properties,
    })
}

impl Disconnect<'_> {
    pub(crate) fn write_body<S: Sink>(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        if !version.is_v5() {
            // 3.1.1 DISCONNECT is empty: a 5.0 reason cannot be expressed and is left out.
            return if packet == PacketType::Auth {
                Err(EncodeError::NotInVersion)
            } else {
                Ok(())
            };
        }
        if !self.reason_code.is_valid_for(packet, version) {
            return Err(EncodeError::InvalidReasonCode {
                code: self.reason_code.0,
                packet,
            });
        }
        let no_props = self.properties.is_empty();
        if self.reason_code == ReasonCode::SUCCESS && no_props {
            return Ok(());
        }
        s.put_u8(self.reason_code.0)?;
        if !no_props {
            self.properties.write(PropertyContext::Packet(packet), s)?;
        }
        Ok(())
    }
}
