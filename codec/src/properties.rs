//! MQTT 5.0 properties (§2.2.2): one [`Properties`] struct for every packet, with the rules of which
//! packet may carry which property checked both when decoding and when encoding.
//!
//! Decoding validates the whole block once: every identifier known, allowed in this packet, not
//! repeated unless the property may repeat, every value of its type and in its range. User
//! properties and subscription identifiers stay in the block and are read lazily by
//! [`crate::List`]; nothing is copied and nothing is capped.

use core::num::{NonZeroU16, NonZeroU32};

use nom::{IResult, Parser};

use crate::data::QoS;
use crate::data::{
    Writer, binary, binary_len, nonzero_u32, str_len, u8_, u16_, u32_, utf8, utf8_check_only,
    utf8_prevalidated, utf8_scanned, varint, varint_field_len,
};
use crate::error::{DecodeError, EncodeError};
use crate::list::{
    SubscriptionIdentifiers, UserProperties, UserProperty, for_items, next_text_field,
};
use crate::topic::TopicName;
use crate::wire::{PacketType, VARINT_MAX, varint_len};

/// Property identifiers (§2.2.2.2, table 2-4).
#[derive(Debug)]
pub struct PropertyId;

impl PropertyId {
    /// Payload Format Indicator (Byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (Four Byte Integer).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (UTF-8).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (UTF-8).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (Binary).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (Variable Byte Integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (Four Byte Integer).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (UTF-8).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (Two Byte Integer).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (UTF-8).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (Binary).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (Byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (Four Byte Integer).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (Byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (UTF-8).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (UTF-8).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (UTF-8).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (Two Byte Integer).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (Two Byte Integer).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (Two Byte Integer).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (Byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (Byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (UTF-8 String Pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (Four Byte Integer).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (Byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifier Available (Byte).
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (Byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where a property block sits: in a packet, or in CONNECT's will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PropertyContext {
    /// The packet's own properties.
    Packet(PacketType),
    /// The Will Properties inside CONNECT.
    Will,
}

impl PropertyContext {
    fn packet(self) -> PacketType {
        match self {
            PropertyContext::Packet(p) => p,
            PropertyContext::Will => PacketType::Connect,
        }
    }
}

/// The value type of each property, or `None` for an identifier 5.0 does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Byte,
    U16,
    U32,
    Varint,
    Utf8,
    Binary,
    Pair,
}

const fn value_type(id: u8) -> Option<ValueType> {
    use ValueType::*;
    Some(match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Byte,
        0x13 | 0x21 | 0x22 | 0x23 => U16,
        0x02 | 0x11 | 0x18 | 0x27 => U32,
        0x0B => Varint,
        0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Utf8,
        0x09 | 0x16 => Binary,
        0x26 => Pair,
        _ => return None,
    })
}

/// Whether property `id` may appear in `ctx` (§2.2.2.2 and each packet's property list).
pub const fn is_allowed(id: u8, ctx: PropertyContext) -> bool {
    use PacketType::*;
    use PropertyContext::{Packet, Will};
    match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => matches!(ctx, Packet(Publish) | Will),
        0x0B => matches!(ctx, Packet(Publish) | Packet(Subscribe)),
        0x11 => matches!(ctx, Packet(Connect) | Packet(ConnAck) | Packet(Disconnect)),
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => matches!(ctx, Packet(ConnAck)),
        0x15 | 0x16 => matches!(ctx, Packet(Connect) | Packet(ConnAck) | Packet(Auth)),
        0x17 | 0x19 => matches!(ctx, Packet(Connect)),
        0x18 => matches!(ctx, Will),
        0x1C => matches!(ctx, Packet(ConnAck) | Packet(Disconnect)),
        0x1F => matches!(
            ctx,
            Packet(ConnAck)
                | Packet(PubAck)
                | Packet(PubRec)
                | Packet(PubRel)
                | Packet(PubComp)
                | Packet(SubAck)
                | Packet(UnsubAck)
                | Packet(Disconnect)
                | Packet(Auth)
        ),
        0x21 | 0x22 | 0x27 => matches!(ctx, Packet(Connect) | Packet(ConnAck)),
        0x23 => matches!(ctx, Packet(Publish)),
        0x26 => !matches!(ctx, Packet(PingReq) | Packet(PingResp)),
        _ => false,
    }
}

/// Payload Format Indicator values (§3.3.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    Unspecified,
    /// 1: UTF-8 encoded character data.
    Utf8,
}

/// The properties of one packet (or of CONNECT's will). Fields a packet may not carry stay unset:
/// decoding refuses them and encoding reports [`EncodeError::PropertyNotAllowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Properties<'a> {
    /// 0x01, PUBLISH and will.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// 0x02, seconds; PUBLISH and will.
    pub message_expiry_interval: Option<u32>,
    /// 0x03, PUBLISH and will.
    pub content_type: Option<&'a str>,
    /// 0x08, PUBLISH and will; no wildcards (`[MQTT-3.3.2-14]`).
    pub response_topic: Option<TopicName<'a>>,
    /// 0x09, PUBLISH and will.
    pub correlation_data: Option<&'a [u8]>,
    /// 0x0B; PUBLISH (repeatable, server to client) and SUBSCRIBE (once); 1..=268,435,455.
    pub subscription_identifiers: SubscriptionIdentifiers<'a>,
    /// 0x11, seconds; CONNECT, CONNACK, DISCONNECT.
    pub session_expiry_interval: Option<u32>,
    /// 0x12, CONNACK.
    pub assigned_client_identifier: Option<&'a str>,
    /// 0x13, seconds; CONNACK.
    pub server_keep_alive: Option<u16>,
    /// 0x15; CONNECT, CONNACK, AUTH.
    pub authentication_method: Option<&'a str>,
    /// 0x16; CONNECT, CONNACK, AUTH.
    pub authentication_data: Option<&'a [u8]>,
    /// 0x17, CONNECT.
    pub request_problem_information: Option<bool>,
    /// 0x18, seconds; will.
    pub will_delay_interval: Option<u32>,
    /// 0x19, CONNECT.
    pub request_response_information: Option<bool>,
    /// 0x1A, CONNACK.
    pub response_information: Option<&'a str>,
    /// 0x1C; CONNACK, DISCONNECT.
    pub server_reference: Option<&'a str>,
    /// 0x1F; every acknowledgement, DISCONNECT and AUTH.
    pub reason_string: Option<&'a str>,
    /// 0x21; CONNECT, CONNACK. Never 0.
    pub receive_maximum: Option<NonZeroU16>,
    /// 0x22; CONNECT, CONNACK.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, PUBLISH. Never 0 (`[MQTT-3.3.2-8]`).
    pub topic_alias: Option<NonZeroU16>,
    /// 0x24, CONNACK: 0 or 1 (a server supporting QoS 2 leaves it out).
    pub maximum_qos: Option<QoS>,
    /// 0x25, CONNACK.
    pub retain_available: Option<bool>,
    /// 0x26; every packet but PINGREQ and PINGRESP. Order kept, repeats allowed.
    pub user_properties: UserProperties<'a>,
    /// 0x27; CONNECT, CONNACK. Never 0.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// 0x28, CONNACK.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29, CONNACK.
    pub subscription_identifier_available: Option<bool>,
    /// 0x2A, CONNACK.
    pub shared_subscription_available: Option<bool>,
}

/// An empty property set, usable in `const` contexts.
pub const NO_PROPERTIES: Properties<'static> = Properties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    content_type: None,
    response_topic: None,
    correlation_data: None,
    subscription_identifiers: SubscriptionIdentifiers::empty(),
    session_expiry_interval: None,
    assigned_client_identifier: None,
    server_keep_alive: None,
    authentication_method: None,
    authentication_data: None,
    request_problem_information: None,
    will_delay_interval: None,
    request_response_information: None,
    response_information: None,
    server_reference: None,
    reason_string: None,
    receive_maximum: None,
    topic_alias_maximum: None,
    topic_alias: None,
    maximum_qos: None,
    retain_available: None,
    user_properties: UserProperties::empty(),
    maximum_packet_size: None,
    wildcard_subscription_available: None,
    subscription_identifier_available: None,
    shared_subscription_available: None,
};

/// Skip the value of property `id` in a block decoding already validated, and return what
/// follows. Strings are skipped by their length alone: re-checking their UTF-8 here made reading a
/// lazy list (user properties, subscription identifiers) cost more than decoding the packet.
pub(crate) fn skip_value(i: &[u8], id: u8) -> Result<&[u8], nom::Err<DecodeError>> {
    let rest = match value_type(id) {
        Some(ValueType::Byte) => u8_(i)?.0,
        Some(ValueType::U16) => u16_(i)?.0,
        Some(ValueType::U32) => u32_(i)?.0,
        Some(ValueType::Varint) => varint(i)?.0,
        Some(ValueType::Utf8 | ValueType::Binary) => binary(i)?.0,
        Some(ValueType::Pair) => binary(binary(i)?.0)?.0,
        None => {
            return Err(nom::Err::Failure(DecodeError::UnknownProperty(u32::from(
                id,
            ))));
        }
    };
    Ok(rest)
}

fn flag(v: u8, id: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// Parse a property block: a Variable Byte Integer length, then the properties.
pub(crate) fn parse_properties<'a>(
    i: &'a [u8],
    ctx: PropertyContext,
) -> IResult<&'a [u8], Properties<'a>, DecodeError> {
    // Most packets carry no properties: a lone 0 length needs no block parsing.
    if let Some((0, rest)) = i.split_first() {
        return Ok((rest, NO_PROPERTIES));
    }
    let (i, len) = varint(i)?;
    let (rest, block) = nom::bytes::complete::take(len).parse(i)?;
    let props = parse_block(block, ctx).map_err(nom::Err::Failure)?;
    Ok((rest, props))
}

fn parse_block<'a>(block: &'a [u8], ctx: PropertyContext) -> Result<Properties<'a>, DecodeError> {
    use crate::data::finish_err as f;
    let mut p = Properties::default();
    let mut seen: u64 = 0;
    let mut rest = block;
    // Where the first user property (subscription identifier) starts and the last one ends, as
    // offsets in `block`: the lazy lists are views of that span only, so reading them does not
    // walk the other properties again.
    let mut users: Option<(usize, usize)> = None;
    let mut sub_ids: Option<(usize, usize)> = None;
    while !rest.is_empty() {
        let (after_id, id) = varint(rest).map_err(f)?;
        let Ok(id) = u8::try_from(id) else {
            return Err(DecodeError::UnknownProperty(id));
        };
        if value_type(id).is_none() {
            return Err(DecodeError::UnknownProperty(u32::from(id)));
        }
        if !is_allowed(id, ctx) {
            return Err(DecodeError::PropertyNotAllowed {
                id,
                packet: ctx.packet(),
            });
        }
        // Every defined identifier is below 64, so one bit each.
        let bit = 1u64.checked_shl(u32::from(id)).unwrap_or(0);
        let may_repeat = id == PropertyId::USER_PROPERTY
            || (id == PropertyId::SUBSCRIPTION_IDENTIFIER
                && ctx == PropertyContext::Packet(PacketType::Publish));
        if seen & bit != 0 && !may_repeat {
            return Err(DecodeError::DuplicateProperty(id));
        }
        seen |= bit;
        let v = after_id;
        let bad = DecodeError::InvalidPropertyValue(id);
        rest = match id {
            PropertyId::PAYLOAD_FORMAT_INDICATOR => {
                let (r, b) = u8_(v).map_err(f)?;
                p.payload_format_indicator = Some(match b {
                    0 => PayloadFormat::Unspecified,
                    1 => PayloadFormat::Utf8,
                    _ => return Err(bad),
                });
                r
            }
            PropertyId::MESSAGE_EXPIRY_INTERVAL => {
                let (r, x) = u32_(v).map_err(f)?;
                p.message_expiry_interval = Some(x);
                r
            }
            PropertyId::CONTENT_TYPE => {
                let (r, s) = utf8(v).map_err(f)?;
                p.content_type = Some(s);
                r
            }
            PropertyId::RESPONSE_TOPIC => {
                let (r, (s, found)) = utf8_scanned(v).map_err(f)?;
                p.response_topic = Some(TopicName::from_scanned(s, found, false).map_err(|_| bad)?);
                r
            }
            PropertyId::CORRELATION_DATA => {
                let (r, b) = binary(v).map_err(f)?;
                p.correlation_data = Some(b);
                r
            }
            PropertyId::SUBSCRIPTION_IDENTIFIER => {
                let (r, x) = varint(v).map_err(f)?;
                if x == 0 {
                    return Err(bad);
                }
                sub_ids = Some(span(sub_ids, block, rest, r));
                r
            }
            PropertyId::SESSION_EXPIRY_INTERVAL => {
                let (r, x) = u32_(v).map_err(f)?;
                p.session_expiry_interval = Some(x);
                r
            }
            PropertyId::ASSIGNED_CLIENT_IDENTIFIER => {
                let (r, s) = utf8(v).map_err(f)?;
                p.assigned_client_identifier = Some(s);
                r
            }
            PropertyId::SERVER_KEEP_ALIVE => {
                let (r, x) = u16_(v).map_err(f)?;
                p.server_keep_alive = Some(x);
                r
            }
            PropertyId::AUTHENTICATION_METHOD => {
                let (r, s) = utf8(v).map_err(f)?;
                p.authentication_method = Some(s);
                r
            }
            PropertyId::AUTHENTICATION_DATA => {
                let (r, b) = binary(v).map_err(f)?;
                p.authentication_data = Some(b);
                r
            }
            PropertyId::REQUEST_PROBLEM_INFORMATION => {
                let (r, b) = u8_(v).map_err(f)?;
                p.request_problem_information = Some(flag(b, id)?);
                r
            }
            PropertyId::WILL_DELAY_INTERVAL => {
                let (r, x) = u32_(v).map_err(f)?;
                p.will_delay_interval = Some(x);
                r
            }
            PropertyId::REQUEST_RESPONSE_INFORMATION => {
                let (r, b) = u8_(v).map_err(f)?;
                p.request_response_information = Some(flag(b, id)?);
                r
            }
            PropertyId::RESPONSE_INFORMATION => {
                let (r, s) = utf8(v).map_err(f)?;
                p.response_information = Some(s);
                r
            }
            PropertyId::SERVER_REFERENCE => {
                let (r, s) = utf8(v).map_err(f)?;
                p.server_reference = Some(s);
                r
            }
            PropertyId::REASON_STRING => {
                let (r, s) = utf8(v).map_err(f)?;
                p.reason_string = Some(s);
                r
            }
            PropertyId::RECEIVE_MAXIMUM => {
                let (r, x) = u16_(v).map_err(f)?;
                p.receive_maximum = Some(NonZeroU16::new(x).ok_or(bad)?);
                r
            }
            PropertyId::TOPIC_ALIAS_MAXIMUM => {
                let (r, x) = u16_(v).map_err(f)?;
                p.topic_alias_maximum = Some(x);
                r
            }
            PropertyId::TOPIC_ALIAS => {
                let (r, x) = u16_(v).map_err(f)?;
                p.topic_alias = Some(NonZeroU16::new(x).ok_or(bad)?);
                r
            }
            PropertyId::MAXIMUM_QOS => {
                let (r, b) = u8_(v).map_err(f)?;
                p.maximum_qos = Some(match b {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(bad),
                });
                r
            }
            PropertyId::RETAIN_AVAILABLE => {
                let (r, b) = u8_(v).map_err(f)?;
                p.retain_available = Some(flag(b, id)?);
                r
            }
            PropertyId::USER_PROPERTY => {
                let (r, ()) = utf8_check_only(v).map_err(f)?;
                let (r, ()) = utf8_check_only(r).map_err(f)?;
                users = Some(span(users, block, rest, r));
                r
            }
            PropertyId::MAXIMUM_PACKET_SIZE => {
                let (r, x) = u32_(v).map_err(f)?;
                p.maximum_packet_size = Some(nonzero_u32(x, id)?);
                r
            }
            PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let (r, b) = u8_(v).map_err(f)?;
                p.wildcard_subscription_available = Some(flag(b, id)?);
                r
            }
            PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let (r, b) = u8_(v).map_err(f)?;
                p.subscription_identifier_available = Some(flag(b, id)?);
                r
            }
            PropertyId::SHARED_SUBSCRIPTION_AVAILABLE => {
                let (r, b) = u8_(v).map_err(f)?;
                p.shared_subscription_available = Some(flag(b, id)?);
                r
            }
            _ => return Err(DecodeError::UnknownProperty(u32::from(id))),
        };
    }
    if let Some((start, end)) = sub_ids {
        p.subscription_identifiers =
            SubscriptionIdentifiers::from_wire(block.get(start..end).unwrap_or(block));
    }
    if let Some((start, end)) = users {
        let span = block.get(start..end).unwrap_or(block);
        // Valid UTF-8 as a whole (always, when the pairs are ASCII and shorter than 128 bytes:
        // identifiers and lengths are then ASCII too), the span is kept as text, and reading
        // the pairs slices them out of it with no UTF-8 check per string. The strings were
        // each checked above, so a string boundary is a character boundary of the span.
        p.user_properties = match core::str::from_utf8(span) {
            Ok(text) => UserProperties::from_text(text),
            Err(_) => UserProperties::from_wire(span),
        };
    }
    Ok(p)
}

/// The span of a repeatable property's items so far, `(start, end)` offsets in `block`, with
/// the item that starts `item` and is followed by `after` added.
#[inline]
fn span(so_far: Option<(usize, usize)>, block: &[u8], item: &[u8], after: &[u8]) -> (usize, usize) {
    let end = block.len().saturating_sub(after.len());
    match so_far {
        Some((first, _)) => (first, end),
        None => (block.len().saturating_sub(item.len()), end),
    }
}

impl Properties<'_> {
    /// Whether no property is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        // Field by field rather than `== NO_PROPERTIES`, which compares both lists item by item:
        // every encode asks this, and most packets carry no properties. The destructuring makes
        // a new field a compile error here until it is added. `&` rather than `&&` for the
        // plain fields: no branch per field, and the compiler merges the tests of the fields
        // whose `None` is zero into one test of their bits or'ed together.
        let Properties {
            payload_format_indicator,
            message_expiry_interval,
            content_type,
            response_topic,
            correlation_data,
            subscription_identifiers,
            session_expiry_interval,
            assigned_client_identifier,
            server_keep_alive,
            authentication_method,
            authentication_data,
            request_problem_information,
            will_delay_interval,
            request_response_information,
            response_information,
            server_reference,
            reason_string,
            receive_maximum,
            topic_alias_maximum,
            topic_alias,
            maximum_qos,
            retain_available,
            user_properties,
            maximum_packet_size,
            wildcard_subscription_available,
            subscription_identifier_available,
            shared_subscription_available,
        } = self;
        payload_format_indicator.is_none()
            & message_expiry_interval.is_none()
            & content_type.is_none()
            & response_topic.is_none()
            & correlation_data.is_none()
            & session_expiry_interval.is_none()
            & assigned_client_identifier.is_none()
            & server_keep_alive.is_none()
            & authentication_method.is_none()
            & authentication_data.is_none()
            & request_problem_information.is_none()
            & will_delay_interval.is_none()
            & request_response_information.is_none()
            & response_information.is_none()
            & server_reference.is_none()
            & reason_string.is_none()
            & receive_maximum.is_none()
            & topic_alias_maximum.is_none()
            & topic_alias.is_none()
            & maximum_qos.is_none()
            & retain_available.is_none()
            & maximum_packet_size.is_none()
            & wildcard_subscription_available.is_none()
            & subscription_identifier_available.is_none()
            & shared_subscription_available.is_none()
            // The lists last, and only if nothing else is set: a decoded list is read to tell.
            && subscription_identifiers.is_empty()
            && user_properties.is_empty()
    }

    /// Whether no property is set, tested cheaply enough for every PUBLISH encode: `true`
    /// means none is set; `false` that one is, or (in theory: the decoder makes no such list)
    /// that a decoded list would have to be read to tell. The caller then takes the general
    /// path, [`Self::items_len`], which decides.
    ///
    /// [`Self::is_empty`] tests 27 fields one by one (the compiler turns that into about 75
    /// instructions of vector compares and branches); here each field gives an integer that
    /// is 0 exactly when it is unset, and the integers are or'ed into a few words tested
    /// once: the pointer of an `Option<&str>` / `Option<&[u8]>` (null for `None`), the value
    /// of an `Option<NonZero*>`, the tag of an `Option<u16>` / `Option<u32>`, the view length
    /// of a list. The one-byte options are mapped to 2 when unset and to a value with bit 1
    /// clear when set (for `Option<bool>` and `Option<PayloadFormat>`, their own byte), and'ed,
    /// and bit 1 tested; the compiler turns the eight into one 64-bit compare. About 28
    /// instructions in all.
    #[inline(always)]
    pub(crate) fn surely_empty(&self) -> bool {
        let Properties {
            payload_format_indicator,
            message_expiry_interval,
            content_type,
            response_topic,
            correlation_data,
            subscription_identifiers,
            session_expiry_interval,
            assigned_client_identifier,
            server_keep_alive,
            authentication_method,
            authentication_data,
            request_problem_information,
            will_delay_interval,
            request_response_information,
            response_information,
            server_reference,
            reason_string,
            receive_maximum,
            topic_alias_maximum,
            topic_alias,
            maximum_qos,
            retain_available,
            user_properties,
            maximum_packet_size,
            wildcard_subscription_available,
            subscription_identifier_available,
            shared_subscription_available,
        } = self;
        let words = ptr(*content_type)
            | ptr(response_topic.map(|t| t.as_str()))
            | ptr(*correlation_data)
            | ptr(*assigned_client_identifier)
            | ptr(*authentication_method)
            | ptr(*authentication_data)
            | ptr(*response_information)
            | ptr(*server_reference)
            | ptr(*reason_string)
            | subscription_identifiers.view_len()
            | user_properties.view_len();
        let small = tag(message_expiry_interval)
            | tag(session_expiry_interval)
            | tag(will_delay_interval)
            | tag(server_keep_alive)
            | tag(topic_alias_maximum)
            | u32::from(receive_maximum.map_or(0, NonZeroU16::get))
            | u32::from(topic_alias.map_or(0, NonZeroU16::get))
            | maximum_packet_size.map_or(0, NonZeroU32::get);
        let bytes = byte(payload_format_indicator.map(|f| f == PayloadFormat::Utf8))
            & byte(*request_problem_information)
            & byte(*request_response_information)
            & byte(*retain_available)
            & byte(*wildcard_subscription_available)
            & byte(*subscription_identifier_available)
            & byte(*shared_subscription_available)
            & match maximum_qos {
                Some(_) => 0,
                None => 2,
            };
        words == 0 && small == 0 && bytes & 2 != 0
    }

    /// Whether a property other than the two lists is set among those `pick` selects (by
    /// identifier): exactly `is_some()` of each picked field, or'ed. Inlined where `pick` is
    /// decided at compile time, as [`Self::surely_empty`] tests all of them: each picked field
    /// gives an integer that is 0 (for the one-byte ones: has bit 1 set) exactly when it is
    /// unset, the others a constant that says unset, and the integers are or'ed (and'ed) into
    /// a few words tested once, rather than a test and branch per field.
    #[inline(always)]
    fn any_scalar_set(&self, pick: impl Fn(u8) -> bool) -> bool {
        let word = |id: u8, v: usize| if pick(id) { v } else { 0 };
        let small = |id: u8, v: u32| if pick(id) { v } else { 0 };
        let one = |id: u8, v: u8| if pick(id) { v } else { 2 };
        let words = word(PropertyId::CONTENT_TYPE, ptr(self.content_type))
            | word(
                PropertyId::RESPONSE_TOPIC,
                ptr(self.response_topic.map(|t| t.as_str())),
            )
            | word(PropertyId::CORRELATION_DATA, ptr(self.correlation_data))
            | word(
                PropertyId::ASSIGNED_CLIENT_IDENTIFIER,
                ptr(self.assigned_client_identifier),
            )
            | word(
                PropertyId::AUTHENTICATION_METHOD,
                ptr(self.authentication_method),
            )
            | word(
                PropertyId::AUTHENTICATION_DATA,
                ptr(self.authentication_data),
            )
            | word(
                PropertyId::RESPONSE_INFORMATION,
                ptr(self.response_information),
            )
            | word(PropertyId::SERVER_REFERENCE, ptr(self.server_reference))
            | word(PropertyId::REASON_STRING, ptr(self.reason_string));
        let smalls = small(
            PropertyId::MESSAGE_EXPIRY_INTERVAL,
            tag(&self.message_expiry_interval),
        ) | small(
            PropertyId::SESSION_EXPIRY_INTERVAL,
            tag(&self.session_expiry_interval),
        ) | small(
            PropertyId::WILL_DELAY_INTERVAL,
            tag(&self.will_delay_interval),
        ) | small(PropertyId::SERVER_KEEP_ALIVE, tag(&self.server_keep_alive))
            | small(
                PropertyId::TOPIC_ALIAS_MAXIMUM,
                tag(&self.topic_alias_maximum),
            )
            | small(
                PropertyId::RECEIVE_MAXIMUM,
                u32::from(self.receive_maximum.map_or(0, NonZeroU16::get)),
            )
            | small(
                PropertyId::TOPIC_ALIAS,
                u32::from(self.topic_alias.map_or(0, NonZeroU16::get)),
            )
            | small(
                PropertyId::MAXIMUM_PACKET_SIZE,
                self.maximum_packet_size.map_or(0, NonZeroU32::get),
            );
        let bytes = one(
            PropertyId::PAYLOAD_FORMAT_INDICATOR,
            byte(
                self.payload_format_indicator
                    .map(|f| f == PayloadFormat::Utf8),
            ),
        ) & one(
            PropertyId::REQUEST_PROBLEM_INFORMATION,
            byte(self.request_problem_information),
        ) & one(
            PropertyId::REQUEST_RESPONSE_INFORMATION,
            byte(self.request_response_information),
        ) & one(PropertyId::RETAIN_AVAILABLE, byte(self.retain_available))
            & one(
                PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE,
                byte(self.wildcard_subscription_available),
            )
            & one(
                PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                byte(self.subscription_identifier_available),
            )
            & one(
                PropertyId::SHARED_SUBSCRIPTION_AVAILABLE,
                byte(self.shared_subscription_available),
            )
            & one(
                PropertyId::MAXIMUM_QOS,
                match self.maximum_qos {
                    Some(_) => 0,
                    None => 2,
                },
            );
        (words != 0) | (smalls != 0) | (bytes & 2 == 0)
    }

    /// Length of the property items for `ctx`, the block's length prefix not included, and the
    /// check that every property set may appear in `ctx` and has a value in range.
    ///
    /// Inlined where `ctx` is a constant, [`is_allowed`] is decided at compile time: the
    /// properties `ctx` may not carry become one test of all of them together (no branch per
    /// field), and only the ones it may carry are measured. If one it may not carry is set,
    /// [`Self::first_error`] names the first rule broken in identifier order, as a property by
    /// property check would.
    #[inline(always)]
    pub(crate) fn items_len(&self, ctx: PropertyContext) -> Result<Block, EncodeError> {
        let allowed = |id: u8| is_allowed(id, ctx);
        let refused = (!allowed(PropertyId::PAYLOAD_FORMAT_INDICATOR)
            & self.payload_format_indicator.is_some())
            | (!allowed(PropertyId::MESSAGE_EXPIRY_INTERVAL)
                & self.message_expiry_interval.is_some())
            | (!allowed(PropertyId::CONTENT_TYPE) & self.content_type.is_some())
            | (!allowed(PropertyId::RESPONSE_TOPIC) & self.response_topic.is_some())
            | (!allowed(PropertyId::CORRELATION_DATA) & self.correlation_data.is_some())
            | (!allowed(PropertyId::SUBSCRIPTION_IDENTIFIER)
                && !self.subscription_identifiers.is_empty())
            | (!allowed(PropertyId::SESSION_EXPIRY_INTERVAL)
                & self.session_expiry_interval.is_some())
            | (!allowed(PropertyId::ASSIGNED_CLIENT_IDENTIFIER)
                & self.assigned_client_identifier.is_some())
            | (!allowed(PropertyId::SERVER_KEEP_ALIVE) & self.server_keep_alive.is_some())
            | (!allowed(PropertyId::AUTHENTICATION_METHOD) & self.authentication_method.is_some())
            | (!allowed(PropertyId::AUTHENTICATION_DATA) & self.authentication_data.is_some())
            | (!allowed(PropertyId::REQUEST_PROBLEM_INFORMATION)
                & self.request_problem_information.is_some())
            | (!allowed(PropertyId::WILL_DELAY_INTERVAL) & self.will_delay_interval.is_some())
            | (!allowed(PropertyId::REQUEST_RESPONSE_INFORMATION)
                & self.request_response_information.is_some())
            | (!allowed(PropertyId::RESPONSE_INFORMATION) & self.response_information.is_some())
            | (!allowed(PropertyId::SERVER_REFERENCE) & self.server_reference.is_some())
            | (!allowed(PropertyId::REASON_STRING) & self.reason_string.is_some())
            | (!allowed(PropertyId::RECEIVE_MAXIMUM) & self.receive_maximum.is_some())
            | (!allowed(PropertyId::TOPIC_ALIAS_MAXIMUM) & self.topic_alias_maximum.is_some())
            | (!allowed(PropertyId::TOPIC_ALIAS) & self.topic_alias.is_some())
            | (!allowed(PropertyId::MAXIMUM_QOS) & self.maximum_qos.is_some())
            | (!allowed(PropertyId::RETAIN_AVAILABLE) & self.retain_available.is_some())
            | (!allowed(PropertyId::USER_PROPERTY) && !self.user_properties.is_empty())
            | (!allowed(PropertyId::MAXIMUM_PACKET_SIZE) & self.maximum_packet_size.is_some())
            | (!allowed(PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE)
                & self.wildcard_subscription_available.is_some())
            | (!allowed(PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE)
                & self.subscription_identifier_available.is_some())
            | (!allowed(PropertyId::SHARED_SUBSCRIPTION_AVAILABLE)
                & self.shared_subscription_available.is_some());
        if refused {
            return Err(self.first_error(ctx));
        }
        self.measure::<false>(ctx)
    }

    /// [`Self::items_len`] for a `ctx` that may carry few properties (SUBSCRIBE: the two
    /// lists), where the properties it may not carry are many: those are tested by
    /// [`Self::any_scalar_set`], fewer instructions than the test of each `is_some()` in
    /// [`Self::items_len`] for that many (and more where `ctx` may carry many, as CONNECT
    /// may). The same result.
    #[inline(always)]
    pub(crate) fn items_len_few(&self, ctx: PropertyContext) -> Result<Block, EncodeError> {
        let allowed = |id: u8| is_allowed(id, ctx);
        // The properties that are not lists, tested together; the lists (read to tell, if
        // decoded) only where `ctx` may not carry them.
        let refused = self.any_scalar_set(|id| !allowed(id))
            | (!allowed(PropertyId::SUBSCRIPTION_IDENTIFIER)
                && !self.subscription_identifiers.is_empty())
            | (!allowed(PropertyId::USER_PROPERTY) && !self.user_properties.is_empty());
        if refused {
            return Err(self.first_error(ctx));
        }
        self.measure::<false>(ctx)
    }

    /// The length of the property items for `ctx` and the checks of their values, in
    /// identifier order. With `CHECKED`, every property set is looked at and checked against
    /// `ctx` before its value (the property-by-property check, which names the first rule
    /// broken); without, only the properties `ctx` may carry are looked at (decided at compile
    /// time where `ctx` is a constant), the caller having refused the others.
    #[inline(always)]
    fn measure<const CHECKED: bool>(&self, ctx: PropertyContext) -> Result<Block, EncodeError> {
        let packet = ctx.packet();
        let look = |id: u8| CHECKED || is_allowed(id, ctx);
        let check = |id: u8| -> Result<(), EncodeError> {
            if CHECKED && !is_allowed(id, ctx) {
                Err(EncodeError::PropertyNotAllowed { id, packet })
            } else {
                Ok(())
            }
        };
        // Each item is its one-byte identifier and its value. Saturating sums: a total anywhere
        // near `usize::MAX` is far beyond the largest packet and refused as such.
        let item = |n: usize, value_len: usize| n.saturating_add(value_len).saturating_add(1);
        let mut n = 0usize;
        if look(PropertyId::PAYLOAD_FORMAT_INDICATOR) && self.payload_format_indicator.is_some() {
            check(PropertyId::PAYLOAD_FORMAT_INDICATOR)?;
            n = item(n, 1);
        }
        if look(PropertyId::MESSAGE_EXPIRY_INTERVAL) && self.message_expiry_interval.is_some() {
            check(PropertyId::MESSAGE_EXPIRY_INTERVAL)?;
            n = item(n, 4);
        }
        if let (true, Some(v)) = (look(PropertyId::CONTENT_TYPE), self.content_type) {
            check(PropertyId::CONTENT_TYPE)?;
            n = item(n, str_len(v)?);
        }
        if let (true, Some(v)) = (look(PropertyId::RESPONSE_TOPIC), self.response_topic) {
            check(PropertyId::RESPONSE_TOPIC)?;
            if v.is_empty() {
                return Err(EncodeError::InvalidValue);
            }
            n = item(n, str_len(v.as_str())?);
        }
        if let (true, Some(v)) = (look(PropertyId::CORRELATION_DATA), self.correlation_data) {
            check(PropertyId::CORRELATION_DATA)?;
            n = item(n, binary_len(v)?);
        }
        if look(PropertyId::SUBSCRIPTION_IDENTIFIER) {
            let mut count = 0usize;
            for_items!(self.subscription_identifiers, |ids| {
                for id in ids {
                    check(PropertyId::SUBSCRIPTION_IDENTIFIER)?;
                    if id == 0 {
                        return Err(EncodeError::InvalidValue);
                    }
                    n = item(n, varint_field_len(id)?);
                    count = count.saturating_add(1);
                }
            });
            if count > 1 && ctx != PropertyContext::Packet(PacketType::Publish) {
                return Err(EncodeError::InvalidValue);
            }
        }
        if look(PropertyId::SESSION_EXPIRY_INTERVAL) && self.session_expiry_interval.is_some() {
            check(PropertyId::SESSION_EXPIRY_INTERVAL)?;
            n = item(n, 4);
        }
        if let (true, Some(v)) = (
            look(PropertyId::ASSIGNED_CLIENT_IDENTIFIER),
            self.assigned_client_identifier,
        ) {
            check(PropertyId::ASSIGNED_CLIENT_IDENTIFIER)?;
            n = item(n, str_len(v)?);
        }
        if look(PropertyId::SERVER_KEEP_ALIVE) && self.server_keep_alive.is_some() {
            check(PropertyId::SERVER_KEEP_ALIVE)?;
            n = item(n, 2);
        }
        if let (true, Some(v)) = (
            look(PropertyId::AUTHENTICATION_METHOD),
            self.authentication_method,
        ) {
            check(PropertyId::AUTHENTICATION_METHOD)?;
            n = item(n, str_len(v)?);
        }
        if let (true, Some(v)) = (
            look(PropertyId::AUTHENTICATION_DATA),
            self.authentication_data,
        ) {
            check(PropertyId::AUTHENTICATION_DATA)?;
            n = item(n, binary_len(v)?);
        }
        if look(PropertyId::REQUEST_PROBLEM_INFORMATION)
            && self.request_problem_information.is_some()
        {
            check(PropertyId::REQUEST_PROBLEM_INFORMATION)?;
            n = item(n, 1);
        }
        if look(PropertyId::WILL_DELAY_INTERVAL) && self.will_delay_interval.is_some() {
            check(PropertyId::WILL_DELAY_INTERVAL)?;
            n = item(n, 4);
        }
        if look(PropertyId::REQUEST_RESPONSE_INFORMATION)
            && self.request_response_information.is_some()
        {
            check(PropertyId::REQUEST_RESPONSE_INFORMATION)?;
            n = item(n, 1);
        }
        if let (true, Some(v)) = (
            look(PropertyId::RESPONSE_INFORMATION),
            self.response_information,
        ) {
            check(PropertyId::RESPONSE_INFORMATION)?;
            n = item(n, str_len(v)?);
        }
        if let (true, Some(v)) = (look(PropertyId::SERVER_REFERENCE), self.server_reference) {
            check(PropertyId::SERVER_REFERENCE)?;
            n = item(n, str_len(v)?);
        }
        if let (true, Some(v)) = (look(PropertyId::REASON_STRING), self.reason_string) {
            check(PropertyId::REASON_STRING)?;
            n = item(n, str_len(v)?);
        }
        if look(PropertyId::RECEIVE_MAXIMUM) && self.receive_maximum.is_some() {
            check(PropertyId::RECEIVE_MAXIMUM)?;
            n = item(n, 2);
        }
        if look(PropertyId::TOPIC_ALIAS_MAXIMUM) && self.topic_alias_maximum.is_some() {
            check(PropertyId::TOPIC_ALIAS_MAXIMUM)?;
            n = item(n, 2);
        }
        if look(PropertyId::TOPIC_ALIAS) && self.topic_alias.is_some() {
            check(PropertyId::TOPIC_ALIAS)?;
            n = item(n, 2);
        }
        if let (true, Some(v)) = (look(PropertyId::MAXIMUM_QOS), self.maximum_qos) {
            check(PropertyId::MAXIMUM_QOS)?;
            if v == QoS::ExactlyOnce {
                return Err(EncodeError::InvalidValue);
            }
            n = item(n, 1);
        }
        if look(PropertyId::RETAIN_AVAILABLE) && self.retain_available.is_some() {
            check(PropertyId::RETAIN_AVAILABLE)?;
            n = item(n, 1);
        }
        if look(PropertyId::USER_PROPERTY) {
            for_items!(self.user_properties, |users| {
                for (k, v) in users {
                    check(PropertyId::USER_PROPERTY)?;
                    n = item(n, str_len(k)?.saturating_add(str_len(v)?));
                }
            });
        }
        if look(PropertyId::MAXIMUM_PACKET_SIZE) && self.maximum_packet_size.is_some() {
            check(PropertyId::MAXIMUM_PACKET_SIZE)?;
            n = item(n, 4);
        }
        if look(PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE)
            && self.wildcard_subscription_available.is_some()
        {
            check(PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE)?;
            n = item(n, 1);
        }
        if look(PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE)
            && self.subscription_identifier_available.is_some()
        {
            check(PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE)?;
            n = item(n, 1);
        }
        if look(PropertyId::SHARED_SUBSCRIPTION_AVAILABLE)
            && self.shared_subscription_available.is_some()
        {
            check(PropertyId::SHARED_SUBSCRIPTION_AVAILABLE)?;
            n = item(n, 1);
        }
        Ok(Block { len: n })
    }

    /// The error of a property block that sets a property `ctx` may not carry: the first rule
    /// broken, checking property by property in identifier order.
    #[cold]
    #[inline(never)]
    fn first_error(&self, ctx: PropertyContext) -> EncodeError {
        match self.items_len_checked(ctx) {
            Err(e) => e,
            // Unreachable: `items_len` found a property `ctx` may not carry.
            Ok(_) => EncodeError::InvalidValue,
        }
    }

    /// [`Self::items_len`] property by property, each checked against `ctx` before its value.
    fn items_len_checked(&self, ctx: PropertyContext) -> Result<Block, EncodeError> {
        self.measure::<true>(ctx)
    }

    /// Write the property block (length prefix included) that [`Self::items_len`] measured and
    /// checked for `ctx`: only the properties `ctx` may carry can be set, so only those are
    /// looked at (decided at compile time where `ctx` is a constant).
    #[inline(always)]
    pub(crate) fn write_block(&self, block: Block, ctx: PropertyContext, w: &mut Writer<'_>) {
        w.varint(u32::try_from(block.len).unwrap_or(u32::MAX));
        if block.is_empty() {
            return;
        }
        let allowed = |id: u8| is_allowed(id, ctx);
        if let (true, Some(v)) = (
            allowed(PropertyId::PAYLOAD_FORMAT_INDICATOR),
            self.payload_format_indicator,
        ) {
            let v = match v {
                PayloadFormat::Unspecified => 0,
                PayloadFormat::Utf8 => 1,
            };
            w.array([PropertyId::PAYLOAD_FORMAT_INDICATOR, v]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::MESSAGE_EXPIRY_INTERVAL),
            self.message_expiry_interval,
        ) {
            let [a, b, c, d] = v.to_be_bytes();
            w.array([PropertyId::MESSAGE_EXPIRY_INTERVAL, a, b, c, d]);
        }
        if let (true, Some(v)) = (allowed(PropertyId::CONTENT_TYPE), self.content_type) {
            w.u8(PropertyId::CONTENT_TYPE);
            w.str(v);
        }
        if let (true, Some(v)) = (allowed(PropertyId::RESPONSE_TOPIC), self.response_topic) {
            w.u8(PropertyId::RESPONSE_TOPIC);
            w.str(v.as_str());
        }
        if let (true, Some(v)) = (allowed(PropertyId::CORRELATION_DATA), self.correlation_data) {
            w.u8(PropertyId::CORRELATION_DATA);
            w.binary(v);
        }
        if allowed(PropertyId::SUBSCRIPTION_IDENTIFIER) {
            for_items!(self.subscription_identifiers, |ids| {
                for v in ids {
                    w.u8(PropertyId::SUBSCRIPTION_IDENTIFIER);
                    w.varint(v);
                }
            });
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::SESSION_EXPIRY_INTERVAL),
            self.session_expiry_interval,
        ) {
            let [a, b, c, d] = v.to_be_bytes();
            w.array([PropertyId::SESSION_EXPIRY_INTERVAL, a, b, c, d]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::ASSIGNED_CLIENT_IDENTIFIER),
            self.assigned_client_identifier,
        ) {
            w.u8(PropertyId::ASSIGNED_CLIENT_IDENTIFIER);
            w.str(v);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::SERVER_KEEP_ALIVE),
            self.server_keep_alive,
        ) {
            let [a, b] = v.to_be_bytes();
            w.array([PropertyId::SERVER_KEEP_ALIVE, a, b]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::AUTHENTICATION_METHOD),
            self.authentication_method,
        ) {
            w.u8(PropertyId::AUTHENTICATION_METHOD);
            w.str(v);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::AUTHENTICATION_DATA),
            self.authentication_data,
        ) {
            w.u8(PropertyId::AUTHENTICATION_DATA);
            w.binary(v);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::REQUEST_PROBLEM_INFORMATION),
            self.request_problem_information,
        ) {
            w.array([PropertyId::REQUEST_PROBLEM_INFORMATION, u8::from(v)]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::WILL_DELAY_INTERVAL),
            self.will_delay_interval,
        ) {
            let [a, b, c, d] = v.to_be_bytes();
            w.array([PropertyId::WILL_DELAY_INTERVAL, a, b, c, d]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::REQUEST_RESPONSE_INFORMATION),
            self.request_response_information,
        ) {
            w.array([PropertyId::REQUEST_RESPONSE_INFORMATION, u8::from(v)]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::RESPONSE_INFORMATION),
            self.response_information,
        ) {
            w.u8(PropertyId::RESPONSE_INFORMATION);
            w.str(v);
        }
        if let (true, Some(v)) = (allowed(PropertyId::SERVER_REFERENCE), self.server_reference) {
            w.u8(PropertyId::SERVER_REFERENCE);
            w.str(v);
        }
        if let (true, Some(v)) = (allowed(PropertyId::REASON_STRING), self.reason_string) {
            w.u8(PropertyId::REASON_STRING);
            w.str(v);
        }
        if let (true, Some(v)) = (allowed(PropertyId::RECEIVE_MAXIMUM), self.receive_maximum) {
            let [a, b] = v.get().to_be_bytes();
            w.array([PropertyId::RECEIVE_MAXIMUM, a, b]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::TOPIC_ALIAS_MAXIMUM),
            self.topic_alias_maximum,
        ) {
            let [a, b] = v.to_be_bytes();
            w.array([PropertyId::TOPIC_ALIAS_MAXIMUM, a, b]);
        }
        if let (true, Some(v)) = (allowed(PropertyId::TOPIC_ALIAS), self.topic_alias) {
            let [a, b] = v.get().to_be_bytes();
            w.array([PropertyId::TOPIC_ALIAS, a, b]);
        }
        if let (true, Some(v)) = (allowed(PropertyId::MAXIMUM_QOS), self.maximum_qos) {
            w.array([PropertyId::MAXIMUM_QOS, v.bits()]);
        }
        if let (true, Some(v)) = (allowed(PropertyId::RETAIN_AVAILABLE), self.retain_available) {
            w.array([PropertyId::RETAIN_AVAILABLE, u8::from(v)]);
        }
        if allowed(PropertyId::USER_PROPERTY) {
            for_items!(self.user_properties, |users| {
                for (k, v) in users {
                    w.u8(PropertyId::USER_PROPERTY);
                    w.str(k);
                    w.str(v);
                }
            });
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::MAXIMUM_PACKET_SIZE),
            self.maximum_packet_size,
        ) {
            let [a, b, c, d] = v.get().to_be_bytes();
            w.array([PropertyId::MAXIMUM_PACKET_SIZE, a, b, c, d]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE),
            self.wildcard_subscription_available,
        ) {
            w.array([PropertyId::WILDCARD_SUBSCRIPTION_AVAILABLE, u8::from(v)]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE),
            self.subscription_identifier_available,
        ) {
            w.array([PropertyId::SUBSCRIPTION_IDENTIFIER_AVAILABLE, u8::from(v)]);
        }
        if let (true, Some(v)) = (
            allowed(PropertyId::SHARED_SUBSCRIPTION_AVAILABLE),
            self.shared_subscription_available,
        ) {
            w.array([PropertyId::SHARED_SUBSCRIPTION_AVAILABLE, u8::from(v)]);
        }
    }
}

/// A property block as [`Properties::items_len`] measured and checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// Bytes of the items, the block's length prefix not included: 0 exactly when no property
    /// is set (every property takes at least two bytes).
    pub(crate) len: usize,
}

impl Block {
    /// No properties: a block of one zero byte.
    pub(crate) const EMPTY: Block = Block { len: 0 };

    /// Whether no property is present.
    pub(crate) const fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// For the tests of many properties at once ([`Properties::surely_empty`],
/// [`Properties::any_scalar_set`]): the pointer of an `Option<&str>` / `Option<&[u8]>`, 0
/// exactly when `None` (a reference is never null, even to an empty string).
#[inline(always)]
fn ptr<T: ?Sized>(o: Option<&T>) -> usize {
    match o {
        Some(r) => core::ptr::from_ref(r).cast::<u8>().addr(),
        None => 0,
    }
}

/// For the tests of many properties at once: 0 exactly when `None`.
#[inline(always)]
fn tag<T>(o: &Option<T>) -> u32 {
    u32::from(o.is_some())
}

/// For the tests of many properties at once: 2 when `None`, a value with bit 1 clear when set
/// (the byte the `Option<bool>` itself holds).
#[inline(always)]
fn byte(o: Option<bool>) -> u8 {
    match o {
        Some(false) => 0,
        Some(true) => 1,
        None => 2,
    }
}

/// Length of a property block, its Variable Byte Integer prefix included; a block longer than a Variable Byte Integer can say is
/// [`EncodeError::PacketTooLarge`].
#[inline]
pub(crate) fn block_len(block: Block) -> Result<usize, EncodeError> {
    let len = u32::try_from(block.len)
        .ok()
        .filter(|&l| l <= VARINT_MAX)
        .ok_or(EncodeError::PacketTooLarge)?;
    Ok(block.len.saturating_add(varint_len(len)))
}

/// Read properties from a validated block until one with `want` is found; return its value bytes.
/// (Every property identifier defined is below 128: in a validated block, each takes one byte.)
fn next_property<'a>(rest: &mut &'a [u8], want: u8) -> Option<&'a [u8]> {
    while let Some((&id, after_id)) = rest.split_first() {
        *rest = skip_value(after_id, id).ok()?;
        if id == want {
            return Some(after_id);
        }
    }
    None
}

impl crate::list::sealed::Sealed for UserProperty<'_> {}
impl<'a> crate::list::ListItem<'a> for UserProperty<'a> {
    fn next_from_wire(rest: &mut &'a [u8]) -> Option<Self> {
        let value = next_property(rest, PropertyId::USER_PROPERTY)?;
        let (value, k) = utf8_prevalidated(value)?;
        let (_, v) = utf8_prevalidated(value)?;
        Some((k, v))
    }

    fn next_from_text(rest: &mut &'a str) -> Option<Self> {
        loop {
            let (&id, after_id) = rest.as_bytes().split_first()?;
            if id == PropertyId::USER_PROPERTY {
                let (k, after) = next_text_field(rest.get(1..)?)?;
                let (v, after) = next_text_field(after)?;
                *rest = after;
                return Some((k, v));
            }
            // Another property between two user properties: skip it (the byte after any
            // property is an identifier, below 128, so a character boundary).
            let after_value = skip_value(after_id, id).ok()?;
            *rest = rest.get(rest.len().checked_sub(after_value.len())?..)?;
        }
    }
}

impl crate::list::sealed::Sealed for u32 {}
impl<'a> crate::list::ListItem<'a> for u32 {
    fn next_from_wire(rest: &mut &'a [u8]) -> Option<Self> {
        let value = next_property(rest, PropertyId::SUBSCRIPTION_IDENTIFIER)?;
        varint(value).ok().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Property blocks of 127 bytes and less take a one-byte length; longer ones are moved right
    /// after being written to make room for a longer length. Both must round-trip, in a buffer of
    /// exactly the encoded length.
    #[test]
    fn property_blocks_around_the_one_byte_length_limit() {
        use crate::{DecodeOptions, Packet, ProtocolVersion, Publish, QosPid, Status, decode};
        let long = [b't'; 20_000];
        let long = core::str::from_utf8(&long).unwrap();
        for content_len in [0usize, 1, 120, 123, 124, 125, 200, 16_380, 16_381, 20_000] {
            let users = [("k", "v"), ("key", "value")];
            let p = Packet::Publish(Publish {
                dup: false,
                qos_pid: QosPid::AtMostOnce,
                retain: false,
                topic: TopicName::new("a/b").unwrap(),
                properties: Properties {
                    content_type: Some(&long[..content_len]),
                    user_properties: UserProperties::new(&users),
                    ..Properties::default()
                },
                payload: b"payload",
            });
            let len = p.encoded_len(ProtocolVersion::V5).unwrap();
            let mut storage = [0u8; 20_100];
            let buf = &mut storage[..len];
            assert_eq!(p.encode(ProtocolVersion::V5, buf), Ok(len));
            match decode(buf, DecodeOptions::new(ProtocolVersion::V5)) {
                Ok(Status::Complete(d)) => {
                    assert_eq!(d.consumed, len);
                    assert_eq!(d.packet, p, "content type of {content_len} bytes");
                }
                other => panic!("{content_len}: {other:?}"),
            }
        }
    }
    /// `items_len_few` (the properties a context may not carry tested together by
    /// `any_scalar_set`) and `items_len` give the same result in every context, for every
    /// property set alone (each one-byte property at each of its values), every pair, and
    /// none; decoded lists too.
    #[test]
    fn items_len_few_agrees_with_items_len() {
        use core::num::{NonZeroU16, NonZeroU32};
        static USERS: [(&str, &str); 1] = [("k", "v")];
        type Set = fn(&mut Properties<'static>);
        let settings: &[Set] = &[
            |_| {},
            |p| p.payload_format_indicator = Some(PayloadFormat::Unspecified),
            |p| p.payload_format_indicator = Some(PayloadFormat::Utf8),
            |p| p.message_expiry_interval = Some(0),
            |p| p.content_type = Some(""),
            |p| p.response_topic = Some(TopicName::new("r").unwrap()),
            |p| p.correlation_data = Some(b""),
            |p| p.subscription_identifiers = SubscriptionIdentifiers::new(&[5]),
            |p| p.subscription_identifiers = SubscriptionIdentifiers::new(&[0]),
            |p| p.session_expiry_interval = Some(0),
            |p| p.assigned_client_identifier = Some(""),
            |p| p.server_keep_alive = Some(0),
            |p| p.authentication_method = Some(""),
            |p| p.authentication_data = Some(b""),
            |p| p.request_problem_information = Some(false),
            |p| p.request_problem_information = Some(true),
            |p| p.will_delay_interval = Some(0),
            |p| p.request_response_information = Some(false),
            |p| p.request_response_information = Some(true),
            |p| p.response_information = Some(""),
            |p| p.server_reference = Some(""),
            |p| p.reason_string = Some(""),
            |p| p.receive_maximum = NonZeroU16::new(1),
            |p| p.topic_alias_maximum = Some(0),
            |p| p.topic_alias = NonZeroU16::new(1),
            |p| p.maximum_qos = Some(QoS::AtMostOnce),
            |p| p.maximum_qos = Some(QoS::AtLeastOnce),
            |p| p.maximum_qos = Some(QoS::ExactlyOnce),
            |p| p.retain_available = Some(false),
            |p| p.retain_available = Some(true),
            |p| p.user_properties = UserProperties::new(&USERS),
            |p| p.maximum_packet_size = NonZeroU32::new(1),
            |p| p.wildcard_subscription_available = Some(false),
            |p| p.wildcard_subscription_available = Some(true),
            |p| p.subscription_identifier_available = Some(false),
            |p| p.subscription_identifier_available = Some(true),
            |p| p.shared_subscription_available = Some(false),
            |p| p.shared_subscription_available = Some(true),
        ];
        let mut contexts = std::vec![PropertyContext::Will];
        for nibble in 1..=15 {
            contexts.push(PropertyContext::Packet(
                PacketType::from_nibble(nibble).unwrap(),
            ));
        }
        // Decoded: a subscription identifier and a user property, and an empty block.
        let (_, decoded) =
            parse_properties(&[9, 0x0B, 5, 0x26, 0, 1, b'k', 0, 1, b'v'][..], PUB).unwrap();
        let (_, decoded_none) = parse_properties(&[0][..], PUB).unwrap();
        let mut compared = 0;
        for base in [Properties::default(), decoded, decoded_none] {
            for first in settings {
                for second in settings {
                    let mut p = base;
                    first(&mut p);
                    second(&mut p);
                    for &ctx in &contexts {
                        assert_eq!(p.items_len_few(ctx), p.items_len(ctx), "{ctx:?} {p:?}");
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 60_000, "{compared}");
    }

    use crate::data::Writer;

    const PUB: PropertyContext = PropertyContext::Packet(PacketType::Publish);

    #[test]
    fn block_with_repeats_decodes_lazily() {
        // user(a=b), sub-id 5, user(c=d), sub-id 7, content-type "t"
        let bytes = [
            0x16, 0x26, 0, 1, b'a', 0, 1, b'b', 0x0B, 5, 0x26, 0, 1, b'c', 0, 1, b'd', 0x0B, 7,
            0x03, 0, 1, b't',
        ];
        let (rest, p) = parse_properties(&bytes, PUB).unwrap();
        assert!(rest.is_empty());
        let users: [(&str, &str); 2] = [("a", "b"), ("c", "d")];
        assert!(p.user_properties.iter().eq(users.iter().copied()));
        assert!(p.subscription_identifiers.iter().eq([5u32, 7]));
        assert_eq!(p.content_type, Some("t"));
        let mut buf = [0u8; 64];
        let items = p.items_len(PUB).unwrap();
        let n = block_len(items).unwrap();
        let mut w = Writer::new(&mut buf[..n]);
        p.write_block(items, PUB, &mut w);
        w.finish().unwrap();
        assert_eq!(buf[0] as usize, items.len);
        let (_, again) = parse_properties(&buf[..n], PUB).unwrap();
        assert_eq!(again, p);
    }

    /// User properties are read back from the span of the block that holds them, as text when
    /// that span is valid UTF-8 and as wire bytes otherwise; both give the pairs in order,
    /// skipping the properties between them.
    #[test]
    fn user_properties_read_back_from_text_or_wire() {
        let long = [b'v'; 200];
        let long = core::str::from_utf8(&long).unwrap();
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<u32>);
        let cases: [Case<'_>; 6] = [
            (&[("a", "b")], None),
            (&[("a", "b"), ("c", "d")], Some(7)),
            // 0xFFFF_FFFF between two pairs: the span is not UTF-8.
            (&[("a", "b"), ("c", "d")], Some(u32::MAX)),
            (&[("clé", "valeur €"), ("k", "😀")], Some(0x0E10)),
            // A 200-byte value: its length's low byte (0xC8) is not UTF-8 on its own.
            (&[("k", long), ("k2", "v2")], None),
            (&[("", ""), ("", long)], Some(1)),
        ];
        for (users, expiry) in cases {
            // The first pair, then Message Expiry Interval, then the others.
            let mut block = [0u8; 600];
            let mut n = 0;
            let mut put = |bytes: &[u8]| {
                block[n..n + bytes.len()].copy_from_slice(bytes);
                n += bytes.len();
            };
            for (i, (k, v)) in users.iter().enumerate() {
                put(&[PropertyId::USER_PROPERTY]);
                put(&(k.len() as u16).to_be_bytes());
                put(k.as_bytes());
                put(&(v.len() as u16).to_be_bytes());
                put(v.as_bytes());
                if i == 0 {
                    if let Some(e) = expiry {
                        put(&[PropertyId::MESSAGE_EXPIRY_INTERVAL]);
                        put(&e.to_be_bytes());
                    }
                }
            }
            put(&[PropertyId::CONTENT_TYPE, 0, 1, b't']);
            let mut bytes = [0u8; 602];
            let len = varint_len(n as u32);
            let mut w = Writer::new(&mut bytes[..len]);
            w.varint(n as u32);
            w.finish().unwrap();
            bytes[len..len + n].copy_from_slice(&block[..n]);
            let (rest, p) = parse_properties(&bytes[..len + n], PUB).unwrap();
            assert!(rest.is_empty());
            assert!(
                p.user_properties.iter().eq(users.iter().copied()),
                "{users:?}"
            );
            assert_eq!(p.user_properties.len(), users.len());
            assert_eq!(p.message_expiry_interval, expiry);
            assert_eq!(p.content_type, Some("t"));
        }
    }

    #[test]
    fn rules() {
        let sub = PropertyContext::Packet(PacketType::Subscribe);
        let e =
            |bytes: &[u8], ctx| crate::data::finish_err(parse_properties(bytes, ctx).unwrap_err());
        assert_eq!(e(&[3, 0x0B, 1], PUB), DecodeError::UnexpectedEnd);
        assert_eq!(
            e(&[4, 0x0B, 1, 0x0B, 2], sub),
            DecodeError::DuplicateProperty(0x0B)
        );
        assert_eq!(
            e(&[2, 0x0B, 0], sub),
            DecodeError::InvalidPropertyValue(0x0B)
        );
        assert_eq!(e(&[2, 0x04, 0], PUB), DecodeError::UnknownProperty(4));
        assert_eq!(
            e(&[5, 0x11, 0, 0, 0, 1], PUB),
            DecodeError::PropertyNotAllowed {
                id: 0x11,
                packet: PacketType::Publish
            }
        );
        assert_eq!(e(&[2, 0x01, 2], PUB), DecodeError::InvalidPropertyValue(1));
        assert_eq!(
            e(&[3, 0x23, 0, 0], PUB),
            DecodeError::InvalidPropertyValue(0x23)
        );
        assert_eq!(
            e(&[4, 0x08, 0, 1, b'#'], PUB),
            DecodeError::InvalidPropertyValue(0x08)
        );
        assert_eq!(e(&[4, 0x02, 0, 0, 0], PUB), DecodeError::UnexpectedEnd);
        assert_eq!(e(&[3, 0x80, 0x00, 0], PUB), DecodeError::VarintNotMinimal);
        assert_eq!(
            e(&[2, 0x18, 0], PUB),
            DecodeError::PropertyNotAllowed {
                id: 0x18,
                packet: PacketType::Publish
            }
        );
        assert!(parse_properties(&[5, 0x18, 0, 0, 0, 9], PropertyContext::Will).is_ok());
    }

    /// The fast `items_len` (one test of the properties a packet may not carry, then only the
    /// ones it may) agrees with the property-by-property check on the length and on the first
    /// rule broken, for every pair of settings (valid or not) in every context.
    #[test]
    fn items_len_agrees_with_the_property_by_property_check() {
        use core::num::{NonZeroU16, NonZeroU32};
        static LONG: [u8; 65_536] = [b'x'; 65_536];
        let long = core::str::from_utf8(&LONG).unwrap();
        static USERS: [(&str, &str); 2] = [("k", "v"), ("key", "value")];
        type Set = fn(&mut Properties<'static>, &'static str);
        let settings: &[Set] = &[
            |p, _| p.payload_format_indicator = Some(PayloadFormat::Utf8),
            |p, _| p.message_expiry_interval = Some(7),
            |p, _| p.content_type = Some("text/plain"),
            |p, l| p.content_type = Some(l),
            |p, _| p.response_topic = Some(TopicName::new("r/t").unwrap()),
            |p, _| p.response_topic = Some(TopicName::alias_only()),
            |p, _| p.correlation_data = Some(b"corr"),
            |p, l| p.correlation_data = Some(l.as_bytes()),
            |p, _| p.subscription_identifiers = SubscriptionIdentifiers::new(&[5]),
            |p, _| p.subscription_identifiers = SubscriptionIdentifiers::new(&[5, 6]),
            |p, _| p.subscription_identifiers = SubscriptionIdentifiers::new(&[0]),
            |p, _| p.subscription_identifiers = SubscriptionIdentifiers::new(&[268_435_456]),
            |p, _| p.session_expiry_interval = Some(60),
            |p, _| p.assigned_client_identifier = Some("id"),
            |p, _| p.server_keep_alive = Some(30),
            |p, _| p.authentication_method = Some("m"),
            |p, l| p.authentication_method = Some(l),
            |p, _| p.authentication_data = Some(b"d"),
            |p, _| p.request_problem_information = Some(true),
            |p, _| p.will_delay_interval = Some(5),
            |p, _| p.request_response_information = Some(false),
            |p, _| p.response_information = Some("ri"),
            |p, _| p.server_reference = Some("sr"),
            |p, _| p.reason_string = Some("why"),
            |p, l| p.reason_string = Some(l),
            |p, _| p.receive_maximum = NonZeroU16::new(9),
            |p, _| p.topic_alias_maximum = Some(4),
            |p, _| p.topic_alias = NonZeroU16::new(2),
            |p, _| p.maximum_qos = Some(QoS::AtLeastOnce),
            |p, _| p.maximum_qos = Some(QoS::ExactlyOnce),
            |p, _| p.retain_available = Some(true),
            |p, _| p.user_properties = UserProperties::new(&USERS),
            |p, _| p.maximum_packet_size = NonZeroU32::new(1024),
            |p, _| p.wildcard_subscription_available = Some(false),
            |p, _| p.subscription_identifier_available = Some(true),
            |p, _| p.shared_subscription_available = Some(false),
        ];
        let mut contexts = [PropertyContext::Will; 16];
        for (slot, nibble) in contexts.iter_mut().zip(1..=15u8) {
            *slot = PropertyContext::Packet(PacketType::from_nibble(nibble).unwrap());
        }
        let mut checked = 0;
        for (i, a) in settings.iter().enumerate() {
            for b in &settings[i..] {
                let mut p = NO_PROPERTIES;
                a(&mut p, long);
                b(&mut p, long);
                for ctx in contexts {
                    assert_eq!(
                        p.items_len(ctx),
                        p.items_len_checked(ctx),
                        "{p:?} in {ctx:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
        // And what the order means, on examples: a property SUBSCRIBE may not carry (0x03)
        // comes before a user property that is too long (0x26) ...
        let long_pair = [(long, "v")];
        let p = Properties {
            content_type: Some("t"),
            user_properties: UserProperties::new(&long_pair),
            ..NO_PROPERTIES
        };
        let sub = PropertyContext::Packet(PacketType::Subscribe);
        assert_eq!(
            p.items_len(sub),
            Err(EncodeError::PropertyNotAllowed {
                id: 0x03,
                packet: PacketType::Subscribe
            })
        );
        // ... and after it, one that may not carry (0x27) is reported second.
        let p = Properties {
            maximum_packet_size: NonZeroU32::new(1),
            user_properties: UserProperties::new(&long_pair),
            ..NO_PROPERTIES
        };
        assert_eq!(p.items_len(sub), Err(EncodeError::FieldTooLong));
    }

    #[test]
    fn encode_refuses_disallowed() {
        let p = Properties {
            session_expiry_interval: Some(1),
            ..NO_PROPERTIES
        };
        assert_eq!(
            p.items_len(PUB),
            Err(EncodeError::PropertyNotAllowed {
                id: 0x11,
                packet: PacketType::Publish
            })
        );
    }
}
