//! Queues on disk, laid out so that a message costs no tree write of its own:
//!
//! - `segments`: (client id, first key) → the messages queued for the session in one batch,
//!   appended (key, entry record; see `records::entry`) — one write per session per batch;
//! - `done_below`: client id → every message of the session with a key below this is done
//!   (acknowledged, expired or dropped): a session works its queue in key order, so most
//!   acknowledgements only move this mark;
//! - `tombstones`: (client id, key) → (): a message done out of order, above the mark;
//! - `qos2_state`: (client id, key) → state byte and packet id of a QoS 2 message sent (its
//!   packet id is what exactly-once rests on); QoS 1 states are the `sent_up_to` mark.
//!
//! A segment whose messages are all done is deleted. The writer keeps an index of what is on
//! disk ([`SessionQueue`]), rebuilt by recovery, so that it never reads to write.

use std::collections::{BTreeMap, BTreeSet};

use redb::TableDefinition;

use super::records::Writer;
use crate::core::OutgoingState;

pub(super) const SEGMENTS: TableDefinition<'static, (&[u8], u64), &[u8]> =
    TableDefinition::new("segments");
pub(super) const DONE_BELOW: TableDefinition<'static, &[u8], u64> =
    TableDefinition::new("done_below");
pub(super) const TOMBSTONES: TableDefinition<'static, (&[u8], u64), ()> =
    TableDefinition::new("tombstones");
pub(super) const QOS2_STATE: TableDefinition<'static, (&[u8], u64), &[u8]> =
    TableDefinition::new("qos2_state");

/// A message of a session on disk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Live {
    /// Its id in `messages` (0: inline in its segment).
    pub(super) message_id: u64,
    /// Whether a `qos2_state` row may exist for it.
    pub(super) qos2: bool,
}

/// What is on disk of one session's queue.
#[derive(Debug, Default)]
pub(super) struct SessionQueue {
    /// Messages not done, by key.
    pub(super) live: BTreeMap<u64, Live>,
    /// Segments by first key, with how many of their messages are live.
    pub(super) segments: BTreeMap<u64, u32>,
    /// Keys done out of order (above `done_below`).
    pub(super) tombstones: BTreeSet<u64>,
    /// The mark as written.
    pub(super) done_below: u64,
    /// One past the largest key ever queued for the session.
    pub(super) next_key: u64,
}

impl SessionQueue {
    /// `key` is done: its segment's count goes down. Returns the message and, if the segment
    /// has no live message left, the segment's first key (to delete).
    pub(super) fn done(&mut self, key: u64) -> Option<(Live, Option<u64>)> {
        let live = self.live.remove(&key)?;
        let mut empty = None;
        if let Some((&first, count)) = self.segments.range_mut(..=key).next_back() {
            *count = count.saturating_sub(1);
            if *count == 0 {
                empty = Some(first);
            }
        }
        if let Some(first) = empty {
            self.segments.remove(&first);
        }
        Some((live, empty))
    }

    /// The mark the live messages allow: the smallest live key, else one past every key.
    pub(super) fn mark(&self) -> u64 {
        self.live
            .first_key_value()
            .map_or(self.next_key, |(&k, _)| k)
    }
}

/// Append one message to a segment: its key, then the entry record `entry` writes, with its
/// length (the layout `read_segment` reads).
pub(super) fn append(segment: &mut Writer, key: u64, entry: impl FnOnce(&mut Writer)) {
    segment.u64(key);
    segment.sized(entry);
}

/// A segment's messages back: (key, entry record) each; `None` if it is damaged.
pub(super) fn read_segment(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, rest) = b.split_at_checked(8)?;
        let (len, rest) = rest.split_at_checked(4)?;
        let key = u64::from_le_bytes(key.try_into().ok()?);
        let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
        let (entry, rest) = rest.split_at_checked(len)?;
        out.push((key, entry));
        b = rest;
    }
    Some(out)
}

/// A QoS 2 state row.
pub(super) fn qos2_state(pid: u16, state: OutgoingState) -> [u8; 3] {
    let s = match state {
        OutgoingState::AwaitingPubAck => 1,
        OutgoingState::AwaitingPubRec => 2,
        OutgoingState::AwaitingPubComp => 3,
    };
    let [lo, hi] = pid.to_le_bytes();
    [s, lo, hi]
}

pub(super) fn read_qos2_state(b: &[u8]) -> Option<(u16, OutgoingState)> {
    let [s, lo, hi] = <[u8; 3]>::try_from(b).ok()?;
    let state = match s {
        2 => OutgoingState::AwaitingPubRec,
        3 => OutgoingState::AwaitingPubComp,
        _ => return None,
    };
    Some((u16::from_le_bytes([lo, hi]), state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_damage_is_refused() {
        let mut w = Writer::default();
        for (key, entry) in [(7u64, vec![1, 2, 3]), (9, vec![]), (12, vec![9; 300])] {
            append(&mut w, key, |w| w.0.extend_from_slice(&entry));
        }
        let b = w.0;
        let back = read_segment(&b).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2], (12, &[9u8; 300][..]));
        for cut in 1..b.len() {
            if let Some(part) = read_segment(&b[..cut]) {
                // A cut exactly between two messages reads as the first ones only.
                assert!(part.len() < 3, "cut at {cut}");
            }
        }
        assert_eq!(
            read_qos2_state(&qos2_state(300, OutgoingState::AwaitingPubComp)),
            Some((300, OutgoingState::AwaitingPubComp))
        );
    }

    #[test]
    fn the_mark_follows_the_oldest_live_message() {
        let mut q = SessionQueue::default();
        for k in [5, 6, 7] {
            q.live.insert(
                k,
                Live {
                    message_id: 0,
                    qos2: false,
                },
            );
        }
        q.segments.insert(5, 3);
        q.next_key = 8;
        assert_eq!(q.mark(), 5);
        assert!(q.done(6).unwrap().1.is_none());
        assert_eq!(q.mark(), 5, "6 out of order: a tombstone, not the mark");
        q.done(5);
        assert_eq!(q.mark(), 7);
        assert_eq!(q.done(7).unwrap().1, Some(5), "the segment is empty");
        assert_eq!(q.mark(), 8);
        assert!(q.done(7).is_none());
    }
}
