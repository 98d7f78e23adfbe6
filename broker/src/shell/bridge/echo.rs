//! Loop prevention towards a remote that sends a client its own messages back (one that
//! ignores both `try_private` and 5.0 No Local, such as NATS): the bridge remembers what it
//! sent out on topics it also brings in, and drops the copy that comes back.
//!
//! Each message sent is one entry `(remote topic, payload hash)`, counted; a message coming in
//! that matches an entry consumes it and is dropped. Entries expire after [`ECHO_WINDOW_MS`]
//! (a copy that comes back later is taken as a new message) and at most [`MAX_ENTRIES`] are
//! kept (the oldest go first), so memory is bounded whatever the remote does.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

/// How long a message sent out is expected back.
pub(super) const ECHO_WINDOW_MS: u64 = 30_000;
/// Most messages remembered.
pub(super) const MAX_ENTRIES: usize = 100_000;

type Key = (String, u64);

#[derive(Debug, Default)]
pub(super) struct EchoFilter {
    counts: HashMap<Key, u32>,
    /// Entries in the order sent, with the time sent.
    order: VecDeque<(u64, Key)>,
    hasher: foldhash::fast::FixedState,
}

impl EchoFilter {
    fn key(&self, topic: &str, payload: &[u8]) -> Key {
        (topic.to_owned(), self.hasher.hash_one(payload))
    }

    /// A message was sent out on `topic` at `now_ms`.
    pub(super) fn sent(&mut self, topic: &str, payload: &[u8], now_ms: u64) {
        self.expire(now_ms);
        if self.order.len() >= MAX_ENTRIES {
            self.pop_oldest();
        }
        let key = self.key(topic, payload);
        *self.counts.entry(key.clone()).or_default() += 1;
        self.order.push_back((now_ms, key));
    }

    /// A message came in on `topic`: `true` if it is one sent out (then forgotten: a second
    /// copy is a new message).
    pub(super) fn is_echo(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> bool {
        self.expire(now_ms);
        let key = self.key(topic, payload);
        match self.counts.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.counts.remove(&key);
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > ECHO_WINDOW_MS)
        {
            self.pop_oldest();
        }
    }

    /// Forget the oldest entry (if the echo already consumed it, its count is gone: no-op).
    fn pop_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front()
            && let Some(n) = self.counts.get_mut(&key)
        {
            if *n > 1 {
                *n -= 1;
            } else {
                self.counts.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts.values().map(|&n| n as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_copy_sent_drops_one_copy_back() {
        let mut f = EchoFilter::default();
        f.sent("a", b"1", 0);
        f.sent("a", b"1", 1);
        assert!(!f.is_echo("a", b"2", 2), "other payload");
        assert!(!f.is_echo("b", b"1", 2), "other topic");
        assert!(f.is_echo("a", b"1", 3));
        assert!(f.is_echo("a", b"1", 4));
        assert!(!f.is_echo("a", b"1", 5), "a third copy is someone else's");
    }

    #[test]
    fn entries_expire_and_are_bounded() {
        let mut f = EchoFilter::default();
        f.sent("a", b"1", 0);
        assert!(!f.is_echo("a", b"1", ECHO_WINDOW_MS + 1));
        for i in 0..(MAX_ENTRIES + 10) {
            f.sent("t", &i.to_be_bytes(), 10);
        }
        assert_eq!(f.len(), MAX_ENTRIES);
        assert!(
            !f.is_echo("t", &0usize.to_be_bytes(), 11),
            "the oldest went first"
        );
        assert!(f.is_echo("t", &(MAX_ENTRIES + 9).to_be_bytes(), 11));
    }
}
