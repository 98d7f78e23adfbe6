//! MQTT 5.0 properties (§2.2.2): one [`Properties`] struct for every packet, with the rules of which
//! packet may carry which property checked both when decoding and when encoding.
//!
//! Everything about the 27 properties comes from one table (the `properties!` invocation below):
//! each row gives the identifier, the name, the wire type, the packets (and will) that may carry
//! it, and the field of [`Properties`] that holds it. From it are generated the struct, its empty
//! value, [`PropertyId`], [`is_allowed`], the parser (with its unknown, not-allowed and duplicate
//! checks), the emptiness tests, the length computation (one, [`Properties::measure`], which the
//! two refusal tests put in front of) and the writer. What is particular to one field type (how
//! a `NonZeroU16` is read, how a `TopicName` is checked, how a list is walked) is said once per
//! type, by the `Value` and `Field` traits, not once per property.
//!
//! Decoding validates the whole block once: every identifier known, allowed in this packet, not
//! repeated unless the property may repeat, every value of its type and in its range. User
//! properties and subscription identifiers stay in the block and are read lazily by
//! [`crate::List`]; nothing is copied and nothing is capped.

use core::marker::PhantomData;
use core::num::{NonZeroU16, NonZeroU32};

use nom::{IResult, Parser};

use crate::data::QoS;
use crate::data::{
    Writer, binary, binary_len, finish_err, nonzero_u32, str_len, u8_, u16_, u32_, utf8,
    utf8_check_only, utf8_prevalidated, utf8_scanned, varint, varint_field_len,
};
use crate::error::{DecodeError, EncodeError};
use crate::list::{
    List, ListItem, SubscriptionIdentifiers, UserProperties, UserProperty, for_items,
    next_text_field,
};
use crate::topic::TopicName;
use crate::wire::{PacketType, VARINT_MAX, varint_len};

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
    /// One bit for each context: bit 0 for the will, the packet type's number for a packet.
    #[cfg_attr(not(feature = "size"), inline(always))]
    const fn bit(self) -> u16 {
        match self {
            PropertyContext::Will => 1,
            PropertyContext::Packet(p) => 1u16.wrapping_shl(p as u32),
        }
    }

    fn packet(self) -> PacketType {
        match self {
            PropertyContext::Packet(p) => p,
            PropertyContext::Will => PacketType::Connect,
        }
    }
}

/// The wire type of a property's value (§2.2.2.2, table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    /// Byte.
    Byte,
    /// Two Byte Integer.
    U16,
    /// Four Byte Integer.
    U32,
    /// Variable Byte Integer.
    Varint,
    /// UTF-8 Encoded String.
    Utf8,
    /// Binary Data.
    Binary,
    /// UTF-8 String Pair.
    Pair,
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

/// Generates everything about the properties from the table of them (see the module
/// documentation). Each row:
///
/// ```text
/// /// field documentation
/// 0xID CONST_NAME "Spec Name": WireType in (contexts that may carry it) => field: FieldType,
/// ```
///
/// The contexts are a pattern over [`PropertyContext`] (with the packet types in scope); the
/// field type is an `Option` of a [`Value`] type, or one of the two lists (see [`Field`]).
macro_rules! properties {
    (
        $(#[$struct_attr:meta])*
        pub struct $Properties:ident<$a:lifetime> {
            $(
                $(#[$field_attr:meta])*
                $id:literal $NAME:ident $name:literal: $wire:ident in ($allowed:pat)
                    => $field:ident: $ty:ty,
            )*
        }
    ) => {
        /// Property identifiers (§2.2.2.2, table 2-4).
        #[derive(Debug)]
        pub struct PropertyId;

        impl PropertyId {
            $(
                #[doc = concat!($name, " (", stringify!($wire), ").")]
                pub const $NAME: u8 = $id;
            )*
        }

        /// The value type of each property, or `None` for an identifier 5.0 does not define.
        const fn value_type(id: u8) -> Option<ValueType> {
            match id {
                $( $id => Some(ValueType::$wire), )*
                _ => None,
            }
        }

        /// Whether property `id` may appear in `ctx` (§2.2.2.2 and each packet's property list).
        ///
        /// Each row's contexts become a constant mask of [`PropertyContext::bit`]s, so that a
        /// runtime `ctx` (the decoder's) costs a table lookup and a bit test; a constant one
        /// (the encoder's) folds to a constant.
        #[inline]
        pub const fn is_allowed(id: u8, ctx: PropertyContext) -> bool {
            let mask: u16 = match id {
                $(
                    $id => {
                        const MASK: u16 = {
                            #[allow(unused_imports)]
                            use PacketType::*;
                            use PropertyContext::{Packet, Will};
                            let mut mask = 0u16;
                            let mut nibble = 0u8;
                            while nibble < 16 {
                                let ctx = match PacketType::from_nibble(nibble) {
                                    Some(p) => Packet(p),
                                    None => Will,
                                };
                                if matches!(ctx, $allowed) {
                                    mask |= ctx.bit();
                                }
                                nibble = nibble.wrapping_add(1);
                            }
                            mask
                        };
                        MASK
                    }
                )*
                _ => 0,
            };
            mask & ctx.bit() != 0
        }

        $(#[$struct_attr])*
        pub struct $Properties<$a> {
            $(
                $(#[$field_attr])*
                pub $field: $ty,
            )*
        }

        /// A list's span while its block is parsed, one per property (`()` for the others).
        #[derive(Default)]
        struct Spans<$a> {
            $( $field: <$ty as Field<$a>>::Span, )*
            _block: PhantomData<&$a [u8]>,
        }

        impl<$a> $Properties<$a> {
            /// No property set.
            const EMPTY: Self = $Properties {
                $( $field: <$ty as Field<$a>>::EMPTY, )*
            };

            /// Whether each row's wire type is the one its field type reads and writes.
            const TYPES_AGREE: bool = true
                $( && <$ty as Field<$a>>::TYPE as u8 == ValueType::$wire as u8 )*;

            /// Whether a repeat of property `id` is allowed in `ctx`.
            fn may_repeat(id: u8, ctx: PropertyContext) -> bool {
                match id {
                    $( $id => <$ty as Field<$a>>::may_repeat(ctx), )*
                    _ => false,
                }
            }

            /// Parse the items of a property block (its length prefix already taken off).
            fn parse_block(block: &$a [u8], ctx: PropertyContext) -> Result<Self, DecodeError> {
                let mut p = Self::default();
                // Where the first user property (subscription identifier) starts and the last
                // one ends: the lazy lists are views of that span only, so reading them does not
                // walk the other properties again.
                let mut spans = Spans::default();
                let mut seen: u64 = 0;
                let mut rest = block;
                while !rest.is_empty() {
                    let (after_id, id) = varint(rest).map_err(finish_err)?;
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
                    if seen & bit != 0 && !Self::may_repeat(id, ctx) {
                        return Err(DecodeError::DuplicateProperty(id));
                    }
                    seen |= bit;
                    rest = match id {
                        $(
                            $id => Field::read(
                                &mut p.$field,
                                &mut spans.$field,
                                id,
                                after_id,
                                block,
                                rest,
                            )?,
                        )*
                        _ => return Err(DecodeError::UnknownProperty(u32::from(id))),
                    };
                }
                $( Field::finish(&mut p.$field, spans.$field, block); )*
                Ok(p)
            }

            /// Whether no property is set.
            #[inline]
            pub fn is_empty(&self) -> bool {
                // Field by field rather than `== NO_PROPERTIES`, which compares both lists item
                // by item: every encode asks this, and most packets carry no properties. `&`
                // rather than `&&` for the plain fields: no branch per field, and the compiler
                // merges the tests of the fields whose `None` is zero into one test of their
                // bits or'ed together. The lists last, and only if nothing else is set: a
                // decoded list is read to tell.
                (true $( & Field::unset_plain(&self.$field) )*)
                    $( && Field::unset_list(&self.$field) )*
            }

            /// Whether no property is set, tested cheaply enough for every PUBLISH encode:
            /// `true` means none is set; `false` that one is, or (in theory: the decoder makes
            /// no such list) that a decoded list would have to be read to tell. The caller then
            /// takes the general path, [`Self::items_len`], which decides.
            ///
            /// [`Self::is_empty`] tests 27 fields one by one (the compiler turns that into about
            /// 75 instructions of vector compares and branches); here each field gives an
            /// integer that is 0 exactly when it is unset ([`Lanes`]), and the integers are
            /// or'ed into a few words tested once. About 28 instructions in all.
            #[cfg_attr(not(feature = "size"), inline(always))]
            pub(crate) fn surely_empty(&self) -> bool {
                let l = Lanes::UNSET $( .or(Field::lanes(&self.$field, true)) )*;
                l.word == 0 && l.small == 0 && l.byte & 2 != 0
            }

            /// Whether a property other than the two lists is set among those `pick` selects (by
            /// identifier): exactly `is_some()` of each picked field, or'ed. Inlined where `pick`
            /// is decided at compile time, as [`Self::surely_empty`] tests all of them: each
            /// picked field gives its [`Lanes`], the others [`Lanes::UNSET`], and the lanes are
            /// combined and tested once, rather than a test and branch per field.
            #[cfg_attr(not(feature = "size"), inline(always))]
            fn any_scalar_set(&self, pick: impl Fn(u8) -> bool) -> bool {
                let l = Lanes::UNSET
                    $( .or(if pick($id) { Field::lanes(&self.$field, false) } else { Lanes::UNSET }) )*;
                (l.word != 0) | (l.small != 0) | (l.byte & 2 == 0)
            }

            /// Length of the property items for `ctx`, the block's length prefix not included,
            /// and the check that every property set may appear in `ctx` and has a value in
            /// range.
            ///
            /// Inlined where `ctx` is a constant, [`is_allowed`] is decided at compile time: the
            /// properties `ctx` may not carry become one test of all of them together (no branch
            /// per field), and only the ones it may carry are measured. If one it may not carry
            /// is set, [`Self::first_error`] names the first rule broken in identifier order, as
            /// a property by property check would.
            #[cfg_attr(not(feature = "size"), inline(always))]
            pub(crate) fn items_len(&self, ctx: PropertyContext) -> Result<Block, EncodeError> {
                let refused = false $( | Field::refused(&self.$field, !is_allowed($id, ctx)) )*;
                if refused {
                    return Err(self.first_error(ctx));
                }
                self.measure::<false>(ctx)
            }

            /// [`Self::items_len`] for a `ctx` that may carry few properties (SUBSCRIBE: the two
            /// lists), where the properties it may not carry are many: those are tested by
            /// [`Self::any_scalar_set`], fewer instructions than the test of each `is_some()` in
            /// [`Self::items_len`] for that many. The same result.
            #[cfg_attr(not(feature = "size"), inline(always))]
            pub(crate) fn items_len_few(&self, ctx: PropertyContext) -> Result<Block, EncodeError> {
                // The properties that are not lists, tested together; the lists (read to tell,
                // if decoded) only where `ctx` may not carry them.
                let refused = self.any_scalar_set(|id| !is_allowed(id, ctx))
                    $( | Field::refused_list(&self.$field, !is_allowed($id, ctx)) )*;
                if refused {
                    return Err(self.first_error(ctx));
                }
                self.measure::<false>(ctx)
            }

            /// The length of the property items for `ctx` and the checks of their values, in
            /// identifier order: the one length computation of a property block. With
            /// `CHECKED`, every property set is looked at and checked against `ctx` before its
            /// value (the property-by-property check, which names the first rule broken);
            /// without, only the properties `ctx` may carry are looked at (decided at compile
            /// time where `ctx` is a constant), the caller having refused the others.
            #[cfg_attr(not(feature = "size"), inline(always))]
            fn measure<const CHECKED: bool>(
                &self,
                ctx: PropertyContext,
            ) -> Result<Block, EncodeError> {
                let packet = ctx.packet();
                let mut n = 0usize;
                $(
                    if CHECKED || is_allowed($id, ctx) {
                        n = Field::measure(&self.$field, n, ctx, || {
                            if CHECKED && !is_allowed($id, ctx) {
                                Err(EncodeError::PropertyNotAllowed { id: $id, packet })
                            } else {
                                Ok(())
                            }
                        })?;
                    }
                )*
                Ok(Block { len: n })
            }

            /// Write the property block (length prefix included) that [`Self::items_len`]
            /// measured and checked for `ctx`: only the properties `ctx` may carry can be set,
            /// so only those are looked at (decided at compile time where `ctx` is a constant).
            #[cfg_attr(not(feature = "size"), inline(always))]
            pub(crate) fn write_block(
                &self,
                block: Block,
                ctx: PropertyContext,
                w: &mut Writer<'_>,
            ) {
                w.varint(u32::try_from(block.len).unwrap_or(u32::MAX));
                if block.is_empty() {
                    return;
                }
                $(
                    if is_allowed($id, ctx) {
                        Field::write(&self.$field, $id, w);
                    }
                )*
            }
        }
    };
}

properties! {
    /// The properties of one packet (or of CONNECT's will). Fields a packet may not carry stay
    /// unset: decoding refuses them and encoding reports [`EncodeError::PropertyNotAllowed`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct Properties<'a> {
        /// 0x01, PUBLISH and will.
        0x01 PAYLOAD_FORMAT_INDICATOR "Payload Format Indicator": Byte
            in (Packet(Publish) | Will)
            => payload_format_indicator: Option<PayloadFormat>,
        /// 0x02, seconds; PUBLISH and will.
        0x02 MESSAGE_EXPIRY_INTERVAL "Message Expiry Interval": U32
            in (Packet(Publish) | Will)
            => message_expiry_interval: Option<u32>,
        /// 0x03, PUBLISH and will.
        0x03 CONTENT_TYPE "Content Type": Utf8
            in (Packet(Publish) | Will)
            => content_type: Option<&'a str>,
        /// 0x08, PUBLISH and will; no wildcards (`[MQTT-3.3.2-14]`).
        0x08 RESPONSE_TOPIC "Response Topic": Utf8
            in (Packet(Publish) | Will)
            => response_topic: Option<TopicName<'a>>,
        /// 0x09, PUBLISH and will.
        0x09 CORRELATION_DATA "Correlation Data": Binary
            in (Packet(Publish) | Will)
            => correlation_data: Option<&'a [u8]>,
        /// 0x0B; PUBLISH (repeatable, server to client) and SUBSCRIBE (once); 1..=268,435,455.
        0x0B SUBSCRIPTION_IDENTIFIER "Subscription Identifier": Varint
            in (Packet(Publish | Subscribe))
            => subscription_identifiers: SubscriptionIdentifiers<'a>,
        /// 0x11, seconds; CONNECT, CONNACK, DISCONNECT.
        0x11 SESSION_EXPIRY_INTERVAL "Session Expiry Interval": U32
            in (Packet(Connect | ConnAck | Disconnect))
            => session_expiry_interval: Option<u32>,
        /// 0x12, CONNACK.
        0x12 ASSIGNED_CLIENT_IDENTIFIER "Assigned Client Identifier": Utf8
            in (Packet(ConnAck))
            => assigned_client_identifier: Option<&'a str>,
        /// 0x13, seconds; CONNACK.
        0x13 SERVER_KEEP_ALIVE "Server Keep Alive": U16
            in (Packet(ConnAck))
            => server_keep_alive: Option<u16>,
        /// 0x15; CONNECT, CONNACK, AUTH.
        0x15 AUTHENTICATION_METHOD "Authentication Method": Utf8
            in (Packet(Connect | ConnAck | Auth))
            => authentication_method: Option<&'a str>,
        /// 0x16; CONNECT, CONNACK, AUTH.
        0x16 AUTHENTICATION_DATA "Authentication Data": Binary
            in (Packet(Connect | ConnAck | Auth))
            => authentication_data: Option<&'a [u8]>,
        /// 0x17, CONNECT.
        0x17 REQUEST_PROBLEM_INFORMATION "Request Problem Information": Byte
            in (Packet(Connect))
            => request_problem_information: Option<bool>,
        /// 0x18, seconds; will.
        0x18 WILL_DELAY_INTERVAL "Will Delay Interval": U32
            in (Will)
            => will_delay_interval: Option<u32>,
        /// 0x19, CONNECT.
        0x19 REQUEST_RESPONSE_INFORMATION "Request Response Information": Byte
            in (Packet(Connect))
            => request_response_information: Option<bool>,
        /// 0x1A, CONNACK.
        0x1A RESPONSE_INFORMATION "Response Information": Utf8
            in (Packet(ConnAck))
            => response_information: Option<&'a str>,
        /// 0x1C; CONNACK, DISCONNECT.
        0x1C SERVER_REFERENCE "Server Reference": Utf8
            in (Packet(ConnAck | Disconnect))
            => server_reference: Option<&'a str>,
        /// 0x1F; every acknowledgement, DISCONNECT and AUTH.
        0x1F REASON_STRING "Reason String": Utf8
            in (Packet(
                ConnAck | PubAck | PubRec | PubRel | PubComp | SubAck | UnsubAck | Disconnect
                    | Auth
            ))
            => reason_string: Option<&'a str>,
        /// 0x21; CONNECT, CONNACK. Never 0.
        0x21 RECEIVE_MAXIMUM "Receive Maximum": U16
            in (Packet(Connect | ConnAck))
            => receive_maximum: Option<NonZeroU16>,
        /// 0x22; CONNECT, CONNACK.
        0x22 TOPIC_ALIAS_MAXIMUM "Topic Alias Maximum": U16
            in (Packet(Connect | ConnAck))
            => topic_alias_maximum: Option<u16>,
        /// 0x23, PUBLISH. Never 0 (`[MQTT-3.3.2-8]`).
        0x23 TOPIC_ALIAS "Topic Alias": U16
            in (Packet(Publish))
            => topic_alias: Option<NonZeroU16>,
        /// 0x24, CONNACK: 0 or 1 (a server supporting QoS 2 leaves it out).
        0x24 MAXIMUM_QOS "Maximum QoS": Byte
            in (Packet(ConnAck))
            => maximum_qos: Option<QoS>,
        /// 0x25, CONNACK.
        0x25 RETAIN_AVAILABLE "Retain Available": Byte
            in (Packet(ConnAck))
            => retain_available: Option<bool>,
        /// 0x26; every packet but PINGREQ and PINGRESP. Order kept, repeats allowed.
        0x26 USER_PROPERTY "User Property": Pair
            in (Will | Packet(
                Connect | ConnAck | Publish | PubAck | PubRec | PubRel | PubComp | Subscribe
                    | SubAck | Unsubscribe | UnsubAck | Disconnect | Auth
            ))
            => user_properties: UserProperties<'a>,
        /// 0x27; CONNECT, CONNACK. Never 0.
        0x27 MAXIMUM_PACKET_SIZE "Maximum Packet Size": U32
            in (Packet(Connect | ConnAck))
            => maximum_packet_size: Option<NonZeroU32>,
        /// 0x28, CONNACK.
        0x28 WILDCARD_SUBSCRIPTION_AVAILABLE "Wildcard Subscription Available": Byte
            in (Packet(ConnAck))
            => wildcard_subscription_available: Option<bool>,
        /// 0x29, CONNACK.
        0x29 SUBSCRIPTION_IDENTIFIER_AVAILABLE "Subscription Identifier Available": Byte
            in (Packet(ConnAck))
            => subscription_identifier_available: Option<bool>,
        /// 0x2A, CONNACK.
        0x2A SHARED_SUBSCRIPTION_AVAILABLE "Shared Subscription Available": Byte
            in (Packet(ConnAck))
            => shared_subscription_available: Option<bool>,
    }
}

// Every row's wire type is the one its field type reads and writes (a compile error otherwise).
const _: () = assert!(Properties::<'static>::TYPES_AGREE);

/// An empty property set, usable in `const` contexts.
pub const NO_PROPERTIES: Properties<'static> = Properties::EMPTY;

/// How one field of [`Properties`] is read, checked, measured and written: an `Option` of a
/// [`Value`], or one of the two lists, which may repeat and stay views of the block.
trait Field<'a>: Copy {
    /// The wire type it reads and writes.
    const TYPE: ValueType;
    /// Unset.
    const EMPTY: Self;
    /// What parsing a block keeps for the field between its items: the span of a list's items,
    /// `()` for the others.
    type Span: Copy + Default;

    /// Whether the property may appear more than once in `ctx`.
    fn may_repeat(ctx: PropertyContext) -> bool;

    /// Read the value after identifier `id` (the value starts `v`; the item, identifier
    /// included, starts `item` in `block`) and return what follows.
    fn read(
        &mut self,
        span: &mut Self::Span,
        id: u8,
        v: &'a [u8],
        block: &'a [u8],
        item: &'a [u8],
    ) -> Result<&'a [u8], DecodeError>;

    /// After the whole block: make a list the view of its span.
    fn finish(&mut self, span: Self::Span, block: &'a [u8]);

    /// Unset, for a plain field (`true` for a list).
    fn unset_plain(&self) -> bool;
    /// Unset, for a list (read to tell, if decoded; `true` for a plain field).
    fn unset_list(&self) -> bool;
    /// Set where `not_allowed` says it may not be.
    fn refused(&self, not_allowed: bool) -> bool;
    /// [`Self::refused`] for a list, `false` for a plain field.
    fn refused_list(&self, not_allowed: bool) -> bool;
    /// The field's [`Lanes`]; a list's view length only with `lists`.
    fn lanes(&self, lists: bool) -> Lanes;

    /// `n` plus the items' length (identifier and value), after `check` (the context check of
    /// a property-by-property measure) for each item and the checks of its value.
    fn measure(
        &self,
        n: usize,
        ctx: PropertyContext,
        check: impl Fn() -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError>;

    /// Write the items (identifier and value) for property `id`.
    fn write(&self, id: u8, w: &mut Writer<'_>);
}

/// The type of a property that appears at most once, held as an `Option` of it.
trait Value<'a>: Copy {
    /// The wire type it reads and writes.
    const TYPE: ValueType;
    /// Read the value of property `id`; out of its range is
    /// [`DecodeError::InvalidPropertyValue`].
    fn read(v: &'a [u8], id: u8) -> Result<(&'a [u8], Self), DecodeError>;
    /// The length of the value on the wire; out of range is [`EncodeError::InvalidValue`].
    fn len(self) -> Result<usize, EncodeError>;
    /// Write identifier `id` and the value.
    fn write(self, id: u8, w: &mut Writer<'_>);
    /// The [`Lanes`] of the field holding `o`.
    fn lanes(o: Option<Self>) -> Lanes;
}

/// For the tests of many properties at once ([`Properties::surely_empty`],
/// [`Properties::any_scalar_set`]): each field gives an integer that is 0 (in `byte`: has bit 1
/// set) exactly when it is unset, in the lane that suits its type, and the lanes are or'ed
/// (and'ed) into a few words tested once: the pointer of an `Option<&str>` / `Option<&[u8]>`
/// (null for `None`) or the view length of a list in `word`; the value of an
/// `Option<NonZero*>` or the tag of an `Option<u16>` / `Option<u32>` in `small`; the one-byte
/// options mapped to 2 when unset and to a value with bit 1 clear when set in `byte` (the
/// compiler turns the eight into one 64-bit compare).
#[derive(Clone, Copy)]
struct Lanes {
    word: usize,
    small: u32,
    byte: u8,
}

impl Lanes {
    const UNSET: Lanes = Lanes {
        word: 0,
        small: 0,
        byte: 2,
    };

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn or(self, o: Lanes) -> Lanes {
        Lanes {
            word: self.word | o.word,
            small: self.small | o.small,
            byte: self.byte & o.byte,
        }
    }
}

/// `n` plus an item of a `value_len`-byte value and its one-byte identifier. Saturating sums: a
/// total anywhere near `usize::MAX` is far beyond the largest packet and refused as such.
#[cfg_attr(not(feature = "size"), inline(always))]
fn item(n: usize, value_len: usize) -> usize {
    n.saturating_add(value_len).saturating_add(1)
}

impl<'a, T: Value<'a>> Field<'a> for Option<T> {
    const TYPE: ValueType = T::TYPE;
    const EMPTY: Self = None;
    type Span = ();

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn may_repeat(_: PropertyContext) -> bool {
        false
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(
        &mut self,
        _: &mut (),
        id: u8,
        v: &'a [u8],
        _: &'a [u8],
        _: &'a [u8],
    ) -> Result<&'a [u8], DecodeError> {
        let (rest, value) = T::read(v, id)?;
        *self = Some(value);
        Ok(rest)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn finish(&mut self, _: (), _: &'a [u8]) {}

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn unset_plain(&self) -> bool {
        self.is_none()
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn unset_list(&self) -> bool {
        true
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn refused(&self, not_allowed: bool) -> bool {
        not_allowed & self.is_some()
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn refused_list(&self, _: bool) -> bool {
        false
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(&self, _: bool) -> Lanes {
        T::lanes(*self)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn measure(
        &self,
        n: usize,
        _: PropertyContext,
        check: impl Fn() -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        match *self {
            Some(v) => {
                check()?;
                Ok(item(n, v.len()?))
            }
            None => Ok(n),
        }
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(&self, id: u8, w: &mut Writer<'_>) {
        if let Some(v) = *self {
            v.write(id, w);
        }
    }
}

/// A byte that must be 0 or 1.
fn flag(v: u8, id: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

impl Value<'_> for PayloadFormat {
    const TYPE: ValueType = ValueType::Byte;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], id: u8) -> Result<(&[u8], Self), DecodeError> {
        let (r, b) = u8_(v).map_err(finish_err)?;
        let f = match b {
            0 => PayloadFormat::Unspecified,
            1 => PayloadFormat::Utf8,
            _ => return Err(DecodeError::InvalidPropertyValue(id)),
        };
        Ok((r, f))
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        Ok(1)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        let v = match self {
            PayloadFormat::Unspecified => 0,
            PayloadFormat::Utf8 => 1,
        };
        w.array([id, v]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            byte: byte(o.map(|f| f == PayloadFormat::Utf8)),
            ..Lanes::UNSET
        }
    }
}

impl Value<'_> for bool {
    const TYPE: ValueType = ValueType::Byte;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], id: u8) -> Result<(&[u8], Self), DecodeError> {
        let (r, b) = u8_(v).map_err(finish_err)?;
        Ok((r, flag(b, id)?))
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        Ok(1)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        w.array([id, u8::from(self)]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            byte: byte(o),
            ..Lanes::UNSET
        }
    }
}

/// Maximum QoS: 0 or 1 (a server supporting QoS 2 leaves the property out).
impl Value<'_> for QoS {
    const TYPE: ValueType = ValueType::Byte;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], id: u8) -> Result<(&[u8], Self), DecodeError> {
        let (r, b) = u8_(v).map_err(finish_err)?;
        let q = match b {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => return Err(DecodeError::InvalidPropertyValue(id)),
        };
        Ok((r, q))
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        if self == QoS::ExactlyOnce {
            return Err(EncodeError::InvalidValue);
        }
        Ok(1)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        w.array([id, self.bits()]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            byte: match o {
                Some(_) => 0,
                None => 2,
            },
            ..Lanes::UNSET
        }
    }
}

impl Value<'_> for u16 {
    const TYPE: ValueType = ValueType::U16;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], _: u8) -> Result<(&[u8], Self), DecodeError> {
        u16_(v).map_err(finish_err)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        Ok(2)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        let [a, b] = self.to_be_bytes();
        w.array([id, a, b]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            small: tag(&o),
            ..Lanes::UNSET
        }
    }
}

impl Value<'_> for NonZeroU16 {
    const TYPE: ValueType = ValueType::U16;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], id: u8) -> Result<(&[u8], Self), DecodeError> {
        let (r, x) = u16_(v).map_err(finish_err)?;
        Ok((
            r,
            NonZeroU16::new(x).ok_or(DecodeError::InvalidPropertyValue(id))?,
        ))
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        Ok(2)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        let [a, b] = self.get().to_be_bytes();
        w.array([id, a, b]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            small: u32::from(o.map_or(0, NonZeroU16::get)),
            ..Lanes::UNSET
        }
    }
}

impl Value<'_> for u32 {
    const TYPE: ValueType = ValueType::U32;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], _: u8) -> Result<(&[u8], Self), DecodeError> {
        u32_(v).map_err(finish_err)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        Ok(4)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        let [a, b, c, d] = self.to_be_bytes();
        w.array([id, a, b, c, d]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            small: tag(&o),
            ..Lanes::UNSET
        }
    }
}

impl Value<'_> for NonZeroU32 {
    const TYPE: ValueType = ValueType::U32;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &[u8], id: u8) -> Result<(&[u8], Self), DecodeError> {
        let (r, x) = u32_(v).map_err(finish_err)?;
        Ok((r, nonzero_u32(x, id)?))
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        Ok(4)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        let [a, b, c, d] = self.get().to_be_bytes();
        w.array([id, a, b, c, d]);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            small: o.map_or(0, NonZeroU32::get),
            ..Lanes::UNSET
        }
    }
}

impl<'a> Value<'a> for &'a str {
    const TYPE: ValueType = ValueType::Utf8;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &'a [u8], _: u8) -> Result<(&'a [u8], Self), DecodeError> {
        utf8(v).map_err(finish_err)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        str_len(self)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        w.u8(id);
        w.str(self);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            word: ptr(o),
            ..Lanes::UNSET
        }
    }
}

/// Response Topic: a topic name, with no wildcards and not empty.
impl<'a> Value<'a> for TopicName<'a> {
    const TYPE: ValueType = ValueType::Utf8;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &'a [u8], id: u8) -> Result<(&'a [u8], Self), DecodeError> {
        let (r, (s, found)) = utf8_scanned(v).map_err(finish_err)?;
        let topic = TopicName::from_scanned(s, found, false)
            .map_err(|_| DecodeError::InvalidPropertyValue(id))?;
        Ok((r, topic))
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        if self.is_empty() {
            return Err(EncodeError::InvalidValue);
        }
        str_len(self.as_str())
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        w.u8(id);
        w.str(self.as_str());
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            word: ptr(o.map(|t| t.as_str())),
            ..Lanes::UNSET
        }
    }
}

impl<'a> Value<'a> for &'a [u8] {
    const TYPE: ValueType = ValueType::Binary;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(v: &'a [u8], _: u8) -> Result<(&'a [u8], Self), DecodeError> {
        binary(v).map_err(finish_err)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn len(self) -> Result<usize, EncodeError> {
        binary_len(self)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        w.u8(id);
        w.binary(self);
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(o: Option<Self>) -> Lanes {
        Lanes {
            word: ptr(o),
            ..Lanes::UNSET
        }
    }
}

/// The item type of a list-valued property: what differs between the two lists. The rest (the
/// span kept while reading, the view, the emptiness tests, the writing loop) is [`Field`] for
/// [`List`], written once for both.
trait ListValue<'a>: ListItem<'a> {
    /// The wire type of one item's value.
    const TYPE: ValueType;
    /// Whether the property may appear more than once in `ctx`.
    fn may_repeat(ctx: PropertyContext) -> bool;
    /// Check the value after identifier `id` (it starts `v`) and return what follows.
    fn check(v: &'a [u8], id: u8) -> Result<&'a [u8], DecodeError>;
    /// The list viewing `span`, the block's bytes from the first item to the end of the last.
    fn view(span: &'a [u8]) -> List<'a, Self>;
    /// [`Field::measure`] of a list of them: `n` plus the items' length, after `check` and the
    /// checks of each value, and of how often the property may appear in `ctx`. Written out
    /// for each type (a generic loop over a per-item length changed the instruction counts).
    fn measure_all(
        list: &List<'a, Self>,
        n: usize,
        ctx: PropertyContext,
        check: impl Fn() -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError>;
    /// Write identifier `id` and the value.
    fn write(self, id: u8, w: &mut Writer<'_>);
}

/// Subscription identifiers: repeatable in a PUBLISH (a server's, `[MQTT-3.3.4-4]`), once in a
/// SUBSCRIBE; each 1..=268,435,455.
impl<'a> ListValue<'a> for u32 {
    const TYPE: ValueType = ValueType::Varint;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn may_repeat(ctx: PropertyContext) -> bool {
        ctx == PropertyContext::Packet(PacketType::Publish)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn check(v: &'a [u8], id: u8) -> Result<&'a [u8], DecodeError> {
        let (r, x) = varint(v).map_err(finish_err)?;
        if x == 0 {
            return Err(DecodeError::InvalidPropertyValue(id));
        }
        Ok(r)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn view(span: &'a [u8]) -> List<'a, Self> {
        List::from_wire(span)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn measure_all(
        list: &List<'a, Self>,
        mut n: usize,
        ctx: PropertyContext,
        check: impl Fn() -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        let mut count = 0usize;
        for_items!(list, |ids| {
            for id in ids {
                check()?;
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
        Ok(n)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        w.u8(id);
        w.varint(self);
    }
}

/// User properties: repeatable everywhere they are allowed, order kept.
impl<'a> ListValue<'a> for UserProperty<'a> {
    const TYPE: ValueType = ValueType::Pair;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn may_repeat(_: PropertyContext) -> bool {
        true
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn check(v: &'a [u8], _: u8) -> Result<&'a [u8], DecodeError> {
        let (r, ()) = utf8_check_only(v).map_err(finish_err)?;
        let (r, ()) = utf8_check_only(r).map_err(finish_err)?;
        Ok(r)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn view(span: &'a [u8]) -> List<'a, Self> {
        // Valid UTF-8 as a whole (always, when the pairs are ASCII and shorter than 128 bytes:
        // identifiers and lengths are then ASCII too), the span is kept as text, and reading the
        // pairs slices them out of it with no UTF-8 check per string. The strings were each
        // checked when read, so a string boundary is a character boundary of the span.
        match core::str::from_utf8(span) {
            Ok(text) => List::from_text(text),
            Err(_) => List::from_wire(span),
        }
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn measure_all(
        list: &List<'a, Self>,
        mut n: usize,
        _: PropertyContext,
        check: impl Fn() -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        for_items!(list, |users| {
            for (k, v) in users {
                check()?;
                n = item(n, str_len(k)?.saturating_add(str_len(v)?));
            }
        });
        Ok(n)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(self, id: u8, w: &mut Writer<'_>) {
        let (k, v) = self;
        w.u8(id);
        w.str(k);
        w.str(v);
    }
}

/// A list-valued property (subscription identifiers, user properties): kept as a view of the
/// block from its first item to the end of its last.
impl<'a, T: ListValue<'a>> Field<'a> for List<'a, T> {
    const TYPE: ValueType = T::TYPE;
    const EMPTY: Self = List::empty();
    type Span = Option<(usize, usize)>;

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn may_repeat(ctx: PropertyContext) -> bool {
        T::may_repeat(ctx)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn read(
        &mut self,
        so_far: &mut Self::Span,
        id: u8,
        v: &'a [u8],
        block: &'a [u8],
        item: &'a [u8],
    ) -> Result<&'a [u8], DecodeError> {
        let r = T::check(v, id)?;
        *so_far = Some(span(*so_far, block, item, r));
        Ok(r)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn finish(&mut self, so_far: Self::Span, block: &'a [u8]) {
        if let Some((start, end)) = so_far {
            *self = T::view(block.get(start..end).unwrap_or(block));
        }
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn unset_plain(&self) -> bool {
        true
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn unset_list(&self) -> bool {
        self.is_empty()
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn refused(&self, not_allowed: bool) -> bool {
        not_allowed && !self.is_empty()
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn refused_list(&self, not_allowed: bool) -> bool {
        self.refused(not_allowed)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn lanes(&self, lists: bool) -> Lanes {
        Lanes {
            word: if lists { self.view_len() } else { 0 },
            ..Lanes::UNSET
        }
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn measure(
        &self,
        n: usize,
        ctx: PropertyContext,
        check: impl Fn() -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        T::measure_all(self, n, ctx, check)
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn write(&self, id: u8, w: &mut Writer<'_>) {
        for_items!(self, |items| {
            for x in items {
                x.write(id, w);
            }
        });
    }
}

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
    let props = Properties::parse_block(block, ctx).map_err(nom::Err::Failure)?;
    Ok((rest, props))
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
#[cfg_attr(not(feature = "size"), inline(always))]
fn ptr<T: ?Sized>(o: Option<&T>) -> usize {
    match o {
        Some(r) => core::ptr::from_ref(r).cast::<u8>().addr(),
        None => 0,
    }
}

/// For the tests of many properties at once: 0 exactly when `None`.
#[cfg_attr(not(feature = "size"), inline(always))]
fn tag<T>(o: &Option<T>) -> u32 {
    u32::from(o.is_some())
}

/// For the tests of many properties at once: 2 when `None`, a value with bit 1 clear when set
/// (the byte the `Option<bool>` itself holds).
#[cfg_attr(not(feature = "size"), inline(always))]
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

    /// The table gives the rules the hand-written matches gave before it (§2.2.2.2, table 2-4,
    /// and each packet's property list), for every identifier in every context.
    #[test]
    fn table_matches_the_specification() {
        const fn allowed_reference(id: u8, ctx: PropertyContext) -> bool {
            use PacketType::*;
            use PropertyContext::{Packet, Will};
            match id {
                0x01 | 0x02 | 0x03 | 0x08 | 0x09 => matches!(ctx, Packet(Publish) | Will),
                0x0B => matches!(ctx, Packet(Publish) | Packet(Subscribe)),
                0x11 => matches!(ctx, Packet(Connect) | Packet(ConnAck) | Packet(Disconnect)),
                0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                    matches!(ctx, Packet(ConnAck))
                }
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
        fn type_reference(id: u8) -> Option<ValueType> {
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
        let mut contexts = std::vec![PropertyContext::Will];
        for nibble in 1..=15 {
            contexts.push(PropertyContext::Packet(
                PacketType::from_nibble(nibble).unwrap(),
            ));
        }
        let mut defined = 0;
        for id in 0..=255u8 {
            assert_eq!(value_type(id), type_reference(id), "{id:#x}");
            defined += usize::from(value_type(id).is_some());
            for &ctx in &contexts {
                assert_eq!(
                    is_allowed(id, ctx),
                    allowed_reference(id, ctx),
                    "{id:#x} in {ctx:?}"
                );
            }
        }
        assert_eq!(defined, 27);
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
