//! The executor threads, with adaptive busy polling (`busy_poll_us`).

use std::time::{Duration, Instant};

use smol::Executor;

/// One executor thread: runs tasks until `stopped` closes.
///
/// Busy polling (`busy_poll_us`): out of tasks, the thread keeps looking for new ones, and
/// through the reactor for socket events, for up to its [`SpinBudget`] before it sleeps. A
/// sleeping thread takes tens of microseconds to wake on a virtual machine, while under steady
/// traffic the next event is often only microseconds away: a QoS 1 window turnaround, for one,
/// is otherwise a wake-up on each side.
pub(super) fn worker(
    ex: &Executor<'static>,
    stopped: &smol::channel::Receiver<()>,
    busy_poll: Duration,
) {
    smol::block_on(async {
        let mut budget = SpinBudget::new(busy_poll);
        loop {
            if ex.try_tick() {
                continue;
            }
            if stopped.is_closed() {
                return;
            }
            let spin_start = Instant::now();
            let mut found = false;
            while spin_start.elapsed() < budget.current() {
                // Back to block_on, which polls the reactor without blocking when the future
                // has woken itself, then here again.
                smol::future::yield_now().await;
                if ex.try_tick() {
                    found = true;
                    break;
                }
            }
            if found {
                continue;
            }
            // Nothing came: sleep until a task is runnable or the broker stops.
            let slept = Instant::now();
            let run = async {
                ex.tick().await;
                true
            };
            let stop = async {
                let _ = stopped.recv().await;
                false
            };
            if !smol::future::or(run, stop).await {
                return;
            }
            budget.slept(slept.elapsed());
        }
    })
}

/// How long an executor thread spins for work before it sleeps, adapted to the traffic: work
/// that arrives soon after the thread fell asleep would have been caught by spinning, so the
/// spin grows (up to the maximum); a long sleep means the spin was wasted, so it halves, down
/// to none. A quiet broker thus stops polling after a few events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpinBudget {
    current: Duration,
    max: Duration,
}

impl SpinBudget {
    fn new(max: Duration) -> SpinBudget {
        SpinBudget { current: max, max }
    }

    fn current(&self) -> Duration {
        self.current
    }

    /// The thread slept for `slept` before the next task came.
    fn slept(&mut self, slept: Duration) {
        self.current = if slept < self.max {
            self.current
                .saturating_mul(2)
                .saturating_add(Duration::from_micros(1))
                .min(self.max)
        } else {
            self.current / 2
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_budget_follows_the_traffic() {
        let us = Duration::from_micros;
        let mut b = SpinBudget::new(us(200));
        assert_eq!(b.current(), us(200));
        // Sparse traffic (sleeps longer than the maximum): halved down to no spin at all.
        for _ in 0..20 {
            b.slept(us(500));
        }
        assert_eq!(b.current(), Duration::ZERO);
        b.slept(Duration::from_secs(10));
        assert_eq!(b.current(), Duration::ZERO);
        // Work arriving soon after each sleep: back up to the maximum, never beyond.
        b.slept(us(30));
        assert_eq!(b.current(), us(1));
        for _ in 0..20 {
            b.slept(us(30));
        }
        assert_eq!(b.current(), us(200));
        // busy_poll_us = 0: never spins.
        let mut off = SpinBudget::new(Duration::ZERO);
        off.slept(us(1));
        off.slept(us(1_000));
        assert_eq!(off.current(), Duration::ZERO);
    }
}
