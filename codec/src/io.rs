//! Reading and writing whole packets over [`embedded_io`] byte streams (and, with the `async`
//! feature, [`embedded_io_async`] ones). The caller owns every buffer.

use core::fmt;

use crate::error::{DecodeError, EncodeError};
use crate::header::parse_fixed_header;
use crate::packet::{DecodeOptions, Packet, Status, decode};
use crate::wire::ProtocolVersion;

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReadError<E> {
    /// The stream failed.
    Io(E),
    /// The stream ended: cleanly before a packet (`mid_packet == false`) or inside one.
    Eof {
        /// Whether some bytes of a packet had been read.
        mid_packet: bool,
    },
    /// The bytes are not a valid packet.
    Decode(DecodeError),
    /// The caller's buffer is smaller than the packet.
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
    },
}

/// Why a packet could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteError<E> {
    /// The stream failed.
    Io(E),
    /// The packet could not be encoded (into the scratch buffer).
    Encode(EncodeError),
}

impl<E: fmt::Debug> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "read failed: {e:?}"),
            ReadError::Eof { mid_packet: false } => f.write_str("connection closed"),
            ReadError::Eof { mid_packet: true } => f.write_str("connection closed inside a packet"),
            ReadError::Decode(e) => write!(f, "{e}"),
            ReadError::BufferTooSmall { needed } => {
                write!(f, "packet of {needed} bytes does not fit the buffer")
            }
        }
    }
}

impl<E: fmt::Debug> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Io(e) => write!(f, "write failed: {e:?}"),
            WriteError::Encode(e) => write!(f, "{e}"),
        }
    }
}

/// After reading `filled` header bytes into `buf`: `None` if the fixed header needs another byte,
/// or the whole packet's length, checked against the limits.
fn packet_len<E>(buf: &[u8], options: DecodeOptions) -> Result<Option<usize>, ReadError<E>> {
    if let Some(&first) = buf.first() {
        options.check_first_byte(first).map_err(ReadError::Decode)?;
    }
    match parse_fixed_header(buf, options.version) {
        Ok((_, h)) => {
            let size = h.packet_len();
            if size > options.max_packet_size {
                return Err(ReadError::Decode(DecodeError::PacketTooLarge {
                    size,
                    max: options.max_packet_size,
                }));
            }
            Ok(Some(size as usize))
        }
        Err(nom::Err::Incomplete(_)) => Ok(None),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(ReadError::Decode(e)),
    }
}

fn finish<E>(buf: &[u8], options: DecodeOptions) -> Result<Packet<'_>, ReadError<E>> {
    match decode(buf, options).map_err(ReadError::Decode)? {
        Status::Complete(d) => Ok(d.packet),
        // The whole packet was read, so this cannot happen; report it as a short read.
        Status::Partial(_) => Err(ReadError::Eof { mid_packet: true }),
    }
}

/// Read exactly one packet from `r` into `buf` and decode it.
///
/// The fixed header is read a byte at a time (2 to 5 reads), the body with one `read_exact`; the
/// maximum packet size and the buffer size are checked before the body is read.
///
/// ```
/// use wren_codec::{io::read_packet, DecodeOptions, Packet, ProtocolVersion};
/// let mut stream: &[u8] = &[0xD0, 0x00, 0xC0, 0x00];
/// let mut buf = [0u8; 16];
/// let opts = DecodeOptions::new(ProtocolVersion::V311);
/// assert_eq!(read_packet(&mut stream, &mut buf, opts).unwrap(), Packet::PingResp);
/// assert_eq!(read_packet(&mut stream, &mut buf, opts).unwrap(), Packet::PingReq);
/// ```
pub fn read_packet<'b, R: embedded_io::Read>(
    r: &mut R,
    buf: &'b mut [u8],
    options: DecodeOptions,
) -> Result<Packet<'b>, ReadError<R::Error>> {
    let mut filled = 0usize;
    let total = loop {
        let slot =
            buf.get_mut(filled..filled.saturating_add(1))
                .ok_or(ReadError::BufferTooSmall {
                    needed: filled.saturating_add(1),
                })?;
        match r.read(slot) {
            Ok(0) => {
                return Err(ReadError::Eof {
                    mid_packet: filled > 0,
                });
            }
            Ok(_) => filled = filled.saturating_add(1),
            Err(e) => return Err(ReadError::Io(e)),
        }
        if let Some(total) = packet_len(buf.get(..filled).unwrap_or_default(), options)? {
            break total;
        }
    };
    let body = buf
        .get_mut(filled..total)
        .ok_or(ReadError::BufferTooSmall { needed: total })?;
    r.read_exact(body).map_err(|e| match e {
        embedded_io::ReadExactError::UnexpectedEof => ReadError::Eof { mid_packet: true },
        embedded_io::ReadExactError::Other(e) => ReadError::Io(e),
    })?;
    finish(buf.get(..total).unwrap_or_default(), options)
}

/// Encode `packet` into `scratch` and write it to `w` with one `write_all`.
pub fn write_packet<W: embedded_io::Write>(
    w: &mut W,
    packet: &Packet<'_>,
    version: ProtocolVersion,
    scratch: &mut [u8],
) -> Result<usize, WriteError<W::Error>> {
    let n = packet
        .encode(version, scratch)
        .map_err(WriteError::Encode)?;
    w.write_all(scratch.get(..n).unwrap_or_default())
        .map_err(WriteError::Io)?;
    Ok(n)
}

/// Async twins of [`read_packet`] and [`write_packet`] (feature `async`).
#[cfg(feature = "async")]
pub mod asynch {
    use super::{ReadError, WriteError, finish, packet_len};
    use crate::packet::Packet;
    use crate::{DecodeOptions, ProtocolVersion};

    /// Read exactly one packet from `r` into `buf` and decode it (see [`super::read_packet`]).
    pub async fn read_packet<'b, R: embedded_io_async::Read>(
        r: &mut R,
        buf: &'b mut [u8],
        options: DecodeOptions,
    ) -> Result<Packet<'b>, ReadError<R::Error>> {
        let mut filled = 0usize;
        let total = loop {
            let slot =
                buf.get_mut(filled..filled.saturating_add(1))
                    .ok_or(ReadError::BufferTooSmall {
                        needed: filled.saturating_add(1),
                    })?;
            match r.read(slot).await {
                Ok(0) => {
                    return Err(ReadError::Eof {
                        mid_packet: filled > 0,
                    });
                }
                Ok(_) => filled = filled.saturating_add(1),
                Err(e) => return Err(ReadError::Io(e)),
            }
            if let Some(total) = packet_len(buf.get(..filled).unwrap_or_default(), options)? {
                break total;
            }
        };
        let body = buf
            .get_mut(filled..total)
            .ok_or(ReadError::BufferTooSmall { needed: total })?;
        r.read_exact(body).await.map_err(|e| match e {
            embedded_io_async::ReadExactError::UnexpectedEof => ReadError::Eof { mid_packet: true },
            embedded_io_async::ReadExactError::Other(e) => ReadError::Io(e),
        })?;
        finish(buf.get(..total).unwrap_or_default(), options)
    }

    /// Encode `packet` into `scratch` and write it to `w` (see [`super::write_packet`]).
    pub async fn write_packet<W: embedded_io_async::Write>(
        w: &mut W,
        packet: &Packet<'_>,
        version: ProtocolVersion,
        scratch: &mut [u8],
    ) -> Result<usize, WriteError<W::Error>> {
        let n = packet
            .encode(version, scratch)
            .map_err(WriteError::Encode)?;
        w.write_all(scratch.get(..n).unwrap_or_default())
            .await
            .map_err(WriteError::Io)?;
        Ok(n)
    }
}
