//! The encoder's side of the field types: the lengths (checked against MQTT's limits) that
//! every packet's length computation sums, and the [`Writer`] and the plain-path helpers that
//! write them into a buffer cut to the packet's exact length.

use crate::error::EncodeError;
use crate::wire::{MAX_REMAINING_LENGTH, VARINT_MAX, varint_len};

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
#[cfg_attr(not(feature = "size"), inline(always))]
pub(crate) fn packet_buf(buf: &mut [u8], total: usize) -> Result<&mut [u8], EncodeError> {
    match buf.get_mut(..total) {
        Some(out) => Ok(out),
        None => Err(EncodeError::BufferTooSmall { needed: total }),
    }
}

/// The result of a plain-path encode of `total` bytes: `written` is `None` only if the length
/// measured first disagreed with the writes (never: the tests compare each plain path with the
/// general one), reported as [`Writer::finish`] reports it.
#[cfg_attr(not(feature = "size"), inline(always))]
pub(crate) fn plain_written(total: usize, written: Option<()>) -> Result<usize, EncodeError> {
    match written {
        Some(()) => Ok(total),
        None => Err(EncodeError::InvalidValue),
    }
}

/// The first and the last `N` bytes of `src` into `dst` (overlapping when `src` is shorter
/// than `2 * N`).
#[cfg_attr(not(feature = "size"), inline(always))]
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
#[cfg_attr(not(feature = "size"), inline(always))]
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
#[cfg_attr(not(feature = "size"), inline(always))]
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
#[cfg_attr(not(feature = "size"), inline(always))]
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
#[cfg_attr(not(feature = "size"), inline(always))]
pub(crate) fn put_field<'b>(out: &'b mut [u8], bytes: &[u8]) -> Option<&'b mut [u8]> {
    let (len, rest) = out.split_first_chunk_mut::<2>()?;
    *len = (bytes.len() as u16).to_be_bytes();
    let (dst, rest) = rest.split_at_mut_checked(bytes.len())?;
    copy_into(dst, bytes);
    Some(rest)
}

/// A Variable Byte Integer (at most [`VARINT_MAX`], checked by the caller) at the front of
/// `out`; the rest of `out` after it. What [`Writer::varint`] writes.
#[cfg_attr(not(feature = "size"), inline(always))]
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
    #[cfg_attr(not(feature = "size"), inline(always))]
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
        if v < 0x80 {
            self.u8(v as u8);
        } else {
            self.varint_long(v);
        }
    }

    /// A Variable Byte Integer of two bytes or more: measured, and written by
    /// [`put_varint_long`] (out of line) into the bytes it takes. Always inlined, so that this
    /// out-of-line call is passed a slice rather than the writer: a callee in another codegen
    /// unit that gets `&mut self` made the caller reload the writer's fields around its
    /// writes (CONNECT 5.0 encode: 930 instructions with it, 903 without; see the README).
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn varint_long(&mut self, v: u32) {
        if let Some(dst) = self.next(varint_len(v)) {
            put_varint_long(dst, v);
        }
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
#[cfg_attr(not(feature = "size"), inline(always))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{VarintStatus, varint_prefix};

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
}
