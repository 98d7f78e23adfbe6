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

/// `s`'s `/` separators (counted only when there could be too many: a topic of at most
/// [`MAX_TOPIC_SEPARATORS`] bytes cannot have too many), and whether it has a byte that is not
/// printable ASCII (so [`disallowed_code_point`] must look closer). Eight bytes at a time: this
/// runs on every PUBLISH (callgrind, `wren-bench fan-in`: a byte-at-a-time version cost ~130
/// instructions per message).
fn scan(s: &str) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20 (Bit Twiddling Hacks' `hasless(w, 0x20)`), or of 0x7F and above (its
    // high bit set, or set by adding one).
    let unusual_word = |w: u64| {
        let below = w.wrapping_sub(ONES.wrapping_mul(0x20)) & !w & HIGH;
        let above = (w.wrapping_add(ONES) | w) & HIGH;
        below | above != 0
    };
    let bytes = s.as_bytes();
    let chunks = bytes.chunks_exact(8);
    let tail = chunks.remainder();
    let mut unusual = false;
    for chunk in chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        unusual |= unusual_word(u64::from_le_bytes(w));
    }
    unusual |= tail.iter().any(|&b| !(0x20..0x7F).contains(&b));
    let separators = if bytes.len() > MAX_TOPIC_SEPARATORS {
        bytes.iter().filter(|&&b| b == b'/').count()
    } else {
        0
    };
    (separators, unusual)
}

/// The first code point of `s` that strings should not contain (see the module), if any.
pub(super) fn disallowed_code_point(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        let cp = u32::from(c);
        matches!(cp, 0x01..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF) || cp & 0xFFFE == 0xFFFE
    })
}

/// A string of a client's (its `what`: "client id", "user name"), refused if it holds a
/// disallowed code point.
pub(super) fn check_string(what: &str, s: &str) -> Result<(), CloseReason> {
    let (_, unusual) = scan(s);
    check_code_points(what, s, unusual)
}

fn check_code_points(what: &str, s: &str, unusual: bool) -> Result<(), CloseReason> {
    if !unusual {
        return Ok(());
    }
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
    let (separators, unusual) = scan(topic);
    check_depth(what, separators, CloseReason::Malformed)?;
    check_code_points(what, topic, unusual)
}

/// A PUBLISH topic name: too deep is a Protocol Error here (Mosquitto 2.0 answers a 5.0 PUBLISH
/// to too deep a topic with 0x82, a filter with 0x81); a disallowed code point is Malformed.
pub(super) fn check_topic_name(topic: &str) -> Result<(), CloseReason> {
    let (separators, unusual) = scan(topic);
    check_depth("topic", separators, CloseReason::ProtocolError)?;
    check_code_points("topic", topic, unusual)
}

/// At most [`MAX_TOPIC_SEPARATORS`] separators, else `reason`.
fn check_depth(what: &str, separators: usize, reason: CloseReason) -> Result<(), CloseReason> {
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

    /// The word-at-a-time scan finds exactly the bytes the byte-at-a-time rule does.
    #[test]
    fn scan_matches_the_byte_rule() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => (next() % 0x80) as u8,
                    _ => 0x20 + (next() % 0x5F) as u8,
                })
                .collect();
            let s = std::str::from_utf8(&bytes).unwrap();
            let expected = bytes.iter().any(|&b| !(0x20..0x7F).contains(&b));
            assert_eq!(scan(s).1, expected, "{bytes:02x?}");
        }
        for b in 0u8..0x80 {
            let s = format!("abcdefg{}", char::from(b));
            assert_eq!(scan(&s).1, !(0x20..0x7F).contains(&b), "{b:#x}");
        }
        assert!(scan("abcdefgh\u{e9}").1);
        assert!(scan("\u{e9}bcdefghij").1);
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
