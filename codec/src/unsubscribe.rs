//! UNSUBSCRIBE (§3.10): a list of topic filters to remove.

use crate::data::{PacketId, Writer, packet_id, str_len, utf8, utf8_prevalidated};
use crate::error::{DecodeError, EncodeError};
use crate::list::{List, for_items, next_text_field};
use crate::properties::{Block, Properties, PropertyContext, block_len, parse_properties};
use crate::topic::TopicFilter;
use crate::wire::PacketType;
use crate::wire::ProtocolVersion;

/// An UNSUBSCRIBE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Unsubscribe<'a> {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties (User Property only).
    pub properties: Properties<'a>,
    /// The filters, at least one, in order.
    pub filters: List<'a, TopicFilter<'a>>,
}

pub(crate) fn parse(
    i: &[u8],
    version: ProtocolVersion,
) -> Result<Unsubscribe<'_>, nom::Err<DecodeError>> {
    let fail = |e| nom::Err::Failure(e);
    let (i, packet_id) = packet_id(i)?;
    let (payload, properties) = if version.is_v5() {
        parse_properties(i, PropertyContext::Packet(PacketType::Unsubscribe))?
    } else {
        (i, Properties::default())
    };
    if payload.is_empty() {
        return Err(fail(DecodeError::EmptyUnsubscribe));
    }
    // As in SUBSCRIBE: a payload of filters shorter than 128 bytes is valid UTF-8 as a whole.
    if let Ok(text) = core::str::from_utf8(payload) {
        if filters_valid(text) {
            return Ok(Unsubscribe {
                packet_id,
                properties,
                filters: List::from_text(text),
            });
        }
    }
    let mut rest = payload;
    while !rest.is_empty() {
        let (r, filter) = utf8(rest)?;
        TopicFilter::new(filter).map_err(fail)?;
        rest = r;
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters: List::from_wire(payload),
    })
}

/// Whether every filter in a payload that is valid UTF-8 as a whole is valid.
fn filters_valid(mut text: &str) -> bool {
    while !text.is_empty() {
        let Some((filter, rest)) = next_text_field(text) else {
            return false;
        };
        if TopicFilter::new(filter).is_err() {
            return false;
        }
        text = rest;
    }
    true
}

impl Unsubscribe<'_> {
    /// The body length and the property items length (5.0), checking the packet against the
    /// rules the decoder enforces (the filters' syntax was checked when they were made).
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<(usize, Block), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::InvalidValue);
        }
        let mut n: usize = 2;
        let mut properties = Block::EMPTY;
        if version.is_v5() {
            properties = self
                .properties
                .items_len(PropertyContext::Packet(PacketType::Unsubscribe))?;
            n = n.saturating_add(block_len(properties)?);
        }
        for_items!(self.filters, |filters| {
            for f in filters {
                n = n.saturating_add(str_len(f.as_str())?);
            }
        });
        Ok((n, properties))
    }

    /// Write the body [`Self::body_len`] measured.
    pub(crate) fn write(&self, version: ProtocolVersion, properties: Block, w: &mut Writer<'_>) {
        w.u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write_block(
                properties,
                PropertyContext::Packet(PacketType::Unsubscribe),
                w,
            );
        }
        for_items!(self.filters, |filters| {
            for f in filters {
                w.str(f.as_str());
            }
        });
    }
}

impl crate::list::sealed::Sealed for TopicFilter<'_> {}
impl<'a> crate::list::ListItem<'a> for TopicFilter<'a> {
    fn next_from_wire(rest: &mut &'a [u8]) -> Option<Self> {
        let (after, filter) = utf8_prevalidated(rest)?;
        *rest = after;
        Some(TopicFilter::prevalidated(filter))
    }

    fn next_from_text(rest: &mut &'a str) -> Option<Self> {
        let (filter, after) = next_text_field(rest)?;
        *rest = after;
        Some(TopicFilter::prevalidated(filter))
    }
}
