//! Time passing: [`Broker::handle_timeout`] runs every timer concern — the connect timeout and
//! keep-alive (`keep_alive.rs`), session expiry (`session_expiry.rs`), delayed wills
//! (`will.rs`), the retained-message sweep and `$SYS` (`sys.rs`) — and [`Broker::poll_timeout`]
//! tells the shell when the next one is due.

use super::Broker;

/// How often expired retained messages are swept (5.0 §3.3.1.3); once a second is plenty.
const RETAINED_SWEEP_MS: u64 = 1000;

impl Broker {
    /// Time passed: run every timer that is due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.input(now_ms, |b| {
            b.enforce_keep_alive(now_ms);
            b.process_closes();
            b.expire_sessions(now_ms);
            b.publish_due_wills(now_ms);
            if now_ms >= b.next_sweep_ms {
                b.retained.remove_expired(now_ms);
                b.next_sweep_ms = now_ms.saturating_add(RETAINED_SWEEP_MS);
            }
            if b.config.sys_interval > 0 && now_ms >= b.next_sys_ms {
                b.publish_sys(now_ms);
                b.next_sys_ms = now_ms.saturating_add(b.config.sys_interval.saturating_mul(1000));
            }
        });
    }

    /// When [`Broker::handle_timeout`] next has something to do (broker milliseconds), or `None`
    /// if nothing is scheduled. A packet that arrives meanwhile can only move a keep-alive
    /// deadline later, but a new connection brings its own connect timeout: call this again
    /// after [`Broker::connection_opened`].
    pub fn poll_timeout(&self) -> Option<u64> {
        let sys = (self.config.sys_interval > 0).then_some(self.next_sys_ms);
        let sweep = self.retained.has_expiring().then_some(self.next_sweep_ms);
        [
            self.next_keep_alive_deadline(),
            self.expiring.next_due(),
            self.delayed_wills.next_due(),
            sweep,
            sys,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::core::Broker;

    #[test]
    fn poll_timeout_names_the_next_deadline() {
        let config = Config {
            sys_interval: 0,
            connect_timeout: 10,
            ..Config::for_tests()
        };
        let mut b = Broker::new(config, 0);
        assert_eq!(b.poll_timeout(), None, "nothing scheduled");
        let peer = "127.0.0.1:50000".parse().unwrap();
        let (_, outbox) = b.connection_opened(peer, 0, 1883, 1_000).unwrap();
        assert_eq!(b.poll_timeout(), Some(11_000), "the connect timeout");
        b.handle_timeout(10_999);
        assert!(!outbox.is_closed(), "not due yet");
        b.handle_timeout(11_000);
        assert!(outbox.is_closed(), "closed at its deadline");
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn poll_timeout_includes_sys_interval() {
        let config = Config {
            sys_interval: 5,
            ..Config::for_tests()
        };
        let mut b = Broker::new(config, 0);
        assert_eq!(b.poll_timeout(), Some(0), "$SYS is due at start");
        b.handle_timeout(0);
        assert_eq!(b.poll_timeout(), Some(5_000));
    }
}
