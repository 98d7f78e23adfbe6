//! The leaf of the crate: protocol versions, packet types, Variable Byte Integers and the limits
//! MQTT sets. It imports nothing from the crate, so every other module may import it without
//! closing a circle.

/// The protocol version a connection speaks, named by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProtocolVersion {
    /// MQTT 3.1 (protocol name `MQIsdp`, level 3), accepted as Mosquitto does; 3.1.1 rules.
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl ProtocolVersion {
    /// Whether this is MQTT 5.0. Always `false` in a codec built without the `v5` feature,
    /// which refuses 5.0 at its entry points ([`ProtocolVersion::is_enabled`]), so that every
    /// 5.0 branch behind this test is left out of the build.
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub const fn is_v5(self) -> bool {
        cfg!(feature = "v5") && matches!(self, ProtocolVersion::V5)
    }

    /// Whether this build of the codec speaks this version (5.0 needs the `v5` feature).
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub const fn is_enabled(self) -> bool {
        cfg!(feature = "v5") || !matches!(self, ProtocolVersion::V5)
    }

    /// The protocol level byte of CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

/// The largest Remaining Length MQTT can express: four 7-bit groups.
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

/// MQTT control packet types (§2.1.2). Type 0 is reserved; AUTH (15) exists only in 5.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum PacketType {
    /// Client request to connect.
    Connect = 1,
    /// Connect acknowledgement.
    ConnAck = 2,
    /// Application message.
    Publish = 3,
    /// QoS 1 acknowledgement.
    PubAck = 4,
    /// QoS 2 step 1: publish received.
    PubRec = 5,
    /// QoS 2 step 2: publish release.
    PubRel = 6,
    /// QoS 2 step 3: publish complete.
    PubComp = 7,
    /// Subscribe request.
    Subscribe = 8,
    /// Subscribe acknowledgement.
    SubAck = 9,
    /// Unsubscribe request.
    Unsubscribe = 10,
    /// Unsubscribe acknowledgement.
    UnsubAck = 11,
    /// Ping request.
    PingReq = 12,
    /// Ping response.
    PingResp = 13,
    /// Disconnect notification.
    Disconnect = 14,
    /// Authentication exchange (5.0 only).
    Auth = 15,
}

impl PacketType {
    /// The packet type for the high nibble of the first header byte; `None` for the reserved 0.
    pub const fn from_nibble(nibble: u8) -> Option<Self> {
        Some(match nibble {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => return None,
        })
    }

    /// The flag bits every packet but PUBLISH must carry (§2.1.3 table 2-2).
    pub const fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// Which way this packet type flows (the "Direction of flow" column of 3.1.1 §2.2.1 and
    /// 5.0 §2.1.2; AUTH, 5.0 only, flows both ways).
    pub const fn direction(self) -> Direction {
        match self {
            PacketType::Connect
            | PacketType::Subscribe
            | PacketType::Unsubscribe
            | PacketType::PingReq => Direction::ClientToServer,
            PacketType::ConnAck
            | PacketType::SubAck
            | PacketType::UnsubAck
            | PacketType::PingResp => Direction::ServerToClient,
            PacketType::Publish
            | PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::Disconnect
            | PacketType::Auth => Direction::Both,
        }
    }

    /// The packet's name as the specification writes it.
    pub const fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

/// Which way a packet type may flow between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// Only a client sends it (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ).
    ClientToServer,
    /// Only a server sends it (CONNACK, SUBACK, UNSUBACK, PINGRESP).
    ServerToClient,
    /// Either side sends it.
    Both,
}

/// Whose bytes a decoder is reading, so that a packet type the other side alone sends is
/// refused from its first byte ([`DecodeOptions::from_client`](crate::DecodeOptions::from_client)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sender {
    /// Either side (tools, tests): every packet type is decoded.
    Any,
    /// A client: a server's packet types are refused.
    Client,
    /// A server: a client's packet types are refused.
    Server,
}

impl Sender {
    /// Whether this side may send packets of type `t`.
    pub const fn may_send(self, t: PacketType) -> bool {
        !matches!(
            (self, t.direction()),
            (Sender::Client, Direction::ServerToClient)
                | (Sender::Server, Direction::ClientToServer)
        )
    }
}

/// The largest value a Variable Byte Integer can hold.
pub const VARINT_MAX: u32 = 268_435_455;

/// Why a Variable Byte Integer is refused (the decode error each becomes is in `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// A continuation bit on the fourth byte.
    TooLong,
    /// Not encoded in the fewest bytes (checked with `minimal`).
    NotMinimal,
}

/// Result of reading a Variable Byte Integer from the front of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintStatus {
    /// The integer and how many bytes encoded it.
    Complete { value: u32, len: usize },
    /// The slice ended inside the integer.
    Incomplete,
    /// More than four bytes, or (with `minimal`) a non-minimal encoding.
    Invalid(VarintError),
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
                return VarintStatus::Invalid(VarintError::NotMinimal);
            }
            return VarintStatus::Complete {
                value,
                len: i.saturating_add(1),
            };
        }
        if i == 3 {
            return VarintStatus::Invalid(VarintError::TooLong);
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
