//! CONNECT (§3.1): the first packet of every connection. It names its own protocol version.

use crate::ProtocolVersion;
use crate::data::{QoS, Sink, binary, u8_, u16_, utf8};
use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;
use crate::properties::{Properties, PropertyContext, parse_properties};
use crate::topic::TopicName;

/// A will message: what the server publishes if the connection ends without DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Will<'a> {
    /// Topic the will is published to.
    pub topic: TopicName<'a>,
    /// The will message.
    pub payload: &'a [u8],
    /// QoS of the will publish.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
    /// 5.0 will properties (Will Delay Interval, Message Expiry, Content Type, …).
    pub properties: Properties<'a>,
}

/// A CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect<'a> {
    /// Protocol version, from the protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// Client identifier; may be empty (the server then assigns one or refuses).
    pub client_id: &'a str,
    /// Will message.
    pub will: Option<Will<'a>>,
    /// User name.
    pub username: Option<&'a str>,
    /// Password (binary data).
    pub password: Option<&'a [u8]>,
    /// 5.0 CONNECT properties.
    pub properties: Properties<'a>,
}

const CLEAN: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

pub(crate) fn parse(i: &[u8]) -> Result<Connect<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let (i, name) = utf8(i)?;
    let (i, level) = u8_(i)?;
    let protocol = match (name, level) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQTT", 5) => ProtocolVersion::V5,
        ("MQIsdp", 3) => ProtocolVersion::V31,
        ("MQTT" | "MQIsdp", other) => {
            return Err(fail(DecodeError::UnsupportedProtocolLevel(other)));
        }
        _ => return Err(fail(DecodeError::InvalidProtocolName)),
    };
    let (i, flags) = u8_(i)?;
    if flags & 0x01 != 0 {
        return Err(fail(DecodeError::ConnectReservedFlag));
    }
    let will_qos = QoS::from_bits((flags >> 3) & 0x03).ok_or(fail(DecodeError::InvalidQos))?;
    let has_will = flags & WILL != 0;
    if !has_will && (will_qos != QoS::AtMostOnce || flags & WILL_RETAIN != 0) {
        return Err(fail(DecodeError::WillFlagsWithoutWill));
    }
    if !protocol.is_v5() && flags & PASSWORD != 0 && flags & USERNAME == 0 {
        return Err(fail(DecodeError::PasswordWithoutUsername));
    }
    let (i, keep_alive) = u16_(i)?;
    let (i, properties) = if protocol.is_v5() {
        parse_properties(i, PropertyContext::Packet(PacketType::Connect))?
    } else {
        (i, Properties::default())
    };
    let (mut i, client_id) = utf8(i)?;
    let will = if has_will {
        let (rest, properties) = if protocol.is_v5() {
            parse_properties(i, PropertyContext::Will)?
        } else {
            (i, Properties::default())
        };
        let (rest, topic) = utf8(rest)?;
        let topic = TopicName::new(topic).map_err(fail)?;
        let (rest, payload) = binary(rest)?;
        i = rest;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: flags & WILL_RETAIN != 0,
            properties,
        })
    } else {
        None
    };
    let username = if flags & USERNAME != 0 {
        let (rest, u) = utf8(i)?;
        i = rest;
        Some(u)
    } else {
        None
    };
    let password = if flags & PASSWORD != 0 {
        let (rest, p) = binary(i)?;
        i = rest;
        Some(p)
    } else {
        None
    };
    if !i.is_empty() {
        return Err(fail(DecodeError::TrailingBytes));
    }
    Ok(Connect {
        protocol,
        clean_start: flags & CLEAN != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

impl Connect<'_> {
    pub(crate) fn write_body<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let (name, level) = match self.protocol {
            ProtocolVersion::V31 => ("MQIsdp", 3),
            ProtocolVersion::V311 => ("MQTT", 4),
            ProtocolVersion::V5 => ("MQTT", 5),
        };
        let v5 = self.protocol.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::InvalidValue);
        }
        let mut flags = 0u8;
        if self.clean_start {
            flags |= CLEAN;
        }
        if let Some(w) = &self.will {
            flags |= WILL | (w.qos.bits() << 3);
            if w.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        s.put_str(name)?;
        s.put_u8(level)?;
        s.put_u8(flags)?;
        s.put_u16(self.keep_alive)?;
        if v5 {
            self.properties
                .write(PropertyContext::Packet(PacketType::Connect), s)?;
        }
        s.put_str(self.client_id)?;
        if let Some(w) = &self.will {
            if v5 {
                w.properties.write(PropertyContext::Will, s)?;
            }
            if w.topic.is_empty() {
                return Err(EncodeError::InvalidValue);
            }
            s.put_str(w.topic.as_str())?;
            s.put_binary(w.payload)?;
        }
        if let Some(u) = self.username {
            s.put_str(u)?;
        }
        if let Some(p) = self.password {
            s.put_binary(p)?;
        }
        Ok(())
    }
}
