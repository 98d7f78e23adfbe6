//! Backpressure: a publisher whose messages went to congested subscribers reads no more until
//! they drain, within its patience (`max_publisher_hold_ms`); a subscriber that makes no progress
//! is marked stalled and loses its own messages instead (see [`crate::core::Event::Congested`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smol::Timer;

use crate::core::Outbox;

/// How often a held-back publisher checks on the congested connections it waits for: one that
/// took no bytes since the last check is taken for stuck (see [`crate::core::Event::Congested`]).
const PATIENCE: Duration = Duration::from_secs(1);
/// A publisher held back until the connections its messages went to drain.
#[derive(Debug)]
pub(super) struct Pause {
    /// The congested outboxes, each with its write count at the last check.
    on: Vec<(Outbox, u64)>,
    /// The next check.
    check: Timer,
    /// When those still congested are all marked stalled.
    until: Instant,
}

impl Pause {
    /// Wait (also) for `congested` before reading on.
    /// `max_hold_ms` (`max_publisher_hold_ms`) is the longest it waits in one go, however
    /// steadily the connections it waits for make progress: one that cannot take twice
    /// `max_outgoing_bytes` (or a quarter of its queue) in that time is too slow to pace its
    /// publishers, and is dropped to instead (see [`Outbox::mark_stalled`]).
    pub(super) fn hold_back(
        pause: &mut Option<Box<Pause>>,
        congested: Vec<Outbox>,
        max_hold_ms: u64,
    ) {
        if congested.is_empty() {
            return;
        }
        let max_hold = Duration::from_millis(max_hold_ms);
        let p = pause.get_or_insert_with(|| {
            Box::new(Pause {
                on: Vec::new(),
                check: Timer::after(PATIENCE.min(max_hold)),
                until: Instant::now() + max_hold,
            })
        });
        for o in congested {
            if !p.on.iter().any(|(q, _)| q.same(&o)) {
                let written = o.written();
                p.on.push((o, written));
            }
        }
    }

    /// Ready when the publisher may read on. `alive` is called at each check while it waits:
    /// its unread bytes show that it is alive, and its keep-alive must not run out meanwhile.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
        alive: impl Fn(),
    ) -> Poll<()> {
        self.on
            .retain(|(o, _)| o.poll_uncongested(cx, limit).is_pending());
        while !self.on.is_empty() {
            if Pin::new(&mut self.check).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let over = Instant::now() >= self.until;
            self.on.retain_mut(|(o, seen)| {
                let written = o.written();
                let moved = written != *seen;
                *seen = written;
                if over || !moved {
                    o.mark_stalled();
                }
                moved && !over
            });
            alive();
            self.check
                .set_after(PATIENCE.min(self.until.saturating_duration_since(Instant::now())));
        }
        Poll::Ready(())
    }
}
