//! Reason codes (5.0 §2.4, table 2-6) and 3.1.1 return codes.
//!
//! A [`ReasonCode`] is the byte itself: 5.0 gives one value several names (0x00 is Success, Normal
//! disconnection and Granted QoS 0), and 3.1.1's CONNACK return codes 1–5 share the byte too.
//! [`ReasonCode::is_valid_for`] says which values each packet may carry in each version.

use core::fmt;

use crate::wire::{PacketType, ProtocolVersion};

/// A reason code or 3.1.1 return code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReasonCode(pub u8);

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal, [$($pkt:ident),*];)*) => {
        impl ReasonCode {
            $( $(#[$doc])* pub const $name: ReasonCode = ReasonCode($value); )*
        }

        /// 5.0 packets that may carry a code (table 2-6).
        const fn v5_allowed(code: u8, packet: PacketType) -> bool {
            $( if code == $value { $( if matches!(packet, PacketType::$pkt) { return true; } )* } )*
            false
        }

        const fn v5_name(code: u8, packet: PacketType) -> Option<&'static str> {
            let _ = packet;
            $( if code == $value { return Some($text); } )*
            None
        }
    };
}

codes! {
    /// Success; Normal disconnection; Granted QoS 0.
    SUCCESS = 0x00, "Success", [ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth];
    /// Granted QoS 1 (SUBACK).
    GRANTED_QOS_1 = 0x01, "Granted QoS 1", [SubAck];
    /// Granted QoS 2 (SUBACK).
    GRANTED_QOS_2 = 0x02, "Granted QoS 2", [SubAck];
    /// Disconnect with Will Message (client DISCONNECT).
    DISCONNECT_WITH_WILL = 0x04, "Disconnect with Will Message", [Disconnect];
    /// No matching subscribers.
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers", [PubAck, PubRec];
    /// No subscription existed.
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed", [UnsubAck];
    /// Continue authentication.
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication", [Auth];
    /// Re-authenticate.
    RE_AUTHENTICATE = 0x19, "Re-authenticate", [Auth];
    /// Unspecified error.
    UNSPECIFIED_ERROR = 0x80, "Unspecified error", [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// Malformed Packet.
    MALFORMED_PACKET = 0x81, "Malformed Packet", [ConnAck, Disconnect];
    /// Protocol Error.
    PROTOCOL_ERROR = 0x82, "Protocol Error", [ConnAck, Disconnect];
    /// Implementation specific error.
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error", [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// Unsupported Protocol Version.
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version", [ConnAck];
    /// Client Identifier not valid.
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid", [ConnAck];
    /// Bad User Name or Password.
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password", [ConnAck];
    /// Not authorized.
    NOT_AUTHORIZED = 0x87, "Not authorized", [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// Server unavailable.
    SERVER_UNAVAILABLE = 0x88, "Server unavailable", [ConnAck];
    /// Server busy.
    SERVER_BUSY = 0x89, "Server busy", [ConnAck, Disconnect];
    /// Banned.
    BANNED = 0x8A, "Banned", [ConnAck];
    /// Server shutting down.
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down", [Disconnect];
    /// Bad authentication method.
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method", [ConnAck, Disconnect];
    /// Keep Alive timeout.
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout", [Disconnect];
    /// Session taken over.
    SESSION_TAKEN_OVER = 0x8E, "Session taken over", [Disconnect];
    /// Topic Filter invalid.
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid", [SubAck, UnsubAck, Disconnect];
    /// Topic Name invalid.
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid", [ConnAck, PubAck, PubRec, Disconnect];
    /// Packet Identifier in use.
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use", [PubAck, PubRec, SubAck, UnsubAck];
    /// Packet Identifier not found.
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found", [PubRel, PubComp];
    /// Receive Maximum exceeded.
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded", [Disconnect];
    /// Topic Alias invalid.
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid", [Disconnect];
    /// Packet too large.
    PACKET_TOO_LARGE = 0x95, "Packet too large", [ConnAck, Disconnect];
    /// Message rate too high.
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high", [Disconnect];
    /// Quota exceeded.
    QUOTA_EXCEEDED = 0x97, "Quota exceeded", [ConnAck, PubAck, PubRec, SubAck, Disconnect];
    /// Administrative action.
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action", [Disconnect];
    /// Payload format invalid.
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid", [ConnAck, PubAck, PubRec, Disconnect];
    /// Retain not supported.
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported", [ConnAck, Disconnect];
    /// QoS not supported.
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported", [ConnAck, Disconnect];
    /// Use another server.
    USE_ANOTHER_SERVER = 0x9C, "Use another server", [ConnAck, Disconnect];
    /// Server moved.
    SERVER_MOVED = 0x9D, "Server moved", [ConnAck, Disconnect];
    /// Shared Subscriptions not supported.
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported", [SubAck, Disconnect];
    /// Connection rate exceeded.
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded", [ConnAck, Disconnect];
    /// Maximum connect time.
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time", [Disconnect];
    /// Subscription Identifiers not supported.
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported", [SubAck, Disconnect];
    /// Wildcard Subscriptions not supported.
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported", [SubAck, Disconnect];
}

impl ReasonCode {
    /// 3.1.1 CONNACK: connection accepted.
    pub const V3_ACCEPTED: ReasonCode = ReasonCode(0x00);
    /// 3.1.1 CONNACK: unacceptable protocol version.
    pub const V3_UNACCEPTABLE_PROTOCOL_VERSION: ReasonCode = ReasonCode(0x01);
    /// 3.1.1 CONNACK: identifier rejected.
    pub const V3_IDENTIFIER_REJECTED: ReasonCode = ReasonCode(0x02);
    /// 3.1.1 CONNACK: server unavailable.
    pub const V3_SERVER_UNAVAILABLE: ReasonCode = ReasonCode(0x03);
    /// 3.1.1 CONNACK: bad user name or password.
    pub const V3_BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(0x04);
    /// 3.1.1 CONNACK: not authorized.
    pub const V3_NOT_AUTHORIZED: ReasonCode = ReasonCode(0x05);
    /// 3.1.1 SUBACK: failure.
    pub const V3_SUBACK_FAILURE: ReasonCode = ReasonCode(0x80);

    /// Codes below 0x80 report success (5.0 §2.4); 3.1.1 CONNACK codes 1–5 are refusals.
    pub const fn is_success(self) -> bool {
        self.0 < 0x80
    }

    /// Whether `packet` may carry this code in `version`.
    pub const fn is_valid_for(self, packet: PacketType, version: ProtocolVersion) -> bool {
        if version.is_v5() {
            return v5_allowed(self.0, packet);
        }
        match packet {
            PacketType::ConnAck => self.0 <= 5,
            PacketType::SubAck => matches!(self.0, 0 | 1 | 2 | 0x80),
            // 3.1.1 acknowledgements and DISCONNECT carry no code: only success is expressible.
            _ => self.0 == 0,
        }
    }

    /// The code's name in `packet` (5.0 names), for logs and CLI output.
    pub const fn name(self, packet: PacketType) -> &'static str {
        match (self.0, packet) {
            (0x00, PacketType::Disconnect) => "Normal disconnection",
            (0x00, PacketType::SubAck) => "Granted QoS 0",
            _ => match v5_name(self.0, packet) {
                Some(n) => n,
                None => "Unknown reason code",
            },
        }
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReasonCode(0x{:02x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_spot_checks() {
        let v5 = ProtocolVersion::V5;
        assert!(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND.is_valid_for(PacketType::PubRel, v5));
        assert!(!ReasonCode::PACKET_IDENTIFIER_NOT_FOUND.is_valid_for(PacketType::PubAck, v5));
        assert!(!ReasonCode::GRANTED_QOS_1.is_valid_for(PacketType::PubAck, v5));
        assert!(ReasonCode::SESSION_TAKEN_OVER.is_valid_for(PacketType::Disconnect, v5));
        assert!(!ReasonCode(0x03).is_valid_for(PacketType::SubAck, v5));
        assert!(ReasonCode(0x05).is_valid_for(PacketType::ConnAck, ProtocolVersion::V311));
        assert!(!ReasonCode(0x06).is_valid_for(PacketType::ConnAck, ProtocolVersion::V311));
        assert!(!ReasonCode(0x87).is_valid_for(PacketType::SubAck, ProtocolVersion::V311));
        assert_eq!(
            ReasonCode::SUCCESS.name(PacketType::Disconnect),
            "Normal disconnection"
        );
        assert_eq!(ReasonCode(0x97).name(PacketType::PubAck), "Quota exceeded");
    }
}
