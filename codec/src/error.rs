//! Errors: every way a byte sequence can fail to be an MQTT packet, and every way an encode can fail.
//!
//! Each [`DecodeError`] variant names the rule the input broke, with the specification's statement
//! id (`[MQTT-x.x.x-y]`; 3.1.1 and 5.0 number some rules differently, both are given where they
//! differ). [`DecodeError::kind`] sorts them into the two classes MQTT 5.0 distinguishes
//! (Malformed Packet, Protocol Error), and [`DecodeError::reason_code`] gives the reason code a
//! server puts in its DISCONNECT or CONNACK.

use core::fmt;

use crate::reason::ReasonCode;
use crate::wire::{PacketType, VarintError};

/// How serious a decode error is, in MQTT 5.0's terms (§4.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorKind {
    /// The bytes cannot be parsed as the packet they claim to be (reason code 0x81).
    Malformed,
    /// The bytes parse, but break a rule of the protocol (reason code 0x82).
    ProtocolError,
    /// The packet is larger than the receiver accepts (reason code 0x95).
    TooLarge,
    /// The CONNECT names a protocol this codec does not speak (CONNACK 0x01 / 0x84).
    UnsupportedProtocol,
}

/// Why bytes were refused as an MQTT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// Packet type 0, or type 15 (AUTH) on a 3.1.1 connection. 3.1.1 §2.2.1 calls both reserved.
    InvalidPacketType(u8),
    /// A packet type only the other side sends: CONNACK, SUBACK, UNSUBACK or PINGRESP from a
    /// client, CONNECT, SUBSCRIBE, UNSUBSCRIBE or PINGREQ from a server (3.1.1 §2.2.1, 5.0
    /// §2.1.2 "Direction of flow"). Decided from the first byte alone (see
    /// [`DecodeOptions::sender`](crate::DecodeOptions::sender)): a Protocol Error.
    WrongDirection(PacketType),
    /// The fixed header's flag bits are not the ones this packet type requires.
    /// `[MQTT-2.2.2-1]`/`[MQTT-2.2.2-2]` (3.1.1), `[MQTT-2.1.3-1]` (5.0).
    ReservedFlags(PacketType),
    /// The Remaining Length (or another Variable Byte Integer) has a continuation bit on its fourth
    /// byte: at most four bytes are allowed (3.1.1 §2.2.3, 5.0 §1.5.5).
    VarintTooLong,
    /// A Variable Byte Integer is not encoded in the fewest bytes (5.0 `[MQTT-1.5.5-1]`).
    VarintNotMinimal,
    /// The packet is larger than the caller's maximum packet size (5.0 `[MQTT-3.1.2-24]`,
    /// `[MQTT-3.2.2-15]`; CVE-2017-7651). Checked from the fixed header, before the body is buffered.
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: u32,
        /// The caller's limit.
        max: u32,
    },
    /// The packet body ended before a field it announced (a length prefix pointing past the
    /// Remaining Length, a missing packet identifier, …). Malformed in both versions.
    UnexpectedEnd,
    /// Bytes are left over inside the Remaining Length after the last field of the packet.
    TrailingBytes,
    /// A UTF-8 string is not well-formed UTF-8, or encodes a surrogate.
    /// `[MQTT-1.5.3-1]` (3.1.1), `[MQTT-1.5.4-1]` (5.0).
    InvalidUtf8,
    /// A UTF-8 string contains U+0000. `[MQTT-1.5.3-2]` (3.1.1), `[MQTT-1.5.4-2]` (5.0).
    NullCharacter,
    /// A packet identifier is 0 where one is required. `[MQTT-2.3.1-1]` (3.1.1), `[MQTT-2.2.1-3]` (5.0).
    ZeroPacketId,
    /// A QoS field has the value 3. `[MQTT-3.3.1-4]` (PUBLISH), `[MQTT-3.1.2-12]` (will QoS).
    InvalidQos,
    /// A QoS 0 PUBLISH has the DUP flag set. `[MQTT-3.3.1-2]`.
    DupWithQos0,
    /// A topic name contains `+` or `#`. `[MQTT-3.3.2-2]`, `[MQTT-4.7.1-1]` (3.1.1), `[MQTT-4.7.0-1]` (5.0).
    WildcardInTopicName,
    /// A topic name or filter is empty. `[MQTT-4.7.3-1]`. (A 5.0 PUBLISH may have an empty topic
    /// only together with a Topic Alias, 5.0 §3.3.2.1.)
    EmptyTopic,
    /// A topic filter uses `#` other than alone or after a final `/`, or `+` other than as a whole
    /// level. `[MQTT-4.7.1-2]`, `[MQTT-4.7.1-3]` (3.1.1); `[MQTT-4.7.1-1]`, `[MQTT-4.7.1-2]` (5.0).
    InvalidTopicFilter,
    /// A `$share/{ShareName}/{filter}` subscription has an empty share name, a share name with
    /// `/`, `+` or `#`, or no filter. `[MQTT-4.8.2-1]`, `[MQTT-4.8.2-2]`.
    InvalidSharedSubscription,
    /// No Local set on a shared subscription. `[MQTT-3.8.3-4]` (5.0).
    NoLocalOnSharedSubscription,
    /// A SUBSCRIBE with no topic filter. `[MQTT-3.8.3-3]` (3.1.1), `[MQTT-3.8.3-2]` (5.0).
    EmptySubscribe,
    /// An UNSUBSCRIBE with no topic filter. `[MQTT-3.10.3-2]`.
    EmptyUnsubscribe,
    /// A SUBACK or 5.0 UNSUBACK with no reason code. `[MQTT-3.9.3-1]`, `[MQTT-3.11.3-1]`.
    EmptyAckList,
    /// Subscription options with reserved bits set: bits 2–7 in 3.1.1, bits 6–7 in 5.0.
    /// `[MQTT-3-8.3-4]` (3.1.1, the spec's own typo id), `[MQTT-3.8.3-5]` (5.0: Malformed).
    InvalidSubscriptionOptions,
    /// 5.0 subscription options with Maximum QoS 3 or Retain Handling 3: each "is a Protocol
    /// Error" (5.0 §3.8.3.1), unlike the reserved bits, which are Malformed.
    SubscriptionOptionOutOfRange,
    /// A property identifier that MQTT 5.0 does not define (5.0 §2.2.2.2: Malformed).
    UnknownProperty(u32),
    /// A property that is not allowed in this packet (5.0 §2.2.2.2: Malformed).
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet it appeared in (the will properties count as CONNECT).
        packet: PacketType,
    },
    /// A property other than User Property (or a server's Subscription Identifier) given twice
    /// (5.0 §2.2.2.2 and each property's definition: Protocol Error).
    DuplicateProperty(u8),
    /// A property's value is out of its range: a boolean byte other than 0 or 1, Receive Maximum
    /// or Maximum Packet Size 0, Subscription Identifier 0, Topic Alias 0 (`[MQTT-3.3.2-8]`),
    /// Maximum QoS 2, Response Topic with wildcards (`[MQTT-3.3.2-14]`).
    InvalidPropertyValue(u8),
    /// A reason code that is not defined for this packet (`[MQTT-3.4.2-1]`, `[MQTT-3.14.2-1]`, …),
    /// or a 3.1.1 return code out of range.
    InvalidReasonCode {
        /// The code found.
        code: u8,
        /// The packet it appeared in.
        packet: PacketType,
    },
    /// CONNECT's protocol name is neither `MQTT` nor (3.1) `MQIsdp`. `[MQTT-3.1.2-1]`.
    InvalidProtocolName,
    /// CONNECT names a protocol level this codec does not speak (3, 4 and 5 are spoken).
    /// The server answers with CONNACK 0x01 (3.1.1) or 0x84 (5.0). `[MQTT-3.1.2-2]`.
    UnsupportedProtocolLevel(u8),
    /// CONNECT's reserved flag bit 0 is set. `[MQTT-3.1.2-3]`.
    ConnectReservedFlag,
    /// Will QoS or Will Retain set without the Will Flag. `[MQTT-3.1.2-11]`, `[MQTT-3.1.2-13]`.
    WillFlagsWithoutWill,
    /// 3.1.1 CONNECT with the Password Flag but not the User Name Flag. `[MQTT-3.1.2-22]`.
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags bits 7–1 are not 0. `[MQTT-3.2.2-1]`.
    ConnAckReservedFlags,
    /// CONNACK has Session Present set together with a refusal. `[MQTT-3.2.2-4]` (3.1.1),
    /// `[MQTT-3.2.2-6]` (5.0).
    SessionPresentOnRefusal,
    /// A 5.0 PUBLISH with an empty topic and no Topic Alias (5.0 §3.3.2.1: Protocol Error;
    /// CVE-2021-34432 crashed a broker on it).
    EmptyTopicWithoutAlias,
}

impl DecodeError {
    /// Which of MQTT 5.0's error classes this is.
    pub const fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::PacketTooLarge { .. } => ErrorKind::TooLarge,
            DecodeError::UnsupportedProtocolLevel(_) | DecodeError::InvalidProtocolName => {
                ErrorKind::UnsupportedProtocol
            }
            DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue(_)
            | DecodeError::EmptyTopicWithoutAlias
            | DecodeError::NoLocalOnSharedSubscription
            | DecodeError::InvalidSharedSubscription
            | DecodeError::SessionPresentOnRefusal
            | DecodeError::SubscriptionOptionOutOfRange
            // 5.0 §3.8.3 / §3.10.3: "a SUBSCRIBE [UNSUBSCRIBE] packet with no Payload is a
            // Protocol Error".
            | DecodeError::EmptySubscribe
            | DecodeError::EmptyUnsubscribe
            | DecodeError::InvalidPacketType(_)
            | DecodeError::WrongDirection(_) => ErrorKind::ProtocolError,
            _ => ErrorKind::Malformed,
        }
    }

    /// The MQTT 5.0 reason code a server sends when it closes a connection for this error.
    pub const fn reason_code(&self) -> ReasonCode {
        match self.kind() {
            ErrorKind::Malformed => ReasonCode::MALFORMED_PACKET,
            ErrorKind::ProtocolError => ReasonCode::PROTOCOL_ERROR,
            ErrorKind::TooLarge => ReasonCode::PACKET_TOO_LARGE,
            ErrorKind::UnsupportedProtocol => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }

    /// A short description of the rule broken, for logs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            DecodeError::InvalidPacketType(_) => "reserved packet type",
            DecodeError::WrongDirection(_) => "packet type the other side alone sends",
            DecodeError::ReservedFlags(_) => "fixed header flags not allowed for this packet type",
            DecodeError::VarintTooLong => "variable byte integer longer than 4 bytes",
            DecodeError::VarintNotMinimal => "variable byte integer not minimally encoded",
            DecodeError::PacketTooLarge { .. } => "packet larger than the maximum packet size",
            DecodeError::UnexpectedEnd => "packet ends before its fields do",
            DecodeError::TrailingBytes => "bytes left over after the last field",
            DecodeError::InvalidUtf8 => "string is not well-formed UTF-8",
            DecodeError::NullCharacter => "string contains U+0000",
            DecodeError::ZeroPacketId => "packet identifier 0",
            DecodeError::InvalidQos => "QoS 3",
            DecodeError::DupWithQos0 => "DUP set on a QoS 0 PUBLISH",
            DecodeError::WildcardInTopicName => "wildcard in a topic name",
            DecodeError::EmptyTopic => "empty topic",
            DecodeError::InvalidTopicFilter => "misplaced wildcard in a topic filter",
            DecodeError::InvalidSharedSubscription => "malformed $share subscription",
            DecodeError::NoLocalOnSharedSubscription => "No Local on a shared subscription",
            DecodeError::EmptySubscribe => "SUBSCRIBE without topic filters",
            DecodeError::EmptyUnsubscribe => "UNSUBSCRIBE without topic filters",
            DecodeError::EmptyAckList => "acknowledgement without reason codes",
            DecodeError::InvalidSubscriptionOptions => "reserved subscription option bits",
            DecodeError::SubscriptionOptionOutOfRange => "subscription option value 3",
            DecodeError::UnknownProperty(_) => "unknown property identifier",
            DecodeError::PropertyNotAllowed { .. } => "property not allowed in this packet",
            DecodeError::DuplicateProperty(_) => "property given more than once",
            DecodeError::InvalidPropertyValue(_) => "property value out of range",
            DecodeError::InvalidReasonCode { .. } => "reason code not valid for this packet",
            DecodeError::InvalidProtocolName => "unknown protocol name",
            DecodeError::UnsupportedProtocolLevel(_) => "unsupported protocol level",
            DecodeError::ConnectReservedFlag => "CONNECT reserved flag set",
            DecodeError::WillFlagsWithoutWill => "will QoS or retain without a will",
            DecodeError::PasswordWithoutUsername => "password without user name",
            DecodeError::ConnAckReservedFlags => "CONNACK reserved flags set",
            DecodeError::SessionPresentOnRefusal => "session present on a refused connection",
            DecodeError::EmptyTopicWithoutAlias => "empty topic without a topic alias",
        }
    }
}

impl From<VarintError> for DecodeError {
    fn from(e: VarintError) -> Self {
        match e {
            VarintError::TooLong => DecodeError::VarintTooLong,
            VarintError::NotMinimal => DecodeError::VarintNotMinimal,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max}")
            }
            DecodeError::InvalidPacketType(t) => write!(f, "reserved packet type {t}"),
            DecodeError::WrongDirection(t) => {
                write!(f, "{} is not sent in this direction", t.name())
            }
            DecodeError::ReservedFlags(t) => write!(f, "invalid fixed header flags for {t:?}"),
            DecodeError::UnknownProperty(id) => write!(f, "unknown property 0x{id:02x}"),
            DecodeError::PropertyNotAllowed { id, packet } => {
                write!(f, "property 0x{id:02x} not allowed in {packet:?}")
            }
            DecodeError::DuplicateProperty(id) => write!(f, "property 0x{id:02x} given twice"),
            DecodeError::InvalidPropertyValue(id) => {
                write!(f, "property 0x{id:02x} has an invalid value")
            }
            DecodeError::InvalidReasonCode { code, packet } => {
                write!(f, "reason code 0x{code:02x} not valid in {packet:?}")
            }
            DecodeError::UnsupportedProtocolLevel(l) => write!(f, "unsupported protocol level {l}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl core::error::Error for DecodeError {}

/// nom's own error kinds (from the `complete` parsers running past the end of a packet body)
/// become [`DecodeError::UnexpectedEnd`]: inside a body whose length is known, running out of bytes
/// means the Remaining Length was too short for the fields, which is Malformed.
impl<I> nom::error::ParseError<I> for DecodeError {
    fn from_error_kind(_input: I, _kind: nom::error::ErrorKind) -> Self {
        DecodeError::UnexpectedEnd
    }

    fn append(_input: I, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The caller's buffer is shorter than the packet.
    BufferTooSmall {
        /// Bytes the whole packet needs.
        needed: usize,
    },
    /// A string or binary field is longer than 65,535 bytes (5.0 §1.5.4, §1.5.6).
    FieldTooLong,
    /// The packet would be longer than the 268,435,455-byte Remaining Length maximum.
    PacketTooLarge,
    /// A property set on a packet that may not carry it.
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet being encoded.
        packet: PacketType,
    },
    /// A value outside its range (QoS 3 in a will, Subscription Identifier 0 or above
    /// 268,435,455, an empty SUBSCRIBE, …).
    InvalidValue,
    /// A reason code not defined for this packet and protocol version.
    InvalidReasonCode {
        /// The code.
        code: u8,
        /// The packet being encoded.
        packet: PacketType,
    },
    /// The packet does not exist in this protocol version (AUTH in 3.1.1).
    NotInVersion,
    /// The codec was built without what this needs: the `v5` feature for a 5.0 packet, the
    /// `server` feature for CONNACK, SUBACK, UNSUBACK and PINGRESP.
    NotEnabled,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the packet needs {needed} bytes")
            }
            EncodeError::FieldTooLong => f.write_str("string or binary field over 65535 bytes"),
            EncodeError::PacketTooLarge => f.write_str("packet over the 268435455-byte maximum"),
            EncodeError::PropertyNotAllowed { id, packet } => {
                write!(f, "property 0x{id:02x} not allowed in {packet:?}")
            }
            EncodeError::InvalidValue => f.write_str("field value out of range"),
            EncodeError::InvalidReasonCode { code, packet } => {
                write!(f, "reason code 0x{code:02x} not valid in {packet:?}")
            }
            EncodeError::NotInVersion => f.write_str("packet not defined in this protocol version"),
            EncodeError::NotEnabled => {
                f.write_str("the codec was built without this packet or protocol version")
            }
        }
    }
}

impl core::error::Error for EncodeError {}
