//! The fixed header (MQTT §2.1 / §2.2): packet type, flags, Remaining Length.
//!
//! [`parse_fixed_header`] is a nom *streaming* parser: on a short input it returns
//! `nom::Err::Incomplete`, never an error, so a caller can feed it the first bytes of a stream and
//! learn how many more it needs. It refuses reserved flags and over-long lengths as soon as the
//! bytes that show them have arrived.

use nom::IResult;

use crate::error::DecodeError;
pub use crate::wire::{MAX_REMAINING_LENGTH, PacketType};
use crate::wire::{ProtocolVersion, VarintStatus, varint_prefix};

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low nibble of the first byte (PUBLISH: DUP, QoS, RETAIN).
    pub flags: u8,
    /// Length of the variable header plus payload.
    pub remaining_length: u32,
    /// Length of the fixed header itself: 2 to 5 bytes.
    pub header_len: u8,
}

impl FixedHeader {
    /// Length of the whole packet, fixed header included.
    pub const fn packet_len(&self) -> u32 {
        // Cannot overflow: remaining_length <= 268_435_455 and header_len <= 5.
        self.remaining_length.saturating_add(self.header_len as u32)
    }
}

/// Parse a fixed header (streaming).
///
/// Returns the header and the input after it. On a prefix too short to hold the whole header,
/// returns `nom::Err::Incomplete`. Errors (as `nom::Err::Failure`) are
/// [`DecodeError::InvalidPacketType`], [`DecodeError::ReservedFlags`],
/// [`DecodeError::VarintTooLong`] and, on 5.0 connections, [`DecodeError::VarintNotMinimal`].
///
/// ```
/// use wren_codec::{ProtocolVersion, header::{parse_fixed_header, PacketType}};
/// let (rest, h) = parse_fixed_header(&[0x30, 0x80, 0x01, 0xAA], ProtocolVersion::V311).unwrap();
/// assert_eq!(h.packet_type, PacketType::Publish);
/// assert_eq!(h.remaining_length, 128);
/// assert_eq!(rest, &[0xAA]);
/// assert!(parse_fixed_header(&[0x30, 0x80], ProtocolVersion::V311).unwrap_err().is_incomplete());
/// ```
pub fn parse_fixed_header(
    input: &[u8],
    version: ProtocolVersion,
) -> IResult<&[u8], FixedHeader, DecodeError> {
    let (after_type, first) = nom::number::streaming::be_u8(input)?;
    let nibble = first >> 4;
    let flags = first & 0x0F;
    let packet_type = match PacketType::from_nibble(nibble) {
        Some(PacketType::Auth) if !version.is_v5() => {
            return Err(nom::Err::Failure(DecodeError::InvalidPacketType(nibble)));
        }
        Some(t) => t,
        None => return Err(nom::Err::Failure(DecodeError::InvalidPacketType(nibble))),
    };
    if let Some(required) = packet_type.required_flags() {
        if flags != required {
            return Err(nom::Err::Failure(DecodeError::ReservedFlags(packet_type)));
        }
    }
    match varint_prefix(after_type, version.is_v5()) {
        VarintStatus::Complete { value, len } => {
            let rest = after_type.get(len..).unwrap_or_default();
            // len is 1..=4, so the header is 2..=5 bytes.
            let header_len = u8::try_from(len).unwrap_or(4).saturating_add(1);
            Ok((
                rest,
                FixedHeader {
                    packet_type,
                    flags,
                    remaining_length: value,
                    header_len,
                },
            ))
        }
        VarintStatus::Incomplete => Err(nom::Err::Incomplete(nom::Needed::new(1))),
        VarintStatus::Invalid(e) => Err(nom::Err::Failure(DecodeError::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], v: ProtocolVersion) -> Result<FixedHeader, nom::Err<DecodeError>> {
        parse_fixed_header(bytes, v).map(|(_, h)| h)
    }

    #[test]
    fn remaining_length_boundaries() {
        let cases: &[(&[u8], u32, u8)] = &[
            (&[0x00], 0, 2),
            (&[0x7F], 127, 2),
            (&[0x80, 0x01], 128, 3),
            (&[0xFF, 0x7F], 16_383, 3),
            (&[0x80, 0x80, 0x01], 16_384, 4),
            (&[0xFF, 0xFF, 0x7F], 2_097_151, 4),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152, 5),
            (&[0xFF, 0xFF, 0xFF, 0x7F], MAX_REMAINING_LENGTH, 5),
        ];
        for (len_bytes, value, header_len) in cases {
            let mut buf = [0xC0u8; 5];
            buf[1..1 + len_bytes.len()].copy_from_slice(len_bytes);
            let h = parse(&buf[..1 + len_bytes.len()], ProtocolVersion::V5).unwrap();
            assert_eq!(h.remaining_length, *value);
            assert_eq!(h.header_len, *header_len);
            assert_eq!(h.packet_type, PacketType::PingReq);
        }
    }

    #[test]
    fn five_length_bytes_refused() {
        let e = parse(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], ProtocolVersion::V311).unwrap_err();
        assert_eq!(e, nom::Err::Failure(DecodeError::VarintTooLong));
        // Known to be too long as soon as the fourth length byte has its continuation bit.
        let e = parse(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], ProtocolVersion::V311).unwrap_err();
        assert_eq!(e, nom::Err::Failure(DecodeError::VarintTooLong));
    }

    #[test]
    fn non_minimal_length_refused_in_v5_only() {
        let bytes = [0xC0, 0x80, 0x00];
        assert_eq!(
            parse(&bytes, ProtocolVersion::V5).unwrap_err(),
            nom::Err::Failure(DecodeError::VarintNotMinimal)
        );
        assert_eq!(
            parse(&bytes, ProtocolVersion::V311)
                .unwrap()
                .remaining_length,
            0
        );
    }

    #[test]
    fn reserved_types_and_flags() {
        assert_eq!(
            parse(&[0x00, 0x00], ProtocolVersion::V5).unwrap_err(),
            nom::Err::Failure(DecodeError::InvalidPacketType(0))
        );
        assert_eq!(
            parse(&[0xF0, 0x00], ProtocolVersion::V311).unwrap_err(),
            nom::Err::Failure(DecodeError::InvalidPacketType(15))
        );
        assert_eq!(
            parse(&[0xF0, 0x00], ProtocolVersion::V5)
                .unwrap()
                .packet_type,
            PacketType::Auth
        );
        for (first, t) in [
            (0x60u8, PacketType::PubRel),
            (0x80, PacketType::Subscribe),
            (0xA0, PacketType::Unsubscribe),
            (0x11, PacketType::Connect),
            (0xC2, PacketType::PingReq),
            (0xE1, PacketType::Disconnect),
        ] {
            assert_eq!(
                parse(&[first, 0x00], ProtocolVersion::V5).unwrap_err(),
                nom::Err::Failure(DecodeError::ReservedFlags(t))
            );
        }
        assert!(parse(&[0x62, 0x02], ProtocolVersion::V5).is_ok());
        assert!(
            parse(&[0x3F, 0x02], ProtocolVersion::V5).is_ok(),
            "PUBLISH flags are checked later"
        );
    }

    #[test]
    fn short_input_is_incomplete() {
        assert!(parse(&[], ProtocolVersion::V5).unwrap_err().is_incomplete());
        assert!(
            parse(&[0x30], ProtocolVersion::V5)
                .unwrap_err()
                .is_incomplete()
        );
        assert!(
            parse(&[0x30, 0x80, 0x80], ProtocolVersion::V5)
                .unwrap_err()
                .is_incomplete()
        );
    }
}
