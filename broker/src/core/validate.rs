//! What the broker refuses in strings that the codec lets through, as Mosquitto does where the
//! specification leaves room:
//!
//! - **Disallowed code points.** A client id, user name, will topic, topic name or topic filter
//!   containing a control character (U+0001–U+001F, U+007F–U+009F) or a non-character
//!   (U+FDD0–U+FDEF, U+xFFFE, U+xFFFF) is Malformed. The specification says such strings
//!   SHOULD NOT be sent and that a receiver MAY treat them as Malformed (5.0 §1.5.4, 3.1.1
//!   §1.5.3); Mosquitto's `mosquitto_validate_utf8` does. (U+0000 and surrogates the codec
//!   already refuses: [MQTT-1.5.4-1], [MQTT-1.5.4-2].)
//! - **Topic depth.** A topic name or filter with more than 200 `/` separators (201 levels) is
//!   Malformed, as Mosquitto's `TOPIC_HIERARCHY_LIMIT`: `"/"` × 200 is accepted, `"/"` × 201
//!   is not. It bounds the work and memory of one subscription or one match.
//!
//! Both close the connection in every packet that carries the string: 5.0 DISCONNECT 0x81, but
//! 0x82 for a PUBLISH topic too deep, as Mosquitto answers (checked against Mosquitto by
//! `tests/mosquitto_parity.rs`).

use super::close::CloseReason;

/// Most `/` separators in a topic name or filter (Mosquitto's `TOPIC_HIERARCHY_LIMIT`).
pub(super) const MAX_TOPIC_SEPARATORS: usize = 200;

/// The first code point of `s` that strings should not contain (see the module), if any.
pub(super) fn disallowed_code_point(s: &str) -> Option<char> {
    // ASCII fast path (almost every topic and id): only the C0 controls and DEL to look for.
    if s.is_ascii() {
        return s.bytes().find(|&b| b < 0x20 || b == 0x7F).map(char::from);
    }
    s.chars().find(|&c| {
        let cp = u32::from(c);
        matches!(cp, 0x01..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF) || cp & 0xFFFE == 0xFFFE
    })
}

/// A string of a client's (its `what`: "client id", "user name"), refused if it holds a
/// disallowed code point.
pub(super) fn check_string(what: &str, s: &str) -> Result<(), CloseReason> {
    match disallowed_code_point(s) {
        None => Ok(()),
        Some(c) => {
            log::debug!("Refused {what} containing U+{:04X}.", u32::from(c));
            Err(CloseReason::Malformed)
        }
    }
}

/// A topic filter or will topic (its `what`), refused as Malformed if it holds a disallowed
/// code point or more than [`MAX_TOPIC_SEPARATORS`] separators.
pub(super) fn check_topic(what: &str, topic: &str) -> Result<(), CloseReason> {
    check_depth(what, topic, CloseReason::Malformed)?;
    check_string(what, topic)
}

/// A PUBLISH topic name: too deep is a Protocol Error here (Mosquitto 2.0 answers a 5.0 PUBLISH
/// to too deep a topic with 0x82, a filter with 0x81); a disallowed code point is Malformed.
pub(super) fn check_topic_name(topic: &str) -> Result<(), CloseReason> {
    check_depth("topic", topic, CloseReason::ProtocolError)?;
    check_string("topic", topic)
}

/// At most [`MAX_TOPIC_SEPARATORS`] separators in `topic`, else `reason`.
fn check_depth(what: &str, topic: &str, reason: CloseReason) -> Result<(), CloseReason> {
    let separators = topic.bytes().filter(|&b| b == b'/').count();
    if separators > MAX_TOPIC_SEPARATORS {
        log::debug!(
            "Refused {what} with {} levels (at most {}).",
            separators.saturating_add(1),
            MAX_TOPIC_SEPARATORS + 1
        );
        return Err(reason);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disallowed_code_points() {
        for s in [
            "a\u{1}",
            "\u{1F}",
            "x\u{7F}y",
            "\u{80}",
            "\u{9F}",
            "\u{FDD0}",
            "\u{FDEF}",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{1FFFE}",
            "\u{10FFFF}",
            "é\u{1}",
        ] {
            assert!(disallowed_code_point(s).is_some(), "{s:?}");
            assert_eq!(check_string("t", s), Err(CloseReason::Malformed));
        }
        for s in [
            "",
            "a/b",
            " ~",
            "\u{A0}",
            "é",
            "\u{FDCF}",
            "\u{FDF0}",
            "\u{FFFD}",
            "\u{1F600}",
            "\u{FEFF}",
        ] {
            assert_eq!(disallowed_code_point(s), None, "{s:?}");
            assert_eq!(check_string("t", s), Ok(()));
        }
    }

    #[test]
    fn topic_depth_as_mosquitto_counts_it() {
        assert_eq!(check_topic("t", &"/".repeat(200)), Ok(()));
        assert_eq!(check_topic("t", &("abc/".repeat(199) + "d")), Ok(()));
        assert_eq!(check_topic("t", &("abc/".repeat(200) + "d")), Ok(()));
        assert_eq!(
            check_topic("t", &"/".repeat(201)),
            Err(CloseReason::Malformed)
        );
        assert_eq!(
            check_topic("t", &("abc/".repeat(201) + "d")),
            Err(CloseReason::Malformed)
        );
        assert_eq!(
            check_topic("t", &"/".repeat(65535)),
            Err(CloseReason::Malformed)
        );
        assert_eq!(check_topic("t", "a/\u{2}"), Err(CloseReason::Malformed));
        assert_eq!(
            check_topic_name(&"/".repeat(201)),
            Err(CloseReason::ProtocolError)
        );
        assert_eq!(check_topic_name("a/\u{2}"), Err(CloseReason::Malformed));
        assert_eq!(check_topic_name(&"/".repeat(200)), Ok(()));
    }
}
