//! Data representation (MQTT §1.5), one module per job: the packet identifier and QoS types
//! every packet shares ([`PacketId`], [`QoS`], in `types`), the nom readers of the field types
//! (`read`), the SWAR scan of string bytes for U+0000, wildcards and non-ASCII (`scan`), and
//! the length computations and the `Writer` of the encoder (`write`). Variable Byte Integers'
//! prefix reader and length live in the crate's leaf module, `wire`, with the packet types.
//!
//! Decoding uses nom `complete` parsers over a packet body whose length the fixed header already
//! fixed, so running out of bytes is [`DecodeError::UnexpectedEnd`]. Encoding is two steps per
//! packet: a length computation by arithmetic that also checks the packet against the protocol
//! rules (it serves both `encoded_len()` and `encode()`), then one pass of a `Writer` into a
//! buffer cut to exactly that length. The writer checks that it filled the buffer exactly, so
//! the two steps cannot disagree unnoticed.
//!
//! [`DecodeError::UnexpectedEnd`]: crate::error::DecodeError::UnexpectedEnd

pub(crate) mod read;
pub(crate) mod scan;
mod types;
pub(crate) mod write;

pub use crate::wire::VARINT_MAX;
pub use scan::{check_str, check_utf8};
pub use types::{PacketId, QoS};

pub(crate) use read::{
    binary, finish_err, nonzero_u32, packet_id, u8_, u16_, u32_, utf8, utf8_check_only,
    utf8_prevalidated, utf8_scanned, varint,
};
pub(crate) use scan::{HAS_NUL, HAS_WILDCARD, scan};
pub(crate) use write::{
    Writer, binary_len, copy_into, copy_payload, frame_lengths, packet_buf, plain_written,
    put_field, put_varint, split_header, start_packet, str_len, varint_field_len,
};
