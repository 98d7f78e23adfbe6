//! CONNECT (§3.1): the first packet of every connection. It names its own protocol version.

use crate::data::{
    QoS, Writer, binary, binary_len, check_utf8, packet_buf, plain_written, put_field,
    start_packet, str_len, u8_, u16_, utf8, utf8_scanned,
};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
use crate::topic::TopicName;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

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
    /// Mosquitto's try_private: the client says it is a bridge (protocol level | 0x80).
    pub bridge: bool,
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
/// The first byte of a CONNECT's fixed header.
const FIRST: u8 = (PacketType::Connect as u8) << 4;
/// The bit a bridge sets in the protocol level (Mosquitto's `try_private`).
const BRIDGE: u8 = 0x80;

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
    // A bridge sets the level's high bit (Mosquitto's try_private), on a level known here only;
    // any other level is refused as it came.
    let bridge = level & BRIDGE != 0;
    let protocol = match (name, level & !BRIDGE) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQTT", 5) if cfg!(feature = "v5") => ProtocolVersion::V5,
        ("MQIsdp", 3) => ProtocolVersion::V31,
        ("MQTT" | "MQIsdp", _) => {
            return Err(fail(DecodeError::UnsupportedProtocolLevel(level)));
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
        bridge,
        clean_start: flags & CLEAN != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

impl<'a> Connect<'a> {
    /// A 3.1.1 CONNECT for `client_id` with the usual defaults: clean session, a 60 s keep
    /// alive, no will, no credentials, no properties. Change fields with struct update syntax.
    ///
    /// ```
    /// use wren_codec::{Connect, ProtocolVersion};
    /// let c = Connect { keep_alive: 30, ..Connect::new("sensor-7") };
    /// assert_eq!((c.protocol, c.clean_start, c.client_id), (ProtocolVersion::V311, true, "sensor-7"));
    /// ```
    pub const fn new(client_id: &'a str) -> Self {
        Connect {
            protocol: ProtocolVersion::V311,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: crate::NO_PROPERTIES,
        }
    }
}

impl Connect<'_> {
    /// [`crate::Packet::encode`] for a CONNECT (in its own `protocol` version), without the
    /// all-packet dispatch: a 3.1.1 client links only the 3.1.1 path it uses.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !self.protocol.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        if self.protocol == ProtocolVersion::V311 {
            self.encode_v311(buf)
        } else {
            self.encode_other(buf)
        }
    }

    /// [`crate::Packet::encode`] for a 3.1.1 CONNECT, by [`Self::encode_plain`].
    #[inline(never)]
    pub(crate) fn encode_v311(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        // Size first: the plain path is a faster copy of the general one (the same bytes), and
        // the general one is linked anyway (for the packets the plain path leaves to it).
        if cfg!(feature = "size") {
            return self.encode_general_out_of_line(buf);
        }
        self.encode_plain(buf)
    }

    /// [`crate::Packet::encode`] for a 5.0 or 3.1 CONNECT, by the general path (compiled for
    /// 5.0 here, the version of the two that is used).
    #[inline(never)]
    pub(crate) fn encode_other(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        // Size first: one copy of the general path, shared with 3.1.1.
        if self.protocol.is_v5() && cfg!(not(feature = "size")) {
            self.encode_general(buf)
        } else {
            self.encode_general_out_of_line(buf)
        }
    }

    /// [`Self::encode_general`] out of line, for the packets [`Self::encode_plain`] leaves to
    /// it.
    #[inline(never)]
    fn encode_general_out_of_line(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_general(buf)
    }

    /// The general path: measured and checked by [`Self::body_len`], written by [`Self::write`]
    /// through a [`Writer`].
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn encode_general(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (body, blocks) = self.body_len()?;
        let mut w = start_packet(buf, FIRST, body)?;
        self.write(blocks, &mut w);
        w.finish()
    }

    /// A 3.1.1 CONNECT (which carries no properties): the same bytes as the general path,
    /// without a property field in sight, written by cutting the buffer field by field rather
    /// than through a [`Writer`] (as `Publish::encode_plain` does). The rules are checked all
    /// at once: a packet that breaks one (a field over 65,535 bytes, an empty will topic, a
    /// password without a user name), and a body of 16 KiB or more, take the general path,
    /// which names the first rule broken exactly as before.
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn encode_plain(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let client_id = self.client_id.as_bytes();
        let (topic, payload): (&[u8], &[u8]) = match &self.will {
            Some(w) => (w.topic.as_str().as_bytes(), w.payload),
            None => (&[], &[]),
        };
        let username = self.username.unwrap_or_default().as_bytes();
        let password = self.password.unwrap_or_default();
        let has_will = self.will.is_some();
        // A field is over 65,535 bytes exactly when the or of the five lengths is.
        let longest =
            client_id.len() | topic.len() | payload.len() | username.len() | password.len();
        if longest > usize::from(u16::MAX)
            || (has_will && topic.is_empty())
            || (self.password.is_some() && self.username.is_none())
        {
            return self.encode_general_out_of_line(buf);
        }
        // Protocol name, level, flags, keep alive and the client identifier's length, then the
        // two-byte lengths of the optional fields. Cannot wrap: five lengths of at most 65,535.
        let fixed = 12usize
            .wrapping_add(if has_will { 4 } else { 0 })
            .wrapping_add(if self.username.is_some() { 2 } else { 0 })
            .wrapping_add(if self.password.is_some() { 2 } else { 0 });
        let body = fixed
            .wrapping_add(client_id.len())
            .wrapping_add(topic.len())
            .wrapping_add(payload.len())
            .wrapping_add(username.len())
            .wrapping_add(password.len());
        let flags = self.flags();
        let level = self.level();
        let [ka_hi, ka_lo] = self.keep_alive.to_be_bytes();
        let fields = [client_id, topic, payload, username, password];
        // The fixed header and the variable header in one store for packets up to 16 KiB.
        let (total, written) = if body < 0x80 {
            let total = body.wrapping_add(2);
            let out = packet_buf(buf, total)?;
            let start = [
                FIRST, body as u8, 0, 4, b'M', b'Q', b'T', b'T', level, flags, ka_hi, ka_lo,
            ];
            (total, self.write_plain(out, start, fields))
        } else if body < 0x4000 {
            let total = body.wrapping_add(3);
            let out = packet_buf(buf, total)?;
            let start = [
                FIRST,
                (body & 0x7F) as u8 | 0x80,
                (body >> 7) as u8,
                0,
                4,
                b'M',
                b'Q',
                b'T',
                b'T',
                level,
                flags,
                ka_hi,
                ka_lo,
            ];
            (total, self.write_plain(out, start, fields))
        } else {
            return self.encode_general_out_of_line(buf);
        };
        plain_written(total, written)
    }

    /// Write what [`Self::encode_plain`] measured into `out`, cut to the packet's length,
    /// starting with `start` (the fixed header and the variable header); `fields`: the client
    /// identifier, will topic, will payload, user name and password (empty when absent).
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write_plain<const H: usize>(
        &self,
        out: &mut [u8],
        start: [u8; H],
        [client_id, topic, payload, username, password]: [&[u8]; 5],
    ) -> Option<()> {
        let (dst, rest) = out.split_first_chunk_mut::<H>()?;
        *dst = start;
        let mut rest = put_field(rest, client_id)?;
        if self.will.is_some() {
            rest = put_field(rest, topic)?;
            rest = put_field(rest, payload)?;
        }
        if self.username.is_some() {
            rest = put_field(rest, username)?;
        }
        if self.password.is_some() {
            rest = put_field(rest, password)?;
        }
        rest.is_empty().then_some(())
    }

    /// The protocol level byte: the version's level, with the high bit for a bridge.
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn level(&self) -> u8 {
        let level = self.protocol.level();
        if self.bridge { level | BRIDGE } else { level }
    }

    /// The connect flags byte.
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn flags(&self) -> u8 {
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
        flags
    }

    /// The body length and the property items lengths of the CONNECT and of its will (5.0),
    /// checking the packet against the rules the decoder enforces.
    #[cfg_attr(not(feature = "size"), inline(always))]
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
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) fn write(&self, (properties, will_properties): (Block, Block), w: &mut Writer<'_>) {
        let flags = self.flags();
        let level = self.level();
        let [ka_hi, ka_lo] = self.keep_alive.to_be_bytes();
        match self.protocol {
            ProtocolVersion::V31 => w.array([
                0, 6, b'M', b'Q', b'I', b's', b'd', b'p', level, flags, ka_hi, ka_lo,
            ]),
            ProtocolVersion::V311 | ProtocolVersion::V5 => {
                w.array([0, 4, b'M', b'Q', b'T', b'T', level, flags, ka_hi, ka_lo])
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;
    use crate::properties::NO_PROPERTIES;
    use std::{vec, vec::Vec};

    /// `encode` (the plain path for a 3.1.1 CONNECT) and the general path give the same result
    /// and the same bytes, in buffers of the exact size, one byte short and empty, for every
    /// field present or absent, every length class of each field (copy sizes, the 65,535-byte
    /// limit and one past it, an empty will topic), a password without a user name, and bodies
    /// around the one-, two- and three-byte Remaining Length boundaries; 3.1 and 5.0 CONNECTs
    /// (the general path) too.
    #[test]
    fn plain_path_agrees_with_the_general_path() {
        static TEXT: [u8; 70_000] = [b'c'; 70_000];
        let text = core::str::from_utf8(&TEXT).unwrap();
        let mut client_id_lens: Vec<usize> = (0..=70).collect();
        client_id_lens.extend([100, 115, 116, 117, 127, 128, 16_371, 16_372, 65_535, 65_536]);
        let will_shapes: Vec<Option<(usize, usize)>> = [None]
            .into_iter()
            .chain(
                [
                    (0, 0),
                    (1, 0),
                    (1, 7),
                    (35, 7),
                    (16, 64),
                    (8, 65),
                    (3, 200),
                    (65_535, 1),
                    (2, 65_535),
                    (2, 65_536),
                ]
                .map(Some),
            )
            .collect();
        let user_lens = [None, Some(0), Some(5), Some(33), Some(65_535), Some(65_536)];
        let password_lens = [None, Some(0), Some(28), Some(65_535), Some(65_536)];
        let mut storage = vec![0u8; 400_000];
        let mut reference = vec![0u8; 400_000];
        let (mut checked, mut refused) = (0, 0);
        for protocol in [
            ProtocolVersion::V311,
            ProtocolVersion::V31,
            ProtocolVersion::V5,
        ] {
            for &c in &client_id_lens {
                for &will_shape in &will_shapes {
                    for &u in &user_lens {
                        for &pw in &password_lens {
                            let lens = [
                                c,
                                will_shape.map_or(0, |w| w.0),
                                will_shape.map_or(0, |w| w.1),
                                u.unwrap_or(0),
                                pw.unwrap_or(0),
                            ];
                            // At most one long field; other versions and odd client
                            // identifier lengths with a few shapes only.
                            if lens.iter().filter(|&&n| n > 200).count() > 1 {
                                continue;
                            }
                            let short_c = matches!(c, 0 | 1 | 8 | 20 | 33 | 127);
                            if (protocol != ProtocolVersion::V311 || !short_c)
                                && (will_shape.is_some() && will_shape != Some((35, 7))
                                    || u.is_some_and(|u| u != 5)
                                    || pw.is_some_and(|p| p != 28))
                            {
                                continue;
                            }
                            let variant = checked % 8;
                            let will = will_shape.map(|(t, n)| Will {
                                topic: TopicName::new_allow_empty(&text[..t]).unwrap(),
                                payload: &TEXT[..n],
                                qos: QoS::from_bits((variant % 3) as u8).unwrap(),
                                retain: variant & 4 != 0,
                                properties: NO_PROPERTIES,
                            });
                            let connect = Connect {
                                protocol,
                                bridge: variant & 2 != 0,
                                clean_start: variant & 1 != 0,
                                keep_alive: [0, 60, 0x1234, u16::MAX][variant % 4],
                                client_id: &text[..c],
                                will,
                                username: u.map(|n| &text[..n]),
                                password: pw.map(|n| &TEXT[..n]),
                                properties: NO_PROPERTIES,
                            };
                            let want = connect.encode_general(&mut reference);
                            let packet = Packet::Connect(connect);
                            for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
                                assert_eq!(packet.encode(version, &mut storage), want, "{lens:?}");
                            }
                            match want {
                                Ok(len) => {
                                    assert_eq!(storage[..len], reference[..len], "{lens:?}");
                                    assert_eq!(packet.encoded_len(protocol), Ok(len));
                                    for short in [len - 1, 0] {
                                        assert_eq!(
                                            packet.encode(protocol, &mut storage[..short]),
                                            Err(EncodeError::BufferTooSmall { needed: len })
                                        );
                                    }
                                }
                                Err(e) => {
                                    assert_eq!(packet.encoded_len(protocol), Err(e));
                                    refused += 1;
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 3_000 && refused > 500, "{checked} {refused}");
    }

    /// Decode `bytes` as a whole CONNECT.
    fn decode_connect(bytes: &[u8]) -> Result<Connect<'_>, DecodeError> {
        match crate::decode(bytes, crate::DecodeOptions::new(ProtocolVersion::V311))? {
            crate::Status::Complete(d) if d.consumed == bytes.len() => match d.packet {
                Packet::Connect(c) => Ok(c),
                other => panic!("not a CONNECT: {other:?}"),
            },
            other => panic!("not one whole packet: {other:?}"),
        }
    }

    /// Mosquitto's try_private, byte for byte: a bridge's CONNECT carries its protocol level
    /// with the high bit set (0x83 for MQIsdp 3, 0x84 for MQTT 4, 0x85 for MQTT 5); it decodes
    /// with `bridge` set and encodes back to the same bytes, by the plain and the general path.
    #[test]
    fn bridge_bit_vectors() {
        let cases: [(&[u8], ProtocolVersion); 3] = [
            (
                &[
                    0x10, 17, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x83, 0x02, 0x00,
                    0x3C, 0x00, 0x03, b'b', b'r', b'1',
                ],
                ProtocolVersion::V31,
            ),
            (
                &[
                    0x10, 15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x84, 0x00, 0x00, 0x3C, 0x00,
                    0x03, b'b', b'r', b'1',
                ],
                ProtocolVersion::V311,
            ),
            (
                &[
                    0x10, 16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x85, 0x02, 0x00, 0x3C, 0x00,
                    0x00, 0x03, b'b', b'r', b'1',
                ],
                ProtocolVersion::V5,
            ),
        ];
        let mut buf = [0u8; 64];
        for (bytes, protocol) in cases {
            let clean_start = protocol != ProtocolVersion::V311;
            let want = Connect {
                protocol,
                bridge: true,
                clean_start,
                ..Connect::new("br1")
            };
            assert_eq!(decode_connect(bytes), Ok(want), "{protocol:?}");
            let n = want.encode(&mut buf).unwrap();
            assert_eq!(&buf[..n], bytes, "{protocol:?}");
            let n = want.encode_general(&mut buf).unwrap();
            assert_eq!(&buf[..n], bytes, "{protocol:?}");
            // The same CONNECT without the bit: the level as the version names it.
            let plain = Connect {
                bridge: false,
                ..want
            };
            let n = plain.encode(&mut buf).unwrap();
            let mut expected = bytes.to_vec();
            let level_at = if protocol == ProtocolVersion::V31 {
                10
            } else {
                8
            };
            expected[level_at] &= 0x7F;
            assert_eq!(&buf[..n], &expected[..], "{protocol:?}");
            assert_eq!(decode_connect(&expected), Ok(plain), "{protocol:?}");
        }
    }

    /// The high bit is accepted on the levels the name speaks only: any other level, with or
    /// without it, is refused as it came (CONNACK 0x01 / 0x84).
    #[test]
    fn bridge_bit_on_an_unknown_level_is_refused() {
        let connect = |name: &[u8], level: u8| {
            let mut v = vec![0x10, 0, 0, name.len() as u8];
            v.extend_from_slice(name);
            v.extend_from_slice(&[level, 0x02, 0x00, 0x3C, 0x00, 0x01, b'c']);
            v[1] = (v.len() - 2) as u8;
            v
        };
        for (name, level) in [
            (&b"MQTT"[..], 0x83),
            (b"MQTT", 0x80),
            (b"MQTT", 0x86),
            (b"MQTT", 0xFF),
            (b"MQIsdp", 0x84),
            (b"MQIsdp", 0x85),
            (b"MQIsdp", 0x80),
        ] {
            assert_eq!(
                decode_connect(&connect(name, level)),
                Err(DecodeError::UnsupportedProtocolLevel(level)),
                "{level:#x}"
            );
        }
        assert!(decode_connect(&connect(b"MQIsdp", 0x83)).is_ok_and(|c| c.bridge));
        assert!(decode_connect(&connect(b"MQTT", 0x04)).is_ok_and(|c| !c.bridge));
    }
}
