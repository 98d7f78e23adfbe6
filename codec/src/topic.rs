//! Topic names and topic filters (MQTT §4.7), shared by the codec, the broker and the clients.
//!
//! Both are validated borrowed strings. [`TopicFilter::matches`] implements §4.7's matching:
//! `+` matches exactly one level, `#` the parent level and everything below, and a topic starting
//! with `$` is not matched by a filter starting with a wildcard (`[MQTT-4.7.2-1]`).

use core::fmt;

use crate::data::{HAS_NUL, HAS_WILDCARD, scan};
use crate::error::DecodeError;

/// A topic name: the topic a message is published to. Never contains `+` or `#`.
///
/// It is empty only in a 5.0 PUBLISH that names its topic by Topic Alias; [`TopicName::new`]
/// refuses the empty string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TopicName<'a>(&'a str);

impl<'a> TopicName<'a> {
    /// Validate a topic name: non-empty, no wildcards, no U+0000, at most 65,535 bytes.
    ///
    /// ```
    /// use wren_codec::TopicName;
    /// assert!(TopicName::new("site/kitchen/temperature").is_ok());
    /// assert!(TopicName::new("site/+/temperature").is_err());
    /// ```
    pub fn new(topic: &'a str) -> Result<Self, DecodeError> {
        if topic.is_empty() {
            return Err(DecodeError::EmptyTopic);
        }
        Self::new_allow_empty(topic)
    }

    /// [`TopicName::new`] as a `const fn` (the same checks and errors, a byte at a time), so a
    /// topic can be checked at compile time and kept in a `const` or `static`:
    ///
    /// ```
    /// use wren_codec::TopicName;
    /// const TEMPERATURE: TopicName<'static> = match TopicName::new_const("site/temperature") {
    ///     Ok(t) => t,
    ///     Err(_) => panic!("invalid topic name"),
    /// };
    /// assert_eq!(TEMPERATURE, TopicName::new("site/temperature").unwrap());
    /// ```
    pub const fn new_const(topic: &'a str) -> Result<Self, DecodeError> {
        if topic.is_empty() {
            return Err(DecodeError::EmptyTopic);
        }
        if topic.len() > u16::MAX as usize {
            return Err(DecodeError::UnexpectedEnd);
        }
        let found = scan_const(topic.as_bytes());
        if found & HAS_NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        if found & HAS_WILDCARD != 0 {
            return Err(DecodeError::WildcardInTopicName);
        }
        Ok(TopicName(topic))
    }

    /// Validate everything but emptiness (a 5.0 PUBLISH with a Topic Alias may have an empty topic).
    pub(crate) fn new_allow_empty(topic: &'a str) -> Result<Self, DecodeError> {
        if topic.len() > usize::from(u16::MAX) {
            return Err(DecodeError::UnexpectedEnd);
        }
        let found = scan(topic.as_bytes());
        if found & HAS_NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        if found & HAS_WILDCARD != 0 {
            return Err(DecodeError::WildcardInTopicName);
        }
        Ok(TopicName(topic))
    }

    /// A topic name from a decoded string that [`scan`] found `found` in, U+0000 included: the
    /// checks of [`TopicName::new`] (of [`TopicName::new_allow_empty`] with `allow_empty`) and
    /// the same errors, without a second pass over the bytes.
    #[inline]
    pub(crate) fn from_scanned(
        topic: &'a str,
        found: u8,
        allow_empty: bool,
    ) -> Result<Self, DecodeError> {
        if topic.is_empty() && !allow_empty {
            return Err(DecodeError::EmptyTopic);
        }
        if topic.len() > usize::from(u16::MAX) {
            return Err(DecodeError::UnexpectedEnd);
        }
        if found & HAS_NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        if found & HAS_WILDCARD != 0 {
            return Err(DecodeError::WildcardInTopicName);
        }
        Ok(TopicName(topic))
    }

    /// The empty topic of a PUBLISH that is named by its Topic Alias alone.
    pub const fn alias_only() -> TopicName<'static> {
        TopicName("")
    }

    /// The topic as a string.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether this is a `$` topic (`$SYS/...`), which leading wildcards do not match.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// Whether the topic is empty (only with a Topic Alias).
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The topic's levels, split at `/`.
    pub fn levels(&self) -> core::str::Split<'a, char> {
        self.0.split('/')
    }
}

/// `+` only as a whole level, `#` only as the whole last level (§4.7.1).
// A `const fn` (for `TopicFilter::new_const`), so a loop over slice patterns.
const fn wildcards_well_placed(bytes: &[u8]) -> bool {
    // The byte before the first level counts as a separator.
    let mut prev = b'/';
    let mut rest = bytes;
    while let [b, tail @ ..] = rest {
        let b = *b;
        if b == b'+' || b == b'#' {
            let alone = prev == b'/'
                && if b == b'#' {
                    tail.is_empty()
                } else {
                    matches!(tail.first(), None | Some(b'/'))
                };
            if !alone {
                return false;
            }
        }
        prev = b;
        rest = tail;
    }
    true
}

/// What [`scan`] finds (U+0000, wildcards), a byte at a time in a `const fn`.
const fn scan_const(bytes: &[u8]) -> u8 {
    let mut found = 0;
    let mut rest = bytes;
    while let [b, tail @ ..] = rest {
        match *b {
            0 => found |= HAS_NUL,
            b'+' | b'#' => found |= HAS_WILDCARD,
            _ => {}
        }
        rest = tail;
    }
    found
}

impl fmt::Debug for TopicName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for TopicName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A topic filter: a topic pattern a client subscribes to, with `+` and `#` wildcards.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TopicFilter<'a>(&'a str);

/// The prefix of a 5.0 shared subscription.
pub const SHARE_PREFIX: &str = "$share/";

impl<'a> TopicFilter<'a> {
    /// Validate a topic filter: non-empty, no U+0000, `#` only alone or as the last level, `+` only
    /// as a whole level. A `$share/...` filter is validated here as an ordinary filter; call
    /// [`TopicFilter::shared`] to split and check its share name.
    ///
    /// ```
    /// use wren_codec::{TopicFilter, TopicName};
    /// let f = TopicFilter::new("site/+/temperature").unwrap();
    /// assert!(f.matches(TopicName::new("site/kitchen/temperature").unwrap()));
    /// assert!(!f.matches(TopicName::new("site/kitchen/humidity").unwrap()));
    /// assert!(TopicFilter::new("site/#/x").is_err());
    /// ```
    pub fn new(filter: &'a str) -> Result<Self, DecodeError> {
        if filter.is_empty() {
            return Err(DecodeError::EmptyTopic);
        }
        if filter.len() > usize::from(u16::MAX) {
            return Err(DecodeError::UnexpectedEnd);
        }
        let found = scan(filter.as_bytes());
        if found & HAS_NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        if found & HAS_WILDCARD != 0 && !wildcards_well_placed(filter.as_bytes()) {
            return Err(DecodeError::InvalidTopicFilter);
        }
        Ok(TopicFilter(filter))
    }

    /// [`TopicFilter::new`] as a `const fn` (the same checks and errors, a byte at a time), so a
    /// filter can be checked at compile time and kept in a `const` or `static`:
    ///
    /// ```
    /// use wren_codec::TopicFilter;
    /// const COMMANDS: TopicFilter<'static> = match TopicFilter::new_const("site/+/cmd") {
    ///     Ok(f) => f,
    ///     Err(_) => panic!("invalid topic filter"),
    /// };
    /// assert_eq!(COMMANDS.as_str(), "site/+/cmd");
    /// ```
    pub const fn new_const(filter: &'a str) -> Result<Self, DecodeError> {
        if filter.is_empty() {
            return Err(DecodeError::EmptyTopic);
        }
        if filter.len() > u16::MAX as usize {
            return Err(DecodeError::UnexpectedEnd);
        }
        let found = scan_const(filter.as_bytes());
        if found & HAS_NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        if found & HAS_WILDCARD != 0 && !wildcards_well_placed(filter.as_bytes()) {
            return Err(DecodeError::InvalidTopicFilter);
        }
        Ok(TopicFilter(filter))
    }

    /// A filter read back from packet bytes that [`TopicFilter::new`] already accepted when the
    /// packet was decoded (lazy lists re-read their bytes; validating twice would cost as much as
    /// decoding).
    pub(crate) const fn prevalidated(filter: &'a str) -> Self {
        TopicFilter(filter)
    }

    /// The filter as a string.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }

    /// The filter's levels, split at `/`.
    pub fn levels(&self) -> core::str::Split<'a, char> {
        self.0.split('/')
    }

    /// For a 5.0 shared subscription `$share/{ShareName}/{filter}`: the share name and the filter.
    /// `Ok(None)` for an ordinary filter; an error if the share name is empty or holds a wildcard,
    /// or no filter follows it (`[MQTT-4.8.2-1]`, `[MQTT-4.8.2-2]`).
    ///
    /// ```
    /// use wren_codec::TopicFilter;
    /// let (group, f) = TopicFilter::new("$share/g1/site/#").unwrap().shared().unwrap().unwrap();
    /// assert_eq!((group, f.as_str()), ("g1", "site/#"));
    /// ```
    pub fn shared(&self) -> Result<Option<(&'a str, TopicFilter<'a>)>, DecodeError> {
        let Some(rest) = self.0.strip_prefix(SHARE_PREFIX) else {
            return Ok(None);
        };
        let Some((share, filter)) = rest.split_once('/') else {
            return Err(DecodeError::InvalidSharedSubscription);
        };
        if share.is_empty() || share.contains(['+', '#']) {
            return Err(DecodeError::InvalidSharedSubscription);
        }
        let filter =
            TopicFilter::new(filter).map_err(|_| DecodeError::InvalidSharedSubscription)?;
        Ok(Some((share, filter)))
    }

    /// Whether a message published to `topic` matches this filter (§4.7).
    ///
    /// `sport/#` matches `sport` itself; `+` matches an empty level; a topic starting with `$`
    /// is not matched by a filter whose first level is a wildcard (`[MQTT-4.7.2-1]`).
    pub fn matches(&self, topic: TopicName<'_>) -> bool {
        if topic.is_system() && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut filter_levels = self.levels();
        let mut topic_levels = topic.levels();
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Debug for TopicFilter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for TopicFilter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(filter: &str, topic: &str) -> bool {
        TopicFilter::new(filter)
            .unwrap()
            .matches(TopicName::new(topic).unwrap())
    }

    #[test]
    fn matching_per_section_4_7() {
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(m(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(m("sport/#", "sport"));
        assert!(m("#", "a/b/c"));
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!m("sport/+", "sport"));
        assert!(m("sport/+", "sport/"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        assert!(m("+", "finance"));
        assert!(!m("a/b", "a/b/c"));
        assert!(!m("a/b/c", "a/b"));
        assert!(m("a//b", "a//b"));
        assert!(!m("A", "a"), "matching is case-sensitive");
    }

    #[test]
    fn dollar_topics_not_matched_by_leading_wildcards() {
        assert!(!m("#", "$SYS/broker/uptime"));
        assert!(!m("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(m("$SYS/#", "$SYS/broker/uptime"));
        assert!(m("$SYS/monitor/+", "$SYS/monitor/Clients"));
    }

    #[test]
    fn filter_validation() {
        for ok in [
            "#",
            "+",
            "+/+",
            "a/#",
            "/#",
            "a/+/b",
            "+/tennis/#",
            "$SYS/#",
            "a b/c",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        for bad in ["a#", "a/#/b", "a+", "a/b+/c", "#/", "##", "++"] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(DecodeError::InvalidTopicFilter),
                "{bad}"
            );
        }
        assert_eq!(TopicFilter::new(""), Err(DecodeError::EmptyTopic));
        assert_eq!(TopicFilter::new("a\0b"), Err(DecodeError::NullCharacter));
    }

    #[test]
    fn name_validation() {
        assert_eq!(TopicName::new("a/+"), Err(DecodeError::WildcardInTopicName));
        assert_eq!(TopicName::new("#"), Err(DecodeError::WildcardInTopicName));
        assert_eq!(TopicName::new(""), Err(DecodeError::EmptyTopic));
        assert!(TopicName::new("/").is_ok());
    }

    #[test]
    fn shared_subscriptions() {
        let f = TopicFilter::new("$share/group/a/+").unwrap();
        let (g, inner) = f.shared().unwrap().unwrap();
        assert_eq!(g, "group");
        assert_eq!(inner.as_str(), "a/+");
        assert_eq!(TopicFilter::new("a/b").unwrap().shared(), Ok(None));
        assert_eq!(
            TopicFilter::new("$share/g+/a"),
            Err(DecodeError::InvalidTopicFilter)
        );
        for bad in ["$share//a", "$share/g", "$share/g/"] {
            assert_eq!(
                TopicFilter::new(bad).unwrap().shared(),
                Err(DecodeError::InvalidSharedSubscription),
                "{bad}"
            );
        }
    }
}
