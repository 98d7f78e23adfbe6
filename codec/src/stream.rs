//! [`StreamDecoder`]: a fixed-capacity reassembly buffer for byte streams that arrive in arbitrary
//! pieces (a UART, a TCP socket read into small chunks). Backed by a `heapless::Vec`, so firmware
//! chooses its capacity at compile time and nothing allocates.

use crate::error::DecodeError;
use crate::header::{FixedHeader, parse_fixed_header};
use crate::packet::{DecodeOptions, Packet, Status, decode};

/// Reassembles packets from a byte stream in a buffer of `N` bytes.
///
/// ```
/// use wren_codec::{stream::StreamDecoder, DecodeOptions, Packet, ProtocolVersion};
/// let mut d = StreamDecoder::<64>::new(DecodeOptions::new(ProtocolVersion::V311));
/// assert_eq!(d.feed(&[0xC0]), 1);
/// assert_eq!(d.next_packet(), Ok(None));
/// d.feed(&[0x00, 0xD0, 0x00]);
/// assert_eq!(d.next_packet(), Ok(Some(Packet::PingReq)));
/// assert_eq!(d.next_packet(), Ok(Some(Packet::PingResp)));
/// assert_eq!(d.next_packet(), Ok(None));
/// ```
#[derive(Debug)]
pub struct StreamDecoder<const N: usize> {
    buf: heapless::Vec<u8, N>,
    /// Bytes at the front of `buf` taken by the packet last returned; dropped on the next call.
    consumed: usize,
    /// Bytes of a packet being skipped ([`StreamDecoder::skip_packet`]) that have not arrived
    /// yet: [`StreamDecoder::feed`] drops them.
    skip: u32,
    options: DecodeOptions,
}

/// `buf.copy_within(from.., 0)`. In a size-first build (feature `size`), by copies of at most
/// `from` bytes, which never overlap, so that `memmove` (1.5 KB of flash on a Cortex-M) is not
/// linked for this one call; `memcpy` is linked anyway.
fn move_to_front(buf: &mut [u8], from: usize) {
    if cfg!(feature = "size") {
        move_to_front_by_copies(buf, from);
    } else if from <= buf.len() {
        buf.copy_within(from.., 0);
    }
}

fn move_to_front_by_copies(buf: &mut [u8], from: usize) {
    if from == 0 {
        return;
    }
    let mut to = 0usize;
    while let Some((head, tail)) = buf.split_at_mut_checked(to.saturating_add(from)) {
        let n = from.min(tail.len());
        let (Some(dst), Some(src)) = (head.get_mut(to..to.saturating_add(n)), tail.get(..n)) else {
            break;
        };
        if n == 0 {
            break;
        }
        dst.copy_from_slice(src);
        to = to.saturating_add(n);
    }
}

impl<const N: usize> StreamDecoder<N> {
    /// An empty decoder. Packets larger than `N` are refused as too large. `const`, so a
    /// decoder can be built in a `static`.
    pub const fn new(options: DecodeOptions) -> Self {
        let cap = if N > u32::MAX as usize {
            u32::MAX
        } else {
            N as u32
        };
        let max_packet_size = if options.max_packet_size < cap {
            options.max_packet_size
        } else {
            cap
        };
        let options = DecodeOptions {
            max_packet_size,
            ..options
        };
        StreamDecoder {
            buf: heapless::Vec::new(),
            consumed: 0,
            skip: 0,
            options,
        }
    }

    /// Change the protocol version (after CONNECT names it).
    pub fn set_version(&mut self, version: crate::wire::ProtocolVersion) {
        self.options.version = version;
    }

    fn compact(&mut self) {
        if self.consumed == 0 {
            return;
        }
        let len = self.buf.len();
        let keep = len.saturating_sub(self.consumed);
        move_to_front(&mut self.buf, self.consumed.min(len));
        self.buf.truncate(keep);
        self.consumed = 0;
    }

    /// Append bytes; returns how many were taken (the rest must be fed again after
    /// `next_packet`). The bytes of a packet being skipped are taken and dropped.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let dropped = usize::try_from(self.skip).map_or(bytes.len(), |s| s.min(bytes.len()));
        // `dropped` is at most `self.skip` (and `bytes.len()`).
        self.skip = self
            .skip
            .saturating_sub(u32::try_from(dropped).unwrap_or(u32::MAX));
        let bytes = bytes.get(dropped..).unwrap_or_default();
        self.compact();
        let room = N.saturating_sub(self.buf.len());
        let n = room.min(bytes.len());
        let _ = self
            .buf
            .extend_from_slice(bytes.get(..n).unwrap_or_default());
        dropped.saturating_add(n)
    }

    /// Skip the packet at the front of the stream, after [`StreamDecoder::next_packet`]
    /// refused it as larger than the buffer ([`DecodeError::PacketTooLarge`]): the part of it
    /// buffered is dropped now, the rest as [`StreamDecoder::feed`] receives it, and decoding
    /// goes on with the packet after it. Returns the skipped packet's fixed header (its type
    /// and length: whether skipping it is allowed is the caller's protocol decision), or
    /// `None` if no complete fixed header is buffered (nothing is skipped).
    ///
    /// ```
    /// use wren_codec::{stream::StreamDecoder, DecodeError, DecodeOptions, Packet, PacketType,
    ///                  ProtocolVersion};
    /// let mut d = StreamDecoder::<8>::new(DecodeOptions::new(ProtocolVersion::V311));
    /// // A 12-byte QoS 0 PUBLISH does not fit in 8 bytes; a PINGRESP follows it.
    /// d.feed(&[0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b']);
    /// assert!(matches!(d.next_packet(), Err(DecodeError::PacketTooLarge { size: 12, max: 8 })));
    /// assert_eq!(d.skip_packet().map(|h| h.packet_type), Some(PacketType::Publish));
    /// assert_eq!(d.feed(b"hello"), 5); // the rest of the PUBLISH, dropped
    /// d.feed(&[0xD0, 0x00]);
    /// assert_eq!(d.next_packet(), Ok(Some(Packet::PingResp)));
    /// ```
    pub fn skip_packet(&mut self) -> Option<FixedHeader> {
        self.compact();
        let (_, header) = parse_fixed_header(&self.buf, self.options.version).ok()?;
        let size = header.packet_len();
        let buffered = self
            .buf
            .len()
            .min(usize::try_from(size).unwrap_or(usize::MAX));
        self.consumed = buffered;
        self.skip = size.saturating_sub(u32::try_from(buffered).unwrap_or(u32::MAX));
        Some(header)
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed, or why the stream is not MQTT.
    /// After an error the stream cannot be resynchronised; drop the connection.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, DecodeError> {
        self.compact();
        match decode(&self.buf, self.options)? {
            Status::Complete(d) => {
                self.consumed = d.consumed;
                Ok(Some(d.packet))
            }
            Status::Partial(_) => Ok(None),
        }
    }

    /// Drop everything buffered (after the connection it came from was lost).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.consumed = 0;
        self.skip = 0;
    }

    /// How many bytes [`StreamDecoder::feed`] accepts now (after dropping the packet last
    /// returned).
    pub fn room(&self) -> usize {
        N.saturating_sub(self.buffered())
    }

    /// Bytes buffered and not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.consumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    use crate::header::PacketType;
    use crate::wire::ProtocolVersion;

    #[test]
    fn an_oversize_packet_is_skipped_across_feeds() {
        let mut d = StreamDecoder::<16>::new(DecodeOptions::new(ProtocolVersion::V311));
        // A QoS 0 PUBLISH of 2 + 40 bytes on topic "t", then a PINGRESP, fed 5 bytes at a time.
        let mut stream = std::vec![0x30, 40, 0, 1, b't'];
        stream.extend(core::iter::repeat_n(b'x', 37));
        stream.extend([0xD0, 0x00]);
        let mut skipped = None;
        let mut got = std::vec::Vec::new();
        for chunk in stream.chunks(5) {
            assert_eq!(d.feed(chunk), chunk.len());
            loop {
                match d.next_packet() {
                    Ok(Some(p)) => got.push(p.packet_type()),
                    Ok(None) => break,
                    Err(DecodeError::PacketTooLarge { size: 42, max: 16 }) => {
                        skipped = d.skip_packet().map(|h| h.packet_type);
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(skipped, Some(PacketType::Publish));
        assert_eq!(got, [PacketType::PingResp]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn moving_by_copies_is_copy_within() {
        for len in 0..20 {
            for from in 0..=len {
                let original: Vec<u8> = (0..len as u8).collect();
                let mut expected = original.clone();
                expected.copy_within(from.., 0);
                let mut by_copies = original.clone();
                move_to_front_by_copies(&mut by_copies, from);
                assert_eq!(by_copies, expected, "len {len}, from {from}");
            }
        }
        // Beyond the end: nothing moves.
        let mut short = [1u8, 2];
        move_to_front_by_copies(&mut short, 3);
        assert_eq!(short, [1, 2]);
    }
}
