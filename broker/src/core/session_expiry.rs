//! Session expiry (3.1.1 Clean Session, 5.0 §3.1.2.11.2 Session Expiry Interval): a session
//! outlives its connection for its expiry interval, then ends.

use std::collections::BTreeSet;

use super::Broker;
use super::ids::{ConnId, SessionId};

/// Disconnected sessions with a finite expiry, by expiry time: the only owner of that schedule.
#[derive(Debug, Default)]
pub(super) struct ExpiryQueue(BTreeSet<(u64, SessionId)>);

impl ExpiryQueue {
    /// When the next session expires.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.0.first().map(|&(at, _)| at)
    }

    /// Schedule the expiry of `sid` at `at`.
    pub(super) fn insert(&mut self, at: u64, sid: SessionId) {
        self.0.insert((at, sid));
    }

    /// Forget the expiry of `sid` at `at` (the session ended another way).
    pub(super) fn cancel(&mut self, at: u64, sid: SessionId) {
        self.0.remove(&(at, sid));
    }
}

impl Broker {
    /// The session's connection `conn` is gone: a clean session ends now, a session with a
    /// finite expiry interval starts counting it down, one that never expires (3.1.1 persistent
    /// sessions) waits.
    pub(super) fn detach_session(&mut self, sid: SessionId, conn: ConnId) {
        let now = self.now_ms;
        let Some(s) = self.sessions.get_mut(sid).filter(|s| s.conn == Some(conn)) else {
            return;
        };
        s.conn = None;
        if s.clean {
            self.end_session(sid);
        } else {
            if s.expiry_interval != u32::MAX {
                let at = now.saturating_add(u64::from(s.expiry_interval).saturating_mul(1000));
                s.expires_at = Some(at);
                self.expiring.0.insert((at, sid));
            }
            // The store counts the expiry from the disconnection too.
            self.journal_session(sid);
        }
    }

    /// A client reconnected to its session (or the session ends): it no longer expires.
    pub(super) fn cancel_expiry(&mut self, sid: SessionId) {
        if let Some(at) = self.sessions.get_mut(sid).and_then(|s| s.expires_at.take()) {
            self.expiring.0.remove(&(at, sid));
        }
    }

    /// End the sessions whose expiry has come; their delayed wills go out now.
    pub(super) fn expire_sessions(&mut self, now_ms: u64) {
        while let Some(&(at, sid)) = self.expiring.0.first() {
            if at > now_ms {
                break;
            }
            self.expiring.0.pop_first();
            if let Some(s) = self
                .sessions
                .get(sid)
                .filter(|s| s.conn.is_none() && s.expires_at == Some(at))
            {
                log::info!("Session of client {} expired.", s.client_id);
                let client_id = std::sync::Arc::clone(&s.client_id);
                self.end_session(sid);
                // [MQTT-3.1.2-8] (5.0): "the Will Delay Interval has elapsed or the Session
                // ends", whichever first.
                self.will_on_session_end(&client_id);
            }
        }
    }
}
