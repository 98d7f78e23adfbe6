//! Failed logins (#18): after `max_failed_logins` refused CONNECTs (not authorised, bad user
//! name or password, failed enhanced authentication) from one IP address within
//! `failed_login_window` seconds, further CONNECTs from that address are refused for
//! `failed_login_block` seconds without their credentials being looked at — CONNACK 0x05
//! (3.1.1) or 0x8A Banned (5.0) — logged once per block. Other addresses are not affected.
//!
//! A successful login does not clear an address's failures: one good account must not let an
//! address guess others' passwords at full speed. State is per address, checked lazily (no
//! timer); at most [`MAX_TRACKED`] addresses are tracked, stale ones pruned when that is reached.

use std::collections::HashMap;
use std::net::IpAddr;

/// Most addresses tracked at once (a few MB at worst).
const MAX_TRACKED: usize = 65_536;

/// The limits, in milliseconds (from the configuration).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Failures within `window_ms` that start a block; 0: never block.
    pub(super) max_failures: u32,
    pub(super) window_ms: u64,
    pub(super) block_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start_ms: u64,
    failures: u32,
    blocked_until_ms: u64,
}

/// Failed logins by address.
#[derive(Debug, Default)]
pub(super) struct LoginFailures {
    by_addr: HashMap<IpAddr, Record>,
}

impl LoginFailures {
    /// Whether `ip` is blocked at `now_ms`.
    pub(super) fn is_blocked(&self, ip: IpAddr, now_ms: u64) -> bool {
        self.by_addr
            .get(&ip)
            .is_some_and(|r| now_ms < r.blocked_until_ms)
    }

    /// A login from `ip` failed at `now_ms`: `Some(seconds)` when this failure starts a block
    /// of that many seconds (to log once).
    pub(super) fn failed(&mut self, ip: IpAddr, now_ms: u64, limits: Limits) -> Option<u64> {
        if limits.max_failures == 0 {
            return None;
        }
        if self.by_addr.len() >= MAX_TRACKED && !self.by_addr.contains_key(&ip) {
            self.prune(now_ms, limits);
            if self.by_addr.len() >= MAX_TRACKED {
                return None;
            }
        }
        let r = self.by_addr.entry(ip).or_insert(Record {
            window_start_ms: now_ms,
            failures: 0,
            blocked_until_ms: 0,
        });
        if now_ms.saturating_sub(r.window_start_ms) >= limits.window_ms {
            r.window_start_ms = now_ms;
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        if r.failures >= limits.max_failures && now_ms >= r.blocked_until_ms {
            r.blocked_until_ms = now_ms.saturating_add(limits.block_ms);
            r.failures = 0;
            r.window_start_ms = now_ms;
            return Some(limits.block_ms / 1000);
        }
        None
    }

    /// Forget the addresses whose window and block have both passed.
    fn prune(&mut self, now_ms: u64, limits: Limits) {
        self.by_addr.retain(|_, r| {
            now_ms < r.blocked_until_ms
                || now_ms.saturating_sub(r.window_start_ms) < limits.window_ms
        });
    }

    /// Addresses tracked now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_failures: 3,
        window_ms: 10_000,
        block_ms: 5_000,
    };

    #[test]
    fn blocks_after_the_limit_within_the_window_then_lets_go() {
        let mut f = LoginFailures::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(f.failed(a, 0, LIMITS), None);
        assert_eq!(f.failed(a, 1_000, LIMITS), None);
        assert!(!f.is_blocked(a, 1_000));
        assert_eq!(f.failed(a, 2_000, LIMITS), Some(5));
        assert!(f.is_blocked(a, 2_000));
        assert!(f.is_blocked(a, 6_999));
        assert!(!f.is_blocked(b, 3_000), "other addresses carry on");
        assert!(!f.is_blocked(a, 7_000));
        // Failures spread wider than the window never block.
        let mut f = LoginFailures::default();
        for t in [0, 6_000, 12_000, 18_000, 24_000] {
            assert_eq!(f.failed(a, t, LIMITS), None, "{t}");
        }
        // Off.
        let off = Limits {
            max_failures: 0,
            ..LIMITS
        };
        for t in 0..10 {
            assert_eq!(f.failed(b, t, off), None);
        }
        assert!(!f.is_blocked(b, 10));
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let mut f = LoginFailures::default();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            f.failed(ip, 0, LIMITS);
        }
        assert_eq!(f.len(), MAX_TRACKED);
        // Once the old windows passed, new addresses are tracked again.
        let late: IpAddr = "192.0.2.1".parse().unwrap();
        f.failed(late, 20_000, LIMITS);
        f.failed(late, 20_001, LIMITS);
        assert_eq!(f.failed(late, 20_002, LIMITS), Some(5));
        assert_eq!(f.len(), 1);
    }
}
