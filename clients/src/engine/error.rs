//! Errors of the engine, and CONNACK refusals as types.

use core::fmt;

use wren_codec::{PacketType, ProtocolVersion, QoS, ReasonCode};

/// 3.1.1 CONNACK return codes 1–5 (§3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 1: the server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// 2: the client identifier is not allowed.
    IdentifierRejected = 2,
    /// 3: the MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 4: bad user name or password.
    BadUserNameOrPassword = 4,
    /// 5: not authorized.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The refusal for a return code, `None` for 0 (accepted) or a reserved value.
    pub const fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// Mosquitto's wording.
    pub const fn description(self) -> &'static str {
        match self {
            Self::UnacceptableProtocolVersion => {
                "Connection Refused: unacceptable protocol version"
            }
            Self::IdentifierRejected => "Connection Refused: identifier rejected",
            Self::ServerUnavailable => "Connection Refused: broker unavailable",
            Self::BadUserNameOrPassword => "Connection Refused: bad user name or password",
            Self::NotAuthorized => "Connection Refused: not authorised",
        }
    }
}

/// Why the server refused the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectRefused {
    /// A 3.1.1 (or 3.1) return code.
    V3(ConnectReturnCode),
    /// A 5.0 reason code (0x80 and above).
    V5(ReasonCode),
    /// A CONNACK code that names no refusal of this version (e.g. reserved 3.1.1 values).
    Other(u8),
}

impl ConnectRefused {
    /// Classify a refusing CONNACK code for `version`.
    pub const fn from_code(version: ProtocolVersion, code: ReasonCode) -> Self {
        if version.is_v5() {
            return ConnectRefused::V5(code);
        }
        match ConnectReturnCode::from_u8(code.0) {
            Some(c) => ConnectRefused::V3(c),
            None => ConnectRefused::Other(code.0),
        }
    }

    /// The code byte, which Mosquitto's tools (and ours) use as exit status.
    pub const fn code(self) -> u8 {
        match self {
            ConnectRefused::V3(c) => c as u8,
            ConnectRefused::V5(c) => c.0,
            ConnectRefused::Other(c) => c,
        }
    }
}

impl fmt::Display for ConnectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectRefused::V3(c) => f.write_str(c.description()),
            ConnectRefused::V5(c) => write!(
                f,
                "Connection Refused: {} (0x{:02x})",
                c.name(PacketType::ConnAck),
                c.0
            ),
            ConnectRefused::Other(c) => write!(f, "Connection Refused: code {c}"),
        }
    }
}

/// What the engine cannot do, or what the server did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The operation needs an accepted connection.
    NotConnected,
    /// `connect` while connecting or connected.
    AlreadyConnected,
    /// Every in-flight slot is taken (the engine's capacity or the server's Receive Maximum).
    InFlightFull,
    /// SUBSCRIBE or UNSUBSCRIBE with no topic filter.
    EmptyRequest,
    /// The server refused the connection.
    Refused(ConnectRefused),
    /// The server's Maximum QoS is lower than the message's (5.0).
    QosNotSupported(QoS),
    /// The server has no retained messages (5.0 Retain Available = 0).
    RetainNotSupported,
    /// The server sent more unreleased QoS 2 messages than we can track.
    ReceiveMaximumExceeded,
    /// The server sent a packet a client must never receive, or at the wrong time.
    UnexpectedPacket(PacketType),
    /// Another protocol violation by the server.
    Protocol(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConnected => f.write_str("not connected"),
            Error::AlreadyConnected => f.write_str("already connected"),
            Error::InFlightFull => f.write_str("too many messages in flight"),
            Error::EmptyRequest => f.write_str("no topic filter given"),
            Error::Refused(r) => r.fmt(f),
            Error::QosNotSupported(q) => {
                write!(f, "the broker supports QoS {} at most", q.bits())
            }
            Error::RetainNotSupported => f.write_str("the broker does not support retain"),
            Error::ReceiveMaximumExceeded => f.write_str("the broker exceeded our Receive Maximum"),
            Error::UnexpectedPacket(t) => write!(f, "unexpected {t:?} packet from the broker"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
