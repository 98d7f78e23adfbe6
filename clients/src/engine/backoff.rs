//! Reconnection delays: exponential backoff with a cap, reset by a successful connection.

/// Exponential backoff: `initial`, `2 × initial`, … up to `max` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    next_ms: u64,
    attempts: u32,
}

impl Backoff {
    /// Delays from `initial_ms` doubling up to `max_ms`.
    pub const fn new(initial_ms: u64, max_ms: u64) -> Self {
        let initial_ms = if initial_ms == 0 { 1 } else { initial_ms };
        let max_ms = if max_ms < initial_ms {
            initial_ms
        } else {
            max_ms
        };
        Backoff {
            initial_ms,
            max_ms,
            next_ms: initial_ms,
            attempts: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the following one (capped).
    ///
    /// `jitter` (any random value from the caller, who owns the randomness) spreads the delay
    /// over its upper quarter so that a fleet of clients does not reconnect in lockstep; pass 0
    /// for exact delays.
    pub fn next_delay(&mut self, jitter: u32) -> u64 {
        let base = self.next_ms;
        self.next_ms = base.saturating_mul(2).min(self.max_ms);
        self.attempts = self.attempts.saturating_add(1);
        let spread = base / 4;
        if spread == 0 || jitter == 0 {
            return base;
        }
        base.saturating_sub(spread)
            .saturating_add(u64::from(jitter) % spread.saturating_add(1))
    }

    /// Attempts since the last [`Backoff::reset`].
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A connection succeeded: start again from the initial delay.
    pub fn reset(&mut self) {
        self.next_ms = self.initial_ms;
        self.attempts = 0;
    }
}
