//! The string checks: one SWAR pass over a string's bytes finds U+0000, the `+` / `#`
//! wildcards and non-ASCII bytes together, and the MQTT UTF-8 rules built on it.

use crate::error::DecodeError;

/// Validate MQTT UTF-8 rules on raw bytes. `core::str::from_utf8` already rejects surrogates and
/// overlong forms; U+0000 must be checked on its own.
#[inline]
pub fn check_utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    let found = scan(bytes);
    let s = core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    if found & HAS_NUL != 0 {
        return Err(DecodeError::NullCharacter);
    }
    Ok(s)
}

/// MQTT UTF-8 rules on a Rust string: no U+0000.
pub fn check_str(s: &str) -> Result<(), DecodeError> {
    if scan(s.as_bytes()) & HAS_NUL != 0 {
        Err(DecodeError::NullCharacter)
    } else {
        Ok(())
    }
}

/// [`scan`] bit: the bytes hold U+0000.
pub(crate) const HAS_NUL: u8 = 1;
/// [`scan`] bit: the bytes hold a `+` or `#` wildcard.
pub(crate) const HAS_WILDCARD: u8 = 2;
/// [`scan`] bit: the bytes hold a byte above 0x7F (they are not ASCII).
pub(crate) const NON_ASCII: u8 = 4;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const PLUSES: u64 = 0x2B2B_2B2B_2B2B_2B2B;
/// `#` (0x23) and `+` (0x2B) differ in bit 3 only, and no other byte becomes either with it set.
const BIT3S: u64 = 0x0808_0808_0808_0808;

/// A zero byte of `w` has its high bit set in the result; with no zero byte, no high bit is set
/// (a borrow can only give a false hit in a byte above a true zero byte, so "any" is exact, also
/// when or'ed over several words).
#[cfg_attr(not(feature = "size"), inline(always))]
const fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w
}

/// [`scan`]'s accumulators: zero bytes, wildcard bytes, and the words themselves (for the high
/// bits of non-ASCII bytes).
#[derive(Clone, Copy)]
struct Found {
    nul: u64,
    wild: u64,
    high: u64,
}

impl Found {
    #[cfg_attr(not(feature = "size"), inline(always))]
    fn add(&mut self, w: u64) {
        self.nul |= zero_bytes(w);
        self.wild |= zero_bytes((w | BIT3S) ^ PLUSES);
        self.high |= w;
    }

    #[cfg_attr(not(feature = "size"), inline(always))]
    fn bits(self) -> u8 {
        u8::from(self.nul & HIGHS != 0)
            | (u8::from(self.wild & HIGHS != 0) << 1)
            | (u8::from(self.high & HIGHS != 0) << 2)
    }
}

/// A byte that sets none of [`scan`]'s bits, to fill a word out with.
const PAD: u8 = b'a';

/// Which of U+0000, the wildcards `+` `#` and non-ASCII bytes `bytes` holds, as [`HAS_NUL`] |
/// [`HAS_WILDCARD`] | [`NON_ASCII`] bits.
///
/// Every string field, PUBLISH topic and SUBSCRIBE filter goes through this, so it tests eight
/// bytes per step (SWAR) with no early exit and no byte loop: the bytes that do not fill a last
/// word are tested as a last word overlapping the one before (from 8 bytes on), or as one word
/// put together from overlapping loads and padded with a neutral byte (below 8). On the 10–50
/// byte strings MQTT carries this is several times faster than a byte loop or one `memchr` per
/// character class.
#[cfg_attr(not(feature = "size"), inline(always))]
pub(crate) fn scan(bytes: &[u8]) -> u8 {
    let mut found = Found {
        nul: 0,
        wild: 0,
        high: 0,
    };
    let n = bytes.len();
    if n >= 8 {
        let mut rest = bytes;
        while let Some((&word, tail)) = rest.split_first_chunk::<8>() {
            found.add(u64::from_le_bytes(word));
            rest = tail;
        }
        if !rest.is_empty() {
            if let Some(&last) = bytes.last_chunk::<8>() {
                found.add(u64::from_le_bytes(last));
            }
        }
    } else if n >= 4 {
        if let (Some(&[a, b, c, d]), Some(&[e, f, g, h])) =
            (bytes.first_chunk::<4>(), bytes.last_chunk::<4>())
        {
            found.add(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
        }
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        // 1 to 3 bytes: the first, the middle one (the first or last again when shorter) and
        // the last.
        let mid = bytes.get(n >> 1).copied().unwrap_or(PAD);
        found.add(u64::from_le_bytes([
            first, mid, last, PAD, PAD, PAD, PAD, PAD,
        ]));
    }
    found.bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_nul_and_wildcards_anywhere() {
        assert_eq!(scan(b""), 0);
        assert_eq!(scan(b"sensors/dev01/temperature"), 0);
        // Every position of an 8-byte word and of the remainder, and the borrow edge cases
        // (0x01 after a 0x00, 0x80 bytes) of the zero-byte test.
        for len in 1..=20 {
            for at in 0..len {
                for (byte, bit) in [(0u8, HAS_NUL), (b'+', HAS_WILDCARD), (b'#', HAS_WILDCARD)] {
                    let mut v = [b'a'; 20];
                    v[at] = byte;
                    assert_eq!(scan(&v[..len]), bit, "{byte:#x} at {at} of {len}");
                }
            }
        }
        assert_eq!(scan(&[0x80; 16]), NON_ASCII);
        assert_eq!(scan(&[0x01; 16]), 0);
        assert_eq!(scan(&[0x2A, 0x2C, 0x22, 0x24, 0x7F, 0x7F, 0x01, 0x21]), 0);
        assert_eq!(
            scan(&[0x2A, 0x2C, 0x22, 0x24, 0xAB, 0xA3, 0x01, 0x81]),
            NON_ASCII
        );
        assert_eq!(
            scan(br"\0+#aaaaaaaaaa"),
            HAS_WILDCARD,
            "a backslash-zero is not U+0000"
        );
        assert_eq!(
            scan(&[b'+', 0, b'#', 1, 2, 3, 4, 5, 6]),
            HAS_NUL | HAS_WILDCARD
        );
    }
}
