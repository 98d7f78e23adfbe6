//! CONNECT (§3.1): the first packet of every connection. It names its own protocol version.

use crate::ProtocolVersion;
use crate::data::{
    QoS, Writer, binary, binary_len, check_utf8, str_len, u8_, u16_, utf8, utf8_scanned,
};
use crate::error::{DecodeError, EncodeError};
use crate::header::PacketType;
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
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
    // The protocol name is compared as bytes first: the two names known need no UTF-8 check,
    // and any other gets the full one, so a malformed name is still reported as such.
    let (i, name) = binary(i)?;
    let name = match name {
        b"MQTT" => "MQTT",
        b"MQIsdp" => "MQIsdp",
        other => check_utf8(other).map_err(fail)?,
    };
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
        let (rest, (topic, found)) = utf8_scanned(rest)?;
        let topic = TopicName::from_scanned(topic, found, false).map_err(fail)?;
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
    /// The body length and the property items lengths of the CONNECT and of its will (5.0),
    /// checking the packet against the rules the decoder enforces.
    #[inline(always)]
    pub(crate) fn body_len(&self) -> Result<(usize, (Block, Block)), EncodeError> {
        let v5 = self.protocol.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::InvalidValue);
        }
        // Protocol name, level, flags, keep alive.
        let mut n: usize = match self.protocol {
            ProtocolVersion::V31 => 12,
            ProtocolVersion::V311 | ProtocolVersion::V5 => 10,
        };
        let mut properties = Block::EMPTY;
        if v5 {
            properties = self
                .properties
                .items_len(PropertyContext::Packet(PacketType::Connect))?;
            n = n.saturating_add(block_len(properties)?);
        }
        n = n.saturating_add(str_len(self.client_id)?);
        let mut will_properties = Block::EMPTY;
        if let Some(w) = &self.will {
            if v5 {
                will_properties = w.properties.items_len(PropertyContext::Will)?;
                n = n.saturating_add(block_len(will_properties)?);
            }
            if w.topic.is_empty() {
                return Err(EncodeError::InvalidValue);
            }
            n = n
                .saturating_add(str_len(w.topic.as_str())?)
                .saturating_add(binary_len(w.payload)?);
        }
        if let Some(u) = self.username {
            n = n.saturating_add(str_len(u)?);
        }
        if let Some(p) = self.password {
            n = n.saturating_add(binary_len(p)?);
        }
        Ok((n, (properties, will_properties)))
    }

    /// Write the body [`Self::body_len`] measured.
    #[inline(always)]
    pub(crate) fn write(&self, (properties, will_properties): (Block, Block), w: &mut Writer<'_>) {
        let mut flags = 0u8;
        if self.clean_start {
            flags |= CLEAN;
        }
        if let Some(will) = &self.will {
            flags |= WILL | (will.qos.bits() << 3);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        let [ka_hi, ka_lo] = self.keep_alive.to_be_bytes();
        match self.protocol {
            ProtocolVersion::V31 => w.array([
                0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, flags, ka_hi, ka_lo,
            ]),
            ProtocolVersion::V311 => {
                w.array([0, 4, b'M', b'Q', b'T', b'T', 4, flags, ka_hi, ka_lo])
            }
            ProtocolVersion::V5 => w.array([0, 4, b'M', b'Q', b'T', b'T', 5, flags, ka_hi, ka_lo]),
        }
        let v5 = self.protocol.is_v5();
        if v5 {
            self.properties.write_block(
                properties,
                PropertyContext::Packet(PacketType::Connect),
                w,
            );
        }
        w.str(self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                will.properties
                    .write_block(will_properties, PropertyContext::Will, w);
            }
            w.str(will.topic.as_str());
            w.binary(will.payload);
        }
        if let Some(u) = self.username {
            w.str(u);
        }
        if let Some(p) = self.password {
            w.binary(p);
        }
    }
}
