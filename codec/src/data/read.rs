//! The nom readers of MQTT's field types (§1.5): integers, Variable Byte Integers, Binary Data
//! and UTF-8 strings, the packet identifier, and the error conversion every body parser ends
//! with.

use core::num::NonZeroU32;

use nom::{IResult, Parser};

use super::scan::{HAS_NUL, NON_ASCII, check_utf8, scan};
use super::types::PacketId;
use crate::error::DecodeError;
use crate::wire::{VarintStatus, varint_prefix};

// they inline to a length test and a load: every field of every packet comes through here.
#[inline]
pub(crate) fn u8_(i: &[u8]) -> IResult<&[u8], u8, DecodeError> {
    match i.split_first() {
        Some((&b, rest)) => Ok((rest, b)),
        None => Err(nom::Err::Error(DecodeError::UnexpectedEnd)),
    }
}

#[inline]
pub(crate) fn u16_(i: &[u8]) -> IResult<&[u8], u16, DecodeError> {
    match i.split_first_chunk::<2>() {
        Some((b, rest)) => Ok((rest, u16::from_be_bytes(*b))),
        None => Err(nom::Err::Error(DecodeError::UnexpectedEnd)),
    }
}

#[inline]
pub(crate) fn u32_(i: &[u8]) -> IResult<&[u8], u32, DecodeError> {
    match i.split_first_chunk::<4>() {
        Some((b, rest)) => Ok((rest, u32::from_be_bytes(*b))),
        None => Err(nom::Err::Error(DecodeError::UnexpectedEnd)),
    }
}

/// A Variable Byte Integer inside a packet body (always 5.0, so minimal encoding is enforced).
#[inline]
pub(crate) fn varint(i: &[u8]) -> IResult<&[u8], u32, DecodeError> {
    // One byte is by far the common case (every property identifier, most lengths).
    if let Some((&b, rest)) = i.split_first() {
        if b < 0x80 {
            return Ok((rest, u32::from(b)));
        }
    }
    varint_long(i)
}

#[inline(never)]
fn varint_long(i: &[u8]) -> IResult<&[u8], u32, DecodeError> {
    match varint_prefix(i, true) {
        VarintStatus::Complete { value, len } => {
            let (rest, _) = nom::bytes::complete::take(len).parse(i)?;
            Ok((rest, value))
        }
        VarintStatus::Incomplete => Err(nom::Err::Error(DecodeError::UnexpectedEnd)),
        VarintStatus::Invalid(e) => Err(nom::Err::Failure(DecodeError::from(e))),
    }
}

/// Binary Data: a two-byte length and that many bytes (§1.5.6).
#[inline]
pub(crate) fn binary(i: &[u8]) -> IResult<&[u8], &[u8], DecodeError> {
    // By hand rather than `be_u16` + `take`: every string field of every packet comes here.
    let short = || nom::Err::Error(DecodeError::UnexpectedEnd);
    let (len, rest) = i.split_first_chunk::<2>().ok_or_else(short)?;
    let (value, rest) = rest
        .split_at_checked(usize::from(u16::from_be_bytes(*len)))
        .ok_or_else(short)?;
    Ok((rest, value))
}

/// A UTF-8 Encoded String (§1.5.4 in 5.0, §1.5.3 in 3.1.1): well-formed, no surrogates, no U+0000.
/// Disallowed-but-legal code points (controls, non-characters) are accepted: the spec says SHOULD
/// NOT, and refusing them is a receiver's policy, not a decoding rule.
#[inline]
pub(crate) fn utf8(i: &[u8]) -> IResult<&[u8], &str, DecodeError> {
    let (rest, bytes) = binary(i)?;
    Ok((rest, check_utf8(bytes).map_err(nom::Err::Failure)?))
}

/// A UTF-8 Encoded String whose text the caller does not need (a user property read again
/// lazily later): the same checks and errors as [`utf8`], but ASCII, which is what nearly every
/// string is, needs no call of `core::str::from_utf8`.
#[inline]
pub(crate) fn utf8_check_only(i: &[u8]) -> IResult<&[u8], (), DecodeError> {
    let (rest, bytes) = binary(i)?;
    let found = scan(bytes);
    if found & NON_ASCII != 0 && core::str::from_utf8(bytes).is_err() {
        return Err(nom::Err::Failure(DecodeError::InvalidUtf8));
    }
    if found & HAS_NUL != 0 {
        return Err(nom::Err::Failure(DecodeError::NullCharacter));
    }
    Ok((rest, ()))
}

/// A UTF-8 Encoded String and what [`scan`] found in it, for the callers that check more than
/// the string rules (topic names): one pass over the bytes for all of it.
#[inline]
pub(crate) fn utf8_scanned(i: &[u8]) -> IResult<&[u8], (&str, u8), DecodeError> {
    let (rest, bytes) = binary(i)?;
    let found = scan(bytes);
    let s = core::str::from_utf8(bytes).map_err(|_| nom::Err::Failure(DecodeError::InvalidUtf8))?;
    if found & HAS_NUL != 0 {
        return Err(nom::Err::Failure(DecodeError::NullCharacter));
    }
    Ok((rest, (s, found)))
}

/// A UTF-8 string field of a packet that [`utf8`] already accepted when the packet was decoded:
/// lazy lists re-read their bytes, and only need the `&str` back (safe code cannot skip the
/// UTF-8 check, but the U+0000 scan and the callers' topic checks are done once).
pub(crate) fn utf8_prevalidated(i: &[u8]) -> Option<(&[u8], &str)> {
    let (rest, bytes) = binary(i).ok()?;
    Some((rest, core::str::from_utf8(bytes).ok()?))
}

/// A non-zero packet identifier.
pub(crate) fn packet_id(i: &[u8]) -> IResult<&[u8], PacketId, DecodeError> {
    let (rest, id) = u16_(i)?;
    match PacketId::new(id) {
        Some(id) => Ok((rest, id)),
        None => Err(nom::Err::Failure(DecodeError::ZeroPacketId)),
    }
}

/// Turn a body parser's nom error into the decode error it stands for.
pub(crate) fn finish_err(e: nom::Err<DecodeError>) -> DecodeError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => DecodeError::UnexpectedEnd,
    }
}

/// A `u32` that must not be zero, as Receive Maximum and Maximum Packet Size are.
pub(crate) fn nonzero_u32(v: u32, id: u8) -> Result<NonZeroU32, DecodeError> {
    NonZeroU32::new(v).ok_or(DecodeError::InvalidPropertyValue(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scan::HAS_WILDCARD;

    #[test]
    fn utf8_rules() {
        assert_eq!(utf8(&[0, 2, b'h', b'i']).unwrap().1, "hi");
        assert_eq!(
            utf8(&[0, 1, 0]).unwrap_err(),
            nom::Err::Failure(DecodeError::NullCharacter)
        );
        // An encoded surrogate U+D800.
        assert_eq!(
            utf8(&[0, 3, 0xED, 0xA0, 0x80]).unwrap_err(),
            nom::Err::Failure(DecodeError::InvalidUtf8)
        );
        // Overlong encoding of '/'.
        assert_eq!(
            utf8(&[0, 2, 0xC0, 0xAF]).unwrap_err(),
            nom::Err::Failure(DecodeError::InvalidUtf8)
        );
        // A BOM is kept, not stripped [MQTT-1.5.4-3].
        assert_eq!(utf8(&[0, 3, 0xEF, 0xBB, 0xBF]).unwrap().1, "\u{FEFF}");
        assert_eq!(
            finish_err(utf8(&[0, 3, b'a']).unwrap_err()),
            DecodeError::UnexpectedEnd
        );
    }

    use std::vec;

    /// What `scan` must say, byte by byte.
    fn scan_reference(bytes: &[u8]) -> u8 {
        let mut found = 0;
        for &b in bytes {
            if b == 0 {
                found |= HAS_NUL;
            }
            if b == b'+' || b == b'#' {
                found |= HAS_WILDCARD;
            }
            if b >= 0x80 {
                found |= NON_ASCII;
            }
        }
        found
    }

    /// What the string checks must say: the checks as they were before the ASCII fast path
    /// (`from_utf8` first, then U+0000).
    fn check_reference(bytes: &[u8]) -> Result<&str, DecodeError> {
        let s = core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s)
    }

    /// Every check over `bytes`, placed at each offset of an 8-byte word.
    fn assert_checks_agree(bytes: &[u8]) {
        let mut storage = [0u8; 8 + 64];
        let bytes = &bytes[..bytes.len().min(64)];
        for align in 0..8 {
            let b = &mut storage[align..align + bytes.len()];
            b.copy_from_slice(bytes);
            let b = &*b;
            assert_eq!(scan(b), scan_reference(b), "{b:x?}");
            let want = check_reference(b);
            assert_eq!(check_utf8(b), want, "{b:x?}");
            let mut field = [0u8; 2 + 64];
            field[..2].copy_from_slice(&(b.len() as u16).to_be_bytes());
            field[2..2 + b.len()].copy_from_slice(b);
            let field = &field[..2 + b.len()];
            let got = utf8(field).map(|(_, s)| s).map_err(finish_err);
            assert_eq!(got, want, "{b:x?}");
            let got = utf8_check_only(field).map(|_| ()).map_err(finish_err);
            assert_eq!(got, want.map(|_| ()), "{b:x?}");
            let got = utf8_scanned(field).map(|(_, s)| s).map_err(finish_err);
            assert_eq!(got, want.map(|s| (s, scan_reference(b))), "{b:x?}");
        }
    }

    #[test]
    fn checks_agree_on_hard_cases() {
        let cases: &[&[u8]] = &[
            b"",
            b"\0",
            b"a\0",
            b"plain ascii text",
            "é".as_bytes(),
            "€uro".as_bytes(),
            "😀 emoji, then \0".as_bytes(),
            &[0xED, 0xA0, 0x80], // U+D800, a surrogate (CESU-8 style)
            &[0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80], // a CESU-8 surrogate pair
            &[0xED, 0x9F, 0xBF], // U+D7FF, the last code point before them
            &[0xEE, 0x80, 0x80], // U+E000, the first after them
            &[0xC0, 0xAF],       // overlong '/'
            &[0xC0, 0x80],       // overlong U+0000 (modified UTF-8)
            &[0xE0, 0x80, 0xAF], // overlong 3-byte '/'
            &[0xF0, 0x80, 0x80, 0xAF], // overlong 4-byte '/'
            &[0xF4, 0x90, 0x80, 0x80], // above U+10FFFF
            &[0xF8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
            &[0xE2, 0x82],       // truncated '€'
            &[b'a', 0xE2, 0x82], // truncated after ASCII
            &[0x80],             // lone continuation byte
            &[0xFF],
            &[0xFE],
            b"+#/\x7f\x01",
        ];
        for case in cases {
            assert_checks_agree(case);
            // Also padded with ASCII on either side, so that the odd bytes fall in every
            // position of a word and of the overlapping last word.
            for pad in 0..12 {
                let mut v = vec![b'x'; pad];
                v.extend_from_slice(case);
                assert_checks_agree(&v);
                let mut v = case.to_vec();
                v.extend(core::iter::repeat_n(b'x', pad));
                assert_checks_agree(&v);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn checks_agree_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            assert_checks_agree(&bytes);
        }

        /// Mostly ASCII with a few bytes from the interesting ranges (U+0000, wildcards,
        /// continuation bytes, lead bytes of every length, the surrogate lead 0xED).
        #[test]
        fn checks_agree_on_mostly_text(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => 0x20u8..0x7F,
                    1 => proptest::sample::select(vec![0u8, b'+', b'#', 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]),
                ],
                0..40,
            ),
        ) {
            assert_checks_agree(&bytes);
        }

        #[test]
        fn checks_agree_on_valid_strings(s in "\\PC{0,20}") {
            assert_checks_agree(s.as_bytes());
        }
    }
}
