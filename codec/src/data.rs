//! Data representation (MQTT §1.5): integers, Variable Byte Integers, UTF-8 strings, binary data,
//! plus the packet identifier and QoS types every packet shares.
//!
//! Decoding uses nom `complete` parsers over a packet body whose length the fixed header already
//! fixed, so running out of bytes is [`DecodeError::UnexpectedEnd`]. Encoding is two steps per
//! packet: a length computation by arithmetic that also checks the packet against the protocol
//! rules (it serves both `encoded_len()` and `encode()`), then one pass of a [`Writer`] into a
//! buffer cut to exactly that length. The writer checks that it filled the buffer exactly, so
//! the two steps cannot disagree unnoticed.

use core::num::{NonZeroU16, NonZeroU32};

use nom::{IResult, Parser};

use crate::error::{DecodeError, EncodeError};
use crate::header::MAX_REMAINING_LENGTH;

/// The largest value a Variable Byte Integer can hold.
pub const VARINT_MAX: u32 = 268_435_455;

/// A packet identifier: never 0 (`[MQTT-2.3.1-1]` in 3.1.1, `[MQTT-2.2.1-3]` in 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// A packet identifier, or `None` for 0.
    pub const fn new(value: u16) -> Option<Self> {
        match NonZeroU16::new(value) {
            Some(v) => Some(PacketId(v)),
            None => None,
        }
    }

    /// The identifier's value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    /// The identifier after this one, wrapping from 65,535 to 1.
    pub const fn next(self) -> Self {
        match NonZeroU16::new(self.0.get().wrapping_add(1)) {
            Some(v) => PacketId(v),
            None => PacketId(NonZeroU16::MIN),
        }
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(v: NonZeroU16) -> Self {
        PacketId(v)
    }
}

/// Quality of service (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum QoS {
    /// At most once: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// At least once: PUBLISH, PUBACK.
    AtLeastOnce = 1,
    /// Exactly once: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a 2-bit field value; `None` for 3.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The field value.
    pub const fn bits(self) -> u8 {
        self as u8
    }
}

/// Result of reading a Variable Byte Integer from the front of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintStatus {
    /// The integer and how many bytes encoded it.
    Complete { value: u32, len: usize },
    /// The slice ended inside the integer.
    Incomplete,
    /// More than four bytes, or (with `minimal`) a non-minimal encoding.
    Invalid(DecodeError),
}

/// Read a Variable Byte Integer (§1.5.5 in 5.0, §2.2.3 in 3.1.1) from the front of `bytes`.
pub(crate) fn varint_prefix(bytes: &[u8], minimal: bool) -> VarintStatus {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        // i < 4, so the shift is at most 21 and the sum stays below 2^28.
        let shift = 7u32.saturating_mul(i as u32);
        value |= u32::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            // A last byte of 0 after at least one other byte means a shorter form existed.
            if minimal && i > 0 && byte == 0 {
                return VarintStatus::Invalid(DecodeError::VarintNotMinimal);
            }
            return VarintStatus::Complete {
                value,
                len: i.saturating_add(1),
            };
        }
        if i == 3 {
            return VarintStatus::Invalid(DecodeError::VarintTooLong);
        }
    }
    VarintStatus::Incomplete
}

/// How many bytes a Variable Byte Integer takes.
pub(crate) const fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

// By hand rather than nom's `be_u8` / `be_u16` / `be_u32` (the same result and error), so that
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
        VarintStatus::Invalid(e) => Err(nom::Err::Failure(e)),
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

/// Validate MQTT UTF-8 rules on raw bytes. `core::str::from_utf8` already rejects surrogates and
/// overlong forms; U+0000 must be checked on its own.
#[inline]
pub fn check_utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    let found = scan(bytes);
    let s = core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    if found & HAS_NUL != 0 {
        return Err(DecodeError::NullCharacter);
    }
    Ok(s)
}

/// MQTT UTF-8 rules on a Rust string: no U+0000.
pub fn check_str(s: &str) -> Result<(), DecodeError> {
    if scan(s.as_bytes()) & HAS_NUL != 0 {
        Err(DecodeError::NullCharacter)
    } else {
        Ok(())
    }
}

/// [`scan`] bit: the bytes hold U+0000.
pub(crate) const HAS_NUL: u8 = 1;
/// [`scan`] bit: the bytes hold a `+` or `#` wildcard.
pub(crate) const HAS_WILDCARD: u8 = 2;
/// [`scan`] bit: the bytes hold a byte above 0x7F (they are not ASCII).
pub(crate) const NON_ASCII: u8 = 4;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const PLUSES: u64 = 0x2B2B_2B2B_2B2B_2B2B;
/// `#` (0x23) and `+` (0x2B) differ in bit 3 only, and no other byte becomes either with it set.
const BIT3S: u64 = 0x0808_0808_0808_0808;

/// A zero byte of `w` has its high bit set in the result; with no zero byte, no high bit is set
/// (a borrow can only give a false hit in a byte above a true zero byte, so "any" is exact, also
/// when or'ed over several words).
#[inline(always)]
const fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w
}

/// [`scan`]'s accumulators: zero bytes, wildcard bytes, and the words themselves (for the high
/// bits of non-ASCII bytes).
#[derive(Clone, Copy)]
struct Found {
    nul: u64,
    wild: u64,
    high: u64,
}

impl Found {
    #[inline(always)]
    fn add(&mut self, w: u64) {
        self.nul |= zero_bytes(w);
        self.wild |= zero_bytes((w | BIT3S) ^ PLUSES);
        self.high |= w;
    }

    #[inline(always)]
    fn bits(self) -> u8 {
        u8::from(self.nul & HIGHS != 0)
            | (u8::from(self.wild & HIGHS != 0) << 1)
            | (u8::from(self.high & HIGHS != 0) << 2)
    }
}

/// A byte that sets none of [`scan`]'s bits, to fill a word out with.
const PAD: u8 = b'a';

/// Which of U+0000, the wildcards `+` `#` and non-ASCII bytes `bytes` holds, as [`HAS_NUL`] |
/// [`HAS_WILDCARD`] | [`NON_ASCII`] bits.
///
/// Every string field, PUBLISH topic and SUBSCRIBE filter goes through this, so it tests eight
/// bytes per step (SWAR) with no early exit and no byte loop: the bytes that do not fill a last
/// word are tested as a last word overlapping the one before (from 8 bytes on), or as one word
/// put together from overlapping loads and padded with a neutral byte (below 8). On the 10–50
/// byte strings MQTT carries this is several times faster than a byte loop or one `memchr` per
/// character class.
#[inline]
pub(crate) fn scan(bytes: &[u8]) -> u8 {
    let mut found = Found {
        nul: 0,
        wild: 0,
        high: 0,
    };
    let n = bytes.len();
    if n >= 8 {
        let mut rest = bytes;
        while let Some((&word, tail)) = rest.split_first_chunk::<8>() {
            found.add(u64::from_le_bytes(word));
            rest = tail;
        }
        if !rest.is_empty() {
            if let Some(&last) = bytes.last_chunk::<8>() {
                found.add(u64::from_le_bytes(last));
            }
        }
    } else if n >= 4 {
        if let (Some(&[a, b, c, d]), Some(&[e, f, g, h])) =
            (bytes.first_chunk::<4>(), bytes.last_chunk::<4>())
        {
            found.add(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
        }
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        // 1 to 3 bytes: the first, the middle one (the first or last again when shorter) and
        // the last.
        let mid = bytes.get(n >> 1).copied().unwrap_or(PAD);
        found.add(u64::from_le_bytes([
            first, mid, last, PAD, PAD, PAD, PAD, PAD,
        ]));
    }
    found.bits()
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

/// Bytes a Binary Data or UTF-8 String field takes, its two-byte length included; a field over
/// 65,535 bytes is [`EncodeError::FieldTooLong`] (5.0 §1.5.4, §1.5.6).
#[inline]
pub(crate) fn binary_len(b: &[u8]) -> Result<usize, EncodeError> {
    if b.len() > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong);
    }
    Ok(b.len().saturating_add(2))
}

/// [`binary_len`] of a string.
#[inline]
pub(crate) fn str_len(s: &str) -> Result<usize, EncodeError> {
    binary_len(s.as_bytes())
}

/// Bytes a Variable Byte Integer field takes; a value above [`VARINT_MAX`] is
/// [`EncodeError::InvalidValue`].
#[inline]
pub(crate) fn varint_field_len(v: u32) -> Result<usize, EncodeError> {
    if v > VARINT_MAX {
        return Err(EncodeError::InvalidValue);
    }
    Ok(varint_len(v))
}

/// The Remaining Length for a body of `body` bytes and the length of the whole packet, or
/// [`EncodeError::PacketTooLarge`]. Lengths are summed with saturating arithmetic, so an overflow
/// shows here as a body far above the maximum.
#[inline]
pub(crate) fn frame_lengths(body: usize) -> Result<(u32, usize), EncodeError> {
    let remaining = u32::try_from(body)
        .ok()
        .filter(|&r| r <= MAX_REMAINING_LENGTH)
        .ok_or(EncodeError::PacketTooLarge)?;
    Ok((
        remaining,
        body.saturating_add(varint_len(remaining)).saturating_add(1),
    ))
}

/// The first `total` bytes of `buf`, where a packet of `total` bytes is written, or
/// [`EncodeError::BufferTooSmall`] with the exact size needed (the buffer untouched).
#[inline(always)]
pub(crate) fn packet_buf(buf: &mut [u8], total: usize) -> Result<&mut [u8], EncodeError> {
    match buf.get_mut(..total) {
        Some(out) => Ok(out),
        None => Err(EncodeError::BufferTooSmall { needed: total }),
    }
}

/// The result of a plain-path encode of `total` bytes: `written` is `None` only if the length
/// measured first disagreed with the writes (never: the tests compare each plain path with the
/// general one), reported as [`Writer::finish`] reports it.
#[inline(always)]
pub(crate) fn plain_written(total: usize, written: Option<()>) -> Result<usize, EncodeError> {
    match written {
        Some(()) => Ok(total),
        None => Err(EncodeError::InvalidValue),
    }
}

/// The first and the last `N` bytes of `src` into `dst` (overlapping when `src` is shorter
/// than `2 * N`).
#[inline(always)]
fn ends<const N: usize>(dst: &mut [u8], src: &[u8]) {
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
        *d = *s;
    }
}

/// Copy `src` into `dst` of the same length. MQTT's strings are short (topics, filters, client
/// identifiers, property names), and so are many payloads (sensor readings): up to 64 bytes they
/// are copied inline with two overlapping fixed-size moves, without a call to `memcpy` and the
/// register spills around it; longer ones with `copy_from_slice`. Always inlined: with two
/// callers in the PUBLISH encode, a plain `#[inline]` left it a call there.
#[inline(always)]
pub(crate) fn copy_into(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n != dst.len() {
        return;
    }
    // Most likely sizes first: topics, filters and identifiers are mostly 8 to 32 bytes.
    if n >= 8 {
        if n <= 16 {
            ends::<8>(dst, src);
        } else if n <= 32 {
            ends::<16>(dst, src);
        } else if n <= 64 {
            ends::<32>(dst, src);
        } else {
            dst.copy_from_slice(src);
        }
    } else {
        copy_short(dst, src);
    }
}

/// [`copy_into`] for a PUBLISH payload, which is more often long than a string is: the sizes
/// are tested from the longest down (a payload over 64 bytes goes to `copy_from_slice` after
/// one test, a 33- to 64-byte one is copied after two).
#[inline(always)]
pub(crate) fn copy_payload(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n != dst.len() {
        return;
    }
    if n > 64 {
        dst.copy_from_slice(src);
    } else if n > 32 {
        ends::<32>(dst, src);
    } else if n > 16 {
        ends::<16>(dst, src);
    } else if n >= 8 {
        ends::<8>(dst, src);
    } else {
        copy_short(dst, src);
    }
}

/// [`copy_into`] below 8 bytes.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n >= 4 {
        ends::<4>(dst, src);
    } else if n >= 2 {
        ends::<2>(dst, src);
    } else if let (Some(d), Some(s)) = (dst.first_mut(), src.first()) {
        *d = *s;
    }
}

/// A two-byte length and `bytes` (at most 65,535, checked by the caller) at the front of
/// `out`; the rest of `out` after them. For the plain paths, which write by cutting the buffer
/// rather than through a [`Writer`].
#[inline(always)]
pub(crate) fn put_field<'b>(out: &'b mut [u8], bytes: &[u8]) -> Option<&'b mut [u8]> {
    let (len, rest) = out.split_first_chunk_mut::<2>()?;
    *len = (bytes.len() as u16).to_be_bytes();
    let (dst, rest) = rest.split_at_mut_checked(bytes.len())?;
    copy_into(dst, bytes);
    Some(rest)
}

/// A Variable Byte Integer (at most [`VARINT_MAX`], checked by the caller) at the front of
/// `out`; the rest of `out` after it. What [`Writer::varint`] writes.
#[inline(always)]
pub(crate) fn put_varint(out: &mut [u8], v: u32) -> Option<&mut [u8]> {
    match u8::try_from(v) {
        Ok(b) if b < 0x80 => {
            let (dst, rest) = out.split_first_mut()?;
            *dst = b;
            Some(rest)
        }
        _ => put_varint_long(out, v),
    }
}

fn put_varint_long(mut out: &mut [u8], mut v: u32) -> Option<&mut [u8]> {
    loop {
        let (dst, rest) = out.split_first_mut()?;
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        *dst = byte;
        out = rest;
        if v == 0 {
            return Some(out);
        }
    }
}

/// Writes a packet into a buffer that was cut to exactly the packet's length, which every
/// encoder computes (and validates the packet with) before the first byte is written: a buffer
/// too small is refused untouched, and the writes themselves cannot fail. Each write splits the
/// front off the rest of the buffer and copies into it.
///
/// Should a length computation and its writer ever disagree, the writer stops at the end of the
/// buffer and [`Writer::finish`] reports it: never a panic, never a short packet passed off as
/// whole.
#[derive(Debug)]
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    overrun: bool,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer {
            buf,
            pos: 0,
            overrun: false,
        }
    }

    /// The bytes written, if exactly the whole buffer was written.
    #[inline(always)]
    pub(crate) fn finish(self) -> Result<usize, EncodeError> {
        if self.overrun || self.pos != self.buf.len() {
            // Unreachable while the length computations are right (every test and fuzz target
            // checks `encoded_len` against `encode`).
            return Err(EncodeError::InvalidValue);
        }
        Ok(self.pos)
    }

    #[cold]
    fn overrun(&mut self) {
        self.overrun = true;
        self.pos = self.buf.len();
    }

    /// The next `n` bytes of the buffer, or `None` (and the writer stopped) past its end.
    #[inline]
    fn next(&mut self, n: usize) -> Option<&mut [u8]> {
        // Wrapping: an end below `pos` is refused by `get_mut` as any other bad range.
        let end = self.pos.wrapping_add(n);
        if end > self.buf.len() || end < self.pos {
            self.overrun();
            return None;
        }
        let start = core::mem::replace(&mut self.pos, end);
        self.buf.get_mut(start..end)
    }

    #[inline]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.next(bytes.len()) {
            copy_into(dst, bytes);
        }
    }

    /// Several fixed-size fields in one write.
    #[inline]
    pub(crate) fn array<const N: usize>(&mut self, bytes: [u8; N]) {
        if let Some(dst) = self.next(N).and_then(|d| <&mut [u8; N]>::try_from(d).ok()) {
            *dst = bytes;
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self, v: u8) {
        self.array([v]);
    }

    #[inline]
    pub(crate) fn u16(&mut self, v: u16) {
        self.array(v.to_be_bytes());
    }

    /// A Variable Byte Integer; the length computation has checked it is at most
    /// [`VARINT_MAX`].
    #[inline]
    pub(crate) fn varint(&mut self, v: u32) {
        match u8::try_from(v) {
            Ok(b) if b < 0x80 => self.u8(b),
            _ => self.varint_long(v),
        }
    }

    fn varint_long(&mut self, mut v: u32) {
        let mut out = [0u8; 4];
        let mut n = 0usize;
        for slot in out.iter_mut() {
            let mut byte = (v & 0x7F) as u8;
            v >>= 7;
            if v > 0 {
                byte |= 0x80;
            }
            *slot = byte;
            n = n.saturating_add(1);
            if v == 0 {
                break;
            }
        }
        self.put(out.get(..n).unwrap_or_default());
    }

    /// The fixed header: first byte and Remaining Length (one write for the one- and two-byte
    /// lengths of packets up to 16 KiB).
    #[inline]
    pub(crate) fn header(&mut self, first: u8, remaining: u32) {
        if remaining < 0x80 {
            self.array([first, (remaining & 0x7F) as u8]);
        } else if remaining < 0x4000 {
            self.array([
                first,
                (remaining & 0x7F) as u8 | 0x80,
                (remaining >> 7) as u8,
            ]);
        } else {
            self.u8(first);
            self.varint_long(remaining);
        }
    }

    /// Binary Data (or a string's bytes): two-byte length, then the bytes, in one write. The
    /// length computation has checked the length fits.
    #[inline]
    pub(crate) fn binary(&mut self, b: &[u8]) {
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        let Some(dst) = self.next(b.len().wrapping_add(2)) else {
            return;
        };
        if let Some((len_dst, bytes_dst)) = dst.split_first_chunk_mut::<2>() {
            *len_dst = len.to_be_bytes();
            copy_into(bytes_dst, b);
        }
    }

    #[inline]
    pub(crate) fn str(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }

    /// A string and the byte after it (a SUBSCRIBE filter and its options), in one write.
    #[inline]
    pub(crate) fn str_then_u8(&mut self, s: &str, byte: u8) {
        let b = s.as_bytes();
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        let Some(dst) = self.next(b.len().wrapping_add(3)) else {
            return;
        };
        if let Some((len_dst, dst)) = dst.split_first_chunk_mut::<2>() {
            *len_dst = len.to_be_bytes();
            if let Some((last, bytes_dst)) = dst.split_last_mut() {
                *last = byte;
                copy_into(bytes_dst, b);
            }
        }
    }
}

/// Start writing a packet whose body (measured, and checked against the protocol rules, by the
/// caller) is `body` bytes: refuse a buffer too small untouched, naming the size needed, cut the
/// buffer to the packet's exact length and write the fixed header. The caller writes the body
/// and ends with [`Writer::finish`].
#[inline(always)]
pub(crate) fn start_packet(
    buf: &mut [u8],
    first: u8,
    body: usize,
) -> Result<Writer<'_>, EncodeError> {
    let (remaining, total) = frame_lengths(body)?;
    let mut w = Writer::new(packet_buf(buf, total)?);
    w.header(first, remaining);
    Ok(w)
}

/// Write the fixed header (first byte `first`, Remaining Length `remaining`) at the front of
/// `out` and return the rest, or `None` if `out` is too short; what [`Writer::header`] writes.
pub(crate) fn split_header(out: &mut [u8], first: u8, remaining: u32) -> Option<&mut [u8]> {
    let n = varint_len(remaining).saturating_add(1);
    let (dst, rest) = out.split_at_mut_checked(n)?;
    let mut w = Writer::new(dst);
    w.header(first, remaining);
    w.finish().ok()?;
    Some(rest)
}

/// A `u32` that must not be zero, as Receive Maximum and Maximum Packet Size are.
pub(crate) fn nonzero_u32(v: u32, id: u8) -> Result<NonZeroU32, DecodeError> {
    NonZeroU32::new(v).ok_or(DecodeError::InvalidPropertyValue(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_encodings_roundtrip() {
        for v in [
            0u32, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, VARINT_MAX,
        ] {
            let mut buf = [0u8; 4];
            let n = varint_field_len(v).unwrap();
            assert_eq!(n, varint_len(v));
            let mut w = Writer::new(&mut buf[..n]);
            w.varint(v);
            assert_eq!(w.finish(), Ok(n));
            assert_eq!(
                varint_prefix(&buf[..n], true),
                VarintStatus::Complete { value: v, len: n }
            );
            for cut in 0..n {
                assert_eq!(varint_prefix(&buf[..cut], true), VarintStatus::Incomplete);
            }
            // The fixed header's length writer gives the same bytes.
            let mut header = [0u8; 5];
            let mut w = Writer::new(&mut header[..n + 1]);
            w.header(0x30, v);
            w.finish().unwrap();
            assert_eq!((header[0], &header[1..n + 1]), (0x30, &buf[..n]));
        }
        assert_eq!(
            varint_field_len(VARINT_MAX + 1),
            Err(EncodeError::InvalidValue)
        );
    }

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

    #[test]
    fn scan_finds_nul_and_wildcards_anywhere() {
        assert_eq!(scan(b""), 0);
        assert_eq!(scan(b"sensors/dev01/temperature"), 0);
        // Every position of an 8-byte word and of the remainder, and the borrow edge cases
        // (0x01 after a 0x00, 0x80 bytes) of the zero-byte test.
        for len in 1..=20 {
            for at in 0..len {
                for (byte, bit) in [(0u8, HAS_NUL), (b'+', HAS_WILDCARD), (b'#', HAS_WILDCARD)] {
                    let mut v = [b'a'; 20];
                    v[at] = byte;
                    assert_eq!(scan(&v[..len]), bit, "{byte:#x} at {at} of {len}");
                }
            }
        }
        assert_eq!(scan(&[0x80; 16]), NON_ASCII);
        assert_eq!(scan(&[0x01; 16]), 0);
        assert_eq!(scan(&[0x2A, 0x2C, 0x22, 0x24, 0x7F, 0x7F, 0x01, 0x21]), 0);
        assert_eq!(
            scan(&[0x2A, 0x2C, 0x22, 0x24, 0xAB, 0xA3, 0x01, 0x81]),
            NON_ASCII
        );
        assert_eq!(
            scan(br"\0+#aaaaaaaaaa"),
            HAS_WILDCARD,
            "a backslash-zero is not U+0000"
        );
        assert_eq!(
            scan(&[b'+', 0, b'#', 1, 2, 3, 4, 5, 6]),
            HAS_NUL | HAS_WILDCARD
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

    #[test]
    fn writer_reports_needed_size() {
        // A 4-byte string is a 6-byte field, 8 bytes with the fixed header: a buffer of 3 is
        // refused untouched, naming the 8 bytes needed.
        let encode = |buf: &mut [u8]| -> Result<usize, EncodeError> {
            let mut w = start_packet(buf, 0x30, str_len("abcd")?)?;
            w.str("abcd");
            w.finish()
        };
        let mut buf = [0xAAu8; 3];
        assert_eq!(
            encode(&mut buf),
            Err(EncodeError::BufferTooSmall { needed: 8 })
        );
        assert_eq!(buf, [0xAA; 3]);
        let mut buf = [0u8; 8];
        assert_eq!(encode(&mut buf), Ok(8));
        assert_eq!(buf, [0x30, 6, 0, 4, b'a', b'b', b'c', b'd']);
    }

    #[test]
    fn strings_of_every_short_length_are_copied_exactly() {
        let src: [u8; 70] = core::array::from_fn(|i| i as u8 + 1);
        for n in 0..=70 {
            let mut buf = [0u8; 80];
            let mut w = Writer::new(&mut buf[..n + 3]);
            w.str_then_u8(core::str::from_utf8(&[b'a'; 70][..n]).unwrap(), 0xEE);
            assert_eq!(w.finish(), Ok(n + 3));
            assert_eq!(&buf[..2], &(n as u16).to_be_bytes());
            assert!(buf[2..n + 2].iter().all(|&b| b == b'a'), "{n}");
            assert_eq!(buf[n + 2], 0xEE);
            assert!(
                buf[n + 3..].iter().all(|&b| b == 0),
                "{n}: wrote past the field"
            );
            let mut buf = [0u8; 80];
            let mut w = Writer::new(&mut buf[..n + 2]);
            w.binary(&src[..n]);
            assert_eq!(w.finish(), Ok(n + 2));
            assert_eq!(&buf[2..n + 2], &src[..n], "{n}");
            assert!(
                buf[n + 2..].iter().all(|&b| b == 0),
                "{n}: wrote past the field"
            );
            let mut buf = [0u8; 80];
            let mut w = Writer::new(&mut buf[..n]);
            w.put(&src[..n]);
            assert_eq!(w.finish(), Ok(n));
            assert_eq!(&buf[..n], &src[..n], "{n}");
            assert!(
                buf[n..].iter().all(|&b| b == 0),
                "{n}: wrote past the payload"
            );
        }
    }

    #[test]
    fn writer_reports_a_length_that_disagrees() {
        // Writing more than was counted stops at the end of the buffer and is an error...
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.str("abcd");
        w.u8(1);
        assert_eq!(w.finish(), Err(EncodeError::InvalidValue));
        // ... and so is writing less.
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.u16(1);
        assert_eq!(w.finish(), Err(EncodeError::InvalidValue));
        let mut buf = [0u8; 3];
        let w = start_packet(&mut buf, 0xC0, 1).unwrap();
        assert_eq!(w.finish(), Err(EncodeError::InvalidValue));
        let long = [b'x'; 65_536];
        let long = core::str::from_utf8(&long).unwrap();
        assert_eq!(str_len(long), Err(EncodeError::FieldTooLong));
        assert_eq!(str_len(&long[1..]), Ok(65_537));
    }

    #[test]
    fn packet_id_next_wraps_to_one() {
        assert_eq!(PacketId::new(u16::MAX).unwrap().next().get(), 1);
        assert_eq!(PacketId::new(0), None);
    }
}
