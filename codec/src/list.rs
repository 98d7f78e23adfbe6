//! Lazy, uncapped lists: SUBSCRIBE's filters, UNSUBSCRIBE's filters, SUBACK/UNSUBACK reason codes,
//! user properties and subscription identifiers.
//!
//! A decoded [`List`] is a view over the packet's own bytes, validated once when the packet was
//! decoded; iterating it re-reads those bytes and allocates nothing, and no fixed capacity can
//! reject or truncate a valid packet. A [`List`] built for encoding borrows the caller's slice.

use core::fmt;

/// Evaluate `$body` with `$it` bound to an iterator over the items of the list `$list`: a plain
/// slice iterator for a list built with [`List::new`] (what encoders are given), the list's own
/// [`ListIter`] for a decoded one. The body is compiled once for each.
macro_rules! for_items {
    ($list:expr, |$it:ident| $body:expr) => {
        match $list.as_items() {
            Some(items) => {
                let $it = items.iter().copied();
                $body
            }
            None => {
                let $it = $list.iter();
                $body
            }
        }
    };
}
pub(crate) use for_items;

/// A user property: a UTF-8 string pair (5.0 §3.1.2.11.8). Order and repeats are kept.
pub type UserProperty<'a> = (&'a str, &'a str);

/// Seals [`ListItem`]: the item types implement it beside their packets.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// An element a [`List`] can hold, and how to read the next one from validated wire bytes.
pub trait ListItem<'a>: Copy + sealed::Sealed + 'a {
    #[doc(hidden)]
    fn next_from_wire(rest: &mut &'a [u8]) -> Option<Self>;

    /// The next item from validated wire bytes that are also valid UTF-8 as a whole (see
    /// [`Repr::Text`]); only lists of strings can be stored so.
    #[doc(hidden)]
    fn next_from_text(rest: &mut &'a str) -> Option<Self> {
        let _ = rest;
        None
    }
}

#[derive(Clone, Copy)]
enum Repr<'a, T> {
    /// Validated wire bytes (for property lists: the whole property block).
    Wire(&'a [u8]),
    /// Validated wire bytes that are valid UTF-8 as a whole, as a SUBSCRIBE or UNSUBSCRIBE payload
    /// is when its filters are shorter than 128 bytes (the length and options bytes are then
    /// ASCII), and the span of a property block holding its user properties when they are ASCII
    /// and shorter than 128 bytes. Items are sliced out as `&str` without validating each
    /// string's UTF-8 again.
    Text(&'a str),
    /// A caller's items.
    Items(&'a [T]),
}

/// A list of `T`, either decoded (borrowing the packet bytes) or given (borrowing a slice).
#[derive(Clone, Copy)]
pub struct List<'a, T> {
    repr: Repr<'a, T>,
}

/// User properties of a packet.
pub type UserProperties<'a> = List<'a, UserProperty<'a>>;
/// Subscription identifiers of a PUBLISH (several when a server sends one message matching many
/// subscriptions, `[MQTT-3.3.4-4]`) or of a SUBSCRIBE (at most one).
pub type SubscriptionIdentifiers<'a> = List<'a, u32>;

impl<'a, T: ListItem<'a>> List<'a, T> {
    /// A list of the caller's items, for encoding.
    pub const fn new(items: &'a [T]) -> Self {
        List {
            repr: Repr::Items(items),
        }
    }

    /// The empty list.
    pub const fn empty() -> Self {
        List {
            repr: Repr::Items(&[]),
        }
    }

    pub(crate) const fn from_wire(bytes: &'a [u8]) -> Self {
        List {
            repr: Repr::Wire(bytes),
        }
    }

    /// A decoded list of strings whose wire bytes are valid UTF-8 as a whole.
    pub(crate) const fn from_text(text: &'a str) -> Self {
        List {
            repr: Repr::Text(text),
        }
    }

    /// Iterate the items in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        match self.repr {
            Repr::Wire(bytes) => ListIter {
                repr: Repr::Wire(bytes),
            },
            Repr::Text(text) => ListIter {
                repr: Repr::Text(text),
            },
            Repr::Items(items) => ListIter {
                repr: Repr::Items(items),
            },
        }
    }

    /// The caller's items, for a list built with [`List::new`]: encoders loop over the slice
    /// directly rather than through [`ListIter`], which matches the representation at every
    /// item.
    #[inline]
    pub(crate) fn as_items(&self) -> Option<&'a [T]> {
        match self.repr {
            Repr::Items(items) => Some(items),
            Repr::Wire(_) | Repr::Text(_) => None,
        }
    }

    /// The length of what the list is a view of (a caller's items, or the wire bytes or text
    /// of a decoded list): 0 only if the list is empty (a decoded list is not read, and is made
    /// only of bytes holding items, so in practice 0 exactly when the list is empty). One load,
    /// whatever the representation: for tests of many fields at once that want a value that is
    /// 0 when a field is unset (`Properties::surely_empty`).
    #[cfg_attr(not(feature = "size"), inline(always))]
    pub(crate) const fn view_len(&self) -> usize {
        match self.repr {
            Repr::Items(items) => items.len(),
            Repr::Wire(bytes) => bytes.len(),
            Repr::Text(text) => text.len(),
        }
    }

    /// Whether there are no items.
    #[inline]
    pub fn is_empty(&self) -> bool {
        if let Repr::Items(items) = self.repr {
            return items.is_empty();
        }
        self.iter().next().is_none()
    }

    /// How many items there are (counts by iterating a decoded list).
    pub fn len(&self) -> usize {
        match self.repr {
            Repr::Items(items) => items.len(),
            Repr::Wire(_) | Repr::Text(_) => self.iter().count(),
        }
    }
}

impl<'a, T: ListItem<'a>> Default for List<'a, T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<'a, T: ListItem<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

impl<'a, T: ListItem<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: ListItem<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: ListItem<'a> + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<'a, T: ListItem<'a> + defmt::Format> defmt::Format for List<'a, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{}", item);
        }
        defmt::write!(f, "]");
    }
}

/// Iterator over a [`List`].
#[derive(Clone)]
pub struct ListIter<'a, T> {
    repr: Repr<'a, T>,
}

impl<'a, T: ListItem<'a>> Iterator for ListIter<'a, T> {
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            Repr::Items(items) => {
                let (first, tail) = items.split_first()?;
                *items = tail;
                Some(*first)
            }
            Repr::Wire(rest) => next_from_wire(rest),
            Repr::Text(rest) => next_from_text(rest),
        }
    }
}

// Out of line so that the loops encoders run over a caller's items stay small: inlining the
// wire readers into every `for item in list` made the encode loop spill registers.
#[inline(never)]
fn next_from_wire<'a, T: ListItem<'a>>(rest: &mut &'a [u8]) -> Option<T> {
    T::next_from_wire(rest)
}

#[inline(never)]
fn next_from_text<'a, T: ListItem<'a>>(rest: &mut &'a str) -> Option<T> {
    T::next_from_text(rest)
}

impl<T> fmt::Debug for ListIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListIter")
    }
}

/// A two-byte length and that many bytes, sliced from `text` (whose bytes are the wire bytes):
/// the field and the text after it. `None` if the field is cut short or would split a character.
pub(crate) fn next_text_field(text: &str) -> Option<(&str, &str)> {
    let (&hi, tail) = text.as_bytes().split_first()?;
    let &lo = tail.first()?;
    let end = usize::from(u16::from_be_bytes([hi, lo])).checked_add(2)?;
    Some((text.get(2..end)?, text.get(end..)?))
}
