//! [`StreamDecoder`]: a fixed-capacity reassembly buffer for byte streams that arrive in arbitrary
//! pieces (a UART, a TCP socket read into small chunks). Backed by a `heapless::Vec`, so firmware
//! chooses its capacity at compile time and nothing allocates.

use crate::error::DecodeError;
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
    options: DecodeOptions,
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
        if let Some(slice) = self.buf.get_mut(..) {
            slice.copy_within(self.consumed.min(len).., 0);
        }
        self.buf.truncate(keep);
        self.consumed = 0;
    }

    /// Append bytes; returns how many fit (the rest must be fed again after `next_packet`).
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        self.compact();
        let room = N.saturating_sub(self.buf.len());
        let n = room.min(bytes.len());
        let _ = self
            .buf
            .extend_from_slice(bytes.get(..n).unwrap_or_default());
        n
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
