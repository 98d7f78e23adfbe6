//! SUBSCRIBE (§3.8): a list of topic filters with their subscription options.

use crate::data::{
    PacketId, QoS, Writer, copy_into, packet_id, put_field, put_varint, start_packet, str_len, u8_,
    utf8, utf8_prevalidated,
};
use crate::error::{DecodeError, EncodeError};
use crate::list::{List, for_items, next_text_field};
use crate::properties::{
    Block, Properties, PropertyContext, PropertyId, block_len, parse_properties,
};
use crate::topic::{SHARE_PREFIX, TopicFilter};
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// Retain Handling (5.0 §3.8.3.1): whether retained messages are sent when subscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe,
    /// 1: send them only if the subscription did not already exist.
    SendIfNew,
    /// 2: do not send retained messages.
    DoNotSend,
}

/// Subscription options (§3.8.3.1). In 3.1.1 only `qos` exists; the others must stay default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubscriptionOptions {
    /// Maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// 5.0 No Local: do not deliver the subscriber's own publishes back to it.
    pub no_local: bool,
    /// 5.0 Retain As Published: keep the RETAIN flag of forwarded messages.
    pub retain_as_published: bool,
    /// 5.0 Retain Handling.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with only a maximum QoS.
    pub const fn qos(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    /// Parse an options byte, refusing reserved bits, QoS 3 and Retain Handling 3.
    ///
    /// 5.0 sorts these into two classes: reserved bits are Malformed (`[MQTT-3.8.3-5]`), while
    /// Maximum QoS 3 and Retain Handling 3 are Protocol Errors (§3.8.3.1). In 3.1.1 the Retain
    /// Handling bits are reserved bits, and QoS 3 is malformed (`[MQTT-3-8.3-4]`).
    pub fn from_byte(b: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions);
        }
        if b & 0x03 == 3 {
            return Err(if version.is_v5() {
                DecodeError::SubscriptionOptionOutOfRange
            } else {
                DecodeError::InvalidQos
            });
        }
        if (b >> 4) & 0x03 == 3 {
            return Err(DecodeError::SubscriptionOptionOutOfRange);
        }
        Ok(Self::from_byte_unchecked(b))
    }

    /// Read an options byte already validated by [`SubscriptionOptions::from_byte`].
    pub(crate) fn from_byte_unchecked(b: u8) -> Self {
        SubscriptionOptions {
            qos: QoS::from_bits(b & 0x03).unwrap_or(QoS::AtMostOnce),
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling: match (b >> 4) & 0x03 {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            },
        }
    }

    /// [`Self::to_byte`] computed with one multiplication, for the SUBSCRIBE encode's loop:
    /// the four fields as the bytes of a `u32` (which the compiler can load at once, the four
    /// one-byte fields lying side by side), each moved to its bit in the top byte by one term
    /// of the multiplier. Exact: No Local (0 or 1) at bit 0 goes to bit 26, Retain As
    /// Published (0 or 1) at bit 8 to bit 27, the QoS (0 to 2) at bit 16 to bits 24-25, Retain
    /// Handling (0 to 2) at bit 24 to bits 28-29; the other products land at or above bit 32
    /// (dropped) or below bit 22 (never carrying into bit 24).
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) fn wire_byte(self) -> u8 {
        let rh = match self.retain_handling {
            RetainHandling::SendAtSubscribe => 0,
            RetainHandling::SendIfNew => 1,
            RetainHandling::DoNotSend => 2,
        };
        let fields = u32::from_le_bytes([
            u8::from(self.no_local),
            u8::from(self.retain_as_published),
            self.qos.bits(),
            rh,
        ]);
        const M: u32 = (1 << 26) | (1 << 19) | (1 << 8) | (1 << 4);
        (fields.wrapping_mul(M) >> 24) as u8
    }

    /// The options byte.
    pub const fn to_byte(self) -> u8 {
        let rh = match self.retain_handling {
            RetainHandling::SendAtSubscribe => 0,
            RetainHandling::SendIfNew => 1,
            RetainHandling::DoNotSend => 2,
        };
        self.qos.bits()
            | ((self.no_local as u8) << 2)
            | ((self.retain_as_published as u8) << 3)
            | (rh << 4)
    }
}

/// One topic filter and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscription<'a> {
    /// The topic filter (a `$share/...` filter in 5.0 is a shared subscription).
    pub filter: TopicFilter<'a>,
    /// The options.
    pub options: SubscriptionOptions,
}

/// A SUBSCRIBE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscribe<'a> {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties (Subscription Identifier, User Property).
    pub properties: Properties<'a>,
    /// The subscriptions, at least one, in order.
    pub subscriptions: List<'a, Subscription<'a>>,
}

pub(crate) fn parse(
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Subscribe<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let (i, packet_id) = packet_id(i)?;
    let (payload, properties) = if version.is_v5() {
        parse_properties(i, PropertyContext::Packet(PacketType::Subscribe))?
    } else {
        (i, Properties::default())
    };
    if payload.is_empty() {
        return Err(fail(DecodeError::EmptySubscribe));
    }
    // Fast path: when every filter is shorter than 128 bytes the whole payload is valid UTF-8
    // (length and options bytes are then ASCII). One UTF-8 check of the payload replaces one per
    // filter, here and each time the list is read. Anything unusual takes the exact path below,
    // which also names the error.
    if let Ok(text) = core::str::from_utf8(payload) {
        if subscriptions_valid(text, version) {
            return Ok(Subscribe {
                packet_id,
                properties,
                subscriptions: List::from_text(text),
            });
        }
    }
    let mut rest = payload;
    while !rest.is_empty() {
        let (r, filter) = utf8(rest)?;
        let filter = TopicFilter::new(filter).map_err(fail)?;
        let (r, options) = u8_(r)?;
        check_subscription(filter, options, version).map_err(fail)?;
        rest = r;
    }
    Ok(Subscribe {
        packet_id,
        properties,
        subscriptions: List::from_wire(payload),
    })
}

/// The rules on one subscription's options, and the 5.0 shared subscription rules.
fn check_subscription(
    filter: TopicFilter<'_>,
    options: u8,
    version: ProtocolVersion,
) -> Result<(), DecodeError> {
    let options = SubscriptionOptions::from_byte(options, version)?;
    // Only a filter starting with `$` can be a `$share/` one; most are not.
    if version.is_v5()
        && filter.as_str().starts_with('$')
        && filter.shared()?.is_some()
        && options.no_local
    {
        return Err(DecodeError::NoLocalOnSharedSubscription);
    }
    Ok(())
}

/// Whether every subscription in a payload that is valid UTF-8 as a whole is valid.
fn subscriptions_valid(mut text: &str, version: ProtocolVersion) -> bool {
    while !text.is_empty() {
        let Some((filter, after)) = next_text_field(text) else {
            return false;
        };
        let Some((&options, _)) = after.as_bytes().split_first() else {
            return false;
        };
        let Ok(filter) = TopicFilter::new(filter) else {
            return false;
        };
        if check_subscription(filter, options, version).is_err() {
            return false;
        }
        let Some(rest) = after.get(1..) else {
            return false;
        };
        text = rest;
    }
    true
}

/// The first byte of a SUBSCRIBE's fixed header.
const FIRST: u8 = ((PacketType::Subscribe as u8) << 4) | 0b0010;

impl Subscribe<'_> {
    /// [`crate::Packet::encode`] for a SUBSCRIBE: one function for each version, each taking
    /// the plain path (`encode_items`) for the caller's own subscriptions (a list
    /// built with [`List::new`]) and the general path for a decoded list. Called directly, it
    /// links no other packet's encoder and needs no [`crate::Packet`] on the stack.
    #[inline]
    pub fn encode(&self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !version.is_enabled() {
            return Err(EncodeError::NotEnabled);
        }
        if version.is_v5() {
            self.encode_v5(buf)
        } else {
            self.encode_v311(buf)
        }
    }

    #[inline(never)]
    fn encode_v5(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if cfg!(feature = "size") {
            return self.encode_general(ProtocolVersion::V5, buf);
        }
        match self.subscriptions.as_items() {
            Some(subs) => self.encode_items::<true>(subs, buf),
            None => self.encode_general(ProtocolVersion::V5, buf),
        }
    }

    #[inline(never)]
    fn encode_v311(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        // Size first: the plain path is a faster copy of the general one (the same bytes), and
        // the general one is linked anyway (for decoded lists and what the plain path leaves).
        if cfg!(feature = "size") {
            return self.encode_general(ProtocolVersion::V311, buf);
        }
        match self.subscriptions.as_items() {
            Some(subs) => self.encode_items::<false>(subs, buf),
            None => self.encode_general(ProtocolVersion::V311, buf),
        }
    }

    /// The general path: measured and checked by [`Self::body_len`], written by [`Self::write`]
    /// through a [`Writer`], compiled once for each version.
    #[inline(never)]
    fn encode_general(
        &self,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if version.is_v5() {
            self.encode_general_for(ProtocolVersion::V5, buf)
        } else {
            self.encode_general_for(ProtocolVersion::V311, buf)
        }
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn encode_general_for(
        &self,
        version: ProtocolVersion,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let (body, properties) = self.body_len(version)?;
        let mut w = start_packet(buf, FIRST, body)?;
        self.write(version, properties, &mut w);
        w.finish()
    }

    /// The plain path, for the caller's subscriptions `subs` (the packet's own list): the same
    /// checks and the same bytes as the general path, with one cheap pass over the filters to
    /// measure them (their lengths summed and or'ed together: a filter is over 65,535 bytes
    /// exactly when the or is; in 5.0 only a filter starting with `$share/` is looked at
    /// further) and one to write them by cutting the buffer rather than through a [`Writer`].
    /// A packet that breaks a rule on its subscriptions, and one of 16 KiB or more, take the
    /// general path, which names the first rule broken exactly as before.
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn encode_items<const V5: bool>(
        &self,
        subs: &[Subscription<'_>],
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let version = if V5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V311
        };
        // Fewer than 16,384 filters (more cannot fit in 16 KiB) keeps the sums below from
        // wrapping, even on 16-bit lengths' worth of 32-bit `usize`.
        if subs.is_empty() || subs.len() >= 0x4000 {
            return self.encode_general(version, buf);
        }
        // The packet identifier, and in 5.0 the property block.
        let mut properties = Block::EMPTY;
        let mut fixed = 2usize;
        if V5 {
            properties = self
                .properties
                .items_len_few(PropertyContext::Packet(PacketType::Subscribe))?;
            fixed = fixed.saturating_add(block_len(properties)?);
        }
        let mut longest = 0usize;
        let mut sum = 0usize;
        let mut refused = false;
        for sub in subs {
            let filter = sub.filter.as_str();
            longest |= filter.len();
            sum = sum.wrapping_add(filter.len());
            if V5 && filter.starts_with('$') && filter.starts_with(SHARE_PREFIX) {
                refused |= check_shared_for_v5(filter, sub.options.no_local).is_err();
            }
        }
        if longest > usize::from(u16::MAX) || refused {
            return self.encode_general(version, buf);
        }
        // Each filter's two-byte length and options byte. Cannot wrap: fewer than 16,384
        // filters of at most 65,535 bytes, and a property block of at most 268,435,459.
        let body = fixed
            .wrapping_add(sum)
            .wrapping_add(subs.len().wrapping_mul(3));
        let [id_hi, id_lo] = self.packet_id.get().to_be_bytes();
        let (total, written) = if body < 0x80 {
            let total = body.wrapping_add(2);
            let Some(out) = buf.get_mut(..total) else {
                return Err(EncodeError::BufferTooSmall { needed: total });
            };
            let start = [FIRST, body as u8, id_hi, id_lo];
            (
                total,
                self.write_items::<V5, 4>(out, start, properties, subs),
            )
        } else if body < 0x4000 {
            let total = body.wrapping_add(3);
            let Some(out) = buf.get_mut(..total) else {
                return Err(EncodeError::BufferTooSmall { needed: total });
            };
            let start = [
                FIRST,
                (body & 0x7F) as u8 | 0x80,
                (body >> 7) as u8,
                id_hi,
                id_lo,
            ];
            (
                total,
                self.write_items::<V5, 5>(out, start, properties, subs),
            )
        } else {
            return self.encode_general(version, buf);
        };
        // `None` only if the length above disagreed with the writes (never: the tests compare
        // the two paths), reported as `Writer::finish` reports it.
        match written {
            Some(()) => Ok(total),
            None => Err(EncodeError::InvalidValue),
        }
    }

    /// Write what [`Self::encode_items`] measured into `out`, cut to the packet's length,
    /// starting with `start` (the fixed header and the packet identifier).
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write_items<const V5: bool, const H: usize>(
        &self,
        out: &mut [u8],
        start: [u8; H],
        properties: Block,
        subs: &[Subscription<'_>],
    ) -> Option<()> {
        let (dst, mut rest) = out.split_first_chunk_mut::<H>()?;
        *dst = start;
        if V5 {
            if properties.is_empty() {
                let (dst, r) = rest.split_first_mut()?;
                *dst = 0;
                rest = r;
            } else {
                rest = self.write_properties(properties, rest)?;
            }
        }
        for sub in subs {
            let filter = sub.filter.as_str().as_bytes();
            // 3.1.1 has only the maximum QoS.
            let options = if V5 {
                sub.options.wire_byte()
            } else {
                sub.options.qos.bits()
            };
            let (len, r) = rest.split_first_chunk_mut::<2>()?;
            *len = (filter.len() as u16).to_be_bytes();
            let (dst, r) = r.split_at_mut_checked(filter.len())?;
            copy_into(dst, filter);
            let (dst, r) = r.split_first_mut()?;
            *dst = options;
            rest = r;
        }
        rest.is_empty().then_some(())
    }

    /// The property block [`Properties::items_len_few`] measured, at the front of `out`; the
    /// rest of `out` after it. What [`Properties::write_block`] writes for a SUBSCRIBE (which
    /// may carry only the subscription identifier and user properties, in that order), by
    /// cutting the buffer.
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write_properties<'b>(&self, properties: Block, out: &'b mut [u8]) -> Option<&'b mut [u8]> {
        let mut rest = put_varint(out, u32::try_from(properties.len).ok()?)?;
        for_items!(self.properties.subscription_identifiers, |ids| {
            for id in ids {
                let (dst, r) = rest.split_first_mut()?;
                *dst = PropertyId::SUBSCRIPTION_IDENTIFIER;
                rest = put_varint(r, id)?;
            }
        });
        for_items!(self.properties.user_properties, |users| {
            for (k, v) in users {
                let (dst, r) = rest.split_first_mut()?;
                *dst = PropertyId::USER_PROPERTY;
                rest = put_field(put_field(r, k.as_bytes())?, v.as_bytes())?;
            }
        });
        Some(rest)
    }

    /// The body length and the property items length (5.0), checking the packet against the
    /// rules the decoder enforces.
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<(usize, Block), EncodeError> {
        if self.subscriptions.is_empty() {
            return Err(EncodeError::InvalidValue);
        }
        let mut n: usize = 2;
        let mut properties = Block::EMPTY;
        if version.is_v5() {
            properties = self
                .properties
                .items_len_few(PropertyContext::Packet(PacketType::Subscribe))?;
            n = n.saturating_add(block_len(properties)?);
        }
        // The filter and its options byte. The filters' syntax was checked when each
        // `TopicFilter` was made.
        let sub_len = |n: usize, filter: &str| -> Result<usize, EncodeError> {
            Ok(n.saturating_add(str_len(filter)?).saturating_add(1))
        };
        if version.is_v5() {
            for_items!(self.subscriptions, |subs| {
                for sub in subs {
                    // Only a filter starting with `$` can be a shared one.
                    if sub.filter.as_str().starts_with('$') {
                        check_shared_for_v5(sub.filter.as_str(), sub.options.no_local)?;
                    }
                    n = sub_len(n, sub.filter.as_str())?;
                }
            });
        } else {
            for_items!(self.subscriptions, |subs| {
                for sub in subs {
                    n = sub_len(n, sub.filter.as_str())?;
                }
            });
        }
        Ok((n, properties))
    }

    /// Write the body [`Self::body_len`] measured.
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) fn write(&self, version: ProtocolVersion, properties: Block, w: &mut Writer<'_>) {
        w.u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write_block(
                properties,
                PropertyContext::Packet(PacketType::Subscribe),
                w,
            );
            for_items!(self.subscriptions, |subs| {
                for sub in subs {
                    w.str_then_u8(sub.filter.as_str(), sub.options.to_byte());
                }
            });
        } else {
            // 3.1.1 has only the maximum QoS.
            for_items!(self.subscriptions, |subs| {
                for sub in subs {
                    w.str_then_u8(sub.filter.as_str(), sub.options.qos.bits());
                }
            });
        }
    }
}

/// Send nothing a 5.0 receiver must refuse: a malformed `$share/` filter (a 3.1.1 SUBSCRIBE may
/// carry `$share/x` as an ordinary filter and be forwarded as 5.0), or No Local on a shared
/// subscription `[MQTT-3.8.3-4]`.
#[inline(never)]
fn check_shared_for_v5(filter: &str, no_local: bool) -> Result<(), EncodeError> {
    match TopicFilter::prevalidated(filter).shared() {
        Err(_) => Err(EncodeError::InvalidValue),
        Ok(Some(_)) if no_local => Err(EncodeError::InvalidValue),
        Ok(_) => Ok(()),
    }
}

impl crate::list::sealed::Sealed for Subscription<'_> {}
impl<'a> crate::list::ListItem<'a> for Subscription<'a> {
    fn next_from_wire(rest: &mut &'a [u8]) -> Option<Self> {
        let (after, filter) = utf8_prevalidated(rest)?;
        let (after, options) = u8_(after).ok()?;
        *rest = after;
        Some(Subscription {
            filter: TopicFilter::prevalidated(filter),
            options: SubscriptionOptions::from_byte_unchecked(options),
        })
    }

    fn next_from_text(rest: &mut &'a str) -> Option<Self> {
        let (filter, after) = next_text_field(rest)?;
        let (&options, _) = after.as_bytes().split_first()?;
        *rest = after.get(1..)?;
        Some(Subscription {
            filter: TopicFilter::prevalidated(filter),
            options: SubscriptionOptions::from_byte_unchecked(options),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeOptions, Packet, Status, decode};

    fn subscribe<'a>(subs: &'a [Subscription<'a>]) -> Packet<'a> {
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(11).unwrap(),
            properties: Properties::default(),
            subscriptions: List::new(subs),
        })
    }

    /// Filters of 128 bytes and more make the payload invalid UTF-8 as a whole (their length's
    /// low byte is >= 0x80): those packets take the per-filter path. Both paths must accept and
    /// list the same subscriptions, and refuse with the same errors.
    #[test]
    fn whole_payload_and_per_filter_paths_agree() {
        let long = [b'x'; 200];
        let long = core::str::from_utf8(&long).unwrap();
        let mut buf = [0u8; 512];
        for (first, v) in [
            ("a/+/ü", ProtocolVersion::V311),
            (long, ProtocolVersion::V311),
            ("a/+/ü", ProtocolVersion::V5),
            (long, ProtocolVersion::V5),
        ] {
            let subs = [
                Subscription {
                    filter: TopicFilter::new(first).unwrap(),
                    options: SubscriptionOptions::qos(QoS::ExactlyOnce),
                },
                Subscription {
                    filter: TopicFilter::new("$share/g/#").unwrap(),
                    options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                },
            ];
            let p = subscribe(&subs);
            let n = p.encode(v, &mut buf).unwrap();
            let Ok(Status::Complete(d)) = decode(&buf[..n], DecodeOptions::new(v)) else {
                panic!("{first}");
            };
            assert_eq!(d.packet, p);
            let Packet::Subscribe(s) = d.packet else {
                panic!()
            };
            assert_eq!(s.subscriptions.len(), 2);
            // Options byte 3 (QoS 3) on the last subscription: refused either way.
            buf[n - 1] = 3;
            let qos_3 = if v.is_v5() {
                DecodeError::SubscriptionOptionOutOfRange
            } else {
                DecodeError::InvalidQos
            };
            assert_eq!(decode(&buf[..n], DecodeOptions::new(v)), Err(qos_3));
            // A NUL inside the first filter.
            buf[n - 1] = 1;
            let header_len = if n > 129 { 3 } else { 2 };
            let first_filter_byte = header_len + 2 + usize::from(v.is_v5()) + 2;
            buf[first_filter_byte] = 0;
            assert_eq!(
                decode(&buf[..n], DecodeOptions::new(v)),
                Err(DecodeError::NullCharacter)
            );
        }
    }

    /// `encode` (the plain path for the caller's own subscriptions) and the general path give
    /// the same result and the same bytes, in buffers of the exact size, one byte short and
    /// empty, in both versions: for filter lengths around every copy size, the 65,535-byte
    /// limit and one past it (a filter too long can only be made inside the crate), bodies
    /// around the one-, two- and three-byte Remaining Length boundaries, every options byte,
    /// shared subscriptions well and badly formed, with and without No Local, no
    /// subscription at all, and property sets allowed, refused and out of range; and for
    /// decoded lists (the general path).
    #[test]
    fn plain_path_agrees_with_the_general_path() {
        use crate::UserProperties;
        use std::{vec, vec::Vec};
        static TEXT: [u8; 70_000] = [b'f'; 70_000];
        static IDS: [[u32; 2]; 4] = [[5, 0], [0, 0], [268_435_455, 0], [268_435_456, 0]];
        static TWO_IDS: [u32; 2] = [1, 2];
        static USERS: [(&str, &str); 2] = [("k", "v"), ("region", "eu-west")];
        let text = core::str::from_utf8(&TEXT).unwrap();
        // A property block of 128 bytes and more: a two-byte length.
        let long_users = [("k", &text[..200]), ("l", &text[..20_000])];
        let properties: Vec<Properties<'_>> = vec![
            Properties::default(),
            Properties {
                subscription_identifiers: List::new(&IDS[0][..1]),
                ..Properties::default()
            },
            Properties {
                subscription_identifiers: List::new(&IDS[1][..1]),
                ..Properties::default()
            },
            Properties {
                subscription_identifiers: List::new(&IDS[2][..1]),
                user_properties: UserProperties::new(&USERS),
                ..Properties::default()
            },
            Properties {
                subscription_identifiers: List::new(&IDS[3][..1]),
                ..Properties::default()
            },
            Properties {
                subscription_identifiers: List::new(&TWO_IDS),
                ..Properties::default()
            },
            Properties {
                user_properties: UserProperties::new(&USERS),
                ..Properties::default()
            },
            Properties {
                content_type: Some("text/plain"),
                ..Properties::default()
            },
            Properties {
                reason_string: Some("no"),
                subscription_identifiers: List::new(&IDS[0][..1]),
                ..Properties::default()
            },
            Properties {
                subscription_identifiers: List::new(&IDS[0][..1]),
                user_properties: UserProperties::new(&long_users[..1]),
                ..Properties::default()
            },
            Properties {
                user_properties: UserProperties::new(&long_users),
                ..Properties::default()
            },
        ];
        let mut filter_lens: Vec<usize> = (1..=70).collect();
        filter_lens.extend([100, 120, 121, 122, 123, 124, 125, 127, 128, 200]);
        filter_lens.extend([16_376, 16_377, 16_378, 16_379, 16_380, 65_535, 65_536]);
        let specials = [
            "$share/g/a",
            "$share/g/#",
            "$share/temperature",
            "$share//a",
            "$share/+/a",
            "$SYS/broker/load/#",
            "$",
            "site/+/temperature",
        ];
        let option_bytes = [0u8, 1, 2, 4, 8, 0x10, 0x20, 0x2F, 0x1E];
        let mut shapes: Vec<Vec<Subscription<'_>>> = vec![Vec::new()];
        for (i, &n) in filter_lens.iter().enumerate() {
            let b = option_bytes[i % option_bytes.len()];
            let options = SubscriptionOptions::from_byte_unchecked(b);
            let filter = TopicFilter::prevalidated(&text[..n]);
            shapes.push(vec![Subscription { filter, options }]);
            if n <= 200 {
                shapes.push(vec![
                    Subscription {
                        filter: TopicFilter::new("a/b").unwrap(),
                        options: SubscriptionOptions::qos(QoS::ExactlyOnce),
                    },
                    Subscription { filter, options },
                    Subscription {
                        filter: TopicFilter::new("$share/g/x").unwrap(),
                        options: SubscriptionOptions::from_byte_unchecked(0x2A),
                    },
                ]);
            }
        }
        for special in specials {
            for b in option_bytes {
                let sub = Subscription {
                    filter: TopicFilter::new(special).unwrap(),
                    options: SubscriptionOptions::from_byte_unchecked(b),
                };
                shapes.push(vec![sub]);
                // After a filter too long: the first error is that one.
                let long = Subscription {
                    filter: TopicFilter::prevalidated(&text[..65_536]),
                    options: SubscriptionOptions::qos(QoS::AtMostOnce),
                };
                shapes.push(vec![sub, long]);
                shapes.push(vec![long, sub]);
            }
        }
        // Many short filters: bodies around 16 KiB, and more filters than fit in 16 KiB.
        for count in [4_000usize, 5_460, 5_461, 5_462, 16_384, 20_000] {
            let sub = Subscription {
                filter: TopicFilter::new("x").unwrap(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            };
            shapes.push(vec![sub; count]);
        }
        let mut storage = vec![0u8; 200_000];
        let mut reference = vec![0u8; 200_000];
        let (mut checked, mut refused) = (0, 0);
        for (i, subs) in shapes.iter().enumerate() {
            for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
                let sets: &[Properties<'_>] = if subs.len() == 1 || subs.len() > 3 {
                    &properties[..2]
                } else {
                    &properties
                };
                for &properties in sets {
                    let s = Subscribe {
                        packet_id: PacketId::new(1 + (i as u16) * 7).unwrap(),
                        properties,
                        subscriptions: List::new(subs),
                    };
                    let want = s.encode_general(version, &mut reference);
                    let packet = Packet::Subscribe(s);
                    let got = packet.encode(version, &mut storage);
                    assert_eq!(got, want, "{i} {version:?} {properties:?}");
                    match want {
                        Ok(len) => {
                            assert_eq!(storage[..len], reference[..len], "{i}");
                            assert_eq!(packet.encoded_len(version), Ok(len));
                            for short in [len - 1, 0] {
                                assert_eq!(
                                    packet.encode(version, &mut storage[..short]),
                                    Err(EncodeError::BufferTooSmall { needed: len })
                                );
                            }
                            // The same packet decoded: its list is the decoder's, and takes
                            // the general path.
                            let Ok(Status::Complete(d)) =
                                decode(&reference[..len], DecodeOptions::new(version))
                            else {
                                continue;
                            };
                            assert_eq!(d.packet.encode(version, &mut storage), Ok(len));
                            assert_eq!(storage[..len], reference[..len], "{i}");
                        }
                        Err(e) => {
                            assert_eq!(packet.encoded_len(version), Err(e));
                            refused += 1;
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 500 && refused > 100, "{checked} {refused}");
    }

    /// `wire_byte` (one multiplication) is `to_byte` for every options value.
    #[test]
    fn wire_byte_is_to_byte() {
        let mut seen = 0;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for retain_handling in [
                RetainHandling::SendAtSubscribe,
                RetainHandling::SendIfNew,
                RetainHandling::DoNotSend,
            ] {
                for no_local in [false, true] {
                    for retain_as_published in [false, true] {
                        let o = SubscriptionOptions {
                            qos,
                            no_local,
                            retain_as_published,
                            retain_handling,
                        };
                        assert_eq!(o.wire_byte(), o.to_byte(), "{o:?}");
                        seen += 1;
                    }
                }
            }
        }
        assert_eq!(seen, 36);
    }

    /// Found by the `roundtrip` fuzz target: a 3.1.1 SUBSCRIBE to `$share/temperature` (an
    /// ordinary filter in 3.1.1) encoded for 5.0 gave bytes the 5.0 decoder refuses.
    #[test]
    fn encoding_for_v5_refuses_what_v5_decoding_refuses() {
        let mut buf = [0u8; 64];
        let subs = [Subscription {
            filter: TopicFilter::new("$share/temperature").unwrap(),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        }];
        let malformed_share = subscribe(&subs);
        let n = malformed_share
            .encode(ProtocolVersion::V311, &mut buf)
            .unwrap();
        let opts = DecodeOptions::new(ProtocolVersion::V311);
        assert!(matches!(decode(&buf[..n], opts), Ok(Status::Complete(_))));
        assert_eq!(
            malformed_share.encode(ProtocolVersion::V5, &mut buf),
            Err(EncodeError::InvalidValue)
        );
        assert_eq!(
            malformed_share.encoded_len(ProtocolVersion::V5),
            Err(EncodeError::InvalidValue)
        );

        let subs = [Subscription {
            filter: TopicFilter::new("$share/g/a").unwrap(),
            options: SubscriptionOptions {
                no_local: true,
                ..SubscriptionOptions::qos(QoS::AtLeastOnce)
            },
        }];
        let no_local_shared = subscribe(&subs);
        assert_eq!(
            no_local_shared.encode(ProtocolVersion::V5, &mut buf),
            Err(EncodeError::InvalidValue)
        );
        // 3.1.1 has no No Local: the option is dropped and the filter is ordinary.
        assert!(
            no_local_shared
                .encode(ProtocolVersion::V311, &mut buf)
                .is_ok()
        );
    }
}
