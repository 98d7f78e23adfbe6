//! The connect timeout (no CONNECT within `connect_timeout`) and the keep-alive (nothing received
//! for one and a half times the client's Keep Alive, [MQTT-3.1.2-24] (3.1.1), [MQTT-3.1.2-22]
//! (5.0)).

use super::Broker;
use super::close::CloseReason;
use super::conn::{Connection, Phase};

impl Broker {
    /// Close the connections past their connect timeout or keep-alive.
    pub(super) fn enforce_keep_alive(&mut self, now_ms: u64) {
        let connect_timeout = self.config.connect_timeout.saturating_mul(1000);
        for (&id, c) in &self.conns {
            if let Some((deadline, reason)) = deadline(c, connect_timeout)
                && now_ms >= deadline
            {
                self.to_close.push((id, reason));
            }
        }
    }

    /// The earliest connect-timeout or keep-alive deadline of any connection.
    pub(super) fn next_keep_alive_deadline(&self) -> Option<u64> {
        let connect_timeout = self.config.connect_timeout.saturating_mul(1000);
        self.conns
            .values()
            .filter_map(|c| deadline(c, connect_timeout).map(|(at, _)| at))
            .min()
    }
}

/// When `c` is closed unless something arrives, and why.
fn deadline(c: &Connection, connect_timeout: u64) -> Option<(u64, CloseReason)> {
    match &c.state {
        Phase::AwaitingConnect | Phase::Authenticating(_) => Some((
            c.opened_ms.saturating_add(connect_timeout),
            CloseReason::ConnectTimeout,
        )),
        // Strictly more than one and a half times the keep-alive.
        Phase::Connected(client) if client.keep_alive > 0 => Some((
            c.last_seen_ms
                .saturating_add(u64::from(client.keep_alive) * 1500)
                .saturating_add(1),
            CloseReason::KeepAliveTimeout,
        )),
        Phase::Connected(_) => None,
    }
}
