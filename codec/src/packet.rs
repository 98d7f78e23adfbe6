//! [`Packet`]: every MQTT control packet, the single decode entry point [`decode`] and encoding.

use crate::ack::{self, Ack};
use crate::connack::{self, ConnAck};
use crate::connect::{self, Connect};
use crate::data::{frame_lengths, start_packet};
use crate::disconnect::{self, Auth, Disconnect};
use crate::error::{DecodeError, EncodeError};
use crate::header::{FixedHeader, PacketType, parse_fixed_header};
use crate::publish::{self, Publish};
use crate::suback::{self, SubAck};
use crate::subscribe::{self, Subscribe};
use crate::unsubscribe::{self, Unsubscribe};
use crate::wire::{ProtocolVersion, Sender};

/// What [`decode`] needs to know about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DecodeOptions {
    /// The connection's protocol version (ignored for CONNECT, which names its own).
    pub version: ProtocolVersion,
    /// Largest packet accepted, fixed header included; checked before the body is buffered.
    pub max_packet_size: u32,
    /// Who sent the bytes: a packet type only the other side sends is refused from the first
    /// byte, whatever its flags, length or body ([`DecodeError::WrongDirection`]).
    pub sender: Sender,
}

impl DecodeOptions {
    /// Options for `version` with no size limit beyond MQTT's own (268,435,460 bytes).
    pub const fn new(version: ProtocolVersion) -> Self {
        DecodeOptions {
            version,
            max_packet_size: u32::MAX,
            sender: Sender::Any,
        }
    }

    /// The same options for a server reading a client's bytes: CONNACK, SUBACK, UNSUBACK and
    /// PINGRESP are refused as soon as their first byte is seen.
    pub const fn from_client(self) -> Self {
        DecodeOptions {
            sender: Sender::Client,
            ..self
        }
    }

    /// The same options for a client reading a server's bytes: CONNECT, SUBSCRIBE,
    /// UNSUBSCRIBE and PINGREQ are refused as soon as their first byte is seen.
    pub const fn from_server(self) -> Self {
        DecodeOptions {
            sender: Sender::Server,
            ..self
        }
    }

    /// Refuse a first byte whose packet type the sender may not send
    /// ([`DecodeError::WrongDirection`]); anything else is left to the fixed header's checks.
    pub const fn check_first_byte(&self, first: u8) -> Result<(), DecodeError> {
        match PacketType::from_nibble(first >> 4) {
            Some(t) if !self.sender.may_send(t) => Err(DecodeError::WrongDirection(t)),
            _ => Ok(()),
        }
    }

    /// The same options with a maximum packet size.
    pub const fn with_max_packet_size(self, max_packet_size: u32) -> Self {
        DecodeOptions {
            max_packet_size,
            ..self
        }
    }
}

/// The outcome of a decode that may need more input (as `httparse::Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status<T> {
    /// A complete result.
    Complete(T),
    /// The input is a proper prefix; at least this many more bytes are needed.
    Partial(usize),
}

/// Measure (and check) a packet with `$len`, start it in `$buf` with `$first` as the first
/// byte, write its body with `$write` (`$l`: what `$len` measured, `$w`: the writer) and finish.
macro_rules! framed {
    ($buf:expr, $first:expr, $len:expr, |$l:ident, $w:ident| $write:expr) => {{
        let (body, $l) = $len?;
        let mut w = start_packet($buf, $first, body)?;
        let $w = &mut w;
        $write;
        w.finish()
    }};
}

/// An MQTT control packet, borrowing its strings, payload and lists from the bytes it was decoded
/// from (or from the caller, for encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// Boxing the large variants would need an allocator; a packet lives on the stack while it is used.
#[allow(clippy::large_enum_variant)]
pub enum Packet<'a> {
    /// CONNECT.
    Connect(Connect<'a>),
    /// CONNACK.
    ConnAck(ConnAck<'a>),
    /// PUBLISH.
    Publish(Publish<'a>),
    /// PUBACK.
    PubAck(Ack<'a>),
    /// PUBREC.
    PubRec(Ack<'a>),
    /// PUBREL.
    PubRel(Ack<'a>),
    /// PUBCOMP.
    PubComp(Ack<'a>),
    /// SUBSCRIBE.
    Subscribe(Subscribe<'a>),
    /// SUBACK.
    SubAck(SubAck<'a>),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe<'a>),
    /// UNSUBACK.
    UnsubAck(SubAck<'a>),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect<'a>),
    /// AUTH (5.0).
    Auth(Auth<'a>),
}

/// A decoded packet and how many input bytes it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decoded<'a> {
    /// The packet.
    pub packet: Packet<'a>,
    /// Bytes consumed from the front of the input (the whole packet, fixed header included).
    pub consumed: usize,
}

/// Decode one packet from the front of `input`.
///
/// - `Ok(Status::Complete(decoded))`: a packet, borrowing from `input`, and the bytes it took.
/// - `Ok(Status::Partial(n))`: `input` is a proper prefix of a packet; at least `n` more bytes are
///   needed (exactly `n` once the fixed header is complete). Never an error, never a panic.
/// - `Err(e)`: the bytes break the rule `e` names. The maximum packet size is checked as soon as
///   the fixed header is complete, before the body has arrived.
///
/// A CONNECT is decoded by its own protocol level, whatever `options.version` says; every other
/// packet by `options.version`.
///
/// ```
/// use wren_codec::{decode, DecodeOptions, Packet, ProtocolVersion, Status};
/// let bytes = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'];
/// let opts = DecodeOptions::new(ProtocolVersion::V311);
/// let Status::Complete(d) = decode(&bytes, opts).unwrap() else { panic!() };
/// let Packet::Publish(p) = d.packet else { panic!() };
/// assert_eq!((p.topic.as_str(), p.payload, d.consumed), ("a/b", &b"hi"[..], 9));
/// assert_eq!(decode(&bytes[..4], opts).unwrap(), Status::Partial(5));
/// ```
pub fn decode(input: &[u8], options: DecodeOptions) -> Result<Status<Decoded<'_>>, DecodeError> {
    if !options.version.is_enabled() {
        return Err(DecodeError::UnsupportedProtocolLevel(
            options.version.level(),
        ));
    }
    if let Some(&first) = input.first() {
        options.check_first_byte(first)?;
    }
    let (after_header, header) = match parse_fixed_header(input, options.version) {
        Ok(ok) => ok,
        Err(nom::Err::Incomplete(_)) => return Ok(Status::Partial(1)),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => return Err(e),
    };
    let size = header.packet_len();
    if size > options.max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: options.max_packet_size,
        });
    }
    let body_len = header.remaining_length as usize;
    let Some(body) = after_header.get(..body_len) else {
        return Ok(Status::Partial(body_len.saturating_sub(after_header.len())));
    };
    let packet = decode_body(header.packet_type, header.flags, body, options.version)
        .map_err(crate::data::finish_err)?;
    Ok(Status::Complete(Decoded {
        packet,
        consumed: size as usize,
    }))
}

/// Decode a packet body whose fixed header has been parsed.
fn decode_body(
    t: PacketType,
    flags: u8,
    body: &[u8],
    v: ProtocolVersion,
) -> Result<Packet<'_>, nom::Err<DecodeError>> {
    Ok(match t {
        // A client-only codec (no `server` feature) does not link the parsers of what only a
        // client sends (PINGREQ costs nothing and stays).
        #[cfg(not(feature = "server"))]
        PacketType::Connect | PacketType::Subscribe | PacketType::Unsubscribe => {
            return Err(nom::Err::Failure(DecodeError::WrongDirection(t)));
        }
        #[cfg(feature = "server")]
        PacketType::Connect => Packet::Connect(connect::parse(body)?),
        PacketType::ConnAck => Packet::ConnAck(connack::parse(body, v)?),
        PacketType::Publish => Packet::Publish(publish::parse(flags, body, v)?),
        PacketType::PubAck => Packet::PubAck(ack::parse(t, body, v)?),
        PacketType::PubRec => Packet::PubRec(ack::parse(t, body, v)?),
        PacketType::PubRel => Packet::PubRel(ack::parse(t, body, v)?),
        PacketType::PubComp => Packet::PubComp(ack::parse(t, body, v)?),
        #[cfg(feature = "server")]
        PacketType::Subscribe => Packet::Subscribe(subscribe::parse(body, v)?),
        PacketType::SubAck => Packet::SubAck(suback::parse(t, body, v)?),
        #[cfg(feature = "server")]
        PacketType::Unsubscribe => Packet::Unsubscribe(unsubscribe::parse(body, v)?),
        PacketType::UnsubAck => Packet::UnsubAck(suback::parse(t, body, v)?),
        PacketType::PingReq | PacketType::PingResp => {
            if !body.is_empty() {
                return Err(nom::Err::Failure(DecodeError::TrailingBytes));
            }
            if t == PacketType::PingReq {
                Packet::PingReq
            } else {
                Packet::PingResp
            }
        }
        PacketType::Disconnect => Packet::Disconnect(disconnect::parse(t, body, v)?),
        PacketType::Auth => Packet::Auth(disconnect::parse(t, body, v)?),
    })
}

/// The body of a packet of type `t` whose fixed header is `header`, or why not: another type
/// ([`DecodeError::InvalidPacketType`] with the header's type), or a body of another length
/// than the header says.
fn body_of(t: PacketType, header: &FixedHeader, body: &[u8]) -> Result<(), DecodeError> {
    if header.packet_type != t {
        return Err(DecodeError::InvalidPacketType(header.packet_type as u8));
    }
    match usize::try_from(header.remaining_length) {
        Ok(len) if len == body.len() => Ok(()),
        Ok(len) if len > body.len() => Err(DecodeError::UnexpectedEnd),
        _ => Err(DecodeError::TrailingBytes),
    }
}

// Per-packet decoders: what [`decode`] does after the fixed header, for one packet type, so
// that code expecting that packet (a client waiting for its CONNACK, a test) links that parser
// only. The caller frames the packet with [`crate::header::parse_fixed_header`] and passes the
// body (exactly `remaining_length` bytes). `#[inline]`, so that they are compiled only where
// they are used: compiled here, they gave each body parser a second caller, which kept it out
// of `decode` and made a 5.0 firmware 1 KB larger even where they were never called.

impl<'a> ConnAck<'a> {
    /// [`decode`] for a CONNACK, given its parsed fixed header and its body.
    ///
    /// ```
    /// use wren_codec::{header::parse_fixed_header, ConnAck, ProtocolVersion, ReasonCode};
    /// let bytes = [0x20, 0x02, 0x01, 0x00];
    /// let (body, header) = parse_fixed_header(&bytes, ProtocolVersion::V311).unwrap();
    /// let connack = ConnAck::decode_body(&header, body, ProtocolVersion::V311).unwrap();
    /// assert!(connack.session_present && connack.code == ReasonCode::SUCCESS);
    /// ```
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        body_of(PacketType::ConnAck, header, body)?;
        connack::parse(body, version).map_err(crate::data::finish_err)
    }
}

impl<'a> Publish<'a> {
    /// [`decode`] for a PUBLISH, given its parsed fixed header (whose flags it reads) and body.
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        body_of(PacketType::Publish, header, body)?;
        publish::parse(header.flags, body, version).map_err(crate::data::finish_err)
    }
}

impl<'a> Ack<'a> {
    /// [`decode`] for a PUBACK, PUBREC, PUBREL or PUBCOMP (the header's type).
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        let t = header.packet_type;
        match t {
            PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
                body_of(t, header, body)?;
                ack::parse(t, body, version).map_err(crate::data::finish_err)
            }
            _ => Err(DecodeError::InvalidPacketType(t as u8)),
        }
    }
}

impl<'a> SubAck<'a> {
    /// [`decode`] for a SUBACK or UNSUBACK (the header's type).
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        let t = header.packet_type;
        match t {
            PacketType::SubAck | PacketType::UnsubAck => {
                body_of(t, header, body)?;
                suback::parse(t, body, version).map_err(crate::data::finish_err)
            }
            _ => Err(DecodeError::InvalidPacketType(t as u8)),
        }
    }
}

impl<'a> Disconnect<'a> {
    /// [`decode`] for a DISCONNECT, or a 5.0 AUTH (the header's type).
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        let t = header.packet_type;
        match t {
            PacketType::Disconnect | PacketType::Auth => {
                body_of(t, header, body)?;
                disconnect::parse(t, body, version).map_err(crate::data::finish_err)
            }
            _ => Err(DecodeError::InvalidPacketType(t as u8)),
        }
    }
}

#[cfg(feature = "server")]
impl<'a> Connect<'a> {
    /// [`decode`] for a CONNECT (in the version its protocol level names).
    #[inline]
    pub fn decode_body(header: &FixedHeader, body: &'a [u8]) -> Result<Self, DecodeError> {
        body_of(PacketType::Connect, header, body)?;
        connect::parse(body).map_err(crate::data::finish_err)
    }
}

#[cfg(feature = "server")]
impl<'a> Subscribe<'a> {
    /// [`decode`] for a SUBSCRIBE.
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        body_of(PacketType::Subscribe, header, body)?;
        subscribe::parse(body, version).map_err(crate::data::finish_err)
    }
}

#[cfg(feature = "server")]
impl<'a> Unsubscribe<'a> {
    /// [`decode`] for an UNSUBSCRIBE.
    #[inline]
    pub fn decode_body(
        header: &FixedHeader,
        body: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        enabled(version)?;
        body_of(PacketType::Unsubscribe, header, body)?;
        unsubscribe::parse(body, version).map_err(crate::data::finish_err)
    }
}

/// `version` is one this build speaks, or the error [`decode`] gives.
const fn enabled(version: ProtocolVersion) -> Result<(), DecodeError> {
    if version.is_enabled() {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedProtocolLevel(version.level()))
    }
}

impl Packet<'_> {
    /// The packet's type.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// The version a packet is encoded in: a CONNECT's own, otherwise the connection's.
    fn effective_version(&self, version: ProtocolVersion) -> ProtocolVersion {
        match self {
            Packet::Connect(c) => c.protocol,
            _ => version,
        }
    }

    /// Length of the packet encoded for a `version` connection, or why it cannot be encoded.
    ///
    /// This is the same computation [`Packet::encode`] starts with: a sum over the packet's
    /// fields that also checks them against the protocol rules.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let t = self.packet_type();
        let v = self.effective_version(version);
        if !v.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        let body = match self {
            #[cfg(not(feature = "server"))]
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(EncodeError::NotEnabled);
            }
            Packet::Connect(p) => p.body_len()?.0,
            #[cfg(feature = "server")]
            Packet::ConnAck(p) => p.body_len(v)?.0,
            Packet::Publish(p) => p.body_len(v)?.0,
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.body_len(t, v)?.0
            }
            Packet::Subscribe(p) => p.body_len(v)?.0,
            #[cfg(feature = "server")]
            Packet::SubAck(p) | Packet::UnsubAck(p) => p.body_len(t, v)?.0,
            Packet::Unsubscribe(p) => p.body_len(v)?.0,
            #[cfg(feature = "server")]
            Packet::PingResp => 0,
            Packet::PingReq => 0,
            // (`body_len` refuses a 3.1.1 AUTH with `NotInVersion`.)
            Packet::Disconnect(p) | Packet::Auth(p) => p.body_len(t, v)?.0,
        };
        frame_lengths(body).map(|(_, total)| total)
    }

    /// Encode the packet for a `version` connection into `buf`; returns the bytes written.
    ///
    /// 3.1.1 encoding leaves out what 3.1.1 cannot carry (properties, and the 5.0-only
    /// subscription options), so a broker can forward a 5.0 PUBLISH to a 3.1.1 subscriber as is.
    /// A CONNECT is encoded in its own `protocol` version.
    ///
    /// The packet's length is computed first, by arithmetic over its fields, which also checks
    /// it against the protocol rules; a packet that breaks one, or a buffer too small, is refused
    /// before a byte is written. The packet is then written in one pass.
    ///
    /// ```
    /// use wren_codec::{Packet, ProtocolVersion, EncodeError};
    /// let mut buf = [0u8; 2];
    /// assert_eq!(Packet::PingReq.encode(ProtocolVersion::V5, &mut buf), Ok(2));
    /// assert_eq!(buf, [0xC0, 0x00]);
    /// assert_eq!(Packet::PingReq.encode(ProtocolVersion::V5, &mut buf[..1]),
    ///            Err(EncodeError::BufferTooSmall { needed: 2 }));
    /// ```
    pub fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        // Each packet in a function of its own: this one only dispatches, and PUBLISH, the
        // packet a broker encodes most, stays small, with no register pressure from the other
        // packets' code.
        if !self.effective_version(version).is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        match self {
            // A client-only codec (no `server` feature) does not link the encoders of what only
            // a server sends.
            #[cfg(not(feature = "server"))]
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(EncodeError::NotEnabled)
            }
            Packet::Publish(p) => p.encode(version, buf),
            // 3.1.1 carries no properties: a path of its own without them.
            Packet::Connect(p) if p.protocol == ProtocolVersion::V311 => p.encode_v311(buf),
            Packet::Connect(p) => p.encode_other(buf),
            #[cfg(feature = "server")]
            Packet::ConnAck(p) => encode_connack(p, version, buf),
            Packet::PubAck(p) => encode_ack(p, PacketType::PubAck, version, buf),
            Packet::PubRec(p) => encode_ack(p, PacketType::PubRec, version, buf),
            Packet::PubRel(p) => encode_ack(p, PacketType::PubRel, version, buf),
            Packet::PubComp(p) => encode_ack(p, PacketType::PubComp, version, buf),
            Packet::Subscribe(p) => p.encode(version, buf),
            #[cfg(feature = "server")]
            Packet::SubAck(p) => encode_suback(p, PacketType::SubAck, version, buf),
            Packet::Unsubscribe(p) => encode_unsubscribe(p, version, buf),
            #[cfg(feature = "server")]
            Packet::UnsubAck(p) => encode_suback(p, PacketType::UnsubAck, version, buf),
            Packet::PingReq => encode_empty(PacketType::PingReq, buf),
            #[cfg(feature = "server")]
            Packet::PingResp => encode_empty(PacketType::PingResp, buf),
            Packet::Disconnect(p) => encode_disconnect(p, PacketType::Disconnect, version, buf),
            Packet::Auth(p) => encode_disconnect(p, PacketType::Auth, version, buf),
        }
    }
}

impl Ack<'_> {
    /// [`Packet::encode`] for a PUBACK, PUBREC, PUBREL or PUBCOMP (`packet_type`) without the
    /// all-packet dispatch or a [`Packet`] on the stack. Another packet type is refused
    /// ([`EncodeError::InvalidValue`]).
    ///
    /// ```
    /// use wren_codec::{Ack, EncodeError, PacketId, PacketType, ProtocolVersion};
    /// let ack = Ack::new(PacketId::new(7).unwrap());
    /// let mut buf = [0u8; 4];
    /// assert_eq!(ack.encode(PacketType::PubAck, ProtocolVersion::V311, &mut buf), Ok(4));
    /// assert_eq!(buf, [0x40, 0x02, 0x00, 0x07]);
    /// assert_eq!(ack.encode(PacketType::SubAck, ProtocolVersion::V311, &mut buf),
    ///            Err(EncodeError::InvalidValue));
    /// ```
    pub fn encode(
        &self,
        packet_type: PacketType,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if !version.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        match packet_type {
            PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
                encode_ack(self, packet_type, version, buf)
            }
            _ => Err(EncodeError::InvalidValue),
        }
    }
}

impl Unsubscribe<'_> {
    /// [`Packet::encode`] for an UNSUBSCRIBE, without the all-packet dispatch.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !version.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        encode_unsubscribe(self, version, buf)
    }
}

impl Disconnect<'_> {
    /// [`Packet::encode`] for a DISCONNECT, without the all-packet dispatch.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !version.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        encode_disconnect(self, PacketType::Disconnect, version, buf)
    }
}

/// [`Packet::encode`] for a PINGREQ (two bytes), without the all-packet dispatch.
pub fn encode_pingreq(buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_empty(PacketType::PingReq, buf)
}

/// The first byte of the fixed header of a packet other than PUBLISH.
const fn first_byte(t: PacketType) -> u8 {
    let flags = match t.required_flags() {
        Some(f) => f,
        None => 0,
    };
    ((t as u8) << 4) | flags
}

#[inline(never)]
fn encode_connack(
    p: &ConnAck<'_>,
    v: ProtocolVersion,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let first = first_byte(PacketType::ConnAck);
    framed!(buf, first, p.body_len(v), |l, w| p.write(v, l, w))
}

#[inline(never)]
fn encode_ack(
    p: &Ack<'_>,
    t: PacketType,
    v: ProtocolVersion,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    framed!(buf, first_byte(t), p.body_len(t, v), |l, w| p
        .write(t, v, l, w))
}

#[inline(never)]
fn encode_suback(
    p: &SubAck<'_>,
    t: PacketType,
    v: ProtocolVersion,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    framed!(buf, first_byte(t), p.body_len(t, v), |l, w| p
        .write(t, v, l, w))
}

#[inline(never)]
fn encode_unsubscribe(
    p: &Unsubscribe<'_>,
    v: ProtocolVersion,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let first = first_byte(PacketType::Unsubscribe);
    framed!(buf, first, p.body_len(v), |l, w| p.write(v, l, w))
}

#[inline(never)]
fn encode_disconnect(
    p: &Disconnect<'_>,
    t: PacketType,
    v: ProtocolVersion,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    framed!(buf, first_byte(t), p.body_len(t, v), |l, w| p
        .write(t, v, l, w))
}

fn encode_empty(t: PacketType, buf: &mut [u8]) -> Result<usize, EncodeError> {
    start_packet(buf, first_byte(t), 0)?.finish()
}

impl<'a> From<Publish<'a>> for Packet<'a> {
    fn from(p: Publish<'a>) -> Self {
        Packet::Publish(p)
    }
}

impl<'a> From<Connect<'a>> for Packet<'a> {
    fn from(p: Connect<'a>) -> Self {
        Packet::Connect(p)
    }
}

impl<'a> From<Subscribe<'a>> for Packet<'a> {
    fn from(p: Subscribe<'a>) -> Self {
        Packet::Subscribe(p)
    }
}

impl<'a> From<Unsubscribe<'a>> for Packet<'a> {
    fn from(p: Unsubscribe<'a>) -> Self {
        Packet::Unsubscribe(p)
    }
}

impl<'a> From<ConnAck<'a>> for Packet<'a> {
    fn from(p: ConnAck<'a>) -> Self {
        Packet::ConnAck(p)
    }
}
